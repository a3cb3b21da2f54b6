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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::{Props, Session, lock};
use crate::wire::{Frame, FrameHeader};

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
    /// the client was closed, or the server expired the session. A durable
    /// outbox still holds it for the next run.
    #[error("not acknowledged: {reason}")]
    Lost {
        /// Why the state ended.
        reason: String,
    },
    /// Its time-to-live passed before it was written.
    #[error("not sent: its time-to-live passed while it was queued")]
    Expired,
    /// A full outbox dropped it ([`Overflow::DropOldest`]).
    #[error("not sent: dropped from a full outbox")]
    Dropped,
    /// A later message with the same type and key replaced it while it was
    /// queued ([`SendOptions::latest`]).
    #[error("not sent: replaced by a later value with the same key")]
    Superseded,
    /// The outbox is full ([`Overflow::Refuse`]).
    #[error("outbox full ({messages} messages, {bytes} bytes)")]
    Full {
        /// Messages queued.
        messages: usize,
        /// Their bytes.
        bytes: usize,
    },
    /// The durable outbox could not record it.
    #[error("outbox store: {message}")]
    Store {
        /// What failed.
        message: String,
    },
}

/// Resolves when the peer acknowledged an at-least-once message.
#[must_use = "the handle tells when the peer acknowledged the message; drop it to not wait"]
pub struct Delivered {
    rx: oneshot::Receiver<Result<(), DeliveryError>>,
    seq: u64,
}

impl Delivered {
    /// The message's number in the sender's outbox (0: sent at most once).
    pub fn id(&self) -> u64 {
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

/// How an at-least-once message is queued (see [`Session::send_with_options`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendOptions {
    pub(crate) ttl: Option<std::time::Duration>,
    pub(crate) priority: u8,
    pub(crate) latest: Option<String>,
}

impl SendOptions {
    /// At least once, priority 0, no time-to-live, no coalescing.
    pub fn new() -> Self {
        SendOptions::default()
    }

    /// Dropped (its handle fails with [`DeliveryError::Expired`]) when not
    /// written to a connection within `ttl` of being sent.
    pub fn ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Queued messages of a higher priority are written first (0 by
    /// default; messages of one priority keep their order).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// "Latest value wins": a queued, not yet written message of the same
    /// type and `key` is replaced by this one (its handle fails with
    /// [`DeliveryError::Superseded`]), so that a device offline for a day
    /// sends one status, not thousands.
    pub fn latest(mut self, key: impl Into<String>) -> Self {
        self.latest = Some(key.into());
        self
    }
}

/// What a full outbox does with another at-least-once message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// The sender waits for room (backpressure, nothing lost). The default.
    #[default]
    Wait,
    /// The oldest queued message of the lowest priority is dropped (its
    /// handle fails with [`DeliveryError::Dropped`]) to make room.
    DropOldest,
    /// The new message is refused ([`DeliveryError::Full`]).
    Refuse,
}

/// Limits of the queue of at-least-once messages not yet written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Messages queued at most (65,536 by default).
    pub max_messages: usize,
    /// Bytes (encoded frames) queued at most (16 MiB by default).
    pub max_bytes: usize,
    /// What happens beyond either.
    pub overflow: Overflow,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        OutboxLimits {
            max_messages: 64 * 1024,
            max_bytes: 16 * 1024 * 1024,
            overflow: Overflow::Wait,
        }
    }
}

/// A message queued and not yet written.
struct Queued {
    id: u64,
    frame: Frame,
    cost: usize,
    done: Option<oneshot::Sender<Result<(), DeliveryError>>>,
    expires: Option<Instant>,
    latest: Option<(u32, String)>,
}

/// A frame sent at least once and not yet acknowledged.
struct Sent {
    /// The outbox record (0: not recorded, a reply the runtime made).
    id: u64,
    seq: u64,
    frame: Frame,
    cost: usize,
    done: Option<oneshot::Sender<Result<(), DeliveryError>>>,
}

/// A request sent at least once that waits for its reply.
struct Waiting {
    reply: oneshot::Sender<Frame>,
    /// The request (its outbox id, and the frame without sequence number),
    /// once queued: sent again if the peer loses its state after it
    /// acknowledged the request but before its reply was acknowledged.
    request: Option<(u64, Frame)>,
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
    expired: AtomicU64,
    dropped: AtomicU64,
    superseded: AtomicU64,
}

/// Statistics of the reliable state of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// At-least-once frames written (each once, resends not counted).
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
    /// Messages queued, not yet written.
    pub queued: u64,
    /// Their bytes.
    pub queued_bytes: u64,
    /// Messages dropped because their time-to-live passed.
    pub expired: u64,
    /// Messages dropped by a full outbox ([`Overflow::DropOldest`]).
    pub dropped: u64,
    /// Messages replaced by a later one with the same key
    /// ([`SendOptions::latest`]).
    pub superseded: u64,
    /// The highest sequence number received.
    pub received: u64,
}

