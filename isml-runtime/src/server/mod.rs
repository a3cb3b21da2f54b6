//! The server: listeners on several transports at once, admission of
//! unauthenticated connections, the handshake, a session limit, a registry of
//! sessions, hooks and graceful shutdown.
//!
//! Shape (as in mini-redis): one accept loop per listener, one task per
//! connection, and a cancellation token broadcasting shutdown. Hooks run in
//! the connection's task, never under a lock of the server.
//!
//! Before it authenticates, a connection is *pending*: it may only send a
//! small hello (`max_handshake_frame`), and pending connections are bounded
//! on their own (see the `admission` rules in `docs/runtime.md`: caps in
//! all and per source address, the oldest shed first, a per-address rate).
//! Only an authenticated connection takes one of the `max_connections`
//! places; beyond it, it is refused with a `close` frame, code 8.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::SinkExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod admission;
pub(crate) mod broker;
pub mod cluster;
mod resume;
#[cfg(feature = "tcp")]
mod text;

pub use admission::Rate;
use admission::{Admission, AdmissionConfig, Refusal, Source, Ticket};
pub use broker::BrokerError;
pub use resume::ResumeStats;
use resume::{Claimed, ResumeConfig, Resumes};
#[cfg(feature = "tcp")]
pub use text::TextStats;

use crate::TopLevel;
use crate::dispatch::Dispatcher;
use crate::handshake::{
    AllowAll, AuthRequest, Authenticator, Hello, PROTOCOL_VERSION, ReadError, SharedAuthenticator,
    Untrusted, Welcome, WelcomeResume, mismatched, read_whole, validate_device_id,
};
use crate::session::{
    self, CloseReason, Established, PRINCIPAL, SendError, Session, SessionConfig, codes,
};
use crate::transport::{
    Endpoint, FrameStream, FrameTx, Incoming, ListenOptions, Listener, TransportError,
    TransportInfo,
};
use crate::wire::{ControlOp, ErrorBody, Frame, FrameHeader, FrameKind, Reassembler};

/// What the server does when a device id that has a live session connects
/// again.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DuplicateIds {
    /// The newer session wins: the older one is closed with code 12
    /// (`DEVICE_ID_IN_USE`). A device that rebooted or lost its link gets
    /// back in at once, without waiting for the old session's keep-alive to
    /// expire (MQTT's choice).
    #[default]
    ReplaceOlder,
    /// The newer connection is refused with code 12 while the older session
    /// lives.
    RefuseNewer,
}

/// The largest hello a server accepts by default, in bytes.
pub const DEFAULT_MAX_HANDSHAKE_FRAME: usize = 8 * 1024;

/// Why a server could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be bound.
    #[error("cannot listen on {url}: {source}")]
    Listen {
        /// The URL.
        url: String,
        /// Why.
        source: TransportError,
    },
    /// No listener was configured.
    #[error("no listener configured")]
    NoListener,
    /// The broker could not start (duplicate channel ids, the store).
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// A text listener's URL or options, or a text variable's mapping, is invalid.
    #[error("{message}")]
    Text {
        /// What is wrong, and where.
        message: String,
    },
}

type OpenHook = Arc<dyn Fn(&Session) + Send + Sync>;
type CloseHook = Arc<dyn Fn(&Session, &CloseReason) + Send + Sync>;

