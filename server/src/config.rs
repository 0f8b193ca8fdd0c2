//! Server configuration: one typed struct with documented defaults, read from an optional TOML
//! file, then `PATROLSYNC_*` environment variables, then command-line flags (each later source
//! wins). A bad configuration fails with a clear message before any port is bound.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use patrolsync_i18n::{Lang, Text, message, text};
use serde::Deserialize;

/// `PATROLSYNC_CONFIG`: path of a TOML configuration file.
pub const ENV_CONFIG: &str = "PATROLSYNC_CONFIG";
/// `PATROLSYNC_DATA_DIR`: where the database, keys and the admin token live.
pub const ENV_DATA_DIR: &str = "PATROLSYNC_DATA_DIR";
/// `PATROLSYNC_DATABASE_URL`: `sqlite://…` or `postgres://…`.
pub const ENV_DATABASE_URL: &str = "PATROLSYNC_DATABASE_URL";
/// `PATROLSYNC_LISTEN`: UDP address for QUIC.
pub const ENV_LISTEN: &str = "PATROLSYNC_LISTEN";
/// `PATROLSYNC_ADMIN_LISTEN`: TCP address for admin HTTP.
pub const ENV_ADMIN_LISTEN: &str = "PATROLSYNC_ADMIN_LISTEN";
/// `PATROLSYNC_PUBLIC_ADDRESS`: the `host:port` devices should dial (put in enrollment codes).
pub const ENV_PUBLIC_ADDRESS: &str = "PATROLSYNC_PUBLIC_ADDRESS";
/// `PATROLSYNC_LOG`: log filter (tracing `EnvFilter` syntax), default `info`.
pub const ENV_LOG: &str = "PATROLSYNC_LOG";

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "patrolsync-data";
/// Default QUIC port.
pub const DEFAULT_QUIC_PORT: u16 = 4433;

/// The PostgreSQL writer counts allowed. A device's pushes go to writer `id mod n` and their
/// kept counts to shard `id mod 16`, so with `n` dividing 16 no two writers update one shard's
/// row (they would wait for each other's commits). At most 8: each writer holds one of the
/// pool's 16 connections while it commits, and pulls, uploads and the dashboard need the rest.
pub const INGEST_WRITERS: [usize; 4] = [1, 2, 4, 8];

/// Everything the server can be told. Every field has a default; see `deploy/` for examples.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for the SQLite database, the CA and server keys and `admin.token`.
    pub data_dir: PathBuf,
    /// Database URL; default `sqlite://<data_dir>/patrolsync.db`.
    pub database_url: Option<String>,
    /// Group-commit writers on PostgreSQL, each committing its devices' pushes in groups on a
    /// connection of its own (SQLite has one writer). More commit in parallel when PostgreSQL
    /// has cores to spare; fewer make larger groups, which cost PostgreSQL less per push when
    /// its CPU is the limit (on 2 cores shared with the server, 2 writers had half the p99 of 4
    /// at 5,000 pushes/s, and the same throughput). 1, 2, 4 or 8.
    pub ingest_writers: usize,
    /// UDP address for QUIC (default `[::]:4433`, dual-stack).
    pub listen: SocketAddr,
    /// TCP address for admin HTTP (default `127.0.0.1:4480`, loopback only).
    pub admin_listen: SocketAddr,
    /// The `host:port` devices dial, written into enrollment codes. Default: the listen address,
    /// with `127.0.0.1` standing in for an unspecified IP.
    pub public_address: Option<String>,
    /// Extra DNS names or IPs for the server certificate (localhost and loopback are always in).
    pub server_names: Vec<String>,
    /// How long an enrollment code stays valid (e.g. `24h`).
    #[serde(with = "duration_text")]
    pub enrollment_ttl: Duration,
    /// How long a shutdown waits for in-flight requests.
    #[serde(with = "duration_text")]
    pub drain_timeout: Duration,
    /// Partial photo uploads untouched for this long are deleted (checked at start and hourly).
    #[serde(with = "duration_text")]
    pub staging_expiry: Duration,
    /// Check-ins by the same user at the same checkpoint within this window are double taps:
    /// stored, marked `duplicate_of` the first, counted once.
    #[serde(with = "duration_text")]
    pub double_tap_window: Duration,
    /// A new hazard of the same category within this many metres of an open one (or at the
    /// same checkpoint) is linked to it as a possible duplicate.
    pub hazard_duplicate_radius_m: f64,
    /// Limits on what a peer may send.
    pub limits: Limits,
    /// Where photos are stored.
    pub photos: Photos,
    /// When a device counts as lagging, silent or erroring.
    pub health: Health,
    /// Compliance reports and ledgers: time zone, week start, cadence, anomaly thresholds.
    pub reports: Reports,
    /// Escalation of hazards past their deadline.
    pub escalation: Escalation,
    /// Offering tasks (help calls) to on-duty patrollers.
    pub dispatch: Dispatch,
    /// The public progress page (动态信息公开).
    pub public: Public,
}

