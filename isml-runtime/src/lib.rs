//! The isml runtime.
#![warn(missing_docs)]
