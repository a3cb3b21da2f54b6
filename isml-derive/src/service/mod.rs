//! `#[isml_runtime::service]` on a trait: the derive front end of `service`
//! declarations.
//!
//! The trait is lowered into the IR (one [`ServiceDef`], plus a placeholder
//! message for every request and response type, as the derives do for the
//! types a field names), checked with the schema checker, and emitted
//! through `isml-schema`'s service generator: the trait exactly as a schema
//! service's (`fn m(&self, call, req) -> impl Future<Output = ...> + Send`),
//! its descriptor, server and client. So a derived service and the schema
//! service of the same definition interoperate.
//!
//! - `attr`: the attribute's arguments and `#[rpc(...)]`;
//! - `signature`: which of the five forms of an rpc a method is;
//! - this file: lowering, mapping the checker's diagnostics back onto
//!   tokens, and emitting (or, after errors, a fallback that keeps the
//!   trait and the well-formed methods so that one mistake does not cascade).

mod attr;
mod signature;

use std::collections::BTreeMap;

use isml_schema::codegen::{MethodTokens, ServiceNames, service_tokens, trait_tokens};
use isml_schema::{
    Diagnostic, ErrorKind, FileId, MessageDef, MethodDef, Schema, ServiceDef, Span, TypeDef,
    TypeDefKind, TypeId,
};
use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt as _;
use syn::{ItemTrait, TraitItem, TraitItemFn, TypeParamBound};

use crate::ctxt::Ctxt;
use crate::lower::{default_package, valid_ident, valid_package};
use signature::Signature;

/// One method of the trait, as far as it was understood.
struct Method {
    user: TraitItemFn,
    rpc: attr::RpcAttr,
    sig: Option<Signature>,
    /// The wire name.
    name: String,
    /// Whether an error concerns it: then the fallback keeps it as written.
    failed: bool,
}

impl Method {
    fn ready(&self) -> bool {
        !self.failed && self.sig.is_some() && self.rpc.id.is_some()
    }
}