/// The public progress page (动态信息公开): `/public/` and `/public/progress.json`, with no
/// token: per street and community, compliance and hazard closure this month and last.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Public {
    /// Serve it (on the admin HTTP address, and on `listen` if set). Default: off.
    pub enabled: bool,
    /// A TCP address of its own (e.g. `0.0.0.0:8080`) serving only the public page, so the
    /// admin HTTP can stay on loopback.
    pub listen: Option<SocketAddr>,
    /// The figures are recomputed at most this often, whoever asks.
    #[serde(with = "duration_text")]
    pub refresh: Duration,
    /// Counts below this are withheld (with their rate), so nobody can be singled out.
    pub min_count: u64,
}

impl Default for Public {
    fn default() -> Self {
        Public {
            enabled: false,
            listen: None,
            refresh: Duration::from_secs(5 * 60),
            min_count: 5,
        }
    }
}

/// Escalation of open hazards past their deadline: level 1 (the parent cell's managers) once
/// overdue, one level up per `interval`, capped at the top cell; not while a fix awaits
/// verification. The devices covering the cell escalated to are notified.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Escalation {
    /// Time between levels.
    #[serde(with = "duration_text")]
    pub interval: Duration,
    /// How often the server looks for overdue hazards.
    #[serde(with = "duration_text")]
    pub check_every: Duration,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            interval: Duration::from_secs(24 * 3600),
            check_every: Duration::from_secs(60),
        }
    }
}

/// Offering tasks to the cell's on-duty patrollers, nearest first: an offer not accepted (nor
/// declined) within `offer_timeout` goes to the next; when nobody is left, the task is escalated
/// to the cell's managers. The devices of the task's cell are notified of each step.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Dispatch {
    /// How long an offer waits for an answer.
    #[serde(with = "duration_text")]
    pub offer_timeout: Duration,
    /// How often the server moves tasks nobody has yet.
    #[serde(with = "duration_text")]
    pub check_every: Duration,
    /// A device is on duty only as long as it keeps syncing: one whose last sync on duty is
    /// older than this is offered nothing, and the position it sent is deleted.
    #[serde(with = "duration_text")]
    pub duty_ttl: Duration,
}

impl Default for Dispatch {
    fn default() -> Self {
        Dispatch {
            offer_timeout: Duration::from_secs(120),
            check_every: Duration::from_secs(1),
            duty_ttl: Duration::from_secs(30 * 60),
        }
    }
}

