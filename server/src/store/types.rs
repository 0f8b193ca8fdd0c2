//! The types that cross the storage traits.

use patrolsync_proto::hazard::HazardOp;

use super::StoreError;
use patrolsync_proto::{CheckIn, DeviceId, HazardId, Hlc, OpId, Role};

/// A grid cell to create or update.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCell {
    /// Unique code, e.g. `S1-C2`.
    pub code: String,
    /// Parent cell code; `None` for a top-level cell.
    pub parent: Option<String>,
    /// Level 1 (street) to 4 (building/unit).
    pub level: u32,
    /// Display name.
    pub name: String,
    /// Boundary as GeoJSON geometry text (Polygon or MultiPolygon), if known.
    pub boundary: Option<String>,
}

/// A checkpoint to create or update.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCheckpoint {
    /// Unique code, e.g. `S1-C2-K3-B4-P1`.
    pub code: String,
    /// The cell it belongs to.
    pub cell: String,
    /// Display name.
    pub name: String,
    /// NFC/QR tag UID, if tagged.
    pub tag_uid: Option<String>,
    /// Position, if known.
    pub position: Option<(f64, f64)>,
    /// Radius within which a check-in counts as on site, metres.
    pub radius_m: f64,
    /// Its own cadence (`daily`, `weekly`, `monthly`, `quarterly`) instead of its level's.
    pub cadence: Option<String>,
}

/// A person to create or update, with the cells they are assigned to (replacing others).
#[derive(Clone, Debug, PartialEq)]
pub struct NewPerson {
    /// Unique user name.
    pub name: String,
    /// Role.
    pub role: patrolsync_proto::Role,
    /// For agency users: `police_station` or `fire_brigade`.
    pub agency: Option<String>,
    /// Cell codes.
    pub cells: Vec<String>,
}

/// A checkpoint as ingest needs it: where it is in the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRef {
    /// Checkpoint code.
    pub code: String,
    /// Row id.
    pub id: i64,
    /// Its cell's row id.
    pub cell_id: i64,
    /// Its cell's path (`/S1/S1-C2/…/`).
    pub cell_path: String,
    /// Retired checkpoints take no new check-ins.
    pub retired: bool,
}

/// A household as ingest needs it: where it is in the tree.
#[derive(Clone, Debug, PartialEq)]
pub struct HouseholdRef {
    /// Household code.
    pub code: String,
    /// Row id.
    pub id: i64,
    /// Its cell's path (`/S1/S1-C2/…/`).
    pub cell_path: String,
    /// When it was taken off the register: a visit made from then on is refused.
    pub removed_at_ms: Option<i64>,
}

/// An enrollment code to create, with the user it enrolls.
#[derive(Clone, Debug)]
pub struct NewEnrollment {
    /// SHA-256 of the code; the code itself is never stored.
    pub code_hash: [u8; 32],
    /// User name; created if new.
    pub user: String,
    /// The user's role (updated if the user exists).
    pub role: Role,
    /// Cell codes assigned to the user (added to existing assignments).
    pub cells: Vec<String>,
    /// When the code stops working.
    pub expires_at_ms: i64,
    /// For agency users: `police_station` or `fire_brigade`.
    pub agency: Option<String>,
}

/// A device being enrolled.
#[derive(Clone, Debug)]
pub struct NewDevice {
    /// Server-assigned id.
    pub id: DeviceId,
    /// Name the device gave.
    pub name: String,
    /// SHA-256 of its certificate (DER).
    pub cert_sha256: [u8; 32],
    /// App version it reported.
    pub app_version: String,
}

/// Why an enrollment code was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// No such code.
    #[error(
        "enrollment code not recognised; check it was copied whole, or ask an admin for a new one"
    )]
    Unknown,
    /// Used before.
    #[error(
        "enrollment code was already used (by device {device}); each code enrolls one device, ask an admin for a new one"
    )]
    AlreadyUsed {
        /// The device that used it.
        device: String,
    },
    /// Past its expiry.
    #[error("enrollment code expired {ago_s} s ago; ask an admin for a new one")]
    Expired {
        /// Seconds since expiry.
        ago_s: i64,
    },
    /// Storage failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The user and cells of a device, for authorization.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSession {
    /// The device.
    pub id: DeviceId,
    /// Its name.
    pub name: String,
    /// Its user's row id.
    pub user_id: i64,
    /// Its user's name.
    pub user: String,
    /// Its user's role.
    pub role: Role,
    /// Assigned cells as `(code, path)`.
    pub cells: Vec<(String, String)>,
    /// When it was revoked, if it was.
    pub revoked_at_ms: Option<i64>,
    /// For agency users: which agency.
    pub agency: Option<String>,
}

