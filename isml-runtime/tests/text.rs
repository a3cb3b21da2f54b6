//! The text protocol against an in-process server over real TCP: counted
//! reasons for `BAD`, text and binary devices seeing each other's values
//! and messages, `ID` through the authenticator, the duplicate-id policy and
//! the ACL. (Process-level behaviour, `isml serve` with `kill -9`, memory and
//! many clients, is in isml-cli/tests/textproto.rs.)
#![cfg(feature = "tcp")]

mod common;

use std::time::Duration;

use isml_runtime::client::Client;
use isml_runtime::dispatch::Dispatcher;
use isml_runtime::handshake::TokenAuthenticator;
use isml_runtime::pubsub::Acl;
use isml_runtime::server::{DuplicateIds, Server};
use isml_runtime::text::{Line, Value, channels::Variables};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

/// A text device on a real socket.
struct Text {
    lines: tokio::io::Lines<BufReader<OwnedReadHalf>>,
    tx: OwnedWriteHalf,
}

impl Text {
    async fn connect(url: &str) -> Text {
        let addr = url.split_once("://").unwrap().1;
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, w) = s.into_split();
        Text {
            lines: BufReader::new(r).lines(),
            tx: w,
        }
    }

    async fn send(&mut self, line: &str) {
        self.tx
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
    }

    /// The next line, parsed; `None` at EOF. Fails after 10 s.
    async fn next(&mut self) -> Option<Line> {
        let l = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("a line within 10 s")
            .unwrap()?;
        Some(Line::parse(&l).unwrap().expect("not blank"))
    }

    /// Sends `line` and returns the answer's command (`OK`/`BAD`) and reason.
    async fn command(&mut self, line: &str) -> (String, Option<String>) {
        self.send(line).await;
        let l = self.next().await.expect("an answer");
        (l.command.clone(), l.get("REASON").map(str::to_owned))
    }

    async fn ok(&mut self, line: &str) {
        let (answer, reason) = self.command(line).await;
        assert_eq!(answer, "OK", "{line}: {reason:?}");
    }
}

async fn start(b: isml_runtime::server::ServerBuilder, query: &str) -> (Server, String) {
    let s = b
        .listen("tcp://127.0.0.1:0")
        .listen(format!("text+tcp://127.0.0.1:0?{query}"))
        .start()
        .await
        .unwrap();
    let text = s
        .urls()
        .iter()
        .find(|u| u.starts_with("text+tcp://"))
        .unwrap()
        .clone();
    (s, text)
}

