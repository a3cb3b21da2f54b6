//! How each Rust type that can appear in a message is encoded: the one
//! encoder/decoder implementation behind generated and derived code.
//!
//! Every schema type maps to a Rust type implementing [`Wire`] (owned values)
//! and [`WireView`] (zero-copy views). Generated code calls these per field; the
//! per-type logic lives here once.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use bytes::{BufMut, Bytes};
use std::collections::HashMap;

use crate::view::{LazyView, ListView, MapView};
use crate::wire::{Class, DecodeError, EncodeError, Reader, varint, write};

/// Encoding of one Rust type in its two forms: the *field form* (a message field
/// or union variant, wire format §5.1) and the *element form* (inside lists,
/// arrays, maps and nested optionals, §5.3).
pub trait Wire: Sized {
    /// The class of the field form.
    const CLASS: Class;
    /// Width of the element form when it is fixed (u8, i8, bool, f32, f64).
    const ELEM_WIDTH: Option<usize> = None;
    /// Whether every bit pattern of a fixed-width element is valid (not `bool`),
    /// so a list of them needs no validation pass.
    const ANY_BITS: bool = false;

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

    /// Writes the elements of a list (overridden by `u8` to copy the slice).
    #[doc(hidden)]
    fn encode_list<B: BufMut + ?Sized>(items: &[Self], buf: &mut B) {
        for item in items {
            item.encode_elem(buf);
        }
    }

    /// Reads list content until the region is consumed.
    #[doc(hidden)]
    fn decode_list(r: &mut Reader<'_>) -> Result<Vec<Self>, DecodeError> {
        let mut out = match Self::ELEM_WIDTH {
            Some(w) => Vec::with_capacity(r.remaining() / w),
            None => Vec::new(),
        };
        while !r.is_empty() {
            out.push(Self::decode_elem(r)?);
        }
        Ok(out)
    }
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
            found: needed,
        },
        other => other,
    }
}

/// Length a `max_len` attribute measures: UTF-8 bytes, bytes, elements or entries.
pub trait MaxLen {
    /// The measured length.
    fn max_len_value(&self) -> usize;
}

impl MaxLen for String {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl MaxLen for &str {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl MaxLen for Bytes {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl MaxLen for &[u8] {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<T> MaxLen for Vec<T> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<K, V> MaxLen for BTreeMap<K, V> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<K, V, S> MaxLen for HashMap<K, V, S> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<'a, T: WireView<'a>> MaxLen for ListView<'a, T> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<'a, K: WireView<'a>, V: WireView<'a>> MaxLen for MapView<'a, K, V> {
    fn max_len_value(&self) -> usize {
        self.len()
    }
}
impl<'a, M: crate::lazy::LazyMessage<'a>> MaxLen for crate::lazy::LazyList<'a, M> {
    /// Counts the elements (their lengths only): a list with a `max_len` is
    /// walked once more to check it. A malformed element ends the count; the
    /// iterator reports it.
    fn max_len_value(&self) -> usize {
        self.clone().count()
    }
}

impl<T: MaxLen> MaxLen for Option<T> {
    fn max_len_value(&self) -> usize {
        self.as_ref().map_or(0, T::max_len_value)
    }
}

/// A number a `range` attribute can check.
pub trait RangeValue {
    /// Whether the value lies in `min..=max`.
    fn in_range(&self, min: i128, max: i128) -> bool;
    /// The value, formatted for errors.
    fn describe(&self) -> String;
}

macro_rules! range_int {
    ($($t:ty),*) => {$(
        impl RangeValue for $t {
            fn in_range(&self, min: i128, max: i128) -> bool {
                (min..=max).contains(&(*self as i128))
            }
            fn describe(&self) -> String {
                alloc::format!("{self}")
            }
        }
    )*};
}
range_int!(u8, u16, u32, u64, i8, i16, i32, i64);

macro_rules! range_float {
    ($($t:ty),*) => {$(
        impl RangeValue for $t {
            fn in_range(&self, min: i128, max: i128) -> bool {
                let v = f64::from(*self);
                v >= min as f64 && v <= max as f64
            }
            fn describe(&self) -> String {
                alloc::format!("{self}")
            }
        }
    )*};
}
range_float!(f32, f64);

impl<T: RangeValue> RangeValue for Option<T> {
    fn in_range(&self, min: i128, max: i128) -> bool {
        self.as_ref().is_none_or(|v| v.in_range(min, max))
    }
    fn describe(&self) -> String {
        self.as_ref()
            .map_or_else(|| String::from("none"), T::describe)
    }
}

macro_rules! scalar_view {
    ($t:ty) => {
        impl<'a> WireView<'a> for $t {
            type View = $t;
            #[inline(always)]
            fn view_elem(r: &mut Reader<'a>) -> Result<$t, DecodeError> {
                <$t as Wire>::decode_elem(r)
            }
            #[inline(always)]
            fn view_field(r: &mut Reader<'a>) -> Result<$t, DecodeError> {
                <$t as Wire>::decode_field(r)
            }
            #[inline(always)]
            fn from_view(v: &$t) -> $t {
                *v
            }
        }
    };
}

impl Wire for bool {
    const CLASS: Class = Class::Varint;
    const ELEM_WIDTH: Option<usize> = Some(1);
    #[inline(always)]
    fn is_default(&self) -> bool {
        !*self
    }
    #[inline(always)]
    fn elem_len(&self) -> usize {
        1
    }
    #[inline(always)]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_u8(u8::from(*self));
    }
    #[inline(always)]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bool()
    }
    #[inline(always)]
    fn field_len(&self) -> usize {
        1
    }
    #[inline(always)]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_u8(u8::from(*self));
    }
    #[inline(always)]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bool_varint()
    }
}
scalar_view!(bool);

