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
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Waker, ready};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::task::AtomicWaker;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{Semaphore, TryAcquireError, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::TopLevel;
use crate::dispatch::{Context, Dispatcher, HandlerError};
use crate::transport::{FrameSink, FrameStream, TransportError, TransportInfo};
use crate::wire::{
    Assembled, ControlOp, DecodeError, EncodeError, ErrorBody, FragmentError, Fragmenter, Frame,
    FrameHeader, FrameKind, Limits, Reassembler,
};

/// Error codes of wire format §2.4.
pub mod codes {
    /// Unspecified.
    pub const UNSPECIFIED: u64 = 0;
    /// Unknown message type.
    pub const UNKNOWN_TYPE: u64 = 1;
    /// Malformed payload or frame.
    pub const MALFORMED: u64 = 2;
    /// Handler failed.
    pub const HANDLER_FAILED: u64 = 3;
    /// Deadline exceeded (also: keep-alive expired).
    pub const DEADLINE_EXCEEDED: u64 = 4;
    /// Cancelled.
    pub const CANCELLED: u64 = 5;
    /// Unauthenticated.
    pub const UNAUTHENTICATED: u64 = 6;
    /// Permission denied.
    pub const PERMISSION_DENIED: u64 = 7;
    /// Resource exhausted (queue full, connection limit).
    pub const RESOURCE_EXHAUSTED: u64 = 8;
    /// Unavailable (shutting down).
    pub const UNAVAILABLE: u64 = 9;
    /// Fingerprint mismatch.
    pub const FINGERPRINT_MISMATCH: u64 = 10;
    /// Version mismatch.
    pub const VERSION_MISMATCH: u64 = 11;
    /// The device id is in use: the session was replaced by a newer one of
    /// the same device, or a newer one was refused (the server's policy).
    pub const DEVICE_ID_IN_USE: u64 = 12;
}

/// Settings shared by every session of a server or client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Send a ping after this long without receiving anything; declare the
    /// peer dead after 1.5 times this long. `None` disables keep-alive.
    pub keepalive: Option<Duration>,
    /// Default deadline of [`Session::request`].
    pub request_timeout: Duration,
    /// Frames the outbound queue holds.
    pub outbound_queue: usize,
    /// Incoming requests handled at once; beyond it the session stops reading.
    pub max_inflight: usize,
    /// How long a closing session may take to write what is queued.
    pub close_timeout: Duration,
    /// Largest frame sent or accepted.
    pub max_frame: usize,
    /// Bytes (encoded frame lengths) the outbound queue holds. A frame larger
    /// than the whole budget is accepted when the queue is empty.
    pub outbound_bytes: usize,
    /// Bytes of frames the connection task has queued to write (replies,
    /// pongs, error responses, and what it took from the outbound queue)
    /// beyond the outbound budget, after which it stops reading until the
    /// peer has read them.
    pub reply_bytes: usize,
    /// Bytes of request payloads whose handlers run at once; beyond it the
    /// session stops reading, as beyond `max_inflight`.
    pub inflight_bytes: usize,
    /// Largest message received, joined from fragments (wire format §2.6);
    /// a larger one closes the session with code 8.
    pub max_message: usize,
    /// Messages whose payload is larger are sent in fragments of this many
    /// bytes, between which smaller frames may leave (`None`: never fragment;
    /// then no message may exceed `max_frame`).
    pub fragment_size: Option<usize>,
}

/// Ping payloads up to this size are echoed in the pong; a longer one is
/// answered with an empty pong, so that a ping never makes us hold or send
/// more than it costs the peer.
pub const MAX_PING_ECHO: usize = 64;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            keepalive: Some(Duration::from_secs(30)),
            request_timeout: Duration::from_secs(10),
            outbound_queue: 1024,
            max_inflight: 256,
            close_timeout: Duration::from_secs(2),
            max_frame: Limits::DEFAULT.max_frame,
            outbound_bytes: 1024 * 1024,
            reply_bytes: 1024 * 1024,
            inflight_bytes: 4 * 1024 * 1024,
            max_message: Limits::DEFAULT.max_frame,
            fragment_size: Some(64 * 1024),
        }
    }
}

/// The setters of the session budgets, shared by the server's and the
/// client's builders (both hold a `config: SessionConfig`).
macro_rules! budget_setters {
    () => {
        /// Bytes the outbound queue of each session holds (1 MiB by default).
        pub fn outbound_bytes(mut self, bytes: usize) -> Self {
            self.config.outbound_bytes = bytes.max(1);
            self
        }

        /// Bytes of replies, pongs and error responses a session queues for a
        /// peer that is not reading, beyond the outbound queue, before it stops
        /// reading from it (1 MiB by default).
        pub fn reply_bytes(mut self, bytes: usize) -> Self {
            self.config.reply_bytes = bytes.max(1);
            self
        }

        /// Incoming requests handled at once per session (256 by default);
        /// beyond it the session stops reading.
        pub fn max_inflight(mut self, requests: usize) -> Self {
            self.config.max_inflight = requests.max(1);
            self
        }

        /// Bytes of request payloads handled at once per session (4 MiB by
        /// default); beyond it the session stops reading.
        pub fn inflight_bytes(mut self, bytes: usize) -> Self {
            self.config.inflight_bytes = bytes.max(1);
            self
        }

        /// Largest message received, whole or joined from fragments (1 MiB by
        /// default); a larger one closes the session with code 8.
        pub fn max_message(mut self, bytes: usize) -> Self {
            self.config.max_message = bytes.max(1);
            self
        }

        /// Messages whose payload is larger are sent in fragments of this size
        /// (64 KiB by default; `None`: never, and no message may exceed the
        /// frame limit).
        pub fn fragment_size(mut self, bytes: Option<usize>) -> Self {
            self.config.fragment_size = bytes.map(|n| n.max(1));
            self
        }
    };
}
pub(crate) use budget_setters;

/// Who ended a session.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// This side, with [`Session::close`] (or a server shutdown).
    Local,
    /// The peer, with a `close` frame or by ending the connection.
    Peer,
    /// The runtime: transport failure, malformed frame, keep-alive expiry.
    Error,
}

/// Why a session ended: who, and an error body (wire format §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// Who closed it.
    pub by: ClosedBy,
    /// The code ([`codes`]).
    pub code: u64,
    /// A human-readable explanation.
    pub message: String,
}

impl CloseReason {
    /// A reason.
    pub fn new(by: ClosedBy, code: u64, message: impl Into<String>) -> Self {
        CloseReason {
            by,
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.by {
            ClosedBy::Local => "closed locally",
            ClosedBy::Peer => "closed by peer",
            ClosedBy::Error => "closed on error",
        };
        write!(f, "{who} (code {}): {}", self.code, self.message)
    }
}

/// Why a message could not be sent.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The session has ended.
    #[error("session {session} is closed: {reason}")]
    Closed {
        /// The session id.
        session: u64,
        /// Why it ended.
        reason: CloseReason,
    },
    /// The outbound queue is full ([`Session::try_send`], broadcasts).
    #[error("outbound queue of session {session} is full ({capacity} frames)")]
    QueueFull {
        /// The session id.
        session: u64,
        /// The queue's capacity.
        capacity: usize,
    },
    /// The peer's definition of this message differs from ours (handshake fingerprints).
    #[error(
        "message {name} (type id {type_id}) is refused on session {session}: its definition differs on the peer (fingerprint mismatch)"
    )]
    FingerprintMismatch {
        /// The session id.
        session: u64,
        /// The message's type id.
        type_id: u32,
        /// The message's name.
        name: &'static str,
    },
    /// The message failed validation or does not fit a frame.
    #[error("cannot encode {message}: {source}")]
    Encode {
        /// The message's name.
        message: &'static str,
        /// Why.
        source: EncodeError,
    },
}

