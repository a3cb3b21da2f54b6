//! Static reflection data generated for every schema type (and derived for
//! Rust types by `#[derive(Message)]`, `#[derive(Enum)]`, `#[derive(Union)]`).
//!
//! Besides the data itself, this module computes the wire fingerprint of a
//! type from its descriptors ([`fingerprint`], wire format §8) and prints the
//! `.isml` text of a set of types ([`export_schema`]), so that types defined
//! in Rust can be handed to a team working from schema files.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use isml_wire::canonical::{self, Definition, Member, Scalar, Shape, TypeModel};

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
    /// The fingerprint (wire format §8) as the schema compiler computed it, or
    /// `0` for a derived type: a derive macro sees one type at a time, so it
    /// cannot know the definitions its fields refer to. [`fingerprint`]
    /// computes the value from the descriptors for any type, and
    /// [`TopLevel::fingerprint`](crate::TopLevel::fingerprint) caches it.
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

/// A type with reflection data: every message, union and enum that the schema
/// compiler generates or a derive macro implements.
///
/// ```
/// # #[cfg(feature = "derive")] {
/// use isml_runtime::descriptor::{Reflect, TypeRef};
///
/// #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
/// struct Ping {
///     #[isml(tag = 1)]
///     seq: u32,
/// }
///
/// let d = <Ping as Reflect>::TYPE_REF.message_descriptor().expect("a message");
/// assert_eq!(d.fields[0].name, "seq");
/// # }
/// ```
pub trait Reflect {
    /// How the type appears in field descriptors: [`TypeRef::Message`] for
    /// messages and unions, [`TypeRef::Enum`] for enums.
    const TYPE_REF: TypeRef;
}

impl TypeRef {
    /// The reference of a named type.
    pub const fn of<T: Reflect>() -> TypeRef {
        T::TYPE_REF
    }

    /// The descriptor of a message or union reference.
    pub fn message_descriptor(&self) -> Option<&'static MessageDescriptor> {
        match self {
            TypeRef::Message(f) => Some(f()),
            _ => None,
        }
    }

    /// The descriptor of an enum reference.
    pub fn enum_descriptor(&self) -> Option<&'static EnumDescriptor> {
        match self {
            TypeRef::Enum(f) => Some(f()),
            _ => None,
        }
    }

    /// The scalar this reference is, `None` for composite and named types.
    pub fn scalar(&self) -> Option<Scalar> {
        Some(match self {
            TypeRef::Bool => Scalar::Bool,
            TypeRef::U8 => Scalar::U8,
            TypeRef::U16 => Scalar::U16,
            TypeRef::U32 => Scalar::U32,
            TypeRef::U64 => Scalar::U64,
            TypeRef::I8 => Scalar::I8,
            TypeRef::I16 => Scalar::I16,
            TypeRef::I32 => Scalar::I32,
            TypeRef::I64 => Scalar::I64,
            TypeRef::F32 => Scalar::F32,
            TypeRef::F64 => Scalar::F64,
            TypeRef::String => Scalar::String,
            TypeRef::Bytes => Scalar::Bytes,
            _ => return None,
        })
    }

    /// The schema spelling of a scalar, `None` for composite and named types.
    pub fn scalar_name(&self) -> Option<&'static str> {
        self.scalar().map(Scalar::name)
    }
}

/// The canonical form of a message or union (wire format §8), computed from
/// descriptors by [`isml_wire::canonical`], the implementation the schema
/// compiler uses too.
pub fn canonical_form(descriptor: &'static MessageDescriptor) -> String {
    canonical::form(&Descriptors, Named::Message(descriptor))
}

/// The canonical form of any type reference (scalars and containers
/// included); for a message or union it equals [`canonical_form`].
pub fn type_canonical_form(ty: &TypeRef) -> String {
    canonical::type_form(&Descriptors, ty)
}

/// The fingerprint of a message or union (wire format §8): FNV-1a 64 of its
/// [`canonical_form`].
///
/// ```
/// use isml_runtime::descriptor::*;
///
/// // message A [id = 5] { x: u8 = 1; y: list<A> = 2; }
/// static A: MessageDescriptor = MessageDescriptor {
///     name: "A",
///     package: "p",
///     full_name: "p.A",
///     kind: MessageKind::Message,
///     id: Some(5),
///     fields: &[field("x", 1, TypeRef::U8), field("y", 2, TypeRef::List(&TypeRef::Message(a)))],
///     docs: "",
///     fingerprint: 0,
/// };
/// fn a() -> &'static MessageDescriptor {
///     &A
/// }
/// const fn field(name: &'static str, tag: u32, ty: TypeRef) -> FieldDescriptor {
///     FieldDescriptor { name, tag, ty, deprecated: false, unit: None, max_len: None, range: None, docs: "" }
/// }
///
/// assert_eq!(canonical_form(&A), "#5message{1:u8;2:list<@0>;}");
/// assert_eq!(fingerprint(&A), 0x28ae_8ddf_2bb7_a58e);
/// ```
pub fn fingerprint(descriptor: &'static MessageDescriptor) -> u64 {
    canonical::fingerprint(&Descriptors, Named::Message(descriptor))
}

