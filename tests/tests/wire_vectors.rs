//! Checks the wire codec against the test-vector files (`tests/vectors/README.md`):
//! every valid vector in both directions (encode == `hex`, decode(`hex`) ==
//! `value`), every invalid vector fails with the named error.
//!
//! Both files are required: `handwritten.json` (computed by hand from
//! `docs/wire-format.md`) and `wire-v1.json` (produced by the independent
//! reference implementation).

use std::collections::BTreeMap;

use bytes::BytesMut;
use std::num::NonZeroU64;

use isml_runtime::wire::batch::{BatchItems, batched_len, item_cost, put_item_len};
use isml_runtime::wire::{
    Ack, Addressing, Credit, DEFAULT_MAX_SERIAL_FRAME, DecodeError, ErrorBody, Frame, FrameHeader,
    Limits, Reader, SerialDecoder, SerialFrame, StreamDecoder, cobs_decode, put_serial_frame,
    put_stream_frame, put_stream_head, stream_frame_len, varint, write,
};
use isml_tests::values::{self, VectorType};
use isml_tests::vectors::{
    ERROR_NAMES, decode_hex, encode_hex, error_name, header_from_json, hex_of, load,
};
use serde_json::Value;

type Check = Result<(), String>;

fn expect_eq<T: PartialEq + std::fmt::Debug>(what: &str, actual: T, expected: T) -> Check {
    if actual == expected {
        Ok(())
    } else {
        Err(format!("{what}: got {actual:?}, expected {expected:?}"))
    }
}

fn expect_bytes(what: &str, actual: &[u8], expected: &[u8]) -> Check {
    if actual == expected {
        Ok(())
    } else {
        Err(format!(
            "{what}: got {}, expected {}",
            encode_hex(actual),
            encode_hex(expected)
        ))
    }
}

/// Compares a decoding outcome of an invalid vector with its `error` name.
fn expect_error<T: std::fmt::Debug>(outcome: Result<T, DecodeError>, expected: &str) -> Check {
    match outcome {
        Err(e) if error_name(&e) == expected => Ok(()),
        Err(e) => Err(format!(
            "failed with {} ({e}), expected {expected}",
            error_name(&e)
        )),
        Ok(v) => Err(format!("decoded to {v:?}, expected error {expected}")),
    }
}

fn value_of(v: &Value) -> Result<&Value, String> {
    v.get("value").ok_or_else(|| "no `value`".to_owned())
}

fn u64_of(v: &Value) -> Result<u64, String> {
    value_of(v)?
        .as_u64()
        .ok_or_else(|| format!("`value` {} is not a u64", v["value"]))
}

fn i64_of(v: &Value) -> Result<i64, String> {
    value_of(v)?
        .as_i64()
        .ok_or_else(|| format!("`value` {} is not an i64", v["value"]))
}

/// Decodes with a [`Reader`] and requires the whole input to be used.
fn read_all<'a, T>(
    bytes: &'a [u8],
    f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let v = f(&mut r)?;
    r.finish("vector")?;
    Ok(v)
}

fn check_uvarint(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        expect_error(varint::get(hex, 0), e)?;
        return expect_error(read_all(hex, Reader::uvarint), e);
    }
    let n = u64_of(v)?;
    let mut out = Vec::new();
    write::uvarint(&mut out, n);
    expect_bytes("encode", &out, hex)?;
    expect_eq("uvarint_len", write::uvarint_len(n), hex.len())?;
    expect_eq("varint::get", varint::get(hex, 0), Ok((n, hex.len())))?;
    expect_eq("Reader::uvarint", read_all(hex, Reader::uvarint), Ok(n))
}

fn check_svarint(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        return expect_error(read_all(hex, Reader::i64), e);
    }
    let n = i64_of(v)?;
    let mut out = Vec::new();
    write::svarint(&mut out, n);
    expect_bytes("encode", &out, hex)?;
    expect_eq("svarint_len", write::svarint_len(n), hex.len())?;
    expect_eq("zigzag", varint::unzigzag(varint::zigzag(n)), n)?;
    expect_eq("Reader::i64", read_all(hex, Reader::i64), Ok(n))
}

fn bits_of(v: &Value) -> Result<u64, String> {
    let s = v
        .get("bits")
        .and_then(Value::as_str)
        .ok_or("no `bits` string")?;
    u64::from_str_radix(s, 16).map_err(|e| format!("`bits` {s}: {e}"))
}

