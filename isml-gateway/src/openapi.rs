//! `GET /api/openapi.json`: an OpenAPI 3.1 document generated from the
//! loaded schemas, with one path per method and per channel, and the JSON
//! Schemas of the messages under `components/schemas`.

use serde_json::{Map, Value as Json, json};

use crate::catalog::{self, Catalog, kind_name, schema_ref};
use isml_runtime::rpc::MethodKind;

fn error_responses() -> Json {
    let e = json!({ "$ref": "#/components/responses/Error" });
    json!({
        "400": e, "401": e, "403": e, "404": e, "408": e, "413": e,
        "429": e, "500": e, "501": e, "502": e, "503": e, "504": e,
    })
}

fn merge(mut a: Json, b: Json) -> Json {
    if let (Some(a), Json::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn device_param() -> Json {
    json!({
        "name": "device", "in": "path", "required": true,
        "description": "The device id of a connected session.",
        "schema": { "type": "string" }
    })
}

fn key_param(required: bool) -> Json {
    json!({
        "name": "key", "in": "query", "required": required,
        "description": "The key, on keyed channels.",
        "schema": { "type": "string" }
    })
}

fn op_id(parts: &[&str]) -> String {
    parts
        .join("_")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn json_body(schema: Json) -> Json {
    json!({ "application/json": { "schema": schema } })
}

fn method_paths(catalog: &Catalog, paths: &mut Map<String, Json>) {
    for s in &catalog.services {
        for m in &s.methods {
            let path = format!("/api/devices/{{device}}/rpc/{}/{}", s.full_name, m.name());
            let request = schema_ref(catalog, m.def.request);
            let response = m.def.response.map(|r| schema_ref(catalog, r));
            let ok = match (m.raw.kind, response) {
                (MethodKind::OneWay, _) => json!({ "202": {
                    "description": "The call was queued to the device (one-way: no answer).",
                    "content": json_body(json!({ "$ref": "#/components/schemas/Accepted" })),
                }}),
                (MethodKind::Unary, Some(r)) => json!({ "200": {
                    "description": "The device's answer.",
                    "content": json_body(r),
                }}),
                (MethodKind::ServerStreaming, Some(r)) => json!({ "200": {
                    "description": "The device's answers: Server-Sent Events (`item` events, then `end`, or `error`) when `Accept: text/event-stream`, else newline-delimited JSON (an error ends the stream as an `{\"error\": ...}` line).",
                    "content": {
                        "text/event-stream": { "schema": { "type": "string" } },
                        "application/x-ndjson": { "schema": { "type": "string" }, "x-item-schema": r },
                    },
                }}),
                _ => json!({ "501": {
                    "description": "Methods that stream requests are not served over HTTP.",
                    "content": json_body(json!({ "$ref": "#/components/schemas/Error" })),
                }}),
            };
            let mut desc = format!(
                "Calls `{}` ({}) on the device.",
                m.raw.full_name,
                kind_name(m.raw.kind)
            );
            if !m.def.docs.is_empty() {
                desc = format!("{} {desc}", m.def.docs.join(" ").trim());
            }
            let op = json!({
                "post": {
                    "operationId": op_id(&["call", s.full_name, m.name()]),
                    "summary": format!("{}.{}", s.def.name, m.name()),
                    "description": desc,
                    "tags": [s.full_name],
                    "parameters": [device_param(), {
                        "name": "X-Isml-Deadline-Ms", "in": "header", "required": false,
                        "description": "The call's deadline in milliseconds (at most the gateway's request timeout).",
                        "schema": { "type": "integer", "minimum": 1 }
                    }],
                    "requestBody": {
                        "required": false,
                        "content": {
                            "application/json": {
                                "schema": request,
                                "example": catalog::example(m.request),
                            }
                        }
                    },
                    "responses": merge(ok, error_responses()),
                }
            });
            paths.insert(path, op);
        }
    }
}

fn channel_paths(catalog: &Catalog, paths: &mut Map<String, Json>) {
    for c in &catalog.channels {
        let ty = schema_ref(catalog, c.def.ty);
        let tag = c.full_name.clone();
        let mut publish_params = vec![];
        if c.def.keyed {
            publish_params.push(key_param(true));
        }
        paths.insert(
            format!("/api/channels/{}", c.full_name),
            json!({
                "post": {
                    "operationId": op_id(&["publish", &c.full_name]),
                    "summary": format!("Publish on {}", c.full_name),
                    "tags": [tag],
                    "parameters": publish_params,
                    "requestBody": {
                        "required": true,
                        "content": {
                            "application/json": { "schema": ty, "example": catalog::example(c.ty) }
                        }
                    },
                    "responses": merge(json!({ "200": {
                        "description": "Accepted by the broker (`persisted` once on disk).",
                        "content": json_body(json!({ "$ref": "#/components/schemas/PublishAck" })),
                    }}), error_responses()),
                }
            }),
        );
        if c.def.retain {
            let mut value = json!({ "$ref": "#/components/schemas/Publication" });
            if let Some(obj) = value.as_object_mut() {
                // The publication's value is this channel's type.
                obj.remove("$ref");
                obj.insert(
                    "allOf".into(),
                    json!([
                        { "$ref": "#/components/schemas/Publication" },
                        { "type": "object", "properties": { "value": ty } }
                    ]),
                );
            }
            paths.insert(
                format!("/api/channels/{}/retained", c.full_name),
                json!({
                    "get": {
                        "operationId": op_id(&["retained", &c.full_name]),
                        "summary": format!("Retained values of {}", c.full_name),
                        "tags": [tag],
                        "parameters": [key_param(false)],
                        "responses": merge(json!({ "200": {
                            "description": "The retained values (each key's, on a keyed channel, unless `key` is given).",
                            "content": json_body(json!({
                                "type": "object",
                                "properties": {
                                    "channel": { "type": "string" },
                                    "values": { "type": "array", "items": value }
                                },
                                "required": ["channel", "values"]
                            })),
                        }}), error_responses()),
                    },
                    "delete": {
                        "operationId": op_id(&["delete", &c.full_name]),
                        "summary": format!("Delete a retained value of {}", c.full_name),
                        "tags": [tag],
                        "parameters": if c.def.keyed { json!([key_param(true)]) } else { json!([]) },
                        "responses": merge(json!({ "204": { "description": "Deleted." } }), error_responses()),
                    }
                }),
            );
        }
    }
}

fn fixed_paths(paths: &mut Map<String, Json>) {
    let get = |id: &str, summary: &str, content: Json| {
        json!({ "get": {
            "operationId": id,
            "summary": summary,
            "tags": ["gateway"],
            "responses": merge(json!({ "200": { "description": summary, "content": content } }), error_responses()),
        }})
    };
    let obj = |s: Json| json_body(s);
    paths.insert(
        "/api/sessions".into(),
        get(
            "list_sessions",
            "Every session",
            obj(json!({
                "type": "object",
                "properties": { "sessions": { "type": "array", "items": { "$ref": "#/components/schemas/Session" } } },
                "required": ["sessions"]
            })),
        ),
    );
    let mut one = get(
        "get_session",
        "One device's session, with the services it serves",
        obj(json!({ "$ref": "#/components/schemas/Session" })),
    );
    if let Some(op) = one.pointer_mut("/get").and_then(Json::as_object_mut) {
        op.insert("parameters".into(), json!([device_param()]));
    }
    paths.insert("/api/sessions/{device}".into(), one);
    paths.insert(
        "/api/channels".into(),
        get(
            "list_channels",
            "Every channel with its rate and subscribers",
            obj(json!({
                "type": "object",
                "properties": {
                    "channels": { "type": "array", "items": { "$ref": "#/components/schemas/Channel" } },
                    "persistent": { "type": "boolean" }
                },
                "required": ["channels"]
            })),
        ),
    );
    paths.insert(
        "/api/status".into(),
        get(
            "get_status",
            "This server: sessions, channels, and its link to its cluster",
            obj(json!({ "$ref": "#/components/schemas/Status" })),
        ),
    );
    paths.insert(
        "/api/schema".into(),
        get(
            "get_schema",
            "The loaded schemas' descriptors",
            obj(json!({ "type": "object" })),
        ),
    );
    paths.insert(
        "/api/openapi.json".into(),
        get(
            "get_openapi",
            "This document",
            obj(json!({ "type": "object" })),
        ),
    );
    paths.insert(
        "/metrics".into(),
        get(
            "get_metrics",
            "Prometheus metrics",
            json!({ "text/plain": { "schema": { "type": "string" } } }),
        ),
    );
    let mut ws = get(
        "websocket",
        "WebSocket of publications and session events (see docs/gateway.md)",
        json!({}),
    );
    if let Some(op) = ws.pointer_mut("/get").and_then(Json::as_object_mut) {
        op.insert(
            "responses".into(),
            merge(
                json!({ "101": { "description": "Switching to the WebSocket protocol." } }),
                error_responses(),
            ),
        );
        op.insert(
            "parameters".into(),
            json!([
                { "name": "channels", "in": "query", "required": false, "schema": { "type": "string" },
                  "description": "Channels to subscribe to at once, comma-separated." },
                { "name": "events", "in": "query", "required": false, "schema": { "type": "string", "enum": ["sessions"] },
                  "description": "`sessions`: session events from the start." },
                { "name": "access_token", "in": "query", "required": false, "schema": { "type": "string" },
                  "description": "A bearer token, for browsers that cannot set headers on WebSockets." }
            ]),
        );
    }
    paths.insert("/api/ws".into(), ws);
}

fn gateway_schemas() -> Map<String, Json> {
    let s = json!({
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "status": { "type": "integer" },
                        "code": { "type": "string", "description": "The RPC status code's name (invalid_argument, not_found, ...)." },
                        "message": { "type": "string" },
                        "field": { "type": "string", "description": "The JSON field (or header) at fault." },
                        "line": { "type": "integer" },
                        "column": { "type": "integer" }
                    },
                    "required": ["status", "code", "message"]
                }
            },
            "required": ["error"]
        },
        "Accepted": {
            "type": "object",
            "properties": { "accepted": { "type": "boolean" }, "method": { "type": "string" } },
            "required": ["accepted"]
        },
        "PublishAck": {
            "type": "object",
            "properties": {
                "channel": { "type": "string" },
                "key": { "type": ["string", "null"] },
                "ack": { "type": "string", "enum": ["accepted", "persisted"] }
            },
            "required": ["channel", "ack"]
        },
        "Publication": {
            "type": "object",
            "properties": {
                "channel": { "type": "string" },
                "key": { "type": ["string", "null"] },
                "publisher": { "type": "string", "description": "The publishing device, or empty for the server." },
                "timestamp_ms": { "type": "integer" },
                "timestamp": { "type": "string", "format": "date-time" },
                "retained": { "type": "boolean" },
                "value": {}
            },
            "required": ["channel", "publisher", "timestamp_ms", "value"]
        },
        "Session": {
            "type": "object",
            "properties": {
                "session_id": { "type": "integer" },
                "device_id": { "type": "string" },
                "peer": { "type": "string" },
                "transport": { "type": "string" },
                "status": { "type": "string" },
                "connected_since": { "type": "string", "format": "date-time" },
                "connected_since_ms": { "type": "integer" },
                "last_activity": { "type": "string", "format": "date-time" },
                "last_activity_ms": { "type": "integer" },
                "bytes_in": { "type": "integer" },
                "bytes_out": { "type": "integer" },
                "frames_in": { "type": "integer" },
                "frames_out": { "type": "integer" },
                "pending_requests": { "type": "integer" },
                "errors": { "type": "integer" },
                "filtered": { "type": "integer" },
                "refused_types": { "type": "array", "items": {
                    "type": "object",
                    "properties": { "type_id": { "type": "integer" }, "name": { "type": "string" } }
                }},
                "properties": { "type": "object" },
                "services": { "type": "array", "items": { "type": "object" } }
            },
            "required": ["session_id", "device_id", "peer", "transport"]
        },
        "Status": {
            "type": "object",
            "properties": {
                "sessions": { "type": "integer" },
                "channels": { "type": "integer" },
                "cluster": { "$ref": "#/components/schemas/Cluster" }
            },
            "required": ["sessions", "channels", "cluster"]
        },
        "Cluster": {
            "type": "object",
            "description": "This node's link to its cluster and its counters.",
            "properties": {
                "mode": { "type": "string", "enum": ["single", "connected", "degraded"],
                          "description": "single: no cluster; degraded: the cluster is unreachable, local traffic only." },
                "node_id": { "type": "string", "description": "This node's id (empty alone)." },
                "publications_out": { "type": "integer" },
                "publications_in": { "type": "integer" },
                "publications_dropped": { "type": "integer" },
                "retained_out": { "type": "integer" },
                "retained_in": { "type": "integer" },
                "messages_sent": { "type": "integer" },
                "calls_out": { "type": "integer" },
                "calls_in": { "type": "integer" },
                "sessions_replaced": { "type": "integer" },
                "disconnects": { "type": "integer" },
                "resyncs": { "type": "integer" }
            },
            "required": ["mode", "node_id"]
        },
        "Channel": {
            "type": "object",
            "properties": {
                "name": { "type": "string" },
                "id": { "type": "integer" },
                "type": { "type": "string" },
                "retain": { "type": "boolean" },
                "keyed": { "type": "boolean" },
                "published": { "type": "integer" },
                "refused": { "type": "integer" },
                "delivered": { "type": "integer" },
                "dropped": { "type": "integer" },
                "subscribers": { "type": "integer" },
                "retained": { "type": "integer" },
                "rate_per_s": { "type": "number" },
                "history": { "type": "array", "items": { "type": "number" } }
            },
            "required": ["name", "id", "type"]
        }
    });
    match s {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

/// The document.
pub(crate) fn document(catalog: &Catalog) -> Json {
    let mut paths = Map::new();
    fixed_paths(&mut paths);
    method_paths(catalog, &mut paths);
    channel_paths(catalog, &mut paths);
    let mut schemas = gateway_schemas();
    for (name, s) in catalog::component_schemas(catalog) {
        schemas.insert(name, s);
    }
    let packages: Vec<&str> = catalog.schema.packages.keys().map(String::as_str).collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "isml gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "REST API of an isml server: sessions, the devices' services and the broker's channels, with JSON through the schema language's JSON mapping. Packages: {}.",
                if packages.is_empty() { "(none)".to_owned() } else { packages.join(", ") }
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": {
                    "description": "The request failed; see docs/gateway.md for the status mapping.",
                    "content": json_body(json!({ "$ref": "#/components/schemas/Error" })),
                }
            },
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "basic": { "type": "http", "scheme": "basic" }
            }
        },
        "security": [ { "bearer": [] }, { "basic": [] }, {} ],
    })
}
