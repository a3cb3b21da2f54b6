//! The broker: channels, their subscribers and retained values, in the
//! server. One file per concept:
//!
//! - this file: matching by channel id and key, fan-out, retained values,
//!   the per-subscriber queues and their statistics;
//! - [`store`]: where retained values live (redb with a data directory,
//!   memory without one);
//! - [`filter`]: the chain of filters every message and publication passes;
//! - [`acl`]: who may publish, subscribe, delete, call and send to what;
//! - `front`: the server's handler of received frames (filters, then the
//!   dispatcher or the broker);
//! - `api`: the pub/sub methods of [`Server`](crate::Server).
//!
//! Fan-out: a publication is encoded once into a `deliver` frame whose
//! bytes every subscriber's queue shares. A subscriber gets it straight in
//! its session's outbound queue while that has room; when it has not, in
//! the subscriber's own bounded queue (policy: the newest retained value of
//! a channel and key replaces the queued one; otherwise the oldest is
//! dropped and counted), which drains as the session writes. The publishing
//! session then yields its turn (`LinkOutcome::Yield`), so that the
//! subscriber's writer runs before it reads more publications.

pub(crate) mod acl;
mod api;
mod cluster;
pub(crate) mod filter;
pub(crate) mod front;
pub(crate) mod store;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use self::acl::{Acl, Action};
use self::filter::{Candidate, Filter, Target};
use self::store::{Store, StoreOp};
use super::Registry;
use crate::pubsub::frames::{
    DeliverHead, PublishHead, Reply, SubOp, SubscribeFrame, message_frame, rest,
};
use crate::pubsub::local::{IdMap, LinkOutcome, SubQueue};
use crate::pubsub::{ChannelInfo, Reason, Refusal};
use crate::session::{FrameRun, PRINCIPAL, SendError, Session, codes};
use crate::wire::{ControlOp, Frame};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Critical sections are single map or queue operations.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Limits of the broker, set through the server builder.
#[derive(Debug, Clone)]
pub(crate) struct BrokerConfig {
    /// Deliveries one subscriber's queue holds (beyond its session's outbound queue).
    pub(crate) queue_frames: usize,
    /// Bytes one subscriber's queue holds.
    pub(crate) queue_bytes: usize,
    /// Refused messages after which a session is closed.
    pub(crate) offence_limit: Option<u64>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            queue_frames: 1024,
            queue_bytes: 1024 * 1024,
            offence_limit: None,
        }
    }
}

/// Statistics of one channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ChannelStats {
    /// The channel id.
    pub id: u32,
    /// The channel's full name.
    pub name: String,
    /// Publications accepted.
    pub published: u64,
    /// Publications refused (ACL, filters, key mismatch).
    pub refused: u64,
    /// Deliveries handed to subscribers' sessions (or local subscriptions)
    /// at once; those that waited in a subscriber's queue count in its
    /// [`SubscriberStats::delivered`] only.
    pub delivered: u64,
    /// Deliveries dropped because a subscriber fell behind (oldest dropped).
    pub dropped: u64,
    /// Queued retained deliveries replaced by a newer value of the same key.
    pub replaced: u64,
    /// Subscriptions now.
    pub subscribers: usize,
    /// Retained values now.
    pub retained: usize,
}

/// Statistics of one subscriber (a session, or a subscription of the
/// server process).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// The subscriber's device id (`""` for the server process).
    pub device_id: String,
    /// Deliveries handed to the session (or the local subscription).
    pub delivered: u64,
    /// Deliveries dropped because the subscriber fell behind.
    pub dropped: u64,
    /// Queued retained deliveries replaced by a newer value.
    pub replaced: u64,
    /// Deliveries waiting in the subscriber's queue now.
    pub queued: usize,
    /// Bytes of those deliveries.
    pub queued_bytes: usize,
    /// The most bytes the queue ever held.
    pub max_queued_bytes: usize,
    /// The queue's bound in bytes.
    pub bound_bytes: usize,
    /// Channel subscriptions held.
    pub subscriptions: usize,
}

/// Statistics of the whole broker.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Per channel, by id.
    pub channels: Vec<ChannelStats>,
    /// Messages and publications refused by the ACL or a filter.
    pub refused: u64,
    /// Device-to-device messages forwarded.
    pub messages: u64,
    /// Whether retained values are kept on disk.
    pub persistent: bool,
}

#[derive(Default)]
struct ChannelCounters {
    published: AtomicU64,
    refused: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    replaced: AtomicU64,
}

/// A retained value: the last publication of a channel (and key).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retained {
    /// The publisher's device id (`""`: a server process).
    pub publisher: String,
    /// When a broker accepted it.
    pub timestamp_ms: u64,
    /// The encoded message.
    pub payload: Bytes,
}

impl Retained {
    /// A retained value.
    pub fn new(publisher: impl Into<String>, timestamp_ms: u64, payload: Bytes) -> Retained {
        Retained {
            publisher: publisher.into(),
            timestamp_ms,
            payload,
        }
    }
}

#[derive(Default)]
struct Subscribers {
    all: Vec<Arc<Peer>>,
    by_key: HashMap<String, Vec<Arc<Peer>>>,
}

impl Subscribers {
    fn len(&self) -> usize {
        self.all.len() + self.by_key.values().map(Vec::len).sum::<usize>()
    }
}

struct ChannelState {
    info: ChannelInfo,
    subs: RwLock<Subscribers>,
    retained: Mutex<HashMap<Option<String>, Retained>>,
    stats: ChannelCounters,
    /// The last hand-over on the channel found a subscriber without room:
    /// its publications are handed over one by one (see [`Staged`]).
    congested: AtomicBool,
}

