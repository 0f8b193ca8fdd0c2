//! The records that cross the boundary: flat, owned, ids as strings, times as Unix ms.

use patrolsync_sdk as sdk;
use sdk::proto;

use crate::codes::ErrorCode;
use crate::{hazard_id, parse, photo_hash};

/// This device's enrollment.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Enrollment {
    /// Device id (UUID).
    pub device_id: String,
    /// Server `host:port`.
    pub server: String,
    /// User name.
    pub user: String,
    /// Role: `patroller`, `grid_manager`, `agency`, ….
    pub role: String,
    /// Grid cells assigned to the user.
    pub grid_cells: Vec<String>,
}

/// A position fix.
#[derive(Clone, Debug, uniffi::Record)]
pub struct GeoFix {
    /// WGS-84 latitude, degrees.
    pub latitude: f64,
    /// WGS-84 longitude, degrees.
    pub longitude: f64,
    /// Accuracy radius, metres.
    pub accuracy_m: f64,
    /// When the fix was taken, Unix ms.
    pub fix_time_ms: i64,
    /// The platform says the location is mocked.
    #[uniffi(default = false)]
    pub mock: bool,
    /// The datum of latitude and longitude: `wgs84` (GPS), `gcj02` (Android's network
    /// location and Amap/Tencent in mainland China) or `bd09` (Baidu). Converted to WGS-84
    /// before anything compares or stores it.
    #[uniffi(default = "wgs84")]
    pub datum: String,
}

impl GeoFix {
    pub(crate) fn into_proto(self) -> Result<proto::GeoFix, sdk::ErrorCode> {
        Ok(proto::GeoFix {
            latitude: self.latitude,
            longitude: self.longitude,
            accuracy_m: self.accuracy_m,
            fix_time_ms: self.fix_time_ms,
            mock: self.mock,
            datum: parse("fix.datum", &self.datum)?,
        })
    }

    pub(crate) fn from_proto(f: proto::GeoFix) -> GeoFix {
        GeoFix {
            latitude: f.latitude,
            longitude: f.longitude,
            accuracy_m: f.accuracy_m,
            fix_time_ms: f.fix_time_ms,
            mock: f.mock,
            datum: f.datum.as_str().into(),
        }
    }
}

/// Whether the user is on duty (在岗), and the fix the next sync sends.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Duty {
    /// On duty.
    pub on_duty: bool,
    /// The latest fix given while on duty (WGS-84); none off duty.
    pub position: Option<GeoFix>,
}

/// One checklist answer.
#[derive(Clone, Debug, uniffi::Record)]
pub struct AnswerInput {
    /// The template item's id.
    pub item_id: String,
    /// `ok`, `issue` or `not_applicable`.
    pub value: String,
    /// Free text (or the number, for a number item).
    #[uniffi(default = "")]
    pub note: String,
    /// SHA-256 (hex) of photos of this answer.
    #[uniffi(default = [])]
    pub photos: Vec<String>,
}

/// A check-in to record.
#[derive(Clone, Debug, uniffi::Record)]
pub struct CheckInInput {
    /// Checkpoint code.
    pub checkpoint: String,
    /// `inspected`, `locked`, `not_found`, `moved`, `closed`, `renovation` or `vacant`.
    pub outcome: String,
    /// `patrol`, `inspection` or `visit`.
    #[uniffi(default = "patrol")]
    pub kind: String,
    /// `nfc`, `qr`, `gps` or `manual`.
    #[uniffi(default = "manual")]
    pub method: String,
    /// The NFC/QR tag read, for `nfc` and `qr`.
    #[uniffi(default = "")]
    pub tag_uid: String,
    /// Where the phone was.
    #[uniffi(default = None)]
    pub fix: Option<GeoFix>,
    /// Checklist template id, for an inspection.
    #[uniffi(default = None)]
    pub template_id: Option<String>,
    /// Its version.
    #[uniffi(default = None)]
    pub template_version: Option<u32>,
    /// Checklist answers.
    #[uniffi(default = [])]
    pub answers: Vec<AnswerInput>,
    /// Free text.
    #[uniffi(default = "")]
    pub note: String,
    /// SHA-256 (hex) of photos, from `add_photo`.
    #[uniffi(default = [])]
    pub photos: Vec<String>,
    /// The platform's monotonic clock since boot, ms (iOS: `ProcessInfo.systemUptime`);
    /// read from the OS where it can be when absent.
    #[uniffi(default = None)]
    pub monotonic_ms: Option<u64>,
    /// For a visit (`kind` = `visit`): the code of the household visited (六必访), from
    /// `households()`.
    #[uniffi(default = None)]
    pub household: Option<String>,
}

fn hashes(field: &str, hex: &[String]) -> Result<Vec<[u8; 32]>, sdk::ErrorCode> {
    hex.iter().map(|h| photo_hash(h, field)).collect()
}

