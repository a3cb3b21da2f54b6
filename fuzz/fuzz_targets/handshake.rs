//! The `hello` and `welcome` payloads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isml_fuzz::handshake::handshake(data));
