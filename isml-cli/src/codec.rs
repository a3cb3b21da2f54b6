//! `isml encode` and `isml decode`: JSON to bytes and back, through the
//! dynamic codec of `isml_schema::dynamic`.

use std::io::Read as _;

use bytes::BytesMut;
use isml_runtime::wire::{
    ControlOp, ErrorBody, FrameHeader, FrameKind, Limits, Reader, StreamDecoder, put_stream_frame,
};
use isml_schema::Schema;
use isml_schema::dynamic::{self, Descriptor, DynamicError, MessageFactory};

use crate::cli::{DecodeArgs, EncodeArgs, EncodeKind};
use crate::output::outln;
use crate::{Failure, Outcome};

fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex text, ignoring whitespace.
fn unhex(text: &[u8]) -> Result<Vec<u8>, Failure> {
    let mut out = Vec::new();
    let mut high: Option<(u8, usize)> = None;
    for (i, &c) in text.iter().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let Some(v) = (c as char).to_digit(16) else {
            return Err(Failure::invalid(format!(
                "invalid hex input: `{}` at character {} is not a hex digit",
                (c as char).escape_default(),
                i + 1
            )));
        };
        match high.take() {
            None => high = Some((v as u8, i)),
            Some((h, _)) => out.push(h << 4 | v as u8),
        }
    }
    if let Some((_, i)) = high {
        return Err(Failure::invalid(format!(
            "invalid hex input: odd number of hex digits (the last one is at character {})",
            i + 1
        )));
    }
    Ok(out)
}

fn find<'s>(schema: &'s Schema, name: &str) -> Result<Descriptor<'s>, Failure> {
    MessageFactory::new(schema)
        .find_message(name)
        .map_err(|e: DynamicError| Failure::usage(format!("--message: {e}")))
}

pub(crate) fn encode(a: &EncodeArgs) -> Outcome {
    let schema = crate::commands::load(&a.includes, std::slice::from_ref(&a.schema))?;
    let desc = find(&schema, &a.message)?;
    let input = read_stdin()?;
    let text = String::from_utf8(input).map_err(|e| {
        Failure::invalid(format!(
            "the JSON input is not UTF-8 (byte {})",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let value = dynamic::from_json_str(desc, &text)
        .map_err(|e| Failure::invalid(format!("invalid input: {e}")))?;
    let payload = value
        .encode()
        .map_err(|e| Failure::invalid(format!("cannot encode: {e}")))?;
    let bytes = if a.frame {
        let Some(type_id) = desc.type_id() else {
            return Err(Failure::usage(format!(
                "`{}` has no message id, so it cannot be sent in a frame on its own",
                desc.full_name()
            )));
        };
        let correlation = a.correlation.unwrap_or(0);
        if a.kind != EncodeKind::OneWay && a.correlation.is_none() {
            return Err(Failure::usage(
                "--correlation is required for requests, responses and stream items",
            ));
        }
        let mut header = match a.kind {
            EncodeKind::OneWay => FrameHeader::one_way(type_id),
            EncodeKind::Request => FrameHeader::request(type_id, correlation),
            EncodeKind::Response => FrameHeader::response(type_id, correlation),
            EncodeKind::StreamItem => FrameHeader::stream_item(type_id, correlation),
        };
        if let Some(seq) = a.seq {
            header = header.with_seq(seq);
        }
        let mut buf = Vec::new();
        put_stream_frame(&mut buf, &header, &payload, Limits::DEFAULT.max_frame)
            .map_err(|e| Failure::invalid(format!("cannot frame the message: {e}")))?;
        buf
    } else {
        payload
    };
    if a.hex {
        crate::output::write_bytes(format!("{}\n", hex(&bytes)).as_bytes())?;
    } else {
        crate::output::write_bytes(&bytes)?;
    }
    Ok(0)
}

pub(crate) fn decode(a: &DecodeArgs) -> Outcome {
    let schema = crate::commands::load(&a.includes, std::slice::from_ref(&a.schema))?;
    let named = match &a.message {
        Some(name) => Some(find(&schema, name)?),
        None => None,
    };
    let input = read_stdin()?;
    let bytes = if a.hex { unhex(&input)? } else { input };
    if let Some(desc) = named {
        let value = dynamic::decode(desc, &bytes)
            .map_err(|e| Failure::invalid(format!("cannot decode `{}`: {e}", desc.full_name())))?;
        outln!("{}", value.to_json_string(a.pretty))?;
        return Ok(0);
    }
    decode_frames(&schema, &bytes, a.pretty)
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

fn decode_frames(schema: &Schema, bytes: &[u8], pretty: bool) -> Outcome {
    let factory = MessageFactory::new(schema);
    let total = bytes.len();
    let mut buf = BytesMut::from(bytes);
    let mut decoder = StreamDecoder::new(Limits::DEFAULT.max_frame);
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
        let h = frame.header;
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
        if h.more {
            obj.raw("more", "true".into());
        }
        let payload = &frame.payload[..];
        let context = |what: String| Failure::invalid(format!("frame {n} at byte {start}: {what}"));
        let error_body = |obj: &mut Obj| -> Result<(), Failure> {
            let body = ErrorBody::decode(payload).map_err(|e| {
                context(format!(
                    "bad error body (payload at byte {payload_at}): {e}"
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
                    return Err(context(format!(
                        "unknown message type id {} (the schema has: {})",
                        h.type_id,
                        known.join(", ")
                    )));
                };
                obj.str("message", &desc.full_name());
                if h.more {
                    // A fragment: the message continues in the next frame.
                    obj.str("fragment", &hex(payload));
                } else {
                    let value = dynamic::decode(desc, payload).map_err(|e| {
                        context(format!(
                            "cannot decode `{}`: {}",
                            desc.full_name(),
                            e.shifted(payload_at)
                        ))
                    })?;
                    obj.raw("value", value.to_json_string(pretty));
                }
            }
            FrameKind::Error | FrameKind::Control(ControlOp::Close) => error_body(&mut obj)?,
            FrameKind::StreamEnd if !payload.is_empty() => error_body(&mut obj)?,
            FrameKind::Ack => {
                let mut r = Reader::new(payload);
                let acked = r
                    .uvarint()
                    .and_then(|v| r.finish("ack").map(|()| v))
                    .map_err(|e| context(format!("bad ack payload (at byte {payload_at}): {e}")))?;
                obj.raw("ack", acked.to_string());
            }
            _ => {
                if !payload.is_empty() {
                    obj.str("payload", &hex(payload));
                }
            }
        }
        outln!("{}", obj.render(pretty))?;
    }
    if n == 0 {
        return Err(Failure::invalid("no frame in the input"));
    }
    Ok(0)
}
