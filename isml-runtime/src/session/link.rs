//! Reliable delivery across connections: sequence numbers, cumulative
//! acknowledgements, de-duplication and the resume state
//! (`docs/reliability.md`).
//!
//! A [`Link`] outlives the sessions (connections) it is attached to: the
//! client keeps one for as long as it runs, the server keeps one per device
//! for the session-expiry time after its connection broke. Frames sent
//! *at least once* get the next sequence number of the link, are kept until
//! the peer acknowledges them, and are written again on the next session
//! when it resumes the link: only those the peer did not report received.
//! The receiving side counts the highest sequence number it has seen; a
//! frame at or below it is a duplicate and is dropped (and acknowledged
//! again).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, oneshot};

use super::{Props, Session, lock};
use crate::wire::{Frame, FrameHeader, varint};

/// How a message is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Delivery {
    /// Written once; lost if the connection breaks before the peer read it.
    #[default]
    AtMostOnce,
    /// Kept until the peer acknowledges it, written again after a
    /// reconnection that resumed the session; the peer's handler sees it
    /// once (duplicates are dropped by sequence number).
    AtLeastOnce,
}

/// Why an at-least-once message will not be acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The reliable state ended before the peer acknowledged the message:
    /// the client was closed, or the server expired the session.
    #[error("not acknowledged: {reason}")]
    Lost {
        /// Why the state ended.
        reason: String,
    },
}

/// Resolves when the peer acknowledged an at-least-once message.
#[must_use = "the handle tells when the peer acknowledged the message; drop it to not wait"]
pub struct Delivered {
    rx: oneshot::Receiver<Result<(), DeliveryError>>,
    seq: u64,
}

impl Delivered {
    /// The sequence number the message was sent with (0: sent at most once).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// A handle for a message sent at most once: resolves at once.
    pub(crate) fn ready() -> Delivered {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(Ok(()));
        Delivered { rx, seq: 0 }
    }
}

impl fmt::Debug for Delivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivered").field("seq", &self.seq).finish()
    }
}

impl Future for Delivered {
    type Output = Result<(), DeliveryError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            r.unwrap_or_else(|_| {
                Err(DeliveryError::Lost {
                    reason: "the reliable state was dropped".into(),
                })
            })
        })
    }
}

/// A frame sent at least once and not yet acknowledged.
struct Sent {
    seq: u64,
    frame: Frame,
    cost: usize,
    done: Option<oneshot::Sender<Result<(), DeliveryError>>>,
}

/// Counters of a link (see [`LinkStats`]).
#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    acked: AtomicU64,
    resent: AtomicU64,
    duplicates: AtomicU64,
    acks_sent: AtomicU64,
    resumes: AtomicU64,
}

/// Statistics of the reliable state of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// At-least-once frames sent (each once, resends not counted).
    pub sent: u64,
    /// Of them, acknowledged by the peer.
    pub acked: u64,
    /// Frames written again on a resumed connection.
    pub resent: u64,
    /// Received frames dropped as duplicates.
    pub duplicates: u64,
    /// Acknowledgement frames written.
    pub acks_sent: u64,
    /// Connections that resumed this state.
    pub resumes: u64,
    /// Frames waiting for an acknowledgement now.
    pub unacked: u64,
    /// Their bytes.
    pub unacked_bytes: u64,
    /// The highest sequence number received.
    pub received: u64,
}

struct State {
    /// Names the state in the server's resume table.
    token: [u8; 16],
    next_seq: u64,
    unacked: VecDeque<Sent>,
    unacked_bytes: usize,
    /// The highest sequence number received.
    received: u64,
    /// Frames received since the last acknowledgement was written.
    owed: u32,
    /// The session this link writes to now.
    session: Option<Session>,
    /// Requests sent at least once, awaiting their reply, by correlation id:
    /// they survive the session, and the reply may come on the next.
    pending: HashMap<u64, oneshot::Sender<Frame>>,
    /// The next correlation id (continues across sessions, so that a reply
    /// of a resumed request can never match a new one).
    next_correlation: u64,
    /// Server side: the subscriptions and properties of the last session,
    /// restored on the next one.
    subscriptions: Vec<(u32, Option<String>)>,
    props: Option<Props>,
    /// Set when the state ends (client closed, server expired it).
    ended: Option<String>,
}

/// The reliable state of a session, shared by the connections that resume
/// it (see the module documentation).
pub(crate) struct Link {
    budget: usize,
    state: Mutex<State>,
    room: Notify,
    counters: Counters,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").field("stats", &self.stats()).finish()
    }
}

/// Frames received without an acknowledgement after which one is written
/// at once, without waiting for the acknowledgement delay.
pub(crate) const ACK_EVERY: u32 = 64;

