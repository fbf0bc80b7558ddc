//! Bearer-token access control. A handler states what it needs by taking a
//! [`ReadAccess`] or [`WriteAccess`] argument (checked before the body is
//! read):
//!
//! - write (POST/PUT): `Authorization: Bearer <http_token>` always; with no
//!   token configured the endpoints are refused (403);
//! - read (GET, health): open when `http_open_read` is true, else like write.
//!
//! Missing or malformed header: 401 with `WWW-Authenticate: Bearer`; wrong
//! token: 403. Tokens are compared in constant time (SHA-256 of both sides,
//! then a branch-free comparison of the digests, so neither the content nor
//! the length leaks through timing). The token is never logged.

use super::error::ApiError;
use super::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use tracing::warn;

/// The caller may read (status, health, metrics).
#[derive(Debug)]
pub struct ReadAccess;

/// The caller may change the cluster (failover, maintenance).
#[derive(Debug)]
pub struct WriteAccess;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Read,
    Write,
}

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(parts, state, Need::Read).map(|()| ReadAccess)
    }
}

impl FromRequestParts<AppState> for WriteAccess {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        check(parts, state, Need::Write).map(|()| WriteAccess)
    }
}

fn check(parts: &Parts, state: &AppState, need: Need) -> Result<(), ApiError> {
    let settings = &state.inner.settings;
    if need == Need::Read && settings.open_read {
        return Ok(());
    }
    let Some(token) = &settings.token else {
        return Err(ApiError::forbidden(
            "no http_token configured: set http_token (or http_token_env / http_token_file) to enable this endpoint",
        ));
    };
    let path = parts.uri.path();
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing Authorization header; expected Authorization: Bearer <http_token>",
        ));
    };
    let Some(given) = value.to_str().ok().and_then(bearer) else {
        return Err(ApiError::unauthorized(
            "malformed Authorization header; expected Authorization: Bearer <http_token>",
        ));
    };
    if !same_token(given.as_bytes(), token.expose().as_bytes()) {
        warn!(message = "http request with a wrong bearer token refused", method = %parts.method, path);
        return Err(ApiError::forbidden("invalid bearer token"));
    }
    Ok(())
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// Constant-time equality: compares the SHA-256 digests of both values
/// without an early exit.
pub(crate) fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(expected);
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer   "), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn token_comparison() {
        assert!(same_token(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_token(b"", b"0123456789abcdef"));
    }
}
