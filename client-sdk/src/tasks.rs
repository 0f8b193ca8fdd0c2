//! Tasks (dispatch) on the phone: help calls (弱势群体监护), inspections, fix checks and visits
//! the server offers to the nearest on-duty patroller. A patroller accepts or declines, arrives
//! (a check-in at the place when the task names a checkpoint) and completes with what was found
//! — all offline, each step an op like a hazard's, applied to the device's view at once. The
//! task's entries share the local log table with hazards' (`hazard_ops`, keyed by the task id).

use patrolsync_proto::hazard::Stamp;
use patrolsync_proto::task::{
    Task, TaskEvent, TaskEventKind, TaskKind, TaskOp, TaskResult, TaskState, Urgency, fold,
};
use patrolsync_proto::{
    CheckInId, CheckInKind, CheckInMethod, CheckInOutcome, DeviceId, EventId, GeoFix, HazardId,
    Hlc, OpBody, Role, TaskId,
};
use sqlx::Row;

use crate::clock::now_ms;
use crate::error::read_failed;
use crate::{Client, NewCheckIn, ReadError, RecordError};

/// A task in the device's view.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskView {
    /// The folded state: status, assignee, offers, history with conflicts.
    pub state: TaskState,
    /// Steps of this device not yet acknowledged by the server are in it already.
    pub has_local_changes: bool,
}

/// A task a manager makes from the device.
#[derive(Clone, Debug, PartialEq)]
pub struct NewTask {
    /// The cell.
    pub grid_cell: String,
    /// What it is.
    pub kind: TaskKind,
    /// How urgent.
    pub urgency: Urgency,
    /// The household it is for, if any.
    pub household: Option<String>,
    /// The key unit it is for, if any.
    pub unit: Option<String>,
    /// A checkpoint at the place (arriving is a check-in there), if any.
    pub checkpoint: Option<String>,
    /// Where, if known.
    pub position: Option<GeoFix>,
    /// What is wanted.
    pub description: String,
}

/// What arriving recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrival {
    /// The step.
    pub event: EventId,
    /// The check-in at the task's checkpoint, when it names one.
    pub check_in: Option<CheckInId>,
}

impl Client {
    /// The user this device acts as.
    async fn user_name(&self) -> Result<String, RecordError> {
        let user: Option<String> =
            sqlx::query_scalar("SELECT user_name FROM identity WHERE id = 1")
                .fetch_optional(&self.inner.db)
                .await
                .map_err(|e| RecordError::Storage(e.to_string()))?;
        user.filter(|u| !u.is_empty())
            .ok_or(RecordError::NotEnrolled)
    }

