//! The two ends of a stream: [`Sink`] sends items within the credit the
//! receiver granted, [`Streaming`] receives them and grants more as they
//! are taken.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::time::{Instant, Sleep};

use super::{CallError, Code, Status};
use crate::TopLevel;
use crate::session::{Inflow, Outflow, SendError, Session, credit_frame};
use crate::wire::batch::{BatchItems, item_cost};
use crate::wire::{ErrorBody, Frame, FrameHeader, FrameKind, Limits, Reader};

/// Which end of the call a stream end belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The end that made the call.
    Caller,
    /// The end that serves it.
    Callee,
}

/// Maps a failure to queue a frame to the call's error.
pub(crate) fn send_error(method: &'static str, e: SendError) -> CallError {
    match e {
        SendError::QueueFull { .. } => CallError::QueueFull { method },
        SendError::Encode { message, source } => CallError::Encode {
            method,
            message,
            source: Box::new(source),
        },
        SendError::FingerprintMismatch { name, .. } => CallError::Incompatible {
            method,
            reason: format!("message {name} is defined differently on the peer"),
        },
        other => CallError::Closed {
            method,
            reason: other.to_string(),
        },
    }
}

/// The status in an error body, or why it could not be read.
pub(crate) fn status_of(method: &'static str, payload: &[u8]) -> CallError {
    match ErrorBody::decode(payload) {
        Ok(body) => CallError::Status {
            method,
            status: Status::new(Code::from_wire(body.code), body.message),
        },
        Err(source) => CallError::Decode {
            method,
            message: "error body",
            source: Box::new(source),
        },
    }
}

/// Most items [`Sink::send_all`] takes from its iterator for one run.
const SEND_ALL_RUN: usize = 64;

/// Most credit (in item cost, wire format §2.7) one run of
/// [`Sink::send_all`] takes at once.
const SEND_ALL_RUN_BYTES: u64 = 4096;

/// The sending end of a stream: a handler's response stream, or a caller's
/// request stream. Sending waits for credit, so a receiver that does not
/// keep up slows the sender down instead of making anyone buffer.
pub struct Sink<T> {
    session: Session,
    correlation: u64,
    outflow: Arc<Outflow>,
    method: &'static str,
    side: Side,
    ended: AtomicBool,
    _item: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for Sink<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("method", &self.method)
            .field("correlation", &self.correlation)
            .field("closed", &self.outflow.is_closed())
            .finish()
    }
}

impl<T: TopLevel> Sink<T> {
    pub(crate) fn new(
        session: Session,
        correlation: u64,
        outflow: Arc<Outflow>,
        method: &'static str,
        side: Side,
    ) -> Self {
        Sink {
            session,
            correlation,
            outflow,
            method,
            side,
            ended: AtomicBool::new(false),
            _item: PhantomData,
        }
    }

    /// Sends one item, waiting for credit and for room in the outbound
    /// queue. Fails once the other end has cancelled or gone (a handler's
    /// caller cancelled, the call ended, the session closed).
    ///
    /// The item is encoded straight into the session's outbound queue:
    /// items sent faster than the connection writes them leave together,
    /// in batches (wire format §2.7), without waiting for one another.
    pub async fn send(&self, item: impl Borrow<T>) -> Result<(), CallError> {
        let item = item.borrow();
        let cancelled = || CallError::Cancelled {
            method: self.method,
        };
        if self.ended.load(Ordering::Acquire) || self.outflow.is_closed() {
            return Err(cancelled());
        }
        let len = item.encoded_len();
        let cost = item_cost(len);
        // The usual case first, without building the futures that wait.
        if !self.outflow.try_take(cost) && !self.outflow.acquire(cost).await {
            return Err(cancelled());
        }
        let r = match self.session.try_send_item(self.correlation, item, len) {
            Ok(true) => return Ok(()),
            Ok(false) => tokio::select! {
                biased;
                r = self.session.send_item(self.correlation, item, len) => {
                    r.map_err(|e| send_error(self.method, e))
                }
                () = self.outflow.closed() => Err(cancelled()),
            },
            Err(e) => Err(send_error(self.method, e)),
        };
        if r.is_err() {
            // Nothing was sent: the credit is still there.
            self.outflow.refund(cost);
        }
        r
    }

