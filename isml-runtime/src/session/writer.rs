//! The sending half of the connection task, with fragmentation.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::task::{Poll, ready};

use futures_util::{Sink, SinkExt};

use super::conn::transport_reason;
use super::outbox::Out;
use super::{CloseReason, SessionConfig, Shared};
use crate::transport::{FrameTx, TransportError};
use crate::wire::{ControlOp, Fragmenter, Frame, FrameHeader, FrameKind};

/// The sending side of the connection task: frames taken from the outbox, or
/// produced by the task itself (replies, pongs), fed to the transport and
/// flushed together. A message larger than the fragment size leaves in
/// fragments, taking turns with the frames queued behind it (wire format
/// §2.6), so that it does not hold them back for long on a slow link.
pub(super) struct Writer {
    pub(super) tx: FrameTx,
    /// Frames, and runs of frames already encoded (which never need
    /// fragmenting: the outbox takes them only when they are small).
    pub(super) queue: VecDeque<Out>,
    /// Encoded bytes of the frames in `queue` and of the message being
    /// fragmented.
    pub(super) queued_bytes: usize,
    /// Frames were fed and not flushed yet.
    pub(super) unflushed: bool,
    /// A close frame was fed: nothing after it is.
    pub(super) close_sent: bool,
    /// The transport failed: nothing more can be written.
    pub(super) broken: bool,
    /// Messages with a larger payload are fragmented.
    pub(super) fragment_size: Option<usize>,
    /// The message being sent in fragments.
    pub(super) fragmenting: Option<Box<Fragmenting>>,
    /// The next turn is the queue's (a frame queued behind the fragmented
    /// message may go before its next fragment).
    pub(super) queue_turn: bool,
}

/// Rounds of take-feed-flush before the task yields to its other work.
pub(super) const PUMP_ROUNDS: usize = 8;
/// Received frames handled in a row before the task looks at its other work.
pub(super) const READ_BURST: usize = 64;
/// Capacity of the write queue kept between bursts.
pub(super) const KEEP_QUEUE: usize = 64;

pub(super) fn fragment_key(h: &FrameHeader) -> (FrameKind, u32, u64) {
    (h.kind, h.type_id, h.correlation)
}

/// A message leaving in fragments: the fragments to come, their payload
/// bytes, and the message's key.
pub(super) struct Fragmenting {
    pub(super) fragments: Fragmenter,
    pub(super) left: usize,
    pub(super) key: (FrameKind, u32, u64),
}

impl Writer {
    pub(super) fn new(tx: FrameTx, config: &SessionConfig) -> Writer {
        Writer {
            tx,
            queue: VecDeque::new(),
            queued_bytes: 0,
            unflushed: false,
            close_sent: false,
            broken: false,
            // A fragment and its header must fit in a frame.
            fragment_size: config
                .fragment_size
                .map(|n| n.clamp(1, config.max_frame.saturating_sub(32).max(1))),
            fragmenting: None,
            queue_turn: false,
        }
    }

    /// What is left in the session once its connection task has taken the transport.
    pub(super) fn ended() -> Writer {
        let sink = futures_util::sink::drain().sink_map_err(|never| match never {});
        let mut w = Writer::new(FrameTx::Frames(Box::pin(sink)), &SessionConfig::default());
        w.broken = true;
        w
    }

    /// Whether the task may read more frames. Frames from the outbox enter the
    /// queue only when it is empty, so at most `capacity` of them (and
    /// `outbound_bytes`) are in it: beyond twice that many frames, or beyond
    /// `outbound_bytes + reply_bytes`, the task's own replies and pongs fill
    /// it, and reading stops until they are written (the peer is not reading
    /// them). A peer flooding us with one-way messages while we flood it
    /// keeps being read, so that the two cannot block each other.
    pub(super) fn may_read(&self, capacity: usize, byte_budget: usize) -> bool {
        self.queue.len() < 2 * capacity && self.queued_bytes < byte_budget
    }

