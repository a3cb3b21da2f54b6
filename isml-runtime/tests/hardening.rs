//! Regression tests for the attacks a hostile peer can make: each defect the
//! security review found, in miniature, over real TCP sockets. Memory figures
//! (RSS) are measured by the `attack` example, which `.ci/run` runs; these
//! tests check the mechanisms with exact outcomes.
#![cfg(feature = "tcp")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use isml_runtime::client::{Backoff, Client, ConnectError};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::handshake::{Credentials, Hello};
use isml_runtime::server::{DuplicateIds, Server};
use isml_runtime::session::{CloseReason, ClosedBy, codes};
use isml_runtime::wire::{ControlOp, ErrorBody, Frame, FrameHeader, FrameKind, put_stream_frame};
use isml_runtime::{Message, TopLevel};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(10);

/// A one-way message carrying bytes.
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 1, package = "hardening.v1")]
struct Blob {
    #[isml(tag = 1)]
    data: Bytes,
}

/// A request whose reply repeats `len` bytes.
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 2, package = "hardening.v1")]
struct Ask {
    #[isml(tag = 1)]
    len: u32,
    #[isml(tag = 2)]
    data: Bytes,
}

/// Another one-way message.
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 4, package = "hardening.v1")]
struct Note {
    #[isml(tag = 1)]
    data: Bytes,
}

/// The reply to [`Ask`].
#[derive(Debug, Clone, PartialEq, Default, isml_derive::Message)]
#[isml(id = 3, package = "hardening.v1")]
struct Answer {
    #[isml(tag = 1)]
    data: Bytes,
}

type Seen = Arc<Mutex<Vec<usize>>>;

/// Blobs are recorded (their sizes, in order); `Ask` is answered with
/// `len` bytes and records the size of its payload.
fn dispatcher(seen: Seen) -> Dispatcher {
    let asks = seen.clone();
    let notes = seen.clone();
    Dispatcher::new()
        .on::<Blob, _, _>(move |_ctx, b| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(b.data.len());
                Ok(())
            }
        })
        .on::<Note, _, _>({
            let seen = notes;
            move |_ctx, n| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(n.data.len());
                    Ok(())
                }
            }
        })
        .on_request::<Ask, Answer, _, _>(move |_ctx, a| {
            let asks = asks.clone();
            async move {
                asks.lock().unwrap().push(a.data.len());
                Ok(Answer {
                    data: vec![7u8; a.len as usize].into(),
                })
            }
        })
}

async fn server(
    configure: impl FnOnce(isml_runtime::server::ServerBuilder) -> isml_runtime::server::ServerBuilder,
) -> (Server, Seen, mpsc::UnboundedReceiver<(String, CloseReason)>) {
    let seen: Seen = Arc::default();
    let (tx, closed) = mpsc::unbounded_channel();
    let builder = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .dispatcher(dispatcher(seen.clone()))
        .on_close(move |s, r| {
            let _ = tx.send((s.device_id().to_owned(), r.clone()));
        });
    let server = configure(builder).start().await.unwrap();
    (server, seen, closed)
}

fn addr(server: &Server) -> String {
    server.urls()[0].trim_start_matches("tcp://").to_owned()
}

fn frame_bytes(frames: &[Frame]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for f in frames {
        put_stream_frame(&mut buf, &f.header, &f.payload, 1 << 24).unwrap();
    }
    buf.to_vec()
}

fn hello(device_id: &str, types: Vec<(u32, u64)>) -> Frame {
    let h = Hello {
        version: 1,
        device_id: device_id.into(),
        agent: "hardening-test".into(),
        credentials: Credentials::None,
        types,
        stream_window: 16,
        services: vec![],
    };
    Frame::new(FrameHeader::control(ControlOp::Hello), h.encode())
}

/// A raw client: the hello, then the welcome is read and checked.
async fn raw(server: &Server, device: &str) -> isml_runtime::transport::Transport {
    let sock = TcpStream::connect(addr(server)).await.unwrap();
    let mut t =
        isml_runtime::transport::Transport::from_io(sock, "tcp", "raw".into(), Some(1 << 24));
    futures_util::SinkExt::send(&mut t, hello(device, vec![]))
        .await
        .unwrap();
    let welcome = t.next().await.unwrap().unwrap();
    assert_eq!(welcome.header.kind, FrameKind::Control(ControlOp::Welcome));
    t
}

