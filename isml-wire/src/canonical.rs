//! Canonical forms and fingerprints of types (wire format §8).
//!
//! A fingerprint is the 64-bit FNV-1a hash (offset basis
//! `0xcbf29ce484222325`, prime `0x100000001b3`) of the UTF-8 bytes of a
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
//! This module holds the one implementation of these rules. Every
//! representation of types implements [`TypeModel`] and gets the same
//! canonical form: the schema compiler's IR, and the runtime's static
//! descriptors (which generated and derived types carry).
//!
//! It needs no heap: the expansion stack lives on the call stack, and members
//! are visited in tag order by selection rather than by sorting a copy.
//!
//! ```
//! use isml_wire::canonical::{self, Definition, Member, Scalar, Shape, TypeModel};
//!
//! // A toy model with one type: message A [id = 5] { x: u8 = 1; y: list<A> = 2; }
//! enum Ty { U8, ListOfA, A }
//! struct Model;
//! impl TypeModel for Model {
//!     type Type = Ty;
//!     type Def = ();
//!     fn shape<'a>(&'a self, ty: &'a Ty) -> Shape<'a, Ty, ()> {
//!         match ty {
//!             Ty::U8 => Shape::Scalar(Scalar::U8),
//!             Ty::ListOfA => Shape::List(&Ty::A),
//!             Ty::A => Shape::Named(()),
//!         }
//!     }
//!     fn definition(&self, _: ()) -> Option<Definition> {
//!         Some(Definition::Message { id: Some(5) })
//!     }
//!     fn member_count(&self, _: ()) -> usize {
//!         2
//!     }
//!     fn member(&self, _: (), i: usize) -> Member<'_, Ty> {
//!         let (tag, ty) = if i == 0 { (1, &Ty::U8) } else { (2, &Ty::ListOfA) };
//!         Member { tag, ty, max_len: None, range: None }
//!     }
//! }
//!
//! # #[cfg(feature = "alloc")]
//! assert_eq!(canonical::type_form(&Model, &Ty::A), "#5message{1:u8;2:list<@0>;}");
//! assert_eq!(canonical::type_fingerprint(&Model, &Ty::A), 0x28ae_8ddf_2bb7_a58e);
//! ```

use core::fmt::{self, Write};

/// FNV-1a 64-bit offset basis.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64-bit hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::new();
    h.update(bytes);
    h.finish()
}

/// Streaming FNV-1a 64, so canonical forms need not be materialised: it is a
/// [`fmt::Write`] sink.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a64 {
    /// The hash of no bytes.
    pub const fn new() -> Self {
        Fnv1a64(FNV_OFFSET_BASIS)
    }

    /// Feeds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
        }
    }

    /// The hash of the bytes fed so far.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Write for Fnv1a64 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.update(s.as_bytes());
        Ok(())
    }
}

/// The scalar types of the schema language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scalar {
    /// `bool`
    Bool,
    /// `u8`
    U8,
    /// `u16`
    U16,
    /// `u32`
    U32,
    /// `u64`
    U64,
    /// `i8`
    I8,
    /// `i16`
    I16,
    /// `i32`
    I32,
    /// `i64`
    I64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `string` (UTF-8)
    String,
    /// `bytes`
    Bytes,
}

impl Scalar {
    /// Every scalar, in the order of the schema language reference.
    pub const ALL: [Scalar; 13] = [
        Scalar::Bool,
        Scalar::U8,
        Scalar::U16,
        Scalar::U32,
        Scalar::U64,
        Scalar::I8,
        Scalar::I16,
        Scalar::I32,
        Scalar::I64,
        Scalar::F32,
        Scalar::F64,
        Scalar::String,
        Scalar::Bytes,
    ];

