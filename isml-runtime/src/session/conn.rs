//! The connection task: one loop over shutdown, the outbound queue,
//! received frames and the keep-alive timer.

use std::collections::VecDeque;

use crate::pubsub::local::Arrived;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::calls::Routed;
use super::handle::error_frame;
use super::lend::{Read, ReadSide};
use super::writer::{READ_BURST, Writer};
use super::{
    CloseReason, ClosedBy, Dispatch, HandlerError, Link, MAX_PING_ECHO, Session, SessionConfig,
    Shared, Started, codes, lock,
};
use crate::transport::TransportError;
use crate::wire::{ControlOp, ErrorBody, Frame, FrameHeader, FrameKind};

pub(super) fn transport_reason(e: &TransportError) -> CloseReason {
    let code = match e {
        TransportError::Malformed { .. } => codes::MALFORMED,
        _ => codes::UNAVAILABLE,
    };
    CloseReason::new(ClosedBy::Error, code, e.to_string())
}

/// What handling a received frame left to do.
pub(super) enum Handled {
    Done,
    /// Done; let other tasks run before reading on (see `LinkOutcome::Yield`).
    Yield,
    End(CloseReason),
    /// A one-way handler that did not finish at once: the task waits for it
    /// (handlers of one session run in arrival order) while still writing.
    /// With a receipt: the message came at least once.
    OneWay(
        BoxFuture<'static, Result<(), HandlerError>>,
        Option<Receipt>,
    ),
    /// A request handler that did not finish at once: it gets its own task.
    /// The payload's length counts against the in-flight byte budget.
    /// With a receipt: the request came at least once, its reply goes
    /// through the reliable state.
    Request(
        u64,
        usize,
        BoxFuture<'static, Result<(u32, Bytes), HandlerError>>,
        Option<Receipt>,
    ),
    /// A call that runs on: it gets its own task, like a request; its
    /// future gives the last frame to write. The `bool`: the call has a
    /// stream.
    Call(
        u64,
        usize,
        bool,
        BoxFuture<'static, Option<Frame>>,
        Option<Receipt>,
    ),
}

/// Runs a session's connection: one loop over shutdown, the outbound queue,
/// received frames and the keep-alive timer; then the end of the session.
pub(super) fn run(
    session: Session,
    inbound: Arc<dyn Dispatch>,
) -> impl Future<Output = CloseReason> + Send + 'static {
    // Made before the first poll: a task dropped unpolled lets go too.
    let detach = Detach(session.shared.clone());
    async move {
        let _detach = detach;
        serve(session, inbound).await
    }
}

async fn serve(session: Session, inbound: Arc<dyn Dispatch>) -> CloseReason {
    let shared = session.shared.clone();
    let config = &shared.config;
    let mut conn = Connection {
        capacity: shared.out.capacity,
        write_budget: config.outbound_bytes.saturating_add(config.reply_bytes),
        inflight: None,
        ahead: VecDeque::new(),
        arrived: Vec::new(),
        keepalive: KeepAlive::new(config.keepalive),
        session,
        shared,
        inbound,
    };
    let reason = conn.serve().await;
    // Boxed: it runs once, and its state would otherwise enlarge the task
    // of every session for its whole life.
    Box::pin(conn.shutdown(reason)).await
}

/// A message that came at least once and whose handler did not finish at
/// once: acknowledgements stop below it until the handler has ended (see
/// [`Link::begin`]), so that what the peer was told is handled is handled,
/// even if this process stops right after.
pub(super) struct Receipt {
    link: Arc<Link>,
    seq: u64,
    epoch: u64,
}

impl Receipt {
    fn new(link: &Arc<Link>, seq: u64) -> Receipt {
        let epoch = link.begin(seq);
        Receipt {
            link: link.clone(),
            seq,
            epoch,
        }
    }

    /// The handler has ended: the acknowledgement it held back leaves now
    /// (nothing else may be about to go).
    fn done(self) {
        self.link.finish(self.seq, self.epoch);
        if let Some(session) = self.link.session()
            && let Some(ack) = self.link.take_ack()
        {
            session.push_frame(ack);
        }
    }
}

