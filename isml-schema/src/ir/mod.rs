//! The intermediate representation: a fully resolved, checked schema.
//!
//! This is what code generators consume. It is produced by
//! [`load`](crate::load()) from `.isml` files, and can also be built directly
//! (for example by a derive macro, which has no source files): every span is
//! optional and the constructors below need none. Run
//! [`Schema::validate`] on an IR built by hand to get the same checks the
//! schema compiler applies.
//!
//! Ordering is deterministic: types are sorted by package then name (their
//! position is their [`TypeId`]), fields and variants by tag or value,
//! services and channels by package then name, methods by id.

pub mod fingerprint;
pub(crate) mod naming;
pub mod size;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;

use crate::source::{SourceFile, Span};

/// The scalar types, as the wire crate declares them for canonical forms.
pub use isml_wire::canonical::Scalar;

/// A whole compiled schema: everything loaded together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    /// The source files, indexed by [`FileId`](crate::FileId); empty for an
    /// IR built without sources.
    pub files: Vec<SourceFile>,
    /// Per-package information (`//!` docs), keyed by dotted package name.
    pub packages: BTreeMap<String, PackageDef>,
    /// All message, enum and union types, indexed by [`TypeId`].
    pub types: Vec<TypeDef>,
    /// All services.
    pub services: Vec<ServiceDef>,
    /// All pub/sub channels.
    pub channels: Vec<ChannelDef>,
}

/// Information about one package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageDef {
    /// `//!` lines of the package's files, in load order.
    pub docs: Vec<String>,
}

/// Index of a type in [`Schema::types`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TypeId(pub u32);

impl TypeId {
    /// The index into [`Schema::types`].
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A named type: message, enum or union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeDef {
    /// The name as declared (`StatusReport`).
    pub name: String,
    /// The dotted package (`charging.v1`).
    pub package: String,
    /// `///` lines.
    pub docs: Vec<String>,
    /// Where it was declared.
    pub span: Option<Span>,
    /// What it is.
    pub kind: TypeDefKind,
}

impl TypeDef {
    /// A type with no docs and no span.
    pub fn new(package: impl Into<String>, name: impl Into<String>, kind: TypeDefKind) -> TypeDef {
        TypeDef {
            name: name.into(),
            package: package.into(),
            docs: Vec::new(),
            span: None,
            kind,
        }
    }

    /// `package.Name`.
    pub fn full_name(&self) -> String {
        qualify(&self.package, &self.name)
    }

    /// The message `id` of a message or union, if it has one.
    pub fn message_id(&self) -> Option<u32> {
        match &self.kind {
            TypeDefKind::Message(m) => m.id,
            TypeDefKind::Union(u) => u.id,
            TypeDefKind::Enum(_) => None,
        }
    }

    /// `"message"`, `"enum"` or `"union"`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            TypeDefKind::Message(_) => "message",
            TypeDefKind::Enum(_) => "enum",
            TypeDefKind::Union(_) => "union",
        }
    }
}

/// The three kinds of named type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeDefKind {
    /// A record of tagged fields.
    Message(MessageDef),
    /// A set of named `u32` values.
    Enum(EnumDef),
    /// Exactly one of several tagged variants.
    Union(UnionDef),
}

/// A message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageDef {
    /// The message type on the wire, for messages that can be sent on their own.
    pub id: Option<u32>,
    /// Fields, sorted by tag.
    pub fields: Vec<FieldDef>,
    /// Tags that must never be used again, as inclusive ranges in source order.
    pub reserved: Vec<RangeInclusive<u32>>,
}

/// One field of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// The field name.
    pub name: String,
    /// Its tag, 1..=255.
    pub tag: u32,
    /// Its type.
    pub ty: Type,
    /// `///` lines.
    pub docs: Vec<String>,
    /// Where it was declared.
    pub span: Option<Span>,
    /// `[deprecated]`.
    pub deprecated: bool,
    /// `[unit = "…"]`: documentation only.
    pub unit: Option<String>,
    /// `[max_len = N]`: maximum length of a string, bytes, list or map.
    pub max_len: Option<u64>,
    /// `[range = A..=B]`: inclusive bounds of a numeric field.
    pub range: Option<(i128, i128)>,
}

