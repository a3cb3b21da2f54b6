//! Writes the seed corpora in `fuzz/corpus/<target>/` from the project's own
//! material: the wire-format vectors (`tests/vectors/wire-v1.json`), the
//! schemas and the compiler's fixtures, the text protocol's transcript in
//! `docs/text-protocol.md`, messages of the generated types, and the frames
//! a real client and server exchange over `mem://`, recorded.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`, then
//! minimise with `cargo fuzz cmin` (docs/fuzzing.md). Seed files are named
//! `seed-*`; existing files are overwritten, others are left alone.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use isml_codegen_tests::charging::v1::{self as charging, channels};
use isml_codegen_tests::{alltypes, fixtures::recursion, fixtures::rpc_forms};
use isml_fuzz::session::{self, MAX_FRAME};
use isml_runtime::Message;
use isml_runtime::client::Client;
use isml_runtime::handshake::{Credentials, Hello, PROTOCOL_VERSION, Welcome};
use isml_runtime::server::Server;
use isml_runtime::session::PeerService;
use isml_runtime::transport::{self, ConnectOptions, Endpoint, Transport};
use isml_runtime::wire::{ControlOp, Frame, FrameKind, put_stream_frame};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = root().join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn main() {
    vectors();
    messages();
    handshakes();
    schemas();
    text();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(sessions());
}

