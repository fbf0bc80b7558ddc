//! The `[[notify]]` tables of the config file: one table per channel.
//!
//! [`RawChannel`] is the serde shape (unknown keys rejected); config.rs embeds
//! it as `#[serde(default)] notify: Vec<Spanned<RawChannel>>` and validates each
//! with [`RawChannel::validate`] (or all at once with [`validate_channels`]).
//! Errors are [`NotifyConfigError`]: a dotted key (`notify[1].smtp_port`), the
//! byte span of the offending value where known, and what was expected. No
//! message ever contains a secret value (passwords, webhook secrets, Slack
//! webhook URLs).
//!
//! Secrets follow the rest of the config: exactly one of `<name>`,
//! `<name>_env` (an environment variable) or `<name>_file` (a file, trailing
//! newline removed; relative paths are relative to the config file).
//!
//! See docs/notifications.md for the syntax.

use super::types::{Severity, KIND_NAMES};
use crate::config::Secret;
use serde::Deserialize;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use toml::Spanned;

/// Default `retry_deadline_ms`: give up on a delivery after 5 minutes.
pub const DEFAULT_RETRY_DEADLINE_MS: u64 = 300_000;
/// Default `retry_initial_ms`: the first retry comes after 1 s, then doubles.
pub const DEFAULT_RETRY_INITIAL_MS: u64 = 1_000;
/// Default `retry_max_interval_ms`: retries at least every minute.
pub const DEFAULT_RETRY_MAX_INTERVAL_MS: u64 = 60_000;
/// Default `repeat_interval_ms`: the same alert of the same group at most once
/// per 10 minutes on a channel.
pub const DEFAULT_REPEAT_INTERVAL_MS: u64 = 600_000;
/// Default `timeout_ms` of one email / HTTP attempt.
pub const DEFAULT_NETWORK_TIMEOUT_MS: u64 = 10_000;
/// Default `timeout_ms` of one script run (Sentinel's script max runtime).
pub const DEFAULT_SCRIPT_TIMEOUT_MS: u64 = 60_000;
/// Default `queue_size`: notifications waiting for one channel.
pub const DEFAULT_QUEUE_SIZE: usize = 256;

/// All channels, in config order. Names are unique.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotifyConfig {
    pub channels: Vec<ChannelConfig>,
}

impl NotifyConfig {
    pub fn channel(&self, name: &str) -> Option<&ChannelConfig> {
        self.channels.iter().find(|c| c.name == name)
    }
}

/// One validated channel.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    pub filter: Filter,
    pub delivery: DeliveryPolicy,
}

impl ChannelConfig {
    /// One line for `raftinel check-config`; secrets shown as `***`.
    pub fn summary(&self) -> String {
        let what = match &self.kind {
            ChannelKind::Email(e) => {
                let tls = match e.tls {
                    SmtpTls::None => "no TLS",
                    SmtpTls::Starttls => "STARTTLS",
                    SmtpTls::Implicit => "implicit TLS",
                };
                let auth = match &e.username {
                    Some(u) => format!(", auth {u}/***"),
                    None => String::new(),
                };
                format!(
                    "email via {}:{} ({tls}{auth}) from {} to {}",
                    e.smtp_host,
                    e.smtp_port,
                    e.from,
                    e.to.join(", ")
                )
            }
            ChannelKind::Slack(_) => "slack incoming webhook *** (URL is a secret)".to_string(),
            ChannelKind::Webhook(w) => format!(
                "webhook POST {}{}",
                super::http::redact_url(&w.url),
                if w.secret.is_some() {
                    ", signed (secret ***)"
                } else {
                    ", unsigned"
                }
            ),
            ChannelKind::Script(s) => {
                let mut parts = Vec::new();
                if let Some(p) = &s.notification_script {
                    parts.push(format!("notification_script {}", p.display()));
                }
                if let Some(p) = &s.client_reconfig_script {
                    parts.push(format!("client_reconfig_script {}", p.display()));
                }
                if s.on_every_node {
                    parts.push("on every node".to_string());
                }
                format!("script: {}", parts.join(", "))
            }
        };
        let list = |v: &[String]| {
            if v.is_empty() {
                "all".to_string()
            } else {
                v.join(", ")
            }
        };
        format!(
            "{}: {what}; groups {}, events {}, min severity {}; retries until {} s, alerts at most every {} s",
            self.name,
            list(&self.filter.groups),
            list(&self.filter.events),
            self.filter.min_severity,
            self.delivery.retry_deadline.as_secs(),
            self.delivery.repeat_interval.as_secs()
        )
    }
}

/// Which notifications a channel receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Group names; empty = every group (and cluster-wide events).
    pub groups: Vec<String>,
    pub min_severity: Severity,
    /// Kind names (`failover-completed`, `alert`, `alert:RedisMemoryHigh`...);
    /// empty = every kind.
    pub events: Vec<String>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            groups: Vec::new(),
            min_severity: Severity::Info,
            events: Vec::new(),
        }
    }
}

