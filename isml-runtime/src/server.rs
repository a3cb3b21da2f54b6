//! The server: listeners on several transports at once, a connection limit,
//! the handshake, a registry of sessions, hooks and graceful shutdown.
//!
//! Shape (as in mini-redis): one accept loop per listener, a semaphore for
//! the connection limit (a connection beyond it is refused at once with a
//! `close` frame, code 8), one task per connection, and a cancellation token
//! broadcasting shutdown. Hooks run in the connection's task, never under a
//! lock of the server.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::TopLevel;
use crate::dispatch::Dispatcher;
use crate::handshake::{
    AllowAll, AuthRequest, Authenticator, Hello, PROTOCOL_VERSION, SharedAuthenticator, Welcome,
    mismatched,
};
use crate::session::{
    self, CloseReason, Established, PRINCIPAL, SendError, Session, SessionConfig, codes,
};
use crate::transport::{
    Endpoint, FrameSink, FrameStream, Incoming, ListenOptions, Listener, TransportError,
    TransportInfo,
};
use crate::wire::{ControlOp, ErrorBody, Frame, FrameHeader, FrameKind};

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
}

type OpenHook = Arc<dyn Fn(&Session) + Send + Sync>;
type CloseHook = Arc<dyn Fn(&Session, &CloseReason) + Send + Sync>;

/// Configures and starts a [`Server`].
pub struct ServerBuilder {
    listen: Vec<String>,
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

    /// Keep-alive interval (`None`: off).
    pub fn keepalive(mut self, interval: Option<Duration>) -> Self {
        self.config.keepalive = interval;
        self
    }

    /// Frames held by each session's outbound queue.
    pub fn outbound_queue(mut self, frames: usize) -> Self {
        self.config.outbound_queue = frames.max(1);
        self
    }

    /// Largest frame accepted or sent.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.config.max_frame = bytes.max(1);
        self.options.max_frame = Some(bytes.max(1));
        self
    }

    /// Connections open at once (handshaking or established); beyond it new
    /// connections are refused with a `close` frame (code 8).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
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

    /// Binds every listener and starts accepting.
    pub async fn start(self) -> Result<Server, ServerError> {
        if self.listen.is_empty() {
            return Err(ServerError::NoListener);
        }
        let mut listeners = Vec::new();
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
        let inner = Arc::new(Inner {
            urls: listeners.iter().map(|l| l.url().to_owned()).collect(),
            registry: Registry::default(),
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
            dispatcher: Arc::new(self.dispatcher),
            types: self.types,
            on_open: self.on_open,
            on_close: self.on_close,
        });
        for l in listeners {
            let inner2 = inner.clone();
            inner.tracker.spawn(accept_loop(inner2, l));
        }
        Ok(Server { inner })
    }
}

#[derive(Default)]
struct Registry {
    by_id: RwLock<HashMap<u64, Session>>,
    by_device: RwLock<HashMap<String, u64>>,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    handshake_failures: AtomicU64,
}

struct Inner {
    urls: Vec<String>,
    registry: Registry,
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
    dispatcher: Arc<Dispatcher>,
    types: Vec<(u32, &'static str, u64)>,
    on_open: Option<OpenHook>,
    on_close: Option<CloseHook>,
}

/// Counters of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections accepted under the limit.
    pub accepted: u64,
    /// Connections refused by the connection limit.
    pub refused: u64,
    /// Connections closed before completing the handshake.
    pub handshake_failures: u64,
    /// Sessions established right now.
    pub sessions: usize,
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
        }
    }

    /// The bound URLs, in the order the listeners were added (actual ports).
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

    /// Counters.
    pub fn stats(&self) -> ServerStats {
        let c = &self.inner.stats;
        ServerStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            handshake_failures: c.handshake_failures.load(Ordering::Relaxed),
            sessions: self.session_count(),
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
    }
}