impl DeviceSession {
    /// What the device may pull and fetch photos of.
    pub fn pull_scope(&self) -> PullScope {
        let agency = (self.role == Role::Agency).then(|| self.agency.clone().unwrap_or_default());
        PullScope {
            paths: self.cells.iter().map(|(_, p)| p.clone()).collect(),
            audience: PullScope::audience_of(self.user_id, agency.as_deref()),
            agency,
        }
    }

    /// The scope feed the device reads (`user:ID`, or `agency:NAME`).
    pub fn audience(&self) -> String {
        let agency = (self.role == Role::Agency).then(|| self.agency.clone().unwrap_or_default());
        PullScope::audience_of(self.user_id, agency.as_deref())
    }

    /// Whether `cell_path` lies in one of the user's cells or their subtrees.
    pub fn covers(&self, cell_path: &str) -> bool {
        self.cells
            .iter()
            .any(|(_, p)| patrolsync_proto::grid::covers(p, cell_path))
    }

    /// Assigned cell codes.
    pub fn cell_codes(&self) -> Vec<String> {
        self.cells.iter().map(|(c, _)| c.clone()).collect()
    }
}

/// What a device reported about itself at Hello.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceReport {
    /// Ops waiting in its outbox.
    pub outbox_depth: u64,
    /// Age of its oldest waiting op, ms.
    pub oldest_pending_age_ms: u64,
    /// Photo bytes waiting to upload.
    pub pending_photo_bytes: u64,
    /// App version.
    pub app_version: String,
    /// SDK version.
    pub sdk_version: String,
    /// Device clock minus server clock, ms (estimate).
    pub clock_offset_ms: i64,
    /// Round-trip time of its connection as QUIC measures it, ms.
    pub rtt_ms: Option<u32>,
    /// UDP bytes received from it since the last report on this connection.
    pub bytes_in: u64,
    /// UDP bytes sent to it since the last report on this connection.
    pub bytes_out: u64,
    /// Whether its user is on duty, with the fix it sent (WGS-84) if any; `None`: off duty.
    pub duty: Option<Option<patrolsync_proto::GeoFix>>,
}

/// Something a device did that its sync health records (besides Hello and push).
#[derive(Clone, Debug, PartialEq)]
pub enum Activity {
    /// A pull succeeded.
    Pulled,
    /// A request failed; the message is what the device was told.
    Failed(String),
    /// Traffic on a connection since its last report (sent when the connection ends).
    Traffic {
        /// UDP bytes received from the device.
        bytes_in: u64,
        /// UDP bytes sent to it.
        bytes_out: u64,
    },
}

/// Everything the server knows about a device's sync, for the health view. Times are Unix ms.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct DeviceStatus {
    /// Device id.
    pub id: String,
    /// Name it gave at enrollment.
    pub name: String,
    /// Its user.
    pub user: String,
    /// The user's role.
    pub role: String,
    /// Enrolled at.
    pub enrolled_at_ms: i64,
    /// Revoked at.
    pub revoked_at_ms: Option<i64>,
    /// Last Hello.
    pub last_seen_at_ms: Option<i64>,
    /// Last push the server committed.
    pub last_push_at_ms: Option<i64>,
    /// Last pull the server answered.
    pub last_pull_at_ms: Option<i64>,
    /// Highest contiguous op recorded.
    pub acked_through: i64,
    /// App version it reported.
    pub app_version: Option<String>,
    /// SDK version it reported.
    pub sdk_version: Option<String>,
    /// Ops in its outbox at its last Hello, less those its pushes were answered for since.
    pub outbox_depth: Option<i64>,
    /// Age of its oldest unsent op at its last Hello, ms (0 once its pushes emptied the outbox).
    pub oldest_pending_age_ms: Option<i64>,
    /// Photo bytes waiting to upload at its last Hello.
    pub pending_photo_bytes: Option<i64>,
    /// Its clock minus the server's at its last Hello, ms.
    pub clock_offset_ms: Option<i64>,
    /// Round-trip time at its last Hello, ms.
    pub rtt_ms: Option<i64>,
    /// UDP bytes received from it, all connections.
    pub bytes_in: i64,
    /// UDP bytes sent to it.
    pub bytes_out: i64,
    /// Ops of its the server refused.
    pub rejected_ops: i64,
    /// Ops of its recorded as conflicts.
    pub conflicts: i64,
    /// Last time an op of its was refused or conflicted.
    pub last_problem_at_ms: Option<i64>,
    /// Last failed request.
    pub last_error_at_ms: Option<i64>,
    /// What it was told then.
    pub last_error: Option<String>,
    /// Photos its records reference that have not arrived.
    pub missing_photos: i64,
    /// Since when the oldest of those has been owed.
    pub missing_photos_since_ms: Option<i64>,
}