/// Configures and starts a [`Server`].
pub struct ServerBuilder {
    listen: Vec<String>,
    /// Listeners given whole (`ServerBuilder::listener`).
    listeners: Vec<Listener>,
    config: SessionConfig,
    max_connections: usize,
    handshake_timeout: Duration,
    shutdown_timeout: Duration,
    auth: SharedAuthenticator,
    dispatcher: Dispatcher,
    types: Vec<(u32, &'static str, u64)>,
    on_open: Option<OpenHook>,
    on_close: Option<CloseHook>,
    options: ListenOptions,
    admission: AdmissionConfig,
    max_handshake_frame: usize,
    duplicates: DuplicateIds,
    pubsub: broker::BrokerSetup,
    resume: ResumeConfig,
    #[cfg(feature = "tcp")]
    text: text::TextSetup,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("listen", &self.listen)
            .field("config", &self.config)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Adds a listener (`tcp://0.0.0.0:7000`, `mem://server`, ...).
    pub fn listen(mut self, url: impl Into<String>) -> Self {
        self.listen.push(url.into());
        self
    }

    /// Adds a listener made by the caller: one bound with
    /// [`Listener::bind`], or one over connections accepted by code of the
    /// caller's own ([`Listener::from_incoming`]: an inherited socket, a
    /// tunnel, a simulated network). Its connections go through the same
    /// admission, handshake and session limit as those of
    /// [`ServerBuilder::listen`]; [`ServerBuilder::max_frame`] does not
    /// apply to transports the caller built.
    pub fn listener(mut self, listener: Listener) -> Self {
        self.listeners.push(listener);
        self
    }

    /// Adds the message types of a generated dispatch table (`AnyMessage::TYPES`)
    /// to the fingerprints announced in the handshake.
    pub fn types(mut self, table: &'static [(u32, &'static str, u64)]) -> Self {
        self.types.extend_from_slice(table);
        self
    }

    /// The handlers for incoming messages.
    pub fn dispatcher(mut self, dispatcher: Dispatcher) -> Self {
        self.dispatcher = dispatcher;
        self
    }

    /// Checks credentials (default: [`AllowAll`]).
    pub fn authenticator(mut self, auth: impl Authenticator) -> Self {
        self.auth = Arc::new(auth);
        self
    }

    /// Session settings (keep-alive, queue size, request timeout).
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    crate::session::session_setters!();

    /// Largest frame accepted or sent.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes.max(1);
        self.options.max_frame = Some(bytes.max(1));
        self
    }

    /// Sessions (authenticated connections) at once, 10,000 by default;
    /// beyond it an authenticated newcomer is refused with a `close` frame
    /// (code 8). Connections still in their handshake do not count: see
    /// [`ServerBuilder::max_unauthenticated`].
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Connections that have not completed their handshake, in all (2,048 by
    /// default). When a newcomer finds them all taken, the oldest is shed:
    /// closed with code 8, never an authenticated session.
    pub fn max_unauthenticated(mut self, n: usize) -> Self {
        self.admission.max_pending = n.max(1);
        self
    }

    /// Connections that have not completed their handshake from one source
    /// address (an IPv4 address or an IPv6 /64), 16 by default; beyond it the
    /// oldest of that address is shed.
    pub fn max_unauthenticated_per_address(mut self, n: usize) -> Self {
        self.admission.max_pending_per_address = n.max(1);
        self
    }

    /// Connections (pending and established) from one source address;
    /// beyond it a newcomer is refused with code 8. Unlimited by default,
    /// because whole fleets may share one address behind carrier NAT.
    pub fn max_connections_per_address(mut self, n: Option<usize>) -> Self {
        self.admission.max_connections_per_address = n;
        self
    }

    /// New connections per second from one source address (a token bucket:
    /// `burst` at once, then `per_second`); beyond it a newcomer is closed at
    /// once, without a handshake. 20 per second with bursts of 40 by
    /// default; `None` turns the limit off.
    pub fn handshake_rate(mut self, rate: Option<Rate>) -> Self {
        self.admission.handshake_rate = rate;
        self
    }

    /// The largest frame (and the largest hello, joined from fragments)
    /// accepted before a connection has authenticated; 8 KiB by default. The
    /// hello lists every message type's fingerprint (about 10 bytes each).
    pub fn max_handshake_frame(mut self, bytes: usize) -> Self {
        self.max_handshake_frame = bytes.max(16);
        self
    }

    /// How long the reliable state of a session whose connection broke is
    /// kept for the client to resume it (60 s by default; zero: not kept).
    /// See `docs/reliability.md`.
    pub fn session_expiry(mut self, expiry: Duration) -> Self {
        self.resume.expiry = expiry;
        self
    }

    /// Reliable states kept without a connection at most (16,384 by
    /// default); beyond it the one whose connection broke first expires.
    /// Each holds at most `unacked_bytes` of unacknowledged frames.
    pub fn max_detached_sessions(mut self, states: usize) -> Self {
        self.resume.max_detached = states.max(1);
        self
    }

    /// What to do when a device id with a live session connects again.
    pub fn duplicate_ids(mut self, policy: DuplicateIds) -> Self {
        self.duplicates = policy;
        self
    }

    /// Time a connection has to complete the transport and isml handshakes.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long [`Server::shutdown`] waits for sessions to drain.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// rustls configuration for `tls://` listeners.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.options.tls = Some(config);
        self
    }

    /// Called when a session is established (before its first message is handled).
    pub fn on_open(mut self, hook: impl Fn(&Session) + Send + Sync + 'static) -> Self {
        self.on_open = Some(Arc::new(hook));
        self
    }

    /// Called when a session has ended.
    pub fn on_close(
        mut self,
        hook: impl Fn(&Session, &CloseReason) + Send + Sync + 'static,
    ) -> Self {
        self.on_close = Some(Arc::new(hook));
        self
    }

    // Publish/subscribe (see `crate::pubsub` and `docs/pubsub.md`).

    /// Brokers channel `C` (and announces its message type's fingerprint in
    /// the handshake, as [`ServerBuilder::types`] does).
    pub fn channel<C: crate::pubsub::Channel>(mut self) -> Self {
        let m = (
            <C::Message as TopLevel>::TYPE_ID,
            <C::Message as crate::Message>::NAME,
            <C::Message as TopLevel>::fingerprint(),
        );
        if !self.types.contains(&m) {
            self.types.push(m);
        }
        self.pubsub.channels.push(C::info());
        self
    }

    /// Brokers a channel described at run time (schemas loaded at run time).
    pub fn channel_info(mut self, info: crate::pubsub::ChannelInfo) -> Self {
        self.pubsub.channels.push(info);
        self
    }

    /// Keeps retained values in a redb database in `dir` (created if
    /// needed), reloaded on start. Without it they live in memory only and
    /// a restart loses them.
    #[cfg(feature = "store")]
    pub fn data_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.pubsub.data_dir = Some(dir.into());
        self
    }

    /// Adds a filter at the end of the chain that every message, request,
    /// publication and device-to-device message from a session passes.
    pub fn filter(mut self, filter: impl crate::pubsub::Filter) -> Self {
        self.pubsub.filters.push(Box::new(filter));
        self
    }

    /// Installs an access control list: from then on, what it does not
    /// allow is denied.
    pub fn acl(mut self, acl: crate::pubsub::Acl) -> Self {
        self.pubsub.acl = Some(acl);
        self
    }

    /// Closes a session (code 7) once the filters have refused `n` of its
    /// messages. Off by default.
    pub fn close_after_offences(mut self, n: u64) -> Self {
        self.pubsub.config.offence_limit = Some(n.max(1));
        self
    }

    /// Makes this server a node of `cluster` ([`SingleNode`](cluster::SingleNode),
    /// a server alone, by default): publications reach the subscribers of
    /// every node, retained values and presence are shared, and calls and
    /// messages reach devices connected to other nodes. See
    /// [`NatsCluster`](cluster::NatsCluster) (feature `cluster`) and
    /// `docs/cluster.md`.
    pub fn cluster(mut self, cluster: impl cluster::Cluster) -> Self {
        self.pubsub.cluster = Some(Arc::new(cluster));
        self
    }

    /// Bounds of each subscriber's queue in the broker, beyond its
    /// session's outbound queue: 1,024 deliveries and 1 MiB by default.
    /// When it is full, a newer retained value replaces the queued one of
    /// its channel and key; otherwise the oldest delivery is dropped.
    pub fn subscriber_queue(mut self, deliveries: usize, bytes: usize) -> Self {
        self.pubsub.config.queue_frames = deliveries.max(1);
        self.pubsub.config.queue_bytes = bytes.max(1);
        self
    }

    /// Binds every listener and starts accepting.
    /// Maps text variable `variable` to the typed channel named `channel`
    /// (`charging.v1.telemetry`): a text `PUB` carries the value as JSON,
    /// checked and encoded by [`ServerBuilder::text_values`], and typed
    /// publications reach text subscribers as compact JSON. On a keyed
    /// channel the variable's name is the key. Other variables live on
    /// [`isml.text.variables`](crate::text::channels::Variables).
    #[cfg(feature = "tcp")]
    pub fn text_map(mut self, variable: impl Into<String>, channel: impl Into<String>) -> Self {
        self.text.maps.push((variable.into(), channel.into()));
        self
    }

    /// The JSON codec of text variables mapped to typed channels, and of
    /// messages of other types sent to text devices.
    #[cfg(feature = "tcp")]
    pub fn text_values(mut self, values: impl crate::text::TextValues) -> Self {
        self.text.values = Some(Arc::new(values));
        self
    }

    /// Starts the listeners and the broker. `text+tcp://HOST:PORT` and
    /// `text+tls://HOST:PORT` URLs start text-protocol listeners
    /// ([`crate::text`]), which also serve the `isml.text.variables` channel.
    pub async fn start(mut self) -> Result<Server, ServerError> {
        if self.listen.is_empty() && self.listeners.is_empty() {
            return Err(ServerError::NoListener);
        }
        let (text_urls, binary_urls): (Vec<String>, Vec<String>) = std::mem::take(&mut self.listen)
            .into_iter()
            .partition(|u| u.starts_with("text+"));
        self.listen = binary_urls;
        #[cfg(feature = "tcp")]
        let text_state = if text_urls.is_empty() && self.text.maps.is_empty() {
            None
        } else {
            let variables = text::variables_info();
            if !self.pubsub.channels.iter().any(|c| c.id == variables.id) {
                self.pubsub.channels.push(variables);
            }
            let setup = std::mem::take(&mut self.text);
            Some(Arc::new(text::TextShared::new(
                setup,
                &self.pubsub.channels,
            )?))
        };
        #[cfg(not(feature = "tcp"))]
        if let Some(url) = text_urls.first() {
            return Err(ServerError::Listen {
                url: url.clone(),
                source: TransportError::Unsupported {
                    scheme: "text+tcp",
                    feature: "tcp",
                },
            });
        }
        #[cfg(feature = "tcp")]
        let mut text_listeners = Vec::new();
        #[cfg(feature = "tcp")]
        for url in &text_urls {
            text_listeners.push(text::TextListener::bind(url, &self.options).await?);
        }
        let registry = Arc::new(Registry::default());
        let cluster: Arc<dyn cluster::Cluster> = self
            .pubsub
            .cluster
            .get_or_insert_with(|| Arc::new(cluster::SingleNode))
            .clone();
        let broker = Arc::new(broker::Broker::new(self.pubsub, registry.clone())?);
        let dispatcher = Arc::new(self.dispatcher);
        let front = Arc::new(broker::front::Front {
            dispatcher: dispatcher.clone(),
            broker: broker.clone(),
        });
        let mut listeners = std::mem::take(&mut self.listeners);
        for url in &self.listen {
            let err = |source| ServerError::Listen {
                url: url.clone(),
                source,
            };
            let endpoint: Endpoint = url.parse().map_err(err)?;
            listeners.push(
                Listener::bind(&endpoint, &self.options)
                    .await
                    .map_err(err)?,
            );
        }
        #[allow(unused_mut)]
        let mut urls: Vec<String> = listeners.iter().map(|l| l.url().to_owned()).collect();
        #[cfg(feature = "tcp")]
        urls.extend(text_listeners.iter().map(|l| l.url().to_owned()));
        let inner = Arc::new(Inner {
            urls,
            registry,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            limit: Arc::new(Semaphore::new(self.max_connections)),
            max_connections: self.max_connections,
            next_id: AtomicU64::new(1),
            stats: Counters::default(),
            config: Arc::new(self.config),
            handshake_timeout: self.handshake_timeout,
            shutdown_timeout: self.shutdown_timeout,
            auth: self.auth,
            front,
            broker,
            types: self.types,
            on_open: self.on_open,
            on_close: self.on_close,
            admission: Admission::new(self.admission),
            refusals: Arc::new(Semaphore::new(64)),
            max_handshake_frame: self.max_handshake_frame,
            duplicates: self.duplicates,
            resumes: Resumes::new(self.resume),
            #[cfg(feature = "tcp")]
            text: text_state,
            cluster,
        });
        inner.cluster.start(cluster::Node::new(&inner));
        for l in listeners {
            let inner2 = inner.clone();
            inner.tracker.spawn(accept_loop(inner2, l));
        }
        #[cfg(feature = "tcp")]
        for l in text_listeners {
            inner.tracker.spawn(text::accept_loop(inner.clone(), l));
        }
        Ok(Server { inner })
    }
}

