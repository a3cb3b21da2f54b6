//! The dynamic codec of `isml_schema::dynamic` against generated code: the
//! same values give the same bytes, in both directions, for every top-level
//! type of every schema this crate compiles, and the wire-format test vectors
//! (group `value`) hold for the dynamic codec too.

mod strategies;

use strategies::{choice, containers, expr, node, scalars};

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use isml_codegen_tests::alltypes::{Choice, Containers, Expr};
use isml_runtime::Message;
use isml_schema::dynamic::{
    self, Descriptor, DynamicMessage, DynamicUnion, MapKey, MessageFactory, UnionValue, Value,
};
use isml_schema::{FieldDef, LoadOptions, Schema, Type, TypeDefKind};
use proptest::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads one compiled set, leaked so that dynamic values can be `'static` in strategies.
fn load(file: &str) -> &'static Schema {
    let options = LoadOptions::new([root().join(file)]).include_dir(root().join("../../schemas"));
    let schema = isml_schema::load(&options).unwrap_or_else(|d| panic!("{}", d.render()));
    Box::leak(Box::new(schema))
}

fn schemas() -> Vec<&'static Schema> {
    vec![
        load("../../schemas/charging.isml"),
        load("schemas/alltypes.isml"),
        load("schemas/evo_v1.isml"),
        load("schemas/evo_v2.isml"),
    ]
}

/// Decodes with generated code (through each package's dispatch table) and re-encodes.
fn generated_round_trip(package: &str, type_id: u32, payload: &[u8]) -> Vec<u8> {
    use isml_codegen_tests::{alltypes, charging, evo};
    let payload = Bytes::copy_from_slice(payload);
    let mut out = Vec::new();
    macro_rules! via {
        ($t:ty) => {{
            let m = <$t>::decode(type_id, payload).unwrap_or_else(|e| {
                panic!("generated code rejects dynamic bytes of {package} #{type_id}: {e}")
            });
            m.encode(&mut out).expect("decoded value re-encodes");
        }};
    }
    match package {
        "alltypes" => via!(alltypes::AnyMessage),
        "charging.v1" => via!(charging::v1::AnyMessage),
        "evo.v1" => via!(evo::v1::AnyMessage),
        "evo.v2" => via!(evo::v2::AnyMessage),
        other => panic!("no dispatch table for package {other}"),
    }
    out
}

// ---------------------------------------------------------------------------
// Random dynamic values driven by the IR
// ---------------------------------------------------------------------------

/// A small deterministic generator (splitmix64) seeded by proptest.
struct Gen {
    state: u64,
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn int(&mut self, lo: i128, hi: i128) -> i128 {
        match self.below(5) {
            0 => lo,
            1 => hi,
            2 => 0.clamp(lo, hi),
            _ => {
                let span = (hi - lo) as u128;
                let r = (u128::from(self.next()) << 64 | u128::from(self.next())) % (span + 1);
                lo + r as i128
            }
        }
    }

    fn float(&mut self, range: Option<(i128, i128)>, wide: bool) -> f64 {
        if let Some((lo, hi)) = range {
            let t = self.below(1001) as f64 / 1000.0;
            return lo as f64 + (hi - lo) as f64 * t;
        }
        match self.below(8) {
            0 => 0.0,
            1 => -0.0,
            2 => f64::NAN,
            3 => f64::INFINITY,
            4 => f64::NEG_INFINITY,
            5 => self.below(2000) as f64 / 8.0 - 125.0,
            _ => {
                let x = if wide {
                    f64::from_bits(self.next())
                } else {
                    f64::from(f32::from_bits(self.next() as u32))
                };
                if x.is_nan() { f64::NAN } else { x }
            }
        }
    }

    fn len(&mut self, max_len: Option<u64>, depth: u32, cap: u64) -> usize {
        if depth > 4 {
            return 0;
        }
        self.below(max_len.unwrap_or(cap).min(cap) + 1) as usize
    }

