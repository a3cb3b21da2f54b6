//! Writes waiting for a bucket, the newest per key: what the retained and
//! presence writers share. Bounded by the keys (channels and keys retained
//! here, devices connected here), whatever the rate of changes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use super::Shared;

pub(crate) struct Pending<Op> {
    map: Mutex<HashMap<String, Op>>,
    changed: Notify,
}

impl<Op> Default for Pending<Op> {
    fn default() -> Self {
        Pending {
            map: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        }
    }
}

impl<Op> Pending<Op> {
    /// The waiting writes (to inspect or change several at once; call
    /// [`Pending::wake`] after a change).
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, Op>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `op` for `key`, replacing what waited for it.
    pub(crate) fn set(&self, key: String, op: Op) {
        self.lock().insert(key, op);
        self.wake();
    }

    pub(crate) fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// Wakes the writer (a change, or the link is back).
    pub(crate) fn wake(&self) {
        self.changed.notify_one();
    }

    /// Writes what waits with `apply` while the link is up, for ever; a
    /// write that fails waits again (unless a newer one came meanwhile)
    /// and is retried shortly.
    pub(crate) async fn write<F, Fut>(&self, shared: &Shared, what: &str, apply: F)
    where
        F: Fn(String, Op) -> Fut,
        Fut: std::future::Future<Output = (String, Op, Result<(), String>)>,
    {
        loop {
            let changed = self.changed.notified();
            if shared.link.connected() {
                let batch: Vec<(String, Op)> = self.lock().drain().collect();
                let mut failed = false;
                for (key, op) in batch {
                    let (key, op, r) = apply(key, op).await;
                    if let Err(e) = r {
                        tracing::debug!(key = %key, error = %e, "cluster: {what} not written yet");
                        self.lock().entry(key).or_insert(op);
                        failed = true;
                    }
                }
                if failed {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            }
            changed.await;
        }
    }

    /// Waits (2 s at most, while the link is up) until nothing waits.
    pub(crate) async fn flushed(&self, shared: &Shared) {
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while shared.link.connected()
            && !self.lock().is_empty()
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
