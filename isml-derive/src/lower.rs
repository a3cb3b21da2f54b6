//! Lowering a Rust item into the isml IR: one message, enum or union at
//! `TypeId(0)`, plus a placeholder definition for every other named type its
//! fields mention (their definitions live in other derives or in generated
//! code, reached at compile time through traits).
//!
//! Problems found here are reported through [`Ctxt`]; the IR checks
//! ([`Schema::validate`]) run afterwards, and [`Lowered::locate`] maps their
//! diagnostics back onto the tokens they concern.

use std::collections::BTreeMap;

use isml_schema::codegen::{DeriveMember, DeriveOptions, schema_variant_name};
use isml_schema::{
    Diagnostic, EnumDef, EnumVariant, ErrorKind, FieldDef, FileId, MessageDef, Schema, Span, Type,
    TypeDef, TypeDefKind, TypeId, UnionDef, UnionVariant,
};
use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt as _;
use syn::{Data, DeriveInput, Expr, ExprLit, Fields, GenericArgument, Lit, PathArguments};

use crate::attr::{self, Attrs, Key, Value};
use crate::ctxt::Ctxt;

/// Which derive is running.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Message,
    Enum,
    Union,
}

/// Tokens an error about one IR member points at.
#[derive(Default, Clone)]
struct MemberLoc {
    name: TokenStream,
    tag: Option<TokenStream>,
    ty: Option<TokenStream>,
    max_len: Option<TokenStream>,
    range: Option<TokenStream>,
}

/// The result of lowering, complete only when no error was recorded.
pub(crate) struct Lowered {
    pub(crate) schema: Schema,
    pub(crate) options: DeriveOptions,
    /// Whether the type has a usable `id` (so that a fallback `TopLevel` is due).
    pub(crate) top_level: bool,
    /// Whether the item has generic parameters: then no fallback impls (they
    /// would only add "missing generics" errors).
    pub(crate) generic: bool,
    own: TokenStream,
    own_id: Option<TokenStream>,
    /// Per IR member (field or variant, in IR order).
    members: Vec<MemberLoc>,
}

