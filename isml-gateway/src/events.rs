//! Session events (connect, disconnect), reported by the server's hooks and
//! fanned out to WebSocket clients; the traffic of ended sessions is kept
//! so that the metrics' counters never go down.

use std::sync::{Arc, Mutex};

use isml_runtime::session::{CloseReason, Session};
use serde::Serialize;
use tokio::sync::broadcast;

/// Events each WebSocket may lag behind before it misses some.
const BACKLOG: usize = 1024;

/// A session that connected or disconnected.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SessionEvent {
    /// `connected` or `disconnected`.
    pub event: &'static str,
    /// The session id.
    pub session_id: u64,
    /// The device id.
    pub device_id: String,
    /// The peer's address.
    pub peer: String,
    /// The transport (`tcp`, `tls`, `ws`, ...).
    pub transport: &'static str,
    /// Why it ended (disconnections only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
}

/// Totals of ended sessions.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ended {
    pub(crate) sessions: u64,
    pub(crate) frames_in: u64,
    pub(crate) frames_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) filtered: u64,
    pub(crate) errors: u64,
}

/// Where the server's `on_open` and `on_close` hooks report to; clone it
/// into both hooks and hand it to [`GatewayBuilder::events`](crate::GatewayBuilder::events).
#[derive(Clone)]
pub struct SessionEvents {
    tx: broadcast::Sender<SessionEvent>,
    ended: Arc<Mutex<Ended>>,
    opened: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for SessionEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionEvents")
            .field("receivers", &self.tx.receiver_count())
            .finish()
    }
}

impl Default for SessionEvents {
    fn default() -> Self {
        SessionEvents::new()
    }
}

impl SessionEvents {
    /// No events yet.
    pub fn new() -> SessionEvents {
        let (tx, _) = broadcast::channel(BACKLOG);
        SessionEvents {
            tx,
            ended: Arc::default(),
            opened: Arc::default(),
        }
    }

    fn event(s: &Session, event: &'static str, reason: Option<String>) -> SessionEvent {
        SessionEvent {
            event,
            session_id: s.id(),
            device_id: s.device_id().to_owned(),
            peer: s.peer().to_owned(),
            transport: s.scheme(),
            reason,
            timestamp_ms: crate::time::now_ms(),
        }
    }

    /// For the server's `on_open` hook.
    pub fn opened(&self, session: &Session) {
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.tx.send(Self::event(session, "connected", None));
    }

    /// For the server's `on_close` hook.
    pub fn closed(&self, session: &Session, reason: &CloseReason) {
        let st = session.stats();
        {
            let mut e = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            e.sessions += 1;
            e.frames_in += st.frames_in;
            e.frames_out += st.frames_out;
            e.bytes_in += st.bytes_in;
            e.bytes_out += st.bytes_out;
            e.filtered += st.filtered;
            e.errors += st.errors;
        }
        let _ = self.tx.send(Self::event(
            session,
            "disconnected",
            Some(reason.to_string()),
        ));
    }

    /// Receives the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<SessionEvent> {
        self.tx.subscribe()
    }

    pub(crate) fn ended(&self) -> Ended {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn opened_total(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }
}
