//! Sessions: one established connection after the handshake.
//!
//! A [`Session`] is a cheap, cloneable handle. Behind it runs one task per
//! connection, looping over received frames, the outbound queue, keep-alive
//! and shutdown: it routes replies, runs handlers, answers pings, and writes
//! every frame queued so far (and every reply produced meanwhile) in one flush.
//! A request alone on an idle connection is written, and its reply read, from
//! the caller's task; any other frame it reads goes to the connection task, in
//! order.
//!
//! Outbound queue overflow policy: [`Session::send`] and [`Session::request`]
//! wait for room (backpressure on the caller, bounded by the request deadline
//! for requests); [`Session::try_send`] and server broadcasts never wait and
//! fail with [`SendError::QueueFull`]. Frames the connection task makes itself
//! (replies of handlers that finish at once, pongs, error responses) go to its
//! own write queue; when that holds more than the outbound queue's capacity of
//! them, the task stops reading until they are written, so memory stays
//! bounded when the peer stops reading. Its keep-alive pings are dropped when
//! the write queue is full (it then holds traffic that proves liveness).

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::transport::{FrameStream, FrameTx, TransportInfo};
use crate::wire::{Frame, FrameHeader, Reassembler};

/// What a session does with the messages it receives. The session only
/// asks; the dispatcher (or any other implementation) finds and runs the
/// handler, and the session writes the outcome: a reply, an error response,
/// or nothing for a one-way message.
pub(crate) trait Inbound: Send + Sync + 'static {
    /// Runs the handler of a one-way message; `None` when there is none.
    fn one_way(&self, session: &Session, type_id: u32, payload: Bytes) -> Option<Outcome<()>>;

    /// Runs the handler of a request; `None` when there is none. The outcome
    /// is the reply's type id and payload.
    fn request(
        &self,
        session: &Session,
        correlation: u64,
        type_id: u32,
        payload: Bytes,
    ) -> Option<Outcome<(u32, Bytes)>>;

    /// Runs the handler of a device-to-device message from `from` (pub/sub
    /// `send_to`); `None` when there is none.
    fn direct(
        &self,
        session: &Session,
        from: &str,
        type_id: u32,
        payload: Bytes,
    ) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        let _ = (session, from, type_id, payload);
        None
    }

    /// The broker, on a server: it handles `subscribe` and `publish` frames.
    fn broker(&self) -> Option<&Arc<crate::server::broker::Broker>> {
        None
    }
}

/// Both halves of what a session asks of its dispatcher.
pub(crate) trait Dispatch: Inbound + Calls {}
impl<T: Inbound + Calls> Dispatch for T {}

/// What a handler's future gives: a value, or the error response.
pub(crate) type Outcome<T> = futures_util::future::BoxFuture<'static, Result<T, HandlerError>>;

/// What the session does after handing a call to its service.
pub(crate) enum Started {
    /// Finished at once: write this frame (a reply or an error), if any.
    Done(Option<Frame>),
    /// Runs on: the future gives the last frame to write, if any. The
    /// payload's length counts against the in-flight byte budget.
    Running {
        correlation: u64,
        len: usize,
        /// The call has a stream (either way): its handler waits on the
        /// peer (items, or credit), so it is never waited for (see
        /// `Connection::admit_stream`).
        streams: bool,
        fut: futures_util::future::BoxFuture<'static, Option<Frame>>,
    },
}

/// Calls received: the session hands them to the services (see
/// [`crate::rpc`]).
pub(crate) trait Calls: Send + Sync + 'static {
    /// Starts serving a call frame (a request with a call header).
    /// `inline`: the handler may take its first steps at once (there is
    /// room for another running handler).
    fn call(&self, session: &Session, frame: Frame, inline: bool) -> Started;
}

mod calls;
mod config;
mod conn;
mod error;
mod handle;
mod lend;
mod link;
mod outbox;
mod run;
mod writer;

