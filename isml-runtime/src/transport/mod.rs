//! Transports: a framed duplex of [`Frame`]s over a byte stream, a serial line
//! or a WebSocket, chosen by URL.
//!
//! | URL | feature | framing |
//! |---|---|---|
//! | `mem://name` | `runtime` | stream (§3) over a tokio duplex pipe, process-wide registry |
//! | `tcp://host:port` | `tcp` | stream (§3) |
//! | `tls://host:port` | `tls` | stream (§3) inside rustls |
//! | `serial:///dev/ttyUSB0?baud=115200` | `serial` | COBS + CRC-32C (§4) |
//! | `ws://host:port/path` | `websocket` | each binary message carries one or more stream-framed frames |
//! | `impair+tcp://…?latency=300ms&rate=20kbit`, `impair+serial://…`, `impair+mem://…` | `impair` | the inner transport's, through a shaped link ([`impair`]) |
//!
//! A [`Transport`] is both a `Stream` of received frames and a `Sink` of frames
//! to send; [`Transport::split`] separates the halves so that a session reads
//! and writes concurrently. Writes are buffered: frames fed without a flush
//! are coalesced into few system calls.

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::codec::{FrameError, FrameLimit, StreamCodec};
use crate::wire::{DecodeError, Frame};

#[cfg(feature = "impair")]
pub mod impair;
pub(crate) mod mem;
#[cfg(feature = "serial")]
pub mod serial;
#[cfg(feature = "tcp")]
mod tcp;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "websocket")]
mod ws;

pub(crate) mod listener;
mod reader;
mod writer;
pub use listener::{Incoming, ListenOptions, Listener};
pub(crate) use reader::FrameRest;

/// Why a transport could not be opened, or failed while in use.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The URL could not be parsed.
    #[error("invalid endpoint `{url}`: {reason}")]
    InvalidEndpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The URL names a transport whose cargo feature is not enabled.
    #[error("transport `{scheme}` needs the `{feature}` feature of isml-runtime")]
    Unsupported {
        /// The URL scheme.
        scheme: &'static str,
        /// The cargo feature to enable.
        feature: &'static str,
    },
    /// I/O on the underlying socket, port or pipe failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and to what.
        context: String,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// The peer sent bytes that are not a valid frame (the connection cannot go on).
    #[error("malformed frame from {peer}: {source}")]
    Malformed {
        /// The peer address.
        peer: String,
        /// The decoding error.
        source: DecodeError,
    },
    /// A frame to send could not be encoded (for example, larger than the maximum).
    #[error("cannot send frame: {0}")]
    Encode(#[from] crate::wire::EncodeError),
    /// A TLS or WebSocket handshake, or a protocol of the wrapping layer, failed.
    #[error("{layer} error with {peer}: {message}")]
    Protocol {
        /// `tls` or `websocket`.
        layer: &'static str,
        /// The peer address.
        peer: String,
        /// What went wrong.
        message: String,
    },
    /// A parameter of the URL's query is unknown or has a bad value.
    #[error("invalid endpoint `{url}`: parameter `{parameter}`: {reason}")]
    InvalidParameter {
        /// The URL as given.
        url: String,
        /// The parameter's name.
        parameter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No listener is registered under this in-memory name, or it stopped accepting.
    #[error("connection refused by {0}")]
    Refused(String),
    /// The transport is closed.
    #[error("transport closed")]
    Closed,
}

impl TransportError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TransportError::Io {
            context: context.into(),
            source,
        }
    }

    fn from_frame(peer: &str, e: FrameError) -> Self {
        match e {
            FrameError::Io(source) => TransportError::io(format!("i/o with {peer}"), source),
            FrameError::Decode(source) => TransportError::Malformed {
                peer: peer.to_owned(),
                source,
            },
            FrameError::Encode(e) => TransportError::Encode(e),
        }
    }
}

