//! Type names: how a name written in a file finds its declaration.
//!
//! The rules follow protobuf's, without nested scopes (isml declares types
//! only at the top level of a package, so packages are the only scopes):
//!
//! - A name with a leading dot (`.acme.geo.Point`) is fully qualified: it
//!   names exactly that type.
//! - Any other name is relative. Written in package `acme.site`, the name
//!   `geo.Point` stands for `acme.site.geo.Point`, `acme.geo.Point` or
//!   `geo.Point`, tried in that order: the file's package first, then each
//!   enclosing package outward.
//! - Only types the file can see count: those declared in the file itself or
//!   in a file it imports directly.
//! - One match is the answer. When several candidates match, the innermost
//!   one wins if it is declared in the file's own package (a package's types
//!   shadow those of enclosing packages). Otherwise the name is ambiguous and
//!   is an error listing every match, to be fixed with a leading dot. This is
//!   stricter than protobuf, which always takes the innermost match: there,
//!   importing one more file can silently change what an existing name means.
//!
//! [`TypeIndex::lookup`] applies these rules and only reports the outcome; the
//! resolver turns outcomes into diagnostics.

use std::collections::HashMap;

use super::Resolver;
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::front::suggest::{closest, scalar_names};
use crate::ir::{Type, TypeId, qualify};
use crate::source::Span;

/// Every declared type by full name, with the package and file of each.
#[derive(Default)]
pub(super) struct TypeIndex {
    /// Full name -> the types declared with it, in id order (more than one
    /// only for duplicate declarations, which the checker reports).
    by_full_name: HashMap<String, Vec<TypeId>>,
    /// (package, name) of each type, by id.
    keys: Vec<(String, String)>,
    /// The index in the resolver's `parsed` of the file declaring each type, by id.
    files: Vec<usize>,
    /// The name in each type's declaration, by id.
    spans: Vec<Span>,
}

/// What a name written in a file stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lookup {
    /// Exactly one type.
    Found(TypeId),
    /// Visible types in more than one package, innermost first; the innermost
    /// is not in the file's own package.
    Ambiguous(Vec<TypeId>),
    /// No visible type, but this one (the innermost match) is declared in a
    /// file the referring file does not import.
    NotImported(TypeId),
    /// No type of that name at all.
    Unknown,
}

/// The full names a relative `name` written in `package` may stand for,
/// innermost first: `package.name`, then `name` prefixed by each enclosing
/// package, last `name` itself.
pub(super) fn candidates(package: &str, name: &str) -> Vec<String> {
    let segments: Vec<&str> = if package.is_empty() {
        Vec::new()
    } else {
        package.split('.').collect()
    };
    (0..=segments.len())
        .rev()
        .map(|n| qualify(&segments[..n].join("."), name))
        .collect()
}

impl TypeIndex {
    /// Registers the next type (ids are assigned in call order).
    pub(super) fn push(&mut self, package: &str, name: &str, file: usize, span: Span) -> TypeId {
        let id = TypeId(u32::try_from(self.keys.len()).unwrap_or(u32::MAX));
        self.by_full_name
            .entry(qualify(package, name))
            .or_default()
            .push(id);
        self.keys.push((package.to_string(), name.to_string()));
        self.files.push(file);
        self.spans.push(span);
        id
    }

    /// The name in the declaration of type `id`.
    pub(super) fn span(&self, id: TypeId) -> Option<Span> {
        self.spans.get(id.index()).copied()
    }

    /// The package of type `id`.
    pub(super) fn package(&self, id: TypeId) -> &str {
        self.keys.get(id.index()).map_or("", |(p, _)| p.as_str())
    }

    /// The full name of type `id`.
    pub(super) fn full_name(&self, id: TypeId) -> String {
        self.keys
            .get(id.index())
            .map_or_else(|| format!("#{}", id.0), |(p, n)| qualify(p, n))
    }

    /// The index of the file declaring type `id`.
    pub(super) fn file(&self, id: TypeId) -> usize {
        self.files.get(id.index()).copied().unwrap_or(usize::MAX)
    }

    /// Every type id, in order.
    fn ids(&self) -> impl Iterator<Item = TypeId> + '_ {
        (0..self.keys.len()).map(|i| TypeId(u32::try_from(i).unwrap_or(u32::MAX)))
    }

    /// Looks up `path` written in `package`, fully qualified when `absolute`;
    /// `sees` says whether the referring file can see a type.
    pub(super) fn lookup(
        &self,
        package: &str,
        path: &str,
        absolute: bool,
        sees: &dyn Fn(TypeId) -> bool,
    ) -> Lookup {
        let names = if absolute {
            vec![path.to_string()]
        } else {
            candidates(package, path)
        };
        let mut visible = Vec::new();
        let mut hidden = None;
        for full in &names {
            let Some(ids) = self.by_full_name.get(full) else {
                continue;
            };
            match ids.iter().find(|id| sees(**id)) {
                Some(id) => visible.push(*id),
                None => hidden = hidden.or(ids.first().copied()),
            }
        }
        match visible.as_slice() {
            [] => hidden.map_or(Lookup::Unknown, Lookup::NotImported),
            [one] => Lookup::Found(*one),
            [inner, ..] if self.package(*inner) == package => Lookup::Found(*inner),
            _ => Lookup::Ambiguous(visible),
        }
    }

    /// Every relative spelling of type `id` that resolves to it from
    /// `package`, shortest first: `Point`, `geo.Point`, `acme.geo.Point`.
    fn spellings(&self, package: &str, id: TypeId, sees: &dyn Fn(TypeId) -> bool) -> Vec<String> {
        let full = self.full_name(id);
        let segments: Vec<&str> = full.split('.').collect();
        (1..=segments.len())
            .map(|n| segments[segments.len() - n..].join("."))
            .filter(|s| self.lookup(package, s, false, sees) == Lookup::Found(id))
            .collect()
    }
}