impl CheckInInput {
    pub(crate) fn into_sdk(self) -> Result<sdk::NewCheckIn, sdk::ErrorCode> {
        let template = match (self.template_id, self.template_version) {
            (Some(id), Some(v)) => Some((id, v)),
            (None, None) => None,
            (_, _) => {
                return Err(sdk::ErrorCode::Missing {
                    field: "template_version".into(),
                });
            }
        };
        let answers = self
            .answers
            .into_iter()
            .map(|a| {
                Ok(proto::checkin::Answer {
                    value: parse("answers.value", &a.value)?,
                    photos: hashes("answers.photos", &a.photos)?,
                    item_id: a.item_id,
                    note: a.note,
                })
            })
            .collect::<Result<_, sdk::ErrorCode>>()?;
        Ok(sdk::NewCheckIn {
            outcome: parse("outcome", &self.outcome)?,
            kind: parse("kind", &self.kind)?,
            method: parse("method", &self.method)?,
            tag_uid: self.tag_uid,
            fix: self.fix.map(GeoFix::into_proto).transpose()?,
            template,
            answers,
            photos: hashes("photos", &self.photos)?,
            note: self.note,
            monotonic_ms: self.monotonic_ms,
            checkpoint: self.checkpoint,
            household: self.household,
        })
    }
}

/// A recorded inspection and the hazards its answers raised.
#[derive(Clone, Debug, uniffi::Record)]
pub struct RecordedCheckIn {
    /// The check-in's id.
    pub check_in: String,
    /// The hazards' ids.
    pub hazards: Vec<String>,
}

/// A hazard to report.
#[derive(Clone, Debug, uniffi::Record)]
pub struct HazardInput {
    /// The grid cell it is in.
    pub grid_cell: String,
    /// `blocked_fire_lane`, `damaged_facility`, `blocked_evacuation`, `electrical`, `gas`,
    /// `open_flame`, `flammable_storage`, `rental_housing`, `renovation` or `other`.
    pub category: String,
    /// What is wrong.
    pub description: String,
    /// `general` or `major`.
    #[uniffi(default = "general")]
    pub severity: String,
    /// `on_the_spot` or `by_deadline`.
    #[uniffi(default = "on_the_spot")]
    pub handling: String,
    /// The checkpoint it was found at.
    #[uniffi(default = None)]
    pub checkpoint: Option<String>,
    /// Where it is.
    #[uniffi(default = None)]
    pub position: Option<GeoFix>,
    /// Fix by, Unix ms (for `by_deadline`).
    #[uniffi(default = None)]
    pub deadline_ms: Option<i64>,
    /// SHA-256 (hex) of photos.
    #[uniffi(default = [])]
    pub photos: Vec<String>,
}

impl HazardInput {
    pub(crate) fn into_sdk(self) -> Result<sdk::NewHazard, sdk::ErrorCode> {
        Ok(sdk::NewHazard {
            category: parse("category", &self.category)?,
            severity: parse("severity", &self.severity)?,
            handling: parse("handling", &self.handling)?,
            photos: hashes("photos", &self.photos)?,
            grid_cell: self.grid_cell,
            checkpoint: self.checkpoint,
            position: self.position.map(GeoFix::into_proto).transpose()?,
            deadline_ms: self.deadline_ms,
            description: self.description,
        })
    }
}

/// The details of a transition.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct TransitionInput {
    /// New deadline, Unix ms (`notify`, `verify_fail`).
    #[uniffi(default = None)]
    pub deadline_ms: Option<i64>,
    /// `police_station` or `fire_brigade` (`transfer`).
    #[uniffi(default = None)]
    pub agency: Option<String>,
    /// The hazard this one duplicates (`merge`).
    #[uniffi(default = None)]
    pub merge_into: Option<String>,
    /// Free text.
    #[uniffi(default = "")]
    pub note: String,
    /// SHA-256 (hex) of photos (the fix, the verification).
    #[uniffi(default = [])]
    pub photos: Vec<String>,
}

impl TransitionInput {
    pub(crate) fn into_sdk(self) -> Result<sdk::Transition, sdk::ErrorCode> {
        Ok(sdk::Transition {
            deadline_ms: self.deadline_ms,
            agency: self.agency.map(|a| parse("agency", &a)).transpose()?,
            merge_into: self
                .merge_into
                .map(|m| hazard_id(&m, "merge_into"))
                .transpose()?,
            photos: hashes("photos", &self.photos)?,
            note: self.note,
        })
    }
}

/// One field edit of a hazard.
#[derive(Clone, Debug, uniffi::Enum)]
pub enum HazardEdit {
    /// New description.
    Description {
        /// The text.
        text: String,
    },
    /// `general` or `major`.
    Severity {
        /// The severity.
        severity: String,
    },
    /// A category name.
    Category {
        /// The category.
        category: String,
    },
    /// New deadline (none: clear it).
    Deadline {
        /// Unix ms.
        deadline_ms: Option<i64>,
    },
    /// `on_the_spot` or `by_deadline`.
    Handling {
        /// The handling.
        handling: String,
    },
}

