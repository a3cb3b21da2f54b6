//! `String` and `Bytes`: a length and the bytes; views borrow them.

use super::*;

impl Wire for String {
    const CLASS: Class = Class::Delimited;
    const ELEM_FORM: ElemForm = ElemForm::Delimited;
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
    #[inline(always)]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = r.byte_slice()?;
        match crate::wire::utf8::str_from_utf8(bytes) {
            Some(s) => Ok(String::from(s)),
            None => Err(invalid_utf8(r.position() - bytes.len())),
        }
    }
    #[inline]
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    #[inline(always)]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_elem(r)
    }
    #[inline(always)]
    fn key_before(a: &Self, b: &Self) -> bool {
        bytes_before(a.as_bytes(), b.as_bytes())
    }
    #[inline(always)]
    fn fit_field(&self, w: &mut Fit<'_>) {
        w.put_delimited(self.as_bytes());
    }
    #[inline(always)]
    fn fit_elem(&self, w: &mut Fit<'_>) {
        w.put_delimited(self.as_bytes());
    }
}

#[cold]
fn invalid_utf8(at: usize) -> DecodeError {
    DecodeError::InvalidUtf8 { at }
}

impl<'a> WireView<'a> for String {
    type View = &'a str;
    #[inline(always)]
    fn view_elem(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
        r.str()
    }
    #[inline(always)]
    fn view_field(r: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
        r.str()
    }
    #[inline]
    fn check_elem(r: &mut Reader<'a>) -> Result<(), DecodeError> {
        r.check_str().map(drop)
    }
    const BYTE_KEY: bool = true;
    #[inline]
    fn check_byte_key(r: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
        r.check_str()
    }
    fn from_view(v: &&'a str) -> String {
        String::from(*v)
    }
}

impl Wire for Bytes {
    const CLASS: Class = Class::Delimited;
    const ELEM_FORM: ElemForm = ElemForm::Delimited;
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
    #[inline(always)]
    fn key_before(a: &Self, b: &Self) -> bool {
        bytes_before(a, b)
    }
    #[inline(always)]
    fn fit_field(&self, w: &mut Fit<'_>) {
        w.put_delimited(self);
    }
    #[inline(always)]
    fn fit_elem(&self, w: &mut Fit<'_>) {
        w.put_delimited(self);
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
    #[inline]
    fn check_elem(r: &mut Reader<'a>) -> Result<(), DecodeError> {
        r.byte_slice().map(drop)
    }
    const BYTE_KEY: bool = true;
    fn from_view(v: &&'a [u8]) -> Bytes {
        Bytes::copy_from_slice(v)
    }
}
