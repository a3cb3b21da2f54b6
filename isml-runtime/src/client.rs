//! The client: connects by URL, performs the handshake, and (optionally)
//! reconnects with exponential backoff and jitter when the session ends.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::SinkExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::TopLevel;
use crate::dispatch::Dispatcher;
use crate::handshake::{Credentials, Hello, HelloResume, PROTOCOL_VERSION, Welcome, mismatched};
use crate::session::{
    self, ClosedBy, Delivered, Delivery, Established, Link, RequestError, SendError, Session,
    SessionConfig, codes,
};
use crate::transport::{self, ConnectOptions, Endpoint, TransportError};
use crate::wire::{ControlOp, ErrorBody, Frame, FrameHeader, FrameKind, Reassembler};

/// Why a connection could not be established.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The transport could not be opened.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused the connection (bad credentials, version mismatch,
    /// connection limit): its `close` reason.
    #[error("server {url} refused the connection (code {code}): {message}")]
    Refused {
        /// The URL.
        url: String,
        /// The code (wire format §2.4).
        code: u64,
        /// The server's message.
        message: String,
    },
    /// The handshake did not complete in time.
    #[error("handshake with {url} not completed within {after:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The deadline.
        after: Duration,
    },
    /// The server answered with something other than `welcome` or `close`.
    #[error("handshake with {url} failed: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The device id to claim is not valid (see
    /// [`validate_device_id`](crate::handshake::validate_device_id)).
    #[error("cannot claim device id {id:?}: {source}")]
    InvalidDeviceId {
        /// The id.
        id: String,
        /// What is wrong with it.
        source: crate::handshake::InvalidDeviceId,
    },
    /// The client was closed.
    #[error("client closed")]
    Closed,
}

/// Reconnection delays: exponential from `initial` to `max`, with a random
/// part so that a fleet of devices cut off together does not come back in
/// lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Fraction of each delay drawn at random (0: none, 1: anywhere from 0 to the delay).
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - jitter * fastrand::f64())
    }
}

type ConnectHook = Arc<dyn Fn(&Session) + Send + Sync>;

type Connector = Arc<
    dyn Fn()
            -> futures_util::future::BoxFuture<'static, Result<transport::Transport, TransportError>>
        + Send
        + Sync,
>;

/// What happened to a [`Client`]'s connection ([`Client::events`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A session is up. `resumed`: the server resumed the previous session
    /// (its subscriptions, and what either side had not acknowledged, go on).
    Connected {
        /// The new session's id.
        session: u64,
        /// Whether the previous session was resumed.
        resumed: bool,
    },
    /// The session ended; the client reconnects (if it was built to).
    Disconnected {
        /// Why it ended.
        reason: String,
    },
    /// The server did not resume the session (it expired it, or restarted
    /// without its state): the client subscribed again to what it was
    /// subscribed to, and sent again what the server had not acknowledged.
    /// Also after a resumed session when subscribing again had not
    /// completed on the one before (its connection broke meanwhile).
    Resubscribed {
        /// Subscriptions (distinct channel and key pairs) made again.
        subscriptions: usize,
        /// Of them, those the broker refused or that failed.
        failed: usize,
    },
}

/// The reliable state of a client that resumes sessions: one for as long
/// as the client runs, whichever session carries it.
struct Reliable {
    link: std::sync::Mutex<Option<Arc<Link>>>,
    /// Whether the link's token names a session the server may know (not
    /// one made up for a fresh outbox).
    known: std::sync::atomic::AtomicBool,
    /// The last session (open or not): a resumed one takes over its
    /// subscriptions.
    last: std::sync::Mutex<Option<Session>>,
    /// Subscribing again after a session that was not resumed did not
    /// complete (the connection broke meanwhile): the server's state has
    /// not got them all, and the next session subscribes again, resumed
    /// or not.
    resubscribe_owed: std::sync::atomic::AtomicBool,
    events: tokio::sync::broadcast::Sender<ClientEvent>,
}

