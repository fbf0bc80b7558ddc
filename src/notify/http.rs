//! Slack incoming webhooks and generic JSON webhooks over HTTP(S) (reqwest,
//! rustls). Redirects are not followed. 2xx is success; 408, 429, 5xx and
//! network errors are retried; other statuses are permanent failures. The
//! Slack URL carries Slack's token, so it never appears in a message.

use super::config::{SlackConfig, WebhookConfig};
use super::types::{rfc3339_ms, Kind, Notification, Severity};
use super::AttemptError;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::time::Duration;

/// Header carrying the HMAC-SHA256 of the body: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Raftinel-Signature";
/// Header carrying the event id.
pub const EVENT_ID_HEADER: &str = "X-Raftinel-Event-Id";
/// Header carrying the event kind (`failover-completed`, `alert`...).
pub const EVENT_HEADER: &str = "X-Raftinel-Event";
/// Longest text Slack accepts in a section block.
const SLACK_SECTION_MAX: usize = 3000;

pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("raftinel/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// `sha256=<lowercase hex HMAC-SHA256(secret, body)>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

/// The JSON body of a webhook: every field of the notification, plus
/// `version`, `time` (RFC 3339) and, for alerts, `alert: {name, firing}`.
#[derive(Serialize)]
struct WebhookPayload<'a> {
    version: u32,
    #[serde(flatten)]
    notification: &'a Notification,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<AlertPayload<'a>>,
}

#[derive(Serialize)]
struct AlertPayload<'a> {
    name: &'a str,
    firing: bool,
}

/// The webhook body (documented in docs/notifications.md).
pub fn webhook_body(n: &Notification) -> Vec<u8> {
    let alert = match &n.kind {
        Kind::Alert { name, firing } => Some(AlertPayload {
            name,
            firing: *firing,
        }),
        _ => None,
    };
    let payload = WebhookPayload {
        version: 1,
        notification: n,
        time: rfc3339_ms(n.timestamp_ms),
        alert,
    };
    serde_json::to_vec(&payload).unwrap_or_default()
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Slack's message format: `text` (the fallback shown in notifications) and
/// `blocks`: a `section` with the title and the body (mrkdwn) and a
/// `context` with severity, event id and time.
pub fn slack_body(n: &Notification) -> serde_json::Value {
    let emoji = match (&n.kind, n.severity) {
        (Kind::Alert { firing: false, .. }, _) | (Kind::QuorumRegained, _) => ":white_check_mark:",
        (_, Severity::Critical) => ":rotating_light:",
        (_, Severity::Warning) => ":warning:",
        (_, Severity::Info) => ":information_source:",
    };
    let head = format!("{emoji} *{}*\n", slack_escape(&n.title));
    // The body in a code block keeps its alignment; cut to Slack's limit.
    let room = SLACK_SECTION_MAX.saturating_sub(head.chars().count() + 8);
    let section = format!(
        "{head}```{}```",
        truncate_chars(&slack_escape(n.body.trim_end()), room)
    );
    serde_json::json!({
        "text": n.title,
        "blocks": [
            {
                "type": "section",
                "text": { "type": "mrkdwn", "text": section }
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": format!(
                            "{} · event `{}` · {}",
                            n.severity,
                            slack_escape(&n.id),
                            rfc3339_ms(n.timestamp_ms)
                        )
                    }
                ]
            }
        ]
    })
}

pub(crate) struct SlackSender {
    client: reqwest::Client,
    url: crate::config::Secret,
}

impl SlackSender {
    pub(crate) fn new(cfg: &SlackConfig, timeout: Duration) -> Result<SlackSender, String> {
        Ok(SlackSender {
            client: client(timeout).map_err(|e| format!("slack: {e}"))?,
            url: cfg.webhook_url.clone(),
        })
    }

    pub(crate) async fn send(&self, n: &Notification) -> Result<(), AttemptError> {
        let body = serde_json::to_vec(&slack_body(n)).unwrap_or_default();
        post(
            &self.client,
            "slack webhook",
            self.url.expose(),
            true,
            body,
            Vec::new(),
        )
        .await
    }
}

pub(crate) struct WebhookSender {
    client: reqwest::Client,
    cfg: WebhookConfig,
}

