//! The `isml` binary, run for real: every subcommand with good and bad input.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_isml"))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn charging() -> String {
    root().join("schemas/charging.isml").display().to_string()
}

/// Runs `isml args` with `stdin`, in `dir` when given.
fn run(args: &[&str], stdin: &[u8], dir: Option<&Path>) -> Output {
    run_with_stdout(args, stdin, dir, Stdio::piped())
}

/// Like [`run`], with standard output a pipe whose reading end is already
/// closed, as after `| head -c0`: every write to it fails with a broken pipe.
fn run_stdout_closed(args: &[&str], stdin: &[u8], dir: Option<&Path>) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    run_with_stdout(args, stdin, dir, Stdio::from(writer))
}

fn run_with_stdout(args: &[&str], stdin: &[u8], dir: Option<&Path>, stdout: Stdio) -> Output {
    let mut cmd = bin();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped());
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let mut child = cmd.spawn().expect("isml runs");
    let mut input = child.stdin.take().unwrap();
    // A command that fails early (a missing file) may exit before reading its
    // input: a broken pipe here is expected, anything else is not.
    match input.write_all(stdin) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.unwrap(),
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// Fails the test if the process panicked or printed a Rust debug dump.
fn no_panic(o: &Output) {
    let e = stderr(o);
    assert!(
        !e.contains("panicked") && !e.contains("RUST_BACKTRACE"),
        "{e}"
    );
    assert!(
        !e.contains(" { ") || e.contains("-->"),
        "debug dump in: {e}"
    );
}

const REPORT: &str = r#"{"station_id": "cab-17", "slots": [{"index": 0, "state": "charging",
  "battery": {"serial": "BT-0042", "soc_percent": 64, "soh_percent": 97, "cycles": 312, "temperature_c": 28.5},
  "current_limit_ma": 16000}, {"index": 1, "state": "empty"}], "temperature_c": 21.25,
  "firmware": "2.4.1", "labels": {"site": "depot-3"}, "serial": "AAEC", "mac": [2, 0, 94, 16, 32, 48],
  "uptime_s": 86400, "meter": {"at": {"millis": "1700000000000"}, "energy_wh": 18446744073709551615,
  "power_w": -1500, "voltage_v": 229.5, "current_a": -6.5, "phase_voltages_v": [230.1, 229.9, 231]}}"#;

fn encode(args: &[&str], json: &str) -> Output {
    let mut all = vec![
        "encode",
        "--schema",
        &*Box::leak(charging().into_boxed_str()),
    ];
    all.extend_from_slice(args);
    run(&all, json.as_bytes(), None)
}

fn decode(args: &[&str], input: &[u8]) -> Output {
    let mut all = vec![
        "decode",
        "--schema",
        &*Box::leak(charging().into_boxed_str()),
    ];
    all.extend_from_slice(args);
    run(&all, input, None)
}

// ---------------------------------------------------------------------------
// encode / decode
// ---------------------------------------------------------------------------

#[test]
fn encode_then_decode_round_trips() {
    let e = encode(&["--message", "StatusReport", "--hex"], REPORT);
    assert_eq!(code(&e), 0, "{}", stderr(&e));
    let hex = stdout(&e);
    assert!(hex.ends_with('\n') && hex.trim().chars().all(|c| c.is_ascii_hexdigit()));
    let d = decode(
        &["--message", "charging.v1.StatusReport", "--hex"],
        hex.as_bytes(),
    );
    assert_eq!(code(&d), 0, "{}", stderr(&d));
    let json: serde_json::Value = serde_json::from_str(&stdout(&d)).unwrap();
    assert_eq!(json["station_id"], "cab-17");
    assert_eq!(json["slots"][0]["state"], "charging");
    assert_eq!(json["serial"], "AAEC");
    assert_eq!(
        json["meter"]["energy_wh"],
        serde_json::json!(18446744073709551615u64)
    );
    assert_eq!(
        json["meter"]["at"]["millis"],
        serde_json::json!(1700000000000u64)
    );
    assert!(json.get("firmware").is_some());
    // Re-encoding the decoded JSON gives the same bytes.
    let again = encode(&["--message", "StatusReport", "--hex"], &stdout(&d));
    assert_eq!(stdout(&again), hex);
    // Raw bytes (no --hex) decode the same.
    let raw = encode(&["--message", "StatusReport"], REPORT);
    let d2 = decode(&["--message", "StatusReport"], &raw.stdout);
    assert_eq!(stdout(&d2), stdout(&d));
}