async fn send_all(t: &mut isml_runtime::transport::Transport, frames: Vec<Frame>) {
    for f in frames {
        futures_util::SinkExt::feed(&mut *t, f).await.unwrap();
    }
    futures_util::SinkExt::flush(t).await.unwrap();
}

/// The close frame the server sent, as (code, message).
async fn close_of(t: &mut isml_runtime::transport::Transport) -> (u64, String) {
    loop {
        let f = tokio::time::timeout(PATIENCE, t.next())
            .await
            .expect("a close frame in time")
            .expect("a close frame before the end")
            .expect("a valid frame");
        if f.header.kind == FrameKind::Control(ControlOp::Close) {
            let b = ErrorBody::decode(&f.payload).unwrap();
            return (b.code, b.message.to_owned());
        }
    }
}

/// Reads the raw bytes the server sends until it closes, and decodes the
/// close frame among them.
async fn close_of_socket(sock: &mut TcpStream) -> (u64, String) {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, sock.read_to_end(&mut all)).await;
    let mut b = BytesMut::from(&all[..]);
    let mut dec = isml_runtime::wire::StreamDecoder::new(1 << 20);
    while let Ok(Some(f)) = dec.decode(&mut b) {
        if f.header.kind == FrameKind::Control(ControlOp::Close) {
            let body = ErrorBody::decode(&f.payload).unwrap();
            return (body.code, body.message.to_owned());
        }
    }
    panic!("no close frame in {} bytes", all.len());
}

fn payload<M: Message>(m: &M) -> Bytes {
    m.encode_to_vec().unwrap().into()
}

