//! Messages: the owned struct, its `Message` impl, the view type and its impls.

use super::descriptor::TypeItems;
use super::*;

/// The largest `MAX_ENCODED_LEN` that the runtime's `encode_to_vec` writes
/// through `encode_raw_into` without measuring (its `SMALL_BOUND`).
const SMALL_BOUND: usize = 64;

impl Gen<'_> {
    pub(super) fn message(&self, id: TypeId, def: &TypeDef) -> TokenStream {
        let TypeDefKind::Message(m) = &def.kind else {
            return quote!();
        };
        let members = self.members(id, &m.fields);
        let decl = if self.derive.is_none() {
            self.message_struct(id, def, m.id, &members)
        } else {
            quote!()
        };
        let impls = self.message_impls(id, def, m.id, &members);
        quote!(#decl #impls)
    }

    /// The owned struct of a schema message, with its `Default`.
    pub(super) fn message_struct(
        &self,
        id: TypeId,
        def: &TypeDef,
        msg_id: Option<u32>,
        members: &[Member<'_>],
    ) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        let n = self.type_ident(id);
        let doc = docs(&def.docs);
        let id_doc = match msg_id {
            Some(i) => format!(
                " Message type id `{i}` (`{i:#x}`); fingerprint `{:#018x}`.",
                self.schema.fingerprint(id)
            ),
            None => " A nested message: it has no type id and is sent inside others.".to_string(),
        };
        let mut struct_fields = Vec::new();
        for Member {
            ident: fid,
            ty,
            field: f,
            ..
        } in members
        {
            let tag = f.tag;
            let mut fdocs = f.docs.clone();
            let mut notes = Vec::new();
            if let Some(u) = &f.unit {
                notes.push(format!("Unit: `{u}`."));
            }
            if let Some((a, b)) = f.range {
                notes.push(format!("Range: `{a}..={b}`."));
            }
            if let Some(ml) = f.max_len {
                notes.push(format!(
                    "At most {ml} {}.",
                    match f.ty.strip_optional() {
                        Type::String | Type::Bytes => "bytes",
                        Type::Map(..) => "entries",
                        _ => "elements",
                    }
                ));
            }
            if !notes.is_empty() {
                if !fdocs.is_empty() {
                    fdocs.push(String::new());
                }
                fdocs.push(notes.join(" "));
            }
            fdocs.push(String::new());
            fdocs.push(format!("Tag {tag}."));
            let fdoc = docs(&fdocs);
            let deprecated = if f.deprecated {
                quote!(#[deprecated(note = "deprecated in the schema")])
            } else {
                quote!()
            };
            struct_fields.push(quote! { #fdoc #deprecated pub #fid: #ty, });
        }
        let big_array = members
            .iter()
            .any(|m| matches!(m.field.ty, Type::Array(_, n) if n > 32));
        let (derive_default, default_impl) = if big_array {
            let default_fields = self.default_fields(members);
            (
                quote!(),
                quote! {
                    #[allow(deprecated)]
                    impl #p::Default for #n {
                        fn default() -> Self {
                            #n { #(#default_fields)* }
                        }
                    }
                },
            )
        } else {
            (quote!(Default,), quote!())
        };
        quote! {
            #doc
            #[doc = ""]
            #[doc = #id_doc]
            #[derive(Debug, Clone, PartialEq, #derive_default)]
            pub struct #n {
                #(#struct_fields)*
            }

            #default_impl
        }
    }

    /// `field: <default>,` for each member (arrays of any length included).
    pub(super) fn default_fields(&self, members: &[Member<'_>]) -> Vec<TokenStream> {
        members
            .iter()
            .map(|m| {
                let fid = &m.ident;
                let value = self.default_value(m);
                quote!(#fid: #value,)
            })
            .collect()
    }

    /// The default value of one member's type.
    fn default_value(&self, m: &Member<'_>) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        match (&m.field.ty, self.derive.is_some()) {
            (Type::Array(..), _) => quote!(::core::array::from_fn(|_| #p::Default::default())),
            (_, false) => quote!(#p::Default::default()),
            (_, true) => {
                let ty = &m.ty;
                quote!(<#ty as #p::Default>::default())
            }
        }
    }

    /// Every impl of a message, its view type and its descriptor.
    pub(super) fn message_impls(
        &self,
        id: TypeId,
        def: &TypeDef,
        msg_id: Option<u32>,
        members: &[Member<'_>],
    ) -> TokenStream {
        let p = quote!(::isml_runtime::__private);
        let n = self.own_ident(id);
        let v = self.own_view_ident(id);
        let auto = self.auto();
        let vis = self.vis();
        let full = def.full_name();
        let full_lit = lit_str(&full);
        let nested_lengths = members.iter().any(|m| self.nested_lengths(&m.field.ty));
        // The most bytes any value encodes to, when the schema bounds it (a
        // derive macro sees other types as placeholders: no bound there).
        let bound = match self.derive {
            None => {
                crate::ir::size::encode_bound(self.schema, id).and_then(|n| usize::try_from(n).ok())
            }
            Some(_) => None,
        };
        let max_encoded_len = bound.map(|n| {
            let n = Literal::usize_unsuffixed(n);
            quote!(const MAX_ENCODED_LEN: usize = #n;)
        });
        let bitmap_bytes = Literal::usize_unsuffixed(
            members
                .iter()
                .map(|m| m.field.tag)
                .max()
                .unwrap_or(0)
                .div_ceil(4) as usize,
        );

        let mut view_fields = Vec::new();
        let mut view_accessors = Vec::new();
        let mut len_stmts = Vec::new();
        let mut presence_stmts = Vec::new();
        let mut encode_stmts = Vec::new();
        let mut validate_stmts = Vec::new();
        let mut checked_len_stmts = Vec::new();
        let mut measure_stmts = Vec::new();
        let mut write_stmts = Vec::new();
        let mut fit_stmts = Vec::new();
        // Each field's `is_default` once: the presence and the write share it.
        let mut fit_presence = Vec::new();
        let mut decode_arms = Vec::new();
        // Straight-line decoding for the usual case: every tag within 32 (the
        // presence fits one word) and no field this version does not know.
        let mut decode_straight = Vec::new();
        let mut decode_built = Vec::new();
        let mut view_straight = Vec::new();
        let mut known_mask = 0u64;
        let mut view_arms = Vec::new();
        let mut to_owned_fields = Vec::new();

        for m in members {
            let Member {
                ident: fid,
                ty,
                view_ty: vty,
                field: f,
            } = m;
            let tag = f.tag;
            let fname = lit_str(&f.name);
            view_fields.push(quote! { #fid: #vty, });
            let vdoc = docs(&f.docs);
            view_accessors.push(quote! {
                #vdoc
                #[inline]
                pub fn #fid(&self) -> #vty { self.#fid }
            });
            to_owned_fields
                .push(quote! { #fid: <#ty as #p::WireView<'a>>::from_view(&self.#fid), });
            len_stmts.push(quote! {
                if !#p::Wire::is_default(&self.#fid) {
                    __p.set(#tag, <#ty as #p::Wire>::CLASS);
                    __n += #p::Wire::field_len(&self.#fid);
                }
            });
            presence_stmts.push(quote! {
                if !#p::Wire::is_default(&self.#fid) {
                    __p.set(#tag, <#ty as #p::Wire>::CLASS);
                }
            });
            encode_stmts.push(quote! {
                if !#p::Wire::is_default(&self.#fid) {
                    #p::Wire::encode_field(&self.#fid, __buf);
                }
            });
            let mut dec_checks = Vec::new();
            let mut enc_checks = Vec::new();
            if let Some(ml) = f.max_len {
                enc_checks.push(quote! {
                    #p::check_max_len_encode(&self.#fid, #ml, #full_lit, #fname)?;
                });
                dec_checks.push(quote! {
                    #p::check_max_len_decode(&__v, #ml).map_err(|e| e.in_field(#full_lit, #fname))?;
                });
            }
            if let Some((a, b)) = f.range {
                let (a, b) = (Literal::i128_suffixed(a), Literal::i128_suffixed(b));
                enc_checks.push(quote! {
                    #p::check_range_encode(&self.#fid, #a, #b, #full_lit, #fname)?;
                });
                dec_checks.push(quote! {
                    #p::check_range_decode(&__v, #a, #b).map_err(|e| e.in_field(#full_lit, #fname))?;
                });
            }
            validate_stmts.extend(enc_checks.iter().cloned());
            // Attributes are checked whether the field is written or not, as
            // `validate` does.
            checked_len_stmts.push(quote! {
                #(#enc_checks)*
                if !#p::Wire::is_default(&self.#fid) {
                    __p.set(#tag, <#ty as #p::Wire>::CLASS);
                    __n += #p::Wire::checked_field_len(&self.#fid, __depth)?;
                }
            });
            measure_stmts.push(quote! {
                #(#enc_checks)*
                if !#p::Wire::is_default(&self.#fid) {
                    __p.set(#tag, <#ty as #p::Wire>::CLASS);
                    __n += #p::Wire::measure_field(&self.#fid, __depth, __lens)?;
                }
            });
            write_stmts.push(quote! {
                if !#p::Wire::is_default(&self.#fid) {
                    #p::Wire::write_field(&self.#fid, __buf, __lens);
                }
            });
            let present = format_ident!("__has_{}", tag);
            fit_presence.push(quote! {
                let #present = !#p::Wire::is_default(&self.#fid);
                if #present {
                    __p.set(#tag, <#ty as #p::Wire>::CLASS);
                }
            });
            fit_stmts.push(quote! {
                if #present {
                    #p::Wire::fit_field(&self.#fid, __w);
                }
            });
            if self.needs_validation(&f.ty) {
                // An omitted field nests nothing.
                validate_stmts.push(quote! {
                    if !#p::Wire::is_default(&self.#fid) {
                        #p::Wire::validate_field(&self.#fid, __depth)?;
                    }
                });
            }
            let shift = 2 * (tag - 1);
            if tag <= 32 {
                known_mask |= 3u64 << shift;
            }
            // Into a local per field, the message built from them at the
            // end: its fields are stored once, into the caller's slot,
            // instead of into a message on the stack that is then moved.
            let local = format_ident!("__f{}", tag);
            let default = self.default_value(m);
            decode_straight.push(quote! {
                let #local = {
                    let __c = (__bits >> #shift) as u8 & 3;
                    if __c != 0 {
                        let __v = #p::decode_field::<#ty>(__r, #p::Class::from_bits(__c), #tag, #full_lit, #fname)?;
                        #(#dec_checks)*
                        __v
                    } else {
                        #default
                    }
                };
            });
            decode_built.push(quote!(#fid: #local,));
            view_straight.push(quote! {
                let __c = (__bits >> #shift) as u8 & 3;
                if __c != 0 {
                    let __v = #p::view_field::<#ty>(__r, #p::Class::from_bits(__c), #tag, #full_lit, #fname)?;
                    #(#dec_checks)*
                    __m.#fid = __v;
                }
            });
            decode_arms.push(quote! {
                #tag => {
                    let __v = #p::decode_field::<#ty>(__r, __class, #tag, #full_lit, #fname)?;
                    #(#dec_checks)*
                    __m.#fid = __v;
                }
            });
            view_arms.push(quote! {
                #tag => {
                    let __v = #p::view_field::<#ty>(__r, __class, #tag, #full_lit, #fname)?;
                    #(#dec_checks)*
                    __m.#fid = __v;
                }
            });
        }

        let (decode_fast, view_fast) = if members.iter().all(|m| m.field.tag <= 32) {
            let mask = Literal::u64_suffixed(known_mask);
            (
                quote! {
                    if let #p::Some(__bits) = __presence.only_known(#mask) {
                        #(#decode_straight)*
                        __r.finish(#full_lit)?;
                        return #p::Ok(#n { #(#decode_built)* });
                    }
                },
                quote! {
                    if let #p::Some(__bits) = __presence.only_known(#mask) {
                        #(#view_straight)*
                        __r.finish(#full_lit)?;
                        return #p::Ok(__m);
                    }
                },
            )
        } else {
            (quote!(), quote!())
        };
        let fields: Vec<&FieldDef> = members.iter().map(|m| m.field).collect();
        let TypeItems {
            inherent: inherent_items,
            descriptor_fn,
            top,
            reflect,
        } = self.type_items(id, def, quote!(#p::MessageKind::Message), msg_id, &fields);
        let inherent = if self.derive.is_none() {
            quote!(impl #n { #inherent_items })
        } else {
            quote!()
        };
        let view_doc = format!(
            " A zero-copy view of [`{n}`]: strings, bytes and lists borrow from the receive buffer."
        );
        let allow_deprecated = quote!(#[allow(deprecated)]);
        // A derived type's `Default` is the user's: decoding starts from each
        // field's own default so that omitted fields read back as the wire says.
        let decode_init = if self.derive.is_some() {
            let default_fields = self.default_fields(members);
            quote!(#n { #(#default_fields)* })
        } else {
            quote!(<Self as #p::Default>::default())
        };
        let view_derives = self.view_derives(true);
        let declared = quote! {
            #[doc = #view_doc]
            #view_derives
            #vis struct #v<'a> {
                #(#view_fields)*
                __marker: #p::PhantomData<&'a ()>,
            }
        };
        // Small bounded messages are written into a slice that stays in
        // registers (see `Message::encode_raw_into`); any other through
        // `encode_to_vec`'s one pass: nested lengths after their content,
        // varints stored a word at a time (see `Message::fit_body`).
        let small = bound.is_some_and(|n| n <= SMALL_BOUND);
        let (encode_raw_into, fit_body) = if small {
            (
                quote! {
                #[inline]
                fn encode_raw_into(&self, __slice: &mut [u8]) -> usize {
                    let __total = __slice.len();
                    let mut __rest: &mut [u8] = __slice;
                    {
                        let __buf = &mut __rest;
                        let mut __p = #p::PresenceWriter::<#bitmap_bytes>::new();
                        #(#presence_stmts)*
                        __p.encode(__buf);
                        #(#encode_stmts)*
                    }
                    __total - __rest.len()
                }
                },
                quote!(),
            )
        } else {
            (
                quote!(),
                quote! {
                    #[inline]
                    fn fit_body(&self, __w: &mut #p::Fit<'_>) {
                        let mut __p = #p::PresenceWriter::<#bitmap_bytes>::new();
                        #(#fit_presence)*
                        __p.encode(__w);
                        #(#fit_stmts)*
                    }
                },
            )
        };
        let impls = quote! {
            #inherent

            #allow_deprecated
            #auto
            impl #p::Message for #n {
                const NAME: &'static str = #full_lit;
                const NESTED_LENGTHS: bool = #nested_lengths;
                #max_encoded_len

                #[inline]
                fn encoded_len(&self) -> usize {
                    let mut __p = #p::PresenceWriter::<#bitmap_bytes>::new();
                    let mut __n = 0usize;
                    #(#len_stmts)*
                    __p.encoded_len() + __n
                }

                fn validate(&self) -> #p::Result<(), #p::EncodeError> {
                    #p::Message::validate_nested(self, #p::MAX_DEPTH)
                }

                #[allow(unused_variables)]
                fn validate_nested(&self, __depth: u32) -> #p::Result<(), #p::EncodeError> {
                    #(#validate_stmts)*
                    #p::Ok(())
                }

                #[inline]
                #[allow(unused_variables)]
                fn checked_len_nested(&self, __depth: u32) -> #p::Result<usize, #p::EncodeError> {
                    let mut __p = #p::PresenceWriter::<#bitmap_bytes>::new();
                    let mut __n = 0usize;
                    #(#checked_len_stmts)*
                    #p::Ok(__p.encoded_len() + __n)
                }

                #[inline]
                #[allow(unused_variables)]
                fn measure_body(
                    &self,
                    __depth: u32,
                    __lens: &mut #p::Lens,
                ) -> #p::Result<usize, #p::EncodeError> {
                    let mut __p = #p::PresenceWriter::<#bitmap_bytes>::new();
                    let mut __n = 0usize;
                    #(#measure_stmts)*
                    #p::Ok(__p.encoded_len() + __n)
                }

                #[inline]
                #[allow(unused_variables)]
                fn write_body<B: #p::BufMut + ?Sized>(&self, __buf: &mut B, __lens: &mut #p::Lens) {
                    let mut __p = #p::PresenceWriter::<#bitmap_bytes>::new();
                    #(#presence_stmts)*
                    __p.encode(__buf);
                    #(#write_stmts)*
                }

                #[inline]
                fn encode_raw<B: #p::BufMut + ?Sized>(&self, __buf: &mut B) {
                    let mut __p = #p::PresenceWriter::<#bitmap_bytes>::new();
                    #(#presence_stmts)*
                    __p.encode(__buf);
                    #(#encode_stmts)*
                }

                #encode_raw_into

                #fit_body

                fn decode_reader(__r: &mut #p::Reader<'_>) -> #p::Result<Self, #p::DecodeError> {
                    let __presence = __r.presence()?;
                    #decode_fast
                    let mut __m = #decode_init;
                    for (__tag, __class) in __presence {
                        match __tag {
                            #(#decode_arms)*
                            _ => __r.skip(__class)?,
                        }
                    }
                    __r.finish(#full_lit)?;
                    #p::Ok(__m)
                }
            }

            #top
        };
        let view_impls = quote! {
            #auto
            impl<'a> #v<'a> {
                #(#view_accessors)*

                /// Copies the view into an owned message.
                pub fn to_owned(&self) -> #n {
                    #p::View::to_owned_message(self)
                }
            }

            #allow_deprecated
            #auto
            impl<'a> #p::View<'a> for #v<'a> {
                type Owned = #n;

                fn view_reader(__r: &mut #p::Reader<'a>) -> #p::Result<Self, #p::DecodeError> {
                    let mut __m = <Self as #p::Default>::default();
                    let __presence = __r.presence()?;
                    #view_fast
                    for (__tag, __class) in __presence {
                        match __tag {
                            #(#view_arms)*
                            _ => __r.skip(__class)?,
                        }
                    }
                    __r.finish(#full_lit)?;
                    #p::Ok(__m)
                }

                fn to_owned_message(&self) -> #n {
                    #n { #(#to_owned_fields)* }
                }
            }

            ::isml_runtime::__wire_message!(#n, #v);

            #reflect
        };
        let (lazy_declared, lazy_impls) = self.lazy_view(id, def, members);
        if self.derive.is_none() {
            // Schema output keeps its historical order: impls, view, wire,
            // then the lazy view.
            return quote!(#impls #declared #view_impls #lazy_declared #lazy_impls);
        }
        self.wrap(
            quote!(#declared #lazy_declared),
            descriptor_fn,
            quote!(#impls #view_impls #lazy_impls),
        )
    }
}
