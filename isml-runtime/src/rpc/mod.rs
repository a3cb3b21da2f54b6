//! RPC services: what the code generated from `service` declarations runs
//! on (wire format §2.7, `docs/rpc.md`).
//!
//! For `service Charger { rpc start_charging(StartCharging) -> ChargeStarted = 1; }`
//! the compiler generates a trait `Charger` that implementations write with
//! plain `async fn`s, a `ChargerServer<T>` that a [`Dispatcher`] serves
//! (`Dispatcher::new().service(ChargerServer::new(imp))`), and a
//! `ChargerClient` whose methods call the peer. Either side of a connection
//! may serve and call: a device serves methods the server calls.
//!
//! - Every call names its method by (service, method id), and carries its
//!   deadline. The services each side serves are announced in the handshake
//!   with a fingerprint per method over its request and response types and
//!   its streaming kind: a call of a method the peer lacks, or defines
//!   differently, fails at once with [`CallError::Unimplemented`] or
//!   [`CallError::Incompatible`], without a round trip.
//! - A caller that drops its future, or whose deadline passes, cancels the
//!   call: the callee drops the handler's future, and [`Call::cancelled`]
//!   resolves for whatever the handler spawned. A handler that calls another
//!   method passes on the time it has left.
//! - Streams in either direction are flow-controlled per stream: a sender
//!   waits for credit, so a slow consumer never makes either side buffer more
//!   than its stream window.
//!
//! [`Dispatcher`]: crate::dispatch::Dispatcher

use std::future::Future;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::TopLevel;
use crate::descriptor::MessageDescriptor;
use crate::session::Session;

mod client;
mod once;
mod raw;
mod reflect;
pub(crate) mod server;
mod status;
mod stream;

pub use client::{ClientStreaming, Conn};
pub use raw::{RawMethod, RawStreaming};
pub use reflect::{DESCRIBE, Description, describe, export_schema_with, schema_text};
pub use server::{CANCEL_GRACE, Reply, Request};
pub use status::{CallError, Code, Status};
pub use stream::{Sink, Streaming};

tokio::task_local! {
    /// The deadline of the call a handler serves, for the calls it makes.
    static DEADLINE: Option<Instant>;
}

/// The deadline of the call being served by the current task, if any: a
/// call made from a handler gets no more time than its caller left it.
pub fn inherited_deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok().flatten()
}

/// Runs `f` (one poll of a handler) with `deadline` as the deadline calls
/// made from it inherit.
pub(crate) fn in_deadline<R>(deadline: Option<Instant>, f: impl FnOnce() -> R) -> R {
    DEADLINE.sync_scope(deadline, f)
}

/// Runs `fut` with `deadline` as the deadline calls made from it inherit.
pub(crate) fn with_deadline<F: Future>(
    deadline: Option<Instant>,
    fut: F,
) -> impl Future<Output = F::Output> {
    DEADLINE.scope(deadline, fut)
}

/// What a method takes and gives: one message, or a stream of them.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    /// `rpc m(A)`: no answer.
    OneWay,
    /// `rpc m(A) -> B`.
    Unary,
    /// `rpc m(A) -> stream B`.
    ServerStreaming,
    /// `rpc m(stream A) -> B`.
    ClientStreaming,
    /// `rpc m(stream A) -> stream B`.
    Bidirectional,
}

impl MethodKind {
    /// Whether the caller sends a stream.
    pub const fn client_streaming(self) -> bool {
        matches!(
            self,
            MethodKind::ClientStreaming | MethodKind::Bidirectional
        )
    }

    /// Whether the callee answers with a stream.
    pub const fn server_streaming(self) -> bool {
        matches!(
            self,
            MethodKind::ServerStreaming | MethodKind::Bidirectional
        )
    }
}

/// A message type as a method's request or response: what the runtime
/// needs of it without knowing the Rust type.
#[derive(Debug, Clone, Copy)]
pub struct MessageRef {
    /// The type id.
    pub type_id: u32,
    /// The full name.
    pub name: &'static str,
    /// Its fingerprint (wire format §8).
    pub fingerprint: fn() -> u64,
    /// Its reflection data.
    pub descriptor: fn() -> &'static MessageDescriptor,
}

impl MessageRef {
    /// The reference of a message or union type.
    pub const fn of<T: TopLevel>() -> MessageRef {
        MessageRef {
            type_id: T::TYPE_ID,
            name: T::NAME,
            fingerprint: T::fingerprint,
            descriptor: T::descriptor,
        }
    }
}

/// Reflection data of one method of a service.
#[derive(Debug)]
pub struct MethodDescriptor {
    /// The method's name, as declared.
    pub name: &'static str,
    /// `package.Service/method`, for errors and logs.
    pub full_name: &'static str,
    /// Its id on the wire.
    pub id: u32,
    /// Streams or not.
    pub kind: MethodKind,
    /// The request type (of each item, for a request stream).
    pub request: MessageRef,
    /// The response type (of each item, for a response stream); `None` for
    /// a one-way method.
    pub response: Option<MessageRef>,
    /// `[once]` in the schema (`#[rpc(once)]` on a derived service): a
    /// unary or one-way method whose calls go through the session's
    /// reliable state, so that a call runs once across reconnects
    /// (`docs/rpc.md`, "Exactly once"). Not part of the fingerprint.
    pub once: bool,
    fingerprint: OnceLock<u64>,
}

