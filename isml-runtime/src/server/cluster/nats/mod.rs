//! [`NatsCluster`]: servers joined over NATS with JetStream
//! (`docs/cluster.md`). One file per concept:
//!
//! - this file: connecting, the buckets, the link's state (connected or
//!   degraded) and what happens when it changes, the [`Cluster`] hooks;
//! - `link`: the ordered queue of what this node sends, and the answers
//!   to its requests;
//! - `pubsub`: subjects subscribed while local subscribers exist, and the
//!   publications of other nodes delivered here;
//! - `retained`: the retained bucket, written from here and watched;
//! - `presence`: the presence bucket, node leases, the newer session wins;
//! - `remote`: messages and calls to devices on other nodes, and those of
//!   other nodes served here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::future::BoxFuture;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Cluster, ClusterStats, ClusterStatus, DirectMessage, Node, Publication, RemoteCall};
use crate::pubsub::{ChannelInfo, Refusal};
use crate::rpc::CallError;
use crate::session::Session;
use crate::wire::Frame;

mod link;
mod pending;
mod presence;
mod pubsub;
mod remote;
mod retained;

/// The bucket of retained values.
const RETAINED_BUCKET: &str = "isml_retained";
/// The bucket of presence: device id -> node.
const PRESENCE_BUCKET: &str = "isml_presence";
/// The bucket of node leases: node id -> incarnation, expiring.
const NODES_BUCKET: &str = "isml_nodes";

/// Why a [`NatsCluster`] could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// The node id cannot be a subject token.
    #[error("invalid node id {id:?}: use 1 to 64 ASCII letters, digits, `_` or `-`")]
    InvalidNodeId {
        /// The id.
        id: String,
    },
    /// NATS could not be reached.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A key-value bucket could not be opened or created (is JetStream on?
    /// `nats-server -js`).
    #[error("JetStream bucket {bucket}: {message}")]
    Bucket {
        /// The bucket.
        bucket: &'static str,
        /// Why.
        message: String,
    },
}

/// Configures a [`NatsCluster`].
#[derive(Debug, Clone)]
pub struct NatsClusterBuilder {
    url: String,
    node_id: Option<String>,
    lease: Duration,
    replicas: usize,
    queue: usize,
}

impl NatsClusterBuilder {
    /// This node's id, unique in the cluster (1 to 64 ASCII letters,
    /// digits, `_`, `-`); a random one by default.
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(id.into());
        self
    }

    /// How long a node's lease lasts without renewal (renewed every third
    /// of it): the devices of a node that died are forgotten after about
    /// twice this. 10 s by default.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// Replicas of the buckets, where the NATS cluster has as many servers
    /// (1 by default). Applies when a bucket is created.
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n.clamp(1, 5);
        self
    }

    /// Publications and requests waiting to be written to NATS (16,384 by
    /// default); beyond it, publications are dropped and counted
    /// ([`ClusterStats::dropped`]), and messages and calls fail at once.
    pub fn queue(mut self, n: usize) -> Self {
        self.queue = n.max(16);
        self
    }

    /// Connects, and opens (or creates) the buckets.
    pub async fn connect(self) -> Result<NatsCluster, NatsError> {
        let id = self
            .node_id
            .clone()
            .unwrap_or_else(|| format!("node-{:08x}", fastrand::u32(..)));
        if !super::subject::valid_node_id(&id) {
            return Err(NatsError::InvalidNodeId { id });
        }
        let link = Arc::new(LinkState::default());
        let events = link.clone();
        let options = async_nats::ConnectOptions::new()
            .name(format!("isml node {id}"))
            .no_echo()
            .connection_timeout(Duration::from_secs(5))
            .reconnect_delay_callback(|attempt| {
                Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6)))
                    .min(Duration::from_secs(2))
            })
            .event_callback(move |event| {
                let link = events.clone();
                async move { link.event(&event) }
            });
        let client = options
            .connect(self.url.as_str())
            .await
            .map_err(|e| NatsError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        link.status
            .store(ClusterStatus::Connected as u8, Ordering::Relaxed);
        let js = jetstream::new(client.clone());
        let replicas = self.replicas;
        let retained = open_bucket(&js, RETAINED_BUCKET, Duration::ZERO, replicas).await?;
        let presence = open_bucket(&js, PRESENCE_BUCKET, Duration::ZERO, replicas).await?;
        let nodes = open_bucket(&js, NODES_BUCKET, self.lease, replicas).await?;
        let incarnation = fastrand::u64(1..);
        let (out, out_rx) = tokio::sync::mpsc::channel(self.queue);
        Ok(NatsCluster {
            shared: Arc::new(Shared {
                reply_prefix: format!("_isml.reply.{id}.{incarnation:x}"),
                id,
                incarnation,
                url: self.url,
                lease: self.lease,
                client,
                retained,
                presence,
                nodes,
                link,
                node: OnceLock::new(),
                stats: Counters::default(),
                out,
                out_rx: Mutex::new(Some(out_rx)),
                interest: Default::default(),
                retained_state: Default::default(),
                presence_state: Default::default(),
                remote: Default::default(),
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        })
    }
}

/// Opens a key-value bucket, creating it if needed: history 1, file
/// storage, entries older than `max_age` (when not zero) expire.
///
/// The bucket's stream is made here with the layout key-value buckets
/// have (`KV_<bucket>` on `$KV.<bucket>.>`, one message per subject, roll-ups,
/// direct gets), rather than by the client's `create_key_value`, whose
/// account query does not parse what nats-server 2.9 answers.
async fn open_bucket(
    js: &jetstream::Context,
    bucket: &'static str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, NatsError> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    let config = jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: jetstream::stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        num_replicas: replicas,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    let created = js.create_stream(config).await;
    // Another node may have created it meanwhile: open it either way.
    js.get_key_value(bucket)
        .await
        .map_err(|e| NatsError::Bucket {
            bucket,
            message: match created {
                Err(c) => c.to_string(),
                Ok(_) => e.to_string(),
            },
        })
}

/// A node of a cluster of servers over NATS JetStream: give it to
/// [`ServerBuilder::cluster`](crate::server::ServerBuilder::cluster).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use isml_runtime::{Server, cluster::NatsCluster};
/// let cluster = NatsCluster::builder("nats://127.0.0.1:4222").node_id("a").connect().await?;
/// let server = Server::builder()
///     .listen("tcp://0.0.0.0:7000")
///     .cluster(cluster)
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NatsCluster {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NatsCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsCluster")
            .field("node_id", &self.shared.id)
            .field("url", &self.shared.url)
            .field("status", &self.shared.link.status())
            .finish()
    }
}

