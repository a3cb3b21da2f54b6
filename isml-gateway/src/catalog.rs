//! The loaded schemas as the gateway serves them: services, methods and
//! channels by name, the raw call descriptors, JSON to and from payloads
//! through the dynamic messages, example values and JSON Schemas.

use std::collections::BTreeMap;

use bytes::Bytes;
use isml_runtime::rpc::{MethodKind, RawMethod};
use isml_schema::Schema;
use isml_schema::dynamic::{self, Descriptor};
use isml_schema::ir::{ChannelDef, MethodDef, ServiceDef, Type, TypeDefKind, TypeId};
use serde_json::{Map, Value as Json, json};

use crate::error::ApiError;

/// How deep example values nest before recursive types are cut short.
const EXAMPLE_DEPTH: usize = 8;

/// One method of a service.
pub(crate) struct MethodEntry {
    pub(crate) def: &'static MethodDef,
    pub(crate) raw: RawMethod,
    pub(crate) request: Descriptor<'static>,
    pub(crate) response: Option<Descriptor<'static>>,
}

impl MethodEntry {
    pub(crate) fn name(&self) -> &'static str {
        &self.def.name
    }
}

/// One service.
pub(crate) struct ServiceEntry {
    pub(crate) def: &'static ServiceDef,
    pub(crate) full_name: &'static str,
    pub(crate) methods: Vec<MethodEntry>,
}

/// One channel.
pub(crate) struct ChannelEntry {
    pub(crate) def: &'static ChannelDef,
    pub(crate) full_name: String,
    pub(crate) ty: Descriptor<'static>,
}

/// The schemas, indexed.
pub(crate) struct Catalog {
    pub(crate) schema: &'static Schema,
    pub(crate) services: Vec<ServiceEntry>,
    pub(crate) channels: Vec<ChannelEntry>,
}

