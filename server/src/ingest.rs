//! Ingest: validates pushed ops against the protocol rules and the device user's scope, then
//! commits them through a group-commit queue. Pushes from many devices share one transaction
//! (commit cost dominates small transactions) and every device is answered only after that
//! commit. A device's pushes always go to the same writer, so its ops apply in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use patrolsync_proto::hazard::{self, HazardOp};
use patrolsync_proto::task::{self, TaskOp};
use patrolsync_proto::{HazardId, Message, Op, OpBody, Role, TaskId, wire};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use crate::store::{
    BatchResult, CheckInRow, DeviceSession, HazardRef, HazardRow, IngestBatch, OpAction,
    PreparedOp, Refusal, RejectCode, Rejection, Store, StoreError, TaskRef, TaskRow,
};

/// Most entries one hazard's log takes: every op refolds the log, so it stays bounded.
pub const MAX_HAZARD_LOG: i64 = 500;

/// Most entries one device adds to one hazard's log: below [`MAX_HAZARD_LOG`], so a device
/// fills at most part of its role's share.
pub const MAX_HAZARD_ENTRIES_PER_DEVICE: i64 = 200;

/// Most entries one device adds to one task's log (a task takes a handful of steps).
pub const MAX_TASK_ENTRIES_PER_DEVICE: i64 = 20;

/// Most ops one group commit carries.
const MAX_OPS_PER_COMMIT: usize = 5000;

/// Pushes one writer's queue holds; more wait for room (and count in `ingest_queue` meanwhile).
pub const QUEUE_PER_WRITER: usize = 1024;

/// One pushed op as received: its identity, its encoded form (kept if it is refused), and the
/// record it carries or why that record is invalid.
struct Received {
    device_seq: u64,
    /// `None` when the op's id is not 16 bytes.
    op_id: Option<patrolsync_proto::OpId>,
    hlc: patrolsync_proto::Hlc,
    payload: Vec<u8>,
    op: Result<Op, patrolsync_proto::Invalid>,
}

