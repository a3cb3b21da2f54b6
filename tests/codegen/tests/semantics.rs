//! Behaviour of generated code: the spec's worked example, evolution between two
//! schema versions, attribute enforcement, naming, dispatch and descriptors.

use bytes::Bytes;
use isml_codegen_tests::alltypes::{
    AnyMessage, Color, Containers, Limited, LimitedView, Node, Scalars, SlotTelemetry, Type,
};
use isml_codegen_tests::evo;
use isml_runtime::wire::{DecodeError, EncodeError, FrameHeader, put_stream_frame};
use isml_runtime::{Enum, Message, TopLevel, View, Viewable};

#[test]
fn worked_example_of_the_wire_spec() {
    let reading = SlotTelemetry {
        slot: 2,
        voltage_mv: 48_120,
        current_ma: -1_500,
        temperature_c: 23.5,
        charging: true,
        energy_wh: 0,
    };
    let body = reading.encode_to_vec().unwrap();
    assert_eq!(
        body,
        [
            0x95, 0x03, 0x02, 0xf8, 0xf7, 0x02, 0xb7, 0x17, 0x00, 0x00, 0xbc, 0x41, 0x01
        ]
    );
    let mut frame = Vec::new();
    put_stream_frame(
        &mut frame,
        &FrameHeader::one_way(SlotTelemetry::TYPE_ID),
        &body,
        1 << 20,
    )
    .unwrap();
    assert_eq!(frame.len(), 15);
    // L = 13, then the lead byte: one-way, type id in the nibble (8 in this fixture, 3 in the spec).
    assert_eq!(SlotTelemetry::TYPE_ID, 8);
    assert_eq!(&frame[..2], &[0x0d, 0x08]);
}

#[test]
fn old_reader_reads_new_writer() {
    let new = evo::v2::Reading {
        a: 7,
        b: "hi".into(),
        mode: evo::v2::Mode::Turbo,
        pick: evo::v2::Pick::Z(evo::v2::Inner { q: 9 }),
        extra: Some(0),
        blob: 2.5,
        note: "skip me".into(),
        tail: vec!["x".into(), "y".into()],
    };
    let bytes = new.encode_to_vec().unwrap();
    let old = evo::v1::Reading::decode_slice(&bytes).unwrap();
    assert_eq!(old.a, 7);
    assert_eq!(old.b, "hi");
    assert_eq!(
        old.mode,
        evo::v1::Mode::Unknown(2),
        "unknown enum value kept"
    );
    assert_eq!(old.gone, 0);
    match &old.pick {
        evo::v1::Pick::Unknown { tag, bytes, .. } => {
            assert_eq!(*tag, 3);
            // The nested Inner { q: 9 } in class-3 form: length, presence (tag 1 class 1), value.
            assert_eq!(&bytes[..], &[0x02, 0x01, 0x09]);
        }
        other => panic!("expected an unknown variant, got {other:?}"),
    }
    // Views skip the same way.
    let view = evo::v1::Reading::view(&bytes).unwrap();
    assert_eq!(view.b(), "hi");
    // The unknown variant is forwarded unchanged when re-encoded.
    let again = old.encode_to_vec().unwrap();
    let back = evo::v2::Reading::decode_slice(&again).unwrap();
    assert_eq!(back.pick, new.pick);
    assert_eq!(back.mode, new.mode);
}

