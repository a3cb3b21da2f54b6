//! Encoding primitives (wire format §1, §5). They write into any [`BufMut`] and
//! never allocate; each has a `*_len` companion so lengths can be computed first.

use bytes::BufMut;

use super::class::Class;
use super::varint;

/// Writes a `uvarint`.
#[inline]
pub fn uvarint<B: BufMut + ?Sized>(buf: &mut B, v: u64) {
    varint::put(buf, v);
}

/// Length of a `uvarint`.
#[inline]
pub const fn uvarint_len(v: u64) -> usize {
    varint::len(v)
}

/// Writes an `svarint` (zigzag, then varint).
#[inline]
pub fn svarint<B: BufMut + ?Sized>(buf: &mut B, v: i64) {
    varint::put(buf, varint::zigzag(v));
}

/// Length of an `svarint`.
#[inline]
pub const fn svarint_len(v: i64) -> usize {
    varint::len(varint::zigzag(v))
}

/// Writes a little-endian `f32`.
#[inline]
pub fn f32<B: BufMut + ?Sized>(buf: &mut B, v: f32) {
    buf.put_f32_le(v);
}

/// Writes a little-endian `f64`.
#[inline]
pub fn f64<B: BufMut + ?Sized>(buf: &mut B, v: f64) {
    buf.put_f64_le(v);
}

/// Writes one raw byte (`u8`, `i8` as two's complement, `bool` element encodings).
#[inline]
pub fn byte<B: BufMut + ?Sized>(buf: &mut B, v: u8) {
    buf.put_u8(v);
}

/// Writes `uvarint(len)` followed by the bytes (`string`, `bytes`).
#[inline]
pub fn len_prefixed<B: BufMut + ?Sized>(buf: &mut B, data: &[u8]) {
    varint::put(buf, data.len() as u64);
    buf.put_slice(data);
}

/// Length of `uvarint(n)` plus `n`: a length-delimited value with `n` bytes of content.
#[inline]
pub const fn delimited_len(n: usize) -> usize {
    varint::len(n as u64) + n
}

/// Writes a union key: `uvarint(tag * 4 + class)`.
#[inline]
pub fn union_key<B: BufMut + ?Sized>(buf: &mut B, tag: u32, class: Class) {
    varint::put(buf, (u64::from(tag) << 2) | class as u64);
}

/// Length of a union key.
#[inline]
pub const fn union_key_len(tag: u32) -> usize {
    varint::len((tag as u64) << 2)
}

/// Whether an `f32` field holds the default (+0.0, by bit pattern) and is omitted.
#[inline]
pub fn f32_is_default(v: f32) -> bool {
    v.to_bits() == 0
}

/// Whether an `f64` field holds the default (+0.0, by bit pattern) and is omitted.
#[inline]
pub fn f64_is_default(v: f64) -> bool {
    v.to_bits() == 0
}
