//! The publish/subscribe state every session keeps: the client side (the
//! subscriptions it holds, the publications waiting for the broker's answer)
//! and, on a server, the broker's record of the session as a subscriber.
//! `on_frame` handles the pub/sub frames the session receives and returns
//! what the connection task has to do.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use futures_util::task::AtomicWaker;
use tokio::sync::oneshot;

use super::Refusal;
use super::frames::{Delivered, Reply};
use crate::server::broker::{Broker, Peer};
use crate::session::Session;
use crate::wire::{ControlOp, Frame};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections are single map or queue operations.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A map keyed by ids: channel ids, and ids this side chose (correlation
/// and subscription ids). Looked up on every delivery, never grown by what
/// a peer sends, so SipHash's resistance to chosen keys buys nothing here.
pub(crate) type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// One multiplication per integer (the high bits, which the map's control
/// bytes use, are well mixed by it).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(MIX);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(MIX);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The publish/subscribe state of one session.
#[derive(Default)]
pub(crate) struct Local {
    /// Answers awaited from the broker, by correlation id.
    waiters: Mutex<IdMap<u64, oneshot::Sender<Result<bool, Refusal>>>>,
    subs: Mutex<Subs>,
    /// On a server: the session as the broker's subscriber. Taken out when
    /// the session ends (the peer holds the session: a cycle until then).
    pub(crate) peer: Mutex<Option<Arc<Peer>>>,
    /// Messages the server's filters refused on this session.
    pub(crate) filtered: AtomicU64,
    /// On a server: publications of the current read burst, not yet
    /// handed to the subscribers.
    pub(crate) staged: Mutex<crate::server::broker::Staged>,
    /// Small publish frames are written here and split off, so that one
    /// allocation serves many (see [`Local::frame_buffer`]).
    frames: Mutex<BytesMut>,
}

/// Deliveries routed during the connection task's read burst: each
/// subscription's go into its queue together at the end of the burst
/// ([`Local::flush_routed`]), with one lock and one wake of its reader.
/// They are kept with the subscriptions, under their lock: routing a
/// delivery takes one lock. What does not fit stays here while the
/// connection task waits for the reader ([`Local::poll_room`]).
#[derive(Default)]
struct Routed {
    runs: Vec<(Arc<SubQueue>, Vec<Bytes>)>,
}

/// The allocation small publish frames share (an idle session that ever
/// published holds at most this much of it).
const FRAME_CHUNK: usize = 4 * 1024;
/// Frames larger than this get a buffer of their own.
const SHARED_FRAME_MAX: usize = 512;

#[derive(Default)]
struct Subs {
    next_id: u64,
    entries: IdMap<u64, Entry>,
    by_channel: IdMap<u32, Vec<u64>>,
    /// Subscriptions per (channel, key): the broker is told once.
    counts: HashMap<(u32, Option<String>), usize>,
    /// Retained values announced by a subscribe's correlation go to that
    /// subscription only.
    replay: HashMap<u64, u64>,
    /// Deliveries of the current read burst, not yet in their queues.
    routed: Routed,
}

struct Entry {
    channel: u32,
    key: Option<String>,
    queue: Arc<SubQueue>,
}

/// What the connection task does after a pub/sub frame.
pub(crate) enum LinkOutcome {
    Done,
    /// Done, and a queue it filled needs its reader to run: the connection
    /// task ends its read burst and lets other tasks run before it reads
    /// on (a subscriber's writer on the broker). It waits for nobody: on an
    /// idle machine it goes on at once.
    Yield,
    /// Write this frame (a reply) with the task's own frames.
    Reply(Frame),
    /// Wait for this before reading more (the store's queue is full).
    Wait(BoxFuture<'static, ()>),
    /// A malformed frame: the session ends with this message.
    End(String),
}

impl Local {
    /// Encodes a frame of `len` bytes with `write` (which gets an empty
    /// buffer with room for them) and gives the bytes: small frames share
    /// chunks of [`FRAME_CHUNK`] bytes (no allocation, and no free on the
    /// writer's thread, per frame); larger ones get a buffer of their own.
    pub(crate) fn frame_buffer(&self, len: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
        if len > SHARED_FRAME_MAX {
            let mut buf = BytesMut::new();
            write(&mut buf);
            return buf.freeze();
        }
        let mut chunk = lock(&self.frames);
        if chunk.capacity() < len {
            // Reclaims the chunk when every frame cut from it is gone.
            chunk.reserve(FRAME_CHUNK);
        }
        write(&mut chunk);
        chunk.split().freeze()
    }

    /// The session's subscriber record, if it ever subscribed.
    pub(crate) fn peer(&self) -> Option<Arc<Peer>> {
        lock(&self.peer).clone()
    }

    /// The record, made on first use.
    pub(crate) fn peer_or(&self, make: impl FnOnce() -> Arc<Peer>) -> Arc<Peer> {
        lock(&self.peer).get_or_insert_with(make).clone()
    }

    /// Takes the record out (the session ended).
    pub(crate) fn take_peer(&self) -> Option<Arc<Peer>> {
        lock(&self.peer).take()
    }

    /// Registers a wait for the broker's answer to `correlation`.
    pub(crate) fn wait_reply(&self, correlation: u64) -> oneshot::Receiver<Result<bool, Refusal>> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(correlation, tx);
        rx
    }

    /// Forgets a wait (the caller gave up).
    pub(crate) fn forget_reply(&self, correlation: u64) {
        lock(&self.waiters).remove(&correlation);
    }

    /// A new local subscription to `channel` (and `key`); the retained
    /// values the broker sends for the subscribe `replay` go to it.
    pub(crate) fn add_subscription(
        &self,
        channel: u32,
        key: Option<String>,
        replay: u64,
        capacity: usize,
    ) -> (u64, Arc<SubQueue>) {
        let mut s = lock(&self.subs);
        s.next_id += 1;
        let id = s.next_id;
        let queue = Arc::new(SubQueue::new(capacity));
        let count = s.counts.entry((channel, key.clone())).or_insert(0);
        *count += 1;
        s.entries.insert(
            id,
            Entry {
                channel,
                key,
                queue: queue.clone(),
            },
        );
        s.by_channel.entry(channel).or_default().push(id);
        if replay != 0 {
            s.replay.insert(replay, id);
        }
        (id, queue)
    }

    /// Removes a local subscription; `Some((channel, key))` when it was the
    /// last for that pair (the broker must be told).
    pub(crate) fn remove_subscription(&self, id: u64) -> Option<(u32, Option<String>)> {
        let mut s = lock(&self.subs);
        let entry = s.entries.remove(&id)?;
        entry.queue.close();
        if let Some(ids) = s.by_channel.get_mut(&entry.channel) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                s.by_channel.remove(&entry.channel);
            }
        }
        s.replay.retain(|_, sub| *sub != id);
        let pair = (entry.channel, entry.key);
        let count = s.counts.get_mut(&pair)?;
        *count -= 1;
        if *count == 0 {
            s.counts.remove(&pair);
            return Some(pair);
        }
        None
    }

    /// Ends every local subscription (after `unsubscribe_all`).
    pub(crate) fn clear_subscriptions(&self) {
        let mut s = lock(&self.subs);
        for e in s.entries.values() {
            e.queue.close();
        }
        *s = Subs {
            next_id: s.next_id,
            ..Subs::default()
        };
    }

    /// The session ended: wake everything waiting on it. `close`: the
    /// subscriptions end too (otherwise they wait for the session that
    /// resumes this one, see [`Local::adopt`]).
    pub(crate) fn session_ended(&self, close: bool) {
        // What arrived before the end is read before it.
        self.flush(true);
        lock(&self.waiters).clear();
        if close {
            self.close_subscriptions();
        }
    }

    /// Ends every subscription's queue (their readers see the end).
    pub(crate) fn close_subscriptions(&self) {
        let s = lock(&self.subs);
        for e in s.entries.values() {
            e.queue.close();
        }
    }

    /// Takes over the subscriptions of the session this one resumes: the
    /// deliveries of this session go to the same queues.
    pub(crate) fn adopt(&self, old: &Local) {
        let taken = std::mem::take(&mut *lock(&old.subs));
        *lock(&self.subs) = taken;
    }

    /// The distinct `(channel, key)` pairs subscribed to, each with the id
    /// of one subscription that gets the retained values sent for
    /// `replay(pair)` (a correlation id of the subscribe frame).
    pub(crate) fn resubscribe(
        &self,
        mut replay: impl FnMut() -> u64,
    ) -> Vec<(u64, u32, Option<String>)> {
        let mut s = lock(&self.subs);
        let pairs: Vec<(u32, Option<String>)> = s.counts.keys().cloned().collect();
        let mut out = Vec::with_capacity(pairs.len());
        for (channel, key) in pairs {
            let first = s
                .entries
                .iter()
                .filter(|(_, e)| e.channel == channel && e.key == key)
                .map(|(id, _)| *id)
                .min();
            let correlation = replay();
            if let Some(id) = first {
                s.replay.insert(correlation, id);
            }
            out.push((correlation, channel, key));
        }
        out
    }

    /// Pushes the deliveries of the burst into their queues. Returns
    /// whether some did not fit: they wait here, and the connection task
    /// waits for their readers ([`Local::poll_room`]) before it reads on.
    /// `arrived` are the publications the burst received (see
    /// [`Arrived`]): they are routed first, under the same lock.
    pub(crate) fn flush_routed(&self, arrived: &mut Vec<Arrived>) -> bool {
        let mut s = lock(&self.subs);
        for a in arrived.drain(..) {
            s.route(a);
        }
        Self::flush_in(&mut s, false)
    }

    /// With `force`, everything goes in now.
    fn flush(&self, force: bool) -> bool {
        Self::flush_in(&mut lock(&self.subs), force)
    }

    fn flush_in(s: &mut Subs, force: bool) -> bool {
        let r = &mut s.routed;
        if r.runs.is_empty() {
            return false;
        }
        r.runs.retain_mut(|(queue, items)| {
            queue.push_many(items, force);
            !items.is_empty()
        });
        !r.runs.is_empty()
    }

    /// Ready once every delivery waiting for room is in its queue (a reader
    /// took from its queue and wakes this).
    pub(crate) fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = lock(&self.subs);
        // Registered before trying: a take in between wakes this task.
        for (queue, _) in &s.routed.runs {
            queue.room.register(cx.waker());
        }
        if Self::flush_in(&mut s, false) {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// The readers of the queues that still have no room did not take in
    /// time (`SessionConfig::subscription_patience`): their subscriptions
    /// count as not read (the oldest deliveries are dropped, without
    /// waiting, until they take again), and what waited goes in now.
    pub(crate) fn give_up_waiting(&self) {
        let mut s = lock(&self.subs);
        for (queue, _) in &s.routed.runs {
            queue.unread.store(true, Ordering::Release);
        }
        Self::flush_in(&mut s, true);
    }
}

