//! Several servers as one fleet: the [`Cluster`] a server belongs to.
//!
//! A server is one node. Its broker and its connection tasks tell the
//! cluster what happens locally through a few narrow hooks, and the cluster
//! acts on the node through a [`Node`] handle:
//!
//! - a publication was accepted ([`Cluster::published`]), a retained value
//!   deleted ([`Cluster::deleted`]): the cluster carries them to the other
//!   nodes, which hand them to their local subscribers ([`Node::deliver`])
//!   and keep the retained values ([`Node::set_retained`]);
//! - local interest in a channel (or one key of it) appeared or disappeared
//!   ([`Cluster::interest`]): a node receives only what its subscribers want;
//! - a session opened or closed ([`Cluster::session_opened`],
//!   [`Cluster::session_closed`]): presence, and the newer session of a
//!   device id wins across nodes ([`Node::replace`]);
//! - a message or a call for a device that is not connected here
//!   ([`Cluster::send_to`], [`Cluster::call`]).
//!
//! [`SingleNode`], the default, does nothing: a server alone. With the
//! `cluster` feature, [`NatsCluster`] joins servers over NATS JetStream
//! (`docs/cluster.md`).

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use crate::TopLevel;
use crate::pubsub::{ChannelInfo, Refusal};
use crate::rpc::{CallError, MethodDescriptor, ServiceDescriptor};
use crate::session::{Session, codes};
use crate::wire::Frame;

#[cfg(feature = "cluster")]
mod codec;
#[cfg(feature = "cluster")]
mod nats;
#[cfg(feature = "cluster")]
pub(crate) mod subject;

#[cfg(feature = "cluster")]
pub use nats::{NatsCluster, NatsClusterBuilder, NatsError};

pub use super::broker::Retained;

/// The cluster a server belongs to: what the server tells it, and what it
/// answers. Every method but [`Cluster::node_id`] has a default that suits
/// a server alone ([`SingleNode`]).
///
/// The hooks are called from the broker and the connection tasks, some
/// under the broker's locks: they must return at once (queue the work, do
/// it elsewhere), and never call back into the server.
pub trait Cluster: Send + Sync + 'static {
    /// This node's id, unique in the cluster.
    fn node_id(&self) -> &str;

    /// The server has started: `node` is how the cluster reaches it from
    /// now on. Called once.
    fn start(&self, node: Node) {
        let _ = node;
    }

    /// The broker accepted a publication (from a session or the server
    /// process), delivered it locally, and kept it if the channel retains.
    fn published(&self, publication: &Publication<'_>) {
        let _ = publication;
    }

    /// A retained value was deleted here.
    fn deleted(&self, channel: &ChannelInfo, key: Option<&str>) {
        let _ = (channel, key);
    }

    /// The first local subscriber of `channel` (of `key` only, when given)
    /// appeared (`present`), or the last one went.
    fn interest(&self, channel: &ChannelInfo, key: Option<&str>, present: bool) {
        let _ = (channel, key, present);
    }

    /// A session was established here.
    fn session_opened(&self, session: &Session) {
        let _ = session;
    }

    /// A session established here has ended.
    fn session_closed(&self, session: &Session) {
        let _ = session;
    }

    /// A message for a device that is not connected here. `None`: no other
    /// node can take it (the device is unknown); otherwise the future says
    /// whether the device's node queued it.
    fn send_to(&self, message: DirectMessage) -> Option<BoxFuture<'static, Result<(), Refusal>>> {
        let _ = message;
        None
    }

    /// The node a device not connected here is connected to, if any.
    fn locate(&self, device: &str) -> BoxFuture<'static, Option<String>> {
        let _ = device;
        Box::pin(std::future::ready(None))
    }

    /// Calls a method of a device connected to another node: the answer
    /// frame (a response or an error response), `None` for a one-way call
    /// once the device's node queued it.
    fn call(&self, call: RemoteCall) -> BoxFuture<'static, Result<Option<Frame>, CallError>> {
        let method = call.method;
        Box::pin(std::future::ready(Err(CallError::Closed {
            method,
            reason: format!("device {} is not connected (single node)", call.device),
        })))
    }

    /// Whether the cluster is reachable, and its counters.
    fn stats(&self) -> ClusterStats {
        ClusterStats {
            node_id: self.node_id().to_owned(),
            ..ClusterStats::default()
        }
    }

    /// The server is shutting down: leave the cluster (presence removed,
    /// pending work written) within the shutdown timeout.
    fn stop(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// A server alone: the default [`Cluster`].
#[derive(Debug, Clone, Default)]
pub struct SingleNode;

impl Cluster for SingleNode {
    fn node_id(&self) -> &str {
        ""
    }
}

/// The state of a node's link to its cluster.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterStatus {
    /// No cluster: the server is alone.
    #[default]
    Single,
    /// Connected: publications, retained values and presence are shared.
    Connected,
    /// The cluster is unreachable: local traffic goes on, what is shared
    /// is resynchronised when it returns.
    Degraded,
}

