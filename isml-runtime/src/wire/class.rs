//! Wire classes and presence bitmaps (wire format §5.1, §5.2).

use bytes::BufMut;

use super::{DecodeError, varint};

/// The highest field or variant tag the wire format allows.
pub const MAX_TAG: u32 = 255;

/// How a reader that does not know a type skips its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Class {
    /// Not present (only in a presence bitmap).
    Absent = 0,
    /// One varint.
    Varint = 1,
    /// Four bytes.
    Fixed32 = 2,
    /// A varint length and that many bytes.
    Delimited = 3,
}

impl Class {
    /// The class of the two low bits of `bits`.
    #[inline]
    pub const fn from_bits(bits: u8) -> Class {
        match bits & 3 {
            0 => Class::Absent,
            1 => Class::Varint,
            2 => Class::Fixed32,
            _ => Class::Delimited,
        }
    }
}

/// A presence bitmap being built for a message body; `BYTES` is
/// `ceil(highest declared tag / 4)`, so the bitmap lives on the stack.
#[derive(Debug, Clone)]
pub struct PresenceWriter<const BYTES: usize> {
    highest: u32,
    bits: [u8; BYTES],
}

impl<const BYTES: usize> Default for PresenceWriter<BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const BYTES: usize> PresenceWriter<BYTES> {
    /// An empty bitmap: no field present.
    #[inline]
    pub const fn new() -> Self {
        PresenceWriter {
            highest: 0,
            bits: [0; BYTES],
        }
    }

    /// Marks `tag` (1 ..= 4 * BYTES) present with `class`. Tags must be set in
    /// ascending order (generated code does).
    #[inline]
    pub fn set(&mut self, tag: u32, class: Class) {
        let i = (tag - 1) as usize;
        self.bits[i / 4] |= (class as u8) << ((i % 4) * 2);
        self.highest = tag;
    }

    /// Bytes taken by `uvarint(N)` and the bitmap.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        varint::len(u64::from(self.highest)) + self.highest.div_ceil(4) as usize
    }

    /// Writes `uvarint(N)` and the bitmap.
    #[inline]
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, u64::from(self.highest));
        buf.put_slice(&self.bits[..self.highest.div_ceil(4) as usize]);
    }
}

/// A decoded presence bitmap, iterated in ascending tag order.
#[derive(Debug, Clone)]
pub struct Presence<'a> {
    bits: &'a [u8],
    next: u32,
    highest: u32,
}

impl<'a> Presence<'a> {
    /// Validates the bitmap of a body whose `N` is `highest`; `at` is the bitmap's offset.
    pub(crate) fn new(bits: &'a [u8], highest: u32, at: usize) -> Result<Self, DecodeError> {
        if highest > 0 {
            let i = (highest - 1) as usize;
            let last = bits[i / 4];
            let shift = (i % 4) * 2;
            if (last >> shift) & 3 == 0 {
                return Err(DecodeError::BadPresence {
                    at,
                    reason: "the highest tag N is marked absent",
                });
            }
            if shift < 6 && last >> (shift + 2) != 0 {
                return Err(DecodeError::BadPresence {
                    at,
                    reason: "bits set for tags above N",
                });
            }
        }
        Ok(Presence {
            bits,
            next: 1,
            highest,
        })
    }

    /// The highest tag present (N).
    pub fn highest(&self) -> u32 {
        self.highest
    }
}

impl Iterator for Presence<'_> {
    type Item = (u32, Class);

    #[inline]
    fn next(&mut self) -> Option<(u32, Class)> {
        while self.next <= self.highest {
            let i = (self.next - 1) as usize;
            let tag = self.next;
            self.next += 1;
            let class = (self.bits[i / 4] >> ((i % 4) * 2)) & 3;
            if class != 0 {
                return Some((tag, Class::from_bits(class)));
            }
        }
        None
    }
}
