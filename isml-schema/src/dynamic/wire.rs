//! The wire primitives of the dynamic codec (wire format §1, §5): varints,
//! zigzag, a bounds-checked reader with the same nesting and canonical-form
//! rules as the runtime's reader.
//!
//! The schema compiler does not depend on the runtime (the runtime sits above
//! it), so the few primitives the dynamic codec needs are written here; the
//! parity tests in `tests/codegen` check them against generated code.

use super::{DecodeError, DecodeErrorKind};

/// The wire class of a type (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Absent = 0,
    Varint = 1,
    Fixed32 = 2,
    Delimited = 3,
}

impl Class {
    pub(crate) fn from_bits(bits: u8) -> Class {
        match bits & 3 {
            0 => Class::Absent,
            1 => Class::Varint,
            2 => Class::Fixed32,
            _ => Class::Delimited,
        }
    }
}

/// Bytes taken by `uvarint(v)`.
#[cfg(test)]
pub(crate) fn uvarint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

pub(crate) fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

pub(crate) fn put_svarint(out: &mut Vec<u8>, v: i64) {
    put_uvarint(out, zigzag(v));
}

/// `uvarint(len)` then the bytes.
pub(crate) fn put_delimited(out: &mut Vec<u8>, content: &[u8]) {
    put_uvarint(out, content.len() as u64);
    out.extend_from_slice(content);
}

/// Longest presence field: 255 tags of 2 bits in 7-bit groups.
const MAX_PRESENCE_LEN: usize = 73;

/// Writes the presence field of a body whose present tags have `classes`
/// (`(tag, class)` in ascending tag order): the 2-bit classes as one
/// base-128 bit string.
pub(crate) fn put_presence(out: &mut Vec<u8>, classes: &[(u32, Class)]) {
    let mut words = [0u64; 8];
    let mut bits = 0;
    for &(tag, class) in classes {
        let i = (tag - 1) as usize;
        words[i / 32] |= (class as u64) << ((i % 32) * 2);
        bits = 2 * i + if class as u8 >= 2 { 2 } else { 1 };
    }
    let n = bits.div_ceil(7).max(1);
    for i in 0..n {
        let bit = 7 * i;
        let (w, shift) = (bit / 64, bit % 64);
        let mut group = words[w] >> shift;
        if shift > 57 && w + 1 < words.len() {
            group |= words[w + 1] << (64 - shift);
        }
        let group = (group & 0x7f) as u8;
        out.push(if i + 1 < n { group | 0x80 } else { group });
    }
}

fn err(at: usize, kind: DecodeErrorKind, reason: impl Into<String>) -> DecodeError {
    DecodeError::new(at, kind, reason)
}

