//! Errors of the wire codec.

use alloc::boxed::Box;
use alloc::string::String;

/// Why bytes could not be decoded. Offsets (`at`) are byte positions in the
/// buffer handed to the decoder (the frame payload, or the frame for headers).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("unexpected end of input at byte {at}: {needed} more byte(s) needed")]
    UnexpectedEnd {
        /// Offset of the end.
        at: usize,
        /// How many more bytes were needed at least.
        needed: usize,
    },
    /// A varint longer than ten bytes or above 2^64-1.
    #[error("varint at byte {at} overflows 64 bits")]
    VarintOverflow {
        /// Offset of the varint.
        at: usize,
    },
    /// A varint written with more bytes than needed.
    #[error("non-canonical varint at byte {at}: written longer than needed")]
    NonCanonicalVarint {
        /// Offset of the varint.
        at: usize,
    },
    /// A declared length that exceeds the bytes that remain.
    #[error("length {len} at byte {at} exceeds the {remaining} byte(s) remaining")]
    LengthOutOfBounds {
        /// Offset of the length varint.
        at: usize,
        /// The declared length.
        len: u64,
        /// Bytes left in the enclosing content.
        remaining: usize,
    },
    /// An integer that does not fit its declared type.
    #[error("integer {value} at byte {at} does not fit in {ty}")]
    IntegerOutOfRange {
        /// Offset of the integer.
        at: usize,
        /// The value as read (zigzag-decoded values are shown as their varint).
        value: u64,
        /// The Rust type it had to fit.
        ty: &'static str,
    },
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in string at byte {at}")]
    InvalidUtf8 {
        /// Offset of the first string byte.
        at: usize,
    },
    /// A bool other than 0 or 1.
    #[error("invalid bool {value} at byte {at}: expected 0 or 1")]
    InvalidBool {
        /// Offset of the value.
        at: usize,
        /// The value found.
        value: u64,
    },
    /// Nesting deeper than the configured limit.
    #[error("nesting deeper than {max} levels at byte {at}")]
    DepthExceeded {
        /// Offset where the limit was crossed.
        at: usize,
        /// The configured limit.
        max: u32,
    },
    /// A frame longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The announced or accumulated frame length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// Extension-byte flags that v1 does not define.
    #[error("reserved header flags {flags:#04x} set at byte {at}")]
    ReservedFlags {
        /// Offset of the extension byte.
        at: usize,
        /// The extension byte.
        flags: u8,
    },
    /// A link frame with an opcode v1 does not define.
    #[error("unknown link opcode {opcode} at byte {at}")]
    UnknownLinkOpcode {
        /// Offset of the lead byte.
        at: usize,
        /// The opcode.
        opcode: u8,
    },
    /// A header written in a form other than the canonical one.
    #[error("non-canonical frame header at byte {at}: {reason}")]
    NonCanonicalHeader {
        /// Offset of the offending byte.
        at: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A type id of 0 or above 2^32-1.
    #[error("invalid message type id {value} at byte {at}")]
    InvalidTypeId {
        /// Offset of the type id.
        at: usize,
        /// The value found.
        value: u64,
    },
    /// A presence bitmap that breaks the rules of §5.2.
    #[error("bad presence bitmap at byte {at}: {reason}")]
    BadPresence {
        /// Offset of the bitmap.
        at: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A known field or variant written with a class that does not match its type.
    #[error("tag {tag} at byte {at} has wire class {found}, expected {expected}")]
    ClassMismatch {
        /// Offset of the value.
        at: usize,
        /// The field or variant tag.
        tag: u32,
        /// The class of the declared type.
        expected: u8,
        /// The class on the wire.
        found: u8,
    },
    /// A union key with class 0.
    #[error("union key at byte {at} has class 0")]
    UnionClassAbsent {
        /// Offset of the key.
        at: usize,
    },
    /// A union variant this reader does not know.
    #[error("unknown union variant tag {tag} at byte {at}")]
    UnknownVariant {
        /// Offset of the key.
        at: usize,
        /// The tag.
        tag: u64,
    },
    /// Map keys that are duplicated or not in ascending order.
    #[error("map key at byte {at} is not greater than the previous key")]
    MapKeyOrder {
        /// Offset of the key.
        at: usize,
    },
    /// Content of a fixed-size value that is too short or too long.
    #[error("content at byte {at} has {found} byte(s) left over or missing for {what}")]
    ContentLength {
        /// Offset of the content.
        at: usize,
        /// What was being read.
        what: &'static str,
        /// Bytes left over (or missing) after the value.
        found: usize,
    },
    /// A length-delimited list of fixed-width elements whose length is not a multiple of the width.
    #[error("list at byte {at} of {len} bytes is not a whole number of {width}-byte elements")]
    RaggedList {
        /// Offset of the content.
        at: usize,
        /// Content length.
        len: usize,
        /// Element width.
        width: usize,
    },
    /// A value longer than its `max_len`.
    #[error("length {len} exceeds max_len {max}")]
    MaxLen {
        /// The length found (bytes, elements or entries).
        len: usize,
        /// The limit.
        max: u64,
    },
    /// A number outside its `range`.
    #[error("value {value} is outside range {min}..={max}")]
    Range {
        /// The value, formatted.
        value: String,
        /// Lower bound.
        min: i128,
        /// Upper bound.
        max: i128,
    },
    /// A serial frame that failed its CRC or COBS decoding.
    #[error("corrupt serial frame: {reason}")]
    CorruptFrame {
        /// What failed.
        reason: &'static str,
    },
    /// A frame whose message type is not in the receiver's dispatch table.
    #[error("unknown message type id {type_id}")]
    UnknownMessageType {
        /// The type id from the header.
        type_id: u32,
    },
    /// A frame kind that does not carry the expected payload.
    #[error("frame kind {kind} does not carry a message")]
    NotAMessage {
        /// The kind.
        kind: &'static str,
    },
    /// An error inside a field of a message (or variant of a union).
    #[error("in `{message}.{field}`: {source}")]
    InField {
        /// The message or union type name.
        message: &'static str,
        /// The field or variant name.
        field: &'static str,
        /// What went wrong.
        source: Box<DecodeError>,
    },
}

impl DecodeError {
    /// Wraps this error with the message and field it occurred in.
    #[cold]
    pub fn in_field(self, message: &'static str, field: &'static str) -> Self {
        DecodeError::InField {
            message,
            field,
            source: Box::new(self),
        }
    }

    /// The innermost error, below any [`DecodeError::InField`] wrappers.
    pub fn root(&self) -> &DecodeError {
        match self {
            DecodeError::InField { source, .. } => source.root(),
            other => other,
        }
    }
}

/// Why a value could not be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    /// A value longer than its field's `max_len`.
    #[error("`{message}.{field}`: length {len} exceeds max_len {max}")]
    MaxLen {
        /// The message or union type name.
        message: &'static str,
        /// The field name.
        field: &'static str,
        /// The length found.
        len: usize,
        /// The limit.
        max: u64,
    },
    /// A number outside its field's `range`.
    #[error("`{message}.{field}`: value {value} is outside range {min}..={max}")]
    Range {
        /// The message or union type name.
        message: &'static str,
        /// The field name.
        field: &'static str,
        /// The value, formatted.
        value: String,
        /// Lower bound.
        min: i128,
        /// Upper bound.
        max: i128,
    },
    /// A header whose fields do not fit its kind (type id 0 where one is required).
    #[error("invalid frame header: {reason}")]
    InvalidHeader {
        /// What was wrong.
        reason: &'static str,
    },
    /// A frame longer than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The frame length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A value that cannot be represented: an unknown union variant or enum with no bytes.
    #[error("`{message}`: {reason}")]
    Unrepresentable {
        /// The type name.
        message: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
}