#[derive(Default)]
pub(crate) struct Registry {
    by_id: RwLock<HashMap<u64, Session>>,
    by_device: RwLock<HashMap<String, u64>>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    handshake_failures: AtomicU64,
    replaced: AtomicU64,
}

struct Inner {
    admission: Arc<Admission>,
    /// Refusals being written at once (each costs a task and a write); beyond
    /// it refused connections are closed without a reason.
    refusals: Arc<Semaphore>,
    max_handshake_frame: usize,
    duplicates: DuplicateIds,
    urls: Vec<String>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    limit: Arc<Semaphore>,
    max_connections: usize,
    next_id: AtomicU64,
    stats: Counters,
    config: Arc<SessionConfig>,
    handshake_timeout: Duration,
    shutdown_timeout: Duration,
    auth: SharedAuthenticator,
    front: Arc<broker::front::Front>,
    broker: Arc<broker::Broker>,
    types: Vec<(u32, &'static str, u64)>,
    on_open: Option<OpenHook>,
    on_close: Option<CloseHook>,
    /// Reliable session states, by resume token.
    resumes: Resumes,
    /// Text listeners' shared state (with text listeners or mappings only).
    #[cfg(feature = "tcp")]
    text: Option<Arc<text::TextShared>>,
    /// The cluster this server is a node of.
    cluster: Arc<dyn cluster::Cluster>,
}

/// Counters of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted under the limit.
    pub accepted: u64,
    /// Authenticated connections refused by the session limit.
    pub refused: u64,
    /// Connections closed before completing the handshake.
    pub handshake_failures: u64,
    /// Sessions established right now.
    pub sessions: usize,
    /// Connections in their handshake right now.
    pub unauthenticated: usize,
    /// Unauthenticated connections shed to make room for newer ones.
    pub shed: u64,
    /// Connections refused because their address opened too many too fast.
    pub rate_limited: u64,
    /// Connections refused because their address has too many open.
    pub refused_per_address: u64,
    /// Sessions closed because their device id connected again.
    pub replaced: u64,
}