/// An unknown variant built by user code is checked like the dynamic
/// encoder checks one: whatever an encoder accepts, its decoder reads back.
#[test]
fn unknown_variants_built_by_hand_are_checked_before_writing() {
    use evo::v1::{Pick, Reading};
    use isml_runtime::wire::Class;
    let unknown = |tag: u64, class: Class, bytes: &'static [u8]| Pick::Unknown {
        tag,
        class,
        bytes: Bytes::from_static(bytes),
    };
    let refused = [
        (unknown(9, Class::Absent, &[]), "class 0"),
        (
            unknown(1 << 62, Class::Varint, &[1]),
            "above the largest union tag",
        ),
        (unknown(2, Class::Delimited, &[1, b'x']), "defines this tag"),
        (unknown(9, Class::Varint, &[1, 2]), "one canonical varint"),
        (
            unknown(9, Class::Varint, &[0x80, 0x00]),
            "one canonical varint",
        ),
        (unknown(9, Class::Varint, &[0x80]), "one canonical varint"),
        (unknown(9, Class::Fixed32, &[1, 2, 3]), "exactly 4 bytes"),
        (
            unknown(9, Class::Fixed32, &[1, 2, 3, 4, 5]),
            "exactly 4 bytes",
        ),
        (unknown(9, Class::Delimited, &[]), "length-delimited"),
        (unknown(9, Class::Delimited, &[2, b'h']), "length-delimited"),
        (
            unknown(9, Class::Delimited, &[1, b'h', b'i']),
            "length-delimited",
        ),
    ];
    for (pick, reason) in refused {
        for err in [
            pick.encode_to_vec().unwrap_err(),
            pick.encode(&mut Vec::new()).unwrap_err(),
            pick.validate().unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    EncodeError::InvalidUnknownVariant {
                        message: "evo.v1.Pick",
                        ..
                    }
                ),
                "{pick:?}: {err:?}"
            );
            assert!(err.to_string().contains(reason), "{pick:?}: {err}");
        }
        // Nested in a message: refused too, and nothing is written.
        let reading = Reading {
            pick: pick.clone(),
            ..Reading::default()
        };
        let mut buf = Vec::new();
        assert!(reading.encode(&mut buf).is_err(), "{pick:?}");
        assert!(buf.is_empty());
        assert!(reading.encode_to_vec().is_err(), "{pick:?}");
    }
    let err = unknown(9, Class::Varint, &[1, 2])
        .encode_to_vec()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "`evo.v1.Pick`: unknown variant 9: the bytes are not exactly one canonical varint \
         (class 1): 1 byte(s) left over at byte 1, after the end of the varint"
    );

    // Well-formed values of each class, and the largest tag, are written
    // and read back unchanged.
    for pick in [
        unknown(9, Class::Varint, &[0x80, 0x01]),
        unknown(9, Class::Fixed32, &[1, 2, 3, 4]),
        unknown(9, Class::Delimited, &[0]),
        unknown(9, Class::Delimited, &[2, b'h', b'i']),
        unknown(0, Class::Varint, &[0]),
        unknown((1 << 62) - 1, Class::Varint, &[7]),
    ] {
        let bytes = pick.encode_to_vec().unwrap();
        assert_eq!(Pick::decode_slice(&bytes).unwrap(), pick);
        let reading = Reading {
            pick: pick.clone(),
            ..Reading::default()
        };
        let back = Reading::decode_slice(&reading.encode_to_vec().unwrap()).unwrap();
        assert_eq!(back.pick, pick);
    }
}

#[test]
fn new_reader_reads_old_writer() {
    let old = evo::v1::Reading {
        a: 1,
        b: "x".into(),
        mode: evo::v1::Mode::On,
        gone: 99,
        pick: evo::v1::Pick::Y("why".into()),
    };
    let bytes = old.encode_to_vec().unwrap();
    let new = evo::v2::Reading::decode_slice(&bytes).unwrap();
    assert_eq!(new.a, 1);
    assert_eq!(new.mode, evo::v2::Mode::On);
    assert_eq!(new.pick, evo::v2::Pick::Y("why".into()));
    assert_eq!(new.extra, None, "absent optional");
    assert!(
        new.tail.is_empty() && new.note.is_empty() && new.blob == 0.0,
        "defaults"
    );
}

#[test]
fn fingerprints_differ_between_versions_but_not_for_renames() {
    assert_ne!(evo::v1::Reading::FINGERPRINT, evo::v2::Reading::FINGERPRINT);
    assert_eq!(
        <evo::v1::Reading as TopLevel>::fingerprint(),
        evo::v1::Reading::descriptor().fingerprint
    );
}

#[test]
fn max_len_and_range_are_enforced_on_encode() {
    let long = Limited {
        name: "too long".into(),
        ..Limited::default()
    };
    match long.encode_to_vec() {
        Err(EncodeError::MaxLen {
            message,
            field,
            len,
            max,
        }) => {
            assert_eq!(
                (message, field, len, max),
                ("alltypes.Limited", "name", 8, 4)
            );
        }
        other => panic!("{other:?}"),
    }
    let hot = Limited {
        temp: 90.5,
        ..Limited::default()
    };
    let err = hot.encode_to_vec().unwrap_err();
    assert_eq!(
        err.to_string(),
        "`alltypes.Limited.temp`: value 90.5 is outside range -40..=85"
    );
    let level = Limited {
        level: Some(11),
        ..Limited::default()
    };
    assert!(matches!(
        level.encode_to_vec(),
        Err(EncodeError::Range { field: "level", .. })
    ));
    let items = Limited {
        items: vec![1, 2, 3, 4],
        ..Limited::default()
    };
    assert!(matches!(
        items.encode_to_vec(),
        Err(EncodeError::MaxLen { field: "items", .. })
    ));
    // Nested messages are validated too.
    let mut buf = Vec::new();
    assert!(long.encode(&mut buf).is_err());
    assert!(buf.is_empty(), "nothing written when validation fails");
}

