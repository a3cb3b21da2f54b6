//! The front end: `.isml` text in, checked IR out.
//!
//! [`load`] reads the root files and their imports, `parse` turns text into
//! a pest parse tree (`grammar.pest`), `lower` into a spanned AST (`ast`),
//! `resolve` names, imports and attributes into the [IR](crate::ir), and
//! `check` validates the IR. [`source`] keeps the texts and spans,
//! [`diagnostic`] the errors, `suggest` the "did you mean" hints.

pub(crate) mod ast;
pub(crate) mod check;
pub mod diagnostic;
pub mod load;
pub(crate) mod lower;
pub(crate) mod parse;
pub(crate) mod resolve;
pub mod source;
pub(crate) mod suggest;