/// Lowers `input` as a `kind`.
pub(crate) fn lower(cx: &mut Ctxt, input: &DeriveInput, kind: Kind) -> Lowered {
    let ident = input.ident.clone();
    let type_attrs = attr::parse(cx, &input.attrs);
    let what = match kind {
        Kind::Message => "a message type",
        Kind::Enum => "an enum type",
        Kind::Union => "a union type",
    };
    let allowed: &[Key] = match kind {
        Kind::Enum => &[Key::Package, Key::Name],
        _ => &[Key::Id, Key::Package, Key::Name],
    };
    type_attrs.reject_others(cx, allowed, what);

    let params = &input.generics.params;
    if !params.is_empty() {
        cx.error(
            &input.generics,
            "isml derives do not support generic parameters or lifetimes: a schema type is one concrete type",
        );
    }

    let package = match &type_attrs.package {
        Some(p) => {
            if !valid_package(&p.value) {
                cx.error(
                    &p.tokens,
                    "a package is a dotted path of identifiers, e.g. `charging.v1`",
                );
            }
            p.value.clone()
        }
        None => default_package(),
    };
    let name = match &type_attrs.name {
        Some(n) => {
            check_name(cx, n);
            n.value.clone()
        }
        None => ident.unraw().to_string(),
    };

    let mut lowerer = TypeLowerer {
        own: ident.clone(),
        externals: BTreeMap::new(),
    };
    let mut members: Vec<(u32, FieldDef, DeriveMember, MemberLoc)> = Vec::new();
    let mut unknown = None;
    let mut enum_variants: Vec<(EnumVariant, DeriveMember, MemberLoc)> = Vec::new();

    match (&input.data, kind) {
        (Data::Struct(s), Kind::Message) => {
            let fields: Vec<&syn::Field> = match &s.fields {
                Fields::Named(named) => named.named.iter().collect(),
                Fields::Unit => Vec::new(),
                Fields::Unnamed(unnamed) => {
                    cx.error(
                        unnamed,
                        "tuple structs cannot derive `Message`: fields need names (the schema's field names)",
                    );
                    Vec::new()
                }
            };
            for field in fields {
                if let Some(m) = lower_field(cx, &mut lowerer, field) {
                    members.push(m);
                }
            }
        }
        (Data::Enum(e), Kind::Union) => {
            for variant in &e.variants {
                let a = attr::parse(cx, &variant.attrs);
                if let Some(u) = &a.unknown {
                    a.reject_others(cx, &[Key::Unknown], "the catch-all variant");
                    check_union_unknown(cx, variant);
                    set_unknown(cx, &mut unknown, &variant.ident, u);
                    continue;
                }
                a.reject_others(cx, &[Key::Tag, Key::Name], "a union variant");
                let ty = match &variant.fields {
                    Fields::Unnamed(f) if f.unnamed.len() == 1 => &f.unnamed[0].ty,
                    _ => {
                        cx.error(
                            variant,
                            format_args!(
                                "union variant `{}` must hold exactly one value, as in `{}(T)`",
                                variant.ident, variant.ident
                            ),
                        );
                        continue;
                    }
                };
                let Some(tag) = &a.tag else {
                    cx.error(
                        &variant.ident,
                        format_args!(
                            "union variant `{}` has no tag: add `#[isml(tag = N)]` with N in 1..=255",
                            variant.ident
                        ),
                    );
                    continue;
                };
                let Some(lowered) = lowerer.lower(cx, ty) else {
                    continue;
                };
                let vname = variant_name(cx, &a, &variant.ident);
                let mut f = FieldDef::new(vname, tag.value, lowered);
                f.docs = a.docs.clone();
                members.push((
                    tag.value,
                    f,
                    DeriveMember {
                        ident: variant.ident.clone(),
                        ty: replace_self(ty.to_token_stream(), &ident),
                    },
                    MemberLoc {
                        name: variant.ident.to_token_stream(),
                        tag: Some(tag.tokens.clone()),
                        ty: Some(ty.to_token_stream()),
                        ..MemberLoc::default()
                    },
                ));
            }
        }
        (Data::Enum(e), Kind::Enum) => {
            for variant in &e.variants {
                let a = attr::parse(cx, &variant.attrs);
                if let Some(u) = &a.unknown {
                    a.reject_others(cx, &[Key::Unknown], "the catch-all variant");
                    let ok = matches!(&variant.fields, Fields::Unnamed(f) if f.unnamed.len() == 1);
                    if !ok {
                        cx.error(
                            variant,
                            "the catch-all variant holds the unknown value: write it `Unknown(u32)`",
                        );
                    }
                    set_unknown(cx, &mut unknown, &variant.ident, u);
                    continue;
                }
                a.reject_others(cx, &[Key::Name], "an enum variant");
                if !matches!(variant.fields, Fields::Unit) {
                    cx.error(
                        variant,
                        "enum variants carry no data (use `#[derive(Union)]` for variants that do)",
                    );
                    continue;
                }
                let Some((_, expr)) = &variant.discriminant else {
                    cx.error(
                        &variant.ident,
                        format_args!(
                            "enum variant `{}` needs an explicit value: write `{} = N`",
                            variant.ident, variant.ident
                        ),
                    );
                    continue;
                };
                let value = match expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<u32>().ok(),
                    _ => None,
                };
                let Some(value) = value else {
                    cx.error(
                        expr,
                        "enum values are integer literals in 0..=4294967295",
                    );
                    continue;
                };
                let vname = variant_name(cx, &a, &variant.ident);
                let mut v = EnumVariant::new(vname, value);
                v.docs = a.docs.clone();
                enum_variants.push((
                    v,
                    DeriveMember {
                        ident: variant.ident.clone(),
                        ty: quote!(),
                    },
                    MemberLoc {
                        name: variant.ident.to_token_stream(),
                        tag: Some(expr.to_token_stream()),
                        ..MemberLoc::default()
                    },
                ));
            }
        }
        (_, Kind::Message) => cx.error(
            &ident,
            "`#[derive(Message)]` applies to structs with named fields; use `#[derive(Enum)]` or `#[derive(Union)]` for enums",
        ),
        (_, Kind::Enum | Kind::Union) => cx.error(
            &ident,
            format_args!(
                "`#[derive({})]` applies to enums; use `#[derive(Message)]` for structs",
                if kind == Kind::Enum { "Enum" } else { "Union" }
            ),
        ),
    }
    let is_enum_input = matches!(input.data, Data::Enum(_));
    if kind != Kind::Message && is_enum_input && unknown.is_none() {
        let example = if kind == Kind::Enum {
            "#[isml(unknown)] Unknown(u32)"
        } else {
            "#[isml(unknown)] Unknown { tag: u64, class: isml_runtime::wire::Class, bytes: bytes::Bytes }"
        };
        cx.error(
            &ident,
            format_args!(
                "`{ident}` needs a catch-all variant to keep values this version does not know (peers may be newer): add `{example}`"
            ),
        );
    }

    // The IR keeps members sorted by tag (or value); the derive's members follow.
    members.sort_by_key(|m| m.0);
    enum_variants.sort_by_key(|v| v.0.value);
    let id_value = type_attrs.id.as_ref().map(|v| v.value);
    let mut locs = Vec::new();
    let mut derive_members = Vec::new();
    let kind_def = match kind {
        Kind::Message | Kind::Union => {
            let mut fields = Vec::new();
            for (i, (_, mut f, dm, loc)) in members.into_iter().enumerate() {
                f.span = Some(member_span(i));
                fields.push(f);
                derive_members.push(dm);
                locs.push(loc);
            }
            if kind == Kind::Message {
                TypeDefKind::Message(MessageDef {
                    id: id_value,
                    fields,
                    reserved: Vec::new(),
                })
            } else {
                TypeDefKind::Union(UnionDef {
                    id: id_value,
                    variants: fields
                        .into_iter()
                        .map(|f| {
                            let mut v = UnionVariant::new(f.name, f.tag, f.ty);
                            v.docs = f.docs;
                            v.span = f.span;
                            v
                        })
                        .collect(),
                })
            }
        }
        Kind::Enum => {
            let mut variants = Vec::new();
            for (i, (mut v, dm, loc)) in enum_variants.into_iter().enumerate() {
                v.span = Some(member_span(i));
                variants.push(v);
                derive_members.push(dm);
                locs.push(loc);
            }
            TypeDefKind::Enum(EnumDef { variants })
        }
    };
    let mut own = TypeDef::new(package, name, kind_def);
    own.docs = type_attrs.docs.clone();
    own.span = Some(Span::new(FileId(0), 0, 0));
    let mut types = vec![own];
    let mut externals = BTreeMap::new();
    let mut ext_list: Vec<External> = lowerer.externals.into_values().collect();
    ext_list.sort_by_key(|e| e.id);
    for ext in ext_list {
        // Placeholders: an empty message is valid wherever a named type is.
        types.push(TypeDef::new(
            ext.package,
            ext.name,
            TypeDefKind::Message(MessageDef::default()),
        ));
        externals.insert(TypeId(ext.id), ext.path);
    }
    let schema = Schema {
        types,
        ..Schema::default()
    };
    let vis = input.vis.to_token_stream();
    Lowered {
        schema,
        options: DeriveOptions {
            view_ident: format_ident!("{}View", ident.unraw()),
            lazy_ident: format_ident!("{}Lazy", ident.unraw()),
            ident: ident.clone(),
            vis,
            members: derive_members,
            unknown,
            externals,
        },
        top_level: kind != Kind::Enum && type_attrs.id.is_some(),
        generic: !params.is_empty(),
        own: ident.to_token_stream(),
        own_id: type_attrs.id.map(|v| v.tokens),
        members: locs,
    }
}