/// Why a request failed.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The request could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// No reply before the deadline; a reply arriving later is dropped.
    #[error("request {request} timed out after {after:?}")]
    Timeout {
        /// The request's name.
        request: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The peer answered with an error response.
    #[error("request {request} failed on the peer (code {code}): {message}")]
    Remote {
        /// The request's name.
        request: &'static str,
        /// The error code (§2.4).
        code: u64,
        /// The peer's message.
        message: String,
    },
    /// The session ended before the reply came.
    #[error("request {request} lost: session {reason}")]
    Disconnected {
        /// The request's name.
        request: &'static str,
        /// Why the session ended.
        reason: CloseReason,
    },
    /// The reply could not be decoded.
    #[error("reply {reply} to {request} is malformed: {source}")]
    Decode {
        /// The request's name.
        request: &'static str,
        /// The expected reply's name.
        reply: &'static str,
        /// Why.
        source: DecodeError,
    },
    /// The reply is of another type than expected.
    #[error("request {request} expected a {expected} reply, got type id {type_id}")]
    UnexpectedReply {
        /// The request's name.
        request: &'static str,
        /// The expected reply's name.
        expected: &'static str,
        /// The type id received.
        type_id: u32,
    },
}

impl RequestError {
    /// The error code a peer sent ([`RequestError::Remote`]), if any.
    pub fn remote_code(&self) -> Option<u64> {
        match self {
            RequestError::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A typed key for a session property: `const ROLE: Key<Role> = Key::new("role");`.
///
/// Two keys are the same when they have the same name and value type.
pub struct Key<T> {
    name: &'static str,
    _type: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// A key with a name (for debugging; the value type is part of the key).
    pub const fn new(name: &'static str) -> Self {
        Key {
            name,
            _type: PhantomData,
        }
    }

    /// The key's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?}: {})", self.name, std::any::type_name::<T>())
    }
}

/// The principal an [`Authenticator`](crate::handshake::Authenticator) returned.
pub const PRINCIPAL: Key<String> = Key::new("isml.principal");

/// A snapshot of a session's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// When the session was established.
    pub created: SystemTime,
    /// When the last frame arrived.
    pub last_activity: SystemTime,
    /// Frames received.
    pub frames_in: u64,
    /// Frames written.
    pub frames_out: u64,
    /// Bytes received on the wire (framing and transport overhead included).
    pub bytes_in: u64,
    /// Bytes sent on the wire.
    pub bytes_out: u64,
    /// Requests sent and not answered yet.
    pub pending_requests: usize,
    /// Errors: failed handlers, undecodable messages, refused types, dropped frames.
    pub errors: u64,
    /// One-way messages of a type without a handler.
    pub unknown_messages: u64,
    /// Replies that arrived after their request timed out (dropped).
    pub late_replies: u64,
}

#[derive(Default)]
struct Counters {
    frames_in: AtomicU64,
    frames_out: AtomicU64,
    errors: AtomicU64,
    unknown: AtomicU64,
    late: AtomicU64,
    last_activity_ms: AtomicU64,
}

type Props = HashMap<(TypeId, &'static str), Arc<dyn Any + Send + Sync>>;

pub(crate) struct Shared {
    id: u64,
    device_id: String,
    info: TransportInfo,
    created: SystemTime,
    started: Instant,
    props: Mutex<Props>,
    counters: Counters,
    out: Outbox,
    writer: Mutex<Writer>,
    reader: Mutex<ReadSide>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Frame>>>,
    next_correlation: AtomicU64,
    refused: Vec<(u32, &'static str)>,
    closed: CancellationToken,
    closing: AtomicBool,
    reason: OnceLock<CloseReason>,
    config: Arc<SessionConfig>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single map operation: a panic cannot leave
    // the map half-updated, so a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bounded outbound queue: senders push frames under a short lock and wake
/// the connection task, which takes everything queued at once. It allocates
/// nothing until the first frame is sent. Its room is two semaphores, one of
/// frames and one of bytes (encoded frame lengths), so that waiting senders
/// are woken in order and all at once when it closes.
struct Outbox {
    frames: Mutex<VecDeque<Frame>>,
    room: Semaphore,
    bytes: Semaphore,
    task: AtomicWaker,
    capacity: usize,
    byte_capacity: usize,
}

enum TryPush {
    Full,
    Closed,
}

impl Outbox {
    fn new(capacity: usize, byte_capacity: usize) -> Self {
        // A semaphore counts at most u32::MAX permits at once per acquire.
        let byte_capacity = byte_capacity.clamp(1, u32::MAX as usize);
        Outbox {
            frames: Mutex::new(VecDeque::new()),
            room: Semaphore::new(capacity),
            bytes: Semaphore::new(byte_capacity),
            task: AtomicWaker::new(),
            capacity,
            byte_capacity,
        }
    }

    /// What a frame costs of the byte budget: its encoded length, but never
    /// more than the whole budget, so that one large frame passes when the
    /// queue is empty.
    fn cost(&self, frame: &Frame) -> u32 {
        frame.len().min(self.byte_capacity) as u32
    }

    /// Queues a frame without taking room: for the few frames the runtime
    /// itself must get out (the close frame of a failing session).
    fn push(&self, frame: Frame) {
        lock(&self.frames).push_back(frame);
        self.task.wake();
    }

    /// Waits for room, then queues; `Err` when the session has ended.
    async fn send(&self, frame: Frame) -> Result<(), ()> {
        let room = self.room.acquire().await.map_err(|_| ())?;
        let bytes = self
            .bytes
            .acquire_many(self.cost(&frame))
            .await
            .map_err(|_| ())?;
        room.forget();
        bytes.forget();
        self.push(frame);
        Ok(())
    }

    fn try_send(&self, frame: Frame) -> Result<(), TryPush> {
        let room = match self.room.try_acquire() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Err(TryPush::Full),
            Err(TryAcquireError::Closed) => return Err(TryPush::Closed),
        };
        let bytes = match self.bytes.try_acquire_many(self.cost(&frame)) {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Err(TryPush::Full),
            Err(TryAcquireError::Closed) => return Err(TryPush::Closed),
        };
        room.forget();
        bytes.forget();
        self.push(frame);
        Ok(())
    }

    fn close(&self) {
        self.room.close();
        self.bytes.close();
    }

    /// Moves every queued frame to `into` (waiting until there is one), and
    /// gives their room back: from now on they count against the task's own
    /// write queue, which stops reading when it is full. Gives the bytes moved.
    fn poll_take(
        &self,
        cx: &mut std::task::Context<'_>,
        into: &mut VecDeque<Frame>,
    ) -> Poll<usize> {
        self.task.register(cx.waker());
        self.take(into)
    }

    fn take(&self, into: &mut VecDeque<Frame>) -> Poll<usize> {
        let mut q = lock(&self.frames);
        if q.is_empty() {
            return Poll::Pending;
        }
        let n = q.len();
        let (bytes, cost) = q.iter().fold((0usize, 0usize), |(b, c), f| {
            (b + f.len(), c + self.cost(f) as usize)
        });
        if into.is_empty() {
            std::mem::swap(&mut *q, into);
        } else {
            into.append(&mut q);
        }
        drop(q);
        // Frames pushed without room (close on error, the welcome) may give
        // back more than was taken; never grow beyond the capacity.
        let free = self.room.available_permits();
        self.room
            .add_permits(n.min(self.capacity.saturating_sub(free)));
        let free = self.bytes.available_permits();
        self.bytes
            .add_permits(cost.min(self.byte_capacity.saturating_sub(free)));
        Poll::Ready(bytes)
    }
}

/// A handle to an established session; clone it freely.
#[derive(Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.shared.id)
            .field("device_id", &self.shared.device_id)
            .field("peer", &self.shared.info.peer)
            .field("scheme", &self.shared.info.scheme)
            .finish()
    }
}

impl PartialEq for Session {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for Session {}

fn close_frame(reason: &CloseReason) -> Frame {
    let body = ErrorBody {
        code: reason.code,
        message: &reason.message,
    };
    let mut buf = BytesMut::with_capacity(body.encoded_len());
    body.encode(&mut buf);
    Frame::new(FrameHeader::control(ControlOp::Close), buf.freeze())
}

fn error_frame(correlation: u64, code: u64, message: &str) -> Frame {
    let body = ErrorBody { code, message };
    let mut buf = BytesMut::with_capacity(body.encoded_len());
    body.encode(&mut buf);
    Frame::new(FrameHeader::error(correlation), buf.freeze())
}

impl Session {
    /// The session id the server assigned.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The device id the server assigned.
    pub fn device_id(&self) -> &str {
        &self.shared.device_id
    }

    /// The peer's address.
    pub fn peer(&self) -> &str {
        &self.shared.info.peer
    }

    /// The transport's URL scheme.
    pub fn scheme(&self) -> &'static str {
        self.shared.info.scheme
    }

