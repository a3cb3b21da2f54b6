//! Services: the trait implementations write, the server that serves it,
//! the client that calls it, and the reflection data both share
//! (`docs/rpc.md`).
//!
//! For `service Charger` the package gets `trait Charger`,
//! `struct ChargerServer<T: Charger>` (an `rpc::Service` for a
//! `Dispatcher`) and `struct ChargerClient`; the derive front end
//! (`#[isml_runtime::service]` on a trait) emits the same through
//! [`service_tokens`], with the trait written by the user.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::Gen;
use crate::ir::naming::{self, ident};
use crate::ir::{MethodKind, ServiceDef};

/// The Rust names of one service's items.
#[derive(Clone, Debug)]
pub struct ServiceNames {
    /// The trait (`Charger`).
    pub trait_ident: proc_macro2::Ident,
    /// The server (`ChargerServer`).
    pub server_ident: proc_macro2::Ident,
    /// The client (`ChargerClient`).
    pub client_ident: proc_macro2::Ident,
    /// The static holding the descriptor (`__ISML_SERVICE_CHARGER`).
    pub descriptor_ident: proc_macro2::Ident,
}

/// One method, as the emitter needs it.
#[derive(Clone, Debug)]
pub struct MethodTokens {
    /// The method as declared.
    pub name: String,
    /// The Rust method name (keywords escaped).
    pub ident: proc_macro2::Ident,
    /// The wire id.
    pub id: u32,
    /// The streaming kind.
    pub kind: MethodKind,
    /// The request type's Rust path.
    pub request: TokenStream,
    /// The response type's Rust path (`None`: one-way).
    pub response: Option<TokenStream>,
    /// `[once]`: the client sends calls through the session's reliable
    /// state (the descriptor's `once`).
    pub once: bool,
    /// `///` lines.
    pub docs: Vec<String>,
}

