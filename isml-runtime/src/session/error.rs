//! Why sessions end and why sends and requests fail.

use std::fmt;
use std::time::Duration;

use super::codes;
use crate::wire::{DecodeError, EncodeError};

/// Who ended a session.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// This side, with [`Session::close`](super::Session::close) (or a server shutdown).
    Local,
    /// The peer, with a `close` frame or by ending the connection.
    Peer,
    /// The runtime: transport failure, malformed frame, keep-alive expiry.
    Error,
}

/// Why a session ended: who, and an error body (wire format §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// Who closed it.
    pub by: ClosedBy,
    /// The code ([`codes`]).
    pub code: u64,
    /// A human-readable explanation.
    pub message: String,
}

impl CloseReason {
    /// A reason.
    pub fn new(by: ClosedBy, code: u64, message: impl Into<String>) -> Self {
        CloseReason {
            by,
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.by {
            ClosedBy::Local => "closed locally",
            ClosedBy::Peer => "closed by peer",
            ClosedBy::Error => "closed on error",
        };
        write!(f, "{who} (code {}): {}", self.code, self.message)
    }
}

/// Why a message could not be sent.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The session has ended.
    #[error("session {session} is closed: {reason}")]
    Closed {
        /// The session id.
        session: u64,
        /// Why it ended.
        reason: CloseReason,
    },
    /// The outbound queue is full ([`Session::try_send`](super::Session::try_send), broadcasts).
    #[error("outbound queue of session {session} is full ({capacity} frames)")]
    QueueFull {
        /// The session id.
        session: u64,
        /// The queue's capacity.
        capacity: usize,
    },
    /// The peer's definition of this message differs from ours (handshake fingerprints).
    #[error(
        "message {name} (type id {type_id}) is refused on session {session}: its definition differs on the peer (fingerprint mismatch)"
    )]
    FingerprintMismatch {
        /// The session id.
        session: u64,
        /// The message's type id.
        type_id: u32,
        /// The message's name.
        name: &'static str,
    },
    /// The message failed validation or does not fit a frame.
    #[error("cannot encode {message}: {source}")]
    Encode {
        /// The message's name.
        message: &'static str,
        /// Why.
        source: EncodeError,
    },
    /// At-least-once delivery needs a reliable state, which the two sides
    /// agree on in the handshake when the client asks to resume
    /// (`ClientBuilder::resume`).
    #[error(
        "session {session} has no reliable state for at-least-once delivery (the client did not ask to resume sessions)"
    )]
    Unreliable {
        /// The session id.
        session: u64,
    },
    /// The outbox did not take the message (full, or its store failed).
    #[error("session {session}: {source}")]
    Outbox {
        /// The session id.
        session: u64,
        /// Why.
        source: super::DeliveryError,
    },
    /// The reliable state ended (the client was closed, or the server
    /// expired the session) before the message was queued.
    #[error("session {session} cannot deliver at least once: {reason}")]
    Lost {
        /// The session id.
        session: u64,
        /// Why the reliable state ended.
        reason: String,
    },
}

/// Why a request failed.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// The request could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// No reply before the deadline; a reply arriving later is dropped.
    #[error("request {request} timed out after {after:?}")]
    Timeout {
        /// The request's name.
        request: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The peer answered with an error response.
    #[error("request {request} failed on the peer (code {code}): {message}")]
    Remote {
        /// The request's name.
        request: &'static str,
        /// The error code (§2.4).
        code: u64,
        /// The peer's message.
        message: String,
    },
    /// The session ended before the reply came.
    #[error("request {request} lost: session {reason}")]
    Disconnected {
        /// The request's name.
        request: &'static str,
        /// Why the session ended.
        reason: CloseReason,
    },
    /// The reply could not be decoded.
    #[error("reply {reply} to {request} is malformed: {source}")]
    Decode {
        /// The request's name.
        request: &'static str,
        /// The expected reply's name.
        reply: &'static str,
        /// Why.
        source: DecodeError,
    },
    /// The reply is of another type than expected.
    #[error("request {request} expected a {expected} reply, got type id {type_id}")]
    UnexpectedReply {
        /// The request's name.
        request: &'static str,
        /// The expected reply's name.
        expected: &'static str,
        /// The type id received.
        type_id: u32,
    },
}

impl RequestError {
    /// The error code a peer sent ([`RequestError::Remote`]), if any.
    pub fn remote_code(&self) -> Option<u64> {
        match self {
            RequestError::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// A handler's failure; for requests it becomes the error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct HandlerError {
    /// The error code (wire format §2.4; applications use 1000 and above).
    pub code: u64,
    /// A human-readable message for the peer.
    pub message: String,
}

impl HandlerError {
    /// An error with a code and a message.
    pub fn new(code: u64, message: impl Into<String>) -> Self {
        HandlerError {
            code,
            message: message.into(),
        }
    }

    /// Code 3, handler failed.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(codes::HANDLER_FAILED, message)
    }

    /// Code 7, permission denied.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(codes::PERMISSION_DENIED, message)
    }
}

impl From<DecodeError> for HandlerError {
    fn from(e: DecodeError) -> Self {
        Self::new(codes::MALFORMED, format!("malformed payload: {e}"))
    }
}
