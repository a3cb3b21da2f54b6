//! Hostile input: every malformed form gives its exact typed error, without a
//! large allocation and without a stack overflow.

use bytes::BytesMut;
use isml_runtime::wire::{
    CallHeader, Class, ControlOp, DecodeError, ErrorBody, FrameHeader, Limits, Reader,
    StreamDecoder, cobs_decode, varint, write,
};
use isml_schema::dynamic::DecodeErrorKind;
use isml_tests::values::VectorType;
use serde_json::json;

fn uvarint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    write::uvarint(&mut out, v);
    out
}

// ------------------------------------------------------------------ varints

#[test]
fn overlong_and_overflowing_varints() {
    let mut eleven = vec![0xff; 10];
    eleven.push(0x00);
    assert_eq!(
        varint::get(&eleven, 3),
        Err(DecodeError::VarintOverflow { at: 3 })
    );
    assert_eq!(
        Reader::new(&eleven).uvarint(),
        Err(DecodeError::VarintOverflow { at: 0 })
    );
    // Ten bytes all with the continuation bit: overflow, not "need more".
    assert_eq!(
        varint::get(&[0x80; 10], 0),
        Err(DecodeError::VarintOverflow { at: 0 })
    );
    // A tenth byte above 1 is a value above 2^64-1.
    for tenth in [0x02u8, 0x03, 0x40, 0x7f] {
        let mut ten = vec![0xff; 9];
        ten.push(tenth);
        assert_eq!(
            varint::get(&ten, 0),
            Err(DecodeError::VarintOverflow { at: 0 }),
            "{tenth:#x}"
        );
    }
    let mut max = vec![0xff; 9];
    max.push(0x01);
    assert_eq!(varint::get(&max, 0), Ok((u64::MAX, 10)));
    // Inside a reader, the offset is where the varint starts.
    let mut r = Reader::new(&[
        0x05, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
    ]);
    assert_eq!(r.uvarint(), Ok(5));
    assert_eq!(r.uvarint(), Err(DecodeError::VarintOverflow { at: 1 }));
}

#[test]
fn non_canonical_varints() {
    for bad in [
        &[0x80u8, 0x00][..],
        &[0xff, 0x00],
        &[0x80, 0x80, 0x00],
        &[0x81, 0x80, 0x80, 0x00],
    ] {
        assert_eq!(
            varint::get(bad, 9),
            Err(DecodeError::NonCanonicalVarint { at: 9 }),
            "{bad:02x?}"
        );
    }
    // Non-canonical zero-padded u64::MAX in 10 bytes is impossible; a padded 2^63 is.
    let mut padded = vec![0x80; 9];
    padded.push(0x00);
    assert_eq!(
        varint::get(&padded, 0),
        Err(DecodeError::NonCanonicalVarint { at: 0 })
    );
}

#[test]
fn truncated_varints() {
    assert_eq!(
        varint::get(&[], 4),
        Err(DecodeError::UnexpectedEnd { at: 4, needed: 1 })
    );
    assert_eq!(
        varint::get(&[0x80, 0x80, 0x80], 4),
        Err(DecodeError::UnexpectedEnd { at: 7, needed: 1 })
    );
    // A reader's region ends the varint even when the buffer goes on.
    let buf = [0x80, 0x01];
    let mut r = Reader::new(&buf);
    let mut c = r.sub(1).unwrap();
    assert_eq!(
        c.uvarint(),
        Err(DecodeError::UnexpectedEnd { at: 1, needed: 1 })
    );
    assert_eq!(Reader::new(&buf).uvarint(), Ok(128));
}

