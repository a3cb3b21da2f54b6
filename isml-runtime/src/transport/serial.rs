//! Serial lines (`serial:///dev/ttyUSB0?baud=115200`) with tokio-serial and the
//! COBS + CRC-32C framing of wire format §4, and [`PtyPair`], a real
//! pseudo-terminal pair for tests and demos.
//!
//! Corrupt frames (bad CRC or COBS) are dropped and counted
//! ([`WireCounters::corrupt_frames`](super::WireCounters::corrupt_frames)): the
//! line resynchronises on the next delimiter and the session goes on.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_serial::SerialPortBuilderExt;
use tokio_util::codec::Decoder;

use super::{Counted, Transport, TransportError, WireCounters};
use crate::codec::{FrameError, SerialCodec};
use crate::wire::Frame;

/// Opens a serial port as a transport.
pub fn open(path: &str, baud: u32, max_frame: Option<usize>) -> Result<Transport, TransportError> {
    Ok(transport(
        open_port(path, baud)?,
        path.to_owned(),
        max_frame,
    ))
}

/// Opens a serial port as a byte stream.
pub(crate) fn open_port(
    path: &str,
    baud: u32,
) -> Result<tokio_serial::SerialStream, TransportError> {
    tokio_serial::new(path, baud)
        .open_native_async()
        .map_err(|e| TransportError::io(format!("opening serial port {path}"), e.into()))
}

/// A transport with serial framing over any byte stream (a port, a pty master).
pub fn transport<IO>(io: IO, peer: String, max_frame: Option<usize>) -> Transport
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    transport_as(io, "serial", peer, max_frame)
}

/// [`transport`], reporting `scheme` in the transport's information.
pub(crate) fn transport_as<IO>(
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
    let codec = match max_frame {
        Some(m) => SerialCodec::builder().max_frame_len(m).build(),
        None => SerialCodec::new(),
    };
    let decoder = SkipCorrupt {
        codec: codec.clone(),
        counters: counters.clone(),
        peer: peer.clone(),
    };
    Transport::from_codec_halves(r, w, decoder, codec, scheme, peer, counters)
}

/// Turns the serial codec's per-frame errors into counted drops.
struct SkipCorrupt {
    codec: SerialCodec,
    counters: Arc<WireCounters>,
    peer: String,
}

impl super::FrameRest for SkipCorrupt {}

impl Decoder for SkipCorrupt {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        loop {
            match self.codec.decode(src)? {
                None => return Ok(None),
                Some(Ok(f)) => return Ok(Some(f.frame)),
                Some(Err(e)) => {
                    self.counters.add_corrupt();
                    tracing::debug!(peer = %self.peer, error = %e, "dropped corrupt serial frame");
                }
            }
        }
    }
}

/// A pseudo-terminal pair in raw mode: the slave end is a real tty device
/// (open it by [`PtyPair::url`] like any serial port), the master end is the
/// other side of the line ([`PtyPair::into_transport`]).
#[derive(Debug)]
pub struct PtyPair {
    master: OwnedFd,
    slave: OwnedFd,
    path: PathBuf,
}

impl PtyPair {
    /// Opens a pair with `openpty(3)` and puts the line in raw mode (no echo, no
    /// line editing, no CR/LF translation: every byte passes unchanged).
    pub fn open() -> std::io::Result<PtyPair> {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let pty = nix::pty::openpty(None, None)?;
        let mut t = tcgetattr(&pty.slave)?;
        cfmakeraw(&mut t);
        tcsetattr(&pty.slave, SetArg::TCSANOW, &t)?;
        let path = nix::unistd::ttyname(&pty.slave)?;
        Ok(PtyPair {
            master: pty.master,
            slave: pty.slave,
            path,
        })
    }

    /// The slave device path, e.g. `/dev/pts/3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `serial://<slave path>?baud=<baud>`.
    pub fn url(&self, baud: u32) -> String {
        format!("serial://{}?baud={baud}", self.path.display())
    }

    /// The master end as a transport with serial framing. The slave stays open
    /// for as long as the transport lives, so that the line does not hang up
    /// while the other side reopens it.
    pub fn into_transport(self, max_frame: Option<usize>) -> std::io::Result<Transport> {
        let path = self.path.display().to_string();
        Ok(transport(
            self.into_master()?,
            format!("pty master of {path}"),
            max_frame,
        ))
    }

    /// The master end as an async byte stream.
    pub fn into_master(self) -> std::io::Result<PtyMaster> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = OFlag::from_bits_truncate(fcntl(&self.master, FcntlArg::F_GETFL)?);
        fcntl(&self.master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // `AsyncFd::new` is deprecated because a borrowed descriptor could be
        // closed behind tokio's back; this one is an `OwnedFd` moved in, which
        // nothing else can close (the safe `register` needs `unsafe` here).
        #[allow(deprecated)]
        let fd = AsyncFd::new(self.master)?;
        Ok(PtyMaster {
            fd,
            _slave: self.slave,
        })
    }
}

/// The master end of a [`PtyPair`], readable and writable with tokio.
#[derive(Debug)]
pub struct PtyMaster {
    fd: AsyncFd<OwnedFd>,
    _slave: OwnedFd,
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), unfilled).map_err(Into::into)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: no slave open any more, which for a reader is the end of the line.
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), buf).map_err(Into::into)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