/// Expands `#[isml_runtime::service(args)]` on `input`.
pub(crate) fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemTrait = match syn::parse2(input.clone()) {
        Ok(i) => i,
        Err(_) => {
            let e = syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[isml_runtime::service]` applies to a trait whose methods are the service's rpcs",
            )
            .to_compile_error();
            return quote!(#e #input);
        }
    };
    let mut cx = Ctxt::default();
    let args = attr::service_args(&mut cx, args);
    check_trait(&mut cx, &item);

    let package = match &args.package {
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
    let name = match &args.name {
        Some(n) => {
            if !valid_ident(&n.value) {
                cx.error(
                    &n.tokens,
                    "a schema name is an identifier: `[A-Za-z_][A-Za-z0-9_]*`",
                );
            }
            n.value.clone()
        }
        None => item.ident.unraw().to_string(),
    };

    let mut methods = Vec::new();
    for ti in &item.items {
        match ti {
            TraitItem::Fn(f) => methods.push(read_method(&mut cx, f)),
            other => cx.error(
                other,
                "a service trait holds only its rpcs, written as `async fn`s with `#[rpc(id = N)]`",
            ),
        }
    }

    // The IR: placeholders for the types, then the service.
    let mut types: BTreeMap<String, (TypeId, String, String)> = BTreeMap::new();
    let mut type_of = |ty: &syn::Type| -> TypeId {
        let key = ty.to_token_stream().to_string().replace(' ', "");
        let next = TypeId(u32::try_from(types.len()).unwrap_or(u32::MAX));
        let (pkg, last) = match ty {
            syn::Type::Path(p) => {
                let segs: Vec<String> = p
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.unraw().to_string())
                    .collect();
                let (last, pkg) = segs
                    .split_last()
                    .map_or((String::new(), &[][..]), |(l, p)| (l.clone(), p));
                (pkg.join("."), last)
            }
            _ => (String::new(), "T".to_string()),
        };
        types.entry(key).or_insert((next, pkg, last)).0
    };
    // (IR method, index into `methods`), sorted by id as the IR keeps them.
    let mut defs: Vec<(MethodDef, usize)> = Vec::new();
    for (i, m) in methods.iter().enumerate() {
        let (Some(sig), Some(id)) = (&m.sig, &m.rpc.id) else {
            continue;
        };
        let request = type_of(&sig.request);
        let response = sig.response.as_ref().map(&mut type_of);
        let mut def = MethodDef::new(m.name.clone(), id.value, request, request);
        def.response = response;
        def.client_streaming = sig.client_streaming;
        def.server_streaming = sig.server_streaming;
        def.once = m.rpc.once.is_some();
        def.docs = attr::docs(&m.user.attrs);
        defs.push((def, i));
    }
    defs.sort_by_key(|(d, _)| d.id);
    for (k, (d, _)) in defs.iter_mut().enumerate() {
        d.span = Some(Span::new(FileId(0), k + 1, k + 1));
    }
    let mut placeholders: Vec<(TypeId, String, String)> = types.into_values().collect();
    placeholders.sort_by_key(|(id, _, _)| *id);
    let schema = Schema {
        types: placeholders
            .into_iter()
            .map(|(id, pkg, last)| {
                // An empty message with an id is a valid request and response.
                let def = MessageDef {
                    id: Some(id.0 + 1),
                    ..MessageDef::default()
                };
                TypeDef::new(pkg, last, TypeDefKind::Message(def))
            })
            .collect(),
        services: vec![ServiceDef {
            name: name.clone(),
            package: package.clone(),
            docs: attr::docs(&item.attrs),
            span: Some(Span::new(FileId(0), 0, 0)),
            methods: defs.iter().map(|(d, _)| d.clone()).collect(),
        }],
        ..Schema::default()
    };
    if let Err(diags) = schema.validate() {
        for d in diags.iter() {
            locate(&mut cx, d, &item, &args, &mut methods, &defs);
        }
    }

    let full_name = if package.is_empty() {
        name
    } else {
        format!("{package}.{name}")
    };
    let failed = cx.finish();
    emit(&item, &full_name, &methods, failed)
}

/// What the trait itself may not have.
fn check_trait(cx: &mut Ctxt, item: &ItemTrait) {
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        cx.error(
            &item.generics,
            "a service trait cannot be generic: a service is one concrete set of rpcs",
        );
    }
    if let Some(u) = &item.unsafety {
        cx.error(u, "a service trait cannot be `unsafe`");
    }
    if let Some(a) = &item.auto_token {
        cx.error(a, "a service trait cannot be an auto trait");
    }
    for bound in &item.supertraits {
        let allowed = match bound {
            TypeParamBound::Trait(t) => ["Send", "Sync"]
                .iter()
                .any(|n| t.path.segments.last().is_some_and(|s| s.ident == n)),
            TypeParamBound::Lifetime(l) => l.ident == "static",
            _ => false,
        };
        if !allowed {
            cx.error(
                bound,
                "a service trait's supertraits are `Send + Sync + 'static` (added for you): the server shares the implementation across tasks",
            );
        }
    }
}

fn read_method(cx: &mut Ctxt, f: &TraitItemFn) -> Method {
    let before = cx.count();
    let rpc = attr::rpc(cx, &f.attrs);
    for a in f.attrs.iter().filter(|a| a.path().is_ident("cfg")) {
        cx.error(
            a,
            "rpcs cannot be conditional: the service's descriptor lists every method",
        );
    }
    let sig = signature::read(cx, f);
    let ident = &f.sig.ident;
    if rpc.id.is_none() {
        let msg = format!(
            "rpc `{ident}` has no id: add `#[rpc(id = N)]` with N in 1..=65535, its number on the wire"
        );
        match &rpc.tokens {
            Some(t) if cx.count() == before => cx.error(t, msg),
            Some(_) => {}
            None => cx.error(ident, msg),
        }
    }
    let name = match &rpc.name {
        Some(n) => {
            if !valid_ident(&n.value) {
                cx.error(
                    &n.tokens,
                    "an rpc name is an identifier: `[A-Za-z_][A-Za-z0-9_]*`",
                );
            }
            n.value.clone()
        }
        None => ident.unraw().to_string(),
    };
    Method {
        user: f.clone(),
        rpc,
        sig,
        name,
        failed: cx.count() > before,
    }
}

