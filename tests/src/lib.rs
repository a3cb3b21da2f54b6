//! Integration tests for isml, and the support code they share.
//!
//! - [`values`]: the `value` test vectors' types compiled by the schema
//!   compiler, their values encoded and decoded by `isml_schema::dynamic`.
//! - [`corpus`]: frames of every header form, for the framing tests.
//! - [`vectors`]: loading the wire-format test-vector files and mapping their
//!   JSON to the runtime's types.
#![warn(missing_docs)]

pub mod corpus;
pub mod values;
pub mod vectors;
