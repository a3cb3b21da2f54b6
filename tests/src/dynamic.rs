//! A type-driven codec for the `value` test vectors (wire format §5).
//!
//! The vector file describes types in schema syntax (`map<string, i32>`,
//! `list<Slot>`, names defined in a `types` object) and values in the JSON
//! mapping of the schema language. This module encodes such a JSON value to wire
//! bytes and decodes wire bytes back to JSON, driven only by the type, so the
//! vectors can be checked without generated code.
//!
//! It is built exclusively from the public primitives of
//! [`isml_runtime::wire`]: [`mod@write`] for output, [`PresenceWriter`] for bitmaps
//! and [`Reader`] for input (lengths, depth, presence, union keys, classes). That
//! makes it a second purpose: a proof that those primitives suffice to
//! implement every type of the schema language.
//!
//! ```
//! use isml_tests::dynamic::Schema;
//! use serde_json::json;
//!
//! let schema = Schema::from_json(&json!({})).unwrap();
//! let ty = schema.parse_type("map<string, i32>").unwrap();
//! let bytes = schema.encode(&ty, &json!({"b": -1, "a": 2})).unwrap();
//! assert_eq!(bytes, [0x06, 0x01, b'a', 0x04, 0x01, b'b', 0x01]);
//! assert!(schema.equal(&ty, &schema.decode(&ty, &bytes).unwrap(), &json!({"a": 2, "b": -1})));
//! ```
//!
//! Type, field and variant names are leaked to `&'static str` when a schema is
//! loaded, because [`DecodeError::in_field`] and [`EncodeError`] name them that
//! way; test schemas are small, so the leak is too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use isml_runtime::wire::{
    Class, DecodeError, EncodeError, Limits, MAX_TAG, PresenceWriter, Reader, write,
};
use serde_json::{Map, Value};

/// Deepest type expression [`Schema::parse_type`] accepts, so that a hostile
/// type string cannot overflow the stack of the parser.
pub const MAX_TYPE_DEPTH: usize = 64;

/// A type in schema syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// `bool`
    Bool,
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `string`
    String,
    /// `bytes`
    Bytes,
    /// `optional<T>`
    Optional(Box<Ty>),
    /// `list<T>`
    List(Box<Ty>),
    /// `map<K, V>`
    Map(Box<Ty>, Box<Ty>),
    /// `array<T, N>`
    Array(Box<Ty>, usize),
    /// A message, enum or union defined in the schema.
    Named(&'static str),
}

impl Ty {
    /// The integer bounds of an integer type, `None` for other types.
    fn int_bounds(&self) -> Option<(i128, i128)> {
        Some(match self {
            Ty::U8 => (0, u8::MAX.into()),
            Ty::U16 => (0, u16::MAX.into()),
            Ty::U32 => (0, u32::MAX.into()),
            Ty::U64 => (0, u64::MAX.into()),
            Ty::I8 => (i8::MIN.into(), i8::MAX.into()),
            Ty::I16 => (i16::MIN.into(), i16::MAX.into()),
            Ty::I32 => (i32::MIN.into(), i32::MAX.into()),
            Ty::I64 => (i64::MIN.into(), i64::MAX.into()),
            _ => return None,
        })
    }

    /// Width of the element encoding of a fixed-width type (§5.3), if it has one.
    fn fixed_width(&self) -> Option<usize> {
        match self {
            Ty::Bool | Ty::U8 | Ty::I8 => Some(1),
            Ty::F32 => Some(4),
            Ty::F64 => Some(8),
            _ => None,
        }
    }
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Bool => f.write_str("bool"),
            Ty::U8 => f.write_str("u8"),
            Ty::U16 => f.write_str("u16"),
            Ty::U32 => f.write_str("u32"),
            Ty::U64 => f.write_str("u64"),
            Ty::I8 => f.write_str("i8"),
            Ty::I16 => f.write_str("i16"),
            Ty::I32 => f.write_str("i32"),
            Ty::I64 => f.write_str("i64"),
            Ty::F32 => f.write_str("f32"),
            Ty::F64 => f.write_str("f64"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Optional(t) => write!(f, "optional<{t}>"),
            Ty::List(t) => write!(f, "list<{t}>"),
            Ty::Map(k, v) => write!(f, "map<{k}, {v}>"),
            Ty::Array(t, n) => write!(f, "array<{t}, {n}>"),
            Ty::Named(n) => f.write_str(n),
        }
    }
}

/// A field of a message.
#[derive(Debug, Clone)]
pub struct Field {
    /// The field name (the JSON key).
    pub name: &'static str,
    /// The tag, 1 ..= 255.
    pub tag: u32,
    /// The declared type.
    pub ty: Ty,
    /// `max_len`, for strings, bytes, lists and maps.
    pub max_len: Option<u64>,
    /// `range = A..=B`, for numbers.
    pub range: Option<(i128, i128)>,
}

/// A message definition; fields are kept in ascending tag order.
#[derive(Debug, Clone)]
pub struct MessageDef {
    /// The type name.
    pub name: &'static str,
    /// The type id, if the message has one.
    pub id: Option<u32>,
    /// The fields, ascending by tag.
    pub fields: Vec<Field>,
}

/// An enum definition.
#[derive(Debug, Clone)]
pub struct EnumDef {
    /// Variant name to value.
    pub values: BTreeMap<String, u32>,
    names: BTreeMap<u32, String>,
}

/// A union variant.
#[derive(Debug, Clone)]
pub struct Variant {
    /// The variant name (the JSON key).
    pub name: &'static str,
    /// The tag.
    pub tag: u32,
    /// The variant's type.
    pub ty: Ty,
}

/// A union definition; variants are kept in ascending tag order.
#[derive(Debug, Clone)]
pub struct UnionDef {
    /// The type name.
    pub name: &'static str,
    /// The type id, if the union has one.
    pub id: Option<u32>,
    /// The variants, ascending by tag.
    pub variants: Vec<Variant>,
}

/// A named type.
#[derive(Debug, Clone)]
pub enum Def {
    /// `message`
    Message(MessageDef),
    /// `enum`
    Enum(EnumDef),
    /// `union`
    Union(UnionDef),
}

