//! Hazards (隐患) and their closed loop (闭环): the report, the transitions of the state machine
//! and who may fire them, last-writer-wins field registers, and the deterministic fold that turns
//! a hazard's ops into its state. Every replica that holds the same ops computes the same state,
//! whatever order they arrived in and however often: the fold sorts by stamp (HLC, then device)
//! and ignores repeats. A transition whose precondition fails is kept in the history as a
//! conflict, never applied and never dropped.
//!
//! This file holds the vocabulary and the state machine; `records` validates what devices send,
//! `fold` computes a hazard's state from its log.

mod fold;
mod records;

pub use fold::*;
pub use records::*;

use crate::checkin::Invalid;
use crate::hlc::Hlc;
use crate::ids::{DeviceId, HazardId};
use crate::people::Role;
use crate::wire;

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
    /// Outside workers taken on (外来人员就业): an information report.
    OutsideWorkers = "outside_workers",
    /// Newly assisted people, disabled and others (新增残障等帮扶人员): an information report.
    AssistedPerson = "assisted_person",
    /// A factor unsettling fire safety (消防安全不稳定因素): an information report.
    UnstableFactor = "unstable_factor",
});

impl HazardCategory {
    /// An information kind of the must-report list (八必报): reported to the cell's managers
    /// and acknowledged, never rectified.
    pub fn is_information(self) -> bool {
        matches!(
            self,
            HazardCategory::OutsideWorkers
                | HazardCategory::AssistedPerson
                | HazardCategory::UnstableFactor
        )
    }
}

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
    /// A manager took note of an information report.
    Acknowledge = "acknowledge",
    /// The responsible party a routing rule sent it to took the rectification on.
    Accept = "accept",
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
    /// An information report a manager has taken note of.
    Acknowledged,
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
            Status::Acknowledged => "acknowledged",
        }
    }

    /// Still needs someone to act.
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Closed | Status::Merged | Status::Acknowledged)
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
    /// The transition is not for this kind of report: a rectification step on an information
    /// report (`information`), or an acknowledgement of a hazard.
    Kind {
        /// Whether the report is an information report.
        information: bool,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::WrongState { status } => {
                write!(f, "not possible while the hazard is {status}")
            }
            Refusal::Role { role } => write!(f, "a {role} may not do this"),
            Refusal::Kind { information: true } => {
                f.write_str("an information report is acknowledged, not rectified")
            }
            Refusal::Kind { information: false } => {
                f.write_str("only an information report is acknowledged")
            }
        }
    }
}

fn manager(role: Role) -> bool {
    matches!(role, Role::GridManager | Role::Admin)
}

/// Whether `role` may ever fire `kind` (whatever the hazard's state or kind).
pub fn may_fire(kind: EventKind, role: Role) -> Result<(), Refusal> {
    for information in [false, true] {
        if let Err(r @ Refusal::Role { .. }) = transition(information, Status::Reported, kind, role)
        {
            return Err(r);
        }
    }
    Ok(())
}

/// Whether `role` may edit a hazard's fields: the grid's roles may; an agency and the parties
/// routing rules name act through transitions alone.
pub fn may_edit(role: Role) -> Result<(), Refusal> {
    if role == Role::Agency || role.is_party() {
        return Err(Refusal::Role { role });
    }
    Ok(())
}

/// The state machine (PROTOCOL.md, "Hazard state machine"): where `kind` leads from `status`,
/// if `role` may fire it, for a hazard or (`information`) an information report of the
/// must-report kinds, whose only transitions are acknowledge and merge.
pub fn transition(
    information: bool,
    status: Status,
    kind: EventKind,
    role: Role,
) -> Result<Status, Refusal> {
    use EventKind as K;
    use Status as S;
    let (from_ok, allowed, to) = match kind {
        K::Acknowledge if information => (status == S::Reported, manager(role), S::Acknowledged),
        K::Merge => (status.is_open(), manager(role), S::Merged),
        _ if information => return Err(Refusal::Kind { information }),
        K::Acknowledge => return Err(Refusal::Kind { information }),
        K::Notify => (status == S::Reported, manager(role), S::Rectifying),
        K::Accept => (status == S::Reported, role.is_party(), S::Rectifying),
        K::FixOnSpot => (
            status == S::Reported,
            role == Role::Patroller || role.is_party() || manager(role),
            S::Rectified,
        ),
        K::SubmitFix => (
            status == S::Rectifying,
            role == Role::Patroller || role.is_party() || manager(role),
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

impl HazardOp {
    /// [`HazardOp::kind_name`] of a report.
    pub const REPORT: &'static str = "report";
    /// [`HazardOp::kind_name`] of a transition.
    pub const EVENT: &'static str = "event";
    /// [`HazardOp::kind_name`] of a field edit.
    pub const EDIT: &'static str = "edit";

    /// The change-log kind of this entry.
    pub fn change_kind(&self) -> crate::change::ChangeKind {
        use crate::change::ChangeKind;
        match self {
            HazardOp::Report(_) => ChangeKind::HazardReport,
            HazardOp::Event(..) => ChangeKind::HazardEvent,
            HazardOp::Edit(_) => ChangeKind::HazardEdit,
        }
    }

    /// Stable name of the entry kind in a hazard's log: `report`, `event` or `edit`. Part of
    /// each entry's chain hash (see [`chain_hash`]), so these names never change.
    pub fn kind_name(&self) -> &'static str {
        match self {
            HazardOp::Report(_) => Self::REPORT,
            HazardOp::Event(..) => Self::EVENT,
            HazardOp::Edit(_) => Self::EDIT,
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

/// A reminder (督促) the server sent the party a routing rule named, at a point relative to the
/// hazard's deadline (negative: before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReminderRecord {
    /// The hazard.
    pub hazard: HazardId,
    /// The deadline it reminds of, ms.
    pub deadline_ms: i64,
    /// The point relative to the deadline, ms.
    pub offset_ms: i64,
    /// When, ms.
    pub reminded_at_ms: i64,
    /// The routed user's name, or the agency.
    pub party: String,
}

impl ReminderRecord {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        prost::Message::encode_to_vec(&wire::HazardReminder {
            hazard_id: self.hazard.to_bytes(),
            deadline_ms: self.deadline_ms,
            offset_ms: self.offset_ms,
            reminded_at_ms: self.reminded_at_ms,
            party: self.party.clone(),
        })
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
