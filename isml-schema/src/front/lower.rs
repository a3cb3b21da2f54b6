//! Stage 2: pest parse tree to the spanned [`ast`](crate::front::ast).
//!
//! There is one `lower_*` function per grammar rule. The grammar guarantees
//! the shape of each pair; if it ever does not hold (a grammar bug, never a
//! user error) the function returns `None` and [`lower`] reports an internal
//! error instead of panicking. Problems inside valid syntax (an integer that
//! is too large, an invalid `\u{...}` escape) are pushed to `diags`.

use pest::iterators::{Pair, Pairs};

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::front::ast::*;
use crate::front::parse::{Rule, Tree};
use crate::source::{FileId, Span};

/// Lowers the `file` pair of file `file_id`.
pub(crate) fn lower(file_id: FileId, tree: Tree<'_>, diags: &mut Vec<Diagnostic>) -> Option<File> {
    let mut cx = Lower {
        file: file_id,
        diags,
        type_depth: 0,
    };
    let span = cx.span(&tree);
    let file = cx.lower_file(tree);
    if file.is_none() {
        cx.diags.push(
            Diagnostic::new(
                ErrorKind::Syntax,
                "internal error: unexpected parse tree shape",
            )
            .primary(Some(span), ""),
        );
    }
    file
}

struct Lower<'d> {
    file: FileId,
    diags: &'d mut Vec<Diagnostic>,
    /// Current nesting of type expressions.
    type_depth: usize,
}

/// Deepest accepted nesting of `optional`, `list`, `map` and `array`. Later
/// stages recurse over types, so hostile input must not nest without bound.
pub(crate) const MAX_TYPE_DEPTH: usize = 32;

/// Walks the children of one pair in order.
struct Children<'i> {
    pairs: std::iter::Peekable<Pairs<'i, Rule>>,
}

impl<'i> Children<'i> {
    fn of(pair: Pair<'i, Rule>) -> Children<'i> {
        Children {
            pairs: pair.into_inner().peekable(),
        }
    }

    /// The next child if it is a `rule`.
    fn opt(&mut self, rule: Rule) -> Option<Pair<'i, Rule>> {
        self.pairs.next_if(|p| p.as_rule() == rule)
    }

    /// The next child, which must be a `rule`.
    fn req(&mut self, rule: Rule) -> Option<Pair<'i, Rule>> {
        self.opt(rule)
    }

    /// All the following children that are `rule`s.
    fn many(&mut self, rule: Rule) -> Vec<Pair<'i, Rule>> {
        let mut out = Vec::new();
        while let Some(p) = self.opt(rule) {
            out.push(p);
        }
        out
    }
}

