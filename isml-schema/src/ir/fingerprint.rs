//! Type fingerprints: part of the wire-format specification.
//!
//! A fingerprint is the 64-bit FNV-1a hash (offset basis
//! `0xcbf29ce484222325`, prime `0x100000001b3`) of the UTF-8 bytes of the
//! type's *canonical form*. Two peers whose fingerprints for a type agree
//! encode it identically. Names, docs, units and `deprecated` are not part of
//! the canonical form, so renaming is a safe change.
//!
//! Canonical form, with an expansion stack of the messages and unions being
//! expanded (the outermost definition at depth 0):
//!
//! - scalars: `bool u8 u16 u32 u64 i8 i16 i32 i64 f32 f64 string bytes`
//! - `optional<T>`, `list<T>`, `map<K,V>`, `array<T,N>` with the inner
//!   canonical forms and `N` in decimal
//! - enum: `enum{` values ascending, joined by `,` `}`
//! - message already on the stack at depth `d`: `@d`; otherwise
//!   (`#id` if it has one) `message{` then per field in ascending tag order
//!   `tag:type` + `[max_len=N]` if set + `[range=A..=B]` if set + `;` then `}`
//! - union: the same stack rule; (`#id`) `union{` then `tag:type;` per
//!   variant in ascending tag order, then `}`
//!
//! Example: `message A [id = 5] { x: u8 = 1; y: list<A> = 2; }` has the
//! canonical form `#5message{1:u8;2:list<@0>;}`.
//!
//! A method's fingerprint ([`method_fingerprint`]) hashes its request and
//! response types' fingerprints and its streaming flags (wire format §8.1).

use std::fmt::{self, Write};

use isml_wire::canonical::{self, Definition, Member, Shape, TypeModel};

use crate::ir::{MethodDef, Schema, Type, TypeDefKind, TypeId};

pub use isml_wire::canonical::{FNV_OFFSET_BASIS, FNV_PRIME, fnv1a64};

/// The fingerprint of type `id` in `schema`.
pub fn fingerprint(schema: &Schema, id: TypeId) -> u64 {
    canonical::fingerprint(schema, id)
}

/// The canonical form of type `id` in `schema`.
pub fn canonical_form(schema: &Schema, id: TypeId) -> String {
    canonical::form(schema, id)
}

/// The fingerprint of method `m` of a service in `schema`: the one
/// [`isml_wire::canonical::method_fingerprint`] over its request and response
/// types' fingerprints and its streaming flags. Its name, id and `once` are
/// not part of it.
pub fn method_fingerprint(schema: &Schema, m: &MethodDef) -> u64 {
    canonical::method_fingerprint(
        fingerprint(schema, m.request),
        m.response.map(|r| fingerprint(schema, r)),
        m.client_streaming,
        m.server_streaming,
    )
}

/// The IR as a model of the one canonical-form implementation
/// ([`isml_wire::canonical`]), which the runtime's descriptors feed too.
impl TypeModel for Schema {
    type Type = Type;
    type Def = TypeId;

    fn shape<'a>(&'a self, ty: &'a Type) -> Shape<'a, Type, TypeId> {
        match ty {
            Type::Optional(t) => Shape::Optional(t),
            Type::List(t) => Shape::List(t),
            Type::Map(k, v) => Shape::Map(k, v),
            Type::Array(t, n) => Shape::Array(t, *n),
            Type::Named(id) => Shape::Named(*id),
            // Every other variant is a scalar.
            scalar => Shape::Scalar(scalar.as_scalar().unwrap_or(canonical::Scalar::Bool)),
        }
    }

    fn definition(&self, id: TypeId) -> Option<Definition> {
        Some(match &self.get(id)?.kind {
            TypeDefKind::Enum(_) => Definition::Enum,
            TypeDefKind::Message(m) => Definition::Message { id: m.id },
            TypeDefKind::Union(u) => Definition::Union { id: u.id },
        })
    }

    fn member_count(&self, id: TypeId) -> usize {
        match self.get(id).map(|d| &d.kind) {
            Some(TypeDefKind::Message(m)) => m.fields.len(),
            Some(TypeDefKind::Union(u)) => u.variants.len(),
            _ => 0,
        }
    }

