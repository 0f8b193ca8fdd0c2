//! Hazards (隐患) and their closed loop (闭环): the report, the transitions of the state machine
//! and who may fire them, last-writer-wins field registers, and the deterministic fold that turns
//! a hazard's ops into its state. Every replica that holds the same ops computes the same state,
//! whatever order they arrived in and however often: the fold sorts by stamp (HLC, then device)
//! and ignores repeats. A transition whose precondition fails is kept in the history as a
//! conflict, never applied and never dropped.

use crate::checkin::{Invalid, MAX_PHOTOS, MAX_TEXT_CHARS, plausible_time, validate_fix};
use crate::hlc::Hlc;
use crate::ids::{DeviceId, EventId, HazardId};
use crate::people::Role;
use crate::{GeoFix, wire};

wire_enum!(
    /// What kind of hazard (the must-report categories, 八必报, as the system names them).
    HazardCategory, HazardCategory, "category", {
    /// Blocked fire lane.
    BlockedFireLane = "blocked_fire_lane",
    /// Damaged fire facility.
    DamagedFacility = "damaged_facility",
    /// Blocked evacuation route or exit.
    BlockedEvacuation = "blocked_evacuation",
    /// Electrical.
    Electrical = "electrical",
    /// Gas.
    Gas = "gas",
    /// Open flame.
    OpenFlame = "open_flame",
    /// Flammable storage.
    FlammableStorage = "flammable_storage",
    /// Rental housing.
    RentalHousing = "rental_housing",
    /// Renovation of small premises.
    Renovation = "renovation",
    /// Anything else.
    Other = "other",
});

wire_enum!(
    /// How serious.
    Severity, Severity, "severity", {
    /// 一般.
    General = "general",
    /// 重大.
    Major = "major",
});

wire_enum!(
    /// Fixed at once or by a deadline.
    Handling, Handling, "handling", {
    /// 即查即改.
    OnTheSpot = "on_the_spot",
    /// 限期整改.
    ByDeadline = "by_deadline",
});

wire_enum!(
    /// Who a hazard can be transferred to (移交).
    Agency, Agency, "agency", {
    /// 派出所.
    PoliceStation = "police_station",
    /// 消防.
    FireBrigade = "fire_brigade",
});

wire_enum!(
    /// A transition of the closed loop.
    EventKind, HazardEventKind, "kind", {
    /// Owner told to fix by a deadline.
    Notify = "notify",
    /// Fixed on the spot (with an after photo).
    FixOnSpot = "fix_on_spot",
    /// Owner's fix submitted (with an after photo).
    SubmitFix = "submit_fix",
    /// A manager verified the fix.
    VerifyPass = "verify_pass",
    /// A manager found the fix wanting.
    VerifyFail = "verify_fail",
    /// Handed to the police station or fire brigade.
    Transfer = "transfer",
    /// The agency took it.
    AgencyAccept = "agency_accept",
    /// The agency handed it back, with a reason.
    AgencyReturn = "agency_return",
    /// The agency fixed it.
    AgencyFix = "agency_fix",
    /// A closed hazard came back.
    Reopen = "reopen",
    /// A duplicate merged into another hazard.
    Merge = "merge",
});

wire_enum!(
    /// An editable field of a hazard.
    Field, HazardField, "field", {
    /// Free-text description.
    Description = "description",
    /// Severity.
    Severity = "severity",
    /// Category.
    Category = "category",
    /// Deadline (Unix ms).
    Deadline = "deadline",
    /// Handling.
    Handling = "handling",
});

/// Where a hazard is in its closed loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// Reported, nobody acted yet.
    Reported,
    /// The owner must fix it.
    Rectifying,
    /// Fixed, waiting for verification.
    Rectified,
    /// Handed to an agency, not yet accepted.
    Transferred,
    /// The agency is handling it.
    AgencyHandling,
    /// Verified fixed.
    Closed,
    /// Merged into another hazard as a duplicate.
    Merged,
}

