//! `patrolsync-device`: a patrol device on the command line, built on the SDK. Useful for trying
//! a server out, for scripted field tests, and as a reference for app developers.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use patrolsync_i18n::cli::one_of;
use patrolsync_i18n::{Text, text};
use patrolsync_proto::geo::Datum;
use patrolsync_sdk::proto::hazard::{
    Agency, EventKind, Field, FieldValue, Handling, HazardCategory, Severity,
};
use patrolsync_sdk::proto::task::TaskResult;
use patrolsync_sdk::proto::{CheckInKind, CheckInMethod, CheckInOutcome, GeoFix, HazardId, TaskId};
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn, NewHazard, SyncEvent, Transition};

/// The language of this run's output (`--lang`, else the locale's; Chinese by default).
static LANG: std::sync::OnceLock<patrolsync_i18n::Lang> = std::sync::OnceLock::new();

fn lang() -> patrolsync_i18n::Lang {
    *LANG.get_or_init(|| patrolsync_i18n::Lang::from_arg_or_env(None))
}

/// A message of the catalog in this run's language, with its parameters by name.
macro_rules! say {
    ($($message:tt)*) => {
        patrolsync_i18n::message!(lang(), $($message)*)
    };
}

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
    /// The language of what it prints and of the server's refusals (worded when a sync pushes
    /// them): `zh-CN` or `en`. Default: from LC_ALL, LC_MESSAGES or LANG, and `zh-CN` when
    /// they name no language. `--json` output is the same in both.
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
    /// On duty (在岗) or off: `duty on [--lat … --lon …]`, `duty off`, or `duty` to see it.
    /// While on duty the device's latest position goes with each sync, so the server can send
    /// a help call to the nearest patroller; off duty none is kept or sent.
    Duty {
        /// `on` or `off`; absent: show it.
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
        /// Latitude of the device's position (on duty only).
        #[arg(long, requires = "lon", allow_hyphen_values = true)]
        lat: Option<f64>,
        /// Longitude of the device's position.
        #[arg(long, requires = "lat", allow_hyphen_values = true)]
        lon: Option<f64>,
        /// Accuracy of the fix, metres.
        #[arg(long, default_value_t = 10.0)]
        accuracy: f64,
        /// Datum of --lat/--lon: wgs84, gcj02 or bd09 (converted to WGS-84).
        #[arg(long, default_value = "wgs84", value_parser = one_of(Datum::ALL, |v: &Datum| v.as_str()))]
        datum: Datum,
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
        #[arg(long, default_value = "wgs84", value_parser = one_of(Datum::ALL, |v: &Datum| v.as_str()))]
        datum: Datum,
        /// inspected, locked, not_found, moved, closed, renovation or vacant.
        #[arg(long, default_value = "inspected", value_parser = one_of(CheckInOutcome::ALL, |v: &CheckInOutcome| v.as_str()))]
        outcome: CheckInOutcome,
        /// nfc, qr, gps or manual.
        #[arg(long, default_value = "manual", value_parser = one_of(CheckInMethod::ALL, |v: &CheckInMethod| v.as_str()))]
        method: CheckInMethod,
        /// patrol, inspection or visit.
        #[arg(long, default_value = "patrol", value_parser = one_of(CheckInKind::ALL, |v: &CheckInKind| v.as_str()))]
        kind: CheckInKind,
        /// For a visit: the household visited (六必访; see `households`). Implies --kind visit.
        #[arg(long)]
        household: Option<String>,
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
    /// Tasks the server offers you (help calls 求助, inspections, fix checks, visits): list,
    /// show, accept, decline, arrive, complete (work offline; `sync` sends them).
    #[command(subcommand)]
    Task(TaskCmd),
    /// Checkpoints of your cells, as last received.
    Checkpoints {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Key units (重点单位) of your cells, as last received: kind, risk, responsible person
    /// and phone, checkpoints.
    Units {
        /// Only those in this cell.
        #[arg(long)]
        cell: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Must-visit households (六必访) of your cells, as last received: group, address, whom to
    /// ask for. Record a visit with `checkin --household CODE`.
    Households {
        /// Only those in this cell.
        #[arg(long)]
        cell: Option<String>,
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
enum TaskCmd {
    /// The tasks of your cells, newest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One task: its state and every step, conflicts included.
    Show {
        /// Task id.
        id: TaskId,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take the task.
    Accept {
        /// Task id.
        id: TaskId,
    },
    /// Decline it: the server offers it to the next patroller.
    Decline {
        /// Task id.
        id: TaskId,
        /// Why.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// You are at the place: a check-in at the task's checkpoint when it names one.
    Arrive {
        /// Task id.
        id: TaskId,
        /// Latitude of your position.
        #[arg(long, requires = "lon", allow_hyphen_values = true)]
        lat: Option<f64>,
        /// Longitude of your position.
        #[arg(long, requires = "lat", allow_hyphen_values = true)]
        lon: Option<f64>,
    },
    /// Done: found_fine, help_given, or hazard_reported with --hazard ID.
    Complete {
        /// Task id.
        id: TaskId,
        /// found_fine, help_given or hazard_reported.
        #[arg(long, value_parser = one_of(TaskResult::ALL, |v: &TaskResult| v.as_str()))]
        result: TaskResult,
        /// The hazard you reported (with hazard_reported).
        #[arg(long)]
        hazard: Option<HazardId>,
        /// What you found.
        #[arg(long, default_value = "")]
        note: String,
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
        /// The must-report kind (八必报). Hazards, run through the closed loop:
        /// blocked_fire_lane, damaged_facility, blocked_evacuation, electrical, gas, open_flame,
        /// flammable_storage, rental_housing, renovation or other. Information reports, sent to
        /// the cell's managers to acknowledge (no handling or deadline): outside_workers
        /// (外来人员就业), assisted_person (新增残障等帮扶人员), unstable_factor (消防安全不稳定因素).
        #[arg(long, value_parser = one_of(HazardCategory::ALL, |v: &HazardCategory| v.as_str()))]
        category: HazardCategory,
        /// general or major.
        #[arg(long, default_value = "general", value_parser = one_of(Severity::ALL, |v: &Severity| v.as_str()))]
        severity: Severity,
        /// on_the_spot or by_deadline.
        #[arg(long, default_value = "on_the_spot", value_parser = one_of(Handling::ALL, |v: &Handling| v.as_str()))]
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
    /// verify_fail, transfer, agency_accept, agency_return, agency_fix, reopen, merge; an
    /// information report: acknowledge (a manager), merge. A property company or community a
    /// routing rule sent the hazard to: accept, fix_on_spot, submit_fix.
    Transition {
        /// Hazard id.
        id: HazardId,
        /// The transition.
        #[arg(value_parser = one_of(EventKind::ALL, |v: &EventKind| v.as_str()))]
        kind: EventKind,
        /// Note, or the reason (agency_return, reopen).
        #[arg(long, default_value = "")]
        note: String,
        /// New deadline (notify): a duration from now or a date.
        #[arg(long, value_parser = parse_deadline)]
        deadline: Option<i64>,
        /// police_station or fire_brigade (transfer).
        #[arg(long, value_parser = one_of(Agency::ALL, |v: &Agency| v.as_str()))]
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
        #[arg(value_parser = one_of(Field::ALL, |v: &Field| v.as_str()))]
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

fn parse_deadline(s: &str) -> Result<i64, Text> {
    let now = std::time::SystemTime::now();
    let at = match humantime::parse_duration(s) {
        Ok(d) => now + d,
        Err(_) => humantime::parse_rfc3339_weak(s)
            .or_else(|_| humantime::parse_rfc3339_weak(&format!("{s} 00:00:00")))
            .map_err(|_| text!("dev-bad-deadline", value = s))?,
    };
    Ok(at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0))
}

fn parse_sha256(s: &str) -> Result<[u8; 32], Text> {
    s.parse::<patrolsync_proto::Sha256>()
        .map(|d| d.0)
        .map_err(|_| text!("dev-bad-sha256", value = s))
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
        "reminders": v.reminders.iter().map(|r| serde_json::json!({
            "deadline": time_text(r.deadline_ms), "offset_ms": r.offset_ms,
            "at": time_text(r.reminded_at_ms),
        })).collect::<Vec<_>>(),
        "history": s.history.iter().map(|h| serde_json::json!({
            "event": h.event.to_string(), "kind": h.kind.as_str(), "role": h.role.as_str(),
            "device": h.stamp.device.to_string(), "at": time_text(h.stamp.hlc.wall_ms as i64),
            "from": h.from.as_str(), "to": h.to.as_str(), "conflict": h.conflict,
        })).collect::<Vec<_>>(),
    })
}

async fn task_cmd(client: &Client, cmd: TaskCmd) -> anyhow::Result<()> {
    let row = |v: &patrolsync_sdk::TaskView| {
        let s = &v.state;
        let (kind, cell) = s
            .task
            .as_ref()
            .map(|(t, _)| (t.kind.as_str(), t.grid_cell.as_str()))
            .unwrap_or(("", ""));
        say!(
            "dev-task-row",
            id = s.id,
            status = word("task-status", s.status.as_str()),
            kind = word("task-kind", kind),
            cell = cell,
            assignee = s.assignee.clone().unwrap_or_else(|| "-".into()),
            offered = s.offered_to.clone().unwrap_or_else(|| "-".into())
        )
    };
    match cmd {
        TaskCmd::List { json } => {
            let all = client.tasks().await?;
            if json {
                print_json(&all.iter().map(task_json).collect::<Vec<_>>())?;
            } else if all.is_empty() {
                println!("{}", say!("dev-no-tasks"));
            } else {
                for v in &all {
                    println!("{}", row(v));
                }
            }
        }
        TaskCmd::Show { id, json } => {
            let Some(v) = client.task(id).await? else {
                anyhow::bail!("{}", say!("dev-task-unknown", id = id));
            };
            if json {
                print_json(&task_json(&v))?;
            } else {
                println!("{}", row(&v));
                if let Some((t, _)) = &v.state.task {
                    println!("  {}", t.description);
                }
                for h in &v.state.history {
                    let step = format!("{} {}", word("task-step", h.kind.as_str()), h.user);
                    match &h.conflict {
                        None => println!("  {}  {step}", time_text(h.stamp.hlc.wall_ms as i64)),
                        Some(why) => println!(
                            "  {}  {step}: {}",
                            time_text(h.stamp.hlc.wall_ms as i64),
                            say!("dev-task-conflict", why = why)
                        ),
                    }
                }
            }
        }
        TaskCmd::Accept { id } => {
            client.accept_task(id).await?;
            println!(
                "{}",
                say!(
                    "dev-task-stepped",
                    id = id,
                    step = word("task-step", "accept")
                )
            );
        }
        TaskCmd::Decline { id, note } => {
            client.decline_task(id, note).await?;
            println!(
                "{}",
                say!(
                    "dev-task-stepped",
                    id = id,
                    step = word("task-step", "decline")
                )
            );
        }
        TaskCmd::Arrive { id, lat, lon } => {
            let fix = lat.zip(lon).map(|(latitude, longitude)| GeoFix {
                latitude,
                longitude,
                accuracy_m: 10.0,
                fix_time_ms: 0,
                mock: false,
                datum: Datum::Wgs84,
            });
            let a = client.arrive(id, fix).await?;
            match a.check_in {
                Some(c) => println!(
                    "{}",
                    say!("dev-task-arrived-checkin", id = id, check_in = c)
                ),
                None => println!(
                    "{}",
                    say!(
                        "dev-task-stepped",
                        id = id,
                        step = word("task-step", "arrive")
                    )
                ),
            }
        }
        TaskCmd::Complete {
            id,
            result,
            hazard,
            note,
        } => {
            client.complete_task(id, result, hazard, note).await?;
            println!(
                "{}",
                say!(
                    "dev-task-stepped",
                    id = id,
                    step = word("task-step", "complete")
                )
            );
        }
    }
    Ok(())
}

fn task_json(v: &patrolsync_sdk::TaskView) -> serde_json::Value {
    let s = &v.state;
    serde_json::json!({
        "id": s.id.to_string(),
        "status": s.status.as_str(),
        "kind": s.task.as_ref().map(|(t, _)| t.kind.as_str()),
        "cell": s.task.as_ref().map(|(t, _)| t.grid_cell.clone()),
        "checkpoint": s.task.as_ref().map(|(t, _)| t.checkpoint.clone()),
        "household": s.task.as_ref().map(|(t, _)| t.household.clone()),
        "description": s.task.as_ref().map(|(t, _)| t.description.clone()),
        "assignee": s.assignee,
        "offered_to": s.offered_to,
        "result": s.result.map(|r| r.as_str()),
        "unsynced_changes": v.has_local_changes,
        "history": s.history.iter().map(|h| serde_json::json!({
            "kind": h.kind.as_str(), "user": h.user, "role": h.role.as_str(),
            "at": time_text(h.stamp.hlc.wall_ms as i64), "conflict": h.conflict,
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
                println!("{}", say!("dev-hazard-reported", id = id, cell = cell));
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
                    .map(|v| word("state", v.state.status.as_str()))
                    .unwrap_or_else(|| say!("dev-unknown-here"));
                println!(
                    "{}",
                    say!(
                        "dev-transition-recorded",
                        kind = word("transition", kind.as_str()),
                        id = id,
                        status = status
                    )
                );
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
                Field::Severity => {
                    let known: Vec<&str> = Severity::ALL.iter().map(|v| v.as_str()).collect();
                    FieldValue::Severity(choice("severity", &value, &known)?)
                }
                Field::Category => {
                    let known: Vec<&str> = HazardCategory::ALL.iter().map(|v| v.as_str()).collect();
                    FieldValue::Category(choice("category", &value, &known)?)
                }
                Field::Handling => {
                    let known: Vec<&str> = Handling::ALL.iter().map(|v| v.as_str()).collect();
                    FieldValue::Handling(choice("handling", &value, &known)?)
                }
                Field::Deadline => FieldValue::Deadline(Some(parse_deadline(&value)?)),
            };
            client.edit_hazard(id, value).await?;
            if json {
                print_json(&client.hazard(id).await?.as_ref().map(hazard_json))?;
            } else {
                println!("{}", say!("dev-edited", field = field, id = id));
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
                println!("{}", say!("dev-no-hazards"));
            } else {
                for h in &all {
                    let s = &h.state;
                    let cell = s
                        .report
                        .as_ref()
                        .map(|(r, _)| r.grid_cell.as_str())
                        .unwrap_or("?");
                    let flag = if h.has_local_changes {
                        say!("dev-unsynced")
                    } else {
                        String::new()
                    };
                    println!(
                        "{}  {:<10} {:<16} {:<18} {}{flag}",
                        s.id,
                        cell,
                        word("state", s.status.as_str()),
                        word("category", s.category.value.as_str()),
                        s.description.value
                    );
                }
            }
        }
        HazardCmd::Show { id, json } => {
            let Some(v) = client.hazard(id).await? else {
                anyhow::bail!("{}", say!("dev-hazard-not-here", id = id));
            };
            if json {
                print_json(&hazard_json(&v))?;
            } else {
                let s = &v.state;
                println!(
                    "{}",
                    say!(
                        "dev-hazard",
                        id = s.id,
                        status = word("state", s.status.as_str()),
                        category = word("category", s.category.value.as_str()),
                        severity = word("severity", s.severity.value.as_str()),
                        handling = word("handling", s.handling.value.as_str())
                    )
                );
                println!("  {}", s.description.value);
                if let Some(d) = s.deadline_ms.value {
                    println!("  {}", say!("dev-deadline", at = time_text(d)));
                }
                for e in &v.escalations {
                    println!(
                        "  {}  {}",
                        time_text(e.escalated_at_ms),
                        say!("dev-escalated", cell = e.to_cell, level = e.level)
                    );
                }
                for r in &v.reminders {
                    let hours = r.offset_ms as f64 / 3_600_000.0;
                    println!(
                        "  {}  {}",
                        time_text(r.reminded_at_ms),
                        if r.offset_ms < 0 {
                            say!("dev-reminded-before", hours = format!("{:.1}", -hours))
                        } else {
                            say!("dev-reminded-after", hours = format!("{:.1}", hours))
                        }
                    );
                }
                for h in &s.history {
                    match &h.conflict {
                        None => println!(
                            "  {}  {}",
                            time_text(h.stamp.hlc.wall_ms as i64),
                            say!(
                                "dev-history",
                                kind = word("transition", h.kind.as_str()),
                                role = word("role", h.role.as_str()),
                                from = word("state", h.from.as_str()),
                                to = word("state", h.to.as_str())
                            )
                        ),
                        Some(why) => println!(
                            "  {}  {}",
                            time_text(h.stamp.hlc.wall_ms as i64),
                            say!(
                                "dev-history-conflict",
                                kind = word("transition", h.kind.as_str()),
                                role = word("role", h.role.as_str()),
                                why = why
                            )
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

/// A failure in the run's language: each layer of `e` (what was being done, then why) down to
/// the first that words itself: an SDK error by its code's message, or a catalog text.
fn error_text(e: &anyhow::Error) -> String {
    use patrolsync_sdk::{EnrollError, OpenError, ReadError, RecordError, SyncError};
    let lang = lang();
    let worded = |e: &(dyn std::error::Error + 'static)| {
        let code = e
            .downcast_ref::<SyncError>()
            .map(SyncError::code)
            .or_else(|| e.downcast_ref::<EnrollError>().map(EnrollError::code))
            .or_else(|| e.downcast_ref::<RecordError>().map(RecordError::code))
            .or_else(|| e.downcast_ref::<ReadError>().map(ReadError::code))
            .or_else(|| e.downcast_ref::<OpenError>().map(OpenError::code));
        match code {
            Some(c) => Some(c.message(lang.tag())),
            None => e.downcast_ref::<Text>().map(|t| t.in_lang(lang)),
        }
    };
    let mut parts = vec![];
    for cause in e.chain() {
        if let Some(w) = worded(cause) {
            parts.push(w);
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(&lang.text("cli-error-joint"))
}

/// `value` as one of the codes `known` of a field (`--field severity`), or the catalog's
/// refusal naming them.
fn choice<T: std::str::FromStr>(what: &str, value: &str, known: &[&str]) -> Result<T, Text> {
    value.parse().map_err(|_| {
        text!(
            "unknown-choice",
            what = what,
            value = value,
            known = known.join(", ")
        )
    })
}

/// A change of the device's scope, in words.
fn scope_change(n: &patrolsync_sdk::ScopeNotice) -> String {
    let (kind, reason) = (word("scope-kind", &n.kind), word("scope-reason", &n.reason));
    if n.granted {
        say!("dev-scope-granted", kind = kind, id = n.id, reason = reason)
    } else {
        say!(
            "dev-scope-revoked",
            kind = kind,
            id = n.id,
            reason = reason,
            dropped = n.dropped
        )
    }
}

/// The catalog's word for `code` of vocabulary `prefix` (`state-closed` → 已销号); the code
/// where the catalog has none.
fn word(prefix: &str, code: &str) -> String {
    lang().word_or_key(prefix, code)
}

fn ago(ms: Option<i64>) -> String {
    match ms {
        None => say!("dash-never"),
        Some(t) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(t);
            say!("dash-ago", dur = lang().duration(now - t))
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let language = patrolsync_i18n::Lang::from_arg_or_env(cli.lang.as_deref());
    let _ = LANG.set(language);
    let config = ClientConfig {
        app_version: format!("patrolsync-device {}", env!("CARGO_PKG_VERSION")),
        language: language.tag().to_owned(),
        server_override: cli.server.clone(),
        ..ClientConfig::default()
    };
    let client = Client::open(&cli.state_dir, config)
        .await
        .with_context(|| say!("dev-opening-state", dir = cli.state_dir.display()))?;
    match cli.command {
        Command::Enroll { code, name, json } => {
            let e = client.enroll(&code, cli.server.as_deref(), &name).await?;
            if json {
                print_json(&e)?;
            } else {
                println!(
                    "{}",
                    say!(
                        "dev-enrolled",
                        device = e.device_id,
                        user = e.user,
                        role = word("role", &e.role),
                        cells = e.grid_cells.join(","),
                        server = e.server
                    )
                );
            }
        }
        Command::Duty {
            state,
            lat,
            lon,
            accuracy,
            datum,
            json,
        } => {
            if let Some(state) = &state {
                client.set_on_duty(state == "on").await?;
            }
            if let (Some(latitude), Some(longitude)) = (lat, lon) {
                let kept = client
                    .update_position(GeoFix {
                        latitude,
                        longitude,
                        accuracy_m: accuracy,
                        fix_time_ms: std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64),
                        mock: false,
                        datum,
                    })
                    .await?;
                if !kept {
                    anyhow::bail!("{}", say!("dev-duty-position-off"));
                }
            }
            let d = client.duty().await?;
            if json {
                print_json(&serde_json::json!({
                    "on_duty": d.on_duty,
                    "position": d.position.map(|p| serde_json::json!({
                        "latitude": p.latitude,
                        "longitude": p.longitude,
                        "accuracy_m": p.accuracy_m,
                    })),
                }))?;
            } else {
                let line = match (d.on_duty, d.position) {
                    (false, _) => say!("dev-duty-off"),
                    (true, None) => say!("dev-duty-on"),
                    (true, Some(p)) => say!(
                        "dev-duty-on-at",
                        lat = format!("{:.6}", p.latitude),
                        lon = format!("{:.6}", p.longitude)
                    ),
                };
                println!("{line}");
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
            household,
            note,
            photos,
            json,
        } => {
            let mut c = NewCheckIn::new(checkpoint.clone(), outcome);
            c.method = method;
            c.kind = if household.is_some() {
                CheckInKind::Visit
            } else {
                kind
            };
            c.household = household;
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
                println!(
                    "{}",
                    say!(
                        "dev-checked-in",
                        id = id,
                        checkpoint = checkpoint,
                        pending = pending
                    )
                );
            }
        }
        Command::Sync { watch: true, json } => {
            let engine = client.start_engine(patrolsync_sdk::EngineOptions::default());
            let mut events = engine.subscribe();
            eprintln!("{}", say!("dev-watching"));
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => break,
                    e = events.recv() => match e {
                        Ok(SyncEvent::Finished(s)) if json => print_json(&s)?,
                        Ok(SyncEvent::Finished(s)) => println!("{}", say!("dev-watch-synced", sent = s.pushed, received = s.pulled, cursor = s.cursor)),
                        Ok(SyncEvent::Failed { code, retry_in, .. }) => println!("{}", say!("dev-watch-failed", error = code.message(lang().tag()), retry = retry_in.map(|d| say!("dev-retrying", dur = lang().duration(d.as_millis() as i64))).unwrap_or_default())),
                        Ok(SyncEvent::Notified { cursor }) => println!("{}", say!("dev-watch-news", cursor = cursor)),
                        Ok(SyncEvent::ScopeChanged(n)) if !json => println!("{}", scope_change(&n)),
                        Ok(SyncEvent::Stopped { reason, .. }) => { println!("{}", say!("dev-watch-stopped", reason = reason)); break }
                        Ok(_) => {}
                        Err(_) => break,
                    },
                }
            }
            engine.stop().await;
        }
        Command::Hazard(cmd) => hazard_cmd(&client, cmd).await?,
        Command::Task(cmd) => task_cmd(&client, cmd).await?,
        Command::Photos { json } => {
            let photos = client.photos().await?;
            if json {
                print_json(&photos)?;
            } else if photos.is_empty() {
                println!("{}", say!("dev-no-photos"));
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
            println!(
                "{}",
                say!("dev-photo-saved", file = out.display(), size = size)
            );
        }
        Command::Checkpoints { json } => {
            let cps = client.checkpoints().await?;
            if json {
                print_json(&cps)?;
            } else if cps.is_empty() {
                println!("{}", say!("dev-no-checkpoints"));
            } else {
                for c in cps {
                    println!("{:<18} {:<14} {}", c.code, c.cell, c.name);
                }
            }
        }
        Command::Units { cell, json } => {
            let units = client.units(cell.as_deref()).await?;
            if json {
                print_json(&units)?;
            } else if units.is_empty() {
                println!("{}", say!("dev-no-units"));
            } else {
                for u in units {
                    println!(
                        "{}",
                        say!(
                            "dev-unit",
                            code = u.code,
                            name = u.name,
                            kind = lang().text(&format!("unit-kind-{}", u.kind)),
                            risk = lang().text(&format!("unit-risk-{}", u.risk)),
                            cell = u.cell,
                            person = u.responsible_person,
                            phone = u.responsible_phone,
                            checkpoints = u.checkpoints.join(", ")
                        )
                    );
                }
            }
        }
        Command::Households { cell, json } => {
            let all = client.households(cell.as_deref()).await?;
            if json {
                print_json(&all)?;
            } else if all.is_empty() {
                println!("{}", say!("dev-no-households"));
            } else {
                for h in all {
                    println!(
                        "{}",
                        say!(
                            "dev-household",
                            code = h.code,
                            group = lang().text(&format!("household-group-{}", h.group)),
                            cell = h.cell,
                            address = h.address,
                            contact = h.contact_name,
                            phone = h.contact_phone
                        )
                    );
                }
            }
        }
        Command::Sync { watch: false, json } => {
            let s = client.sync().await?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "{}",
                    say!(
                        "dev-synced",
                        ms = s.elapsed_ms,
                        sent = s.pushed,
                        applied = s.applied,
                        duplicates = s.duplicates,
                        rejected = s.rejected,
                        pending = s.remaining,
                        received = s.pulled,
                        photos = s.photos_uploaded,
                        bytes = s.photo_bytes_sent
                    )
                );
                for f in &s.photo_failures {
                    println!("{}", say!("dev-photo-refused", photo = f));
                }
                for n in &s.scope_changes {
                    println!("{}", scope_change(n));
                }
                if s.rejected > 0 {
                    let command = format!(
                        "patrolsync-device --state-dir {} rejected",
                        cli.state_dir.display()
                    );
                    println!("{}", say!("dev-see-why", command = command));
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
                        "{}",
                        say!(
                            "dev-status-device",
                            id = id,
                            user = s.user.as_deref().unwrap_or(""),
                            server = s.server.as_deref().unwrap_or("")
                        )
                    ),
                    None => println!("{}", say!("dev-status-not-enrolled")),
                }
                let oldest = s
                    .oldest_pending_age_ms
                    .map(|a| say!("dev-status-oldest", dur = lang().duration(a as i64)))
                    .unwrap_or_default();
                println!(
                    "{}",
                    say!("dev-status-pending", ops = s.pending_ops, oldest = oldest)
                );
                println!("{}", say!("dev-status-rejected", ops = s.rejected_ops));
                println!(
                    "{}",
                    say!("dev-status-last-sync", at = ago(s.last_sync_at_ms))
                );
                if s.last_error.is_some() {
                    let error = s.last_error_code.as_ref().map_or_else(
                        || s.last_error.clone().unwrap_or_default(),
                        |c| c.message(lang().tag()),
                    );
                    println!(
                        "{}",
                        say!(
                            "dev-status-last-error",
                            error = error,
                            at = ago(s.last_attempt_at_ms)
                        )
                    );
                }
            }
        }
        Command::Rejected { json } => {
            let r = client.rejected().await?;
            if json {
                print_json(&r)?;
            } else if r.is_empty() {
                println!("{}", say!("dev-no-rejected"));
            } else {
                for op in r {
                    println!(
                        "{}",
                        say!(
                            "dev-rejected",
                            seq = op.device_seq,
                            kind = word("dash-record", &op.kind),
                            record = op.record_id,
                            message = op.message,
                            code = op.code,
                            field = op.field
                        )
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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return patrolsync_i18n::cli::argument_error(e),
    };
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", say!("dev-error", error = error_text(&e)));
            std::process::ExitCode::FAILURE
        }
    }
}
