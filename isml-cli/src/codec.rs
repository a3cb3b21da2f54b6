//! `isml encode` and `isml decode`: JSON to bytes and back, through the
//! dynamic codec of `isml_schema::dynamic`. Frames are read in [`crate::frames`].

use std::io::Read as _;

use isml_runtime::wire::{FrameHeader, Limits, put_stream_frame};
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

pub(crate) fn hex(bytes: &[u8]) -> String {
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
    crate::frames::decode_frames(&schema, &bytes, a.pretty)
}
