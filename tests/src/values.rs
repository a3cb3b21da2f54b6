//! The `value` test vectors through `isml_schema::dynamic`.
//!
//! A vector describes its types in a `types` object (messages, unions, enums
//! with fields in schema syntax) and its value in the JSON mapping of the
//! schema language. [`VectorType::new`] writes those types as `.isml` text,
//! compiles it with the schema compiler, and keeps the compiled form of the
//! vector's `type`; encoding, decoding and the JSON mapping are then those of
//! `isml_schema::dynamic`, which is built on the `isml-wire` primitives the
//! generated code uses. The independent side of these checks is the vectors
//! file itself (written by hand, or by the Python reference implementation).
//!
//! ```
//! use isml_tests::values::VectorType;
//! use serde_json::json;
//!
//! let ty = VectorType::new(&json!({}), "map<string, i32>").unwrap();
//! let bytes = ty.encode(&json!({"b": -1, "a": 2})).unwrap();
//! assert_eq!(bytes, [0x06, 0x01, b'a', 0x04, 0x01, b'b', 0x01]);
//! assert_eq!(ty.decode(&bytes).unwrap(), ty.value(&json!({"a": 2, "b": -1})).unwrap());
//! ```

use std::fmt::Write as _;

use isml_schema::Schema;
use isml_schema::dynamic::{self, DecodeError, Descriptor, Value};
use isml_schema::ir::{Type, TypeDefKind, TypeId};
use serde_json::Value as Json;

/// Type nesting the compiler is left to check (it allows 32 levels).
const PEEL_ABOVE: usize = 16;

/// Wrappers peeled at most, so a hostile type string stays cheap.
const MAX_PEELED: usize = 64;

/// The deepest `<` nesting of a type expression.
fn nesting(ty: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for c in ty.chars() {
        match c {
            '<' => {
                depth += 1;
                max = max.max(depth);
            }
            '>' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The package the vectors' types are compiled into.
pub const PACKAGE: &str = "vectors";

/// The message that holds the vector's type as its one field, so that any
/// type expression can be compiled along with the definitions.
const HOLDER: &str = "VectorTypeHolder";

/// A vector's type, compiled with the definitions it refers to.
#[derive(Debug)]
pub struct VectorType {
    schema: Schema,
    ty: Type,
}

impl VectorType {
    /// Compiles `types` (a vector's `types` object) and the type expression
    /// `ty` (schema syntax, e.g. `list<Slot>`).
    ///
    /// The schema language caps type nesting at 32 levels, but vectors that
    /// test the decoder's depth limit need deeper types: outer `list<..>`
    /// and `optional<..>` wrappers beyond what the compiler accepts are
    /// peeled off and applied to the compiled type directly.
    pub fn new(types: &Json, ty: &str) -> Result<VectorType, String> {
        let mut wrappers = Vec::new();
        let mut inner = ty.trim();
        while wrappers.len() < MAX_PEELED && nesting(inner) > PEEL_ABOVE {
            let Some(rest) = inner.strip_suffix('>') else {
                break;
            };
            if let Some(t) = rest.strip_prefix("list<") {
                wrappers.push(Type::List as fn(Box<Type>) -> Type);
                inner = t.trim();
            } else if let Some(t) = rest.strip_prefix("optional<") {
                wrappers.push(Type::Optional);
                inner = t.trim();
            } else {
                break;
            }
        }
        let mut compiled = Self::compile(types, inner)?;
        for wrap in wrappers.into_iter().rev() {
            compiled.ty = wrap(Box::new(compiled.ty));
        }
        Ok(compiled)
    }

    fn compile(types: &Json, ty: &str) -> Result<VectorType, String> {
        let mut text = format!("package {PACKAGE};\n");
        if let Some(types) = types.as_object() {
            for (name, def) in types {
                schema_text(&mut text, name, def)?;
            }
        } else if !types.is_null() {
            return Err(format!("`types` is not an object: {types}"));
        }
        let _ = writeln!(text, "message {HOLDER} {{ value: {ty} = 1; }}");
        let schema = isml_schema::load_str("vectors.isml", &text)
            .map_err(|d| format!("the vector's types do not compile:\n{d}\n{text}"))?;
        let holder = schema
            .lookup(&format!("{PACKAGE}.{HOLDER}"))
            .ok_or("the holder message is missing")?;
        let ty = match schema.get(holder).map(|d| &d.kind) {
            Some(TypeDefKind::Message(m)) if m.fields.len() == 1 => m.fields[0].ty.clone(),
            _ => return Err("the holder message has no field".into()),
        };
        Ok(VectorType { schema, ty })
    }

    /// The compiled schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The compiled type expression.
    pub fn ty(&self) -> &Type {
        &self.ty
    }

    /// The definition the type names, if it is a named type.
    pub fn named(&self) -> Option<TypeId> {
        match self.ty {
            Type::Named(id) => Some(id),
            _ => None,
        }
    }

    /// The value of JSON `json` (the JSON mapping of the schema language).
    pub fn value(&self, json: &Json) -> Result<Value<'_>, String> {
        dynamic::value_from_json(&self.schema, json, &self.ty).map_err(|e| e.to_string())
    }

    /// The message or union the type names, if it does: its values are
    /// written as frame payloads (a message body, a union encoding).
    fn payload_type(&self) -> Option<Descriptor<'_>> {
        let Type::Named(id) = self.ty else {
            return None;
        };
        let d = Descriptor::new(&self.schema, id)?;
        (!matches!(d.def().kind, TypeDefKind::Enum(_))).then_some(d)
    }

    /// Encodes JSON `json`: as a payload for a message or union, in the
    /// element form (wire format §5.3) for any other type.
    pub fn encode(&self, json: &Json) -> Result<Vec<u8>, String> {
        let v = self.value(json)?;
        match self.payload_type() {
            Some(_) => v.encode(),
            None => dynamic::encode_element(&self.schema, &v, &self.ty),
        }
        .map_err(|e| e.to_string())
    }

    /// Decodes what [`VectorType::encode`] writes, which must fill `bytes`.
    pub fn decode(&self, bytes: &[u8]) -> Result<Value<'_>, DecodeError> {
        match self.payload_type() {
            Some(d) => dynamic::decode(d, bytes),
            None => dynamic::decode_element(&self.schema, bytes, &self.ty),
        }
    }

    /// A value as JSON text.
    pub fn json(&self, v: &Value<'_>) -> String {
        dynamic::value_to_json_string(&self.schema, v, &self.ty, false)
    }
}

