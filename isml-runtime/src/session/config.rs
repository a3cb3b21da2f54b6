//! Session settings, error codes and the budget setters.

use std::time::Duration;

use crate::wire::Limits;

/// Error codes of wire format §2.4.
pub mod codes {
    /// Unspecified.
    pub const UNSPECIFIED: u64 = 0;
    /// Unknown message type.
    pub const UNKNOWN_TYPE: u64 = 1;
    /// Malformed payload or frame.
    pub const MALFORMED: u64 = 2;
    /// Handler failed.
    pub const HANDLER_FAILED: u64 = 3;
    /// Deadline exceeded (also: keep-alive expired).
    pub const DEADLINE_EXCEEDED: u64 = 4;
    /// Cancelled.
    pub const CANCELLED: u64 = 5;
    /// Unauthenticated.
    pub const UNAUTHENTICATED: u64 = 6;
    /// Permission denied.
    pub const PERMISSION_DENIED: u64 = 7;
    /// Resource exhausted (queue full, connection limit).
    pub const RESOURCE_EXHAUSTED: u64 = 8;
    /// Unavailable (shutting down).
    pub const UNAVAILABLE: u64 = 9;
    /// Fingerprint mismatch.
    pub const FINGERPRINT_MISMATCH: u64 = 10;
    /// Version mismatch.
    pub const VERSION_MISMATCH: u64 = 11;
    /// The device id is in use: the session was replaced by a newer one of
    /// the same device, or a newer one was refused (the server's policy).
    pub const DEVICE_ID_IN_USE: u64 = 12;
    /// Not found.
    pub const NOT_FOUND: u64 = 13;
    /// Unimplemented: the callee serves no such service or method.
    pub const UNIMPLEMENTED: u64 = 14;
    /// Invalid argument: the handler refused the request's contents.
    pub const INVALID_ARGUMENT: u64 = 15;
    /// Internal error.
    pub const INTERNAL: u64 = 16;
    /// Already exists.
    pub const ALREADY_EXISTS: u64 = 17;
    /// Failed precondition.
    pub const FAILED_PRECONDITION: u64 = 18;
    /// Aborted.
    pub const ABORTED: u64 = 19;
    /// Out of range.
    pub const OUT_OF_RANGE: u64 = 20;
    /// Data loss.
    pub const DATA_LOSS: u64 = 21;
}

/// Settings shared by every session of a server or client.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SessionConfig {
    /// Send a ping after this long without receiving anything; declare the
    /// peer dead after 1.5 times this long. `None` disables keep-alive.
    pub keepalive: Option<Duration>,
    /// Default deadline of [`Session::request`](super::Session::request).
    pub request_timeout: Duration,
    /// Frames the outbound queue holds.
    pub outbound_queue: usize,
    /// Incoming requests handled at once; beyond it the session stops
    /// reading. Calls with a stream have as many places of their own, and
    /// one beyond them is refused (code 8) rather than waited for.
    pub max_inflight: usize,
    /// How long a closing session may take to write what is queued.
    pub close_timeout: Duration,
    /// Largest frame sent or accepted.
    pub max_frame: usize,
    /// Bytes (encoded frame lengths) the outbound queue holds. A frame larger
    /// than the whole budget is accepted when the queue is empty.
    pub outbound_bytes: usize,
    /// Bytes of frames the connection task has queued to write (replies,
    /// pongs, error responses, and what it took from the outbound queue)
    /// beyond the outbound budget, after which it stops reading until the
    /// peer has read them.
    pub reply_bytes: usize,
    /// Bytes of request payloads whose handlers run at once; beyond it the
    /// session stops reading, as beyond `max_inflight`.
    pub inflight_bytes: usize,
    /// Largest message received, joined from fragments (wire format §2.6);
    /// a larger one closes the session with code 8.
    pub max_message: usize,
    /// Messages whose payload is larger are sent in fragments of this many
    /// bytes, between which smaller frames may leave (`None`: never fragment;
    /// then no message may exceed `max_frame`).
    pub fragment_size: Option<usize>,
    /// Bytes of a stream's items received and not yet taken by the
    /// application, per stream (each item counts its encoded length plus 8):
    /// the credit the peer starts with, and what it gets again each time
    /// half of it has been taken (wire format §2.7). The receiver buffers at
    /// most this much, plus one item, per stream.
    pub stream_window: u32,
    /// Bytes of frames sent at least once and not yet acknowledged, per
    /// reliable state; beyond it `send_with(…, Delivery::AtLeastOnce)`
    /// waits (docs/reliability.md).
    pub unacked_bytes: usize,
    /// How long an acknowledgement owed may wait for frames to go with
    /// before it is written alone.
    pub ack_delay: Duration,
    /// Deliveries each subscription holds before the application takes
    /// them; when they do not fit, the session stops reading until it does
    /// (docs/pubsub.md, "Slow subscribers").
    pub subscription_queue: usize,
    /// How long the session waits for a subscription's reader to take from
    /// its full queue before it counts the subscription as not read and
    /// drops its oldest deliveries instead, until the reader takes again.
    pub subscription_patience: Duration,
}

