//! `patrolsync-device`: a patrol device on the command line, built on the SDK. Useful for trying
//! a server out, for scripted field tests, and as a reference for app developers.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use patrolsync_sdk::proto::hazard::{
    Agency, EventKind, Field, FieldValue, Handling, HazardCategory, Severity,
};
use patrolsync_sdk::proto::{CheckInKind, CheckInMethod, CheckInOutcome, GeoFix, HazardId};
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn, NewHazard, SyncEvent, Transition};

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
    /// The language the server words its refusals in: `zh-CN` or `en`. Default: from LC_ALL,
    /// LC_MESSAGES or LANG, and `zh-CN` when they name no language.
    #[arg(long, global = true, value_name = "LANG")]
    lang: Option<String>,
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
        /// Datum of --lat/--lon: wgs84 (GPS), gcj02 (Amap, Tencent, Android network location
        /// in China) or bd09 (Baidu). Converted to WGS-84 before it is stored or sent.
        #[arg(long, default_value = "wgs84")]
        datum: patrolsync_proto::geo::Datum,
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
        /// A photo file to attach (copied into the device store; repeat for several).
        #[arg(long = "photo")]
        photos: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Photos waiting to upload, uploaded, or refused, with progress.
    Photos {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a photo referenced by a record in your cells.
    #[command(subcommand)]
    Photo(PhotoCmd),
    /// Send everything pending to the server, then receive what changed in your cells.
    Sync {
        /// Keep running: sync whenever the server says there is news (Notify) or something is
        /// recorded, and print each event, until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hazards: report, move through the closed loop, edit, list, show (work offline).
    #[command(subcommand)]
    Hazard(HazardCmd),
    /// Checkpoints of your cells, as last received.
    Checkpoints {
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

#[derive(Debug, Subcommand)]
enum PhotoCmd {
    /// Download a photo by its SHA-256 (resumes a partial download, verifies the hash).
    Get {
        /// SHA-256, hex.
        #[arg(value_parser = parse_sha256)]
        sha256: [u8; 32],
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum HazardCmd {
    /// Report a hazard.
    Report {
        /// Grid cell it is in, e.g. S1-C1-K2.
        #[arg(long)]
        cell: String,
        /// Checkpoint code, if at one.
        #[arg(long)]
        checkpoint: Option<String>,
        /// blocked_fire_lane, damaged_facility, blocked_evacuation, electrical, gas, open_flame,
        /// flammable_storage, rental_housing, renovation or other.
        #[arg(long)]
        category: HazardCategory,
        /// general or major.
        #[arg(long, default_value = "general")]
        severity: Severity,
        /// on_the_spot or by_deadline.
        #[arg(long, default_value = "on_the_spot")]
        handling: Handling,
        /// Deadline: a duration from now (7d, 48h) or a date (2026-12-31).
        #[arg(long, value_parser = parse_deadline)]
        deadline: Option<i64>,
        /// What you saw.
        #[arg(long, default_value = "")]
        description: String,
        /// SHA-256 (hex) of a photo already added; repeat for several.
        #[arg(long = "photo-sha256", value_parser = parse_sha256)]
        photos: Vec<[u8; 32]>,
        /// A photo file to attach (copied into the device store; repeat for several).
        #[arg(long = "photo")]
        photo_files: Vec<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Move a hazard through the closed loop: notify, fix_on_spot, submit_fix, verify_pass,
    /// verify_fail, transfer, agency_accept, agency_return, agency_fix, reopen, merge.
    Transition {
        /// Hazard id.
        id: HazardId,
        /// The transition.
        kind: EventKind,
        /// Note, or the reason (agency_return, reopen).
        #[arg(long, default_value = "")]
        note: String,
        /// New deadline (notify): a duration from now or a date.
        #[arg(long, value_parser = parse_deadline)]
        deadline: Option<i64>,
        /// police_station or fire_brigade (transfer).
        #[arg(long)]
        agency: Option<Agency>,
        /// The hazard this one duplicates (merge).
        #[arg(long)]
        merge_into: Option<HazardId>,
        /// SHA-256 (hex) of an after photo; repeat for several.
        #[arg(long = "photo-sha256", value_parser = parse_sha256)]
        photos: Vec<[u8; 32]>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Edit a field: description, severity, category, deadline or handling.
    Edit {
        /// Hazard id.
        id: HazardId,
        /// Which field.
        field: Field,
        /// The new value.
        value: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Hazards in your cells with their current status.
    List {
        /// Only open ones.
        #[arg(long)]
        open: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One hazard with its full history, conflicts included.
    Show {
        /// Hazard id.
        id: HazardId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn parse_deadline(s: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now();
    let at = match humantime::parse_duration(s) {
        Ok(d) => now + d,
        Err(_) => humantime::parse_rfc3339_weak(s)
            .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s} 00:00:00")))
            .map_err(|_| {
                format!("{s:?} is neither a duration (7d, 48h) nor a date (2026-12-31)")
            })?,
    };
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    s.parse::<patrolsync_proto::Sha256>()
        .map(|d| d.0)
        .map_err(|e| e.to_string())
}

fn time_text(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}

fn hazard_json(v: &patrolsync_sdk::HazardView) -> serde_json::Value {
    let s = &v.state;
    serde_json::json!({
        "id": s.id.to_string(),
        "grid_cell": s.report.as_ref().map(|(r, _)| r.grid_cell.clone()),
        "status": s.status.as_str(),
        "category": s.category.value.as_str(),
        "severity": s.severity.value.as_str(),
        "handling": s.handling.value.as_str(),
        "description": s.description.value,
        "deadline": s.deadline_ms.value.map(time_text),
        "agency": s.agency.map(|a| a.as_str()),
        "duplicate_of": s.duplicate_of.map(|d| d.to_string()),
        "photos": s.photos.iter().map(hex::encode).collect::<Vec<_>>(),
        "conflicts": s.conflicts().count(),
        "unsynced_changes": v.has_local_changes,
        "escalations": v.escalations.iter().map(|e| serde_json::json!({
            "level": e.level, "to_cell": e.to_cell, "deadline": time_text(e.deadline_ms),
            "at": time_text(e.escalated_at_ms),
        })).collect::<Vec<_>>(),
        "history": s.history.iter().map(|h| serde_json::json!({
            "event": h.event.to_string(), "kind": h.kind.as_str(), "role": h.role.as_str(),
            "device": h.stamp.device.to_string(), "at": time_text(h.stamp.hlc.wall_ms as i64),
            "from": h.from.as_str(), "to": h.to.as_str(), "conflict": h.conflict,
        })).collect::<Vec<_>>(),
    })
}

async fn hazard_cmd(client: &Client, cmd: HazardCmd) -> anyhow::Result<()> {
    match cmd {
        HazardCmd::Report {
            cell,
            checkpoint,
            category,
            severity,
            handling,
            deadline,
            description,
            mut photos,
            photo_files,
            json,
        } => {
            for f in photo_files {
                photos.push(client.add_photo(&f).await?);
            }
            let id = client
                .report_hazard(NewHazard {
                    grid_cell: cell.clone(),
                    checkpoint,
                    position: None,
                    category,
                    severity,
                    handling,
                    deadline_ms: deadline,
                    description,
                    photos,
                })
                .await?;
            if json {
                print_json(&serde_json::json!({ "id": id.to_string(), "grid_cell": cell }))?;
            } else {
                println!("reported hazard {id} in {cell}; sync to send it");
            }
        }
        HazardCmd::Transition {
            id,
            kind,
            note,
            deadline,
            agency,
            merge_into,
            photos,
            json,
        } => {
            let event = client
                .transition_hazard(
                    id,
                    kind,
                    Transition {
                        deadline_ms: deadline,
                        agency,
                        merge_into,
                        note,
                        photos,
                    },
                )
                .await?;
            let view = client.hazard(id).await?;
            if json {
                print_json(
                    &serde_json::json!({ "event": event.to_string(), "hazard": view.as_ref().map(hazard_json) }),
                )?;
            } else {
                let status = view
                    .map(|v| v.state.status.as_str())
                    .unwrap_or("unknown here yet");
                println!("recorded {kind} on {id} (now {status} on this device); sync to send it");
            }
        }
        HazardCmd::Edit {
            id,
            field,
            value,
            json,
        } => {
            let value = match field {
                Field::Description => FieldValue::Description(value),
                Field::Severity => FieldValue::Severity(value.parse().map_err(anyhow::Error::msg)?),
                Field::Category => FieldValue::Category(value.parse().map_err(anyhow::Error::msg)?),
                Field::Handling => FieldValue::Handling(value.parse().map_err(anyhow::Error::msg)?),
                Field::Deadline => {
                    FieldValue::Deadline(Some(parse_deadline(&value).map_err(anyhow::Error::msg)?))
                }
            };
            client.edit_hazard(id, value).await?;
            if json {
                print_json(&client.hazard(id).await?.as_ref().map(hazard_json))?;
            } else {
                println!("edited {field} of {id}; sync to send it");
            }
        }
        HazardCmd::List { open, json } => {
            let all: Vec<_> = client
                .hazards()
                .await?
                .into_iter()
                .filter(|h| !open || h.state.status.is_open())
                .collect();
            if json {
                print_json(&all.iter().map(hazard_json).collect::<Vec<_>>())?;
            } else if all.is_empty() {
                println!("no hazards in your cells (sync to receive them)");
            } else {
                for h in &all {
                    let s = &h.state;
                    let cell = s
                        .report
                        .as_ref()
                        .map(|(r, _)| r.grid_cell.as_str())
                        .unwrap_or("?");
                    let flag = if h.has_local_changes {
                        " (unsynced)"
                    } else {
                        ""
                    };
                    println!(
                        "{}  {:<10} {:<16} {:<18} {}{flag}",
                        s.id, cell, s.status, s.category.value, s.description.value
                    );
                }
            }
        }
        HazardCmd::Show { id, json } => {
            let Some(v) = client.hazard(id).await? else {
                anyhow::bail!(
                    "hazard {id} is not on this device (not in your cells, or not synced yet)"
                );
            };
            if json {
                print_json(&hazard_json(&v))?;
            } else {
                let s = &v.state;
                println!(
                    "hazard {}: {} ({}, {}, {})",
                    s.id, s.status, s.category.value, s.severity.value, s.handling.value
                );
                println!("  {}", s.description.value);
                if let Some(d) = s.deadline_ms.value {
                    println!("  deadline {}", time_text(d));
                }
                for e in &v.escalations {
                    println!(
                        "  {}  OVERDUE: escalated to {} (level {})",
                        time_text(e.escalated_at_ms),
                        e.to_cell,
                        e.level
                    );
                }
                for h in &s.history {
                    match &h.conflict {
                        None => println!(
                            "  {}  {} by {}: {} -> {}",
                            time_text(h.stamp.hlc.wall_ms as i64),
                            h.kind,
                            h.role,
                            h.from,
                            h.to
                        ),
                        Some(why) => println!(
                            "  {}  {} by {}: CONFLICT, not applied: {why}",
                            time_text(h.stamp.hlc.wall_ms as i64),
                            h.kind,
                            h.role
                        ),
                    }
                }
            }
        }
    }
    Ok(())
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
    let lang = patrolsync_i18n::Lang::from_arg_or_env(cli.lang.as_deref());
    let config = ClientConfig {
        app_version: format!("patrolsync-device {}", env!("CARGO_PKG_VERSION")),
        language: lang.tag().to_owned(),
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
            datum,
            outcome,
            method,
            kind,
            note,
            photos,
            json,
        } => {
            let mut c = NewCheckIn::new(checkpoint.clone(), outcome);
            c.method = method;
            c.kind = kind;
            c.note = note;
            for f in photos {
                c.photos.push(client.add_photo(&f).await?);
            }
            if let (Some(latitude), Some(longitude)) = (lat, lon) {
                c.fix = Some(GeoFix {
                    latitude,
                    longitude,
                    accuracy_m: accuracy,
                    fix_time_ms: 0,
                    mock: false,
                    datum,
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
        Command::Sync { watch: true, json } => {
            let engine = client.start_engine(patrolsync_sdk::EngineOptions::default());
            let mut events = engine.subscribe();
            eprintln!("watching for changes; Ctrl-C to stop");
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    e = events.recv() => match e {
                        Ok(SyncEvent::Finished(s)) if json => print_json(&s)?,
                        Ok(SyncEvent::Finished(s)) => println!("synced: {} sent, {} received, cursor {}", s.pushed, s.pulled, s.cursor),
                        Ok(SyncEvent::Failed { error, retry_in, .. }) => println!("sync failed: {error}{}", retry_in.map(|d| format!(" (retrying in {})", humantime::format_duration(std::time::Duration::from_secs(d.as_secs())))).unwrap_or_default()),
                        Ok(SyncEvent::Notified { cursor }) => println!("server has news (cursor {cursor})"),
                        Ok(SyncEvent::ScopeChanged(n)) if !json => println!("{} your scope: {} {} ({})", if n.granted { "now in" } else { "no longer in" }, n.kind, n.id, n.reason),
                        Ok(SyncEvent::Stopped { reason, .. }) => { println!("stopped: {reason}"); break }
                        Ok(_) => {}
                        Err(_) => break,
                    },
                }
            }
            engine.stop().await;
        }
        Command::Hazard(cmd) => hazard_cmd(&client, cmd).await?,
        Command::Photos { json } => {
            let photos = client.photos().await?;
            if json {
                print_json(&photos)?;
            } else if photos.is_empty() {
                println!("no photos");
            } else {
                for p in photos {
                    let pct = (p.bytes_sent.min(p.size) * 100)
                        .checked_div(p.size)
                        .unwrap_or(0);
                    let detail = match (&p.error, p.state.as_str()) {
                        (Some(e), _) => e.clone(),
                        (None, "queued") => format!("{pct}% sent"),
                        _ => String::new(),
                    };
                    println!("{}  {:>9} bytes  {:<8} {detail}", p.sha256, p.size, p.state);
                }
            }
        }
        Command::Photo(PhotoCmd::Get { sha256, out }) => {
            let size = client.download_photo(sha256, &out).await?;
            println!("saved {} ({size} bytes, SHA-256 verified)", out.display());
        }
        Command::Checkpoints { json } => {
            let cps = client.checkpoints().await?;
            if json {
                print_json(&cps)?;
            } else if cps.is_empty() {
                println!("no checkpoints yet; run sync");
            } else {
                for c in cps {
                    println!("{:<18} {:<14} {}", c.code, c.cell, c.name);
                }
            }
        }
        Command::Sync { watch: false, json } => {
            let s = client.sync().await?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "synced in {} ms: {} sent, {} applied, {} already on the server, {} rejected, {} pending; \
                     {} changes received; {} photos uploaded ({} bytes)",
                    s.elapsed_ms,
                    s.pushed,
                    s.applied,
                    s.duplicates,
                    s.rejected,
                    s.remaining,
                    s.pulled,
                    s.photos_uploaded,
                    s.photo_bytes_sent
                );
                for f in &s.photo_failures {
                    println!("photo refused: {f}");
                }
                for n in &s.scope_changes {
                    if n.granted {
                        println!("now in your scope: {} {} ({})", n.kind, n.id, n.reason);
                    } else {
                        println!(
                            "no longer in your scope: {} {} ({}); {} dropped from this device",
                            n.kind, n.id, n.reason, n.dropped
                        );
                    }
                }
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
