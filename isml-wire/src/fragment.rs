//! Fragmentation (wire format §2.6): splitting a large message into frames
//! with the MORE flag, and joining them again on receipt, within a byte limit.
//!
//! The rules this module enforces, stated in full in `docs/wire-format.md`:
//!
//! - a frame with MORE set starts a fragmented message, or continues the one in
//!   progress; the frame with MORE clear and the same *key* (kind, type id,
//!   correlation id) ends it;
//! - at most one fragmented message is in progress per direction of a
//!   connection, but complete frames with a different key (and link frames) may
//!   come between its fragments, so that a large message does not hold back
//!   small ones on a slow link;
//! - the joined payload never exceeds the receiver's maximum message size, which
//!   is checked before a fragment's bytes are buffered.
//!
//! ```
//! use bytes::Bytes;
//! use isml_wire::{Assembled, Fragmenter, FrameHeader, Reassembler};
//!
//! let payload = Bytes::from(vec![7u8; 10]);
//! let frames: Vec<_> = Fragmenter::new(FrameHeader::request(20, 1), payload.clone(), 4).collect();
//! assert_eq!(frames.len(), 3);
//! assert!(frames[0].header.more && !frames[2].header.more);
//!
//! let mut joiner = Reassembler::new(1024);
//! let mut out = Vec::new();
//! for f in frames {
//!     if let Assembled::Complete(frame) = joiner.push(f).unwrap() {
//!         out.push(frame);
//!     }
//! }
//! assert_eq!(out.len(), 1);
//! assert_eq!(out[0].header, FrameHeader::request(20, 1));
//! assert_eq!(out[0].payload, payload);
//! ```

use alloc::boxed::Box;
use core::fmt;

use bytes::{Bytes, BytesMut};

use super::{Frame, FrameHeader, FrameKind};

/// What identifies the fragments of one message: kind, type id and correlation
/// id. Sequence numbers belong to individual frames and are not part of it.
fn key(h: &FrameHeader) -> (FrameKind, u32, u64) {
    (h.kind, h.type_id, h.correlation)
}

/// Why a fragment was refused. Every one of these is a protocol violation by
/// the sender; a receiver closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FragmentError {
    /// A frame with MORE set arrived while another fragmented message, with a
    /// different key, was still in progress.
    Interleaved {
        /// The header of the first fragment of the message in progress.
        open: FrameHeader,
        /// The header of the frame that tried to start a second one.
        got: FrameHeader,
    },
    /// The joined payload would exceed the maximum message size.
    TooLarge {
        /// The joined length the fragment would have produced.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FragmentError::Interleaved { open, got } => write!(
                f,
                "fragment of {:?} (type {}, correlation {}) arrived while the fragmented \
                 {:?} (type {}, correlation {}) was incomplete",
                got.kind, got.type_id, got.correlation, open.kind, open.type_id, open.correlation
            ),
            FragmentError::TooLarge { len, max } => write!(
                f,
                "fragmented message of at least {len} bytes exceeds the maximum of {max} bytes"
            ),
        }
    }
}

impl core::error::Error for FragmentError {}

/// What [`Reassembler::push`] made of a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assembled {
    /// A whole message: either a frame that was never fragmented, or the joined
    /// fragments, with the header of the first fragment and MORE cleared.
    Complete(Frame),
    /// The frame was a fragment and has been buffered.
    Pending,
}

/// Joins fragmented messages (wire format §2.6) for one direction of one
/// connection, holding at most `max_message` bytes.
#[derive(Debug)]
pub struct Reassembler {
    max_message: usize,
    /// Boxed: a reassembler lives in every session, and is idle in almost all.
    open: Option<Box<(FrameHeader, BytesMut)>>,
}

