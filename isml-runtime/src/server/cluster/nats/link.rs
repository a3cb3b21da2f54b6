//! What this node writes to NATS, in one ordered queue (bounded: see
//! [`NatsClusterBuilder::queue`](super::NatsClusterBuilder::queue)), and the
//! answers to its requests.
//!
//! Requests carry a reply subject of this node's own
//! (`_isml.reply.<node>.<incarnation>.<n>`), so that a request leaves in
//! the queue's order, after the messages queued before it: two messages
//! from one device to a device on another node arrive in the order sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::Shared;

pub(crate) enum Outbound {
    Publish {
        subject: String,
        payload: Bytes,
    },
    Request {
        subject: String,
        payload: Bytes,
        id: u64,
    },
}

/// Requests waiting for their answer.
#[derive(Default)]
pub(crate) struct Waiting {
    next: AtomicU64,
    map: Mutex<HashMap<u64, oneshot::Sender<async_nats::Message>>>,
}

/// Why a request got no answer.
pub(crate) enum Failed {
    /// Nobody listens on the subject (the node is gone).
    NoResponders,
    /// The deadline passed.
    Timeout,
    /// The queue to NATS is full, or the node is leaving.
    Queue,
}

/// Queues a publication; `false` when the queue is full (dropped).
pub(crate) fn publish(shared: &Shared, subject: String, payload: Bytes) -> bool {
    shared
        .out
        .try_send(Outbound::Publish { subject, payload })
        .is_ok()
}

/// Queues a request now (in order with what is queued), and returns the
/// future of its answer, which fails at `deadline`.
pub(crate) fn request(
    shared: &Arc<Shared>,
    subject: String,
    payload: Bytes,
    deadline: Instant,
) -> impl std::future::Future<Output = Result<async_nats::Message, Failed>> + Send + 'static {
    let waiting = &shared.remote.waiting;
    let id = waiting.next.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    lock(&waiting.map).insert(id, tx);
    let queued = shared
        .out
        .try_send(Outbound::Request {
            subject,
            payload,
            id,
        })
        .is_ok();
    let shared = shared.clone();
    async move {
        let guard = Forget {
            shared: &shared,
            id,
        };
        if !queued {
            return Err(Failed::Queue);
        }
        let answer = match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(m)) => m,
            Ok(Err(_)) => return Err(Failed::Queue),
            Err(_) => return Err(Failed::Timeout),
        };
        drop(guard);
        if answer.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
            return Err(Failed::NoResponders);
        }
        Ok(answer)
    }
}

/// Removes a request's entry however its future ends.
struct Forget<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(&self.shared.remote.waiting.map).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes the queue to NATS, in order.
pub(crate) async fn write(shared: Arc<Shared>, mut rx: mpsc::Receiver<Outbound>) {
    while let Some(item) = rx.recv().await {
        let r = match item {
            Outbound::Publish { subject, payload } => shared.client.publish(subject, payload).await,
            Outbound::Request {
                subject,
                payload,
                id,
            } => {
                let reply = format!("{}.{id}", shared.reply_prefix);
                shared
                    .client
                    .publish_with_reply(subject, reply, payload)
                    .await
            }
        };
        if let Err(e) = r {
            tracing::debug!(error = %e, "cluster: not written to NATS");
        }
    }
}

/// Hands the answers to this node's requests to their waiters.
pub(crate) async fn answers(shared: Arc<Shared>) {
    let subject = format!("{}.*", shared.reply_prefix);
    let mut sub = loop {
        match shared.client.subscribe(subject.clone()).await {
            Ok(sub) => break sub,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: cannot subscribe to answers; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    while let Some(m) = sub.next().await {
        let Some(id) = m
            .subject
            .rsplit('.')
            .next()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        if let Some(tx) = lock(&shared.remote.waiting.map).remove(&id) {
            let _ = tx.send(m);
        }
    }
}
