//! The traits generated code implements, and the helpers it calls.

use alloc::vec::Vec;
use bytes::{BufMut, Bytes};
use core::mem::MaybeUninit;

use crate::descriptor::MessageDescriptor;
use crate::wire::{DecodeError, EncodeError, Limits, Reader};
use crate::wire_type::{Fit, Lens};

/// A message or union type: encodes to and decodes from the wire format.
///
/// Generated code implements this for every `message` and `union` of a schema
/// (and `#[derive(Message)]` for Rust types). The encoding is the frame-payload
/// form: a message body (wire format §5.2) or a union encoding (§5.5).
///
/// ```
/// # use isml_runtime::{Message, wire::{Reader, DecodeError, EncodeError}};
/// # fn demo<M: Message>(m: &M) -> Result<(), Box<dyn std::error::Error>> {
/// let bytes = m.encode_to_vec()?;
/// assert_eq!(bytes.len(), m.encoded_len());
/// assert_eq!(m.encode_to_bytes()?, bytes);
/// let back = M::decode_slice(&bytes)?;
/// assert!(back == *m);
/// # Ok(()) }
/// ```
pub trait Message: Sized + Default + Clone + PartialEq + core::fmt::Debug {
    /// The fully qualified schema name, e.g. `charging.v1.StatusReport`.
    const NAME: &'static str;

    /// Whether the encoding holds nested length-delimited values whose
    /// lengths take a walk to compute (lists of varints, maps, messages):
    /// [`Message::encode`] then measures first, so that each length is
    /// computed once. Generated code sets it.
    #[doc(hidden)]
    const NESTED_LENGTHS: bool = false;

    /// The most bytes [`Message::encode`] writes for any value that passes
    /// [`Message::validate`], or `usize::MAX` when the schema sets no bound
    /// (strings, bytes, lists or maps without `max_len`, unions, recursion).
    /// Generated code sets it from the schema; [`Message::encode_to_vec`]
    /// writes a small bounded message into a stack buffer of that size
    /// instead of measuring it first.
    #[doc(hidden)]
    const MAX_ENCODED_LEN: usize = usize::MAX;

    /// The exact number of bytes [`Message::encode`] writes.
    fn encoded_len(&self) -> usize;

    /// Checks `max_len` and `range` attributes, unencodable values and the
    /// nesting limit (wire format §7: the default [`Limits`]) without writing.
    fn validate(&self) -> Result<(), EncodeError>;

    /// [`Message::validate`] for a body with `depth_left` levels of nesting
    /// left (a nested message). Generated code implements both; the default
    /// ignores the depth, for hand-written implementations.
    #[doc(hidden)]
    fn validate_nested(&self, depth_left: u32) -> Result<(), EncodeError> {
        let _ = depth_left;
        self.validate()
    }

    /// Validates a body with `depth_left` levels of nesting left and returns
    /// its length, in one walk (generated code fuses the two; the default
    /// runs [`Message::validate_nested`] then [`Message::encoded_len`]).
    #[doc(hidden)]
    fn checked_len_nested(&self, depth_left: u32) -> Result<usize, EncodeError> {
        self.validate_nested(depth_left)?;
        Ok(self.encoded_len())
    }

    /// [`Message::checked_len_nested`], recording the lengths of nested
    /// length-delimited values for [`Message::write_body`].
    #[doc(hidden)]
    fn measure_body(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        let _ = lens;
        self.checked_len_nested(depth_left)
    }