/// Where to connect or listen, parsed from a URL.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `mem://name`: the in-memory transport.
    Mem {
        /// The registry name.
        name: String,
    },
    /// `tcp://host:port`.
    Tcp {
        /// `host:port` as given.
        addr: String,
    },
    /// `tls://host:port`.
    Tls {
        /// `host:port` as given.
        addr: String,
        /// The host part, used as the TLS server name.
        host: String,
    },
    /// `serial:///dev/ttyUSB0?baud=115200`.
    Serial {
        /// The device path.
        path: String,
        /// The baud rate (115200 when not given).
        baud: u32,
    },
    /// `ws://host:port/path`.
    WebSocket {
        /// `host:port`.
        addr: String,
        /// The request path, starting with `/`.
        path: String,
    },
    /// `impair+tcp://…`, `impair+serial://…`, `impair+mem://…`: the inner
    /// endpoint through a shaped link ([`impair`]).
    #[cfg(feature = "impair")]
    Impair {
        /// The endpoint under the link.
        inner: Box<Endpoint>,
        /// What the link does.
        link: impair::LinkConfig,
    },
}

impl Endpoint {
    /// The URL scheme.
    pub fn scheme(&self) -> &'static str {
        match self {
            Endpoint::Mem { .. } => "mem",
            Endpoint::Tcp { .. } => "tcp",
            Endpoint::Tls { .. } => "tls",
            Endpoint::Serial { .. } => "serial",
            Endpoint::WebSocket { .. } => "ws",
            #[cfg(feature = "impair")]
            Endpoint::Impair { inner, .. } => impair::scheme(inner),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Mem { name } => write!(f, "mem://{name}"),
            Endpoint::Tcp { addr } => write!(f, "tcp://{addr}"),
            Endpoint::Tls { addr, .. } => write!(f, "tls://{addr}"),
            Endpoint::Serial { path, baud } => write!(f, "serial://{path}?baud={baud}"),
            Endpoint::WebSocket { addr, path } => write!(f, "ws://{addr}{path}"),
            #[cfg(feature = "impair")]
            Endpoint::Impair { inner, link } => impair::display(f, inner, link),
        }
    }
}

fn split_host(url: &str, addr: &str) -> Result<String, TransportError> {
    let bad = |reason| TransportError::InvalidEndpoint {
        url: url.to_owned(),
        reason,
    };
    let (host, port) = addr.rsplit_once(':').ok_or(bad("expected host:port"))?;
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    port.parse::<u16>().map_err(|_| bad("invalid port"))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned())
}

impl FromStr for Endpoint {
    type Err = TransportError;

    fn from_str(url: &str) -> Result<Self, TransportError> {
        let bad = |reason| TransportError::InvalidEndpoint {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or(bad("expected scheme://"))?;
        match scheme {
            "mem" => {
                if rest.is_empty() {
                    return Err(bad("empty in-memory name"));
                }
                Ok(Endpoint::Mem {
                    name: rest.to_owned(),
                })
            }
            "tcp" => {
                split_host(url, rest)?;
                Ok(Endpoint::Tcp {
                    addr: rest.to_owned(),
                })
            }
            "tls" => {
                let host = split_host(url, rest)?;
                Ok(Endpoint::Tls {
                    addr: rest.to_owned(),
                    host,
                })
            }
            "serial" => {
                let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
                if !path.starts_with('/') {
                    return Err(bad("expected an absolute device path"));
                }
                let mut baud = 115_200;
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    match pair.split_once('=') {
                        Some(("baud", v)) => baud = v.parse().map_err(|_| bad("invalid baud"))?,
                        _ => return Err(bad("unknown query parameter (only baud)")),
                    }
                }
                Ok(Endpoint::Serial {
                    path: path.to_owned(),
                    baud,
                })
            }
            "ws" => {
                let (addr, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                split_host(url, addr)?;
                Ok(Endpoint::WebSocket {
                    addr: addr.to_owned(),
                    path: path.to_owned(),
                })
            }
            #[cfg(feature = "impair")]
            s if s.starts_with("impair+") => impair::parse(url, &s["impair+".len()..], rest),
            #[cfg(not(feature = "impair"))]
            s if s.starts_with("impair+") => Err(TransportError::Unsupported {
                scheme: "impair",
                feature: "impair",
            }),
            _ => Err(bad("unknown scheme (mem, tcp, tls, serial, ws, impair+…)")),
        }
    }
}

/// Options for [`connect`].
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Largest frame sent or accepted (defaults to the codec's 1 MiB, 4 KiB on serial).
    pub max_frame: Option<usize>,
    /// rustls client configuration for `tls://` endpoints.
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("max_frame", &self.max_frame)
            .finish_non_exhaustive()
    }
}