#[tokio::test]
async fn a_request_sent_as_two_fragments_gets_exactly_one_response() {
    let (server, seen, _closed) = server(|b| b).await;
    let mut t = raw(&server, "frag").await;
    let ask = payload(&Ask {
        len: 3,
        data: vec![1u8; 100].into(),
    });
    let (a, b) = ask.split_at(40);
    let h = FrameHeader::request(Ask::TYPE_ID, 9);
    // A one-way blob in two fragments, then the request in two, with a ping
    // between the request's fragments (complete frames may come between).
    let blob = payload(&Blob {
        data: vec![2u8; 50].into(),
    });
    let (c, d) = blob.split_at(10);
    send_all(
        &mut t,
        vec![
            Frame::new(
                FrameHeader::one_way(Blob::TYPE_ID).with_more(true),
                Bytes::copy_from_slice(c),
            ),
            Frame::new(
                FrameHeader::one_way(Blob::TYPE_ID),
                Bytes::copy_from_slice(d),
            ),
            Frame::new(h.with_more(true), Bytes::copy_from_slice(a)),
            Frame::new(
                FrameHeader::control(ControlOp::Ping),
                Bytes::from_static(b"hi"),
            ),
            Frame::new(h, Bytes::copy_from_slice(b)),
            // A second, whole request: its reply must be the next frame after
            // the first reply, with nothing else for correlation 9 between.
            Frame::new(
                FrameHeader::request(Ask::TYPE_ID, 10),
                payload(&Ask {
                    len: 1,
                    data: Bytes::new(),
                }),
            ),
        ],
    )
    .await;
    let mut replies = Vec::new();
    while replies.len() < 3 {
        let f = tokio::time::timeout(PATIENCE, t.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        replies.push(f);
    }
    assert_eq!(replies[0].header.kind, FrameKind::Control(ControlOp::Pong));
    assert_eq!(&replies[0].payload[..], b"hi");
    assert_eq!(replies[1].header, FrameHeader::response(Answer::TYPE_ID, 9));
    assert_eq!(
        Answer::decode(replies[1].payload.clone())
            .unwrap()
            .data
            .len(),
        3
    );
    assert_eq!(
        replies[2].header,
        FrameHeader::response(Answer::TYPE_ID, 10)
    );
    // The blob was handled once, joined, and the request saw its whole payload.
    assert_eq!(*seen.lock().unwrap(), vec![50, 100, 0]);
    let s = server.session_by_device("frag").unwrap();
    assert_eq!(s.stats().errors, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn fragment_violations_close_with_a_clear_code() {
    let (server, _seen, mut closed) = server(|b| b.max_message(1000)).await;

    // Two fragmented messages at once.
    let mut t = raw(&server, "interleaved").await;
    send_all(
        &mut t,
        vec![
            Frame::new(
                FrameHeader::request(2, 1).with_more(true),
                Bytes::from_static(b"a"),
            ),
            Frame::new(
                FrameHeader::request(2, 2).with_more(true),
                Bytes::from_static(b"b"),
            ),
        ],
    )
    .await;
    let (code, message) = close_of(&mut t).await;
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("was incomplete"), "{message}");

    // More than max_message once joined.
    let mut t = raw(&server, "too-large").await;
    let part = Bytes::from(vec![0u8; 600]);
    send_all(
        &mut t,
        vec![
            Frame::new(FrameHeader::one_way(1).with_more(true), part.clone()),
            Frame::new(FrameHeader::one_way(1), part),
        ],
    )
    .await;
    let (code, message) = close_of(&mut t).await;
    assert_eq!(code, codes::RESOURCE_EXHAUSTED);
    assert!(
        message.contains("1200 bytes exceeds the maximum of 1000"),
        "{message}"
    );

    // The connection ends inside a fragmented message.
    let mut t = raw(&server, "truncated").await;
    send_all(
        &mut t,
        vec![Frame::new(
            FrameHeader::one_way(1).with_more(true),
            Bytes::from_static(b"xy"),
        )],
    )
    .await;
    drop(t);

    // A frame cut off by the end of the stream (a raw socket: the transport
    // writes only whole frames).
    let mut bytes = frame_bytes(&[Frame::new(
        FrameHeader::one_way(1),
        Bytes::from(vec![1u8; 20]),
    )]);
    bytes.truncate(10);
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    sock.write_all(&frame_bytes(&[hello("cut", vec![])]))
        .await
        .unwrap();
    let mut welcome_head = [0u8; 2];
    sock.read_exact(&mut welcome_head).await.unwrap();
    let mut welcome = vec![0u8; usize::from(welcome_head[0]) - 1];
    sock.read_exact(&mut welcome).await.unwrap();
    sock.write_all(&bytes).await.unwrap();
    sock.shutdown().await.unwrap();

    let mut reasons = std::collections::HashMap::new();
    while reasons.len() < 4 {
        let (device, r) = tokio::time::timeout(PATIENCE, closed.recv())
            .await
            .unwrap_or_else(|_| panic!("sessions closed so far: {reasons:?}"))
            .unwrap();
        reasons.insert(device, r);
    }
    let truncated = &reasons["truncated"];
    assert_eq!(
        (truncated.by, truncated.code),
        (ClosedBy::Error, codes::MALFORMED)
    );
    assert!(
        truncated.message.contains("inside a fragmented one-way"),
        "{}",
        truncated.message
    );
    let cut = &reasons["cut"];
    assert_eq!(
        (cut.by, cut.code),
        (ClosedBy::Error, codes::MALFORMED),
        "{}",
        cut.message
    );
    assert!(cut.message.contains("unexpected end"), "{}", cut.message);
    server.shutdown().await;
}

#[tokio::test]
async fn large_messages_leave_in_fragments_and_small_ones_overtake_them() {
    let (server, seen, _closed) = server(|b| b).await;
    let client = Client::builder(server.urls()[0].clone())
        .device_id("sender")
        .fragment_size(Some(1024))
        .connect_session()
        .await
        .unwrap();
    // Queued back to back: the big one is cut into 100 fragments, and the
    // small one leaves between its first two.
    client
        .try_send(&Blob {
            data: vec![1u8; 100 * 1024].into(),
        })
        .unwrap();
    client
        .try_send(&Note {
            data: vec![2u8; 10].into(),
        })
        .unwrap();
    // One of the same type waits for the big one (one key, one order).
    client
        .try_send(&Blob {
            data: vec![3u8; 20].into(),
        })
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while seen.lock().unwrap().len() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*seen.lock().unwrap(), vec![10, 100 * 1024, 20]);
    // Each fragment is a frame: the welcome, 101 fragments, the small blob.
    let s = server.session_by_device("sender").unwrap();
    assert!(s.stats().frames_in >= 102, "{:?}", s.stats());
    // A reply larger than a fragment comes back whole.
    let a: Answer = client
        .request(&Ask {
            len: 5000,
            data: Bytes::new(),
        })
        .await
        .unwrap();
    assert_eq!(a.data.len(), 5000);
    server.shutdown().await;
}

#[tokio::test]
async fn pings_are_answered_without_amplification() {
    let (server, _seen, _closed) = server(|b| b).await;
    let mut t = raw(&server, "pinger").await;
    send_all(
        &mut t,
        vec![
            Frame::new(
                FrameHeader::control(ControlOp::Ping),
                Bytes::from(vec![5u8; 64]),
            ),
            Frame::new(
                FrameHeader::control(ControlOp::Ping),
                Bytes::from(vec![6u8; 65]),
            ),
            Frame::new(
                FrameHeader::control(ControlOp::Ping),
                Bytes::from(vec![7u8; 512 * 1024]),
            ),
        ],
    )
    .await;
    let mut pongs = Vec::new();
    while pongs.len() < 3 {
        let f = tokio::time::timeout(PATIENCE, t.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(f.header.kind, FrameKind::Control(ControlOp::Pong));
        pongs.push(f.payload.len());
    }
    assert_eq!(pongs, vec![64, 0, 0]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_peer_that_does_not_read_its_replies_is_no_longer_read() {
    let (server, seen, _closed) =
        server(|b| b.reply_bytes(256 * 1024).outbound_bytes(256 * 1024)).await;
    let t = raw(&server, "hoarder").await;
    let (mut rx, mut tx, _) = t.split();
    // 1,000 requests for 60 KiB replies each (60 MiB in all, every reply in
    // one frame), none read yet.
    let ask = payload(&Ask {
        len: 60 * 1024,
        data: Bytes::new(),
    });
    let writer = tokio::spawn(async move {
        for i in 0..1000u64 {
            let f = Frame::new(FrameHeader::request(Ask::TYPE_ID, i + 1), ask.clone());
            futures_util::SinkExt::feed(&mut tx, f).await.unwrap();
        }
        futures_util::SinkExt::flush(&mut tx).await.unwrap();
        tx
    });
    // The server handles requests until its write queue and the sockets'
    // buffers are full, then stops reading: the count settles well below
    // 1,000 (loopback buffers take a few MiB, the write queue 512 KiB).
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let n = seen.lock().unwrap().len();
        if n == last {
            break;
        }
        last = n;
    }
    assert!(
        last < 400,
        "handled {last} requests for a peer that reads nothing"
    );
    // Reading again, every reply arrives, in order: nothing was dropped.
    for i in 0..1000u64 {
        let f = tokio::time::timeout(PATIENCE, rx.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(f.header, FrameHeader::response(Answer::TYPE_ID, i + 1));
        assert_eq!(Answer::decode(f.payload).unwrap().data.len(), 60 * 1024);
    }
    drop(writer.await.unwrap());
    assert_eq!(seen.lock().unwrap().len(), 1000);
    server.shutdown().await;
}

/// A raw hello on a fresh socket; returns the server's close (code, message).
async fn refused_hello(server: &Server, hello: Frame) -> (u64, String) {
    let mut sock = TcpStream::connect(addr(server)).await.unwrap();
    // The server may close before everything is written (it refuses at the
    // length prefix): a failed write is part of the outcome.
    let _ = sock.write_all(&frame_bytes(&[hello])).await;
    close_of_socket(&mut sock).await
}

#[tokio::test]
async fn bad_device_ids_and_types_are_refused_at_the_handshake() {
    let (server, _seen, _closed) = server(|b| b).await;
    for (id, what) in [
        ("a\0b", "'\\0' at byte 1"),
        ("line\nbreak", "'\\n' at byte 4"),
        ("\u{1b}[2Jclear", "'\\u{1b}' at byte 0"),
        ("rtl\u{202e}txt", "'\\u{202e}' at byte 3"),
        (" padded", "white space"),
    ] {
        let (code, message) = refused_hello(&server, hello(id, vec![])).await;
        assert_eq!(code, codes::MALFORMED, "{id:?}: {message}");
        assert!(message.contains("invalid device id"), "{id:?}: {message}");
        assert!(message.contains(what), "{id:?}: {message}");
    }
    let (code, message) = refused_hello(&server, hello(&"x".repeat(129), vec![])).await;
    assert_eq!(code, codes::MALFORMED);
    assert!(
        message.contains("129 bytes long; the limit is 128"),
        "{message}"
    );
    // A 900 KiB id does not fit the handshake's frame limit: refused at its
    // length prefix, before the server buffers it.
    let (code, message) = refused_hello(&server, hello(&"y".repeat(900 * 1024), vec![])).await;
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("exceeds the maximum of 8192"), "{message}");
    // Type id 0 in the hello's type list.
    let (code, message) = refused_hello(&server, hello("typed", vec![(5, 1), (0, 2)])).await;
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("type id"), "{message}");
    // A client refuses to claim a bad id before connecting.
    let err = Client::builder(server.urls()[0].clone())
        .device_id("tab\there")
        .connect_session()
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidDeviceId { .. }), "{err}");
    assert_eq!(server.session_count(), 0);
    assert!(server.stats().handshake_failures >= 8);
    server.shutdown().await;
}

