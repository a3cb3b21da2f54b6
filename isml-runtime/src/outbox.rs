//! The device's outbox: where messages sent at least once wait until the
//! peer acknowledged them (`docs/reliability.md`).
//!
//! [`Outbox::memory`] keeps them in memory: they survive reconnections, not
//! a restart of the process. [`Outbox::open`] (feature `store`) keeps them in
//! a redb database: a message is committed durably before
//! `send_with(…, Delivery::AtLeastOnce)` returns, and removed once
//! acknowledged, so that what was queued while offline, or written and not
//! yet acknowledged, survives `kill -9` and a reboot and is sent, in order,
//! after the next connection. The database also keeps the session's resume
//! token and the highest sequence number received, so that a device that
//! restarts within the server's session-expiry time resumes its session.
//!
//! Records (table `messages`, key: the message's id, `u64`): `uvarint`
//! sequence number (0: not written yet), priority byte, `uvarint` expiry in
//! Unix milliseconds (0: none), "latest value" key (`uvarint` length + UTF-8,
//! length 0: none), then the frame (header without sequence number, and
//! payload, as on the wire without framing). Table `meta`: `token` (16
//! bytes), `received` (`u64` little endian), `correlations` (`u64` little
//! endian: request correlation ids from it up are unused, where the next
//! process starts).

use std::fmt;
use std::sync::Arc;

use crate::session::{Link, OutboxLimits, Overflow, Restored};

/// Why an outbox could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutboxError {
    /// The database could not be opened or read.
    #[error("outbox {path}: {message}")]
    Store {
        /// The database file.
        path: String,
        /// What failed.
        message: String,
    },
}

/// Where at-least-once messages wait until acknowledged: in memory, or on
/// disk (see the module documentation). Give it to
/// [`ClientBuilder::outbox`](crate::client::ClientBuilder::outbox).
pub struct Outbox {
    limits: OutboxLimits,
    restored: Restored,
    #[cfg(feature = "store")]
    durable: Option<Arc<disk::Disk>>,
    path: Option<String>,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .field("limits", &self.limits)
            .field("restored", &self.restored.messages.len())
            .finish()
    }
}

impl Outbox {
    /// An outbox in memory.
    pub fn memory() -> Outbox {
        Outbox {
            limits: OutboxLimits::default(),
            restored: Restored::default(),
            #[cfg(feature = "store")]
            durable: None,
            path: None,
        }
    }

    /// Opens (or creates) an outbox kept in the redb database at `path`,
    /// with what it held when the process last stopped.
    #[cfg(feature = "store")]
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Outbox, OutboxError> {
        Self::open_with(path.as_ref(), false)
    }

    /// Like [`open`](Self::open), but each change is committed on the thread
    /// of the task that makes it, before that call returns, instead of on
    /// the outbox's writer thread: no thread is started, and the order and
    /// timing of commits depend on nothing but the tasks. For a runtime
    /// that cannot spare a thread, for tests on tokio's paused clock (which
    /// jumps ahead while a task waits for another thread), and for
    /// deterministic simulation (`tests/sim`), where a writer thread's
    /// commit would finish at a wall-clock moment the simulated clock does
    /// not know. The cost: the runtime's thread waits for every commit (an
    /// `fsync` each), where the writer thread would have batched the
    /// commits of concurrent sends.
    #[cfg(feature = "store")]
    pub fn open_inline(path: impl AsRef<std::path::Path>) -> Result<Outbox, OutboxError> {
        Self::open_with(path.as_ref(), true)
    }

    #[cfg(feature = "store")]
    fn open_with(path: &std::path::Path, inline: bool) -> Result<Outbox, OutboxError> {
        let (disk, restored) = disk::open(path, inline)?;
        Ok(Outbox {
            limits: OutboxLimits::default(),
            restored,
            durable: Some(Arc::new(disk)),
            path: Some(path.display().to_string()),
        })
    }

