//! Every stored input through its target's check, without libFuzzer: the
//! corpora as a plain test (`cargo test --manifest-path fuzz/Cargo.toml`),
//! for a debugger or a backtrace without the fuzzer's machinery.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        check(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n > 0, "no inputs in {}", dir.display());
}

#[test]
fn stream_frame() {
    replay("stream_frame", isml_fuzz::frames::stream_frame);
}

#[test]
fn serial_frame() {
    replay("serial_frame", isml_fuzz::frames::serial_frame);
}

#[test]
fn message_decode() {
    replay("message_decode", isml_fuzz::messages::message_decode);
}

#[test]
fn handshake() {
    replay("handshake", isml_fuzz::handshake::handshake);
}

#[test]
fn session() {
    replay("session", isml_fuzz::session::session);
}

#[test]
fn schema() {
    replay("schema", isml_fuzz::schema::schema);
}

#[test]
fn text_line() {
    replay("text_line", isml_fuzz::text::text_line);
}