impl Filter {
    /// Whether a notification passes. Cluster-wide notifications (empty
    /// group) pass any `groups` filter.
    pub fn accepts(&self, n: &super::Notification) -> bool {
        (self.groups.is_empty() || n.group.is_empty() || self.groups.contains(&n.group))
            && n.severity >= self.min_severity
            && (self.events.is_empty() || self.events.iter().any(|e| n.kind.matches_filter(e)))
    }
}

/// Retries, rate limiting and queueing of one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// A notification not delivered this long after it was submitted is
    /// given up (reported as failed).
    pub retry_deadline: Duration,
    /// Delay before the first retry; doubles after each failure...
    pub retry_initial: Duration,
    /// ...up to this.
    pub retry_max_interval: Duration,
    /// The same alert (name + group) at most once per this interval; changes
    /// within it are grouped into one message at its end.
    pub repeat_interval: Duration,
    /// Timeout of one attempt (SMTP conversation, HTTP request, script run;
    /// a script still running then is killed).
    pub attempt_timeout: Duration,
    /// Notifications waiting for this channel; beyond it new ones are dropped
    /// (and reported), never blocking the caller.
    pub queue_size: usize,
}

impl DeliveryPolicy {
    /// The defaults for a channel of this type.
    pub fn defaults_for(script: bool) -> Self {
        DeliveryPolicy {
            retry_deadline: Duration::from_millis(DEFAULT_RETRY_DEADLINE_MS),
            retry_initial: Duration::from_millis(DEFAULT_RETRY_INITIAL_MS),
            retry_max_interval: Duration::from_millis(DEFAULT_RETRY_MAX_INTERVAL_MS),
            repeat_interval: Duration::from_millis(DEFAULT_REPEAT_INTERVAL_MS),
            attempt_timeout: Duration::from_millis(if script {
                DEFAULT_SCRIPT_TIMEOUT_MS
            } else {
                DEFAULT_NETWORK_TIMEOUT_MS
            }),
            queue_size: DEFAULT_QUEUE_SIZE,
        }
    }
}

/// The channel type and its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum ChannelKind {
    Email(EmailConfig),
    Slack(SlackConfig),
    Webhook(WebhookConfig),
    Script(ScriptConfig),
}

impl ChannelKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            ChannelKind::Email(_) => "email",
            ChannelKind::Slack(_) => "slack",
            ChannelKind::Webhook(_) => "webhook",
            ChannelKind::Script(_) => "script",
        }
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text (a local relay).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmailConfig {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    /// SMTP AUTH user; with `password`, or neither.
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `raftinel@example.com` or `Raftinel <raftinel@example.com>`.
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SlackConfig {
    /// The incoming-webhook URL (it contains the token: a secret).
    pub webhook_url: Secret,
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    /// When set, each request carries `X-Raftinel-Signature: sha256=<hex
    /// HMAC-SHA256 of the body>`.
    pub secret: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptConfig {
    /// Called as `<script> <event-type> <event-description>` (Sentinel's
    /// `notification-script`).
    pub notification_script: Option<PathBuf>,
    /// Called as `<script> <master-name> <role> <state> <from-ip> <from-port>
    /// <to-ip> <to-port>` when the master changed (Sentinel's
    /// `client-reconfig-script`).
    pub client_reconfig_script: Option<PathBuf>,
    /// Run on every daemon (role `leader` on the active one, `observer` on the
    /// others), as Sentinel runs its scripts on every sentinel; for scripts
    /// that act on the local host (moving a virtual IP). Default: only the
    /// active daemon runs them.
    pub on_every_node: bool,
}

/// Why a `[[notify]]` table was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct NotifyConfigError {
    /// Dotted key, e.g. `notify[0].smtp_port`.
    pub key: String,
    /// Byte range of the offending value in the config text, where known.
    pub span: Option<Range<usize>>,
    /// What was wrong and what is expected. Never contains a secret.
    pub message: String,
    /// The error is about a secret (missing, unreadable file, unset variable).
    pub secret: bool,
}

/// One `[[notify]]` table as written. Unknown keys are rejected; keys that do
/// not belong to the channel's `type` are rejected by [`RawChannel::validate`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    #[serde(default)]
    pub groups: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub min_severity: Option<Spanned<String>>,
    #[serde(default)]
    pub events: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub retry_deadline_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub retry_initial_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub retry_max_interval_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub repeat_interval_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    pub queue_size: Option<Spanned<usize>>,
    // email
    #[serde(default)]
    pub smtp_host: Option<Spanned<String>>,
    #[serde(default)]
    pub smtp_port: Option<Spanned<u16>>,
    #[serde(default)]
    pub tls: Option<Spanned<String>>,
    #[serde(default)]
    pub username: Option<Spanned<String>>,
    /// `toml::Value`: a wrongly typed secret must not be echoed by serde.
    #[serde(default)]
    pub password: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub password_env: Option<Spanned<String>>,
    #[serde(default)]
    pub password_file: Option<Spanned<String>>,
    #[serde(default)]
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    pub to: Option<Spanned<Vec<String>>>,
    // slack
    #[serde(default)]
    pub webhook_url: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub webhook_url_env: Option<Spanned<String>>,
    #[serde(default)]
    pub webhook_url_file: Option<Spanned<String>>,
    // webhook
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    #[serde(default)]
    pub secret: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub secret_env: Option<Spanned<String>>,
    #[serde(default)]
    pub secret_file: Option<Spanned<String>>,
    // script
    #[serde(default)]
    pub notification_script: Option<Spanned<String>>,
    #[serde(default)]
    pub client_reconfig_script: Option<Spanned<String>>,
    #[serde(default)]
    pub on_every_node: Option<Spanned<bool>>,
}