    /// The spelling in schemas and canonical forms (`"u8"`, `"string"`...).
    pub const fn name(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::U8 => "u8",
            Scalar::U16 => "u16",
            Scalar::U32 => "u32",
            Scalar::U64 => "u64",
            Scalar::I8 => "i8",
            Scalar::I16 => "i16",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
            Scalar::String => "string",
            Scalar::Bytes => "bytes",
        }
    }

    /// The scalar spelled `name` in schemas.
    pub fn from_name(name: &str) -> Option<Scalar> {
        Scalar::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The inclusive bounds of an integer type, `None` for other scalars.
    pub const fn integer_bounds(self) -> Option<(i128, i128)> {
        Some(match self {
            Scalar::U8 => (0, u8::MAX as i128),
            Scalar::U16 => (0, u16::MAX as i128),
            Scalar::U32 => (0, u32::MAX as i128),
            Scalar::U64 => (0, u64::MAX as i128),
            Scalar::I8 => (i8::MIN as i128, i8::MAX as i128),
            Scalar::I16 => (i16::MIN as i128, i16::MAX as i128),
            Scalar::I32 => (i32::MIN as i128, i32::MAX as i128),
            Scalar::I64 => (i64::MIN as i128, i64::MAX as i128),
            _ => return None,
        })
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One level of a type expression, as a [`TypeModel`] presents it.
#[derive(Debug)]
pub enum Shape<'a, T: ?Sized, D> {
    /// A scalar.
    Scalar(Scalar),
    /// `optional<T>`
    Optional(&'a T),
    /// `list<T>`
    List(&'a T),
    /// `map<K, V>`
    Map(&'a T, &'a T),
    /// `array<T, N>`
    Array(&'a T, u32),
    /// A message, union or enum definition.
    Named(D),
}

/// What a named definition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Definition {
    /// An enum; its values are [`TypeModel::enum_value`]s.
    Enum,
    /// A message with an optional type id; its fields are [`TypeModel::member`]s.
    Message {
        /// The type id, if it can be sent on its own.
        id: Option<u32>,
    },
    /// A union with an optional type id; its variants are [`TypeModel::member`]s.
    Union {
        /// The type id, if it can be sent on its own.
        id: Option<u32>,
    },
}

/// A field of a message or a variant of a union, as far as the canonical
/// form sees it. Union variants have neither `max_len` nor `range`.
#[derive(Debug)]
pub struct Member<'a, T: ?Sized> {
    /// The tag.
    pub tag: u32,
    /// The type.
    pub ty: &'a T,
    /// The `max_len` attribute.
    pub max_len: Option<u64>,
    /// The `range` attribute.
    pub range: Option<(i128, i128)>,
}

/// A representation of schema types that canonical forms can be computed
/// over. Members and enum values are addressed by index, in any order: the
/// canonical form orders them itself.
pub trait TypeModel {
    /// A type expression.
    type Type: ?Sized;
    /// A reference to a named definition. Two references are equal when
    /// they name the same definition (by identity, never by name).
    type Def: Copy + PartialEq;

    /// The outermost level of `ty`.
    fn shape<'a>(&'a self, ty: &'a Self::Type) -> Shape<'a, Self::Type, Self::Def>;

    /// What `def` is, or `None` when the model does not define it (an
    /// unvalidated, hand-built model).
    fn definition(&self, def: Self::Def) -> Option<Definition>;

    /// The number of fields of a message or variants of a union.
    fn member_count(&self, def: Self::Def) -> usize {
        let _ = def;
        0
    }

    /// Field or variant `index` (`0..member_count`).
    fn member(&self, def: Self::Def, index: usize) -> Member<'_, Self::Type>;

    /// The number of values of an enum.
    fn enum_value_count(&self, def: Self::Def) -> usize {
        let _ = def;
        0
    }

    /// Value `index` (`0..enum_value_count`) of an enum.
    fn enum_value(&self, def: Self::Def, index: usize) -> u32 {
        let _ = (def, index);
        0
    }

    /// What to write for a definition the model does not have.
    fn write_undefined(&self, def: Self::Def, out: &mut dyn Write) -> fmt::Result {
        let _ = def;
        out.write_str("?")
    }
}

/// Writes the canonical form of type expression `ty` to `out`.
pub fn write_type<M: TypeModel + ?Sized>(
    model: &M,
    ty: &M::Type,
    out: &mut dyn Write,
) -> fmt::Result {
    Canon { model, out }.ty(ty, None)
}

/// Writes the canonical form of definition `def` to `out`.
pub fn write_definition<M: TypeModel + ?Sized>(
    model: &M,
    def: M::Def,
    out: &mut dyn Write,
) -> fmt::Result {
    Canon { model, out }.named(def, None)
}

/// The fingerprint of type expression `ty`: FNV-1a 64 of its canonical form.
pub fn type_fingerprint<M: TypeModel + ?Sized>(model: &M, ty: &M::Type) -> u64 {
    let mut h = Fnv1a64::new();
    // Writing into the hasher cannot fail.
    let _ = write_type(model, ty, &mut h);
    h.finish()
}

/// The fingerprint of definition `def`: FNV-1a 64 of its canonical form.
pub fn fingerprint<M: TypeModel + ?Sized>(model: &M, def: M::Def) -> u64 {
    let mut h = Fnv1a64::new();
    let _ = write_definition(model, def, &mut h);
    h.finish()
}

/// The flag bit of a method's canonical encoding set when the caller sends
/// a stream of requests (wire format §8.1).
pub const METHOD_CLIENT_STREAMING: u8 = 0x01;
/// The flag bit set when the server sends a stream of responses.
pub const METHOD_SERVER_STREAMING: u8 = 0x02;
/// The flag bit set when the method has a response (one or a stream).
pub const METHOD_HAS_RESPONSE: u8 = 0x04;

/// The canonical encoding of a method (wire format §8.1): `rpc`, a flag
/// byte, the request type's fingerprint and, when there is a response, the
/// response type's, both as 8 bytes little-endian. Returns the buffer and
/// how many of its bytes are used (12 or 20).
const fn method_form(
    request: u64,
    response: Option<u64>,
    client_streaming: bool,
    server_streaming: bool,
) -> ([u8; 20], usize) {
    let mut out = [0u8; 20];
    out[0] = b'r';
    out[1] = b'p';
    out[2] = b'c';
    let mut flags = 0;
    if client_streaming {
        flags |= METHOD_CLIENT_STREAMING;
    }
    if server_streaming {
        flags |= METHOD_SERVER_STREAMING;
    }
    if response.is_some() {
        flags |= METHOD_HAS_RESPONSE;
    }
    out[3] = flags;
    let req = request.to_le_bytes();
    let mut i = 0;
    while i < 8 {
        out[4 + i] = req[i];
        i += 1;
    }
    let len = match response {
        None => 12,
        Some(r) => {
            let resp = r.to_le_bytes();
            let mut i = 0;
            while i < 8 {
                out[12 + i] = resp[i];
                i += 1;
            }
            20
        }
    };
    (out, len)
}

/// The fingerprint of an rpc method (wire format §8.1): FNV-1a 64 of a
/// 12- or 20-byte encoding of its request type's fingerprint, its response
/// type's fingerprint (`None` for a one-way method) and whether each side
/// streams. Peers compare it to tell whether they agree on what a method
/// carries; the method's name and id are not part of it.
///
/// The flags are encoded as given: a checked schema never has a streaming
/// flag without a response, but the function does not refuse one.
///
/// ```
/// use isml_wire::canonical::method_fingerprint;
///
/// let unary = method_fingerprint(1, Some(2), false, false);
/// assert_ne!(unary, method_fingerprint(1, Some(2), true, false));
/// assert_ne!(unary, method_fingerprint(1, None, false, false));
/// assert_eq!(
///     method_fingerprint(0x1122_3344_5566_7788, None, false, false),
///     0xecad_5ffa_573b_eba4
/// );
/// ```
pub const fn method_fingerprint(
    request: u64,
    response: Option<u64>,
    client_streaming: bool,
    server_streaming: bool,
) -> u64 {
    let (bytes, len) = method_form(request, response, client_streaming, server_streaming);
    let mut h = FNV_OFFSET_BASIS;
    let mut i = 0;
    while i < len {
        h = (h ^ bytes[i] as u64).wrapping_mul(FNV_PRIME);
        i += 1;
    }
    h
}

/// The canonical form of type expression `ty`.
#[cfg(feature = "alloc")]
pub fn type_form<M: TypeModel + ?Sized>(model: &M, ty: &M::Type) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    let _ = write_type(model, ty, &mut s);
    s
}

/// The canonical form of definition `def`.
#[cfg(feature = "alloc")]
pub fn form<M: TypeModel + ?Sized>(model: &M, def: M::Def) -> alloc::string::String {
    let mut s = alloc::string::String::new();
    let _ = write_definition(model, def, &mut s);
    s
}

/// The expansion stack of §8, one link per call frame of [`Canon::named`].
struct Stack<'p, D> {
    def: D,
    below: Option<&'p Stack<'p, D>>,
}