#[test]
fn json_errors_name_the_path_and_exit_1() {
    let cases = [
        ("{\"station_id\": ", "invalid JSON at line 1, column 15"),
        (
            "{\"bogus\": 1}",
            "`charging.v1.StatusReport`: unknown field `bogus`",
        ),
        (
            "{\"station_id\": 5}",
            "`charging.v1.StatusReport.station_id`: expected a `string`, found a number",
        ),
        (
            "{\"slots\": [{}, {}, {\"battery\": {\"soc_percent\": 300}}]}",
            "`charging.v1.StatusReport.slots[2].battery.soc_percent`: number 300 is out of range for `u8` (0..=255)",
        ),
        (
            "{\"slots\": [{}, {}, {\"battery\": {\"soc_percent\": 101}}]}",
            "`charging.v1.StatusReport.slots[2].battery.soc_percent`: value 101 is outside range 0..=100",
        ),
        (
            "{\"slots\": [{\"state\": \"exploded\"}]}",
            "unknown variant \"exploded\" of enum `charging.v1.SlotState`",
        ),
        ("{\"mac\": [1, 2]}", "expected exactly 6 elements"),
        ("{\"serial\": \"***\"}", "invalid base64"),
        (
            "{\"station_id\": null}",
            "null is only allowed for optional fields",
        ),
        ("{\"uptime_s\": -1}", "number -1 is out of range for `u64`"),
        ("{\"uptime_s\": 1.5}", "expected an integer for `u64`"),
        ("{\"temperature_c\": \"hot\"}", "is not a number"),
        (
            "[1]",
            "expected an object for message `charging.v1.StatusReport`, found an array",
        ),
    ];
    for (json, want) in cases {
        let o = encode(&["--message", "StatusReport"], json);
        assert_eq!(code(&o), 1, "{json}: {}", stderr(&o));
        assert!(stderr(&o).contains(want), "{json}: {}", stderr(&o));
        assert!(o.stdout.is_empty());
        no_panic(&o);
    }
}

