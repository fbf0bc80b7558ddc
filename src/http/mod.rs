//! The HTTP API (axum) on `http_listen`: cluster and group status, manual
//! failover and maintenance mode, Prometheus metrics, and health checks for
//! load balancers. Documented for users in `docs/http-api.md`.
//!
//! | method | path | access | what |
//! |---|---|---|---|
//! | GET | `/v1/cluster` | read | this daemon's status, plus `leader` and `authoritative` |
//! | GET | `/v1/groups/{name}` | read | one group, plus the `view` it was taken from |
//! | POST | `/v1/groups/{name}/failover` | write | planned switchover / forced failover (202) |
//! | PUT | `/v1/groups/{name}/maintenance` | write | maintenance on/off (202) |
//! | GET | `/metrics` | read | Prometheus text format 0.0.4 |
//! | GET | `/health` | read | 200 when the daemon loop answers within 1 s |
//! | GET | `/primary?group=G` | read | 200 only where the local Redis is G's committed master |
//! | GET | `/replica?group=G[&max_lag_bytes=N]` | read | 200 only where the local Redis is a healthy replica |
//!
//! The server owns no state: every call goes to the daemon loop as a control
//! [`Request`] over [`HttpHandles::calls`] (so a follower forwards mutating
//! calls to the Raft leader, like the CLI) and waits at most 10 s for the
//! answer (504 after that). Access control is in [`auth`], the JSON errors
//! and the mapping of the daemon's error codes in [`error`], the health
//! checks in [`health`].

pub mod auth;
pub mod error;
pub mod health;

pub use crate::config::HttpSettings;

use crate::control::{Request, Response as DaemonResponse};
use crate::core::types::Addr;
use crate::core::FailoverOptions;
use crate::http_api::{ApiCall, HttpHandles};
use auth::{ReadAccess, WriteAccess};
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use error::ApiError;
use health::Check;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// Default `timeout_ms` of `POST /v1/groups/{name}/failover` (as the CLI).
pub const DEFAULT_FAILOVER_TIMEOUT_MS: u64 = 5_000;
/// A call the daemon loop does not answer within this gets 504.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// `/health` is 503 when the daemon loop does not answer within this.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Content type of `/metrics` (Prometheus text exposition format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Time limits of the calls into the daemon loop.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub call: Duration,
    pub health: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            call: CALL_TIMEOUT,
            health: HEALTH_TIMEOUT,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) settings: HttpSettings,
    handles: HttpHandles,
    limits: Limits,
}

/// The router's state.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Bind `settings.listen` and serve in a new task.
pub async fn start(
    settings: HttpSettings,
    h: HttpHandles,
) -> Result<tokio::task::JoinHandle<()>, HttpError> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| HttpError::Listen {
            addr: settings.listen,
            source,
        })?;
    Ok(tokio::spawn(serve(listener, settings, h)))
}

/// Serve the API on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, settings: HttpSettings, h: HttpHandles) {
    serve_with(listener, settings, h, Limits::default()).await
}

/// [`serve`] with other time limits (tests).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    settings: HttpSettings,
    h: HttpHandles,
    limits: Limits,
) {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    info!(
        message = "http api listening",
        addr = %addr,
        token = if settings.token.is_some() { "configured" } else { "none (mutating endpoints disabled)" },
        open_read = settings.open_read
    );
    if let Err(e) = axum::serve(listener, router(settings, h, limits)).await {
        warn!(message = "http api stopped", addr = %addr, error = %e);
    }
}

