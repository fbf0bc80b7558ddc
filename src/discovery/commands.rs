//! Command dispatch for one client: lookup and arity (Redis' error texts),
//! authentication, the RESP2 subscribed-mode restriction, then each command:
//! PING, ECHO, AUTH, HELLO, ROLE, INFO, CLIENT, COMMAND, SENTINEL, the four
//! (un)subscribe commands, QUIT and RESET.

use super::clients::Client;
use super::info;
use super::pubsub::{Subscriptions, MAX_SUBSCRIPTIONS};
use super::reply::{Proto, Reply};
use super::sentinel::{self, truncate};
use super::server::Shared;
use super::table::{self, Spec};
use super::view::FailoverRequest;
use crate::core::events::Event;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, oneshot};

/// How long `SENTINEL FAILOVER` waits for the daemon's answer.
pub const FAILOVER_REPLY_TIMEOUT: Duration = Duration::from_secs(5);

pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
const AUTH_NOT_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// When the connection ends because of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    Open,
    /// After the replies so far are written (QUIT, protocol error).
    AfterReply,
    /// At once, without a reply (`POST` / `Host:`: cross-protocol attack).
    Now,
}

/// The state of one client connection.
pub struct Session {
    pub client: Arc<Client>,
    pub proto: Proto,
    pub authenticated: bool,
    pub subs: Subscriptions,
    /// Present while subscribed to anything.
    pub events: Option<broadcast::Receiver<Event>>,
    pub close: Close,
}

impl Session {
    pub fn new(client: Arc<Client>, auth_required: bool) -> Self {
        client.meta().authenticated = !auth_required;
        Session {
            client,
            proto: Proto::Resp2,
            authenticated: !auth_required,
            subs: Subscriptions::default(),
            events: None,
            close: Close::Open,
        }
    }

    fn sync_meta(&self) {
        let mut m = self.client.meta();
        m.resp = self.proto.number();
        m.channels = self.subs.channels();
        m.patterns = self.subs.patterns();
        m.authenticated = self.authenticated;
    }
}

fn lower(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_ascii_lowercase()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Redis' "unknown command" error, with up to 128 bytes of arguments.
fn unknown_command(args: &[Vec<u8>]) -> Reply {
    let name = text(&args[0]);
    let mut rest = String::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let a = text(a);
        rest.push_str(&format!("'{}' ", truncate(&a, room)));
    }
    Reply::err(format!(
        "unknown command '{}', with args beginning with: {rest}",
        truncate(&name, 128)
    ))
}

fn arity_error(full_name: &str) -> Reply {
    Reply::err(format!(
        "wrong number of arguments for '{full_name}' command"
    ))
}

fn unknown_subcommand(sub: &[u8], cmd: &str) -> Reply {
    Reply::err(format!(
        "unknown subcommand '{}'. Try {} HELP.",
        truncate(&text(sub), 128),
        cmd.to_uppercase()
    ))
}

/// Compares secrets in time independent of where they differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// Whether `user` (None: `default`) and `pass` are the port's credentials.
/// Without a configured password the `default` user accepts any password
/// (Redis' `nopass`), and no other user exists.
fn credentials_ok(sh: &Shared, user: Option<&[u8]>, pass: &[u8]) -> bool {
    let user = user.unwrap_or(b"default");
    match &sh.cfg.password {
        None => user == b"default",
        Some(pw) => {
            let user_ok = ct_eq(user, sh.cfg.user().as_bytes());
            let pass_ok = ct_eq(pass, pw.expose().as_bytes());
            user_ok & pass_ok
        }
    }
}