impl FieldDef {
    /// A field with no docs, span or attributes.
    pub fn new(name: impl Into<String>, tag: u32, ty: Type) -> FieldDef {
        FieldDef {
            name: name.into(),
            tag,
            ty,
            docs: Vec::new(),
            span: None,
            deprecated: false,
            unit: None,
            max_len: None,
            range: None,
        }
    }
}

/// A field, variant or element type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
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
    /// `string` (UTF-8)
    String,
    /// `bytes`
    Bytes,
    /// `optional<T>`
    Optional(Box<Type>),
    /// `list<T>`
    List(Box<Type>),
    /// `map<K, V>`
    Map(Box<Type>, Box<Type>),
    /// `array<T, N>`
    Array(Box<Type>, u32),
    /// A message, enum or union.
    Named(TypeId),
}

impl From<Scalar> for Type {
    fn from(s: Scalar) -> Type {
        match s {
            Scalar::Bool => Type::Bool,
            Scalar::U8 => Type::U8,
            Scalar::U16 => Type::U16,
            Scalar::U32 => Type::U32,
            Scalar::U64 => Type::U64,
            Scalar::I8 => Type::I8,
            Scalar::I16 => Type::I16,
            Scalar::I32 => Type::I32,
            Scalar::I64 => Type::I64,
            Scalar::F32 => Type::F32,
            Scalar::F64 => Type::F64,
            Scalar::String => Type::String,
            Scalar::Bytes => Type::Bytes,
        }
    }
}

impl Type {
    /// The scalar type called `name` in schemas (`"u8"`, `"string"`...).
    pub fn scalar(name: &str) -> Option<Type> {
        Scalar::from_name(name).map(Type::from)
    }

    /// The scalar this type is, `None` for composite and named types.
    pub fn as_scalar(&self) -> Option<Scalar> {
        Some(match self {
            Type::Bool => Scalar::Bool,
            Type::U8 => Scalar::U8,
            Type::U16 => Scalar::U16,
            Type::U32 => Scalar::U32,
            Type::U64 => Scalar::U64,
            Type::I8 => Scalar::I8,
            Type::I16 => Scalar::I16,
            Type::I32 => Scalar::I32,
            Type::I64 => Scalar::I64,
            Type::F32 => Scalar::F32,
            Type::F64 => Scalar::F64,
            Type::String => Scalar::String,
            Type::Bytes => Scalar::Bytes,
            _ => return None,
        })
    }

    /// The schema spelling of a scalar, `None` for composite and named types.
    pub fn scalar_name(&self) -> Option<&'static str> {
        self.as_scalar().map(Scalar::name)
    }

    /// The inclusive value range of an integer type.
    pub fn integer_bounds(&self) -> Option<(i128, i128)> {
        Some(match self {
            Type::U8 => (0, u8::MAX.into()),
            Type::U16 => (0, u16::MAX.into()),
            Type::U32 => (0, u32::MAX.into()),
            Type::U64 => (0, u64::MAX.into()),
            Type::I8 => (i8::MIN.into(), i8::MAX.into()),
            Type::I16 => (i16::MIN.into(), i16::MAX.into()),
            Type::I32 => (i32::MIN.into(), i32::MAX.into()),
            Type::I64 => (i64::MIN.into(), i64::MAX.into()),
            _ => return None,
        })
    }

    /// Whether this is one of the eight integer types.
    pub fn is_integer(&self) -> bool {
        self.integer_bounds().is_some()
    }

    /// Whether this is `f32` or `f64`.
    pub fn is_float(&self) -> bool {
        matches!(self, Type::F32 | Type::F64)
    }

    /// The type itself, or the `T` of `optional<T>`.
    pub fn strip_optional(&self) -> &Type {
        match self {
            Type::Optional(inner) => inner,
            other => other,
        }
    }

    /// Displays the type in schema syntax, naming types by their full name.
    pub fn display<'a>(&'a self, schema: &'a Schema) -> impl fmt::Display + 'a {
        DisplayType { ty: self, schema }
    }
}

