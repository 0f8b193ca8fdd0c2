//! The patrolsync device SDK: what a patrol app embeds.
//!
//! - [`Client::record_checkin`] writes the check-in to the local SQLite outbox and returns; it
//!   never touches the network, so a patroller never waits on a bad link.
//! - [`Client::sync`] pushes the outbox in batches over QUIC, several batches in flight, and
//!   removes each op only when the server has answered for it (applied, duplicate or
//!   rejected). Replays are harmless: the server applies each op exactly once.
//! - [`Client::status`] says what is pending, since when, and how the last sync went.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use patrolsync_sdk::{Client, ClientConfig, NewCheckIn};
//! use patrolsync_proto::CheckInOutcome;
//! let client = Client::open("phone-state", ClientConfig::default()).await?;
//! client.enroll("patrolsync://sync.example.org:4433/enroll?code=…&ca=…", None, "alice's phone").await?;
//! client.record_checkin(NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected)).await?;
//! let summary = client.sync().await?;
//! println!("{} applied, {} still pending", summary.applied, summary.remaining);
//! # Ok(()) }
//! ```

mod engine;
mod hazards;
mod photos;
mod scope;
mod templates;
mod tls;
mod transport;

pub use engine::{EngineOptions, SyncEngine, SyncEvent};
pub use hazards::{Escalation, HazardView, NewHazard, Transition};
pub use photos::PhotoStatus;
pub use scope::{CellView, ScopeNotice};
pub use templates::RecordedCheckIn;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use patrolsync_proto::checkin::Answer;
use patrolsync_proto::{
    CheckIn, CheckInId, CheckInKind, CheckInMethod, CheckInOutcome, EnrollmentString, GeoFix, Hlc,
    Invalid, Message, Op, OpBody, OpId, codes, wire,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::task::JoinSet;

use crate::transport::{CallError, Endpoints};

pub use patrolsync_proto as proto;

/// `PATROLSYNC_DEVICE_STATE_DIR`: default state directory of `patrolsync-device`.
pub const ENV_STATE_DIR: &str = "PATROLSYNC_DEVICE_STATE_DIR";

const DB_FILE: &str = "device.db";
const KEY_FILE: &str = "device.key";
const CERT_FILE: &str = "device.crt";
const SERVER_CA_FILE: &str = "server-ca.der";

/// How the client behaves. Defaults suit a phone on a poor link.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Reported to the server at every Hello.
    pub app_version: String,
    /// Ops per push (capped by the server's limit).
    pub batch_size: usize,
    /// Pushes in flight at once: with one at a time a link's round trips, not its bandwidth,
    /// set the pace.
    pub max_in_flight: usize,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Give up on one request after this long.
    pub request_timeout: Duration,
    /// Attempts per sync before reporting a network error (with exponential back-off).
    pub max_attempts: u32,
    /// First back-off delay; doubles per attempt.
    pub initial_backoff: Duration,
    /// Dial this `host:port` instead of the one stored at enrollment.
    pub server_override: Option<String>,
    /// Upload photos only on unmetered networks (see [`Client::set_network_metered`]).
    pub photos_only_unmetered: bool,
    /// Pace photo uploads to at most this many bytes per second (None: as fast as the link
    /// allows), leaving room for records and other apps on a thin rural link.
    pub photo_upload_rate: Option<u64>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            app_version: String::new(),
            batch_size: 200,
            max_in_flight: 4,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(250),
            server_override: None,
            photos_only_unmetered: false,
            photo_upload_rate: None,
        }
    }
}

/// Opening the local store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The local database could not be opened or migrated.
    #[error("cannot open the local database: {0}")]
    Database(String),
}

/// Recording a check-in failed; nothing was queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record breaks a protocol rule; fix the input.
    #[error("refused: {0}")]
    Invalid(Invalid),
    /// The user's role may not do this.
    #[error("refused: {0}")]
    Forbidden(String),
    /// The device is not enrolled yet.
    #[error("this device is not enrolled; run enroll with the code from your admin first")]
    NotEnrolled,
    /// The local database failed.
    #[error("cannot write to the local database: {0}")]
    Storage(String),
}

impl From<Invalid> for RecordError {
    fn from(i: Invalid) -> Self {
        RecordError::Invalid(i)
    }
}

/// Enrollment failed; nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// This state directory already belongs to an enrolled device.
    #[error("already enrolled as device {0}; use a new state directory to enroll again")]
    AlreadyEnrolled(String),
    /// The enrollment string is malformed.
    #[error(transparent)]
    BadCode(#[from] patrolsync_proto::enrollment::BadEnrollmentString),
    /// The server could not be reached; retry.
    #[error("cannot reach {server}: {reason}")]
    Unreachable {
        /// Where we dialled.
        server: String,
        /// What failed.
        reason: String,
    },
    /// The server refused the code (used, expired, unknown).
    #[error("enrollment refused by the server: {0}")]
    Refused(String),
    /// Key generation or local storage failed.
    #[error("enrollment failed locally: {0}")]
    Local(String),
}