/// How compliance reports and ledgers count time and flag check-ins.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Reports {
    /// IANA time zone that days, weeks, months and quarters are in.
    pub time_zone: String,
    /// The day weeks start on (`monday` … `sunday`).
    pub week_start: String,
    /// Cadence of each grid level, big first: `daily`, `weekly`, `monthly` or `quarterly`.
    /// Levels past the list take its last entry; a checkpoint may set its own.
    pub cadence: Vec<String>,
    /// A device clock further than this from the server's flags its check-ins `clock_skew`.
    #[serde(with = "duration_text")]
    pub clock_skew: Duration,
    /// Faster than this between a user's consecutive check-ins flags `impossible_speed`, km/h.
    pub max_speed_kmh: f64,
    /// What this city calls its grid levels, big first (e.g. `["镇", "村", "组"]`); levels past
    /// the list, and every level when it is empty (the default), take the catalog's names:
    /// 街道, 社区, 小区, 楼栋 (Street, Community, Compound, Building in English).
    pub level_names: Vec<String>,
    /// How often each must-visit group (六必访) is visited, where not monthly:
    /// `{ elderly_alone = "weekly" }`. Groups: hardship, elderly_alone, disabled, migrant,
    /// unemployed, assisted.
    pub visit_cadence: std::collections::BTreeMap<String, String>,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            time_zone: "Asia/Shanghai".into(),
            week_start: "monday".into(),
            cadence: ["quarterly", "monthly", "weekly", "daily"]
                .map(String::from)
                .to_vec(),
            clock_skew: Duration::from_secs(5 * 60),
            max_speed_kmh: 120.0,
            level_names: Vec::new(),
            visit_cadence: Default::default(),
        }
    }
}

impl Reports {
    /// The calendar these settings describe; the error names the bad key.
    pub fn calendar(&self) -> Result<crate::calendar::Calendar, Text> {
        crate::calendar::Calendar::new(&self.time_zone, &self.week_start, &self.cadence)
    }

    /// The name of grid level `level` (1 = the top) in `lang`: the city's own where it set one
    /// (`level_names`), else the catalog's.
    pub fn level_name(&self, lang: patrolsync_i18n::Lang, level: u32) -> String {
        let own = (level as usize)
            .checked_sub(1)
            .and_then(|i| self.level_names.get(i))
            .filter(|n| !n.trim().is_empty());
        own.cloned()
            .or_else(|| lang.word("level", &level.to_string()))
            .unwrap_or_else(|| patrolsync_i18n::message!(lang, "level-other", level = level))
    }

    /// How often a household of `group` is visited: its `visit_cadence`, else monthly.
    pub fn visit_cadence(
        &self,
        group: patrolsync_proto::household::HouseholdGroup,
    ) -> Result<crate::calendar::Cadence, Text> {
        self.visit_cadence
            .get(group.as_str())
            .map_or(Ok(crate::calendar::Cadence::Monthly), |c| c.parse())
    }

    /// The anomaly thresholds.
    pub fn anomaly_rules(&self) -> patrolsync_proto::anomaly::AnomalyRules {
        patrolsync_proto::anomaly::AnomalyRules {
            clock_skew_ms: self.clock_skew.as_millis() as i64,
            max_speed_mps: self.max_speed_kmh / 3.6,
            ..Default::default()
        }
    }
}

/// Thresholds of the sync-health states admins see. A device is, in this order of precedence:
/// `revoked`; `new` when it enrolled within `silent_after` and has not said Hello, pushed or
/// failed yet; `silent` when it has not said Hello for `silent_after`; `erroring` when, within
/// `error_window`, a request of its failed and no push or pull succeeded since, or an op of its
/// was refused and no later push succeeded; `lagging` when its oldest unsent op (aged from its
/// last Hello), or a photo it owes, is older than `lagging_after`; else `healthy`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Health {
    /// How old the oldest unsent op or an owed photo may get before the device is lagging.
    #[serde(with = "duration_text")]
    pub lagging_after: Duration,
    /// How long without a Hello before the device is silent.
    #[serde(with = "duration_text")]
    pub silent_after: Duration,
    /// How recent a failure must be to make the device erroring.
    #[serde(with = "duration_text")]
    pub error_window: Duration,
    /// How often the fleet's ingest and backlog are sampled for the dashboard's chart.
    #[serde(with = "duration_text")]
    pub sample_every: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            lagging_after: Duration::from_secs(30 * 60),
            silent_after: Duration::from_secs(24 * 3600),
            error_window: Duration::from_secs(3600),
            sample_every: Duration::from_secs(10),
        }
    }
}

