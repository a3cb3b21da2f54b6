//! Stage 1: text to pest parse tree, with syntax errors phrased in English.

use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use pest_derive::Parser;

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::source::{SourceFile, Span};

/// The pest parser generated from `grammar.pest`.
#[derive(Parser)]
#[grammar = "front/grammar.pest"]
pub(crate) struct IsmlParser;

/// The parse tree of one file.
pub(crate) type Tree<'i> = pest::iterators::Pair<'i, Rule>;

/// Parses `file` into its `file` pair, or a syntax error.
pub(crate) fn parse(file: &SourceFile) -> Result<Tree<'_>, Diagnostic> {
    // Detailed attempts let us name the punctuation that was expected, not
    // only the rules. The flag is process-wide but only adds bookkeeping.
    pest::set_error_detail(true);
    let mut pairs =
        IsmlParser::parse(Rule::file, &file.text).map_err(|e| syntax_error(file, &e))?;
    pairs.next().ok_or_else(|| {
        Diagnostic::new(ErrorKind::Syntax, "internal error: empty parse tree")
            .primary(Some(Span::new(file.id, 0, 0)), "")
    })
}

/// Turns a pest error into a diagnostic that says what was expected.
fn syntax_error(file: &SourceFile, e: &pest::error::Error<Rule>) -> Diagnostic {
    let mut pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !expected.contains(&s) {
            expected.push(s);
        }
    };
    let mut rules: Vec<Rule> = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        ErrorVariant::CustomError { message } => {
            // pest's own limits ("stack limit reached" and the like).
            return Diagnostic::new(
                ErrorKind::Syntax,
                format!("cannot parse this file: {message}"),
            )
            .primary(Some(Span::new(file.id, pos, pos)), "while parsing here")
            .help("the schema is nested too deeply; name intermediate messages instead");
        }
    };
    let attempts = e.parse_attempts();
    if let Some(attempts) = &attempts {
        // Rules are only tracked where they start; literal tokens (`:` after
        // a field name) can fail further on. Report the furthest point.
        if attempts.max_position > pos {
            pos = attempts.max_position;
            rules.clear();
        }
        let in_string = attempts.call_stacks.iter().any(|cs| {
            matches!(
                cs.deepest.get_rule(),
                Some(Rule::string_inner | Rule::escape)
            )
        });
        let backslash = file
            .text
            .get(..pos)
            .and_then(|t| t.rfind('\\'))
            .filter(|b| pos - b <= 9);
        if let (true, Some(start)) = (in_string, backslash) {
            let end = (pos + 1).min(file.text.len());
            return Diagnostic::new(ErrorKind::Syntax, "invalid escape sequence in string")
                .primary(Some(Span::new(file.id, start, end)), "unknown escape")
                .help("strings accept `\\\\`, `\\\"`, `\\n`, `\\t` and `\\u{...}` escapes");
        }
    }
    // A doc comment could start almost anywhere; only mention it when it is
    // the only thing that fits.
    if rules
        .iter()
        .any(|r| !matches!(r, Rule::doc_comment | Rule::file_doc))
    {
        rules.retain(|r| !matches!(r, Rule::doc_comment | Rule::file_doc));
    }
    for r in &rules {
        if let Some(s) = rule_to_english(*r) {
            push(s.to_string());
        }
    }
    if let Some(attempts) = &attempts {
        for token in attempts.expected_tokens() {
            let token = token.to_string();
            if PUNCTUATION.contains(&token.as_str()) {
                // `-` only ever starts a negative integer, and `[` attributes,
                // which are already named.
                if (token == "-" && rules.contains(&Rule::integer))
                    || (token == "[" && rules.contains(&Rule::attributes))
                {
                    continue;
                }
                push(format!("`{token}`"));
            }
        }
    }
    let found = found_at(&file.text, pos);
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    // When the offending token is on a later line, point just after the
    // previous token: that is where something is missing.
    let before = file.text.get(..pos).unwrap_or("");
    let trimmed = before.trim_end();
    let (start, end) = if before[trimmed.len()..].contains('\n') {
        (trimmed.len(), trimmed.len())
    } else {
        (pos, pos + found_len(&file.text, pos))
    };
    let label = if expected.is_empty() {
        "unexpected here".to_string()
    } else {
        format!("expected {}", join_or(&expected))
    };
    Diagnostic::new(ErrorKind::Syntax, message).primary(Some(Span::new(file.id, start, end)), label)
}

/// Literal tokens worth naming in "expected ..." messages.
const PUNCTUATION: &[&str] = &[
    "{", "}", ";", "=", ":", "<", ">", ",", "(", ")", "[", "]", "->", "..=", "-",
];

/// English for a grammar rule, or `None` for rules never worth mentioning.
fn rule_to_english(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::doc_comment => "a doc comment",
        Rule::file_doc => "a `//!` file doc comment",
        Rule::ident => "a name",
        Rule::path => "a name",
        Rule::integer => "an integer",
        Rule::string | Rule::string_inner => "a string",
        Rule::escape => "an escape sequence (`\\\\`, `\\\"`, `\\n`, `\\t` or `\\u{...}`)",
        Rule::kw_package | Rule::package_decl => "`package`",
        Rule::kw_import | Rule::import_decl => "`import`",
        Rule::kw_enum | Rule::enum_decl => "`enum`",
        Rule::kw_message | Rule::message_decl => "`message`",
        Rule::kw_union | Rule::union_decl => "`union`",
        Rule::kw_service | Rule::service_decl => "`service`",
        Rule::kw_channel | Rule::channel_decl => "`channel`",
        Rule::kw_rpc | Rule::rpc_decl => "`rpc`",
        Rule::kw_stream => "`stream`",
        Rule::kw_reserved | Rule::reserved_decl => "`reserved`",
        Rule::kw_to => "`to`",
        Rule::enum_variant => "an enum variant",
        Rule::field => "a field",
        Rule::reserved_item => "a tag number",
        Rule::union_variant => "a union variant",
        Rule::rpc_request => "a request type",
        Rule::rpc_response => "a response type",
        Rule::type_expr
        | Rule::optional_type
        | Rule::list_type
        | Rule::map_type
        | Rule::array_type
        | Rule::named_type => "a type",
        Rule::attributes => "attributes `[...]`",
        Rule::attribute => "an attribute",
        Rule::attr_value => "an attribute value",
        Rule::int_range => "a range `A..=B`",
        Rule::EOI => "end of file",
        // Trivia, helpers and silent rules never reach users.
        _ => return None,
    })
}

/// "a", "a or b", "a, b or c".
fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Length in bytes of the token starting at `pos`: a word, or one character.
fn found_len(text: &str, pos: usize) -> usize {
    let rest = text.get(pos..).unwrap_or("");
    let word: usize = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .map(char::len_utf8)
        .sum();
    if word > 0 {
        word
    } else {
        rest.chars().next().map_or(0, char::len_utf8)
    }
}

/// How to describe the token at `pos` in a message.
fn found_at(text: &str, pos: usize) -> String {
    let len = found_len(text, pos);
    match text.get(pos..pos + len) {
        None | Some("") => "end of file".to_string(),
        Some("\n" | "\r") => "end of line".to_string(),
        Some(tok) if tok.trim().is_empty() => "whitespace".to_string(),
        Some(tok) => format!("`{tok}`"),
    }
}
