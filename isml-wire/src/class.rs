//! Wire classes and presence bitmaps (wire format §5.1, §5.2).

use bytes::BufMut;

use super::{DecodeError, varint};

/// The highest field or variant tag the wire format allows.
pub const MAX_TAG: u32 = 255;

/// The largest tag a union key (`uvarint(tag * 4 + class)`, §5.5) can
/// carry, 2^62-1: an unknown variant's tag may be anything up to it.
pub const MAX_UNION_TAG: u64 = u64::MAX >> 2;

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

/// Longest presence field: 255 tags of 2 bits in 7-bit groups.
pub const MAX_PRESENCE_LEN: usize = 73;

/// The presence field of a message body being built (wire format §5.2): the
/// 2-bit class of every tag, written as a base-128 bit string. `BYTES` is
/// `ceil(highest declared tag / 4)`, so it lives on the stack.
#[derive(Debug, Clone)]
pub struct PresenceWriter<const BYTES: usize> {
    /// The presence value itself when every tag is at most 32
    /// (`BYTES <= 8`): it is then one `uvarint`, built with one `or` per
    /// field and measured and written without the byte array.
    word: u64,
    highest: u32,
    top_class: u8,
    bits: [u8; BYTES],
}

impl<const BYTES: usize> Default for PresenceWriter<BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const BYTES: usize> PresenceWriter<BYTES> {
    /// No field present.
    #[inline]
    pub const fn new() -> Self {
        PresenceWriter {
            word: 0,
            highest: 0,
            top_class: 0,
            bits: [0; BYTES],
        }
    }

    /// Marks `tag` (1 ..= 4 * BYTES) present with `class`. Tags must be set in
    /// ascending order (generated code does).
    #[inline]
    pub fn set(&mut self, tag: u32, class: Class) {
        if BYTES <= 8 {
            self.word |= (class as u64) << (2 * (tag - 1));
            return;
        }
        let i = (tag - 1) as usize;
        self.bits[i / 4] |= (class as u8) << ((i % 4) * 2);
        self.highest = tag;
        self.top_class = class as u8;
    }

    /// Number of significant bits of the presence value.
    #[inline]
    fn significant_bits(&self) -> usize {
        if self.highest == 0 {
            0
        } else {
            2 * (self.highest as usize - 1) + if self.top_class >= 2 { 2 } else { 1 }
        }
    }

    /// Bytes the presence field takes.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        if BYTES <= 8 {
            return varint::len(self.word);
        }
        self.significant_bits().div_ceil(7).max(1)
    }

    /// Writes the presence field.
    #[inline]
    pub fn encode<B: BufMut + ?Sized>(&self, buf: &mut B) {
        if BYTES <= 8 {
            varint::put(buf, self.word);
            return;
        }
        let n = self.encoded_len();
        for i in 0..n {
            let bit = 7 * i;
            let (idx, shift) = (bit / 8, bit % 8);
            let lo = u16::from(self.bits.get(idx).copied().unwrap_or(0));
            let hi = u16::from(self.bits.get(idx + 1).copied().unwrap_or(0));
            let group = (((hi << 8) | lo) >> shift) as u8 & 0x7f;
            buf.put_u8(if i + 1 < n { group | 0x80 } else { group });
        }
    }
}

/// Classes of tags 33-255 of a long presence field: boxed when a heap is
/// available, so that the common one-word [`Presence`] stays small.
#[cfg(feature = "alloc")]
type Spill = alloc::boxed::Box<[u64; 7]>;
#[cfg(not(feature = "alloc"))]
type Spill = [u64; 7];

/// A decoded presence field, iterated in ascending tag order.
///
/// Messages with up to 32 tags (the usual case) keep their classes in one
/// word; longer presence fields spill into a second array (boxed with the
/// `alloc` feature).
#[derive(Debug, Clone)]
pub struct Presence {
    first: u64,
    rest: Option<Spill>,
    word: usize,
    highest: u32,
}

impl Default for Presence {
    /// No field present (the presence field `00`).
    fn default() -> Self {
        Presence {
            first: 0,
            rest: None,
            word: 0,
            highest: 0,
        }
    }
}

impl Presence {
    /// Reads a presence field from the start of `src` (`at` is its offset);
    /// returns it and its length.
    #[inline(always)]
    pub(crate) fn read(src: &[u8], at: usize) -> Result<(Presence, usize), DecodeError> {
        // Up to 32 tags fit one varint: the common case.
        if let Ok((v, n)) = varint::get(src, at) {
            let highest = if v == 0 {
                0
            } else {
                (63 - v.leading_zeros()) / 2 + 1
            };
            return Ok((
                Presence {
                    first: v,
                    rest: None,
                    word: 0,
                    highest,
                },
                n,
            ));
        }
        Self::read_long(src, at)
    }

    fn read_long(src: &[u8], at: usize) -> Result<(Presence, usize), DecodeError> {
        let mut words = [0u64; 8];
        let mut len = 0;
        loop {
            let Some(&b) = src.get(len) else {
                return Err(DecodeError::UnexpectedEnd {
                    at: at + len,
                    needed: 1,
                });
            };
            if len == MAX_PRESENCE_LEN {
                return Err(DecodeError::BadPresence {
                    at,
                    reason: "presence field longer than 73 bytes",
                });
            }
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
                    return Err(DecodeError::BadPresence {
                        at,
                        reason: "presence field ends with a zero byte",
                    });
                }
                break;
            }
        }
        // Bit 510 would be the class of a tag above 255.
        if words[7] >> 62 != 0 {
            return Err(DecodeError::BadPresence {
                at,
                reason: "class bits set for a tag above 255",
            });
        }
        let highest = match words.iter().rposition(|&w| w != 0) {
            Some(i) => (i as u32) * 32 + (63 - words[i].leading_zeros()) / 2 + 1,
            None => 0,
        };
        let mut rest = [0u64; 7];
        rest.copy_from_slice(&words[1..]);
        Ok((
            Presence {
                first: words[0],
                rest: Some(Spill::from(rest)),
                word: 0,
                highest,
            },
            len,
        ))
    }

    /// The highest tag present (0 when none is).
    pub fn highest(&self) -> u32 {
        self.highest
    }

    /// The classes of tags 1-32 as one word (tag t in bits `2(t-1)`), when the
    /// field has no tag above 32 and none outside `known` (generated decoders
    /// then read the known fields in a straight line).
    #[inline(always)]
    pub fn only_known(&self, known: u64) -> Option<u64> {
        (self.rest.is_none() && self.word == 0 && self.first & !known == 0).then_some(self.first)
    }
}

impl Iterator for Presence {
    type Item = (u32, Class);

    #[inline]
    fn next(&mut self) -> Option<(u32, Class)> {
        loop {
            let w = if self.word == 0 {
                self.first
            } else {
                self.rest.as_ref()?.get(self.word - 1).copied()?
            };
            if w != 0 {
                let group = w.trailing_zeros() / 2;
                let class = (w >> (group * 2)) as u8 & 3;
                let cleared = w & !(3u64 << (group * 2));
                if self.word == 0 {
                    self.first = cleared;
                } else if let Some(rest) = self.rest.as_mut() {
                    rest[self.word - 1] = cleared;
                }
                return Some((self.word as u32 * 32 + group + 1, Class::from_bits(class)));
            }
            if self.word == 0 && self.rest.is_none() {
                return None;
            }
            self.word += 1;
        }
    }
}