impl Reassembler {
    /// A reassembler that refuses messages (whole or joined) whose payload is
    /// longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Reassembler {
            max_message,
            open: None,
        }
    }

    /// The configured maximum message size.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Bytes of payload held for the message in progress.
    pub fn buffered(&self) -> usize {
        self.open.as_deref().map_or(0, |(_, b)| b.len())
    }

    /// The header of the first fragment of the message in progress, if any. A
    /// connection that ends while this is `Some` ended inside a message.
    pub fn in_progress(&self) -> Option<&FrameHeader> {
        self.open.as_deref().map(|(h, _)| h)
    }

    /// Drops the message in progress and its buffer.
    pub fn clear(&mut self) {
        self.open = None;
    }

    /// Takes one received frame. Complete frames with a different key from the
    /// message in progress pass through untouched (and without a copy), once
    /// their size is checked.
    pub fn push(&mut self, frame: Frame) -> Result<Assembled, FragmentError> {
        let Frame { header, payload } = frame;
        match self.open.as_deref_mut() {
            Some((open, buf)) if key(open) == key(&header) => {
                let len = buf.len().saturating_add(payload.len());
                if len > self.max_message {
                    let err = FragmentError::TooLarge {
                        len,
                        max: self.max_message,
                    };
                    self.open = None;
                    return Err(err);
                }
                buf.extend_from_slice(&payload);
                if header.more {
                    return Ok(Assembled::Pending);
                }
                let (open, buf) = *self.open.take().expect("matched above");
                Ok(Assembled::Complete(Frame {
                    header: open.with_more(false),
                    payload: buf.freeze(),
                }))
            }
            Some((open, _)) if header.more => Err(FragmentError::Interleaved {
                open: *open,
                got: header,
            }),
            Some(_) => {
                if payload.len() > self.max_message {
                    return Err(FragmentError::TooLarge {
                        len: payload.len(),
                        max: self.max_message,
                    });
                }
                Ok(Assembled::Complete(Frame { header, payload }))
            }
            None if header.more => {
                if payload.len() > self.max_message {
                    return Err(FragmentError::TooLarge {
                        len: payload.len(),
                        max: self.max_message,
                    });
                }
                self.open = Some(Box::new((header, BytesMut::from(&payload[..]))));
                Ok(Assembled::Pending)
            }
            None => {
                if payload.len() > self.max_message {
                    return Err(FragmentError::TooLarge {
                        len: payload.len(),
                        max: self.max_message,
                    });
                }
                Ok(Assembled::Complete(Frame { header, payload }))
            }
        }
    }
}

/// Splits one message into frames whose payloads hold at most `max_payload`
/// bytes each: every frame but the last has MORE set. A payload that fits is
/// one frame, unchanged. An empty payload is one empty frame.
#[derive(Debug, Clone)]
pub struct Fragmenter {
    header: FrameHeader,
    rest: Bytes,
    max_payload: usize,
    done: bool,
}

impl Fragmenter {
    /// Fragments `payload` sent under `header`. `max_payload` is at least 1.
    pub fn new(header: FrameHeader, payload: Bytes, max_payload: usize) -> Self {
        Fragmenter {
            header: header.with_more(false),
            rest: payload,
            max_payload: max_payload.max(1),
            done: false,
        }
    }

    /// Number of frames still to come.
    pub fn remaining(&self) -> usize {
        if self.done {
            0
        } else {
            self.rest.len().div_ceil(self.max_payload).max(1)
        }
    }
}