/// One Hello report kept in a device's history.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ReportSample {
    /// When the server received it, ms.
    pub at_ms: i64,
    /// Ops in the outbox.
    pub outbox_depth: i64,
    /// Age of the oldest unsent op, ms.
    pub oldest_pending_age_ms: i64,
    /// Photo bytes waiting.
    pub pending_photo_bytes: i64,
    /// Device clock minus server clock, ms.
    pub clock_offset_ms: i64,
    /// Round-trip time, ms.
    pub rtt_ms: Option<i64>,
}

/// An op recorded as a conflict: its hazard transition was not possible when it arrived.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConflictEntry {
    /// Device that sent it.
    pub device: String,
    /// Its op sequence number.
    pub device_seq: u64,
    /// Why it conflicted.
    pub message: String,
    /// When it was recorded, ms.
    pub recorded_at_ms: i64,
}

/// Hazards in one cell with one status.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HazardCount {
    /// The cell's path (`/S1/S1-C2/`).
    pub cell_path: String,
    /// Hazard status.
    pub status: String,
    /// How many.
    pub count: i64,
    /// How many of them are open past their deadline.
    pub overdue: i64,
}

/// The pushes of one device to commit, already validated.
#[derive(Clone, Debug)]
pub struct IngestBatch {
    /// The device.
    pub device: DeviceId,
    /// Its user's row id.
    pub user_id: i64,
    /// Ops in device_seq order.
    pub ops: Vec<PreparedOp>,
}

/// One op with the decision validation made about it (used only if it is not a replay).
#[derive(Clone, Debug)]
pub struct PreparedOp {
    /// Position in the device's sequence.
    pub device_seq: u64,
    /// The op's id.
    pub op_id: OpId,
    /// The op's HLC.
    pub hlc: Hlc,
    /// What to do with it.
    pub action: OpAction,
}

/// What to do with a new op.
#[derive(Clone, Debug)]
pub enum OpAction {
    /// Store the check-in.
    InsertCheckIn(Box<CheckInRow>),
    /// Append to a hazard's log and refold it.
    Hazard(Box<HazardRow>),
    /// Append to a task's log and refold it.
    Task(Box<TaskRow>),
    /// Record the refusal in the rejection log.
    Reject(Rejection),
}

/// A validated check-in with where it belongs.
#[derive(Clone, Debug)]
pub struct CheckInRow {
    /// The check-in as the device recorded it.
    pub check_in: CheckIn,
    /// Checkpoint row id.
    pub checkpoint_id: i64,
    /// Cell row id.
    pub cell_id: i64,
    /// The household a visit names, its row id.
    pub household_id: Option<i64>,
}

/// A validated hazard op with where its hazard lives.
#[derive(Clone, Debug)]
pub struct HazardRow {
    /// The op (report, event with the actor's role, or field edit).
    pub op: HazardOp,
    /// The role of the user who made it.
    pub role: Role,
    /// The hazard's cell row id.
    pub cell_id: i64,
    /// The hazard's cell path (for scope and pull).
    pub cell_path: String,
    /// Identity of the entry: the hazard id for a report, the event id, or the op id for an edit.
    pub entry_id: uuid::Uuid,
}

