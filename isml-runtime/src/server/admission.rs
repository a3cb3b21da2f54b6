//! Admission of new connections, before they have authenticated.
//!
//! A connection that has not completed its handshake costs the server a task,
//! a socket and a small buffer, and proves nothing. Such connections are
//! *pending*; the server bounds them separately from the sessions (which
//! `max_connections` bounds), so that sockets that never say hello cannot
//! keep devices out:
//!
//! - at most `max_pending` pending connections in all, and `max_pending_per_address`
//!   from one source address (an IPv4 address, or the /64 prefix of an IPv6
//!   one). When a newcomer finds either cap reached, the **oldest** pending
//!   connection (of that address, or of all) is shed, never an
//!   authenticated session. A device that says hello at once completes
//!   before it becomes the oldest; a socket that stays silent is shed first;
//! - at most `handshake_rate` new connections per second from one address
//!   (a token bucket with a burst, by `governor`); beyond it the newcomer is
//!   refused at once;
//! - optionally, at most `max_connections_per_address` connections (pending
//!   and established) from one address; beyond it the newcomer is refused.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

/// A connection rate: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// New connections per second, sustained.
    pub per_second: u32,
    /// New connections allowed at once after a quiet period.
    pub burst: u32,
}

/// Limits on connections that have not authenticated yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AdmissionConfig {
    pub(crate) max_pending: usize,
    pub(crate) max_pending_per_address: usize,
    pub(crate) max_connections_per_address: Option<usize>,
    pub(crate) handshake_rate: Option<Rate>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            max_pending: 2048,
            max_pending_per_address: 16,
            max_connections_per_address: None,
            handshake_rate: Some(Rate {
                per_second: 20,
                burst: 40,
            }),
        }
    }
}

/// Where connections come from, for per-address limits: IPv4 addresses
/// (and IPv4-mapped IPv6 ones), and /64 prefixes of IPv6 addresses (one
/// subscriber usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    V4(u32),
    V6(u64),
}

impl Source {
    /// The source of a peer address as transports print it (`ip:port`);
    /// `None` for peers without an IP address (serial lines, in-memory).
    pub(crate) fn of_peer(peer: &str) -> Option<Source> {
        let addr: SocketAddr = peer.parse().ok()?;
        Some(match addr.ip().to_canonical() {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => Source::V6((u128::from(v6) >> 64) as u64),
        })
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The address opened connections faster than its rate.
    Rate,
    /// The address has its maximum of connections.
    PerAddress(usize),
}

#[derive(Default)]
struct State {
    next: u64,
    /// Pending connections by age: the first is the oldest.
    pending: BTreeMap<u64, (Option<Source>, CancellationToken)>,
    /// Pending connections per source, by age.
    pending_by_source: HashMap<Source, BTreeMap<u64, ()>>,
    /// Connections (pending and established) per source.
    open_by_source: HashMap<Source, usize>,
    shed: u64,
    refused_rate: u64,
    refused_address: u64,
}

/// The admission state of one server.
pub(crate) struct Admission {
    config: AdmissionConfig,
    state: Mutex<State>,
    rate: Option<DefaultKeyedRateLimiter<Source>>,
}

/// Counters of admission decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct AdmissionStats {
    pub(crate) pending: usize,
    pub(crate) shed: u64,
    pub(crate) refused_rate: u64,
    pub(crate) refused_address: u64,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // Every critical section leaves the maps consistent before it can panic.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig) -> Arc<Admission> {
        let rate = config.handshake_rate.map(|r| {
            let per_second = NonZeroU32::new(r.per_second.max(1)).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(r.burst.max(1)).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst))
        });
        Arc::new(Admission {
            config,
            state: Mutex::new(State::default()),
            rate,
        })
    }

    /// Admits a new connection as pending, shedding the oldest pending one
    /// (of its address first) when a cap is reached; or refuses it.
    pub(crate) fn admit(self: &Arc<Self>, source: Option<Source>) -> Result<Ticket, Refusal> {
        if let (Some(rate), Some(src)) = (&self.rate, source)
            && rate.check_key(&src).is_err()
        {
            lock(&self.state).refused_rate += 1;
            return Err(Refusal::Rate);
        }
        let shed = CancellationToken::new();
        let mut st = lock(&self.state);
        if let (Some(max), Some(src)) = (self.config.max_connections_per_address, source)
            && st.open_by_source.get(&src).copied().unwrap_or(0) >= max
        {
            st.refused_address += 1;
            return Err(Refusal::PerAddress(max));
        }
        if let Some(src) = source {
            let of_source = st.pending_by_source.get(&src).map_or(0, BTreeMap::len);
            if of_source >= self.config.max_pending_per_address.max(1) {
                let oldest = st
                    .pending_by_source
                    .get(&src)
                    .and_then(|m| m.keys().next().copied());
                if let Some(id) = oldest {
                    st.shed_one(id);
                }
            }
        }
        if st.pending.len() >= self.config.max_pending.max(1)
            && let Some(id) = st.pending.keys().next().copied()
        {
            st.shed_one(id);
        }
        let id = st.next;
        st.next += 1;
        st.pending.insert(id, (source, shed.clone()));
        if let Some(src) = source {
            st.pending_by_source.entry(src).or_default().insert(id, ());
            *st.open_by_source.entry(src).or_default() += 1;
        }
        drop(st);
        if id % 4096 == 4095
            && let Some(rate) = &self.rate
        {
            // Forget addresses whose bucket is full again, so that the
            // limiter's memory follows the active addresses only.
            rate.retain_recent();
            rate.shrink_to_fit();
        }
        Ok(Ticket {
            admission: self.clone(),
            id,
            source,
            shed: Some(shed),
        })
    }

    pub(crate) fn stats(&self) -> AdmissionStats {
        let st = lock(&self.state);
        AdmissionStats {
            pending: st.pending.len(),
            shed: st.shed,
            refused_rate: st.refused_rate,
            refused_address: st.refused_address,
        }
    }
}