    /// Message types refused on this session because their definitions differ
    /// on the two sides: `(type id, name)`.
    pub fn refused_types(&self) -> &[(u32, &'static str)] {
        &self.shared.refused
    }

    /// A property.
    pub fn get<T: Send + Sync + 'static>(&self, key: &Key<T>) -> Option<Arc<T>> {
        let v = lock(&self.shared.props)
            .get(&(TypeId::of::<T>(), key.name))
            .cloned()?;
        v.downcast::<T>().ok()
    }

    /// Sets a property, returning the previous value.
    pub fn set<T: Send + Sync + 'static>(&self, key: &Key<T>, value: T) -> Option<Arc<T>> {
        let old = lock(&self.shared.props).insert((TypeId::of::<T>(), key.name), Arc::new(value));
        old.and_then(|v| v.downcast::<T>().ok())
    }

    /// Removes a property, returning it.
    pub fn remove<T: Send + Sync + 'static>(&self, key: &Key<T>) -> Option<Arc<T>> {
        let old = lock(&self.shared.props).remove(&(TypeId::of::<T>(), key.name));
        old.and_then(|v| v.downcast::<T>().ok())
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> SessionStats {
        let s = &self.shared;
        let c = &s.counters;
        SessionStats {
            created: s.created,
            last_activity: s.created
                + Duration::from_millis(c.last_activity_ms.load(Ordering::Relaxed)),
            frames_in: c.frames_in.load(Ordering::Relaxed),
            frames_out: c.frames_out.load(Ordering::Relaxed),
            bytes_in: s.info.counters.bytes_in(),
            bytes_out: s.info.counters.bytes_out(),
            pending_requests: lock(&s.pending).len(),
            errors: c.errors.load(Ordering::Relaxed) + s.info.counters.corrupt_frames(),
            unknown_messages: c.unknown.load(Ordering::Relaxed),
            late_replies: c.late.load(Ordering::Relaxed),
        }
    }

    /// Whether the session has ended (or is closing).
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled() || self.shared.closing.load(Ordering::Relaxed)
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.shared.reason.get().cloned()
    }

    /// Waits until the session has ended, and tells why.
    pub async fn closed(&self) -> CloseReason {
        self.shared.closed.cancelled().await;
        self.shared.reason()
    }

    fn closed_error(&self) -> SendError {
        SendError::Closed {
            session: self.shared.id,
            reason: self.shared.reason(),
        }
    }

    fn encode<M: TopLevel>(&self, header: FrameHeader, msg: &M) -> Result<Frame, SendError> {
        if let Some(&(type_id, name)) = self.shared.refused.iter().find(|(id, _)| *id == M::TYPE_ID)
        {
            return Err(SendError::FingerprintMismatch {
                session: self.shared.id,
                type_id,
                name,
            });
        }
        let err = |source| SendError::Encode {
            message: M::NAME,
            source,
        };
        let len = msg.encoded_len();
        let config = &self.shared.config;
        // Fragmented, a message may be as large as the peer joins (we assume
        // the same limit as ours); otherwise it must fit one frame.
        let (len_checked, max) = match config.fragment_size {
            Some(_) => (len, config.max_message),
            None => (header.encoded_len() + len, config.max_frame),
        };
        if len_checked > max {
            return Err(err(EncodeError::FrameTooLarge {
                len: len_checked,
                max,
            }));
        }
        let mut buf = BytesMut::with_capacity(len);
        msg.encode(&mut buf).map_err(err)?;
        Ok(Frame::new(header, buf.freeze()))
    }

    /// Sends a one-way message, waiting for room in the outbound queue.
    pub async fn send<M: TopLevel>(&self, msg: &M) -> Result<(), SendError> {
        let frame = self.encode(FrameHeader::one_way(M::TYPE_ID), msg)?;
        self.enqueue(frame).await
    }

    /// Sends a one-way message if the outbound queue has room, without waiting.
    pub fn try_send<M: TopLevel>(&self, msg: &M) -> Result<(), SendError> {
        let frame = self.encode(FrameHeader::one_way(M::TYPE_ID), msg)?;
        self.try_enqueue(frame)
    }

    /// Queues an already encoded frame, waiting for room.
    pub async fn send_frame(&self, frame: Frame) -> Result<(), SendError> {
        self.enqueue(frame).await
    }

    async fn enqueue(&self, frame: Frame) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.shared
            .out
            .send(frame)
            .await
            .map_err(|()| self.closed_error())
    }

    pub(crate) fn try_enqueue(&self, frame: Frame) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.shared.out.try_send(frame).map_err(|e| match e {
            TryPush::Full => SendError::QueueFull {
                session: self.shared.id,
                capacity: self.shared.out.capacity,
            },
            TryPush::Closed => self.closed_error(),
        })
    }

    /// Writes a frame straight to the transport, from the caller's task, when
    /// nothing else is queued or being written (so that order is kept); gives
    /// the frame back otherwise. Saves a request sent on an idle connection
    /// the trip through the connection task.
    fn write_direct(&self, frame: Frame) -> Result<(), Frame> {
        let shared = &self.shared;
        let Ok(mut w) = shared.writer.try_lock() else {
            return Err(frame);
        };
        if w.broken
            || w.close_sent
            || w.unflushed
            || !w.is_idle()
            || w.fragment_size.is_some_and(|n| frame.payload.len() > n)
            || !lock(&shared.out.frames).is_empty()
        {
            return Err(frame);
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        if !matches!(w.tx.as_mut().poll_ready(&mut cx), Poll::Ready(Ok(()))) {
            return Err(frame);
        }
        if let Err(e) = w.tx.as_mut().start_send(frame) {
            w.broken = true;
            drop(w);
            shared.finish(transport_reason(&e));
            return Ok(());
        }
        shared.counters.frames_out.fetch_add(1, Ordering::Relaxed);
        w.unflushed = true;
        if let Poll::Ready(Ok(())) = w.tx.as_mut().poll_flush(&mut cx) {
            w.unflushed = false;
        } else {
            // The socket is full (or failed): the connection task finishes
            // the flush with its own waker.
            drop(w);
            shared.out.task.wake();
        }
        Ok(())
    }

    /// Sends a request and waits for the reply, within the configured
    /// [`SessionConfig::request_timeout`].
    pub async fn request<R: TopLevel>(&self, msg: &impl TopLevel) -> Result<R, RequestError> {
        self.request_with_timeout(msg, self.shared.config.request_timeout)
            .await
    }

    /// Sends a request and waits for the reply, at most `timeout` (counting the
    /// wait for room in the outbound queue).
    pub async fn request_with_timeout<R: TopLevel, Q: TopLevel>(
        &self,
        msg: &Q,
        timeout: Duration,
    ) -> Result<R, RequestError> {
        let deadline = Instant::now() + timeout;
        let shared = &self.shared;
        let correlation = shared.next_correlation.fetch_add(1, Ordering::Relaxed);
        let frame = self.encode(FrameHeader::request(Q::TYPE_ID, correlation), msg)?;
        let (tx, rx) = oneshot::channel();
        let alone = {
            let mut pending = lock(&shared.pending);
            pending.insert(correlation, tx);
            pending.len() == 1
        };
        // Removes the entry however this future ends (reply, timeout, drop), so
        // that a late reply finds nothing and is dropped, never misrouted:
        // correlation ids are never reused on a session.
        let _guard = PendingGuard {
            shared,
            correlation,
        };
        let disconnected = |s: &Shared| RequestError::Disconnected {
            request: Q::NAME,
            reason: s.reason(),
        };
        if shared.closed.is_cancelled() {
            return Err(disconnected(shared));
        }
        let exchange = async {
            // Alone on the connection, the request is written right away; with
            // others in flight it joins the queue, to leave in one write with them.
            let mut direct = false;
            let frame = if alone && !self.is_closed() {
                match self.write_direct(frame) {
                    Ok(()) => {
                        direct = true;
                        None
                    }
                    Err(frame) => Some(frame),
                }
            } else {
                Some(frame)
            };
            if let Some(frame) = frame {
                self.enqueue(frame).await?;
            }
            // Written directly, the request also reads its reply itself while
            // the connection stays idle (see `Lend`); otherwise, or once
            // anything else arrives, the connection task hands it over.
            let mut rx = rx;
            let mut lend = Lend {
                shared,
                correlation,
                active: false,
                done: !direct,
            };
            poll_fn(|cx| {
                if let Poll::Ready(r) = rx.poll_unpin(cx) {
                    return Poll::Ready(r.map_err(|_| disconnected(shared)));
                }
                lend.poll_reply(cx).map(Ok)
            })
            .await
        };
        let reply = match tokio::time::timeout_at(deadline, exchange).await {
            Ok(r) => r?,
            Err(_) => {
                let _ = shared
                    .out
                    .try_send(Frame::new(FrameHeader::cancel(correlation), Bytes::new()));
                return Err(RequestError::Timeout {
                    request: Q::NAME,
                    after: timeout,
                });
            }
        };
        match reply.header.kind {
            FrameKind::Response if reply.header.type_id == R::TYPE_ID => R::decode(reply.payload)
                .map_err(|source| RequestError::Decode {
                    request: Q::NAME,
                    reply: R::NAME,
                    source,
                }),
            FrameKind::Response => Err(RequestError::UnexpectedReply {
                request: Q::NAME,
                expected: R::NAME,
                type_id: reply.header.type_id,
            }),
            _ => match ErrorBody::decode(&reply.payload) {
                Ok(body) => Err(RequestError::Remote {
                    request: Q::NAME,
                    code: body.code,
                    message: body.message.to_owned(),
                }),
                Err(source) => Err(RequestError::Decode {
                    request: Q::NAME,
                    reply: "error body",
                    source,
                }),
            },
        }
    }

    /// Closes the session gracefully: frames already queued are written, then
    /// a `close` frame with `reason` (code 0), then the connection ends.
    pub async fn close(&self, reason: impl Into<String>) {
        self.close_with(codes::UNSPECIFIED, reason).await;
    }

    /// [`Session::close`] with an error code (wire format §2.4).
    pub async fn close_with(&self, code: u64, reason: impl Into<String>) {
        let shared = &self.shared;
        if shared.closing.swap(true, Ordering::AcqRel) || shared.closed.is_cancelled() {
            shared.closed.cancelled().await;
            return;
        }
        let reason = CloseReason::new(ClosedBy::Local, code, reason);
        let frame = close_frame(&reason);
        let _ = shared.reason.set(reason);
        // The writer ends the session once the close frame is out; if the
        // queue stays full (peer not reading), give up after the close timeout.
        let queued =
            tokio::time::timeout(shared.config.close_timeout, shared.out.send(frame)).await;
        if !matches!(queued, Ok(Ok(()))) {
            shared.closed.cancel();
        }
        let _ =
            tokio::time::timeout(shared.config.close_timeout * 2, shared.closed.cancelled()).await;
        shared.closed.cancel();
    }
}

