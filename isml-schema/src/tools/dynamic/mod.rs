//! Dynamic messages: build, inspect, encode, decode and convert to JSON any
//! message of a [`Schema`] at run time, without generated code.
//!
//! A [`MessageFactory`] finds types by name or type id and creates
//! [`DynamicMessage`]s; their fields are read and written by name with type
//! checks. The codec produces exactly the bytes generated code produces (the
//! `isml-codegen-tests` crate checks this on every type), and the JSON
//! conversion follows the schema language's JSON mapping.
//!
//! ```
//! use isml_schema::dynamic::{MessageFactory, Value};
//!
//! let schema = isml_schema::load_str(
//!     "demo.isml",
//!     "package demo; message Reading [id = 3] { slot: u8 = 1; volts: f32 = 2; }",
//! )?;
//! let factory = MessageFactory::new(&schema);
//! let mut m = factory.new_message("Reading")?;
//! m.set("slot", 2u8)?;
//! m.set("volts", 23.5f32)?;
//! // Presence: tag 1 class 1 (varint), tag 2 class 2 (fixed32) = 0b10_01.
//! assert_eq!(m.encode()?, [0x09, 0x02, 0x00, 0x00, 0xbc, 0x41]);
//!
//! let json = m.to_json_string(false);
//! assert_eq!(json, r#"{"slot":2,"volts":23.5}"#);
//! let back = factory.message_from_json_str("demo.Reading", &json)?;
//! assert_eq!(back, Value::Message(m.clone()));
//!
//! let err = m.set("slot", "two").unwrap_err();
//! assert_eq!(err.to_string(), "field `demo.Reading.slot` is `u8`, not a string");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod json;

use std::collections::BTreeMap;
use std::fmt;

use crate::ir::{FieldDef, Schema, Type, TypeDef, TypeDefKind, TypeId};

pub use codec::DEFAULT_MAX_DEPTH;

/// A type of a schema: a schema and the id of one of its named types.
#[derive(Clone, Copy)]
pub struct Descriptor<'s> {
    schema: &'s Schema,
    id: TypeId,
}

impl fmt::Debug for Descriptor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Descriptor({})", self.full_name())
    }
}

impl PartialEq for Descriptor<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.schema, other.schema) && self.id == other.id
    }
}

impl<'s> Descriptor<'s> {
    /// The descriptor of type `id` of `schema`, if it exists.
    pub fn new(schema: &'s Schema, id: TypeId) -> Option<Descriptor<'s>> {
        schema.get(id).map(|_| Descriptor { schema, id })
    }

    /// The schema.
    pub fn schema(&self) -> &'s Schema {
        self.schema
    }

    /// The type's id in the schema.
    pub fn id(&self) -> TypeId {
        self.id
    }

    /// The type definition.
    pub fn def(&self) -> &'s TypeDef {
        &self.schema.types[self.id.index()]
    }

    /// `package.Name`.
    pub fn full_name(&self) -> String {
        self.def().full_name()
    }

    /// The wire type id of a message or union that has one.
    pub fn type_id(&self) -> Option<u32> {
        self.def().message_id()
    }

    /// The fields of a message (empty for enums and unions).
    pub fn fields(&self) -> &'s [FieldDef] {
        match &self.def().kind {
            TypeDefKind::Message(m) => &m.fields,
            _ => &[],
        }
    }

    /// The field called `name` and its index, or an error listing the fields.
    pub fn field(&self, name: &str) -> Result<(usize, &'s FieldDef), DynamicError> {
        self.fields()
            .iter()
            .enumerate()
            .find(|(_, f)| f.name == name)
            .ok_or_else(|| DynamicError::UnknownField {
                message: self.full_name(),
                field: name.to_string(),
                known: self.fields().iter().map(|f| f.name.clone()).collect(),
            })
    }

    /// The default value of this type: what a reader fills in for an absent field.
    pub fn default_value(&self) -> Value<'s> {
        default_value(self.schema, &Type::Named(self.id))
    }
}

/// Creates dynamic messages from the types of one schema.
#[derive(Clone, Copy, Debug)]
pub struct MessageFactory<'s> {
    schema: &'s Schema,
}

impl<'s> MessageFactory<'s> {
    /// A factory for the types of `schema`.
    pub fn new(schema: &'s Schema) -> MessageFactory<'s> {
        MessageFactory { schema }
    }

    /// The schema.
    pub fn schema(&self) -> &'s Schema {
        self.schema
    }