/// A schema definition or type expression that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(pub String);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SchemaError {}

/// Why a JSON value could not be encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodeFailure {
    /// The codec rule refused it (`max_len`, `range`), as generated code would.
    Codec(EncodeError),
    /// The JSON does not fit the type (wrong shape, integer out of the type's
    /// bounds, unknown variant name ...).
    Value(String),
}

impl fmt::Display for EncodeFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeFailure::Codec(e) => write!(f, "{e}"),
            EncodeFailure::Value(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for EncodeFailure {}

fn bad<T>(msg: impl Into<String>) -> Result<T, EncodeFailure> {
    Err(EncodeFailure::Value(msg.into()))
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// A map key, ordered as §5.4 orders keys: integers by value, `false` before
/// `true`, strings by their UTF-8 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Int(i128),
    Bool(bool),
    Str(String),
}

/// The named types of a vector's `types` object, and the codec over them.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    defs: BTreeMap<&'static str, Def>,
}

impl Schema {
    /// Loads the `types` object of a vector (README format): every name maps to
    /// `{"message": ...}`, `{"enum": ...}` or `{"union": ...}`.
    pub fn from_json(types: &Value) -> Result<Schema, SchemaError> {
        let err = |m: String| Err(SchemaError(m));
        let Some(obj) = types.as_object() else {
            return err("`types` is not an object".into());
        };
        let mut schema = Schema::default();
        // Names first, so that definitions can refer to each other and to themselves.
        let names: BTreeSet<&'static str> = obj.keys().map(|k| leak(k)).collect();
        for (name, def) in obj {
            let name: &'static str = names
                .get(name.as_str())
                .copied()
                .unwrap_or_else(|| leak(name));
            let def = if let Some(m) = def.get("message") {
                Def::Message(parse_message(name, m, &names)?)
            } else if let Some(e) = def.get("enum") {
                Def::Enum(parse_enum(name, e)?)
            } else if let Some(u) = def.get("union") {
                Def::Union(parse_union(name, u, &names)?)
            } else {
                return err(format!("type `{name}` is neither message, enum nor union"));
            };
            schema.defs.insert(name, def);
        }
        Ok(schema)
    }

    /// The definition of a named type.
    pub fn def(&self, name: &str) -> Option<&Def> {
        self.defs.get(name)
    }

    /// Parses a type in schema syntax, resolving names against this schema.
    pub fn parse_type(&self, src: &str) -> Result<Ty, SchemaError> {
        let names = self.defs.keys().copied().collect();
        parse_type(src, &names)
    }

    fn named(&self, name: &str) -> &Def {
        // Names are resolved when the schema or the type is parsed.
        &self.defs[name]
    }

    /// The wire class of a field or variant of type `ty` (§5.1). For
    /// `optional<T>` this is the class of `T` (the value is only written when present).
    pub fn class_of(&self, ty: &Ty) -> Class {
        match ty {
            Ty::Bool
            | Ty::U8
            | Ty::U16
            | Ty::U32
            | Ty::U64
            | Ty::I8
            | Ty::I16
            | Ty::I32
            | Ty::I64 => Class::Varint,
            Ty::F32 => Class::Fixed32,
            Ty::Named(n) if matches!(self.named(n), Def::Enum(_)) => Class::Varint,
            Ty::Optional(inner) => self.class_of(inner),
            _ => Class::Delimited,
        }
    }

    // ---------------------------------------------------------------- encode

    /// Encodes `value` of type `ty` at the top level: the frame payload (body
    /// without a length) for a message, the union encoding for a union, the
    /// element encoding (§5.3) for every other type.
    pub fn encode(&self, ty: &Ty, value: &Value) -> Result<Vec<u8>, EncodeFailure> {
        let mut out = Vec::new();
        match ty {
            Ty::Named(n) => match self.named(n) {
                Def::Message(m) => self.put_body(&mut out, m, value)?,
                Def::Union(u) => self.put_union(&mut out, u, value)?,
                Def::Enum(_) => self.put_element(&mut out, ty, value)?,
            },
            _ => self.put_element(&mut out, ty, value)?,
        }
        Ok(out)
    }

    fn put_body(
        &self,
        out: &mut Vec<u8>,
        m: &MessageDef,
        value: &Value,
    ) -> Result<(), EncodeFailure> {
        let Some(obj) = value.as_object() else {
            return bad(format!("{}: expected an object, got {value}", m.name));
        };
        if let Some(k) = obj
            .keys()
            .find(|k| !m.fields.iter().any(|f| f.name == k.as_str()))
        {
            return bad(format!("{}: no field named `{k}`", m.name));
        }
        // 255 tags at most, so 64 bitmap bytes cover every message.
        let mut presence = PresenceWriter::<64>::new();
        let mut values = Vec::new();
        for f in &m.fields {
            let given = obj.get(f.name);
            let (ty, v) = match (&f.ty, given) {
                (Ty::Optional(_), None | Some(Value::Null)) => continue,
                (Ty::Optional(inner), Some(v)) => (&**inner, v.clone()),
                (ty, Some(v)) => (ty, v.clone()),
                (ty, None) => match self.default_value(ty) {
                    Some(v) => (ty, v),
                    None => return bad(format!("{}.{}: a value is required", m.name, f.name)),
                },
            };
            // §5.7: an encoder checks every value, a default it omits included.
            self.check_attrs_encode(m.name, f, ty, &v)?;
            if !matches!(f.ty, Ty::Optional(_))
                && self.omitted_when_default(ty)
                && self.is_default(ty, &v)?
            {
                continue;
            }
            presence.set(f.tag, self.class_of(ty));
            self.put_class_value(&mut values, ty, &v)
                .map_err(|e| in_path(e, m.name, f.name))?;
        }
        let start = out.len();
        presence.encode(out);
        debug_assert_eq!(out.len() - start, presence.encoded_len());
        out.extend_from_slice(&values);
        Ok(())
    }