#[test]
fn json_accepts_the_spec_forms() {
    // u64 as a string, null optional, NaN, a union as one key, an unknown enum value as a number.
    let o = encode(
        &["--message", "Command", "--hex"],
        r#"{"start": {"slot": 1, "target_soc_percent": 80, "max_current_ma": null}}"#,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = encode(
        &["--message", "Fault", "--hex"],
        r#"{"code": 99, "message": "x"}"#,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let d = decode(&["--message", "Fault", "--hex"], stdout(&o).as_bytes());
    assert!(stdout(&d).contains("\"code\":99"), "{}", stdout(&d));
    let o = encode(&["--message", "Command"], r#"{"start": {}, "stop": {}}"#);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("exactly one key"), "{}", stderr(&o));
}

#[test]
fn unknown_union_variants_are_checked_before_encoding() {
    // What decode prints for a variant the schema does not define (tag 9) is
    // accepted back, and the frame decodes again.
    let o = encode(
        &["--message", "Command", "--frame", "--hex"],
        r#"{"9": {"class": 1, "bytes": "rAI="}}"#,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "030b25ac02\n");
    let d = decode(&["--frame", "--hex"], &o.stdout);
    assert_eq!(code(&d), 0, "{}", stderr(&d));
    assert_eq!(
        stdout(&d),
        "{\"kind\":\"one-way\",\"type_id\":11,\"message\":\"charging.v1.Command\",\"value\":{\"9\":{\"class\":1,\"bytes\":\"rAI=\"}}}\n"
    );
    // Bytes that are not one value of their class would make a frame that
    // decoders reject: refused, naming the variant.
    for (json, want) in [
        (
            r#"{"4": {"class": 1, "bytes": "gAA="}}"#,
            "error: invalid input: `charging.v1.Command.4`: tag 4 is variant `door` of `charging.v1.Command`: write it by name, as {\"door\": ...}\n",
        ),
        (
            r#"{"9": {"class": 1, "bytes": "gAA="}}"#,
            "error: invalid input: `charging.v1.Command.9`: unknown variant 9: bytes `80 00` are not exactly one canonical varint (class 1): non-canonical varint at byte 0: written longer than needed\n",
        ),
        (
            r#"{"9": {"class": 3, "bytes": "BQ=="}}"#,
            "error: invalid input: `charging.v1.Command.9`: unknown variant 9: bytes `05` are not exactly one length-delimited value, uvarint(n) then n bytes (class 3): length 5 at byte 0 exceeds the 0 byte(s) remaining\n",
        ),
    ] {
        let o = encode(&["--message", "Command", "--frame", "--hex"], json);
        assert_eq!(code(&o), 1, "{json}");
        assert_eq!(stderr(&o), want, "{json}");
        assert!(o.stdout.is_empty(), "{json}");
    }
}

#[test]
fn message_names_are_resolved_or_listed() {
    let o = encode(&["--message", "Nope"], "{}");
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("no message called `Nope`"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("`charging.v1.StatusReport`"));
    let o = encode(&["--message", "SlotState"], "{}");
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not a message or union"));
    // Two packages with the same simple name.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.isml"),
        "package a; import \"b.isml\"; message M [id = 1] {}",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.isml"),
        "package b; message M [id = 2] {}",
    )
    .unwrap();
    let o = run(
        &["encode", "--schema", "a.isml", "--message", "M"],
        b"{}",
        Some(dir.path()),
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("`M` is ambiguous; use one of: `a.M`, `b.M`"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &["encode", "--schema", "a.isml", "--message", "b.M", "--hex"],
        b"{}",
        Some(dir.path()),
    );
    assert_eq!(stdout(&o), "00\n");
}

#[test]
fn missing_files_are_io_errors() {
    let o = run(
        &[
            "encode",
            "--schema",
            "/nonexistent/x.isml",
            "--message",
            "M",
        ],
        b"{}",
        None,
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).starts_with("error: cannot read `/nonexistent/x.isml`"),
        "{}",
        stderr(&o)
    );
    for cmd in [
        &["check", "/nonexistent/x.isml"][..],
        &["describe", "/nonexistent/x.isml"],
        &["fmt", "/nonexistent/x.isml"],
    ] {
        let o = run(cmd, b"", None);
        assert_eq!(code(&o), 2, "{cmd:?}");
        assert!(stderr(&o).contains("/nonexistent/x.isml"));
    }
}

#[test]
fn truncated_and_corrupt_bytes_are_rejected_with_offsets() {
    let e = encode(&["--message", "StatusReport", "--hex"], REPORT);
    let hex = stdout(&e).trim().to_string();
    let cut = &hex[..hex.len() - 10];
    let o = decode(&["--message", "StatusReport", "--hex"], cut.as_bytes());
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("at byte"), "{}", stderr(&o));
    no_panic(&o);
    // A string with invalid UTF-8: presence 03 (tag 1 delimited), length 1, byte ff.
    let o = decode(&["--message", "StatusReport", "--hex"], b"03 01 ff");
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "error: cannot decode `charging.v1.StatusReport`: at byte 2 in `charging.v1.StatusReport.station_id`: invalid UTF-8 in string\n"
    );
    let o = decode(&["--message", "StatusReport", "--hex"], b"0g");
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("`g` at character 2 is not a hex digit"));
    let o = decode(&["--message", "StatusReport", "--hex"], b"000");
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("odd number of hex digits"));
    // Bytes left over after the body.
    let o = decode(&["--message", "StatusReport", "--hex"], b"00 00");
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("left over"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------
// frames
// ---------------------------------------------------------------------------

#[test]
fn frames_of_every_kind_decode() {
    let mut hex = String::new();
    let mut add = |args: &[&str], json: &str| {
        let o = encode(args, json);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        hex.push_str(stdout(&o).trim());
        hex.push('\n');
    };
    add(
        &["--message", "StatusReport", "--frame", "--hex"],
        r#"{"station_id": "cab-17"}"#,
    );
    add(
        &[
            "--message",
            "StartCharging",
            "--frame",
            "--kind",
            "request",
            "--correlation",
            "7",
            "--hex",
        ],
        r#"{"slot": 2, "target_soc_percent": 90}"#,
    );
    add(
        &[
            "--message",
            "ChargeStarted",
            "--frame",
            "--kind",
            "response",
            "--correlation",
            "7",
            "--hex",
        ],
        "{}",
    );
    add(
        &[
            "--message",
            "SlotReading",
            "--frame",
            "--kind",
            "stream-item",
            "--correlation",
            "3",
            "--seq",
            "42",
            "--hex",
        ],
        "{}",
    );
    // FirmwareReport has type id 32: written as a varint after the lead byte.
    add(&["--message", "FirmwareReport", "--frame", "--hex"], "{}");
    // Hand-made: error (code 3 "boom"), stream end (empty, then failed), cancel,
    // ack 42, hello, welcome, ping, pong, close, and ack 300 in two fragments
    // (`ac` with MORE, then `02`).
    hex.push_str("07 30 07 03 04 626f6f6d\n01 50 03\n05 50 03 05 02 6e6f\n01 60 09\n01 70 2a\n");
    hex.push_str(
        "02 71 0102\n00 72\n01 73 ab\n01 74 ab\n05 75 09 03 627965\n02 f0 02 ac\n01 70 02\n",
    );
    let o = decode(&["--frame", "--hex"], hex.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    insta::assert_snapshot!("frames_of_every_kind", stdout(&o));
    let request = encode(
        &[
            "--message",
            "StartCharging",
            "--frame",
            "--kind",
            "request",
            "--correlation",
            "7",
            "--hex",
        ],
        r#"{"slot": 2, "target_soc_percent": 90, "max_current_ma": 16000}"#,
    );
    let pretty = decode(&["--frame", "--hex", "--pretty"], &request.stdout);
    assert_eq!(code(&pretty), 0, "{}", stderr(&pretty));
    insta::assert_snapshot!("frame_pretty", stdout(&pretty));
}

/// One stream frame as hex: the length prefix, then `header` and `payload`.
fn frame_hex(header: &[u8], payload: &[u8]) -> String {
    let len = header.len() + payload.len() - 1;
    assert!(len < 128, "one length byte");
    let mut out = format!("{len:02x}");
    for b in header.iter().chain(payload) {
        out.push_str(&format!("{b:02x}"));
    }
    out.push('\n');
    out
}

fn unhex(text: &str) -> Vec<u8> {
    let t = text.trim();
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn fragmented_messages_are_joined_before_decoding() {
    let request_json = r#"{"slot": 2, "target_soc_percent": 90, "max_current_ma": 16000}"#;
    let whole = encode(
        &[
            "--message",
            "StartCharging",
            "--frame",
            "--kind",
            "request",
            "--correlation",
            "7",
            "--seq",
            "5",
            "--hex",
        ],
        request_json,
    );
    let whole_json = stdout(&decode(&["--frame", "--hex"], &whole.stdout));
    let payload = unhex(&stdout(&encode(
        &["--message", "StartCharging", "--hex"],
        request_json,
    )));
    assert!(payload.len() >= 3);
    let report = unhex(&stdout(&encode(
        &["--message", "StatusReport", "--hex"],
        REPORT,
    )));
    let (p1, rest) = payload.split_at(1);
    let (p2, p3) = rest.split_at(1);
    let mut input = String::new();
    // request type 5, correlation 7: SEQ + MORE (seq 5), MORE (seq 6), last (seq 7)
    input += &frame_hex(&[0x95, 0x03, 0x07, 0x05], p1);
    // complete frames of other messages may come between the fragments
    input += &frame_hex(&[0x73], b"");
    input += &frame_hex(&[0x01], &report);
    input += &frame_hex(&[0x95, 0x03, 0x07, 0x06], p2);
    input += &frame_hex(&[0x95, 0x01, 0x07, 0x07], p3);
    // an error response (correlation 8): code 3, "boom", split inside the string
    input += &frame_hex(&[0xb0, 0x02, 0x08], &[0x03, 0x04, b'b', b'o']);
    input += &frame_hex(&[0x30, 0x08], b"om");
    // a failed stream end (correlation 3), with an empty middle fragment
    input += &frame_hex(&[0xd0, 0x02, 0x03], &[0x05]);
    input += &frame_hex(&[0xd0, 0x02, 0x03], b"");
    input += &frame_hex(&[0x50, 0x03], &[0x02, b'n', b'o']);
    // a one-way status report in three fragments
    let (r1, rest) = report.split_at(report.len() / 3);
    let (r2, r3) = rest.split_at(rest.len() / 2);
    input += &frame_hex(&[0x81, 0x02], r1);
    input += &frame_hex(&[0x81, 0x02], r2);
    input += &frame_hex(&[0x01], r3);
    // close: code 9, "bye"
    input += &frame_hex(&[0xf5, 0x02], &[0x09, 0x03]);
    input += &frame_hex(&[0x75], b"bye");
    let o = decode(&["--frame", "--hex"], input.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let report_line = stdout(&decode(
        &["--frame", "--hex"],
        frame_hex(&[0x01], &report).as_bytes(),
    ));
    // The joined request reads like the unfragmented one (same header with the
    // first fragment's seq, same value), plus the number of fragments.
    let joined_request = whole_json
        .trim()
        .replacen(r#""seq":5,"#, r#""seq":5,"fragments":3,"#, 1);
    assert_ne!(joined_request, whole_json.trim());
    let joined_report =
        report_line
            .trim()
            .replacen(r#""type_id":1,"#, r#""type_id":1,"fragments":3,"#, 1);
    assert_eq!(
        lines,
        [
            r#"{"kind":"ping"}"#,
            report_line.trim(),
            &joined_request,
            r#"{"kind":"error","correlation":8,"fragments":2,"code":3,"message":"boom"}"#,
            r#"{"kind":"stream-end","correlation":3,"fragments":3,"code":5,"message":"no"}"#,
            &joined_report,
            r#"{"kind":"close","fragments":2,"code":9,"message":"bye"}"#,
        ]
    );
}

#[test]
fn fragments_that_do_not_join_are_rejected() {
    let first = frame_hex(&[0x95, 0x02, 0x07], &[0x05]);
    let ping = frame_hex(&[0x73], b"");
    // The input ends inside a fragmented message: what came before is printed.
    let o = decode(&["--frame", "--hex"], (ping.clone() + &first).as_bytes());
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o), "{\"kind\":\"ping\"}\n");
    assert_eq!(
        stderr(&o),
        "error: the input ends inside a fragmented request (type 5, correlation 7): frame 2 at byte 2 began it, 1 fragment(s) with 1 byte(s) of payload arrived, and no last fragment (MORE clear) followed\n"
    );
    // A fragmented error frame that never ends is not taken for a whole one.
    let o = decode(
        &["--frame", "--hex"],
        frame_hex(&[0xb0, 0x02, 0x08], &[0x03, 0x00]).as_bytes(),
    );
    assert_eq!(code(&o), 1);
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o).contains("ends inside a fragmented error (correlation 8)"),
        "{}",
        stderr(&o)
    );
    // A second fragmented message while one is in progress.
    let o = decode(
        &["--frame", "--hex"],
        (first.clone() + &frame_hex(&[0x95, 0x02, 0x08], &[0x05])).as_bytes(),
    );
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "error: frame 2 at byte 5: a fragment (MORE set) of request (type 5, correlation 8) arrived while the fragmented request (type 5, correlation 7) begun by frame 1 at byte 0 was incomplete; only one fragmented message may be in progress at a time (wire format §2.6)\n"
    );
    // Joined bytes that do not decode: the error names the frames and uses
    // offsets within the joined payload `05 ff` (presence, then a varint that
    // does not end).
    let o = decode(
        &["--frame", "--hex"],
        (first.clone() + &frame_hex(&[0x15, 0x07], &[0xff])).as_bytes(),
    );
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "error: frames 1 to 2 (one message in 2 fragments, the first at byte 0): cannot decode `charging.v1.StartCharging` (offsets within the joined payload): at byte 2 in `charging.v1.StartCharging.slot`: unexpected end of input: 1 more byte(s) needed\n"
    );
    no_panic(&o);
    // Two fragments of 600 000 bytes: the joined message would pass 1 MiB.
    let mut big = Vec::new();
    for header in [[0x81u8, 0x02], [0x81, 0x02]] {
        let len = (header.len() + 600_000 - 1) as u64;
        let mut v = len;
        while v >= 0x80 {
            big.push(v as u8 | 0x80);
            v >>= 7;
        }
        big.push(v as u8);
        big.extend_from_slice(&header);
        big.extend(std::iter::repeat_n(0u8, 600_000));
    }
    let o = decode(&["--frame"], &big);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "error: frame 2 at byte 600005: the fragmented one-way (type 1) begun by frame 1 at byte 0 grows to 1200000 bytes, more than the maximum message size of 1048576 bytes\n"
    );
    // An unknown type id is reported once the message is complete.
    let o = decode(
        &["--frame", "--hex"],
        (frame_hex(&[0x8d, 0x02], &[0x00]) + &frame_hex(&[0x0d], b"")).as_bytes(),
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("frames 1 to 2 (one message in 2 fragments, the first at byte 0): unknown message type id 13"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cancel_and_handshake_payloads_are_shown_not_refused() {
    // A cancel's payload is reserved: receivers ignore it, the tool shows it.
    // A welcome carries the handshake acceptance of docs/runtime.md: version 1,
    // session 3, device "d1", keep-alive 0, no types.
    let o = decode(
        &["--frame", "--hex"],
        b"02 60 09 ab\n01 60 0a\n07 72 01 03 02 6431 00 00",
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "{\"kind\":\"cancel\",\"correlation\":9,\"payload\":\"ab\"}\n\
         {\"kind\":\"cancel\",\"correlation\":10}\n\
         {\"kind\":\"welcome\",\"payload\":\"01030264310000\"}\n"
    );
}

#[test]
fn bad_frames_are_rejected() {
    let cases: [(&[u8], &str); 5] = [
        (b"05 01 00", "frame 1 at byte 0 is truncated"),
        (b"00 0d", "unknown message type id 13"),
        (b"01 7c 00", "unknown link opcode 12"),
        (b"03 30 07 03 04", "bad error body"),
        (
            b"01 01 00 00 0d",
            "frame 2 at byte 3: unknown message type id 13",
        ),
    ];
    for (input, want) in cases {
        let o = decode(&["--frame", "--hex"], input);
        assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(input));
        assert!(
            stderr(&o).contains(want),
            "{}: {}",
            String::from_utf8_lossy(input),
            stderr(&o)
        );
        no_panic(&o);
    }
    // A nested type has no id: it cannot be framed.
    let o = encode(&["--message", "Slot", "--frame"], "{}");
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("has no message id"));
    let o = encode(
        &["--message", "StatusReport", "--frame", "--kind", "request"],
        "{}",
    );
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--correlation is required"));
}