#[tokio::test]
async fn a_hello_may_be_fragmented_within_the_handshake_limit() {
    let (server, _seen, _closed) = server(|b| b.max_handshake_frame(1024)).await;
    let h = hello("in-pieces", (1..=60).map(|id| (id, 7)).collect());
    assert!(h.payload.len() > 512);
    let (a, b) = h.payload.split_at(300);
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    let hh = FrameHeader::control(ControlOp::Hello);
    sock.write_all(&frame_bytes(&[
        Frame::new(hh.with_more(true), Bytes::copy_from_slice(a)),
        Frame::new(hh, Bytes::copy_from_slice(b)),
    ]))
    .await
    .unwrap();
    let mut t = isml_runtime::transport::Transport::from_io(sock, "tcp", "raw".into(), None);
    let w = t.next().await.unwrap().unwrap();
    assert_eq!(w.header.kind, FrameKind::Control(ControlOp::Welcome));
    assert!(server.session_by_device("in-pieces").is_some());
    // Joined beyond the limit, a hello is refused even in small pieces.
    let big = hello("too-big", (1..=200).map(|id| (id, 7)).collect());
    let frames: Vec<Frame> = isml_runtime::wire::Fragmenter::new(hh, big.payload, 256).collect();
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    let _ = sock.write_all(&frame_bytes(&frames)).await;
    let (code, message) = close_of_socket(&mut sock).await;
    assert_eq!(code, codes::MALFORMED);
    assert!(message.contains("exceeds the maximum of 1024"), "{message}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_device_id_replaces_the_older_session_by_default() {
    let (server, _seen, mut closed) = server(|b| b).await;
    let url = server.urls()[0].clone();
    let first = Client::builder(&url)
        .device_id("cab-7")
        .reconnect(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            jitter: 0.0,
        })
        .connect()
        .await
        .unwrap();
    let first_session = first.session().unwrap();
    let second = Client::builder(&url)
        .device_id("cab-7")
        .connect_session()
        .await
        .unwrap();
    let reason = tokio::time::timeout(PATIENCE, first_session.closed())
        .await
        .unwrap();
    assert_eq!(
        (reason.by, reason.code),
        (ClosedBy::Peer, codes::DEVICE_ID_IN_USE)
    );
    assert!(
        reason
            .message
            .contains("replaced by a newer session of device cab-7"),
        "{}",
        reason.message
    );
    let (device, r) = closed.recv().await.unwrap();
    assert_eq!(
        (device.as_str(), r.code),
        ("cab-7", codes::DEVICE_ID_IN_USE)
    );
    // The replaced client does not take its id back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(first.reconnects(), 0);
    assert!(first.session().is_none());
    let now = server.session_by_device("cab-7").unwrap();
    assert_eq!(now.id(), second.id());
    assert_eq!(server.session_count(), 1);
    assert_eq!(server.stats().replaced, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_device_id_can_be_refused_instead() {
    let (server, _seen, _closed) = server(|b| b.duplicate_ids(DuplicateIds::RefuseNewer)).await;
    let url = server.urls()[0].clone();
    let first = Client::builder(&url)
        .device_id("cab-8")
        .connect_session()
        .await
        .unwrap();
    let err = Client::builder(&url)
        .device_id("cab-8")
        .connect_session()
        .await
        .unwrap_err();
    match err {
        ConnectError::Refused { code, message, .. } => {
            assert_eq!(code, codes::DEVICE_ID_IN_USE);
            assert!(message.contains("cab-8 is already connected"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert!(!first.is_closed());
    // Once the first is gone, the id is free again.
    first.close("bye").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.session_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let again = Client::builder(&url)
        .device_id("cab-8")
        .connect_session()
        .await
        .unwrap();
    assert_eq!(again.device_id(), "cab-8");
    server.shutdown().await;
}

/// Opens silent sockets from `source` (a loopback address of its own, as an
/// attacker's host would be) and opens a new one whenever the server closes
/// one, until `stop`.
async fn silent_sockets(
    server_addr: std::net::SocketAddr,
    source: std::net::IpAddr,
    count: usize,
    stop: tokio_util::sync::CancellationToken,
) -> u64 {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let stop = stop.clone();
        tasks.spawn(async move {
            let mut opened = 0u64;
            while !stop.is_cancelled() {
                let sock = tokio::net::TcpSocket::new_v4().unwrap();
                if sock.bind((source, 0).into()).is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                let Ok(mut s) = sock.connect(server_addr).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                opened += 1;
                let mut buf = [0u8; 64];
                // Say nothing; wait until the server gives up on us.
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = s.read(&mut buf) => {}
                }
            }
            opened
        });
    }
    let mut opened = 0;
    while let Some(n) = tasks.join_next().await {
        opened += n.unwrap_or(0);
    }
    opened
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_cannot_keep_devices_out() {
    // Small caps, so that the test reaches them with few sockets.
    let (server, _seen, _closed) = server(|b| {
        b.max_unauthenticated(64)
            .max_unauthenticated_per_address(16)
            .max_connections(1000)
    })
    .await;
    let server_addr: std::net::SocketAddr = addr(&server).parse().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    // Six attacking addresses, 40 sockets each: 240 silent sockets against
    // 64 places, each re-opened as soon as the server closes it.
    let attackers: Vec<_> = (2..8u8)
        .map(|n| {
            let ip = std::net::IpAddr::from([127, 0, 0, n]);
            tokio::spawn(silent_sockets(server_addr, ip, 40, stop.clone()))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.stats().unauthenticated <= 64, "{:?}", server.stats());
    let url = server.urls()[0].clone();
    let mut devices = Vec::new();
    let mut slowest = Duration::ZERO;
    for i in 0..30 {
        let t0 = std::time::Instant::now();
        let s = tokio::time::timeout(
            Duration::from_secs(5),
            Client::builder(&url)
                .device_id(format!("dev-{i}"))
                .connect_session(),
        )
        .await
        .expect("connected in time")
        .expect("connected");
        slowest = slowest.max(t0.elapsed());
        devices.push(s);
    }
    let stats = server.stats();
    stop.cancel();
    let opened: u64 = futures_util::future::join_all(attackers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .sum();
    assert!(
        slowest < Duration::from_secs(1),
        "slowest device took {slowest:?}"
    );
    assert!(stats.shed > 0, "{stats:?}");
    assert!(opened > 240, "attackers opened only {opened} sockets");
    assert_eq!(server.session_count(), 30);
    assert!(devices.iter().all(|d| !d.is_closed()));
    server.shutdown().await;
}
