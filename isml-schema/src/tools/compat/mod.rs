//! Compatibility of two versions of a schema under the evolution rules of the
//! schema language (`isml compat OLD NEW`).
//!
//! Types are matched between the versions by message id first, then by fully
//! qualified name, then through the fields, variants and methods of matched
//! types (so that a renamed nested type is still compared with its old self).
//! Every difference is a [`Change`] with a [`Severity`] and its location in
//! both versions.
//!
//! A change of a field's `max_len` or `range` breaks one side or the other:
//! tightening a bound breaks old writers, loosening it breaks old readers.
//! Both are breaking by default; [`Options::allow_bounds`] reports them as
//! warnings instead, for deployments that roll out readers and writers in a
//! known order.
//!
//! ```
//! let old = isml_schema::load_str("old.isml", "package p; message M [id = 1] { a: u8 = 1; }")?;
//! let new = isml_schema::load_str("new.isml", "package p; message M [id = 1] { a: u16 = 1; b: u8 = 2; }")?;
//! let report = isml_schema::compat::compare(&old, &new);
//! assert!(!report.is_compatible());
//! let breaking: Vec<String> = report.breaking().map(|c| c.message.clone()).collect();
//! assert_eq!(breaking, ["field `p.M.a` (tag 1) changed type from `u8` to `u16`"]);
//! # Ok::<(), isml_schema::Diagnostics>(())
//! ```

mod bounds;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::ir::{Schema, Type, TypeDef, TypeDefKind, TypeId};
use crate::source::Span;

/// A position in a schema file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file name as loaded.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How much a [`Change`] matters to peers running the other version.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Peers of the two versions can no longer understand each other.
    Breaking,
    /// Breaking in general, but accepted by the [`Options`] in use (a
    /// `max_len` or `range` change under [`Options::allow_bounds`]).
    Warning,
    /// Peers of either version understand each other.
    Safe,
}

impl Severity {
    /// `breaking`, `warning` or `safe`, as printed before each change.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Breaking => "breaking",
            Severity::Warning => "warning",
            Severity::Safe => "safe",
        }
    }
}

/// What [`compare_with`] accepts.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Report changes of `max_len` and `range` as [`Severity::Warning`]
    /// instead of [`Severity::Breaking`].
    pub allow_bounds: bool,
}

impl Options {
    /// Sets [`allow_bounds`](Options::allow_bounds).
    pub fn allow_bounds(mut self, allow: bool) -> Options {
        self.allow_bounds = allow;
        self
    }
}

/// One difference between the versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Whether peers of the two versions still understand each other.
    pub severity: Severity,
    /// What changed, naming the element.
    pub message: String,
    /// Where, in the old version (or its closest enclosing element).
    pub old: Option<Location>,
    /// Where, in the new version (or its closest enclosing element).
    pub new: Option<Location>,
}

impl Change {
    /// Whether this change is [`Severity::Breaking`].
    pub fn is_breaking(&self) -> bool {
        self.severity == Severity::Breaking
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity.as_str(), self.message)?;
        if let Some(l) = &self.old {
            write!(f, "\n  --> {l} (old)")?;
        }
        if let Some(l) = &self.new {
            write!(f, "\n  --> {l} (new)")?;
        }
        Ok(())
    }
}

/// All differences between two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every change: breaking ones first, then warnings, then safe ones,
    /// each group in the order of the old schema's types.
    pub changes: Vec<Change>,
}

impl Report {
    /// Whether no change is breaking (warnings are allowed).
    pub fn is_compatible(&self) -> bool {
        !self.changes.iter().any(Change::is_breaking)
    }

    fn of(&self, severity: Severity) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(move |c| c.severity == severity)
    }

    /// The breaking changes.
    pub fn breaking(&self) -> impl Iterator<Item = &Change> {
        self.of(Severity::Breaking)
    }

    /// The changes reported as warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Change> {
        self.of(Severity::Warning)
    }

    /// The safe changes.
    pub fn safe(&self) -> impl Iterator<Item = &Change> {
        self.of(Severity::Safe)
    }

    /// Every change, then a summary line (which counts warnings only when
    /// there are some).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.changes {
            out.push_str(&c.to_string());
            out.push('\n');
        }
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let mut counts = vec![plural(self.breaking().count(), "breaking change")];
        let w = self.warnings().count();
        if w > 0 {
            counts.push(plural(w, "warning"));
        }
        counts.push(plural(self.safe().count(), "safe change"));
        let verdict = if self.is_compatible() {
            "compatible"
        } else {
            "NOT compatible"
        };
        out.push_str(&format!("{}: {verdict}\n", counts.join(", ")));
        out
    }
}