    fn string(&mut self, max_bytes: Option<u64>) -> String {
        const CHARS: [&str; 8] = ["a", "Z", "0", " ", "é", "😀", "\"", "\n"];
        let n = self.below(7);
        let mut s = String::new();
        for _ in 0..n {
            let c = CHARS[self.below(CHARS.len() as u64) as usize];
            if max_bytes.is_some_and(|m| (s.len() + c.len()) as u64 > m) {
                break;
            }
            s.push_str(c);
        }
        s
    }

    fn value(
        &mut self,
        schema: &'static Schema,
        ty: &Type,
        field: Option<&FieldDef>,
        depth: u32,
    ) -> Value<'static> {
        let range = field.and_then(|f| f.range);
        let max_len = field.and_then(|f| f.max_len);
        match ty {
            Type::Bool => Value::Bool(self.below(2) == 1),
            t if t.is_integer() => {
                let (mut lo, mut hi) = t.integer_bounds().unwrap();
                if let Some((a, b)) = range {
                    lo = lo.max(a);
                    hi = hi.min(b);
                }
                let v = self.int(lo, hi);
                match t {
                    Type::U8 => Value::U8(v as u8),
                    Type::U16 => Value::U16(v as u16),
                    Type::U32 => Value::U32(v as u32),
                    Type::U64 => Value::U64(v as u64),
                    Type::I8 => Value::I8(v as i8),
                    Type::I16 => Value::I16(v as i16),
                    Type::I32 => Value::I32(v as i32),
                    _ => Value::I64(v as i64),
                }
            }
            Type::F32 => Value::F32(self.float(range, false) as f32),
            Type::F64 => Value::F64(self.float(range, true)),
            Type::String => Value::String(self.string(max_len)),
            Type::Bytes => {
                let n = self.len(max_len, 0, 8);
                Value::Bytes((0..n).map(|_| self.next() as u8).collect())
            }
            Type::Optional(t) => {
                if depth > 4 || self.below(3) == 0 {
                    Value::Optional(None)
                } else {
                    Value::Optional(Some(Box::new(self.value(schema, t, field, depth + 1))))
                }
            }
            Type::List(t) => {
                let n = self.len(max_len, depth, 4);
                Value::List(
                    (0..n)
                        .map(|_| self.value(schema, t, None, depth + 1))
                        .collect(),
                )
            }
            Type::Array(t, n) => Value::Array(
                (0..*n)
                    .map(|_| self.value(schema, t, None, depth + 1))
                    .collect(),
            ),
            Type::Map(k, v) => {
                let n = self.len(max_len, depth, 3);
                let mut map = BTreeMap::new();
                for _ in 0..n {
                    let key = match self.value(schema, k, None, depth + 1) {
                        Value::Bool(b) => MapKey::Bool(b),
                        Value::String(s) => MapKey::String(s),
                        other => MapKey::Int(
                            other
                                .as_u64()
                                .map(i128::from)
                                .or(other.as_i64().map(i128::from))
                                .unwrap(),
                        ),
                    };
                    map.insert(key, self.value(schema, v, None, depth + 1));
                }
                Value::Map(map)
            }
            Type::Named(id) => {
                let desc = Descriptor::new(schema, *id).unwrap();
                match &desc.def().kind {
                    TypeDefKind::Enum(e) => {
                        if self.below(6) == 0 {
                            Value::Enum(self.next() as u32)
                        } else {
                            Value::Enum(
                                e.variants[self.below(e.variants.len() as u64) as usize].value,
                            )
                        }
                    }
                    TypeDefKind::Message(m) => {
                        let mut msg = DynamicMessage::new(desc).unwrap();
                        for f in &m.fields {
                            let v = self.value(schema, &f.ty, Some(f), depth + 1);
                            msg.set(&f.name, v).unwrap();
                        }
                        Value::Message(msg)
                    }
                    TypeDefKind::Union(u) => {
                        if depth > 4 {
                            // The shallowest variant keeps recursive unions finite.
                            let v = u
                                .variants
                                .iter()
                                .find(|v| !matches!(v.ty, Type::Named(_)))
                                .unwrap_or(&u.variants[0]);
                            let val = dynamic::default_value(schema, &v.ty);
                            return Value::Union(DynamicUnion::new(desc, &v.name, val).unwrap());
                        }
                        let v = &u.variants[self.below(u.variants.len() as u64) as usize];
                        let val = self.value(schema, &v.ty, None, depth + 1);
                        Value::Union(DynamicUnion::new(desc, &v.name, val).unwrap())
                    }
                }
            }
            other => unreachable!("{other:?}"),
        }
    }
}

