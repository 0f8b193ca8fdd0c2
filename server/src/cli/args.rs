//! The command line: every command, subcommand and flag (clap).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use patrolsync_i18n::cli::one_of;
use patrolsync_proto::Role;
use patrolsync_proto::geo::Datum;
use patrolsync_proto::hazard::Agency;

use crate::health::HealthState;

use super::*;
use crate::config::*;

/// patrolsync: the sync server for fire-safety grid patrols.
#[derive(Debug, Parser)]
#[command(name = "patrolsync", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr: `text` for people, `json` (one object per line, with the span's
    /// device id and RPC) for log collectors. The filter is PATROLSYNC_LOG (default `info` for
    /// `serve`, `warn,sqlx=error` for admin commands).
    #[arg(long, env = "PATROLSYNC_LOG_FORMAT", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// The language of what it writes for people: `zh-CN` (ledgers as the official forms,
    /// reports and messages in Chinese) or `en` (English; ledgers with machine column names and
    /// codes). Default: from LC_ALL, LC_MESSAGES or LANG, and `zh-CN` when they name no
    /// language. `--json` output is the same in both.
    #[arg(long, global = true, value_name = "LANG")]
    pub lang: Option<String>,
    #[command(subcommand)]
    pub(super) command: Command,
}

impl Cli {
    /// Whether this runs the server (`serve`), rather than an admin command.
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Run the server: QUIC for devices, HTTP for admins. Zero configuration needed.
    Serve(ServeArgs),
    /// Admin tasks against a data dir or database (work while the server runs).
    Admin(AdminArgs),
}

/// Where the configuration, data and database are.
#[derive(Debug, Args)]
pub(super) struct Common {
    /// TOML configuration file.
    #[arg(long, env = ENV_CONFIG, global = true)]
    pub(super) config: Option<PathBuf>,
    /// Data directory (database, keys, admin.token). Default ./patrolsync-data.
    #[arg(long, env = ENV_DATA_DIR, global = true)]
    pub(super) data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default SQLite in the data dir.
    #[arg(long, env = ENV_DATABASE_URL, global = true)]
    pub(super) database_url: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    #[command(flatten)]
    pub(super) common: Common,
    /// UDP address for QUIC. Default [::]:4433.
    #[arg(long, env = ENV_LISTEN)]
    pub(super) listen: Option<SocketAddr>,
    /// TCP address for admin HTTP. Default 127.0.0.1:4480.
    #[arg(long, env = ENV_ADMIN_LISTEN)]
    pub(super) admin_listen: Option<SocketAddr>,
    /// HOST:PORT devices dial, written into enrollment codes.
    #[arg(long, env = ENV_PUBLIC_ADDRESS)]
    pub(super) public_address: Option<String>,
}

