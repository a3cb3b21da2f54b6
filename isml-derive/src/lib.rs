//! Derive macros for isml: `#[derive(Message)]`, `#[derive(Enum)]` and
//! `#[derive(Union)]`, and the `#[service]` attribute for rpc services
//! (`#[isml_runtime::service]`), used through `isml_runtime` (feature
//! `derive`, on by default), whose crate docs list every attribute.
//!
//! ```
//! use isml_runtime::descriptor::TypeRef;
//! use isml_runtime::{Message, TopLevel};
//!
//! #[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
//! #[isml(id = 1, package = "demo.v1")]
//! struct Reading {
//!     #[isml(tag = 2, range = 0..=500)]
//!     voltage: f32,
//!     #[isml(tag = 1)]
//!     slot: u8,
//!     #[isml(tag = 3)]
//!     history: Vec<Reading>,
//! }
//!
//! let r = Reading { slot: 3, voltage: 48.1, history: vec![Reading::default()] };
//! let bytes = r.encode_to_vec()?;
//! assert_eq!(Reading::decode_slice(&bytes)?, r);
//! // Fields go on the wire by tag, whatever their order in the struct.
//! assert_eq!(
//!     isml_runtime::descriptor::canonical_form(<Reading as TopLevel>::descriptor()),
//!     "#1message{1:u8;2:f32[range=0..=500];3:list<@0>;}"
//! );
//! let schema = isml_runtime::export_schema(&[TypeRef::of::<Reading>()])?;
//! assert!(schema.contains("package demo.v1;"));
//! assert!(schema.contains("history: list<Reading> = 3;"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! How it works: a derive lowers the Rust item into `isml-schema`'s IR (one
//! type, plus a placeholder for every other named type its fields mention),
//! runs the schema compiler's checks on it
//! ([`isml_schema::Schema::validate`]), and emits the impls through the same
//! code generator as `.isml` schemas
//! (`isml_schema::codegen::derive_impls`, hidden from the docs). So a derived type and the
//! schema-generated type of the equivalent schema encode identically and
//! have the same fingerprint: there is one encoder and decoder in the project.
//!
//! Errors are `syn` errors on the offending tokens, all reported at once
//! (the IR checks' diagnostics are mapped back to the attribute, type or
//! name they concern), and a failed derive still emits stand-in impls so
//! that one mistake does not cascade into trait-bound errors. Message ids
//! are checked within one derive only: one macro cannot see other types.
//!
//! `#[service]` on a trait does the same for a service: it reads each
//! method's signature as one of the five forms of an rpc, lowers the trait
//! into a `ServiceDef` (with placeholder request and response types),
//! checks it, and emits the trait, descriptor, server and client through
//! the schema generator's service emitters, so a derived service and the
//! schema service of the same definition have the same method fingerprints.
//!
//! Modules: `attr` parses `#[isml(...)]`, `lower` builds the IR and maps
//! diagnostics back to tokens, `expand` emits code, `ctxt` collects errors;
//! `service` is the service front end.
#![warn(missing_docs)]

mod attr;
mod ctxt;
mod expand;
mod lower;
mod service;

use proc_macro::TokenStream;

/// Derives `Message` (and `View`, `Viewable`, `Reflect`, the private `Wire`
/// encoding, and `TopLevel` when the type has an `id`) for a struct with named
/// fields. See `isml_runtime`'s crate docs.
#[proc_macro_derive(Message, attributes(isml))]
pub fn derive_message(input: TokenStream) -> TokenStream {
    expand::derive(input.into(), lower::Kind::Message).into()
}

/// Derives `Enum` (and `Default`, `Reflect` and the private `Wire` encoding)
/// for a fieldless enum with explicit values and an `#[isml(unknown)]`
/// catch-all variant. See `isml_runtime`'s crate docs.
#[proc_macro_derive(Enum, attributes(isml))]
pub fn derive_enum(input: TokenStream) -> TokenStream {
    expand::derive(input.into(), lower::Kind::Enum).into()
}

/// Derives `Message` for an enum of one-value variants encoded as a union
/// (and `Default`, a view type, `Reflect`, the private `Wire` encoding, and
/// `TopLevel` when the type has an `id`). See `isml_runtime`'s crate docs.
#[proc_macro_derive(Union, attributes(isml))]
pub fn derive_union(input: TokenStream) -> TokenStream {
    expand::derive(input.into(), lower::Kind::Union).into()
}

/// Turns a trait into an rpc service: the trait implementations write, as
/// generated for a schema `service`, plus its server (`NameServer<T>`), client
/// (`NameClient`) and descriptor. Arguments: `package = "a.b"` (default: the
/// crate name) and `name = "Name"` (the service's name on the wire; default:
/// the trait's). Each method is an `async fn` with `#[rpc(id = N)]` (and
/// optionally `name = "m"`, and `once` for the schema's `[once]`), whose
/// signature gives its form. See
/// `isml_runtime`'s crate docs.
#[proc_macro_attribute]
pub fn service(args: TokenStream, input: TokenStream) -> TokenStream {
    service::expand(args.into(), input.into()).into()
}
