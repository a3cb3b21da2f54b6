//! The caller's side: [`Conn`], what generated clients call through.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::stream::{Side, send_error, status_of};
use super::{CallError, MethodDescriptor, ServiceDescriptor, Sink, Streaming, inherited_deadline};
use crate::TopLevel;
use crate::client::Client;
use crate::session::{Exchange, Pending, Session};
use crate::wire::{CallHeader, Frame, FrameHeader, FrameKind};

use super::once::{at_most_once, one_way_once, unary_once};

/// What a generated client calls through: one session, or a reconnecting
/// [`Client`], whose current session each call uses.
#[derive(Debug, Clone)]
pub enum Conn {
    /// One session.
    Session(Session),
    /// A client; calls wait (within their deadline) for it to reconnect.
    Client(Client),
    /// A device connected to another node of the server's cluster (see
    /// [`Server::device`](crate::Server::device)): unary and one-way calls
    /// only.
    Remote(crate::cluster::RemoteDevice),
}

impl From<Session> for Conn {
    fn from(s: Session) -> Conn {
        Conn::Session(s)
    }
}

impl From<&Session> for Conn {
    fn from(s: &Session) -> Conn {
        Conn::Session(s.clone())
    }
}

impl From<Client> for Conn {
    fn from(c: Client) -> Conn {
        Conn::Client(c)
    }
}

impl From<&Client> for Conn {
    fn from(c: &Client) -> Conn {
        Conn::Client(c.clone())
    }
}

/// A call in flight and where it goes.
pub(super) struct Target {
    pub(super) session: Session,
    pub(super) header: FrameHeader,
    pub(super) deadline: Option<Instant>,
}

/// What a call needs to know of its method, typed or not.
pub(super) struct MethodRef {
    pub(super) service: &'static str,
    pub(super) full_name: &'static str,
    pub(super) id: u32,
    pub(super) fingerprint: u64,
    pub(super) request_type: u32,
}

/// A client-streaming call in progress: send items with
/// [`ClientStreaming::send`], then [`ClientStreaming::finish`] for the
/// answer. Dropped before it finished, it cancels the call.
pub struct ClientStreaming<Q, R> {
    sink: Sink<Q>,
    pending: Pending,
    method: &'static str,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
    _reply: std::marker::PhantomData<fn() -> R>,
}

impl<Q, R> std::fmt::Debug for ClientStreaming<Q, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStreaming")
            .field("method", &self.method)
            .field("deadline", &self.deadline)
            .finish()
    }
}

impl<Q: TopLevel, R: TopLevel> ClientStreaming<Q, R> {
    /// Sends one item (waiting for credit); fails once the callee has
    /// answered or the call ended.
    pub async fn send(&self, item: impl std::borrow::Borrow<Q>) -> Result<(), CallError> {
        self.sink.send(item).await
    }

    /// Ends the stream and waits for the answer.
    pub async fn finish(mut self) -> Result<R, CallError> {
        let method = self.method;
        // An answer that came first (the callee refused early) wins over
        // a failure to end a stream it no longer reads.
        let ended = self.sink.end().await;
        let reply = wait(&mut self.pending, method, self.deadline, self.timeout).await?;
        ended?;
        decode_reply(method, reply)
    }
}