/// Priority-ordered: the highest first, then in sending order.
type QueueKey = (std::cmp::Reverse<u8>, u64);

struct State {
    /// Names the state in the server's resume table.
    token: [u8; 16],
    next_seq: u64,
    /// Outbox record ids.
    next_id: u64,
    queue: std::collections::BTreeMap<QueueKey, Queued>,
    queued_bytes: usize,
    /// Where each "latest value" key's message waits.
    latest: HashMap<(u32, String), QueueKey>,
    unacked: VecDeque<Sent>,
    unacked_bytes: usize,
    /// The highest sequence number received.
    received: u64,
    /// Received frames whose handlers have not ended: acknowledgements stop
    /// below the lowest (see [`Link::begin`]).
    running: std::collections::BTreeSet<u64>,
    /// Counts the peer's states: a handler of an earlier one that ends
    /// late does not touch `running`, numbered anew since.
    epoch: u64,
    /// Frames received since the last acknowledgement was written.
    owed: u32,
    /// The session this link writes to now.
    session: Option<Session>,
    /// Requests sent at least once, awaiting their reply, by correlation id:
    /// they survive the session, and the reply may come on the next.
    pending: BTreeMap<u64, Waiting>,
    /// The next correlation id (continues across sessions, so that a reply
    /// of a resumed request can never match a new one).
    next_correlation: u64,
    /// Correlation ids below it are covered by a recorded reservation
    /// (durable outbox only).
    reserved: u64,
    /// Server side: the subscriptions and properties of the last session,
    /// restored on the next one.
    subscriptions: Vec<(u32, Option<String>)>,
    props: Option<Props>,
    /// Set when the state ends (client closed, server expired it).
    ended: Option<String>,
    /// Outbox ids of the sends waiting for their durable record's commit
    /// (see [`CommitTurn`]).
    committing: std::collections::BTreeSet<u64>,
}

/// The reliable state of a session, shared by the connections that resume
/// it (see the module documentation).
pub(crate) struct Link {
    /// Bytes of frames written and not acknowledged at most (the window).
    window: usize,
    limits: OutboxLimits,
    state: Mutex<State>,
    room: Notify,
    counters: Counters,
    /// Where the outbox is kept across restarts, if anywhere.
    durable: Option<Arc<dyn Durable>>,
    /// A send's commit was seen (see [`CommitTurn`]).
    committed: Notify,
}

/// A send waiting for its durable record's commit. Sends on one link
/// return in the order they were queued: one whose commit was seen waits
/// until the earlier ones' were. The writer thread's commits are seen in
/// whatever order the operating system wakes their senders; without this,
/// two sends queued in one order could return in the other. Dropping it
/// (the send's future dropped) lets the later sends go on.
struct CommitTurn<'a> {
    link: &'a Link,
    id: u64,
}