impl Resolver<'_> {
    /// Whether file `from` sees the declarations of file `target`.
    fn visible(&self, from: usize, target: usize) -> bool {
        from == target
            || self
                .parsed
                .get(target)
                .is_some_and(|t| self.parsed[from].imports.contains(&t.id))
    }

    /// The name of file `file` (an index into `parsed`) as shown in diagnostics.
    fn file_name(&self, file: usize) -> &str {
        self.parsed
            .get(file)
            .and_then(|p| self.files.get(p.id.0 as usize))
            .map_or("?", |f| f.name.as_str())
    }

    /// Resolves the type name `path` written at `span` in file `fi`; reports
    /// unknown, hidden and ambiguous names.
    pub(super) fn resolve_name(
        &mut self,
        fi: usize,
        path: &str,
        absolute: bool,
        span: Span,
    ) -> Option<Type> {
        if !absolute && let Some(scalar) = Type::scalar(path) {
            return Some(scalar);
        }
        let package = self.package_of(fi).to_string();
        let sees = |id: TypeId| self.visible(fi, self.types.file(id));
        let written = if absolute {
            format!(".{path}")
        } else {
            path.to_string()
        };
        let d = match self.types.lookup(&package, path, absolute, &sees) {
            Lookup::Found(id) => return Some(Type::Named(id)),
            Lookup::Ambiguous(ids) => self.ambiguous(&written, &package, path, &ids, span),
            Lookup::NotImported(id) => self.not_imported(&written, id, span),
            Lookup::Unknown => self.unknown(fi, &package, path, absolute, span),
        };
        self.diags.push(d);
        None
    }

    fn ambiguous(
        &self,
        written: &str,
        package: &str,
        path: &str,
        ids: &[TypeId],
        span: Span,
    ) -> Diagnostic {
        let tried: Vec<String> = candidates(package, path)
            .into_iter()
            .map(|c| format!("`{c}`"))
            .collect();
        let matches: Vec<String> = ids
            .iter()
            .map(|id| format!("`{}`", self.types.full_name(*id)))
            .collect();
        let mut d = Diagnostic::new(
            ErrorKind::AmbiguousType,
            format!("type name `{written}` is ambiguous"),
        )
        .primary(Some(span), format!("matches {}", join(&matches, "and")));
        for (&id, full) in ids.iter().zip(&matches) {
            d = d.secondary(self.types.span(id), format!("{full} is declared here"));
        }
        let fixes: Vec<String> = ids
            .iter()
            .map(|id| format!("`.{}`", self.types.full_name(*id)))
            .collect();
        d.note(format!(
            "a relative name is looked up from this file's package outward: {}",
            tried.join(", then ")
        ))
        .note(format!(
            "of several matches, the innermost wins only when it is in this file's own package, `{package}`"
        ))
        .help(format!(
            "write the full name with a leading dot: {}",
            join(&fixes, "or")
        ))
    }

    fn not_imported(&self, written: &str, id: TypeId, span: Span) -> Diagnostic {
        let full = self.types.full_name(id);
        let file = self.file_name(self.types.file(id));
        let file = file.rsplit(['/', '\\']).next().unwrap_or(file);
        let what = if written.trim_start_matches('.') == full {
            format!("`{full}`")
        } else {
            format!("`{written}` (`{full}`)")
        };
        Diagnostic::new(
            ErrorKind::UnknownType,
            format!("type {what} is declared in `{file}`, which this file does not import"),
        )
        .primary(Some(span), "not imported")
        .help(format!(
            "add `import \"{file}\";` after the package declaration"
        ))
    }

    fn unknown(
        &self,
        fi: usize,
        package: &str,
        path: &str,
        absolute: bool,
        span: Span,
    ) -> Diagnostic {
        let written = if absolute {
            format!(".{path}")
        } else {
            path.to_string()
        };
        let mut d = Diagnostic::new(ErrorKind::UnknownType, format!("unknown type `{written}`"))
            .primary(Some(span), "not found in this package or its imports");
        if absolute && Type::scalar(path).is_some() {
            return d.help(format!(
                "scalar types are written without a leading dot: `{path}`"
            ));
        }
        let tried: Vec<String> = candidates(package, path)
            .into_iter()
            .filter(|c| c.contains('.'))
            .map(|c| format!("`{c}`"))
            .collect();
        if !absolute && tried.len() > 1 {
            d = d.note(format!("looked for {}", join(&tried, "and")));
        }

        // Suggest a close name, spelled the way this file can write it.
        let sees = |id: TypeId| self.visible(fi, self.types.file(id));
        let mut names: Vec<String> = Vec::new();
        if !absolute {
            names.extend(scalar_names().iter().map(|s| s.to_string()));
        }
        for id in self.types.ids().filter(|id| sees(*id)) {
            if absolute {
                names.push(format!(".{}", self.types.full_name(id)));
            } else {
                names.extend(self.types.spellings(package, id, &sees));
            }
        }
        // Shorter spellings first, so that ties favour them.
        names.sort_by(|a, b| (a.matches('.').count(), a).cmp(&(b.matches('.').count(), b)));
        names.dedup();
        // The same last segment in another package is the best hint.
        let last = path.rsplit('.').next().unwrap_or(path);
        let same_name = names
            .iter()
            .find(|n| n.rsplit('.').next() == Some(last) && **n != written)
            .cloned();
        let suggestion = same_name
            .or_else(|| closest(&written, names.iter().map(String::as_str)).map(str::to_string));
        if let Some(s) = suggestion {
            d = d.help(format!("did you mean `{s}`?"));
        }
        d
    }
}

