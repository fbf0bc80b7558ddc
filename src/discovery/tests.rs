//! Tests of the discovery port over real TCP connections on 127.0.0.1:0,
//! fed by a hand-built [`DiscoveryView`] through a watch channel: every
//! command's reply shape in RESP2 and RESP3, the never-stale rule, auth,
//! pub/sub, and bad input (each must end in a clear RESP error or a closed
//! connection while the server keeps serving others).

use super::settings::DiscoverySettings;
use super::view::{
    myid_of, DiscoveryHandles, DiscoveryView, FailoverRequest, GroupView, PeerView, ReplicaView,
};
use super::{serve, NOGOODSLAVE};
use crate::config::Secret;
use crate::core::events::Event;
use crate::core::types::Addr;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

fn replica(port: u16) -> ReplicaView {
    ReplicaView {
        addr: Addr::new("127.0.0.1", port),
        sdown: false,
        run_id: Some(format!("{:040}", port)),
        offset: Some(1000),
        link_up: Some(true),
        link_down_since_s: None,
        priority: Some(100),
        master: Some(Addr::new("127.0.0.1", 6379)),
        last_ok_ms_ago: Some(100),
        info_age_ms: Some(500),
        reports_master: false,
    }
}

fn sample_view() -> DiscoveryView {
    DiscoveryView {
        fresh: true,
        node_id: 1,
        myid: myid_of(1),
        raft_term: 5,
        leader: Some(1),
        groups: vec![GroupView {
            name: "mymaster".into(),
            master: Addr::new("127.0.0.1", 6379),
            epoch: 3,
            quorum: 2,
            down_after_ms: 5000,
            failover_timeout_ms: 60_000,
            parallel_syncs: 1,
            master_sdown: false,
            master_odown: false,
            master_run_id: Some("a".repeat(40)),
            master_offset: Some(1000),
            master_last_ok_ms_ago: Some(100),
            master_info_age_ms: Some(300),
            failover_in_progress: false,
            replicas: vec![replica(6380), replica(6381)],
        }],
        peers: vec![
            PeerView {
                id: 2,
                myid: myid_of(2),
                discovery_addr: Some(Addr::new("127.0.0.1", 26380)),
                last_heard_ms_ago: Some(50),
            },
            PeerView {
                id: 3,
                myid: myid_of(3),
                discovery_addr: Some(Addr::new("127.0.0.1", 26381)),
                last_heard_ms_ago: Some(80),
            },
        ],
    }
}

struct Srv {
    addr: SocketAddr,
    view: watch::Sender<DiscoveryView>,
    events: broadcast::Sender<Event>,
    failover: Option<mpsc::Receiver<FailoverRequest>>,
    task: JoinHandle<()>,
}

impl Drop for Srv {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Srv {
    async fn client(&self) -> Client {
        Client::connect(self.addr).await
    }

    fn update(&self, f: impl FnOnce(&mut DiscoveryView)) {
        self.view.send_modify(f);
    }

    fn publish(&self, name: &str, payload: &str) {
        let _ = self.events.send(Event::new(name, payload.to_string()));
    }
}

async fn start_with(cfg: DiscoverySettings, view: DiscoveryView) -> Srv {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (view_tx, view_rx) = watch::channel(view);
    let (events, _) = broadcast::channel(4096);
    let (fo_tx, fo_rx) = mpsc::channel(8);
    let h = DiscoveryHandles {
        view: view_rx,
        events: events.clone(),
        failover: fo_tx,
    };
    let task = tokio::spawn(serve(listener, cfg, h));
    Srv {
        addr,
        view: view_tx,
        events,
        failover: Some(fo_rx),
        task,
    }
}

async fn start() -> Srv {
    start_with(DiscoverySettings::default(), sample_view()).await
}

/// A decoded reply, the same for RESP2 and RESP3 where they agree.
#[derive(Clone, Debug, PartialEq)]
enum V {
    Simple(String),
    Err(String),
    Int(i64),
    Bulk(String),
    Null,
    Arr(Vec<V>),
    Map(Vec<(V, V)>),
    Set(Vec<V>),
    Push(Vec<V>),
    Verbatim(String),
}

impl V {
    fn b(s: &str) -> V {
        V::Bulk(s.into())
    }

    fn items(&self) -> &[V] {
        match self {
            V::Arr(v) | V::Push(v) | V::Set(v) => v,
            other => panic!("not an array: {other:?}"),
        }
    }

    /// A record (RESP2 flat array or RESP3 map) as field/value strings.
    fn record(&self) -> Vec<(String, String)> {
        let s = |v: &V| match v {
            V::Bulk(s) => s.clone(),
            other => panic!("record entry is not a bulk string: {other:?}"),
        };
        match self {
            V::Arr(v) => {
                assert_eq!(v.len() % 2, 0, "odd record length: {v:?}");
                v.chunks(2).map(|p| (s(&p[0]), s(&p[1]))).collect()
            }
            V::Map(pairs) => pairs.iter().map(|(k, v)| (s(k), s(v))).collect(),
            other => panic!("not a record: {other:?}"),
        }
    }

    fn text(&self) -> String {
        match self {
            V::Bulk(s) | V::Verbatim(s) | V::Simple(s) | V::Err(s) => s.clone(),
            other => panic!("not text: {other:?}"),
        }
    }
}

fn from2(f: redis_protocol::resp2::types::OwnedFrame) -> V {
    use redis_protocol::resp2::types::OwnedFrame as F;
    match f {
        F::SimpleString(s) => V::Simple(String::from_utf8_lossy(&s).into()),
        F::Error(s) => V::Err(s),
        F::Integer(n) => V::Int(n),
        F::BulkString(b) => V::Bulk(String::from_utf8_lossy(&b).into()),
        F::Array(v) => V::Arr(v.into_iter().map(from2).collect()),
        F::Null => V::Null,
    }
}

fn from3(f: redis_protocol::resp3::types::OwnedFrame) -> V {
    use redis_protocol::resp3::types::OwnedFrame as F;
    match f {
        F::SimpleString { data, .. } => V::Simple(String::from_utf8_lossy(&data).into()),
        F::SimpleError { data, .. } => V::Err(data),
        F::BlobError { data, .. } => V::Err(String::from_utf8_lossy(&data).into()),
        F::Number { data, .. } => V::Int(data),
        F::BlobString { data, .. } => V::Bulk(String::from_utf8_lossy(&data).into()),
        F::VerbatimString { data, .. } => V::Verbatim(String::from_utf8_lossy(&data).into()),
        F::Null => V::Null,
        F::Array { data, .. } => V::Arr(data.into_iter().map(from3).collect()),
        F::Push { data, .. } => V::Push(data.into_iter().map(from3).collect()),
        F::Set { data, .. } => V::Set(data.into_iter().map(from3).collect()),
        F::Map { data, .. } => V::Map(
            data.into_iter()
                .map(|(k, v)| (from3(k), from3(v)))
                .collect(),
        ),
        other => panic!("unexpected RESP3 frame {other:?}"),
    }
}

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    resp3: bool,
}