/// The fake span that identifies IR member `i` in diagnostics.
fn member_span(i: usize) -> Span {
    Span::new(FileId(0), i + 1, i + 1)
}

fn lower_field(
    cx: &mut Ctxt,
    lowerer: &mut TypeLowerer,
    field: &syn::Field,
) -> Option<(u32, FieldDef, DeriveMember, MemberLoc)> {
    let a = attr::parse(cx, &field.attrs);
    a.reject_others(
        cx,
        &[
            Key::Tag,
            Key::Name,
            Key::MaxLen,
            Key::Range,
            Key::Unit,
            Key::Deprecated,
            Key::List,
        ],
        "a field",
    );
    let ident = field.ident.clone()?;
    let own = lowerer.own.clone();
    if ident == "to_owned" && a.name.is_none() {
        // The view type has a `to_owned` method; its accessors are named after fields.
        cx.error(
            &ident,
            "a field called `to_owned` would clash with the view's `to_owned` method: rename it and keep the schema name with `#[isml(name = \"to_owned\")]`",
        );
    }
    let lowered = lowerer.lower(cx, &field.ty);
    let lowered = match (lowered, &a.list) {
        (Some(mut t), Some(list)) => {
            if !bytes_to_list(&mut t) {
                cx.error(
                    &list.tokens,
                    "`list` applies to a `Vec<u8>` field, to make it `list<u8>` rather than `bytes`",
                );
            }
            Some(t)
        }
        (t, _) => t,
    };
    let Some(tag) = &a.tag else {
        cx.error(
            &ident,
            format_args!("field `{ident}` has no tag: add `#[isml(tag = N)]` with N in 1..=255"),
        );
        return None;
    };
    let ty = lowered?;
    let name = member_name(cx, &a, &ident);
    let mut f = FieldDef::new(name, tag.value, ty);
    f.docs = a.docs.clone();
    f.deprecated = a.deprecated.is_some();
    f.unit = a.unit.as_ref().map(|u| u.value.clone());
    f.max_len = a.max_len.as_ref().map(|m| m.value);
    f.range = a.range.as_ref().map(|r| r.value);
    Some((
        tag.value,
        f,
        DeriveMember {
            ident: ident.clone(),
            ty: replace_self(field.ty.to_token_stream(), &own),
        },
        MemberLoc {
            name: ident.to_token_stream(),
            tag: Some(tag.tokens.clone()),
            ty: Some(field.ty.to_token_stream()),
            max_len: a.max_len.as_ref().map(|m| m.tokens.clone()),
            range: a.range.as_ref().map(|r| r.tokens.clone()),
        },
    ))
}

