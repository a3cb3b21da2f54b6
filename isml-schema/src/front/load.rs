//! Reading files and following imports (the first stage of
//! [`load`](crate::load())).
//!
//! An `import "x.isml";` is looked up relative to the importing file first,
//! then in each configured include directory in order. The same file reached
//! through different paths is loaded once. Missing files, unreadable files
//! and import cycles are all reported before compilation stops.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::front::parse;
use crate::front::resolve::ParsedFile;
use crate::source::{FileId, SourceFile};

/// What to compile: the root files and where to look for imports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Directories searched, in order, for imports not found next to the
    /// importing file.
    pub include_dirs: Vec<PathBuf>,
    /// The files to compile. Their imports are loaded too.
    pub files: Vec<PathBuf>,
}

impl LoadOptions {
    /// Options compiling `files` with no include directories.
    pub fn new<P: Into<PathBuf>>(files: impl IntoIterator<Item = P>) -> LoadOptions {
        LoadOptions {
            include_dirs: Vec::new(),
            files: files.into_iter().map(Into::into).collect(),
        }
    }

    /// Adds an include directory.
    pub fn include_dir(mut self, dir: impl Into<PathBuf>) -> LoadOptions {
        self.include_dirs.push(dir.into());
        self
    }
}

/// Where file contents come from.
pub(crate) enum Provider<'a> {
    /// The file system, with include directories.
    Fs { include_dirs: &'a [PathBuf] },
    /// In-memory files keyed by a `/`-separated name.
    Memory(&'a [(&'a str, &'a str)]),
}

/// A file found by the provider.
struct Found {
    key: PathBuf,
    name: String,
    path: Option<PathBuf>,
    text: String,
}

enum FindError {
    /// Not found; the candidates that were tried.
    Missing(Vec<String>),
    /// Found but unreadable.
    Io(String, String),
}

impl Provider<'_> {
    fn root(&self, given: &Path) -> Result<Found, FindError> {
        match self {
            Provider::Fs { .. } => read_fs(given),
            Provider::Memory(files) => {
                let key = normalize(given);
                find_memory(files, &key)
                    .ok_or_else(|| FindError::Missing(vec![given.display().to_string()]))
            }
        }
    }

    fn import(&self, importer: &Path, import: &str) -> Result<Found, FindError> {
        let dir = importer.parent().unwrap_or(Path::new(""));
        match self {
            Provider::Fs { include_dirs } => {
                let mut tried = Vec::new();
                let candidates = std::iter::once(dir.join(import))
                    .chain(include_dirs.iter().map(|d| d.join(import)));
                for cand in candidates {
                    if cand.is_file() {
                        return read_fs(&cand);
                    }
                    tried.push(cand.display().to_string());
                }
                Err(FindError::Missing(tried))
            }
            Provider::Memory(files) => {
                let relative = normalize(&dir.join(import));
                let absolute = normalize(Path::new(import));
                let mut tried = vec![relative.display().to_string()];
                if let Some(found) = find_memory(files, &relative) {
                    return Ok(found);
                }
                if absolute != relative {
                    tried.push(absolute.display().to_string());
                    if let Some(found) = find_memory(files, &absolute) {
                        return Ok(found);
                    }
                }
                Err(FindError::Missing(tried))
            }
        }
    }
}

fn read_fs(path: &Path) -> Result<Found, FindError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            FindError::Missing(vec![path.display().to_string()])
        } else {
            FindError::Io(path.display().to_string(), e.to_string())
        }
    })?;
    let key = std::fs::canonicalize(path).unwrap_or_else(|_| normalize(path));
    Ok(Found {
        name: normalize(path).display().to_string(),
        path: Some(key.clone()),
        key,
        text,
    })
}

fn find_memory(files: &[(&str, &str)], key: &Path) -> Option<Found> {
    files
        .iter()
        .find(|(name, _)| normalize(Path::new(name)) == key)
        .map(|(name, text)| Found {
            key: key.to_path_buf(),
            name: (*name).to_string(),
            path: None,
            text: (*text).to_string(),
        })
}

/// Removes `.` and resolves `..` lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // Only a normal component can be cancelled: `../..` stays as is.
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// The loaded and parsed files (stage 1 and 2 of the pipeline).
pub(crate) struct Loaded {
    pub(crate) files: Vec<SourceFile>,
    pub(crate) parsed: Vec<ParsedFile>,
}

