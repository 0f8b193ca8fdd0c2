//! The patrolsync device SDK: what a patrol app embeds.
//!
//! - [`Client::record_checkin`] writes the check-in to the local SQLite outbox and returns; it
//!   never touches the network, so a patroller never waits on a bad link.
//! - [`Client::sync`] pushes the outbox in batches over QUIC, several batches in flight, and
//!   removes each op only when the server has answered for it (applied, duplicate or
//!   rejected). Replays are harmless: the server applies each op exactly once.
//! - [`Client::status`] says what is pending, since when, and how the last sync went.
//!
//! Errors are typed per operation and each has a stable [`ErrorCode`] with its parameters and a
//! message in Chinese (the default) or English. This runs as it stands (no server needed):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use patrolsync_sdk::proto::CheckInOutcome;
//! use patrolsync_sdk::{Client, ClientConfig, ErrorCode, NewCheckIn, RecordError};
//! let dir = tempfile::tempdir()?;
//! let client = Client::open(dir.path(), ClientConfig::default()).await?;
//! assert_eq!(client.status().await?.pending_ops, 0);
//! // Recording before enrolling is refused, with a code and a message for the patroller.
//! let refused = client
//!     .record_checkin(NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected))
//!     .await;
//! let Err(e @ RecordError::NotEnrolled) = refused else { panic!("{refused:?}") };
//! assert_eq!(e.code(), ErrorCode::NotEnrolled);
//! assert_eq!(e.code().message("zh-CN"), "本设备尚未注册，请先输入管理员提供的注册码");
//! // Nothing was queued.
//! assert_eq!(client.status().await?.pending_ops, 0);
//! # Ok(()) }
//! ```
//!
//! With a server, the whole round (see `examples/minimal_app.rs` for an app's shape, with the
//! engine and its events):
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

mod checkins;
mod clock;
mod config;
mod duty;
mod engine;
mod enroll;
mod error;
mod events;
mod hazard_log;
mod hazards;
mod lifecycle;
mod outbox;
mod photos;
mod platform;
mod registers;
mod scope;
mod state;
mod sync;
mod tasks;
mod templates;
mod tls;
mod transport;

pub use checkins::{LocalCheckIn, NewCheckIn, RecordedCheckIn};
pub use config::ClientConfig;
pub use duty::Duty;
pub use engine::{EngineOptions, ON_DUTY_INTERVAL, SyncEngine};
pub use enroll::Enrollment;
pub use error::{EnrollError, OpenError, ReadError, RecordError, SyncError};
pub use events::{ConflictReport, DataKind, SyncEvent, SyncSummary};
pub use hazards::{
    Checkpoint, Escalation, HazardFilter, HazardView, NewHazard, Transition, conflict_code,
};
pub use lifecycle::{SignOutError, Unsent};
pub use outbox::RejectedOp;
pub use patrolsync_i18n::{ErrorCode, LANGUAGES};
pub use photos::PhotoStatus;
pub use platform::{KeyStore, MonotonicClock};
pub use registers::{Household, HouseholdGroup, KeyUnit, RiskLevel, UnitKind};
pub use scope::{CellView, ScopeNotice};
pub use state::{Connectivity, Progress, SyncPhase, SyncState};
pub use tasks::{Arrival, NewTask, TaskView, task_conflict_code};

/// The protocol's domain types an app uses with the SDK: the record enums, ids, positions,
/// the hazard vocabulary and its folded state, checklist templates. The wire (prost) types stay
/// inside the SDK.
pub mod proto {
    pub use patrolsync_proto::{
        CheckInId, CheckInKind, CheckInMethod, CheckInOutcome, DeviceId, EventId, GeoFix, HazardId,
        Hlc, Invalid, Role, TaskId,
    };

    /// Check-in records: checklist answers and the limits a record must keep.
    pub mod checkin {
        pub use patrolsync_proto::checkin::{
            Answer, AnswerValue, GeoFix, Invalid, MAX_ANSWERS, MAX_CODE_CHARS, MAX_PHOTOS,
            MAX_TEXT_CHARS,
        };
    }

    /// The hazard loop: its vocabulary, its state machine and a hazard's folded state.
    pub mod hazard {
        pub use patrolsync_proto::hazard::{
            Agency, EventKind, Field, FieldValue, Handling, HazardCategory, HazardState,
            HistoryEntry, Lww, Refusal, Report, Severity, Stamp, Status, may_fire, transition,
        };
    }

    /// Tasks (dispatch): their vocabulary and a task's folded state.
    pub mod task {
        pub use patrolsync_proto::task::{
            Task, TaskEvent, TaskEventKind, TaskHistoryEntry, TaskKind, TaskResult, TaskState,
            TaskStatus, Urgency,
        };
    }

    /// Checklist templates.
    pub mod template {
        pub use patrolsync_proto::template::{AnswerType, Item, Template};
    }
}

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::clock::now_ms;
use crate::error::read_failed;
use crate::transport::Endpoints;