    fn member(&self, id: TypeId, index: usize) -> Member<'_, Type> {
        match self.get(id).map(|d| &d.kind) {
            Some(TypeDefKind::Message(m)) => {
                let f = &m.fields[index];
                Member {
                    tag: f.tag,
                    ty: &f.ty,
                    max_len: f.max_len,
                    range: f.range,
                }
            }
            Some(TypeDefKind::Union(u)) => {
                let v = &u.variants[index];
                Member {
                    tag: v.tag,
                    ty: &v.ty,
                    max_len: None,
                    range: None,
                }
            }
            // `member_count` is 0 for anything else: the canonical form never asks.
            _ => unreachable!("only messages and unions have members"),
        }
    }

    fn enum_value_count(&self, id: TypeId) -> usize {
        match self.get(id).map(|d| &d.kind) {
            Some(TypeDefKind::Enum(e)) => e.variants.len(),
            _ => 0,
        }
    }

    fn enum_value(&self, id: TypeId, index: usize) -> u32 {
        match self.get(id).map(|d| &d.kind) {
            Some(TypeDefKind::Enum(e)) => e.variants[index].value,
            _ => 0,
        }
    }

    fn write_undefined(&self, id: TypeId, out: &mut dyn Write) -> fmt::Result {
        // Only reachable for an unvalidated hand-built IR.
        write!(out, "?{}", id.0)
    }
}

#[cfg(test)]
mod tests {

    use crate::ir::*;

    fn schema(types: Vec<TypeDef>) -> Schema {
        Schema {
            types,
            ..Schema::default()
        }
    }

    #[test]
    fn recursive_message_canonical_form() {
        let a = TypeDef::new(
            "p",
            "A",
            TypeDefKind::Message(MessageDef {
                id: Some(5),
                fields: vec![
                    FieldDef::new("x", 1, Type::U8),
                    FieldDef::new("y", 2, Type::List(Box::new(Type::Named(TypeId(0))))),
                ],
                reserved: vec![],
            }),
        );
        let s = schema(vec![a]);
        assert_eq!(s.canonical_form(TypeId(0)), "#5message{1:u8;2:list<@0>;}");
        assert_eq!(s.fingerprint(TypeId(0)), 0x28ae_8ddf_2bb7_a58e);
    }

    #[test]
    fn nested_types_attributes_and_depths() {
        // B { inner: optional<C> = 1 }, C { back: optional<B> = 2; e: E = 1 }, E enum
        let b = TypeDef::new(
            "p",
            "B",
            TypeDefKind::Message(MessageDef {
                id: None,
                fields: vec![FieldDef::new(
                    "inner",
                    1,
                    Type::Optional(Box::new(Type::Named(TypeId(1)))),
                )],
                reserved: vec![],
            }),
        );
        let mut name = FieldDef::new("name", 3, Type::String);
        name.max_len = Some(32);
        let mut temp = FieldDef::new("t", 4, Type::I16);
        temp.range = Some((-40, 85));
        temp.unit = Some("degC".into());
        temp.deprecated = true;
        let c = TypeDef::new(
            "p",
            "C",
            TypeDefKind::Message(MessageDef {
                id: Some(0x10),
                // Deliberately unsorted: the canonical form sorts by tag.
                fields: vec![
                    FieldDef::new("back", 2, Type::Optional(Box::new(Type::Named(TypeId(0))))),
                    FieldDef::new("e", 1, Type::Named(TypeId(2))),
                    name,
                    temp,
                    FieldDef::new(
                        "m",
                        5,
                        Type::Map(
                            Box::new(Type::String),
                            Box::new(Type::Array(Box::new(Type::U8), 6)),
                        ),
                    ),
                ],
                reserved: vec![],
            }),
        );
        let e = TypeDef::new(
            "p",
            "E",
            TypeDefKind::Enum(EnumDef {
                variants: vec![
                    EnumVariant::new("b", 3),
                    EnumVariant::new("a", 0),
                    EnumVariant::new("c", 1),
                ],
            }),
        );
        let u = TypeDef::new(
            "p",
            "U",
            TypeDefKind::Union(UnionDef {
                id: Some(7),
                variants: vec![
                    UnionVariant::new("b", 2, Type::Named(TypeId(0))),
                    UnionVariant::new("a", 1, Type::List(Box::new(Type::Named(TypeId(3))))),
                ],
            }),
        );
        let s = schema(vec![b, c, e, u]);
        assert_eq!(s.canonical_form(TypeId(2)), "enum{0,1,3}");
        assert_eq!(
            s.canonical_form(TypeId(0)),
            "message{1:optional<#16message{1:enum{0,1,3};2:optional<@0>;3:string[max_len=32];\
             4:i16[range=-40..=85];5:map<string,array<u8,6>>;}>;}"
        );
        assert_eq!(
            s.canonical_form(TypeId(1)),
            "#16message{1:enum{0,1,3};2:optional<message{1:optional<@0>;}>;3:string[max_len=32];\
             4:i16[range=-40..=85];5:map<string,array<u8,6>>;}"
        );
        assert_eq!(
            s.canonical_form(TypeId(3)),
            "#7union{1:list<@0>;2:message{1:optional<#16message{1:enum{0,1,3};2:optional<@1>;\
             3:string[max_len=32];4:i16[range=-40..=85];5:map<string,array<u8,6>>;}>;};}"
        );
        assert_eq!(s.fingerprint(TypeId(2)), 0x7483_7b1b_98a3_dba4);
    }

