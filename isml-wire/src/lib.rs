//! The isml wire format v1: varints, wire classes and presence fields, a
//! bounds-checked reader, frame headers, stream and serial framing,
//! fragmentation, and type fingerprints. The normative description of the
//! bytes is `docs/wire-format.md`.
//!
//! This crate has no I/O and depends only on `bytes`. It is `no_std`; the
//! `alloc` feature (on by default) adds what needs a heap: owned frames and
//! their decoders, serial framing, fragmentation, the field path in decode
//! errors and `range` errors, and canonical forms as strings. Without it the
//! varints, the [`Reader`], the encoding primitives, headers, CRC-32C and
//! [`canonical::fingerprint`] remain.
//!
//! `isml-runtime` re-exports this crate as `isml_runtime::wire`, and the code
//! the schema compiler generates uses it through that path.
//!
//! ```
//! # #[cfg(feature = "alloc")] {
//! use bytes::BytesMut;
//! use isml_wire::{FrameHeader, StreamDecoder, put_stream_frame};
//!
//! let mut buf = BytesMut::new();
//! put_stream_frame(&mut buf, &FrameHeader::one_way(3), &[1, 2, 3], 1024).unwrap();
//! assert_eq!(&buf[..], &[0x03, 0x03, 1, 2, 3]);
//!
//! let frame = StreamDecoder::new(1024).decode(&mut buf).unwrap().unwrap();
//! assert_eq!(frame.header, FrameHeader::one_way(3));
//! assert_eq!(&frame.payload[..], &[1, 2, 3]);
//! # }
//! ```
#![no_std]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod batch;
pub mod canonical;
mod class;
mod crc32c;
mod error;
#[cfg(feature = "alloc")]
mod fragment;
mod frame;
mod header;
mod reader;
#[cfg(feature = "alloc")]
mod serial;
pub mod utf8;
pub mod varint;
pub mod write;

pub use class::{Class, MAX_PRESENCE_LEN, MAX_TAG, MAX_UNION_TAG, Presence, PresenceWriter};
pub use crc32c::Crc32c;
pub use error::{DecodeError, EncodeError};
#[cfg(feature = "alloc")]
pub use error::{FieldError, OutOfRange};
#[cfg(feature = "alloc")]
pub use fragment::{Assembled, FragmentError, Fragmenter, Reassembler};
#[cfg(feature = "alloc")]
pub use frame::{Frame, StreamDecoder};
pub use frame::{put_stream_frame, put_stream_head, stream_frame_len};
pub use header::{Ack, CallHeader, ControlOp, Credit, ErrorBody, FrameHeader, FrameKind};
pub use reader::Reader;
#[cfg(feature = "alloc")]
pub use serial::{
    Addressing, BROADCAST, DEFAULT_MAX_SERIAL_FRAME, SerialDecoder, SerialFrame, cobs_decode,
    cobs_max_len, put_serial_frame,
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