/// A reader method with its value dropped.
type ReadFn = fn(&mut Reader<'_>) -> Result<(), DecodeError>;

#[test]
fn integers_out_of_range() {
    let cases: [(u64, ReadFn, &str); 4] = [
        (256, |r| r.u8_varint().map(drop), "u8"),
        (65_536, |r| r.u16().map(drop), "u16"),
        (1 << 32, |r| r.u32().map(drop), "u32"),
        (u64::MAX, |r| r.u32().map(drop), "u32"),
    ];
    for (v, read, ty) in cases {
        let bytes = uvarint(v);
        assert_eq!(
            read(&mut Reader::new(&bytes)),
            Err(DecodeError::IntegerOutOfRange {
                at: 0,
                value: v,
                ty
            }),
        );
    }
    // Signed: the zigzag value is reported.
    for (n, ty) in [
        (128i64, "i8"),
        (-129, "i8"),
        (32_768, "i16"),
        (-32_769, "i16"),
        (1 << 31, "i32"),
        (-(1 << 31) - 1, "i32"),
    ] {
        let z = varint::zigzag(n);
        let bytes = uvarint(z);
        let got = match ty {
            "i8" => Reader::new(&bytes).i8_varint().map(i64::from),
            "i16" => Reader::new(&bytes).i16().map(i64::from),
            _ => Reader::new(&bytes).i32().map(i64::from),
        };
        assert_eq!(
            got,
            Err(DecodeError::IntegerOutOfRange {
                at: 0,
                value: z,
                ty
            }),
            "{n}"
        );
    }
    // And the bounds themselves are fine.
    assert_eq!(
        Reader::new(&uvarint(varint::zigzag(-128))).i8_varint(),
        Ok(-128)
    );
    assert_eq!(Reader::new(&uvarint(u32::MAX.into())).u32(), Ok(u32::MAX));
}

#[test]
fn invalid_bools() {
    assert_eq!(
        Reader::new(&[0x02]).bool(),
        Err(DecodeError::InvalidBool { at: 0, value: 2 })
    );
    assert_eq!(
        Reader::new(&[0xff]).bool(),
        Err(DecodeError::InvalidBool { at: 0, value: 255 })
    );
    assert_eq!(
        Reader::new(&[0x80, 0x01]).bool_varint(),
        Err(DecodeError::InvalidBool { at: 0, value: 128 })
    );
}

// ------------------------------------------------------------------ lengths

#[test]
fn lengths_past_the_end() {
    let mut bytes = uvarint(5);
    bytes.extend_from_slice(b"abc");
    let expected: Result<(), _> = Err(DecodeError::LengthOutOfBounds {
        at: 0,
        len: 5,
        remaining: 3,
    });
    assert_eq!(Reader::new(&bytes).len().map(drop), expected);
    assert_eq!(Reader::new(&bytes).str().map(drop), expected);
    assert_eq!(Reader::new(&bytes).byte_slice().map(drop), expected);
    assert_eq!(Reader::new(&bytes).bytes().map(drop), expected);
    assert_eq!(Reader::new(&bytes).delimited().map(drop), expected);
    assert_eq!(Reader::new(&bytes).skip(Class::Delimited), expected);
    assert_eq!(Reader::new(&bytes).fixed_list(1).map(drop), expected);
    // A child region bounds its lengths, even though the buffer is longer.
    let mut outer = uvarint(2);
    outer.extend_from_slice(&[0x03, 0x61, 0x62, 0x63]);
    let mut r = Reader::new(&outer);
    let mut c = r.delimited().unwrap();
    assert_eq!(
        c.str(),
        Err(DecodeError::LengthOutOfBounds {
            at: 1,
            len: 3,
            remaining: 1
        })
    );
}

#[test]
fn huge_lengths_are_rejected_before_anything_is_allocated() {
    // `Reader::len` compares the declared length with the bytes remaining and
    // returns: no read, no allocation, whatever the number.
    for len in [u64::from(u32::MAX), 1 << 40, u64::MAX] {
        let mut bytes = uvarint(len);
        bytes.extend_from_slice(b"xy");
        let expected: Result<(), _> = Err(DecodeError::LengthOutOfBounds {
            at: 0,
            len,
            remaining: 2,
        });
        assert_eq!(Reader::new(&bytes).len().map(drop), expected);
        assert_eq!(Reader::new(&bytes).str().map(drop), expected);
        assert_eq!(Reader::new(&bytes).bytes().map(drop), expected);
        assert_eq!(Reader::new(&bytes).delimited().map(drop), expected);
        assert_eq!(
            Reader::new(&bytes).class_raw(Class::Delimited).map(drop),
            expected
        );
    }
}

#[test]
fn stream_decoder_rejects_huge_lengths_without_reserving() {
    for (l, max) in [
        (1u64 << 40, 1 << 20),
        (u64::MAX, 1 << 20),
        (u64::from(u32::MAX), 1 << 20),
        (1 << 20, 1 << 20),
        (16, 16),
    ] {
        let mut buf = BytesMut::with_capacity(64);
        write::uvarint(&mut buf, l);
        buf.extend_from_slice(&[0x01, 0x02]);
        let capacity = buf.capacity();
        let mut dec = StreamDecoder::new(max);
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::FrameTooLarge {
                len: l.saturating_add(1),
                max
            }),
            "L = {l}"
        );
        assert_eq!(buf.capacity(), capacity, "L = {l}: buffer grew");
        assert!(buf.capacity() < 1024);
    }
    // L + 1 = max is accepted: room is reserved for exactly the frame.
    let mut buf = BytesMut::new();
    write::uvarint(&mut buf, 15);
    buf.extend_from_slice(&[0x01]);
    let mut dec = StreamDecoder::new(16);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(buf.capacity() >= 16);
}