    /// [`Message::encode_raw`], taking nested lengths from `lens`.
    #[doc(hidden)]
    fn write_body<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        let _ = lens;
        self.encode_raw(buf);
    }

    /// Writes the encoding without validating: callers validate first.
    #[doc(hidden)]
    fn encode_raw<B: BufMut + ?Sized>(&self, buf: &mut B);

    /// Writes the encoding of a validated value at the front of `buf`,
    /// which has room for it, and returns its length. Through a slice the
    /// writing position stays in registers (through `&mut Vec<u8>`, every
    /// byte stored could change the vector, which is read again);
    /// generated code writes small bounded messages this way.
    ///
    /// # Panics
    ///
    /// When `buf` is shorter than the encoding.
    #[doc(hidden)]
    #[inline]
    fn encode_raw_into(&self, buf: &mut [u8]) -> usize {
        let total = buf.len();
        let mut rest = buf;
        self.encode_raw(&mut rest);
        total - rest.len()
    }

    /// [`Message::encode_raw`] into the one-pass writer of
    /// [`Message::encode_to_vec`] and [`Message::encode`]: generated code writes each field with
    /// [`Wire::fit_field`], so that a nested length is written after its
    /// content instead of being measured first.
    ///
    /// [`Wire::fit_field`]: crate::__private::Wire::fit_field
    #[doc(hidden)]
    #[inline]
    fn fit_body(&self, w: &mut Fit<'_>) {
        self.encode_raw(w);
    }

    /// Reads a value filling the whole region of `r`.
    #[doc(hidden)]
    fn decode_reader(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Validates and writes the encoding into `buf`. Writes nothing when
    /// validation fails; never allocates when `buf` has room for
    /// [`Message::encoded_len`] bytes.
    ///
    /// A message with nested lengths to walk (lists of messages, messages
    /// in messages) is written in one pass into a 512-byte buffer on the
    /// stack and copied into `buf`, as [`Message::encode_to_vec`] does;
    /// one that does not fit there is measured, then written.
    fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) -> Result<(), EncodeError> {
        if Self::NESTED_LENGTHS {
            self.validate()?;
            if on_stack(self, |written| buf.put_slice(written)).is_some() {
                return Ok(());
            }
            let mut lens = Lens::new();
            self.measure_body(Limits::DEFAULT.max_depth, &mut lens)?;
            self.write_body(buf, &mut lens);
        } else {
            self.validate()?;
            self.encode_raw(buf);
        }
        Ok(())
    }

    /// Validates and encodes into a new vector of exactly the encoding's
    /// length.
    ///
    /// A message whose schema bounds its encoding to at most 64 bytes
    /// ([`Message::MAX_ENCODED_LEN`], e.g. one of numbers, enums and
    /// bools) is written at once into a buffer on the stack and copied.
    /// Any other is validated, then written in one pass into a 512-byte
    /// buffer on the stack (nested lengths after their content) and
    /// copied; one that does not fit there is measured (one pass that
    /// records the lengths of nested values) and written again.
    #[inline]
    fn encode_to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        if Self::MAX_ENCODED_LEN <= SMALL_BOUND {
            // No length pass: the bound says the stack buffer has room.
            // Written there, then copied into a vector of exactly its length.
            self.validate()?;
            let mut stack = [0u8; SMALL_BOUND];
            let n = self.encode_raw_into(&mut stack[..Self::MAX_ENCODED_LEN]);
            let v = stack[..n].to_vec();
            return Ok(v);
        }
        self.validate()?;
        if let Some(v) = on_stack(self, <[u8]>::to_vec) {
            return Ok(v);
        }
        if !Self::NESTED_LENGTHS {
            // Nothing nested to record: no `Lens` to set up (and validated
            // above).
            let len = self.encoded_len();
            let mut v = Vec::with_capacity(len);
            self.encode_raw(&mut v);
            return Ok(v);
        }
        let mut lens = Lens::new();
        let len = self.measure_body(Limits::DEFAULT.max_depth, &mut lens)?;
        let mut v = Vec::with_capacity(len);
        self.write_body(&mut v, &mut lens);
        Ok(v)
    }

    /// Validates and encodes into a new [`Bytes`] (for frames and queues
    /// that hold payloads as `Bytes`).
    fn encode_to_bytes(&self) -> Result<Bytes, EncodeError> {
        self.encode_to_vec().map(Bytes::from)
    }

    /// Decodes from a byte slice (copies `bytes` fields).
    fn decode_slice(buf: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_slice_with_limits(buf, &Limits::DEFAULT)
    }

    /// Decodes from a byte slice with explicit limits.
    fn decode_slice_with_limits(buf: &[u8], limits: &Limits) -> Result<Self, DecodeError> {
        let mut r = Reader::with_limits(buf, limits);
        Self::decode_reader(&mut r)
    }

    /// Decodes from [`Bytes`]; `bytes` fields share the buffer instead of copying.
    fn decode(buf: Bytes) -> Result<Self, DecodeError> {
        Self::decode_with_limits(&buf, &Limits::DEFAULT)
    }

    /// Decodes from [`Bytes`] with explicit limits.
    fn decode_with_limits(buf: &Bytes, limits: &Limits) -> Result<Self, DecodeError> {
        let mut r = Reader::from_bytes(buf, limits);
        Self::decode_reader(&mut r)
    }
}

