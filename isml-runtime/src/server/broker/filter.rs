//! Filters: an ordered chain that every message, request, publication and
//! device-to-device message from a session passes before it is dispatched
//! or published (`ServerBuilder::filter`). The first filter that refuses
//! decides; the refusal's [`Reason`] goes back to the sender (an error
//! response for a request, a `pubsub-reply` for a publication; a refused
//! one-way message is dropped), counts in the session's statistics
//! ([`SessionStats::filtered`](crate::session::SessionStats::filtered)), and
//! past the server's offence limit closes the session.
//!
//! Built in: [`MaxFrameSize`], [`RateLimit`], [`Rule`] and [`DenyDevices`].
//! Write your own by implementing [`Filter`].

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::acl::glob_match;
use crate::TopLevel;
use crate::pubsub::{Reason, Refusal};

/// What a filter looks at.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The sender's device id.
    pub device_id: &'a str,
    /// The principal the authenticator established, if any.
    pub principal: Option<&'a str>,
    /// What the sender is doing.
    pub target: Target<'a>,
    /// The message type id (the channel's type for publications).
    pub type_id: u32,
    /// The encoded message (frame-payload form).
    pub payload: &'a [u8],
}

/// What a filtered message is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A one-way message to the server.
    Message,
    /// A request to the server.
    Request,
    /// A publication.
    Publish {
        /// The channel id.
        channel: u32,
        /// The channel's full name.
        name: &'a str,
        /// The key, on keyed channels.
        key: Option<&'a str>,
    },
    /// A device-to-device message.
    SendTo {
        /// The target device.
        device: &'a str,
    },
}

/// A filter of the server's chain.
///
/// ```
/// use isml_runtime::pubsub::{Candidate, Filter, Reason, Refusal};
/// /// Refuses everything from devices whose id starts with "test-" at night.
/// struct NoTestsAtNight;
/// impl Filter for NoTestsAtNight {
///     fn check(&self, c: &Candidate<'_>) -> Result<(), Refusal> {
///         if c.device_id.starts_with("test-") {
///             return Err(Refusal::new(Reason::Custom(1000), "no tests at night"));
///         }
///         Ok(())
///     }
/// }
/// ```
pub trait Filter: Send + Sync + 'static {
    /// Lets the message pass, or refuses it.
    fn check(&self, candidate: &Candidate<'_>) -> Result<(), Refusal>;
}

