//! The nesting-depth rule of `docs/wire-format.md` §7, at its exact boundary:
//! for each construct, the smallest `max_depth` that decodes it, asked of
//! generated code and of the dynamic codec, which must agree with each other
//! and with the levels the document counts. One less must fail with a depth
//! error, not any other.

use isml_codegen_tests::alltypes::{Choice, Containers, Expr, Neg, Node, Scalars};
use isml_runtime::Message;
use isml_runtime::wire::{DecodeError, Limits};
use isml_schema::Schema;
use isml_schema::dynamic::{self, DecodeErrorKind, MessageFactory};

/// The most levels any case here needs, plus one.
const ENOUGH: u32 = 8;

fn alltypes() -> Schema {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/alltypes.isml");
    isml_schema::load(&isml_schema::LoadOptions::new([path]))
        .unwrap_or_else(|d| panic!("{}", d.render()))
}

fn generated_needs<M: Message>(bytes: &[u8]) -> u32 {
    let decode = |max_depth| {
        M::decode_slice_with_limits(
            bytes,
            &Limits {
                max_frame: 1 << 20,
                max_depth,
            },
        )
    };
    let need = (0..ENOUGH)
        .find(|&d| decode(d).is_ok())
        .unwrap_or_else(|| panic!("generated code rejects {bytes:02x?} at every depth"));
    if need > 0 {
        let err = decode(need - 1).unwrap_err();
        assert!(
            matches!(err.root(), DecodeError::DepthExceeded { .. }),
            "{err}"
        );
    }
    need
}

fn dynamic_needs(schema: &Schema, name: &str, bytes: &[u8]) -> u32 {
    let desc = MessageFactory::new(schema).find(name).unwrap();
    let need = (0..ENOUGH)
        .find(|&d| dynamic::decode_with_depth(desc, bytes, d).is_ok())
        .unwrap_or_else(|| panic!("the dynamic codec rejects {bytes:02x?} at every depth"));
    if need > 0 {
        let err = dynamic::decode_with_depth(desc, bytes, need - 1).unwrap_err();
        assert_eq!(err.kind(), DecodeErrorKind::DepthExceeded, "{err}");
    }
    need
}

/// `value` needs exactly `levels` levels below the top-level payload, for
/// both decoders.
fn check<M: Message>(schema: &Schema, name: &str, value: &M, levels: u32, why: &str) {
    let bytes = value.encode_to_vec().unwrap();
    assert_eq!(generated_needs::<M>(&bytes), levels, "generated: {why}");
    assert_eq!(
        dynamic_needs(schema, name, &bytes),
        levels,
        "dynamic: {why}"
    );
}

#[test]
fn generated_code_and_the_dynamic_codec_count_the_same_levels() {
    let s = alltypes();
    let s = &s;
    let f64_only = Scalars {
        f64: 1.5,
        ..Scalars::default()
    };
    check(
        s,
        "alltypes.Scalars",
        &Scalars {
            u32: 7,
            f32: 1.5,
            s: "text".into(),
            raw: vec![1, 2].into(),
            ..Scalars::default()
        },
        0,
        "varints, f32, string and bytes fields add no level",
    );
    check(
        s,
        "alltypes.Scalars",
        &f64_only,
        1,
        "an f64 field: its length-delimited content is one level",
    );
    check(
        s,
        "alltypes.Choice",
        &Choice::Ratio(1.5),
        0,
        "a top-level union is level 0, an f32 variant adds nothing",
    );
    check(
        s,
        "alltypes.Choice",
        &Choice::Precise(1.5),
        1,
        "an f64 union variant is length-delimited content: one level",
    );
    check(
        s,
        "alltypes.Choice",
        &Choice::Pair([1, 2]),
        2,
        "an array variant: its content, and the array's elements",
    );
    check(
        s,
        "alltypes.Choice",
        &Choice::Inner(f64_only.clone()),
        2,
        "a message variant holding an f64 field",
    );
    check(
        s,
        "alltypes.Node",
        &Node {
            left: Some(Box::new(Node::default())),
            ..Node::default()
        },
        1,
        "an optional message field: its content only, the optional adds nothing",
    );
    check(
        s,
        "alltypes.Node",
        &Node {
            children: vec![Node::default()],
            ..Node::default()
        },
        2,
        "a list, and a message element in it",
    );
    check(
        s,
        "alltypes.Expr",
        &Expr::Neg(Neg {
            inner: Some(Box::new(Expr::Lit(1))),
        }),
        2,
        "a message variant, then a union field in it",
    );
    check(
        s,
        "alltypes.Containers",
        &Containers::default(),
        2,
        "array fields are always written: content, then elements",
    );
    check(
        s,
        "alltypes.Containers",
        &Containers {
            choices: vec![Choice::Precise(1.5)],
            ..Containers::default()
        },
        3,
        "a list, a union element in it, the f64 variant's content",
    );
    check(
        s,
        "alltypes.Containers",
        &Containers {
            many: vec![f64_only],
            ..Containers::default()
        },
        3,
        "a list, a message element, an f64 field in it",
    );
}

#[test]
fn optional_and_element_forms_count_as_the_document_says() {
    // Types the generated fixtures do not have, through the dynamic codec,
    // whose parity with generated code the test above and dynamic_parity check.
    let s = isml_schema::load_str(
        "d.isml",
        "package d;
         message OptF64 [id = 1] { v: optional<f64> = 1; }
         message ListOptF64 [id = 2] { v: list<optional<f64>> = 1; }
         message ListF64 [id = 3] { v: list<f64> = 1; }
         message ListArray [id = 4] { v: list<array<u8, 2>> = 1; }
         union U { n: u8 = 1; x: f64 = 2; }
         message MapUnion [id = 5] { v: map<u8, U> = 1; }
         message OptU [id = 6] { v: optional<U> = 1; }",
    )
    .unwrap();
    let cases: [(&str, &str, u32, &str); 8] = [
        (
            "d.OptF64",
            "03 08 000000000000f83f",
            1,
            "an optional<f64> field holding a value: the f64 content",
        ),
        (
            "d.ListF64",
            "03 08 000000000000f83f",
            1,
            "f64 elements add nothing",
        ),
        (
            "d.ListOptF64",
            "03 09 01 000000000000f83f",
            2,
            "a list, an optional element",
        ),
        (
            "d.ListOptF64",
            "03 01 00",
            1,
            "an absent optional element (`00`) opens no level",
        ),
        (
            "d.ListArray",
            "03 04 0102 0304",
            2,
            "a list, an array element",
        ),
        (
            "d.MapUnion",
            "03 03 05 05 09",
            2,
            "a map, a union value in it (varint variant)",
        ),
        (
            "d.MapUnion",
            "03 0b 05 0b 08 000000000000f83f",
            3,
            "a map, a union value, its f64 variant",
        ),
        (
            "d.OptU",
            "03 02 05 09",
            1,
            "an optional union field: the content only",
        ),
    ];
    for (name, hex, levels, why) in cases {
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .flat_map(|w| {
                (0..w.len())
                    .step_by(2)
                    .map(move |i| u8::from_str_radix(&w[i..i + 2], 16).unwrap())
            })
            .collect();
        assert_eq!(dynamic_needs(&s, name, &bytes), levels, "{why}");
    }
}
