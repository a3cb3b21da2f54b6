//! Serial framing on a noisy line (wire format §4): a corrupted frame is never
//! accepted, the decoder resynchronises on the next delimiter, oversized frames
//! are dropped, and frames for other nodes are filtered out.

use bytes::BytesMut;
use isml_runtime::wire::{
    Addressing, BROADCAST, DecodeError, Frame, FrameHeader, SerialDecoder, SerialFrame,
    cobs_max_len, put_serial_frame,
};
use isml_tests::corpus::payload;

const MAX: usize = 4096;

fn encode(address: Option<u8>, frame: &Frame, max: usize) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_serial_frame(&mut out, address, &frame.header, &frame.payload, max).unwrap();
    out.to_vec()
}

/// Everything the decoder makes of `input` (given in one piece or byte by byte).
fn decode_all(
    dec: &mut SerialDecoder,
    input: &[u8],
    byte_by_byte: bool,
) -> Vec<Result<SerialFrame, DecodeError>> {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut drain = |buf: &mut BytesMut| loop {
        match dec.decode(buf) {
            Ok(None) => break,
            Ok(Some(f)) => out.push(Ok(f)),
            Err(e) => out.push(Err(e)),
        }
    };
    if byte_by_byte {
        for &b in input {
            buf.extend_from_slice(&[b]);
            drain(&mut buf);
        }
    } else {
        buf.extend_from_slice(input);
        drain(&mut buf);
    }
    assert!(buf.is_empty(), "bytes left after the final delimiter");
    out
}

struct Case {
    address: Option<u8>,
    frame: Frame,
}

fn corpus() -> Vec<Case> {
    let mut v = Vec::new();
    for (address, h, len, zeros) in [
        (None, FrameHeader::one_way(3), 3, false),
        (None, FrameHeader::request(2, 7), 12, true),
        (Some(5), FrameHeader::one_way(3), 3, false),
        (Some(0), FrameHeader::response(300, 1 << 40), 20, true),
        (Some(BROADCAST), FrameHeader::ack().with_seq(9), 0, false),
        (
            None,
            FrameHeader::stream_item(16, 1).with_more(true),
            300,
            false,
        ),
        (Some(9), FrameHeader::one_way(1), 300, true),
    ] {
        v.push(Case {
            address,
            frame: Frame::new(h, payload(len, zeros)),
        });
    }
    // Payloads that are all zeros and that end in zeros: COBS of only short blocks.
    v.push(Case {
        address: None,
        frame: Frame::new(FrameHeader::one_way(2), vec![0u8; 9]),
    });
    v
}

fn addressing(address: Option<u8>) -> Addressing {
    if address.is_some() {
        Addressing::Any
    } else {
        Addressing::None
    }
}

#[test]
fn every_single_bit_flip_is_rejected_and_the_next_frame_survives() {
    let mut flips = 0;
    for case in corpus() {
        let encoded = encode(case.address, &case.frame, MAX);
        let good_frame = Frame::new(FrameHeader::request(4, 77), &b"next"[..]);
        let good = encode(case.address, &good_frame, MAX);
        let expected_good = SerialFrame {
            address: case.address,
            frame: good_frame.clone(),
        };
        for bit in 0..encoded.len() * 8 {
            let mut corrupted = encoded.clone();
            corrupted[bit / 8] ^= 1 << (bit % 8);
            let last = bit / 8 == encoded.len() - 1;
            let mut input = corrupted.clone();
            if last {
                // The delimiter itself was hit: the damaged frame now runs into
                // whatever follows. A sender flushes with a 00 before a frame
                // (§4) so that the next frame survives this too.
                input.push(0);
            }
            input.extend_from_slice(&good);
            for byte_by_byte in [false, true] {
                let mut dec = SerialDecoder::new(MAX, addressing(case.address));
                let out = decode_all(&mut dec, &input, byte_by_byte);
                let (frames, errors): (Vec<_>, Vec<_>) = out.into_iter().partition(Result::is_ok);
                let frames: Vec<SerialFrame> = frames.into_iter().map(Result::unwrap).collect();
                assert_eq!(
                    frames,
                    vec![expected_good.clone()],
                    "bit {bit} of {:02x?} accepted a frame it should not have",
                    encoded
                );
                assert!(
                    !errors.is_empty(),
                    "bit {bit} of {encoded:02x?}: corruption unreported"
                );
                for e in errors {
                    assert!(
                        matches!(e, Err(DecodeError::CorruptFrame { .. })),
                        "bit {bit} of {encoded:02x?}: {e:?}"
                    );
                }
            }
            flips += 1;
        }
    }
    assert!(flips > 5000, "only {flips} flips");
}