#[derive(Debug, Args)]
pub(super) struct AdminArgs {
    #[command(flatten)]
    pub(super) common: Common,
    #[command(subcommand)]
    pub(super) command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub(super) enum AdminCommand {
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
        /// Role: patroller, grid_manager, agency, admin, or property_company / community (the
        /// parties routing rules send hazards to; they take no --grid).
        #[arg(long, value_parser = one_of(Role::ALL, |v: &Role| v.as_str()))]
        role: Role,
        /// Grid cell codes assigned to the user (comma-separated or repeated).
        #[arg(long = "grid", value_delimiter = ',')]
        grid: Vec<String>,
        /// For --role agency: police_station or fire_brigade.
        #[arg(long, value_parser = one_of(Agency::ALL, |v: &Agency| v.as_str()))]
        agency: Option<Agency>,
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
    /// Devices and their sync health: healthy, new, lagging, silent, erroring or revoked, and why
    /// (thresholds in the `[health]` config section). Worst first.
    Devices {
        /// Only devices in this state.
        #[arg(long, value_parser = one_of(&HealthState::ALL, |v: &HealthState| v.as_str()))]
        state: Option<HealthState>,
        /// Order: state, last_seen, outbox, oldest_pending, missing_photos, rejected, user, enrolled.
        #[arg(long, default_value = "state", value_parser = ["state", "last_seen", "outbox", "oldest_pending", "missing_photos", "rejected", "user", "enrolled"])]
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
    /// The key-unit register (重点单位户籍化管理): `import FILE` (CSV or XLSX), `list`,
    /// `show CODE` (the unit's file: inspections and hazards).
    Units {
        /// What to do.
        #[command(subcommand)]
        command: UnitCommand,
    },
    /// The must-visit register (六必访): `import FILE` (CSV or XLSX), `remove CODE…`, `list`.
    Households {
        /// What to do.
        #[command(subcommand)]
        command: HouseholdCommand,
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
    /// Tasks (dispatch): `create --cell C --kind help_call …` (offered to the cell's on-duty
    /// patrollers nearest first), `list [--open] [--cell C]`, `show ID`.
    Task {
        /// What to do.
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Routing rules (隐患直报): `import FILE` (TOML: the next version), `list`, `check --cell
    /// C --category K` (which rule a hazard there hits, or that it falls back to the managers).
    Routing {
        /// What to do.
        #[command(subcommand)]
        command: RoutingCommand,
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
        /// `inspections`, `patrols`, `hazard-disposal`, `hazard-transfer`, `visits` or
        /// `help-calls` (求助响应记录).
        ledger: crate::report::Ledger,
        /// Period: 2026-11 (month), 2026-Q4 (quarter), 2026-11-23 (day) or
        /// 2026-11-23..2026-11-29 (days, both included). Days are in `reports.time_zone`.
        #[arg(long)]
        period: crate::report::Period,
        /// Root of the subtree (a cell code). Default: the whole grid.
        #[arg(long, conflicts_with = "unit")]
        cell: Option<String>,
        /// One key unit's ledger (单位台账): only the check-ins at its checkpoints and the
        /// hazards reported there.
        #[arg(long)]
        unit: Option<String>,
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
pub(super) enum GridCommand {
    /// Import cells from CSV (`code,parent,level,name[,boundary]`, boundary as WKT or GeoJSON
    /// geometry) or a GeoJSON FeatureCollection (properties code, parent, level, name; polygon
    /// geometry). Checked whole first: a bad row is reported by line and column and nothing is
    /// applied. Importing the same file again changes nothing.
    Import {
        /// The file (.csv or .geojson).
        file: PathBuf,
        /// The datum of the boundaries' coordinates: wgs84 (GPS), gcj02 (Amap/Gaode,
        /// Tencent) or bd09 (Baidu). Stored as WGS-84; outside mainland China nothing shifts.
        #[arg(long, default_value = "wgs84", value_parser = one_of(Datum::ALL, |v: &Datum| v.as_str()))]
        crs: Datum,
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

/// Task commands.
#[derive(Debug, Subcommand)]
pub(super) enum TaskCommand {
    /// Make a task for a place in a cell; the server offers it to the cell's on-duty
    /// patrollers nearest first (by their last position), and tells the cell's managers when
    /// nobody takes it.
    Create {
        /// The cell.
        #[arg(long)]
        cell: String,
        /// help_call, inspect, verify_fix or visit.
        #[arg(long, value_parser = one_of(patrolsync_proto::task::TaskKind::ALL, |v: &patrolsync_proto::task::TaskKind| v.as_str()))]
        kind: patrolsync_proto::task::TaskKind,
        /// normal or urgent.
        #[arg(long, default_value = "normal", value_parser = one_of(patrolsync_proto::task::Urgency::ALL, |v: &patrolsync_proto::task::Urgency| v.as_str()))]
        urgency: patrolsync_proto::task::Urgency,
        /// The household it is for (六必访 register).
        #[arg(long)]
        household: Option<String>,
        /// The key unit it is for.
        #[arg(long)]
        unit: Option<String>,
        /// A checkpoint at the place (arriving is a check-in there).
        #[arg(long)]
        checkpoint: Option<String>,
        /// Latitude of the place (WGS-84).
        #[arg(long, requires = "lon", allow_hyphen_values = true)]
        lat: Option<f64>,
        /// Longitude of the place.
        #[arg(long, requires = "lat", allow_hyphen_values = true)]
        lon: Option<f64>,
        /// What is wanted.
        #[arg(long, default_value = "")]
        description: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Tasks, newest first.
    List {
        /// Only those still to be done.
        #[arg(long)]
        open: bool,
        /// Only those in this cell's subtree.
        #[arg(long)]
        cell: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One task and its log: each step once, in order, with its conflict.
    Show {
        /// Task id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Routing rule tasks.
#[derive(Debug, Subcommand)]
pub(super) enum RoutingCommand {
    /// Publish a rules file (TOML: `[[rule]]` with cell, categories and one party — user,
    /// agency or unit = true — and `[reminders]` before/after the deadline) as the next
    /// version, unless it equals the rules in force. Reports that arrive from then on are
    /// routed by it; earlier ones keep their party.
    Import {
        /// The file (.toml).
        file: PathBuf,
        /// Check the file against the grid and the people; publish nothing.
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The rules in force (or every version with --all).
    List {
        /// Every published version, oldest first.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Which rule a hazard of a category reported in a cell (at a checkpoint) would be routed
    /// by, and to whom; or that no rule holds and it goes to the cell's managers alone.
    Check {
        /// The cell code.
        #[arg(long)]
        cell: String,
        /// The hazard category (blocked_fire_lane, electrical, …).
        #[arg(long)]
        category: String,
        /// The checkpoint it is reported at (for rules that route to a key unit).
        #[arg(long)]
        checkpoint: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Checklist template tasks.
#[derive(Debug, Subcommand)]
pub(super) enum TemplateCommand {
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

/// The key-unit register.
#[derive(Debug, Subcommand)]
pub(super) enum UnitCommand {
    /// Import units from CSV or XLSX (the first sheet): `code,cell,kind,name,address,
    /// responsible_person,responsible_phone,risk,self_check_date,checkpoints`, or the same
    /// columns headed in Chinese (编码,网格,类型,名称,地址,责任人,联系电话,风险等级,
    /// 四个能力自评日期,检查点). kind: rental_housing, small_venue, school, hospital,
    /// high_rise, market, warehouse, drug_handling, other (or 出租房屋, 九小场所 …); risk: low,
    /// medium, high (or 低, 中, 高; empty is medium); self_check_date: YYYY-MM-DD;
    /// checkpoints: codes in the unit's cell or below it, separated by `;`. Checked whole
    /// first: a bad row is reported by line and column and nothing is applied. Units reach the
    /// devices of their cells at the next sync.
    Import {
        /// The file (.csv or .xlsx).
        file: PathBuf,
        /// Check the file and report problems; write nothing.
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The units in a cell's subtree (default: all), by code.
    List {
        /// Only units in this cell or below it.
        #[arg(long)]
        cell: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A unit's file: its details, its latest inspections (check-ins at its checkpoints) and
    /// its hazards with their state.
    Show {
        /// Unit code.
        code: String,
        /// How many check-ins and hazards to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The must-visit register.
#[derive(Debug, Subcommand)]
pub(super) enum HouseholdCommand {
    /// Import households from CSV or XLSX (the first sheet): `code,cell,address,group,
    /// contact_name,contact_phone`, or headed in Chinese (编码,网格,地址,人群类别,联系人,
    /// 联系电话). group: hardship, elderly_alone, disabled, migrant, unemployed, assisted (or
    /// 困难群众, 独居老人, 残疾家庭, 流动人口, 失业人员, 重点帮扶人员). Keep only what the visits
    /// need: households reach the devices of users assigned their cells, never agencies.
    /// Checked whole first: a bad row is reported by line and column and nothing is applied.
    Import {
        /// The file (.csv or .xlsx).
        file: PathBuf,
        /// Check the file and report problems; write nothing.
        #[arg(long)]
        check: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Take households off the register (no longer in a must-visit group, moved away): their
    /// address and contact are erased, devices drop them at their next sync, and no visit is
    /// owed after. The code, cell and group stay for the visits already made.
    Remove {
        /// Household codes.
        #[arg(required = true)]
        codes: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The households in a cell's subtree (default: all), by code.
    List {
        /// Only households in this cell or below it.
        #[arg(long)]
        cell: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Importing a file.
#[derive(Debug, Subcommand)]
pub(super) enum ImportCommand {
    /// Import from a file. Checkpoints: CSV `code,cell,name[,tag_uid,latitude,longitude,
    /// radius_m,cadence]` or GeoJSON points with those properties. People: CSV
    /// `name,role[,agency,cells]` (cells separated by `;`; they replace the person's
    /// assignments). Checked whole first: a bad row is reported by line and column and
    /// nothing is applied. Importing the same file again changes nothing.
    Import {
        /// The file.
        file: PathBuf,
        /// Checkpoints: the datum of their coordinates: wgs84 (GPS), gcj02 (Amap/Gaode,
        /// Tencent) or bd09 (Baidu). Stored as WGS-84; outside mainland China nothing shifts.
        #[arg(long, default_value = "wgs84", value_parser = one_of(Datum::ALL, |v: &Datum| v.as_str()))]
        crs: Datum,
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
pub(super) enum HazardCommand {
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
pub(super) enum ReportCommand {
    /// Must-visit households (六必访): per cell and its subtree, the visits due in the period
    /// (each household once per slot of its group's cadence, monthly unless
    /// `reports.visit_cadence` says otherwise), visited, not visited (nobody home, …), missed,
    /// still open, and the rate visited / due; the counts per group in the notes.
    Visits {
        /// Period: 2026-11 (month), 2026-Q4 (quarter), 2026-11-23 (day) or
        /// 2026-11-23..2026-11-29 (days, both included). Days are in `reports.time_zone`.
        #[arg(long)]
        period: crate::report::Period,
        /// Root of the subtree (a cell code). Default: the whole grid.
        #[arg(long)]
        cell: Option<String>,
        /// The moment the report stands at (see `report compliance --as-of`). Default: now.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// `table`, `csv`, `xlsx` or `json`.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "xlsx", "json"])]
        format: String,
        /// Output file (required for xlsx; others go to stdout without it).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Task response (派单响应): per street, the tasks made in the period by where they stand,
    /// and the median and 90th percentile minutes to accept, arrive and complete.
    Tasks {
        /// Period: 2026-11 (month), 2026-Q4 (quarter), 2026-11-23 (day) or
        /// 2026-11-23..2026-11-29 (days, both included). Days are in `reports.time_zone`.
        #[arg(long)]
        period: crate::report::Period,
        /// Root of the subtree (a cell code). Default: the whole grid.
        #[arg(long)]
        cell: Option<String>,
        /// The moment the report stands at (see `report compliance --as-of`). Default: now.
        #[arg(long, value_name = "TIME")]
        as_of: Option<String>,
        /// `table`, `csv`, `xlsx` or `json`.
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "xlsx", "json"])]
        format: String,
        /// Output file (required for xlsx; others go to stdout without it).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
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
