//! The device's copy of hazard and task logs: each op the device makes is applied to its own
//! view at once (optimistically), keyed by its HLC stamp, so the copy that comes back through
//! pull is not counted twice. A task's entries are kept in the same table under the task's id
//! (`hazard_id`), told apart by their kinds (`task`, `task_event`).

use patrolsync_proto::hazard::HazardOp;
use patrolsync_proto::task::TaskOp;
use patrolsync_proto::{HazardId, Hlc, Op, OpBody, Role};
use sqlx::{Sqlite, Transaction};

/// A hazard op as the device's `hazard_ops` table keeps it.
pub(crate) struct LocalOp {
    pub(crate) hazard: HazardId,
    pub(crate) merge_into: Option<HazardId>,
    pub(crate) kind: &'static str,
    pub(crate) role: Role,
    pub(crate) hlc: Hlc,
    pub(crate) payload: Vec<u8>,
}

/// The local copy of a hazard or task op the device just made, if `op` is one.
pub(crate) fn local_op(op: &Op, role: &Role) -> Option<LocalOp> {
    let task = match &op.body {
        OpBody::Task(t) => Some(TaskOp::Create((**t).clone())),
        OpBody::TaskEvent(e) => Some(TaskOp::Event((**e).clone(), *role)),
        _ => None,
    };
    if let Some(t) = task {
        return Some(LocalOp {
            hazard: HazardId(t.task().0),
            merge_into: None,
            kind: t.kind_name(),
            role: *role,
            hlc: op.hlc,
            payload: t.encode(),
        });
    }
    let hop = match &op.body {
        OpBody::HazardReport(r) => HazardOp::Report((**r).clone()),
        OpBody::HazardEvent(e) => HazardOp::Event((**e).clone(), *role),
        OpBody::HazardEdit(e) => HazardOp::Edit(e.clone()),
        _ => return None,
    };
    let merge_into = match &hop {
        HazardOp::Event(e, _) => e.merge_into,
        _ => None,
    };
    Some(LocalOp {
        hazard: hop.hazard(),
        merge_into,
        kind: hop.kind_name(),
        role: *role,
        hlc: op.hlc,
        payload: hop.encode(),
    })
}

pub(crate) async fn insert_op(
    tx: &mut Transaction<'_, Sqlite>,
    op: &LocalOp,
    device: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT OR IGNORE INTO hazard_ops (hlc_wall_ms, hlc_logical, device_id, hazard_id, kind, role, payload, merge_into) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(op.hlc.wall_ms as i64)
    .bind(i64::from(op.hlc.logical))
    .bind(device)
    .bind(op.hazard.to_bytes())
    .bind(op.kind)
    .bind(op.role.as_str())
    .bind(op.payload.clone())
    .bind(op.merge_into.map(HazardId::to_bytes))
    .execute(&mut **tx)
    .await?;
    Ok(())
}