/// Client names and library attributes: printable ASCII, no spaces.
fn valid_attr(v: &[u8]) -> bool {
    v.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// Runs one command. Returns its replies (several for SUBSCRIBE with several
/// channels, none after `POST`).
pub async fn execute(s: &mut Session, sh: &Shared, args: Vec<Vec<u8>>) -> Vec<Reply> {
    sh.stats.commands_processed.fetch_add(1, Ordering::Relaxed);
    let replies = dispatch(s, sh, &args).await;
    let errors = replies.iter().filter(|r| r.is_error()).count();
    sh.stats
        .error_replies
        .fetch_add(errors as u64, Ordering::Relaxed);
    s.sync_meta();
    replies
}

async fn dispatch(s: &mut Session, sh: &Shared, args: &[Vec<u8>]) -> Vec<Reply> {
    let name = lower(&args[0]);
    if name == "post" || name == "host:" {
        tracing::warn!(
            target: "raftinel::discovery",
            client = %s.client.addr,
            "possible cross-protocol attack (HTTP request on the discovery port); connection closed"
        );
        s.close = Close::Now;
        return vec![];
    }
    let Some(spec) = table::lookup(&name) else {
        return vec![unknown_command(args)];
    };
    // The full name Redis uses in errors (`client|kill`), and the arity of
    // the subcommand where it is known.
    let sub = if spec.subcommands.is_empty() {
        None
    } else {
        args.get(1).map(|a| lower(a))
    };
    let sub_spec: Option<&Spec> = sub.as_deref().and_then(|n| spec.subcommand(n));
    if !spec.arity_ok(args.len()) {
        return vec![arity_error(&name)];
    }
    if let Some(ss) = sub_spec {
        if !ss.arity_ok(args.len()) {
            return vec![arity_error(ss.name)];
        }
    }
    {
        let mut m = s.client.meta();
        m.last_cmd = sub_spec.map_or_else(|| name.clone(), |ss| ss.name.to_string());
        m.last_active = Instant::now();
    }
    if !s.authenticated && !spec.no_auth() {
        return vec![Reply::coded(NOAUTH)];
    }
    if s.proto == Proto::Resp2
        && !s.subs.is_empty()
        && !matches!(
            name.as_str(),
            "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" | "ping" | "quit" | "reset"
        )
    {
        let full = sub_spec.map_or(name.as_str(), |ss| ss.name);
        return vec![Reply::err(format!(
            "Can't execute '{full}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
        ))];
    }
    match name.as_str() {
        "ping" => vec![ping(s, args)],
        "echo" => vec![Reply::Bulk(args[1].clone())],
        "auth" => vec![auth(s, sh, args)],
        "hello" => vec![hello(s, sh, args)],
        "role" => vec![sh.with_view(|v, _| {
            Reply::Array(vec![
                Reply::bulk("sentinel"),
                Reply::Array(v.groups.iter().map(|g| Reply::bulk(&g.name)).collect()),
            ])
        })],
        "info" => {
            let text = sh.with_view(|v, fresh| info::info(sh, v, fresh, &args[1..]));
            vec![Reply::Verbatim(text)]
        }
        "client" => vec![client(s, sh, args)],
        "command" => vec![command(args)],
        "sentinel" => vec![sentinel_cmd(sh, args).await],
        "subscribe" | "psubscribe" | "unsubscribe" | "punsubscribe" => {
            let names = &args[1..];
            let adding = matches!(name.as_str(), "subscribe" | "psubscribe");
            if adding && s.subs.would_exceed(names, name == "psubscribe") {
                return vec![Reply::err(format!(
                    "too many subscriptions: at most {MAX_SUBSCRIPTIONS} channels and patterns per client"
                ))];
            }
            let replies = match name.as_str() {
                "subscribe" => s.subs.subscribe(names),
                "psubscribe" => s.subs.psubscribe(names),
                "unsubscribe" => s.subs.unsubscribe(names),
                _ => s.subs.punsubscribe(names),
            };
            if s.subs.is_empty() {
                s.events = None;
            } else if s.events.is_none() {
                s.events = Some(sh.events.subscribe());
            }
            replies
        }
        "quit" => {
            s.close = Close::AfterReply;
            vec![Reply::ok()]
        }
        "reset" => {
            s.subs.clear();
            s.events = None;
            s.proto = Proto::Resp2;
            s.authenticated = !sh.cfg.auth_required();
            s.client.meta().name.clear();
            vec![Reply::Simple("RESET".into())]
        }
        _ => vec![unknown_command(args)],
    }
}

fn ping(s: &Session, args: &[Vec<u8>]) -> Reply {
    if args.len() > 2 {
        return arity_error("ping");
    }
    if s.proto == Proto::Resp2 && !s.subs.is_empty() {
        return Reply::Array(vec![
            Reply::bulk("pong"),
            Reply::Bulk(args.get(1).cloned().unwrap_or_default()),
        ]);
    }
    match args.get(1) {
        Some(a) => Reply::Bulk(a.clone()),
        None => Reply::Simple("PONG".into()),
    }
}

fn auth(s: &mut Session, sh: &Shared, args: &[Vec<u8>]) -> Reply {
    if args.len() > 3 {
        return Reply::err("syntax error");
    }
    let (user, pass) = match args {
        [_, pass] => (None, pass),
        [_, user, pass] => (Some(user.as_slice()), pass),
        _ => return arity_error("auth"),
    };
    if !sh.cfg.auth_required() && user.is_none() {
        return Reply::coded(AUTH_NOT_CONFIGURED);
    }
    if credentials_ok(sh, user, pass) {
        s.authenticated = true;
        Reply::ok()
    } else {
        tracing::debug!(target: "raftinel::discovery", client = %s.client.addr, "AUTH failed");
        Reply::coded(WRONGPASS)
    }
}

fn hello(s: &mut Session, sh: &Shared, args: &[Vec<u8>]) -> Reply {
    let mut proto = None;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        let Ok(v) = text(v).parse::<i64>() else {
            return Reply::err("Protocol version is not an integer or out of range");
        };
        proto = match v {
            2 => Some(Proto::Resp2),
            3 => Some(Proto::Resp3),
            _ => return Reply::coded("NOPROTO unsupported protocol version"),
        };
        i = 2;
    }
    while i < args.len() {
        let opt = lower(&args[i]);
        let more = args.len() - 1 - i;
        if opt == "auth" && more >= 2 {
            if !credentials_ok(sh, Some(&args[i + 1]), &args[i + 2]) {
                return Reply::coded(WRONGPASS);
            }
            s.authenticated = true;
            i += 3;
        } else if opt == "setname" && more >= 1 {
            if !valid_attr(&args[i + 1]) {
                return Reply::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                );
            }
            s.client.meta().name = text(&args[i + 1]);
            i += 2;
        } else {
            return Reply::err(format!(
                "Syntax error in HELLO option '{}'",
                truncate(&text(&args[i]), 128)
            ));
        }
    }
    if !s.authenticated {
        return Reply::coded(HELLO_NOAUTH);
    }
    if let Some(p) = proto {
        s.proto = p;
    }
    Reply::Map(vec![
        (Reply::bulk("server"), Reply::bulk("redis")),
        (Reply::bulk("version"), Reply::bulk(info::REDIS_VERSION)),
        (Reply::bulk("proto"), Reply::Int(s.proto.number())),
        (Reply::bulk("id"), Reply::Int(s.client.id as i64)),
        (Reply::bulk("mode"), Reply::bulk("sentinel")),
        (Reply::bulk("modules"), Reply::Array(vec![])),
    ])
}