/// Every top-level type of every schema: a random value encoded by the
/// dynamic codec is what generated code produces for the same value.
fn check_seed(seed: u64) {
    for schema in schemas() {
        for (id, def) in schema.types_iter() {
            let Some(type_id) = def.message_id() else {
                continue;
            };
            let mut g = Gen {
                state: seed ^ u64::from(type_id),
            };
            let v = g.value(schema, &Type::Named(id), None, 0);
            let bytes = v
                .encode()
                .unwrap_or_else(|e| panic!("{}: {e}", def.full_name()));
            let regenerated = generated_round_trip(&def.package, type_id, &bytes);
            assert_eq!(
                regenerated,
                bytes,
                "{} encodes like generated code",
                def.full_name()
            );
            let desc = Descriptor::new(schema, id).unwrap();
            let back = dynamic::decode(desc, &bytes).unwrap();
            assert_eq!(back, v, "{} decodes back", def.full_name());
            let json = v.to_json_string(false);
            let from = dynamic::from_json_str(desc, &json)
                .unwrap_or_else(|e| panic!("{}: {e}\n{json}", def.full_name()));
            assert_eq!(from, v, "{} survives JSON: {json}", def.full_name());
            let pretty = dynamic::from_json_str(desc, &v.to_json_string(true)).unwrap();
            assert_eq!(pretty, v);
        }
    }
}

// ---------------------------------------------------------------------------
// Values made by generated code
// ---------------------------------------------------------------------------