/// `bytes` (possibly optional) becomes `list<u8>`.
fn bytes_to_list(t: &mut Type) -> bool {
    match t {
        Type::Bytes => {
            *t = Type::List(Box::new(Type::U8));
            true
        }
        Type::Optional(inner) => bytes_to_list(inner),
        _ => false,
    }
}

fn member_name(cx: &mut Ctxt, a: &Attrs, ident: &syn::Ident) -> String {
    match &a.name {
        Some(n) => {
            check_name(cx, n);
            n.value.clone()
        }
        None => ident.unraw().to_string(),
    }
}

/// Enum and union variants: `ChargeStarted` is `charge_started` in schemas.
fn variant_name(cx: &mut Ctxt, a: &Attrs, ident: &syn::Ident) -> String {
    match &a.name {
        Some(n) => {
            check_name(cx, n);
            n.value.clone()
        }
        None => schema_variant_name(&ident.unraw().to_string()),
    }
}

fn check_name(cx: &mut Ctxt, n: &Value<String>) {
    if !valid_ident(&n.value) {
        cx.error(
            &n.tokens,
            "a schema name is an identifier: `[A-Za-z_][A-Za-z0-9_]*`",
        );
    }
}

pub(crate) fn valid_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(crate) fn valid_package(s: &str) -> bool {
    s.split('.').all(valid_ident)
}

/// The package of a type without `#[isml(package = "...")]`: the name of the
/// crate being compiled, so that a crate's derived types share one package.
pub(crate) fn default_package() -> String {
    std::env::var("CARGO_CRATE_NAME")
        .ok()
        .filter(|s| valid_package(s))
        .unwrap_or_else(|| "derived".to_string())
}

fn set_unknown(
    cx: &mut Ctxt,
    slot: &mut Option<proc_macro2::Ident>,
    ident: &syn::Ident,
    attr: &Value<()>,
) {
    if slot.is_some() {
        cx.error(&attr.tokens, "only one variant can be `#[isml(unknown)]`");
    } else {
        *slot = Some(ident.clone());
    }
}

/// The catch-all variant of a union is `Name { tag, class, bytes }`: the
/// generated code builds and matches it by these field names.
fn check_union_unknown(cx: &mut Ctxt, variant: &syn::Variant) {
    let names: Vec<String> = match &variant.fields {
        Fields::Named(f) => f
            .named
            .iter()
            .filter_map(|f| f.ident.as_ref().map(ToString::to_string))
            .collect(),
        _ => Vec::new(),
    };
    if names != ["tag", "class", "bytes"] {
        cx.error(
            variant,
            format_args!(
                "the catch-all variant keeps an unknown variant to forward it unchanged: write it `{} {{ tag: u64, class: isml_runtime::wire::Class, bytes: bytes::Bytes }}`",
                variant.ident
            ),
        );
    }
}

/// A named type outside the derived item.
struct External {
    id: u32,
    path: TokenStream,
    package: String,
    name: String,
}

