//! The HTTP/WebSocket gateway of `isml serve --http`, driven over real
//! sockets with the charging example's cabinets connected: sessions, RPC
//! round trips and streams, publications and retained values, the
//! WebSocket, errors (400 naming the field, 413), authentication and ACL
//! refusals, HTTPS, metrics, and the OpenAPI document checked by a
//! validator.

mod common;
mod fleet;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use fleet::{PATIENCE, cabinet, cabinets, eventually};

const CHARGER: &str = "charging.v1.Charger";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("an HTTP client")
}

async fn get(c: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let r = c.get(url).send().await.expect("GET");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post(
    c: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let r = c
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn rpc(base: &str, device: &str, method: &str) -> String {
    format!("{base}/api/devices/{device}/rpc/{CHARGER}/{method}")
}

/// Waits until `GET /api/sessions` lists `n` sessions.
async fn sessions(c: &reqwest::Client, base: &str, n: usize) -> Vec<Value> {
    let url = format!("{base}/api/sessions");
    eventually(&format!("{n} sessions"), || async {
        let (_, v) = get(c, &url).await;
        let list = v["sessions"].as_array()?.clone();
        (list.len() == n).then_some(list)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_with_cabinets() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path(), &["--http", "127.0.0.1:0"]);
    let base = server.http.clone().expect("the gateway's URL");
    let cabs = cabinets(&server.url, 3, None, Duration::from_millis(200)).await;
    let c = http();

    // Sessions, with what the issue lists. A session is listed as soon as
    // its welcome is queued, before its task writes it: wait for the
    // counters to show the first frames.
    sessions(&c, &base, 3).await;
    let url = format!("{base}/api/sessions");
    let list = eventually("the sessions' first frames counted", || async {
        let (_, v) = get(&c, &url).await;
        let list = v["sessions"].as_array()?.clone();
        list.iter()
            .all(|s| s["bytes_in"].as_u64() > Some(0) && s["frames_out"].as_u64() > Some(0))
            .then_some(list)
    })
    .await;
    let devices: Vec<&str> = list
        .iter()
        .map(|s| s["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["cab-001", "cab-002", "cab-003"]);
    for s in &list {
        assert_eq!(s["transport"], "tcp");
        assert!(s["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        assert!(s["connected_since"].as_str().unwrap().ends_with('Z'));
        assert!(
            s["last_activity_ms"].as_u64().unwrap() >= s["connected_since_ms"].as_u64().unwrap()
        );
        assert!(s["bytes_in"].as_u64().unwrap() > 0 && s["frames_out"].as_u64().unwrap() > 0);
        assert_eq!(s["refused_types"], json!([]));
        assert!(s["properties"].is_object());
    }
    let (status, one) = get(&c, &format!("{base}/api/sessions/cab-002")).await;
    assert_eq!(status, StatusCode::OK);
    let charger = one["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == CHARGER)
        .expect("cab-002 serves the Charger service");
    let methods: Vec<&str> = charger["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["compatible"], true, "{m}");
            m["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        methods,
        [
            "start_charging",
            "stop_charging",
            "watch_slot",
            "reboot",
            "execute",
            "firmware"
        ]
    );
    let (status, e) = get(&c, &format!("{base}/api/sessions/cab-404")).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // A round trip to a device and back, and its refusal the second time.
    let start = rpc(&base, "cab-002", "start_charging");
    let (status, reply) = post(&c, &start, r#"{"slot": 5, "target_soc_percent": 80}"#).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, json!({ "slot": 5, "eta_s": 720 }));
    let (_, reply) = post(&c, &start, r#"{"slot": 5, "target_soc_percent": 80}"#).await;
    assert_eq!(reply["refused"], "busy");
    // The device's status code becomes the HTTP status.
    let (status, e) = post(&c, &start, r#"{"slot": 99, "target_soc_percent": 80}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(e["error"]["code"], "not_found");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no slot 99"),
        "{e}"
    );
    // A union request, a unary answer with nested messages.
    let (status, report) = post(
        &c,
        &rpc(&base, "cab-001", "execute"),
        r#"{"start": {"slot": 1, "target_soc_percent": 50}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["slots"][1]["state"], "charging");
    // One-way: 202.
    let (status, a) = post(&c, &rpc(&base, "cab-001", "reboot"), r#"{"delay_s": 0}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{a}");
    // The method by its id; an unknown device, service or method.
    let (status, _) = post(&c, &rpc(&base, "cab-003", "6"), "{}").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(&c, &rpc(&base, "cab-404", "firmware"), "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, e) = post(&c, &rpc(&base, "cab-001", "explode"), "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("start_charging"),
        "{e}"
    );
    let (status, _) = post(&c, &format!("{base}/api/devices/cab-001/rpc/Nope/x"), "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Client streaming is not served over HTTP (the Fleet service is the server's).
    let (status, _) = post(
        &c,
        &format!("{base}/api/devices/cab-001/rpc/charging.v1.Fleet/upload_readings"),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_IMPLEMENTED);

    // Malformed JSON: 400 naming the field, or the line and column.
    let (status, e) = post(&c, &start, r#"{"slot": "three", "target_soc_percent": 80}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"]["field"], "charging.v1.StartCharging.slot", "{e}");
    assert_eq!(e["error"]["code"], "invalid_argument");
    let (status, e) = post(&c, &start, r#"{"slot": 1, "target_soc_percent": 300}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        e["error"]["field"], "charging.v1.StartCharging.target_soc_percent",
        "{e}"
    );
    let (status, e) = post(&c, &start, "{\n  \"slot\": ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (e["error"]["line"].as_u64(), e["error"]["column"].as_u64()),
        (Some(2), Some(10)),
        "{e}"
    );
    // The deadline header, malformed.
    let r = c
        .post(&start)
        .header("x-isml-deadline-ms", "soon")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "X-Isml-Deadline-Ms");
    // An oversized body: 413, as JSON.
    let big = format!("{{\"slot\": 1, \"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, e) = post(&c, &start, big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e["error"]["status"], 413);
    let (status, _) = post(
        &c,
        &format!("{base}/api/channels/charging.v1.telemetry"),
        big,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // A server stream as NDJSON, ended by its deadline with a 504 line.
    let watch = rpc(&base, "cab-002", "watch_slot");
    let r = c
        .post(&watch)
        .header("x-isml-deadline-ms", "1500")
        .body(r#"{"slot": 5, "interval_ms": 100}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let text = r.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, items) = lines.split_last().unwrap();
    assert!(items.len() >= 3, "{text}");
    for item in items {
        assert_eq!(item["slot"]["index"], 5);
        assert_eq!(item["slot"]["state"], "charging");
        assert_eq!(item["power_w"], 3680.0);
    }
    assert_eq!(last["error"]["code"], "deadline_exceeded", "{text}");
    assert_eq!(last["error"]["status"], 504);
    // The same stream as Server-Sent Events, read for three items and dropped.
    let r = c
        .post(&watch)
        .header("accept", "text/event-stream")
        .body(r#"{"slot": 2, "interval_ms": 100}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while seen.matches("event: item").count() < 3 {
        let chunk = tokio::time::timeout(PATIENCE, body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(seen.contains("\"index\":2"), "{seen}");
    drop(body);
    // A stream the device refuses: the status as the one NDJSON line.
    let (status, e) = {
        let r = c
            .post(&watch)
            .body(r#"{"slot": 42, "interval_ms": 100}"#)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK);
    assert!(e.contains("\"code\":\"not_found\""), "{e}");

    // Retained values: each cabinet's key, then a change made by a call.
    let vars = format!("{base}/api/channels/charging.v1.variables/retained");
    let (status, v) = get(&c, &format!("{vars}?key=cab-002/charging")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["values"][0]["publisher"], "cab-002");
    let (status, _) = post(
        &c,
        &rpc(&base, "cab-003", "start_charging"),
        r#"{"slot": 7, "target_soc_percent": 90}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    eventually("cab-003's charging slots after start_charging", || {
        let (c, vars) = (c.clone(), vars.clone());
        async move {
            let (_, v) = get(&c, &format!("{vars}?key=cab-003/charging")).await;
            (v["values"][0]["value"]["value"]["text"] == "7").then_some(())
        }
    })
    .await;
    let (_, all) = get(&c, &vars).await;
    let keys: Vec<&str> = all["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["cab-001/charging", "cab-002/charging", "cab-003/charging"]
    );
    let (_, t) = get(&c, &format!("{base}/api/channels/telemetry/retained")).await;
    assert_eq!(t["values"].as_array().unwrap().len(), 1);
    assert!(
        t["values"][0]["value"]["station_id"]
            .as_str()
            .unwrap()
            .starts_with("CAB-00")
    );

    // Publish, read back, delete.
    let note = format!("{base}/api/channels/charging.v1.variables?key=ops/note");
    let (status, ack) = post(&c, &note, r#"{"value": {"text": "hello"}, "unit": "msg"}"#).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert_eq!(ack["ack"], "persisted");
    let (status, v) = get(&c, &format!("{vars}?key=ops/note")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        v["values"][0]["value"],
        json!({ "value": { "text": "hello" }, "unit": "msg" })
    );
    assert_eq!(v["values"][0]["publisher"], "");
    let (status, e) = post(
        &c,
        &format!("{base}/api/channels/charging.v1.variables"),
        r#"{"value": {"int": 1}}"#,
    )
    .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("key"))
    );
    let (status, e) = post(
        &c,
        &format!("{base}/api/channels/charging.v1.variables?key=k"),
        r#"{"value": {"float": 1}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    let r = c
        .delete(format!("{vars}?key=ops/note"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, _) = get(&c, &format!("{vars}?key=ops/note")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&c, &format!("{base}/api/channels/nope/retained")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Channels: rates once the sampler has seen the cabinets publish.
    let channels = eventually("a telemetry rate above 0", || {
        let c = c.clone();
        let url = format!("{base}/api/channels");
        async move {
            let (_, v) = get(&c, &url).await;
            let list = v["channels"].as_array()?.clone();
            let t = list.iter().find(|x| x["name"] == "charging.v1.telemetry")?;
            (t["rate_per_s"].as_f64()? > 0.0).then_some(list)
        }
    })
    .await;
    let names: Vec<&str> = channels
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "charging.v1.faults",
            "charging.v1.telemetry",
            "charging.v1.variables"
        ]
    );
    let t = channels
        .iter()
        .find(|x| x["name"] == "charging.v1.telemetry")
        .unwrap();
    assert!(t["published"].as_u64().unwrap() >= 3);
    assert!(!t["history"].as_array().unwrap().is_empty());

    // Prometheus metrics.
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "isml_sessions{transport=\"tcp\"} 3",
        "isml_gateway_calls_total{method=\"charging.v1.Charger/start_charging\",code=\"ok\"}",
        "isml_gateway_calls_total{method=\"charging.v1.Charger/start_charging\",code=\"not_found\"} 1",
        "isml_gateway_calls_total{method=\"charging.v1.Charger/watch_slot\",code=\"deadline_exceeded\"} 1",
        "isml_publications_total{channel=\"charging.v1.telemetry\"}",
        "isml_frames_total{direction=\"in\"}",
        "isml_bytes_total{direction=\"out\"}",
        "isml_filtered_messages_total 0",
        "# TYPE isml_gateway_calls_total counter",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }

    // A call to a device that left: 404 (no session), and the metrics keep
    // its traffic.
    for cab in cabs {
        cab.close().await;
    }
    sessions(&c, &base, 0).await;
    let (status, _) = post(&c, &rpc(&base, "cab-001", "firmware"), "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let text = c
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("isml_sessions_closed_total 3"), "{text}");
    let frames: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("isml_frames_total{direction=\"in\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(frames > 10, "{text}");
}

async fn ws_next(
    ws: &mut (
             impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
) -> Value {
    loop {
        let m = tokio::time::timeout(PATIENCE, ws.next())
            .await
            .expect("a WebSocket message in time")
            .expect("the socket is open")
            .expect("a message");
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

/// Reads messages until one satisfies `want`.
async fn ws_until(
    ws: &mut (
             impl futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
    want: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let v = ws_next(ws).await;
        if want(&v) {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_publications_and_session_events() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path(), &["--http", "127.0.0.1:0"]);
    let base = server.http.clone().unwrap();
    let cabs = cabinets(&server.url, 2, None, Duration::from_millis(200)).await;
    sessions(&http(), &base, 2).await;

    let ws_url = format!("{}/api/ws?events=sessions", base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .expect("WebSocket");
    let v = ws_next(&mut ws).await;
    assert_eq!(v, json!({ "type": "subscribed", "events": "sessions" }));
    ws.send(Message::text(
        r#"{"op":"subscribe","channel":"variables","key":"cab-001/charging"}"#,
    ))
    .await
    .unwrap();
    let v = ws_until(&mut ws, |v| v["type"] == "subscribed").await;
    assert_eq!(v["channel"], "charging.v1.variables");
    // The retained value first, then live ones.
    let p = ws_until(&mut ws, |v| v["type"] == "publication").await;
    assert_eq!(p["key"], "cab-001/charging");
    assert_eq!(p["publisher"], "cab-001");
    assert_eq!(p["value"]["value"]["text"], "none");
    // A call changes it; the socket sees the change.
    let (status, _) = post(
        &http(),
        &rpc(&base, "cab-001", "start_charging"),
        r#"{"slot": 4, "target_soc_percent": 60}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let p = ws_until(&mut ws, |v| {
        v["type"] == "publication" && v["value"]["value"]["text"] == "4"
    })
    .await;
    assert_eq!(p["retained"], false);
    // A publication through the REST API reaches subscribers of the key only.
    ws.send(Message::text(
        r#"{"op":"subscribe","channel":"charging.v1.telemetry"}"#,
    ))
    .await
    .unwrap();
    let p = ws_until(&mut ws, |v| {
        v["type"] == "publication" && v["channel"] == "charging.v1.telemetry"
    })
    .await;
    assert!(p["value"]["slots"].is_array());

    // Session events: a cabinet connects and leaves.
    let late = cabinet(&server.url, "cab-009", None, Duration::from_millis(200)).await;
    let e = ws_until(&mut ws, |v| {
        v["type"] == "session" && v["device_id"] == "cab-009"
    })
    .await;
    assert_eq!(e["event"], "connected");
    assert_eq!(e["transport"], "tcp");
    late.close().await;
    let e = ws_until(&mut ws, |v| {
        v["type"] == "session" && v["device_id"] == "cab-009" && v["event"] == "disconnected"
    })
    .await;
    assert!(e["reason"].is_string());

    // Bad commands are answered, not fatal.
    ws.send(Message::text("{\"op\":\"fly\"}")).await.unwrap();
    let e = ws_until(&mut ws, |v| v["type"] == "error").await;
    assert_eq!(e["error"]["code"], "invalid_argument");
    ws.send(Message::text(r#"{"op":"subscribe","channel":"nope"}"#))
        .await
        .unwrap();
    let e = ws_until(&mut ws, |v| v["type"] == "error").await;
    assert_eq!(e["error"]["code"], "not_found");
    ws.send(Message::text(
        r#"{"op":"unsubscribe","channel":"charging.v1.telemetry"}"#,
    ))
    .await
    .unwrap();
    ws_until(&mut ws, |v| v["type"] == "unsubscribed").await;
    ws.send(Message::text(r#"{"op":"ping"}"#)).await.unwrap();
    ws_until(&mut ws, |v| v["type"] == "pong").await;
    // A message above the limit closes the socket instead of being buffered.
    let _ = ws.send(Message::text("x".repeat(64 * 1024))).await;
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the oversized message closes the socket");
    for cab in cabs {
        cab.close().await;
    }
}

const AUTH: &str = r#"
[[token]]
token = "demo-token"
principal = "devices"

[[token]]
token = "ops-token"
principal = "ops:alice"

[[token]]
token = "viewer-token"
principal = "viewer:bob"

[[token]]
token = "guest-token"
principal = "guest"

[[user]]
username = "admin"
password = "s3cret"
principal = "ops:admin"
"#;

const ACL: &str = r#"
[[allow]]
identities = ["ops:*"]
actions = ["*"]
names = ["*"]

[[allow]]
identities = ["viewer:*"]
actions = ["subscribe"]
names = ["*"]

[[allow]]
identities = ["devices"]
actions = ["publish", "subscribe"]
names = ["charging.v1.*"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_acl() {
    let data = tempfile::tempdir().unwrap();
    let (auth, acl) = (data.path().join("auth.toml"), data.path().join("acl.toml"));
    std::fs::write(&auth, AUTH).unwrap();
    std::fs::write(&acl, ACL).unwrap();
    let server = common::serve(
        &data.path().join("data"),
        &[
            "--http",
            "127.0.0.1:0",
            "--auth",
            auth.to_str().unwrap(),
            "--acl",
            acl.to_str().unwrap(),
        ],
    );
    let base = server.http.clone().unwrap();
    let cabs = cabinets(
        &server.url,
        1,
        Some("demo-token"),
        Duration::from_millis(200),
    )
    .await;
    let c = http();
    let sessions_url = format!("{base}/api/sessions");

    // No credentials, a wrong token, a malformed header: 401 with a challenge.
    for req in [
        c.get(&sessions_url),
        c.get(&sessions_url).bearer_auth("wrong"),
        c.get(&sessions_url).header("authorization", "Digest x"),
        c.get(&sessions_url).basic_auth("admin", Some("wrong")),
    ] {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("Bearer")
        );
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "unauthenticated");
    }
    // A token and HTTP Basic, checked by the same authenticator as devices.
    let v: Value = eventually("the cabinet's session", || {
        let (c, url) = (c.clone(), sessions_url.clone());
        async move {
            let v: Value = c
                .get(&url)
                .bearer_auth("ops-token")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["sessions"].as_array()?.len() == 1).then_some(v)
        }
    })
    .await;
    assert_eq!(v["sessions"][0]["properties"]["principal"], "devices");
    let r = c
        .get(&sessions_url)
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // `?access_token=` works too (browsers' WebSockets cannot set headers).
    let r = c
        .get(format!("{sessions_url}?access_token=viewer-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The ACL: the viewer reads, and may not call, publish or delete.
    let start = rpc(&base, "cab-001", "start_charging");
    let body = r#"{"slot": 1, "target_soc_percent": 50}"#;
    let r = c
        .post(&start)
        .bearer_auth("viewer-token")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "permission_denied");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("viewer:bob"),
        "{e}"
    );
    let publish = format!("{base}/api/channels/charging.v1.variables?key=x");
    let r = c
        .post(&publish)
        .bearer_auth("viewer-token")
        .body(r#"{"value":{"int":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .delete(format!(
            "{base}/api/channels/charging.v1.variables/retained?key=cab-001/charging"
        ))
        .bearer_auth("viewer-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .get(format!(
            "{base}/api/channels/charging.v1.variables/retained"
        ))
        .bearer_auth("viewer-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The devices' token may publish but not call.
    let r = c
        .post(&start)
        .bearer_auth("demo-token")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(&publish)
        .bearer_auth("demo-token")
        .body(r#"{"value":{"int":1}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Operators may do everything.
    let r = c
        .post(&start)
        .bearer_auth("ops-token")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .post(&start)
        .basic_auth("admin", Some("s3cret"))
        .body(r#"{"slot": 2, "target_soc_percent": 50}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The WebSocket: refused without credentials; the viewer subscribes.
    let ws_base = base.replacen("http", "ws", 1);
    let refused = tokio_tungstenite::connect_async(format!("{ws_base}/api/ws")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "{ws_base}/api/ws?access_token=viewer-token&channels=charging.v1.variables"
    ))
    .await
    .unwrap();
    let p = ws_until(&mut ws, |v| v["type"] == "publication").await;
    assert_eq!(p["channel"], "charging.v1.variables");
    // A principal no rule names is refused per channel.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{ws_base}/api/ws?access_token=guest-token"))
            .await
            .unwrap();
    ws.send(Message::text(
        r#"{"op":"subscribe","channel":"charging.v1.telemetry"}"#,
    ))
    .await
    .unwrap();
    let v = ws_next(&mut ws).await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["code"], "permission_denied");

    // Refusals are counted.
    let text = c
        .get(format!("{base}/metrics"))
        .bearer_auth("ops-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("isml_gateway_refused_total{reason=\"unauthenticated\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("isml_gateway_refused_total{reason=\"permission_denied\"} 5"),
        "{text}"
    );
    for cab in cabs {
        cab.close().await;
    }
}

/// The OpenAPI document passes `openapi-spec-validator` (the reference
/// validator of OpenAPI 3.1, from PyPI; `.ci/run` installs it), every
/// `$ref` resolves, and there is a path per method and per channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_validates() {
    let data = tempfile::tempdir().unwrap();
    let server = common::serve(data.path(), &["--http", "127.0.0.1:0"]);
    let base = server.http.clone().unwrap();
    let (status, doc) = get(&http(), &format!("{base}/api/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");

    let paths = doc["paths"].as_object().unwrap();
    for m in [
        "start_charging",
        "stop_charging",
        "watch_slot",
        "reboot",
        "execute",
        "firmware",
    ] {
        let p = format!("/api/devices/{{device}}/rpc/charging.v1.Charger/{m}");
        assert!(paths.contains_key(&p), "no path {p}");
    }
    for m in ["report_fault", "upload_readings"] {
        assert!(paths.contains_key(&format!(
            "/api/devices/{{device}}/rpc/charging.v1.Fleet/{m}"
        )));
    }
    for ch in ["telemetry", "faults", "variables"] {
        assert!(paths.contains_key(&format!("/api/channels/charging.v1.{ch}")));
    }
    assert!(paths.contains_key("/api/channels/charging.v1.telemetry/retained"));
    assert!(paths.contains_key("/api/status"));
    assert!(
        !paths.contains_key("/api/channels/charging.v1.faults/retained"),
        "faults retains nothing"
    );
    let start = &paths["/api/devices/{device}/rpc/charging.v1.Charger/start_charging"]["post"];
    assert_eq!(
        start["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/charging.v1.StartCharging"
    );
    assert_eq!(
        start["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/charging.v1.ChargeStarted"
    );
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let sc = &schemas["charging.v1.StartCharging"];
    assert_eq!(sc["properties"]["target_soc_percent"]["minimum"], 1);
    assert_eq!(sc["properties"]["target_soc_percent"]["maximum"], 100);
    assert!(schemas["charging.v1.Command"]["oneOf"].is_array());
    assert!(
        schemas["charging.v1.SlotState"]["oneOf"][0]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("charging"))
    );

    // Every reference resolves.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if k == "$ref" {
                        out.push(x.as_str().unwrap().to_owned());
                    }
                    refs(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50);
    for r in &all {
        let pointer = r.strip_prefix('#').expect("local references only");
        let pointer = pointer.replace("~1", "/");
        assert!(doc.pointer(&pointer).is_some(), "{r} does not resolve");
    }

    // The example requests are valid requests.
    let ex = &start["requestBody"]["content"]["application/json"]["example"];
    assert_eq!(ex, &json!({ "slot": 0, "target_soc_percent": 1 }));

    let file = data.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator import validate\n\
             from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator\n\
             validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
             print('valid')",
        ])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "openapi-spec-validator (pip install openapi-spec-validator) refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--http-tls`: the gateway over HTTPS, with the server's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_gateway() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls;

    let data = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (data.path().join("cert.pem"), data.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let server = common::serve(
        &data.path().join("data"),
        &[
            "--http",
            "127.0.0.1:0",
            "--http-tls",
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );
    let base = server.http.clone().unwrap();
    let addr = base.strip_prefix("https://").expect("an https:// URL");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(b"GET /api/sessions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("{\"sessions\":[]}"), "{answer}");

    // Plain HTTP on the HTTPS port gets no answer.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /api/sessions HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("sessions"));
}
