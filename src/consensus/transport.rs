//! The authenticated peer transport over TCP: owns the wire protocol between
//! raftinel daemons (and between the CLI and a daemon): the mutual
//! HMAC-SHA256 handshake, the frame format, the accepting server, the
//! outbound peer links and the one-shot control client.
//!
//! # Handshake
//!
//! ```text
//! server -> client: "RAFTINEL1" | server_id u64 BE | nonce_s [32]
//! client -> server: "RAFTINEL1" | from_id u64 BE   | nonce_c [32]
//!                   | HMAC(secret, "client" | nonce_s | nonce_c | from_id BE | server_id BE)
//! server -> client: HMAC(secret, "server" | nonce_c | nonce_s | from_id BE | server_id BE)
//! ```
//!
//! `from_id` 0 is a control client (the CLI); any other id must be one of the
//! server's allowed peers. Both sides verify in constant time; the whole
//! handshake must finish within [`HANDSHAKE_TIMEOUT`]. A failed handshake is
//! logged (peer address and reason, never the secret) and the connection is
//! dropped without disturbing the node.
//!
//! # Frames
//!
//! After the handshake: `len u32 BE` (of kind + payload, at most
//! [`MAX_FRAME`]) | `kind u8` | payload. Peer connections carry frames one way
//! (client → server); control connections alternate a [`KIND_REQUEST`] and
//! its [`KIND_RESPONSE`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use tokio::time::timeout;

/// A Raft message (protobuf-encoded `eraftpb::Message`).
pub const KIND_RAFT: u8 = 1;
/// A health report from a peer.
pub const KIND_REPORT: u8 = 2;
/// A control request (from a control client, id 0).
pub const KIND_REQUEST: u8 = 3;
/// The response to a control request.
pub const KIND_RESPONSE: u8 = 4;

/// Protocol magic, first bytes sent by both sides.
pub const MAGIC: &[u8; 9] = b"RAFTINEL1";
/// Largest accepted frame (kind + payload), in bytes.
pub const MAX_FRAME: u32 = 16 * 1024 * 1024;
/// Time allowed for the whole handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for the TCP connect. Short: an attempt started while a link
/// is cut must not delay the reconnection after the cut heals by much.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// `TCP_USER_TIMEOUT` of outbound connections.
pub const USER_TIMEOUT: Duration = Duration::from_millis(1000);
/// Time the server waits for the node to answer a control request.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Concurrent inbound connections accepted by [`serve`]; more are dropped.
pub const MAX_CONNECTIONS: usize = 256;
/// Outbound queue per peer; frames sent while it is full are dropped.
pub const QUEUE_CAPACITY: usize = 1024;

/// An idle control connection is closed after this long.
const CONTROL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A frame write that does not complete in this time breaks the connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_millis(500);
const NONCE_LEN: usize = 32;
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// One message on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(kind: u8, payload: Vec<u8>) -> Frame {
        Frame { kind, payload }
    }
}

/// A frame received by [`serve`].
#[derive(Debug)]
pub struct Inbound {
    /// The authenticated sender: a peer id, or 0 for a control client.
    pub from: u64,
    pub frame: Frame,
    /// For control requests (`from == 0`): where to send the response frame
    /// (normally of kind [`KIND_RESPONSE`]). `None` for peer frames.
    pub reply: Option<oneshot::Sender<Frame>>,
}

/// Transport errors; each names the remote address.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{addr}: cannot connect: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: I/O error: {source}")]
    Io {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{addr}: connection closed by the other side")]
    Closed { addr: String },
    #[error("{addr}: timeout")]
    Timeout { addr: String },
    #[error("{addr}: bad magic")]
    BadMagic { addr: String },
    #[error("{addr}: authentication failed (is peer_secret the same on every node?)")]
    AuthFailed { addr: String },
    #[error("{addr}: unknown peer id {id}")]
    UnknownPeer { addr: String, id: u64 },
    #[error("{addr}: expected server id {expected}, it announced {announced}")]
    WrongServer {
        addr: String,
        expected: u64,
        announced: u64,
    },
    #[error("{addr}: frame of {len} bytes exceeds the limit of {MAX_FRAME} bytes")]
    FrameTooLarge { addr: String, len: u64 },
    #[error("{addr}: empty frame")]
    EmptyFrame { addr: String },
    #[error("{addr}: unknown frame kind {kind}")]
    UnknownKind { addr: String, kind: u8 },
    #[error("{addr}: unexpected frame kind {kind}")]
    UnexpectedKind { addr: String, kind: u8 },
    #[error("{addr}: unexpected data on a one-way connection")]
    UnexpectedData { addr: String },
    #[error("{addr}: the node did not answer the request")]
    NoReply { addr: String },
}