/// The routes, with their state.
pub fn router(settings: HttpSettings, h: HttpHandles, limits: Limits) -> Router {
    let state = AppState {
        inner: Arc::new(Inner {
            settings,
            handles: h,
            limits,
        }),
    };
    Router::new()
        .route("/v1/cluster", get(cluster))
        .route("/v1/groups/{name}", get(group))
        .route("/v1/groups/{name}/failover", post(failover))
        .route("/v1/groups/{name}/maintenance", put(maintenance))
        .route("/metrics", get(metrics))
        .route("/health", get(health_check))
        .route("/primary", get(primary))
        .route("/replica", get(replica))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// Log every request (never its headers: they may hold the token).
async fn log_request(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = start.elapsed().as_millis() as u64;
    if method == Method::GET || method == Method::HEAD {
        debug!(message = "http", %method, path, status, ms);
    } else {
        info!(message = "http", %method, path, status, ms);
    }
    resp
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no endpoint {}; see docs/http-api.md", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Send one request to the daemon loop and wait for its answer.
async fn call(
    st: &AppState,
    request: Request,
    limit: Duration,
) -> Result<DaemonResponse, ApiError> {
    let (reply, rx) = oneshot::channel();
    let start = Instant::now();
    let calls = &st.inner.handles.calls;
    match tokio::time::timeout(limit, calls.send(ApiCall { request, reply })).await {
        Err(_) => return Err(ApiError::timeout(limit.as_millis())),
        Ok(Err(_)) => return Err(ApiError::unavailable()),
        Ok(Ok(())) => {}
    }
    let left = limit.saturating_sub(start.elapsed());
    match tokio::time::timeout(left, rx).await {
        Err(_) => Err(ApiError::timeout(limit.as_millis())),
        Ok(Err(_)) => Err(ApiError::unavailable()),
        Ok(Ok(r)) => Ok(r),
    }
}

/// This daemon's status JSON.
async fn status(st: &AppState, limit: Duration) -> Result<Value, ApiError> {
    match call(st, Request::Status, limit).await? {
        DaemonResponse::Status { status } => Ok(status),
        DaemonResponse::Error { message } => Err(ApiError::from_daemon(&message)),
        DaemonResponse::Accepted { .. } => Err(unexpected()),
    }
}

fn unexpected() -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "daemon_error",
        "unexpected answer from the daemon",
    )
}

/// Answer with JSON and `Cache-Control: no-store`.
fn json(status: StatusCode, body: Value) -> Response {
    let mut r = (status, Json(body)).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Who this status says leads, and whether it can be trusted.
fn view_of(status: &Value) -> Value {
    json!({
        "node_id": status["node_id"],
        "leader": status["raft"]["leader"],
        "is_leader": status["raft"]["is_leader"],
        "authoritative": health::authoritative(status),
    })
}

async fn cluster(_: ReadAccess, State(st): State<AppState>) -> Result<Response, ApiError> {
    let mut status = status(&st, st.inner.limits.call).await?;
    let view = view_of(&status);
    if let Some(obj) = status.as_object_mut() {
        obj.insert("leader".into(), view["leader"].clone());
        obj.insert("authoritative".into(), view["authoritative"].clone());
    }
    Ok(json(StatusCode::OK, status))
}

fn group_name(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    p.map(|Path(n)| n)
        .map_err(|e| ApiError::bad_request(format!("bad group name in the path: {e}")))
}

async fn group(
    _: ReadAccess,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = group_name(name)?;
    let status = status(&st, st.inner.limits.call).await?;
    let mut g = health::group(&status, &name)?.clone();
    if let Some(obj) = g.as_object_mut() {
        obj.insert("view".into(), view_of(&status));
    }
    Ok(json(StatusCode::OK, g))
}

/// Body of `POST /v1/groups/{name}/failover`; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailoverBody {
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    force: bool,
}

/// Body of `PUT /v1/groups/{name}/maintenance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MaintenanceBody {
    on: bool,
}

/// Parse a JSON body; an empty body is `default` when given.
fn parse_body<T: serde::de::DeserializeOwned>(
    body: &Bytes,
    default: Option<T>,
    expected: &str,
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        if let Some(d) = default {
            return Ok(d);
        }
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}; expected {expected}")))
}

async fn failover(
    _: WriteAccess,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = group_name(name)?;
    let b: FailoverBody = parse_body(
        &body,
        Some(FailoverBody::default()),
        r#"{"to": "host:port" (optional), "timeout_ms": 5000 (optional), "force": false (optional)}"#,
    )?;
    let to = match &b.to {
        None => None,
        Some(s) if s.chars().any(char::is_whitespace) => {
            return Err(ApiError::bad_request(format!(
                "to: expected a host:port address, got {s:?} (contains whitespace)"
            )))
        }
        Some(s) => Some(
            s.parse::<Addr>()
                .map_err(|e| ApiError::bad_request(format!("to: {e}")))?,
        ),
    };
    let opts = FailoverOptions {
        to,
        timeout_ms: b.timeout_ms.unwrap_or(DEFAULT_FAILOVER_TIMEOUT_MS),
        force: b.force,
    };
    let req = Request::Failover {
        group: name.clone(),
        opts,
    };
    match call(&st, req, st.inner.limits.call).await? {
        DaemonResponse::Accepted { epoch, leader } => Ok(json(
            StatusCode::ACCEPTED,
            json!({ "group": name, "epoch": epoch, "leader": leader }),
        )),
        DaemonResponse::Error { message } => Err(ApiError::from_daemon(&message)),
        DaemonResponse::Status { .. } => Err(unexpected()),
    }
}