const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>,",
    "    TYPE (NORMAL|PUBSUB), USER <username>, SKIPME (YES|NO), MAXAGE <seconds>.",
    "LIST [TYPE (NORMAL|PUBSUB)] [ID <client-id> [<client-id> ...]]",
    "    Return information about client connections.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

fn client(s: &mut Session, sh: &Shared, args: &[Vec<u8>]) -> Reply {
    let sub = lower(&args[1]);
    match sub.as_str() {
        "setname" => {
            if !valid_attr(&args[2]) {
                return Reply::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                );
            }
            s.client.meta().name = text(&args[2]);
            Reply::ok()
        }
        "getname" => {
            let name = s.client.meta().name.clone();
            if name.is_empty() {
                Reply::NullBulk
            } else {
                Reply::bulk(name)
            }
        }
        "id" => Reply::Int(s.client.id as i64),
        "setinfo" => {
            let attr = lower(&args[2]);
            if attr != "lib-name" && attr != "lib-ver" {
                return Reply::err(format!(
                    "Unrecognized option '{}'",
                    truncate(&text(&args[2]), 128)
                ));
            }
            if !valid_attr(&args[3]) {
                return Reply::err(format!(
                    "{attr} cannot contain spaces, newlines or special characters."
                ));
            }
            let mut m = s.client.meta();
            if attr == "lib-name" {
                m.lib_name = text(&args[3]);
            } else {
                m.lib_ver = text(&args[3]);
            }
            Reply::ok()
        }
        "info" => {
            // The reply shows this command as the current one.
            Reply::Verbatim(format!("{}\n", s.client.info_line()))
        }
        "list" => client_list(sh, &args[2..]),
        "kill" => client_kill(s, sh, &args[2..]),
        "help" => Reply::Array(
            CLIENT_HELP
                .iter()
                .map(|l| Reply::Simple((*l).into()))
                .collect(),
        ),
        _ => unknown_subcommand(&args[1], "client"),
    }
}

