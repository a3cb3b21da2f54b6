//! The JSON mapping of the schema language: dynamic values to and from JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value as Json;

use super::codec::{MAX_UNION_TAG, check_unknown_value, key_value};
use super::{Descriptor, DynamicMessage, DynamicUnion, JsonError, MapKey, UnionValue, Value};
use crate::ir::{Schema, Type, TypeDefKind, UnionDef};

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------

pub(crate) fn to_json_string(v: &Value<'_>, pretty: bool) -> String {
    let mut w = Writer {
        out: String::new(),
        pretty,
        depth: 0,
    };
    match v {
        Value::Message(m) => w.message(m),
        Value::Union(u) => w.union(u),
        // Values without a type context: only scalars can be written faithfully.
        other => w.untyped(other),
    }
    w.out
}

pub(crate) fn value_to_string(schema: &Schema, v: &Value<'_>, ty: &Type, pretty: bool) -> String {
    let mut w = Writer {
        out: String::new(),
        pretty,
        depth: 0,
    };
    w.value(schema, v, ty);
    w.out
}

struct Writer {
    out: String,
    pretty: bool,
    depth: usize,
}

impl Writer {
    fn string(&mut self, s: &str) {
        // serde_json's string escaping; serialising a str cannot fail.
        self.out
            .push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
    }

    fn newline(&mut self) {
        if self.pretty {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("  ");
            }
        }
    }

    /// Writes `{ "k": v, ... }` or `[v, ...]` from items written by `each`.
    fn seq<T>(
        &mut self,
        open: char,
        close: char,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Self, T),
    ) {
        self.out.push(open);
        self.depth += 1;
        let mut any = false;
        for item in items {
            if any {
                self.out.push(',');
            }
            any = true;
            self.newline();
            each(self, item);
        }
        self.depth -= 1;
        if any {
            self.newline();
        }
        self.out.push(close);
    }

    fn key(&mut self, k: &str) {
        self.string(k);
        self.out.push(':');
        if self.pretty {
            self.out.push(' ');
        }
    }

    fn message(&mut self, m: &DynamicMessage<'_>) {
        let schema = m.desc.schema;
        let present = m
            .iter()
            .filter(|(_, v)| !matches!(v, Value::Optional(None)));
        self.seq('{', '}', present, |w, (f, v)| {
            w.key(&f.name);
            w.value(schema, v, &f.ty);
        });
    }

    fn union(&mut self, u: &DynamicUnion<'_>) {
        let schema = u.desc.schema;
        match &u.variant {
            UnionValue::Known { tag, value } => {
                let var = match &u.desc.def().kind {
                    TypeDefKind::Union(d) => d.variants.iter().find(|v| v.tag == *tag),
                    _ => None,
                };
                match var {
                    Some(var) => self.seq('{', '}', [()], |w, ()| {
                        w.key(&var.name);
                        w.value(schema, value, &var.ty);
                    }),
                    None => self.out.push_str("null"),
                }
            }
            UnionValue::Unknown { tag, class, bytes } => {
                self.seq('{', '}', [()], |w, ()| {
                    w.key(&tag.to_string());
                    w.seq('{', '}', [0, 1], |w, i| {
                        if i == 0 {
                            w.key("class");
                            w.out.push_str(&class.to_string());
                        } else {
                            w.key("bytes");
                            w.string(&BASE64.encode(bytes));
                        }
                    });
                });
            }
        }
    }

    fn int(&mut self, x: i128) {
        let _ = write!(self.out, "{x}");
    }

    fn f32(&mut self, x: f32) {
        if x.is_nan() {
            self.out.push_str("\"NaN\"");
        } else if x.is_infinite() {
            self.out.push_str(if x > 0.0 {
                "\"Infinity\""
            } else {
                "\"-Infinity\""
            });
        } else {
            // Debug is the shortest representation that round-trips, with an
            // exponent for very large and small magnitudes: valid JSON either way.
            let _ = write!(self.out, "{x:?}");
        }
    }

    fn f64(&mut self, x: f64) {
        if x.is_nan() {
            self.out.push_str("\"NaN\"");
        } else if x.is_infinite() {
            self.out.push_str(if x > 0.0 {
                "\"Infinity\""
            } else {
                "\"-Infinity\""
            });
        } else {
            let _ = write!(self.out, "{x:?}");
        }
    }

    fn untyped(&mut self, v: &Value<'_>) {
        match v {
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::F32(x) => self.f32(*x),
            Value::F64(x) => self.f64(*x),
            Value::String(s) => self.string(s),
            Value::Bytes(b) => self.string(&BASE64.encode(b)),
            Value::Message(m) => self.message(m),
            Value::Union(u) => self.union(u),
            Value::Enum(e) => {
                let _ = write!(self.out, "{e}");
            }
            Value::Optional(None) => self.out.push_str("null"),
            Value::Optional(Some(v)) => self.untyped(v),
            Value::List(items) | Value::Array(items) => {
                self.seq('[', ']', items, |w, v| w.untyped(v));
            }
            Value::Map(m) => self.seq('{', '}', m, |w, (k, v)| {
                w.key(&key_text(k));
                w.untyped(v);
            }),
            Value::U8(x) => self.int((*x).into()),
            Value::U16(x) => self.int((*x).into()),
            Value::U32(x) => self.int((*x).into()),
            Value::U64(x) => self.int((*x).into()),
            Value::I8(x) => self.int((*x).into()),
            Value::I16(x) => self.int((*x).into()),
            Value::I32(x) => self.int((*x).into()),
            Value::I64(x) => self.int((*x).into()),
        }
    }

    fn value(&mut self, schema: &Schema, v: &Value<'_>, ty: &Type) {
        match (ty, v) {
            (Type::Optional(t), Value::Optional(o)) => match o {
                None => self.out.push_str("null"),
                Some(inner) => self.value(schema, inner, t),
            },
            (Type::List(t), Value::List(items)) | (Type::Array(t, _), Value::Array(items)) => {
                self.seq('[', ']', items, |w, v| w.value(schema, v, t));
            }
            (Type::Map(_, vt), Value::Map(m)) => self.seq('{', '}', m, |w, (k, v)| {
                w.key(&key_text(k));
                w.value(schema, v, vt);
            }),
            (Type::Named(id), Value::Enum(e)) => match &schema.types[id.index()].kind {
                TypeDefKind::Enum(d) => match d.variants.iter().find(|x| x.value == *e) {
                    Some(var) => self.string(&var.name),
                    None => {
                        let _ = write!(self.out, "{e}");
                    }
                },
                _ => {
                    let _ = write!(self.out, "{e}");
                }
            },
            _ => self.untyped(v),
        }
    }
}