struct DisplayType<'a> {
    ty: &'a Type,
    schema: &'a Schema,
}

impl<'a> fmt::Display for DisplayType<'a> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sub = |ty: &'a Type| DisplayType {
            ty,
            schema: self.schema,
        };
        match self.ty {
            Type::Optional(t) => write!(f, "optional<{}>", sub(t)),
            Type::List(t) => write!(f, "list<{}>", sub(t)),
            Type::Map(k, v) => write!(f, "map<{}, {}>", sub(k), sub(v)),
            Type::Array(t, n) => write!(f, "array<{}, {n}>", sub(t)),
            Type::Named(id) => match self.schema.get(*id) {
                Some(def) => write!(f, "{}", def.full_name()),
                None => write!(f, "<unknown type #{}>", id.0),
            },
            scalar => f.write_str(scalar.scalar_name().unwrap_or("?")),
        }
    }
}

/// An enum.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnumDef {
    /// Variants, sorted by value.
    pub variants: Vec<EnumVariant>,
}

/// One variant of an enum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumVariant {
    /// The variant name.
    pub name: String,
    /// Its value on the wire.
    pub value: u32,
    /// `///` lines.
    pub docs: Vec<String>,
    /// Where it was declared.
    pub span: Option<Span>,
}

impl EnumVariant {
    /// A variant with no docs or span.
    pub fn new(name: impl Into<String>, value: u32) -> EnumVariant {
        EnumVariant {
            name: name.into(),
            value,
            docs: Vec::new(),
            span: None,
        }
    }
}

/// A union.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnionDef {
    /// The message type on the wire, for unions that can be sent on their own.
    pub id: Option<u32>,
    /// Variants, sorted by tag.
    pub variants: Vec<UnionVariant>,
}

/// One variant of a union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnionVariant {
    /// The variant name.
    pub name: String,
    /// Its tag, 1..=255.
    pub tag: u32,
    /// The type it carries (never `optional<..>`).
    pub ty: Type,
    /// `///` lines.
    pub docs: Vec<String>,
    /// Where it was declared.
    pub span: Option<Span>,
}

impl UnionVariant {
    /// A variant with no docs or span.
    pub fn new(name: impl Into<String>, tag: u32, ty: Type) -> UnionVariant {
        UnionVariant {
            name: name.into(),
            tag,
            ty,
            docs: Vec::new(),
            span: None,
        }
    }
}

/// A service: a set of rpc methods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceDef {
    /// The service name.
    pub name: String,
    /// The dotted package.
    pub package: String,
    /// `///` lines.
    pub docs: Vec<String>,
    /// Where it was declared.
    pub span: Option<Span>,
    /// Methods, sorted by id.
    pub methods: Vec<MethodDef>,
}

impl ServiceDef {
    /// `package.Name`.
    pub fn full_name(&self) -> String {
        qualify(&self.package, &self.name)
    }
}

/// One rpc of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MethodDef {
    /// The method name.
    pub name: String,
    /// Its id on the wire, 1..=65535.
    pub id: u32,
    /// The request message or union.
    pub request: TypeId,
    /// The response message or union; `None` for a one-way call.
    pub response: Option<TypeId>,
    /// Whether the caller sends a stream of requests (`rpc m(stream Req)`)
    /// rather than one.
    pub client_streaming: bool,
    /// Whether the server replies with a stream of responses
    /// (`-> stream Resp`) rather than one. Only meaningful with a response.
    pub server_streaming: bool,
    /// `[once]`: callers send the call through the session's reliable state,
    /// so that it runs once across reconnects (`docs/rpc.md`). Only unary
    /// and one-way methods may have it. A choice of the caller's delivery,
    /// not part of the method's fingerprint.
    pub once: bool,
    /// `///` lines.
    pub docs: Vec<String>,
    /// Where it was declared.
    pub span: Option<Span>,
}

