//! The text protocol against a real `isml serve` child process: every
//! command, retained values (with their time) across `kill -9`, keep-alive,
//! 50 concurrent clients, and megabyte lines against the server's memory.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use isml_runtime::text::Line;

mod common;
use common::{Server, rss, serve};

/// A text device on a blocking socket.
struct Text {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Text {
    fn connect(url: &str) -> Text {
        let addr = url.split_once("://").expect("scheme").1;
        let addr = addr.split_once('?').map_or(addr, |(a, _)| a);
        let s = TcpStream::connect(addr).expect("connects");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Text {
            reader: BufReader::new(s.try_clone().unwrap()),
            writer: s,
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    /// The next line; `None` at EOF (or a reset). Fails after 15 s.
    fn next(&mut self) -> Option<Line> {
        let mut l = String::new();
        match self.reader.read_line(&mut l) {
            Ok(0) => None,
            Ok(_) => Some(Line::parse(l.trim_end()).unwrap().expect("not blank")),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => None,
            Err(e) => panic!("no line within 15 s: {e}"),
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.send(line);
        self.next().expect("an answer").command
    }

    fn ok(&mut self, line: &str) {
        assert_eq!(self.command(line), "OK", "{line}");
    }

    fn bad(&mut self, line: &str) {
        assert_eq!(self.command(line), "BAD", "{line}");
    }

    /// The next push, which must be `SUB` of `variable`: its value.
    fn sub_push(&mut self, variable: &str) -> Line {
        let l = self.next().expect("a push");
        assert_eq!(l.command, "SUB", "{l:?}");
        assert_eq!(l.get("VARIABLE"), Some(variable), "{l:?}");
        l
    }
}

/// `isml serve` with a binary listener and the given text listeners.
fn serve_text(data: &Path, text: &[&str], extra: &[&str]) -> Server {
    let mut args = vec!["--listen", "tcp://127.0.0.1:0"];
    for t in text {
        args.extend(["--listen", t]);
    }
    args.extend(extra);
    serve(data, &args)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Milliseconds since the epoch of `2026-12-02T15:04:05.123Z`.
fn parse_time(t: &str) -> u64 {
    let n = |a: usize, b: usize| t[a..b].parse::<u64>().expect("digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    assert_eq!(&t[23..], "Z", "{t}");
    // Days since the epoch (proleptic Gregorian), by the usual era arithmetic.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

#[test]
fn every_command_against_isml_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_text(
        &dir.path().join("data"),
        &["text+tcp://127.0.0.1:0"],
        &["--text-map", "telemetry=charging.v1.telemetry"],
    );
    let url = &server.urls[1];
    let mut a = Text::connect(url);
    let mut b = Text::connect(url);
    a.ok("START | COMMAND=ID | ID=text-a | END");
    b.ok("START | COMMAND=ID | ID=text-b | END");
    a.ok("START | COMMAND=HELLO! | END");

    // SUB and PUB; the value is escaped on the way in and out.
    b.ok("START | COMMAND=SUB | VARIABLE=door | END");
    a.ok("START | COMMAND=PUB | VARIABLE=door | VALUE=open%7Cajar | END");
    let p = b.sub_push("door");
    assert_eq!(p.get("VALUE"), Some("open|ajar"));
    assert_eq!(p.get("TIME"), None, "TIME is off by default");

    // A variable mapped to a typed channel: JSON, checked against the schema.
    b.ok("START | COMMAND=SUB | VARIABLE=telemetry | END");
    a.ok(r#"START | COMMAND=PUB | VARIABLE=telemetry | VALUE={"station_id": "cab-1", "uptime_s": 7} | END"#);
    let p = b.sub_push("telemetry");
    let json: serde_json::Value = serde_json::from_str(p.get("VALUE").unwrap()).unwrap();
    assert_eq!(json["station_id"], "cab-1");
    assert_eq!(json["uptime_s"], 7);
    a.bad("START | COMMAND=PUB | VARIABLE=telemetry | VALUE={\"station_id\": 5} | END");
    a.bad("START | COMMAND=PUB | VARIABLE=telemetry | VALUE=not json | END");

    // MSG between text devices; an unknown device is BAD.
    a.ok("START | COMMAND=MSG | DEVICE=text-b | VALUE=hello b | END");
    let m = b.next().unwrap();
    assert_eq!(m.command, "MSG");
    assert_eq!(m.get("DEVICE"), Some("text-a"));
    assert_eq!(m.get("VALUE"), Some("hello b"));
    a.bad("START | COMMAND=MSG | DEVICE=nobody | VALUE=x | END");

    // DEL: a later subscriber gets no old value, only the next one.
    a.ok("START | COMMAND=DEL | VARIABLE=door | END");
    let mut c = Text::connect(url);
    c.ok("START | COMMAND=ID | ID=text-c | END");
    c.ok("START | COMMAND=SUB | VARIABLE=door | END");
    a.ok("START | COMMAND=PUB | VARIABLE=door | VALUE=closed | END");
    assert_eq!(c.sub_push("door").get("VALUE"), Some("closed"));
    assert_eq!(b.sub_push("door").get("VALUE"), Some("closed"));

    // UNSUB: b no longer gets door, and still gets telemetry (a's later
    // publication arrives first only if door stopped: a's order is kept).
    b.ok("START | COMMAND=UNSUB | VARIABLE=door | END");
    b.bad("START | COMMAND=UNSUB | VARIABLE=door | END");
    a.ok("START | COMMAND=PUB | VARIABLE=door | VALUE=gone | END");
    a.ok(r#"START | COMMAND=PUB | VARIABLE=telemetry | VALUE={"station_id": "after-unsub"} | END"#);
    let p = b.sub_push("telemetry");
    assert!(p.get("VALUE").unwrap().contains("after-unsub"));

    // UNSUBALL: nothing more, until a new SUB.
    b.ok("START | COMMAND=UNSUBALL | END");
    a.ok(r#"START | COMMAND=PUB | VARIABLE=telemetry | VALUE={"station_id": "x"} | END"#);
    a.ok("START | COMMAND=PUB | VARIABLE=door | VALUE=y | END");
    b.ok("START | COMMAND=SUB | VARIABLE=sentinel | END");
    a.ok("START | COMMAND=PUB | VARIABLE=sentinel | VALUE=s | END");
    assert_eq!(b.sub_push("sentinel").get("VALUE"), Some("s"));

    // CLOSE: OK, then the server ends the connection; the id can connect again.
    a.ok("START | COMMAND=CLOSE | END");
    assert!(a.next().is_none());
    let mut a2 = Text::connect(url);
    a2.ok("START | COMMAND=ID | ID=text-a | END");
    a2.ok("START | COMMAND=MSG | DEVICE=text-b | VALUE=back | END");
    assert_eq!(b.next().unwrap().get("VALUE"), Some("back"));
}

#[test]
fn a_late_subscriber_gets_the_retained_value_and_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_text(
        &dir.path().join("data"),
        &["text+tcp://127.0.0.1:0", "text+tcp://127.0.0.1:0?time=on"],
        &[],
    );
    let (plain, timed) = (&server.urls[1], &server.urls[2]);
    let mut p = Text::connect(plain);
    let before = now_ms();
    p.ok("START | COMMAND=PUB | VARIABLE=meter/7 | VALUE=1234.5 | END");
    let after = now_ms();
    std::thread::sleep(Duration::from_millis(1100));

    let mut late = Text::connect(plain);
    late.ok("START | COMMAND=SUB | VARIABLE=meter/7 | END");
    let l = late.sub_push("meter/7");
    assert_eq!(l.get("VALUE"), Some("1234.5"));
    assert_eq!(l.params.len(), 2, "no TIME without the option: {l:?}");

    let mut late = Text::connect(timed);
    late.ok("START | COMMAND=SUB | VARIABLE=meter/7 | END");
    let l = late.sub_push("meter/7");
    assert_eq!(l.get("VALUE"), Some("1234.5"));
    let t = parse_time(l.get("TIME").expect("TIME with ?time=on"));
    assert!(
        (before..=after).contains(&t),
        "publication time {t} not within {before}..={after}"
    );
}

#[test]
fn keepalive_closes_a_silent_device_and_keeps_one_that_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_text(
        &dir.path().join("data"),
        &["text+tcp://127.0.0.1:0?misses=2"],
        &["--keepalive", "300ms"],
    );
    let url = &server.urls[1];
    let mut silent = Text::connect(url);
    silent.ok("START | COMMAND=ID | ID=silent | END");
    let mut lively = Text::connect(url);
    lively.ok("START | COMMAND=ID | ID=lively | END");

    // The silent one: two questions, then CLOSE and the end.
    let silent = std::thread::spawn(move || {
        assert_eq!(silent.next().unwrap().command, "HELLO?");
        assert_eq!(silent.next().unwrap().command, "HELLO?");
        assert_eq!(silent.next().unwrap().command, "CLOSE");
        assert!(silent.next().is_none());
    });

    // The lively one answers every question (each HELLO! gets its OK; a
    // question may come before the OK of the answer before) and stays.
    let (mut questions, mut unanswered_oks) = (0, 0);
    while questions < 8 {
        let l = lively.next().expect("still connected");
        match l.command.as_str() {
            "HELLO?" => {
                questions += 1;
                unanswered_oks += 1;
                lively.send("START | COMMAND=HELLO! | END");
            }
            "OK" => unanswered_oks -= 1,
            other => panic!("unexpected {other}"),
        }
    }
    lively.send("START | COMMAND=PUB | VARIABLE=alive | VALUE=yes | END");
    // The OKs still owed, then the PUB's.
    loop {
        let l = lively.next().expect("still connected");
        match l.command.as_str() {
            "HELLO?" => {
                unanswered_oks += 1;
                lively.send("START | COMMAND=HELLO! | END");
            }
            "OK" if unanswered_oks > 0 => unanswered_oks -= 1,
            "OK" => break,
            other => panic!("unexpected {other}"),
        }
    }
    silent.join().expect("the silent device was closed");
}

#[test]
fn retained_text_values_survive_kill_9_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = serve_text(&data, &["text+tcp://127.0.0.1:0?time=on"], &[]);
    let mut t = Text::connect(&server.urls[1]);
    t.ok("START | COMMAND=ID | ID=cab-3 | END");
    let before = now_ms();
    // OK means stored: on a server with a data directory, the broker
    // answers a retained publication once the store committed it.
    t.ok("START | COMMAND=PUB | VARIABLE=door | VALUE=open | END");
    t.ok("START | COMMAND=PUB | VARIABLE=lamp | VALUE=on | END");
    t.ok("START | COMMAND=PUB | VARIABLE=gone | VALUE=soon | END");
    t.ok("START | COMMAND=DEL | VARIABLE=gone | END");
    let after = now_ms();
    server.child.0.kill().unwrap();
    assert!(!server.child.0.wait().unwrap().success());

    let server = serve_text(&data, &["text+tcp://127.0.0.1:0?time=on"], &[]);
    let mut t = Text::connect(&server.urls[1]);
    for (variable, value) in [("door", "open"), ("lamp", "on")] {
        t.ok(&format!("START | COMMAND=SUB | VARIABLE={variable} | END"));
        let l = t.sub_push(variable);
        assert_eq!(l.get("VALUE"), Some(value));
        let time = parse_time(l.get("TIME").unwrap());
        assert!((before..=after).contains(&time), "{time}");
    }
    // The deleted one stays deleted: the next push is the sentinel's.
    t.ok("START | COMMAND=SUB | VARIABLE=gone | END");
    t.ok("START | COMMAND=SUB | VARIABLE=sentinel | END");
    t.ok("START | COMMAND=PUB | VARIABLE=sentinel | VALUE=1 | END");
    assert_eq!(t.sub_push("sentinel").get("VALUE"), Some("1"));
}

#[test]
fn fifty_text_clients_publish_and_every_subscriber_gets_every_value_in_order() {
    const PUBLISHERS: usize = 50;
    const EACH: usize = 40;
    const SUBSCRIBERS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let server = serve_text(&dir.path().join("data"), &["text+tcp://127.0.0.1:0"], &[]);
    let url = server.urls[1].clone();
    let mut subscribers: Vec<Text> = (0..SUBSCRIBERS)
        .map(|i| {
            let mut s = Text::connect(&url);
            s.ok(&format!("START | COMMAND=ID | ID=sub-{i} | END"));
            for p in 0..PUBLISHERS {
                s.ok(&format!("START | COMMAND=SUB | VARIABLE=load/{p} | END"));
            }
            s
        })
        .collect();
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut t = Text::connect(&url);
                t.ok(&format!("START | COMMAND=ID | ID=pub-{p} | END"));
                for n in 0..EACH {
                    t.ok(&format!(
                        "START | COMMAND=PUB | VARIABLE=load/{p} | VALUE={n} | END"
                    ));
                }
            })
        })
        .collect();
    let readers: Vec<_> = subscribers
        .drain(..)
        .map(|mut s| {
            std::thread::spawn(move || {
                let mut next = vec![0usize; PUBLISHERS];
                for _ in 0..PUBLISHERS * EACH {
                    let l = s.next().expect("a push");
                    assert_eq!(l.command, "SUB", "{l:?}");
                    let p: usize = l.get("VARIABLE").unwrap()["load/".len()..].parse().unwrap();
                    let n: usize = l.get("VALUE").unwrap().parse().unwrap();
                    assert_eq!(n, next[p], "publisher {p}: out of order or lost");
                    next[p] += 1;
                }
                next
            })
        })
        .collect();
    for p in publishers {
        p.join().expect("publisher");
    }
    for r in readers {
        let next = r.join().expect("subscriber");
        assert!(next.iter().all(|n| *n == EACH), "{next:?}");
    }
}

#[test]
fn megabyte_lines_are_refused_without_the_server_growing() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_text(&dir.path().join("data"), &["text+tcp://127.0.0.1:0"], &[]);
    let pid = server.child.0.id();
    let mut t = Text::connect(&server.urls[1]);
    t.ok("START | COMMAND=ID | ID=big | END");
    t.ok("START | COMMAND=PUB | VARIABLE=warm | VALUE=up | END");
    let start = rss(pid);
    let mut line = b"START | COMMAND=PUB | VARIABLE=big | VALUE=".to_vec();
    line.resize(1024 * 1024, b'x');
    line.extend_from_slice(b" | END\n");
    for _ in 0..16 {
        t.writer.write_all(&line).unwrap();
        assert_eq!(t.next().unwrap().command, "BAD");
    }
    // One command of 8 MiB in many writes, its end long after the limit.
    let chunk = vec![b'y'; 64 * 1024];
    t.writer.write_all(b"START | COMMAND=PUB | VALUE=").unwrap();
    for _ in 0..128 {
        t.writer.write_all(&chunk).unwrap();
    }
    t.writer.write_all(b"\n").unwrap();
    assert_eq!(t.next().unwrap().command, "BAD");
    t.ok("START | COMMAND=PUB | VARIABLE=small | VALUE=fine | END");
    let end = rss(pid);
    assert!(
        end < start + 4 * 1024 * 1024,
        "RSS grew from {start} to {end} bytes after 24 MiB of refused lines"
    );
}

#[test]
fn msg_between_text_and_binary_devices_through_serve() {
    use isml_runtime::text::Value;
    let dir = tempfile::tempdir().unwrap();
    let server = serve_text(&dir.path().join("data"), &["text+tcp://127.0.0.1:0"], &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (got_tx, got_rx) = std::sync::mpsc::channel();
    let dispatcher = isml_runtime::Dispatcher::new().on::<Value, _, _>(move |ctx, v: Value| {
        let got = got_tx.clone();
        async move {
            let _ = got.send((ctx.sender().map(str::to_owned), v.value));
            Ok(())
        }
    });
    let binary = rt
        .block_on(
            isml_runtime::Client::builder(server.url.clone())
                .device_id("bin-7")
                .dispatcher(dispatcher)
                .connect(),
        )
        .expect("binary device connects");
    let mut text = Text::connect(&server.urls[1]);
    text.ok("START | COMMAND=ID | ID=text-7 | END");

    // Text to binary: the handler sees the text device's id.
    text.ok("START | COMMAND=MSG | DEVICE=bin-7 | VALUE=open the door | END");
    let (from, value) = got_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(
        (from.as_deref(), value.as_str()),
        (Some("text-7"), "open the door")
    );

    // Binary to text: a MSG line naming the binary device.
    rt.block_on(binary.send_to(
        "text-7",
        &Value {
            value: "done|ok".into(),
        },
    ))
    .unwrap();
    let m = text.next().unwrap();
    assert_eq!(m.command, "MSG");
    assert_eq!(m.get("DEVICE"), Some("bin-7"));
    assert_eq!(m.get("VALUE"), Some("done|ok"));

    // A binary send_to an id nobody holds is refused, clearly.
    let e = rt
        .block_on(binary.send_to("text-none", &Value::default()))
        .unwrap_err();
    assert!(e.to_string().contains("text-none"), "{e}");
    rt.block_on(binary.close("done"));
}

#[test]
fn every_malformed_form_gets_bad_from_isml_serve_and_the_connection_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_text(
        &dir.path().join("data"),
        &["text+tcp://127.0.0.1:0?max_line=256"],
        &[],
    );
    let mut t = Text::connect(&server.urls[1]);
    let long = format!(
        "START | COMMAND=PUB | VARIABLE=x | VALUE={} | END",
        "z".repeat(1000)
    );
    for line in [
        "COMMAND=SUB | VARIABLE=x | END",
        "START | COMMAND=SUB | VARIABLE=x",
        "START | VARIABLE=x | END",
        "START | COMMAND=TELEPORT | END",
        "START | COMMAND=SUB | END",
        "START | COMMAND=UNSUB | END",
        "START | COMMAND=PUB | VARIABLE=x | END",
        "START | COMMAND=DEL | END",
        "START | COMMAND=MSG | DEVICE=x | END",
        "START | COMMAND=MSG | VALUE=x | END",
        "START | COMMAND=ID | END",
        "START | COMMAND=SUB | VARIABLE=x || END",
        "START | COMMAND=SUB | VARIABLE | END",
        "START | COMMAND=SUB | VARIABLE=a | VARIABLE=b | END",
        "START | COMMAND=SUB | VARIABLE=%FF | END",
        "START | COMMAND=ID | ID=%20padded | END",
        &long,
    ] {
        t.bad(line);
    }
    t.writer
        .write_all(b"START | COMMAND=SUB | VARIABLE=\xc3\x28 | END\n")
        .unwrap();
    assert_eq!(t.next().unwrap().command, "BAD");
    // Three commands in one write, and one command a byte at a time.
    t.writer
        .write_all(b"START | COMMAND=SUB | VARIABLE=p | END\nSTART | COMMAND=PUB | VARIABLE=p | VALUE=1 | END\r\nSTART | COMMAND=HELLO! | END\n")
        .unwrap();
    assert_eq!(t.next().unwrap().command, "OK");
    assert_eq!(t.next().unwrap().command, "OK");
    let mut rest = Vec::new();
    for _ in 0..2 {
        rest.push(t.next().unwrap().command);
    }
    rest.sort();
    assert_eq!(rest, ["OK", "SUB"], "the HELLO!'s OK and p's push");
    for b in b"START | COMMAND=PUB | VARIABLE=p | VALUE=2 | END\n" {
        t.writer.write_all(&[*b]).unwrap();
        t.writer.flush().unwrap();
    }
    let mut got = [t.next().unwrap(), t.next().unwrap()];
    got.sort_by(|a, b| a.command.cmp(&b.command));
    assert_eq!(got[0].command, "OK");
    assert_eq!(got[1].get("VALUE"), Some("2"));
}

#[test]
fn the_python_example_client_talks_to_isml_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_text(&dir.path().join("data"), &["text+tcp://127.0.0.1:0"], &[]);
    let port = server.urls[1].rsplit_once(':').unwrap().1.to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/textproto/client.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(["--port", &port, "--id", "py-1"])
        .args([
            "sub",
            "door",
            "pub",
            "door",
            "open|shut",
            "msg",
            "py-1",
            "to myself",
        ])
        .args(["msg", "nobody", "x", "listen", "1"])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "ID OK",
        "SUB door OK",
        "PUB door open|shut OK",
        "MSG py-1 to myself OK",
        "MSG nobody x BAD",
        "SUB {'VARIABLE': 'door', 'VALUE': 'open|shut'}",
        "MSG {'DEVICE': 'py-1', 'VALUE': 'to myself'}",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
}