#[tokio::test]
async fn each_bad_form_is_answered_counted_and_leaves_the_connection_usable() {
    let (server, url) = start(Server::builder(), "reasons=on&max_line=128").await;
    let mut t = Text::connect(&url).await;
    let long = format!(
        "START | COMMAND=PUB | VARIABLE=x | VALUE={} | END",
        "y".repeat(500)
    );
    let cases: &[(&str, &str)] = &[
        ("no start | COMMAND=SUB | VARIABLE=x | END", "START"),
        ("START | COMMAND=SUB | VARIABLE=x", "END"),
        ("START | VARIABLE=x | END", "COMMAND"),
        ("START | COMMAND=JUMP | END", "unknown command"),
        ("START | COMMAND=SUB | END", "VARIABLE"),
        ("START | COMMAND=PUB | VARIABLE=x | END", "VALUE"),
        ("START | COMMAND=MSG | VALUE=x | END", "DEVICE"),
        ("START | COMMAND=SUB | VARIABLE | END", "NAME=VALUE"),
        ("START | COMMAND=SUB | VARIABLE=%01 | END", "control"),
        (long.as_str(), "longer than 128"),
        (
            "START | COMMAND=UNSUB | VARIABLE=never | END",
            "not subscribed",
        ),
        (
            "START | COMMAND=MSG | DEVICE=nobody | VALUE=x | END",
            "nobody",
        ),
    ];
    for (line, reason) in cases {
        let (answer, got) = t.command(line).await;
        assert_eq!(answer, "BAD", "{line}");
        let got = got.expect("reasons=on gives a REASON");
        assert!(got.contains(reason), "{line}: {got}");
    }
    // Bytes that are not UTF-8.
    t.tx.write_all(b"START | COMMAND=SUB | VARIABLE=\xff\xfe | END\n")
        .await
        .unwrap();
    assert_eq!(t.next().await.unwrap().command, "BAD");
    // Still usable: a command works, and a blank line gets no answer.
    t.send("").await;
    t.ok("START | COMMAND=PUB | VARIABLE=x | VALUE=1 | END")
        .await;
    let s = server.text_stats();
    assert_eq!(s.malformed, 4, "{s:?}");
    assert_eq!(s.unknown_command, 1);
    assert_eq!(s.missing_parameter, 3);
    assert_eq!(s.invalid_name, 1);
    assert_eq!(s.too_long, 1);
    assert_eq!(s.not_utf8, 1);
    assert_eq!(s.refused, 2);
    assert_eq!(s.bad, 13);
    assert_eq!(s.ok, 1);
    assert_eq!(s.connections, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn text_and_binary_devices_share_variables_and_messages() {
    let (server, url) = start(Server::builder(), "").await;
    let binary_url = server.urls()[0].clone();
    let (got_tx, mut got_rx) = mpsc::unbounded_channel();
    let dispatcher = Dispatcher::new().on::<Value, _, _>(move |ctx, v: Value| {
        let got = got_tx.clone();
        async move {
            let _ = got.send((ctx.sender().map(str::to_owned), v.value));
            Ok(())
        }
    });
    let bin = Client::builder(binary_url)
        .device_id("bin-1")
        .dispatcher(dispatcher)
        .types(isml_runtime::text::AnyMessage::TYPES)
        .connect()
        .await
        .unwrap();
    let mut text = Text::connect(&url).await;
    text.ok("START | COMMAND=ID | ID=text-1 | END").await;

    // A binary subscriber of isml.text.variables sees a text PUB.
    let mut sub = bin.subscribe_key::<Variables>("door").await.unwrap();
    text.ok("START | COMMAND=PUB | VARIABLE=door | VALUE=open%7Cajar | END")
        .await;
    let p = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.value.value, "open|ajar");
    assert_eq!(p.publisher, "text-1");
    assert_eq!(p.key.as_deref(), Some("door"));

    // A binary publication reaches a text subscriber.
    text.ok("START | COMMAND=SUB | VARIABLE=lamp | END").await;
    bin.publish_keyed::<Variables>("lamp", &Value { value: "on".into() })
        .await
        .unwrap();
    let push = text.next().await.unwrap();
    assert_eq!(push.command, "SUB");
    assert_eq!(push.get("VARIABLE"), Some("lamp"));
    assert_eq!(push.get("VALUE"), Some("on"));

    // MSG text -> binary: the handler sees the text device's id.
    text.ok("START | COMMAND=MSG | DEVICE=bin-1 | VALUE=hello bin | END")
        .await;
    let (from, value) = tokio::time::timeout(Duration::from_secs(10), got_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from.as_deref(), Some("text-1"));
    assert_eq!(value, "hello bin");

    // send_to binary -> text: a MSG push naming the sender.
    bin.send_to(
        "text-1",
        &Value {
            value: "hello text".into(),
        },
    )
    .await
    .unwrap();
    let push = text.next().await.unwrap();
    assert_eq!(push.command, "MSG");
    assert_eq!(push.get("DEVICE"), Some("bin-1"));
    assert_eq!(push.get("VALUE"), Some("hello text"));

    // The text device is a session like any other.
    let s = server.session_by_device("text-1").expect("registered");
    assert_eq!(s.scheme(), "text+tcp");
    bin.close("done").await;
    server.shutdown().await;
}

#[tokio::test]
async fn id_goes_through_the_authenticator_and_is_required_when_asked() {
    let b = Server::builder().authenticator(TokenAuthenticator::new(["s3cret"]));
    let (server, url) = start(b, "require_id=on&reasons=on").await;
    let mut t = Text::connect(&url).await;
    let (answer, reason) = t.command("START | COMMAND=SUB | VARIABLE=door | END").await;
    assert_eq!(answer, "BAD");
    assert!(reason.unwrap().contains("ID"));
    t.ok("START | COMMAND=HELLO! | END").await;
    let (answer, reason) = t
        .command("START | COMMAND=ID | ID=cab-1 | TOKEN=wrong | END")
        .await;
    assert_eq!(answer, "BAD");
    assert!(reason.unwrap().contains("invalid token"));
    assert!(server.session_by_device("cab-1").is_none());
    t.ok("START | COMMAND=ID | ID=cab-1 | TOKEN=s3cret | END")
        .await;
    t.ok("START | COMMAND=SUB | VARIABLE=door | END").await;
    assert_eq!(server.text_stats().not_identified, 1);
    // Close: OK, then the server ends the connection.
    t.ok("START | COMMAND=CLOSE | END").await;
    assert!(t.next().await.is_none());
    server.shutdown().await;

    // Without require_id, a device the authenticator refuses anonymously
    // is not cut off: it is asked for an ID (and a token).
    let b = Server::builder().authenticator(TokenAuthenticator::new(["s3cret"]));
    let (server, url) = start(b, "reasons=on").await;
    let mut t = Text::connect(&url).await;
    let (answer, reason) = t
        .command("START | COMMAND=PUB | VARIABLE=door | VALUE=1 | END")
        .await;
    assert_eq!(answer, "BAD");
    let reason = reason.unwrap();
    assert!(
        reason.contains("send ID first") && reason.contains("token"),
        "{reason}"
    );
    t.ok("START | COMMAND=ID | ID=cab-2 | TOKEN=s3cret | END")
        .await;
    t.ok("START | COMMAND=PUB | VARIABLE=door | VALUE=1 | END")
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn duplicate_ids_follow_the_servers_policy() {
    // ReplaceOlder (the default): the older connection gets CLOSE.
    let (server, url) = start(Server::builder(), "").await;
    let mut a = Text::connect(&url).await;
    a.ok("START | COMMAND=ID | ID=twin | END").await;
    let mut b = Text::connect(&url).await;
    b.ok("START | COMMAND=ID | ID=twin | END").await;
    assert_eq!(a.next().await.unwrap().command, "CLOSE");
    assert!(a.next().await.is_none());
    b.ok("START | COMMAND=PUB | VARIABLE=v | VALUE=1 | END")
        .await;
    server.shutdown().await;

    // RefuseNewer: the newer ID is answered BAD, the older keeps working.
    let b2 = Server::builder().duplicate_ids(DuplicateIds::RefuseNewer);
    let (server, url) = start(b2, "").await;
    let mut a = Text::connect(&url).await;
    a.ok("START | COMMAND=ID | ID=twin | END").await;
    let mut b = Text::connect(&url).await;
    let (answer, _) = b.command("START | COMMAND=ID | ID=twin | END").await;
    assert_eq!(answer, "BAD");
    a.ok("START | COMMAND=PUB | VARIABLE=v | VALUE=2 | END")
        .await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_acl_applies_to_text_devices() {
    let acl = Acl::from_toml_str(
        r#"
[[allow]]
devices = ["reader-*"]
actions = ["subscribe"]
names = ["isml.text.variables"]

[[allow]]
devices = ["writer-*"]
actions = ["publish", "subscribe"]
names = ["isml.text.variables"]
"#,
    )
    .unwrap();
    let (server, url) = start(Server::builder().acl(acl), "").await;
    let mut r = Text::connect(&url).await;
    r.ok("START | COMMAND=ID | ID=reader-1 | END").await;
    r.ok("START | COMMAND=SUB | VARIABLE=door | END").await;
    let (answer, _) = r
        .command("START | COMMAND=PUB | VARIABLE=door | VALUE=x | END")
        .await;
    assert_eq!(answer, "BAD");
    let (answer, _) = r.command("START | COMMAND=DEL | VARIABLE=door | END").await;
    assert_eq!(answer, "BAD");
    let mut w = Text::connect(&url).await;
    w.ok("START | COMMAND=ID | ID=writer-1 | END").await;
    w.ok("START | COMMAND=PUB | VARIABLE=door | VALUE=y | END")
        .await;
    let push = r.next().await.unwrap();
    assert_eq!(push.get("VALUE"), Some("y"));
    assert_eq!(server.text_stats().refused, 2);
    server.shutdown().await;
}

#[cfg(feature = "tls")]
#[tokio::test]
async fn text_over_tls_with_client_certificates() {
    use common::pki::{key, pki};
    use isml_runtime::handshake::{AuthError, Identity, auth_fn};
    use isml_runtime::transport::tls::{client_config, rustls, server_config};

    let pki = pki();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let srv = server_config(
        vec![pki.server.0.clone()],
        key(&pki.server.1),
        Some(roots.clone()),
    )
    .unwrap();
    let expected = pki.client.0.to_vec();
    // The certificate names the device, as for a binary TLS session.
    let auth = auth_fn(move |req| match req.peer_certificates {
        Some(chain) if chain.first() == Some(&expected) => Ok(Identity {
            device_id: Some("cabinet-17".into()),
            principal: None,
        }),
        _ => Err(AuthError("client certificate required".into())),
    });
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .listen("text+tls://127.0.0.1:0")
        .tls(srv)
        .authenticator(auth)
        .start()
        .await
        .unwrap();
    let addr = server.urls()[1]
        .strip_prefix("text+tls://")
        .unwrap()
        .to_owned();
    let client = client_config(
        roots,
        Some((vec![pki.client.0.clone()], key(&pki.client.1))),
    )
    .unwrap();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .unwrap();
    let (r, mut w) = tokio::io::split(tls);
    let mut lines = BufReader::new(r).lines();
    w.write_all(b"START | COMMAND=PUB | VARIABLE=door | VALUE=locked | END\n")
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, "START | COMMAND=OK | END");
    let s = server
        .session_by_device("cabinet-17")
        .expect("named by its certificate");
    assert_eq!(s.scheme(), "text+tls");
    let retained = server
        .retained_raw(
            <Variables as isml_runtime::pubsub::Channel>::ID,
            Some("door"),
        )
        .unwrap();
    assert_eq!(retained.publisher, "cabinet-17");
    server.shutdown().await;
}
