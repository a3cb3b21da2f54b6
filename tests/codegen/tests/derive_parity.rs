//! Derived twins of the `alltypes.isml` types encode byte for byte like the
//! schema-generated types and have the same fingerprints, whatever the order
//! of their Rust fields (each twin declares its fields shuffled).
//!
//! Also: the run-time fingerprint computed from descriptors equals the
//! schema compiler's for every generated type, and the schema exported from
//! the derived types compiles back to the same fingerprints.

mod strategies;

use strategies::{choice, containers, expr, node, scalars};

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use isml_codegen_tests::alltypes as g;
use isml_runtime::descriptor::{self, Reflect, TypeRef};
use isml_runtime::wire::Class;
use isml_runtime::{Message, TopLevel, View, Viewable};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// The twins
// ---------------------------------------------------------------------------

/// Colours, with a gap in the values.
#[derive(Debug, Clone, Copy, PartialEq, isml_runtime::Enum)]
#[repr(u32)]
enum Color {
    Blue = 5,
    Red = 0,
    Green = 1,
    #[isml(name = "unknown")]
    Seven = 7,
    // Last, so that its implicit discriminant (8) clashes with nothing.
    #[isml(unknown)]
    Other(u32),
}

/// Every scalar; `bytes` as a `Vec<u8>`.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1)]
struct Scalars {
    #[isml(tag = 14)]
    c: Color,
    #[isml(tag = 12)]
    s: String,
    #[isml(tag = 2)]
    u8: u8,
    #[isml(tag = 13)]
    raw: Vec<u8>,
    #[isml(tag = 1)]
    b: bool,
    #[isml(tag = 11)]
    f64: f64,
    #[isml(tag = 5)]
    u64: u64,
    #[isml(tag = 7)]
    i16: i16,
    #[isml(tag = 3)]
    u16: u16,
    #[isml(tag = 10)]
    f32: f32,
    #[isml(tag = 9)]
    i64: i64,
    #[isml(tag = 4)]
    u32: u32,
    #[isml(tag = 8)]
    i32: i32,
    #[isml(tag = 6)]
    i8: i8,
}

/// The same with `bytes` as `bytes::Bytes` and qualified std paths.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 1, name = "Scalars")]
struct ScalarsBytes {
    #[isml(tag = 13)]
    raw: bytes::Bytes,
    #[isml(tag = 1)]
    b: bool,
    #[isml(tag = 2)]
    u8: core::primitive::u8,
    #[isml(tag = 3)]
    u16: u16,
    #[isml(tag = 4)]
    u32: u32,
    #[isml(tag = 5)]
    u64: u64,
    #[isml(tag = 6)]
    i8: i8,
    #[isml(tag = 7)]
    i16: i16,
    #[isml(tag = 8)]
    i32: i32,
    #[isml(tag = 9)]
    i64: i64,
    #[isml(tag = 10)]
    f32: f32,
    #[isml(tag = 11)]
    f64: f64,
    #[isml(tag = 12)]
    s: std::string::String,
    #[isml(tag = 14)]
    c: Color,
}

/// Containers of every kind.
#[derive(Debug, Clone, PartialEq, isml_runtime::Message)]
#[isml(id = 2)]
struct Containers {
    #[isml(tag = 25)]
    by_u64: HashMap<u64, Scalars>,
    #[isml(tag = 15)]
    big: [u16; 40],
    #[isml(tag = 3, list)]
    list_u8: Vec<u8>,
    #[isml(tag = 1)]
    opt_u32: Option<u32>,
    #[isml(tag = 24)]
    choices: Vec<Choice>,
    #[isml(tag = 2)]
    opt_str: Option<String>,
    #[isml(tag = 4)]
    list_u32: Vec<u32>,
    #[isml(tag = 22)]
    choice: Choice,
    #[isml(tag = 5)]
    list_i64: Vec<i64>,
    #[isml(tag = 6)]
    list_f32: Vec<f32>,
    #[isml(tag = 7)]
    list_f64: Vec<f64>,
    #[isml(tag = 8)]
    list_str: Vec<String>,
    #[isml(tag = 9)]
    list_bool: Vec<bool>,
    #[isml(tag = 10)]
    nested: Vec<Vec<u16>>,
    #[isml(tag = 11)]
    by_name: HashMap<String, i32>,
    #[isml(tag = 12)]
    by_id: BTreeMap<i32, String>,
    #[isml(tag = 13)]
    flags: BTreeMap<bool, u8>,
    #[isml(tag = 14)]
    mac: [u8; 6],
    #[isml(tag = 16)]
    names: [String; 2],
    #[isml(tag = 17)]
    opt_list: Vec<Option<u32>>,
    #[isml(tag = 18)]
    colors: Vec<Color>,
    #[isml(tag = 19)]
    scalars: Scalars,
    #[isml(tag = 20)]
    maybe: Option<Scalars>,
    #[isml(tag = 21)]
    many: Vec<Scalars>,
}

