//! The bounded outbound queue, in frames and in bytes.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::{Notify, Semaphore, SemaphorePermit, TryAcquireError};

use super::lock;
use crate::wire::batch::{batched_len, put_item_len};
use crate::wire::{EncodeError, Frame, FrameHeader};

/// The bounded outbound queue: senders push frames under a short lock and wake
/// the connection task, which takes everything queued at once. It allocates
/// nothing until the first frame is sent. Its room in frames is a semaphore,
/// so that waiting senders are woken in order and all at once when it
/// closes; its room in bytes (encoded frame lengths) is a counter, checked
/// after a frame's place is taken (a second semaphore cost a fifth of the
/// one-way throughput), with a notification when bytes are freed.
///
/// Stream items are encoded straight into a batch frame at the queue's tail
/// (wire format §2.7), which takes one place: items of the same stream
/// queued one after the other, with nothing in between, leave in one frame
/// (see [`Outbox::send_item`]).
///
/// Small frames encoded once for many sessions (a publication's `deliver`
/// frame, for every subscriber) are copied, already in stream framing, into
/// a run at the queue's tail that also takes one place, however many frames
/// it holds ([`Outbox::try_send_encoded`]): no reference to a shared buffer
/// is taken and dropped per frame, and the writer copies the run into the
/// transport's write buffer as it is.
/// The largest payload of a batch of stream items (wire format §2.7): items
/// ready together leave in frames of up to this size. Small enough that a
/// batch is soon read whole and its first item is not kept waiting; large
/// enough that per-frame work is spread over hundreds of small items.
pub(super) const BATCH_BYTES: usize = 16 * 1024;

/// The largest batch payload of a session: [`BATCH_BYTES`], within one
/// fragment (or one frame, when the session does not fragment).
pub(super) fn max_batch(config: &super::SessionConfig) -> usize {
    let frame = config.max_frame.saturating_sub(32);
    BATCH_BYTES
        .min(config.fragment_size.unwrap_or(frame))
        .min(frame)
        .max(1)
}

pub(super) struct Outbox {
    queue: Mutex<Queue>,
    pub(super) room: Semaphore,
    /// Bytes of the frames queued now.
    bytes: AtomicUsize,
    /// Woken when bytes are freed (and when the queue closes).
    freed: Notify,
    pub(super) task: AtomicWaker,
    pub(super) capacity: usize,
    pub(super) byte_capacity: usize,
}

/// What the queue holds, in order: a frame, or frames already encoded.
pub(super) enum Out {
    Frame(Frame),
    Encoded(Encoded),
}

/// Frames in stream framing (wire format §3), one after the other, for a
/// transport that takes them as they are
/// ([`crate::transport::FrameTx::start_send_encoded`]).
pub(super) struct Encoded {
    pub(super) bytes: Bytes,
    /// How many frames.
    pub(super) frames: usize,
    /// Their encoded lengths without the stream framing's length prefixes
    /// ([`Frame::len`]), as the queue's byte counts are.
    pub(super) len: usize,
}

impl Out {
    /// Encoded bytes (without stream framing, [`Frame::len`]).
    pub(super) fn len(&self) -> usize {
        match self {
            Out::Frame(f) => f.len(),
            Out::Encoded(e) => e.len,
        }
    }
}

impl From<Frame> for Out {
    fn from(f: Frame) -> Out {
        Out::Frame(f)
    }
}

/// The frames queued, in order, and the batch or run being filled after them.
#[derive(Default)]
struct Queue {
    frames: VecDeque<Out>,
    /// Frames in `frames`, those in encoded runs each counted.
    count: usize,
    /// Stream items being batched: it follows every frame in `frames`.
    /// Never open at the same time as `encoded`.
    open: Option<OpenBatch>,
    /// Encoded frames being gathered: it follows every frame in `frames`.
    encoded: Option<OpenEncoded>,
    /// The length of the last encoded run: the next one starts this large.
    encoded_hint: usize,
    /// What the queued frames and the open batch took of the byte budget
    /// (with what batches reserved and did not use).
    charged: usize,
    /// Encoded bytes of the frames in `frames`.
    len: usize,
    /// The payload size of the last batch: the next one starts this large.
    hint: usize,
}

