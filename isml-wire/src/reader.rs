//! A bounds-checked cursor over received bytes (wire format §1, §5).

#[cfg(feature = "alloc")]
use bytes::Bytes;

use super::class::{Class, Presence};
use super::{DecodeError, Limits, varint};

/// A cursor over an input buffer, limited to one content region.
///
/// Every read checks the remaining length first; nested content is read through
/// a child reader limited to the declared length, one nesting level deeper.
/// Offsets in errors are positions in the whole buffer the reader was made from.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    depth_left: u32,
    max_depth: u32,
    #[cfg(feature = "alloc")]
    source: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    /// A reader over `buf` with the default [`Limits`].
    #[inline]
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_limits(buf, &Limits::DEFAULT)
    }

    /// A reader over `buf` with the given limits.
    #[inline]
    pub fn with_limits(buf: &'a [u8], limits: &Limits) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
            depth_left: limits.max_depth,
            max_depth: limits.max_depth,
            #[cfg(feature = "alloc")]
            source: None,
        }
    }

    /// A reader over nothing (an empty region).
    #[inline]
    pub fn empty() -> Reader<'static> {
        Reader::new(&[])
    }

    /// The bytes not yet read.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..self.end]
    }

    #[cfg(feature = "alloc")]
    /// A reader over `bytes` whose [`Reader::bytes`] results share `bytes`'
    /// storage instead of copying (zero-copy decode).
    #[inline]
    pub fn from_bytes(bytes: &'a Bytes, limits: &Limits) -> Self {
        let mut r = Self::with_limits(bytes, limits);
        r.source = Some(bytes);
        r
    }

    /// This reader limited to the bytes `range` of its buffer (absolute
    /// offsets, clamped to the end of its region), at the same nesting
    /// level: for one of several messages in a buffer, such as an item of a
    /// batch (wire format §2.7), read without slicing the buffer first.
    #[inline]
    pub fn region(&self, range: core::ops::Range<usize>) -> Reader<'a> {
        let end = range.end.min(self.end);
        Reader {
            pos: range.start.min(end),
            end,
            ..*self
        }
    }

    /// This reader moved to the absolute offset `pos` (an earlier
    /// [`Reader::position`] of it or of a reader it was copied from), with
    /// the same end and nesting budget. Offsets past the end are clamped.
    #[inline(always)]
    pub fn at(&self, pos: usize) -> Reader<'a> {
        Reader {
            pos: pos.min(self.end),
            ..*self
        }
    }

    /// The absolute offset of the next byte.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left in this reader's region.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Whether the region is consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// Fails unless the region is consumed: `what` names the value that
    /// should have filled it, for the error.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::ContentLength {
                at: self.pos,
                what,
                bytes: self.remaining(),
                missing: false,
            })
        }
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::UnexpectedEnd {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a `uvarint`.
    #[inline(always)]
    pub fn uvarint(&mut self) -> Result<u64, DecodeError> {
        let (v, n) = varint::get(&self.buf[self.pos..self.end], self.pos)?;
        self.pos += n;
        Ok(v)
    }

    #[inline(always)]
    fn uvarint_max(&mut self, max: u64, ty: &'static str) -> Result<u64, DecodeError> {
        let at = self.pos;
        let v = self.uvarint()?;
        if v > max {
            return Err(DecodeError::IntegerOutOfRange { at, value: v, ty });
        }
        Ok(v)
    }

    /// Reads a `uvarint` that must fit a `u8` (a `u8` field, class 1).
    #[inline(always)]
    pub fn u8_varint(&mut self) -> Result<u8, DecodeError> {
        self.uvarint_max(u8::MAX.into(), "u8").map(|v| v as u8)
    }

    /// Reads a `uvarint` that must fit a `u16`.
    #[inline(always)]
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        self.uvarint_max(u16::MAX.into(), "u16").map(|v| v as u16)
    }

    /// Reads a `uvarint` that must fit a `u32` (also enum values).
    #[inline(always)]
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        self.uvarint_max(u32::MAX.into(), "u32").map(|v| v as u32)
    }

    /// Reads a `uvarint` as `u64`.
    #[inline(always)]
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        self.uvarint()
    }

    #[inline(always)]
    fn svarint(&mut self, min: i64, max: i64, ty: &'static str) -> Result<i64, DecodeError> {
        let at = self.pos;
        let z = self.uvarint()?;
        let v = varint::unzigzag(z);
        if v < min || v > max {
            return Err(DecodeError::IntegerOutOfRange { at, value: z, ty });
        }
        Ok(v)
    }

    /// Reads an `svarint` that must fit an `i8` (an `i8` field, class 1).
    #[inline(always)]
    pub fn i8_varint(&mut self) -> Result<i8, DecodeError> {
        self.svarint(i8::MIN.into(), i8::MAX.into(), "i8")
            .map(|v| v as i8)
    }

    /// Reads an `svarint` that must fit an `i16`.
    #[inline(always)]
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        self.svarint(i16::MIN.into(), i16::MAX.into(), "i16")
            .map(|v| v as i16)
    }

    /// Reads an `svarint` that must fit an `i32`.
    #[inline(always)]
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        self.svarint(i32::MIN.into(), i32::MAX.into(), "i32")
            .map(|v| v as i32)
    }

    /// Reads an `svarint`.
    #[inline(always)]
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let z = self.uvarint()?;
        Ok(varint::unzigzag(z))
    }

    /// Reads a bool written as a varint (a `bool` field, class 1).
    #[inline(always)]
    pub fn bool_varint(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.uvarint()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidBool { at, value }),
        }
    }

    /// Reads one raw byte (`u8` element encoding).
    #[inline(always)]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    /// Reads one two's-complement byte (`i8` element encoding).
    #[inline(always)]
    pub fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(self.take(1)?[0] as i8)
    }

    /// Reads a bool byte (`bool` element encoding): `00` or `01`.
    #[inline(always)]
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        let at = self.pos;
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidBool {
                at,
                value: value.into(),
            }),
        }
    }

    /// Reads a little-endian `f32`.
    #[inline(always)]
    pub fn f32(&mut self) -> Result<f32, DecodeError> {
        let b = self.take(4)?;
        Ok(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian `f64`.
    #[inline(always)]
    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }

    /// Reads a `uvarint` length and checks it against the remaining bytes.
    #[inline(always)]
    pub fn len(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let len = self.uvarint()?;
        if len > self.remaining() as u64 {
            return Err(DecodeError::LengthOutOfBounds {
                at,
                len,
                remaining: self.remaining(),
            });
        }
        Ok(len as usize)
    }

    /// Reads `n` raw bytes.
    #[inline]
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        self.take(n)
    }

    /// Reads a length-prefixed byte string as a borrowed slice.
    #[inline(always)]
    pub fn byte_slice(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len()?;
        self.take(n)
    }

    #[cfg(feature = "alloc")]
    /// Reads a length-prefixed byte string as [`Bytes`]: shared with the input
    /// when the reader was made by [`Reader::from_bytes`], copied otherwise.
    #[inline(always)]
    pub fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.len()?;
        let start = self.pos;
        let s = self.take(n)?;
        Ok(match self.source {
            Some(src) => src.slice(start..start + n),
            None => Bytes::copy_from_slice(s),
        })
    }

    /// Reads a length-prefixed UTF-8 string as a borrowed `&str`.
    #[inline(always)]
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let n = self.len()?;
        let at = self.pos;
        let s = self.take(n)?;
        // A `match`, not `ok_or`: building the error eagerly would run
        // `DecodeError`'s drop glue on every string read.
        match crate::utf8::str_from_utf8(s) {
            Some(s) => Ok(s),
            None => Err(DecodeError::InvalidUtf8 { at }),
        }
    }

    /// Checks a length-prefixed UTF-8 string and returns its bytes, without
    /// making the `&str` (validating a list or map that is read again
    /// later): ASCII, the common case, is checked a word at a time.
    #[inline(always)]
    pub fn check_str(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len()?;
        let at = self.pos;
        let s = self.take(n)?;
        if crate::utf8::str_from_utf8(s).is_some() {
            Ok(s)
        } else {
            Err(DecodeError::InvalidUtf8 { at })
        }
    }

    /// Reads a `uvarint(n)` and returns a reader over the next `n` bytes, one
    /// nesting level deeper; this reader moves past them.
    #[inline(always)]
    pub fn delimited(&mut self) -> Result<Reader<'a>, DecodeError> {
        let n = self.len()?;
        self.sub(n)
    }

    /// A reader over the next `n` bytes (already checked to fit), one nesting level deeper.
    #[inline]
    pub fn sub(&mut self, n: usize) -> Result<Reader<'a>, DecodeError> {
        if self.depth_left == 0 {
            return Err(DecodeError::DepthExceeded {
                at: self.pos,
                max: self.max_depth,
            });
        }
        if n > self.remaining() {
            return Err(DecodeError::UnexpectedEnd {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        let child = Reader {
            buf: self.buf,
            pos: self.pos,
            end: self.pos + n,
            depth_left: self.depth_left - 1,
            max_depth: self.max_depth,
            #[cfg(feature = "alloc")]
            source: self.source,
        };
        self.pos += n;
        Ok(child)
    }

    /// Runs `f` on this reader one nesting level deeper (for values nested
    /// without a length: optionals and arrays in element form).
    #[inline]
    pub fn descend<T>(
        &mut self,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.descend_with(f)
    }

    /// Like [`Reader::descend`] for a caller with an error type of its own
    /// (one a [`DecodeError`] converts into).
    #[inline]
    pub fn descend_with<T, E: From<DecodeError>>(
        &mut self,
        f: impl FnOnce(&mut Reader<'a>) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.depth_left == 0 {
            return Err(DecodeError::DepthExceeded {
                at: self.pos,
                max: self.max_depth,
            }
            .into());
        }
        self.depth_left -= 1;
        let out = f(self);
        self.depth_left += 1;
        out
    }

    /// A reader over the bytes from `start` (an earlier position of this reader)
    /// up to the current position, one nesting level deeper.
    #[inline]
    pub fn since(&self, start: usize) -> Reader<'a> {
        Reader {
            buf: self.buf,
            pos: start,
            end: self.pos,
            depth_left: self.depth_left.saturating_sub(1),
            max_depth: self.max_depth,
            #[cfg(feature = "alloc")]
            source: self.source,
        }
    }

    /// Reads a presence field that fits one varint (tags 1-32, the common
    /// case): the classes of tags 1-32 as one word (tag t in bits
    /// `2(t-1)`). `None`, with the reader not moved, for any other form:
    /// read it with [`Reader::presence`], which also reports what is wrong
    /// with a malformed one.
    #[inline(always)]
    pub fn presence_word(&mut self) -> Option<u64> {
        match varint::get(&self.buf[self.pos..self.end], self.pos) {
            Ok((bits, n)) => {
                self.pos += n;
                Some(bits)
            }
            Err(_) => None,
        }
    }

    /// Reads the presence field that opens a message body.
    #[inline(always)]
    pub fn presence(&mut self) -> Result<Presence, DecodeError> {
        let (p, n) = Presence::read(&self.buf[self.pos..self.end], self.pos)?;
        self.pos += n;
        Ok(p)
    }

    /// Skips one value of the given class (an unknown field or variant).
    #[inline]
    pub fn skip(&mut self, class: Class) -> Result<(), DecodeError> {
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

    /// Checks that a known field or variant arrived with the class of its type.
    #[inline]
    pub fn expect_class(&self, tag: u32, found: Class, expected: Class) -> Result<(), DecodeError> {
        if found == expected {
            Ok(())
        } else {
            Err(DecodeError::ClassMismatch {
                at: self.pos,
                tag,
                expected: expected as u8,
                found: found as u8,
            })
        }
    }

    /// Reads a union key: the variant tag and the class of its value.
    #[inline]
    pub fn union_key(&mut self) -> Result<(u64, Class), DecodeError> {
        let at = self.pos;
        let key = self.uvarint()?;
        let class = Class::from_bits((key & 3) as u8);
        if class == Class::Absent {
            return Err(DecodeError::UnionClassAbsent { at });
        }
        Ok((key >> 2, class))
    }

    /// Reads the raw bytes of one value of `class` (for keeping unknown variants).
    #[inline]
    pub fn class_raw(&mut self, class: Class) -> Result<&'a [u8], DecodeError> {
        let start = self.pos;
        self.skip(class)?;
        Ok(&self.buf[start..self.pos])
    }

    #[cfg(feature = "alloc")]
    /// Like [`Reader::class_raw`], as [`Bytes`] shared with the input when possible.
    #[inline]
    pub fn class_raw_bytes(&mut self, class: Class) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        let s = self.class_raw(class)?;
        Ok(match self.source {
            Some(src) => src.slice(start..self.pos),
            None => Bytes::copy_from_slice(s),
        })
    }

    /// Checks that `bytes` is exactly one well-formed value of `class`
    /// (§5.1), as the value of an unknown union variant must be before an
    /// encoder writes it (§5.5): one canonical varint, 4 bytes, or
    /// `uvarint(n)` followed by exactly n bytes. Offsets in the error are
    /// positions in `bytes`; class 0 is [`DecodeError::UnionClassAbsent`].
    pub fn check_value(class: Class, bytes: &[u8]) -> Result<(), DecodeError> {
        if class == Class::Absent {
            return Err(DecodeError::UnionClassAbsent { at: 0 });
        }
        let mut r = Reader::new(bytes);
        r.skip(class)?;
        r.finish(match class {
            Class::Varint => "the varint",
            Class::Fixed32 => "the 4 bytes",
            _ => "the length-delimited value",
        })
    }

    /// Reads a list of fixed-width elements as its raw bytes, checking that the
    /// content is a whole number of `width`-byte elements.
    #[inline]
    pub fn fixed_list(&mut self, width: usize) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let n = self.len()?;
        if n % width != 0 {
            return Err(DecodeError::RaggedList { at, len: n, width });
        }
        self.take(n)
    }
}