/// A validated task op with where its task lives.
#[derive(Clone, Debug)]
pub struct TaskRow {
    /// The op (the task, or a step with the actor's role).
    pub op: patrolsync_proto::task::TaskOp,
    /// The role of the user who made it.
    pub role: Role,
    /// The task's cell row id.
    pub cell_id: i64,
    /// The task's cell path.
    pub cell_path: String,
}

/// A task as ingest needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRef {
    /// The task.
    pub id: patrolsync_proto::TaskId,
    /// Its cell row id.
    pub cell_id: i64,
    /// Its cell path.
    pub cell_path: String,
    /// Entries in its log.
    pub log_len: i64,
    /// Of those, made by the asking device.
    pub device_entries: i64,
}

/// A task an admin or the intake API makes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    /// The cell.
    pub cell: String,
    /// What it is.
    pub kind: patrolsync_proto::task::TaskKind,
    /// How urgent.
    pub urgency: patrolsync_proto::task::Urgency,
    /// The household it is for, if any.
    pub household: Option<String>,
    /// The key unit it is for, if any.
    pub unit: Option<String>,
    /// A checkpoint at the place, if any.
    pub checkpoint: Option<String>,
    /// Where (WGS-84), if known.
    pub position: Option<(f64, f64)>,
    /// What is wanted.
    pub description: String,
}

/// A task as admins see it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TaskSummary {
    /// Its id.
    pub id: String,
    /// Its cell.
    pub cell: String,
    /// `help_call`, `inspect`, `verify_fix`, `visit`.
    pub kind: String,
    /// `normal` or `urgent`.
    pub urgency: String,
    /// `open`, `offered`, `accepted`, `arrived`, `completed`, `escalated`, `cancelled`.
    pub status: String,
    /// The household, unit and checkpoint it is for.
    pub household: Option<String>,
    /// The key unit.
    pub unit: Option<String>,
    /// The checkpoint.
    pub checkpoint: Option<String>,
    /// What is wanted.
    pub description: String,
    /// Who has it.
    pub assignee: Option<String>,
    /// Who it is offered to now.
    pub offered_to: Option<String>,
    /// What was found.
    pub result: Option<String>,
    /// Steps that did not apply.
    pub conflicts: i64,
    /// When it was made, accepted, arrived at, completed, escalated (server time, ms).
    pub created_at_ms: i64,
    /// When accepted.
    pub accepted_at_ms: Option<i64>,
    /// When arrived at.
    pub arrived_at_ms: Option<i64>,
    /// When completed.
    pub completed_at_ms: Option<i64>,
    /// When escalated to the managers.
    pub escalated_at_ms: Option<i64>,
}

/// A task as reports read it: its row, where it is, and its log folded as of the report's
/// moment.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// The row.
    pub summary: TaskSummary,
    /// Its cell's path.
    pub cell_path: String,
    /// Its log, folded.
    pub state: patrolsync_proto::task::TaskState,
}

/// One entry of a task's log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TaskLogEntry {
    /// Its position, from 1.
    pub position: u64,
    /// `task` or the step (`offer`, `accept`, …).
    pub kind: String,
    /// The user it names (offered or acting).
    pub user: String,
    /// The author's role (`admin` for the server's entries).
    pub role: String,
    /// The device, empty for the server's.
    pub device: String,
    /// Why it did not apply, for a conflict (English).
    pub conflict: Option<String>,
    /// The same as a code: `task_taken`, `wrong_state`, `role` or `before_task`.
    pub conflict_code: Option<String>,
    /// What the code is about: who has the task, the state it was in, the role.
    pub conflict_with: Option<String>,
    /// The check-in linked on arriving.
    pub check_in: Option<String>,
    /// When the server received it, ms.
    pub received_at_ms: i64,
    /// The chain hash, hex.
    pub hash: String,
}

/// What one dispatch run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dispatched {
    /// Offers made: (task, user).
    pub offers: Vec<(String, String)>,
    /// Tasks escalated to their managers.
    pub escalated: Vec<String>,
    /// Paths of the tasks' cells (for Notify).
    pub paths: Vec<String>,
    /// The change-log position after them (0 when none).
    pub cursor: u64,
}

