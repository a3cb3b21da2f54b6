//! Generated services end to end: the five forms of an rpc over the
//! in-memory and TCP transports, deadlines and cancellation (the handler is
//! observed to be dropped), discovery (unknown method, fingerprint
//! mismatch, describe), a device that serves, calls across a reconnect,
//! many concurrent calls, and malformed requests.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use isml_codegen_tests::fixtures::rpc_forms::{
    AnyMessage, Forms, FormsClient, FormsServer, Reply, Request,
};
use isml_runtime::client::{Backoff, Client};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::rpc::{self, Call, CallError, Code, Sink, Status, Streaming};
use isml_runtime::server::Server;
use isml_runtime::session::Session;
use tokio::sync::Notify;

/// Sets a flag when dropped: shows that a handler's future was dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct State {
    one_ways: AtomicU64,
    dropped: Arc<AtomicBool>,
    started: Notify,
    send_failed: Notify,
    send_failed_flag: AtomicBool,
    running: AtomicUsize,
    max_running: AtomicUsize,
}

/// `unary`: n = 0 fails with not_found, n = 7 sleeps for a minute (to be
/// cancelled), n = 8 sleeps 20 ms; `server_streaming`: n items (n = 0: items
/// until the caller goes, recording when `send` fails); `client_streaming`:
/// the number of items, `ok` when their sum is even; `bidirectional`: one
/// reply per request, `ok` = request is even.
#[derive(Clone, Default)]
struct Impl(Arc<State>);

