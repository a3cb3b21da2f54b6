//! Stream framing (wire format §3), without any I/O: the runtime's tokio-facing
//! codec drives this.

use bytes::BufMut;
#[cfg(feature = "alloc")]
use bytes::{Buf, Bytes, BytesMut};

#[cfg(feature = "alloc")]
use super::DecodeError;
use super::{EncodeError, FrameHeader, varint};

#[cfg(feature = "alloc")]
/// A received frame: its header and its payload, which shares the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The decoded header.
    pub header: FrameHeader,
    /// The payload after the header.
    pub payload: Bytes,
}

#[cfg(feature = "alloc")]
impl Frame {
    /// A frame from a header and a payload.
    pub fn new(header: FrameHeader, payload: impl Into<Bytes>) -> Self {
        Frame {
            header,
            payload: payload.into(),
        }
    }

    /// Decodes a whole frame (header and payload, without the stream length).
    pub fn decode(mut frame: Bytes) -> Result<Frame, DecodeError> {
        let (header, n) = FrameHeader::decode(&frame)?;
        let payload = if n < frame.len() {
            // The frame's own handle, moved past the header: no second
            // reference to the buffer to take and drop.
            frame.advance(n);
            frame
        } else {
            // Empty: keep no reference to the (shared) receive buffer.
            Bytes::new()
        };
        Ok(Frame { header, payload })
    }

    /// Bytes of header and payload (the frame without the stream length).
    pub fn len(&self) -> usize {
        self.header.encoded_len() + self.payload.len()
    }

    /// Whether the frame is empty; it never is: it always has a lead byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Frames longer than this get a buffer of their own, of exactly their size.
#[cfg(feature = "alloc")]
const EXACT_ABOVE: usize = 4096;

#[cfg(feature = "alloc")]
/// Incremental decoder of length-prefixed frames from a byte stream.
///
/// State machine: reading the length prefix, then waiting for the frame body.
/// The length is checked against the maximum before any frame byte is buffered.
/// Errors are fatal for the stream: a length-prefixed stream cannot resynchronise.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    max_frame: usize,
    state: StreamState,
}

#[cfg(feature = "alloc")]
#[derive(Debug, Clone, Copy)]
enum StreamState {
    Head,
    Body(usize),
}

#[cfg(feature = "alloc")]
impl StreamDecoder {
    /// A decoder that accepts frames of up to `max_frame` bytes (header and payload).
    pub fn new(max_frame: usize) -> Self {
        StreamDecoder {
            max_frame,
            state: StreamState::Head,
        }
    }

    /// The configured maximum frame length.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Changes the maximum for frames whose length prefix has not been read
    /// yet (a server accepts only small frames until the handshake is done).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The length of the frame being received, once its length prefix has
    /// been read and until its last byte has come; `None` between frames.
    pub fn pending_len(&self) -> Option<usize> {
        match self.state {
            StreamState::Body(len) => Some(len),
            StreamState::Head => None,
        }
    }

    /// Takes the next complete frame out of `src`, or `Ok(None)` if more bytes are needed.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let len = match self.state {
            StreamState::Body(len) => len,
            StreamState::Head => {
                let (l, n) = match varint::get(src, 0) {
                    Ok(v) => v,
                    Err(DecodeError::UnexpectedEnd { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                if l >= self.max_frame as u64 {
                    return Err(DecodeError::FrameTooLarge {
                        len: l.saturating_add(1),
                        max: self.max_frame,
                    });
                }
                let len = l as usize + 1;
                src.advance(n);
                if src.capacity() < len {
                    if len > EXACT_ABOVE {
                        // Room for exactly this frame: `reserve` would double
                        // the buffer, so a peer that sends most of a large
                        // frame and stops would hold twice what it sent.
                        let mut exact = BytesMut::with_capacity(len);
                        exact.extend_from_slice(src);
                        *src = exact;
                    } else {
                        // Small frames share a read buffer.
                        src.reserve(len - src.len());
                    }
                }
                self.state = StreamState::Body(len);
                len
            }
        };
        if src.len() < len {
            return Ok(None);
        }
        self.state = StreamState::Head;
        Frame::decode(src.split_to(len).freeze()).map(Some)
    }
}

/// Length of a frame on a stream: the length prefix, the header and the payload.
pub fn stream_frame_len(header: &FrameHeader, payload_len: usize) -> usize {
    let frame = header.encoded_len() + payload_len;
    varint::len(frame as u64 - 1) + frame
}

/// Writes the length prefix and the header of a frame whose payload of
/// `payload_len` bytes the caller writes next.
pub fn put_stream_head<B: BufMut + ?Sized>(
    buf: &mut B,
    header: &FrameHeader,
    payload_len: usize,
    max_frame: usize,
) -> Result<(), EncodeError> {
    header.validate()?;
    let len = header.encoded_len() + payload_len;
    if len > max_frame {
        return Err(EncodeError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    varint::put(buf, len as u64 - 1);
    header.encode(buf)
}

/// Writes a whole frame with its length prefix.
pub fn put_stream_frame<B: BufMut + ?Sized>(
    buf: &mut B,
    header: &FrameHeader,
    payload: &[u8],
    max_frame: usize,
) -> Result<(), EncodeError> {
    put_stream_head(buf, header, payload.len(), max_frame)?;
    buf.put_slice(payload);
    Ok(())
}
