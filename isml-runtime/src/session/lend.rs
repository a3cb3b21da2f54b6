//! The receiving half of a session, and the lent fast path: a request
//! alone on an idle connection reads its own reply.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::task::{Poll, Waker, ready};

use futures_util::StreamExt;

use super::conn::transport_reason;
use super::{CloseReason, ClosedBy, Shared, codes, lock};
use crate::transport::{FrameStream, TransportError};
use crate::wire::{Assembled, FragmentError, Frame, FrameKind, Reassembler};

/// What the connection task reads: an end of the transport, `None` when it ended.
pub(super) type Item = Option<Result<Frame, TransportError>>;

/// The receiving half of the transport. The connection task reads it, except
/// while a request alone on an idle connection reads its own reply from its
/// caller's task ([`Lend`]): that saves the reply a hand-off (a wake-up of
/// the caller, often on another thread). Whatever else such a request reads
/// it hands to the connection task through `handoff`, which the task reads
/// before the transport, so frames are handled in the order they arrived.
pub(super) struct ReadSide {
    pub(super) rx: Option<FrameStream>,
    pub(super) handoff: VecDeque<Item>,
    /// What the connection task read ahead in a burst and did not handle:
    /// it comes before anything else.
    pub(super) ahead: VecDeque<Read>,
    /// A request is reading the transport.
    pub(super) lent: bool,
    /// The connection task is handling what it read (not waiting for more).
    pub(super) busy: bool,
    /// The connection task's waker, to give the transport back to it.
    pub(super) task: Option<Waker>,
    /// Joins fragmented messages (wire format §2.6).
    pub(super) joiner: Reassembler,
}

/// What the connection task reads: a whole message (fragments joined), the
/// reason the connection ends, or `None` when the peer ended it.
pub(super) type Read = Option<Result<Frame, CloseReason>>;

pub(super) fn fragment_reason(e: &FragmentError) -> CloseReason {
    let code = match e {
        FragmentError::TooLarge { .. } => codes::RESOURCE_EXHAUSTED,
        _ => codes::MALFORMED,
    };
    CloseReason::new(ClosedBy::Error, code, e.to_string())
}

impl ReadSide {
    /// The connection task's read: handed-over items first, then the
    /// transport unless a request is reading it. `register` is false for the
    /// probes of a burst (their waker is a no-op). Fragments are joined here
    /// and count as frames received and as signs of life.
    pub(super) fn poll_task(
        &mut self,
        cx: &mut std::task::Context<'_>,
        register: bool,
        shared: &Shared,
    ) -> Poll<Read> {
        if register {
            match &mut self.task {
                Some(w) if w.will_wake(cx.waker()) => {}
                t => *t = Some(cx.waker().clone()),
            }
        }
        if let Some(read) = self.ahead.pop_front() {
            self.busy = true;
            return Poll::Ready(read);
        }
        loop {
            let item = match self.handoff.pop_front() {
                Some(item) => item,
                None => {
                    let polled = match self.rx.as_mut() {
                        _ if self.lent => Poll::Pending,
                        Some(rx) => rx.poll_next_unpin(cx),
                        None => Poll::Ready(None),
                    };
                    match polled {
                        Poll::Ready(item) => item,
                        Poll::Pending => {
                            self.busy = false;
                            return Poll::Pending;
                        }
                    }
                }
            };
            self.busy = true;
            let frame = match item {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(transport_reason(&e)))),
                None => {
                    if let Some(h) = self.joiner.in_progress() {
                        let reason = CloseReason::new(
                            ClosedBy::Error,
                            codes::MALFORMED,
                            format!(
                                "connection ended inside a fragmented {} (type {}, correlation {}) after {} bytes",
                                h.kind.name(),
                                h.type_id,
                                h.correlation,
                                self.joiner.buffered()
                            ),
                        );
                        self.joiner.clear();
                        return Poll::Ready(Some(Err(reason)));
                    }
                    return Poll::Ready(None);
                }
            };
            if !frame.header.more && self.joiner.in_progress().is_none() {
                return Poll::Ready(Some(Ok(frame)));
            }
            match self.joiner.push(frame) {
                Ok(Assembled::Complete(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(Assembled::Pending) => {
                    let c = &shared.counters;
                    c.frames_in.fetch_add(1, Ordering::Relaxed);
                    c.last_activity_ms.store(
                        shared.started.elapsed().as_millis() as u64,
                        Ordering::Relaxed,
                    );
                }
                Err(e) => return Poll::Ready(Some(Err(fragment_reason(&e)))),
            }
        }
    }
}

/// A request reading its own reply from the transport, in its caller's task.
/// It starts only when the connection task is idle (waiting for frames,
/// nothing handed over); it stops at the first frame that is not its reply,
/// which it hands to the connection task. Dropped while reading (timeout,
/// cancellation), it gives the transport back.
pub(super) struct Lend<'a> {
    pub(super) shared: &'a Shared,
    pub(super) correlation: u64,
    /// This request is reading the transport.
    pub(super) active: bool,
    /// It no longer tries: the reply comes through the connection task.
    pub(super) done: bool,
}

