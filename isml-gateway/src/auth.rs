//! Who is asking: the `Authorization` header (a bearer token or HTTP Basic;
//! browsers' WebSockets and event streams may pass `?access_token=`
//! instead), checked by the server's [`Authenticator`], and what the ACL
//! lets that identity do.

use std::net::SocketAddr;

use axum::http::{HeaderMap, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use isml_runtime::handshake::{AuthRequest, Credentials};
use isml_runtime::pubsub::Action;

use crate::api::State;
use crate::error::ApiError;

/// An authenticated HTTP client.
#[derive(Debug, Clone, Default)]
pub(crate) struct Caller {
    /// The device id the ACL sees: the one the authenticator assigned, or
    /// empty (rules for people name `identities`).
    pub(crate) device: String,
    /// The principal the authenticator established.
    pub(crate) principal: Option<String>,
}

fn credentials(headers: &HeaderMap, query_token: Option<&str>) -> Result<Credentials, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(match query_token {
            Some(t) if !t.is_empty() => Credentials::Token(t.to_owned()),
            _ => Credentials::None,
        });
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("the Authorization header is not ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Ok(Credentials::Token(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = BASE64
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ApiError::unauthenticated("Basic credentials are not base64 of user:password")
            })?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            ApiError::unauthenticated("Basic credentials have no `:` between user and password")
        })?;
        return Ok(Credentials::UserPassword {
            username: username.to_owned(),
            password: password.to_owned(),
        });
    }
    Err(ApiError::unauthenticated(
        "the Authorization header must be `Bearer TOKEN` or `Basic BASE64`",
    ))
}

impl State {
    /// Authenticates a request (everyone is let in without an authenticator).
    pub(crate) async fn caller(
        &self,
        headers: &HeaderMap,
        peer: SocketAddr,
        query_token: Option<&str>,
    ) -> Result<Caller, ApiError> {
        let Some(auth) = &self.auth else {
            return Ok(Caller::default());
        };
        let creds =
            credentials(headers, query_token).inspect_err(|_| self.metrics.auth_refused())?;
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("http");
        let peer = peer.to_string();
        let req = AuthRequest::new(&creds, "", agent, &peer, "http");
        match auth.authenticate(&req).await {
            Ok(identity) => Ok(Caller {
                device: identity.device_id.unwrap_or_default(),
                principal: identity.principal,
            }),
            Err(e) => {
                self.metrics.auth_refused();
                Err(ApiError::unauthenticated(format!(
                    "authentication failed: {e}"
                )))
            }
        }
    }

    /// Whether the ACL lets `caller` do `action` on `name` (everything is
    /// allowed without an ACL).
    pub(crate) fn allow(
        &self,
        caller: &Caller,
        action: Action,
        name: &str,
    ) -> Result<(), ApiError> {
        match &self.acl {
            Some(acl) if !acl.check(&caller.device, caller.principal.as_deref(), action, name) => {
                self.metrics.acl_refused();
                Err(ApiError::forbidden(format!(
                    "{} may not {} {name}",
                    caller
                        .principal
                        .as_deref()
                        .map_or_else(|| "an anonymous caller".to_owned(), |p| format!("`{p}`")),
                    action.name()
                )))
            }
            _ => Ok(()),
        }
    }
}
