//! The session state machine, fed arbitrary frame sequences over a real
//! in-memory connection (`mem://`): a real [`Server`] (handlers, a service
//! of every rpc form, pub/sub channels) or a real [`Client`] on one end,
//! the fuzzer's frames on the other.
//!
//! Input: the first byte picks the mode, the rest is a byte stream of
//! stream-framed frames (wire format §3) as a peer would write them; it is
//! cut at the first frame that does not decode, and at [`MAX_FRAMES`].
//!
//! | mode % 3 | the fuzzer plays | before its frames |
//! |---|---|---|
//! | 0 | a client of a server | a valid hello, the welcome read |
//! | 1 | a client of a server | nothing: its first frame is the hello (or not) |
//! | 2 | a server of a client | the client's hello read, a valid welcome sent |
//!
//! With `mode / 3` odd, the real side runs with tight limits (two requests
//! in flight, small queues and byte budgets, 64-byte fragments, 1 KiB
//! messages, a one-second keep-alive, a 64-byte stream window), so that the
//! backpressure and budget paths run on small inputs.
//!
//! After the frames comes a probe: a request the other side's dispatcher
//! answers. The property: no panic anywhere (libFuzzer aborts on a panic in
//! any task), and within an hour of virtual time the session either answers
//! the probe (it still works) or closes the connection (it refused
//! something). Time is tokio's paused clock, so keep-alives, deadlines and
//! timeouts fire as soon as nothing else can run, and each input takes
//! milliseconds of real time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use isml_codegen_tests::charging::v1::channels as charging_channels;
use isml_codegen_tests::fixtures::rpc_forms::{
    AnyMessage, Forms, FormsClient, FormsServer, Reply, Request, Stream as Note,
};
use isml_runtime::client::{Client, ClientBuilder};
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::handshake::{Credentials, Hello, PROTOCOL_VERSION, Welcome};
use isml_runtime::rpc::{Call, Sink, Status, Streaming};
use isml_runtime::server::{Server, ServerBuilder};
use isml_runtime::session::PeerService;
use isml_runtime::transport::{
    self, ConnectOptions, Endpoint, FrameSink, FrameStream, ListenOptions, Listener,
};
use isml_runtime::wire::{ControlOp, Frame, FrameHeader, FrameKind, StreamDecoder};
use isml_runtime::{Message, TopLevel};

/// Frames taken from one input.
pub const MAX_FRAMES: usize = 64;
/// Largest frame taken from an input (and the server's frame limit).
pub const MAX_FRAME: usize = 16 * 1024;
/// The probe's correlation id.
pub const PROBE: u64 = 0x7fff_ffff_ffff_fff0;
/// How long (virtual) the session has to answer the probe or close.
const PATIENCE: Duration = Duration::from_secs(3600);

/// The frames of an input, cut at the first that does not decode.
pub fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = StreamDecoder::new(MAX_FRAME);
    let mut out = Vec::new();
    while out.len() < MAX_FRAMES {
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => out.push(frame),
            Ok(None) | Err(_) => break,
        }
    }
    out
}

/// Runs one input.
pub fn session(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let frames = frames(rest);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(async move {
        let tight = (mode / 3) % 2 == 1;
        let run = async {
            match mode % 3 {
                0 => against_server(frames, true, tight).await,
                1 => against_server(frames, false, tight).await,
                _ => against_client(frames, tight).await,
            }
        };
        match tokio::time::timeout(PATIENCE, run).await {
            Ok(()) => {}
            Err(_) => panic!("the session neither answered the probe nor closed in {PATIENCE:?}"),
        }
        // The sessions have ended: every handler has returned or been
        // dropped, after the grace a cancelled stream gets.
        tokio::time::sleep(Duration::from_secs(60)).await;
        let running = RUNNING.load(Ordering::Relaxed);
        assert_eq!(running, 0, "{running} handlers outlived their session");
    });
}

/// The tight limits of the module documentation, on a server.
fn tight_server(b: ServerBuilder) -> ServerBuilder {
    b.max_inflight(2)
        .outbound_queue(4)
        .outbound_bytes(512)
        .reply_bytes(512)
        .inflight_bytes(512)
        .max_message(1024)
        .fragment_size(Some(64))
        .keepalive(Some(Duration::from_secs(1)))
        .stream_window(64)
}