/// Reports a diagnostic of the schema checker on the tokens it concerns.
fn locate(
    cx: &mut Ctxt,
    d: &Diagnostic,
    item: &ItemTrait,
    args: &attr::ServiceArgs,
    methods: &mut [Method],
    defs: &[(MethodDef, usize)],
) {
    let primary = d.labels.iter().find(|l| l.primary);
    let index = primary
        .and_then(|l| l.span.start.checked_sub(1))
        .and_then(|k| defs.get(k))
        .map(|(_, i)| *i);
    let mut message = d.message.clone();
    if let Some(l) = primary
        && !l.message.is_empty()
        && !l.message.ends_with("used again here")
    {
        message = format!("{message}: {}", l.message);
    }
    for note in d.notes.iter().filter(|n| !n.starts_with("in `")) {
        message.push_str(&format!("\n= note: {note}"));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\n= help: {help}"));
    }
    let tokens = match index {
        Some(i) => {
            let m = &mut methods[i];
            m.failed = true;
            let ident = m.user.sig.ident.to_token_stream();
            match d.kind {
                ErrorKind::DuplicateMethodId | ErrorKind::OutOfRange => {
                    m.rpc.id.as_ref().map_or(ident, |v| v.tokens.clone())
                }
                ErrorKind::DuplicateName => m.rpc.name.as_ref().map_or(ident, |v| v.tokens.clone()),
                ErrorKind::StreamWithoutResponse => {
                    m.sig.as_ref().map_or(ident, |s| s.request_tokens.clone())
                }
                ErrorKind::OnceOnStream => m.rpc.once.as_ref().map_or(ident, |v| v.tokens.clone()),
                _ => ident,
            }
        }
        None => args
            .name
            .as_ref()
            .map_or_else(|| item.ident.to_token_stream(), |n| n.tokens.clone()),
    };
    cx.error(tokens, message);
}

/// `#[rpc]` and the `///` lines are the macro's; other attributes go on.
fn kept_attrs(attrs: &[syn::Attribute]) -> impl Iterator<Item = &syn::Attribute> {
    attrs
        .iter()
        .filter(|a| !a.path().is_ident("rpc") && !a.path().is_ident("doc"))
}

/// Gives every token `span`'s location, keeping how it resolves.
fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut out = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                out.set_span(g.span().located_at(span));
                return proc_macro2::TokenTree::Group(out);
            }
            tt.set_span(tt.span().located_at(span));
            tt
        })
        .collect()
}

fn span_of(t: &impl ToTokens) -> proc_macro2::Span {
    syn::spanned::Spanned::span(&t.to_token_stream())
}

