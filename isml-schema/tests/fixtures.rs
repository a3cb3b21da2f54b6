//! Fixture-driven snapshot tests.
//!
//! Every `tests/fixtures/invalid/*.isml` must fail to compile. Its first line
//! names the one [`ErrorKind`] all its diagnostics must have
//! (`// error: DuplicateTag`), or says `// errors: many` for the file that
//! proves many errors are reported together. The rendered diagnostics are
//! snapshotted. Every `tests/fixtures/valid/*.isml` must compile; its IR dump
//! is snapshotted. Files in subdirectories are only reached through imports.

use std::path::{Path, PathBuf};

use isml_schema::{LoadOptions, load};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    // Relative paths keep the file names in snapshots machine-independent;
    // cargo runs integration tests from the package root.
    let dir = Path::new("tests/fixtures").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "isml"))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("file name")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn invalid_fixtures_fail_with_the_declared_error() {
    let files = fixtures("invalid");
    assert!(files.len() >= 30, "only {} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("fixture is readable");
        let first = text.lines().next().unwrap_or_default();
        let err = match load(&LoadOptions::new([path])) {
            Ok(_) => {
                failures.push(format!("{}: compiled without errors", path.display()));
                continue;
            }
            Err(err) => err,
        };
        let rendered = err.render();
        if let Some(kind) = first.strip_prefix("// error: ") {
            let kinds: Vec<String> = err.kinds().iter().map(|k| format!("{k:?}")).collect();
            if kinds.iter().any(|k| k != kind) {
                failures.push(format!(
                    "{}: expected only {kind}, got {kinds:?}\n{rendered}",
                    path.display()
                ));
            }
        } else if first == "// errors: many" {
            let mut kinds = err.kinds();
            kinds.sort_by_key(|k| format!("{k:?}"));
            kinds.dedup();
            if err.len() < 15 || kinds.len() < 10 {
                failures.push(format!(
                    "{}: expected many errors of many kinds, got {} of {} kinds",
                    path.display(),
                    err.len(),
                    kinds.len()
                ));
            }
        } else {
            failures.push(format!(
                "{}: first line must be `// error: Kind` or `// errors: many`",
                path.display()
            ));
        }
        insta::with_settings!({
            snapshot_path => "snapshots/invalid",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(stem(path), rendered);
        });
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn valid_fixtures_compile() {
    let files = fixtures("valid");
    assert!(!files.is_empty());
    for path in &files {
        let schema = match load(&LoadOptions::new([path])) {
            Ok(schema) => schema,
            Err(err) => panic!("{} failed:\n{}", path.display(), err.render()),
        };
        // A compiled schema passes the source-free validation too.
        if let Err(err) = schema.validate() {
            panic!("{} failed validation:\n{}", path.display(), err.render());
        }
        insta::with_settings!({
            snapshot_path => "snapshots/valid",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(stem(path), schema.dump());
        });
    }
}
