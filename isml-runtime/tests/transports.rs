//! Every transport end to end over loopback (TCP, TLS with client
//! certificates, WebSocket) and a real pseudo-terminal pair (serial), plus
//! hostile peers on raw sockets: malformed and oversized frames, a peer that
//! stops reading. Each test needs `tcp` and its own transport's feature.
#![cfg(feature = "tcp")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::server::Server;
use isml_runtime::session::{CloseReason, ClosedBy, PRINCIPAL, SendError, codes};
use isml_runtime::wire::{ControlOp, ErrorBody, Frame, FrameHeader, FrameKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use common::{AnyMessage, ChargeStarted, Reboot, StartCharging, StatusReport};

/// Generous bound for real-time waits on a loaded 2-core machine.
const PATIENCE: Duration = Duration::from_secs(30);

fn dispatcher(reboots: Arc<AtomicU64>) -> Dispatcher {
    Dispatcher::new()
        .on_request::<StartCharging, ChargeStarted, _, _>(|ctx, m| async move {
            // The principal from authentication is visible to handlers.
            let eta = ctx.get(&PRINCIPAL).map_or(0, |p| p.len() as u32);
            Ok(ChargeStarted {
                slot: m.slot,
                eta_s: Some(eta),
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

fn start(slot: u8) -> StartCharging {
    StartCharging {
        slot,
        target_soc_percent: 90,
        max_current_ma: None,
    }
}

#[cfg(any(feature = "websocket", feature = "tls"))]
async fn exercise(url: &str, builder: isml_runtime::client::ClientBuilder) {
    let s = tokio::time::timeout(PATIENCE, builder.connect_session())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    for slot in 0..20 {
        s.send(&Reboot { delay_s: 1 }).await.unwrap();
        let r: ChargeStarted = s.request(&start(slot)).await.unwrap();
        assert_eq!(r.slot, slot);
    }
    let st = s.stats();
    assert_eq!(st.frames_out, 40, "{url}");
    assert_eq!(st.frames_in, 20, "{url}");
    assert!(st.bytes_out > 40 && st.bytes_in > 20, "{url}: {st:?}");
    s.close("done").await;
}

#[cfg(feature = "websocket")]
#[tokio::test]
async fn tcp_and_websocket_end_to_end_on_one_server() {
    use isml_runtime::client::ConnectError;

    let reboots = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .listen("ws://127.0.0.1:0/isml")
        .types(AnyMessage::types())
        .dispatcher(dispatcher(reboots.clone()))
        .start()
        .await
        .unwrap();
    let urls = server.urls().to_vec();
    assert!(urls[0].starts_with("tcp://127.0.0.1:") && !urls[0].ends_with(":0"));
    assert!(urls[1].ends_with("/isml"));
    for url in &urls {
        exercise(url, Client::builder(url).types(AnyMessage::types())).await;
    }
    assert_eq!(reboots.load(Ordering::SeqCst), 40);
    // A WebSocket client on the wrong path is turned away by the HTTP upgrade.
    let wrong = urls[1].replace("/isml", "/other");
    let e = Client::builder(&wrong).connect_session().await.unwrap_err();
    assert!(matches!(e, ConnectError::Transport(_)), "{e}");
    server.shutdown().await;
}

#[cfg(feature = "tls")]
mod tls {
    use super::*;
    use isml_runtime::handshake::{AuthError, Identity, auth_fn};
    use isml_runtime::transport::tls::{client_config, rustls, server_config};

    use crate::common::pki::{key, pki};

    #[tokio::test]
    async fn mutual_tls_passes_the_client_identity_to_authentication() {
        let pki = pki();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca.clone()).unwrap();
        let srv_cfg = server_config(
            vec![pki.server.0.clone()],
            key(&pki.server.1),
            Some(roots.clone()),
        )
        .unwrap();
        let expected = pki.client.0.to_vec();
        let auth = auth_fn(move |req| match req.peer_certificates {
            Some(chain) if chain.first() == Some(&expected) => Ok(Identity {
                device_id: Some("cabinet-17".into()),
                principal: Some("cabinet-17.example".into()),
            }),
            _ => Err(AuthError("client certificate required".into())),
        });
        let server = Server::builder()
            .listen("tls://127.0.0.1:0")
            .tls(srv_cfg)
            .authenticator(auth)
            .types(AnyMessage::types())
            .dispatcher(dispatcher(Arc::new(AtomicU64::new(0))))
            .start()
            .await
            .unwrap();
        let url = server.urls()[0].replace("127.0.0.1", "localhost");
        let with_cert = client_config(
            roots.clone(),
            Some((vec![pki.client.0.clone()], key(&pki.client.1))),
        )
        .unwrap();
        let s = Client::builder(&url)
            .tls(with_cert.clone())
            .types(AnyMessage::types())
            .connect_session()
            .await
            .unwrap();
        assert_eq!(s.device_id(), "cabinet-17", "assigned from the certificate");
        let r: ChargeStarted = s.request(&start(4)).await.unwrap();
        assert_eq!(r.eta_s, Some("cabinet-17.example".len() as u32));
        exercise(
            &url,
            Client::builder(&url)
                .tls(with_cert)
                .types(AnyMessage::types()),
        )
        .await;

        // Without a client certificate the TLS server refuses the connection.
        let without = client_config(roots, None).unwrap();
        let r = tokio::time::timeout(
            PATIENCE,
            Client::builder(&url).tls(without).connect_session(),
        )
        .await
        .unwrap();
        assert!(r.is_err());
        s.close("bye").await;
        server.shutdown().await;
    }
}

#[cfg(feature = "serial")]
#[tokio::test]
async fn serial_over_a_real_pty_pair() {
    use isml_runtime::transport::serial::PtyPair;

    let pty = PtyPair::open().unwrap();
    let url = pty.url(115_200);
    let reboots = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .listen(&url)
        .types(AnyMessage::types())
        .dispatcher(dispatcher(reboots.clone()))
        .start()
        .await
        .unwrap();
    let device = pty.into_transport(None).unwrap();
    let counters = device.info().counters.clone();
    let s = tokio::time::timeout(
        PATIENCE,
        Client::builder(&url)
            .types(AnyMessage::types())
            .connect_over(device),
    )
    .await
    .unwrap()
    .unwrap();
    for slot in 0..20 {
        s.send(&Reboot { delay_s: 1 }).await.unwrap();
        let r: ChargeStarted = s.request(&start(slot)).await.unwrap();
        assert_eq!(r.slot, slot);
    }
    // A larger message crosses the line intact (COBS blocks over 254 bytes).
    let big = StatusReport {
        station_id: "x".repeat(60),
        serial: vec![0u8; 32].into(),
        ..Default::default()
    };
    s.send(&big).await.unwrap();
    let _: ChargeStarted = s.request(&start(1)).await.unwrap();
    assert_eq!(reboots.load(Ordering::SeqCst), 20);
    assert_eq!(counters.corrupt_frames(), 0);
    assert_eq!(server.sessions()[0].scheme(), "serial");
    s.close("bye").await;
    server.shutdown().await;
}

/// A hand-rolled client on a raw TCP socket: the handshake bytes, then whatever the test writes.
async fn raw_session(url: &str) -> tokio::net::TcpStream {
    let addr = url.trim_start_matches("tcp://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let hello = isml_runtime::handshake::Hello {
        version: 1,
        device_id: "raw".into(),
        agent: String::new(),
        credentials: Default::default(),
        types: vec![],
        stream_window: 16,
        services: vec![],
    };
    let mut buf = bytes::BytesMut::new();
    isml_runtime::wire::put_stream_frame(
        &mut buf,
        &FrameHeader::control(ControlOp::Hello),
        &hello.encode(),
        1 << 20,
    )
    .unwrap();
    sock.write_all(&buf).await.unwrap();
    // Read the welcome frame: length prefix, then that many + 1 bytes.
    let mut prefix = Vec::new();
    let len = loop {
        prefix.push(sock.read_u8().await.unwrap());
        match isml_runtime::wire::varint::get(&prefix, 0) {
            Ok((len, _)) => break len as usize,
            Err(isml_runtime::wire::DecodeError::UnexpectedEnd { .. }) => {}
            Err(e) => panic!("bad length prefix: {e}"),
        }
    };
    let mut frame = vec![0; len + 1];
    sock.read_exact(&mut frame).await.unwrap();
    assert_eq!(frame[0], 0x72, "welcome lead byte");
    sock
}

async fn read_close(sock: &mut tokio::net::TcpStream) -> (u64, String) {
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, sock.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    let mut b = bytes::BytesMut::from(&all[..]);
    let mut dec = isml_runtime::wire::StreamDecoder::new(1 << 20);
    while let Some(f) = dec.decode(&mut b).unwrap() {
        if f.header.kind == FrameKind::Control(ControlOp::Close) {
            let body = ErrorBody::decode(&f.payload).unwrap();
            return (body.code, body.message.to_owned());
        }
    }
    panic!("no close frame in {all:02x?}");
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_only_that_session() {
    let (tx, mut closed) = mpsc::unbounded_channel::<CloseReason>();
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .max_frame(4096)
        .types(AnyMessage::types())
        .dispatcher(dispatcher(Arc::new(AtomicU64::new(0))))
        .on_close(move |s, r| {
            if s.device_id() == "raw" {
                let _ = tx.send(r.clone());
            }
        })
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let good = Client::builder(&url)
        .types(AnyMessage::types())
        .connect_session()
        .await
        .unwrap();

    // Unknown link opcode 15: a frame the decoder rejects.
    let mut sock = raw_session(&url).await;
    sock.write_all(&[0x00, 0x7f]).await.unwrap();
    let (code, message) = read_close(&mut sock).await;
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("unknown link opcode"), "{message}");
    let r = closed.recv().await.unwrap();
    assert_eq!((r.by, r.code), (ClosedBy::Error, codes::MALFORMED));

    // A length prefix far beyond the maximum: refused before buffering.
    let mut sock = raw_session(&url).await;
    sock.write_all(&[0xff, 0xff, 0xff, 0x7f]).await.unwrap();
    let (code, message) = read_close(&mut sock).await;
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("exceeds the maximum of 4096"), "{message}");
    closed.recv().await.unwrap();

    // A request whose payload does not decode: an error response, the session lives on.
    let mut sock = raw_session(&url).await;
    sock.write_all(&[0x02, 0x15, 0x01, 0xff]).await.unwrap();
    let len = sock.read_u8().await.unwrap() as usize;
    let mut reply = vec![0u8; len + 1];
    sock.read_exact(&mut reply).await.unwrap();
    assert_eq!(
        &reply[..2],
        &[0x30, 0x01],
        "error response for correlation 1"
    );
    let body = ErrorBody::decode(&reply[2..]).unwrap();
    assert_eq!(body.code, codes::MALFORMED, "{}", body.message);
    drop(sock);

    let r: ChargeStarted = good.request(&start(8)).await.unwrap();
    assert_eq!(r.slot, 8);
    assert!(!good.is_closed());
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_stops_reading_meets_a_bounded_queue() {
    const QUEUE: usize = 64;
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .outbound_queue(QUEUE)
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let _sock = raw_session(&url).await; // never reads again
    let srv = loop {
        if let Some(s) = server.session_by_device("raw") {
            break s;
        }
        tokio::task::yield_now().await;
    };
    let big = StatusReport {
        station_id: "y".repeat(64),
        serial: vec![7u8; 32].into(),
        ..Default::default()
    };
    let frame_len = isml_runtime::Message::encoded_len(&big) as u64 + 2;
    // Fill until the queue refuses: the kernel buffers and the writer's
    // buffer absorb a bounded amount, then everything stops.
    let mut accepted = 0u64;
    let mut full = 0;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while full < 1000 && tokio::time::Instant::now() < deadline {
        match srv.try_send(&big) {
            Ok(()) => accepted += 1,
            Err(SendError::QueueFull { capacity, .. }) => {
                assert_eq!(capacity, QUEUE);
                full += 1;
                tokio::task::yield_now().await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(full >= 1000, "the queue never filled");
    // Loopback socket buffers hold a few MiB at most; the queue 64 frames.
    assert!(
        accepted * frame_len < 64 << 20,
        "accepted {accepted} frames"
    );
    // A waiting send gives up with the deadline of its caller.
    let waited = tokio::time::timeout(Duration::from_millis(200), srv.send(&big)).await;
    assert!(waited.is_err(), "send waits while the queue is full");
    // Closing does not hang on the stuck peer.
    tokio::time::timeout(PATIENCE, srv.close("slow consumer"))
        .await
        .unwrap();
    server.shutdown().await;
}

#[test]
fn endpoints_parse_and_print() {
    use isml_runtime::transport::Endpoint;
    for url in [
        "tcp://127.0.0.1:7000",
        "tls://cabinets.example:7443",
        "serial:///dev/ttyUSB0?baud=9600",
        "ws://localhost:8080/isml",
        "mem://bus",
    ] {
        let e: Endpoint = url.parse().unwrap();
        assert_eq!(e.to_string(), url);
    }
    let e: Endpoint = "serial:///dev/ttyS0".parse().unwrap();
    assert_eq!(
        e,
        Endpoint::Serial {
            path: "/dev/ttyS0".into(),
            baud: 115_200
        }
    );
    for bad in [
        "tcp://nohost",
        "udp://x:1",
        "serial://relative",
        "ws://h:99999/",
        "mem://",
        "tcp//x:1",
    ] {
        assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
    }
}

#[tokio::test]
async fn raw_frames_after_handshake_reach_handlers() {
    // The raw socket helper itself is a client: a one-way Reboot frame is handled.
    let reboots = Arc::new(AtomicU64::new(0));
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .dispatcher(dispatcher(reboots.clone()))
        .start()
        .await
        .unwrap();
    let url = server.urls()[0].clone();
    let mut sock = raw_session(&url).await;
    let mut buf = bytes::BytesMut::new();
    let payload = isml_runtime::Message::encode_to_vec(&Reboot { delay_s: 3 }).unwrap();
    isml_runtime::wire::put_stream_frame(&mut buf, &FrameHeader::one_way(33), &payload, 1024)
        .unwrap();
    // Then a request so that we know the one-way was handled first.
    let req = isml_runtime::Message::encode_to_vec(&start(2)).unwrap();
    isml_runtime::wire::put_stream_frame(&mut buf, &FrameHeader::request(5, 9), &req, 1024)
        .unwrap();
    sock.write_all(&buf).await.unwrap();
    let mut framed = tokio_util_framed(sock);
    let f = framed.next().await.unwrap().unwrap();
    assert_eq!(f.header, FrameHeader::response(7, 9));
    assert_eq!(reboots.load(Ordering::SeqCst), 1);
    let _ = framed
        .send(Frame::new(
            FrameHeader::control(ControlOp::Close),
            vec![0, 0],
        ))
        .await;
    server.shutdown().await;
}

fn tokio_util_framed(sock: tokio::net::TcpStream) -> isml_runtime::transport::Transport {
    isml_runtime::transport::Transport::from_io(sock, "tcp", "raw".into(), None)
}