impl<F> Filter for F
where
    F: Fn(&Candidate<'_>) -> Result<(), Refusal> + Send + Sync + 'static,
{
    fn check(&self, candidate: &Candidate<'_>) -> Result<(), Refusal> {
        self(candidate)
    }
}

/// The largest message per type id (payload bytes), with an optional limit
/// for every other type.
#[derive(Debug, Clone, Default)]
pub struct MaxFrameSize {
    default: Option<usize>,
    per_type: HashMap<u32, usize>,
}

impl MaxFrameSize {
    /// No limits yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The limit of types without one of their own.
    pub fn default_max(mut self, bytes: usize) -> Self {
        self.default = Some(bytes);
        self
    }

    /// The limit of one type.
    pub fn type_max<M: TopLevel>(self, bytes: usize) -> Self {
        self.type_id_max(M::TYPE_ID, bytes)
    }

    /// The limit of one type id.
    pub fn type_id_max(mut self, type_id: u32, bytes: usize) -> Self {
        self.per_type.insert(type_id, bytes);
        self
    }
}

impl Filter for MaxFrameSize {
    fn check(&self, c: &Candidate<'_>) -> Result<(), Refusal> {
        let max = self.per_type.get(&c.type_id).copied().or(self.default);
        match max {
            Some(max) if c.payload.len() > max => Err(Refusal::new(
                Reason::TooLarge,
                format!(
                    "message of type id {} is {} bytes, the limit is {max}",
                    c.type_id,
                    c.payload.len()
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// What a [`RateLimit`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    Type(u32),
    Channel(u32),
}

/// Rate limits per device, per message type or channel (token buckets, by
/// `governor`): beyond the rate a device's messages are refused with
/// [`Reason::RateLimited`]. Buckets of devices that stopped sending are
/// forgotten from time to time, so memory follows the active devices.
pub struct RateLimit {
    limits: HashMap<Scope, DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("scopes", &self.limits.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimit {
    /// No limits yet.
    pub fn new() -> Self {
        RateLimit {
            limits: HashMap::new(),
            checks: AtomicU64::new(0),
        }
    }

    /// Messages of type `M` per device: `burst` at once, then `per_second`.
    pub fn per_type<M: TopLevel>(self, per_second: u32, burst: u32) -> Self {
        self.per_type_id(M::TYPE_ID, per_second, burst)
    }

    /// Messages of a type id per device.
    pub fn per_type_id(mut self, type_id: u32, per_second: u32, burst: u32) -> Self {
        self.limits.insert(
            Scope::Type(type_id),
            RateLimiter::keyed(quota(per_second, burst)),
        );
        self
    }

    /// Publications on a channel per device.
    pub fn per_channel(mut self, channel: u32, per_second: u32, burst: u32) -> Self {
        self.limits.insert(
            Scope::Channel(channel),
            RateLimiter::keyed(quota(per_second, burst)),
        );
        self
    }
}

impl Filter for RateLimit {
    fn check(&self, c: &Candidate<'_>) -> Result<(), Refusal> {
        let scope = match c.target {
            Target::Publish { channel, .. }
                if self.limits.contains_key(&Scope::Channel(channel)) =>
            {
                Scope::Channel(channel)
            }
            _ => Scope::Type(c.type_id),
        };
        let Some(limiter) = self.limits.get(&scope) else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for l in self.limits.values() {
                l.retain_recent();
            }
        }
        match limiter.check_key(&c.device_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(_) => Err(Refusal::new(
                Reason::RateLimited,
                match scope {
                    Scope::Type(t) => format!("device {} sends type id {t} too fast", c.device_id),
                    Scope::Channel(ch) => {
                        format!("device {} publishes on channel {ch} too fast", c.device_id)
                    }
                },
            )),
        }
    }
}

type Predicate = Box<dyn Fn(&[u8]) -> Result<bool, String> + Send + Sync>;

/// A rule on the decoded fields of one message type:
/// `Rule::new::<StatusReport>(|m| m.voltage_mv < 60_000)`. Messages of the
/// type (publications on its channels included) for which it returns
/// `false` are refused with [`Reason::Rule`]; messages that do not decode
/// are refused with [`Reason::Malformed`].
pub struct Rule {
    type_id: u32,
    name: String,
    predicate: Predicate,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("type_id", &self.type_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Rule {
    /// A rule on messages of type `M`.
    pub fn new<M: TopLevel>(predicate: impl Fn(&M) -> bool + Send + Sync + 'static) -> Self {
        Rule {
            type_id: M::TYPE_ID,
            name: format!("rule on {}", M::NAME),
            predicate: Box::new(move |payload| {
                M::decode_slice(payload)
                    .map(|m| predicate(&m))
                    .map_err(|e| e.to_string())
            }),
        }
    }

    /// Names the rule in refusals.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl Filter for Rule {
    fn check(&self, c: &Candidate<'_>) -> Result<(), Refusal> {
        if c.type_id != self.type_id {
            return Ok(());
        }
        match (self.predicate)(c.payload) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Refusal::new(
                Reason::Rule,
                format!("{} refused the message", self.name),
            )),
            Err(e) => Err(Refusal::new(
                Reason::Malformed,
                format!("{}: the message does not decode: {e}", self.name),
            )),
        }
    }
}

/// A deny list of devices (globs: `*` any run of characters, `?` one).
#[derive(Debug, Clone, Default)]
pub struct DenyDevices {
    patterns: Vec<String>,
}

impl DenyDevices {
    /// Denies devices matching any of `patterns`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(patterns: I) -> Self {
        DenyDevices {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }
}

impl Filter for DenyDevices {
    fn check(&self, c: &Candidate<'_>) -> Result<(), Refusal> {
        if self.patterns.iter().any(|p| glob_match(p, c.device_id)) {
            return Err(Refusal::new(
                Reason::DeviceDenied,
                format!("device {} is on the deny list", c.device_id),
            ));
        }
        Ok(())
    }
}
