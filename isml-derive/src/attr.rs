//! Parsing of `#[isml(...)]` attributes on types, fields and variants.
//!
//! Every attribute is parsed whatever the item, then [`crate::lower`]
//! rejects those that do not apply there, so an attribute in the wrong place
//! is reported as such rather than as unknown.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Attribute, Expr, ExprLit, ExprUnary, Lit, LitInt, LitStr, UnOp};

use crate::ctxt::Ctxt;

/// One parsed attribute value with the tokens it came from (for spans).
#[derive(Clone)]
pub(crate) struct Value<T> {
    pub(crate) value: T,
    /// `key = value` (or just `key`): what an error about it points at.
    pub(crate) tokens: TokenStream,
}

/// Everything `#[isml(...)]` may say on any item.
#[derive(Default)]
pub(crate) struct Attrs {
    pub(crate) id: Option<Value<u32>>,
    pub(crate) package: Option<Value<String>>,
    pub(crate) name: Option<Value<String>>,
    pub(crate) tag: Option<Value<u32>>,
    pub(crate) max_len: Option<Value<u64>>,
    pub(crate) range: Option<Value<(i128, i128)>>,
    pub(crate) unit: Option<Value<String>>,
    pub(crate) deprecated: Option<Value<()>>,
    pub(crate) unknown: Option<Value<()>>,
    pub(crate) list: Option<Value<()>>,
    /// `///` lines.
    pub(crate) docs: Vec<String>,
}

/// Attribute keys, for "not allowed here" checks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Key {
    Id,
    Package,
    Name,
    Tag,
    MaxLen,
    Range,
    Unit,
    Deprecated,
    Unknown,
    List,
}

impl Key {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Key::Id => "id",
            Key::Package => "package",
            Key::Name => "name",
            Key::Tag => "tag",
            Key::MaxLen => "max_len",
            Key::Range => "range",
            Key::Unit => "unit",
            Key::Deprecated => "deprecated",
            Key::Unknown => "unknown",
            Key::List => "list",
        }
    }
}

const ALL_KEYS: &str =
    "`id`, `package`, `name`, `tag`, `max_len`, `range`, `unit`, `deprecated`, `unknown`, `list`";

impl Attrs {
    /// The tokens of attribute `key`, if it was given.
    pub(crate) fn tokens_of(&self, key: Key) -> Option<&TokenStream> {
        match key {
            Key::Id => self.id.as_ref().map(|a| &a.tokens),
            Key::Package => self.package.as_ref().map(|a| &a.tokens),
            Key::Name => self.name.as_ref().map(|a| &a.tokens),
            Key::Tag => self.tag.as_ref().map(|a| &a.tokens),
            Key::MaxLen => self.max_len.as_ref().map(|a| &a.tokens),
            Key::Range => self.range.as_ref().map(|a| &a.tokens),
            Key::Unit => self.unit.as_ref().map(|a| &a.tokens),
            Key::Deprecated => self.deprecated.as_ref().map(|a| &a.tokens),
            Key::Unknown => self.unknown.as_ref().map(|a| &a.tokens),
            Key::List => self.list.as_ref().map(|a| &a.tokens),
        }
    }

    /// Reports every attribute given that is not in `allowed`, saying where it belongs.
    pub(crate) fn reject_others(&self, cx: &mut Ctxt, allowed: &[Key], what: &str) {
        const KEYS: [Key; 10] = [
            Key::Id,
            Key::Package,
            Key::Name,
            Key::Tag,
            Key::MaxLen,
            Key::Range,
            Key::Unit,
            Key::Deprecated,
            Key::Unknown,
            Key::List,
        ];
        for key in KEYS {
            if allowed.contains(&key) {
                continue;
            }
            if let Some(tokens) = self.tokens_of(key) {
                let hint = match key {
                    Key::Id | Key::Package => "it belongs on a message or union type",
                    Key::Tag => "it belongs on a field or union variant",
                    Key::MaxLen | Key::Range | Key::Unit | Key::Deprecated | Key::List => {
                        "it belongs on a field"
                    }
                    Key::Unknown => "it marks the catch-all variant of an enum or union",
                    Key::Name => "it belongs on a type, field or variant",
                };
                cx.error(
                    tokens,
                    format_args!("`{}` is not allowed on {what}: {hint}", key.as_str()),
                );
            }
        }
    }
}