impl HazardEdit {
    pub(crate) fn into_sdk(self) -> Result<proto::hazard::FieldValue, sdk::ErrorCode> {
        use proto::hazard::FieldValue as F;
        Ok(match self {
            HazardEdit::Description { text } => F::Description(text),
            HazardEdit::Severity { severity } => F::Severity(parse("severity", &severity)?),
            HazardEdit::Category { category } => F::Category(parse("category", &category)?),
            HazardEdit::Deadline { deadline_ms } => F::Deadline(deadline_ms),
            HazardEdit::Handling { handling } => F::Handling(parse("handling", &handling)?),
        })
    }
}

/// One step of a hazard's history.
#[derive(Clone, Debug, uniffi::Record)]
pub struct HistoryItem {
    /// The event's id.
    pub event: String,
    /// The transition (`notify`, `fix_on_spot`, …).
    pub kind: String,
    /// The actor's role.
    pub role: String,
    /// Status before.
    pub from_status: String,
    /// Status after (the same as before for a conflict).
    pub to_status: String,
    /// When (the device's hybrid clock), Unix ms.
    pub at_ms: i64,
    /// Why it did not apply, if it lost against another device's transition.
    pub conflict: Option<ErrorInfo>,
}

/// An escalation of an overdue hazard.
#[derive(Clone, Debug, uniffi::Record)]
pub struct EscalationItem {
    /// Escalation level, from 1.
    pub level: u32,
    /// The cell it went up to.
    pub to_cell: String,
    /// The deadline it missed, Unix ms.
    pub deadline_ms: i64,
    /// When, Unix ms.
    pub escalated_at_ms: i64,
}

/// One step of a task, in fold order.
#[derive(Clone, Debug, uniffi::Record)]
pub struct TaskStep {
    /// `offer`, `accept`, `decline`, `arrive`, `complete`, `escalate`, `cancel`.
    pub kind: String,
    /// The user it names (offered or acting); empty for an escalation.
    pub user: String,
    /// The author's role (`admin` for the server's steps).
    pub role: String,
    /// When (the author's hybrid clock), Unix ms.
    pub at_ms: i64,
    /// Why it did not apply (`task_taken`, `wrong_state`, …), if it did not.
    pub conflict: Option<ErrorInfo>,
}

/// A task as the device sees it, folded from every step.
#[derive(Clone, Debug, uniffi::Record)]
pub struct TaskItem {
    /// Its id.
    pub id: String,
    /// `help_call`, `inspect`, `verify_fix`, `visit`.
    pub kind: String,
    /// `normal` or `urgent`.
    pub urgency: String,
    /// `open`, `offered`, `accepted`, `arrived`, `completed`, `escalated`, `cancelled`.
    pub status: String,
    /// The cell.
    pub grid_cell: String,
    /// The household, key unit and checkpoint it is for (empty when none).
    pub household: String,
    /// The key unit.
    pub unit: String,
    /// The checkpoint (arriving is a check-in there).
    pub checkpoint: String,
    /// Where, if known.
    pub position: Option<GeoFix>,
    /// What is wanted.
    pub description: String,
    /// Who has it.
    pub assignee: Option<String>,
    /// Whom it is offered to now.
    pub offered_to: Option<String>,
    /// What was found: `found_fine`, `help_given`, `hazard_reported`.
    pub result: Option<String>,
    /// The hazard reported on completing.
    pub hazard: Option<String>,
    /// The check-in made on arriving.
    pub check_in: Option<String>,
    /// Steps of this device not yet acknowledged are in it already.
    pub has_local_changes: bool,
    /// Every step, conflicts included.
    pub history: Vec<TaskStep>,
}

impl TaskItem {
    pub(crate) fn new(v: sdk::TaskView, language: &str) -> TaskItem {
        let s = v.state;
        let task = s.task.map(|(t, _)| t);
        TaskItem {
            id: s.id.to_string(),
            kind: task
                .as_ref()
                .map(|t| t.kind.as_str())
                .unwrap_or_default()
                .into(),
            urgency: task
                .as_ref()
                .map(|t| t.urgency.as_str())
                .unwrap_or_default()
                .into(),
            status: s.status.as_str().into(),
            grid_cell: task
                .as_ref()
                .map(|t| t.grid_cell.clone())
                .unwrap_or_default(),
            household: task
                .as_ref()
                .map(|t| t.household.clone())
                .unwrap_or_default(),
            unit: task.as_ref().map(|t| t.unit.clone()).unwrap_or_default(),
            checkpoint: task
                .as_ref()
                .map(|t| t.checkpoint.clone())
                .unwrap_or_default(),
            position: task
                .as_ref()
                .and_then(|t| t.position.clone())
                .map(GeoFix::from_proto),
            description: task.map(|t| t.description).unwrap_or_default(),
            assignee: s.assignee,
            offered_to: s.offered_to,
            result: s.result.map(|r| r.as_str().into()),
            hazard: s.hazard.map(|h| h.to_string()),
            check_in: s.check_in.map(|c| c.to_string()),
            has_local_changes: v.has_local_changes,
            history: s
                .history
                .iter()
                .map(|h| TaskStep {
                    kind: h.kind.as_str().into(),
                    user: h.user.clone(),
                    role: h.role.as_str().into(),
                    at_ms: h.stamp.hlc.wall_ms as i64,
                    conflict: sdk::task_conflict_code(h).map(|c| ErrorInfo::new(c, language)),
                })
                .collect(),
        }
    }
}