/// Compares two versions of a schema; every bound change is breaking.
pub fn compare(old: &Schema, new: &Schema) -> Report {
    compare_with(old, new, &Options::default())
}

/// Compares two versions of a schema under `options`.
///
/// ```
/// use isml_schema::compat::{Options, Severity, compare_with};
/// let old = isml_schema::load_str("old.isml", "package p; message M { s: string = 1 [max_len = 64]; }")?;
/// let new = isml_schema::load_str("new.isml", "package p; message M { s: string = 1 [max_len = 32]; }")?;
/// assert!(!compare_with(&old, &new, &Options::default()).is_compatible());
/// let report = compare_with(&old, &new, &Options::default().allow_bounds(true));
/// assert!(report.is_compatible());
/// assert_eq!(report.changes[0].severity, Severity::Warning);
/// # Ok::<(), isml_schema::Diagnostics>(())
/// ```
pub fn compare_with(old: &Schema, new: &Schema, options: &Options) -> Report {
    let mut c = Compare {
        old,
        new,
        options: *options,
        pairs: BTreeMap::new(),
        reused: Vec::new(),
        changes: Vec::new(),
    };
    c.match_types();
    c.compare_types();
    c.compare_services();
    c.compare_channels();
    let mut changes = c.changes;
    // Stable: breaking first, then warnings, otherwise in discovery order.
    changes.sort_by_key(|ch| ch.severity);
    Report { changes }
}

struct Compare<'a> {
    old: &'a Schema,
    new: &'a Schema,
    options: Options,
    /// old type -> new type.
    pairs: BTreeMap<TypeId, TypeId>,
    /// Old types whose id another new type took: (old, new user of the id).
    reused: Vec<(TypeId, TypeId)>,
    changes: Vec<Change>,
}

fn location(schema: &Schema, span: Option<Span>) -> Option<Location> {
    let span = span?;
    let file = schema.files.get(span.file.0 as usize)?;
    let (line, column) = file.line_col(span.start);
    Some(Location {
        file: file.name.clone(),
        line,
        column,
    })
}

fn def(schema: &Schema, id: TypeId) -> &TypeDef {
    &schema.types[id.index()]
}

impl<'a> Compare<'a> {
    fn push(&mut self, breaking: bool, message: String, old: Option<Span>, new: Option<Span>) {
        let severity = if breaking {
            Severity::Breaking
        } else {
            Severity::Safe
        };
        self.push_as(severity, message, old, new);
    }

    fn push_as(
        &mut self,
        severity: Severity,
        message: String,
        old: Option<Span>,
        new: Option<Span>,
    ) {
        self.changes.push(Change {
            severity,
            message,
            old: location(self.old, old),
            new: location(self.new, new),
        });
    }

    fn paired_new(&self) -> BTreeSet<TypeId> {
        self.pairs.values().copied().collect()
    }