fn qualify(package: &str, name: &str) -> String {
    if package.is_empty() {
        name.to_owned()
    } else {
        format!("{package}.{name}")
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

pub(crate) fn method_kind(m: &MethodDef) -> MethodKind {
    match (m.response.is_some(), m.client_streaming, m.server_streaming) {
        (false, _, _) => MethodKind::OneWay,
        (true, false, false) => MethodKind::Unary,
        (true, false, true) => MethodKind::ServerStreaming,
        (true, true, false) => MethodKind::ClientStreaming,
        (true, true, true) => MethodKind::Bidirectional,
    }
}

pub(crate) fn kind_name(k: MethodKind) -> &'static str {
    match k {
        MethodKind::OneWay => "one_way",
        MethodKind::Unary => "unary",
        MethodKind::ServerStreaming => "server_streaming",
        MethodKind::ClientStreaming => "client_streaming",
        MethodKind::Bidirectional => "bidirectional",
        _ => "unknown",
    }
}

impl Catalog {
    /// Indexes `schema`. The method names are leaked once here (the
    /// runtime's call errors carry `'static` names).
    pub(crate) fn new(schema: &'static Schema) -> Catalog {
        let mut services = Vec::new();
        for def in &schema.services {
            let full_name = leak(def.full_name());
            let mut methods = Vec::new();
            for m in &def.methods {
                let (Some(request), response) = (
                    Descriptor::new(schema, m.request),
                    m.response.and_then(|r| Descriptor::new(schema, r)),
                ) else {
                    continue;
                };
                let (Some(request_type), response_type) =
                    (request.type_id(), response.and_then(|r| r.type_id()))
                else {
                    continue;
                };
                methods.push(MethodEntry {
                    def: m,
                    raw: RawMethod {
                        service: full_name,
                        full_name: leak(format!("{full_name}/{}", m.name)),
                        id: m.id,
                        kind: method_kind(m),
                        fingerprint: m.fingerprint(schema),
                        request_type,
                        response_type,
                    },
                    request,
                    response,
                });
            }
            services.push(ServiceEntry {
                def,
                full_name,
                methods,
            });
        }
        let channels = schema
            .channels
            .iter()
            .filter_map(|c| {
                Some(ChannelEntry {
                    def: c,
                    full_name: qualify(&c.package, &c.name),
                    ty: Descriptor::new(schema, c.ty)?,
                })
            })
            .collect();
        Catalog {
            schema,
            services,
            channels,
        }
    }

    /// A service by full name, or by simple name when only one package has it.
    pub(crate) fn service(&self, name: &str) -> Result<&ServiceEntry, ApiError> {
        if let Some(s) = self.services.iter().find(|s| s.full_name == name) {
            return Ok(s);
        }
        let simple: Vec<&ServiceEntry> = self
            .services
            .iter()
            .filter(|s| s.def.name == name)
            .collect();
        match simple.as_slice() {
            [one] => Ok(one),
            [] => Err(ApiError::not_found(format!(
                "no service `{name}`; the schemas declare: {}",
                names(self.services.iter().map(|s| s.full_name))
            ))),
            many => Err(ApiError::bad_request(format!(
                "service `{name}` is ambiguous: {}",
                names(many.iter().map(|s| s.full_name))
            ))),
        }
    }

    /// A method of a service by name or numeric id.
    pub(crate) fn method<'c>(
        &'c self,
        service: &'c ServiceEntry,
        name: &str,
    ) -> Result<&'c MethodEntry, ApiError> {
        service
            .methods
            .iter()
            .find(|m| m.name() == name || name.parse::<u32>().is_ok_and(|id| id == m.def.id))
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "service `{}` has no method `{name}`; its methods: {}",
                    service.full_name,
                    names(service.methods.iter().map(MethodEntry::name))
                ))
            })
    }

    /// A channel by full name, simple name (when unique) or numeric id.
    pub(crate) fn channel(&self, name: &str) -> Result<&ChannelEntry, ApiError> {
        if let Some(c) = self.channels.iter().find(|c| c.full_name == name) {
            return Ok(c);
        }
        if let Ok(id) = name.parse::<u32>()
            && let Some(c) = self.channel_by_id(id)
        {
            return Ok(c);
        }
        let simple: Vec<&ChannelEntry> = self
            .channels
            .iter()
            .filter(|c| c.def.name == name)
            .collect();
        match simple.as_slice() {
            [one] => Ok(one),
            [] => Err(ApiError::not_found(format!(
                "no channel `{name}`; the schemas declare: {}",
                names(self.channels.iter().map(|c| c.full_name.as_str()))
            ))),
            many => Err(ApiError::bad_request(format!(
                "channel `{name}` is ambiguous: {}",
                names(many.iter().map(|c| c.full_name.as_str()))
            ))),
        }
    }

    pub(crate) fn channel_by_id(&self, id: u32) -> Option<&ChannelEntry> {
        self.channels.iter().find(|c| c.def.id == id)
    }

    /// The type names of the schema's `full_name`s, for `$ref`s.
    pub(crate) fn type_name(&self, id: TypeId) -> String {
        self.schema
            .get(id)
            .map_or_else(|| format!("type{}", id.0), |t| t.full_name())
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(", ")
    }
}

/// A payload as JSON (the schema language's JSON mapping).
pub(crate) fn to_json(desc: Descriptor<'static>, payload: &[u8]) -> Result<Json, ApiError> {
    dynamic::decode(desc, payload)
        .map(|v| v.to_json())
        .map_err(|e| {
            ApiError::bad_gateway(format!(
                "cannot decode {} from the device: {e}",
                desc.full_name()
            ))
        })
}

/// A payload from JSON; a mistake is a 400 naming the field.
pub(crate) fn from_json(desc: Descriptor<'static>, json: &Json) -> Result<Bytes, ApiError> {
    let value = dynamic::from_json(desc, json).map_err(ApiError::json)?;
    value
        .encode()
        .map(Bytes::from)
        .map_err(|e| ApiError::bad_request(format!("cannot encode {}: {e}", desc.full_name())))
}

