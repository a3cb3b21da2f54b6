//! A real session over `mem://` fed the fuzzer's frames (see `isml_fuzz::session`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isml_fuzz::session::session(data));
