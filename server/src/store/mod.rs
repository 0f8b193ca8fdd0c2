//! Storage: the one trait the server logic sees, and the types that cross it. The SQL backend
//! (`store::sql`) serves SQLite and PostgreSQL with the same statements and passes one
//! conformance suite on both; `FaultyStore` (feature `test-util`) wraps any store to fail
//! on demand.

pub mod admins;
#[cfg(feature = "test-util")]
mod faulty;
pub mod registry;
pub mod reports;
pub mod routing;
pub mod scope;
pub mod sql;
pub mod tasks;
mod types;

pub use admins::AccountStore;
#[cfg(feature = "test-util")]
pub use faulty::FaultyStore;
pub use registry::RegistryStore;
pub use reports::ReportStore;
pub use routing::RoutingStore;
pub use scope::{ScopeGrant, ScopeView};
pub use tasks::TaskStore;
pub use types::*;

use async_trait::async_trait;
use patrolsync_i18n::{Lang, Text, message};
use patrolsync_proto::{DeviceId, HazardId, Role};

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (WAL), the zero-config default.
    Sqlite,
    /// PostgreSQL, to scale out.
    Postgres,
}

/// A storage failure. Nothing of the failed call was committed (except where a test's fault
/// point fails a call after its `COMMIT`: see `faults::FaultAction::Fail`, under the
/// `test-util` feature).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error (connection, constraint, I/O).
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations could not be applied.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The request refers to something that does not exist.
    #[error("{0}")]
    NotFound(Text),
    /// The request is inconsistent with what is stored.
    #[error("{0}")]
    Invalid(Text),
    /// What is stored cannot be read back (damaged, or written by a newer server): the detail
    /// names the record.
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    /// Injected by a fault plan (tests).
    #[cfg(feature = "test-util")]
    #[error("injected store failure: {0}")]
    Injected(String),
    /// The server is stopping and takes no more writes.
    #[error("{0}")]
    Stopping(Text),
}

impl StoreError {
    /// The error in `lang`, for a person (the command line); `Display` gives it in English.
    pub fn text(&self, lang: Lang) -> String {
        match self {
            StoreError::NotFound(t) | StoreError::Invalid(t) | StoreError::Stopping(t) => {
                t.in_lang(lang)
            }
            StoreError::Database(e) => message!(lang, "store-database", error = e),
            StoreError::Migrate(e) => message!(lang, "store-migrate", error = e),
            StoreError::Corrupt(detail) => message!(lang, "store-corrupt", detail = detail),
            #[cfg(feature = "test-util")]
            StoreError::Injected(what) => message!(lang, "store-injected", what = what),
        }
    }
}

#[cfg(feature = "test-util")]
impl From<crate::faults::Injected> for StoreError {
    fn from(e: crate::faults::Injected) -> Self {
        StoreError::Injected(e.0.into())
    }
}

/// Everything the server's sync path needs of storage, one trait per area. Admin and report
/// code also reach storage only through traits: [`ReportStore`] and [`AccountStore`], together
/// with this one as [`AdminStore`].
#[async_trait]
pub trait Store:
    GridStore
    + DeviceStore
    + IngestStore
    + HazardStore
    + PullStore
    + PhotoStore
    + TemplateStore
    + TaskStore
    + 'static
{
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Counts for admins.
    async fn stats(&self, now_ms: i64) -> Result<Stats, StoreError>;

    /// The cluster-wide secret `name`: the stored value, or `candidate` if none was stored yet
    /// (stored now). Nodes starting together all get the first writer's value.
    async fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now_ms: i64,
    ) -> Result<Vec<u8>, StoreError>;
}

/// The grid: cells, checkpoints, the people assigned to them.
#[async_trait]
pub trait GridStore: Send + Sync {
    /// Creates or updates cells and checkpoints in one transaction (parents before children).
    /// Returns how many rows changed.
    async fn upsert_grid(
        &self,
        cells: &[NewCell],
        checkpoints: &[NewCheckpoint],
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Looks up checkpoints by code; unknown codes are simply absent from the result. The SQL
    /// store serves checkpoints it found before from memory: this node's own grid edits show
    /// at once, edits made elsewhere (another node, a command) within about a second.
    async fn checkpoints(&self, codes: &[String]) -> Result<Vec<CheckpointRef>, StoreError>;

    /// Looks up cells by code; unknown codes are absent.
    async fn cells(&self, codes: &[String]) -> Result<Vec<CellRef>, StoreError>;

    /// Looks up households by code; unknown codes are absent.
    async fn household_refs(&self, codes: &[String]) -> Result<Vec<HouseholdRef>, StoreError>;

    /// Retires the cell `code`, its subtree and their checkpoints at `now_ms`: they keep their
    /// history but take no new records, and devices learn it through pull. Returns how many
    /// cells and checkpoints were newly retired (0 and 0 when they already were).
    async fn retire_cell(&self, code: &str, now_ms: i64) -> Result<(u64, u64), StoreError>;

    /// Creates or updates people and sets their assignments to exactly the cells given, in one
    /// transaction. Returns how many users and assignments changed.
    async fn import_people(&self, people: &[NewPerson], now_ms: i64) -> Result<u64, StoreError>;

    /// Adds (or with `remove`, takes away) cells from `user`'s assignments at `now_ms`; their
    /// devices are granted (or revoked) the cells at their next pull.
    async fn assign(
        &self,
        user: &str,
        cells: &[String],
        remove: bool,
        now_ms: i64,
    ) -> Result<u64, StoreError>;
}

/// Devices: enrollment, sessions, Hello reports, activity, revocation.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Creates the user if needed, assigns the cells, and stores the code's hash.
    async fn create_enrollment(&self, e: &NewEnrollment, now_ms: i64) -> Result<(), StoreError>;

