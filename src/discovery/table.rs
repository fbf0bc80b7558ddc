//! The command table: which commands exist, their arity (Redis' convention:
//! `n` exactly n arguments including the name, `-n` at least n), whether they
//! need authentication, and what `COMMAND` / `COMMAND DOCS` report about them.

use super::reply::Reply;

/// One command or subcommand.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub acl: &'static [&'static str],
    pub summary: &'static str,
    pub since: &'static str,
    pub group: &'static str,
    pub subcommands: &'static [Spec],
}

impl Spec {
    /// Whether `argc` arguments (including the name) fit the arity.
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }

    /// Usable before authentication.
    pub fn no_auth(&self) -> bool {
        self.flags.contains(&"no_auth")
    }

    pub fn subcommand(&self, name: &str) -> Option<&Spec> {
        self.subcommands
            .iter()
            .find(|s| s.name.rsplit('|').next() == Some(name))
    }

    /// The `COMMAND` / `COMMAND INFO` entry (Redis 7's ten fields).
    pub fn info(&self) -> Reply {
        let simple =
            |v: &[&str]| Reply::Set(v.iter().map(|s| Reply::Simple((*s).into())).collect());
        Reply::Array(vec![
            Reply::bulk(self.name),
            Reply::Int(self.arity),
            simple(self.flags),
            Reply::Int(0),
            Reply::Int(0),
            Reply::Int(0),
            simple(self.acl),
            Reply::Array(vec![]),
            Reply::Array(vec![]),
            Reply::Array(self.subcommands.iter().map(Spec::info).collect()),
        ])
    }

    /// The `COMMAND DOCS` entry.
    pub fn docs(&self) -> Reply {
        let mut fields = vec![
            (Reply::bulk("summary"), Reply::bulk(self.summary)),
            (Reply::bulk("since"), Reply::bulk(self.since)),
            (Reply::bulk("group"), Reply::bulk(self.group)),
        ];
        if !self.subcommands.is_empty() {
            fields.push((
                Reply::bulk("subcommands"),
                Reply::Map(
                    self.subcommands
                        .iter()
                        .map(|s| (Reply::bulk(s.name), s.docs()))
                        .collect(),
                ),
            ));
        }
        Reply::Map(fields)
    }
}

const CONN: &[&str] = &["@fast", "@connection"];
const NO_AUTH: &[&str] = &[
    "noscript",
    "loading",
    "stale",
    "fast",
    "no_auth",
    "allow_busy",
    "sentinel",
];

macro_rules! sub {
    ($name:expr, $arity:expr, $summary:expr) => {
        Spec {
            name: $name,
            arity: $arity,
            flags: &["sentinel"],
            acl: &["@slow"],
            summary: $summary,
            since: "2.8.4",
            group: "sentinel",
            subcommands: &[],
        }
    };
}

