//! The accept loop ([`serve`]) and what every connection shares: settings,
//! the daemon's handles, the client registry and the counters `INFO` shows.

use super::clients::Registry;
use super::conn;
use super::settings::DiscoverySettings;
use super::view::{DiscoveryHandles, DiscoveryView, FailoverRequest};
use crate::core::events::Event;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

/// Counters for `INFO stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub commands_processed: AtomicU64,
    pub error_replies: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub output_limit_disconnections: AtomicU64,
}

/// State shared by the accept loop and every connection.
pub struct Shared {
    pub cfg: DiscoverySettings,
    view: watch::Receiver<DiscoveryView>,
    pub events: broadcast::Sender<Event>,
    pub failover: mpsc::Sender<FailoverRequest>,
    pub clients: Arc<Registry>,
    pub stats: Stats,
    pub started: Instant,
    /// The port actually listened on.
    pub port: u16,
}

impl Shared {
    pub fn new(cfg: DiscoverySettings, h: DiscoveryHandles, port: u16) -> Self {
        Shared {
            cfg,
            view: h.view,
            events: h.events,
            failover: h.failover,
            clients: Arc::new(Registry::default()),
            stats: Stats::default(),
            started: Instant::now(),
            port,
        }
    }

    /// Runs `f` on the current view and whether it may name a master. A view
    /// whose publisher is gone (the daemon loop ended) is never fresh: it
    /// can no longer change, so it may be stale.
    pub fn with_view<R>(&self, f: impl FnOnce(&DiscoveryView, bool) -> R) -> R {
        let publisher_gone = self.view.has_changed().is_err();
        let view = self.view.borrow();
        let fresh = view.fresh && !publisher_gone;
        f(&view, fresh)
    }
}

/// The reply to a connection beyond `max_clients` (then it is closed).
const MAX_CLIENTS_REPLY: &[u8] = b"-ERR max number of clients reached\r\n";
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the Sentinel-compatible protocol on `listener` until this future
/// is dropped; dropping it also ends every client connection.
pub async fn serve(listener: TcpListener, cfg: DiscoverySettings, h: DiscoveryHandles) {
    let port = listener
        .local_addr()
        .map_or(cfg.listen.port(), |a| a.port());
    let shared = Arc::new(Shared::new(cfg, h, port));
    tracing::info!(
        target: "raftinel::discovery",
        addr = %listener.local_addr().map_or_else(|_| "?".to_string(), |a| a.to_string()),
        auth = shared.cfg.auth_required(),
        max_clients = shared.cfg.max_clients,
        "Sentinel-compatible discovery port listening"
    );
    let mut conns: JoinSet<()> = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => accept(&shared, &mut conns, stream, addr),
                Err(e) => {
                    tracing::warn!(target: "raftinel::discovery", error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(target: "raftinel::discovery", error = %e, "a connection task panicked");
                    }
                }
            }
        }
    }
}

fn accept(
    shared: &Arc<Shared>,
    conns: &mut JoinSet<()>,
    stream: TcpStream,
    addr: std::net::SocketAddr,
) {
    shared
        .stats
        .connections_received
        .fetch_add(1, Ordering::Relaxed);
    let laddr = stream.local_addr().unwrap_or(shared.cfg.listen);
    match shared.clients.register(addr, laddr, shared.cfg.max_clients) {
        Some(reg) => {
            tracing::debug!(target: "raftinel::discovery", client = %addr, id = reg.client.id, "client connected");
            conns.spawn(conn::run(shared.clone(), stream, reg));
        }
        None => {
            shared
                .stats
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "raftinel::discovery", client = %addr, "max_clients reached; connection refused");
            // A new socket's send buffer is empty: a plain non-blocking
            // write goes through at once, without a task per refusal.
            if let Ok(mut s) = stream.into_std() {
                let _ = s.write(MAX_CLIENTS_REPLY);
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
        }
    }
}