/// What the connection task reads: an end of the transport, `None` when it ended.
type Item = Option<Result<Frame, TransportError>>;

/// The receiving half of the transport. The connection task reads it, except
/// while a request alone on an idle connection reads its own reply from its
/// caller's task ([`Lend`]): that saves the reply a hand-off (a wake-up of
/// the caller, often on another thread). Whatever else such a request reads
/// it hands to the connection task through `handoff`, which the task reads
/// before the transport, so frames are handled in the order they arrived.
struct ReadSide {
    rx: Option<FrameStream>,
    handoff: VecDeque<Item>,
    /// A request is reading the transport.
    lent: bool,
    /// The connection task is handling what it read (not waiting for more).
    busy: bool,
    /// The connection task's waker, to give the transport back to it.
    task: Option<Waker>,
    /// Joins fragmented messages (wire format §2.6).
    joiner: Reassembler,
}

/// What the connection task reads: a whole message (fragments joined), the
/// reason the connection ends, or `None` when the peer ended it.
type Read = Option<Result<Frame, CloseReason>>;

fn fragment_reason(e: &FragmentError) -> CloseReason {
    let code = match e {
        FragmentError::TooLarge { .. } => codes::RESOURCE_EXHAUSTED,
        _ => codes::MALFORMED,
    };
    CloseReason::new(ClosedBy::Error, code, e.to_string())
}

impl ReadSide {
    /// The connection task's read: handed-over items first, then the
    /// transport unless a request is reading it. `register` is false for the
    /// probes of a burst (their waker is a no-op). Fragments are joined here
    /// and count as frames received and as signs of life.
    fn poll_task(
        &mut self,
        cx: &mut std::task::Context<'_>,
        register: bool,
        shared: &Shared,
    ) -> Poll<Read> {
        if register {
            match &mut self.task {
                Some(w) if w.will_wake(cx.waker()) => {}
                t => *t = Some(cx.waker().clone()),
            }
        }
        loop {
            let item = match self.handoff.pop_front() {
                Some(item) => item,
                None => {
                    let polled = match self.rx.as_mut() {
                        _ if self.lent => Poll::Pending,
                        Some(rx) => rx.poll_next_unpin(cx),
                        None => Poll::Ready(None),
                    };
                    match polled {
                        Poll::Ready(item) => item,
                        Poll::Pending => {
                            self.busy = false;
                            return Poll::Pending;
                        }
                    }
                }
            };
            self.busy = true;
            let frame = match item {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(transport_reason(&e)))),
                None => {
                    if let Some(h) = self.joiner.in_progress() {
                        let reason = CloseReason::new(
                            ClosedBy::Error,
                            codes::MALFORMED,
                            format!(
                                "connection ended inside a fragmented {} (type {}, correlation {}) after {} bytes",
                                h.kind.name(),
                                h.type_id,
                                h.correlation,
                                self.joiner.buffered()
                            ),
                        );
                        self.joiner.clear();
                        return Poll::Ready(Some(Err(reason)));
                    }
                    return Poll::Ready(None);
                }
            };
            if !frame.header.more && self.joiner.in_progress().is_none() {
                return Poll::Ready(Some(Ok(frame)));
            }
            match self.joiner.push(frame) {
                Ok(Assembled::Complete(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(Assembled::Pending) => {
                    let c = &shared.counters;
                    c.frames_in.fetch_add(1, Ordering::Relaxed);
                    c.last_activity_ms.store(
                        shared.started.elapsed().as_millis() as u64,
                        Ordering::Relaxed,
                    );
                }
                Err(e) => return Poll::Ready(Some(Err(fragment_reason(&e)))),
            }
        }
    }
}

/// A request reading its own reply from the transport, in its caller's task.
/// It starts only when the connection task is idle (waiting for frames,
/// nothing handed over); it stops at the first frame that is not its reply,
/// which it hands to the connection task. Dropped while reading (timeout,
/// cancellation), it gives the transport back.
struct Lend<'a> {
    shared: &'a Shared,
    correlation: u64,
    /// This request is reading the transport.
    active: bool,
    /// It no longer tries: the reply comes through the connection task.
    done: bool,
}

impl Lend<'_> {
    fn poll_reply(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Frame> {
        if self.done {
            return Poll::Pending;
        }
        let shared = self.shared;
        let mut r = lock(&shared.reader);
        if !self.active {
            if r.lent || r.busy || !r.handoff.is_empty() || r.rx.is_none() {
                self.done = true;
                return Poll::Pending;
            }
            r.lent = true;
            self.active = true;
        }
        let Some(rx) = r.rx.as_mut() else {
            self.give_back(&mut r);
            return Poll::Pending;
        };
        let item = ready!(rx.poll_next_unpin(cx));
        match item {
            Some(Ok(frame))
                if matches!(frame.header.kind, FrameKind::Response | FrameKind::Error)
                    && frame.header.correlation == self.correlation
                    && !frame.header.more
                    && r.joiner.in_progress().is_none() =>
            {
                let c = &shared.counters;
                c.frames_in.fetch_add(1, Ordering::Relaxed);
                c.last_activity_ms.store(
                    shared.started.elapsed().as_millis() as u64,
                    Ordering::Relaxed,
                );
                self.give_back(&mut r);
                Poll::Ready(frame)
            }
            other => {
                r.handoff.push_back(other);
                self.give_back(&mut r);
                Poll::Pending
            }
        }
    }

    /// Gives the transport back to the connection task: polls it once with
    /// the task's waker, so that the task is woken by the next frame (or at
    /// once, when there is one or something was handed over).
    fn give_back(&mut self, r: &mut ReadSide) {
        self.active = false;
        self.done = true;
        r.lent = false;
        let Some(task) = r.task.clone() else {
            return;
        };
        if r.handoff.is_empty() {
            let Some(rx) = r.rx.as_mut() else {
                return;
            };
            match rx.poll_next_unpin(&mut std::task::Context::from_waker(&task)) {
                Poll::Pending => return,
                Poll::Ready(item) => r.handoff.push_back(item),
            }
        }
        task.wake();
    }
}