/// Parses a JSON body (empty means `{}`); a syntax error is a 400 with the
/// line and column.
pub(crate) fn parse_body(body: &[u8]) -> Result<Json, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Json::Object(Map::new()));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("the body is not valid JSON: {e}"))
            .with_position(e.line(), e.column())
    })
}

// ---------------------------------------------------------------------------
// Example values (the dashboard's forms are prefilled with these)
// ---------------------------------------------------------------------------

/// A valid value of a message or union: every field at its default, numbers
/// moved into their declared ranges, enums at their first variant, unions
/// at their first variant, optional fields left out.
pub(crate) fn example(desc: Descriptor<'static>) -> Json {
    example_named(desc.schema(), desc.id(), 0)
}

fn example_named(schema: &Schema, id: TypeId, depth: usize) -> Json {
    let Some(def) = schema.get(id) else {
        return Json::Null;
    };
    match &def.kind {
        TypeDefKind::Enum(e) => e
            .variants
            .first()
            .map_or(json!(0), |v| Json::String(v.name.clone())),
        TypeDefKind::Message(m) => {
            let mut obj = Map::new();
            for f in &m.fields {
                if matches!(f.ty, Type::Optional(_)) {
                    continue;
                }
                obj.insert(
                    f.name.clone(),
                    example_type(schema, &f.ty, f.range, depth + 1),
                );
            }
            Json::Object(obj)
        }
        TypeDefKind::Union(u) => match u.variants.first() {
            Some(v) if depth < EXAMPLE_DEPTH => {
                json!({ v.name.clone(): example_type(schema, &v.ty, None, depth + 1) })
            }
            _ => Json::Object(Map::new()),
        },
    }
}

fn example_type(schema: &Schema, ty: &Type, range: Option<(i128, i128)>, depth: usize) -> Json {
    let int = || {
        let lo = range.map_or(0, |r| r.0);
        let hi = range.map_or(0, |r| r.1);
        let v = 0i128.clamp(lo, hi.max(lo));
        json!(v as i64)
    };
    match ty {
        Type::Bool => json!(false),
        Type::U8
        | Type::U16
        | Type::U32
        | Type::U64
        | Type::I8
        | Type::I16
        | Type::I32
        | Type::I64 => int(),
        Type::F32 | Type::F64 => {
            let lo = range.map_or(0.0, |r| r.0 as f64);
            let hi = range.map_or(0.0, |r| r.1 as f64);
            json!(0f64.clamp(lo, hi.max(lo)))
        }
        Type::String => json!(""),
        Type::Bytes => json!(""),
        Type::Optional(_) => Json::Null,
        Type::List(_) | Type::Map(..) if depth > EXAMPLE_DEPTH => Json::Null,
        Type::List(_) => json!([]),
        Type::Map(..) => json!({}),
        Type::Array(t, n) => Json::Array(
            (0..*n)
                .map(|_| example_type(schema, t, None, depth + 1))
                .collect(),
        ),
        Type::Named(id) if depth > EXAMPLE_DEPTH => match schema.get(*id).map(|d| &d.kind) {
            Some(TypeDefKind::Enum(_)) => example_named(schema, *id, depth),
            _ => json!({}),
        },
        Type::Named(id) => example_named(schema, *id, depth),
    }
}

// ---------------------------------------------------------------------------
// JSON Schemas (OpenAPI 3.1 is JSON Schema 2020-12)
// ---------------------------------------------------------------------------

/// The reference to a named type's schema in `#/components/schemas`.
pub(crate) fn schema_ref(catalog: &Catalog, id: TypeId) -> Json {
    json!({ "$ref": format!("#/components/schemas/{}", catalog.type_name(id)) })
}

