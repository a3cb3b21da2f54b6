//! The link-impairment lab: `impair+tcp://`, `impair+serial://` and
//! `impair+mem://` shape a real connection at the byte-stream level, under
//! the framing, so that everything above it (codec, session, application)
//! meets latency, jitter, a bandwidth cap, cuts, stalls and bit errors as it
//! would on a bad link.
//!
//! ```text
//! impair+tcp://127.0.0.1:7000?latency=300ms&jitter=200ms&rate=20kbit&cut_every=10s&cut_for=3s
//! impair+tcp://127.0.0.1:7000?profile=2g&seed=7
//! impair+serial:///dev/ttyUSB0?baud=115200&ber=1e-4
//! impair+mem://bus?profile=wifi-flaky
//! ```
//!
//! | parameter | value | effect |
//! |---|---|---|
//! | `profile` | `2g`, `gprs-bad`, `rs485-115200`, `wifi-flaky` | start from a [`Profile`]; other parameters override it |
//! | `latency` | duration (`us`, `ms`, `s`, `m`) | one-way delay, each direction |
//! | `jitter` | duration | delay drawn from `latency ± jitter`, never reordering bytes |
//! | `rate` | `bit`, `kbit`, `mbit`, `gbit` per second | token bucket, each direction independently |
//! | `byte_bits` | 5 ..= 16 | bits on the line per byte (10 for 8N1 serial, the serial default) |
//! | `burst` | bytes (`B`, `KiB`, `MiB`) | bucket depth (default 50 ms of the rate, at least 64 B) |
//! | `cut_every`, `cut_for` | durations | the link goes dead for `cut_for` at every multiple of `cut_every` |
//! | `cut_mode` | `drop` (default) or `stall` | see [`CutMode`] |
//! | `ber` | probability, 0 ..= 0.5 | serial only: bits flipped on the line, both directions |
//! | `seed` | integer (default 0) | every random draw; the same seed and traffic give the same run |
//!
//! `impair+serial` caps the rate at the port's `baud` with 10 bits per byte
//! unless `rate` or a profile says otherwise, so that a pseudo-terminal
//! behaves like a UART.
//!
//! The shaping happens on the side that opens the URL, in both directions:
//! a client connecting with `impair+tcp://` to a plain server sees the same
//! link as a plain client connecting to a server listening on
//! `impair+tcp://`. Impairing both ends shapes the link twice.
//!
//! A link's cut schedule runs from its start: for a listener, when it was
//! bound; for [`connect`](crate::transport::connect), when the URL was first
//! connected to in this process (every connection through the same URL
//! shares one [`Link`], so that a client reconnecting during a cut finds the
//! link still down). Each connection draws from its own random stream,
//! derived from the seed and the connection's number on the link.
//!
//! The decisions (when bytes may go, when they arrive, which bits flip) are
//! made by [`LinkModel`], which has no clock and no I/O, so that a
//! deterministic simulator can drive the same model.

mod config;
mod model;
mod pump;

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::oneshot;

pub use config::{CutMode, Cuts, LinkConfig, Profile, UnknownProfile};
pub use model::{Admit, LinkModel, LinkState, link_state, stream_seed};

use super::listener::Incoming;
use super::{Endpoint, Transport, TransportError};
use pump::{Clock, Connection, Counters};

/// Bytes the in-memory pipe between the application and the shaper holds in
/// each direction, at most: about half a second of a capped link (at least
/// 2 KiB), so that a writer meets the link's pace rather than a deep buffer.
const MAX_PIPE: usize = 64 * 1024;

/// One impaired link: its configuration, its clock (the cut schedule runs
/// from its creation) and its counters. Every connection through it is
/// shaped by its own pair of [`LinkModel`]s.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    clock: Clock,
    next: AtomicU64,
    counters: Arc<Counters>,
}

/// Counters of a link, over all its connections.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections shaped.
    pub connections: u64,
    /// Connections refused because the link was cut (connect or accept).
    pub refused: u64,
    /// Connections ended by a cut.
    pub dropped: u64,
    /// Bytes delivered from the application to the other end.
    pub bytes_out: u64,
    /// Bytes delivered from the other end to the application.
    pub bytes_in: u64,
    /// Bits flipped by the bit-error rate, both directions.
    pub bits_flipped: u64,
}