pub use calls::PeerService;
pub(crate) use calls::{Calls as CallTable, Inflow, Outflow, credit_frame};
pub(crate) use config::session_setters;
pub use config::*;
use conn::*;
pub use error::*;
pub use handle::*;
pub(crate) use handle::{Exchange, Pending, error_frame};
use lend::*;
pub use link::{
    Delivered, Delivery, DeliveryError, LinkStats, OutboxLimits, Overflow, SendOptions,
};
#[cfg(feature = "store")]
pub(crate) use link::{Durable, Record};
pub(crate) use link::{Link, Restored, read_ack};
use outbox::*;
pub(crate) use run::FrameRun;
use writer::*;

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    errors: AtomicU64,
    unknown: AtomicU64,
    late: AtomicU64,
    last_activity_ms: AtomicU64,
}

pub(crate) type Props = HashMap<(TypeId, &'static str), Arc<dyn Any + Send + Sync>>;

pub(crate) struct Shared {
    id: u64,
    device_id: String,
    info: TransportInfo,
    created: SystemTime,
    started: Instant,
    props: Mutex<Props>,
    counters: Counters,
    out: Outbox,
    /// The largest frame ([`Frame::len`]) the outbox takes already encoded
    /// ([`Session::try_enqueue_run`]); 0 when the transport takes none.
    encoded_max: usize,
    /// The largest batch of stream items the session sends.
    max_batch: usize,
    writer: Mutex<Writer>,
    reader: Mutex<ReadSide>,
    pending: Mutex<BTreeMap<u64, oneshot::Sender<Frame>>>,
    next_correlation: AtomicU64,
    initiator: bool,
    calls: CallTable,
    refused: Vec<(u32, &'static str)>,
    closed: CancellationToken,
    /// Set with `closed`: checking a token takes its lock, this a load.
    ended: AtomicBool,
    closing: AtomicBool,
    /// The peer ended the session with a close frame (not a broken link).
    peer_closed: AtomicBool,
    reason: OnceLock<CloseReason>,
    config: Arc<SessionConfig>,
    /// Subscriptions, answers awaited from the broker, the broker's record.
    pubsub: crate::pubsub::local::Local,
    /// The reliable state this session writes through, when the two sides
    /// agreed on one in the handshake (see [`Link`]).
    link: Option<Arc<Link>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single map operation: a panic cannot leave
    // the map half-updated, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn reason(&self) -> CloseReason {
        self.reason.get().cloned().unwrap_or_else(|| {
            CloseReason::new(ClosedBy::Local, codes::UNSPECIFIED, "session closed")
        })
    }

    fn error(&self) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records why the session ends (the first reason wins), tells the peer
    /// when it did not end the session itself, and wakes everything waiting.
    fn finish(&self, reason: CloseReason) {
        // An expired keep-alive (the only session error with this code)
        // takes the link for dead. On a reliable session nothing more is
        // written on it: a close frame that arrived after all, once a stall
        // ended, would tell the peer this side ended the session on
        // purpose, and the peer would drop the state that the next
        // connection resumes.
        let link_dead = self.link.is_some() && reason.code == codes::DEADLINE_EXCEEDED;
        if self.reason.set(reason.clone()).is_ok() && reason.by == ClosedBy::Error && !link_dead {
            self.out.push(close_frame(&reason));
        }
        self.out.close();
        self.end();
        // Dropping the senders wakes every waiting request with "disconnected".
        // Dropped in correlation order, outside the lock: the waiters wake
        // in the same order every run.
        let pending = std::mem::take(&mut *lock(&self.pending));
        drop(pending);
        self.calls.close_all();
        // With a reliable state that lives on, the subscriptions wait for
        // the session that resumes it.
        let resumable = self.link.as_ref().is_some_and(|l| l.ended().is_none());
        self.pubsub.session_ended(!resumable);
        if let Some(link) = &self.link {
            link.detach(self);
        }
    }

    /// Marks the session ended and wakes everything waiting for its end.
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.closed.cancel();
    }

    /// Whether the session has ended (`closed` is cancelled).
    fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// A correlation id for a new exchange: odd on the side that opened the
    /// connection, even on the side that accepted it (wire format §2.7).
    fn correlation(&self) -> u64 {
        match &self.link {
            // Continued across the sessions of the link: a reply resent on
            // a resumed session never matches a newer exchange.
            Some(link) => link.correlation(),
            None => self.next_correlation.fetch_add(2, Ordering::Relaxed),
        }
    }

    /// Queues a cancel for one of our exchanges, without waiting: a cancel
    /// is small and must not be lost to a full queue (the peer would work on).
    fn push_cancel(&self, correlation: u64) {
        if !self.has_ended() {
            self.out
                .push(Frame::new(FrameHeader::cancel(correlation), Bytes::new()));
        }
    }

    /// Whether a correlation id is one this side chose.
    fn is_own(&self, correlation: u64) -> bool {
        (correlation % 2 == 1) == self.initiator
    }
}