/// `PATROLSYNC_DEVICE_STATE_DIR`: default state directory of `patrolsync-device`.
pub const ENV_STATE_DIR: &str = "PATROLSYNC_DEVICE_STATE_DIR";

const DB_FILE: &str = "device.db";

const KEY_FILE: &str = "device.key";

const CERT_FILE: &str = "device.crt";

const SERVER_CA_FILE: &str = "server-ca.der";

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
    /// Why the last attempt failed, if it did (English, for logs and the command line).
    pub last_error: Option<String>,
    /// Why the last attempt failed, as a code an app shows in the user's language.
    pub last_error_code: Option<ErrorCode>,
    /// Records and photos that volunteers who signed out of this phone left to be sent under
    /// their own names ([`Unsent::HandOver`]); they go at the next syncs.
    pub handed_over: u64,
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
    /// The latest sync state (see [`Client::state`]).
    state: tokio::sync::watch::Sender<SyncState>,
    /// Each change of it (see [`Client::state_changes`]).
    state_changes: tokio::sync::broadcast::Sender<SyncState>,
    /// Where the credentials live.
    keys: Arc<dyn KeyStore>,
    /// A signed-out volunteer's hand-over: it pushes and uploads, and never pulls.
    send_only: bool,
    /// Hand-overs are sent by one caller at a time.
    handover_lock: tokio::sync::Mutex<()>,
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

impl Client {
    /// Opens (creating if needed) the state directory: the local database and, once enrolled,
    /// the device's key and certificate.
    ///
    /// # Errors
    ///
    /// [`OpenError`] if the directory cannot be created or the database
    /// cannot be opened or migrated (its code says `storage_full` when the disk is full).
    pub async fn open(
        state_dir: impl AsRef<Path>,
        config: ClientConfig,
    ) -> Result<Client, OpenError> {
        Client::open_with(state_dir.as_ref(), config, false).await
    }

    /// Opens a signed-out volunteer's hand-over (see [`Unsent::HandOver`]).
    pub(crate) async fn open_handover(
        dir: &Path,
        config: ClientConfig,
    ) -> Result<Client, OpenError> {
        Client::open_with(dir, config, true).await
    }

    async fn open_with(
        state_dir: &Path,
        config: ClientConfig,
        send_only: bool,
    ) -> Result<Client, OpenError> {
        let dir = state_dir.to_owned();
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
        let last_synced_at_ms: Option<i64> =
            sqlx::query_scalar("SELECT last_success_at_ms FROM sync_state WHERE id = 1")
                .fetch_optional(&db)
                .await
                .map_err(|e| OpenError::Database(e.to_string()))?
                .flatten();
        let state = SyncState {
            has_synced: last_synced_at_ms.is_some(),
            last_synced_at_ms,
            ..SyncState::default()
        };
        let keys = config
            .key_store
            .clone()
            .unwrap_or_else(|| Arc::new(platform::FileKeyStore(dir.clone())));
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
                state: tokio::sync::watch::Sender::new(state),
                state_changes: tokio::sync::broadcast::channel(256).0,
                keys,
                send_only,
                handover_lock: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The enrolled device's id (if any) and its user's role, in one read.
    async fn identity_and_role(
        &self,
    ) -> Result<(Option<String>, patrolsync_proto::Role), sqlx::Error> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT device_id, role FROM identity WHERE id = 1")
                .fetch_optional(&self.inner.db)
                .await?;
        let role = row
            .as_ref()
            .and_then(|(_, r)| r.parse().ok())
            .unwrap_or(patrolsync_proto::Role::Patroller);
        Ok((row.map(|(d, _)| d), role))
    }

    /// The enrolled user's role (a patroller's when nobody is enrolled).
    async fn role(&self) -> Result<patrolsync_proto::Role, sqlx::Error> {
        Ok(self.identity_and_role().await?.1)
    }