/// Validates a push's ops for `session` at server time `now_ms`, looking up checkpoints.
/// Each op gets either a row to insert or a rejection naming the field and the reason.
pub async fn prepare(
    store: &dyn Store,
    session: &DeviceSession,
    ops: Vec<wire::Op>,
    now_ms: i64,
) -> Result<IngestBatch, StoreError> {
    let mut decoded = Vec::with_capacity(ops.len());
    for w in ops {
        let device_seq = w.device_seq;
        let op_id = patrolsync_proto::OpId::from_slice(&w.op_id);
        let hlc = w.hlc.map(patrolsync_proto::Hlc::from).unwrap_or_default();
        let payload = w.encode_to_vec();
        decoded.push(Received {
            device_seq,
            op_id,
            hlc,
            payload,
            op: Op::from_wire(w, now_ms),
        });
    }
    let mut codes: Vec<String> = decoded
        .iter()
        .filter_map(|d| match &d.op {
            Ok(Op {
                body: OpBody::CheckIn(c),
                ..
            }) => Some(c.checkpoint.clone()),
            Ok(Op {
                body: OpBody::Task(t),
                ..
            }) if !t.checkpoint.is_empty() => Some(t.checkpoint.clone()),
            _ => None,
        })
        .collect();
    codes.sort();
    codes.dedup();
    let checkpoints: HashMap<String, _> = store
        .checkpoints(&codes)
        .await?
        .into_iter()
        .map(|c| (c.code.clone(), c))
        .collect();
    // The households its visits name.
    let mut named: Vec<String> = decoded
        .iter()
        .filter_map(|d| match &d.op {
            Ok(Op {
                body: OpBody::CheckIn(c),
                ..
            }) if !c.household.is_empty() => Some(c.household.clone()),
            Ok(Op {
                body: OpBody::Task(t),
                ..
            }) if !t.household.is_empty() => Some(t.household.clone()),
            _ => None,
        })
        .collect();
    named.sort();
    named.dedup();
    let households: HashMap<String, _> = store
        .household_refs(&named)
        .await?
        .into_iter()
        .map(|h| (h.code.clone(), h))
        .collect();
    // The checklist versions this push answers (one lookup each); a version this server never
    // published is stored as it is.
    let mut answered: Vec<(String, u32)> = decoded
        .iter()
        .filter_map(|d| match &d.op {
            Ok(Op {
                body: OpBody::CheckIn(c),
                ..
            }) if !c.template_id.is_empty() => Some((c.template_id.clone(), c.template_version)),
            _ => None,
        })
        .collect();
    answered.sort();
    answered.dedup();
    let mut templates = HashMap::new();
    for (id, version) in answered {
        if let Some(t) = store.template(&id, version).await? {
            templates.insert((id, version), t);
        }
    }
    let mut cell_codes: Vec<String> = Vec::new();
    let mut hazard_ids: Vec<HazardId> = Vec::new();
    let mut task_ids: Vec<TaskId> = Vec::new();
    for d in &decoded {
        match &d.op {
            Ok(Op {
                body: OpBody::Task(t),
                ..
            }) => cell_codes.push(t.grid_cell.clone()),
            Ok(Op {
                body: OpBody::TaskEvent(e),
                ..
            }) => task_ids.push(e.task),
            Ok(Op {
                body: OpBody::HazardReport(r),
                ..
            }) => cell_codes.push(r.grid_cell.clone()),
            Ok(Op {
                body: OpBody::HazardEvent(e),
                ..
            }) => {
                hazard_ids.push(e.hazard);
                hazard_ids.extend(e.merge_into);
            }
            Ok(Op {
                body: OpBody::HazardEdit(e),
                ..
            }) => hazard_ids.push(e.hazard),
            _ => {}
        }
    }
    cell_codes.sort();
    cell_codes.dedup();
    hazard_ids.sort();
    hazard_ids.dedup();
    let cells: HashMap<String, _> = store
        .cells(&cell_codes)
        .await?
        .into_iter()
        .map(|c| (c.code.clone(), c))
        .collect();
    let mut hazards: HashMap<HazardId, _> = store
        .hazard_refs(&hazard_ids, session.role, session.id)
        .await?
        .into_iter()
        .map(|h| (h.id, h))
        .collect();
    task_ids.sort();
    task_ids.dedup();
    let mut tasks: HashMap<TaskId, TaskRef> = store
        .task_refs(&task_ids, session.id)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect();
    let assigned = || {
        if session.cells.is_empty() {
            "none".to_owned()
        } else {
            session.cell_codes().join(", ")
        }
    };

    let refuse = |refusal, payload| OpAction::Reject(Rejection { refusal, payload });
    // `value` is what the field named (for the device's message), `limit` the rule's bound.
    let reject = |code,
                  reason: &str,
                  (field, value, limit): (&str, &str, Option<u64>),
                  message: String,
                  payload: Vec<u8>| {
        refuse(
            Refusal {
                code,
                reason: reason.into(),
                field: field.into(),
                message,
                value: value.into(),
                limit,
            },
            payload,
        )
    };
    let mut prepared = Vec::with_capacity(decoded.len());
    for Received {
        device_seq,
        op_id,
        hlc,
        payload,
        op,
    } in decoded
    {
        // An op without a usable id still gets a result and a place in the rejection log.
        let op_id = op_id.unwrap_or(patrolsync_proto::OpId(uuid::Uuid::nil()));
        let checklist = match &op {
            Ok(Op {
                body: OpBody::CheckIn(c),
                ..
            }) => templates
                .get(&(c.template_id.clone(), c.template_version))
                .and_then(|t| t.check_answers(c.outcome, &c.answers).err()),
            _ => None,
        };
        let action = match op {
            Err(invalid) => reject(
                RejectCode::Invalid,
                invalid.reason,
                (&invalid.field, "", invalid.limit),
                invalid.message,
                payload,
            ),
            Ok(Op {
                body: OpBody::CheckIn(c),
                ..
            }) => match checkpoints.get(&c.checkpoint) {
                None => reject(
                    RejectCode::NotFound,
                    "unknown_checkpoint",
                    ("checkpoint", &c.checkpoint, None),
                    format!("checkpoint {} does not exist", c.checkpoint),
                    payload,
                ),
                Some(cp) if cp.retired => reject(
                    RejectCode::Invalid,
                    "retired_checkpoint",
                    ("checkpoint", &c.checkpoint, None),
                    format!(
                        "checkpoint {} is retired and takes no new check-ins",
                        c.checkpoint
                    ),
                    payload,
                ),
                Some(cp) if !session.covers(&cp.cell_path) => reject(
                    RejectCode::Forbidden,
                    "outside_scope",
                    ("checkpoint", &c.checkpoint, None),
                    format!(
                        "checkpoint {} is outside your grid cells (assigned: {})",
                        c.checkpoint,
                        if session.cells.is_empty() {
                            "none".into()
                        } else {
                            session.cell_codes().join(", ")
                        }
                    ),
                    payload,
                ),
                // One answer whether the household is elsewhere or nowhere: the register is
                // private, so a device learns nothing of the codes outside its cells.
                // A household taken off the register takes no visit made from then on (one made
                // before, synced late, is kept).
                Some(_)
                    if !c.household.is_empty()
                        && households.get(&c.household).is_none_or(|h| {
                            !session.covers(&h.cell_path)
                                || h.removed_at_ms.is_some_and(|r| c.device_time_ms >= r)
                        }) =>
                {
                    reject(
                        RejectCode::NotFound,
                        "unknown_household",
                        ("household", &c.household, None),
                        format!(
                            "household {} is not on the register of your grid cells (assigned: {})",
                            c.household,
                            assigned()
                        ),
                        payload,
                    )
                }
                Some(_) if checklist.is_some() => {
                    let invalid = checklist.clone().unwrap_or_else(|| {
                        patrolsync_proto::checkin::Invalid::new("answers", "invalid", "")
                    });
                    reject(
                        RejectCode::Invalid,
                        invalid.reason,
                        (&invalid.field, "", invalid.limit),
                        invalid.message,
                        payload,
                    )
                }
                Some(cp) => OpAction::InsertCheckIn(Box::new(CheckInRow {
                    checkpoint_id: cp.id,
                    cell_id: cp.cell_id,
                    household_id: households.get(&c.household).map(|h| h.id),
                    check_in: *c,
                })),
            },
            Ok(Op {
                body: OpBody::HazardReport(r),
                ..
            }) => match cells.get(&r.grid_cell) {
                None => reject(
                    RejectCode::NotFound,
                    "unknown_cell",
                    ("grid_cell", &r.grid_cell, None),
                    format!("grid cell {} does not exist", r.grid_cell),
                    payload,
                ),
                Some(cell) if cell.retired => reject(
                    RejectCode::Invalid,
                    "retired_cell",
                    ("grid_cell", &r.grid_cell, None),
                    format!(
                        "grid cell {} is retired and takes no new hazards",
                        r.grid_cell
                    ),
                    payload,
                ),
                Some(cell) if !session.covers(&cell.path) => reject(
                    RejectCode::Forbidden,
                    "outside_scope",
                    ("grid_cell", &r.grid_cell, None),
                    format!(
                        "grid cell {} is outside your grid cells (assigned: {})",
                        r.grid_cell,
                        assigned()
                    ),
                    payload,
                ),
                Some(_) if session.role == Role::Agency => reject(
                    RejectCode::Forbidden,
                    "role",
                    ("body", "", None),
                    "an agency user may not report hazards; the grid reports them".into(),
                    payload,
                ),
                Some(cell) => {
                    // Visible at once to this push's later ops; an existing hazard keeps its own
                    // cell (a report cannot move a hazard into the sender's scope).
                    hazards.entry(r.id).or_insert_with(|| HazardRef {
                        id: r.id,
                        cell_id: cell.id,
                        cell_path: cell.path.clone(),
                        status: "reported".into(),
                        category: r.category.as_str().into(),
                        agency: None,
                        routed_to: None,
                        log_len: 0,
                        role_entries: 0,
                        device_entries: 0,
                    });
                    OpAction::Hazard(Box::new(HazardRow {
                        entry_id: r.id.0,
                        cell_id: cell.id,
                        cell_path: cell.path.clone(),
                        role: session.role,
                        op: HazardOp::Report(*r),
                    }))
                }
            },
            Ok(Op {
                body: OpBody::HazardEvent(e),
                ..
            }) => match hazard_scope(&hazards, session, e.hazard, "hazard_id", &assigned) {
                Err(refusal) => refuse(refusal, payload),
                Ok(h) => {
                    let merge_target = e
                        .merge_into
                        .map(|m| hazard_scope(&hazards, session, m, "merge_into", &assigned));
                    if let Err(refusal) = hazard::may_fire(e.kind, session.role) {
                        reject(
                            RejectCode::Forbidden,
                            "role",
                            ("kind", e.kind.as_str(), None),
                            format!("{}: {refusal}", e.kind),
                            payload,
                        )
                    } else if let Some(Err(refusal)) = merge_target {
                        refuse(refusal, payload)
                    } else if let Some(Ok(into)) = merge_target
                        && information(h) != information(into)
                    {
                        // A hazard merged into an information report would leave the closed
                        // loop unfixed; the other way round, a report would turn rectifiable.
                        reject(
                            RejectCode::Invalid,
                            "information_report",
                            ("merge_into", &into.id.to_string(), None),
                            "an information report and a hazard cannot be merged into one another"
                                .into(),
                            payload,
                        )
                    } else {
                        let hazard = e.hazard;
                        let row = OpAction::Hazard(Box::new(HazardRow {
                            entry_id: e.id.0,
                            cell_id: h.cell_id,
                            cell_path: h.cell_path.clone(),
                            role: session.role,
                            op: HazardOp::Event(*e, session.role),
                        }));
                        count_entry(&mut hazards, hazard);
                        row
                    }
                }
            },
            Ok(Op {
                op_id: real_op_id,
                body: OpBody::HazardEdit(e),
                ..
            }) => match hazard_scope(&hazards, session, e.hazard, "hazard_id", &assigned) {
                Err(refusal) => refuse(refusal, payload),
                Ok(_) if hazard::may_edit(session.role).is_err() => reject(
                    RejectCode::Forbidden,
                    "role",
                    ("field", "", None),
                    format!("a {} user may not edit hazard fields", session.role),
                    payload,
                ),
                Ok(h) if !edit_applies(h, &e.value) => reject(
                    RejectCode::Invalid,
                    "information_report",
                    ("value", "", None),
                    "an information report is acknowledged, not rectified, and a report cannot \
                     change between an information kind and a hazard"
                        .into(),
                    payload,
                ),
                Ok(h) => {
                    let row = OpAction::Hazard(Box::new(HazardRow {
                        entry_id: real_op_id.0,
                        cell_id: h.cell_id,
                        cell_path: h.cell_path.clone(),
                        role: session.role,
                        op: HazardOp::Edit(e.clone()),
                    }));
                    count_entry(&mut hazards, e.hazard);
                    row
                }
            },
            Ok(Op {
                body: OpBody::Task(t),
                ..
            }) => match cells.get(&t.grid_cell) {
                None => reject(
                    RejectCode::NotFound,
                    "unknown_cell",
                    ("grid_cell", &t.grid_cell, None),
                    format!("grid cell {} does not exist", t.grid_cell),
                    payload,
                ),
                Some(cell) if cell.retired => reject(
                    RejectCode::Invalid,
                    "retired_cell",
                    ("grid_cell", &t.grid_cell, None),
                    format!(
                        "grid cell {} is retired and takes no new tasks",
                        t.grid_cell
                    ),
                    payload,
                ),
                Some(cell) if !session.covers(&cell.path) => reject(
                    RejectCode::Forbidden,
                    "outside_scope",
                    ("grid_cell", &t.grid_cell, None),
                    format!(
                        "grid cell {} is outside your grid cells (assigned: {})",
                        t.grid_cell,
                        assigned()
                    ),
                    payload,
                ),
                Some(_) if !matches!(session.role, Role::GridManager | Role::Admin) => reject(
                    RejectCode::Forbidden,
                    "role",
                    ("body", "", None),
                    format!("a {} may not make tasks; a manager does", session.role),
                    payload,
                ),
                // The checkpoint (arriving is a check-in there) and the household it names lie
                // in its cell, as a task an admin makes must.
                Some(cell)
                    if !t.checkpoint.is_empty()
                        && !checkpoints.get(&t.checkpoint).is_some_and(|cp| {
                            !cp.retired && patrolsync_proto::grid::covers(&cell.path, &cp.cell_path)
                        }) =>
                {
                    reject(
                        RejectCode::NotFound,
                        "unknown_checkpoint",
                        ("checkpoint", &t.checkpoint, None),
                        format!(
                            "checkpoint {} is not in grid cell {} (or does not exist)",
                            t.checkpoint, t.grid_cell
                        ),
                        payload,
                    )
                }
                Some(cell)
                    if !t.household.is_empty()
                        && !households.get(&t.household).is_some_and(|h| {
                            h.removed_at_ms.is_none()
                                && patrolsync_proto::grid::covers(&cell.path, &h.cell_path)
                        }) =>
                {
                    reject(
                        RejectCode::NotFound,
                        "unknown_household",
                        ("household", &t.household, None),
                        format!(
                            "household {} is not on the register of its cell",
                            t.household
                        ),
                        payload,
                    )
                }
                Some(cell) => {
                    tasks.entry(t.id).or_insert_with(|| TaskRef {
                        id: t.id,
                        cell_id: cell.id,
                        cell_path: cell.path.clone(),
                        log_len: 0,
                        device_entries: 0,
                    });
                    OpAction::Task(Box::new(TaskRow {
                        cell_id: cell.id,
                        cell_path: cell.path.clone(),
                        role: session.role,
                        op: TaskOp::Create(*t),
                    }))
                }
            },
            Ok(Op {
                body: OpBody::TaskEvent(e),
                ..
            }) => match tasks.get_mut(&e.task) {
                None => reject(
                    RejectCode::NotFound,
                    "unknown_task",
                    ("task_id", &e.task.to_string(), None),
                    format!("task {} does not exist", e.task),
                    payload,
                ),
                Some(t) if !session.covers(&t.cell_path) => reject(
                    RejectCode::Forbidden,
                    "outside_scope",
                    ("task_id", &e.task.to_string(), None),
                    format!(
                        "task {} is outside your grid cells (assigned: {})",
                        e.task,
                        assigned()
                    ),
                    payload,
                ),
                Some(_) if task::may_step(e.kind, session.role).is_err() => reject(
                    RejectCode::Forbidden,
                    "role",
                    ("kind", e.kind.as_str(), None),
                    format!(
                        "{}: {}",
                        e.kind,
                        task::TaskRefusal::Role { role: session.role }
                    ),
                    payload,
                ),
                // A step names its own user: nobody accepts or completes for another.
                Some(_) if e.user != session.user => reject(
                    RejectCode::Forbidden,
                    "not_you",
                    ("user", &e.user, None),
                    format!(
                        "a step names the user who makes it ({}), not {:?}",
                        session.user, e.user
                    ),
                    payload,
                ),
                // One device fills at most part of a task's log, so nobody can fill it to keep
                // the assignee from arriving or completing.
                Some(t) if t.device_entries >= MAX_TASK_ENTRIES_PER_DEVICE => reject(
                    RejectCode::Invalid,
                    "log_full",
                    (
                        "task_id",
                        &e.task.to_string(),
                        Some(MAX_TASK_ENTRIES_PER_DEVICE as u64),
                    ),
                    format!(
                        "task {} already has {} entries from this device, the most one device adds",
                        e.task, t.device_entries
                    ),
                    payload,
                ),
                Some(t) if t.log_len >= MAX_HAZARD_LOG => reject(
                    RejectCode::Invalid,
                    "log_full",
                    ("task_id", &e.task.to_string(), Some(MAX_HAZARD_LOG as u64)),
                    format!(
                        "task {} already has {} entries, the most a task takes",
                        e.task, t.log_len
                    ),
                    payload,
                ),
                Some(t) => {
                    t.log_len += 1;
                    t.device_entries += 1;
                    OpAction::Task(Box::new(TaskRow {
                        cell_id: t.cell_id,
                        cell_path: t.cell_path.clone(),
                        role: session.role,
                        op: TaskOp::Event(*e, session.role),
                    }))
                }
            },
            // `OpBody` may grow: an op this server version cannot apply is refused by name.
            Ok(other) => reject(
                RejectCode::Unsupported,
                "unsupported_op",
                ("body", "", None),
                format!(
                    "{} ops are not accepted by this server version ({})",
                    other.body.kind_name(),
                    env!("CARGO_PKG_VERSION")
                ),
                payload,
            ),
        };
        prepared.push(PreparedOp {
            device_seq,
            op_id,
            hlc,
            action,
        });
    }
    prepared.sort_by_key(|p| p.device_seq);
    Ok(IngestBatch {
        device: session.id,
        user_id: session.user_id,
        ops: prepared,
    })
}