// ---------------------------------------------------------------------------
// check, gen, describe, completions, help
// ---------------------------------------------------------------------------

#[test]
fn check_reports_like_build_scripts() {
    let o = run(&["check", &charging()], b"", None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let bad = "package p;\nmessage M { x: u9 = 1; y: strin = 2; }\n";
    let path = dir.path().join("bad.isml");
    std::fs::write(&path, bad).unwrap();
    let o = run(&["check", &path.display().to_string()], b"", None);
    assert_eq!(code(&o), 1);
    // Exactly what a build script prints: Diagnostics::render.
    let rendered = isml_schema::load(&isml_schema::LoadOptions::new([&path]))
        .unwrap_err()
        .render();
    assert_eq!(stderr(&o), rendered);
    assert!(rendered.contains("did you mean `u8`?"));
    let o = run(
        &["check", "--format", "json", "bad.isml"],
        b"",
        Some(dir.path()),
    );
    assert_eq!(code(&o), 1);
    let list: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let first = &list[0];
    assert_eq!(first["file"], "bad.isml");
    assert_eq!(first["line"], 2);
    assert!(first["column"].as_u64().unwrap() > 1);
    assert!(first["labels"][0]["end_column"].is_u64());
    assert!(
        list.as_array().unwrap().len() >= 2,
        "every error is reported"
    );
    let o = run(&["check", "--format", "json", &charging()], b"", None);
    assert_eq!((code(&o), stdout(&o).trim()), (0, "[]"));
}

#[test]
fn gen_writes_the_builder_output() {
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "gen",
            "-I",
            &root().join("schemas").display().to_string(),
            &charging(),
            "--out",
            &out.path().display().to_string(),
        ],
        b"",
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let written = std::fs::read_to_string(out.path().join("charging.v1.rs")).unwrap();
    let expected = isml_schema::Builder::new()
        .include(root().join("schemas"))
        .file(charging())
        .generate()
        .unwrap();
    let (_, code_text) = expected.iter().find(|(p, _)| p == "charging.v1").unwrap();
    assert_eq!(&written, code_text);
    assert!(out.path().join("common.rs").exists());
    assert!(stdout(&o).contains("charging.v1.rs"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.isml"),
        "package p; message M { x: u9 = 1; }",
    )
    .unwrap();
    let o = run(&["gen", "bad.isml", "--out", "out"], b"", Some(dir.path()));
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("unknown type") || stderr(&o).contains("u9"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn describe_reports_sizes_and_flags_the_mtu() {
    let o = run(
        &["describe", "--mtu", "64", "charging.isml"],
        b"",
        Some(&root().join("schemas")),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    insta::assert_snapshot!("describe_charging", stdout(&o));
}

#[test]
fn describe_marks_once_methods() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat/safe_mark_method_once");
    let o = run(&["describe", "new.isml"], b"", Some(&dir));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let row = |method: &str| {
        out.lines()
            .find(|l| l.starts_with("shop.v1.Shop") && l.contains(method))
            .unwrap_or_else(|| panic!("no row for {method}:\n{out}"))
            .to_string()
    };
    assert!(row("place").contains("unary, once"), "{out}");
    assert!(!row("watch").contains("once"), "{out}");
    assert!(out.contains("once: `[once]`"), "{out}");
    // The same fingerprint as without `[once]`.
    let old = run(&["describe", "old.isml"], b"", Some(&dir));
    let fp = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("shop.v1.Shop") && l.contains("place"))
            .and_then(|l| l.split_whitespace().nth_back(0))
            .map(str::to_owned)
    };
    assert_eq!(fp(&stdout(&old)), fp(&out));
    assert!(fp(&out).is_some_and(|f| f.len() == 16));
}

#[test]
fn completions_and_help() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = run(&["completions", shell], b"", None);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains("isml"), "{shell}");
    }
    let o = run(&["--help"], b"", None);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("Examples:") && stdout(&o).contains("Exit codes:"));
    let o = run(&["encode", "--help"], b"", None);
    assert!(stdout(&o).contains("Examples:"));
    let o = run(&["encode"], b"", None);
    assert_eq!(code(&o), 2, "usage errors exit 2");
    let o = run(&["decode", "--schema", "x.isml"], b"", None);
    assert_eq!(code(&o), 2, "--message or --frame is required");
}