    /// Finds a message, union or enum by fully qualified name
    /// (`charging.v1.StatusReport`), or by simple name (`StatusReport`) when
    /// exactly one type has it. Errors list the candidates.
    pub fn find(&self, name: &str) -> Result<Descriptor<'s>, DynamicError> {
        if let Some(id) = self.schema.lookup(name) {
            return Ok(Descriptor {
                schema: self.schema,
                id,
            });
        }
        let matches: Vec<(TypeId, &TypeDef)> = self
            .schema
            .types_iter()
            .filter(|(_, t)| t.name == name || t.full_name().ends_with(&format!(".{name}")))
            .collect();
        match matches.as_slice() {
            [(id, _)] => Ok(Descriptor {
                schema: self.schema,
                id: *id,
            }),
            [] => {
                let lower = name.to_ascii_lowercase();
                let mut candidates: Vec<String> = self
                    .schema
                    .types
                    .iter()
                    .filter(|t| !matches!(t.kind, TypeDefKind::Enum(_)))
                    .map(TypeDef::full_name)
                    .collect();
                let close: Vec<String> = candidates
                    .iter()
                    .filter(|c| c.to_ascii_lowercase().contains(&lower))
                    .cloned()
                    .collect();
                if !close.is_empty() {
                    candidates = close;
                }
                Err(DynamicError::UnknownType {
                    name: name.to_string(),
                    candidates,
                })
            }
            many => Err(DynamicError::AmbiguousType {
                name: name.to_string(),
                candidates: many.iter().map(|(_, t)| t.full_name()).collect(),
            }),
        }
    }

    /// Like [`MessageFactory::find`], for a message or union only.
    pub fn find_message(&self, name: &str) -> Result<Descriptor<'s>, DynamicError> {
        let d = self.find(name)?;
        match d.def().kind {
            TypeDefKind::Enum(_) => Err(DynamicError::NotAMessage {
                name: d.full_name(),
            }),
            _ => Ok(d),
        }
    }

    /// The message or union with wire type id `id`.
    pub fn by_type_id(&self, id: u32) -> Option<Descriptor<'s>> {
        self.schema
            .types_iter()
            .find(|(_, t)| t.message_id() == Some(id))
            .map(|(tid, _)| Descriptor {
                schema: self.schema,
                id: tid,
            })
    }

    /// A message called `name` with every field at its default.
    pub fn new_message(&self, name: &str) -> Result<DynamicMessage<'s>, DynamicError> {
        let d = self.find_message(name)?;
        DynamicMessage::new(d).ok_or(DynamicError::NotAMessage {
            name: d.full_name(),
        })
    }

    /// Decodes a frame payload of the message or union called `name`.
    pub fn decode(&self, name: &str, payload: &[u8]) -> Result<Value<'s>, Error> {
        let d = self.find_message(name)?;
        Ok(decode(d, payload)?)
    }

    /// Converts JSON text to a message or union called `name`.
    pub fn message_from_json_str(&self, name: &str, json: &str) -> Result<Value<'s>, Error> {
        let d = self.find_message(name)?;
        Ok(from_json_str(d, json)?)
    }
}

/// A key of a map: an integer, a `bool` or a string (the key types the schema allows).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapKey {
    /// A `bool` key (`false` sorts first, as on the wire).
    Bool(bool),
    /// An integer key of any integer type, sorted by value.
    Int(i128),
    /// A string key, sorted by its UTF-8 bytes.
    String(String),
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Bool(b) => write!(f, "{b}"),
            MapKey::Int(i) => write!(f, "{i}"),
            MapKey::String(s) => write!(f, "{s:?}"),
        }
    }
}