impl fmt::Display for ClusterStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterStatus::Single => "single",
            ClusterStatus::Connected => "connected",
            ClusterStatus::Degraded => "degraded",
        })
    }
}

/// Counters of a node's cluster link.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClusterStats {
    /// This node's id.
    pub node_id: String,
    /// Connected, degraded, or alone.
    pub status: ClusterStatus,
    /// Publications sent to the other nodes.
    pub published: u64,
    /// Publications of other nodes delivered here.
    pub received: u64,
    /// Publications not sent because the queue to the cluster was full.
    pub dropped: u64,
    /// Retained values and deletes written to the cluster's bucket.
    pub retained_writes: u64,
    /// Retained values and deletes of other nodes applied here.
    pub retained_applied: u64,
    /// Messages sent to devices on other nodes.
    pub sent: u64,
    /// Calls made to devices on other nodes.
    pub calls_out: u64,
    /// Calls of other nodes served by devices connected here.
    pub calls_in: u64,
    /// Sessions here closed because the device connected to another node.
    pub replaced: u64,
    /// Times the link was lost.
    pub disconnects: u64,
    /// Times the shared state was resynchronised after the link returned.
    pub resyncs: u64,
}

/// A publication accepted by this node's broker.
#[derive(Debug, Clone, Copy)]
pub struct Publication<'a> {
    /// The channel.
    pub channel: &'a ChannelInfo,
    /// The key, on keyed channels.
    pub key: Option<&'a str>,
    /// The publisher's device id (`""`: the server process).
    pub publisher: &'a str,
    /// When the broker accepted it.
    pub timestamp_ms: u64,
    /// The encoded message.
    pub payload: &'a Bytes,
}

/// A device-to-device message for a device connected to another node.
#[derive(Debug, Clone)]
pub struct DirectMessage {
    /// The sender's device id (`""`: the server process).
    pub from: String,
    /// The target device id.
    pub to: String,
    /// The message's type id.
    pub type_id: u32,
    /// The encoded message.
    pub payload: Bytes,
}

/// A call of a device connected to another node (unary or one-way).
#[derive(Debug, Clone)]
pub struct RemoteCall {
    /// The target device id.
    pub device: String,
    /// The service's full name (`charging.v1.Charger`).
    pub service: &'static str,
    /// The method's full name (`charging.v1.Charger/start_charging`).
    pub method: &'static str,
    /// The method id.
    pub method_id: u32,
    /// The method's fingerprint, checked against what the device announced.
    pub fingerprint: u64,
    /// The request's type id.
    pub type_id: u32,
    /// The encoded request.
    pub payload: Bytes,
    /// When the caller stops waiting (the device's node gets what is left).
    pub deadline: Option<Instant>,
    /// `false` for a one-way call.
    pub wants_reply: bool,
}

