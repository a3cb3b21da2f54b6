//! Generated message types: owned, view and lazy decoding, re-encoding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isml_fuzz::messages::message_decode(data));
