//! The in-memory transport (`mem://name`): a process-wide registry of named
//! listeners, each connection a tokio duplex pipe carrying stream-framed bytes,
//! so that everything above the byte stream runs exactly as over TCP.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tokio::io::DuplexStream;
use tokio::sync::mpsc;

use super::{Transport, TransportError};

/// Bytes buffered in each direction of an in-memory pipe.
const PIPE_CAPACITY: usize = 64 * 1024;
/// Connections waiting to be accepted per name; beyond it connecting is refused.
const BACKLOG: usize = 128;

type Entry = (u64, mpsc::Sender<(DuplexStream, u64)>);
type Registry = Mutex<HashMap<String, Entry>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn lock() -> std::sync::MutexGuard<'static, HashMap<String, Entry>> {
    // A panic while holding this lock leaves the map consistent (single inserts
    // and removals), so a poisoned lock is still usable.
    registry().lock().unwrap_or_else(|e| e.into_inner())
}

/// A named in-memory listener; unregistered when dropped.
#[derive(Debug)]
pub(crate) struct MemListener {
    name: String,
    generation: u64,
    rx: mpsc::Receiver<(DuplexStream, u64)>,
}

impl MemListener {
    pub(crate) fn bind(name: &str) -> Result<MemListener, TransportError> {
        let mut map = lock();
        if map.get(name).is_some_and(|(_, tx)| !tx.is_closed()) {
            return Err(TransportError::io(
                format!("binding mem://{name}"),
                std::io::Error::new(std::io::ErrorKind::AddrInUse, "name already bound"),
            ));
        }
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(BACKLOG);
        map.insert(name.to_owned(), (generation, tx));
        Ok(MemListener {
            name: name.to_owned(),
            generation,
            rx,
        })
    }

    pub(crate) async fn accept(&mut self) -> Option<(DuplexStream, String)> {
        let (io, n) = self.rx.recv().await?;
        Some((io, format!("mem-client-{n}")))
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for MemListener {
    fn drop(&mut self) {
        let mut map = lock();
        if map
            .get(&self.name)
            .is_some_and(|(g, _)| *g == self.generation)
        {
            map.remove(&self.name);
        }
    }
}

pub(crate) async fn connect(
    name: &str,
    max_frame: Option<usize>,
) -> Result<Transport, TransportError> {
    Ok(Transport::from_io(
        connect_io(name)?,
        "mem",
        format!("mem://{name}"),
        max_frame,
    ))
}

/// Connects to the listener registered under `name`: our end of the pipe.
pub(crate) fn connect_io(name: &str) -> Result<DuplexStream, TransportError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let tx = lock()
        .get(name)
        .map(|(_, tx)| tx.clone())
        .ok_or_else(|| TransportError::Refused(format!("mem://{name}")))?;
    let (ours, theirs) = tokio::io::duplex(PIPE_CAPACITY);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tx.try_send((theirs, n))
        .map_err(|_| TransportError::Refused(format!("mem://{name}")))?;
    Ok(ours)
}