    fn match_types(&mut self) {
        for (oid, o) in self.old.types_iter() {
            if let Some(mid) = o.message_id()
                && let Some((nid, n)) = self
                    .new
                    .types_iter()
                    .find(|(_, n)| n.message_id() == Some(mid))
            {
                // The id now belongs to another type while this one lives on
                // under its name: match by name and report the reuse.
                if n.full_name() != o.full_name()
                    && let Some(same) = self.new.lookup(&o.full_name())
                {
                    self.pairs.insert(oid, same);
                    self.reused.push((oid, nid));
                    continue;
                }
                self.pairs.insert(oid, nid);
            }
        }
        for (oid, o) in self.old.types_iter() {
            if self.pairs.contains_key(&oid) {
                continue;
            }
            if let Some(nid) = self.new.lookup(&o.full_name())
                && !self.paired_new().contains(&nid)
            {
                self.pairs.insert(oid, nid);
            }
        }
        // Through the structure of matched types: a renamed nested type sits
        // at the same tag of a matched message.
        loop {
            let mut found = Vec::new();
            let used = self.paired_new();
            let consider = |o: &Type, n: &Type, found: &mut Vec<(TypeId, TypeId)>| {
                let mut stack = vec![(o.clone(), n.clone())];
                while let Some((o, n)) = stack.pop() {
                    match (o, n) {
                        (Type::Named(a), Type::Named(b))
                            if !self.pairs.contains_key(&a)
                                && !used.contains(&b)
                                && !found.iter().any(|(x, y)| *x == a || *y == b) =>
                        {
                            found.push((a, b));
                        }
                        (Type::Optional(a), Type::Optional(b))
                        | (Type::List(a), Type::List(b))
                        | (Type::Array(a, _), Type::Array(b, _)) => stack.push((*a, *b)),
                        (Type::Map(ka, va), Type::Map(kb, vb)) => {
                            stack.push((*ka, *kb));
                            stack.push((*va, *vb));
                        }
                        _ => {}
                    }
                }
            };
            for (&oid, &nid) in &self.pairs {
                match (&def(self.old, oid).kind, &def(self.new, nid).kind) {
                    (TypeDefKind::Message(a), TypeDefKind::Message(b)) => {
                        for f in &a.fields {
                            if let Some(g) = b.fields.iter().find(|g| g.tag == f.tag) {
                                consider(&f.ty, &g.ty, &mut found);
                            }
                        }
                    }
                    (TypeDefKind::Union(a), TypeDefKind::Union(b)) => {
                        for f in &a.variants {
                            if let Some(g) = b.variants.iter().find(|g| g.tag == f.tag) {
                                consider(&f.ty, &g.ty, &mut found);
                            }
                        }
                    }
                    _ => {}
                }
            }
            for s in &self.old.services {
                let Some(t) = self
                    .new
                    .services
                    .iter()
                    .find(|t| t.full_name() == s.full_name())
                else {
                    continue;
                };
                for m in &s.methods {
                    if let Some(n) = t.methods.iter().find(|n| n.id == m.id) {
                        consider(&Type::Named(m.request), &Type::Named(n.request), &mut found);
                        if let (Some(a), Some(b)) = (m.response, n.response) {
                            consider(&Type::Named(a), &Type::Named(b), &mut found);
                        }
                    }
                }
            }
            if found.is_empty() {
                break;
            }
            self.pairs.extend(found);
        }
    }

    /// Whether a value of old type `o` is read as new type `n` unchanged.
    fn same_type(&self, o: &Type, n: &Type) -> bool {
        match (o, n) {
            (Type::Optional(a), Type::Optional(b)) | (Type::List(a), Type::List(b)) => {
                self.same_type(a, b)
            }
            (Type::Array(a, x), Type::Array(b, y)) => x == y && self.same_type(a, b),
            (Type::Map(ka, va), Type::Map(kb, vb)) => {
                self.same_type(ka, kb) && self.same_type(va, vb)
            }
            (Type::Named(a), Type::Named(b)) => self.pairs.get(a) == Some(b),
            (a, b) => a == b,
        }
    }

    fn compare_types(&mut self) {
        let pairs: Vec<(TypeId, TypeId)> = self.pairs.iter().map(|(a, b)| (*a, *b)).collect();
        for (oid, nid) in &pairs {
            self.compare_pair(*oid, *nid);
        }
        for (oid, o) in self.old.types_iter() {
            if self.pairs.contains_key(&oid) {
                continue;
            }
            if let Some(id) = o.message_id() {
                self.push(
                    true,
                    format!(
                        "{} `{}` (id {id}) was removed: peers still sending it are refused",
                        o.kind_name(),
                        o.full_name()
                    ),
                    o.span,
                    None,
                );
            }
        }
        let used = self.paired_new();
        for (nid, n) in self.new.types_iter() {
            if !used.contains(&nid) {
                self.push(
                    false,
                    format!("{} `{}` was added", n.kind_name(), n.full_name()),
                    None,
                    n.span,
                );
            }
        }
    }