    /// Messages queued (not yet written) at most; beyond it, the overflow
    /// policy applies (65,536 by default).
    pub fn max_messages(mut self, messages: usize) -> Self {
        self.limits.max_messages = messages.max(1);
        self
    }

    /// Bytes queued (not yet written) at most (16 MiB by default).
    pub fn max_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_bytes = bytes.max(1);
        self
    }

    /// What a full outbox does ([`Overflow::Wait`] by default).
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.limits.overflow = overflow;
        self
    }

    /// Messages the outbox held when it was opened (written and not
    /// acknowledged, or queued).
    pub fn restored(&self) -> usize {
        self.restored.messages.len()
    }

    /// The client's reliable state, from this outbox. `window`: bytes
    /// written and not acknowledged at most.
    pub(crate) fn into_link(self, window: usize) -> Arc<Link> {
        #[cfg(feature = "store")]
        let durable = self.durable.map(|d| d as Arc<dyn crate::session::Durable>);
        #[cfg(not(feature = "store"))]
        let durable = None;
        let link = Link::with(
            self.restored.token.unwrap_or_else(Link::random_token),
            true,
            window,
            self.limits,
            durable,
        );
        link.restore(self.restored);
        link
    }

    /// Whether the outbox held a token from an earlier run (the client
    /// then asks to resume that session).
    pub(crate) fn has_token(&self) -> bool {
        self.restored.token.is_some()
    }
}

#[cfg(feature = "store")]
mod disk {
    use std::path::Path;
    use std::sync::mpsc;

    use bytes::{BufMut, Bytes, BytesMut};
    use redb::{ReadableDatabase, ReadableTable};
    use tokio::sync::oneshot;

    use super::OutboxError;
    use crate::session::{Durable, Record, Restored};
    use crate::wire::{Frame, Reader, varint};

    const MESSAGES: redb::TableDefinition<'static, u64, &'static [u8]> =
        redb::TableDefinition::new("messages");
    const META: redb::TableDefinition<'static, &'static str, &'static [u8]> =
        redb::TableDefinition::new("meta");

    type Done = Option<oneshot::Sender<Result<(), String>>>;

    /// The outbox's database, as the link sees it: the writer thread's end
    /// of a channel, or the database itself when commits are inline.
    pub(super) enum Disk {
        /// Batches go to the writer thread.
        Thread(std::sync::Mutex<mpsc::Sender<(Vec<Record>, Done)>>),
        /// Each batch is committed by the caller ([`super::Outbox::open_inline`]).
        Inline {
            /// The database.
            db: redb::Database,
            /// Its path, for the log.
            name: String,
        },
    }

    impl Durable for Disk {
        fn record(&self, records: Vec<Record>, done: Done) {
            match self {
                Disk::Thread(tx) => {
                    let tx = tx.lock().unwrap_or_else(|e| e.into_inner());
                    if let Err(mpsc::SendError((_, Some(done)))) = tx.send((records, done)) {
                        let _ = done.send(Err("the outbox writer stopped".into()));
                    }
                }
                Disk::Inline { db, name } => {
                    let outcome = commit(db, &records, name);
                    if let Some(done) = done {
                        let _ = done.send(outcome);
                    }
                }
            }
        }
    }