fn multibulk(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
            resp3: false,
        }
    }

    async fn send(&mut self, args: &[&str]) {
        self.s.write_all(&multibulk(args)).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    /// Length of the first complete reply in the buffer.
    fn complete(&self) -> Option<usize> {
        if self.resp3 {
            match redis_protocol::resp3::decode::complete::decode(&self.buf) {
                Ok(Some((_, n))) => Some(n),
                Ok(None) => None,
                Err(e) => panic!(
                    "bad RESP3 from server: {e:?}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        } else {
            match redis_protocol::resp2::decode::decode(&self.buf) {
                Ok(Some((_, n))) => Some(n),
                Ok(None) => None,
                Err(e) => panic!(
                    "bad RESP2 from server: {e:?}: {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    /// The raw bytes of the next reply.
    async fn read_raw(&mut self) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + T;
        loop {
            if let Some(n) = self.complete() {
                return self.buf.drain(..n).collect();
            }
            let mut chunk = vec![0u8; 65536];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut chunk))
                .await
                .expect("reply within the timeout")
                .expect("read");
            assert!(
                n > 0,
                "connection closed; buffered: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn read(&mut self) -> V {
        let raw = self.read_raw().await;
        if self.resp3 {
            let (f, _) = redis_protocol::resp3::decode::complete::decode(&raw)
                .unwrap()
                .unwrap();
            from3(f)
        } else {
            let (f, _) = redis_protocol::resp2::decode::decode(&raw)
                .unwrap()
                .unwrap();
            from2(f)
        }
    }

    async fn raw(&mut self, args: &[&str]) -> String {
        self.send(args).await;
        String::from_utf8(self.read_raw().await).unwrap()
    }

    async fn cmd(&mut self, args: &[&str]) -> V {
        self.send(args).await;
        self.read().await
    }

    async fn hello3(&mut self) -> V {
        self.send(&["HELLO", "3"]).await;
        self.resp3 = true;
        self.read().await
    }

    /// True when the server closed the connection (EOF or reset) within the
    /// timeout, after any buffered replies.
    async fn closed(&mut self) -> bool {
        let mut chunk = vec![0u8; 65536];
        loop {
            match tokio::time::timeout(T, self.s.read(&mut chunk)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

async fn assert_serving(srv: &Srv) {
    let mut c = srv.client().await;
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
}

const MASTER_FIELDS: &[&str] = &[
    "name",
    "ip",
    "port",
    "runid",
    "flags",
    "link-pending-commands",
    "link-refcount",
    "last-ping-sent",
    "last-ok-ping-reply",
    "last-ping-reply",
    "down-after-milliseconds",
    "info-refresh",
    "role-reported",
    "role-reported-time",
    "config-epoch",
    "num-slaves",
    "num-other-sentinels",
    "quorum",
    "failover-timeout",
    "parallel-syncs",
];

const REPLICA_FIELDS: &[&str] = &[
    "name",
    "ip",
    "port",
    "runid",
    "flags",
    "link-pending-commands",
    "link-refcount",
    "last-ping-sent",
    "last-ok-ping-reply",
    "last-ping-reply",
    "down-after-milliseconds",
    "info-refresh",
    "role-reported",
    "role-reported-time",
    "master-link-down-time",
    "master-link-status",
    "master-host",
    "master-port",
    "slave-priority",
    "slave-repl-offset",
    "replica-announced",
];

fn field<'a>(rec: &'a [(String, String)], name: &str) -> &'a str {
    rec.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {name} in {rec:?}"))
}

fn keys(rec: &[(String, String)]) -> Vec<&str> {
    rec.iter().map(|(k, _)| k.as_str()).collect()
}

/// The field names, sorted: the RESP3 decoder used by these tests does not
/// keep map order (the raw bytes are checked for order where it matters).
fn sorted(names: Vec<&str>) -> Vec<&str> {
    let mut names = names;
    names.sort_unstable();
    names
}

// ---------------------------------------------------------------------------
// Commands and reply shapes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn ping_and_echo_in_resp2_and_resp3() {
    let srv = start().await;
    let mut c = srv.client().await;
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
    assert_eq!(c.raw(&["ping", "hi"]).await, "$2\r\nhi\r\n");
    assert_eq!(
        c.raw(&["PING", "a", "b"]).await,
        "-ERR wrong number of arguments for 'ping' command\r\n"
    );
    assert_eq!(c.raw(&["ECHO", "x y"]).await, "$3\r\nx y\r\n");
    c.hello3().await;
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
    assert_eq!(c.raw(&["PING", "hi"]).await, "$2\r\nhi\r\n");
}

#[tokio::test]
async fn hello_replies_like_sentinel() {
    let srv = start().await;
    let mut c = srv.client().await;
    let id = match c.cmd(&["CLIENT", "ID"]).await {
        V::Int(n) => n,
        other => panic!("{other:?}"),
    };
    // RESP2: a flat array; Sentinel's HELLO has no `role` field.
    let hello2 = c.raw(&["HELLO"]).await;
    let expected2 = format!(
        "*12\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n{}\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:{id}\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n$7\r\nmodules\r\n*0\r\n",
        super::REDIS_VERSION
    );
    assert_eq!(hello2, expected2);
    // RESP3: a map, and the connection now speaks RESP3.
    c.send(&["HELLO", "3", "SETNAME", "probe"]).await;
    c.resp3 = true;
    let raw = String::from_utf8(c.read_raw().await).unwrap();
    assert!(
        raw.starts_with("%6\r\n$6\r\nserver\r\n$5\r\nredis\r\n"),
        "{raw}"
    );
    assert!(raw.contains("$5\r\nproto\r\n:3\r\n"), "{raw}");
    assert!(raw.contains("$4\r\nmode\r\n$8\r\nsentinel\r\n"), "{raw}");
    assert!(raw.ends_with("$7\r\nmodules\r\n*0\r\n"), "{raw}");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]).await, V::b("probe"));
    assert_eq!(c.raw(&["CLIENT", "INFO"]).await.chars().next(), Some('='));

    assert_eq!(
        c.raw(&["HELLO", "4"]).await,
        "-NOPROTO unsupported protocol version\r\n"
    );
    assert_eq!(
        c.raw(&["HELLO", "1"]).await,
        "-NOPROTO unsupported protocol version\r\n"
    );
    assert_eq!(
        c.raw(&["HELLO", "three"]).await,
        "-ERR Protocol version is not an integer or out of range\r\n"
    );
    assert_eq!(
        c.raw(&["HELLO", "3", "FOO"]).await,
        "-ERR Syntax error in HELLO option 'FOO'\r\n"
    );
    assert_eq!(
        c.raw(&["HELLO", "3", "SETNAME", "a b"]).await,
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    // Back to RESP2.
    c.send(&["HELLO", "2"]).await;
    c.resp3 = false;
    assert_eq!(c.read().await.items().len(), 12);
}

#[tokio::test]
async fn role_and_myid() {
    let srv = start().await;
    let mut c = srv.client().await;
    assert_eq!(
        c.raw(&["ROLE"]).await,
        "*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "MYID"]).await,
        format!("$40\r\n{}\r\n", myid_of(1))
    );
    c.hello3().await;
    assert_eq!(
        c.raw(&["ROLE"]).await,
        "*2\r\n$8\r\nsentinel\r\n*1\r\n$8\r\nmymaster\r\n"
    );
}

#[tokio::test]
async fn get_master_addr_by_name_shapes() {
    let srv = start().await;
    let mut c = srv.client().await;
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nope"])
            .await,
        "*-1\r\n"
    );
    c.hello3().await;
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "nope"])
            .await,
        "_\r\n"
    );
}