impl Default for Containers {
    fn default() -> Self {
        Containers {
            by_u64: HashMap::new(),
            big: [0; 40],
            list_u8: Vec::new(),
            opt_u32: None,
            choices: Vec::new(),
            opt_str: None,
            list_u32: Vec::new(),
            choice: Choice::default(),
            list_i64: Vec::new(),
            list_f32: Vec::new(),
            list_f64: Vec::new(),
            list_str: Vec::new(),
            list_bool: Vec::new(),
            nested: Vec::new(),
            by_name: HashMap::new(),
            by_id: BTreeMap::new(),
            flags: BTreeMap::new(),
            mac: [0; 6],
            names: Default::default(),
            opt_list: Vec::new(),
            colors: Vec::new(),
            scalars: Scalars::default(),
            maybe: None,
            many: Vec::new(),
        }
    }
}

/// One of several things.
#[derive(Debug, Clone, PartialEq, isml_runtime::Union)]
#[isml(id = 3)]
enum Choice {
    #[isml(tag = 7)]
    Inner(Scalars),
    #[isml(tag = 3)]
    Ratio(f32),
    #[isml(unknown)]
    Unknown {
        tag: u64,
        class: Class,
        bytes: Bytes,
    },
    #[isml(tag = 1)]
    Nothing(Empty),
    #[isml(tag = 2)]
    Number(i64),
    #[isml(tag = 4)]
    Precise(f64),
    #[isml(tag = 5)]
    Text(String),
    #[isml(tag = 6)]
    Pair([u8; 2]),
}

/// No fields at all (a unit struct).
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Empty;

/// A tree: recursion through optional and list.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 4)]
struct Node {
    #[isml(tag = 5, max_len = 8)]
    label: Option<String>,
    #[isml(tag = 4)]
    children: Vec<Node>,
    #[isml(tag = 3)]
    right: Option<Box<Self>>,
    #[isml(tag = 2)]
    left: Option<Box<Node>>,
    #[isml(tag = 1)]
    value: i32,
}

/// Mutual recursion through a union.
#[derive(Debug, Clone, PartialEq, isml_runtime::Union)]
#[isml(id = 5)]
enum Expr {
    #[isml(tag = 3)]
    Sum(Sum),
    #[isml(tag = 2)]
    Neg(Neg),
    #[isml(tag = 1)]
    Lit(i64),
    #[isml(unknown)]
    Unknown {
        tag: u64,
        class: Class,
        bytes: Bytes,
    },
}

/// Negation.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Neg {
    #[isml(tag = 1)]
    inner: Option<Box<Expr>>,
}

/// Sum of terms.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
struct Sum {
    #[isml(tag = 1)]
    terms: Vec<Expr>,
}

/// Names that are Rust keywords.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 6, name = "type")]
struct Keywords {
    #[isml(tag = 9)]
    r#move: u8,
    #[isml(tag = 1)]
    r#type: u8,
    #[isml(tag = 2)]
    r#match: String,
    #[isml(tag = 3, name = "self")]
    self_: bool,
    #[isml(tag = 4, name = "Self")]
    self_upper: u16,
    #[isml(tag = 5)]
    r#async: i32,
    #[isml(tag = 6, name = "fooBar")]
    foo_bar_camel: u8,
    #[isml(tag = 7)]
    foo_bar: u8,
    #[isml(tag = 8, name = "crate")]
    krate: u8,
}