fn docs(lines: &[String]) -> Option<String> {
    let text = lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// The JSON Schema of every named type, keyed by full name.
pub(crate) fn component_schemas(catalog: &Catalog) -> BTreeMap<String, Json> {
    let schema = catalog.schema;
    let mut out = BTreeMap::new();
    for (i, def) in schema.types.iter().enumerate() {
        let mut s = match &def.kind {
            TypeDefKind::Enum(e) => {
                let names: Vec<Json> = e.variants.iter().map(|v| json!(v.name)).collect();
                json!({
                    "oneOf": [
                        { "type": "string", "enum": names },
                        { "type": "integer", "minimum": 0, "maximum": u32::MAX,
                          "description": "the variant's number" }
                    ]
                })
            }
            TypeDefKind::Message(m) => {
                let mut props = Map::new();
                for f in &m.fields {
                    let mut p = type_schema(catalog, &f.ty, f.max_len, f.range);
                    if let Some(obj) = p.as_object_mut() {
                        let mut d = docs(&f.docs).unwrap_or_default();
                        if let Some(u) = &f.unit {
                            d = if d.is_empty() {
                                format!("unit: {u}")
                            } else {
                                format!("{d} (unit: {u})")
                            };
                        }
                        if !d.is_empty() {
                            obj.insert("description".into(), json!(d));
                        }
                        if f.deprecated {
                            obj.insert("deprecated".into(), json!(true));
                        }
                    }
                    props.insert(f.name.clone(), p);
                }
                json!({
                    "type": "object",
                    "properties": props,
                    "additionalProperties": false,
                })
            }
            TypeDefKind::Union(u) => {
                let variants: Vec<Json> = u
                    .variants
                    .iter()
                    .map(|v| {
                        json!({
                            "type": "object",
                            "properties": { v.name.clone(): type_schema(catalog, &v.ty, None, None) },
                            "required": [v.name],
                            "additionalProperties": false,
                        })
                    })
                    .collect();
                json!({ "oneOf": variants })
            }
        };
        if let (Some(obj), Some(d)) = (s.as_object_mut(), docs(&def.docs)) {
            obj.insert("description".into(), json!(d));
        }
        let _ = i;
        out.insert(def.full_name(), s);
    }
    out
}

fn type_schema(
    catalog: &Catalog,
    ty: &Type,
    max_len: Option<u64>,
    range: Option<(i128, i128)>,
) -> Json {
    let int = |lo: i128, hi: i128| {
        let (lo, hi) = range.map_or((lo, hi), |(a, b)| (a.max(lo), b.min(hi)));
        json!({ "type": "integer", "minimum": lo as i64, "maximum": hi.min(i64::MAX as i128) as i64 })
    };
    let float = || {
        let mut n = json!({ "type": "number" });
        if let (Some((lo, hi)), Some(obj)) = (range, n.as_object_mut()) {
            obj.insert("minimum".into(), json!(lo as f64));
            obj.insert("maximum".into(), json!(hi as f64));
        }
        json!({ "oneOf": [n, { "type": "string", "enum": ["NaN", "Infinity", "-Infinity"] }] })
    };
    let with_len = |mut s: Json, key: &str| {
        if let (Some(n), Some(obj)) = (max_len, s.as_object_mut()) {
            obj.insert(key.into(), json!(n));
        }
        s
    };
    match ty {
        Type::Bool => json!({ "type": "boolean" }),
        Type::U8 => int(0, u8::MAX.into()),
        Type::U16 => int(0, u16::MAX.into()),
        Type::U32 => int(0, u32::MAX.into()),
        Type::I8 => int(i8::MIN.into(), i8::MAX.into()),
        Type::I16 => int(i16::MIN.into(), i16::MAX.into()),
        Type::I32 => int(i32::MIN.into(), i32::MAX.into()),
        // 64-bit integers may be written as strings, for readers whose
        // numbers are doubles.
        Type::U64 => json!({ "oneOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": "^[0-9]+$" }
        ]}),
        Type::I64 => json!({ "oneOf": [
            { "type": "integer" },
            { "type": "string", "pattern": "^-?[0-9]+$" }
        ]}),
        Type::F32 | Type::F64 => float(),
        Type::String => with_len(json!({ "type": "string" }), "maxLength"),
        Type::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Type::Optional(t) => {
            json!({ "oneOf": [type_schema(catalog, t, max_len, range), { "type": "null" }] })
        }
        Type::List(t) => with_len(
            json!({ "type": "array", "items": type_schema(catalog, t, None, None) }),
            "maxItems",
        ),
        Type::Array(t, n) => json!({
            "type": "array",
            "items": type_schema(catalog, t, None, None),
            "minItems": n,
            "maxItems": n,
        }),
        Type::Map(_, v) => with_len(
            json!({ "type": "object", "additionalProperties": type_schema(catalog, v, None, None) }),
            "maxProperties",
        ),
        Type::Named(id) => schema_ref(catalog, *id),
    }
}