/// A cell as ingest needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct CellRef {
    /// Code.
    pub code: String,
    /// Row id.
    pub id: i64,
    /// Path `/S1/S1-C2/`.
    pub path: String,
    /// Retired cells take no new records.
    pub retired: bool,
}

/// A hazard as ingest needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct HazardRef {
    /// The hazard.
    pub id: HazardId,
    /// Its cell's row id.
    pub cell_id: i64,
    /// Its cell's path.
    pub cell_path: String,
    /// Its status.
    pub status: String,
    /// Its category as folded (an information report's stays an information kind).
    pub category: String,
    /// The agency holding it, if transferred.
    pub agency: Option<String>,
    /// The feed of the party a routing rule sent it to (`user:ID`, `agency:NAME`), if any.
    pub routed_to: Option<String>,
    /// Entries in its log.
    pub log_len: i64,
    /// Of those, made by users of the asking session's role.
    pub role_entries: i64,
    /// Of those, made by the asking device.
    pub device_entries: i64,
}

/// Whose scope a pull reads, and what a device may fetch photos of.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PullScope {
    /// The cells the user is assigned now (`/S1/S1-C1/`), for photo access.
    pub paths: Vec<String>,
    /// For agency users: their agency (they see the grid and the hazards it holds).
    pub agency: Option<String>,
    /// Whose scope feed the pull reads: `user:ID`, or `agency:NAME` for agency users. What is
    /// visible, and since when, comes from the grants the store keeps for it.
    pub audience: String,
}

impl PullScope {
    /// The scope feed of user `user_id`, or of their agency for agency users.
    pub fn audience_of(user_id: i64, agency: Option<&str>) -> String {
        match agency {
            Some(a) => format!("agency:{a}"),
            None => format!("user:{user_id}"),
        }
    }
}

/// One entry of the change log.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeRow {
    /// Log position.
    pub seq: u64,
    /// `cell`, `checkpoint`, `hazard_report`, `hazard_event` or `hazard_edit`.
    pub kind: String,
    /// The record, protobuf bytes.
    pub payload: Vec<u8>,
    /// Device that made it (empty for admin changes).
    pub device: String,
    /// Role of its author.
    pub role: String,
    /// Its HLC.
    pub hlc: Hlc,
}

/// A page of changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PullPage {
    /// Changes in order.
    pub changes: Vec<ChangeRow>,
    /// Where the next pull starts.
    pub next_cursor: u64,
    /// More changes wait after `next_cursor`.
    pub has_more: bool,
    /// Non-zero when the page ends inside the backfill of the grant after `next_cursor`: the
    /// position the backfill goes on after.
    pub backfill_after: u64,
}

/// Payload bytes a pull page carries at most (the first change always goes, whatever its
/// size). Each change adds under a hundred bytes of framing, so even a page of a thousand stays
/// far below the 4 MiB response frame a device reads; without it, a page of hazards with long
/// Chinese notes (up to 4,096 characters, 12 KiB each) outgrew the frame and that device could
/// never pull again.
pub const PULL_PAGE_BYTES: usize = 1 << 20;

/// A hazard's current state, as stored.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct HazardSummary {
    /// The hazard.
    pub id: String,
    /// Its cell.
    pub cell: String,
    /// Status.
    pub status: String,
    /// Category.
    pub category: String,
    /// Severity.
    pub severity: String,
    /// Handling.
    pub handling: String,
    /// Description.
    pub description: String,
    /// Deadline, ms.
    pub deadline_ms: Option<i64>,
    /// The agency holding it.
    pub agency: Option<String>,
    /// Events that did not apply.
    pub conflicts: i64,
    /// Entries in its log.
    pub log_len: i64,
    /// An open hazard of the same category nearby, reported earlier (for a manager to merge).
    pub possible_duplicate_of: Option<String>,
    /// The hazard this one was merged into.
    pub duplicate_of: Option<String>,
    /// Hazards merged into this one; their reports, photos and logs stay intact.
    pub merged_from: Vec<String>,
}

