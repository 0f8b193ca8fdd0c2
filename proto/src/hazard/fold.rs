//! The fold: a hazard's current state from its log, the same on every replica.

use super::*;
use crate::hlc::Hlc;
use crate::ids::{DeviceId, EventId, HazardId};
use crate::people::Role;

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
    /// Whether the hazard is an information report (the rules its transitions ran under).
    pub information: bool,
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
    // An information report stays one: its kind is its report's, and an edit to a category of
    // the other kind, or giving it a deadline or a handling, is kept in the log but not applied
    // (devices and the server refuse such edits before they are sent or stored).
    let information = report
        .as_ref()
        .is_some_and(|(r, _)| r.category.is_information());
    for (stamp, op) in ordered {
        match op {
            HazardOp::Report(_) => {}
            HazardOp::Edit(e) => match &e.value {
                FieldValue::Description(v) => state.description.write(v.clone(), *stamp),
                FieldValue::Severity(v) => state.severity.write(*v, *stamp),
                v if !applies(information, v) => {}
                FieldValue::Category(v) => state.category.write(*v, *stamp),
                FieldValue::Deadline(v) => state.deadline_ms.write(*v, *stamp),
                FieldValue::Handling(v) => state.handling.write(*v, *stamp),
            },
            HazardOp::Event(e, role) => {
                let from = state.status;
                let outcome = transition(information, from, e.kind, *role);
                let (to, conflict) = match outcome {
                    Ok(to) => (to, None),
                    Err(refusal) => (from, Some(format!("{} by {role}: {refusal}", e.kind))),
                };
                if conflict.is_none() {
                    state.status = to;
                    // An information report takes no deadline, whatever an event carries.
                    if let Some(d) = e.deadline_ms.filter(|_| !information) {
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
                    information,
                });
            }
        }
    }
    state
}

pub(super) fn op_key(op: &HazardOp) -> (u8, uuid::Uuid) {
    match op {
        HazardOp::Report(r) => (0, r.id.0),
        HazardOp::Event(e, _) => (1, e.id.0),
        HazardOp::Edit(e) => (2 + e.field().to_wire() as u8, e.hazard.0),
    }
}

pub(super) fn add_photos(all: &mut Vec<[u8; 32]>, new: &[[u8; 32]]) {
    for p in new {
        if !all.contains(p) {
            all.push(*p);
        }
    }
}

/// Whether an edit to `value` applies to a hazard (`information` false) or an information
/// report: a category of the other kind never does, nor a deadline or handling on an
/// information report (it is acknowledged, not rectified).
pub fn applies(information: bool, value: &FieldValue) -> bool {
    match value {
        FieldValue::Category(c) => c.is_information() == information,
        FieldValue::Deadline(_) | FieldValue::Handling(_) => !information,
        FieldValue::Description(_) | FieldValue::Severity(_) => true,
    }
}
