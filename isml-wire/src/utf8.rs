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
    if bytes.is_ascii() {
        #[allow(unsafe_code)]
        // SAFETY: every byte is below 0x80, and any sequence of ASCII bytes
        // is valid UTF-8.
        let s = unsafe { core::str::from_utf8_unchecked(bytes) };
        Some(s)
    } else {
        core::str::from_utf8(bytes).ok()
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
    fn agrees_with_core_on_every_two_byte_input() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let case = [b'x', a, b];
                assert_eq!(str_from_utf8(&case), core::str::from_utf8(&case).ok());
            }
        }
    }
}