/// A reminder (督促) of a hazard's deadline, to the party a routing rule sent it to.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ReminderItem {
    /// The deadline it reminds of, Unix ms.
    pub deadline_ms: i64,
    /// The point relative to the deadline, ms: negative before it, zero or more after it.
    pub offset_ms: i64,
    /// When the server sent it, Unix ms.
    pub reminded_at_ms: i64,
}

/// A hazard as the device sees it, folded from every device's events.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Hazard {
    /// Its id.
    pub id: String,
    /// `reported`, `rectifying`, `rectified`, `transferred`, `agency_handling`, `closed`, ….
    pub status: String,
    /// Grid cell (empty until the report has arrived).
    pub grid_cell: String,
    /// Checkpoint, if reported at one.
    pub checkpoint: String,
    /// Where it is.
    pub position: Option<GeoFix>,
    /// Category.
    pub category: String,
    /// Severity.
    pub severity: String,
    /// Handling.
    pub handling: String,
    /// Deadline, Unix ms.
    pub deadline_ms: Option<i64>,
    /// Description.
    pub description: String,
    /// The agency holding it, after a transfer.
    pub agency: Option<String>,
    /// The hazard it was merged into.
    pub duplicate_of: Option<String>,
    /// SHA-256 (hex) of every photo of the report and its events.
    pub photos: Vec<String>,
    /// Reported on the device, Unix ms (0 until the report has arrived).
    pub reported_at_ms: i64,
    /// Whether this device has changes the server has not acknowledged yet.
    pub has_local_changes: bool,
    /// Every event, applied or conflicting.
    pub history: Vec<HistoryItem>,
    /// Escalations, oldest first.
    pub escalations: Vec<EscalationItem>,
    /// Reminders of its deadline to this user as its routed party, oldest first.
    pub reminders: Vec<ReminderItem>,
}

impl Hazard {
    pub(crate) fn new(v: sdk::HazardView, language: &str) -> Hazard {
        let s = v.state;
        let report = s.report.as_ref().map(|(r, _)| r);
        Hazard {
            id: s.id.to_string(),
            status: s.status.as_str().into(),
            grid_cell: report.map(|r| r.grid_cell.clone()).unwrap_or_default(),
            checkpoint: report.map(|r| r.checkpoint.clone()).unwrap_or_default(),
            position: report
                .and_then(|r| r.position.clone())
                .map(GeoFix::from_proto),
            category: s.category.value.as_str().into(),
            severity: s.severity.value.as_str().into(),
            handling: s.handling.value.as_str().into(),
            deadline_ms: s.deadline_ms.value,
            description: s.description.value,
            agency: s.agency.map(|a| a.as_str().into()),
            duplicate_of: s.duplicate_of.map(|d| d.to_string()),
            photos: s.photos.iter().map(hex::encode).collect(),
            reported_at_ms: report.map(|r| r.device_time_ms).unwrap_or(0),
            has_local_changes: v.has_local_changes,
            history: s
                .history
                .into_iter()
                .map(|h| HistoryItem {
                    conflict: h
                        .conflict
                        .is_some()
                        .then(|| ErrorInfo::new(sdk::conflict_code(&h), language)),
                    event: h.event.to_string(),
                    kind: h.kind.as_str().into(),
                    role: h.role.as_str().into(),
                    from_status: h.from.as_str().into(),
                    to_status: h.to.as_str().into(),
                    at_ms: h.stamp.hlc.wall_ms as i64,
                })
                .collect(),
            escalations: v
                .escalations
                .into_iter()
                .map(|e| EscalationItem {
                    level: e.level,
                    to_cell: e.to_cell,
                    deadline_ms: e.deadline_ms,
                    escalated_at_ms: e.escalated_at_ms,
                })
                .collect(),
            reminders: v
                .reminders
                .into_iter()
                .map(|r| ReminderItem {
                    deadline_ms: r.deadline_ms,
                    offset_ms: r.offset_ms,
                    reminded_at_ms: r.reminded_at_ms,
                })
                .collect(),
        }
    }
}