/// A publication the connection task received in a read burst, decoded
/// enough to route it: routed at the end of the burst, with the others,
/// under one lock of the subscriptions ([`Local::flush_routed`]).
pub(crate) struct Arrived {
    /// The `deliver` frame's payload.
    payload: Bytes,
    channel: u32,
    key: Option<String>,
    /// The subscribe correlation of a retained value sent on subscribing; 0 for live ones.
    replay: u64,
}

impl Subs {
    /// Hands a delivery to the subscriptions it is for, staged until the
    /// end of the burst (see [`Routed`]).
    fn route(&mut self, a: Arrived) {
        let Subs {
            entries,
            by_channel,
            replay: replays,
            routed,
            ..
        } = self;
        if a.replay != 0 {
            if let Some(e) = replays.get(&a.replay).and_then(|id| entries.get(id)) {
                routed.stage(&e.queue, a.payload);
            }
            return;
        }
        let Some(ids) = by_channel.get(&a.channel) else {
            return;
        };
        let key = a.key.as_deref();
        let mut matching = ids
            .iter()
            .filter_map(|id| entries.get(id))
            .filter(|e| e.key.is_none() || e.key.as_deref() == key)
            .peekable();
        while let Some(e) = matching.next() {
            if matching.peek().is_none() {
                // The last (usually the only) one takes the delivery itself.
                routed.stage(&e.queue, a.payload);
                break;
            }
            routed.stage(&e.queue, a.payload.clone());
        }
    }
}