fn check_f32(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        return expect_error(read_all(hex, Reader::f32), e);
    }
    let bits = u32::try_from(bits_of(v)?).map_err(|_| "`bits` wider than 32")?;
    let x = f32::from_bits(bits);
    // The vector's `value` and `bits` must agree (NaN payloads only live in `bits`).
    let from_value = values::json_f32(value_of(v)?)?;
    if !(x.is_nan() && from_value.is_nan()) {
        expect_eq("`value` vs `bits`", from_value.to_bits(), bits)?;
    }
    let mut out = Vec::new();
    write::f32(&mut out, x);
    expect_bytes("encode", &out, hex)?;
    expect_eq(
        "decode bits",
        read_all(hex, Reader::f32).map(f32::to_bits),
        Ok(bits),
    )
}

fn check_f64(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        return expect_error(read_all(hex, Reader::f64), e);
    }
    let bits = bits_of(v)?;
    let x = f64::from_bits(bits);
    let from_value = values::json_f64(value_of(v)?)?;
    if !(x.is_nan() && from_value.is_nan()) {
        expect_eq("`value` vs `bits`", from_value.to_bits(), bits)?;
    }
    let mut out = Vec::new();
    write::f64(&mut out, x);
    expect_bytes("encode", &out, hex)?;
    expect_eq(
        "decode bits",
        read_all(hex, Reader::f64).map(f64::to_bits),
        Ok(bits),
    )
}

fn check_header(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        return expect_error(FrameHeader::decode(hex), e);
    }
    let h = header_from_json(value_of(v)?)?;
    let mut out = Vec::new();
    h.encode(&mut out).map_err(|e| format!("encode: {e}"))?;
    expect_bytes("encode", &out, hex)?;
    expect_eq("encoded_len", h.encoded_len(), hex.len())?;
    expect_eq("decode", FrameHeader::decode(hex), Ok((h, hex.len())))
}

fn check_error_body(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        return expect_error(ErrorBody::decode(hex), e);
    }
    let value = value_of(v)?;
    let body = ErrorBody {
        code: value["code"].as_u64().ok_or("bad `code`")?,
        message: value["message"].as_str().ok_or("bad `message`")?,
    };
    let mut out = Vec::new();
    body.encode(&mut out);
    expect_bytes("encode", &out, hex)?;
    expect_eq("encoded_len", body.encoded_len(), hex.len())?;
    expect_eq("decode", ErrorBody::decode(hex), Ok(body))
}

fn check_ack(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        return expect_error(Ack::decode(hex), e);
    }
    let ack = Ack {
        received: v["value"]["received"].as_u64().ok_or("received")?,
    };
    let mut out = Vec::new();
    ack.encode(&mut out);
    expect_bytes("encode", &out, hex)?;
    expect_eq("encoded_len", ack.encoded_len(), hex.len())?;
    expect_eq("decode", Ack::decode(hex), Ok(ack))
}

fn check_credit(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        return expect_error(Credit::decode(hex), e);
    }
    let value = value_of(v)?;
    let bytes = value["bytes"].as_u64().ok_or("bad `bytes`")?;
    let credit = Credit {
        correlation: value["correlation"].as_u64().ok_or("bad `correlation`")?,
        bytes: NonZeroU64::new(bytes).ok_or("a valid credit vector of 0 bytes")?,
    };
    let mut out = Vec::new();
    credit.encode(&mut out);
    expect_bytes("encode", &out, hex)?;
    expect_eq("encoded_len", credit.encoded_len(), hex.len())?;
    expect_eq("decode", Credit::decode(hex), Ok(credit))
}

