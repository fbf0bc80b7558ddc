//! Integration tests, one binary (`cargo test --test it`). `harness` starts
//! real redis-server processes; the other modules test one area each.

mod chaos;
mod check;
mod cli;
mod cluster;
mod config_reference;
mod discovery;
mod e2e;
mod fencing;
mod harness;
mod http;
mod metrics;
mod notify;
mod notify_e2e;
mod provision;
mod redis_shell;
mod sim;
mod switchover;
mod testbed;
