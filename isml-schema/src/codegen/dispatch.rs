//! The dispatch table of a compiled set: `AnyMessage` and its conversions.

use super::*;

impl Gen<'_> {
    pub(super) fn dispatch(&self) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        // The table covers the whole compiled set (message ids are unique across
        // it); it is emitted in every package that owns a top-level message.
        let mut top: Vec<(TypeId, &TypeDef, u32)> = self
            .schema
            .types_iter()
            .filter_map(|(id, t)| t.message_id().map(|m| (id, t, m)))
            .collect();
        if !top.iter().any(|(_, t, _)| t.package == self.package) {
            return quote!();
        }
        top.sort_by_key(|(_, _, m)| *m);
        // Variant names: the type's Rust name, prefixed by its package where two
        // packages of the set use the same name.
        let mut namer = Namer::camel(&[]);
        let variant_names: Vec<proc_macro2::Ident> = top
            .iter()
            .map(|(id, t, m)| {
                let base = self.names.types[id].0.clone();
                let clash = top
                    .iter()
                    .any(|(other, _, _)| other != id && self.names.types[other].0 == base);
                let candidate = if clash {
                    naming::type_name(&format!("{}_{}", t.package.replace('.', "_"), base))
                } else {
                    base
                };
                format_ident!("{}", namer.name(candidate, m))
            })
            .collect();
        let d = format_ident!("{}", self.names.dispatch[self.package]);
        let variants = top.iter().zip(&variant_names).map(|((id, t, m), v)| {
            let path = self.type_path(*id);
            let doc = format!(" `{}` (type id {m}).", t.full_name());
            quote!(#[doc = #doc] #v(#path),)
        });
        let decode_arms = top.iter().zip(&variant_names).map(|((id, _, m), v)| {
            let path = self.type_path(*id);
            quote!(#m => <#path as #p::Message>::decode(payload).map(#d::#v),)
        });
        let id_arms = top
            .iter()
            .zip(&variant_names)
            .map(|((_, _, m), v)| quote!(#d::#v(_) => #m,));
        let len_arms = variant_names
            .iter()
            .map(|v| quote!(#d::#v(m) => #p::Message::encoded_len(m),));
        let enc_arms = variant_names
            .iter()
            .map(|v| quote!(#d::#v(m) => #p::Message::encode(m, buf),));
        let table = top.iter().map(|(id, t, m)| {
            let path = self.type_path(*id);
            let full = t.full_name();
            quote!((#m, #full, #path::FINGERPRINT))
        });
        let from_impls = top.iter().zip(&variant_names).map(|((id, _, _), v)| {
            let path = self.type_path(*id);
            quote! {
                impl ::core::convert::From<#path> for #d {
                    fn from(m: #path) -> Self { #d::#v(m) }
                }
            }
        });
        let doc = " Every message with a type id in the set compiled together: the dispatch table for incoming frames.".to_string();
        quote! {
            #[doc = #doc]
            #[derive(Debug, Clone, PartialEq)]
            pub enum #d {
                #(#variants)*
            }

            impl #d {
                /// `(type id, full name, fingerprint)` of every message in this table, by id.
                pub const TYPES: &'static [(u32, &'static str, u64)] = &[#(#table),*];

                /// Decodes a frame payload by its type id; an id not in this table is
                /// reported as [`DecodeError::UnknownMessageType`](::isml_runtime::wire::DecodeError::UnknownMessageType).
                pub fn decode(type_id: u32, payload: #p::Bytes) -> #p::Result<Self, #p::DecodeError> {
                    match type_id {
                        #(#decode_arms)*
                        other => #p::Err(#p::DecodeError::UnknownMessageType { type_id: other }),
                    }
                }

                /// The type id of the message held.
                pub fn type_id(&self) -> u32 {
                    match self { #(#id_arms)* }
                }

                /// The encoded length of the message held.
                pub fn encoded_len(&self) -> usize {
                    match self { #(#len_arms)* }
                }

                /// Encodes the message held (the frame payload).
                pub fn encode<B: #p::BufMut + ?Sized>(&self, buf: &mut B) -> #p::Result<(), #p::EncodeError> {
                    match self { #(#enc_arms)* }
                }
            }

            #(#from_impls)*
        }
    }
}