fn io_err(addr: &str) -> impl FnOnce(std::io::Error) -> TransportError + '_ {
    move |source| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            TransportError::Closed {
                addr: addr.to_string(),
            }
        } else {
            TransportError::Io {
                addr: addr.to_string(),
                source,
            }
        }
    }
}

fn timeout_err(addr: &str) -> impl FnOnce(tokio::time::error::Elapsed) -> TransportError + '_ {
    move |_| TransportError::Timeout {
        addr: addr.to_string(),
    }
}

fn known_kind(kind: u8) -> bool {
    matches!(kind, KIND_RAFT | KIND_REPORT | KIND_REQUEST | KIND_RESPONSE)
}

// ---------------------------------------------------------------------------
// Frames

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, addr: &str) -> Result<Frame, TransportError> {
    let mut header = [0u8; 5];
    r.read_exact(&mut header[..4]).await.map_err(io_err(addr))?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if len == 0 {
        return Err(TransportError::EmptyFrame {
            addr: addr.to_string(),
        });
    }
    if len > MAX_FRAME {
        return Err(TransportError::FrameTooLarge {
            addr: addr.to_string(),
            len: u64::from(len),
        });
    }
    r.read_exact(&mut header[4..]).await.map_err(io_err(addr))?;
    let kind = header[4];
    if !known_kind(kind) {
        return Err(TransportError::UnknownKind {
            addr: addr.to_string(),
            kind,
        });
    }
    let mut payload = vec![0u8; len as usize - 1];
    r.read_exact(&mut payload).await.map_err(io_err(addr))?;
    Ok(Frame { kind, payload })
}

async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    frame: &Frame,
    addr: &str,
) -> Result<(), TransportError> {
    let len = frame.payload.len() as u64 + 1;
    if len > u64::from(MAX_FRAME) {
        return Err(TransportError::FrameTooLarge {
            addr: addr.to_string(),
            len,
        });
    }
    let mut buf = Vec::with_capacity(len as usize + 4);
    buf.extend_from_slice(&(len as u32).to_be_bytes());
    buf.push(frame.kind);
    buf.extend_from_slice(&frame.payload);
    w.write_all(&buf).await.map_err(io_err(addr))?;
    w.flush().await.map_err(io_err(addr))
}

// ---------------------------------------------------------------------------
// Handshake

fn nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

/// HMAC(secret, label | n1 | n2 | from BE | server BE).
fn handshake_mac(
    secret: &[u8],
    label: &[u8],
    n1: &[u8; NONCE_LEN],
    n2: &[u8; NONCE_LEN],
    from: u64,
    server: u64,
    addr: &str,
) -> Result<HmacSha256, TransportError> {
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| TransportError::AuthFailed {
        addr: addr.to_string(),
    })?;
    mac.update(label);
    mac.update(n1);
    mac.update(n2);
    mac.update(&from.to_be_bytes());
    mac.update(&server.to_be_bytes());
    Ok(mac)
}

