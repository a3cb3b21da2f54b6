//! Checks fragment reassembly (wire format §2.6) against
//! `tests/vectors/fragments-v1.json` (format in `tests/vectors/README.md`),
//! produced by the independent reference implementation.
//!
//! Every vector's byte stream goes through a [`StreamDecoder`] (and must give
//! exactly the vector's frames), then frame by frame through a
//! [`Reassembler`] of the vector's maximum message size: the messages it
//! delivers, the frame at which it delivers each, and the error it reports (or
//! the message still in progress at the end of the stream, which is
//! *truncated*) must be the vector's.
//!
//! A vector with an `ambiguity` field depends on a reading of §2.6 the
//! document leaves open; its failure message quotes the reading taken, so
//! states. Only the vectors on the call header (§2.7) of later fragments
//! have one: the call header is not part of the key, and the joined message
//! keeps the first fragment's.

use bytes::BytesMut;
use isml_runtime::wire::{
    Assembled, FragmentError, Frame, FrameHeader, Limits, Reassembler, StreamDecoder,
    put_stream_frame,
};
use isml_tests::vectors::{encode_hex, header_from_json, hex_of, load};
use serde_json::Value;

const FILE: &str = "fragments-v1.json";

type Check = Result<(), String>;

/// A message as delivered: the index of the frame that completed it, and the frame.
#[derive(Debug, PartialEq)]
struct Delivered {
    at: usize,
    frame: Frame,
}

/// How a sequence of frames ended in error, in the terms of the vector file.
#[derive(Debug, PartialEq)]
enum Failure {
    /// `FragmentError::Interleaved` at frame `frame`.
    Interleaved {
        frame: usize,
        open: FrameHeader,
        got: FrameHeader,
    },
    /// `FragmentError::TooLarge` at frame `frame`.
    TooLarge {
        frame: usize,
        len: usize,
        max: usize,
    },
    /// The stream ended after `frames` frames with a message in progress.
    Truncated { frames: usize, open: FrameHeader },
    /// A `FragmentError` this test does not know (the enum is non-exhaustive).
    Other { frame: usize, error: String },
}

#[derive(Debug, PartialEq)]
struct Outcome {
    delivered: Vec<Delivered>,
    failure: Option<Failure>,
}

fn usize_of(v: &Value, key: &str) -> Result<usize, String> {
    v.get(key)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| format!("no integer `{key}` in {v}"))
}

fn frame_of(v: &Value) -> Result<Frame, String> {
    Ok(Frame::new(
        header_from_json(&v["header"])?,
        hex_of(v, "payload")?,
    ))
}

/// The vector's input frames, from its `frames` array.
fn frames_of(v: &Value) -> Result<Vec<Frame>, String> {
    v.get("frames")
        .and_then(Value::as_array)
        .ok_or("no `frames` array")?
        .iter()
        .map(frame_of)
        .collect()
}

/// What the vector says the reassembler delivers and reports.
fn expected_outcome(v: &Value, frames: &[Frame]) -> Result<Outcome, String> {
    let header_at = |i: usize| {
        frames
            .get(i)
            .map(|f| f.header)
            .ok_or_else(|| format!("frame index {i} out of range"))
    };
    let mut delivered = Vec::new();
    for m in v
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("no `messages` array")?
    {
        let parts = m
            .get("fragments")
            .and_then(Value::as_array)
            .ok_or("message without `fragments`")?;
        let parts = parts
            .iter()
            .map(|p| {
                p.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| format!("bad `fragments` entry {p}"))
            })
            .collect::<Result<Vec<usize>, String>>()?;
        let (&first, &at) = parts.first().zip(parts.last()).ok_or("empty `fragments`")?;
        let frame = frame_of(m)?;
        // The vector is self-consistent (§2.6 rule 4): the message is its
        // fragments joined, under the first one's header with MORE cleared.
        let mut joined = Vec::new();
        for &i in &parts {
            joined.extend_from_slice(&frames.get(i).ok_or("bad `fragments`")?.payload);
        }
        let mut head = header_at(first)?;
        head.more = false;
        if frame.header != head || frame.payload[..] != joined[..] {
            return Err(format!(
                "vector: message {frame:?} is not its fragments {parts:?} joined"
            ));
        }
        delivered.push(Delivered { at, frame });
    }
    let failure = match v.get("error") {
        None => None,
        Some(e) => {
            let frame = usize_of(e, "frame")?;
            let open = header_at(usize_of(e, "open")?)?;
            Some(match e.get("kind").and_then(Value::as_str) {
                Some("interleaved") => Failure::Interleaved {
                    frame,
                    open,
                    got: header_at(frame)?,
                },
                Some("too_large") => Failure::TooLarge {
                    frame,
                    len: usize_of(e, "len")?,
                    max: usize_of(v, "max_message")?,
                },
                Some("truncated") => Failure::Truncated {
                    frames: frame,
                    open,
                },
                other => return Err(format!("unknown error kind {other:?}")),
            })
        }
    };
    Ok(Outcome { delivered, failure })
}

/// Decodes the vector's byte stream (§3) into frames, all of it.
fn decode_stream(hex: &[u8]) -> Result<Vec<Frame>, String> {
    let mut dec = StreamDecoder::new(Limits::DEFAULT.max_frame);
    let mut buf = BytesMut::from(hex);
    let mut frames = Vec::new();
    while let Some(f) = dec
        .decode(&mut buf)
        .map_err(|e| format!("stream decode: {e}"))?
    {
        frames.push(f);
    }
    if buf.is_empty() {
        Ok(frames)
    } else {
        Err(format!(
            "stream decode: {} bytes left after the last frame",
            buf.len()
        ))
    }
}

