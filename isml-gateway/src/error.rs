//! Errors as HTTP answers: a status and a JSON body
//! `{"error": {"status", "code", "message", "field"?, "line"?, "column"?}}`,
//! and the mapping from RPC [`Code`]s to HTTP statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use isml_runtime::rpc::{CallError, Code};
use isml_schema::dynamic::JsonError;
use serde_json::json;

/// The HTTP status of an RPC status code (the table in docs/gateway.md;
/// the same choices as the usual gRPC-to-HTTP mapping, plus `incompatible`).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        // 499 "client closed request": the caller gave up.
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        // The device and the gateway's schemas disagree on the method.
        Code::Incompatible => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A failed request.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) field: Option<String>,
    pub(crate) position: Option<(usize, usize)>,
    /// `WWW-Authenticate` challenge, on 401.
    pub(crate) challenge: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            position: None,
            challenge: false,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "incompatible", message)
    }

    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message);
        e.challenge = true;
        e
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", message)
    }

    pub(crate) fn with_position(mut self, line: usize, column: usize) -> Self {
        self.position = Some((line, column));
        self
    }

    /// A JSON value that does not fit its message: 400 naming the field.
    pub(crate) fn json(e: JsonError) -> Self {
        let mut err = Self::bad_request(e.to_string());
        let path = e.path();
        if !path.is_empty() {
            err.field = Some(path);
        }
        err.position = e.position();
        err
    }

    /// A failed call, by its status code.
    pub(crate) fn call(e: &CallError) -> Self {
        let code = e.code();
        Self::new(http_status(code), code.name(), e.to_string())
    }

    pub(crate) fn body(&self) -> serde_json::Value {
        let mut e = json!({
            "status": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
        });
        if let Some(obj) = e.as_object_mut() {
            if let Some(f) = &self.field {
                obj.insert("field".into(), json!(f));
            }
            if let Some((l, c)) = self.position {
                obj.insert("line".into(), json!(l));
                obj.insert("column".into(), json!(c));
            }
        }
        json!({ "error": e })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if self.challenge {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"isml\", Basic realm=\"isml\""),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_http() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::ResourceExhausted, 429),
            (Code::Cancelled, 499),
            (Code::Internal, 500),
            (Code::Unimplemented, 501),
            (Code::Incompatible, 502),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Other(1234), 500),
        ];
        for (code, http) in cases {
            assert_eq!(http_status(code).as_u16(), http, "{code}");
        }
    }
}