fn key_text(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::Int(i) => i.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

pub(crate) fn syntax_reason(e: &serde_json::Error) -> String {
    // serde_json appends " at line L column C"; the caller reports the position itself.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn json_kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn wrong(schema: &Schema, ty: &Type, j: &Json) -> JsonError {
    JsonError::new(format!(
        "expected {}, found {}",
        expectation(schema, ty),
        json_kind(j)
    ))
}

fn expectation(schema: &Schema, ty: &Type) -> String {
    match ty {
        Type::Bool => "true or false".into(),
        Type::U64 | Type::I64 => format!("a `{}` (number or string)", ty.display(schema)),
        Type::F32 | Type::F64 => format!(
            "a `{}` (number, \"NaN\", \"Infinity\" or \"-Infinity\")",
            ty.display(schema)
        ),
        Type::Bytes => "base64 text for `bytes`".into(),
        Type::List(_) | Type::Array(..) => format!("an array for `{}`", ty.display(schema)),
        Type::Map(..) => format!("an object for `{}`", ty.display(schema)),
        Type::Named(id) => match &schema.types[id.index()].kind {
            TypeDefKind::Enum(_) => {
                format!("a variant name or number of enum `{}`", ty.display(schema))
            }
            TypeDefKind::Message(_) => format!("an object for message `{}`", ty.display(schema)),
            TypeDefKind::Union(_) => format!(
                "an object with one key (the variant) for union `{}`",
                ty.display(schema)
            ),
        },
        other => format!("a `{}`", other.display(schema)),
    }
}

/// An integer from a JSON number (or a string, when `strings` allows).
fn integer(j: &Json, ty: &Type, schema: &Schema, strings: bool) -> Result<i128, JsonError> {
    let (lo, hi) = ty.integer_bounds().unwrap_or((0, 0));
    let v: i128 = match j {
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.into()
            } else if let Some(i) = n.as_i64() {
                i.into()
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if f == 0.0 && f.is_sign_negative() {
                    // JSON `-0`, an integer literal that the parser reports as
                    // the float -0.0 (so `-0.0` cannot be told from it and is
                    // taken too): integers have no negative zero, it is 0.
                    0
                } else if f.fract() == 0.0 && f.is_finite() && !(lo..=hi).contains(&(f as i128)) {
                    // Also an integer literal beyond 64 bits, which the parser
                    // can only give as a float.
                    return Err(JsonError::new(format!(
                        "number {n} is out of range for `{}` ({lo}..={hi})",
                        ty.display(schema)
                    )));
                } else {
                    // A fraction or an exponent: the number may already have been
                    // rounded on the way to a float, so it is not taken as an integer.
                    return Err(JsonError::new(format!(
                        "expected an integer for `{}`, found {n} (integers are written without a fraction or exponent)",
                        ty.display(schema)
                    )));
                }
            }
        }
        Json::String(s) if strings => s.trim().parse::<i128>().map_err(|_| {
            JsonError::new(format!(
                "string {s:?} is not an integer for `{}`",
                ty.display(schema)
            ))
        })?,
        other => return Err(wrong(schema, ty, other)),
    };
    if v < lo || v > hi {
        return Err(JsonError::new(format!(
            "number {v} is out of range for `{}` ({lo}..={hi})",
            ty.display(schema)
        )));
    }
    Ok(v)
}

