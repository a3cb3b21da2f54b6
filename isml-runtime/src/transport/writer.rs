//! The sending half of byte-stream transports: frames are encoded into one
//! buffer and written on flush, so that a batch leaves in few system calls.
//! Unlike `FramedWrite` it starts with no buffer and gives a large one back
//! after flushing, so that an idle session holds almost no memory.
//! With the stream codec it also takes frames already encoded
//! ([`EncodedSink`]): their bytes are kept as they are, in order with the
//! buffer, and written with it in one vectored write where the I/O object
//! has them.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::Sink;
use tokio::io::AsyncWrite;
use tokio_util::codec::Encoder;

use super::{EncodedSink, TransportError};
use crate::codec::{FrameError, StreamCodec};
use crate::wire::Frame;

/// Buffered bytes above which `poll_ready` writes before accepting more.
const BOUNDARY: usize = 64 * 1024;
/// Capacity kept after a flush; a larger buffer is released.
const KEEP: usize = 4 * 1024;
/// The most pieces (pre-encoded chunks and the buffer) of one vectored write.
const MAX_SLICES: usize = 16;

pub(crate) struct FrameWriter<W, E> {
    io: W,
    encoder: E,
    /// Pre-encoded frames, and what the buffer held before them, to be
    /// written before `buf`.
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    chunked: usize,
    buf: BytesMut,
    /// The peer's address, for errors.
    peer: String,
}

impl<W, E> FrameWriter<W, E> {
    pub(crate) fn new(io: W, encoder: E, peer: String) -> Self {
        FrameWriter {
            io,
            encoder,
            chunks: VecDeque::new(),
            chunked: 0,
            buf: BytesMut::new(),
            peer,
        }
    }

    fn error(&self, e: FrameError) -> TransportError {
        TransportError::from_frame(&self.peer, e)
    }
}

impl<W: AsyncWrite + Unpin, E: Unpin> FrameWriter<W, E> {
    fn poll_write_all(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), FrameError>> {
        while !self.chunks.is_empty() {
            let n = if self.io.is_write_vectored() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut k = 0;
                for c in self.chunks.iter().take(MAX_SLICES) {
                    slices[k] = IoSlice::new(c);
                    k += 1;
                }
                if k < MAX_SLICES && !self.buf.is_empty() {
                    slices[k] = IoSlice::new(&self.buf);
                    k += 1;
                }
                ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..k]))?
            } else {
                let first = self.chunks.front().map_or(&[][..], |c| &c[..]);
                ready!(Pin::new(&mut self.io).poll_write(cx, first))?
            };
            if n == 0 {
                return Poll::Ready(Err(FrameError::Io(std::io::ErrorKind::WriteZero.into())));
            }
            self.advance(n);
        }
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

    /// Drops `n` written bytes: from the chunks first, then the buffer.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(c) = self.chunks.front_mut() else {
                self.buf.advance(n);
                return;
            };
            let k = n.min(c.len());
            c.advance(k);
            self.chunked -= k;
            n -= k;
            if c.is_empty() {
                self.chunks.pop_front();
            }
        }
    }
}