    fn put_union(
        &self,
        out: &mut Vec<u8>,
        u: &UnionDef,
        value: &Value,
    ) -> Result<(), EncodeFailure> {
        let Some((name, v)) = single_entry(value) else {
            return bad(format!(
                "{}: a union is an object with exactly one key, got {value}",
                u.name
            ));
        };
        let Some(var) = u.variants.iter().find(|var| var.name == name.as_str()) else {
            return bad(format!("{}: no variant named `{name}`", u.name));
        };
        write::union_key(out, var.tag, self.class_of(&var.ty));
        self.put_class_value(out, &var.ty, v)
            .map_err(|e| in_path(e, u.name, var.name))
    }

    /// The value of a field or variant in the encoding of its class (§5.1).
    fn put_class_value(&self, out: &mut Vec<u8>, ty: &Ty, v: &Value) -> Result<(), EncodeFailure> {
        match ty {
            Ty::Bool => write::uvarint(out, u64::from(json_bool(v)?)),
            Ty::U8 | Ty::U16 | Ty::U32 | Ty::U64 => write::uvarint(out, json_int(ty, v)? as u64),
            Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 => write::svarint(out, json_int(ty, v)? as i64),
            Ty::F32 => write::f32(out, json_f32(v)?),
            Ty::Named(n) if matches!(self.named(n), Def::Enum(_)) => {
                write::uvarint(out, u64::from(self.enum_value(n, v)?));
            }
            Ty::String => write::len_prefixed(out, json_str(v)?.as_bytes()),
            Ty::Bytes => write::len_prefixed(out, &json_bytes(v)?),
            _ => {
                let mut content = Vec::new();
                self.put_content(&mut content, ty, v)?;
                write::len_prefixed(out, &content);
            }
        }
        Ok(())
    }

    /// The content of a length-delimited value (§5.4).
    fn put_content(&self, out: &mut Vec<u8>, ty: &Ty, v: &Value) -> Result<(), EncodeFailure> {
        match ty {
            Ty::F64 => write::f64(out, json_f64(v)?),
            Ty::String => out.extend_from_slice(json_str(v)?.as_bytes()),
            Ty::Bytes => out.extend_from_slice(&json_bytes(v)?),
            Ty::List(t) => {
                let Some(items) = v.as_array() else {
                    return bad(format!("{ty}: expected an array, got {v}"));
                };
                for item in items {
                    self.put_element(out, t, item)?;
                }
            }
            Ty::Map(k, t) => {
                let Some(obj) = v.as_object() else {
                    return bad(format!("{ty}: expected an object, got {v}"));
                };
                let mut entries = Vec::with_capacity(obj.len());
                for (key, val) in obj {
                    let parsed = self.parse_key(k, key)?;
                    entries.push((self.key_order(k, &parsed)?, parsed, val));
                }
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                if entries.windows(2).any(|w| w[0].0 == w[1].0) {
                    return bad(format!("{ty}: duplicate key in {v}"));
                }
                for (_, key, val) in entries {
                    self.put_element(out, k, &key)?;
                    self.put_element(out, t, val)?;
                }
            }
            Ty::Array(t, n) => {
                let Some(items) = v.as_array().filter(|a| a.len() == *n) else {
                    return bad(format!("{ty}: expected an array of {n} elements, got {v}"));
                };
                for item in items {
                    self.put_element(out, t, item)?;
                }
            }
            Ty::Named(name) => match self.named(name) {
                Def::Message(m) => self.put_body(out, m, v)?,
                Def::Union(u) => self.put_union(out, u, v)?,
                Def::Enum(_) => unreachable!("enums are class 1"),
            },
            _ => unreachable!("{ty} is not length-delimited"),
        }
        Ok(())
    }

    /// The element encoding of a value (§5.3).
    fn put_element(&self, out: &mut Vec<u8>, ty: &Ty, v: &Value) -> Result<(), EncodeFailure> {
        match ty {
            Ty::Bool => write::byte(out, u8::from(json_bool(v)?)),
            Ty::U8 => write::byte(out, json_int(ty, v)? as u8),
            Ty::I8 => write::byte(out, json_int(ty, v)? as i8 as u8),
            Ty::U16 | Ty::U32 | Ty::U64 => write::uvarint(out, json_int(ty, v)? as u64),
            Ty::I16 | Ty::I32 | Ty::I64 => write::svarint(out, json_int(ty, v)? as i64),
            Ty::F32 => write::f32(out, json_f32(v)?),
            Ty::F64 => write::f64(out, json_f64(v)?),
            Ty::String => write::len_prefixed(out, json_str(v)?.as_bytes()),
            Ty::Bytes => write::len_prefixed(out, &json_bytes(v)?),
            Ty::Optional(inner) => {
                if v.is_null() {
                    write::byte(out, 0);
                } else {
                    write::byte(out, 1);
                    self.put_element(out, inner, v)?;
                }
            }
            Ty::Array(..) => self.put_content(out, ty, v)?,
            Ty::List(_) => {
                let mut content = Vec::new();
                self.put_content(&mut content, ty, v)?;
                write::len_prefixed(out, &content);
            }
            Ty::Map(..) => {
                let mut content = Vec::new();
                self.put_content(&mut content, ty, v)?;
                write::len_prefixed(out, &content);
            }
            Ty::Named(n) => match self.named(n) {
                Def::Enum(_) => write::uvarint(out, u64::from(self.enum_value(n, v)?)),
                Def::Union(u) => self.put_union(out, u, v)?,
                Def::Message(m) => {
                    let mut content = Vec::new();
                    self.put_body(&mut content, m, v)?;
                    write::len_prefixed(out, &content);
                }
            },
        }
        Ok(())
    }

    /// Whether a non-optional field of this type is left out when it holds its default (§5.2).
    fn omitted_when_default(&self, ty: &Ty) -> bool {
        match ty {
            Ty::Array(..) | Ty::Optional(_) => false,
            Ty::Named(n) => matches!(self.named(n), Def::Enum(_)),
            _ => true,
        }
    }

