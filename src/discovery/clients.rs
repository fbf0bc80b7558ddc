//! The connected clients: ids, names, what `CLIENT LIST` / `CLIENT INFO`
//! show, `CLIENT KILL`, and the `max_clients` count.
//!
//! Each connection registers on accept and is removed when its
//! [`Registration`] is dropped, whatever ends the connection task.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a client has told us about itself, and its pub/sub counts.
#[derive(Clone, Debug)]
pub struct ClientMeta {
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub resp: i64,
    pub channels: usize,
    pub patterns: usize,
    /// Last command, lower case (`client|info`).
    pub last_cmd: String,
    pub last_active: Instant,
    pub authenticated: bool,
}

/// One connected client.
#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub created: Instant,
    /// Signalled by `CLIENT KILL`: the connection task closes.
    pub kill: Notify,
    meta: Mutex<ClientMeta>,
}

impl Client {
    pub fn meta(&self) -> MutexGuard<'_, ClientMeta> {
        lock(&self.meta)
    }

    /// `CLIENT INFO` / one `CLIENT LIST` line, with Redis' field names.
    pub fn info_line(&self) -> String {
        let m = self.meta().clone();
        let now = Instant::now();
        let flags = if m.channels + m.patterns > 0 {
            "P"
        } else {
            "N"
        };
        format!(
            "id={} addr={} laddr={} fd=-1 name={} age={} idle={} flags={flags} db=0 sub={} psub={} ssub=0 multi=-1 watch=0 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            m.name,
            now.duration_since(self.created).as_secs(),
            now.duration_since(m.last_active).as_secs(),
            m.channels,
            m.patterns,
            if m.last_cmd.is_empty() { "NULL" } else { &m.last_cmd },
            "default",
            m.resp,
            m.lib_name,
            m.lib_ver,
        )
    }

    pub fn is_pubsub(&self) -> bool {
        let m = self.meta();
        m.channels + m.patterns > 0
    }
}

/// Every connected client, by id.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<Client>>>,
}

/// Removes its client from the registry when dropped.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    pub client: Arc<Client>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.registry.clients).remove(&self.client.id);
    }
}

impl Registry {
    /// Connected clients.
    pub fn count(&self) -> usize {
        lock(&self.clients).len()
    }

    /// Registers a new client unless `max` are already connected.
    pub fn register(
        self: &Arc<Self>,
        addr: SocketAddr,
        laddr: SocketAddr,
        max: usize,
    ) -> Option<Registration> {
        let mut clients = lock(&self.clients);
        if clients.len() >= max {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let client = Arc::new(Client {
            id,
            addr,
            laddr,
            created: now,
            kill: Notify::new(),
            meta: Mutex::new(ClientMeta {
                name: String::new(),
                lib_name: String::new(),
                lib_ver: String::new(),
                resp: 2,
                channels: 0,
                patterns: 0,
                last_cmd: String::new(),
                last_active: now,
                authenticated: false,
            }),
        });
        clients.insert(id, client.clone());
        Some(Registration {
            registry: self.clone(),
            client,
        })
    }

    /// A snapshot of the connected clients, by id.
    pub fn all(&self) -> Vec<Arc<Client>> {
        lock(&self.clients).values().cloned().collect()
    }

    /// Clients subscribed to at least one channel or pattern.
    pub fn pubsub_clients(&self) -> usize {
        self.all().iter().filter(|c| c.is_pubsub()).count()
    }
}
