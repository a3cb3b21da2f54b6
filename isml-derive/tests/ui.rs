//! Compile-fail tests: every mistake gets one precise error on the offending
//! tokens. The expected compiler output is in `tests/ui/<category>/*.stderr`
//! (regenerate with `TRYBUILD=overwrite cargo test -p isml-derive --test ui`
//! and read the diff).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    for category in [
        "tags",
        "attributes",
        "types",
        "enums",
        "unions",
        "ids",
        "recovery",
        "services",
    ] {
        t.compile_fail(format!("tests/ui/{category}/*.rs"));
    }
}