/// A value of any schema type.
///
/// Equality compares floats by bit pattern, so that NaNs and `-0.0` round-trip
/// as equal to themselves.
#[derive(Clone, Debug)]
pub enum Value<'s> {
    /// `bool`
    Bool(bool),
    /// `u8`
    U8(u8),
    /// `u16`
    U16(u16),
    /// `u32`
    U32(u32),
    /// `u64`
    U64(u64),
    /// `i8`
    I8(i8),
    /// `i16`
    I16(i16),
    /// `i32`
    I32(i32),
    /// `i64`
    I64(i64),
    /// `f32`
    F32(f32),
    /// `f64`
    F64(f64),
    /// `string`
    String(String),
    /// `bytes`
    Bytes(Vec<u8>),
    /// An enum value (known to the schema or not).
    Enum(u32),
    /// `optional<T>`
    Optional(Option<Box<Value<'s>>>),
    /// `list<T>`
    List(Vec<Value<'s>>),
    /// `array<T, N>` (exactly N elements)
    Array(Vec<Value<'s>>),
    /// `map<K, V>`
    Map(BTreeMap<MapKey, Value<'s>>),
    /// A message.
    Message(DynamicMessage<'s>),
    /// A union.
    Union(DynamicUnion<'s>),
}

impl PartialEq for Value<'_> {
    fn eq(&self, other: &Self) -> bool {
        use Value as V;
        match (self, other) {
            (V::Bool(a), V::Bool(b)) => a == b,
            (V::U8(a), V::U8(b)) => a == b,
            (V::U16(a), V::U16(b)) => a == b,
            (V::U32(a), V::U32(b)) => a == b,
            (V::U64(a), V::U64(b)) => a == b,
            (V::I8(a), V::I8(b)) => a == b,
            (V::I16(a), V::I16(b)) => a == b,
            (V::I32(a), V::I32(b)) => a == b,
            (V::I64(a), V::I64(b)) => a == b,
            (V::F32(a), V::F32(b)) => a.to_bits() == b.to_bits(),
            (V::F64(a), V::F64(b)) => a.to_bits() == b.to_bits(),
            (V::String(a), V::String(b)) => a == b,
            (V::Bytes(a), V::Bytes(b)) => a == b,
            (V::Enum(a), V::Enum(b)) => a == b,
            (V::Optional(a), V::Optional(b)) => a == b,
            (V::List(a), V::List(b)) | (V::Array(a), V::Array(b)) => a == b,
            (V::Map(a), V::Map(b)) => a == b,
            (V::Message(a), V::Message(b)) => a == b,
            (V::Union(a), V::Union(b)) => a == b,
            _ => false,
        }
    }
}

macro_rules! from_scalar {
    ($($t:ty => $v:ident),*) => {$(
        impl<'s> From<$t> for Value<'s> {
            fn from(v: $t) -> Self {
                Value::$v(v)
            }
        }
    )*};
}
from_scalar!(bool => Bool, u8 => U8, u16 => U16, u32 => U32, u64 => U64, i8 => I8,
    i16 => I16, i32 => I32, i64 => I64, f32 => F32, f64 => F64, String => String,
    Vec<u8> => Bytes);

impl<'s> From<&str> for Value<'s> {
    fn from(v: &str) -> Self {
        Value::String(v.to_string())
    }
}

impl<'s> From<&[u8]> for Value<'s> {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl<'s> From<DynamicMessage<'s>> for Value<'s> {
    fn from(v: DynamicMessage<'s>) -> Self {
        Value::Message(v)
    }
}

impl<'s> From<DynamicUnion<'s>> for Value<'s> {
    fn from(v: DynamicUnion<'s>) -> Self {
        Value::Union(v)
    }
}

impl<'s> Value<'s> {
    /// A short description of the kind of value, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Value::Bool(_) => "a bool".into(),
            Value::U8(_) => "a u8".into(),
            Value::U16(_) => "a u16".into(),
            Value::U32(_) => "a u32".into(),
            Value::U64(_) => "a u64".into(),
            Value::I8(_) => "an i8".into(),
            Value::I16(_) => "an i16".into(),
            Value::I32(_) => "an i32".into(),
            Value::I64(_) => "an i64".into(),
            Value::F32(_) => "an f32".into(),
            Value::F64(_) => "an f64".into(),
            Value::String(_) => "a string".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Enum(_) => "an enum value".into(),
            Value::Optional(_) => "an optional".into(),
            Value::List(_) => "a list".into(),
            Value::Array(_) => "an array".into(),
            Value::Map(_) => "a map".into(),
            Value::Message(m) => format!("a `{}` message", m.descriptor().full_name()),
            Value::Union(u) => format!("a `{}` union", u.descriptor().full_name()),
        }
    }

    /// The message held, if this is one.
    pub fn as_message(&self) -> Option<&DynamicMessage<'s>> {
        match self {
            Value::Message(m) => Some(m),
            _ => None,
        }
    }

    /// The union held, if this is one.
    pub fn as_union(&self) -> Option<&DynamicUnion<'s>> {
        match self {
            Value::Union(u) => Some(u),
            _ => None,
        }
    }

    /// Any unsigned integer, widened.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) | Value::Enum(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            _ => None,
        }
    }

    /// Any signed integer, widened.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v),
            _ => None,
        }
    }

    /// An `f32` or `f64`, widened.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// A `string`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A `bytes` value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A `bool`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Encodes a message or union as a frame payload (its body or union encoding).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode_top(self)
    }

    /// Writes a message or union as JSON; `pretty` indents with two spaces.
    pub fn to_json_string(&self, pretty: bool) -> String {
        json::to_json_string(self, pretty)
    }

    /// This message or union as a `serde_json` value.
    pub fn to_json(&self) -> serde_json::Value {
        // The writer produces valid JSON; parsing it back cannot fail.
        serde_json::from_str(&self.to_json_string(false)).unwrap_or(serde_json::Value::Null)
    }
}

/// A message of a schema, with every declared field holding a value.
#[derive(Clone, Debug)]
pub struct DynamicMessage<'s> {
    desc: Descriptor<'s>,
    /// Parallel to the descriptor's fields.
    fields: Vec<Value<'s>>,
}

impl PartialEq for DynamicMessage<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.desc == other.desc && self.fields == other.fields
    }
}

impl<'s> DynamicMessage<'s> {
    /// A message of type `desc` with every field at its default; `None` when
    /// `desc` is not a message.
    pub fn new(desc: Descriptor<'s>) -> Option<DynamicMessage<'s>> {
        match &desc.def().kind {
            TypeDefKind::Message(m) => Some(DynamicMessage {
                desc,
                fields: m
                    .fields
                    .iter()
                    .map(|f| default_value(desc.schema, &f.ty))
                    .collect(),
            }),
            _ => None,
        }
    }

    /// The message's type.
    pub fn descriptor(&self) -> Descriptor<'s> {
        self.desc
    }

    /// `(field, value)` pairs in tag order.
    pub fn iter(&self) -> impl Iterator<Item = (&'s FieldDef, &Value<'s>)> {
        self.desc.fields().iter().zip(self.fields.iter())
    }

