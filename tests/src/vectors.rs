//! The wire-format test-vector files (`tests/vectors/*.json`, format in
//! `tests/vectors/README.md`) and the mapping of their JSON to runtime types.

use std::path::{Path, PathBuf};

use isml_runtime::wire::{CallHeader, ControlOp, DecodeError, FrameHeader, FrameKind};
use serde_json::Value;

/// The directory holding the vector files.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

/// A loaded vector file.
#[derive(Debug, Clone)]
pub struct VectorFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its `vectors` array.
    pub vectors: Vec<Value>,
}

/// Reads and checks the envelope of a vector file (`{"version": 1, "vectors": [...]}`).
pub fn load(file_name: &str) -> Result<VectorFile, String> {
    let path = vectors_dir().join(file_name);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if json.get("version").and_then(Value::as_u64) != Some(1) {
        return Err(format!("{}: `version` is not 1", path.display()));
    }
    let Some(vectors) = json.get("vectors").and_then(Value::as_array) else {
        return Err(format!("{}: no `vectors` array", path.display()));
    };
    Ok(VectorFile {
        path,
        vectors: vectors.clone(),
    })
}

/// The README name of a decoding error (below any field context), as used in
/// the `error` field of invalid vectors. Errors the README does not list get
/// their own descriptive names so a mismatch message stays readable.
pub fn error_name(e: &DecodeError) -> &'static str {
    match e.root() {
        DecodeError::UnexpectedEnd { .. } => "unexpected_end",
        DecodeError::VarintOverflow { .. } => "varint_overflow",
        DecodeError::NonCanonicalVarint { .. } => "non_canonical_varint",
        DecodeError::LengthOutOfBounds { .. } => "length_out_of_bounds",
        DecodeError::IntegerOutOfRange { .. } => "integer_out_of_range",
        DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
        DecodeError::InvalidBool { .. } => "invalid_bool",
        DecodeError::DepthExceeded { .. } => "depth_exceeded",
        DecodeError::FrameTooLarge { .. } => "frame_too_large",
        DecodeError::ReservedFlags { .. } => "reserved_flags",
        DecodeError::UnknownLinkOpcode { .. } => "unknown_link_opcode",
        DecodeError::NonCanonicalHeader { .. } => "non_canonical_header",
        DecodeError::InvalidTypeId { .. } => "invalid_type_id",
        DecodeError::BadPresence { .. } => "bad_presence",
        DecodeError::ClassMismatch { .. } => "class_mismatch",
        DecodeError::UnionClassAbsent { .. } => "union_class_absent",
        DecodeError::MapKeyOrder { .. } => "map_key_order",
        DecodeError::ContentLength { .. } => "content_length",
        DecodeError::RaggedList { .. } => "ragged_list",
        DecodeError::MaxLen { .. } => "max_len",
        DecodeError::Range(_) => "range",
        DecodeError::CorruptFrame { .. } => "corrupt_frame",
        DecodeError::UnknownVariant { .. } => "(unlisted) unknown_variant",
        DecodeError::UnknownMessageType { .. } => "(unlisted) unknown_message_type",
        DecodeError::NotAMessage { .. } => "(unlisted) not_a_message",
        _ => "(unlisted) other",
    }
}

/// Every error name the README lists.
pub const ERROR_NAMES: &[&str] = &[
    "unexpected_end",
    "varint_overflow",
    "non_canonical_varint",
    "length_out_of_bounds",
    "integer_out_of_range",
    "invalid_utf8",
    "invalid_bool",
    "depth_exceeded",
    "frame_too_large",
    "reserved_flags",
    "unknown_link_opcode",
    "non_canonical_header",
    "invalid_type_id",
    "bad_presence",
    "class_mismatch",
    "union_class_absent",
    "map_key_order",
    "content_length",
    "ragged_list",
    "max_len",
    "range",
    "corrupt_frame",
];

/// The frame kind of a README kind name.
pub fn kind_from_name(name: &str) -> Option<FrameKind> {
    Some(match name {
        "one-way" => FrameKind::OneWay,
        "request" => FrameKind::Request,
        "response" => FrameKind::Response,
        "error" => FrameKind::Error,
        "stream-item" => FrameKind::StreamItem,
        "stream-end" => FrameKind::StreamEnd,
        "cancel" => FrameKind::Cancel,
        "ack" => FrameKind::Ack,
        "hello" => FrameKind::Control(ControlOp::Hello),
        "welcome" => FrameKind::Control(ControlOp::Welcome),
        "ping" => FrameKind::Control(ControlOp::Ping),
        "pong" => FrameKind::Control(ControlOp::Pong),
        "close" => FrameKind::Control(ControlOp::Close),
        "credit" => FrameKind::Control(ControlOp::Credit),
        "subscribe" => FrameKind::Control(ControlOp::Subscribe),
        "publish" => FrameKind::Control(ControlOp::Publish),
        "deliver" => FrameKind::Control(ControlOp::Deliver),
        "pubsub-reply" => FrameKind::Control(ControlOp::PubSubReply),
        _ => return None,
    })
}

