//! The isml runtime.
//!
//! - [`wire`]: the wire format v1 codec core (no I/O, no tokio).
//! - [`codec`]: tokio-util `Decoder`/`Encoder` framing for streams and serial lines
//!   (feature `codec`).
#![warn(missing_docs)]

extern crate alloc;

#[cfg(feature = "codec")]
pub mod codec;
pub mod wire;