/// Attribute enforcement.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 7)]
struct Limited {
    #[isml(tag = 6, deprecated)]
    old: u32,
    #[isml(tag = 5, max_len = 2)]
    tags: HashMap<String, u8>,
    #[isml(tag = 1, max_len = 4)]
    name: String,
    #[isml(tag = 2, range = -40..=85, unit = "degC")]
    temp: f32,
    #[isml(tag = 3, range = 1..=10)]
    level: Option<u8>,
    #[isml(tag = 4, max_len = 3)]
    items: Vec<u32>,
}

/// Sparse tags.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 300)]
struct Sparse {
    #[isml(tag = 255)]
    last: u8,
    #[isml(tag = 1)]
    first: u8,
}

/// The worked example of the wire format spec.
#[derive(Debug, Clone, PartialEq, Default, isml_runtime::Message)]
#[isml(id = 8)]
struct SlotTelemetry {
    #[isml(tag = 6)]
    energy_wh: u64,
    #[isml(tag = 5)]
    charging: bool,
    #[isml(tag = 4)]
    temperature_c: f32,
    #[isml(tag = 3)]
    current_ma: i32,
    #[isml(tag = 2)]
    voltage_mv: u32,
    #[isml(tag = 1)]
    slot: u8,
}

// ---------------------------------------------------------------------------
// Conversions from the generated types
// ---------------------------------------------------------------------------

impl From<g::Color> for Color {
    fn from(c: g::Color) -> Self {
        match c {
            g::Color::Red => Color::Red,
            g::Color::Green => Color::Green,
            g::Color::Blue => Color::Blue,
            g::Color::Unknown7 => Color::Seven,
            g::Color::Unknown(v) => Color::Other(v),
        }
    }
}

impl From<g::Scalars> for Scalars {
    fn from(v: g::Scalars) -> Self {
        Scalars {
            b: v.b,
            u8: v.u8,
            u16: v.u16,
            u32: v.u32,
            u64: v.u64,
            i8: v.i8,
            i16: v.i16,
            i32: v.i32,
            i64: v.i64,
            f32: v.f32,
            f64: v.f64,
            s: v.s,
            raw: v.raw.to_vec(),
            c: v.c.into(),
        }
    }
}

impl From<g::Scalars> for ScalarsBytes {
    fn from(v: g::Scalars) -> Self {
        ScalarsBytes {
            b: v.b,
            u8: v.u8,
            u16: v.u16,
            u32: v.u32,
            u64: v.u64,
            i8: v.i8,
            i16: v.i16,
            i32: v.i32,
            i64: v.i64,
            f32: v.f32,
            f64: v.f64,
            s: v.s,
            raw: v.raw,
            c: v.c.into(),
        }
    }
}

impl From<g::Empty> for Empty {
    fn from(_: g::Empty) -> Self {
        Empty
    }
}

impl From<g::Choice> for Choice {
    fn from(v: g::Choice) -> Self {
        match v {
            g::Choice::Nothing(e) => Choice::Nothing(e.into()),
            g::Choice::Number(n) => Choice::Number(n),
            g::Choice::Ratio(r) => Choice::Ratio(r),
            g::Choice::Precise(p) => Choice::Precise(p),
            g::Choice::Text(t) => Choice::Text(t),
            g::Choice::Pair(p) => Choice::Pair(p),
            g::Choice::Inner(s) => Choice::Inner(s.into()),
            g::Choice::Unknown { tag, class, bytes } => Choice::Unknown { tag, class, bytes },
        }
    }
}

