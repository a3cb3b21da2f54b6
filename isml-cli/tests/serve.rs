//! `isml serve`, `isml pub` and `isml sub` as real processes: a child
//! `isml serve` on a free loopback port (`:0`, the port read from its
//! `listening on` line), killed by a guard whatever happens to the test.

use std::io::Write as _;
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Guard, bin, schema_args, serve};

/// Runs `isml pub` against `url` on `channel` with more arguments and stdin.
fn publish(url: &str, channel: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = bin()
        .arg("pub")
        .args(["--url", url, "--channel", channel])
        .args(schema_args())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("isml pub runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// Starts `isml sub` against `url` on `channel`.
fn subscribe(url: &str, channel: &str, args: &[&str]) -> Guard {
    Guard(
        bin()
            .arg("sub")
            .args(["--url", url, "--channel", channel])
            .args(schema_args())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("isml sub runs"),
    )
}

/// Waits (at most 20 s) for a `sub --count N` to exit 0, and parses its lines.
fn lines_of(mut sub: Guard) -> Vec<serde_json::Value> {
    let status = sub
        .wait_timeout(Duration::from_secs(20))
        .expect("isml sub exits after --count publications");
    let mut out = String::new();
    let mut err = String::new();
    std::io::Read::read_to_string(sub.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    std::io::Read::read_to_string(sub.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "isml sub failed: {status}: {err}");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn pub_and_sub_through_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), &[]);

    // A retained value, published before anyone subscribes, arrives first
    // and marked retained, with the publisher's device id.
    let o = publish(
        &server.url,
        "telemetry",
        &[
            "--device-id",
            "cab-17",
            "--json",
            r#"{"station_id": "cab-17", "uptime_s": 42}"#,
        ],
        "",
    );
    ok(&o);
    let got = lines_of(subscribe(
        &server.url,
        "charging.v1.telemetry",
        &["--count", "1"],
    ));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["value"]["station_id"], "cab-17");
    assert_eq!(got[0]["value"]["uptime_s"], 42);
    assert_eq!(got[0]["retained"], true);
    assert_eq!(got[0]["publisher"], "cab-17");
    assert_eq!(got[0]["key"], serde_json::Value::Null);
    assert!(got[0]["timestamp_ms"].as_u64().unwrap() > 1_600_000_000_000);

    // Keyed: JSON lines on stdin, the last value per key is the retained one.
    let o = publish(
        &server.url,
        "variables",
        &["--key", "door"],
        "{\"value\": {\"text\": \"open\"}}\n\n{\"value\": {\"text\": \"closed\"}}\n",
    );
    ok(&o);
    let got = lines_of(subscribe(
        &server.url,
        "variables",
        &["--key", "door", "--count", "1"],
    ));
    assert_eq!(got[0]["key"], "door");
    assert_eq!(got[0]["value"]["value"]["text"], "closed");
    assert_eq!(got[0]["retained"], true);

    // A live publication on an unretained channel reaches a subscriber that
    // is already there, not marked retained. The subscriber may not be
    // registered yet when the first publication goes out: publish until it
    // has one.
    let mut sub = subscribe(&server.url, "faults", &["--count", "1"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sub.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "isml sub never saw a fault");
        let o = publish(
            &server.url,
            "faults",
            &[
                "--device-id",
                "cab-3",
                "--json",
                r#"{"code": "door_stuck", "message": "door"}"#,
            ],
            "",
        );
        ok(&o);
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = lines_of(sub);
    assert_eq!(got[0]["value"]["code"], "door_stuck");
    assert_eq!(got[0]["retained"], false);
    assert_eq!(got[0]["publisher"], "cab-3");

    // --retain-delete removes the retained value: a new subscriber gets
    // nothing until the next publication.
    ok(&publish(
        &server.url,
        "variables",
        &["--key", "door", "--retain-delete"],
        "",
    ));
    ok(&publish(
        &server.url,
        "variables",
        &[
            "--key",
            "window",
            "--json",
            r#"{"value": {"text": "ajar"}}"#,
        ],
        "",
    ));
    let got = lines_of(subscribe(&server.url, "variables", &["--count", "1"]));
    assert_eq!(got[0]["key"], "window", "the deleted `door` is not sent");
}

#[test]
fn pub_and_sub_report_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("data"), &[]);
    let cases: [(&str, &[&str], &str); 5] = [
        ("variables", &["--json", "{}"], "is keyed: give --key"),
        ("telemetry", &["--key", "k", "--json", "{}"], "is not keyed"),
        ("nope", &["--json", "{}"], "no channel `nope`"),
        (
            "telemetry",
            &["--json", r#"{"bogus": 1}"#],
            "unknown field `bogus`",
        ),
        ("faults", &["--retain-delete"], "keeps no retained value"),
    ];
    for (channel, args, message) in cases {
        let o = publish(&server.url, channel, args, "");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{channel} {args:?}");
        assert!(err.contains(message), "{channel} {args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    // A bad line among JSON lines publishes nothing at all.
    let o = publish(
        &server.url,
        "variables",
        &["--key", "a"],
        "{\"value\": {\"int\": 1}}\n{oops\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2"));
    let o = publish(
        &server.url,
        "variables",
        &["--key", "b", "--json", r#"{"value": {"int": 2}}"#],
        "",
    );
    ok(&o);
    let got = lines_of(subscribe(&server.url, "variables", &["--count", "1"]));
    assert_eq!(got[0]["key"], "b", "nothing of key `a` was published");

    // No server there.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("tcp://{}", free.local_addr().unwrap());
    drop(free);
    let o = publish(&url, "telemetry", &["--json", "{}"], "");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: cannot connect"));
}

#[test]
fn retained_values_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = serve(&data, &[]);
    // Each `isml pub` exits 0 only once the broker acknowledged the
    // publication, which on a retained channel of a server with a data
    // directory means it was committed to the store.
    ok(&publish(
        &server.url,
        "telemetry",
        &[
            "--device-id",
            "cab-9",
            "--json",
            r#"{"station_id": "cab-9"}"#,
        ],
        "",
    ));
    for key in ["a", "b", "c"] {
        let json = format!(r#"{{"value": {{"text": "v-{key}"}}}}"#);
        ok(&publish(
            &server.url,
            "variables",
            &["--key", key, "--json", &json],
            "",
        ));
    }
    // SIGKILL: no chance to flush or close anything.
    server.child.0.kill().unwrap();
    let status = server.child.0.wait().unwrap();
    assert!(!status.success());

    let server = serve(&data, &[]);
    let got = lines_of(subscribe(&server.url, "telemetry", &["--count", "1"]));
    assert_eq!(got[0]["value"]["station_id"], "cab-9");
    assert_eq!(got[0]["publisher"], "cab-9");
    assert_eq!(got[0]["retained"], true);
    let got = lines_of(subscribe(&server.url, "variables", &["--count", "3"]));
    let mut keys: Vec<(String, String)> = got
        .iter()
        .map(|l| {
            assert_eq!(l["retained"], true);
            (
                l["key"].as_str().unwrap().to_owned(),
                l["value"]["value"]["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [("a", "v-a"), ("b", "v-b"), ("c", "v-c")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[test]
fn sigterm_and_sigint_stop_serve_gracefully() {
    for signal in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut server = serve(&dir.path().join("data"), &[]);
        // With a session open.
        let sub = subscribe(&server.url, "telemetry", &[]);
        std::thread::sleep(Duration::from_millis(300));
        if signal == "-TERM" {
            sigterm(&server.child.0);
        } else {
            let status = Command::new("kill")
                .args([signal, &server.child.0.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
        }
        let status = server
            .child
            .wait_timeout(Duration::from_secs(20))
            .expect("isml serve stops");
        assert_eq!(status.code(), Some(0), "{signal}");
        drop(sub);
    }
}

#[test]
fn serve_errors_are_one_line_and_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        bin()
            .arg("serve")
            .args(schema_args())
            .args(["--data-dir", &dir.path().join("data").display().to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = format!("tcp://{}", taken.local_addr().unwrap());
    let bad_acl = dir.path().join("acl.toml");
    std::fs::write(&bad_acl, "bogus = [\n").unwrap();
    let bad_acl = bad_acl.display().to_string();
    let cases: [(&[&str], &str); 4] = [
        (&["--listen", &busy], "cannot listen on"),
        (
            &[
                "--listen",
                "tcp://127.0.0.1:0",
                "--acl",
                "/nonexistent/acl.toml",
            ],
            "cannot read ACL file",
        ),
        (
            &["--listen", "tcp://127.0.0.1:0", "--acl", &bad_acl],
            "acl.toml:1:",
        ),
        (
            &["--listen", "tls://127.0.0.1:0"],
            "needs --tls-cert and --tls-key",
        ),
    ];
    for (args, message) in cases {
        let o = run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
        assert!(o.status.code().is_some(), "{args:?}: not a signal");
        assert!(err.contains(message), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // A schema error is reported like `isml check` does, with exit code 1.
    let bad = dir.path().join("bad.isml");
    std::fs::write(&bad, "package x; channel c: Nope = 1;\n").unwrap();
    let o = bin()
        .args([
            "serve",
            &bad.display().to_string(),
            "--listen",
            "tcp://127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown type `Nope`"));
}

#[test]
fn pub_and_sub_over_tls() {
    use rcgen::{CertificateParams, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_pem = dir.path().join("cert.pem");
    let key_pem = dir.path().join("key.pem");
    std::fs::write(&cert_pem, cert.pem()).unwrap();
    std::fs::write(&key_pem, key.serialize_pem()).unwrap();
    let (cert_pem, key_pem) = (
        cert_pem.display().to_string(),
        key_pem.display().to_string(),
    );
    let server = serve(
        &dir.path().join("data"),
        &[
            "--listen",
            "tls://127.0.0.1:0",
            "--tls-cert",
            &cert_pem,
            "--tls-key",
            &key_pem,
        ],
    );
    let url = server.url.replace("127.0.0.1", "localhost");
    ok(&publish(
        &url,
        "telemetry",
        &["--ca", &cert_pem, "--json", r#"{"station_id": "tls-1"}"#],
        "",
    ));
    let got = lines_of(subscribe(
        &url,
        "telemetry",
        &["--ca", &cert_pem, "--count", "1"],
    ));
    assert_eq!(got[0]["value"]["station_id"], "tls-1");
    // Without the CA, the client refuses the server.
    let o = publish(&url, "telemetry", &["--json", "{}"], "");
    assert_eq!(o.status.code(), Some(2));
}
