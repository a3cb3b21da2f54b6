//! The session handle: identity, properties, statistics, send, request, close.

use std::any::TypeId;
use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use futures_util::{FutureExt, Sink};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::conn::transport_reason;
use super::lend::Lend;
use super::outbox::{Item, ItemError, TryPush};
use super::{CloseReason, ClosedBy, FrameRun, RequestError, SendError, Shared, codes, lock};
use crate::TopLevel;
use crate::wire::batch::batched_len;
use crate::wire::{ControlOp, EncodeError, ErrorBody, Frame, FrameHeader, FrameKind};

/// A typed key for a session property: `const ROLE: Key<Role> = Key::new("role");`.
///
/// Two keys are the same when they have the same name and value type.
pub struct Key<T> {
    pub(super) name: &'static str,
    pub(super) _type: PhantomData<fn() -> T>,
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
    /// Messages and publications the server's filters refused (server side).
    pub filtered: u64,
}

/// A handle to an established session; clone it freely.
#[derive(Clone)]
pub struct Session {
    pub(super) shared: Arc<Shared>,
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

pub(super) fn close_frame(reason: &CloseReason) -> Frame {
    let body = ErrorBody {
        code: reason.code,
        message: &reason.message,
    };
    let mut buf = BytesMut::with_capacity(body.encoded_len());
    body.encode(&mut buf);
    Frame::new(FrameHeader::control(ControlOp::Close), buf.freeze())
}

/// An error response (wire format §2.4) to exchange `correlation`.
pub(crate) fn error_frame(correlation: u64, code: u64, message: &str) -> Frame {
    let body = ErrorBody { code, message };
    let mut buf = BytesMut::with_capacity(body.encoded_len());
    body.encode(&mut buf);
    Frame::new(FrameHeader::error(correlation), buf.freeze())
}

/// What the pub/sub layer (`crate::pubsub`) needs of a session.
impl Session {
    pub(crate) fn pubsub(&self) -> &crate::pubsub::local::Local {
        &self.shared.pubsub
    }