// ---------------------------------------------------------------------------
// fmt
// ---------------------------------------------------------------------------

#[test]
fn fmt_formats_in_place_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fmt");
    for f in ["comments.isml", "other.isml"] {
        std::fs::copy(fixtures.join(f), dir.path().join(f)).unwrap();
    }
    let original = std::fs::read_to_string(dir.path().join("comments.isml")).unwrap();
    let o = run(&["fmt", "--check", "comments.isml"], b"", Some(dir.path()));
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o), "would reformat: comments.isml\n");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("comments.isml")).unwrap(),
        original,
        "--check changes nothing"
    );
    let o = run(&["fmt", "comments.isml"], b"", Some(dir.path()));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let formatted = std::fs::read_to_string(dir.path().join("comments.isml")).unwrap();
    insta::assert_snapshot!("fmt_comments", formatted);
    // Every comment survives, and the meaning is unchanged.
    for line in original.lines() {
        if let Some(i) = line.find("//").or(line.find("/*")) {
            let c = line[i..].trim_end();
            assert!(formatted.contains(c), "lost {c:?}");
        }
    }
    let o = run(&["fmt", "--check", "comments.isml"], b"", Some(dir.path()));
    assert_eq!((code(&o), stdout(&o)), (0, String::new()), "idempotent");
    let before = isml_schema::load(&isml_schema::LoadOptions::new([
        fixtures.join("comments.isml")
    ]))
    .unwrap();
    let after = isml_schema::load(&isml_schema::LoadOptions::new([dir
        .path()
        .join("comments.isml")]))
    .unwrap();
    assert_eq!(before.dump(), after.dump());
    // stdin to stdout.
    let o = run(&["fmt", "-"], original.as_bytes(), Some(dir.path()));
    assert_eq!(stdout(&o), formatted);
    // A syntax error is reported like `check`, and the file is left alone.
    std::fs::write(dir.path().join("bad.isml"), "package p; message {").unwrap();
    let o = run(&["fmt", "bad.isml"], b"", Some(dir.path()));
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--> bad.isml:1:"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("bad.isml")).unwrap(),
        "package p; message {"
    );
}

