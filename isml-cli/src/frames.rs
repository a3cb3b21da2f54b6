//! `isml decode --frame`: stream frames (wire format §3) to one JSON object per
//! message. Fragmented messages (§2.6) are joined first, as a receiver does,
//! and decoded once complete.

use bytes::BytesMut;
use isml_runtime::wire::{
    Assembled, ControlOp, ErrorBody, FragmentError, Frame, FrameHeader, FrameKind, Limits, Reader,
    Reassembler, StreamDecoder,
};
use isml_schema::Schema;
use isml_schema::dynamic::{self, MessageFactory};

use crate::output::outln;
use crate::{Failure, Outcome};

/// Largest joined message accepted: the reference runtime's default maximum
/// message size, which is its frame limit (§2.6 rule 6).
const MAX_MESSAGE: usize = Limits::DEFAULT.max_frame;

/// Where a message came from in the input, for output and error messages.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// One whole frame.
    Frame {
        /// 1-based frame number.
        n: usize,
        /// Byte offset of the frame's length prefix.
        start: usize,
        /// Byte offset of its payload.
        payload_at: usize,
    },
    /// Fragments joined: frames `first` to `last`, `count` of them (complete
    /// frames of other messages may have come between).
    Joined {
        first: usize,
        start: usize,
        last: usize,
        count: usize,
    },
}

impl Origin {
    fn context(self, what: impl std::fmt::Display) -> Failure {
        Failure::invalid(match self {
            Origin::Frame { n, start, .. } => format!("frame {n} at byte {start}: {what}"),
            Origin::Joined {
                first,
                start,
                last,
                count,
            } => format!(
                "frames {first} to {last} (one message in {count} fragments, the first at byte {start}): {what}"
            ),
        })
    }

    /// How offsets in `what` relate to the input.
    fn payload_offsets(self) -> String {
        match self {
            Origin::Frame { payload_at, .. } => format!("payload at byte {payload_at}"),
            Origin::Joined { .. } => "offsets within the joined payload".into(),
        }
    }
}

/// The first fragment of the message in progress.
#[derive(Debug, Clone, Copy)]
struct Opened {
    first: usize,
    start: usize,
    count: usize,
}

/// The kind, with the type id and correlation id when the kind carries them:
/// `request (type 5, correlation 7)`, `error (correlation 3)`, `ping`.
fn describe(h: &FrameHeader) -> String {
    let mut ids = Vec::new();
    if h.kind.has_type_id() {
        ids.push(format!("type {}", h.type_id));
    }
    if h.kind.has_correlation() {
        ids.push(format!("correlation {}", h.correlation));
    }
    if ids.is_empty() {
        h.kind.name().to_string()
    } else {
        format!("{} ({})", h.kind.name(), ids.join(", "))
    }
}

pub(crate) fn decode_frames(schema: &Schema, bytes: &[u8], pretty: bool) -> Outcome {
    let factory = MessageFactory::new(schema);
    let total = bytes.len();
    let mut buf = BytesMut::from(bytes);
    let mut decoder = StreamDecoder::new(Limits::DEFAULT.max_frame);
    let mut joiner = Reassembler::new(MAX_MESSAGE);
    let mut opened: Option<Opened> = None;
    let mut n = 0;
    while !buf.is_empty() {
        let start = total - buf.len();
        n += 1;
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(Failure::invalid(format!(
                    "frame {n} at byte {start} is truncated: {} byte(s) left, fewer than its length prefix announces",
                    total - start
                )));
            }
            Err(e) => {
                return Err(Failure::invalid(format!(
                    "frame {n} at byte {start}: {e} (offsets within the frame, after its length prefix)"
                )));
            }
        };
        let payload_at = total - buf.len() - frame.payload.len();
        let header = frame.header;
        let assembled = joiner.push(frame).map_err(|e| {
            let began = opened.map_or(String::new(), |o| {
                format!(" begun by frame {} at byte {}", o.first, o.start)
            });
            Failure::invalid(match e {
                FragmentError::Interleaved { open, got } => format!(
                    "frame {n} at byte {start}: a fragment (MORE set) of {} arrived while the fragmented {}{began} was incomplete; only one fragmented message may be in progress at a time (wire format §2.6)",
                    describe(&got),
                    describe(&open),
                ),
                FragmentError::TooLarge { len, max } => format!(
                    "frame {n} at byte {start}: the fragmented {}{began} grows to {len} bytes, more than the maximum message size of {max} bytes",
                    describe(&header),
                ),
                other => format!("frame {n} at byte {start}: {other}"),
            })
        })?;
        let frame = match assembled {
            Assembled::Pending => {
                match &mut opened {
                    Some(o) => o.count += 1,
                    None => {
                        opened = Some(Opened {
                            first: n,
                            start,
                            count: 1,
                        })
                    }
                }
                continue;
            }
            Assembled::Complete(frame) => frame,
        };
        // A complete frame either ends the message in progress or passes by it.
        let origin = match opened {
            Some(o) if joiner.in_progress().is_none() => {
                opened = None;
                Origin::Joined {
                    first: o.first,
                    start: o.start,
                    last: n,
                    count: o.count + 1,
                }
            }
            _ => Origin::Frame {
                n,
                start,
                payload_at,
            },
        };
        outln!("{}", render(schema, &factory, &frame, origin, pretty)?)?;
    }
    if let (Some(h), Some(o)) = (joiner.in_progress(), opened) {
        return Err(Failure::invalid(format!(
            "the input ends inside a fragmented {}: frame {} at byte {} began it, {} fragment(s) with {} byte(s) of payload arrived, and no last fragment (MORE clear) followed",
            describe(h),
            o.first,
            o.start,
            o.count,
            joiner.buffered()
        )));
    }
    if n == 0 {
        return Err(Failure::invalid("no frame in the input"));
    }
    Ok(0)
}