/// The hazard, if it exists, lies in the session's scope, and the session's role and device
/// still have room in its log; otherwise why not. Scope comes first: a device learns nothing
/// of a hazard outside it, its log length included.
fn hazard_scope<'a>(
    hazards: &'a HashMap<HazardId, HazardRef>,
    session: &DeviceSession,
    id: HazardId,
    field: &str,
    assigned: &dyn Fn() -> String,
) -> Result<&'a HazardRef, Refusal> {
    let no = |code, reason: &str, message| Refusal {
        code,
        reason: reason.into(),
        field: field.into(),
        message,
        value: id.to_string(),
        limit: None,
    };
    // A party (物业, 社区) acts on what a routing rule sent it, wherever that is; nobody else
    // gains anything from routing (an agency a rule informed acts once a hazard is transferred
    // to it, as any agency).
    let audience = session.audience();
    let routed_here = |h: &HazardRef| {
        session.role.is_party() && h.routed_to.as_deref() == Some(audience.as_str())
    };
    match hazards.get(&id) {
        None => Err(no(
            RejectCode::NotFound,
            "unknown_hazard",
            format!("hazard {id} does not exist"),
        )),
        // An agency acts only on hazards its agency holds (and in its cells).
        Some(h)
            if session.role == Role::Agency && h.agency.as_deref() != session.agency.as_deref() =>
        {
            Err(no(
                RejectCode::Forbidden,
                "not_transferred",
                format!(
                    "hazard {id} is not held by your agency ({})",
                    session.agency.as_deref().unwrap_or("none")
                ),
            ))
        }
        Some(h) if !session.covers(&h.cell_path) && !routed_here(h) => Err(no(
            RejectCode::Forbidden,
            "outside_scope",
            format!(
                "hazard {id} is outside your grid cells (assigned: {})",
                assigned()
            ),
        )),
        // Each role has its own share of the log, so no device fills another role's; and one
        // device fills at most part of its own role's.
        Some(h) if h.role_entries >= MAX_HAZARD_LOG => Err(no(
            RejectCode::Invalid,
            "log_full",
            format!(
                "hazard {id} already has {} entries from {} users, the most one role adds to a \
                 hazard; report a new one",
                h.role_entries, session.role
            ),
        )),
        Some(h) if h.device_entries >= MAX_HAZARD_ENTRIES_PER_DEVICE => Err(no(
            RejectCode::Invalid,
            "log_full",
            format!(
                "hazard {id} already has {} entries from this device, the most one device adds \
                 to a hazard",
                h.device_entries
            ),
        )),
        Some(h) => Ok(h),
    }
}

