//! What the fuzz targets check, one module per target, so that the targets
//! in `fuzz_targets/` stay one line each and the checks can also be run
//! over the stored corpora by `cargo test` (`tests/corpora.rs`).
//!
//! Every check is a property that must hold for *any* input: it returns
//! normally when it holds and panics (which libFuzzer records as a crash)
//! when it does not. Bad input is expected to be refused with an error;
//! only a panic, a hang, or a wrong answer is a finding.

pub mod frames;
pub mod handshake;
pub mod messages;
pub mod schema;
pub mod session;
pub mod text;