impl Wire for u8 {
    const ANY_BITS: bool = true;
    const CLASS: Class = Class::Varint;
    const ELEM_WIDTH: Option<usize> = Some(1);
    #[inline(always)]
    fn is_default(&self) -> bool {
        *self == 0
    }
    #[inline(always)]
    fn elem_len(&self) -> usize {
        1
    }
    #[inline(always)]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_u8(*self);
    }
    #[inline(always)]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u8()
    }
    #[inline(always)]
    fn field_len(&self) -> usize {
        varint::len(u64::from(*self))
    }
    #[inline(always)]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, u64::from(*self));
    }
    #[inline(always)]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u8_varint()
    }
    fn encode_list<B: BufMut + ?Sized>(items: &[Self], buf: &mut B) {
        buf.put_slice(items);
    }
    fn decode_list(r: &mut Reader<'_>) -> Result<Vec<Self>, DecodeError> {
        Ok(r.raw(r.remaining())?.to_vec())
    }
}
scalar_view!(u8);

impl Wire for i8 {
    const ANY_BITS: bool = true;
    const CLASS: Class = Class::Varint;
    const ELEM_WIDTH: Option<usize> = Some(1);
    #[inline(always)]
    fn is_default(&self) -> bool {
        *self == 0
    }
    #[inline(always)]
    fn elem_len(&self) -> usize {
        1
    }
    #[inline(always)]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_i8(*self);
    }
    #[inline(always)]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.i8()
    }
    #[inline(always)]
    fn field_len(&self) -> usize {
        write::svarint_len(i64::from(*self))
    }
    #[inline(always)]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        write::svarint(buf, i64::from(*self));
    }
    #[inline(always)]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.i8_varint()
    }
}
scalar_view!(i8);

/// Integers wider than a byte: the same varint in field and element form,
/// written with `$put` (plain or zigzag) after widening with `$wide`.
macro_rules! varint_int {
    ($t:ty, $wide:ty, $read:ident, $len:path, $put:path) => {
        impl Wire for $t {
            const CLASS: Class = Class::Varint;
            #[inline(always)]
            fn is_default(&self) -> bool {
                *self == 0
            }
            #[inline(always)]
            fn elem_len(&self) -> usize {
                $len(<$wide>::from(*self))
            }
            #[inline(always)]
            fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
                $put(buf, <$wide>::from(*self));
            }
            #[inline(always)]
            fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$read()
            }
            #[inline(always)]
            fn field_len(&self) -> usize {
                self.elem_len()
            }
            #[inline(always)]
            fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
                self.encode_elem(buf);
            }
            #[inline(always)]
            fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$read()
            }
        }
        scalar_view!($t);
    };
}
varint_int!(u16, u64, u16, varint::len, varint::put);
varint_int!(u32, u64, u32, varint::len, varint::put);
varint_int!(u64, u64, u64, varint::len, varint::put);
varint_int!(i16, i64, i16, write::svarint_len, write::svarint);
varint_int!(i32, i64, i32, write::svarint_len, write::svarint);
varint_int!(i64, i64, i64, write::svarint_len, write::svarint);

