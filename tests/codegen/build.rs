//! Compiles the project's schemas and the test fixtures; each `Builder` is one
//! compiled set (message ids are unique within a set).

fn main() {
    let sets: [&[&str]; 4] = [
        &["../../schemas/charging.isml"],
        &["schemas/alltypes.isml"],
        &["schemas/evo_v1.isml"],
        &["schemas/evo_v2.isml"],
    ];
    for files in sets {
        isml_schema::Builder::new()
            .include("../../schemas")
            .files(files)
            .compile()
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
