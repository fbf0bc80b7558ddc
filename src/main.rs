//! `raftinel`: parse the command line, run one subcommand. The only place that
//! uses `anyhow`; errors are printed with their whole chain (`{:#}`).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use raftinel::config::Config;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "raftinel",
    version,
    about = "Redis failover orchestrator agreed through Raft"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the daemon (one per node, next to that node's redis-server).
    Daemon {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show the cluster: Raft leader and term, per group the epoch, master,
    /// replicas with link state and lag, and which daemons see what as down.
    Status {
        #[arg(long, short)]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Per-daemon timeout in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Validate a config file and print what it means (secrets masked).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("raftinel: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Daemon { config } => {
            let cfg = Config::load(&config)?;
            init_tracing(&cfg.log_level);
            runtime()?.block_on(raftinel::daemon::run(cfg))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status {
            config,
            json,
            timeout_ms,
        } => {
            let cfg = Config::load(&config)?;
            let answers = runtime()?.block_on(raftinel::control::status_all(
                &cfg,
                Duration::from_millis(timeout_ms),
            ));
            if json {
                println!("{}", serde_json::to_string_pretty(&answers)?);
            } else {
                print!("{}", raftinel::control::render(&answers));
            }
            let any = answers.iter().any(|a| a.status.is_some());
            Ok(if any {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::CheckConfig { config } => {
            let cfg = Config::load(&config)?;
            println!("{}: OK", config.display());
            print!("{}", cfg.redacted_summary());
            Ok(ExitCode::SUCCESS)
        }
    }
}