impl Wire for f32 {
    const ANY_BITS: bool = true;
    const CLASS: Class = Class::Fixed32;
    const ELEM_WIDTH: Option<usize> = Some(4);
    #[inline(always)]
    fn is_default(&self) -> bool {
        self.to_bits() == 0
    }
    #[inline(always)]
    fn elem_len(&self) -> usize {
        4
    }
    #[inline(always)]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_f32_le(*self);
    }
    #[inline(always)]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.f32()
    }
    #[inline(always)]
    fn field_len(&self) -> usize {
        4
    }
    #[inline(always)]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_f32_le(*self);
    }
    #[inline(always)]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.f32()
    }
}
scalar_view!(f32);

impl Wire for f64 {
    const ANY_BITS: bool = true;
    const CLASS: Class = Class::Delimited;
    const ELEM_WIDTH: Option<usize> = Some(8);
    #[inline(always)]
    fn is_default(&self) -> bool {
        self.to_bits() == 0
    }
    #[inline(always)]
    fn elem_len(&self) -> usize {
        8
    }
    #[inline(always)]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_f64_le(*self);
    }
    #[inline(always)]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.f64()
    }
    #[inline(always)]
    fn field_len(&self) -> usize {
        9
    }
    #[inline(always)]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        buf.put_u8(8);
        buf.put_f64_le(*self);
    }
    #[inline(always)]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut c = r.delimited()?;
        let at = c.position();
        let v = c.f64().map_err(short_content(at, "f64"))?;
        c.finish("f64")?;
        Ok(v)
    }
    #[inline(always)]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        deeper(depth_left).map(drop)
    }
}
scalar_view!(f64);

impl Wire for String {
    const CLASS: Class = Class::Delimited;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_empty()
    }
    #[inline]
    fn elem_len(&self) -> usize {
        write::delimited_len(self.len())
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        write::len_prefixed(buf, self.as_bytes());
    }
    #[inline]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.str().map(String::from)
    }
    #[inline]
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    #[inline]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_elem(r)
    }
}

impl<'a> WireView<'a> for String {
    type View = &'a str;
    #[inline]
    fn view_elem(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
        r.str()
    }
    #[inline]
    fn view_field(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
        r.str()
    }
    fn from_view(v: &&'a str) -> String {
        String::from(*v)
    }
}

impl Wire for Bytes {
    const CLASS: Class = Class::Delimited;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_empty()
    }
    #[inline]
    fn elem_len(&self) -> usize {
        write::delimited_len(self.len())
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        write::len_prefixed(buf, self);
    }
    #[inline]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bytes()
    }
    #[inline]
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    #[inline]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bytes()
    }
}