/// Server side; returns the authenticated client id (0 = control client).
async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    addr: &str,
    me: u64,
    allowed: &HashSet<u64>,
    secret: &[u8],
) -> Result<u64, TransportError> {
    let nonce_s = nonce();
    let mut hello = Vec::with_capacity(MAGIC.len() + 8 + NONCE_LEN);
    hello.extend_from_slice(MAGIC);
    hello.extend_from_slice(&me.to_be_bytes());
    hello.extend_from_slice(&nonce_s);
    s.write_all(&hello).await.map_err(io_err(addr))?;
    s.flush().await.map_err(io_err(addr))?;

    let mut magic = [0u8; MAGIC.len()];
    s.read_exact(&mut magic).await.map_err(io_err(addr))?;
    if &magic != MAGIC {
        return Err(TransportError::BadMagic {
            addr: addr.to_string(),
        });
    }
    let mut rest = [0u8; 8 + NONCE_LEN + TAG_LEN];
    s.read_exact(&mut rest).await.map_err(io_err(addr))?;
    let mut id = [0u8; 8];
    id.copy_from_slice(&rest[..8]);
    let from = u64::from_be_bytes(id);
    let mut nonce_c = [0u8; NONCE_LEN];
    nonce_c.copy_from_slice(&rest[8..8 + NONCE_LEN]);
    let tag = &rest[8 + NONCE_LEN..];

    handshake_mac(secret, b"client", &nonce_s, &nonce_c, from, me, addr)?
        .verify_slice(tag)
        .map_err(|_| TransportError::AuthFailed {
            addr: addr.to_string(),
        })?;
    if from != 0 && !allowed.contains(&from) {
        return Err(TransportError::UnknownPeer {
            addr: addr.to_string(),
            id: from,
        });
    }
    let reply = handshake_mac(secret, b"server", &nonce_c, &nonce_s, from, me, addr)?
        .finalize()
        .into_bytes();
    s.write_all(&reply).await.map_err(io_err(addr))?;
    s.flush().await.map_err(io_err(addr))?;
    Ok(from)
}

/// Client side; returns the id the server announced (checked against
/// `expected` if given).
async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    addr: &str,
    me: u64,
    expected: Option<u64>,
    secret: &[u8],
) -> Result<u64, TransportError> {
    let mut hello = [0u8; MAGIC.len() + 8 + NONCE_LEN];
    s.read_exact(&mut hello).await.map_err(io_err(addr))?;
    if &hello[..MAGIC.len()] != MAGIC {
        return Err(TransportError::BadMagic {
            addr: addr.to_string(),
        });
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&hello[MAGIC.len()..MAGIC.len() + 8]);
    let server = u64::from_be_bytes(id);
    if let Some(expected) = expected {
        if expected != server {
            return Err(TransportError::WrongServer {
                addr: addr.to_string(),
                expected,
                announced: server,
            });
        }
    }
    let mut nonce_s = [0u8; NONCE_LEN];
    nonce_s.copy_from_slice(&hello[MAGIC.len() + 8..]);
    let nonce_c = nonce();
    let tag = handshake_mac(secret, b"client", &nonce_s, &nonce_c, me, server, addr)?
        .finalize()
        .into_bytes();
    let mut msg = Vec::with_capacity(MAGIC.len() + 8 + NONCE_LEN + TAG_LEN);
    msg.extend_from_slice(MAGIC);
    msg.extend_from_slice(&me.to_be_bytes());
    msg.extend_from_slice(&nonce_c);
    msg.extend_from_slice(&tag);
    s.write_all(&msg).await.map_err(io_err(addr))?;
    s.flush().await.map_err(io_err(addr))?;

    let mut reply = [0u8; TAG_LEN];
    s.read_exact(&mut reply).await.map_err(|e| {
        // The server closes without a word when our MAC is wrong.
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            TransportError::AuthFailed {
                addr: addr.to_string(),
            }
        } else {
            io_err(addr)(e)
        }
    })?;
    handshake_mac(secret, b"server", &nonce_c, &nonce_s, me, server, addr)?
        .verify_slice(&reply)
        .map_err(|_| TransportError::AuthFailed {
            addr: addr.to_string(),
        })?;
    Ok(server)
}

/// Connects to `addr` within [`CONNECT_TIMEOUT`] and authenticates as `me`
/// within [`HANDSHAKE_TIMEOUT`].
async fn connect(
    addr: &str,
    me: u64,
    expected: Option<u64>,
    secret: &[u8],
) -> Result<TcpStream, TransportError> {
    let mut stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(timeout_err(addr))?
        .map_err(|source| TransportError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    // Unacknowledged data for this long breaks the connection (a cut link),
    // so the sender reconnects instead of waiting out TCP's back-off, which
    // after a 10 s cut delays the first retransmission by seconds.
    let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(USER_TIMEOUT));
    timeout(
        HANDSHAKE_TIMEOUT,
        client_handshake(&mut stream, addr, me, expected, secret),
    )
    .await
    .map_err(timeout_err(addr))??;
    Ok(stream)
}