impl Status {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Reported => "reported",
            Status::Rectifying => "rectifying",
            Status::Rectified => "rectified",
            Status::Transferred => "transferred",
            Status::AgencyHandling => "agency_handling",
            Status::Closed => "closed",
            Status::Merged => "merged",
        }
    }

    /// Still needs someone to act.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Closed | Status::Merged)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a transition cannot fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The hazard is not in a state this transition starts from.
    WrongState {
        /// Where it is.
        status: Status,
    },
    /// This role may not fire this transition.
    Role {
        /// The actor's role.
        role: Role,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WrongState { status } => {
                write!(f, "not possible while the hazard is {status}")
            }
            Refusal::Role { role } => write!(f, "a {role} may not do this"),
        }
    }
}

fn manager(role: Role) -> bool {
    matches!(role, Role::GridManager | Role::Admin)
}

/// Whether `role` may ever fire `kind` (whatever the hazard's state).
pub fn may_fire(kind: EventKind, role: Role) -> Result<(), Refusal> {
    match transition(Status::Reported, kind, role) {
        Err(r @ Refusal::Role { .. }) => Err(r),
        _ => Ok(()),
    }
}

/// The state machine of reference/domain.md: where `kind` leads from `status`, if `role` may
/// fire it.
pub fn transition(status: Status, kind: EventKind, role: Role) -> Result<Status, Refusal> {
    use EventKind as K;
    use Status as S;
    let (from_ok, allowed, to) = match kind {
        K::Notify => (status == S::Reported, manager(role), S::Rectifying),
        K::FixOnSpot => (
            status == S::Reported,
            role == Role::Patroller || manager(role),
            S::Rectified,
        ),
        K::SubmitFix => (
            status == S::Rectifying,
            role == Role::Patroller || manager(role),
            S::Rectified,
        ),
        K::VerifyPass => (status == S::Rectified, manager(role), S::Closed),
        K::VerifyFail => (status == S::Rectified, manager(role), S::Rectifying),
        K::Transfer => (
            matches!(status, S::Reported | S::Rectifying),
            manager(role),
            S::Transferred,
        ),
        K::AgencyAccept => (
            status == S::Transferred,
            role == Role::Agency,
            S::AgencyHandling,
        ),
        K::AgencyReturn => (
            matches!(status, S::Transferred | S::AgencyHandling),
            role == Role::Agency,
            S::Rectifying,
        ),
        K::AgencyFix => (
            status == S::AgencyHandling,
            role == Role::Agency,
            S::Rectified,
        ),
        K::Reopen => (status == S::Closed, manager(role), S::Rectifying),
        K::Merge => (status.is_open(), manager(role), S::Merged),
    };
    if !allowed {
        return Err(Refusal::Role { role });
    }
    if !from_ok {
        return Err(Refusal::WrongState { status });
    }
    Ok(to)
}

/// Totally orders the ops of all devices: HLC first, then device id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// When, in HLC.
    pub hlc: Hlc,
    /// Who, breaking HLC ties.
    pub device: DeviceId,
}

/// A validated hazard report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Client-generated id.
    pub id: HazardId,
    /// The grid cell it is in.
    pub grid_cell: String,
    /// Checkpoint code, or empty.
    pub checkpoint: String,
    /// Where, if known.
    pub position: Option<GeoFix>,
    /// Category.
    pub category: HazardCategory,
    /// Severity.
    pub severity: Severity,
    /// On the spot or by deadline.
    pub handling: Handling,
    /// Deadline (Unix ms), required for by-deadline handling.
    pub deadline_ms: Option<i64>,
    /// What was seen.
    pub description: String,
    /// Before photos.
    pub photos: Vec<[u8; 32]>,
    /// Device time when reported.
    pub device_time_ms: i64,
}

/// A validated event of the closed loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Client-generated id.
    pub id: EventId,
    /// The hazard.
    pub hazard: HazardId,
    /// Which transition.
    pub kind: EventKind,
    /// New deadline (notify, transfer).
    pub deadline_ms: Option<i64>,
    /// Target agency (transfer).
    pub agency: Option<Agency>,
    /// Surviving hazard (merge).
    pub merge_into: Option<HazardId>,
    /// Note or reason.
    pub note: String,
    /// After photos and evidence.
    pub photos: Vec<[u8; 32]>,
    /// Device time when made.
    pub device_time_ms: i64,
}