/// A sync could not finish. Everything acknowledged before the failure stays acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Not enrolled yet.
    #[error("this device is not enrolled; run enroll with the code from your admin first")]
    NotEnrolled,
    /// The network failed; the outbox is intact and the next sync resumes.
    #[error("cannot sync with {server}: {reason}")]
    Network {
        /// Where we dialled.
        server: String,
        /// What failed.
        reason: String,
    },
    /// The device was revoked by an admin: it must be re-enrolled, retrying will not help.
    #[error("this device was revoked by an admin; re-enroll it with a new code")]
    Revoked,
    /// The server does not recognise this device's credential.
    #[error("the server does not recognise this device ({0}); re-enroll it with a new code")]
    NotRecognised(String),
    /// The server refused the request as a whole.
    #[error("server refused the sync: {message}")]
    Server {
        /// Wire error code name.
        code: String,
        /// The server's explanation.
        message: String,
        /// Whether a later sync can succeed.
        retryable: bool,
    },
    /// The local database failed.
    #[error("local database error: {0}")]
    Local(String),
}

impl SyncError {
    /// Whether syncing again later can succeed without anyone acting.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Network { .. } => true,
            SyncError::Server { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

/// A check-in as the app records it. The SDK fills in the id, times and sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCheckIn {
    /// Checkpoint code.
    pub checkpoint: String,
    /// Patrol, inspection or visit.
    pub kind: CheckInKind,
    /// How presence was proven.
    pub method: CheckInMethod,
    /// NFC/QR tag UID, if read.
    pub tag_uid: String,
    /// Position fix, if any.
    pub fix: Option<GeoFix>,
    /// Inspected, or why not.
    pub outcome: CheckInOutcome,
    /// Checklist template id and version the answers were recorded against.
    pub template: Option<(String, u32)>,
    /// Checklist answers.
    pub answers: Vec<Answer>,
    /// Free text.
    pub note: String,
    /// SHA-256 of photos, from [`Client::add_photo`].
    pub photos: Vec<[u8; 32]>,
    /// Device monotonic clock since boot, ms; read from the OS when `None`.
    pub monotonic_ms: Option<u64>,
}

impl NewCheckIn {
    /// A manual check-in at `checkpoint` with `outcome`; set the other fields as needed.
    pub fn new(checkpoint: impl Into<String>, outcome: CheckInOutcome) -> Self {
        NewCheckIn {
            checkpoint: checkpoint.into(),
            kind: CheckInKind::Patrol,
            method: CheckInMethod::Manual,
            tag_uid: String::new(),
            fix: None,
            outcome,
            template: None,
            answers: Vec::new(),
            note: String::new(),
            photos: Vec::new(),
            monotonic_ms: None,
        }
    }
}

/// What the device learned at enrollment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Enrollment {
    /// Server-assigned device id.
    pub device_id: String,
    /// Server `host:port`.
    pub server: String,
    /// The user this device belongs to.
    pub user: String,
    /// The user's role.
    pub role: String,
    /// Assigned grid cells.
    pub grid_cells: Vec<String>,
}

/// The outcome of one sync.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SyncSummary {
    /// Ops sent (including resends).
    pub pushed: u64,
    /// Stored for the first time.
    pub applied: u64,
    /// Already stored earlier (a resend after a lost answer); nothing changed.
    pub duplicates: u64,
    /// Refused by the server; see [`Client::rejected`].
    pub rejected: u64,
    /// Ops still in the outbox.
    pub remaining: u64,
    /// Highest contiguous op the server has recorded for this device.
    pub acked_through: u64,
    /// Changes received from the server (grid, hazards).
    pub pulled: u64,
    /// Change-log position the device has caught up to.
    pub cursor: u64,
    /// Hazards that changed in this device's view through this sync's pull.
    pub hazards_changed: Vec<String>,
    /// Photos the server now holds (uploaded by this sync, or already there).
    pub photos_uploaded: u64,
    /// Photo bytes sent by this sync.
    pub photo_bytes_sent: u64,
    /// Photos the server refused, and why (they stay on the device, marked failed).
    pub photo_failures: Vec<String>,
    /// Transitions that turned out to lose against another device's (visible in the hazard's
    /// history).
    pub new_conflicts: Vec<ConflictReport>,
    /// What entered or left the device's scope through this sync's pull, in order.
    pub scope_changes: Vec<ScopeNotice>,
    /// Wall time the sync took, ms.
    pub elapsed_ms: u64,
}

/// A transition that did not apply because another device's came first.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConflictReport {
    /// The hazard.
    pub hazard: String,
    /// The event that did not apply.
    pub event: String,
    /// Its kind.
    pub kind: String,
    /// Why.
    pub reason: String,
}

