//! Frames shared by the framing tests: every header form and payloads of chosen sizes.

use isml_runtime::wire::{ControlOp, FrameHeader};

/// One header of every form: each kind; type ids in the nibble (1, 15) and as a
/// varint (16, 2^32-1); one- and multi-byte correlation ids; with and without
/// SEQ and MORE; link frames with flags.
pub fn header_forms() -> Vec<FrameHeader> {
    let mut v = vec![
        FrameHeader::one_way(1),
        FrameHeader::one_way(15),
        FrameHeader::one_way(16),
        FrameHeader::one_way(u32::MAX),
        FrameHeader::request(2, 7),
        FrameHeader::request(300, u64::MAX),
        FrameHeader::response(4, 128),
        FrameHeader::error(300),
        FrameHeader::stream_item(5, 1),
        FrameHeader::stream_end(0),
        FrameHeader::cancel(9),
        FrameHeader::ack(),
        FrameHeader::control(ControlOp::Hello),
        FrameHeader::control(ControlOp::Welcome),
        FrameHeader::control(ControlOp::Ping),
        FrameHeader::control(ControlOp::Pong),
        FrameHeader::control(ControlOp::Close),
    ];
    v.extend([
        FrameHeader::one_way(3).with_seq(42),
        FrameHeader::request(20, 1).with_seq(5).with_more(true),
        FrameHeader::response(16, 300).with_more(true),
        FrameHeader::stream_item(u32::MAX, u64::MAX).with_seq(u64::MAX),
        FrameHeader::ack().with_seq(0),
        FrameHeader::control(ControlOp::Close).with_more(true),
    ]);
    v
}

/// A payload of `len` bytes; with `zeros`, every seventh byte is `00` (COBS
/// then has short blocks), otherwise no byte is (COBS has 254-byte blocks).
pub fn payload(len: usize, zeros: bool) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if zeros && i % 7 == 3 {
                0
            } else {
                (i % 251) as u8 + 1
            }
        })
        .collect()
}