/// A key unit (重点单位) in the device's cells.
#[derive(Clone, Debug, uniffi::Record)]
pub struct KeyUnit {
    /// Its code.
    pub code: String,
    /// Its grid cell.
    pub cell: String,
    /// `rental_housing`, `small_venue`, `school`, `hospital`, `high_rise`, `market`,
    /// `warehouse`, `drug_handling` or `other`.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// The fire-safety responsible person.
    pub responsible_person: String,
    /// Their phone (empty if not on file).
    pub responsible_phone: String,
    /// `low`, `medium` or `high`.
    pub risk: String,
    /// The last four-capabilities self-assessment, `YYYY-MM-DD`, if on file.
    pub self_check_date: Option<String>,
    /// Codes of the checkpoints at the unit.
    pub checkpoints: Vec<String>,
}

impl From<sdk::KeyUnit> for KeyUnit {
    fn from(u: sdk::KeyUnit) -> KeyUnit {
        KeyUnit {
            code: u.code,
            cell: u.cell,
            kind: u.kind.as_str().to_owned(),
            name: u.name,
            address: u.address,
            responsible_person: u.responsible_person,
            responsible_phone: u.responsible_phone,
            risk: u.risk.as_str().to_owned(),
            self_check_date: u.self_check_date,
            checkpoints: u.checkpoints,
        }
    }
}

/// A must-visit household (六必访) in the device's cells.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Household {
    /// Its code: what a visit names (`CheckInInput.household`).
    pub code: String,
    /// Its grid cell.
    pub cell: String,
    /// Address (building, unit, door).
    pub address: String,
    /// `hardship`, `elderly_alone`, `disabled`, `migrant`, `unemployed` or `assisted`.
    pub group: String,
    /// Whom to ask for at the door.
    pub contact_name: String,
    /// Their phone (empty if not on file).
    pub contact_phone: String,
}

impl From<sdk::Household> for Household {
    fn from(h: sdk::Household) -> Household {
        Household {
            code: h.code,
            cell: h.cell,
            address: h.address,
            group: h.group.as_str().to_owned(),
            contact_name: h.contact_name,
            contact_phone: h.contact_phone,
        }
    }
}

/// A checkpoint in the device's cells.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Checkpoint {
    /// Its code.
    pub code: String,
    /// Its grid cell.
    pub cell: String,
    /// Display name.
    pub name: String,
    /// The NFC/QR tag there (empty if none).
    pub tag_uid: String,
    /// WGS-84 latitude, degrees, if surveyed.
    pub latitude: Option<f64>,
    /// WGS-84 longitude, degrees, if surveyed.
    pub longitude: Option<f64>,
    /// How far from the point a GPS check-in counts, metres.
    pub radius_m: f64,
}

impl From<sdk::Checkpoint> for Checkpoint {
    fn from(c: sdk::Checkpoint) -> Checkpoint {
        Checkpoint {
            code: c.code,
            cell: c.cell,
            name: c.name,
            tag_uid: c.tag_uid,
            latitude: c.latitude,
            longitude: c.longitude,
            radius_m: c.radius_m,
        }
    }
}

/// One checklist item.
#[derive(Clone, Debug, uniffi::Record)]
pub struct TemplateItem {
    /// Stable id.
    pub id: String,
    /// What to check.
    pub label: String,
    /// `check`, `number` or `text`.
    pub answer: String,
    /// Must be answered.
    pub mandatory: bool,
    /// A photo is required when the answer is `issue`.
    pub photo_on_fail: bool,
    /// The hazard an `issue` raises, by category.
    pub hazard_category: Option<String>,
}

/// A checklist template.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Template {
    /// Stable id.
    pub id: String,
    /// Version, from 1.
    pub version: u32,
    /// Display name.
    pub name: String,
    /// The items, in order.
    pub items: Vec<TemplateItem>,
}

impl From<proto::template::Template> for Template {
    fn from(t: proto::template::Template) -> Template {
        Template {
            id: t.id,
            version: t.version,
            name: t.name,
            items: t
                .items
                .into_iter()
                .map(|i| TemplateItem {
                    id: i.id,
                    label: i.label,
                    answer: i.answer.as_str().into(),
                    mandatory: i.mandatory,
                    photo_on_fail: i.photo_on_fail,
                    hazard_category: i.hazard_category.map(|c| c.as_str().into()),
                })
                .collect(),
        }
    }
}

/// A failure as a code and its message in the client's language.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ErrorInfo {
    /// What went wrong.
    pub code: ErrorCode,
    /// The message a person reads.
    pub message: String,
}

impl ErrorInfo {
    pub(crate) fn new(code: sdk::ErrorCode, language: &str) -> ErrorInfo {
        ErrorInfo {
            message: code.message(language),
            code: code.into(),
        }
    }
}