/// Stream and serial frames from the reference vectors, each as the
/// fuzzer's input: the selector byte(s), then the bytes.
fn vectors() {
    let text = std::fs::read_to_string(root().join("../tests/vectors/wire-v1.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut all_stream = Vec::new();
    for (i, v) in json["vectors"].as_array().unwrap().iter().enumerate() {
        let Some(hex) = v["hex"].as_str() else {
            continue;
        };
        let bytes = unhex(hex);
        match v["group"].as_str().unwrap() {
            "stream_frame" => {
                // 64 KiB limit, one read; and a 64-byte limit in 1-byte reads.
                write(
                    "stream_frame",
                    &format!("vector-{i}"),
                    &[&[0x03][..], &bytes].concat(),
                );
                write(
                    "stream_frame",
                    &format!("vector-{i}-small"),
                    &[&[0x01][..], &bytes].concat(),
                );
                if v.get("error").is_none() {
                    all_stream.extend_from_slice(&bytes);
                }
            }
            "serial_frame" => {
                let addressed =
                    v["value"]["address"].is_u64() || v["addressed"].as_bool() == Some(true);
                let addr = if addressed { 1 } else { 0 };
                write(
                    "serial_frame",
                    &format!("vector-{i}"),
                    &[&[addr, 0x03][..], &bytes].concat(),
                );
            }
            "cobs" => {
                let mut b = bytes.clone();
                b.push(0);
                write(
                    "serial_frame",
                    &format!("cobs-{i}"),
                    &[&[0, 0x03][..], &b].concat(),
                );
            }
            "header" if v.get("error").is_none() => {
                // A header alone is a frame with an empty payload.
                let mut b = BytesMut::new();
                isml_runtime::wire::varint::put(&mut b, bytes.len() as u64 - 1);
                b.extend_from_slice(&bytes);
                write(
                    "stream_frame",
                    &format!("header-{i}"),
                    &[&[0x03][..], &b].concat(),
                );
            }
            _ => {}
        }
    }
    write(
        "stream_frame",
        "all-valid",
        &[&[0xff][..], &all_stream].concat(),
    );
}

fn messages() {
    let scalars = alltypes::Scalars {
        b: true,
        u8: 200,
        u16: 60_000,
        u32: 1 << 30,
        u64: u64::MAX,
        i8: -5,
        i16: -300,
        i32: -70_000,
        i64: i64::MIN,
        f32: 1.5,
        f64: -2.25,
        s: "héllo".into(),
        raw: Bytes::from_static(b"\x00\x01\xff"),
        c: alltypes::Color::Blue,
    };
    let node = alltypes::Node {
        value: 1,
        left: Some(Box::new(alltypes::Node {
            value: 2,
            label: Some("left".into()),
            ..Default::default()
        })),
        right: None,
        children: vec![
            alltypes::Node::default(),
            alltypes::Node {
                value: -3,
                ..Default::default()
            },
        ],
        label: Some("root".into()),
    };
    let mut containers = alltypes::Containers {
        opt_u32: Some(7),
        opt_str: Some("x".into()),
        list_u8: vec![1, 2, 3],
        list_u32: vec![1, 300, 70_000],
        list_str: vec!["a".into(), String::new()],
        nested: vec![vec![1, 2], vec![]],
        opt_list: vec![Some(1), None],
        colors: vec![alltypes::Color::Red, alltypes::Color::Green],
        scalars: scalars.clone(),
        maybe: Some(scalars.clone()),
        many: vec![alltypes::Scalars::default()],
        choice: alltypes::Choice::Text("t".into()),
        choices: vec![alltypes::Choice::Number(-1), alltypes::Choice::Pair([1, 2])],
        ..Default::default()
    };
    containers.by_name.insert("k".into(), -1);
    containers.by_id.insert(5, "v".into());
    containers.flags.insert(true, 1);
    containers.by_u64.insert(9, scalars.clone());
    let expr = alltypes::Expr::Sum(alltypes::Sum {
        terms: vec![
            alltypes::Expr::Lit(4),
            alltypes::Expr::Neg(alltypes::Neg {
                inner: Some(Box::new(alltypes::Expr::Lit(-2))),
            }),
        ],
    });
    let seeds: Vec<(u8, &str, Vec<u8>)> = vec![
        (0, "scalars", scalars.encode_to_vec().unwrap()),
        (
            0,
            "scalars-default",
            alltypes::Scalars::default().encode_to_vec().unwrap(),
        ),
        (1, "containers", containers.encode_to_vec().unwrap()),
        (
            1,
            "containers-default",
            alltypes::Containers::default().encode_to_vec().unwrap(),
        ),
        (
            2,
            "choice",
            alltypes::Choice::Inner(scalars.clone())
                .encode_to_vec()
                .unwrap(),
        ),
        (3, "node", node.encode_to_vec().unwrap()),
        (4, "expr", expr.encode_to_vec().unwrap()),
        (
            5,
            "type",
            alltypes::Type {
                r#type: 1,
                r#match: "m".into(),
                ..Default::default()
            }
            .encode_to_vec()
            .unwrap(),
        ),
        (
            6,
            "limited",
            alltypes::Limited {
                name: "abcd".into(),
                temp: 20.0,
                level: Some(3),
                items: vec![1, 2],
                ..Default::default()
            }
            .encode_to_vec()
            .unwrap(),
        ),
        (
            7,
            "sparse",
            alltypes::Sparse { first: 1, last: 2 }
                .encode_to_vec()
                .unwrap(),
        ),
        (
            8,
            "telemetry",
            alltypes::SlotTelemetry {
                slot: 3,
                voltage_mv: 48_000,
                current_ma: -1200,
                temperature_c: 21.5,
                charging: true,
                energy_wh: 1 << 40,
            }
            .encode_to_vec()
            .unwrap(),
        ),
        (
            9,
            "status",
            charging::StatusReport::default().encode_to_vec().unwrap(),
        ),
        (
            10,
            "meter",
            charging::MeterReading {
                energy_wh: 5,
                voltage_v: 230.0,
                phase_voltages_v: Some([230.0, 231.0, 229.5]),
                ..Default::default()
            }
            .encode_to_vec()
            .unwrap(),
        ),
        (
            11,
            "command",
            charging::Command::Reboot(Default::default())
                .encode_to_vec()
                .unwrap(),
        ),
        (
            12,
            "variable",
            charging::Variable {
                value: charging::VariableValue::Text("on".into()),
                unit: Some("V".into()),
            }
            .encode_to_vec()
            .unwrap(),
        ),
        (
            13,
            "recursion-node",
            recursion::Node::default().encode_to_vec().unwrap(),
        ),
        (
            14,
            "json",
            recursion::Json::Array(vec![
                recursion::Json::Number(1.0),
                recursion::Json::Text("a".into()),
            ])
            .encode_to_vec()
            .unwrap(),
        ),
        (
            15,
            "any-scalars",
            [&[1u8][..], &scalars.encode_to_vec().unwrap()].concat(),
        ),
    ];
    for (which, name, payload) in seeds {
        write("message_decode", name, &[&[which][..], &payload].concat());
    }
}

fn handshakes() {
    let hello = |credentials, services: Vec<PeerService>| Hello {
        version: PROTOCOL_VERSION,
        device_id: "cab-7".into(),
        agent: "isml-fuzz/seeds".into(),
        credentials,
        types: vec![(1, 0x0123_4567_89ab_cdef), (300, 1)],
        stream_window: 4096,
        services,
    };
    let service = PeerService {
        name: "fixtures.rpc_forms.Forms".into(),
        methods: vec![(1, 11), (2, 22)],
    };
    write(
        "handshake",
        "hello-none",
        &hello(Credentials::None, vec![]).encode(),
    );
    write(
        "handshake",
        "hello-token",
        &hello(Credentials::Token("secret".into()), vec![service.clone()]).encode(),
    );
    write(
        "handshake",
        "hello-user",
        &hello(
            Credentials::UserPassword {
                username: "u".into(),
                password: "p".into(),
            },
            vec![],
        )
        .encode(),
    );
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        session_id: 42,
        device_id: "cab-7".into(),
        keepalive_ms: 30_000,
        types: vec![(1, 2), (3, 4)],
        stream_window: 262_144,
        services: vec![service],
    };
    write("handshake", "welcome", &welcome.encode());
}

fn schemas() {
    let mut dirs = vec![
        root().join("../schemas"),
        root().join("../tests/codegen/schemas"),
        root().join("../isml-schema/tests/fixtures/valid"),
        root().join("../isml-schema/tests/fixtures/invalid"),
    ];
    dirs.sort();
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "isml") {
                let name = format!(
                    "{}-{}",
                    dir.file_name().unwrap().to_string_lossy(),
                    path.file_stem().unwrap().to_string_lossy()
                );
                write("schema", &name, &std::fs::read(&path).unwrap());
            }
        }
    }
}