/// Where a subscriber's deliveries go.
enum Sink {
    Session(Session),
    Local(Arc<SubQueue>),
}

struct Queued {
    frame: Frame,
    channel: u32,
    key: Option<String>,
    retained: bool,
}

#[derive(Default)]
struct PeerQueue {
    items: VecDeque<Queued>,
    bytes: usize,
    draining: bool,
}

#[derive(Default)]
struct PeerCounters {
    delivered: AtomicU64,
    dropped: AtomicU64,
    replaced: AtomicU64,
    max_bytes: AtomicUsize,
}

/// A subscriber: a session, or one subscription of the server process.
pub(crate) struct Peer {
    device: String,
    sink: Sink,
    queue: Mutex<PeerQueue>,
    stats: PeerCounters,
    /// Ordered: a resumed session is subscribed again, and sent the
    /// retained values, in the same order every time.
    subscriptions: Mutex<BTreeSet<(u32, Option<String>)>>,
    bound_frames: usize,
    bound_bytes: usize,
}

impl Peer {
    fn new(device: String, sink: Sink, config: &BrokerConfig) -> Peer {
        Peer {
            device,
            sink,
            queue: Mutex::new(PeerQueue::default()),
            stats: PeerCounters::default(),
            subscriptions: Mutex::new(BTreeSet::new()),
            bound_frames: config.queue_frames.max(1),
            bound_bytes: config.queue_bytes.max(1),
        }
    }

    pub(crate) fn stats(&self) -> SubscriberStats {
        let q = lock(&self.queue);
        SubscriberStats {
            device_id: self.device.clone(),
            delivered: self.stats.delivered.load(Ordering::Relaxed),
            dropped: self.stats.dropped.load(Ordering::Relaxed),
            replaced: self.stats.replaced.load(Ordering::Relaxed),
            queued: q.items.len(),
            queued_bytes: q.bytes,
            max_queued_bytes: self.stats.max_bytes.load(Ordering::Relaxed),
            bound_bytes: self.bound_bytes,
            subscriptions: lock(&self.subscriptions).len(),
        }
    }

    /// Hands a delivery to the subscriber, or queues it (see the module docs
    /// for the policy). Returns (delivered now, dropped, replaced).
    ///
    /// Deliveries already queued go to the session first, as far as its
    /// outbound queue takes them: every publication helps drain the queue,
    /// so that it empties at the pace the session writes, however busy the
    /// draining task's worker is (100 publishers flooding one subscriber
    /// would otherwise leave that task one turn in a hundred, and the
    /// subscriber's queue would drop almost everything).
    fn deliver(
        self: &Arc<Self>,
        frame: &Frame,
        channel: u32,
        key: Option<&str>,
        retained: bool,
    ) -> (u64, u64, u64) {
        let mut q = lock(&self.queue);
        match &self.sink {
            Sink::Local(sq) => {
                // A local subscription's own queue applies the policy.
                sq.push(frame.payload.clone());
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                return (1, 0, 0);
            }
            Sink::Session(s) => {
                if self.move_queued(&mut q, s).is_err() {
                    return (0, 1, 0);
                }
                if q.items.is_empty() {
                    match s.try_enqueue(frame.clone()) {
                        Ok(()) => {
                            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                            return (1, 0, 0);
                        }
                        Err(SendError::QueueFull { .. }) => {}
                        Err(_) => return (0, 1, 0),
                    }
                }
            }
        }
        let (dropped, replaced) = self.queue_delivery(&mut q, frame, channel, key, retained);
        if !q.draining && !q.items.is_empty() {
            q.draining = true;
            let peer = self.clone();
            tokio::spawn(async move { peer.drain().await });
        }
        (0, dropped, replaced)
    }

    /// [`Peer::deliver`] for a run of live publications of one unkeyed,
    /// unretained channel: what the session has room for goes in one push
    /// (copied already encoded, when it is small and the transport takes
    /// that: [`Session::try_enqueue_run`]), the rest to the queue. Returns
    /// (delivered now, dropped).
    fn deliver_many(self: &Arc<Self>, run: &FrameRun, channel: u32) -> (u64, u64) {
        let frames = run.frames();
        let mut q = lock(&self.queue);
        let mut rest = frames;
        match &self.sink {
            Sink::Local(sq) => {
                for f in frames {
                    sq.push(f.payload.clone());
                }
                self.stats
                    .delivered
                    .fetch_add(frames.len() as u64, Ordering::Relaxed);
                return (frames.len() as u64, 0);
            }
            Sink::Session(s) => {
                if self.move_queued(&mut q, s).is_err() {
                    return (0, frames.len() as u64);
                }
                if q.items.is_empty() {
                    match s.try_enqueue_run(run) {
                        Ok(n) => rest = &frames[n..],
                        Err(_) => return (0, frames.len() as u64),
                    }
                }
            }
        }
        let now = (frames.len() - rest.len()) as u64;
        if now > 0 {
            self.stats.delivered.fetch_add(now, Ordering::Relaxed);
        }
        let mut dropped = 0;
        for f in rest {
            dropped += self.queue_delivery(&mut q, f, channel, None, false).0;
        }
        if !q.draining && !q.items.is_empty() {
            q.draining = true;
            let peer = self.clone();
            tokio::spawn(async move { peer.drain().await });
        }
        (now, dropped)
    }

