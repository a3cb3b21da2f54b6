//! Hostile input: deeply nested types must produce an error, not a crash.

#[test]
fn deeply_nested_types_are_rejected_cleanly() {
    for depth in [100, 5_000, 100_000] {
        let ty = format!("{}u8{}", "list<".repeat(depth), ">".repeat(depth));
        let text = format!("package p; message M {{ a: {ty} = 1; }}");
        let result = isml_schema::load_str("deep.isml", &text);
        if depth > 32 {
            let err = result.expect_err("too deep");
            assert!(err.render().contains("nested"), "{}", err.render());
        }
    }
}