#[tokio::test]
async fn never_stale_when_the_view_is_not_fresh() {
    let srv = start().await;
    let mut c = srv.client().await;
    let mut c3 = srv.client().await;
    c3.hello3().await;
    srv.update(|v| v.fresh = false);

    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "*-1\r\n"
    );
    assert_eq!(
        c3.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "_\r\n"
    );
    assert_eq!(c.raw(&["SENTINEL", "MASTERS"]).await, "*0\r\n");
    assert_eq!(c3.raw(&["SENTINEL", "MASTERS"]).await, "*0\r\n");
    let idk = "-IDONTKNOW I'm not sure about the master state, not connected to a quorum\r\n";
    assert_eq!(c.raw(&["SENTINEL", "MASTER", "mymaster"]).await, idk);
    assert_eq!(c.raw(&["SENTINEL", "REPLICAS", "mymaster"]).await, idk);
    assert_eq!(c.raw(&["SENTINEL", "SLAVES", "mymaster"]).await, idk);
    // An unknown name is still an unknown name.
    assert_eq!(
        c.raw(&["SENTINEL", "MASTER", "nope"]).await,
        "-ERR No such master with that name\r\n"
    );
    let info = c.cmd(&["INFO", "sentinel"]).await.text();
    assert!(
        info.contains(
            "master0:name=mymaster,status=sdown,address=127.0.0.1:6379,slaves=2,sentinels=3"
        ),
        "{info}"
    );

    // Fresh again: answers again.
    srv.update(|v| v.fresh = true);
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"
    );
}

/// The daemon loop is gone: the view can no longer change, so it may be
/// stale, whatever its flag says.
#[tokio::test]
async fn a_view_without_publisher_is_not_fresh() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (view_tx, view_rx) = watch::channel(sample_view());
    let (events, _) = broadcast::channel(16);
    let (fo_tx, _fo_rx) = mpsc::channel(1);
    let task = tokio::spawn(serve(
        listener,
        DiscoverySettings::default(),
        DiscoveryHandles {
            view: view_rx,
            events,
            failover: fo_tx,
        },
    ));
    let mut c = Client::connect(addr).await;
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"
    );
    drop(view_tx);
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "*-1\r\n"
    );
    assert_eq!(c.raw(&["SENTINEL", "MASTERS"]).await, "*0\r\n");
    task.abort();
}

#[tokio::test]
async fn masters_and_master_records() {
    let srv = start().await;
    let mut c = srv.client().await;
    let masters = c.cmd(&["SENTINEL", "MASTERS"]).await;
    assert_eq!(masters.items().len(), 1);
    let rec = masters.items()[0].record();
    assert_eq!(keys(&rec), MASTER_FIELDS);
    assert_eq!(field(&rec, "name"), "mymaster");
    assert_eq!(field(&rec, "ip"), "127.0.0.1");
    assert_eq!(field(&rec, "port"), "6379");
    assert_eq!(field(&rec, "runid"), "a".repeat(40));
    assert_eq!(field(&rec, "flags"), "master");
    assert_eq!(field(&rec, "config-epoch"), "3");
    assert_eq!(field(&rec, "num-slaves"), "2");
    assert_eq!(field(&rec, "num-other-sentinels"), "2");
    assert_eq!(field(&rec, "quorum"), "2");
    assert_eq!(field(&rec, "down-after-milliseconds"), "5000");
    assert_eq!(field(&rec, "failover-timeout"), "60000");
    assert_eq!(field(&rec, "parallel-syncs"), "1");
    assert_eq!(field(&rec, "role-reported"), "master");
    // RESP2: numbers are bulk strings.
    let raw = c.raw(&["SENTINEL", "MASTER", "mymaster"]).await;
    assert!(
        raw.starts_with("*40\r\n$4\r\nname\r\n$8\r\nmymaster\r\n"),
        "{raw}"
    );
    assert!(raw.contains("$4\r\nport\r\n$4\r\n6379\r\n"), "{raw}");
    assert!(
        !raw.contains("\r\n:"),
        "no integer replies in a record: {raw}"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "MASTER", "nope"]).await,
        "-ERR No such master with that name\r\n"
    );

    // RESP3: maps.
    c.hello3().await;
    let raw = c.raw(&["SENTINEL", "MASTER", "mymaster"]).await;
    assert!(raw.starts_with("%20\r\n$4\r\nname\r\n"), "{raw}");
    let masters = c.cmd(&["SENTINEL", "MASTERS"]).await;
    assert!(matches!(&masters.items()[0], V::Map(_)), "{masters:?}");
    assert_eq!(
        sorted(keys(&masters.items()[0].record())),
        sorted(MASTER_FIELDS.to_vec())
    );

    // Down master: legacy tokens, and Sentinel's extra fields.
    srv.update(|v| {
        let g = &mut v.groups[0];
        g.master_sdown = true;
        g.master_odown = true;
        g.failover_in_progress = true;
        g.master_last_ok_ms_ago = Some(7000);
    });
    let rec = c.cmd(&["SENTINEL", "MASTER", "mymaster"]).await.record();
    assert_eq!(
        field(&rec, "flags"),
        "s_down,o_down,master,failover_in_progress"
    );
    assert_eq!(field(&rec, "s-down-time"), "2000");
    assert_eq!(field(&rec, "o-down-time"), "2000");
    assert_eq!(field(&rec, "last-ok-ping-reply"), "7000");
    srv.update(|v| v.groups[0].master_last_ok_ms_ago = None);
    let rec = c.cmd(&["SENTINEL", "MASTER", "mymaster"]).await.record();
    assert!(field(&rec, "flags").contains("disconnected"), "{rec:?}");
}