    /// Queues a delivery the session has no room for, under the policy.
    /// Returns (dropped, replaced).
    fn queue_delivery(
        &self,
        q: &mut PeerQueue,
        frame: &Frame,
        channel: u32,
        key: Option<&str>,
        retained: bool,
    ) -> (u64, u64) {
        let cost = frame.len();
        let (mut dropped, mut replaced) = (0, 0);
        if retained
            && let Some(old) = q
                .items
                .iter_mut()
                .find(|i| i.retained && i.channel == channel && i.key.as_deref() == key)
        {
            // The newest retained value wins: it takes the older one's place.
            let old_len = old.frame.len();
            old.frame = frame.clone();
            q.bytes = q.bytes - old_len + cost;
            replaced = 1;
        } else {
            while !q.items.is_empty()
                && (q.items.len() >= self.bound_frames || q.bytes + cost > self.bound_bytes)
            {
                if let Some(old) = q.items.pop_front() {
                    q.bytes -= old.frame.len();
                    dropped += 1;
                }
            }
            if cost > self.bound_bytes {
                // Larger than the whole bound: it cannot be queued at all.
                dropped += 1;
            } else {
                q.bytes += cost;
                q.items.push_back(Queued {
                    frame: frame.clone(),
                    channel,
                    key: key.map(str::to_owned),
                    retained,
                });
            }
        }
        self.stats.max_bytes.fetch_max(q.bytes, Ordering::Relaxed);
        self.stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        self.stats.replaced.fetch_add(replaced, Ordering::Relaxed);
        (dropped, replaced)
    }

    /// Moves queued deliveries, oldest first, to the session's outbound
    /// queue while it has room. `Err` when the session has ended (the queue
    /// is then emptied: nobody will read it).
    fn move_queued(&self, q: &mut PeerQueue, session: &Session) -> Result<(), ()> {
        let mut moved = 0;
        let result = loop {
            let Some(head) = q.items.front() else {
                break Ok(());
            };
            match session.try_enqueue(head.frame.clone()) {
                Ok(()) => {
                    if let Some(item) = q.items.pop_front() {
                        q.bytes -= item.frame.len();
                    }
                    moved += 1;
                }
                Err(SendError::QueueFull { .. }) => break Ok(()),
                Err(_) => {
                    q.items.clear();
                    q.bytes = 0;
                    break Err(());
                }
            }
        };
        if moved > 0 {
            self.stats.delivered.fetch_add(moved, Ordering::Relaxed);
        }
        result
    }

    /// Moves queued deliveries to the session as its outbound queue makes
    /// room; ends when the queue is empty. It never holds a delivery while
    /// it waits, so that publications handled meanwhile, which move queued
    /// deliveries too, keep them in order.
    async fn drain(self: Arc<Self>) {
        let Sink::Session(session) = &self.sink else {
            return;
        };
        loop {
            let cost = {
                let mut q = lock(&self.queue);
                let moved = self.move_queued(&mut q, session);
                match q.items.front() {
                    Some(head) if moved.is_ok() => head.frame.len(),
                    _ => {
                        q.draining = false;
                        return;
                    }
                }
            };
            if session.writable(cost).await.is_err() {
                let mut q = lock(&self.queue);
                q.items.clear();
                q.bytes = 0;
                q.draining = false;
                return;
            }
        }
    }
}

/// The publications a session made during one read burst of its
/// connection task, not yet handed to the subscribers: runs of frames of
/// one channel, in order. The burst's deliveries leave together
/// ([`Broker::publish_staged`]): one lock of each subscriber's queue and
/// one wake of its writer for the run, not for every publication.
/// Their `deliver` frames are made at the end too, with one timestamp.
///
/// While the last hand-over on a channel found a subscriber without room,
/// its publications are handed over one by one again, whoever publishes
/// them, so that every publishing session yields at the first one that
/// has to queue (see `LinkOutcome::Yield`) rather than after a whole burst:
/// a hundred publishers' bursts would fill a subscriber's queue before any
/// of them yielded.
#[derive(Default)]
pub(crate) struct Staged {
    runs: Vec<(Arc<ChannelState>, Vec<Bytes>)>,
    count: usize,
}

/// Publications handed over together while a subscriber of their channel
/// has no room: few enough that a hundred publishers' runs fit a
/// subscriber's queue.
const CONGESTED_RUN: usize = 8;

impl Staged {
    fn push(&mut self, channel: &Arc<ChannelState>, message: Bytes) {
        self.count += 1;
        match self.runs.last_mut() {
            Some((c, messages)) if Arc::ptr_eq(c, channel) => messages.push(message),
            _ => self.runs.push((channel.clone(), vec![message])),
        }
    }
}

/// The server's broker.
pub(crate) struct Broker {
    channels: IdMap<u32, Arc<ChannelState>>,
    store: Store,
    acl: Option<Acl>,
    filters: Vec<Box<dyn Filter>>,
    registry: Arc<Registry>,
    config: BrokerConfig,
    refused: AtomicU64,
    messages: AtomicU64,
    /// Subscriptions of the server process.
    locals: Mutex<Vec<Arc<Peer>>>,
    /// The cluster this node belongs to (`SingleNode` alone).
    cluster: Arc<dyn crate::server::cluster::Cluster>,
}

/// What the server builder collects for the broker.
#[derive(Default)]
pub(crate) struct BrokerSetup {
    pub(crate) channels: Vec<ChannelInfo>,
    pub(crate) filters: Vec<Box<dyn Filter>>,
    pub(crate) acl: Option<Acl>,
    pub(crate) data_dir: Option<std::path::PathBuf>,
    pub(crate) config: BrokerConfig,
    pub(crate) cluster: Option<Arc<dyn crate::server::cluster::Cluster>>,
}

