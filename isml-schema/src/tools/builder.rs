//! The build-script API: compile `.isml` files into one Rust file per package.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), isml_schema::BuildError> {
//!     isml_schema::Builder::new()
//!         .include("schemas")
//!         .file("schemas/charging.isml")
//!         .compile()?;
//!     Ok(())
//! }
//! ```
//!
//! A failed build prints the schema errors as rustc prints its own, with
//! file, line, column and carets: [`BuildError`]'s `Debug` is that rendering,
//! so it reads the same whether `main` returns the error or the build script
//! calls `.unwrap()` on it.
//!
//! Then, in the crate, nest the generated code in modules that mirror the
//! package path, so that references between packages resolve:
//!
//! ```ignore
//! pub mod charging {
//!     pub mod v1 {
//!         isml_runtime::include_schema!("charging.v1");
//!     }
//! }
//! pub mod common {
//!     isml_runtime::include_schema!("common");
//! }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{Diagnostics, LoadOptions, Schema};

/// Why a build failed.
///
/// `Display` and `Debug` both print what went wrong for a person to read:
/// schema errors rendered like rustc's (see [`Diagnostics::render`]), not
/// the structures behind them. `Debug` matters because that is what a
/// `main` returning `Result` and `.unwrap()` print.
#[non_exhaustive]
pub enum BuildError {
    /// The schemas have errors; `Display` renders them like rustc does.
    Schema(Diagnostics),
    /// Writing a generated file failed.
    Io {
        /// The file being written.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Neither [`Builder::out_dir`] nor the `OUT_DIR` environment variable is set.
    NoOutDir,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Schema(d) => write!(f, "{}", d.render()),
            BuildError::Io { path, source } => {
                write!(f, "cannot write `{}`: {source}", path.display())
            }
            BuildError::NoOutDir => f.write_str(
                "no output directory: call `Builder::out_dir` or run from a build script (OUT_DIR)",
            ),
        }
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Schema(d) => fmt::Debug::fmt(d, f),
            other => fmt::Display::fmt(other, f),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Compiles schemas to Rust, typically from `build.rs`.
#[derive(Debug, Clone)]
pub struct Builder {
    includes: Vec<PathBuf>,
    files: Vec<PathBuf>,
    out_dir: Option<PathBuf>,
    cargo_directives: bool,
    runtime: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// A builder with no files, writing to `OUT_DIR` and printing cargo directives.
    pub fn new() -> Self {
        Builder {
            includes: Vec::new(),
            files: Vec::new(),
            out_dir: None,
            cargo_directives: true,
            runtime: true,
        }
    }

    /// Whether to generate what needs `isml-runtime`'s `runtime` feature:
    /// the traits, servers and clients of services (on by default). Turn it
    /// off for builds with only the codecs (a device with `codec` alone);
    /// messages, enums, unions and dispatch tables are generated either way.
    pub fn runtime(mut self, on: bool) -> Self {
        self.runtime = on;
        self
    }

    fn options(&self) -> crate::codegen::Options {
        crate::codegen::Options {
            runtime: self.runtime,
        }
    }

    /// Adds a directory in which imports are looked up (after the importing file's own directory).
    pub fn include(mut self, dir: impl AsRef<Path>) -> Self {
        self.includes.push(dir.as_ref().to_path_buf());
        self
    }

    /// Adds a schema file to compile (its imports are compiled too).
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.files.push(path.as_ref().to_path_buf());
        self
    }

    /// Adds several schema files.
    pub fn files<P: AsRef<Path>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        self.files
            .extend(paths.into_iter().map(|p| p.as_ref().to_path_buf()));
        self
    }

    /// Where to write the generated files (default: `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines (default: true).
    pub fn cargo_directives(mut self, on: bool) -> Self {
        self.cargo_directives = on;
        self
    }

    /// Loads and checks the schemas.
    pub fn load(&self) -> Result<Schema, BuildError> {
        let options = LoadOptions {
            include_dirs: self.includes.clone(),
            files: self.files.clone(),
        };
        crate::load(&options).map_err(|d| {
            if self.cargo_directives {
                // Re-run when the broken files change, so fixing them rebuilds.
                for f in &self.files {
                    println!("cargo:rerun-if-changed={}", f.display());
                }
            }
            BuildError::Schema(d)
        })
    }

    /// Generates the code of every package as `(package, source)` pairs without writing.
    pub fn generate(&self) -> Result<Vec<(String, String)>, BuildError> {
        let schema = self.load()?;
        Ok(crate::codegen::generate_with(&schema, &self.options()))
    }

    /// Compiles and writes `<package>.rs` for every package; files whose content
    /// did not change are not rewritten. Returns the paths of the files.
    pub fn compile(&self) -> Result<Vec<PathBuf>, BuildError> {
        let schema = self.load()?;
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(BuildError::NoOutDir)?,
        };
        if self.cargo_directives {
            for file in &schema.files {
                if let Some(p) = &file.path {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
            }
            for f in &self.files {
                println!("cargo:rerun-if-changed={}", f.display());
            }
        }
        std::fs::create_dir_all(&out_dir).map_err(|source| BuildError::Io {
            path: out_dir.clone(),
            source,
        })?;
        let mut written = Vec::new();
        for (package, code) in crate::codegen::generate_with(&schema, &self.options()) {
            let path = out_dir.join(format!("{package}.rs"));
            let unchanged = std::fs::read_to_string(&path).is_ok_and(|old| old == code);
            if !unchanged {
                std::fs::write(&path, code).map_err(|source| BuildError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
            written.push(path);
        }
        Ok(written)
    }
}

/// One-line build-script helper: compiles `files` with `includes` into `OUT_DIR`.
///
/// ```no_run
/// // build.rs: a schema error fails the build with rustc-style diagnostics.
/// isml_schema::compile_files(&["schemas/charging.isml"], &["schemas"]).unwrap();
/// ```
pub fn compile_files<P: AsRef<Path>, Q: AsRef<Path>>(
    files: &[P],
    includes: &[Q],
) -> Result<Vec<PathBuf>, BuildError> {
    let mut b = Builder::new();
    for i in includes {
        b = b.include(i);
    }
    b.files(files).compile()
}