    /// The value of field `name`. Optional fields hold [`Value::Optional`].
    pub fn get(&self, name: &str) -> Result<&Value<'s>, DynamicError> {
        let (i, _) = self.desc.field(name)?;
        Ok(&self.fields[i])
    }

    /// Mutable access to field `name`; the caller keeps the value's type.
    pub fn get_mut(&mut self, name: &str) -> Result<&mut Value<'s>, DynamicError> {
        let (i, _) = self.desc.field(name)?;
        Ok(&mut self.fields[i])
    }

    /// The value of an optional field when it has one, of any other field always.
    pub fn get_present(&self, name: &str) -> Result<Option<&Value<'s>>, DynamicError> {
        Ok(match self.get(name)? {
            Value::Optional(v) => v.as_deref(),
            v => Some(v),
        })
    }

    /// Sets field `name`, checking that `value` has the field's type. An
    /// optional field accepts either a [`Value::Optional`] or a value of its inner type.
    pub fn set(&mut self, name: &str, value: impl Into<Value<'s>>) -> Result<(), DynamicError> {
        let value = value.into();
        let (i, f) = self.desc.field(name)?;
        let value = match (&f.ty, value) {
            (Type::Optional(_), v @ Value::Optional(_)) => v,
            (Type::Optional(_), v) => Value::Optional(Some(Box::new(v))),
            (_, v) => v,
        };
        check_type(self.desc.schema, &value, &f.ty).map_err(|found| {
            DynamicError::TypeMismatch {
                message: self.desc.full_name(),
                field: name.to_string(),
                expected: f.ty.display(self.desc.schema).to_string(),
                found,
            }
        })?;
        self.fields[i] = value;
        Ok(())
    }

    /// Resets field `name` to its default (absent for an optional).
    pub fn clear(&mut self, name: &str) -> Result<(), DynamicError> {
        let (i, f) = self.desc.field(name)?;
        self.fields[i] = default_value(self.desc.schema, &f.ty);
        Ok(())
    }

    fn typed<T>(
        &self,
        name: &str,
        want: &str,
        get: impl FnOnce(&Value<'s>) -> Option<T>,
    ) -> Result<T, DynamicError> {
        let v = self.get(name)?;
        let inner = match v {
            Value::Optional(Some(b)) => b,
            other => other,
        };
        get(inner).ok_or_else(|| DynamicError::TypeMismatch {
            message: self.desc.full_name(),
            field: name.to_string(),
            expected: want.to_string(),
            found: v.describe(),
        })
    }

    /// An unsigned integer or enum field, widened to `u64`.
    pub fn get_u64(&self, name: &str) -> Result<u64, DynamicError> {
        self.typed(name, "an unsigned integer", Value::as_u64)
    }

    /// A signed integer field, widened to `i64`.
    pub fn get_i64(&self, name: &str) -> Result<i64, DynamicError> {
        self.typed(name, "a signed integer", Value::as_i64)
    }

    /// A float field, widened to `f64`.
    pub fn get_f64(&self, name: &str) -> Result<f64, DynamicError> {
        self.typed(name, "a float", Value::as_f64)
    }

    /// A `bool` field.
    pub fn get_bool(&self, name: &str) -> Result<bool, DynamicError> {
        self.typed(name, "a bool", Value::as_bool)
    }

    /// A `string` field.
    pub fn get_str(&self, name: &str) -> Result<&str, DynamicError> {
        let v = self.get(name)?;
        let inner = match v {
            Value::Optional(Some(b)) => b,
            other => other,
        };
        inner.as_str().ok_or_else(|| DynamicError::TypeMismatch {
            message: self.desc.full_name(),
            field: name.to_string(),
            expected: "a string".into(),
            found: v.describe(),
        })
    }

    /// A message field.
    pub fn get_message(&self, name: &str) -> Result<&DynamicMessage<'s>, DynamicError> {
        let v = self.get(name)?;
        let inner = match v {
            Value::Optional(Some(b)) => b,
            other => other,
        };
        inner
            .as_message()
            .ok_or_else(|| DynamicError::TypeMismatch {
                message: self.desc.full_name(),
                field: name.to_string(),
                expected: "a message".into(),
                found: v.describe(),
            })
    }

    /// The variant name of an enum field (`None` for a value the schema does not define).
    pub fn get_enum_name(&self, name: &str) -> Result<Option<&'s str>, DynamicError> {
        let (_, f) = self.desc.field(name)?;
        let v = self.typed(name, "an enum", |v| match v {
            Value::Enum(e) => Some(*e),
            _ => None,
        })?;
        Ok(match f.ty.strip_optional() {
            Type::Named(id) => enum_name(self.desc.schema, *id, v),
            _ => None,
        })
    }

    /// Sets an enum field by variant name.
    pub fn set_enum(&mut self, name: &str, variant: &str) -> Result<(), DynamicError> {
        let (_, f) = self.desc.field(name)?;
        let value = match f.ty.strip_optional() {
            Type::Named(id) => match &self.desc.schema.types[id.index()].kind {
                TypeDefKind::Enum(e) => e.variants.iter().find(|v| v.name == variant),
                _ => None,
            },
            _ => None,
        }
        .map(|v| v.value)
        .ok_or_else(|| DynamicError::TypeMismatch {
            message: self.desc.full_name(),
            field: name.to_string(),
            expected: f.ty.display(self.desc.schema).to_string(),
            found: format!("variant name `{variant}`"),
        })?;
        self.set(name, Value::Enum(value))
    }

    /// Encodes the message body (the frame payload).
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode_message(self)
    }

    /// Decodes a message body of type `desc`.
    pub fn decode(desc: Descriptor<'s>, payload: &[u8]) -> Result<DynamicMessage<'s>, DecodeError> {
        match decode(desc, payload)? {
            Value::Message(m) => Ok(m),
            _ => Err(DecodeError::new(
                0,
                DecodeErrorKind::NotAMessage,
                format!("`{}` is not a message", desc.full_name()),
            )),
        }
    }

    /// The message as JSON text.
    pub fn to_json_string(&self, pretty: bool) -> String {
        json::to_json_string(&Value::Message(self.clone()), pretty)
    }
}