/// A batch payload (§2.7): its items, in order, and what they cost.
fn check_batch(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    let decoded: Result<Vec<&[u8]>, DecodeError> = BatchItems::new(hex)
        .map(|r| r.map(|range| &hex[range]))
        .collect();
    if let Some(e) = error {
        return expect_error(decoded, e);
    }
    let value = value_of(v)?;
    let items = value["items"]
        .as_array()
        .ok_or("bad `items`")?
        .iter()
        .map(|i| {
            let s = i.as_str().ok_or("an item that is not a hex string")?;
            decode_hex(s).ok_or_else(|| format!("item {s} is not hex"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for item in &items {
        put_item_len(&mut out, item.len());
        out.extend_from_slice(item);
    }
    expect_bytes("encode", &out, hex)?;
    let lens: usize = items.iter().map(|i| batched_len(i.len())).sum();
    expect_eq("batched_len", lens, hex.len())?;
    let want: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
    expect_eq("decode", decoded, Ok(want))?;
    let cost: u64 = items.iter().map(|i| item_cost(i.len())).sum();
    expect_eq("cost", Some(cost), value["cost"].as_u64())
}

/// Feeds a whole invalid input to a stream decoder: the first error counts; a
/// decoder still waiting for bytes at the end of the input is `unexpected_end`.
fn stream_outcome(hex: &[u8], max_frame: usize) -> Result<Vec<Frame>, DecodeError> {
    let mut dec = StreamDecoder::new(max_frame);
    let mut buf = BytesMut::from(hex);
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut buf)? {
        frames.push(f);
    }
    if buf.is_empty() {
        Ok(frames)
    } else {
        Err(DecodeError::UnexpectedEnd {
            at: hex.len(),
            needed: 1,
        })
    }
}

fn check_stream_frame(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    if let Some(e) = error {
        // Invalid stream vectors carry the receiver's limit.
        let max = match v.get("max_frame") {
            None => Limits::DEFAULT.max_frame,
            Some(m) => m
                .as_u64()
                .and_then(|m| usize::try_from(m).ok())
                .ok_or_else(|| format!("bad max_frame {m}"))?,
        };
        return expect_error(stream_outcome(hex, max), e);
    }
    let value = value_of(v)?;
    let h = header_from_json(&value["header"])?;
    let payload = hex_of(value, "payload")?;
    let max = Limits::DEFAULT.max_frame;
    let mut out = BytesMut::new();
    put_stream_frame(&mut out, &h, &payload, max).map_err(|e| format!("encode: {e}"))?;
    expect_bytes("put_stream_frame", &out, hex)?;
    let mut head = Vec::new();
    put_stream_head(&mut head, &h, payload.len(), max).map_err(|e| format!("encode: {e}"))?;
    head.extend_from_slice(&payload);
    expect_bytes("put_stream_head + payload", &head, hex)?;
    expect_eq(
        "stream_frame_len",
        stream_frame_len(&h, payload.len()),
        hex.len(),
    )?;
    let frame = Frame::new(h, payload);
    expect_eq(
        "Frame::len",
        frame.len() + varint::len(frame.len() as u64 - 1),
        hex.len(),
    )?;
    expect_eq("decode", stream_outcome(hex, max), Ok(vec![frame]))
}

fn serial_addressing(v: &Value) -> Result<(Addressing, Option<u8>), String> {
    // Invalid serial vectors say whether the receiver expects an address byte.
    if let Some(addressed) = v.get("addressed") {
        let addressed = addressed.as_bool().ok_or("bad `addressed`")?;
        let addressing = if addressed {
            Addressing::Any
        } else {
            Addressing::None
        };
        return Ok((addressing, None));
    }
    match v.get("value").and_then(|x| x.get("address")) {
        None | Some(Value::Null) => Ok((Addressing::None, None)),
        Some(a) => {
            let a = a
                .as_u64()
                .and_then(|a| u8::try_from(a).ok())
                .ok_or_else(|| format!("bad address {a}"))?;
            Ok((Addressing::Any, Some(a)))
        }
    }
}

/// Feeds a whole input to a serial decoder; the first error counts.
fn serial_outcome(hex: &[u8], addressing: Addressing) -> Result<Vec<SerialFrame>, DecodeError> {
    let mut dec = SerialDecoder::new(DEFAULT_MAX_SERIAL_FRAME, addressing);
    let mut buf = BytesMut::from(hex);
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut buf)? {
        frames.push(f);
    }
    if buf.is_empty() {
        Ok(frames)
    } else {
        Err(DecodeError::UnexpectedEnd {
            at: hex.len(),
            needed: 1,
        })
    }
}

fn check_serial_frame(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    let (addressing, address) = serial_addressing(v)?;
    if let Some(e) = error {
        return expect_error(serial_outcome(hex, addressing), e);
    }
    let value = value_of(v)?;
    let h = header_from_json(&value["header"])?;
    let payload = hex_of(value, "payload")?;
    let mut out = BytesMut::new();
    put_serial_frame(&mut out, address, &h, &payload, DEFAULT_MAX_SERIAL_FRAME)
        .map_err(|e| format!("encode: {e}"))?;
    expect_bytes("put_serial_frame", &out, hex)?;
    expect_eq(
        "decode",
        serial_outcome(hex, addressing),
        Ok(vec![SerialFrame {
            address,
            frame: Frame::new(h, payload),
        }]),
    )
}

/// A COBS encoder written from §4, used because the runtime has no public
/// one: it is checked against the vector, then the runtime's encoder (inside
/// `put_serial_frame`) is checked against it.
fn reference_cobs(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for &b in input {
        if b == 0 {
            out.push(run.len() as u8 + 1);
            out.append(&mut run);
        } else {
            run.push(b);
            if run.len() == 254 {
                out.push(0xff);
                out.append(&mut run);
            }
        }
    }
    out.push(run.len() as u8 + 1);
    out.append(&mut run);
    out
}

fn check_cobs(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    let mut out = Vec::new();
    if let Some(e) = error {
        return expect_error(cobs_decode(hex, &mut out), e);
    }
    let raw = hex_value(v)?;
    cobs_decode(hex, &mut out).map_err(|e| format!("cobs_decode: {e}"))?;
    expect_bytes("cobs_decode", &out, &raw)?;
    expect_bytes("reference encoder", &reference_cobs(&raw), hex)?;
    // Encode side: the same bytes as the payload of a serial frame (lead byte
    // 01 = one-way type 1), so the runtime COBS-encodes `01 raw crc`.
    let h = FrameHeader::one_way(1);
    let mut frame = BytesMut::new();
    put_serial_frame(&mut frame, None, &h, &raw, usize::MAX).map_err(|e| format!("{e}"))?;
    let mut plain = vec![0x01];
    plain.extend_from_slice(&raw);
    let crc = isml_runtime::wire::Crc32c::checksum(&plain);
    plain.extend_from_slice(&crc.to_le_bytes());
    let mut expected = reference_cobs(&plain);
    expected.push(0);
    expect_bytes("put_serial_frame COBS", &frame, &expected)
}

fn hex_value(v: &Value) -> Result<Vec<u8>, String> {
    hex_of(v, "value")
}

fn vector_type(v: &Value) -> Result<VectorType, String> {
    VectorType::new(
        v.get("types").ok_or("no `types`")?,
        v.get("type").and_then(Value::as_str).ok_or("no `type`")?,
    )
}

fn check_value(v: &Value, hex: &[u8], error: Option<&str>) -> Check {
    let ty = vector_type(v)?;
    if let Some(e) = error {
        return match ty.decode(hex) {
            Err(err) if err.kind().name() == e => Ok(()),
            Err(err) => Err(format!(
                "failed with {} ({err}), expected {e}",
                err.kind().name()
            )),
            Ok(value) => Err(format!(
                "decoded to {}, expected error {e}",
                ty.json(&value)
            )),
        };
    }
    let value = value_of(v)?;
    let out = ty.encode(value).map_err(|e| format!("encode: {e}"))?;
    expect_bytes("encode", &out, hex)?;
    let decoded = ty
        .decode(hex)
        .map_err(|e| format!("decode: {} ({e})", e.kind().name()))?;
    let expected = ty.value(value)?;
    if decoded != expected {
        return Err(format!(
            "decode: got {}, expected {value}",
            ty.json(&decoded)
        ));
    }
    // The decoded value is canonical: encoding it again gives the same bytes.
    let again: Value = serde_json::from_str(&ty.json(&decoded)).map_err(|e| e.to_string())?;
    let again = ty.encode(&again).map_err(|e| format!("re-encode: {e}"))?;
    expect_bytes("re-encode of the decoded value", &again, hex)
}

fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Checks that `value` is FNV-1a-64 of `canon` (computed here, independently),
/// and that the schema compiler computes the same canonical form and
/// fingerprint for the vector's type.
fn check_fingerprint(v: &Value) -> Check {
    if v.get("hex").is_some() {
        return Err("fingerprint vectors have no `hex`".into());
    }
    // Some vectors exercise the §8 stack rule with recursion the schema
    // language forbids (a union and a message holding each other directly):
    // the compiler must refuse exactly that, and then only `canon` and
    // `value` are checked against each other.
    let ty = match vector_type(v) {
        Ok(ty) => Some(ty),
        Err(e) if e.contains("has infinite size") && !e.contains("cannot find") => None,
        Err(e) => return Err(e),
    };
    let canon = v.get("canon").and_then(Value::as_str).ok_or("no `canon`")?;
    let value = v.get("value").and_then(Value::as_str).ok_or("no `value`")?;
    if value.len() != 16
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!("`value` {value} is not 16 lowercase hex digits"));
    }
    expect_eq(
        "FNV-1a-64(canon)",
        format!("{:016x}", fnv1a64(canon)),
        value.to_owned(),
    )?;
    let Some(ty) = ty else {
        return Ok(());
    };
    let schema = ty.schema();
    let form = isml_wire_canonical_form(&ty);
    expect_eq("canonical form", form.as_str(), canon)?;
    if let Some(id) = ty.named() {
        expect_eq(
            "fingerprint",
            format!("{:016x}", schema.fingerprint(id)),
            value.to_owned(),
        )?;
    }
    Ok(())
}

