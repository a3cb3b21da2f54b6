//! Typed async handlers, registered per message type.
//!
//! Every handler is first polled in the session's connection task; most
//! finish there and then. One-way messages are handled in the order they
//! arrive, one after the other (a slow handler slows that session down:
//! backpressure, not a queue). A request handler that does not finish at once
//! continues in a task of its own, concurrently with others, up to
//! [`SessionConfig::max_inflight`](crate::session::SessionConfig::max_inflight)
//! per session; a handler error becomes an error response with its code.
//!
//! ```
//! # #[cfg(feature = "derive")] {
//! use isml_runtime::dispatch::{Dispatcher, HandlerError};
//! # #[derive(isml_runtime::Message, Clone, Debug, Default, PartialEq)]
//! # #[isml(id = 5)]
//! # struct Ping { #[isml(tag = 1)] n: u32 }
//! let dispatcher = Dispatcher::new()
//!     .on::<Ping, _, _>(|ctx, ping| async move {
//!         println!("{} sent {}", ctx.session().device_id(), ping.n);
//!         Ok(())
//!     })
//!     .on_request::<Ping, Ping, _, _>(|_ctx, ping| async move {
//!         if ping.n == 0 {
//!             return Err(HandlerError::new(1000, "zero is not allowed"));
//!         }
//!         Ok(Ping { n: ping.n + 1 })
//!     });
//! assert!(dispatcher.handles(5));
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;

use crate::TopLevel;
use crate::rpc::{Service, ServiceDescriptor};
pub use crate::session::HandlerError;
use crate::session::{Calls, Inbound, Key, Outcome, PeerService, Session, Started};
use crate::wire::{DecodeError, Frame};

/// What a handler gets besides the message: the session it arrived on.
#[derive(Clone, Debug)]
pub struct Context {
    session: Session,
    correlation: Option<u64>,
}

impl Context {
    pub(crate) fn new(session: Session, correlation: Option<u64>) -> Self {
        Context {
            session,
            correlation,
        }
    }

    /// The session the message arrived on (send, request, properties).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// A session property.
    pub fn get<T: Send + Sync + 'static>(&self, key: &Key<T>) -> Option<Arc<T>> {
        self.session.get(key)
    }

    /// Sets a session property, returning the previous value.
    pub fn set<T: Send + Sync + 'static>(&self, key: &Key<T>, value: T) -> Option<Arc<T>> {
        self.session.set(key, value)
    }

    /// The request's correlation id (`None` for one-way messages).
    pub fn correlation(&self) -> Option<u64> {
        self.correlation
    }
}

type OneWayFn =
    Arc<dyn Fn(Context, u32, Bytes) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;
type RequestFn = Arc<
    dyn Fn(Context, Bytes) -> BoxFuture<'static, Result<(u32, Bytes), HandlerError>> + Send + Sync,
>;