/// Lets go of the reliable state when the connection task is dropped
/// before the session ended (its runtime was shut down, as when a process
/// stops its runtime and builds a new one): the state holds the session it
/// writes to, and the session the state, so neither would ever be freed,
/// nor a durable outbox's database closed. A session that ended has let go
/// already; letting go again changes nothing.
struct Detach(Arc<Shared>);

impl Drop for Detach {
    fn drop(&mut self) {
        if let Some(link) = &self.0.link {
            link.detach(&self.0);
        }
    }
}

/// The connection task's state.
struct Connection {
    session: Session,
    shared: Arc<Shared>,
    inbound: Arc<dyn Dispatch>,
    /// Frames the outbound queue holds.
    capacity: usize,
    /// Bytes the write queue may hold before the task stops reading.
    write_budget: usize,
    /// Made when the first request needs it: an idle session holds none.
    inflight: Option<Inflight>,
    /// Room for the frames a burst reads ahead (see [`Ahead`]).
    ahead: VecDeque<Read>,
    /// Publications delivered in this burst, routed at its end.
    arrived: Vec<Arrived>,
    keepalive: KeepAlive,
}

/// What woke the connection task.
enum Event {
    Closed,
    Stopped(Result<(), TransportError>),
    Read(Read),
    Tick,
    /// The acknowledgement delay passed.
    Ack,
}

