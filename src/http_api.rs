//! Interface between the HTTP server (`crate::http`) and the daemon loop.
//!
//! The HTTP server owns no state: every call goes to the daemon loop as a
//! control [`Request`] and comes back as a [`Response`] (the same protocol as
//! the CLI, so a follower forwards mutating calls to the leader). Metrics text
//! is published by the loop through a `watch` channel.

use crate::control::{Request, Response};
use tokio::sync::{mpsc, oneshot, watch};

/// One call from the HTTP server to the daemon loop.
#[derive(Debug)]
pub struct ApiCall {
    pub request: Request,
    pub reply: oneshot::Sender<Response>,
}

/// What the HTTP server is given by the daemon.
#[derive(Clone)]
pub struct HttpHandles {
    pub calls: mpsc::Sender<ApiCall>,
    /// Prometheus text exposition, refreshed by the daemon every second.
    pub metrics: watch::Receiver<String>,
}