/// One more entry of the session's role and device in a hazard's log, for the ops after it in
/// the same push.
fn count_entry(hazards: &mut HashMap<HazardId, HazardRef>, id: HazardId) {
    if let Some(h) = hazards.get_mut(&id) {
        h.log_len += 1;
        h.role_entries += 1;
        h.device_entries += 1;
    }
}

type Reply = oneshot::Sender<Result<BatchResult, Arc<StoreError>>>;

/// The group-commit queue in front of the store.
#[derive(Clone, Debug)]
pub struct Ingestor {
    writers: Vec<mpsc::Sender<(IngestBatch, Reply)>>,
    metrics: Arc<Metrics>,
}

impl Ingestor {
    /// Starts `writers` writer tasks on `store` (1 for SQLite, which has one writer anyway),
    /// counting their work in `metrics`.
    pub fn start(
        store: Arc<dyn Store>,
        writers: usize,
        clock: fn() -> i64,
        metrics: Arc<Metrics>,
    ) -> Ingestor {
        let senders = (0..writers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(QUEUE_PER_WRITER);
                tokio::spawn(writer(store.clone(), rx, metrics.clone(), clock));
                tx
            })
            .collect();
        Ingestor {
            writers: senders,
            metrics,
        }
    }

    /// Commits one device's push; resolves after the commit (or its failure).
    pub async fn commit(&self, batch: IngestBatch) -> Result<BatchResult, Arc<StoreError>> {
        let idx = (batch.device.0.as_u128() % self.writers.len() as u128) as usize;
        let (tx, rx) = oneshot::channel();
        let closed = || {
            Arc::new(StoreError::Stopping(patrolsync_i18n::text!(
                "store-stopping"
            )))
        };
        // Counted as waiting from here until its writer takes it (the writer counts it out); a
        // push that never reaches the queue (its request dropped while the queue is full, or
        // the writer gone) is counted out as it leaves.
        let mut waiting = Waiting {
            gauge: &self.metrics.ingest_queue,
            queued: false,
        };
        waiting.gauge.inc();
        self.writers[idx]
            .send((batch, tx))
            .await
            .map_err(|_| closed())?;
        waiting.queued = true;
        rx.await.map_err(|_| closed())?
    }
}

