//! The spanned syntax tree produced by [`lower`](crate::front::lower) from the pest
//! parse tree. It mirrors the source closely: nothing is resolved or checked
//! yet, numbers are kept as written (wide), attributes are uninterpreted.

use crate::source::Span;

/// A name with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ident {
    pub(crate) name: String,
    pub(crate) span: Span,
}

/// An integer literal. `value` is `None` when the literal does not fit in
/// an `i128` (already reported while lowering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IntLit {
    pub(crate) value: Option<i128>,
    pub(crate) span: Span,
}

/// A whole file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct File {
    /// `//!` lines.
    pub(crate) docs: Vec<String>,
    pub(crate) package: Option<Ident>,
    pub(crate) imports: Vec<Import>,
    pub(crate) decls: Vec<Decl>,
}

/// `import "path";`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Import {
    pub(crate) path: String,
    pub(crate) span: Span,
}

/// A top-level declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decl {
    Enum(EnumDecl),
    Message(MessageDecl),
    Union(UnionDecl),
    Service(ServiceDecl),
    Channel(ChannelDecl),
}

impl Decl {
    /// The whole declaration, doc comments included.
    pub(crate) fn span(&self) -> Span {
        match self {
            Decl::Enum(d) => d.span,
            Decl::Message(d) => d.span,
            Decl::Union(d) => d.span,
            Decl::Service(d) => d.span,
            Decl::Channel(d) => d.span,
        }
    }
}

/// `enum Name { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EnumDecl {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) variants: Vec<EnumVariant>,
    pub(crate) span: Span,
}

/// `name = value;`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EnumVariant {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) value: IntLit,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) span: Span,
}

/// `message Name [attrs] { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MessageDecl {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) fields: Vec<Field>,
    pub(crate) reserved: Vec<ReservedItem>,
    pub(crate) span: Span,
}

/// `name: type = tag [attrs];`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) ty: TypeExpr,
    pub(crate) tag: IntLit,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) span: Span,
}

/// One entry of a `reserved` statement: `9` or `10 to 12`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReservedItem {
    pub(crate) start: IntLit,
    pub(crate) end: Option<IntLit>,
    pub(crate) span: Span,
}

/// `union Name [attrs] { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnionDecl {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) variants: Vec<UnionVariant>,
    pub(crate) span: Span,
}

/// `name: Type = tag;` in a union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnionVariant {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) ty: TypeExpr,
    pub(crate) tag: IntLit,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) span: Span,
}

/// `service Name { ... }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ServiceDecl {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) rpcs: Vec<RpcDecl>,
    pub(crate) span: Span,
}

/// `rpc name([stream] Req) -> [stream] Resp = id;`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RpcDecl {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) request: RpcType,
    pub(crate) response: Option<RpcType>,
    pub(crate) id: IntLit,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) span: Span,
}

/// What an rpc takes or returns: one message, or a `stream` of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RpcType {
    pub(crate) streaming: bool,
    pub(crate) ty: TypeExpr,
}

/// `channel name: Type = id [attrs];`
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChannelDecl {
    pub(crate) docs: Vec<String>,
    pub(crate) name: Ident,
    pub(crate) ty: TypeExpr,
    pub(crate) id: IntLit,
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) span: Span,
}

/// A type as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TypeExpr {
    pub(crate) kind: TypeExprKind,
    pub(crate) span: Span,
}

/// The shapes of [`TypeExpr`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TypeExprKind {
    Optional(Box<TypeExpr>),
    List(Box<TypeExpr>),
    Map(Box<TypeExpr>, Box<TypeExpr>),
    Array(Box<TypeExpr>, IntLit),
    /// A scalar or declared type, possibly package-qualified.
    Named {
        /// The dotted name, without the leading `.` of a fully qualified name.
        path: String,
        /// Whether the name was written with a leading `.` (`.acme.geo.Point`):
        /// fully qualified, not looked up relative to the file's package.
        absolute: bool,
    },
}

/// One `[...]` entry, uninterpreted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attribute {
    pub(crate) name: Ident,
    pub(crate) value: Option<AttrValue>,
    pub(crate) span: Span,
}

/// The value of an attribute, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttrValue {
    pub(crate) kind: AttrValueKind,
    pub(crate) span: Span,
}

/// The shapes of [`AttrValue`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AttrValueKind {
    Int(Option<i128>),
    Range(Option<i128>, Option<i128>),
    Str(String),
    Path(String),
}

impl AttrValueKind {
    /// How the value kind is called in messages ("an integer").
    pub(crate) fn describe(&self) -> &'static str {
        match self {
            AttrValueKind::Int(_) => "an integer",
            AttrValueKind::Range(..) => "a range",
            AttrValueKind::Str(_) => "a string",
            AttrValueKind::Path(_) => "a name",
        }
    }
}