struct TypeLowerer {
    own: syn::Ident,
    /// Keyed by the path as written, so each path gets one placeholder.
    externals: BTreeMap<String, External>,
}

const SUPPORTED: &str = "supported field types: integers, f32, f64, bool, String, Vec<u8> or Bytes (bytes), Option<T>, Vec<T>, [T; N], HashMap/BTreeMap, Box<T>, and types deriving isml's Message, Enum or Union";

impl TypeLowerer {
    fn lower(&mut self, cx: &mut Ctxt, ty: &syn::Type) -> Option<Type> {
        match ty {
            syn::Type::Group(g) => self.lower(cx, &g.elem),
            syn::Type::Paren(p) => self.lower(cx, &p.elem),
            syn::Type::Array(a) => {
                let inner = self.lower(cx, &a.elem);
                let len = match &a.len {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<u32>().ok(),
                    _ => None,
                };
                if len.is_none() {
                    cx.error(
                        &a.len,
                        "array lengths must be integer literals: the schema records the length",
                    );
                }
                Some(Type::Array(Box::new(inner?), len?))
            }
            syn::Type::Path(tp) if tp.qself.is_none() => self.path(cx, tp),
            other => {
                cx.error(other, format_args!("unsupported field type; {SUPPORTED}"));
                None
            }
        }
    }

    fn path(&mut self, cx: &mut Ctxt, tp: &syn::TypePath) -> Option<Type> {
        let seg = tp.path.segments.last()?;
        let name = seg.ident.to_string();
        let args: Vec<&syn::Type> = match &seg.arguments {
            PathArguments::None => Vec::new(),
            PathArguments::AngleBracketed(a) => {
                let mut out = Vec::new();
                for arg in &a.args {
                    match arg {
                        GenericArgument::Type(t) => out.push(t),
                        other => {
                            cx.error(other, "only type arguments are supported here");
                            return None;
                        }
                    }
                }
                out
            }
            PathArguments::Parenthesized(p) => {
                cx.error(p, format_args!("unsupported field type; {SUPPORTED}"));
                return None;
            }
        };
        let arity = |cx: &mut Ctxt, n: &[usize]| -> bool {
            if n.contains(&args.len()) {
                true
            } else {
                cx.error(
                    tp,
                    format_args!(
                        "`{name}` takes {} type argument{}",
                        n[0],
                        if n[0] == 1 { "" } else { "s" }
                    ),
                );
                false
            }
        };
        if let Some(scalar) = Type::scalar(&name).filter(|_| name != "string" && name != "bytes") {
            return arity(cx, &[0]).then_some(scalar);
        }
        match name.as_str() {
            "String" => arity(cx, &[0]).then_some(Type::String),
            "Bytes" => arity(cx, &[0]).then_some(Type::Bytes),
            "Vec" => {
                if !arity(cx, &[1]) {
                    return None;
                }
                if is_u8(args[0]) {
                    return Some(Type::Bytes);
                }
                Some(Type::List(Box::new(self.lower(cx, args[0])?)))
            }
            "Option" => {
                if !arity(cx, &[1]) {
                    return None;
                }
                Some(Type::Optional(Box::new(self.lower(cx, args[0])?)))
            }
            "Box" => {
                if !arity(cx, &[1]) {
                    return None;
                }
                self.lower(cx, args[0])
            }
            "HashMap" | "BTreeMap" => {
                let ok = if name == "HashMap" {
                    arity(cx, &[2, 3])
                } else {
                    arity(cx, &[2])
                };
                if !ok {
                    return None;
                }
                let k = self.lower(cx, args[0]);
                let v = self.lower(cx, args[1]);
                Some(Type::Map(Box::new(k?), Box::new(v?)))
            }
            "usize" | "isize" | "u128" | "i128" | "char" | "str" => {
                let hint = match name.as_str() {
                    "usize" => "use `u32` or `u64`",
                    "isize" => "use `i32` or `i64`",
                    "u128" | "i128" => "the widest isml integers are 64-bit",
                    _ => "use `String` or `u32`",
                };
                cx.error(tp, format_args!("`{name}` has no isml equivalent: {hint}"));
                None
            }
            _ => {
                if !args.is_empty() {
                    cx.error(
                        &seg.arguments,
                        "generic types are not supported as field types",
                    );
                    return None;
                }
                let single = tp.path.leading_colon.is_none() && tp.path.segments.len() == 1;
                if single && (seg.ident == self.own || seg.ident == "Self") {
                    return Some(Type::Named(TypeId(0)));
                }
                let key = tokens(tp);
                let next = u32::try_from(self.externals.len() + 1).unwrap_or(u32::MAX);
                let ext = self.externals.entry(key).or_insert_with(|| External {
                    id: next,
                    path: tp.to_token_stream(),
                    package: tp
                        .path
                        .segments
                        .iter()
                        .take(tp.path.segments.len() - 1)
                        .map(|s| s.ident.unraw().to_string())
                        .collect::<Vec<_>>()
                        .join("."),
                    name: seg.ident.unraw().to_string(),
                });
                Some(Type::Named(TypeId(ext.id)))
            }
        }
    }
}

