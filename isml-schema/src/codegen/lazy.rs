//! Lazy views of messages (`NameLazy<'a>`): made by reading the presence
//! field only; each accessor locates and decodes its field when called and
//! returns a `Result`. See the runtime's `lazy` module.

use super::*;

impl Gen<'_> {
    /// The name of the lazy view type being emitted.
    pub(super) fn own_lazy_ident(&self, id: TypeId) -> proc_macro2::Ident {
        match self.derive {
            Some((_, opts)) => opts.lazy_ident.clone(),
            None => self.lazy_ident(id),
        }
    }

    /// The lazy view type of message `ty`, when the generator knows `ty` is
    /// a message: every schema message, and the derived type itself (a
    /// derive macro sees other types only through traits).
    fn lazy_message(&self, ty: &Type) -> Option<TokenStream> {
        let Type::Named(id) = ty else {
            return None;
        };
        if !matches!(self.def(*id).kind, TypeDefKind::Message(_)) {
            return None;
        }
        match self.derive {
            Some((own, _)) if own == *id => {
                let l = self.own_lazy_ident(*id);
                Some(quote!(#l<'a>))
            }
            Some(_) => None,
            None => {
                let p = self.prefix(&self.def(*id).package);
                let l = self.lazy_ident(*id);
                Some(quote!(#p #l<'a>))
            }
        }
    }

    /// The declaration of the lazy view of message `id` and its impls.
    pub(super) fn lazy_view(
        &self,
        id: TypeId,
        def: &TypeDef,
        members: &[Member<'_>],
    ) -> (TokenStream, TokenStream) {
        let p = quote!(::isml_runtime::__private);
        let n = self.own_ident(id);
        let v = self.own_view_ident(id);
        let l = self.own_lazy_ident(id);
        let auto = self.auto();
        let vis = self.vis();
        let full_lit = lit_str(&def.full_name());
        let mut accessors = Vec::new();
        for Member {
            ident: fid,
            ty,
            view_ty: vty,
            field: f,
        } in members
        {
            let tag = f.tag;
            let fname = lit_str(&f.name);
            let mut checks = Vec::new();
            if let Some(ml) = f.max_len {
                checks.push(quote! {
                    #p::check_max_len_decode(&__v, #ml).map_err(|e| e.in_field(#full_lit, #fname))?;
                });
            }
            if let Some((a, b)) = f.range {
                let (a, b) = (Literal::i128_suffixed(a), Literal::i128_suffixed(b));
                checks.push(quote! {
                    #p::check_range_decode(&__v, #a, #b).map_err(|e| e.in_field(#full_lit, #fname))?;
                });
            }
            let args = quote!(__r, __c, #tag, #full_lit, #fname);
            let delimited = quote!(#p::Class::Delimited);
            // The value's type, a call reading it from `__r` (a
            // `&mut Reader` at the value, whose class is `__c`) as a
            // `Result`, its default, and the class its type is written with.
            let (lty, read, default, class) = match &f.ty {
                t if self.lazy_message(t).is_some() => {
                    let m = self.lazy_message(t);
                    (
                        m.clone().unwrap_or_default(),
                        quote!(#p::lazy_message_field::<#m>(#args)),
                        quote!(#p::Default::default()),
                        delimited,
                    )
                }
                Type::Optional(t) if self.lazy_message(t).is_some() => {
                    let m = self.lazy_message(t);
                    (
                        quote!(#p::Option<#m>),
                        quote!(#p::lazy_message_field::<#m>(#args).map(#p::Some)),
                        quote!(#p::None),
                        delimited,
                    )
                }
                Type::List(t) if self.lazy_message(t).is_some() => {
                    let m = self.lazy_message(t);
                    (
                        quote!(#p::LazyList<'a, #m>),
                        quote!(#p::lazy_list_field::<#m>(#args)),
                        quote!(#p::Default::default()),
                        delimited,
                    )
                }
                // Lists and maps without bounds are walked once, by their
                // iterator; a bound (`max_len`, `range`) needs the whole
                // list, which is then validated by the accessor.
                Type::List(_) | Type::Map(..) if f.max_len.is_none() && f.range.is_none() => {
                    let lty = match (&f.ty, self.derive) {
                        (_, Some(_)) => quote!(<#ty as #p::LazyContainer<'a>>::Lazy),
                        (Type::List(t), None) => {
                            let e = self.rust_type(id, t, true);
                            quote!(#p::LazyValues<'a, #e>)
                        }
                        (Type::Map(k, v), None) => {
                            let k = self.rust_type(id, k, true);
                            let v = self.rust_type(id, v, true);
                            quote!(#p::LazyMap<'a, #k, #v>)
                        }
                        _ => unreachable!("matched above"),
                    };
                    (
                        lty,
                        quote!(<#ty as #p::LazyContainer<'a>>::lazy_field(#args)),
                        quote!(#p::Default::default()),
                        delimited,
                    )
                }
                _ => (
                    vty.clone(),
                    quote!(#p::view_field::<#ty>(#args)),
                    quote!(<#vty as #p::Default>::default()),
                    quote!(<#ty as #p::Wire>::CLASS),
                ),
            };
            let mut fdocs = f.docs.clone();
            if !fdocs.is_empty() {
                fdocs.push(String::new());
            }
            fdocs.push(format!(
                "Tag {tag}, decoded when called: an error means this field (or one \
                 before it) is malformed."
            ));
            let fdoc = docs(&fdocs);
            let slow = format_ident!("__{}_located", f.name);
            // The accessor tries `LazyBody::next_value` (the field is the
            // next one in tag order, or absent: no lookup, no error
            // value), and calls the out-of-line general path otherwise.
            accessors.push(quote! {
                #fdoc
                #[inline]
                pub fn #fid(&self) -> #p::Result<#lty, #p::DecodeError> {
                    let __v = match self.__body.next_value(#tag, #class, |__r| {
                        let __c = #class;
                        #read
                    }) {
                        #p::Some(__v) => __v,
                        #p::None => self.#slow()?,
                    };
                    #(#checks)*
                    #p::Ok(__v)
                }

                #[cold]
                #[inline(never)]
                #[allow(non_snake_case)]
                fn #slow(&self) -> #p::Result<#lty, #p::DecodeError> {
                    let __found = self.__body.find(#tag)?;
                    #p::Ok(if __found != 0 {
                        let (__c, mut __at) = self.__body.value(__found);
                        let __r = &mut __at;
                        let __v = #read?;
                        self.__body.advance(#tag, __r.position());
                        __v
                    } else {
                        #default
                    })
                }
            });
        }
        let doc = format!(
            " A lazy view of [`{n}`]: made by reading the presence field only; each \
             accessor decodes its field when called. [`{v}`] is the view validated \
             when it is made."
        );
        let declared = quote! {
            #[doc = #doc]
            #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::default::Default)]
            #vis struct #l<'a> {
                __body: #p::LazyBody<'a>,
            }
        };
        let impls = quote! {
            #[allow(deprecated)]
            #auto
            impl<'a> #l<'a> {
                /// A lazy view over a frame payload: reads the presence field only.
                #[inline(always)]
                pub fn new(buf: &'a [u8]) -> #p::Result<Self, #p::DecodeError> {
                    #p::LazyBody::new(buf).map(|__body| #l { __body })
                }

                #(#accessors)*

                /// Validates the whole message into its validated view.
                pub fn to_view(&self) -> #p::Result<#v<'a>, #p::DecodeError> {
                    <#v<'a> as #p::View<'a>>::view_reader(&mut self.__body.reader())
                }

                /// Decodes the whole message into an owned value.
                pub fn to_owned_message(&self) -> #p::Result<#n, #p::DecodeError> {
                    <#n as #p::Message>::decode_reader(&mut self.__body.reader())
                }
            }

            #auto
            impl<'a> #p::LazyMessage<'a> for #l<'a> {
                #[inline]
                fn from_body(__body: #p::LazyBody<'a>) -> Self {
                    #l { __body }
                }
            }

            #auto
            impl #p::LazyViewable for #n {
                type Lazy<'a> = #l<'a>;
            }
        };
        (declared, impls)
    }
}