/// The canonical form of the vector's type as the schema compiler computes it.
fn isml_wire_canonical_form(ty: &VectorType) -> String {
    isml_runtime::wire::canonical::type_form(ty.schema(), ty.ty())
}

fn check_vector(v: &Value) -> Check {
    let group = v.get("group").and_then(Value::as_str).ok_or("no `group`")?;
    v.get("description")
        .and_then(Value::as_str)
        .ok_or("no `description`")?;
    if group == "fingerprint" {
        return check_fingerprint(v);
    }
    let hex = hex_of(v, "hex")?;
    let error = match v.get("error") {
        None => None,
        Some(Value::String(e)) if ERROR_NAMES.contains(&e.as_str()) => Some(e.as_str()),
        Some(e) => return Err(format!("`error` {e} is not an error name of the README")),
    };
    match group {
        "uvarint" => check_uvarint(v, &hex, error),
        "svarint" => check_svarint(v, &hex, error),
        "f32" => check_f32(v, &hex, error),
        "f64" => check_f64(v, &hex, error),
        "header" => check_header(v, &hex, error),
        "error_body" => check_error_body(v, &hex, error),
        "credit" => check_credit(v, &hex, error),
        "ack" => check_ack(v, &hex, error),
        "batch" => check_batch(v, &hex, error),
        "stream_frame" => check_stream_frame(v, &hex, error),
        "serial_frame" => check_serial_frame(v, &hex, error),
        "cobs" => check_cobs(v, &hex, error),
        "value" => check_value(v, &hex, error),
        other => Err(format!("unknown group `{other}`")),
    }
}

