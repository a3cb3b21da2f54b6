//! Enums: the Rust enum with its catch-all variant, `Enum`, `Wire` and descriptors.

use super::*;

impl Gen<'_> {
    pub(super) fn enumeration(&self, id: TypeId, def: &TypeDef) -> TokenStream {
        let TypeDefKind::Enum(e) = &def.kind else {
            return quote!();
        };
        let p = quote!(::isml_runtime::__private);
        let n = self.own_ident(id);
        let unknown = self.unknown_ident();
        let auto = self.auto();
        let doc = docs(&def.docs);
        let full = def.full_name();
        let variants: Vec<_> = match self.derive {
            Some((_, opts)) => opts
                .members
                .iter()
                .map(|m| m.ident.clone())
                .zip(&e.variants)
                .collect(),
            None => {
                let mut namer = Namer::camel(&["Unknown"]);
                e.variants
                    .iter()
                    .map(|v| {
                        (
                            format_ident!("{}", namer.name(naming::variant_name(&v.name), v.value)),
                            v,
                        )
                    })
                    .collect()
            }
        };
        let decl = variants.iter().map(|(vi, v)| {
            let d = docs(&v.docs);
            let val = format!(" Wire value `{}`.", v.value);
            quote! { #d #[doc = #val] #vi, }
        });
        let to = variants.iter().map(|(vi, v)| {
            let val = v.value;
            quote!(#n::#vi => #val,)
        });
        let from = variants.iter().map(|(vi, v)| {
            let val = v.value;
            quote!(#val => #n::#vi,)
        });
        let names = variants.iter().map(|(vi, v)| {
            let s = &v.name;
            quote!(#n::#vi => #p::Some(#s),)
        });
        let values = e.variants.iter().map(|v| {
            let (s, val) = (&v.name, v.value);
            quote!((#s, #val))
        });
        let name = &def.name;
        let package = &def.package;
        let d = def.docs.join("\n");
        let descriptor_body = quote! {
            static DESCRIPTOR: #p::EnumDescriptor = #p::EnumDescriptor {
                name: #name,
                package: #package,
                full_name: #full,
                values: &[#(#values),*],
                docs: #d,
            };
            &DESCRIPTOR
        };
        let reflect = self.reflect(id, quote!(Enum));
        let common = quote! {
            #auto
            impl #p::Default for #n {
                fn default() -> Self {
                    <#n as #p::Enum>::from_u32(0)
                }
            }

            #auto
            impl #p::Enum for #n {
                const NAME: &'static str = #full;
                #[inline]
                fn to_u32(self) -> u32 {
                    match self {
                        #(#to)*
                        #n::#unknown(v) => v,
                    }
                }
                #[inline]
                fn from_u32(v: u32) -> Self {
                    match v {
                        #(#from)*
                        other => #n::#unknown(other),
                    }
                }
            }
        };
        if self.derive.is_some() {
            return self.wrap(
                quote!(),
                quote! {
                    fn __descriptor() -> &'static #p::EnumDescriptor {
                        #descriptor_body
                    }
                },
                quote! {
                    #common
                    ::isml_runtime::__wire_enum!(#n);
                    #reflect
                },
            );
        }
        quote! {
            #doc
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub enum #n {
                #(#decl)*
                /// A value this version of the schema does not define (kept, not rejected).
                Unknown(u32),
            }

            #common

            impl #n {
                /// The variant name in the schema, `None` for unknown values.
                pub fn name(self) -> #p::Option<&'static str> {
                    match self {
                        #(#names)*
                        #n::Unknown(_) => #p::None,
                    }
                }

                /// Reflection data for this enum.
                pub fn descriptor() -> &'static #p::EnumDescriptor {
                    #descriptor_body
                }
            }

            ::isml_runtime::__wire_enum!(#n);

            #reflect
        }
    }
}
