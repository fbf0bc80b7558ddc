//! Notifications: email, Slack, webhook and Sentinel-compatible scripts.
//!
//! A self-contained library; the daemon only builds [`Notification`]s and
//! calls [`Notifier::submit`].
//!
//! # Public API
//!
//! - Config: [`RawChannel`] (serde shape of one `[[notify]]` table, unknown
//!   keys rejected) → [`RawChannel::validate`] / [`validate_channels`] →
//!   [`NotifyConfig`] `{ channels: Vec<ChannelConfig> }`. [`parse_notify`]
//!   parses the `[[notify]]` tables of a whole TOML text. Syntax in
//!   docs/notifications.md.
//! - What is sent: [`Notification`] with its [`Kind`], [`Severity`], [`Scope`]
//!   and constructors per event ([`Notification::failover_completed`],
//!   [`Notification::from_alert`], ...). The id (`mymaster/7/failover-completed`)
//!   is derived from group, epoch and kind.
//! - Delivery: [`Notifier::new`] (inside a Tokio runtime: it spawns one task
//!   per channel), [`Notifier::submit`] (never blocks, never fails),
//!   [`Notifier::delivered`] (a stream of [`DeliveryReport`]s),
//!   [`Notifier::set_active`] / [`Notifier::mark_delivered`] (cluster-wide
//!   exactly-once, below).
//! - [`send_test`]: one attempt through one channel, for `raftinel
//!   notify-test`; returns the exact error.
//!
//! # Delivery rules
//!
//! - Every channel has its own task and bounded queue (`queue_size`). A
//!   channel that is slow or down never delays the caller or another channel;
//!   when its queue is full new notifications for it are dropped and reported.
//! - Failed attempts are retried with exponential backoff (`retry_initial_ms`
//!   doubling up to `retry_max_interval_ms`) until `retry_deadline_ms` after
//!   submission (default 5 min); permanent errors (HTTP 4xx, SMTP 5xx, script
//!   exit status ≥ 2) are not retried. Notifications of one channel are sent
//!   in order.
//! - De-duplication by event id: an id submitted again is ignored; an id
//!   delivered on a channel (here, or elsewhere as told by
//!   [`Notifier::mark_delivered`]) is not sent on that channel again.
//!   Bounded memory: the last 4096 ids and 16384 deliveries are remembered.
//! - Alerts ([`Kind::Alert`]) are rate limited per channel: the same alert
//!   name and group at most once per `repeat_interval_ms` (default 10 min).
//!   Firing notices arriving within the interval are held and sent as one
//!   grouped message when it ends (if still unsent and not resolved
//!   meanwhile). A resolved notice is sent at once when its firing notice was
//!   sent, and never otherwise.
//!
//! # Exactly once across the cluster
//!
//! Every daemon may submit every notification; only an *active* notifier
//! (the Raft leader: `set_active(true)`) sends [`Scope::Leader`]
//! notifications. An inactive notifier holds them until their deadline. When
//! it becomes active it sends the held ones that were not delivered
//! elsewhere: the daemon replicates each [`DeliveryReport`] with
//! `replicate == true` and `outcome == Delivered` through Raft and calls
//! [`Notifier::mark_delivered`] on every daemon when it is applied. A leader
//! that dies mid-delivery is thus replaced by one that sends what was not
//! confirmed (at least once; twice only if the old leader died between
//! sending and committing). [`Scope::Local`] notifications (quorum lost) and
//! script channels with `on_every_node = true` are sent by every daemon that
//! submits them, active or not.

pub mod config;
mod email;
pub mod http;
pub mod script;
pub mod types;

pub use config::{
    parse_notify, validate_channels, ChannelConfig, ChannelKind, DeliveryPolicy, EmailConfig,
    Filter, NotifyConfig, NotifyConfigError, RawChannel, ScriptConfig, SlackConfig, SmtpTls,
    ValidateCtx, WebhookConfig,
};
pub use types::{event_id, Kind, Notification, Scope, Severity, TimelineEntry};

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};

/// Ids remembered for de-duplication of submissions.
const SEEN_IDS: usize = 4096;
/// (id, channel) deliveries remembered.
const DELIVERED_IDS: usize = 16_384;
/// Capacity of the [`Notifier::delivered`] stream (a slow reader loses the
/// oldest reports, see `broadcast`).
const REPORTS: usize = 1024;