impl Reliable {
    fn new() -> Arc<Reliable> {
        Arc::new(Reliable {
            link: std::sync::Mutex::new(None),
            known: std::sync::atomic::AtomicBool::new(false),
            last: std::sync::Mutex::new(None),
            resubscribe_owed: std::sync::atomic::AtomicBool::new(false),
            events: tokio::sync::broadcast::channel(64).0,
        })
    }

    fn link(&self) -> Option<Arc<Link>> {
        self.link.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn last(&self) -> Option<Session> {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn event(&self, event: ClientEvent) {
        let _ = self.events.send(event);
    }
}

/// Configures a [`Client`].
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    /// More servers to try, in order after `url` (a cluster's nodes).
    others: Vec<String>,
    config: SessionConfig,
    credentials: Credentials,
    device_id: String,
    agent: String,
    types: Vec<(u32, &'static str, u64)>,
    dispatcher: Arc<Dispatcher>,
    /// Replaces the dispatcher as what received frames go to (the text
    /// protocol's in-process sessions).
    inbound: Option<Arc<dyn session::Dispatch>>,
    options: ConnectOptions,
    handshake_timeout: Duration,
    reconnect: Option<Backoff>,
    on_connect: Option<ConnectHook>,
    /// Set by `resume(true)`; made anew by each `connect`.
    reliable: Option<Arc<Reliable>>,
    /// Taken by the first `connect`.
    outbox: Option<Arc<std::sync::Mutex<Option<crate::outbox::Outbox>>>>,
    /// Opens the transport instead of the URL (see `ClientBuilder::connector`).
    connector: Option<Connector>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("device_id", &self.device_id)
            .field("credentials", &self.credentials)
            .field("reconnect", &self.reconnect)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Credentials presented in `hello`.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// The device id to claim (the server may assign another).
    pub fn device_id(mut self, id: impl Into<String>) -> Self {
        self.device_id = id.into();
        self
    }

    /// The agent string sent in `hello`.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = agent.into();
        self
    }

    /// Adds the message types of a generated dispatch table to the
    /// fingerprints announced in the handshake.
    pub fn types(mut self, table: &'static [(u32, &'static str, u64)]) -> Self {
        self.types.extend_from_slice(table);
        self
    }

    /// The handlers for messages and requests from the server.
    pub fn dispatcher(mut self, dispatcher: Dispatcher) -> Self {
        self.dispatcher = Arc::new(dispatcher);
        self
    }

    /// Session settings.
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.config = config;
        self
    }

    /// Default request deadline.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    crate::session::session_setters!();

    /// Time allowed for the transport and isml handshakes.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// More servers to try, in turn after the first (the nodes of a
    /// cluster): connecting tries each until one answers, and a
    /// reconnection starts with the server after the one that was lost, so
    /// a device whose node died moves to another within its backoff.
    ///
    /// With [`ClientBuilder::resume`], a reconnection starts with the
    /// server that was lost instead, the only one that can resume the
    /// session; when it does not answer, the next ones are tried in the
    /// same attempt. A server that does not know the session starts a new
    /// one: the client subscribes again and sends again what was not
    /// acknowledged ([`ClientEvent::Resubscribed`]).
    pub fn fallback_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.others.extend(urls.into_iter().map(Into::into));
        self
    }

    /// Every server this client may use, the first first.
    fn all_urls(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.url.as_str()).chain(self.others.iter().map(String::as_str))
    }

    /// Reconnect with this backoff when the session ends (not after [`Client::close`]).
    pub fn reconnect(mut self, backoff: Backoff) -> Self {
        self.reconnect = Some(backoff);
        self
    }

    /// rustls configuration for `tls://` URLs.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.options.tls = Some(config);
        self
    }

    /// Asks the server for a reliable session that a reconnection resumes
    /// (`docs/reliability.md`): the welcome carries a resume token; a client
    /// that reconnects within the server's session-expiry time continues
    /// the same session, its subscriptions and what either side had not
    /// acknowledged; after expiry it subscribes again by itself and says so
    /// in [`Client::events`]. Needed for [`Delivery::AtLeastOnce`].
    pub fn resume(mut self, on: bool) -> Self {
        self.reliable = on.then(Reliable::new);
        self
    }

    /// Keeps at-least-once messages in `outbox` until acknowledged
    /// ([`Outbox::open`](crate::outbox::Outbox::open) on disk, so that they
    /// survive `kill -9` and reboots; [`Outbox::memory`](crate::outbox::Outbox::memory)
    /// by default), with its limits and overflow policy. Turns on
    /// [`ClientBuilder::resume`].
    pub fn outbox(mut self, outbox: crate::outbox::Outbox) -> Self {
        self.outbox = Some(Arc::new(std::sync::Mutex::new(Some(outbox))));
        self.resume(true)
    }

    /// Called on every new session (the first and each reconnection), before
    /// it is handed out: re-subscribe or re-announce here.
    pub fn on_connect(mut self, hook: impl Fn(&Session) + Send + Sync + 'static) -> Self {
        self.on_connect = Some(Arc::new(hook));
        self
    }

    /// Opens each connection (the first and every reconnection) with
    /// `connect` instead of by URL; the URL then only names the server in
    /// errors and logs (and [`ClientBuilder::fallback_urls`] are not
    /// used: `connect` chooses where to go). For links the URL schemes do
    /// not cover: a socket handed over by a supervisor, a modem dialled
    /// with AT commands, a tunnel, or a simulated network in tests. Build
    /// the transport with
    /// [`Transport::from_io`](transport::Transport::from_io) over any byte
    /// stream. The handshake timeout covers `connect` too.
    ///
    /// ```no_run
    /// # #[cfg(feature = "tcp")]
    /// # async fn f() -> Result<(), isml_runtime::client::ConnectError> {
    /// use isml_runtime::client::Client;
    /// use isml_runtime::transport::{Transport, TransportError};
    ///
    /// // The server is reached through a tunnel's local end.
    /// let client = Client::builder("tcp://gateway.local:7000")
    ///     .connector(|| async {
    ///         let stream = tokio::net::TcpStream::connect("127.0.0.1:7000")
    ///             .await
    ///             .map_err(|e| TransportError::Io {
    ///                 context: "connecting through the tunnel".into(),
    ///                 source: e,
    ///             })?;
    ///         Ok(Transport::from_io(stream, "tcp", "tunnel".into(), None))
    ///     })
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn connector<F, Fut>(mut self, connect: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<transport::Transport, TransportError>>
            + Send
            + 'static,
    {
        self.connector = Some(Arc::new(move || Box::pin(connect())));
        self
    }

    /// Connects once, without a reconnecting supervisor: to the first
    /// server that answers, in order (the error is the last server's).
    pub async fn connect_session(&self) -> Result<Session, ConnectError> {
        self.connect_from(0).await.map(|(s, _)| s)
    }

    /// Tries the servers in turn from number `first` (wrapping around);
    /// gives the session and the number of the server that answered. With
    /// a connector, one attempt through it.
    async fn connect_from(&self, first: usize) -> Result<(Session, usize), ConnectError> {
        let urls: Vec<&str> = if self.connector.is_some() {
            vec![self.url.as_str()]
        } else {
            self.all_urls().collect()
        };
        let mut last = None;
        for i in 0..urls.len() {
            let n = (first + i) % urls.len();
            match self.connect_url(urls[n]).await {
                Ok(s) => return Ok((s, n)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ConnectError::Closed))
    }

    async fn connect_url(&self, url: &str) -> Result<Session, ConnectError> {
        let attempt = async {
            let t = match &self.connector {
                Some(connect) => connect().await?,
                None => {
                    let endpoint: Endpoint = url.parse()?;
                    transport::connect(&endpoint, &self.options).await?
                }
            };
            self.handshake(t, url).await
        };
        match tokio::time::timeout(self.handshake_timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout {
                url: url.to_owned(),
                after: self.handshake_timeout,
            }),
        }
    }

    /// Performs the handshake over a transport opened by the caller (a
    /// [`PtyPair`](crate::transport::serial::PtyPair) master, a custom link).
    pub async fn connect_over(
        &self,
        transport: transport::Transport,
    ) -> Result<Session, ConnectError> {
        match tokio::time::timeout(self.handshake_timeout, self.handshake(transport, &self.url))
            .await
        {
            Ok(r) => r,
            Err(_) => Err(ConnectError::Timeout {
                url: self.url.clone(),
                after: self.handshake_timeout,
            }),
        }
    }

    async fn handshake(&self, t: transport::Transport, url: &str) -> Result<Session, ConnectError> {
        if !self.device_id.is_empty()
            && let Err(source) = crate::handshake::validate_device_id(&self.device_id)
        {
            return Err(ConnectError::InvalidDeviceId {
                id: self.device_id.clone(),
                source,
            });
        }
        let (mut rx, mut tx, info) = t.split_tx();
        let hello = Hello {
            version: PROTOCOL_VERSION,
            device_id: self.device_id.clone(),
            agent: self.agent.clone(),
            credentials: self.credentials.clone(),
            types: self.types.iter().map(|&(id, _, fp)| (id, fp)).collect(),
            stream_window: self.config.stream_window,
            services: self.dispatcher.announced(),
        };
        let link = self.reliable.as_ref().and_then(|r| r.link());
        let resume = self.reliable.as_ref().map(|r| {
            let known = r.known.load(Ordering::Relaxed);
            HelloResume {
                token: link.as_ref().filter(|_| known).map(|l| l.token()),
                received: link.as_ref().filter(|_| known).map_or(0, |l| l.received()),
            }
        });
        tx.send(Frame::new(
            FrameHeader::control(ControlOp::Hello),
            hello.encode_with(resume.as_ref()),
        ))
        .await?;
        let protocol = |message: String| ConnectError::Protocol {
            url: url.to_owned(),
            message,
        };
        let mut joiner = Reassembler::new(self.config.max_message.max(1));
        let frame = match crate::handshake::read_whole(&mut rx, &mut joiner).await {
            Ok(Some(f)) => f,
            Ok(None) => return Err(protocol("connection ended before welcome".into())),
            Err(crate::handshake::ReadError::Transport(e)) => return Err(e.into()),
            Err(crate::handshake::ReadError::Fragment(e)) => {
                return Err(protocol(format!("welcome: {e}")));
            }
        };
        let (welcome, welcome_resume) = match frame.header.kind {
            FrameKind::Control(ControlOp::Welcome) => Welcome::decode_with(&frame.payload)
                .map_err(|e| protocol(format!("malformed welcome: {e}")))?,
            FrameKind::Control(ControlOp::Close) => {
                let (code, message) = match ErrorBody::decode(&frame.payload) {
                    Ok(b) => (b.code, b.message.to_owned()),
                    Err(e) => (codes::UNSPECIFIED, format!("malformed close reason: {e}")),
                };
                return Err(ConnectError::Refused {
                    url: url.to_owned(),
                    code,
                    message,
                });
            }
            other => return Err(protocol(format!("expected welcome, got {}", other.name()))),
        };
        if welcome.version != PROTOCOL_VERSION {
            return Err(ConnectError::Refused {
                url: url.to_owned(),
                code: codes::VERSION_MISMATCH,
                message: format!(
                    "version mismatch: client speaks protocol {PROTOCOL_VERSION}, server {}",
                    welcome.version
                ),
            });
        }
        let refused = mismatched(&self.types, &welcome.types);
        for (type_id, name) in &refused {
            tracing::warn!(url = %url, %name, type_id, "message refused: fingerprint mismatch");
        }
        // The reliable state: the same one when the server resumed it, the
        // same one renumbered for the server's new state otherwise (what it
        // holds is sent again), or a new one.
        let reliable = match (&self.reliable, welcome_resume) {
            (Some(r), Some(w)) => {
                let resumed = w.resumed && link.as_ref().is_some_and(|l| l.token() == w.token);
                let link =
                    link.unwrap_or_else(|| Link::new(w.token, true, self.config.unacked_bytes));
                Some((r.clone(), link, w, resumed))
            }
            (Some(_), None) => {
                tracing::warn!(url = %url, "server does not resume sessions; at-least-once delivery is off");
                None
            }
            _ => None,
        };
        let est = Established {
            id: welcome.session_id,
            device_id: welcome.device_id,
            refused,
            config: Arc::new(self.config.clone()),
            initiator: true,
            peer_services: welcome.services,
            peer_window: welcome.stream_window,
            link: reliable.as_ref().map(|(_, l, _, _)| l.clone()),
        };
        let hook = self.on_connect.clone();
        let inbound: Arc<dyn session::Dispatch> = match &self.inbound {
            Some(i) => i.clone(),
            None => self.dispatcher.clone(),
        };
        let mut resubscribe = false;
        let (session, run) = session::start(est, rx, tx, info, inbound, |s| {
            if let Some((r, link, w, resumed)) = &reliable {
                // The previous session's subscriptions go on here; what
                // neither side acknowledged is queued first.
                if let Some(old) = r.last() {
                    s.pubsub().adopt(old.pubsub());
                    resubscribe = !resumed || r.resubscribe_owed.load(Ordering::Relaxed);
                    if resubscribe {
                        r.resubscribe_owed.store(true, Ordering::Relaxed);
                    }
                }
                link.attach(s, w.token, w.received, *resumed);
                r.known.store(true, Ordering::Relaxed);
                *r.link.lock().unwrap_or_else(|e| e.into_inner()) = Some(link.clone());
                *r.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.clone());
            }
            if let Some(h) = &hook {
                h(s);
            }
        });
        tokio::spawn(run);
        if let Some((r, _, _, resumed)) = &reliable {
            r.event(ClientEvent::Connected {
                session: session.id(),
                resumed: *resumed,
            });
            if resubscribe {
                let (subscriptions, failed) = session.resubscribe().await;
                r.resubscribe_owed.store(failed > 0, Ordering::Relaxed);
                if subscriptions > 0 {
                    tracing::info!(url = %url, subscriptions, failed, "session not resumed: subscribed again");
                }
                r.event(ClientEvent::Resubscribed {
                    subscriptions,
                    failed,
                });
            }
        }
        Ok(session)
    }

    /// Received frames go to `inbound` rather than the dispatcher.
    #[cfg(feature = "tcp")]
    pub(crate) fn inbound(mut self, inbound: Arc<dyn session::Dispatch>) -> Self {
        self.inbound = Some(inbound);
        self
    }

    /// Connects (the first attempt's failure is returned), then keeps the
    /// connection up if [`ClientBuilder::reconnect`] was set.
    pub async fn connect(mut self) -> Result<Client, ConnectError> {
        if self.reliable.is_some() {
            // A state of this client's own, even when the builder is reused,
            // from the outbox (with what it kept from an earlier run).
            let r = Reliable::new();
            let outbox = self
                .outbox
                .as_ref()
                .and_then(|o| o.lock().unwrap_or_else(|e| e.into_inner()).take())
                .unwrap_or_else(crate::outbox::Outbox::memory);
            r.known.store(outbox.has_token(), Ordering::Relaxed);
            *r.link.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(outbox.into_link(self.config.unacked_bytes));
            self.reliable = Some(r);
        }
        let (session, server) = self.connect_from(0).await?;
        let (current, _) = watch::channel(Some(session.clone()));
        let inner = Arc::new(ClientInner {
            current,
            stop: CancellationToken::new(),
            reconnects: AtomicU64::new(0),
            url: self.url.clone(),
            reliable: self.reliable.clone(),
        });
        if let Some(backoff) = self.reconnect {
            tokio::spawn(supervise(inner.clone(), self, backoff, session, server));
        }
        Ok(Client { inner })
    }
}

