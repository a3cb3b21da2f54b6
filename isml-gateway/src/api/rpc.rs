//! `POST /api/devices/{device}/rpc/{service}/{method}`: a call to a
//! device's service with a JSON request. Unary methods answer JSON, one-way
//! methods 202, server-streaming methods Server-Sent Events (when the
//! client accepts `text/event-stream`) or NDJSON. The deadline comes from
//! the `X-Isml-Deadline-Ms` header.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use isml_runtime::pubsub::Action;
use isml_runtime::rpc::{CallError, Conn, MethodKind, RawStreaming};
use isml_schema::dynamic::Descriptor;
use serde_json::{Value as Json, json};

use super::{Params, Peer, Shared, State, body, json_response};
use crate::catalog::{self, MethodEntry};
use crate::error::ApiError;

/// The header carrying a call's deadline, in milliseconds from now.
pub(crate) const DEADLINE_HEADER: &str = "x-isml-deadline-ms";

fn deadline(headers: &HeaderMap, cap: Duration) -> Result<Option<Duration>, ApiError> {
    let Some(v) = headers.get(DEADLINE_HEADER) else {
        return Ok(None);
    };
    let ms = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            let mut e = ApiError::bad_request(
                "X-Isml-Deadline-Ms must be a whole number of milliseconds above 0",
            );
            e.field = Some("X-Isml-Deadline-Ms".into());
            e
        })?;
    Ok(Some(Duration::from_millis(ms).min(cap)))
}

pub(super) async fn call(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
    Path((device, service, method)): Path<(String, String, String)>,
    request: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let caller = st.caller_of(&headers, &peer, &params).await?;
    let svc = st.catalog.service(&service)?;
    let m = st.catalog.method(svc, &method)?;
    let name = m.raw.full_name;
    st.allow(&caller, Action::Call, name)?;
    let outcome = prepare(&st, m, &device, &headers, request).await;
    let (session, payload, deadline) = match outcome {
        Ok(p) => p,
        Err(e) => {
            st.metrics.call(name, e.code);
            return Err(e);
        }
    };
    let conn = Conn::Session(session);
    match m.raw.kind {
        MethodKind::OneWay => {
            let r = conn.one_way_raw(&m.raw, payload).await;
            record(&st, name, r.as_ref().err());
            r.map_err(|e| ApiError::call(&e))?;
            Ok(json_response(
                StatusCode::ACCEPTED,
                &json!({ "accepted": true, "method": name }),
            ))
        }
        MethodKind::Unary => {
            let timeout = deadline.unwrap_or(st.call_timeout);
            let r = conn.unary_raw(&m.raw, payload, Some(timeout)).await;
            record(&st, name, r.as_ref().err());
            let reply = r.map_err(|e| ApiError::call(&e))?;
            let desc = m
                .response
                .ok_or_else(|| ApiError::bad_gateway("the method has no response type"))?;
            Ok(json_response(
                StatusCode::OK,
                &catalog::to_json(desc, &reply)?,
            ))
        }
        MethodKind::ServerStreaming => {
            let r = conn.server_streaming_raw(&m.raw, payload, deadline).await;
            if let Err(e) = &r {
                record(&st, name, Some(e));
            }
            let stream = r.map_err(|e| ApiError::call(&e))?;
            let desc = m
                .response
                .ok_or_else(|| ApiError::bad_gateway("the method has no response type"))?;
            let sse = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/event-stream"));
            Ok(if sse {
                sse_response(st.clone(), name, desc, stream)
            } else {
                ndjson_response(st.clone(), name, desc, stream)
            })
        }
        _ => {
            st.metrics.call(name, "unimplemented");
            Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "unimplemented",
                format!(
                    "{name} streams requests; the gateway calls one-way, unary and server-streaming methods"
                ),
            ))
        }
    }
}

async fn prepare(
    st: &State,
    m: &MethodEntry,
    device: &str,
    headers: &HeaderMap,
    request: Result<Bytes, BytesRejection>,
) -> Result<(isml_runtime::Session, Bytes, Option<Duration>), ApiError> {
    let request = body(request)?;
    let deadline = deadline(headers, st.request_timeout)?;
    let json = catalog::parse_body(&request)?;
    let payload = catalog::from_json(m.request, &json)?;
    let session = st
        .server
        .session_by_device(device)
        .ok_or_else(|| ApiError::not_found(format!("no session of device `{device}`")))?;
    Ok((session, payload, deadline))
}

fn record(st: &State, method: &'static str, e: Option<&CallError>) {
    st.metrics.call(method, e.map_or("ok", |e| e.code().name()));
}

/// The next item of a stream as JSON, or its end (`Ok(None)`).
async fn next_item(
    stream: &mut RawStreaming,
    desc: Descriptor<'static>,
) -> Result<Option<Json>, ApiError> {
    match stream.next().await {
        None => Ok(None),
        Some(Ok(bytes)) => catalog::to_json(desc, &bytes).map(Some),
        Some(Err(e)) => Err(ApiError::call(&e)),
    }
}

enum Step {
    Item(Json),
    End,
    Failed(ApiError),
}

/// The stream's items, then its end or error; stops when the gateway shuts
/// down. Dropped (the HTTP client went away), it cancels the call.
fn steps(
    st: Arc<State>,
    method: &'static str,
    desc: Descriptor<'static>,
    stream: RawStreaming,
) -> impl futures_util::Stream<Item = Step> + Send {
    let stop = st.shutdown.clone().cancelled_owned();
    futures_util::stream::unfold(Some((stream, st)), move |state| async move {
        let (mut stream, st) = state?;
        match next_item(&mut stream, desc).await {
            Ok(Some(item)) => Some((Step::Item(item), Some((stream, st)))),
            Ok(None) => {
                st.metrics.call(method, "ok");
                Some((Step::End, None))
            }
            Err(e) => {
                st.metrics.call(method, e.code);
                Some((Step::Failed(e), None))
            }
        }
    })
    .take_until(stop)
}

fn sse_response(
    st: Arc<State>,
    method: &'static str,
    desc: Descriptor<'static>,
    stream: RawStreaming,
) -> Response {
    let events = steps(st, method, desc, stream).map(|step| {
        Ok::<_, Infallible>(match step {
            Step::Item(v) => Event::default().event("item").data(v.to_string()),
            Step::End => Event::default().event("end").data("{}"),
            Step::Failed(e) => Event::default().event("error").data(e.body().to_string()),
        })
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn ndjson_response(
    st: Arc<State>,
    method: &'static str,
    desc: Descriptor<'static>,
    stream: RawStreaming,
) -> Response {
    let lines = steps(st, method, desc, stream).filter_map(|step| async move {
        let mut line = match step {
            Step::Item(v) => v.to_string(),
            Step::End => return None,
            Step::Failed(e) => e.body().to_string(),
        };
        line.push('\n');
        Some(Ok::<_, Infallible>(Bytes::from(line)))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response()
}
