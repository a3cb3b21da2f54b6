//! An HTTP/WebSocket gateway for an isml [`Server`]: a REST API over the
//! sessions, the devices' RPC services and the broker's channels, a
//! WebSocket of live publications and session events, an OpenAPI 3.1
//! document and Prometheus metrics generated from the loaded schemas, and
//! a live dashboard at `/`. JSON bodies follow the schema language's JSON
//! mapping through the dynamic messages, so no Rust code is generated for
//! the user's schema: `isml serve --http 0.0.0.0:8080` runs it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use isml_gateway::{Gateway, SessionEvents};
//! use isml_runtime::Server;
//!
//! let schema = isml_schema::load_str(
//!     "demo.isml",
//!     "package demo; message Ping [id = 1] { n: u32 = 1; }
//!      message Pong [id = 2] { n: u32 = 1; }
//!      service Echo { rpc ping(Ping) -> Pong = 1; }
//!      channel pings: Ping = 1 [retain];",
//! )?;
//! let schema: &'static isml_schema::Schema = Box::leak(Box::new(schema));
//! // Session events (connect, disconnect) reach the WebSocket and the
//! // metrics through the server's hooks.
//! let events = SessionEvents::new();
//! let (opened, closed) = (events.clone(), events.clone());
//! let server = Server::builder()
//!     .listen("tcp://127.0.0.1:7000")
//!     .on_open(move |s| opened.opened(s))
//!     .on_close(move |s, r| closed.closed(s, r))
//!     .start()
//!     .await?;
//! let gateway = Gateway::builder(server.clone(), schema)
//!     .events(events)
//!     .bind("127.0.0.1:8080")
//!     .await?;
//! println!("listening on {}", gateway.url());
//! # gateway.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Every endpoint, the mapping of RPC status codes to HTTP statuses and the
//! authentication are described in `docs/gateway.md`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use isml_runtime::Server;
use isml_runtime::handshake::Authenticator;
use isml_runtime::pubsub::Acl;
use isml_schema::Schema;
use tokio_util::sync::CancellationToken;

mod api;
mod auth;
mod catalog;
mod dashboard;
mod error;
mod events;
mod limit;
mod metrics;
mod openapi;
mod rates;
mod time;
mod tls;
mod ws;

pub use error::http_status;
pub use events::{SessionEvent, SessionEvents};

/// HTTP connections open at once, by default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// Request bodies larger than this are refused with 413, by default.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// Why a gateway could not start.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Configures a [`Gateway`].
pub struct GatewayBuilder {
    server: Server,
    schema: &'static Schema,
    auth: Option<Arc<dyn Authenticator>>,
    acl: Option<Acl>,
    events: Option<SessionEvents>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    body_limit: usize,
    max_connections: usize,
    request_timeout: Duration,
    call_timeout: Duration,
}

impl std::fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("server", &self.server)
            .field("auth", &self.auth.is_some())
            .field("acl", &self.acl.is_some())
            .field("tls", &self.tls.is_some())
            .field("body_limit", &self.body_limit)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Checks every request's `Authorization` header (a bearer token or
    /// HTTP Basic) with this authenticator, the one the server checks
    /// devices with. Without one, every request is allowed.
    pub fn authenticator(mut self, auth: Arc<dyn Authenticator>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Checks calls, publications, deletions and subscriptions made through
    /// the gateway against this ACL (the server's), with the identity the
    /// authenticator established.
    pub fn acl(mut self, acl: Acl) -> Self {
        self.acl = Some(acl);
        self
    }

    /// The session events the server's `on_open`/`on_close` hooks report.
    /// Without them, the WebSocket has no session events and the metrics
    /// count only live sessions' traffic.
    pub fn events(mut self, events: SessionEvents) -> Self {
        self.events = Some(events);
        self
    }

    /// Serves HTTPS with this rustls configuration.
    pub fn tls(mut self, config: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// The largest request body, in bytes ([`DEFAULT_BODY_LIMIT`]); beyond
    /// it a request is refused with 413.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes.max(1);
        self
    }

    /// HTTP connections (WebSockets and streams included) open at once
    /// ([`DEFAULT_MAX_CONNECTIONS`]); beyond it a newcomer waits in the
    /// kernel's backlog until one closes.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The longest a request may take before it is answered (30 s by
    /// default); beyond it the answer is 408. Streams and WebSockets are
    /// bounded by this only until their headers are sent. A call's deadline
    /// is at most this.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The deadline of a unary call that names none (10 s by default).
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The gateway, for [`Gateway::router`] or [`Gateway::serve`]. Needs a
    /// tokio runtime (it starts the channel-rate sampler).
    pub fn build(self) -> Gateway {
        let state = Arc::new(api::State {
            catalog: catalog::Catalog::new(self.schema),
            server: self.server,
            auth: self.auth,
            acl: self.acl,
            events: self.events.unwrap_or_default(),
            rates: rates::Rates::default(),
            metrics: metrics::Counters::default(),
            request_timeout: self.request_timeout,
            call_timeout: self.call_timeout.min(self.request_timeout),
            shutdown: CancellationToken::new(),
        });
        rates::spawn_sampler(&state);
        Gateway {
            state,
            body_limit: self.body_limit,
            max_connections: self.max_connections,
            tls: self.tls,
        }
    }

    /// Builds the gateway and serves it on `addr` (`127.0.0.1:0` for any
    /// free port).
    pub async fn bind(self, addr: &str) -> Result<RunningGateway, GatewayError> {
        self.build().serve(addr).await
    }
}

/// The gateway: an axum router over a server and its schemas.
pub struct Gateway {
    state: Arc<api::State>,
    body_limit: usize,
    max_connections: usize,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("server", &self.state.server)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A builder serving `server`, with JSON through `schema` (the schemas
    /// the server was started with).
    pub fn builder(server: Server, schema: &'static Schema) -> GatewayBuilder {
        GatewayBuilder {
            server,
            schema,
            auth: None,
            acl: None,
            events: None,
            tls: None,
            body_limit: DEFAULT_BODY_LIMIT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            request_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10),
        }
    }

    /// The routes, to mount in an application of one's own (served with
    /// `into_make_service_with_connect_info::<SocketAddr>()`).
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone(), self.body_limit)
    }

    /// Serves the gateway on `addr` until [`RunningGateway::shutdown`].
    pub async fn serve(self, addr: &str) -> Result<RunningGateway, GatewayError> {
        let bind_err = |source| GatewayError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let router = self.router();
        let token = self.state.shutdown.clone();
        let stop = token.clone();
        let (scheme, task) = match self.tls {
            Some(config) => {
                let listener = limit::Limited::new(
                    tls::TlsListener::new(listener, config, token.clone()),
                    self.max_connections,
                );
                let app = router.into_make_service_with_connect_info::<limit::PeerAddr>();
                let task = tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await;
                });
                ("https", task)
            }
            None => {
                let listener = limit::Limited::new(listener, self.max_connections);
                let app = router.into_make_service_with_connect_info::<limit::PeerAddr>();
                let task = tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(stop.cancelled_owned())
                        .await;
                });
                ("http", task)
            }
        };
        Ok(RunningGateway {
            url: format!("{scheme}://{local}"),
            local,
            token,
            task,
        })
    }
}

/// A gateway serving on an address.
#[derive(Debug)]
pub struct RunningGateway {
    url: String,
    local: SocketAddr,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    /// `http://HOST:PORT` (or `https://`), with the port actually bound.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting, ends the WebSockets and streams, and waits (at most
    /// five seconds) for the requests in progress.
    pub async fn shutdown(self) {
        self.token.cancel();
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}