impl Lend<'_> {
    pub(super) fn poll_reply(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Frame> {
        if self.done {
            return Poll::Pending;
        }
        let shared = self.shared;
        let mut r = lock(&shared.reader);
        if !self.active {
            if r.lent || r.busy || !r.handoff.is_empty() || !r.ahead.is_empty() || r.rx.is_none() {
                self.done = true;
                return Poll::Pending;
            }
            r.lent = true;
            self.active = true;
        }
        let Some(rx) = r.rx.as_mut() else {
            self.give_back(&mut r);
            return Poll::Pending;
        };
        let item = ready!(rx.poll_next_unpin(cx));
        match item {
            Some(Ok(frame))
                if matches!(frame.header.kind, FrameKind::Response | FrameKind::Error)
                    && frame.header.correlation == self.correlation
                    && !frame.header.more
                    && r.joiner.in_progress().is_none() =>
            {
                let c = &shared.counters;
                c.frames_in.fetch_add(1, Ordering::Relaxed);
                c.last_activity_ms.store(
                    shared.started.elapsed().as_millis() as u64,
                    Ordering::Relaxed,
                );
                self.give_back(&mut r);
                Poll::Ready(frame)
            }
            other => {
                r.handoff.push_back(other);
                self.give_back(&mut r);
                Poll::Pending
            }
        }
    }

    /// Gives the transport back to the connection task: polls it once with
    /// the task's waker, so that the task is woken by the next frame (or at
    /// once, when there is one or something was handed over).
    pub(super) fn give_back(&mut self, r: &mut ReadSide) {
        self.active = false;
        self.done = true;
        r.lent = false;
        let Some(task) = r.task.clone() else {
            return;
        };
        if r.handoff.is_empty() {
            let Some(rx) = r.rx.as_mut() else {
                return;
            };
            match rx.poll_next_unpin(&mut std::task::Context::from_waker(&task)) {
                Poll::Pending => return,
                Poll::Ready(item) => r.handoff.push_back(item),
            }
        }
        task.wake();
    }
}

impl Drop for Lend<'_> {
    fn drop(&mut self) {
        if self.active {
            let mut r = lock(&self.shared.reader);
            self.give_back(&mut r);
        }
    }
}

#[cfg(test)]
mod tests {

    use super::super::{Established, RequestError, Session, SessionConfig, start};
    use super::*;
    use crate::TopLevel;
    use crate::descriptor::{MessageDescriptor, MessageKind};
    use crate::dispatch::Dispatcher;
    use crate::transport::Transport;
    use crate::wire::{ControlOp, DecodeError, EncodeError, FrameHeader, Reader};
    use bytes::Bytes;
    use futures_util::SinkExt;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;
    use tokio::time::Instant;