/// What a broadcast reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastReport {
    /// Sessions the message was queued on.
    pub sent: usize,
    /// Sessions skipped: outbound queue full (the policy: drop, never wait).
    pub full: usize,
    /// Sessions skipped: closing, or the type is refused on them.
    pub skipped: usize,
}

/// A running server; clone the handle freely.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("urls", &self.inner.urls)
            .finish_non_exhaustive()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // Critical sections are single map operations: a poisoned map is consistent.
    l.read().unwrap_or_else(|e| e.into_inner())
}
fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    /// A builder with defaults: no listener, [`AllowAll`], 10,000 connections,
    /// 10 s handshake timeout, [`SessionConfig::default`].
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            listen: Vec::new(),
            listeners: Vec::new(),
            config: SessionConfig::default(),
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            auth: Arc::new(AllowAll),
            dispatcher: Dispatcher::new(),
            types: Vec::new(),
            on_open: None,
            on_close: None,
            options: ListenOptions::default(),
            admission: AdmissionConfig::default(),
            max_handshake_frame: DEFAULT_MAX_HANDSHAKE_FRAME,
            duplicates: DuplicateIds::default(),
            pubsub: broker::BrokerSetup::default(),
            resume: ResumeConfig::default(),
            #[cfg(feature = "tcp")]
            text: text::TextSetup::default(),
        }
    }

    /// The bound URLs (actual ports): those of [`ServerBuilder::listener`]
    /// first, then those of [`ServerBuilder::listen`], each in the order
    /// added.
    pub fn urls(&self) -> &[String] {
        &self.inner.urls
    }

    /// The session with this id.
    pub fn session(&self, id: u64) -> Option<Session> {
        read(&self.inner.registry.by_id).get(&id).cloned()
    }

    /// The session of this device (the most recent one if it connected twice).
    pub fn session_by_device(&self, device_id: &str) -> Option<Session> {
        let id = *read(&self.inner.registry.by_device).get(device_id)?;
        self.session(id)
    }

    /// A connection to a device for generated clients
    /// (`ChargerClient::new(conn)`): its session here, or, in a cluster,
    /// the node it is connected to ([`Conn::Remote`](crate::rpc::Conn::Remote)).
    /// `None` when no node knows the device.
    pub async fn device(&self, device_id: &str) -> Option<crate::rpc::Conn> {
        if let Some(s) = self.session_by_device(device_id).filter(|s| !s.is_closed()) {
            return Some(crate::rpc::Conn::Session(s));
        }
        let cluster = self.inner.cluster.clone();
        let node = cluster.locate(device_id).await?;
        Some(crate::rpc::Conn::Remote(cluster::RemoteDevice::new(
            cluster,
            device_id.to_owned(),
            node,
            self.inner.config.request_timeout,
        )))
    }

    /// This node's link to its cluster: connected or degraded, and its
    /// counters ([`ClusterStatus::Single`](cluster::ClusterStatus::Single) alone).
    pub fn cluster_stats(&self) -> cluster::ClusterStats {
        self.inner.cluster.stats()
    }

    /// Every established session (a snapshot).
    pub fn sessions(&self) -> Vec<Session> {
        read(&self.inner.registry.by_id).values().cloned().collect()
    }

    /// Sessions matching a predicate (run on a snapshot, outside any lock).
    pub fn find(&self, mut predicate: impl FnMut(&Session) -> bool) -> Vec<Session> {
        let mut all = self.sessions();
        all.retain(|s| predicate(s));
        all
    }

    /// Number of established sessions.
    pub fn session_count(&self) -> usize {
        read(&self.inner.registry.by_id).len()
    }

    /// Counters of the reliable session states (resumed, expired, kept).
    pub fn resume_stats(&self) -> ResumeStats {
        self.inner.resumes.stats()
    }

    /// Statistics of the reliable state of `device`'s session, connected
    /// or waiting to be resumed.
    pub fn link_stats(&self, device: &str) -> Option<session::LinkStats> {
        self.inner.resumes.link_stats(device)
    }

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.inner.stats;
        let a = self.inner.admission.stats();
        ServerStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            handshake_failures: c.handshake_failures.load(Ordering::Relaxed),
            sessions: self.session_count(),
            unauthenticated: a.pending,
            shed: a.shed,
            rate_limited: a.refused_rate,
            refused_per_address: a.refused_address,
            replaced: c.replaced.load(Ordering::Relaxed),
        }
    }

    /// Queues a one-way message on every session, encoded once, never waiting:
    /// a session whose outbound queue is full misses it.
    pub fn broadcast<M: TopLevel>(&self, msg: &M) -> Result<BroadcastReport, SendError> {
        let mut buf = BytesMut::with_capacity(msg.encoded_len());
        msg.encode(&mut buf).map_err(|source| SendError::Encode {
            message: M::NAME,
            source,
        })?;
        let frame = Frame::new(FrameHeader::one_way(M::TYPE_ID), buf.freeze());
        let mut report = BroadcastReport::default();
        for s in self.sessions() {
            if s.refused_types().iter().any(|(id, _)| *id == M::TYPE_ID) {
                report.skipped += 1;
                continue;
            }
            match s.try_enqueue(frame.clone()) {
                Ok(()) => report.sent += 1,
                Err(SendError::QueueFull { .. }) => report.full += 1,
                Err(_) => report.skipped += 1,
            }
        }
        Ok(report)
    }

    /// Counters of the text listeners (lines, answers, `BAD` by reason);
    /// all zero without text listeners.
    #[cfg(feature = "tcp")]
    pub fn text_stats(&self) -> TextStats {
        self.inner
            .text
            .as_ref()
            .map(|t| t.stats())
            .unwrap_or_default()
    }

    /// Stops accepting, closes every session with code 9 ("server shutting
    /// down") after what is queued on it is written, and waits for every
    /// connection task to end (at most the shutdown timeout).
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.shutdown.cancel();
        let closing = self.sessions().into_iter().map(|s| async move {
            s.close_with(codes::UNAVAILABLE, "server shutting down")
                .await;
        });
        futures_util::future::join_all(closing).await;
        inner.tracker.close();
        if tokio::time::timeout(inner.shutdown_timeout, inner.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("server shutdown: some connections did not end in time");
        }
        if tokio::time::timeout(inner.shutdown_timeout, inner.cluster.stop())
            .await
            .is_err()
        {
            tracing::warn!("server shutdown: the cluster did not stop in time");
        }
        inner.broker.close_store().await;
    }
}