fn client_type_ok(t: &str) -> bool {
    matches!(t, "normal" | "pubsub" | "master" | "replica" | "slave")
}

fn client_matches_type(c: &Client, t: &str) -> bool {
    match t {
        "pubsub" => c.is_pubsub(),
        "normal" => !c.is_pubsub(),
        _ => false,
    }
}

fn client_list(sh: &Shared, opts: &[Vec<u8>]) -> Reply {
    let mut ty: Option<String> = None;
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 0;
    while i < opts.len() {
        match lower(&opts[i]).as_str() {
            "type" if i + 1 < opts.len() => {
                let t = lower(&opts[i + 1]);
                if !client_type_ok(&t) {
                    return Reply::err(format!("Unknown client type '{}'", text(&opts[i + 1])));
                }
                ty = Some(t);
                i += 2;
            }
            "id" if i + 1 < opts.len() => {
                let mut v = Vec::new();
                for a in &opts[i + 1..] {
                    match text(a).parse::<u64>() {
                        Ok(id) if id > 0 => v.push(id),
                        _ => return Reply::err(format!("Invalid client ID '{}'", text(a))),
                    }
                }
                ids = Some(v);
                i = opts.len();
            }
            _ => return Reply::err("syntax error"),
        }
    }
    let mut out = String::new();
    for c in sh.clients.all() {
        if ty.as_deref().is_some_and(|t| !client_matches_type(&c, t)) {
            continue;
        }
        if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
            continue;
        }
        out.push_str(&c.info_line());
        out.push('\n');
    }
    Reply::Verbatim(out)
}

fn client_kill(s: &mut Session, sh: &Shared, opts: &[Vec<u8>]) -> Reply {
    // Old form: CLIENT KILL ip:port -> +OK or an error.
    if let [addr] = opts {
        let addr = text(addr);
        let Some(c) = sh
            .clients
            .all()
            .into_iter()
            .find(|c| c.addr.to_string() == addr)
        else {
            return Reply::err("No such client");
        };
        kill(s, &c);
        return Reply::ok();
    }
    if opts.len() % 2 != 0 {
        return Reply::err("syntax error");
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut ty = None;
    let mut user = None;
    let mut skipme = true;
    let mut maxage = None;
    for pair in opts.chunks(2) {
        let (k, v) = (lower(&pair[0]), text(&pair[1]));
        match k.as_str() {
            "id" => match v.parse::<u64>() {
                Ok(n) if n > 0 => id = Some(n),
                _ => return Reply::err("client-id should be greater than 0"),
            },
            "addr" => addr = Some(v),
            "laddr" => laddr = Some(v),
            "type" => {
                let t = v.to_ascii_lowercase();
                if !client_type_ok(&t) {
                    return Reply::err(format!("Unknown client type '{v}'"));
                }
                ty = Some(t);
            }
            "user" => user = Some(v),
            "skipme" => match v.to_ascii_lowercase().as_str() {
                "yes" => skipme = true,
                "no" => skipme = false,
                _ => return Reply::err("syntax error"),
            },
            "maxage" => match v.parse::<u64>() {
                Ok(n) => maxage = Some(n),
                Err(_) => return Reply::err("syntax error"),
            },
            _ => return Reply::err("syntax error"),
        }
    }
    let mut killed = 0;
    for c in sh.clients.all() {
        let hit = id.is_none_or(|id| c.id == id)
            && addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
            && laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
            && ty.as_deref().is_none_or(|t| client_matches_type(&c, t))
            && user.as_deref().is_none_or(|u| u == "default")
            && maxage.is_none_or(|m| c.created.elapsed().as_secs() >= m)
            && !(skipme && c.id == s.client.id);
        if hit {
            kill(s, &c);
            killed += 1;
        }
    }
    Reply::Int(killed)
}

fn kill(s: &mut Session, c: &Arc<Client>) {
    if c.id == s.client.id {
        s.close = Close::AfterReply;
    } else {
        c.kill.notify_one();
    }
}

const COMMAND_HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all commands.",
    "COUNT",
    "    Return the total number of commands.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple commands.",
    "INFO [<command-name> ...]",
    "    Return details about multiple commands.",
    "LIST",
    "    Return a list of all commands.",
    "HELP",
    "    Print this help.",
];

