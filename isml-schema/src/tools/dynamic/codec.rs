//! Encoding and decoding of dynamic values, rule for rule what the runtime's
//! `Wire` implementations do for generated code (wire format §5), built on
//! the primitives of `isml-wire` (the codec generated code uses too).

use std::collections::BTreeMap;

use super::{
    DecodeError, DecodeErrorKind, Descriptor, DynamicMessage, DynamicUnion, EncodeError, MapKey,
    UnionValue, Value, check_type,
};
use crate::ir::{FieldDef, Schema, Type, TypeDefKind, TypeId};
use isml_wire::{Class, Limits, PresenceWriter, Reader, varint, write};

/// The default nesting limit of decoders (wire format §7).
pub const DEFAULT_MAX_DEPTH: u32 = Limits::DEFAULT.max_depth;

fn put_uvarint(out: &mut Vec<u8>, v: u64) {
    varint::put(out, v);
}

fn put_svarint(out: &mut Vec<u8>, v: i64) {
    write::svarint(out, v);
}

/// `uvarint(len)` then the bytes.
fn put_delimited(out: &mut Vec<u8>, content: &[u8]) {
    write::len_prefixed(out, content);
}

/// Writes the presence field of a body whose present tags have `classes`
/// (`(tag, class)` in ascending tag order).
fn put_presence(out: &mut Vec<u8>, classes: &[(u32, Class)]) {
    // 255 tags of 2 bits.
    let mut p = PresenceWriter::<64>::new();
    for &(tag, class) in classes {
        p.set(tag, class);
    }
    p.encode(out);
}

/// One nesting level below `depth` (levels left), or the error a decoder
/// would give for the encoding (wire format §7).
fn deeper(depth: u32) -> Result<u32, EncodeError> {
    depth.checked_sub(1).ok_or_else(|| {
        EncodeError::new(format!(
            "value nests deeper than {DEFAULT_MAX_DEPTH} levels, which decoders reject (wire format §7)"
        ))
    })
}

/// A reader over `buf` that allows `max_depth` levels of nesting.
fn reader(buf: &[u8], max_depth: u32) -> Reader<'_> {
    Reader::with_limits(
        buf,
        &Limits {
            max_frame: usize::MAX,
            max_depth,
        },
    )
}

/// Fails unless `r` is consumed; `what` names the value in the error.
fn finish(r: &Reader<'_>, what: &str) -> Result<(), DecodeError> {
    if r.is_empty() {
        Ok(())
    } else {
        Err(DecodeError::new(
            r.position(),
            DecodeErrorKind::ContentLength,
            format!("{} byte(s) left over after {what}", r.remaining()),
        ))
    }
}

/// The class of the field form of `ty` (§5.1).
pub(crate) fn class_of(schema: &Schema, ty: &Type) -> Class {
    match ty {
        Type::Bool
        | Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64 => Class::Varint,
        Type::F32 => Class::Fixed32,
        Type::Optional(t) => class_of(schema, t),
        Type::Named(id) if matches!(schema.types[id.index()].kind, TypeDefKind::Enum(_)) => {
            Class::Varint
        }
        _ => Class::Delimited,
    }
}

/// Width of the element form of fixed-width element types.
fn elem_width(ty: &Type) -> Option<usize> {
    match ty {
        Type::Bool | Type::U8 | Type::I8 => Some(1),
        Type::F32 => Some(4),
        Type::F64 => Some(8),
        _ => None,
    }
}

/// Whether a non-optional field holding `v` is omitted (§5.2).
fn is_default(v: &Value<'_>) -> bool {
    match v {
        Value::Bool(b) => !b,
        Value::U8(x) => *x == 0,
        Value::U16(x) => *x == 0,
        Value::U32(x) | Value::Enum(x) => *x == 0,
        Value::U64(x) => *x == 0,
        Value::I8(x) => *x == 0,
        Value::I16(x) => *x == 0,
        Value::I32(x) => *x == 0,
        Value::I64(x) => *x == 0,
        Value::F32(x) => x.to_bits() == 0,
        Value::F64(x) => x.to_bits() == 0,
        Value::String(s) => s.is_empty(),
        Value::Bytes(b) => b.is_empty(),
        Value::Optional(o) => o.is_none(),
        Value::List(l) => l.is_empty(),
        Value::Map(m) => m.is_empty(),
        Value::Array(_) | Value::Message(_) | Value::Union(_) => false,
    }
}