/// Why one attempt failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AttemptError {
    pub message: String,
    /// Retrying will not help.
    pub permanent: bool,
}

impl AttemptError {
    pub(crate) fn transient(message: impl Into<String>) -> Self {
        AttemptError {
            message: message.into(),
            permanent: false,
        }
    }
    pub(crate) fn permanent(message: impl Into<String>) -> Self {
        AttemptError {
            message: message.into(),
            permanent: true,
        }
    }
}

/// What became of one notification on one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Permanent error, or still failing at the retry deadline. The last error.
    Failed(String),
    /// Not attempted: the channel's queue was full, or its task had stopped.
    Dropped(String),
    /// Held back by alert rate limiting (grouped into a later message, or
    /// made moot by a resolved notice).
    Suppressed(String),
}

impl Outcome {
    /// `delivered`, `failed`, `dropped`, `suppressed` (the `result` label of
    /// `raftinel_notifications_total`).
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed(_) => "failed",
            Outcome::Dropped(_) => "dropped",
            Outcome::Suppressed(_) => "suppressed",
        }
    }
}

/// One delivery result, from [`Notifier::delivered`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    pub id: String,
    pub channel: String,
    pub outcome: Outcome,
    /// Attempts made (0 when not attempted).
    pub attempts: u32,
    /// Whether the other daemons should learn of this delivery (a leader-scope
    /// notification on a leader-only channel): replicate it and call
    /// [`Notifier::mark_delivered`] everywhere.
    pub replicate: bool,
}