/// One entry of a hazard's log, with its chain hash.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// Position from 1.
    pub position: u64,
    /// `report`, `event` or `edit`.
    pub kind: String,
    /// The record's bytes.
    pub payload: Vec<u8>,
    /// Who made it.
    pub stamp: patrolsync_proto::hazard::Stamp,
    /// Their role.
    pub role: Role,
    /// Chain hash over the previous hash and this entry.
    pub hash: [u8; 32],
}

/// Classes of refusal, mapped to wire error codes at the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectCode {
    /// The record is malformed or implausible.
    Invalid,
    /// Outside the user's cells or role.
    Forbidden,
    /// Refers to something that does not exist.
    NotFound,
    /// A kind of op this server does not apply.
    Unsupported,
}

impl RejectCode {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Invalid => "invalid",
            RejectCode::Forbidden => "forbidden",
            RejectCode::NotFound => "not_found",
            RejectCode::Unsupported => "unsupported",
        }
    }

    pub(crate) fn parse(s: &str) -> RejectCode {
        match s {
            "forbidden" => RejectCode::Forbidden,
            "not_found" => RejectCode::NotFound,
            "unsupported" => RejectCode::Unsupported,
            _ => RejectCode::Invalid,
        }
    }
}

/// Why an op was refused: what the device is answered (in its language, from `reason`,
/// `field`, `value` and `limit`) and what the log keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// Class.
    pub code: RejectCode,
    /// Stable machine-readable reason, e.g. `out_of_range`.
    pub reason: String,
    /// The field concerned, or empty.
    pub field: String,
    /// Explanation for an admin, in English, with the detail (e.g. the user's cells).
    pub message: String,
    /// What the field named, where the message needs it (a checkpoint or cell code, a hazard
    /// id), or empty.
    pub value: String,
    /// The rule's bound, where it has one (`too_long`: the most characters).
    pub limit: Option<u64>,
}

impl Refusal {
    /// The message a device's user reads, in `lang`: the catalog's message for the refusal's
    /// code and parameters; in English, the server's own explanation, which names the rule's
    /// detail (the values a field accepts, the user's cells).
    pub fn text(&self, lang: patrolsync_i18n::Lang) -> String {
        use patrolsync_i18n::ErrorCode;
        /// Reasons whose message names what the field held.
        const NAMING: [&str; 7] = [
            "outside_scope",
            "unknown_checkpoint",
            "unknown_cell",
            "unknown_hazard",
            "retired_checkpoint",
            "retired_cell",
            "not_transferred",
        ];
        // In English the server's own sentence; so too for a refusal recorded before its value
        // was kept (migration 0018), whose catalog message would name nothing.
        let unnamed = self.value.is_empty() && NAMING.contains(&self.reason.as_str());
        if (lang == patrolsync_i18n::Lang::En || unnamed) && !self.message.is_empty() {
            return self.message.clone();
        }
        let code = match self.reason.as_str() {
            // What the role may not do is the value (the transition), not the field's name.
            "role" if !self.value.is_empty() => ErrorCode::Forbidden {
                action: self.value.clone(),
            },
            _ => ErrorCode::from_refusal(&self.reason, &self.field, &self.value, self.limit),
        };
        code.message(lang.tag())
    }
}

/// A refusal, as kept in the rejection log.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    /// Why.
    pub refusal: Refusal,
    /// The op as received (protobuf), so nothing sent is lost.
    pub payload: Vec<u8>,
}

/// What happened to an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now.
    Applied,
    /// Stored before; nothing changed.
    Duplicate,
    /// Refused; in the rejection log.
    Rejected,
    /// Recorded, but its precondition failed in the fold; visible in the hazard's history.
    Conflict,
}

impl Outcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
            Outcome::Conflict => "conflict",
        }
    }

    pub(crate) fn parse(s: &str) -> Outcome {
        match s {
            "applied" => Outcome::Applied,
            "rejected" => Outcome::Rejected,
            "conflict" => Outcome::Conflict,
            _ => Outcome::Duplicate,
        }
    }
}

/// The result of one op.
#[derive(Clone, Debug, PartialEq)]
pub struct OpResult {
    /// The op's sequence number.
    pub device_seq: u64,
    /// What happened.
    pub outcome: Outcome,
    /// For rejections: why.
    pub rejection: Option<Refusal>,
    /// For conflicts: why the transition did not apply.
    pub conflict: Option<String>,
}