/// Loads `roots` and everything they import, parses and lowers them.
/// Returns the files either way, plus the diagnostics of this stage.
pub(crate) fn load_all(provider: &Provider<'_>, roots: &[PathBuf]) -> (Loaded, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut files: Vec<SourceFile> = Vec::new();
    let mut by_key: HashMap<PathBuf, FileId> = HashMap::new();
    let mut add = |found: Found, files: &mut Vec<SourceFile>| -> FileId {
        if let Some(id) = by_key.get(&found.key) {
            return *id;
        }
        let id = FileId(u32::try_from(files.len()).unwrap_or(u32::MAX));
        by_key.insert(found.key, id);
        files.push(SourceFile::new(id, found.name, found.path, found.text));
        id
    };

    for root in roots {
        match provider.root(root) {
            Ok(found) => {
                add(found, &mut files);
            }
            Err(FindError::Missing(_)) => diags.push(
                Diagnostic::new(
                    ErrorKind::Io,
                    format!("cannot find schema file `{}`", root.display()),
                )
                .help("check the path; relative paths are resolved from the current directory"),
            ),
            Err(FindError::Io(name, err)) => {
                diags.push(Diagnostic::new(
                    ErrorKind::Io,
                    format!("cannot read `{name}`: {err}"),
                ));
            }
        }
    }

    // Files are appended while we walk, so iterate by index.
    let mut parsed: Vec<ParsedFile> = Vec::new();
    let mut i = 0;
    while i < files.len() {
        let tree = match parse::parse(&files[i]) {
            Ok(tree) => tree,
            Err(d) => {
                diags.push(d);
                i += 1;
                continue;
            }
        };
        let Some(ast) = crate::front::lower::lower(files[i].id, tree, &mut diags) else {
            i += 1;
            continue;
        };
        let mut imports = Vec::new();
        for imp in &ast.imports {
            // Relative imports start from the importer's path as displayed,
            // which keeps names in diagnostics relative when roots are.
            let importer = PathBuf::from(&files[i].name);
            match provider.import(&importer, &imp.path) {
                Ok(found) => imports.push((add(found, &mut files), imp.span)),
                Err(FindError::Missing(tried)) => {
                    let mut d = Diagnostic::new(
                        ErrorKind::ImportNotFound,
                        format!("cannot find imported file `{}`", imp.path),
                    )
                    .primary(Some(imp.span), "imported here");
                    for t in tried {
                        d = d.note(format!("looked for `{t}`"));
                    }
                    diags.push(d.help("imports are relative to the importing file, then to each include directory"));
                }
                Err(FindError::Io(name, err)) => diags.push(
                    Diagnostic::new(ErrorKind::Io, format!("cannot read `{name}`: {err}"))
                        .primary(Some(imp.span), "imported here"),
                ),
            }
        }
        parsed.push(ParsedFile {
            id: files[i].id,
            ast,
            imports: imports.iter().map(|(id, _)| *id).collect(),
            import_spans: imports.iter().map(|(_, span)| *span).collect(),
        });
        i += 1;
    }

    diags.extend(import_cycles(&files, &parsed));
    (Loaded { files, parsed }, diags)
}

/// Reports every import cycle once, at the import that closes it.
fn import_cycles(files: &[SourceFile], parsed: &[ParsedFile]) -> Vec<Diagnostic> {
    let index: HashMap<FileId, usize> = parsed.iter().enumerate().map(|(i, p)| (p.id, i)).collect();
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        Active,
        Done,
    }
    let mut state = vec![State::New; parsed.len()];
    let mut diags = Vec::new();
    let name = |i: usize| {
        files
            .get(parsed[i].id.0 as usize)
            .map_or("?", |f| f.name.as_str())
            .to_string()
    };

    for start in 0..parsed.len() {
        if state[start] != State::New {
            continue;
        }
        // Iterative DFS: (node, next import to look at).
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = State::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let Some(&target) = parsed[node].imports.get(*next) else {
                state[node] = State::Done;
                stack.pop();
                continue;
            };
            let edge = *next;
            *next += 1;
            let Some(&t) = index.get(&target) else {
                continue;
            };
            match state[t] {
                State::New => {
                    state[t] = State::Active;
                    stack.push((t, 0));
                }
                State::Active => {
                    let from = stack.iter().position(|(n, _)| *n == t).unwrap_or(0);
                    let mut chain: Vec<String> = stack[from..]
                        .iter()
                        .map(|(n, _)| format!("`{}`", name(*n)))
                        .collect();
                    chain.push(format!("`{}`", name(t)));
                    let span = parsed[node].import_spans.get(edge).copied();
                    diags.push(
                        Diagnostic::new(ErrorKind::ImportCycle, "import cycle")
                            .primary(span, "this import closes the cycle")
                            .note(format!("cycle: {}", chain.join(" -> ")))
                            .help("move the declarations both files need into a third file that both import"),
                    );
                }
                State::Done => {}
            }
        }
    }
    diags
}

#[cfg(test)]
mod normalize_tests {
    use super::normalize;
    use std::path::{Path, PathBuf};

    #[test]
    fn keeps_leading_parent_components() {
        assert_eq!(
            normalize(Path::new("../../a/b.isml")),
            PathBuf::from("../../a/b.isml")
        );
        assert_eq!(
            normalize(Path::new("../../a/./lib/../c.isml")),
            PathBuf::from("../../a/c.isml")
        );
        assert_eq!(normalize(Path::new("a/../../b")), PathBuf::from("../b"));
        assert_eq!(normalize(Path::new("./x/y/../z")), PathBuf::from("x/z"));
    }
}
