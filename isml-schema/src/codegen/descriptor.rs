//! Emission shared by messages and unions: descriptors, `TopLevel`,
//! `Reflect`, and the wrapping of a derived type's impls.

use super::*;

/// What a message and a union both carry besides their encoding.
pub(super) struct TypeItems {
    /// Inherent items of a schema type (`FINGERPRINT`, `descriptor()`);
    /// empty for a derived type.
    pub(super) inherent: TokenStream,
    /// The private `__descriptor()` function of a derived type; empty for a
    /// schema type.
    pub(super) descriptor_fn: TokenStream,
    /// The `TopLevel` impl, for a type with a type id.
    pub(super) top: TokenStream,
    /// The `Reflect` impl.
    pub(super) reflect: TokenStream,
}

impl Gen<'_> {
    pub(super) fn field_descriptors(&self, fields: &[&FieldDef]) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        let items = fields.iter().map(|f| {
            let (name, tag) = (&f.name, f.tag);
            let tr = self.type_ref(&f.ty);
            let deprecated = f.deprecated;
            let unit = match &f.unit {
                Some(u) => quote!(#p::Some(#u)),
                None => quote!(#p::None),
            };
            let max_len = match f.max_len {
                Some(m) => quote!(#p::Some(#m)),
                None => quote!(#p::None),
            };
            let range = match f.range {
                Some((a, b)) => {
                    let (a, b) = (Literal::i128_suffixed(a), Literal::i128_suffixed(b));
                    quote!(#p::Some((#a, #b)))
                }
                None => quote!(#p::None),
            };
            let d = f.docs.join("\n");
            quote! {
                #p::FieldDescriptor {
                    name: #name,
                    tag: #tag,
                    ty: #tr,
                    deprecated: #deprecated,
                    unit: #unit,
                    max_len: #max_len,
                    range: #range,
                    docs: #d,
                }
            }
        });
        quote!(&[#(#items),*])
    }

    /// The body of a descriptor function: a `static` and a reference to it.
    /// Derived types record fingerprint `0`: theirs is computed at run time.
    pub(super) fn descriptor_body(
        &self,
        id: TypeId,
        def: &TypeDef,
        kind: TokenStream,
        msg_id: Option<u32>,
        fields: TokenStream,
    ) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        let name = &def.name;
        let package = &def.package;
        let full = def.full_name();
        let id_tokens = match msg_id {
            Some(i) => quote!(#p::Some(#i)),
            None => quote!(#p::None),
        };
        let d = def.docs.join("\n");
        let fp = match self.derive {
            Some(_) => hex_u64(0),
            None => hex_u64(self.schema.fingerprint(id)),
        };
        quote! {
            static DESCRIPTOR: #p::MessageDescriptor = #p::MessageDescriptor {
                name: #name,
                package: #package,
                full_name: #full,
                kind: #kind,
                id: #id_tokens,
                fields: #fields,
                docs: #d,
                fingerprint: #fp,
            };
            &DESCRIPTOR
        }
    }

    /// The `TopLevel` impl of a message or union with an id. Derived types
    /// compute their fingerprint from descriptors once, on first use.
    pub(super) fn top_level(&self, id: TypeId, def: &TypeDef) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        let Some(msg_id) = def.message_id() else {
            return quote!();
        };
        let n = self.own_ident(id);
        if self.derive.is_some() {
            return quote! {
                #[automatically_derived]
                impl #p::TopLevel for #n {
                    const TYPE_ID: u32 = #msg_id;
                    fn fingerprint() -> u64 {
                        static __FINGERPRINT: #p::OnceLock<u64> = #p::OnceLock::new();
                        *__FINGERPRINT.get_or_init(|| #p::fingerprint(__descriptor()))
                    }
                    fn descriptor() -> &'static #p::MessageDescriptor {
                        __descriptor()
                    }
                }
            };
        }
        quote! {
            impl #p::TopLevel for #n {
                const TYPE_ID: u32 = #msg_id;
                fn fingerprint() -> u64 {
                    #n::FINGERPRINT
                }
                fn descriptor() -> &'static #p::MessageDescriptor {
                    #n::descriptor()
                }
            }
        }
    }

    /// The `Reflect` impl of any named type.
    pub(super) fn reflect(&self, id: TypeId, variant: TokenStream) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        let n = self.own_ident(id);
        let auto = self.auto();
        let f = match self.derive {
            Some(_) => quote!(__descriptor),
            None => quote!(#n::descriptor),
        };
        quote! {
            #auto
            impl #p::Reflect for #n {
                const TYPE_REF: #p::TypeRef = #p::TypeRef::#variant(#f);
            }
        }
    }

    /// Schema types get their items as they are; derived types get the
    /// declared view type as is and every impl inside an anonymous const,
    /// next to the private descriptor function they share.
    pub(super) fn wrap(
        &self,
        declared: TokenStream,
        descriptor: TokenStream,
        impls: TokenStream,
    ) -> TokenStream {
        if self.derive.is_none() {
            return quote!(#declared #impls);
        }
        quote! {
            #declared
            const _: () = {
                #descriptor
                #impls
            };
        }
    }

    /// The descriptor, fingerprint, `TopLevel` and `Reflect` items of a
    /// message (`kind` `MessageKind::Message`) or union (`MessageKind::Union`)
    /// whose fields or variants are `fields`.
    pub(super) fn type_items(
        &self,
        id: TypeId,
        def: &TypeDef,
        kind: TokenStream,
        type_id: Option<u32>,
        fields: &[&FieldDef],
    ) -> TypeItems {
        let p = quote!(::isml_runtime::__private);
        let field_descs = self.field_descriptors(fields);
        let descriptor_body = self.descriptor_body(id, def, kind, type_id, field_descs);
        let (inherent, descriptor_fn) = match self.derive {
            None => {
                let fp = hex_u64(self.schema.fingerprint(id));
                (
                    quote! {
                        /// The schema fingerprint of this type (wire format §8).
                        pub const FINGERPRINT: u64 = #fp;
                        /// Reflection data for this type.
                        pub fn descriptor() -> &'static #p::MessageDescriptor {
                            #descriptor_body
                        }
                    },
                    quote!(),
                )
            }
            Some(_) => (
                quote!(),
                quote! {
                    fn __descriptor() -> &'static #p::MessageDescriptor {
                        #descriptor_body
                    }
                },
            ),
        };
        TypeItems {
            inherent,
            descriptor_fn,
            top: self.top_level(id, def),
            reflect: self.reflect(id, quote!(Message)),
        }
    }
}