/// What is pending and how the last sync went.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Status {
    /// Enrolled device id.
    pub device_id: Option<String>,
    /// Server `host:port`.
    pub server: Option<String>,
    /// User name.
    pub user: Option<String>,
    /// Records waiting to upload.
    pub pending_ops: u64,
    /// Age of the oldest, ms.
    pub oldest_pending_age_ms: Option<u64>,
    /// Records the server refused (see `rejected`).
    pub rejected_ops: u64,
    /// Photos waiting to upload.
    pub pending_photos: u64,
    /// Their bytes.
    pub pending_photo_bytes: u64,
    /// When a sync last completed, Unix ms.
    pub last_sync_at_ms: Option<i64>,
    /// When a sync was last attempted, Unix ms.
    pub last_attempt_at_ms: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<ErrorInfo>,
    /// Records and photos that volunteers who signed out of this phone left to be sent under
    /// their own names (`Unsent.HAND_OVER`); they go at the next syncs.
    pub handed_over: u64,
}

/// What becomes of the records a volunteer has not yet sent when they sign out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Unsent {
    /// Sign out only when nothing waits; otherwise `unsent_records{count}`.
    Refuse,
    /// Keep them on the phone under the signed-out volunteer's identity, out of the next
    /// volunteer's sight, and send them as theirs at the next syncs (`Status.handed_over`
    /// counts what is left).
    HandOver,
    /// Throw them away.
    Discard,
}

impl From<Unsent> for sdk::Unsent {
    fn from(u: Unsent) -> sdk::Unsent {
        match u {
            Unsent::Refuse => sdk::Unsent::Refuse,
            Unsent::HandOver => sdk::Unsent::HandOver,
            Unsent::Discard => sdk::Unsent::Discard,
        }
    }
}

impl Status {
    pub(crate) fn new(s: sdk::Status, language: &str) -> Status {
        Status {
            device_id: s.device_id,
            server: s.server,
            user: s.user,
            pending_ops: s.pending_ops,
            oldest_pending_age_ms: s.oldest_pending_age_ms,
            rejected_ops: s.rejected_ops,
            pending_photos: s.pending_photos,
            pending_photo_bytes: s.pending_photo_bytes,
            last_sync_at_ms: s.last_sync_at_ms,
            last_attempt_at_ms: s.last_attempt_at_ms,
            last_error: s.last_error_code.map(|c| ErrorInfo::new(c, language)),
            handed_over: s.handed_over,
        }
    }
}

/// Whether the server could be reached, as of the last attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum Connectivity {
    /// The last attempt failed (or none was made).
    Offline,
    /// A sync is reaching for the server.
    Connecting,
    /// The server answered the last attempt.
    Connected,
}

/// What a sync is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SyncPhase {
    /// No sync running.
    Idle,
    /// Sending records.
    Push,
    /// Receiving changes.
    Pull,
    /// Uploading photos.
    Photos,
}

/// The latest sync state, for a status line.
#[derive(Clone, Debug, uniffi::Record)]
pub struct SyncState {
    /// Reachable or not.
    pub connectivity: Connectivity,
    /// What a sync is doing.
    pub phase: SyncPhase,
    /// The first download's progress: positions reached…
    pub bootstrap_done: Option<u64>,
    /// …of this many.
    pub bootstrap_total: Option<u64>,
    /// Whether a sync has ever completed here.
    pub has_synced: bool,
    /// When a sync last completed, Unix ms.
    pub last_synced_at_ms: Option<i64>,
    /// Why the last push failed.
    pub last_push_error: Option<ErrorInfo>,
    /// Why the last pull failed.
    pub last_pull_error: Option<ErrorInfo>,
}

impl SyncState {
    pub(crate) fn new(s: &sdk::SyncState, language: &str) -> SyncState {
        SyncState {
            connectivity: match s.connectivity {
                sdk::Connectivity::Offline => Connectivity::Offline,
                sdk::Connectivity::Connecting => Connectivity::Connecting,
                sdk::Connectivity::Connected => Connectivity::Connected,
            },
            phase: match s.phase {
                sdk::SyncPhase::Idle => SyncPhase::Idle,
                sdk::SyncPhase::Push => SyncPhase::Push,
                sdk::SyncPhase::Pull => SyncPhase::Pull,
                sdk::SyncPhase::Photos => SyncPhase::Photos,
            },
            bootstrap_done: s.bootstrap.map(|p| p.done),
            bootstrap_total: s.bootstrap.map(|p| p.total),
            has_synced: s.has_synced,
            last_synced_at_ms: s.last_synced_at_ms,
            last_push_error: s
                .last_push_error
                .clone()
                .map(|c| ErrorInfo::new(c, language)),
            last_pull_error: s
                .last_pull_error
                .clone()
                .map(|c| ErrorInfo::new(c, language)),
        }
    }
}