impl<'a> WireView<'a> for Bytes {
    type View = &'a [u8];
    #[inline]
    fn view_elem(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
        r.byte_slice()
    }
    #[inline]
    fn view_field(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
        r.byte_slice()
    }
    fn from_view(v: &&'a [u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }
}

#[inline]
fn list_content_len<T: Wire>(items: &[T]) -> usize {
    match T::ELEM_WIDTH {
        Some(w) => items.len() * w,
        None => items.iter().map(Wire::elem_len).sum(),
    }
}

impl<T: Wire> Wire for Vec<T> {
    const CLASS: Class = Class::Delimited;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_empty()
    }
    #[inline]
    fn elem_len(&self) -> usize {
        write::delimited_len(list_content_len(self))
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, list_content_len(self) as u64);
        T::encode_list(self, buf);
    }
    #[inline]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let mut c = r.delimited()?;
        if let Some(width) = T::ELEM_WIDTH
            && c.remaining() % width != 0
        {
            return Err(DecodeError::RaggedList {
                at,
                len: c.remaining(),
                width,
            });
        }
        T::decode_list(&mut c)
    }
    #[inline]
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    #[inline]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_elem(r)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        self.validate_elem(depth_left)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let d = deeper(depth_left)?;
        self.iter().try_for_each(|v| v.validate_elem(d))
    }
    #[inline]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        self.measure_elem(depth_left, lens)
    }
    #[inline]
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        if T::ELEM_WIDTH.is_some() {
            return self.checked_elem_len(depth_left);
        }
        let d = deeper(depth_left)?;
        let slot = lens.reserve();
        let mut n = 0;
        for v in self {
            n += v.measure_elem(d, lens)?;
        }
        lens.set(slot, n);
        Ok(write::delimited_len(n))
    }
    #[inline]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        self.write_elem(buf, lens);
    }
    #[inline]
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        if T::ELEM_WIDTH.is_some() {
            return self.encode_elem(buf);
        }
        let n = lens.take().unwrap_or_else(|| list_content_len(self));
        varint::put(buf, n as u64);
        for v in self {
            v.write_elem(buf, lens);
        }
    }
    #[inline]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        self.checked_elem_len(depth_left)
    }
    #[inline]
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        let d = deeper(depth_left)?;
        let n = match T::ELEM_WIDTH {
            // Fixed-width elements are scalars: nothing to validate.
            Some(w) => self.len() * w,
            None => {
                let mut n = 0;
                for v in self {
                    n += v.checked_elem_len(d)?;
                }
                n
            }
        };
        Ok(write::delimited_len(n))
    }
}

impl<'a, T: WireView<'a>> WireView<'a> for Vec<T> {
    type View = ListView<'a, T>;
    fn view_elem(r: &mut Reader<'a>) -> Result<ListView<'a, T>, DecodeError> {
        ListView::read(r)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<ListView<'a, T>, DecodeError> {
        ListView::read(r)
    }
    fn from_view(v: &ListView<'a, T>) -> Vec<T> {
        v.iter().map(|e| T::from_view(&e)).collect()
    }
}

impl<T: Wire> Wire for Option<T> {
    const CLASS: Class = T::CLASS;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_none()
    }
    #[inline]
    fn elem_len(&self) -> usize {
        1 + self.as_ref().map_or(0, Wire::elem_len)
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        match self {
            None => buf.put_u8(0),
            Some(v) => {
                buf.put_u8(1);
                v.encode_elem(buf);
            }
        }
    }
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.bool()? {
            r.descend(T::decode_elem).map(Some)
        } else {
            Ok(None)
        }
    }
    #[inline]
    fn field_len(&self) -> usize {
        self.as_ref().map_or(0, Wire::field_len)
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        if let Some(v) = self {
            v.encode_field(buf);
        }
    }
    #[inline]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::decode_field(r).map(Some)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        self.as_ref()
            .map_or(Ok(()), |v| v.validate_field(depth_left))
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        match self {
            Some(v) => v.validate_elem(deeper(depth_left)?),
            None => Ok(()),
        }
    }
    #[inline]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        match self {
            Some(v) => v.checked_field_len(depth_left),
            None => Ok(0),
        }
    }
    #[inline]
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        match self {
            Some(v) => Ok(1 + v.checked_elem_len(deeper(depth_left)?)?),
            None => Ok(1),
        }
    }
    #[inline]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        match self {
            Some(v) => v.measure_field(depth_left, lens),
            None => Ok(0),
        }
    }
    #[inline]
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        match self {
            Some(v) => Ok(1 + v.measure_elem(deeper(depth_left)?, lens)?),
            None => Ok(1),
        }
    }
    #[inline]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        if let Some(v) = self {
            v.write_field(buf, lens);
        }
    }
    #[inline]
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        match self {
            None => buf.put_u8(0),
            Some(v) => {
                buf.put_u8(1);
                v.write_elem(buf, lens);
            }
        }
    }
}

