//! A service method's Rust signature, read as an rpc: its request and
//! response types and whether either side streams.
//!
//! The five accepted forms are those the schema generator emits, written
//! as `async fn` (or as `fn ... -> impl Future<Output = ...> + Send`):
//! see [`FORMS`].

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, TraitItemFn, Type, TypeParamBound};

use crate::ctxt::Ctxt;

/// The accepted signatures, for help lines.
pub(crate) const FORMS: &str = "the forms of an rpc are
  unary:            async fn m(&self, call: Call, req: Req) -> Result<Resp, Status>
  server streaming: async fn m(&self, call: Call, req: Req, out: Sink<Resp>) -> Result<(), Status>
  one-way:          async fn m(&self, call: Call, req: Req)
  client streaming: async fn m(&self, call: Call, req: Streaming<Req>) -> Result<Resp, Status>
  bidirectional:    async fn m(&self, call: Call, req: Streaming<Req>, out: Sink<Resp>) -> Result<(), Status>";

/// What a method's signature says.
pub(crate) struct Signature {
    /// The request type (of each item, when the caller streams).
    pub(crate) request: Type,
    /// The response type (of each item, when the callee streams).
    pub(crate) response: Option<Type>,
    pub(crate) client_streaming: bool,
    pub(crate) server_streaming: bool,
    /// The request parameter's type as written (`Streaming<Chunk>`).
    pub(crate) request_tokens: TokenStream,
}

/// The last path segment of `ty`, if it is a plain path type.
fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        Type::Group(g) => last_segment(&g.elem),
        Type::Paren(p) => last_segment(&p.elem),
        _ => None,
    }
}

