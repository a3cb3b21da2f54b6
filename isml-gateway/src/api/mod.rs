//! The routes and what they share: the gateway's state, the caller's
//! address, bodies read within the limit.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use isml_runtime::Server;
use isml_runtime::handshake::Authenticator;
use isml_runtime::pubsub::Acl;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::events::SessionEvents;

mod channels;
mod rpc;
mod sessions;
mod status;

pub(crate) use channels::publication_json;

/// What every handler reads.
pub(crate) struct State {
    pub(crate) server: Server,
    pub(crate) catalog: Catalog,
    pub(crate) auth: Option<Arc<dyn Authenticator>>,
    pub(crate) acl: Option<Acl>,
    pub(crate) events: SessionEvents,
    pub(crate) rates: crate::rates::Rates,
    pub(crate) metrics: crate::metrics::Counters,
    pub(crate) request_timeout: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) shutdown: CancellationToken,
}

pub(crate) type Shared = axum::extract::State<Arc<State>>;

/// The client's address (unspecified when the router is served without
/// connect info).
pub(crate) struct Peer(pub(crate) SocketAddr);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ext = &parts.extensions;
        let addr = ext
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| {
                ext.get::<ConnectInfo<crate::limit::PeerAddr>>()
                    .map(|c| c.0.0)
            });
        Ok(Peer(addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))))
    }
}

/// The query string as a map (`key`, `access_token`, ...).
pub(crate) type Params = Query<HashMap<String, String>>;

/// The body, or the error its reading gave: 413 beyond the limit.
pub(crate) fn body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    b.map_err(|r| {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "resource_exhausted",
                "the request body is larger than the gateway's limit",
            )
        } else {
            ApiError::new(
                status,
                "invalid_argument",
                format!("cannot read the body: {r}"),
            )
        }
    })
}

impl State {
    /// Authenticates with the header or `?access_token=`.
    pub(crate) async fn caller_of(
        &self,
        headers: &HeaderMap,
        peer: &Peer,
        params: &HashMap<String, String>,
    ) -> Result<Caller, ApiError> {
        self.caller(
            headers,
            peer.0,
            params.get("access_token").map(String::as_str),
        )
        .await
    }
}

pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}

async fn schema(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.caller_of(&headers, &peer, &params).await?;
    Ok(json_response(
        StatusCode::OK,
        &crate::catalog::describe(&st.catalog),
    ))
}

async fn openapi(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.caller_of(&headers, &peer, &params).await?;
    Ok(json_response(
        StatusCode::OK,
        &crate::openapi::document(&st.catalog),
    ))
}

async fn metrics(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.caller_of(&headers, &peer, &params).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(&st),
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /api/openapi.json")
}

/// Every route.
pub(crate) fn router(state: Arc<State>, body_limit: usize) -> Router {
    let timeout = state.request_timeout;
    Router::new()
        .route("/", get(crate::dashboard::index))
        .route("/assets/{file}", get(crate::dashboard::asset))
        .route("/api/sessions", get(sessions::list))
        .route("/api/sessions/{device}", get(sessions::one))
        .route(
            "/api/devices/{device}/rpc/{service}/{method}",
            post(rpc::call),
        )
        .route("/api/channels", get(channels::list))
        .route(
            "/api/channels/{channel}",
            post(channels::publish).delete(channels::delete),
        )
        .route(
            "/api/channels/{channel}/retained",
            get(channels::retained).delete(channels::delete),
        )
        .route("/api/status", get(status::status))
        .route("/api/schema", get(schema))
        .route("/api/openapi.json", get(openapi))
        .route("/api/ws", get(crate::ws::upgrade))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}