    /// Sends the items of `items` in order, as [`Sink::send`] does each;
    /// stops at the first that fails.
    ///
    /// Items are taken from the iterator a run at a time (up to 64 items or
    /// 4 KiB): as much of a run as the credit allows takes its credit at
    /// once and goes into the outbound queue under one lock, where
    /// [`Sink::send`] takes both per item. That is the cheaper way to stream
    /// items that are ready together. Flow control is the same as item by
    /// item: the credit is never overdrawn by more than one item.
    pub async fn send_all<I>(&self, items: I) -> Result<(), CallError>
    where
        I: IntoIterator,
        I::Item: Borrow<T>,
    {
        let mut items = items.into_iter();
        let mut run: Vec<I::Item> = Vec::new();
        let mut lens: Vec<usize> = Vec::new();
        loop {
            run.clear();
            lens.clear();
            let mut total = 0;
            while run.len() < SEND_ALL_RUN && total < SEND_ALL_RUN_BYTES {
                let Some(item) = items.next() else { break };
                let len = item.borrow().encoded_len();
                total += item_cost(len);
                lens.push(len);
                run.push(item);
            }
            if run.is_empty() {
                return Ok(());
            }
            self.send_run(&run, &lens).await?;
        }
    }

    /// Sends one run of [`Sink::send_all`] (`lens` are its items' encoded
    /// lengths).
    async fn send_run<B: Borrow<T>>(&self, run: &[B], lens: &[usize]) -> Result<(), CallError> {
        let cost = |lens: &[usize]| lens.iter().map(|&len| item_cost(len)).sum();
        let msgs: Vec<&T> = run.iter().map(Borrow::borrow).collect();
        let mut i = 0;
        while i < msgs.len() {
            if self.ended.load(Ordering::Acquire) || self.outflow.is_closed() {
                return Err(CallError::Cancelled {
                    method: self.method,
                });
            }
            // The items the credit covers now, taken at once.
            let k = self.outflow.try_take_prefix(&lens[i..]);
            let sent = if k == 0 {
                0
            } else {
                match self.session.try_send_items(
                    self.correlation,
                    &msgs[i..i + k],
                    &lens[i..i + k],
                ) {
                    Ok(sent) => sent,
                    Err(e) => {
                        self.outflow.refund(cost(&lens[i..i + k]));
                        return Err(send_error(self.method, e));
                    }
                }
            };
            if sent < k {
                // Credit taken for items with no room now goes back.
                self.outflow.refund(cost(&lens[i + sent..i + k]));
            }
            i += sent;
            if sent < k || k == 0 {
                // No credit or no room: this one waits, as `send` does.
                self.send(msgs[i]).await?;
                i += 1;
            }
        }
        Ok(())
    }

    /// Whether the other end has cancelled or gone: sending fails from now on.
    pub fn is_closed(&self) -> bool {
        self.outflow.is_closed() || self.ended.load(Ordering::Acquire)
    }

    /// Resolves when the other end has cancelled or gone.
    pub async fn closed(&self) {
        self.outflow.closed().await;
    }

    /// Ends a caller's request stream (a stream end). Dropping the sink does
    /// the same. A handler's response stream ends when the handler returns:
    /// there this only stops further sends.
    pub async fn finish(self) -> Result<(), CallError> {
        self.end().await
    }

    pub(crate) async fn end(&self) -> Result<(), CallError> {
        if self.side == Side::Caller && !self.ended.swap(true, Ordering::AcqRel) {
            if self.outflow.is_closed() {
                return Ok(());
            }
            let end = Frame::new(FrameHeader::stream_end(self.correlation), Bytes::new());
            self.session
                .enqueue(end)
                .await
                .map_err(|e| send_error(self.method, e))?;
        }
        self.ended.store(true, Ordering::Release);
        Ok(())
    }
}

