//! The one-pass writer of `encode_to_vec`: a fixed buffer on the stack,
//! nested lengths written after their content (§5.3's length prefix is
//! reserved as one byte and widened when the content turns out longer).

use core::mem::MaybeUninit;

use bytes::BufMut;
use bytes::buf::UninitSlice;

use crate::wire::varint;

/// A writer over a fixed buffer that notes a write that does not fit
/// instead of panicking: every later write is dropped and [`Fit::written`]
/// says `None` (the caller then measures and writes again).
///
/// Length-delimited values whose length takes a walk (maps, lists of
/// strings or messages, nested messages) are written between
/// [`Fit::open`] and [`Fit::close`], so that their content is walked once.
#[doc(hidden)]
pub struct Fit<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    pos: usize,
    full: bool,
    /// Where writes through [`BufMut::chunk_mut`] go once the buffer is
    /// full (they are dropped).
    spare: [MaybeUninit<u8>; 16],
}

impl<'a> Fit<'a> {
    /// A writer at the start of `buf`.
    #[inline]
    pub fn new(buf: &'a mut [MaybeUninit<u8>]) -> Self {
        Fit {
            buf,
            pos: 0,
            full: false,
            spare: [MaybeUninit::uninit(); 16],
        }
    }

    /// The bytes written, unless some write did not fit.
    ///
    /// (Copying them out in overlapping blocks, as [`Fit`] copies short
    /// strings in, measured slower: message lengths vary more.)
    #[inline]
    pub fn written(&self) -> Option<&[u8]> {
        if self.full {
            return None;
        }
        let init = &self.buf[..self.pos];
        #[allow(unsafe_code)]
        // SAFETY: every byte before `pos` was written: `pos` moves only past
        // bytes that `put_slice`, `put_u8`, `put_word`, `put_varint` and
        // `close` stored, or past the bytes of `chunk_mut` that the caller
        // of `advance_mut` promises it wrote.
        Some(unsafe { &*(init as *const [MaybeUninit<u8>] as *const [u8]) })
    }

    /// Writes `uvarint(v)`. With eight bytes of room, a value of up to
    /// 56 bits is spread into its 7-bit groups in a register and stored as
    /// one word (the bytes past the varint are overwritten by what follows
    /// or never copied out), instead of a byte at a time.
    #[inline(always)]
    pub fn put_varint(&mut self, v: u64) {
        // One or two bytes are written as the plain writer writes them
        // (faster than the spread for them), and so is anything without
        // the room or the bits for one word.
        if !(0x4000..1 << 56).contains(&v) || self.buf.len() - self.pos < 8 {
            varint::put(self, v);
            return;
        }
        let n = varint::len(v);
        let groups = (v & 0x7f)
            | (v << 1) & 0x7f00
            | (v << 2) & 0x7f_0000
            | (v << 3) & 0x7f00_0000
            | (v << 4) & 0x7f_0000_0000
            | (v << 5) & 0x7f00_0000_0000
            | (v << 6) & 0x7f_0000_0000_0000
            | (v << 7) & 0x7f00_0000_0000_0000;
        // The high bit of every byte but the last.
        let more = 0x8080_8080_8080_8080 & ((1u64 << (8 * (n - 1))) - 1);
        let word = (groups | more).to_le_bytes().map(MaybeUninit::new);
        self.buf[self.pos..self.pos + 8].copy_from_slice(&word);
        self.pos += n;
    }

    /// Writes a length-delimited value: `uvarint(data.len())`, then
    /// `data`. Content shorter than 128 bytes (most strings) takes one
    /// room check for its length byte and its bytes together.
    #[inline(always)]
    pub fn put_delimited(&mut self, data: &[u8]) {
        let n = data.len();
        if n < 0x80
            && let Some(dst) = self.buf.get_mut(self.pos..self.pos + 1 + n)
        {
            dst[0].write(n as u8);
            copy(&mut dst[1..], as_uninit(data));
            self.pos += 1 + n;
            return;
        }
        varint::put(self, n as u64);
        self.put_slice(data);
    }

    /// Writes a fixed number of bytes (a little-endian word).
    #[inline(always)]
    fn put_word<const N: usize>(&mut self, bytes: [u8; N]) {
        match self.buf.get_mut(self.pos..self.pos + N) {
            Some(dst) => {
                dst.copy_from_slice(&bytes.map(MaybeUninit::new));
                self.pos += N;
            }
            None => self.full = true,
        }
    }

    /// Starts a length-delimited value: reserves one byte for its length
    /// and returns where it is, for [`Fit::close`].
    #[inline(always)]
    pub fn open(&mut self) -> usize {
        let at = self.pos;
        self.put_u8(0);
        at
    }

