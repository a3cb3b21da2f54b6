//! The text protocol: devices that speak lines
//! (`START | COMMAND=PUB | VARIABLE=door | VALUE=open | END`) join the
//! fleet through a `text+tcp://` or `text+tls://` listener of the
//! [`Server`](crate::Server), served by the same broker, session registry,
//! authenticator and ACL as binary sessions. `docs/text-protocol.md` is the
//! protocol's reference.
//!
//! This module holds what both sides share:
//!
//! - [`Line`] and [`Command`]: parsing and formatting lines, and
//!   [`escape`] / [`unescape`] for values;
//! - [`LineCodec`]: the tokio-util framing, with a maximum line length;
//! - [`Value`] and [`channels::Variables`]: the message type and the
//!   keyed, retained channel that text variables live on, generated from
//!   `isml-runtime/schemas/text.isml`. A binary device subscribes to
//!   `Variables` to see text variables, and sends a [`Value`] with
//!   `send_to` to reach a text device;
//! - [`TextValues`]: JSON for variables mapped to typed channels
//!   ([`ServerBuilder::text_map`](crate::server::ServerBuilder::text_map)).

mod codec;
mod line;

#[allow(missing_docs, clippy::all)]
mod generated {
    include!("generated.rs");
}

/// The `.isml` source of [`Value`] and [`channels::Variables`]
/// (`isml-runtime/schemas/text.isml`), for tools that load schemas at run
/// time; the Rust types here are generated from it.
pub const SCHEMA: &str = include_str!("../../schemas/text.isml");

pub use codec::{LineCodec, Received};
pub use generated::{AnyMessage, Value, ValueLazy, ValueView, channels};
pub use line::{Command, Line, MAX_NAME, ParseError, escape, rfc3339, unescape};

/// Converts between JSON text and encoded messages, for text variables
/// mapped to typed channels. `isml serve` implements it with the schemas
/// it loads (dynamic messages); a Rust server implements it for its
/// generated types.
pub trait TextValues: Send + Sync + 'static {
    /// Encodes a JSON value as a message of type `type_id` (frame-payload
    /// form). The error says what is wrong with the JSON; it is logged and
    /// the publication answered `BAD`.
    fn encode(&self, type_id: u32, json: &str) -> Result<bytes::Bytes, String>;

    /// Decodes a message of type `type_id` to compact JSON.
    fn decode(&self, type_id: u32, payload: &[u8]) -> Result<String, String>;
}

/// Options of one text listener, from its URL's query
/// (`text+tcp://0.0.0.0:7001?time=on&require_id=on&max_line=8192`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TextOptions {
    /// `time`: pushes (`SUB`, `MSG`) carry `TIME=<RFC 3339>`, the time the
    /// broker accepted the value. Off by default, so that the seed's
    /// clients see exactly the lines they expect.
    pub time: bool,
    /// `reasons`: `BAD` carries `REASON=<text>`. Off by default.
    pub reasons: bool,
    /// `require_id`: every command but `ID`, `HELLO!` and `CLOSE` is
    /// answered `BAD` until the device has sent `ID`. Off by default: a
    /// device that never sends `ID` gets `device-<n>`.
    pub require_id: bool,
    /// `max_line`: the longest line accepted, in bytes (4096 by default).
    pub max_line: usize,
    /// `misses`: `HELLO?` left unanswered before the server closes the
    /// connection (3 by default). The interval is the server's keep-alive.
    pub misses: u32,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            time: false,
            reasons: false,
            require_id: false,
            max_line: 4096,
            misses: 3,
        }
    }
}

impl TextOptions {
    /// Reads the options from a URL's query (`a=b&c=d`); `Err` names the
    /// parameter that is unknown or has an invalid value.
    pub fn from_query(query: &str) -> Result<TextOptions, String> {
        let mut o = TextOptions::default();
        let flag = |name: &str, v: &str| match v {
            "on" | "true" | "1" | "yes" => Ok(true),
            "off" | "false" | "0" | "no" => Ok(false),
            _ => Err(format!("{name}={v}: expected on or off")),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, "on"));
            match name {
                "time" => o.time = flag(name, value)?,
                "reasons" => o.reasons = flag(name, value)?,
                "require_id" => o.require_id = flag(name, value)?,
                "max_line" => {
                    o.max_line = value
                        .parse()
                        .ok()
                        .filter(|n| (64..=16 * 1024 * 1024).contains(n))
                        .ok_or_else(|| {
                            format!("max_line={value}: expected 64 to 16777216 bytes")
                        })?;
                }
                "misses" => {
                    o.misses = value
                        .parse()
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| format!("misses={value}: expected 1 or more"))?;
                }
                other => {
                    return Err(format!(
                        "unknown option `{other}` (time, reasons, require_id, max_line, misses)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_query() {
        assert_eq!(TextOptions::from_query("").unwrap(), TextOptions::default());
        let o = TextOptions::from_query("time=on&require_id&max_line=100&misses=2").unwrap();
        assert!(o.time && o.require_id && !o.reasons);
        assert_eq!((o.max_line, o.misses), (100, 2));
        assert!(TextOptions::from_query("max_line=1").is_err());
        assert!(TextOptions::from_query("colour=red").is_err());
        assert!(TextOptions::from_query("time=maybe").is_err());
    }

    #[test]
    fn the_channel_and_value_are_the_schemas() {
        use crate::pubsub::Channel;
        assert_eq!(channels::Variables::ID, 65535);
        assert_eq!(channels::Variables::NAME, "isml.text.variables");
        const { assert!(channels::Variables::RETAIN && channels::Variables::KEYED) };
        assert_eq!(<Value as crate::TopLevel>::TYPE_ID, 0xFFFF_FF01);
    }
}