#[test]
fn garbage_before_a_frame() {
    let frame = Frame::new(FrameHeader::one_way(3), vec![1, 2, 3]);
    let good = encode(None, &frame, MAX);
    let expected = SerialFrame {
        address: None,
        frame: frame.clone(),
    };
    for garbage in [
        &[0x12u8, 0x34, 0x56][..],
        &[0xff; 40][..],
        &[0x05, 0x00, 0x07, 0x00][..],
        &[0x00, 0x00, 0x00][..],
        &[0x01][..],
    ] {
        // Flushed with a 00: the garbage is reported (or ignored if empty) and the frame decoded.
        let mut input = garbage.to_vec();
        input.push(0);
        input.extend_from_slice(&good);
        for byte_by_byte in [false, true] {
            let mut dec = SerialDecoder::new(MAX, Addressing::None);
            let out = decode_all(&mut dec, &input, byte_by_byte);
            assert_eq!(out.last(), Some(&Ok(expected.clone())), "{garbage:02x?}");
            assert!(
                out[..out.len() - 1]
                    .iter()
                    .all(|r| matches!(r, Err(DecodeError::CorruptFrame { .. }))),
                "{garbage:02x?}: {out:?}"
            );
        }
    }
    // Without the flush, non-empty garbage merges with the frame, which is lost;
    // the one after it is decoded.
    let mut input = vec![0x12, 0x34];
    input.extend_from_slice(&good);
    input.extend_from_slice(&good);
    let mut dec = SerialDecoder::new(MAX, Addressing::None);
    let out = decode_all(&mut dec, &input, false);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(matches!(out[0], Err(DecodeError::CorruptFrame { .. })));
    assert_eq!(out[1], Ok(expected));
}

#[test]
fn oversized_frames_are_dropped_then_decoding_recovers() {
    let max = 64;
    let good_frame = Frame::new(FrameHeader::one_way(1), vec![7; 10]);
    let good = encode(None, &good_frame, max);
    let expected = Ok(SerialFrame {
        address: None,
        frame: good_frame,
    });

    // Far too long, with and without zeros: dropped by length alone.
    for zeros in [false, true] {
        let big = Frame::new(FrameHeader::one_way(1), payload(500, zeros));
        let mut input = encode(None, &big, usize::MAX);
        input.extend_from_slice(&good);
        for byte_by_byte in [false, true] {
            let mut dec = SerialDecoder::new(max, Addressing::None);
            let out = decode_all(&mut dec, &input, byte_by_byte);
            assert_eq!(
                out.len(),
                2,
                "zeros {zeros}, byte by byte {byte_by_byte}: {out:?}"
            );
            assert!(
                matches!(out[0], Err(DecodeError::FrameTooLarge { max: 64, .. })),
                "{:?}",
                out[0]
            );
            assert_eq!(out[1], expected);
        }
    }

    // One byte over the limit: the COBS block still fits the encoded bound, so
    // the decoded length is what is refused, and it is reported exactly.
    let over = Frame::new(FrameHeader::one_way(1), payload(max, false));
    assert_eq!(over.len(), max + 1);
    let mut input = encode(None, &over, usize::MAX);
    assert!(input.len() - 1 <= cobs_max_len(max + 5));
    input.extend_from_slice(&good);
    let mut dec = SerialDecoder::new(max, Addressing::None);
    let out = decode_all(&mut dec, &input, false);
    assert_eq!(
        out,
        vec![
            Err(DecodeError::FrameTooLarge {
                len: max as u64 + 1,
                max
            }),
            expected.clone()
        ]
    );

    // Exactly at the limit: accepted.
    let at = Frame::new(FrameHeader::one_way(1), payload(max - 1, true));
    let mut dec = SerialDecoder::new(max, Addressing::None);
    let out = decode_all(&mut dec, &encode(None, &at, max), true);
    assert_eq!(
        out,
        vec![Ok(SerialFrame {
            address: None,
            frame: at
        })]
    );

    // A long run of noise without any 00 does not grow the buffer without bound.
    let mut dec = SerialDecoder::new(max, Addressing::None);
    let mut buf = BytesMut::new();
    let mut errors = 0;
    for _ in 0..100 {
        buf.extend_from_slice(&[0x55; 100]);
        match dec.decode(&mut buf) {
            Ok(None) => {}
            Err(DecodeError::FrameTooLarge { max: 64, .. }) => errors += 1,
            other => panic!("{other:?}"),
        }
        assert!(
            buf.len() <= cobs_max_len(max + 5) + 100,
            "buffered {}",
            buf.len()
        );
    }
    assert_eq!(errors, 1, "reported once per oversized frame");
    buf.extend_from_slice(&[0]);
    buf.extend_from_slice(&good);
    assert_eq!(dec.decode(&mut buf).map(Option::unwrap), expected);
}

