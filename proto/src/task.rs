//! Tasks (dispatch): a help call from a vulnerable household (弱势群体监护), an inspection, a
//! fix to check or a visit, for a place in a cell. The server offers a task to the cell's
//! on-duty patrollers nearest first; one accepts, arrives (a check-in at the place) and
//! completes it with what was found. Like a hazard, a task is an append-only log folded the same
//! way on every replica: two patrollers who accept while offline both keep their step in the
//! history, the earlier by stamp is the assignee, and the other's is a visible conflict.

use crate::checkin::{Invalid, MAX_CODE_CHARS, MAX_TEXT_CHARS, plausible_time, validate_fix};
use crate::hazard::Stamp;
use crate::ids::{CheckInId, EventId, HazardId, TaskId};
use crate::people::Role;
use crate::{GeoFix, wire};

wire_enum!(
    /// What a task is.
    TaskKind, TaskKind, "kind", {
    /// A vulnerable household's call for help (弱势群体监护).
    HelpCall = "help_call",
    /// An inspection of the place.
    Inspect = "inspect",
    /// A check of a hazard's fix on site.
    VerifyFix = "verify_fix",
    /// A visit.
    Visit = "visit",
});

wire_enum!(
    /// How urgent.
    Urgency, TaskUrgency, "urgency", {
    /// In the day's round.
    Normal = "normal",
    /// At once.
    Urgent = "urgent",
});

wire_enum!(
    /// A step of a task.
    TaskEventKind, TaskEventKind, "kind", {
    /// The server offered it to a user (server only).
    Offer = "offer",
    /// A user took it.
    Accept = "accept",
    /// A user declined it.
    Decline = "decline",
    /// The assignee is at the place.
    Arrive = "arrive",
    /// The assignee finished it, with the result.
    Complete = "complete",
    /// Nobody on duty accepted in time: the cell's managers are told (server only).
    Escalate = "escalate",
    /// A manager called it off.
    Cancel = "cancel",
});

wire_enum!(
    /// What the assignee found.
    TaskResult, TaskResult, "result", {
    /// All well.
    FoundFine = "found_fine",
    /// Help given.
    HelpGiven = "help_given",
    /// A hazard was found and reported (linked).
    HazardReported = "hazard_reported",
});

impl TaskEventKind {
    /// Only the server makes it (offers and escalations); a device's op of this kind is refused.
    pub fn is_server_only(self) -> bool {
        matches!(self, TaskEventKind::Offer | TaskEventKind::Escalate)
    }
}

/// Where a task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Made; nobody offered it yet, or the last offer was declined.
    Open,
    /// Offered to a user who has not answered.
    Offered,
    /// A user took it.
    Accepted,
    /// The assignee is at the place.
    Arrived,
    /// Done.
    Completed,
    /// Nobody on duty took it in time; the cell's managers are told.
    Escalated,
    /// Called off.
    Cancelled,
}

impl TaskStatus {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Offered => "offered",
            TaskStatus::Accepted => "accepted",
            TaskStatus::Arrived => "arrived",
            TaskStatus::Completed => "completed",
            TaskStatus::Escalated => "escalated",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Nobody has it yet: it can be offered or accepted.
    pub fn unassigned(self) -> bool {
        matches!(
            self,
            TaskStatus::Open | TaskStatus::Offered | TaskStatus::Escalated
        )
    }

    /// Still to be done.
    pub fn is_open(self) -> bool {
        !matches!(self, TaskStatus::Completed | TaskStatus::Cancelled)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated task.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// Its id.
    pub id: TaskId,
    /// The cell it is in.
    pub grid_cell: String,
    /// What it is.
    pub kind: TaskKind,
    /// How urgent.
    pub urgency: Urgency,
    /// The household it is for, or empty.
    pub household: String,
    /// The key unit it is for, or empty.
    pub unit: String,
    /// A checkpoint at the place (arriving is a check-in there), or empty.
    pub checkpoint: String,
    /// Where, if known (WGS-84).
    pub position: Option<GeoFix>,
    /// What is wanted.
    pub description: String,
    /// When it was made (its maker's clock).
    pub device_time_ms: i64,
}

/// A validated step of a task.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEvent {
    /// Its id.
    pub id: EventId,
    /// The task.
    pub task: TaskId,
    /// Which step.
    pub kind: TaskEventKind,
    /// The user offered (offer) or acting (the others); empty for an escalation.
    pub user: String,
    /// The check-in made on arriving, if any.
    pub check_in: Option<CheckInId>,
    /// What was found (complete).
    pub result: Option<TaskResult>,
    /// The hazard reported (complete with `hazard_reported`).
    pub hazard: Option<HazardId>,
    /// Free text.
    pub note: String,
    /// The fix on arriving (WGS-84), if any.
    pub position: Option<GeoFix>,
    /// When (its maker's clock).
    pub device_time_ms: i64,
}