/// `Name<T>`: the one type argument of a path type whose last segment is `Name`.
fn wrapped<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let seg = last_segment(ty)?;
    if seg.ident != name {
        return None;
    }
    match &seg.arguments {
        PathArguments::AngleBracketed(a) if a.args.len() == 1 => match &a.args[0] {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

fn is_named(ty: &Type, name: &str) -> bool {
    last_segment(ty).is_some_and(|s| s.ident == name && s.arguments.is_none())
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

/// `Result<T, Status>`: `T`.
fn result_ok(ty: &Type) -> Option<&Type> {
    let seg = last_segment(ty)?;
    if seg.ident != "Result" {
        return None;
    }
    match &seg.arguments {
        PathArguments::AngleBracketed(a) if a.args.len() == 2 => match (&a.args[0], &a.args[1]) {
            (GenericArgument::Type(ok), GenericArgument::Type(err)) if is_named(err, "Status") => {
                Some(ok)
            }
            _ => None,
        },
        _ => None,
    }
}

/// The future's output of a method written without `async`:
/// `-> impl Future<Output = X> + Send`.
fn future_output(ty: &Type) -> Option<Type> {
    let Type::ImplTrait(it) = ty else {
        return None;
    };
    it.bounds.iter().find_map(|b| match b {
        TypeParamBound::Trait(t) => {
            let seg = t.path.segments.last()?;
            if seg.ident != "Future" {
                return None;
            }
            match &seg.arguments {
                PathArguments::AngleBracketed(a) => a.args.iter().find_map(|arg| match arg {
                    GenericArgument::AssocType(at) if at.ident == "Output" => Some(at.ty.clone()),
                    _ => None,
                }),
                _ => None,
            }
        }
        _ => None,
    })
}

/// A request or response type: a named message or union type, by value.
fn check_message_type(cx: &mut Ctxt, ty: &Type, what: &str) -> bool {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            if p.path.is_ident("Self") {
                cx.error(ty, format_args!("{what} is a message type, not `Self`"));
                return false;
            }
            true
        }
        Type::Group(g) => check_message_type(cx, &g.elem, what),
        Type::Paren(p) => check_message_type(cx, &p.elem, what),
        Type::Reference(_) => {
            cx.error(
                ty,
                format_args!(
                    "{what} is taken by value: drop the `&` (the runtime decodes it for the method)"
                ),
            );
            false
        }
        _ => {
            cx.error(
                ty,
                format_args!("{what} must be a message or union type with a type id (`#[isml(id = N)]` or `[id = N]` in a schema)"),
            );
            false
        }
    }
}

/// Reads `f`'s signature, reporting what does not fit an rpc.
pub(crate) fn read(cx: &mut Ctxt, f: &TraitItemFn) -> Option<Signature> {
    let sig = &f.sig;
    let before = cx.count();
    if let Some(body) = &f.default {
        cx.error(
            body,
            "a service method has no body here: implementations of the trait provide it",
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        cx.error(
            &sig.generics,
            "service methods cannot be generic: each rpc has one request and one response type",
        );
    }
    if let Some(c) = &sig.constness {
        cx.error(c, "a service method cannot be `const`");
    }
    if let Some(u) = &sig.unsafety {
        cx.error(u, "a service method cannot be `unsafe`");
    }
    if let Some(abi) = &sig.abi {
        cx.error(abi, "a service method cannot have an `extern` ABI");
    }
    if let Some(v) = &sig.variadic {
        cx.error(v, "a service method cannot be variadic");
    }

    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r))
            if r.reference.is_some() && r.mutability.is_none() && r.colon_token.is_none() => {}
        Some(other) => cx.error(
            other,
            "a service method takes `&self`: the server calls it on a shared implementation, concurrently",
        ),
        None => cx.error(
            &sig.ident,
            format_args!("a service method takes `&self`, the call and the request; {FORMS}"),
        ),
    }
    let typed: Vec<&syn::PatType> = inputs
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(r) => {
                cx.error(r, "`self` can only be the first parameter");
                None
            }
        })
        .collect();
    if typed.len() < 2 || typed.len() > 3 {
        let what = if typed.len() < 2 {
            "too few"
        } else {
            "too many"
        };
        cx.error(
            &sig.inputs,
            format_args!("{what} parameters for an rpc; {FORMS}"),
        );
        return None;
    }
    if !is_named(&typed[0].ty, "Call") {
        cx.error(
            &typed[0].ty,
            format_args!(
                "the first parameter after `&self` is the call: write `call: Call` (`isml_runtime::rpc::Call`); {FORMS}"
            ),
        );
    }
    let (request, client_streaming) = match wrapped(&typed[1].ty, "Streaming") {
        Some(t) => (t.clone(), true),
        None => ((*typed[1].ty).clone(), false),
    };
    check_message_type(cx, &request, "the request");
    let sink = match typed.get(2) {
        Some(t) => match wrapped(&t.ty, "Sink") {
            Some(item) => {
                check_message_type(cx, item, "the response");
                Some(item.clone())
            }
            None => {
                cx.error(
                    &t.ty,
                    format_args!("the third parameter is where a streaming method sends its responses: write `out: Sink<Resp>`; {FORMS}"),
                );
                None
            }
        },
        None => None,
    };

    // The output of the method's future.
    let output: Option<Type> = match (&sig.asyncness, &sig.output) {
        (Some(_), ReturnType::Default) => None,
        (Some(_), ReturnType::Type(_, ty)) => Some((**ty).clone()),
        (None, ReturnType::Type(_, ty)) => match future_output(ty) {
            Some(out) => Some(out),
            None => {
                cx.error(
                    ty,
                    format_args!("write the method as an `async fn` (or returning `impl Future<Output = ...> + Send`); {FORMS}"),
                );
                return None;
            }
        },
        (None, ReturnType::Default) => {
            cx.error(
                sig.fn_token,
                format_args!(
                    "write the method as an `async fn`: rpcs are served asynchronously; {FORMS}"
                ),
            );
            return None;
        }
    };
    let output = output.filter(|t| !is_unit(t));
    let output_tokens = || match &sig.output {
        ReturnType::Type(_, ty) => ty.to_token_stream(),
        ReturnType::Default => sig.ident.to_token_stream(),
    };
    let response = match (&sink, &output) {
        (Some(item), Some(out)) => {
            match result_ok(out) {
                Some(ok) if is_unit(ok) => {}
                _ => cx.error(
                    output_tokens(),
                    "a method that streams its responses through `out` returns `Result<(), Status>`",
                ),
            }
            Some(item.clone())
        }
        (Some(_), None) => {
            cx.error(
                output_tokens(),
                "a method that streams its responses through `out` returns `Result<(), Status>`: the status ends the stream",
            );
            None
        }
        (None, Some(out)) => match result_ok(out) {
            Some(ok) if is_unit(ok) => {
                cx.error(
                    output_tokens(),
                    "the response is a message type, not `()`; a one-way rpc has no return type",
                );
                None
            }
            Some(ok) => {
                check_message_type(cx, ok, "the response");
                Some(ok.clone())
            }
            None => {
                cx.error(
                    output_tokens(),
                    format_args!("an rpc returns `Result<Resp, Status>` (`isml_runtime::rpc::Status`), or nothing when it is one-way; {FORMS}"),
                );
                None
            }
        },
        (None, None) => None,
    };
    if cx.count() > before {
        return None;
    }
    Some(Signature {
        request,
        server_streaming: sink.is_some(),
        response,
        client_streaming,
        request_tokens: typed[1].ty.to_token_stream(),
    })
}