#[test]
fn max_len_and_range_are_enforced_on_decode() {
    // A peer that does not validate: write the fields with the raw primitives.
    use isml_runtime::wire::{Class, PresenceWriter, write};
    let mut p = PresenceWriter::<2>::new();
    p.set(1, Class::Delimited);
    p.set(2, Class::Fixed32);
    let mut body = Vec::new();
    p.encode(&mut body);
    write::len_prefixed(&mut body, b"abcdef");
    write::f32(&mut body, 20.0);
    let err = Limited::decode_slice(&body).unwrap_err();
    assert_eq!(
        err.to_string(),
        "in `alltypes.Limited.name`: length 6 exceeds max_len 4"
    );
    assert!(matches!(
        LimitedView::view(&body),
        Err(DecodeError::InField(f)) if f.field == "name"
    ));

    let mut p = PresenceWriter::<2>::new();
    p.set(2, Class::Fixed32);
    let mut body = Vec::new();
    p.encode(&mut body);
    write::f32(&mut body, -41.0);
    let err = Limited::decode_slice(&body).unwrap_err();
    assert!(
        matches!(err.root(), DecodeError::Range(r) if r.min == -40 && r.max == 85),
        "{err}"
    );
}

#[test]
fn class_mismatch_names_the_field() {
    use isml_runtime::wire::{Class, PresenceWriter, write};
    // Tag 12 of Scalars is a string; send a varint there.
    let mut p = PresenceWriter::<4>::new();
    p.set(12, Class::Varint);
    let mut body = Vec::new();
    p.encode(&mut body);
    write::uvarint(&mut body, 5);
    let err = Scalars::decode_slice(&body).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("in `alltypes.Scalars.s`: tag 12"),
        "{err}"
    );
}

#[test]
fn keywords_and_collisions_get_usable_names() {
    let t = Type {
        r#type: 1,
        r#match: "m".into(),
        self_: true,
        self_4: 4,
        r#async: -5,
        foo_bar: 6,
        foo_bar_7: 7,
        crate_: 8,
        r#move: 9,
    };
    let back = Type::decode_slice(&t.encode_to_vec().unwrap()).unwrap();
    assert_eq!(back, t);
    let bytes = t.encode_to_vec().unwrap();
    let view = Type::view(&bytes).unwrap();
    assert_eq!(view.r#type(), 1);
    assert_eq!(view.r#match(), "m");
    assert_eq!(Color::Unknown7.to_u32(), 7);
    assert_eq!(Color::Unknown7.name(), Some("unknown"));
    assert_eq!(Color::from_u32(3), Color::Unknown(3));
    assert_eq!(Color::Unknown(3).name(), None);
}

#[test]
fn dispatch_decodes_by_type_id_and_reports_unknown_ids() {
    let node = Node {
        value: 3,
        ..Node::default()
    };
    let payload = Bytes::from(node.encode_to_vec().unwrap());
    let any = AnyMessage::decode(Node::TYPE_ID, payload.clone()).unwrap();
    assert_eq!(any.type_id(), 4);
    assert_eq!(any, AnyMessage::Node(node));
    assert_eq!(
        AnyMessage::decode(999, payload),
        Err(DecodeError::UnknownMessageType { type_id: 999 })
    );
    let ids: Vec<u32> = AnyMessage::TYPES.iter().map(|t| t.0).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6, 7, 8, 300]);
}

#[test]
fn descriptors_describe_fields() {
    let d = Limited::descriptor();
    assert_eq!(d.full_name, "alltypes.Limited");
    assert_eq!(d.id, Some(7));
    let temp = d.field("temp").unwrap();
    assert_eq!(temp.tag, 2);
    assert_eq!(temp.range, Some((-40, 85)));
    assert_eq!(d.field("name").unwrap().max_len, Some(4));
    assert!(d.field("old").unwrap().deprecated);
    assert_eq!(d.field_by_tag(5).unwrap().name, "tags");
    let c = Containers::descriptor();
    assert!(matches!(
        c.field("choice").unwrap().ty,
        isml_runtime::descriptor::TypeRef::Message(f) if f().name == "Choice"
    ));
    assert_eq!(Color::descriptor().value_of("blue"), Some(5));
}