/// Opens a transport to `endpoint`.
pub async fn connect(
    endpoint: &Endpoint,
    options: &ConnectOptions,
) -> Result<Transport, TransportError> {
    let max_frame = options.max_frame;
    match endpoint {
        Endpoint::Mem { name } => mem::connect(name, max_frame).await,
        #[cfg(feature = "tcp")]
        Endpoint::Tcp { addr } => tcp::connect(addr, max_frame).await,
        #[cfg(feature = "tls")]
        Endpoint::Tls { addr, host } => {
            let config = options
                .tls
                .clone()
                .ok_or_else(|| TransportError::InvalidEndpoint {
                    url: endpoint.to_string(),
                    reason: "tls:// needs a rustls ClientConfig in the connect options",
                })?;
            tls::connect(addr, host, config, max_frame).await
        }
        #[cfg(feature = "serial")]
        Endpoint::Serial { path, baud } => serial::open(path, *baud, max_frame),
        #[cfg(feature = "websocket")]
        Endpoint::WebSocket { addr, path } => ws::connect(addr, path, max_frame).await,
        #[cfg(feature = "impair")]
        Endpoint::Impair { .. } => impair::connect(endpoint, max_frame).await,
        #[allow(unreachable_patterns)]
        other => Err(unsupported(other)),
    }
}

#[allow(dead_code)]
pub(crate) fn unsupported(endpoint: &Endpoint) -> TransportError {
    let scheme = endpoint.scheme();
    let feature = match scheme {
        "ws" => "websocket",
        s => s.strip_prefix("impair+").unwrap_or(s),
    };
    TransportError::Unsupported { scheme, feature }
}

/// Bytes moved by a transport, as seen by the socket, port or pipe (framing,
/// TLS and WebSocket overhead included).
#[derive(Debug, Default)]
pub struct WireCounters {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    corrupt_frames: AtomicU64,
}

impl WireCounters {
    /// Bytes received.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }
    /// Bytes sent.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }
    /// Serial frames dropped for a bad CRC or COBS encoding.
    pub fn corrupt_frames(&self) -> u64 {
        self.corrupt_frames.load(Ordering::Relaxed)
    }
    #[cfg_attr(not(feature = "serial"), allow(dead_code))]
    pub(crate) fn add_corrupt(&self) {
        self.corrupt_frames.fetch_add(1, Ordering::Relaxed);
    }
}

/// Received frames (ends with `None` when the peer closed the connection).
pub type FrameStream = Pin<Box<dyn Stream<Item = Result<Frame, TransportError>> + Send>>;
/// Frames to send; `feed` buffers, `flush` writes.
pub type FrameSink = Pin<Box<dyn Sink<Frame, Error = TransportError> + Send>>;

/// A sink of frames that also takes frames already encoded with stream
/// framing (wire format §3), written as they are: the byte-stream
/// transports (`tcp`, `tls`, `mem` and `impair+` over them).
pub(crate) trait EncodedSink: Sink<Frame, Error = TransportError> + Send {
    /// The largest frame (header and payload, [`Frame::len`]) the sink
    /// writes: pre-encoded frames must not be larger, as it does not check.
    fn max_frame(&self) -> usize;

    /// Feeds `bytes`, whole frames in stream framing, after the frames fed
    /// before; as [`Sink::start_send`], after `poll_ready`.
    fn start_send_encoded(self: Pin<&mut Self>, bytes: Bytes) -> Result<(), TransportError>;
}

/// The sending half of a transport as the runtime holds it: any sink of
/// frames, or a byte-stream transport's, which also takes pre-encoded
/// frames ([`EncodedSink`]). A sink itself, so that it is used as a
/// [`FrameSink`] is.
pub(crate) enum FrameTx {
    Frames(FrameSink),
    Stream(Pin<Box<dyn EncodedSink>>),
}