    fn is_default(&self, ty: &Ty, v: &Value) -> Result<bool, EncodeFailure> {
        Ok(match ty {
            Ty::Bool => !json_bool(v)?,
            Ty::F32 => write::f32_is_default(json_f32(v)?),
            Ty::F64 => write::f64_is_default(json_f64(v)?),
            Ty::String => json_str(v)?.is_empty(),
            Ty::Bytes => json_bytes(v)?.is_empty(),
            Ty::List(_) => v.as_array().is_some_and(Vec::is_empty),
            Ty::Map(..) => v.as_object().is_some_and(Map::is_empty),
            Ty::Named(n) => self.enum_value(n, v)? == 0,
            _ => json_int(ty, v)? == 0,
        })
    }

    /// The default value of a type in the JSON mapping (§5.2). Messages default
    /// to `{}` (every field at its default), unions to their lowest-tag variant
    /// holding its default. `None` only for a union without variants or one
    /// whose default never ends (a variant of its own type).
    pub fn default_value(&self, ty: &Ty) -> Option<Value> {
        self.default_at(ty, 0)
    }

    fn default_at(&self, ty: &Ty, depth: usize) -> Option<Value> {
        if depth > MAX_TYPE_DEPTH {
            return None;
        }
        Some(match ty {
            Ty::Bool => Value::Bool(false),
            Ty::F32 | Ty::F64 => Value::from(0.0),
            Ty::String | Ty::Bytes => Value::String(String::new()),
            Ty::Optional(_) => Value::Null,
            Ty::List(_) => Value::Array(Vec::new()),
            Ty::Map(..) => Value::Object(Map::new()),
            Ty::Array(t, n) => Value::Array(vec![self.default_at(t, depth + 1)?; *n]),
            Ty::Named(name) => match self.named(name) {
                Def::Message(_) => Value::Object(Map::new()),
                Def::Enum(e) => e.to_json(0),
                Def::Union(u) => {
                    let first = u.variants.first()?;
                    let mut obj = Map::new();
                    obj.insert(
                        first.name.to_owned(),
                        self.default_at(&first.ty, depth + 1)?,
                    );
                    Value::Object(obj)
                }
            },
            _ => Value::from(0),
        })
    }

    fn check_attrs_encode(
        &self,
        message: &'static str,
        f: &Field,
        ty: &Ty,
        v: &Value,
    ) -> Result<(), EncodeFailure> {
        if let Some(max) = f.max_len {
            let len = match ty {
                Ty::String => json_str(v)?.len(),
                Ty::Bytes => json_bytes(v)?.len(),
                Ty::List(_) => v.as_array().map_or(0, Vec::len),
                Ty::Map(..) => v.as_object().map_or(0, Map::len),
                _ => 0,
            };
            if len as u64 > max {
                return Err(EncodeFailure::Codec(EncodeError::MaxLen {
                    message,
                    field: f.name,
                    len,
                    max,
                }));
            }
        }
        if let Some((min, max)) = f.range
            && !in_range(ty, v, min, max)?
        {
            return Err(EncodeFailure::Codec(EncodeError::Range {
                message,
                field: f.name,
                value: v.to_string(),
                min,
                max,
            }));
        }
        Ok(())
    }