/// One of this device's own check-ins and whether the server has it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LocalCheckIn {
    /// The check-in.
    pub id: String,
    /// Checkpoint code.
    pub checkpoint: String,
    /// Outcome.
    pub outcome: String,
    /// When recorded (device clock, Unix ms).
    pub device_time_ms: i64,
    /// Note.
    pub note: String,
    /// `pending`, `synced` or `rejected`.
    pub state: String,
}

/// What an app shows about sync. Read from local state only: it never waits on the network.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Status {
    /// Enrolled device id, if enrolled.
    pub device_id: Option<String>,
    /// Server `host:port`, if enrolled.
    pub server: Option<String>,
    /// User name, if enrolled.
    pub user: Option<String>,
    /// Ops waiting to be acknowledged.
    pub pending_ops: u64,
    /// Age of the oldest waiting op, ms.
    pub oldest_pending_age_ms: Option<u64>,
    /// Ops the server refused (kept locally; see [`Client::rejected`]).
    pub rejected_ops: u64,
    /// Photos waiting to upload.
    pub pending_photos: u64,
    /// Their bytes.
    pub pending_photo_bytes: u64,
    /// When a sync last completed, Unix ms.
    pub last_sync_at_ms: Option<i64>,
    /// When a sync was last attempted, Unix ms.
    pub last_attempt_at_ms: Option<i64>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// An op the server refused, with its reason.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RejectedOp {
    /// The op's sequence number.
    pub device_seq: u64,
    /// Kind of op (`check_in`).
    pub kind: String,
    /// The record's id.
    pub record_id: String,
    /// Error code name.
    pub code: String,
    /// Machine-readable reason.
    pub reason: String,
    /// The field concerned.
    pub field: String,
    /// The server's explanation.
    pub message: String,
}

struct Inner {
    dir: PathBuf,
    db: SqlitePool,
    config: ClientConfig,
    endpoints: Endpoints,
    sync_lock: tokio::sync::Mutex<()>,
    /// Wakes the sync engine (new local records, `sync_now`, Notify).
    trigger: Arc<tokio::sync::Notify>,
    /// Sync events for the app (see [`Client::subscribe`]).
    events: tokio::sync::broadcast::Sender<SyncEvent>,
    /// The current network is metered (cellular).
    metered: std::sync::atomic::AtomicBool,
}

/// The device's handle on its local store and the server. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since boot where the OS tells (Linux, Android); 0 elsewhere.
fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(0)
}

fn local(e: impl std::fmt::Display) -> SyncError {
    SyncError::Local(e.to_string())
}

struct Identity {
    server: String,
    config: quinn::ClientConfig,
}