impl FrameTx {
    /// The largest frame [`FrameTx::start_send_encoded`] may be given
    /// ([`Frame::len`]); 0 when it takes none.
    pub(crate) fn encoded_max(&self) -> usize {
        match self {
            FrameTx::Frames(_) => 0,
            FrameTx::Stream(s) => s.max_frame(),
        }
    }

    /// The half as a plain sink of frames.
    pub(crate) fn into_sink(self) -> FrameSink {
        match self {
            FrameTx::Frames(s) => s,
            FrameTx::Stream(s) => s,
        }
    }

    /// `self`, pinned (it is `Unpin`): `tx.as_mut().poll_ready(cx)` reads as
    /// it does for a [`FrameSink`].
    pub(crate) fn as_mut(&mut self) -> Pin<&mut Self> {
        Pin::new(self)
    }

    /// Feeds whole stream-framed frames. Only a byte-stream transport's half
    /// takes them ([`FrameTx::encoded_max`]); any other fails the write.
    pub(crate) fn start_send_encoded(
        self: Pin<&mut Self>,
        bytes: Bytes,
    ) -> Result<(), TransportError> {
        match self.get_mut() {
            FrameTx::Stream(s) => s.as_mut().start_send_encoded(bytes),
            FrameTx::Frames(_) => Err(TransportError::Encode(
                crate::wire::EncodeError::InvalidHeader {
                    reason: "pre-encoded frames sent to a transport without stream framing",
                },
            )),
        }
    }
}