impl State {
    fn shed_one(&mut self, id: u64) {
        if let Some((source, token)) = self.pending.remove(&id) {
            if let Some(src) = source {
                self.forget_pending(src, id);
            }
            token.cancel();
            self.shed += 1;
        }
    }

    fn forget_pending(&mut self, src: Source, id: u64) {
        if let Some(m) = self.pending_by_source.get_mut(&src) {
            m.remove(&id);
            if m.is_empty() {
                self.pending_by_source.remove(&src);
            }
        }
    }
}

/// An admitted connection. While pending it may be shed ([`Ticket::shed`]
/// resolves); [`Ticket::established`] ends that. Dropping it (the
/// connection ended) releases its place.
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    source: Option<Source>,
    /// Cancelled to shed the connection; let go once it is established.
    shed: Option<CancellationToken>,
}

impl Ticket {
    /// Resolves when the connection is shed to make room for a newer one.
    pub(crate) async fn shed(&self) {
        match &self.shed {
            Some(token) => token.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// The token [`Ticket::shed`] waits on, for a select loop that cannot
    /// borrow the ticket; `None` once established.
    #[cfg(feature = "tcp")]
    pub(crate) fn shed_token(&self) -> Option<CancellationToken> {
        self.shed.clone()
    }

    /// The connection has authenticated: it is no longer pending, and can
    /// no longer be shed.
    pub(crate) fn established(&mut self) {
        if self.shed.take().is_some() {
            let mut st = lock(&self.admission.state);
            st.pending.remove(&self.id);
            if let Some(src) = self.source {
                st.forget_pending(src, self.id);
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut st = lock(&self.admission.state);
        if self.shed.is_some() {
            st.pending.remove(&self.id);
            if let Some(src) = self.source {
                st.forget_pending(src, self.id);
            }
        }
        if let Some(src) = self.source
            && let Some(n) = st.open_by_source.get_mut(&src)
        {
            *n -= 1;
            if *n == 0 {
                st.open_by_source.remove(&src);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_pending: usize, per_address: usize) -> AdmissionConfig {
        AdmissionConfig {
            max_pending,
            max_pending_per_address: per_address,
            max_connections_per_address: None,
            handshake_rate: None,
        }
    }

    fn src(n: u32) -> Option<Source> {
        Some(Source::V4(n))
    }

    fn is_shed(t: &Ticket) -> bool {
        t.shed.as_ref().is_some_and(CancellationToken::is_cancelled)
    }

    #[test]
    fn sources_are_addresses_and_v6_prefixes() {
        assert_eq!(
            Source::of_peer("10.0.0.7:4000"),
            Some(Source::V4(0x0a00_0007))
        );
        assert_eq!(
            Source::of_peer("[::ffff:10.0.0.7]:1"),
            Some(Source::V4(0x0a00_0007))
        );
        assert_eq!(
            Source::of_peer("[2001:db8:1:2::5]:1"),
            Source::of_peer("[2001:db8:1:2:ffff::9]:2")
        );
        assert_ne!(
            Source::of_peer("[2001:db8:1:2::5]:1"),
            Source::of_peer("[2001:db8:1:3::5]:1")
        );
        assert_eq!(Source::of_peer("/dev/ttyUSB0"), None);
        assert_eq!(Source::of_peer("mem-client-3"), None);
    }

    #[test]
    fn the_oldest_pending_of_the_address_is_shed_first() {
        let a = Admission::new(config(100, 2));
        let t1 = a.admit(src(1)).unwrap();
        let t2 = a.admit(src(1)).unwrap();
        let other = a.admit(src(2)).unwrap();
        assert_eq!(a.stats().pending, 3);
        let t3 = a.admit(src(1)).unwrap();
        assert!(is_shed(&t1));
        assert!(!is_shed(&t2) && !is_shed(&t3) && !is_shed(&other));
        let s = a.stats();
        assert_eq!((s.pending, s.shed), (3, 1));
        drop(t1);
        assert_eq!(a.stats().pending, 3);
    }

    #[test]
    fn the_globally_oldest_pending_is_shed_when_all_are_taken() {
        let a = Admission::new(config(3, 10));
        let t: Vec<_> = (1..=3).map(|n| a.admit(src(n)).unwrap()).collect();
        let t4 = a.admit(src(4)).unwrap();
        assert!(is_shed(&t[0]) && !is_shed(&t[1]) && !is_shed(&t[2]) && !is_shed(&t4));
        assert_eq!(a.stats().pending, 3);
    }

    #[test]
    fn established_connections_are_never_shed_and_free_their_place() {
        let a = Admission::new(config(2, 2));
        let mut dev = a.admit(src(1)).unwrap();
        dev.established();
        assert_eq!(a.stats().pending, 0);
        let p: Vec<_> = (0..5).map(|_| a.admit(src(1)).unwrap()).collect();
        assert!(!is_shed(&dev));
        assert_eq!(p.iter().filter(|t| is_shed(t)).count(), 3);
        assert_eq!(a.stats().pending, 2);
        drop(p);
        assert_eq!(a.stats().pending, 0);
    }

    #[test]
    fn sources_without_an_address_share_only_the_global_cap() {
        let a = Admission::new(config(3, 1));
        let t: Vec<_> = (0..3).map(|_| a.admit(None).unwrap()).collect();
        assert!(t.iter().all(|t| !is_shed(t)));
        let _t4 = a.admit(None).unwrap();
        assert!(is_shed(&t[0]));
    }

    #[test]
    fn connections_per_address_are_refused_beyond_the_cap() {
        let mut c = config(100, 100);
        c.max_connections_per_address = Some(2);
        let a = Admission::new(c);
        let mut t1 = a.admit(src(1)).unwrap();
        t1.established();
        let t2 = a.admit(src(1)).unwrap();
        assert_eq!(a.admit(src(1)).err(), Some(Refusal::PerAddress(2)));
        assert!(a.admit(src(2)).is_ok());
        drop(t2);
        let _t3 = a.admit(src(1)).unwrap();
        assert_eq!(a.stats().refused_address, 1);
    }

    #[test]
    fn the_rate_is_per_address_with_a_burst() {
        let mut c = config(1000, 1000);
        c.handshake_rate = Some(Rate {
            per_second: 1,
            burst: 3,
        });
        let a = Admission::new(c);
        let ok: Vec<_> = (0..3).map(|_| a.admit(src(1)).unwrap()).collect();
        assert_eq!(a.admit(src(1)).err(), Some(Refusal::Rate));
        // Another address has its own bucket.
        assert!(a.admit(src(2)).is_ok());
        assert_eq!(a.stats().refused_rate, 1);
        assert_eq!(ok.len(), 3);
    }
}