impl Link {
    /// A link starting now (the cut schedule's origin).
    pub fn new(config: LinkConfig) -> Arc<Link> {
        Arc::new(Link {
            config,
            clock: Clock {
                epoch: tokio::time::Instant::now(),
            },
            next: AtomicU64::new(0),
            counters: Arc::default(),
        })
    }

    /// The link that [`connect`](crate::transport::connect) uses for an
    /// `impair+…` endpoint (created on first use, shared by every connection
    /// to the same URL in this process, and kept for the life of the
    /// process: one entry per distinct URL); `None` for other endpoints.
    pub fn shared(endpoint: &Endpoint) -> Option<Arc<Link>> {
        let Endpoint::Impair { link, .. } = endpoint else {
            return None;
        };
        static LINKS: OnceLock<Mutex<HashMap<String, Arc<Link>>>> = OnceLock::new();
        let mut map = LINKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(
            map.entry(endpoint.to_string())
                .or_insert_with(|| Link::new(link.clone()))
                .clone(),
        )
    }

    /// The configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Time since the link started.
    pub fn elapsed(&self) -> Duration {
        self.clock.now()
    }

    /// Whether the link is up now.
    pub fn state(&self) -> LinkState {
        link_state(self.config.cuts.as_ref(), self.clock.now())
    }

    /// The counters so far.
    pub fn stats(&self) -> LinkStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkStats {
            connections: get(&c.connections),
            refused: get(&c.refused),
            dropped: get(&c.dropped),
            bytes_out: get(&c.bytes_out),
            bytes_in: get(&c.bytes_in),
            bits_flipped: get(&c.bits_flipped),
        }
    }

    /// While the link is cut in [`CutMode::Drop`], the error that refuses a
    /// new connection (counted).
    fn refusal(&self) -> Option<std::io::Error> {
        let LinkState::Cut {
            until,
            mode: CutMode::Drop,
        } = self.state()
        else {
            return None;
        };
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        let left = until.saturating_sub(self.clock.now());
        Some(std::io::Error::new(
            std::io::ErrorKind::NetworkUnreachable,
            format!(
                "the impaired link is cut for another {:.1} s",
                left.as_secs_f64()
            ),
        ))
    }

    /// Shapes `io` through this link: reads and writes on the result meet
    /// the link's delay, rate, cuts and bit errors. Spawns the shaping task
    /// on the current tokio runtime. Fails while the link is cut in
    /// [`CutMode::Drop`].
    pub fn wrap<IO>(self: &Arc<Self>, io: IO) -> std::io::Result<Impaired>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
    {
        self.wrap_guarded(io, ())
    }

    /// [`Link::wrap`], keeping `guard` alive until the shaper has let go of
    /// `io` (after the application's end is dropped and its last bytes have
    /// crossed).
    pub(crate) fn wrap_guarded<IO, G>(
        self: &Arc<Self>,
        io: IO,
        guard: G,
    ) -> std::io::Result<Impaired>
    where
        IO: AsyncRead + AsyncWrite + Send + 'static,
        G: Send + 'static,
    {
        if let Some(e) = self.refusal() {
            return Err(e);
        }
        let pipe = self
            .config
            .bytes_per_second()
            .map_or(MAX_PIPE, |bps| ((bps * 0.5) as usize).clamp(2048, MAX_PIPE));
        let (app, ours) = tokio::io::duplex(pipe);
        let (gone_tx, gone_rx) = oneshot::channel();
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        let connection = Connection {
            io,
            app: ours,
            config: self.config.clone(),
            number,
            clock: self.clock,
            counters: self.counters.clone(),
            app_gone: gone_rx,
            guard,
        };
        tokio::spawn(connection.run());
        Ok(Impaired {
            io: app,
            _gone: gone_tx,
        })
    }
}

/// A byte stream shaped by a [`Link`]: the application's end.
pub struct Impaired {
    io: DuplexStream,
    /// Dropped with this end, which tells the shaper to stop delivering.
    _gone: oneshot::Sender<()>,
}

impl fmt::Debug for Impaired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Impaired").finish_non_exhaustive()
    }
}