    /// Refuses a record on a device not enrolled yet.
    pub(crate) async fn require_enrolled(&self) -> Result<(), RecordError> {
        match self.device_id().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(RecordError::NotEnrolled),
            Err(e) => Err(RecordError::Storage(e.to_string())),
        }
    }

    async fn device_id(&self) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT device_id FROM identity WHERE id = 1")
            .fetch_optional(&self.inner.db)
            .await
    }

    /// Closes the local store: later calls fail with a storage error. Waits until every
    /// connection to the database is returned, so call it after stopping the engine; an app
    /// that is simply backgrounded need not close.
    pub async fn close(&self) {
        self.inner.db.close().await;
    }

    /// Local sync status. Never touches the network.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the
    /// network.
    pub async fn status(&self) -> Result<Status, ReadError> {
        let db = &self.inner.db;
        let ident = sqlx::query("SELECT device_id, server, user_name FROM identity WHERE id = 1")
            .fetch_optional(db)
            .await
            .map_err(read_failed)?;
        let outbox = sqlx::query("SELECT COUNT(*), MIN(created_at_ms) FROM outbox")
            .fetch_one(db)
            .await
            .map_err(read_failed)?;
        let rejected: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rejected")
            .fetch_one(db)
            .await
            .map_err(read_failed)?;
        let state = sqlx::query("SELECT last_attempt_at_ms, last_success_at_ms, last_error, last_error_code, last_error_p1, last_error_p2 FROM sync_state WHERE id = 1")
            .fetch_one(db)
            .await
            .map_err(read_failed)?;
        let oldest: Option<i64> = outbox.get(1);
        let photos = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM photos WHERE state = 'queued'",
        )
        .fetch_one(db)
        .await
        .map_err(read_failed)?;
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
            last_error_code: ErrorCode::from_columns(state.get(3), state.get(4), state.get(5)),
            handed_over: self.handed_over_waiting().await,
        })
    }

    /// Sync events (started, finished, failed, photo progress, hazard changes, conflicts) and
    /// changes of local data ([`SyncEvent::DataChanged`]), from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<SyncEvent> {
        self.inner.events.subscribe()
    }

    /// Tells subscribers that local data of these kinds changed.
    pub(crate) fn data_changed(&self, kinds: impl IntoIterator<Item = DataKind>) {
        let mut sent = Vec::new();
        for kind in kinds {
            if !sent.contains(&kind) {
                sent.push(kind);
                let _ = self.inner.events.send(SyncEvent::DataChanged(kind));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patrolsync_proto::CheckInOutcome;

    /// A client with an identity as enrollment leaves one (no server needed to record).
    async fn enrolled() -> Result<(tempfile::TempDir, Client), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let client = Client::open(dir.path(), ClientConfig::default()).await?;
        sqlx::query(
            "INSERT INTO identity (id, device_id, server, user_name, role, grid_cells, enrolled_at) \
             VALUES (1, '0190e1a0-0000-7000-8000-000000000001', '127.0.0.1:1', 'alice', 'patroller', 'S1-C1', 0)",
        )
        .execute(&client.inner.db)
        .await?;
        Ok((dir, client))
    }

    #[tokio::test]
    async fn the_status_counts_what_waits_and_since_when() -> Result<(), Box<dyn std::error::Error>>
    {
        let (_dir, client) = enrolled().await?;
        let empty = client.status().await?;
        assert_eq!((empty.pending_ops, empty.oldest_pending_age_ms), (0, None));
        for p in ["S1-C1-K1-B1-P1", "S1-C1-K1-B1-P2"] {
            client
                .record_checkin(NewCheckIn::new(p, CheckInOutcome::Inspected))
                .await?;
        }
        // The first was recorded a minute before the second.
        sqlx::query("UPDATE outbox SET created_at_ms = created_at_ms - 60000 WHERE device_seq = 1")
            .execute(&client.inner.db)
            .await?;
        let s = client.status().await?;
        assert_eq!(s.pending_ops, 2);
        let age = s.oldest_pending_age_ms.unwrap_or(0);
        assert!((60_000..660_000).contains(&age), "{age}");

        client.add_photo_bytes(b"0123456789").await?;
        client.add_photo_bytes(b"0123456789").await?;
        client.add_photo_bytes(b"abc").await?;
        let s = client.status().await?;
        assert_eq!((s.pending_photos, s.pending_photo_bytes), (2, 13));
        let empty = client.add_photo_bytes(b"").await;
        assert!(
            matches!(empty, Err(RecordError::EmptyPhoto { .. })),
            "{empty:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_push_takes_hazard_ops_before_check_ins_whenever_there_are_any()
    -> Result<(), Box<dyn std::error::Error>> {
        let (_dir, client) = enrolled().await?;
        let check_in = || NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
        for _ in 0..3 {
            client.record_checkin(check_in()).await?;
        }
        client
            .report_hazard(NewHazard {
                grid_cell: "S1-C1-K1".into(),
                checkpoint: None,
                position: None,
                category: patrolsync_proto::hazard::HazardCategory::Gas,
                severity: patrolsync_proto::hazard::Severity::General,
                handling: patrolsync_proto::hazard::Handling::OnTheSpot,
                deadline_ms: None,
                description: "gas cylinder in the stairwell".into(),
                photos: vec![],
            })
            .await?;
        client.record_checkin(check_in()).await?;
        let seqs = |rows: Vec<sqlx::sqlite::SqliteRow>| -> Vec<i64> {
            rows.iter().map(|r| r.get::<i64, _>(0)).collect()
        };
        // What a push picks first: the hazard (recorded fourth), then the check-ins in order.
        assert_eq!(seqs(client.queued(0, true, 200).await?), [4]);
        assert_eq!(seqs(client.queued(0, false, 200).await?), [1, 2, 3, 5]);
        // Each kind resumes after what was sent.
        assert_eq!(seqs(client.queued(2, false, 200).await?), [3, 5]);
        assert!(client.queued(4, true, 200).await?.is_empty());
        Ok(())
    }
}