async fn maintenance(
    _: WriteAccess,
    State(st): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = group_name(name)?;
    let b: MaintenanceBody = parse_body(&body, None, r#"{"on": true} or {"on": false}"#)?;
    let req = Request::Maintenance {
        group: name.clone(),
        on: b.on,
    };
    match call(&st, req, st.inner.limits.call).await? {
        DaemonResponse::Accepted { leader, .. } => Ok(json(
            StatusCode::ACCEPTED,
            json!({ "group": name, "maintenance": b.on, "leader": leader }),
        )),
        DaemonResponse::Error { message } => Err(ApiError::from_daemon(&message)),
        DaemonResponse::Status { .. } => Err(unexpected()),
    }
}

async fn metrics(_: ReadAccess, State(st): State<AppState>) -> Response {
    let text = st.inner.handles.metrics.borrow().clone();
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
}

async fn health_check(_: ReadAccess, State(st): State<AppState>) -> Response {
    match status(&st, st.inner.limits.health).await {
        Ok(s) => json(
            StatusCode::OK,
            json!({ "status": "ok", "node_id": s["node_id"] }),
        ),
        Err(e) => {
            let error = if e.code == "timeout" {
                format!(
                    "the daemon loop did not answer within {} ms",
                    st.inner.limits.health.as_millis()
                )
            } else {
                e.message
            };
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "status": "unavailable", "error": error, "code": e.code }),
            )
        }
    }
}

/// Query of `/primary` and `/replica`.
#[derive(Debug, Deserialize)]
struct HealthQuery {
    group: Option<String>,
    max_lag_bytes: Option<String>,
}

async fn primary(
    _: ReadAccess,
    State(st): State<AppState>,
    q: Result<Query<HealthQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (group, _) = health_query(q, false)?;
    health_answer(&st, &group, Check::Primary).await
}

async fn replica(
    _: ReadAccess,
    State(st): State<AppState>,
    q: Result<Query<HealthQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (group, max_lag_bytes) = health_query(q, true)?;
    health_answer(&st, &group, Check::Replica { max_lag_bytes }).await
}

fn health_query(
    q: Result<Query<HealthQuery>, QueryRejection>,
    lag_allowed: bool,
) -> Result<(String, Option<u64>), ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))?;
    let group = match q.group {
        Some(g) if !g.is_empty() => g,
        _ => {
            return Err(ApiError::bad_request(
                "missing query parameter group (e.g. ?group=mymaster)",
            ))
        }
    };
    let lag = match q.max_lag_bytes {
        None => None,
        Some(_) if !lag_allowed => {
            return Err(ApiError::bad_request(
                "max_lag_bytes applies to /replica only",
            ))
        }
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "max_lag_bytes: expected a non-negative integer, got {s:?}"
            ))
        })?),
    };
    Ok((group, lag))
}

/// `/primary` and `/replica` answer within the health limit (1 s): a daemon
/// loop that does not answer in time is not known healthy (503).
async fn health_answer(st: &AppState, group: &str, check: Check) -> Result<Response, ApiError> {
    let status = match status(st, st.inner.limits.health).await {
        Ok(s) => s,
        Err(e) if matches!(e.code, "timeout" | "unavailable") => {
            let reason = if e.code == "timeout" {
                format!(
                    "the daemon loop did not answer within {} ms",
                    st.inner.limits.health.as_millis()
                )
            } else {
                e.message
            };
            return Ok(json(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "ok": false, "group": group, "reason": reason }),
            ));
        }
        Err(e) => return Err(e),
    };
    let v = health::evaluate(&status, group, check)?;
    let code = if v.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json(code, v.body))
}

#[cfg(test)]
mod tests;