/// The same limits on a client (the builders share their session setters).
fn tight_client(b: ClientBuilder) -> ClientBuilder {
    b.max_inflight(2)
        .outbound_queue(4)
        .outbound_bytes(512)
        .reply_bytes(512)
        .inflight_bytes(512)
        .max_message(1024)
        .fragment_size(Some(64))
        .keepalive(Some(Duration::from_secs(1)))
        .stream_window(64)
}

/// A fresh in-memory name per connection: inputs never share a listener.
fn url(side: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("mem://fuzz-{side}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The probe: a plain request the dispatchers answer.
fn probe() -> Frame {
    let payload = Request { n: 2 }.encode_to_vec().expect("encodes");
    Frame::new(FrameHeader::request(Request::TYPE_ID, PROBE), payload)
}

/// Handlers on both sides: a request, a one-way message and every rpc form.
pub fn dispatcher() -> Dispatcher {
    Dispatcher::new()
        .on_request::<Request, Reply, _, _>(|_ctx, req| async move {
            Ok(Reply {
                ok: req.n.is_multiple_of(2),
            })
        })
        .on::<Note, _, _>(|_ctx, _note| async { Ok(()) })
        .service(FormsServer::new(Impl))
}

/// Handlers running now, on either side: none may outlive its session.
static RUNNING: AtomicU64 = AtomicU64::new(0);

/// Counts a handler in [`RUNNING`] while it lives.
struct Running;

impl Running {
    fn new() -> Running {
        RUNNING.fetch_add(1, Ordering::Relaxed);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every rpc form, each bounded: a stream sends at most 8 items.
struct Impl;

impl Forms for Impl {
    async fn unary(&self, _call: Call, req: Request) -> Result<Reply, Status> {
        let _running = Running::new();
        match req.n {
            0 => Err(Status::not_found("no request 0")),
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
        let _running = Running::new();
        for i in 0..req.n.min(8) {
            out.send(Reply {
                ok: i.is_multiple_of(2),
            })
            .await?;
        }
        Ok(())
    }

    async fn one_way(&self, _call: Call, _req: Request) {
        let _running = Running::new();
    }

    async fn client_streaming(
        &self,
        _call: Call,
        mut req: Streaming<Request>,
    ) -> Result<Reply, Status> {
        let _running = Running::new();
        let mut sum = 0u64;
        while let Some(item) = req.next().await {
            sum += u64::from(item?.n);
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
        let _running = Running::new();
        while let Some(item) = req.next().await {
            out.send(Reply {
                ok: item?.n.is_multiple_of(2),
            })
            .await?;
        }
        Ok(())
    }
}

/// How the connection ended for the fuzzer's side.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The probe was answered (a response or an error response).
    Answered,
    /// The peer closed (a close frame, the end of the stream, or an error).
    Closed,
}

/// Reads until the probe is answered or the connection ends; everything
/// else (replies to the fuzzer's requests, pushes, pings) is read and
/// dropped, so that the peer never blocks on a full pipe.
async fn watch(mut rx: FrameStream) -> End {
    while let Some(frame) = rx.next().await {
        let Ok(frame) = frame else {
            return End::Closed;
        };
        match frame.header.kind {
            FrameKind::Control(ControlOp::Close) => return End::Closed,
            FrameKind::Response | FrameKind::Error if frame.header.correlation == PROBE => {
                return End::Answered;
            }
            _ => {}
        }
    }
    End::Closed
}

/// Writes the fuzzer's frames and then the probe; stops when the peer has
/// gone.
async fn write(mut tx: FrameSink, frames: Vec<Frame>) -> FrameSink {
    for frame in frames {
        if tx.feed(frame).await.is_err() {
            return tx;
        }
    }
    if tx.feed(probe()).await.is_ok() {
        let _ = tx.flush().await;
    }
    tx
}

async fn against_server(frames: Vec<Frame>, handshake: bool, tight: bool) {
    let url = url("server");
    let builder = Server::builder()
        .listen(&url)
        .types(AnyMessage::TYPES)
        .dispatcher(dispatcher())
        // Not `telemetry`: its StatusReport has type id 1, as Request has.
        .channel::<charging_channels::Faults>()
        .channel::<charging_channels::Variables>()
        .max_frame(MAX_FRAME)
        .stream_window(4096);
    let builder = if tight {
        tight_server(builder)
    } else {
        builder
    };
    let server = builder.start().await.expect("the server starts");
    let endpoint: Endpoint = url.parse().expect("a mem url");
    // Without the `tls` feature, the frame limit is the only option.
    let options = ConnectOptions {
        max_frame: Some(MAX_FRAME),
    };
    let t = transport::connect(&endpoint, &options)
        .await
        .expect("connects");
    let (mut rx, mut tx, _) = t.split();
    if handshake {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            device_id: "fuzz".into(),
            agent: "isml-fuzz".into(),
            credentials: Credentials::None,
            types: AnyMessage::TYPES
                .iter()
                .map(|&(id, _, fp)| (id, fp))
                .collect(),
            stream_window: 4096,
            services: Vec::new(),
        };
        tx.send(Frame::new(
            FrameHeader::control(ControlOp::Hello),
            hello.encode(),
        ))
        .await
        .expect("sends the hello");
        let welcome = rx
            .next()
            .await
            .expect("an answer to the hello")
            .expect("a frame");
        assert_eq!(
            welcome.header.kind,
            FrameKind::Control(ControlOp::Welcome),
            "a valid hello is welcomed"
        );
    }
    let watcher = tokio::spawn(watch(rx));
    let writer = tokio::spawn(write(tx, frames));
    let end = watcher.await.expect("the watcher does not panic");
    // The connection stays open until the end is seen: a closed sink
    // would close the session on its own.
    drop(writer.await.expect("the writer does not panic"));
    let _ = end;
    server.shutdown().await;
}

async fn against_client(frames: Vec<Frame>, tight: bool) {
    let url = url("client");
    let endpoint: Endpoint = url.parse().expect("a mem url");
    let options = ListenOptions {
        max_frame: Some(MAX_FRAME),
    };
    let mut listener = Listener::bind(&endpoint, &options).await.expect("binds");
    let client = tokio::spawn({
        let url = url.clone();
        async move {
            let builder = Client::builder(url)
                .device_id("fuzz-device")
                .types(AnyMessage::TYPES)
                .dispatcher(dispatcher())
                .stream_window(4096);
            let builder = if tight {
                tight_client(builder)
            } else {
                builder
            };
            let session = builder.connect_session().await.ok()?;
            // The client's own calls, whose replies the fuzzer may forge.
            let forms = FormsClient::new(session.clone()).with_timeout(Duration::from_secs(30));
            let request = session.request::<Reply>(&Request { n: 1 });
            let call = forms.unary(&Request { n: 3 });
            let streamed = async {
                if let Ok(mut items) = forms.server_streaming(&Request { n: 2 }).await {
                    while let Some(Ok(_)) = items.next().await {}
                }
            };
            let _ = tokio::join!(request, call, streamed);
            Some(session)
        }
    });
    let incoming = listener.accept().await.expect("the client connects");
    let t = incoming.upgrade().await.expect("upgrades");
    let (mut rx, mut tx, _) = t.split();
    let hello = rx
        .next()
        .await
        .expect("the client says hello")
        .expect("a frame");
    assert_eq!(hello.header.kind, FrameKind::Control(ControlOp::Hello));
    let hello = Hello::decode(&hello.payload).expect("the client's hello decodes");
    let services = FormsClient::descriptor();
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        session_id: 1,
        device_id: hello.device_id,
        keepalive_ms: 30_000,
        types: AnyMessage::TYPES
            .iter()
            .map(|&(id, _, fp)| (id, fp))
            .collect(),
        stream_window: 4096,
        services: vec![PeerService {
            name: services.name.to_owned(),
            methods: services
                .methods
                .iter()
                .map(|m| (m.id, m.fingerprint()))
                .collect(),
        }],
    };
    tx.send(Frame::new(
        FrameHeader::control(ControlOp::Welcome),
        welcome.encode(),
    ))
    .await
    .expect("sends the welcome");
    let watcher = tokio::spawn(watch(rx));
    let writer = tokio::spawn(write(tx, frames));
    let _end = watcher.await.expect("the watcher does not panic");
    drop(writer.await.expect("the writer does not panic"));
    // The client's calls finish: answered, failed, or timed out.
    let session = client.await.expect("the client task does not panic");
    if let Some(session) = session {
        session.close("done").await;
    }
}
