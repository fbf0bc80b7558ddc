//! One client connection: a single task that reads requests, runs them in
//! order (pipelining), writes replies, and forwards pub/sub events.
//!
//! Memory per client is bounded: input holds at most one partial request
//! (`max_request_bytes`) plus one read; replies stop being produced (and input
//! stops being read) while more than [`OUT_SOFT_LIMIT`] bytes wait to be
//! written; pub/sub messages beyond `subscriber_buffer_bytes` of unwritten
//! output disconnect the subscriber, as Redis' `client-output-buffer-limit`
//! does. A slow client therefore only ever slows itself: events reach this
//! task through a broadcast channel the daemon never waits on.

use super::clients::Registration;
use super::commands::{self, Close, Session};
use super::reply::{self, Reply};
use super::request::{Parsed, RequestParser};
use super::server::Shared;
use crate::core::events::Event;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

/// Bytes read per `read` call.
const READ_CHUNK: usize = 16 * 1024;
/// Stop running commands (and reading) while this much output is unwritten.
pub const OUT_SOFT_LIMIT: usize = 256 * 1024;
/// Compact the output buffer once this much of it has been written.
const OUT_COMPACT: usize = 64 * 1024;
/// After a final reply: how long to drain what the client still sends, so the
/// close is a FIN (and the client reads the reply) rather than a reset.
const LINGER: Duration = Duration::from_millis(200);
/// ... and at most how many bytes.
const LINGER_BYTES: usize = 64 * 1024;
/// After the client half-closed: how long its last replies may take to be
/// written before the connection is dropped anyway.
const EOF_FLUSH: Duration = Duration::from_secs(10);

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed its side (and its last replies were written).
    Eof,
    /// Replies written, then closed (QUIT, protocol error).
    AfterReply,
    /// Closed at once (`POST` / `Host:`).
    Now,
    Killed,
    Idle,
    /// A subscriber fell behind (`subscriber_buffer_bytes`).
    SlowSubscriber,
    Io,
}

struct Conn {
    sh: Arc<Shared>,
    reg: Registration,
    session: Session,
    parser: RequestParser,
    inbuf: Vec<u8>,
    /// Start of the unparsed input in `inbuf`.
    in_pos: usize,
    out: Vec<u8>,
    /// Start of the unwritten output in `out`.
    out_pos: usize,
}

/// Runs one client connection to its end.
pub async fn run(sh: Arc<Shared>, mut stream: TcpStream, reg: Registration) {
    let _ = stream.set_nodelay(true);
    let session = Session::new(reg.client.clone(), sh.cfg.auth_required());
    let mut conn = Conn {
        parser: RequestParser::new(sh.cfg.max_request_bytes),
        sh,
        reg,
        session,
        inbuf: Vec::new(),
        in_pos: 0,
        out: Vec::new(),
        out_pos: 0,
    };
    let end = conn.serve(&mut stream).await;
    tracing::debug!(
        target: "raftinel::discovery",
        client = %conn.reg.client.addr,
        id = conn.reg.client.id,
        reason = ?end,
        "client disconnected"
    );
    if end == End::AfterReply {
        linger(&mut stream).await;
    }
}

/// Half-closes, then reads and discards for a moment before the socket is
/// dropped.
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    let deadline = Instant::now() + LINGER;
    while drained < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// The next event for a subscriber; never resolves for a non-subscriber.