/// Why the broker could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Two channels with one id.
    #[error("channels {first} and {second} both have id {id}")]
    DuplicateChannel {
        /// The id.
        id: u32,
        /// The first channel's name.
        first: String,
        /// The second channel's name.
        second: String,
    },
    /// The store in the data directory could not be opened or read.
    #[error("retained-value store {}: {message}", path.display())]
    Store {
        /// The store's file.
        path: std::path::PathBuf,
        /// What failed.
        message: String,
    },
}

/// The answer to a pub/sub frame on a peer without a broker (a client).
pub(crate) fn no_broker(op: ControlOp, payload: &[u8]) -> LinkOutcome {
    let correlation = match op {
        ControlOp::Subscribe => SubscribeFrame::decode(payload).map(|f| f.correlation).ok(),
        _ => PublishHead::decode(payload)
            .map(|(h, _)| match h {
                PublishHead::Publication { correlation, .. }
                | PublishHead::Message { correlation, .. } => correlation,
            })
            .ok(),
    };
    match correlation {
        Some(0) => LinkOutcome::Done,
        Some(c) => LinkOutcome::Reply(
            Reply::refused(
                c,
                Refusal::new(Reason::NoBroker, "this peer runs no broker"),
            )
            .encode(),
        ),
        None => LinkOutcome::End(format!(
            "malformed {} frame",
            if op == ControlOp::Subscribe {
                "subscribe"
            } else {
                "publish"
            }
        )),
    }
}

/// Who published, for the ACL and filters.
pub(crate) struct Who<'a> {
    pub(crate) device: &'a str,
    pub(crate) principal: Option<Arc<String>>,
    pub(crate) session: Option<&'a Session>,
}

impl Broker {
    pub(crate) fn new(setup: BrokerSetup, registry: Arc<Registry>) -> Result<Broker, BrokerError> {
        let mut channels: IdMap<u32, Arc<ChannelState>> = IdMap::default();
        for info in setup.channels {
            if let Some(old) = channels.get(&info.id) {
                if old.info == info {
                    continue;
                }
                return Err(BrokerError::DuplicateChannel {
                    id: info.id,
                    first: old.info.name.clone(),
                    second: info.name,
                });
            }
            channels.insert(
                info.id,
                Arc::new(ChannelState {
                    info,
                    subs: RwLock::new(Subscribers::default()),
                    retained: Mutex::new(HashMap::new()),
                    stats: ChannelCounters::default(),
                    congested: AtomicBool::new(false),
                }),
            );
        }
        let (store, loaded) = Store::open(setup.data_dir.as_deref())?;
        for ((channel, key), value) in loaded {
            match channels.get(&channel) {
                Some(c) if c.info.retain => {
                    lock(&c.retained).insert(key, value);
                }
                _ => tracing::warn!(
                    channel,
                    "stored retained value of a channel this server does not retain; kept on disk, not served"
                ),
            }
        }
        Ok(Broker {
            channels,
            store,
            acl: setup.acl,
            filters: setup.filters,
            registry,
            config: setup.config,
            refused: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            locals: Mutex::new(Vec::new()),
            cluster: setup
                .cluster
                .unwrap_or_else(|| Arc::new(crate::server::cluster::SingleNode)),
        })
    }