/// The transcript of docs/text-protocol.md: the client's lines, then the
/// server's, each set as one input in 7-byte reads with 256-byte lines.
fn text() {
    let doc = std::fs::read_to_string(root().join("../docs/text-protocol.md")).unwrap();
    let mut client = String::new();
    let mut server = String::new();
    for line in doc.lines() {
        if let Some(l) = line.strip_prefix("> ") {
            client.push_str(l);
            client.push('\n');
        } else if let Some(l) = line.strip_prefix("< ") {
            server.push_str(l);
            server.push('\r');
            server.push('\n');
        }
    }
    write(
        "text_line",
        "client",
        &[&[1 + 3 * 6][..], client.as_bytes()].concat(),
    );
    write(
        "text_line",
        "server",
        &[&[2][..], server.as_bytes()].concat(),
    );
    write(
        "text_line",
        "one",
        b"\x01START | COMMAND=PUB | VARIABLE=door | VALUE=a%7Cb%20 | END\n",
    );
}

/// Frames recorded on a client's transport: what it sent and what it got.
#[derive(Default)]
struct Tape {
    sent: Vec<Frame>,
    received: Vec<Frame>,
}

fn recorded(t: Transport, tape: Arc<Mutex<Tape>>) -> Transport {
    let (rx, tx, info) = t.split();
    let in_tape = tape.clone();
    let rx = rx.inspect(move |f| {
        if let Ok(f) = f {
            in_tape.lock().unwrap().received.push(f.clone());
        }
    });
    let tx = tx.with(move |f: Frame| {
        tape.lock().unwrap().sent.push(f.clone());
        futures_util::future::ready(Ok::<_, transport::TransportError>(f))
    });
    Transport::new(Box::pin(rx), Box::pin(tx), info)
}

fn stream_bytes(mode: u8, frames: &[Frame]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[mode]);
    for f in frames {
        put_stream_frame(&mut buf, &f.header, &f.payload, MAX_FRAME).unwrap();
    }
    buf.to_vec()
}