#[test]
fn check_and_fmt_accept_relative_and_fully_qualified_names() {
    // The two-package example names `fleet.geo` and `common` types relatively.
    let schemas = root().join("schemas");
    let o = run(&["check", "site.isml"], b"", Some(&schemas));
    assert_eq!((code(&o), stderr(&o)), (0, String::new()));
    let o = run(
        &["fmt", "--check", "site.isml", "geo.isml"],
        b"",
        Some(&schemas),
    );
    assert_eq!((code(&o), stdout(&o)), (0, String::new()));
    // `fmt` keeps a leading dot, wherever a type is written.
    let messy = "package a.b;\nmessage M{x:.a.c.T=1;y:list< .a.c.T >=2;}\nservice S{rpc go(.a.b.M)->stream .a.b.M=1;}\n";
    let o = run(&["fmt", "-"], messy.as_bytes(), None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "package a.b;\n\nmessage M {\n    x: .a.c.T       = 1;\n    y: list<.a.c.T> = 2;\n}\n\nservice S {\n    rpc go(.a.b.M) -> stream .a.b.M = 1;\n}\n"
    );
    // A space after the dot is not a name.
    let o = run(
        &["fmt", "-"],
        b"package p; message M { x: . u8 = 1; }",
        None,
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with("error: expected a name, found whitespace\n --> <stdin>:1:28\n"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------------------
// compat
// ---------------------------------------------------------------------------

#[test]
fn compat_fixture_pairs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(cases.len() >= 15);
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let o = run(&["compat", "old.isml", "new.isml"], b"", Some(&case));
        no_panic(&o);
        let expected_code = if name.starts_with("safe_") { 0 } else { 1 };
        assert_eq!(
            code(&o),
            expected_code,
            "{name}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        if name.starts_with("breaking_") {
            assert!(
                stdout(&o).contains("old.isml:") && stdout(&o).contains("new.isml:"),
                "{name}: both locations"
            );
        }
        insta::assert_snapshot!(
            format!("compat_{name}"),
            format!("{}exit: {}\n", stdout(&o), code(&o))
        );
    }
}

#[test]
fn compat_allow_bounds_turns_bound_changes_into_warnings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compat");
    let bound_pairs = [
        "breaking_tighten_max_len",
        "breaking_loosen_max_len",
        "breaking_tighten_range",
        "breaking_loosen_range",
        "breaking_shift_range",
    ];
    for name in bound_pairs {
        let case = dir.join(name);
        // Breaking by default...
        let o = run(&["compat", "old.isml", "new.isml"], b"", Some(&case));
        assert_eq!(code(&o), 1, "{name}: {}", stdout(&o));
        assert!(!stdout(&o).contains("warning:"), "{name}: {}", stdout(&o));
        // ...warnings with the flag: the same changes, and exit 0.
        let o = run(
            &["compat", "--allow-bounds", "old.isml", "new.isml"],
            b"",
            Some(&case),
        );
        no_panic(&o);
        assert_eq!(code(&o), 0, "{name}: {}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        let changes: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
        let (summary, changes) = changes.split_last().expect("a summary line");
        assert!(!changes.is_empty(), "{name}");
        for line in changes {
            assert!(
                line.starts_with("warning: field `meter.v1.Reading."),
                "{name}: {line}"
            );
        }
        assert!(summary.ends_with(": compatible"), "{name}: {summary}");
        if name == "breaking_shift_range" {
            insta::assert_snapshot!(
                "compat_allow_bounds_shift_range",
                format!("{out}exit: {}\n", code(&o))
            );
        }
    }

    // The flag does not excuse anything else: a type change still breaks.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("old.isml"),
        "package p; message M [id = 1] { a: u8 = 1 [range = 0..=9]; b: u8 = 2; }",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("new.isml"),
        "package p; message M [id = 1] { a: u8 = 1 [range = 0..=5]; b: u16 = 2; }",
    )
    .unwrap();
    let o = run(
        &["compat", "--allow-bounds", "old.isml", "new.isml"],
        b"",
        Some(tmp.path()),
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("breaking: field `p.M.b` (tag 2) changed type"),
        "{out}"
    );
    assert!(
        out.contains("\nwarning: field `p.M.a` (tag 1): `range` tightened from 0..=9 to 0..=5"),
        "{out}"
    );
    assert!(
        out.ends_with("1 breaking change, 1 warning, 0 safe changes: NOT compatible\n"),
        "{out}"
    );
}