/// Where validation runs: the key prefix (`notify[0].`), the directory that
/// relative paths are relative to, and the groups of the config (to reject a
/// `groups` filter naming an unknown group; `None` skips that check).
#[derive(Clone, Copy, Debug)]
pub struct ValidateCtx<'a> {
    pub key_prefix: &'a str,
    pub base_dir: &'a Path,
    pub known_groups: Option<&'a [String]>,
}

/// Validates every channel (`notify[i].` prefixes) and checks that names are
/// unique.
pub fn validate_channels(
    raw: Vec<RawChannel>,
    base_dir: &Path,
    known_groups: Option<&[String]>,
) -> Result<NotifyConfig, NotifyConfigError> {
    let mut channels: Vec<ChannelConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let prefix = format!("notify[{i}].");
        let name_span = r.name.span();
        let c = r.validate(ValidateCtx {
            key_prefix: &prefix,
            base_dir,
            known_groups,
        })?;
        if let Some(j) = channels.iter().position(|o| o.name == c.name) {
            return Err(invalid(
                format!("{prefix}name"),
                Some(name_span),
                format!(
                    "channel name {:?} is already used by notify[{j}]; expected unique names",
                    c.name
                ),
            ));
        }
        channels.push(c);
    }
    Ok(NotifyConfig { channels })
}

/// Parses the `[[notify]]` tables of a whole config text (other keys are
/// ignored) and validates them. For tools and tests; the daemon's config
/// loader embeds [`RawChannel`] instead. Errors are `line N: key: message`.
pub fn parse_notify(text: &str, base_dir: &Path) -> Result<NotifyConfig, String> {
    #[derive(Deserialize)]
    struct Doc {
        #[serde(default)]
        notify: Vec<RawChannel>,
    }
    let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let doc: Doc = toml::from_str(text).map_err(|e| {
        // e.message(), not Display: Display quotes the source line, which may
        // hold a secret.
        let msg = e.message().trim().replace('\n', "; ");
        match e.span() {
            Some(s) => format!("line {}: {msg}", line(s.start)),
            None => msg,
        }
    })?;
    validate_channels(doc.notify, base_dir, None).map_err(|e| match &e.span {
        Some(s) => format!("line {}: {e}", line(s.start)),
        None => e.to_string(),
    })
}

fn invalid(
    key: String,
    span: Option<Range<usize>>,
    message: impl Into<String>,
) -> NotifyConfigError {
    NotifyConfigError {
        key,
        span,
        message: message.into(),
        secret: false,
    }
}

fn secret_err(
    key: String,
    span: Option<Range<usize>>,
    message: impl Into<String>,
) -> NotifyConfigError {
    NotifyConfigError {
        key,
        span,
        message: message.into(),
        secret: true,
    }
}

/// The keys each channel type accepts besides the common ones.
const EMAIL_KEYS: &[&str] = &[
    "smtp_host",
    "smtp_port",
    "tls",
    "username",
    "password",
    "password_env",
    "password_file",
    "from",
    "to",
];
const SLACK_KEYS: &[&str] = &["webhook_url", "webhook_url_env", "webhook_url_file"];
const WEBHOOK_KEYS: &[&str] = &["url", "secret", "secret_env", "secret_file"];
const SCRIPT_KEYS: &[&str] = &[
    "notification_script",
    "client_reconfig_script",
    "on_every_node",
];