/// A record the server refused.
#[derive(Clone, Debug, uniffi::Record)]
pub struct RejectedOp {
    /// Its sequence number on this device.
    pub device_seq: u64,
    /// `check_in`, `hazard_report`, `hazard_event` or `hazard_edit`.
    pub kind: String,
    /// The record's id.
    pub record_id: String,
    /// Why, with what it named.
    pub error: ErrorInfo,
}

impl RejectedOp {
    pub(crate) fn new(r: sdk::RejectedOp, language: &str) -> RejectedOp {
        RejectedOp {
            device_seq: r.device_seq,
            kind: r.kind,
            record_id: r.record_id,
            error: ErrorInfo::new(r.error, language),
        }
    }
}

/// A photo the device holds or held.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Photo {
    /// SHA-256, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// `queued`, `uploaded` or `failed`.
    pub state: String,
    /// Bytes sent so far.
    pub bytes_sent: u64,
    /// Why it failed.
    pub error: Option<ErrorInfo>,
}

impl Photo {
    pub(crate) fn new(p: sdk::PhotoStatus, language: &str) -> Photo {
        Photo {
            sha256: p.sha256,
            size: p.size,
            state: p.state,
            bytes_sent: p.bytes_sent,
            error: p.error_code.map(|c| ErrorInfo::new(c, language)),
        }
    }
}

/// A transition that lost against another device's, kept in the hazard's history.
#[derive(Clone, Debug, uniffi::Record)]
pub struct Conflict {
    /// The hazard.
    pub hazard: String,
    /// The event that did not apply.
    pub event: String,
    /// Its transition.
    pub kind: String,
    /// Why (`wrong_state`: another device's transition came first).
    pub error: ErrorInfo,
}

impl Conflict {
    pub(crate) fn new(c: sdk::ConflictReport, language: &str) -> Conflict {
        Conflict {
            hazard: c.hazard,
            event: c.event,
            kind: c.kind,
            error: ErrorInfo::new(c.code, language),
        }
    }
}

/// Something entered the device's scope, or left it.
#[derive(Clone, Debug, uniffi::Record)]
pub struct ScopeChange {
    /// Entered (true) or left.
    pub granted: bool,
    /// `cell` or `hazard`.
    pub kind: String,
    /// Its code or id.
    pub id: String,
    /// Why (`assigned`, `unassigned`, `transferred`, …).
    pub reason: String,
    /// Local records dropped with it.
    pub dropped: u64,
}

impl From<sdk::ScopeNotice> for ScopeChange {
    fn from(n: sdk::ScopeNotice) -> ScopeChange {
        ScopeChange {
            granted: n.granted,
            kind: n.kind,
            id: n.id,
            reason: n.reason,
            dropped: n.dropped,
        }
    }
}

/// What a sync did.
#[derive(Clone, Debug, uniffi::Record)]
pub struct SyncSummary {
    /// Records sent.
    pub pushed: u64,
    /// Applied by the server.
    pub applied: u64,
    /// Already there (sent before).
    pub duplicates: u64,
    /// Refused (see `rejected`).
    pub rejected: u64,
    /// Still waiting.
    pub remaining: u64,
    /// Changes received.
    pub pulled: u64,
    /// Hazards that changed.
    pub hazards_changed: Vec<String>,
    /// Photos uploaded.
    pub photos_uploaded: u64,
    /// Photo bytes sent.
    pub photo_bytes_sent: u64,
    /// Transitions that lost.
    pub new_conflicts: Vec<Conflict>,
    /// What entered or left the scope.
    pub scope_changes: Vec<ScopeChange>,
    /// How long it took, ms.
    pub elapsed_ms: u64,
}

impl SyncSummary {
    pub(crate) fn new(s: sdk::SyncSummary, language: &str) -> SyncSummary {
        SyncSummary {
            pushed: s.pushed,
            applied: s.applied,
            duplicates: s.duplicates,
            rejected: s.rejected,
            remaining: s.remaining,
            pulled: s.pulled,
            hazards_changed: s.hazards_changed,
            photos_uploaded: s.photos_uploaded,
            photo_bytes_sent: s.photo_bytes_sent,
            new_conflicts: s
                .new_conflicts
                .into_iter()
                .map(|c| Conflict::new(c, language))
                .collect(),
            scope_changes: s.scope_changes.into_iter().map(ScopeChange::from).collect(),
            elapsed_ms: s.elapsed_ms,
        }
    }
}

/// Which local data changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum DataKind {
    /// This device's check-ins.
    CheckIns,
    /// Hazards in view.
    Hazards,
    /// Photos.
    Photos,
    /// Checklist templates.
    Templates,
    /// Cells and checkpoints in scope.
    Grid,
    /// Tasks in view.
    Tasks,
    /// Any of them (reload everything).
    All,
}

