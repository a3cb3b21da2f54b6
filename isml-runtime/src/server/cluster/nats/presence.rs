//! Presence: which node each device is connected to (`isml_presence`,
//! device id -> node, incarnation, session, since when), and node leases
//! (`isml_nodes`, node id -> incarnation, expiring after the lease unless
//! renewed).
//!
//! - An entry is live while its node's lease names the same incarnation.
//!   Every node sweeps: an entry whose node has had no such lease in two
//!   sweeps in a row is deleted (compare-and-delete on its revision), so the
//!   devices of a node that died are forgotten within about twice the lease.
//! - The newer session of a device id wins across nodes: a node that sees
//!   an entry of another session of a device connected here, opened later
//!   (ties broken by node id), closes its own (code 12, as on one node); if
//!   the entry is of an older session, it writes its own again, so that
//!   the other node closes that one.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::Operation;
use futures_util::StreamExt;

use super::Shared;
use super::pending::Pending;
use crate::server::broker::now_ms;
use crate::server::cluster::codec::{self, Presence};
use crate::server::cluster::subject::{escape, unescape};
use crate::session::Session;

#[derive(Default)]
pub(crate) struct State {
    /// The sessions here, by device id.
    local: Mutex<HashMap<String, Local>>,
    /// Writes not done yet, the newest per device.
    dirty: Pending<Op>,
    /// The bucket as the watch shows it: device -> (entry, revision).
    mirror: Mutex<HashMap<String, (Presence, u64)>>,
    /// Node incarnations found without a lease, and in how many sweeps.
    missing: Mutex<HashMap<(String, u64), u32>>,
}

struct Local {
    session: u64,
    since_ms: u64,
    /// The revision of our entry, once written.
    rev: Option<u64>,
}

