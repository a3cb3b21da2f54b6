//! Stage 4: semantic checks on the IR.
//!
//! All checks here work on the [IR](crate::ir) alone, so they serve both the
//! `.isml` front end and front ends without source text (see
//! [`Schema::validate`](crate::Schema::validate)). Precise spans (the tag of a
//! field rather than the whole field, the attribute rather than the field)
//! come from a [`SpanTable`] that the resolver fills; without one, the checks
//! fall back to the node spans stored in the IR, which may be `None`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;

use crate::diagnostic::{Diagnostic, ErrorKind};
use crate::ir::*;
use crate::source::Span;

/// Allowed field and union variant tags.
pub(crate) const TAG_RANGE: RangeInclusive<i128> = 1..=255;
/// Allowed message and union ids.
pub(crate) const MESSAGE_ID_RANGE: RangeInclusive<i128> = 1..=(u32::MAX as i128);
/// Allowed enum values.
pub(crate) const ENUM_VALUE_RANGE: RangeInclusive<i128> = 0..=(u32::MAX as i128);
/// Allowed rpc method ids.
pub(crate) const METHOD_ID_RANGE: RangeInclusive<i128> = 1..=65535;
/// Allowed channel ids.
pub(crate) const CHANNEL_ID_RANGE: RangeInclusive<i128> = 1..=65535;
/// Allowed array lengths.
pub(crate) const ARRAY_LEN_RANGE: RangeInclusive<i128> = 1..=65535;

/// Help line for tag range errors.
pub(crate) const TAG_HELP: &str =
    "tags are 1..=255: the wire format keeps a 2-bit presence entry per tag";

/// A field attribute whose span may be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AttrKey {
    MaxLen,
    Range,
}

/// Identifies a precise source location of an IR element, by its position
/// in the final (sorted) IR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SpanKey {
    TypeName(TypeId),
    TypeIdAttr(TypeId),
    FieldName(TypeId, usize),
    FieldTag(TypeId, usize),
    FieldType(TypeId, usize),
    FieldAttr(TypeId, usize, AttrKey),
    Reserved(TypeId, usize),
    VariantName(TypeId, usize),
    VariantValue(TypeId, usize),
    VariantType(TypeId, usize),
    ServiceName(usize),
    MethodName(usize, usize),
    MethodId(usize, usize),
    MethodRequest(usize, usize),
    MethodResponse(usize, usize),
    /// The `once` attribute of a method.
    MethodOnce(usize, usize),
    ChannelName(usize),
    ChannelId(usize),
    ChannelType(usize),
}

/// Precise spans recorded by the resolver, looked up by [`SpanKey`].
#[derive(Clone, Debug, Default)]
pub(crate) struct SpanTable {
    map: HashMap<SpanKey, Span>,
}

impl SpanTable {
    pub(crate) fn insert(&mut self, key: SpanKey, span: Span) {
        self.map.insert(key, span);
    }
}

/// "{what} {value} is out of range", with the allowed range as the label.
pub(crate) fn out_of_range(
    what: &str,
    value: i128,
    range: &RangeInclusive<i128>,
    span: Option<Span>,
) -> Diagnostic {
    Diagnostic::new(
        ErrorKind::OutOfRange,
        format!("{what} {value} is out of range"),
    )
    .primary(
        span,
        format!("must be in {}..={}", range.start(), range.end()),
    )
}

/// Runs every IR check and returns what it found.
pub(crate) fn check(schema: &Schema, spans: &SpanTable) -> Vec<Diagnostic> {
    let mut cx = Checker {
        schema,
        spans,
        diags: Vec::new(),
    };
    cx.type_names();
    cx.message_ids();
    for (i, def) in schema.types.iter().enumerate() {
        let id = TypeId(u32::try_from(i).unwrap_or(u32::MAX));
        match &def.kind {
            TypeDefKind::Message(m) => cx.message(id, def, m),
            TypeDefKind::Enum(e) => cx.enumeration(id, def, e),
            TypeDefKind::Union(u) => cx.union(id, def, u),
        }
    }
    for (i, svc) in schema.services.iter().enumerate() {
        cx.service(i, svc);
    }
    cx.channels();
    cx.infinite_size();
    cx.diags
}