// ---------------------------------------------------------------------------
// Server

/// Accepts connections on `listener` for node `me`, authenticating clients
/// with `secret`: peers whose id is in `allowed_peers`, and control clients
/// (id 0). Received frames go to `inbound`. Each connection runs in its own
/// task; at most [`MAX_CONNECTIONS`] at a time. Runs until `inbound`'s
/// receiver is dropped (or this future is dropped, which closes every
/// connection it accepted).
pub async fn serve(
    listener: TcpListener,
    me: u64,
    allowed_peers: Vec<u64>,
    secret: Arc<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
) {
    let allowed: Arc<HashSet<u64>> = Arc::new(allowed_peers.into_iter().collect());
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, addr)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tracing::warn!(peer = %addr, "dropping connection: too many connections");
                        continue;
                    };
                    let conn = Conn {
                        addr,
                        me,
                        allowed: allowed.clone(),
                        secret: secret.clone(),
                        inbound: inbound.clone(),
                    };
                    conns.spawn(async move {
                        conn.run(stream).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = inbound.closed() => {
                tracing::debug!("inbound channel closed; transport server stops");
                return;
            }
        }
    }
}

struct Conn {
    addr: SocketAddr,
    me: u64,
    allowed: Arc<HashSet<u64>>,
    secret: Arc<Vec<u8>>,
    inbound: mpsc::Sender<Inbound>,
}

impl Conn {
    async fn run(self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let addr = self.addr.to_string();
        let from = match timeout(
            HANDSHAKE_TIMEOUT,
            server_handshake(&mut stream, &addr, self.me, &self.allowed, &self.secret),
        )
        .await
        .map_err(timeout_err(&addr))
        .and_then(|r| r)
        {
            Ok(from) => from,
            Err(e) => {
                drop(stream);
                tracing::warn!(peer = %self.addr, "dropping connection from {e}");
                return;
            }
        };
        tracing::debug!(peer = %self.addr, from, "connection authenticated");
        let res = if from == 0 {
            self.control(&mut stream, &addr).await
        } else {
            self.peer(&mut stream, &addr, from).await
        };
        drop(stream);
        match res {
            Ok(()) | Err(TransportError::Closed { .. }) => {
                tracing::debug!(peer = %self.addr, from, "connection closed")
            }
            Err(e) => tracing::warn!(peer = %self.addr, from, "dropping connection from {e}"),
        }
    }

    /// Peer connection: frames flow one way, to the node.
    async fn peer(
        &self,
        stream: &mut TcpStream,
        addr: &str,
        from: u64,
    ) -> Result<(), TransportError> {
        loop {
            let frame = read_frame(stream, addr).await?;
            let msg = Inbound {
                from,
                frame,
                reply: None,
            };
            if self.inbound.send(msg).await.is_err() {
                return Ok(()); // the node is gone
            }
        }
    }

    /// Control connection: request, reply, request, reply...
    async fn control(&self, stream: &mut TcpStream, addr: &str) -> Result<(), TransportError> {
        loop {
            let frame = timeout(CONTROL_IDLE_TIMEOUT, read_frame(stream, addr))
                .await
                .map_err(timeout_err(addr))??;
            if frame.kind != KIND_REQUEST {
                return Err(TransportError::UnexpectedKind {
                    addr: addr.to_string(),
                    kind: frame.kind,
                });
            }
            let (tx, rx) = oneshot::channel();
            let msg = Inbound {
                from: 0,
                frame,
                reply: Some(tx),
            };
            let reply = timeout(REPLY_TIMEOUT, async {
                self.inbound.send(msg).await.ok()?;
                rx.await.ok()
            })
            .await
            .ok()
            .flatten()
            .ok_or_else(|| TransportError::NoReply {
                addr: addr.to_string(),
            })?;
            timeout(WRITE_TIMEOUT, write_frame(stream, &reply, addr))
                .await
                .map_err(timeout_err(addr))??;
        }
    }
}

