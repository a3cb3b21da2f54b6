//! CRC-32C (Castagnoli), the check of serial frames (wire format §4).
//!
//! Reflected polynomial `0x82F63B78`, initial value and final XOR
//! `0xFFFFFFFF` (the parameters also called CRC-32/ISCSI). One 256-entry
//! table, built at compile time, and one table lookup per byte: serial links
//! run at kilobytes per second, so a wider slicing table would buy nothing.

/// The reflected CRC-32C polynomial.
const POLY: u32 = 0x82f6_3b78;

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// An incremental CRC-32C computation.
///
/// ```
/// use isml_wire::Crc32c;
///
/// let mut crc = Crc32c::new();
/// crc.update(b"1234");
/// crc.update(b"56789");
/// assert_eq!(crc.finalize(), 0xe306_9283);
/// assert_eq!(Crc32c::checksum(b"123456789"), 0xe306_9283);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Crc32c(u32);

impl Default for Crc32c {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32c {
    /// A computation over no bytes yet.
    #[inline]
    pub const fn new() -> Self {
        Crc32c(!0)
    }

    /// Feeds `bytes`.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.0;
        for &b in bytes {
            crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.0 = crc;
    }

    /// The CRC of the bytes fed so far.
    #[inline]
    pub const fn finalize(self) -> u32 {
        !self.0
    }

    /// The CRC-32C of `bytes`.
    #[inline]
    pub fn checksum(bytes: &[u8]) -> u32 {
        let mut c = Crc32c::new();
        c.update(bytes);
        c.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{boxed::Box, format, string::String, vec, vec::Vec};

    #[test]
    fn check_values() {
        // The catalogue check value of CRC-32/ISCSI, and values from RFC 3720
        // appendix B.4 (32 bytes of zeros, of 0xff, ascending, descending).
        assert_eq!(Crc32c::checksum(b"123456789"), 0xe306_9283);
        assert_eq!(Crc32c::checksum(b""), 0);
        assert_eq!(Crc32c::checksum(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(Crc32c::checksum(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(Crc32c::checksum(&ascending), 0x46dd_794e);
        let descending: [u8; 32] = core::array::from_fn(|i| 31 - i as u8);
        assert_eq!(Crc32c::checksum(&descending), 0x113f_db5c);
    }

    #[test]
    fn split_updates_agree() {
        let data: [u8; 100] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for cut in 0..=data.len() {
            let mut c = Crc32c::new();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.finalize(), Crc32c::checksum(&data));
        }
    }
}
