//! Integration tests, one binary (`cargo test --test it`). `harness` starts
//! real redis-server processes; the other modules test one area each.

mod cli;
mod cluster;
mod e2e;
mod harness;
mod redis_shell;
mod sim;
mod switchover;
mod testbed;
