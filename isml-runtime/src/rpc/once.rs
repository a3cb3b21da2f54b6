//! Calls of `[once]` methods (`docs/rpc.md`, "Exactly-once calls"): sent
//! through the session's reliable state, so that a call survives
//! reconnections that resume the session and runs once.
//!
//! The caller sends the call frame at least once (kept until acknowledged,
//! written again on the session that resumes a broken one), and keeps its
//! correlation id across sessions. The callee drops a copy it already has
//! by sequence number, runs the call to its end even when the connection
//! breaks meanwhile (`rpc::server`), and sends its answer at least once
//! too: kept until this side acknowledged it, written again on the resumed
//! session. That kept answer and the dedupe are the "result cache" of the
//! session: a call resent after a reconnect gets the first execution's
//! answer, never a second execution.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::client::{Conn, address, deadline_of, decode_reply, method_ref};
use super::stream::send_error;
use super::{CallError, MethodDescriptor, ServiceDescriptor};
use crate::TopLevel;
use crate::session::{Delivery, Link, Session};

impl Conn {
    /// The session whose reliable state carries a `[once]` call (the
    /// current one, or while a client reconnects the last one, whose state
    /// the next session resumes); `None` when there is no reliable state.
    pub(super) fn once_session(&self) -> Option<Session> {
        let session = match self {
            Conn::Session(s) => s.current(),
            Conn::Client(c) => c.reliable_session().ok()?,
            // The hop to another node carries no reliable state.
            Conn::Remote(_) => return None,
        };
        session
            .link()
            .is_some_and(|l| l.ended().is_none())
            .then_some(session)
    }
}

/// Calls a unary `[once]` method through the reliable state of
/// `session`: the call is kept and resent until answered, the callee
/// runs it once and keeps its answer until this side acknowledged it.
pub(super) async fn unary_once<Q: TopLevel, R: TopLevel>(
    session: Session,
    service: &'static ServiceDescriptor,
    method: &'static MethodDescriptor,
    request: &Q,
    timeout: Duration,
) -> Result<R, CallError> {
    let name = method.full_name;
    let (now, deadline) = deadline_of(Some(timeout));
    let t = address(
        session,
        &method_ref(service, method),
        deadline,
        now,
        Some(timeout),
    )?;
    let Some(link) = t.session.link().cloned() else {
        return Err(CallError::Closed {
            method: name,
            reason: "the session has no reliable state".to_owned(),
        });
    };
    let frame = t
        .session
        .encode(t.header, request)
        .map_err(|e| send_error(name, e))?;
    // Gives the callee a chance to stop when this caller gives up (time
    // out, or its future dropped): at most once, on the session current
    // then. The handler may have run, or may still run once.
    struct CancelOnDrop {
        link: Arc<Link>,
        correlation: u64,
        armed: bool,
    }
    impl Drop for CancelOnDrop {
        fn drop(&mut self) {
            if self.armed
                && let Some(s) = self.link.session()
            {
                s.push_cancel(self.correlation);
            }
        }
    }
    let mut cancel = CancelOnDrop {
        link: link.clone(),
        correlation: t.header.correlation,
        armed: true,
    };
    let until = deadline.unwrap_or(now + timeout);
    let reply = match link.exchange(frame, until).await {
        Ok(reply) => reply,
        Err(None) => {
            return Err(CallError::Timeout {
                method: name,
                after: timeout,
            });
        }
        Err(Some(reason)) => {
            cancel.armed = false;
            return Err(CallError::Closed {
                method: name,
                reason: format!("the reliable state ended before the answer: {reason}"),
            });
        }
    };
    cancel.armed = false;
    decode_reply(name, reply)
}

/// Calls a one-way `[once]` method through the reliable state of
/// `session`: queued there, it is written again on a resumed session until
/// the callee acknowledged it, and runs once. Returns once queued (as a
/// one-way call does); the acknowledgement is not waited for.
pub(super) async fn one_way_once<Q: TopLevel>(
    session: Session,
    service: &'static ServiceDescriptor,
    method: &'static MethodDescriptor,
    request: &Q,
) -> Result<(), CallError> {
    let name = method.full_name;
    let t = address(
        session,
        &method_ref(service, method),
        None,
        Instant::now(),
        None,
    )?;
    let frame = t
        .session
        .encode(t.header, request)
        .map_err(|e| send_error(name, e))?;
    t.session
        .send_frame_with(frame, Delivery::AtLeastOnce)
        .await
        .map(drop)
        .map_err(|e| send_error(name, e))
}

/// A `[once]` method called where there is no reliable state: it goes at
/// most once, like any call (never twice), and says so in the debug log.
pub(super) fn at_most_once(method: &MethodDescriptor) {
    tracing::debug!(
        method = method.full_name,
        "[once] method called on a session without a reliable state (see ClientBuilder::resume): sent at most once"
    );
}