    #[test]
    fn method_fingerprints_agree_with_the_wire_crate() {
        let msg = |name: &str, id: u32, ty: Type| {
            TypeDef::new(
                "p",
                name,
                TypeDefKind::Message(MessageDef {
                    id: Some(id),
                    fields: vec![FieldDef::new("x", 1, ty)],
                    reserved: vec![],
                }),
            )
        };
        let s = schema(vec![msg("Req", 1, Type::U8), msg("Resp", 2, Type::String)]);
        let (req, resp) = (s.fingerprint(TypeId(0)), s.fingerprint(TypeId(1)));
        let mut m = MethodDef::new("go", 7, TypeId(0), TypeId(1));
        let mut seen = Vec::new();
        for (response, client, server, kind) in [
            (None, false, false, MethodKind::OneWay),
            (Some(TypeId(1)), false, false, MethodKind::Unary),
            (Some(TypeId(1)), false, true, MethodKind::ServerStreaming),
            (Some(TypeId(1)), true, false, MethodKind::ClientStreaming),
            (Some(TypeId(1)), true, true, MethodKind::Bidirectional),
        ] {
            m.response = response;
            m.client_streaming = client;
            m.server_streaming = server;
            assert_eq!(m.kind(), kind);
            let expected = isml_wire::canonical::method_fingerprint(
                req,
                response.map(|_| resp),
                client,
                server,
            );
            assert_eq!(super::method_fingerprint(&s, &m), expected, "{kind}");
            assert_eq!(m.fingerprint(&s), expected, "{kind}");
            seen.push(expected);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 5, "every kind has its own fingerprint");
        // Names and ids are not part of it.
        let mut renamed = m.clone();
        renamed.name = "other".into();
        renamed.id = 9;
        assert_eq!(renamed.fingerprint(&s), m.fingerprint(&s));
        // Nor is `[once]`: the caller's choice of delivery, not what the
        // method carries.
        let mut once = m.clone();
        once.once = true;
        assert_eq!(once.fingerprint(&s), m.fingerprint(&s));
        // The request and response types are.
        let swapped = MethodDef::new("go", 7, TypeId(1), TypeId(0));
        assert_ne!(
            swapped.fingerprint(&s),
            MethodDef::new("go", 7, TypeId(0), TypeId(1)).fingerprint(&s)
        );
    }

    #[test]
    fn names_docs_units_do_not_matter() {
        let mk = |name: &str, field: &str, unit: Option<&str>| {
            let mut f = FieldDef::new(field, 1, Type::F32);
            f.unit = unit.map(str::to_string);
            f.docs = vec![format!("doc for {field}")];
            schema(vec![TypeDef::new(
                "p",
                name,
                TypeDefKind::Message(MessageDef {
                    id: Some(1),
                    fields: vec![f],
                    reserved: vec![],
                }),
            )])
        };
        let a = mk("A", "x", Some("V"));
        let b = mk("B", "y", None);
        assert_eq!(a.fingerprint(TypeId(0)), b.fingerprint(TypeId(0)));
        let mut c = mk("A", "x", Some("V"));
        if let TypeDefKind::Message(m) = &mut c.types[0].kind {
            m.fields[0].tag = 2;
        }
        assert_ne!(a.fingerprint(TypeId(0)), c.fingerprint(TypeId(0)));
    }
}
