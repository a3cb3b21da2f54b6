//! Retained values in the cluster's bucket (`isml_retained`, history 1):
//! the bucket holds the cluster-wide latest value of every channel and key,
//! and each node's broker (memory and its store) is a cache of it.
//!
//! - A value published or deleted here is written to the bucket by one
//!   task (while the link is down it waits, the newest per key only). The
//!   later timestamp wins: a write is a compare-and-set on the revision it
//!   read, and is dropped if the bucket holds a later value or delete
//!   (a delete's time is when the bucket took it), so a value written late
//!   — queued, or kept through an outage — never undoes a later delete or
//!   value of another node.
//! - Every node watches the bucket and applies what it sees, in the
//!   bucket's order. An entry older than a value this node has not written
//!   yet, or than one it wrote and has not seen come back, is skipped, so a
//!   node never goes back to an older value of its own.
//! - When the link (re)starts, values held here that the bucket no longer
//!   has (deleted meanwhile by another node) are dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use bytes::Bytes;
use futures_util::StreamExt;

use super::Shared;
use super::pending::Pending;
use crate::pubsub::ChannelInfo;
use crate::server::broker::now_ms;
use crate::server::cluster::codec::Envelope;
use crate::server::cluster::{Publication, subject};

#[derive(Default)]
pub(crate) struct State {
    /// Writes not done yet, the newest per bucket key.
    dirty: Pending<Op>,
    /// Revisions written by this node and not seen back from the watch.
    written: Mutex<HashMap<String, u64>>,
}

#[derive(Clone)]
struct Op {
    /// The envelope to put; `None` to delete.
    value: Option<Bytes>,
    timestamp_ms: u64,
}

/// Attempts of one write whose compare-and-set lost to another writer.
const CAS_ATTEMPTS: usize = 5;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn queue(shared: &Shared, key: String, op: Op) {
    shared.retained_state.dirty.set(key, op);
}

pub(super) fn put(shared: &Shared, p: &Publication<'_>) {
    let value = Envelope::encode(
        p.channel.id,
        &shared.id,
        p.publisher,
        p.timestamp_ms,
        p.payload,
    );
    let op = Op {
        value: Some(value),
        timestamp_ms: p.timestamp_ms,
    };
    queue(shared, subject::retained_key(&p.channel.name, p.key), op);
}

pub(super) fn delete(shared: &Shared, channel: &ChannelInfo, key: Option<&str>) {
    let op = Op {
        value: None,
        timestamp_ms: now_ms(),
    };
    queue(shared, subject::retained_key(&channel.name, key), op);
}

/// Wakes the writer (the link is back).
pub(super) fn wake(shared: &Shared) {
    shared.retained_state.dirty.wake();
}

/// Waits (a little) for the writer to empty its queue.
pub(super) async fn flush(shared: &Shared) {
    shared.retained_state.dirty.flushed(shared).await;
}

/// Writes the queued values to the bucket.
pub(super) async fn write(shared: Arc<Shared>) {
    let s = &shared;
    s.retained_state
        .dirty
        .write(s, "retained value", |key, op| async move {
            let r = apply(s, &key, &op).await;
            if r.is_ok() {
                s.stats.retained_writes.fetch_add(1, Ordering::Relaxed);
            }
            (key, op, r)
        })
        .await;
}