/// Runs every vector of a file; fails with the list of every failing vector.
fn run_file(name: &str) {
    let file = load(name).unwrap_or_else(|e| panic!("{e}"));
    assert!(!file.vectors.is_empty(), "{name}: no vectors");
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, v) in file.vectors.iter().enumerate() {
        let group = v["group"].as_str().unwrap_or("?").to_owned();
        let entry = counts.entry(group.clone()).or_default();
        if v.get("error").is_some() {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
        if let Err(e) = check_vector(v) {
            failures.push(format!(
                "  #{i} [{group}] {}: {e}",
                v["description"].as_str().unwrap_or("?")
            ));
        }
    }
    println!("{}:", file.path.display());
    for (group, (valid, invalid)) in &counts {
        println!("  {group:>13}: {valid} valid, {invalid} invalid");
    }
    if let Some((valid, _)) = counts.get("fingerprint") {
        println!(
            "  note: {valid} fingerprint vector(s): canon and value checked against the \
             schema compiler's canonical form and fingerprint"
        );
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} vectors failed:\n{}",
        failures.len(),
        file.vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn handwritten_vectors() {
    run_file("handwritten.json");
}

#[test]
fn wire_v1_vectors() {
    run_file("wire-v1.json");
}

/// The hand-written file covers every group and the spec's tables.
#[test]
fn handwritten_file_covers_every_group() {
    let file = load("handwritten.json").unwrap();
    for group in [
        "uvarint",
        "svarint",
        "f32",
        "f64",
        "header",
        "error_body",
        "stream_frame",
        "serial_frame",
        "cobs",
        "value",
        "fingerprint",
    ] {
        let n = file.vectors.iter().filter(|v| v["group"] == group).count();
        assert!(n > 0, "no `{group}` vector");
    }
    // The §2.5 table and the §9 example are in.
    for hex in [
        "9003140105",
        "83012a",
        "00ac02",
        "0e0305950102f8f702b7170000bc4101",
    ] {
        assert!(
            file.vectors.iter().any(|v| v["hex"] == hex),
            "missing vector {hex}"
        );
    }
}

/// The reference file covers §2.7: call headers (valid, out of range,
/// truncated, CALL on other kinds) and credit frames and payloads.
#[test]
fn wire_v1_covers_calls_and_credit() {
    let file = load("wire-v1.json").unwrap();
    let headers: Vec<(&Value, Vec<u8>)> = file
        .vectors
        .iter()
        .filter(|v| v["group"] == "header")
        .map(|v| (v, hex_of(v, "hex").unwrap()))
        .collect();
    // The extension byte has CALL set: on a request, or on another kind.
    let call_bit = |h: &[u8]| h.len() > 1 && h[0] & 0x80 != 0 && h[1] & 0x04 != 0;
    let on_request = |h: &[u8]| (h[0] >> 4) & 7 == 1;
    let count = |error: Option<&str>, request: bool| {
        headers
            .iter()
            .filter(|(v, h)| {
                v["error"].as_str() == error && call_bit(h) && on_request(h) == request
            })
            .count()
    };
    assert!(count(None, true) >= 10, "valid call headers");
    assert!(count(Some("integer_out_of_range"), true) >= 5);
    assert!(count(Some("unexpected_end"), true) >= 5);
    assert!(count(Some("non_canonical_varint"), true) >= 3);
    assert!(
        count(Some("reserved_flags"), false) >= 8,
        "CALL on other kinds"
    );
    for hex in ["94040301028827", "77"] {
        assert!(
            file.vectors
                .iter()
                .any(|v| v["hex"] == hex && v.get("error").is_none()),
            "missing vector {hex}"
        );
    }
    let credit = |valid: bool| {
        file.vectors
            .iter()
            .filter(|v| v["group"] == "credit" && v.get("error").is_none() == valid)
            .count()
    };
    assert!(
        credit(true) > 0 && credit(false) > 0,
        "credit payload vectors"
    );
}

/// The reference file covers the batches of §2.7: BATCH on stream items
/// (valid) and on every other kind (reserved), batch payloads and their
/// errors, and batch frames in both framings.
#[test]
fn wire_v1_covers_batches() {
    let file = load("wire-v1.json").unwrap();
    let batch_bit = |h: &[u8]| h.len() > 1 && h[0] & 0x80 != 0 && h[1] & 0x08 != 0;
    let count = |group: &str, valid: bool, stream_item: Option<bool>| {
        file.vectors
            .iter()
            .filter(|v| v["group"] == group && v.get("error").is_none() == valid)
            .filter(|v| match stream_item {
                None => true,
                Some(si) => {
                    let h = hex_of(v, "hex").unwrap();
                    batch_bit(&h) && ((h[0] >> 4) & 7 == 4) == si
                }
            })
            .count()
    };
    assert!(count("header", true, Some(true)) >= 4, "batch headers");
    assert!(
        count("header", false, Some(false)) >= 8,
        "BATCH on other kinds"
    );
    assert!(count("batch", true, None) >= 5, "batch payloads");
    assert!(count("batch", false, None) >= 5, "malformed batch payloads");
    for group in ["stream_frame", "serial_frame"] {
        assert!(
            file.vectors
                .iter()
                .any(|v| v["group"] == group && v["value"]["header"]["batch"] == true),
            "a batch {group}"
        );
    }
    // The example of §2.7.
    assert!(
        file.vectors
            .iter()
            .any(|v| v["hex"] == "07c008180102aabb00" && v.get("error").is_none())
    );
}

/// A call header the decoder rejects is refused by the encoder as well
/// (the vectors hold only decodable headers on their valid side).
#[test]
fn call_headers_out_of_range_are_not_encoded() {
    use isml_runtime::wire::{CallHeader, ControlOp};
    let call = |method| CallHeader {
        service: 1,
        method,
        deadline_ms: 0,
    };
    for method in [0, 65_536, u32::MAX] {
        let h = FrameHeader::call(4, 3, call(method));
        assert!(
            h.encode(&mut Vec::new()).is_err(),
            "method {method} encoded"
        );
    }
    for mut h in [
        FrameHeader::response(4, 3),
        FrameHeader::one_way(4),
        FrameHeader::stream_item(4, 3),
        FrameHeader::cancel(3),
        FrameHeader::control(ControlOp::Credit),
    ] {
        h.call = Some(call(2));
        assert!(h.encode(&mut Vec::new()).is_err(), "{h:?} encoded");
    }
}