// ---------------------------------------------------------------------------
// Outbound peer links

/// Outbound links to the other peers: one task per peer owns the connection,
/// reconnecting with backoff, fed by a bounded queue. Cloning shares the
/// links; the tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct Peers {
    me: u64,
    links: Arc<HashMap<u64, Link>>,
}

struct Link {
    addr: String,
    tx: mpsc::Sender<Frame>,
    state: Arc<LinkState>,
}

#[derive(Default)]
struct LinkState {
    connected: AtomicBool,
    dropped: AtomicU64,
}

impl fmt::Debug for Peers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (id, link) in self.links.iter() {
            m.entry(id, &link.addr);
        }
        m.finish()
    }
}

impl Peers {
    /// Starts one link task per `(id, "host:port")` (entries with id `me`
    /// are ignored). Must be called inside a tokio runtime.
    pub fn start(me: u64, peers: Vec<(u64, String)>, secret: Arc<Vec<u8>>) -> Peers {
        let mut links = HashMap::new();
        for (id, addr) in peers {
            if id == me {
                continue;
            }
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            let state = Arc::new(LinkState::default());
            let task = LinkTask {
                me,
                to: id,
                addr: addr.clone(),
                secret: secret.clone(),
                state: state.clone(),
            };
            tokio::spawn(task.run(rx));
            links.insert(id, Link { addr, tx, state });
        }
        Peers {
            me,
            links: Arc::new(links),
        }
    }

    /// This node's id.
    pub fn me(&self) -> u64 {
        self.me
    }

    /// Queues `frame` for peer `to`; never blocks. The frame is dropped (and
    /// counted) if the queue is full or `to` is unknown.
    pub fn send(&self, to: u64, frame: Frame) {
        let Some(link) = self.links.get(&to) else {
            tracing::debug!(to, "no link to peer; frame dropped");
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = link.tx.try_send(frame) {
            let n = link.state.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(to, dropped = n, "queue to peer full; frame dropped");
            }
        }
    }

    /// Whether the link to `to` is currently connected and authenticated.
    pub fn connected(&self, to: u64) -> bool {
        self.links
            .get(&to)
            .is_some_and(|l| l.state.connected.load(Ordering::Relaxed))
    }

    /// Frames to `to` dropped so far (queue full, or discarded after a
    /// connection failure).
    pub fn dropped(&self, to: u64) -> u64 {
        self.links
            .get(&to)
            .map_or(0, |l| l.state.dropped.load(Ordering::Relaxed))
    }
}

struct LinkTask {
    me: u64,
    to: u64,
    addr: String,
    secret: Arc<Vec<u8>>,
    state: Arc<LinkState>,
}