/// Parses the `#[isml(...)]` and `#[doc]` attributes of one item.
pub(crate) fn parse(cx: &mut Ctxt, attrs: &[Attribute]) -> Attrs {
    let mut out = Attrs::default();
    for attr in attrs {
        if attr.path().is_ident("doc") {
            if let syn::Meta::NameValue(nv) = &attr.meta
                && let Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) = &nv.value
            {
                let line = s.value();
                out.docs
                    .push(line.strip_prefix(' ').unwrap_or(&line).to_string());
            }
            continue;
        }
        if !attr.path().is_ident("isml") {
            continue;
        }
        if let syn::Meta::Path(p) = &attr.meta {
            cx.error(
                p,
                "expected `#[isml(...)]` with attributes inside, e.g. `#[isml(tag = 1)]`",
            );
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            let key_tokens = meta.path.to_token_stream();
            let Some(ident) = meta.path.get_ident().map(ToString::to_string) else {
                return Err(meta.error(format_args!(
                    "unknown isml attribute; expected one of {ALL_KEYS}"
                )));
            };
            // `key = value` tokens, for errors about the attribute as a whole.
            let span_of = |value: &dyn ToTokens| {
                let mut t = key_tokens.clone();
                value.to_tokens(&mut t);
                t
            };
            match ident.as_str() {
                "id" => {
                    let lit: LitInt = meta.value()?.parse()?;
                    let value = lit.base10_parse::<u32>().map_err(|_| {
                        syn::Error::new(lit.span(), "message id must fit in 1..=4294967295")
                    })?;
                    set(cx, &mut out.id, value, span_of(&lit), "id");
                }
                "tag" => {
                    let lit: LitInt = meta.value()?.parse()?;
                    let value = lit
                        .base10_parse::<u32>()
                        .map_err(|_| syn::Error::new(lit.span(), "tags are 1..=255"))?;
                    set(cx, &mut out.tag, value, span_of(&lit), "tag");
                }
                "max_len" => {
                    let lit: LitInt = meta.value()?.parse()?;
                    let value = lit.base10_parse::<u64>()?;
                    set(cx, &mut out.max_len, value, span_of(&lit), "max_len");
                }
                "package" | "name" | "unit" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    let value = lit.value();
                    let slot = match ident.as_str() {
                        "package" => &mut out.package,
                        "name" => &mut out.name,
                        _ => &mut out.unit,
                    };
                    set(cx, slot, value, span_of(&lit), &ident);
                }
                "range" => {
                    let expr: Expr = meta.value()?.parse()?;
                    let value = parse_range(&expr)?;
                    set(cx, &mut out.range, value, span_of(&expr), "range");
                }
                "deprecated" | "unknown" | "list" => {
                    if meta.input.peek(syn::Token![=]) {
                        return Err(meta.error(format_args!("`{ident}` takes no value")));
                    }
                    let slot = match ident.as_str() {
                        "deprecated" => &mut out.deprecated,
                        "unknown" => &mut out.unknown,
                        _ => &mut out.list,
                    };
                    set(cx, slot, (), key_tokens.clone(), &ident);
                }
                other => {
                    // Consume a value, if any, so that the next attribute still parses.
                    if meta.input.peek(syn::Token![=]) {
                        let _: Expr = meta.value()?.parse()?;
                    }
                    cx.error(
                        &meta.path,
                        format_args!(
                            "unknown isml attribute `{other}`; expected one of {ALL_KEYS}"
                        ),
                    );
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    out
}

fn set<T>(cx: &mut Ctxt, slot: &mut Option<Value<T>>, value: T, tokens: TokenStream, key: &str) {
    if slot.is_some() {
        cx.error(&tokens, format_args!("duplicate `{key}` attribute"));
    } else {
        *slot = Some(Value { value, tokens });
    }
}

/// `A..=B` with integer literals, either possibly negative.
fn parse_range(expr: &Expr) -> syn::Result<(i128, i128)> {
    let bad = || {
        syn::Error::new_spanned(
            expr,
            "expected an inclusive integer range such as `range = -40..=85`",
        )
    };
    let Expr::Range(r) = expr else {
        return Err(bad());
    };
    if !matches!(r.limits, syn::RangeLimits::Closed(_)) {
        return Err(bad());
    }
    let (Some(lo), Some(hi)) = (&r.start, &r.end) else {
        return Err(bad());
    };
    Ok((int_expr(lo).ok_or_else(bad)?, int_expr(hi).ok_or_else(bad)?))
}

fn int_expr(expr: &Expr) -> Option<i128> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => int_expr(expr).map(|v: i128| -v),
        Expr::Group(g) => int_expr(&g.expr),
        _ => None,
    }
}