/// A union value: one known variant, or a variant this schema does not know.
#[derive(Clone, Debug, PartialEq)]
pub struct DynamicUnion<'s> {
    desc: Descriptor<'s>,
    variant: UnionValue<'s>,
}

/// What a [`DynamicUnion`] holds.
#[derive(Clone, Debug, PartialEq)]
pub enum UnionValue<'s> {
    /// A variant of the schema.
    Known {
        /// The variant tag.
        tag: u32,
        /// Its value.
        value: Box<Value<'s>>,
    },
    /// A variant the schema does not define, kept as read.
    Unknown {
        /// The tag.
        tag: u64,
        /// The wire class (1 ..= 3).
        class: u8,
        /// The value in its class encoding.
        bytes: Vec<u8>,
    },
}

impl<'s> DynamicUnion<'s> {
    /// Variant `name` of union `desc` holding `value` (type-checked).
    pub fn new(
        desc: Descriptor<'s>,
        name: &str,
        value: impl Into<Value<'s>>,
    ) -> Result<DynamicUnion<'s>, DynamicError> {
        let TypeDefKind::Union(u) = &desc.def().kind else {
            return Err(DynamicError::NotAMessage {
                name: desc.full_name(),
            });
        };
        let v = u.variants.iter().find(|v| v.name == name).ok_or_else(|| {
            DynamicError::UnknownField {
                message: desc.full_name(),
                field: name.to_string(),
                known: u.variants.iter().map(|v| v.name.clone()).collect(),
            }
        })?;
        let value = value.into();
        check_type(desc.schema, &value, &v.ty).map_err(|found| DynamicError::TypeMismatch {
            message: desc.full_name(),
            field: name.to_string(),
            expected: v.ty.display(desc.schema).to_string(),
            found,
        })?;
        Ok(DynamicUnion {
            desc,
            variant: UnionValue::Known {
                tag: v.tag,
                value: Box::new(value),
            },
        })
    }

    /// The union's type.
    pub fn descriptor(&self) -> Descriptor<'s> {
        self.desc
    }

    /// The variant held.
    pub fn value(&self) -> &UnionValue<'s> {
        &self.variant
    }

    /// The name of the variant held (`None` for an unknown variant).
    pub fn variant_name(&self) -> Option<&'s str> {
        let UnionValue::Known { tag, .. } = &self.variant else {
            return None;
        };
        match &self.desc.def().kind {
            TypeDefKind::Union(u) => u
                .variants
                .iter()
                .find(|v| v.tag == *tag)
                .map(|v| v.name.as_str()),
            _ => None,
        }
    }
}

/// Misuse of the reflection API: a name or type that does not fit the schema.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamicError {
    /// No field (or union variant) of that name.
    #[error("`{message}` has no field `{field}`; its fields are: {}", list(known))]
    UnknownField {
        /// The message or union.
        message: String,
        /// The name asked for.
        field: String,
        /// The names that exist.
        known: Vec<String>,
    },
    /// A value of the wrong type for a field.
    #[error("field `{message}.{field}` is `{expected}`, not {found}")]
    TypeMismatch {
        /// The message or union.
        message: String,
        /// The field or variant.
        field: String,
        /// The declared type.
        expected: String,
        /// What was given.
        found: String,
    },
    /// No type of that name.
    #[error("no message called `{name}`; known messages: {}", list(candidates))]
    UnknownType {
        /// The name asked for.
        name: String,
        /// Possible names.
        candidates: Vec<String>,
    },
    /// A simple name shared by several packages.
    #[error("`{name}` is ambiguous; use one of: {}", list(candidates))]
    AmbiguousType {
        /// The name asked for.
        name: String,
        /// The qualified names it could mean.
        candidates: Vec<String>,
    },
    /// An enum (or union) where a message was needed.
    #[error("`{name}` is not a message or union")]
    NotAMessage {
        /// The type.
        name: String,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Any error of the dynamic API.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A name or type did not fit the schema.
    #[error(transparent)]
    Dynamic(#[from] DynamicError),
    /// Bytes did not decode.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A value could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// JSON did not convert.
    #[error(transparent)]
    Json(#[from] JsonError),
}

/// A location inside a value: `charging.v1.StatusReport.slots[2].battery`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Path {
    /// Segments innermost first (errors gain segments as they bubble up).
    rev: Vec<String>,
}

impl Path {
    fn render(&self) -> String {
        self.rev.iter().rev().map(String::as_str).collect()
    }
}

macro_rules! path_methods {
    () => {
        /// The path of the value concerned, e.g.
        /// `charging.v1.StatusReport.slots[2].battery.soc_percent`.
        pub fn path(&self) -> String {
            self.path.render()
        }

        pub(crate) fn within(mut self, segment: impl Into<String>) -> Self {
            self.path.rev.push(segment.into());
            self
        }
    };
}

/// What kind of decoding failure a [`DecodeError`] is (wire format §7).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecodeErrorKind {
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A varint above 2^64-1.
    VarintOverflow,
    /// A varint longer than needed.
    NonCanonicalVarint,
    /// A length beyond the remaining bytes.
    LengthOutOfBounds,
    /// An integer too large for its type.
    IntegerOutOfRange,
    /// A string that is not UTF-8.
    InvalidUtf8,
    /// A bool other than 0 or 1.
    InvalidBool,
    /// Nesting beyond the limit.
    DepthExceeded,
    /// A presence bitmap breaking §5.2.
    BadPresence,
    /// A known field with the wrong wire class.
    ClassMismatch,
    /// A union key of class 0.
    UnionClassAbsent,
    /// Map keys not strictly ascending.
    MapKeyOrder,
    /// Bytes left over after a value.
    ContentLength,
    /// A fixed-width list whose length is not a multiple of the width.
    RaggedList,
    /// A `max_len` violation.
    MaxLen,
    /// A `range` violation.
    Range,
    /// The type is not a message or union.
    NotAMessage,
}

