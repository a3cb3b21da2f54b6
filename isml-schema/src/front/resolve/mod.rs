//! Stage 3: resolve names and attributes, turning ASTs into the IR.
//!
//! Types get their [`TypeId`]s here (sorted by package, then name), type
//! names are looked up from the file's package outward among the types of the
//! file and the files it imports ([`names`]), attributes are interpreted per
//! place ([`attrs`]), and literals are narrowed
//! to the IR's integer types. Everything that can be represented is passed
//! on so that [`check`](crate::front::check) can report its own errors in the same
//! run; an item that cannot be represented (an unknown type, a tag that does
//! not fit in `u32`) is reported here and left out of the IR.

mod attrs;
mod names;

use std::collections::BTreeMap;

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::front::ast::{self, Decl, IntLit, TypeExpr, TypeExprKind};
use crate::front::check::{self, AttrKey, SpanKey, SpanTable, out_of_range};
use crate::ir::*;
use crate::source::{FileId, SourceFile, Span};
use attrs::Place;
use names::TypeIndex;

/// One parsed file and the files its imports resolved to.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    pub(crate) id: FileId,
    pub(crate) ast: ast::File,
    pub(crate) imports: Vec<FileId>,
    /// The span of each import statement, parallel to `imports`.
    pub(crate) import_spans: Vec<Span>,
}

/// Builds the IR of `parsed`, pushing problems to `diags`.
pub(crate) fn resolve(
    files: &[SourceFile],
    parsed: &[ParsedFile],
    diags: &mut Vec<Diagnostic>,
) -> (Schema, SpanTable) {
    let mut r = Resolver {
        files,
        parsed,
        diags,
        spans: SpanTable::default(),
        types: TypeIndex::default(),
    };
    let schema = r.run();
    (schema, r.spans)
}

/// A type declaration waiting for its id.
enum TypeDecl<'a> {
    Enum(&'a ast::EnumDecl),
    Message(&'a ast::MessageDecl),
    Union(&'a ast::UnionDecl),
}

impl TypeDecl<'_> {
    fn name(&self) -> &ast::Ident {
        match self {
            TypeDecl::Enum(d) => &d.name,
            TypeDecl::Message(d) => &d.name,
            TypeDecl::Union(d) => &d.name,
        }
    }
}

struct Resolver<'a> {
    files: &'a [SourceFile],
    parsed: &'a [ParsedFile],
    diags: &'a mut Vec<Diagnostic>,
    spans: SpanTable,
    /// Every declared type, by id and by full name.
    types: TypeIndex,
}

fn type_id(i: usize) -> TypeId {
    TypeId(u32::try_from(i).unwrap_or(u32::MAX))
}