impl Lower<'_> {
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let s = pair.as_span();
        Span::new(self.file, s.start(), s.end())
    }

    fn lower_file(&mut self, pair: Pair<'_, Rule>) -> Option<File> {
        let mut c = Children::of(pair);
        let docs = c
            .many(Rule::file_doc)
            .into_iter()
            .map(|p| self.lower_file_doc(p))
            .collect();
        let package = match c.opt(Rule::package_decl) {
            Some(p) => Some(self.lower_package_decl(p)?),
            None => None,
        };
        let mut imports = Vec::new();
        for p in c.many(Rule::import_decl) {
            imports.push(self.lower_import_decl(p)?);
        }
        let mut decls = Vec::new();
        for p in c.pairs {
            let decl = match p.as_rule() {
                Rule::enum_decl => Decl::Enum(self.lower_enum_decl(p)?),
                Rule::message_decl => Decl::Message(self.lower_message_decl(p)?),
                Rule::union_decl => Decl::Union(self.lower_union_decl(p)?),
                Rule::service_decl => Decl::Service(self.lower_service_decl(p)?),
                Rule::channel_decl => Decl::Channel(self.lower_channel_decl(p)?),
                Rule::EOI => continue,
                _ => return None,
            };
            decls.push(decl);
        }
        Some(File {
            docs,
            package,
            imports,
            decls,
        })
    }

    fn lower_file_doc(&mut self, pair: Pair<'_, Rule>) -> String {
        doc_line(pair)
    }

    fn lower_doc_comment(&mut self, pair: Pair<'_, Rule>) -> String {
        doc_line(pair)
    }

    fn lower_docs(&mut self, c: &mut Children<'_>) -> Vec<String> {
        c.many(Rule::doc_comment)
            .into_iter()
            .map(|p| self.lower_doc_comment(p))
            .collect()
    }

    fn lower_package_decl(&mut self, pair: Pair<'_, Rule>) -> Option<Ident> {
        let mut c = Children::of(pair);
        c.req(Rule::kw_package)?;
        Some(self.lower_path(c.req(Rule::path)?))
    }

    fn lower_import_decl(&mut self, pair: Pair<'_, Rule>) -> Option<Import> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        c.req(Rule::kw_import)?;
        let path = self.lower_string(c.req(Rule::string)?)?;
        Some(Import { path, span })
    }

    fn lower_enum_decl(&mut self, pair: Pair<'_, Rule>) -> Option<EnumDecl> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        c.req(Rule::kw_enum)?;
        let name = self.lower_ident(c.req(Rule::ident)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        let mut variants = Vec::new();
        for p in c.many(Rule::enum_variant) {
            variants.push(self.lower_enum_variant(p)?);
        }
        Some(EnumDecl {
            docs,
            name,
            attrs,
            variants,
            span,
        })
    }

    fn lower_enum_variant(&mut self, pair: Pair<'_, Rule>) -> Option<EnumVariant> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        let name = self.lower_ident(c.req(Rule::ident)?);
        let value = self.lower_integer(c.req(Rule::integer)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        Some(EnumVariant {
            docs,
            name,
            value,
            attrs,
            span,
        })
    }

    fn lower_message_decl(&mut self, pair: Pair<'_, Rule>) -> Option<MessageDecl> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        c.req(Rule::kw_message)?;
        let name = self.lower_ident(c.req(Rule::ident)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        let mut fields = Vec::new();
        let mut reserved = Vec::new();
        for p in c.pairs {
            match p.as_rule() {
                Rule::field => fields.push(self.lower_field(p)?),
                Rule::reserved_decl => reserved.extend(self.lower_reserved_decl(p)?),
                _ => return None,
            }
        }
        Some(MessageDecl {
            docs,
            name,
            attrs,
            fields,
            reserved,
            span,
        })
    }

    fn lower_field(&mut self, pair: Pair<'_, Rule>) -> Option<Field> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        let name = self.lower_ident(c.req(Rule::ident)?);
        let ty = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        let tag = self.lower_integer(c.req(Rule::integer)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        Some(Field {
            docs,
            name,
            ty,
            tag,
            attrs,
            span,
        })
    }

    fn lower_reserved_decl(&mut self, pair: Pair<'_, Rule>) -> Option<Vec<ReservedItem>> {
        let mut c = Children::of(pair);
        // Doc comments on `reserved` are allowed and carry nothing.
        let _ = self.lower_docs(&mut c);
        c.req(Rule::kw_reserved)?;
        c.many(Rule::reserved_item)
            .into_iter()
            .map(|p| self.lower_reserved_item(p))
            .collect()
    }

    fn lower_reserved_item(&mut self, pair: Pair<'_, Rule>) -> Option<ReservedItem> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let start = self.lower_integer(c.req(Rule::integer)?);
        let end = match c.opt(Rule::kw_to) {
            Some(_) => Some(self.lower_integer(c.req(Rule::integer)?)),
            None => None,
        };
        Some(ReservedItem { start, end, span })
    }

    fn lower_union_decl(&mut self, pair: Pair<'_, Rule>) -> Option<UnionDecl> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        c.req(Rule::kw_union)?;
        let name = self.lower_ident(c.req(Rule::ident)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        let mut variants = Vec::new();
        for p in c.many(Rule::union_variant) {
            variants.push(self.lower_union_variant(p)?);
        }
        Some(UnionDecl {
            docs,
            name,
            attrs,
            variants,
            span,
        })
    }

    fn lower_union_variant(&mut self, pair: Pair<'_, Rule>) -> Option<UnionVariant> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        let name = self.lower_ident(c.req(Rule::ident)?);
        let ty = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        let tag = self.lower_integer(c.req(Rule::integer)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        Some(UnionVariant {
            docs,
            name,
            ty,
            tag,
            attrs,
            span,
        })
    }

    fn lower_service_decl(&mut self, pair: Pair<'_, Rule>) -> Option<ServiceDecl> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        c.req(Rule::kw_service)?;
        let name = self.lower_ident(c.req(Rule::ident)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        let mut rpcs = Vec::new();
        for p in c.many(Rule::rpc_decl) {
            rpcs.push(self.lower_rpc_decl(p)?);
        }
        Some(ServiceDecl {
            docs,
            name,
            attrs,
            rpcs,
            span,
        })
    }

    fn lower_rpc_decl(&mut self, pair: Pair<'_, Rule>) -> Option<RpcDecl> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        c.req(Rule::kw_rpc)?;
        let name = self.lower_ident(c.req(Rule::ident)?);
        let request = self.lower_rpc_type(c.req(Rule::rpc_request)?)?;
        let response = match c.opt(Rule::rpc_response) {
            Some(p) => Some(self.lower_rpc_type(p)?),
            None => None,
        };
        let id = self.lower_integer(c.req(Rule::integer)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        Some(RpcDecl {
            docs,
            name,
            request,
            response,
            id,
            attrs,
            span,
        })
    }

    /// `rpc_request` and `rpc_response`: `[stream] Type`.
    fn lower_rpc_type(&mut self, pair: Pair<'_, Rule>) -> Option<RpcType> {
        let mut c = Children::of(pair);
        let streaming = c.opt(Rule::kw_stream).is_some();
        let ty = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        Some(RpcType { streaming, ty })
    }

    fn lower_channel_decl(&mut self, pair: Pair<'_, Rule>) -> Option<ChannelDecl> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let docs = self.lower_docs(&mut c);
        c.req(Rule::kw_channel)?;
        let name = self.lower_ident(c.req(Rule::ident)?);
        let ty = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        let id = self.lower_integer(c.req(Rule::integer)?);
        let attrs = self.lower_opt_attributes(&mut c)?;
        Some(ChannelDecl {
            docs,
            name,
            ty,
            id,
            attrs,
            span,
        })
    }

    fn lower_type_expr(&mut self, pair: Pair<'_, Rule>) -> Option<TypeExpr> {
        let span = self.span(&pair);
        if self.type_depth >= MAX_TYPE_DEPTH {
            self.diags.push(
                Diagnostic::new(ErrorKind::Syntax, "type is nested too deeply")
                    .primary(
                        Some(span),
                        format!("more than {MAX_TYPE_DEPTH} levels of nesting"),
                    )
                    .help("name an intermediate message instead"),
            );
            // Compilation stops after this stage, so the placeholder is never resolved.
            return Some(TypeExpr {
                kind: TypeExprKind::Named {
                    path: String::new(),
                    absolute: false,
                },
                span,
            });
        }
        self.type_depth += 1;
        let result = self.lower_type_expr_inner(pair, span);
        self.type_depth -= 1;
        result
    }

    fn lower_type_expr_inner(&mut self, pair: Pair<'_, Rule>, span: Span) -> Option<TypeExpr> {
        let inner = pair.into_inner().next()?;
        let kind = match inner.as_rule() {
            Rule::optional_type => self.lower_optional_type(inner)?,
            Rule::list_type => self.lower_list_type(inner)?,
            Rule::map_type => self.lower_map_type(inner)?,
            Rule::array_type => self.lower_array_type(inner)?,
            Rule::named_type => self.lower_named_type(inner)?,
            _ => return None,
        };
        Some(TypeExpr { kind, span })
    }

    fn lower_optional_type(&mut self, pair: Pair<'_, Rule>) -> Option<TypeExprKind> {
        let mut c = Children::of(pair);
        let inner = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        Some(TypeExprKind::Optional(Box::new(inner)))
    }

    fn lower_list_type(&mut self, pair: Pair<'_, Rule>) -> Option<TypeExprKind> {
        let mut c = Children::of(pair);
        let inner = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        Some(TypeExprKind::List(Box::new(inner)))
    }

    fn lower_map_type(&mut self, pair: Pair<'_, Rule>) -> Option<TypeExprKind> {
        let mut c = Children::of(pair);
        let key = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        let value = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        Some(TypeExprKind::Map(Box::new(key), Box::new(value)))
    }

    fn lower_array_type(&mut self, pair: Pair<'_, Rule>) -> Option<TypeExprKind> {
        let mut c = Children::of(pair);
        let elem = self.lower_type_expr(c.req(Rule::type_expr)?)?;
        let len = self.lower_integer(c.req(Rule::integer)?);
        Some(TypeExprKind::Array(Box::new(elem), len))
    }

    fn lower_named_type(&mut self, pair: Pair<'_, Rule>) -> Option<TypeExprKind> {
        // The only token before the path is the optional leading `.`.
        let absolute = pair.as_str().starts_with('.');
        let mut c = Children::of(pair);
        let path = self.lower_path(c.req(Rule::path)?);
        Some(TypeExprKind::Named {
            path: path.name,
            absolute,
        })
    }

    fn lower_opt_attributes(&mut self, c: &mut Children<'_>) -> Option<Vec<Attribute>> {
        match c.opt(Rule::attributes) {
            Some(p) => self.lower_attributes(p),
            None => Some(Vec::new()),
        }
    }

    fn lower_attributes(&mut self, pair: Pair<'_, Rule>) -> Option<Vec<Attribute>> {
        let mut c = Children::of(pair);
        c.many(Rule::attribute)
            .into_iter()
            .map(|p| self.lower_attribute(p))
            .collect()
    }

    fn lower_attribute(&mut self, pair: Pair<'_, Rule>) -> Option<Attribute> {
        let span = self.span(&pair);
        let mut c = Children::of(pair);
        let name = self.lower_ident(c.req(Rule::ident)?);
        let value = match c.opt(Rule::attr_value) {
            Some(p) => Some(self.lower_attr_value(p)?),
            None => None,
        };
        Some(Attribute { name, value, span })
    }

    fn lower_attr_value(&mut self, pair: Pair<'_, Rule>) -> Option<AttrValue> {
        let span = self.span(&pair);
        let inner = pair.into_inner().next()?;
        let kind = match inner.as_rule() {
            Rule::int_range => self.lower_int_range(inner)?,
            Rule::integer => AttrValueKind::Int(self.lower_integer(inner).value),
            Rule::string => AttrValueKind::Str(self.lower_string(inner)?),
            Rule::path => AttrValueKind::Path(self.lower_path(inner).name),
            _ => return None,
        };
        Some(AttrValue { kind, span })
    }

    fn lower_int_range(&mut self, pair: Pair<'_, Rule>) -> Option<AttrValueKind> {
        let mut c = Children::of(pair);
        let lo = self.lower_integer(c.req(Rule::integer)?);
        let hi = self.lower_integer(c.req(Rule::integer)?);
        Some(AttrValueKind::Range(lo.value, hi.value))
    }

    fn lower_ident(&mut self, pair: Pair<'_, Rule>) -> Ident {
        Ident {
            name: pair.as_str().to_string(),
            span: self.span(&pair),
        }
    }

    fn lower_path(&mut self, pair: Pair<'_, Rule>) -> Ident {
        self.lower_ident(pair)
    }

    fn lower_integer(&mut self, pair: Pair<'_, Rule>) -> IntLit {
        let span = self.span(&pair);
        let value = parse_integer(pair.as_str());
        if value.is_none() {
            self.diags.push(
                Diagnostic::new(ErrorKind::InvalidLiteral, "integer literal is too large")
                    .primary(Some(span), "does not fit in 128 bits"),
            );
        }
        IntLit { value, span }
    }

    fn lower_string(&mut self, pair: Pair<'_, Rule>) -> Option<String> {
        let mut c = Children::of(pair);
        let inner = c.req(Rule::string_inner)?;
        let base = inner.as_span().start();
        let raw = inner.as_str();
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(i) = rest.find('\\') {
            out.push_str(&rest[..i]);
            let esc = &rest[i..];
            let consumed = match esc.as_bytes().get(1) {
                Some(b'\\') => {
                    out.push('\\');
                    2
                }
                Some(b'"') => {
                    out.push('"');
                    2
                }
                Some(b'n') => {
                    out.push('\n');
                    2
                }
                Some(b't') => {
                    out.push('\t');
                    2
                }
                Some(b'u') => {
                    // The grammar guarantees `\u{` hex `}`.
                    let close = esc.find('}')?;
                    let hex = esc.get(3..close)?;
                    let code = u32::from_str_radix(hex, 16).ok();
                    match code.and_then(char::from_u32) {
                        Some(ch) => out.push(ch),
                        None => {
                            let start = base + (raw.len() - rest.len()) + i;
                            self.diags.push(
                                Diagnostic::new(
                                    ErrorKind::InvalidLiteral,
                                    format!("invalid unicode escape `\\u{{{hex}}}`"),
                                )
                                .primary(
                                    Some(Span::new(self.file, start, start + close + 1)),
                                    "not a Unicode scalar value",
                                ),
                            );
                        }
                    }
                    close + 1
                }
                _ => return None,
            };
            rest = &esc[consumed..];
        }
        out.push_str(rest);
        Some(out)
    }
}

/// The text of a doc comment line: without the marker and one leading space.
fn doc_line(pair: Pair<'_, Rule>) -> String {
    let text = pair
        .into_inner()
        .find(|p| p.as_rule() == Rule::doc_text)
        .map_or("", |p| p.as_str());
    let text = text.strip_prefix(' ').unwrap_or(text);
    text.trim_end().to_string()
}

/// Parses an integer literal as the grammar accepts it; `None` on overflow.
pub(crate) fn parse_integer(text: &str) -> Option<i128> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (radix, digits) = if let Some(d) = body.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = body.strip_prefix("0b") {
        (2, d)
    } else {
        (10, body)
    };
    let mut value: i128 = 0;
    for ch in digits.chars().filter(|c| *c != '_') {
        let d = i128::from(ch.to_digit(radix)?);
        value = value.checked_mul(i128::from(radix))?.checked_add(d)?;
    }
    if negative {
        value.checked_neg()
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_integer;

    #[test]
    fn integers() {
        assert_eq!(parse_integer("0"), Some(0));
        assert_eq!(parse_integer("1_000"), Some(1000));
        assert_eq!(parse_integer("0x10"), Some(16));
        assert_eq!(parse_integer("0xFF_ff"), Some(0xffff));
        assert_eq!(parse_integer("0b1010"), Some(10));
        assert_eq!(parse_integer("-40"), Some(-40));
        assert_eq!(parse_integer("-0x10"), Some(-16));
        assert_eq!(
            parse_integer("999999999999999999999999999999999999999999"),
            None
        );
    }
}
