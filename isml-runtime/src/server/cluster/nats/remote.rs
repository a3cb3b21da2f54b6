//! Messages and calls to devices on other nodes, by NATS request and
//! reply to the node the presence bucket names
//! (`_isml.node.<node>.send|call|cancel`), and those of other nodes served
//! here.
//!
//! A call carries the time its caller has left; the device's node calls
//! the device with that deadline. A caller that gives up (its deadline, or
//! its future dropped) sends a cancel, and the device's node drops the
//! call, which cancels it at the device as any call is cancelled.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::link::{self, Failed, Waiting};
use super::{Shared, presence};
use crate::pubsub::frames::message_frame;
use crate::pubsub::{Reason, Refusal};
use crate::rpc::CallError;
use crate::server::cluster::codec::{self, Answer, Call, Hop, Send};
use crate::server::cluster::{DirectMessage, RemoteCall};
use crate::session::{Exchange, SendError};
use crate::wire::{CallHeader, Frame, FrameHeader, FrameKind};

/// How long a message to a device on another node waits for its node.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
pub(crate) struct State {
    pub(super) waiting: Waiting,
    /// Calls served here for other nodes, by (caller node, call id).
    served: Mutex<HashMap<(String, u64), tokio::task::AbortHandle>>,
    next_call: std::sync::atomic::AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn node_subject(node: &str, op: &str) -> String {
    format!("_isml.node.{node}.{op}")
}

fn unknown(to: &str) -> Refusal {
    Refusal::new(
        Reason::UnknownDevice,
        format!("device {to} is not connected to any node"),
    )
}

/// Sends a message to a device on another node: queued now, in order with
/// the messages before it when the node is known at once.
pub(super) fn send_to(
    shared: &Arc<Shared>,
    m: DirectMessage,
) -> BoxFuture<'static, Result<(), Refusal>> {
    if !shared.link.connected() {
        let to = m.to.clone();
        return Box::pin(std::future::ready(Err(Refusal::new(
            Reason::UnknownDevice,
            format!("device {to} is not connected here, and the cluster is unreachable"),
        ))));
    }
    let payload = Send {
        from: m.from,
        to: m.to.clone(),
        type_id: m.type_id,
        payload: m.payload,
    }
    .encode();
    let deadline = Instant::now() + SEND_TIMEOUT;
    let shared2 = shared.clone();
    let to = m.to;
    // Known now: queued now.
    let queued = presence::locate_now(shared, &to).map(|p| {
        link::request(
            shared,
            node_subject(&p.node, "send"),
            payload.clone(),
            deadline,
        )
    });
    Box::pin(async move {
        let answer = match queued {
            Some(fut) => fut.await,
            None => {
                let Some(p) = presence::locate(&shared2, &to).await else {
                    return Err(unknown(&to));
                };
                link::request(&shared2, node_subject(&p.node, "send"), payload, deadline).await
            }
        };
        shared2.stats.sent.fetch_add(1, Ordering::Relaxed);
        let refusal = |m: String| Err(Refusal::new(Reason::UnknownDevice, m));
        match answer {
            Ok(m) => match Answer::decode(&m.payload) {
                Some(Answer::Done) => Ok(()),
                Some(Answer::Failed(_, message)) => refusal(message),
                _ => refusal(format!("device {to}: malformed answer from its node")),
            },
            Err(Failed::NoResponders) => Err(unknown(&to)),
            Err(Failed::Timeout) => {
                refusal(format!("device {to}: its node did not answer in time"))
            }
            Err(Failed::Queue) => refusal(format!("device {to}: the queue to the cluster is full")),
        }
    })
}

/// Cancels a call at the device's node if it is dropped unanswered.
struct CancelOnDrop<'a> {
    shared: &'a Shared,
    node: String,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            link::publish(
                self.shared,
                node_subject(&self.node, "cancel"),
                codec::cancel(self.id, &self.shared.id),
            );
        }
    }
}