fn mismatch(schema: &Schema, v: &Value<'_>, ty: &Type) -> EncodeError {
    EncodeError::new(format!(
        "expected a value of type `{}`, found {}",
        ty.display(schema),
        v.describe()
    ))
}

pub(crate) fn encode_top(v: &Value<'_>) -> Result<Vec<u8>, EncodeError> {
    match v {
        Value::Message(m) => encode_message(m),
        Value::Union(u) => {
            let mut out = Vec::new();
            encode_union(u, &mut out, DEFAULT_MAX_DEPTH)
                .map_err(|e| e.within(u.desc.full_name()))?;
            Ok(out)
        }
        other => Err(EncodeError::new(format!(
            "only messages and unions are frame payloads, not {}",
            other.describe()
        ))),
    }
}

pub(crate) fn encode_message(m: &DynamicMessage<'_>) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_body(m, &mut out, DEFAULT_MAX_DEPTH).map_err(|e| e.within(m.desc.full_name()))?;
    Ok(out)
}

/// Checks `max_len` and `range` of field `f` holding `v` (the inner value of an optional).
fn check_attributes(f: &FieldDef, v: &Value<'_>) -> Result<(), String> {
    let v = match v {
        Value::Optional(None) => return Ok(()),
        Value::Optional(Some(b)) => b,
        v => v,
    };
    if let Some(max) = f.max_len {
        let len = match v {
            Value::String(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::List(l) => l.len(),
            Value::Map(m) => m.len(),
            _ => 0,
        };
        if len as u64 > max {
            return Err(format!("length {len} exceeds max_len {max}"));
        }
    }
    if let Some((lo, hi)) = f.range {
        let ok = match v {
            Value::F32(x) => f64::from(*x) >= lo as f64 && f64::from(*x) <= hi as f64,
            Value::F64(x) => *x >= lo as f64 && *x <= hi as f64,
            other => int_of(other).is_none_or(|i| (lo..=hi).contains(&i)),
        };
        if !ok {
            return Err(format!(
                "value {} is outside range {lo}..={hi}",
                scalar_text(v)
            ));
        }
    }
    Ok(())
}

fn int_of(v: &Value<'_>) -> Option<i128> {
    Some(match *v {
        Value::U8(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::U64(x) => x.into(),
        Value::I8(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::I64(x) => x.into(),
        _ => return None,
    })
}

fn scalar_text(v: &Value<'_>) -> String {
    match v {
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        other => int_of(other).map_or_else(|| other.describe(), |i| i.to_string()),
    }
}

/// Writes a message body with `depth` levels of nesting left (§7).
fn encode_body(m: &DynamicMessage<'_>, out: &mut Vec<u8>, depth: u32) -> Result<(), EncodeError> {
    let schema = m.desc.schema;
    let fields = m.desc.fields();
    if fields.len() != m.fields.len() {
        return Err(EncodeError::new("message value does not match its type"));
    }
    let mut classes = Vec::new();
    for (f, v) in fields.iter().zip(&m.fields) {
        check_type(schema, v, &f.ty).map_err(|found| {
            EncodeError::new(format!(
                "expected a value of type `{}`, found {found}",
                f.ty.display(schema)
            ))
            .within(format!(".{}", f.name))
        })?;
        check_attributes(f, v).map_err(|r| EncodeError::new(r).within(format!(".{}", f.name)))?;
        if !is_default(v) {
            classes.push((f.tag, class_of(schema, &f.ty)));
        }
    }
    put_presence(out, &classes);
    for (f, v) in fields.iter().zip(&m.fields) {
        if !is_default(v) {
            encode_field(schema, v, &f.ty, out, depth)
                .map_err(|e| e.within(format!(".{}", f.name)))?;
        }
    }
    Ok(())
}

fn encode_union(u: &DynamicUnion<'_>, out: &mut Vec<u8>, depth: u32) -> Result<(), EncodeError> {
    let schema = u.desc.schema;
    match &u.variant {
        UnionValue::Known { tag, value } => {
            let TypeDefKind::Union(def) = &u.desc.def().kind else {
                return Err(EncodeError::new(
                    "union value of a type that is not a union",
                ));
            };
            let var = def
                .variants
                .iter()
                .find(|v| v.tag == *tag)
                .ok_or_else(|| EncodeError::new(format!("no variant with tag {tag}")))?;
            let class = class_of(schema, &var.ty);
            put_uvarint(out, (u64::from(*tag) << 2) | class as u64);
            encode_field(schema, value, &var.ty, out, depth)
                .map_err(|e| e.within(format!(".{}", var.name)))
        }
        UnionValue::Unknown { tag, class, bytes } => {
            if *tag > MAX_UNION_TAG {
                return Err(EncodeError::new(format!(
                    "unknown variant tag {tag} is above the largest union tag {MAX_UNION_TAG}"
                )));
            }
            if let Err(problem) = check_unknown_value(*class, bytes) {
                return Err(EncodeError::new(format!(
                    "unknown variant tag {tag}: {problem}"
                )));
            }
            put_uvarint(out, (*tag << 2) | u64::from(*class));
            out.extend_from_slice(bytes);
            Ok(())
        }
    }
}

/// The largest tag a union key (`uvarint(tag * 4 + class)`, §5.5) can carry.
pub(crate) const MAX_UNION_TAG: u64 = isml_wire::MAX_UNION_TAG;

/// Checks that `bytes` is exactly one well-formed value of wire class `class`
/// (§5.1), as the value of a union variant the schema does not define must be:
/// a canonical varint, 4 bytes, or `uvarint(n)` and n bytes. Without this check
/// an encoder would write frames that decoders reject.
pub(crate) fn check_unknown_value(class: u8, bytes: &[u8]) -> Result<(), String> {
    let (class, expected) = match class {
        1 => (Class::Varint, "exactly one canonical varint"),
        2 => (Class::Fixed32, "exactly 4 bytes"),
        3 => (
            Class::Delimited,
            "exactly one length-delimited value, uvarint(n) then n bytes",
        ),
        other => {
            return Err(format!(
                "class {other} is not 1 (varint), 2 (fixed32) or 3 (length-delimited)"
            ));
        }
    };
    Reader::check_value(class, bytes).map_err(|e| {
        let shown: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let shown = if shown.is_empty() {
            "(empty)".to_string()
        } else {
            format!("`{}`", shown.join(" "))
        };
        format!(
            "bytes {shown} are not {expected} (class {}): {e}",
            class as u8
        )
    })
}

fn named_kind(schema: &Schema, id: TypeId) -> &TypeDefKind {
    &schema.types[id.index()].kind
}

/// The field form (§5.1): a message field or union variant, with `depth`
/// levels of nesting left; a level is spent where a decoder spends one.
fn encode_field(
    schema: &Schema,
    v: &Value<'_>,
    ty: &Type,
    out: &mut Vec<u8>,
    depth: u32,
) -> Result<(), EncodeError> {
    match (ty, v) {
        (Type::Bool, Value::Bool(b)) => out.push(u8::from(*b)),
        (Type::U8, Value::U8(x)) => put_uvarint(out, (*x).into()),
        (Type::I8, Value::I8(x)) => put_svarint(out, (*x).into()),
        (Type::F64, Value::F64(x)) => {
            deeper(depth)?;
            out.push(8);
            out.extend_from_slice(&x.to_le_bytes());
        }
        (Type::Optional(t), Value::Optional(Some(inner))) => {
            encode_field(schema, inner, t, out, depth)?;
        }
        (Type::Optional(_), Value::Optional(None)) => {}
        (Type::Array(..), Value::Array(_)) => {
            let mut content = Vec::new();
            encode_elem(schema, v, ty, &mut content, deeper(depth)?)?;
            put_delimited(out, &content);
        }
        (Type::Named(id), Value::Union(u)) if u.desc.id == *id => {
            let mut content = Vec::new();
            encode_union(u, &mut content, deeper(depth)?)?;
            put_delimited(out, &content);
        }
        _ => encode_elem(schema, v, ty, out, depth)?,
    }
    Ok(())
}

/// The element form (§5.3), with `depth` levels of nesting left.
pub(crate) fn encode_elem(
    schema: &Schema,
    v: &Value<'_>,
    ty: &Type,
    out: &mut Vec<u8>,
    depth: u32,
) -> Result<(), EncodeError> {
    match (ty, v) {
        (Type::Bool, Value::Bool(b)) => out.push(u8::from(*b)),
        (Type::U8, Value::U8(x)) => out.push(*x),
        (Type::I8, Value::I8(x)) => out.push(*x as u8),
        (Type::U16, Value::U16(x)) => put_uvarint(out, (*x).into()),
        (Type::U32, Value::U32(x)) => put_uvarint(out, (*x).into()),
        (Type::U64, Value::U64(x)) => put_uvarint(out, *x),
        (Type::I16, Value::I16(x)) => put_svarint(out, (*x).into()),
        (Type::I32, Value::I32(x)) => put_svarint(out, (*x).into()),
        (Type::I64, Value::I64(x)) => put_svarint(out, *x),
        (Type::F32, Value::F32(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Type::F64, Value::F64(x)) => out.extend_from_slice(&x.to_le_bytes()),
        (Type::String, Value::String(s)) => put_delimited(out, s.as_bytes()),
        (Type::Bytes, Value::Bytes(b)) => put_delimited(out, b),
        (Type::Optional(t), Value::Optional(o)) => match o {
            None => out.push(0),
            Some(inner) => {
                out.push(1);
                encode_elem(schema, inner, t, out, deeper(depth)?)?;
            }
        },
        (Type::List(t), Value::List(items)) => {
            let d = deeper(depth)?;
            let mut content = Vec::new();
            for (i, item) in items.iter().enumerate() {
                encode_elem(schema, item, t, &mut content, d)
                    .map_err(|e| e.within(format!("[{i}]")))?;
            }
            put_delimited(out, &content);
        }
        (Type::Array(t, n), Value::Array(items)) => {
            if items.len() != *n as usize {
                return Err(EncodeError::new(format!(
                    "array of {} elements where `{}` needs {n}",
                    items.len(),
                    ty.display(schema)
                )));
            }
            let d = deeper(depth)?;
            for (i, item) in items.iter().enumerate() {
                encode_elem(schema, item, t, out, d).map_err(|e| e.within(format!("[{i}]")))?;
            }
        }
        (Type::Map(kt, vt), Value::Map(entries)) => {
            let d = deeper(depth)?;
            let mut content = Vec::new();
            for (k, val) in entries {
                encode_key(schema, k, kt, &mut content)?;
                encode_elem(schema, val, vt, &mut content, d)
                    .map_err(|e| e.within(format!("[{k}]")))?;
            }
            put_delimited(out, &content);
        }
        (Type::Named(id), value) => match (named_kind(schema, *id), value) {
            (TypeDefKind::Enum(_), Value::Enum(x)) => put_uvarint(out, (*x).into()),
            (TypeDefKind::Message(_), Value::Message(m)) if m.desc.id == *id => {
                let mut content = Vec::new();
                encode_body(m, &mut content, deeper(depth)?)?;
                put_delimited(out, &content);
            }
            (TypeDefKind::Union(_), Value::Union(u)) if u.desc.id == *id => {
                encode_union(u, out, deeper(depth)?)?;
            }
            _ => return Err(mismatch(schema, v, ty)),
        },
        _ => return Err(mismatch(schema, v, ty)),
    }
    Ok(())
}

fn encode_key(
    schema: &Schema,
    k: &MapKey,
    ty: &Type,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let v = key_value(k, ty).ok_or_else(|| {
        EncodeError::new(format!("map key {k} is not a `{}`", ty.display(schema)))
    })?;
    // Map keys are scalars: they nest nothing.
    encode_elem(schema, &v, ty, out, DEFAULT_MAX_DEPTH)
}

/// The value of map key `k` as type `ty`, if it fits.
pub(crate) fn key_value<'s>(k: &MapKey, ty: &Type) -> Option<Value<'s>> {
    Some(match (ty, k) {
        (Type::Bool, MapKey::Bool(b)) => Value::Bool(*b),
        (Type::String, MapKey::String(s)) => Value::String(s.clone()),
        (Type::U8, MapKey::Int(i)) => Value::U8(u8::try_from(*i).ok()?),
        (Type::U16, MapKey::Int(i)) => Value::U16(u16::try_from(*i).ok()?),
        (Type::U32, MapKey::Int(i)) => Value::U32(u32::try_from(*i).ok()?),
        (Type::U64, MapKey::Int(i)) => Value::U64(u64::try_from(*i).ok()?),
        (Type::I8, MapKey::Int(i)) => Value::I8(i8::try_from(*i).ok()?),
        (Type::I16, MapKey::Int(i)) => Value::I16(i16::try_from(*i).ok()?),
        (Type::I32, MapKey::Int(i)) => Value::I32(i32::try_from(*i).ok()?),
        (Type::I64, MapKey::Int(i)) => Value::I64(i64::try_from(*i).ok()?),
        _ => return None,
    })
}

/// The map key of a decoded key value.
fn map_key(v: &Value<'_>) -> Option<MapKey> {
    Some(match v {
        Value::Bool(b) => MapKey::Bool(*b),
        Value::String(s) => MapKey::String(s.clone()),
        other => MapKey::Int(int_of(other)?),
    })
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

pub(crate) fn decode_top<'s>(
    desc: Descriptor<'s>,
    payload: &[u8],
    max_depth: u32,
) -> Result<Value<'s>, DecodeError> {
    let mut r = reader(payload, max_depth);
    let full = desc.full_name();
    let v = match &desc.def().kind {
        TypeDefKind::Message(_) => decode_body(desc, &mut r).map(Value::Message),
        TypeDefKind::Union(_) => {
            let u = decode_union(desc, &mut r);
            u.and_then(|u| finish(&r, &full).map(|()| Value::Union(u)))
        }
        TypeDefKind::Enum(_) => Err(DecodeError::new(
            0,
            DecodeErrorKind::NotAMessage,
            format!("`{full}` is an enum, not a message or union"),
        )),
    };
    v.map_err(|e| e.within(full))
}

pub(crate) fn decode_elem_top<'s>(
    schema: &'s Schema,
    bytes: &[u8],
    ty: &Type,
    max_depth: u32,
) -> Result<Value<'s>, DecodeError> {
    let mut r = reader(bytes, max_depth);
    let v = decode_elem(schema, &mut r, ty)?;
    finish(&r, "the value")?;
    Ok(v)
}

fn decode_body<'s>(
    desc: Descriptor<'s>,
    r: &mut Reader<'_>,
) -> Result<DynamicMessage<'s>, DecodeError> {
    let schema = desc.schema;
    let mut m = DynamicMessage::new(desc).ok_or_else(|| {
        DecodeError::new(r.position(), DecodeErrorKind::NotAMessage, "not a message")
    })?;
    let fields = desc.fields();
    for (tag, class) in r.presence()? {
        let Ok(i) = fields.binary_search_by_key(&tag, |f| f.tag) else {
            r.skip(class)?;
            continue;
        };
        let f = &fields[i];
        let v = decode_known(schema, r, &f.ty, tag, class)
            .and_then(|v| {
                check_attributes(f, &v).map_err(|reason| {
                    let kind = if reason.starts_with("length") {
                        DecodeErrorKind::MaxLen
                    } else {
                        DecodeErrorKind::Range
                    };
                    DecodeError::new(r.position(), kind, reason)
                })?;
                Ok(v)
            })
            .map_err(|e| e.within(format!(".{}", f.name)))?;
        m.fields[i] = v;
    }
    finish(r, &desc.full_name())?;
    Ok(m)
}