/// The bits JSON `"NaN"` stands for: the quiet NaN with sign and payload 0,
/// as the wire format's test vectors have it (§1.3). Other NaNs are written
/// `"NaN"` too, so their sign and payload do not survive JSON.
const NAN_F32_BITS: u32 = 0x7fc0_0000;
/// See [`NAN_F32_BITS`].
const NAN_F64_BITS: u64 = 0x7ff8_0000_0000_0000;

fn float(j: &Json, ty: &Type, schema: &Schema) -> Result<f64, JsonError> {
    match j {
        Json::Number(n) => n.as_f64().ok_or_else(|| wrong(schema, ty, j)),
        Json::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => Err(JsonError::new(format!(
                "string {s:?} is not a number; only \"NaN\", \"Infinity\" and \"-Infinity\" are accepted as strings"
            ))),
        },
        other => Err(wrong(schema, ty, other)),
    }
}

pub(crate) fn from_json<'s>(
    schema: &'s Schema,
    j: &Json,
    ty: &Type,
) -> Result<Value<'s>, JsonError> {
    Ok(match ty {
        Type::Bool => match j {
            Json::Bool(b) => Value::Bool(*b),
            other => return Err(wrong(schema, ty, other)),
        },
        Type::U8 => Value::U8(integer(j, ty, schema, false)? as u8),
        Type::U16 => Value::U16(integer(j, ty, schema, false)? as u16),
        Type::U32 => Value::U32(integer(j, ty, schema, false)? as u32),
        Type::U64 => Value::U64(integer(j, ty, schema, true)? as u64),
        Type::I8 => Value::I8(integer(j, ty, schema, false)? as i8),
        Type::I16 => Value::I16(integer(j, ty, schema, false)? as i16),
        Type::I32 => Value::I32(integer(j, ty, schema, false)? as i32),
        Type::I64 => Value::I64(integer(j, ty, schema, true)? as i64),
        Type::F32 => {
            let f = float(j, ty, schema)?;
            if f.is_nan() {
                Value::F32(f32::from_bits(NAN_F32_BITS))
            } else if f.is_finite() {
                // Re-parse the shortest decimal form as f32 directly: converting
                // through f64 could round twice.
                let x: f32 = format!("{f:?}").parse().unwrap_or(f as f32);
                if x.is_infinite() {
                    return Err(JsonError::new(format!(
                        "number {f:?} is out of range for `f32`, whose finite values stop at ±{:?}",
                        f32::MAX
                    )));
                }
                Value::F32(x)
            } else {
                Value::F32(f as f32)
            }
        }
        Type::F64 => {
            let f = float(j, ty, schema)?;
            Value::F64(if f.is_nan() {
                f64::from_bits(NAN_F64_BITS)
            } else {
                f
            })
        }
        Type::String => match j {
            Json::String(s) => Value::String(s.clone()),
            other => return Err(wrong(schema, ty, other)),
        },
        Type::Bytes => match j {
            Json::String(s) => Value::Bytes(BASE64.decode(s.as_bytes()).map_err(|e| {
                JsonError::new(format!(
                    "invalid base64 for `bytes` (standard alphabet, padded): {e}"
                ))
            })?),
            other => return Err(wrong(schema, ty, other)),
        },
        Type::Optional(t) => match j {
            Json::Null => Value::Optional(None),
            other => Value::Optional(Some(Box::new(from_json(schema, other, t)?))),
        },
        Type::List(t) => match j {
            Json::Array(items) => Value::List(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| from_json(schema, x, t).map_err(|e| e.within(format!("[{i}]"))))
                    .collect::<Result<_, _>>()?,
            ),
            other => return Err(wrong(schema, ty, other)),
        },
        Type::Array(t, n) => match j {
            Json::Array(items) if items.len() == *n as usize => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, x)| from_json(schema, x, t).map_err(|e| e.within(format!("[{i}]"))))
                    .collect::<Result<_, _>>()?,
            ),
            Json::Array(items) => {
                return Err(JsonError::new(format!(
                    "expected exactly {n} elements for `{}`, found {}",
                    ty.display(schema),
                    items.len()
                )));
            }
            other => return Err(wrong(schema, ty, other)),
        },
        Type::Map(kt, vt) => match j {
            Json::Object(obj) => {
                let mut map = BTreeMap::new();
                for (k, x) in obj {
                    let key = parse_key(schema, k, kt)
                        .map_err(|e| e.within(format!("[{}]", MapKey::String(k.clone()))))?;
                    let v = from_json(schema, x, vt).map_err(|e| e.within(format!("[{key}]")))?;
                    map.insert(key, v);
                }
                Value::Map(map)
            }
            other => return Err(wrong(schema, ty, other)),
        },
        Type::Named(id) => {
            let desc = Descriptor { schema, id: *id };
            match &schema.types[id.index()].kind {
                TypeDefKind::Enum(e) => match j {
                    Json::String(s) => match e.variants.iter().find(|v| &v.name == s) {
                        Some(v) => Value::Enum(v.value),
                        None => {
                            return Err(JsonError::new(format!(
                                "unknown variant {s:?} of enum `{}`; expected one of: {}",
                                desc.full_name(),
                                e.variants
                                    .iter()
                                    .map(|v| v.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )));
                        }
                    },
                    Json::Number(_) => Value::Enum(integer(j, &Type::U32, schema, false)? as u32),
                    other => return Err(wrong(schema, ty, other)),
                },
                TypeDefKind::Message(_) => match j {
                    Json::Object(obj) => Value::Message(message_from_json(desc, obj)?),
                    other => return Err(wrong(schema, ty, other)),
                },
                TypeDefKind::Union(_) => match j {
                    Json::Object(obj) => Value::Union(union_from_json(desc, obj)?),
                    other => return Err(wrong(schema, ty, other)),
                },
            }
        }
    })
}