#[tokio::test]
async fn replicas_records() {
    let srv = start().await;
    srv.update(|v| {
        let g = &mut v.groups[0];
        g.replicas[1].sdown = true;
        g.replicas[1].link_up = Some(false);
        g.replicas[1].link_down_since_s = Some(7);
        g.replicas[1].last_ok_ms_ago = Some(9000);
        // An old master that still reports role master is not listed.
        let mut old = replica(6382);
        old.reports_master = true;
        g.replicas.push(old);
    });
    let mut c = srv.client().await;
    for sub in ["REPLICAS", "slaves"] {
        let v = c.cmd(&["SENTINEL", sub, "mymaster"]).await;
        assert_eq!(v.items().len(), 2, "{v:?}");
        let r0 = v.items()[0].record();
        assert_eq!(keys(&r0), REPLICA_FIELDS);
        assert_eq!(field(&r0, "name"), "127.0.0.1:6380");
        assert_eq!(field(&r0, "ip"), "127.0.0.1");
        assert_eq!(field(&r0, "port"), "6380");
        assert_eq!(field(&r0, "flags"), "slave");
        assert_eq!(field(&r0, "master-link-status"), "ok");
        assert_eq!(field(&r0, "master-host"), "127.0.0.1");
        assert_eq!(field(&r0, "master-port"), "6379");
        assert_eq!(field(&r0, "slave-priority"), "100");
        assert_eq!(field(&r0, "slave-repl-offset"), "1000");
        assert_eq!(field(&r0, "replica-announced"), "1");
        let r1 = v.items()[1].record();
        assert_eq!(field(&r1, "flags"), "s_down,slave");
        assert_eq!(field(&r1, "s-down-time"), "4000");
        assert_eq!(field(&r1, "master-link-status"), "err");
        assert_eq!(field(&r1, "master-link-down-time"), "7000");
    }
    let rec = c.cmd(&["SENTINEL", "MASTER", "mymaster"]).await.record();
    assert_eq!(field(&rec, "num-slaves"), "2");
    assert_eq!(
        c.raw(&["SENTINEL", "REPLICAS", "nope"]).await,
        "-ERR No such master with that name\r\n"
    );
    c.hello3().await;
    let v = c.cmd(&["SENTINEL", "REPLICAS", "mymaster"]).await;
    assert!(matches!(&v.items()[0], V::Map(_)), "{v:?}");
    assert_eq!(
        sorted(keys(&v.items()[0].record())),
        sorted(REPLICA_FIELDS.to_vec())
    );
    let raw = c.raw(&["SENTINEL", "REPLICAS", "mymaster"]).await;
    assert!(
        raw.starts_with("*2\r\n%21\r\n$4\r\nname\r\n$14\r\n127.0.0.1:6380\r\n$2\r\nip\r\n"),
        "{raw}"
    );
}

#[tokio::test]
async fn sentinels_records_and_ckquorum() {
    let srv = start().await;
    let mut c = srv.client().await;
    let v = c.cmd(&["SENTINEL", "SENTINELS", "mymaster"]).await;
    assert_eq!(v.items().len(), 2);
    let r = v.items()[0].record();
    assert_eq!(field(&r, "name"), myid_of(2));
    assert_eq!(field(&r, "runid"), myid_of(2));
    assert_eq!(field(&r, "ip"), "127.0.0.1");
    assert_eq!(field(&r, "port"), "26380");
    assert_eq!(field(&r, "flags"), "sentinel");
    assert_eq!(field(&r, "last-hello-message"), "50");
    assert_eq!(field(&r, "voted-leader"), "?");
    assert_eq!(
        c.raw(&["SENTINEL", "CKQUORUM", "mymaster"]).await,
        "+OK 3 usable Sentinels. Quorum and failover authorization can be reached\r\n"
    );

    // One peer silent for longer than the election timeout: flagged, still 2 of 3.
    srv.update(|v| v.peers[1].last_heard_ms_ago = Some(60_000));
    let v = c.cmd(&["SENTINEL", "SENTINELS", "mymaster"]).await;
    assert_eq!(field(&v.items()[1].record(), "flags"), "s_down,sentinel");
    assert_eq!(
        c.raw(&["SENTINEL", "CKQUORUM", "mymaster"]).await,
        "+OK 2 usable Sentinels. Quorum and failover authorization can be reached\r\n"
    );
    // Both silent (or never heard): no quorum, no majority.
    srv.update(|v| v.peers[0].last_heard_ms_ago = None);
    assert_eq!(
        c.raw(&["SENTINEL", "CKQUORUM", "mymaster"]).await,
        "-NOQUORUM 1 usable Sentinels. Not enough available Sentinels to reach the specified quorum for this master. Not enough available Sentinels to reach the majority and authorize a failover\r\n"
    );
    let v = c.cmd(&["SENTINEL", "SENTINELS", "mymaster"]).await;
    assert_eq!(
        field(&v.items()[0].record(), "flags"),
        "s_down,sentinel,disconnected"
    );
    // Peers without a discovery address are counted but not listed.
    srv.update(|v| v.peers[0].discovery_addr = None);
    let v = c.cmd(&["SENTINEL", "SENTINELS", "mymaster"]).await;
    assert_eq!(v.items().len(), 1);
    assert_eq!(
        c.raw(&["SENTINEL", "SENTINELS", "nope"]).await,
        "-ERR No such master with that name\r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "CKQUORUM", "nope"]).await,
        "-ERR No such master with that name\r\n"
    );
    c.hello3().await;
    let v = c.cmd(&["SENTINEL", "SENTINELS", "mymaster"]).await;
    assert!(matches!(&v.items()[0], V::Map(_)), "{v:?}");
}

#[tokio::test]
async fn failover_goes_to_the_daemon() {
    let mut srv = start().await;
    let mut rx = srv.failover.take().unwrap();
    let daemon = tokio::spawn(async move {
        let mut answers = vec![
            Ok(()),
            Err(NOGOODSLAVE.to_string()),
            Err("this daemon is not the Raft leader".to_string()),
        ]
        .into_iter();
        while let Some(req) = rx.recv().await {
            assert_eq!(req.group, "mymaster");
            let _ = req.reply.send(answers.next().unwrap_or(Ok(())));
        }
    });
    let mut c = srv.client().await;
    assert_eq!(
        c.raw(&["SENTINEL", "FAILOVER", "mymaster"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "FAILOVER", "mymaster"]).await,
        "-NOGOODSLAVE No suitable replica to promote\r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "FAILOVER", "mymaster"]).await,
        "-ERR this daemon is not the Raft leader\r\n"
    );
    // Sentinel's own checks, answered without asking the daemon.
    assert_eq!(
        c.raw(&["SENTINEL", "FAILOVER", "nope"]).await,
        "-ERR No such master with that name\r\n"
    );
    srv.update(|v| v.groups[0].failover_in_progress = true);
    assert_eq!(
        c.raw(&["SENTINEL", "FAILOVER", "mymaster"]).await,
        "-INPROG Failover already in progress\r\n"
    );
    srv.update(|v| {
        v.groups[0].failover_in_progress = false;
        for r in &mut v.groups[0].replicas {
            r.sdown = true;
        }
    });
    assert_eq!(
        c.raw(&["SENTINEL", "FAILOVER", "mymaster"]).await,
        "-NOGOODSLAVE No suitable replica to promote\r\n"
    );
    // The daemon is gone.
    srv.update(|v| {
        for r in &mut v.groups[0].replicas {
            r.sdown = false;
        }
    });
    daemon.abort();
    let _ = daemon.await;
    assert_eq!(
        c.raw(&["SENTINEL", "FAILOVER", "mymaster"]).await,
        "-ERR the daemon is not accepting failover requests\r\n"
    );
}

