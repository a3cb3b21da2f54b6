//! Collected diagnostics and their rustc-style rendering.
//!
//! Stages never stop at the first problem: they push [`Diagnostic`]s into a
//! list and the pipeline only stops between stages. A failed compilation
//! returns [`Diagnostics`], which owns the source files it refers to so it can
//! render itself without any other context.

use std::fmt::{self, Write as _};

use crate::source::{SourceFile, Span};

/// What kind of problem a [`Diagnostic`] reports. Tests and tools can match
/// on this instead of on message text.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A file could not be read.
    Io,
    /// The text does not follow the grammar.
    Syntax,
    /// An integer literal or string literal is malformed or too large.
    InvalidLiteral,
    /// A file has no `package` declaration.
    MissingPackage,
    /// An imported file was found neither next to the importer nor in an include dir.
    ImportNotFound,
    /// Files import each other in a cycle.
    ImportCycle,
    /// Two types, fields, variants, methods, services or channels share a name.
    DuplicateName,
    /// Two fields or union variants share a tag.
    DuplicateTag,
    /// Two enum variants share a value.
    DuplicateValue,
    /// Two messages or unions share a message `id`.
    DuplicateMessageId,
    /// Two methods of one service share an id.
    DuplicateMethodId,
    /// Two channels share an id.
    DuplicateChannelId,
    /// A field uses a tag listed in `reserved`, or a `reserved` entry is malformed.
    ReservedTag,
    /// A type name does not resolve.
    UnknownType,
    /// A relative type name matches types in more than one package (see
    /// `docs/schema-language.md`, name resolution).
    AmbiguousType,
    /// An attribute name is not known at all.
    UnknownAttribute,
    /// A known attribute is used where it does not apply.
    MisplacedAttribute,
    /// An attribute is given twice.
    DuplicateAttribute,
    /// An attribute has the wrong kind of value, or does not fit the field's type.
    InvalidAttributeValue,
    /// A map key type is not an integer, `bool` or `string`.
    InvalidMapKey,
    /// `optional<optional<T>>`.
    NestedOptional,
    /// A union variant is `optional<..>`.
    OptionalVariant,
    /// A type contains itself without `optional`, `list` or `map` in between.
    InfiniteSize,
    /// A number (tag, id, value, length) is outside its allowed range.
    OutOfRange,
    /// An rpc or channel names a type that is not a message or union.
    NotAMessage,
    /// An rpc or channel names a message or union without a type id: it
    /// cannot travel in a frame of its own.
    MissingTypeId,
    /// An rpc streams its requests (`rpc m(stream Req)`) but has no response,
    /// or (in an IR built by another front end) is marked as streaming
    /// responses without having one.
    StreamWithoutResponse,
    /// An IR built by another front end refers to a type id that does not exist.
    DanglingTypeId,
    /// A streaming rpc is marked `[once]`: only unary and one-way calls are
    /// kept and resent across reconnects.
    OnceOnStream,
}

/// A span with a short explanation, drawn under the quoted source line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What to say there (may be empty).
    pub message: String,
    /// Primary labels are underlined with `^`, secondary ones with `-`.
    pub primary: bool,
}

/// One error, with the places it concerns and an optional hint.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The class of problem.
    pub kind: ErrorKind,
    /// One line saying what is wrong.
    pub message: String,
    /// Places in the source; the first primary label is the location shown
    /// after `-->`. Empty for diagnostics about IR without source.
    pub labels: Vec<Label>,
    /// Extra facts, rendered as `= note: ...`.
    pub notes: Vec<String>,
    /// How to fix it, rendered as `= help: ...`.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic of `kind` with `message` and no location yet.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            kind,
            message: message.into(),
            labels: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Adds the primary location (ignored when `span` is `None`).
    pub fn primary(mut self, span: Option<Span>, message: impl Into<String>) -> Diagnostic {
        if let Some(span) = span {
            self.labels.push(Label {
                span,
                message: message.into(),
                primary: true,
            });
        }
        self
    }

    /// Adds a secondary location (ignored when `span` is `None`).
    pub fn secondary(mut self, span: Option<Span>, message: impl Into<String>) -> Diagnostic {
        if let Some(span) = span {
            self.labels.push(Label {
                span,
                message: message.into(),
                primary: false,
            });
        }
        self
    }

    /// Sets the `= help:` line.
    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds a `= note:` line.
    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// The primary span, if any.
    pub fn span(&self) -> Option<Span> {
        self.labels
            .iter()
            .find(|l| l.primary)
            .or_else(|| self.labels.first())
            .map(|l| l.span)
    }

    /// Renders this diagnostic like rustc does, without colour, quoting lines
    /// from `files` (indexed by [`FileId`](crate::FileId)).
    pub fn render(&self, files: &[SourceFile]) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = render_into(&mut out, self, files);
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)
    }
}

