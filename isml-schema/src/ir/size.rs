//! Minimum and maximum encoded sizes of messages and unions (the frame
//! payload), computed from the wire rules: a wire-cost report for serial and
//! 2G links (`isml describe`).
//!
//! The minimum is the size of the smallest value: usually the empty body `00`,
//! more when a message has fields that are always written (messages, unions,
//! arrays). The maximum exists only when every part of the value is bounded:
//! strings, bytes, lists and maps need a `max_len` (a map with `string` keys is
//! never bounded), and a type that contains itself is unbounded. Enum fields
//! count the largest value the schema defines; `range` attributes narrow
//! integer sizes.
//!
//! ```
//! let schema = isml_schema::load_str(
//!     "s.isml",
//!     "package s; message M [id = 1] { a: u8 = 1; b: string = 2 [max_len = 10]; }",
//! )?;
//! let id = schema.lookup("s.M").unwrap();
//! let size = isml_schema::size::payload_size(&schema, id);
//! assert_eq!(size.min, 1);
//! // Presence, a (varint of 255: 2 bytes), b (length byte and 10 bytes).
//! assert_eq!(size.max, Some(1 + 2 + 11));
//! # Ok::<(), isml_schema::Diagnostics>(())
//! ```

use crate::ir::{FieldDef, Schema, Type, TypeDefKind, TypeId};

/// Encoded size bounds of a frame payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// The fewest bytes any value encodes to.
    pub min: u64,
    /// The most bytes any value encodes to, `None` when unbounded.
    pub max: Option<u64>,
}

/// Size bounds of the frame payload of message or union `id`.
pub fn payload_size(schema: &Schema, id: TypeId) -> Size {
    let mut c = Calc {
        schema,
        stack: Vec::new(),
        encoder: false,
    };
    Size {
        min: c.min_top(id),
        max: c.max_top(id),
    }
}

/// The most bytes an encoder can write for any value of message or union
/// `id` that passes its validation (`max_len` and `range` are checked
/// before anything is written), `None` when unbounded.
///
/// Unlike [`payload_size`]'s maximum, which counts the values a schema
/// defines, this counts every value the generated Rust types can hold: an
/// enum field may hold any `u32` (its `Unknown` variant), and a union may
/// hold an unknown variant with bytes of any length, so unions are
/// unbounded here. Generated code writes bounded messages into a buffer of
/// this size in one pass.
pub fn encode_bound(schema: &Schema, id: TypeId) -> Option<u64> {
    Calc {
        schema,
        stack: Vec::new(),
        encoder: true,
    }
    .max_top(id)
}

/// Bytes of `uvarint(v)`.
pub fn uvarint_len(v: u64) -> u64 {
    isml_wire::varint::len(v) as u64
}

/// Bytes of a presence field whose highest present tag is `tag` with `class`.
fn presence_len(tag: u32, class: u8) -> u64 {
    if tag == 0 {
        return 1;
    }
    let bits = 2 * u64::from(tag - 1) + if class >= 2 { 2 } else { 1 };
    bits.div_ceil(7)
}

/// The class of the field form of `ty` (wire format §5.1).
fn class_of(schema: &Schema, ty: &Type) -> u8 {
    match ty {
        Type::F32 => 2,
        Type::Optional(t) => class_of(schema, t),
        t if t.is_integer() || *t == Type::Bool => 1,
        Type::Named(id) if matches!(schema.types[id.index()].kind, TypeDefKind::Enum(_)) => 1,
        _ => 3,
    }
}

fn delimited(n: u64) -> u64 {
    uvarint_len(n) + n
}

fn zigzag(v: i128) -> u64 {
    isml_wire::varint::zigzag(v as i64)
}

struct Calc<'a> {
    schema: &'a Schema,
    stack: Vec<TypeId>,
    /// Bound what an encoder may be handed (any enum value, unknown union
    /// variants) rather than the values the schema defines.
    encoder: bool,
}