impl Connection {
    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        lock(&self.shared.writer)
    }

    fn reader(&self) -> std::sync::MutexGuard<'_, ReadSide> {
        lock(&self.shared.reader)
    }

    /// Serves the connection until the session ends; returns why.
    async fn serve(&mut self) -> CloseReason {
        let shared = self.shared.clone();
        let closed = shared.closed.cancelled();
        tokio::pin!(closed);
        let sleep = tokio::time::sleep(self.keepalive.first());
        tokio::pin!(sleep);
        // Acknowledgements of frames sent at least once leave with the next
        // frames written, or alone after `ack_delay` (docs/reliability.md).
        let ack_sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(ack_sleep);
        let mut ack_armed = false;
        loop {
            let event = tokio::select! {
                biased;
                () = &mut closed => Event::Closed,
                r = self.pump(), if !self.writer().broken => Event::Stopped(r),
                read = self.read() => Event::Read(read),
                () = &mut sleep, if self.keepalive.is_on() => Event::Tick,
                () = &mut ack_sleep, if ack_armed => Event::Ack,
            };
            let end = match event {
                Event::Closed => Some(shared.reason()),
                Event::Stopped(r) => Some(self.writer().stopped(r, &shared)),
                Event::Read(read) => {
                    let end = self.on_frames(read).await;
                    if let Some(link) = &shared.link
                        && !ack_armed
                        && link.owes_ack()
                    {
                        let delay = shared.config.ack_delay;
                        if delay.is_zero() || !self.writer().is_idle() {
                            // Replies are about to leave: the ack goes with them.
                            if let Some(ack) = link.take_ack() {
                                self.writer().push(ack);
                            }
                        } else {
                            ack_armed = true;
                            ack_sleep.as_mut().reset(Instant::now() + delay);
                        }
                    }
                    end
                }
                Event::Ack => {
                    ack_armed = false;
                    if let Some(ack) = shared.link.as_ref().and_then(|l| l.take_ack()) {
                        self.writer().push(ack);
                    }
                    None
                }
                Event::Tick => {
                    let capacity = self.capacity;
                    let mut w = lock(&shared.writer);
                    self.keepalive
                        .tick(&shared, &mut w, capacity, sleep.as_mut())
                }
            };
            if let Some(reason) = end {
                return reason;
            }
        }
    }

    /// Moves queued frames to the transport; resolves only when the session
    /// can write no more (close frame written, or failure).
    async fn pump(&self) -> Result<(), TransportError> {
        poll_fn(|cx| self.writer().poll_pump(cx, &self.shared)).await
    }

    /// The next received message. Not reading while the write queue is over
    /// its budget: the condition is checked on every poll, so that reading
    /// resumes as soon as the pump, polled before it, has written enough.
    async fn read(&self) -> Read {
        poll_fn(|cx| {
            if self.writer().may_read(self.capacity, self.write_budget) {
                self.reader().poll_task(cx, true, &self.shared)
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// Waits for `fut` while keeping the outbound side going; `Err` with
    /// the reason when the session ends meanwhile.
    async fn drive<T>(&self, fut: impl Future<Output = T>) -> Result<T, CloseReason> {
        tokio::pin!(fut);
        let shared = &self.shared;
        tokio::select! {
            biased;
            () = shared.closed.cancelled() => Err(shared.reason()),
            r = self.pump(), if !self.writer().broken => Err(self.writer().stopped(r, shared)),
            out = &mut fut => Ok(out),
        }
    }

    /// What the pub/sub layer keeps for the end of a read burst: on a
    /// client, the deliveries it routed go into the subscriptions' queues
    /// (`Local::flush_routed`); on a server, the burst's publications go to
    /// their subscribers (`Broker::publish_staged`). Whether a queue had no
    /// room: its reader (or writer) should run before this task reads on.
    fn end_burst(&mut self) -> bool {
        let (held, congested) = self.end_burst_parts();
        held || congested
    }

    /// [`Connection::end_burst`], apart: whether deliveries wait for room
    /// in a subscription's queue (this task waits for its reader), and
    /// whether a subscriber on the broker is congested (this task yields).
    fn end_burst_parts(&mut self) -> (bool, bool) {
        let held = self.session.pubsub().flush_routed(&mut self.arrived);
        let congested = self
            .inbound
            .broker()
            .is_some_and(|b| b.publish_staged(&self.session));
        (held, congested)
    }

    /// Handles what was read and whatever else is ready at once (a burst),
    /// writing the first reply before looking for more. `Some` when the
    /// session ends.
    async fn on_frames(&mut self, first: Read) -> Option<CloseReason> {
        let mut yield_turn = false;
        let end = self.burst(first, &mut yield_turn).await;
        // Also when the session ends: what arrived before the end goes on.
        // (The flush retries what earlier flushes of the burst held, so
        // `held` covers the whole burst.)
        let (held, congested) = self.end_burst_parts();
        yield_turn |= congested;
        if end.is_some() {
            return end;
        }
        self.keepalive.received(&self.shared);
        if held {
            return self.wait_for_readers().await;
        }
        if yield_turn {
            tokio::task::yield_now().await;
        }
        None
    }

    /// Deliveries wait for room in their subscriptions' queues: reading on
    /// waits for those readers to take (writing goes on meanwhile), for
    /// `SessionConfig::subscription_patience` at most. `Some` when the
    /// session ends.
    async fn wait_for_readers(&mut self) -> Option<CloseReason> {
        let local = self.session.pubsub();
        let patience = self.session.config().subscription_patience;
        let room = poll_fn(|cx| local.poll_room(cx));
        match self.drive(tokio::time::timeout(patience, room)).await {
            Ok(Ok(())) => None,
            Ok(Err(_)) => {
                local.give_up_waiting();
                None
            }
            Err(reason) => Some(reason),
        }
    }

    /// [`Connection::on_frames`] but for the end of the burst.
    async fn burst(&mut self, first: Read, yield_turn: &mut bool) -> Option<CloseReason> {
        let shared = self.shared.clone();
        let mut read = first;
        let mut burst = 0;
        while burst < READ_BURST {
            // One lock of the writer for the frame and the check after it:
            // what it finds can only improve while the rest of this turn
            // runs. Frames handled at once after the first of the burst
            // (whose reply leaves at once, below) follow one another under
            // that same lock, each probing for the next.
            let (handled, may_read) = {
                let mut w = lock(&shared.writer);
                // Frames read ahead (under one lock of the reader) and not
                // handled go back to the reader when this block ends.
                let mut ahead = Ahead {
                    items: &mut self.ahead,
                    shared: &shared,
                };
                loop {
                    let frame = match read {
                        Some(Ok(frame)) => frame,
                        Some(Err(reason)) => {
                            tracing::warn!(session = shared.id, peer = %shared.info.peer, %reason, "session ends");
                            return Some(reason);
                        }
                        None => {
                            return Some(CloseReason::new(
                                ClosedBy::Peer,
                                codes::UNAVAILABLE,
                                "connection ended without a close frame",
                            ));
                        }
                    };
                    shared.counters.frames_in.fetch_add(1, Ordering::Relaxed);
                    let room = self.inflight.as_ref().is_none_or(Inflight::has_room);
                    let handled = handle_frame(
                        &self.session,
                        frame,
                        &*self.inbound,
                        &mut w,
                        room,
                        &mut self.arrived,
                    );
                    let may_read = w.may_read(self.capacity, self.write_budget);
                    let at_once = matches!(handled, Handled::Done | Handled::Yield);
                    if burst == 0 || !at_once {
                        break (handled, may_read);
                    }
                    *yield_turn |= matches!(handled, Handled::Yield);
                    if burst + 1 == READ_BURST || *yield_turn || !may_read {
                        return None;
                    }
                    match ahead.next() {
                        Some(next) => read = next,
                        None => return None,
                    }
                    burst += 1;
                }
            };
            match handled {
                Handled::Done => {}
                Handled::Yield => *yield_turn = true,
                Handled::End(reason) => return Some(reason),
                // Boxed: rare (a handler that did not finish at once), and the
                // wait would otherwise make every session's task larger.
                Handled::OneWay(fut, receipt) => {
                    *yield_turn |= self.end_burst();
                    let mut fut = fut;
                    match Box::pin(self.drive(&mut fut)).await {
                        Ok(r) => {
                            if let Some(receipt) = receipt {
                                receipt.done();
                            }
                            if let Err(e) = r {
                                shared.error();
                                tracing::debug!(session = shared.id, error = %e, "one-way handler failed");
                            }
                        }
                        Err(reason) => {
                            // A message that came at least once counts as
                            // received (a duplicate of it is dropped): its
                            // handler runs to its end even though the
                            // session does not.
                            if let Some(receipt) = receipt {
                                tokio::spawn(async move {
                                    let _ = fut.await;
                                    receipt.done();
                                });
                            }
                            return Some(reason);
                        }
                    }
                }
                Handled::Request(correlation, len, fut, receipt) => {
                    *yield_turn |= self.end_burst();
                    let (permits, end) = match self.admit(len).await {
                        Ok(p) => (Some(p), None),
                        // The session ended while the request waited for a
                        // place; one that came at least once still runs.
                        Err(reason) if receipt.is_some() => (None, Some(reason)),
                        Err(reason) => return Some(reason),
                    };
                    let session = self.session.clone();
                    tokio::spawn(async move {
                        let frame = reply_frame(&session.shared, correlation, fut.await);
                        send_reply(&session, frame, receipt.is_some()).await;
                        if let Some(receipt) = receipt {
                            receipt.done();
                        }
                        drop(permits);
                    });
                    if end.is_some() {
                        return end;
                    }
                }
                Handled::Call(correlation, _len, true, fut, receipt) => {
                    match self.admit_stream() {
                        Some(permit) => {
                            let session = self.session.clone();
                            tokio::spawn(async move {
                                if let Some(frame) = fut.await {
                                    send_reply(&session, frame, receipt.is_some()).await;
                                }
                                if let Some(receipt) = receipt {
                                    receipt.done();
                                }
                                drop(permit);
                            });
                        }
                        None => {
                            drop(fut);
                            self.session.calls().cancel(correlation);
                            let msg = format!(
                                "{} calls with streams are running: this one is refused",
                                shared.config.max_inflight
                            );
                            let frame = error_frame(correlation, codes::RESOURCE_EXHAUSTED, &msg);
                            match receipt {
                                // The refusal is the call's answer: it goes
                                // at least once too, and then the call counts
                                // as handled.
                                Some(receipt) => {
                                    let session = self.session.clone();
                                    tokio::spawn(async move {
                                        send_reply(&session, frame, true).await;
                                        receipt.done();
                                    });
                                }
                                None => self.writer().push(frame),
                            }
                        }
                    }
                }
                Handled::Call(_correlation, len, false, fut, receipt) => {
                    *yield_turn |= self.end_burst();
                    let (permits, end) = match self.admit(len).await {
                        Ok(p) => (Some(p), None),
                        Err(reason) if receipt.is_some() => (None, Some(reason)),
                        Err(reason) => return Some(reason),
                    };
                    let session = self.session.clone();
                    tokio::spawn(async move {
                        if let Some(frame) = fut.await {
                            send_reply(&session, frame, receipt.is_some()).await;
                        }
                        if let Some(receipt) = receipt {
                            receipt.done();
                        }
                        drop(permits);
                    });
                    if end.is_some() {
                        return end;
                    }
                }
            }
            // The first reply of a burst leaves at once, before looking for
            // more frames (a request alone on the connection should not wait
            // for a read that finds nothing); the rest of a burst's replies
            // leave together.
            if burst == 0 && !self.writer().is_idle() {
                // Replies (a publication's acceptance) leave after the
                // deliveries they speak of were handed over.
                *yield_turn |= self.end_burst();
                let flushed =
                    poll_fn(|cx| Poll::Ready(self.writer().poll_flush_all(cx, &shared))).await;
                if let Poll::Ready(Err(e)) = flushed {
                    return Some(self.writer().stopped(Err(e), &shared));
                }
                if self.writer().close_sent {
                    return Some(shared.reason());
                }
            }
            // Whatever the probe below returns is handled, so it runs only
            // when there is another turn for it.
            if burst + 1 == READ_BURST || *yield_turn || !may_read {
                break;
            }
            let mut probe = std::task::Context::from_waker(Waker::noop());
            match self.reader().poll_task(&mut probe, false, &shared) {
                Poll::Ready(next) => read = next,
                Poll::Pending => break,
            }
            burst += 1;
        }
        None
    }

    /// Places for a handler that runs on: at once when there are some,
    /// otherwise reading stops (beyond max_inflight or the byte budget)
    /// until handlers end.
    async fn admit(&mut self, len: usize) -> Result<Permits, CloseReason> {
        let shared = self.shared.clone();
        let inflight = self
            .inflight
            .get_or_insert_with(|| Inflight::new(&shared.config));
        let admitted = inflight.try_admit(len).ok_or_else(|| inflight.admit(len));
        match admitted {
            Ok(p) => Ok(p),
            Err(wait) => match Box::pin(self.drive(wait)).await {
                Ok(Some(p)) => Ok(p),
                Ok(None) => Err(shared.reason()),
                Err(reason) => Err(reason),
            },
        }
    }

    /// A place for a call with a stream (either way): at once, or none.
    /// Its handler waits on the peer, for items or for credit, which the
    /// session reads only while it is not waiting for places: were such
    /// calls waited for, or were other handlers to wait for their places,
    /// `max_inflight` of them would stop the session for good (it would
    /// neither read nor notice the peer leave). So they have places of
    /// their own, and one beyond them is refused (code 8).
    fn admit_stream(&mut self) -> Option<OwnedSemaphorePermit> {
        let shared = self.shared.clone();
        let inflight = self
            .inflight
            .get_or_insert_with(|| Inflight::new(&shared.config));
        inflight.streams.clone().try_acquire_owned().ok()
    }

    /// Ends the session: records why, lets go of the receiving half, and
    /// writes what is already queued (the close frame among it), bounded in
    /// time so that a peer that stopped reading cannot hold the task.
    async fn shutdown(self, reason: CloseReason) -> CloseReason {
        let shared = self.shared;
        shared.finish(reason);
        // The receiving half ends with the task (a request reading it gives up).
        {
            let mut r = lock(&shared.reader);
            r.rx = None;
            r.handoff.clear();
            r.ahead.clear();
            r.task = None;
        }
        // Take the transport out of the session, so that its end can be awaited.
        let mut w = std::mem::replace(&mut *lock(&shared.writer), Writer::ended());
        if !w.broken {
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
}

/// Frames read ahead during a burst: up to this many under one lock of the
/// reader.
const READ_AHEAD: usize = 16;

/// The frames a burst read ahead of the one it handles. What is left when
/// it is dropped goes back to the reader, before anything else there.
struct Ahead<'a> {
    items: &'a mut VecDeque<Read>,
    shared: &'a Shared,
}

impl Ahead<'_> {
    /// The next frame, reading ahead when none is left; `None` when nothing
    /// more has arrived.
    fn next(&mut self) -> Option<Read> {
        if self.items.is_empty() {
            let mut r = lock(&self.shared.reader);
            let mut probe = std::task::Context::from_waker(Waker::noop());
            while self.items.len() < READ_AHEAD {
                match r.poll_task(&mut probe, false, self.shared) {
                    Poll::Ready(read) => {
                        // Nothing is read past an error or the end.
                        let last = !matches!(read, Some(Ok(_)));
                        self.items.push_back(read);
                        if last {
                            break;
                        }
                    }
                    Poll::Pending => break,
                }
            }
            if !self.items.is_empty() {
                // Still handling what was read: no request may borrow the
                // transport meanwhile.
                r.busy = true;
            }
        }
        self.items.pop_front()
    }
}

impl Drop for Ahead<'_> {
    fn drop(&mut self) {
        if !self.items.is_empty() {
            let mut r = lock(&self.shared.reader);
            while let Some(read) = self.items.pop_back() {
                r.ahead.push_front(read);
            }
        }
    }
}

/// Incoming requests whose handlers run at once: at most `max_inflight`,
/// with at most `inflight_bytes` of payload; and at most `max_inflight`
/// calls with streams besides ([`Connection::admit_stream`]).
struct Inflight {
    count: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    byte_budget: usize,
}

/// The places a running request handler holds.
type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Inflight {
    fn new(config: &SessionConfig) -> Self {
        let byte_budget = bytes_budget(config);
        Inflight {
            count: Arc::new(Semaphore::new(config.max_inflight.max(1))),
            streams: Arc::new(Semaphore::new(config.max_inflight.max(1))),
            bytes: Arc::new(Semaphore::new(byte_budget)),
            byte_budget,
        }
    }

    /// Whether another handler would be admitted now (by count).
    fn has_room(&self) -> bool {
        self.count.available_permits() > 0
    }

    fn cost(&self, len: usize) -> u32 {
        len.clamp(1, self.byte_budget) as u32
    }

    /// Places for a request of `len` payload bytes, if there are some now.
    fn try_admit(&self, len: usize) -> Option<Permits> {
        let count = self.count.clone().try_acquire_owned().ok()?;
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(self.cost(len))
            .ok()?;
        Some((count, bytes))
    }

    /// Waits for places; `None` if the semaphores closed.
    fn admit(&self, len: usize) -> impl Future<Output = Option<Permits>> + use<> {
        let (count, bytes, cost) = (self.count.clone(), self.bytes.clone(), self.cost(len));
        async move {
            let c = count.acquire_owned().await.ok()?;
            let b = bytes.acquire_many_owned(cost).await.ok()?;
            Some((c, b))
        }
    }
}

/// Keep-alive: a ping after `interval` without receiving anything, the end
/// of the session after 1.5 × `interval`.
struct KeepAlive {
    interval: Option<Duration>,
    last_rx: Instant,
    pinged: bool,
}

impl KeepAlive {
    fn new(interval: Option<Duration>) -> Self {
        KeepAlive {
            interval,
            last_rx: Instant::now(),
            pinged: false,
        }
    }

    fn is_on(&self) -> bool {
        self.interval.is_some()
    }

    /// When the timer first fires.
    fn first(&self) -> Duration {
        self.interval.unwrap_or(Duration::from_secs(3600))
    }

    /// Frames arrived.
    fn received(&mut self, shared: &Shared) {
        self.last_rx = Instant::now();
        self.pinged = false;
        shared.counters.last_activity_ms.store(
            (self.last_rx - shared.started).as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// The timer fired: ping, or end the session, and set the next time.
    fn tick(
        &mut self,
        shared: &Shared,
        w: &mut Writer,
        capacity: usize,
        sleep: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> Option<CloseReason> {
        let iv = self.interval?;
        // A request reading its own reply (see `Lend`), and fragments being
        // joined, record what they received: it is a sign of life too.
        let seen = shared.started
            + Duration::from_millis(shared.counters.last_activity_ms.load(Ordering::Relaxed));
        if seen > self.last_rx {
            self.last_rx = seen;
            self.pinged = false;
        }
        let idle = self.last_rx.elapsed();
        if idle >= iv * 3 / 2 {
            let reason = CloseReason::new(
                ClosedBy::Error,
                codes::DEADLINE_EXCEEDED,
                format!("keep-alive expired: nothing received for {idle:?} (interval {iv:?})"),
            );
            tracing::warn!(session = shared.id, peer = %shared.info.peer, %reason, "session ends");
            return Some(reason);
        }
        if idle >= iv && !self.pinged {
            self.pinged = true;
            if w.queue.len() < capacity {
                w.push(Frame::new(
                    FrameHeader::control(ControlOp::Ping),
                    Bytes::new(),
                ));
            }
        }
        let next = if idle >= iv {
            self.last_rx + iv * 3 / 2
        } else {
            self.last_rx + iv
        };
        sleep.reset(next);
        None
    }
}

/// The in-flight byte budget as semaphore permits.
pub(super) fn bytes_budget(config: &SessionConfig) -> usize {
    config.inflight_bytes.clamp(1, u32::MAX as usize)
}

pub(super) fn reply_frame(
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

/// Writes the reply of a handler that ran on. A reply to a request that
/// came at least once goes through the reliable state: to the session that
/// resumed this one, if this one has ended meanwhile, or kept for it.
async fn send_reply(session: &Session, frame: Frame, reliable: bool) {
    match session.link() {
        Some(link) if reliable => link.push_reply(frame),
        _ => {
            let _ = session.enqueue(frame).await;
        }
    }
}

/// What routing a stream frame leaves to do.
fn routed(shared: &Shared, r: Routed) -> Handled {
    match r {
        Routed::Done => Handled::Done,
        Routed::Unknown => {
            // Items of a call cancelled meanwhile, or ended: expected.
            shared.counters.late.fetch_add(1, Ordering::Relaxed);
            Handled::Done
        }
        Routed::Overrun => Handled::End(CloseReason::new(
            ClosedBy::Error,
            codes::RESOURCE_EXHAUSTED,
            "stream items beyond the credit granted (wire format §2.7)",
        )),
        Routed::Malformed(e) => Handled::End(CloseReason::new(
            ClosedBy::Error,
            codes::MALFORMED,
            format!("malformed batch of stream items (wire format §2.7): {e}"),
        )),
    }
}

/// Handles one received frame. Handlers run right here, in the connection's
/// task: most finish on their first poll, and a request's reply then goes
/// straight to the write queue, without another task or queue in between.
pub(super) fn handle_frame(
    session: &Session,
    frame: Frame,
    inbound: &dyn Dispatch,
    w: &mut Writer,
    room: bool,
    arrived: &mut Vec<Arrived>,
) -> Handled {
    let shared = &session.shared;
    let h = frame.header;
    let refused = |id: u32| shared.refused.iter().find(|(r, _)| *r == id).map(|e| e.1);
    // Sent at least once (docs/reliability.md): a duplicate of what this
    // side already has is dropped, and either way acknowledged.
    let received = match (h.seq, &shared.link) {
        (Some(seq), Some(link)) => {
            let (fresh, now) = link.on_receive(seq);
            if now && let Some(ack) = link.take_ack() {
                w.push(ack);
            }
            if !fresh {
                return Handled::Done;
            }
            Some((link, seq))
        }
        _ => None,
    };
    let reliable = received.is_some();
    // For a handler that runs on.
    let receipt = || received.map(|(link, seq)| Receipt::new(link, seq));
    // Replies to what came at least once go the same way.
    let reply = |w: &mut Writer, f: Frame| match &shared.link {
        Some(link) if reliable => link.push_reply(f),
        _ => w.push(f),
    };
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
            match inbound.one_way(session, h.type_id, frame.payload) {
                Some(mut fut) => match (&mut fut).now_or_never() {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        shared.error();
                        tracing::debug!(session = shared.id, type_id = h.type_id, error = %e, "one-way handler failed");
                    }
                    None => return Handled::OneWay(fut, receipt()),
                },
                None => {
                    shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        FrameKind::Request if h.call.is_some() => match inbound.call(session, frame, room) {
            Started::Done(Some(f)) => reply(w, f),
            Started::Done(None) => {}
            Started::Running {
                correlation,
                len,
                streams,
                fut,
            } => return Handled::Call(correlation, len, streams, fut, receipt()),
        },
        FrameKind::Request => {
            let correlation = h.correlation;
            if let Some(name) = refused(h.type_id) {
                shared.error();
                let msg = format!(
                    "message {name} (type id {}) refused: its definition differs on the two sides (fingerprint mismatch)",
                    h.type_id
                );
                reply(
                    w,
                    error_frame(correlation, codes::FINGERPRINT_MISMATCH, &msg),
                );
                return Handled::Done;
            }
            let len = frame.payload.len();
            let Some(mut fut) = inbound.request(session, correlation, h.type_id, frame.payload)
            else {
                shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
                let msg = format!("unknown message type id {} for a request", h.type_id);
                reply(w, error_frame(correlation, codes::UNKNOWN_TYPE, &msg));
                return Handled::Done;
            };
            match (&mut fut).now_or_never() {
                Some(result) => reply(w, reply_frame(shared, correlation, result)),
                None => return Handled::Request(correlation, len, fut, receipt()),
            }
        }
        FrameKind::Response | FrameKind::Error => {
            // The reply to a request sent at least once, maybe on an
            // earlier session of the reliable state.
            let frame = match &shared.link {
                Some(link) if reliable => match link.answer(frame) {
                    Ok(()) => return Handled::Done,
                    Err(frame) => frame,
                },
                _ => frame,
            };
            let waiter = lock(&shared.pending).remove(&h.correlation);
            match waiter {
                Some(tx) => {
                    // A reply ends a client-streaming call: its stream stops.
                    shared.calls.close_outflow(h.correlation);
                    if tx.send(frame).is_err() {
                        shared.counters.late.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None if shared.calls.has_inflow(h.correlation) => {
                    return routed(shared, shared.calls.deliver(frame));
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
        FrameKind::StreamItem | FrameKind::StreamEnd => {
            if let Some(name) = refused(h.type_id).filter(|_| h.kind == FrameKind::StreamItem) {
                shared.error();
                tracing::debug!(
                    session = shared.id,
                    message = name,
                    "dropped stream item with mismatched fingerprint"
                );
            }
            return routed(shared, shared.calls.deliver(frame));
        }
        FrameKind::Cancel => {
            // Only a caller cancels, and only its own calls.
            if !shared.is_own(h.correlation) && !shared.calls.cancel(h.correlation) {
                shared.counters.late.fetch_add(1, Ordering::Relaxed);
            }
        }
        FrameKind::Control(ControlOp::Credit) => {
            if let Err(e) = shared.calls.credit(&frame.payload) {
                return Handled::End(CloseReason::new(ClosedBy::Error, codes::MALFORMED, e));
            }
        }
        FrameKind::Ack => {
            if let Some(link) = &shared.link {
                match super::read_ack(&frame.payload) {
                    Some(n) => link.on_ack(n),
                    None => {
                        return Handled::End(CloseReason::new(
                            ClosedBy::Error,
                            codes::MALFORMED,
                            "malformed ack frame: expected one uvarint (wire format §2.2)",
                        ));
                    }
                }
            }
        }
        FrameKind::Control(ControlOp::Pong) => {}
        FrameKind::Control(ControlOp::Close) => {
            shared.peer_closed.store(true, Ordering::Relaxed);
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
        FrameKind::Control(
            op @ (ControlOp::Subscribe
            | ControlOp::Publish
            | ControlOp::Deliver
            | ControlOp::PubSubReply),
        ) => {
            // Publish/subscribe (crate::pubsub): the layer returns what to do.
            use crate::pubsub::local::{LinkOutcome, on_frame};
            let direct =
                |from: &str, type_id, payload| inbound.direct(session, from, type_id, payload);
            match on_frame(
                session,
                op,
                frame.payload,
                inbound.broker(),
                &direct,
                arrived,
            ) {
                LinkOutcome::Done => {}
                LinkOutcome::Yield => return Handled::Yield,
                LinkOutcome::Reply(f) => w.push(f),
                LinkOutcome::Wait(fut) => {
                    return Handled::OneWay(Box::pin(fut.map(Ok)), None);
                }
                LinkOutcome::End(msg) => {
                    return Handled::End(CloseReason::new(ClosedBy::Error, codes::MALFORMED, msg));
                }
            }
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