impl CommitTurn<'_> {
    /// Waits until no earlier send's commit is awaited.
    async fn wait(&self) {
        loop {
            let notified = self.link.committed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if lock(&self.link.state).committing.first() == Some(&self.id) {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for CommitTurn<'_> {
    fn drop(&mut self) {
        lock(&self.link.state).committing.remove(&self.id);
        self.link.committed.notify_waiters();
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Correlation ids a durable outbox reserves at a time (see
/// [`Link::correlation`]).
const CORRELATION_BLOCK: u64 = 8192;

/// Frames received without an acknowledgement after which one is written
/// at once, without waiting for the acknowledgement delay.
pub(crate) const ACK_EVERY: u32 = 64;

/// A change of the outbox, recorded durably.
#[derive(Debug, Clone)]
// Read by the redb store only (feature `store`).
#[cfg_attr(not(feature = "store"), allow(dead_code))]
pub(crate) enum Record {
    /// A message queued: its frame (without sequence number), priority,
    /// expiry (Unix ms, 0: none) and "latest value" key.
    Put {
        id: u64,
        frame: Frame,
        priority: u8,
        expires_unix_ms: u64,
        latest: Option<String>,
    },
    /// The message was written with this sequence number.
    Numbered { id: u64, seq: u64 },
    /// Acknowledged, expired, dropped or replaced.
    Remove { id: u64 },
    /// The state's token and the highest sequence number received.
    Meta { token: [u8; 16], received: u64 },
    /// Correlation ids from this one up are unused: where a restarted
    /// process starts numbering its requests.
    Correlations { from: u64 },
}

/// Keeps the outbox across restarts (the redb store of
/// [`crate::outbox::Outbox`]).
pub(crate) trait Durable: Send + Sync + 'static {
    /// Records changes; `done` is told once they are durable.
    fn record(&self, records: Vec<Record>, done: Option<oneshot::Sender<Result<(), String>>>);
}

/// What a durable outbox held when it was opened.
#[derive(Debug, Default)]
pub(crate) struct Restored {
    pub(crate) token: Option<[u8; 16]>,
    pub(crate) received: u64,
    /// Correlation ids from this one up were never used.
    pub(crate) correlations: u64,
    /// `(id, seq (0: not written), frame, priority, expires_unix_ms, latest)`, by id.
    pub(crate) messages: Vec<(u64, u64, Frame, u8, u64, Option<String>)>,
}

fn unix_ms(at: Instant) -> u64 {
    let from_now = at.saturating_duration_since(Instant::now());
    (std::time::SystemTime::now() + from_now)
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        .max(1)
}

fn instant_of(unix_ms: u64) -> Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + std::time::Duration::from_millis(unix_ms.saturating_sub(now))
}

impl Link {
    /// A new link; `initiator`: this side opened the connection (odd
    /// correlation ids). `window`: bytes of unacknowledged frames.
    pub(crate) fn new(token: [u8; 16], initiator: bool, window: usize) -> Arc<Link> {
        Self::with(token, initiator, window, OutboxLimits::default(), None)
    }

    /// A new link with outbox limits and a durable store.
    pub(crate) fn with(
        token: [u8; 16],
        initiator: bool,
        window: usize,
        limits: OutboxLimits,
        durable: Option<Arc<dyn Durable>>,
    ) -> Arc<Link> {
        Arc::new(Link {
            window: window.max(1),
            limits,
            state: Mutex::new(State {
                token,
                next_seq: 1,
                next_id: 1,
                queue: Default::default(),
                queued_bytes: 0,
                latest: HashMap::new(),
                unacked: VecDeque::new(),
                unacked_bytes: 0,
                received: 0,
                running: Default::default(),
                epoch: 0,
                owed: 0,
                session: None,
                pending: BTreeMap::new(),
                next_correlation: if initiator { 1 } else { 2 },
                reserved: 0,
                subscriptions: Vec::new(),
                props: None,
                committing: Default::default(),
                ended: None,
            }),
            room: Notify::new(),
            counters: Counters::default(),
            durable,
            committed: Notify::new(),
        })
    }

    /// Puts back what a durable outbox held: written messages wait for an
    /// acknowledgement (they are written again when the session resumes),
    /// the others are queued again.
    pub(crate) fn restore(&self, restored: Restored) {
        let mut s = lock(&self.state);
        if let Some(t) = restored.token {
            s.token = t;
        }
        s.received = restored.received;
        // Above every id the earlier process used (and of the same parity).
        let parity = s.next_correlation % 2;
        let mut from = restored.correlations.max(s.next_correlation);
        for (_, _, frame, ..) in &restored.messages {
            from = from.max(frame.header.correlation + 1);
        }
        s.next_correlation = from + (from % 2 != parity) as u64;
        let mut numbered: Vec<_> = Vec::new();
        for (id, seq, frame, priority, expires, latest) in restored.messages {
            s.next_id = s.next_id.max(id + 1);
            let cost = frame.len();
            if seq != 0 {
                numbered.push(Sent {
                    id,
                    seq,
                    frame: Frame::new(frame.header.with_seq(seq), frame.payload),
                    cost,
                    done: None,
                });
                continue;
            }
            let key = (std::cmp::Reverse(priority), id);
            let latest = latest.map(|k| (frame.header.type_id, k));
            if let Some(l) = &latest {
                s.latest.insert(l.clone(), key);
            }
            s.queued_bytes += cost;
            s.queue.insert(
                key,
                Queued {
                    id,
                    frame,
                    cost,
                    done: None,
                    expires: (expires != 0).then(|| instant_of(expires)),
                    latest,
                },
            );
        }
        numbered.sort_by_key(|f| f.seq);
        for f in numbered {
            s.next_seq = s.next_seq.max(f.seq + 1);
            s.unacked_bytes += f.cost;
            s.unacked.push_back(f);
        }
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

    /// What a resuming handshake reports received: as acknowledgements do,
    /// only what was handled when it had to be (the rest is sent again,
    /// and dropped here as a duplicate while its handler runs on).
    pub(crate) fn received(&self) -> u64 {
        Self::acknowledgeable(&lock(&self.state))
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
            expired: c.expired.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            superseded: c.superseded.load(Ordering::Relaxed),
            unacked: s.unacked.len() as u64,
            unacked_bytes: s.unacked_bytes as u64,
            queued: s.queue.len() as u64,
            queued_bytes: s.queued_bytes as u64,
            received: s.received,
        }
    }

    /// A correlation id for a new exchange (continues across sessions).
    pub(crate) fn correlation(&self) -> u64 {
        let mut s = lock(&self.state);
        let c = s.next_correlation;
        s.next_correlation += 2;
        // With a durable outbox, the ids a restarted process may use start
        // above every id this one used: a reply the peer still holds for a
        // request of this process must not answer one of the next. The
        // bound is recorded a block ahead, so that a record still in the
        // store's queue when the process dies is never the one needed.
        if let Some(d) = &self.durable
            && s.next_correlation + CORRELATION_BLOCK > s.reserved
        {
            s.reserved = s.next_correlation + 2 * CORRELATION_BLOCK;
            d.record(vec![Record::Correlations { from: s.reserved }], None);
        }
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

    fn lost(reason: &str) -> DeliveryError {
        DeliveryError::Lost {
            reason: reason.to_owned(),
        }
    }

    /// Makes room in the queue for a message of `cost` bytes, by the
    /// overflow policy: `Ok(true)` when there is room now, `Ok(false)` when
    /// the caller should wait.
    fn make_room(&self, s: &mut State, cost: usize) -> Result<bool, DeliveryError> {
        let fits = |s: &State| {
            s.queue.is_empty()
                || (s.queue.len() < self.limits.max_messages
                    && s.queued_bytes + cost <= self.limits.max_bytes)
        };
        if fits(s) {
            return Ok(true);
        }
        match self.limits.overflow {
            Overflow::Wait => Ok(false),
            Overflow::Refuse => Err(DeliveryError::Full {
                messages: s.queue.len(),
                bytes: s.queued_bytes,
            }),
            Overflow::DropOldest => {
                while !fits(s) {
                    // The lowest priority is last in the map; its oldest
                    // message is the first of that priority.
                    let Some(lowest) = s.queue.keys().next_back().map(|k| k.0) else {
                        break;
                    };
                    let key = *s
                        .queue
                        .range((lowest, 0)..)
                        .next()
                        .map(|(k, _)| k)
                        .expect("a key of that priority exists");
                    let q = self.unqueue(s, key);
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    self.forget(q, DeliveryError::Dropped);
                }
                Ok(true)
            }
        }
    }

    /// Takes a message out of the queue.
    fn unqueue(&self, s: &mut State, key: QueueKey) -> Queued {
        let q = s.queue.remove(&key).expect("queued");
        s.queued_bytes -= q.cost;
        if let Some(l) = &q.latest
            && s.latest.get(l) == Some(&key)
        {
            s.latest.remove(l);
        }
        q
    }

    /// A message leaves the outbox without being written.
    fn forget(&self, q: Queued, why: DeliveryError) {
        if let Some(d) = &self.durable {
            d.record(vec![Record::Remove { id: q.id }], None);
        }
        if let Some(done) = q.done {
            let _ = done.send(Err(why));
        }
    }

    /// Sends `frame` at least once: queues it (waiting for room, or by the
    /// overflow policy), durably when the outbox is kept on disk, and
    /// writes it on the attached session as soon as the window allows
    /// (otherwise it leaves on the next session).
    pub(crate) async fn send(
        self: &Arc<Self>,
        frame: Frame,
        options: &SendOptions,
    ) -> Result<Delivered, DeliveryError> {
        let cost = frame.len();
        let (tx, rx) = oneshot::channel();
        let mut tx = Some(tx);
        let (id, durable) = loop {
            let notified = self.room.notified();
            {
                let mut s = lock(&self.state);
                if let Some(reason) = &s.ended {
                    return Err(Self::lost(reason));
                }
                // "Latest value wins": the one waiting goes.
                let latest = options
                    .latest
                    .as_ref()
                    .map(|k| (frame.header.type_id, k.clone()));
                if let Some(l) = &latest
                    && let Some(key) = s.latest.get(l).copied()
                {
                    let q = self.unqueue(&mut s, key);
                    self.counters.superseded.fetch_add(1, Ordering::Relaxed);
                    self.forget(q, DeliveryError::Superseded);
                }
                if self.make_room(&mut s, cost)? {
                    let id = s.next_id;
                    s.next_id += 1;
                    let key = (std::cmp::Reverse(options.priority), id);
                    let expires = options.ttl.map(|t| Instant::now() + t);
                    if let Some(l) = &latest {
                        s.latest.insert(l.clone(), key);
                    }
                    if self.durable.is_some() {
                        s.committing.insert(id);
                    }
                    let record = self.durable.as_ref().map(|_| Record::Put {
                        id,
                        frame: frame.clone(),
                        priority: options.priority,
                        expires_unix_ms: expires.map_or(0, unix_ms),
                        latest: options.latest.clone(),
                    });
                    s.queued_bytes += cost;
                    s.queue.insert(
                        key,
                        Queued {
                            id,
                            frame: frame.clone(),
                            cost,
                            done: tx.take(),
                            expires,
                            latest,
                        },
                    );
                    if let Some(expires) = expires {
                        let weak = Arc::downgrade(self);
                        tokio::spawn(async move {
                            tokio::time::sleep_until(expires).await;
                            if let Some(link) = weak.upgrade() {
                                link.expire();
                            }
                        });
                    }
                    break (id, record);
                }
            }
            notified.await;
        };
        // Durable before it may leave: a message written and acknowledged
        // must never be one a restart brings back from nowhere, and one
        // queued must survive a crash once `send` returned.
        if let (Some(d), Some(record)) = (&self.durable, durable) {
            let turn = CommitTurn { link: self, id };
            let (done, committed) = oneshot::channel();
            d.record(vec![record], Some(done));
            // An inline store (`Outbox::open_inline`) has answered already;
            // the writer thread answers when its commit is durable.
            let committed = committed.await;
            turn.wait().await;
            drop(turn);
            match committed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    self.withdraw(id);
                    return Err(DeliveryError::Store { message: e });
                }
                Err(_) => {
                    self.withdraw(id);
                    return Err(DeliveryError::Store {
                        message: "the outbox store stopped".into(),
                    });
                }
            }
        }
        self.pump();
        Ok(Delivered { rx, seq: id })
    }

    /// Takes back a message whose record could not be stored.
    fn withdraw(&self, id: u64) {
        let mut s = lock(&self.state);
        let key = s.queue.keys().find(|k| k.1 == id).copied();
        if let Some(key) = key {
            let _ = self.unqueue(&mut s, key);
        }
        drop(s);
        self.room.notify_waiters();
    }

    /// Drops the queued messages whose time-to-live has passed.
    fn expire(&self) {
        let now = Instant::now();
        let gone: Vec<Queued> = {
            let mut s = lock(&self.state);
            let keys: Vec<QueueKey> = s
                .queue
                .iter()
                .filter(|(_, q)| q.expires.is_some_and(|e| e <= now))
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter().map(|k| self.unqueue(&mut s, k)).collect()
        };
        if gone.is_empty() {
            return;
        }
        for q in gone {
            self.counters.expired.fetch_add(1, Ordering::Relaxed);
            self.forget(q, DeliveryError::Expired);
        }
        self.room.notify_waiters();
    }

    /// Writes queued messages on the attached session while the window of
    /// unacknowledged bytes has room, each with the next sequence number.
    pub(crate) fn pump(&self) {
        let mut records = Vec::new();
        let mut expired = Vec::new();
        let moved = {
            let mut s = lock(&self.state);
            let Some(session) = s.session.clone().filter(|x| !x.is_closed()) else {
                return;
            };
            let now = Instant::now();
            let mut moved = false;
            while let Some((&key, q)) = s.queue.iter().next() {
                if q.expires.is_some_and(|e| e <= now) {
                    expired.push(self.unqueue(&mut s, key));
                    continue;
                }
                if !s.unacked.is_empty() && s.unacked_bytes + q.cost > self.window {
                    break;
                }
                let q = self.unqueue(&mut s, key);
                let seq = s.next_seq;
                s.next_seq += 1;
                let frame = Frame::new(q.frame.header.with_seq(seq), q.frame.payload);
                // Queued under the lock: the order of sequence numbers is
                // the order of the frames on the wire.
                session.push_frame(frame.clone());
                if self.durable.is_some() {
                    records.push(Record::Numbered { id: q.id, seq });
                }
                s.unacked_bytes += q.cost;
                s.unacked.push_back(Sent {
                    id: q.id,
                    seq,
                    frame,
                    cost: q.cost,
                    done: q.done,
                });
                self.counters.sent.fetch_add(1, Ordering::Relaxed);
                moved = true;
            }
            moved
        };
        for q in expired {
            self.counters.expired.fetch_add(1, Ordering::Relaxed);
            self.forget(q, DeliveryError::Expired);
        }
        if let (Some(d), false) = (&self.durable, records.is_empty()) {
            d.record(records, None);
        }
        if moved {
            self.room.notify_waiters();
        }
    }

    /// Sends a reply the runtime made at least once, at once (not through
    /// the outbox queue, not recorded: a reply is not the device's data).
    pub(crate) fn push_reply(&self, frame: Frame) {
        let mut s = lock(&self.state);
        if s.ended.is_some() {
            return;
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        let frame = Frame::new(frame.header.with_seq(seq), frame.payload);
        if let Some(session) = s.session.as_ref().filter(|x| !x.is_closed()) {
            session.push_frame(frame.clone());
        }
        let cost = frame.len();
        s.unacked_bytes += cost;
        s.unacked.push_back(Sent {
            id: 0,
            seq,
            frame,
            cost,
            done: None,
        });
    }

    /// The peer acknowledged every frame up to `n`.
    pub(crate) fn on_ack(&self, n: u64) {
        let mut done = Vec::new();
        let mut records = Vec::new();
        {
            let mut s = lock(&self.state);
            while s.unacked.front().is_some_and(|f| f.seq <= n) {
                let Some(f) = s.unacked.pop_front() else {
                    break;
                };
                s.unacked_bytes -= f.cost;
                if f.id != 0 && self.durable.is_some() {
                    records.push(Record::Remove { id: f.id });
                }
                if let Some(d) = f.done {
                    done.push(d);
                }
                self.counters.acked.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let (Some(d), false) = (&self.durable, records.is_empty()) {
            d.record(records, None);
        }
        for d in done {
            let _ = d.send(Ok(()));
        }
        self.pump();
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

    /// The handler of received frame `seq` runs on (it did not finish at
    /// once): acknowledgements cover only what precedes it until
    /// [`Link::finish`]. A peer told that a frame was received drops its
    /// copy; if this process then stopped before the handler ended, the
    /// message would be lost.
    /// Returns the epoch to give [`Link::finish`].
    pub(crate) fn begin(&self, seq: u64) -> u64 {
        let mut s = lock(&self.state);
        s.running.insert(seq);
        s.epoch
    }

    /// The handler of received frame `seq` has ended.
    pub(crate) fn finish(&self, seq: u64, epoch: u64) {
        let mut s = lock(&self.state);
        if s.epoch == epoch && s.running.remove(&seq) {
            // What the peer may now drop goes with the next frames written.
            s.owed = s.owed.max(1);
        }
    }

    /// What acknowledgements say: received, and handled if it had to be.
    fn acknowledgeable(s: &State) -> u64 {
        s.running.first().map_or(s.received, |&r| r - 1)
    }

    /// The acknowledgement frame, when one is owed.
    pub(crate) fn take_ack(&self) -> Option<Frame> {
        let (frame, meta) = {
            let mut s = lock(&self.state);
            if s.owed == 0 {
                return None;
            }
            s.owed = 0;
            self.counters.acks_sent.fetch_add(1, Ordering::Relaxed);
            let n = Self::acknowledgeable(&s);
            (
                ack_frame(n),
                Record::Meta {
                    token: s.token,
                    received: n,
                },
            )
        };
        if let Some(d) = &self.durable {
            d.record(vec![meta], None);
        }
        Some(frame)
    }

    /// Whether an acknowledgement is owed.
    pub(crate) fn owes_ack(&self) -> bool {
        lock(&self.state).owed > 0
    }

    /// Registers a request sent at least once: its reply may come on any
    /// session of the link.
    pub(crate) fn pend(&self, correlation: u64) -> oneshot::Receiver<Frame> {
        let (tx, rx) = oneshot::channel();
        lock(&self.state).pending.insert(
            correlation,
            Waiting {
                reply: tx,
                request: None,
            },
        );
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
        self: &Arc<Self>,
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
            let queued = self
                .send(frame.clone(), &SendOptions::default())
                .await
                .map_err(|e| Some(e.to_string()))?;
            if let Some(w) = lock(&self.state).pending.get_mut(&correlation) {
                w.request = Some((queued.id(), frame));
            }
            rx.await.map_err(|_| {
                Some(
                    self.ended()
                        .unwrap_or_else(|| "reliable state ended".into()),
                )
            })
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
            Some(w) => {
                let _ = w.reply.send(frame);
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
        let mut records = Vec::new();
        {
            let mut s = lock(&self.state);
            s.token = token;
            if resumed {
                // The peer has everything up to `peer_received`: what is
                // sent next must be numbered above it, or the peer would
                // take it for a duplicate, acknowledge it and drop it. A
                // link restored from a durable outbox does not know the
                // last number it used (replies and acknowledged messages
                // leave no record); the peer does.
                s.next_seq = s.next_seq.max(peer_received.saturating_add(1));
            } else {
                s.received = 0;
                s.running.clear();
                s.epoch += 1;
                s.owed = 0;
                // Replies answer requests of the peer's lost state: its new
                // state numbers its requests from the start again, so an old
                // reply would answer a new request that happens to have the
                // same correlation id.
                let stale: usize = s.unacked.iter().filter(|f| f.id == 0).map(|f| f.cost).sum();
                s.unacked.retain(|f| f.id != 0);
                s.unacked_bytes -= stale;
                // Requests the peer had acknowledged and not answered yet:
                // the answer went with its state. They go again, first (they
                // were sent before anything still unacknowledged); the new
                // state runs them (at least once: the lost one may have).
                let mut again: Vec<(u64, u64, Frame)> = s
                    .pending
                    .iter()
                    .filter_map(|(c, w)| w.request.as_ref().map(|(id, f)| (*c, *id, f.clone())))
                    .filter(|(_, id, _)| {
                        !s.unacked.iter().any(|f| f.id == *id)
                            && !s.queue.values().any(|q| q.id == *id)
                    })
                    .collect();
                again.sort_by_key(|(c, _, _)| *c);
                for (_, id, frame) in again.into_iter().rev() {
                    let cost = frame.len();
                    s.unacked_bytes += cost;
                    s.unacked.push_front(Sent {
                        id,
                        seq: 0,
                        frame,
                        cost,
                        done: None,
                    });
                }
                let mut seq = 1;
                for f in s.unacked.iter_mut() {
                    f.seq = seq;
                    f.frame = Frame::new(f.frame.header.with_seq(seq), f.frame.payload.clone());
                    if f.id != 0 {
                        records.push(Record::Numbered { id: f.id, seq });
                    }
                    seq += 1;
                }
                s.next_seq = seq;
            }
            records.push(Record::Meta {
                token,
                received: s.received,
            });
            for f in &s.unacked {
                session.push_frame(f.frame.clone());
                self.counters.resent.fetch_add(1, Ordering::Relaxed);
            }
            s.session = Some(session.clone());
        }
        if let Some(d) = &self.durable {
            d.record(records, None);
        }
        self.pump();
    }

    /// The session whose state is `ended` ended: the link keeps what it
    /// holds for the next. Compared by identity, not by session id: the
    /// ids a restarted server gives start again, and the session attached
    /// since may have the same one.
    pub(crate) fn detach(&self, ended: &super::Shared) {
        let mut s = lock(&self.state);
        if s.session
            .as_ref()
            .is_some_and(|x| std::ptr::eq(Arc::as_ptr(&x.shared), ended))
        {
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

    /// Ends the state: every message not acknowledged fails with `reason`
    /// (a durable outbox keeps them for the next run).
    pub(crate) fn end(&self, reason: &str) {
        let (sent, queued): (Vec<Sent>, Vec<Queued>) = {
            let mut s = lock(&self.state);
            if s.ended.is_some() {
                return;
            }
            s.ended = Some(reason.to_owned());
            s.session = None;
            s.pending.clear();
            s.unacked_bytes = 0;
            s.queued_bytes = 0;
            s.latest.clear();
            (
                s.unacked.drain(..).collect(),
                std::mem::take(&mut s.queue).into_values().collect(),
            )
        };
        let dones = sent
            .into_iter()
            .filter_map(|f| f.done)
            .chain(queued.into_iter().filter_map(|q| q.done));
        for d in dones {
            let _ = d.send(Err(Self::lost(reason)));
        }
        self.room.notify_waiters();
    }
}

/// An acknowledgement frame (link opcode 0): `uvarint(n)`.
pub(crate) fn ack_frame(n: u64) -> Frame {
    let ack = crate::wire::Ack { received: n };
    let mut b = BytesMut::with_capacity(ack.encoded_len());
    ack.encode(&mut b);
    Frame::new(FrameHeader::ack(), b.freeze())
}

/// Reads an acknowledgement's payload.
pub(crate) fn read_ack(payload: &Bytes) -> Option<u64> {
    crate::wire::Ack::decode(payload).ok().map(|a| a.received)
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

    fn one_way(type_id: u32, len: usize) -> Frame {
        Frame::new(FrameHeader::one_way(type_id), Bytes::from(vec![0u8; len]))
    }

    type Commit = oneshot::Sender<Result<(), String>>;

    /// A durable store whose commits the test answers, in any order.
    #[derive(Default)]
    struct HeldCommits(Mutex<Vec<Commit>>);

    impl Durable for HeldCommits {
        fn record(&self, _records: Vec<Record>, done: Option<Commit>) {
            if let Some(done) = done {
                lock(&self.0).push(done);
            }
        }
    }

    impl HeldCommits {
        async fn waiting(&self, n: usize) {
            while lock(&self.0).len() < n {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }

        fn commit(&self, index: usize) {
            let done = std::mem::replace(&mut lock(&self.0)[index], oneshot::channel().0);
            let _ = done.send(Ok(()));
        }
    }

    #[tokio::test]
    async fn durable_sends_return_in_the_order_they_were_queued() {
        let store = Arc::new(HeldCommits::default());
        let link = Link::with(
            [0; 16],
            true,
            100,
            OutboxLimits::default(),
            Some(store.clone()),
        );
        let (returned, mut order) = tokio::sync::mpsc::unbounded_channel();
        let send = || {
            let (link, returned) = (link.clone(), returned.clone());
            tokio::spawn(async move {
                let d = link.send(one_way(3, 4), &SendOptions::new()).await;
                let _ = returned.send(d.map(|d| d.id()));
            })
        };
        let first = send();
        store.waiting(1).await;
        let _second = send();
        store.waiting(2).await;
        // The second's commit is seen first: it waits for the first's.
        store.commit(1);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(order.try_recv().is_err(), "the second returned first");
        store.commit(0);
        assert_eq!(order.recv().await.unwrap().unwrap(), 1);
        assert_eq!(order.recv().await.unwrap().unwrap(), 2);
        drop(first);

        // A send dropped while its commit is awaited lets the later ones go.
        let third = send();
        store.waiting(3).await;
        let _fourth = send();
        store.waiting(4).await;
        store.commit(3);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(order.try_recv().is_err(), "the fourth returned first");
        third.abort();
        assert_eq!(order.recv().await.unwrap().unwrap(), 4);
    }

    #[tokio::test]
    async fn a_full_outbox_waits_drops_the_oldest_lowest_or_refuses() {
        let limits = |overflow| OutboxLimits {
            max_messages: 2,
            max_bytes: 1 << 20,
            overflow,
        };
        let opts = SendOptions::new();
        // Wait: the third waits until the link ends.
        let link = Link::with([0; 16], true, 100, limits(Overflow::Wait), None);
        let _a = link.send(one_way(3, 4), &opts).await.unwrap();
        let _b = link.send(one_way(3, 4), &opts).await.unwrap();
        let third = link.send(one_way(3, 4), &opts);
        tokio::pin!(third);
        assert!(futures_util::poll!(third.as_mut()).is_pending());
        link.end("closed");
        assert!(matches!(third.await, Err(DeliveryError::Lost { .. })));

        // Refuse: at once, naming the size.
        let link = Link::with([0; 16], true, 100, limits(Overflow::Refuse), None);
        let _a = link.send(one_way(3, 4), &opts).await.unwrap();
        let _b = link.send(one_way(3, 4), &opts).await.unwrap();
        let e = link.send(one_way(3, 4), &opts).await.unwrap_err();
        assert_eq!(
            e,
            DeliveryError::Full {
                messages: 2,
                bytes: 2 * one_way(3, 4).len()
            }
        );

        // DropOldest: the oldest of the lowest priority goes.
        let link = Link::with([0; 16], true, 100, limits(Overflow::DropOldest), None);
        let high = link
            .send(one_way(3, 4), &SendOptions::new().priority(9))
            .await
            .unwrap();
        let low = link.send(one_way(3, 4), &opts).await.unwrap();
        let _c = link.send(one_way(3, 4), &opts).await.unwrap();
        assert_eq!(low.await, Err(DeliveryError::Dropped));
        assert_eq!(link.stats().dropped, 1);
        assert_eq!(link.stats().queued, 2);
        link.end("closed");
        assert!(matches!(high.await, Err(DeliveryError::Lost { .. })));
    }

    #[tokio::test]
    async fn the_latest_value_replaces_a_queued_one_of_its_type_and_key() {
        let link = Link::new([0; 16], true, 100);
        let latest = |k: &str| SendOptions::new().latest(k);
        let first = link.send(one_way(3, 4), &latest("slot-1")).await.unwrap();
        let other_key = link.send(one_way(3, 4), &latest("slot-2")).await.unwrap();
        let other_type = link.send(one_way(4, 4), &latest("slot-1")).await.unwrap();
        let _second = link.send(one_way(3, 5), &latest("slot-1")).await.unwrap();
        assert_eq!(first.await, Err(DeliveryError::Superseded));
        let stats = link.stats();
        assert_eq!((stats.queued, stats.superseded), (3, 1));
        link.end("closed");
        assert!(other_key.await.is_err());
        assert!(other_type.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn queued_messages_expire_after_their_time_to_live() {
        let link = Link::new([0; 16], true, 100);
        let short = link
            .send(
                one_way(3, 4),
                &SendOptions::new().ttl(std::time::Duration::from_secs(5)),
            )
            .await
            .unwrap();
        let forever = link.send(one_way(3, 4), &SendOptions::new()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
        assert_eq!(short.await, Err(DeliveryError::Expired));
        let stats = link.stats();
        assert_eq!((stats.queued, stats.expired), (1, 1));
        link.end("closed");
        assert!(forever.await.is_err());
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
        let a = link.send(one_way(3, 0), &SendOptions::new()).await.unwrap();
        link.end("client closed");
        assert!(matches!(a.await, Err(DeliveryError::Lost { .. })));
        assert!(link.send(one_way(3, 0), &SendOptions::new()).await.is_err());
    }
}