fn docs(lines: &[String]) -> TokenStream {
    let lines = lines.iter().map(|l| {
        let l = format!(" {}", l.trim_start());
        quote!(#[doc = #l])
    });
    quote!(#(#lines)*)
}

/// Rust names of the client's own methods, which an rpc cannot take.
const CLIENT_RESERVED: &[&str] = &["new", "with_timeout", "descriptor", "conn", "timeout"];

impl Gen<'_> {
    /// The items of a schema service.
    pub(super) fn service(&self, svc: &ServiceDef, names: &ServiceNames) -> TokenStream {
        let methods: Vec<MethodTokens> = svc
            .methods
            .iter()
            .map(|m| MethodTokens {
                name: m.name.clone(),
                ident: method_ident(&m.name),
                id: m.id,
                kind: m.kind(),
                request: self.type_path(m.request),
                response: m.response.map(|r| self.type_path(r)),
                once: m.once,
                docs: m.docs.clone(),
            })
            .collect();
        let full_name = svc.full_name();
        let trait_def = trait_tokens(names, &svc.docs, &methods);
        let rest = service_tokens(&full_name, names, &methods);
        quote! {
            #trait_def
            #rest
        }
    }
}

/// The Rust method name of an rpc.
pub fn method_ident(name: &str) -> proc_macro2::Ident {
    ident(&naming::field_name(name))
}

/// The client method name of an rpc: its own name, unless the client
/// already has a method of that name (then with a trailing `_`).
fn client_ident(m: &MethodTokens) -> proc_macro2::Ident {
    let s = m.ident.to_string();
    if CLIENT_RESERVED.contains(&s.trim_start_matches("r#")) {
        format_ident!("{}_", s.trim_start_matches("r#"))
    } else {
        m.ident.clone()
    }
}

fn rpc() -> TokenStream {
    quote!(::isml_runtime::__private::rpc)
}

/// The trait implementations write: one method per rpc.
pub fn trait_tokens(names: &ServiceNames, doc: &[String], methods: &[MethodTokens]) -> TokenStream {
    let rpc = rpc();
    let trait_ident = &names.trait_ident;
    let doc = docs(doc);
    let fns = methods.iter().map(|m| {
        let ident = &m.ident;
        let doc = docs(&m.docs);
        let req = &m.request;
        let input = if m.kind.client_streaming() {
            quote!(req: #rpc::Streaming<#req>)
        } else {
            quote!(req: #req)
        };
        match (&m.response, m.kind.server_streaming()) {
            (None, _) => quote! {
                #doc
                fn #ident(&self, call: #rpc::Call, #input)
                    -> impl ::core::future::Future<Output = ()> + ::core::marker::Send;
            },
            (Some(resp), false) => quote! {
                #doc
                fn #ident(&self, call: #rpc::Call, #input)
                    -> impl ::core::future::Future<Output = ::core::result::Result<#resp, #rpc::Status>> + ::core::marker::Send;
            },
            (Some(resp), true) => quote! {
                #doc
                fn #ident(&self, call: #rpc::Call, #input, out: #rpc::Sink<#resp>)
                    -> impl ::core::future::Future<Output = ::core::result::Result<(), #rpc::Status>> + ::core::marker::Send;
            },
        }
    });
    quote! {
        #doc
        pub trait #trait_ident: ::core::marker::Send + ::core::marker::Sync + 'static {
            #(#fns)*
        }
    }
}

fn kind_tokens(kind: MethodKind) -> TokenStream {
    let rpc = rpc();
    match kind {
        MethodKind::OneWay => quote!(#rpc::MethodKind::OneWay),
        MethodKind::Unary => quote!(#rpc::MethodKind::Unary),
        MethodKind::ServerStreaming => quote!(#rpc::MethodKind::ServerStreaming),
        MethodKind::ClientStreaming => quote!(#rpc::MethodKind::ClientStreaming),
        MethodKind::Bidirectional => quote!(#rpc::MethodKind::Bidirectional),
    }
}

/// Everything but the trait: the descriptor, the server and the client of
/// service `full_name` (`package.Service`).
pub fn service_tokens(
    full_name: &str,
    names: &ServiceNames,
    methods: &[MethodTokens],
) -> TokenStream {
    let rpc = rpc();
    let ServiceNames {
        trait_ident,
        server_ident,
        client_ident: client,
        descriptor_ident: desc,
    } = names;
    let count = methods.len();
    let methods_ident = format_ident!("{}_METHODS", desc);
    let descs = methods.iter().map(|m| {
        let name = &m.name;
        let full = format!("{full_name}/{}", m.name);
        let id = Literal::u32_unsuffixed(m.id);
        let kind = kind_tokens(m.kind);
        let req = &m.request;
        let resp = match &m.response {
            Some(r) => quote!(::core::option::Option::Some(#rpc::MessageRef::of::<#r>())),
            None => quote!(::core::option::Option::None),
        };
        let desc = quote! {
            #rpc::MethodDescriptor::new(#name, #full, #id, #kind, #rpc::MessageRef::of::<#req>(), #resp)
        };
        if m.once {
            quote!(#desc.with_once(true))
        } else {
            desc
        }
    });
    let arms = methods.iter().map(|m| {
        let id = Literal::u32_unsuffixed(m.id);
        let ident = &m.ident;
        let req = &m.request;
        let body = match (&m.response, m.kind) {
            (None, _) => quote! {
                let req = request.message::<#req>()?;
                inner.#ident(call, req).await;
                ::core::result::Result::Ok(#rpc::Reply::End)
            },
            (Some(resp), MethodKind::Unary) => quote! {
                let req = request.message::<#req>()?;
                let out: #resp = inner.#ident(call, req).await?;
                #rpc::Reply::message(&out)
            },
            (Some(resp), MethodKind::ServerStreaming) => quote! {
                let req = request.message::<#req>()?;
                let out = request.sink::<#resp>(&call)?;
                inner.#ident(call, req, out).await?;
                ::core::result::Result::Ok(#rpc::Reply::End)
            },
            (Some(resp), MethodKind::ClientStreaming) => quote! {
                let req = request.stream::<#req>(&call)?;
                let out: #resp = inner.#ident(call, req).await?;
                #rpc::Reply::message(&out)
            },
            (Some(resp), _) => quote! {
                let req = request.stream::<#req>(&call)?;
                let out = request.sink::<#resp>(&call)?;
                inner.#ident(call, req, out).await?;
                ::core::result::Result::Ok(#rpc::Reply::End)
            },
        };
        quote! {
            #id => ::std::boxed::Box::pin(async move { #body }),
        }
    });
    let client_fns = methods.iter().enumerate().map(|(i, m)| {
        let ident = client_ident(m);
        let mut doc = docs(&m.docs);
        if m.once {
            let note = [
                String::new(),
                "`[once]`: sent through the session's reliable state when it has one (a".into(),
                "client built with `resume(true)`), so that the call runs once across".into(),
                "reconnects; otherwise at most once.".into(),
            ];
            let note = if m.docs.is_empty() { &note[1..] } else { &note[..] };
            let note = docs(note);
            doc = quote!(#doc #note);
        }
        let req = &m.request;
        let index = Literal::usize_unsuffixed(i);
        let method = quote!(&#desc.methods[#index]);
        match (&m.response, m.kind) {
            (None, _) => quote! {
                #doc
                pub async fn #ident(&self, req: &#req) -> ::core::result::Result<(), #rpc::CallError> {
                    self.conn.one_way(&#desc, #method, req).await
                }
            },
            (Some(resp), MethodKind::Unary) => quote! {
                #doc
                pub async fn #ident(&self, req: &#req) -> ::core::result::Result<#resp, #rpc::CallError> {
                    self.conn.unary(&#desc, #method, req, self.timeout).await
                }
            },
            (Some(resp), MethodKind::ServerStreaming) => quote! {
                #doc
                pub async fn #ident(&self, req: &#req) -> ::core::result::Result<#rpc::Streaming<#resp>, #rpc::CallError> {
                    self.conn.server_streaming(&#desc, #method, req, self.timeout).await
                }
            },
            (Some(resp), MethodKind::ClientStreaming) => quote! {
                #doc
                pub async fn #ident(&self) -> ::core::result::Result<#rpc::ClientStreaming<#req, #resp>, #rpc::CallError> {
                    self.conn.client_streaming(&#desc, #method, self.timeout).await
                }
            },
            (Some(resp), _) => quote! {
                #doc
                pub async fn #ident(&self) -> ::core::result::Result<(#rpc::Sink<#req>, #rpc::Streaming<#resp>), #rpc::CallError> {
                    self.conn.bidirectional(&#desc, #method, self.timeout).await
                }
            },
        }
    });
    let server_doc = format!(
        " Serves [`{trait_ident}`]: register it with `Dispatcher::new().service({server_ident}::new(imp))`."
    );
    let client_doc =
        format!(" Calls `{full_name}` on the peer, over a session or a reconnecting client.");
    quote! {
        #[doc(hidden)]
        pub static #desc: #rpc::ServiceDescriptor = #rpc::ServiceDescriptor {
            name: #full_name,
            methods: &#methods_ident,
        };

        #[doc = #server_doc]
        pub struct #server_ident<T: #trait_ident> {
            inner: ::std::sync::Arc<T>,
        }

        impl<T: #trait_ident> #server_ident<T> {
            /// Serves `imp`.
            pub fn new(imp: T) -> Self {
                Self { inner: ::std::sync::Arc::new(imp) }
            }

            /// Serves an implementation shared with other code.
            pub fn from_arc(imp: ::std::sync::Arc<T>) -> Self {
                Self { inner: imp }
            }

            /// The service's reflection data.
            pub fn descriptor() -> &'static #rpc::ServiceDescriptor {
                &#desc
            }
        }

        impl<T: #trait_ident> ::core::clone::Clone for #server_ident<T> {
            fn clone(&self) -> Self {
                Self { inner: ::core::clone::Clone::clone(&self.inner) }
            }
        }

        impl<T: #trait_ident> ::core::fmt::Debug for #server_ident<T> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(::core::stringify!(#server_ident))
            }
        }

        impl<T: #trait_ident> #rpc::Service for #server_ident<T> {
            fn descriptor(&self) -> &'static #rpc::ServiceDescriptor {
                &#desc
            }

            fn call(
                &self,
                method: &'static #rpc::MethodDescriptor,
                call: #rpc::Call,
                mut request: #rpc::Request,
            ) -> #rpc::BoxFuture<'static, ::core::result::Result<#rpc::Reply, #rpc::Status>> {
                let inner = ::core::clone::Clone::clone(&self.inner);
                let _ = &mut request;
                match method.id {
                    #(#arms)*
                    _ => ::std::boxed::Box::pin(async move {
                        ::core::result::Result::Err(#rpc::Status::unimplemented(method.full_name))
                    }),
                }
            }
        }

        #[doc = #client_doc]
        #[derive(Clone, Debug)]
        pub struct #client {
            conn: #rpc::Conn,
            timeout: ::core::option::Option<::core::time::Duration>,
        }

        impl #client {
            /// A client over a `Session` or a `Client` (whose current session
            /// each call uses).
            pub fn new(conn: impl ::core::convert::Into<#rpc::Conn>) -> Self {
                Self { conn: conn.into(), timeout: ::core::option::Option::None }
            }

            /// Every call gets at most `timeout` (streams included); without
            /// it, unary calls get the session's request timeout and streams
            /// none.
            pub fn with_timeout(mut self, timeout: ::core::time::Duration) -> Self {
                self.timeout = ::core::option::Option::Some(timeout);
                self
            }

            /// The service's reflection data.
            pub fn descriptor() -> &'static #rpc::ServiceDescriptor {
                &#desc
            }

            #(#client_fns)*
        }

        #[doc(hidden)]
        static #methods_ident: [#rpc::MethodDescriptor; #count] = [#(#descs),*];
    }
}
