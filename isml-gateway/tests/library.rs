//! The gateway as a library, over an in-process server: the session events
//! reach the WebSocket's subscribers and the metrics through the hooks, a
//! publication made over HTTP is read back, and `router()` mounts in an
//! application of one's own.

use std::time::{Duration, Instant};

use isml_gateway::{Gateway, SessionEvents};
use isml_runtime::Server;
use isml_runtime::client::Client;
use serde_json::{Value, json};

const SCHEMA: &str = "package demo;
/// A reading.
message Reading [id = 1] { volts: f32 = 1; label: optional<string> = 2 [max_len = 8]; }
channel readings: Reading = 1 [retain];";

async fn eventually<T, F: std::future::Future<Output = Option<T>>>(mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_over_a_server_of_ones_own() {
    let schema = isml_schema::load_str("demo.isml", SCHEMA).unwrap();
    let schema: &'static isml_schema::Schema = Box::leak(Box::new(schema));
    let events = SessionEvents::new();
    let mut rx = events.subscribe();
    let (opened, closed) = (events.clone(), events.clone());
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .channel_info(isml_runtime::pubsub::ChannelInfo {
            id: 1,
            name: "demo.readings".into(),
            type_id: 1,
            fingerprint: schema.fingerprint(isml_schema::ir::TypeId(0)),
            retain: true,
            keyed: false,
        })
        .on_open(move |s| opened.opened(s))
        .on_close(move |s, r| closed.closed(s, r))
        .start()
        .await
        .unwrap();
    let gateway = Gateway::builder(server.clone(), schema)
        .events(events)
        .body_limit(1024)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    assert!(gateway.url().starts_with("http://127.0.0.1:"));
    let base = gateway.url().to_owned();
    let http = reqwest::Client::new();

    let device = Client::builder(&server.urls()[0])
        .device_id("probe-1")
        .connect()
        .await
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.event, e.device_id.as_str()), ("connected", "probe-1"));
    let v: Value = eventually(|| {
        let (http, url) = (http.clone(), format!("{base}/api/sessions"));
        async move {
            let v: Value = http.get(url).send().await.ok()?.json().await.ok()?;
            (v["sessions"].as_array()?.len() == 1).then_some(v)
        }
    })
    .await;
    assert_eq!(v["sessions"][0]["device_id"], "probe-1");

    // Publish and read back, through the schema's JSON mapping.
    let r = http
        .post(format!("{base}/api/channels/readings"))
        .body(r#"{"volts": 229.5, "label": "L1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = http
        .get(format!("{base}/api/channels/demo.readings/retained"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["values"][0]["value"],
        json!({ "volts": 229.5, "label": "L1" })
    );
    // The field's max_len is checked; the body limit is the builder's.
    let r = http
        .post(format!("{base}/api/channels/readings"))
        .body(r#"{"volts": 1, "label": "far too long"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .post(format!("{base}/api/channels/readings"))
        .body(vec![b' '; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // An unknown path is a JSON 404.
    let r = http
        .get(format!("{base}/api/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");

    device.close("bye").await;
    let e = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((e.event, e.device_id.as_str()), ("disconnected", "probe-1"));
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("isml_sessions_closed_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("isml_gateway_publications_total 1"),
        "{metrics}"
    );
    // A server alone: its cluster mode is `single`.
    assert!(
        metrics.contains("isml_cluster_mode{node=\"\",mode=\"single\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("isml_cluster_mode{node=\"\",mode=\"degraded\"} 0"),
        "{metrics}"
    );
    let v: Value = http
        .get(format!("{base}/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["sessions"], 0);
    assert_eq!(v["channels"], 1);
    assert_eq!(v["cluster"]["mode"], "single");
    assert_eq!(v["cluster"]["publications_out"], 0);

    // The routes mount in an application of one's own.
    let app = axum::Router::new().nest("/isml", gateway_router(&server, schema));
    drop(app);
    gateway.shutdown().await;
    server.shutdown().await;
}

fn gateway_router(server: &Server, schema: &'static isml_schema::Schema) -> axum::Router {
    Gateway::builder(server.clone(), schema).build().router()
}

/// With one place, a second connection is served only once the first
/// closes: idle connections cannot pile up without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_for_a_place() {
    let schema = isml_schema::load_str("demo.isml", SCHEMA).unwrap();
    let schema: &'static isml_schema::Schema = Box::leak(Box::new(schema));
    let server = Server::builder()
        .listen("tcp://127.0.0.1:0")
        .start()
        .await
        .unwrap();
    let gateway = Gateway::builder(server.clone(), schema)
        .max_connections(1)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let hog = tokio::net::TcpStream::connect(gateway.local_addr())
        .await
        .unwrap();
    // The kernel hands connections to accept() in the order they were
    // made: the hog's comes first and takes the place.
    let url = format!("{}/api/sessions", gateway.url());
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .get(url)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "served while the only place was taken"
    );
    drop(hog);
    let status = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("served once the place is free")
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    gateway.shutdown().await;
    server.shutdown().await;
}
