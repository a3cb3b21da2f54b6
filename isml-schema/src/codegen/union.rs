//! Unions: the Rust enum with its `Unknown` variant, its `Message` impl, the view enum.

use super::descriptor::TypeItems;
use super::*;

impl Gen<'_> {
    pub(super) fn union(&self, id: TypeId, def: &TypeDef) -> TokenStream {
        let TypeDefKind::Union(u) = &def.kind else {
            return quote!();
        };
        let p = quote!(::isml_runtime::__private);
        let n = self.own_ident(id);
        let v = self.own_view_ident(id);
        let unk = self.unknown_ident();
        let auto = self.auto();
        let vis = self.vis();
        let doc = docs(&def.docs);
        let full = def.full_name();
        let full_lit = lit_str(&full);
        // Variants as fields, so that they share the member machinery.
        let as_fields: Vec<FieldDef> = u
            .variants
            .iter()
            .map(|var| {
                let mut f = FieldDef::new(var.name.clone(), var.tag, var.ty.clone());
                f.docs = var.docs.clone();
                f
            })
            .collect();
        let members: Vec<Member<'_>> = match self.derive {
            Some(_) => self.members(id, &as_fields),
            None => {
                let mut namer = Namer::camel(&["Unknown"]);
                as_fields
                    .iter()
                    .map(|f| Member {
                        ident: format_ident!(
                            "{}",
                            namer.name(naming::variant_name(&f.name), f.tag)
                        ),
                        ty: self.rust_type(id, &f.ty, false),
                        view_ty: self.view_type(id, &f.ty, false),
                        field: f,
                    })
                    .collect()
            }
        };

        let mut decl = Vec::new();
        let mut vdecl = Vec::new();
        let mut len_arms = Vec::new();
        let mut enc_arms = Vec::new();
        let mut val_arms = Vec::new();
        let mut checked_arms = Vec::new();
        let mut measure_arms = Vec::new();
        let mut write_arms = Vec::new();
        let mut dec_arms = Vec::new();
        let mut view_arms = Vec::new();
        let mut owned_arms = Vec::new();
        for Member {
            ident: vi,
            ty,
            view_ty: vty,
            field: var,
        } in &members
        {
            let tag = var.tag;
            let vname = lit_str(&var.name);
            let mut vd = var.docs.clone();
            vd.push(format!("Variant tag {tag}."));
            let d = docs(&vd);
            decl.push(quote! { #d #vi(#ty), });
            let d2 = docs(&var.docs);
            vdecl.push(quote! { #d2 #vi(#vty), });
            checked_arms.push(quote! {
                #n::#vi(v) => #p::Ok(
                    #p::write::union_key_len(#tag) + #p::Wire::checked_field_len(v, __depth)?
                ),
            });
            len_arms.push(quote! {
                #n::#vi(v) => #p::write::union_key_len(#tag) + #p::Wire::field_len(v),
            });
            enc_arms.push(quote! {
                #n::#vi(v) => {
                    #p::write::union_key(__buf, #tag, <#ty as #p::Wire>::CLASS);
                    #p::Wire::encode_field(v, __buf);
                }
            });
            measure_arms.push(quote! {
                #n::#vi(v) => #p::Ok(
                    #p::write::union_key_len(#tag) + #p::Wire::measure_field(v, __depth, __lens)?
                ),
            });
            write_arms.push(quote! {
                #n::#vi(v) => {
                    #p::write::union_key(__buf, #tag, <#ty as #p::Wire>::CLASS);
                    #p::Wire::write_field(v, __buf, __lens);
                }
            });
            if self.needs_validation(&var.ty) {
                val_arms.push(quote! { #n::#vi(v) => #p::Wire::validate_field(v, __depth), });
            }
            let tag64 = Literal::u64_suffixed(u64::from(tag));
            dec_arms.push(quote! {
                #tag64 => #p::Ok(#n::#vi(#p::decode_field::<#ty>(__r, __class, #tag, #full_lit, #vname)?)),
            });
            view_arms.push(quote! {
                #tag64 => #p::Ok(#v::#vi(#p::view_field::<#ty>(__r, __class, #tag, #full_lit, #vname)?)),
            });
            owned_arms.push(quote! {
                #v::#vi(x) => #n::#vi(<#ty as #p::WireView<'a>>::from_view(x)),
            });
        }
        let nested_lengths = members.iter().any(|m| self.nested_lengths(&m.field.ty));
        // An unknown variant built by the caller is checked before it is
        // written, so that nothing is sent that decoders reject.
        let known_tags = members.iter().map(|m| m.field.tag);
        let check_unknown = quote! {
            #p::check_unknown_variant(#full_lit, *tag, *class, bytes, &[#(#known_tags),*])?
        };
        let fields: Vec<&FieldDef> = as_fields.iter().collect();
        let TypeItems {
            inherent: inherent_items,
            descriptor_fn,
            top,
            reflect,
        } = self.type_items(id, def, quote!(#p::MessageKind::Union), u.id, &fields);
        let default_variant = match members.first() {
            Some(Member {
                ident: vi,
                ty,
                field: var,
                ..
            }) => {
                let init = match &var.ty {
                    Type::Array(..) => quote!(::core::array::from_fn(|_| #p::Default::default())),
                    _ => quote!(<#ty as #p::Default>::default()),
                };
                quote!(#n::#vi(#init))
            }
            None => {
                quote!(#n::#unk { tag: 0, class: #p::Class::Varint, bytes: #p::Bytes::from_static(&[0]) })
            }
        };
        let view_default = match members.first() {
            Some(Member { ident: vi, .. }) => quote!(#v::#vi(#p::Default::default())),
            None => quote!(#v::#unk { tag: 0, class: #p::Class::Varint, bytes: &[0] }),
        };
        let view_doc = format!(" A zero-copy view of [`{n}`].");
        let owned_decl = if self.derive.is_none() {
            let id_doc = match u.id {
                Some(i) => format!(" Message type id `{i}` (`{i:#x}`)."),
                None => " A nested union: it has no type id and is sent inside others.".to_string(),
            };
            quote! {
                #doc
                #[doc = ""]
                #[doc = #id_doc]
                #[derive(Debug, Clone, PartialEq)]
                pub enum #n {
                    #(#decl)*
                    /// A variant this version of the schema does not know, kept with
                    /// its encoded value so that it can be forwarded unchanged.
                    Unknown {
                        /// The variant tag.
                        tag: u64,
                        /// The wire class of the value.
                        class: #p::Class,
                        /// The value in its class encoding.
                        bytes: #p::Bytes,
                    },
                }
            }
        } else {
            quote!()
        };
        let view_derives = self.view_derives(false);
        let view_decl = quote! {
            #[doc = #view_doc]
            #view_derives
            #vis enum #v<'a> {
                #(#vdecl)*
                /// A variant this version of the schema does not know.
                #unk {
                    /// The variant tag.
                    tag: u64,
                    /// The wire class of the value.
                    class: #p::Class,
                    /// The value in its class encoding, borrowed from the buffer.
                    bytes: &'a [u8],
                },
            }
        };
        let owned_impls = quote! {
            #auto
            impl #p::Default for #n {
                fn default() -> Self {
                    #default_variant
                }
            }

            #auto
            impl #n {
                #inherent_items

                #[doc(hidden)]
                pub fn __decode_value(__r: &mut #p::Reader<'_>) -> #p::Result<Self, #p::DecodeError> {
                    let (__tag, __class) = __r.union_key()?;
                    match __tag {
                        #(#dec_arms)*
                        _ => #p::Ok(#n::#unk {
                            tag: __tag,
                            class: __class,
                            bytes: __r.class_raw_bytes(__class)?,
                        }),
                    }
                }
            }

            #auto
            impl #p::Message for #n {
                const NAME: &'static str = #full_lit;
                const NESTED_LENGTHS: bool = #nested_lengths;

                #[inline]
                fn encoded_len(&self) -> usize {
                    match self {
                        #(#len_arms)*
                        #n::#unk { tag, bytes, .. } => #p::varint::len(*tag << 2) + bytes.len(),
                    }
                }

                fn validate(&self) -> #p::Result<(), #p::EncodeError> {
                    #p::Message::validate_nested(self, #p::MAX_DEPTH)
                }

                #[allow(unused_variables)]
                fn validate_nested(&self, __depth: u32) -> #p::Result<(), #p::EncodeError> {
                    #[allow(unreachable_patterns)]
                    match self {
                        #(#val_arms)*
                        #n::#unk { tag, class, bytes } => {
                            #check_unknown;
                            #p::Ok(())
                        }
                        _ => #p::Ok(()),
                    }
                }

                #[inline]
                #[allow(unused_variables)]
                fn checked_len_nested(&self, __depth: u32) -> #p::Result<usize, #p::EncodeError> {
                    match self {
                        #(#checked_arms)*
                        #n::#unk { tag, class, bytes } => {
                            #check_unknown;
                            #p::Ok(#p::varint::len(*tag << 2) + bytes.len())
                        }
                    }
                }

                #[inline]
                #[allow(unused_variables)]
                fn measure_body(
                    &self,
                    __depth: u32,
                    __lens: &mut #p::Lens,
                ) -> #p::Result<usize, #p::EncodeError> {
                    match self {
                        #(#measure_arms)*
                        #n::#unk { tag, class, bytes } => {
                            #check_unknown;
                            #p::Ok(#p::varint::len(*tag << 2) + bytes.len())
                        }
                    }
                }

                #[allow(unused_variables)]
                fn write_body<B: #p::BufMut + ?Sized>(&self, __buf: &mut B, __lens: &mut #p::Lens) {
                    match self {
                        #(#write_arms)*
                        #n::#unk { tag, class, bytes } => {
                            #p::varint::put(__buf, (*tag << 2) | *class as u64);
                            __buf.put_slice(bytes);
                        }
                    }
                }

                fn encode_raw<B: #p::BufMut + ?Sized>(&self, __buf: &mut B) {
                    match self {
                        #(#enc_arms)*
                        #n::#unk { tag, class, bytes } => {
                            #p::varint::put(__buf, (*tag << 2) | *class as u64);
                            __buf.put_slice(bytes);
                        }
                    }
                }

                fn decode_reader(__r: &mut #p::Reader<'_>) -> #p::Result<Self, #p::DecodeError> {
                    let __v = #n::__decode_value(__r)?;
                    __r.finish(#full_lit)?;
                    #p::Ok(__v)
                }
            }

            #top
        };
        let view_impls = quote! {
            #auto
            impl<'a> #p::Default for #v<'a> {
                fn default() -> Self {
                    #view_default
                }
            }

            #auto
            impl<'a> #v<'a> {
                #[doc(hidden)]
                pub fn __view_value(__r: &mut #p::Reader<'a>) -> #p::Result<Self, #p::DecodeError> {
                    let (__tag, __class) = __r.union_key()?;
                    match __tag {
                        #(#view_arms)*
                        _ => #p::Ok(#v::#unk {
                            tag: __tag,
                            class: __class,
                            bytes: __r.class_raw(__class)?,
                        }),
                    }
                }

                /// Copies the view into an owned value.
                pub fn to_owned(&self) -> #n {
                    #p::View::to_owned_message(self)
                }
            }

            #auto
            impl<'a> #p::View<'a> for #v<'a> {
                type Owned = #n;

                fn view_reader(__r: &mut #p::Reader<'a>) -> #p::Result<Self, #p::DecodeError> {
                    let __v = #v::__view_value(__r)?;
                    __r.finish(#full_lit)?;
                    #p::Ok(__v)
                }

                fn to_owned_message(&self) -> #n {
                    match self {
                        #(#owned_arms)*
                        #v::#unk { tag, class, bytes } => #n::#unk {
                            tag: *tag,
                            class: *class,
                            bytes: #p::Bytes::copy_from_slice(bytes),
                        },
                    }
                }
            }

            ::isml_runtime::__wire_union!(#n, #v);

            #reflect
        };
        if self.derive.is_none() {
            return quote!(#owned_decl #owned_impls #view_decl #view_impls);
        }
        self.wrap(view_decl, descriptor_fn, quote!(#owned_impls #view_impls))
    }
}