struct ClientInner {
    current: watch::Sender<Option<Session>>,
    stop: CancellationToken,
    reconnects: AtomicU64,
    url: String,
    reliable: Option<Arc<Reliable>>,
}

impl ClientInner {
    /// Whether the client holds a reliable state that its last server
    /// knows and may still resume.
    fn resumable(&self) -> bool {
        self.reliable.as_ref().is_some_and(|r| {
            r.known.load(Ordering::Relaxed) && r.link().is_some_and(|l| l.ended().is_none())
        })
    }
}

async fn supervise(
    inner: Arc<ClientInner>,
    builder: ClientBuilder,
    backoff: Backoff,
    first: Session,
    mut server: usize,
) {
    let mut session = first;
    loop {
        let reason = tokio::select! {
            biased;
            _ = inner.stop.cancelled() => return,
            r = session.closed() => r,
        };
        inner.current.send_replace(None);
        if let Some(r) = &inner.reliable {
            r.event(ClientEvent::Disconnected {
                reason: reason.to_string(),
            });
        }
        if reason.by == ClosedBy::Peer && reason.code == codes::DEVICE_ID_IN_USE {
            // Another connection with our device id took over: reconnecting
            // would take it back, and the two would push each other out.
            tracing::error!(url = %inner.url, %reason, "session replaced by another connection of this device id; not reconnecting");
            inner.stop.cancel();
            return;
        }
        tracing::info!(url = %inner.url, %reason, "session ended; reconnecting");
        let mut attempt = 0u32;
        session = loop {
            let delay = backoff.delay(attempt);
            tokio::select! {
                biased;
                _ = inner.stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            // A reliable state resumes only on the server that keeps it:
            // that server first (a node that is gone refuses at once, or
            // within the handshake timeout, and the next is tried in the
            // same attempt). Otherwise the next server first: the one just
            // lost may be gone for good.
            let first = if inner.resumable() {
                server
            } else {
                server + 1
            };
            match builder.connect_from(first).await {
                Ok((s, n)) => {
                    server = n;
                    break s;
                }
                Err(e) => {
                    tracing::debug!(url = %inner.url, error = %e, attempt, "reconnect failed");
                    attempt = attempt.saturating_add(1);
                }
            }
        };
        if inner.stop.is_cancelled() {
            session.close("client closed").await;
            return;
        }
        inner.reconnects.fetch_add(1, Ordering::Relaxed);
        inner.current.send_replace(Some(session.clone()));
    }
}

/// A connected client; clone it freely.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.url)
            .field("session", &self.session())
            .finish()
    }
}