/// FNV-1a 64-bit hash (offset basis `0xcbf29ce484222325`, prime `0x100000001b3`).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    canonical::fnv1a64(bytes)
}

/// The static descriptors as a [`TypeModel`]: named types are compared by
/// identity (each type's descriptor is one `static`), never by name, so two
/// distinct types that happen to share a name are not confused.
struct Descriptors;

impl TypeModel for Descriptors {
    type Type = TypeRef;
    type Def = Named;

    fn shape<'a>(&'a self, ty: &'a TypeRef) -> Shape<'a, TypeRef, Named> {
        match ty {
            TypeRef::Optional(t) => Shape::Optional(t),
            TypeRef::List(t) => Shape::List(t),
            TypeRef::Map(k, v) => Shape::Map(k, v),
            TypeRef::Array(t, n) => Shape::Array(t, *n),
            TypeRef::Message(f) => Shape::Named(Named::Message(f())),
            TypeRef::Enum(f) => Shape::Named(Named::Enum(f())),
            // Every other variant is a scalar.
            scalar => Shape::Scalar(scalar.scalar().unwrap_or(Scalar::Bool)),
        }
    }

    fn definition(&self, def: Named) -> Option<Definition> {
        Some(match def {
            Named::Enum(_) => Definition::Enum,
            Named::Message(d) => match d.kind {
                MessageKind::Message => Definition::Message { id: d.id },
                MessageKind::Union => Definition::Union { id: d.id },
            },
        })
    }

    fn member_count(&self, def: Named) -> usize {
        match def {
            Named::Message(d) => d.fields.len(),
            Named::Enum(_) => 0,
        }
    }

    fn member(&self, def: Named, index: usize) -> Member<'_, TypeRef> {
        let (d, f) = match def {
            Named::Message(d) => (d, &d.fields[index]),
            // `member_count` is 0 for enums: the canonical form never asks.
            Named::Enum(_) => unreachable!("an enum has no members"),
        };
        let message = d.kind == MessageKind::Message;
        Member {
            tag: f.tag,
            ty: &f.ty,
            max_len: f.max_len.filter(|_| message),
            range: f.range.filter(|_| message),
        }
    }

    fn enum_value_count(&self, def: Named) -> usize {
        match def {
            Named::Enum(e) => e.values.len(),
            Named::Message(_) => 0,
        }
    }

    fn enum_value(&self, def: Named, index: usize) -> u32 {
        match def {
            Named::Enum(e) => e.values[index].1,
            Named::Message(_) => 0,
        }
    }
}

/// Why [`export_schema`] cannot print a set of types.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// No message, union or enum was given.
    #[error("nothing to export: pass at least one message, union or enum type")]
    Empty,
    /// One `.isml` file holds one package.
    #[error(
        "types of several packages reached (`{first}` and `{second}`): one schema file holds one package"
    )]
    MixedPackages {
        /// A package reached.
        first: String,
        /// Another one.
        second: String,
    },
    /// A schema needs a package name.
    #[error("type `{name}` has no package: a schema file needs a `package` line")]
    NoPackage {
        /// The type.
        name: String,
    },
    /// Two distinct types with one name.
    #[error("two different types are both called `{full_name}`")]
    DuplicateName {
        /// The clashing name.
        full_name: String,
    },
    /// Two top-level types with one id.
    #[error("type id {id} is used by both `{first}` and `{second}`")]
    DuplicateId {
        /// The id.
        id: u32,
        /// A type using it.
        first: String,
        /// Another type using it.
        second: String,
    },
    /// A channel whose message type is not among the exported types, or
    /// whose name is not in the exported package.
    #[error("channel `{channel}`: {problem}")]
    Channel {
        /// The channel's full name.
        channel: String,
        /// What is wrong.
        problem: String,
    },
}

/// A named type: reached by [`export_schema`], or a definition of the
/// canonical form. Equal when it is the same `static` descriptor.
#[derive(Clone, Copy)]
enum Named {
    Message(&'static MessageDescriptor),
    Enum(&'static EnumDescriptor),
}

impl PartialEq for Named {
    fn eq(&self, other: &Self) -> bool {
        self.ptr() == other.ptr()
    }
}

impl Named {
    fn name(&self) -> &'static str {
        match self {
            Named::Message(d) => d.name,
            Named::Enum(d) => d.name,
        }
    }
    fn package(&self) -> &'static str {
        match self {
            Named::Message(d) => d.package,
            Named::Enum(d) => d.package,
        }
    }
    fn full_name(&self) -> &'static str {
        match self {
            Named::Message(d) => d.full_name,
            Named::Enum(d) => d.full_name,
        }
    }
    fn ptr(&self) -> *const () {
        match self {
            Named::Message(d) => core::ptr::from_ref(*d).cast(),
            Named::Enum(d) => core::ptr::from_ref(*d).cast(),
        }
    }
}

