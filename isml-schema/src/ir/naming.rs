//! Every Rust name the code generator emits comes from here: case conversion,
//! keyword escaping and collision handling. Schema authors may use any
//! identifier (`type`, `self`, `Self`, `match`); the generator never fails on one.

use std::collections::BTreeSet;

use heck::{ToSnakeCase, ToUpperCamelCase};
use proc_macro2::{Ident, Span};

/// Rust keywords (strict, reserved and edition-2024) that need escaping.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "union", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// Keywords that cannot be raw identifiers: they get a trailing `_` instead.
const NOT_RAW: &[&str] = &["self", "Self", "super", "crate", "_"];

fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s)
}

/// Makes an identifier from a converted name: raw (`r#type`) for keywords that
/// allow it, `name_` for the rest, `_` + fallback for an empty name.
pub(crate) fn ident(name: &str) -> Ident {
    if NOT_RAW.contains(&name) {
        Ident::new(&format!("{name}_"), Span::call_site())
    } else if is_keyword(name) {
        Ident::new_raw(name, Span::call_site())
    } else {
        Ident::new(name, Span::call_site())
    }
}

/// A unique identifier from a converted name: escaping happens before the
/// uniqueness check, so `self` (emitted as `self_`) and `self_` cannot collide.
pub(crate) fn unique_ident(namer: &mut Namer, name: &str, suffix: u32) -> Ident {
    let escaped = ident(name).to_string();
    let unique = namer.name(escaped, suffix);
    match unique.strip_prefix("r#") {
        Some(raw) if is_keyword(raw) => Ident::new_raw(raw, Span::call_site()),
        Some(plain) => Ident::new(plain, Span::call_site()),
        None => Ident::new(&unique, Span::call_site()),
    }
}

/// The Rust type name of a schema type name (`slot_state` -> `SlotState`).
pub(crate) fn type_name(name: &str) -> String {
    let mut s = name.to_upper_camel_case();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s = format!("T{s}");
    }
    if is_keyword(&s) {
        s.push('_');
    }
    s
}

/// The Rust field or method name of a schema field name (`voltageMv` -> `voltage_mv`).
pub(crate) fn field_name(name: &str) -> String {
    let s = name.to_snake_case();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("f{s}")
    } else {
        s
    }
}

/// The Rust variant name of a schema enum or union variant.
pub(crate) fn variant_name(name: &str) -> String {
    type_name(name)
}

/// The schema name of a Rust enum or union variant (`ChargeStarted` ->
/// `charge_started`): the inverse of `variant_name` for the names schemas
/// usually use, so that a schema exported from derived types generates the
/// same Rust variant names again.
pub fn schema_variant_name(rust: &str) -> String {
    let s = rust.to_snake_case();
    if s.is_empty() { rust.to_string() } else { s }
}

/// The module name of one package path segment (`charging` in `charging.v1`).
pub(crate) fn module_name(segment: &str) -> String {
    let s = segment.to_snake_case();
    if s.is_empty() { "m".to_string() } else { s }
}

/// Assigns unique names: when a candidate is taken (or reserved), appends
/// `_<suffix>` (the tag or value), then `_` until it is free.
#[derive(Debug, Default)]
pub(crate) struct Namer {
    taken: BTreeSet<String>,
    camel: bool,
}

impl Namer {
    /// A namer in which `reserved` names are already taken.
    pub(crate) fn with_reserved(reserved: &[&str]) -> Self {
        Namer {
            taken: reserved.iter().map(|s| s.to_string()).collect(),
            camel: false,
        }
    }

    /// A namer for UpperCamelCase names: suffixes are appended without `_`.
    pub(crate) fn camel(reserved: &[&str]) -> Self {
        Namer {
            camel: true,
            ..Self::with_reserved(reserved)
        }
    }

    /// A unique name from `candidate`.
    pub(crate) fn name(&mut self, candidate: String, suffix: impl std::fmt::Display) -> String {
        let mut name = candidate;
        if self.taken.contains(&name) {
            name = if self.camel || name.ends_with('_') {
                format!("{name}{suffix}")
            } else {
                format!("{name}_{suffix}")
            };
        }
        while self.taken.contains(&name) {
            name.push(if self.camel { 'X' } else { '_' });
        }
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_case() {
        assert_eq!(type_name("slot_state"), "SlotState");
        assert_eq!(type_name("StatusReport"), "StatusReport");
        assert_eq!(field_name("voltageMv"), "voltage_mv");
        assert_eq!(field_name("temperature_c"), "temperature_c");
        assert_eq!(variant_name("charging"), "Charging");
        assert_eq!(module_name("v1"), "v1");
        assert_eq!(schema_variant_name("ChargeStarted"), "charge_started");
        assert_eq!(variant_name(&schema_variant_name("SlotState")), "SlotState");
    }

    #[test]
    fn escapes_keywords() {
        assert_eq!(ident(&field_name("type")).to_string(), "r#type");
        assert_eq!(ident(&field_name("match")).to_string(), "r#match");
        assert_eq!(ident(&field_name("async")).to_string(), "r#async");
        assert_eq!(ident(&field_name("self")).to_string(), "self_");
        assert_eq!(ident(&field_name("crate")).to_string(), "crate_");
        assert_eq!(type_name("Self"), "Self_");
        assert_eq!(type_name("self"), "Self_");
        assert_eq!(ident(&module_name("type")).to_string(), "r#type");
    }

    #[test]
    fn odd_identifiers_stay_valid() {
        assert_eq!(field_name("_"), "f");
        assert_eq!(type_name("_"), "T");
        assert_eq!(field_name("__x"), "x");
        let _ = ident(&field_name("_"));
    }

    #[test]
    fn escaping_happens_before_deduplication() {
        let mut n = Namer::default();
        assert_eq!(unique_ident(&mut n, "self", 1).to_string(), "self_");
        assert_eq!(unique_ident(&mut n, "self_", 2).to_string(), "self_2");
        assert_eq!(unique_ident(&mut n, "type", 3).to_string(), "r#type");
        assert_eq!(unique_ident(&mut n, "type", 4).to_string(), "type_4");
    }

    #[test]
    fn resolves_collisions() {
        let mut n = Namer::with_reserved(&["Unknown"]);
        assert_eq!(n.name("Unknown".into(), 3), "Unknown_3");
        assert_eq!(n.name("FooBar".into(), 1), "FooBar");
        assert_eq!(n.name("FooBar".into(), 2), "FooBar_2");
        assert_eq!(n.name("FooBar".into(), 2), "FooBar_2_");
        let mut c = Namer::camel(&["Unknown"]);
        assert_eq!(c.name("Unknown".into(), 7), "Unknown7");
        assert_eq!(c.name("Unknown".into(), 7), "Unknown7X");
    }
}