impl Calc<'_> {
    fn min_top(&mut self, id: TypeId) -> u64 {
        match &self.schema.types[id.index()].kind {
            TypeDefKind::Message(_) => self.min_body(id),
            TypeDefKind::Union(u) => u
                .variants
                .iter()
                .map(|v| uvarint_len(u64::from(v.tag) << 2) + self.min_field(&v.ty))
                .min()
                .unwrap_or(1),
            TypeDefKind::Enum(_) => 1,
        }
    }

    fn min_body(&mut self, id: TypeId) -> u64 {
        let TypeDefKind::Message(m) = &self.schema.types[id.index()].kind else {
            return 1;
        };
        let mut highest = (0, 0);
        let mut values = 0;
        for f in &m.fields {
            if always_written(self.schema, &f.ty) {
                highest = (f.tag, class_of(self.schema, &f.ty));
                values += self.min_field(&f.ty);
            }
        }
        presence_len(highest.0, highest.1) + values
    }

    /// The smallest field form of a type that is always written.
    fn min_field(&mut self, ty: &Type) -> u64 {
        match ty {
            Type::F32 => 4,
            Type::F64 => 9,
            Type::Array(..) => delimited(self.min_elem(ty)),
            Type::Named(id) => match &self.schema.types[id.index()].kind {
                TypeDefKind::Union(_) => delimited(self.min_top(*id)),
                TypeDefKind::Message(_) => delimited(self.min_body(*id)),
                TypeDefKind::Enum(_) => 1,
            },
            Type::Optional(t) => self.min_field(t),
            _ => 1,
        }
    }

    fn min_elem(&mut self, ty: &Type) -> u64 {
        match ty {
            Type::F32 => 4,
            Type::F64 => 8,
            Type::Array(t, n) => u64::from(*n) * self.min_elem(t),
            Type::Named(id) => match &self.schema.types[id.index()].kind {
                TypeDefKind::Union(_) => self.min_top(*id),
                TypeDefKind::Message(_) => delimited(self.min_body(*id)),
                TypeDefKind::Enum(_) => 1,
            },
            _ => 1,
        }
    }

    fn max_top(&mut self, id: TypeId) -> Option<u64> {
        if self.stack.contains(&id) {
            return None;
        }
        self.stack.push(id);
        let out = match &self.schema.types[id.index()].kind {
            TypeDefKind::Message(m) => {
                let mut total = m
                    .fields
                    .last()
                    .map_or(1, |f| presence_len(f.tag, class_of(self.schema, &f.ty)));
                let mut bounded = true;
                for f in &m.fields {
                    match self.max_field(f) {
                        Some(n) => total += n,
                        None => bounded = false,
                    }
                }
                bounded.then_some(total)
            }
            TypeDefKind::Union(_) if self.encoder => None,
            TypeDefKind::Union(u) => {
                let mut best = Some(0u64);
                for v in &u.variants {
                    let n = self
                        .max_field_of(&v.ty, None, None)
                        .map(|n| uvarint_len(u64::from(v.tag) << 2) + n);
                    best = match (best, n) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    };
                }
                best
            }
            TypeDefKind::Enum(_) => Some(5),
        };
        self.stack.pop();
        out
    }

    fn max_field(&mut self, f: &FieldDef) -> Option<u64> {
        self.max_field_of(&f.ty, f.max_len, f.range)
    }

    /// The largest field form.
    fn max_field_of(
        &mut self,
        ty: &Type,
        max_len: Option<u64>,
        range: Option<(i128, i128)>,
    ) -> Option<u64> {
        Some(match ty {
            Type::Bool => 1,
            Type::U8 | Type::U16 | Type::U32 | Type::U64 => {
                let (_, hi) = ty.integer_bounds()?;
                let hi = range.map_or(hi, |(_, b)| b.min(hi));
                uvarint_len(hi.max(0) as u64)
            }
            Type::I8 | Type::I16 | Type::I32 | Type::I64 => {
                let (lo, hi) = ty.integer_bounds()?;
                let (lo, hi) = range.map_or((lo, hi), |(a, b)| (a.max(lo), b.min(hi)));
                uvarint_len(zigzag(lo).max(zigzag(hi)))
            }
            Type::F32 => 4,
            Type::F64 => 9,
            Type::Optional(t) => self.max_field_of(t, max_len, range)?,
            Type::Array(..) => delimited(self.max_elem(ty)?),
            Type::Named(id) => match &self.schema.types[id.index()].kind {
                TypeDefKind::Union(_) => delimited(self.max_top(*id)?),
                _ => self.max_elem(ty)?,
            },
            _ => self.max_container(ty, max_len?)?,
        })
    }

    /// Strings, bytes, lists and maps with a `max_len`.
    fn max_container(&mut self, ty: &Type, max_len: u64) -> Option<u64> {
        let content = match ty {
            Type::String | Type::Bytes => max_len,
            Type::List(t) => max_len.checked_mul(self.max_elem(t)?)?,
            Type::Map(k, v) => {
                let entries = match &**k {
                    Type::Bool => max_len.min(2),
                    Type::U8 | Type::I8 => max_len.min(256),
                    Type::U16 | Type::I16 => max_len.min(65_536),
                    _ => max_len,
                };
                entries.checked_mul(self.max_elem(k)?.checked_add(self.max_elem(v)?)?)?
            }
            _ => return None,
        };
        Some(delimited(content))
    }

    /// The largest element form.
    fn max_elem(&mut self, ty: &Type) -> Option<u64> {
        Some(match ty {
            Type::Bool | Type::U8 | Type::I8 => 1,
            Type::U16 => 3,
            Type::U32 => 5,
            Type::U64 => 10,
            Type::I16 => 3,
            Type::I32 => 5,
            Type::I64 => 10,
            Type::F32 => 4,
            Type::F64 => 8,
            Type::Optional(t) => 1 + self.max_elem(t)?,
            Type::Array(t, n) => u64::from(*n).checked_mul(self.max_elem(t)?)?,
            Type::Named(id) => match &self.schema.types[id.index()].kind {
                TypeDefKind::Enum(_) if self.encoder => 5,
                TypeDefKind::Enum(e) => uvarint_len(
                    e.variants
                        .iter()
                        .map(|v| u64::from(v.value))
                        .max()
                        .unwrap_or(0),
                ),
                TypeDefKind::Message(_) => delimited(self.max_top(*id)?),
                TypeDefKind::Union(_) => self.max_top(*id)?,
            },
            // Elements carry no attributes: strings, bytes, lists and maps inside
            // containers are unbounded.
            _ => return None,
        })
    }
}