/// Prints the `.isml` text of `types` and of every type they refer to, so a
/// team defining its messages in Rust can hand a schema to a device team.
/// Compiling the text with the schema compiler gives the same fingerprints.
///
/// All types reached must share one package (one schema file holds one
/// package); names and type ids must be unique. Types are printed in name
/// order, with their docs, ids, tags and attributes (`reserved` tags are not
/// recorded in descriptors and are not printed).
///
/// ```
/// # #[cfg(feature = "derive")] {
/// use isml_runtime::descriptor::{TypeRef, export_schema};
///
/// /// A ping.
/// #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
/// #[isml(id = 1, package = "demo.v1")]
/// struct Ping {
///     #[isml(tag = 1, range = 0..=1000)]
///     seq: u32,
/// }
///
/// let text = export_schema(&[TypeRef::of::<Ping>()]).unwrap();
/// assert!(text.contains("package demo.v1;"));
/// assert!(text.contains("message Ping [id = 1] {"));
/// assert!(text.contains("seq: u32 = 1 [range = 0..=1000];"));
/// # }
/// ```
pub fn export_schema(types: &[TypeRef]) -> Result<String, ExportError> {
    export_schema_with_channels(types, &[])
}

/// [`export_schema`] with pub/sub channels (declared with
/// [`channel!`](crate::channel) or implemented by hand): each is written as
/// `channel <name>: <Type> = <id> [retain, keyed];` after the types. A
/// channel's message type must be among the types reached, and its full
/// name must be in their package.
///
/// ```
/// # #[cfg(feature = "derive")] {
/// use isml_runtime::descriptor::{TypeRef, export_schema_with_channels};
/// use isml_runtime::pubsub::Channel;
/// #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
/// #[isml(id = 1, package = "demo.v1")]
/// pub struct Status { #[isml(tag = 1)] up: bool }
/// isml_runtime::channel! {
///     /// The last status, kept for new subscribers.
///     pub Statuses: Status = 1, "demo.v1.statuses", [retain];
/// }
/// let text = export_schema_with_channels(&[TypeRef::of::<Status>()], &[Statuses::info()]).unwrap();
/// assert!(text.contains("channel statuses: Status = 1 [retain];"));
/// # }
/// ```
pub fn export_schema_with_channels(
    types: &[TypeRef],
    channels: &[crate::pubsub::ChannelInfo],
) -> Result<String, ExportError> {
    export_package(types, channels).map(|(_, text)| text)
}