    fn enum_value(&self, name: &str, v: &Value) -> Result<u32, EncodeFailure> {
        let Def::Enum(e) = self.named(name) else {
            return bad(format!("`{name}` is not an enum"));
        };
        match v {
            Value::String(s) => match e.values.get(s) {
                Some(&n) => Ok(n),
                None => bad(format!("{name}: no value named `{s}`")),
            },
            _ => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(n) => Ok(n),
                None => bad(format!("{name}: expected a name or a u32, got {v}")),
            },
        }
    }

    /// Parses a JSON object key into the JSON value of the key type.
    fn parse_key(&self, k: &Ty, key: &str) -> Result<Value, EncodeFailure> {
        match k {
            Ty::String => Ok(Value::String(key.to_owned())),
            Ty::Bool => match key {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => bad(format!("map key `{key}` is not a bool")),
            },
            Ty::Named(_) => match key.parse::<u32>() {
                Ok(n) => Ok(Value::from(n)),
                Err(_) => Ok(Value::String(key.to_owned())),
            },
            _ if k.int_bounds().is_some() => {
                // Decimal only: a leading `+` or zeros would be a second spelling of one key.
                let n: i128 = key
                    .parse()
                    .ok()
                    .filter(|n: &i128| n.to_string() == key)
                    .ok_or_else(|| {
                        EncodeFailure::Value(format!("map key `{key}` is not a decimal integer"))
                    })?;
                Ok(Value::from(serde_json::Number::from_i128(n).ok_or_else(
                    || EncodeFailure::Value(format!("map key `{key}` is too large")),
                )?))
            }
            _ => bad(format!("{k} cannot be a map key")),
        }
    }

    fn key_order(&self, k: &Ty, v: &Value) -> Result<Key, EncodeFailure> {
        Ok(match k {
            Ty::String => Key::Str(json_str(v)?.to_owned()),
            Ty::Bool => Key::Bool(json_bool(v)?),
            Ty::Named(n) => Key::Int(self.enum_value(n, v)?.into()),
            _ => Key::Int(json_int(k, v)?),
        })
    }

    /// The JSON object key of a map key value.
    fn key_string(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    // ---------------------------------------------------------------- decode

    /// Decodes a top-level value (see [`Schema::encode`]) with the default [`Limits`].
    pub fn decode(&self, ty: &Ty, bytes: &[u8]) -> Result<Value, DecodeError> {
        self.decode_with_limits(ty, bytes, &Limits::DEFAULT)
    }

    /// Decodes a top-level value with the given limits. Every byte must be used:
    /// bytes left over are a [`DecodeError::ContentLength`].
    pub fn decode_with_limits(
        &self,
        ty: &Ty,
        bytes: &[u8],
        limits: &Limits,
    ) -> Result<Value, DecodeError> {
        // §7: the top-level payload is level 0. A message body or a union at the
        // top is read in place; a top-level list, map, array or optional would
        // take a level of its own here, so it gets that level back.
        let top = match ty {
            Ty::List(_) | Ty::Map(..) | Ty::Array(..) | Ty::Optional(_) => Limits {
                max_depth: limits.max_depth.saturating_add(1),
                ..*limits
            },
            _ => *limits,
        };
        let mut r = Reader::with_limits(bytes, &top);
        let v = match ty {
            Ty::Named(n) => match self.named(n) {
                Def::Message(m) => self.get_body(&mut r, m)?,
                Def::Union(u) => self.get_union(&mut r, u)?,
                Def::Enum(_) => self.get_element(&mut r, ty)?,
            },
            _ => self.get_element(&mut r, ty)?,
        };
        r.finish("payload")?;
        Ok(v)
    }

    fn get_body(&self, r: &mut Reader<'_>, m: &MessageDef) -> Result<Value, DecodeError> {
        let presence = r.presence()?;
        let mut obj = Map::new();
        for (tag, class) in presence {
            let Some(f) = m.fields.iter().find(|f| f.tag == tag) else {
                // A field this reader does not know (§6): skipped by its class.
                r.skip(class)?;
                continue;
            };
            let ty = match &f.ty {
                Ty::Optional(inner) => &**inner,
                ty => ty,
            };
            let v = (|| {
                r.expect_class(tag, class, self.class_of(ty))?;
                let v = self.get_class_value(r, ty)?;
                self.check_attrs_decode(f, ty, &v)?;
                Ok(v)
            })()
            .map_err(|e: DecodeError| e.in_field(m.name, f.name))?;
            obj.insert(f.name.to_owned(), v);
        }
        for f in &m.fields {
            if !obj.contains_key(f.name)
                && !matches!(f.ty, Ty::Optional(_))
                && let Some(v) = self.default_value(&f.ty)
            {
                obj.insert(f.name.to_owned(), v);
            }
        }
        Ok(Value::Object(obj))
    }

    fn get_union(&self, r: &mut Reader<'_>, u: &UnionDef) -> Result<Value, DecodeError> {
        let at = r.position();
        let (tag, class) = r.union_key()?;
        let Some(var) = u.variants.iter().find(|v| u64::from(v.tag) == tag) else {
            return Err(DecodeError::UnknownVariant { at, tag });
        };
        let v = (|| {
            r.expect_class(var.tag, class, self.class_of(&var.ty))?;
            self.get_class_value(r, &var.ty)
        })()
        .map_err(|e: DecodeError| e.in_field(u.name, var.name))?;
        let mut obj = Map::new();
        obj.insert(var.name.to_owned(), v);
        Ok(Value::Object(obj))
    }

    fn get_class_value(&self, r: &mut Reader<'_>, ty: &Ty) -> Result<Value, DecodeError> {
        Ok(match ty {
            Ty::Bool => Value::Bool(r.bool_varint()?),
            Ty::U8 => Value::from(r.u8_varint()?),
            Ty::U16 => Value::from(r.u16()?),
            Ty::U32 => Value::from(r.u32()?),
            Ty::U64 => Value::from(r.u64()?),
            Ty::I8 => Value::from(r.i8_varint()?),
            Ty::I16 => Value::from(r.i16()?),
            Ty::I32 => Value::from(r.i32()?),
            Ty::I64 => Value::from(r.i64()?),
            Ty::F32 => f32_json(r.f32()?),
            Ty::Named(n) if matches!(self.named(n), Def::Enum(_)) => self.enum_json(n, r.u32()?),
            Ty::String => Value::String(r.str()?.to_owned()),
            Ty::Bytes => Value::String(BASE64.encode(r.byte_slice()?)),
            _ => self.get_delimited(r, ty)?,
        })
    }

    /// `uvarint(n)` and n bytes of content (§5.4), one nesting level deeper.
    fn get_delimited(&self, r: &mut Reader<'_>, ty: &Ty) -> Result<Value, DecodeError> {
        let mut c = r.delimited()?;
        let v = match ty {
            Ty::List(t) => {
                let content_at = c.position();
                if let Some(w) = t.fixed_width()
                    && c.remaining() % w != 0
                {
                    return Err(DecodeError::RaggedList {
                        at: content_at,
                        len: c.remaining(),
                        width: w,
                    });
                }
                let mut items = Vec::new();
                while !c.is_empty() {
                    items.push(self.get_element(&mut c, t)?);
                }
                Value::Array(items)
            }
            Ty::Map(k, t) => {
                let mut obj = Map::new();
                let mut last: Option<Key> = None;
                while !c.is_empty() {
                    let at = c.position();
                    let key = self.get_element(&mut c, k)?;
                    let order = self
                        .key_order(k, &key)
                        .map_err(|_| DecodeError::MapKeyOrder { at })?;
                    if last.as_ref().is_some_and(|l| *l >= order) {
                        return Err(DecodeError::MapKeyOrder { at });
                    }
                    last = Some(order);
                    let val = self.get_element(&mut c, t)?;
                    obj.insert(Self::key_string(&key), val);
                }
                Value::Object(obj)
            }
            Ty::Array(t, n) => {
                let mut items = Vec::with_capacity((*n).min(c.remaining()));
                for _ in 0..*n {
                    if c.is_empty() {
                        // "Fewer or more bytes is an error" (§5.4): fewer is named like more.
                        return Err(DecodeError::ContentLength {
                            at: c.position(),
                            what: "array content",
                            found: *n - items.len(),
                        });
                    }
                    items.push(self.get_element(&mut c, t)?);
                }
                Value::Array(items)
            }
            Ty::Named(name) => match self.named(name) {
                Def::Message(m) => self.get_body(&mut c, m)?,
                Def::Union(u) => self.get_union(&mut c, u)?,
                Def::Enum(_) => unreachable!("enums are class 1"),
            },
            Ty::F64 => {
                // An f64 field is length-delimited and counts as a nesting level (§7).
                if c.remaining() != 8 {
                    return Err(DecodeError::ContentLength {
                        at: c.position(),
                        what: "f64",
                        found: c.remaining().abs_diff(8),
                    });
                }
                f64_json(c.f64()?)
            }
            _ => unreachable!("{ty} has no delimited content of its own"),
        };
        c.finish("length-delimited content")?;
        Ok(v)
    }

    fn get_items(&self, r: &mut Reader<'_>, t: &Ty, n: usize) -> Result<Vec<Value>, DecodeError> {
        // Every element takes at least a byte: never trust `n` beyond the input.
        let mut items = Vec::with_capacity(n.min(r.remaining()));
        for _ in 0..n {
            items.push(self.get_element(r, t)?);
        }
        Ok(items)
    }

    /// An element (§5.3).
    fn get_element(&self, r: &mut Reader<'_>, ty: &Ty) -> Result<Value, DecodeError> {
        Ok(match ty {
            Ty::Bool => Value::Bool(r.bool()?),
            Ty::U8 => Value::from(r.u8()?),
            Ty::I8 => Value::from(r.i8()?),
            Ty::U16 => Value::from(r.u16()?),
            Ty::U32 => Value::from(r.u32()?),
            Ty::U64 => Value::from(r.u64()?),
            Ty::I16 => Value::from(r.i16()?),
            Ty::I32 => Value::from(r.i32()?),
            Ty::I64 => Value::from(r.i64()?),
            Ty::F32 => f32_json(r.f32()?),
            Ty::F64 => f64_json(r.f64()?),
            Ty::String => Value::String(r.str()?.to_owned()),
            Ty::Bytes => Value::String(BASE64.encode(r.byte_slice()?)),
            Ty::List(_) | Ty::Map(..) => self.get_delimited(r, ty)?,
            Ty::Array(t, n) => Value::Array(inline_nested(r, |c| self.get_items(c, t, *n))?),
            Ty::Optional(inner) => inline_nested(r, |c| {
                let at = c.position();
                match c.u8()? {
                    0 => Ok(Value::Null),
                    1 => self.get_element(c, inner),
                    // §5.3 names no error for this byte; it is a bool in all but name.
                    b => Err(DecodeError::InvalidBool {
                        at,
                        value: b.into(),
                    }),
                }
            })?,
            Ty::Named(n) => match self.named(n) {
                Def::Enum(_) => self.enum_json(n, r.u32()?),
                Def::Union(u) => inline_nested(r, |c| self.get_union(c, u))?,
                Def::Message(_) => self.get_delimited(r, ty)?,
            },
        })
    }

    fn check_attrs_decode(&self, f: &Field, ty: &Ty, v: &Value) -> Result<(), DecodeError> {
        if let Some(max) = f.max_len {
            let len = match ty {
                Ty::String => v.as_str().map_or(0, str::len),
                Ty::Bytes => v
                    .as_str()
                    .and_then(|s| BASE64.decode(s).ok())
                    .map_or(0, |b| b.len()),
                Ty::List(_) => v.as_array().map_or(0, Vec::len),
                Ty::Map(..) => v.as_object().map_or(0, Map::len),
                _ => 0,
            };
            if len as u64 > max {
                return Err(DecodeError::MaxLen { len, max });
            }
        }
        if let Some((min, max)) = f.range
            && !in_range(ty, v, min, max).unwrap_or(false)
        {
            return Err(DecodeError::Range {
                value: v.to_string(),
                min,
                max,
            });
        }
        Ok(())
    }

    fn enum_json(&self, name: &str, n: u32) -> Value {
        match self.named(name) {
            Def::Enum(e) => e.to_json(n),
            _ => Value::from(n),
        }
    }

    // ---------------------------------------------------------------- compare

    /// Whether two JSON values of type `ty` denote the same value: absent fields
    /// equal their defaults, enum names equal their numbers, floats compare by
    /// bit pattern (`"NaN"` is the quiet NaN `0x7fc00000` / `0x7ff8000000000000`),
    /// map keys compare by value.
    pub fn equal(&self, ty: &Ty, a: &Value, b: &Value) -> bool {
        match ty {
            Ty::Bool => a.as_bool().is_some() && a.as_bool() == b.as_bool(),
            Ty::F32 => {
                matches!((json_f32(a), json_f32(b)), (Ok(x), Ok(y)) if x.to_bits() == y.to_bits())
            }
            Ty::F64 => {
                matches!((json_f64(a), json_f64(b)), (Ok(x), Ok(y)) if x.to_bits() == y.to_bits())
            }
            Ty::String => a.is_string() && a == b,
            Ty::Bytes => matches!((json_bytes(a), json_bytes(b)), (Ok(x), Ok(y)) if x == y),
            Ty::Optional(inner) => match (a, b) {
                (Value::Null, Value::Null) => true,
                (Value::Null, _) | (_, Value::Null) => false,
                _ => self.equal(inner, a, b),
            },
            Ty::List(t) | Ty::Array(t, _) => match (a.as_array(), b.as_array()) {
                (Some(x), Some(y)) => {
                    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| self.equal(t, p, q))
                }
                _ => false,
            },
            Ty::Map(k, t) => {
                let entries = |v: &Value| -> Option<BTreeMap<Key, Value>> {
                    let mut out = BTreeMap::new();
                    for (key, val) in v.as_object()? {
                        let parsed = self.parse_key(k, key).ok()?;
                        out.insert(self.key_order(k, &parsed).ok()?, val.clone());
                    }
                    Some(out)
                };
                match (entries(a), entries(b)) {
                    (Some(x), Some(y)) => {
                        x.len() == y.len()
                            && x.iter()
                                .zip(&y)
                                .all(|((kx, vx), (ky, vy))| kx == ky && self.equal(t, vx, vy))
                    }
                    _ => false,
                }
            }
            Ty::Named(n) => match self.named(n) {
                Def::Enum(_) => {
                    matches!((self.enum_value(n, a), self.enum_value(n, b)), (Ok(x), Ok(y)) if x == y)
                }
                Def::Union(u) => match (single_entry(a), single_entry(b)) {
                    (Some((ka, va)), Some((kb, vb))) if ka == kb => u
                        .variants
                        .iter()
                        .find(|v| v.name == ka.as_str())
                        .is_some_and(|var| self.equal(&var.ty, va, vb)),
                    _ => false,
                },
                Def::Message(m) => {
                    let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else {
                        return false;
                    };
                    let known = |o: &Map<String, Value>| {
                        o.keys()
                            .all(|k| m.fields.iter().any(|f| f.name == k.as_str()))
                    };
                    known(x)
                        && known(y)
                        && m.fields.iter().all(|f| {
                            let fill = |v: Option<&Value>| {
                                v.cloned().or_else(|| self.default_value(&f.ty))
                            };
                            match (fill(x.get(f.name)), fill(y.get(f.name))) {
                                (Some(p), Some(q)) => self.equal(&f.ty, &p, &q),
                                (None, None) => true,
                                _ => false,
                            }
                        })
                }
            },
            _ => matches!((json_int(ty, a), json_int(ty, b)), (Ok(x), Ok(y)) if x == y),
        }
    }
}

