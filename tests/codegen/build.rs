//! Compiles the project's schemas and the test fixtures; each `Builder` is one
//! compiled set (message ids are unique within a set). A schema error fails
//! the build with rustc-style diagnostics (`BuildError`'s `Debug`).

fn main() -> Result<(), isml_schema::BuildError> {
    let sets: [&[&str]; 6] = [
        &["../../schemas/charging.isml"],
        &["../../schemas/site.isml"],
        &["schemas/alltypes.isml"],
        &["schemas/evo_v1.isml"],
        &["schemas/evo_v2.isml"],
        &["schemas/multi_a.isml"],
    ];
    for files in sets {
        isml_schema::Builder::new()
            .include("../../schemas")
            .files(files)
            .compile()?;
    }
    // The schema compiler's own valid fixtures must compile as Rust too.
    let fixtures = "../../isml-schema/tests/fixtures/valid";
    for f in [
        "comments_and_docs",
        "imports_main",
        "keywords",
        "literals",
        "recursion",
        "rpc_forms",
        "rpc_once",
    ] {
        isml_schema::Builder::new()
            .include(format!("{fixtures}/lib"))
            .file(format!("{fixtures}/{f}.isml"))
            .compile()?;
    }
    // The name resolution fixtures share `lib/acme_geo.isml`: one set.
    isml_schema::Builder::new()
        .include(format!("{fixtures}/lib"))
        .file(format!("{fixtures}/relative_names.isml"))
        .file(format!("{fixtures}/leading_dot.isml"))
        .compile()?;
    Ok(())
}
