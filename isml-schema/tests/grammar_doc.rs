//! The grammar printed in `docs/schema-language.md` is the grammar the parser
//! uses: every rule of `src/front/grammar.pest` appears in the document's ```pest
//! blocks exactly once, with the same definition, and no other rule does.
//! Comments and layout may differ; tokens may not. The document's opening
//! example compiles.

use std::collections::BTreeMap;
use std::path::Path;

/// One token of a pest grammar: a name, a quoted literal or one punctuation
/// character.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let rest: String = chars[i..].iter().collect();
            let end = rest.find("*/").ok_or("unclosed /* comment")?;
            i += rest[..end + 2].chars().count();
        } else if c == '"' || c == '\'' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            if i >= chars.len() {
                return Err(format!("unclosed literal at character {start}"));
            }
            i += 1;
            out.push(chars[start..i].iter().collect());
        } else if c.is_ascii_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    Ok(out)
}

/// The rules of a grammar, in order: `(name, definition)` where the
/// definition is the modifier and the body's tokens joined by spaces.
fn rules(text: &str) -> Result<Vec<(String, String)>, String> {
    let toks = tokens(text)?;
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let name = &toks[i];
        if toks.get(i + 1).map(String::as_str) != Some("=") {
            return Err(format!("expected `=` after `{name}`"));
        }
        i += 2;
        let mut def = Vec::new();
        if let Some(m) = toks
            .get(i)
            .filter(|t| ["_", "@", "$", "!"].contains(&t.as_str()))
        {
            def.push(m.clone());
            i += 1;
        }
        if toks.get(i).map(String::as_str) != Some("{") {
            return Err(format!("expected `{{` in rule `{name}`"));
        }
        i += 1;
        let mut depth = 1;
        while depth > 0 {
            let t = toks
                .get(i)
                .ok_or_else(|| format!("rule `{name}` is not closed"))?;
            match t.as_str() {
                "{" => depth += 1,
                "}" => depth -= 1,
                _ => {}
            }
            if depth > 0 {
                def.push(t.clone());
            }
            i += 1;
        }
        out.push((name.clone(), def.join(" ")));
    }
    Ok(out)
}

/// The contents of every ```pest block of a markdown text, concatenated.
fn pest_blocks(markdown: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in markdown.lines() {
        let fence = line.trim_start();
        if !inside && fence.starts_with("```pest") {
            inside = true;
        } else if inside && fence.starts_with("```") {
            inside = false;
            out.push('\n');
        } else if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_reference_prints_the_parsers_grammar() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let pest = std::fs::read_to_string(root.join("src/front/grammar.pest")).expect("grammar.pest");
    let doc = std::fs::read_to_string(root.join("../docs/schema-language.md")).expect("doc");

    let real = rules(&pest).expect("grammar.pest parses");
    let printed = rules(&pest_blocks(&doc)).expect("the document's grammar blocks parse");
    assert!(real.len() > 40, "only {} rules in grammar.pest", real.len());

    let mut problems = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, _) in &printed {
        *seen.entry(name).or_default() += 1;
    }
    for (name, n) in &seen {
        if *n > 1 {
            problems.push(format!("`{name}` is printed {n} times"));
        }
    }
    let printed: BTreeMap<&str, &str> = printed
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_str()))
        .collect();
    let real_map: BTreeMap<&str, &str> =
        real.iter().map(|(n, d)| (n.as_str(), d.as_str())).collect();
    for (name, def) in &real_map {
        match printed.get(name) {
            None => problems.push(format!("`{name}` is missing from the document")),
            Some(p) if p != def => problems.push(format!(
                "`{name}` differs:\n  grammar.pest: {def}\n  document:     {p}"
            )),
            Some(_) => {}
        }
    }
    for name in printed.keys() {
        if !real_map.contains_key(name) {
            problems.push(format!(
                "`{name}` is in the document but not in grammar.pest"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/schema-language.md is out of date with src/grammar.pest:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_comparison_notices_a_changed_rule() {
    let a = rules("a = { \"x\" ~ b } // note\nb = @{ 'a'..'z'+ }").unwrap();
    let b = rules("a = {\n  \"x\" ~ b\n}\n/// doc\nb = @{ 'a' .. 'z' + }").unwrap();
    assert_eq!(a, b, "layout and comments do not matter");
    let c = rules("a = { \"x\" ~ b? } b = @{ 'a'..'z'+ }").unwrap();
    assert_ne!(a, c);
    let d = rules("a = { \"}\" ~ b } b = ${ 'a'..'z'+ }").unwrap();
    assert_ne!(a, d, "literals and modifiers count");
    assert_eq!(
        d[0].1, "\"}\" ~ b",
        "a brace inside a literal does not close the rule"
    );
    assert!(rules("a = { b").is_err());
}

#[test]
fn the_references_first_example_compiles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("../docs/schema-language.md")).expect("doc");
    let section = doc.split("## 1. A first look").nth(1).expect("section 1");
    let example = section
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a text block in section 1");
    let common = std::fs::read_to_string(root.join("../schemas/common.isml")).expect("common");
    let schema = isml_schema::load_sources(&[("meters.isml", example), ("common.isml", &common)])
        .unwrap_or_else(|e| panic!("{}", e.render()));
    assert!(schema.lookup("depot.meters.v1.Reading").is_some());
    assert_eq!(
        isml_schema::format::format_source(example).expect("formats"),
        example,
        "the example is formatted as `isml fmt` would"
    );
}