    /// Ends the value opened at `at`: writes the length of what follows
    /// the reserved byte, moving the content when the length takes more
    /// than one byte.
    #[inline]
    pub fn close(&mut self, at: usize) {
        if self.full {
            return;
        }
        let start = at + 1;
        let n = self.pos - start;
        if n < 0x80 {
            self.buf[at].write(n as u8);
            return;
        }
        self.widen(at, n);
    }

    /// [`Fit::close`] for content of 128 bytes or more.
    #[cold]
    fn widen(&mut self, at: usize, n: usize) {
        let width = varint::len(n as u64);
        let extra = width - 1;
        if self.buf.len() - self.pos < extra {
            self.full = true;
            return;
        }
        let start = at + 1;
        self.buf.copy_within(start..self.pos, start + extra);
        let mut len = [0u8; varint::MAX_VARINT_LEN];
        let mut dst = &mut len[..];
        varint::put(&mut dst, n as u64);
        for (slot, b) in self.buf[at..at + width].iter_mut().zip(len) {
            slot.write(b);
        }
        self.pos += extra;
    }
}

#[allow(unsafe_code)]
// SAFETY: `chunk_mut` hands out the unwritten rest of the buffer (or, once
// full, a spare area whose contents are never read), and `advance_mut`
// moves past at most that many bytes of the buffer, so no uninitialised
// byte is ever counted as written.
unsafe impl BufMut for Fit<'_> {
    #[inline]
    fn remaining_mut(&self) -> usize {
        // Writes never fail: one that does not fit marks the writer full.
        isize::MAX as usize - self.pos
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        if self.full || cnt > self.buf.len() - self.pos {
            self.full = true;
        } else {
            self.pos += cnt;
        }
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        if !self.full && self.pos < self.buf.len() {
            return UninitSlice::uninit(&mut self.buf[self.pos..]);
        }
        self.full = true;
        UninitSlice::uninit(&mut self.spare)
    }

    #[inline(always)]
    fn put_slice(&mut self, src: &[u8]) {
        match self.buf.get_mut(self.pos..self.pos + src.len()) {
            Some(dst) => {
                copy(dst, as_uninit(src));
                self.pos += src.len();
            }
            None => self.full = true,
        }
    }

    #[inline(always)]
    fn put_u16_le(&mut self, n: u16) {
        self.put_word(n.to_le_bytes());
    }

    #[inline(always)]
    fn put_u32_le(&mut self, n: u32) {
        self.put_word(n.to_le_bytes());
    }

    #[inline(always)]
    fn put_u64_le(&mut self, n: u64) {
        self.put_word(n.to_le_bytes());
    }

    #[inline(always)]
    fn put_u8(&mut self, n: u8) {
        match self.buf.get_mut(self.pos) {
            Some(b) => {
                b.write(n);
                self.pos += 1;
            }
            None => self.full = true,
        }
    }
}

/// `src` as the bytes [`copy`] takes.
#[inline(always)]
fn as_uninit(src: &[u8]) -> &[MaybeUninit<u8>] {
    #[allow(unsafe_code)]
    // SAFETY: `u8` and `MaybeUninit<u8>` have the same layout, and every
    // `u8` is an initialised `MaybeUninit<u8>`.
    unsafe {
        &*(src as *const [u8] as *const [MaybeUninit<u8>])
    }
}

