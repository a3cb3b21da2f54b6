//! The isml wire format v1: varints, frame headers, stream and serial framing,
//! and the payload primitives generated code is built from.
//!
//! This module has no I/O and no tokio: it only needs `core`, `alloc` and the
//! `bytes` crate, so that it can serve `no_std` devices. The normative
//! description of the bytes is `docs/wire-format.md`.
//!
//! ```
//! use bytes::BytesMut;
//! use isml_runtime::wire::{FrameHeader, StreamDecoder, put_stream_frame};
//!
//! let mut buf = BytesMut::new();
//! put_stream_frame(&mut buf, &FrameHeader::one_way(3), &[1, 2, 3], 1024).unwrap();
//! assert_eq!(&buf[..], &[0x03, 0x03, 1, 2, 3]);
//!
//! let frame = StreamDecoder::new(1024).decode(&mut buf).unwrap().unwrap();
//! assert_eq!(frame.header, FrameHeader::one_way(3));
//! assert_eq!(&frame.payload[..], &[1, 2, 3]);
//! ```

mod class;
mod error;
mod fragment;
mod frame;
mod header;
mod reader;
mod serial;
pub mod varint;
pub mod write;

pub use class::{Class, MAX_PRESENCE_LEN, MAX_TAG, Presence, PresenceWriter};
pub use error::{DecodeError, EncodeError};
pub use fragment::{Assembled, FragmentError, Fragmenter, Reassembler};
pub use frame::{Frame, StreamDecoder, put_stream_frame, put_stream_head, stream_frame_len};
pub use header::{ControlOp, ErrorBody, FrameHeader, FrameKind};
pub use reader::Reader;
pub use serial::{
    Addressing, BROADCAST, CRC32C, DEFAULT_MAX_SERIAL_FRAME, SerialDecoder, SerialFrame,
    cobs_decode, cobs_max_len, put_serial_frame,
};

/// Decoding limits (wire format §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame (header and payload) accepted, in bytes.
    pub max_frame: usize,
    /// Deepest nesting of messages, unions, lists, maps, arrays and optionals.
    pub max_depth: u32,
}

impl Limits {
    /// 1 MiB frames, 32 levels of nesting.
    pub const DEFAULT: Limits = Limits {
        max_frame: 1024 * 1024,
        max_depth: 32,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
