//! The schemas shipped with the runtime and the Rust code generated from
//! them, checked in so that the runtime needs no build script: they must
//! not drift apart.

/// Regenerate with
/// `cargo run -p isml-cli -- gen isml-runtime/schemas/text.isml --out /tmp/g`
/// and copy `/tmp/g/isml.text.rs` to `isml-runtime/src/text/generated.rs`.
#[test]
fn the_text_protocol_types_are_generated_from_their_schema() {
    let schema = isml_schema::load_str(
        "text.isml",
        include_str!("../../isml-runtime/schemas/text.isml"),
    )
    .unwrap_or_else(|d| panic!("isml-runtime/schemas/text.isml: {d:?}"));
    let generated = isml_schema::codegen::generate(&schema);
    let [(package, code)] = generated.as_slice() else {
        panic!("one package expected, got {}", generated.len());
    };
    assert_eq!(package, "isml.text");
    let checked_in = include_str!("../../isml-runtime/src/text/generated.rs");
    assert!(
        code == checked_in,
        "isml-runtime/src/text/generated.rs is not what text.isml generates; regenerate it"
    );
}