/// A header from its vector JSON `{"kind", "type_id", "correlation", "call", "seq", "more", "batch"}`.
/// `type_id` and `correlation` must be present exactly for the kinds that carry them;
/// `call` (`{"service", "method", "deadline_ms"}`) only when CALL is set. A `call`
/// on a kind other than a request is taken as it is, so that encoding refuses it.
pub fn header_from_json(v: &Value) -> Result<FrameHeader, String> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("header {v} is not an object"))?;
    let name = obj
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("header {v} has no kind"))?;
    let kind = kind_from_name(name).ok_or_else(|| format!("unknown kind `{name}`"))?;
    let mut h = match kind {
        FrameKind::Ack => FrameHeader::ack(),
        FrameKind::Control(op) => FrameHeader::control(op),
        _ => FrameHeader::cancel(0),
    };
    h.kind = kind;
    match (kind.has_type_id(), obj.get("type_id")) {
        (true, Some(t)) => {
            h.type_id = t
                .as_u64()
                .and_then(|t| u32::try_from(t).ok())
                .ok_or_else(|| format!("bad type_id in {v}"))?;
        }
        (false, None) => {}
        (true, None) => return Err(format!("header {v} needs a type_id")),
        (false, Some(_)) => {
            return Err(format!("header {v} has a type_id its kind does not carry"));
        }
    }
    match (kind.has_correlation(), obj.get("correlation")) {
        (true, Some(c)) => {
            h.correlation = c
                .as_u64()
                .ok_or_else(|| format!("bad correlation in {v}"))?
        }
        (false, None) => {}
        (true, None) => return Err(format!("header {v} needs a correlation")),
        (false, Some(_)) => {
            return Err(format!(
                "header {v} has a correlation its kind does not carry"
            ));
        }
    }
    h.call = match obj.get("call") {
        None => None,
        Some(c) => Some(call_from_json(c)?),
    };
    h.seq = match obj.get("seq") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.as_u64().ok_or_else(|| format!("bad seq in {v}"))?),
    };
    h.more = match obj.get("more") {
        None => false,
        Some(m) => m.as_bool().ok_or_else(|| format!("bad more in {v}"))?,
    };
    h.batch = match obj.get("batch") {
        None => false,
        Some(b) => b.as_bool().ok_or_else(|| format!("bad batch in {v}"))?,
    };
    Ok(h)
}

/// A call header from its vector JSON `{"service", "method", "deadline_ms"}`.
/// The method id is taken as any `u32`, so that a vector outside 1 ..= 65535
/// reaches the encoder, which must refuse it.
pub fn call_from_json(v: &Value) -> Result<CallHeader, String> {
    let field = |key: &str| {
        v.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("call header {v} has no integer `{key}`"))
    };
    let service = field("service")?;
    let method = field("method")?;
    Ok(CallHeader {
        service: u32::try_from(service).map_err(|_| format!("bad service in {v}"))?,
        method: u32::try_from(method).map_err(|_| format!("bad method in {v}"))?,
        deadline_ms: field("deadline_ms")?,
    })
}

/// The vector JSON of a call header.
pub fn call_to_json(c: &CallHeader) -> Value {
    serde_json::json!({
        "service": c.service,
        "method": c.method,
        "deadline_ms": c.deadline_ms,
    })
}

/// The vector JSON of a header.
pub fn header_to_json(h: &FrameHeader) -> Value {
    let mut obj = serde_json::Map::new();
    obj.insert("kind".into(), h.kind.name().into());
    if h.kind.has_type_id() {
        obj.insert("type_id".into(), h.type_id.into());
    }
    if h.kind.has_correlation() {
        obj.insert("correlation".into(), h.correlation.into());
    }
    if let Some(c) = &h.call {
        obj.insert("call".into(), call_to_json(c));
    }
    obj.insert("seq".into(), h.seq.map_or(Value::Null, Value::from));
    obj.insert("more".into(), h.more.into());
    if h.batch {
        obj.insert("batch".into(), true.into());
    }
    Value::Object(obj)
}

/// Decodes a lowercase hex string field of a vector.
pub fn hex_of(v: &Value, key: &str) -> Result<Vec<u8>, String> {
    let s = v
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no `{key}` string"))?;
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(format!("`{key}` is not lowercase hex: {s}"));
    }
    decode_hex(s).ok_or_else(|| format!("`{key}` is not hex: {s}"))
}

/// Decodes a hex string (no separators).
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Lowercase hex of bytes.
pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