impl RawChannel {
    /// (key, span) of every type-specific key that is set.
    fn specific_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        fn s<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
            v.as_ref().map(Spanned::span)
        }
        [
            ("smtp_host", s(&self.smtp_host)),
            ("smtp_port", s(&self.smtp_port)),
            ("tls", s(&self.tls)),
            ("username", s(&self.username)),
            ("password", s(&self.password)),
            ("password_env", s(&self.password_env)),
            ("password_file", s(&self.password_file)),
            ("from", s(&self.from)),
            ("to", s(&self.to)),
            ("webhook_url", s(&self.webhook_url)),
            ("webhook_url_env", s(&self.webhook_url_env)),
            ("webhook_url_file", s(&self.webhook_url_file)),
            ("url", s(&self.url)),
            ("secret", s(&self.secret)),
            ("secret_env", s(&self.secret_env)),
            ("secret_file", s(&self.secret_file)),
            ("notification_script", s(&self.notification_script)),
            ("client_reconfig_script", s(&self.client_reconfig_script)),
            ("on_every_node", s(&self.on_every_node)),
        ]
        .into_iter()
        .filter_map(|(k, sp)| sp.map(|sp| (k, sp)))
        .collect()
    }

    /// Validates this table into a [`ChannelConfig`]. Reads `*_env`
    /// variables and `*_file` secret files, and checks that scripts exist and
    /// are executable; touches no network.
    pub fn validate(self, ctx: ValidateCtx<'_>) -> Result<ChannelConfig, NotifyConfigError> {
        let p = ctx.key_prefix;
        let key = |k: &str| format!("{p}{k}");

        // name
        let name = self.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                key("name"),
                Some(self.name.span()),
                format!(
                    "expected a non-empty name of letters, digits, '-', '_' or '.', got {name:?}"
                ),
            ));
        }

        // type, and keys that do not belong to it
        let type_name = self.kind.get_ref().as_str();
        let allowed: &[&str] = match type_name {
            "email" => EMAIL_KEYS,
            "slack" => SLACK_KEYS,
            "webhook" => WEBHOOK_KEYS,
            "script" => SCRIPT_KEYS,
            other => {
                return Err(invalid(
                    key("type"),
                    Some(self.kind.span()),
                    format!(
                    "expected one of \"email\", \"slack\", \"webhook\", \"script\", got {other:?}"
                ),
                ))
            }
        };
        if let Some((k, sp)) = self
            .specific_keys()
            .into_iter()
            .find(|(k, _)| !allowed.contains(k))
        {
            return Err(invalid(
                key(k),
                Some(sp),
                format!(
                    "{k} is not a key of a {type_name} channel; expected only the common keys and {}",
                    allowed.join(", ")
                ),
            ));
        }

        let filter = self.filter(&ctx)?;
        let delivery = self.delivery(&ctx, type_name == "script")?;
        let kind = match type_name {
            "email" => ChannelKind::Email(self.email(&ctx)?),
            "slack" => ChannelKind::Slack(self.slack(&ctx)?),
            "webhook" => ChannelKind::Webhook(self.webhook(&ctx)?),
            _ => ChannelKind::Script(self.script(&ctx)?),
        };
        Ok(ChannelConfig {
            name,
            kind,
            filter,
            delivery,
        })
    }

    fn filter(&self, ctx: &ValidateCtx<'_>) -> Result<Filter, NotifyConfigError> {
        let p = ctx.key_prefix;
        let mut f = Filter::default();
        if let Some(g) = &self.groups {
            for name in g.get_ref() {
                if let Some(known) = ctx.known_groups {
                    if !known.contains(name) {
                        return Err(invalid(
                            format!("{p}groups"),
                            Some(g.span()),
                            format!(
                                "no [[group]] is named {name:?}; expected one of {}",
                                quoted_list(known.iter().map(String::as_str))
                            ),
                        ));
                    }
                }
            }
            f.groups = g.get_ref().clone();
        }
        if let Some(s) = &self.min_severity {
            f.min_severity = Severity::from_str(s.get_ref())
                .map_err(|m| invalid(format!("{p}min_severity"), Some(s.span()), m))?;
        }
        if let Some(e) = &self.events {
            for ev in e.get_ref() {
                let ok = KIND_NAMES.contains(&ev.as_str())
                    || ev
                        .strip_prefix("alert:")
                        .is_some_and(|a| crate::alerts::ALERT_NAMES.contains(&a));
                if !ok {
                    return Err(invalid(
                        format!("{p}events"),
                        Some(e.span()),
                        format!(
                            "unknown event {ev:?}; expected some of {}, or alert:<name> with a name among {}",
                            quoted_list(KIND_NAMES.iter().copied()),
                            quoted_list(crate::alerts::ALERT_NAMES.iter().copied())
                        ),
                    ));
                }
            }
            f.events = e.get_ref().clone();
        }
        Ok(f)
    }

    fn delivery(
        &self,
        ctx: &ValidateCtx<'_>,
        script: bool,
    ) -> Result<DeliveryPolicy, NotifyConfigError> {
        let p = ctx.key_prefix;
        let mut d = DeliveryPolicy::defaults_for(script);
        let ms = |name: &str, v: &Option<Spanned<u64>>, into: &mut Duration| {
            if let Some(v) = v {
                if *v.get_ref() == 0 {
                    return Err(invalid(
                        format!("{p}{name}"),
                        Some(v.span()),
                        "expected a positive number of milliseconds, got 0",
                    ));
                }
                *into = Duration::from_millis(*v.get_ref());
            }
            Ok(())
        };
        ms(
            "retry_deadline_ms",
            &self.retry_deadline_ms,
            &mut d.retry_deadline,
        )?;
        ms(
            "retry_initial_ms",
            &self.retry_initial_ms,
            &mut d.retry_initial,
        )?;
        ms(
            "retry_max_interval_ms",
            &self.retry_max_interval_ms,
            &mut d.retry_max_interval,
        )?;
        ms(
            "repeat_interval_ms",
            &self.repeat_interval_ms,
            &mut d.repeat_interval,
        )?;
        ms("timeout_ms", &self.timeout_ms, &mut d.attempt_timeout)?;
        if let Some(v) = &self.retry_max_interval_ms {
            if d.retry_max_interval < d.retry_initial {
                return Err(invalid(
                    format!("{p}retry_max_interval_ms"),
                    Some(v.span()),
                    format!(
                        "expected at least retry_initial_ms ({} ms), got {} ms",
                        d.retry_initial.as_millis(),
                        v.get_ref()
                    ),
                ));
            }
        }
        if let Some(q) = &self.queue_size {
            if *q.get_ref() == 0 {
                return Err(invalid(
                    format!("{p}queue_size"),
                    Some(q.span()),
                    "expected a positive number of notifications, got 0",
                ));
            }
            d.queue_size = *q.get_ref();
        }
        Ok(d)
    }

    fn email(&self, ctx: &ValidateCtx<'_>) -> Result<EmailConfig, NotifyConfigError> {
        let p = ctx.key_prefix;
        let host = match &self.smtp_host {
            Some(h)
                if !h.get_ref().trim().is_empty() && !h.get_ref().contains(char::is_whitespace) =>
            {
                h.get_ref().clone()
            }
            Some(h) => {
                return Err(invalid(
                    format!("{p}smtp_host"),
                    Some(h.span()),
                    format!("expected a host name or IP address, got {:?}", h.get_ref()),
                ))
            }
            None => {
                return Err(invalid(
                    format!("{p}smtp_host"),
                    None,
                    "missing: an email channel needs smtp_host (the SMTP server's host name)",
                ))
            }
        };
        let tls = match &self.tls {
            None => SmtpTls::Starttls,
            Some(t) => match t.get_ref().as_str() {
                "none" => SmtpTls::None,
                "starttls" => SmtpTls::Starttls,
                "implicit" => SmtpTls::Implicit,
                other => {
                    return Err(invalid(
                        format!("{p}tls"),
                        Some(t.span()),
                        format!(
                            "expected one of \"none\", \"starttls\", \"implicit\", got {other:?}"
                        ),
                    ))
                }
            },
        };
        let port = match &self.smtp_port {
            Some(v) if *v.get_ref() == 0 => {
                return Err(invalid(
                    format!("{p}smtp_port"),
                    Some(v.span()),
                    "expected a port 1-65535, got 0",
                ))
            }
            Some(v) => *v.get_ref(),
            None => match tls {
                SmtpTls::None => 25,
                SmtpTls::Starttls => 587,
                SmtpTls::Implicit => 465,
            },
        };
        let from = match &self.from {
            Some(f) => {
                check_mailbox(f.get_ref())
                    .map_err(|m| invalid(format!("{p}from"), Some(f.span()), m))?;
                f.get_ref().clone()
            }
            None => return Err(invalid(
                format!("{p}from"),
                None,
                "missing: an email channel needs from (e.g. \"raftinel <raftinel@example.com>\")",
            )),
        };
        let to = match &self.to {
            Some(t) if t.get_ref().is_empty() => {
                return Err(invalid(
                    format!("{p}to"),
                    Some(t.span()),
                    "expected at least one recipient address, got []",
                ))
            }
            Some(t) => {
                for addr in t.get_ref() {
                    check_mailbox(addr)
                        .map_err(|m| invalid(format!("{p}to"), Some(t.span()), m))?;
                }
                t.get_ref().clone()
            }
            None => {
                return Err(invalid(
                    format!("{p}to"),
                    None,
                    "missing: an email channel needs to (a list of recipient addresses)",
                ))
            }
        };
        let username = match &self.username {
            Some(u) if u.get_ref().is_empty() => {
                return Err(invalid(
                    format!("{p}username"),
                    Some(u.span()),
                    "expected a non-empty SMTP user name, got \"\"",
                ))
            }
            Some(u) => Some(u.get_ref().clone()),
            None => None,
        };
        let password = resolve_secret(
            ctx,
            "password",
            self.password.as_ref(),
            self.password_env.as_ref(),
            self.password_file.as_ref(),
        )?;
        match (&username, &password) {
            (Some(_), None) => {
                return Err(secret_err(
                    format!("{p}password"),
                    self.username.as_ref().map(Spanned::span),
                    "username is set but no password; expected one of password, password_env or password_file (or neither username nor password)",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    format!("{p}username"),
                    None,
                    "a password is set but no username; expected both (SMTP AUTH) or neither",
                ))
            }
            _ => {}
        }
        Ok(EmailConfig {
            smtp_host: host,
            smtp_port: port,
            tls,
            username,
            password,
            from,
            to,
        })
    }

    fn slack(&self, ctx: &ValidateCtx<'_>) -> Result<SlackConfig, NotifyConfigError> {
        let p = ctx.key_prefix;
        let url = resolve_secret(
            ctx,
            "webhook_url",
            self.webhook_url.as_ref(),
            self.webhook_url_env.as_ref(),
            self.webhook_url_file.as_ref(),
        )?
        .ok_or_else(|| {
            secret_err(
                format!("{p}webhook_url"),
                None,
                "missing: a slack channel needs one of webhook_url, webhook_url_env or webhook_url_file (the incoming-webhook URL)",
            )
        })?;
        // The URL holds Slack's token: say what is wrong, never echo it.
        check_http_url(url.expose()).map_err(|why| {
            secret_err(
                format!("{p}webhook_url"),
                self.webhook_url.as_ref().map(Spanned::span),
                format!("expected an http(s) URL (value not shown: it is a secret): {why}"),
            )
        })?;
        Ok(SlackConfig { webhook_url: url })
    }

    fn webhook(&self, ctx: &ValidateCtx<'_>) -> Result<WebhookConfig, NotifyConfigError> {
        let p = ctx.key_prefix;
        let url = match &self.url {
            Some(u) => {
                check_http_url(u.get_ref()).map_err(|why| {
                    invalid(
                        format!("{p}url"),
                        Some(u.span()),
                        format!("expected an http(s) URL, got {:?}: {why}", u.get_ref()),
                    )
                })?;
                u.get_ref().clone()
            }
            None => {
                return Err(invalid(
                    format!("{p}url"),
                    None,
                    "missing: a webhook channel needs url (where the JSON is POSTed)",
                ))
            }
        };
        let secret = resolve_secret(
            ctx,
            "secret",
            self.secret.as_ref(),
            self.secret_env.as_ref(),
            self.secret_file.as_ref(),
        )?;
        Ok(WebhookConfig { url, secret })
    }

    fn script(&self, ctx: &ValidateCtx<'_>) -> Result<ScriptConfig, NotifyConfigError> {
        let p = ctx.key_prefix;
        let path = |name: &str,
                    v: &Option<Spanned<String>>|
         -> Result<Option<PathBuf>, NotifyConfigError> {
            let Some(v) = v else { return Ok(None) };
            let k = format!("{p}{name}");
            if v.get_ref().is_empty() {
                return Err(invalid(
                    k,
                    Some(v.span()),
                    "expected a path to an executable, got \"\"",
                ));
            }
            let path = resolve_path(ctx.base_dir, v.get_ref());
            check_executable(&path).map_err(|m| invalid(k, Some(v.span()), m))?;
            Ok(Some(path))
        };
        let notification_script = path("notification_script", &self.notification_script)?;
        let client_reconfig_script = path("client_reconfig_script", &self.client_reconfig_script)?;
        if notification_script.is_none() && client_reconfig_script.is_none() {
            return Err(invalid(
                format!("{p}notification_script"),
                None,
                "missing: a script channel needs notification_script, client_reconfig_script or both",
            ));
        }
        Ok(ScriptConfig {
            notification_script,
            client_reconfig_script,
            on_every_node: self.on_every_node.as_ref().is_some_and(|v| *v.get_ref()),
        })
    }
}

