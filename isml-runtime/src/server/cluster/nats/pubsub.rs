//! Publications across nodes. Every accepted publication goes out on its
//! subject (`isml.<package>.<channel>[.<key>]`); a node subscribes to a
//! subject only while it has local subscribers of it, and hands what it
//! receives to them. NATS core delivery: at most once.
//!
//! Subscriptions never overlap, so a publication reaches a node once: while
//! a channel has a subscriber of all its keys, the node holds the channel's
//! wildcard subject only; otherwise one subject per key subscribed. A
//! change unsubscribes first, then subscribes (in that order on the one
//! connection), so nothing is delivered twice; what is published between
//! the two may be missed, as any at-most-once delivery may.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, oneshot};

use super::Shared;
use super::link;
use crate::pubsub::ChannelInfo;
use crate::server::cluster::codec::Envelope;
use crate::server::cluster::{Publication, subject};

/// What the local subscribers want, by channel id.
#[derive(Default)]
pub(crate) struct Interest {
    wanted: Mutex<HashMap<u32, Wanted>>,
    changed: Notify,
}

struct Wanted {
    info: ChannelInfo,
    all: bool,
    keys: HashSet<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends an accepted publication to the other nodes (not while the link is
/// down: live values are not worth delivering late; retained ones are
/// written to the bucket when it returns).
pub(super) fn published(shared: &Shared, p: &Publication<'_>) {
    if !shared.link.connected() {
        shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let payload = Envelope::encode(
        p.channel.id,
        &shared.id,
        p.publisher,
        p.timestamp_ms,
        p.payload,
    );
    if link::publish(shared, subject::subject(&p.channel.name, p.key), payload) {
        shared.stats.published.fetch_add(1, Ordering::Relaxed);
    } else {
        shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Records a change of local interest, for `manage` to act on.
pub(super) fn interest(shared: &Shared, channel: &ChannelInfo, key: Option<&str>, present: bool) {
    let mut wanted = lock(&shared.interest.wanted);
    let w = wanted.entry(channel.id).or_insert_with(|| Wanted {
        info: channel.clone(),
        all: false,
        keys: HashSet::new(),
    });
    match (key, present) {
        (None, p) => w.all = p,
        (Some(k), true) => {
            w.keys.insert(k.to_owned());
        }
        (Some(k), false) => {
            w.keys.remove(k);
        }
    }
    if !w.all && w.keys.is_empty() {
        wanted.remove(&channel.id);
    }
    drop(wanted);
    shared.interest.changed.notify_one();
}

/// A subscription's task, and how to stop it: the sender gets a channel
/// on which the task says it has unsubscribed.
struct Active {
    stop: oneshot::Sender<oneshot::Sender<()>>,
}

/// Keeps the subjects subscribed equal to what the local subscribers want.
pub(super) async fn manage(shared: Arc<Shared>) {
    let mut active: HashMap<String, Active> = HashMap::new();
    loop {
        let changed = shared.interest.changed.notified();
        let desired: HashMap<String, (ChannelInfo, bool)> = {
            let wanted = lock(&shared.interest.wanted);
            let mut d = HashMap::new();
            for w in wanted.values() {
                if w.all || !w.info.keyed {
                    d.insert(
                        subject::channel_filter(&w.info.name, w.info.keyed),
                        (w.info.clone(), w.info.keyed),
                    );
                } else {
                    for k in &w.keys {
                        d.insert(
                            subject::subject(&w.info.name, Some(k)),
                            (w.info.clone(), true),
                        );
                    }
                }
            }
            d
        };
        // Unsubscribe first: the two never overlap.
        let gone: Vec<String> = active
            .keys()
            .filter(|s| !desired.contains_key(*s))
            .cloned()
            .collect();
        for s in gone {
            if let Some(a) = active.remove(&s) {
                let (done, wait) = oneshot::channel();
                if a.stop.send(done).is_ok() {
                    let _ = wait.await;
                }
            }
        }
        for (s, (info, keyed)) in desired {
            if active.contains_key(&s) {
                continue;
            }
            match shared.client.subscribe(s.clone()).await {
                Ok(sub) => {
                    let (stop, stopped) = oneshot::channel();
                    let sh = shared.clone();
                    shared.spawn(receive(sh, info, keyed, sub, stopped));
                    active.insert(s, Active { stop });
                }
                Err(e) => {
                    tracing::warn!(subject = %s, error = %e, "cluster: cannot subscribe; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    shared.interest.changed.notify_one();
                }
            }
        }
        changed.await;
    }
}

/// Delivers what one subscription receives, until told to stop.
async fn receive(
    shared: Arc<Shared>,
    info: ChannelInfo,
    keyed: bool,
    mut sub: async_nats::Subscriber,
    mut stop: oneshot::Receiver<oneshot::Sender<()>>,
) {
    loop {
        tokio::select! {
            biased;
            done = &mut stop => {
                let _ = sub.unsubscribe().await;
                if let Ok(done) = done {
                    let _ = done.send(());
                }
                return;
            }
            m = sub.next() => {
                let Some(m) = m else { return };
                deliver(&shared, &info, keyed, &m);
            }
        }
    }
}

fn deliver(shared: &Shared, info: &ChannelInfo, keyed: bool, m: &async_nats::Message) {
    let Some(env) = Envelope::decode(&m.payload).filter(|e| e.channel == info.id) else {
        // Another layout, or a node whose schemas give the name another id.
        shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(subject = %m.subject, "cluster: publication dropped (malformed, or another channel id)");
        return;
    };
    if env.origin == shared.id {
        return;
    }
    let key = if keyed {
        match subject::key_of(&m.subject) {
            Some(k) => Some(k),
            None => {
                shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    } else {
        None
    };
    let Some(node) = shared.node() else {
        return;
    };
    shared.stats.received.fetch_add(1, Ordering::Relaxed);
    node.deliver(
        info.id,
        key.as_deref(),
        &env.value.publisher,
        env.value.timestamp_ms,
        env.value.payload,
    );
}
