//! The bounded outbound queue, in frames and in bytes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::{Notify, Semaphore, TryAcquireError};

use super::lock;
use crate::wire::Frame;

/// The bounded outbound queue: senders push frames under a short lock and wake
/// the connection task, which takes everything queued at once. It allocates
/// nothing until the first frame is sent. Its room in frames is a semaphore,
/// so that waiting senders are woken in order and all at once when it
/// closes; its room in bytes (encoded frame lengths) is a counter, checked
/// after a frame's place is taken (a second semaphore cost a fifth of the
/// one-way throughput), with a notification when bytes are freed.
pub(super) struct Outbox {
    pub(super) frames: Mutex<VecDeque<Frame>>,
    pub(super) room: Semaphore,
    /// Bytes of the frames queued now.
    bytes: AtomicUsize,
    /// Woken when bytes are freed (and when the queue closes).
    freed: Notify,
    pub(super) task: AtomicWaker,
    pub(super) capacity: usize,
    pub(super) byte_capacity: usize,
}

pub(super) enum TryPush {
    Full,
    Closed,
}

impl Outbox {
    pub(super) fn new(capacity: usize, byte_capacity: usize) -> Self {
        Outbox {
            frames: Mutex::new(VecDeque::new()),
            room: Semaphore::new(capacity),
            bytes: AtomicUsize::new(0),
            freed: Notify::new(),
            task: AtomicWaker::new(),
            capacity,
            byte_capacity: byte_capacity.max(1),
        }
    }

    /// What a frame costs of the byte budget: its encoded length, but never
    /// more than the whole budget, so that one large frame passes when the
    /// queue is empty.
    pub(super) fn cost(&self, frame: &Frame) -> usize {
        frame.len().min(self.byte_capacity)
    }

    /// Bytes of the budget not taken.
    #[cfg(test)]
    pub(super) fn bytes_free(&self) -> usize {
        self.byte_capacity
            .saturating_sub(self.bytes.load(Ordering::Acquire))
    }