/// The result of one device's push.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchResult {
    /// Highest contiguous device_seq recorded for the device.
    pub acked_through: u64,
    /// One result per op, in the order given.
    pub results: Vec<OpResult>,
    /// Cell paths whose data changed (to wake devices in scope).
    pub changed_paths: Vec<String>,
    /// Scope feeds (`user:ID`, `agency:NAME`) that were granted or revoked something.
    pub changed_audiences: Vec<String>,
    /// Change-log position after the commit.
    pub cursor: u64,
    /// What this call newly recorded (replays excluded), for metrics.
    pub fresh: FreshCounts,
}

/// Ops a push newly recorded, by outcome (replays of ops recorded before are not counted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FreshCounts {
    /// Stored: applied, or recorded as a conflict.
    pub stored: u64,
    /// Of those, recorded as conflicts.
    pub conflicts: u64,
    /// Refused, one entry per op, by code.
    pub rejected: Vec<RejectCode>,
}

/// Counts for `admin stats`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Enrolled devices, including revoked ones.
    pub devices: i64,
    /// Revoked devices.
    pub devices_revoked: i64,
    /// Users.
    pub users: i64,
    /// Grid cells.
    pub grid_cells: i64,
    /// Checkpoints.
    pub checkpoints: i64,
    /// Check-ins stored (double taps included).
    pub check_ins: i64,
    /// Check-ins that are double taps of an earlier one (counted once in ledgers).
    pub double_taps: i64,
    /// Hazards stored.
    pub hazards: i64,
    /// Photos (blobs) stored.
    pub blobs: i64,
    /// Photos referenced by records but not uploaded yet.
    pub missing_photos: i64,
    /// Ops refused (the rejection log).
    pub rejected_ops: i64,
    /// Enrollment codes neither used nor expired.
    pub open_enrollment_codes: i64,
}

/// A stored check-in with its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredCheckIn {
    /// The check-in as recorded.
    pub check_in: CheckIn,
    /// Device that sent it.
    pub device: String,
    /// Its op sequence number.
    pub device_seq: u64,
    /// User name.
    pub user: String,
    /// Server receive time, ms.
    pub received_at_ms: i64,
    /// Set when this is a double tap of an earlier check-in.
    pub duplicate_of: Option<patrolsync_proto::CheckInId>,
}

/// One entry of the rejection log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RejectionEntry {
    /// Device that sent the op.
    pub device: String,
    /// Its op sequence number.
    pub device_seq: u64,
    /// Class of refusal.
    pub code: String,
    /// Reason code.
    pub reason: String,
    /// Field concerned.
    pub field: String,
    /// Explanation, in English with the server's detail.
    pub message: String,
    /// When it was refused, ms.
    pub recorded_at_ms: i64,
    /// What the field named (a checkpoint or cell code, a hazard id), or empty.
    pub value: String,
    /// The rule's bound, where it has one.
    pub limit: Option<u64>,
}

impl RejectionEntry {
    /// The refusal's message in `lang`, as its device was told.
    pub fn text(&self, lang: patrolsync_i18n::Lang) -> String {
        Refusal {
            code: RejectCode::parse(&self.code),
            reason: self.reason.clone(),
            field: self.field.clone(),
            message: self.message.clone(),
            value: self.value.clone(),
            limit: self.limit,
        }
        .text(lang)
    }
}

/// A device as admins list it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceEntry {
    /// Device id.
    pub id: String,
    /// Name it gave at enrollment.
    pub name: String,
    /// Its user.
    pub user: String,
    /// The user's role.
    pub role: String,
    /// Enrolled at, ms.
    pub enrolled_at_ms: i64,
    /// Last Hello, ms.
    pub last_seen_at_ms: Option<i64>,
    /// Revoked at, ms.
    pub revoked_at_ms: Option<i64>,
    /// Highest contiguous op recorded.
    pub acked_through: i64,
}

/// A photo some record references that the server does not have yet.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct MissingPhoto {
    /// SHA-256, hex.
    pub sha256: String,
    /// `check_in` or `hazard`.
    pub record_kind: String,
    /// The record's id.
    pub record_id: String,
    /// The device that owes it.
    pub device: String,
    /// Its user.
    pub user: String,
    /// Since when, ms.
    pub since_ms: i64,
}