impl LinkTask {
    async fn run(self, mut rx: mpsc::Receiver<Frame>) {
        let mut backoff = BACKOFF_MIN;
        let mut failing = false;
        loop {
            match connect(&self.addr, self.me, Some(self.to), &self.secret).await {
                Ok(stream) => {
                    backoff = BACKOFF_MIN;
                    failing = false;
                    self.state.connected.store(true, Ordering::Relaxed);
                    tracing::info!(to = self.to, addr = %self.addr, "connected to peer");
                    let res = self.pump(stream, &mut rx).await;
                    self.state.connected.store(false, Ordering::Relaxed);
                    match res {
                        Ok(()) => return, // Peers dropped
                        Err(e) => tracing::warn!(to = self.to, "lost connection to peer {e}"),
                    }
                }
                Err(e) => {
                    if failing {
                        tracing::debug!(to = self.to, "cannot reach peer {e}");
                    } else {
                        tracing::warn!(to = self.to, "cannot reach peer {e}");
                    }
                    failing = true;
                }
            }
            // Frames queued for the dead connection are stale: drop them.
            loop {
                match rx.try_recv() {
                    Ok(_) => {
                        self.state.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => return,
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Writes queued frames until the queue closes (`Ok`) or the connection
    /// breaks (`Err`). The server never writes on a peer connection, so a
    /// read completing means it closed.
    async fn pump(
        &self,
        stream: TcpStream,
        rx: &mut mpsc::Receiver<Frame>,
    ) -> Result<(), TransportError> {
        let addr = self.addr.as_str();
        let (mut rd, mut wr) = stream.into_split();
        let mut probe = [0u8; 1];
        loop {
            tokio::select! {
                frame = rx.recv() => {
                    let Some(frame) = frame else { return Ok(()) };
                    timeout(WRITE_TIMEOUT, write_frame(&mut wr, &frame, addr))
                        .await
                        .map_err(timeout_err(addr))??;
                }
                r = rd.read(&mut probe) => {
                    return Err(match r {
                        Ok(0) => TransportError::Closed { addr: addr.to_string() },
                        Ok(_) => TransportError::UnexpectedData { addr: addr.to_string() },
                        Err(e) => io_err(addr)(e),
                    });
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Control client

/// Sends one control request to the daemon at `addr` (authenticating as
/// id 0, and checking the server's announced id against `server_id` if
/// given) and returns the response payload. Everything within `limit`.
pub async fn request(
    addr: &str,
    secret: &[u8],
    server_id: Option<u64>,
    payload: Vec<u8>,
    limit: Duration,
) -> Result<Vec<u8>, TransportError> {
    timeout(limit, async {
        let mut stream = connect(addr, 0, server_id, secret).await?;
        write_frame(&mut stream, &Frame::new(KIND_REQUEST, payload), addr).await?;
        let frame = read_frame(&mut stream, addr).await?;
        if frame.kind != KIND_RESPONSE {
            return Err(TransportError::UnexpectedKind {
                addr: addr.to_string(),
                kind: frame.kind,
            });
        }
        Ok(frame.payload)
    })
    .await
    .map_err(timeout_err(addr))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    const SECRET: &[u8] = b"correct horse battery staple";

    fn secret() -> Arc<Vec<u8>> {
        Arc::new(SECRET.to_vec())
    }

    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Logs {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }

        /// Waits (up to 5 s) until the captured logs contain `needle`.
        async fn wait_for(&self, needle: &str) {
            let start = Instant::now();
            while !self.text().contains(needle) {
                assert!(
                    start.elapsed() < Duration::from_secs(5),
                    "log line {needle:?} not found in:\n{}",
                    self.text()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// Captures this thread's tracing output (tokio tests run on one thread).
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let out = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || out.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Starts a server for node 1 accepting peers 2 and 3; control requests
    /// are answered with "re:" + payload (or the reply is dropped for "drop").
    async fn server() -> (
        SocketAddr,
        mpsc::Receiver<Inbound>,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::channel(64);
        let handle = tokio::spawn(serve(listener, 1, vec![2, 3], secret(), tx));
        (addr, rx, handle)
    }

    /// Answers control requests; forwards peer frames to the returned channel.
    fn responder(mut rx: mpsc::Receiver<Inbound>) -> mpsc::UnboundedReceiver<Inbound> {
        let (peer_tx, peer_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                match msg.reply {
                    Some(reply) if msg.frame.payload != b"drop" => {
                        let mut p = b"re:".to_vec();
                        p.extend_from_slice(&msg.frame.payload);
                        let _ = reply.send(Frame::new(KIND_RESPONSE, p));
                    }
                    Some(_) => {}
                    None => {
                        let _ = peer_tx.send(msg);
                    }
                }
            }
        });
        peer_rx
    }

    async fn ask(addr: SocketAddr, payload: &[u8]) -> Result<Vec<u8>, TransportError> {
        request(
            &addr.to_string(),
            SECRET,
            Some(1),
            payload.to_vec(),
            Duration::from_secs(5),
        )
        .await
    }

    async fn recv_peer(rx: &mut mpsc::UnboundedReceiver<Inbound>) -> Inbound {
        timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no frame within 5 s")
            .unwrap()
    }

    async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Reads until the server closes the connection (EOF or reset, within
    /// 5 s); returns what was read.
    async fn closed_by_server(s: &mut TcpStream) -> Vec<u8> {
        let mut sink = Vec::new();
        let _ = timeout(Duration::from_secs(5), s.read_to_end(&mut sink))
            .await
            .expect("connection not closed within 5 s");
        sink
    }

    #[tokio::test]
    async fn frames_flow_from_peer_to_server() {
        let (addr, rx, _server) = server().await;
        let mut frames = responder(rx);
        let peers = Peers::start(
            2,
            vec![(1, addr.to_string()), (2, "unused".into())],
            secret(),
        );
        for i in 0..3u8 {
            peers.send(1, Frame::new(KIND_RAFT, vec![i; 100 * usize::from(i)]));
        }
        peers.send(1, Frame::new(KIND_REPORT, b"report".to_vec()));
        for i in 0..3u8 {
            let m = recv_peer(&mut frames).await;
            assert_eq!(m.from, 2);
            assert!(m.reply.is_none());
            assert_eq!(
                m.frame,
                Frame::new(KIND_RAFT, vec![i; 100 * usize::from(i)])
            );
        }
        let m = recv_peer(&mut frames).await;
        assert_eq!(m.frame, Frame::new(KIND_REPORT, b"report".to_vec()));
        assert!(peers.connected(1));
        assert!(!peers.connected(2));
        assert_eq!(peers.dropped(1), 0);
        // A large frame (under the limit) goes through too.
        peers.send(1, Frame::new(KIND_RAFT, vec![7; 1 << 20]));
        assert_eq!(recv_peer(&mut frames).await.frame.payload.len(), 1 << 20);
    }

    #[tokio::test]
    async fn wrong_secret_and_unknown_peer_are_refused() {
        let (logs, _guard) = capture();
        let (addr, rx, _server) = server().await;
        let mut frames = responder(rx);

        let err = request(
            &addr.to_string(),
            b"wrong secret",
            None,
            b"hi".to_vec(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        // The client is told why: the server closed during the handshake.
        assert!(matches!(err, TransportError::AuthFailed { .. }), "{err}");
        logs.wait_for("authentication failed").await;

        // A peer with the wrong secret never connects.
        let bad = Peers::start(2, vec![(1, addr.to_string())], Arc::new(b"nope".to_vec()));
        bad.send(1, Frame::new(KIND_RAFT, b"x".to_vec()));
        // An id outside the allowed set is refused even with the right secret.
        let stranger = Peers::start(9, vec![(1, addr.to_string())], secret());
        stranger.send(1, Frame::new(KIND_RAFT, b"y".to_vec()));
        logs.wait_for("unknown peer id 9").await;
        assert!(!bad.connected(1) && !stranger.connected(1));

        // The client checks the id the server announces.
        let err = request(
            &addr.to_string(),
            SECRET,
            Some(5),
            vec![],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, TransportError::WrongServer { announced: 1, .. }),
            "{err}"
        );

        // The server keeps serving good clients.
        assert_eq!(ask(addr, b"status").await.unwrap(), b"re:status");
        let good = Peers::start(3, vec![(1, addr.to_string())], secret());
        good.send(1, Frame::new(KIND_RAFT, b"ok".to_vec()));
        let m = recv_peer(&mut frames).await;
        assert_eq!((m.from, m.frame.payload), (3, b"ok".to_vec()));
        assert!(!logs.text().contains(std::str::from_utf8(SECRET).unwrap()));
    }

    #[tokio::test]
    async fn garbage_oversize_and_slowloris_are_dropped() {
        let (logs, _guard) = capture();
        let (addr, rx, _server) = server().await;
        let mut frames = responder(rx);

        // Slowloris: connect and send (almost) nothing.
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"RAF").await.unwrap();
        let slow_start = Instant::now();

        // Garbage instead of a handshake.
        let mut g = TcpStream::connect(addr).await.unwrap();
        g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        closed_by_server(&mut g).await;
        logs.wait_for("bad magic").await;

        // Authenticated peer sending an oversize length, then an unknown kind.
        for (bytes, line) in [
            (vec![0xff, 0xff, 0xff, 0xff, KIND_RAFT], "exceeds the limit"),
            (vec![0, 0, 0, 2, 99, 0], "unknown frame kind 99"),
            (vec![0, 0, 0, 0], "empty frame"),
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            client_handshake(&mut s, "test", 2, Some(1), SECRET)
                .await
                .unwrap();
            s.write_all(&bytes).await.unwrap();
            closed_by_server(&mut s).await;
            logs.wait_for(line).await;
        }

        // Meanwhile good clients are served.
        assert_eq!(ask(addr, b"a").await.unwrap(), b"re:a");
        let peers = Peers::start(2, vec![(1, addr.to_string())], secret());
        peers.send(1, Frame::new(KIND_RAFT, b"fine".to_vec()));
        assert_eq!(recv_peer(&mut frames).await.frame.payload, b"fine");

        // The slowloris connection is closed after the handshake timeout.
        let sink = closed_by_server(&mut slow).await;
        assert!(slow_start.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(100));
        assert_eq!(
            sink.len(),
            MAGIC.len() + 8 + NONCE_LEN,
            "only the server hello"
        );
        logs.wait_for("timeout").await;
        assert_eq!(ask(addr, b"b").await.unwrap(), b"re:b");
    }

    #[tokio::test]
    async fn control_request_response() {
        let (addr, rx, _server) = server().await;
        let _frames = responder(rx);
        assert_eq!(ask(addr, b"status").await.unwrap(), b"re:status");
        // Without a server id check.
        let a = addr.to_string();
        let r = request(&a, SECRET, None, b"x".to_vec(), Duration::from_secs(5));
        assert_eq!(r.await.unwrap(), b"re:x");

        // Several requests on one connection, each answered before the next.
        let mut s = TcpStream::connect(addr).await.unwrap();
        let id = client_handshake(&mut s, "test", 0, None, SECRET)
            .await
            .unwrap();
        assert_eq!(id, 1);
        for p in [&b"one"[..], b"two"] {
            write_frame(&mut s, &Frame::new(KIND_REQUEST, p.to_vec()), "test")
                .await
                .unwrap();
            let f = read_frame(&mut s, "test").await.unwrap();
            assert_eq!(f.kind, KIND_RESPONSE);
            assert_eq!(f.payload, [b"re:", p].concat());
        }
        // A control client may only send requests.
        write_frame(&mut s, &Frame::new(KIND_RAFT, vec![]), "test")
            .await
            .unwrap();
        assert!(matches!(
            read_frame(&mut s, "test").await,
            Err(TransportError::Closed { .. })
        ));

        // If the node drops the reply, the connection is closed.
        let err = ask(addr, b"drop").await.unwrap_err();
        assert!(matches!(err, TransportError::Closed { .. }), "{err}");

        // Nobody listening.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = l.local_addr().unwrap();
        drop(l);
        let err = ask(dead, b"x").await.unwrap_err();
        assert!(matches!(err, TransportError::Connect { .. }), "{err}");
        assert!(err.to_string().contains(&dead.to_string()));
    }

    #[tokio::test]
    async fn peers_reconnect_after_server_restart() {
        let (addr, rx, server) = server().await;
        let mut frames = responder(rx);
        let peers = Peers::start(2, vec![(1, addr.to_string())], secret());
        peers.send(1, Frame::new(KIND_RAFT, b"before".to_vec()));
        assert_eq!(recv_peer(&mut frames).await.frame.payload, b"before");

        // Stop the server: its connections close with it.
        server.abort();
        let _ = server.await;
        wait_until("link did not notice the server stopped", || {
            !peers.connected(1)
        })
        .await;

        // Restart on the same address.
        let listener = TcpListener::bind(addr).await.unwrap();
        let (tx, rx) = mpsc::channel(64);
        let _server = tokio::spawn(serve(listener, 1, vec![2], secret(), tx));
        let mut frames = responder(rx);
        wait_until("link did not reconnect", || peers.connected(1)).await;
        peers.send(1, Frame::new(KIND_RAFT, b"after".to_vec()));
        assert_eq!(recv_peer(&mut frames).await.frame.payload, b"after");
    }

    #[tokio::test]
    async fn full_queue_drops_without_blocking() {
        // A peer that never answers the handshake: frames pile up, then drop.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peers = Peers::start(2, vec![(1, addr.to_string())], secret());
        for _ in 0..QUEUE_CAPACITY + 10 {
            peers.send(1, Frame::new(KIND_RAFT, vec![0; 10]));
        }
        assert!(peers.dropped(1) >= 10);
        drop(listener);
    }
}
