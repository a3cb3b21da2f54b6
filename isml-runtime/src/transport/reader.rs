//! The receiving half of byte-stream transports: a `Stream` of decoded frames.
//!
//! Unlike `FramedRead`, it holds no buffer while nothing is arriving. It
//! reads first into a small buffer on the stack, and only when bytes come
//! does it take a heap buffer, which it lets go again once every complete
//! frame has been decoded from it (the frames keep their own references to
//! the bytes). An idle connection therefore costs no read buffer at all,
//! while a busy one reads in large chunks: each read that fills all the
//! room it was given doubles the next buffer, up to 64 KiB, and a read that
//! drains the socket before filling it starts again from 8 KiB (and from
//! the stack buffer once nothing is left).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::codec::Decoder;

use super::TransportError;
use crate::codec::FrameError;

/// The stack buffer of the first read after the heap buffer was released.
const FIRST_READ: usize = 512;
/// Heap buffer taken when bytes arrive; reads ask for at least this much.
const READ_SIZE: usize = 8 * 1024;
/// Largest read at once.
const MAX_READ: usize = 64 * 1024;

pub(crate) struct FrameReader<R, D> {
    io: R,
    decoder: D,
    buf: BytesMut,
    eof: bool,
    done: bool,
    /// The peer, named in errors.
    peer: String,
    /// The size of the next heap buffer: [`READ_SIZE`], doubled by every
    /// read that fills its room, up to [`MAX_READ`].
    read_size: usize,
}

impl<R, D> FrameReader<R, D> {
    pub(crate) fn new(io: R, decoder: D, peer: String) -> Self {
        FrameReader {
            io,
            decoder,
            buf: BytesMut::new(),
            eof: false,
            done: false,
            peer,
            read_size: READ_SIZE,
        }
    }
}

/// What a decoder knows of the frame it is receiving.
pub(crate) trait FrameRest {
    /// Bytes still missing from the frame being received, given `buffered`
    /// bytes of it in the buffer; `None` when not known (between frames, or
    /// a framing without a length prefix).
    fn frame_rest(&self, buffered: usize) -> Option<usize> {
        let _ = buffered;
        None
    }
}

impl<R: AsyncRead + Unpin, D: Decoder + FrameRest> FrameReader<R, D> {
    /// Reads once; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() == 0 && self.read_size == READ_SIZE {
            let mut first = [0u8; FIRST_READ];
            let mut rb = ReadBuf::new(&mut first);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut rb))?;
            let got = rb.filled();
            if got.len() == FIRST_READ {
                // More is coming: read on in a large buffer.
                self.buf.reserve(READ_SIZE);
                self.buf.extend_from_slice(got);
            } else if !got.is_empty() {
                // A short read drained the socket: a buffer of just this size
                // (usually whole frames; a partial one grows it on the next read).
                self.buf = BytesMut::from(got);
            }
            return Poll::Ready(Ok(got.len()));
        }
        let len = self.buf.len();
        let room = self.buf.capacity() - len;
        // A frame whose length is known and whose rest fits the room is read
        // into that room: the decoder has sized the buffer for it, and growing
        // would double it (a peer sending most of a frame and stopping would
        // hold twice what it sent). Otherwise keep room for a large read.
        let fits = self
            .decoder
            .frame_rest(len)
            .is_some_and(|rest| rest > 0 && rest <= room);
        if room == 0 || (room < FIRST_READ && !fits) {
            self.buf.reserve(self.read_size.max(len));
        }
        // Read into the buffer's spare room as it is (tokio-util's
        // `poll_read_buf`), rather than zero up to 64 KiB first, as a read
        // through a safe slice must.
        let room = (self.buf.capacity() - len).min(MAX_READ);
        let mut limited = (&mut self.buf).limit(room);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut limited
        ))?;
        // More was waiting than the room took: read more at once next
        // time. Less: the socket is drained, the next buffer small again.
        self.read_size = if n == room {
            (self.read_size * 2).min(MAX_READ)
        } else {
            READ_SIZE
        };
        Poll::Ready(Ok(n))
    }
}

