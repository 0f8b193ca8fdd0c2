//! The `patrolsync` command line: `serve` and `admin …`. Parsing and printing only; the work is
//! done by the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use patrolsync_proto::Role;

mod accounts;
mod inspect;

use crate::calendar::time_text;
use crate::config::*;
use crate::pki::Pki;
use crate::store::Store;

/// patrolsync: the sync server for fire-safety grid patrols.
#[derive(Debug, Parser)]
#[command(name = "patrolsync", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` (one object per line, with the span's
    /// device id and RPC) for log collectors. The filter is PATROLSYNC_LOG (default `info`).
    #[arg(long, env = "PATROLSYNC_LOG_FORMAT", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: QUIC for devices, HTTP for admins. Zero configuration needed.
    Serve(ServeArgs),
    /// Admin tasks against a data dir or database (work while the server runs).
    Admin(AdminArgs),
}

/// Where the configuration, data and database are.
#[derive(Debug, Args)]
struct Common {
    /// TOML configuration file.
    #[arg(long, env = ENV_CONFIG, global = true)]
    config: Option<PathBuf>,
    /// Data directory (database, keys, admin.token). Default ./patrolsync-data.
    #[arg(long, env = ENV_DATA_DIR, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default SQLite in the data dir.
    #[arg(long, env = ENV_DATABASE_URL, global = true)]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// UDP address for QUIC. Default [::]:4433.
    #[arg(long, env = ENV_LISTEN)]
    listen: Option<SocketAddr>,
    /// TCP address for admin HTTP. Default 127.0.0.1:4480.
    #[arg(long, env = ENV_ADMIN_LISTEN)]
    admin_listen: Option<SocketAddr>,
    /// HOST:PORT devices dial, written into enrollment codes.
    #[arg(long, env = ENV_PUBLIC_ADDRESS)]
    public_address: Option<String>,
}

