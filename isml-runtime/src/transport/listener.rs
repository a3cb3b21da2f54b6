//! Listening on an endpoint: accept loops hand out [`Incoming`] connections
//! whose TLS or WebSocket handshake runs in the connection's own task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
#[cfg(feature = "tls")]
use std::sync::Arc;

use futures_util::Stream;

use super::mem::MemListener;
use super::{Endpoint, Transport, TransportError};

/// Options for [`Listener::bind`].
#[derive(Clone, Default)]
pub struct ListenOptions {
    /// Largest frame sent or accepted (defaults to the codec's).
    pub max_frame: Option<usize>,
    /// rustls server configuration for `tls://` endpoints.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenOptions")
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

type Upgrade = Pin<Box<dyn Future<Output = Result<Transport, TransportError>> + Send>>;

/// An accepted connection whose transport handshake (TLS, WebSocket) has not
/// run yet: [`Incoming::upgrade`] runs it.
pub struct Incoming {
    peer: String,
    upgrade: Upgrade,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("peer", &self.peer)
            .finish()
    }
}

impl Incoming {
    /// The peer's address.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Completes the transport handshake.
    pub async fn upgrade(self) -> Result<Transport, TransportError> {
        self.upgrade.await
    }

    /// A connection whose transport handshake is still to come: `upgrade`
    /// runs when [`Incoming::upgrade`] is awaited (in the server's
    /// connection task, so a slow handshake does not hold up accepting).
    pub fn upgrading(
        peer: impl Into<String>,
        upgrade: impl Future<Output = Result<Transport, TransportError>> + Send + 'static,
    ) -> Incoming {
        Incoming {
            peer: peer.into(),
            upgrade: Box::pin(upgrade),
        }
    }

    /// A connection whose transport is already there: accepted by code of
    /// the caller's own and handed to a [`Listener::from_incoming`], or the
    /// server's side of an in-process session.
    pub fn new(peer: impl Into<String>, transport: Transport) -> Incoming {
        Incoming {
            peer: peer.into(),
            upgrade: Box::pin(async move { Ok(transport) }),
        }
    }
}

/// Connections accepted by the caller's code (see [`Listener::from_incoming`]).
type Connections = Pin<Box<dyn Stream<Item = Result<Incoming, TransportError>> + Send>>;

enum Kind {
    Mem(MemListener),
    Connections(Connections),
    #[cfg(feature = "tcp")]
    Tcp(tokio::net::TcpListener),
    #[cfg(feature = "tls")]
    Tls(tokio::net::TcpListener, tokio_rustls::TlsAcceptor),
    #[cfg(feature = "websocket")]
    Ws(tokio::net::TcpListener, String),
    #[cfg(feature = "serial")]
    Serial {
        path: String,
        baud: u32,
        slot: std::sync::Arc<tokio::sync::Semaphore>,
    },
    #[cfg(feature = "impair")]
    Impair(super::impair::ImpairListener),
}

/// A bound endpoint that accepts connections.
///
/// A serial "listener" owns one line: it opens the port, hands it out as one
/// connection, and opens it again once that connection has ended.
pub struct Listener {
    kind: Kind,
    url: String,
    max_frame: Option<usize>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").field("url", &self.url).finish()
    }
}

impl Listener {
    /// Binds `endpoint`. TCP-based endpoints with port 0 get a free port:
    /// [`Listener::url`] gives the bound one.
    pub async fn bind(
        endpoint: &Endpoint,
        options: &ListenOptions,
    ) -> Result<Listener, TransportError> {
        let max_frame = options.max_frame;
        let (kind, url) = match endpoint {
            Endpoint::Mem { name } => (Kind::Mem(MemListener::bind(name)?), endpoint.to_string()),
            #[cfg(feature = "tcp")]
            Endpoint::Tcp { addr } => {
                let l = bind_tcp(addr).await?;
                let url = format!("tcp://{}", local(&l, addr));
                (Kind::Tcp(l), url)
            }
            #[cfg(feature = "tls")]
            Endpoint::Tls { addr, .. } => {
                let config =
                    options
                        .tls
                        .clone()
                        .ok_or_else(|| TransportError::InvalidEndpoint {
                            url: endpoint.to_string(),
                            reason: "tls:// needs a rustls ServerConfig in the listen options",
                        })?;
                let l = bind_tcp(addr).await?;
                let url = format!("tls://{}", local(&l, addr));
                (Kind::Tls(l, super::tls::acceptor(config)), url)
            }
            #[cfg(feature = "websocket")]
            Endpoint::WebSocket { addr, path } => {
                let l = bind_tcp(addr).await?;
                let url = format!("ws://{}{path}", local(&l, addr));
                (Kind::Ws(l, path.clone()), url)
            }
            #[cfg(feature = "serial")]
            Endpoint::Serial { path, baud } => (
                Kind::Serial {
                    path: path.clone(),
                    baud: *baud,
                    slot: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
                },
                endpoint.to_string(),
            ),
            #[cfg(feature = "impair")]
            Endpoint::Impair { .. } => {
                let (l, url) = super::impair::ImpairListener::bind(endpoint).await?;
                (Kind::Impair(l), url)
            }
            #[allow(unreachable_patterns)]
            other => return Err(super::unsupported(other)),
        };
        Ok(Listener {
            kind,
            url,
            max_frame,
        })
    }