/// Appends the `.isml` definition of `name` described by `def`.
fn schema_text(out: &mut String, name: &str, def: &Json) -> Result<(), String> {
    let id = |d: &Json| match d.get("id") {
        None | Some(Json::Null) => Ok(String::new()),
        Some(v) => v
            .as_u64()
            .map(|id| format!(" [id = {id}]"))
            .ok_or_else(|| format!("`{name}`: bad id {v}")),
    };
    if let Some(m) = def.get("message") {
        let _ = writeln!(out, "message {name}{} {{", id(m)?);
        for f in list(m, "fields", name)? {
            let mut attrs = Vec::new();
            if let Some(n) = f.get("max_len").and_then(Json::as_u64) {
                attrs.push(format!("max_len = {n}"));
            }
            if let Some(r) = f.get("range").and_then(Json::as_array) {
                let bound = |i: usize| r.get(i).and_then(Json::as_i64);
                let (Some(lo), Some(hi)) = (bound(0), bound(1)) else {
                    return Err(format!("`{name}`: bad range {r:?}"));
                };
                attrs.push(format!("range = {lo}..={hi}"));
            }
            let attrs = if attrs.is_empty() {
                String::new()
            } else {
                format!(" [{}]", attrs.join(", "))
            };
            let (fname, tag, ty) = member(f, name)?;
            let _ = writeln!(out, "    {fname}: {ty} = {tag}{attrs};");
        }
        out.push_str("}\n");
    } else if let Some(u) = def.get("union") {
        let _ = writeln!(out, "union {name}{} {{", id(u)?);
        for v in list(u, "variants", name)? {
            let (vname, tag, ty) = member(v, name)?;
            let _ = writeln!(out, "    {vname}: {ty} = {tag};");
        }
        out.push_str("}\n");
    } else if let Some(e) = def.get("enum").and_then(Json::as_object) {
        let _ = writeln!(out, "enum {name} {{");
        for (vname, value) in e {
            let value = value
                .as_u64()
                .ok_or_else(|| format!("`{name}.{vname}`: bad value {value}"))?;
            let _ = writeln!(out, "    {vname} = {value};");
        }
        out.push_str("}\n");
    } else {
        return Err(format!("`{name}` is not a message, union or enum: {def}"));
    }
    Ok(())
}

fn list<'a>(def: &'a Json, key: &str, owner: &str) -> Result<&'a Vec<Json>, String> {
    def.get(key)
        .and_then(Json::as_array)
        .ok_or_else(|| format!("`{owner}` has no `{key}` array"))
}

fn member<'a>(m: &'a Json, owner: &str) -> Result<(&'a str, u64, &'a str), String> {
    let name = m.get("name").and_then(Json::as_str);
    let tag = m.get("tag").and_then(Json::as_u64);
    let ty = m.get("type").and_then(Json::as_str);
    match (name, tag, ty) {
        (Some(n), Some(t), Some(ty)) => Ok((n, t, ty)),
        _ => Err(format!(
            "`{owner}`: a member needs a name, a tag and a type: {m}"
        )),
    }
}

/// An `f32` from its JSON mapping (a number, or `"NaN"`, `"Infinity"`,
/// `"-Infinity"`).
pub fn json_f32(v: &Json) -> Result<f32, String> {
    match dynamic::value_from_json(&Schema::default(), v, &Type::F32) {
        Ok(Value::F32(x)) => Ok(x),
        Ok(other) => Err(format!("not an f32: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

/// An `f64` from its JSON mapping.
pub fn json_f64(v: &Json) -> Result<f64, String> {
    match dynamic::value_from_json(&Schema::default(), v, &Type::F64) {
        Ok(Value::F64(x)) => Ok(x),
        Ok(other) => Err(format!("not an f64: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}