#[test]
fn address_filtering() {
    let frame_for = |a: u8| Frame::new(FrameHeader::one_way(1), vec![a]);
    let addresses = [7u8, 5, BROADCAST, 0, 6, 5, 4];
    let mut input = Vec::new();
    for a in addresses {
        input.extend_from_slice(&encode(Some(a), &frame_for(a), MAX));
    }
    for byte_by_byte in [false, true] {
        // Node 5 takes its own frames and broadcasts, silently drops the rest.
        let mut dec = SerialDecoder::new(MAX, Addressing::Node(5));
        let out = decode_all(&mut dec, &input, byte_by_byte);
        let expected: Vec<_> = [5u8, BROADCAST, 5]
            .into_iter()
            .map(|a| {
                Ok(SerialFrame {
                    address: Some(a),
                    frame: frame_for(a),
                })
            })
            .collect();
        assert_eq!(out, expected);
        // A bus master takes all of them.
        let mut dec = SerialDecoder::new(MAX, Addressing::Any);
        let out = decode_all(&mut dec, &input, byte_by_byte);
        assert_eq!(out.len(), addresses.len());
        for (got, a) in out.iter().zip(addresses) {
            assert_eq!(got.as_ref().map(|f| f.address), Ok(Some(a)));
        }
    }
    // A point-to-point receiver reads the address byte as part of the frame, so
    // the CRC still passes but the "lead byte" is the address: 05 is one-way type 5.
    let mut dec = SerialDecoder::new(MAX, Addressing::None);
    let out = decode_all(&mut dec, &encode(Some(5), &frame_for(5), MAX), false);
    assert_eq!(
        out,
        vec![Ok(SerialFrame {
            address: None,
            frame: Frame::new(FrameHeader::one_way(5), vec![0x01, 5]),
        })]
    );
}

#[test]
fn frames_shorter_than_address_lead_and_crc_are_corrupt() {
    // COBS-valid blocks of 0 ..= 5 bytes: too short with an address (needs 6),
    // too short without one below 5 bytes.
    for len in 0..=5usize {
        let raw: Vec<u8> = (1..=len as u8).collect();
        let mut block = vec![len as u8 + 1];
        block.extend_from_slice(&raw);
        block.push(0);
        let mut dec = SerialDecoder::new(MAX, Addressing::Any);
        let out = decode_all(&mut dec, &block, false);
        assert!(
            matches!(out[..], [Err(DecodeError::CorruptFrame { .. })]),
            "{len}: {out:?}"
        );
    }
}