/// A validated field edit.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    /// The hazard.
    pub hazard: HazardId,
    /// The new value.
    pub value: FieldValue,
}

/// A typed value of an editable field.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// New description.
    Description(String),
    /// New severity.
    Severity(Severity),
    /// New category.
    Category(HazardCategory),
    /// New deadline, or none.
    Deadline(Option<i64>),
    /// New handling.
    Handling(Handling),
}

fn photos(field: &str, raw: &[Vec<u8>]) -> Result<Vec<[u8; 32]>, Invalid> {
    if raw.len() > MAX_PHOTOS {
        return Err(Invalid::new(
            field,
            "too_many",
            format!("{} photos exceed the limit of {MAX_PHOTOS}", raw.len()),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, h)| {
            <[u8; 32]>::try_from(h.as_slice()).map_err(|_| {
                Invalid::new(
                    format!("{field}[{i}]"),
                    "invalid_hash",
                    format!("a photo hash must be 32 bytes of SHA-256, got {}", h.len()),
                )
            })
        })
        .collect()
}

fn text(field: &str, v: &str) -> Result<(), Invalid> {
    crate::checkin::text(field, v, MAX_TEXT_CHARS)
}

fn required<T>(field: &str, v: Option<T>, what: &str) -> Result<T, Invalid> {
    v.ok_or_else(|| Invalid::new(field, "missing", format!("{field} is required ({what})")))
}

fn names<T: Copy>(all: &[T], f: fn(T) -> &'static str) -> String {
    all.iter().map(|v| f(*v)).collect::<Vec<_>>().join(", ")
}

impl Report {
    /// Validates a wire report received at `now_ms`.
    pub fn from_wire(w: wire::HazardReport, now_ms: i64) -> Result<Report, Invalid> {
        let id = HazardId::from_slice(&w.id).ok_or_else(|| {
            Invalid::new(
                "id",
                "invalid_id",
                format!("id must be a 16-byte UUID, got {} bytes", w.id.len()),
            )
        })?;
        if w.grid_cell.trim().is_empty() {
            return Err(Invalid::new(
                "grid_cell",
                "missing",
                "grid_cell is required",
            ));
        }
        // Codes are looked up, stored and shown: the same rule as a check-in's checkpoint.
        crate::checkin::text(
            "grid_cell",
            w.grid_cell.trim(),
            crate::checkin::MAX_CODE_CHARS,
        )?;
        crate::checkin::text(
            "checkpoint",
            w.checkpoint.trim(),
            crate::checkin::MAX_CODE_CHARS,
        )?;
        text("description", &w.description)?;
        let category = required(
            "category",
            HazardCategory::from_wire(w.category)?,
            &names(HazardCategory::ALL, HazardCategory::as_str),
        )?;
        let severity = Severity::from_wire(w.severity)?.unwrap_or(Severity::General);
        let handling = required(
            "handling",
            Handling::from_wire(w.handling)?,
            "on_the_spot or by_deadline",
        )?;
        let deadline_ms = (w.deadline_ms != 0).then_some(w.deadline_ms);
        if handling == Handling::ByDeadline && deadline_ms.is_none() {
            return Err(Invalid::new(
                "deadline_ms",
                "missing",
                "a by_deadline hazard needs a deadline",
            ));
        }
        plausible_time("device_time_ms", w.device_time_ms, now_ms)?;
        let position = w
            .position
            .map(|p| validate_fix("position", p, now_ms))
            .transpose()?;
        Ok(Report {
            id,
            grid_cell: w.grid_cell.trim().to_owned(),
            checkpoint: w.checkpoint.trim().to_owned(),
            position,
            category,
            severity,
            handling,
            deadline_ms,
            description: w.description,
            photos: photos("photo_sha256", &w.photo_sha256)?,
            device_time_ms: w.device_time_ms,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::HazardReport {
        wire::HazardReport {
            id: self.id.to_bytes(),
            grid_cell: self.grid_cell.clone(),
            checkpoint: self.checkpoint.clone(),
            position: self.position.as_ref().map(|f| wire::GeoFix {
                latitude: f.latitude,
                longitude: f.longitude,
                accuracy_m: f.accuracy_m,
                fix_time_ms: f.fix_time_ms,
                mock: f.mock,
            }),
            category: self.category.to_wire(),
            severity: self.severity.to_wire(),
            handling: self.handling.to_wire(),
            deadline_ms: self.deadline_ms.unwrap_or(0),
            description: self.description.clone(),
            photo_sha256: self.photos.iter().map(|p| p.to_vec()).collect(),
            device_time_ms: self.device_time_ms,
        }
    }
}

impl Event {
    /// Validates a wire event received at `now_ms`: the parts each kind needs are present.
    pub fn from_wire(w: wire::HazardEvent, now_ms: i64) -> Result<Event, Invalid> {
        let id = EventId::from_slice(&w.id).ok_or_else(|| {
            Invalid::new(
                "id",
                "invalid_id",
                format!("id must be a 16-byte UUID, got {} bytes", w.id.len()),
            )
        })?;
        let hazard = HazardId::from_slice(&w.hazard_id).ok_or_else(|| {
            Invalid::new(
                "hazard_id",
                "invalid_id",
                format!(
                    "hazard_id must be a 16-byte UUID, got {} bytes",
                    w.hazard_id.len()
                ),
            )
        })?;
        let kind = required(
            "kind",
            EventKind::from_wire(w.kind)?,
            &names(EventKind::ALL, EventKind::as_str),
        )?;
        text("note", &w.note)?;
        plausible_time("device_time_ms", w.device_time_ms, now_ms)?;
        let photos = photos("photo_sha256", &w.photo_sha256)?;
        let agency = Agency::from_wire(w.agency)?;
        let deadline_ms = (w.deadline_ms != 0).then_some(w.deadline_ms);
        let merge_into = if w.merge_into.is_empty() {
            None
        } else {
            Some(HazardId::from_slice(&w.merge_into).ok_or_else(|| {
                Invalid::new(
                    "merge_into",
                    "invalid_id",
                    "merge_into must be a 16-byte UUID",
                )
            })?)
        };
        match kind {
            EventKind::Notify if deadline_ms.is_none() => {
                return Err(Invalid::new(
                    "deadline_ms",
                    "missing",
                    "notify needs the deadline the owner must fix by",
                ));
            }
            EventKind::FixOnSpot | EventKind::SubmitFix | EventKind::AgencyFix
                if photos.is_empty() =>
            {
                return Err(Invalid::new(
                    "photo_sha256",
                    "missing",
                    format!("{kind} needs an after photo"),
                ));
            }
            EventKind::Transfer if agency.is_none() => {
                return Err(Invalid::new(
                    "agency",
                    "missing",
                    "transfer needs the agency (police_station or fire_brigade)",
                ));
            }
            EventKind::AgencyReturn | EventKind::Reopen if w.note.trim().is_empty() => {
                return Err(Invalid::new(
                    "note",
                    "missing",
                    format!("{kind} needs a reason in the note"),
                ));
            }
            EventKind::Merge if merge_into.is_none() || merge_into == Some(hazard) => {
                return Err(Invalid::new(
                    "merge_into",
                    "invalid",
                    "merge needs another hazard to merge into",
                ));
            }
            _ => {}
        }
        Ok(Event {
            id,
            hazard,
            kind,
            deadline_ms,
            agency,
            merge_into,
            note: w.note,
            photos,
            device_time_ms: w.device_time_ms,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::HazardEvent {
        wire::HazardEvent {
            id: self.id.to_bytes(),
            hazard_id: self.hazard.to_bytes(),
            kind: self.kind.to_wire(),
            deadline_ms: self.deadline_ms.unwrap_or(0),
            agency: self.agency.map(Agency::to_wire).unwrap_or(0),
            merge_into: self.merge_into.map(HazardId::to_bytes).unwrap_or_default(),
            note: self.note.clone(),
            photo_sha256: self.photos.iter().map(|p| p.to_vec()).collect(),
            device_time_ms: self.device_time_ms,
        }
    }
}

impl Edit {
    /// Validates a wire field edit.
    pub fn from_wire(w: wire::HazardFieldEdit) -> Result<Edit, Invalid> {
        let hazard = HazardId::from_slice(&w.hazard_id).ok_or_else(|| {
            Invalid::new(
                "hazard_id",
                "invalid_id",
                format!(
                    "hazard_id must be a 16-byte UUID, got {} bytes",
                    w.hazard_id.len()
                ),
            )
        })?;
        let field = required(
            "field",
            Field::from_wire(w.field)?,
            &names(Field::ALL, Field::as_str),
        )?;
        let bad = |e: String| Invalid::new("value", "invalid", e);
        let value = match field {
            Field::Description => {
                text("value", &w.value)?;
                FieldValue::Description(w.value)
            }
            Field::Severity => FieldValue::Severity(w.value.parse().map_err(bad)?),
            Field::Category => FieldValue::Category(w.value.parse().map_err(bad)?),
            Field::Handling => FieldValue::Handling(w.value.parse().map_err(bad)?),
            Field::Deadline if w.value.is_empty() => FieldValue::Deadline(None),
            Field::Deadline => {
                FieldValue::Deadline(Some(w.value.parse::<i64>().map_err(|_| {
                    bad(format!(
                        "deadline must be Unix milliseconds, got {:?}",
                        w.value
                    ))
                })?))
            }
        };
        Ok(Edit { hazard, value })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::HazardFieldEdit {
        let (field, value) = match &self.value {
            FieldValue::Description(d) => (Field::Description, d.clone()),
            FieldValue::Severity(s) => (Field::Severity, s.as_str().to_owned()),
            FieldValue::Category(c) => (Field::Category, c.as_str().to_owned()),
            FieldValue::Deadline(d) => (
                Field::Deadline,
                d.map(|d| d.to_string()).unwrap_or_default(),
            ),
            FieldValue::Handling(h) => (Field::Handling, h.as_str().to_owned()),
        };
        wire::HazardFieldEdit {
            hazard_id: self.hazard.to_bytes(),
            field: field.to_wire(),
            value,
        }
    }

    /// Which field this edits.
    pub fn field(&self) -> Field {
        match self.value {
            FieldValue::Description(_) => Field::Description,
            FieldValue::Severity(_) => Field::Severity,
            FieldValue::Category(_) => Field::Category,
            FieldValue::Deadline(_) => Field::Deadline,
            FieldValue::Handling(_) => Field::Handling,
        }
    }
}

/// A last-writer-wins register: the value written with the greatest stamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Lww<T> {
    /// Current value.
    pub value: T,
    /// Stamp of the write that set it.
    pub stamp: Stamp,
}

impl<T> Lww<T> {
    fn write(&mut self, value: T, stamp: Stamp) {
        if stamp > self.stamp {
            self.value = value;
            self.stamp = stamp;
        }
    }
}

/// One entry of a hazard's history, in fold order.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// When and by which device.
    pub stamp: Stamp,
    /// The event.
    pub event: EventId,
    /// Which transition.
    pub kind: EventKind,
    /// The actor's role.
    pub role: Role,
    /// Status before.
    pub from: Status,
    /// Status after (equal to `from` for a conflict).
    pub to: Status,
    /// Why it did not apply, for a conflict.
    pub conflict: Option<String>,
}

/// An op of a hazard as the fold sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum HazardOp {
    /// The report.
    Report(Report),
    /// A transition, with the role of the user who made it.
    Event(Event, Role),
    /// A field edit.
    Edit(Edit),
}

/// A hazard's state: the same on every replica that holds the same ops.
#[derive(Clone, Debug, PartialEq)]
pub struct HazardState {
    /// The hazard.
    pub id: HazardId,
    /// The report, once it has arrived (events may come first).
    pub report: Option<(Report, Stamp)>,
    /// Where it is in the closed loop.
    pub status: Status,
    /// Description register.
    pub description: Lww<String>,
    /// Severity register.
    pub severity: Lww<Severity>,
    /// Category register.
    pub category: Lww<HazardCategory>,
    /// Deadline register.
    pub deadline_ms: Lww<Option<i64>>,
    /// Handling register.
    pub handling: Lww<Handling>,
    /// The agency holding it, after a transfer.
    pub agency: Option<Agency>,
    /// Set when merged into another hazard.
    pub duplicate_of: Option<HazardId>,
    /// Every photo of the report and its events, in fold order, without repeats.
    pub photos: Vec<[u8; 32]>,
    /// Every event, applied or conflicting, in fold order.
    pub history: Vec<HistoryEntry>,
}

impl HazardState {
    /// Events that did not apply.
    pub fn conflicts(&self) -> impl Iterator<Item = &HistoryEntry> {
        self.history.iter().filter(|h| h.conflict.is_some())
    }
}

/// Folds a hazard's ops, in any order and with repeats, into its state.
pub fn fold(id: HazardId, ops: &[(Stamp, HazardOp)]) -> HazardState {
    let zero = Stamp {
        hlc: Hlc::default(),
        device: DeviceId(uuid::Uuid::nil()),
    };
    let mut ordered: Vec<&(Stamp, HazardOp)> = ops.iter().collect();
    // A total order on (stamp, op kind, id); repeats of the same op sort next to each other.
    ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| op_key(&a.1).cmp(&op_key(&b.1))));
    ordered.dedup_by(|a, b| a.0 == b.0 && op_key(&a.1) == op_key(&b.1));

    let report = ordered.iter().find_map(|(s, op)| match op {
        HazardOp::Report(r) => Some((r.clone(), *s)),
        _ => None,
    });
    let mut state = HazardState {
        id,
        status: Status::Reported,
        description: Lww {
            value: String::new(),
            stamp: zero,
        },
        severity: Lww {
            value: Severity::General,
            stamp: zero,
        },
        category: Lww {
            value: HazardCategory::Other,
            stamp: zero,
        },
        deadline_ms: Lww {
            value: None,
            stamp: zero,
        },
        handling: Lww {
            value: Handling::OnTheSpot,
            stamp: zero,
        },
        agency: None,
        duplicate_of: None,
        photos: Vec::new(),
        history: Vec::new(),
        report: report.clone(),
    };
    if let Some((r, s)) = &report {
        state.description.write(r.description.clone(), *s);
        state.severity.write(r.severity, *s);
        state.category.write(r.category, *s);
        state.deadline_ms.write(r.deadline_ms, *s);
        state.handling.write(r.handling, *s);
        add_photos(&mut state.photos, &r.photos);
    }
    for (stamp, op) in ordered {
        match op {
            HazardOp::Report(_) => {}
            HazardOp::Edit(e) => match &e.value {
                FieldValue::Description(v) => state.description.write(v.clone(), *stamp),
                FieldValue::Severity(v) => state.severity.write(*v, *stamp),
                FieldValue::Category(v) => state.category.write(*v, *stamp),
                FieldValue::Deadline(v) => state.deadline_ms.write(*v, *stamp),
                FieldValue::Handling(v) => state.handling.write(*v, *stamp),
            },
            HazardOp::Event(e, role) => {
                let from = state.status;
                let outcome = transition(from, e.kind, *role);
                let (to, conflict) = match outcome {
                    Ok(to) => (to, None),
                    Err(refusal) => (from, Some(format!("{} by {role}: {refusal}", e.kind))),
                };
                if conflict.is_none() {
                    state.status = to;
                    if let Some(d) = e.deadline_ms {
                        state.deadline_ms.write(Some(d), *stamp);
                    }
                    match e.kind {
                        EventKind::Transfer => state.agency = e.agency,
                        EventKind::AgencyReturn => state.agency = None,
                        EventKind::Merge => state.duplicate_of = e.merge_into,
                        _ => {}
                    }
                }
                // Evidence is kept even when the transition conflicts.
                add_photos(&mut state.photos, &e.photos);
                state.history.push(HistoryEntry {
                    stamp: *stamp,
                    event: e.id,
                    kind: e.kind,
                    role: *role,
                    from,
                    to,
                    conflict,
                });
            }
        }
    }
    state
}

fn op_key(op: &HazardOp) -> (u8, uuid::Uuid) {
    match op {
        HazardOp::Report(r) => (0, r.id.0),
        HazardOp::Event(e, _) => (1, e.id.0),
        HazardOp::Edit(e) => (2 + e.field().to_wire() as u8, e.hazard.0),
    }
}

fn add_photos(all: &mut Vec<[u8; 32]>, new: &[[u8; 32]]) {
    for p in new {
        if !all.contains(p) {
            all.push(*p);
        }
    }
}

impl HazardOp {
    /// The change-log kind of this entry.
    pub fn change_kind(&self) -> crate::change::ChangeKind {
        use crate::change::ChangeKind;
        match self {
            HazardOp::Report(_) => ChangeKind::HazardReport,
            HazardOp::Event(..) => ChangeKind::HazardEvent,
            HazardOp::Edit(_) => ChangeKind::HazardEdit,
        }
    }

    /// Stable name of the entry kind in a hazard's log: `report`, `event` or `edit`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            HazardOp::Report(_) => "report",
            HazardOp::Event(..) => "event",
            HazardOp::Edit(_) => "edit",
        }
    }

    /// The hazard this op belongs to.
    pub fn hazard(&self) -> HazardId {
        match self {
            HazardOp::Report(r) => r.id,
            HazardOp::Event(e, _) => e.hazard,
            HazardOp::Edit(e) => e.hazard,
        }
    }

    /// The record as protobuf bytes, for the log.
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message;
        match self {
            HazardOp::Report(r) => r.to_wire().encode_to_vec(),
            HazardOp::Event(e, _) => e.to_wire().encode_to_vec(),
            HazardOp::Edit(e) => e.to_wire().encode_to_vec(),
        }
    }

    /// Reads back an entry of the log written by [`HazardOp::encode`].
    pub fn decode(kind: &str, bytes: &[u8], role: Role) -> Result<HazardOp, Invalid> {
        use prost::Message;
        // Entries were validated when they arrived; only the time's upper bound is relaxed here.
        const LATER: i64 = i64::MAX / 4;
        let bad = |e: prost::DecodeError| Invalid::new("payload", "corrupt", e.to_string());
        match kind {
            "report" => Ok(HazardOp::Report(Report::from_wire(
                wire::HazardReport::decode(bytes).map_err(bad)?,
                LATER,
            )?)),
            "event" => Ok(HazardOp::Event(
                Event::from_wire(wire::HazardEvent::decode(bytes).map_err(bad)?, LATER)?,
                role,
            )),
            "edit" => Ok(HazardOp::Edit(Edit::from_wire(
                wire::HazardFieldEdit::decode(bytes).map_err(bad)?,
            )?)),
            other => Err(Invalid::new(
                "kind",
                "unknown_value",
                format!("unknown hazard log entry kind {other:?}"),
            )),
        }
    }
}

