//! The text protocol: `LineCodec`, `Line`, `Command`, escaping.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isml_fuzz::text::text_line(data));
