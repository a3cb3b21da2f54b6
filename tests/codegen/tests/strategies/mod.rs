//! proptest strategies for the types of `schemas/alltypes.isml`, shared by the
//! round-trip, dynamic-parity and derive-parity tests (each test binary uses a
//! subset, hence `dead_code` is allowed here).
#![allow(dead_code)]

use isml_codegen_tests::alltypes::{
    Choice, Color, Containers, Empty, Expr, Neg, Node, Scalars, Sum,
};
use proptest::prelude::*;

pub(crate) fn color() -> impl Strategy<Value = Color> {
    prop_oneof![
        Just(Color::Red),
        Just(Color::Green),
        Just(Color::Blue),
        Just(Color::Unknown7),
        (8u32..).prop_map(Color::Unknown),
    ]
}

prop_compose! {
    pub(crate) fn scalars()(
        b in any::<bool>(), u8 in any::<u8>(), u16 in any::<u16>(), u32 in any::<u32>(),
        u64 in any::<u64>(), i8 in any::<i8>(), i16 in any::<i16>(), i32 in any::<i32>(),
        i64 in any::<i64>(), f32 in any::<f32>(), f64 in any::<f64>(), s in ".{0,20}",
        raw in proptest::collection::vec(any::<u8>(), 0..20), c in color(),
    ) -> Scalars {
        Scalars { b, u8, u16, u32, u64, i8, i16, i32, i64, f32, f64, s, raw: raw.into(), c }
    }
}

pub(crate) fn choice() -> impl Strategy<Value = Choice> {
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
    pub(crate) fn containers()(
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

pub(crate) fn node() -> impl Strategy<Value = Node> {
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

pub(crate) fn expr() -> impl Strategy<Value = Expr> {
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
