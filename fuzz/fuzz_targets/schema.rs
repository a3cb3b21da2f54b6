//! The schema compiler from source text, the formatter and the code generator.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isml_fuzz::schema::schema(data));
