//! Generated types round-trip through bytes, views and `Bytes` decoding, with
//! exact lengths and deterministic encodings.

use std::collections::BTreeMap;

use bytes::Bytes;
use isml_codegen_tests::alltypes::{
    Choice, Color, Containers, Empty, Expr, Limited, Neg, Node, Scalars, Sparse, Sum,
};
use isml_codegen_tests::charging::v1 as charging;
use isml_runtime::{Message, View, Viewable};
use proptest::prelude::*;

/// Encodes, checks the length, decodes three ways, checks determinism.
fn check_round_trip<M: Viewable>(value: &M) -> Vec<u8> {
    let bytes = value.encode_to_vec().expect("valid value encodes");
    assert_eq!(bytes.len(), value.encoded_len(), "encoded_len is exact");
    let decoded = M::decode_slice(&bytes).expect("decodes");
    assert_eq!(&decoded, value);
    let shared = M::decode(Bytes::from(bytes.clone())).expect("decodes from Bytes");
    assert_eq!(&shared, value);
    let view = M::view(&bytes).expect("views");
    assert_eq!(&view.to_owned_message(), value);
    assert_eq!(decoded.encode_to_vec().unwrap(), bytes, "deterministic");
    bytes
}

fn color() -> impl Strategy<Value = Color> {
    prop_oneof![
        Just(Color::Red),
        Just(Color::Green),
        Just(Color::Blue),
        Just(Color::Unknown7),
        (8u32..).prop_map(Color::Unknown),
    ]
}

prop_compose! {
    fn scalars()(
        b in any::<bool>(), u8 in any::<u8>(), u16 in any::<u16>(), u32 in any::<u32>(),
        u64 in any::<u64>(), i8 in any::<i8>(), i16 in any::<i16>(), i32 in any::<i32>(),
        i64 in any::<i64>(), f32 in any::<f32>(), f64 in any::<f64>(), s in ".{0,20}",
        raw in proptest::collection::vec(any::<u8>(), 0..20), c in color(),
    ) -> Scalars {
        Scalars { b, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, s, raw: raw.into(), c }
    }
}

fn choice() -> impl Strategy<Value = Choice> {
    prop_oneof![
        Just(Choice::Nothing(Empty {})),
        any::<i64>().prop_map(Choice::Number),
        any::<f32>().prop_map(Choice::Ratio),
        any::<f64>().prop_map(Choice::Precise),
        ".{0,10}".prop_map(Choice::Text),
        any::<[u8; 2]>().prop_map(Choice::Pair),
        scalars().prop_map(Choice::Inner),
    ]
}

prop_compose! {
    fn containers()(
        opt_u32 in proptest::option::of(any::<u32>()),
        opt_str in proptest::option::of(".{0,8}"),
        list_u8 in proptest::collection::vec(any::<u8>(), 0..40),
        list_u32 in proptest::collection::vec(any::<u32>(), 0..10),
        list_i64 in proptest::collection::vec(any::<i64>(), 0..10),
        list_f32 in proptest::collection::vec(any::<f32>(), 0..10),
        list_f64 in proptest::collection::vec(any::<f64>(), 0..5),
        list_str in proptest::collection::vec(".{0,5}", 0..5),
        list_bool in proptest::collection::vec(any::<bool>(), 0..10),
        nested in proptest::collection::vec(proptest::collection::vec(any::<u16>(), 0..4), 0..4),
        by_name in proptest::collection::btree_map(".{0,6}", any::<i32>(), 0..5),
        by_id in proptest::collection::btree_map(any::<i32>(), ".{0,6}", 0..5),
        flags in proptest::collection::btree_map(any::<bool>(), any::<u8>(), 0..3),
        mac in any::<[u8; 6]>(),
        big in proptest::collection::vec(any::<u16>(), 40),
        names in any::<[String; 2]>(),
        opt_list in proptest::collection::vec(proptest::option::of(any::<u32>()), 0..6),
        colors in proptest::collection::vec(color(), 0..4),
        scalars in scalars(),
        maybe in proptest::option::of(scalars()),
        many in proptest::collection::vec(scalars(), 0..3),
        choice in choice(),
        choices in proptest::collection::vec(choice(), 0..3),
        by_u64 in proptest::collection::btree_map(any::<u64>(), scalars(), 0..3),
    ) -> Containers {
        Containers {
            opt_u32, opt_str, list_u8, list_u32, list_i64, list_f32, list_f64, list_str,
            list_bool, nested, by_name, by_id, flags, mac,
            big: big.try_into().expect("40 elements"),
            names, opt_list, colors, scalars, maybe, many, choice, choices, by_u64,
        }
    }
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = (any::<i32>(), proptest::option::of("[a-z]{0,8}")).prop_map(|(value, label)| Node {
        value,
        label,
        ..Node::default()
    });
    leaf.prop_recursive(4, 24, 3, |inner| {
        (
            any::<i32>(),
            proptest::option::of(inner.clone()),
            proptest::option::of(inner.clone()),
            proptest::collection::vec(inner, 0..3),
        )
            .prop_map(|(value, left, right, children)| Node {
                value,
                left: left.map(Box::new),
                right: right.map(Box::new),
                children,
                label: None,
            })
    })
}