impl Resolver<'_> {
    fn package_of(&self, file: usize) -> &str {
        self.parsed[file]
            .ast
            .package
            .as_ref()
            .map_or("", |p| p.name.as_str())
    }

    fn run(&mut self) -> Schema {
        let mut packages: BTreeMap<String, PackageDef> = BTreeMap::new();
        for pf in self.parsed {
            match &pf.ast.package {
                Some(p) => {
                    packages
                        .entry(p.name.clone())
                        .or_default()
                        .docs
                        .extend(pf.ast.docs.iter().cloned());
                }
                None => {
                    let name = self
                        .files
                        .get(pf.id.0 as usize)
                        .map_or("?", |f| f.name.as_str());
                    let first = pf.ast.decls.first().map_or(0, |d| d.span().start);
                    self.diags.push(
                        Diagnostic::new(
                            ErrorKind::MissingPackage,
                            format!("file `{name}` has no `package` declaration"),
                        )
                        .primary(
                            Some(Span::new(pf.id, first, first)),
                            "expected `package name;` before this",
                        )
                        .help("start the file with `package my.package;` (after `//!` docs)"),
                    );
                }
            }
        }

        // Assign type ids: sorted by package then name; ties keep load order.
        let mut decls: Vec<(usize, TypeDecl<'_>)> = Vec::new();
        for (fi, pf) in self.parsed.iter().enumerate() {
            for d in &pf.ast.decls {
                match d {
                    Decl::Enum(e) => decls.push((fi, TypeDecl::Enum(e))),
                    Decl::Message(m) => decls.push((fi, TypeDecl::Message(m))),
                    Decl::Union(u) => decls.push((fi, TypeDecl::Union(u))),
                    Decl::Service(_) | Decl::Channel(_) => {}
                }
            }
        }
        decls.sort_by(|(fa, a), (fb, b)| {
            (self.package_of(*fa), a.name().name.as_str())
                .cmp(&(self.package_of(*fb), b.name().name.as_str()))
        });
        for (fi, d) in &decls {
            let package = self.package_of(*fi).to_string();
            let name = d.name();
            self.types.push(&package, &name.name, *fi, name.span);
        }

        let mut types = Vec::with_capacity(decls.len());
        for (i, (fi, d)) in decls.iter().enumerate() {
            let id = type_id(i);
            let def = match d {
                TypeDecl::Enum(e) => self.lower_enum(*fi, id, e),
                TypeDecl::Message(m) => self.lower_message(*fi, id, m),
                TypeDecl::Union(u) => self.lower_union(*fi, id, u),
            };
            types.push(def);
        }

        let mut services = Vec::new();
        let mut channels = Vec::new();
        for (fi, pf) in self.parsed.iter().enumerate() {
            for d in &pf.ast.decls {
                match d {
                    Decl::Service(s) => services.push((fi, s)),
                    Decl::Channel(c) => channels.push((fi, c)),
                    _ => {}
                }
            }
        }
        services.sort_by(|(fa, a), (fb, b)| {
            (self.package_of(*fa), &a.name.name).cmp(&(self.package_of(*fb), &b.name.name))
        });
        channels.sort_by(|(fa, a), (fb, b)| {
            (self.package_of(*fa), &a.name.name).cmp(&(self.package_of(*fb), &b.name.name))
        });
        let services = services
            .into_iter()
            .enumerate()
            .map(|(si, (fi, s))| self.lower_service(fi, si, s))
            .collect();
        let mut channel_defs = Vec::new();
        for (fi, c) in channels {
            let ci = channel_defs.len();
            if let Some(def) = self.lower_channel(fi, ci, c) {
                channel_defs.push(def);
            }
        }

        Schema {
            files: self.files.to_vec(),
            packages,
            types,
            services,
            channels: channel_defs,
        }
    }

    // -- declarations -------------------------------------------------------

    fn lower_enum(&mut self, fi: usize, id: TypeId, e: &ast::EnumDecl) -> TypeDef {
        self.spans.insert(SpanKey::TypeName(id), e.name.span);
        self.attrs(&e.attrs, Place::Enum);
        let mut variants: Vec<(EnumVariant, Span, Span)> = Vec::new();
        for v in &e.variants {
            self.attrs(&v.attrs, Place::EnumVariant);
            let Some(value) = self.narrow(v.value, "enum value", &check::ENUM_VALUE_RANGE) else {
                continue;
            };
            variants.push((
                EnumVariant {
                    name: v.name.name.clone(),
                    value,
                    docs: v.docs.clone(),
                    span: Some(v.name.span),
                },
                v.name.span,
                v.value.span,
            ));
        }
        variants.sort_by_key(|v| v.0.value);
        let variants = variants
            .into_iter()
            .enumerate()
            .map(|(vi, (v, name, value))| {
                self.spans.insert(SpanKey::VariantName(id, vi), name);
                self.spans.insert(SpanKey::VariantValue(id, vi), value);
                v
            })
            .collect();
        TypeDef {
            name: e.name.name.clone(),
            package: self.package_of(fi).to_string(),
            docs: e.docs.clone(),
            span: Some(e.name.span),
            kind: TypeDefKind::Enum(EnumDef { variants }),
        }
    }

    fn lower_message(&mut self, fi: usize, id: TypeId, m: &ast::MessageDecl) -> TypeDef {
        self.spans.insert(SpanKey::TypeName(id), m.name.span);
        let attrs = self.attrs(&m.attrs, Place::Message);
        if let Some((_, span)) = attrs.id {
            self.spans.insert(SpanKey::TypeIdAttr(id), span);
        }

        let mut reserved = Vec::new();
        for item in &m.reserved {
            let Some(start) = self.narrow(item.start, "reserved tag", &check::TAG_RANGE) else {
                continue;
            };
            let end = match item.end {
                Some(end) => match self.narrow(end, "reserved tag", &check::TAG_RANGE) {
                    Some(e) => e,
                    None => continue,
                },
                None => start,
            };
            self.spans
                .insert(SpanKey::Reserved(id, reserved.len()), item.span);
            reserved.push(start..=end);
        }

        struct FieldSpans {
            name: Span,
            tag: Span,
            ty: Span,
            max_len: Option<Span>,
            range: Option<Span>,
        }
        let mut fields: Vec<(FieldDef, FieldSpans)> = Vec::new();
        for f in &m.fields {
            let attrs = self.attrs(&f.attrs, Place::Field);
            let ty = self.resolve_type(fi, &f.ty);
            let tag = self.narrow(f.tag, "field tag", &check::TAG_RANGE);
            let (Some(ty), Some(tag)) = (ty, tag) else {
                continue;
            };
            fields.push((
                FieldDef {
                    name: f.name.name.clone(),
                    tag,
                    ty,
                    docs: f.docs.clone(),
                    span: Some(f.name.span),
                    deprecated: attrs.deprecated,
                    unit: attrs.unit,
                    max_len: attrs.max_len.map(|(n, _)| n),
                    range: attrs.range.map(|(r, _)| r),
                },
                FieldSpans {
                    name: f.name.span,
                    tag: f.tag.span,
                    ty: f.ty.span,
                    max_len: attrs.max_len.map(|(_, s)| s),
                    range: attrs.range.map(|(_, s)| s),
                },
            ));
        }
        fields.sort_by_key(|f| f.0.tag);
        let fields = fields
            .into_iter()
            .enumerate()
            .map(|(i, (f, s))| {
                self.spans.insert(SpanKey::FieldName(id, i), s.name);
                self.spans.insert(SpanKey::FieldTag(id, i), s.tag);
                self.spans.insert(SpanKey::FieldType(id, i), s.ty);
                if let Some(span) = s.max_len {
                    self.spans
                        .insert(SpanKey::FieldAttr(id, i, AttrKey::MaxLen), span);
                }
                if let Some(span) = s.range {
                    self.spans
                        .insert(SpanKey::FieldAttr(id, i, AttrKey::Range), span);
                }
                f
            })
            .collect();

        TypeDef {
            name: m.name.name.clone(),
            package: self.package_of(fi).to_string(),
            docs: m.docs.clone(),
            span: Some(m.name.span),
            kind: TypeDefKind::Message(MessageDef {
                id: attrs.id.map(|(n, _)| n),
                fields,
                reserved,
            }),
        }
    }

    fn lower_union(&mut self, fi: usize, id: TypeId, u: &ast::UnionDecl) -> TypeDef {
        self.spans.insert(SpanKey::TypeName(id), u.name.span);
        let attrs = self.attrs(&u.attrs, Place::Union);
        if let Some((_, span)) = attrs.id {
            self.spans.insert(SpanKey::TypeIdAttr(id), span);
        }
        let mut variants: Vec<(UnionVariant, [Span; 3])> = Vec::new();
        for v in &u.variants {
            self.attrs(&v.attrs, Place::UnionVariant);
            let ty = self.resolve_type(fi, &v.ty);
            let tag = self.narrow(v.tag, "union variant tag", &check::TAG_RANGE);
            let (Some(ty), Some(tag)) = (ty, tag) else {
                continue;
            };
            variants.push((
                UnionVariant {
                    name: v.name.name.clone(),
                    tag,
                    ty,
                    docs: v.docs.clone(),
                    span: Some(v.name.span),
                },
                [v.name.span, v.tag.span, v.ty.span],
            ));
        }
        variants.sort_by_key(|v| v.0.tag);
        let variants = variants
            .into_iter()
            .enumerate()
            .map(|(i, (v, [name, tag, ty]))| {
                self.spans.insert(SpanKey::VariantName(id, i), name);
                self.spans.insert(SpanKey::VariantValue(id, i), tag);
                self.spans.insert(SpanKey::VariantType(id, i), ty);
                v
            })
            .collect();
        TypeDef {
            name: u.name.name.clone(),
            package: self.package_of(fi).to_string(),
            docs: u.docs.clone(),
            span: Some(u.name.span),
            kind: TypeDefKind::Union(UnionDef {
                id: attrs.id.map(|(n, _)| n),
                variants,
            }),
        }
    }

    fn lower_service(&mut self, fi: usize, si: usize, s: &ast::ServiceDecl) -> ServiceDef {
        self.spans.insert(SpanKey::ServiceName(si), s.name.span);
        self.attrs(&s.attrs, Place::Service);
        let mut methods: Vec<(MethodDef, [Option<Span>; 5])> = Vec::new();
        for rpc in &s.rpcs {
            let attrs = self.attrs(&rpc.attrs, Place::Rpc);
            let request = self.resolve_message_type(fi, &rpc.request.ty, "an rpc request");
            let response = match &rpc.response {
                Some(resp) => self
                    .resolve_message_type(fi, &resp.ty, "an rpc response")
                    .map(Some),
                None => Some(None),
            };
            let id = self.narrow(rpc.id, "rpc method id", &check::METHOD_ID_RANGE);
            let (Some(request), Some(response), Some(id)) = (request, response, id) else {
                continue;
            };
            methods.push((
                MethodDef {
                    name: rpc.name.name.clone(),
                    id,
                    request,
                    response,
                    client_streaming: rpc.request.streaming,
                    server_streaming: rpc.response.as_ref().is_some_and(|r| r.streaming),
                    once: attrs.once.is_some(),
                    docs: rpc.docs.clone(),
                    span: Some(rpc.name.span),
                },
                [
                    Some(rpc.name.span),
                    Some(rpc.id.span),
                    Some(rpc.request.ty.span),
                    rpc.response.as_ref().map(|r| r.ty.span),
                    attrs.once,
                ],
            ));
        }
        methods.sort_by_key(|m| m.0.id);
        let methods = methods
            .into_iter()
            .enumerate()
            .map(|(mi, (m, [name, id, req, resp, once]))| {
                let keys = [
                    SpanKey::MethodName(si, mi),
                    SpanKey::MethodId(si, mi),
                    SpanKey::MethodRequest(si, mi),
                    SpanKey::MethodResponse(si, mi),
                    SpanKey::MethodOnce(si, mi),
                ];
                for (key, span) in keys.into_iter().zip([name, id, req, resp, once]) {
                    if let Some(span) = span {
                        self.spans.insert(key, span);
                    }
                }
                m
            })
            .collect();
        ServiceDef {
            name: s.name.name.clone(),
            package: self.package_of(fi).to_string(),
            docs: s.docs.clone(),
            span: Some(s.name.span),
            methods,
        }
    }

    fn lower_channel(&mut self, fi: usize, ci: usize, c: &ast::ChannelDecl) -> Option<ChannelDef> {
        let attrs = self.attrs(&c.attrs, Place::Channel);
        let ty = self.resolve_message_type(fi, &c.ty, "a channel type");
        let id = self.narrow(c.id, "channel id", &check::CHANNEL_ID_RANGE);
        let (ty, id) = (ty?, id?);
        self.spans.insert(SpanKey::ChannelName(ci), c.name.span);
        self.spans.insert(SpanKey::ChannelId(ci), c.id.span);
        self.spans.insert(SpanKey::ChannelType(ci), c.ty.span);
        Some(ChannelDef {
            name: c.name.name.clone(),
            package: self.package_of(fi).to_string(),
            id,
            ty,
            retain: attrs.retain,
            keyed: attrs.keyed,
            docs: c.docs.clone(),
            span: Some(c.name.span),
        })
    }

    // -- numbers ------------------------------------------------------------

    /// Narrows a literal to `u32`. Values that do not fit cannot be stored in
    /// the IR, so they are reported here, with `allowed` (the range the
    /// checker enforces) in the message; smaller violations are left to the
    /// checker so that each problem is reported exactly once.
    fn narrow(
        &mut self,
        lit: IntLit,
        what: &str,
        allowed: &std::ops::RangeInclusive<i128>,
    ) -> Option<u32> {
        let value = lit.value?;
        if let Ok(v) = u32::try_from(value) {
            return Some(v);
        }
        let mut d = out_of_range(what, value, allowed, Some(lit.span));
        if *allowed == check::TAG_RANGE {
            d = d.help(check::TAG_HELP);
        }
        self.diags.push(d);
        None
    }

    // -- types --------------------------------------------------------------

    /// Resolves a type that must name a message or union (rpc and channel
    /// types).
    fn resolve_message_type(&mut self, fi: usize, expr: &TypeExpr, what: &str) -> Option<TypeId> {
        match self.resolve_type(fi, expr)? {
            Type::Named(id) => Some(id),
            other => {
                let shown = self.display(&other);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::NotAMessage,
                        format!("{what} must be a message or union, found `{shown}`"),
                    )
                    .primary(Some(expr.span), "expected a message or union")
                    .help("wrap the value in a message"),
                );
                None
            }
        }
    }

    fn resolve_type(&mut self, fi: usize, expr: &TypeExpr) -> Option<Type> {
        Some(match &expr.kind {
            TypeExprKind::Optional(inner) => {
                Type::Optional(Box::new(self.resolve_type(fi, inner)?))
            }
            TypeExprKind::List(inner) => Type::List(Box::new(self.resolve_type(fi, inner)?)),
            TypeExprKind::Map(k, v) => {
                let k = self.resolve_type(fi, k);
                let v = self.resolve_type(fi, v);
                Type::Map(Box::new(k?), Box::new(v?))
            }
            TypeExprKind::Array(inner, len) => {
                let inner = self.resolve_type(fi, inner);
                let len = self.narrow(*len, "array length", &check::ARRAY_LEN_RANGE);
                Type::Array(Box::new(inner?), len?)
            }
            TypeExprKind::Named { path, absolute } => {
                self.resolve_name(fi, path, *absolute, expr.span)?
            }
        })
    }

    /// Schema spelling of a resolved type, naming types by their full name.
    fn display(&self, ty: &Type) -> String {
        match ty {
            Type::Optional(t) => format!("optional<{}>", self.display(t)),
            Type::List(t) => format!("list<{}>", self.display(t)),
            Type::Map(k, v) => format!("map<{}, {}>", self.display(k), self.display(v)),
            Type::Array(t, n) => format!("array<{}, {n}>", self.display(t)),
            Type::Named(id) => self.types.full_name(*id),
            s => s.scalar_name().unwrap_or("?").to_string(),
        }
    }
}