/// Photo storage backends.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PhotoBackend {
    /// Files under `data_dir/blobs` (one node, or a shared filesystem).
    #[default]
    Fs,
    /// An S3-compatible object store (several nodes share it).
    S3,
}

/// Where photos are stored. For `s3`, credentials come from here or, when absent, from the usual
/// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_REGION` / `AWS_ENDPOINT` environment.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Photos {
    /// `fs` (default) or `s3`.
    pub backend: PhotoBackend,
    /// Directory of the `fs` backend; default `data_dir/blobs`. Nodes sharing one filesystem
    /// (e.g. NFS, with working file locks) point at the same directory.
    pub path: Option<PathBuf>,
    /// S3 bucket (required for `s3`).
    pub bucket: Option<String>,
    /// S3 endpoint URL, for S3-compatible stores other than AWS (e.g. `http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Key prefix inside the bucket, so several deployments can share one bucket.
    pub prefix: String,
    /// Allow a plain `http://` endpoint (only for a store on a trusted network).
    pub allow_http: bool,
    /// S3 access key id (prefer the environment).
    pub access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment).
    pub secret_access_key: Option<String>,
}

/// Limits enforced on peers. Each has a sane default.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest frame body accepted, bytes.
    pub max_frame_bytes: u32,
    /// Most ops in one push.
    pub max_ops_per_push: u32,
    /// Largest photo, bytes.
    pub max_blob_bytes: u64,
    /// Concurrent requests (bidirectional streams) per connection.
    pub max_concurrent_streams: u32,
    /// Live connections one device may hold; more are closed with the limit code.
    pub max_connections_per_device: u32,
    /// Pushes per device per second (token bucket); beyond it the push is refused, retryable.
    pub pushes_per_second: f64,
    /// Burst allowance of the push token bucket.
    pub push_burst: u32,
    /// Above this many handshakes in progress, unvalidated clients must first answer a QUIC
    /// Retry (one round trip) before the server spends CPU on them.
    pub retry_above_handshakes: u32,
    /// A device's request (or photo upload) that sends nothing for this long is cut off, so a
    /// stalled phone frees its stream; a slow link may take as long as it needs while bytes keep
    /// coming. A peer without a certificate must send its whole request within this time, so a
    /// stranger cannot hold streams open by trickling bytes (slowloris).
    #[serde(with = "duration_text")]
    pub idle_request_timeout: Duration,
    /// Other requests (Hello, Pull, photo status, uploads and downloads) per device per second;
    /// beyond it the request is refused, retryable.
    pub requests_per_second: f64,
    /// Burst allowance of the request budget (a bootstrap pages through the log).
    pub request_burst: u32,
    /// Enrollment attempts per source address per minute (codes are 100 bits; this keeps an
    /// address from spending the server's signing work).
    pub enrolls_per_minute_per_address: f64,
    /// Connections without a device certificate (they may only enroll) the node holds at once.
    pub unenrolled_connections: u32,
    /// Of those, from one source address.
    pub unenrolled_connections_per_address: u32,
    /// Photo bytes one device may upload per day, each upload counting its whole photo (a
    /// resume has the server read back what it holds); uploads beyond it are refused,
    /// retryable when the budget has refilled.
    pub photo_bytes_per_day: u64,
    /// Bytes of one device's refused ops the refusal log keeps per day; beyond it refusals are
    /// still answered and recorded, without the op's payload.
    pub refused_bytes_per_day: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: patrolsync_proto::frame::DEFAULT_MAX_FRAME_BYTES,
            max_ops_per_push: 1000,
            max_blob_bytes: 16 << 20,
            max_concurrent_streams: 32,
            max_connections_per_device: 4,
            pushes_per_second: 20.0,
            push_burst: 40,
            retry_above_handshakes: 64,
            idle_request_timeout: Duration::from_secs(30),
            requests_per_second: 50.0,
            request_burst: 200,
            enrolls_per_minute_per_address: 10.0,
            unenrolled_connections: 512,
            unenrolled_connections_per_address: 16,
            photo_bytes_per_day: 1 << 30,
            refused_bytes_per_day: 16 << 20,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            database_url: None,
            ingest_writers: 2,
            listen: SocketAddr::from(([0u16; 8], DEFAULT_QUIC_PORT)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 4480)),
            public_address: None,
            server_names: Vec::new(),
            enrollment_ttl: Duration::from_secs(24 * 3600),
            drain_timeout: Duration::from_secs(10),
            staging_expiry: Duration::from_secs(7 * 24 * 3600),
            double_tap_window: Duration::from_secs(120),
            hazard_duplicate_radius_m: 50.0,
            limits: Limits::default(),
            photos: Photos::default(),
            health: Health::default(),
            reports: Reports::default(),
            escalation: Escalation::default(),
            dispatch: Dispatch::default(),
            public: Public::default(),
        }
    }
}

