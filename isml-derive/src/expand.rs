//! Expansion: lower, check, then emit through `isml-schema`'s code generator
//! (or, after errors, the errors plus fallback impls).

use isml_schema::TypeId;
use isml_schema::codegen::derive_impls;
use proc_macro2::TokenStream;
use quote::quote;
use syn::DeriveInput;

use crate::ctxt::Ctxt;
use crate::lower::{self, Kind};

/// Expands one derive.
pub(crate) fn derive(input: TokenStream, kind: Kind) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let mut cx = Ctxt::default();
    let lowered = lower::lower(&mut cx, &input, kind);
    if !cx.has_errors()
        && let Err(diags) = lowered.schema.validate()
    {
        for d in diags.iter() {
            lowered.locate(&mut cx, d);
        }
    }
    match cx.finish() {
        None => derive_impls(&lowered.schema, TypeId(0), &lowered.options),
        Some(err) => {
            let errors = err.to_compile_error();
            let fallback = if lowered.generic {
                quote!()
            } else {
                fallback(&lowered, kind)
            };
            quote!(#errors #fallback)
        }
    }
}

/// Impls of every trait the derive would have implemented, so that one
/// mistake does not cascade into trait-bound errors wherever the type is used.
fn fallback(lowered: &lower::Lowered, kind: Kind) -> TokenStream {
    let o = &lowered.options;
    let (ident, view, vis) = (&o.ident, &o.view_ident, &o.vis);
    let top = lowered.top_level;
    match kind {
        Kind::Enum => quote!(::isml_runtime::__fallback_enum!(#ident);),
        Kind::Message => quote! {
            ::isml_runtime::__fallback_message!(#ident, #view, #vis, default = false, top_level = #top);
        },
        Kind::Union => quote! {
            ::isml_runtime::__fallback_message!(#ident, #view, #vis, default = true, top_level = #top);
        },
    }
}