impl<'a, T: WireView<'a>> WireView<'a> for Option<T> {
    type View = Option<T::View>;
    fn view_elem(r: &mut Reader<'a>) -> Result<Option<T::View>, DecodeError> {
        if r.bool()? {
            r.descend(T::view_elem).map(Some)
        } else {
            Ok(None)
        }
    }
    fn view_field(r: &mut Reader<'a>) -> Result<Option<T::View>, DecodeError> {
        T::view_field(r).map(Some)
    }
    fn from_view(v: &Option<T::View>) -> Option<T> {
        v.as_ref().map(T::from_view)
    }
}

impl<T: Wire> Wire for Box<T> {
    const CLASS: Class = T::CLASS;
    const ELEM_WIDTH: Option<usize> = T::ELEM_WIDTH;
    #[inline]
    fn is_default(&self) -> bool {
        (**self).is_default()
    }
    #[inline]
    fn elem_len(&self) -> usize {
        (**self).elem_len()
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        (**self).encode_elem(buf);
    }
    #[inline]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::decode_elem(r).map(Box::new)
    }
    #[inline]
    fn field_len(&self) -> usize {
        (**self).field_len()
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        (**self).encode_field(buf);
    }
    #[inline]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::decode_field(r).map(Box::new)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        (**self).validate_field(depth_left)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        (**self).validate_elem(depth_left)
    }
    #[inline]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        (**self).checked_field_len(depth_left)
    }
    #[inline]
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        (**self).checked_elem_len(depth_left)
    }
    #[inline]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        (**self).measure_field(depth_left, lens)
    }
    #[inline]
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        (**self).measure_elem(depth_left, lens)
    }
    #[inline]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        (**self).write_field(buf, lens);
    }
    #[inline]
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        (**self).write_elem(buf, lens);
    }
}

impl<'a, T: WireView<'a>> WireView<'a> for Box<T> {
    type View = LazyView<'a, T>;
    fn view_elem(r: &mut Reader<'a>) -> Result<LazyView<'a, T>, DecodeError> {
        LazyView::read(r, false)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<LazyView<'a, T>, DecodeError> {
        LazyView::read(r, true)
    }
    fn from_view(v: &LazyView<'a, T>) -> Box<T> {
        Box::new(T::from_view(&v.get()))
    }
}

fn map_content_len<'k, K: Wire + 'k, V: Wire + 'k>(
    entries: impl Iterator<Item = (&'k K, &'k V)>,
) -> usize {
    entries.map(|(k, v)| k.elem_len() + v.elem_len()).sum()
}

impl<K: Wire + Ord, V: Wire> Wire for BTreeMap<K, V> {
    const CLASS: Class = Class::Delimited;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_empty()
    }
    fn elem_len(&self) -> usize {
        write::delimited_len(map_content_len(self.iter()))
    }
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, map_content_len(self.iter()) as u64);
        for (k, v) in self {
            k.encode_elem(buf);
            v.encode_elem(buf);
        }
    }
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut c = r.delimited()?;
        let mut map = BTreeMap::new();
        while !c.is_empty() {
            let at = c.position();
            let k = K::decode_elem(&mut c)?;
            if map.last_key_value().is_some_and(|(last, _)| *last >= k) {
                return Err(DecodeError::MapKeyOrder { at });
            }
            let v = V::decode_elem(&mut c)?;
            map.insert(k, v);
        }
        Ok(map)
    }
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_elem(r)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        self.validate_elem(depth_left)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let d = deeper(depth_left)?;
        self.values().try_for_each(|v| v.validate_elem(d))
    }
    #[inline]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        self.checked_elem_len(depth_left)
    }
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        let d = deeper(depth_left)?;
        let mut n = 0;
        for (k, v) in self {
            n += k.elem_len() + v.checked_elem_len(d)?;
        }
        Ok(write::delimited_len(n))
    }
    #[inline]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        self.measure_elem(depth_left, lens)
    }
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        let d = deeper(depth_left)?;
        let slot = lens.reserve();
        let mut n = 0;
        for (k, v) in self {
            n += k.elem_len() + v.measure_elem(d, lens)?;
        }
        lens.set(slot, n);
        Ok(write::delimited_len(n))
    }
    #[inline]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        self.write_elem(buf, lens);
    }
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        let n = lens.take().unwrap_or_else(|| map_content_len(self.iter()));
        varint::put(buf, n as u64);
        for (k, v) in self {
            k.encode_elem(buf);
            v.write_elem(buf, lens);
        }
    }
}