impl From<g::Containers> for Containers {
    fn from(v: g::Containers) -> Self {
        Containers {
            opt_u32: v.opt_u32,
            opt_str: v.opt_str,
            list_u8: v.list_u8,
            list_u32: v.list_u32,
            list_i64: v.list_i64,
            list_f32: v.list_f32,
            list_f64: v.list_f64,
            list_str: v.list_str,
            list_bool: v.list_bool,
            nested: v.nested,
            by_name: v.by_name.into_iter().collect(),
            by_id: v.by_id,
            flags: v.flags,
            mac: v.mac,
            big: v.big,
            names: v.names,
            opt_list: v.opt_list,
            colors: v.colors.into_iter().map(Into::into).collect(),
            scalars: v.scalars.into(),
            maybe: v.maybe.map(Into::into),
            many: v.many.into_iter().map(Into::into).collect(),
            choice: v.choice.into(),
            choices: v.choices.into_iter().map(Into::into).collect(),
            by_u64: v.by_u64.into_iter().map(|(k, s)| (k, s.into())).collect(),
        }
    }
}

impl From<g::Node> for Node {
    fn from(v: g::Node) -> Self {
        Node {
            value: v.value,
            left: v.left.map(|n| Box::new((*n).into())),
            right: v.right.map(|n| Box::new((*n).into())),
            children: v.children.into_iter().map(Into::into).collect(),
            label: v.label,
        }
    }
}

impl From<g::Expr> for Expr {
    fn from(v: g::Expr) -> Self {
        match v {
            g::Expr::Lit(n) => Expr::Lit(n),
            g::Expr::Neg(n) => Expr::Neg(Neg {
                inner: n.inner.map(|e| Box::new((*e).into())),
            }),
            g::Expr::Sum(s) => Expr::Sum(Sum {
                terms: s.terms.into_iter().map(Into::into).collect(),
            }),
            g::Expr::Unknown { tag, class, bytes } => Expr::Unknown { tag, class, bytes },
        }
    }
}

impl From<g::Type> for Keywords {
    fn from(v: g::Type) -> Self {
        Keywords {
            r#type: v.r#type,
            r#match: v.r#match,
            self_: v.self_,
            self_upper: v.self_4,
            r#async: v.r#async,
            foo_bar_camel: v.foo_bar,
            foo_bar: v.foo_bar_7,
            krate: v.crate_,
            r#move: v.r#move,
        }
    }
}

#[allow(deprecated)]
impl From<g::Limited> for Limited {
    fn from(v: g::Limited) -> Self {
        Limited {
            name: v.name,
            temp: v.temp,
            level: v.level,
            items: v.items,
            tags: v.tags.into_iter().collect(),
            old: v.old,
        }
    }
}

impl From<g::Sparse> for Sparse {
    fn from(v: g::Sparse) -> Self {
        Sparse {
            first: v.first,
            last: v.last,
        }
    }
}

impl From<g::SlotTelemetry> for SlotTelemetry {
    fn from(v: g::SlotTelemetry) -> Self {
        SlotTelemetry {
            slot: v.slot,
            voltage_mv: v.voltage_mv,
            current_ma: v.current_ma,
            temperature_c: v.temperature_c,
            charging: v.charging,
            energy_wh: v.energy_wh,
        }
    }
}

// ---------------------------------------------------------------------------
// Strategies for the generated types
// ---------------------------------------------------------------------------

prop_compose! {
    fn keywords()(
        t in any::<u8>(), m in ".{0,6}", s in any::<bool>(), s4 in any::<u16>(),
        a in any::<i32>(), f in any::<u8>(), f7 in any::<u8>(), c in any::<u8>(), mv in any::<u8>(),
    ) -> g::Type {
        g::Type {
            r#type: t, r#match: m, self_: s, self_4: s4, r#async: a, foo_bar: f,
            foo_bar_7: f7, crate_: c, r#move: mv,
        }
    }
}