/// An overdue hazard escalated by the server to the managers of an ancestor cell (level 1: the
/// parent cell), as devices receive it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationRecord {
    /// The hazard.
    pub hazard: HazardId,
    /// 1 for the parent cell, one more per cell up.
    pub level: u32,
    /// The cell escalated to.
    pub to_cell: String,
    /// The deadline it is overdue against, ms.
    pub deadline_ms: i64,
    /// When, ms.
    pub escalated_at_ms: i64,
}

impl EscalationRecord {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&wire::HazardEscalation {
            hazard_id: self.hazard.to_bytes(),
            level: self.level,
            to_cell: self.to_cell.clone(),
            deadline_ms: self.deadline_ms,
            escalated_at_ms: self.escalated_at_ms,
        })
    }
}

/// The hash of entry `position` of a hazard's append-only log, chained to the previous entry's
/// hash (all zeros for the first). Anyone holding an export of the log can recompute the chain.
pub fn chain_hash(
    prev: &[u8; 32],
    position: u64,
    kind: &str,
    stamp: Stamp,
    role: Role,
    payload: &[u8],
) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(prev);
    h.update(position.to_be_bytes());
    h.update(kind.as_bytes());
    h.update(stamp.hlc.wall_ms.to_be_bytes());
    h.update(stamp.hlc.logical.to_be_bytes());
    h.update(stamp.device.0.as_bytes());
    h.update(role.as_str().as_bytes());
    h.update((payload.len() as u64).to_be_bytes());
    h.update(payload);
    h.finalize().into()
}