impl NatsCluster {
    /// Connects to NATS at `url` with a random node id; see
    /// [`NatsCluster::builder`] for the options.
    pub async fn connect(url: impl Into<String>) -> Result<NatsCluster, NatsError> {
        NatsCluster::builder(url).connect().await
    }

    /// A builder for a node of the cluster of NATS at `url`
    /// (`nats://127.0.0.1:4222`; several servers comma-separated).
    pub fn builder(url: impl Into<String>) -> NatsClusterBuilder {
        NatsClusterBuilder {
            url: url.into(),
            node_id: None,
            lease: Duration::from_secs(10),
            replicas: 1,
            queue: 16 * 1024,
        }
    }
}

/// The link's state, as the NATS client's events set it.
#[derive(Default)]
pub(super) struct LinkState {
    status: AtomicU8,
    changed: Notify,
    disconnects: AtomicU64,
}

impl LinkState {
    fn event(&self, event: &async_nats::Event) {
        let status = match event {
            async_nats::Event::Connected => ClusterStatus::Connected,
            async_nats::Event::Disconnected | async_nats::Event::Closed => {
                self.disconnects.fetch_add(1, Ordering::Relaxed);
                ClusterStatus::Degraded
            }
            other => {
                tracing::debug!(event = %other, "cluster: NATS event");
                return;
            }
        };
        self.status.store(status as u8, Ordering::Relaxed);
        self.changed.notify_waiters();
        self.changed.notify_one();
    }

    pub(super) fn status(&self) -> ClusterStatus {
        if self.status.load(Ordering::Relaxed) == ClusterStatus::Connected as u8 {
            ClusterStatus::Connected
        } else {
            ClusterStatus::Degraded
        }
    }

    pub(super) fn connected(&self) -> bool {
        self.status() == ClusterStatus::Connected
    }
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) published: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) dropped: AtomicU64,
    pub(super) malformed: AtomicU64,
    pub(super) retained_writes: AtomicU64,
    pub(super) retained_applied: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) calls_out: AtomicU64,
    pub(super) calls_in: AtomicU64,
    pub(super) replaced: AtomicU64,
    pub(super) resyncs: AtomicU64,
}

pub(super) struct Shared {
    pub(super) id: String,
    pub(super) incarnation: u64,
    url: String,
    pub(super) lease: Duration,
    pub(super) client: async_nats::Client,
    pub(super) retained: kv::Store,
    pub(super) presence: kv::Store,
    pub(super) nodes: kv::Store,
    pub(super) link: Arc<LinkState>,
    pub(super) node: OnceLock<Node>,
    pub(super) stats: Counters,
    /// What this node writes to NATS, in order (see `link`).
    pub(super) out: tokio::sync::mpsc::Sender<link::Outbound>,
    out_rx: Mutex<Option<tokio::sync::mpsc::Receiver<link::Outbound>>>,
    /// The subject prefix of answers to this node's requests.
    pub(super) reply_prefix: String,
    pub(super) interest: pubsub::Interest,
    pub(super) retained_state: retained::State,
    pub(super) presence_state: presence::State,
    pub(super) remote: remote::State,
    pub(super) stop: CancellationToken,
    pub(super) tasks: TaskTracker,
}

impl Shared {
    pub(super) fn node(&self) -> Option<&Node> {
        self.node.get()
    }

    /// Channels by id, as this node brokers them.
    pub(super) fn channels(&self) -> HashMap<u32, ChannelInfo> {
        self.node()
            .map(|n| n.channels().into_iter().map(|c| (c.id, c)).collect())
            .unwrap_or_default()
    }