/// Every command this port answers.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "auth",
        arity: -2,
        flags: NO_AUTH,
        acl: CONN,
        summary: "Authenticates the connection.",
        since: "1.0.0",
        group: "connection",
        subcommands: &[],
    },
    Spec {
        name: "client",
        arity: -2,
        flags: &["sentinel"],
        acl: &["@slow"],
        summary: "A container for client connection commands.",
        since: "2.4.0",
        group: "connection",
        subcommands: &[
            sub!("client|getname", 2, "Returns the name of the connection."),
            sub!(
                "client|help",
                2,
                "Returns helpful text about the different subcommands."
            ),
            sub!(
                "client|id",
                2,
                "Returns the unique client ID of the connection."
            ),
            sub!(
                "client|info",
                2,
                "Returns information about the connection."
            ),
            sub!("client|kill", -3, "Terminates open connections."),
            sub!("client|list", -2, "Lists open connections."),
            sub!(
                "client|setinfo",
                4,
                "Sets information specific to the client or connection."
            ),
            sub!("client|setname", 3, "Sets the connection name."),
        ],
    },
    Spec {
        name: "command",
        arity: -1,
        flags: &["loading", "stale", "sentinel"],
        acl: &["@slow", "@connection"],
        summary: "Returns detailed information about all commands.",
        since: "2.8.13",
        group: "server",
        subcommands: &[
            sub!("command|count", 2, "Returns a count of commands."),
            sub!(
                "command|docs",
                -2,
                "Returns documentary information about one, multiple or all commands."
            ),
            sub!(
                "command|getkeys",
                -3,
                "Extracts the key names from an arbitrary command."
            ),
            sub!(
                "command|help",
                2,
                "Returns helpful text about the different subcommands."
            ),
            sub!(
                "command|info",
                -2,
                "Returns information about one, multiple or all commands."
            ),
            sub!("command|list", -2, "Returns a list of command names."),
        ],
    },
    Spec {
        name: "echo",
        arity: 2,
        flags: &["fast"],
        acl: CONN,
        summary: "Returns the given string.",
        since: "1.0.0",
        group: "connection",
        subcommands: &[],
    },
    Spec {
        name: "hello",
        arity: -1,
        flags: NO_AUTH,
        acl: CONN,
        summary: "Handshakes with the Redis server.",
        since: "6.0.0",
        group: "connection",
        subcommands: &[],
    },
    Spec {
        name: "info",
        arity: -1,
        flags: &["loading", "stale", "sentinel"],
        acl: &["@slow", "@dangerous"],
        summary: "Returns information and statistics about the server.",
        since: "1.0.0",
        group: "server",
        subcommands: &[],
    },
    Spec {
        name: "ping",
        arity: -1,
        // Allowed before AUTH on this port (issue 3), unlike in Redis.
        flags: &["fast", "sentinel", "no_auth"],
        acl: CONN,
        summary: "Returns the server's liveliness response.",
        since: "1.0.0",
        group: "connection",
        subcommands: &[],
    },
    Spec {
        name: "psubscribe",
        arity: -2,
        flags: &["pubsub", "noscript", "loading", "stale", "sentinel"],
        acl: &["@pubsub", "@slow"],
        summary: "Listens for messages published to channels that match one or more patterns.",
        since: "2.0.0",
        group: "pubsub",
        subcommands: &[],
    },
    Spec {
        name: "punsubscribe",
        arity: -1,
        flags: &["pubsub", "noscript", "loading", "stale", "sentinel"],
        acl: &["@pubsub", "@slow"],
        summary:
            "Stops listening to messages published to channels that match one or more patterns.",
        since: "2.0.0",
        group: "pubsub",
        subcommands: &[],
    },
    Spec {
        name: "quit",
        arity: -1,
        flags: &[
            "allow_busy",
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
        ],
        acl: CONN,
        summary: "Closes the connection.",
        since: "1.0.0",
        group: "connection",
        subcommands: &[],
    },
    Spec {
        name: "reset",
        arity: 1,
        flags: &[
            "noscript",
            "loading",
            "stale",
            "fast",
            "no_auth",
            "allow_busy",
        ],
        acl: CONN,
        summary: "Resets the connection.",
        since: "6.2.0",
        group: "connection",
        subcommands: &[],
    },
    Spec {
        name: "role",
        arity: 1,
        flags: &["noscript", "loading", "stale", "fast", "sentinel"],
        acl: &["@admin", "@fast", "@dangerous"],
        summary: "Returns the replication role.",
        since: "2.8.12",
        group: "server",
        subcommands: &[],
    },
    Spec {
        name: "sentinel",
        arity: -2,
        flags: &["admin", "sentinel", "only_sentinel"],
        acl: &["@admin", "@slow", "@dangerous"],
        summary: "A container for Redis Sentinel commands.",
        since: "2.8.4",
        group: "sentinel",
        subcommands: &[
            sub!(
                "sentinel|ckquorum",
                3,
                "Checks for a Redis Sentinel quorum."
            ),
            sub!("sentinel|failover", 3, "Forces a Redis Sentinel failover."),
            sub!(
                "sentinel|get-master-addr-by-name",
                3,
                "Returns the port and address of a master Redis instance."
            ),
            sub!(
                "sentinel|help",
                2,
                "Returns helpful text about the different subcommands."
            ),
            sub!(
                "sentinel|is-master-down-by-addr",
                6,
                "Determines whether a master Redis instance is down."
            ),
            sub!(
                "sentinel|master",
                3,
                "Returns the state of a master Redis instance."
            ),
            sub!(
                "sentinel|masters",
                2,
                "Returns a list of monitored Redis masters."
            ),
            sub!(
                "sentinel|myid",
                2,
                "Returns the Redis Sentinel instance ID."
            ),
            sub!(
                "sentinel|replicas",
                3,
                "Returns a list of the monitored Redis replicas."
            ),
            sub!(
                "sentinel|sentinels",
                3,
                "Returns a list of Sentinel instances."
            ),
            sub!(
                "sentinel|slaves",
                3,
                "Returns a list of the monitored replicas."
            ),
        ],
    },
    Spec {
        name: "subscribe",
        arity: -2,
        flags: &["pubsub", "noscript", "loading", "stale", "sentinel"],
        acl: &["@pubsub", "@slow"],
        summary: "Listens for messages published to channels.",
        since: "2.0.0",
        group: "pubsub",
        subcommands: &[],
    },
    Spec {
        name: "unsubscribe",
        arity: -1,
        flags: &["pubsub", "noscript", "loading", "stale", "sentinel"],
        acl: &["@pubsub", "@slow"],
        summary: "Stops listening to messages posted to channels.",
        since: "2.0.0",
        group: "pubsub",
        subcommands: &[],
    },
];

/// The command named `name` (lower case).
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|c| c.name == name)
}
