//! How each Rust type that can appear in a message is encoded: the one
//! encoder/decoder implementation behind generated and derived code.
//!
//! Every schema type maps to a Rust type implementing [`Wire`] (owned values)
//! and [`WireView`] (zero-copy views). Generated code calls these per field; the
//! per-type logic lives here once.

//!
//! - this file: the [`Wire`] and [`WireView`] traits, the nesting limit of
//!   encoders ([`deeper`]) and the lengths a length pass records ([`Lens`]);
//! - `attrs`: what `max_len` and `range` measure;
//! - `scalar`: bools, integers, floats;
//! - `text`: `String` and `Bytes`;
//! - `container`: lists, optionals, boxes, maps and arrays.

mod attrs;
mod container;
mod fit;
mod scalar;
mod text;

pub use fit::Fit;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{BufMut, Bytes};
use std::collections::HashMap;

use crate::view::{LazyView, ListView, MapView};
use crate::wire::{Class, DecodeError, EncodeError, Reader, varint, write};

pub use attrs::{MaxLen, RangeValue};

/// Encoding of one Rust type in its two forms: the *field form* (a message field
/// or union variant, wire format §5.1) and the *element form* (inside lists,
/// arrays, maps and nested optionals, §5.3).
pub trait Wire: Sized {
    /// The class of the field form.
    const CLASS: Class;
    /// Width of the element form when it is fixed (u8, i8, bool, f32, f64).
    const ELEM_WIDTH: Option<usize> = None;
    /// How the element form is delimited, for sizing a list before
    /// decoding it.
    #[doc(hidden)]
    const ELEM_FORM: ElemForm = ElemForm::Other;
    /// Whether every bit pattern of a fixed-width element is valid (not `bool`),
    /// so a list of them needs no validation pass.
    const ANY_BITS: bool = false;

    /// Whether [`Wire::validate_elem`] checks anything (nested messages,
    /// the nesting limit): a list or map of values that check nothing is
    /// not walked to validate it. Every type that overrides
    /// `validate_elem` sets it.
    #[doc(hidden)]
    const VALIDATES_ELEM: bool = false;

    /// Whether `a` orders before `b` as a map key (`a < b`): what decoding
    /// a map checks for every key after the first (§5.4). Strings and bytes
    /// compare short keys a word at a time instead of calling `memcmp`.
    #[doc(hidden)]
    #[inline(always)]
    fn key_before(a: &Self, b: &Self) -> bool
    where
        Self: Ord,
    {
        a < b
    }