/// Whether a non-optional field of this type is written even at its default.
fn always_written(schema: &Schema, ty: &Type) -> bool {
    match ty {
        Type::Array(..) => true,
        Type::Named(id) => !matches!(schema.types[id.index()].kind, TypeDefKind::Enum(_)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(src: &str, name: &str) -> Size {
        let s = crate::load_str("t.isml", src).unwrap();
        payload_size(&s, s.lookup(name).unwrap())
    }

    #[test]
    fn worked_example_fits_its_bounds() {
        let s = size(
            "package t; message SlotTelemetry [id = 3] { slot: u8 = 1; voltage_mv: u32 = 2;
             current_ma: i32 = 3; temperature_c: f32 = 4; charging: bool = 5; energy_wh: u64 = 6; }",
            "t.SlotTelemetry",
        );
        assert_eq!(s.min, 1);
        // Presence (11 bits: 2 bytes) + 2 + 5 + 5 + 4 + 1 + 10.
        assert_eq!(s.max, Some(2 + 2 + 5 + 5 + 4 + 1 + 10));
    }

    #[test]
    fn always_written_fields_raise_the_minimum() {
        let s = size(
            "package t; message In { x: u8 = 1; } message M [id = 1] { a: array<u8, 3> = 2; i: In = 1; }",
            "t.M",
        );
        // Presence (one byte), i: 01 00, a: 03 + 3 bytes.
        assert_eq!(s.min, 1 + 2 + 4);
        assert_eq!(s.max, Some(1 + (1 + 1 + 2) + 4));
    }

    #[test]
    fn strings_without_max_len_and_recursion_are_unbounded() {
        assert_eq!(
            size("package t; message M { s: string = 1; }", "t.M").max,
            None
        );
        assert_eq!(
            size("package t; message M { n: optional<M> = 1; }", "t.M").max,
            None
        );
        let ranged = size(
            "package t; message M { v: i32 = 1 [range = -5..=5]; }",
            "t.M",
        );
        assert_eq!(ranged.max, Some(1 + 1));
    }

    #[test]
    fn encoder_bound_counts_any_enum_value_and_no_union() {
        let src = "package t; enum E { a = 0; b = 1; }
             union U { x: u8 = 1; }
             message M [id = 1] { e: E = 1; n: u8 = 2; }
             message W [id = 2] { u: U = 1; }";
        let s = crate::load_str("t.isml", src).unwrap();
        let m = s.lookup("t.M").unwrap();
        // Presence (3 bits: 1 byte), e: the schema's values take 1 byte,
        // an unknown value up to 5; n: 2.
        assert_eq!(payload_size(&s, m).max, Some(1 + 1 + 2));
        assert_eq!(encode_bound(&s, m), Some(1 + 5 + 2));
        let w = s.lookup("t.W").unwrap();
        assert!(payload_size(&s, w).max.is_some());
        assert_eq!(
            encode_bound(&s, w),
            None,
            "an unknown variant has any length"
        );
    }
}