/// Ping payloads up to this size are echoed in the pong; a longer one is
/// answered with an empty pong, so that a ping never makes us hold or send
/// more than it costs the peer.
pub const MAX_PING_ECHO: usize = 64;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            keepalive: Some(Duration::from_secs(30)),
            request_timeout: Duration::from_secs(10),
            outbound_queue: 1024,
            max_inflight: 256,
            close_timeout: Duration::from_secs(2),
            max_frame: Limits::DEFAULT.max_frame,
            outbound_bytes: 1024 * 1024,
            reply_bytes: 1024 * 1024,
            inflight_bytes: 4 * 1024 * 1024,
            max_message: Limits::DEFAULT.max_frame,
            fragment_size: Some(64 * 1024),
            stream_window: 256 * 1024,
            unacked_bytes: 1024 * 1024,
            ack_delay: Duration::from_millis(20),
            subscription_queue: 1024,
            subscription_patience: Duration::from_millis(250),
        }
    }
}

/// The setters of the session settings, shared by the server's and the
/// client's builders (both hold a `config: SessionConfig`).
macro_rules! session_setters {
    () => {
        /// Keep-alive interval (`None`: off).
        pub fn keepalive(mut self, interval: Option<std::time::Duration>) -> Self {
            self.config.keepalive = interval;
            self
        }

        /// Frames held by each session's outbound queue.
        pub fn outbound_queue(mut self, frames: usize) -> Self {
            self.config.outbound_queue = frames.max(1);
            self
        }

        /// Bytes the outbound queue of each session holds (1 MiB by default).
        pub fn outbound_bytes(mut self, bytes: usize) -> Self {
            self.config.outbound_bytes = bytes.max(1);
            self
        }

        /// Bytes of replies, pongs and error responses a session queues for a
        /// peer that is not reading, beyond the outbound queue, before it stops
        /// reading from it (1 MiB by default).
        pub fn reply_bytes(mut self, bytes: usize) -> Self {
            self.config.reply_bytes = bytes.max(1);
            self
        }

        /// Bytes of frames sent at least once and not yet acknowledged (1 MiB
        /// by default); beyond it at-least-once sends wait.
        pub fn unacked_bytes(mut self, bytes: usize) -> Self {
            self.config.unacked_bytes = bytes.max(1);
            self
        }

        /// How long an acknowledgement may wait for frames to go with
        /// before it is written alone (20 ms by default; zero: at once).
        pub fn ack_delay(mut self, delay: std::time::Duration) -> Self {
            self.config.ack_delay = delay;
            self
        }

        /// Incoming requests handled at once per session (256 by default);
        /// beyond it the session stops reading. Calls with a stream have as
        /// many places of their own; one beyond them is refused (code 8).
        pub fn max_inflight(mut self, requests: usize) -> Self {
            self.config.max_inflight = requests.max(1);
            self
        }

        /// Bytes of request payloads handled at once per session (4 MiB by
        /// default); beyond it the session stops reading.
        pub fn inflight_bytes(mut self, bytes: usize) -> Self {
            self.config.inflight_bytes = bytes.max(1);
            self
        }

        /// Largest message received, whole or joined from fragments (1 MiB by
        /// default); a larger one closes the session with code 8.
        pub fn max_message(mut self, bytes: usize) -> Self {
            self.config.max_message = bytes.max(1);
            self
        }

        /// Messages whose payload is larger are sent in fragments of this size
        /// (64 KiB by default; `None`: never, and no message may exceed the
        /// frame limit).
        pub fn fragment_size(mut self, bytes: Option<usize>) -> Self {
            self.config.fragment_size = bytes.map(|n| n.max(1));
            self
        }

        /// Bytes of items each received stream may hold before the
        /// application takes them (256 KiB by default; an item counts its
        /// encoded length plus 8): the peer's sender waits beyond it.
        pub fn stream_window(mut self, bytes: u32) -> Self {
            self.config.stream_window = bytes.max(1);
            self
        }

        /// Deliveries each subscription of a session holds before the
        /// application takes them (1,024 by default): beyond it the session
        /// stops reading until the application takes.
        pub fn subscription_queue(mut self, deliveries: usize) -> Self {
            self.config.subscription_queue = deliveries.max(1);
            self
        }

        /// How long a session waits for the reader of a full subscription
        /// before it drops that subscription's oldest deliveries instead
        /// (250 ms by default), until the reader takes again.
        pub fn subscription_patience(mut self, patience: std::time::Duration) -> Self {
            self.config.subscription_patience = patience;
            self
        }
    };
}
pub(crate) use session_setters;