/// [`export_schema_with_channels`], with the package printed.
pub(crate) fn export_package(
    types: &[TypeRef],
    channels: &[crate::pubsub::ChannelInfo],
) -> Result<(&'static str, String), ExportError> {
    // full name -> type, in name order, each reached once.
    let mut found: BTreeMap<&'static str, Named> = BTreeMap::new();
    let mut pending: Vec<TypeRef> = types.to_vec();
    while let Some(ty) = pending.pop() {
        let named = match ty {
            TypeRef::Optional(t) | TypeRef::List(t) | TypeRef::Array(t, _) => {
                pending.push(*t);
                continue;
            }
            TypeRef::Map(k, v) => {
                pending.push(*k);
                pending.push(*v);
                continue;
            }
            TypeRef::Message(f) => Named::Message(f()),
            TypeRef::Enum(f) => Named::Enum(f()),
            _ => continue,
        };
        if let Some(seen) = found.get(named.full_name()) {
            if seen.ptr() == named.ptr() {
                continue;
            }
            return Err(ExportError::DuplicateName {
                full_name: named.full_name().into(),
            });
        }
        if let Named::Message(d) = &named {
            pending.extend(d.fields.iter().map(|f| f.ty));
        }
        found.insert(named.full_name(), named);
    }
    let Some(first) = found.values().next() else {
        return Err(ExportError::Empty);
    };
    let package = first.package();
    if let Some(other) = found.values().find(|t| t.package() != package) {
        return Err(ExportError::MixedPackages {
            first: package.into(),
            second: other.package().into(),
        });
    }
    if package.is_empty() {
        return Err(ExportError::NoPackage {
            name: first.name().into(),
        });
    }
    let mut ids: BTreeMap<u32, &'static str> = BTreeMap::new();
    for t in found.values() {
        if let Named::Message(d) = t
            && let Some(id) = d.id
            && let Some(prev) = ids.insert(id, d.full_name)
        {
            return Err(ExportError::DuplicateId {
                id,
                first: prev.into(),
                second: d.full_name.into(),
            });
        }
    }

    let mut out = String::new();
    out.push_str("// Exported by isml-runtime from Rust type descriptors.\n");
    let _ = writeln!(out, "package {package};");
    for t in found.values() {
        out.push('\n');
        match t {
            Named::Enum(e) => {
                doc_lines(&mut out, e.docs, "");
                let _ = writeln!(out, "enum {} {{", e.name);
                let mut values: Vec<&(&str, u32)> = e.values.iter().collect();
                values.sort_by_key(|(_, v)| *v);
                for (name, value) in values {
                    let _ = writeln!(out, "    {name} = {value};");
                }
                out.push_str("}\n");
            }
            Named::Message(d) => {
                doc_lines(&mut out, d.docs, "");
                let kw = match d.kind {
                    MessageKind::Message => "message",
                    MessageKind::Union => "union",
                };
                let _ = write!(out, "{kw} {}", d.name);
                if let Some(id) = d.id {
                    let _ = write!(out, " [id = {id}]");
                }
                out.push_str(" {\n");
                let mut fields: Vec<&FieldDescriptor> = d.fields.iter().collect();
                fields.sort_by_key(|f| f.tag);
                for f in fields {
                    doc_lines(&mut out, f.docs, "    ");
                    let _ = write!(out, "    {}: {} = {}", f.name, SchemaType(&f.ty), f.tag);
                    let mut attrs: Vec<String> = Vec::new();
                    if f.deprecated {
                        attrs.push("deprecated".into());
                    }
                    if let Some(unit) = f.unit {
                        attrs.push(alloc::format!("unit = {unit:?}"));
                    }
                    if let Some(n) = f.max_len {
                        attrs.push(alloc::format!("max_len = {n}"));
                    }
                    if let Some((lo, hi)) = f.range {
                        attrs.push(alloc::format!("range = {lo}..={hi}"));
                    }
                    if !attrs.is_empty() {
                        let _ = write!(out, " [{}]", attrs.join(", "));
                    }
                    out.push_str(";\n");
                }
                out.push_str("}\n");
            }
        }
    }
    let mut channels: Vec<&crate::pubsub::ChannelInfo> = channels.iter().collect();
    channels.sort_by_key(|c| c.id);
    if !channels.is_empty() {
        out.push('\n');
    }
    for c in channels {
        let problem = |problem: String| ExportError::Channel {
            channel: c.name.clone(),
            problem,
        };
        let short = c
            .name
            .strip_prefix(package)
            .and_then(|r| r.strip_prefix('.'))
            .filter(|r| !r.is_empty() && !r.contains('.'))
            .ok_or_else(|| problem(alloc::format!("its name is not in package `{package}`")))?;
        let ty = found
            .values()
            .find_map(|t| match t {
                Named::Message(d) if d.id == Some(c.type_id) => Some(d.name),
                _ => None,
            })
            .ok_or_else(|| {
                problem(alloc::format!(
                    "its message type (type id {}) is not among the exported types",
                    c.type_id
                ))
            })?;
        let mut flags = Vec::new();
        if c.retain {
            flags.push("retain");
        }
        if c.keyed {
            flags.push("keyed");
        }
        let _ = write!(out, "channel {short}: {ty} = {}", c.id);
        if !flags.is_empty() {
            let _ = write!(out, " [{}]", flags.join(", "));
        }
        out.push_str(";\n");
    }
    Ok((package, out))
}

fn doc_lines(out: &mut String, docs: &str, indent: &str) {
    if docs.is_empty() {
        return;
    }
    for line in docs.lines() {
        if line.is_empty() {
            let _ = writeln!(out, "{indent}///");
        } else if line.starts_with(' ') {
            let _ = writeln!(out, "{indent}///{line}");
        } else {
            let _ = writeln!(out, "{indent}/// {line}");
        }
    }
}

/// A type in schema syntax, named types by their (unqualified) name.
struct SchemaType<'a>(&'a TypeRef);

impl core::fmt::Display for SchemaType<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            TypeRef::Optional(t) => write!(f, "optional<{}>", SchemaType(t)),
            TypeRef::List(t) => write!(f, "list<{}>", SchemaType(t)),
            TypeRef::Map(k, v) => write!(f, "map<{}, {}>", SchemaType(k), SchemaType(v)),
            TypeRef::Array(t, n) => write!(f, "array<{}, {n}>", SchemaType(t)),
            TypeRef::Message(d) => f.write_str(d().name),
            TypeRef::Enum(d) => f.write_str(d().name),
            scalar => f.write_str(scalar.scalar_name().unwrap_or("?")),
        }
    }
}