impl EnumDef {
    fn to_json(&self, n: u32) -> Value {
        match self.names.get(&n) {
            Some(name) => Value::String(name.clone()),
            None => Value::from(n),
        }
    }
}

/// Runs `f` on a reader one nesting level deeper over the rest of `r`'s region,
/// then moves `r` past what `f` read. Element encodings without a length (arrays,
/// unions, optionals) nest this way, so the depth limit covers them too.
fn inline_nested<'a, T>(
    r: &mut Reader<'a>,
    f: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let start = r.position();
    let mut child = r.clone().sub(r.remaining())?;
    let v = f(&mut child)?;
    r.raw(child.position() - start)?;
    Ok(v)
}

/// The key and value of a one-entry object (a union value).
fn single_entry(v: &Value) -> Option<(&String, &Value)> {
    v.as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
}

fn in_path(e: EncodeFailure, message: &str, field: &str) -> EncodeFailure {
    match e {
        EncodeFailure::Value(s) => EncodeFailure::Value(format!("{message}.{field}: {s}")),
        other => other,
    }
}

fn in_range(ty: &Ty, v: &Value, min: i128, max: i128) -> Result<bool, EncodeFailure> {
    Ok(match ty {
        Ty::F32 => {
            let x = f64::from(json_f32(v)?);
            x >= min as f64 && x <= max as f64
        }
        Ty::F64 => {
            let x = json_f64(v)?;
            x >= min as f64 && x <= max as f64
        }
        _ => {
            let x = json_int(ty, v)?;
            (min..=max).contains(&x)
        }
    })
}