#[test]
fn stream_decoder_length_prefix_errors() {
    let mut dec = StreamDecoder::new(1 << 20);
    let mut buf = BytesMut::from(&[0x80u8, 0x00, 0x01][..]);
    assert_eq!(
        dec.decode(&mut buf),
        Err(DecodeError::NonCanonicalVarint { at: 0 })
    );
    let mut buf = BytesMut::from(&[0xffu8; 11][..]);
    assert_eq!(
        StreamDecoder::new(1 << 20).decode(&mut buf),
        Err(DecodeError::VarintOverflow { at: 0 })
    );
    // A header that does not fit its frame: L = 0, lead byte of a request.
    let mut buf = BytesMut::from(&[0x00u8, 0x12][..]);
    assert_eq!(
        StreamDecoder::new(1 << 20).decode(&mut buf),
        Err(DecodeError::UnexpectedEnd { at: 1, needed: 1 })
    );
}

#[test]
fn invalid_utf8() {
    for (bytes, at) in [
        (&[0x02u8, 0xc3, 0x28][..], 1),
        (&[0x02, 0xc0, 0x80], 1),       // overlong NUL
        (&[0x03, 0xed, 0xa0, 0x80], 1), // UTF-16 surrogate
        (&[0x01, 0xff], 1),
        (&[0x02, 0xe2, 0x82], 1), // truncated sequence at the end of the string
    ] {
        assert_eq!(
            Reader::new(bytes).str(),
            Err(DecodeError::InvalidUtf8 { at }),
            "{bytes:02x?}"
        );
    }
    // The error body message is a string too.
    assert_eq!(
        ErrorBody::decode(&[0x02, 0x01, 0xff]),
        Err(DecodeError::InvalidUtf8 { at: 2 })
    );
}

#[test]
fn ragged_fixed_lists() {
    assert_eq!(
        Reader::new(&[0x03, 0, 0, 0]).fixed_list(4),
        Err(DecodeError::RaggedList {
            at: 0,
            len: 3,
            width: 4
        })
    );
    assert_eq!(
        Reader::new(&[0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0]).fixed_list(8),
        Err(DecodeError::RaggedList {
            at: 0,
            len: 9,
            width: 8
        })
    );
    assert_eq!(
        Reader::new(&[0x08, 1, 2, 3, 4, 5, 6, 7, 8]).fixed_list(4),
        Ok(&[1, 2, 3, 4, 5, 6, 7, 8][..])
    );
}