impl Routed {
    fn stage(&mut self, queue: &Arc<SubQueue>, payload: Bytes) {
        match self.runs.iter_mut().find(|(q, _)| Arc::ptr_eq(q, queue)) {
            Some((_, items)) => items.push(payload),
            None => self.runs.push((queue.clone(), vec![payload])),
        }
    }
}

/// Runs the handler of a device-to-device message: (sender, type id, message).
pub(crate) type Direct<'a> = dyn Fn(&str, u32, Bytes) -> Option<BoxFuture<'static, ()>> + 'a;

/// Handles a received pub/sub frame. `broker` is the server's, on a server
/// session. A delivered publication goes to `arrived`, the connection
/// task's, routed at the end of its read burst (see [`Arrived`]).
pub(crate) fn on_frame(
    session: &Session,
    op: ControlOp,
    payload: Bytes,
    broker: Option<&Arc<Broker>>,
    direct: &Direct<'_>,
    arrived: &mut Vec<Arrived>,
) -> LinkOutcome {
    let local = session.pubsub();
    match op {
        ControlOp::Deliver => {
            let (channel, replay, key) = match Delivered::decode(&payload) {
                Ok(Delivered::Publication(head, _)) => {
                    (head.channel, head.replay, head.key.map(str::to_owned))
                }
                Ok(Delivered::Message { from, type_id, at }) => {
                    let message = super::frames::rest(&payload, at);
                    return match direct(from, type_id, message) {
                        Some(fut) => LinkOutcome::Wait(fut),
                        None => LinkOutcome::Done,
                    };
                }
                Err(e) => return LinkOutcome::End(format!("malformed deliver frame: {e}")),
            };
            arrived.push(Arrived {
                payload,
                channel,
                key,
                replay,
            });
            LinkOutcome::Done
        }
        ControlOp::PubSubReply => match Reply::decode(&payload) {
            Ok(reply) => {
                if let Some(tx) = lock(&local.waiters).remove(&reply.correlation) {
                    let _ = tx.send(reply.outcome);
                }
                LinkOutcome::Done
            }
            Err(e) => LinkOutcome::End(format!("malformed pubsub-reply frame: {e}")),
        },
        ControlOp::Subscribe | ControlOp::Publish => match broker {
            Some(b) => b.on_frame(session, op, payload),
            None => crate::server::broker::no_broker(op, &payload),
        },
        _ => LinkOutcome::Done,
    }
}

