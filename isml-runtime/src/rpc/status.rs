//! Call outcomes: [`Status`] (what a callee answers) and [`CallError`] (what
//! a caller gets).

use std::fmt;
use std::time::Duration;

use crate::session::{HandlerError, codes};
use crate::wire::{DecodeError, EncodeError};

/// Why a call failed, as the callee says it; the codes follow gRPC's.
///
/// On the wire each code is an error code of wire format §2.4
/// ([`Code::wire`]); codes the protocol does not name, application codes
/// (1000 and above) among them, are kept as [`Code::Other`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// No more precise code (wire code 0).
    Unknown,
    /// The caller cancelled the call (5).
    Cancelled,
    /// The request was malformed or its contents refused (2 when it could
    /// not be decoded, 15 when the handler refused it).
    InvalidArgument,
    /// The deadline passed before the call completed (4).
    DeadlineExceeded,
    /// Something the request names does not exist (13).
    NotFound,
    /// What the request would create exists already (17).
    AlreadyExists,
    /// The caller may not do this (7).
    PermissionDenied,
    /// A limit was reached: queue full, rate limited, quota (8).
    ResourceExhausted,
    /// The system is not in a state where this can be done (18).
    FailedPrecondition,
    /// The operation was aborted, typically by a conflict (19).
    Aborted,
    /// A value outside its valid range (20).
    OutOfRange,
    /// The callee serves no such service or method (14).
    Unimplemented,
    /// The callee failed (16, and 3 "handler failed").
    Internal,
    /// The callee cannot serve now: shutting down, overloaded (9).
    Unavailable,
    /// Unrecoverable loss of data (21).
    DataLoss,
    /// The caller is not authenticated (6).
    Unauthenticated,
    /// The two sides define the method or its types differently (10).
    Incompatible,
    /// Any other code: protocol codes this version does not name, and
    /// application codes (1000 and above).
    Other(u64),
}

impl Code {
    /// The error code on the wire (wire format §2.4).
    pub const fn wire(self) -> u64 {
        match self {
            Code::Unknown => codes::UNSPECIFIED,
            Code::Cancelled => codes::CANCELLED,
            Code::InvalidArgument => codes::INVALID_ARGUMENT,
            Code::DeadlineExceeded => codes::DEADLINE_EXCEEDED,
            Code::NotFound => codes::NOT_FOUND,
            Code::AlreadyExists => codes::ALREADY_EXISTS,
            Code::PermissionDenied => codes::PERMISSION_DENIED,
            Code::ResourceExhausted => codes::RESOURCE_EXHAUSTED,
            Code::FailedPrecondition => codes::FAILED_PRECONDITION,
            Code::Aborted => codes::ABORTED,
            Code::OutOfRange => codes::OUT_OF_RANGE,
            Code::Unimplemented => codes::UNIMPLEMENTED,
            Code::Internal => codes::INTERNAL,
            Code::Unavailable => codes::UNAVAILABLE,
            Code::DataLoss => codes::DATA_LOSS,
            Code::Unauthenticated => codes::UNAUTHENTICATED,
            Code::Incompatible => codes::FINGERPRINT_MISMATCH,
            Code::Other(n) => n,
        }
    }

    /// The code of a wire error code.
    pub const fn from_wire(code: u64) -> Code {
        match code {
            codes::UNSPECIFIED => Code::Unknown,
            codes::UNKNOWN_TYPE | codes::UNIMPLEMENTED => Code::Unimplemented,
            codes::MALFORMED | codes::INVALID_ARGUMENT => Code::InvalidArgument,
            codes::HANDLER_FAILED | codes::INTERNAL => Code::Internal,
            codes::DEADLINE_EXCEEDED => Code::DeadlineExceeded,
            codes::CANCELLED => Code::Cancelled,
            codes::UNAUTHENTICATED => Code::Unauthenticated,
            codes::PERMISSION_DENIED => Code::PermissionDenied,
            codes::RESOURCE_EXHAUSTED => Code::ResourceExhausted,
            codes::UNAVAILABLE => Code::Unavailable,
            codes::FINGERPRINT_MISMATCH | codes::VERSION_MISMATCH => Code::Incompatible,
            codes::NOT_FOUND => Code::NotFound,
            codes::ALREADY_EXISTS => Code::AlreadyExists,
            codes::FAILED_PRECONDITION => Code::FailedPrecondition,
            codes::ABORTED => Code::Aborted,
            codes::OUT_OF_RANGE => Code::OutOfRange,
            codes::DATA_LOSS => Code::DataLoss,
            n => Code::Other(n),
        }
    }

    /// A lowercase name, as gRPC spells it.
    pub const fn name(self) -> &'static str {
        match self {
            Code::Unknown => "unknown",
            Code::Cancelled => "cancelled",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
            Code::Incompatible => "incompatible",
            Code::Other(_) => "other",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Other(n) => write!(f, "code {n}"),
            c => f.write_str(c.name()),
        }
    }
}

/// What a failed call answers: a [`Code`] and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    code: Code,
    message: String,
}