/// What one reminder run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reminded {
    /// The new reminders.
    pub reminders: Vec<Reminder>,
    /// The feeds they went to (for Notify).
    pub audiences: Vec<String>,
    /// The change-log position after them (0 when none).
    pub cursor: u64,
}

/// A reminder (督促) to the party a routing rule sent a hazard to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Reminder {
    /// The hazard.
    pub hazard: String,
    /// The party, as people read it (a user's name, an agency).
    pub party: String,
    /// The deadline, ms.
    pub deadline_ms: i64,
    /// The point relative to the deadline, ms (negative: before it).
    pub offset_ms: i64,
    /// When, ms.
    pub reminded_at_ms: i64,
}

/// Which rule a hazard would be routed by, and to whom (`admin routing check`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RouteCheck {
    /// The rules in force (0: none published).
    pub version: u32,
    /// The cell asked about, and its path.
    pub cell: String,
    /// Its path.
    pub cell_path: String,
    /// The category asked about.
    pub category: String,
    /// The rule that routes it (its number from 1 in the file), if one does.
    pub rule: Option<RouteHit>,
    /// Rules that held but could not route, in the order tried, and why.
    pub passed: Vec<RoutePass>,
    /// The users who get the hazard in any case: the grid managers of the cell and its
    /// ancestors (all of it, when no rule routes it).
    pub managers: Vec<String>,
}

/// The rule a hazard is routed by.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RouteHit {
    /// Its number from 1 in the file.
    pub n: usize,
    /// Its name.
    pub name: String,
    /// The cell it holds under.
    pub cell: String,
    /// The party, as people read it.
    pub party: String,
    /// The party's feed.
    pub audience: String,
}

/// A rule that held but routed nothing.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RoutePass {
    /// Its number from 1 in the file.
    pub n: usize,
    /// `no_unit` (no key unit at the checkpoint, or no checkpoint), `no_responsible_user`,
    /// `no_user` (the user is gone or has no party role now).
    pub reason: String,
}

/// What one escalation run did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Escalated {
    /// The new escalations.
    pub escalations: Vec<Escalation>,
    /// Paths of the cells escalated to (for Notify).
    pub paths: Vec<String>,
    /// The change-log position after them (0 when none).
    pub cursor: u64,
}

/// One level of an overdue hazard's escalation.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Escalation {
    /// The hazard.
    pub hazard: String,
    /// 1 for the parent cell, 2 for the one above, …
    pub level: u32,
    /// The cell escalated to.
    pub to_cell: String,
    /// The deadline it is overdue against, ms.
    pub deadline_ms: i64,
    /// When, ms.
    pub escalated_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use patrolsync_i18n::Lang;

    fn refusal(reason: &str, field: &str, value: &str) -> Refusal {
        Refusal {
            code: RejectCode::Forbidden,
            reason: reason.into(),
            field: field.into(),
            message: format!("{field} {value} refused ({reason}), in the server's words"),
            value: value.into(),
            limit: None,
        }
    }

    #[test]
    fn a_refusal_is_worded_in_the_devices_language() {
        let scope = refusal("outside_scope", "checkpoint", "S2-K1");
        assert_eq!(
            scope.text(Lang::ZhCn),
            "该检查点不在您负责的网格内（S2-K1）"
        );
        assert_eq!(
            scope.text(Lang::En),
            scope.message,
            "English keeps the detail"
        );
        // A role refusal names the transition the role may not fire.
        let role = refusal("role", "kind", "verify_pass");
        assert_eq!(
            role.text(Lang::ZhCn),
            "您的角色无权进行此操作（verify_pass）"
        );
        // Recorded before the value was kept: the server's sentence rather than a blank.
        let old = refusal("unknown_checkpoint", "checkpoint", "");
        assert_eq!(old.text(Lang::ZhCn), old.message);
        // A reason that names nothing is worded from the catalog all the same.
        let long = Refusal {
            limit: Some(2000),
            ..refusal("too_long", "note", "")
        };
        assert_eq!(long.text(Lang::ZhCn), "内容过长：note 最多 2000 个字");
    }
}
