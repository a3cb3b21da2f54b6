//! Publish/subscribe: typed channels brokered by the server.
//!
//! A schema declares channels (`channel telemetry: StatusReport = 1 [retain];`);
//! the code generator makes one type per channel implementing [`Channel`].
//! Clients publish to and subscribe to channels through their [`Session`]
//! (or [`Client`](crate::Client)); the [`Server`](crate::Server) runs the
//! broker and has the same methods for the server process itself.
//!
//! ```no_run
//! # #[cfg(all(feature = "derive", feature = "runtime"))]
//! # async fn demo(session: isml_runtime::Session) -> Result<(), Box<dyn std::error::Error>> {
//! use isml_runtime::pubsub::Channel;
//! # #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
//! # #[isml(id = 0x10)]
//! # struct StatusReport { #[isml(tag = 1)] voltage_mv: u32 }
//! struct Telemetry;
//! impl Channel for Telemetry {
//!     type Message = StatusReport;
//!     const ID: u32 = 1;
//!     const NAME: &'static str = "charging.v1.telemetry";
//!     const RETAIN: bool = true;
//!     const KEYED: bool = false;
//! }
//! let mut sub = session.subscribe::<Telemetry>().await?;
//! session.publish::<Telemetry>(&StatusReport { voltage_mv: 230_000 }).await?;
//! while let Some(p) = sub.next().await {
//!     println!("{} from {:?} (retained: {})", p.value.voltage_mv, p.publisher, p.retained);
//! }
//! # Ok(()) }
//! ```
//!
//! The wire frames are link frames with opcodes 8 to 11 (`docs/wire-format.md`
//! §2.8); the model, the retained values, ordering, the slow-subscriber
//! policy, filters and ACL files are described in `docs/pubsub.md`.
//!
//! [`Session`]: crate::Session

// The channel types are always available (generated code implements
// `Channel` in every build); the sessions' side needs the runtime.
#[cfg(feature = "runtime")]
mod api;
#[cfg(feature = "runtime")]
pub(crate) mod frames;
#[cfg(feature = "runtime")]
pub(crate) mod local;
#[cfg(feature = "runtime")]
pub(crate) mod subscription;

use alloc::borrow::ToOwned;
use alloc::string::String;
use core::fmt;

#[cfg(feature = "runtime")]
pub use crate::server::broker::acl::{Acl, AclError, AclRule, Action};
#[cfg(feature = "runtime")]
pub use crate::server::broker::filter::{
    Candidate, DenyDevices, Filter, MaxFrameSize, RateLimit, Rule, Target,
};
#[cfg(feature = "runtime")]
pub use crate::server::broker::{BrokerStats, ChannelStats, SubscriberStats};
#[cfg(feature = "runtime")]
pub use subscription::{RawSubscription, Subscription};

use crate::TopLevel;

/// A publish/subscribe channel: a name, an id on the wire, the message type
/// it carries, and whether the broker keeps its last value.
///
/// Generated for every `channel` of a schema (in the package module's
/// `channels` module); implement it by hand for derived types.
pub trait Channel: Send + Sync + 'static {
    /// The type of the values published on the channel.
    type Message: TopLevel + Send + Sync;
    /// The channel id on the wire (unique within the schemas a server loads).
    const ID: u32;
    /// The full name, `package.name` (`charging.v1.telemetry`), used by ACLs
    /// and logs.
    const NAME: &'static str;
    /// The broker keeps the last value (per key, for keyed channels) and
    /// sends it to every new subscriber first.
    const RETAIN: bool;
    /// Publications carry a string key (a variable name, a device id);
    /// retained values are kept per key.
    const KEYED: bool;

    /// The type-erased description, for servers and tools.
    fn info() -> ChannelInfo {
        ChannelInfo {
            id: Self::ID,
            name: Self::NAME.to_owned(),
            type_id: <Self::Message as TopLevel>::TYPE_ID,
            fingerprint: <Self::Message as TopLevel>::fingerprint(),
            retain: Self::RETAIN,
            keyed: Self::KEYED,
        }
    }
}