    /// Whether a non-optional field with this value is omitted (§5.2).
    fn is_default(&self) -> bool;
    /// Bytes of the element form.
    fn elem_len(&self) -> usize;
    /// Writes the element form.
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B);
    /// Reads the element form.
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Bytes of the field form.
    fn field_len(&self) -> usize;
    /// Writes the field form.
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B);
    /// Reads the field form (the class was already checked).
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Checks attributes of nested messages and the nesting limit (§7) of
    /// the field form, with `depth_left` levels left where it starts: the
    /// same levels a decoder counts (every length-delimited nested value,
    /// and optionals, arrays and unions in element form).
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        let _ = depth_left;
        Ok(())
    }
    /// Like [`Wire::validate_field`] for the element form.
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let _ = depth_left;
        Ok(())
    }
    /// [`Wire::validate_field`] and [`Wire::field_len`] in one walk: the
    /// length pass of `encode_to_vec` validates as it goes.
    #[inline(always)]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        self.validate_field(depth_left)?;
        Ok(self.field_len())
    }
    /// [`Wire::validate_elem`] and [`Wire::elem_len`] in one walk.
    #[inline(always)]
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        self.validate_elem(depth_left)?;
        Ok(self.elem_len())
    }
    /// [`Wire::checked_field_len`], recording the lengths of nested
    /// length-delimited values in `lens` for [`Wire::write_field`].
    #[doc(hidden)]
    #[inline(always)]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        let _ = lens;
        self.checked_field_len(depth_left)
    }
    /// [`Wire::checked_elem_len`], recording nested lengths.
    #[doc(hidden)]
    #[inline(always)]
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        let _ = lens;
        self.checked_elem_len(depth_left)
    }
    /// [`Wire::encode_field`], taking nested lengths from `lens` instead of
    /// measuring them again.
    #[doc(hidden)]
    #[inline(always)]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        let _ = lens;
        self.encode_field(buf);
    }
    /// [`Wire::encode_elem`], taking nested lengths from `lens`.
    #[doc(hidden)]
    #[inline(always)]
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        let _ = lens;
        self.encode_elem(buf);
    }

    /// [`Wire::encode_field`] into the one-pass writer: a value whose
    /// length takes a walk writes its content between [`Fit::open`] and
    /// [`Fit::close`] instead of walking it twice.
    #[doc(hidden)]
    #[inline(always)]
    fn fit_field(&self, w: &mut Fit<'_>) {
        self.encode_field(w);
    }
    /// [`Wire::encode_elem`] into the one-pass writer.
    #[doc(hidden)]
    #[inline(always)]
    fn fit_elem(&self, w: &mut Fit<'_>) {
        self.encode_elem(w);
    }

    /// Writes the elements of a list (overridden by `u8` to copy the slice).
    #[doc(hidden)]
    fn encode_list<B: BufMut + ?Sized>(items: &[Self], buf: &mut B) {
        for item in items {
            item.encode_elem(buf);
        }
    }

    /// Reads list content until the region is consumed, into a vector
    /// sized from the content first (no reallocation while it fills).
    #[doc(hidden)]
    fn decode_list(r: &mut Reader<'_>) -> Result<Vec<Self>, DecodeError> {
        let capacity = match (Self::ELEM_WIDTH, Self::ELEM_FORM) {
            (Some(w), _) => r.remaining() / w,
            // Every varint ends with the one byte below 0x80.
            (None, ElemForm::Varint) => r.rest().iter().filter(|b| **b < 0x80).count(),
            (None, ElemForm::Delimited) => count_delimited(*r),
            (None, ElemForm::Other) => 0,
        };
        let mut out = Vec::with_capacity(capacity);
        while !r.is_empty() {
            out.push(Self::decode_elem(r)?);
        }
        Ok(out)
    }
}

/// `a < b` for byte strings (the order of map keys that are strings or
/// bytes), eight bytes at a time from the front.
#[inline(always)]
pub(crate) fn bytes_before(a: &[u8], b: &[u8]) -> bool {
    let (mut x, mut y) = (a, b);
    while let (Some((wx, rx)), Some((wy, ry))) =
        (x.split_first_chunk::<8>(), y.split_first_chunk::<8>())
    {
        if wx != wy {
            return u64::from_be_bytes(*wx) < u64::from_be_bytes(*wy);
        }
        (x, y) = (rx, ry);
    }
    for (cx, cy) in x.iter().zip(y) {
        if cx != cy {
            return cx < cy;
        }
    }
    x.len() < y.len()
}

/// How a type's element form ends, for counting the elements of a list
/// before decoding it.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemForm {
    /// One varint.
    Varint,
    /// A length and that many bytes.
    Delimited,
    /// Anything else: not counted ahead.
    Other,
}

/// The number of length-delimited elements in `r`'s region, by their
/// lengths alone (a malformed length ends the count; decoding reports it).
fn count_delimited(mut r: Reader<'_>) -> usize {
    let mut n = 0;
    while !r.is_empty() {
        match r.len().and_then(|len| r.raw(len)) {
            Ok(_) => n += 1,
            Err(_) => break,
        }
    }
    n
}

/// The lengths of nested values measured by the length pass of
/// `encode_to_vec`, in the order the write pass needs them (each
/// length-delimited value's length comes before those of the values inside
/// it), so that nothing is measured twice. The first lengths live inline;
/// deeper or longer structures spill to the heap.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Lens {
    inline: [usize; LENS_INLINE],
    len: usize,
    spill: Vec<usize>,
    read: usize,
}

const LENS_INLINE: usize = 24;

impl Lens {
    /// No lengths: a write pass given it measures as it goes.
    #[inline]
    pub fn new() -> Self {
        Lens {
            inline: [0; LENS_INLINE],
            len: 0,
            spill: Vec::new(),
            read: 0,
        }
    }

    /// Takes the next slot, to be [`Lens::set`] once the value is measured.
    #[inline]
    pub fn reserve(&mut self) -> usize {
        let i = self.len;
        self.len += 1;
        if i >= LENS_INLINE {
            self.spill.push(0);
        }
        i
    }