#[derive(Debug, Args)]
struct AdminArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create the demo city: 2 streets × 3 communities × 4 compounds × 5 buildings, 2 checkpoints each.
    SeedDemo {
        /// `small` (2 streets, 240 checkpoints; what the walkthrough and tests use) or `city`
        /// (Harbin's scale: 115 streets, 15,799 cells, 40,000 checkpoints).
        #[arg(long, default_value = "small", value_parser = ["small", "city"])]
        size: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Create a one-time enrollment code for a user's device.
    Enroll {
        /// User name (created if new).
        #[arg(long)]
        user: String,
        /// Role: patroller, grid_manager, agency or admin.
        #[arg(long)]
        role: Role,
        /// Grid cell codes assigned to the user (comma-separated or repeated).
        #[arg(long = "grid", value_delimiter = ',')]
        grid: Vec<String>,
        /// For --role agency: police_station or fire_brigade.
        #[arg(long)]
        agency: Option<patrolsync_proto::hazard::Agency>,
        /// HOST:PORT devices dial. Default: public_address, else the listen address.
        #[arg(long, env = ENV_PUBLIC_ADDRESS)]
        server: Option<String>,
        /// How long the code stays valid (e.g. 24h, 30m). Default from config (24h).
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Counts: devices, check-ins, rejected ops and more.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Devices and their sync health: healthy, lagging, silent, erroring or revoked, and why
    /// (thresholds in the `[health]` config section). Worst first.
    Devices {
        /// Only devices in this state.
        #[arg(long)]
        state: Option<crate::health::HealthState>,
        /// Order: state, last_seen, outbox, oldest_pending, missing_photos, rejected, user, enrolled.
        #[arg(long, default_value = "state")]
        sort: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One device in detail: health, recent Hello reports, missing photos, rejected ops and
    /// conflicts.
    Device {
        /// Device id, or a unique prefix of at least 8 characters.
        device: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device (lost or stolen phone): its live connections close within a second,
    /// it cannot connect again, and what it already sent stays.
    Revoke {
        /// Device id, or a unique prefix of at least 8 characters.
        device: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Photos that records reference but that have not arrived, and the devices that owe them.
    MissingPhotos {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recent check-ins.
    CheckIns {
        /// Only this device.
        #[arg(long)]
        device: Option<patrolsync_proto::DeviceId>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The rejection log: ops the server refused, and why.
    Rejections {
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ops recorded as conflicts (their hazard transition was no longer possible), newest first.
    Conflicts {
        /// Only this device's.
        #[arg(long)]
        device: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The grid: `import FILE` (cells from CSV or GeoJSON), `retire CODE`.
    Grid {
        /// What to do.
        #[command(subcommand)]
        command: GridCommand,
    },
    /// Checkpoints: `import FILE` (CSV or GeoJSON points).
    Checkpoints {
        /// What to do.
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// People: `import FILE` (CSV: name,role,agency,cells), with their assignments.
    People {
        /// What to do.
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Checklist templates: `publish FILE` (TOML or JSON; the next version), `list`, `show ID`.
    Template {
        /// What to do.
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// Assign cells to a person (or with --remove take them away). Their devices receive the
    /// cells whole (or drop them, told why) at their next pull.
    Assign {
        /// User name.
        #[arg(long)]
        user: String,
        /// Cell codes (comma-separated or repeated).
        #[arg(long = "cell", alias = "cells", value_delimiter = ',', required = true)]
        cells: Vec<String>,
        /// Remove these cells instead of adding them.
        #[arg(long)]
        remove: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Named admin accounts with a role (viewer, operator, owner) and optionally a subtree,
    /// each with its own token: `add NAME --role R [--cell C] [--expires 90d]`, `list`,
    /// `revoke NAME`. The data dir's admin.token is the bootstrap owner.
    Admins {
        /// What to do.
        #[command(subcommand)]
        command: accounts::AdminsCommand,
    },
    /// The audit log: every admin action with who, when, from where, what and how it ended,
    /// hash-chained; says whether the chain verifies (exit status 1 if it does not).
    Audit {
        /// Entries from this moment on: `2026-11-03`, `2026-11-03 09:00` (local) or RFC 3339.
        #[arg(long)]
        since: Option<String>,
        /// One actor's entries (an admin's name, `local:USER`, `bootstrap`).
        #[arg(long)]
        actor: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A hazard as the server holds it: `show ID` folds its log into its state and history
    /// (conflicts included) and checks its hash chain, to compare with what a phone shows.
    Hazard {
        /// What to do.
        #[command(subcommand)]
        hazard: HazardCommand,
    },
    /// What a device should hold now: the cells (and, for agencies, the hazards) its scope
    /// feed holds and since when, and the cells, checkpoints and hazards they cover.
    Scope {
        /// Device id, or a unique prefix of at least 8 characters.
        #[arg(long)]
        device: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reports over the grid: `compliance` (cadence compliance per cell, rolled up the tree).
    Report {
        /// Which report.
        #[command(subcommand)]
        report: ReportCommand,
    },
    /// Export a ledger (台账) of a cell subtree over a period, as CSV or XLSX. Hazard ledgers
    /// carry each hazard's hash-chain head and a digest over them, to verify against the log.
    Export {
        /// `inspections`, `patrols`, `hazard-disposal` or `hazard-transfer`.
        ledger: crate::report::Ledger,
        /// Period: 2026-11 (month), 2026-Q4 (quarter), 2026-11-23 (day) or
        /// 2026-11-23..2026-11-29 (days, both included). Days are in `reports.time_zone`.
        #[arg(long)]
        period: crate::report::Period,
        /// Root of the subtree (a cell code). Default: the whole grid.
        #[arg(long)]
        cell: Option<String>,
        /// The moment the report stands at: only what the server had received by then counts,
        /// and slots and deadlines are judged as they stood then. `2026-11-03` (the end of that
        /// day), `2026-11-03 09:00` (local, in `reports.time_zone`) or RFC 3339. Default: now.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// `csv` or `xlsx`.
        #[arg(long, default_value = "csv", value_parser = ["csv", "xlsx"])]
        format: String,
        /// Output file (required for xlsx; CSV goes to stdout without it).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

/// Grid tasks.
#[derive(Debug, Subcommand)]
enum GridCommand {
    /// Import cells from CSV (`code,parent,level,name[,boundary]`, boundary as WKT or GeoJSON
    /// geometry) or a GeoJSON FeatureCollection (properties code, parent, level, name; polygon
    /// geometry). Checked whole first: a bad row is reported by line and column and nothing is
    /// applied. Importing the same file again changes nothing.
    Import {
        /// The file (.csv or .geojson).
        file: PathBuf,
        /// Check the file and report problems; write nothing.
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retire a cell with its subtree and checkpoints: history stays, new records are refused,
    /// devices learn it through pull.
    Retire {
        /// Cell code.
        code: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Checklist template tasks.
#[derive(Debug, Subcommand)]
enum TemplateCommand {
    /// Publish a template file (TOML or JSON: id, name, items with id, label, answer
    /// check|number|text, mandatory, photo_on_fail, hazard_category) as its next version, unless
    /// it equals the latest. Devices receive it through pull; answers recorded against older
    /// versions keep them.
    Publish {
        /// The file (.toml or .json).
        file: PathBuf,
        /// Check the file; publish nothing.
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every template's versions.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One template: its latest version, or --version N.
    Show {
        /// Template id.
        id: String,
        /// Version (default: the latest).
        #[arg(long)]
        version: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Importing a file.
#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Import from a file. Checkpoints: CSV `code,cell,name[,tag_uid,latitude,longitude,
    /// radius_m,cadence]` or GeoJSON points with those properties. People: CSV
    /// `name,role[,agency,cells]` (cells separated by `;`; they replace the person's
    /// assignments). Checked whole first: a bad row is reported by line and column and
    /// nothing is applied. Importing the same file again changes nothing.
    Import {
        /// The file.
        file: PathBuf,
        /// Check the file and report problems; write nothing.
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Hazards.
#[derive(Debug, Subcommand)]
enum HazardCommand {
    /// The hazard folded from the server's log: status, fields, agency, history with
    /// conflicts, and whether its hash chain verifies.
    Show {
        /// Hazard id (a UUID).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Reports.
#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Performance evaluation (考评): per cell (its subtree) or per person (`--by person`):
    /// compliance, check-ins and flagged ones, hazards found, closed on time, closed late,
    /// overdue, transferred.
    Evaluation {
        /// Period: 2026-11 (month), 2026-Q4 (quarter), 2026-11-23 (day) or
        /// 2026-11-23..2026-11-29 (days, both included). Days are in `reports.time_zone`.
        #[arg(long)]
        period: crate::report::Period,
        /// Root of the subtree (a cell code). Default: the whole grid.
        #[arg(long)]
        cell: Option<String>,
        /// The moment the report stands at: only what the server had received by then counts,
        /// and slots and deadlines are judged as they stood then. `2026-11-03` (the end of that
        /// day), `2026-11-03 09:00` (local, in `reports.time_zone`) or RFC 3339. Default: now.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// `cell` or `person`.
        #[arg(long, default_value = "cell", value_parser = ["cell", "person"])]
        by: String,
        /// `table`, `csv`, `xlsx` or `json`.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "xlsx", "json"])]
        format: String,
        /// Output file (required for xlsx; others go to stdout without it).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Cadence compliance: per cell and its subtree, the checkpoint slots due in the period,
    /// inspected, could not inspect (by reason), flagged (anomalies; not counted as inspected),
    /// missed, still open, and the rate inspected / due.
    Compliance {
        /// Period: 2026-11 (month), 2026-Q4 (quarter), 2026-11-23 (day) or
        /// 2026-11-23..2026-11-29 (days, both included). Days are in `reports.time_zone`.
        #[arg(long)]
        period: crate::report::Period,
        /// Root of the subtree (a cell code). Default: the whole grid.
        #[arg(long)]
        cell: Option<String>,
        /// The moment the report stands at: only what the server had received by then counts,
        /// and slots and deadlines are judged as they stood then. `2026-11-03` (the end of that
        /// day), `2026-11-03 09:00` (local, in `reports.time_zone`) or RFC 3339. Default: now.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// `table`, `csv`, `xlsx` or `json`.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "xlsx", "json"])]
        format: String,
        /// Output file (required for xlsx; others go to stdout without it).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn overrides(c: &Common) -> Overrides {
    Overrides {
        config_file: c.config.clone(),
        data_dir: c.data_dir.clone(),
        database_url: c.database_url.clone(),
        ..Overrides::default()
    }
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Admin(args) => admin(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut o = overrides(&args.common);
    o.listen = args.listen;
    o.admin_listen = args.admin_listen;
    o.public_address = args.public_address;
    let config = Config::load(&o)?;
    let backend = if config.database_url.is_some() {
        "external database"
    } else {
        "SQLite"
    };
    let data_dir = config.data_dir.clone();
    let server = crate::Server::bind(config).await?;
    let dir = data_dir.display();
    println!(
        "patrolsync {} listening on udp {} (ALPN patrolsync/1), admin http://{}",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
        server.admin_addr()
    );
    println!("  data dir        {dir} ({backend})");
    println!("  CA fingerprint  sha256:{}", server.ca_fingerprint());
    println!("  devices dial    {}", server.config().public_address());
    println!("next: create the demo grid and enroll a device (in another terminal):");
    println!("  patrolsync admin --data-dir {dir} seed-demo");
    println!(
        "  patrolsync admin --data-dir {dir} enroll --user alice --role patroller --grid S1-C1"
    );
    println!(
        "  patrolsync-device --state-dir alice-phone enroll --code '<the patrolsync://… string printed>'"
    );
    println!("press Ctrl-C to stop (in-flight requests finish first)");

    shutdown_signal().await;
    eprintln!("shutting down: draining in-flight requests…");
    server.shutdown().await;
    eprintln!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// The report calendar and anomaly rules of `config`.
fn calendar(
    config: &Config,
) -> anyhow::Result<(
    crate::report::Calendar,
    patrolsync_proto::anomaly::AnomalyRules,
)> {
    let cal = config.reports.calendar().map_err(anyhow::Error::msg)?;
    Ok((cal, config.reports.anomaly_rules()))
}

/// The moment a report stands at: `--as-of` parsed in the report's zone, else now. A moment
/// still to come is refused: nothing is known of it yet.
fn moment(cal: &crate::report::Calendar, as_of: Option<&str>) -> anyhow::Result<i64> {
    let now = crate::now_ms();
    let Some(s) = as_of else {
        return Ok(now);
    };
    let ms = cal.moment(s).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        ms <= now,
        "--as-of {s:?} ({}) is in the future (now {}): a report can only stand at a moment \
         that has passed",
        cal.local(ms),
        cal.local(now)
    );
    Ok(ms)
}

/// Writes a report as `format`: `table` (the text), `json`, or `csv`/`xlsx` of `table`; to
/// `output` or stdout.
fn emit_report(
    text: &str,
    json: &impl serde::Serialize,
    table: &crate::report::Table,
    format: &str,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let text = match format {
        "table" => Some(text.to_owned()),
        "json" => Some(serde_json::to_string_pretty(json)? + "\n"),
        _ => None,
    };
    match (text, output) {
        (Some(t), None) => print!("{t}"),
        (Some(t), Some(p)) => {
            std::fs::write(&p, t).with_context(|| format!("write {}", p.display()))?
        }
        (None, out) => crate::report::write(table, format, out.as_deref())?,
    }
    Ok(())
}

fn print_imported(
    what: &str,
    file: &std::path::Path,
    check: bool,
    json: bool,
    done: &crate::grid_import::Imported,
) -> anyhow::Result<()> {
    if json {
        print_json(
            &serde_json::json!({ "file": file, "what": what, "rows": done.rows, "changed": done.changed, "checked_only": check }),
        )
    } else if check {
        println!(
            "{}: {} {what} rows are fine; nothing written (--check)",
            file.display(),
            done.rows
        );
        Ok(())
    } else {
        println!(
            "{}: {} {what} rows read, {} changed{}",
            file.display(),
            done.rows,
            done.changed,
            if done.changed == 0 {
                " (already up to date)"
            } else {
                ""
            }
        );
        Ok(())
    }
}

/// "3 min ago" style text for an age in ms.
fn ago_text(ms: i64) -> String {
    let secs = (ms.max(0) / 1000) as u64;
    format!(
        "{} ago",
        humantime::format_duration(Duration::from_secs(if secs > 3600 {
            secs / 60 * 60
        } else {
            secs
        }))
    )
}

/// What an admin command changes, for the audit log: its action and target (`None`: it only
/// reads).
fn audited(command: &AdminCommand) -> Option<(&'static str, String)> {
    let path = |p: &PathBuf| p.display().to_string();
    Some(match command {
        AdminCommand::SeedDemo { size, .. } => ("seed_demo", size.clone()),
        AdminCommand::Enroll {
            user, role, grid, ..
        } => (
            "enroll",
            format!("user {user} ({role}) cells {}", grid.join(",")),
        ),
        AdminCommand::Revoke { device, .. } => ("revoke", format!("device {device}")),
        AdminCommand::Grid {
            command: GridCommand::Import {
                file, check: false, ..
            },
        } => ("import_grid", path(file)),
        AdminCommand::Grid {
            command: GridCommand::Retire { code, .. },
        } => ("retire", code.clone()),
        AdminCommand::Checkpoints {
            command: ImportCommand::Import {
                file, check: false, ..
            },
        } => ("import_checkpoints", path(file)),
        AdminCommand::People {
            command: ImportCommand::Import {
                file, check: false, ..
            },
        } => ("import_people", path(file)),
        AdminCommand::Template {
            command: TemplateCommand::Publish {
                file, check: false, ..
            },
        } => ("template_publish", path(file)),
        AdminCommand::Assign {
            user,
            cells,
            remove,
            ..
        } => (
            if *remove { "unassign" } else { "assign" },
            format!("user {user} cells {}", cells.join(",")),
        ),
        AdminCommand::Export {
            ledger,
            period,
            cell,
            ..
        } => (
            "export",
            format!(
                "ledger {} {} of {}",
                ledger.name(),
                period.label,
                cell.as_deref().unwrap_or("(all)")
            ),
        ),
        AdminCommand::Admins { command } => return accounts::audited(command),
        _ => return None,
    })
}

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let config = Config::load(&overrides(&args.common))?;
    let sql: Arc<dyn crate::store::AdminStore> =
        Arc::new(crate::open_sql_store(&config).await.with_context(|| {
            format!("opening the database at {}", redact(&config.database_url()))
        })?);
    let audit = audited(&args.command);
    let result = run_admin(&config, sql.clone(), args.command).await;
    if let Some((action, target)) = audit {
        let outcome = match &result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("error: {e:#}"),
        };
        accounts::audit(sql.as_ref(), action, target, outcome).await;
    }
    result
}

async fn run_admin(
    config: &Config,
    sql: Arc<dyn crate::store::AdminStore>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let config = config.clone();
    let store: Arc<dyn Store> = sql.clone();
    match command {
        AdminCommand::Admins { command } => accounts::admins(sql.as_ref(), command).await?,
        AdminCommand::Audit { since, actor, json } => {
            let (cal, _) = calendar(&config)?;
            let since = since
                .as_deref()
                .map(|t| cal.moment(t))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            accounts::audit_log(sql.as_ref(), since, actor.as_deref(), json).await?;
        }
        AdminCommand::Grid {
            command: GridCommand::Import { file, check, json },
        } => {
            let done =
                crate::grid_import::import_cells(sql.as_ref(), &file, check, crate::now_ms())
                    .await?;
            print_imported("cells", &file, check, json, &done)?;
        }
        AdminCommand::Checkpoints {
            command: ImportCommand::Import { file, check, json },
        } => {
            let done =
                crate::grid_import::import_checkpoints(sql.as_ref(), &file, check, crate::now_ms())
                    .await?;
            print_imported("checkpoints", &file, check, json, &done)?;
        }
        AdminCommand::People {
            command: ImportCommand::Import { file, check, json },
        } => {
            let done =
                crate::grid_import::import_people(sql.as_ref(), &file, check, crate::now_ms())
                    .await?;
            print_imported("people", &file, check, json, &done)?;
        }
        AdminCommand::Grid {
            command: GridCommand::Retire { code, json },
        } => {
            let (cells, checkpoints) = sql.retire_cell(&code, crate::now_ms()).await?;
            if json {
                print_json(
                    &serde_json::json!({ "cell": code, "cells_retired": cells, "checkpoints_retired": checkpoints }),
                )?;
            } else if cells == 0 {
                println!("{code} was already retired; nothing changed");
            } else {
                println!(
                    "retired {code}: {cells} cell(s) and {checkpoints} checkpoint(s); their history stays, new records there are refused"
                );
            }
        }
        AdminCommand::Template {
            command: TemplateCommand::Publish { file, check, json },
        } => {
            let t = crate::templates::read(&file)?;
            if check {
                if json {
                    print_json(&crate::templates::json(&t))?;
                } else {
                    println!(
                        "{}: template {} with {} items is fine; nothing published (--check)",
                        file.display(),
                        t.id,
                        t.items.len()
                    );
                }
            } else {
                let (version, new) = sql.publish_template(&t, crate::now_ms()).await?;
                if json {
                    print_json(&serde_json::json!({ "id": t.id, "version": version, "new": new }))?;
                } else if new {
                    println!(
                        "published {} version {version} ({} items); devices get it at their next pull",
                        t.id,
                        t.items.len()
                    );
                } else {
                    println!(
                        "{} version {version} already has this content; nothing published",
                        t.id
                    );
                }
            }
        }
        AdminCommand::Template {
            command: TemplateCommand::List { json },
        } => {
            let all = sql.templates(None).await?;
            if json {
                print_json(&all.iter().map(crate::templates::json).collect::<Vec<_>>())?;
            } else if all.is_empty() {
                println!("no templates published; see `patrolsync admin template publish --help`");
            } else {
                for t in &all {
                    println!(
                        "{:<24} v{:<4} {:>3} items  {}",
                        t.id,
                        t.version,
                        t.items.len(),
                        t.name
                    );
                }
            }
        }
        AdminCommand::Template {
            command: TemplateCommand::Show { id, version, json },
        } => {
            let mut all = sql.templates(Some(&id)).await?;
            let t = match version {
                Some(v) => all.into_iter().find(|t| t.version == v),
                None => all.pop(),
            }
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "template {id}{} is not published",
                    version.map(|v| format!(" version {v}")).unwrap_or_default()
                )
            })?;
            if json {
                print_json(&crate::templates::json(&t))?;
            } else {
                println!("{} v{}: {}", t.id, t.version, t.name);
                for i in &t.items {
                    println!(
                        "  {:<16} {:<6} {}{}{}  {}",
                        i.id,
                        i.answer.as_str(),
                        if i.mandatory { "mandatory " } else { "" },
                        if i.photo_on_fail {
                            "photo-on-fail "
                        } else {
                            ""
                        },
                        i.hazard_category
                            .map(|c| format!("hazard:{c} "))
                            .unwrap_or_default(),
                        i.label
                    );
                }
            }
        }
        AdminCommand::Assign {
            user,
            cells,
            remove,
            json,
        } => {
            let changed = sql.assign(&user, &cells, remove, crate::now_ms()).await?;
            if json {
                print_json(&serde_json::json!({ "user": user, "changed": changed }))?;
            } else {
                println!(
                    "{user}: {changed} assignment(s) {}",
                    if remove { "removed" } else { "added" }
                );
            }
        }
        AdminCommand::Hazard {
            hazard: HazardCommand::Show { id, json },
        } => {
            let detail = inspect::hazard_detail(store.as_ref(), &id).await?;
            if json {
                print_json(&detail)?;
            } else {
                inspect::print_hazard(&detail);
            }
        }
        AdminCommand::Scope { device, json } => {
            let view = inspect::scope_of(sql.as_ref(), &device).await?;
            if json {
                print_json(&view)?;
            } else {
                inspect::print_scope(&view);
            }
        }
        AdminCommand::Report {
            report:
                ReportCommand::Compliance {
                    period,
                    cell,
                    as_of,
                    format,
                    output,
                },
        } => {
            let (cal, rules) = calendar(&config)?;
            let as_of = moment(&cal, as_of.as_deref())?;
            let report = crate::report::compliance(
                sql.as_ref(),
                &cal,
                &rules,
                &period,
                cell.as_deref(),
                as_of,
            )
            .await?;
            emit_report(&report.text(), &report, &report.table(), &format, output)?;
        }
        AdminCommand::Report {
            report:
                ReportCommand::Evaluation {
                    period,
                    cell,
                    as_of,
                    by,
                    format,
                    output,
                },
        } => {
            let (cal, rules) = calendar(&config)?;
            let as_of = moment(&cal, as_of.as_deref())?;
            let report = crate::report::evaluation(
                sql.as_ref(),
                &cal,
                &rules,
                &period,
                cell.as_deref(),
                by == "person",
                as_of,
            )
            .await?;
            let table = report.table();
            let text = format!(
                "evaluation by {} {} ({}), as of {}\n{}",
                report.by,
                report.period.label,
                report.time_zone,
                report.as_of.local,
                table.text()
            );
            emit_report(&text, &report, &table, &format, output)?;
        }
        AdminCommand::Export {
            ledger,
            period,
            cell,
            as_of,
            format,
            output,
        } => {
            let (cal, rules) = calendar(&config)?;
            let as_of = moment(&cal, as_of.as_deref())?;
            let table = crate::report::ledger(
                sql.as_ref(),
                &cal,
                &rules,
                ledger,
                &period,
                cell.as_deref(),
                as_of,
            )
            .await?;
            crate::report::write(&table, &format, output.as_deref())?;
            let about: Vec<String> = table
                .about
                .iter()
                .filter(|(k, _)| k != "how to verify")
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            eprintln!(
                "{} rows{}; {}",
                table.rows.len(),
                output
                    .as_ref()
                    .map(|p| format!(" written to {}", p.display()))
                    .unwrap_or_default(),
                about.join(", ")
            );
        }
        AdminCommand::SeedDemo { size, json } => {
            let started = std::time::Instant::now();
            let (cells, checkpoints, changed) = if size == "city" {
                crate::seed::seed_city(store.as_ref()).await?
            } else {
                crate::seed::seed_demo(store.as_ref()).await?
            };
            if json {
                print_json(
                    &serde_json::json!({ "grid_cells": cells, "checkpoints": checkpoints, "rows_changed": changed, "seconds": started.elapsed().as_secs_f64() }),
                )?;
            } else if size == "city" {
                println!(
                    "synthetic city ready: {cells} grid cells (S001…S115 → …-C1 → …-K1 → …-B1), {checkpoints} checkpoints; {changed} rows changed in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            } else {
                println!(
                    "demo city ready: {cells} grid cells (S1…S2 → S1-C1… → S1-C1-K1… → S1-C1-K1-B1…), {checkpoints} checkpoints (…-B1-P1, …-B1-P2); {changed} rows changed"
                );
            }
        }
        AdminCommand::Enroll {
            user,
            role,
            grid,
            agency,
            server,
            expires,
            json,
        } => {
            let pki =
                Pki::open_shared(&config.data_dir, &config.server_names, store.as_ref()).await?;
            let request = crate::enroll::IssueRequest {
                user,
                role,
                cells: grid,
                server,
                ttl: expires,
                agency,
            };
            let issued = crate::enroll::issue(store.as_ref(), &pki, &config, request).await?;
            if json {
                print_json(&issued)?;
            } else {
                println!("{}", issued.enrollment);
                eprintln!(
                    "one-time code for {} ({}, cells {}), valid until {}; on the device run:\n  patrolsync-device --state-dir DIR enroll --code '{}'",
                    issued.user,
                    issued.role,
                    issued.grid_cells.join(","),
                    issued.expires_at,
                    issued.enrollment
                );
            }
        }
        AdminCommand::Stats { json } => {
            let s = store.stats(crate::now_ms()).await?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "devices          {} ({} revoked)",
                    s.devices, s.devices_revoked
                );
                println!("users            {}", s.users);
                println!("grid cells       {}", s.grid_cells);
                println!("checkpoints      {}", s.checkpoints);
                println!(
                    "check-ins        {} ({} double taps, counted once)",
                    s.check_ins, s.double_taps
                );
                println!("hazards          {}", s.hazards);
                println!(
                    "photos           {} ({} referenced but missing)",
                    s.blobs, s.missing_photos
                );
                println!("rejected ops     {}", s.rejected_ops);
                println!("open enrollment  {}", s.open_enrollment_codes);
            }
        }
        AdminCommand::CheckIns {
            device,
            limit,
            json,
        } => {
            let rows = store.check_ins(device, limit).await?;
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        let c = &r.check_in;
                        serde_json::json!({
                            "id": c.id.to_string(), "checkpoint": c.checkpoint, "user": r.user, "device": r.device,
                            "device_seq": r.device_seq, "kind": c.kind.as_str(), "method": c.method.as_str(),
                            "outcome": c.outcome.as_str(), "device_time": time_text(c.device_time_ms),
                            "received_at": time_text(r.received_at_ms),
                            "fix": c.fix.as_ref().map(|f| serde_json::json!({"latitude": f.latitude, "longitude": f.longitude, "accuracy_m": f.accuracy_m, "mock": f.mock})),
                            "note": c.note,
                        })
                    })
                    .collect();
                print_json(&v)?;
            } else {
                for r in rows {
                    let c = &r.check_in;
                    println!(
                        "{}  {:<18} {:<10} {:<8} {}  {}",
                        time_text(c.device_time_ms),
                        c.checkpoint,
                        c.outcome,
                        c.method,
                        r.user,
                        c.note
                    );
                }
            }
        }
        AdminCommand::MissingPhotos { limit, json } => {
            let rows = store.missing_photos(None, limit).await?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no missing photos");
            } else {
                for m in rows {
                    println!(
                        "{}  {} {}  owed by device {} ({}) since {}",
                        m.sha256,
                        m.record_kind,
                        m.record_id,
                        m.device,
                        m.user,
                        time_text(m.since_ms)
                    );
                }
            }
        }
        AdminCommand::Devices { state, sort, json } => {
            let now = crate::now_ms();
            let (all, counts) =
                crate::health::fleet(store.device_statuses().await?, &config.health, now);
            let devices = crate::health::select_devices(all, state, None, &sort, None)
                .map_err(anyhow::Error::msg)?;
            if json {
                print_json(&devices)?;
            } else if devices.is_empty() && state.is_none() {
                println!("no devices enrolled yet; create a code with `patrolsync admin enroll`");
            } else {
                let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                println!("{}", summary.join(", "));
                println!(
                    "{:<36}  {:<8}  {:<12}  {:<10}  {:>6}  {:>7}  WHY",
                    "DEVICE", "STATE", "USER", "LAST SEEN", "OUTBOX", "PHOTOS"
                );
                for d in devices {
                    println!(
                        "{:<36}  {:<8}  {:<12}  {:<10}  {:>6}  {:>7}  {}",
                        d.status.id,
                        d.state,
                        d.status.user,
                        d.status
                            .last_seen_at_ms
                            .map(|t| ago_text(now - t))
                            .unwrap_or_else(|| "never".into()),
                        d.status.outbox_depth.unwrap_or(0),
                        d.status.missing_photos,
                        d.reasons.join("; ")
                    );
                }
            }
        }
        AdminCommand::Device { device, json } => {
            let detail = crate::health::device_detail(
                store.as_ref(),
                &config.health,
                &device,
                10,
                crate::now_ms(),
            )
            .await
            .context("see `patrolsync admin devices` for ids")?;
            let crate::health::DeviceDetail {
                device: d,
                history,
                rejections,
                conflicts,
                missing_photos: missing,
            } = &detail;
            if json {
                print_json(&detail)?;
            } else {
                let s = &d.status;
                let opt = |t: Option<i64>| t.map(time_text).unwrap_or_else(|| "never".into());
                println!("device        {} ({})", s.id, s.name);
                println!("user          {} ({})", s.user, s.role);
                println!(
                    "state         {}{}",
                    d.state,
                    if d.reasons.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", d.reasons.join("; "))
                    }
                );
                println!("enrolled      {}", time_text(s.enrolled_at_ms));
                if let Some(t) = s.revoked_at_ms {
                    println!("revoked       {}", time_text(t));
                }
                println!("last seen     {}", opt(s.last_seen_at_ms));
                println!("last push     {}", opt(s.last_push_at_ms));
                println!("last pull     {}", opt(s.last_pull_at_ms));
                println!(
                    "outbox        {} ops, oldest {} ms; acknowledged through op {}",
                    s.outbox_depth.unwrap_or(0),
                    s.oldest_pending_age_ms.unwrap_or(0),
                    s.acked_through
                );
                println!(
                    "photos        {} missing, {} bytes pending",
                    s.missing_photos,
                    s.pending_photo_bytes.unwrap_or(0)
                );
                println!(
                    "rejected      {} ops, {} conflicts",
                    s.rejected_ops, s.conflicts
                );
                if let (Some(at), Some(e)) = (s.last_error_at_ms, &s.last_error) {
                    println!("last error    {} at {}", e, time_text(at));
                }
                println!(
                    "link          RTT {} ms, {} bytes in, {} bytes out; clock offset {} ms",
                    s.rtt_ms.unwrap_or(0),
                    s.bytes_in,
                    s.bytes_out,
                    s.clock_offset_ms.unwrap_or(0)
                );
                println!(
                    "versions      app {}, SDK {}",
                    s.app_version.as_deref().unwrap_or("?"),
                    s.sdk_version.as_deref().unwrap_or("?")
                );
                for h in history.iter() {
                    println!(
                        "  hello {}  outbox {} (oldest {} ms)  photos {} B  RTT {} ms",
                        time_text(h.at_ms),
                        h.outbox_depth,
                        h.oldest_pending_age_ms,
                        h.pending_photo_bytes,
                        h.rtt_ms.unwrap_or(0)
                    );
                }
                for m in missing.iter() {
                    println!(
                        "  missing photo {} ({} {}) since {}",
                        m.sha256,
                        m.record_kind,
                        m.record_id,
                        time_text(m.since_ms)
                    );
                }
                for r in rejections.iter() {
                    println!(
                        "  rejected op {} at {}: {} {}: {}",
                        r.device_seq,
                        time_text(r.recorded_at_ms),
                        r.code,
                        r.field,
                        r.message
                    );
                }
                for c in conflicts.iter() {
                    println!(
                        "  conflict op {} at {}: {}",
                        c.device_seq,
                        time_text(c.recorded_at_ms),
                        c.message
                    );
                }
            }
        }
        AdminCommand::Revoke { device, json } => {
            let d = store.revoke_device(&device, crate::now_ms()).await?;
            if json {
                print_json(&d)?;
            } else {
                println!(
                    "revoked device {} ({}, {}); a running server closes its connections within a second",
                    d.id, d.user, d.name
                );
            }
        }
        AdminCommand::Rejections {
            device,
            limit,
            json,
        } => {
            let rows = store.rejections(device.as_deref(), limit).await?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no rejected ops");
            } else {
                for r in rows {
                    println!(
                        "{}  device {} seq {}  {} {}: {}",
                        time_text(r.recorded_at_ms),
                        r.device,
                        r.device_seq,
                        r.code,
                        r.field,
                        r.message
                    );
                }
            }
        }
        AdminCommand::Conflicts {
            device,
            limit,
            json,
        } => {
            let rows = store.conflicts(device.as_deref(), limit).await?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no conflicts");
            } else {
                for c in rows {
                    println!(
                        "{}  device {} seq {}  {}",
                        time_text(c.recorded_at_ms),
                        c.device,
                        c.device_seq,
                        c.message
                    );
                }
            }
        }
    }
    Ok(())
}

/// Hides a password in a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