// ------------------------------------------------------------------ nesting

/// `uvarint(len) content` nested `levels` deep around an empty innermost content.
fn nested_delimited(levels: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 0..levels {
        let mut outer = uvarint(body.len() as u64);
        outer.append(&mut body);
        body = outer;
    }
    body
}

#[test]
fn reader_depth_limit() {
    let bytes = nested_delimited(10_000);
    let mut r = Reader::new(&bytes);
    let mut entered = 0;
    let err = loop {
        match r.delimited() {
            Ok(child) => {
                r = child;
                entered += 1;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(entered, 32, "levels below the top");
    assert!(
        matches!(err, DecodeError::DepthExceeded { max: 32, .. }),
        "{err:?}"
    );
    // A configured limit is honoured.
    let mut r = Reader::with_limits(
        &bytes,
        &Limits {
            max_frame: 1 << 20,
            max_depth: 3,
        },
    );
    for _ in 0..3 {
        r = r.delimited().unwrap();
    }
    assert!(matches!(
        r.delimited(),
        Err(DecodeError::DepthExceeded { max: 3, .. })
    ));
    // `sub` counts the same way.
    let mut r = Reader::with_limits(
        &[0; 8],
        &Limits {
            max_frame: 1 << 20,
            max_depth: 2,
        },
    );
    let mut c = r.sub(4).unwrap();
    let mut d = c.sub(2).unwrap();
    assert!(matches!(
        d.sub(1),
        Err(DecodeError::DepthExceeded { max: 2, .. })
    ));
}

/// A recursive message `Node { next: optional<Node> = 1 }` nested `levels` deep,
/// built without recursion (lengths first, then bytes from the top).
fn node_chain(levels: usize) -> Vec<u8> {
    let mut lens = vec![1usize]; // innermost body: `00`
    for _ in 0..levels {
        let inner = *lens.last().unwrap();
        lens.push(1 + write::delimited_len(inner));
    }
    let mut out = Vec::with_capacity(lens[levels]);
    for k in (1..=levels).rev() {
        out.push(0x03); // presence: tag 1, class 3
        write::uvarint(&mut out, lens[k - 1] as u64);
    }
    out.push(0x00);
    assert_eq!(out.len(), lens[levels]);
    out
}

/// `L { items: list<L> = 1 }` nested `levels` deep: each level is a message
/// holding a one-element list.
fn list_chain(levels: usize) -> Vec<u8> {
    let mut lens = vec![1usize];
    for _ in 0..levels {
        let body = *lens.last().unwrap();
        let list_content = write::delimited_len(body);
        lens.push(1 + write::delimited_len(list_content));
    }
    let mut out = Vec::with_capacity(lens[levels]);
    for k in (1..=levels).rev() {
        out.push(0x03); // presence: tag 1, class 3
        write::uvarint(&mut out, write::delimited_len(lens[k - 1]) as u64);
        write::uvarint(&mut out, lens[k - 1] as u64);
    }
    out.push(0x00);
    assert_eq!(out.len(), lens[levels]);
    out
}

#[test]
fn nesting_bombs_give_depth_exceeded_not_a_stack_overflow() {
    let types = json!({
        "Node": {"message": {"id": null, "fields": [{"name": "next", "tag": 1, "type": "optional<Node>"}]}},
        "L": {"message": {"id": null, "fields": [{"name": "items", "tag": 1, "type": "list<L>"}]}},
        "U": {"union": {"id": null, "variants": [{"name": "u", "tag": 1, "type": "list<U>"}, {"name": "end", "tag": 2, "type": "u8"}]}}
    });
    let depth_exceeded = |r: Result<_, isml_schema::dynamic::DecodeError>| match r {
        Err(e) => e.kind() == DecodeErrorKind::DepthExceeded,
        Ok(_) => false,
    };
    let node = VectorType::new(&types, "Node").unwrap();
    let err = node.decode(&node_chain(10_000)).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::DepthExceeded, "{err}");
    assert!(err.reason().contains("32 levels"), "{err}");
    // The limit is the spec's: level 32 decodes, level 33 does not.
    assert!(node.decode(&node_chain(32)).is_ok());
    assert!(depth_exceeded(node.decode(&node_chain(33))));

    let l = VectorType::new(&types, "L").unwrap();
    assert!(depth_exceeded(l.decode(&list_chain(10_000))));
    assert!(l.decode(&list_chain(16)).is_ok());

    // A union holding itself (through a list, as the schema language requires
    // of recursion): key 07 (tag 1, class 3), the list's length, then the one
    // element, the nested union.
    let u = VectorType::new(&types, "U").unwrap();
    let mut bytes = vec![0x08, 0x05]; // innermost: variant `end` = 5
    for _ in 0..10_000 {
        let mut outer = vec![0x07];
        write::uvarint(&mut outer, bytes.len() as u64);
        outer.append(&mut bytes);
        bytes = outer;
    }
    assert!(depth_exceeded(u.decode(&bytes)));

    // Nested list types: the type is finite, the bytes nest as deep as it does.
    let deep = "list<".repeat(40) + "u8" + &">".repeat(40);
    let ty = VectorType::new(&types, &deep).unwrap();
    assert!(depth_exceeded(ty.decode(&nested_delimited(40))));
    // And a type string nested 10,000 deep is refused by the compiler, not by the stack.
    let bomb = "list<".repeat(10_000) + "u8" + &">".repeat(10_000);
    assert!(VectorType::new(&types, &bomb).is_err());
}

// ------------------------------------------------------------------ headers

#[test]
fn reserved_flags() {
    // Bit 2 is CALL on requests (§2.3, §2.7) and reserved on every other kind.
    for flags in [0x04u8, 0x08, 0x10, 0x20, 0x40, 0x80, 0x05, 0xff] {
        for lead in [0x83u8, 0x90, 0xf0, 0xb0, 0xf7] {
            if lead == 0x90 && flags & !0x07 == 0 {
                continue;
            }
            assert_eq!(
                FrameHeader::decode(&[lead, flags, 0x01, 0x01, 0x01]),
                Err(DecodeError::ReservedFlags { at: 1, flags }),
                "{lead:#x} {flags:#x}"
            );
        }
    }
    // Bit 3 is BATCH on stream items and reserved on every other kind
    // (the leads above); on a stream item, the bits above it and CALL are.
    for flags in [0x04u8, 0x0c, 0x10, 0x18, 0x88, 0xff] {
        assert_eq!(
            FrameHeader::decode(&[0xc5, flags, 0x01, 0x01, 0x01]),
            Err(DecodeError::ReservedFlags { at: 1, flags }),
            "{flags:#x}"
        );
    }
    assert_eq!(
        FrameHeader::decode(&[0xc5, 0x08, 0x01]).map(|(h, n)| (h.batch, h.more, n)),
        Ok((true, false, 3))
    );
    assert_eq!(
        FrameHeader::decode(&[0xc5, 0x0b, 0x01, 0x07]).map(|(h, n)| (h.batch, h.more, h.seq, n)),
        Ok((true, true, Some(7), 4))
    );
    // On a request, CALL (alone or with SEQ) is a flag, not an error.
    assert_eq!(
        FrameHeader::decode(&[0x94, 0x04, 0x03, 0x01, 0x02, 0x00]).map(|(h, n)| (h.call, n)),
        Ok((
            Some(CallHeader {
                service: 1,
                method: 2,
                deadline_ms: 0
            }),
            6
        ))
    );
    assert!(FrameHeader::decode(&[0x94, 0x05, 0x03, 0x09, 0x01, 0x02, 0x00]).is_ok());
}

#[test]
fn batch_is_encoded_on_stream_items_only() {
    let mut out = Vec::new();
    FrameHeader::stream_batch(24, 1).encode(&mut out).unwrap();
    assert_eq!(out, [0xc0, 0x08, 0x18, 0x01]);
    for mut h in [
        FrameHeader::one_way(3),
        FrameHeader::request(3, 1),
        FrameHeader::response(3, 1),
        FrameHeader::stream_end(1),
        FrameHeader::control(ControlOp::Credit),
    ] {
        h.batch = true;
        assert!(h.validate().is_err(), "{h:?}");
        assert!(h.encode(&mut Vec::new()).is_err(), "{h:?}");
    }
}

#[test]
fn extension_byte_zero() {
    assert!(matches!(
        FrameHeader::decode(&[0x83, 0x00]),
        Err(DecodeError::NonCanonicalHeader { at: 1, .. })
    ));
    assert!(matches!(
        FrameHeader::decode(&[0xf0, 0x00, 0x05]),
        Err(DecodeError::NonCanonicalHeader { at: 1, .. })
    ));
}

#[test]
fn type_ids_written_wrongly() {
    for kind in [0x00u8, 0x10, 0x20, 0x40] {
        for id in 1..16u8 {
            assert!(
                matches!(
                    FrameHeader::decode(&[kind, id, 0x01]),
                    Err(DecodeError::NonCanonicalHeader { at: 1, .. })
                ),
                "kind {kind:#x} id {id}"
            );
        }
        assert_eq!(
            FrameHeader::decode(&[kind, 0x00, 0x01]),
            Err(DecodeError::InvalidTypeId { at: 1, value: 0 })
        );
        for big in [1u64 << 32, u64::MAX] {
            let mut h = vec![kind];
            h.extend_from_slice(&uvarint(big));
            h.push(0x01);
            assert_eq!(
                FrameHeader::decode(&h),
                Err(DecodeError::InvalidTypeId { at: 1, value: big })
            );
        }
        // After an extension byte the offset moves by one.
        assert_eq!(
            FrameHeader::decode(&[0x80 | kind, 0x02, 0x00, 0x01]),
            Err(DecodeError::InvalidTypeId { at: 2, value: 0 })
        );
        // A non-canonical varint type id is a varint error.
        assert_eq!(
            FrameHeader::decode(&[kind, 0x90, 0x00, 0x01]),
            Err(DecodeError::NonCanonicalVarint { at: 1 })
        );
    }
    // Encoding refuses type id 0 on kinds that carry a message.
    let mut out = Vec::new();
    assert!(FrameHeader::one_way(0).encode(&mut out).is_err());
    assert!(FrameHeader::request(0, 1).validate().is_err());
    assert!(out.is_empty());
}

#[test]
fn unknown_link_opcodes() {
    // Opcode 7 is credit (§2.7), 8 ..= 11 the publish/subscribe frames
    // (§2.8); 6 and 12 ..= 15 are reserved.
    assert_eq!(
        FrameHeader::decode(&[0x77]),
        Ok((FrameHeader::control(ControlOp::Credit), 1))
    );
    for opcode in [6u8].into_iter().chain(12..16) {
        assert_eq!(
            FrameHeader::decode(&[0x70 | opcode]),
            Err(DecodeError::UnknownLinkOpcode { at: 0, opcode })
        );
        assert_eq!(
            FrameHeader::decode(&[0xf0 | opcode, 0x01, 0x00]),
            Err(DecodeError::UnknownLinkOpcode { at: 0, opcode })
        );
    }
    for opcode in 8..12u8 {
        let (h, _) = FrameHeader::decode(&[0x70 | opcode]).expect("a pub/sub opcode");
        assert!(
            matches!(h.kind, isml_runtime::wire::FrameKind::Control(op) if op.opcode() == opcode)
        );
    }
}

#[test]
fn nibble_must_be_zero_on_error_stream_end_and_cancel() {
    for kind in [0x30u8, 0x50, 0x60] {
        for nibble in 1..16u8 {
            assert!(
                matches!(
                    FrameHeader::decode(&[kind | nibble, 0x01]),
                    Err(DecodeError::NonCanonicalHeader { at: 0, .. })
                ),
                "{:#x}",
                kind | nibble
            );
        }
        assert!(FrameHeader::decode(&[kind, 0x01]).is_ok());
    }
}

#[test]
fn truncated_headers() {
    assert_eq!(
        FrameHeader::decode(&[]),
        Err(DecodeError::UnexpectedEnd { at: 0, needed: 1 })
    );
    assert_eq!(
        FrameHeader::decode(&[0x83]),
        Err(DecodeError::UnexpectedEnd { at: 1, needed: 1 })
    );
    assert_eq!(
        FrameHeader::decode(&[0x00]),
        Err(DecodeError::UnexpectedEnd { at: 1, needed: 1 })
    );
    assert_eq!(
        FrameHeader::decode(&[0x12]),
        Err(DecodeError::UnexpectedEnd { at: 1, needed: 1 })
    );
    assert_eq!(
        FrameHeader::decode(&[0x92, 0x01, 0x07]),
        Err(DecodeError::UnexpectedEnd { at: 3, needed: 1 })
    );
}

// ------------------------------------------------------------------ bodies

#[test]
fn error_body_with_trailing_bytes() {
    assert_eq!(
        ErrorBody::decode(&[0x02, 0x03, b'b', b'a', b'd', 0x00, 0x00]),
        Err(DecodeError::ContentLength {
            at: 5,
            what: "error body",
            bytes: 2,
            missing: false,
        })
    );
    assert_eq!(
        ErrorBody::decode(&[0x02]),
        Err(DecodeError::UnexpectedEnd { at: 1, needed: 1 })
    );
    assert_eq!(
        ErrorBody::decode(&[0x02, 0x00]),
        Ok(ErrorBody {
            code: 2,
            message: ""
        })
    );
}

#[test]
fn class_mismatch() {
    let r = Reader::new(&[0; 4]);
    assert_eq!(r.expect_class(3, Class::Varint, Class::Varint), Ok(()));
    assert_eq!(
        r.expect_class(3, Class::Fixed32, Class::Varint),
        Err(DecodeError::ClassMismatch {
            at: 0,
            tag: 3,
            expected: 1,
            found: 2
        })
    );
    // Through a message decode: `u8` field tag 1 sent as a length-delimited value.
    let slot = VectorType::new(
        &json!({
            "Slot": {"message": {"id": null, "fields": [{"name": "index", "tag": 1, "type": "u8"}]}}
        }),
        "Slot",
    )
    .unwrap();
    // Presence: tag 1 class 3; then a length-delimited value.
    let err = slot.decode(&[0x03, 0x01, 0x05]).unwrap_err();
    assert_eq!(err.kind(), DecodeErrorKind::ClassMismatch);
    assert_eq!(err.path(), "vectors.Slot.index");
    assert_eq!(err.offset(), 1);
    assert_eq!(err.reason(), "tag 1 has wire class 3, expected 1");
}

#[test]
fn presence_bitmap_errors() {
    let bad = |bytes: &[u8]| match Reader::new(bytes).presence() {
        Err(DecodeError::BadPresence { at, .. }) => Some(at),
        _ => None,
    };
    // A presence field ending with a zero byte is non-canonical.
    assert_eq!(bad(&[0x80, 0x00]), Some(0));
    assert_eq!(bad(&[0x85, 0x80, 0x00]), Some(0));
    assert_eq!(bad(&[0x00]), None, "a single 00 is the empty presence");
    // Class bits for tag 256 (bit 510): 72 bytes of 0x80, then 0x40.
    let mut tag256 = vec![0x80u8; 72];
    tag256.push(0x40);
    assert_eq!(bad(&tag256), Some(0));
    // More than 73 bytes.
    let mut long = vec![0xffu8; 73];
    long.push(0x01);
    assert_eq!(bad(&long), Some(0));
    // A field cut after a continuation byte.
    assert!(matches!(
        Reader::new(&[0x95]).presence(),
        Err(DecodeError::UnexpectedEnd { .. })
    ));
    // Tag 255 with every tag present (class 1) is fine: 510 bits, bit 509 clear.
    let mut bits = [0u8; 64];
    for tag in 1..=255usize {
        let bit = 2 * (tag - 1);
        bits[bit / 8] |= 1 << (bit % 8);
    }
    let mut full = Vec::new();
    let total_bits: usize = 2 * 254 + 1;
    let groups = total_bits.div_ceil(7);
    for g in 0..groups {
        let mut v = 0u8;
        for k in 0..7 {
            let bit = 7 * g + k;
            if bit < 512 && bits[bit / 8] >> (bit % 8) & 1 == 1 {
                v |= 1 << k;
            }
        }
        full.push(if g + 1 < groups { v | 0x80 } else { v });
    }
    assert_eq!(full.len(), 73);
    let p = Reader::new(&full).presence().unwrap();
    assert_eq!(p.highest(), 255);
    assert_eq!(p.count(), 255);
    // No field: one byte.
    let mut r = Reader::new(&[0x00, 0x07]);
    assert_eq!(r.presence().unwrap().count(), 0);
    assert_eq!(r.remaining(), 1);
    // The spec's example: tags 1-3 class 1, tag 4 class 2, tag 5 class 1 is `95 03`.
    let got: Vec<(u32, Class)> = Reader::new(&[0x95, 0x03]).presence().unwrap().collect();
    assert_eq!(
        got,
        [
            (1, Class::Varint),
            (2, Class::Varint),
            (3, Class::Varint),
            (4, Class::Fixed32),
            (5, Class::Varint)
        ]
    );
}

#[test]
fn union_key_with_class_zero() {
    assert_eq!(
        Reader::new(&[0x04]).union_key(),
        Err(DecodeError::UnionClassAbsent { at: 0 })
    );
    assert_eq!(
        Reader::new(&[0x80, 0x08]).union_key(),
        Err(DecodeError::UnionClassAbsent { at: 0 })
    );
    assert_eq!(Reader::new(&[0x07]).union_key(), Ok((1, Class::Delimited)));
}

// ------------------------------------------------------------------ COBS

#[test]
fn cobs_rejects_malformed_blocks() {
    let corrupt = |src: &[u8]| {
        let mut out = Vec::new();
        matches!(
            cobs_decode(src, &mut out),
            Err(DecodeError::CorruptFrame { .. })
        )
    };
    assert!(corrupt(&[0x00]), "code byte 00");
    assert!(
        corrupt(&[0x02, 0x11, 0x00, 0x01]),
        "code byte 00 after a block"
    );
    assert!(corrupt(&[0x05, 0x11, 0x22]), "block past the end");
    assert!(corrupt(&[0xff, 0x11]), "255-block past the end");
    // §4: the c - 1 bytes after a code byte are non-zero data bytes.
    assert!(corrupt(&[0x03, 0x11, 0x00]), "00 as a data byte");
    assert!(
        corrupt(&[0x02, 0x00, 0x02, 0x11]),
        "00 as a data byte in the first block"
    );
}

#[test]
fn cobs_accepts_both_tails_of_a_254_byte_run() {
    // §4: an encoder ends 254 non-zero bytes with `ff` + data + `01`; decoders
    // also accept the input without that final `01`.
    let data: Vec<u8> = (1..=254).collect();
    let mut with = vec![0xff];
    with.extend_from_slice(&data);
    let without = with.clone();
    with.push(0x01);
    for enc in [with, without] {
        let mut out = Vec::new();
        cobs_decode(&enc, &mut out).unwrap();
        assert_eq!(out, data);
    }
}
