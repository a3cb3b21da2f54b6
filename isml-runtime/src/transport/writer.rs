//! The sending half of byte-stream transports: frames are encoded into one
//! buffer and written on flush, so that a batch leaves in few system calls.
//! Unlike `FramedWrite` it starts with no buffer and gives a large one back
//! after flushing, so that an idle session holds almost no memory.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, BytesMut};
use futures_util::Sink;
use tokio::io::AsyncWrite;
use tokio_util::codec::Encoder;

use crate::codec::FrameError;
use crate::wire::Frame;

/// Buffered bytes above which `poll_ready` writes before accepting more.
const BOUNDARY: usize = 64 * 1024;
/// Capacity kept after a flush; a larger buffer is released.
const KEEP: usize = 4 * 1024;

pub(crate) struct FrameWriter<W, E> {
    io: W,
    encoder: E,
    buf: BytesMut,
}

impl<W, E> FrameWriter<W, E> {
    pub(crate) fn new(io: W, encoder: E) -> Self {
        FrameWriter {
            io,
            encoder,
            buf: BytesMut::new(),
        }
    }
}

impl<W: AsyncWrite + Unpin, E: Unpin> FrameWriter<W, E> {
    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        while !self.buf.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf))?;
            if n == 0 {
                return Poll::Ready(Err(FrameError::Io(std::io::ErrorKind::WriteZero.into())));
            }
            self.buf.advance(n);
        }
        if self.buf.capacity() > KEEP {
            self.buf = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<W, E> Sink<Frame> for FrameWriter<W, E>
where
    W: AsyncWrite + Unpin,
    E: for<'a> Encoder<&'a Frame, Error = FrameError> + Unpin,
{
    type Error = FrameError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        if this.buf.len() >= BOUNDARY {
            ready!(this.poll_write_all(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Frame) -> Result<(), FrameError> {
        let this = self.get_mut();
        this.encoder.encode(&item, &mut this.buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        let this = self.get_mut();
        ready!(this.poll_write_all(cx))?;
        Pin::new(&mut this.io).poll_flush(cx).map_err(Into::into)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        ready!(self.as_mut().poll_flush(cx))?;
        Pin::new(&mut self.get_mut().io)
            .poll_shutdown(cx)
            .map_err(Into::into)
    }
}