/// Emits the trait, descriptor, server and client; after errors, the
/// errors, the trait (failed methods as written) and the rest for the
/// well-formed methods.
fn emit(
    item: &ItemTrait,
    full_name: &str,
    methods: &[Method],
    errors: Option<syn::Error>,
) -> TokenStream {
    let base = item.ident.unraw();
    let span = item.ident.span();
    let upper = isml_schema::codegen::schema_variant_name(&base.to_string()).to_uppercase();
    let names = ServiceNames {
        trait_ident: item.ident.clone(),
        server_ident: format_ident!("{}Server", base, span = span),
        client_ident: format_ident!("{}Client", base, span = span),
        descriptor_ident: format_ident!("__ISML_SERVICE_{}", upper, span = span),
    };
    let tokens_of = |m: &Method| -> Option<MethodTokens> {
        let (sig, id) = (m.sig.as_ref()?, m.rpc.id.as_ref()?);
        let kind = match (&sig.response, sig.client_streaming, sig.server_streaming) {
            (None, _, _) => isml_schema::MethodKind::OneWay,
            (Some(_), false, false) => isml_schema::MethodKind::Unary,
            (Some(_), false, true) => isml_schema::MethodKind::ServerStreaming,
            (Some(_), true, false) => isml_schema::MethodKind::ClientStreaming,
            (Some(_), true, true) => isml_schema::MethodKind::Bidirectional,
        };
        Some(MethodTokens {
            name: m.name.clone(),
            ident: m.user.sig.ident.clone(),
            id: id.value,
            kind,
            request: sig.request.to_token_stream(),
            response: sig.response.as_ref().map(ToTokens::to_token_stream),
            once: m.rpc.once.is_some(),
            docs: attr::docs(&m.user.attrs),
        })
    };
    let ready: Vec<(&Method, MethodTokens)> = methods
        .iter()
        .filter(|m| m.ready())
        .filter_map(|m| Some((m, tokens_of(m)?)))
        .collect();

    // The trait, as the schema generator writes it, with the user's spans.
    let trait_methods: Vec<MethodTokens> = ready.iter().map(|(_, t)| t.clone()).collect();
    let generated = trait_tokens(&names, &attr::docs(&item.attrs), &trait_methods);
    let trait_def = match syn::parse2::<ItemTrait>(generated.clone()) {
        Ok(mut t) => {
            let mut by_ident: BTreeMap<String, TraitItem> = t
                .items
                .drain(..)
                .filter_map(|ti| match &ti {
                    TraitItem::Fn(f) => Some((f.sig.ident.to_string(), ti)),
                    _ => None,
                })
                .collect();
            for m in methods {
                let key = m.user.sig.ident.to_string();
                match by_ident.remove(&key) {
                    Some(TraitItem::Fn(g)) if m.ready() => {
                        t.items.push(TraitItem::Fn(fit(g, &m.user)))
                    }
                    _ => {
                        // Kept as written (minus `#[rpc]`), so that impls of
                        // it do not add errors of their own.
                        let mut f = m.user.clone();
                        f.attrs.retain(|a| !a.path().is_ident("rpc"));
                        t.items.push(TraitItem::Fn(f));
                    }
                }
            }
            t.vis = item.vis.clone();
            t.attrs.extend(kept_attrs(&item.attrs).cloned());
            t.ident = item.ident.clone();
            t.trait_token.span = item.trait_token.span;
            t.into_token_stream()
        }
        Err(_) => generated,
    };

    let service_methods: Vec<MethodTokens> = {
        let mut v = trait_methods.clone();
        v.sort_by_key(|m| m.id);
        v
    };
    let rest = service_tokens(full_name, &names, &service_methods);
    let rest = match syn::parse2::<syn::File>(rest.clone()) {
        Ok(mut file) => {
            let allow: syn::Attribute = syn::parse_quote!(#[allow(clippy::all, clippy::pedantic, unreachable_pub, non_snake_case, non_camel_case_types)]);
            for it in &mut file.items {
                let (attrs, vis) = match it {
                    syn::Item::Struct(s) => (&mut s.attrs, Some(&mut s.vis)),
                    syn::Item::Static(s) => (&mut s.attrs, Some(&mut s.vis)),
                    syn::Item::Impl(i) => (&mut i.attrs, None),
                    _ => continue,
                };
                attrs.push(allow.clone());
                if let Some(vis) = vis
                    && matches!(vis, syn::Visibility::Public(_))
                {
                    *vis = item.vis.clone();
                }
            }
            file.into_token_stream()
        }
        Err(_) => rest,
    };
    let same = ready.iter().map(|(m, t)| same_types(m, t));
    let errors = errors.map(|e| e.to_compile_error());
    quote! {
        #errors
        #trait_def
        #rest
        // The types the trait names (`Call`, `Sink`, `Status`...) are the
        // runtime's: an import of another `Call` is an error, and the
        // user's imports count as used.
        const _: () = { #(#same)* };
    }
}

/// `let _: PhantomData<(user's types)> = PhantomData::<(the runtime's)>;`
/// for the parameter and result types of one method as written.
fn same_types(m: &Method, t: &MethodTokens) -> TokenStream {
    let rpc = quote!(::isml_runtime::__private::rpc);
    let mut user = Vec::new();
    let mut expected = Vec::new();
    let typed = m.user.sig.inputs.iter().filter_map(|a| match a {
        syn::FnArg::Typed(p) => Some(&p.ty),
        syn::FnArg::Receiver(_) => None,
    });
    let req = &t.request;
    let resp = t.response.clone().unwrap_or_else(|| quote!(()));
    let want_req = if t.kind.client_streaming() {
        quote!(#rpc::Streaming<#req>)
    } else {
        quote!(#req)
    };
    let wants = [quote!(#rpc::Call), want_req, quote!(#rpc::Sink<#resp>)];
    for (ty, want) in typed.zip(wants) {
        user.push(ty.to_token_stream());
        expected.push(want);
    }
    if m.user.sig.asyncness.is_some()
        && let syn::ReturnType::Type(_, ty) = &m.user.sig.output
    {
        user.push(ty.to_token_stream());
        expected.push(if t.response.is_none() {
            quote!(())
        } else if t.kind.server_streaming() {
            quote!(::core::result::Result<(), #rpc::Status>)
        } else {
            quote!(::core::result::Result<#resp, #rpc::Status>)
        });
    }
    quote! {
        let _: ::core::marker::PhantomData<(#(#user,)*)> =
            ::core::marker::PhantomData::<(#(#expected,)*)>;
    }
}

/// The generated declaration of one method, located where the user wrote
/// it: an impl with the wrong signature gets errors that point at the
/// trait's parameter or return type, and name the expected signature.
fn fit(mut g: TraitItemFn, user: &TraitItemFn) -> TraitItemFn {
    let user_typed: Vec<&syn::PatType> = user
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            syn::FnArg::Typed(t) => Some(t),
            syn::FnArg::Receiver(_) => None,
        })
        .collect();
    let mut k = 0;
    for arg in &mut g.sig.inputs {
        match arg {
            syn::FnArg::Receiver(r) => {
                if let Some(syn::FnArg::Receiver(u)) = user.sig.inputs.first() {
                    let sp = span_of(u);
                    r.self_token.span = r.self_token.span.located_at(sp);
                    if let Some((amp, _)) = &mut r.reference {
                        amp.span = amp.span.located_at(sp);
                    }
                }
            }
            syn::FnArg::Typed(t) => {
                if let Some(u) = user_typed.get(k) {
                    if let syn::Pat::Ident(p) = &mut *t.pat {
                        let sp = p.ident.span().located_at(span_of(&u.pat));
                        p.ident.set_span(sp);
                    }
                    let ty_span = span_of(&u.ty);
                    if let Ok(ty) = syn::parse2(respan(t.ty.to_token_stream(), ty_span)) {
                        *t.ty = ty;
                    }
                }
                k += 1;
            }
        }
    }
    let out_span = match &user.sig.output {
        syn::ReturnType::Type(_, ty) => span_of(ty),
        syn::ReturnType::Default => span_of(&user.sig.ident),
    };
    if let Ok(out) = syn::parse2(respan(g.sig.output.to_token_stream(), out_span)) {
        g.sig.output = out;
    }
    g.sig.fn_token.span = user.sig.fn_token.span;
    g.sig.ident = user.sig.ident.clone();
    g.attrs.extend(kept_attrs(&user.attrs).cloned());
    g
}
