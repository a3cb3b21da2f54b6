//! `check`, `fmt`, `gen`, `compat` and `completions`, and schema loading.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use isml_schema::{BuildError, Builder, Diagnostics, LoadOptions, Schema};
use serde_json::json;

use crate::cli::{CheckArgs, CheckFormat, Cli, Command, CompatArgs, FmtArgs, GenArgs, Includes};
use crate::output::{out, outln};
use crate::{Failure, Outcome};

/// Runs one command.
pub(crate) fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Check(a) => check(&a),
        Command::Fmt(a) => fmt(&a),
        Command::Gen(a) => generate(&a),
        Command::Encode(a) => crate::codec::encode(&a),
        Command::Decode(a) => crate::codec::decode(&a),
        Command::Compat(a) => compat(&a),
        Command::Describe(a) => crate::describe::describe(&a),
        Command::Serve(a) => crate::serve::serve(&a),
        Command::Pub(a) => crate::pubsub::publish(&a),
        Command::Sub(a) => crate::pubsub::subscribe(&a),
        Command::Completions { shell } => {
            // Generated into memory: clap_complete panics on a write error.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "isml", &mut script);
            crate::output::write_bytes(&script)?;
            Ok(0)
        }
    }
}

/// Fails with exit code 2 unless every file can be read.
fn require_files(files: &[PathBuf]) -> Result<(), Failure> {
    for f in files {
        if let Err(e) = std::fs::metadata(f).and_then(|m| {
            if m.is_dir() {
                Err(std::io::Error::other("is a directory"))
            } else {
                Ok(())
            }
        }) {
            return Err(Failure::usage(format!(
                "cannot read `{}`: {e}",
                f.display()
            )));
        }
    }
    Ok(())
}

/// Loads and checks schema files with include directories.
pub(crate) fn load(includes: &Includes, files: &[PathBuf]) -> Result<Schema, Failure> {
    load_raw(includes, files)?.map_err(|d| Failure::diagnostics(&d))
}

fn load_raw(
    includes: &Includes,
    files: &[PathBuf],
) -> Result<Result<Schema, Diagnostics>, Failure> {
    require_files(files)?;
    let options = LoadOptions {
        include_dirs: includes.dirs.clone(),
        files: files.to_vec(),
    };
    Ok(isml_schema::load(&options))
}

fn check(a: &CheckArgs) -> Outcome {
    let result = load_raw(&a.includes, &a.files)?;
    match (a.format, result) {
        (CheckFormat::Human, Ok(_)) => Ok(0),
        (CheckFormat::Human, Err(d)) => Err(Failure::diagnostics(&d)),
        (CheckFormat::Json, result) => {
            let list = match &result {
                Ok(_) => Vec::new(),
                Err(d) => diagnostics_json(d),
            };
            let text = serde_json::to_string_pretty(&list).unwrap_or_else(|_| "[]".into());
            outln!("{text}")?;
            Ok(if result.is_ok() { 0 } else { 1 })
        }
    }
}

/// One JSON object per diagnostic: the primary location, every label with
/// its range, notes and help.
fn diagnostics_json(d: &Diagnostics) -> Vec<serde_json::Value> {
    let files = d.files();
    let position = |span: isml_schema::Span| {
        files.get(span.file.0 as usize).map(|f| {
            let (line, column) = f.line_col(span.start);
            let (end_line, end_column) = f.line_col(span.end);
            (f.name.clone(), line, column, end_line, end_column)
        })
    };
    d.iter()
        .map(|diag| {
            let primary = diag.span().and_then(position);
            let labels: Vec<serde_json::Value> = diag
                .labels
                .iter()
                .filter_map(|l| {
                    position(l.span).map(|(file, line, column, end_line, end_column)| {
                        json!({
                            "file": file, "line": line, "column": column,
                            "end_line": end_line, "end_column": end_column,
                            "message": l.message, "primary": l.primary,
                        })
                    })
                })
                .collect();
            json!({
                "severity": "error",
                "kind": format!("{:?}", diag.kind),
                "message": diag.message,
                "file": primary.as_ref().map(|p| p.0.clone()),
                "line": primary.as_ref().map(|p| p.1),
                "column": primary.as_ref().map(|p| p.2),
                "labels": labels,
                "notes": diag.notes,
                "help": diag.help,
            })
        })
        .collect()
}

fn fmt(a: &FmtArgs) -> Outcome {
    let mut code = 0;
    let mut errors = Vec::new();
    for path in &a.files {
        if path == Path::new("-") {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::usage(format!("cannot read standard input: {e}")))?;
            let out = isml_schema::format::format_named("<stdin>", &text)
                .map_err(|d| Failure::diagnostics(&d))?;
            if a.check {
                if out != text {
                    outln!("would reformat: <stdin>")?;
                    code = 1;
                }
            } else {
                out!("{out}")?;
            }
            continue;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                errors.push(Failure::usage(format!(
                    "cannot read `{}`: {e}",
                    path.display()
                )));
                continue;
            }
        };
        let out = match isml_schema::format::format_named(&path.display().to_string(), &text) {
            Ok(o) => o,
            Err(d) => {
                errors.push(Failure::diagnostics(&d));
                continue;
            }
        };
        if out == text {
            continue;
        }
        if a.check {
            outln!("would reformat: {}", path.display())?;
            code = 1;
        } else if let Err(e) = std::fs::write(path, out) {
            errors.push(Failure::usage(format!(
                "cannot write `{}`: {e}",
                path.display()
            )));
        }
    }
    // Report every failing file; exit with the most severe code.
    let worst = errors.iter().map(|f| f.code).max();
    let n = errors.len();
    for (i, f) in errors.into_iter().enumerate() {
        if i + 1 == n {
            return Err(Failure {
                code: worst.unwrap_or(f.code),
                ..f
            });
        }
        let mut err = std::io::stderr().lock();
        let _ = if f.raw {
            write!(err, "{}", f.message)
        } else {
            writeln!(err, "error: {}", f.message)
        };
    }
    Ok(code)
}

fn generate(a: &GenArgs) -> Outcome {
    require_files(&a.files)?;
    let mut b = Builder::new();
    for dir in &a.includes.dirs {
        b = b.include(dir);
    }
    let written = b
        .files(&a.files)
        .out_dir(&a.out)
        .cargo_directives(false)
        .compile()
        .map_err(|e| match e {
            BuildError::Schema(d) => Failure::diagnostics(&d),
            other => Failure::usage(other.to_string()),
        })?;
    for path in written {
        outln!("{}", path.display())?;
    }
    Ok(0)
}

fn compat(a: &CompatArgs) -> Outcome {
    let old = load(&a.includes, std::slice::from_ref(&a.old))?;
    let new = load(&a.includes, std::slice::from_ref(&a.new))?;
    let options = isml_schema::compat::Options::default().allow_bounds(a.allow_bounds);
    let report = isml_schema::compat::compare_with(&old, &new, &options);
    out!("{}", report.render())?;
    Ok(if report.is_compatible() { 0 } else { 1 })
}
