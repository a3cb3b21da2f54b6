//! The session's side of calls and streams (wire format §2.7): which
//! services the peer announced, the streams being received (with the credit
//! granted for them), the streams being sent (with the credit received), and
//! the calls being served, so that a cancel can stop them.
//!
//! Correlation ids are unique on a connection in both directions (the
//! client's are odd, the server's even), so every table is keyed by the
//! correlation id alone.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::lock;
use std::num::NonZeroU64;

use crate::wire::batch::{BatchItems, item_cost};
use crate::wire::{ControlOp, Credit, DecodeError, Frame, FrameHeader, FrameKind};

/// A service the peer serves, as its handshake announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerService {
    /// The full name (`package.Service`).
    pub name: String,
    /// `(method id, method fingerprint)`, sorted by id.
    pub methods: Vec<(u32, u64)>,
}

impl PeerService {
    /// The fingerprint of a method, if the peer serves it.
    pub fn method(&self, id: u32) -> Option<u64> {
        self.methods
            .binary_search_by_key(&id, |m| m.0)
            .ok()
            .map(|i| self.methods[i].1)
    }
}

/// Items received for one stream and not taken yet: the frames as they came
/// (single items and batches), bounded by the credit granted to the sender.
///
/// The connection task pushes; the stream's [`Streaming`] takes every frame
/// queued at once, under one lock, and reads the items from its own copy.
/// Credit counts bytes ([`item_cost`] per item, wire format §2.7).
///
/// [`Streaming`]: crate::rpc::Streaming
pub(crate) struct Inflow {
    frames: Mutex<InflowQueue>,
    /// Credit granted in all, in bytes: the window plus every grant. The
    /// consumer raises it before it sends the credit frame, so an item sent
    /// on that credit always finds it raised.
    granted: AtomicU64,
    /// Cost of the items received in all. Only the connection task (the one
    /// pusher) writes it.
    received: AtomicU64,
    /// Items received in all.
    items: AtomicU64,
    /// The last frame (stream end, error response, or a response that ends
    /// a client-streaming call) has arrived, or the session ended.
    ended: AtomicBool,
    waker: AtomicWaker,
}

struct InflowQueue {
    frames: VecDeque<Frame>,
    ended: bool,
}

/// What [`Inflow::push`] found.
pub(crate) enum Pushed {
    Ok,
    /// Items beyond the credit granted: the peer broke flow control.
    Overrun,
    /// A batch whose items cannot be told apart.
    Malformed(DecodeError),
}

impl Inflow {
    pub(crate) fn new(window: u32) -> Self {
        Inflow {
            frames: Mutex::new(InflowQueue {
                frames: VecDeque::new(),
                ended: false,
            }),
            granted: AtomicU64::new(u64::from(window.max(1))),
            received: AtomicU64::new(0),
            items: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues a received frame. An item may arrive while the cost of the
    /// items before it is below the credit granted (it may overdraw it):
    /// checked for every item of a batch.
    fn push(&self, frame: Frame) -> Pushed {
        if self.ended.load(Ordering::Acquire) {
            return Pushed::Ok;
        }
        let last = frame.header.kind != FrameKind::StreamItem;
        if !last {
            let granted = self.granted.load(Ordering::Acquire);
            let mut received = self.received.load(Ordering::Relaxed);
            let mut items = 0;
            let mut take = |len: usize| {
                if received >= granted {
                    return false;
                }
                received = received.saturating_add(item_cost(len));
                items += 1;
                true
            };
            if frame.header.batch {
                for item in BatchItems::new(&frame.payload) {
                    match item {
                        Ok(range) if take(range.len()) => {}
                        Ok(_) => return Pushed::Overrun,
                        Err(e) => return Pushed::Malformed(e),
                    }
                }
            } else if !take(frame.payload.len()) {
                return Pushed::Overrun;
            }
            self.received.store(received, Ordering::Relaxed);
            self.items.fetch_add(items, Ordering::Relaxed);
        }
        let mut q = lock(&self.frames);
        if q.ended {
            return Pushed::Ok;
        }
        if last {
            q.ended = true;
            self.ended.store(true, Ordering::Release);
        }
        q.frames.push_back(frame);
        drop(q);
        self.waker.wake();
        Pushed::Ok
    }

    /// Ends the stream without a last frame (the session ended).
    pub(crate) fn end(&self) {
        lock(&self.frames).ended = true;
        self.ended.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Moves every frame received into `into` (empty): `Ready(true)` when
    /// there were some, `Ready(false)` once the stream has ended and every
    /// frame was taken.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, into: &mut VecDeque<Frame>) -> Poll<bool> {
        let mut q = lock(&self.frames);
        if q.frames.is_empty() && !q.ended {
            drop(q);
            self.waker.register(cx.waker());
            q = lock(&self.frames);
        }
        if !q.frames.is_empty() {
            // Swapped, so that the two queues' buffers are reused in turn.
            std::mem::swap(&mut q.frames, into);
            return Poll::Ready(true);
        }
        if q.ended {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }

    /// Whether the stream's last frame has arrived (or the session ended).
    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    /// Raises the credit by `bytes`, before the credit frame goes out.
    pub(crate) fn grant(&self, bytes: u64) {
        self.granted.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Items received in all.
    pub(crate) fn items_received(&self) -> u64 {
        self.items.load(Ordering::Relaxed)
    }
}

/// The sending side of one stream: the credit the receiver granted, in
/// bytes. An item may be sent while some credit is left, and takes its cost
/// ([`item_cost`]); the credit may go below zero by the last item's cost.
pub(crate) struct Outflow {
    credit: AtomicI64,
    closed: AtomicBool,
    notify: Notify,
}

impl Outflow {
    pub(crate) fn new(window: u32) -> Self {
        Outflow {
            credit: AtomicI64::new(i64::from(window.max(1))),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    fn grant(&self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let _ = self
            .credit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_add(bytes))
            });
        self.notify.notify_waiters();
    }

    /// No more items may be sent: the call ended, was cancelled, or the
    /// session ended.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once closed.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }

    /// Takes `cost` if some credit is left.
    pub(crate) fn try_take(&self, cost: u64) -> bool {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        self.credit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c > 0).then(|| c.saturating_sub(cost))
            })
            .is_ok()
    }

