//! What the change log holds: each entry is one entity a device receives through pull, named by
//! its kind. The same names are stored by the server, sent nowhere else, and used by the SDK for
//! the ops in its outbox.

use prost::Message;

use crate::wire;
use crate::wire::change::Entity;

/// The kind of a change-log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A grid cell, new or changed.
    Cell,
    /// A checkpoint, new or changed.
    Checkpoint,
    /// A published checklist template version.
    Template,
    /// A hazard's report (the first entry of its log).
    HazardReport,
    /// A transition of a hazard's closed loop.
    HazardEvent,
    /// A last-writer-wins edit of a hazard field.
    HazardEdit,
    /// An overdue hazard escalated to a cell above.
    HazardEscalation,
    /// A scope grant or revoke, for one feed.
    Scope,
    /// A key unit of the register, new or changed.
    Unit,
    /// A household of the must-visit register, new or changed.
    Household,
    /// A reminder (督促) to the party a routing rule sent a hazard to.
    HazardReminder,
    /// A task (the first entry of its log).
    Task,
    /// A step of a task.
    TaskEvent,
}

impl ChangeKind {
    /// Every kind.
    pub const ALL: [ChangeKind; 13] = [
        ChangeKind::Cell,
        ChangeKind::Checkpoint,
        ChangeKind::Template,
        ChangeKind::HazardReport,
        ChangeKind::HazardEvent,
        ChangeKind::HazardEdit,
        ChangeKind::HazardEscalation,
        ChangeKind::Scope,
        ChangeKind::Unit,
        ChangeKind::Household,
        ChangeKind::HazardReminder,
        ChangeKind::Task,
        ChangeKind::TaskEvent,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Cell => "cell",
            ChangeKind::Checkpoint => "checkpoint",
            ChangeKind::Template => "template",
            ChangeKind::HazardReport => "hazard_report",
            ChangeKind::HazardEvent => "hazard_event",
            ChangeKind::HazardEdit => "hazard_edit",
            ChangeKind::HazardEscalation => "hazard_escalation",
            ChangeKind::Scope => "scope",
            ChangeKind::Unit => "unit",
            ChangeKind::Household => "household",
            ChangeKind::HazardReminder => "hazard_reminder",
            ChangeKind::Task => "task",
            ChangeKind::TaskEvent => "task_event",
        }
    }

    /// The kind a stored name names.
    pub fn parse(name: &str) -> Option<ChangeKind> {
        ChangeKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The wire entity of a stored payload of this kind.
    pub fn decode(self, payload: &[u8]) -> Result<Entity, prost::DecodeError> {
        Ok(match self {
            ChangeKind::Cell => Entity::Cell(wire::GridCell::decode(payload)?),
            ChangeKind::Checkpoint => Entity::Checkpoint(wire::Checkpoint::decode(payload)?),
            ChangeKind::Template => Entity::Template(wire::ChecklistTemplate::decode(payload)?),
            ChangeKind::HazardReport => Entity::HazardReport(wire::HazardReport::decode(payload)?),
            ChangeKind::HazardEvent => Entity::HazardEvent(wire::HazardEvent::decode(payload)?),
            ChangeKind::HazardEdit => {
                Entity::HazardFieldEdit(wire::HazardFieldEdit::decode(payload)?)
            }
            ChangeKind::HazardEscalation => {
                Entity::HazardEscalation(wire::HazardEscalation::decode(payload)?)
            }
            ChangeKind::Scope => Entity::Scope(wire::ScopeChange::decode(payload)?),
            ChangeKind::Unit => Entity::Unit(wire::KeyUnit::decode(payload)?),
            ChangeKind::Household => Entity::Household(wire::Household::decode(payload)?),
            ChangeKind::HazardReminder => {
                Entity::HazardReminder(wire::HazardReminder::decode(payload)?)
            }
            ChangeKind::Task => Entity::Task(wire::Task::decode(payload)?),
            ChangeKind::TaskEvent => Entity::TaskEvent(wire::TaskEvent::decode(payload)?),
        })
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_name() {
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ChangeKind::parse("hazard_field_edit"), None);
    }

    #[test]
    fn a_payload_decodes_as_its_kind() {
        let cell = wire::GridCell {
            code: "S1".into(),
            ..Default::default()
        };
        assert_eq!(
            ChangeKind::Cell.decode(&cell.encode_to_vec()),
            Ok(Entity::Cell(cell))
        );
        assert!(ChangeKind::HazardReport.decode(&[0xff, 0xff]).is_err());
    }
}
