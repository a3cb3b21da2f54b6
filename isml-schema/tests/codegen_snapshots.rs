//! Snapshots of the Rust generated for every valid fixture and for the
//! project's schemas: any change to the generator shows up as a reviewed diff.

use std::path::Path;

use isml_schema::{LoadOptions, codegen};

fn generate(files: &[&Path], includes: &[&Path]) -> String {
    let options = LoadOptions {
        files: files.iter().map(|p| p.to_path_buf()).collect(),
        include_dirs: includes.iter().map(|p| p.to_path_buf()).collect(),
    };
    let schema = isml_schema::load(&options).unwrap_or_else(|d| panic!("{}", d.render()));
    let mut out = String::new();
    for (package, code) in codegen::generate(&schema) {
        out.push_str(&format!("==== {package}.rs ====\n{code}\n"));
    }
    out
}

#[test]
fn valid_fixtures() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "isml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let code = generate(&[&path], &[&dir]);
        assert!(code.starts_with("==== "));
        assert!(code.contains("// @generated"));
        insta::assert_snapshot!(format!("codegen_{name}"), code);
    }
}

#[test]
fn charging_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let code = generate(&[&root.join("charging.isml")], &[&root]);
    insta::assert_snapshot!("codegen_charging", code);
}

#[test]
fn generation_is_deterministic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let a = generate(&[&root.join("charging.isml")], &[&root]);
    let b = generate(&[&root.join("charging.isml")], &[&root]);
    assert_eq!(a, b);
}

#[test]
fn generated_code_parses_as_rust() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let options = LoadOptions {
        files: vec![root.join("charging.isml")],
        include_dirs: vec![root],
    };
    let schema = isml_schema::load(&options).unwrap();
    for (package, code) in codegen::generate(&schema) {
        syn::parse_file(&code).unwrap_or_else(|e| panic!("{package}: {e}"));
    }
}