#[test]
fn truncated_input_is_an_error_at_every_length() {
    let c = Containers {
        opt_str: Some("abc".into()),
        list_u32: vec![1, 300, 70000],
        ..Containers::default()
    };
    let bytes = c.encode_to_vec().unwrap();
    for n in 0..bytes.len() {
        assert!(Containers::decode_slice(&bytes[..n]).is_err(), "prefix {n}");
        assert!(Containers::view(&bytes[..n]).is_err(), "prefix {n}");
    }
}

#[test]
fn nesting_bombs_are_rejected_without_overflowing_the_stack() {
    // Node.children = [Node { children = [ ... ] }], 5,000 levels, built by hand.
    let mut body = vec![0x00u8]; // innermost: empty body
    for _ in 0..5_000 {
        let mut list = Vec::new();
        isml_runtime::wire::write::len_prefixed(&mut list, &body); // one element
        let mut outer = vec![0xc0, 0x01]; // presence: tag 4 class 3 (P = 0xc0)
        isml_runtime::wire::write::len_prefixed(&mut outer, &list);
        body = outer;
    }
    let err = Node::decode_slice(&body).unwrap_err();
    assert!(
        matches!(err.root(), DecodeError::DepthExceeded { max: 32, .. }),
        "{err}"
    );
    assert!(Node::view(&body).is_err());
}

/// A `Node` whose `left` chain holds `n` nodes below it: each one a level.
fn left_chain(n: usize) -> Node {
    let mut node = Node {
        value: 1,
        ..Node::default()
    };
    for _ in 0..n {
        node = Node {
            value: 1,
            left: Some(Box::new(node)),
            ..Node::default()
        };
    }
    node
}

/// A `Node` whose `children` chain holds `n` one-element lists: two levels
/// each (the list and the element's body).
fn children_chain(n: usize) -> Node {
    let mut node = Node::default();
    for _ in 0..n {
        node = Node {
            children: vec![node],
            ..Node::default()
        };
    }
    node
}

#[test]
fn encoders_enforce_the_decoders_nesting_limit() {
    // 32 levels below the top body: encodes, and the bytes decode.
    for deepest in [left_chain(32), children_chain(16)] {
        let bytes = deepest.encode_to_vec().expect("32 levels encode");
        assert_eq!(Node::decode_slice(&bytes).unwrap(), deepest);
        assert!(Node::view(&bytes).is_ok());
    }
    // 33 levels: every decoder would refuse the bytes, so the encoder does.
    for too_deep in [left_chain(33), children_chain(17)] {
        assert_eq!(
            too_deep.encode_to_vec(),
            Err(EncodeError::DepthExceeded { max: 32 })
        );
        let mut buf = Vec::new();
        assert!(too_deep.encode(&mut buf).is_err());
        assert!(buf.is_empty(), "nothing written on error");
    }
    let err = left_chain(33).encode_to_vec().unwrap_err();
    assert_eq!(
        err.to_string(),
        "value nests deeper than 32 levels, which decoders reject (wire format §7)"
    );
    // The decoder's side of the same boundary: one more level, added by
    // hand around the 32-level encoding, is refused.
    let wrap = |inner: &[u8]| {
        let mut outer = vec![0x0d]; // presence: tag 1 class 1, tag 2 class 3
        outer.push(0x02); // value: 1, zigzag
        isml_runtime::wire::write::len_prefixed(&mut outer, inner);
        outer
    };
    let level31 = left_chain(31).encode_to_vec().unwrap();
    let level32 = left_chain(32).encode_to_vec().unwrap();
    assert_eq!(
        wrap(&level31),
        level32,
        "the hand-built level is the encoder's"
    );
    let err = Node::decode_slice(&wrap(&level32)).unwrap_err();
    assert!(
        matches!(err.root(), DecodeError::DepthExceeded { max: 32, .. }),
        "{err}"
    );
}