/// Values given on the command line or in the environment; `None` means "not given".
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--config` / `PATROLSYNC_CONFIG`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir` / `PATROLSYNC_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `PATROLSYNC_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--listen` / `PATROLSYNC_LISTEN`.
    pub listen: Option<SocketAddr>,
    /// `--admin-listen` / `PATROLSYNC_ADMIN_LISTEN`.
    pub admin_listen: Option<SocketAddr>,
    /// `--public-address` / `PATROLSYNC_PUBLIC_ADDRESS`.
    pub public_address: Option<String>,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said, with line and column.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("invalid configuration: {0}")]
    Invalid(Text),
}

impl ConfigError {
    /// The error in `lang`, for a person; `Display` gives it in English.
    pub fn text(&self, lang: Lang) -> String {
        match self {
            ConfigError::Read { path, source } => {
                message!(lang, "cfg-read", path = path.display(), error = source)
            }
            ConfigError::Parse { path, message } => {
                message!(lang, "cfg-parse", path = path.display(), error = message)
            }
            ConfigError::Invalid(t) => message!(lang, "cfg-invalid", problem = t.in_lang(lang)),
        }
    }
}

impl Config {
    /// Builds the configuration from defaults, the optional file, and the overrides.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let mut cfg = match &o.config_file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = &o.data_dir {
            cfg.data_dir = v.clone();
        }
        if let Some(v) = &o.database_url {
            cfg.database_url = Some(v.clone());
        }
        if let Some(v) = o.listen {
            cfg.listen = v;
        }
        if let Some(v) = o.admin_listen {
            cfg.admin_listen = v;
        }
        if let Some(v) = &o.public_address {
            cfg.public_address = Some(v.clone());
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_frame_bytes < 1024 {
            return Err(ConfigError::Invalid(text!(
                "cfg-at-least",
                key = "limits.max_frame_bytes",
                value = l.max_frame_bytes,
                min = 1024
            )));
        }
        if l.max_connections_per_device == 0
            || l.pushes_per_second.is_nan()
            || l.pushes_per_second <= 0.0
            || l.push_burst == 0
        {
            return Err(ConfigError::Invalid(text!(
                "cfg-above-zero",
                keys = "limits.max_connections_per_device, limits.pushes_per_second, limits.push_burst"
            )));
        }
        if l.max_ops_per_push == 0 || l.max_concurrent_streams == 0 {
            return Err(ConfigError::Invalid(text!(
                "cfg-above-zero",
                keys = "limits.max_ops_per_push, limits.max_concurrent_streams"
            )));
        }
        if let Some(url) = &self.database_url
            && !["sqlite:", "postgres:", "postgresql:"]
                .iter()
                .any(|p| url.starts_with(p))
        {
            return Err(ConfigError::Invalid(text!("cfg-database-url", value = url)));
        }
        if !INGEST_WRITERS.contains(&self.ingest_writers) {
            return Err(ConfigError::Invalid(text!(
                "cfg-ingest-writers",
                value = self.ingest_writers
            )));
        }
        if !(0.0..=10_000.0).contains(&self.hazard_duplicate_radius_m) {
            return Err(ConfigError::Invalid(text!(
                "cfg-between",
                key = "hazard_duplicate_radius_m",
                value = self.hazard_duplicate_radius_m,
                min = 0,
                max = 10_000
            )));
        }
        self.reports.calendar().map_err(ConfigError::Invalid)?;
        for (group, cadence) in &self.reports.visit_cadence {
            if group
                .parse::<patrolsync_proto::household::HouseholdGroup>()
                .is_err()
            {
                return Err(ConfigError::Invalid(text!(
                    "cfg-visit-group",
                    value = group
                )));
            }
            cadence
                .parse::<crate::calendar::Cadence>()
                .map_err(ConfigError::Invalid)?;
        }
        if self.reports.max_speed_kmh.is_nan() || self.reports.max_speed_kmh <= 0.0 {
            return Err(ConfigError::Invalid(text!(
                "cfg-above-zero",
                keys = "reports.max_speed_kmh"
            )));
        }
        if self.escalation.interval < Duration::from_secs(1)
            || self.escalation.check_every < Duration::from_millis(100)
        {
            return Err(ConfigError::Invalid(text!("cfg-escalation")));
        }
        if self.dispatch.offer_timeout < Duration::from_secs(1)
            || self.dispatch.check_every < Duration::from_millis(100)
            || self.dispatch.duty_ttl < Duration::from_secs(60)
        {
            return Err(ConfigError::Invalid(text!("cfg-dispatch")));
        }
        if self.public.refresh < Duration::from_secs(10) {
            return Err(ConfigError::Invalid(text!(
                "cfg-at-least",
                key = "public.refresh",
                value = humantime::format_duration(self.public.refresh),
                min = "10s"
            )));
        }
        if self.public.min_count == 0 {
            return Err(ConfigError::Invalid(text!(
                "cfg-above-zero",
                keys = "public.min_count"
            )));
        }
        let h = &self.health;
        if h.sample_every < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(text!(
                "cfg-at-least",
                key = "health.sample_every",
                value = humantime::format_duration(h.sample_every),
                min = "1s"
            )));
        }
        if h.silent_after.is_zero() || h.lagging_after.is_zero() {
            return Err(ConfigError::Invalid(text!(
                "cfg-above-zero",
                keys = "health.silent_after, health.lagging_after"
            )));
        }
        if self.photos.backend == PhotoBackend::S3
            && self.photos.bucket.as_deref().unwrap_or("").is_empty()
        {
            return Err(ConfigError::Invalid(text!("cfg-s3-bucket")));
        }
        if self.enrollment_ttl < Duration::from_secs(60) {
            return Err(ConfigError::Invalid(text!(
                "cfg-at-least",
                key = "enrollment_ttl",
                value = humantime::format_duration(self.enrollment_ttl),
                min = "1m"
            )));
        }
        Ok(())
    }

    /// The database URL in force: the configured one, or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("patrolsync.db").display()
            ),
        }
    }

    /// The `host:port` put into enrollment codes.
    pub fn public_address(&self) -> String {
        if let Some(a) = &self.public_address {
            return a.clone();
        }
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        addr.to_string()
    }
}

mod duration_text {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn levels_are_named_by_the_city_else_by_the_catalog() {
        use patrolsync_i18n::Lang;
        let mut r = Reports::default();
        assert_eq!(r.level_name(Lang::ZhCn, 1), "街道");
        assert_eq!(r.level_name(Lang::ZhCn, 4), "楼栋");
        assert_eq!(r.level_name(Lang::En, 2), "Community");
        assert_eq!(r.level_name(Lang::ZhCn, 6), "第 6 级网格");
        r.level_names = vec!["镇".into(), "村".into()];
        assert_eq!(r.level_name(Lang::ZhCn, 1), "镇");
        assert_eq!(
            r.level_name(Lang::En, 2),
            "村",
            "the city's own names in every language"
        );
        assert_eq!(
            r.level_name(Lang::ZhCn, 3),
            "小区",
            "past the list: the catalog's"
        );
    }

    use super::*;

    #[test]
    fn bad_report_settings_name_the_key() {
        let r = Reports {
            time_zone: "Mars/Olympus".into(),
            ..Reports::default()
        };
        assert!(
            r.calendar()
                .expect_err("zone")
                .to_string()
                .contains("reports.time_zone")
        );
        let r = Reports {
            week_start: "someday".into(),
            ..Reports::default()
        };
        assert!(
            r.calendar()
                .expect_err("day")
                .to_string()
                .contains("reports.week_start")
        );
        let r = Reports {
            cadence: vec!["hourly".into()],
            ..Reports::default()
        };
        assert!(
            r.calendar()
                .expect_err("cadence")
                .to_string()
                .contains("hourly")
        );
    }

    #[test]
    fn file_then_overrides() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:5000\"\nenrollment_ttl = \"2h\"\n[limits]\nmax_ops_per_push = 10\n",
        )
        .expect("write");
        let cfg = Config::load(&Overrides {
            config_file: Some(path),
            admin_listen: Some("127.0.0.1:9000".parse().expect("addr")),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(cfg.listen, "127.0.0.1:5000".parse().expect("addr"));
        assert_eq!(cfg.admin_listen, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(cfg.enrollment_ttl, Duration::from_secs(7200));
        assert_eq!(cfg.limits.max_ops_per_push, 10);
        assert_eq!(
            cfg.limits.max_frame_bytes,
            Limits::default().max_frame_bytes
        );
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listn = \"127.0.0.1:5000\"\n").expect("write");
        let err = Config::load(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .expect_err("typo");
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn example_config_in_deploy_is_valid_and_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/patrolsync.example.toml");
        let cfg = Config::from_file(&path).expect("example parses");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn s3_photos_without_a_bucket_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[photos]\nbackend = \"s3\"\n").expect("write");
        let err = Config::load(&Overrides {
            config_file: Some(path),
            ..Default::default()
        })
        .expect_err("no bucket");
        assert!(err.to_string().contains("photos.bucket"), "{err}");
    }

    #[test]
    fn ingest_writers_other_than_1_2_4_8_are_refused_naming_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        for (n, ok) in [
            (0, false),
            (1, true),
            (2, true),
            (3, false),
            (4, true),
            (8, true),
            (16, false),
        ] {
            std::fs::write(&path, format!("ingest_writers = {n}\n")).expect("write");
            let loaded = Config::load(&Overrides {
                config_file: Some(path.clone()),
                ..Default::default()
            });
            match (loaded, ok) {
                (Ok(cfg), true) => assert_eq!(cfg.ingest_writers, n),
                (Err(e), false) => assert_eq!(
                    e.to_string(),
                    format!(
                        "invalid configuration: ingest_writers = {n} must be 1, 2, 4 or 8 \
                         (a divisor of the 16 count shards, so no two writers share one)"
                    )
                ),
                (other, _) => panic!("ingest_writers = {n}: {other:?}"),
            }
        }
    }

    #[test]
    fn unspecified_listen_becomes_loopback_in_enrollment() {
        let cfg = Config::default();
        assert_eq!(cfg.public_address(), "127.0.0.1:4433");
    }
}
