//! Unsigned LEB128 varints and zigzag mapping (wire format §1.1, §1.2).

use bytes::BufMut;

use super::DecodeError;

/// The longest varint: 64 bits in 7-bit groups.
pub const MAX_VARINT_LEN: usize = 10;

/// Number of bytes `uvarint(value)` takes on the wire.
#[inline]
pub const fn len(value: u64) -> usize {
    // ((bits - 1) / 7) + 1, with bits >= 1; written so it folds to a few instructions.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    (bits * 9 + 64) / 64
}

/// Writes `uvarint(value)`.
#[inline(always)]
pub fn put<B: BufMut + ?Sized>(buf: &mut B, value: u64) {
    if value < 0x80 {
        buf.put_u8(value as u8);
    } else if value < 0x4000 {
        // Two bytes in one write: one capacity check instead of two.
        buf.put_u16_le((value as u16 & 0x7f) | 0x80 | ((value as u16 >> 7) << 8));
    } else {
        put_long(buf, value);
    }
}

#[inline]
fn put_long<B: BufMut + ?Sized>(buf: &mut B, mut value: u64) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

/// Reads a canonical `uvarint` from the start of `src`.
///
/// Returns the value and the number of bytes it took. `at` is the absolute offset
/// of `src[0]`, used in errors.
#[inline(always)]
pub fn get(src: &[u8], at: usize) -> Result<(u64, usize), DecodeError> {
    match src {
        [b0, ..] if *b0 < 0x80 => Ok((u64::from(*b0), 1)),
        [b0, b1, ..] if *b1 < 0x80 => {
            if *b1 == 0 {
                return Err(DecodeError::NonCanonicalVarint { at });
            }
            Ok((u64::from(b0 & 0x7f) | u64::from(*b1) << 7, 2))
        }
        [b0, b1, b2, ..] if *b2 < 0x80 => {
            if *b2 == 0 {
                return Err(DecodeError::NonCanonicalVarint { at });
            }
            Ok((
                u64::from(b0 & 0x7f) | u64::from(b1 & 0x7f) << 7 | u64::from(*b2) << 14,
                3,
            ))
        }
        _ => get_long(src, at),
    }
}

/// Four bytes and more: a word at a time when eight bytes are there (a
/// 32-bit value takes five), a byte at a time otherwise.
#[inline]
fn get_long(src: &[u8], at: usize) -> Result<(u64, usize), DecodeError> {
    if let Some(word) = src.first_chunk::<8>() {
        let w = u64::from_le_bytes(*word);
        // The first byte without the continuation bit ends the varint.
        let stops = !w & 0x8080_8080_8080_8080;
        if stops != 0 {
            let n = (stops.trailing_zeros() / 8) as usize + 1;
            let last = word[n - 1];
            if last == 0 {
                return Err(DecodeError::NonCanonicalVarint { at });
            }
            let mut value = 0u64;
            for (i, b) in word[..n].iter().enumerate() {
                value |= u64::from(b & 0x7f) << (7 * i);
            }
            return Ok((value, n));
        }
    }
    get_slow(src, at)
}

#[cold]
fn get_slow(src: &[u8], at: usize) -> Result<(u64, usize), DecodeError> {
    let mut value: u64 = 0;
    for (i, &b) in src.iter().enumerate().take(MAX_VARINT_LEN) {
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err(DecodeError::VarintOverflow { at });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if b == 0 && i > 0 {
                return Err(DecodeError::NonCanonicalVarint { at });
            }
            return Ok((value, i + 1));
        }
    }
    if src.len() >= MAX_VARINT_LEN {
        // Ten bytes all with the continuation bit set.
        Err(DecodeError::VarintOverflow { at })
    } else {
        Err(DecodeError::UnexpectedEnd {
            at: at + src.len(),
            needed: 1,
        })
    }
}