    macro_rules! empty_message {
        ($t:ident, $id:expr) => {
            #[derive(Debug, Clone, Default, PartialEq)]
            struct $t;
            impl crate::Message for $t {
                const NAME: &'static str = concat!("test.", stringify!($t));
                fn encoded_len(&self) -> usize {
                    0
                }
                fn validate(&self) -> Result<(), EncodeError> {
                    Ok(())
                }
                fn encode_raw<B: bytes::BufMut + ?Sized>(&self, _: &mut B) {}
                fn decode_reader(_: &mut Reader<'_>) -> Result<Self, DecodeError> {
                    Ok($t)
                }
            }
            impl TopLevel for $t {
                const TYPE_ID: u32 = $id;
                fn fingerprint() -> u64 {
                    0
                }
                fn descriptor() -> &'static MessageDescriptor {
                    static D: MessageDescriptor = MessageDescriptor {
                        name: stringify!($t),
                        package: "test",
                        full_name: concat!("test.", stringify!($t)),
                        kind: MessageKind::Message,
                        id: Some($id),
                        fields: &[],
                        docs: "",
                        fingerprint: 0,
                    };
                    &D
                }
            }
        };
    }
    empty_message!(Note, 1);
    empty_message!(Ask, 2);
    empty_message!(Answer, 3);
    empty_message!(Slow, 4);

    /// A session over an in-memory pipe whose other end is driven by hand:
    /// it answers `Ask` with three `Note`s and a ping before the `Answer`,
    /// pings with pongs, and never answers `Slow`. Returns the session, the
    /// count of `Note`s dispatched, the pongs the peer received, and a
    /// sender of extra frames for the peer to write.
    fn session_with_peer(
        keepalive: Option<Duration>,
    ) -> (
        Session,
        Arc<AtomicUsize>,
        Arc<AtomicUsize>,
        tokio::sync::mpsc::UnboundedSender<Frame>,
    ) {
        let (a, b) = tokio::io::duplex(64 * 1024);
        let (rx, tx, info) = Transport::from_io(a, "mem", "peer".into(), None).split_tx();
        let (mut prx, mut ptx, _) = Transport::from_io(b, "mem", "local".into(), None).split();
        let notes = Arc::new(AtomicUsize::new(0));
        let n = notes.clone();
        let dispatcher = Dispatcher::new().on::<Note, _, _>(move |_ctx, _note| {
            let n = n.clone();
            async move {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
        let config = SessionConfig {
            keepalive,
            ..SessionConfig::default()
        };
        let est = Established {
            id: 1,
            device_id: "dev".into(),
            refused: Vec::new(),
            config: Arc::new(config),
            initiator: true,
            peer_services: Vec::new(),
            peer_window: 16,
            link: None,
        };
        let (session, run) = start(est, rx, tx, info, Arc::new(dispatcher), |_| {});
        tokio::spawn(run);
        let pongs = Arc::new(AtomicUsize::new(0));
        let p = pongs.clone();
        let (extra, mut extra_rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
        tokio::spawn(async move {
            loop {
                let frame = tokio::select! {
                    f = prx.next() => match f {
                        Some(Ok(f)) => f,
                        _ => break,
                    },
                    Some(f) = extra_rx.recv() => {
                        if ptx.send(f).await.is_err() {
                            break;
                        }
                        continue;
                    }
                };
                let h = frame.header;
                let mut out = Vec::new();
                match h.kind {
                    FrameKind::Request if h.type_id == Ask::TYPE_ID => {
                        out.push(Frame::new(
                            FrameHeader::one_way(Note::TYPE_ID),
                            Bytes::new(),
                        ));
                        out.push(Frame::new(
                            FrameHeader::control(ControlOp::Ping),
                            Bytes::new(),
                        ));
                        out.push(Frame::new(
                            FrameHeader::one_way(Note::TYPE_ID),
                            Bytes::new(),
                        ));
                        out.push(Frame::new(
                            FrameHeader::one_way(Note::TYPE_ID),
                            Bytes::new(),
                        ));
                        out.push(Frame::new(
                            FrameHeader::response(Answer::TYPE_ID, h.correlation),
                            Bytes::new(),
                        ));
                    }
                    FrameKind::Request if h.type_id == Answer::TYPE_ID => {
                        out.push(Frame::new(
                            FrameHeader::response(Answer::TYPE_ID, h.correlation),
                            Bytes::new(),
                        ));
                    }
                    FrameKind::Control(ControlOp::Ping) => {
                        out.push(Frame::new(
                            FrameHeader::control(ControlOp::Pong),
                            Bytes::new(),
                        ));
                    }
                    FrameKind::Control(ControlOp::Pong) => {
                        p.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }
                for f in out {
                    if ptx.send(f).await.is_err() {
                        return;
                    }
                }
            }
        });
        (session, notes, pongs, extra)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_before_a_lone_requests_reply_are_dispatched_before_it_in_order() {
        let (session, notes, pongs, _extra) = session_with_peer(None);
        for round in 1..=50 {
            // Alone on an idle connection: the request reads from the
            // transport itself; the notes and the ping that precede its reply
            // are handled by the connection task before the reply returns.
            let _: Answer = session.request(&Ask).await.expect("reply");
            assert_eq!(notes.load(Ordering::SeqCst), 3 * round);
            assert_eq!(session.stats().frames_in, 5 * round as u64);
        }
        // Every ping was answered.
        for _ in 0..200 {
            if pongs.load(Ordering::SeqCst) == 50 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pongs.load(Ordering::SeqCst), 50);
        assert_eq!(session.stats().pending_requests, 0);
        assert!(!session.is_closed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_request_that_times_out_gives_the_transport_back() {
        let (session, notes, _pongs, extra) = session_with_peer(None);
        let r = session
            .request_with_timeout::<Answer, _>(&Slow, Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(RequestError::Timeout { .. })), "{r:?}");
        // The connection task reads again: a one-way message from the peer is
        // dispatched with no request outstanding.
        extra
            .send(Frame::new(
                FrameHeader::one_way(Note::TYPE_ID),
                Bytes::new(),
            ))
            .unwrap();
        for _ in 0..400 {
            if notes.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(notes.load(Ordering::SeqCst), 1);
        // A late reply to the timed-out request is dropped and counted.
        extra
            .send(Frame::new(
                FrameHeader::response(Answer::TYPE_ID, 1),
                Bytes::new(),
            ))
            .unwrap();
        let _: Answer = session.request(&Answer).await.expect("reply");
        for _ in 0..400 {
            if session.stats().late_replies == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(session.stats().late_replies, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_read_by_lone_requests_keep_the_session_alive() {
        let (session, _notes, _pongs, _extra) = session_with_peer(Some(Duration::from_millis(100)));
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(500) {
            let _: Answer = session.request(&Answer).await.expect("reply");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!session.is_closed(), "{:?}", session.close_reason());
    }
}