/// A known field or variant: checks the class, then reads the field form.
fn decode_known<'s>(
    schema: &'s Schema,
    r: &mut Reader<'_>,
    ty: &Type,
    tag: u32,
    class: Class,
) -> Result<Value<'s>, DecodeError> {
    let expected = class_of(schema, ty);
    if class != expected {
        return Err(DecodeError::new(
            r.position(),
            DecodeErrorKind::ClassMismatch,
            format!(
                "tag {tag} has wire class {}, expected {}",
                class as u8, expected as u8
            ),
        ));
    }
    decode_field(schema, r, ty)
}

fn decode_union<'s>(
    desc: Descriptor<'s>,
    r: &mut Reader<'_>,
) -> Result<DynamicUnion<'s>, DecodeError> {
    let TypeDefKind::Union(def) = &desc.def().kind else {
        return Err(DecodeError::new(
            r.position(),
            DecodeErrorKind::NotAMessage,
            "not a union",
        ));
    };
    let (tag, class) = r.union_key()?;
    let variant = match def.variants.iter().find(|v| u64::from(v.tag) == tag) {
        Some(var) => UnionValue::Known {
            tag: var.tag,
            value: Box::new(
                decode_known(desc.schema, r, &var.ty, var.tag, class)
                    .map_err(|e| e.within(format!(".{}", var.name)))?,
            ),
        },
        None => UnionValue::Unknown {
            tag,
            class: class as u8,
            bytes: r.class_raw(class)?.to_vec(),
        },
    };
    Ok(DynamicUnion { desc, variant })
}