    /// Takes `cost` bytes of the budget if they are free.
    fn try_take_bytes(&self, cost: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + cost <= self.byte_capacity).then_some(used + cost)
            })
            .is_ok()
    }

    /// Queues a frame without waiting for room: for the few frames the
    /// runtime itself must get out (the close frame of a failing session).
    /// Its bytes still count, so that the count stays exact.
    pub(super) fn push(&self, frame: Frame) {
        self.bytes.fetch_add(self.cost(&frame), Ordering::AcqRel);
        self.push_counted(frame);
    }

    fn push_counted(&self, frame: Frame) {
        lock(&self.frames).push_back(frame);
        self.task.wake();
    }

    /// Waits for room, then queues; `Err` when the session has ended.
    pub(super) async fn send(&self, frame: Frame) -> Result<(), ()> {
        let room = self.room.acquire().await.map_err(|_| ())?;
        let cost = self.cost(&frame);
        loop {
            // Registered before the check, so that bytes freed in between
            // are not missed.
            let freed = self.freed.notified();
            if self.try_take_bytes(cost) {
                break;
            }
            if self.room.is_closed() {
                return Err(());
            }
            freed.await;
        }
        room.forget();
        self.push_counted(frame);
        Ok(())
    }

    /// Waits until a frame of `len` encoded bytes would be taken by
    /// [`Outbox::try_send`], taking no room; `Err` when the queue has closed.
    pub(super) async fn ready(&self, len: usize) -> Result<(), ()> {
        let cost = len.min(self.byte_capacity);
        // Held while the bytes are checked, given back at the end.
        let _room = self.room.acquire().await.map_err(|_| ())?;
        loop {
            let freed = self.freed.notified();
            if self.bytes.load(Ordering::Acquire) + cost <= self.byte_capacity {
                return Ok(());
            }
            if self.room.is_closed() {
                return Err(());
            }
            freed.await;
        }
    }

    pub(super) fn try_send(&self, frame: Frame) -> Result<(), TryPush> {
        let room = match self.room.try_acquire() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Err(TryPush::Full),
            Err(TryAcquireError::Closed) => return Err(TryPush::Closed),
        };
        if !self.try_take_bytes(self.cost(&frame)) {
            return Err(TryPush::Full);
        }
        room.forget();
        self.push_counted(frame);
        Ok(())
    }

    /// Queues the longest prefix of `frames` that fits, under one lock and
    /// with one wake of the connection task; gives how many. `Ok(0)` also
    /// when another sender took the room meanwhile.
    pub(super) fn try_send_many(&self, frames: &[Frame]) -> Result<usize, TryPush> {
        if self.room.is_closed() {
            return Err(TryPush::Closed);
        }
        let free_bytes = self
            .byte_capacity
            .saturating_sub(self.bytes.load(Ordering::Acquire));
        let (mut n, mut cost) = (0, 0);
        for f in frames.iter().take(self.room.available_permits()) {
            let c = self.cost(f);
            if cost + c > free_bytes {
                break;
            }
            cost += c;
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let room = match self.room.try_acquire_many(n as u32) {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Ok(0),
            Err(TryAcquireError::Closed) => return Err(TryPush::Closed),
        };
        if !self.try_take_bytes(cost) {
            return Ok(0);
        }
        room.forget();
        lock(&self.frames).extend(frames[..n].iter().cloned());
        self.task.wake();
        Ok(n)
    }

    pub(super) fn close(&self) {
        self.room.close();
        self.freed.notify_waiters();
    }

    /// Moves every queued frame to `into` (waiting until there is one), and
    /// gives their room back: from now on they count against the task's own
    /// write queue, which stops reading when it is full. Gives the bytes moved.
    pub(super) fn poll_take(
        &self,
        cx: &mut std::task::Context<'_>,
        into: &mut VecDeque<Frame>,
    ) -> Poll<usize> {
        self.task.register(cx.waker());
        self.take(into)
    }

    pub(super) fn take(&self, into: &mut VecDeque<Frame>) -> Poll<usize> {
        let mut q = lock(&self.frames);
        if q.is_empty() {
            return Poll::Pending;
        }
        let n = q.len();
        let (bytes, cost) = q.iter().fold((0usize, 0usize), |(b, c), f| {
            (b + f.len(), c + self.cost(f))
        });
        if into.is_empty() {
            std::mem::swap(&mut *q, into);
        } else {
            into.append(&mut q);
        }
        drop(q);
        // Frames pushed without room (close on error, the welcome) may give
        // back more than was taken; never grow beyond the capacity.
        let free = self.room.available_permits();
        self.room
            .add_permits(n.min(self.capacity.saturating_sub(free)));
        self.bytes.fetch_sub(cost, Ordering::AcqRel);
        self.freed.notify_waiters();
        Poll::Ready(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ControlOp, FrameHeader};
    use bytes::Bytes;

    fn sized(h: FrameHeader, n: usize) -> Frame {
        Frame::new(h, Bytes::from(vec![0u8; n]))
    }

    #[test]
    fn the_outbox_counts_bytes_exactly() {
        let out = Outbox::new(4, 100);
        // Frames of 30 bytes: a one-byte header and 29 of payload.
        let f = || sized(FrameHeader::one_way(1), 29);
        assert_eq!(f().len(), 30);
        for _ in 0..3 {
            assert!(out.try_send(f()).is_ok());
        }
        // 90 bytes taken; a fourth would make 120 of 100.
        assert!(matches!(out.try_send(f()), Err(TryPush::Full)));
        // A frame of exactly the 10 bytes left fits.
        assert!(out.try_send(sized(FrameHeader::one_way(1), 9)).is_ok());
        assert!(matches!(
            out.try_send(sized(FrameHeader::one_way(1), 0)),
            Err(TryPush::Full)
        ));
        let mut q = VecDeque::new();
        assert_eq!(out.take(&mut q), Poll::Ready(100));
        assert_eq!(q.len(), 4);
        assert_eq!(out.bytes_free(), 100);
        assert_eq!(out.room.available_permits(), 4);
        // One frame larger than the whole budget passes when the queue is
        // empty, and then nothing else does.
        assert!(out.try_send(sized(FrameHeader::one_way(1), 5000)).is_ok());
        assert!(matches!(
            out.try_send(sized(FrameHeader::one_way(1), 0)),
            Err(TryPush::Full)
        ));
        q.clear();
        assert_eq!(out.take(&mut q), Poll::Ready(5001));
        assert_eq!(out.bytes_free(), 100);
        // Frames pushed without room never raise the budget above its size.
        out.push(sized(FrameHeader::control(ControlOp::Close), 10));
        assert_eq!(out.take(&mut q), Poll::Ready(11));
        assert_eq!(out.bytes_free(), 100);
        assert_eq!(out.room.available_permits(), 4);
        out.close();
        assert!(matches!(out.try_send(f()), Err(TryPush::Closed)));
    }
}
