//! Parsing of `#[isml_runtime::service(...)]`'s arguments and of the
//! `#[rpc(...)]` attribute of each method.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Attribute, Expr, LitInt, LitStr};

use crate::attr::Value;
use crate::ctxt::Ctxt;

/// `#[isml_runtime::service(package = "...", name = "...")]`.
#[derive(Default)]
pub(crate) struct ServiceArgs {
    pub(crate) package: Option<Value<String>>,
    pub(crate) name: Option<Value<String>>,
}

/// `#[rpc(id = N, name = "...", once)]` on one method.
#[derive(Default)]
pub(crate) struct RpcAttr {
    /// The whole attribute, for "missing id" errors.
    pub(crate) tokens: Option<TokenStream>,
    pub(crate) id: Option<Value<u32>>,
    pub(crate) name: Option<Value<String>>,
    /// `once`, the schema's `[once]`.
    pub(crate) once: Option<Value<()>>,
}

/// Parses the service attribute's arguments.
pub(crate) fn service_args(cx: &mut Ctxt, args: TokenStream) -> ServiceArgs {
    let mut out = ServiceArgs::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta.path.to_token_stream();
        if meta.path.is_ident("package") || meta.path.is_ident("name") {
            let lit: LitStr = meta.value()?.parse()?;
            let mut tokens = key.clone();
            lit.to_tokens(&mut tokens);
            let slot = if meta.path.is_ident("package") {
                &mut out.package
            } else {
                &mut out.name
            };
            set(cx, slot, lit.value(), tokens, &key.to_string());
            Ok(())
        } else {
            if meta.input.peek(syn::Token![=]) {
                let _: Expr = meta.value()?.parse()?;
            }
            cx.error(
                &meta.path,
                "unknown service attribute; expected `package = \"a.b\"` or `name = \"Name\"`",
            );
            Ok(())
        }
    });
    if let Err(e) = syn::parse::Parser::parse2(parser, args) {
        cx.syn_error(e);
    }
    out
}

/// Parses the `#[rpc(...)]` attributes of a method; the others are left alone.
pub(crate) fn rpc(cx: &mut Ctxt, attrs: &[Attribute]) -> RpcAttr {
    let mut out = RpcAttr::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("rpc")) {
        if out.tokens.is_some() {
            cx.error(
                attr,
                "duplicate `#[rpc]` attribute: give `id`, `name` and `once` in one",
            );
            continue;
        }
        out.tokens = Some(attr.to_token_stream());
        if matches!(attr.meta, syn::Meta::Path(_)) {
            // A bare `#[rpc]`: reported as a missing id by the caller.
            continue;
        }
        let result = attr.parse_nested_meta(|meta| {
            let key = meta.path.to_token_stream();
            if meta.path.is_ident("id") {
                let lit: LitInt = meta.value()?.parse()?;
                let value = lit
                    .base10_parse::<u32>()
                    .map_err(|_| syn::Error::new(lit.span(), "rpc method ids are 1..=65535"))?;
                let mut tokens = key.clone();
                lit.to_tokens(&mut tokens);
                set(cx, &mut out.id, value, tokens, "id");
            } else if meta.path.is_ident("name") {
                let lit: LitStr = meta.value()?.parse()?;
                let mut tokens = key.clone();
                lit.to_tokens(&mut tokens);
                set(cx, &mut out.name, lit.value(), tokens, "name");
            } else if meta.path.is_ident("once") {
                if meta.input.peek(syn::Token![=]) {
                    let value: Expr = meta.value()?.parse()?;
                    cx.error(
                        &value,
                        "`once` takes no value: write `#[rpc(id = N, once)]`",
                    );
                    return Ok(());
                }
                set(cx, &mut out.once, (), key, "once");
            } else {
                if meta.input.peek(syn::Token![=]) {
                    let _: Expr = meta.value()?.parse()?;
                }
                cx.error(
                    &meta.path,
                    "unknown rpc attribute; expected `id = N`, `name = \"method\"` or `once`",
                );
            }
            Ok(())
        });
        if let Err(e) = result {
            cx.syn_error(e);
        }
    }
    out
}

/// The `///` lines of an item.
pub(crate) fn docs(attrs: &[Attribute]) -> Vec<String> {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => {
                    let line = s.value();
                    Some(line.strip_prefix(' ').unwrap_or(&line).to_string())
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn set<T>(cx: &mut Ctxt, slot: &mut Option<Value<T>>, value: T, tokens: TokenStream, key: &str) {
    if slot.is_some() {
        cx.error(&tokens, format_args!("duplicate `{key}` attribute"));
    } else {
        *slot = Some(Value { value, tokens });
    }
}