/// The depth of `def` on the stack (the outermost definition at depth 0).
fn depth_of<D: Copy + PartialEq>(top: Option<&Stack<'_, D>>, def: D) -> Option<usize> {
    let mut from_top = None;
    let mut len = 0;
    let mut link = top;
    while let Some(s) = link {
        if s.def == def {
            from_top = Some(len);
        }
        len += 1;
        link = s.below;
    }
    from_top.map(|k| len - 1 - k)
}

/// The index of the smallest `(key(i), i)` above `after`, so that keys are
/// visited in ascending order, ties in index order (as a stable sort would).
fn next_by_key(
    count: usize,
    after: Option<(u64, usize)>,
    key: impl Fn(usize) -> u64,
) -> Option<(u64, usize)> {
    let mut best: Option<(u64, usize)> = None;
    for i in 0..count {
        let k = (key(i), i);
        if after.is_some_and(|a| k <= a) {
            continue;
        }
        if best.is_none_or(|b| k < b) {
            best = Some(k);
        }
    }
    best
}

struct Canon<'m, 'o, M: TypeModel + ?Sized> {
    model: &'m M,
    out: &'o mut dyn Write,
}

impl<M: TypeModel + ?Sized> Canon<'_, '_, M> {
    fn ty(&mut self, ty: &M::Type, stack: Option<&Stack<'_, M::Def>>) -> fmt::Result {
        match self.model.shape(ty) {
            Shape::Scalar(s) => self.out.write_str(s.name()),
            Shape::Optional(t) => {
                self.out.write_str("optional<")?;
                self.ty(t, stack)?;
                self.out.write_str(">")
            }
            Shape::List(t) => {
                self.out.write_str("list<")?;
                self.ty(t, stack)?;
                self.out.write_str(">")
            }
            Shape::Map(k, v) => {
                self.out.write_str("map<")?;
                self.ty(k, stack)?;
                self.out.write_str(",")?;
                self.ty(v, stack)?;
                self.out.write_str(">")
            }
            Shape::Array(t, n) => {
                self.out.write_str("array<")?;
                self.ty(t, stack)?;
                write!(self.out, ",{n}>")
            }
            Shape::Named(def) => self.named(def, stack),
        }
    }

