//! `GET /api/status`: this server as a whole, with its link to its
//! cluster (`single` alone, `connected`, or `degraded` while the cluster
//! is unreachable and only local traffic is served).

use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use isml_runtime::cluster::ClusterStats;
use serde_json::{Value as Json, json};

use super::{Params, Peer, Shared, json_response};
use crate::error::ApiError;

/// The cluster link as JSON (`docs/gateway.md`).
pub(crate) fn cluster_json(c: &ClusterStats) -> Json {
    json!({
        "mode": c.status.to_string(),
        "node_id": c.node_id,
        "publications_out": c.published,
        "publications_in": c.received,
        "publications_dropped": c.dropped,
        "retained_out": c.retained_writes,
        "retained_in": c.retained_applied,
        "messages_sent": c.sent,
        "calls_out": c.calls_out,
        "calls_in": c.calls_in,
        "sessions_replaced": c.replaced,
        "disconnects": c.disconnects,
        "resyncs": c.resyncs,
    })
}

pub(crate) async fn status(
    axum::extract::State(st): Shared,
    peer: Peer,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    st.caller_of(&headers, &peer, &params).await?;
    let server = &st.server;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "sessions": server.sessions().len(),
            "channels": server.broker_stats().channels.len(),
            "cluster": cluster_json(&server.cluster_stats()),
        }),
    ))
}