    fn compare_pair(&mut self, oid: TypeId, nid: TypeId) {
        let (o, n) = (def(self.old, oid), def(self.new, nid));
        let (oname, nname) = (o.full_name(), n.full_name());
        if o.kind_name() != n.kind_name() {
            self.push(
                true,
                format!(
                    "`{oname}` changed from {} to {}",
                    o.kind_name(),
                    n.kind_name()
                ),
                o.span,
                n.span,
            );
            return;
        }
        match (o.message_id(), n.message_id()) {
            (Some(a), Some(b)) if a != b => {
                self.push(
                    true,
                    format!("message id of `{oname}` changed from {a} to {b}"),
                    o.span,
                    n.span,
                );
            }
            (Some(a), None) => self.push(
                true,
                format!("`{oname}` lost its message id {a}"),
                o.span,
                n.span,
            ),
            (None, Some(b)) => self.push(
                false,
                format!("`{oname}` got message id {b}"),
                o.span,
                n.span,
            ),
            _ => {}
        }
        if let Some((_, user)) = self.reused.iter().find(|(a, _)| *a == oid) {
            let id = o.message_id().unwrap_or(0);
            let user = def(self.new, *user);
            self.push(
                true,
                format!(
                    "message id {id} of `{oname}` is reused by `{}`",
                    user.full_name()
                ),
                o.span,
                user.span,
            );
        }
        if oname != nname {
            self.push(
                false,
                format!("`{oname}` was renamed to `{nname}`"),
                o.span,
                n.span,
            );
        }
        match (&o.kind, &n.kind) {
            (TypeDefKind::Message(a), TypeDefKind::Message(b)) => {
                self.compare_fields(&oname, o, n, a, b);
            }
            (TypeDefKind::Enum(a), TypeDefKind::Enum(b)) => {
                for v in &a.variants {
                    match b.variants.iter().find(|w| w.value == v.value) {
                        None => self.push(
                            true,
                            format!(
                                "enum variant `{oname}.{}` (value {}) was removed",
                                v.name, v.value
                            ),
                            v.span,
                            n.span,
                        ),
                        Some(w) if w.name != v.name => self.push(
                            false,
                            format!(
                                "enum variant `{oname}.{}` was renamed to `{}`",
                                v.name, w.name
                            ),
                            v.span,
                            w.span,
                        ),
                        Some(_) => {}
                    }
                }
                for w in &b.variants {
                    if !a.variants.iter().any(|v| v.value == w.value) {
                        self.push(
                            false,
                            format!(
                                "enum variant `{nname}.{}` (value {}) was added",
                                w.name, w.value
                            ),
                            o.span,
                            w.span,
                        );
                    }
                }
            }
            (TypeDefKind::Union(a), TypeDefKind::Union(b)) => {
                let mut moved = BTreeSet::new();
                for v in &a.variants {
                    match b.variants.iter().find(|w| w.tag == v.tag) {
                        None => match b.variants.iter().find(|w| w.name == v.name) {
                            Some(w) => {
                                moved.insert(w.tag);
                                self.push(
                                    true,
                                    format!(
                                        "union variant `{oname}.{}` changed tag from {} to {}",
                                        v.name, v.tag, w.tag
                                    ),
                                    v.span,
                                    w.span,
                                );
                            }
                            None => self.push(
                                true,
                                format!(
                                    "union variant `{oname}.{}` (tag {}) was removed",
                                    v.name, v.tag
                                ),
                                v.span,
                                n.span,
                            ),
                        },
                        Some(w) => {
                            if !self.same_type(&v.ty, &w.ty) {
                                self.push(
                                    true,
                                    format!(
                                        "union variant `{oname}.{}` (tag {}) changed type from `{}` to `{}`",
                                        v.name,
                                        v.tag,
                                        v.ty.display(self.old),
                                        w.ty.display(self.new)
                                    ),
                                    v.span,
                                    w.span,
                                );
                            } else if w.name != v.name {
                                self.push(
                                    false,
                                    format!(
                                        "union variant `{oname}.{}` was renamed to `{}`",
                                        v.name, w.name
                                    ),
                                    v.span,
                                    w.span,
                                );
                            }
                        }
                    }
                }
                for w in &b.variants {
                    if !a.variants.iter().any(|v| v.tag == w.tag) && !moved.contains(&w.tag) {
                        self.push(
                            false,
                            format!(
                                "union variant `{nname}.{}` (tag {}) was added",
                                w.name, w.tag
                            ),
                            o.span,
                            w.span,
                        );
                    }
                }
            }
            _ => {}
        }
    }