fn quoted_list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn check_mailbox(s: &str) -> Result<(), String> {
    lettre::message::Mailbox::from_str(s)
        .map(|_| ())
        .map_err(|e| format!("expected an email address like \"ops@example.com\" or \"Ops <ops@example.com>\", got {s:?} ({e})"))
}

fn check_http_url(s: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(s).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(()),
        "http" | "https" => Err("no host".to_string()),
        other => Err(format!("scheme {other:?} is not http or https")),
    }
}

/// The script exists, is a file, and (on Unix) has an execute bit.
pub(crate) fn check_executable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot use script {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("script {} is not a file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!(
                "script {} is not executable (chmod +x it)",
                path.display()
            ));
        }
    }
    Ok(())
}

/// Exactly one of `<name>`, `<name>_env`, `<name>_file`, or none.
fn resolve_secret(
    ctx: &ValidateCtx<'_>,
    name: &str,
    inline: Option<&Spanned<toml::Value>>,
    env: Option<&Spanned<String>>,
    file: Option<&Spanned<String>>,
) -> Result<Option<Secret>, NotifyConfigError> {
    let p = ctx.key_prefix;
    let key = |suffix: &str| format!("{p}{name}{suffix}");
    let given: Vec<(String, Range<usize>)> = [
        inline.map(|v| (key(""), v.span())),
        env.map(|v| (key("_env"), v.span())),
        file.map(|v| (key("_file"), v.span())),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        let names: Vec<&str> = given.iter().map(|(k, _)| k.as_str()).collect();
        return Err(secret_err(
            given[1].0.clone(),
            Some(given[1].1.clone()),
            format!(
                "{} are all set; expected at most one of {name}, {name}_env, {name}_file",
                names.join(" and ")
            ),
        ));
    }
    let (value, k, span, what) = if let Some(v) = inline {
        match v.get_ref() {
            toml::Value::String(s) => (s.clone(), key(""), v.span(), "is empty".to_string()),
            other => {
                return Err(secret_err(
                    key(""),
                    Some(v.span()),
                    format!("expected a string, got a {}", other.type_str()),
                ))
            }
        }
    } else if let Some(v) = env {
        let var = v.get_ref();
        if var.is_empty() || var.contains('=') || var.contains('\0') {
            return Err(secret_err(
                key("_env"),
                Some(v.span()),
                format!("expected the name of an environment variable, got {var:?}"),
            ));
        }
        match std::env::var(var) {
            Ok(s) => (
                s,
                key("_env"),
                v.span(),
                format!("environment variable {var} is empty"),
            ),
            Err(std::env::VarError::NotPresent) => {
                return Err(secret_err(
                    key("_env"),
                    Some(v.span()),
                    format!(
                        "environment variable {var} is not set; expected it to hold the {name}"
                    ),
                ))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(secret_err(
                    key("_env"),
                    Some(v.span()),
                    format!("environment variable {var} is not valid UTF-8"),
                ))
            }
        }
    } else if let Some(v) = file {
        if v.get_ref().is_empty() {
            return Err(secret_err(
                key("_file"),
                Some(v.span()),
                "expected a file path, got \"\"",
            ));
        }
        let path = resolve_path(ctx.base_dir, v.get_ref());
        match std::fs::read_to_string(&path) {
            Ok(s) => (
                s.trim_end_matches(['\n', '\r']).to_string(),
                key("_file"),
                v.span(),
                "the secret file is empty".to_string(),
            ),
            Err(e) => {
                return Err(secret_err(
                    key("_file"),
                    Some(v.span()),
                    format!("cannot read secret file {}: {e}", path.display()),
                ))
            }
        }
    } else {
        return Ok(None);
    };
    if value.is_empty() {
        return Err(secret_err(
            k,
            Some(span),
            format!("{what}; expected a non-empty {name}"),
        ));
    }
    Ok(Some(Secret::new(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NotifyConfig, String> {
        parse_notify(text, Path::new("/"))
    }

    #[test]
    fn full_email_channel() {
        let c = parse(
            r#"
[[notify]]
name = "ops-mail"
type = "email"
smtp_host = "smtp.example.com"
tls = "implicit"
username = "raftinel"
password = "hunter2-very-secret"
from = "raftinel <raftinel@example.com>"
to = ["a@example.com", "B <b@example.com>"]
groups = ["mymaster"]
min_severity = "warning"
events = ["failover-completed", "alert:RedisMemoryHigh"]
retry_deadline_ms = 60000
"#,
        )
        .unwrap();
        let ch = &c.channels[0];
        assert_eq!(ch.name, "ops-mail");
        let ChannelKind::Email(e) = &ch.kind else {
            panic!("{ch:?}")
        };
        assert_eq!(e.smtp_port, 465);
        assert_eq!(e.tls, SmtpTls::Implicit);
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.password.as_ref().unwrap().expose(), "hunter2-very-secret");
        assert_eq!(ch.filter.min_severity, Severity::Warning);
        assert_eq!(ch.delivery.retry_deadline, Duration::from_secs(60));
        assert_eq!(ch.delivery.repeat_interval, Duration::from_secs(600));
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            ch.summary(),
            "ops-mail: email via smtp.example.com:465 (implicit TLS, auth raftinel/***) from raftinel <raftinel@example.com> to a@example.com, B <b@example.com>; groups mymaster, events failover-completed, alert:RedisMemoryHigh, min severity warning; retries until 60 s, alerts at most every 600 s"
        );
    }

    #[test]
    fn errors_name_key_and_line_and_never_echo_secrets() {
        let cases: &[(&str, &str)] = &[
            (
                "[[notify]]\nname = \"x\"\ntype = \"pager\"\n",
                "line 3: notify[0].type: expected one of \"email\", \"slack\", \"webhook\", \"script\", got \"pager\"",
            ),
            (
                "[[notify]]\nname = \"s\"\ntype = \"slack\"\nsmtp_host = \"h\"\nwebhook_url = \"https://hooks.example/T/B/XYZ\"\n",
                "line 4: notify[0].smtp_host: smtp_host is not a key of a slack channel",
            ),
            (
                "[[notify]]\nname = \"s\"\ntype = \"slack\"\nwebhook_url = \"not a url SECRETTOKEN\"\n",
                "line 4: notify[0].webhook_url: expected an http(s) URL (value not shown: it is a secret)",
            ),
            (
                "[[notify]]\nname = \"m\"\ntype = \"email\"\nsmtp_host = \"h\"\nfrom = \"a@b.c\"\nto = []\n",
                "line 6: notify[0].to: expected at least one recipient address, got []",
            ),
            (
                "[[notify]]\nname = \"m\"\ntype = \"email\"\nsmtp_host = \"h\"\nfrom = \"a@b.c\"\nto = [\"x@y.z\"]\nusername = \"u\"\n",
                "line 7: notify[0].password: username is set but no password",
            ),
            (
                "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://h/x\"\nsecret = 12345\n",
                "line 5: notify[0].secret: expected a string, got a integer",
            ),
            (
                "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://h/x\"\nmin_severity = \"fatal\"\n",
                "line 5: notify[0].min_severity: expected one of",
            ),
            (
                "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://h/x\"\nevents = [\"failover\"]\n",
                "line 5: notify[0].events: unknown event \"failover\"",
            ),
            (
                "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://h/x\"\n[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://h/y\"\n",
                "line 6: notify[1].name: channel name \"w\" is already used by notify[0]",
            ),
            (
                "[[notify]]\nname = \"w\"\ntype = \"webhook\"\nurl = \"https://h/x\"\nretry_deadline_ms = 0\n",
                "line 5: notify[0].retry_deadline_ms: expected a positive number of milliseconds, got 0",
            ),
            (
                "[[notify]]\nname = \"x\"\ntype = \"script\"\nnotification_script = \"/nonexistent/notify.sh\"\n",
                "line 4: notify[0].notification_script: cannot use script /nonexistent/notify.sh",
            ),
            (
                "[[notify]]\nname = \"x\"\ntype = \"script\"\n",
                "notify[0].notification_script: missing",
            ),
            (
                "[[notify]]\nname = \"x\"\ntype = \"webhook\"\nurl = \"https://h/x\"\ncolour = \"red\"\n",
                "line 5: unknown field `colour`",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(
                err.starts_with(want),
                "for\n{text}\ngot:  {err}\nwant: {want}"
            );
            assert!(
                !err.contains("SECRETTOKEN") && !err.contains("12345"),
                "{err}"
            );
        }
    }

    #[test]
    fn secrets_from_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hook.secret"), "s3cr3t\n").unwrap();
        std::env::set_var(
            "RAFTINEL_TEST_SLACK_URL",
            "https://hooks.example.com/services/T/B/C",
        );
        let text = r#"
[[notify]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/x"
secret_file = "hook.secret"

[[notify]]
name = "chat"
type = "slack"
webhook_url_env = "RAFTINEL_TEST_SLACK_URL"
"#;
        let c = parse_notify(text, dir.path()).unwrap();
        let ChannelKind::Webhook(w) = &c.channels[0].kind else {
            panic!()
        };
        assert_eq!(w.secret.as_ref().unwrap().expose(), "s3cr3t");
        let ChannelKind::Slack(s) = &c.channels[1].kind else {
            panic!()
        };
        assert_eq!(
            s.webhook_url.expose(),
            "https://hooks.example.com/services/T/B/C"
        );

        let err = parse_notify(
            "[[notify]]\nname = \"c\"\ntype = \"slack\"\nwebhook_url_env = \"RAFTINEL_TEST_UNSET_VAR\"\n",
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "line 4: notify[0].webhook_url_env: environment variable RAFTINEL_TEST_UNSET_VAR is not set; expected it to hold the webhook_url"
        );
    }

    #[test]
    fn unknown_groups_are_rejected_when_groups_are_known() {
        let raw: RawChannel = toml::from_str(
            "name = \"w\"\ntype = \"webhook\"\nurl = \"https://h/x\"\ngroups = [\"nope\"]\n",
        )
        .unwrap();
        let known = vec!["mymaster".to_string()];
        let err = raw
            .validate(ValidateCtx {
                key_prefix: "notify[0].",
                base_dir: Path::new("/"),
                known_groups: Some(&known),
            })
            .unwrap_err();
        assert_eq!(err.key, "notify[0].groups");
        assert_eq!(
            err.message,
            "no [[group]] is named \"nope\"; expected one of \"mymaster\""
        );
        assert!(err.span.is_some());
    }

    #[test]
    fn filter_accepts() {
        use super::super::types::Notification;
        let n = Notification::objectively_down("g1", 1, &"h:1".parse().unwrap(), 2, 0, 0);
        let mut f = Filter::default();
        assert!(f.accepts(&n));
        f.groups = vec!["g2".into()];
        assert!(!f.accepts(&n));
        f.groups = vec!["g1".into()];
        f.events = vec!["sdown".into()];
        assert!(!f.accepts(&n));
        f.events = vec!["sdown".into(), "odown".into()];
        assert!(f.accepts(&n));
        f.min_severity = Severity::Critical;
        assert!(f.accepts(&n));
        let q = Notification::quorum_lost(1, 1, 3, 0, 0);
        assert!(Filter {
            groups: vec!["g1".into()],
            ..Filter::default()
        }
        .accepts(&q));
        let info = Notification::old_master_rejoined(
            "g1",
            1,
            &"h:1".parse().unwrap(),
            &"h:2".parse().unwrap(),
            0,
        );
        assert!(!Filter {
            min_severity: Severity::Warning,
            ..Filter::default()
        }
        .accepts(&info));
    }
}
