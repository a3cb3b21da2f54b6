//! Errors of the wire codec.

use core::fmt;

#[cfg(feature = "alloc")]
use alloc::{boxed::Box, string::String};

/// Why bytes could not be decoded. Offsets (`at`) are byte positions in the
/// buffer handed to the decoder (the frame payload, or the frame for headers).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// The input ended inside a value.
    UnexpectedEnd {
        /// Offset of the end.
        at: usize,
        /// How many more bytes were needed at least.
        needed: usize,
    },
    /// A varint longer than ten bytes or above 2^64-1.
    VarintOverflow {
        /// Offset of the varint.
        at: usize,
    },
    /// A varint written with more bytes than needed.
    NonCanonicalVarint {
        /// Offset of the varint.
        at: usize,
    },
    /// A declared length that exceeds the bytes that remain.
    LengthOutOfBounds {
        /// Offset of the length varint.
        at: usize,
        /// The declared length.
        len: u64,
        /// Bytes left in the enclosing content.
        remaining: usize,
    },
    /// An integer that does not fit its declared type.
    IntegerOutOfRange {
        /// Offset of the integer.
        at: usize,
        /// The value as read (zigzag-decoded values are shown as their varint).
        value: u64,
        /// The Rust type it had to fit.
        ty: &'static str,
    },
    /// A string that is not UTF-8.
    InvalidUtf8 {
        /// Offset of the first string byte.
        at: usize,
    },
    /// A bool other than 0 or 1.
    InvalidBool {
        /// Offset of the value.
        at: usize,
        /// The value found.
        value: u64,
    },
    /// Nesting deeper than the configured limit.
    DepthExceeded {
        /// Offset where the limit was crossed.
        at: usize,
        /// The configured limit.
        max: u32,
    },
    /// A frame longer than the configured maximum.
    FrameTooLarge {
        /// The announced or accumulated frame length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// Extension-byte flags that v1 does not define.
    ReservedFlags {
        /// Offset of the extension byte.
        at: usize,
        /// The extension byte.
        flags: u8,
    },
    /// A link frame with an opcode v1 does not define.
    UnknownLinkOpcode {
        /// Offset of the lead byte.
        at: usize,
        /// The opcode.
        opcode: u8,
    },
    /// A header written in a form other than the canonical one.
    NonCanonicalHeader {
        /// Offset of the offending byte.
        at: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A type id of 0 or above 2^32-1.
    InvalidTypeId {
        /// Offset of the type id.
        at: usize,
        /// The value found.
        value: u64,
    },
    /// A presence bitmap that breaks the rules of §5.2.
    BadPresence {
        /// Offset of the bitmap.
        at: usize,
        /// What was wrong.
        reason: &'static str,
    },
    /// A known field or variant written with a class that does not match its type.
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
    UnionClassAbsent {
        /// Offset of the key.
        at: usize,
    },
    /// A union variant this reader does not know.
    UnknownVariant {
        /// Offset of the key.
        at: usize,
        /// The tag.
        tag: u64,
    },
    /// Map keys that are duplicated or not in ascending order.
    MapKeyOrder {
        /// Offset of the key.
        at: usize,
    },
    /// Length-delimited content whose length does not match the value it
    /// holds: bytes left over after the value (a body, an `f64`, an array,
    /// a frame body), or content that ends before the value does.
    ContentLength {
        /// Where the left-over bytes start, or where the too-short content
        /// starts.
        at: usize,
        /// What was being read: a message or union name, `f64`, `array`,
        /// `error body`...
        what: &'static str,
        /// How many bytes were left over, or (when `missing`) at least how
        /// many more the value needed.
        bytes: usize,
        /// Whether the content was too short (`bytes` missing) rather than
        /// too long (`bytes` left over).
        missing: bool,
    },
    /// A length-delimited list of fixed-width elements whose length is not a multiple of the width.
    RaggedList {
        /// Offset of the content.
        at: usize,
        /// Content length.
        len: usize,
        /// Element width.
        width: usize,
    },
    /// A value longer than its `max_len`.
    MaxLen {
        /// The length found (bytes, elements or entries).
        len: usize,
        /// The limit.
        max: u64,
    },
    /// A number outside its `range` (boxed: it is rare and large, and
    /// keeping it inline would make every `Result` of the decoder larger).
    #[cfg(feature = "alloc")]
    Range(Box<OutOfRange>),
    /// A serial frame that failed its CRC or COBS decoding.
    CorruptFrame {
        /// What failed.
        reason: &'static str,
    },
    /// A frame whose message type is not in the receiver's dispatch table.
    UnknownMessageType {
        /// The type id from the header.
        type_id: u32,
    },
    /// A frame kind that does not carry the expected payload.
    NotAMessage {
        /// The kind.
        kind: &'static str,
    },
    /// An error inside a field of a message (or variant of a union).
    #[cfg(feature = "alloc")]
    InField(Box<FieldError>),
}

/// The value and bounds of a [`DecodeError::Range`].
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfRange {
    /// The value, formatted.
    pub value: String,
    /// Lower bound.
    pub min: i128,
    /// Upper bound.
    pub max: i128,
}

/// A [`DecodeError`] and the field it occurred in ([`DecodeError::InField`]).
#[cfg(feature = "alloc")]
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// The message or union type name.
    pub message: &'static str,
    /// The field or variant name.
    pub field: &'static str,
    /// What went wrong.
    pub source: DecodeError,
}

