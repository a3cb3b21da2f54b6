//! Derive macros for isml: `#[derive(Message)]`, `#[derive(Enum)]` and
//! `#[derive(Union)]`. Use them through `isml_runtime` (feature `derive`, on
//! by default), which documents them with examples.
//!
//! A derive lowers the Rust item into `isml-schema`'s IR, runs the schema
//! compiler's checks on it ([`isml_schema::Schema::validate`]), and emits the
//! impls through the same code generator as `.isml` schemas: a derived type
//! and the schema-generated type for the equivalent schema encode
//! identically and have the same fingerprint.
//!
//! Modules: [`attr`](mod@attr) parses `#[isml(...)]`, `lower` builds the
//! IR and maps the checks' diagnostics back to tokens, `expand` emits code
//! (or, after an error, the errors and fallback impls), `ctxt` collects
//! errors so that all of them are reported at once.
#![warn(missing_docs)]

mod attr;
mod ctxt;
mod expand;
mod lower;

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