#[test]
fn compat_of_identical_versions_is_clean() {
    let o = run(&["compat", &charging(), &charging()], b"", None);
    assert_eq!(code(&o), 0);
    assert_eq!(
        stdout(&o),
        "0 breaking changes, 0 safe changes: compatible\n"
    );
}

// ---------------------------------------------------------------------------
// a closed standard output
// ---------------------------------------------------------------------------

#[test]
fn a_closed_stdout_is_not_an_error_for_any_command() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fmt");
    std::fs::copy(
        fixtures.join("comments.isml"),
        dir.path().join("comments.isml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.isml"),
        "package p;\nmessage M { x: u9 = 1; }\n",
    )
    .unwrap();
    let unformatted = std::fs::read(fixtures.join("comments.isml")).unwrap();
    let report = encode(&["--message", "StatusReport", "--hex"], REPORT);
    let frame = encode(&["--message", "StatusReport", "--frame", "--hex"], REPORT);
    let charging = charging();
    let schemas = root().join("schemas").display().to_string();
    let out_dir = dir.path().join("out").display().to_string();
    let breaking = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat/breaking_change_field_type")
        .display()
        .to_string();
    let old = format!("{breaking}/old.isml");
    let new = format!("{breaking}/new.isml");
    // (arguments, standard input, the exit code the command has anyway)
    let cases: Vec<(Vec<&str>, &[u8], i32)> = vec![
        (vec!["check", "--format", "json", &charging], b"", 0),
        (vec!["check", "--format", "json", "bad.isml"], b"", 1),
        (vec!["fmt", "-"], &unformatted, 0),
        (vec!["fmt", "--check", "comments.isml"], b"", 1),
        (
            vec!["gen", "-I", &schemas, &charging, "--out", &out_dir],
            b"",
            0,
        ),
        (
            vec!["encode", "--schema", &charging, "--message", "StatusReport"],
            REPORT.as_bytes(),
            0,
        ),
        (
            vec![
                "encode",
                "--schema",
                &charging,
                "--message",
                "StatusReport",
                "--frame",
                "--hex",
            ],
            REPORT.as_bytes(),
            0,
        ),
        (
            vec![
                "decode",
                "--schema",
                &charging,
                "--message",
                "StatusReport",
                "--hex",
                "--pretty",
            ],
            &report.stdout,
            0,
        ),
        (
            vec!["decode", "--schema", &charging, "--frame", "--hex"],
            &frame.stdout,
            0,
        ),
        (vec!["compat", &charging, &charging], b"", 0),
        (vec!["compat", &old, &new], b"", 1),
        (vec!["describe", "--mtu", "64", &charging], b"", 0),
        (vec!["completions", "bash"], b"", 0),
        (vec!["--help"], b"", 0),
        (vec!["decode", "--help"], b"", 0),
        (vec!["--version"], b"", 0),
    ];
    for (args, stdin, want) in cases {
        // The command really writes something when stdout is open...
        let open = run(&args, stdin, Some(dir.path()));
        assert_eq!(code(&open), want, "{args:?}: {}", stderr(&open));
        assert!(!open.stdout.is_empty(), "{args:?} prints nothing");
        // ...and with it closed, it exits the same way, quietly.
        let closed = run_stdout_closed(&args, stdin, Some(dir.path()));
        no_panic(&closed);
        assert_eq!(code(&closed), want, "{args:?}: {}", stderr(&closed));
        assert_eq!(stderr(&closed), stderr(&open), "{args:?}");
    }
}
