//! The server's table of reliable session states, by resume token
//! (`docs/reliability.md`): a state lives while a session carries it and
//! for the session-expiry time after its connection broke; a client that
//! reconnects within that time with the state's token (and the same device
//! id, after authenticating again) resumes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::session::{Link, LinkStats};

/// Settings of the resume table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ResumeConfig {
    /// How long a state is kept after its connection broke (zero: not at
    /// all; the client subscribes again on its next session).
    pub(crate) expiry: Duration,
    /// States kept without a connection at most; beyond it the one detached
    /// longest ago expires at once.
    pub(crate) max_detached: usize,
}

impl Default for ResumeConfig {
    fn default() -> Self {
        ResumeConfig {
            expiry: Duration::from_secs(60),
            max_detached: 16 * 1024,
        }
    }
}

struct Entry {
    link: Arc<Link>,
    device: String,
    /// Counts the sessions that claimed the state: only the latest one's
    /// end detaches it.
    claims: u64,
    /// When the last connection broke; `None` while a session carries it.
    detached: Option<Instant>,
}

/// What a hello's resume section got.
pub(crate) struct Claimed {
    pub(crate) link: Arc<Link>,
    /// Which claim of the state this is (see [`Resumes::detached`]).
    pub(crate) claim: u64,
    /// The token the state goes by from now on.
    pub(crate) token: [u8; 16],
    pub(crate) resumed: bool,
}

/// Counters of the resume table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResumeStats {
    /// Reliable states kept now (with or without a connection).
    pub states: usize,
    /// Of them, without a connection (waiting to be resumed or to expire).
    pub detached: usize,
    /// Sessions that resumed a state.
    pub resumed: u64,
    /// Resume tokens presented that named no state (expired, unknown, or of
    /// another device): those clients got a new state.
    pub not_found: u64,
    /// States expired.
    pub expired: u64,
}

#[derive(Default)]
struct Table {
    entries: HashMap<[u8; 16], Entry>,
    /// The token of each device's state.
    by_device: HashMap<String, [u8; 16]>,
    stats: ResumeStats,
}

impl Table {
    fn remove(&mut self, token: &[u8; 16]) -> Option<Entry> {
        let e = self.entries.remove(token)?;
        if self.by_device.get(&e.device) == Some(token) {
            self.by_device.remove(&e.device);
        }
        Some(e)
    }
}

/// The table.
pub(crate) struct Resumes {
    config: ResumeConfig,
    table: Arc<Mutex<Table>>,
}

fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

impl Resumes {
    pub(crate) fn new(config: ResumeConfig) -> Self {
        Resumes {
            config,
            table: Arc::new(Mutex::new(Table::default())),
        }
    }

    pub(crate) fn expiry(&self) -> Duration {
        self.config.expiry
    }

    /// Whether `token` names a state kept for `device` (one a hello would
    /// resume).
    pub(crate) fn knows(&self, token: &[u8; 16], device: &str) -> bool {
        lock(&self.table)
            .entries
            .get(token)
            .is_some_and(|e| e.device == device && e.link.ended().is_none())
    }

    /// The state a hello names, if it is kept for `device`; otherwise the
    /// device's last state under a new token, not resumed (the client lost
    /// its side: what the server had not had acknowledged is renumbered and
    /// sent again), or a new one. Either way the state is marked as carried
    /// by a session.
    pub(crate) fn claim(&self, token: Option<[u8; 16]>, device: &str, budget: usize) -> Claimed {
        let mut t = lock(&self.table);
        if let Some(token) = token {
            let found = t
                .entries
                .get_mut(&token)
                .filter(|e| e.device == device && e.link.ended().is_none());
            if let Some(e) = found {
                e.detached = None;
                e.claims += 1;
                let (link, claim) = (e.link.clone(), e.claims);
                t.stats.resumed += 1;
                return Claimed {
                    link,
                    claim,
                    token,
                    resumed: true,
                };
            }
            t.stats.not_found += 1;
        }
        let mut token = Link::random_token();
        while t.entries.contains_key(&token) {
            token = Link::random_token();
        }
        let previous = t.by_device.get(device).copied();
        let (link, claim) = match previous.and_then(|p| t.remove(&p)) {
            Some(e) if e.link.ended().is_none() => (e.link, e.claims + 1),
            _ => (Link::new(token, false, budget), 1),
        };
        t.entries.insert(
            token,
            Entry {
                link: link.clone(),
                device: device.to_owned(),
                claims: claim,
                detached: None,
            },
        );
        t.by_device.insert(device.to_owned(), token);
        Claimed {
            link,
            claim,
            token,
            resumed: false,
        }
    }

    /// The session of claim `claim` of `link` ended: unless a later session
    /// claimed the state meanwhile, it is kept for the expiry time (or
    /// dropped at once when `keep` is false: the client closed the session
    /// itself).
    pub(crate) fn detached(&self, link: &Arc<Link>, claim: u64, keep: bool) {
        let now = Instant::now();
        let mut t = lock(&self.table);
        let token = link.token();
        let ours = t
            .entries
            .get(&token)
            .is_some_and(|e| Arc::ptr_eq(&e.link, link) && e.claims == claim);
        if !ours {
            // Claimed again since (or gone): not this session's to detach.
            return;
        }
        if !keep || self.config.expiry.is_zero() {
            if t.remove(&token).is_some() {
                link.end("session closed");
            }
            return;
        }
        let Some(e) = t.entries.get_mut(&token) else {
            return;
        };
        e.detached = Some(now);
        // Bounded: beyond the cap the state detached longest ago goes.
        let detached = t.entries.values().filter(|e| e.detached.is_some()).count();
        if detached > self.config.max_detached {
            let oldest = t
                .entries
                .iter()
                .filter_map(|(k, e)| e.detached.map(|d| (d, *k)))
                .min();
            if let Some((_, k)) = oldest
                && let Some(e) = t.remove(&k)
            {
                t.stats.expired += 1;
                e.link
                    .end("session expired: too many sessions waiting to be resumed");
            }
        }
        drop(t);
        let table = self.table.clone();
        let expiry = self.config.expiry;
        tokio::spawn(async move {
            tokio::time::sleep(expiry).await;
            let mut t = lock(&table);
            let expired = t
                .entries
                .get(&token)
                .is_some_and(|e| e.detached == Some(now));
            if expired && let Some(e) = t.remove(&token) {
                t.stats.expired += 1;
                drop(t);
                e.link
                    .end(&format!("session expired: not resumed within {:?}", expiry));
            }
        });
    }

    pub(crate) fn stats(&self) -> ResumeStats {
        let t = lock(&self.table);
        ResumeStats {
            states: t.entries.len(),
            detached: t.entries.values().filter(|e| e.detached.is_some()).count(),
            ..t.stats
        }
    }

    /// The reliable state of `device`'s last session, if kept.
    pub(crate) fn link_stats(&self, device: &str) -> Option<LinkStats> {
        let t = lock(&self.table);
        let token = t.by_device.get(device)?;
        t.entries.get(token).map(|e| e.link.stats())
    }
}