/// A set that forgets its oldest entries beyond a capacity.
struct BoundedSet<T> {
    set: HashSet<T>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: Eq + Hash + Clone> BoundedSet<T> {
    fn new(cap: usize) -> Self {
        BoundedSet {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    /// False when already present.
    fn insert(&mut self, v: T) -> bool {
        if self.set.contains(&v) {
            return false;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(v.clone());
        self.order.push_back(v);
        true
    }

    fn contains(&self, v: &T) -> bool {
        self.set.contains(v)
    }
}

struct State {
    seen: BoundedSet<String>,
    /// (id, channel).
    delivered: BoundedSet<(String, String)>,
}

struct Shared {
    state: Mutex<State>,
    reports: broadcast::Sender<DeliveryReport>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_delivered(&self, id: &str, channel: &str) -> bool {
        self.state()
            .delivered
            .contains(&(id.to_string(), channel.to_string()))
    }

    fn report(&self, r: DeliveryReport) {
        match &r.outcome {
            Outcome::Delivered => tracing::info!(
                target: "raftinel::notify",
                channel = %r.channel, id = %r.id, attempts = r.attempts,
                "notification delivered"
            ),
            Outcome::Failed(e) => tracing::warn!(
                target: "raftinel::notify",
                channel = %r.channel, id = %r.id, attempts = r.attempts,
                "notification not delivered: {e}"
            ),
            Outcome::Dropped(e) => tracing::warn!(
                target: "raftinel::notify",
                channel = %r.channel, id = %r.id,
                "notification dropped: {e}"
            ),
            Outcome::Suppressed(e) => tracing::debug!(
                target: "raftinel::notify",
                channel = %r.channel, id = %r.id,
                "notification suppressed: {e}"
            ),
        }
        if let Some(m) = &self.metrics {
            m.record_notification(&r.channel, r.outcome.label());
        }
        let _ = self.reports.send(r);
    }
}

struct Job {
    n: Arc<Notification>,
    deadline: Instant,
    attempts: u32,
    /// Script channels: bit 0 notification script done, bit 1 reconfig done.
    parts_done: u8,
}

/// The channel's delivery mechanism.
enum Sender {
    Email(Box<email::EmailSender>),
    Slack(http::SlackSender),
    Webhook(http::WebhookSender),
    Script(ScriptConfig, Duration),
    /// Could not be set up (the error is the delivery error of every job).
    Broken(String),
}

impl Sender {
    fn new(cfg: &ChannelConfig) -> Sender {
        let t = cfg.delivery.attempt_timeout;
        let r = match &cfg.kind {
            ChannelKind::Email(e) => {
                email::EmailSender::new(e, t).map(|s| Sender::Email(Box::new(s)))
            }
            ChannelKind::Slack(s) => http::SlackSender::new(s, t).map(Sender::Slack),
            ChannelKind::Webhook(w) => http::WebhookSender::new(w, t).map(Sender::Webhook),
            ChannelKind::Script(s) => Ok(Sender::Script(s.clone(), t)),
        };
        r.unwrap_or_else(Sender::Broken)
    }

    /// One attempt. `leader`: the role passed to `client_reconfig_script`.
    async fn attempt(
        &self,
        channel: &str,
        n: &Notification,
        leader: bool,
        parts_done: &mut u8,
    ) -> Result<(), AttemptError> {
        match self {
            Sender::Email(s) => s.send(n).await,
            Sender::Slack(s) => s.send(n).await,
            Sender::Webhook(s) => s.send(n).await,
            Sender::Broken(e) => Err(AttemptError::permanent(e.clone())),
            Sender::Script(cfg, timeout) => {
                if let (Some(path), Some(ev)) = (&cfg.notification_script, &n.sentinel_event) {
                    if *parts_done & 1 == 0 {
                        script::run(channel, path, &script::notification_args(ev), *timeout)
                            .await?;
                        *parts_done |= 1;
                    }
                }
                if let (Some(path), true, Some(from), Some(to)) = (
                    &cfg.client_reconfig_script,
                    n.kind.changes_master(),
                    &n.old_master,
                    &n.new_master,
                ) {
                    if *parts_done & 2 == 0 {
                        let args = script::client_reconfig_args(&n.group, leader, from, to);
                        script::run(channel, path, &args, *timeout).await?;
                        *parts_done |= 2;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Whether a script channel has anything to run for `n`.
fn script_relevant(cfg: &ScriptConfig, n: &Notification) -> bool {
    (cfg.notification_script.is_some() && n.sentinel_event.is_some())
        || (cfg.client_reconfig_script.is_some()
            && n.kind.changes_master()
            && n.old_master.is_some()
            && n.new_master.is_some())
}

/// Per-channel rate limiting of alerts (see the module docs).
struct Throttle {
    interval: Duration,
    /// (alert name, group).
    groups: HashMap<(String, String), AlertGroup>,
}

#[derive(Default)]
struct AlertGroup {
    last_sent: Option<Instant>,
    /// target (instance or group) -> the last notice sent was "firing".
    sent_firing: HashMap<String, bool>,
    /// Firing notices held until `flush_at`, by target.
    pending: BTreeMap<String, Job>,
    flush_at: Option<Instant>,
}

struct Offer {
    send: Option<Job>,
    suppressed: Vec<(Job, String)>,
}

impl Throttle {
    fn new(interval: Duration) -> Self {
        Throttle {
            interval,
            groups: HashMap::new(),
        }
    }

    fn offer(&mut self, job: Job, now: Instant) -> Offer {
        let Kind::Alert { name, firing } = &job.n.kind else {
            return Offer {
                send: Some(job),
                suppressed: Vec::new(),
            };
        };
        let firing = *firing;
        let key = (name.clone(), job.n.group.clone());
        let target = job
            .n
            .instance
            .clone()
            .unwrap_or_else(|| job.n.group.clone());
        let g = self.groups.entry(key).or_default();
        let mut suppressed = Vec::new();
        if !firing {
            if let Some(p) = g.pending.remove(&target) {
                suppressed.push((p, "resolved before the rate limit let it out".to_string()));
            }
            if g.pending.is_empty() {
                g.flush_at = None;
            }
            if g.sent_firing.get(&target) == Some(&true) {
                g.sent_firing.insert(target, false);
                return Offer {
                    send: Some(job),
                    suppressed,
                };
            }
            suppressed.push((
                job,
                "resolved, and its firing notice was never sent".to_string(),
            ));
            return Offer {
                send: None,
                suppressed,
            };
        }
        if g.sent_firing.get(&target) == Some(&true) {
            suppressed.push((job, "already notified as firing".to_string()));
            return Offer {
                send: None,
                suppressed,
            };
        }
        let free = g.pending.is_empty()
            && g.last_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
        if free {
            g.last_sent = Some(now);
            g.sent_firing.insert(target, true);
            return Offer {
                send: Some(job),
                suppressed,
            };
        }
        if let Some(old) = g.pending.insert(target, job) {
            suppressed.push((old, "replaced by a newer notice".to_string()));
        }
        if g.flush_at.is_none() {
            g.flush_at = Some(g.last_sent.map_or(now, |t| t + self.interval));
        }
        Offer {
            send: None,
            suppressed,
        }
    }

    fn next_flush(&self) -> Option<Instant> {
        self.groups.values().filter_map(|g| g.flush_at).min()
    }

    /// Held notices whose interval ended: (what to send, the notices it
    /// stands for when it is a grouped message).
    fn flush(&mut self, now: Instant) -> Vec<(Vec<Job>, Instant)> {
        let mut out = Vec::new();
        for g in self.groups.values_mut() {
            if g.flush_at.is_none_or(|t| t > now) {
                continue;
            }
            g.flush_at = None;
            let pending = std::mem::take(&mut g.pending);
            if pending.is_empty() {
                continue;
            }
            g.last_sent = Some(now);
            let mut jobs = Vec::new();
            let mut deadline = now;
            for (target, job) in pending {
                g.sent_firing.insert(target, true);
                deadline = deadline.max(job.deadline);
                jobs.push(job);
            }
            out.push((jobs, deadline));
        }
        // Forget quiet groups.
        let interval = self.interval;
        self.groups.retain(|_, g| {
            !g.pending.is_empty()
                || g.sent_firing.values().any(|f| *f)
                || g.last_sent
                    .is_some_and(|t| now.saturating_duration_since(t) < interval)
        });
        out
    }
}

/// One channel's task.
struct Worker {
    name: String,
    policy: DeliveryPolicy,
    every_node: bool,
    sender: Sender,
    shared: Arc<Shared>,
    active: watch::Receiver<bool>,
    fifo: VecDeque<Job>,
    held: VecDeque<Job>,
    throttle: Throttle,
}

impl Worker {
    fn report(&self, job: &Job, outcome: Outcome) {
        self.shared.report(DeliveryReport {
            id: job.n.id.clone(),
            channel: self.name.clone(),
            outcome,
            attempts: job.attempts,
            replicate: self.replicates(job),
        });
    }

    fn replicates(&self, job: &Job) -> bool {
        !self.every_node && job.n.scope == Scope::Leader
    }

    fn may_send(&self, job: &Job) -> bool {
        job.n.scope == Scope::Local || self.every_node || *self.active.borrow()
    }

    fn delivered_elsewhere(&self, job: &Job) -> bool {
        self.replicates(job) && self.shared.is_delivered(&job.n.id, &self.name)
    }

    fn accept(&mut self, job: Job) {
        if matches!(job.n.kind, Kind::Alert { .. }) {
            let offer = self.throttle.offer(job, Instant::now());
            for (j, why) in offer.suppressed {
                self.report(&j, Outcome::Suppressed(why));
            }
            if let Some(j) = offer.send {
                self.fifo.push_back(j);
            }
        } else {
            self.fifo.push_back(job);
        }
    }

    fn flush(&mut self) {
        let now = Instant::now();
        for (mut jobs, deadline) in self.throttle.flush(now) {
            if jobs.len() == 1 {
                if let Some(j) = jobs.pop() {
                    self.fifo.push_back(j);
                }
                continue;
            }
            let parts: Vec<&Notification> = jobs.iter().map(|j| j.n.as_ref()).collect();
            let grouped = Notification::grouped_alerts(&parts, unix_ms());
            for j in &jobs {
                self.report(
                    j,
                    Outcome::Suppressed(format!("grouped into {}", grouped.id)),
                );
            }
            self.fifo.push_back(Job {
                n: Arc::new(grouped),
                deadline,
                attempts: 0,
                parts_done: 0,
            });
        }
    }

    fn hold(&mut self, job: Job) {
        if self.held.len() >= self.policy.queue_size {
            self.held.pop_front();
        }
        self.held.push_back(job);
    }

    fn on_active_changed(&mut self) {
        let active = *self.active.borrow_and_update();
        let now = Instant::now();
        self.held.retain(|j| j.deadline > now);
        if active {
            tracing::debug!(target: "raftinel::notify", channel = %self.name, held = self.held.len(), "notifier active");
            while let Some(j) = self.held.pop_back() {
                self.fifo.push_front(j);
            }
        }
    }

    async fn deliver(&mut self, mut job: Job) {
        let mut backoff = self.policy.retry_initial;
        loop {
            if self.delivered_elsewhere(&job) {
                tracing::debug!(target: "raftinel::notify", channel = %self.name, id = %job.n.id, "already delivered");
                return;
            }
            if !self.may_send(&job) {
                self.hold(job);
                return;
            }
            job.attempts += 1;
            let leader = *self.active.borrow();
            // The senders time out by themselves; this is a guard.
            let guard = self.policy.attempt_timeout + Duration::from_secs(5);
            let result = tokio::time::timeout(
                guard,
                self.sender
                    .attempt(&self.name, &job.n, leader, &mut job.parts_done),
            )
            .await
            .unwrap_or_else(|_| {
                Err(AttemptError::transient(format!(
                    "no answer within {} ms",
                    guard.as_millis()
                )))
            });
            match result {
                Ok(()) => {
                    if self.replicates(&job) {
                        self.shared
                            .state()
                            .delivered
                            .insert((job.n.id.clone(), self.name.clone()));
                    }
                    self.report(&job, Outcome::Delivered);
                    return;
                }
                Err(e) if e.permanent => {
                    self.report(&job, Outcome::Failed(e.message));
                    return;
                }
                Err(e) => {
                    let now = Instant::now();
                    if now + backoff > job.deadline {
                        let msg = format!(
                            "{} (gave up after {} attempts: retry deadline of {} s reached)",
                            e.message,
                            job.attempts,
                            self.policy.retry_deadline.as_secs()
                        );
                        self.report(&job, Outcome::Failed(msg));
                        return;
                    }
                    tracing::warn!(
                        target: "raftinel::notify",
                        channel = %self.name, id = %job.n.id, attempt = job.attempts,
                        "delivery failed, retrying in {} ms: {}", backoff.as_millis(), e.message
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.policy.retry_max_interval);
                }
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut closed = false;
        let mut active_closed = false;
        loop {
            while let Some(job) = self.fifo.pop_front() {
                self.deliver(job).await;
                // Take what arrived meanwhile, so a full queue drains.
                while let Ok(j) = rx.try_recv() {
                    self.accept(j);
                }
            }
            if closed {
                return;
            }
            let flush_at = self.throttle.next_flush();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                m = rx.recv() => match m {
                    Some(job) => self.accept(job),
                    None => closed = true,
                },
                r = self.active.changed(), if !active_closed => match r {
                    Ok(()) => self.on_active_changed(),
                    Err(_) => active_closed = true,
                },
                _ = tokio::time::sleep_until(flush_at.unwrap_or(far).into()), if flush_at.is_some() => {
                    self.flush();
                }
            }
        }
    }
}

struct ChannelHandle {
    name: String,
    filter: Filter,
    script: Option<ScriptConfig>,
    retry_deadline: Duration,
    tx: mpsc::Sender<Job>,
}

/// Sends notifications through the configured channels. Cheap to share
/// (`Arc<Notifier>`); dropping it stops the channel tasks once their current
/// work is done.
pub struct Notifier {
    shared: Arc<Shared>,
    channels: Vec<ChannelHandle>,
    active: watch::Sender<bool>,
}

impl Notifier {
    /// Starts one task per channel. Must be called inside a Tokio runtime.
    /// The notifier starts active.
    pub fn new(cfg: NotifyConfig) -> Notifier {
        Notifier::build(cfg, None)
    }

    /// Like [`Notifier::new`], and counts every outcome in
    /// `raftinel_notifications_total{channel,result}`.
    pub fn with_metrics(cfg: NotifyConfig, metrics: Arc<crate::metrics::Metrics>) -> Notifier {
        Notifier::build(cfg, Some(metrics))
    }

    fn build(cfg: NotifyConfig, metrics: Option<Arc<crate::metrics::Metrics>>) -> Notifier {
        let (reports, _) = broadcast::channel(REPORTS);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                seen: BoundedSet::new(SEEN_IDS),
                delivered: BoundedSet::new(DELIVERED_IDS),
            }),
            reports,
            metrics,
        });
        let (active, active_rx) = watch::channel(true);
        let mut channels = Vec::with_capacity(cfg.channels.len());
        for c in cfg.channels {
            let (tx, rx) = mpsc::channel(c.delivery.queue_size);
            let script = match &c.kind {
                ChannelKind::Script(s) => Some(s.clone()),
                _ => None,
            };
            let worker = Worker {
                name: c.name.clone(),
                policy: c.delivery.clone(),
                every_node: script.as_ref().is_some_and(|s| s.on_every_node),
                sender: Sender::new(&c),
                shared: shared.clone(),
                active: active_rx.clone(),
                fifo: VecDeque::new(),
                held: VecDeque::new(),
                throttle: Throttle::new(c.delivery.repeat_interval),
            };
            if let Sender::Broken(e) = &worker.sender {
                tracing::error!(target: "raftinel::notify", channel = %c.name, "channel cannot send: {e}");
            }
            tokio::spawn(worker.run(rx));
            channels.push(ChannelHandle {
                name: c.name,
                filter: c.filter,
                script,
                retry_deadline: c.delivery.retry_deadline,
                tx,
            });
        }
        Notifier {
            shared,
            channels,
            active,
        }
    }

    /// Queues `n` on every channel whose filter accepts it. Never blocks.
    /// An id already submitted is ignored.
    pub fn submit(&self, n: Notification) {
        let n = Arc::new(n);
        let mut targets = Vec::new();
        {
            let mut st = self.shared.state();
            if !st.seen.insert(n.id.clone()) {
                tracing::debug!(target: "raftinel::notify", id = %n.id, "duplicate notification ignored");
                return;
            }
            for (i, ch) in self.channels.iter().enumerate() {
                let every_node = ch.script.as_ref().is_some_and(|s| s.on_every_node);
                if !ch.filter.accepts(&n)
                    || ch.script.as_ref().is_some_and(|s| !script_relevant(s, &n))
                    || (!every_node && st.delivered.contains(&(n.id.clone(), ch.name.clone())))
                {
                    continue;
                }
                targets.push(i);
            }
        }
        tracing::debug!(target: "raftinel::notify", id = %n.id, channels = targets.len(), "notification submitted");
        let now = Instant::now();
        for i in targets {
            let ch = &self.channels[i];
            let job = Job {
                n: n.clone(),
                deadline: now + ch.retry_deadline,
                attempts: 0,
                parts_done: 0,
            };
            let why = match ch.tx.try_send(job) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => "the channel's queue is full",
                Err(mpsc::error::TrySendError::Closed(_)) => "the channel's task has stopped",
            };
            self.shared.report(DeliveryReport {
                id: n.id.clone(),
                channel: ch.name.clone(),
                outcome: Outcome::Dropped(why.to_string()),
                attempts: 0,
                replicate: false,
            });
        }
    }

    /// A stream of delivery results (every channel, every outcome). Each call
    /// subscribes anew; a reader more than 1024 reports behind loses the
    /// oldest.
    pub fn delivered(&self) -> broadcast::Receiver<DeliveryReport> {
        self.shared.reports.subscribe()
    }

    /// Active (the Raft leader): send leader-scope notifications. Inactive:
    /// hold them until their deadline, and send the held ones not delivered
    /// elsewhere when made active again.
    pub fn set_active(&self, active: bool) {
        self.active.send_if_modified(|a| {
            let changed = *a != active;
            *a = active;
            changed
        });
    }

    pub fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    /// Another daemon delivered `id` on `channel` (a replicated
    /// [`DeliveryReport`]): never send it there from here.
    pub fn mark_delivered(&self, id: &str, channel: &str) {
        self.shared
            .state()
            .delivered
            .insert((id.to_string(), channel.to_string()));
    }

    /// The channel names, in config order.
    pub fn channel_names(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.name.clone()).collect()
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Sends a test notification through `channel` in one attempt (no retry)
/// and returns the exact error. Script channels run `notification_script`
/// with `+raftinel-test <description>`; `client_reconfig_script` is only
/// checked (it exists and is executable), never run: it may move traffic.
pub async fn send_test(channel: &ChannelConfig) -> Result<(), String> {
    let n = Notification::test(&channel.name, unix_ms());
    let timeout = channel.delivery.attempt_timeout;
    if let ChannelKind::Script(cfg) = &channel.kind {
        if let Some(p) = &cfg.client_reconfig_script {
            config::check_executable(p)?;
        }
        if let (Some(p), Some(ev)) = (&cfg.notification_script, &n.sentinel_event) {
            script::run(&channel.name, p, &script::notification_args(ev), timeout)
                .await
                .map_err(|e| e.message)?;
        }
        return Ok(());
    }
    let sender = Sender::new(channel);
    let guard = timeout + Duration::from_secs(5);
    match tokio::time::timeout(guard, sender.attempt(&channel.name, &n, true, &mut 0)).await {
        Ok(r) => r.map_err(|e| e.message),
        Err(_) => Err(format!(
            "{} channel {}: no answer within {} ms",
            channel.kind.type_name(),
            channel.name,
            guard.as_millis()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertTransition;

    fn alert(name: &str, instance: &str, firing: bool, since: u64) -> Job {
        let t = AlertTransition {
            name: name.into(),
            group: "g".into(),
            instance: Some(instance.into()),
            firing,
            value: 1.0,
            threshold: 0.0,
            severity: Severity::Warning,
            message: "m".into(),
            since_ms: since,
        };
        Job {
            n: Arc::new(Notification::from_alert(&t, 1, since)),
            deadline: Instant::now() + Duration::from_secs(60),
            attempts: 0,
            parts_done: 0,
        }
    }

    fn sent(o: &Offer) -> Option<String> {
        o.send.as_ref().map(|j| j.n.id.clone())
    }

    #[test]
    fn throttle_table() {
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        let mut th = Throttle::new(Duration::from_secs(600));
        // First firing goes out at once.
        let o = th.offer(alert("A", "h:1", true, 1), t0);
        assert!(sent(&o).is_some());
        // Same target firing again: already notified.
        let o = th.offer(alert("A", "h:1", true, 2), t0 + min);
        assert!(o.send.is_none());
        assert_eq!(o.suppressed[0].1, "already notified as firing");
        // Another instance, same alert and group, within the interval: held.
        let o = th.offer(alert("A", "h:2", true, 3), t0 + min);
        assert!(o.send.is_none() && o.suppressed.is_empty());
        assert_eq!(th.next_flush(), Some(t0 + Duration::from_secs(600)));
        // A different alert is not limited by A.
        let o = th.offer(alert("B", "h:2", true, 4), t0 + min);
        assert!(o.send.is_some());
        // Resolved for h:1 (sent as firing): goes out at once.
        let o = th.offer(alert("A", "h:1", false, 1), t0 + 2 * min);
        assert!(o.send.is_some());
        // Third instance held too.
        let o = th.offer(alert("A", "h:3", true, 5), t0 + 3 * min);
        assert!(o.send.is_none());
        // h:3 resolves before the flush: never said, nothing to resolve.
        let o = th.offer(alert("A", "h:3", false, 5), t0 + 4 * min);
        assert!(o.send.is_none());
        assert_eq!(o.suppressed.len(), 2);
        // Nothing due before the interval ends.
        assert!(th.flush(t0 + 5 * min).is_empty());
        let out = th.flush(t0 + Duration::from_secs(600));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.len(), 1);
        assert_eq!(out[0].0[0].n.instance.as_deref(), Some("h:2"));
        // h:2 now counts as notified; its resolve goes out at once.
        let o = th.offer(alert("A", "h:2", false, 3), t0 + Duration::from_secs(700));
        assert!(o.send.is_some());
    }

    #[test]
    fn throttle_groups_several_targets_into_one_flush() {
        let t0 = Instant::now();
        let mut th = Throttle::new(Duration::from_secs(10));
        assert!(th.offer(alert("A", "h:1", true, 1), t0).send.is_some());
        assert!(th.offer(alert("A", "h:2", true, 2), t0).send.is_none());
        assert!(th.offer(alert("A", "h:3", true, 3), t0).send.is_none());
        let out = th.flush(t0 + Duration::from_secs(10));
        assert_eq!(out[0].0.len(), 2);
        let parts: Vec<&Notification> = out[0].0.iter().map(|j| j.n.as_ref()).collect();
        let g = Notification::grouped_alerts(&parts, 0);
        assert_eq!(g.title, "[raftinel] g: FIRING A on 2 targets: h:2, h:3");
    }

    #[test]
    fn bounded_set_forgets_the_oldest() {
        let mut s = BoundedSet::new(2);
        assert!(s.insert(1));
        assert!(!s.insert(1));
        assert!(s.insert(2));
        assert!(s.insert(3));
        assert!(!s.contains(&1));
        assert!(s.contains(&2) && s.contains(&3));
    }
}
