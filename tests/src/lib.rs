//! Integration tests for isml, and the support code they share.
//!
//! - [`dynamic`]: a type-driven codec for JSON values, built from the
//!   `isml_runtime::wire` primitives, that checks the `value` test vectors.
//! - [`corpus`]: frames of every header form, for the framing tests.
//! - [`vectors`]: loading the wire-format test-vector files and mapping their
//!   JSON to the runtime's types.
#![warn(missing_docs)]

pub mod corpus;
pub mod dynamic;
pub mod vectors;