/// Pushes the frames through a reassembler; stops at the first error, as a
/// receiver closes the connection there.
fn reassemble(frames: Vec<Frame>, max_message: usize) -> Outcome {
    let mut joiner = Reassembler::new(max_message);
    let mut delivered = Vec::new();
    let count = frames.len();
    for (at, frame) in frames.into_iter().enumerate() {
        match joiner.push(frame) {
            Ok(Assembled::Complete(frame)) => delivered.push(Delivered { at, frame }),
            Ok(Assembled::Pending) => {}
            Err(FragmentError::Interleaved { open, got }) => {
                let failure = Failure::Interleaved {
                    frame: at,
                    open,
                    got,
                };
                return Outcome {
                    delivered,
                    failure: Some(failure),
                };
            }
            Err(FragmentError::TooLarge { len, max }) => {
                let failure = Failure::TooLarge {
                    frame: at,
                    len,
                    max,
                };
                return Outcome {
                    delivered,
                    failure: Some(failure),
                };
            }
            Err(other) => {
                let failure = Failure::Other {
                    frame: at,
                    error: format!("{other:?}"),
                };
                return Outcome {
                    delivered,
                    failure: Some(failure),
                };
            }
        }
    }
    let failure = joiner.in_progress().map(|open| Failure::Truncated {
        frames: count,
        open: *open,
    });
    Outcome { delivered, failure }
}

fn check_vector(v: &Value) -> Check {
    v.get("description")
        .and_then(Value::as_str)
        .ok_or("no `description`")?;
    let max_message = usize_of(v, "max_message")?;
    let hex = hex_of(v, "hex")?;
    let frames = frames_of(v)?;

    // The two forms of the input agree: encoding the frames gives the stream,
    // and decoding the stream gives the frames.
    let mut encoded = BytesMut::new();
    for f in &frames {
        put_stream_frame(
            &mut encoded,
            &f.header,
            &f.payload,
            Limits::DEFAULT.max_frame,
        )
        .map_err(|e| format!("put_stream_frame: {e}"))?;
    }
    if encoded[..] != hex[..] {
        return Err(format!(
            "put_stream_frame of `frames`: got {}, expected `hex` {}",
            encode_hex(&encoded),
            encode_hex(&hex)
        ));
    }
    let decoded = decode_stream(&hex)?;
    if decoded != frames {
        return Err(format!(
            "stream decode: got {decoded:?}, expected `frames` {frames:?}"
        ));
    }

    let expected = expected_outcome(v, &frames)?;
    let got = reassemble(decoded, max_message);
    if got == expected {
        return Ok(());
    }
    let mut diff = Vec::new();
    if got.delivered != expected.delivered {
        diff.push(format!(
            "delivered: got {:?}, expected {:?}",
            got.delivered, expected.delivered
        ));
    }
    if got.failure != expected.failure {
        diff.push(format!(
            "error: got {:?}, expected {:?}",
            got.failure, expected.failure
        ));
    }
    Err(diff.join("; "))
}

/// Runs every vector; fails with every failing vector, expected against got.
fn run() -> usize {
    let file = load(FILE).unwrap_or_else(|e| panic!("{e}"));
    let mut ran = 0;
    let mut failures = Vec::new();
    for (i, v) in file.vectors.iter().enumerate() {
        let ambiguity = v.get("ambiguity").and_then(Value::as_str);
        ran += 1;
        if let Err(e) = check_vector(v) {
            let mut line = format!("  #{i} {}: {e}", v["description"].as_str().unwrap_or("?"));
            if let Some(a) = ambiguity {
                line.push_str(&format!("\n      (reading taken by the vector: {a})"));
            }
            failures.push(line);
        }
    }
    println!("{}: {ran} vectors", file.path.display());
    assert!(
        failures.is_empty(),
        "{FILE}: the Reassembler disagrees with {} of {ran} vectors \
         (the vectors come from the document, not from the Rust code; which side changes is \
         for the wire-format owner to decide):\n{}",
        failures.len(),
        failures.join("\n")
    );
    ran
}

#[test]
fn fragment_vectors() {
    assert!(run() > 0);
}

/// The file covers what §2.6 is about: every error, and a message of at least
/// two fragments of every frame kind and every link opcode (part of the key,
/// rule 1).
#[test]
fn fragment_file_covers_the_rules() {
    let file = load(FILE).unwrap();
    assert!(
        file.vectors.len() >= 30,
        "only {} vectors",
        file.vectors.len()
    );
    for kind in ["interleaved", "too_large", "truncated"] {
        assert!(
            file.vectors
                .iter()
                .any(|v| v["error"]["kind"].as_str() == Some(kind)),
            "no `{kind}` vector"
        );
    }
    let mut kinds = Vec::new();
    for v in &file.vectors {
        for m in v["messages"].as_array().unwrap() {
            if m["fragments"].as_array().unwrap().len() >= 2 {
                kinds.push(m["header"]["kind"].as_str().unwrap().to_owned());
            }
        }
    }
    for name in [
        "one-way",
        "request",
        "response",
        "error",
        "stream-item",
        "stream-end",
        "cancel",
        "ack",
        "hello",
        "welcome",
        "ping",
        "pong",
        "close",
    ] {
        assert!(
            kinds.iter().any(|k| k == name),
            "no fragmented `{name}` message"
        );
    }
}
