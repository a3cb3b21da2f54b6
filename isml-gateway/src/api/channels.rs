//! The broker's channels: `GET /api/channels` (rates and subscribers),
//! `GET /api/channels/{channel}/retained[?key=]`, `POST
//! /api/channels/{channel}[?key=]` to publish JSON, and `DELETE` of a
//! retained value.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use isml_runtime::pubsub::{Ack, Action, PublishError, RawPublication};
use serde_json::{Value as Json, json};

use super::{Params, Peer, Shared, State, body, json_response};
use crate::catalog::{self, ChannelEntry};
use crate::error::ApiError;
use crate::time::rfc3339;

/// A publication (retained or live) as JSON.
pub(crate) fn publication_json(st: &State, p: &RawPublication) -> Json {
    let channel = st.catalog.channel_by_id(p.channel);
    let value = match channel {
        Some(c) => catalog::to_json(c.ty, &p.payload).unwrap_or_else(|e| e.body()),
        None => Json::Null,
    };
    json!({
        "channel": channel.map_or_else(|| p.channel.to_string(), |c| c.full_name.clone()),
        "key": p.key,
        "publisher": p.publisher,
        "timestamp_ms": p.timestamp_ms,
        "timestamp": rfc3339(p.timestamp_ms),
        "retained": p.retained,
        "value": value,
    })
}

pub(super) async fn list(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.caller_of(&headers, &peer, &params).await?;
    let stats = st.server.broker_stats();
    let list: Vec<Json> = st
        .catalog
        .channels
        .iter()
        .map(|c| {
            let s = stats.channels.iter().find(|s| s.id == c.def.id);
            let (rate, history) = st.rates.of(c.def.id);
            json!({
                "name": c.full_name,
                "id": c.def.id,
                "type": c.ty.full_name(),
                "retain": c.def.retain,
                "keyed": c.def.keyed,
                "published": s.map_or(0, |s| s.published),
                "refused": s.map_or(0, |s| s.refused),
                "delivered": s.map_or(0, |s| s.delivered),
                "dropped": s.map_or(0, |s| s.dropped),
                "subscribers": s.map_or(0, |s| s.subscribers),
                "retained": s.map_or(0, |s| s.retained),
                "rate_per_s": rate,
                "history": history,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "channels": list, "persistent": stats.persistent }),
    ))
}

/// The key of a request: required on keyed channels, refused on others.
fn key<'p>(
    c: &ChannelEntry,
    params: &'p HashMap<String, String>,
    required: bool,
) -> Result<Option<&'p str>, ApiError> {
    let key = params.get("key").map(String::as_str);
    match (c.def.keyed, key) {
        (false, Some(_)) => Err(field(
            ApiError::bad_request(format!(
                "channel {} has no keys; leave out ?key=",
                c.full_name
            )),
            "key",
        )),
        (true, None) if required => Err(field(
            ApiError::bad_request(format!(
                "channel {} is keyed: ?key= is required",
                c.full_name
            )),
            "key",
        )),
        (_, k) => Ok(k),
    }
}

fn field(mut e: ApiError, name: &str) -> ApiError {
    e.field = Some(name.to_owned());
    e
}

pub(super) async fn retained(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> Result<Response, ApiError> {
    let caller = st.caller_of(&headers, &peer, &params).await?;
    let c = st.catalog.channel(&channel)?;
    st.allow(&caller, Action::Subscribe, &c.full_name)?;
    let key = key(c, &params, false)?;
    let values: Vec<RawPublication> = match key {
        Some(k) => st
            .server
            .retained_raw(c.def.id, Some(k))
            .into_iter()
            .collect(),
        None if c.def.keyed => st.server.retained_all_raw(c.def.id),
        None => st.server.retained_raw(c.def.id, None).into_iter().collect(),
    };
    if key.is_some() && values.is_empty() {
        return Err(ApiError::not_found(format!(
            "channel {} has no retained value for key {:?}",
            c.full_name,
            key.unwrap_or_default()
        )));
    }
    let values: Vec<Json> = values.iter().map(|p| publication_json(&st, p)).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "channel": c.full_name, "values": values }),
    ))
}

fn publish_error(e: PublishError) -> ApiError {
    match e {
        PublishError::Refused { refusal, .. } => ApiError::new(
            StatusCode::CONFLICT,
            "failed_precondition",
            format!("the broker refused it: {refusal}"),
        ),
        other => ApiError::bad_request(other.to_string()),
    }
}

pub(super) async fn publish(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
    Path(channel): Path<String>,
    request: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = st.caller_of(&headers, &peer, &params).await?;
    let c = st.catalog.channel(&channel)?;
    st.allow(&caller, Action::Publish, &c.full_name)?;
    let key = key(c, &params, true)?;
    let request = body(request)?;
    let json = catalog::parse_body(&request)?;
    let payload = catalog::from_json(c.ty, &json)?;
    let ack = st
        .server
        .publish_raw(c.def.id, key, payload)
        .await
        .map_err(publish_error)?;
    st.metrics.published();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "channel": c.full_name,
            "key": key,
            "ack": if matches!(ack, Ack::Persisted) { "persisted" } else { "accepted" },
        }),
    ))
}

pub(super) async fn delete(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> Result<Response, ApiError> {
    let caller = st.caller_of(&headers, &peer, &params).await?;
    let c = st.catalog.channel(&channel)?;
    st.allow(&caller, Action::Delete, &c.full_name)?;
    let key = key(c, &params, true)?;
    if !c.def.retain {
        return Err(ApiError::bad_request(format!(
            "channel {} keeps no retained values",
            c.full_name
        )));
    }
    st.server
        .delete_retained_raw(c.def.id, key)
        .await
        .map_err(publish_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
