//! Derive macros for isml messages.
#![warn(missing_docs)]
