//! Canonical formatting of `.isml` files (`isml fmt`), keeping every comment.
//!
//! The pest grammar drops `//` and `/* */` comments, so the formatter works on
//! its own token stream in which comments are tokens: the grammar only
//! validates the text first. Each statement goes on its own line, indented by
//! four spaces per block; fields and enum variants of consecutive lines are
//! aligned in columns; a run of blank lines becomes one; top-level blocks are
//! separated by a blank line. Comments stay where they were relative to the
//! code: on their own line before a declaration, or at the end of the line
//! they followed. As a safety net, the output is checked to hold exactly the
//! input's tokens and comments, in order.
//!
//! ```
//! let text = "package p;\n// a comment\nmessage M{x:u8=1;// trailing\nlonger_name : list<string> = 2 ;}\n";
//! let formatted = isml_schema::format::format_source(text)?;
//! assert_eq!(
//!     formatted,
//!     "package p;\n\n// a comment\nmessage M {\n    x:           u8           = 1; // trailing\n    longer_name: list<string> = 2;\n}\n"
//! );
//! assert_eq!(isml_schema::format::format_source(&formatted)?, formatted);
//! # Ok::<(), isml_schema::Diagnostics>(())
//! ```

use crate::diagnostic::{Diagnostic, Diagnostics, ErrorKind};
use crate::source::{FileId, SourceFile, Span};

/// Formats schema text; syntax errors are returned as diagnostics on a file called `<input>`.
pub fn format_source(text: &str) -> Result<String, Diagnostics> {
    format_named("<input>", text)
}

/// Formats schema text, naming the file `name` in diagnostics.
pub fn format_named(name: &str, text: &str) -> Result<String, Diagnostics> {
    let file = SourceFile::new(FileId(0), name, None, text.to_string());
    if let Err(d) = crate::front::parse::parse(&file) {
        return Err(Diagnostics::new(vec![file], vec![d]));
    }
    let fail = |file: SourceFile, at: usize, msg: &str| {
        let d = Diagnostic::new(ErrorKind::Syntax, format!("cannot format this file: {msg}"))
            .primary(Some(Span::new(FileId(0), at, at)), "here");
        Diagnostics::new(vec![file], vec![d])
    };
    let tokens = match lex(text) {
        Ok(t) => t,
        Err(at) => return Err(fail(file, at, "unexpected character")),
    };
    let mut p = 0;
    let items = parse_items(&tokens, &mut p);
    if p != tokens.len() {
        return Err(fail(file, tokens[p].start, "unbalanced braces"));
    }
    let mut out = String::new();
    print_items(&items, 0, &mut out);
    // Never lose or reorder anything: the output must lex to the same
    // tokens and comments as the input.
    let again = lex(&out).unwrap_or_default();
    let same = again.len() == tokens.len()
        && again
            .iter()
            .zip(&tokens)
            .all(|(a, b)| a.kind == b.kind && a.text.trim_end() == b.text.trim_end());
    if !same {
        return Err(fail(
            file,
            0,
            "internal error: formatting would change the tokens",
        ));
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Identifier, path, integer or keyword.
    Word,
    Str,
    Punct,
    /// `//`, `///`, `//!` and `/* */` comments.
    Comment,
}

#[derive(Debug, Clone)]
struct Tok<'a> {
    kind: Kind,
    text: &'a str,
    start: usize,
    /// Newlines between the previous token and this one.
    newlines: usize,
}

impl Tok<'_> {
    fn is(&self, p: &str) -> bool {
        self.kind == Kind::Punct && self.text == p
    }

    fn is_line_comment(&self) -> bool {
        self.kind == Kind::Comment && self.text.starts_with("//")
    }
}