/// Calls a device on another node.
pub(super) async fn call(shared: Arc<Shared>, c: RemoteCall) -> Result<Option<Frame>, CallError> {
    let method = c.method;
    let closed = |reason: String| CallError::Closed { method, reason };
    if !shared.link.connected() {
        return Err(closed(format!(
            "device {} is not connected here, and the cluster is unreachable",
            c.device
        )));
    }
    let Some(p) = presence::locate(&shared, &c.device).await else {
        return Err(closed(format!(
            "device {} is not connected to any node",
            c.device
        )));
    };
    let now = Instant::now();
    let deadline_ms = match c.deadline {
        None => 0,
        Some(d) => {
            let left = d.saturating_duration_since(now);
            if left.is_zero() {
                return Err(CallError::Timeout {
                    method,
                    after: Duration::ZERO,
                });
            }
            (left.as_micros().div_ceil(1000)).clamp(1, u128::from(u64::MAX)) as u64
        }
    };
    let id = shared.remote.next_call.fetch_add(1, Ordering::Relaxed);
    let payload = Call {
        id,
        caller: shared.id.clone(),
        device: c.device.clone(),
        service: c.service.to_owned(),
        method_id: c.method_id,
        fingerprint: c.fingerprint,
        type_id: c.type_id,
        deadline_ms,
        wants_reply: c.wants_reply,
        payload: c.payload,
    }
    .encode();
    shared.stats.calls_out.fetch_add(1, Ordering::Relaxed);
    // Without a deadline of its own a call still needs one for the hop.
    let deadline = c.deadline.unwrap_or(now + Duration::from_secs(3600));
    let mut guard = CancelOnDrop {
        shared: &shared,
        node: p.node.clone(),
        id,
        armed: c.wants_reply,
    };
    let answer = link::request(&shared, node_subject(&p.node, "call"), payload, deadline).await;
    let answer = match answer {
        Ok(m) => m,
        Err(Failed::Timeout) => {
            return Err(CallError::Timeout {
                method,
                after: c
                    .deadline
                    .map_or(Duration::ZERO, |d| d.saturating_duration_since(now)),
            });
        }
        Err(Failed::NoResponders) => {
            guard.armed = false;
            return Err(closed(format!(
                "node {} of device {} is unreachable",
                p.node, c.device
            )));
        }
        Err(Failed::Queue) => {
            guard.armed = false;
            return Err(CallError::QueueFull { method });
        }
    };
    guard.armed = false;
    match Answer::decode(&answer.payload) {
        Some(Answer::Done) => Ok(None),
        Some(Answer::Frame {
            error,
            type_id,
            payload,
        }) => {
            let header = if error {
                FrameHeader::error(0)
            } else {
                FrameHeader::response(type_id, 0)
            };
            Ok(Some(Frame::new(header, payload)))
        }
        Some(Answer::Failed(hop, message)) => Err(match hop {
            Hop::Unimplemented => CallError::Unimplemented {
                method,
                detail: format!(" ({message})"),
            },
            Hop::Incompatible => CallError::Incompatible {
                method,
                reason: message,
            },
            Hop::Timeout => CallError::Timeout {
                method,
                after: Duration::from_millis(deadline_ms),
            },
            Hop::NotHere | Hop::Closed => closed(message),
        }),
        None => Err(closed(format!("malformed answer from node {}", p.node))),
    }
}