struct Checker<'a> {
    schema: &'a Schema,
    spans: &'a SpanTable,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    /// The precise span for `key`, else `fallback`.
    fn sp(&self, key: SpanKey, fallback: Option<Span>) -> Option<Span> {
        self.spans.map.get(&key).copied().or(fallback)
    }

    fn name_of(&self, id: TypeId) -> String {
        self.schema
            .get(id)
            .map_or_else(|| format!("#{}", id.0), TypeDef::full_name)
    }

    /// Types and services share one namespace per package.
    fn type_names(&mut self) {
        let mut seen: HashMap<(&str, &str), Option<Span>> = HashMap::new();
        let mut entries: Vec<(&str, &str, Option<Span>, &str)> = Vec::new();
        for (i, t) in self.schema.types.iter().enumerate() {
            let id = TypeId(u32::try_from(i).unwrap_or(u32::MAX));
            entries.push((
                &t.package,
                &t.name,
                self.sp(SpanKey::TypeName(id), t.span),
                t.kind_name(),
            ));
        }
        for (i, s) in self.schema.services.iter().enumerate() {
            entries.push((
                &s.package,
                &s.name,
                self.sp(SpanKey::ServiceName(i), s.span),
                "service",
            ));
        }
        // Report in source order when spans are known, so the first
        // declaration is the "previous" one.
        entries.sort_by_key(|e| e.2);
        for (package, name, span, kind) in entries {
            if let Some(prev) = seen.get(&(package, name)) {
                let d = Diagnostic::new(
                    ErrorKind::DuplicateName,
                    format!("the name `{name}` is defined multiple times in package `{package}`"),
                )
                .primary(span, format!("{kind} `{name}` redefined here"))
                .secondary(*prev, format!("previous definition of `{name}` here"))
                .help("types and services of one package need distinct names");
                self.diags.push(d);
            } else {
                seen.insert((package, name), span);
            }
        }
    }

    /// Message and union ids are unique across everything compiled together.
    fn message_ids(&mut self) {
        let mut seen: BTreeMap<u32, TypeId> = BTreeMap::new();
        // Source order, so that "first used here" is the first in the files.
        let order = source_order(
            (0..self.schema.types.len())
                .map(|i| self.sp(SpanKey::TypeIdAttr(type_id(i)), self.schema.types[i].span)),
        );
        for i in order {
            let t = &self.schema.types[i];
            let id = type_id(i);
            let Some(mid) = t.message_id() else { continue };
            let span = self.sp(SpanKey::TypeIdAttr(id), t.span);
            if !MESSAGE_ID_RANGE.contains(&i128::from(mid)) {
                self.diags.push(out_of_range(
                    "message id",
                    mid.into(),
                    &MESSAGE_ID_RANGE,
                    span,
                ));
                continue;
            }
            if let Some(prev) = seen.get(&mid) {
                let prev_span = self
                    .schema
                    .get(*prev)
                    .and_then(|p| self.sp(SpanKey::TypeIdAttr(*prev), p.span));
                let d = Diagnostic::new(
                    ErrorKind::DuplicateMessageId,
                    format!(
                        "message id {mid} is used by both `{}` and `{}`",
                        self.name_of(*prev),
                        t.full_name()
                    ),
                )
                .primary(span, format!("id {mid} used again here"))
                .secondary(prev_span, "first used here")
                .help("message ids must be unique across all schemas compiled together");
                self.diags.push(d);
            } else {
                seen.insert(mid, id);
            }
        }
    }

    fn message(&mut self, id: TypeId, def: &TypeDef, m: &MessageDef) {
        let owner = def.full_name();
        // Reserved entries first, so field checks can refer to them.
        for (ri, r) in m.reserved.iter().enumerate() {
            let span = self.sp(SpanKey::Reserved(id, ri), def.span);
            if r.start() > r.end() {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::ReservedTag,
                        format!("reserved range {} to {} is empty", r.start(), r.end()),
                    )
                    .primary(span, "the start is greater than the end")
                    .help(format!("write `{} to {}`", r.end(), r.start())),
                );
            } else {
                for bound in [*r.start(), *r.end()] {
                    if !TAG_RANGE.contains(&i128::from(bound)) {
                        self.diags.push(
                            out_of_range("reserved tag", bound.into(), &TAG_RANGE, span)
                                .help(TAG_HELP),
                        );
                        break;
                    }
                }
            }
        }

        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut tags: HashMap<u32, usize> = HashMap::new();
        for (fi, f) in m.fields.iter().enumerate() {
            let name_span = self.sp(SpanKey::FieldName(id, fi), f.span);
            let tag_span = self.sp(SpanKey::FieldTag(id, fi), f.span);
            if let Some(&prev) = names.get(f.name.as_str()) {
                let prev_span = self.sp(SpanKey::FieldName(id, prev), m.fields[prev].span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateName,
                        format!("field `{}` is defined more than once in `{owner}`", f.name),
                    )
                    .primary(name_span, "field name used again here")
                    .secondary(prev_span, "first defined here"),
                );
            } else {
                names.insert(&f.name, fi);
            }

            if !TAG_RANGE.contains(&i128::from(f.tag)) {
                self.diags.push(
                    out_of_range("field tag", f.tag.into(), &TAG_RANGE, tag_span).help(TAG_HELP),
                );
            } else if let Some(&prev) = tags.get(&f.tag) {
                let prev_span = self.sp(SpanKey::FieldTag(id, prev), m.fields[prev].span);
                let mut d = Diagnostic::new(
                    ErrorKind::DuplicateTag,
                    format!(
                        "tag {} is used by both `{}` and `{}` in `{owner}`",
                        f.tag, m.fields[prev].name, f.name
                    ),
                )
                .primary(tag_span, format!("tag {} used again here", f.tag))
                .secondary(prev_span, "first used here");
                if let Some(free) = next_free_tag(m) {
                    d = d.help(format!("each field needs its own tag; tag {free} is free"));
                }
                self.diags.push(d);
            } else {
                tags.insert(f.tag, fi);
            }

            if let Some(ri) = m.reserved.iter().position(|r| r.contains(&f.tag)) {
                let rspan = self.sp(SpanKey::Reserved(id, ri), None);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::ReservedTag,
                        format!("field `{}` uses reserved tag {}", f.name, f.tag),
                    )
                    .primary(tag_span, "this tag is reserved")
                    .secondary(rspan, format!("tag {} reserved here", f.tag))
                    .help("reserved tags belonged to removed fields and must never be reused; pick another tag"),
                );
            }

            let ty_span = self.sp(SpanKey::FieldType(id, fi), f.span);
            self.check_type(&f.ty, ty_span);
            self.field_attrs(id, fi, f, &owner);
        }
    }

    fn field_attrs(&mut self, id: TypeId, fi: usize, f: &FieldDef, owner: &str) {
        let base = f.ty.strip_optional();
        let shown = f.ty.display(self.schema).to_string();
        if f.max_len.is_some() {
            let span = self.sp(SpanKey::FieldAttr(id, fi, AttrKey::MaxLen), f.span);
            if !matches!(
                base,
                Type::String | Type::Bytes | Type::List(_) | Type::Map(..)
            ) {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::InvalidAttributeValue,
                        format!(
                            "`max_len` does not apply to field `{}` of type `{shown}`",
                            f.name
                        ),
                    )
                    .primary(span, "`max_len` not allowed here")
                    .note(format!("in `{owner}`"))
                    .help("`max_len` limits `string`, `bytes`, `list` and `map` fields"),
                );
            }
        }
        if let Some((lo, hi)) = f.range {
            let span = self.sp(SpanKey::FieldAttr(id, fi, AttrKey::Range), f.span);
            if !(base.is_integer() || base.is_float()) {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::InvalidAttributeValue,
                        format!(
                            "`range` does not apply to field `{}` of type `{shown}`",
                            f.name
                        ),
                    )
                    .primary(span, "`range` not allowed here")
                    .note(format!("in `{owner}`"))
                    .help("`range` bounds integer and float fields"),
                );
            } else if lo > hi {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::InvalidAttributeValue,
                        format!("range {lo}..={hi} is empty"),
                    )
                    .primary(span, "the lower bound is greater than the upper bound")
                    .help(format!("write `range = {hi}..={lo}`")),
                );
            } else if let Some((min, max)) = base.integer_bounds()
                && (lo < min || hi > max)
            {
                {
                    let scalar = base.scalar_name().unwrap_or("?");
                    self.diags.push(
                        Diagnostic::new(
                            ErrorKind::InvalidAttributeValue,
                            format!("range {lo}..={hi} does not fit in `{scalar}`"),
                        )
                        .primary(span, format!("`{scalar}` holds {min}..={max}"))
                        .help("narrow the range or widen the field type"),
                    );
                }
            }
        }
    }

    /// Structural checks inside one type expression.
    fn check_type(&mut self, ty: &Type, span: Option<Span>) {
        match ty {
            Type::Optional(inner) => {
                if let Type::Optional(_) = **inner {
                    self.diags.push(
                        Diagnostic::new(
                            ErrorKind::NestedOptional,
                            "`optional<optional<..>>` is not allowed",
                        )
                        .primary(span, "nested optional")
                        .help("a single `optional<T>` already distinguishes absent from present"),
                    );
                }
                self.check_type(inner, span);
            }
            Type::List(inner) => self.check_type(inner, span),
            Type::Map(k, v) => {
                if !(k.is_integer() || matches!(**k, Type::Bool | Type::String)) {
                    self.diags.push(
                        Diagnostic::new(
                            ErrorKind::InvalidMapKey,
                            format!("`{}` cannot be a map key", k.display(self.schema)),
                        )
                        .primary(span, "invalid key type")
                        .help("map keys must be an integer type, `bool` or `string`"),
                    );
                } else {
                    self.check_type(k, span);
                }
                self.check_type(v, span);
            }
            Type::Array(inner, n) => {
                if !ARRAY_LEN_RANGE.contains(&i128::from(*n)) {
                    self.diags.push(out_of_range(
                        "array length",
                        (*n).into(),
                        &ARRAY_LEN_RANGE,
                        span,
                    ));
                }
                self.check_type(inner, span);
            }
            Type::Named(id) if self.schema.get(*id).is_none() => self.dangling(*id, span),
            _ => {}
        }
    }

    fn dangling(&mut self, id: TypeId, span: Option<Span>) {
        self.diags.push(
            Diagnostic::new(
                ErrorKind::DanglingTypeId,
                format!("type id {} does not exist", id.0),
            )
            .primary(span, "refers to a missing type")
            .note(format!("the schema has {} types", self.schema.types.len())),
        );
    }

    fn enumeration(&mut self, id: TypeId, def: &TypeDef, e: &EnumDef) {
        let owner = def.full_name();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut values: HashMap<u32, usize> = HashMap::new();
        for (vi, v) in e.variants.iter().enumerate() {
            let name_span = self.sp(SpanKey::VariantName(id, vi), v.span);
            if let Some(&prev) = names.get(v.name.as_str()) {
                let prev_span = self.sp(SpanKey::VariantName(id, prev), e.variants[prev].span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateName,
                        format!(
                            "variant `{}` is defined more than once in enum `{owner}`",
                            v.name
                        ),
                    )
                    .primary(name_span, "variant name used again here")
                    .secondary(prev_span, "first defined here"),
                );
            } else {
                names.insert(&v.name, vi);
            }
            if let Some(&prev) = values.get(&v.value) {
                let span = self.sp(SpanKey::VariantValue(id, vi), v.span);
                let prev_span = self.sp(SpanKey::VariantValue(id, prev), e.variants[prev].span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateValue,
                        format!(
                            "value {} is used by both `{}` and `{}` in enum `{owner}`",
                            v.value, e.variants[prev].name, v.name
                        ),
                    )
                    .primary(span, format!("value {} used again here", v.value))
                    .secondary(prev_span, "first used here"),
                );
            } else {
                values.insert(v.value, vi);
            }
        }
    }

    fn union(&mut self, id: TypeId, def: &TypeDef, u: &UnionDef) {
        let owner = def.full_name();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut tags: HashMap<u32, usize> = HashMap::new();
        for (vi, v) in u.variants.iter().enumerate() {
            let name_span = self.sp(SpanKey::VariantName(id, vi), v.span);
            let tag_span = self.sp(SpanKey::VariantValue(id, vi), v.span);
            let ty_span = self.sp(SpanKey::VariantType(id, vi), v.span);
            if let Some(&prev) = names.get(v.name.as_str()) {
                let prev_span = self.sp(SpanKey::VariantName(id, prev), u.variants[prev].span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateName,
                        format!(
                            "variant `{}` is defined more than once in union `{owner}`",
                            v.name
                        ),
                    )
                    .primary(name_span, "variant name used again here")
                    .secondary(prev_span, "first defined here"),
                );
            } else {
                names.insert(&v.name, vi);
            }
            if !TAG_RANGE.contains(&i128::from(v.tag)) {
                self.diags.push(
                    out_of_range("union variant tag", v.tag.into(), &TAG_RANGE, tag_span)
                        .help(TAG_HELP),
                );
            } else if let Some(&prev) = tags.get(&v.tag) {
                let prev_span = self.sp(SpanKey::VariantValue(id, prev), u.variants[prev].span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateTag,
                        format!(
                            "tag {} is used by both `{}` and `{}` in union `{owner}`",
                            v.tag, u.variants[prev].name, v.name
                        ),
                    )
                    .primary(tag_span, format!("tag {} used again here", v.tag))
                    .secondary(prev_span, "first used here"),
                );
            } else {
                tags.insert(v.tag, vi);
            }
            if let Type::Optional(_) = v.ty {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::OptionalVariant,
                        format!("union variant `{}` cannot be optional", v.name),
                    )
                    .primary(ty_span, "`optional<..>` not allowed here")
                    .help("a union always holds exactly one variant; make the field that holds the union optional instead"),
                );
            }
            self.check_type(&v.ty, ty_span);
        }
    }

    /// An rpc or channel type must be a message or union.
    fn require_message(&mut self, ty: TypeId, span: Option<Span>, what: &str) {
        match self.schema.get(ty) {
            None => self.dangling(ty, span),
            Some(def) if matches!(def.kind, TypeDefKind::Enum(_)) => {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::NotAMessage,
                        format!(
                            "{what} must be a message or union, but `{}` is an enum",
                            def.full_name()
                        ),
                    )
                    .primary(span, "expected a message or union")
                    .help("wrap the enum in a message"),
                );
            }
            Some(def) if def.message_id().is_none() => {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::MissingTypeId,
                        format!(
                            "{what} must have a type id, but `{}` has none",
                            def.full_name()
                        ),
                    )
                    .primary(span, "a message or union without `[id = ..]`")
                    .help(format!(
                        "it travels in a frame of its own, which names its type: declare it `{} [id = N]`",
                        def.name
                    )),
                );
            }
            Some(_) => {}
        }
    }

    fn service(&mut self, si: usize, svc: &ServiceDef) {
        let owner = svc.full_name();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut ids: HashMap<u32, usize> = HashMap::new();
        for (mi, m) in svc.methods.iter().enumerate() {
            let name_span = self.sp(SpanKey::MethodName(si, mi), m.span);
            let id_span = self.sp(SpanKey::MethodId(si, mi), m.span);
            if let Some(&prev) = names.get(m.name.as_str()) {
                let prev_span = self.sp(SpanKey::MethodName(si, prev), svc.methods[prev].span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateName,
                        format!(
                            "rpc `{}` is defined more than once in service `{owner}`",
                            m.name
                        ),
                    )
                    .primary(name_span, "rpc name used again here")
                    .secondary(prev_span, "first defined here"),
                );
            } else {
                names.insert(&m.name, mi);
            }
            if !METHOD_ID_RANGE.contains(&i128::from(m.id)) {
                self.diags.push(out_of_range(
                    "rpc method id",
                    m.id.into(),
                    &METHOD_ID_RANGE,
                    id_span,
                ));
            } else if let Some(&prev) = ids.get(&m.id) {
                let prev_span = self.sp(SpanKey::MethodId(si, prev), svc.methods[prev].span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateMethodId,
                        format!(
                            "method id {} is used by both `{}` and `{}` in service `{owner}`",
                            m.id, svc.methods[prev].name, m.name
                        ),
                    )
                    .primary(id_span, format!("id {} used again here", m.id))
                    .secondary(prev_span, "first used here"),
                );
            } else {
                ids.insert(m.id, mi);
            }
            let req_span = self.sp(SpanKey::MethodRequest(si, mi), m.span);
            self.require_message(m.request, req_span, "an rpc request");
            if m.response.is_none() && m.client_streaming {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::StreamWithoutResponse,
                        format!(
                            "rpc `{}` in service `{owner}` takes a stream of requests but has no response",
                            m.name
                        ),
                    )
                    .primary(req_span, "a stream of requests needs a response")
                    .help(
                        "the server answers a stream of requests: add `-> Response` for one reply \
                         once the stream ends, or `-> stream Response` for a stream of replies; \
                         a one-way rpc takes a single request",
                    ),
                );
            }
            if m.response.is_none() && m.server_streaming {
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::StreamWithoutResponse,
                        format!(
                            "rpc `{}` in service `{owner}` is marked as streaming responses but has no response type",
                            m.name
                        ),
                    )
                    .primary(name_span, "no response type")
                    .help("give the method a response type, or clear `server_streaming`"),
                );
            }
            if let Some(resp) = m.response {
                let resp_span = self.sp(SpanKey::MethodResponse(si, mi), m.span);
                self.require_message(resp, resp_span, "an rpc response");
            }
            if m.once && (m.client_streaming || m.server_streaming) {
                let once_span = self.sp(SpanKey::MethodOnce(si, mi), m.span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::OnceOnStream,
                        format!(
                            "rpc `{}` in service `{owner}` is `[once]` but is {}",
                            m.name,
                            m.kind()
                        ),
                    )
                    .primary(once_span, "`once` on a streaming rpc")
                    .note(
                        "a stream's items and credit belong to the connection that carries \
                         them: they are not kept and sent again on the session that resumes it, \
                         so a streaming call cannot run exactly once across reconnects",
                    )
                    .help(
                        "`once` applies to unary and one-way rpcs: remove it, or send the stream's \
                         result with a unary `[once]` rpc",
                    ),
                );
            }
        }
    }

    fn channels(&mut self) {
        let mut names: HashMap<(&str, &str), usize> = HashMap::new();
        let mut ids: HashMap<u32, usize> = HashMap::new();
        let order = source_order(
            (0..self.schema.channels.len())
                .map(|ci| self.sp(SpanKey::ChannelId(ci), self.schema.channels[ci].span)),
        );
        for ci in order {
            let c = &self.schema.channels[ci];
            let name_span = self.sp(SpanKey::ChannelName(ci), c.span);
            let id_span = self.sp(SpanKey::ChannelId(ci), c.span);
            if let Some(&prev) = names.get(&(c.package.as_str(), c.name.as_str())) {
                let prev_span =
                    self.sp(SpanKey::ChannelName(prev), self.schema.channels[prev].span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateName,
                        format!(
                            "channel `{}` is defined more than once in package `{}`",
                            c.name, c.package
                        ),
                    )
                    .primary(name_span, "channel name used again here")
                    .secondary(prev_span, "first defined here"),
                );
            } else {
                names.insert((&c.package, &c.name), ci);
            }
            if !CHANNEL_ID_RANGE.contains(&i128::from(c.id)) {
                self.diags.push(out_of_range(
                    "channel id",
                    c.id.into(),
                    &CHANNEL_ID_RANGE,
                    id_span,
                ));
            } else if let Some(&prev) = ids.get(&c.id) {
                let other = &self.schema.channels[prev];
                let prev_span = self.sp(SpanKey::ChannelId(prev), other.span);
                self.diags.push(
                    Diagnostic::new(
                        ErrorKind::DuplicateChannelId,
                        format!(
                            "channel id {} is used by both `{}` and `{}`",
                            c.id,
                            qualify(&other.package, &other.name),
                            qualify(&c.package, &c.name)
                        ),
                    )
                    .primary(id_span, format!("id {} used again here", c.id))
                    .secondary(prev_span, "first used here")
                    .help("channel ids must be unique across all schemas compiled together"),
                );
            } else {
                ids.insert(c.id, ci);
            }
            let ty_span = self.sp(SpanKey::ChannelType(ci), c.span);
            self.require_message(c.ty, ty_span, "a channel type");
        }
    }

    /// Finds messages and unions that contain themselves without an
    /// `optional`, `list` or `map` in between; reports each cycle once.
    fn infinite_size(&mut self) {
        let n = self.schema.types.len();
        // edges[t] = (target, span of the field or variant type)
        let mut edges: Vec<Vec<(usize, Option<Span>)>> = vec![Vec::new(); n];
        for (i, def) in self.schema.types.iter().enumerate() {
            let id = TypeId(u32::try_from(i).unwrap_or(u32::MAX));
            let members: Vec<(&Type, Option<Span>)> = match &def.kind {
                TypeDefKind::Message(m) => m
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(fi, f)| (&f.ty, self.sp(SpanKey::FieldType(id, fi), f.span)))
                    .collect(),
                TypeDefKind::Union(u) => u
                    .variants
                    .iter()
                    .enumerate()
                    .map(|(vi, v)| (&v.ty, self.sp(SpanKey::VariantType(id, vi), v.span)))
                    .collect(),
                TypeDefKind::Enum(_) => Vec::new(),
            };
            for (ty, span) in members {
                if let Some(target) = direct_target(ty)
                    && target.index() < n
                {
                    edges[i].push((target.index(), span));
                }
            }
        }
        let reach: Vec<HashSet<usize>> = (0..n).map(|s| reachable(&edges, s)).collect();
        let mut reported = vec![false; n];
        for v in 0..n {
            if reported[v] || !reach[v].contains(&v) {
                continue;
            }
            let mut scc: Vec<usize> = (0..n)
                .filter(|&u| u == v || (reach[v].contains(&u) && reach[u].contains(&v)))
                .collect();
            scc.sort_unstable();
            for &u in &scc {
                reported[u] = true;
            }
            let head = TypeId(u32::try_from(v).unwrap_or(u32::MAX));
            let def = &self.schema.types[v];
            let names: Vec<String> = scc
                .iter()
                .map(|&u| format!("`{}`", self.schema.types[u].full_name()))
                .collect();
            let mut d = Diagnostic::new(
                ErrorKind::InfiniteSize,
                format!("recursive type `{}` has infinite size", def.full_name()),
            )
            .primary(
                self.sp(SpanKey::TypeName(head), def.span),
                "recursive without indirection",
            );
            for &u in &scc {
                for (target, span) in &edges[u] {
                    if scc.contains(target) {
                        d = d.secondary(
                            *span,
                            format!("contains `{}`", self.schema.types[*target].full_name()),
                        );
                    }
                }
            }
            if scc.len() > 1 {
                d = d.note(format!("the cycle goes through {}", names.join(", ")));
            }
            d = d.help(
                "wrap one of these in `optional<..>`, `list<..>` or `map<..>` to break the cycle",
            );
            self.diags.push(d);
        }
    }
}