/// Splits `text` into tokens; `Err(offset)` at a character the grammar does not allow.
fn lex(text: &str) -> Result<Vec<Tok<'_>>, usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut newlines = 0;
    let ident_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let ident_start = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_');
    while i < b.len() {
        let c = b[i];
        // A line ends at `\n`, `\r\n` or a lone `\r`, as in the grammar
        // (pest's NEWLINE).
        if c == b'\n' || (c == b'\r' && b.get(i + 1) != Some(&b'\n')) {
            newlines += 1;
            i += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let kind = if text[i..].starts_with("//") {
            while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                i += 1;
            }
            Kind::Comment
        } else if text[i..].starts_with("/*") {
            match text[i + 2..].find("*/") {
                Some(e) => i += 2 + e + 2,
                None => return Err(i),
            }
            Kind::Comment
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= b.len() {
                return Err(start);
            }
            i += 1;
            Kind::Str
        } else if c.is_ascii_alphabetic() || c == b'_' || (c == b'.' && ident_start(b.get(i + 1))) {
            // A name, dotted, with a leading `.` when fully qualified.
            if c == b'.' {
                i += 1;
            }
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
            while i + 1 < b.len() && b[i] == b'.' && ident_start(b.get(i + 1)) {
                i += 1;
                while i < b.len() && ident_char(b[i]) {
                    i += 1;
                }
            }
            Kind::Word
        } else if c.is_ascii_digit() || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            i += 1;
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
            Kind::Word
        } else if text[i..].starts_with("->") {
            i += 2;
            Kind::Punct
        } else if text[i..].starts_with("..=") {
            i += 3;
            Kind::Punct
        } else if b"{}[]()<>,;:=".contains(&c) {
            i += 1;
            Kind::Punct
        } else {
            return Err(i);
        };
        let mut t = &text[start..i];
        if t.starts_with("//") {
            t = t.trim_end();
        }
        out.push(Tok {
            kind,
            text: t,
            start,
            newlines,
        });
        newlines = 0;
    }
    Ok(out)
}

#[derive(Debug)]
enum Item<'a> {
    Blank,
    Comment(&'a str),
    Stmt(Stmt<'a>),
}

#[derive(Debug, Default)]
struct Stmt<'a> {
    /// The statement's tokens up to `;` or `{`, comments inside it included.
    toks: Vec<Tok<'a>>,
    /// Comments after `{` on the same line.
    open_trailing: Vec<&'a str>,
    /// The block's contents, for declarations with braces.
    block: Option<Vec<Item<'a>>>,
    /// Comments after the `;` or `}` on the same line.
    trailing: Vec<&'a str>,
}

fn take_trailing<'a>(tokens: &[Tok<'a>], p: &mut usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    while let Some(t) = tokens.get(*p) {
        if t.kind != Kind::Comment || t.newlines > 0 {
            break;
        }
        out.push(t.text);
        *p += 1;
        if t.is_line_comment() {
            break;
        }
    }
    out
}

fn parse_items<'a>(tokens: &[Tok<'a>], p: &mut usize) -> Vec<Item<'a>> {
    let mut items = Vec::new();
    while let Some(t) = tokens.get(*p) {
        if t.is("}") {
            break;
        }
        if t.newlines >= 2 && !items.is_empty() {
            items.push(Item::Blank);
        }
        if t.kind == Kind::Comment {
            items.push(Item::Comment(t.text));
            *p += 1;
            continue;
        }
        let mut stmt = Stmt::default();
        while let Some(t) = tokens.get(*p) {
            *p += 1;
            if t.is(";") {
                stmt.toks.push(t.clone());
                stmt.trailing = take_trailing(tokens, p);
                break;
            }
            if t.is("{") {
                stmt.open_trailing = take_trailing(tokens, p);
                stmt.block = Some(parse_items(tokens, p));
                if tokens.get(*p).is_some_and(|t| t.is("}")) {
                    *p += 1;
                }
                stmt.trailing = take_trailing(tokens, p);
                break;
            }
            stmt.toks.push(t.clone());
        }
        items.push(Item::Stmt(stmt));
    }
    items
}

fn no_space_before(t: &Tok<'_>) -> bool {
    t.kind == Kind::Punct && [";", ",", ":", ">", ")", "]"].contains(&t.text)
}