fn json_bool(v: &Value) -> Result<bool, EncodeFailure> {
    v.as_bool()
        .map_or_else(|| bad(format!("expected a bool, got {v}")), Ok)
}

fn json_str(v: &Value) -> Result<&str, EncodeFailure> {
    v.as_str()
        .map_or_else(|| bad(format!("expected a string, got {v}")), Ok)
}

fn json_bytes(v: &Value) -> Result<Vec<u8>, EncodeFailure> {
    BASE64
        .decode(json_str(v)?)
        .map_err(|e| EncodeFailure::Value(format!("bytes are not padded standard base64: {e}")))
}

/// An integer of an integer type, checked against the type's bounds.
fn json_int(ty: &Ty, v: &Value) -> Result<i128, EncodeFailure> {
    let Some((min, max)) = ty.int_bounds() else {
        return bad(format!("{ty} is not an integer type"));
    };
    let n = v
        .as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
        .ok_or_else(|| EncodeFailure::Value(format!("{ty}: expected an integer, got {v}")))?;
    if n < min || n > max {
        return bad(format!("{ty}: {n} is out of bounds"));
    }
    Ok(n)
}

/// A JSON float: a number or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub fn json_f64(v: &Value) -> Result<f64, EncodeFailure> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| bad(format!("{n} is not a float")), Ok),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => bad(format!("expected a float, got {v}")),
    }
}

/// A JSON float rounded to `f32` (to nearest, as a binary32 conversion does).
pub fn json_f32(v: &Value) -> Result<f32, EncodeFailure> {
    match v {
        Value::String(s) if s == "NaN" => Ok(f32::NAN),
        _ => json_f64(v).map(|x| x as f32),
    }
}

/// The JSON mapping of an `f64`.
pub fn f64_json(x: f64) -> Value {
    if x.is_nan() {
        Value::String("NaN".into())
    } else if x.is_infinite() {
        Value::String(if x > 0.0 { "Infinity" } else { "-Infinity" }.into())
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// The JSON mapping of an `f32` (its exact value as an `f64`).
pub fn f32_json(x: f32) -> Value {
    f64_json(f64::from(x))
}

fn parse_message(
    name: &'static str,
    m: &Value,
    names: &BTreeSet<&'static str>,
) -> Result<MessageDef, SchemaError> {
    let id = parse_id(name, m)?;
    let Some(fields_json) = m.get("fields").and_then(Value::as_array) else {
        return Err(SchemaError(format!(
            "message `{name}` has no `fields` array"
        )));
    };
    let mut fields = Vec::new();
    for f in fields_json {
        let fname = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError(format!("a field of `{name}` has no name")))?;
        let tag = parse_tag(name, f)?;
        let ty = field_type(name, f, names)?;
        let max_len = match f.get("max_len") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| SchemaError(format!("`{name}.{fname}`: bad max_len {v}")))?,
            ),
        };
        let range = match f.get("range") {
            None | Some(Value::Null) => None,
            Some(Value::Array(r)) if r.len() == 2 => {
                let bound = |v: &Value| {
                    v.as_i64()
                        .map(i128::from)
                        .or_else(|| v.as_u64().map(i128::from))
                        .ok_or_else(|| {
                            SchemaError(format!(
                                "`{name}.{fname}`: range bound {v} is not an integer"
                            ))
                        })
                };
                Some((bound(&r[0])?, bound(&r[1])?))
            }
            Some(v) => return Err(SchemaError(format!("`{name}.{fname}`: bad range {v}"))),
        };
        fields.push(Field {
            name: leak(fname),
            tag,
            ty,
            max_len,
            range,
        });
    }
    fields.sort_by_key(|f| f.tag);
    if fields.windows(2).any(|w| w[0].tag == w[1].tag) {
        return Err(SchemaError(format!("message `{name}` uses a tag twice")));
    }
    Ok(MessageDef { name, id, fields })
}