fn code(field: &str, v: &str) -> Result<(), Invalid> {
    crate::checkin::text(field, v, MAX_CODE_CHARS)
}

fn id_of<T>(field: &str, raw: &[u8], f: fn(&[u8]) -> Option<T>) -> Result<T, Invalid> {
    f(raw).ok_or_else(|| {
        Invalid::new(
            field,
            "invalid_id",
            format!("{field} must be a 16-byte UUID, got {} bytes", raw.len()),
        )
    })
}

fn optional_id<T>(
    field: &str,
    raw: &[u8],
    f: fn(&[u8]) -> Option<T>,
) -> Result<Option<T>, Invalid> {
    if raw.is_empty() {
        Ok(None)
    } else {
        id_of(field, raw, f).map(Some)
    }
}

fn required<T>(field: &str, v: Option<T>, known: &str) -> Result<T, Invalid> {
    v.ok_or_else(|| Invalid::new(field, "missing", format!("{field} is required ({known})")))
}

impl Task {
    /// Validates a wire task received at `now_ms`.
    pub fn from_wire(w: wire::Task, now_ms: i64) -> Result<Task, Invalid> {
        let id = id_of("id", &w.id, TaskId::from_slice)?;
        let grid_cell = w.grid_cell.trim().to_owned();
        if grid_cell.is_empty() {
            return Err(Invalid::new(
                "grid_cell",
                "missing",
                "grid_cell is required",
            ));
        }
        code("grid_cell", &grid_cell)?;
        for (field, v) in [
            ("household", &w.household),
            ("unit", &w.unit),
            ("checkpoint", &w.checkpoint),
        ] {
            code(field, v.trim())?;
        }
        crate::checkin::text("description", &w.description, MAX_TEXT_CHARS)?;
        let kind = required(
            "kind",
            TaskKind::from_wire(w.kind)?,
            "help_call, inspect, verify_fix or visit",
        )?;
        let urgency = Urgency::from_wire(w.urgency)?.unwrap_or(Urgency::Normal);
        plausible_time("device_time_ms", w.device_time_ms, now_ms)?;
        Ok(Task {
            id,
            grid_cell,
            kind,
            urgency,
            household: w.household.trim().to_owned(),
            unit: w.unit.trim().to_owned(),
            checkpoint: w.checkpoint.trim().to_owned(),
            position: w
                .position
                .map(|p| validate_fix("position", p, now_ms))
                .transpose()?,
            description: w.description,
            device_time_ms: w.device_time_ms,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::Task {
        wire::Task {
            id: self.id.to_bytes(),
            grid_cell: self.grid_cell.clone(),
            kind: self.kind.to_wire(),
            urgency: self.urgency.to_wire(),
            household: self.household.clone(),
            unit: self.unit.clone(),
            checkpoint: self.checkpoint.clone(),
            position: self.position.as_ref().map(GeoFix::to_wire),
            description: self.description.clone(),
            device_time_ms: self.device_time_ms,
        }
    }
}

impl TaskEvent {
    /// Validates a wire task event received at `now_ms`.
    pub fn from_wire(w: wire::TaskEvent, now_ms: i64) -> Result<TaskEvent, Invalid> {
        let kind = required(
            "kind",
            TaskEventKind::from_wire(w.kind)?,
            "accept, decline, arrive, complete or cancel",
        )?;
        code("user", &w.user)?;
        crate::checkin::text("note", &w.note, MAX_TEXT_CHARS)?;
        let result = TaskResult::from_wire(w.result)?;
        if kind == TaskEventKind::Complete && result.is_none() {
            return Err(Invalid::new(
                "result",
                "missing",
                "a completed task says what was found: found_fine, help_given or hazard_reported",
            ));
        }
        let hazard = optional_id("hazard_id", &w.hazard_id, HazardId::from_slice)?;
        if result == Some(TaskResult::HazardReported) && hazard.is_none() {
            return Err(Invalid::new(
                "hazard_id",
                "missing",
                "a task completed with a hazard reported names the hazard",
            ));
        }
        plausible_time("device_time_ms", w.device_time_ms, now_ms)?;
        Ok(TaskEvent {
            id: id_of("id", &w.id, EventId::from_slice)?,
            task: id_of("task_id", &w.task_id, TaskId::from_slice)?,
            kind,
            user: w.user,
            check_in: optional_id("check_in_id", &w.check_in_id, CheckInId::from_slice)?,
            result,
            hazard,
            note: w.note,
            position: w
                .position
                .map(|p| validate_fix("position", p, now_ms))
                .transpose()?,
            device_time_ms: w.device_time_ms,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::TaskEvent {
        wire::TaskEvent {
            id: self.id.to_bytes(),
            task_id: self.task.to_bytes(),
            kind: self.kind.to_wire(),
            user: self.user.clone(),
            check_in_id: self.check_in.map(CheckInId::to_bytes).unwrap_or_default(),
            result: self.result.map_or(0, TaskResult::to_wire),
            hazard_id: self.hazard.map(HazardId::to_bytes).unwrap_or_default(),
            note: self.note.clone(),
            position: self.position.as_ref().map(GeoFix::to_wire),
            device_time_ms: self.device_time_ms,
        }
    }
}

/// An entry of a task's log as the fold sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskOp {
    /// The task itself (the first entry).
    Create(Task),
    /// A step, with the role of the user who made it (admin for the server's).
    Event(TaskEvent, Role),
}

impl TaskOp {
    /// [`TaskOp::kind_name`] of the task itself.
    pub const CREATE: &'static str = "task";
    /// [`TaskOp::kind_name`] of a step.
    pub const EVENT: &'static str = "task_event";

    /// Stable name of the entry kind, part of each entry's chain hash.
    pub fn kind_name(&self) -> &'static str {
        match self {
            TaskOp::Create(_) => Self::CREATE,
            TaskOp::Event(..) => Self::EVENT,
        }
    }

    /// The task.
    pub fn task(&self) -> TaskId {
        match self {
            TaskOp::Create(t) => t.id,
            TaskOp::Event(e, _) => e.task,
        }
    }

    /// Protobuf bytes, for the log.
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message;
        match self {
            TaskOp::Create(t) => t.to_wire().encode_to_vec(),
            TaskOp::Event(e, _) => e.to_wire().encode_to_vec(),
        }
    }

    /// Reads back an entry written by [`TaskOp::encode`].
    pub fn decode(kind: &str, bytes: &[u8], role: Role) -> Result<TaskOp, Invalid> {
        use prost::Message;
        const LATER: i64 = i64::MAX / 4;
        let bad = |e: prost::DecodeError| Invalid::new("payload", "corrupt", e.to_string());
        match kind {
            Self::CREATE => Ok(TaskOp::Create(Task::from_wire(
                wire::Task::decode(bytes).map_err(bad)?,
                LATER,
            )?)),
            Self::EVENT => Ok(TaskOp::Event(
                TaskEvent::from_wire(wire::TaskEvent::decode(bytes).map_err(bad)?, LATER)?,
                role,
            )),
            other => Err(Invalid::new(
                "kind",
                "unknown_value",
                format!("unknown task log entry kind {other:?}"),
            )),
        }
    }
}

/// Why a step does not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskRefusal {
    /// The task is not where this step starts from.
    WrongState {
        /// Where it is.
        status: TaskStatus,
    },
    /// Another user has it.
    Taken {
        /// Who.
        by: String,
    },
    /// This role may not make this step.
    Role {
        /// The role.
        role: Role,
    },
    /// The step is stamped before the task was made (a device clock far behind, or a forged
    /// stamp): it never applies.
    BeforeTask,
}

impl std::fmt::Display for TaskRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskRefusal::WrongState { status } => {
                write!(f, "not possible while the task is {status}")
            }
            TaskRefusal::Taken { by } => write!(f, "already accepted by {by}"),
            TaskRefusal::Role { role } => write!(f, "a {role} may not do this"),
            TaskRefusal::BeforeTask => f.write_str("stamped before the task was made"),
        }
    }
}

