//! UTF-8 checks for strings read from the wire.
//!
//! Strings on a device link are mostly ASCII (device ids, variable names,
//! log text). `core::str::from_utf8` checks them a byte at a time until its
//! input is word-aligned, which for the short strings of a message is most
//! of the string; `<[u8]>::is_ascii` reads them a word at a time from the
//! first byte. [`str_from_utf8`] takes that path first and falls back to
//! the full check for anything else.

/// `bytes` as a `&str` when they are UTF-8, `None` otherwise.
///
/// The same answer as `core::str::from_utf8(bytes).ok()`; ASCII input is
/// checked a word at a time.
#[inline(always)]
pub fn str_from_utf8(bytes: &[u8]) -> Option<&str> {
    if is_ascii(bytes) {
        #[allow(unsafe_code)]
        // SAFETY: every byte is below 0x80, and any sequence of ASCII bytes
        // is valid UTF-8.
        let s = unsafe { core::str::from_utf8_unchecked(bytes) };
        Some(s)
    } else {
        core::str::from_utf8(bytes).ok()
    }
}

/// Whether every byte is below 0x80. Strings of a message are short: up
/// to 64 bytes they are read as whole (overlapping) words with no loop
/// set-up and no alignment step; longer ones take `<[u8]>::is_ascii`.
#[inline(always)]
fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if b.len() > 64 {
        return b.is_ascii();
    }
    if let Some(tail) = b.last_chunk::<8>() {
        // Eight bytes or more: every whole word from the start, and the
        // last eight bytes (overlapping the last whole word).
        let mut acc = u64::from_le_bytes(*tail);
        let mut rest = b;
        while let Some((word, after)) = rest.split_first_chunk::<8>() {
            acc |= u64::from_le_bytes(*word);
            rest = after;
        }
        acc & HIGH == 0
    } else if let (Some(head), Some(tail)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        (u32::from_le_bytes(*head) | u32::from_le_bytes(*tail)) & 0x8080_8080 == 0
    } else {
        b.iter().fold(0, |acc, c| acc | c) & 0x80 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_core_on_every_short_input_class() {
        let cases: &[&[u8]] = &[
            b"",
            b"charger",
            b"cabinet-0042 slot 7 reported 3600 mV",
            "temp 21\u{b0}C".as_bytes(),
            "\u{1f50c}".as_bytes(),
            b"\x80",
            b"ascii then \xff",
            b"\xc3",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
        ];
        for case in cases {
            assert_eq!(
                str_from_utf8(case),
                core::str::from_utf8(case).ok(),
                "{case:?}"
            );
        }
    }

    #[test]
    fn one_high_byte_anywhere_in_any_length_is_seen() {
        for len in 0..=80 {
            let ascii = [b'a'; 80];
            assert!(is_ascii(&ascii[..len]));
            for at in 0..len {
                let mut b = ascii;
                b[at] = 0x80;
                assert!(!is_ascii(&b[..len]), "len {len} at {at}");
                assert_eq!(str_from_utf8(&b[..len]), None);
            }
        }
    }

    #[test]
    fn agrees_with_core_on_every_two_byte_input() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let case = [b'x', a, b];
                assert_eq!(str_from_utf8(&case), core::str::from_utf8(&case).ok());
            }
        }
    }
}
