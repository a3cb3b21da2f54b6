//! The session's side of calls and streams (wire format §2.7): which
//! services the peer announced, the streams being received (with the credit
//! granted for them), the streams being sent (with the credit received), and
//! the calls being served, so that a cancel can stop them.
//!
//! Correlation ids are unique on a connection in both directions (the
//! client's are odd, the server's even), so every table is keyed by the
//! correlation id alone.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::lock;
use std::num::NonZeroU64;

use crate::wire::{ControlOp, Credit, Frame, FrameHeader, FrameKind};

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

/// Items received for one stream and not taken yet, bounded by the credit
/// granted to the sender.
pub(crate) struct Inflow {
    state: Mutex<InflowState>,
    waker: AtomicWaker,
}

struct InflowState {
    frames: VecDeque<Frame>,
    /// The last frame (stream end, error response, or a response that ends
    /// a client-streaming call) has arrived, or the session ended.
    ended: bool,
    /// Items received in all.
    received: u64,
    /// Items the sender may send in all (the window plus every grant).
    granted: u64,
    /// Items taken since the last grant.
    taken: u64,
}

/// What [`Inflow::push`] found.
pub(crate) enum Pushed {
    Ok,
    /// More items than granted: the peer broke flow control.
    Overrun,
}

impl Inflow {
    pub(crate) fn new(window: u32) -> Self {
        Inflow {
            state: Mutex::new(InflowState {
                frames: VecDeque::new(),
                ended: false,
                received: 0,
                granted: u64::from(window.max(1)),
                taken: 0,
            }),
            waker: AtomicWaker::new(),
        }
    }

    fn push(&self, frame: Frame) -> Pushed {
        let mut s = lock(&self.state);
        if s.ended {
            return Pushed::Ok;
        }
        if frame.header.kind == FrameKind::StreamItem {
            s.received += 1;
            if s.received > s.granted {
                return Pushed::Overrun;
            }
        } else {
            s.ended = true;
        }
        s.frames.push_back(frame);
        drop(s);
        self.waker.wake();
        Pushed::Ok
    }

    /// Ends the stream without a last frame (the session ended).
    pub(crate) fn end(&self) {
        lock(&self.state).ended = true;
        self.waker.wake();
    }

    /// The next frame; `Ready(None)` once the stream has ended and every
    /// frame was taken. `grant` is called with the items to grant when half
    /// the window has been taken.
    pub(crate) fn poll_next(
        &self,
        cx: &mut Context<'_>,
        window: u32,
        grant: impl FnOnce(u64),
    ) -> Poll<Option<Frame>> {
        let mut s = lock(&self.state);
        if s.frames.is_empty() && !s.ended {
            drop(s);
            self.waker.register(cx.waker());
            s = lock(&self.state);
        }
        match s.frames.pop_front() {
            Some(frame) => {
                if frame.header.kind == FrameKind::StreamItem && !s.ended {
                    s.taken += 1;
                    if s.taken >= u64::from(window.div_ceil(2)) {
                        let n = s.taken;
                        s.taken = 0;
                        s.granted += n;
                        drop(s);
                        grant(n);
                    }
                }
                Poll::Ready(Some(frame))
            }
            None if s.ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    /// Items received and not taken.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.state).frames.len()
    }
}

/// The sending side of one stream: the credit the receiver granted.
pub(crate) struct Outflow {
    credit: Mutex<u64>,
    closed: AtomicBool,
    notify: Notify,
}

impl Outflow {
    pub(crate) fn new(credit: u32) -> Self {
        Outflow {
            credit: Mutex::new(u64::from(credit.max(1))),
            closed: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    fn grant(&self, n: u64) {
        let mut c = lock(&self.credit);
        *c = c.saturating_add(n);
        drop(c);
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

    /// Waits for credit and takes one item's worth; `false` when closed.
    pub(crate) async fn acquire(&self) -> bool {
        loop {
            let notified = self.notify.notified();
            if self.is_closed() {
                return false;
            }
            {
                let mut c = lock(&self.credit);
                if *c > 0 {
                    *c -= 1;
                    return true;
                }
            }
            notified.await;
        }
    }
}

/// A call being served: cancelling it stops the handler.
struct Serving {
    cancel: CancellationToken,
    outflow: Option<std::sync::Arc<Outflow>>,
}

/// Every call and stream of a session in progress.
pub(crate) struct Calls {
    /// Services the peer announced, in order: a call addresses service `i`
    /// as `i + 1`.
    pub(crate) peer: Vec<PeerService>,
    /// The stream window the peer announced: the first credit of every
    /// stream we send.
    pub(crate) peer_window: u32,
    /// Our stream window: the first credit of every stream we receive.
    pub(crate) window: u32,
    inflows: Mutex<HashMap<u64, std::sync::Arc<Inflow>>>,
    outflows: Mutex<HashMap<u64, std::sync::Arc<Outflow>>>,
    serving: Mutex<HashMap<u64, Serving>>,
}

/// What routing a received stream frame found.
pub(crate) enum Routed {
    Done,
    /// Nothing waits for it (a late frame after a cancel).
    Unknown,
    /// The peer sent more items than it was granted.
    Overrun,
}

impl Calls {
    pub(crate) fn new(peer: Vec<PeerService>, peer_window: u32, window: u32) -> Self {
        Calls {
            peer,
            peer_window: peer_window.max(1),
            window: window.max(1),
            inflows: Mutex::new(HashMap::new()),
            outflows: Mutex::new(HashMap::new()),
            serving: Mutex::new(HashMap::new()),
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
    /// cancel, its outflow (if any) closed with it.
    pub(crate) fn serve(
        &self,
        correlation: u64,
        cancel: CancellationToken,
        outflow: Option<std::sync::Arc<Outflow>>,
    ) {
        lock(&self.serving).insert(correlation, Serving { cancel, outflow });
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
    /// served call is cancelled.
    pub(crate) fn close_all(&self) {
        for (_, i) in lock(&self.inflows).drain() {
            i.end();
        }
        for (_, o) in lock(&self.outflows).drain() {
            o.close();
        }
        for (_, s) in lock(&self.serving).drain() {
            s.cancel.cancel();
        }
    }
}

/// A credit frame (wire format §2.7).
pub(crate) fn credit_frame(correlation: u64, items: u64) -> Frame {
    let credit = Credit {
        correlation,
        items: NonZeroU64::new(items).unwrap_or(NonZeroU64::MIN),
    };
    let mut buf = BytesMut::with_capacity(credit.encoded_len());
    credit.encode(&mut buf);
    Frame::new(FrameHeader::control(ControlOp::Credit), buf.freeze())
}

fn decode_credit(payload: &[u8]) -> Result<(u64, u64), String> {
    Credit::decode(payload)
        .map(|c| (c.correlation, c.items.get()))
        .map_err(|e| format!("malformed credit frame: {e}"))
}