impl MethodDef {
    /// A unary method (one request, one response) with no docs or span, not
    /// `once`; set `response`, `client_streaming` and `server_streaming` for
    /// the other kinds.
    pub fn new(name: impl Into<String>, id: u32, request: TypeId, response: TypeId) -> MethodDef {
        MethodDef {
            name: name.into(),
            id,
            request,
            response: Some(response),
            client_streaming: false,
            server_streaming: false,
            once: false,
            docs: Vec::new(),
            span: None,
        }
    }

    /// The method's kind, from its response and streaming flags.
    ///
    /// A method without a response is [`MethodKind::OneWay`] whatever its
    /// flags say; the checker rejects streaming flags on such a method
    /// ([`ErrorKind::StreamWithoutResponse`](crate::ErrorKind::StreamWithoutResponse)).
    pub fn kind(&self) -> MethodKind {
        match (self.response, self.client_streaming, self.server_streaming) {
            (None, _, _) => MethodKind::OneWay,
            (Some(_), false, false) => MethodKind::Unary,
            (Some(_), false, true) => MethodKind::ServerStreaming,
            (Some(_), true, false) => MethodKind::ClientStreaming,
            (Some(_), true, true) => MethodKind::Bidirectional,
        }
    }

    /// The method's fingerprint (wire format §8.1) with its types looked up
    /// in `schema`; see [`crate::fingerprint::method_fingerprint`].
    pub fn fingerprint(&self, schema: &Schema) -> u64 {
        crate::fingerprint::method_fingerprint(schema, self)
    }
}

/// The five forms of an rpc: how many requests and responses a call carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MethodKind {
    /// `rpc m(Req) = id;`: one request, no response.
    OneWay,
    /// `rpc m(Req) -> Resp = id;`: one request, one response.
    Unary,
    /// `rpc m(Req) -> stream Resp = id;`: one request, a stream of responses.
    ServerStreaming,
    /// `rpc m(stream Req) -> Resp = id;`: a stream of requests, one response
    /// once the stream ends.
    ClientStreaming,
    /// `rpc m(stream Req) -> stream Resp = id;`: both sides stream,
    /// independently of each other.
    Bidirectional,
}

impl MethodKind {
    /// Every kind, in declaration order.
    pub const ALL: [MethodKind; 5] = [
        MethodKind::OneWay,
        MethodKind::Unary,
        MethodKind::ServerStreaming,
        MethodKind::ClientStreaming,
        MethodKind::Bidirectional,
    ];

    /// A short lowercase name: `one-way`, `unary`, `server streaming`,
    /// `client streaming` or `bidirectional streaming`, as `isml describe`,
    /// dumps and compat reports print it.
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::OneWay => "one-way",
            MethodKind::Unary => "unary",
            MethodKind::ServerStreaming => "server streaming",
            MethodKind::ClientStreaming => "client streaming",
            MethodKind::Bidirectional => "bidirectional streaming",
        }
    }

    /// Whether the caller sends a stream of requests.
    pub fn client_streaming(self) -> bool {
        matches!(
            self,
            MethodKind::ClientStreaming | MethodKind::Bidirectional
        )
    }

    /// Whether the server sends a stream of responses.
    pub fn server_streaming(self) -> bool {
        matches!(
            self,
            MethodKind::ServerStreaming | MethodKind::Bidirectional
        )
    }

    /// Whether the call has a response (one or a stream).
    pub fn has_response(self) -> bool {
        self != MethodKind::OneWay
    }
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A publish/subscribe channel carrying one message or union type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelDef {
    /// The channel name.
    pub name: String,
    /// The dotted package.
    pub package: String,
    /// Its id on the wire, 1..=65535.
    pub id: u32,
    /// The message or union it carries.
    pub ty: TypeId,
    /// `[retain]`: the last value (per key) is kept and sent to new subscribers.
    pub retain: bool,
    /// `[keyed]`: each publication carries a string key.
    pub keyed: bool,
    /// `///` lines.
    pub docs: Vec<String>,
    /// Where it was declared.
    pub span: Option<Span>,
}

