//! `format::format_source` on every valid fixture and on the project's
//! schemas: idempotent, and the formatted files compile to the same IR
//! (same fingerprints, same docs) as the originals.

use std::path::{Path, PathBuf};

use isml_schema::format::format_source;
use isml_schema::{LoadOptions, load};

fn isml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            isml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "isml") {
            out.push(path);
        }
    }
}

/// Formats every file under `src` into `dst` (same relative paths) and
/// checks that each root compiles to the same IR dump.
fn check_tree(src: &Path, roots: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    isml_files(src, &mut files);
    assert!(!files.is_empty());
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let once =
            format_source(&text).unwrap_or_else(|d| panic!("{}: {}", f.display(), d.render()));
        let twice = format_source(&once).unwrap();
        assert_eq!(once, twice, "{}: formatting is idempotent", f.display());
        let rel = f.strip_prefix(src).unwrap();
        let target = tmp.path().join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, once).unwrap();
    }
    for root in roots {
        let before = load(&LoadOptions::new([src.join(root)]).include_dir(src))
            .unwrap_or_else(|d| panic!("{}", d.render()));
        let after = load(&LoadOptions::new([tmp.path().join(root)]).include_dir(tmp.path()))
            .unwrap_or_else(|d| panic!("formatted {root}: {}", d.render()));
        assert_eq!(
            before.dump(),
            after.dump(),
            "{root}: same IR after formatting"
        );
        for (id, t) in before.types_iter() {
            assert_eq!(
                before.fingerprint(id),
                after.fingerprint(after.lookup(&t.full_name()).unwrap()),
                "{}",
                t.full_name()
            );
        }
    }
}

#[test]
fn valid_fixtures_keep_their_meaning() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let mut roots: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension().is_some_and(|e| e == "isml"))
                .then(|| p.file_name().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    roots.sort();
    let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
    check_tree(&dir, &roots);
}

#[test]
fn project_schemas_keep_their_meaning() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    check_tree(
        &dir,
        &["charging.isml", "common.isml", "site.isml", "geo.isml"],
    );
}

#[test]
fn every_comment_is_kept() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let text = std::fs::read_to_string(dir.join("charging.isml")).unwrap();
    let out = format_source(&text).unwrap();
    for line in text.lines() {
        if let Some(i) = line.find("//") {
            let comment = line[i..].trim_end();
            assert!(out.contains(comment), "lost {comment:?}");
        }
    }
}