impl AsyncRead for Impaired {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Impaired {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Parses `impair+<scheme>://<rest>`: the lab's parameters come out of the
/// query, the rest is the inner endpoint.
pub(super) fn parse(url: &str, scheme: &str, rest: &str) -> Result<Endpoint, TransportError> {
    let bad = |reason| TransportError::InvalidEndpoint {
        url: url.to_owned(),
        reason,
    };
    if !matches!(scheme, "tcp" | "serial" | "mem") {
        return Err(bad("impair wraps tcp, serial or mem"));
    }
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| TransportError::InvalidParameter {
                url: url.to_owned(),
                parameter: pair.to_owned(),
                reason: "expected name=value".into(),
            })?;
        pairs.push((k, v));
    }
    let serial = scheme == "serial";
    let (mut link, inner_pairs) =
        config::parse_query(&pairs, serial).map_err(|(parameter, reason)| {
            TransportError::InvalidParameter {
                url: url.to_owned(),
                parameter,
                reason,
            }
        })?;
    let mut inner_url = format!("{scheme}://{base}");
    for (i, (k, v)) in inner_pairs.iter().enumerate() {
        inner_url.push(if i == 0 { '?' } else { '&' });
        inner_url.push_str(&format!("{k}={v}"));
    }
    let inner: Endpoint = inner_url.parse().map_err(|e| match e {
        TransportError::InvalidEndpoint { reason, .. } => bad(reason),
        other => other,
    })?;
    if let Endpoint::Serial { baud, .. } = &inner
        && link.rate.is_none()
        && link.profile.is_none()
    {
        link.rate = Some(u64::from(*baud));
    }
    Ok(Endpoint::Impair {
        inner: Box::new(inner),
        link,
    })
}

/// `impair+…` as a URL: the inner URL with the lab's parameters appended.
pub(super) fn display(
    f: &mut fmt::Formatter<'_>,
    inner: &Endpoint,
    link: &LinkConfig,
) -> fmt::Result {
    let inner = inner.to_string();
    let sep = if inner.contains('?') { '&' } else { '?' };
    write!(f, "impair+{inner}{sep}{link}")
}

/// The scheme reported in [`TransportInfo`](super::TransportInfo).
pub(super) fn scheme(inner: &Endpoint) -> &'static str {
    match inner {
        Endpoint::Tcp { .. } => "impair+tcp",
        Endpoint::Serial { .. } => "impair+serial",
        _ => "impair+mem",
    }
}

fn refused(endpoint: &Endpoint, e: std::io::Error) -> TransportError {
    TransportError::io(format!("connecting to {endpoint}"), e)
}

/// Opens `endpoint` (an `impair+…` one) through its shared [`Link`].
pub(super) async fn connect(
    endpoint: &Endpoint,
    max_frame: Option<usize>,
) -> Result<Transport, TransportError> {
    let Some(link) = Link::shared(endpoint) else {
        return Err(super::unsupported(endpoint));
    };
    let Endpoint::Impair { inner, .. } = endpoint else {
        return Err(super::unsupported(endpoint));
    };
    // Refuse before opening anything while the link is down.
    if let Some(e) = link.refusal() {
        return Err(refused(endpoint, e));
    }
    let scheme = scheme(inner);
    match &**inner {
        Endpoint::Mem { name } => {
            let io = super::mem::connect_io(name)?;
            let io = link.wrap(io).map_err(|e| refused(endpoint, e))?;
            Ok(Transport::from_io(
                io,
                scheme,
                format!("mem://{name}"),
                max_frame,
            ))
        }
        #[cfg(feature = "tcp")]
        Endpoint::Tcp { addr } => {
            let s = super::tcp::tcp_stream(addr).await?;
            let peer = s
                .peer_addr()
                .map_or_else(|_| addr.clone(), |a| a.to_string());
            let io = link.wrap(s).map_err(|e| refused(endpoint, e))?;
            Ok(Transport::from_io(io, scheme, peer, max_frame))
        }
        #[cfg(feature = "serial")]
        Endpoint::Serial { path, baud } => {
            let port = super::serial::open_port(path, *baud)?;
            let io = link.wrap(port).map_err(|e| refused(endpoint, e))?;
            Ok(super::serial::transport_as(
                io,
                scheme,
                path.clone(),
                max_frame,
            ))
        }
        other => Err(super::unsupported(other)),
    }
}

