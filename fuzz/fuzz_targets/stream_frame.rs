//! Stream framing: `isml_wire::StreamDecoder` and the runtime's `StreamCodec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isml_fuzz::frames::stream_frame(data));