    /// Takes the credit of the longest prefix of items of encoded lengths
    /// `lens` that [`Outflow::try_take`] would take one by one (each while
    /// some credit is left, so the last may overdraw it), in one step: gives
    /// how many.
    pub(crate) fn try_take_prefix(&self, lens: &[usize]) -> usize {
        let mut taken = 0;
        let _ = self
            .credit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                let (mut left, mut n) = (c, 0);
                for &len in lens {
                    if left <= 0 {
                        break;
                    }
                    let cost = crate::wire::batch::item_cost(len);
                    left = left.saturating_sub(i64::try_from(cost).unwrap_or(i64::MAX));
                    n += 1;
                }
                taken = n;
                (n > 0).then_some(left)
            });
        taken
    }

    /// Gives back what an item that could not be sent took.
    pub(crate) fn refund(&self, cost: u64) {
        let cost = i64::try_from(cost).unwrap_or(i64::MAX);
        let _ = self
            .credit
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_add(cost))
            });
    }

    /// Waits for credit and takes an item's `cost`; `false` when closed.
    pub(crate) async fn acquire(&self, cost: u64) -> bool {
        if self.is_closed() {
            return false;
        }
        if self.try_take(cost) {
            return true;
        }
        loop {
            // Registered before the check, so that a grant in between is
            // not missed.
            let notified = self.notify.notified();
            if self.is_closed() {
                return false;
            }
            if self.try_take(cost) {
                return true;
            }
            notified.await;
        }
    }
}

/// A call being served: cancelling it stops the handler.
struct Serving {
    cancel: CancellationToken,
    outflow: Option<std::sync::Arc<Outflow>>,
    /// It came through the reliable state: the end of the session does not
    /// stop it (`rpc::server::start`).
    lasting: bool,
}

/// Every call and stream of a session in progress.
pub(crate) struct Calls {
    /// Services the peer announced, in order: a call addresses service `i`
    /// as `i + 1`.
    pub(crate) peer: Vec<PeerService>,
    /// The stream window the peer announced, in bytes: the first credit of
    /// every stream we send.
    pub(crate) peer_window: u32,
    /// Our stream window, in bytes: the first credit of every stream we
    /// receive.
    pub(crate) window: u32,
    inflows: Mutex<BTreeMap<u64, std::sync::Arc<Inflow>>>,
    outflows: Mutex<BTreeMap<u64, std::sync::Arc<Outflow>>>,
    serving: Mutex<BTreeMap<u64, Serving>>,
}

/// What routing a received stream frame found.
pub(crate) enum Routed {
    Done,
    /// Nothing waits for it (a late frame after a cancel).
    Unknown,
    /// The peer sent more items than it was granted.
    Overrun,
    /// A batch of items that cannot be read.
    Malformed(DecodeError),
}

impl Calls {
    pub(crate) fn new(peer: Vec<PeerService>, peer_window: u32, window: u32) -> Self {
        Calls {
            peer,
            peer_window: peer_window.max(1),
            window: window.max(1),
            inflows: Mutex::new(BTreeMap::new()),
            outflows: Mutex::new(BTreeMap::new()),
            serving: Mutex::new(BTreeMap::new()),
        }
    }

    /// The peer's service named `name`: its index on the wire and what it
    /// announced.
    pub(crate) fn peer_service(&self, name: &str) -> Option<(u32, &PeerService)> {
        self.peer
            .iter()
            .position(|s| s.name == name)
            .map(|i| (i as u32 + 1, &self.peer[i]))
    }

