//! Bools, integers and floats: varints, zigzag varints, raw bytes and
//! little-endian floats (wire format §1, §5.1, §5.3).

use super::*;

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
    ($t:ty, $wide:ty, $read:ident, $len:path, $put:path, $raw:path) => {
        impl Wire for $t {
            const CLASS: Class = Class::Varint;
            const ELEM_FORM: ElemForm = ElemForm::Varint;
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
            #[inline(always)]
            fn fit_elem(&self, w: &mut Fit<'_>) {
                w.put_varint($raw(<$wide>::from(*self)));
            }
            #[inline(always)]
            fn fit_field(&self, w: &mut Fit<'_>) {
                self.fit_elem(w);
            }
        }
        scalar_view!($t);
    };
}
/// The varint of an unsigned integer is of the value itself.
#[inline(always)]
const fn same(v: u64) -> u64 {
    v
}
varint_int!(u16, u64, u16, varint::len, varint::put, same);
varint_int!(u32, u64, u32, varint::len, varint::put, same);
varint_int!(u64, u64, u64, varint::len, varint::put, same);
varint_int!(
    i16,
    i64,
    i16,
    write::svarint_len,
    write::svarint,
    varint::zigzag
);
varint_int!(
    i32,
    i64,
    i32,
    write::svarint_len,
    write::svarint,
    varint::zigzag
);
varint_int!(
    i64,
    i64,
    i64,
    write::svarint_len,
    write::svarint,
    varint::zigzag
);

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