/// Which hazards `hazards_where` returns.
#[derive(Clone, Debug, Default, uniffi::Record)]
pub struct HazardFilter {
    /// Only those not closed or merged.
    #[uniffi(default = false)]
    pub open_only: bool,
    /// Only those reported in this grid cell.
    #[uniffi(default = None)]
    pub cell: Option<String>,
    /// At most this many (all when none).
    #[uniffi(default = None)]
    pub limit: Option<u32>,
    /// Skip this many of those selected (the page's start).
    #[uniffi(default = 0)]
    pub offset: u32,
}

/// One of this device's check-ins and whether the server has it.
#[derive(Clone, Debug, uniffi::Record)]
pub struct LocalCheckIn {
    /// Its id.
    pub id: String,
    /// The checkpoint.
    pub checkpoint: String,
    /// The outcome.
    pub outcome: String,
    /// When, on the device, Unix ms.
    pub device_time_ms: i64,
    /// Free text.
    pub note: String,
    /// `pending`, `synced` or `rejected`.
    pub state: String,
}

impl From<sdk::LocalCheckIn> for LocalCheckIn {
    fn from(c: sdk::LocalCheckIn) -> LocalCheckIn {
        LocalCheckIn {
            id: c.id,
            checkpoint: c.checkpoint,
            outcome: c.outcome,
            device_time_ms: c.device_time_ms,
            note: c.note,
            state: c.state,
        }
    }
}

/// What the engine and syncs report.
#[derive(Clone, Debug, uniffi::Enum)]
pub enum SyncEvent {
    /// A sync began.
    Started,
    /// A sync completed.
    Finished {
        /// What it did.
        summary: SyncSummary,
    },
    /// A sync failed.
    Failed {
        /// Why.
        error: ErrorInfo,
        /// When the engine retries, ms (none: it waits for a trigger).
        retry_in_ms: Option<u64>,
    },
    /// The server has new data.
    Notified {
        /// Its change-log position.
        cursor: u64,
    },
    /// A hazard in view changed.
    HazardChanged {
        /// The hazard.
        id: String,
    },
    /// A transition lost against another device's.
    Conflict {
        /// Which.
        conflict: Conflict,
    },
    /// The server offered this user a task (a help call, say): show it to accept or decline.
    TaskOffered {
        /// The task's id.
        task: String,
    },
    /// Something entered or left the scope.
    ScopeChanged {
        /// What.
        change: ScopeChange,
    },
    /// Photo upload progress.
    PhotoProgress {
        /// SHA-256, hex.
        sha256: String,
        /// Bytes the server has.
        sent: u64,
        /// Photo size.
        total: u64,
    },
    /// The engine stopped for good (revoked, not recognised).
    Stopped {
        /// Why.
        error: ErrorInfo,
    },
    /// Local data changed: reload the lists that show it.
    DataChanged {
        /// Which.
        what: DataKind,
    },
    /// The listener fell behind and this many events were skipped; read the state afresh.
    Missed {
        /// How many.
        count: u64,
    },
}

impl SyncEvent {
    pub(crate) fn new(e: sdk::SyncEvent, language: &str) -> SyncEvent {
        match e {
            sdk::SyncEvent::Started => SyncEvent::Started,
            sdk::SyncEvent::Finished(s) => SyncEvent::Finished {
                summary: SyncSummary::new(s, language),
            },
            sdk::SyncEvent::Failed { code, retry_in, .. } => SyncEvent::Failed {
                error: ErrorInfo::new(code, language),
                retry_in_ms: retry_in.map(|d| d.as_millis() as u64),
            },
            sdk::SyncEvent::Notified { cursor } => SyncEvent::Notified { cursor },
            sdk::SyncEvent::HazardChanged { id } => SyncEvent::HazardChanged { id },
            sdk::SyncEvent::TaskOffered { task } => SyncEvent::TaskOffered { task },
            sdk::SyncEvent::Conflict(c) => SyncEvent::Conflict {
                conflict: Conflict::new(c, language),
            },
            sdk::SyncEvent::ScopeChanged(n) => SyncEvent::ScopeChanged { change: n.into() },
            sdk::SyncEvent::PhotoProgress {
                sha256,
                sent,
                total,
            } => SyncEvent::PhotoProgress {
                sha256,
                sent,
                total,
            },
            sdk::SyncEvent::DataChanged(kind) => SyncEvent::DataChanged {
                what: match kind {
                    sdk::DataKind::CheckIns => DataKind::CheckIns,
                    sdk::DataKind::Hazards => DataKind::Hazards,
                    sdk::DataKind::Photos => DataKind::Photos,
                    sdk::DataKind::Templates => DataKind::Templates,
                    sdk::DataKind::Grid => DataKind::Grid,
                    sdk::DataKind::Tasks => DataKind::Tasks,
                    // A kind this version does not know: every list reloads.
                    _ => DataKind::All,
                },
            },
            sdk::SyncEvent::Stopped { code, .. } => SyncEvent::Stopped {
                error: ErrorInfo::new(code, language),
            },
            // An event this version does not know: say something was missed.
            _ => SyncEvent::Missed { count: 1 },
        }
    }
}