    fn named(&mut self, def: M::Def, stack: Option<&Stack<'_, M::Def>>) -> fmt::Result {
        let model = self.model;
        let Some(kind) = model.definition(def) else {
            return model.write_undefined(def, self.out);
        };
        let (id, open) = match kind {
            Definition::Enum => return self.enumeration(def),
            Definition::Message { id } => (id, "message{"),
            Definition::Union { id } => (id, "union{"),
        };
        if let Some(depth) = depth_of(stack, def) {
            return write!(self.out, "@{depth}");
        }
        if let Some(id) = id {
            write!(self.out, "#{id}")?;
        }
        self.out.write_str(open)?;
        let here = Stack { def, below: stack };
        let count = model.member_count(def);
        let mut at = None;
        while let Some(next) = next_by_key(count, at, |i| u64::from(model.member(def, i).tag)) {
            at = Some(next);
            let m = model.member(def, next.1);
            write!(self.out, "{}:", m.tag)?;
            self.ty(m.ty, Some(&here))?;
            if let Some(n) = m.max_len {
                write!(self.out, "[max_len={n}]")?;
            }
            if let Some((lo, hi)) = m.range {
                write!(self.out, "[range={lo}..={hi}]")?;
            }
            self.out.write_str(";")?;
        }
        self.out.write_str("}")
    }