fn decode_field<'s>(
    schema: &'s Schema,
    r: &mut Reader<'_>,
    ty: &Type,
) -> Result<Value<'s>, DecodeError> {
    Ok(match ty {
        Type::Bool => Value::Bool(r.bool_varint()?),
        Type::U8 => Value::U8(r.u8_varint()?),
        Type::I8 => Value::I8(r.i8_varint()?),
        Type::F64 => {
            let mut c = r.delimited()?;
            if c.remaining() < 8 {
                return Err(DecodeError::new(
                    c.position(),
                    DecodeErrorKind::ContentLength,
                    format!("f64 content of {} byte(s), expected 8", c.remaining()),
                ));
            }
            let v = c.f64()?;
            finish(&c, "f64")?;
            Value::F64(v)
        }
        Type::Optional(t) => Value::Optional(Some(Box::new(decode_field(schema, r, t)?))),
        Type::Array(..) => {
            let mut c = r.delimited()?;
            let end = c.position() + c.remaining();
            // Content that runs out before the N-th element is the wrong length
            // for the array (§5.4), not a truncated input.
            let v = decode_elem(schema, &mut c, ty).map_err(|e| {
                if e.kind == DecodeErrorKind::UnexpectedEnd && e.at >= end {
                    DecodeError {
                        kind: DecodeErrorKind::ContentLength,
                        reason: "array content is shorter than its elements".into(),
                        ..e
                    }
                } else {
                    e
                }
            })?;
            finish(&c, "array")?;
            v
        }
        Type::Named(id) if matches!(named_kind(schema, *id), TypeDefKind::Union(_)) => {
            let desc = Descriptor { schema, id: *id };
            let mut c = r.delimited()?;
            let u = decode_union(desc, &mut c)?;
            finish(&c, &desc.full_name())?;
            Value::Union(u)
        }
        _ => decode_elem(schema, r, ty)?,
    })
}