    /// Runs `fut` until it ends or the node leaves the cluster.
    fn spawn<F>(&self, fut: F) -> tokio::task::AbortHandle
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tasks
            .spawn(async move {
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => {}
                    () = fut => {}
                }
            })
            .abort_handle()
    }
}

/// Follows the link: logs `cluster: degraded` when NATS goes away, and
/// resynchronises the shared state when it returns (and once at start).
async fn supervise(shared: Arc<Shared>) {
    let mut watches = sync(&shared);
    let mut was = ClusterStatus::Connected;
    loop {
        let changed = shared.link.changed.notified();
        let now = shared.link.status();
        if now != was {
            match now {
                ClusterStatus::Degraded => {
                    tracing::warn!(node = %shared.id, url = %shared.url, "cluster: degraded (NATS unreachable); serving local traffic, will resynchronise");
                    for w in watches.drain(..) {
                        w.abort();
                    }
                }
                _ => {
                    shared.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(node = %shared.id, "cluster: connected again; resynchronising");
                    watches = sync(&shared);
                }
            }
            was = now;
        }
        changed.await;
    }
}

/// (Re)starts what follows the buckets and writes this node's state into
/// them: the lease, the presence of every local session, the retained
/// values changed here meanwhile, then the watches (which bring the other
/// nodes' state).
fn sync(shared: &Arc<Shared>) -> Vec<tokio::task::AbortHandle> {
    let s = shared.clone();
    let retained = shared.spawn(async move { retained::follow(s).await });
    let s = shared.clone();
    let presence = shared.spawn(async move { presence::follow(s).await });
    let tasks = vec![retained, presence];
    presence::reannounce(shared);
    retained::wake(shared);
    tasks
}

impl Cluster for NatsCluster {
    fn node_id(&self) -> &str {
        &self.shared.id
    }

    fn start(&self, node: Node) {
        let shared = &self.shared;
        if shared.node.set(node).is_err() {
            return;
        }
        let Some(out_rx) = shared
            .out_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            return;
        };
        let s = shared.clone();
        shared.spawn(async move { link::write(s, out_rx).await });
        let s = shared.clone();
        shared.spawn(async move { link::answers(s).await });
        let s = shared.clone();
        shared.spawn(async move { pubsub::manage(s).await });
        let s = shared.clone();
        shared.spawn(async move { remote::serve(s).await });
        let s = shared.clone();
        shared.spawn(async move { retained::write(s).await });
        let s = shared.clone();
        shared.spawn(async move { presence::write(s).await });
        let s = shared.clone();
        shared.spawn(async move { presence::lease(s).await });
        let s = shared.clone();
        shared.spawn(async move { presence::sweep(s).await });
        let s = shared.clone();
        shared.spawn(async move { supervise(s).await });
        tracing::info!(node = %shared.id, url = %shared.url, "cluster: joined");
    }

    fn published(&self, p: &Publication<'_>) {
        pubsub::published(&self.shared, p);
        if p.channel.retain {
            retained::put(&self.shared, p);
        }
    }

    fn deleted(&self, channel: &ChannelInfo, key: Option<&str>) {
        retained::delete(&self.shared, channel, key);
    }

    fn interest(&self, channel: &ChannelInfo, key: Option<&str>, present: bool) {
        pubsub::interest(&self.shared, channel, key, present);
    }

    fn session_opened(&self, session: &Session) {
        presence::opened(&self.shared, session);
    }

    fn session_closed(&self, session: &Session) {
        presence::closed(&self.shared, session);
    }

    fn send_to(&self, message: DirectMessage) -> Option<BoxFuture<'static, Result<(), Refusal>>> {
        Some(remote::send_to(&self.shared, message))
    }

    fn locate(&self, device: &str) -> BoxFuture<'static, Option<String>> {
        let shared = self.shared.clone();
        let device = device.to_owned();
        Box::pin(async move { presence::locate(&shared, &device).await.map(|p| p.node) })
    }

    fn call(&self, call: RemoteCall) -> BoxFuture<'static, Result<Option<Frame>, CallError>> {
        Box::pin(remote::call(self.shared.clone(), call))
    }

    fn stats(&self) -> ClusterStats {
        let s = &self.shared.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClusterStats {
            node_id: self.shared.id.clone(),
            status: self.shared.link.status(),
            published: load(&s.published),
            received: load(&s.received),
            dropped: load(&s.dropped),
            retained_writes: load(&s.retained_writes),
            retained_applied: load(&s.retained_applied),
            sent: load(&s.sent),
            calls_out: load(&s.calls_out),
            calls_in: load(&s.calls_in),
            replaced: load(&s.replaced),
            disconnects: load(&self.shared.link.disconnects),
            resyncs: load(&s.resyncs),
        }
    }

    fn stop(&self) -> BoxFuture<'static, ()> {
        let shared = self.shared.clone();
        Box::pin(async move {
            // What is queued (presence removals of the sessions just
            // closed, the last retained values) goes out first.
            retained::flush(&shared).await;
            presence::leave(&shared).await;
            let _ = shared.client.flush().await;
            shared.stop.cancel();
            shared.tasks.close();
            shared.tasks.wait().await;
        })
    }
}