impl Client {
    /// Opens (creating if needed) the state directory: the local database and, once enrolled,
    /// the device's key and certificate.
    pub async fn open(
        state_dir: impl AsRef<Path>,
        config: ClientConfig,
    ) -> Result<Client, OpenError> {
        let dir = state_dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|source| OpenError::Dir {
            path: dir.clone(),
            source,
        })?;
        let options = SqliteConnectOptions::new()
            .filename(dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A recorded check-in must survive power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let db = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| OpenError::Database(e.to_string()))?;
        sqlx::migrate!("./migrations")
            .run(&db)
            .await
            .map_err(|e| OpenError::Database(e.to_string()))?;
        Ok(Client {
            inner: Arc::new(Inner {
                dir,
                db,
                config,
                endpoints: Endpoints::default(),
                sync_lock: tokio::sync::Mutex::new(()),
                trigger: Arc::new(tokio::sync::Notify::new()),
                events: tokio::sync::broadcast::channel(1024).0,
                metered: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// Enrolls this device with a one-time enrollment string from an admin. The device makes
    /// its own key, which never leaves it; the server signs a certificate for it. `server`
    /// overrides the address in the string.
    pub async fn enroll(
        &self,
        enrollment: &str,
        server: Option<&str>,
        device_name: &str,
    ) -> Result<Enrollment, EnrollError> {
        if let Some(id) = self
            .device_id()
            .await
            .map_err(|e| EnrollError::Local(e.to_string()))?
        {
            return Err(EnrollError::AlreadyEnrolled(id));
        }
        let parsed: EnrollmentString = enrollment.parse()?;
        let server = server
            .map(str::to_owned)
            .unwrap_or_else(|| parsed.server.clone());
        let key = rcgen::KeyPair::generate().map_err(|e| EnrollError::Local(e.to_string()))?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .and_then(|p| p.serialize_request(&key))
            .map_err(|e| EnrollError::Local(e.to_string()))?;
        let unreachable = |reason: String| EnrollError::Unreachable {
            server: server.clone(),
            reason,
        };
        let tls = tls::enrollment_config(&parsed.ca_sha256)
            .map_err(|e| EnrollError::Local(e.to_string()))?;
        let conn = self
            .inner
            .endpoints
            .connect(&server, tls, self.inner.config.connect_timeout)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let request = wire::Request {
            kind: Some(wire::request::Kind::Enroll(wire::EnrollRequest {
                code: parsed.code.clone(),
                csr_der: csr.der().to_vec(),
                device_name: device_name.to_owned(),
                app_version: self.inner.config.app_version.clone(),
            })),
        };
        let response = transport::call(
            &conn,
            &request,
            patrolsync_proto::frame::DEFAULT_MAX_FRAME_BYTES,
            self.inner.config.request_timeout,
        )
        .await
        .map_err(|e| unreachable(e.to_string()));
        conn.close(quinn::VarInt::from_u32(codes::CLOSE_DONE), b"enrolled");
        let e = match response?.kind {
            Some(wire::response::Kind::Enroll(e)) => e,
            Some(wire::response::Kind::Error(err)) => {
                return Err(EnrollError::Refused(err.message));
            }
            _ => return Err(EnrollError::Refused("unexpected response to Enroll".into())),
        };
        // Trust from now on only the CA the enrollment string pinned, not whatever was sent.
        if tls::hex(&tls::sha256(&e.server_ca_der)) != parsed.ca_sha256 {
            return Err(EnrollError::Refused(
                "the server sent a CA that does not match the fingerprint in the enrollment code"
                    .into(),
            ));
        }
        let role = patrolsync_proto::Role::from_wire_value(e.role)
            .map(|r| r.to_string())
            .unwrap_or_default();
        let write = |name: &str, bytes: &[u8]| write_file(&self.inner.dir.join(name), bytes);
        write(KEY_FILE, &key.serialize_der()).map_err(|e| EnrollError::Local(e.to_string()))?;
        write(CERT_FILE, &e.certificate_der).map_err(|e| EnrollError::Local(e.to_string()))?;
        write(SERVER_CA_FILE, &e.server_ca_der).map_err(|e| EnrollError::Local(e.to_string()))?;
        sqlx::query(
            "INSERT INTO identity (id, device_id, server, user_name, role, grid_cells, enrolled_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.device_id)
        .bind(&server)
        .bind(&e.user)
        .bind(&role)
        .bind(e.grid_cells.join(","))
        .bind(now_ms())
        .execute(&self.inner.db)
        .await
        .map_err(|e| EnrollError::Local(e.to_string()))?;
        Ok(Enrollment {
            device_id: e.device_id,
            server,
            user: e.user,
            role,
            grid_cells: e.grid_cells,
        })
    }

    async fn role(&self) -> Result<patrolsync_proto::Role, sqlx::Error> {
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM identity WHERE id = 1")
            .fetch_optional(&self.inner.db)
            .await?;
        Ok(role
            .and_then(|r| r.parse().ok())
            .unwrap_or(patrolsync_proto::Role::Patroller))
    }

    async fn device_id(&self) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT device_id FROM identity WHERE id = 1")
            .fetch_optional(&self.inner.db)
            .await
    }

    async fn identity(&self) -> Result<Identity, SyncError> {
        let server: Option<String> = sqlx::query_scalar("SELECT server FROM identity WHERE id = 1")
            .fetch_optional(&self.inner.db)
            .await
            .map_err(local)?;
        let server = server.ok_or(SyncError::NotEnrolled)?;
        let read = |name: &str| {
            std::fs::read(self.inner.dir.join(name))
                .map_err(|e| SyncError::Local(format!("{name}: {e}")))
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(read(KEY_FILE)?));
        let config = tls::device_config(
            CertificateDer::from(read(SERVER_CA_FILE)?),
            CertificateDer::from(read(CERT_FILE)?),
            key,
        )
        .map_err(local)?;
        Ok(Identity {
            server: self.inner.config.server_override.clone().unwrap_or(server),
            config,
        })
    }

    /// Validates the check-in and writes it to the outbox. Returns once it is durable on the
    /// device; needs no network.
    pub async fn record_checkin(&self, c: NewCheckIn) -> Result<CheckInId, RecordError> {
        Ok(self.record_checklist(c).await?.check_in)
    }

    /// The check-in `c` describes, checked by the protocol's rules (not yet queued).
    async fn new_check_in(&self, c: NewCheckIn) -> Result<CheckIn, RecordError> {
        if self
            .device_id()
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?
            .is_none()
        {
            return Err(RecordError::NotEnrolled);
        }
        let now = now_ms();
        let (template_id, template_version) = c.template.unwrap_or_default();
        let check_in = CheckIn {
            id: CheckInId(uuid::Uuid::now_v7()),
            checkpoint: c.checkpoint,
            kind: c.kind,
            method: c.method,
            tag_uid: c.tag_uid,
            device_time_ms: now,
            monotonic_ms: c.monotonic_ms.unwrap_or_else(uptime_ms),
            fix: c.fix,
            outcome: c.outcome,
            template_id,
            template_version,
            answers: c.answers,
            photos: c.photos,
            note: c.note,
        };
        // The server runs the same rules; refusing here saves a round trip and a rejection.
        Ok(CheckIn::from_wire(check_in.to_wire(), now)?)
    }

    async fn enqueue(
        &self,
        body: OpBody,
        kind: &str,
        record_id: Vec<u8>,
        now: i64,
    ) -> Result<u64, RecordError> {
        let seqs = self.enqueue_all(vec![(body, kind, record_id)], now).await?;
        Ok(seqs.first().copied().unwrap_or(0))
    }

    /// Queues `ops` in one local transaction: all of them are durable, or none.
    async fn enqueue_all(
        &self,
        ops: Vec<(OpBody, &str, Vec<u8>)>,
        now: i64,
    ) -> Result<Vec<u64>, RecordError> {
        let storage = |e: sqlx::Error| RecordError::Storage(e.to_string());
        // Read before the transaction: a pool connection must not wait on another while holding
        // the write lock.
        let role = self.role().await.map_err(storage)?;
        let mut tx = self.inner.db.begin().await.map_err(storage)?;
        let mut seqs = Vec::with_capacity(ops.len());
        for (body, kind, record_id) in ops {
            // The first statement writes, so concurrent recorders serialise here instead of failing
            // to upgrade a read lock.
            let seq: i64 = sqlx::query_scalar(
                "UPDATE counters SET value = value + 1 WHERE key = 'last_seq' RETURNING value",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
            let rows = sqlx::query(
                "SELECT key, value FROM counters WHERE key IN ('hlc_wall_ms', 'hlc_logical')",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(storage)?;
            let mut last = Hlc::default();
            for r in rows {
                let v: i64 = r.get(1);
                match r.get::<String, _>(0).as_str() {
                    "hlc_wall_ms" => last.wall_ms = v.max(0) as u64,
                    _ => last.logical = u32::try_from(v).unwrap_or(0),
                }
            }
            let hlc = last.tick(now.max(0) as u64);
            sqlx::query("UPDATE counters SET value = CASE key WHEN 'hlc_wall_ms' THEN ? ELSE ? END WHERE key IN ('hlc_wall_ms', 'hlc_logical')")
            .bind(hlc.wall_ms as i64)
            .bind(i64::from(hlc.logical))
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
            let op = Op {
                op_id: OpId(uuid::Uuid::now_v7()),
                device_seq: seq as u64,
                hlc,
                body,
            };
            if let OpBody::CheckIn(c) = &op.body {
                sqlx::query(
                "INSERT OR IGNORE INTO my_check_ins (id, checkpoint, outcome, device_time_ms, note, state) \
                 VALUES (?, ?, ?, ?, ?, 'pending')",
            )
            .bind(c.id.to_bytes())
            .bind(&c.checkpoint)
            .bind(c.outcome.as_str())
            .bind(c.device_time_ms)
            .bind(&c.note)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
            }
            if let Some(local) = hazards::local_op(&op, &role) {
                // Applied optimistically: the device's view folds it at once, and the copy that
                // comes back through pull has the same stamp, so it is not counted twice.
                let device: String =
                    sqlx::query_scalar("SELECT device_id FROM identity WHERE id = 1")
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(storage)?;
                hazards::insert_op(&mut tx, &local, &device)
                    .await
                    .map_err(storage)?;
            }
            sqlx::query("INSERT INTO outbox (device_seq, op_id, kind, record_id, payload, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(seq)
            .bind(op.op_id.to_bytes())
            .bind(kind)
            .bind(record_id)
            .bind(op.to_wire().encode_to_vec())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
            seqs.push(seq as u64);
        }
        tx.commit().await.map_err(storage)?;
        self.inner.trigger.notify_one();
        Ok(seqs)
    }

    /// Local sync status. Never touches the network.
    pub async fn status(&self) -> Result<Status, SyncError> {
        let db = &self.inner.db;
        let ident = sqlx::query("SELECT device_id, server, user_name FROM identity WHERE id = 1")
            .fetch_optional(db)
            .await
            .map_err(local)?;
        let outbox = sqlx::query("SELECT COUNT(*), MIN(created_at_ms) FROM outbox")
            .fetch_one(db)
            .await
            .map_err(local)?;
        let rejected: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rejected")
            .fetch_one(db)
            .await
            .map_err(local)?;
        let state = sqlx::query("SELECT last_attempt_at_ms, last_success_at_ms, last_error FROM sync_state WHERE id = 1")
            .fetch_one(db)
            .await
            .map_err(local)?;
        let oldest: Option<i64> = outbox.get(1);
        let photos = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM photos WHERE state = 'queued'",
        )
        .fetch_one(db)
        .await
        .map_err(local)?;
        Ok(Status {
            device_id: ident.as_ref().map(|r| r.get(0)),
            server: ident.as_ref().map(|r| r.get(1)),
            user: ident.as_ref().map(|r| r.get(2)),
            pending_ops: outbox.get::<i64, _>(0) as u64,
            oldest_pending_age_ms: oldest.map(|t| (now_ms() - t).max(0) as u64),
            rejected_ops: rejected as u64,
            pending_photos: photos.get::<i64, _>(0) as u64,
            pending_photo_bytes: photos.get::<i64, _>(1) as u64,
            last_sync_at_ms: state.get(1),
            last_attempt_at_ms: state.get(0),
            last_error: state.get(2),
        })
    }

    /// Sync events (started, finished, failed, photo progress, hazard changes, conflicts).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<SyncEvent> {
        self.inner.events.subscribe()
    }

    /// Records that the server revoked this device, so `status()` says so.
    pub(crate) async fn note_revoked(&self) {
        let _ = sqlx::query(
            "UPDATE sync_state SET last_error = ?, last_attempt_at_ms = ? WHERE id = 1",
        )
        .bind(SyncError::Revoked.to_string())
        .bind(now_ms())
        .execute(&self.inner.db)
        .await;
    }

    /// This device's most recent check-ins, newest first, with their sync state.
    pub async fn recent_check_ins(&self, limit: u32) -> Result<Vec<LocalCheckIn>, SyncError> {
        let rows = sqlx::query(
            "SELECT id, checkpoint, outcome, device_time_ms, note, state FROM my_check_ins \
             ORDER BY device_time_ms DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.inner.db)
        .await
        .map_err(local)?;
        Ok(rows
            .iter()
            .map(|r| LocalCheckIn {
                id: uuid::Uuid::from_slice(&r.get::<Vec<u8>, _>(0))
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                checkpoint: r.get(1),
                outcome: r.get(2),
                device_time_ms: r.get(3),
                note: r.get(4),
                state: r.get(5),
            })
            .collect())
    }

    /// Ops the server refused, newest first.
    pub async fn rejected(&self) -> Result<Vec<RejectedOp>, SyncError> {
        let rows = sqlx::query(
            "SELECT device_seq, kind, record_id, code, reason, field, message FROM rejected ORDER BY device_seq DESC",
        )
        .fetch_all(&self.inner.db)
        .await
        .map_err(local)?;
        Ok(rows
            .into_iter()
            .map(|r| RejectedOp {
                device_seq: r.get::<i64, _>(0) as u64,
                kind: r.get(1),
                record_id: uuid::Uuid::from_slice(&r.get::<Vec<u8>, _>(2))
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                code: r.get(3),
                reason: r.get(4),
                field: r.get(5),
                message: r.get(6),
            })
            .collect())
    }

    /// Pushes the outbox until it is empty, retrying network failures with back-off up to
    /// `max_attempts` times. Ops recorded while the sync runs are sent too.
    pub async fn sync(&self) -> Result<SyncSummary, SyncError> {
        let _one_at_a_time = self.inner.sync_lock.lock().await;
        let started = std::time::Instant::now();
        let identity = self.identity().await?;
        let mut summary = SyncSummary::default();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match self.sync_once(&identity, &mut summary).await {
                Ok(()) => break Ok(()),
                Err(e) if e.is_retryable() && attempt < self.inner.config.max_attempts => {
                    let delay =
                        self.inner.config.initial_backoff * 2u32.saturating_pow(attempt - 1);
                    tracing::debug!(attempt, error = %e, ?delay, "sync attempt failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => break Err(e),
            }
        };
        let now = now_ms();
        let error_text = result.as_ref().err().map(|e| e.to_string());
        let _ = sqlx::query(
            "UPDATE sync_state SET last_attempt_at_ms = ?, last_error = ?, \
             last_success_at_ms = CASE WHEN ? IS NULL THEN ? ELSE last_success_at_ms END WHERE id = 1",
        )
        .bind(now)
        .bind(&error_text)
        .bind(&error_text)
        .bind(now)
        .execute(&self.inner.db)
        .await;
        result?;
        summary.remaining = self.status().await?.pending_ops;
        summary.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(summary)
    }

    fn map_call(&self, server: &str, e: CallError) -> SyncError {
        match e.close_code() {
            Some(codes::CLOSE_REVOKED) => SyncError::Revoked,
            Some(codes::CLOSE_UNAUTHENTICATED) => SyncError::NotRecognised(e.to_string()),
            _ if e.is_tls_refusal() => SyncError::NotRecognised(e.to_string()),
            _ => {
                debug_assert!(e.is_transient());
                SyncError::Network {
                    server: server.to_owned(),
                    reason: e.to_string(),
                }
            }
        }
    }

    async fn sync_once(
        &self,
        identity: &Identity,
        summary: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        let cfg = &self.inner.config;
        let server = identity.server.as_str();
        let conn = self
            .inner
            .endpoints
            .connect(server, identity.config.clone(), cfg.connect_timeout)
            .await
            .map_err(|e| self.map_call(server, e))?;
        // Records first (push), then what others changed (pull), then photos.
        let result = async {
            let cap = self.push_outbox(&conn, server, summary).await?;
            self.pull_scope(&conn, server, summary).await?;
            self.upload_photos(&conn, server, cap, summary).await
        }
        .await;
        conn.close(quinn::VarInt::from_u32(codes::CLOSE_DONE), b"sync done");
        result
    }

    /// Pushes the outbox; returns the server's photo size cap (from Hello).
    async fn push_outbox(
        &self,
        conn: &quinn::Connection,
        server: &str,
        summary: &mut SyncSummary,
    ) -> Result<u64, SyncError> {
        let cfg = &self.inner.config;
        let status = self.status().await?;
        let hello = wire::Request {
            kind: Some(wire::request::Kind::Hello(wire::Hello {
                outbox_depth: status.pending_ops,
                oldest_pending_age_ms: status.oldest_pending_age_ms.unwrap_or(0),
                pending_photo_bytes: status.pending_photo_bytes,
                app_version: cfg.app_version.clone(),
                sdk_version: env!("CARGO_PKG_VERSION").into(),
                device_time_ms: now_ms(),
            })),
        };
        let limit = patrolsync_proto::frame::DEFAULT_MAX_FRAME_BYTES;
        let hello = match transport::call(conn, &hello, limit, cfg.request_timeout)
            .await
            .map_err(|e| self.map_call(server, e))?
            .kind
        {
            Some(wire::response::Kind::Hello(h)) => h,
            other => return Err(unexpected(other)),
        };
        summary.acked_through = hello.acked_through;
        let cap = hello.limits.map(|l| l.max_blob_bytes).unwrap_or(u64::MAX);
        let server_max = hello
            .limits
            .map(|l| l.max_ops_per_push as usize)
            .unwrap_or(cfg.batch_size);
        let batch = cfg.batch_size.min(server_max).max(1);

        // Frames stay well under the server's limit whatever the ops weigh.
        let max_bytes = hello
            .limits
            .map(|l| l.max_frame_bytes as usize)
            .unwrap_or(limit as usize)
            * 3
            / 4;
        let mut in_flight: JoinSet<Result<(Vec<i64>, wire::Response), CallError>> = JoinSet::new();
        let mut last_sent: i64 = 0;
        // A batch carrying hazard ops goes alone: a later batch may act on a hazard it reports,
        // and the server must have committed the report first.
        let mut barrier = false;
        let mut throttled = 0u32;
        loop {
            while !barrier && in_flight.len() < cfg.max_in_flight.max(1) {
                let rows = sqlx::query(
                    "SELECT device_seq, payload, kind FROM outbox WHERE device_seq > ? ORDER BY device_seq LIMIT ?",
                )
                .bind(last_sent)
                .bind(batch as i64)
                .fetch_all(&self.inner.db)
                .await
                .map_err(local)?;
                let (mut seqs, mut payloads, mut bytes, mut hazards) =
                    (Vec::new(), Vec::new(), 0usize, false);
                for r in &rows {
                    let payload: Vec<u8> = r.get(1);
                    if !seqs.is_empty() && bytes + payload.len() > max_bytes {
                        break;
                    }
                    bytes += payload.len() + 8;
                    hazards |= r.get::<String, _>(2) != "check_in";
                    seqs.push(r.get::<i64, _>(0));
                    payloads.push(payload);
                }
                let Some(last) = seqs.last() else { break };
                if hazards && !in_flight.is_empty() {
                    // Wait for what is in flight, then send this batch alone.
                    break;
                }
                barrier = hazards;
                last_sent = *last;
                let request = transport::push_request(&payloads)
                    .map_err(|e| local(format!("corrupt outbox entry: {e}")))?;
                summary.pushed += seqs.len() as u64;
                let conn = conn.clone();
                let timeout = cfg.request_timeout;
                in_flight.spawn(async move {
                    Ok((
                        seqs,
                        transport::call(&conn, &request, limit, timeout).await?,
                    ))
                });
            }
            let Some(joined) = in_flight.join_next().await else {
                return Ok(cap);
            };
            let (seqs, response) = joined
                .map_err(local)?
                .map_err(|e| self.map_call(server, e))?;
            barrier = false;
            match response.kind {
                Some(wire::response::Kind::Push(p)) => {
                    self.apply_results(&seqs, p, summary).await?
                }
                Some(wire::response::Kind::Error(e))
                    if e.code == wire::ErrorCode::LimitExceeded as i32 && e.retryable =>
                {
                    // The server's per-device push rate: let what is in flight land, pause,
                    // then go on from the refused batch (its ops are still in the outbox).
                    while let Some(joined) = in_flight.join_next().await {
                        let (seqs, response) = joined
                            .map_err(local)?
                            .map_err(|e| self.map_call(server, e))?;
                        if let Some(wire::response::Kind::Push(p)) = response.kind {
                            self.apply_results(&seqs, p, summary).await?;
                        }
                    }
                    barrier = false;
                    last_sent = seqs.first().copied().unwrap_or(1) - 1;
                    throttled += 1;
                    if throttled > 600 {
                        return Err(SyncError::Server {
                            code: code_name(e.code),
                            message: e.message,
                            retryable: true,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(wire::response::Kind::Error(e)) => {
                    return Err(SyncError::Server {
                        code: code_name(e.code),
                        message: e.message,
                        retryable: e.retryable,
                    });
                }
                other => return Err(unexpected(other)),
            }
        }
    }

    async fn apply_results(
        &self,
        seqs: &[i64],
        p: wire::PushResponse,
        summary: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        let sent: std::collections::HashSet<i64> = seqs.iter().copied().collect();
        let mut tx = self.inner.db.begin().await.map_err(local)?;
        let now = now_ms();
        for r in p.results {
            let seq = r.device_seq as i64;
            if !sent.contains(&seq) {
                continue;
            }
            match wire::OpOutcome::try_from(r.outcome) {
                Ok(
                    wire::OpOutcome::Applied
                    | wire::OpOutcome::Duplicate
                    | wire::OpOutcome::Conflict,
                ) => {
                    mark_check_in(&mut tx, seq, "synced").await?;
                    if r.outcome == wire::OpOutcome::Duplicate as i32 {
                        summary.duplicates += 1;
                    } else {
                        summary.applied += 1;
                    }
                }
                Ok(wire::OpOutcome::Rejected) => {
                    summary.rejected += 1;
                    mark_check_in(&mut tx, seq, "rejected").await?;
                    // A refused hazard op leaves the local view too, so it matches the server's.
                    let hlc = outbox_hlc(&mut tx, seq).await?;
                    sqlx::query(
                        "DELETE FROM hazard_ops WHERE device_id = (SELECT device_id FROM identity WHERE id = 1) \
                         AND hlc_wall_ms = ? AND hlc_logical = ?",
                    )
                    .bind(hlc.wall_ms as i64)
                    .bind(i64::from(hlc.logical))
                    .execute(&mut *tx)
                    .await
                    .map_err(local)?;
                    sqlx::query(
                        "INSERT OR REPLACE INTO rejected (device_seq, op_id, kind, record_id, payload, created_at_ms, code, reason, field, message, rejected_at) \
                         SELECT device_seq, op_id, kind, record_id, payload, created_at_ms, ?, ?, ?, ?, ? FROM outbox WHERE device_seq = ?",
                    )
                    .bind(code_name(r.code))
                    .bind(&r.reason)
                    .bind(&r.field)
                    .bind(&r.message)
                    .bind(now)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(local)?;
                }
                // An outcome this SDK does not know: keep the op and send it again later.
                _ => continue,
            }
            sqlx::query("DELETE FROM outbox WHERE device_seq = ?")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(local)?;
        }
        tx.commit().await.map_err(local)?;
        summary.acked_through = summary.acked_through.max(p.acked_through);
        Ok(())
    }
}

/// Records what became of one of the device's own check-ins.
async fn mark_check_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    seq: i64,
    state: &str,
) -> Result<(), SyncError> {
    sqlx::query(
        "UPDATE my_check_ins SET state = ? WHERE id = (SELECT record_id FROM outbox WHERE device_seq = ? AND kind = 'check_in')",
    )
    .bind(state)
    .bind(seq)
    .execute(&mut **tx)
    .await
    .map_err(local)?;
    Ok(())
}

/// The HLC of an outbox op (the key of its optimistic copy in `hazard_ops`).
async fn outbox_hlc(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    seq: i64,
) -> Result<Hlc, SyncError> {
    let payload: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE device_seq = ?")
            .bind(seq)
            .fetch_optional(&mut **tx)
            .await
            .map_err(local)?;
    Ok(payload
        .and_then(|p| wire::Op::decode(p.as_slice()).ok())
        .and_then(|op| op.hlc)
        .map(Hlc::from)
        .unwrap_or_default())
}

/// `forbidden` for `ERROR_CODE_FORBIDDEN`, and so on.
fn code_name(code: i32) -> String {
    wire::ErrorCode::try_from(code)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("ERROR_CODE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("code_{code}"))
}

fn unexpected(kind: Option<wire::response::Kind>) -> SyncError {
    match kind {
        Some(wire::response::Kind::Error(e)) => SyncError::Server {
            code: code_name(e.code),
            message: e.message,
            retryable: e.retryable,
        },
        _ => SyncError::Server {
            code: "UNEXPECTED".into(),
            message: "the server answered with the wrong message".into(),
            retryable: false,
        },
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