#[tokio::test]
async fn info_has_sentinel_sections() {
    let srv = start().await;
    let mut c = srv.client().await;
    let raw = c.raw(&["INFO"]).await;
    assert!(raw.starts_with('$'), "RESP2 INFO is a bulk string: {raw}");
    for needle in [
        "# Server\r\n",
        "redis_version:",
        "redis_mode:sentinel\r\n",
        &format!("run_id:{}\r\n", myid_of(1)),
        &format!("tcp_port:{}\r\n", srv.addr.port()),
        "# Clients\r\n",
        "connected_clients:1\r\n",
        "maxclients:10000\r\n",
        "# Stats\r\n",
        "# Sentinel\r\n",
        "sentinel_masters:1\r\n",
        "sentinel_tilt:0\r\n",
        "sentinel_running_scripts:0\r\n",
        "master0:name=mymaster,status=ok,address=127.0.0.1:6379,slaves=2,sentinels=3\r\n",
    ] {
        assert!(raw.contains(needle), "{needle:?} in {raw}");
    }
    let only = c.cmd(&["INFO", "SENTINEL"]).await.text();
    assert!(only.starts_with("# Sentinel\r\n"), "{only}");
    assert!(!only.contains("# Server"), "{only}");
    let two = c.cmd(&["INFO", "server", "clients"]).await.text();
    assert!(two.contains("# Server") && two.contains("# Clients") && !two.contains("# Sentinel"));
    assert_eq!(c.cmd(&["INFO", "keyspace"]).await.text(), "");
    srv.update(|v| v.groups[0].master_odown = true);
    assert!(c.cmd(&["INFO"]).await.text().contains("status=odown"));
    c.hello3().await;
    let raw = c.raw(&["INFO", "sentinel"]).await;
    assert!(
        raw.starts_with('='),
        "RESP3 INFO is a verbatim string: {raw}"
    );
    assert!(raw.contains("txt:# Sentinel"), "{raw}");
}

#[tokio::test]
async fn client_subcommands() {
    let srv = start().await;
    let mut c = srv.client().await;
    let mut other = srv.client().await;
    assert_eq!(c.raw(&["CLIENT", "GETNAME"]).await, "$-1\r\n");
    assert_eq!(c.raw(&["CLIENT", "SETNAME", "app-1"]).await, "+OK\r\n");
    assert_eq!(c.raw(&["CLIENT", "GETNAME"]).await, "$5\r\napp-1\r\n");
    assert_eq!(
        c.raw(&["CLIENT", "SETNAME", "a b"]).await,
        "-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
    );
    assert_eq!(
        c.raw(&["CLIENT", "SETINFO", "LIB-NAME", "redis-py"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        c.raw(&["CLIENT", "SETINFO", "lib-ver", "5.0"]).await,
        "+OK\r\n"
    );
    assert_eq!(
        c.raw(&["CLIENT", "SETINFO", "color", "red"]).await,
        "-ERR Unrecognized option 'color'\r\n"
    );
    let id = match c.cmd(&["CLIENT", "ID"]).await {
        V::Int(n) => n,
        other => panic!("{other:?}"),
    };
    let info = c.cmd(&["CLIENT", "INFO"]).await.text();
    assert!(info.starts_with(&format!("id={id} addr=")), "{info}");
    for needle in [
        "name=app-1",
        "lib-name=redis-py",
        "lib-ver=5.0",
        "resp=2",
        "cmd=client|info",
    ] {
        assert!(info.contains(needle), "{needle} in {info}");
    }
    let list = c.cmd(&["CLIENT", "LIST"]).await.text();
    assert_eq!(list.lines().count(), 2, "{list}");
    assert_eq!(
        c.raw(&["CLIENT", "FROB"]).await,
        "-ERR unknown subcommand 'FROB'. Try CLIENT HELP.\r\n"
    );
    assert_eq!(
        c.raw(&["CLIENT", "SETNAME"]).await,
        "-ERR wrong number of arguments for 'client|setname' command\r\n"
    );
    // Kill the other connection by id.
    let other_id = match other.cmd(&["CLIENT", "ID"]).await {
        V::Int(n) => n,
        v => panic!("{v:?}"),
    };
    assert_eq!(
        c.raw(&["CLIENT", "KILL", "ID", &other_id.to_string()])
            .await,
        ":1\r\n"
    );
    assert!(other.closed().await);
    assert_eq!(c.raw(&["CLIENT", "KILL", "ID", "999999"]).await, ":0\r\n");
    assert_eq!(
        c.raw(&["CLIENT", "KILL", "10.0.0.1:1"]).await,
        "-ERR No such client\r\n"
    );
    // Old form on itself: +OK, then closed.
    let me = c.s.local_addr().unwrap().to_string();
    assert_eq!(c.raw(&["CLIENT", "KILL", &me]).await, "+OK\r\n");
    assert!(c.closed().await);
    assert_serving(&srv).await;
}

#[tokio::test]
async fn command_is_enough_for_probing_clients() {
    let srv = start().await;
    let mut c = srv.client().await;
    let all = c.cmd(&["COMMAND"]).await;
    let n = all.items().len();
    assert!(n >= 15, "{n}");
    let ping = all
        .items()
        .iter()
        .find(|e| e.items()[0] == V::b("ping"))
        .expect("ping in COMMAND");
    assert_eq!(ping.items().len(), 10);
    assert_eq!(ping.items()[1], V::Int(-1));
    assert_eq!(c.cmd(&["COMMAND", "COUNT"]).await, V::Int(n as i64));
    let list = c.cmd(&["COMMAND", "LIST"]).await;
    assert!(list.items().contains(&V::b("sentinel")));
    let info = c.cmd(&["COMMAND", "INFO", "sentinel", "get"]).await;
    assert_eq!(info.items()[0].items()[0], V::b("sentinel"));
    assert_eq!(info.items()[1], V::Null);
    let sentinel_subs = info.items()[0].items()[9].items().len();
    assert!(sentinel_subs >= 10, "{sentinel_subs}");
    let docs = c.cmd(&["COMMAND", "DOCS"]).await;
    assert_eq!(docs.items().len(), 2 * n);
    let docs = c.cmd(&["COMMAND", "DOCS", "ping"]).await;
    assert_eq!(docs.items()[0], V::b("ping"));
    c.hello3().await;
    let docs = c.cmd(&["COMMAND", "DOCS", "ping"]).await;
    assert!(matches!(docs, V::Map(_)), "{docs:?}");
    let all = c.cmd(&["COMMAND"]).await;
    assert!(matches!(all.items()[0].items()[2], V::Set(_)), "{all:?}");
}

#[tokio::test]
async fn unknown_commands_and_subcommands() {
    let srv = start().await;
    let mut c = srv.client().await;
    assert_eq!(
        c.raw(&["GET", "foo"]).await,
        "-ERR unknown command 'GET', with args beginning with: 'foo' \r\n"
    );
    assert_eq!(
        c.raw(&["FLUSHALL"]).await,
        "-ERR unknown command 'FLUSHALL', with args beginning with: \r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "frob"]).await,
        "-ERR unknown subcommand 'frob'. Try SENTINEL HELP.\r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL", "MASTER"]).await,
        "-ERR wrong number of arguments for 'sentinel|master' command\r\n"
    );
    assert_eq!(
        c.raw(&["SENTINEL"]).await,
        "-ERR wrong number of arguments for 'sentinel' command\r\n"
    );
    let e = c
        .raw(&[
            "SENTINEL",
            "IS-MASTER-DOWN-BY-ADDR",
            "127.0.0.1",
            "6379",
            "1",
            "*",
        ])
        .await;
    assert!(
        e.starts_with("-ERR SENTINEL IS-MASTER-DOWN-BY-ADDR is not supported"),
        "{e}"
    );
    let e = c
        .raw(&["SENTINEL", "MONITOR", "x", "127.0.0.1", "1", "2"])
        .await;
    assert!(
        e.starts_with("-ERR SENTINEL MONITOR is not supported"),
        "{e}"
    );
    let help = c.cmd(&["SENTINEL", "HELP"]).await;
    assert!(help.items().len() > 5);
    // Still serving.
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
}