impl DecodeErrorKind {
    /// The snake-case name used by the wire-format test vectors.
    pub fn name(self) -> &'static str {
        match self {
            DecodeErrorKind::UnexpectedEnd => "unexpected_end",
            DecodeErrorKind::VarintOverflow => "varint_overflow",
            DecodeErrorKind::NonCanonicalVarint => "non_canonical_varint",
            DecodeErrorKind::LengthOutOfBounds => "length_out_of_bounds",
            DecodeErrorKind::IntegerOutOfRange => "integer_out_of_range",
            DecodeErrorKind::InvalidUtf8 => "invalid_utf8",
            DecodeErrorKind::InvalidBool => "invalid_bool",
            DecodeErrorKind::DepthExceeded => "depth_exceeded",
            DecodeErrorKind::BadPresence => "bad_presence",
            DecodeErrorKind::ClassMismatch => "class_mismatch",
            DecodeErrorKind::UnionClassAbsent => "union_class_absent",
            DecodeErrorKind::MapKeyOrder => "map_key_order",
            DecodeErrorKind::ContentLength => "content_length",
            DecodeErrorKind::RaggedList => "ragged_list",
            DecodeErrorKind::MaxLen => "max_len",
            DecodeErrorKind::Range => "range",
            DecodeErrorKind::NotAMessage => "not_a_message",
        }
    }
}

/// Bytes that do not decode: where (byte offset and value path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    at: usize,
    kind: DecodeErrorKind,
    reason: String,
    path: Path,
}

impl DecodeError {
    pub(crate) fn new(at: usize, kind: DecodeErrorKind, reason: impl Into<String>) -> Self {
        DecodeError {
            at,
            kind,
            reason: reason.into(),
            path: Path::default(),
        }
    }

    /// The byte offset in the decoded buffer.
    pub fn offset(&self) -> usize {
        self.at
    }

    /// The same error with its offset moved by `by` bytes (for a payload
    /// inside a larger input).
    pub fn shifted(mut self, by: usize) -> Self {
        self.at += by;
        self
    }