/// A batch of stream items being filled. A `Vec` rather than a `BytesMut`:
/// its writes are inlined, where `BytesMut` makes a call for every byte of
/// a varint.
struct OpenBatch {
    type_id: u32,
    correlation: u64,
    payload: Vec<u8>,
    items: usize,
    /// Bytes of the budget taken for the batch and not used yet: a batch
    /// takes its room at once, when there is that much, so that its items
    /// need not each update the shared count.
    reserved: usize,
    /// Length of the first item's length prefix: a batch of one item leaves
    /// as a plain stream item.
    first_prefix: usize,
}

/// An encoded run being filled.
struct OpenEncoded {
    bytes: Vec<u8>,
    frames: usize,
    len: usize,
}

/// The size at which an encoded run is closed and the next frames open
/// another: the writer writes runs as they are, one write for many, and
/// runs of this size are allocated and freed without mapping pages.
const ENCODED_RUN: usize = 32 * 1024;

impl Queue {
    /// Moves the open batch or encoded run, if any, behind the queued frames.
    fn close_batch(&mut self) {
        self.close_stream_batch();
        if let Some(e) = self.encoded.take() {
            self.encoded_hint = e.bytes.len();
            self.len += e.len;
            self.frames.push_back(Out::Encoded(Encoded {
                bytes: Bytes::from(e.bytes),
                frames: e.frames,
                len: e.len,
            }));
        }
    }

    /// Moves the open batch of stream items, if any, behind the queued frames.
    fn close_stream_batch(&mut self) {
        let Some(b) = self.open.take() else {
            return;
        };
        self.hint = b.payload.len();
        let payload = Bytes::from(b.payload);
        let frame = if b.items == 1 {
            Frame::new(
                FrameHeader::stream_item(b.type_id, b.correlation),
                payload.slice(b.first_prefix..),
            )
        } else {
            Frame::new(FrameHeader::stream_batch(b.type_id, b.correlation), payload)
        };
        self.len += frame.len();
        self.count += 1;
        self.frames.push_back(Out::Frame(frame));
    }

    fn push(&mut self, frame: Frame, charged: usize) {
        let len = frame.len();
        self.push_sized(frame, len, charged);
    }

    /// [`Queue::push`] of a frame whose encoded length is known.
    fn push_sized(&mut self, frame: Frame, len: usize, charged: usize) {
        self.close_batch();
        self.len += len;
        self.charged += charged;
        self.count += 1;
        self.frames.push_back(Out::Frame(frame));
    }
}

pub(super) enum TryPush {
    Full,
    Closed,
}

/// Why [`Outbox::try_send_item`] did not queue an item.
pub(super) enum ItemError {
    Closed,
    Encode(EncodeError),
    /// No room now: a place in the queue, or bytes of its budget.
    Wait(Wait),
}

/// A stream item to queue: its stream, its encoded length and how to encode it.
pub(super) struct Item<F> {
    pub(super) type_id: u32,
    pub(super) correlation: u64,
    pub(super) len: usize,
    pub(super) encode: F,
}

/// What an item waits for.
pub(super) enum Wait {
    Room,
    Bytes(usize),
}

impl Outbox {
    pub(super) fn new(capacity: usize, byte_capacity: usize) -> Self {
        Outbox {
            queue: Mutex::new(Queue::default()),
            room: Semaphore::new(capacity),
            bytes: AtomicUsize::new(0),
            freed: Notify::new(),
            task: AtomicWaker::new(),
            capacity,
            byte_capacity: byte_capacity.max(1),
        }
    }

    /// What `len` encoded bytes cost of the byte budget: all of them, but
    /// never more than the whole budget, so that one large frame passes when
    /// the queue is empty.
    fn charge(&self, len: usize) -> usize {
        len.min(self.byte_capacity)
    }

