//! Property tests: every wire primitive and every header form round-trips, and
//! every `*_len` / `encoded_len` companion equals the bytes actually written.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use isml_runtime::wire::{
    Addressing, Class, ControlOp, ErrorBody, Frame, FrameHeader, FrameKind, PresenceWriter, Reader,
    SerialDecoder, SerialFrame, StreamDecoder, put_serial_frame, put_stream_frame,
    stream_frame_len, varint, write,
};
use proptest::prelude::*;

const CASES: u32 = 512;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(CASES)
}

/// Values that exercise every varint length, not just the (mostly 10-byte) uniform ones.
fn any_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        (0u32..64, any::<u64>()).prop_map(|(bits, v)| v >> bits),
        (0u32..64).prop_map(|s| 1u64 << s),
        (0u32..64).prop_map(|s| (1u64 << s) - 1),
    ]
}

fn any_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        (0u32..64, any::<i64>()).prop_map(|(bits, v)| v >> bits),
        Just(i64::MIN),
        Just(i64::MAX),
    ]
}

fn any_class() -> impl Strategy<Value = Class> {
    prop_oneof![
        Just(Class::Varint),
        Just(Class::Fixed32),
        Just(Class::Delimited)
    ]
}

fn any_kind() -> impl Strategy<Value = FrameKind> {
    prop_oneof![
        Just(FrameKind::OneWay),
        Just(FrameKind::Request),
        Just(FrameKind::Response),
        Just(FrameKind::Error),
        Just(FrameKind::StreamItem),
        Just(FrameKind::StreamEnd),
        Just(FrameKind::Cancel),
        Just(FrameKind::Ack),
        Just(FrameKind::Control(ControlOp::Hello)),
        Just(FrameKind::Control(ControlOp::Welcome)),
        Just(FrameKind::Control(ControlOp::Ping)),
        Just(FrameKind::Control(ControlOp::Pong)),
        Just(FrameKind::Control(ControlOp::Close)),
    ]
}

fn any_type_id() -> impl Strategy<Value = u32> {
    prop_oneof![1u32..=15, 16u32..=300, 1u32..=u32::MAX, Just(u32::MAX)]
}