impl Link {
    /// A new link; `initiator`: this side opened the connection (odd
    /// correlation ids). `budget`: bytes of unacknowledged frames.
    pub(crate) fn new(token: [u8; 16], initiator: bool, budget: usize) -> Arc<Link> {
        Arc::new(Link {
            budget: budget.max(1),
            state: Mutex::new(State {
                token,
                next_seq: 1,
                unacked: VecDeque::new(),
                unacked_bytes: 0,
                received: 0,
                owed: 0,
                session: None,
                pending: HashMap::new(),
                next_correlation: if initiator { 1 } else { 2 },
                subscriptions: Vec::new(),
                props: None,
                ended: None,
            }),
            room: Notify::new(),
            counters: Counters::default(),
        })
    }

    /// A random token naming a link.
    pub(crate) fn random_token() -> [u8; 16] {
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&fastrand::u64(..).to_le_bytes());
        t[8..].copy_from_slice(&fastrand::u64(..).to_le_bytes());
        t
    }

    pub(crate) fn token(&self) -> [u8; 16] {
        lock(&self.state).token
    }

    /// The highest sequence number received.
    pub(crate) fn received(&self) -> u64 {
        lock(&self.state).received
    }

    pub(crate) fn stats(&self) -> LinkStats {
        let s = lock(&self.state);
        let c = &self.counters;
        LinkStats {
            sent: c.sent.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            resent: c.resent.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            acks_sent: c.acks_sent.load(Ordering::Relaxed),
            resumes: c.resumes.load(Ordering::Relaxed),
            unacked: s.unacked.len() as u64,
            unacked_bytes: s.unacked_bytes as u64,
            received: s.received,
        }
    }

    /// A correlation id for a new exchange (continues across sessions).
    pub(crate) fn correlation(&self) -> u64 {
        let mut s = lock(&self.state);
        let c = s.next_correlation;
        s.next_correlation += 2;
        c
    }

    /// The session the link writes to now, if one is attached.
    pub(crate) fn session(&self) -> Option<Session> {
        lock(&self.state).session.clone().filter(|s| !s.is_closed())
    }

    /// Why the state ended, if it has.
    pub(crate) fn ended(&self) -> Option<String> {
        lock(&self.state).ended.clone()
    }

    /// Waits until `cost` more bytes fit the budget of unacknowledged frames
    /// (a frame larger than the budget passes when nothing is unacknowledged).
    async fn room(&self, cost: usize) -> Result<(), DeliveryError> {
        loop {
            let notified = self.room.notified();
            {
                let s = lock(&self.state);
                if let Some(reason) = &s.ended {
                    return Err(DeliveryError::Lost {
                        reason: reason.clone(),
                    });
                }
                if s.unacked.is_empty() || s.unacked_bytes + cost <= self.budget {
                    return Ok(());
                }
            }
            notified.await;
        }
    }

    /// Sends `frame` at least once: waits for room in the budget, gives it
    /// the next sequence number, keeps it until acknowledged, and queues it
    /// on the attached session, if any (otherwise it leaves on the next).
    pub(crate) async fn send(&self, frame: Frame) -> Result<Delivered, DeliveryError> {
        let cost = frame.len();
        self.room(cost).await?;
        let (tx, rx) = oneshot::channel();
        let seq = self.push(frame, cost, Some(tx))?;
        Ok(Delivered { rx, seq })
    }

    /// Sends `frame` at least once without waiting for room and without a
    /// handle: replies the runtime makes itself.
    pub(crate) fn push_reply(&self, frame: Frame) {
        let cost = frame.len();
        let _ = self.push(frame, cost, None);
    }

    fn push(
        &self,
        frame: Frame,
        cost: usize,
        done: Option<oneshot::Sender<Result<(), DeliveryError>>>,
    ) -> Result<u64, DeliveryError> {
        let mut s = lock(&self.state);
        if let Some(reason) = &s.ended {
            return Err(DeliveryError::Lost {
                reason: reason.clone(),
            });
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let frame = Frame::new(frame.header.with_seq(seq), frame.payload);
        // Queued under the lock: the order of sequence numbers is the order
        // of the frames on the wire.
        if let Some(session) = s.session.as_ref().filter(|x| !x.is_closed()) {
            session.push_frame(frame.clone());
        }
        s.unacked_bytes += cost;
        s.unacked.push_back(Sent {
            seq,
            frame,
            cost,
            done,
        });
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// The peer acknowledged every frame up to `n`.
    pub(crate) fn on_ack(&self, n: u64) {
        let mut done = Vec::new();
        {
            let mut s = lock(&self.state);
            while s.unacked.front().is_some_and(|f| f.seq <= n) {
                let Some(f) = s.unacked.pop_front() else {
                    break;
                };
                s.unacked_bytes -= f.cost;
                if let Some(d) = f.done {
                    done.push(d);
                }
                self.counters.acked.fetch_add(1, Ordering::Relaxed);
            }
        }
        for d in done {
            let _ = d.send(Ok(()));
        }
        self.room.notify_waiters();
    }

    /// A frame with sequence number `seq` arrived: whether it is new (a
    /// duplicate is dropped by the caller). Either way an acknowledgement is
    /// owed; `true` in the second place when it should leave at once.
    pub(crate) fn on_receive(&self, seq: u64) -> (bool, bool) {
        let mut s = lock(&self.state);
        s.owed = s.owed.saturating_add(1);
        let now = s.owed >= ACK_EVERY;
        if seq <= s.received {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return (false, now);
        }
        s.received = seq;
        (true, now)
    }

    /// The acknowledgement frame, when one is owed.
    pub(crate) fn take_ack(&self) -> Option<Frame> {
        let mut s = lock(&self.state);
        if s.owed == 0 {
            return None;
        }
        s.owed = 0;
        self.counters.acks_sent.fetch_add(1, Ordering::Relaxed);
        Some(ack_frame(s.received))
    }

    /// Whether an acknowledgement is owed.
    pub(crate) fn owes_ack(&self) -> bool {
        lock(&self.state).owed > 0
    }

    /// Registers a request sent at least once: its reply may come on any
    /// session of the link.
    pub(crate) fn pend(&self, correlation: u64) -> oneshot::Receiver<Frame> {
        let (tx, rx) = oneshot::channel();
        lock(&self.state).pending.insert(correlation, tx);
        rx
    }

    /// Forgets a request (answered, or its caller gave up).
    pub(crate) fn unpend(&self, correlation: u64) {
        lock(&self.state).pending.remove(&correlation);
    }

    /// Sends a request (its correlation id from [`Link::correlation`]) at
    /// least once and waits for its reply until `deadline`: `Err(None)` on
    /// time out, `Err(Some(reason))` when the state ended.
    pub(crate) async fn exchange(
        &self,
        frame: Frame,
        deadline: tokio::time::Instant,
    ) -> Result<Frame, Option<String>> {
        let correlation = frame.header.correlation;
        let rx = self.pend(correlation);
        // Forgets the wait however this ends (reply, time out, drop).
        struct Unpend<'a>(&'a Link, u64);
        impl Drop for Unpend<'_> {
            fn drop(&mut self) {
                self.0.unpend(self.1);
            }
        }
        let _unpend = Unpend(self, correlation);
        let wait = async {
            // The reply acknowledges the request better than the handle.
            let _ = self.send(frame).await.map_err(|e| match e {
                DeliveryError::Lost { reason } => Some(reason),
            })?;
            rx.await
                .map_err(|_| Some(self.ended().unwrap_or_else(|| "reliable state ended".into())))
        };
        tokio::time::timeout_at(deadline, wait)
            .await
            .unwrap_or(Err(None))
    }

    /// Hands a reply to the request it answers; gives it back when no
    /// request of the link waits for it.
    pub(crate) fn answer(&self, frame: Frame) -> Result<(), Frame> {
        let waiter = lock(&self.state).pending.remove(&frame.header.correlation);
        match waiter {
            Some(tx) => {
                let _ = tx.send(frame);
                Ok(())
            }
            None => Err(frame),
        }
    }

    /// Attaches a new session: what the peer reports received is
    /// acknowledged, the rest is queued on it again, in order, before
    /// anything else the session sends. `resumed`: the peer kept its state
    /// (otherwise the unacknowledged frames are renumbered from 1, for the
    /// peer's new state, and the receive count starts again).
    pub(crate) fn attach(
        &self,
        session: &Session,
        token: [u8; 16],
        peer_received: u64,
        resumed: bool,
    ) {
        if resumed {
            self.on_ack(peer_received);
            self.counters.resumes.fetch_add(1, Ordering::Relaxed);
        }
        let mut s = lock(&self.state);
        s.token = token;
        if !resumed {
            s.received = 0;
            s.owed = 0;
            let mut seq = 1;
            for f in s.unacked.iter_mut() {
                f.seq = seq;
                f.frame = Frame::new(f.frame.header.with_seq(seq), f.frame.payload.clone());
                seq += 1;
            }
            s.next_seq = seq;
        }
        for f in &s.unacked {
            session.push_frame(f.frame.clone());
            self.counters.resent.fetch_add(1, Ordering::Relaxed);
        }
        s.session = Some(session.clone());
    }

    /// The session `id` ended: the link keeps what it holds for the next.
    pub(crate) fn detach(&self, id: u64) {
        let mut s = lock(&self.state);
        if s.session.as_ref().is_some_and(|x| x.id() == id) {
            s.session = None;
        }
    }

    /// Server side: keeps a session's subscriptions and properties for the
    /// session that resumes it.
    pub(crate) fn keep(&self, subscriptions: Vec<(u32, Option<String>)>, props: Props) {
        let mut s = lock(&self.state);
        s.subscriptions = subscriptions;
        s.props = Some(props);
    }

    /// Takes what [`Link::keep`] kept.
    pub(crate) fn kept(&self) -> (Vec<(u32, Option<String>)>, Option<Props>) {
        let mut s = lock(&self.state);
        (std::mem::take(&mut s.subscriptions), s.props.take())
    }

    /// Ends the state: every unacknowledged message fails with `reason`.
    pub(crate) fn end(&self, reason: &str) {
        let sent: Vec<Sent> = {
            let mut s = lock(&self.state);
            if s.ended.is_some() {
                return;
            }
            s.ended = Some(reason.to_owned());
            s.session = None;
            s.pending.clear();
            s.unacked_bytes = 0;
            s.unacked.drain(..).collect()
        };
        for f in sent {
            if let Some(d) = f.done {
                let _ = d.send(Err(DeliveryError::Lost {
                    reason: reason.to_owned(),
                }));
            }
        }
        self.room.notify_waiters();
    }
}

