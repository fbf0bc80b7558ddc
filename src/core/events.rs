//! Events in Redis Sentinel's vocabulary (`+sdown`, `+switch-master`, ...).
//!
//! The name and payload are exactly what Sentinel publishes on its pub/sub
//! channels, so the discovery port can forward them unchanged.

use super::types::Addr;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Channel name, e.g. `+switch-master`.
    pub name: String,
    /// Message, e.g. `mymaster 10.0.0.1 6379 10.0.0.2 6379`.
    pub payload: String,
}

impl Event {
    pub fn new(name: &str, payload: String) -> Event {
        Event {
            name: name.to_string(),
            payload,
        }
    }

    /// `master <name> <ip> <port>`
    pub fn master_payload(group: &str, master: &Addr) -> String {
        format!("master {group} {} {}", master.host, master.port)
    }

    pub fn master(name: &str, group: &str, master: &Addr) -> Event {
        Event::new(name, Event::master_payload(group, master))
    }

    /// `slave <ip>:<port> <ip> <port> @ <name> <master-ip> <master-port>`
    pub fn replica(name: &str, group: &str, replica: &Addr, master: &Addr) -> Event {
        Event::new(
            name,
            format!(
                "slave {replica} {} {} @ {group} {} {}",
                replica.host, replica.port, master.host, master.port
            ),
        )
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.payload)
    }
}