impl Conn {
    /// The session to call on: the session, or the client's current one
    /// (waiting for a reconnect until the deadline).
    async fn session(
        &self,
        method: &'static str,
        deadline: Option<Instant>,
    ) -> Result<Session, CallError> {
        let closed = |reason: String| CallError::Closed { method, reason };
        match self {
            Conn::Session(s) if s.is_closed() => Err(closed(
                s.close_reason()
                    .map_or_else(|| "session closed".to_owned(), |r| r.to_string()),
            )),
            Conn::Session(s) => Ok(s.clone()),
            Conn::Client(c) => {
                if let Some(s) = c.session() {
                    return Ok(s);
                }
                let wait = c.wait_session();
                let r = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, wait).await {
                        Ok(r) => r,
                        Err(_) => {
                            return Err(closed(
                                "not connected (no session before the deadline)".to_owned(),
                            ));
                        }
                    },
                    None => wait.await,
                };
                r.map_err(|e| closed(format!("not connected: {e}")))
            }
            Conn::Remote(r) => Err(CallError::Unimplemented {
                method,
                detail: format!(
                    " (streaming calls do not cross cluster nodes; device {} is on node {})",
                    r.device_id(),
                    r.node()
                ),
            }),
        }
    }

    /// The default time a call may take: the session's request timeout.
    pub(super) fn default_timeout(&self) -> Duration {
        match self {
            Conn::Session(s) => s.config().request_timeout,
            Conn::Client(c) => c
                .session()
                .map_or(Duration::from_secs(10), |s| s.config().request_timeout),
            Conn::Remote(r) => r.default_timeout(),
        }
    }

    /// Resolves the method on the current session and builds the call
    /// header; fails without a round trip when the peer lacks the method or
    /// defines it differently.
    async fn target(
        &self,
        service: &'static ServiceDescriptor,
        method: &'static MethodDescriptor,
        timeout: Option<Duration>,
    ) -> Result<Target, CallError> {
        self.target_of(&method_ref(service, method), timeout).await
    }

    /// [`Conn::target`] for a method known by its parts (typed or raw).
    pub(super) async fn target_of(
        &self,
        method: &MethodRef,
        timeout: Option<Duration>,
    ) -> Result<Target, CallError> {
        let (now, deadline) = deadline_of(timeout);
        let session = self.session(method.full_name, deadline).await?;
        // The time waited for a session (a reconnecting client) counts.
        let now = if matches!(self, Conn::Client(_)) {
            Instant::now()
        } else {
            now
        };
        address(session, method, deadline, now, timeout)
    }
}