macro_rules! status_ctors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with a code and a message.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    status_ctors! {
        /// [`Code::Cancelled`].
        cancelled => Cancelled,
        /// [`Code::InvalidArgument`].
        invalid_argument => InvalidArgument,
        /// [`Code::DeadlineExceeded`].
        deadline_exceeded => DeadlineExceeded,
        /// [`Code::NotFound`].
        not_found => NotFound,
        /// [`Code::AlreadyExists`].
        already_exists => AlreadyExists,
        /// [`Code::PermissionDenied`].
        permission_denied => PermissionDenied,
        /// [`Code::ResourceExhausted`].
        resource_exhausted => ResourceExhausted,
        /// [`Code::FailedPrecondition`].
        failed_precondition => FailedPrecondition,
        /// [`Code::Aborted`].
        aborted => Aborted,
        /// [`Code::OutOfRange`].
        out_of_range => OutOfRange,
        /// [`Code::Unimplemented`].
        unimplemented => Unimplemented,
        /// [`Code::Internal`].
        internal => Internal,
        /// [`Code::Unavailable`].
        unavailable => Unavailable,
        /// [`Code::DataLoss`].
        data_loss => DataLoss,
        /// [`Code::Unauthenticated`].
        unauthenticated => Unauthenticated,
        /// [`Code::Incompatible`].
        incompatible => Incompatible,
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl std::error::Error for Status {}

impl From<HandlerError> for Status {
    fn from(e: HandlerError) -> Status {
        Status::new(Code::from_wire(e.code), e.message)
    }
}

impl From<Status> for HandlerError {
    fn from(s: Status) -> HandlerError {
        HandlerError::new(s.code.wire(), s.message)
    }
}

impl From<DecodeError> for Status {
    fn from(e: DecodeError) -> Status {
        Status::invalid_argument(format!("malformed request: {e}"))
    }
}

/// Why a call failed, as the caller sees it: the callee's [`Status`], or a
/// local cause.
#[non_exhaustive]
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The callee answered with a status.
    #[error("{method} failed: {status}")]
    Status {
        /// The method (`package.Service/method`).
        method: &'static str,
        /// What the callee said.
        status: Status,
    },
    /// No answer within the deadline; the call was cancelled at the callee.
    #[error("{method}: no answer within {after:?} (cancelled)")]
    Timeout {
        /// The method.
        method: &'static str,
        /// The deadline it had.
        after: Duration,
    },
    /// There is no session, or it ended during the call.
    #[error("{method}: {reason}")]
    Closed {
        /// The method.
        method: &'static str,
        /// Why (the session's close reason, or "not connected").
        reason: String,
    },
    /// The outbound queue is full (only calls that do not wait for room).
    #[error("{method}: the outbound queue is full")]
    QueueFull {
        /// The method.
        method: &'static str,
    },
    /// The peer does not serve the method: the call was not sent.
    #[error("{method}: the peer does not serve this method{detail}")]
    Unimplemented {
        /// The method.
        method: &'static str,
        /// What the peer serves instead, when it serves the service.
        detail: String,
    },
    /// The peer defines the method differently (request or response types,
    /// or streaming kind): the call was not sent.
    #[error("{method}: incompatible with the peer: {reason}")]
    Incompatible {
        /// The method.
        method: &'static str,
        /// What differs.
        reason: String,
    },
    /// The other side of a stream went away: it cancelled the call, or the
    /// call ended.
    #[error("{method}: the stream was cancelled or has ended")]
    Cancelled {
        /// The method.
        method: &'static str,
    },
    /// The request or an item could not be encoded.
    #[error("{method}: cannot encode {message}: {source}")]
    Encode {
        /// The method.
        method: &'static str,
        /// The message type.
        message: &'static str,
        /// Why (boxed: rare, and it would make every call's result larger).
        source: Box<EncodeError>,
    },
    /// The answer could not be decoded.
    #[error("{method}: cannot decode {message}: {source}")]
    Decode {
        /// The method.
        method: &'static str,
        /// The message type.
        message: &'static str,
        /// Why (boxed: rare, and it would make every call's result larger).
        source: Box<DecodeError>,
    },
}

impl CallError {
    /// The status code this error corresponds to: the callee's, or the one
    /// gRPC would give a local cause.
    pub fn code(&self) -> Code {
        match self {
            CallError::Status { status, .. } => status.code,
            CallError::Timeout { .. } => Code::DeadlineExceeded,
            CallError::Closed { .. } => Code::Unavailable,
            CallError::QueueFull { .. } => Code::ResourceExhausted,
            CallError::Unimplemented { .. } => Code::Unimplemented,
            CallError::Incompatible { .. } => Code::Incompatible,
            CallError::Cancelled { .. } => Code::Cancelled,
            CallError::Encode { .. } => Code::Internal,
            CallError::Decode { .. } => Code::Internal,
        }
    }

    /// The callee's status, when it answered with one.
    pub fn status(&self) -> Option<&Status> {
        match self {
            CallError::Status { status, .. } => Some(status),
            _ => None,
        }
    }

    /// This error as a status, for a handler that passes a failed call on.
    pub fn to_status(&self) -> Status {
        match self {
            CallError::Status { status, .. } => status.clone(),
            other => Status::new(other.code(), other.to_string()),
        }
    }
}

impl From<CallError> for Status {
    fn from(e: CallError) -> Status {
        e.to_status()
    }
}