/// This server, as its cluster reaches it. Holds the server weakly: once
/// the server is gone, every method does nothing.
#[derive(Clone)]
pub struct Node {
    inner: Weak<super::Inner>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("running", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl Node {
    pub(super) fn new(inner: &Arc<super::Inner>) -> Node {
        Node {
            inner: Arc::downgrade(inner),
        }
    }

    /// The channels this node brokers.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.inner
            .upgrade()
            .map(|i| i.broker.channel_infos())
            .unwrap_or_default()
    }

    /// Hands a publication of another node to the local subscribers of
    /// its channel (and key); returns how many got it at once.
    pub fn deliver(
        &self,
        channel: u32,
        key: Option<&str>,
        publisher: &str,
        timestamp_ms: u64,
        payload: Bytes,
    ) -> u64 {
        match self.inner.upgrade() {
            Some(i) => i
                .broker
                .deliver_remote(channel, key, publisher, timestamp_ms, payload),
            None => 0,
        }
    }

    /// Sets (`Some`) or removes (`None`) a retained value as the cluster
    /// holds it, without delivering it: the local copy (memory and the
    /// data directory's store) becomes a cache of the cluster's.
    pub fn set_retained(&self, channel: u32, key: Option<&str>, value: Option<Retained>) {
        if let Some(i) = self.inner.upgrade() {
            i.broker.set_retained(channel, key, value);
        }
    }

    /// Every retained value held here.
    pub fn retained(&self) -> Vec<(u32, Option<String>, Retained)> {
        self.inner
            .upgrade()
            .map(|i| i.broker.all_retained_values())
            .unwrap_or_default()
    }

    /// The session of a device connected here.
    pub fn session(&self, device: &str) -> Option<Session> {
        let inner = self.inner.upgrade()?;
        let id = *super::read(&inner.registry.by_device).get(device)?;
        super::read(&inner.registry.by_id)
            .get(&id)
            .filter(|s| !s.is_closed())
            .cloned()
    }

    /// Every session established here.
    pub fn sessions(&self) -> Vec<Session> {
        self.inner
            .upgrade()
            .map(|i| super::read(&i.registry.by_id).values().cloned().collect())
            .unwrap_or_default()
    }

    /// Closes session `session_id` of `device` here because a newer session
    /// of the same device id opened on node `by` (code 12,
    /// `DEVICE_ID_IN_USE`, as for a duplicate on one node).
    pub fn replace(&self, device: &str, session_id: u64, by: &str) {
        let Some(session) = self.session(device).filter(|s| s.id() == session_id) else {
            return;
        };
        tracing::info!(
            device = %crate::handshake::Untrusted(device),
            session = session_id,
            node = by,
            "device connected to another node: session replaced"
        );
        let message = format!("replaced by a newer session of device {device} on node {by}");
        tokio::spawn(async move {
            session.close_with(codes::DEVICE_ID_IN_USE, message).await;
        });
    }
}

/// A device connected to another node of the cluster, as generated clients
/// call it ([`Conn::Remote`](crate::rpc::Conn::Remote), from
/// [`Server::device`](crate::Server::device)): unary and one-way calls go
/// through the cluster to the device's node, with their deadline, and a
/// call dropped or timed out is cancelled there.
#[derive(Clone)]
pub struct RemoteDevice {
    cluster: Arc<dyn Cluster>,
    device: String,
    node: String,
    timeout: Duration,
}

impl fmt::Debug for RemoteDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteDevice")
            .field("device", &self.device)
            .field("node", &self.node)
            .finish()
    }
}

impl RemoteDevice {
    pub(super) fn new(
        cluster: Arc<dyn Cluster>,
        device: String,
        node: String,
        timeout: Duration,
    ) -> RemoteDevice {
        RemoteDevice {
            cluster,
            device,
            node,
            timeout,
        }
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.device
    }

    /// The node it was connected to when this handle was made.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The default time a call may take (the server's request timeout).
    pub(crate) fn default_timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) async fn call<Q: TopLevel>(
        &self,
        service: &'static ServiceDescriptor,
        method: &'static MethodDescriptor,
        request: &Q,
        timeout: Option<Duration>,
        wants_reply: bool,
    ) -> Result<Option<Frame>, CallError> {
        let name = method.full_name;
        let own = timeout.map(|t| Instant::now() + t);
        let deadline = match (own, crate::rpc::inherited_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut buf = BytesMut::with_capacity(request.encoded_len());
        request
            .encode(&mut buf)
            .map_err(|source| CallError::Encode {
                method: name,
                message: Q::NAME,
                source: Box::new(source),
            })?;
        let call = RemoteCall {
            device: self.device.clone(),
            service: service.name,
            method: name,
            method_id: method.id,
            fingerprint: method.fingerprint(),
            type_id: method.request.type_id,
            payload: buf.freeze(),
            deadline,
            wants_reply,
        };
        let fut = self.cluster.call(call);
        match deadline {
            Some(d) => tokio::time::timeout_at(d, fut)
                .await
                .unwrap_or(Err(CallError::Timeout {
                    method: name,
                    after: timeout.unwrap_or_default(),
                })),
            None => fut.await,
        }
    }
}