/// The largest [`Message::MAX_ENCODED_LEN`] that [`Message::encode_to_vec`]
/// writes on the stack without measuring first (generated code gives such
/// messages `encode_raw_into`: keep `isml-schema`'s codegen `SMALL_BOUND`
/// equal).
const SMALL_BOUND: usize = 64;

/// The stack buffer [`Message::encode_to_vec`] first tries for a message
/// of no smaller bound.
const FIT_BOUND: usize = 512;

/// Writes a validated `m` in one pass into a [`FIT_BOUND`]-byte buffer on
/// the stack ([`Message::fit_body`]) and hands the bytes to `f`; `None`
/// when they do not fit.
#[inline(always)]
fn on_stack<M: Message, R>(m: &M, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    let mut stack = [MaybeUninit::uninit(); FIT_BOUND];
    let mut fit = Fit::new(&mut stack);
    m.fit_body(&mut fit);
    fit.written().map(f)
}

/// A message or union with a type id: it can be sent on its own in a frame.
pub trait TopLevel: Message {
    /// The type id in frame headers.
    const TYPE_ID: u32;
    /// The schema fingerprint (wire format §8).
    ///
    /// A method rather than a constant because a derived type's fingerprint
    /// depends on the definitions of the types its fields name, which its
    /// derive macro cannot see: it is computed once from the descriptors
    /// ([`descriptor::fingerprint`](crate::descriptor::fingerprint)) and
    /// cached. Schema-generated types return the compiler's value (also
    /// available as their inherent `FINGERPRINT` constant).
    fn fingerprint() -> u64;
    /// Reflection data for this type.
    fn descriptor() -> &'static MessageDescriptor;
}

/// A zero-copy view of a message: borrows strings, bytes and fixed-width lists
/// from the receive buffer.
pub trait View<'a>: Sized + Copy + core::fmt::Debug {
    /// The owned type this is a view of.
    type Owned: Message;

    /// Reads a view over the frame-payload form (validating everything).
    fn view(buf: &'a [u8]) -> Result<Self, DecodeError> {
        Self::view_with_limits(buf, &Limits::DEFAULT)
    }

    /// Like [`View::view`] with explicit limits.
    fn view_with_limits(buf: &'a [u8], limits: &Limits) -> Result<Self, DecodeError> {
        let mut r = Reader::with_limits(buf, limits);
        Self::view_reader(&mut r)
    }

    /// Reads a view filling the whole region of `r`.
    #[doc(hidden)]
    fn view_reader(r: &mut Reader<'a>) -> Result<Self, DecodeError>;

    /// Copies the view into the owned type.
    fn to_owned_message(&self) -> Self::Owned;
}

/// A schema enum: a `u32` on the wire, with unknown values preserved.
pub trait Enum: Sized + Copy + Default + PartialEq + core::fmt::Debug {
    /// The fully qualified schema name.
    const NAME: &'static str;
    /// The wire value.
    fn to_u32(self) -> u32;
    /// The variant of a wire value (`Unknown(v)` when the schema does not define it).
    fn from_u32(v: u32) -> Self;
}

/// A message or union with a generated zero-copy view type.
///
/// `M::view(&bytes)` reads a view of `M` borrowing from `bytes`.
pub trait Viewable: Message {
    /// The view type, borrowing from a buffer with lifetime `'a`.
    type View<'a>: View<'a, Owned = Self>;

    /// Reads a view over the frame-payload form (validating everything).
    fn view(buf: &[u8]) -> Result<Self::View<'_>, DecodeError> {
        <Self::View<'_> as View<'_>>::view(buf)
    }
}
