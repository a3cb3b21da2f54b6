//! The callee's side: a received call frame becomes a running handler,
//! stopped by a cancel or its deadline, whose outcome the session writes.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::stream::Side;
use super::{
    Call, MethodDescriptor, MethodKind, Service, Sink, Status, Streaming, in_deadline,
    with_deadline,
};
use crate::TopLevel;
use crate::session::{Inflow, Outflow, Session, Started, codes, error_frame};
use crate::wire::{ErrorBody, Frame, FrameHeader};

/// What generated code gets of a received call: the request's payload, or
/// the streams of a streaming method.
pub struct Request {
    payload: Bytes,
    inflow: Option<Arc<Inflow>>,
    outflow: Option<Arc<Outflow>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("payload", &self.payload.len())
            .finish()
    }
}

impl Request {
    /// The request message; a payload that cannot be decoded is the
    /// caller's error ([`Code::InvalidArgument`](super::Code::InvalidArgument)).
    pub fn message<T: TopLevel>(&self) -> Result<T, Status> {
        T::decode(self.payload.clone())
            .map_err(|e| Status::invalid_argument(format!("malformed request {}: {e}", T::NAME)))
    }

    /// The caller's stream of requests (client-streaming and bidirectional
    /// methods).
    pub fn stream<T: TopLevel>(&mut self, call: &Call) -> Result<Streaming<T>, Status> {
        let inflow = self
            .inflow
            .take()
            .ok_or_else(|| Status::internal(format!("{}: no request stream", call.method())))?;
        Ok(Streaming::new(
            call.session().clone(),
            call.correlation(),
            inflow,
            call.method(),
            Side::Callee,
            None,
        ))
    }

    /// The stream of answers (server-streaming and bidirectional methods).
    pub fn sink<T: TopLevel>(&mut self, call: &Call) -> Result<Sink<T>, Status> {
        let outflow = self
            .outflow
            .take()
            .ok_or_else(|| Status::internal(format!("{}: no response stream", call.method())))?;
        Ok(Sink::new(
            call.session().clone(),
            call.correlation(),
            outflow,
            call.method(),
            Side::Callee,
        ))
    }
}

/// What a served call gives back.
#[derive(Debug)]
pub enum Reply {
    /// The answer of a unary or client-streaming method: its type id and
    /// encoded payload.
    Message(u32, Bytes),
    /// Nothing more: a one-way method, or a response stream that ends.
    End,
}

impl Reply {
    /// The answer `msg`.
    pub fn message<T: TopLevel>(msg: &T) -> Result<Reply, Status> {
        let payload = msg
            .encode_to_bytes()
            .map_err(|e| Status::internal(format!("cannot encode the answer {}: {e}", T::NAME)))?;
        Ok(Reply::Message(T::TYPE_ID, payload))
    }
}

fn stream_end(correlation: u64, status: Option<&Status>) -> Frame {
    let payload = match status {
        None => Bytes::new(),
        Some(s) => {
            let body = ErrorBody {
                code: s.code().wire(),
                message: s.message(),
            };
            let mut buf = BytesMut::with_capacity(body.encoded_len());
            body.encode(&mut buf);
            buf.freeze()
        }
    };
    Frame::new(FrameHeader::stream_end(correlation), payload)
}

/// The last frame of a call from its outcome.
fn outcome(
    session: &Session,
    kind: MethodKind,
    correlation: u64,
    result: Result<Reply, Status>,
) -> Option<Frame> {
    if result.is_err() {
        session.count_error();
    }
    match (kind.server_streaming(), result) {
        (true, Ok(_)) => Some(stream_end(correlation, None)),
        (true, Err(s)) => Some(stream_end(correlation, Some(&s))),
        (false, Ok(Reply::Message(type_id, payload))) => Some(Frame::new(
            FrameHeader::response(type_id, correlation),
            payload,
        )),
        (false, Ok(Reply::End)) => None,
        (false, Err(s)) => Some(error_frame(correlation, s.code().wire(), s.message())),
    }
}