/// One complete message as a JSON object: the header, then what the payload holds.
fn render(
    schema: &Schema,
    factory: &MessageFactory<'_>,
    frame: &Frame,
    origin: Origin,
    pretty: bool,
) -> Result<String, Failure> {
    let h = frame.header;
    let payload = &frame.payload[..];
    let mut obj = Obj {
        entries: Vec::new(),
    };
    obj.str("kind", h.kind.name());
    if h.kind.has_type_id() {
        obj.raw("type_id", h.type_id.to_string());
    }
    if h.kind.has_correlation() {
        obj.raw("correlation", h.correlation.to_string());
    }
    if let Some(seq) = h.seq {
        obj.raw("seq", seq.to_string());
    }
    if let Origin::Joined { count, .. } = origin {
        obj.raw("fragments", count.to_string());
    }
    let error_body = |obj: &mut Obj| -> Result<(), Failure> {
        let body = ErrorBody::decode(payload).map_err(|e| {
            origin.context(format!(
                "bad error body ({}): {e}",
                origin.payload_offsets()
            ))
        })?;
        obj.raw("code", body.code.to_string());
        obj.str("message", body.message);
        Ok(())
    };
    match h.kind {
        k if k.has_type_id() => {
            let Some(desc) = factory.by_type_id(h.type_id) else {
                let known: Vec<String> = schema
                    .types
                    .iter()
                    .filter_map(|t| t.message_id().map(|i| format!("{i} {}", t.full_name())))
                    .collect();
                return Err(origin.context(format!(
                    "unknown message type id {} (the schema has: {})",
                    h.type_id,
                    known.join(", ")
                )));
            };
            obj.str("message", &desc.full_name());
            let value = dynamic::decode(desc, payload).map_err(|e| match origin {
                Origin::Frame { payload_at, .. } => origin.context(format!(
                    "cannot decode `{}`: {}",
                    desc.full_name(),
                    e.shifted(payload_at)
                )),
                Origin::Joined { .. } => origin.context(format!(
                    "cannot decode `{}` ({}): {e}",
                    desc.full_name(),
                    origin.payload_offsets()
                )),
            })?;
            obj.raw("value", value.to_json_string(pretty));
        }
        FrameKind::Error | FrameKind::Control(ControlOp::Close) => error_body(&mut obj)?,
        FrameKind::StreamEnd if !payload.is_empty() => error_body(&mut obj)?,
        FrameKind::Ack => {
            let mut r = Reader::new(payload);
            let acked = r
                .uvarint()
                .and_then(|v| r.finish("ack").map(|()| v))
                .map_err(|e| {
                    origin.context(format!(
                        "bad ack payload ({}): {e}",
                        origin.payload_offsets()
                    ))
                })?;
            obj.raw("ack", acked.to_string());
        }
        _ => {
            if !payload.is_empty() {
                obj.str("payload", &crate::codec::hex(payload));
            }
        }
    }
    Ok(obj.render(pretty))
}

/// A JSON object written key by key, in order (serde_json's map would sort keys).
struct Obj {
    entries: Vec<(String, String)>,
}

impl Obj {
    fn raw(&mut self, key: &str, json: String) {
        self.entries.push((key.to_string(), json));
    }

    fn str(&mut self, key: &str, s: &str) {
        let v = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
        self.raw(key, v);
    }

    fn render(&self, pretty: bool) -> String {
        let key = |k: &str| serde_json::to_string(k).unwrap_or_default();
        if !pretty {
            let body: Vec<String> = self
                .entries
                .iter()
                .map(|(k, v)| format!("{}:{v}", key(k)))
                .collect();
            return format!("{{{}}}", body.join(","));
        }
        let body: Vec<String> = self
            .entries
            .iter()
            .map(|(k, v)| format!("  {}: {}", key(k), v.replace('\n', "\n  ")))
            .collect();
        format!("{{\n{}\n}}", body.join(",\n"))
    }
}
