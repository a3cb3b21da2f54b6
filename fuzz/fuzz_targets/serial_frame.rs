//! Serial framing: COBS, CRC-32C, addressing, `SerialDecoder` and `SerialCodec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| isml_fuzz::frames::serial_frame(data));