/// A view of one package: see [`Schema::packages_iter`].
#[derive(Clone, Debug)]
pub struct PackageView<'a> {
    /// The dotted package name.
    pub name: &'a str,
    /// `//!` docs (empty when none were recorded).
    pub docs: &'a [String],
    /// The package's types with their ids, in id order.
    pub types: Vec<(TypeId, &'a TypeDef)>,
    /// The package's services.
    pub services: Vec<&'a ServiceDef>,
    /// The package's channels.
    pub channels: Vec<&'a ChannelDef>,
}

impl Schema {
    /// The type with id `id`, if it exists.
    pub fn get(&self, id: TypeId) -> Option<&TypeDef> {
        self.types.get(id.index())
    }

    /// Looks a type up by fully qualified name (`"charging.v1.StatusReport"`).
    pub fn lookup(&self, full_name: &str) -> Option<TypeId> {
        let (package, name) = full_name.rsplit_once('.').unwrap_or(("", full_name));
        self.types
            .iter()
            .position(|t| t.package == package && t.name == name)
            .and_then(|i| u32::try_from(i).ok())
            .map(TypeId)
    }

    /// All types with their ids.
    pub fn types_iter(&self) -> impl Iterator<Item = (TypeId, &TypeDef)> {
        self.types
            .iter()
            .enumerate()
            .map(|(i, t)| (TypeId(u32::try_from(i).unwrap_or(u32::MAX)), t))
    }

    /// Every package that has a type, service, channel or docs, in sorted
    /// order, with its contents.
    pub fn packages_iter(&self) -> impl Iterator<Item = PackageView<'_>> {
        let mut names: Vec<&str> = self.packages.keys().map(String::as_str).collect();
        names.extend(self.types.iter().map(|t| t.package.as_str()));
        names.extend(self.services.iter().map(|s| s.package.as_str()));
        names.extend(self.channels.iter().map(|c| c.package.as_str()));
        names.sort_unstable();
        names.dedup();
        names.into_iter().map(move |name| PackageView {
            name,
            docs: self.packages.get(name).map_or(&[][..], |p| &p.docs[..]),
            types: self
                .types_iter()
                .filter(|(_, t)| t.package == name)
                .collect(),
            services: self.services.iter().filter(|s| s.package == name).collect(),
            channels: self.channels.iter().filter(|c| c.package == name).collect(),
        })
    }

    /// The wire fingerprint of a type; see [`crate::fingerprint`].
    pub fn fingerprint(&self, id: TypeId) -> u64 {
        crate::fingerprint::fingerprint(self, id)
    }

    /// The canonical form hashed by [`Schema::fingerprint`].
    pub fn canonical_form(&self, id: TypeId) -> String {
        crate::fingerprint::canonical_form(self, id)
    }

    /// Runs every check that does not need source text (duplicates, number
    /// ranges, attribute applicability, map keys, infinite size, rpc and
    /// channel types, dangling ids) on an IR built by another front end.
    pub fn validate(&self) -> Result<(), crate::Diagnostics> {
        let diags = crate::front::check::check(self, &crate::front::check::SpanTable::default());
        if diags.is_empty() {
            Ok(())
        } else {
            Err(crate::Diagnostics::new(self.files.clone(), diags))
        }
    }

    /// A compact, stable, human-readable dump of the whole IR (used by
    /// snapshot tests and `isml describe`-like tools).
    pub fn dump(&self) -> String {
        crate::tools::dump::dump(self)
    }
}

/// `package.name`, or just `name` for the empty package.
pub(crate) fn qualify(package: &str, name: &str) -> String {
    if package.is_empty() {
        name.to_string()
    } else {
        format!("{package}.{name}")
    }
}
