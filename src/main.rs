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
    /// Connect to every Redis instance of every group and report risky
    /// settings. Exit status: 0 nothing above info, 1 warnings, 2 errors
    /// (see docs/check.md).
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Send a test message through each `[[notify]]` channel (or the one
    /// named) and report success or the exact error. Exit status 1 if any
    /// failed.
    NotifyTest {
        #[arg(long, short)]
        config: PathBuf,
        /// Only this channel (its `name`).
        #[arg(long)]
        channel: Option<String>,
    },
    /// Move the master on purpose. Default: a planned switchover that loses no
    /// acknowledged write (pause writes, wait for catch-up, promote, demote,
    /// repoint, unpause; on any failure unpause and keep the old master).
    Failover {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        group: String,
        /// Promote this replica (host:port); default: the best replica.
        #[arg(long)]
        to: Option<raftinel::core::types::Addr>,
        /// Give up (and unpause) if the switchover steps take longer (ms).
        #[arg(long, default_value_t = 5000)]
        timeout: u64,
        /// Promote without pausing writes or waiting for catch-up (for a
        /// master that is up but unusable). Unreplicated writes are lost.
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation of --force.
        #[arg(long)]
        yes: bool,
    },
    /// Run before the local redis-server starts: make its config replicate
    /// from the committed master unless it is the committed master itself.
    Guard {
        #[arg(long, short)]
        config: PathBuf,
        /// The local Redis config file to adjust.
        #[arg(long)]
        redis_conf: PathBuf,
    },
    /// Maintenance mode: no automatic failover while on (still monitored).
    Maintenance {
        #[arg(value_enum)]
        state: OnOff,
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, short)]
        group: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
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

/// Ask on the terminal before a forced failover.
fn confirm_force(group: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        anyhow::bail!("--force needs --yes when standard input is not a terminal");
    }
    eprint!(
        "Forced failover of {group}: the replica is promoted without waiting for it to catch up; \
         writes it has not received are lost. Type 'yes' to go on: "
    );
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim() == "yes")
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
            let text = if json {
                serde_json::to_string_pretty(&answers)? + "\n"
            } else {
                raftinel::control::render(&answers)
            };
            // `raftinel status | head` closes the pipe early: not an error.
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
            let any = answers.iter().any(|a| a.status.is_some());
            Ok(if any {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Cmd::Failover {
            config,
            group,
            to,
            timeout,
            force,
            yes,
        } => {
            let cfg = Config::load(&config)?;
            if force && !yes && !confirm_force(&group)? {
                anyhow::bail!("forced failover not confirmed; nothing was changed");
            }
            let opts = raftinel::core::FailoverOptions {
                to,
                timeout_ms: timeout,
                force,
            };
            let mut stdout = std::io::stdout();
            let outcome =
                runtime()?.block_on(raftinel::cli::failover(&cfg, &group, opts, &mut stdout));
            match outcome {
                raftinel::cli::Outcome::Done { .. } => Ok(ExitCode::SUCCESS),
                raftinel::cli::Outcome::Failed(msg) => {
                    eprintln!("raftinel: failover of {group}: {msg}");
                    Ok(ExitCode::from(1))
                }
            }
        }
        Cmd::Maintenance {
            state,
            config,
            group,
        } => {
            let cfg = Config::load(&config)?;
            let on = matches!(state, OnOff::On);
            runtime()?
                .block_on(raftinel::cli::maintenance(&cfg, &group, on))
                .map_err(|e| anyhow::anyhow!("maintenance {group}: {e}"))?;
            println!("maintenance {} for {group}", if on { "on" } else { "off" });
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Guard { config, redis_conf } => {
            let cfg = Config::load(&config)?;
            init_tracing(&cfg.log_level);
            let local = cfg.local_redis.clone().ok_or_else(|| {
                anyhow::anyhow!(
                    "{}: guard needs `local_redis` (the Redis instance on this host)",
                    config.display()
                )
            })?;
            let decision = runtime()?
                .block_on(raftinel::guard::decide(&cfg, &local))
                .map_err(|e| anyhow::anyhow!(e))?;
            let Some(d) = decision else {
                println!("guard: no committed topology known for {local} (new cluster?); {} left unchanged", redis_conf.display());
                return Ok(ExitCode::SUCCESS);
            };
            let changed = raftinel::guard::apply_to_redis_conf(&redis_conf, &cfg.data_dir, &d)
                .map_err(|e| anyhow::anyhow!(e))?;
            let saved = if d.starts_as_master() {
                format!(
                    " (pre-fence min-replicas-to-write kept in {})",
                    raftinel::guard::fence_file(&cfg.data_dir).display()
                )
            } else {
                String::new()
            };
            println!(
                "guard: {}; {} {}{saved}",
                d.describe(&local),
                redis_conf.display(),
                if changed { "updated" } else { "already right" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { config, json } => {
            let cfg = Config::load(&config)?;
            let report = runtime()?.block_on(raftinel::check::check(&cfg));
            let text = if json {
                serde_json::to_string_pretty(&report)? + "\n"
            } else {
                report.render()
            };
            let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
            Ok(ExitCode::from(report.exit_code))
        }
        Cmd::NotifyTest { config, channel } => {
            let cfg = Config::load(&config)?;
            let channels =
                raftinel::check::select_channels(&cfg.notify, channel.as_deref(), &config)
                    .map_err(|e| anyhow::anyhow!(e))?;
            let outcomes = runtime()?.block_on(raftinel::check::notify_test(&channels));
            for o in &outcomes {
                println!("{}", o.line());
            }
            let failed = outcomes.iter().any(|o| o.error.is_some());
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
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