/// Whether `role` may ever make a `kind` step from a device (the server's own offers and
/// escalations are never a device's).
pub fn may_step(kind: TaskEventKind, role: Role) -> Result<(), TaskRefusal> {
    use TaskEventKind as K;
    let field = matches!(role, Role::Patroller | Role::GridManager | Role::Admin);
    let allowed = match kind {
        K::Offer | K::Escalate => false,
        K::Accept | K::Decline | K::Arrive | K::Complete => field,
        K::Cancel => matches!(role, Role::GridManager | Role::Admin),
    };
    if allowed {
        Ok(())
    } else {
        Err(TaskRefusal::Role { role })
    }
}

/// One entry of a task's history, in fold order.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskHistoryEntry {
    /// When and by which device.
    pub stamp: Stamp,
    /// The step.
    pub event: EventId,
    /// Which step.
    pub kind: TaskEventKind,
    /// The user it names.
    pub user: String,
    /// The author's role.
    pub role: Role,
    /// Status before.
    pub from: TaskStatus,
    /// Status after (equal to `from` for a conflict).
    pub to: TaskStatus,
    /// Why it did not apply, for a conflict.
    pub conflict: Option<String>,
    /// The same, as a value.
    pub refusal: Option<TaskRefusal>,
}

/// A task's state, the same on every replica holding the same entries.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskState {
    /// The task.
    pub id: TaskId,
    /// The task itself, once it has arrived.
    pub task: Option<(Task, Stamp)>,
    /// Where it is.
    pub status: TaskStatus,
    /// Who has it.
    pub assignee: Option<String>,
    /// Who it is offered to now.
    pub offered_to: Option<String>,
    /// Everyone it was offered to, in order.
    pub offered: Vec<String>,
    /// Who declined it.
    pub declined: Vec<String>,
    /// The check-in made on arriving.
    pub check_in: Option<CheckInId>,
    /// What was found.
    pub result: Option<TaskResult>,
    /// The hazard reported on completing.
    pub hazard: Option<HazardId>,
    /// Every step, applied or conflicting, in fold order.
    pub history: Vec<TaskHistoryEntry>,
}