impl<T> Drop for Sink<T> {
    fn drop(&mut self) {
        if self.side == Side::Caller && !self.ended.swap(true, Ordering::AcqRel) {
            if !self.outflow.is_closed() {
                // Half-close: the caller sends nothing more.
                self.session.push_frame(Frame::new(
                    FrameHeader::stream_end(self.correlation),
                    Bytes::new(),
                ));
            }
            self.session.calls().close_outflow(self.correlation);
        }
    }
}

/// The receiving end of a stream: a caller's response stream, or a
/// handler's request stream. Implements [`Stream`]; items are taken with
/// [`Streaming::next`]. Dropped by the caller before its end, it cancels the
/// call at the callee.
pub struct Streaming<T> {
    session: Session,
    correlation: u64,
    inflow: Arc<Inflow>,
    method: &'static str,
    side: Side,
    /// Frames taken from the inflow, all at once, and not read yet.
    frames: VecDeque<Frame>,
    /// The batch being read: its payload and where its next item starts.
    batch: Option<(Bytes, usize)>,
    /// Credit is granted once this many bytes of items have been taken.
    grant_at: u64,
    /// Bytes of items taken since the last grant.
    taken: u64,
    /// Items taken in all.
    items: u64,
    done: bool,
    timeout: Option<(Pin<Box<Sleep>>, std::time::Duration)>,
    _item: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("method", &self.method)
            .field("correlation", &self.correlation)
            .field("done", &self.done)
            .finish()
    }
}

impl<T: TopLevel> Streaming<T> {
    pub(crate) fn new(
        session: Session,
        correlation: u64,
        inflow: Arc<Inflow>,
        method: &'static str,
        side: Side,
        deadline: Option<Instant>,
    ) -> Self {
        // Half the window at a time, like HTTP/2's window updates: the
        // sender has the other half to go on with while the grant travels.
        let grant_at = u64::from(session.calls().window).div_ceil(2);
        let timeout = deadline.map(|d| {
            let after = d.saturating_duration_since(Instant::now());
            (Box::pin(tokio::time::sleep_until(d)), after)
        });
        Streaming {
            session,
            correlation,
            inflow,
            method,
            side,
            frames: VecDeque::new(),
            batch: None,
            grant_at,
            taken: 0,
            items: 0,
            done: false,
            timeout,
            _item: PhantomData,
        }
    }

    /// The next item; `None` once the stream has ended normally. An error
    /// ends the stream too: the callee's status, the deadline, the session's
    /// end, or an item that cannot be decoded.
    pub async fn next(&mut self) -> Option<Result<T, CallError>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    /// Items received and not taken yet (their bytes are bounded by the
    /// stream window).
    pub fn buffered(&self) -> usize {
        self.inflow.items_received().saturating_sub(self.items) as usize
    }

    fn finish(&mut self) {
        self.done = true;
        self.session.calls().close_inflow(self.correlation);
    }

    /// An item of `len` bytes was taken: grant credit for what was taken
    /// once it reaches half the window (not after the stream's end).
    fn took(&mut self, len: usize) {
        self.items += 1;
        self.taken += item_cost(len);
        if self.taken >= self.grant_at && !self.inflow.is_ended() {
            let bytes = std::mem::take(&mut self.taken);
            self.inflow.grant(bytes);
            self.session
                .push_frame(credit_frame(self.correlation, bytes));
        }
    }

    fn decode_error(&self, source: crate::wire::DecodeError) -> CallError {
        CallError::Decode {
            method: self.method,
            message: T::NAME,
            source: Box::new(source),
        }
    }