async fn accept_loop(inner: Arc<Inner>, mut listener: Listener) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let incoming = tokio::select! {
            biased;
            _ = inner.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let incoming = match incoming {
            Ok(i) => {
                backoff = Duration::from_millis(10);
                i
            }
            Err(TransportError::Closed) => {
                // Connections given by a stream that ended.
                tracing::info!(listener = listener.url(), "listener closed");
                return;
            }
            Err(e) => {
                // Out of file descriptors, a serial port gone: wait and retry.
                tracing::warn!(listener = listener.url(), error = %e, "accept failed; retrying in {backoff:?}");
                tokio::select! {
                    biased;
                    _ = inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        match inner.admission.admit(Source::of_peer(incoming.peer())) {
            Ok(ticket) => {
                inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
                let inner2 = inner.clone();
                inner.tracker.spawn(connection(inner2, incoming, ticket));
            }
            Err(Refusal::Rate) => {
                // Closed at once: a flood must not cost a task or a write.
                tracing::debug!(
                    peer = incoming.peer(),
                    "connection refused: address over its handshake rate"
                );
                drop(incoming);
            }
            Err(Refusal::PerAddress(max)) => {
                tracing::info!(
                    peer = incoming.peer(),
                    "connection refused: {max} connections from this address"
                );
                let message = format!("{max} connections from this address are open");
                if let Ok(permit) = inner.refusals.clone().try_acquire_owned() {
                    inner.tracker.spawn(async move {
                        refuse(incoming, message).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

fn close_frame(code: u64, message: &str) -> Frame {
    let body = ErrorBody { code, message };
    let mut buf = BytesMut::with_capacity(body.encoded_len());
    body.encode(&mut buf);
    Frame::new(FrameHeader::control(ControlOp::Close), buf.freeze())
}

async fn refuse(incoming: Incoming, message: String) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async move {
        let (_, mut tx, _) = incoming.upgrade().await?.split();
        tx.send(close_frame(codes::RESOURCE_EXHAUSTED, &message))
            .await?;
        tx.close().await
    })
    .await;
}

struct Handshaken {
    est: Established,
    /// The reliable state claimed, and what the client reported received.
    resume: Option<(Claimed, u64)>,
    /// Written as the session's first frame once it is registered, so that a
    /// client whose `connect` returned finds its session on the server.
    welcome: Frame,
    rx: FrameStream,
    tx: FrameTx,
    info: TransportInfo,
    principal: Option<String>,
}

async fn connection(inner: Arc<Inner>, incoming: Incoming, mut ticket: Ticket) {
    let peer = incoming.peer().to_owned();
    let deadline = Instant::now() + inner.handshake_timeout;
    let result = tokio::select! {
        biased;
        _ = inner.shutdown.cancelled() => return,
        // Boxed: its state is large and needed only until the session starts,
        // while this task's own future lives as long as the connection.
        r = Box::pin(handshake(&inner, incoming, deadline, &ticket)) => r,
    };
    let mut h = match result {
        Ok(h) => h,
        Err(reason) => {
            inner
                .stats
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, reason = %Untrusted(&reason), "handshake failed");
            return;
        }
    };
    // Authenticated: no longer pending, and now it takes a session's place.
    ticket.established();
    let Ok(_permit) = inner.limit.clone().try_acquire_owned() else {
        inner.stats.refused.fetch_add(1, Ordering::Relaxed);
        let message = format!("session limit of {} reached", inner.max_connections);
        tracing::info!(%peer, "session refused: {message}");
        refuse_with(&mut h.tx, codes::RESOURCE_EXHAUSTED, &message).await;
        release_claim(&inner, &h.resume);
        return;
    };
    let id = h.est.id;
    let device = h.est.device_id.clone();
    // One session per device id; the policy decides which one stays. The
    // device map is updated first (under its lock, so that two connections
    // of one id cannot both win), the session map once the session exists.
    let older = {
        let mut by_device = write(&inner.registry.by_device);
        let older = by_device
            .get(&device)
            .and_then(|old| read(&inner.registry.by_id).get(old).cloned())
            .filter(|s| !s.is_closed());
        let refuse = older.is_some() && inner.duplicates == DuplicateIds::RefuseNewer;
        if !refuse {
            by_device.insert(device.clone(), id);
        }
        older.map(|s| (s, refuse))
    };
    let older = match older {
        Some((_, true)) => {
            let message = format!("device id {device} is already connected");
            tracing::info!(%peer, device = %Untrusted(&device), "session refused: device id in use");
            refuse_with(&mut h.tx, codes::DEVICE_ID_IN_USE, &message).await;
            release_claim(&inner, &h.resume);
            return;
        }
        Some((s, false)) => Some(s),
        None => None,
    };
    // What a resumed session takes over: the subscriptions and properties
    // of the session that carried the state, from it when it is still open
    // (its connection broke, but the server has not noticed yet), otherwise
    // as kept when it ended.
    let restore = match &h.resume {
        Some((c, _)) if c.resumed => Some(match c.link.session() {
            Some(old) => (inner.broker.subscriptions_of(&old), Some(old.props())),
            None => c.link.kept(),
        }),
        _ => None,
    };
    if let Some(old) = older {
        inner.stats.replaced.fetch_add(1, Ordering::Relaxed);
        tracing::info!(device = %Untrusted(&device), old = old.id(), new = id, %peer, "device connected again: older session replaced");
        // A newcomer that resumed the reliable state the older session
        // carries is the same client: an attempt it gave up on whose hello
        // arrived late, or a reconnection before this side noticed the old
        // connection was gone. The older session is told to reconnect
        // (code 9), not that another client took its device id (code 12,
        // after which a client stops reconnecting).
        let same_state = matches!(
            (&h.resume, old.link()),
            (Some((c, _)), Some(l)) if c.resumed && Arc::ptr_eq(&c.link, l)
        );
        let (code, message) = if same_state {
            (
                codes::UNAVAILABLE,
                format!("replaced by a newer connection that resumed this session (session {id})"),
            )
        } else {
            (
                codes::DEVICE_ID_IN_USE,
                format!("replaced by a newer session of device {device} (session {id})"),
            )
        };
        tokio::spawn(async move {
            old.close_with(code, message).await;
        });
    }
    if let Some(limit) = &h.info.receive_limit {
        limit.set(inner.config.max_frame);
    }
    let principal = h.principal;
    let (session, run) = session::start(h.est, h.rx, h.tx, h.info, inner.front.clone(), |s| {
        if let Some(p) = principal {
            s.set(&PRINCIPAL, p);
        }
    });
    // The welcome is queued first (the queue is empty), then the session is
    // registered, and only then does its loop run and write the welcome: when
    // the client's `connect` returns, the server already lists the session.
    if let Err(e) = session.try_enqueue(h.welcome) {
        tracing::info!(%peer, error = %e, "welcome not queued");
        forget_device(&inner, &device, id);
        release_claim(&inner, &h.resume);
        return;
    }
    // After the welcome: the subscriptions again, then what the client has
    // not received, in order, before anything new.
    let link = h.resume.as_ref().map(|(c, received)| {
        if let Some((subscriptions, props)) = restore {
            if let Some(props) = props {
                session.restore_props(props);
            }
            inner.broker.restore(&session, subscriptions);
        }
        c.link.attach(&session, c.token, *received, c.resumed);
        (c.link.clone(), c.claim)
    });
    write(&inner.registry.by_id).insert(id, session.clone());
    tracing::debug!(session = id, device = %Untrusted(&device), %peer, "session open");
    inner.cluster.session_opened(&session);
    if let Some(hook) = &inner.on_open {
        hook(&session);
    }
    // The session runs in this task: one task per connection.
    let late_shutdown = async {
        if inner.shutdown.is_cancelled() {
            // Shutdown began between the registry snapshot and our insertion.
            session
                .close_with(codes::UNAVAILABLE, "server shutting down")
                .await;
        }
    };
    let (reason, ()) = tokio::join!(run, late_shutdown);
    // The reliable state waits for the session that resumes it, unless
    // another carries it already, or the client closed the session itself.
    if let Some((link, claim)) = &link
        && link.session().is_none()
    {
        link.keep(inner.broker.subscriptions_of(&session), session.props());
        inner.resumes.detached(link, *claim, !session.peer_closed());
    }
    inner.broker.session_ended(&session);
    write(&inner.registry.by_id).remove(&id);
    forget_device(&inner, &device, id);
    inner.cluster.session_closed(&session);
    tracing::info!(
        session = id,
        device = %Untrusted(&device),
        %peer,
        by = ?reason.by,
        code = reason.code,
        reason = %Untrusted(&reason.message),
        "session closed"
    );
    if let Some(hook) = &inner.on_close {
        hook(&session, &reason);
    }
}

/// Whether `device` has an open session that carries a reliable state.
fn live_reliable_session(inner: &Inner, device: &str) -> bool {
    let Some(id) = read(&inner.registry.by_device).get(device).copied() else {
        return false;
    };
    read(&inner.registry.by_id)
        .get(&id)
        .is_some_and(|s| !s.is_closed() && s.link().is_some())
}

/// A claimed reliable state whose session was refused waits to expire.
fn release_claim(inner: &Inner, resume: &Option<(Claimed, u64)>) {
    if let Some((c, _)) = resume {
        inner.resumes.detached(&c.link, c.claim, true);
    }
}

/// Removes a device's entry if it still names this session.
fn forget_device(inner: &Inner, device: &str, id: u64) {
    let mut by_device = write(&inner.registry.by_device);
    if by_device.get(device) == Some(&id) {
        by_device.remove(device);
    }
}

async fn refuse_with(tx: &mut FrameTx, code: u64, message: &str) -> String {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tx.send(close_frame(code, message)).await?;
        tx.close().await
    })
    .await;
    format!("{message} (code {code})")
}

async fn handshake(
    inner: &Inner,
    incoming: Incoming,
    deadline: Instant,
    ticket: &Ticket,
) -> Result<Handshaken, String> {
    let transport = tokio::select! {
        biased;
        () = ticket.shed() => return Err("shed during the transport handshake".into()),
        r = tokio::time::timeout_at(deadline, incoming.upgrade()) => match r {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("transport handshake not completed in time".into()),
        },
    };
    let (mut rx, mut tx, info) = transport.split_tx();
    // Until it has authenticated, a peer may send small frames only.
    if let Some(limit) = &info.receive_limit {
        limit.set(inner.max_handshake_frame);
    }
    let mut joiner = Reassembler::new(inner.max_handshake_frame);
    let first = tokio::select! {
        biased;
        () = ticket.shed() => {
            let msg = "too many connections are waiting for their handshake; this one waited longest";
            return Err(refuse_with(&mut tx, codes::RESOURCE_EXHAUSTED, msg).await);
        }
        r = tokio::time::timeout_at(deadline, read_whole(&mut rx, &mut joiner)) => match r {
            Ok(Ok(Some(f))) => f,
            Ok(Err(ReadError::Transport(e))) => {
                let msg = format!("before hello: {e}");
                let code = match e {
                    TransportError::Malformed { .. } => codes::MALFORMED,
                    _ => return Err(msg),
                };
                return Err(refuse_with(&mut tx, code, &msg).await);
            }
            Ok(Err(ReadError::Fragment(e))) => {
                let msg = format!("hello: {e}");
                return Err(refuse_with(&mut tx, codes::MALFORMED, &msg).await);
            }
            Ok(Ok(None)) => return Err("connection ended before hello".into()),
            Err(_) => {
                let msg = format!("no hello within {:?}", inner.handshake_timeout);
                return Err(refuse_with(&mut tx, codes::DEADLINE_EXCEEDED, &msg).await);
            }
        },
    };
    if first.header.kind != FrameKind::Control(ControlOp::Hello) {
        let msg = format!("expected a hello frame, got {}", first.header.kind.name());
        return Err(refuse_with(&mut tx, codes::MALFORMED, &msg).await);
    }
    let (hello, hello_resume) = match Hello::decode_with(&first.payload) {
        Ok(h) => h,
        Err(e) => {
            let msg = format!("malformed hello: {e}");
            return Err(refuse_with(&mut tx, codes::MALFORMED, &msg).await);
        }
    };
    if hello.version != PROTOCOL_VERSION {
        let msg = format!(
            "version mismatch: server speaks protocol {PROTOCOL_VERSION}, client {}",
            hello.version
        );
        return Err(refuse_with(&mut tx, codes::VERSION_MISMATCH, &msg).await);
    }
    if !hello.device_id.is_empty()
        && let Err(e) = validate_device_id(&hello.device_id)
    {
        let msg = format!("invalid device id: {e}");
        return Err(refuse_with(&mut tx, codes::MALFORMED, &msg).await);
    }
    let request = AuthRequest {
        credentials: &hello.credentials,
        device_id: &hello.device_id,
        agent: &hello.agent,
        peer: &info.peer,
        scheme: info.scheme,
        peer_certificates: info.peer_certificates.as_deref().map(|v| v.as_slice()),
    };
    let identity = match tokio::time::timeout_at(deadline, inner.auth.authenticate(&request)).await
    {
        Ok(Ok(identity)) => identity,
        Ok(Err(e)) => {
            let msg = format!("unauthenticated: {e}");
            return Err(refuse_with(&mut tx, codes::UNAUTHENTICATED, &msg).await);
        }
        Err(_) => {
            let msg = "authentication did not complete in time";
            return Err(refuse_with(&mut tx, codes::DEADLINE_EXCEEDED, msg).await);
        }
    };
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let device_id = identity
        .device_id
        .or_else(|| (!hello.device_id.is_empty()).then(|| hello.device_id.clone()))
        .unwrap_or_else(|| match inner.cluster.node_id() {
            // Unique across the cluster's nodes, whose session ids are not.
            "" => format!("device-{id}"),
            node => format!("device-{node}-{id}"),
        });
    if let Err(e) = validate_device_id(&device_id) {
        let msg = format!("the authenticator assigned an invalid device id: {e}");
        return Err(refuse_with(&mut tx, codes::UNAUTHENTICATED, &msg).await);
    }
    let refused = mismatched(&inner.types, &hello.types);
    for (type_id, name) in &refused {
        tracing::warn!(session = id, device = %Untrusted(&device_id), %name, type_id, "message refused: fingerprint mismatch");
    }
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        session_id: id,
        device_id: device_id.clone(),
        keepalive_ms: inner.config.keepalive.map_or(0, |d| d.as_millis() as u64),
        types: inner.types.iter().map(|&(id, _, fp)| (id, fp)).collect(),
        stream_window: inner.config.stream_window,
        services: inner.front.dispatcher.announced(),
    };
    // A hello naming a state this side no longer has, while the device is
    // connected with another: a connection attempt its client gave up on
    // (its hello was slow to come), or a client whose record of its session
    // is out of date. Taking it would replace the live session and renumber
    // its state for a connection that is likely gone; it is refused, and a
    // client that is really there tries again (code 9) once the live
    // session has ended.
    if let Some(token) = hello_resume.as_ref().and_then(|r| r.token)
        && !inner.resumes.knows(&token, &device_id)
        && live_reliable_session(inner, &device_id)
    {
        let msg =
            format!("device {device_id} is connected with another session state; try again later");
        return Err(refuse_with(&mut tx, codes::UNAVAILABLE, &msg).await);
    }
    // A client that asked for a reliable session gets its state back (or a
    // new one), named by the token in the welcome.
    let resume = hello_resume.map(|r| {
        let claimed = inner
            .resumes
            .claim(r.token, &device_id, inner.config.unacked_bytes);
        (claimed, r.received)
    });
    let welcome_resume = resume.as_ref().map(|(c, _)| WelcomeResume {
        token: c.token,
        resumed: c.resumed,
        received: if c.resumed { c.link.received() } else { 0 },
        expiry_ms: inner.resumes.expiry().as_millis() as u64,
    });
    let welcome = Frame::new(
        FrameHeader::control(ControlOp::Welcome),
        welcome.encode_with(welcome_resume.as_ref()),
    );
    Ok(Handshaken {
        welcome,
        est: Established {
            id,
            device_id,
            refused,
            config: inner.config.clone(),
            initiator: false,
            peer_services: hello.services,
            peer_window: hello.stream_window,
            link: resume.as_ref().map(|(c, _)| c.link.clone()),
        },
        rx,
        tx,
        info,
        principal: identity.principal,
        resume,
    })
}
