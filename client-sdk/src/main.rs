//! `patrolsync-device`: a patrol device on the command line, built on the SDK. Useful for trying
//! a server out, for scripted field tests, and as a reference for app developers.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use patrolsync_sdk::proto::{CheckInKind, CheckInMethod, CheckInOutcome, GeoFix};
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn};

/// A patrol device on the command line.
#[derive(Debug, Parser)]
#[command(name = "patrolsync-device", version, about)]
struct Cli {
    /// Directory holding this device's key, certificate and outbox.
    #[arg(long, env = patrolsync_sdk::ENV_STATE_DIR, default_value = "patrolsync-device", global = true)]
    state_dir: PathBuf,
    /// Dial this HOST:PORT instead of the address stored at enrollment.
    #[arg(long, global = true)]
    server: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this device with a one-time code from `patrolsync admin enroll`.
    Enroll {
        /// The enrollment string (patrolsync://HOST:PORT/enroll?code=…&ca=…).
        #[arg(long)]
        code: String,
        /// A name for this device, shown to admins.
        #[arg(long, default_value = "patrolsync-device")]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Record a check-in (works offline; `sync` sends it).
    Checkin {
        /// Checkpoint code, e.g. S1-C1-K1-B1-P1.
        #[arg(long)]
        checkpoint: String,
        /// Latitude of the position fix.
        #[arg(long, requires = "lon", allow_hyphen_values = true)]
        lat: Option<f64>,
        /// Longitude of the position fix.
        #[arg(long, requires = "lat", allow_hyphen_values = true)]
        lon: Option<f64>,
        /// Accuracy of the fix, metres.
        #[arg(long, default_value_t = 10.0)]
        accuracy: f64,
        /// inspected, locked, not_found, moved, closed, renovation or vacant.
        #[arg(long, default_value = "inspected")]
        outcome: CheckInOutcome,
        /// nfc, qr, gps or manual.
        #[arg(long, default_value = "manual")]
        method: CheckInMethod,
        /// patrol, inspection or visit.
        #[arg(long, default_value = "patrol")]
        kind: CheckInKind,
        /// Free text.
        #[arg(long, default_value = "")]
        note: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send everything pending to the server.
    Sync {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pending ops, last sync, errors (local; never waits on the network).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ops the server refused, with the reasons.
    Rejected {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn ago(ms: Option<i64>) -> String {
    match ms {
        None => "never".into(),
        Some(t) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(t);
            format!(
                "{} ago",
                humantime::format_duration(std::time::Duration::from_secs(
                    ((now - t).max(0) / 1000) as u64
                ))
            )
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = ClientConfig {
        app_version: format!("patrolsync-device {}", env!("CARGO_PKG_VERSION")),
        server_override: cli.server.clone(),
        ..ClientConfig::default()
    };
    let client = Client::open(&cli.state_dir, config)
        .await
        .with_context(|| format!("opening device state in {}", cli.state_dir.display()))?;
    match cli.command {
        Command::Enroll { code, name, json } => {
            let e = client.enroll(&code, cli.server.as_deref(), &name).await?;
            if json {
                print_json(&e)?;
            } else {
                println!(
                    "enrolled as device {} for {} ({}), cells {}; server {}",
                    e.device_id,
                    e.user,
                    e.role,
                    e.grid_cells.join(","),
                    e.server
                );
            }
        }
        Command::Checkin {
            checkpoint,
            lat,
            lon,
            accuracy,
            outcome,
            method,
            kind,
            note,
            json,
        } => {
            let mut c = NewCheckIn::new(checkpoint.clone(), outcome);
            c.method = method;
            c.kind = kind;
            c.note = note;
            if let (Some(latitude), Some(longitude)) = (lat, lon) {
                c.fix = Some(GeoFix {
                    latitude,
                    longitude,
                    accuracy_m: accuracy,
                    fix_time_ms: 0,
                    mock: false,
                });
            }
            let id = client.record_checkin(c).await?;
            let pending = client.status().await?.pending_ops;
            if json {
                print_json(
                    &serde_json::json!({ "id": id.to_string(), "checkpoint": checkpoint, "pending_ops": pending }),
                )?;
            } else {
                println!("recorded check-in {id} at {checkpoint}; {pending} op(s) waiting to sync");
            }
        }
        Command::Sync { json } => {
            let s = client.sync().await?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "synced in {} ms: {} sent, {} applied, {} already on the server, {} rejected, {} pending",
                    s.elapsed_ms, s.pushed, s.applied, s.duplicates, s.rejected, s.remaining
                );
                if s.rejected > 0 {
                    println!(
                        "see why with: patrolsync-device --state-dir {} rejected",
                        cli.state_dir.display()
                    );
                }
            }
        }
        Command::Status { json } => {
            let s = client.status().await?;
            if json {
                print_json(&s)?;
            } else {
                match &s.device_id {
                    Some(id) => println!(
                        "device     {id} ({}) → {}",
                        s.user.as_deref().unwrap_or(""),
                        s.server.as_deref().unwrap_or("")
                    ),
                    None => println!("device     not enrolled"),
                }
                let oldest = s
                    .oldest_pending_age_ms
                    .map(|a| {
                        format!(
                            ", oldest {} old",
                            humantime::format_duration(std::time::Duration::from_secs(a / 1000))
                        )
                    })
                    .unwrap_or_default();
                println!("pending    {} op(s){oldest}", s.pending_ops);
                println!("rejected   {}", s.rejected_ops);
                println!("last sync  {}", ago(s.last_sync_at_ms));
                if let Some(e) = &s.last_error {
                    println!("last error {e} ({})", ago(s.last_attempt_at_ms));
                }
            }
        }
        Command::Rejected { json } => {
            let r = client.rejected().await?;
            if json {
                print_json(&r)?;
            } else if r.is_empty() {
                println!("no rejected ops");
            } else {
                for op in r {
                    println!(
                        "seq {} {} {}: {} ({} {})",
                        op.device_seq, op.kind, op.record_id, op.message, op.code, op.field
                    );
                }
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PATROLSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