    /// A listener over connections accepted by code of the caller's own:
    /// each item of `connections` is one, usually an [`Incoming::new`] over
    /// a [`Transport::from_io`] (built with the server's
    /// [`max_frame`](crate::server::ServerBuilder::max_frame) when it is
    /// not the default); an error is retried like a failed `accept`, and
    /// the end of the stream stops the listener. `url` names it in logs
    /// and [`Server::urls`](crate::server::Server::urls).
    ///
    /// For sockets the URL schemes do not open: a socket inherited from a
    /// supervisor (systemd socket activation), connections coming out of a
    /// tunnel or a proxy protocol, or a simulated network in tests. Give it
    /// to [`ServerBuilder::listener`](crate::server::ServerBuilder::listener).
    pub fn from_incoming<S>(url: impl Into<String>, connections: S) -> Listener
    where
        S: Stream<Item = Result<Incoming, TransportError>> + Send + 'static,
    {
        Listener {
            kind: Kind::Connections(Box::pin(connections)),
            url: url.into(),
            max_frame: None,
        }
    }

    /// The bound URL (with the actual port when 0 was asked for).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The link shaping an `impair+…` listener's connections (its counters,
    /// its cut schedule); `None` for other listeners.
    #[cfg(feature = "impair")]
    pub fn impair_link(&self) -> Option<&std::sync::Arc<super::impair::Link>> {
        match &self.kind {
            Kind::Impair(l) => Some(l.link()),
            _ => None,
        }
    }

    /// Waits for the next connection.
    pub async fn accept(&mut self) -> Result<Incoming, TransportError> {
        let max_frame = self.max_frame;
        match &mut self.kind {
            Kind::Connections(c) => futures_util::StreamExt::next(c)
                .await
                .unwrap_or(Err(TransportError::Closed)),
            Kind::Mem(l) => {
                let name = l.name().to_owned();
                let (io, peer) = l.accept().await.ok_or(TransportError::Closed)?;
                let _ = name;
                let p = peer.clone();
                Ok(Incoming {
                    peer,
                    upgrade: Box::pin(
                        async move { Ok(Transport::from_io(io, "mem", p, max_frame)) },
                    ),
                })
            }
            #[cfg(feature = "tcp")]
            Kind::Tcp(l) => {
                let (s, addr) = l
                    .accept()
                    .await
                    .map_err(|e| TransportError::io("accepting a tcp connection", e))?;
                Ok(Incoming {
                    peer: addr.to_string(),
                    upgrade: Box::pin(async move { Ok(super::tcp::transport(s, max_frame)) }),
                })
            }
            #[cfg(feature = "tls")]
            Kind::Tls(l, acceptor) => {
                let (s, addr) = l
                    .accept()
                    .await
                    .map_err(|e| TransportError::io("accepting a tls connection", e))?;
                let acceptor = acceptor.clone();
                let peer = addr.to_string();
                Ok(Incoming {
                    peer: peer.clone(),
                    upgrade: Box::pin(super::tls::accept(acceptor, s, peer, max_frame)),
                })
            }
            #[cfg(feature = "websocket")]
            Kind::Ws(l, path) => {
                let (s, addr) = l
                    .accept()
                    .await
                    .map_err(|e| TransportError::io("accepting a websocket connection", e))?;
                let peer = addr.to_string();
                Ok(Incoming {
                    peer: peer.clone(),
                    upgrade: Box::pin(super::ws::accept(s, peer, path.clone(), max_frame)),
                })
            }
            #[cfg(feature = "serial")]
            Kind::Serial { path, baud, slot } => {
                let permit = slot
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| TransportError::Closed)?;
                let t = super::serial::open(path, *baud, max_frame)?;
                Ok(Incoming {
                    peer: path.clone(),
                    upgrade: Box::pin(async move { Ok(t.with_guard(permit)) }),
                })
            }
            #[cfg(feature = "impair")]
            Kind::Impair(l) => l.accept(max_frame).await,
        }
    }
}

/// Connections the kernel completes and queues before the accept loop takes
/// them. A long queue lets a burst of connections (a fleet coming back, or
/// a flood the admission rules are shedding) wait instead of having their
/// handshake packets dropped, which would cost a device a 1 s retransmission.
#[cfg(feature = "tcp")]
const BACKLOG: u32 = 4096;

#[cfg(feature = "tcp")]
pub(crate) async fn bind_tcp(addr: &str) -> Result<tokio::net::TcpListener, TransportError> {
    let err = |e| TransportError::io(format!("binding {addr}"), e);
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await.map_err(err)? {
        let socket = match a {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .map_err(err)?;
        #[cfg(unix)]
        socket.set_reuseaddr(true).map_err(err)?;
        match socket.bind(a).and_then(|()| socket.listen(BACKLOG)) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind")
    })))
}

#[cfg(feature = "tcp")]
fn local(l: &tokio::net::TcpListener, fallback: &str) -> String {
    l.local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| fallback.to_owned())
}
