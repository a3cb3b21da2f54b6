//! Calls of methods known only at run time: the service by name, the
//! method by id, the request and the answers as encoded payloads. For
//! gateways and tools that load schemas at run time (`isml serve --http`)
//! and so have no generated client; generated clients use the typed calls
//! of [`Conn`].

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{Instant, Sleep};

use super::client::{MethodRef, Target, exchange_error};
use super::stream::{send_error, status_of};
use super::{CallError, Conn, MethodKind};
use crate::session::{Inflow, Session, credit_frame};
use crate::wire::batch::{BatchItems, item_cost};
use crate::wire::{EncodeError, Frame, FrameKind};

/// A method as a raw call needs it: names, wire id, kind, fingerprint and
/// the type ids of its request and response.
///
/// The names are `'static` because [`CallError`] carries them: build these
/// once per loaded schema (leaking the names is fine), not once per call.
#[derive(Debug, Clone)]
pub struct RawMethod {
    /// The service's full name, `package.Service`.
    pub service: &'static str,
    /// `package.Service/method`, for errors and logs.
    pub full_name: &'static str,
    /// The method id on the wire.
    pub id: u32,
    /// Streams or not.
    pub kind: MethodKind,
    /// The method's fingerprint (see
    /// [`method_fingerprint`](super::method_fingerprint)), compared with the
    /// one the peer announced.
    pub fingerprint: u64,
    /// The request's type id.
    pub request_type: u32,
    /// The response's type id; `None` for a one-way method.
    pub response_type: Option<u32>,
}

impl RawMethod {
    fn as_ref(&self) -> MethodRef {
        MethodRef {
            service: self.service,
            full_name: self.full_name,
            id: self.id,
            fingerprint: self.fingerprint,
            request_type: self.request_type,
        }
    }
}

/// The frame of a call with an encoded request: refused when the request's
/// type is defined differently on the peer, or too large to send.
fn call_frame(method: &RawMethod, t: &Target, request: Bytes) -> Result<Frame, CallError> {
    let name = method.full_name;
    if let Some((_, type_name)) = t
        .session
        .refused_types()
        .iter()
        .find(|(id, _)| *id == method.request_type)
    {
        return Err(CallError::Incompatible {
            method: name,
            reason: format!("message {type_name} is defined differently on the peer"),
        });
    }
    let config = t.session.config();
    let (len, max) = match config.fragment_size {
        Some(_) => (request.len(), config.max_message),
        None => (t.header.encoded_len() + request.len(), config.max_frame),
    };
    if len > max {
        return Err(CallError::Encode {
            method: name,
            message: "request",
            source: Box::new(EncodeError::FrameTooLarge { len, max }),
        });
    }
    Ok(Frame::new(t.header, request))
}

impl Conn {
    /// Calls a unary method with an encoded request; the answer is the
    /// encoded response. `timeout`: `None` for the session's request timeout.
    pub async fn unary_raw(
        &self,
        method: &RawMethod,
        request: Bytes,
        timeout: Option<Duration>,
    ) -> Result<Bytes, CallError> {
        let timeout = timeout.unwrap_or_else(|| self.default_timeout());
        let t = self.target_of(&method.as_ref(), Some(timeout)).await?;
        let name = method.full_name;
        let frame = call_frame(method, &t, request)?;
        let reply = t
            .session
            .exchange(frame, t.deadline)
            .await
            .map_err(|e| exchange_error(name, e, timeout))?;
        match reply.header.kind {
            FrameKind::Response if Some(reply.header.type_id) == method.response_type => {
                Ok(reply.payload)
            }
            FrameKind::Response => Err(CallError::Incompatible {
                method: name,
                reason: format!(
                    "the answer has type id {}, where type id {} was expected",
                    reply.header.type_id,
                    method.response_type.unwrap_or_default()
                ),
            }),
            _ => Err(status_of(name, &reply.payload)),
        }
    }

    /// Calls a one-way method with an encoded request: returns once the
    /// call is queued.
    pub async fn one_way_raw(&self, method: &RawMethod, request: Bytes) -> Result<(), CallError> {
        let t = self.target_of(&method.as_ref(), None).await?;
        let frame = call_frame(method, &t, request)?;
        t.session
            .enqueue(frame)
            .await
            .map_err(|e| send_error(method.full_name, e))
    }