#[tokio::test]
async fn quit_and_reset() {
    let srv = start().await;
    let mut c = srv.client().await;
    c.hello3().await;
    c.send(&["SUBSCRIBE", "x"]).await;
    c.read().await;
    c.send(&["RESET"]).await;
    c.resp3 = false;
    assert_eq!(String::from_utf8(c.read_raw().await).unwrap(), "+RESET\r\n");
    // Back to RESP2, unsubscribed.
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "nope"])
            .await,
        "*-1\r\n"
    );
    assert_eq!(c.raw(&["QUIT"]).await, "+OK\r\n");
    assert!(c.closed().await);
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

#[tokio::test]
async fn password_auth() {
    let cfg = DiscoverySettings {
        password: Some(Secret::new("s3cret")),
        ..DiscoverySettings::default()
    };
    let srv = start_with(cfg, sample_view()).await;
    let mut c = srv.client().await;
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
    let noauth = "-NOAUTH Authentication required.\r\n";
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        noauth
    );
    assert_eq!(c.raw(&["INFO"]).await, noauth);
    assert_eq!(c.raw(&["SUBSCRIBE", "+switch-master"]).await, noauth);
    assert_eq!(c.raw(&["CLIENT", "ID"]).await, noauth);
    assert!(c
        .raw(&["HELLO", "3"])
        .await
        .starts_with("-NOAUTH HELLO must be called with the client already authenticated"));
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(c.raw(&["AUTH", "nope"]).await, wrongpass);
    assert_eq!(c.raw(&["AUTH", "other", "s3cret"]).await, wrongpass);
    assert_eq!(
        c.raw(&["HELLO", "3", "AUTH", "default", "nope"]).await,
        wrongpass
    );
    assert_eq!(
        c.raw(&["AUTH", "a", "b", "c"]).await,
        "-ERR syntax error\r\n"
    );
    assert_eq!(c.raw(&["AUTH", "s3cret"]).await, "+OK\r\n");
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"
    );
    // AUTH default <password> and HELLO AUTH on a fresh connection.
    let mut c = srv.client().await;
    assert_eq!(c.raw(&["AUTH", "default", "s3cret"]).await, "+OK\r\n");
    let mut c = srv.client().await;
    c.send(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "x"])
        .await;
    c.resp3 = true;
    assert!(matches!(c.read().await, V::Map(_)));
    assert_eq!(c.raw(&["ROLE"]).await.chars().next(), Some('*'));
    // Before authentication, requests are kept small (Redis' limits).
    let mut c = srv.client().await;
    let big = "x".repeat(20_000);
    assert_eq!(
        c.raw(&["AUTH", &big]).await,
        "-ERR Protocol error: unauthenticated bulk length\r\n"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn acl_user_auth() {
    let cfg = DiscoverySettings {
        username: Some("app".into()),
        password: Some(Secret::new("pw")),
        ..DiscoverySettings::default()
    };
    let srv = start_with(cfg, sample_view()).await;
    let mut c = srv.client().await;
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(c.raw(&["AUTH", "pw"]).await, wrongpass);
    assert_eq!(c.raw(&["AUTH", "default", "pw"]).await, wrongpass);
    assert_eq!(c.raw(&["AUTH", "app", "pw"]).await, "+OK\r\n");
    assert_eq!(c.raw(&["ROLE"]).await.chars().next(), Some('*'));
    let mut c = srv.client().await;
    c.send(&["HELLO", "3", "AUTH", "app", "pw"]).await;
    c.resp3 = true;
    assert!(matches!(c.read().await, V::Map(_)));
}

#[tokio::test]
async fn auth_without_a_configured_password() {
    let srv = start().await;
    let mut c = srv.client().await;
    assert_eq!(
        c.raw(&["AUTH", "x"]).await,
        "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n"
    );
    assert_eq!(c.raw(&["AUTH", "default", "anything"]).await, "+OK\r\n");
    assert_eq!(
        c.raw(&["AUTH", "bob", "x"]).await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
}

// ---------------------------------------------------------------------------
// Pub/sub
// ---------------------------------------------------------------------------

#[tokio::test]
async fn subscribe_delivers_events_resp2() {
    let srv = start().await;
    let mut c = srv.client().await;
    assert_eq!(
        c.raw(&["SUBSCRIBE", "+switch-master", "+sdown"]).await,
        "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n"
    );
    assert_eq!(
        String::from_utf8(c.read_raw().await).unwrap(),
        "*3\r\n$9\r\nsubscribe\r\n$6\r\n+sdown\r\n:2\r\n"
    );
    // Not subscribed to +odown: not delivered.
    srv.publish("+odown", "master mymaster 127.0.0.1 6379 #quorum 2/2");
    let payload = "mymaster 127.0.0.1 6379 127.0.0.1 6380";
    srv.publish("+switch-master", payload);
    assert_eq!(
        String::from_utf8(c.read_raw().await).unwrap(),
        format!(
            "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n${}\r\n{payload}\r\n",
            payload.len()
        )
    );
    // Subscribed mode in RESP2: PING answers ["pong", arg]; other commands
    // are refused.
    assert_eq!(c.raw(&["PING"]).await, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
    assert_eq!(
        c.raw(&["PING", "x"]).await,
        "*2\r\n$4\r\npong\r\n$1\r\nx\r\n"
    );
    assert_eq!(
        c.raw(&["INFO"]).await,
        "-ERR Can't execute 'info': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
    );
    assert_eq!(
        c.raw(&["UNSUBSCRIBE", "+sdown"]).await,
        "*3\r\n$11\r\nunsubscribe\r\n$6\r\n+sdown\r\n:1\r\n"
    );
    assert_eq!(
        c.raw(&["UNSUBSCRIBE"]).await,
        "*3\r\n$11\r\nunsubscribe\r\n$14\r\n+switch-master\r\n:0\r\n"
    );
    assert_eq!(
        c.raw(&["UNSUBSCRIBE"]).await,
        "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
    );
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
    srv.publish("+switch-master", payload);
    assert_eq!(c.raw(&["ECHO", "after"]).await, "$5\r\nafter\r\n");
}

#[tokio::test]
async fn subscriptions_are_capped_per_client() {
    let srv = start().await;
    let mut c = srv.client().await;
    let names: Vec<String> = (0..=super::pubsub::MAX_SUBSCRIPTIONS)
        .map(|i| format!("ch{i}"))
        .collect();
    let mut args = vec!["SUBSCRIBE"];
    args.extend(names.iter().map(String::as_str));
    assert_eq!(
        c.raw(&args).await,
        "-ERR too many subscriptions: at most 1024 channels and patterns per client\r\n"
    );
    // Nothing was subscribed: the connection is not in subscribed mode.
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
}

#[tokio::test]
async fn psubscribe_star_resp3() {
    let srv = start().await;
    let mut c = srv.client().await;
    c.hello3().await;
    assert_eq!(
        c.raw(&["PSUBSCRIBE", "*"]).await,
        ">3\r\n$10\r\npsubscribe\r\n$1\r\n*\r\n:1\r\n"
    );
    srv.publish("+sdown", "master mymaster 127.0.0.1 6379");
    assert_eq!(
        String::from_utf8(c.read_raw().await).unwrap(),
        ">4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$6\r\n+sdown\r\n$30\r\nmaster mymaster 127.0.0.1 6379\r\n"
    );
    // RESP3 subscribers may run any command.
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
    assert_eq!(
        c.raw(&["SENTINEL", "get-master-addr-by-name", "mymaster"])
            .await,
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"
    );
    c.send(&["SUBSCRIBE", "+switch-master"]).await;
    assert_eq!(
        c.read().await,
        V::Push(vec![V::b("subscribe"), V::b("+switch-master"), V::Int(2)])
    );
    srv.publish("+switch-master", "mymaster 1.1.1.1 1 2.2.2.2 2");
    // Both the channel and the pattern match: message, then pmessage.
    assert_eq!(
        c.read().await,
        V::Push(vec![
            V::b("message"),
            V::b("+switch-master"),
            V::b("mymaster 1.1.1.1 1 2.2.2.2 2")
        ])
    );
    assert_eq!(
        c.read().await,
        V::Push(vec![
            V::b("pmessage"),
            V::b("*"),
            V::b("+switch-master"),
            V::b("mymaster 1.1.1.1 1 2.2.2.2 2")
        ])
    );
    c.send(&["PUNSUBSCRIBE"]).await;
    assert_eq!(
        c.read().await,
        V::Push(vec![V::b("punsubscribe"), V::b("*"), V::Int(1)])
    );
}

// ---------------------------------------------------------------------------
// Bad input and limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn truncated_frames_wrong_types_and_huge_lengths() {
    let srv = start().await;

    // Truncated request, then the client goes away: nothing to answer.
    let mut c = srv.client().await;
    c.send_raw(b"*2\r\n$4\r\nPI").await;
    c.s.shutdown().await.unwrap();
    assert!(c.closed().await);
    assert_eq!(c.buf, b"");

    // A truncated request waits for its end, then is answered.
    let mut c = srv.client().await;
    c.send_raw(b"*1\r\n$4\r\nPI").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.send_raw(b"NG\r\n").await;
    assert_eq!(String::from_utf8(c.read_raw().await).unwrap(), "+PONG\r\n");

    let cases: &[(&[u8], &str)] = &[
        (
            b"*1\r\n$999999999999\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$-7\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*999999999999\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n:12\r\n",
            "-ERR Protocol error: expected '$', got ':'\r\n",
        ),
        (
            b"*1\r\n*1\r\n$4\r\nPING\r\n",
            "-ERR Protocol error: expected '$', got '*'\r\n",
        ),
        (
            b"PING \"unterminated\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (input, expected) in cases {
        let mut c = srv.client().await;
        c.send_raw(input).await;
        assert_eq!(
            String::from_utf8(c.read_raw().await).unwrap(),
            *expected,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(
            c.closed().await,
            "closed after {:?}",
            String::from_utf8_lossy(input)
        );
    }

    // Outside an array a `$` line is an inline command (as in Redis).
    let mut c = srv.client().await;
    c.send_raw(b"$999999999999\r\n").await;
    assert_eq!(
        String::from_utf8(c.read_raw().await).unwrap(),
        "-ERR unknown command '$999999999999', with args beginning with: \r\n"
    );
    assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");

    // Inline commands work.
    c.send_raw(b"SENTINEL get-master-addr-by-name mymaster\r\n")
        .await;
    assert_eq!(
        String::from_utf8(c.read_raw().await).unwrap(),
        "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"
    );

    // 100,000 nested arrays: refused without recursing.
    let mut c = srv.client().await;
    c.send_raw(&b"*1\r\n".repeat(100_000)).await;
    assert_eq!(
        String::from_utf8(c.read_raw().await).unwrap(),
        "-ERR Protocol error: expected '$', got '*'\r\n"
    );
    assert!(c.closed().await);

    assert_serving(&srv).await;
}

#[tokio::test]
async fn max_request_bytes_bounds_a_request() {
    let cfg = DiscoverySettings {
        max_request_bytes: 4096,
        ..DiscoverySettings::default()
    };
    let srv = start_with(cfg, sample_view()).await;
    let mut c = srv.client().await;
    let ok = "y".repeat(3000);
    assert_eq!(c.raw(&["ECHO", &ok]).await, format!("$3000\r\n{ok}\r\n"));
    let big = "z".repeat(5000);
    c.send(&["ECHO", &big]).await;
    assert_eq!(
        String::from_utf8(c.read_raw().await).unwrap(),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(c.closed().await);
    assert_serving(&srv).await;
}

#[tokio::test]
async fn ten_thousand_pipelined_pings_answered_in_order() {
    let srv = start().await;
    let c = srv.client().await;
    let (mut rd, mut wr) = c.s.into_split();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in 0..10_000 {
        let arg = i.to_string();
        batch.extend_from_slice(&multibulk(&["PING", &arg]));
        expected.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    // One write: many commands per read on the server side.
    let writer = tokio::spawn(async move {
        wr.write_all(&batch).await.unwrap();
        wr
    });
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(T, rd.read_exact(&mut got))
        .await
        .expect("all replies in time")
        .unwrap();
    assert!(got == expected, "replies out of order");
    let _wr = writer.await.unwrap();
}

#[tokio::test]
async fn a_half_closed_client_still_gets_its_replies() {
    let srv = start().await;
    let mut c = srv.client().await;
    c.send_raw(b"PING\r\nSENTINEL get-master-addr-by-name mymaster\r\n*1\r\n$4\r\nPI")
        .await;
    c.s.shutdown().await.unwrap();
    assert!(c.closed().await);
    assert_eq!(
        String::from_utf8_lossy(&c.buf),
        "+PONG\r\n*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6379\r\n"
    );
}

#[tokio::test]
async fn garbage_bytes_get_an_error_or_a_close() {
    let srv = start().await;
    // A deterministic pseudo-random stream (xorshift).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..20 {
        let mut bytes = Vec::with_capacity(4096);
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push((x >> 24) as u8);
        }
        if round % 2 == 0 {
            bytes[0] = b'*';
        }
        let mut c = srv.client().await;
        let _ = c.s.write_all(&bytes).await;
        let _ = c.s.shutdown().await;
        // Whatever came back is RESP, and the connection ends.
        assert!(c.closed().await, "round {round}");
        let mut rest = c.buf.as_slice();
        while !rest.is_empty() {
            match redis_protocol::resp2::decode::decode(rest) {
                Ok(Some((_, n))) => rest = &rest[n..],
                other => panic!(
                    "round {round}: not RESP: {other:?} {:?}",
                    String::from_utf8_lossy(rest)
                ),
            }
        }
    }
    // An HTTP request is a cross-protocol attack: closed without a reply.
    let mut c = srv.client().await;
    c.send_raw(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(c.closed().await);
    assert_eq!(c.buf, b"");
    assert_serving(&srv).await;
}

#[tokio::test]
async fn a_flood_of_connections_beyond_max_clients() {
    let cfg = DiscoverySettings {
        max_clients: 5,
        ..DiscoverySettings::default()
    };
    let srv = start_with(cfg, sample_view()).await;
    let mut kept = Vec::new();
    for _ in 0..5 {
        let mut c = srv.client().await;
        assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
        kept.push(c);
    }
    let mut refused = Vec::new();
    for _ in 0..50 {
        refused.push(srv.client().await);
    }
    for c in &mut refused {
        assert!(c.closed().await);
        assert_eq!(
            String::from_utf8_lossy(&c.buf),
            "-ERR max number of clients reached\r\n"
        );
    }
    for c in &mut kept {
        assert_eq!(c.raw(&["PING"]).await, "+PONG\r\n");
    }
    let stats = kept[0].cmd(&["INFO", "stats"]).await.text();
    assert!(stats.contains("rejected_connections:50\r\n"), "{stats}");
    // A slot frees when a client leaves.
    kept.pop();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let mut c = srv.client().await;
        c.send(&["PING"]).await;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(T, c.s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        if &buf[..n] == b"+PONG\r\n" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no slot freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_subscriber_that_never_reads_does_not_block_others() {
    let cfg = DiscoverySettings {
        subscriber_buffer_bytes: 64 * 1024,
        ..DiscoverySettings::default()
    };
    let srv = start_with(cfg, sample_view()).await;

    // The stalled subscriber: small receive buffer, never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut stalled = Client {
        s: sock.connect(srv.addr).await.unwrap(),
        buf: Vec::new(),
        resp3: false,
    };
    stalled.send(&["SUBSCRIBE", "+sdown"]).await;

    // A healthy subscriber that reads everything.
    let mut healthy = srv.client().await;
    assert_eq!(
        healthy.raw(&["PSUBSCRIBE", "+*"]).await,
        "*3\r\n$10\r\npsubscribe\r\n$2\r\n+*\r\n:1\r\n"
    );
    tokio::time::sleep(Duration::from_millis(50)).await;

    let payload = "p".repeat(500);
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel::<usize>();
    let reader = tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let m = healthy.read().await;
            assert_eq!(m.items()[0], V::b("pmessage"), "message {n}");
            if m.items()[2] == V::b("+end") {
                return (healthy, n);
            }
            assert_eq!(m.items()[3].text().len(), 500);
            n += 1;
            if n % 100 == 0 {
                let _ = progress_tx.send(n);
            }
        }
    });
    let mut other = srv.client().await;
    // Publish until the stalled subscriber has been cut off (however much
    // the kernel buffers for it), at most 100 MB.
    let mut published = 0;
    let mut cut_off = false;
    for batch in 0..2000 {
        for _ in 0..100 {
            // Never blocks, whatever the subscribers do.
            srv.publish("+sdown", &payload);
        }
        published += 100;
        // Pace on the healthy reader so it never lags the broadcast.
        loop {
            match tokio::time::timeout(T, progress_rx.recv()).await {
                Ok(Some(n)) if n >= published => break,
                Ok(Some(_)) => continue,
                other => panic!("healthy subscriber stuck at batch {batch}: {other:?}"),
            }
        }
        if batch % 20 == 19 {
            // Others are served meanwhile.
            let stats = other.cmd(&["INFO", "stats"]).await.text();
            if stats.contains("client_output_buffer_limit_disconnections:1\r\n") {
                cut_off = true;
                break;
            }
        }
    }
    assert!(cut_off, "the stalled subscriber was never disconnected");
    srv.publish("+end", "");
    let (mut healthy, received) = reader.await.unwrap();
    assert_eq!(
        received, published,
        "the healthy subscriber got every event"
    );
    assert_eq!(
        healthy.raw(&["PING"]).await,
        "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    );
    assert!(stalled.closed().await, "stalled subscriber disconnected");
}

#[tokio::test]
async fn idle_timeout_closes_silent_clients_but_not_subscribers() {
    let cfg = DiscoverySettings {
        idle_timeout: Some(Duration::from_millis(200)),
        ..DiscoverySettings::default()
    };
    let srv = start_with(cfg, sample_view()).await;
    let mut idle = srv.client().await;
    let mut sub = srv.client().await;
    assert_eq!(idle.raw(&["PING"]).await, "+PONG\r\n");
    sub.send(&["SUBSCRIBE", "+switch-master"]).await;
    sub.read().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(idle.closed().await);
    assert_eq!(sub.raw(&["PING"]).await, "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
}
