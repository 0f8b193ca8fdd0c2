//! What compliance reports and ledgers read: a subtree's cells and checkpoints, its check-ins
//! in a time range, its hazards and their logs, its people. Read-only and outside the device
//! path: [`ReportStore`].

use async_trait::async_trait;
use patrolsync_proto::CellPath;
use patrolsync_proto::HazardId;
use patrolsync_proto::hazard::{HazardOp, Stamp};

use super::StoreError;

/// A grid cell, for roll-ups.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportCell {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Level, 1 (big) to 4 (micro).
    pub level: u8,
    /// `/S1/S1-C2/`: its ancestors' codes and its own.
    pub path: CellPath,
    /// When it was retired, if it was.
    pub retired_at_ms: Option<i64>,
}

/// A checkpoint, for compliance.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportCheckpoint {
    /// Row id.
    pub id: i64,
    /// Code.
    pub code: String,
    /// Its cell's code.
    pub cell: String,
    /// Its cell's path.
    pub path: CellPath,
    /// Its cell's level.
    pub level: u8,
    /// Position and radius, if it has a position.
    pub place: Option<(f64, f64, f64)>,
    /// Cadence override (`daily`, `weekly`, `monthly`, `quarterly`), else the level's.
    pub cadence: Option<String>,
    /// When it was retired, if it was.
    pub retired_at_ms: Option<i64>,
    /// When it was created, if known.
    pub created_at_ms: Option<i64>,
}

/// A check-in as ledgers and anomaly rules read it.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerCheckIn {
    /// Client id (hex of the UUID bytes as stored).
    pub id: String,
    /// Device id.
    pub device: String,
    /// The user's row id (anomaly rules compare a user's consecutive check-ins).
    pub user_id: i64,
    /// User name.
    pub user: String,
    /// Checkpoint code.
    pub checkpoint: String,
    /// Checkpoint name.
    pub checkpoint_name: String,
    /// The checkpoint's position and radius, if it has a position.
    pub place: Option<(f64, f64, f64)>,
    /// Cell code.
    pub cell: String,
    /// `patrol`, `inspection` or `visit`.
    pub kind: String,
    /// `nfc`, `qr`, `gps` or `manual`.
    pub method: String,
    /// `inspected` or a could-not-inspect reason.
    pub outcome: String,
    /// Device time, ms.
    pub device_time_ms: i64,
    /// Server receive time, ms.
    pub received_at_ms: i64,
    /// Latitude, longitude, accuracy, if there was a fix.
    pub fix: Option<(f64, f64, f64)>,
    /// The fix was mocked.
    pub mock: bool,
    /// The device's clock offset when the check-in arrived, ms.
    pub clock_offset_ms: Option<i64>,
    /// Checklist template and version.
    pub template: (String, i64),
    /// Answers as stored (JSON array).
    pub answers: String,
    /// Photo hashes as stored (JSON array).
    pub photos: String,
    /// Note.
    pub note: String,
    /// Marked as a double tap of an earlier check-in.
    pub double_tap: bool,
    /// In the subtree asked for. The rest are the same users' check-ins elsewhere, read so each
    /// in-scope check-in is compared with its user's true previous one.
    pub in_scope: bool,
}

/// Check-in outcomes as stored.
pub const OUTCOMES: [&str; 7] = [
    "inspected",
    "locked",
    "not_found",
    "moved",
    "closed",
    "renovation",
    "vacant",
];

/// A check-in as compliance reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Visit {
    /// The checkpoint's row id.
    pub checkpoint_id: i64,
    /// The user's row id.
    pub user_id: i64,
    /// Device time, ms.
    pub device_time_ms: i64,
    /// Server receive time, ms.
    pub received_at_ms: i64,
    /// Latitude, longitude, accuracy, if there was a fix.
    pub fix: Option<(f64, f64, f64)>,
    /// The fix was mocked.
    pub mock: bool,
    /// Marked as a double tap.
    pub double_tap: bool,
    /// The device's clock offset when the check-in arrived, ms.
    pub clock_offset_ms: Option<i64>,
    /// Under the subtree asked for (else another cell's, read for the user's previous one).
    pub in_scope: bool,
    /// The outcome (one of [`OUTCOMES`]).
    pub outcome: &'static str,
}

/// A hazard with its whole log, for the hazard ledgers.
#[derive(Clone, Debug)]
pub struct LedgerHazard {
    /// Id.
    pub id: HazardId,
    /// Cell code.
    pub cell: String,
    /// The cell's path.
    pub path: CellPath,
    /// Reporter's name.
    pub reporter: String,
    /// Report time (device), ms.
    pub reported_at_ms: i64,
    /// The party a routing rule sent it to (a user's name, an agency), if one did.
    pub routed_party: Option<String>,
    /// The log, in position order: stamp, op, the actor's name, and the entry's chain hash.
    pub log: Vec<LedgerLogEntry>,
}

/// One entry of a hazard's log.
#[derive(Clone, Debug)]
pub struct LedgerLogEntry {
    /// Stamp.
    pub stamp: Stamp,
    /// The op.
    pub op: HazardOp,
    /// Who made it.
    pub actor: String,
    /// Chain hash over the previous hash and this entry.
    pub hash: [u8; 32],
}

/// A person with cells under the report's root, for the evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportPerson {
    /// Row id.
    pub id: i64,
    /// User name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Assigned cells under the root: code and path.
    pub cells: Vec<(String, String)>,
}

/// What reports and ledgers read.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// The cells under `cell` (itself included) that existed at `as_of_ms`, in path order (by
    /// bytes, whatever the database's collation); a retirement after `as_of_ms` is not yet one.
    async fn report_cells(
        &self,
        cell: Option<&str>,
        as_of_ms: i64,
    ) -> Result<Vec<ReportCell>, StoreError>;

    /// The checkpoints under `cell` that existed at `as_of_ms`, retired ones included (a report
    /// decides what was due); a retirement after `as_of_ms` is not yet one.
    async fn report_checkpoints(
        &self,
        cell: Option<&str>,
        as_of_ms: i64,
    ) -> Result<Vec<ReportCheckpoint>, StoreError>;

    /// Check-ins with device time in `[from_ms, to_ms)`, received by `as_of_ms`, of every user
    /// who made one under `cell` then (those elsewhere marked not [`LedgerCheckIn::in_scope`]),
    /// ordered by user, then device time: the order anomaly rules walk them in.
    async fn report_check_ins(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<LedgerCheckIn>, StoreError>;

    /// What compliance and anomaly rules need of each check-in with device time in
    /// `[from_ms, to_ms)`, received by `as_of_ms`, by a user who made one under `cell` then,
    /// ordered by user, device time and id: no names, notes or answers (a city's month is a
    /// million rows).
    async fn report_visits(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<Visit>, StoreError>;

    /// Hazards under `cell` reported (device time) before `to_ms` that were open at `from_ms`
    /// or changed since, with their logs as the server held them at `as_of_ms` (entries
    /// received later left out; a hazard whose report arrived later not at all), oldest report
    /// first.
    async fn report_hazards(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<LedgerHazard>, StoreError>;

    /// People assigned to cells under `cell`, by name. Assignments keep no history, so a report
    /// as of an earlier moment still lists today's people and their cells.
    async fn report_people(&self, cell: Option<&str>) -> Result<Vec<ReportPerson>, StoreError>;
}
