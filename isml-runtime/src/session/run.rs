//! A run of frames bound for many sessions, encoded once.

use crate::wire::{Frame, put_stream_frame};

/// The largest frame ([`Frame::len`]) that goes to a session's outbound
/// queue as a copy of its encoded bytes rather than as a reference to the
/// shared frame. Copying a few hundred bytes costs less than the reference
/// count taken and dropped on two threads per session; beyond this the
/// copies would cost more.
pub(super) const ENCODED_MAX: usize = 1024;

/// Frames that go to many sessions alike (a run of publications' `deliver`
/// frames, for every subscriber): the frames, their encoded lengths, and,
/// when none is larger than [`ENCODED_MAX`], all of them encoded once one
/// after the other in stream framing (wire format §3), for the sessions
/// whose transports take encoded frames ([`Session::try_enqueue_run`]).
///
/// [`Session::try_enqueue_run`]: super::Session::try_enqueue_run
#[derive(Default)]
pub(crate) struct FrameRun {
    frames: Vec<Frame>,
    lens: Vec<usize>,
    bytes: Vec<u8>,
    /// Where each frame ends in `bytes`.
    ends: Vec<usize>,
    /// The largest frame's encoded length.
    largest: usize,
    /// A frame was too large to be encoded here, or could not be: the run
    /// goes as frames only.
    frames_only: bool,
}

impl FrameRun {
    /// Empties the run, keeping its room.
    pub(crate) fn clear(&mut self) {
        self.frames.clear();
        self.lens.clear();
        self.bytes.clear();
        self.ends.clear();
        self.largest = 0;
        self.frames_only = false;
    }

    /// Adds a frame at the end.
    pub(crate) fn push(&mut self, frame: Frame) {
        let len = frame.len();
        if len > ENCODED_MAX {
            self.frames_only = true;
        } else if !self.frames_only {
            let at = self.bytes.len();
            if put_stream_frame(&mut self.bytes, &frame.header, &frame.payload, len).is_ok() {
                self.largest = self.largest.max(len);
                self.ends.push(self.bytes.len());
            } else {
                // Sent as a frame, the error is the transport's to report.
                self.bytes.truncate(at);
                self.frames_only = true;
            }
        }
        self.lens.push(len);
        self.frames.push(frame);
    }

    pub(crate) fn frames(&self) -> &[Frame] {
        &self.frames
    }

    /// The frames' encoded lengths ([`Frame::len`]), one for each.
    pub(crate) fn lens(&self) -> &[usize] {
        &self.lens
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// The frames encoded, and where each ends, when none is larger than
    /// `max` (and all were encoded).
    pub(super) fn encoded(&self, max: usize) -> Option<(&[u8], &[usize])> {
        (!self.frames.is_empty() && !self.frames_only && self.largest <= max)
            .then_some((&self.bytes[..], &self.ends[..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::StreamCodec;
    use crate::pubsub::frames::DeliverHead;
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    fn deliver(publisher: &str, message: &[u8]) -> Frame {
        DeliverHead {
            replay: 0,
            channel: 7,
            key: None,
            retained: false,
            publisher,
            timestamp_ms: 1_764_700_000_000,
        }
        .frame(message)
    }

    /// Decodes stream-framed bytes into frames.
    fn decode(bytes: &[u8]) -> Vec<Frame> {
        let mut codec = StreamCodec::new();
        let mut buf = BytesMut::from(bytes);
        let mut frames = Vec::new();
        while let Some(f) = codec.decode(&mut buf).expect("valid frames") {
            frames.push(f);
        }
        assert!(buf.is_empty(), "bytes left after the last frame");
        frames
    }

    #[test]
    fn a_run_encoded_once_decodes_to_its_frames() {
        let mut run = FrameRun::default();
        for (i, size) in [0, 1, 16, 256, 900].into_iter().enumerate() {
            run.push(deliver(&format!("device-{i}"), &vec![i as u8; size]));
        }
        let (bytes, ends) = run.encoded(ENCODED_MAX).expect("all small");
        assert_eq!(ends.len(), run.len());
        assert_eq!(decode(bytes), run.frames());
        // Each frame's bytes are what the transport's encoder writes for it.
        let mut codec = StreamCodec::new();
        let mut start = 0;
        for (f, (&end, &len)) in run.frames().iter().zip(ends.iter().zip(run.lens())) {
            let mut one = BytesMut::new();
            codec.encode(f, &mut one).expect("encodes");
            assert_eq!(&bytes[start..end], &one[..]);
            assert_eq!(len, f.len());
            start = end;
        }
        // A session that takes smaller encoded frames gets them as frames.
        assert!(run.encoded(900).is_none());
        assert!(run.encoded(0).is_none());
        // A run is empty again once cleared, its room kept.
        run.clear();
        assert!(run.encoded(ENCODED_MAX).is_none());
        run.push(deliver("d", b"x"));
        assert_eq!(
            decode(run.encoded(ENCODED_MAX).expect("small").0),
            run.frames()
        );
    }

    #[test]
    fn a_run_with_a_large_frame_goes_as_frames_only() {
        let mut run = FrameRun::default();
        run.push(deliver("d", &[1; 16]));
        run.push(deliver("d", &[2; ENCODED_MAX]));
        run.push(deliver("d", &[3; 16]));
        assert!(run.encoded(usize::MAX).is_none());
        assert_eq!(run.len(), 3);
        assert_eq!(
            run.lens(),
            run.frames().iter().map(Frame::len).collect::<Vec<_>>()
        );
    }
}
