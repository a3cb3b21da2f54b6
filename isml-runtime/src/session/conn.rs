//! The connection task: one loop over shutdown, the outbound queue,
//! received frames and the keep-alive timer.

use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, SinkExt};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::handle::error_frame;
use super::writer::{READ_BURST, Writer};
use super::{CloseReason, ClosedBy, MAX_PING_ECHO, Session, SessionConfig, Shared, codes, lock};
use crate::dispatch::{Context, Dispatcher, HandlerError};
use crate::transport::TransportError;
use crate::wire::{ControlOp, ErrorBody, Frame, FrameHeader, FrameKind};

pub(super) fn transport_reason(e: &TransportError) -> CloseReason {
    let code = match e {
        TransportError::Malformed { .. } => codes::MALFORMED,
        _ => codes::UNAVAILABLE,
    };
    CloseReason::new(ClosedBy::Error, code, e.to_string())
}

/// What handling a received frame left to do.
pub(super) enum Handled {
    Done,
    End(CloseReason),
    /// A one-way handler that did not finish at once: the task waits for it
    /// (handlers of one session run in arrival order) while still writing.
    OneWay(BoxFuture<'static, Result<(), HandlerError>>),
    /// A request handler that did not finish at once: it gets its own task.
    /// The payload's length counts against the in-flight byte budget.
    Request(
        u64,
        usize,
        BoxFuture<'static, Result<(u32, Bytes), HandlerError>>,
    ),
}

/// Runs a session's connection: one loop over shutdown, the outbound queue,
/// received frames and the keep-alive timer.
pub(super) async fn run(session: Session, dispatcher: Arc<Dispatcher>) -> CloseReason {
    let shared = session.shared.clone();
    let capacity = shared.out.capacity;
    let write_budget = shared
        .config
        .outbound_bytes
        .saturating_add(shared.config.reply_bytes);
    let writer = || lock(&shared.writer);
    let reader = || lock(&shared.reader);
    let mut inflight: Option<(Arc<Semaphore>, Arc<Semaphore>)> = None;
    let interval = shared.config.keepalive;
    let mut last_rx = Instant::now();
    let mut pinged = false;
    let sleep = tokio::time::sleep(interval.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(sleep);
    let closed = shared.closed.cancelled();
    tokio::pin!(closed);

    // Waits for `fut` while keeping the outbound side going; ends the
    // session's loop when the session ends meanwhile.
    macro_rules! drive {
        ($conn:lifetime, $fut:expr) => {{
            let fut = $fut;
            tokio::pin!(fut);
            loop {
                tokio::select! {
                    biased;
                    () = &mut closed => break $conn shared.reason(),
                    r = poll_fn(|cx| writer().poll_pump(cx, &shared)), if !writer().broken => {
                        break $conn writer().stopped(r, &shared);
                    }
                    out = &mut fut => break out,
                }
            }
        }};
    }

    let reason = 'conn: loop {
        tokio::select! {
            biased;
            () = &mut closed => break shared.reason(),
            r = poll_fn(|cx| writer().poll_pump(cx, &shared)), if !writer().broken => {
                break writer().stopped(r, &shared);
            }
            // Not reading while the write queue is over its budget. The
            // condition is checked on every poll (not once, as a branch
            // precondition would be): when the pump above has written enough
            // in the same poll, reading resumes at once.
            item = poll_fn(|cx| {
                if writer().may_read(capacity, write_budget) {
                    reader().poll_task(cx, true, &shared)
                } else {
                    Poll::Pending
                }
            }) => {
                let mut item = item;
                let mut burst = 0;
                loop {
                    let frame = match item {
                        Some(Ok(frame)) => frame,
                        Some(Err(reason)) => {
                            tracing::warn!(session = shared.id, peer = %shared.info.peer, %reason, "session ends");
                            break 'conn reason;
                        }
                        None => break 'conn CloseReason::new(
                            ClosedBy::Peer,
                            codes::UNAVAILABLE,
                            "connection ended without a close frame",
                        ),
                    };
                    shared.counters.frames_in.fetch_add(1, Ordering::Relaxed);
                    let handled = handle_frame(&session, frame, &dispatcher, &mut writer());
                    match handled {
                        Handled::Done => {}
                        Handled::End(reason) => break 'conn reason,
                        Handled::OneWay(fut) => {
                            if let Err(e) = drive!('conn, fut) {
                                shared.error();
                                tracing::debug!(session = shared.id, error = %e, "one-way handler failed");
                            }
                        }
                        Handled::Request(correlation, len, fut) => {
                            let (limit, bytes) = inflight.get_or_insert_with(|| {
                                let c = &shared.config;
                                (
                                    Arc::new(Semaphore::new(c.max_inflight.max(1))),
                                    Arc::new(Semaphore::new(
                                        c.inflight_bytes.clamp(1, u32::MAX as usize),
                                    )),
                                )
                            });
                            let cost = len.clamp(1, bytes_budget(&shared.config)) as u32;
                            let permits = match (
                                limit.clone().try_acquire_owned(),
                                bytes.clone().try_acquire_many_owned(cost),
                            ) {
                                (Ok(p), Ok(b)) => (p, b),
                                // Beyond max_inflight or the byte budget, stop
                                // reading until handlers end.
                                _ => {
                                    let both = async {
                                        let p = limit.clone().acquire_owned().await?;
                                        let b = bytes.clone().acquire_many_owned(cost).await?;
                                        Ok::<_, tokio::sync::AcquireError>((p, b))
                                    };
                                    match drive!('conn, both) {
                                        Ok(p) => p,
                                        Err(_) => break 'conn shared.reason(),
                                    }
                                }
                            };
                            let session = session.clone();
                            tokio::spawn(async move {
                                let frame = reply_frame(&session.shared, correlation, fut.await);
                                let _ = session.enqueue(frame).await;
                                drop(permits);
                            });
                        }
                    }
                    // The first reply of a burst leaves at once, before looking
                    // for more frames (a request alone on the connection should
                    // not wait for a read that finds nothing); the rest of a
                    // burst's replies leave together.
                    if burst == 0 && !writer().is_idle() {
                        let flushed = poll_fn(|cx| Poll::Ready(writer().poll_flush_all(cx, &shared))).await;
                        if let Poll::Ready(Err(e)) = flushed {
                            break 'conn writer().stopped(Err(e), &shared);
                        }
                        if writer().close_sent {
                            break 'conn shared.reason();
                        }
                    }
                    burst += 1;
                    if burst == READ_BURST || !writer().may_read(capacity, write_budget) {
                        break;
                    }
                    let mut probe = std::task::Context::from_waker(Waker::noop());
                    match reader().poll_task(&mut probe, false, &shared) {
                        Poll::Ready(next) => item = next,
                        Poll::Pending => break,
                    }
                }
                last_rx = Instant::now();
                pinged = false;
                shared.counters.last_activity_ms.store(
                    (last_rx - shared.started).as_millis() as u64,
                    Ordering::Relaxed,
                );
            }
            () = &mut sleep, if interval.is_some() => {
                let iv = interval.unwrap_or_default();
                // A request reading its own reply (see `Lend`) records what it
                // received there: it is a sign of life too.
                let seen = shared.started
                    + Duration::from_millis(shared.counters.last_activity_ms.load(Ordering::Relaxed));
                if seen > last_rx {
                    last_rx = seen;
                    pinged = false;
                }
                let idle = last_rx.elapsed();
                if idle >= iv * 3 / 2 {
                    let reason = CloseReason::new(
                        ClosedBy::Error,
                        codes::DEADLINE_EXCEEDED,
                        format!("keep-alive expired: nothing received for {idle:?} (interval {iv:?})"),
                    );
                    tracing::warn!(session = shared.id, peer = %shared.info.peer, %reason, "session ends");
                    break reason;
                }
                if idle >= iv && !pinged {
                    pinged = true;
                    let mut w = writer();
                    if w.queue.len() < capacity {
                        w.push(Frame::new(FrameHeader::control(ControlOp::Ping), Bytes::new()));
                    }
                }
                let next = if idle >= iv { last_rx + iv * 3 / 2 } else { last_rx + iv };
                sleep.as_mut().reset(next);
            }
        }
    };
    shared.finish(reason);
    // The receiving half ends with the task (a request reading it gives up).
    {
        let mut r = reader();
        r.rx = None;
        r.handoff.clear();
        r.task = None;
    }
    // Take the transport out of the session, so that its end can be awaited.
    let mut w = std::mem::replace(&mut *writer(), Writer::ended());
    if !w.broken {
        // Write what is already queued (the close frame among it), bounded in
        // time so that a peer that stopped reading cannot hold the task.
        let _ = tokio::time::timeout(shared.config.close_timeout, async {
            if let Poll::Ready(bytes) = shared.out.take(&mut w.queue) {
                w.queued_bytes += bytes;
            }
            if poll_fn(|cx| w.poll_flush_all(cx, &shared)).await.is_ok() {
                let _ = w.tx.close().await;
            }
        })
        .await;
    }
    shared.reason()
}