enum Inner {
    Mem(super::mem::MemListener),
    #[cfg(feature = "tcp")]
    Tcp(tokio::net::TcpListener),
    #[cfg(feature = "serial")]
    Serial {
        path: String,
        baud: u32,
        slot: Arc<tokio::sync::Semaphore>,
    },
}

/// A listener whose connections are shaped by one [`Link`], started when
/// it was bound.
pub(crate) struct ImpairListener {
    inner: Inner,
    link: Arc<Link>,
    scheme: &'static str,
}

impl ImpairListener {
    /// Binds the inner endpoint; gives the listener and its URL (with the
    /// bound port).
    pub(crate) async fn bind(
        endpoint: &Endpoint,
    ) -> Result<(ImpairListener, String), TransportError> {
        let Endpoint::Impair { inner, link } = endpoint else {
            return Err(super::unsupported(endpoint));
        };
        let (kind, bound) = match &**inner {
            Endpoint::Mem { name } => (
                Inner::Mem(super::mem::MemListener::bind(name)?),
                (**inner).clone(),
            ),
            #[cfg(feature = "tcp")]
            Endpoint::Tcp { addr } => {
                let l = super::listener::bind_tcp(addr).await?;
                let addr = l
                    .local_addr()
                    .map_or_else(|_| addr.clone(), |a| a.to_string());
                (Inner::Tcp(l), Endpoint::Tcp { addr })
            }
            #[cfg(feature = "serial")]
            Endpoint::Serial { path, baud } => (
                Inner::Serial {
                    path: path.clone(),
                    baud: *baud,
                    slot: Arc::new(tokio::sync::Semaphore::new(1)),
                },
                (**inner).clone(),
            ),
            other => return Err(super::unsupported(other)),
        };
        let url = Endpoint::Impair {
            inner: Box::new(bound),
            link: link.clone(),
        }
        .to_string();
        let l = ImpairListener {
            inner: kind,
            link: Link::new(link.clone()),
            scheme: scheme(inner),
        };
        Ok((l, url))
    }

    /// Waits for the next connection the link lets through; connections
    /// arriving while the link is cut in [`CutMode::Drop`] are closed (a
    /// serial line is opened only once the cut is over).
    pub(crate) async fn accept(
        &mut self,
        max_frame: Option<usize>,
    ) -> Result<Incoming, TransportError> {
        let scheme = self.scheme;
        loop {
            match &mut self.inner {
                Inner::Mem(l) => {
                    let (io, peer) = l.accept().await.ok_or(TransportError::Closed)?;
                    let Ok(io) = self.link.wrap(io) else { continue };
                    let p = peer.clone();
                    return Ok(Incoming::upgrading(peer, async move {
                        Ok(Transport::from_io(io, scheme, p, max_frame))
                    }));
                }
                #[cfg(feature = "tcp")]
                Inner::Tcp(l) => {
                    let (s, addr) = l
                        .accept()
                        .await
                        .map_err(|e| TransportError::io("accepting a tcp connection", e))?;
                    let _ = s.set_nodelay(true);
                    let Ok(io) = self.link.wrap(s) else { continue };
                    let peer = addr.to_string();
                    let p = peer.clone();
                    return Ok(Incoming::upgrading(peer, async move {
                        Ok(Transport::from_io(io, scheme, p, max_frame))
                    }));
                }
                #[cfg(feature = "serial")]
                Inner::Serial { path, baud, slot } => {
                    let permit = slot
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| TransportError::Closed)?;
                    if let LinkState::Cut {
                        until,
                        mode: CutMode::Drop,
                    } = self.link.state()
                    {
                        tokio::time::sleep_until(self.link.clock.epoch + until).await;
                    }
                    let port = super::serial::open_port(path, *baud)?;
                    // The permit goes with the port into the shaper: the line
                    // is reopened only once the shaper has closed it.
                    let Ok(io) = self.link.wrap_guarded(port, permit) else {
                        continue;
                    };
                    let path = path.clone();
                    let p = path.clone();
                    return Ok(Incoming::upgrading(path, async move {
                        Ok(super::serial::transport_as(io, scheme, p, max_frame))
                    }));
                }
            }
        }
    }

    /// The link shaping this listener's connections.
    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }
}

#[cfg(test)]
mod tests;