    /// What kind of failure.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// What was wrong, without location.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    path_methods!();
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}", self.at)?;
        if !self.path.rev.is_empty() {
            write!(f, " in `{}`", self.path())?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for DecodeError {}

impl From<isml_wire::DecodeError> for DecodeError {
    /// The same failure, as the wire reader reported it: its offset, its
    /// kind, and a reason without the offset.
    fn from(e: isml_wire::DecodeError) -> Self {
        use isml_wire::DecodeError as W;
        let (at, kind, reason) = match e {
            W::UnexpectedEnd { at, needed } => (
                at,
                DecodeErrorKind::UnexpectedEnd,
                format!("unexpected end of input: {needed} more byte(s) needed"),
            ),
            W::VarintOverflow { at } => (
                at,
                DecodeErrorKind::VarintOverflow,
                "varint overflows 64 bits".into(),
            ),
            W::NonCanonicalVarint { at } => (
                at,
                DecodeErrorKind::NonCanonicalVarint,
                "non-canonical varint: written longer than needed".into(),
            ),
            W::LengthOutOfBounds { at, len, remaining } => (
                at,
                DecodeErrorKind::LengthOutOfBounds,
                format!("length {len} exceeds the {remaining} byte(s) remaining"),
            ),
            W::IntegerOutOfRange { at, value, ty } => (
                at,
                DecodeErrorKind::IntegerOutOfRange,
                format!("integer {value} does not fit in {ty}"),
            ),
            W::InvalidUtf8 { at } => (
                at,
                DecodeErrorKind::InvalidUtf8,
                "invalid UTF-8 in string".into(),
            ),
            W::InvalidBool { at, value } => (
                at,
                DecodeErrorKind::InvalidBool,
                format!("invalid bool {value}: expected 0 or 1"),
            ),
            W::DepthExceeded { at, max } => (
                at,
                DecodeErrorKind::DepthExceeded,
                format!("nesting deeper than {max} levels"),
            ),
            W::BadPresence { at, reason } => (
                at,
                DecodeErrorKind::BadPresence,
                format!("bad presence field: {reason}"),
            ),
            W::ClassMismatch {
                at,
                tag,
                expected,
                found,
            } => (
                at,
                DecodeErrorKind::ClassMismatch,
                format!("tag {tag} has wire class {found}, expected {expected}"),
            ),
            W::UnionClassAbsent { at } => (
                at,
                DecodeErrorKind::UnionClassAbsent,
                "union key has class 0".into(),
            ),
            W::MapKeyOrder { at } => (
                at,
                DecodeErrorKind::MapKeyOrder,
                "map key is not greater than the previous key".into(),
            ),
            W::ContentLength {
                at,
                what,
                bytes,
                missing: false,
            } => (
                at,
                DecodeErrorKind::ContentLength,
                format!("{bytes} byte(s) left over after {what}"),
            ),
            W::ContentLength {
                at, what, bytes, ..
            } => (
                at,
                DecodeErrorKind::ContentLength,
                format!("content of {what} is too short: {bytes} more byte(s) needed"),
            ),
            W::RaggedList { at, len, width } => (
                at,
                DecodeErrorKind::RaggedList,
                format!("list of {len} bytes is not a whole number of {width}-byte elements"),
            ),
            W::InField(f) => return DecodeError::from(f.source),
            e @ W::MaxLen { .. } => (0, DecodeErrorKind::MaxLen, e.to_string()),
            e @ W::Range { .. } => (0, DecodeErrorKind::Range, e.to_string()),
            // Frame-level failures: the dynamic codec reads payloads only.
            other => (0, DecodeErrorKind::NotAMessage, other.to_string()),
        };
        DecodeError::new(at, kind, reason)
    }
}

/// A value that cannot be encoded (an attribute violated, a value not of its field's type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError {
    reason: String,
    path: Path,
}

impl EncodeError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        EncodeError {
            reason: reason.into(),
            path: Path::default(),
        }
    }

    /// What was wrong, without location.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    path_methods!();
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path(), self.reason)
    }
}

impl std::error::Error for EncodeError {}

/// JSON that does not convert to a value of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    reason: String,
    path: Path,
    /// Line and column in the JSON text, for syntax errors.
    position: Option<(usize, usize)>,
}

impl JsonError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        JsonError {
            reason: reason.into(),
            path: Path::default(),
            position: None,
        }
    }

    /// What was wrong, without location.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Line and column (1-based) of a JSON syntax error.
    pub fn position(&self) -> Option<(usize, usize)> {
        self.position
    }

    path_methods!();
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((line, col)) => write!(
                f,
                "invalid JSON at line {line}, column {col}: {}",
                self.reason
            ),
            None => write!(f, "`{}`: {}", self.path(), self.reason),
        }
    }
}

impl std::error::Error for JsonError {}

/// Decodes a frame payload (message body or union encoding) of type `desc`
/// with the default nesting limit.
pub fn decode<'s>(desc: Descriptor<'s>, payload: &[u8]) -> Result<Value<'s>, DecodeError> {
    codec::decode_top(desc, payload, DEFAULT_MAX_DEPTH)
}

/// Like [`decode`] with an explicit nesting limit.
pub fn decode_with_depth<'s>(
    desc: Descriptor<'s>,
    payload: &[u8],
    max_depth: u32,
) -> Result<Value<'s>, DecodeError> {
    codec::decode_top(desc, payload, max_depth)
}

/// Encodes any value of type `ty` in its element form (wire format §5.3), as
/// the wire-format test vectors do for types that are not messages.
pub fn encode_element(
    schema: &Schema,
    value: &Value<'_>,
    ty: &Type,
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    codec::encode_elem(schema, value, ty, &mut out, DEFAULT_MAX_DEPTH)?;
    Ok(out)
}

/// Decodes the element form of type `ty` filling all of `bytes`.
pub fn decode_element<'s>(
    schema: &'s Schema,
    bytes: &[u8],
    ty: &Type,
) -> Result<Value<'s>, DecodeError> {
    codec::decode_elem_top(schema, bytes, ty, DEFAULT_MAX_DEPTH)
}

/// Converts a JSON value to a message or union of type `desc`.
pub fn from_json<'s>(
    desc: Descriptor<'s>,
    json: &serde_json::Value,
) -> Result<Value<'s>, JsonError> {
    json::from_json(desc.schema, json, &Type::Named(desc.id))
        .map_err(|e| e.within(desc.full_name()))
}

/// Parses JSON text and converts it to a message or union of type `desc`.
pub fn from_json_str<'s>(desc: Descriptor<'s>, text: &str) -> Result<Value<'s>, JsonError> {
    let json: serde_json::Value = serde_json::from_str(text).map_err(|e| JsonError {
        reason: json::syntax_reason(&e),
        path: Path::default(),
        position: Some((e.line(), e.column())),
    })?;
    from_json(desc, &json)
}