impl<W, E> Sink<Frame> for FrameWriter<W, E>
where
    W: AsyncWrite + Unpin,
    E: for<'a> Encoder<&'a Frame, Error = FrameError> + Unpin,
{
    type Error = TransportError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let this = self.get_mut();
        if this.chunked + this.buf.len() >= BOUNDARY {
            ready!(this.poll_write_all(cx)).map_err(|e| this.error(e))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Frame) -> Result<(), TransportError> {
        let this = self.get_mut();
        this.encoder
            .encode(&item, &mut this.buf)
            .map_err(|e| this.error(e))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let this = self.get_mut();
        ready!(this.poll_write_all(cx)).map_err(|e| this.error(e))?;
        Pin::new(&mut this.io)
            .poll_flush(cx)
            .map_err(|e| this.error(e.into()))
    }

    fn poll_close(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TransportError>> {
        ready!(self.as_mut().poll_flush(cx))?;
        let this = self.get_mut();
        Pin::new(&mut this.io)
            .poll_shutdown(cx)
            .map_err(|e| this.error(e.into()))
    }
}

impl<W> EncodedSink for FrameWriter<W, StreamCodec>
where
    W: AsyncWrite + Send + Unpin,
{
    fn max_frame(&self) -> usize {
        self.encoder.max_frame_len()
    }

    fn start_send_encoded(self: Pin<&mut Self>, bytes: Bytes) -> Result<(), TransportError> {
        let this = self.get_mut();
        if bytes.is_empty() {
            return Ok(());
        }
        // What the buffer holds goes first; the buffer keeps its room.
        if !this.buf.is_empty() {
            let before = this.buf.split().freeze();
            this.chunked += before.len();
            this.chunks.push_back(before);
        }
        this.chunked += bytes.len();
        this.chunks.push_back(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EncodedSink, FrameTx, Transport};
    use super::*;
    use crate::wire::{ControlOp, FrameHeader, put_stream_frame};
    use futures_util::{SinkExt, StreamExt, future::poll_fn};
    use tokio_util::codec::Decoder;

    /// Takes at most 7 bytes a write, vectored or not.
    struct Trickle {
        out: Vec<u8>,
        vectored: bool,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(7);
            self.get_mut().out.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let this = self.get_mut();
            let mut n = 0;
            for b in bufs {
                let k = b.len().min(7 - n);
                this.out.extend_from_slice(&b[..k]);
                n += k;
            }
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            self.vectored
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn chunks_and_the_buffer_are_written_in_order_through_short_writes() {
        let deliver = FrameHeader::control(ControlOp::Deliver);
        let frames: Vec<Frame> = (0..8u8)
            .map(|i| Frame::new(deliver, Bytes::from(vec![i; 5 + 3 * usize::from(i)])))
            .collect();
        let encoded = |f: &Frame| {
            let mut b = Vec::new();
            put_stream_frame(&mut b, &f.header, &f.payload, 1 << 20).unwrap();
            Bytes::from(b)
        };
        for vectored in [true, false] {
            let io = Trickle {
                out: Vec::new(),
                vectored,
            };
            let mut w = FrameWriter::new(io, StreamCodec::new(), "peer".into());
            // Frames and encoded chunks, alternating irregularly.
            for (i, f) in frames.iter().enumerate() {
                poll_fn(|cx| Pin::new(&mut w).poll_ready(cx)).await.unwrap();
                if i % 3 == 1 {
                    Pin::new(&mut w).start_send_encoded(encoded(f)).unwrap();
                } else {
                    Pin::new(&mut w).start_send(f.clone()).unwrap();
                }
            }
            Pin::new(&mut w).start_send_encoded(Bytes::new()).unwrap();
            poll_fn(|cx| Pin::new(&mut w).poll_flush(cx)).await.unwrap();
            assert!(w.chunks.is_empty() && w.chunked == 0 && w.buf.is_empty());
            let mut out = BytesMut::from(&w.io.out[..]);
            let mut codec = StreamCodec::new();
            for f in &frames {
                assert_eq!(codec.decode(&mut out).unwrap().as_ref(), Some(f));
            }
            assert!(out.is_empty());
        }
    }

    fn frame(h: FrameHeader, payload: &'static [u8]) -> Frame {
        Frame::new(h, Bytes::from_static(payload))
    }

    #[tokio::test]
    async fn pre_encoded_frames_arrive_as_the_frames_they_encode() {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (_, mut tx, _) = Transport::from_io(a, "mem", "a".into(), None).split_tx();
        let (mut rx, _, _) = Transport::from_io(b, "mem", "b".into(), None).split();
        assert_eq!(tx.encoded_max(), crate::wire::Limits::DEFAULT.max_frame);
        let deliver = FrameHeader::control(ControlOp::Deliver);
        let sent = [
            frame(FrameHeader::one_way(1), b"before"),
            frame(deliver, b"first"),
            frame(deliver, &[0x80; 300]),
            frame(FrameHeader::one_way(2), b"after"),
        ];
        let mut encoded = Vec::new();
        for f in &sent[1..3] {
            put_stream_frame(&mut encoded, &f.header, &f.payload, 1 << 20).unwrap();
        }
        tx.feed(sent[0].clone()).await.unwrap();
        poll_fn(|cx| tx.as_mut().poll_ready(cx)).await.unwrap();
        tx.as_mut()
            .start_send_encoded(Bytes::from(encoded.clone()))
            .unwrap();
        tx.send(sent[3].clone()).await.unwrap();
        for f in &sent {
            assert_eq!(&rx.next().await.unwrap().unwrap(), f);
        }
        // Any other sink refuses encoded bytes rather than write them as
        // they are.
        let sink = futures_util::sink::drain().sink_map_err(|never| match never {});
        let mut other = FrameTx::Frames(Box::pin(sink));
        assert_eq!(other.encoded_max(), 0);
        assert!(other.as_mut().start_send_encoded(encoded.into()).is_err());
    }
}