/// A header in its canonical decoded form: fields a kind does not carry are 0.
fn any_header() -> impl Strategy<Value = FrameHeader> {
    (
        any_kind(),
        any_type_id(),
        any_u64(),
        proptest::option::of(any_u64()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(kind, type_id, correlation, seq, more, batch)| {
            let mut h = FrameHeader::ack();
            h.kind = kind;
            h.type_id = if kind.has_type_id() { type_id } else { 0 };
            h.correlation = if kind.has_correlation() {
                correlation
            } else {
                0
            };
            h.seq = seq;
            h.more = more;
            // BATCH exists on stream items only (§2.3).
            h.batch = batch && kind == FrameKind::StreamItem;
            h
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn uvarint_round_trips(v in any_u64()) {
        let mut out = Vec::new();
        write::uvarint(&mut out, v);
        prop_assert_eq!(out.len(), write::uvarint_len(v));
        prop_assert_eq!(out.len(), varint::len(v));
        prop_assert!(out.len() <= varint::MAX_VARINT_LEN);
        // LEB128: continuation bit on all bytes but the last, last byte non-zero unless v = 0.
        prop_assert!(out[..out.len() - 1].iter().all(|b| b & 0x80 != 0));
        prop_assert!(out[out.len() - 1] & 0x80 == 0);
        prop_assert!(out.len() == 1 || out[out.len() - 1] != 0);
        prop_assert_eq!(varint::get(&out, 7), Ok((v, out.len())));
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.uvarint(), Ok(v));
        prop_assert!(r.is_empty());
        // Followed by other bytes, exactly the varint is consumed.
        out.extend_from_slice(&[0xff, 0x00]);
        prop_assert_eq!(varint::get(&out, 0), Ok((v, out.len() - 2)));
    }

    #[test]
    fn svarint_round_trips(v in any_i64()) {
        let mut out = Vec::new();
        write::svarint(&mut out, v);
        prop_assert_eq!(out.len(), write::svarint_len(v));
        prop_assert_eq!(varint::get(&out, 0), Ok((varint::zigzag(v), out.len())));
        prop_assert_eq!(varint::unzigzag(varint::zigzag(v)), v);
        // Small magnitudes stay small: |v| < 64 takes one byte.
        prop_assert_eq!(out.len() == 1, (-64..64).contains(&v));
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.i64(), Ok(v));
        prop_assert!(r.is_empty());
    }

    #[test]
    fn narrow_integers_round_trip(v in any::<i32>(), u in any::<u32>()) {
        let mut out = Vec::new();
        write::svarint(&mut out, v.into());
        write::uvarint(&mut out, u.into());
        write::svarint(&mut out, (v as i16).into());
        write::uvarint(&mut out, (u as u16).into());
        write::svarint(&mut out, (v as i8).into());
        write::uvarint(&mut out, (u as u8).into());
        write::byte(&mut out, u as u8);
        write::byte(&mut out, v as i8 as u8);
        write::uvarint(&mut out, u64::from(u & 1));
        write::byte(&mut out, (v & 1) as u8);
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.i32(), Ok(v));
        prop_assert_eq!(r.u32(), Ok(u));
        prop_assert_eq!(r.i16(), Ok(v as i16));
        prop_assert_eq!(r.u16(), Ok(u as u16));
        prop_assert_eq!(r.i8_varint(), Ok(v as i8));
        prop_assert_eq!(r.u8_varint(), Ok(u as u8));
        prop_assert_eq!(r.u8(), Ok(u as u8));
        prop_assert_eq!(r.i8(), Ok(v as i8));
        prop_assert_eq!(r.bool_varint(), Ok(u & 1 == 1));
        prop_assert_eq!(r.bool(), Ok(v & 1 == 1));
        prop_assert!(r.is_empty());
    }

    #[test]
    fn f32_round_trips_bit_exact(bits in any::<u32>()) {
        let x = f32::from_bits(bits);
        let mut out = Vec::new();
        write::f32(&mut out, x);
        prop_assert_eq!(&out[..], &bits.to_le_bytes()[..]);
        prop_assert_eq!(Reader::new(&out).f32().map(f32::to_bits), Ok(bits));
        prop_assert_eq!(write::f32_is_default(x), bits == 0);
    }

    #[test]
    fn f64_round_trips_bit_exact(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        let mut out = Vec::new();
        write::f64(&mut out, x);
        prop_assert_eq!(&out[..], &bits.to_le_bytes()[..]);
        prop_assert_eq!(Reader::new(&out).f64().map(f64::to_bits), Ok(bits));
        prop_assert_eq!(write::f64_is_default(x), bits == 0);
    }

    #[test]
    fn nan_payloads_survive(payload in 1u32..(1 << 22), sign in any::<bool>(), payload64 in 1u64..(1 << 51)) {
        let bits = 0x7f80_0000 | payload | if sign { 0x8000_0000 } else { 0 };
        let mut out = Vec::new();
        write::f32(&mut out, f32::from_bits(bits));
        let back = Reader::new(&out).f32().unwrap();
        prop_assert!(back.is_nan());
        prop_assert_eq!(back.to_bits(), bits);
        let bits64 = 0x7ff0_0000_0000_0000 | payload64 | if sign { 1 << 63 } else { 0 };
        let mut out = Vec::new();
        write::f64(&mut out, f64::from_bits(bits64));
        prop_assert_eq!(Reader::new(&out).f64().map(f64::to_bits), Ok(bits64));
    }

    #[test]
    fn strings_round_trip(s in any::<String>(), tail in proptest::collection::vec(any::<u8>(), 0..4)) {
        let mut out = Vec::new();
        write::len_prefixed(&mut out, s.as_bytes());
        prop_assert_eq!(out.len(), write::delimited_len(s.len()));
        out.extend_from_slice(&tail);
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.str(), Ok(s.as_str()));
        prop_assert_eq!(r.remaining(), tail.len());
    }

    #[test]
    fn bytes_round_trip(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut out = Vec::new();
        write::len_prefixed(&mut out, &data);
        prop_assert_eq!(out.len(), write::delimited_len(data.len()));
        prop_assert_eq!(Reader::new(&out).byte_slice(), Ok(&data[..]));
        prop_assert_eq!(Reader::new(&out).bytes(), Ok(Bytes::from(data.clone())));
        // Zero-copy: from a `Bytes`, the result shares the input's storage.
        let shared = Bytes::from(out.clone());
        let got = Reader::from_bytes(&shared, &Default::default()).bytes().unwrap();
        prop_assert_eq!(&got[..], &data[..]);
        if !data.is_empty() {
            let start = shared.as_ptr() as usize;
            let at = got.as_ptr() as usize;
            prop_assert!(at >= start && at + got.len() <= start + shared.len(), "copied, not shared");
        }
        // Delimited content: a child reader over exactly the bytes.
        let mut r = Reader::new(&out);
        let mut c = r.delimited().unwrap();
        prop_assert!(r.is_empty());
        prop_assert_eq!(c.raw(data.len()), Ok(&data[..]));
        prop_assert_eq!(c.finish("content"), Ok(()));
        // Skipping class 3 moves past the same bytes; class_raw returns them whole.
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.class_raw(Class::Delimited), Ok(&out[..]));
    }

    #[test]
    fn presence_bitmaps_round_trip(fields in proptest::collection::btree_map(1u32..=255, any_class(), 0..40)) {
        let mut w = PresenceWriter::<64>::new();
        for (&tag, &class) in &fields {
            w.set(tag, class);
        }
        let mut out = Vec::new();
        w.encode(&mut out);
        prop_assert_eq!(out.len(), w.encoded_len());
        // The layout of §5.2, computed independently: P = sum of class << 2(t-1),
        // written 7 bits per byte, least significant first.
        let n = fields.keys().next_back().copied().unwrap_or(0);
        let mut bits = vec![false; 512];
        for (&tag, &class) in &fields {
            let i = 2 * (tag - 1) as usize;
            bits[i] = class as u8 & 1 == 1;
            bits[i + 1] = class as u8 & 2 == 2;
        }
        let significant = bits.iter().rposition(|&b| b).map_or(0, |i| i + 1);
        let groups = significant.div_ceil(7).max(1);
        let mut expected = Vec::new();
        for g in 0..groups {
            let v = (0..7).fold(0u8, |acc, k| acc | (u8::from(bits[7 * g + k]) << k));
            expected.push(if g + 1 < groups { v | 0x80 } else { v });
        }
        prop_assert_eq!(&out, &expected);
        let mut r = Reader::new(&out);
        let p = r.presence().unwrap();
        prop_assert_eq!(p.highest(), n);
        let got: BTreeMap<u32, Class> = p.collect();
        prop_assert_eq!(got, fields);
        prop_assert!(r.is_empty());
    }

    #[test]
    fn skipping_each_class(tag_values in proptest::collection::vec((any_class(), any_u64(), proptest::collection::vec(any::<u8>(), 0..20)), 1..8)) {
        // Unknown fields of every class are skipped by class alone (§6).
        let mut out = Vec::new();
        for (class, v, data) in &tag_values {
            match class {
                Class::Varint => write::uvarint(&mut out, *v),
                Class::Fixed32 => write::f32(&mut out, f32::from_bits(*v as u32)),
                _ => write::len_prefixed(&mut out, data),
            }
        }
        out.push(0xaa);
        let mut r = Reader::new(&out);
        for (class, _, _) in &tag_values {
            r.skip(*class).unwrap();
        }
        prop_assert_eq!(r.u8(), Ok(0xaa));
        prop_assert!(r.is_empty());
    }

    #[test]
    fn union_keys_round_trip(tag in prop_oneof![1u32..=255, any::<u32>()], class in any_class()) {
        let mut out = Vec::new();
        write::union_key(&mut out, tag, class);
        prop_assert_eq!(out.len(), write::union_key_len(tag));
        prop_assert_eq!(varint::get(&out, 0), Ok(((u64::from(tag) << 2) | class as u64, out.len())));
        let mut r = Reader::new(&out);
        prop_assert_eq!(r.union_key(), Ok((u64::from(tag), class)));
        prop_assert!(r.is_empty());
    }

    #[test]
    fn headers_round_trip(h in any_header()) {
        let mut out = Vec::new();
        h.encode(&mut out).unwrap();
        prop_assert_eq!(out.len(), h.encoded_len());
        prop_assert_eq!(FrameHeader::decode(&out), Ok((h, out.len())));
        // The lead byte: X, kind, nibble as in §2.1.
        let lead = out[0];
        prop_assert_eq!((lead >> 4) & 7, h.kind.code());
        prop_assert_eq!(lead & 0x80 != 0, h.seq.is_some() || h.more || h.batch);
        let nibble = lead & 0x0f;
        match h.kind {
            FrameKind::Control(op) => prop_assert_eq!(nibble, op.opcode()),
            k if k.has_type_id() && h.type_id < 16 => prop_assert_eq!(u32::from(nibble), h.type_id),
            _ => prop_assert_eq!(nibble, 0),
        }
        // With a payload after it, the header still ends where it did.
        out.extend_from_slice(&[0x00, 0xff]);
        prop_assert_eq!(FrameHeader::decode(&out), Ok((h, out.len() - 2)));
        // Every proper prefix of the header is too short.
        for cut in 0..h.encoded_len() {
            let truncated = FrameHeader::decode(&out[..cut]);
            prop_assert!(
                matches!(truncated, Err(isml_runtime::wire::DecodeError::UnexpectedEnd { .. })),
                "prefix {} of {:02x?}: {:?}", cut, &out[..h.encoded_len()], truncated
            );
        }
    }

    #[test]
    fn error_bodies_round_trip(code in any_u64(), message in any::<String>()) {
        let body = ErrorBody { code, message: &message };
        let mut out = Vec::new();
        body.encode(&mut out);
        prop_assert_eq!(out.len(), body.encoded_len());
        prop_assert_eq!(ErrorBody::decode(&out), Ok(body));
    }

    #[test]
    fn stream_frames_round_trip(
        frames in proptest::collection::vec((any_header(), proptest::collection::vec(any::<u8>(), 0..300)), 1..6),
    ) {
        let mut wire = BytesMut::new();
        for (h, payload) in &frames {
            let before = wire.len();
            put_stream_frame(&mut wire, h, payload, 1 << 20).unwrap();
            prop_assert_eq!(wire.len() - before, stream_frame_len(h, payload.len()));
            // The length prefix is the frame length minus one.
            let (l, n) = varint::get(&wire[before..], 0).unwrap();
            prop_assert_eq!(l as usize + 1, wire.len() - before - n);
            prop_assert_eq!(Frame::new(*h, payload.clone()).len(), l as usize + 1);
        }
        let mut dec = StreamDecoder::new(1 << 20);
        for (h, payload) in &frames {
            let f = dec.decode(&mut wire).unwrap().unwrap();
            prop_assert_eq!(f, Frame::new(*h, payload.clone()));
        }
        prop_assert_eq!(dec.decode(&mut wire), Ok(None));
        prop_assert!(wire.is_empty());
    }

    #[test]
    fn serial_frames_round_trip(
        h in any_header(),
        address in proptest::option::of(any::<u8>()),
        payload in proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..600),
    ) {
        let mut wire = BytesMut::new();
        put_serial_frame(&mut wire, address, &h, &payload, 4096).unwrap();
        // COBS: the only 00 is the delimiter at the end.
        prop_assert_eq!(wire.iter().position(|&b| b == 0), Some(wire.len() - 1));
        prop_assert!(wire.len() <= isml_runtime::wire::cobs_max_len(usize::from(address.is_some()) + h.encoded_len() + payload.len() + 4));
        let addressing = if address.is_some() { Addressing::Any } else { Addressing::None };
        let mut dec = SerialDecoder::new(4096, addressing);
        let got = dec.decode(&mut wire).unwrap();
        prop_assert_eq!(got, Some(SerialFrame { address, frame: Frame::new(h, payload.clone()) }));
        prop_assert!(wire.is_empty());
    }
}
