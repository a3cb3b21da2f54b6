//! The isml schema compiler.
#![warn(missing_docs)]