/// Handlers by message type id, and the services this side serves.
#[derive(Clone, Default)]
pub struct Dispatcher {
    one_way: HashMap<u32, OneWayFn>,
    request: HashMap<u32, RequestFn>,
    names: HashMap<u32, &'static str>,
    services: Vec<Arc<dyn Service>>,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut one_way: Vec<_> = self.one_way.keys().collect();
        one_way.sort();
        let mut request: Vec<_> = self.request.keys().collect();
        request.sort();
        f.debug_struct("Dispatcher")
            .field("one_way", &one_way)
            .field("request", &request)
            .field(
                "services",
                &self
                    .services
                    .iter()
                    .map(|s| s.descriptor().name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn encode_reply<R: TopLevel>(reply: &R) -> Result<(u32, Bytes), HandlerError> {
    let mut buf = BytesMut::with_capacity(reply.encoded_len());
    reply
        .encode(&mut buf)
        .map_err(|e| HandlerError::failed(format!("cannot encode reply {}: {e}", R::NAME)))?;
    Ok((R::TYPE_ID, buf.freeze()))
}

impl Dispatcher {
    /// No handlers: every request gets "unknown message type".
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles one-way messages of type `M`.
    pub fn on<M, F, Fut>(mut self, handler: F) -> Self
    where
        M: TopLevel + Send + 'static,
        F: Fn(Context, M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.names.insert(M::TYPE_ID, M::NAME);
        self.one_way.insert(
            M::TYPE_ID,
            Arc::new(move |ctx, _, payload| {
                let handler = handler.clone();
                Box::pin(async move {
                    let msg = M::decode(payload)?;
                    handler(ctx, msg).await
                })
            }),
        );
        self
    }

    /// Handles requests of type `M`, replying with an `R`.
    pub fn on_request<M, R, F, Fut>(mut self, handler: F) -> Self
    where
        M: TopLevel + Send + 'static,
        R: TopLevel + Send + 'static,
        F: Fn(Context, M) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.names.insert(M::TYPE_ID, M::NAME);
        self.request.insert(
            M::TYPE_ID,
            Arc::new(move |ctx, payload| {
                let handler = handler.clone();
                Box::pin(async move {
                    let msg = M::decode(payload)?;
                    let reply = handler(ctx, msg).await?;
                    encode_reply(&reply)
                })
            }),
        );
        self
    }

    /// Handles one-way messages of every type of a generated dispatch table
    /// that has no handler of its own, decoded into the table's enum: pass the
    /// generated `AnyMessage::TYPES` and `AnyMessage::decode`.
    pub fn on_table<A, F, Fut>(
        mut self,
        types: &'static [(u32, &'static str, u64)],
        decode: fn(u32, Bytes) -> Result<A, DecodeError>,
        handler: F,
    ) -> Self
    where
        A: Send + 'static,
        F: Fn(Context, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let f: OneWayFn = Arc::new(move |ctx, type_id, payload| {
            let handler = handler.clone();
            Box::pin(async move {
                let msg = decode(type_id, payload)?;
                handler(ctx, msg).await
            })
        });
        for &(id, name, _) in types {
            self.names.entry(id).or_insert(name);
            self.one_way.entry(id).or_insert_with(|| f.clone());
        }
        self
    }

    /// Serves a service: pass a generated `…Server::new(implementation)`.
    /// Its methods are announced to every peer in the handshake. Serving
    /// the same service twice replaces the first.
    pub fn service(mut self, service: impl Service) -> Self {
        let name = service.descriptor().name;
        let service: Arc<dyn Service> = Arc::new(service);
        match self
            .services
            .iter_mut()
            .find(|s| s.descriptor().name == name)
        {
            Some(slot) => *slot = service,
            None => self.services.push(service),
        }
        self
    }

    /// The services served, in the order announced.
    pub fn services(&self) -> impl Iterator<Item = &'static ServiceDescriptor> + '_ {
        self.services.iter().map(|s| s.descriptor())
    }

    /// What the handshake announces: each service with its methods' ids
    /// and fingerprints.
    pub(crate) fn announced(&self) -> Vec<PeerService> {
        self.services
            .iter()
            .map(|s| {
                let d = s.descriptor();
                let mut methods: Vec<(u32, u64)> =
                    d.methods.iter().map(|m| (m.id, m.fingerprint())).collect();
                methods.sort_unstable_by_key(|m| m.0);
                PeerService {
                    name: d.name.to_owned(),
                    methods,
                }
            })
            .collect()
    }

    /// Whether a one-way or request handler is registered for `type_id`.
    pub fn handles(&self, type_id: u32) -> bool {
        self.one_way.contains_key(&type_id) || self.request.contains_key(&type_id)
    }

    /// The name registered for a type id, for messages and logs.
    pub fn name(&self, type_id: u32) -> Option<&'static str> {
        self.names.get(&type_id).copied()
    }
}

/// Calls go to the services.
impl Calls for Dispatcher {
    fn call(&self, session: &Session, frame: Frame, inline: bool) -> Started {
        crate::rpc::server::start(session, &self.services, frame, inline)
    }
}

/// The session asks; the dispatcher finds the handler and runs it with a
/// [`Context`]. The session writes what the handler returns.
impl Inbound for Dispatcher {
    fn one_way(&self, session: &Session, type_id: u32, payload: Bytes) -> Option<Outcome<()>> {
        let f = self.one_way.get(&type_id)?;
        Some(f(Context::new(session.clone(), None), type_id, payload))
    }

    fn request(
        &self,
        session: &Session,
        correlation: u64,
        type_id: u32,
        payload: Bytes,
    ) -> Option<Outcome<(u32, Bytes)>> {
        let f = self.request.get(&type_id)?;
        Some(f(Context::new(session.clone(), Some(correlation)), payload))
    }
}