    /// The next item of the batch being read, if any.
    fn next_batched(&mut self) -> Option<Result<T, CallError>> {
        let (payload, pos) = self.batch.as_mut()?;
        let mut items = BatchItems::resume(payload, *pos);
        match items.next() {
            Some(Ok(range)) => {
                *pos = items.position();
                let len = range.len();
                // Read in place: `bytes` fields share the payload.
                let mut r = Reader::from_bytes(payload, &Limits::DEFAULT).region(range);
                let decoded = T::decode_reader(&mut r).map_err(|e| self.decode_error(e));
                self.took(len);
                Some(decoded)
            }
            Some(Err(source)) => {
                // The connection task reads every batch before queuing it:
                // not reached, but an error rather than a panic.
                self.batch = None;
                self.done = true;
                Some(Err(CallError::Decode {
                    method: self.method,
                    message: "a batch of stream items",
                    source: Box::new(source),
                }))
            }
            None => {
                self.batch = None;
                None
            }
        }
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, CallError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let frame = loop {
            if let Some(item) = self.next_batched() {
                return Poll::Ready(Some(item));
            }
            if let Some(frame) = self.frames.pop_front() {
                if frame.header.kind == FrameKind::StreamItem
                    && frame.header.batch
                    && frame.header.type_id == T::TYPE_ID
                {
                    self.batch = Some((frame.payload, 0));
                    continue;
                }
                break frame;
            }
            match self.inflow.poll_take(cx, &mut self.frames) {
                Poll::Ready(true) => {}
                Poll::Ready(false) => {
                    self.finish();
                    let reason = self.session.close_reason();
                    return Poll::Ready(Some(Err(match (self.side, reason) {
                        (_, Some(reason)) => CallError::Closed {
                            method: self.method,
                            reason: reason.to_string(),
                        },
                        (Side::Callee, None) => CallError::Cancelled {
                            method: self.method,
                        },
                        (Side::Caller, None) => CallError::Closed {
                            method: self.method,
                            reason: "the stream ended without a stream end".to_owned(),
                        },
                    })));
                }
                Poll::Pending => {
                    if let Some((sleep, after)) = &mut self.timeout
                        && sleep.as_mut().poll(cx).is_ready()
                    {
                        let after = *after;
                        self.finish();
                        if self.side == Side::Caller {
                            self.session.push_cancel(self.correlation);
                        }
                        return Poll::Ready(Some(Err(CallError::Timeout {
                            method: self.method,
                            after,
                        })));
                    }
                    return Poll::Pending;
                }
            }
        };
        let h = frame.header;
        Poll::Ready(match h.kind {
            FrameKind::StreamItem if h.type_id == T::TYPE_ID => {
                let len = frame.payload.len();
                let decoded = T::decode(frame.payload).map_err(|e| self.decode_error(e));
                self.took(len);
                Some(decoded)
            }
            FrameKind::StreamItem => Some(Err(CallError::Incompatible {
                method: self.method,
                reason: format!(
                    "a stream item of type id {}, where {} (type id {}) was expected",
                    h.type_id,
                    T::NAME,
                    T::TYPE_ID
                ),
            })),
            FrameKind::StreamEnd if frame.payload.is_empty() => {
                self.done = true;
                None
            }
            FrameKind::StreamEnd | FrameKind::Error => {
                self.done = true;
                Some(Err(status_of(self.method, &frame.payload)))
            }
            _ => {
                self.done = true;
                Some(Err(CallError::Incompatible {
                    method: self.method,
                    reason: format!("a {} frame ended the stream", h.kind.name()),
                }))
            }
        })
    }
}

impl<T: TopLevel> Stream for Streaming<T> {
    type Item = Result<T, CallError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Nothing in `Streaming` is structurally pinned.
        self.get_mut().poll_item(cx)
    }
}

impl<T> Unpin for Streaming<T> {}

impl<T> Drop for Streaming<T> {
    fn drop(&mut self) {
        if !self.done {
            self.session.calls().close_inflow(self.correlation);
            if self.side == Side::Caller {
                // The caller no longer wants the items: stop the callee.
                self.session.push_cancel(self.correlation);
            }
        }
    }
}