// ---------------------------------------------------------------------------
// Descriptors as JSON (`GET /api/schema`)
// ---------------------------------------------------------------------------

fn type_text(schema: &Schema, ty: &Type) -> String {
    ty.display(schema).to_string()
}

/// Every package, type, service and channel, with what a client needs to
/// build requests: fields with types, units, ranges and docs; methods with
/// ids, kinds, fingerprints and example requests.
pub(crate) fn describe(catalog: &Catalog) -> Json {
    let schema = catalog.schema;
    let types: Vec<Json> = schema
        .types
        .iter()
        .map(|def| {
            let mut t = Map::new();
            t.insert("name".into(), json!(def.full_name()));
            t.insert("type_id".into(), json!(def.message_id()));
            t.insert("docs".into(), json!(docs(&def.docs)));
            match &def.kind {
                TypeDefKind::Enum(e) => {
                    t.insert("kind".into(), json!("enum"));
                    t.insert(
                        "variants".into(),
                        e.variants
                            .iter()
                            .map(|v| json!({ "name": v.name, "value": v.value, "docs": docs(&v.docs) }))
                            .collect(),
                    );
                }
                TypeDefKind::Message(m) => {
                    t.insert("kind".into(), json!("message"));
                    t.insert(
                        "fields".into(),
                        m.fields
                            .iter()
                            .map(|f| {
                                json!({
                                    "name": f.name,
                                    "tag": f.tag,
                                    "type": type_text(schema, &f.ty),
                                    "optional": matches!(f.ty, Type::Optional(_)),
                                    "unit": f.unit,
                                    "max_len": f.max_len,
                                    "range": f.range.map(|(a, b)| json!([a as i64, b as i64])),
                                    "deprecated": f.deprecated,
                                    "docs": docs(&f.docs),
                                })
                            })
                            .collect(),
                    );
                }
                TypeDefKind::Union(u) => {
                    t.insert("kind".into(), json!("union"));
                    t.insert(
                        "variants".into(),
                        u.variants
                            .iter()
                            .map(|v| {
                                json!({
                                    "name": v.name,
                                    "tag": v.tag,
                                    "type": type_text(schema, &v.ty),
                                    "docs": docs(&v.docs),
                                })
                            })
                            .collect(),
                    );
                }
            }
            Json::Object(t)
        })
        .collect();
    let services: Vec<Json> = catalog
        .services
        .iter()
        .map(|s| {
            json!({
                "name": s.full_name,
                "docs": docs(&s.def.docs),
                "methods": s.methods.iter().map(|m| json!({
                    "name": m.name(),
                    "id": m.def.id,
                    "kind": kind_name(m.raw.kind),
                    "request": m.request.full_name(),
                    "response": m.response.map(|r| r.full_name()),
                    "fingerprint": format!("{:016x}", m.raw.fingerprint),
                    "docs": docs(&m.def.docs),
                    "example": example(m.request),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let channels: Vec<Json> = catalog
        .channels
        .iter()
        .map(|c| {
            json!({
                "name": c.full_name,
                "id": c.def.id,
                "type": c.ty.full_name(),
                "retain": c.def.retain,
                "keyed": c.def.keyed,
                "docs": docs(&c.def.docs),
                "example": example(c.ty),
            })
        })
        .collect();
    let packages: Vec<Json> = schema
        .packages
        .iter()
        .map(|(name, p)| json!({ "name": name, "docs": docs(&p.docs) }))
        .collect();
    json!({
        "packages": packages,
        "types": types,
        "services": services,
        "channels": channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charging() -> &'static Schema {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas");
        let options =
            isml_schema::LoadOptions::new([format!("{dir}/charging.isml")]).include_dir(dir);
        Box::leak(Box::new(
            isml_schema::load(&options).expect("charging.isml loads"),
        ))
    }

    /// The dashboard's forms are prefilled with these: each must be a
    /// request the gateway accepts as it is.
    #[test]
    fn every_example_is_a_valid_value() {
        let catalog = Catalog::new(charging());
        let mut checked = 0;
        for s in &catalog.services {
            for m in &s.methods {
                let ex = example(m.request);
                from_json(m.request, &ex).unwrap_or_else(|e| {
                    panic!("{}: {ex} is refused: {}", m.raw.full_name, e.message)
                });
                checked += 1;
            }
        }
        for c in &catalog.channels {
            let ex = example(c.ty);
            from_json(c.ty, &ex).unwrap_or_else(|e| panic!("{}: {}", c.full_name, e.message));
            checked += 1;
        }
        assert_eq!(checked, 8 + 3);
        let start = catalog.service("Charger").unwrap();
        let m = catalog.method(start, "start_charging").unwrap();
        assert_eq!(
            example(m.request),
            json!({ "slot": 0, "target_soc_percent": 1 })
        );
        let m = catalog.method(start, "5").unwrap();
        assert_eq!(m.name(), "execute");
        assert_eq!(
            example(m.request),
            json!({ "start": { "slot": 0, "target_soc_percent": 1 } })
        );
    }

    #[test]
    fn lookups_by_full_simple_and_numeric_names() {
        let catalog = Catalog::new(charging());
        assert_eq!(
            catalog.channel("telemetry").unwrap().full_name,
            "charging.v1.telemetry"
        );
        assert_eq!(
            catalog.channel("3").unwrap().full_name,
            "charging.v1.variables"
        );
        assert_eq!(catalog.channel("charging.v1.faults").unwrap().def.id, 2);
        let e = catalog.channel("nope").err().unwrap();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
        assert!(e.message.contains("charging.v1.telemetry"), "{}", e.message);
        let svc = catalog.service("charging.v1.Fleet").unwrap();
        assert_eq!(svc.methods.len(), 2);
        assert_eq!(
            catalog.method(svc, "upload_readings").unwrap().raw.kind,
            MethodKind::ClientStreaming
        );
        assert!(catalog.service("Nope").is_err());
    }

    #[test]
    fn json_errors_name_the_field() {
        let catalog = Catalog::new(charging());
        let svc = catalog.service("Charger").unwrap();
        let m = catalog.method(svc, "execute").unwrap();
        let e = from_json(m.request, &json!({ "start": { "slot": -1 } }))
            .err()
            .unwrap();
        assert_eq!(e.field.as_deref(), Some("charging.v1.Command.start.slot"));
        let e = parse_body(b"{\n\"a\": }").err().unwrap();
        assert_eq!(e.position, Some((2, 6)));
        assert_eq!(parse_body(b"  ").unwrap(), json!({}));
    }

    #[test]
    fn component_schemas_follow_the_json_mapping() {
        let catalog = Catalog::new(charging());
        let s = component_schemas(&catalog);
        let report = &s["charging.v1.StatusReport"];
        assert_eq!(report["additionalProperties"], false);
        assert_eq!(report["properties"]["station_id"]["maxLength"], 64);
        assert_eq!(
            report["properties"]["uptime_s"]["oneOf"][1]["type"],
            "string"
        );
        assert_eq!(report["properties"]["old_uptime"]["deprecated"], true);
        assert_eq!(report["properties"]["mac"]["minItems"], 6);
        assert_eq!(
            report["properties"]["firmware"]["oneOf"][1],
            json!({ "type": "null" })
        );
        assert_eq!(
            report["properties"]["slots"]["items"]["$ref"],
            "#/components/schemas/charging.v1.Slot"
        );
        assert_eq!(
            s["charging.v1.VariableValue"]["oneOf"]
                .as_array()
                .unwrap()
                .len(),
            5
        );
    }
}
