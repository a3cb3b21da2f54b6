//! Build errors read like rustc's output wherever a build script lets them
//! surface: returned from `main` (prost-build's documented pattern) or
//! `unwrap()`ped. Both print the error's `Debug`, so that is what is tested,
//! in-process and through the real `Termination` and panic paths in a child
//! process.

use std::path::{Path, PathBuf};
use std::process::Command;

use isml_schema::{BuildError, Builder, compile_files};

/// Tells a child process where the broken schema is.
const CHILD_DIR: &str = "ISML_BUILD_ERRORS_CHILD_DIR";

const BROKEN: &str = "package demo;\n\nmessage Reading [id = 1] {\n    value: u9 = 1;\n}\n";

/// A directory holding `bad.isml`, whose one error is the unknown type `u9`
/// at line 4, column 12.
fn broken_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("bad.isml"), BROKEN).expect("write");
    dir
}

/// What every rendering of the broken schema's error must show.
fn assert_rendered(text: &str, file: &Path) {
    let at = format!("--> {}:4:12", file.display());
    for expected in [
        "error: unknown type `u9`",
        at.as_str(),
        "4 |     value: u9 = 1;",
        "  |            ^^ not found in this package or its imports",
        "= help: did you mean `u8`?",
        "error: aborting due to 1 previous error",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // None of the structures behind the rendering.
    for internal in [
        "Schema(",
        "Diagnostics {",
        "SourceFile",
        "line_starts",
        "labels:",
    ] {
        assert!(!text.contains(internal), "{internal:?} in:\n{text}");
    }
}

#[test]
fn debug_of_a_compile_files_error_is_the_rendered_diagnostics() {
    let dir = broken_dir();
    let file = dir.path().join("bad.isml");
    let err = compile_files(&[&file], &[dir.path()]).unwrap_err();
    assert!(matches!(err, BuildError::Schema(_)));
    let debug = format!("{err:?}");
    assert_rendered(&debug, &file);
    assert!(
        debug.starts_with("1 error in the schemas:\n\nerror: "),
        "{debug}"
    );
    // Display is the rendering alone; `{:#?}` is no different from `{:?}`.
    assert_eq!(debug, format!("1 error in the schemas:\n\n{err}"));
    assert_eq!(format!("{err:#?}"), debug);
}

#[test]
fn debug_of_a_builder_error_is_the_rendered_diagnostics() {
    let dir = broken_dir();
    let file = dir.path().join("bad.isml");
    let out = tempfile::tempdir().expect("tempdir");
    let builder = Builder::new()
        .file(&file)
        .out_dir(out.path())
        .cargo_directives(false);
    assert_rendered(&format!("{:?}", builder.compile().unwrap_err()), &file);
    assert_rendered(&format!("{:?}", builder.generate().unwrap_err()), &file);
    // The error type of `load` renders the same way.
    let err = isml_schema::load(&isml_schema::LoadOptions::new([&file])).unwrap_err();
    assert_rendered(&format!("{err:?}"), &file);
}

#[test]
fn debug_of_an_output_error_names_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ok.isml"), "package ok; message M {}").expect("write");
    // The output directory is a file: it cannot be created.
    let blocked = dir.path().join("ok.isml");
    let err = Builder::new()
        .file(dir.path().join("ok.isml"))
        .out_dir(&blocked)
        .cargo_directives(false)
        .compile()
        .unwrap_err();
    let debug = format!("{err:?}");
    assert!(
        debug.starts_with(&format!("cannot write `{}`: ", blocked.display())),
        "{debug}"
    );
    assert!(
        !debug.contains("Io {") && !debug.contains("kind:"),
        "{debug}"
    );
}

/// Runs the ignored test `name` of this test binary in a child process and
/// returns whether it passed, and its stdout and stderr together.
fn run_child(name: &str, dir: &Path) -> (bool, String) {
    let exe: PathBuf = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("child runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn child_dir() -> PathBuf {
    std::env::var_os(CHILD_DIR)
        .map(PathBuf::from)
        .expect("run by its parent test, which sets the directory")
}

#[test]
#[ignore = "run in a child process by `returning_the_error_from_main_prints_diagnostics`"]
fn child_returns_the_error() -> Result<(), BuildError> {
    // A test returning `Err` is reported through the same `Termination`
    // impl as `fn main() -> Result<(), BuildError>`.
    let dir = child_dir();
    compile_files(&[dir.join("bad.isml")], &[&dir])?;
    Ok(())
}

#[test]
#[ignore = "run in a child process by `unwrapping_the_error_prints_diagnostics`"]
fn child_unwraps_the_error() {
    let dir = child_dir();
    Builder::new()
        .include(&dir)
        .file(dir.join("bad.isml"))
        .out_dir(dir.join("out"))
        .compile()
        .unwrap();
}

#[test]
fn returning_the_error_from_main_prints_diagnostics() {
    let dir = broken_dir();
    let (passed, text) = run_child("child_returns_the_error", dir.path());
    assert!(!passed, "{text}");
    assert!(text.contains("Error: 1 error in the schemas:"), "{text}");
    assert_rendered(&text, &dir.path().join("bad.isml"));
}

#[test]
fn unwrapping_the_error_prints_diagnostics() {
    let dir = broken_dir();
    let (passed, text) = run_child("child_unwraps_the_error", dir.path());
    assert!(!passed, "{text}");
    assert!(
        text.contains("called `Result::unwrap()` on an `Err` value: 1 error in the schemas:"),
        "{text}"
    );
    assert_rendered(&text, &dir.path().join("bad.isml"));
}