impl DecodeError {
    /// Wraps this error with the message and field it occurred in. Without
    /// the `alloc` feature there is nowhere to keep the wrapper, and the
    /// error is returned unchanged.
    #[cold]
    pub fn in_field(self, message: &'static str, field: &'static str) -> Self {
        #[cfg(feature = "alloc")]
        {
            DecodeError::InField(Box::new(FieldError {
                message,
                field,
                source: self,
            }))
        }
        #[cfg(not(feature = "alloc"))]
        {
            let _ = (message, field);
            self
        }
    }

    /// The innermost error, below any [`DecodeError::InField`] wrappers.
    pub fn root(&self) -> &DecodeError {
        match self {
            #[cfg(feature = "alloc")]
            DecodeError::InField(f) => f.source.root(),
            other => other,
        }
    }
}

/// Why a value could not be encoded.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum EncodeError {
    /// A value longer than its field's `max_len`.
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
    #[cfg(feature = "alloc")]
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
    InvalidHeader {
        /// What was wrong.
        reason: &'static str,
    },
    /// A frame longer than the configured maximum.
    FrameTooLarge {
        /// The frame length.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A value nested deeper than decoders accept (wire format §7): every
    /// receiver would reject its encoding, so it is refused before writing.
    DepthExceeded {
        /// The nesting limit.
        max: u32,
    },
    /// An unknown union variant held by the caller (`Unknown { tag, class,
    /// bytes }`) that decoders would reject or read as another variant: it
    /// is refused before anything is written (wire format §5.5).
    InvalidUnknownVariant {
        /// The union type name.
        message: &'static str,
        /// The variant tag.
        tag: u64,
        /// What is wrong: class 0, a tag above 2^62-1, a tag the schema
        /// defines, or bytes that are not exactly one value of the class.
        reason: &'static str,
        /// Why the bytes are not one value of the class, when that is the
        /// problem (offsets are positions in the bytes).
        bytes_error: Option<DecodeError>,
    },
    /// A value that cannot be represented: an unknown union variant or enum with no bytes.
    Unrepresentable {
        /// The type name.
        message: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedEnd { at, needed } => write!(
                f,
                "unexpected end of input at byte {at}: {needed} more byte(s) needed"
            ),
            DecodeError::VarintOverflow { at } => {
                write!(f, "varint at byte {at} overflows 64 bits")
            }
            DecodeError::NonCanonicalVarint { at } => write!(
                f,
                "non-canonical varint at byte {at}: written longer than needed"
            ),
            DecodeError::LengthOutOfBounds { at, len, remaining } => write!(
                f,
                "length {len} at byte {at} exceeds the {remaining} byte(s) remaining"
            ),
            DecodeError::IntegerOutOfRange { at, value, ty } => {
                write!(f, "integer {value} at byte {at} does not fit in {ty}")
            }
            DecodeError::InvalidUtf8 { at } => write!(f, "invalid UTF-8 in string at byte {at}"),
            DecodeError::InvalidBool { at, value } => {
                write!(f, "invalid bool {value} at byte {at}: expected 0 or 1")
            }
            DecodeError::DepthExceeded { at, max } => {
                write!(f, "nesting deeper than {max} levels at byte {at}")
            }
            DecodeError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max} bytes")
            }
            DecodeError::ReservedFlags { at, flags } => {
                write!(f, "reserved header flags {flags:#04x} set at byte {at}")
            }
            DecodeError::UnknownLinkOpcode { at, opcode } => {
                write!(f, "unknown link opcode {opcode} at byte {at}")
            }
            DecodeError::NonCanonicalHeader { at, reason } => {
                write!(f, "non-canonical frame header at byte {at}: {reason}")
            }
            DecodeError::InvalidTypeId { at, value } => {
                write!(f, "invalid message type id {value} at byte {at}")
            }
            DecodeError::BadPresence { at, reason } => {
                write!(f, "bad presence bitmap at byte {at}: {reason}")
            }
            DecodeError::ClassMismatch {
                at,
                tag,
                expected,
                found,
            } => write!(
                f,
                "tag {tag} at byte {at} has wire class {found}, expected {expected}"
            ),
            DecodeError::UnionClassAbsent { at } => write!(f, "union key at byte {at} has class 0"),
            DecodeError::UnknownVariant { at, tag } => {
                write!(f, "unknown union variant tag {tag} at byte {at}")
            }
            DecodeError::MapKeyOrder { at } => write!(
                f,
                "map key at byte {at} is not greater than the previous key"
            ),
            DecodeError::ContentLength {
                at,
                what,
                bytes,
                missing: false,
            } => write!(
                f,
                "{bytes} byte(s) left over at byte {at}, after the end of {what}"
            ),
            DecodeError::ContentLength {
                at,
                what,
                bytes,
                missing: true,
            } => write!(
                f,
                "content of {what} at byte {at} is too short: {bytes} more byte(s) needed"
            ),
            DecodeError::RaggedList { at, len, width } => write!(
                f,
                "list at byte {at} of {len} bytes is not a whole number of {width}-byte elements"
            ),
            DecodeError::MaxLen { len, max } => write!(f, "length {len} exceeds max_len {max}"),
            #[cfg(feature = "alloc")]
            DecodeError::Range(r) => write!(
                f,
                "value {} is outside range {}..={}",
                r.value, r.min, r.max
            ),
            DecodeError::CorruptFrame { reason } => write!(f, "corrupt serial frame: {reason}"),
            DecodeError::UnknownMessageType { type_id } => {
                write!(f, "unknown message type id {type_id}")
            }
            DecodeError::NotAMessage { kind } => {
                write!(f, "frame kind {kind} does not carry a message")
            }
            #[cfg(feature = "alloc")]
            DecodeError::InField(e) => write!(f, "in `{}.{}`: {}", e.message, e.field, e.source),
        }
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::MaxLen {
                message,
                field,
                len,
                max,
            } => write!(f, "`{message}.{field}`: length {len} exceeds max_len {max}"),
            #[cfg(feature = "alloc")]
            EncodeError::Range {
                message,
                field,
                value,
                min,
                max,
            } => write!(
                f,
                "`{message}.{field}`: value {value} is outside range {min}..={max}"
            ),
            EncodeError::InvalidHeader { reason } => write!(f, "invalid frame header: {reason}"),
            EncodeError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max} bytes")
            }
            EncodeError::DepthExceeded { max } => write!(
                f,
                "value nests deeper than {max} levels, which decoders reject (wire format §7)"
            ),
            EncodeError::InvalidUnknownVariant {
                message,
                tag,
                reason,
                bytes_error,
            } => {
                write!(f, "`{message}`: unknown variant {tag}: {reason}")?;
                match bytes_error {
                    Some(e) => write!(f, ": {e}"),
                    None => Ok(()),
                }
            }
            EncodeError::Unrepresentable { message, reason } => write!(f, "`{message}`: {reason}"),
        }
    }
}

impl core::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            #[cfg(feature = "alloc")]
            DecodeError::InField(e) => Some(&e.source),
            _ => None,
        }
    }
}

impl core::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoders return `Result<T, DecodeError>` from every read: a small
    /// error keeps the error-free path cheap. The large, rare variants
    /// (`Range`, 56 bytes of payload, and `InField`, 40) are boxed; what
    /// remains is an offset, at most three more words and the tag (it was 64
    /// bytes before). `Ok(u64)` shares the layout.
    #[test]
    fn decode_error_stays_small() {
        assert_eq!(core::mem::size_of::<DecodeError>(), 40);
        assert_eq!(core::mem::size_of::<Result<u64, DecodeError>>(), 40);
        assert_eq!(core::mem::size_of::<Result<(), DecodeError>>(), 40);
    }
}