prop_compose! {
    #[allow(deprecated)]
    fn limited()(
        name in "[a-z]{0,4}", temp in -40.0f32..=85.0, level in proptest::option::of(1u8..=10),
        items in proptest::collection::vec(any::<u32>(), 0..=3),
        tags in proptest::collection::btree_map("[a-z]{0,3}", any::<u8>(), 0..=2),
        old in any::<u32>(),
    ) -> g::Limited {
        g::Limited { name, temp, level, items, tags, old }
    }
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// The twin encodes to the same bytes as the generated value; each decodes
/// the other's bytes (owned and as a view) and re-encodes them identically.
fn check_parity<G, D>(generated: &G, derived: &D)
where
    G: Viewable,
    D: Viewable,
{
    let gb = generated.encode_to_vec().expect("generated value encodes");
    let db = derived.encode_to_vec().expect("derived value encodes");
    assert_eq!(gb, db, "identical bytes for {derived:?}");
    assert_eq!(derived.encoded_len(), db.len(), "exact encoded_len");

    let d_back = D::decode_slice(&gb).expect("the derived type decodes generated bytes");
    assert_eq!(d_back.encode_to_vec().unwrap(), gb);
    let d_shared = D::decode(Bytes::from(gb.clone())).expect("decodes from Bytes");
    assert_eq!(d_shared.encode_to_vec().unwrap(), gb);
    let d_view = D::view(&gb).expect("the derived view reads generated bytes");
    assert_eq!(d_view.to_owned_message().encode_to_vec().unwrap(), gb);

    let g_back = G::decode_slice(&db).expect("the generated type decodes derived bytes");
    assert_eq!(g_back.encode_to_vec().unwrap(), db);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn scalars_parity(v in scalars()) {
        check_parity(&v, &Scalars::from(v.clone()));
        check_parity(&v, &ScalarsBytes::from(v.clone()));
    }

    #[test]
    fn containers_parity(v in containers()) {
        check_parity(&v, &Containers::from(v.clone()));
    }

    /// The derived lazy view reads lists and maps (a `Vec`, a `BTreeMap`, a
    /// `HashMap`) through the same lazy iterators as the generated one.
    #[test]
    fn derived_lazy_containers_read_what_was_encoded(v in containers()) {
        let bytes = v.encode_to_vec().unwrap();
        let l = ContainersLazy::new(&bytes).unwrap();
        let list_u32: Vec<u32> = l.list_u32().unwrap().map(Result::unwrap).collect();
        prop_assert_eq!(&list_u32, &v.list_u32);
        let list_str: Vec<&str> = l.list_str().unwrap().map(Result::unwrap).collect();
        prop_assert_eq!(list_str, v.list_str.iter().map(String::as_str).collect::<Vec<_>>());
        let by_name: BTreeMap<&str, i32> = l.by_name().unwrap().map(Result::unwrap).collect();
        prop_assert_eq!(by_name.len(), v.by_name.len());
        for (k, x) in &v.by_name {
            prop_assert_eq!(by_name.get(k.as_str()), Some(x));
        }
        let by_u64: Vec<u64> = l.by_u64().unwrap().map(|e| e.unwrap().0).collect();
        prop_assert_eq!(by_u64, v.by_u64.keys().copied().collect::<Vec<_>>());
    }

    #[test]
    fn union_parity(v in choice()) {
        check_parity(&v, &Choice::from(v.clone()));
    }

    #[test]
    fn recursive_message_parity(v in node()) {
        check_parity(&v, &Node::from(v.clone()));
    }

    #[test]
    fn mutually_recursive_union_parity(v in expr()) {
        check_parity(&v, &Expr::from(v.clone()));
    }

    #[test]
    fn keyword_names_parity(v in keywords()) {
        check_parity(&v, &Keywords::from(v.clone()));
    }

    #[test]
    fn attributes_parity(v in limited()) {
        check_parity(&v, &Limited::from(v.clone()));
    }

    #[test]
    fn sparse_tags_parity(first in any::<u8>(), last in any::<u8>()) {
        let v = g::Sparse { first, last };
        check_parity(&v, &Sparse::from(v.clone()));
    }

    #[test]
    fn worked_example_parity(
        slot in any::<u8>(), voltage_mv in any::<u32>(), current_ma in any::<i32>(),
        temperature_c in any::<f32>(), charging in any::<bool>(), energy_wh in any::<u64>(),
    ) {
        let v = g::SlotTelemetry { slot, voltage_mv, current_ma, temperature_c, charging, energy_wh };
        check_parity(&v, &SlotTelemetry::from(v.clone()));
    }
}

#[test]
fn empty_message_parity() {
    check_parity(&g::Empty {}, &Empty);
    check_parity(&g::Choice::Nothing(g::Empty {}), &Choice::Nothing(Empty));
}

#[test]
fn the_worked_example_bytes() {
    // docs/wire-format.md §9.
    let v = SlotTelemetry {
        slot: 3,
        voltage_mv: 48_100,
        current_ma: -1_500,
        temperature_c: 31.5,
        charging: true,
        energy_wh: 0,
    };
    let generated = g::SlotTelemetry {
        slot: 3,
        voltage_mv: 48_100,
        current_ma: -1_500,
        temperature_c: 31.5,
        charging: true,
        energy_wh: 0,
    };
    assert_eq!(
        v.encode_to_vec().unwrap(),
        generated.encode_to_vec().unwrap()
    );
}

#[test]
fn attributes_are_enforced_like_generated_code() {
    let long = Limited {
        name: "too long".into(),
        ..Limited::default()
    };
    let err = long.encode_to_vec().unwrap_err().to_string();
    assert_eq!(
        err,
        "`derive_parity.Limited.name`: length 8 exceeds max_len 4"
    );
    let hot = Limited {
        temp: 90.5,
        ..Limited::default()
    };
    assert!(hot.encode_to_vec().is_err());
    // Decoding enforces them too: generated bytes past the limit are refused.
    let mut bytes = Vec::new();
    g::Limited {
        name: "ok".into(),
        ..g::Limited::default()
    }
    .encode(&mut bytes)
    .unwrap();
    assert!(Limited::decode_slice(&bytes).is_ok());
}

#[test]
fn unknown_enum_values_and_union_variants_are_kept() {
    let v = Scalars {
        c: Color::Other(42),
        ..Scalars::default()
    };
    let back = Scalars::decode_slice(&v.encode_to_vec().unwrap()).unwrap();
    assert_eq!(back.c, Color::Other(42));
    assert_eq!(isml_runtime::Enum::to_u32(Color::Seven), 7);
    assert_eq!(Color::default(), Color::Red, "the default is value 0");

    let unknown = g::Choice::Unknown {
        tag: 9,
        class: Class::Varint,
        bytes: Bytes::from_static(&[5]),
    };
    let bytes = unknown.encode_to_vec().unwrap();
    let derived = Choice::decode_slice(&bytes).unwrap();
    assert_eq!(
        derived,
        Choice::Unknown {
            tag: 9,
            class: Class::Varint,
            bytes: Bytes::from_static(&[5])
        }
    );
    assert_eq!(
        derived.encode_to_vec().unwrap(),
        bytes,
        "forwarded unchanged"
    );
    // A derived union checks an unknown variant built by hand as the
    // generated one does.
    let reason = |e| match e {
        isml_runtime::wire::EncodeError::InvalidUnknownVariant { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    let bad = Choice::Unknown {
        tag: 9,
        class: Class::Fixed32,
        bytes: Bytes::from_static(&[1, 2]),
    };
    let generated_bad = g::Choice::Unknown {
        tag: 9,
        class: Class::Fixed32,
        bytes: Bytes::from_static(&[1, 2]),
    };
    assert_eq!(
        reason(bad.encode_to_vec().unwrap_err()),
        reason(generated_bad.encode_to_vec().unwrap_err())
    );
    assert_eq!(
        Choice::default(),
        Choice::Nothing(Empty),
        "the lowest tag's default"
    );
}

// ---------------------------------------------------------------------------
// Fingerprints
// ---------------------------------------------------------------------------

fn message_fp<T: Reflect>() -> u64 {
    descriptor::fingerprint(
        T::TYPE_REF
            .message_descriptor()
            .expect("a message or union"),
    )
}

#[test]
fn derived_fingerprints_equal_the_schema_compilers() {
    assert_eq!(
        <Scalars as TopLevel>::fingerprint(),
        g::Scalars::FINGERPRINT
    );
    assert_eq!(
        <ScalarsBytes as TopLevel>::fingerprint(),
        g::Scalars::FINGERPRINT
    );
    assert_eq!(
        <Containers as TopLevel>::fingerprint(),
        g::Containers::FINGERPRINT
    );
    assert_eq!(<Choice as TopLevel>::fingerprint(), g::Choice::FINGERPRINT);
    assert_eq!(message_fp::<Empty>(), g::Empty::FINGERPRINT);
    assert_eq!(<Node as TopLevel>::fingerprint(), g::Node::FINGERPRINT);
    assert_eq!(<Expr as TopLevel>::fingerprint(), g::Expr::FINGERPRINT);
    assert_eq!(message_fp::<Neg>(), g::Neg::FINGERPRINT);
    assert_eq!(message_fp::<Sum>(), g::Sum::FINGERPRINT);
    assert_eq!(<Keywords as TopLevel>::fingerprint(), g::Type::FINGERPRINT);
    assert_eq!(
        <Limited as TopLevel>::fingerprint(),
        g::Limited::FINGERPRINT
    );
    assert_eq!(<Sparse as TopLevel>::fingerprint(), g::Sparse::FINGERPRINT);
    assert_eq!(
        <SlotTelemetry as TopLevel>::fingerprint(),
        g::SlotTelemetry::FINGERPRINT
    );
    assert_eq!(
        descriptor::type_canonical_form(&TypeRef::of::<Color>()),
        descriptor::type_canonical_form(&TypeRef::of::<g::Color>()),
    );
    // Cached: a second call agrees.
    assert_eq!(<Node as TopLevel>::fingerprint(), g::Node::FINGERPRINT);
    assert_eq!(<Node as TopLevel>::TYPE_ID, 4);
    assert_eq!(<Sparse as TopLevel>::TYPE_ID, 300);
}

#[test]
fn derived_descriptors_describe_the_schema() {
    let d = <Limited as TopLevel>::descriptor();
    assert_eq!(
        d.full_name, "derive_parity.Limited",
        "default package: the crate name"
    );
    let tags: Vec<u32> = d.fields.iter().map(|f| f.tag).collect();
    assert_eq!(tags, [1, 2, 3, 4, 5, 6], "fields in tag order");
    let temp = d.field("temp").unwrap();
    assert_eq!(temp.range, Some((-40, 85)));
    assert_eq!(temp.unit, Some("degC"));
    assert!(d.field("old").unwrap().deprecated);
    assert_eq!(d.docs, "Attribute enforcement.");
    let k = <Keywords as TopLevel>::descriptor();
    assert_eq!(k.name, "type");
    let choice = <Choice as TopLevel>::descriptor();
    assert!(
        choice.field("nothing").is_some(),
        "variants are snake_case in schemas"
    );
    assert!(k.field("self").is_some() && k.field("match").is_some());
    assert!(matches!(
        <Scalars as TopLevel>::descriptor().field("raw").unwrap().ty,
        TypeRef::Bytes
    ));
    assert!(matches!(
        <Containers as TopLevel>::descriptor()
            .field("list_u8")
            .unwrap()
            .ty,
        TypeRef::List(TypeRef::U8)
    ));
}

/// The run-time canonical form (from descriptors) equals the schema
/// compiler's for every generated message and union.
#[test]
fn runtime_fingerprints_equal_compile_time_ones_for_every_generated_type() {
    use isml_codegen_tests::{charging::v1 as c, common, evo, fixtures as f, geometry};
    macro_rules! check {
        ($($t:path),* $(,)?) => {{
            let mut n = 0;
            $(
                let d = <$t>::descriptor();
                assert_eq!(descriptor::fingerprint(d), <$t>::FINGERPRINT, "{}", d.full_name);
                assert_eq!(d.fingerprint, <$t>::FINGERPRINT);
                n += 1;
            )*
            n
        }};
    }
    let n = check!(
        g::Choice,
        g::Containers,
        g::Empty,
        g::Expr,
        g::Limited,
        g::Neg,
        g::Node,
        g::Scalars,
        g::SlotTelemetry,
        g::Sparse,
        g::Sum,
        g::Type,
        c::BatteryInfo,
        c::ChargeStarted,
        c::ChargeStopped,
        c::Command,
        c::Fault,
        c::FirmwareReport,
        c::GetFirmware,
        c::MeterReading,
        c::Reboot,
        c::SetDoorLock,
        c::Slot,
        c::SlotReading,
        c::StartCharging,
        c::StatusReport,
        c::StopCharging,
        c::Variable,
        c::VariableValue,
        c::WatchSlot,
        common::Address,
        common::FirmwareInfo,
        common::Timestamp,
        common::Version,
        evo::v1::Pick,
        evo::v1::Reading,
        evo::v2::Inner,
        evo::v2::Pick,
        evo::v2::Reading,
        f::docs::Paint,
        f::docs::Shape,
        f::keywords::Stream,
        f::keywords::Type,
        f::keywords::Union,
        f::literals::Literals,
        f::recursion::Json,
        f::recursion::Node,
        f::recursion::Other,
        f::shop::Order,
        geometry::Point,
        geometry::Shape,
    );
    assert_eq!(n, 51);
    // And through the TopLevel method of generated types.
    assert_eq!(<g::Node as TopLevel>::fingerprint(), g::Node::FINGERPRINT);
}

// ---------------------------------------------------------------------------
// Schema export
// ---------------------------------------------------------------------------

#[test]
fn exported_schema_compiles_back_to_the_same_fingerprints() {
    let roots = [
        TypeRef::of::<Containers>(),
        TypeRef::of::<Node>(),
        TypeRef::of::<Expr>(),
        TypeRef::of::<Keywords>(),
        TypeRef::of::<Limited>(),
        TypeRef::of::<Sparse>(),
        TypeRef::of::<SlotTelemetry>(),
    ];
    let text = isml_runtime::export_schema(&roots).expect("exports");
    assert!(text.contains("package derive_parity;"), "{text}");
    assert!(text.contains("list_u8: list<u8> = 3;"), "{text}");
    assert!(text.contains("raw: bytes = 13;"), "{text}");
    assert!(
        text.contains("temp: f32 = 2 [unit = \"degC\", range = -40..=85];"),
        "{text}"
    );
    let schema = isml_schema::load_str("exported.isml", &text)
        .unwrap_or_else(|e| panic!("{}\n{text}", e.render()));
    let expected: [(&str, u64); 12] = [
        ("Scalars", g::Scalars::FINGERPRINT),
        ("Containers", g::Containers::FINGERPRINT),
        ("Choice", g::Choice::FINGERPRINT),
        ("Empty", g::Empty::FINGERPRINT),
        ("Node", g::Node::FINGERPRINT),
        ("Expr", g::Expr::FINGERPRINT),
        ("Neg", g::Neg::FINGERPRINT),
        ("Sum", g::Sum::FINGERPRINT),
        ("type", g::Type::FINGERPRINT),
        ("Limited", g::Limited::FINGERPRINT),
        ("Sparse", g::Sparse::FINGERPRINT),
        ("SlotTelemetry", g::SlotTelemetry::FINGERPRINT),
    ];
    for (name, fp) in expected {
        let id = schema
            .lookup(&format!("derive_parity.{name}"))
            .unwrap_or_else(|| panic!("{name} exported\n{text}"));
        assert_eq!(schema.fingerprint(id), fp, "{name}\n{text}");
    }
    let color = schema.lookup("derive_parity.Color").unwrap();
    assert_eq!(schema.canonical_form(color), "enum{0,1,5,7}");
}

#[test]
fn export_refuses_what_one_schema_file_cannot_hold() {
    use isml_runtime::ExportError;
    assert_eq!(isml_runtime::export_schema(&[]), Err(ExportError::Empty));
    // Two types with id 1.
    assert!(matches!(
        isml_runtime::export_schema(&[TypeRef::of::<Scalars>(), TypeRef::of::<ScalarsBytes>()]),
        Err(ExportError::DuplicateName { .. } | ExportError::DuplicateId { .. })
    ));
    // A derived type and a generated one live in different packages.
    assert!(matches!(
        isml_runtime::export_schema(&[TypeRef::of::<Node>(), TypeRef::of::<g::Node>()]),
        Err(ExportError::MixedPackages { .. })
    ));
}