impl Sink<Frame> for FrameTx {
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.get_mut() {
            FrameTx::Frames(s) => s.as_mut().poll_ready(cx),
            FrameTx::Stream(s) => s.as_mut().poll_ready(cx),
        }
    }
    fn start_send(self: Pin<&mut Self>, item: Frame) -> Result<(), Self::Error> {
        match self.get_mut() {
            FrameTx::Frames(s) => s.as_mut().start_send(item),
            FrameTx::Stream(s) => s.as_mut().start_send(item),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.get_mut() {
            FrameTx::Frames(s) => s.as_mut().poll_flush(cx),
            FrameTx::Stream(s) => s.as_mut().poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self.get_mut() {
            FrameTx::Frames(s) => s.as_mut().poll_close(cx),
            FrameTx::Stream(s) => s.as_mut().poll_close(cx),
        }
    }
}

/// A framed duplex connection: a stream of received frames and a sink of
/// frames to send, with the peer's address and wire counters.
pub struct Transport {
    rx: FrameStream,
    tx: FrameTx,
    info: TransportInfo,
}

/// What is known about the other end of a transport.
#[derive(Clone, Debug)]
pub struct TransportInfo {
    /// The URL scheme (`tcp`, `tls`, `serial`, `ws`, `mem`).
    pub scheme: &'static str,
    /// The peer's address (`ip:port`, device path, or in-memory name).
    pub peer: String,
    /// Bytes on the wire.
    pub counters: Arc<WireCounters>,
    /// The DER certificate chain a TLS client presented (mutual TLS), leaf first.
    pub peer_certificates: Option<Arc<Vec<Vec<u8>>>>,
    /// The largest frame the transport accepts, adjustable while it runs
    /// (`None` when the transport's limit is fixed, as on serial lines).
    pub receive_limit: Option<FrameLimit>,
}

impl TransportInfo {
    /// Information about a peer, with fresh counters.
    pub fn new(scheme: &'static str, peer: impl Into<String>) -> Self {
        TransportInfo {
            scheme,
            peer: peer.into(),
            counters: Arc::default(),
            peer_certificates: None,
            receive_limit: None,
        }
    }
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport from its two halves.
    pub fn new(rx: FrameStream, tx: FrameSink, info: TransportInfo) -> Self {
        Transport {
            rx,
            tx: FrameTx::Frames(tx),
            info,
        }
    }

    /// A transport over any byte stream, with stream framing (§3).
    ///
    /// Writes are buffered up to 64 KiB between flushes, so that frames fed
    /// back to back leave in one system call.
    pub fn from_io<IO>(
        io: IO,
        scheme: &'static str,
        peer: String,
        max_frame: Option<usize>,
    ) -> Transport
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let counters = Arc::new(WireCounters::default());
        let io = Counted {
            io,
            counters: counters.clone(),
        };
        let (r, w) = tokio::io::split(io);
        let max_frame = max_frame.unwrap_or(crate::wire::Limits::DEFAULT.max_frame);
        let limit = FrameLimit::new(max_frame);
        let codec = StreamCodec::builder()
            .max_frame_len(max_frame)
            .receive_limit(limit.clone())
            .build();
        let rx = reader::FrameReader::new(r, codec.clone(), peer.clone());
        // Its framing is the stream framing of pre-encoded frames: the
        // writer takes them too.
        let tx = FrameTx::Stream(Box::pin(writer::FrameWriter::new(w, codec, peer.clone())));
        let mut t = Self::from_halves(Box::pin(rx), tx, scheme, peer, counters);
        t.info.receive_limit = Some(limit);
        t
    }

    #[cfg_attr(not(feature = "serial"), allow(dead_code))]
    pub(crate) fn from_codec_halves<R, W, D, E>(
        r: R,
        w: W,
        decoder: D,
        encoder: E,
        scheme: &'static str,
        peer: String,
        counters: Arc<WireCounters>,
    ) -> Transport
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
        D: tokio_util::codec::Decoder<Item = Frame, Error = FrameError>
            + FrameRest
            + Send
            + Unpin
            + 'static,
        E: for<'a> tokio_util::codec::Encoder<&'a Frame, Error = FrameError>
            + Send
            + Unpin
            + 'static,
    {
        // Both halves hold buffers only while bytes are moving: an idle
        // session costs little memory.
        let rx = reader::FrameReader::new(r, decoder, peer.clone());
        let tx = FrameTx::Frames(Box::pin(writer::FrameWriter::new(w, encoder, peer.clone())));
        Self::from_halves(Box::pin(rx), tx, scheme, peer, counters)
    }

    fn from_halves(
        rx: FrameStream,
        tx: FrameTx,
        scheme: &'static str,
        peer: String,
        counters: Arc<WireCounters>,
    ) -> Transport {
        Transport {
            rx,
            tx,
            info: TransportInfo {
                scheme,
                peer,
                counters,
                peer_certificates: None,
                receive_limit: None,
            },
        }
    }

    /// What is known about the peer.
    pub fn info(&self) -> &TransportInfo {
        &self.info
    }

    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(crate) fn set_peer_certificates(&mut self, certs: Vec<Vec<u8>>) {
        self.info.peer_certificates = Some(Arc::new(certs));
    }

    /// This transport, keeping `guard` alive until its receiving half is dropped
    /// (a permit, a file descriptor the other side needs open).
    pub fn with_guard<G: Send + Unpin + 'static>(self, guard: G) -> Transport {
        Transport {
            rx: Box::pin(Guarded {
                rx: self.rx,
                _guard: guard,
            }),
            tx: self.tx,
            info: self.info,
        }
    }

    /// Separates the halves, so that reading and writing proceed independently.
    pub fn split(self) -> (FrameStream, FrameSink, TransportInfo) {
        (self.rx, self.tx.into_sink(), self.info)
    }

    /// [`Transport::split`], with the sending half able to take pre-encoded
    /// frames when the transport's framing is the stream framing.
    pub(crate) fn split_tx(self) -> (FrameStream, FrameTx, TransportInfo) {
        (self.rx, self.tx, self.info)
    }
}

impl Stream for Transport {
    type Item = Result<Frame, TransportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}

impl Sink<Frame> for Transport {
    type Error = TransportError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.tx).poll_ready(cx)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Frame) -> Result<(), Self::Error> {
        Pin::new(&mut self.tx).start_send(item)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.tx).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.tx).poll_close(cx)
    }
}

/// Counts bytes read and written through an I/O object.
pub(crate) struct Counted<IO> {
    pub(crate) io: IO,
    pub(crate) counters: Arc<WireCounters>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.counters
            .bytes_in
            .fetch_add(n as u64, Ordering::Relaxed);
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.counters
                .bytes_out
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.counters
                .bytes_out
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Keeps a value alive for as long as the receiving half is.
struct Guarded<G> {
    rx: FrameStream,
    _guard: G,
}

impl<G: Unpin> Stream for Guarded<G> {
    type Item = Result<Frame, TransportError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.as_mut().poll_next(cx)
    }
}