fn space_between(prev: &Tok<'_>, next: &Tok<'_>) -> bool {
    let p = |t: &Tok<'_>, s: &[&str]| t.kind == Kind::Punct && s.contains(&t.text);
    !(p(next, &[";", ",", ":", ">", ")", "]", "..=", "<", "("]) || p(prev, &["<", "(", "[", "..="]))
}

/// Joins tokens on one line with canonical spacing (no comments inside).
fn join(toks: &[Tok<'_>]) -> String {
    let mut s = String::new();
    for (i, t) in toks.iter().enumerate() {
        if i > 0 && space_between(&toks[i - 1], t) {
            s.push(' ');
        }
        s.push_str(t.text);
    }
    s
}

/// Column layout of an aligned field or variant line.
enum Row {
    /// `name: type = rest`
    Field {
        name: String,
        ty: String,
        rest: String,
    },
    /// `name = rest`
    Variant { name: String, rest: String },
}

fn row_of(stmt: &Stmt<'_>) -> Option<Row> {
    let t = &stmt.toks;
    if stmt.block.is_some() || t.iter().any(|x| x.kind == Kind::Comment) || t.len() < 3 {
        return None;
    }
    if t[0].kind != Kind::Word {
        return None;
    }
    if t[1].is(":") {
        let mut depth = 0i32;
        let eq = t.iter().enumerate().skip(2).find_map(|(i, x)| {
            if x.is("<") {
                depth += 1;
            } else if x.is(">") {
                depth -= 1;
            } else if x.is("=") && depth == 0 {
                return Some(i);
            }
            None
        })?;
        if eq == 2 {
            return None;
        }
        return Some(Row::Field {
            name: t[0].text.to_string(),
            ty: join(&t[2..eq]),
            rest: join(&t[eq..]),
        });
    }
    if t[1].is("=") {
        return Some(Row::Variant {
            name: t[0].text.to_string(),
            rest: join(&t[1..]),
        });
    }
    None
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str("    ");
    }
}

fn is_block(item: &Item<'_>) -> bool {
    matches!(item, Item::Stmt(s) if s.block.is_some())
}

fn is_package(item: &Item<'_>) -> bool {
    matches!(item, Item::Stmt(s) if s.toks.first().is_some_and(|t| t.text == "package"))
}

/// Blank lines: none at the edges of a block, one at most in a row, and at
/// the top level one around every block declaration and after `package`.
fn normalize<'a>(items: Vec<&'a Item<'a>>, top: bool) -> Vec<&'a Item<'a>> {
    const BLANK: &Item<'static> = &Item::Blank;
    let mut v: Vec<&Item<'_>> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if top && i > 0 {
            let prev = v.last().copied();
            // Comments after the last declaration stay where they are.
            let leads_somewhere = items[i..].iter().any(|x| matches!(x, Item::Stmt(_)));
            let after_block = prev.is_some_and(|p| is_block(p) || is_package(p)) && leads_somewhere;
            // A block's leading comments stay attached to it: the blank line
            // goes before the first of them.
            let starts_group = (is_block(item) || matches!(item, Item::Comment(_)))
                && items[i..]
                    .iter()
                    .find(|x| !matches!(x, Item::Comment(_)))
                    .is_some_and(|x| is_block(x))
                && prev.is_some_and(|p| matches!(p, Item::Stmt(_)));
            if after_block || starts_group {
                v.push(BLANK);
            }
        }
        v.push(item);
    }
    let mut out: Vec<&Item<'_>> = Vec::new();
    for item in v {
        if matches!(item, Item::Blank)
            && (out.is_empty() || matches!(out.last(), Some(Item::Blank)))
        {
            continue;
        }
        out.push(item);
    }
    while matches!(out.last(), Some(Item::Blank)) {
        out.pop();
    }
    out
}