    /// What a frame costs of the byte budget.
    pub(super) fn cost(&self, frame: &Frame) -> usize {
        self.charge(frame.len())
    }

    /// Whether nothing is queued.
    pub(super) fn is_empty(&self) -> bool {
        let q = lock(&self.queue);
        q.frames.is_empty() && q.open.is_none() && q.encoded.is_none()
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
        let cost = self.cost(&frame);
        self.bytes.fetch_add(cost, Ordering::AcqRel);
        self.push_counted(frame, cost);
    }

    fn push_counted(&self, frame: Frame, cost: usize) {
        lock(&self.queue).push(frame, cost);
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
        self.push_counted(frame, cost);
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
        let cost = self.cost(&frame);
        if !self.try_take_bytes(cost) {
            return Err(TryPush::Full);
        }
        room.forget();
        self.push_counted(frame, cost);
        Ok(())
    }

    /// Queues the longest prefix of `frames` that fits, under one lock and
    /// with one wake of the connection task; gives how many. `Ok(0)` also
    /// when another sender took the room meanwhile. `lens` are the frames'
    /// encoded lengths ([`Frame::len`]), one for each, computed by the
    /// caller once for all the queues a run of frames goes to.
    pub(super) fn try_send_many(&self, frames: &[Frame], lens: &[usize]) -> Result<usize, TryPush> {
        debug_assert_eq!(frames.len(), lens.len());
        let (n, _) = self.take_room_many(lens)?;
        if n == 0 {
            return Ok(0);
        }
        let mut q = lock(&self.queue);
        for (f, &len) in frames[..n].iter().zip(lens) {
            q.push_sized(f.clone(), len, self.charge(len));
        }
        drop(q);
        self.task.wake();
        Ok(n)
    }

    /// [`Outbox::try_send_many`] for frames already encoded in stream
    /// framing, one after the other in `bytes`: frame `i` ends at
    /// `ends[i]` and is `lens[i]` bytes without its length prefix
    /// ([`Frame::len`]). The longest prefix that fits is copied into the
    /// encoded run at the queue's tail (opened if there is none), under one
    /// lock and with one wake of the connection task; gives how many. Only
    /// for a session whose transport takes encoded frames, none of them
    /// larger than it writes.
    pub(super) fn try_send_encoded(
        &self,
        bytes: &[u8],
        ends: &[usize],
        lens: &[usize],
    ) -> Result<usize, TryPush> {
        debug_assert_eq!(ends.len(), lens.len());
        let (n, cost) = self.take_room_many(lens)?;
        if n == 0 {
            return Ok(0);
        }
        let end = ends[n - 1];
        let len: usize = lens[..n].iter().sum();
        let mut q = lock(&self.queue);
        q.close_stream_batch();
        if q.encoded
            .as_ref()
            .is_some_and(|r| r.bytes.len() + end > ENCODED_RUN)
        {
            q.close_batch();
        }
        let hint = q.encoded_hint.min(ENCODED_RUN);
        let run = q.encoded.get_or_insert_with(|| OpenEncoded {
            bytes: Vec::with_capacity(end.max(hint)),
            frames: 0,
            len: 0,
        });
        run.bytes.extend_from_slice(&bytes[..end]);
        run.frames += n;
        run.len += len;
        q.count += n;
        q.charged += cost;
        drop(q);
        self.task.wake();
        Ok(n)
    }

    /// Takes the places and bytes of the longest prefix of frames of
    /// encoded lengths `lens` that fits now: gives how many, and the bytes
    /// taken.
    fn take_room_many(&self, lens: &[usize]) -> Result<(usize, usize), TryPush> {
        if self.room.is_closed() {
            return Err(TryPush::Closed);
        }
        let free_bytes = self
            .byte_capacity
            .saturating_sub(self.bytes.load(Ordering::Acquire));
        let (mut n, mut cost) = (0, 0);
        for &len in lens.iter().take(self.room.available_permits()) {
            let c = self.charge(len);
            if cost + c > free_bytes {
                break;
            }
            cost += c;
            n += 1;
        }
        if n == 0 {
            return Ok((0, 0));
        }
        let room = match self.room.try_acquire_many(n as u32) {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => return Ok((0, 0)),
            Err(TryAcquireError::Closed) => return Err(TryPush::Closed),
        };
        if !self.try_take_bytes(cost) {
            return Ok((0, 0));
        }
        room.forget();
        Ok((n, cost))
    }