    fn compare_fields(
        &mut self,
        oname: &str,
        o: &TypeDef,
        n: &TypeDef,
        a: &crate::ir::MessageDef,
        b: &crate::ir::MessageDef,
    ) {
        let reserved =
            |m: &crate::ir::MessageDef, tag: u32| m.reserved.iter().any(|r| r.contains(&tag));
        let mut moved = BTreeSet::new();
        for f in &a.fields {
            match b.fields.iter().find(|g| g.tag == f.tag) {
                Some(g) => {
                    if !self.same_type(&f.ty, &g.ty) {
                        self.push(
                            true,
                            format!(
                                "field `{oname}.{}` (tag {}) changed type from `{}` to `{}`",
                                f.name,
                                f.tag,
                                f.ty.display(self.old),
                                g.ty.display(self.new)
                            ),
                            f.span,
                            g.span,
                        );
                        continue;
                    }
                    if g.name != f.name {
                        self.push(
                            false,
                            format!("field `{oname}.{}` was renamed to `{}`", f.name, g.name),
                            f.span,
                            g.span,
                        );
                    }
                    if g.deprecated && !f.deprecated {
                        self.push(
                            false,
                            format!("field `{oname}.{}` was marked deprecated", f.name),
                            f.span,
                            g.span,
                        );
                    }
                    let severity = if self.options.allow_bounds {
                        Severity::Warning
                    } else {
                        Severity::Breaking
                    };
                    for change in [bounds::max_len(f, g), bounds::range(f, g)]
                        .into_iter()
                        .flatten()
                    {
                        self.push_as(
                            severity,
                            format!(
                                "field `{oname}.{}` (tag {}): {}",
                                f.name,
                                f.tag,
                                change.describe()
                            ),
                            f.span,
                            g.span,
                        );
                    }
                }
                None => match b.fields.iter().find(|g| g.name == f.name) {
                    Some(g) => {
                        moved.insert(g.tag);
                        self.push(
                            true,
                            format!(
                                "field `{oname}.{}` changed tag from {} to {}",
                                f.name, f.tag, g.tag
                            ),
                            f.span,
                            g.span,
                        );
                    }
                    None if reserved(b, f.tag) => self.push(
                        false,
                        format!(
                            "field `{oname}.{}` was removed and its tag {} reserved",
                            f.name, f.tag
                        ),
                        f.span,
                        n.span,
                    ),
                    None => self.push(
                        true,
                        format!(
                            "field `{oname}.{}` (tag {}) was removed without reserving its tag",
                            f.name, f.tag
                        ),
                        f.span,
                        n.span,
                    ),
                },
            }
        }
        for g in &b.fields {
            if a.fields.iter().any(|f| f.tag == g.tag) || moved.contains(&g.tag) {
                continue;
            }
            if reserved(a, g.tag) {
                self.push(
                    true,
                    format!(
                        "field `{}.{}` reuses tag {}, reserved in the old version",
                        n.full_name(),
                        g.name,
                        g.tag
                    ),
                    o.span,
                    g.span,
                );
            } else {
                self.push(
                    false,
                    format!(
                        "field `{}.{}` (tag {}) was added",
                        n.full_name(),
                        g.name,
                        g.tag
                    ),
                    o.span,
                    g.span,
                );
            }
        }
    }

    fn type_name(&self, schema: &Schema, id: Option<TypeId>) -> String {
        match id {
            Some(id) => format!("`{}`", def(schema, id).full_name()),
            None => "nothing (one-way)".to_string(),
        }
    }