/// All the errors of a failed compilation, with the files they point into.
///
/// This is the error type of [`load`](crate::load()) and friends. Its
/// [`Display`](fmt::Display) output is [`render`](Diagnostics::render); its
/// `Debug` output is the same rendering under a count of the errors, so that
/// `.unwrap()` and a `main` returning `Result` show the diagnostics, not the
/// source files they quote. The individual [`Diagnostic`]s are available
/// through [`iter`](Diagnostics::iter).
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct Diagnostics {
    files: Vec<SourceFile>,
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Bundles `list` with the `files` its spans point into.
    pub fn new(files: Vec<SourceFile>, list: Vec<Diagnostic>) -> Diagnostics {
        Diagnostics { files, list }
    }

    /// The individual diagnostics, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.list.iter()
    }

    /// How many diagnostics there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are none (never the case for a failed compilation).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The source files the diagnostics refer to.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// The kinds of all diagnostics, in order: handy in tests.
    pub fn kinds(&self) -> Vec<ErrorKind> {
        self.list.iter().map(|d| d.kind).collect()
    }

    /// Renders every diagnostic (plain text, no colour) followed by a summary
    /// line, like rustc's output for a failed build.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for d in &self.list {
            let _ = render_into(&mut out, d, &self.files);
            out.push('\n');
        }
        match self.list.len() {
            0 => {}
            1 => out.push_str("error: aborting due to 1 previous error\n"),
            n => {
                let _ = writeln!(out, "error: aborting due to {n} previous errors");
            }
        }
        out
    }
}

impl fmt::Debug for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.list.len();
        let s = if n == 1 { "" } else { "s" };
        write!(f, "{n} error{s} in the schemas:\n\n{}", self.render())
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

fn render_into(out: &mut String, d: &Diagnostic, files: &[SourceFile]) -> fmt::Result {
    writeln!(out, "error: {}", d.message)?;

    let file_of = |span: Span| files.get(span.file.0 as usize);
    // Labels whose file is unknown cannot be quoted; keep the others.
    let mut labels: Vec<&Label> = d
        .labels
        .iter()
        .filter(|l| file_of(l.span).is_some())
        .collect();
    let primary_idx = labels.iter().position(|l| l.primary).unwrap_or(0);
    if !labels.is_empty() {
        let primary = labels.remove(primary_idx);
        labels.insert(0, primary);
    }

    // The gutter is as wide as the largest line number shown.
    let width = labels
        .iter()
        .filter_map(|l| file_of(l.span).map(|f| f.line_col(l.span.start).0))
        .max()
        .map_or(0, |n| n.to_string().len());
    let pad = " ".repeat(width);

    // Group labels by file, primary file first, keeping first-seen order of files.
    let mut groups: Vec<(&SourceFile, Vec<&Label>)> = Vec::new();
    for label in &labels {
        let Some(file) = file_of(label.span) else {
            continue;
        };
        match groups.iter_mut().find(|(f, _)| f.id == file.id) {
            Some((_, ls)) => ls.push(label),
            None => groups.push((file, vec![label])),
        }
    }

    for (gi, (file, group)) in groups.iter_mut().enumerate() {
        let anchor = group[0].span.start;
        let (line, col) = file.line_col(anchor);
        let arrow = if gi == 0 {
            "-->"
        } else {
            // Like rustc: a gutter line separates the groups of two files.
            writeln!(out, "{pad} |")?;
            ":::"
        };
        writeln!(out, "{pad}{arrow} {}:{line}:{col}", file.name)?;
        writeln!(out, "{pad} |")?;
        group.sort_by_key(|l| (l.span.start, !l.primary));
        let mut last_line = None;
        for label in group.iter() {
            let (line, col) = file.line_col(label.span.start);
            let text = file.line_text(line);
            if let Some(prev) = last_line
                && line > prev + 1
            {
                writeln!(out, "{pad} |")?;
            }
            if last_line != Some(line) {
                writeln!(out, "{line:>width$} | {text}")?;
            }
            last_line = Some(line);
            // Indent with the same tabs as the source so carets line up.
            let indent: String = text
                .chars()
                .take(col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let line_end = file.line_start(line) + text.len();
            let end = label.span.end.min(line_end).max(label.span.start);
            let marked = file
                .text
                .get(label.span.start..end)
                .map_or(0, |s| s.chars().count())
                .max(1);
            let mark = if label.primary { "^" } else { "-" };
            let underline = mark.repeat(marked);
            if label.message.is_empty() {
                writeln!(out, "{pad} | {indent}{underline}")?;
            } else {
                writeln!(out, "{pad} | {indent}{underline} {}", label.message)?;
            }
        }
    }
    if !groups.is_empty() && (d.help.is_some() || !d.notes.is_empty()) {
        writeln!(out, "{pad} |")?;
    }
    for note in &d.notes {
        writeln!(out, "{pad} = note: {note}")?;
    }
    if let Some(help) = &d.help {
        writeln!(out, "{pad} = help: {help}")?;
    }
    Ok(())
}