impl TaskState {
    /// Steps that did not apply.
    pub fn conflicts(&self) -> impl Iterator<Item = &TaskHistoryEntry> {
        self.history.iter().filter(|h| h.conflict.is_some())
    }
}

/// Where `kind` by `user` (of `role`) leads from `state`, or why it does not apply. `holder` is
/// the acceptor the task belongs to when acceptances compete (see [`fold`]).
fn step(
    state: &TaskState,
    kind: TaskEventKind,
    user: &str,
    role: Role,
    holder: Option<&str>,
) -> Result<TaskStatus, TaskRefusal> {
    use TaskEventKind as K;
    use TaskStatus as S;
    let server = role == Role::Admin;
    let status = state.status;
    let wrong = Err(TaskRefusal::WrongState { status });
    let mine = state.assignee.as_deref() == Some(user);
    match kind {
        // Another acceptor holds it: whoever went there, else whoever accepted first.
        K::Accept if status.unassigned() && holder.is_some_and(|h| h != user) => {
            Err(TaskRefusal::Taken {
                by: holder.unwrap_or_default().to_owned(),
            })
        }
        K::Offer | K::Escalate if !server => Err(TaskRefusal::Role { role }),
        K::Offer if matches!(status, S::Open | S::Offered) => Ok(S::Offered),
        K::Escalate if matches!(status, S::Open | S::Offered) => Ok(S::Escalated),
        K::Offer | K::Escalate => wrong,
        K::Accept if status.unassigned() => Ok(S::Accepted),
        K::Accept if mine && status.is_open() => Ok(status),
        K::Accept => match &state.assignee {
            Some(by) if status.is_open() => Err(TaskRefusal::Taken { by: by.clone() }),
            _ => wrong,
        },
        // A decline by whoever it is offered to opens it again; by anyone else, it is noted.
        K::Decline if status == S::Offered && state.offered_to.as_deref() == Some(user) => {
            Ok(S::Open)
        }
        K::Decline if status.unassigned() => Ok(status),
        K::Decline => wrong,
        K::Arrive | K::Complete if !mine => match &state.assignee {
            Some(by) if status.is_open() => Err(TaskRefusal::Taken { by: by.clone() }),
            _ => wrong,
        },
        K::Arrive if status == S::Accepted => Ok(S::Arrived),
        K::Complete if matches!(status, S::Accepted | S::Arrived) => Ok(S::Completed),
        K::Arrive | K::Complete => wrong,
        K::Cancel if status.is_open() => Ok(S::Cancelled),
        K::Cancel => wrong,
    }
}

