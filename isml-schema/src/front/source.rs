//! Source files and spans.
//!
//! Every AST and IR node refers back to the text it came from through an owned
//! [`Span`]: a [`FileId`] plus a byte range. Spans are plain values, so nodes
//! can be cloned and moved around freely without borrowing the source text.

use std::path::PathBuf;

/// Identifies one [`SourceFile`] of a compilation: its index in
/// [`Schema::files`](crate::Schema::files) or [`Diagnostics::files`](crate::Diagnostics::files).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// The file the range belongs to.
    pub file: FileId,
    /// Offset of the first byte.
    pub start: usize,
    /// Offset one past the last byte.
    pub end: usize,
}

impl Span {
    /// A span covering `start..end` of `file`.
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span { file, start, end }
    }

    /// The smallest span covering both `self` and `other` (which must be in the
    /// same file; otherwise `self` is returned).
    pub fn to(self, other: Span) -> Span {
        if self.file != other.file {
            return self;
        }
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// One schema file as read from disk (or given in memory), kept so that
/// diagnostics can quote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// This file's id.
    pub id: FileId,
    /// The name shown in diagnostics (the path as given, or a label for
    /// in-memory sources).
    pub name: String,
    /// The canonical path on disk, when the file came from disk.
    pub path: Option<PathBuf>,
    /// The full text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    /// Wraps `text` as file `id`, displayed as `name`.
    pub fn new(
        id: FileId,
        name: impl Into<String>,
        path: Option<PathBuf>,
        text: String,
    ) -> SourceFile {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            id,
            name: name.into(),
            path,
            text,
            line_starts,
        }
    }

    /// The 1-based line and 1-based column (counted in characters) of byte
    /// `offset`. Offsets past the end map to the end of the file.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line + 1, col + 1)
    }

    /// The text of 1-based line `line`, without its line terminator.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = line.checked_sub(1).and_then(|i| self.line_starts.get(i)) else {
            return "";
        };
        let end = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches(['\n', '\r'])
    }

    /// The byte offset where 1-based line `line` starts.
    pub fn line_start(&self, line: usize) -> usize {
        line.checked_sub(1)
            .and_then(|i| self.line_starts.get(i))
            .copied()
            .unwrap_or(self.text.len())
    }

    /// The text covered by `span` (empty when the span does not fit).
    pub fn slice(&self, span: Span) -> &str {
        self.text.get(span.start..span.end).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let f = SourceFile::new(FileId(0), "x", None, "ab\ncdé f\n\nlast".to_string());
        assert_eq!(f.line_col(0), (1, 1));
        assert_eq!(f.line_col(2), (1, 3));
        assert_eq!(f.line_col(3), (2, 1));
        // Columns count characters, not bytes: `é` is two bytes.
        assert_eq!(f.line_col(7), (2, 4));
        assert_eq!(f.line_col(10), (3, 1));
        assert_eq!(f.line_col(999), (4, 5));
        assert_eq!(f.line_text(2), "cdé f");
        assert_eq!(f.line_text(3), "");
        assert_eq!(f.line_text(4), "last");
        assert_eq!(f.line_text(0), "");
        assert_eq!(f.line_text(9), "");
        // An offset inside a multi-byte character does not panic.
        let _ = f.line_col(6);
    }
}