/// Maps a signed integer to an unsigned one so that small magnitudes stay small.
#[inline]
pub const fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub const fn unzigzag(z: u64) -> i64 {
    ((z >> 1) as i64) ^ -((z & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{boxed::Box, format, string::String, vec, vec::Vec};

    #[test]
    fn len_matches_encoding() {
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                let mut out = Vec::new();
                put(&mut out, v);
                assert_eq!(out.len(), len(v), "value {v}");
                assert_eq!(get(&out, 0).unwrap(), (v, out.len()));
            }
        }
        assert_eq!(len(u64::MAX), 10);
        assert_eq!(len(0), 1);
    }

    /// LEB128 as the wire format states it, a byte per 7-bit group.
    fn reference(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let group = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(group);
                return out;
            }
            out.push(group | 0x80);
        }
    }

    #[test]
    fn put_writes_the_reference_bytes() {
        // Every length, at both ends of it and with every group pattern
        // the spread word has to move (all ones, alternating, sparse).
        let mut values = vec![0u64, u64::MAX];
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                values.push(v);
                values.push(v ^ 0x5555_5555_5555_5555);
                values.push(v & 0x8102_0408_1020_4081);
            }
        }
        for v in values {
            // Through `Vec` and through a slice, after other bytes.
            let mut out = vec![0xaa];
            put(&mut out, v);
            assert_eq!(out[1..], reference(v)[..], "value {v:#x}");
            let mut room = [0u8; 11];
            let mut slice = &mut room[..];
            put(&mut slice, v);
            assert_eq!(room[..len(v)], reference(v)[..], "value {v:#x}");
        }
    }

    #[test]
    fn reads_the_same_with_bytes_after_the_varint() {
        // With eight or more bytes available, long varints take the
        // word-at-a-time path: it must agree with the byte path.
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                let mut out = Vec::new();
                put(&mut out, v);
                let n = out.len();
                for pad in [0x00u8, 0x7f, 0x80, 0xff] {
                    // Every amount of room after it: the byte path below
                    // eight bytes, the word path from eight.
                    for room in 0..=9 {
                        let mut padded = out.clone();
                        padded.extend(core::iter::repeat_n(pad, room));
                        assert_eq!(
                            get(&padded, 3),
                            Ok((v, n)),
                            "value {v} pad {pad:#x} room {room}"
                        );
                    }
                }
            }
        }
        // Non-canonical forms, with and without room for a word.
        for len in 2..=10 {
            let mut bytes = vec![0x80u8; len - 1];
            bytes.push(0);
            let mut padded = bytes.clone();
            padded.extend_from_slice(&[1; 8]);
            for b in [&bytes, &padded] {
                assert_eq!(get(b, 2), Err(DecodeError::NonCanonicalVarint { at: 2 }));
            }
        }
    }

    #[test]
    fn rejects_bad_forms() {
        assert_eq!(
            get(&[0x80, 0x00], 5),
            Err(DecodeError::NonCanonicalVarint { at: 5 })
        );
        assert_eq!(
            get(&[0xff; 10], 0),
            Err(DecodeError::VarintOverflow { at: 0 })
        );
        let mut eleven = [0xffu8; 11];
        eleven[10] = 0;
        assert_eq!(get(&eleven, 0), Err(DecodeError::VarintOverflow { at: 0 }));
        let mut big = [0xffu8; 10];
        big[9] = 0x02;
        assert_eq!(get(&big, 0), Err(DecodeError::VarintOverflow { at: 0 }));
        assert_eq!(
            get(&[0x80, 0x80], 3),
            Err(DecodeError::UnexpectedEnd { at: 5, needed: 1 })
        );
    }

    #[test]
    fn zigzag_examples() {
        for (n, z) in [(0i64, 0u64), (-1, 1), (1, 2), (-2, 3), (i64::MIN, u64::MAX)] {
            assert_eq!(zigzag(n), z);
            assert_eq!(unzigzag(z), n);
        }
    }
}