    fn enumeration(&mut self, def: M::Def) -> fmt::Result {
        let model = self.model;
        let count = model.enum_value_count(def);
        self.out.write_str("enum{")?;
        let mut at = None;
        while let Some(next) = next_by_key(count, at, |i| u64::from(model.enum_value(def, i))) {
            if at.is_some() {
                self.out.write_str(",")?;
            }
            at = Some(next);
            write!(self.out, "{}", next.0)?;
        }
        self.out.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{boxed::Box, format, string::String, vec, vec::Vec};

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
    fn scalar_names_round_trip() {
        for s in Scalar::ALL {
            assert_eq!(Scalar::from_name(s.name()), Some(s));
        }
        assert_eq!(Scalar::from_name("u128"), None);
    }

    #[cfg(feature = "alloc")]
    /// A model built from vectors, for tests: definitions are indices. It and
    /// the tests that use it need `alloc` (the canonical forms as strings).
    #[derive(Debug)]
    enum T {
        S(Scalar),
        Opt(Box<T>),
        List(Box<T>),
        Map(Box<T>, Box<T>),
        Array(Box<T>, u32),
        Named(usize),
    }

    #[cfg(feature = "alloc")]
    /// A field: tag, type, `max_len`, `range`.
    type Field = (u32, T, Option<u64>, Option<(i128, i128)>);

    #[cfg(feature = "alloc")]
    enum D {
        Enum(Vec<u32>),
        Message(Option<u32>, Vec<Field>),
        Union(Option<u32>, Vec<(u32, T)>),
    }

    #[cfg(feature = "alloc")]
    struct Model(Vec<D>);

    #[cfg(feature = "alloc")]
    impl TypeModel for Model {
        type Type = T;
        type Def = usize;
        fn shape<'a>(&'a self, ty: &'a T) -> Shape<'a, T, usize> {
            match ty {
                T::S(s) => Shape::Scalar(*s),
                T::Opt(t) => Shape::Optional(t),
                T::List(t) => Shape::List(t),
                T::Map(k, v) => Shape::Map(k, v),
                T::Array(t, n) => Shape::Array(t, *n),
                T::Named(d) => Shape::Named(*d),
            }
        }
        fn definition(&self, def: usize) -> Option<Definition> {
            Some(match self.0.get(def)? {
                D::Enum(_) => Definition::Enum,
                D::Message(id, _) => Definition::Message { id: *id },
                D::Union(id, _) => Definition::Union { id: *id },
            })
        }
        fn member_count(&self, def: usize) -> usize {
            match &self.0[def] {
                D::Message(_, f) => f.len(),
                D::Union(_, v) => v.len(),
                D::Enum(_) => 0,
            }
        }
        fn member(&self, def: usize, i: usize) -> Member<'_, T> {
            match &self.0[def] {
                D::Message(_, f) => Member {
                    tag: f[i].0,
                    ty: &f[i].1,
                    max_len: f[i].2,
                    range: f[i].3,
                },
                D::Union(_, v) => Member {
                    tag: v[i].0,
                    ty: &v[i].1,
                    max_len: None,
                    range: None,
                },
                D::Enum(_) => unreachable!("enums have no members"),
            }
        }
        fn enum_value_count(&self, def: usize) -> usize {
            match &self.0[def] {
                D::Enum(v) => v.len(),
                _ => 0,
            }
        }
        fn enum_value(&self, def: usize, i: usize) -> u32 {
            match &self.0[def] {
                D::Enum(v) => v[i],
                _ => 0,
            }
        }
    }

