//! tokio-util codecs for the stream and serial framings.
//!
//! ```
//! use futures_util::{SinkExt, StreamExt};
//! use isml_runtime::codec::StreamCodec;
//! use isml_runtime::wire::{Frame, FrameHeader};
//! use tokio_util::codec::Framed;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let (a, b) = tokio::io::duplex(1024);
//! let mut tx = Framed::new(a, StreamCodec::builder().max_frame_len(64 * 1024).build());
//! let mut rx = Framed::new(b, StreamCodec::new());
//! tx.send(Frame::new(FrameHeader::request(2, 7), &b"hi"[..])).await.unwrap();
//! let frame = rx.next().await.unwrap().unwrap();
//! assert_eq!(frame.header, FrameHeader::request(2, 7));
//! # });
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::wire::{
    Addressing, DEFAULT_MAX_SERIAL_FRAME, DecodeError, EncodeError, Frame, FrameHeader, Limits,
    SerialDecoder, SerialFrame, StreamDecoder, put_serial_frame, put_stream_frame, varint,
};

/// A receive limit shared between a decoder and its owner, who may change it
/// while the connection runs: a server accepts only small frames until the
/// handshake is done. A change applies from the next frame whose length
/// prefix has not been read.
#[derive(Debug, Clone)]
pub struct FrameLimit(Arc<AtomicUsize>);

impl FrameLimit {
    /// A limit of `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameLimit(Arc::new(AtomicUsize::new(max_frame.max(1))))
    }

    /// The current limit.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Changes the limit.
    pub fn set(&self, max_frame: usize) {
        self.0.store(max_frame.max(1), Ordering::Relaxed);
    }
}

/// Errors of the framing codecs.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The underlying transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent bytes that are not a valid frame.
    #[error("bad frame from peer: {0}")]
    Decode(#[from] DecodeError),
    /// A frame could not be encoded.
    #[error("cannot encode frame: {0}")]
    Encode(#[from] EncodeError),
}

/// Length-prefixed framing for byte streams (TCP, TLS, in-memory, WebSocket payloads).
#[derive(Debug, Clone)]
pub struct StreamCodec {
    decoder: StreamDecoder,
    max_frame: usize,
    receive_limit: Option<FrameLimit>,
}

impl Default for StreamCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCodec {
    /// A codec with the default limits ([`Limits::DEFAULT`]).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to set limits.
    pub fn builder() -> StreamCodecBuilder {
        StreamCodecBuilder {
            max_frame: Limits::DEFAULT.max_frame,
            receive_limit: None,
        }
    }

    /// The largest frame this codec sends (and accepts, unless a shared
    /// receive limit says otherwise).
    pub fn max_frame_len(&self) -> usize {
        self.max_frame
    }

    /// The shared receive limit, when the codec was built with one.
    pub fn receive_limit(&self) -> Option<&FrameLimit> {
        self.receive_limit.as_ref()
    }
}

/// Configures a [`StreamCodec`].
#[derive(Debug, Clone)]
pub struct StreamCodecBuilder {
    max_frame: usize,
    receive_limit: Option<FrameLimit>,
}

impl StreamCodecBuilder {
    /// Largest frame (header and payload) sent or accepted; 1 MiB by default.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.max_frame = max.max(1);
        self
    }

    /// Accepts frames up to a limit that can change while the codec runs
    /// (it replaces the maximum for received frames; sent frames keep
    /// [`StreamCodecBuilder::max_frame_len`]).
    pub fn receive_limit(mut self, limit: FrameLimit) -> Self {
        self.receive_limit = Some(limit);
        self
    }

    /// Builds the codec.
    pub fn build(self) -> StreamCodec {
        let max_in = self
            .receive_limit
            .as_ref()
            .map_or(self.max_frame, FrameLimit::get);
        StreamCodec {
            decoder: StreamDecoder::new(max_in),
            max_frame: self.max_frame,
            receive_limit: self.receive_limit,
        }
    }
}

#[cfg(feature = "runtime")]
impl crate::transport::FrameRest for StreamCodec {
    fn frame_rest(&self, buffered: usize) -> Option<usize> {
        self.decoder
            .pending_len()
            .map(|len| len.saturating_sub(buffered))
    }
}