/// Converts a JSON value to a value of any type `ty` of `schema`.
pub fn value_from_json<'s>(
    schema: &'s Schema,
    json: &serde_json::Value,
    ty: &Type,
) -> Result<Value<'s>, JsonError> {
    json::from_json(schema, json, ty)
}

/// Writes a value of type `ty` as JSON text.
pub fn value_to_json_string(schema: &Schema, value: &Value<'_>, ty: &Type, pretty: bool) -> String {
    json::value_to_string(schema, value, ty, pretty)
}

/// The default of a type: zero, empty, absent, enum value 0, a message of
/// defaults, a union's lowest-tag variant holding its default.
pub fn default_value<'s>(schema: &'s Schema, ty: &Type) -> Value<'s> {
    match ty {
        Type::Bool => Value::Bool(false),
        Type::U8 => Value::U8(0),
        Type::U16 => Value::U16(0),
        Type::U32 => Value::U32(0),
        Type::U64 => Value::U64(0),
        Type::I8 => Value::I8(0),
        Type::I16 => Value::I16(0),
        Type::I32 => Value::I32(0),
        Type::I64 => Value::I64(0),
        Type::F32 => Value::F32(0.0),
        Type::F64 => Value::F64(0.0),
        Type::String => Value::String(String::new()),
        Type::Bytes => Value::Bytes(Vec::new()),
        Type::Optional(_) => Value::Optional(None),
        Type::List(_) => Value::List(Vec::new()),
        Type::Map(..) => Value::Map(BTreeMap::new()),
        Type::Array(t, n) => Value::Array((0..*n).map(|_| default_value(schema, t)).collect()),
        Type::Named(id) => {
            let desc = Descriptor { schema, id: *id };
            match &schema.types[id.index()].kind {
                TypeDefKind::Enum(_) => Value::Enum(0),
                TypeDefKind::Message(_) => {
                    Value::Message(DynamicMessage::new(desc).expect("checked kind"))
                }
                TypeDefKind::Union(u) => Value::Union(DynamicUnion {
                    desc,
                    variant: match u.variants.first() {
                        Some(v) => UnionValue::Known {
                            tag: v.tag,
                            value: Box::new(default_value(schema, &v.ty)),
                        },
                        None => UnionValue::Unknown {
                            tag: 0,
                            class: 1,
                            bytes: vec![0],
                        },
                    },
                }),
            }
        }
    }
}

/// The name of value `v` of enum `id`.
fn enum_name(schema: &Schema, id: TypeId, v: u32) -> Option<&str> {
    match &schema.types[id.index()].kind {
        TypeDefKind::Enum(e) => e
            .variants
            .iter()
            .find(|x| x.value == v)
            .map(|x| x.name.as_str()),
        _ => None,
    }
}

/// Checks that `value` is of type `ty`; the error describes what was found.
fn check_type(schema: &Schema, value: &Value<'_>, ty: &Type) -> Result<(), String> {
    let ok = match (ty, value) {
        (Type::Bool, Value::Bool(_))
        | (Type::U8, Value::U8(_))
        | (Type::U16, Value::U16(_))
        | (Type::U32, Value::U32(_))
        | (Type::U64, Value::U64(_))
        | (Type::I8, Value::I8(_))
        | (Type::I16, Value::I16(_))
        | (Type::I32, Value::I32(_))
        | (Type::I64, Value::I64(_))
        | (Type::F32, Value::F32(_))
        | (Type::F64, Value::F64(_))
        | (Type::String, Value::String(_))
        | (Type::Bytes, Value::Bytes(_)) => true,
        (Type::Optional(t), Value::Optional(v)) => {
            return v.as_ref().map_or(Ok(()), |v| check_type(schema, v, t));
        }
        (Type::List(t), Value::List(items)) => {
            return items.iter().try_for_each(|v| check_type(schema, v, t));
        }
        (Type::Array(t, n), Value::Array(items)) => {
            if items.len() != *n as usize {
                return Err(format!("an array of {} elements", items.len()));
            }
            return items.iter().try_for_each(|v| check_type(schema, v, t));
        }
        (Type::Map(k, v), Value::Map(entries)) => {
            for (key, val) in entries {
                let key_ok = match (&**k, key) {
                    (Type::Bool, MapKey::Bool(_)) | (Type::String, MapKey::String(_)) => true,
                    (kt, MapKey::Int(i)) => kt
                        .integer_bounds()
                        .is_some_and(|(lo, hi)| (lo..=hi).contains(i)),
                    _ => false,
                };
                if !key_ok {
                    return Err(format!("a map with key {key}"));
                }
                check_type(schema, val, v)?;
            }
            true
        }
        (Type::Named(id), v) => match (&schema.types[id.index()].kind, v) {
            (TypeDefKind::Enum(_), Value::Enum(_)) => true,
            (TypeDefKind::Message(_), Value::Message(m)) => m.desc.id == *id,
            (TypeDefKind::Union(_), Value::Union(u)) => u.desc.id == *id,
            _ => false,
        },
        _ => false,
    };
    if ok { Ok(()) } else { Err(value.describe()) }
}
