//! The schema compiler's front end from source text: parse, lower, resolve
//! and check (`isml_schema::load_str`), the formatter, the canonical forms
//! and fingerprints, and the Rust code generator on what checks.

use isml_schema::{Schema, codegen, format};

/// Inputs longer than this are skipped: the grammar's cost grows with the
/// text, and long inputs only slow the search down.
const MAX_TEXT: usize = 8 * 1024;

/// Any text compiles or yields diagnostics that render. A schema that
/// compiles formats; its formatted text compiles to the same types
/// (canonical forms and fingerprints) and formats to itself; the code
/// generator handles it.
pub fn schema(data: &[u8]) {
    if data.len() > MAX_TEXT {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = match isml_schema::load_str("fuzz.isml", text) {
        Ok(schema) => schema,
        Err(diags) => {
            let rendered = diags.render();
            assert!(!rendered.is_empty(), "errors render as nothing");
            // Formatting checks the syntax only: it may succeed on text
            // that fails later stages, but must not panic.
            let _ = format::format_source(text);
            return;
        }
    };
    let forms = canonical(&schema);
    let formatted = format::format_source(text).expect("a schema that compiles formats");
    let again = isml_schema::load_str("fuzz.isml", &formatted).unwrap_or_else(|d| {
        panic!(
            "the formatted schema does not compile:\n{}\n{formatted}",
            d.render()
        )
    });
    assert_eq!(
        canonical(&again),
        forms,
        "formatting changed the types:\n{formatted}"
    );
    assert_eq!(
        format::format_source(&formatted).expect("formats again"),
        formatted,
        "formatting is not idempotent"
    );
    for (_package, code) in codegen::generate(&schema) {
        assert!(!code.is_empty());
    }
}

/// Every type's full name, canonical form and fingerprint.
fn canonical(schema: &Schema) -> Vec<(String, String, u64)> {
    let mut out: Vec<_> = schema
        .types_iter()
        .map(|(id, def)| {
            (
                def.full_name(),
                schema.canonical_form(id),
                schema.fingerprint(id),
            )
        })
        .collect();
    out.sort();
    out
}