fn command(args: &[Vec<u8>]) -> Reply {
    let all = table::COMMANDS;
    let Some(sub) = args.get(1) else {
        return Reply::Array(all.iter().map(Spec::info).collect());
    };
    let names = &args[2..];
    match lower(sub).as_str() {
        "count" => Reply::Int(all.len() as i64),
        "list" => {
            if !names.is_empty() {
                return Reply::err("syntax error");
            }
            Reply::Array(all.iter().map(|c| Reply::bulk(c.name)).collect())
        }
        "info" => {
            if names.is_empty() {
                return Reply::Array(all.iter().map(Spec::info).collect());
            }
            Reply::Array(
                names
                    .iter()
                    .map(|n| table::lookup(&lower(n)).map_or(Reply::NullBulk, Spec::info))
                    .collect(),
            )
        }
        "docs" => {
            let pick: Vec<&Spec> = if names.is_empty() {
                all.iter().collect()
            } else {
                names
                    .iter()
                    .filter_map(|n| table::lookup(&lower(n)))
                    .collect()
            };
            Reply::Map(
                pick.into_iter()
                    .map(|c| (Reply::bulk(c.name), c.docs()))
                    .collect(),
            )
        }
        "getkeys" | "getkeysandflags" => match names.first().and_then(|n| table::lookup(&lower(n)))
        {
            Some(_) => Reply::err("The command has no key arguments"),
            None => Reply::err("Invalid command specified"),
        },
        "help" => Reply::Array(
            COMMAND_HELP
                .iter()
                .map(|l| Reply::Simple((*l).into()))
                .collect(),
        ),
        _ => unknown_subcommand(sub, "command"),
    }
}

async fn sentinel_cmd(sh: &Shared, args: &[Vec<u8>]) -> Reply {
    let sub = lower(&args[1]);
    if sub == "failover" {
        return failover(sh, &text(&args[2])).await;
    }
    sh.with_view(|v, fresh| sentinel::command(v, fresh, &sh.cfg, &sub, args))
}

/// `SENTINEL FAILOVER <name>`: Sentinel's checks, then a request to the
/// daemon, which answers once the Raft leader has (or has not) started it.
async fn failover(sh: &Shared, name: &str) -> Reply {
    if let Err(e) = sh.with_view(|v, _| sentinel::failover_precheck(v, name)) {
        return e;
    }
    let (tx, rx) = oneshot::channel();
    let req = FailoverRequest {
        group: name.to_string(),
        reply: tx,
    };
    let asked = tokio::time::timeout(FAILOVER_REPLY_TIMEOUT, async {
        sh.failover.send(req).await.map_err(|_| ())?;
        rx.await.map_err(|_| ())
    })
    .await;
    match asked {
        Ok(Ok(Ok(()))) => Reply::ok(),
        Ok(Ok(Err(msg))) => failover_error(&msg),
        Ok(Err(())) => Reply::err("the daemon is not accepting failover requests"),
        Err(_) => Reply::err(format!(
            "no answer from the daemon within {} s; the failover may or may not start",
            FAILOVER_REPLY_TIMEOUT.as_secs()
        )),
    }
}

/// The daemon's refusal as an error reply: a message that already starts
/// with an error code (`NOGOODSLAVE ...`, `INPROG ...`) is sent as it is,
/// anything else gets `ERR`.
pub fn failover_error(msg: &str) -> Reply {
    let code = msg.split(' ').next().unwrap_or_default();
    if code.len() >= 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Reply::coded(msg)
    } else {
        Reply::err(msg)
    }
}