async fn apply(shared: &Shared, key: &str, op: &Op) -> Result<(), String> {
    let bucket = &shared.retained;
    let mut last = String::new();
    for _ in 0..CAS_ATTEMPTS {
        let current = bucket.entry(key).await.map_err(|e| e.to_string())?;
        let (put_there, rev) = match &current {
            None => (false, None),
            Some(e) => {
                let at = match e.operation {
                    Operation::Put => Envelope::decode(&e.value).map(|v| v.value.timestamp_ms),
                    Operation::Delete | Operation::Purge => {
                        u64::try_from(e.created.unix_timestamp_nanos() / 1_000_000).ok()
                    }
                };
                if at.is_some_and(|t| t > op.timestamp_ms) {
                    // A later value or delete is there: it wins.
                    return Ok(());
                }
                (e.operation == Operation::Put, Some(e.revision))
            }
        };
        let written = match (&op.value, rev) {
            (Some(v), Some(r)) => bucket
                .update(key, v.clone(), r)
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            (Some(v), None) => bucket
                .create(key, v.clone())
                .await
                .map(Some)
                .map_err(|e| e.to_string()),
            (None, Some(r)) if put_there => bucket
                .delete_expect_revision(key, Some(r))
                .await
                .map(|()| None)
                .map_err(|e| e.to_string()),
            // Nothing to delete.
            (None, _) => return Ok(()),
        };
        match written {
            Ok(Some(rev)) => {
                lock(&shared.retained_state.written).insert(key.to_owned(), rev);
                return Ok(());
            }
            Ok(None) => return Ok(()),
            // Another node wrote in between: read again.
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Follows the bucket: drops what it no longer holds, then applies every
/// entry, the current ones first. Runs while the link is up.
pub(super) async fn follow(shared: Arc<Shared>) {
    loop {
        if let Err(e) = follow_once(&shared).await {
            tracing::debug!(error = %e, "cluster: retained watch ended; restarting");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn follow_once(shared: &Shared) -> Result<(), String> {
    let Some(node) = shared.node() else {
        return Ok(());
    };
    let channels = shared.channels();
    let by_tokens: HashMap<String, ChannelInfo> = channels
        .values()
        .filter(|c| c.retain)
        .map(|c| (subject::channel_tokens(&c.name), c.clone()))
        .collect();
    let keys: HashSet<String> = shared
        .retained
        .keys()
        .await
        .map_err(|e| e.to_string())?
        .filter_map(|k| async move { k.ok() })
        .collect()
        .await;
    for (channel, key, _) in node.retained() {
        let Some(info) = channels.get(&channel) else {
            continue;
        };
        let k = subject::retained_key(&info.name, key.as_deref());
        if !keys.contains(&k) && !shared.retained_state.dirty.contains(&k) {
            node.set_retained(channel, key.as_deref(), None);
        }
    }
    let mut watch = shared
        .retained
        .watch_with_history(">")
        .await
        .map_err(|e| e.to_string())?;
    while let Some(entry) = watch.next().await {
        let entry = entry.map_err(|e| e.to_string())?;
        apply_entry(shared, &by_tokens, &entry);
    }
    Ok(())
}

/// The channel and key a bucket key names.
fn resolve(
    by_tokens: &HashMap<String, ChannelInfo>,
    key: &str,
) -> Option<(ChannelInfo, Option<String>)> {
    if let Some(c) = by_tokens.get(key).filter(|c| !c.keyed) {
        return Some((c.clone(), None));
    }
    let (prefix, last) = key.rsplit_once('.')?;
    let c = by_tokens.get(prefix).filter(|c| c.keyed)?;
    Some((c.clone(), Some(subject::unescape(last)?)))
}

fn apply_entry(
    shared: &Shared,
    by_tokens: &HashMap<String, ChannelInfo>,
    entry: &async_nats::jetstream::kv::Entry,
) {
    let Some(node) = shared.node() else {
        return;
    };
    let Some((info, key)) = resolve(by_tokens, &entry.key) else {
        return;
    };
    let state = &shared.retained_state;
    if state.dirty.contains(&entry.key) {
        // A newer value of ours is on its way to the bucket.
        return;
    }
    {
        let mut written = lock(&state.written);
        match written.get(&entry.key) {
            Some(&rev) if entry.revision < rev => return,
            Some(&rev) if entry.revision == rev => {
                written.remove(&entry.key);
            }
            _ => {}
        }
    }
    match entry.operation {
        Operation::Put => {
            let Some(env) = Envelope::decode(&entry.value).filter(|e| e.channel == info.id) else {
                shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
                return;
            };
            if env.origin != shared.id {
                shared
                    .stats
                    .retained_applied
                    .fetch_add(1, Ordering::Relaxed);
            }
            node.set_retained(info.id, key.as_deref(), Some(env.value));
        }
        Operation::Delete | Operation::Purge => {
            shared
                .stats
                .retained_applied
                .fetch_add(1, Ordering::Relaxed);
            node.set_retained(info.id, key.as_deref(), None);
        }
    }
}