impl Forms for Impl {
    async fn unary(&self, call: Call, req: Request) -> Result<Reply, Status> {
        let s = &self.0;
        let now = s.running.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_running.fetch_max(now, Ordering::SeqCst);
        let _running = Running(s.clone());
        assert!(call.method().ends_with("Forms/unary"));
        match req.n {
            0 => Err(Status::not_found("no request 0")),
            7 => {
                let _flag = DropFlag(s.dropped.clone());
                s.started.notify_one();
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Reply { ok: false })
            }
            8 => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(Reply { ok: true })
            }
            // Calls made from here would get the caller's deadline.
            9 => Ok(Reply {
                ok: call.deadline().is_some() && rpc::inherited_deadline() == call.deadline(),
            }),
            n => Ok(Reply {
                ok: n.is_multiple_of(2),
            }),
        }
    }

    async fn server_streaming(
        &self,
        _call: Call,
        req: Request,
        out: Sink<Reply>,
    ) -> Result<(), Status> {
        if req.n == 0 {
            let mut i = 0u32;
            loop {
                if out
                    .send(Reply {
                        ok: i.is_multiple_of(2),
                    })
                    .await
                    .is_err()
                {
                    self.0.send_failed_flag.store(true, Ordering::SeqCst);
                    self.0.send_failed.notify_one();
                    return Ok(());
                }
                i += 1;
                if i == 10 {
                    self.0.started.notify_one();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        for i in 0..req.n {
            out.send(Reply {
                ok: i.is_multiple_of(2),
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        }
        Ok(())
    }

    async fn one_way(&self, _call: Call, _req: Request) {
        self.0.one_ways.fetch_add(1, Ordering::SeqCst);
    }

    async fn client_streaming(
        &self,
        _call: Call,
        mut req: Streaming<Request>,
    ) -> Result<Reply, Status> {
        let mut count = 0u64;
        let mut sum = 0u64;
        while let Some(item) = req.next().await {
            let item = item?;
            count += 1;
            sum += u64::from(item.n);
        }
        if count == 0 {
            return Err(Status::invalid_argument("no items"));
        }
        Ok(Reply {
            ok: sum.is_multiple_of(2),
        })
    }

    async fn bidirectional(
        &self,
        _call: Call,
        mut req: Streaming<Request>,
        out: Sink<Reply>,
    ) -> Result<(), Status> {
        while let Some(item) = req.next().await {
            out.send(Reply {
                ok: item?.n.is_multiple_of(2),
            })
            .await?;
        }
        Ok(())
    }
}

struct Running(Arc<State>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn serve(url: &str, state: Arc<State>) -> Server {
    Server::builder()
        .listen(url)
        .types(AnyMessage::TYPES)
        .dispatcher(Dispatcher::new().service(FormsServer::new(Impl(state))))
        .stream_window(8)
        .start()
        .await
        .unwrap()
}

async fn connect(url: &str) -> Client {
    Client::builder(url)
        .types(AnyMessage::TYPES)
        .device_id("caller-1")
        .stream_window(8)
        .connect()
        .await
        .unwrap()
}

fn tcp_url(server: &Server) -> String {
    server.urls()[0].clone()
}

async fn every_form(client: FormsClient, state: &State) {
    // Unary, and a status from the handler.
    assert!(client.unary(&Request { n: 4 }).await.unwrap().ok);
    assert!(!client.unary(&Request { n: 3 }).await.unwrap().ok);
    let e = client.unary(&Request { n: 0 }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e}");
    assert_eq!(e.status().unwrap().message(), "no request 0");

    // Server streaming, beyond the window of 8 bytes (every item waits for
    // credit): flow control lets it through.
    let mut items = client.server_streaming(&Request { n: 100 }).await.unwrap();
    let mut got = Vec::new();
    while let Some(r) = items.next().await {
        got.push(r.unwrap().ok);
    }
    assert_eq!(got.len(), 100);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, ok)| *ok == (i.is_multiple_of(2)))
    );

    // As a futures Stream too.
    let collected: Vec<_> = client
        .server_streaming(&Request { n: 5 })
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(collected.len(), 5);

    // One-way.
    let before = state.one_ways.load(Ordering::SeqCst);
    client.one_way(&Request { n: 1 }).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while state.one_ways.load(Ordering::SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("one-way handled");

    // Client streaming: 50 items (beyond the window), sum 1225, odd.
    let up = client.client_streaming().await.unwrap();
    for n in 0..50u32 {
        up.send(Request { n }).await.unwrap();
    }
    assert!(!up.finish().await.unwrap().ok);
    // No items: the handler refuses.
    let up = client.client_streaming().await.unwrap();
    let e = up.finish().await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");

    // Bidirectional: replies while requests still go out.
    let (tx, mut rx) = client.bidirectional().await.unwrap();
    for n in 0..20u32 {
        tx.send(Request { n }).await.unwrap();
        assert_eq!(rx.next().await.unwrap().unwrap().ok, n.is_multiple_of(2));
    }
    tx.finish().await.unwrap();
    assert!(
        rx.next().await.is_none(),
        "the stream ends after the requests"
    );
}

#[tokio::test]
async fn every_form_over_mem() {
    let state = Arc::new(State::default());
    let server = serve("mem://rpc-forms", state.clone()).await;
    let c = connect("mem://rpc-forms").await;
    every_form(FormsClient::new(&c), &state).await;
    every_form(FormsClient::new(c.session().unwrap()), &state).await;
    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn every_form_over_tcp() {
    let state = Arc::new(State::default());
    let server = serve("tcp://127.0.0.1:0", state.clone()).await;
    let c = connect(&tcp_url(&server)).await;
    every_form(FormsClient::new(&c), &state).await;
    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_deadline_drops_the_handler() {
    let state = Arc::new(State::default());
    let server = serve("tcp://127.0.0.1:0", state.clone()).await;
    let c = connect(&tcp_url(&server)).await;
    let client = FormsClient::new(&c).with_timeout(Duration::from_millis(200));
    let started = state.started.notified();
    let call = tokio::spawn(async move { client.unary(&Request { n: 7 }).await });
    started.await;
    assert!(!state.dropped.load(Ordering::SeqCst));
    let e = call.await.unwrap().unwrap_err();
    assert!(matches!(e, CallError::Timeout { .. }), "{e}");
    // The deadline reached the handler, for the calls it makes.
    let client = FormsClient::new(&c).with_timeout(Duration::from_secs(3));
    assert!(client.unary(&Request { n: 9 }).await.unwrap().ok);
    assert_eq!(e.code(), Code::DeadlineExceeded);
    // The callee stops the handler at its own deadline (or at the cancel).
    tokio::time::timeout(Duration::from_secs(2), async {
        while !state.dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("the handler's future was dropped");
    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_the_caller_future_cancels_the_handler() {
    let state = Arc::new(State::default());
    let server = serve("mem://rpc-drop", state.clone()).await;
    let c = connect("mem://rpc-drop").await;
    let client = FormsClient::new(&c);
    let started = state.started.notified();
    let call = tokio::spawn(async move { client.unary(&Request { n: 7 }).await });
    started.await;
    call.abort();
    tokio::time::timeout(Duration::from_secs(2), async {
        while !state.dropped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("the cancel dropped the handler's future");
    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_a_stream_makes_the_handlers_send_fail_quickly() {
    let state = Arc::new(State::default());
    let server = serve("tcp://127.0.0.1:0", state.clone()).await;
    let c = connect(&tcp_url(&server)).await;
    let client = FormsClient::new(&c);
    let started = state.started.notified();
    let mut items = client.server_streaming(&Request { n: 0 }).await.unwrap();
    for _ in 0..10 {
        items.next().await.unwrap().unwrap();
    }
    started.await;
    let failed = state.send_failed.notified();
    let t = tokio::time::Instant::now();
    drop(items);
    tokio::time::timeout(Duration::from_millis(500), failed)
        .await
        .expect("send failed after the caller dropped the stream");
    let after = t.elapsed();
    // On loopback the cancel arrives well within 50 ms; the handler sends
    // every millisecond, so its next send fails.
    assert!(after < Duration::from_millis(50), "took {after:?}");
    assert!(state.send_failed_flag.load(Ordering::SeqCst));
    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_methods_and_mismatched_fingerprints_fail_without_a_round_trip() {
    let state = Arc::new(State::default());
    // A server that serves nothing.
    let bare = Server::builder()
        .listen("mem://rpc-bare")
        .types(AnyMessage::TYPES)
        .start()
        .await
        .unwrap();
    let c = connect("mem://rpc-bare").await;
    let session = c.session().unwrap();
    let sent = session.stats().frames_out;
    let e = FormsClient::new(&c)
        .unary(&Request { n: 1 })
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Unimplemented { .. }), "{e}");
    assert_eq!(e.code(), Code::Unimplemented);
    assert!(e.to_string().contains("fixtures.rpc_forms.Forms"), "{e}");
    assert_eq!(session.stats().frames_out, sent, "nothing was sent");
    c.close("done").await;
    bare.shutdown().await;

    // A method whose definition differs: same service and id, other types.
    let server = serve("mem://rpc-mismatch", state).await;
    let c = connect("mem://rpc-mismatch").await;
    static METHODS: [rpc::MethodDescriptor; 1] = [rpc::MethodDescriptor::new(
        "unary",
        "fixtures.rpc_forms.Forms/unary",
        1,
        rpc::MethodKind::Unary,
        rpc::MessageRef::of::<Reply>(),
        Some(rpc::MessageRef::of::<Reply>()),
    )];
    static OTHER: rpc::ServiceDescriptor = rpc::ServiceDescriptor {
        name: "fixtures.rpc_forms.Forms",
        methods: &METHODS,
    };
    let conn = rpc::Conn::from(&c);
    let sent = c.session().unwrap().stats().frames_out;
    let e = conn
        .unary::<Reply, Reply>(&OTHER, &METHODS[0], &Reply { ok: true }, None)
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Incompatible { .. }), "{e}");
    assert_eq!(c.session().unwrap().stats().frames_out, sent);
    // A method id the service lacks.
    static MISSING: [rpc::MethodDescriptor; 1] = [rpc::MethodDescriptor::new(
        "gone",
        "fixtures.rpc_forms.Forms/gone",
        99,
        rpc::MethodKind::Unary,
        rpc::MessageRef::of::<Request>(),
        Some(rpc::MessageRef::of::<Reply>()),
    )];
    let e = conn
        .unary::<Request, Reply>(&OTHER, &MISSING[0], &Request { n: 1 }, None)
        .await
        .unwrap_err();
    assert!(matches!(e, CallError::Unimplemented { .. }), "{e}");

    // Reflection: what the server serves.
    let d = rpc::describe(&c, Duration::from_secs(5)).await.unwrap();
    assert!(d.schema.contains("service Forms {"), "{}", d.schema);
    assert!(
        d.schema
            .contains("rpc bidirectional(stream Request) -> stream Reply = 5;"),
        "{}",
        d.schema
    );
    assert!(d.schema.contains("message Request"), "{}", d.schema);
    assert_eq!(d.services.len(), 1);
    assert_eq!(d.services[0].methods.len(), 5);
    assert!(d.types.iter().any(|(id, _)| *id == 1));
    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_device_serves_and_the_server_calls_it() {
    let state = Arc::new(State::default());
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .types(AnyMessage::TYPES)
        .start()
        .await
        .unwrap();
    let device = Client::builder(tcp_url(&server))
        .types(AnyMessage::TYPES)
        .device_id("cabinet-7")
        .dispatcher(Dispatcher::new().service(FormsServer::new(Impl(state.clone()))))
        .connect()
        .await
        .unwrap();
    let session: Session = loop {
        if let Some(s) = server.session_by_device("cabinet-7") {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert_eq!(session.peer_services()[0].name, "fixtures.rpc_forms.Forms");
    let to_device = FormsClient::new(session);
    assert!(to_device.unary(&Request { n: 2 }).await.unwrap().ok);
    let mut items = to_device
        .server_streaming(&Request { n: 30 })
        .await
        .unwrap();
    let mut n = 0;
    while let Some(r) = items.next().await {
        r.unwrap();
        n += 1;
    }
    assert_eq!(n, 30);
    device.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn calls_go_on_across_a_client_reconnect() {
    let state = Arc::new(State::default());
    let server = serve("tcp://127.0.0.1:0", state).await;
    let c = Client::builder(tcp_url(&server))
        .types(AnyMessage::TYPES)
        .device_id("roamer")
        .reconnect(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            ..Backoff::default()
        })
        .connect()
        .await
        .unwrap();
    let client = FormsClient::new(&c).with_timeout(Duration::from_secs(5));
    assert!(client.unary(&Request { n: 2 }).await.unwrap().ok);
    let first = c.session().unwrap();
    server
        .session_by_device("roamer")
        .unwrap()
        .close("server restarts the session")
        .await;
    first.closed().await;
    // The next call waits for the new session and goes through on it.
    assert!(client.unary(&Request { n: 4 }).await.unwrap().ok);
    assert!(c.reconnects() >= 1);
    assert_ne!(c.session().unwrap().id(), first.id());
    c.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn ten_thousand_concurrent_calls_on_one_session_stay_bounded() {
    let state = Arc::new(State::default());
    let server = Server::builder()
        .listen("mem://rpc-many")
        .types(AnyMessage::TYPES)
        .dispatcher(Dispatcher::new().service(FormsServer::new(Impl(state.clone()))))
        .max_inflight(64)
        .start()
        .await
        .unwrap();
    let c = connect("mem://rpc-many").await;
    let client = FormsClient::new(&c).with_timeout(Duration::from_secs(60));
    let calls = (0..10_000).map(|_| {
        let client = client.clone();
        async move { client.unary(&Request { n: 8 }).await }
    });
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|r| matches!(r, Ok(Reply { ok: true }))));
    // At most max_inflight handlers ran at once: the session stopped
    // reading instead of buffering the rest.
    let max = state.max_running.load(Ordering::SeqCst);
    assert!(max <= 64, "{max} handlers at once");
    assert!(max > 1, "handlers ran concurrently ({max})");
    assert_eq!(c.session().unwrap().stats().pending_requests, 0);
    c.close("done").await;
    server.shutdown().await;
}

/// A raw transport to the server at `url`, past the handshake (a hello
/// claiming `device_id`, the welcome read).
async fn raw_session(url: &str, device_id: &str) -> isml_runtime::transport::Transport {
    use futures_util::SinkExt;
    use isml_runtime::handshake::{Credentials, Hello};
    use isml_runtime::transport::{self, ConnectOptions, Endpoint};
    use isml_runtime::wire::{ControlOp, Frame, FrameHeader, FrameKind};

    let ep: Endpoint = url.parse().unwrap();
    let mut t = transport::connect(&ep, &ConnectOptions::default())
        .await
        .unwrap();
    let hello = Hello {
        version: 1,
        device_id: device_id.into(),
        agent: "test".into(),
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
    assert_eq!(welcome.header.kind, FrameKind::Control(ControlOp::Welcome));
    t
}

#[tokio::test]
async fn a_malformed_request_gets_invalid_argument() {
    use futures_util::SinkExt;
    use isml_runtime::wire::{CallHeader, ErrorBody, Frame, FrameHeader, FrameKind};
    use isml_runtime::{Message, TopLevel};

    let state = Arc::new(State::default());
    let server = serve("mem://rpc-malformed", state).await;
    let mut t = raw_session("mem://rpc-malformed", "raw").await;
    let call = |correlation, payload: Vec<u8>| {
        Frame::new(
            FrameHeader::call(
                Request::TYPE_ID,
                correlation,
                CallHeader {
                    service: 1,
                    method: 1,
                    deadline_ms: 0,
                },
            ),
            payload,
        )
    };
    // A varint cut short, then a field of the wrong class.
    for (correlation, payload) in [(1, vec![0x01, 0xff]), (3, vec![0x03, 0x01, 0x02])] {
        t.send(call(correlation, payload)).await.unwrap();
        let reply = t.next().await.unwrap().unwrap();
        assert_eq!(reply.header.kind, FrameKind::Error);
        assert_eq!(reply.header.correlation, correlation);
        let body = ErrorBody::decode(&reply.payload).unwrap();
        assert_eq!(
            Code::from_wire(body.code),
            Code::InvalidArgument,
            "{body:?}"
        );
        assert!(
            body.message.contains("malformed request"),
            "{}",
            body.message
        );
    }
    // The session is still fine: a good call is answered.
    let good = Request { n: 2 }.encode_to_bytes().unwrap();
    t.send(call(5, good.to_vec())).await.unwrap();
    let reply = t.next().await.unwrap().unwrap();
    assert_eq!(reply.header.kind, FrameKind::Response);
    assert!(Reply::decode(reply.payload).unwrap().ok);
    // A call with the callee's own parity is refused.
    t.send(call(6, good.to_vec())).await.unwrap();
    let reply = t.next().await.unwrap().unwrap();
    assert_eq!(reply.header.kind, FrameKind::Error);
    server.shutdown().await;
}

#[tokio::test]
async fn a_consumer_that_stops_reading_holds_at_most_its_window() {
    let state = Arc::new(State::default());
    let server = serve("tcp://127.0.0.1:0", state).await;
    // A window of 1000 bytes: items of `Reply` cost 8 to 10 bytes each.
    let c = Client::builder(tcp_url(&server))
        .types(AnyMessage::TYPES)
        .stream_window(1000)
        .connect()
        .await
        .unwrap();
    let client = FormsClient::new(&c);
    let mut items = client
        .server_streaming(&Request { n: 20_000 })
        .await
        .unwrap();
    // Nothing is taken: the sender stops once the window is used up.
    let buffered = common::settled_buffer(&items).await;
    // At most the window, and the one item that may overdraw it.
    assert!(buffered <= 1000 / 8 + 1, "{buffered} items buffered");
    assert!(buffered >= 1000 / 10, "only {buffered} items buffered");
    // Taking them grants credit again: every item arrives, in order.
    let mut n = 0u32;
    while let Some(r) = items.next().await {
        assert_eq!(r.unwrap().ok, n.is_multiple_of(2), "item {n}");
        n += 1;
        assert!(Streaming::buffered(&items) <= 1000 / 8 + 1);
    }
    assert_eq!(n, 20_000);
    c.close("done").await;
    server.shutdown().await;
}

/// A raw connection to `serve`'s server (stream window 8 bytes) that has
/// called `client_streaming` (method 4) with correlation 1 and sends `frame`
/// as its stream: returns the code of the close frame the server answers.
async fn close_code_after(url: &str, frame: isml_runtime::wire::Frame) -> u64 {
    use futures_util::SinkExt;
    use isml_runtime::TopLevel;
    use isml_runtime::wire::{CallHeader, ControlOp, ErrorBody, Frame, FrameHeader, FrameKind};

    let mut t = raw_session(url, "raw-stream").await;
    let call = FrameHeader::call(
        Request::TYPE_ID,
        1,
        CallHeader {
            service: 1,
            method: 4,
            deadline_ms: 0,
        },
    );
    t.send(Frame::new(call, Vec::new())).await.unwrap();
    t.send(frame).await.unwrap();
    loop {
        let f = tokio::time::timeout(Duration::from_secs(5), t.next())
            .await
            .expect("the server answers")
            .expect("a close frame before the end")
            .unwrap();
        if f.header.kind == FrameKind::Control(ControlOp::Close) {
            return ErrorBody::decode(&f.payload).unwrap().code;
        }
    }
}

#[tokio::test]
async fn items_beyond_the_credit_or_a_malformed_batch_close_the_connection() {
    use isml_runtime::session::codes;
    use isml_runtime::wire::{Frame, FrameHeader};
    use isml_runtime::{Message, TopLevel};

    let state = Arc::new(State::default());
    let server = serve("mem://rpc-credit", state).await;
    let item = Request { n: 300 }.encode_to_bytes().unwrap();
    let mut two = Vec::new();
    for _ in 0..2 {
        isml_runtime::wire::batch::put_item_len(&mut two, item.len());
        two.extend_from_slice(&item);
    }
    // The window is 8 bytes: the first item may overdraw it, the second,
    // in the same frame, is beyond the credit.
    let batch = Frame::new(FrameHeader::stream_batch(Request::TYPE_ID, 1), two);
    assert_eq!(
        close_code_after("mem://rpc-credit", batch).await,
        codes::RESOURCE_EXHAUSTED
    );
    // A batch whose item runs past its end.
    let bad = Frame::new(
        FrameHeader::stream_batch(Request::TYPE_ID, 1),
        vec![0x03, 0x01],
    );
    assert_eq!(
        close_code_after("mem://rpc-credit", bad).await,
        codes::MALFORMED
    );
    server.shutdown().await;
}

/// The next frame with this correlation id, skipping any other (credit,
/// pings), within five seconds.
async fn frame_for(
    t: &mut isml_runtime::transport::Transport,
    correlation: u64,
) -> isml_runtime::wire::Frame {
    loop {
        let f = tokio::time::timeout(Duration::from_secs(5), t.next())
            .await
            .expect("the server answers in time")
            .expect("the connection stays open")
            .unwrap();
        if f.header.correlation == correlation {
            return f;
        }
    }
}

/// The request frame of a call of `Forms` method `method`.
fn call_frame(correlation: u64, method: u32, payload: Vec<u8>) -> isml_runtime::wire::Frame {
    use isml_runtime::TopLevel;
    use isml_runtime::wire::{CallHeader, Frame, FrameHeader};
    let call = CallHeader {
        service: 1,
        method,
        deadline_ms: 0,
    };
    Frame::new(
        FrameHeader::call(Request::TYPE_ID, correlation, call),
        payload,
    )
}

/// Found by the `session` fuzz target (docs/fuzzing.md): calls with streams
/// took the places other handlers wait for, and their handlers wait on the
/// peer, whom the session no longer read. With `max_inflight` 2, two
/// bidirectional calls and a unary call stopped the session for good: it
/// answered nothing, and did not notice the peer leave or go silent.
/// Calls with streams now have places of their own and are refused beyond
/// them; other calls never wait for them.
#[tokio::test]
async fn calls_with_streams_never_stop_the_session_reading() {
    use futures_util::SinkExt;
    use isml_runtime::session::codes;
    use isml_runtime::wire::{ErrorBody, Frame, FrameHeader, FrameKind};
    use isml_runtime::{Message, TopLevel};

    let state = Arc::new(State::default());
    let server = Server::builder()
        .listen("mem://rpc-stream-places")
        .types(AnyMessage::TYPES)
        .dispatcher(Dispatcher::new().service(FormsServer::new(Impl(state))))
        .max_inflight(2)
        .start()
        .await
        .unwrap();
    let mut t = raw_session("mem://rpc-stream-places", "raw-places").await;
    // The fuzzer's input: two bidirectional calls (method 5), then a unary
    // call (method 1) that needs a place to run.
    t.send(call_frame(1, 5, Vec::new())).await.unwrap();
    t.send(call_frame(3, 5, Vec::new())).await.unwrap();
    let n8 = Request { n: 8 }.encode_to_vec().unwrap();
    t.send(call_frame(5, 1, n8)).await.unwrap();
    let reply = frame_for(&mut t, 5).await;
    assert_eq!(reply.header.kind, FrameKind::Response, "the unary call ran");
    assert!(Reply::decode(reply.payload).unwrap().ok);
    // A third call with a stream is refused at once.
    t.send(call_frame(7, 5, Vec::new())).await.unwrap();
    let refused = frame_for(&mut t, 7).await;
    assert_eq!(refused.header.kind, FrameKind::Error);
    assert_eq!(
        ErrorBody::decode(&refused.payload).unwrap().code,
        codes::RESOURCE_EXHAUSTED
    );
    // The two streams still run: an item on each is answered.
    for correlation in [1, 3] {
        let item = Request { n: 2 }.encode_to_bytes().unwrap();
        t.send(Frame::new(
            FrameHeader::stream_item(Request::TYPE_ID, correlation),
            item,
        ))
        .await
        .unwrap();
        let answer = frame_for(&mut t, correlation).await;
        assert_eq!(answer.header.kind, FrameKind::StreamItem);
        assert!(Reply::decode(answer.payload).unwrap().ok);
    }
    server.shutdown().await;
}

/// Found by the `session` fuzz target: a call under the correlation id of
/// a call still running took over its streams and its cancellation, so the
/// first handler waited for its input for ever, past the end of its session
/// and the server's shutdown. The second call is now refused.
#[tokio::test]
async fn a_call_under_the_id_of_a_running_call_is_refused() {
    use futures_util::SinkExt;
    use isml_runtime::session::codes;
    use isml_runtime::wire::{ErrorBody, Frame, FrameHeader, FrameKind};
    use isml_runtime::{Message, TopLevel};

    let state = Arc::new(State::default());
    let server = serve("mem://rpc-duplicate-id", state).await;
    let mut t = raw_session("mem://rpc-duplicate-id", "raw-duplicate").await;
    t.send(call_frame(9, 5, Vec::new())).await.unwrap();
    t.send(call_frame(9, 5, Vec::new())).await.unwrap();
    let refused = frame_for(&mut t, 9).await;
    assert_eq!(refused.header.kind, FrameKind::Error);
    assert_eq!(
        ErrorBody::decode(&refused.payload).unwrap().code,
        codes::ALREADY_EXISTS
    );
    // The first call is still the one its items reach, and its end ends it.
    let item = Request { n: 4 }.encode_to_bytes().unwrap();
    t.send(Frame::new(
        FrameHeader::stream_item(Request::TYPE_ID, 9),
        item,
    ))
    .await
    .unwrap();
    let answer = frame_for(&mut t, 9).await;
    assert_eq!(answer.header.kind, FrameKind::StreamItem);
    assert!(Reply::decode(answer.payload).unwrap().ok);
    t.send(Frame::new(FrameHeader::stream_end(9), Vec::new()))
        .await
        .unwrap();
    let end = frame_for(&mut t, 9).await;
    assert_eq!(
        end.header.kind,
        FrameKind::StreamEnd,
        "the handler returned"
    );
    server.shutdown().await;
}