    /// Every task in the device's view (those of its cells), newest first.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the network.
    pub async fn tasks(&self) -> Result<Vec<TaskView>, ReadError> {
        let ids: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT hazard_id FROM hazard_ops WHERE kind = ? ORDER BY hlc_wall_ms DESC, hlc_logical DESC",
        )
        .bind(TaskOp::CREATE)
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let id = TaskId::from_slice(&id).ok_or_else(|| read_failed("bad task id"))?;
            if let Some(v) = self.task(id).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// One task, folded from every device's steps and this device's own not yet sent.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the network.
    pub async fn task(&self, id: TaskId) -> Result<Option<TaskView>, ReadError> {
        let rows = sqlx::query(
            "SELECT hlc_wall_ms, hlc_logical, device_id, kind, role, payload FROM hazard_ops \
             WHERE hazard_id = ? AND kind IN (?, ?)",
        )
        .bind(id.0.as_bytes().to_vec())
        .bind(TaskOp::CREATE)
        .bind(TaskOp::EVENT)
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        // A task is shown once the task itself is here.
        if !rows.iter().any(|r| r.get::<String, _>(3) == TaskOp::CREATE) {
            return Ok(None);
        }
        let mut ops = Vec::with_capacity(rows.len());
        for r in &rows {
            let device: String = r.get(2);
            let role: Role = r.get::<String, _>(4).parse().map_err(read_failed)?;
            let stamp = Stamp {
                hlc: Hlc {
                    wall_ms: r.get::<i64, _>(0) as u64,
                    logical: r.get::<i64, _>(1) as u32,
                },
                // The server's own entries carry no device.
                device: if device.is_empty() {
                    DeviceId(uuid::Uuid::nil())
                } else {
                    device.parse::<DeviceId>().map_err(read_failed)?
                },
            };
            let op = TaskOp::decode(&r.get::<String, _>(3), &r.get::<Vec<u8>, _>(5), role)
                .map_err(read_failed)?;
            ops.push((stamp, op));
        }
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE record_id = ? AND kind IN (?, ?)",
        )
        .bind(id.0.as_bytes().to_vec())
        .bind(TaskOp::CREATE)
        .bind(TaskOp::EVENT)
        .fetch_one(&self.inner.db)
        .await
        .map_err(read_failed)?;
        Ok(Some(TaskView {
            state: fold(id, &ops),
            has_local_changes: pending > 0,
        }))
    }

    /// Makes a task in one of the user's cells (a manager's, offline); the server offers it to
    /// the cell's on-duty patrollers.
    ///
    /// # Errors
    ///
    /// [`RecordError`]: `Invalid` (a field breaks a protocol rule), `Forbidden` (only a
    /// manager makes tasks), `NotEnrolled`, `Storage`.
    ///
    /// # Cancel safety
    ///
    /// Queued in one local transaction: cancelled, it is either durable or not recorded.
    pub async fn create_task(&self, t: NewTask) -> Result<TaskId, RecordError> {
        self.require_enrolled().await?;
        let role = self
            .role()
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?;
        if !matches!(role, Role::GridManager | Role::Admin) {
            return Err(RecordError::Forbidden {
                action: "create_task".into(),
                reason: format!("a {role} may not make tasks; a manager does"),
            });
        }
        let now = now_ms();
        let task = Task {
            id: TaskId(uuid::Uuid::now_v7()),
            grid_cell: t.grid_cell,
            kind: t.kind,
            urgency: t.urgency,
            household: t.household.unwrap_or_default(),
            unit: t.unit.unwrap_or_default(),
            checkpoint: t.checkpoint.unwrap_or_default(),
            position: t.position,
            description: t.description,
            device_time_ms: now,
        };
        let task = Task::from_wire(task.to_wire(), now)?;
        let id = task.id;
        self.enqueue(OpBody::Task(Box::new(task)), id.0.as_bytes().to_vec(), now)
            .await?;
        Ok(id)
    }

    /// A step of task `id` by this device's user, checked and queued.
    async fn step(
        &self,
        id: TaskId,
        kind: TaskEventKind,
        fill: impl FnOnce(&mut TaskEvent),
    ) -> Result<TaskEvent, RecordError> {
        self.require_enrolled().await?;
        let role = self
            .role()
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?;
        patrolsync_proto::task::may_step(kind, role).map_err(|r| RecordError::Forbidden {
            action: kind.to_string(),
            reason: r.to_string(),
        })?;
        let now = now_ms();
        let mut event = TaskEvent {
            id: EventId(uuid::Uuid::now_v7()),
            task: id,
            kind,
            user: self.user_name().await?,
            check_in: None,
            result: None,
            hazard: None,
            note: String::new(),
            position: None,
            device_time_ms: now,
        };
        fill(&mut event);
        Ok(TaskEvent::from_wire(event.to_wire(), now)?)
    }

    async fn queue_step(&self, event: TaskEvent) -> Result<EventId, RecordError> {
        let id = event.id;
        let record = event.task.0.as_bytes().to_vec();
        self.enqueue(OpBody::TaskEvent(Box::new(event)), record, now_ms())
            .await?;
        Ok(id)
    }

    /// Takes task `id` (offline). If another patroller took it first, the server and every
    /// device keep theirs and show this one as a conflict.
    ///
    /// # Errors
    ///
    /// [`RecordError`]: `Forbidden` (the role may not), `NotEnrolled`, `Storage`.
    ///
    /// # Cancel safety
    ///
    /// Queued in one local transaction.
    pub async fn accept_task(&self, id: TaskId) -> Result<EventId, RecordError> {
        let e = self.step(id, TaskEventKind::Accept, |_| {}).await?;
        self.queue_step(e).await
    }

    /// Declines task `id` (offline): the server offers it to the next patroller.
    ///
    /// # Errors
    ///
    /// As [`Client::accept_task`].
    ///
    /// # Cancel safety
    ///
    /// Queued in one local transaction.
    pub async fn decline_task(&self, id: TaskId, note: String) -> Result<EventId, RecordError> {
        let e = self
            .step(id, TaskEventKind::Decline, |e| e.note = note)
            .await?;
        self.queue_step(e).await
    }

    /// Arrives at task `id`'s place (offline). When the task names a checkpoint, this records
    /// a check-in there (a visit, for a household's task) with `fix`, queued in the same local
    /// transaction as the step that links it.
    ///
    /// # Errors
    ///
    /// [`RecordError`]: `Invalid` (the task is not in the device's view, or the check-in breaks
    /// a rule), `Forbidden`, `NotEnrolled`, `Storage`.
    ///
    /// # Cancel safety
    ///
    /// The check-in and the step are queued in one local transaction: both or neither.
    pub async fn arrive(&self, id: TaskId, fix: Option<GeoFix>) -> Result<Arrival, RecordError> {
        let view = self
            .task(id)
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?
            .ok_or_else(|| {
                RecordError::Invalid(patrolsync_proto::Invalid::new(
                    "task_id",
                    "unknown_task",
                    format!("task {id} is not in this device's view; sync first"),
                ))
            })?;
        // Only the one who has it arrives (nothing is recorded otherwise).
        let me = self.user_name().await?;
        if view.state.assignee.as_deref() != Some(me.as_str())
            || view.state.status != patrolsync_proto::task::TaskStatus::Accepted
        {
            return Err(RecordError::Invalid(patrolsync_proto::Invalid::new(
                "task_id",
                "wrong_state",
                format!(
                    "task {id} is {} and {}; accept it before arriving",
                    view.state.status,
                    view.state
                        .assignee
                        .as_deref()
                        .map_or("nobody has it".to_owned(), |a| format!("{a} has it"))
                ),
            )));
        }
        let task = view.state.task.map(|(t, _)| t);
        let checkpoint = task
            .as_ref()
            .map(|t| t.checkpoint.clone())
            .filter(|c| !c.is_empty());
        let mut ops = Vec::new();
        let check_in = match checkpoint {
            Some(checkpoint) => {
                let household = task
                    .as_ref()
                    .map(|t| t.household.clone())
                    .filter(|h| !h.is_empty());
                let mut c = NewCheckIn::new(checkpoint, CheckInOutcome::Inspected);
                c.kind = if household.is_some() {
                    CheckInKind::Visit
                } else {
                    CheckInKind::Patrol
                };
                c.household = household;
                c.method = if fix.is_some() {
                    CheckInMethod::Gps
                } else {
                    CheckInMethod::Manual
                };
                c.fix = fix.clone();
                c.note = format!("task {id}");
                let c = self.new_check_in(c).await?;
                let check_in = c.id;
                ops.push((OpBody::CheckIn(Box::new(c)), check_in.to_bytes()));
                Some(check_in)
            }
            None => None,
        };
        let event = self
            .step(id, TaskEventKind::Arrive, |e| {
                e.check_in = check_in;
                e.position = fix;
            })
            .await?;
        let step = event.id;
        ops.push((OpBody::TaskEvent(Box::new(event)), id.0.as_bytes().to_vec()));
        self.enqueue_all(ops, now_ms()).await?;
        Ok(Arrival {
            event: step,
            check_in,
        })
    }

    /// Completes task `id` (offline) with what was found; `hazard` names the hazard reported
    /// (required with [`TaskResult::HazardReported`]).
    ///
    /// # Errors
    ///
    /// [`RecordError`]: `Invalid` (no hazard named with `hazard_reported`), `Forbidden`,
    /// `NotEnrolled`, `Storage`.
    ///
    /// # Cancel safety
    ///
    /// Queued in one local transaction.
    pub async fn complete_task(
        &self,
        id: TaskId,
        result: TaskResult,
        hazard: Option<HazardId>,
        note: String,
    ) -> Result<EventId, RecordError> {
        let e = self
            .step(id, TaskEventKind::Complete, |e| {
                e.result = Some(result);
                e.hazard = hazard;
                e.note = note;
            })
            .await?;
        self.queue_step(e).await
    }

    /// Calls task `id` off (a manager, offline).
    ///
    /// # Errors
    ///
    /// As [`Client::accept_task`].
    ///
    /// # Cancel safety
    ///
    /// Queued in one local transaction.
    pub async fn cancel_task(&self, id: TaskId, note: String) -> Result<EventId, RecordError> {
        let e = self
            .step(id, TaskEventKind::Cancel, |e| e.note = note)
            .await?;
        self.queue_step(e).await
    }
}

/// Why a task step in a history did not apply, as a code an app words in the user's language:
/// `task_taken` (another patroller has it), `wrong_state` or `forbidden`; `None` for a step
/// that applied.
pub fn task_conflict_code(
    h: &patrolsync_proto::task::TaskHistoryEntry,
) -> Option<crate::ErrorCode> {
    use patrolsync_proto::task::TaskRefusal;
    Some(match h.refusal.as_ref()? {
        TaskRefusal::Taken { by } => crate::ErrorCode::TaskTaken { by: by.clone() },
        TaskRefusal::WrongState { status } => crate::ErrorCode::WrongState {
            action: h.kind.as_str().into(),
            status: status.as_str().into(),
        },
        TaskRefusal::Role { .. } => crate::ErrorCode::Forbidden {
            action: h.kind.as_str().into(),
        },
        TaskRefusal::BeforeTask => crate::ErrorCode::Invalid {
            field: "hlc".into(),
            reason: "before_task".into(),
        },
    })
}
