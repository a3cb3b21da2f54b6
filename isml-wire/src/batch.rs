//! Batches of stream items and what items cost of a stream's credit (wire
//! format §2.7).
//!
//! A stream-item frame with the BATCH flag ([`FrameHeader::batch`]) carries
//! one or more items of its stream, each as `uvarint(length)` followed by the
//! item's message bytes. A sender that has several items ready puts them in
//! one frame; a receiver takes them out in order, as if each had come in a
//! frame of its own.
//!
//! Flow control counts bytes: every item costs [`item_cost`] of its stream's
//! credit, whether it came alone or in a batch.
//!
//! ```
//! use isml_wire::batch::{BatchItems, item_cost, put_item_len};
//!
//! let mut payload = Vec::new();
//! for item in [&b"abc"[..], b"", b"xy"] {
//!     put_item_len(&mut payload, item.len());
//!     payload.extend_from_slice(item);
//! }
//! assert_eq!(payload, [3, b'a', b'b', b'c', 0, 2, b'x', b'y']);
//! let items: Vec<&[u8]> = BatchItems::new(&payload)
//!     .map(|r| r.map(|range| &payload[range]))
//!     .collect::<Result<_, _>>()
//!     .unwrap();
//! assert_eq!(items, [&b"abc"[..], b"", b"xy"]);
//! assert_eq!(item_cost(3), 3 + 8);
//! ```
//!
//! [`FrameHeader::batch`]: crate::FrameHeader::batch

use core::ops::Range;

use bytes::BufMut;

use super::{DecodeError, varint};

/// What an item costs of its stream's credit beyond its length: the framing
/// and bookkeeping every item needs, so that empty items are not free.
pub const ITEM_OVERHEAD: u64 = 8;

/// What an item of `len` bytes (its message encoding) costs of its stream's
/// credit: `len` plus [`ITEM_OVERHEAD`].
#[inline]
pub const fn item_cost(len: usize) -> u64 {
    len as u64 + ITEM_OVERHEAD
}

/// Bytes an item of `len` bytes takes in a batch payload: its length prefix
/// and the item.
#[inline]
pub const fn batched_len(len: usize) -> usize {
    varint::len(len as u64) + len
}

/// Writes the length prefix of an item of `len` bytes; the item's bytes
/// follow.
#[inline]
pub fn put_item_len<B: BufMut + ?Sized>(buf: &mut B, len: usize) {
    varint::put(buf, len as u64);
}

/// The items of a batch payload, as byte ranges of the payload, in order.
///
/// A payload with no item is [`DecodeError::UnexpectedEnd`]; a length prefix
/// that is not a canonical varint, or that announces more bytes than remain,
/// is an error too. After an error the iterator ends.
#[derive(Debug, Clone)]
pub struct BatchItems<'a> {
    payload: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> BatchItems<'a> {
    /// The items of `payload`.
    pub fn new(payload: &'a [u8]) -> Self {
        BatchItems {
            payload,
            pos: 0,
            failed: false,
        }
    }

    /// The items of `payload` from byte `pos` on (where an earlier iterator
    /// stopped), for a reader that takes items one at a time.
    pub fn resume(payload: &'a [u8], pos: usize) -> Self {
        BatchItems {
            payload,
            pos,
            failed: false,
        }
    }

    /// Where the next item's length prefix starts.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn fail(&mut self, e: DecodeError) -> Option<Result<Range<usize>, DecodeError>> {
        self.failed = true;
        Some(Err(e))
    }
}

impl Iterator for BatchItems<'_> {
    type Item = Result<Range<usize>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.pos >= self.payload.len() {
            if self.pos == 0 {
                // A batch carries at least one item.
                return self.fail(DecodeError::UnexpectedEnd { at: 0, needed: 1 });
            }
            return None;
        }
        let at = self.pos;
        let (len, n) = match varint::get(&self.payload[at..], at) {
            Ok(v) => v,
            Err(e) => return self.fail(e),
        };
        let start = at + n;
        let remaining = self.payload.len() - start;
        if len > remaining as u64 {
            return self.fail(DecodeError::LengthOutOfBounds { at, len, remaining });
        }
        let end = start + len as usize;
        self.pos = end;
        Some(Ok(start..end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn items(payload: &[u8]) -> Vec<Result<Range<usize>, DecodeError>> {
        BatchItems::new(payload).collect()
    }

    #[test]
    fn items_come_out_in_order() {
        assert_eq!(items(&[0]), [Ok(1..1)]);
        assert_eq!(items(&[1, 9, 2, 7, 7]), [Ok(1..2), Ok(3..5)]);
        let mut long = Vec::new();
        put_item_len(&mut long, 200);
        long.extend_from_slice(&[5; 200]);
        assert_eq!(long.len(), batched_len(200));
        assert_eq!(items(&long), [Ok(2..202)]);
    }

    #[test]
    fn malformed_batches_end_with_an_error() {
        assert_eq!(
            items(&[]),
            [Err(DecodeError::UnexpectedEnd { at: 0, needed: 1 })]
        );
        assert_eq!(
            items(&[1, 9, 3, 1]),
            [
                Ok(1..2),
                Err(DecodeError::LengthOutOfBounds {
                    at: 2,
                    len: 3,
                    remaining: 1
                })
            ]
        );
        assert_eq!(
            items(&[0x80, 0x00]),
            [Err(DecodeError::NonCanonicalVarint { at: 0 })]
        );
        assert!(matches!(items(&[0x80])[..], [Err(_)]));
    }

    #[test]
    fn a_reader_resumes_where_it_stopped() {
        let payload = [1, 9, 0, 2, 7, 7];
        let mut it = BatchItems::new(&payload);
        assert_eq!(it.next(), Some(Ok(1..2)));
        let mut rest = BatchItems::resume(&payload, it.position());
        assert_eq!(rest.next(), Some(Ok(3..3)));
        assert_eq!(rest.next(), Some(Ok(4..6)));
        assert_eq!(rest.next(), None);
    }
}