/// Errors are the transport's, made here (rather than by mapping the
/// stream): a received frame is moved once less on its way to the session.
impl<R, D> Stream for FrameReader<R, D>
where
    R: AsyncRead + Unpin,
    D: Decoder<Error = FrameError> + FrameRest + Unpin,
{
    type Item = Result<D::Item, TransportError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let error = |peer: &str, e: FrameError| TransportError::from_frame(peer, e);
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if this.eof {
                // What is left must be whole frames; the decoder says so.
                return match this.decoder.decode_eof(&mut this.buf) {
                    Ok(Some(frame)) => Poll::Ready(Some(Ok(frame))),
                    Ok(None) => {
                        this.done = true;
                        Poll::Ready(None)
                    }
                    Err(e) => {
                        this.done = true;
                        Poll::Ready(Some(Err(error(&this.peer, e))))
                    }
                };
            }
            if !this.buf.is_empty() {
                match this.decoder.decode(&mut this.buf) {
                    Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                    Ok(None) => {}
                    Err(e) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(error(&this.peer, e))));
                    }
                }
            }
            if this.buf.is_empty() && this.buf.capacity() > 0 {
                // Every complete frame is out: let the buffer go.
                this.buf = BytesMut::new();
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) => this.eof = true,
                Ok(_) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(error(&this.peer, e.into()))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::StreamCodec;
    use crate::wire::{Frame, FrameHeader};
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio_util::codec::Encoder;

    fn frames(n: usize, size: usize) -> (Vec<Frame>, Vec<u8>) {
        let mut codec = StreamCodec::new();
        let mut bytes = BytesMut::new();
        let frames: Vec<Frame> = (0..n)
            .map(|i| {
                let payload = vec![i as u8; size + i % 7];
                Frame::new(FrameHeader::one_way(i as u32 % 100 + 1), payload)
            })
            .collect();
        for f in &frames {
            codec.encode(f, &mut bytes).unwrap();
        }
        (frames, bytes.to_vec())
    }

    #[tokio::test]
    async fn frames_split_at_every_position_come_out_whole() {
        let (want, bytes) = frames(3, 20);
        for cut in 0..=bytes.len() {
            let (mut a, b) = tokio::io::duplex(4096);
            let mut reader = FrameReader::new(b, StreamCodec::new(), "test".to_owned());
            a.write_all(&bytes[..cut]).await.unwrap();
            a.flush().await.unwrap();
            let writer = tokio::spawn({
                let rest = bytes[cut..].to_vec();
                async move {
                    tokio::task::yield_now().await;
                    a.write_all(&rest).await.unwrap();
                }
            });
            for f in &want {
                assert_eq!(reader.next().await.unwrap().unwrap(), *f, "cut at {cut}");
            }
            writer.await.unwrap();
            assert!(reader.next().await.is_none(), "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn large_frames_and_many_small_ones_pass() {
        let (small, mut bytes) = frames(5_000, 3);
        let (big, big_bytes) = frames(3, 100_000);
        bytes.extend_from_slice(&big_bytes);
        let (mut a, b) = tokio::io::duplex(16 * 1024);
        let writer = tokio::spawn(async move { a.write_all(&bytes).await.unwrap() });
        let got: Vec<Frame> = FrameReader::new(b, StreamCodec::new(), "test".to_owned())
            .map(Result::unwrap)
            .collect()
            .await;
        writer.await.unwrap();
        assert_eq!(got.len(), small.len() + big.len());
        assert!(
            got.iter()
                .zip(small.iter().chain(&big))
                .all(|(g, w)| g == w)
        );
    }

    #[tokio::test]
    async fn an_idle_reader_holds_no_buffer_and_a_cut_frame_is_an_error() {
        let (mut a, b) = tokio::io::duplex(1024);
        let mut reader = FrameReader::new(b, StreamCodec::new(), "test".to_owned());
        let (want, bytes) = frames(1, 10);
        a.write_all(&bytes).await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), want[0]);
        assert!(futures_util::FutureExt::now_or_never(reader.next()).is_none());
        assert_eq!(reader.buf.capacity(), 0);
        a.write_all(&bytes[..bytes.len() - 1]).await.unwrap();
        drop(a);
        assert!(reader.next().await.unwrap().is_err());
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn a_backlog_is_read_in_growing_buffers_and_a_drained_socket_starts_small() {
        let (want, bytes) = frames(2_000, 280);
        let (mut a, b) = tokio::io::duplex(1 << 20);
        a.write_all(&bytes).await.unwrap();
        let mut reader = FrameReader::new(b, StreamCodec::new(), "test".to_owned());
        let mut largest = 0;
        for f in &want {
            assert_eq!(reader.next().await.unwrap().unwrap(), *f);
            largest = largest.max(reader.read_size);
        }
        // The backlog was read in buffers growing to 64 KiB.
        assert_eq!(largest, MAX_READ);
        assert_eq!(
            reader.read_size, READ_SIZE,
            "the last read drained the pipe"
        );
        // Then a small frame is read on the stack again, and nothing is kept.
        let (one, bytes) = frames(1, 10);
        a.write_all(&bytes).await.unwrap();
        assert_eq!(reader.next().await.unwrap().unwrap(), one[0]);
        assert!(futures_util::FutureExt::now_or_never(reader.next()).is_none());
        assert_eq!(reader.buf.capacity(), 0);
    }
}