/// Declares a channel type for Rust-first messages: what the code generator
/// emits for a schema's `channel`, for types that use the derives.
///
/// `channel! { pub Name: MessageType = id, "package.name", [retain, keyed]; }`
/// (the flags are optional). [`export_schema_with_channels`] writes it back
/// as a schema `channel` line.
///
/// ```
/// # #[cfg(feature = "derive")] {
/// use isml_runtime::pubsub::Channel;
/// #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
/// #[isml(id = 0x0C, package = "charging.v1")]
/// pub struct Variable { #[isml(tag = 1)] value: i64 }
/// isml_runtime::channel! {
///     /// Named variables, the last value per key retained.
///     pub Variables: Variable = 3, "charging.v1.variables", [retain, keyed];
/// }
/// let info = Variables::info();
/// assert_eq!((info.retain, info.keyed, info.type_id), (true, true, 0x0C));
/// # }
/// ```
///
/// [`export_schema_with_channels`]: crate::descriptor::export_schema_with_channels
#[macro_export]
macro_rules! channel {
    ($(#[$meta:meta])* $vis:vis $name:ident : $msg:ty = $id:literal, $full:literal $(, [$($flag:ident),* $(,)?])? $(;)?) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        $vis struct $name;

        $($($crate::__channel_flag_check!($flag);)*)?

        #[automatically_derived]
        impl $crate::pubsub::Channel for $name {
            type Message = $msg;
            const ID: u32 = $id;
            const NAME: &'static str = $full;
            const RETAIN: bool = $crate::__channel_flag!(retain $($($flag)*)?);
            const KEYED: bool = $crate::__channel_flag!(keyed $($($flag)*)?);
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __channel_flag {
    (retain retain $($rest:ident)*) => { true };
    (keyed keyed $($rest:ident)*) => { true };
    ($want:ident $other:ident $($rest:ident)*) => { $crate::__channel_flag!($want $($rest)*) };
    ($want:ident) => { false };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __channel_flag_check {
    (retain) => {};
    (keyed) => {};
    ($other:ident) => {
        ::core::compile_error!(::core::concat!(
            "unknown channel flag `",
            ::core::stringify!($other),
            "`: expected `retain` or `keyed`"
        ));
    };
}

/// A channel described at run time: what a server that loads schemas at run
/// time (and so has no Rust type per channel) needs to broker it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelInfo {
    /// The channel id on the wire.
    pub id: u32,
    /// The full name (`charging.v1.telemetry`).
    pub name: String,
    /// The type id of the message type it carries.
    pub type_id: u32,
    /// The fingerprint of that message type (wire format §8).
    pub fingerprint: u64,
    /// Whether the broker keeps the last value.
    pub retain: bool,
    /// Whether publications carry a key.
    pub keyed: bool,
}

/// One value received on a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication<T> {
    /// The value.
    pub value: T,
    /// The key, on keyed channels.
    pub key: Option<String>,
    /// The publisher's device id, or `""` when the server itself published.
    pub publisher: String,
    /// When the broker accepted the publication (milliseconds since the Unix epoch).
    pub timestamp_ms: u64,
    /// A retained value sent on subscribing, rather than a live publication.
    pub retained: bool,
}

/// One value received on a channel, not decoded: for tools and servers
/// without Rust types for the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPublication {
    /// The channel id.
    pub channel: u32,
    /// The key, on keyed channels.
    pub key: Option<String>,
    /// The publisher's device id, or `""` for the server.
    pub publisher: String,
    /// When the broker accepted the publication (milliseconds since the Unix epoch).
    pub timestamp_ms: u64,
    /// A retained value sent on subscribing.
    pub retained: bool,
    /// The encoded message (frame-payload form, wire format §5).
    pub payload: bytes::Bytes,
}

/// What the broker answered to an accepted publication.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Accepted and handed to the subscribers; on a retained channel without
    /// a data directory, kept in the broker's memory.
    Accepted,
    /// Accepted, and its retained value committed durably to the broker's
    /// store: it survives a crash of the server.
    Persisted,
}

/// Why the broker (or the server's filters) refused something. Each reason
/// has a code on the wire (the `pubsub-reply` frame, wire format §2.8).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The ACL does not allow it.
    Denied,
    /// No such channel on this server.
    UnknownChannel,
    /// Larger than the server's limit for the type.
    TooLarge,
    /// Over the rate limit of the device for the type or channel.
    RateLimited,
    /// A payload rule on the decoded message refused it.
    Rule,
    /// The device is on the server's deny list.
    DeviceDenied,
    /// A key on an unkeyed channel, or none on a keyed one.
    Key,
    /// The store could not keep the retained value.
    Store,
    /// `send_to` named a device that is not connected.
    UnknownDevice,
    /// The payload does not decode as the channel's type, or a frame was malformed.
    Malformed,
    /// The peer runs no broker.
    NoBroker,
    /// The session or server is closing.
    Closing,
    /// A user filter's own code (1000 and above).
    Custom(u64),
}

impl Reason {
    /// The code on the wire.
    pub const fn code(self) -> u64 {
        match self {
            Reason::Denied => 1,
            Reason::UnknownChannel => 2,
            Reason::TooLarge => 3,
            Reason::RateLimited => 4,
            Reason::Rule => 5,
            Reason::DeviceDenied => 6,
            Reason::Key => 7,
            Reason::Store => 8,
            Reason::UnknownDevice => 9,
            Reason::Malformed => 10,
            Reason::NoBroker => 11,
            Reason::Closing => 12,
            Reason::Custom(c) => c,
        }
    }