impl<'a, K: WireView<'a> + Ord, V: WireView<'a>> WireView<'a> for BTreeMap<K, V>
where
    K::View: PartialOrd,
{
    type View = MapView<'a, K, V>;
    fn view_elem(r: &mut Reader<'a>) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::read(r)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::read(r)
    }
    fn from_view(v: &MapView<'a, K, V>) -> BTreeMap<K, V> {
        v.iter()
            .map(|(k, v)| (K::from_view(&k), V::from_view(&v)))
            .collect()
    }
}

impl<K, V, S> Wire for HashMap<K, V, S>
where
    K: Wire + Ord + core::hash::Hash,
    V: Wire,
    S: core::hash::BuildHasher + Default,
{
    const CLASS: Class = Class::Delimited;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_empty()
    }
    fn elem_len(&self) -> usize {
        write::delimited_len(map_content_len(self.iter()))
    }
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        // Deterministic output needs sorted keys; a HashMap has none, so sort references.
        let mut entries: Vec<(&K, &V)> = self.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        varint::put(buf, map_content_len(entries.iter().copied()) as u64);
        for (k, v) in entries {
            k.encode_elem(buf);
            v.encode_elem(buf);
        }
    }
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        BTreeMap::<K, V>::decode_elem(r).map(|m| m.into_iter().collect())
    }
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_elem(r)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        self.validate_elem(depth_left)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let d = deeper(depth_left)?;
        self.values().try_for_each(|v| v.validate_elem(d))
    }
}

impl<'a, K, V, S> WireView<'a> for HashMap<K, V, S>
where
    K: WireView<'a> + Ord + core::hash::Hash,
    K::View: PartialOrd,
    V: WireView<'a>,
    S: core::hash::BuildHasher + Default,
{
    type View = MapView<'a, K, V>;
    fn view_elem(r: &mut Reader<'a>) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::read(r)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::read(r)
    }
    fn from_view(v: &MapView<'a, K, V>) -> Self {
        v.iter()
            .map(|(k, v)| (K::from_view(&k), V::from_view(&v)))
            .collect()
    }
}

impl<T: Wire + Default, const N: usize> Wire for [T; N] {
    const CLASS: Class = Class::Delimited;
    #[inline]
    fn is_default(&self) -> bool {
        false
    }
    #[inline]
    fn elem_len(&self) -> usize {
        list_content_len(self)
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        T::encode_list(self, buf);
    }
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.descend(|c| {
            let mut out: [T; N] = core::array::from_fn(|_| T::default());
            for slot in &mut out {
                *slot = T::decode_elem(c)?;
            }
            Ok(out)
        })
    }
    #[inline]
    fn field_len(&self) -> usize {
        write::delimited_len(self.elem_len())
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, self.elem_len() as u64);
        self.encode_elem(buf);
    }
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut c = r.delimited()?;
        let at = c.position();
        let v = Self::decode_elem(&mut c).map_err(short_content(at, "array"))?;
        c.finish("array")?;
        Ok(v)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        // The length-delimited content, then the element form's own level.
        self.validate_elem(deeper(depth_left)?)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let d = deeper(depth_left)?;
        self.iter().try_for_each(|v| v.validate_elem(d))
    }
}

impl<'a, T: WireView<'a> + Default, const N: usize> WireView<'a> for [T; N] {
    type View = ListView<'a, T>;
    fn view_elem(r: &mut Reader<'a>) -> Result<ListView<'a, T>, DecodeError> {
        ListView::read_array(r, N)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<ListView<'a, T>, DecodeError> {
        let mut c = r.delimited()?;
        let at = c.position();
        let v = ListView::read_array(&mut c, N).map_err(short_content(at, "array"))?;
        c.finish("array")?;
        Ok(v)
    }
    fn from_view(v: &ListView<'a, T>) -> [T; N] {
        let mut out: [T; N] = core::array::from_fn(|_| T::default());
        for (slot, e) in out.iter_mut().zip(v.iter()) {
            *slot = T::from_view(&e);
        }
        out
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