    /// Records the length of slot `i`.
    #[inline]
    pub fn set(&mut self, i: usize, n: usize) {
        match self.inline.get_mut(i) {
            Some(slot) => *slot = n,
            None => {
                if let Some(slot) = self.spill.get_mut(i - LENS_INLINE) {
                    *slot = n;
                }
            }
        }
    }

    /// The next recorded length, or `None` when none was recorded (the
    /// writer then measures).
    #[inline]
    pub fn take(&mut self) -> Option<usize> {
        if self.read >= self.len {
            return None;
        }
        let i = self.read;
        self.read += 1;
        match self.inline.get(i) {
            Some(n) => Some(*n),
            None => self.spill.get(i - LENS_INLINE).copied(),
        }
    }
}

/// One nesting level below `depth_left`, or the error a decoder would give.
#[inline]
pub fn deeper(depth_left: u32) -> Result<u32, EncodeError> {
    depth_left.checked_sub(1).ok_or(EncodeError::DepthExceeded {
        max: crate::wire::Limits::DEFAULT.max_depth,
    })
}

/// Zero-copy reading of a [`Wire`] type: strings and bytes borrow from the
/// buffer, lists and maps are validated lazily-iterated views.
pub trait WireView<'a>: Wire {
    /// The borrowed form.
    type View: Copy + core::fmt::Debug + Default;
    /// Reads the element form as a view.
    fn view_elem(r: &mut Reader<'a>) -> Result<Self::View, DecodeError>;
    /// Reads the field form as a view.
    fn view_field(r: &mut Reader<'a>) -> Result<Self::View, DecodeError>;
    /// Checks the element form and moves past it, without making the view:
    /// what validating a list or a map's values needs (strings check for
    /// ASCII first, which is cheaper than building a `&str`).
    #[doc(hidden)]
    #[inline(always)]
    fn check_elem(r: &mut Reader<'a>) -> Result<(), DecodeError> {
        Self::view_elem(r).map(drop)
    }
    /// Whether map keys of this type are ordered by their content bytes
    /// (strings and bytes): a map view then checks their order on those
    /// bytes ([`WireView::check_byte_key`]) without making each key's view.
    #[doc(hidden)]
    const BYTE_KEY: bool = false;
    /// For a [`WireView::BYTE_KEY`] type, checks the element form and
    /// returns its content bytes.
    #[doc(hidden)]
    #[inline(always)]
    fn check_byte_key(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
        r.byte_slice()
    }
    /// Copies a view into the owned type.
    fn from_view(v: &Self::View) -> Self;
}

/// Running out of bytes inside length-delimited content of a fixed-size value
/// means the content is too short: report it as such (wire format §7).
fn short_content(at: usize, what: &'static str) -> impl Fn(DecodeError) -> DecodeError {
    move |e| match e {
        DecodeError::UnexpectedEnd { needed, .. } => DecodeError::ContentLength {
            at,
            what,
            bytes: needed,
            missing: true,
        },
        other => other,
    }
}

#[cfg(test)]
mod lens_tests {
    use super::*;

    #[test]
    fn lens_keeps_lengths_in_reservation_order_past_the_inline_slots() {
        let mut lens = Lens::new();
        assert_eq!(lens.take(), None, "nothing recorded: the writer measures");
        let slots: Vec<usize> = (0..LENS_INLINE + 10).map(|_| lens.reserve()).collect();
        // Set in reverse, as a length pass does (a parent's length is known
        // after its children's).
        for &i in slots.iter().rev() {
            lens.set(i, i * 7);
        }
        for &i in &slots {
            assert_eq!(lens.take(), Some(i * 7));
        }
        assert_eq!(lens.take(), None);
    }
}

#[cfg(test)]
mod key_order_tests {
    use super::bytes_before;

    #[test]
    fn byte_order_agrees_with_slice_order() {
        let keys: Vec<Vec<u8>> = [
            &b""[..],
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\x00",
            b"abcdefgi",
            b"abcdefghabcdefgh",
            b"abcdefghabcdefgi",
            b"abcdefghabcdefgh1",
            b"\xff",
            b"\x7f\xff",
            b"\x80",
            b"zzzzzzzzzzzzzzzzzzzz",
        ]
        .iter()
        .map(|k| k.to_vec())
        .collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(bytes_before(a, b), a < b, "{a:?} < {b:?}");
            }
        }
    }
}