/// A cursor over one content region of the input, with a nesting budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    depth_left: u32,
    max_depth: u32,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], max_depth: u32) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
            depth_left: max_depth,
            max_depth,
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    pub(crate) fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(err(
                self.pos,
                DecodeErrorKind::ContentLength,
                format!("{} byte(s) left over after {what}", self.remaining()),
            ))
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(err(
                self.pos,
                DecodeErrorKind::UnexpectedEnd,
                format!(
                    "unexpected end of input: {} more byte(s) needed",
                    n - self.remaining()
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub(crate) fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos).filter(|_| self.pos < self.end) else {
                return Err(err(
                    self.pos,
                    DecodeErrorKind::UnexpectedEnd,
                    "unexpected end of input inside a varint",
                ));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(err(
                    start,
                    DecodeErrorKind::VarintOverflow,
                    "varint overflows 64 bits",
                ));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(err(
                        start,
                        DecodeErrorKind::NonCanonicalVarint,
                        "non-canonical varint: written longer than needed",
                    ));
                }
                return Ok(v);
            }
        }
        Err(err(
            start,
            DecodeErrorKind::VarintOverflow,
            "varint longer than 10 bytes",
        ))
    }

    /// A `uvarint` that must not exceed `max` (`ty` names the type in errors).
    pub(crate) fn uvarint_max(&mut self, max: u64, ty: &str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let v = self.uvarint()?;
        if v > max {
            return Err(err(
                at,
                DecodeErrorKind::IntegerOutOfRange,
                format!("integer {v} does not fit in {ty}"),
            ));
        }
        Ok(v)
    }

    /// An `svarint` within `min..=max`.
    pub(crate) fn svarint(&mut self, min: i64, max: i64, ty: &str) -> Result<i64, DecodeError> {
        let at = self.pos;
        let z = self.uvarint()?;
        let v = unzigzag(z);
        if v < min || v > max {
            return Err(err(
                at,
                DecodeErrorKind::IntegerOutOfRange,
                format!("integer {v} does not fit in {ty}"),
            ));
        }
        Ok(v)
    }

    fn check_bool(&self, at: usize, v: u64) -> Result<bool, DecodeError> {
        match v {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(err(
                at,
                DecodeErrorKind::InvalidBool,
                format!("invalid bool {v}: expected 0 or 1"),
            )),
        }
    }

    pub(crate) fn bool_varint(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        let v = self.uvarint()?;
        self.check_bool(at, v)
    }

    pub(crate) fn bool_byte(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        let v = self.take(1)?[0];
        self.check_bool(at, v.into())
    }

    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn f32(&mut self) -> Result<f32, DecodeError> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// A `uvarint` length checked against the remaining bytes.
    pub(crate) fn len(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.uvarint()?;
        if len > self.remaining() as u64 {
            return Err(err(
                at,
                DecodeErrorKind::LengthOutOfBounds,
                format!(
                    "length {len} exceeds the {} byte(s) remaining",
                    self.remaining()
                ),
            ));
        }
        Ok(len as usize)
    }

    pub(crate) fn byte_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len()?;
        self.take(n)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.len()?;
        let at = self.pos;
        let s = self.take(n)?;
        std::str::from_utf8(s)
            .map_err(|_| err(at, DecodeErrorKind::InvalidUtf8, "invalid UTF-8 in string"))
    }

    fn depth_error(&self) -> DecodeError {
        err(
            self.pos,
            DecodeErrorKind::DepthExceeded,
            format!("nesting deeper than {} levels", self.max_depth),
        )
    }

    /// A reader over the next length-delimited content, one level deeper.
    pub(crate) fn delimited(&mut self) -> Result<Reader<'a>, DecodeError> {
        let n = self.len()?;
        if self.depth_left == 0 {
            return Err(self.depth_error());
        }
        let child = Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + n,
            depth_left: self.depth_left - 1,
            max_depth: self.max_depth,
        };
        self.pos += n;
        Ok(child)
    }

    /// Runs `f` one nesting level deeper (values nested without a length).
    pub(crate) fn descend<T>(
        &mut self,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        if self.depth_left == 0 {
            return Err(self.depth_error());
        }
        self.depth_left -= 1;
        let out = f(self);
        self.depth_left += 1;
        out
    }

    /// The presence field (§5.2): `(tag, class)` of every present tag.
    pub(crate) fn presence(&mut self) -> Result<Vec<(u32, Class)>, DecodeError> {
        let at = self.pos;
        let mut words = [0u64; 8];
        let mut len = 0;
        loop {
            if self.pos >= self.end {
                return Err(err(
                    self.pos,
                    DecodeErrorKind::UnexpectedEnd,
                    "unexpected end of input inside a presence field",
                ));
            }
            if len == MAX_PRESENCE_LEN {
                return Err(err(
                    at,
                    DecodeErrorKind::BadPresence,
                    "bad presence field: longer than 73 bytes",
                ));
            }
            let b = self.buf[self.pos];
            self.pos += 1;
            let bit = 7 * len;
            let (w, shift) = (bit / 64, bit % 64);
            let group = u64::from(b & 0x7f);
            words[w] |= group << shift;
            if shift > 57 && w + 1 < words.len() {
                words[w + 1] |= group >> (64 - shift);
            }
            len += 1;
            if b < 0x80 {
                if b == 0 && len > 1 {
                    return Err(err(
                        at,
                        DecodeErrorKind::BadPresence,
                        "bad presence field: ends with a zero byte",
                    ));
                }
                break;
            }
        }
        if words[7] >> 62 != 0 {
            return Err(err(
                at,
                DecodeErrorKind::BadPresence,
                "bad presence field: class bits set for a tag above 255",
            ));
        }
        let mut out = Vec::new();
        for tag in 1..=255u32 {
            let i = (tag - 1) as usize;
            let class = Class::from_bits((words[i / 32] >> ((i % 32) * 2)) as u8);
            if class != Class::Absent {
                out.push((tag, class));
            }
        }
        Ok(out)
    }

    pub(crate) fn skip(&mut self, class: Class) -> Result<(), DecodeError> {
        match class {
            Class::Absent => Ok(()),
            Class::Varint => self.uvarint().map(drop),
            Class::Fixed32 => self.take(4).map(drop),
            Class::Delimited => {
                let n = self.len()?;
                self.take(n).map(drop)
            }
        }
    }

    /// The raw bytes of one value of `class`.
    pub(crate) fn class_raw(&mut self, class: Class) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        self.skip(class)?;
        Ok(&self.buf[start..self.pos])
    }

    /// A union key: the tag and the class of its value.
    pub(crate) fn union_key(&mut self) -> Result<(u64, Class), DecodeError> {
        let at = self.pos;
        let key = self.uvarint()?;
        let class = Class::from_bits((key & 3) as u8);
        if class == Class::Absent {
            return Err(err(
                at,
                DecodeErrorKind::UnionClassAbsent,
                "union key has class 0",
            ));
        }
        Ok((key >> 2, class))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_spec_table() {
        for (v, hex) in [
            (0u64, "00"),
            (127, "7f"),
            (128, "8001"),
            (300, "ac02"),
            (u64::MAX, "ffffffffffffffffff01"),
        ] {
            let mut out = Vec::new();
            put_uvarint(&mut out, v);
            let got: String = out.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, hex);
            assert_eq!(uvarint_len(v), out.len());
            assert_eq!(Reader::new(&out, 32).uvarint().unwrap(), v);
        }
        assert_eq!(unzigzag(zigzag(i64::MIN)), i64::MIN);
        assert_eq!(zigzag(-1500), 2999);
    }

    #[test]
    fn non_canonical_and_overflowing_varints_are_rejected() {
        let e = Reader::new(&[0x80, 0x00], 32).uvarint().unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::NonCanonicalVarint);
        let e = Reader::new(&[0xff; 10], 32).uvarint().unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::VarintOverflow);
        let e = Reader::new(&[0x80], 32).uvarint().unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::UnexpectedEnd);
    }
}