impl Drop for Lend<'_> {
    fn drop(&mut self) {
        if self.active {
            let mut r = lock(&self.shared.reader);
            self.give_back(&mut r);
        }
    }
}

struct PendingGuard<'a> {
    shared: &'a Shared,
    correlation: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.correlation);
    }
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
        if self.reason.set(reason.clone()).is_ok() && reason.by == ClosedBy::Error {
            self.out.push(close_frame(&reason));
        }
        self.out.close();
        self.closed.cancel();
        // Dropping the senders wakes every waiting request with "disconnected".
        let pending: Vec<_> = lock(&self.pending).drain().collect();
        drop(pending);
    }
}

/// What the handshake established, to start a session from.
pub(crate) struct Established {
    pub(crate) id: u64,
    pub(crate) device_id: String,
    pub(crate) refused: Vec<(u32, &'static str)>,
    pub(crate) config: Arc<SessionConfig>,
}

/// Builds a session and the future that runs its connection: one task per
/// connection, which the client spawns and the server runs in the task that
/// accepted the connection. The future resolves, with the reason, once the
/// connection has ended and what was queued has been written.
pub(crate) fn start(
    est: Established,
    rx: FrameStream,
    tx: FrameSink,
    info: TransportInfo,
    dispatcher: Arc<Dispatcher>,
    setup: impl FnOnce(&Session),
) -> (Session, impl Future<Output = CloseReason> + Send + 'static) {
    let started = Instant::now();
    let shared = Arc::new(Shared {
        id: est.id,
        device_id: est.device_id,
        info,
        created: SystemTime::now(),
        started,
        props: Mutex::new(HashMap::new()),
        counters: Counters::default(),
        out: Outbox::new(est.config.outbound_queue.max(1), est.config.outbound_bytes),
        writer: Mutex::new(Writer::new(tx, &est.config)),
        reader: Mutex::new(ReadSide {
            rx: Some(rx),
            handoff: VecDeque::new(),
            lent: false,
            busy: false,
            task: None,
            joiner: Reassembler::new(est.config.max_message.max(1)),
        }),
        pending: Mutex::new(HashMap::new()),
        next_correlation: AtomicU64::new(1),
        refused: est.refused,
        closed: CancellationToken::new(),
        closing: AtomicBool::new(false),
        reason: OnceLock::new(),
        config: est.config,
    });
    let session = Session { shared };
    setup(&session);
    let run = run(session.clone(), dispatcher);
    (session, run)
}

fn transport_reason(e: &TransportError) -> CloseReason {
    let code = match e {
        TransportError::Malformed { .. } => codes::MALFORMED,
        _ => codes::UNAVAILABLE,
    };
    CloseReason::new(ClosedBy::Error, code, e.to_string())
}

/// The sending side of the connection task: frames taken from the outbox, or
/// produced by the task itself (replies, pongs), fed to the transport and
/// flushed together. A message larger than the fragment size leaves in
/// fragments, taking turns with the frames queued behind it (wire format
/// §2.6), so that it does not hold them back for long on a slow link.
struct Writer {
    tx: FrameSink,
    queue: VecDeque<Frame>,
    /// Encoded bytes of the frames in `queue` and of the message being
    /// fragmented.
    queued_bytes: usize,
    /// Frames were fed and not flushed yet.
    unflushed: bool,
    /// A close frame was fed: nothing after it is.
    close_sent: bool,
    /// The transport failed: nothing more can be written.
    broken: bool,
    /// Messages with a larger payload are fragmented.
    fragment_size: Option<usize>,
    /// The message being sent in fragments.
    fragmenting: Option<Fragmenting>,
    /// The next turn is the queue's (a frame queued behind the fragmented
    /// message may go before its next fragment).
    queue_turn: bool,
}

/// Rounds of take-feed-flush before the task yields to its other work.
const PUMP_ROUNDS: usize = 8;
/// Received frames handled in a row before the task looks at its other work.
const READ_BURST: usize = 64;
/// Capacity of the write queue kept between bursts.
const KEEP_QUEUE: usize = 64;

fn fragment_key(h: &FrameHeader) -> (FrameKind, u32, u64) {
    (h.kind, h.type_id, h.correlation)
}

/// A message leaving in fragments: the fragments to come, their payload
/// bytes, and the message's key.
struct Fragmenting {
    fragments: Fragmenter,
    left: usize,
    key: (FrameKind, u32, u64),
}

impl Writer {
    fn new(tx: FrameSink, config: &SessionConfig) -> Writer {
        Writer {
            tx,
            queue: VecDeque::new(),
            queued_bytes: 0,
            unflushed: false,
            close_sent: false,
            broken: false,
            // A fragment and its header must fit in a frame.
            fragment_size: config
                .fragment_size
                .map(|n| n.clamp(1, config.max_frame.saturating_sub(32).max(1))),
            fragmenting: None,
            queue_turn: false,
        }
    }

    /// What is left in the session once its connection task has taken the transport.
    fn ended() -> Writer {
        let sink = futures_util::sink::drain().sink_map_err(|never| match never {});
        let mut w = Writer::new(Box::pin(sink), &SessionConfig::default());
        w.broken = true;
        w
    }

    /// Whether the task may read more frames. Frames from the outbox enter the
    /// queue only when it is empty, so at most `capacity` of them (and
    /// `outbound_bytes`) are in it: beyond twice that many frames, or beyond
    /// `outbound_bytes + reply_bytes`, the task's own replies and pongs fill
    /// it, and reading stops until they are written (the peer is not reading
    /// them). A peer flooding us with one-way messages while we flood it
    /// keeps being read, so that the two cannot block each other.
    fn may_read(&self, capacity: usize, byte_budget: usize) -> bool {
        self.queue.len() < 2 * capacity && self.queued_bytes < byte_budget
    }

    /// Whether nothing waits to be fed to the transport.
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.fragmenting.is_none()
    }

    fn push(&mut self, frame: Frame) {
        if !self.close_sent {
            self.queued_bytes += frame.len();
            self.queue.push_back(frame);
        }
    }

    /// Takes the next frame to feed: the queue's head, or the next fragment
    /// of the message being fragmented, taking turns. A queued frame goes
    /// before a fragment only when it would not be fragmented itself and
    /// its key differs from the fragmented message's.
    fn next_frame(&mut self) -> Option<Frame> {
        if let Some(f) = &mut self.fragmenting {
            if std::mem::take(&mut self.queue_turn) {
                let size = self.fragment_size.unwrap_or(usize::MAX);
                if let Some(head) = self.queue.front()
                    && head.payload.len() <= size
                    && fragment_key(&head.header) != f.key
                {
                    let frame = self.queue.pop_front()?;
                    self.queued_bytes -= frame.len();
                    return Some(frame);
                }
            }
            let frame = f.fragments.next()?;
            f.left -= frame.payload.len();
            self.queued_bytes -= frame.payload.len();
            if f.fragments.remaining() == 0 {
                self.fragmenting = None;
            }
            self.queue_turn = true;
            return Some(frame);
        }
        let frame = self.queue.pop_front()?;
        self.queued_bytes -= frame.len();
        match self.fragment_size {
            Some(size)
                if frame.payload.len() > size
                    && frame.header.kind != FrameKind::Control(ControlOp::Close) =>
            {
                let key = fragment_key(&frame.header);
                let total = frame.payload.len();
                let mut fragments = Fragmenter::new(frame.header, frame.payload, size);
                let first = fragments.next()?;
                let left = total - first.payload.len();
                self.queued_bytes += left;
                self.fragmenting = Some(Fragmenting {
                    fragments,
                    left,
                    key,
                });
                self.queue_turn = true;
                Some(first)
            }
            _ => Some(frame),
        }
    }