/// A push counted in `ingest_queue`: counted out on drop unless it reached the queue.
struct Waiting<'a> {
    gauge: &'a Gauge,
    queued: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.queued {
            self.gauge.dec();
        }
    }
}

async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<(IngestBatch, Reply)>,
    metrics: Arc<Metrics>,
    clock: fn() -> i64,
) {
    while let Some(first) = rx.recv().await {
        let mut ops = first.0.ops.len();
        let mut group = vec![first];
        while ops < MAX_OPS_PER_COMMIT {
            match rx.try_recv() {
                Ok(next) => {
                    ops += next.0.ops.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        metrics.ingest_queue.dec_by(batches.len() as i64);
        let started = Instant::now();
        let result = store.ingest(&batches, clock()).await;
        metrics
            .group_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.note_rewrites(store.groups_rewritten());
        tracing::debug!(
            batches = batches.len(),
            ops,
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "group commit"
        );
        match result {
            Ok(results) => {
                metrics.group_commit_pushes.inc_by(batches.len() as u64);
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r.map_err(Arc::new));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batches = batches.len(), "group commit failed; devices will retry");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Whether an edit to `value` applies to the hazard `h` (the fold keeps but does not apply one
/// that turns an information report into a hazard or back, or gives an information report a
/// deadline or handling).
fn edit_applies(h: &HazardRef, value: &hazard::FieldValue) -> bool {
    hazard::applies(information(h), value)
}

/// Whether `h` is an information report (its category is fixed to that kind by its report).
fn information(h: &HazardRef) -> bool {
    h.category
        .parse::<hazard::HazardCategory>()
        .is_ok_and(|c| c.is_information())
}