    /// Whether nothing waits to be fed to the transport.
    pub(super) fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.fragmenting.is_none()
    }

    pub(super) fn push(&mut self, frame: Frame) {
        if !self.close_sent {
            self.queued_bytes += frame.len();
            self.queue.push_back(Out::Frame(frame));
        }
    }

    /// Takes the next frame to feed: the queue's head, or the next fragment
    /// of the message being fragmented, taking turns. A queued frame goes
    /// before a fragment only when it would not be fragmented itself and
    /// its key differs from the fragmented message's; a run of encoded
    /// frames waits for the last fragment (its frames may have the key).
    pub(super) fn next_frame(&mut self) -> Option<Out> {
        if let Some(f) = &mut self.fragmenting {
            if std::mem::take(&mut self.queue_turn) {
                let size = self.fragment_size.unwrap_or(usize::MAX);
                if let Some(Out::Frame(head)) = self.queue.front()
                    && head.payload.len() <= size
                    && fragment_key(&head.header) != f.key
                {
                    let frame = self.queue.pop_front()?;
                    self.queued_bytes -= frame.len();
                    return Some(frame);
                }
            }
            let frame = f.fragments.next()?;
            f.left -= frame.payload.len();
            self.queued_bytes -= frame.payload.len();
            if f.fragments.remaining() == 0 {
                self.fragmenting = None;
            }
            self.queue_turn = true;
            return Some(Out::Frame(frame));
        }
        let frame = match self.queue.pop_front()? {
            Out::Frame(frame) => frame,
            Out::Encoded(e) => {
                self.queued_bytes -= e.len;
                return Some(Out::Encoded(e));
            }
        };
        self.queued_bytes -= frame.len();
        match self.fragment_size {
            Some(size)
                if frame.payload.len() > size
                    && frame.header.kind != FrameKind::Control(ControlOp::Close) =>
            {
                let key = fragment_key(&frame.header);
                let total = frame.payload.len();
                let mut fragments = Fragmenter::new(frame.header, frame.payload, size);
                let first = fragments.next()?;
                let left = total - first.payload.len();
                self.queued_bytes += left;
                self.fragmenting = Some(Box::new(Fragmenting {
                    fragments,
                    left,
                    key,
                }));
                self.queue_turn = true;
                Some(Out::Frame(first))
            }
            _ => Some(Out::Frame(frame)),
        }
    }

    /// Feeds every queued frame (up to a close frame) and flushes.
    pub(super) fn poll_flush_all(
        &mut self,
        cx: &mut std::task::Context<'_>,
        shared: &Shared,
    ) -> Poll<Result<(), TransportError>> {
        let mut fed = 0;
        let r = self.poll_flush_counted(cx, &mut fed);
        if fed > 0 {
            shared.counters.frames_out.fetch_add(fed, Ordering::Relaxed);
        }
        r
    }

    pub(super) fn poll_flush_counted(
        &mut self,
        cx: &mut std::task::Context<'_>,
        fed: &mut u64,
    ) -> Poll<Result<(), TransportError>> {
        while !self.close_sent && !self.is_idle() {
            ready!(self.tx.as_mut().poll_ready(cx))?;
            let frame = match self.next_frame() {
                Some(Out::Frame(frame)) => frame,
                Some(Out::Encoded(e)) => {
                    self.tx.as_mut().start_send_encoded(e.bytes)?;
                    self.unflushed = true;
                    *fed += e.frames as u64;
                    continue;
                }
                None => break,
            };
            let close = frame.header.kind == FrameKind::Control(ControlOp::Close);
            self.tx.as_mut().start_send(frame)?;
            self.unflushed = true;
            *fed += 1;
            if close {
                self.close_sent = true;
                self.queue.clear();
                self.fragmenting = None;
                self.queued_bytes = 0;
            }
        }
        if self.unflushed {
            ready!(self.tx.as_mut().poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Moves frames from the outbox to the transport for as long as there are
    /// any. `Ready(Ok)` only once a close frame has been written.
    pub(super) fn poll_pump(
        &mut self,
        cx: &mut std::task::Context<'_>,
        shared: &Shared,
    ) -> Poll<Result<(), TransportError>> {
        for _ in 0..PUMP_ROUNDS {
            if self.queue.is_empty()
                && !self.close_sent
                && let Poll::Ready(bytes) = shared.out.poll_take(cx, &mut self.queue)
            {
                self.queued_bytes += bytes;
                // An acknowledgement owed leaves with these frames (piggy-backed
                // on the same write, docs/reliability.md).
                if let Some(ack) = shared.link.as_ref().and_then(|l| l.take_ack()) {
                    self.push(ack);
                }
            }
            if self.is_idle() && !self.unflushed {
                if self.close_sent {
                    return Poll::Ready(Ok(()));
                }
                if self.queue.capacity() > KEEP_QUEUE {
                    self.queue = VecDeque::new();
                }
                return Poll::Pending;
            }
            ready!(self.poll_flush_all(cx, shared))?;
            if self.close_sent {
                return Poll::Ready(Ok(()));
            }
        }
        // Senders keep the outbox full: let the task read and others run.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// The session's end when the pump stopped (close frame out, or failure).
    pub(super) fn stopped(
        &mut self,
        r: Result<(), TransportError>,
        shared: &Shared,
    ) -> CloseReason {
        match r {
            Ok(()) => shared.reason(),
            Err(e) => {
                self.broken = true;
                let reason = transport_reason(&e);
                tracing::warn!(session = shared.id, peer = %shared.info.peer, %reason, "session ends");
                reason
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FrameHeader;
    use bytes::Bytes;

    fn sized(h: FrameHeader, n: usize) -> Frame {
        Frame::new(h, Bytes::from(vec![0u8; n]))
    }

    fn writer(fragment_size: Option<usize>) -> Writer {
        let sink = futures_util::sink::drain().sink_map_err(|never| match never {});
        let config = SessionConfig {
            fragment_size,
            ..SessionConfig::default()
        };
        Writer::new(FrameTx::Frames(Box::pin(sink)), &config)
    }

    #[test]
    fn the_write_queue_stops_reading_at_its_byte_budget() {
        let mut w = writer(None);
        w.push(sized(FrameHeader::one_way(1), 98));
        assert_eq!(w.queued_bytes, 99);
        assert!(w.may_read(10, 100));
        w.push(sized(FrameHeader::one_way(1), 0));
        assert_eq!(w.queued_bytes, 100);
        assert!(!w.may_read(10, 100));
        assert!(w.may_read(10, 101));
        // The frame count stays a limit beside the bytes.
        assert!(!w.may_read(1, 1000));
        w.next_frame();
        assert_eq!(w.queued_bytes, 1);
        assert!(w.may_read(10, 100));
    }

    #[test]
    fn fragments_take_turns_with_frames_of_other_keys() {
        let mut w = writer(Some(4));
        let big = FrameHeader::one_way(1);
        w.push(sized(big, 10));
        w.push(sized(FrameHeader::one_way(2), 2));
        w.push(sized(FrameHeader::one_way(1), 2)); // same key: waits
        w.push(sized(FrameHeader::one_way(3), 2));
        assert_eq!(w.queued_bytes, 11 + 3 * 3);
        let mut order = Vec::new();
        while let Some(Out::Frame(f)) = w.next_frame() {
            order.push((f.header.type_id, f.header.more, f.payload.len()));
        }
        assert_eq!(
            order,
            vec![
                (1, true, 4),
                (2, false, 2),
                (1, true, 4),
                (1, false, 2),
                (1, false, 2),
                (3, false, 2),
            ]
        );
        assert_eq!(w.queued_bytes, 0);
        assert!(w.is_idle());
    }

    #[test]
    fn an_encoded_run_waits_for_the_last_fragment() {
        let mut w = writer(Some(4));
        let deliver = FrameHeader::control(ControlOp::Deliver);
        w.push(sized(deliver, 10));
        let encoded = super::super::outbox::Encoded {
            bytes: Bytes::from_static(&[2, 0x80, 0]),
            frames: 1,
            len: 2,
        };
        w.queued_bytes += encoded.len;
        w.queue.push_back(Out::Encoded(encoded));
        w.push(sized(FrameHeader::one_way(3), 2));
        let mut order = Vec::new();
        while let Some(o) = w.next_frame() {
            order.push(match o {
                Out::Frame(f) => (Some(f.header.more), f.payload.len()),
                Out::Encoded(e) => (None, e.frames),
            });
        }
        // The run, whose frames may be of the fragmented message's key,
        // waits for the last fragment; what follows it keeps its place.
        assert_eq!(
            order,
            vec![
                (Some(true), 4),
                (Some(true), 4),
                (Some(false), 2),
                (None, 1),
                (Some(false), 2),
            ]
        );
        assert_eq!(w.queued_bytes, 0);
    }
}