    fn who<'a>(&self, session: &'a Session) -> Who<'a> {
        // Only the ACL and the filters look at the principal: without them,
        // a publication need not look it up (a lock and a map lookup).
        let checked = self.acl.is_some() || !self.filters.is_empty();
        Who {
            device: session.device_id(),
            principal: if checked {
                session.get(&PRINCIPAL)
            } else {
                None
            },
            session: Some(session),
        }
    }

    fn allowed(&self, who: &Who<'_>, action: Action, name: &str) -> Result<(), Refusal> {
        match &self.acl {
            Some(acl) if who.session.is_some() => {
                if acl.check(
                    who.device,
                    who.principal.as_deref().map(String::as_str),
                    action,
                    name,
                ) {
                    Ok(())
                } else {
                    Err(Refusal::new(
                        Reason::Denied,
                        format!("device {} may not {} {name}", who.device, action.name()),
                    ))
                }
            }
            // Without an ACL everything is allowed to authenticated
            // sessions; the server process itself is never checked.
            _ => Ok(()),
        }
    }

    /// Runs the filter chain; counts and acts on a refusal.
    pub(crate) fn filter(
        &self,
        who: &Who<'_>,
        target: Target<'_>,
        type_id: u32,
        payload: &[u8],
    ) -> Result<(), Refusal> {
        let Some(session) = who.session else {
            return Ok(());
        };
        if self.filters.is_empty() {
            return Ok(());
        }
        let candidate = Candidate {
            device_id: who.device,
            principal: who.principal.as_deref().map(String::as_str),
            target,
            type_id,
            payload,
        };
        for f in &self.filters {
            if let Err(refusal) = f.check(&candidate) {
                self.offence(session, &refusal);
                return Err(refusal);
            }
        }
        Ok(())
    }

    /// Counts a refusal on the session and closes it past the offence limit.
    fn offence(&self, session: &Session, refusal: &Refusal) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let n = session.pubsub().filtered.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(session = session.id(), reason = %refusal, "message filtered");
        if let Some(limit) = self.config.offence_limit
            && n >= limit
            && n == limit
        {
            let session = session.clone();
            let message = format!("{n} messages refused by the server's filters (last: {refusal})");
            tokio::spawn(async move {
                session.close_with(codes::PERMISSION_DENIED, message).await;
            });
        }
    }

    fn channel(&self, id: u32) -> Result<&Arc<ChannelState>, Refusal> {
        self.channels.get(&id).ok_or_else(|| {
            Refusal::new(
                Reason::UnknownChannel,
                format!("no channel with id {id} on this server"),
            )
        })
    }

    fn check_key(c: &ChannelState, key: Option<&str>) -> Result<(), Refusal> {
        match (c.info.keyed, key) {
            (true, None) => Err(Refusal::new(
                Reason::Key,
                format!("channel {} is keyed: a key is required", c.info.name),
            )),
            (false, Some(_)) => Err(Refusal::new(
                Reason::Key,
                format!("channel {} is not keyed", c.info.name),
            )),
            _ => Ok(()),
        }
    }

    /// Handles a `subscribe` or `publish` frame from a session.
    pub(crate) fn on_frame(&self, session: &Session, op: ControlOp, payload: Bytes) -> LinkOutcome {
        if op != ControlOp::Publish {
            // Publications staged before it go first (subscribing gets the
            // retained values: after them).
            self.publish_staged(session);
        }
        match op {
            ControlOp::Subscribe => match SubscribeFrame::decode(&payload) {
                Ok(SubscribeFrame {
                    correlation,
                    op: SubOp::Delete { channel, key },
                }) => {
                    let who = self.who(session);
                    let ack = store::AckTo::of(Some(session), correlation);
                    answer(correlation, self.delete(&who, channel, key.as_deref(), ack))
                }
                Ok(f) => {
                    let result = self.on_subscribe(session, f.correlation, f.op);
                    reply(f.correlation, result.map(|()| false))
                }
                Err(e) => LinkOutcome::End(format!("malformed subscribe frame: {e}")),
            },
            ControlOp::Publish => match PublishHead::decode(&payload) {
                Ok((
                    PublishHead::Publication {
                        correlation,
                        channel,
                        key,
                    },
                    at,
                )) => {
                    let message = rest(&payload, at);
                    let who = self.who(session);
                    let ack = store::AckTo::of(Some(session), correlation);
                    let mut congested = false;
                    let published =
                        self.publish_from(&who, channel, key, message, ack, &mut congested);
                    match answer(correlation, published) {
                        // A subscriber's queue took it: its writer needs a
                        // turn before this session reads more publications.
                        LinkOutcome::Done if congested => LinkOutcome::Yield,
                        outcome => outcome,
                    }
                }
                Ok((
                    PublishHead::Message {
                        correlation,
                        to,
                        type_id,
                    },
                    at,
                )) => {
                    let message = rest(&payload, at);
                    let who = self.who(session);
                    self.publish_staged(session);
                    match self.send_to(&who, to, type_id, &message) {
                        Ok(SendTo::Queued) => reply(correlation, Ok(false)),
                        Ok(sent) => {
                            let session = session.clone();
                            // A message for another node is on its way at
                            // once (in order); its answer must not hold up
                            // this session's reading.
                            let remote = matches!(sent, SendTo::Remote(_));
                            let fut = Box::pin(async move {
                                let outcome = sent.finish().await.map(|()| false);
                                if correlation != 0 {
                                    let _ = session
                                        .send_frame(
                                            Reply {
                                                correlation,
                                                outcome,
                                            }
                                            .encode(),
                                        )
                                        .await;
                                }
                            });
                            if remote {
                                tokio::spawn(fut);
                                LinkOutcome::Done
                            } else {
                                LinkOutcome::Wait(fut)
                            }
                        }
                        Err(refusal) => reply(correlation, Err(refusal)),
                    }
                }
                Err(e) => LinkOutcome::End(format!("malformed publish frame: {e}")),
            },
            _ => LinkOutcome::Done,
        }
    }

    fn peer_of(&self, session: &Session) -> Arc<Peer> {
        session.pubsub().peer_or(|| {
            Arc::new(Peer::new(
                session.device_id().to_owned(),
                Sink::Session(session.clone()),
                &self.config,
            ))
        })
    }

    fn on_subscribe(&self, session: &Session, correlation: u64, op: SubOp) -> Result<(), Refusal> {
        let who = self.who(session);
        match op {
            SubOp::Subscribe { channel, key } => {
                let c = self.channel(channel)?;
                if key.is_some() && !c.info.keyed {
                    return Err(Refusal::new(
                        Reason::Key,
                        format!("channel {} is not keyed", c.info.name),
                    ));
                }
                self.allowed(&who, Action::Subscribe, &c.info.name)?;
                let peer = self.peer_of(session);
                self.attach(c, &peer, key, correlation);
                Ok(())
            }
            SubOp::Unsubscribe { channel, key } => {
                let peer = self.peer_of(session);
                self.detach(&peer, channel, key);
                Ok(())
            }
            SubOp::UnsubscribeAll => {
                if let Some(peer) = session.pubsub().peer() {
                    self.detach_all(&peer);
                }
                Ok(())
            }
            // The answer waits for the store: see `on_frame`.
            SubOp::Delete { .. } => Ok(()),
        }
    }

    /// Adds a subscription of `peer`, sending it the retained values first.
    fn attach(&self, c: &ChannelState, peer: &Arc<Peer>, key: Option<String>, replay: u64) {
        let mut subs = write(&c.subs);
        if lock(&peer.subscriptions).insert((c.info.id, key.clone())) {
            let list = match &key {
                None => &mut subs.all,
                Some(k) => subs.by_key.entry(k.clone()).or_default(),
            };
            list.push(peer.clone());
            if list.len() == 1 {
                self.cluster.interest(&c.info, key.as_deref(), true);
            }
        }
        // Under the write lock: no publication can come between the
        // retained values and the live ones.
        let retained = lock(&c.retained);
        let mut values: Vec<_> = retained
            .iter()
            .filter(|(k, _)| key.is_none() || k.as_deref() == key.as_deref())
            .collect();
        values.sort_by_key(|(_, v)| v.timestamp_ms);
        for (k, v) in values {
            let frame = DeliverHead {
                replay,
                channel: c.info.id,
                key: k.as_deref(),
                retained: true,
                publisher: &v.publisher,
                timestamp_ms: v.timestamp_ms,
            }
            .frame(&v.payload);
            let (d, x, r) = peer.deliver(&frame, c.info.id, k.as_deref(), true);
            c.stats.delivered.fetch_add(d, Ordering::Relaxed);
            c.stats.dropped.fetch_add(x, Ordering::Relaxed);
            c.stats.replaced.fetch_add(r, Ordering::Relaxed);
        }
    }

    fn detach(&self, peer: &Arc<Peer>, channel: u32, key: Option<String>) {
        if !lock(&peer.subscriptions).remove(&(channel, key.clone())) {
            return;
        }
        let Some(c) = self.channels.get(&channel) else {
            return;
        };
        let mut subs = write(&c.subs);
        match key {
            None => {
                subs.all.retain(|p| !Arc::ptr_eq(p, peer));
                if subs.all.is_empty() {
                    self.cluster.interest(&c.info, None, false);
                }
            }
            Some(k) => {
                if let Some(list) = subs.by_key.get_mut(&k) {
                    list.retain(|p| !Arc::ptr_eq(p, peer));
                    if list.is_empty() {
                        subs.by_key.remove(&k);
                        self.cluster.interest(&c.info, Some(&k), false);
                    }
                }
            }
        }
    }

    fn detach_all(&self, peer: &Arc<Peer>) {
        let all: Vec<_> = lock(&peer.subscriptions).iter().cloned().collect();
        for (channel, key) in all {
            self.detach(peer, channel, key);
        }
    }

    /// The `(channel, key)` pairs a session is subscribed to.
    pub(crate) fn subscriptions_of(&self, session: &Session) -> Vec<(u32, Option<String>)> {
        session
            .pubsub()
            .peer()
            .map(|p| lock(&p.subscriptions).iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Subscribes a session that resumed another to what that one was
    /// subscribed to (the ACL is asked again), sending the retained values.
    pub(crate) fn restore(&self, session: &Session, subscriptions: Vec<(u32, Option<String>)>) {
        if subscriptions.is_empty() {
            return;
        }
        let who = self.who(session);
        let peer = self.peer_of(session);
        for (channel, key) in subscriptions {
            let Ok(c) = self.channel(channel) else {
                continue;
            };
            if self.allowed(&who, Action::Subscribe, &c.info.name).is_err() {
                continue;
            }
            self.attach(c, &peer, key, 0);
        }
    }

    /// A session ended: its subscriptions end with it.
    pub(crate) fn session_ended(&self, session: &Session) {
        // Its last publications were accepted: they still go out.
        self.publish_staged(session);
        if let Some(peer) = session.pubsub().take_peer() {
            self.detach_all(&peer);
            let mut q = lock(&peer.queue);
            q.items.clear();
            q.bytes = 0;
        }
        session.pubsub().session_ended(true);
    }

    /// Publishes: checks, retained value, fan-out, store.
    pub(crate) fn publish(
        &self,
        who: &Who<'_>,
        channel: u32,
        key: Option<&str>,
        message: Bytes,
        ack: store::AckTo,
    ) -> Result<Published, Refusal> {
        self.publish_from(who, channel, key, message, ack, &mut false)
    }

    /// [`Broker::publish`]; sets `congested` when a subscriber's session had
    /// no room and the delivery went to (or was dropped from) its queue.
    fn publish_from(
        &self,
        who: &Who<'_>,
        channel: u32,
        key: Option<&str>,
        message: Bytes,
        ack: store::AckTo,
        congested: &mut bool,
    ) -> Result<Published, Refusal> {
        let c = self.channel(channel)?;
        let checked = Self::check_key(c, key)
            .and_then(|()| self.allowed(who, Action::Publish, &c.info.name))
            .and_then(|()| {
                self.filter(
                    who,
                    Target::Publish {
                        channel,
                        name: &c.info.name,
                        key,
                    },
                    c.info.type_id,
                    &message,
                )
            });
        if let Err(refusal) = checked {
            c.stats.refused.fetch_add(1, Ordering::Relaxed);
            if refusal.reason == Reason::Denied {
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
            return Err(refusal);
        }
        match who.session {
            // A live publication of a session on an unkeyed channel waits
            // for the end of its connection task's read burst.
            Some(session) if !c.info.retain && key.is_none() => {
                c.stats.published.fetch_add(1, Ordering::Relaxed);
                let staged = {
                    let mut staged = lock(&session.pubsub().staged);
                    staged.push(c, message);
                    staged.count
                };
                if staged >= CONGESTED_RUN && c.congested.load(Ordering::Relaxed) {
                    *congested |= self.publish_staged(session);
                }
                return Ok(Published::Now(false));
            }
            // Anything else goes now: after what was staged before it.
            Some(session) => {
                *congested |= self.publish_staged(session);
            }
            None => {}
        }
        let timestamp_ms = now_ms();
        let head = DeliverHead {
            replay: 0,
            channel,
            key,
            retained: false,
            publisher: who.device,
            timestamp_ms,
        };
        let frame = head.frame(&message);
        {
            let subs = read(&c.subs);
            if c.info.retain {
                lock(&c.retained).insert(
                    key.map(str::to_owned),
                    Retained {
                        publisher: who.device.to_owned(),
                        timestamp_ms,
                        // A copy: the message is a slice of the read buffer
                        // (up to 64 KiB), which it would keep alive whole.
                        payload: Bytes::copy_from_slice(&message),
                    },
                );
            }
            c.stats.published.fetch_add(1, Ordering::Relaxed);
            *congested |= c.fan_out(&subs, &frame, key).1;
        }
        self.cluster
            .published(&crate::server::cluster::Publication {
                channel: &c.info,
                key,
                publisher: who.device,
                timestamp_ms,
                payload: &message,
            });
        if c.info.retain && self.store.is_persistent() {
            let op = StoreOp::Put {
                channel,
                key: key.map(str::to_owned),
                value: Retained {
                    publisher: who.device.to_owned(),
                    timestamp_ms,
                    payload: message,
                },
            };
            return Ok(self.store.submit(op, ack));
        }
        Ok(Published::Now(false))
    }

    /// Hands the publications `session` staged (see [`Staged`]) to their
    /// subscribers; whether a subscriber's session had no room for some
    /// (they went to, or were dropped from, its queue).
    pub(crate) fn publish_staged(&self, session: &Session) -> bool {
        let mut runs = {
            let mut staged = lock(&session.pubsub().staged);
            if staged.runs.is_empty() {
                return false;
            }
            staged.count = 0;
            std::mem::take(&mut staged.runs)
        };
        let mut congested = false;
        let timestamp_ms = now_ms();
        let mut run = FrameRun::default();
        for (c, messages) in &runs {
            let mut queued = false;
            run.clear();
            for m in messages {
                run.push(
                    DeliverHead {
                        replay: 0,
                        channel: c.info.id,
                        key: None,
                        retained: false,
                        publisher: session.device_id(),
                        timestamp_ms,
                    }
                    .frame(m),
                );
            }
            let (mut d, mut x) = (0, 0);
            for p in &read(&c.subs).all {
                let (now, dropped) = p.deliver_many(&run, c.info.id);
                queued |= now < run.len() as u64;
                d += now;
                x += dropped;
            }
            if c.congested.load(Ordering::Relaxed) != queued {
                c.congested.store(queued, Ordering::Relaxed);
            }
            congested |= queued;
            c.stats.delivered.fetch_add(d, Ordering::Relaxed);
            c.stats.dropped.fetch_add(x, Ordering::Relaxed);
            // The other nodes get them too, in order, as the publications
            // that did not wait (`publish_from`).
            for payload in messages {
                self.cluster
                    .published(&crate::server::cluster::Publication {
                        channel: &c.info,
                        key: None,
                        publisher: session.device_id(),
                        timestamp_ms,
                        payload,
                    });
            }
        }
        // The list's room serves the next burst.
        runs.clear();
        let mut staged = lock(&session.pubsub().staged);
        if staged.runs.is_empty() {
            staged.runs = runs;
        }
        congested
    }

    /// Deletes a retained value.
    pub(crate) fn delete(
        &self,
        who: &Who<'_>,
        channel: u32,
        key: Option<&str>,
        ack: store::AckTo,
    ) -> Result<Published, Refusal> {
        let c = self.channel(channel)?;
        Self::check_key(c, key)?;
        self.allowed(who, Action::Delete, &c.info.name)?;
        lock(&c.retained).remove(&key.map(str::to_owned));
        self.cluster.deleted(&c.info, key);
        if self.store.is_persistent() {
            let op = StoreOp::Delete {
                channel,
                key: key.map(str::to_owned),
            };
            return Ok(self.store.submit(op, ack));
        }
        Ok(Published::Now(false))
    }

    /// Checks a device-to-device message and finds its target: a session
    /// here, or the cluster for a device connected to another node.
    pub(crate) fn send_to(
        &self,
        who: &Who<'_>,
        to: &str,
        type_id: u32,
        message: &[u8],
    ) -> Result<SendTo, Refusal> {
        self.allowed(who, Action::SendTo, to)?;
        self.filter(who, Target::SendTo { device: to }, type_id, message)?;
        let target = {
            let id = read(&self.registry.by_device).get(to).copied();
            id.and_then(|id| read(&self.registry.by_id).get(&id).cloned())
        };
        let Some(target) = target.filter(|s| !s.is_closed()) else {
            let remote = self.cluster.send_to(crate::server::cluster::DirectMessage {
                from: who.device.to_owned(),
                to: to.to_owned(),
                type_id,
                payload: Bytes::copy_from_slice(message),
            });
            return match remote {
                Some(fut) => {
                    self.messages.fetch_add(1, Ordering::Relaxed);
                    Ok(SendTo::Remote(fut))
                }
                None => Err(Refusal::new(
                    Reason::UnknownDevice,
                    format!("device {to} is not connected"),
                )),
            };
        };
        self.messages.fetch_add(1, Ordering::Relaxed);
        let frame = message_frame(who.device, type_id, message);
        match target.try_enqueue(frame.clone()) {
            Ok(()) => Ok(SendTo::Queued),
            Err(SendError::QueueFull { .. }) => Ok(SendTo::Wait(target, frame)),
            Err(_) => Err(Refusal::new(
                Reason::UnknownDevice,
                format!("device {to} is disconnecting"),
            )),
        }
    }

    pub(crate) fn stats(&self) -> BrokerStats {
        let mut channels: Vec<ChannelStats> = self.channels.values().map(|c| c.stats()).collect();
        channels.sort_by_key(|c| c.id);
        BrokerStats {
            channels,
            refused: self.refused.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            persistent: self.store.is_persistent(),
        }
    }

    pub(crate) fn channel_stats(&self, id: u32) -> Option<ChannelStats> {
        self.channels.get(&id).map(|c| c.stats())
    }

    pub(crate) fn retained_value(&self, channel: u32, key: Option<&str>) -> Option<Retained> {
        let c = self.channels.get(&channel)?;
        lock(&c.retained).get(&key.map(str::to_owned)).cloned()
    }

    /// Every retained value of a channel, by key (`None` on a channel
    /// without keys).
    pub(crate) fn retained_values(&self, channel: u32) -> Vec<(Option<String>, Retained)> {
        let Some(c) = self.channels.get(&channel) else {
            return Vec::new();
        };
        let held = lock(&c.retained);
        held.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// A subscription of the server process itself.
    pub(crate) fn subscribe_local(
        &self,
        channel: u32,
        key: Option<String>,
    ) -> Result<(Arc<Peer>, Arc<SubQueue>), Refusal> {
        let c = self.channel(channel)?;
        if key.is_some() && !c.info.keyed {
            return Err(Refusal::new(
                Reason::Key,
                format!("channel {} is not keyed", c.info.name),
            ));
        }
        let queue = Arc::new(SubQueue::new(self.config.queue_frames));
        let peer = Arc::new(Peer::new(
            String::new(),
            Sink::Local(queue.clone()),
            &self.config,
        ));
        self.attach(c, &peer, key, 0);
        let mut locals = lock(&self.locals);
        locals.retain(|p| !lock(&p.subscriptions).is_empty());
        locals.push(peer.clone());
        Ok((peer, queue))
    }

    pub(crate) fn unsubscribe_local(&self, peer: &Arc<Peer>) {
        self.detach_all(peer);
        if let Sink::Local(q) = &peer.sink {
            q.close();
        }
    }

    /// Ends every subscription of the server process.
    pub(crate) fn unsubscribe_all_local(&self) {
        let locals = std::mem::take(&mut *lock(&self.locals));
        for peer in &locals {
            self.unsubscribe_local(peer);
        }
    }

    /// Writes what the store has queued and closes it (server shutdown).
    pub(crate) async fn close_store(&self) {
        self.store.close().await;
    }

    pub(crate) fn info(&self, id: u32) -> Option<&ChannelInfo> {
        self.channels.get(&id).map(|c| &c.info)
    }
}

impl ChannelState {
    /// Hands a deliver frame to every subscriber of the channel (and of
    /// its key); returns how many got it at once, and whether a
    /// subscriber's session had no room (it went to, or was dropped from,
    /// the subscriber's queue).
    fn fan_out(&self, subs: &Subscribers, frame: &Frame, key: Option<&str>) -> (u64, bool) {
        let channel = self.info.id;
        let (mut d, mut x, mut r) = (0, 0, 0);
        let mut congested = false;
        let mut send = |p: &Arc<Peer>| {
            let (a, b, c) = p.deliver(frame, channel, key, self.info.retain);
            congested |= a == 0;
            d += a;
            x += b;
            r += c;
        };
        subs.all.iter().for_each(&mut send);
        if let Some(k) = key
            && let Some(list) = subs.by_key.get(k)
        {
            // A session subscribed to the whole channel as well gets it once.
            list.iter()
                .filter(|p| !lock(&p.subscriptions).contains(&(channel, None)))
                .for_each(&mut send);
        }
        self.stats.delivered.fetch_add(d, Ordering::Relaxed);
        self.stats.dropped.fetch_add(x, Ordering::Relaxed);
        self.stats.replaced.fetch_add(r, Ordering::Relaxed);
        (d, congested)
    }

    fn stats(&self) -> ChannelStats {
        let s = &self.stats;
        ChannelStats {
            id: self.info.id,
            name: self.info.name.clone(),
            published: s.published.load(Ordering::Relaxed),
            refused: s.refused.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            replaced: s.replaced.load(Ordering::Relaxed),
            subscribers: read(&self.subs).len(),
            retained: lock(&self.retained).len(),
        }
    }
}

/// Where a device-to-device message went.
pub(crate) enum SendTo {
    /// Queued on the target's session.
    Queued,
    /// The target's outbound queue is full: wait for room.
    Wait(Session, Frame),
    /// The target is connected to another node: the cluster carries it.
    Remote(futures_util::future::BoxFuture<'static, Result<(), Refusal>>),
}

impl SendTo {
    /// Waits until the message is queued on the target's session.
    pub(crate) async fn finish(self) -> Result<(), Refusal> {
        match self {
            SendTo::Queued => Ok(()),
            SendTo::Wait(target, frame) => target
                .send_frame(frame)
                .await
                .map_err(|_| Refusal::new(Reason::UnknownDevice, "the device disconnected")),
            SendTo::Remote(fut) => fut.await,
        }
    }
}

/// What became of an accepted publication.
pub(crate) enum Published {
    /// Answered now (`true`: persisted).
    Now(bool),
    /// The store answers once it has committed.
    Stored,
    /// The store's queue is full: wait for room (it answers then).
    Wait(futures_util::future::BoxFuture<'static, ()>),
}

fn answer(correlation: u64, published: Result<Published, Refusal>) -> LinkOutcome {
    match published {
        Ok(Published::Now(persisted)) => reply(correlation, Ok(persisted)),
        Ok(Published::Stored) => LinkOutcome::Done,
        Ok(Published::Wait(fut)) => LinkOutcome::Wait(fut),
        Err(refusal) => reply(correlation, Err(refusal)),
    }
}

fn reply(correlation: u64, outcome: Result<bool, Refusal>) -> LinkOutcome {
    if correlation == 0 {
        return LinkOutcome::Done;
    }
    LinkOutcome::Reply(
        Reply {
            correlation,
            outcome,
        }
        .encode(),
    )
}