impl Decoder for StreamCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(limit) = &self.receive_limit {
            let max = limit.get();
            if max != self.decoder.max_frame() {
                self.decoder.set_max_frame(max);
            }
        }
        Ok(self.decoder.decode(src)?)
    }

    /// The stream ended: what is left must be whole frames. A frame cut off
    /// by the end is a protocol error (the peer sent part of a frame), not an
    /// i/o error.
    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() && self.decoder.pending_len().is_none() => Ok(None),
            None => Err(FrameError::Decode(truncated(
                src,
                self.decoder.pending_len(),
            ))),
        }
    }
}

/// The error for a stream that ended inside a frame: how many bytes were
/// there and how many more the length prefix announced.
fn truncated(src: &BytesMut, body: Option<usize>) -> DecodeError {
    let needed = match (body, varint::get(src, 0)) {
        (Some(len), _) => len.saturating_sub(src.len()),
        (None, Ok((len, n))) => (len as usize)
            .saturating_add(1 + n)
            .saturating_sub(src.len()),
        (None, Err(_)) => 1,
    }
    .max(1);
    DecodeError::UnexpectedEnd {
        at: src.len(),
        needed,
    }
}

impl Encoder<Frame> for StreamCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&item, dst)
    }
}

impl Encoder<&Frame> for StreamCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.reserve(item.len() + 10);
        put_stream_frame(dst, &item.header, &item.payload, self.max_frame)?;
        Ok(())
    }
}

/// COBS + CRC-32C framing for serial lines.
///
/// Decoding yields `Ok(Err(_))` items for corrupt or oversized frames: they are
/// dropped, the stream goes on, and the next good frame is decoded.
#[derive(Debug, Clone)]
pub struct SerialCodec {
    decoder: SerialDecoder,
    max_frame: usize,
    addressing: Addressing,
    send_address: Option<u8>,
}

impl Default for SerialCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl SerialCodec {
    /// A point-to-point codec with the default 4 KiB frame limit.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to set limits and addressing.
    pub fn builder() -> SerialCodecBuilder {
        SerialCodecBuilder {
            max_frame: DEFAULT_MAX_SERIAL_FRAME,
            addressing: Addressing::None,
            send_address: None,
        }
    }

    /// Sets the address written on outgoing frames (multi-drop buses only).
    pub fn set_send_address(&mut self, address: u8) {
        self.send_address = Some(address);
    }
}

/// Configures a [`SerialCodec`].
#[derive(Debug, Clone)]
pub struct SerialCodecBuilder {
    max_frame: usize,
    addressing: Addressing,
    send_address: Option<u8>,
}

impl SerialCodecBuilder {
    /// Largest frame (header and payload) sent or accepted; 4 KiB by default.
    pub fn max_frame_len(mut self, max: usize) -> Self {
        self.max_frame = max.max(1);
        self
    }

    /// Multi-drop addressing: which incoming frames to accept, and the address
    /// written on outgoing frames (for a device: its own address; for a bus
    /// master: set per frame with [`SerialCodec::set_send_address`]).
    pub fn addressing(mut self, addressing: Addressing, send_address: u8) -> Self {
        self.addressing = addressing;
        self.send_address = match addressing {
            Addressing::None => None,
            _ => Some(send_address),
        };
        self
    }

    /// Builds the codec.
    pub fn build(self) -> SerialCodec {
        SerialCodec {
            decoder: SerialDecoder::new(self.max_frame, self.addressing),
            max_frame: self.max_frame,
            addressing: self.addressing,
            send_address: self.send_address,
        }
    }
}

impl Decoder for SerialCodec {
    type Item = Result<SerialFrame, DecodeError>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        Ok(self.decoder.decode(src).transpose())
    }
}

impl Encoder<&Frame> for SerialCodec {
    type Error = FrameError;

    fn encode(&mut self, item: &Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        let address = match self.addressing {
            Addressing::None => None,
            _ => self.send_address,
        };
        put_serial_frame(dst, address, &item.header, &item.payload, self.max_frame)?;
        Ok(())
    }
}

impl Encoder<Frame> for SerialCodec {
    type Error = FrameError;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&item, dst)
    }
}

impl Encoder<(FrameHeader, &[u8])> for StreamCodec {
    type Error = FrameError;

    fn encode(
        &mut self,
        (header, payload): (FrameHeader, &[u8]),
        dst: &mut BytesMut,
    ) -> Result<(), FrameError> {
        dst.reserve(header.encoded_len() + payload.len() + 10);
        put_stream_frame(dst, &header, payload, self.max_frame)?;
        Ok(())
    }
}