impl MethodDescriptor {
    /// A method's reflection data (generated code builds these in statics).
    pub const fn new(
        name: &'static str,
        full_name: &'static str,
        id: u32,
        kind: MethodKind,
        request: MessageRef,
        response: Option<MessageRef>,
    ) -> Self {
        MethodDescriptor {
            name,
            full_name,
            id,
            kind,
            request,
            response,
            once: false,
            fingerprint: OnceLock::new(),
        }
    }

    /// The descriptor with [`MethodDescriptor::once`] set to `once`
    /// (generated code builds `[once]` methods with it). Streaming methods
    /// cannot be `once`: the schema checker refuses them, and the runtime
    /// sends their calls as usual.
    pub const fn with_once(mut self, once: bool) -> Self {
        self.once = once;
        self
    }

    /// The method's fingerprint (wire format §8): over the request's and
    /// response's fingerprints and the streaming kind, exchanged in the
    /// handshake so that a call of a method defined differently fails at once.
    pub fn fingerprint(&self) -> u64 {
        *self.fingerprint.get_or_init(|| {
            method_fingerprint(
                (self.request.fingerprint)(),
                self.response.map(|r| (r.fingerprint)()),
                self.kind.client_streaming(),
                self.kind.server_streaming(),
            )
        })
    }
}

/// Reflection data of a service.
#[derive(Debug)]
pub struct ServiceDescriptor {
    /// The full name, `package.Service`.
    pub name: &'static str,
    /// The methods, sorted by id.
    pub methods: &'static [MethodDescriptor],
}

impl ServiceDescriptor {
    /// The method with wire id `id`.
    pub fn method(&self, id: u32) -> Option<&'static MethodDescriptor> {
        let methods: &'static [MethodDescriptor] = self.methods;
        methods.iter().find(|m| m.id == id)
    }

    /// The method named `name`.
    pub fn method_by_name(&self, name: &str) -> Option<&'static MethodDescriptor> {
        let methods: &'static [MethodDescriptor] = self.methods;
        methods.iter().find(|m| m.name == name)
    }
}

/// A service a [`Dispatcher`](crate::dispatch::Dispatcher) serves: the
/// generated `…Server<T>` types implement it.
pub trait Service: Send + Sync + 'static {
    /// What the service is.
    fn descriptor(&self) -> &'static ServiceDescriptor;

    /// Serves one call of `method`: decodes the request from `request`,
    /// runs the implementation, and gives the reply. Generated code writes
    /// this; the runtime writes the reply, stream end or error, and stops
    /// the future when the call is cancelled or its deadline passes.
    fn call(
        &self,
        method: &'static MethodDescriptor,
        call: Call,
        request: Request,
    ) -> futures_util::future::BoxFuture<'static, Result<Reply, Status>>;
}

/// The call a handler serves: who calls, until when, and whether the caller
/// still waits.
#[derive(Clone)]
pub struct Call {
    inner: Arc<CallInner>,
}

struct CallInner {
    session: Session,
    correlation: u64,
    deadline: Option<Instant>,
    cancel: CancellationToken,
    method: &'static str,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("method", &self.inner.method)
            .field("device_id", &self.inner.session.device_id())
            .field("correlation", &self.inner.correlation)
            .field("deadline", &self.inner.deadline)
            .finish()
    }
}

impl Call {
    pub(crate) fn new(
        session: Session,
        correlation: u64,
        deadline: Option<Instant>,
        cancel: CancellationToken,
        method: &'static str,
    ) -> Call {
        Call {
            inner: Arc::new(CallInner {
                session,
                correlation,
                deadline,
                cancel,
                method,
            }),
        }
    }

    /// The session the call came on (device id, properties, statistics).
    pub fn session(&self) -> &Session {
        &self.inner.session
    }

    /// The caller's device id.
    pub fn device_id(&self) -> &str {
        self.inner.session.device_id()
    }

    /// When the caller stops waiting, if it set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.inner.deadline
    }

    /// The time left before the deadline (zero once it passed).
    pub fn remaining(&self) -> Option<Duration> {
        self.inner
            .deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Resolves when the caller cancelled the call, its deadline passed or
    /// the session ended. The handler's own future is dropped then; this is
    /// for tasks it spawned and clean-ups that must run. A call of a
    /// `[once]` method that came through the reliable state is not
    /// cancelled by the end of the session: it runs on, and its answer goes
    /// to the session that resumes this one ([`Call::session`] stays the
    /// one it came on).
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.cancel.clone().cancelled_owned()
    }

    /// Whether the call was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// The method, as `package.Service/method`.
    pub fn method(&self) -> &'static str {
        self.inner.method
    }

    /// The call's correlation id on the session.
    pub fn correlation(&self) -> u64 {
        self.inner.correlation
    }
}

/// The fingerprint of a method (wire format §8, "Method fingerprints").
pub fn method_fingerprint(
    request: u64,
    response: Option<u64>,
    client_streaming: bool,
    server_streaming: bool,
) -> u64 {
    crate::wire::canonical::method_fingerprint(
        request,
        response,
        client_streaming,
        server_streaming,
    )
}
