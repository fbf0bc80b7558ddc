//! JSON errors of the HTTP API: `{"error": "...", "code": "..."}` with the
//! right status, and the mapping of the daemon's error messages (whose first
//! word is a Sentinel-style code) to statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// An error answer. `code` is a stable machine-readable word; `message` is for
/// people (it never contains the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Retry-After` in seconds (503 while there is no leader).
    pub retry_after: Option<u64>,
    /// Send `WWW-Authenticate: Bearer` (401).
    pub challenge: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            challenge: false,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unknown_group(name: &str, known: &[String]) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_group",
            format!(
                "ERR No such master with that name: {name:?} (groups: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            challenge: true,
            ..ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// The daemon loop did not answer in time.
    pub fn timeout(limit_ms: u128) -> Self {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!("the daemon did not answer within {limit_ms} ms"),
        )
    }

    /// The daemon loop is gone (shutting down).
    pub fn unavailable() -> Self {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the daemon loop is not running",
            )
        }
    }

    /// Map an error message of the daemon (`Response::Error`) by its first
    /// word: `NOTLEADER` 503, `ERR No such master` 404, `INPROG` 409,
    /// `NOGOODSLAVE` 409, other `ERR` 400; a leader that cannot be reached
    /// 502; anything else 502.
    pub fn from_daemon(message: &str) -> Self {
        let word = message.split_whitespace().next().unwrap_or("");
        let (status, code) = match word {
            "NOTLEADER" => (StatusCode::SERVICE_UNAVAILABLE, "not_leader"),
            "INPROG" => (StatusCode::CONFLICT, "in_progress"),
            "NOGOODSLAVE" => (StatusCode::CONFLICT, "no_good_replica"),
            "ERR" if message.starts_with("ERR No such master with that name") => {
                (StatusCode::NOT_FOUND, "unknown_group")
            }
            "ERR" => (StatusCode::BAD_REQUEST, "invalid"),
            _ if message.starts_with("cannot reach the leader") => {
                (StatusCode::BAD_GATEWAY, "leader_unreachable")
            }
            _ => (StatusCode::BAD_GATEWAY, "daemon_error"),
        };
        ApiError {
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
            ..ApiError::new(status, code, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.message, "code": self.code }));
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(s) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"raftinel\""),
            );
        }
        resp
    }
}