    /// Feeds every queued frame (up to a close frame) and flushes.
    fn poll_flush_all(
        &mut self,
        cx: &mut std::task::Context<'_>,
        shared: &Shared,
    ) -> Poll<Result<(), TransportError>> {
        let mut fed = 0;
        let r = self.poll_flush_counted(cx, &mut fed);
        if fed > 0 {
            shared.counters.frames_out.fetch_add(fed, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush_counted(
        &mut self,
        cx: &mut std::task::Context<'_>,
        fed: &mut u64,
    ) -> Poll<Result<(), TransportError>> {
        while !self.close_sent && !self.is_idle() {
            ready!(self.tx.as_mut().poll_ready(cx))?;
            let Some(frame) = self.next_frame() else {
                break;
            };
            let close = frame.header.kind == FrameKind::Control(ControlOp::Close);
            self.tx.as_mut().start_send(frame)?;
            self.unflushed = true;
            *fed += 1;
            if close {
                self.close_sent = true;
                self.queue.clear();
                self.fragmenting = None;
                self.queued_bytes = 0;
            }
        }
        if self.unflushed {
            ready!(self.tx.as_mut().poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Moves frames from the outbox to the transport for as long as there are
    /// any. `Ready(Ok)` only once a close frame has been written.
    fn poll_pump(
        &mut self,
        cx: &mut std::task::Context<'_>,
        shared: &Shared,
    ) -> Poll<Result<(), TransportError>> {
        for _ in 0..PUMP_ROUNDS {
            if self.queue.is_empty()
                && !self.close_sent
                && let Poll::Ready(bytes) = shared.out.poll_take(cx, &mut self.queue)
            {
                self.queued_bytes += bytes;
            }
            if self.is_idle() && !self.unflushed {
                if self.close_sent {
                    return Poll::Ready(Ok(()));
                }
                if self.queue.capacity() > KEEP_QUEUE {
                    self.queue = VecDeque::new();
                }
                return Poll::Pending;
            }
            ready!(self.poll_flush_all(cx, shared))?;
            if self.close_sent {
                return Poll::Ready(Ok(()));
            }
        }
        // Senders keep the outbox full: let the task read and others run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The session's end when the pump stopped (close frame out, or failure).
    fn stopped(&mut self, r: Result<(), TransportError>, shared: &Shared) -> CloseReason {
        match r {
            Ok(()) => shared.reason(),
            Err(e) => {
                self.broken = true;
                let reason = transport_reason(&e);
                tracing::warn!(session = shared.id, peer = %shared.info.peer, %reason, "session ends");
                reason
            }
        }
    }
}

/// What handling a received frame left to do.
enum Handled {
    Done,
    End(CloseReason),
    /// A one-way handler that did not finish at once: the task waits for it
    /// (handlers of one session run in arrival order) while still writing.
    OneWay(BoxFuture<'static, Result<(), HandlerError>>),
    /// A request handler that did not finish at once: it gets its own task.
    /// The payload's length counts against the in-flight byte budget.
    Request(
        u64,
        usize,
        BoxFuture<'static, Result<(u32, Bytes), HandlerError>>,
    ),
}

/// Runs a session's connection: one loop over shutdown, the outbound queue,
/// received frames and the keep-alive timer.
async fn run(session: Session, dispatcher: Arc<Dispatcher>) -> CloseReason {
    let shared = session.shared.clone();
    let capacity = shared.out.capacity;
    let write_budget = shared
        .config
        .outbound_bytes
        .saturating_add(shared.config.reply_bytes);
    let writer = || lock(&shared.writer);
    let reader = || lock(&shared.reader);
    let mut inflight: Option<(Arc<Semaphore>, Arc<Semaphore>)> = None;
    let interval = shared.config.keepalive;
    let mut last_rx = Instant::now();
    let mut pinged = false;
    let sleep = tokio::time::sleep(interval.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(sleep);
    let closed = shared.closed.cancelled();
    tokio::pin!(closed);

    // Waits for `fut` while keeping the outbound side going; ends the
    // session's loop when the session ends meanwhile.
    macro_rules! drive {
        ($conn:lifetime, $fut:expr) => {{
            let fut = $fut;
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    biased;
                    () = &mut closed => break $conn shared.reason(),
                    r = poll_fn(|cx| writer().poll_pump(cx, &shared)), if !writer().broken => {
                        break $conn writer().stopped(r, &shared);
                    }
                    out = &mut fut => break out,
                }
            }
        }};
    }

    let reason = 'conn: loop {
        tokio::select! {
            biased;
            () = &mut closed => break shared.reason(),
            r = poll_fn(|cx| writer().poll_pump(cx, &shared)), if !writer().broken => {
                break writer().stopped(r, &shared);
            }
            // Not reading while the write queue is over its budget. The
            // condition is checked on every poll (not once, as a branch
            // precondition would be): when the pump above has written enough
            // in the same poll, reading resumes at once.
            item = poll_fn(|cx| {
                if writer().may_read(capacity, write_budget) {
                    reader().poll_task(cx, true, &shared)
                } else {
                    Poll::Pending
                }
            }) => {
                let mut item = item;
                let mut burst = 0;
                loop {
                    let frame = match item {
                        Some(Ok(frame)) => frame,
                        Some(Err(reason)) => {
                            tracing::warn!(session = shared.id, peer = %shared.info.peer, %reason, "session ends");
                            break 'conn reason;
                        }
                        None => break 'conn CloseReason::new(
                            ClosedBy::Peer,
                            codes::UNAVAILABLE,
                            "connection ended without a close frame",
                        ),
                    };
                    shared.counters.frames_in.fetch_add(1, Ordering::Relaxed);
                    let handled = handle_frame(&session, frame, &dispatcher, &mut writer());
                    match handled {
                        Handled::Done => {}
                        Handled::End(reason) => break 'conn reason,
                        Handled::OneWay(fut) => {
                            if let Err(e) = drive!('conn, fut) {
                                shared.error();
                                tracing::debug!(session = shared.id, error = %e, "one-way handler failed");
                            }
                        }
                        Handled::Request(correlation, len, fut) => {
                            let (limit, bytes) = inflight.get_or_insert_with(|| {
                                let c = &shared.config;
                                (
                                    Arc::new(Semaphore::new(c.max_inflight.max(1))),
                                    Arc::new(Semaphore::new(
                                        c.inflight_bytes.clamp(1, u32::MAX as usize),
                                    )),
                                )
                            });
                            let cost = len.clamp(1, bytes_budget(&shared.config)) as u32;
                            let permits = match (
                                limit.clone().try_acquire_owned(),
                                bytes.clone().try_acquire_many_owned(cost),
                            ) {
                                (Ok(p), Ok(b)) => (p, b),
                                // Beyond max_inflight or the byte budget, stop
                                // reading until handlers end.
                                _ => {
                                    let both = async {
                                        let p = limit.clone().acquire_owned().await?;
                                        let b = bytes.clone().acquire_many_owned(cost).await?;
                                        Ok::<_, tokio::sync::AcquireError>((p, b))
                                    };
                                    match drive!('conn, both) {
                                        Ok(p) => p,
                                        Err(_) => break 'conn shared.reason(),
                                    }
                                }
                            };
                            let session = session.clone();
                            tokio::spawn(async move {
                                let frame = reply_frame(&session.shared, correlation, fut.await);
                                let _ = session.enqueue(frame).await;
                                drop(permits);
                            });
                        }
                    }
                    // The first reply of a burst leaves at once, before looking
                    // for more frames (a request alone on the connection should
                    // not wait for a read that finds nothing); the rest of a
                    // burst's replies leave together.
                    if burst == 0 && !writer().is_idle() {
                        let flushed = poll_fn(|cx| Poll::Ready(writer().poll_flush_all(cx, &shared))).await;
                        if let Poll::Ready(Err(e)) = flushed {
                            break 'conn writer().stopped(Err(e), &shared);
                        }
                        if writer().close_sent {
                            break 'conn shared.reason();
                        }
                    }
                    burst += 1;
                    if burst == READ_BURST || !writer().may_read(capacity, write_budget) {
                        break;
                    }
                    let mut probe = std::task::Context::from_waker(Waker::noop());
                    match reader().poll_task(&mut probe, false, &shared) {
                        Poll::Ready(next) => item = next,
                        Poll::Pending => break,
                    }
                }
                last_rx = Instant::now();
                pinged = false;
                shared.counters.last_activity_ms.store(
                    (last_rx - shared.started).as_millis() as u64,
                    Ordering::Relaxed,
                );
            }
            () = &mut sleep, if interval.is_some() => {
                let iv = interval.unwrap_or_default();
                // A request reading its own reply (see `Lend`) records what it
                // received there: it is a sign of life too.
                let seen = shared.started
                    + Duration::from_millis(shared.counters.last_activity_ms.load(Ordering::Relaxed));
                if seen > last_rx {
                    last_rx = seen;
                    pinged = false;
                }
                let idle = last_rx.elapsed();
                if idle >= iv * 3 / 2 {
                    let reason = CloseReason::new(
                        ClosedBy::Error,
                        codes::DEADLINE_EXCEEDED,
                        format!("keep-alive expired: nothing received for {idle:?} (interval {iv:?})"),
                    );
                    tracing::warn!(session = shared.id, peer = %shared.info.peer, %reason, "session ends");
                    break reason;
                }
                if idle >= iv && !pinged {
                    pinged = true;
                    let mut w = writer();
                    if w.queue.len() < capacity {
                        w.push(Frame::new(FrameHeader::control(ControlOp::Ping), Bytes::new()));
                    }
                }
                let next = if idle >= iv { last_rx + iv * 3 / 2 } else { last_rx + iv };
                sleep.as_mut().reset(next);
            }
        }
    };
    shared.finish(reason);
    // The receiving half ends with the task (a request reading it gives up).
    {
        let mut r = reader();
        r.rx = None;
        r.handoff.clear();
        r.task = None;
    }
    // Take the transport out of the session, so that its end can be awaited.
    let mut w = std::mem::replace(&mut *writer(), Writer::ended());
    if !w.broken {
        // Write what is already queued (the close frame among it), bounded in
        // time so that a peer that stopped reading cannot hold the task.
        let _ = tokio::time::timeout(shared.config.close_timeout, async {
            if let Poll::Ready(bytes) = shared.out.take(&mut w.queue) {
                w.queued_bytes += bytes;
            }
            if poll_fn(|cx| w.poll_flush_all(cx, &shared)).await.is_ok() {
                let _ = w.tx.close().await;
            }
        })
        .await;
    }
    shared.reason()
}

/// The in-flight byte budget as semaphore permits.
fn bytes_budget(config: &SessionConfig) -> usize {
    config.inflight_bytes.clamp(1, u32::MAX as usize)
}

fn reply_frame(
    shared: &Shared,
    correlation: u64,
    result: Result<(u32, Bytes), HandlerError>,
) -> Frame {
    match result {
        Ok((type_id, payload)) => Frame::new(FrameHeader::response(type_id, correlation), payload),
        Err(e) => {
            shared.error();
            error_frame(correlation, e.code, &e.message)
        }
    }
}

/// Handles one received frame. Handlers run right here, in the connection's
/// task: most finish on their first poll, and a request's reply then goes
/// straight to the write queue, without another task or queue in between.
fn handle_frame(
    session: &Session,
    frame: Frame,
    dispatcher: &Dispatcher,
    w: &mut Writer,
) -> Handled {
    let shared = &session.shared;
    let h = frame.header;
    let refused = |id: u32| shared.refused.iter().find(|(r, _)| *r == id).map(|e| e.1);
    match h.kind {
        FrameKind::OneWay => {
            if let Some(name) = refused(h.type_id) {
                shared.error();
                tracing::debug!(
                    session = shared.id,
                    message = name,
                    "dropped one-way message with mismatched fingerprint"
                );
                return Handled::Done;
            }
            let ctx = Context::new(session.clone(), None);
            match dispatcher.one_way(ctx, h.type_id, frame.payload) {
                Some(mut fut) => match (&mut fut).now_or_never() {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        shared.error();
                        tracing::debug!(session = shared.id, type_id = h.type_id, error = %e, "one-way handler failed");
                    }
                    None => return Handled::OneWay(fut),
                },
                None => {
                    shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        FrameKind::Request => {
            let correlation = h.correlation;
            if let Some(name) = refused(h.type_id) {
                shared.error();
                let msg = format!(
                    "message {name} (type id {}) refused: its definition differs on the two sides (fingerprint mismatch)",
                    h.type_id
                );
                w.push(error_frame(correlation, codes::FINGERPRINT_MISMATCH, &msg));
                return Handled::Done;
            }
            let ctx = Context::new(session.clone(), Some(correlation));
            let len = frame.payload.len();
            let Some(mut fut) = dispatcher.request(ctx, h.type_id, frame.payload) else {
                shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
                let msg = format!("unknown message type id {} for a request", h.type_id);
                w.push(error_frame(correlation, codes::UNKNOWN_TYPE, &msg));
                return Handled::Done;
            };
            match (&mut fut).now_or_never() {
                Some(result) => w.push(reply_frame(shared, correlation, result)),
                None => return Handled::Request(correlation, len, fut),
            }
        }
        FrameKind::Response | FrameKind::Error => {
            let waiter = lock(&shared.pending).remove(&h.correlation);
            match waiter {
                Some(tx) => {
                    if tx.send(frame).is_err() {
                        shared.counters.late.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    shared.counters.late.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        session = shared.id,
                        correlation = h.correlation,
                        "dropped late or unexpected reply"
                    );
                }
            }
        }
        FrameKind::Control(ControlOp::Ping) => {
            // Never echo much, and never keep a slice of the receive buffer
            // (it would pin the whole buffer while the pong waits).
            let echo = if frame.payload.len() <= MAX_PING_ECHO {
                Bytes::copy_from_slice(&frame.payload)
            } else {
                Bytes::new()
            };
            w.push(Frame::new(FrameHeader::control(ControlOp::Pong), echo));
        }
        FrameKind::Control(ControlOp::Pong) | FrameKind::Ack | FrameKind::Cancel => {}
        FrameKind::Control(ControlOp::Close) => {
            let reason = match ErrorBody::decode(&frame.payload) {
                Ok(b) => CloseReason::new(ClosedBy::Peer, b.code, b.message),
                Err(e) => CloseReason::new(
                    ClosedBy::Peer,
                    codes::UNSPECIFIED,
                    format!("close frame with a malformed reason: {e}"),
                ),
            };
            return Handled::End(reason);
        }
        FrameKind::Control(_) => {
            return Handled::End(CloseReason::new(
                ClosedBy::Error,
                codes::MALFORMED,
                format!("unexpected {} frame after the handshake", h.kind.name()),
            ));
        }
        _ => {
            shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
        }
    }
    Handled::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::{MessageDescriptor, MessageKind};
    use crate::transport::Transport;
    use crate::wire::Reader;
    use std::sync::atomic::AtomicUsize;

    macro_rules! empty_message {
        ($t:ident, $id:expr) => {
            #[derive(Debug, Clone, Default, PartialEq)]
            struct $t;
            impl crate::Message for $t {
                const NAME: &'static str = concat!("test.", stringify!($t));
                fn encoded_len(&self) -> usize {
                    0
                }
                fn validate(&self) -> Result<(), EncodeError> {
                    Ok(())
                }
                fn encode_raw<B: bytes::BufMut + ?Sized>(&self, _: &mut B) {}
                fn decode_reader(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
                    Ok($t)
                }
            }
            impl TopLevel for $t {
                const TYPE_ID: u32 = $id;
                fn fingerprint() -> u64 {
                    0
                }
                fn descriptor() -> &'static MessageDescriptor {
                    static D: MessageDescriptor = MessageDescriptor {
                        name: stringify!($t),
                        package: "test",
                        full_name: concat!("test.", stringify!($t)),
                        kind: MessageKind::Message,
                        id: Some($id),
                        fields: &[],
                        docs: "",
                        fingerprint: 0,
                    };
                    &D
                }
            }
        };
    }
    empty_message!(Note, 1);
    empty_message!(Ask, 2);
    empty_message!(Answer, 3);
    empty_message!(Slow, 4);

    /// A session over an in-memory pipe whose other end is driven by hand:
    /// it answers `Ask` with three `Note`s and a ping before the `Answer`,
    /// pings with pongs, and never answers `Slow`. Returns the session, the
    /// count of `Note`s dispatched, the pongs the peer received, and a
    /// sender of extra frames for the peer to write.
    fn session_with_peer(
        keepalive: Option<Duration>,
    ) -> (
        Session,
        Arc<AtomicUsize>,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedSender<Frame>,
    ) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (rx, tx, info) = Transport::from_io(a, "mem", "peer".into(), None).split();
        let (mut prx, mut ptx, _) = Transport::from_io(b, "mem", "local".into(), None).split();
        let notes = Arc::new(AtomicUsize::new(0));
        let n = notes.clone();
        let dispatcher = Dispatcher::new().on::<Note, _, _>(move |_ctx, _note| {
            let n = n.clone();
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
        let config = SessionConfig {
            keepalive,
            ..SessionConfig::default()
        };
        let est = Established {
            id: 1,
            device_id: "dev".into(),
            refused: Vec::new(),
            config: Arc::new(config),
        };
        let (session, run) = start(est, rx, tx, info, Arc::new(dispatcher), |_| {});
        tokio::spawn(run);
        let pongs = Arc::new(AtomicUsize::new(0));
        let p = pongs.clone();
        let (extra, mut extra_rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    f = prx.next() => match f {
                        Some(Ok(f)) => f,
                        _ => break,
                    },
                    Some(f) = extra_rx.recv() => {
                        if ptx.send(f).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let h = frame.header;
                let mut out = Vec::new();
                match h.kind {
                    FrameKind::Request if h.type_id == Ask::TYPE_ID => {
                        out.push(Frame::new(
                            FrameHeader::one_way(Note::TYPE_ID),
                            Bytes::new(),
                        ));
                        out.push(Frame::new(
                            FrameHeader::control(ControlOp::Ping),
                            Bytes::new(),
                        ));
                        out.push(Frame::new(
                            FrameHeader::one_way(Note::TYPE_ID),
                            Bytes::new(),
                        ));
                        out.push(Frame::new(
                            FrameHeader::one_way(Note::TYPE_ID),
                            Bytes::new(),
                        ));
                        out.push(Frame::new(
                            FrameHeader::response(Answer::TYPE_ID, h.correlation),
                            Bytes::new(),
                        ));
                    }
                    FrameKind::Request if h.type_id == Answer::TYPE_ID => {
                        out.push(Frame::new(
                            FrameHeader::response(Answer::TYPE_ID, h.correlation),
                            Bytes::new(),
                        ));
                    }
                    FrameKind::Control(ControlOp::Ping) => {
                        out.push(Frame::new(
                            FrameHeader::control(ControlOp::Pong),
                            Bytes::new(),
                        ));
                    }
                    FrameKind::Control(ControlOp::Pong) => {
                        p.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                for f in out {
                    if ptx.send(f).await.is_err() {
                        return;
                    }
                }
            }
        });
        (session, notes, pongs, extra)
    }

    fn sized(h: FrameHeader, n: usize) -> Frame {
        Frame::new(h, Bytes::from(vec![0u8; n]))
    }

    #[test]
    fn the_outbox_counts_bytes_exactly() {
        let out = Outbox::new(4, 100);
        // Frames of 30 bytes: a one-byte header and 29 of payload.
        let f = || sized(FrameHeader::one_way(1), 29);
        assert_eq!(f().len(), 30);
        for _ in 0..3 {
            assert!(out.try_send(f()).is_ok());
        }
        // 90 bytes taken; a fourth would make 120 of 100.
        assert!(matches!(out.try_send(f()), Err(TryPush::Full)));
        // A frame of exactly the 10 bytes left fits.
        assert!(out.try_send(sized(FrameHeader::one_way(1), 9)).is_ok());
        assert!(matches!(
            out.try_send(sized(FrameHeader::one_way(1), 0)),
            Err(TryPush::Full)
        ));
        let mut q = VecDeque::new();
        assert_eq!(out.take(&mut q), Poll::Ready(100));
        assert_eq!(q.len(), 4);
        assert_eq!(out.bytes.available_permits(), 100);
        assert_eq!(out.room.available_permits(), 4);
        // One frame larger than the whole budget passes when the queue is
        // empty, and then nothing else does.
        assert!(out.try_send(sized(FrameHeader::one_way(1), 5000)).is_ok());
        assert!(matches!(
            out.try_send(sized(FrameHeader::one_way(1), 0)),
            Err(TryPush::Full)
        ));
        q.clear();
        assert_eq!(out.take(&mut q), Poll::Ready(5001));
        assert_eq!(out.bytes.available_permits(), 100);
        // Frames pushed without room never raise the budget above its size.
        out.push(sized(FrameHeader::control(ControlOp::Close), 10));
        assert_eq!(out.take(&mut q), Poll::Ready(11));
        assert_eq!(out.bytes.available_permits(), 100);
        assert_eq!(out.room.available_permits(), 4);
        out.close();
        assert!(matches!(out.try_send(f()), Err(TryPush::Closed)));
    }

    fn writer(fragment_size: Option<usize>) -> Writer {
        let sink = futures_util::sink::drain().sink_map_err(|never| match never {});
        let config = SessionConfig {
            fragment_size,
            ..SessionConfig::default()
        };
        Writer::new(Box::pin(sink), &config)
    }

    #[test]
    fn the_write_queue_stops_reading_at_its_byte_budget() {
        let mut w = writer(None);
        w.push(sized(FrameHeader::one_way(1), 98));
        assert_eq!(w.queued_bytes, 99);
        assert!(w.may_read(10, 100));
        w.push(sized(FrameHeader::one_way(1), 0));
        assert_eq!(w.queued_bytes, 100);
        assert!(!w.may_read(10, 100));
        assert!(w.may_read(10, 101));
        // The frame count stays a limit beside the bytes.
        assert!(!w.may_read(1, 1000));
        w.next_frame();
        assert_eq!(w.queued_bytes, 1);
        assert!(w.may_read(10, 100));
    }

    #[test]
    fn fragments_take_turns_with_frames_of_other_keys() {
        let mut w = writer(Some(4));
        let big = FrameHeader::one_way(1);
        w.push(sized(big, 10));
        w.push(sized(FrameHeader::one_way(2), 2));
        w.push(sized(FrameHeader::one_way(1), 2)); // same key: waits
        w.push(sized(FrameHeader::one_way(3), 2));
        assert_eq!(w.queued_bytes, 11 + 3 * 3);
        let mut order = Vec::new();
        while let Some(f) = w.next_frame() {
            order.push((f.header.type_id, f.header.more, f.payload.len()));
        }
        assert_eq!(
            order,
            vec![
                (1, true, 4),
                (2, false, 2),
                (1, true, 4),
                (1, false, 2),
                (1, false, 2),
                (3, false, 2),
            ]
        );
        assert_eq!(w.queued_bytes, 0);
        assert!(w.is_idle());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_before_a_lone_requests_reply_are_dispatched_before_it_in_order() {
        let (session, notes, pongs, _extra) = session_with_peer(None);
        for round in 1..=50 {
            // Alone on an idle connection: the request reads from the
            // transport itself; the notes and the ping that precede its reply
            // are handled by the connection task before the reply returns.
            let _: Answer = session.request(&Ask).await.expect("reply");
            assert_eq!(notes.load(Ordering::SeqCst), 3 * round);
            assert_eq!(session.stats().frames_in, 5 * round as u64);
        }
        // Every ping was answered.
        for _ in 0..200 {
            if pongs.load(Ordering::SeqCst) == 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pongs.load(Ordering::SeqCst), 50);
        assert_eq!(session.stats().pending_requests, 0);
        assert!(!session.is_closed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_request_that_times_out_gives_the_transport_back() {
        let (session, notes, _pongs, extra) = session_with_peer(None);
        let r = session
            .request_with_timeout::<Answer, _>(&Slow, Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(RequestError::Timeout { .. })), "{r:?}");
        // The connection task reads again: a one-way message from the peer is
        // dispatched with no request outstanding.
        extra
            .send(Frame::new(
                FrameHeader::one_way(Note::TYPE_ID),
                Bytes::new(),
            ))
            .unwrap();
        for _ in 0..400 {
            if notes.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(notes.load(Ordering::SeqCst), 1);
        // A late reply to the timed-out request is dropped and counted.
        extra
            .send(Frame::new(
                FrameHeader::response(Answer::TYPE_ID, 1),
                Bytes::new(),
            ))
            .unwrap();
        let _: Answer = session.request(&Answer).await.expect("reply");
        for _ in 0..400 {
            if session.stats().late_replies == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(session.stats().late_replies, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_read_by_lone_requests_keep_the_session_alive() {
        let (session, _notes, _pongs, _extra) = session_with_peer(Some(Duration::from_millis(100)));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(500) {
            let _: Answer = session.request(&Answer).await.expect("reply");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!session.is_closed(), "{:?}", session.close_reason());
    }
}