    /// Whether an enrollment code could be redeemed now (read-only; checked before the server
    /// spends CPU signing a certificate for an unauthenticated peer).
    async fn check_enrollment(&self, code_hash: &[u8; 32], now_ms: i64) -> Result<(), RedeemError>;

    /// Uses an enrollment code once, creating the device. A used or expired code changes nothing.
    async fn redeem_enrollment(
        &self,
        code_hash: &[u8; 32],
        device: &NewDevice,
        now_ms: i64,
    ) -> Result<DeviceSession, RedeemError>;

    /// The device holding the certificate with this SHA-256, with its user and cells.
    async fn device_by_cert(
        &self,
        cert_sha256: &[u8; 32],
    ) -> Result<Option<DeviceSession>, StoreError>;

    /// The device with this id, with its user and cells.
    async fn device_session(&self, device: DeviceId) -> Result<Option<DeviceSession>, StoreError>;

    /// Records a Hello; returns the device's acked_through.
    async fn record_hello(
        &self,
        device: DeviceId,
        report: &DeviceReport,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Devices, oldest enrollment first.
    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError>;

    /// Revokes the device whose id is `id` or starts with it (unique). Idempotent: revoking
    /// again keeps the first time. What the device pushed before stays.
    async fn revoke_device(&self, id: &str, now_ms: i64) -> Result<DeviceEntry, StoreError>;

    /// Devices revoked at or after `since_ms`.
    async fn revoked_since(&self, since_ms: i64) -> Result<Vec<DeviceId>, StoreError>;

    /// Records what a device did outside Hello and push.
    async fn record_activity(
        &self,
        device: DeviceId,
        activity: &Activity,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Every device's sync status, oldest enrollment first.
    async fn device_statuses(&self) -> Result<Vec<DeviceStatus>, StoreError>;

    /// A device's latest Hello reports, newest first.
    async fn device_history(
        &self,
        device: DeviceId,
        limit: u32,
    ) -> Result<Vec<ReportSample>, StoreError>;
}

/// Ingest: pushes applied exactly once, and what they left (check-ins, rejections, conflicts).
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// Applies the pushes of one or more devices in one transaction, exactly once per
    /// (device, device_seq). Returns one result per batch, in order.
    /// A batch that fails is rolled back alone (savepoint) and the others still commit; the
    /// outer error means nothing was committed.
    async fn ingest(
        &self,
        batches: &[IngestBatch],
        now_ms: i64,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError>;

    /// Group commits since the store opened whose pushes, written together, failed and were
    /// written again push by push (0 for a store that writes every push alone).
    fn groups_rewritten(&self) -> u64 {
        0
    }

    /// Check-ins, newest first, optionally for one device.
    async fn check_ins(
        &self,
        device: Option<DeviceId>,
        limit: u32,
    ) -> Result<Vec<StoredCheckIn>, StoreError>;

    /// The rejection log, newest first; only `device`'s when given.
    async fn rejections(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RejectionEntry>, StoreError>;

    /// Ops recorded as conflicts, newest first; only `device`'s when given.
    async fn conflicts(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConflictEntry>, StoreError>;
}

/// Hazards: their state, logs, counts and escalation.
#[async_trait]
pub trait HazardStore: Send + Sync {
    /// Looks up hazards by id, with how many entries of each `role` and `device` made; unknown
    /// ids are absent.
    async fn hazard_refs(
        &self,
        ids: &[HazardId],
        role: Role,
        device: DeviceId,
    ) -> Result<Vec<HazardRef>, StoreError>;

    /// A hazard's current state.
    async fn hazard(&self, id: HazardId) -> Result<Option<HazardSummary>, StoreError>;

    /// A hazard's log, in append order, with its hash chain.
    async fn hazard_log(&self, id: HazardId) -> Result<Vec<LogEntry>, StoreError>;

    /// Hazard counts by cell and status.
    async fn hazard_counts(&self, now_ms: i64) -> Result<Vec<HazardCount>, StoreError>;

    /// Escalates open hazards past their deadline at `now_ms`: each gets level 1 (the parent
    /// cell) once overdue and one more level per `interval_ms`, capped at the top cell, each
    /// level exactly once per deadline (whichever node gets there first). A hazard whose fix
    /// awaits verification (`rectified`) is not escalated. The new escalations go into the
    /// change log for the devices covering the cell escalated to.
    async fn escalate_overdue(
        &self,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<Escalated, StoreError>;

    /// Sends the reminders (督促) due at `now_ms` to the parties routing rules sent open hazards
    /// to, at the points of the rules in force relative to each hazard's deadline, each point
    /// once per deadline (whichever node gets there first). A hazard whose fix awaits
    /// verification (`rectified`), or that has no deadline, is not reminded of. Each reminder
    /// goes into the change log for the party's feed alone.
    async fn remind_due(&self, now_ms: i64) -> Result<Reminded, StoreError>;
}

/// The change log as each feed sees it, and what a device's scope holds.
#[async_trait]
pub trait PullStore: Send + Sync {
    /// Changes in `scope` after `cursor`, at most `limit` and, past the first, at most
    /// [`PULL_PAGE_BYTES`] of payload, so every page fits a device's response frame however long
    /// its entries' texts are. A cursor never skips a change that
    /// commits later: positions are handed out in commit order. Reaching a grant of the scope,
    /// the page first carries everything before it that entered the scope (its backfill), then
    /// the grant; a page that ends inside a backfill says where it goes on from
    /// ([`PullPage::backfill_after`], echoed back as `backfill_after`).
    async fn pull(
        &self,
        scope: &PullScope,
        cursor: u64,
        backfill_after: u64,
        limit: u32,
        compact: bool,
    ) -> Result<PullPage, StoreError>;

    /// The latest change-log position.
    async fn cursor(&self) -> Result<u64, StoreError>;

    /// What `device` should hold now: what its user's assignments to cells not retired cover,
    /// or for agency users the whole grid and the hazards their agency holds by the fold; and
    /// the grants of its feed.
    async fn scope_view(&self, device: &DeviceSession) -> Result<ScopeView, StoreError>;
}

/// Photos: which are stored, who may send and read them, which are owed.
#[async_trait]
pub trait PhotoStore: Send + Sync {
    /// Size of a stored photo, if stored.
    async fn blob(&self, sha256: &[u8; 32]) -> Result<Option<u64>, StoreError>;

    /// Records a verified photo (idempotent).
    async fn record_blob(
        &self,
        sha256: &[u8; 32],
        size: u64,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// What `device` may do with the photo, and whether it is stored: the one read an upload,
    /// a status request or a download makes before anything else.
    async fn blob_access(
        &self,
        sha256: &[u8; 32],
        device: DeviceId,
        scope: &PullScope,
    ) -> Result<BlobAccess, StoreError>;

    /// Records verified uploads in one transaction: each photo is stored (as
    /// [`PhotoStore::record_blob`]) and its device proved it holds it, having sent every byte.
    async fn record_uploads(&self, uploads: &[ProvedUpload], now_ms: i64)
    -> Result<(), StoreError>;

    /// Photos referenced by records but not uploaded yet, oldest first; only those `device`
    /// owes when given.
    async fn missing_photos(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MissingPhoto>, StoreError>;
}

/// What one device may do with one photo ([`PhotoStore::blob_access`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlobAccess {
    /// The device may send the photo: it sent a record referencing it, or a record referencing
    /// it lies in its scope.
    pub visible: bool,
    /// The device may read the photo (download it, and learn that the server holds it): a
    /// record in its scope that another device made references it, or the device proved it
    /// holds the photo by uploading it. Referencing a hash in one's own record proves nothing.
    pub readable: bool,
    /// The photo's size, if it is stored and the device may read it (anyone else learns
    /// nothing of whether it is stored).
    pub stored: Option<u64>,
}

/// A verified upload: `device` sent every byte of the photo `sha256`, of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvedUpload {
    /// The photo's SHA-256.
    pub sha256: [u8; 32],
    /// Its size in bytes.
    pub size: u64,
    /// The device that sent it.
    pub device: DeviceId,
}

/// Checklist templates.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Checklist template `id` at `version`, if published.
    async fn template(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<patrolsync_proto::template::Template>, StoreError>;

    /// Publishes `t` as the next version of its template, unless it equals the latest (then
    /// nothing changes). Returns the version that now holds this content and whether it is
    /// new. A new version goes into the change log for every device.
    async fn publish_template(
        &self,
        t: &patrolsync_proto::template::Template,
        now_ms: i64,
    ) -> Result<(u32, bool), StoreError>;

    /// Every published version of every template (or of `id`), by id then version.
    async fn templates(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<patrolsync_proto::template::Template>, StoreError>;
}

/// What the admin HTTP API and the command line use: the sync path's store and the admin areas.
pub trait AdminStore: Store + ReportStore + AccountStore + RegistryStore + RoutingStore {}

impl<T: Store + ReportStore + AccountStore + RegistryStore + RoutingStore> AdminStore for T {}