#[test]
fn short_fixed_size_content_is_a_content_length_error() {
    use isml_runtime::wire::{Class, PresenceWriter, write};
    // Containers.mac (array<u8, 6>, tag 14) with 5 bytes of content.
    let mut p = PresenceWriter::<4>::new();
    p.set(14, Class::Delimited);
    let mut body = Vec::new();
    p.encode(&mut body);
    write::len_prefixed(&mut body, &[1, 2, 3, 4, 5]);
    let err = Containers::decode_slice(&body).unwrap_err();
    assert!(
        matches!(err.root(), DecodeError::ContentLength { what: "array", .. }),
        "{err}"
    );
    assert!(matches!(
        Containers::view(&body).unwrap_err().root(),
        DecodeError::ContentLength { what: "array", .. }
    ));
    // Scalars.f64 (tag 11) with a 4-byte length.
    let mut p = PresenceWriter::<4>::new();
    p.set(11, Class::Delimited);
    let mut body = Vec::new();
    p.encode(&mut body);
    write::len_prefixed(&mut body, &[0, 0, 0x80, 0x3f]);
    let err = Scalars::decode_slice(&body).unwrap_err();
    assert!(
        matches!(
            err.root(),
            DecodeError::ContentLength {
                what: "f64",
                bytes: 4,
                missing: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .ends_with("content of f64 at byte 5 is too short: 4 more byte(s) needed"),
        "{err}"
    );
    // The same content with four bytes too many: left over, not missing.
    let mut p = PresenceWriter::<4>::new();
    p.set(11, Class::Delimited);
    let mut body = Vec::new();
    p.encode(&mut body);
    write::len_prefixed(&mut body, &[0; 12]);
    let err = Scalars::decode_slice(&body).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("4 byte(s) left over at byte 13, after the end of f64"),
        "{err}"
    );
}

#[test]
fn one_dispatch_table_covers_the_compiled_set() {
    use isml_codegen_tests::multi::{a, b};
    // Both packages of the set carry the same table: every id of the set.
    let ids: Vec<u32> = a::AnyMessage::TYPES.iter().map(|t| t.0).collect();
    assert_eq!(ids, [1, 2, 3]);
    assert_eq!(a::AnyMessage::TYPES, b::AnyMessage::TYPES);
    // Types with the same name in two packages get package-qualified variants.
    let other = b::Status { code: 7 };
    let payload = Bytes::from(other.encode_to_vec().unwrap());
    let any = a::AnyMessage::decode(3, payload).unwrap();
    assert_eq!(any, a::AnyMessage::MultiBStatus(other.clone()));
    assert_eq!(any.type_id(), 3);
    assert_eq!(a::AnyMessage::from(other), any);
    let mine = a::Ping {
        inner: b::Status { code: 1 },
    };
    let any = b::AnyMessage::decode(2, Bytes::from(mine.encode_to_vec().unwrap())).unwrap();
    assert_eq!(any, b::AnyMessage::Ping(mine));
}

#[test]
fn relative_names_reach_the_types_of_other_packages() {
    use isml_codegen_tests::{common, fleet};
    // `geo.Position` and `common.Address` in `fleet.site` are these types.
    let site = fleet::site::SiteInfo {
        site_id: "depot-3".into(),
        location: fleet::geo::Position {
            lat_e7: 525_200_000,
            lon_e7: 134_050_000,
            altitude_dm: Some(340),
        },
        address: common::Address {
            city: "Berlin".into(),
            ..Default::default()
        },
        cabinets: vec![fleet::site::Placement {
            station_id: "cab-17".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let body = Bytes::from(site.encode_to_vec().unwrap());
    assert_eq!(fleet::site::SiteInfo::decode(body).unwrap(), site);
    // The range on `fleet.geo.Position` applies where `fleet.site` uses it.
    let mut far = site.clone();
    far.location.lat_e7 = 900_000_001;
    assert!(far.encode_to_vec().is_err());

    // Leading-dot names pick between `acme.geo.Point` and `acme.depot.geo.Point`.
    use isml_codegen_tests::acme;
    let bay = acme::depot::Bay {
        on_map: acme::geo::Point {
            lat_e7: 1,
            lon_e7: 2,
        },
        on_floor: acme::depot::geo::Point { x_cm: 3, y_cm: 4 },
        ..Default::default()
    };
    let body = Bytes::from(bay.encode_to_vec().unwrap());
    assert_eq!(acme::depot::Bay::decode(body).unwrap(), bay);
}

#[test]
fn decoded_lists_are_sized_from_their_content() {
    let m = Containers {
        list_u32: vec![1, 300, 70_000, 5, u32::MAX],
        list_str: vec!["a".into(), String::new(), "ccc".into()],
        many: vec![Scalars::default(), Scalars::default()],
        nested: vec![vec![1, 2], vec![], vec![3]],
        ..Containers::default()
    };
    let back = Containers::decode_slice(&m.encode_to_vec().unwrap()).unwrap();
    assert_eq!(back, m);
    // Counted before decoding: no reallocation while filling, no slack.
    assert_eq!(back.list_u32.capacity(), 5);
    assert_eq!(back.list_str.capacity(), 3);
    assert_eq!(back.many.capacity(), 2);
    assert_eq!(back.nested.capacity(), 3);
}