fn check_generated<M: Message>(value: &M) {
    let schema = alltypes_schema();
    let bytes = value.encode_to_vec().expect("generated value encodes");
    let dynamic = MessageFactory::new(schema)
        .decode(M::NAME, &bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", M::NAME));
    assert_eq!(
        dynamic.encode().unwrap(),
        bytes,
        "{} re-encodes identically",
        M::NAME
    );
}

fn alltypes_schema() -> &'static Schema {
    use std::sync::OnceLock;
    static S: OnceLock<&'static Schema> = OnceLock::new();
    S.get_or_init(|| load("schemas/alltypes.isml"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn dynamic_values_encode_like_generated_code(seed in any::<u64>()) {
        check_seed(seed);
    }

    #[test]
    fn generated_scalars_decode_dynamically(v in scalars()) {
        check_generated(&v);
    }

    #[test]
    fn generated_containers_decode_dynamically(v in containers()) {
        check_generated(&v);
    }

    #[test]
    fn generated_unions_decode_dynamically(v in choice()) {
        check_generated(&v);
    }

    #[test]
    fn generated_recursive_types_decode_dynamically(n in node(), e in expr()) {
        check_generated(&n);
        check_generated(&e);
    }

    #[test]
    fn arbitrary_bytes_are_accepted_or_rejected_alike(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        let schema = alltypes_schema();
        let f = MessageFactory::new(schema);
        let generated = Containers::decode_slice(&bytes).map(|m| m.encode_to_vec().unwrap());
        let dynamic = f.decode("alltypes.Containers", &bytes).map(|v| v.encode().unwrap());
        prop_assert_eq!(generated.ok(), dynamic.ok());
        let generated = Expr::decode_slice(&bytes).map(|m| m.encode_to_vec().unwrap());
        let dynamic = f.decode("alltypes.Expr", &bytes).map(|v| v.encode().unwrap());
        prop_assert_eq!(generated.ok(), dynamic.ok());
    }
}

#[test]
fn unknown_union_variants_are_kept() {
    let schema = alltypes_schema();
    let desc = MessageFactory::new(schema).find("Choice").unwrap();
    // Tag 9 (unknown), class 1, varint 5.
    let v = dynamic::decode(desc, &[9 << 2 | 1, 5]).unwrap();
    let Value::Union(u) = &v else { panic!() };
    assert_eq!(
        u.value(),
        &UnionValue::Unknown {
            tag: 9,
            class: 1,
            bytes: vec![5]
        }
    );
    assert_eq!(v.encode().unwrap(), [9 << 2 | 1, 5]);
    let json = v.to_json_string(false);
    assert_eq!(json, r#"{"9":{"class":1,"bytes":"BQ=="}}"#);
    assert_eq!(dynamic::from_json_str(desc, &json).unwrap(), v);
    let generated = Choice::decode_slice(&[9 << 2 | 1, 5]).unwrap();
    assert_eq!(generated.encode_to_vec().unwrap(), [9 << 2 | 1, 5]);
}

#[test]
fn attribute_violations_name_the_field_path() {
    let schema = load("../../schemas/charging.isml");
    let f = MessageFactory::new(schema);
    let json = r#"{"slots": [{}, {}, {"battery": {"soc_percent": 101}}]}"#;
    let v = f.message_from_json_str("StatusReport", json).unwrap();
    let e = v.encode().unwrap_err();
    assert_eq!(
        e.path(),
        "charging.v1.StatusReport.slots[2].battery.soc_percent"
    );
    assert_eq!(
        e.to_string(),
        "`charging.v1.StatusReport.slots[2].battery.soc_percent`: value 101 is outside range 0..=100"
    );
    let e = f
        .message_from_json_str(
            "StatusReport",
            r#"{"slots": [{}, {}, {"battery": {"soc_percent": 300}}]}"#,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "`charging.v1.StatusReport.slots[2].battery.soc_percent`: number 300 is out of range for `u8` (0..=255)"
    );
}

// ---------------------------------------------------------------------------
// Wire-format test vectors
// ---------------------------------------------------------------------------

/// Parses a type written in schema syntax.
fn parse_type(schema: &Schema, s: &str) -> Type {
    let s = s.trim();
    let generic = |name: &str| {
        s.strip_prefix(name)
            .and_then(|r| r.strip_prefix('<'))
            .and_then(|r| r.strip_suffix('>'))
    };
    // Splits `A, B` at the top-level comma.
    let split = |inner: &str| {
        let mut depth = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '<' => depth += 1,
                '>' => depth -= 1,
                ',' if depth == 0 => return (inner[..i].to_string(), inner[i + 1..].to_string()),
                _ => {}
            }
        }
        panic!("no comma in {inner}")
    };
    if let Some(inner) = generic("optional") {
        Type::Optional(Box::new(parse_type(schema, inner)))
    } else if let Some(inner) = generic("list") {
        Type::List(Box::new(parse_type(schema, inner)))
    } else if let Some(inner) = generic("map") {
        let (k, v) = split(inner);
        Type::Map(
            Box::new(parse_type(schema, &k)),
            Box::new(parse_type(schema, &v)),
        )
    } else if let Some(inner) = generic("array") {
        let (t, n) = split(inner);
        Type::Array(Box::new(parse_type(schema, &t)), n.trim().parse().unwrap())
    } else if let Some(t) = Type::scalar(s) {
        t
    } else {
        Type::Named(
            schema
                .lookup(&format!("v.{s}"))
                .unwrap_or_else(|| panic!("type {s}")),
        )
    }
}

/// Writes the vector's `types` as a schema file.
fn schema_text(types: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::from("package v;\n");
    let id = |d: &serde_json::Value| match d["id"].as_u64() {
        Some(i) => format!(" [id = {i}]"),
        None => String::new(),
    };
    for (name, def) in types {
        if let Some(e) = def.get("enum") {
            out.push_str(&format!("enum {name} {{\n"));
            for (v, n) in e.as_object().unwrap() {
                out.push_str(&format!("  {v} = {n};\n"));
            }
        } else if let Some(m) = def.get("message") {
            out.push_str(&format!("message {name}{} {{\n", id(m)));
            for f in m["fields"].as_array().unwrap() {
                let mut attrs = Vec::new();
                if let Some(n) = f.get("max_len").and_then(|v| v.as_u64()) {
                    attrs.push(format!("max_len = {n}"));
                }
                if let Some(r) = f.get("range").and_then(|v| v.as_array()) {
                    attrs.push(format!("range = {}..={}", r[0], r[1]));
                }
                let attrs = if attrs.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", attrs.join(", "))
                };
                out.push_str(&format!(
                    "  {}: {} = {}{attrs};\n",
                    f["name"].as_str().unwrap(),
                    f["type"].as_str().unwrap(),
                    f["tag"]
                ));
            }
        } else if let Some(u) = def.get("union") {
            out.push_str(&format!("union {name}{} {{\n", id(u)));
            for v in u["variants"].as_array().unwrap() {
                out.push_str(&format!(
                    "  {}: {} = {};\n",
                    v["name"].as_str().unwrap(),
                    v["type"].as_str().unwrap(),
                    v["tag"]
                ));
            }
        }
        out.push_str("}\n");
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn wire_vectors_of_the_value_group_hold_for_the_dynamic_codec() {
    let text = std::fs::read_to_string(root().join("../vectors/wire-v1.json")).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for v in file["vectors"].as_array().unwrap() {
        if v["group"] != "value" {
            continue;
        }
        let what = v["description"].as_str().unwrap();
        let src = schema_text(v["types"].as_object().unwrap());
        let schema = isml_schema::load_str("vector.isml", &src)
            .unwrap_or_else(|d| panic!("{what}: {}\n{src}", d.render()));
        let ty = parse_type(&schema, v["type"].as_str().unwrap());
        let bytes = unhex(v["hex"].as_str().unwrap());
        let top = match &ty {
            Type::Named(id) if !matches!(schema.types[id.index()].kind, TypeDefKind::Enum(_)) => {
                Some(Descriptor::new(&schema, *id).unwrap())
            }
            _ => None,
        };
        let decoded = match top {
            Some(d) => dynamic::decode(d, &bytes),
            None => dynamic::decode_element(&schema, &bytes, &ty),
        };
        let encode = |value: &Value<'_>| match top {
            Some(_) => value.encode(),
            None => dynamic::encode_element(&schema, value, &ty),
        };
        if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
            let e = decoded.expect_err(what);
            assert_eq!(e.kind().name(), err, "{what}: {e}");
        } else {
            let decoded = decoded.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                hex(&encode(&decoded).unwrap()),
                v["hex"],
                "{what}: re-encoding"
            );
            let from = dynamic::value_from_json(&schema, &v["value"], &ty)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(
                hex(&encode(&from).unwrap()),
                v["hex"],
                "{what}: encoding the JSON value"
            );
            let written = dynamic::value_to_json_string(&schema, &decoded, &ty, false);
            let json: serde_json::Value = serde_json::from_str(&written).unwrap();
            let again = dynamic::value_from_json(&schema, &json, &ty).unwrap();
            assert_eq!(
                hex(&encode(&again).unwrap()),
                v["hex"],
                "{what}: through JSON output {written}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 150, "every value vector was checked");
}

/// The dynamic encoder refuses nesting the decoders refuse (wire format §7),
/// at the same level as generated code: a `Node` with 32 nodes below it
/// encodes, one with 33 does not.
#[test]
fn dynamic_encoder_enforces_the_nesting_limit() {
    use isml_codegen_tests::alltypes::Node;
    let schema = alltypes_schema();
    let factory = MessageFactory::new(schema);
    let chain = |n: usize| {
        let mut node = factory.new_message("Node").unwrap();
        node.set("value", 1i32).unwrap();
        for _ in 0..n {
            let mut outer = factory.new_message("Node").unwrap();
            outer.set("value", 1i32).unwrap();
            outer
                .set(
                    "left",
                    Value::Optional(Some(Box::new(Value::Message(node)))),
                )
                .unwrap();
            node = outer;
        }
        node
    };
    let generated = |n: usize| {
        let mut node = Node {
            value: 1,
            ..Node::default()
        };
        for _ in 0..n {
            node = Node {
                value: 1,
                left: Some(Box::new(node)),
                ..Node::default()
            };
        }
        node
    };
    let ok = chain(32).encode().expect("32 levels encode");
    assert_eq!(ok, generated(32).encode_to_vec().unwrap());
    assert!(dynamic::decode(chain(32).descriptor(), &ok).is_ok());
    let err = chain(33).encode().unwrap_err();
    assert!(err.reason().contains("deeper than 32 levels"), "{err}");
    assert!(generated(33).encode_to_vec().is_err());
}