    fn compare_services(&mut self) {
        for s in &self.old.services {
            let sname = s.full_name();
            let Some(t) = self.new.services.iter().find(|t| t.full_name() == sname) else {
                self.push(true, format!("service `{sname}` was removed"), s.span, None);
                continue;
            };
            for m in &s.methods {
                let Some(n) = t.methods.iter().find(|n| n.id == m.id) else {
                    match t.methods.iter().find(|n| n.name == m.name) {
                        Some(n) => self.push(
                            true,
                            format!(
                                "method `{sname}.{}` changed id from {} to {}",
                                m.name, m.id, n.id
                            ),
                            m.span,
                            n.span,
                        ),
                        None => self.push(
                            true,
                            format!("method `{sname}.{}` (id {}) was removed", m.name, m.id),
                            m.span,
                            t.span,
                        ),
                    }
                    continue;
                };
                if self.pairs.get(&m.request) != Some(&n.request) {
                    self.push(
                        true,
                        format!(
                            "method `{sname}.{}` changed its request from {} to {}",
                            m.name,
                            self.type_name(self.old, Some(m.request)),
                            self.type_name(self.new, Some(n.request))
                        ),
                        m.span,
                        n.span,
                    );
                }
                let same_response = match (m.response, n.response) {
                    (Some(a), Some(b)) => self.pairs.get(&a) == Some(&b),
                    (None, None) => true,
                    _ => false,
                };
                if !same_response {
                    self.push(
                        true,
                        format!(
                            "method `{sname}.{}` changed its response from {} to {}",
                            m.name,
                            self.type_name(self.old, m.response),
                            self.type_name(self.new, n.response)
                        ),
                        m.span,
                        n.span,
                    );
                }
                let stream = |s: bool| if s { "a stream" } else { "a single message" };
                if m.client_streaming != n.client_streaming {
                    self.push(
                        true,
                        format!(
                            "method `{sname}.{}` changed its request side from {} to {} ({} to {})",
                            m.name,
                            stream(m.client_streaming),
                            stream(n.client_streaming),
                            m.kind(),
                            n.kind()
                        ),
                        m.span,
                        n.span,
                    );
                }
                // A response added or removed is reported above; the
                // response side's streaming only compares between two responses.
                if m.response.is_some()
                    && n.response.is_some()
                    && m.server_streaming != n.server_streaming
                {
                    self.push(
                        true,
                        format!(
                            "method `{sname}.{}` changed its response side from {} to {} ({} to {})",
                            m.name,
                            stream(m.server_streaming),
                            stream(n.server_streaming),
                            m.kind(),
                            n.kind()
                        ),
                        m.span,
                        n.span,
                    );
                }
                if m.name != n.name {
                    self.push(
                        false,
                        format!("method `{sname}.{}` was renamed to `{}`", m.name, n.name),
                        m.span,
                        n.span,
                    );
                }
                // How callers send it, not what it carries.
                if m.once != n.once {
                    self.push(
                        false,
                        format!(
                            "method `{sname}.{}` {} `once`",
                            m.name,
                            if n.once { "gained" } else { "lost" }
                        ),
                        m.span,
                        n.span,
                    );
                }
            }
            for n in &t.methods {
                if !s.methods.iter().any(|m| m.id == n.id || m.name == n.name) {
                    self.push(
                        false,
                        format!("method `{sname}.{}` (id {}) was added", n.name, n.id),
                        s.span,
                        n.span,
                    );
                }
            }
        }
        for t in &self.new.services {
            if !self
                .old
                .services
                .iter()
                .any(|s| s.full_name() == t.full_name())
            {
                self.push(
                    false,
                    format!("service `{}` was added", t.full_name()),
                    None,
                    t.span,
                );
            }
        }
    }

    fn compare_channels(&mut self) {
        for c in &self.old.channels {
            let cname = format!("{}.{}", c.package, c.name);
            let Some(d) = self.new.channels.iter().find(|d| d.id == c.id) else {
                match self
                    .new
                    .channels
                    .iter()
                    .find(|d| d.name == c.name && d.package == c.package)
                {
                    Some(d) => self.push(
                        true,
                        format!("channel `{cname}` changed id from {} to {}", c.id, d.id),
                        c.span,
                        d.span,
                    ),
                    None => self.push(
                        true,
                        format!("channel `{cname}` (id {}) was removed", c.id),
                        c.span,
                        None,
                    ),
                }
                continue;
            };
            if self.pairs.get(&c.ty) != Some(&d.ty) {
                self.push(
                    true,
                    format!(
                        "channel `{cname}` changed its type from {} to {}",
                        self.type_name(self.old, Some(c.ty)),
                        self.type_name(self.new, Some(d.ty))
                    ),
                    c.span,
                    d.span,
                );
            }
            if c.keyed != d.keyed {
                self.push(
                    true,
                    format!(
                        "channel `{cname}` {} `keyed`: publications {} a key",
                        if d.keyed { "became" } else { "is no longer" },
                        if d.keyed {
                            "now carry"
                        } else {
                            "no longer carry"
                        }
                    ),
                    c.span,
                    d.span,
                );
            }
            if c.retain != d.retain {
                self.push(
                    false,
                    format!(
                        "channel `{cname}` {} `retain`",
                        if d.retain { "gained" } else { "lost" }
                    ),
                    c.span,
                    d.span,
                );
            }
            if c.name != d.name {
                self.push(
                    false,
                    format!("channel `{cname}` was renamed to `{}`", d.name),
                    c.span,
                    d.span,
                );
            }
        }
        for d in &self.new.channels {
            if !self
                .old
                .channels
                .iter()
                .any(|c| c.id == d.id || (c.name == d.name && c.package == d.package))
            {
                self.push(
                    false,
                    format!("channel `{}.{}` (id {}) was added", d.package, d.name, d.id),
                    None,
                    d.span,
                );
            }
        }
    }
}