async fn accept_loop(inner: Arc<Inner>, mut listener: Listener) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let incoming = tokio::select! {
            _ = inner.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        let incoming = match incoming {
            Ok(i) => {
                backoff = Duration::from_millis(10);
                i
            }
            Err(e) => {
                // Out of file descriptors, a serial port gone: wait and retry.
                tracing::warn!(listener = listener.url(), error = %e, "accept failed; retrying in {backoff:?}");
                tokio::select! {
                    _ = inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        match inner.limit.clone().try_acquire_owned() {
            Ok(permit) => {
                inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
                let inner2 = inner.clone();
                inner.tracker.spawn(connection(inner2, incoming, permit));
            }
            Err(_) => {
                inner.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::info!(peer = incoming.peer(), "connection refused: limit reached");
                let message = format!("connection limit of {} reached", inner.max_connections);
                inner.tracker.spawn(refuse(incoming, message));
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
    /// Written as the session's first frame once it is registered, so that a
    /// client whose `connect` returned finds its session on the server.
    welcome: Frame,
    rx: FrameStream,
    tx: FrameSink,
    info: TransportInfo,
    principal: Option<String>,
}

async fn connection(inner: Arc<Inner>, incoming: Incoming, _permit: OwnedSemaphorePermit) {
    let peer = incoming.peer().to_owned();
    let deadline = Instant::now() + inner.handshake_timeout;
    let result = tokio::select! {
        _ = inner.shutdown.cancelled() => return,
        r = handshake(&inner, incoming, deadline) => r,
    };
    let h = match result {
        Ok(h) => h,
        Err(reason) => {
            inner
                .stats
                .handshake_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(%peer, %reason, "handshake failed");
            return;
        }
    };
    let principal = h.principal;
    let (session, run) = session::start(h.est, h.rx, h.tx, h.info, inner.dispatcher.clone(), |s| {
        if let Some(p) = principal {
            s.set(&PRINCIPAL, p);
        }
    });
    // The welcome is queued first (the queue is empty), then the session is
    // registered, and only then does its loop run and write the welcome: when
    // the client's `connect` returns, the server already lists the session.
    if let Err(e) = session.try_enqueue(h.welcome) {
        tracing::info!(%peer, error = %e, "welcome not queued");
        return;
    }
    let id = session.id();
    write(&inner.registry.by_id).insert(id, session.clone());
    write(&inner.registry.by_device).insert(session.device_id().to_owned(), id);
    tracing::debug!(session = id, device = session.device_id(), %peer, "session open");
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
    write(&inner.registry.by_id).remove(&id);
    {
        let mut by_device = write(&inner.registry.by_device);
        if by_device.get(session.device_id()) == Some(&id) {
            by_device.remove(session.device_id());
        }
    }
    tracing::info!(session = id, device = session.device_id(), %peer, %reason, "session closed");
    if let Some(hook) = &inner.on_close {
        hook(&session, &reason);
    }
}

async fn refuse_with(tx: &mut FrameSink, code: u64, message: &str) -> String {
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
) -> Result<Handshaken, String> {
    let transport = match tokio::time::timeout_at(deadline, incoming.upgrade()).await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(_) => return Err("transport handshake not completed in time".into()),
    };
    let (mut rx, mut tx, info) = transport.split();
    let first = match tokio::time::timeout_at(deadline, rx.next()).await {
        Ok(Some(Ok(f))) => f,
        Ok(Some(Err(e))) => return Err(e.to_string()),
        Ok(None) => return Err("connection ended before hello".into()),
        Err(_) => {
            let msg = format!("no hello within {:?}", inner.handshake_timeout);
            return Err(refuse_with(&mut tx, codes::DEADLINE_EXCEEDED, &msg).await);
        }
    };
    if first.header.kind != FrameKind::Control(ControlOp::Hello) {
        let msg = format!("expected a hello frame, got {}", first.header.kind.name());
        return Err(refuse_with(&mut tx, codes::MALFORMED, &msg).await);
    }
    let hello = match Hello::decode(&first.payload) {
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
        .unwrap_or_else(|| format!("device-{id}"));
    let refused = mismatched(&inner.types, &hello.types);
    for (type_id, name) in &refused {
        tracing::warn!(session = id, device = %device_id, %name, type_id, "message refused: fingerprint mismatch");
    }
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        session_id: id,
        device_id: device_id.clone(),
        keepalive_ms: inner.config.keepalive.map_or(0, |d| d.as_millis() as u64),
        types: inner.types.iter().map(|&(id, _, fp)| (id, fp)).collect(),
    };
    let welcome = Frame::new(FrameHeader::control(ControlOp::Welcome), welcome.encode());
    Ok(Handshaken {
        welcome,
        est: Established {
            id,
            device_id,
            refused,
            config: inner.config.clone(),
        },
        rx,
        tx,
        info,
        principal: identity.principal,
    })
}