/// What the handshake established, to start a session from.
pub(crate) struct Established {
    pub(crate) id: u64,
    pub(crate) device_id: String,
    pub(crate) refused: Vec<(u32, &'static str)>,
    pub(crate) config: Arc<SessionConfig>,
    /// Whether this side opened the connection (it uses odd correlation ids).
    pub(crate) initiator: bool,
    /// The services the peer announced.
    pub(crate) peer_services: Vec<PeerService>,
    /// The peer's stream window, in bytes.
    pub(crate) peer_window: u32,
    /// The reliable state, when the handshake agreed on one.
    pub(crate) link: Option<Arc<Link>>,
}

/// Builds a session and the future that runs its connection: one task per
/// connection, which the client spawns and the server runs in the task that
/// accepted the connection. The future resolves, with the reason, once the
/// connection has ended and what was queued has been written.
pub(crate) fn start(
    est: Established,
    rx: FrameStream,
    tx: FrameTx,
    info: TransportInfo,
    inbound: Arc<dyn Dispatch>,
    setup: impl FnOnce(&Session),
) -> (Session, impl Future<Output = CloseReason> + Send + 'static) {
    let started = Instant::now();
    let writer = Writer::new(tx, &est.config);
    // Encoded frames are never fragmented: only frames that need not be
    // are taken encoded.
    let encoded_max = writer
        .tx
        .encoded_max()
        .min(writer.fragment_size.unwrap_or(usize::MAX))
        .min(est.config.max_frame)
        .min(run::ENCODED_MAX);
    let shared = Arc::new(Shared {
        id: est.id,
        device_id: est.device_id,
        info,
        created: SystemTime::now(),
        started,
        props: Mutex::new(HashMap::new()),
        counters: Counters::default(),
        out: Outbox::new(est.config.outbound_queue.max(1), est.config.outbound_bytes),
        max_batch: max_batch(&est.config),
        encoded_max,
        writer: Mutex::new(writer),
        reader: Mutex::new(ReadSide {
            rx: Some(rx),
            handoff: VecDeque::new(),
            ahead: VecDeque::new(),
            lent: false,
            busy: false,
            task: None,
            joiner: Reassembler::new(est.config.max_message.max(1)),
        }),
        pending: Mutex::new(BTreeMap::new()),
        next_correlation: AtomicU64::new(if est.initiator { 1 } else { 2 }),
        initiator: est.initiator,
        calls: CallTable::new(est.peer_services, est.peer_window, est.config.stream_window),
        refused: est.refused,
        closed: CancellationToken::new(),
        ended: AtomicBool::new(false),
        closing: AtomicBool::new(false),
        peer_closed: AtomicBool::new(false),
        reason: OnceLock::new(),
        config: est.config,
        pubsub: Default::default(),
        link: est.link,
    });
    let session = Session { shared };
    setup(&session);
    let run = run(session.clone(), inbound);
    (session, run)
}
