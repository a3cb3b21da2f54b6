//! The isml schema compiler front end: `.isml` text in, checked IR out.
//!
//! The pipeline is a chain of small stages, each in its own module:
//!
//! 1. [`load`](mod@load): read the root files and everything they import;
//! 2. `parse`: text to a pest parse tree (`grammar.pest`), syntax errors in English;
//! 3. `lower`: parse tree to a spanned AST, one `lower_*` function per rule;
//! 4. `resolve`: names, imports and attributes, producing the [IR](ir);
//! 5. `check`: duplicates, ranges, map keys, infinite size, ... on the IR.
//!
//! Diagnostics are collected, not thrown: each stage reports everything it
//! finds, and compilation stops only between stages (after loading and
//! parsing, then after resolving and checking together).
//!
//! ```
//! let schema = isml_schema::load_str(
//!     "demo.isml",
//!     r#"
//!     package demo.v1;
//!     /// A reading.
//!     message Reading [id = 1] {
//!         value: f32 = 1 [unit = "V", range = 0..=500];
//!     }
//!     "#,
//! )?;
//! let id = schema.lookup("demo.v1.Reading").expect("declared above");
//! assert_eq!(schema.canonical_form(id), "#1message{1:f32[range=0..=500];}");
//!
//! let err = isml_schema::load_str("bad.isml", "package p; message M { x: u9 = 1; }").unwrap_err();
//! assert!(err.render().contains("did you mean `u8`?"));
//! # Ok::<(), isml_schema::Diagnostics>(())
//! ```
#![warn(missing_docs)]
//!
//! The crate is grouped the same way: `front` (load, parse, lower, resolve,
//! check), [`ir`] (the checked schema, names, sizes, fingerprints),
//! [`codegen`] (Rust code for `build.rs` and the derive macros) and `tools`
//! (the build API, formatter, compatibility checks, dynamic messages).

pub mod codegen;
mod front;
pub mod ir;
mod tools;

pub use front::{diagnostic, load, source};
pub use tools::{builder, compat, dynamic, format};

use std::path::PathBuf;

pub use builder::{BuildError, Builder, compile_files};
pub use diagnostic::{Diagnostic, Diagnostics, ErrorKind, Label};
pub use ir::*;
pub use load::LoadOptions;
pub use source::{FileId, SourceFile, Span};

/// Compiles the files named in `options`, with everything they import.
pub fn load(options: &LoadOptions) -> Result<Schema, Diagnostics> {
    let provider = load::Provider::Fs {
        include_dirs: &options.include_dirs,
    };
    compile(&provider, &options.files)
}

/// Compiles one in-memory schema called `name` (imports are not available).
pub fn load_str(name: &str, text: &str) -> Result<Schema, Diagnostics> {
    load_sources(&[(name, text)])
}

/// Compiles in-memory files given as `(name, text)`; all of them are roots.
/// Imports resolve against the other names, relative to the importing
/// file's name first (`a/b.isml` importing `c.isml` finds `a/c.isml`), then
/// as written.
pub fn load_sources(sources: &[(&str, &str)]) -> Result<Schema, Diagnostics> {
    let provider = load::Provider::Memory(sources);
    let roots: Vec<PathBuf> = sources
        .iter()
        .map(|(name, _)| PathBuf::from(name))
        .collect();
    compile(&provider, &roots)
}

fn compile(provider: &load::Provider<'_>, roots: &[PathBuf]) -> Result<Schema, Diagnostics> {
    let (loaded, mut diags) = load::load_all(provider, roots);
    if !diags.is_empty() {
        sort(&mut diags);
        return Err(Diagnostics::new(loaded.files, diags));
    }
    let (schema, spans) = front::resolve::resolve(&loaded.files, &loaded.parsed, &mut diags);
    diags.extend(front::check::check(&schema, &spans));
    if diags.is_empty() {
        Ok(schema)
    } else {
        sort(&mut diags);
        Err(Diagnostics::new(loaded.files, diags))
    }
}

/// Source order; diagnostics without a location go last, in found order.
fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(|d| {
        d.span()
            .map_or((u32::MAX, usize::MAX), |s| (s.file.0, s.start))
    });
}