    #[cfg(feature = "alloc")]
    fn named(d: usize) -> T {
        T::Named(d)
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn nested_types_attributes_and_depths() {
        // 0: B { inner: optional<C> = 1 }
        // 1: C [id = 16] { back: optional<B> = 2; e: E = 1; name: string = 3 [max_len = 32];
        //      t: i16 = 4 [range = -40..=85]; m: map<string, array<u8, 6>> = 5 }  (unsorted)
        // 2: E { 3, 0, 1 }
        // 3: U [id = 7] { b: B = 2; a: list<U> = 1 }
        let model = Model(vec![
            D::Message(None, vec![(1, T::Opt(Box::new(named(1))), None, None)]),
            D::Message(
                Some(16),
                vec![
                    (2, T::Opt(Box::new(named(0))), None, None),
                    (1, named(2), None, None),
                    (3, T::S(Scalar::String), Some(32), None),
                    (4, T::S(Scalar::I16), None, Some((-40, 85))),
                    (
                        5,
                        T::Map(
                            Box::new(T::S(Scalar::String)),
                            Box::new(T::Array(Box::new(T::S(Scalar::U8)), 6)),
                        ),
                        None,
                        None,
                    ),
                ],
            ),
            D::Enum(vec![3, 0, 1]),
            D::Union(
                Some(7),
                vec![(2, named(0)), (1, T::List(Box::new(named(3))))],
            ),
        ]);
        let form = |d: usize| -> String { super::form(&model, d) };
        assert_eq!(form(2), "enum{0,1,3}");
        assert_eq!(
            form(0),
            "message{1:optional<#16message{1:enum{0,1,3};2:optional<@0>;3:string[max_len=32];\
             4:i16[range=-40..=85];5:map<string,array<u8,6>>;}>;}"
        );
        assert_eq!(
            form(1),
            "#16message{1:enum{0,1,3};2:optional<message{1:optional<@0>;}>;3:string[max_len=32];\
             4:i16[range=-40..=85];5:map<string,array<u8,6>>;}"
        );
        assert_eq!(
            form(3),
            "#7union{1:list<@0>;2:message{1:optional<#16message{1:enum{0,1,3};2:optional<@1>;\
             3:string[max_len=32];4:i16[range=-40..=85];5:map<string,array<u8,6>>;}>;};}"
        );
        assert_eq!(fingerprint(&model, 2), 0x7483_7b1b_98a3_dba4);
        assert_eq!(fingerprint(&model, 0), fnv1a64(form(0).as_bytes()));
        assert_eq!(
            type_form(&model, &T::List(Box::new(named(2)))),
            "list<enum{0,1,3}>"
        );
        assert_eq!(form(9), "?");
    }

    /// The examples of wire format §8.1, computed there from the bytes.
    #[test]
    fn method_fingerprints_match_the_documented_bytes() {
        let req = 0x1122_3344_5566_7788;
        let resp = 0x99aa_bbcc_ddee_ff00;
        let (bytes, len) = method_form(req, None, false, false);
        assert_eq!(
            &bytes[..len],
            &[
                0x72, 0x70, 0x63, 0x00, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11
            ]
        );
        let (bytes, len) = method_form(req, Some(resp), true, true);
        assert_eq!(
            &bytes[..len],
            &[
                0x72, 0x70, 0x63, 0x07, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00, 0xff,
                0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99
            ]
        );
        for (response, client, server, expected) in [
            (None, false, false, 0xecad_5ffa_573b_eba4),
            (Some(resp), false, false, 0x35df_769d_f6f5_5d30),
            (Some(resp), false, true, 0x1713_bc91_e0e6_a0d6),
            (Some(resp), true, false, 0x8992_aeae_d77d_4b23),
            (Some(resp), true, true, 0x6cfd_5ef2_9422_ba79),
        ] {
            let (bytes, len) = method_form(req, response, client, server);
            assert_eq!(method_fingerprint(req, response, client, server), expected);
            assert_eq!(fnv1a64(&bytes[..len]), expected);
        }
        // Usable in constants, as generated code may want.
        const ONE_WAY: u64 = method_fingerprint(0x1122_3344_5566_7788, None, false, false);
        assert_eq!(ONE_WAY, 0xecad_5ffa_573b_eba4);
    }

    #[test]
    fn method_fingerprints_tell_every_part_apart() {
        let all = [
            method_fingerprint(1, None, false, false),
            method_fingerprint(1, Some(2), false, false),
            method_fingerprint(1, Some(2), false, true),
            method_fingerprint(1, Some(2), true, false),
            method_fingerprint(1, Some(2), true, true),
            method_fingerprint(2, Some(1), false, false),
            method_fingerprint(1, Some(3), false, false),
            // A response whose fingerprint is 0 is still a response.
            method_fingerprint(1, Some(0), false, false),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn duplicate_keys_keep_their_order() {
        // Not valid schemas, but the form must be what a stable sort gives.
        let model = Model(vec![
            D::Enum(vec![2, 1, 2]),
            D::Message(
                None,
                vec![
                    (2, T::S(Scalar::U8), None, None),
                    (1, T::S(Scalar::Bool), None, None),
                    (2, T::S(Scalar::I8), None, None),
                ],
            ),
        ]);
        assert_eq!(form(&model, 0), "enum{1,2,2}");
        assert_eq!(form(&model, 1), "message{1:bool;2:u8;2:i8;}");
    }
}
