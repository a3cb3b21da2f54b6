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

use std::fmt::{self, Write};

use crate::ir::{Schema, Type, TypeDefKind, TypeId};

/// FNV-1a 64-bit offset basis.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64-bit hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv(FNV_OFFSET_BASIS);
    h.update(bytes);
    h.0
}

/// Streaming FNV-1a, so large canonical forms need not be materialised.
struct Fnv(u64);

impl Fnv {
    fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

impl Write for Fnv {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.update(s.as_bytes());
        Ok(())
    }
}

/// The fingerprint of type `id` in `schema`.
pub fn fingerprint(schema: &Schema, id: TypeId) -> u64 {
    let mut h = Fnv(FNV_OFFSET_BASIS);
    // Writing into the hasher cannot fail.
    let _ = Canon::new(schema).named(&mut h, id);
    h.0
}

/// The canonical form of type `id` in `schema`.
pub fn canonical_form(schema: &Schema, id: TypeId) -> String {
    let mut s = String::new();
    let _ = Canon::new(schema).named(&mut s, id);
    s
}

struct Canon<'a> {
    schema: &'a Schema,
    stack: Vec<TypeId>,
}

impl<'a> Canon<'a> {
    fn new(schema: &'a Schema) -> Self {
        Canon {
            schema,
            stack: Vec::new(),
        }
    }

    fn ty(&mut self, out: &mut impl Write, ty: &Type) -> fmt::Result {
        match ty {
            Type::Optional(t) => {
                out.write_str("optional<")?;
                self.ty(out, t)?;
                out.write_str(">")
            }
            Type::List(t) => {
                out.write_str("list<")?;
                self.ty(out, t)?;
                out.write_str(">")
            }
            Type::Map(k, v) => {
                out.write_str("map<")?;
                self.ty(out, k)?;
                out.write_str(",")?;
                self.ty(out, v)?;
                out.write_str(">")
            }
            Type::Array(t, n) => {
                out.write_str("array<")?;
                self.ty(out, t)?;
                write!(out, ",{n}>")
            }
            Type::Named(id) => self.named(out, *id),
            scalar => out.write_str(scalar.scalar_name().unwrap_or("?")),
        }
    }

    fn named(&mut self, out: &mut impl Write, id: TypeId) -> fmt::Result {
        let Some(def) = self.schema.get(id) else {
            // Only reachable for an unvalidated hand-built IR.
            return write!(out, "?{}", id.0);
        };
        if let Some(depth) = self.stack.iter().position(|t| *t == id) {
            return write!(out, "@{depth}");
        }
        match &def.kind {
            TypeDefKind::Enum(e) => {
                let mut values: Vec<u32> = e.variants.iter().map(|v| v.value).collect();
                values.sort_unstable();
                out.write_str("enum{")?;
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.write_str(",")?;
                    }
                    write!(out, "{v}")?;
                }
                out.write_str("}")
            }
            TypeDefKind::Message(m) => {
                if let Some(mid) = m.id {
                    write!(out, "#{mid}")?;
                }
                out.write_str("message{")?;
                self.stack.push(id);
                let mut fields: Vec<_> = m.fields.iter().collect();
                fields.sort_by_key(|f| f.tag);
                for f in fields {
                    write!(out, "{}:", f.tag)?;
                    self.ty(out, &f.ty)?;
                    if let Some(n) = f.max_len {
                        write!(out, "[max_len={n}]")?;
                    }
                    if let Some((lo, hi)) = f.range {
                        write!(out, "[range={lo}..={hi}]")?;
                    }
                    out.write_str(";")?;
                }
                self.stack.pop();
                out.write_str("}")
            }
            TypeDefKind::Union(u) => {
                if let Some(uid) = u.id {
                    write!(out, "#{uid}")?;
                }
                out.write_str("union{")?;
                self.stack.push(id);
                let mut variants: Vec<_> = u.variants.iter().collect();
                variants.sort_by_key(|v| v.tag);
                for v in variants {
                    write!(out, "{}:", v.tag)?;
                    self.ty(out, &v.ty)?;
                    out.write_str(";")?;
                }
                self.stack.pop();
                out.write_str("}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::*;

    fn schema(types: Vec<TypeDef>) -> Schema {
        Schema {
            types,
            ..Schema::default()
        }
    }

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fnv_of_short_canonical_forms() {
        // Values computed independently of this crate (by hand-rolled FNV-1a
        // in another language) from the byte strings below.
        assert_eq!(fnv1a64(b"u"), 0xaf63_e84c_8602_00f0);
        assert_eq!(fnv1a64(b"u8"), 0x08c4_8207_b567_53d8);
        assert_eq!(fnv1a64(b"enum{0,1,3}"), 0x7483_7b1b_98a3_dba4);
        assert_eq!(
            fnv1a64(b"#5message{1:u8;2:list<@0>;}"),
            0x28ae_8ddf_2bb7_a58e
        );
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