impl Client {
    /// A builder for a client of `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            others: Vec::new(),
            config: SessionConfig::default(),
            credentials: Credentials::None,
            device_id: String::new(),
            agent: concat!("isml-runtime/", env!("CARGO_PKG_VERSION")).to_owned(),
            types: Vec::new(),
            dispatcher: Arc::new(Dispatcher::new()),
            inbound: None,
            options: ConnectOptions::default(),
            handshake_timeout: Duration::from_secs(10),
            reconnect: None,
            on_connect: None,
            reliable: None,
            outbox: None,
            connector: None,
        }
    }

    /// The current session, if connected.
    pub fn session(&self) -> Option<Session> {
        self.inner
            .current
            .borrow()
            .clone()
            .filter(|s| !s.is_closed())
    }

    /// Waits until a session is up (after a reconnection), or the client is closed.
    pub async fn wait_session(&self) -> Result<Session, ConnectError> {
        let mut rx = self.inner.current.subscribe();
        loop {
            if let Some(s) = self.session() {
                return Ok(s);
            }
            if self.inner.stop.is_cancelled() {
                return Err(ConnectError::Closed);
            }
            tokio::select! {
                biased;
                _ = self.inner.stop.cancelled() => return Err(ConnectError::Closed),
                r = rx.changed() => if r.is_err() { return Err(ConnectError::Closed) },
            }
        }
    }

    /// How many times the client has reconnected.
    pub fn reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }

    fn current(&self) -> Result<Session, SendError> {
        self.inner
            .current
            .borrow()
            .clone()
            .ok_or(SendError::Closed {
                session: 0,
                reason: session::CloseReason::new(
                    session::ClosedBy::Local,
                    codes::UNAVAILABLE,
                    "not connected",
                ),
            })
    }

    /// Sends a one-way message on the current session.
    pub async fn send<M: TopLevel>(&self, msg: &M) -> Result<(), SendError> {
        self.current()?.send(msg).await
    }

    /// Sends a request on the current session.
    pub async fn request<R: TopLevel>(&self, msg: &impl TopLevel) -> Result<R, RequestError> {
        self.current()?.request::<R>(msg).await
    }

    /// The session carrying the reliable state: the current one, or the
    /// last one while reconnecting (what is sent at least once then is kept
    /// and leaves on the session that resumes it).
    pub(crate) fn reliable_session(&self) -> Result<Session, SendError> {
        match &self.inner.reliable {
            Some(r) => self
                .session()
                .or_else(|| r.last())
                .ok_or(SendError::Unreliable { session: 0 }),
            None => Err(SendError::Unreliable {
                session: self.session().map_or(0, |s| s.id()),
            }),
        }
    }

    /// The session to send on with `delivery`: at least once, the one
    /// carrying the reliable state (also while reconnecting).
    pub(crate) fn delivering(&self, delivery: Delivery) -> Result<Session, SendError> {
        match delivery {
            Delivery::AtMostOnce => self.current(),
            _ => self.reliable_session(),
        }
    }

    /// Sends a one-way message with the given guarantee (see
    /// [`Session::send_with`]). At least once, it works while the client is
    /// reconnecting: the message leaves on the resumed session. Needs
    /// [`ClientBuilder::resume`].
    pub async fn send_with<M: TopLevel>(
        &self,
        msg: &M,
        delivery: Delivery,
    ) -> Result<Delivered, SendError> {
        match delivery {
            Delivery::AtMostOnce => self.current()?.send_with(msg, delivery).await,
            _ => self.reliable_session()?.send_with(msg, delivery).await,
        }
    }

    /// Sends a one-way message at least once with a time-to-live, a
    /// priority or "latest value wins" coalescing (see
    /// [`SendOptions`](session::SendOptions)); like
    /// [`Client::send_with`], it works while reconnecting.
    pub async fn send_with_options<M: TopLevel>(
        &self,
        msg: &M,
        options: &session::SendOptions,
    ) -> Result<Delivered, SendError> {
        self.reliable_session()?
            .send_with_options(msg, options)
            .await
    }

    /// Sends a request with the given guarantee (see
    /// [`Session::request_with`]): at least once, the handler runs once
    /// and the reply arrives even across reconnections that resume the
    /// session. Needs [`ClientBuilder::resume`] for at least once.
    pub async fn request_with<R: TopLevel, Q: TopLevel>(
        &self,
        msg: &Q,
        delivery: Delivery,
    ) -> Result<R, RequestError> {
        match delivery {
            Delivery::AtMostOnce => self.current()?.request_with(msg, delivery).await,
            _ => self.reliable_session()?.request_with(msg, delivery).await,
        }
    }

    /// Events of the connection (connected, resumed or not, disconnected,
    /// subscribed again); `None` without [`ClientBuilder::resume`].
    pub fn events(&self) -> Option<tokio::sync::broadcast::Receiver<ClientEvent>> {
        self.inner.reliable.as_ref().map(|r| r.events.subscribe())
    }

    /// Statistics of the reliable state (`None` without
    /// [`ClientBuilder::resume`]).
    pub fn link_stats(&self) -> Option<session::LinkStats> {
        self.inner
            .reliable
            .as_ref()
            .and_then(|r| r.link())
            .map(|l| l.stats())
    }

    /// Stops reconnecting and closes the session gracefully. Messages sent
    /// at least once and not yet acknowledged fail
    /// ([`DeliveryError::Lost`](session::DeliveryError::Lost)).
    pub async fn close(&self, reason: impl Into<String>) {
        self.inner.stop.cancel();
        let current = self.inner.current.send_replace(None);
        let reason = reason.into();
        if let Some(s) = current {
            s.close(reason.clone()).await;
        }
        if let Some(r) = &self.inner.reliable {
            if let Some(link) = r.link() {
                link.end(&format!("client closed: {reason}"));
            }
            if let Some(last) = r.last() {
                last.pubsub().close_subscriptions();
            }
        }
    }
}