fn parse_key(schema: &Schema, k: &str, ty: &Type) -> Result<MapKey, JsonError> {
    let key = match ty {
        Type::Bool => match k {
            "true" => MapKey::Bool(true),
            "false" => MapKey::Bool(false),
            _ => {
                return Err(JsonError::new(format!(
                    "map key {k:?} is not \"true\" or \"false\""
                )));
            }
        },
        Type::String => MapKey::String(k.to_string()),
        _ => MapKey::Int(k.parse::<i128>().map_err(|_| {
            JsonError::new(format!(
                "map key {k:?} is not a decimal `{}`",
                ty.display(schema)
            ))
        })?),
    };
    if key_value(&key, ty).is_none() {
        let (lo, hi) = ty.integer_bounds().unwrap_or((0, 0));
        return Err(JsonError::new(format!(
            "map key {k} is out of range for `{}` ({lo}..={hi})",
            ty.display(schema)
        )));
    }
    Ok(key)
}

fn message_from_json<'s>(
    desc: Descriptor<'s>,
    obj: &serde_json::Map<String, Json>,
) -> Result<DynamicMessage<'s>, JsonError> {
    let schema = desc.schema;
    let mut m = DynamicMessage::new(desc).ok_or_else(|| JsonError::new("not a message"))?;
    for (k, x) in obj {
        let Ok((i, f)) = desc.field(k) else {
            return Err(JsonError::new(format!(
                "unknown field `{k}` of `{}`; its fields are: {}",
                desc.full_name(),
                desc.fields()
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let v = if x.is_null() && !matches!(f.ty, Type::Optional(_)) {
            return Err(JsonError::new(format!(
                "null is only allowed for optional fields; `{}` is `{}`",
                f.name,
                f.ty.display(schema)
            ))
            .within(format!(".{k}")));
        } else {
            from_json(schema, x, &f.ty).map_err(|e| e.within(format!(".{k}")))?
        };
        m.fields[i] = v;
    }
    Ok(m)
}

fn union_from_json<'s>(
    desc: Descriptor<'s>,
    obj: &serde_json::Map<String, Json>,
) -> Result<DynamicUnion<'s>, JsonError> {
    let schema = desc.schema;
    let TypeDefKind::Union(def) = &desc.def().kind else {
        return Err(JsonError::new("not a union"));
    };
    let names = || {
        def.variants
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut entries = obj.iter();
    let (Some((k, x)), None) = (entries.next(), entries.next()) else {
        return Err(JsonError::new(format!(
            "a union is an object with exactly one key, the variant; found {} keys (variants of `{}`: {})",
            obj.len(),
            desc.full_name(),
            names()
        )));
    };
    if let Some(var) = def.variants.iter().find(|v| &v.name == k) {
        let value = from_json(schema, x, &var.ty).map_err(|e| e.within(format!(".{k}")))?;
        return Ok(DynamicUnion {
            desc,
            variant: UnionValue::Known {
                tag: var.tag,
                value: Box::new(value),
            },
        });
    }
    if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
        return Err(JsonError::new(format!(
            "unknown variant `{k}` of union `{}`; expected one of: {} (or the tag, in decimal, of a variant the schema does not define)",
            desc.full_name(),
            names()
        )));
    }
    unknown_variant_from_json(desc, def, k, x).map_err(|e| e.within(format!(".{k}")))
}

/// A variant the schema does not define, written
/// `{"<tag>": {"class": <1, 2 or 3>, "bytes": "<base64>"}}` (what decoding
/// such a variant gives). `bytes` is the value in its class encoding, and must
/// be exactly one value of that class.
fn unknown_variant_from_json<'s>(
    desc: Descriptor<'s>,
    def: &UnionDef,
    key: &str,
    value: &Json,
) -> Result<DynamicUnion<'s>, JsonError> {
    let tag = match key.parse::<u64>() {
        Ok(tag) if tag <= MAX_UNION_TAG && tag.to_string() == key => tag,
        Ok(tag) if tag <= MAX_UNION_TAG => {
            return Err(JsonError::new(format!(
                "write the tag of an unknown variant in decimal without leading zeros: `{tag}`, not `{key}`"
            )));
        }
        _ => {
            return Err(JsonError::new(format!(
                "tag {key} is above the largest union tag, {MAX_UNION_TAG} (a union key is uvarint(tag * 4 + class))"
            )));
        }
    };
    if let Some(var) = def.variants.iter().find(|v| u64::from(v.tag) == tag) {
        return Err(JsonError::new(format!(
            "tag {tag} is variant `{}` of `{}`: write it by name, as {{\"{}\": ...}}",
            var.name,
            desc.full_name(),
            var.name
        )));
    }
    let shape = "an unknown variant is written {\"<tag>\": {\"class\": <1, 2 or 3>, \"bytes\": \"<base64>\"}}";
    let Json::Object(raw) = value else {
        return Err(JsonError::new(format!(
            "{shape}; found {} instead of the object",
            json_kind(value)
        )));
    };
    if let Some(extra) = raw.keys().find(|k| *k != "class" && *k != "bytes") {
        return Err(JsonError::new(format!(
            "{shape}; `{extra}` is not one of its keys"
        )));
    }
    let class = match raw.get("class") {
        Some(Json::Number(n)) => n.as_u64().filter(|c| (1..=3).contains(c)).ok_or_else(|| {
            JsonError::new(format!(
                "`class` is {n}; it is 1 (varint), 2 (fixed32) or 3 (length-delimited)"
            ))
        })?,
        Some(other) => {
            return Err(JsonError::new(format!(
                "`class` is {}; it is the number 1 (varint), 2 (fixed32) or 3 (length-delimited)",
                json_kind(other)
            )));
        }
        None => return Err(JsonError::new(format!("{shape}; `class` is missing"))),
    };
    let bytes = match raw.get("bytes") {
        Some(Json::String(b)) => BASE64.decode(b).map_err(|e| {
            JsonError::new(format!(
                "invalid base64 in `bytes` (standard alphabet, padded): {e}"
            ))
        })?,
        Some(other) => {
            return Err(JsonError::new(format!(
                "`bytes` is {}; it is base64 text",
                json_kind(other)
            )));
        }
        None => return Err(JsonError::new(format!("{shape}; `bytes` is missing"))),
    };
    check_unknown_value(class as u8, &bytes)
        .map_err(|problem| JsonError::new(format!("unknown variant {tag}: {problem}")))?;
    Ok(DynamicUnion {
        desc,
        variant: UnionValue::Unknown {
            tag,
            class: class as u8,
            bytes,
        },
    })
}