    /// Queues a stream item of at most `max_batch` bytes, encoded straight
    /// into the batch at the queue's tail when that batch is of the same
    /// stream and has room for it, otherwise into a new batch (which takes a
    /// place in the queue); `Err(Wait)` when there is no room now. `place`
    /// is a place taken while waiting, used for a new batch. The connection
    /// task is woken by the item that opens a batch only, once for as many
    /// items as arrive before it takes them.
    pub(super) fn try_send_item<'a, F>(
        &'a self,
        item: &mut Item<F>,
        max_batch: usize,
        place: &mut Option<SemaphorePermit<'a>>,
    ) -> Result<(), ItemError>
    where
        F: FnMut(&mut Vec<u8>) -> Result<(), EncodeError>,
    {
        let mut q = lock(&self.queue);
        let opened = self.put_item(&mut q, item, max_batch, place)?;
        drop(q);
        if opened {
            self.task.wake();
        }
        Ok(())
    }

    /// Queues the longest prefix of `count` stream items (`item(i)` makes
    /// the i-th) that has room now, under one lock and with at most one
    /// wake of the connection task, as [`Outbox::try_send_item`] queues
    /// each: gives how many were queued, and the error that stopped the run
    /// early if one did (a [`Wait`] just means no room for the next).
    pub(super) fn try_send_items<F>(
        &self,
        count: usize,
        max_batch: usize,
        mut item: impl FnMut(usize) -> Item<F>,
    ) -> (usize, Option<ItemError>)
    where
        F: FnMut(&mut Vec<u8>) -> Result<(), EncodeError>,
    {
        let mut q = lock(&self.queue);
        let (mut sent, mut opened, mut stop) = (0, false, None);
        while sent < count {
            match self.put_item(&mut q, &mut item(sent), max_batch, &mut None) {
                Ok(o) => {
                    opened |= o;
                    sent += 1;
                }
                Err(e) => {
                    stop = Some(e);
                    break;
                }
            }
        }
        drop(q);
        if opened {
            self.task.wake();
        }
        (sent, stop)
    }

    /// [`Outbox::try_send_item`] with the queue locked: `Ok(true)` when the
    /// item opened a batch (the caller wakes the connection task once the
    /// lock is released).
    fn put_item<'a, F>(
        &'a self,
        q: &mut std::sync::MutexGuard<'_, Queue>,
        item: &mut Item<F>,
        max_batch: usize,
        place: &mut Option<SemaphorePermit<'a>>,
    ) -> Result<bool, ItemError>
    where
        F: FnMut(&mut Vec<u8>) -> Result<(), EncodeError>,
    {
        let need = batched_len(item.len);
        let append = q.open.as_ref().is_some_and(|b| {
            b.type_id == item.type_id
                && b.correlation == item.correlation
                && b.payload.len() + need <= max_batch
        });
        if append {
            let reserved = q.open.as_ref().map_or(0, |b| b.reserved);
            let charge = if need <= reserved {
                0
            } else {
                let charge = self.charge(need);
                if !self.try_take_bytes(charge) {
                    return Err(ItemError::Wait(Wait::Bytes(charge)));
                }
                charge
            };
            let b = q.open.as_mut().expect("checked above");
            let at = b.payload.len();
            put_item_len(&mut b.payload, item.len);
            if let Err(e) = (item.encode)(&mut b.payload) {
                b.payload.truncate(at);
                self.give_back_bytes(charge);
                return Err(ItemError::Encode(e));
            }
            b.items += 1;
            if charge == 0 {
                b.reserved -= need;
            }
            q.charged += charge;
            // No wake: the item that opened the batch woke the task after
            // its last take, and the task takes the batch with this item.
            return Ok(false);
        }
        let head = FrameHeader::stream_batch(item.type_id, item.correlation).encoded_len();
        let exact = self.charge(head + need);
        let full = self.charge(head + max_batch.max(need));
        let permit = match place.take() {
            Some(p) => p,
            None => match self.room.try_acquire() {
                Ok(p) => p,
                Err(TryAcquireError::Closed) => return Err(ItemError::Closed),
                Err(TryAcquireError::NoPermits) => return Err(ItemError::Wait(Wait::Room)),
            },
        };
        let charge = if self.try_take_bytes(full) {
            full
        } else if self.try_take_bytes(exact) {
            exact
        } else {
            *place = Some(permit);
            return Err(ItemError::Wait(Wait::Bytes(exact)));
        };
        let mut payload = Vec::with_capacity(q.hint.clamp(need, max_batch.max(need)));
        put_item_len(&mut payload, item.len);
        let first_prefix = payload.len();
        if let Err(e) = (item.encode)(&mut payload) {
            *place = Some(permit);
            self.give_back_bytes(charge);
            return Err(ItemError::Encode(e));
        }
        permit.forget();
        q.close_batch();
        q.open = Some(OpenBatch {
            type_id: item.type_id,
            correlation: item.correlation,
            payload,
            items: 1,
            first_prefix,
            reserved: charge.saturating_sub(head + need),
        });
        q.charged += charge;
        Ok(true)
    }

    /// [`Outbox::try_send_item`], waiting for room when there is none.
    pub(super) async fn send_item<F>(
        &self,
        mut item: Item<F>,
        max_batch: usize,
    ) -> Result<(), ItemError>
    where
        F: FnMut(&mut Vec<u8>) -> Result<(), EncodeError>,
    {
        let mut place = None;
        loop {
            match self.try_send_item(&mut item, max_batch, &mut place) {
                Err(ItemError::Wait(Wait::Room)) => {
                    place = Some(self.room.acquire().await.map_err(|_| ItemError::Closed)?);
                }
                Err(ItemError::Wait(Wait::Bytes(charge))) => {
                    // Registered before the check, so that bytes freed in
                    // between are not missed.
                    let freed = self.freed.notified();
                    if self.room.is_closed() {
                        return Err(ItemError::Closed);
                    }
                    if self.bytes.load(Ordering::Acquire) + charge > self.byte_capacity {
                        freed.await;
                    }
                }
                r => return r,
            }
        }
    }

    fn give_back_bytes(&self, charge: usize) {
        self.bytes.fetch_sub(charge, Ordering::AcqRel);
        self.freed.notify_waiters();
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
        into: &mut VecDeque<Out>,
    ) -> Poll<usize> {
        self.task.register(cx.waker());
        self.take(into)
    }

    pub(super) fn take(&self, into: &mut VecDeque<Out>) -> Poll<usize> {
        let mut q = lock(&self.queue);
        q.close_batch();
        if q.frames.is_empty() {
            return Poll::Pending;
        }
        let n = std::mem::take(&mut q.count);
        let bytes = std::mem::take(&mut q.len);
        let cost = std::mem::take(&mut q.charged);
        if into.is_empty() {
            std::mem::swap(&mut q.frames, into);
        } else {
            into.append(&mut q.frames);
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

    fn frame(o: &Out) -> &Frame {
        match o {
            Out::Frame(f) => f,
            Out::Encoded(_) => panic!("an encoded run where a frame was expected"),
        }
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

    fn item(
        correlation: u64,
        byte: u8,
    ) -> Item<impl FnMut(&mut Vec<u8>) -> Result<(), EncodeError>> {
        Item {
            type_id: 24,
            correlation,
            len: 1,
            encode: move |b: &mut Vec<u8>| {
                b.push(byte);
                Ok(())
            },
        }
    }

    fn try_item(out: &Outbox, correlation: u64, byte: u8, max_batch: usize) -> bool {
        out.try_send_item(&mut item(correlation, byte), max_batch, &mut None)
            .is_ok()
    }

    #[test]
    fn stream_items_leave_in_batches_in_the_order_they_were_queued() {
        let out = Outbox::new(8, 10_000);
        for byte in [0xa, 0xb, 0xc] {
            assert!(try_item(&out, 1, byte, 64));
        }
        // Another frame ends the batch; the next item opens one.
        out.push(Frame::new(FrameHeader::cancel(9), Bytes::new()));
        assert!(try_item(&out, 1, 0xd, 64));
        // Items of another stream do not join it.
        assert!(try_item(&out, 3, 0xe, 64));
        assert!(try_item(&out, 3, 0xf, 64));
        assert!(try_item(&out, 1, 0x10, 64));
        assert!(!out.is_empty());
        let mut q = VecDeque::new();
        let Poll::Ready(bytes) = out.take(&mut q) else {
            panic!("nothing taken");
        };
        let got: Vec<(FrameHeader, Vec<u8>)> = q
            .iter()
            .map(frame)
            .map(|f| (f.header, f.payload.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    FrameHeader::stream_batch(24, 1),
                    vec![1, 0xa, 1, 0xb, 1, 0xc]
                ),
                (FrameHeader::cancel(9), vec![]),
                // A batch of one item leaves as a plain stream item.
                (FrameHeader::stream_item(24, 1), vec![0xd]),
                (FrameHeader::stream_batch(24, 3), vec![1, 0xe, 1, 0xf]),
                (FrameHeader::stream_item(24, 1), vec![0x10]),
            ]
        );
        assert_eq!(bytes, q.iter().map(Out::len).sum::<usize>());
        // Every byte and place taken is given back.
        assert_eq!(out.bytes_free(), 10_000);
        assert_eq!(out.room.available_permits(), 8);
        assert!(out.is_empty());
    }

    #[test]
    fn a_batch_ends_at_its_size_and_items_wait_for_room() {
        // Items take 2 bytes of a batch: 5 fit in 10.
        let out = Outbox::new(2, 10_000);
        for byte in 0..7 {
            assert!(try_item(&out, 1, byte, 10));
        }
        // Two batches hold the queue's two places: a third must wait.
        for byte in 7..10 {
            assert!(try_item(&out, 1, byte, 10));
        }
        assert!(matches!(
            out.try_send_item(&mut item(1, 10), 10, &mut None),
            Err(ItemError::Wait(Wait::Room))
        ));
        let mut q = VecDeque::new();
        assert!(out.take(&mut q).is_ready());
        let lens: Vec<usize> = q.iter().map(frame).map(|f| f.payload.len()).collect();
        assert_eq!(lens, [10, 10]);
        // The byte budget holds back an item too.
        let out = Outbox::new(8, 20);
        assert!(try_item(&out, 1, 0, 64));
        let mut n = 1;
        while try_item(&out, 1, n, 64) {
            n += 1;
        }
        assert!(matches!(
            out.try_send_item(&mut item(1, 0), 64, &mut None),
            Err(ItemError::Wait(Wait::Bytes(2)))
        ));
        assert_eq!(out.bytes_free(), 20 - (4 + 2 + 2 * usize::from(n - 1)));
        q.clear();
        assert!(out.take(&mut q).is_ready());
        assert_eq!(q.len(), 1);
        assert_eq!(out.bytes_free(), 20);
        assert_eq!(out.room.available_permits(), 8);
        // An item that cannot be encoded leaves nothing behind, whether it
        // would open a batch or join one.
        let failing = || Item {
            type_id: 24,
            correlation: 1,
            len: 1,
            encode: |_: &mut Vec<u8>| Err(EncodeError::InvalidHeader { reason: "test" }),
        };
        assert!(matches!(
            out.try_send_item(&mut failing(), 64, &mut None),
            Err(ItemError::Encode(_))
        ));
        assert!(out.is_empty());
        assert_eq!(out.bytes_free(), 20);
        assert_eq!(out.room.available_permits(), 8);
        assert!(try_item(&out, 1, 0x2a, 64));
        assert!(matches!(
            out.try_send_item(&mut failing(), 64, &mut None),
            Err(ItemError::Encode(_))
        ));
        q.clear();
        assert!(out.take(&mut q).is_ready());
        assert_eq!(q.len(), 1);
        assert_eq!(frame(&q[0]).header, FrameHeader::stream_item(24, 1));
        assert_eq!(&frame(&q[0]).payload[..], [0x2a]);
        assert_eq!(out.bytes_free(), 20);
        out.close();
        assert!(matches!(
            out.try_send_item(&mut item(2, 0), 64, &mut None),
            Err(ItemError::Closed)
        ));
    }

    /// `frames` encoded one after the other, with where each ends and its length.
    fn encode_run(frames: &[Frame]) -> (Vec<u8>, Vec<usize>, Vec<usize>) {
        let mut bytes = Vec::new();
        let (mut ends, mut lens) = (Vec::new(), Vec::new());
        for f in frames {
            crate::wire::put_stream_frame(&mut bytes, &f.header, &f.payload, 1 << 20).unwrap();
            ends.push(bytes.len());
            lens.push(f.len());
        }
        (bytes, ends, lens)
    }

    #[test]
    fn encoded_frames_keep_their_place_and_count_as_frames() {
        let out = Outbox::new(6, 10_000);
        let run: Vec<Frame> = (0..3)
            .map(|i| sized(FrameHeader::control(ControlOp::Deliver), 10 + i))
            .collect();
        let (bytes, ends, lens) = encode_run(&run);
        assert!(out.try_send(sized(FrameHeader::one_way(1), 4)).is_ok());
        // Two frames of the run, then the third: one run, after the frame.
        assert_eq!(
            out.try_send_encoded(&bytes, &ends[..2], &lens[..2]).ok(),
            Some(2)
        );
        let rest = &bytes[ends[1]..];
        assert_eq!(
            out.try_send_encoded(rest, &[rest.len()], &lens[2..]).ok(),
            Some(1)
        );
        // A stream item ends the run; the next encoded frames open another.
        assert!(try_item(&out, 1, 0xa, 64));
        // Room for one frame more (of six): the run's prefix that fits.
        assert_eq!(out.try_send_encoded(&bytes, &ends, &lens).ok(), Some(1));
        assert_eq!(out.try_send_encoded(&bytes, &ends, &lens).ok(), Some(0));
        assert!(matches!(
            out.try_send(sized(FrameHeader::one_way(1), 0)),
            Err(TryPush::Full)
        ));
        let mut q = VecDeque::new();
        let Poll::Ready(taken) = out.take(&mut q) else {
            panic!("nothing taken");
        };
        assert_eq!(q.len(), 4);
        assert_eq!(frame(&q[0]).header, FrameHeader::one_way(1));
        let Out::Encoded(first) = &q[1] else {
            panic!("expected an encoded run");
        };
        assert_eq!((first.frames, first.len), (3, lens.iter().sum::<usize>()));
        assert_eq!(&first.bytes[..], &bytes[..]);
        assert_eq!(frame(&q[2]).header, FrameHeader::stream_item(24, 1));
        let Out::Encoded(second) = &q[3] else {
            panic!("expected an encoded run");
        };
        assert_eq!((second.frames, &second.bytes[..]), (1, &bytes[..ends[0]]));
        assert_eq!(taken, q.iter().map(Out::len).sum::<usize>());
        // Every place and byte is given back: six frames, however queued.
        assert_eq!(out.room.available_permits(), 6);
        assert_eq!(out.bytes_free(), 10_000);
        assert!(out.is_empty());
        // The byte budget holds back encoded frames as it does frames.
        let out = Outbox::new(8, lens[0] + lens[1]);
        assert_eq!(out.try_send_encoded(&bytes, &ends, &lens).ok(), Some(2));
        out.close();
        assert!(matches!(
            out.try_send_encoded(&bytes, &ends, &lens),
            Err(TryPush::Closed)
        ));
    }
}