impl WebhookSender {
    pub(crate) fn new(cfg: &WebhookConfig, timeout: Duration) -> Result<WebhookSender, String> {
        Ok(WebhookSender {
            client: client(timeout)
                .map_err(|e| format!("webhook {}: {e}", redact_url(&cfg.url)))?,
            cfg: cfg.clone(),
        })
    }

    pub(crate) async fn send(&self, n: &Notification) -> Result<(), AttemptError> {
        let body = webhook_body(n);
        let mut headers = vec![
            (EVENT_ID_HEADER, n.id.clone()),
            (EVENT_HEADER, n.kind.name().to_string()),
        ];
        if let Some(secret) = &self.cfg.secret {
            headers.push((
                SIGNATURE_HEADER,
                signature(secret.expose().as_bytes(), &body),
            ));
        }
        post(&self.client, "webhook", &self.cfg.url, false, body, headers).await
    }
}

/// POSTs a JSON body. `secret_url`: the URL must not appear in errors.
async fn post(
    client: &reqwest::Client,
    what: &str,
    url: &str,
    secret_url: bool,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
) -> Result<(), AttemptError> {
    let label = if secret_url {
        what.to_string()
    } else {
        format!("{what} {}", redact_url(url))
    };
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            // without_url(): reqwest's message names the URL otherwise.
            let detail = error_chain(&e.without_url());
            return Err(AttemptError::transient(format!("{label}: {detail}")));
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    let text = truncate_chars(text.trim(), 200);
    let message = if text.is_empty() {
        format!("{label}: HTTP {status}")
    } else {
        format!("{label}: HTTP {status}: {text}")
    };
    let retry = status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
    if retry {
        Err(AttemptError::transient(message))
    } else {
        Err(AttemptError::permanent(message))
    }
}

/// The URL without user info and query string (they may hold tokens), for
/// messages.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            if u.query().is_some() {
                u.set_query(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}

/// An error and its sources: `error sending request: connection refused`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_payload_has_text_and_blocks() {
        let n = Notification::failover_completed(
            "mymaster",
            7,
            &"10.0.0.1:6379".parse().unwrap(),
            &"10.0.0.2:6379".parse().unwrap(),
            1200,
            vec![],
            0,
        );
        let v = slack_body(&n);
        assert_eq!(v["text"], n.title);
        assert_eq!(v["blocks"][0]["type"], "section");
        assert_eq!(v["blocks"][0]["text"]["type"], "mrkdwn");
        let t = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(t.starts_with(":rotating_light: *[raftinel] mymaster: 10.0.0.1:6379 → 10.0.0.2:6379 promoted (epoch 7)*"), "{t}");
        assert_eq!(v["blocks"][1]["type"], "context");
        assert!(v["blocks"][1]["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("event `mymaster/7/failover-completed`"));
    }

    #[test]
    fn slack_section_is_cut_to_the_limit() {
        let mut n = Notification::test("c", 0);
        n.body = "x".repeat(10_000);
        let v = slack_body(&n);
        let t = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(t.chars().count() <= SLACK_SECTION_MAX, "{}", t.len());
    }

    #[test]
    fn webhook_body_is_the_notification_plus_version_and_alert() {
        let t = crate::alerts::AlertTransition {
            name: "RedisMemoryHigh".into(),
            group: "g".into(),
            instance: Some("h:1".into()),
            firing: true,
            value: 90.0,
            threshold: 80.0,
            severity: Severity::Warning,
            message: "used memory 90% of maxmemory".into(),
            since_ms: 5,
        };
        let n = Notification::from_alert(&t, 3, 10);
        let v: serde_json::Value = serde_json::from_slice(&webhook_body(&n)).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["id"], n.id);
        assert_eq!(v["kind"], "alert");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["alert"]["name"], "RedisMemoryHigh");
        assert_eq!(v["alert"]["firing"], true);
        assert_eq!(v["instance"], "h:1");
        assert_eq!(v["time"], "1970-01-01T00:00:00.010Z");
    }

    #[test]
    fn urls_in_messages_lose_credentials_and_queries() {
        assert_eq!(
            redact_url("https://user:pw@hooks.example.com/x/y?token=abc"),
            "https://hooks.example.com/x/y?***"
        );
        assert_eq!(
            redact_url("http://127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080/hook"
        );
    }

    #[test]
    fn the_http_client_builds_with_rustls() {
        client(Duration::from_secs(1)).unwrap();
    }
}