    pub(crate) fn open_inflow(&self, correlation: u64) -> std::sync::Arc<Inflow> {
        let inflow = std::sync::Arc::new(Inflow::new(self.window));
        lock(&self.inflows).insert(correlation, inflow.clone());
        inflow
    }

    pub(crate) fn close_inflow(&self, correlation: u64) {
        if let Some(i) = lock(&self.inflows).remove(&correlation) {
            i.end();
        }
    }

    pub(crate) fn open_outflow(&self, correlation: u64) -> std::sync::Arc<Outflow> {
        let outflow = std::sync::Arc::new(Outflow::new(self.peer_window));
        lock(&self.outflows).insert(correlation, outflow.clone());
        outflow
    }

    pub(crate) fn close_outflow(&self, correlation: u64) {
        if let Some(o) = lock(&self.outflows).remove(&correlation) {
            o.close();
        }
    }

    /// Registers a call being served; its token is cancelled by the peer's
    /// cancel, its outflow (if any) closed with it, and by the end of the
    /// session unless the call is `lasting`.
    pub(crate) fn serve(
        &self,
        correlation: u64,
        cancel: CancellationToken,
        outflow: Option<std::sync::Arc<Outflow>>,
        lasting: bool,
    ) {
        lock(&self.serving).insert(
            correlation,
            Serving {
                cancel,
                outflow,
                lasting,
            },
        );
    }

    /// Whether a call with this correlation id is being served.
    pub(crate) fn is_serving(&self, correlation: u64) -> bool {
        lock(&self.serving).contains_key(&correlation)
    }

    /// The call is over: forget it.
    pub(crate) fn served(&self, correlation: u64) {
        lock(&self.serving).remove(&correlation);
    }

    /// The peer cancelled a call it made.
    pub(crate) fn cancel(&self, correlation: u64) -> bool {
        let Some(s) = lock(&self.serving).remove(&correlation) else {
            return false;
        };
        if let Some(o) = s.outflow {
            o.close();
        }
        s.cancel.cancel();
        self.close_inflow(correlation);
        true
    }

    /// Routes a stream item, stream end, or a reply that ends a streaming
    /// call to the stream waiting for it.
    pub(crate) fn deliver(&self, frame: Frame) -> Routed {
        let correlation = frame.header.correlation;
        let last = frame.header.kind != FrameKind::StreamItem;
        if last && frame.header.kind != FrameKind::StreamEnd {
            // A reply ends the call: its request stream, if any, stops.
            self.close_outflow(correlation);
        }
        let inflow = {
            let mut inflows = lock(&self.inflows);
            if last {
                inflows.remove(&correlation)
            } else {
                inflows.get(&correlation).cloned()
            }
        };
        match inflow {
            Some(i) => match i.push(frame) {
                Pushed::Ok => Routed::Done,
                Pushed::Overrun => Routed::Overrun,
                Pushed::Malformed(e) => Routed::Malformed(e),
            },
            None => Routed::Unknown,
        }
    }

    /// Whether a stream is being received under `correlation`.
    pub(crate) fn has_inflow(&self, correlation: u64) -> bool {
        lock(&self.inflows).contains_key(&correlation)
    }

    /// A credit frame arrived.
    pub(crate) fn credit(&self, payload: &[u8]) -> Result<(), String> {
        let (correlation, n) = decode_credit(payload)?;
        if let Some(o) = lock(&self.outflows).get(&correlation) {
            o.grant(n);
        }
        Ok(())
    }

    /// The session ended: every stream ends, every sender stops, every
    /// served call is cancelled but the lasting ones, which run on (their
    /// answers go to the session that resumes this one).
    pub(crate) fn close_all(&self) {
        // In correlation order: the tasks they wake run in the same order
        // every run.
        for (_, i) in std::mem::take(&mut *lock(&self.inflows)) {
            i.end();
        }
        for (_, o) in std::mem::take(&mut *lock(&self.outflows)) {
            o.close();
        }
        for (_, s) in std::mem::take(&mut *lock(&self.serving)) {
            if !s.lasting {
                s.cancel.cancel();
            }
        }
    }
}

/// A credit frame of `bytes` (wire format §2.7).
pub(crate) fn credit_frame(correlation: u64, bytes: u64) -> Frame {
    let credit = Credit {
        correlation,
        bytes: NonZeroU64::new(bytes).unwrap_or(NonZeroU64::MIN),
    };
    let mut buf = BytesMut::with_capacity(credit.encoded_len());
    credit.encode(&mut buf);
    Frame::new(FrameHeader::control(ControlOp::Credit), buf.freeze())
}

fn decode_credit(payload: &[u8]) -> Result<(u64, u64), String> {
    Credit::decode(payload)
        .map(|c| (c.correlation, c.bytes.get()))
        .map_err(|e| format!("malformed credit frame: {e}"))
}