    /// The largest frame payload the session sends.
    pub(crate) fn max_payload(&self) -> usize {
        let c = &self.shared.config;
        match c.fragment_size {
            Some(_) => c.max_message,
            None => c.max_frame.saturating_sub(1),
        }
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        self.shared.config.request_timeout
    }
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
            filtered: s.pubsub.filtered.load(Ordering::Relaxed),
        }
    }

    /// Whether the session has ended (or is closing).
    pub fn is_closed(&self) -> bool {
        self.shared.has_ended() || self.shared.closing.load(Ordering::Relaxed)
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

    pub(super) fn closed_error(&self) -> SendError {
        SendError::Closed {
            session: self.shared.id,
            reason: self.shared.reason(),
        }
    }

    /// The services the peer announced in the handshake, in order.
    pub fn peer_services(&self) -> &[super::PeerService] {
        &self.shared.calls.peer
    }

    /// Whether this side opened the connection.
    pub fn is_initiator(&self) -> bool {
        self.shared.initiator
    }

    pub(crate) fn next_correlation(&self) -> u64 {
        self.shared.correlation()
    }

    pub(crate) fn is_own(&self, correlation: u64) -> bool {
        self.shared.is_own(correlation)
    }

    pub(crate) fn calls(&self) -> &super::CallTable {
        &self.shared.calls
    }

    pub(crate) fn config(&self) -> &super::SessionConfig {
        &self.shared.config
    }

    /// Queues a small frame the runtime must get out (a credit, a cancel, a
    /// stream end) without waiting for room.
    /// The session that carries this one's reliable state now: this one,
    /// or the one that resumed it.
    pub(crate) fn current(&self) -> Session {
        self.shared
            .link
            .as_ref()
            .and_then(|l| l.session())
            .unwrap_or_else(|| self.clone())
    }

    /// Whether the peer ended the session with a close frame (rather than
    /// the connection breaking).
    pub(crate) fn peer_closed(&self) -> bool {
        self.shared.peer_closed.load(Ordering::Relaxed)
    }

    /// A copy of the session's properties (for the session that resumes it).
    pub(crate) fn props(&self) -> super::Props {
        lock(&self.shared.props).clone()
    }

    /// Takes over the properties of the session this one resumes (those
    /// set on this one already stay).
    pub(crate) fn restore_props(&self, props: super::Props) {
        let mut mine = lock(&self.shared.props);
        for (k, v) in props {
            mine.entry(k).or_insert(v);
        }
    }

    /// The reliable state, when the handshake agreed on one.
    pub(crate) fn link(&self) -> Option<&Arc<super::Link>> {
        self.shared.link.as_ref()
    }

    /// Statistics of the reliable state (`None` when the session has none:
    /// the client did not ask to resume, see `ClientBuilder::resume`).
    pub fn link_stats(&self) -> Option<super::LinkStats> {
        self.shared.link.as_ref().map(|l| l.stats())
    }

    pub(crate) fn push_frame(&self, frame: Frame) {
        if !self.is_closed() {
            self.shared.out.push(frame);
        }
    }

    pub(crate) fn push_cancel(&self, correlation: u64) {
        self.shared.push_cancel(correlation);
    }

    /// Counts a failed handler or a dropped frame.
    pub(crate) fn count_error(&self) {
        self.shared.error();
    }

    /// Waits for the reply to an exchange whose frames were sent otherwise
    /// (a client-streaming call); see [`Session::exchange`].
    pub(crate) fn pend(&self, correlation: u64) -> Pending {
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pending).insert(correlation, tx);
        Pending {
            session: self.clone(),
            correlation,
            rx,
            answered: false,
        }
    }

    pub(crate) fn encode<M: TopLevel>(
        &self,
        header: FrameHeader,
        msg: &M,
    ) -> Result<Frame, SendError> {
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
        // A `Vec`: its writes are inlined, where `BytesMut` makes a call
        // for every byte of a varint. Of exactly the encoded length, it
        // becomes `Bytes` without another allocation.
        let mut buf = Vec::with_capacity(len);
        msg.encode(&mut buf).map_err(err)?;
        Ok(Frame::new(header, buf))
    }

    /// Queues an item of the stream `correlation` (wire format §2.7) if
    /// there is room now; `Ok(false)` when it must wait (then
    /// [`Session::send_item`] queues it). Small items are encoded straight
    /// into a batch with the items of the same stream queued just before
    /// them. `len` is the item's encoded length.
    pub(crate) fn try_send_item<M: TopLevel>(
        &self,
        correlation: u64,
        msg: &M,
        len: usize,
    ) -> Result<bool, SendError> {
        let max_batch = self.max_batch();
        if batched_len(len) > max_batch / 4 {
            return Ok(false);
        }
        self.check_item::<M>()?;
        let mut item = self.item(correlation, msg, len);
        match self
            .shared
            .out
            .try_send_item(&mut item, max_batch, &mut None)
        {
            Ok(()) => Ok(true),
            Err(ItemError::Wait(_)) => Ok(false),
            Err(e) => Err(self.item_error::<M>(e)),
        }
    }

    /// Queues the longest prefix of `msgs` (with their encoded lengths
    /// `lens`) of the stream `correlation` that has room now, as
    /// [`Session::try_send_item`] queues each, under one lock of the
    /// outbound queue: gives how many were queued. It stops early at an
    /// item too large to batch (for [`Session::send_item`]).
    pub(crate) fn try_send_items<M: TopLevel>(
        &self,
        correlation: u64,
        msgs: &[&M],
        lens: &[usize],
    ) -> Result<usize, SendError> {
        let max_batch = self.max_batch();
        let count = lens
            .iter()
            .take(msgs.len())
            .take_while(|&&len| batched_len(len) <= max_batch / 4)
            .count();
        if count == 0 {
            return Ok(0);
        }
        self.check_item::<M>()?;
        let (sent, stop) = self.shared.out.try_send_items(count, max_batch, |i| {
            self.item(correlation, msgs[i], lens[i])
        });
        match stop {
            None | Some(ItemError::Wait(_)) => Ok(sent),
            Some(e) if sent == 0 => Err(self.item_error::<M>(e)),
            // The items before the one that failed are queued: report them;
            // the failing one fails again on its own.
            Some(_) => Ok(sent),
        }
    }

    /// Queues an item of the stream `correlation`, waiting for room: small
    /// items as [`Session::try_send_item`] does, a larger one in a frame of
    /// its own.
    pub(crate) async fn send_item<M: TopLevel>(
        &self,
        correlation: u64,
        msg: &M,
        len: usize,
    ) -> Result<(), SendError> {
        let max_batch = self.max_batch();
        if batched_len(len) > max_batch / 4 {
            let frame = self.encode(FrameHeader::stream_item(M::TYPE_ID, correlation), msg)?;
            return self.enqueue(frame).await;
        }
        self.check_item::<M>()?;
        let item = self.item(correlation, msg, len);
        self.shared
            .out
            .send_item(item, max_batch)
            .await
            .map_err(|e| self.item_error::<M>(e))
    }

    fn check_item<M: TopLevel>(&self) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        if let Some(&(type_id, name)) = self.shared.refused.iter().find(|(id, _)| *id == M::TYPE_ID)
        {
            return Err(SendError::FingerprintMismatch {
                session: self.shared.id,
                type_id,
                name,
            });
        }
        Ok(())
    }

    fn item<'a, M: TopLevel>(
        &self,
        correlation: u64,
        msg: &'a M,
        len: usize,
    ) -> Item<impl FnMut(&mut Vec<u8>) -> Result<(), EncodeError> + use<'a, M>> {
        Item {
            type_id: M::TYPE_ID,
            correlation,
            len,
            encode: move |buf: &mut Vec<u8>| msg.encode(buf),
        }
    }

    fn item_error<M: TopLevel>(&self, e: ItemError) -> SendError {
        match e {
            ItemError::Encode(source) => SendError::Encode {
                message: M::NAME,
                source,
            },
            ItemError::Closed | ItemError::Wait(_) => self.closed_error(),
        }
    }

    fn max_batch(&self) -> usize {
        self.shared.max_batch
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

    /// Sends a one-way message with the given guarantee. The handle resolves
    /// when the peer acknowledged the message ([`Delivery::AtLeastOnce`](super::Delivery::AtLeastOnce):
    /// kept, and written again on the session that resumes this one, until
    /// then; the peer's handler sees it once), or at once for
    /// [`Delivery::AtMostOnce`](super::Delivery::AtMostOnce) (then it is [`Session::send`]).
    ///
    /// At least once waits for room in the budget of unacknowledged bytes
    /// (`unacked_bytes`), not in the outbound queue; it works on a session
    /// that has ended as long as its reliable state lives on.
    pub async fn send_with<M: TopLevel>(
        &self,
        msg: &M,
        delivery: super::Delivery,
    ) -> Result<super::Delivered, SendError> {
        let frame = self.encode(FrameHeader::one_way(M::TYPE_ID), msg)?;
        self.send_frame_with(frame, delivery).await
    }

    /// [`Session::send_with`] at least once, with a time-to-live, a
    /// priority or "latest value wins" coalescing ([`SendOptions`](super::SendOptions)).
    pub async fn send_with_options<M: TopLevel>(
        &self,
        msg: &M,
        options: &super::SendOptions,
    ) -> Result<super::Delivered, SendError> {
        let frame = self.encode(FrameHeader::one_way(M::TYPE_ID), msg)?;
        self.send_reliably(frame, options).await
    }

    /// [`Session::send_with`] for an already encoded frame.
    pub async fn send_frame_with(
        &self,
        frame: Frame,
        delivery: super::Delivery,
    ) -> Result<super::Delivered, SendError> {
        match delivery {
            super::Delivery::AtMostOnce => {
                self.enqueue(frame).await?;
                Ok(super::Delivered::ready())
            }
            _ => self.send_reliably(frame, &super::SendOptions::new()).await,
        }
    }

    async fn send_reliably(
        &self,
        frame: Frame,
        options: &super::SendOptions,
    ) -> Result<super::Delivered, SendError> {
        let session = self.shared.id;
        let link = self.link().ok_or(SendError::Unreliable { session })?;
        link.send(frame, options).await.map_err(|e| match e {
            super::DeliveryError::Lost { reason } => SendError::Lost { session, reason },
            other => SendError::Outbox {
                session,
                source: other,
            },
        })
    }

    /// Queues an already encoded frame, waiting for room.
    pub async fn send_frame(&self, frame: Frame) -> Result<(), SendError> {
        self.enqueue(frame).await
    }

    pub(crate) async fn enqueue(&self, frame: Frame) -> Result<(), SendError> {
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

    /// Queues the longest prefix of the run's frames the outbound queue
    /// has room for, with one wake of the connection task; gives how many.
    /// Copied already encoded when the transport takes encoded frames and
    /// none of them is larger than it writes or than the session
    /// fragments; each a reference to the shared frame otherwise.
    pub(crate) fn try_enqueue_run(&self, run: &FrameRun) -> Result<usize, SendError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        let out = &self.shared.out;
        match run.encoded(self.shared.encoded_max) {
            Some((bytes, ends)) => out.try_send_encoded(bytes, ends, run.lens()),
            None => out.try_send_many(run.frames(), run.lens()),
        }
        .map_err(|_| self.closed_error())
    }

    /// Waits until the outbound queue has room for a frame of `len` bytes,
    /// without queueing anything (another sender may take the room first).
    /// `Err` when the session has ended.
    pub(crate) async fn writable(&self, len: usize) -> Result<(), SendError> {
        if self.is_closed() {
            return Err(self.closed_error());
        }
        self.shared
            .out
            .ready(len)
            .await
            .map_err(|()| self.closed_error())
    }

    /// Writes a frame straight to the transport, from the caller's task, when
    /// nothing else is queued or being written (so that order is kept); gives
    /// the frame back otherwise. Saves a request sent on an idle connection
    /// the trip through the connection task.
    pub(super) fn write_direct(&self, frame: Frame) -> Result<(), Frame> {
        let shared = &self.shared;
        let Ok(mut w) = shared.writer.try_lock() else {
            return Err(frame);
        };
        if w.broken
            || w.close_sent
            || w.unflushed
            || !w.is_idle()
            || w.fragment_size.is_some_and(|n| frame.payload.len() > n)
            || !shared.out.is_empty()
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
    /// [`SessionConfig::request_timeout`](super::SessionConfig::request_timeout).
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
        let correlation = self.shared.correlation();
        let frame = self.encode(FrameHeader::request(Q::TYPE_ID, correlation), msg)?;
        let reply = match self.exchange(frame, Some(deadline)).await {
            Ok(reply) => reply,
            Err(Exchange::Send(e)) => return Err(e.into()),
            Err(Exchange::Disconnected(reason)) => {
                return Err(RequestError::Disconnected {
                    request: Q::NAME,
                    reason,
                });
            }
            Err(Exchange::Timeout) => {
                return Err(RequestError::Timeout {
                    request: Q::NAME,
                    after: timeout,
                });
            }
        };
        Self::reply::<R, Q>(reply)
    }

    /// Sends a request with the given guarantee and waits for the reply,
    /// within the configured request timeout. With
    /// [`Delivery::AtLeastOnce`](super::Delivery::AtLeastOnce) the request
    /// and its reply are both sent at least once through the reliable
    /// state, and each side drops duplicates: the handler runs **once**,
    /// even when the connection breaks and the session is resumed in
    /// between, and its reply reaches this caller on whichever session is
    /// current then.
    pub async fn request_with<R: TopLevel, Q: TopLevel>(
        &self,
        msg: &Q,
        delivery: super::Delivery,
    ) -> Result<R, RequestError> {
        let timeout = self.shared.config.request_timeout;
        if delivery == super::Delivery::AtMostOnce {
            return self.request_with_timeout(msg, timeout).await;
        }
        let session = self.shared.id;
        let link = self.link().ok_or(SendError::Unreliable { session })?;
        let correlation = link.correlation();
        let frame = self.encode(FrameHeader::request(Q::TYPE_ID, correlation), msg)?;
        let reply = link
            .exchange(frame, Instant::now() + timeout)
            .await
            .map_err(|e| match e {
                None => RequestError::Timeout {
                    request: Q::NAME,
                    after: timeout,
                },
                Some(reason) => RequestError::Send(SendError::Lost { session, reason }),
            })?;
        Self::reply::<R, Q>(reply)
    }

    /// Decodes the reply to request `Q`.
    fn reply<R: TopLevel, Q: TopLevel>(reply: Frame) -> Result<R, RequestError> {
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

    /// Sends `frame` (a request or a call, whose correlation id came from
    /// [`Session::next_correlation`]) and waits for its reply until
    /// `deadline`. A caller that gives up (deadline, or its future dropped)
    /// sends a cancel, so that the peer stops working on it.
    pub(crate) async fn exchange(
        &self,
        frame: Frame,
        deadline: Option<Instant>,
    ) -> Result<Frame, Exchange> {
        let shared = &self.shared;
        let correlation = frame.header.correlation;
        let (tx, rx) = oneshot::channel();
        let alone = {
            let mut pending = lock(&shared.pending);
            pending.insert(correlation, tx);
            pending.len() == 1
        };
        // Removes the entry however this future ends (reply, timeout, drop), so
        // that a late reply finds nothing and is dropped, never misrouted:
        // correlation ids are never reused on a session.
        let mut guard = PendingGuard {
            shared,
            correlation,
            answered: false,
        };
        if shared.has_ended() {
            guard.answered = true;
            return Err(Exchange::Disconnected(shared.reason()));
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
                self.enqueue(frame).await.map_err(Exchange::Send)?;
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
                    return Poll::Ready(r.map_err(|_| Exchange::Disconnected(shared.reason())));
                }
                lend.poll_reply(cx).map(Ok)
            })
            .await
        };
        let result = match deadline {
            Some(deadline) => match tokio::time::timeout_at(deadline, exchange).await {
                Ok(r) => r,
                Err(_) => Err(Exchange::Timeout),
            },
            None => exchange.await,
        };
        // Answered, or failed without anything for the peer to stop.
        guard.answered = matches!(
            result,
            Ok(_) | Err(Exchange::Disconnected(_) | Exchange::Send(_))
        );
        result
    }

    /// Closes the session gracefully: frames already queued are written, then
    /// a `close` frame with `reason` (code 0), then the connection ends.
    pub async fn close(&self, reason: impl Into<String>) {
        self.close_with(codes::UNSPECIFIED, reason).await;
    }

    /// [`Session::close`] with an error code (wire format §2.4).
    pub async fn close_with(&self, code: u64, reason: impl Into<String>) {
        let shared = &self.shared;
        if shared.closing.swap(true, Ordering::AcqRel) || shared.has_ended() {
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
            shared.end();
        }
        let _ =
            tokio::time::timeout(shared.config.close_timeout * 2, shared.closed.cancelled()).await;
        shared.end();
    }
}

