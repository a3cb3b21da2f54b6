//! `GET /api/sessions` and `GET /api/sessions/{device}`.

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use isml_runtime::session::{PRINCIPAL, Session};
use serde_json::{Value as Json, json};

use super::{Params, Peer, Shared, State, json_response};
use crate::error::ApiError;
use crate::time::{ms, rfc3339};

/// A session as JSON; with `services`, the services its device serves
/// (and which of their methods the loaded schemas define the same way).
pub(crate) fn session_json(st: &State, s: &Session, services: bool) -> Json {
    let stats = s.stats();
    let (since, last) = (ms(stats.created), ms(stats.last_activity));
    let mut v = json!({
        "session_id": s.id(),
        "device_id": s.device_id(),
        "peer": s.peer(),
        "transport": s.scheme(),
        "status": if s.is_closed() { "closing" } else { "connected" },
        "connected_since": rfc3339(since),
        "connected_since_ms": since,
        "last_activity": rfc3339(last),
        "last_activity_ms": last,
        "bytes_in": stats.bytes_in,
        "bytes_out": stats.bytes_out,
        "frames_in": stats.frames_in,
        "frames_out": stats.frames_out,
        "pending_requests": stats.pending_requests,
        "errors": stats.errors,
        "filtered": stats.filtered,
        "refused_types": s.refused_types().iter()
            .map(|(id, name)| json!({ "type_id": id, "name": name }))
            .collect::<Vec<_>>(),
        "properties": { "principal": s.get(&PRINCIPAL).map(|p| p.to_string()) },
    });
    if services && let Some(obj) = v.as_object_mut() {
        let list: Vec<Json> = s
            .peer_services()
            .iter()
            .map(|p| {
                let known = st.catalog.services.iter().find(|e| e.full_name == p.name);
                json!({
                    "name": p.name,
                    "known": known.is_some(),
                    "methods": p.methods.iter().map(|(id, fp)| {
                        let m = known.and_then(|k| k.methods.iter().find(|m| m.def.id == *id));
                        json!({
                            "id": id,
                            "name": m.map(|m| m.name()),
                            "kind": m.map(|m| crate::catalog::kind_name(m.raw.kind)),
                            "fingerprint": format!("{fp:016x}"),
                            "compatible": m.is_some_and(|m| m.raw.fingerprint == *fp),
                        })
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        obj.insert("services".into(), Json::Array(list));
    }
    v
}

pub(super) async fn list(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.caller_of(&headers, &peer, &params).await?;
    let mut sessions = st.server.sessions();
    sessions.sort_unstable_by(|a, b| a.device_id().cmp(b.device_id()));
    let list: Vec<Json> = sessions
        .iter()
        .map(|s| session_json(&st, s, false))
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "sessions": list })))
}

pub(super) async fn one(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
    Path(device): Path<String>,
) -> Result<Response, ApiError> {
    st.caller_of(&headers, &peer, &params).await?;
    let s = st
        .server
        .session_by_device(&device)
        .ok_or_else(|| ApiError::not_found(format!("no session of device `{device}`")))?;
    Ok(json_response(StatusCode::OK, &session_json(&st, &s, true)))
}
