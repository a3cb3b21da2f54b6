//! Static reflection data generated for every schema type.

/// A type as written in a schema, for reflection.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub enum TypeRef {
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
    Optional(&'static TypeRef),
    /// `list<T>`
    List(&'static TypeRef),
    /// `map<K, V>`
    Map(&'static TypeRef, &'static TypeRef),
    /// `array<T, N>`
    Array(&'static TypeRef, u32),
    /// A message or union type.
    Message(fn() -> &'static MessageDescriptor),
    /// An enum type.
    Enum(fn() -> &'static EnumDescriptor),
}

/// Whether a [`MessageDescriptor`] describes a message or a union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// A `message`: fields.
    Message,
    /// A `union`: exactly one of the variants (described as fields).
    Union,
}

/// Reflection data of a message or union type.
#[derive(Debug)]
pub struct MessageDescriptor {
    /// The name in the schema, e.g. `StatusReport`.
    pub name: &'static str,
    /// The package, e.g. `charging.v1`.
    pub package: &'static str,
    /// The fully qualified name, e.g. `charging.v1.StatusReport`.
    pub full_name: &'static str,
    /// Message or union.
    pub kind: MessageKind,
    /// The type id, if the type can be sent on its own.
    pub id: Option<u32>,
    /// Fields (or union variants) in tag order.
    pub fields: &'static [FieldDescriptor],
    /// Documentation from the schema.
    pub docs: &'static str,
    /// The fingerprint (wire format §8).
    pub fingerprint: u64,
}

impl MessageDescriptor {
    /// The field (or variant) with this name.
    pub fn field(&self, name: &str) -> Option<&'static FieldDescriptor> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field (or variant) with this tag.
    pub fn field_by_tag(&self, tag: u32) -> Option<&'static FieldDescriptor> {
        self.fields.iter().find(|f| f.tag == tag)
    }
}

/// Reflection data of one field or union variant.
#[derive(Debug)]
pub struct FieldDescriptor {
    /// The name in the schema.
    pub name: &'static str,
    /// The tag.
    pub tag: u32,
    /// The type.
    pub ty: TypeRef,
    /// The `deprecated` attribute.
    pub deprecated: bool,
    /// The `unit` attribute.
    pub unit: Option<&'static str>,
    /// The `max_len` attribute.
    pub max_len: Option<u64>,
    /// The `range` attribute.
    pub range: Option<(i128, i128)>,
    /// Documentation from the schema.
    pub docs: &'static str,
}

/// Reflection data of an enum type.
#[derive(Debug)]
pub struct EnumDescriptor {
    /// The name in the schema.
    pub name: &'static str,
    /// The package.
    pub package: &'static str,
    /// The fully qualified name.
    pub full_name: &'static str,
    /// `(name, value)` pairs in value order.
    pub values: &'static [(&'static str, u32)],
    /// Documentation from the schema.
    pub docs: &'static str,
}

impl EnumDescriptor {
    /// The name of a value, if the enum defines it.
    pub fn name_of(&self, value: u32) -> Option<&'static str> {
        self.values
            .iter()
            .find(|(_, v)| *v == value)
            .map(|(n, _)| *n)
    }

    /// The value of a name, if the enum defines it.
    pub fn value_of(&self, name: &str) -> Option<u32> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}