async fn next_event(rx: &mut Option<broadcast::Receiver<Event>>) -> Result<Event, RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Conn {
    fn pending_out(&self) -> usize {
        self.out.len() - self.out_pos
    }

    fn push(&mut self, r: &Reply) -> Result<(), End> {
        reply::encode(r, self.session.proto, &mut self.out).map_err(|e| {
            tracing::error!(target: "raftinel::discovery", error = %e, "closing connection");
            End::Io
        })
    }

    /// Parses and runs buffered requests while there is room for output.
    /// Returns true when it stopped because it needs more input.
    async fn process(&mut self) -> Result<bool, End> {
        loop {
            if self.session.close != Close::Open || self.pending_out() >= OUT_SOFT_LIMIT {
                return Ok(false);
            }
            let authenticated = self.session.authenticated;
            let Some((parsed, used)) = self.parser.next(&self.inbuf[self.in_pos..], authenticated)
            else {
                // Keep only the partial request.
                self.inbuf.drain(..self.in_pos);
                self.in_pos = 0;
                return Ok(true);
            };
            self.in_pos += used;
            match parsed {
                Parsed::Empty => {}
                Parsed::Error(msg) => {
                    tracing::debug!(target: "raftinel::discovery", client = %self.reg.client.addr, error = %msg, "protocol error");
                    self.sh.stats.error_replies.fetch_add(1, Ordering::Relaxed);
                    self.push(&Reply::err(msg))?;
                    self.session.close = Close::AfterReply;
                }
                Parsed::Command(args) => {
                    let replies = commands::execute(&mut self.session, &self.sh, args).await;
                    for r in &replies {
                        self.push(r)?;
                    }
                    if self.session.close == Close::Now {
                        return Err(End::Now);
                    }
                }
            }
        }
    }

    fn on_event(&mut self, event: &Event) -> Result<(), End> {
        for m in self.session.subs.messages(event) {
            self.push(&m)?;
        }
        if self.pending_out() > self.sh.cfg.subscriber_buffer_bytes {
            self.sh
                .stats
                .output_limit_disconnections
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "raftinel::discovery",
                client = %self.reg.client.addr,
                id = self.reg.client.id,
                pending_bytes = self.pending_out(),
                limit = self.sh.cfg.subscriber_buffer_bytes,
                "subscriber does not read its messages; disconnected"
            );
            return Err(End::SlowSubscriber);
        }
        Ok(())
    }

    async fn serve(&mut self, stream: &mut TcpStream) -> End {
        let (mut rd, mut wr) = stream.split();
        let mut chunk = vec![0u8; READ_CHUNK];
        let idle = self.sh.cfg.idle_timeout;
        let mut deadline = idle.map(|d| Instant::now() + d);
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        // Set when the client half-closed: answer what it sent, then close.
        let mut eof_deadline: Option<Instant> = None;
        loop {
            let starved = match self.process().await {
                Ok(starved) => starved,
                Err(end) => return end,
            };
            if self.pending_out() == 0 {
                if self.session.close == Close::AfterReply {
                    return End::AfterReply;
                }
                if eof_deadline.is_some() && starved {
                    return End::Eof;
                }
            }
            let can_read = starved && self.session.close == Close::Open && eof_deadline.is_none();
            let idle_applies = deadline.is_some() && self.session.subs.is_empty();
            let has_out = self.pending_out() > 0;
            tokio::select! {
                biased;
                _ = self.reg.client.kill.notified() => return End::Killed,
                res = wr.write(&self.out[self.out_pos..]), if has_out => match res {
                    Ok(0) | Err(_) => return End::Io,
                    Ok(n) => {
                        self.sh.stats.net_output_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        self.out_pos += n;
                        if self.out_pos == self.out.len() {
                            self.out.clear();
                            self.out_pos = 0;
                        } else if self.out_pos >= OUT_COMPACT {
                            self.out.drain(..self.out_pos);
                            self.out_pos = 0;
                        }
                        deadline = idle.map(|d| Instant::now() + d);
                    }
                },
                ev = next_event(&mut self.session.events) => match ev {
                    Ok(event) => {
                        if let Err(end) = self.on_event(&event) {
                            return end;
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        self.sh.stats.output_limit_disconnections.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            target: "raftinel::discovery",
                            client = %self.reg.client.addr,
                            missed,
                            "subscriber fell behind the event stream; disconnected"
                        );
                        return End::SlowSubscriber;
                    }
                    Err(RecvError::Closed) => self.session.events = None,
                },
                res = rd.read(&mut chunk), if can_read => match res {
                    Ok(0) => eof_deadline = Some(Instant::now() + EOF_FLUSH),
                    Ok(n) => {
                        self.sh.stats.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        self.inbuf.extend_from_slice(&chunk[..n]);
                        deadline = idle.map(|d| Instant::now() + d);
                    }
                    Err(_) => return End::Io,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if idle_applies => return End::Idle,
                _ = tokio::time::sleep_until(eof_deadline.unwrap_or(far)), if eof_deadline.is_some() => return End::Eof,
            }
        }
    }
}