fn parse_union(
    name: &'static str,
    u: &Value,
    names: &BTreeSet<&'static str>,
) -> Result<UnionDef, SchemaError> {
    let id = parse_id(name, u)?;
    let Some(vars) = u.get("variants").and_then(Value::as_array) else {
        return Err(SchemaError(format!(
            "union `{name}` has no `variants` array"
        )));
    };
    let mut variants = Vec::new();
    for v in vars {
        let vname = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| SchemaError(format!("a variant of `{name}` has no name")))?;
        let ty = field_type(name, v, names)?;
        if matches!(ty, Ty::Optional(_)) {
            // §5.7: rejected by the schema compiler, so it has no encoding.
            return Err(SchemaError(format!(
                "union `{name}`: variant `{vname}` of optional type"
            )));
        }
        variants.push(Variant {
            name: leak(vname),
            tag: parse_tag(name, v)?,
            ty,
        });
    }
    variants.sort_by_key(|v| v.tag);
    if variants.windows(2).any(|w| w[0].tag == w[1].tag) {
        return Err(SchemaError(format!("union `{name}` uses a tag twice")));
    }
    Ok(UnionDef { name, id, variants })
}

fn parse_enum(name: &str, e: &Value) -> Result<EnumDef, SchemaError> {
    let Some(obj) = e.as_object() else {
        return Err(SchemaError(format!("enum `{name}` is not an object")));
    };
    let mut values = BTreeMap::new();
    let mut names = BTreeMap::new();
    for (k, v) in obj {
        let n = v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                SchemaError(format!("enum `{name}`: value {v} of `{k}` is not a u32"))
            })?;
        values.insert(k.clone(), n);
        if names.insert(n, k.clone()).is_some() {
            return Err(SchemaError(format!(
                "enum `{name}` uses the value {n} twice"
            )));
        }
    }
    Ok(EnumDef { values, names })
}

fn parse_id(name: &str, def: &Value) -> Result<Option<u32>, SchemaError> {
    match def.get("id") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
            .map(Some)
            .ok_or_else(|| SchemaError(format!("`{name}`: bad type id {v}"))),
    }
}

fn parse_tag(owner: &str, f: &Value) -> Result<u32, SchemaError> {
    f.get("tag")
        .and_then(Value::as_u64)
        .and_then(|t| u32::try_from(t).ok())
        .filter(|t| (1..=MAX_TAG).contains(t))
        .ok_or_else(|| SchemaError(format!("`{owner}`: tag missing or outside 1..=255 in {f}")))
}

fn field_type(owner: &str, f: &Value, names: &BTreeSet<&'static str>) -> Result<Ty, SchemaError> {
    let src = f
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| SchemaError(format!("`{owner}`: no type in {f}")))?;
    parse_type(src, names)
}

/// Parses a type expression against a set of defined names.
fn parse_type(src: &str, names: &BTreeSet<&'static str>) -> Result<Ty, SchemaError> {
    let mut p = TypeParser { src, pos: 0, names };
    let ty = p.ty(0)?;
    p.skip_ws();
    if p.pos != src.len() {
        return Err(p.error("end of type"));
    }
    Ok(ty)
}

struct TypeParser<'s> {
    src: &'s str,
    pos: usize,
    names: &'s BTreeSet<&'static str>,
}

impl<'s> TypeParser<'s> {
    fn error(&self, expected: &str) -> SchemaError {
        SchemaError(format!(
            "type `{}`: expected {expected} at byte {}",
            self.src, self.pos
        ))
    }

    fn skip_ws(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> Result<(), SchemaError> {
        self.skip_ws();
        if self.src[self.pos..].starts_with(c) {
            self.pos += c.len_utf8();
            Ok(())
        } else {
            Err(self.error(&format!("`{c}`")))
        }
    }

    fn word(&mut self) -> Result<&'s str, SchemaError> {
        self.skip_ws();
        let src: &'s str = self.src;
        let rest = &src[self.pos..];
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(self.error("a type name"));
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn ty(&mut self, depth: usize) -> Result<Ty, SchemaError> {
        if depth >= MAX_TYPE_DEPTH {
            return Err(SchemaError(format!(
                "type `{}` nests deeper than {MAX_TYPE_DEPTH}",
                self.src
            )));
        }
        let word = self.word()?.to_owned();
        Ok(match word.as_str() {
            "bool" => Ty::Bool,
            "u8" => Ty::U8,
            "u16" => Ty::U16,
            "u32" => Ty::U32,
            "u64" => Ty::U64,
            "i8" => Ty::I8,
            "i16" => Ty::I16,
            "i32" => Ty::I32,
            "i64" => Ty::I64,
            "f32" => Ty::F32,
            "f64" => Ty::F64,
            "string" => Ty::String,
            "bytes" => Ty::Bytes,
            "optional" | "list" => {
                self.eat('<')?;
                let t = Box::new(self.ty(depth + 1)?);
                self.eat('>')?;
                if word == "list" {
                    Ty::List(t)
                } else if matches!(*t, Ty::Optional(_)) {
                    // §5.7: rejected by the schema compiler, so it has no encoding.
                    return Err(SchemaError(format!(
                        "type `{}`: optional<optional<T>> has no encoding",
                        self.src
                    )));
                } else {
                    Ty::Optional(t)
                }
            }
            "map" => {
                self.eat('<')?;
                let k = self.ty(depth + 1)?;
                let ok_key =
                    matches!(k, Ty::Bool | Ty::String | Ty::Named(_)) || k.int_bounds().is_some();
                if !ok_key {
                    return Err(SchemaError(format!(
                        "type `{}`: {k} cannot be a map key",
                        self.src
                    )));
                }
                self.eat(',')?;
                let v = self.ty(depth + 1)?;
                self.eat('>')?;
                Ty::Map(Box::new(k), Box::new(v))
            }
            "array" => {
                self.eat('<')?;
                let t = self.ty(depth + 1)?;
                self.eat(',')?;
                let n = self.word()?;
                let n = n.parse::<usize>().map_err(|_| {
                    SchemaError(format!("type `{}`: bad array length `{n}`", self.src))
                })?;
                self.eat('>')?;
                Ty::Array(Box::new(t), n)
            }
            name => match self.names.get(name) {
                Some(&n) => Ty::Named(n),
                None => {
                    return Err(SchemaError(format!(
                        "type `{}`: unknown type `{name}`",
                        self.src
                    )));
                }
            },
        })
    }
}
