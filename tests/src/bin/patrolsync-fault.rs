//! Processes for the crash tests to SIGKILL at a chosen moment (not shipped; test-only).
//!
//! `server` runs the server library as `patrolsync serve` does, with one of the store's fault
//! points armed to stall: it prints `stalled at POINT` when a caller is held there, mid
//! transaction, so the test kills it exactly then. Without `--stall` it is a plain server, for
//! the restart on the same data.
//!
//! `device` is a patrol app: it records check-ins (printing `recorded ID` after each returns,
//! i.e. once the record is durable) and then, with `--sync`, syncs.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use patrolsync_proto::CheckInOutcome;
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn};
use patrolsync_server::faults::{FaultAction, FaultPoints, points};
use patrolsync_server::testkit::loopback_config;

#[derive(Debug, Parser)]
#[command(
    name = "patrolsync-fault",
    about = "Processes for the crash tests to kill"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve on `--listen`, stalling at `--stall` (after `--skip` passes) if given.
    Server {
        /// Data directory (keys; SQLite unless --database-url).
        #[arg(long)]
        data_dir: PathBuf,
        /// PostgreSQL URL.
        #[arg(long)]
        database_url: Option<String>,
        /// UDP address for QUIC.
        #[arg(long)]
        listen: SocketAddr,
        /// The fault point to stall at.
        #[arg(long, value_parser = points::ALL)]
        stall: Option<String>,
        /// Passes through the point before the one that stalls.
        #[arg(long, default_value_t = 0)]
        skip: u32,
    },
    /// Record check-ins in an enrolled device's state dir, then optionally sync.
    Device {
        /// The device's state dir (enrolled already).
        #[arg(long)]
        state_dir: PathBuf,
        /// Check-ins to record.
        #[arg(long, default_value_t = 0)]
        record: u32,
        /// Checkpoint code prefix; `-K{1..4}-B{1..5}-P1` is appended.
        #[arg(long, default_value = "S1-C1")]
        cell: String,
        /// Sync after recording.
        #[arg(long)]
        sync: bool,
        /// Ops per push.
        #[arg(long, default_value_t = 50)]
        batch_size: usize,
        /// Print this process's resident memory after opening the store and at its peak
        /// (Linux: VmRSS and VmHWM from /proc/self/status).
        #[arg(long)]
        report_rss: bool,
    },
}

fn say(line: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    patrolsync_tests::init_tracing();
    match Cli::parse().command {
        Command::Server {
            data_dir,
            database_url,
            listen,
            stall,
            skip,
        } => {
            let mut config = loopback_config(&data_dir, database_url);
            config.listen = listen;
            let faults = Arc::new(FaultPoints::default());
            let point = stall.and_then(|s| points::ALL.into_iter().find(|p| *p == s));
            if let Some(point) = point {
                faults.arm(point, skip, FaultAction::Stall);
            }
            let store = patrolsync_server::open_sql_store(&config)
                .await?
                .with_faults(faults.clone());
            let server = patrolsync_server::Server::bind_with_store(config, Arc::new(store))
                .await
                .context("bind")?;
            say(&format!("listening on udp {}", server.local_addr()))?;
            if let Some(point) = point {
                faults.stalled_at(point).await;
                say(&format!("stalled at {point}"))?;
            }
            // Until killed.
            std::future::pending::<()>().await;
            Ok(())
        }
        Command::Device {
            state_dir,
            record,
            cell,
            sync,
            batch_size,
            report_rss,
        } => {
            let config = ClientConfig {
                batch_size,
                max_attempts: 1,
                connect_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(60),
                ..ClientConfig::default()
            };
            let device = Client::open(&state_dir, config).await?;
            let opened_kib = rss_kib("VmRSS")?;
            for i in 0..record {
                let c = NewCheckIn::new(
                    format!("{cell}-K{}-B{}-P1", i % 4 + 1, i % 5 + 1),
                    CheckInOutcome::Inspected,
                );
                let id = device.record_checkin(c).await?;
                say(&format!("recorded {id}"))?;
            }
            if sync {
                say("syncing")?;
                let summary = device.sync().await?;
                say(&format!("synced {}", serde_json::to_string(&summary)?))?;
            }
            if report_rss {
                say(&format!(
                    "rss opened_kib={opened_kib} peak_kib={}",
                    rss_kib("VmHWM")?
                ))?;
            }
            Ok(())
        }
    }
}

/// A `kB` line of /proc/self/status.
fn rss_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/self/status"))
}