    /// Calls a server-streaming method with an encoded request; the items
    /// come encoded through the returned [`RawStreaming`]. `timeout` bounds
    /// the whole stream (`None`: no deadline).
    pub async fn server_streaming_raw(
        &self,
        method: &RawMethod,
        request: Bytes,
        timeout: Option<Duration>,
    ) -> Result<RawStreaming, CallError> {
        let t = self.target_of(&method.as_ref(), timeout).await?;
        let frame = call_frame(method, &t, request)?;
        let correlation = t.header.correlation;
        let inflow = t.session.calls().open_inflow(correlation);
        let stream = RawStreaming {
            grant_at: u64::from(t.session.calls().window).div_ceil(2),
            taken: 0,
            frames: std::collections::VecDeque::new(),
            batch: None,
            session: t.session.clone(),
            correlation,
            inflow,
            method: method.full_name,
            item_type: method.response_type.unwrap_or_default(),
            done: false,
            timeout: t.deadline.map(|d| {
                let after = d.saturating_duration_since(Instant::now());
                (Box::pin(tokio::time::sleep_until(d)), after)
            }),
        };
        t.session
            .enqueue(frame)
            .await
            .map_err(|e| send_error(method.full_name, e))?;
        Ok(stream)
    }
}

/// The answers of a server-streaming call made with
/// [`Conn::server_streaming_raw`], as encoded items. Flow-controlled like
/// [`Streaming`](super::Streaming): the callee sends no more than the stream
/// window ahead of what was taken. Dropped before its end, it cancels the
/// call at the callee.
pub struct RawStreaming {
    session: Session,
    correlation: u64,
    inflow: Arc<Inflow>,
    method: &'static str,
    item_type: u32,
    /// Frames taken from the inflow, all at once, and not read yet.
    frames: std::collections::VecDeque<Frame>,
    /// The batch being read: its payload and where its next item starts.
    batch: Option<(Bytes, usize)>,
    /// Credit is granted once this many bytes of items have been taken.
    grant_at: u64,
    /// Bytes of items taken since the last grant.
    taken: u64,
    done: bool,
    timeout: Option<(std::pin::Pin<Box<Sleep>>, Duration)>,
}

impl std::fmt::Debug for RawStreaming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawStreaming")
            .field("method", &self.method)
            .field("correlation", &self.correlation)
            .field("done", &self.done)
            .finish()
    }
}

impl RawStreaming {
    /// The next encoded item; `None` once the stream has ended normally. An
    /// error ends the stream too: the callee's status, the deadline, or the
    /// session's end.
    pub async fn next(&mut self) -> Option<Result<Bytes, CallError>> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn finish(&mut self) {
        self.done = true;
        self.session.calls().close_inflow(self.correlation);
    }

    /// An item of `len` bytes was taken: grant credit for what was taken
    /// once it reaches half the window (as typed streams do).
    fn took(&mut self, len: usize) {
        self.taken += item_cost(len);
        if self.taken >= self.grant_at && !self.inflow.is_ended() {
            let bytes = std::mem::take(&mut self.taken);
            self.inflow.grant(bytes);
            self.session
                .push_frame(credit_frame(self.correlation, bytes));
        }
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, CallError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let frame = loop {
            if let Some((payload, pos)) = self.batch.as_mut() {
                let mut items = BatchItems::resume(payload, *pos);
                match items.next() {
                    Some(Ok(range)) => {
                        *pos = items.position();
                        let len = range.len();
                        let item = payload.slice(range);
                        self.took(len);
                        return Poll::Ready(Some(Ok(item)));
                    }
                    Some(Err(source)) => {
                        self.batch = None;
                        self.finish();
                        return Poll::Ready(Some(Err(CallError::Decode {
                            method: self.method,
                            message: "a batch of stream items",
                            source: Box::new(source),
                        })));
                    }
                    None => self.batch = None,
                }
                continue;
            }
            if let Some(frame) = self.frames.pop_front() {
                if frame.header.kind == FrameKind::StreamItem
                    && frame.header.batch
                    && frame.header.type_id == self.item_type
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
                    let reason = self.session.close_reason().map_or_else(
                        || "the stream ended without a stream end".to_owned(),
                        |r| r.to_string(),
                    );
                    return Poll::Ready(Some(Err(CallError::Closed {
                        method: self.method,
                        reason,
                    })));
                }
                Poll::Pending => {
                    if let Some((sleep, after)) = &mut self.timeout
                        && sleep.as_mut().poll(cx).is_ready()
                    {
                        let after = *after;
                        self.finish();
                        self.session.push_cancel(self.correlation);
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
            FrameKind::StreamItem if h.type_id == self.item_type => {
                self.took(frame.payload.len());
                Some(Ok(frame.payload))
            }
            FrameKind::StreamItem => {
                self.finish();
                self.session.push_cancel(self.correlation);
                Some(Err(CallError::Incompatible {
                    method: self.method,
                    reason: format!(
                        "a stream item of type id {}, where type id {} was expected",
                        h.type_id, self.item_type
                    ),
                }))
            }
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

impl Drop for RawStreaming {
    fn drop(&mut self) {
        if !self.done {
            self.session.calls().close_inflow(self.correlation);
            self.session.push_cancel(self.correlation);
        }
    }
}