fn print_items(items: &[Item<'_>], depth: usize, out: &mut String) {
    let items = normalize(items.iter().collect(), depth == 0);
    // Column widths per run of rows (broken by blank lines and other statements).
    let mut widths: Vec<Option<(usize, usize)>> = vec![None; items.len()];
    let mut i = 0;
    while i < items.len() {
        let mut j = i;
        let mut run = Vec::new();
        let mut field_run: Option<bool> = None;
        while j < items.len() {
            match items[j] {
                Item::Comment(_) => {}
                Item::Stmt(s) => match row_of(s) {
                    Some(r) => {
                        let is_field = matches!(r, Row::Field { .. });
                        if field_run.is_some_and(|f| f != is_field) {
                            break;
                        }
                        field_run = Some(is_field);
                        run.push((j, r));
                    }
                    None => break,
                },
                Item::Blank => break,
            }
            j += 1;
        }
        let name_w = run
            .iter()
            .map(|(_, r)| match r {
                Row::Field { name, .. } => name.len() + 1,
                Row::Variant { name, .. } => name.len(),
            })
            .max()
            .unwrap_or(0);
        let ty_w = run
            .iter()
            .map(|(_, r)| match r {
                Row::Field { ty, .. } => ty.len(),
                Row::Variant { .. } => 0,
            })
            .max()
            .unwrap_or(0);
        for (k, _) in &run {
            widths[*k] = Some((name_w, ty_w));
        }
        i = j.max(i + 1);
    }
    for (item, width) in items.iter().zip(widths) {
        match item {
            Item::Blank => out.push('\n'),
            Item::Comment(text) => {
                indent(out, depth);
                out.push_str(text);
                out.push('\n');
            }
            Item::Stmt(s) => print_stmt(s, depth, width, out),
        }
    }
}

fn print_stmt(s: &Stmt<'_>, depth: usize, width: Option<(usize, usize)>, out: &mut String) {
    indent(out, depth);
    match (width, row_of(s)) {
        (Some((nw, tw)), Some(Row::Field { name, ty, rest })) => {
            let head = format!("{name}:");
            out.push_str(&format!("{head:<w$} {ty:<tw$} {rest}", w = nw));
        }
        (Some((nw, _)), Some(Row::Variant { name, rest })) => {
            out.push_str(&format!("{name:<nw$} {rest}"));
        }
        _ => {
            let mut line_start = true;
            let mut prev: Option<&Tok<'_>> = None;
            for t in &s.toks {
                let space = match prev {
                    None => false,
                    Some(_) if line_start => false,
                    Some(p) if p.kind == Kind::Comment => !no_space_before(t),
                    Some(p) => t.kind == Kind::Comment || space_between(p, t),
                };
                if space {
                    out.push(' ');
                }
                out.push_str(t.text);
                line_start = false;
                if t.is_line_comment() {
                    out.push('\n');
                    indent(out, depth + 1);
                    line_start = true;
                }
                prev = Some(t);
            }
        }
    }
    if let Some(block) = &s.block {
        if block.is_empty() && s.open_trailing.is_empty() {
            out.push_str(" {}");
        } else {
            out.push_str(" {");
            for c in &s.open_trailing {
                out.push(' ');
                out.push_str(c);
            }
            out.push('\n');
            print_items(block, depth + 1, out);
            indent(out, depth);
            out.push('}');
        }
    }
    for c in &s.trailing {
        out.push(' ');
        out.push_str(c);
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::format_source;

    fn fmt(s: &str) -> String {
        let once = format_source(s).unwrap_or_else(|d| panic!("{}", d.render()));
        assert_eq!(format_source(&once).unwrap(), once, "idempotent");
        once
    }

    #[test]
    fn comments_everywhere_survive() {
        let src = "//! File docs.\npackage p; // trailing on package\n\n\n/* block\n   comment */\n/// Doc.\nenum E { a = 0; /* inline */ bb = 1; // last\n// before close\n}\nmessage M { reserved 1 /* why */, 2; }\n// end of file\n";
        let out = fmt(src);
        assert_eq!(
            out,
            "//! File docs.\npackage p; // trailing on package\n\n/* block\n   comment */\n/// Doc.\nenum E {\n    a  = 0; /* inline */\n    bb = 1; // last\n    // before close\n}\n\nmessage M {\n    reserved 1 /* why */, 2;\n}\n// end of file\n"
        );
    }

    #[test]
    fn services_and_channels_are_spaced_canonically() {
        let out = fmt(
            "package p;message A[id=1]{}service S{rpc go(A)->stream A=1;rpc one ( A ) = 2 ;}channel c:A=1[retain,keyed];",
        );
        assert_eq!(
            out,
            "package p;\n\nmessage A [id = 1] {}\n\nservice S {\n    rpc go(A) -> stream A = 1;\n    rpc one(A) = 2;\n}\n\nchannel c: A = 1 [retain, keyed];\n"
        );
    }

    #[test]
    fn the_five_rpc_forms_are_spaced_canonically() {
        let out = fmt(
            "package p;message A[id=1]{}message B[id=2]{}service S{rpc u(A)->B=1;rpc s(A)->stream B=2;\
             rpc o(A)=3;rpc c( stream A )->B=4;rpc b(stream A)->stream B=5;\
             rpc d(stream.A)->stream .p.B=6;rpc n(stream)->stream=7;}",
        );
        assert_eq!(
            out,
            "package p;\n\nmessage A [id = 1] {}\n\nmessage B [id = 2] {}\n\nservice S {\n    \
             rpc u(A) -> B = 1;\n    rpc s(A) -> stream B = 2;\n    rpc o(A) = 3;\n    \
             rpc c(stream A) -> B = 4;\n    rpc b(stream A) -> stream B = 5;\n    \
             rpc d(stream.A) -> stream .p.B = 6;\n    rpc n(stream) -> stream = 7;\n}\n"
        );
    }

    #[test]
    fn once_is_spaced_like_other_attributes() {
        let out =
            fmt("package p;message A[id=1]{}service S{rpc u(A)->A=1[once];rpc o(A)=2[ once ];}");
        assert_eq!(
            out,
            "package p;\n\nmessage A [id = 1] {}\n\nservice S {\n    \
             rpc u(A) -> A = 1 [once];\n    rpc o(A) = 2 [once];\n}\n"
        );
    }

    #[test]
    fn a_line_comment_inside_a_statement_breaks_the_line() {
        let out = fmt("package p; message M { x: u8 // why\n = 1; }");
        assert_eq!(
            out,
            "package p;\n\nmessage M {\n    x: u8 // why\n        = 1;\n}\n"
        );
    }

    /// A lone carriage return ends a line comment, as in the grammar; the
    /// formatter took the `}` after it into the comment (found by the
    /// `schema` fuzz target).
    #[test]
    fn a_carriage_return_ends_a_line_comment() {
        let src = "package s;message n{//\r}";
        crate::load_str("cr.isml", src).expect("the grammar ends the comment at \\r");
        let out = fmt(src);
        assert_eq!(out, "package s;\n\nmessage n { //\n}\n");
        crate::load_str("cr.isml", &out).expect("the formatted text compiles");
        assert_eq!(
            fmt("package p; // a\r\nmessage M {}"),
            "package p; // a\n\nmessage M {}\n"
        );
    }

    #[test]
    fn fully_qualified_names_keep_their_leading_dot() {
        let out = fmt(
            "package a.b;message M{x:.a.c.T=1;y:list<.a.c.T>=2;z:map<u8,.a.c.T>=3[max_len=2];}service S{rpc go(.a.b.M)->stream .a.b.M=1;}channel c:.a.b.M=1;",
        );
        assert_eq!(
            out,
            "package a.b;\n\nmessage M {\n    x: .a.c.T          = 1;\n    y: list<.a.c.T>    = 2;\n    z: map<u8, .a.c.T> = 3 [max_len = 2];\n}\n\nservice S {\n    rpc go(.a.b.M) -> stream .a.b.M = 1;\n}\n\nchannel c: .a.b.M = 1;\n"
        );
        // `..=` in a range is not the start of a name.
        assert!(fmt("package p; message M { x: u8 = 1 [range = 0..=9]; }").contains("0..=9"));
    }

    #[test]
    fn syntax_errors_are_diagnostics() {
        let e = format_source("package p; message M { x u8 = 1; }").unwrap_err();
        assert!(e.render().contains("<input>:1:"), "{}", e.render());
    }
}