enum Op {
    Put(Presence),
    Delete { session: u64, rev: Option<u64> },
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn entry(shared: &Shared, session: u64, since_ms: u64) -> Presence {
    Presence {
        node: shared.id.clone(),
        incarnation: shared.incarnation,
        session,
        since_ms,
    }
}

pub(super) fn opened(shared: &Shared, session: &Session) {
    let state = &shared.presence_state;
    let device = session.device_id().to_owned();
    let since_ms = now_ms();
    lock(&state.local).insert(
        device.clone(),
        Local {
            session: session.id(),
            since_ms,
            rev: None,
        },
    );
    state
        .dirty
        .set(device, Op::Put(entry(shared, session.id(), since_ms)));
}

pub(super) fn closed(shared: &Shared, session: &Session) {
    let state = &shared.presence_state;
    let device = session.device_id();
    let mut local = lock(&state.local);
    let Some(l) = local.get(device).filter(|l| l.session == session.id()) else {
        // Replaced: by a newer session here, or on another node.
        return;
    };
    let rev = l.rev;
    local.remove(device);
    drop(local);
    let mut dirty = state.dirty.lock();
    match dirty.get(device) {
        // Never written: nothing to remove.
        Some(Op::Put(p)) if p.session == session.id() => {
            dirty.remove(device);
        }
        _ => {
            dirty.insert(
                device.to_owned(),
                Op::Delete {
                    session: session.id(),
                    rev,
                },
            );
        }
    }
    drop(dirty);
    state.dirty.wake();
}

/// Writes the entry of every session here again (the link is back).
pub(super) fn reannounce(shared: &Shared) {
    let state = &shared.presence_state;
    let mut local = lock(&state.local);
    let mut dirty = state.dirty.lock();
    for (device, l) in local.iter_mut() {
        l.rev = None;
        dirty.insert(
            device.clone(),
            Op::Put(entry(shared, l.session, l.since_ms)),
        );
    }
    drop((local, dirty));
    state.dirty.wake();
}

/// Writes the queued entries and removals.
pub(super) async fn write(shared: Arc<Shared>) {
    let s = &shared;
    s.presence_state
        .dirty
        .write(s, "presence", |device, op| async move {
            let r = apply(s, &device, &op).await;
            (device, op, r)
        })
        .await;
}

async fn apply(shared: &Shared, device: &str, op: &Op) -> Result<(), String> {
    let bucket = &shared.presence;
    let key = escape(device);
    match op {
        Op::Put(p) => {
            let still = lock(&shared.presence_state.local)
                .get(device)
                .is_some_and(|l| l.session == p.session);
            if !still {
                return Ok(());
            }
            let rev = bucket
                .put(&key, p.encode())
                .await
                .map_err(|e| e.to_string())?;
            if let Some(l) = lock(&shared.presence_state.local)
                .get_mut(device)
                .filter(|l| l.session == p.session)
            {
                l.rev = Some(rev);
            }
        }
        Op::Delete { session, rev } => {
            let rev = match rev {
                Some(r) => *r,
                None => {
                    let Some(e) = bucket.entry(&key).await.map_err(|e| e.to_string())? else {
                        return Ok(());
                    };
                    let ours = Presence::decode(&e.value).is_some_and(|p| {
                        p.node == shared.id
                            && p.incarnation == shared.incarnation
                            && p.session == *session
                    });
                    if !ours || e.operation != Operation::Put {
                        return Ok(());
                    }
                    e.revision
                }
            };
            // Fails when another node wrote the device's entry since: it
            // stays theirs.
            let _ = bucket.delete_expect_revision(&key, Some(rev)).await;
        }
    }
    Ok(())
}

/// Follows the bucket: the mirror that routes, and the newer session wins.
pub(super) async fn follow(shared: Arc<Shared>) {
    loop {
        match shared.presence.watch_with_history(">").await {
            Ok(mut watch) => {
                while let Some(entry) = watch.next().await {
                    match entry {
                        Ok(e) => apply_entry(&shared, &e),
                        Err(e) => {
                            tracing::debug!(error = %e, "cluster: presence watch failed");
                            break;
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "cluster: presence watch not started"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn apply_entry(shared: &Shared, e: &async_nats::jetstream::kv::Entry) {
    let state = &shared.presence_state;
    let Some(device) = unescape(&e.key) else {
        return;
    };
    if e.operation != Operation::Put {
        lock(&state.mirror).remove(&device);
        // Our own entry removed by someone else (a sweep that took us for
        // dead): write it again.
        let local = lock(&state.local);
        if let Some(l) = local.get(&device).filter(|l| l.rev.is_some()) {
            let put = Op::Put(entry(shared, l.session, l.since_ms));
            state.dirty.set(device.clone(), put);
        }
        return;
    }
    let Some(p) = Presence::decode(&e.value) else {
        shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    lock(&state.mirror).insert(device.clone(), (p.clone(), e.revision));
    let mut local = lock(&state.local);
    let Some(l) = local.get(&device) else {
        return;
    };
    let ours = p.node == shared.id && p.incarnation == shared.incarnation;
    if ours && p.session == l.session {
        return;
    }
    if ours {
        // An older session of ours, replaced here already.
        return;
    }
    let newer = (p.since_ms, p.node.as_str()) > (l.since_ms, shared.id.as_str());
    if newer {
        let session = l.session;
        local.remove(&device);
        drop(local);
        shared.stats.replaced.fetch_add(1, Ordering::Relaxed);
        if let Some(node) = shared.node() {
            node.replace(&device, session, &p.node);
        }
    } else {
        // An older session elsewhere overwrote ours: ours goes back, and
        // that node, seeing it, closes its own.
        let put = Op::Put(entry(shared, l.session, l.since_ms));
        drop(local);
        state.dirty.set(device, put);
    }
}

/// Where a device is connected, by the mirror, or by the bucket when the
/// mirror has not seen it yet.
pub(super) async fn locate(shared: &Shared, device: &str) -> Option<Presence> {
    let found = lock(&shared.presence_state.mirror)
        .get(device)
        .map(|(p, _)| p.clone());
    let p = match found {
        Some(p) => p,
        None => {
            let e = shared.presence.entry(escape(device)).await.ok()??;
            if e.operation != Operation::Put {
                return None;
            }
            Presence::decode(&e.value)?
        }
    };
    // An entry of this node's that names no session here is stale.
    (p.node != shared.id).then_some(p)
}

/// The mirror's answer only (no round trip).
pub(super) fn locate_now(shared: &Shared, device: &str) -> Option<Presence> {
    lock(&shared.presence_state.mirror)
        .get(device)
        .map(|(p, _)| p.clone())
        .filter(|p| p.node != shared.id)
}

/// Renews this node's lease, every third of it.
pub(super) async fn lease(shared: Arc<Shared>) {
    let key = escape(&shared.id);
    let value = codec::lease(shared.incarnation);
    loop {
        if shared.link.connected()
            && let Err(e) = shared.nodes.put(&key, value.clone()).await
        {
            tracing::debug!(error = %e, "cluster: lease not renewed");
        }
        tokio::time::sleep(shared.lease / 3).await;
    }
}

/// Deletes the entries of nodes whose lease is gone.
pub(super) async fn sweep(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(shared.lease / 2).await;
        if !shared.link.connected() {
            continue;
        }
        if let Err(e) = sweep_once(&shared).await {
            tracing::debug!(error = %e, "cluster: presence sweep failed");
        }
    }
}

async fn sweep_once(shared: &Shared) -> Result<(), String> {
    let keys: Vec<String> = shared
        .nodes
        .keys()
        .await
        .map_err(|e| e.to_string())?
        .filter_map(|k| async move { k.ok() })
        .collect()
        .await;
    let mut alive: HashMap<String, u64> = HashMap::new();
    for k in keys {
        if let Some(e) = shared
            .nodes
            .entry(k.clone())
            .await
            .map_err(|e| e.to_string())?
            && e.operation == Operation::Put
            && let (Some(node), Some(inc)) = (unescape(&k), codec::parse_lease(&e.value))
        {
            alive.insert(node, inc);
        }
    }
    let entries: Vec<(String, Presence, u64)> = lock(&shared.presence_state.mirror)
        .iter()
        .map(|(d, (p, r))| (d.clone(), p.clone(), *r))
        .collect();
    let mut dead: HashMap<(String, u64), Vec<(String, u64)>> = HashMap::new();
    for (device, p, rev) in entries {
        let ours = p.node == shared.id && p.incarnation == shared.incarnation;
        if ours || alive.get(&p.node) == Some(&p.incarnation) {
            continue;
        }
        dead.entry((p.node, p.incarnation))
            .or_default()
            .push((device, rev));
    }
    let mut remove = Vec::new();
    {
        let mut missing = lock(&shared.presence_state.missing);
        missing.retain(|k, _| dead.contains_key(k));
        for (k, devices) in dead {
            let n = missing.entry(k.clone()).or_insert(0);
            *n += 1;
            if *n >= 2 {
                tracing::info!(node = %k.0, devices = devices.len(), "cluster: node lease expired; forgetting its devices");
                remove.extend(devices);
            }
        }
    }
    for (device, rev) in remove {
        let _ = shared
            .presence
            .delete_expect_revision(escape(&device), Some(rev))
            .await;
    }
    Ok(())
}

/// Leaves: writes the removals queued (the sessions just closed), then
/// gives up the lease.
pub(super) async fn leave(shared: &Shared) {
    shared.presence_state.dirty.flushed(shared).await;
    if shared.link.connected() {
        let _ = shared.nodes.delete(escape(&shared.id)).await;
    }
}
