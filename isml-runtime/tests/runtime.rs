//! Sessions, handshake, dispatch, server and client over the in-memory
//! transport, with `charging.v1` types declared in `common`. Timeouts and
//! keep-alive run on paused tokio time: deterministic on a loaded machine.
#![cfg(feature = "runtime")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use isml_runtime::client::{Backoff, Client, ConnectError};
use isml_runtime::dispatch::{Dispatcher, HandlerError};
use isml_runtime::handshake::{Credentials, Hello, TokenAuthenticator};
use isml_runtime::server::Server;
use isml_runtime::session::{ClosedBy, Key, RequestError, SendError, codes};
use isml_runtime::transport::{self, ConnectOptions, Endpoint};
use isml_runtime::wire::{ControlOp, ErrorBody, Frame, FrameHeader, FrameKind};
use tokio::sync::mpsc;
use tokio::time::Instant;

use common::{AnyMessage, ChargeStarted, Fault, GetFirmware, Reboot, StartCharging, entry};

fn start(slot: u8, max_current_ma: u32) -> StartCharging {
    StartCharging {
        slot,
        target_soc_percent: 80,
        max_current_ma: Some(max_current_ma),
    }
}

/// Replies to StartCharging echoing the slot and `max_current_ma` (as `eta_s`);
/// slot 99 fails, slot 50 answers after 2 s; Reboot one-ways are counted.
fn dispatcher(reboots: Arc<AtomicU64>) -> Dispatcher {
    Dispatcher::new()
        .on_request::<StartCharging, ChargeStarted, _, _>(|_ctx, m| async move {
            if m.slot == 99 {
                return Err(HandlerError::new(1001, "no such slot"));
            }
            if m.slot == 50 {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Ok(ChargeStarted {
                slot: m.slot,
                eta_s: m.max_current_ma,
                refused: None,
            })
        })
        .on::<Reboot, _, _>(move |_ctx, _m| {
            let reboots = reboots.clone();
            async move {
                reboots.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        })
}

async fn server(name: &str) -> (Server, Arc<AtomicU64>) {
    let reboots = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .listen(format!("mem://{name}"))
        .types(AnyMessage::types())
        .dispatcher(dispatcher(reboots.clone()))
        .start()
        .await
        .unwrap();
    (server, reboots)
}

fn client(name: &str) -> isml_runtime::client::ClientBuilder {
    Client::builder(format!("mem://{name}")).types(AnyMessage::types())
}

#[tokio::test]
async fn request_reply_and_one_way_over_mem() {
    let (server, reboots) = server("rt-basic").await;
    let c = client("rt-basic")
        .device_id("cab-1")
        .connect()
        .await
        .unwrap();
    let s = c.session().unwrap();
    assert_eq!(s.device_id(), "cab-1");
    assert!(s.id() >= 1);

    s.send(&Reboot { delay_s: 1 }).await.unwrap();
    let reply: ChargeStarted = s.request(&start(3, 700)).await.unwrap();
    assert_eq!((reply.slot, reply.eta_s), (3, Some(700)));
    // One-way frames are handled in order before the request that follows them.
    assert_eq!(reboots.load(Ordering::SeqCst), 1);

    let server_side = server.session_by_device("cab-1").unwrap();
    assert_eq!(server_side.id(), s.id());
    let st = server_side.stats();
    assert_eq!(st.frames_in, 2);
    assert!(st.bytes_in > 0 && st.bytes_out > 0);
    assert_eq!(s.stats().pending_requests, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn handler_errors_and_unknown_types_become_error_responses() {
    let (server, _) = server("rt-errors").await;
    let s = client("rt-errors")
        .connect()
        .await
        .unwrap()
        .session()
        .unwrap();

    let e = s.request::<ChargeStarted>(&start(99, 1)).await.unwrap_err();
    assert!(
        matches!(&e, RequestError::Remote { code: 1001, message, .. } if message == "no such slot"),
        "{e}"
    );
    // No request handler for GetFirmware.
    let e = s
        .request::<ChargeStarted>(&GetFirmware {})
        .await
        .unwrap_err();
    assert_eq!(e.remote_code(), Some(codes::UNKNOWN_TYPE), "{e}");
    // No one-way handler for Fault: counted on the server.
    s.send(&Fault::default()).await.unwrap();
    let _: ChargeStarted = s.request(&start(1, 1)).await.unwrap();
    let st = server.sessions()[0].stats();
    assert_eq!(st.unknown_messages, 2);
    assert_eq!(server.session_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_are_refused() {
    let server = Server::builder()
        .listen("mem://rt-auth")
        .authenticator(TokenAuthenticator::new(["s3cret"]))
        .start()
        .await
        .unwrap();
    let e = client("rt-auth")
        .credentials(Credentials::Token("wrong".into()))
        .connect_session()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ConnectError::Refused { code: codes::UNAUTHENTICATED, message, .. } if message.contains("invalid token")),
        "{e}"
    );
    let e = client("rt-auth").connect_session().await.unwrap_err();
    assert!(matches!(e, ConnectError::Refused { code: 6, .. }), "{e}");
    let ok = client("rt-auth")
        .credentials(Credentials::Token("s3cret".into()))
        .connect_session()
        .await
        .unwrap();
    assert!(!ok.is_closed());
    assert_eq!(server.stats().handshake_failures, 2);
    server.shutdown().await;
}

async fn raw(name: &str) -> transport::Transport {
    let ep: Endpoint = format!("mem://{name}").parse().unwrap();
    transport::connect(&ep, &ConnectOptions::default())
        .await
        .unwrap()
}

fn expect_close(frame: Option<Result<Frame, transport::TransportError>>) -> (u64, String) {
    let f = frame.expect("a frame").expect("no error");
    assert_eq!(f.header.kind, FrameKind::Control(ControlOp::Close));
    let b = ErrorBody::decode(&f.payload).unwrap();
    (b.code, b.message.to_owned())
}

#[tokio::test]
async fn version_mismatch_is_refused_with_code_11() {
    let (server, _) = server("rt-version").await;
    let mut t = raw("rt-version").await;
    let hello = Hello {
        version: 2,
        device_id: String::new(),
        agent: "future".into(),
        credentials: Credentials::None,
        types: vec![],
        stream_window: 16,
        services: vec![],
    };
    t.send(Frame::new(
        FrameHeader::control(ControlOp::Hello),
        hello.encode(),
    ))
    .await
    .unwrap();
    let (code, message) = expect_close(t.next().await);
    assert_eq!(code, codes::VERSION_MISMATCH);
    assert!(message.contains("protocol 1, client 2"), "{message}");
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn silent_client_is_closed_after_the_handshake_deadline() {
    let server = Server::builder()
        .listen("mem://rt-silent")
        .handshake_timeout(Duration::from_secs(5))
        .start()
        .await
        .unwrap();
    let mut t = raw("rt-silent").await;
    let t0 = Instant::now();
    let (code, message) = expect_close(t.next().await);
    assert_eq!(code, codes::DEADLINE_EXCEEDED, "{message}");
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert!(
        t.next().await.is_none(),
        "connection closed after the reason"
    );
    assert_eq!(server.stats().handshake_failures, 1);
    server.shutdown().await;
}

/// A client's table whose StartCharging fingerprint is not the server's.
static BAD_START: LazyLock<[(u32, &str, u64); 2]> = LazyLock::new(|| {
    [
        (5, "charging.v1.StartCharging", 0x0123_4567_89ab_cdef),
        entry::<Reboot>(),
    ]
});

#[tokio::test]
async fn fingerprint_mismatch_refuses_only_that_message() {
    let (server, reboots) = server("rt-fp").await;
    let s = Client::builder("mem://rt-fp")
        .types(&*BAD_START)
        .connect_session()
        .await
        .unwrap();
    assert_eq!(s.refused_types(), &[(5, "charging.v1.StartCharging")]);
    let e = s.request::<ChargeStarted>(&start(1, 1)).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            RequestError::Send(SendError::FingerprintMismatch { type_id: 5, .. })
        ),
        "{text}"
    );
    assert!(text.contains("charging.v1.StartCharging"), "{text}");
    // Other messages keep working.
    s.send(&Reboot { delay_s: 2 }).await.unwrap();
    s.close("done").await;
    server.shutdown().await;
    assert_eq!(reboots.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn server_refuses_mismatched_requests_with_code_10() {
    let (server, _) = server("rt-fp2").await;
    let s = Client::builder("mem://rt-fp2")
        .types(&*BAD_START)
        .connect_session()
        .await
        .unwrap();
    let srv = server.sessions().pop().unwrap();
    assert_eq!(srv.refused_types(), &[(5, "charging.v1.StartCharging")]);
    // Bypass the client's own check: a raw request frame of the refused type.
    // Its error response has no pending request, so it counts as a late reply.
    let payload = isml_runtime::Message::encode_to_vec(&start(1, 1)).unwrap();
    s.send_frame(Frame::new(FrameHeader::request(5, 12345), payload))
        .await
        .unwrap();
    s.send(&Reboot { delay_s: 0 }).await.unwrap();
    // A request of another type round-trips after the refused one was answered.
    let e = s
        .request::<ChargeStarted>(&GetFirmware {})
        .await
        .unwrap_err();
    assert_eq!(e.remote_code(), Some(codes::UNKNOWN_TYPE));
    assert_eq!(s.stats().late_replies, 1);
    assert!(srv.stats().errors >= 1);
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn dead_peer_is_detected_within_one_and_a_half_intervals() {
    let (tx, mut closed) = mpsc::unbounded_channel();
    let server = Server::builder()
        .listen("mem://rt-keepalive")
        .keepalive(Some(Duration::from_secs(10)))
        .on_close(move |_s, reason| {
            let _ = tx.send((Instant::now(), reason.clone()));
        })
        .start()
        .await
        .unwrap();
    // A peer that completes the handshake and then never answers anything.
    let mut t = raw("rt-keepalive").await;
    let hello = Hello {
        version: 1,
        device_id: "zombie".into(),
        agent: String::new(),
        credentials: Credentials::None,
        types: vec![],
        stream_window: 16,
        services: vec![],
    };
    t.send(Frame::new(
        FrameHeader::control(ControlOp::Hello),
        hello.encode(),
    ))
    .await
    .unwrap();
    let welcome = t.next().await.unwrap().unwrap();
    let t0 = Instant::now();
    assert_eq!(welcome.header.kind, FrameKind::Control(ControlOp::Welcome));
    let ping = t.next().await.unwrap().unwrap();
    assert_eq!(ping.header.kind, FrameKind::Control(ControlOp::Ping));
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    let (at, reason) = closed.recv().await.unwrap();
    assert_eq!(reason.by, ClosedBy::Error);
    assert_eq!(reason.code, codes::DEADLINE_EXCEEDED);
    assert!(at - t0 <= Duration::from_secs(15), "{:?}", at - t0);
    assert!(at - t0 >= Duration::from_secs(10));
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn live_peer_survives_keepalive() {
    let server = Server::builder()
        .listen("mem://rt-alive")
        .keepalive(Some(Duration::from_secs(1)))
        .start()
        .await
        .unwrap();
    // The client sends nothing itself; its reader answers the server's pings.
    let s = client("rt-alive")
        .keepalive(None)
        .connect_session()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!s.is_closed());
    let srv = server.sessions().pop().unwrap();
    assert!(srv.stats().frames_in >= 50, "{:?}", srv.stats());
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn request_timeout_then_late_reply_is_dropped_not_misrouted() {
    let (server, _) = server("rt-late").await;
    let s = client("rt-late")
        .keepalive(None)
        .connect_session()
        .await
        .unwrap();
    let e = s
        .request_with_timeout::<ChargeStarted, _>(&start(50, 1), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(e, RequestError::Timeout { .. }), "{e}");
    assert_eq!(s.stats().pending_requests, 0);
    // The slow handler answers at t = 2 s; the next request must get its own reply.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r: ChargeStarted = s.request(&start(7, 77)).await.unwrap();
    assert_eq!((r.slot, r.eta_s), (7, Some(77)));
    assert_eq!(s.stats().late_replies, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_thousand_concurrent_requests_on_one_session() {
    let (server, _) = server("rt-1000").await;
    let s = client("rt-1000").connect_session().await.unwrap();
    let replies = futures_util::future::join_all((0..1000u32).map(|i| {
        let s = s.clone();
        async move {
            (
                i,
                s.request::<ChargeStarted>(&start((i % 40) as u8 + 100, i))
                    .await,
            )
        }
    }))
    .await;
    for (i, r) in replies {
        let r = r.unwrap();
        assert_eq!((r.slot, r.eta_s), ((i % 40) as u8 + 100, Some(i)));
    }
    assert_eq!(s.stats().pending_requests, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_close_from_either_side_carries_the_reason() {
    let (tx, mut closed) = mpsc::unbounded_channel();
    let server = Server::builder()
        .listen("mem://rt-close")
        .on_close(move |s, reason| {
            let _ = tx.send((s.device_id().to_owned(), reason.clone()));
        })
        .start()
        .await
        .unwrap();
    let a = client("rt-close")
        .device_id("a")
        .connect_session()
        .await
        .unwrap();
    a.close("bye").await;
    let (dev, reason) = closed.recv().await.unwrap();
    assert_eq!(dev, "a");
    assert_eq!(
        (reason.by, reason.code, reason.message.as_str()),
        (ClosedBy::Peer, 0, "bye")
    );

    let b = client("rt-close")
        .device_id("b")
        .connect_session()
        .await
        .unwrap();
    server
        .session_by_device("b")
        .unwrap()
        .close("maintenance")
        .await;
    let reason = b.closed().await;
    assert_eq!(
        (reason.by, reason.message.as_str()),
        (ClosedBy::Peer, "maintenance")
    );
    let e = b.send(&Reboot::default()).await.unwrap_err();
    assert!(matches!(e, SendError::Closed { .. }));
    server.shutdown().await;
}

const ROLE: Key<String> = Key::new("role");
const SLOTS: Key<Vec<u8>> = Key::new("slots");

#[tokio::test]
async fn lookup_properties_and_broadcast() {
    let server = Server::builder()
        .listen("mem://rt-lookup")
        .on_open(|s| {
            let role = if s.device_id().starts_with("cab") {
                "cabinet"
            } else {
                "tool"
            };
            s.set(&ROLE, role.to_owned());
        })
        .start()
        .await
        .unwrap();
    let (tx, mut got) = mpsc::unbounded_channel();
    let mut sessions = Vec::new();
    for dev in ["cab-1", "cab-2", "laptop"] {
        let tx = tx.clone();
        let d = Dispatcher::new().on::<Reboot, _, _>(move |ctx, m| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((ctx.session().device_id().to_owned(), m.delay_s));
                Ok(())
            }
        });
        sessions.push(
            client("rt-lookup")
                .device_id(dev)
                .dispatcher(d)
                .connect_session()
                .await
                .unwrap(),
        );
    }
    assert_eq!(server.session_count(), 3);
    let cabinets = server.find(|s| s.get(&ROLE).is_some_and(|r| *r == "cabinet"));
    assert_eq!(cabinets.len(), 2);
    let one = &cabinets[0];
    assert_eq!(server.session(one.id()).as_ref(), Some(one));
    one.set(&SLOTS, vec![1, 2]);
    assert_eq!(one.get(&SLOTS).as_deref(), Some(&vec![1, 2]));
    assert_eq!(
        one.get(&Key::<u32>::new("slots")),
        None,
        "same name, other type"
    );
    assert_eq!(one.remove(&SLOTS).as_deref(), Some(&vec![1, 2]));

    let report = server.broadcast(&Reboot { delay_s: 9 }).unwrap();
    assert_eq!(report.sent, 3);
    let mut seen: Vec<_> = vec![
        got.recv().await.unwrap(),
        got.recv().await.unwrap(),
        got.recv().await.unwrap(),
    ];
    seen.sort();
    assert_eq!(
        seen,
        [
            ("cab-1".to_owned(), 9),
            ("cab-2".to_owned(), 9),
            ("laptop".to_owned(), 9)
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_queued_messages_then_closes_with_code_9() {
    let (tx, mut got) = mpsc::unbounded_channel();
    let d = Dispatcher::new().on::<Reboot, _, _>(move |_ctx, m| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(m.delay_s);
            Ok(())
        }
    });
    let server = Server::builder()
        .listen("mem://rt-drain")
        .start()
        .await
        .unwrap();
    let c = client("rt-drain")
        .dispatcher(d)
        .connect_session()
        .await
        .unwrap();
    let srv = server.sessions().pop().unwrap();
    for i in 0..200u16 {
        srv.send(&Reboot { delay_s: i }).await.unwrap();
    }
    server.shutdown().await;
    let reason = c.closed().await;
    assert_eq!(
        (reason.by, reason.code),
        (ClosedBy::Peer, codes::UNAVAILABLE)
    );
    let mut n = 0;
    while let Ok(v) = got.try_recv() {
        assert_eq!(v, n);
        n += 1;
    }
    assert_eq!(n, 200, "every queued message arrived before the close");
    assert_eq!(server.session_count(), 0);
}

#[tokio::test]
async fn connection_limit_refuses_at_once() {
    let server = Server::builder()
        .listen("mem://rt-limit")
        .max_connections(2)
        .start()
        .await
        .unwrap();
    let _a = client("rt-limit").connect_session().await.unwrap();
    let _b = client("rt-limit").connect_session().await.unwrap();
    let e = client("rt-limit").connect_session().await.unwrap_err();
    assert!(
        matches!(&e, ConnectError::Refused { code: codes::RESOURCE_EXHAUSTED, message, .. } if message.contains("limit of 2")),
        "{e}"
    );
    assert_eq!(server.stats().refused, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn client_reconnects_with_backoff() {
    let server = Server::builder()
        .listen("mem://rt-reconnect")
        .start()
        .await
        .unwrap();
    let c = client("rt-reconnect")
        .device_id("cab-9")
        .reconnect(Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
            jitter: 0.5,
        })
        .connect()
        .await
        .unwrap();
    let first = c.session().unwrap();
    server
        .session_by_device("cab-9")
        .unwrap()
        .close("kick")
        .await;
    first.closed().await;
    let second = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let s = c.wait_session().await.unwrap();
            if s != first {
                return s;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_ne!(second.id(), first.id());
    assert_eq!(c.reconnects(), 1);
    c.close("done").await;
    assert!(c.wait_session().await.is_err());
    server.shutdown().await;
}

#[test]
fn backoff_grows_to_the_max_with_bounded_jitter() {
    let b = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        jitter: 0.5,
    };
    for attempt in 0..40 {
        let base = Duration::from_millis(100)
            .saturating_mul(1 << attempt.min(20))
            .min(Duration::from_secs(2));
        let d = b.delay(attempt);
        assert!(d <= base && d >= base / 2, "attempt {attempt}: {d:?}");
    }
    let none = Backoff { jitter: 0.0, ..b };
    assert_eq!(none.delay(3), Duration::from_millis(800));
}

#[tokio::test]
async fn typed_table_handler_receives_any_message() {
    let (tx, mut got) = mpsc::unbounded_channel();
    let d = Dispatcher::new().on_table(
        AnyMessage::types(),
        AnyMessage::decode,
        move |_ctx, m: AnyMessage| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(m.type_id());
                Ok(())
            }
        },
    );
    let server = Server::builder()
        .listen("mem://rt-table")
        .dispatcher(d)
        .start()
        .await
        .unwrap();
    let s = client("rt-table").connect_session().await.unwrap();
    s.send(&Reboot::default()).await.unwrap();
    s.send(&Fault::default()).await.unwrap();
    assert_eq!(got.recv().await, Some(33));
    assert_eq!(got.recv().await, Some(4));
    let _ = Bytes::new();
    server.shutdown().await;
}

#[test]
fn the_test_table_lists_each_message_once_by_id() {
    // The ids and names the tests above write into raw frames and expect in errors.
    let table: Vec<(u32, &str)> = AnyMessage::types()
        .iter()
        .map(|&(id, name, _)| (id, name))
        .collect();
    assert_eq!(
        table,
        [
            (1, "charging.v1.StatusReport"),
            (4, "charging.v1.Fault"),
            (5, "charging.v1.StartCharging"),
            (7, "charging.v1.ChargeStarted"),
            (33, "charging.v1.Reboot"),
            (35, "charging.v1.GetFirmware"),
        ]
    );
    let mut fingerprints: Vec<u64> = AnyMessage::types().iter().map(|e| e.2).collect();
    fingerprints.sort_unstable();
    fingerprints.dedup();
    assert_eq!(fingerprints.len(), 6, "distinct fingerprints");
    let reboot = isml_runtime::Message::encode_to_vec(&Reboot { delay_s: 5 }).unwrap();
    assert_eq!(
        AnyMessage::decode(33, reboot.clone().into()).unwrap(),
        AnyMessage::Reboot(Reboot { delay_s: 5 })
    );
    assert!(matches!(
        AnyMessage::decode(2, reboot.into()),
        Err(isml_runtime::wire::DecodeError::UnknownMessageType { type_id: 2 })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_client_is_already_listed_by_the_server() {
    let (server, _) = server("rt-registered").await;
    // Repeat: the race this guards against (welcome written before the server
    // registered the session) showed up only sometimes.
    for i in 0..50 {
        let device = format!("cab-{i}");
        let c = client("rt-registered")
            .device_id(device.clone())
            .connect()
            .await
            .unwrap();
        let listed = server
            .session_by_device(&device)
            .expect("the server lists a session as soon as the client's connect returns");
        assert_eq!(listed.device_id(), device);
        c.close("done").await;
    }
    server.shutdown().await;
}