/// "`a`", "`a` or `b`", "`a`, `b` or `c`" with `word` before the last item.
fn join(items: &[String], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {word} {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_go_from_the_package_outward() {
        assert_eq!(
            candidates("acme.site", "geo.Point"),
            ["acme.site.geo.Point", "acme.geo.Point", "geo.Point"]
        );
        assert_eq!(candidates("p", "T"), ["p.T", "T"]);
        assert_eq!(candidates("", "T"), ["T"]);
    }

    /// An index of `(package, name, file)` declarations.
    fn index(decls: &[(&str, &str, usize)]) -> TypeIndex {
        let mut ix = TypeIndex::default();
        for (p, n, f) in decls {
            ix.push(p, n, *f, Span::new(crate::FileId(0), 0, 0));
        }
        ix
    }

    fn all(_: TypeId) -> bool {
        true
    }

    #[test]
    fn relative_names_find_enclosing_packages() {
        let ix = index(&[("acme.geo", "Point", 1), ("acme", "Kind", 2)]);
        let p = TypeId(0);
        assert_eq!(
            ix.lookup("acme.site", "geo.Point", false, &all),
            Lookup::Found(p)
        );
        assert_eq!(
            ix.lookup("acme.site", "acme.geo.Point", false, &all),
            Lookup::Found(p)
        );
        assert_eq!(
            ix.lookup("acme.site", "Kind", false, &all),
            Lookup::Found(TypeId(1))
        );
        assert_eq!(
            ix.lookup("acme.site", "Point", false, &all),
            Lookup::Unknown
        );
        // A leading dot is not looked up relatively.
        assert_eq!(
            ix.lookup("acme.site", "geo.Point", true, &all),
            Lookup::Unknown
        );
        assert_eq!(
            ix.lookup("acme.site", "acme.geo.Point", true, &all),
            Lookup::Found(p)
        );
    }

    #[test]
    fn matches_in_two_packages_are_ambiguous_unless_the_inner_is_our_own() {
        let ix = index(&[
            ("acme.site.geo", "Point", 1),
            ("acme.geo", "Point", 2),
            ("acme.site", "Kind", 0),
            ("acme", "Kind", 3),
        ]);
        assert_eq!(
            ix.lookup("acme.site", "geo.Point", false, &all),
            Lookup::Ambiguous(vec![TypeId(0), TypeId(1)])
        );
        // Our own package's `Kind` shadows `acme.Kind`.
        assert_eq!(
            ix.lookup("acme.site", "Kind", false, &all),
            Lookup::Found(TypeId(2))
        );
        // Only visible types take part: without the inner file, no ambiguity.
        let sees = |id: TypeId| id != TypeId(0);
        assert_eq!(
            ix.lookup("acme.site", "geo.Point", false, &sees),
            Lookup::Found(TypeId(1))
        );
        let none = |_: TypeId| false;
        assert_eq!(
            ix.lookup("acme.site", "geo.Point", false, &none),
            Lookup::NotImported(TypeId(0))
        );
    }

    #[test]
    fn spellings_are_the_names_that_resolve_back() {
        let ix = index(&[("acme.site.geo", "Point", 1), ("acme.geo", "Point", 2)]);
        // `geo.Point` is ambiguous from `acme.site`, so only longer names work.
        assert_eq!(
            ix.spellings("acme.site", TypeId(1), &all),
            ["acme.geo.Point"]
        );
        assert_eq!(
            ix.spellings("acme.site", TypeId(0), &all),
            ["site.geo.Point", "acme.site.geo.Point"]
        );
    }
}