/// The in-flight byte budget as semaphore permits.
pub(super) fn bytes_budget(config: &SessionConfig) -> usize {
    config.inflight_bytes.clamp(1, u32::MAX as usize)
}

pub(super) fn reply_frame(
    shared: &Shared,
    correlation: u64,
    result: Result<(u32, Bytes), HandlerError>,
) -> Frame {
    match result {
        Ok((type_id, payload)) => Frame::new(FrameHeader::response(type_id, correlation), payload),
        Err(e) => {
            shared.error();
            error_frame(correlation, e.code, &e.message)
        }
    }
}

/// Handles one received frame. Handlers run right here, in the connection's
/// task: most finish on their first poll, and a request's reply then goes
/// straight to the write queue, without another task or queue in between.
pub(super) fn handle_frame(
    session: &Session,
    frame: Frame,
    dispatcher: &Dispatcher,
    w: &mut Writer,
) -> Handled {
    let shared = &session.shared;
    let h = frame.header;
    let refused = |id: u32| shared.refused.iter().find(|(r, _)| *r == id).map(|e| e.1);
    match h.kind {
        FrameKind::OneWay => {
            if let Some(name) = refused(h.type_id) {
                shared.error();
                tracing::debug!(
                    session = shared.id,
                    message = name,
                    "dropped one-way message with mismatched fingerprint"
                );
                return Handled::Done;
            }
            let ctx = Context::new(session.clone(), None);
            match dispatcher.one_way(ctx, h.type_id, frame.payload) {
                Some(mut fut) => match (&mut fut).now_or_never() {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        shared.error();
                        tracing::debug!(session = shared.id, type_id = h.type_id, error = %e, "one-way handler failed");
                    }
                    None => return Handled::OneWay(fut),
                },
                None => {
                    shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        FrameKind::Request => {
            let correlation = h.correlation;
            if let Some(name) = refused(h.type_id) {
                shared.error();
                let msg = format!(
                    "message {name} (type id {}) refused: its definition differs on the two sides (fingerprint mismatch)",
                    h.type_id
                );
                w.push(error_frame(correlation, codes::FINGERPRINT_MISMATCH, &msg));
                return Handled::Done;
            }
            let ctx = Context::new(session.clone(), Some(correlation));
            let len = frame.payload.len();
            let Some(mut fut) = dispatcher.request(ctx, h.type_id, frame.payload) else {
                shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
                let msg = format!("unknown message type id {} for a request", h.type_id);
                w.push(error_frame(correlation, codes::UNKNOWN_TYPE, &msg));
                return Handled::Done;
            };
            match (&mut fut).now_or_never() {
                Some(result) => w.push(reply_frame(shared, correlation, result)),
                None => return Handled::Request(correlation, len, fut),
            }
        }
        FrameKind::Response | FrameKind::Error => {
            let waiter = lock(&shared.pending).remove(&h.correlation);
            match waiter {
                Some(tx) => {
                    if tx.send(frame).is_err() {
                        shared.counters.late.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None => {
                    shared.counters.late.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        session = shared.id,
                        correlation = h.correlation,
                        "dropped late or unexpected reply"
                    );
                }
            }
        }
        FrameKind::Control(ControlOp::Ping) => {
            // Never echo much, and never keep a slice of the receive buffer
            // (it would pin the whole buffer while the pong waits).
            let echo = if frame.payload.len() <= MAX_PING_ECHO {
                Bytes::copy_from_slice(&frame.payload)
            } else {
                Bytes::new()
            };
            w.push(Frame::new(FrameHeader::control(ControlOp::Pong), echo));
        }
        FrameKind::Control(ControlOp::Pong) | FrameKind::Ack | FrameKind::Cancel => {}
        FrameKind::Control(ControlOp::Close) => {
            let reason = match ErrorBody::decode(&frame.payload) {
                Ok(b) => CloseReason::new(ClosedBy::Peer, b.code, b.message),
                Err(e) => CloseReason::new(
                    ClosedBy::Peer,
                    codes::UNSPECIFIED,
                    format!("close frame with a malformed reason: {e}"),
                ),
            };
            return Handled::End(reason);
        }
        FrameKind::Control(_) => {
            return Handled::End(CloseReason::new(
                ClosedBy::Error,
                codes::MALFORMED,
                format!("unexpected {} frame after the handshake", h.kind.name()),
            ));
        }
        _ => {
            shared.counters.unknown.fetch_add(1, Ordering::Relaxed);
        }
    }
    Handled::Done
}
