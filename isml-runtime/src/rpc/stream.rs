//! The two ends of a stream: [`Sink`] sends items within the credit the
//! receiver granted, [`Streaming`] receives them and grants more as they
//! are taken.

use std::borrow::Borrow;
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
use crate::wire::{ErrorBody, Frame, FrameHeader, FrameKind};

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
    pub async fn send(&self, item: impl Borrow<T>) -> Result<(), CallError> {
        if self.ended.load(Ordering::Acquire) || !self.outflow.acquire().await {
            return Err(CallError::Cancelled {
                method: self.method,
            });
        }
        let frame = self
            .session
            .encode(
                FrameHeader::stream_item(T::TYPE_ID, self.correlation),
                item.borrow(),
            )
            .map_err(|e| send_error(self.method, e))?;
        tokio::select! {
            biased;
            r = self.session.enqueue(frame) => r.map_err(|e| send_error(self.method, e)),
            () = self.outflow.closed() => Err(CallError::Cancelled { method: self.method }),
        }
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
    window: u32,
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
        let window = session.calls().window;
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
            window,
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

    /// Items received and not taken yet (at most the stream window).
    pub fn buffered(&self) -> usize {
        self.inflow.queued()
    }

    fn finish(&mut self) {
        self.done = true;
        self.session.calls().close_inflow(self.correlation);
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, CallError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let (session, correlation) = (&self.session, self.correlation);
        let polled = self.inflow.poll_next(cx, self.window, |n| {
            session.push_frame(credit_frame(correlation, n));
        });
        let frame = match polled {
            Poll::Ready(Some(frame)) => frame,
            Poll::Ready(None) => {
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
        };
        let h = frame.header;
        Poll::Ready(match h.kind {
            FrameKind::StreamItem if h.type_id == T::TYPE_ID => Some(
                T::decode(frame.payload).map_err(|source| CallError::Decode {
                    method: self.method,
                    message: T::NAME,
                    source: Box::new(source),
                }),
            ),
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