/// How long a streaming handler may run on after its caller cancelled,
/// to notice (its `send` fails) and clean up, before it is dropped.
pub const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// Starts serving a received call frame. `inline`: whether the handler may
/// run its first steps right here (there is room for one more handler).
pub(crate) fn start(
    session: &Session,
    services: &[Arc<dyn Service>],
    frame: Frame,
    inline: bool,
) -> Started {
    let h = frame.header;
    let correlation = h.correlation;
    let Some(addr) = h.call else {
        return Started::Done(None);
    };
    let fail = |code, msg: String| Started::Done(Some(error_frame(correlation, code, &msg)));
    if session.is_own(correlation) {
        return fail(
            codes::MALFORMED,
            format!(
                "call with correlation id {correlation}, of the callee's parity (wire format §2.7)"
            ),
        );
    }
    // A second call under the id of one still running would take over its
    // streams and its cancellation: the first handler would wait for ever.
    if session.calls().is_serving(correlation) {
        return fail(
            codes::ALREADY_EXISTS,
            format!("call with correlation id {correlation}, of a call still in progress"),
        );
    }
    if addr.service == 0 {
        return super::reflect::answer(session, services, correlation, addr.method);
    }
    let Some(service) = services.get(addr.service as usize - 1) else {
        return fail(
            codes::UNIMPLEMENTED,
            format!(
                "no service #{} (this side serves {})",
                addr.service,
                services.len()
            ),
        );
    };
    let desc = service.descriptor();
    let Some(method) = desc.method(addr.method) else {
        return fail(
            codes::UNIMPLEMENTED,
            format!("service {} has no method id {}", desc.name, addr.method),
        );
    };
    let kind = method.kind;
    if h.type_id != method.request.type_id {
        return fail(
            codes::FINGERPRINT_MISMATCH,
            format!(
                "{}: request of type id {}, where {} (type id {}) is expected",
                method.full_name, h.type_id, method.request.name, method.request.type_id
            ),
        );
    }
    let deadline =
        (addr.deadline_ms > 0).then(|| Instant::now() + Duration::from_millis(addr.deadline_ms));
    let calls = session.calls();
    let inflow = kind
        .client_streaming()
        .then(|| calls.open_inflow(correlation));
    let outflow = kind
        .server_streaming()
        .then(|| calls.open_outflow(correlation));
    let cancel = CancellationToken::new();
    let call = Call::new(
        session.clone(),
        correlation,
        deadline,
        cancel.clone(),
        method.full_name,
    );
    let len = frame.payload.len();
    let request = Request {
        payload: frame.payload,
        inflow,
        outflow: outflow.clone(),
    };
    let mut fut = service.call(method, call, request);
    let streams = kind.client_streaming() || kind.server_streaming();
    // Most handlers finish on their first poll: that poll runs here, in the
    // deadline's scope, and only a handler that runs on is wrapped (and
    // boxed again) to keep the scope for its later polls.
    if inline
        && !streams
        && let Some(result) = in_deadline(deadline, || (&mut fut).now_or_never())
    {
        return Started::Done(outcome(session, kind, correlation, result));
    }
    let fut = with_deadline(deadline, fut).boxed();
    // A unary or one-way call that came through the reliable state (a
    // `[once]` method, `docs/rpc.md`) is counted as received: the caller
    // will not send it again. So it runs to its end even when the
    // connection breaks meanwhile, and its answer goes through the reliable
    // state to the session that resumes this one. A cancel from the caller
    // still stops it, and so does its deadline.
    let lasting = h.seq.is_some() && session.link().is_some() && !streams;
    calls.serve(correlation, cancel.clone(), outflow, lasting);
    let session = session.clone();
    Started::Running {
        correlation,
        len,
        streams,
        fut: Box::pin(run(session, method, correlation, deadline, cancel, fut)),
    }
}

async fn run(
    session: Session,
    method: &'static MethodDescriptor,
    correlation: u64,
    deadline: Option<Instant>,
    cancel: CancellationToken,
    fut: futures_util::future::BoxFuture<'static, Result<Reply, Status>>,
) -> Option<Frame> {
    let expired = async {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(fut);
    let result = tokio::select! {
        biased;
        // The caller cancelled (or the session ended, for a call that did
        // not come through the reliable state): nothing more is sent.
        () = cancel.cancelled() => {
            if method.kind.server_streaming() {
                // A streaming handler learns of it from its failing `send`
                // (or `Call::cancelled`) and returns; one that does not is
                // dropped after a grace period.
                let _ = tokio::time::timeout(CANCEL_GRACE, &mut fut).await;
            }
            None
        }
        () = expired => {
            cancel.cancel();
            Some(Err(Status::deadline_exceeded(format!(
                "{}: the caller's deadline passed",
                method.full_name
            ))))
        }
        r = &mut fut => Some(r),
    };
    // The handler's future (and with it its streams) is gone: forget the call.
    let calls = session.calls();
    calls.served(correlation);
    calls.close_inflow(correlation);
    calls.close_outflow(correlation);
    outcome(&session, method.kind, correlation, result?)
}
