//! Channels: `pub mod channels` in the package module, one unit struct per
//! channel implementing `isml_runtime::pubsub::Channel`, and `all()`, the
//! package's channels as `ChannelInfo`s for a server to broker.

use super::*;

impl Gen<'_> {
    pub(super) fn channels(&self) -> TokenStream {
        let mut channels: Vec<&ChannelDef> = self
            .schema
            .channels
            .iter()
            .filter(|c| c.package == self.package)
            .collect();
        if channels.is_empty() {
            return quote!();
        }
        channels.sort_by_key(|c| c.id);
        let ps = quote!(::isml_runtime::pubsub);
        let allow = quote!(#[allow(clippy::all, clippy::pedantic, unreachable_pub, non_snake_case, non_camel_case_types)]);
        let mut namer = Namer::camel(&[]);
        let idents: Vec<proc_macro2::Ident> = channels
            .iter()
            .map(|c| format_ident!("{}", namer.name(naming::type_name(&c.name), c.id)))
            .collect();
        let items = channels.iter().zip(&idents).map(|(c, n)| {
            let doc = docs(&c.docs);
            let full = format!("{}.{}", c.package, c.name);
            let ty = self.type_path(c.ty);
            let id = c.id;
            let (retain, keyed) = (c.retain, c.keyed);
            let mut flags = Vec::new();
            if retain {
                flags.push("retain");
            }
            if keyed {
                flags.push("keyed");
            }
            let decl = format!(
                " `channel {}: {} = {}{}` (`{full}`).",
                c.name,
                self.def(c.ty).full_name(),
                id,
                if flags.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", flags.join(", "))
                }
            );
            quote! {
                #doc
                #[doc = #decl]
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
                #allow
                pub struct #n;

                #[automatically_derived]
                #allow
                impl #ps::Channel for #n {
                    type Message = super::#ty;
                    const ID: u32 = #id;
                    const NAME: &'static str = #full;
                    const RETAIN: bool = #retain;
                    const KEYED: bool = #keyed;
                }
            }
        });
        let infos = idents.iter().map(|n| quote!(<#n as #ps::Channel>::info()));
        let module_doc = format!(
            " The publish/subscribe channels of package `{}`.",
            self.package
        );
        quote! {
            #[doc = #module_doc]
            pub mod channels {
                #(#items)*

                /// Every channel of the package, described for a server
                /// (`ServerBuilder::channel_info`) or a tool.
                #allow
                pub fn all() -> ::isml_runtime::__private::Vec<#ps::ChannelInfo> {
                    let mut all = ::isml_runtime::__private::Vec::new();
                    #(all.push(#infos);)*
                    all
                }
            }
        }
    }
}
