//! Attributes: which ones exist, where each is allowed, and what their
//! values mean once interpreted.

use std::collections::HashMap;

use super::Resolver;
use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::front::ast::{AttrValueKind, Attribute};
use crate::front::check::{self, out_of_range};
use crate::front::suggest::closest;
use crate::source::Span;

/// Where attributes are written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Message,
    Union,
    Enum,
    EnumVariant,
    Field,
    UnionVariant,
    Service,
    Rpc,
    Channel,
}

impl Place {
    fn describe(self) -> &'static str {
        match self {
            Place::Message => "a message",
            Place::Union => "a union",
            Place::Enum => "an enum",
            Place::EnumVariant => "an enum variant",
            Place::Field => "a field",
            Place::UnionVariant => "a union variant",
            Place::Service => "a service",
            Place::Rpc => "an rpc",
            Place::Channel => "a channel",
        }
    }

    fn allowed(self) -> &'static [&'static str] {
        match self {
            Place::Message | Place::Union => &["id"],
            Place::Field => &["deprecated", "unit", "max_len", "range"],
            Place::Channel => &["retain", "keyed"],
            Place::Rpc => &["once"],
            _ => &[],
        }
    }
}

/// Every attribute the language knows.
const KNOWN_ATTRIBUTES: &[&str] = &[
    "id",
    "deprecated",
    "unit",
    "max_len",
    "range",
    "retain",
    "keyed",
    "once",
];

/// Where a known attribute belongs, for "not allowed here" help lines.
fn attribute_home(name: &str) -> &'static str {
    match name {
        "id" => "messages and unions",
        "retain" | "keyed" => "channels",
        "once" => "unary and one-way rpcs",
        _ => "fields",
    }
}

/// An example of the attribute written correctly.
fn attribute_example(name: &str) -> &'static str {
    match name {
        "id" => "id = 16",
        "unit" => "unit = \"V\"",
        "max_len" => "max_len = 32",
        "range" => "range = 0..=100",
        "deprecated" => "deprecated",
        "retain" => "retain",
        "once" => "once",
        _ => "keyed",
    }
}

/// Attributes of one item after interpretation.
#[derive(Default)]
pub(super) struct Attrs {
    pub(super) id: Option<(u32, Span)>,
    pub(super) deprecated: bool,
    pub(super) unit: Option<String>,
    pub(super) max_len: Option<(u64, Span)>,
    pub(super) range: Option<((i128, i128), Span)>,
    pub(super) retain: bool,
    pub(super) keyed: bool,
    /// `once` on an rpc, where it was written.
    pub(super) once: Option<Span>,
}

impl Resolver<'_> {
    pub(super) fn attrs(&mut self, attrs: &[Attribute], place: Place) -> Attrs {
        let mut out = Attrs::default();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for a in attrs {
            let name = a.name.name.as_str();
            if !KNOWN_ATTRIBUTES.contains(&name) {
                let allowed = place.allowed();
                let suggestion = closest(name, allowed.iter().copied())
                    .or_else(|| closest(name, KNOWN_ATTRIBUTES.iter().copied()));
                let mut d = Diagnostic::new(
                    ErrorKind::UnknownAttribute,
                    format!("unknown attribute `{name}`"),
                )
                .primary(Some(a.name.span), "unknown attribute");
                d = match suggestion {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None => d.help(allowed_help(place)),
                };
                self.diags.push(d);
                continue;
            }
            if !place.allowed().contains(&name) {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::MisplacedAttribute,
                        format!("attribute `{name}` is not allowed on {}", place.describe()),
                    )
                    .primary(Some(a.name.span), "not allowed here")
                    .note(format!("`{name}` applies to {}", attribute_home(name)))
                    .help(allowed_help(place)),
                );
                continue;
            }
            if let Some(prev) = seen.get(name) {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateAttribute,
                        format!("attribute `{name}` is given more than once"),
                    )
                    .primary(Some(a.name.span), "given again here")
                    .secondary(Some(*prev), "first given here"),
                );
                continue;
            }
            seen.insert(name, a.name.span);
            self.attr_value(a, &mut out);
        }
        out
    }

    /// Interprets the value of a known attribute allowed at this place.
    fn attr_value(&mut self, a: &Attribute, out: &mut Attrs) {
        let name = a.name.name.as_str();
        let example = attribute_example(name);
        let is_flag = matches!(name, "deprecated" | "retain" | "keyed" | "once");
        if is_flag {
            if let Some(v) = &a.value {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::InvalidAttributeValue,
                        format!("`{name}` takes no value"),
                    )
                    .primary(Some(v.span), "unexpected value")
                    .help(format!("write `[{example}]`")),
                );
                return;
            }
            match name {
                "deprecated" => out.deprecated = true,
                "retain" => out.retain = true,
                "once" => out.once = Some(a.name.span),
                _ => out.keyed = true,
            }
            return;
        }
        let (expected, ok) = match (name, a.value.as_ref().map(|v| &v.kind)) {
            ("id", Some(AttrValueKind::Int(_))) => ("an integer", true),
            ("id", _) => ("an integer", false),
            ("max_len", Some(AttrValueKind::Int(_))) => ("an integer", true),
            ("max_len", _) => ("an integer", false),
            ("unit", Some(AttrValueKind::Str(_))) => ("a string", true),
            ("unit", _) => ("a string", false),
            ("range", Some(AttrValueKind::Range(..))) => ("a range", true),
            _ => ("a range", false),
        };
        let Some(value) = a.value.as_ref().filter(|_| ok) else {
            let d = match &a.value {
                None => Diagnostic::new(
                    ErrorKind::InvalidAttributeValue,
                    format!("`{name}` needs a value"),
                )
                .primary(Some(a.span), format!("expected {expected}")),
                Some(v) => Diagnostic::new(
                    ErrorKind::InvalidAttributeValue,
                    format!("`{name}` expects {expected}, found {}", v.kind.describe()),
                )
                .primary(Some(v.span), format!("expected {expected}")),
            };
            self.diags.push(d.help(format!("write `{example}`")));
            return;
        };
        match &value.kind {
            AttrValueKind::Int(Some(n)) if name == "id" => match u32::try_from(*n) {
                Ok(id) => out.id = Some((id, value.span)),
                Err(_) => self.diags.push(out_of_range(
                    "message id",
                    *n,
                    &check::MESSAGE_ID_RANGE,
                    Some(value.span),
                )),
            },
            AttrValueKind::Int(Some(n)) => match u64::try_from(*n) {
                Ok(len) => out.max_len = Some((len, a.span)),
                Err(_) => self.diags.push(out_of_range(
                    "max_len",
                    *n,
                    &(0..=i128::from(u64::MAX)),
                    Some(value.span),
                )),
            },
            AttrValueKind::Str(s) => out.unit = Some(s.clone()),
            AttrValueKind::Range(Some(lo), Some(hi)) => out.range = Some(((*lo, *hi), a.span)),
            // Literals too large were reported while lowering.
            _ => {}
        }
    }
}

/// "a field accepts `deprecated`, `unit`, ..." for help lines.
fn allowed_help(place: Place) -> String {
    let allowed = place.allowed();
    if allowed.is_empty() {
        return format!("{} takes no attributes", place.describe());
    }
    let list: Vec<String> = allowed.iter().map(|a| format!("`{a}`")).collect();
    let joined = match list.split_last() {
        Some((last, init)) if !init.is_empty() => format!("{} and {last}", init.join(", ")),
        _ => list.join(""),
    };
    format!("{} accepts {joined}", place.describe())
}