/// `Self` in a field type means the derived type, but the generated code
/// also names field types inside impls of other types (the view), where
/// `Self` would mean something else: spell it out.
fn replace_self(tokens: TokenStream, own: &syn::Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) if i == "Self" => {
                let mut own = own.clone();
                own.set_span(i.span());
                proc_macro2::TokenTree::Ident(own)
            }
            proc_macro2::TokenTree::Group(g) => {
                let mut out = proc_macro2::Group::new(g.delimiter(), replace_self(g.stream(), own));
                out.set_span(g.span());
                proc_macro2::TokenTree::Group(out)
            }
            other => other,
        })
        .collect()
}

fn is_u8(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.is_ident("u8"))
}

fn tokens(t: &impl ToTokens) -> String {
    t.to_token_stream().to_string().replace(' ', "")
}

impl Lowered {
    /// Reports a diagnostic of the IR checks on the tokens it concerns.
    pub(crate) fn locate(&self, cx: &mut Ctxt, d: &Diagnostic) {
        let primary = d.labels.iter().find(|l| l.primary);
        let member = primary
            .and_then(|l| l.span.start.checked_sub(1))
            .and_then(|i| self.members.get(i));
        let mut message = d.message.clone();
        // Labels say "here" next to quoted schema text; only those that add a
        // fact (an allowed range, what a type holds) are worth a sentence.
        let redundant = |l: &str| {
            l.is_empty() || l.ends_with("not allowed here") || l.ends_with("used again here")
        };
        if let Some(l) = primary
            && !redundant(&l.message)
            && !matches!(
                d.kind,
                ErrorKind::NestedOptional | ErrorKind::InvalidMapKey | ErrorKind::InfiniteSize
            )
        {
            message = format!("{message}: {}", l.message);
        }
        // "in `package.Type`" notes locate a schema error; a derive error is
        // already on the type's own tokens.
        for note in d.notes.iter().filter(|n| !n.starts_with("in `")) {
            message.push_str(&format!("\n= note: {note}"));
        }
        if let Some(help) = &d.help {
            message.push_str(&format!("\n= help: {help}"));
        }
        let text = d.message.as_str();
        let tokens = match member {
            Some(m) => {
                let pick = match d.kind {
                    ErrorKind::DuplicateTag
                    | ErrorKind::DuplicateValue
                    | ErrorKind::ReservedTag => m.tag.as_ref(),
                    ErrorKind::OutOfRange if text.contains("tag") => m.tag.as_ref(),
                    ErrorKind::InvalidAttributeValue if text.contains("max_len") => {
                        m.max_len.as_ref()
                    }
                    ErrorKind::InvalidAttributeValue => m.range.as_ref(),
                    ErrorKind::NestedOptional
                    | ErrorKind::InvalidMapKey
                    | ErrorKind::OptionalVariant
                    | ErrorKind::OutOfRange => m.ty.as_ref(),
                    _ => None,
                };
                pick.unwrap_or(&m.name).clone()
            }
            None => match d.kind {
                ErrorKind::OutOfRange | ErrorKind::DuplicateMessageId => {
                    self.own_id.clone().unwrap_or_else(|| self.own.clone())
                }
                ErrorKind::InfiniteSize => d
                    .labels
                    .iter()
                    .filter(|l| !l.primary)
                    .find_map(|l| l.span.start.checked_sub(1))
                    .and_then(|i| self.members.get(i))
                    .and_then(|m| m.ty.clone())
                    .unwrap_or_else(|| self.own.clone()),
                _ => self.own.clone(),
            },
        };
        cx.error(tokens, message);
    }
}