/// A real client and server over `mem://` doing one thing at a time; each
/// step's frames become seeds of the session target (client to server,
/// modes 0 and 1; server to client, mode 2) and of the stream target.
async fn sessions() {
    let url = "mem://fuzz-seeds";
    let server = Server::builder()
        .listen(url)
        .types(rpc_forms::AnyMessage::TYPES)
        .dispatcher(session::dispatcher())
        .channel::<channels::Faults>()
        .channel::<channels::Variables>()
        .max_frame(MAX_FRAME)
        .stream_window(4096)
        .start()
        .await
        .unwrap();
    let tape = Arc::new(Mutex::new(Tape::default()));
    let endpoint: Endpoint = url.parse().unwrap();
    let t = transport::connect(&endpoint, &ConnectOptions::default())
        .await
        .unwrap();
    let client = Client::builder(url)
        .device_id("seed-device")
        .types(rpc_forms::AnyMessage::TYPES)
        .dispatcher(session::dispatcher())
        .stream_window(4096)
        .fragment_size(Some(64));
    let s = client
        .connect_over(recorded(t, tape.clone()))
        .await
        .unwrap();
    let forms = rpc_forms::FormsClient::new(s.clone()).with_timeout(Duration::from_secs(5));
    let mut steps: Vec<(&str, (usize, usize))> = Vec::new();
    let mark = || {
        let t = tape.lock().unwrap();
        (t.sent.len(), t.received.len())
    };
    let settle = || tokio::time::sleep(Duration::from_millis(50));

    macro_rules! step {
        ($name:expr, $body:expr) => {{
            let start = mark();
            let _ = $body;
            settle().await;
            steps.push(($name, start));
        }};
    }
    step!(
        "request",
        s.request::<rpc_forms::Reply>(&rpc_forms::Request { n: 4 })
            .await
    );
    step!("one-way", s.send(&rpc_forms::Stream { x: 1 }).await);
    step!("unary", forms.unary(&rpc_forms::Request { n: 0 }).await);
    step!("server-streaming", {
        let mut items = forms
            .server_streaming(&rpc_forms::Request { n: 3 })
            .await
            .unwrap();
        while let Some(Ok(_)) = items.next().await {}
    });
    step!(
        "rpc-one-way",
        forms.one_way(&rpc_forms::Request { n: 1 }).await
    );
    step!("client-streaming", {
        let up = forms.client_streaming().await.unwrap();
        for n in 0..3u32 {
            up.send(rpc_forms::Request { n }).await.unwrap();
        }
        up.finish().await
    });
    step!("bidirectional", {
        let (tx, mut rx) = forms.bidirectional().await.unwrap();
        for n in 0..2u32 {
            tx.send(rpc_forms::Request { n }).await.unwrap();
            let _ = rx.next().await;
        }
        tx.finish().await.unwrap();
        while let Some(Ok(_)) = rx.next().await {}
    });
    step!("subscribe-publish", {
        let mut sub = s.subscribe::<channels::Faults>().await.unwrap();
        s.publish::<channels::Faults>(&charging::Fault::default())
            .await
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(1), sub.next()).await;
        sub.unsubscribe().await
    });
    step!("keyed", {
        let v = charging::Variable {
            value: charging::VariableValue::Int(3),
            unit: None,
        };
        s.publish_keyed::<channels::Variables>("door", &v)
            .await
            .unwrap();
        let mut sub = s
            .subscribe_key::<channels::Variables>("door")
            .await
            .unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(1), sub.next()).await;
        s.delete_retained::<channels::Variables>(Some("door")).await
    });
    step!(
        "fragmented",
        s.request::<rpc_forms::Reply>(&rpc_forms::Request { n: 6 })
            .await
    );
    step!("server-calls-device", {
        let on_server = server.session_by_device("seed-device").unwrap();
        let device = rpc_forms::FormsClient::new(on_server.clone());
        let _ = device.unary(&rpc_forms::Request { n: 5 }).await;
        on_server
            .request::<rpc_forms::Reply>(&rpc_forms::Request { n: 8 })
            .await
    });
    step!("close", s.close("bye").await);
    server.shutdown().await;

    let tape = tape.lock().unwrap();
    let hello = tape.sent[0].clone();
    assert_eq!(hello.header.kind, FrameKind::Control(ControlOp::Hello));
    let ends: Vec<(usize, usize)> = steps
        .iter()
        .skip(1)
        .map(|(_, m)| *m)
        .chain([(tape.sent.len(), tape.received.len())])
        .collect();
    let mut everything = vec![hello.clone()];
    for ((name, (s0, r0)), (s1, r1)) in steps.iter().zip(ends) {
        let sent = &tape.sent[(*s0).max(1)..s1];
        let received: Vec<Frame> = tape.received[*r0..r1]
            .iter()
            .filter(|f| f.header.kind != FrameKind::Control(ControlOp::Welcome))
            .cloned()
            .collect();
        write(
            "session",
            &format!("to-server-{name}"),
            &stream_bytes(0, sent),
        );
        let with_hello: Vec<Frame> = std::iter::once(hello.clone())
            .chain(sent.iter().cloned())
            .collect();
        write(
            "session",
            &format!("hello-{name}"),
            &stream_bytes(1, &with_hello),
        );
        write(
            "session",
            &format!("to-client-{name}"),
            &stream_bytes(2, &received),
        );
        // Modes 3 and 5: the same with tight limits.
        write(
            "session",
            &format!("tight-to-server-{name}"),
            &stream_bytes(3, sent),
        );
        write(
            "session",
            &format!("tight-to-client-{name}"),
            &stream_bytes(5, &received),
        );
        write(
            "stream_frame",
            &format!("session-{name}"),
            &stream_bytes(0x03, sent),
        );
        write(
            "serial_frame",
            &format!("bodies-{name}"),
            &serial_bodies(sent),
        );
        everything.extend(sent.iter().cloned());
    }
    write(
        "session",
        "to-server-everything",
        &stream_bytes(1, &everything),
    );
}

/// The serial target's harness-framed form (first byte 0x81: no addressing,
/// the harness adds CRC and COBS): `[len][header and payload]` per frame.
fn serial_bodies(frames: &[Frame]) -> Vec<u8> {
    let mut out = vec![0x81, 0x03];
    for f in frames {
        let mut body = Vec::new();
        f.header.encode(&mut body).unwrap();
        body.extend_from_slice(&f.payload);
        if let Ok(len) = u8::try_from(body.len()) {
            out.push(len);
            out.extend_from_slice(&body);
        }
    }
    out
}