/// Indices `0..n` sorted by their spans (source order); items without a
/// span keep their relative order after all the others.
fn source_order(spans: impl Iterator<Item = Option<Span>>) -> Vec<usize> {
    let mut items: Vec<(usize, Option<Span>)> = spans.enumerate().collect();
    items.sort_by_key(|(i, s)| (s.is_none(), *s, *i));
    items.into_iter().map(|(i, _)| i).collect()
}

fn type_id(i: usize) -> TypeId {
    TypeId(u32::try_from(i).unwrap_or(u32::MAX))
}

/// The named type stored inline by `ty` (directly or in an array).
fn direct_target(ty: &Type) -> Option<TypeId> {
    match ty {
        Type::Named(id) => Some(*id),
        Type::Array(inner, _) => direct_target(inner),
        _ => None,
    }
}

/// Nodes reachable from `start` in one or more steps.
fn reachable(edges: &[Vec<(usize, Option<Span>)>], start: usize) -> HashSet<usize> {
    let mut seen = HashSet::new();
    let mut stack: Vec<usize> = edges[start].iter().map(|e| e.0).collect();
    while let Some(u) = stack.pop() {
        if seen.insert(u) {
            stack.extend(edges[u].iter().map(|e| e.0));
        }
    }
    seen
}

/// The smallest tag that is neither used nor reserved.
fn next_free_tag(m: &MessageDef) -> Option<u32> {
    (1..=255u32).find(|t| {
        !m.fields.iter().any(|f| f.tag == *t) && !m.reserved.iter().any(|r| r.contains(t))
    })
}