/// Serves the requests of other nodes for devices connected here.
pub(super) async fn serve(shared: Arc<Shared>) {
    let subject = node_subject(&shared.id, "*");
    let mut sub = loop {
        match shared.client.subscribe(subject.clone()).await {
            Ok(sub) => break sub,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot subscribe to this node's subject; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    while let Some(m) = sub.next().await {
        match m.subject.rsplit('.').next() {
            Some("send") => serve_send(&shared, m),
            Some("call") => serve_call(&shared, m),
            Some("cancel") => {
                if let Some((id, caller)) = codec::parse_cancel(&m.payload)
                    && let Some(task) = lock(&shared.remote.served).remove(&(caller, id))
                {
                    task.abort();
                }
            }
            _ => {}
        }
    }
}

fn answer(shared: &Shared, reply: Option<&async_nats::Subject>, a: &Answer) {
    if let Some(reply) = reply {
        link::publish(shared, reply.to_string(), a.encode());
    }
}

fn serve_send(shared: &Arc<Shared>, m: async_nats::Message) {
    let Some(s) = Send::decode(&m.payload) else {
        shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let reply = m.reply;
    let Some(session) = shared.node().and_then(|n| n.session(&s.to)) else {
        let a = Answer::Failed(
            Hop::NotHere,
            format!("device {} is not connected to node {}", s.to, shared.id),
        );
        answer(shared, reply.as_ref(), &a);
        return;
    };
    let frame = message_frame(&s.from, s.type_id, &s.payload);
    let gone = || Answer::Failed(Hop::Closed, format!("device {} disconnected", s.to));
    match session.try_enqueue(frame.clone()) {
        Ok(()) => answer(shared, reply.as_ref(), &Answer::Done),
        Err(SendError::QueueFull { .. }) => {
            let shared2 = shared.clone();
            let a_gone = gone();
            shared.spawn(async move {
                let a = match session.send_frame(frame).await {
                    Ok(()) => Answer::Done,
                    Err(_) => a_gone,
                };
                answer(&shared2, reply.as_ref(), &a);
            });
        }
        Err(_) => answer(shared, reply.as_ref(), &gone()),
    }
}

fn serve_call(shared: &Arc<Shared>, m: async_nats::Message) {
    let Some(c) = Call::decode(&m.payload) else {
        shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    shared.stats.calls_in.fetch_add(1, Ordering::Relaxed);
    let reply = m.reply;
    let key = (c.caller.clone(), c.id);
    let shared2 = shared.clone();
    let key2 = key.clone();
    let mut served = lock(&shared.remote.served);
    let task = shared.spawn(async move {
        let a = call_here(&shared2, c).await;
        lock(&shared2.remote.served).remove(&key2);
        answer(&shared2, reply.as_ref(), &a);
    });
    served.insert(key, task);
}

/// Calls a device connected here for another node.
async fn call_here(shared: &Shared, c: Call) -> Answer {
    let Some(session) = shared.node().and_then(|n| n.session(&c.device)) else {
        return Answer::Failed(
            Hop::NotHere,
            format!("device {} is not connected to node {}", c.device, shared.id),
        );
    };
    let Some((index, peer)) = session.calls().peer_service(&c.service) else {
        return Answer::Failed(
            Hop::Unimplemented,
            format!("service {} is not served by device {}", c.service, c.device),
        );
    };
    match peer.method(c.method_id) {
        None => {
            return Answer::Failed(
                Hop::Unimplemented,
                format!("service {} has no method id {}", c.service, c.method_id),
            );
        }
        Some(fp) if fp != c.fingerprint => {
            return Answer::Failed(
                Hop::Incompatible,
                format!(
                    "its request, response or streaming kind differs on device {} (method fingerprint {fp:016x}, the caller's {:016x})",
                    c.device, c.fingerprint
                ),
            );
        }
        Some(_) => {}
    }
    let deadline =
        (c.deadline_ms > 0).then(|| Instant::now() + Duration::from_millis(c.deadline_ms));
    let header = FrameHeader::call(
        c.type_id,
        session.next_correlation(),
        CallHeader {
            service: index,
            method: c.method_id,
            deadline_ms: c.deadline_ms,
        },
    );
    let frame = Frame::new(header, c.payload);
    if !c.wants_reply {
        return match session.send_frame(frame).await {
            Ok(()) => Answer::Done,
            Err(e) => Answer::Failed(Hop::Closed, e.to_string()),
        };
    }
    match session.exchange(frame, deadline).await {
        Ok(reply) => Answer::Frame {
            error: reply.header.kind != FrameKind::Response,
            type_id: reply.header.type_id,
            payload: reply.payload,
        },
        Err(Exchange::Timeout) => Answer::Failed(
            Hop::Timeout,
            "deadline exceeded at the device's node".into(),
        ),
        Err(Exchange::Disconnected(reason)) => Answer::Failed(Hop::Closed, reason.to_string()),
        Err(Exchange::Send(e)) => Answer::Failed(Hop::Closed, e.to_string()),
    }
}