fn expr() -> impl Strategy<Value = Expr> {
    any::<i64>()
        .prop_map(Expr::Lit)
        .prop_recursive(4, 20, 3, |inner| {
            prop_oneof![
                proptest::option::of(inner.clone()).prop_map(|e| Expr::Neg(Neg {
                    inner: e.map(Box::new)
                })),
                proptest::collection::vec(inner, 0..3).prop_map(|terms| Expr::Sum(Sum { terms })),
            ]
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scalars_round_trip(v in scalars()) {
        check_round_trip(&v);
    }

    #[test]
    fn containers_round_trip(v in containers()) {
        check_round_trip(&v);
    }

    #[test]
    fn unions_round_trip(v in choice()) {
        check_round_trip(&v);
    }

    #[test]
    fn recursive_messages_round_trip(v in node()) {
        check_round_trip(&v);
    }

    #[test]
    fn mutually_recursive_unions_round_trip(v in expr()) {
        check_round_trip(&v);
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Whatever the input, decoding returns a value or an error; a value re-encodes.
        if let Ok(v) = Containers::decode_slice(&bytes) {
            let _ = v.encode_to_vec();
        }
        let _ = Node::decode_slice(&bytes);
        let _ = Expr::decode_slice(&bytes);
        let _ = isml_codegen_tests::alltypes::ContainersView::view(&bytes);
    }
}

#[test]
fn defaults_encode_to_an_empty_body() {
    assert_eq!(Scalars::default().encode_to_vec().unwrap(), [0x00]);
    // A message field is always written, so the body is not empty.
    let c = Containers::default();
    let bytes = check_round_trip(&c);
    assert!(bytes.len() > 1);
}

#[test]
fn negative_zero_is_written_but_positive_zero_is_not() {
    let pos = Scalars {
        f32: 0.0,
        ..Scalars::default()
    };
    let neg = Scalars {
        f32: -0.0,
        ..Scalars::default()
    };
    assert_eq!(pos.encode_to_vec().unwrap(), [0x00]);
    // Presence: tag 10 class 2 (fixed32) is P = 2 << 18, three base-128 bytes.
    assert_eq!(
        neg.encode_to_vec().unwrap(),
        [0x80, 0x80, 0x20, 0x00, 0x00, 0x00, 0x80]
    );
}

#[test]
fn sparse_high_tags_use_a_long_bitmap() {
    let s = Sparse { first: 1, last: 2 };
    let bytes = s.encode_to_vec().unwrap();
    // Tag 255 class 1 sets bit 508: a 73-byte presence field, then two one-byte values.
    assert_eq!(bytes.len(), 73 + 2);
    assert_eq!(Sparse::decode_slice(&bytes).unwrap(), s);
}

#[test]
fn bytes_fields_share_the_receive_buffer() {
    let v = Scalars {
        raw: Bytes::from_static(b"zero-copy payload"),
        ..Scalars::default()
    };
    let buf = Bytes::from(v.encode_to_vec().unwrap());
    let decoded = Scalars::decode(buf.clone()).unwrap();
    let start = buf.as_ptr() as usize;
    let raw = decoded.raw.as_ptr() as usize;
    assert!(
        raw >= start && raw < start + buf.len(),
        "raw points into buf"
    );
}

#[test]
fn views_borrow_strings_and_fixed_width_lists() {
    let c = Containers {
        opt_str: Some("hello".into()),
        list_f32: vec![1.5, -2.0, 3.25],
        list_u8: vec![1, 2, 3],
        by_name: BTreeMap::from([("a".to_string(), 1), ("b".to_string(), -2)]),
        ..Containers::default()
    };
    let bytes = c.encode_to_vec().unwrap();
    let view = isml_codegen_tests::alltypes::ContainersView::view(&bytes).unwrap();
    let s = view.opt_str().unwrap();
    let range = bytes.as_ptr_range();
    assert!(
        range.contains(&s.as_ptr()),
        "string borrowed from the buffer"
    );
    let floats = view.list_f32();
    assert_eq!(floats.len(), 3);
    assert_eq!(floats.get(2), Some(3.25));
    assert_eq!(floats.as_bytes().len(), 12);
    assert!(range.contains(&floats.as_bytes().as_ptr()));
    assert_eq!(view.list_u8().as_slice(), &[1, 2, 3]);
    assert_eq!(view.by_name().get(&"b"), Some(-2));
    assert_eq!(view.by_name().iter().count(), 2);
}

#[test]
fn charging_status_report_round_trips() {
    let report = charging::StatusReport::default();
    check_round_trip(&report);
}

#[test]
fn limited_default_round_trips() {
    // Every attribute-limited field holds an allowed default.
    check_round_trip(&Limited::default());
}