    /// The reason of a code on the wire (codes without a name are [`Reason::Custom`]).
    pub const fn from_code(code: u64) -> Reason {
        match code {
            1 => Reason::Denied,
            2 => Reason::UnknownChannel,
            3 => Reason::TooLarge,
            4 => Reason::RateLimited,
            5 => Reason::Rule,
            6 => Reason::DeviceDenied,
            7 => Reason::Key,
            8 => Reason::Store,
            9 => Reason::UnknownDevice,
            10 => Reason::Malformed,
            11 => Reason::NoBroker,
            12 => Reason::Closing,
            c => Reason::Custom(c),
        }
    }

    /// The closest session error code (wire format §2.4), for refusals of
    /// ordinary messages and requests, which answer with an error response.
    #[cfg(feature = "runtime")]
    pub const fn error_code(self) -> u64 {
        use crate::session::codes;
        match self {
            Reason::Denied | Reason::DeviceDenied | Reason::Rule => codes::PERMISSION_DENIED,
            Reason::TooLarge | Reason::RateLimited | Reason::Store => codes::RESOURCE_EXHAUSTED,
            Reason::UnknownChannel | Reason::UnknownDevice => codes::UNKNOWN_TYPE,
            Reason::Malformed | Reason::Key => codes::MALFORMED,
            Reason::NoBroker | Reason::Closing => codes::UNAVAILABLE,
            Reason::Custom(c) => c,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Reason::Denied => "denied by the ACL",
            Reason::UnknownChannel => "unknown channel",
            Reason::TooLarge => "too large",
            Reason::RateLimited => "rate limited",
            Reason::Rule => "refused by a payload rule",
            Reason::DeviceDenied => "device denied",
            Reason::Key => "key mismatch",
            Reason::Store => "store failure",
            Reason::UnknownDevice => "unknown device",
            Reason::Malformed => "malformed",
            Reason::NoBroker => "no broker",
            Reason::Closing => "closing",
            Reason::Custom(c) => return write!(f, "refused by a filter (code {c})"),
        };
        f.write_str(s)
    }
}

/// A refusal: the reason and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (code {}): {message}", reason.code())]
pub struct Refusal {
    /// Why.
    pub reason: Reason,
    /// Details.
    pub message: String,
}

impl Refusal {
    /// A refusal with a reason and a message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            message: message.into(),
        }
    }
}

/// Why a publication (or a `send_to` message, or a delete) failed.
#[cfg(feature = "runtime")]
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker refused it.
    #[error("{what} on channel {channel} refused: {refusal}")]
    Refused {
        /// What was refused: `publication`, `delete`, `message`.
        what: &'static str,
        /// The channel's name (or the target device for `send_to`).
        channel: String,
        /// Why.
        refusal: Refusal,
    },
    /// The value could not be sent (encoding, queue full, session closed).
    #[error(transparent)]
    Send(#[from] crate::session::SendError),
    /// The session ended before the broker answered.
    #[error("the session ended before the broker answered about channel {channel}")]
    Disconnected {
        /// The channel's name.
        channel: String,
    },
    /// No answer within the session's request timeout.
    #[error("no answer from the broker about channel {channel} within {after:?}")]
    Timeout {
        /// The channel's name.
        channel: String,
        /// The timeout.
        after: std::time::Duration,
    },
    /// The key does not fit the channel: a key on an unkeyed channel, or
    /// none on a keyed one.
    #[error("channel {channel} {}", if *keyed { "is keyed: publish with a key" } else { "is not keyed: publish without a key" })]
    Key {
        /// The channel's name.
        channel: &'static str,
        /// Whether the channel is keyed.
        keyed: bool,
    },
}

/// Why a subscription failed.
#[cfg(feature = "runtime")]
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// The broker refused it.
    #[error("subscription to channel {channel} refused: {refusal}")]
    Refused {
        /// The channel's name (or id for raw subscriptions).
        channel: String,
        /// Why.
        refusal: Refusal,
    },
    /// The request could not be sent.
    #[error(transparent)]
    Send(#[from] crate::session::SendError),
    /// The session ended before the broker answered.
    #[error("the session ended before the broker answered the subscription to {channel}")]
    Disconnected {
        /// The channel's name.
        channel: String,
    },
    /// No answer within the session's request timeout.
    #[error("no answer to the subscription to {channel} within {after:?}")]
    Timeout {
        /// The channel's name.
        channel: String,
        /// The timeout.
        after: std::time::Duration,
    },
}

/// The name of a channel for errors: its full name when known, else its id.
#[cfg(feature = "runtime")]
pub(crate) fn channel_label(id: u32, name: Option<&str>) -> String {
    match name {
        Some(n) => n.to_owned(),
        None => format!("#{id}"),
    }
}