/// The bounded queue of one subscription.
///
/// When it is full, the session's connection task stops reading and waits
/// for the reader to take (so that a reader that is only slower for a
/// moment, or waiting for its turn on a busy runtime, loses nothing; the
/// broker's queue for this subscriber absorbs the rest, under the broker's
/// slow-subscriber policy). A reader that takes nothing for the session's
/// `subscription_patience` is not read: from then on, until it takes again,
/// the oldest delivery is dropped and counted ([`SubQueue::dropped`]) and
/// the connection task does not wait for it.
pub(crate) struct SubQueue {
    items: Mutex<VecDeque<Bytes>>,
    waker: AtomicWaker,
    /// The connection task, waiting for room.
    room: AtomicWaker,
    /// The reader did not take in time: full means drop the oldest.
    unread: AtomicBool,
    closed: AtomicBool,
    capacity: usize,
    dropped: AtomicU64,
}

impl SubQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        SubQueue {
            items: Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            room: AtomicWaker::new(),
            unread: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a delivery, dropping the oldest when full.
    pub(crate) fn push(&self, item: Bytes) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        {
            let mut q = lock(&self.items);
            if q.len() >= self.capacity {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(item);
        }
        self.waker.wake();
    }

    /// Pushes deliveries from the front of `items` while the queue has
    /// room (all of them with `force` or when the reader does not read,
    /// dropping the oldest queued).
    fn push_many(&self, items: &mut Vec<Bytes>, force: bool) {
        if self.closed.load(Ordering::Acquire) {
            items.clear();
            return;
        }
        let force = force || self.unread.load(Ordering::Acquire);
        let pushed = {
            let mut q = lock(&self.items);
            let n = if force {
                items.len()
            } else {
                self.capacity.saturating_sub(q.len()).min(items.len())
            };
            for item in items.drain(..n) {
                if q.len() >= self.capacity {
                    q.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                q.push_back(item);
            }
            n
        };
        if pushed > 0 {
            self.waker.wake();
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Deliveries dropped because the subscription's reader fell behind.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Moves every queued delivery to `into` (which must be empty) at once,
    /// under one lock: `Ready(true)` when it moved some, `Ready(false)` once
    /// closed and empty.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, into: &mut VecDeque<Bytes>) -> Poll<bool> {
        let take = |into: &mut VecDeque<Bytes>| {
            let mut q = lock(&self.items);
            if q.is_empty() {
                return false;
            }
            // The two buffers change places: neither allocates again.
            std::mem::swap(&mut *q, into);
            drop(q);
            if self.unread.load(Ordering::Relaxed) {
                self.unread.store(false, Ordering::Release);
            }
            // A connection task waiting for room goes on.
            self.room.wake();
            true
        };
        if take(into) {
            return Poll::Ready(true);
        }
        self.waker.register(cx.waker());
        if take(into) {
            return Poll::Ready(true);
        }
        if self.is_closed() {
            return Poll::Ready(false);
        }
        Poll::Pending
    }
}