/// A reply being waited for (see [`Session::pend`]); dropped unanswered,
/// it cancels the exchange at the peer.
pub(crate) struct Pending {
    session: Session,
    correlation: u64,
    rx: oneshot::Receiver<Frame>,
    answered: bool,
}

impl Pending {
    /// The reply, until `deadline`.
    pub(crate) async fn wait(&mut self, deadline: Option<Instant>) -> Result<Frame, Exchange> {
        let shared = &self.session.shared;
        let rx = &mut self.rx;
        let r = match deadline {
            Some(d) => match tokio::time::timeout_at(d, rx).await {
                Ok(r) => r.map_err(|_| Exchange::Disconnected(shared.reason())),
                Err(_) => Err(Exchange::Timeout),
            },
            None => rx
                .await
                .map_err(|_| Exchange::Disconnected(shared.reason())),
        };
        self.answered = !matches!(r, Err(Exchange::Timeout));
        r
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let waiting = lock(&self.session.shared.pending).remove(&self.correlation);
        if !self.answered && waiting.is_some() {
            self.session.shared.push_cancel(self.correlation);
        }
    }
}

/// Why an exchange got no reply.
pub(crate) enum Exchange {
    /// The frame could not be queued.
    Send(SendError),
    /// The session ended first.
    Disconnected(CloseReason),
    /// The deadline passed first.
    Timeout,
}

pub(super) struct PendingGuard<'a> {
    pub(super) shared: &'a Shared,
    pub(super) correlation: u64,
    /// Whether the exchange ended without leaving the peer work to stop.
    pub(super) answered: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let waiting = lock(&self.shared.pending).remove(&self.correlation);
        if !self.answered && waiting.is_some() {
            // Timed out, or the caller's future was dropped: tell the peer.
            self.shared.push_cancel(self.correlation);
        }
    }
}
