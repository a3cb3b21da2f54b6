//! The broker as its cluster reaches it (see `server::cluster`): the
//! publications of other nodes, delivered here, and the retained values
//! the cluster holds, kept here as a cache.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::store::{AckTo, StoreOp};
use super::{Broker, Retained, lock, read};
use crate::pubsub::ChannelInfo;
use crate::pubsub::frames::DeliverHead;

impl Broker {
    /// Every channel brokered here.
    pub(crate) fn channel_infos(&self) -> Vec<ChannelInfo> {
        let mut all: Vec<_> = self.channels.values().map(|c| c.info.clone()).collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// Hands a publication accepted by another node to the subscribers
    /// here. It was checked (ACL, filters, key) where it was published.
    pub(crate) fn deliver_remote(
        &self,
        channel: u32,
        key: Option<&str>,
        publisher: &str,
        timestamp_ms: u64,
        payload: Bytes,
    ) -> u64 {
        let Some(c) = self.channels.get(&channel) else {
            return 0;
        };
        if c.info.keyed != key.is_some() {
            return 0;
        }
        let frame = DeliverHead {
            replay: 0,
            channel,
            key,
            retained: false,
            publisher,
            timestamp_ms,
        }
        .frame(&payload);
        let subs = read(&c.subs);
        c.stats.published.fetch_add(1, Ordering::Relaxed);
        c.fan_out(&subs, &frame, key).0
    }

    /// Sets or removes a retained value as the cluster holds it, here and
    /// in the store, without delivering it.
    pub(crate) fn set_retained(&self, channel: u32, key: Option<&str>, value: Option<Retained>) {
        let Some(c) = self.channels.get(&channel) else {
            return;
        };
        if !c.info.retain || c.info.keyed != key.is_some() {
            return;
        }
        let k = key.map(str::to_owned);
        {
            // Under the subscribers' lock, as a publication: a subscriber
            // attaching now sees the value before or after, never half.
            let _subs = read(&c.subs);
            let mut retained = lock(&c.retained);
            match &value {
                Some(v) if retained.get(&k) == Some(v) => return,
                Some(v) => {
                    retained.insert(k.clone(), v.clone());
                }
                None => {
                    if retained.remove(&k).is_none() {
                        return;
                    }
                }
            }
        }
        if self.store.is_persistent() {
            let op = match value {
                Some(value) => StoreOp::Put {
                    channel,
                    key: k,
                    value,
                },
                None => StoreOp::Delete { channel, key: k },
            };
            // The store is a cache here: if its queue is full, the write
            // waits in a task rather than here.
            if let super::Published::Wait(fut) = self.store.submit(op, AckTo::None) {
                tokio::spawn(fut);
            }
        }
    }

    /// Every retained value held here.
    pub(crate) fn all_retained_values(&self) -> Vec<(u32, Option<String>, Retained)> {
        let mut all = Vec::new();
        for c in self.channels.values() {
            for (k, v) in lock(&c.retained).iter() {
                all.push((c.info.id, k.clone(), v.clone()));
            }
        }
        all
    }
}