impl Iterator for Fragmenter {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        if self.done {
            return None;
        }
        if self.rest.len() <= self.max_payload {
            self.done = true;
            return Some(Frame {
                header: self.header,
                payload: core::mem::take(&mut self.rest),
            });
        }
        let chunk = self.rest.split_to(self.max_payload);
        Some(Frame {
            header: self.header.with_more(true),
            payload: chunk,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for Fragmenter {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ControlOp;
    #[allow(unused_imports)]
    use std::{boxed::Box, format, string::String, vec, vec::Vec};

    fn frame(h: FrameHeader, p: &[u8]) -> Frame {
        Frame::new(h, Bytes::copy_from_slice(p))
    }

    #[test]
    fn unfragmented_frames_pass_through() {
        let mut r = Reassembler::new(8);
        let f = frame(FrameHeader::one_way(3), b"abc");
        assert_eq!(r.push(f.clone()).unwrap(), Assembled::Complete(f));
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn joins_and_keeps_first_header() {
        let mut r = Reassembler::new(100);
        let h = FrameHeader::request(20, 1).with_seq(5);
        assert_eq!(
            r.push(frame(h.with_more(true), b"ab")).unwrap(),
            Assembled::Pending
        );
        assert_eq!(r.buffered(), 2);
        assert_eq!(
            r.push(frame(FrameHeader::request(20, 1).with_more(true), b"cd"))
                .unwrap(),
            Assembled::Pending
        );
        assert_eq!(r.buffered(), 4);
        let Assembled::Complete(f) = r.push(frame(FrameHeader::request(20, 1), b"e")).unwrap()
        else {
            panic!("expected a complete frame")
        };
        assert_eq!(f.header, h);
        assert_eq!(&f.payload[..], b"abcde");
        assert_eq!(r.buffered(), 0);
        assert!(r.in_progress().is_none());
    }

    #[test]
    fn other_complete_frames_may_come_between_fragments() {
        let mut r = Reassembler::new(100);
        r.push(frame(FrameHeader::one_way(5).with_more(true), b"12"))
            .unwrap();
        let ping = frame(FrameHeader::control(ControlOp::Ping), b"");
        assert_eq!(r.push(ping.clone()).unwrap(), Assembled::Complete(ping));
        let other = frame(FrameHeader::one_way(6), b"x");
        assert_eq!(r.push(other.clone()).unwrap(), Assembled::Complete(other));
        let Assembled::Complete(f) = r.push(frame(FrameHeader::one_way(5), b"3")).unwrap() else {
            panic!("expected a complete frame")
        };
        assert_eq!(&f.payload[..], b"123");
    }

    #[test]
    fn a_second_fragmented_message_is_refused() {
        let mut r = Reassembler::new(100);
        r.push(frame(FrameHeader::request(1, 1).with_more(true), b"1"))
            .unwrap();
        let err = r
            .push(frame(FrameHeader::request(1, 2).with_more(true), b"2"))
            .unwrap_err();
        assert!(matches!(err, FragmentError::Interleaved { .. }), "{err}");
    }

    #[test]
    fn limit_is_exact_and_checked_before_buffering() {
        let mut r = Reassembler::new(6);
        r.push(frame(FrameHeader::one_way(1).with_more(true), b"123"))
            .unwrap();
        r.push(frame(FrameHeader::one_way(1).with_more(true), b"45"))
            .unwrap();
        assert_eq!(r.buffered(), 5);
        // 6 bytes exactly is accepted
        let mut ok = Reassembler::new(6);
        ok.push(frame(FrameHeader::one_way(1).with_more(true), b"123"))
            .unwrap();
        assert!(matches!(
            ok.push(frame(FrameHeader::one_way(1), b"456")).unwrap(),
            Assembled::Complete(_)
        ));
        // 7 is not, and nothing is kept
        let err = r.push(frame(FrameHeader::one_way(1), b"67")).unwrap_err();
        assert_eq!(err, FragmentError::TooLarge { len: 7, max: 6 });
        assert_eq!(r.buffered(), 0);
        // a single frame over the limit is refused too
        let err = Reassembler::new(2)
            .push(frame(FrameHeader::one_way(1), b"123"))
            .unwrap_err();
        assert_eq!(err, FragmentError::TooLarge { len: 3, max: 2 });
    }

    #[test]
    fn fragmenter_round_trips_every_split() {
        let payload: Bytes = (0..=255u8).collect::<Vec<_>>().into();
        for max in 1..=300 {
            let frames: Vec<_> =
                Fragmenter::new(FrameHeader::response(9, 3), payload.clone(), max).collect();
            assert_eq!(frames.len(), 256usize.div_ceil(max));
            assert!(frames.iter().all(|f| f.payload.len() <= max));
            let mut r = Reassembler::new(256);
            let mut got = None;
            for f in frames {
                if let Assembled::Complete(f) = r.push(f).unwrap() {
                    assert!(got.is_none());
                    got = Some(f);
                }
            }
            let got = got.expect("joined");
            assert_eq!(got.header, FrameHeader::response(9, 3));
            assert_eq!(got.payload, payload);
        }
        let empty: Vec<_> = Fragmenter::new(FrameHeader::one_way(1), Bytes::new(), 4).collect();
        assert_eq!(
            empty,
            vec![Frame::new(FrameHeader::one_way(1), Bytes::new())]
        );
    }
}