    pub(super) fn open(path: &Path, inline: bool) -> Result<(Disk, Restored), OutboxError> {
        let err = |e: &dyn std::fmt::Display| OutboxError::Store {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
        }
        let db = redb::Database::create(path).map_err(|e| err(&e))?;
        {
            let txn = db.begin_write().map_err(|e| err(&e))?;
            txn.open_table(MESSAGES).map_err(|e| err(&e))?;
            txn.open_table(META).map_err(|e| err(&e))?;
            txn.commit().map_err(|e| err(&e))?;
        }
        let mut restored = Restored::default();
        {
            let txn = db.begin_read().map_err(|e| err(&e))?;
            let meta = txn.open_table(META).map_err(|e| err(&e))?;
            if let Some(t) = meta.get("token").map_err(|e| err(&e))?
                && let Ok(token) = <[u8; 16]>::try_from(t.value())
            {
                restored.token = Some(token);
            }
            if let Some(r) = meta.get("received").map_err(|e| err(&e))?
                && let Ok(b) = <[u8; 8]>::try_from(r.value())
            {
                restored.received = u64::from_le_bytes(b);
            }
            if let Some(r) = meta.get("correlations").map_err(|e| err(&e))?
                && let Ok(b) = <[u8; 8]>::try_from(r.value())
            {
                restored.correlations = u64::from_le_bytes(b);
            }
            let messages = txn.open_table(MESSAGES).map_err(|e| err(&e))?;
            for item in messages.iter().map_err(|e| err(&e))? {
                let (k, v) = item.map_err(|e| err(&e))?;
                match parse(v.value()) {
                    Some((seq, frame, priority, expires, latest)) => {
                        restored
                            .messages
                            .push((k.value(), seq, frame, priority, expires, latest))
                    }
                    None => tracing::warn!(
                        path = %path.display(),
                        id = k.value(),
                        "corrupt outbox record skipped"
                    ),
                }
            }
        }
        let name = path.display().to_string();
        if inline {
            return Ok((Disk::Inline { db, name }, restored));
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("isml-outbox".into())
            .spawn(move || writer(db, rx, name))
            .map_err(|e| err(&e))?;
        Ok((Disk::Thread(std::sync::Mutex::new(tx)), restored))
    }

    fn value(seq: u64, frame: &Frame, priority: u8, expires: u64, latest: Option<&str>) -> Vec<u8> {
        let mut b = BytesMut::with_capacity(24 + frame.len());
        varint::put(&mut b, seq);
        b.put_u8(priority);
        varint::put(&mut b, expires);
        let latest = latest.unwrap_or("");
        varint::put(&mut b, latest.len() as u64);
        b.put_slice(latest.as_bytes());
        let mut header = frame.header;
        header.seq = None;
        // A header the runtime built: it always encodes.
        let _ = header.encode(&mut b);
        b.put_slice(&frame.payload);
        b.to_vec()
    }

    type Parsed = (u64, Frame, u8, u64, Option<String>);

    fn parse(v: &[u8]) -> Option<Parsed> {
        let mut r = Reader::new(v);
        let seq = r.uvarint().ok()?;
        let priority = r.u8().ok()?;
        let expires = r.uvarint().ok()?;
        let latest = r.str().ok()?;
        let latest = (!latest.is_empty()).then(|| latest.to_owned());
        let frame = Frame::decode(Bytes::copy_from_slice(r.rest())).ok()?;
        Some((seq, frame, priority, expires, latest))
    }

    /// Applies batches of records, each batch one durable commit, and then
    /// tells who waits.
    fn writer(db: redb::Database, rx: mpsc::Receiver<(Vec<Record>, Done)>, name: String) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            while batch.len() < 4096 {
                match rx.try_recv() {
                    Ok(item) => batch.push(item),
                    Err(_) => break,
                }
            }
            let outcome = commit(&db, batch.iter().flat_map(|(r, _)| r), &name);
            for (_, done) in batch {
                if let Some(done) = done {
                    let _ = done.send(outcome.clone());
                }
            }
        }
    }

    /// Applies `records` in one durable commit.
    fn commit<'r>(
        db: &redb::Database,
        records: impl IntoIterator<Item = &'r Record>,
        name: &str,
    ) -> Result<(), String> {
        let result = (|| -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            {
                let mut messages = txn.open_table(MESSAGES)?;
                let mut meta = txn.open_table(META)?;
                for record in records {
                    match record {
                        Record::Put {
                            id,
                            frame,
                            priority,
                            expires_unix_ms,
                            latest,
                        } => {
                            let v = value(0, frame, *priority, *expires_unix_ms, latest.as_deref());
                            messages.insert(*id, v.as_slice())?;
                        }
                        Record::Numbered { id, seq } => {
                            let old = messages.get(*id)?.map(|v| v.value().to_vec());
                            if let Some((_, frame, priority, expires, latest)) =
                                old.as_deref().and_then(parse)
                            {
                                let v = value(*seq, &frame, priority, expires, latest.as_deref());
                                messages.insert(*id, v.as_slice())?;
                            }
                        }
                        Record::Remove { id } => {
                            messages.remove(*id)?;
                        }
                        Record::Correlations { from } => {
                            meta.insert("correlations", from.to_le_bytes().as_slice())?;
                        }
                        Record::Meta { token, received } => {
                            meta.insert("token", token.as_slice())?;
                            meta.insert("received", received.to_le_bytes().as_slice())?;
                        }
                    }
                }
            }
            txn.commit()?;
            Ok(())
        })();
        result.map_err(|e| {
            tracing::error!(outbox = %name, error = %e, "outbox not written");
            e.to_string()
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::wire::FrameHeader;

        #[test]
        fn records_round_trip_and_corrupt_ones_are_refused() {
            let frame = Frame::new(FrameHeader::one_way(300), Bytes::from_static(b"abc"));
            let v = value(7, &frame, 3, 1_700_000_000_000, Some("slot-1"));
            let (seq, back, priority, expires, latest) = parse(&v).unwrap();
            assert_eq!((seq, priority, expires), (7, 3, 1_700_000_000_000));
            assert_eq!(latest.as_deref(), Some("slot-1"));
            assert_eq!(back.header, frame.header);
            assert_eq!(back.payload, frame.payload);
            for n in 0..v.len() - 3 {
                assert!(parse(&v[..n]).is_none(), "prefix {n}");
            }
        }

        fn put(id: u64) -> Record {
            Record::Put {
                id,
                frame: Frame::new(FrameHeader::one_way(9), Bytes::from(vec![id as u8; 3])),
                priority: 1,
                expires_unix_ms: 0,
                latest: None,
            }
        }

        /// Inline: each change is durable when `record` returns, and the
        /// database is closed when the outbox is dropped, so that it opens
        /// again at once with what was recorded.
        #[test]
        fn inline_commits_are_durable_when_record_returns() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("outbox.redb");
            let (disk, restored) = open(&path, true).unwrap();
            assert!(restored.messages.is_empty());
            let (done, mut committed) = oneshot::channel();
            disk.record(vec![put(1), put(2)], Some(done));
            assert_eq!(committed.try_recv(), Ok(Ok(())));
            disk.record(
                vec![
                    Record::Remove { id: 1 },
                    Record::Numbered { id: 2, seq: 5 },
                    Record::Correlations { from: 41 },
                ],
                None,
            );
            drop(disk);
            let (_disk, restored) = open(&path, true).unwrap();
            let ids: Vec<(u64, u64)> = restored.messages.iter().map(|m| (m.0, m.1)).collect();
            assert_eq!(ids, [(2, 5)]);
            assert_eq!(restored.correlations, 41);
        }

        /// The writer thread: the same records, durable once it answers.
        #[tokio::test]
        async fn the_writer_thread_answers_once_durable() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("outbox.redb");
            let (disk, _) = open(&path, false).unwrap();
            let (done, committed) = oneshot::channel();
            disk.record(vec![put(1), put(2), Record::Remove { id: 1 }], Some(done));
            assert_eq!(committed.await, Ok(Ok(())));
            drop(disk);
            // The thread closes the database after its last batch.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let restored = loop {
                match open(&path, true) {
                    Ok((_, r)) => break r,
                    Err(e) if std::time::Instant::now() > deadline => panic!("{e}"),
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
                }
            };
            let ids: Vec<u64> = restored.messages.iter().map(|m| m.0).collect();
            assert_eq!(ids, [2]);
        }
    }
}