/// Folds a task's entries, in any order and with repeats, into its state: sorted by stamp
/// (HLC, then device), then the task before its steps and steps by id; repeats dropped. A step
/// stamped before the task itself never applies. When several users accept, the task belongs to
/// the first (by stamp) who also arrived or completed it, else to the first who accepted: a late
/// acceptance with an early stamp never takes a task from the one who went.
pub fn fold(id: TaskId, ops: &[(Stamp, TaskOp)]) -> TaskState {
    let key = |op: &TaskOp| match op {
        TaskOp::Create(t) => (0u8, t.id.0),
        TaskOp::Event(e, _) => (1u8, e.id.0),
    };
    let mut ordered: Vec<&(Stamp, TaskOp)> = ops.iter().collect();
    ordered.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| key(&a.1).cmp(&key(&b.1))));
    ordered.dedup_by(|a, b| a.0 == b.0 && key(&a.1) == key(&b.1));
    let mut state = TaskState {
        id,
        task: ordered.iter().find_map(|(s, op)| match op {
            TaskOp::Create(t) => Some((t.clone(), *s)),
            TaskOp::Event(..) => None,
        }),
        status: TaskStatus::Open,
        assignee: None,
        offered_to: None,
        offered: Vec::new(),
        declined: Vec::new(),
        check_in: None,
        result: None,
        hazard: None,
        history: Vec::new(),
    };
    let made = state.task.as_ref().map(|(_, s)| *s);
    let events = || {
        ordered.iter().filter_map(|(s, op)| match op {
            TaskOp::Event(e, _) if made.is_some_and(|m| *s > m) => Some((*s, e)),
            _ => None,
        })
    };
    // Whom the task belongs to when acceptances compete: among those who accepted before it was
    // called off (in stamp order), the first who completed it, else the first who arrived, else
    // the first who accepted. So one who went is never displaced by an acceptance that only
    // arrived late with an early stamp, and one who finished by one who only arrived.
    let cancelled = events()
        .filter(|(_, e)| e.kind == TaskEventKind::Cancel)
        .map(|(s, _)| s)
        .min();
    let acceptors: Vec<&str> = events()
        .filter(|(s, e)| e.kind == TaskEventKind::Accept && cancelled.is_none_or(|c| *s < c))
        .map(|(_, e)| e.user.as_str())
        .collect();
    let did =
        |user: &str, kind: TaskEventKind| events().any(|(_, e)| e.user == user && e.kind == kind);
    let holder = acceptors
        .iter()
        .find(|u| did(u, TaskEventKind::Complete))
        .or_else(|| acceptors.iter().find(|u| did(u, TaskEventKind::Arrive)))
        .or(acceptors.first())
        .copied();
    for (stamp, op) in &ordered {
        let TaskOp::Event(e, role) = op else {
            continue;
        };
        let from = state.status;
        let outcome = if made.is_none_or(|m| *stamp <= m) {
            Err(TaskRefusal::BeforeTask)
        } else {
            step(&state, e.kind, &e.user, *role, holder)
        };
        let (to, refusal) = match outcome {
            Ok(to) => (to, None),
            Err(why) => (from, Some(why)),
        };
        let conflict = refusal
            .as_ref()
            .map(|why| format!("{} by {}: {why}", e.kind, e.user));
        if conflict.is_none() {
            state.status = to;
            match e.kind {
                TaskEventKind::Offer => {
                    state.offered_to = Some(e.user.clone());
                    state.offered.push(e.user.clone());
                }
                TaskEventKind::Decline => {
                    if state.offered_to.as_deref() == Some(e.user.as_str()) {
                        state.offered_to = None;
                    }
                    if !state.declined.contains(&e.user) {
                        state.declined.push(e.user.clone());
                    }
                }
                TaskEventKind::Accept => {
                    state.assignee = Some(e.user.clone());
                    state.offered_to = None;
                }
                TaskEventKind::Escalate => state.offered_to = None,
                TaskEventKind::Arrive => state.check_in = e.check_in.or(state.check_in),
                TaskEventKind::Complete => {
                    state.result = e.result;
                    state.hazard = e.hazard;
                }
                TaskEventKind::Cancel => state.offered_to = None,
            }
        }
        state.history.push(TaskHistoryEntry {
            stamp: *stamp,
            event: e.id,
            kind: e.kind,
            user: e.user.clone(),
            role: *role,
            from,
            to,
            conflict,
            refusal,
        });
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::ids::DeviceId;

    fn stamp(ms: u64, device: u128) -> Stamp {
        Stamp {
            hlc: Hlc {
                wall_ms: ms,
                logical: 0,
            },
            device: DeviceId(uuid::Uuid::from_u128(device)),
        }
    }

    fn task() -> Task {
        Task {
            id: TaskId(uuid::Uuid::from_u128(1)),
            grid_cell: "S1-C1-K1".into(),
            kind: TaskKind::HelpCall,
            urgency: Urgency::Urgent,
            household: "H-0301".into(),
            unit: String::new(),
            checkpoint: String::new(),
            position: None,
            description: "独居老人按了呼叫按钮".into(),
            device_time_ms: 1,
        }
    }

    fn event(n: u128, kind: TaskEventKind, user: &str) -> TaskEvent {
        TaskEvent {
            id: EventId(uuid::Uuid::from_u128(100 + n)),
            task: TaskId(uuid::Uuid::from_u128(1)),
            kind,
            user: user.into(),
            check_in: None,
            result: (kind == TaskEventKind::Complete).then_some(TaskResult::HelpGiven),
            hazard: None,
            note: String::new(),
            position: None,
            device_time_ms: 1,
        }
    }

    #[test]
    fn two_offline_accepts_give_one_assignee_and_a_visible_conflict_in_any_order() {
        use TaskEventKind as K;
        let ops = vec![
            (stamp(1, 0), TaskOp::Create(task())),
            (
                stamp(2, 0),
                TaskOp::Event(event(1, K::Offer, "li"), Role::Admin),
            ),
            (
                stamp(5, 9),
                TaskOp::Event(event(2, K::Accept, "wang"), Role::Patroller),
            ),
            (
                stamp(4, 7),
                TaskOp::Event(event(3, K::Accept, "li"), Role::Patroller),
            ),
            (
                stamp(6, 7),
                TaskOp::Event(event(4, K::Arrive, "li"), Role::Patroller),
            ),
        ];
        let mut reversed = ops.clone();
        reversed.reverse();
        let mut doubled = ops.clone();
        doubled.extend(ops.clone());
        let a = fold(TaskId(uuid::Uuid::from_u128(1)), &ops);
        assert_eq!(a, fold(a.id, &reversed));
        assert_eq!(a, fold(a.id, &doubled));
        assert_eq!(a.assignee.as_deref(), Some("li"), "the earlier acceptance");
        assert_eq!(a.status, TaskStatus::Arrived);
        let lost: Vec<_> = a.conflicts().collect();
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].user, "wang");
        assert_eq!(
            lost[0].conflict.as_deref(),
            Some("accept by wang: already accepted by li")
        );
    }

    #[test]
    fn an_early_stamp_never_takes_a_task_from_the_one_who_went() {
        use TaskEventKind as K;
        let id = TaskId(uuid::Uuid::from_u128(1));
        // wang accepted, arrived and completed; li's acceptance, stamped earlier (offline for
        // an hour, or a forged clock), arrives afterwards; zhao's is stamped before the task.
        let ops = vec![
            (stamp(10, 0), TaskOp::Create(task())),
            (
                stamp(20, 9),
                TaskOp::Event(event(1, K::Accept, "wang"), Role::Patroller),
            ),
            (
                stamp(21, 9),
                TaskOp::Event(event(2, K::Arrive, "wang"), Role::Patroller),
            ),
            (
                stamp(22, 9),
                TaskOp::Event(event(3, K::Complete, "wang"), Role::Patroller),
            ),
            (
                stamp(15, 7),
                TaskOp::Event(event(4, K::Accept, "li"), Role::Patroller),
            ),
            (
                stamp(1, 8),
                TaskOp::Event(event(5, K::Accept, "zhao"), Role::Patroller),
            ),
        ];
        let s = fold(id, &ops);
        assert_eq!(
            (s.status, s.assignee.as_deref(), s.result),
            (
                TaskStatus::Completed,
                Some("wang"),
                Some(TaskResult::HelpGiven)
            )
        );
        let why: Vec<_> = s.conflicts().filter_map(|c| c.refusal.clone()).collect();
        assert_eq!(
            why,
            [
                TaskRefusal::BeforeTask,
                TaskRefusal::Taken { by: "wang".into() }
            ]
        );
    }

    #[test]
    fn one_who_completed_keeps_the_task_from_one_who_only_arrived() {
        use TaskEventKind as K;
        let id = TaskId(uuid::Uuid::from_u128(1));
        // Both went while offline; wang finished, li (who accepted earlier) only arrived.
        let ops = vec![
            (stamp(10, 0), TaskOp::Create(task())),
            (
                stamp(20, 9),
                TaskOp::Event(event(1, K::Accept, "wang"), Role::Patroller),
            ),
            (
                stamp(21, 9),
                TaskOp::Event(event(2, K::Arrive, "wang"), Role::Patroller),
            ),
            (
                stamp(22, 9),
                TaskOp::Event(event(3, K::Complete, "wang"), Role::Patroller),
            ),
            (
                stamp(15, 7),
                TaskOp::Event(event(4, K::Accept, "li"), Role::Patroller),
            ),
            (
                stamp(16, 7),
                TaskOp::Event(event(5, K::Arrive, "li"), Role::Patroller),
            ),
        ];
        let s = fold(id, &ops);
        assert_eq!(
            (s.status, s.assignee.as_deref()),
            (TaskStatus::Completed, Some("wang"))
        );
        let lost: Vec<_> = s.conflicts().map(|c| (c.kind, c.user.as_str())).collect();
        assert_eq!(lost, [(K::Accept, "li"), (K::Arrive, "li")]);
        // Acceptances after the task was called off do not decide whom it belonged to.
        let mut cancelled = vec![
            (stamp(10, 0), TaskOp::Create(task())),
            (
                stamp(20, 9),
                TaskOp::Event(event(1, K::Accept, "wang"), Role::Patroller),
            ),
            (
                stamp(25, 5),
                TaskOp::Event(event(6, K::Cancel, "chen"), Role::GridManager),
            ),
        ];
        cancelled.push((
            stamp(30, 7),
            TaskOp::Event(event(7, K::Accept, "li"), Role::Patroller),
        ));
        cancelled.push((
            stamp(31, 7),
            TaskOp::Event(event(8, K::Complete, "li"), Role::Patroller),
        ));
        let s = fold(id, &cancelled);
        assert_eq!(
            (s.status, s.assignee.as_deref()),
            (TaskStatus::Cancelled, Some("wang"))
        );
    }

    #[test]
    fn a_decline_by_the_offered_user_opens_the_task_again() {
        use TaskEventKind as K;
        let id = TaskId(uuid::Uuid::from_u128(1));
        let ops = vec![
            (stamp(1, 0), TaskOp::Create(task())),
            (
                stamp(2, 0),
                TaskOp::Event(event(1, K::Offer, "li"), Role::Admin),
            ),
            (
                stamp(3, 7),
                TaskOp::Event(event(2, K::Decline, "li"), Role::Patroller),
            ),
        ];
        let s = fold(id, &ops);
        assert_eq!(
            (s.status, s.offered_to.clone(), s.declined.clone()),
            (TaskStatus::Open, None, vec!["li".to_owned()])
        );
        // Only the assignee arrives or completes; a device may never offer.
        let mut more = ops.clone();
        more.push((
            stamp(4, 8),
            TaskOp::Event(event(3, K::Accept, "wang"), Role::Patroller),
        ));
        more.push((
            stamp(5, 7),
            TaskOp::Event(event(4, K::Complete, "li"), Role::Patroller),
        ));
        more.push((
            stamp(6, 7),
            TaskOp::Event(event(5, K::Offer, "li"), Role::Patroller),
        ));
        let s = fold(id, &more);
        assert_eq!(s.status, TaskStatus::Accepted);
        let why: Vec<_> = s.conflicts().filter_map(|c| c.conflict.clone()).collect();
        assert_eq!(
            why,
            [
                "complete by li: already accepted by wang",
                "offer by li: a patroller may not do this"
            ]
        );
        assert_eq!(
            may_step(K::Offer, Role::Admin),
            Err(TaskRefusal::Role { role: Role::Admin })
        );
        assert!(may_step(K::Cancel, Role::Patroller).is_err());
        assert!(may_step(K::Accept, Role::Agency).is_err());
    }
}