/// An acknowledgement frame (link opcode 0): `uvarint(n)`.
pub(crate) fn ack_frame(n: u64) -> Frame {
    let mut b = BytesMut::with_capacity(10);
    varint::put(&mut b, n);
    Frame::new(FrameHeader::ack(), b.freeze())
}

/// Reads an acknowledgement's payload.
pub(crate) fn read_ack(payload: &Bytes) -> Option<u64> {
    let mut r = crate::wire::Reader::new(payload);
    let n = r.uvarint().ok()?;
    r.finish("ack").ok()?;
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_frames_round_trip() {
        let f = ack_frame(300);
        assert_eq!(&f.payload[..], &[0xac, 0x02]);
        assert_eq!(read_ack(&f.payload), Some(300));
        assert_eq!(read_ack(&Bytes::from_static(&[0x80])), None);
        assert_eq!(read_ack(&Bytes::from_static(&[1, 2])), None);
    }

    #[tokio::test]
    async fn cumulative_acks_resolve_in_order_and_free_the_budget() {
        let link = Link::new([0; 16], true, 100);
        let frame = || Frame::new(FrameHeader::one_way(3), Bytes::from_static(&[0; 40]));
        let a = link.send(frame()).await.unwrap();
        let b = link.send(frame()).await.unwrap();
        assert_eq!((a.seq(), b.seq()), (1, 2));
        // The third does not fit the budget until the first is acknowledged.
        let third = link.send(frame());
        tokio::pin!(third);
        assert!(futures_util::poll!(third.as_mut()).is_pending());
        link.on_ack(1);
        assert_eq!(a.await, Ok(()));
        let c = third.await.unwrap();
        assert_eq!(c.seq(), 3);
        assert_eq!(link.stats().unacked, 2);
        link.on_ack(3);
        assert_eq!(b.await, Ok(()));
        assert_eq!(c.await, Ok(()));
        assert_eq!(link.stats().unacked_bytes, 0);
    }

    #[test]
    fn duplicates_are_reported_and_acks_owed() {
        let link = Link::new([0; 16], false, 100);
        assert_eq!(link.on_receive(1), (true, false));
        assert_eq!(link.on_receive(2), (true, false));
        assert_eq!(link.on_receive(2), (false, false));
        assert_eq!(link.stats().duplicates, 1);
        let ack = link.take_ack().unwrap();
        assert_eq!(read_ack(&ack.payload), Some(2));
        assert!(link.take_ack().is_none());
        for seq in 3..3 + u64::from(ACK_EVERY) - 1 {
            assert!(!link.on_receive(seq).1);
        }
        assert!(link.on_receive(100).1);
    }

    #[tokio::test]
    async fn ending_fails_what_is_unacknowledged() {
        let link = Link::new([0; 16], true, 100);
        let a = link
            .send(Frame::new(FrameHeader::one_way(3), Bytes::new()))
            .await
            .unwrap();
        link.end("client closed");
        assert!(matches!(a.await, Err(DeliveryError::Lost { .. })));
        assert!(
            link.send(Frame::new(FrameHeader::one_way(3), Bytes::new()))
                .await
                .is_err()
        );
    }
}