fn decode_elem<'s>(
    schema: &'s Schema,
    r: &mut Reader<'_>,
    ty: &Type,
) -> Result<Value<'s>, DecodeError> {
    Ok(match ty {
        Type::Bool => Value::Bool(r.bool()?),
        Type::U8 => Value::U8(r.u8()?),
        Type::I8 => Value::I8(r.i8()?),
        Type::U16 => Value::U16(r.u16()?),
        Type::U32 => Value::U32(r.u32()?),
        Type::U64 => Value::U64(r.u64()?),
        Type::I16 => Value::I16(r.i16()?),
        Type::I32 => Value::I32(r.i32()?),
        Type::I64 => Value::I64(r.i64()?),
        Type::F32 => Value::F32(r.f32()?),
        Type::F64 => Value::F64(r.f64()?),
        Type::String => Value::String(r.str()?.to_string()),
        Type::Bytes => Value::Bytes(r.byte_slice()?.to_vec()),
        Type::Optional(t) => {
            if r.bool()? {
                Value::Optional(Some(Box::new(
                    r.descend_with(|r| decode_elem(schema, r, t))?,
                )))
            } else {
                Value::Optional(None)
            }
        }
        Type::List(t) => {
            let at = r.position();
            let mut c = r.delimited()?;
            if let Some(width) = elem_width(t)
                && c.remaining() % width != 0
            {
                return Err(DecodeError::new(
                    at,
                    DecodeErrorKind::RaggedList,
                    format!(
                        "list of {} bytes is not a whole number of {width}-byte elements",
                        c.remaining()
                    ),
                ));
            }
            let mut items = Vec::new();
            while !c.is_empty() {
                let i = items.len();
                items.push(decode_elem(schema, &mut c, t).map_err(|e| e.within(format!("[{i}]")))?);
            }
            Value::List(items)
        }
        Type::Array(t, n) => r.descend_with(|c| {
            let mut items = Vec::with_capacity((*n as usize).min(c.remaining()));
            for i in 0..*n {
                items.push(decode_elem(schema, c, t).map_err(|e| e.within(format!("[{i}]")))?);
            }
            Ok::<_, DecodeError>(Value::Array(items))
        })?,
        Type::Map(kt, vt) => {
            let mut c = r.delimited()?;
            let mut map: BTreeMap<MapKey, Value<'s>> = BTreeMap::new();
            while !c.is_empty() {
                let at = c.position();
                let k = decode_elem(schema, &mut c, kt)?;
                let key = map_key(&k).ok_or_else(|| {
                    DecodeError::new(at, DecodeErrorKind::MapKeyOrder, "invalid map key type")
                })?;
                if map.last_key_value().is_some_and(|(last, _)| *last >= key) {
                    return Err(DecodeError::new(
                        at,
                        DecodeErrorKind::MapKeyOrder,
                        "map key is not greater than the previous key",
                    ));
                }
                let v =
                    decode_elem(schema, &mut c, vt).map_err(|e| e.within(format!("[{key}]")))?;
                map.insert(key, v);
            }
            Value::Map(map)
        }
        Type::Named(id) => {
            let desc = Descriptor { schema, id: *id };
            match named_kind(schema, *id) {
                TypeDefKind::Enum(_) => Value::Enum(r.u32()?),
                TypeDefKind::Message(_) => {
                    let mut c = r.delimited()?;
                    Value::Message(decode_body(desc, &mut c)?)
                }
                TypeDefKind::Union(_) => Value::Union(r.descend_with(|c| decode_union(desc, c))?),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamic::default_value;

    fn schema() -> Schema {
        crate::load_str(
            "t.isml",
            "package t; enum E { a = 0; b = 1; }
             message M [id = 1] { x: u8 = 1; y: optional<list<E>> = 2; z: map<i32, string> = 3; }
             union U [id = 2] { m: M = 1; n: f64 = 2; }",
        )
        .unwrap()
    }

    #[test]
    fn default_message_is_the_empty_body() {
        let s = schema();
        let d = Descriptor::new(&s, s.lookup("t.M").unwrap()).unwrap();
        assert_eq!(encode_top(&d.default_value()).unwrap(), [0]);
        let u = Descriptor::new(&s, s.lookup("t.U").unwrap()).unwrap();
        // The default union holds its first variant's default: key 1*4+3, length 1, body 00.
        assert_eq!(encode_top(&u.default_value()).unwrap(), [0x07, 0x01, 0x00]);
        assert_eq!(
            default_value(&s, &Type::Array(Box::new(Type::U8), 2)),
            Value::Array(vec![Value::U8(0), Value::U8(0)])
        );
    }

    #[test]
    fn unordered_map_keys_are_rejected() {
        let s = schema();
        let d = Descriptor::new(&s, s.lookup("t.M").unwrap()).unwrap();
        // tag 3 delimited: presence 0b11_00_00, content: key 2 "", key 1 "".
        let e = decode_top(d, &[0x30, 4, 4, 0, 2, 0], 32).unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::MapKeyOrder);
        assert_eq!(e.path(), "t.M.z");
    }
}