/// When a call made now with `timeout` must end: its own timeout or the
/// deadline of the call being served, whichever comes first.
pub(super) fn deadline_of(timeout: Option<Duration>) -> (Instant, Option<Instant>) {
    let now = Instant::now();
    let own = timeout.map(|t| now + t);
    let deadline = match (own, inherited_deadline()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    (now, deadline)
}

pub(super) fn method_ref(
    service: &'static ServiceDescriptor,
    method: &'static MethodDescriptor,
) -> MethodRef {
    MethodRef {
        service: service.name,
        full_name: method.full_name,
        id: method.id,
        fingerprint: method.fingerprint(),
        request_type: method.request.type_id,
    }
}

/// Resolves `method` on `session` and builds the call header (the deadline
/// counted from `now`); fails without a round trip when the peer lacks the
/// method or defines it differently.
pub(super) fn address(
    session: Session,
    method: &MethodRef,
    deadline: Option<Instant>,
    now: Instant,
    timeout: Option<Duration>,
) -> Result<Target, CallError> {
    let name = method.full_name;
    let Some((index, peer)) = session.calls().peer_service(method.service) else {
        return Err(CallError::Unimplemented {
            method: name,
            detail: format!(" (service {} is not served by the peer)", method.service),
        });
    };
    match peer.method(method.id) {
        None => {
            return Err(CallError::Unimplemented {
                method: name,
                detail: format!(
                    " (service {} has no method id {})",
                    method.service, method.id
                ),
            });
        }
        Some(fp) if fp != method.fingerprint => {
            return Err(CallError::Incompatible {
                method: name,
                reason: format!(
                    "its request, response or streaming kind differs on the peer (method fingerprint {fp:016x}, ours {:016x})",
                    method.fingerprint
                ),
            });
        }
        Some(_) => {}
    }
    let deadline_ms = match deadline {
        None => 0,
        Some(d) => {
            let left = d.saturating_duration_since(now);
            if left.is_zero() {
                return Err(CallError::Timeout {
                    method: name,
                    after: timeout.unwrap_or_default(),
                });
            }
            // Rounded up: a deadline of 0 would mean none.
            (left.as_micros().div_ceil(1000)).clamp(1, u128::from(u64::MAX)) as u64
        }
    };
    let call = CallHeader {
        service: index,
        method: method.id,
        deadline_ms,
    };
    let correlation = session.next_correlation();
    Ok(Target {
        header: FrameHeader::call(method.request_type, correlation, call),
        session,
        deadline,
    })
}

impl Conn {
    /// Calls a unary method: one request, one answer. `timeout`: `None`
    /// for the session's request timeout.
    ///
    /// A [`once`](MethodDescriptor::once) method goes through the session's
    /// reliable state when it has one (a client built with
    /// `resume(true)`): the call survives reconnections that resume the
    /// session and runs once; it is answered on whichever session is
    /// current then. Without a reliable state it is sent at most once, as
    /// any other call (`docs/rpc.md`, "Exactly-once calls").
    pub async fn unary<Q: TopLevel, R: TopLevel>(
        &self,
        service: &'static ServiceDescriptor,
        method: &'static MethodDescriptor,
        request: &Q,
        timeout: Option<Duration>,
    ) -> Result<R, CallError> {
        let timeout = timeout.unwrap_or_else(|| self.default_timeout());
        if let Conn::Remote(r) = self {
            // Across the cluster hop a call is sent at most once, `[once]`
            // or not (docs/cluster.md, "Guarantees").
            return match r
                .call(service, method, request, Some(timeout), true)
                .await?
            {
                Some(reply) => decode_reply(method.full_name, reply),
                None => Err(CallError::Closed {
                    method: method.full_name,
                    reason: "the device's node sent no answer".into(),
                }),
            };
        }
        if method.once && method.kind == super::MethodKind::Unary {
            match self.once_session() {
                Some(session) => {
                    return unary_once(session, service, method, request, timeout).await;
                }
                None => at_most_once(method),
            }
        }
        let t = self.target(service, method, Some(timeout)).await?;
        let name = method.full_name;
        let frame = t
            .session
            .encode(t.header, request)
            .map_err(|e| send_error(name, e))?;
        let reply = match t.session.exchange(frame, t.deadline).await {
            Ok(reply) => reply,
            Err(e) => return Err(exchange_error(name, e, timeout)),
        };
        decode_reply(name, reply)
    }

    /// Calls a one-way method: returns once the call is queued.
    ///
    /// A [`once`](MethodDescriptor::once) method is queued in the session's
    /// reliable state when it has one: it is sent again after a
    /// reconnection that resumed the session until the callee
    /// acknowledged it, and runs once. Without a reliable state it is sent
    /// at most once.
    pub async fn one_way<Q: TopLevel>(
        &self,
        service: &'static ServiceDescriptor,
        method: &'static MethodDescriptor,
        request: &Q,
    ) -> Result<(), CallError> {
        if let Conn::Remote(r) = self {
            let timeout = Some(r.default_timeout());
            return r
                .call(service, method, request, timeout, false)
                .await
                .map(drop);
        }
        let name = method.full_name;
        if method.once && method.kind == super::MethodKind::OneWay {
            match self.once_session() {
                Some(session) => return one_way_once(session, service, method, request).await,
                None => at_most_once(method),
            }
        }
        let t = self.target(service, method, None).await?;
        let frame = t
            .session
            .encode(t.header, request)
            .map_err(|e| send_error(name, e))?;
        t.session
            .enqueue(frame)
            .await
            .map_err(|e| send_error(name, e))
    }

    /// Calls a server-streaming method: the items come through the
    /// returned [`Streaming`]. `timeout` bounds the whole stream (`None`:
    /// no deadline, for streams that watch).
    pub async fn server_streaming<Q: TopLevel, R: TopLevel>(
        &self,
        service: &'static ServiceDescriptor,
        method: &'static MethodDescriptor,
        request: &Q,
        timeout: Option<Duration>,
    ) -> Result<Streaming<R>, CallError> {
        let t = self.target(service, method, timeout).await?;
        let name = method.full_name;
        let frame = t
            .session
            .encode(t.header, request)
            .map_err(|e| send_error(name, e))?;
        let correlation = t.header.correlation;
        let inflow = t.session.calls().open_inflow(correlation);
        let stream = Streaming::new(
            t.session.clone(),
            correlation,
            inflow,
            name,
            Side::Caller,
            t.deadline,
        );
        t.session
            .enqueue(frame)
            .await
            .map_err(|e| send_error(name, e))?;
        Ok(stream)
    }

    /// Calls a client-streaming method: send the items through the
    /// returned [`ClientStreaming`], then finish it for the answer.
    pub async fn client_streaming<Q: TopLevel, R: TopLevel>(
        &self,
        service: &'static ServiceDescriptor,
        method: &'static MethodDescriptor,
        timeout: Option<Duration>,
    ) -> Result<ClientStreaming<Q, R>, CallError> {
        let t = self.target(service, method, timeout).await?;
        let name = method.full_name;
        let correlation = t.header.correlation;
        let pending = t.session.pend(correlation);
        let outflow = t.session.calls().open_outflow(correlation);
        let sink = Sink::new(t.session.clone(), correlation, outflow, name, Side::Caller);
        t.session
            .enqueue(Frame::new(t.header, Bytes::new()))
            .await
            .map_err(|e| send_error(name, e))?;
        Ok(ClientStreaming {
            sink,
            pending,
            method: name,
            deadline: t.deadline,
            timeout,
            _reply: std::marker::PhantomData,
        })
    }

    /// Calls a bidirectional method: items go out through the [`Sink`] and
    /// come back through the [`Streaming`].
    pub async fn bidirectional<Q: TopLevel, R: TopLevel>(
        &self,
        service: &'static ServiceDescriptor,
        method: &'static MethodDescriptor,
        timeout: Option<Duration>,
    ) -> Result<(Sink<Q>, Streaming<R>), CallError> {
        let t = self.target(service, method, timeout).await?;
        let name = method.full_name;
        let correlation = t.header.correlation;
        let calls = t.session.calls();
        let inflow = calls.open_inflow(correlation);
        let outflow = calls.open_outflow(correlation);
        let stream = Streaming::new(
            t.session.clone(),
            correlation,
            inflow,
            name,
            Side::Caller,
            t.deadline,
        );
        let sink = Sink::new(t.session.clone(), correlation, outflow, name, Side::Caller);
        t.session
            .enqueue(Frame::new(t.header, Bytes::new()))
            .await
            .map_err(|e| send_error(name, e))?;
        Ok((sink, stream))
    }
}

pub(super) fn exchange_error(method: &'static str, e: Exchange, after: Duration) -> CallError {
    match e {
        Exchange::Send(e) => send_error(method, e),
        Exchange::Disconnected(reason) => CallError::Closed {
            method,
            reason: reason.to_string(),
        },
        Exchange::Timeout => CallError::Timeout { method, after },
    }
}

async fn wait(
    pending: &mut Pending,
    method: &'static str,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
) -> Result<Frame, CallError> {
    pending
        .wait(deadline)
        .await
        .map_err(|e| exchange_error(method, e, timeout.unwrap_or_default()))
}

pub(super) fn decode_reply<R: TopLevel>(
    method: &'static str,
    reply: Frame,
) -> Result<R, CallError> {
    match reply.header.kind {
        FrameKind::Response if reply.header.type_id == R::TYPE_ID => R::decode(reply.payload)
            .map_err(|source| CallError::Decode {
                method,
                message: R::NAME,
                source: Box::new(source),
            }),
        FrameKind::Response => Err(CallError::Incompatible {
            method,
            reason: format!(
                "the answer has type id {}, where {} (type id {}) was expected",
                reply.header.type_id,
                R::NAME,
                R::TYPE_ID
            ),
        }),
        _ => Err(status_of(method, &reply.payload)),
    }
}
