//! Generated types round-trip through bytes, views and `Bytes` decoding, with
//! exact lengths and deterministic encodings.

mod strategies;

use strategies::{choice, containers, expr, node, scalars};

use std::collections::BTreeMap;

use bytes::Bytes;
use isml_codegen_tests::alltypes::{
    Containers, Expr, Limited, Node, Scalars, SlotTelemetry, Sparse,
};
use isml_codegen_tests::charging::v1 as charging;
use isml_runtime::{Message, View, Viewable};
use proptest::prelude::*;

/// Encodes, checks the length, decodes three ways, checks determinism.
fn check_round_trip<M: Viewable>(value: &M) -> Vec<u8> {
    let bytes = value.encode_to_vec().expect("valid value encodes");
    assert_eq!(bytes.len(), value.encoded_len(), "encoded_len is exact");
    // The schema's static bound (set for messages without unbounded parts)
    // holds; `encode_to_vec` writes small bounded messages into a buffer of
    // that size without measuring them.
    assert!(bytes.len() <= M::MAX_ENCODED_LEN, "within MAX_ENCODED_LEN");
    // The fused validate-and-measure pass of encode_to_vec agrees with both.
    assert_eq!(value.checked_len_nested(32), Ok(bytes.len()));
    assert_eq!(value.validate(), Ok(()));
    assert_eq!(value.encode_to_bytes().unwrap(), bytes);
    // `encode` measures nested lengths as it writes; `encode_to_vec` takes
    // them from its length pass: the same bytes.
    let mut written = Vec::new();
    value.encode(&mut written).unwrap();
    assert_eq!(written, bytes, "encode and encode_to_vec agree");
    // Both write in one pass when the message fits 512 bytes; the plain
    // writer (every nested length measured before its content) agrees.
    let mut plain = Vec::new();
    value.encode_raw(&mut plain);
    assert_eq!(plain, bytes, "the plain writer agrees");
    let decoded = M::decode_slice(&bytes).expect("decodes");
    assert_eq!(&decoded, value);
    let shared = M::decode(Bytes::from(bytes.clone())).expect("decodes from Bytes");
    assert_eq!(&shared, value);
    let view = M::view(&bytes).expect("views");
    assert_eq!(&view.to_owned_message(), value);
    assert_eq!(decoded.encode_to_vec().unwrap(), bytes, "deterministic");
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn scalars_round_trip(v in scalars()) {
        check_round_trip(&v);
    }

    #[test]
    fn bounded_messages_round_trip_within_their_bound(
        slot in any::<u8>(),
        voltage_mv in any::<u32>(),
        current_ma in any::<i32>(),
        temperature_c in any::<f32>().prop_filter("NaN != NaN", |f| !f.is_nan()),
        charging in any::<bool>(),
        energy_wh in any::<u64>(),
        first in any::<u8>(),
        last in any::<u8>(),
    ) {
        let t = SlotTelemetry { slot, voltage_mv, current_ma, temperature_c, charging, energy_wh };
        let bytes = check_round_trip(&t);
        // Written on the stack, then into a vector of exactly its length.
        prop_assert_eq!(t.encode_to_vec().unwrap().capacity(), bytes.len());
        prop_assert_eq!(bytes.len(), t.encoded_len());
        check_round_trip(&Sparse { first, last });
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

#[test]
fn static_bounds_are_reached_by_the_largest_values() {
    // Every field present at its widest form: exactly the bound.
    let widest = SlotTelemetry {
        slot: u8::MAX,
        voltage_mv: u32::MAX,
        current_ma: i32::MIN,
        temperature_c: -1.5,
        charging: true,
        energy_wh: u64::MAX,
    };
    assert_eq!(
        check_round_trip(&widest).len(),
        SlotTelemetry::MAX_ENCODED_LEN
    );
    let sparse = Sparse {
        first: u8::MAX,
        last: u8::MAX,
    };
    assert_eq!(check_round_trip(&sparse).len(), Sparse::MAX_ENCODED_LEN);
    // Strings, lists and maps without `max_len`: no bound.
    assert_eq!(Scalars::MAX_ENCODED_LEN, usize::MAX);
    assert_eq!(Containers::MAX_ENCODED_LEN, usize::MAX);
}

/// `encode_to_vec` (and `encode`, for messages with nested lengths) writes
/// in one pass into a 512-byte stack buffer, with nested lengths after
/// their content (widened when the content reaches 128 bytes), and
/// measures and writes again when the message does not fit. Around each of
/// those edges it writes what the plain writer writes (every nested length
/// measured before its content), into a vector of exactly that length.
#[test]
fn one_pass_writer_agrees_with_encode_at_its_edges() {
    let check = |value: &dyn Fn(usize) -> Containers| {
        for n in (0..140).chain(490..530).chain([1_000, 20_000]) {
            check_one_pass(&value(n), &format!("size parameter {n}"));
        }
    };
    // A string whose length crosses 128 (its length prefix widens) and 512
    // (the whole message no longer fits the stack buffer).
    check(&|n| Containers {
        opt_str: Some("s".repeat(n)),
        ..Containers::default()
    });
    // A map whose content crosses those lengths entry by entry, and a list
    // of strings inside the same message.
    check(&|n| Containers {
        by_name: (0..n / 4).map(|i| (format!("k{i:03}"), i as i32)).collect(),
        list_str: vec!["x".repeat(n % 200); 2],
        ..Containers::default()
    });
    // Lists nested in a list: inner lengths widen inside an outer one.
    check(&|n| Containers {
        nested: vec![(0..n as u16).collect(), vec![7; n / 2]],
        ..Containers::default()
    });
}

/// Nested messages widen their length inside their parent's.
#[test]
fn one_pass_writer_nests_wide_messages() {
    for width in [1usize, 60, 130, 300, 600] {
        let leaf = |v: i32| Node {
            value: v,
            children: (0..width as i32)
                .map(|i| Node {
                    value: i,
                    ..Node::default()
                })
                .collect(),
            ..Node::default()
        };
        let tree = Node {
            value: -1,
            left: Some(Box::new(leaf(1))),
            right: Some(Box::new(leaf(2))),
            children: vec![leaf(3), leaf(4)],
            label: Some("root".into()),
        };
        check_one_pass(&tree, &format!("width {width}"));
    }
}

/// `encode_to_vec` and `encode` write what the plain writer writes, into a
/// vector of exactly that length, and it decodes back to `value`.
fn check_one_pass<M: Message>(value: &M, what: &str) {
    let bytes = value.encode_to_vec().unwrap();
    let mut want = Vec::new();
    value.encode_raw(&mut want);
    assert_eq!(bytes, want, "{what}");
    let mut again = Vec::new();
    value.encode(&mut again).unwrap();
    assert_eq!(again, want, "{what}");
    assert_eq!(bytes.capacity(), bytes.len(), "{what}");
    assert_eq!(&M::decode_slice(&bytes).unwrap(), value, "{what}");
}