/// Copies `src` into `dst` (of the same length). The strings of a message
/// are mostly short (names, keys, labels): up to 16 bytes they are copied
/// as two overlapping words, without a call.
#[inline(always)]
fn copy(dst: &mut [MaybeUninit<u8>], src: &[MaybeUninit<u8>]) {
    let n = src.len();
    if n > 16 {
        if n > 64 {
            dst.copy_from_slice(src);
        } else if n > 32 {
            dst[..32].copy_from_slice(&src[..32]);
            dst[n - 32..].copy_from_slice(&src[n - 32..]);
        } else {
            dst[..16].copy_from_slice(&src[..16]);
            dst[n - 16..].copy_from_slice(&src[n - 16..]);
        }
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(cap: usize, f: impl FnOnce(&mut Fit<'_>)) -> Option<Vec<u8>> {
        let mut stack = vec![MaybeUninit::uninit(); cap];
        let mut w = Fit::new(&mut stack);
        f(&mut w);
        w.written().map(<[u8]>::to_vec)
    }

    #[test]
    fn writes_what_fits_and_reports_what_does_not() {
        assert_eq!(fit(4, |w| w.put_slice(b"abcd")), Some(b"abcd".to_vec()));
        assert_eq!(fit(3, |w| w.put_slice(b"abcd")), None);
        // Once full, later writes that would fit are dropped too.
        assert_eq!(
            fit(3, |w| {
                w.put_slice(b"abcd");
                w.put_u8(1);
            }),
            None
        );
        assert_eq!(fit(0, |w| w.put_u8(1)), None);
        assert_eq!(fit(2, |w| w.put_u16_le(0x0201)), Some(vec![1, 2]));
    }

    #[test]
    fn copies_every_short_length_exactly() {
        for n in 0..=100usize {
            let src: Vec<u8> = (1..=n as u8).collect();
            let got = fit(128, |w| {
                w.put_u8(0xaa);
                w.put_slice(&src);
                w.put_u8(0xbb);
            })
            .expect("fits");
            let mut want = vec![0xaa];
            want.extend_from_slice(&src);
            want.push(0xbb);
            assert_eq!(got, want, "{n} bytes");
        }
    }

    #[test]
    fn varints_match_the_plain_writer_at_every_length_and_room() {
        let mut values = vec![0u64, 1, 0x7f, 0x80, 0x3fff, 0x4000, u64::MAX];
        for bits in 1..64 {
            values.extend([(1u64 << bits) - 1, 1 << bits, (1 << bits) + 1]);
        }
        for v in values {
            let mut want = Vec::new();
            varint::put(&mut want, v);
            for room in [want.len(), want.len() + 1, 8, 9, 16] {
                if room < want.len() {
                    continue;
                }
                let got = fit(room, |w| w.put_varint(v));
                assert_eq!(got.as_deref(), Some(&want[..]), "{v:#x} in {room} bytes");
            }
            assert_eq!(fit(want.len() - 1, |w| w.put_varint(v)), None, "{v:#x}");
        }
    }

    #[test]
    fn delimited_values_match_the_plain_writer_at_every_room() {
        for n in [0usize, 1, 7, 8, 16, 17, 126, 127, 128, 129, 300] {
            let data: Vec<u8> = (0..n).map(|i| i as u8 ^ 0x5a).collect();
            let mut want = Vec::new();
            crate::wire::write::len_prefixed(&mut want, &data);
            for room in [want.len(), want.len() + 1, want.len() + 64] {
                let got = fit(room, |w| w.put_delimited(&data));
                assert_eq!(got.as_deref(), Some(&want[..]), "{n} bytes in {room}");
            }
            assert_eq!(
                fit(want.len() - 1, |w| w.put_delimited(&data)),
                None,
                "{n} bytes"
            );
            // After other bytes, and followed by more.
            let got = fit(want.len() + 2, |w| {
                w.put_u8(0xaa);
                w.put_delimited(&data);
                w.put_u8(0xbb);
            });
            let mut framed = vec![0xaa];
            framed.extend_from_slice(&want);
            framed.push(0xbb);
            assert_eq!(got, Some(framed), "{n} bytes between others");
        }
    }

    #[test]
    fn a_closed_value_gets_its_length_in_front() {
        for n in [0usize, 1, 127, 128, 300, 16_383, 16_384] {
            let content: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let got = fit(n + 8, |w| {
                w.put_u8(0xaa);
                let at = w.open();
                w.put_slice(&content);
                w.close(at);
                w.put_u8(0xbb);
            })
            .unwrap_or_else(|| panic!("{n} bytes fit"));
            let mut want = vec![0xaa];
            varint::put(&mut want, n as u64);
            want.extend_from_slice(&content);
            want.push(0xbb);
            assert_eq!(got, want, "content of {n} bytes");
        }
    }

    #[test]
    fn widening_that_does_not_fit_is_reported() {
        // 200 bytes of content need a two-byte length: one byte more than
        // the buffer has.
        assert_eq!(
            fit(201, |w| {
                let at = w.open();
                w.put_slice(&[7; 200]);
                w.close(at);
            }),
            None
        );
        assert!(
            fit(202, |w| {
                let at = w.open();
                w.put_slice(&[7; 200]);
                w.close(at);
            })
            .is_some()
        );
    }

    #[test]
    fn nested_values_close_inside_out() {
        let inner: Vec<u8> = vec![5; 130];
        let got = fit(300, |w| {
            let outer = w.open();
            w.put_u8(1);
            let at = w.open();
            w.put_slice(&inner);
            w.close(at);
            w.close(outer);
        })
        .expect("fits");
        let mut body = vec![1];
        varint::put(&mut body, 130);
        body.extend_from_slice(&inner);
        let mut want = Vec::new();
        varint::put(&mut want, body.len() as u64);
        want.extend_from_slice(&body);
        assert_eq!(got, want);
    }
}
