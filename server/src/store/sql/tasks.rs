//! Tasks: their logs (hash-chained, folded into the row), the server's own entries (the task an
//! admin makes, offers, escalations) and the dispatcher.

use super::*;
use crate::store::tasks::TaskStore;
use patrolsync_i18n::text;
use patrolsync_proto::TaskId;
use patrolsync_proto::task::{
    Task, TaskEvent, TaskEventKind, TaskOp, TaskRefusal, TaskState, TaskStatus, fold as fold_task,
};

/// The most tasks one dispatch run moves (the rest wait for the next run).
const MAX_DISPATCH_PER_RUN: i64 = 200;

/// Columns of a task row, as [`summary`] reads them.
const TASK_COLUMNS: &str = "t.id, c.code, t.kind, t.urgency, t.status, t.household, t.unit, t.checkpoint, \
     t.description, t.assignee, t.offered_to, t.result, t.conflicts, t.created_at_ms, t.accepted_at_ms, \
     t.arrived_at_ms, t.completed_at_ms, t.escalated_at_ms";

fn summary(r: &AnyRow) -> Result<TaskSummary, StoreError> {
    let id: Vec<u8> = r.try_get(0)?;
    Ok(TaskSummary {
        id: TaskId::from_slice(&id)
            .ok_or_else(|| StoreError::Corrupt("task id".into()))?
            .to_string(),
        cell: r.try_get(1)?,
        kind: r.try_get(2)?,
        urgency: r.try_get(3)?,
        status: r.try_get(4)?,
        household: r.try_get(5)?,
        unit: r.try_get(6)?,
        checkpoint: r.try_get(7)?,
        description: r.try_get(8)?,
        assignee: r.try_get(9)?,
        offered_to: r.try_get(10)?,
        result: r.try_get(11)?,
        conflicts: r.try_get(12)?,
        created_at_ms: r.try_get(13)?,
        accepted_at_ms: r.try_get(14)?,
        arrived_at_ms: r.try_get(15)?,
        completed_at_ms: r.try_get(16)?,
        escalated_at_ms: r.try_get(17)?,
    })
}

/// One stored entry of a task's log.
struct StoredEntry {
    position: u64,
    kind: String,
    payload: Vec<u8>,
    stamp: Stamp,
    role: Role,
    device: String,
    received_at_ms: i64,
    hash: [u8; 32],
}

impl SqlStore {
    async fn read_task_log(
        &self,
        tx: &mut Transaction<'_, Any>,
        task: TaskId,
    ) -> Result<Vec<StoredEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, kind, payload, hlc_wall_ms, hlc_logical, device_id, role, hash, received_at_ms \
             FROM task_log WHERE task_id = $1 ORDER BY position",
        )
        .bind(task.to_bytes())
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| {
                let device: String = r.try_get(5)?;
                let hash: Vec<u8> = r.try_get(7)?;
                Ok(StoredEntry {
                    position: r.try_get::<i64, _>(0)?.max(0) as u64,
                    kind: r.try_get(1)?,
                    payload: r.try_get(2)?,
                    stamp: Stamp {
                        hlc: Hlc {
                            wall_ms: r.try_get::<i64, _>(3)?.max(0) as u64,
                            logical: r.try_get::<i64, _>(4)?.clamp(0, i64::from(u32::MAX)) as u32,
                        },
                        device: if device.is_empty() {
                            DeviceId(uuid::Uuid::nil())
                        } else {
                            device
                                .parse()
                                .map_err(|_| StoreError::Corrupt(format!("device id {device:?}")))?
                        },
                    },
                    role: r
                        .try_get::<String, _>(6)?
                        .parse::<Role>()
                        .map_err(StoreError::Corrupt)?,
                    device,
                    received_at_ms: r.try_get(8)?,
                    hash: <[u8; 32]>::try_from(hash.as_slice())
                        .map_err(|_| StoreError::Corrupt("task log hash".into()))?,
                })
            })
            .collect()
    }

    async fn task_state(
        &self,
        tx: &mut Transaction<'_, Any>,
        task: TaskId,
    ) -> Result<(TaskState, Vec<StoredEntry>), StoreError> {
        let log = self.read_task_log(tx, task).await?;
        let ops: Vec<(Stamp, TaskOp)> = log
            .iter()
            .map(|e| {
                Ok((
                    e.stamp,
                    TaskOp::decode(&e.kind, &e.payload, e.role)
                        .map_err(|i| StoreError::Corrupt(i.to_string()))?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((fold_task(task, &ops), log))
    }

    /// Appends one entry to its task's hash-chained log (a device's op, or the server's own
    /// entry with an empty `device`), refolds the task into its row, and queues the change for
    /// the devices of the task's cell. Returns the outcome (conflict when the step did not
    /// apply in the fold).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply_task(
        &self,
        tx: &mut Transaction<'_, Any>,
        device: &str,
        user_id: Option<i64>,
        hlc: Hlc,
        row: &TaskRow,
        now_ms: i64,
        changes: &mut Vec<PendingChange>,
    ) -> Result<(Outcome, Option<String>), StoreError> {
        let task = row.op.task();
        let kind = row.op.kind_name();
        let entry = match &row.op {
            TaskOp::Create(t) => t.id.0,
            TaskOp::Event(e, _) => e.id.0,
        };
        let seen: Option<i64> =
            sqlx::query_scalar("SELECT position FROM task_log WHERE kind = $1 AND entry_id = $2")
                .bind(kind)
                .bind(entry.as_bytes().to_vec())
                .fetch_optional(&mut **tx)
                .await?;
        if seen.is_some() {
            return Ok((Outcome::Duplicate, None));
        }
        if let TaskOp::Create(t) = &row.op {
            // A task with no position of its own is where its checkpoint is (the dispatcher
            // sends the nearest patroller to it), whoever made it.
            let at = match (&t.position, t.checkpoint.as_str()) {
                (Some(p), _) => Some((p.latitude, p.longitude)),
                (None, "") => None,
                (None, code) => {
                    let r =
                        sqlx::query("SELECT latitude, longitude FROM checkpoints WHERE code = $1")
                            .bind(code)
                            .fetch_optional(&mut **tx)
                            .await?;
                    match r {
                        Some(r) => r
                            .try_get::<Option<f64>, _>(0)?
                            .zip(r.try_get::<Option<f64>, _>(1)?),
                        None => None,
                    }
                }
            };
            let inserted = sqlx::query(
                "INSERT INTO tasks (id, cell_id, kind, urgency, status, household, unit, checkpoint, latitude, \
                 longitude, description, created_at_ms, updated_at_ms) \
                 VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT DO NOTHING",
            )
            .persistent(self.keeps_nullable_floats_prepared())
            .bind(t.id.to_bytes())
            .bind(row.cell_id)
            .bind(t.kind.as_str())
            .bind(t.urgency.as_str())
            .bind(Some(t.household.clone()).filter(|h| !h.is_empty()))
            .bind(Some(t.unit.clone()).filter(|u| !u.is_empty()))
            .bind(Some(t.checkpoint.clone()).filter(|c| !c.is_empty()))
            .bind(at.map(|p| p.0))
            .bind(at.map(|p| p.1))
            .bind(t.description.clone())
            .bind(now_ms)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                // The same id made twice (by two makers): the first stands.
                return Ok((Outcome::Duplicate, None));
            }
        }
        // Claiming the next position also locks the task's row against concurrent appends.
        let claimed = sqlx::query(
            "UPDATE tasks SET log_len = log_len + 1 WHERE id = $1 RETURNING log_len, chain_head",
        )
        .bind(task.to_bytes())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(claimed) = claimed else {
            return Err(StoreError::NotFound(text!("store-no-task", task = task)));
        };
        let position = claimed.try_get::<i64, _>(0)?.max(0) as u64;
        let prev: [u8; 32] = claimed
            .try_get::<Option<Vec<u8>>, _>(1)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .unwrap_or([0; 32]);
        let stamp = Stamp {
            hlc,
            device: device
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("device id {device:?}")))?,
        };
        let payload = row.op.encode();
        let hash = chain_hash(&prev, position, kind, stamp, row.role, &payload);
        sqlx::query(
            "INSERT INTO task_log (task_id, position, kind, entry_id, device_id, user_id, role, hlc_wall_ms, \
             hlc_logical, payload, received_at_ms, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(task.to_bytes())
        .bind(seq(position))
        .bind(kind)
        .bind(entry.as_bytes().to_vec())
        .bind(device)
        .bind(user_id)
        .bind(row.role.as_str())
        .bind(seq(hlc.wall_ms))
        .bind(i64::from(hlc.logical))
        .bind(payload.clone())
        .bind(now_ms)
        .bind(hash.to_vec())
        .execute(&mut **tx)
        .await?;

        let (state, _) = self.task_state(tx, task).await?;
        let reached = |k: TaskEventKind| {
            state
                .history
                .iter()
                .any(|h| h.kind == k && h.conflict.is_none())
        };
        // An offer that applied starts its wait (one that lost a race to an acceptance does not).
        let offered_now = match &row.op {
            TaskOp::Event(e, _) if e.kind == TaskEventKind::Offer => state
                .history
                .iter()
                .any(|h| h.event == e.id && h.conflict.is_none()),
            _ => false,
        };
        sqlx::query(
            "UPDATE tasks SET status = $1, assignee = $2, offered_to = $3, result = $4, hazard_id = $5, \
             check_in_id = $6, conflicts = $7, updated_at_ms = $8, chain_head = $9, \
             offered_at_ms = CASE WHEN $10 THEN $8 ELSE offered_at_ms END, \
             accepted_at_ms = CASE WHEN $2 IS NULL THEN NULL ELSE COALESCE(accepted_at_ms, $8) END, \
             arrived_at_ms = CASE WHEN $11 THEN COALESCE(arrived_at_ms, $8) ELSE NULL END, \
             completed_at_ms = CASE WHEN $1 = 'completed' THEN COALESCE(completed_at_ms, $8) ELSE NULL END, \
             escalated_at_ms = CASE WHEN $12 THEN COALESCE(escalated_at_ms, $8) ELSE NULL END \
             WHERE id = $13",
        )
        .bind(state.status.as_str())
        .bind(state.assignee.clone())
        .bind(state.offered_to.clone())
        .bind(state.result.map(|r| r.as_str().to_owned()))
        .bind(state.hazard.map(HazardId::to_bytes))
        .bind(state.check_in.map(CheckInId::to_bytes))
        .bind(state.conflicts().count() as i64)
        .bind(now_ms)
        .bind(hash.to_vec())
        .bind(offered_now)
        .bind(reached(TaskEventKind::Arrive))
        .bind(reached(TaskEventKind::Escalate))
        .bind(task.to_bytes())
        .execute(&mut **tx)
        .await?;
        changes.push(PendingChange {
            cell_path: row.cell_path.clone(),
            kind: match &row.op {
                TaskOp::Create(_) => ChangeKind::Task,
                TaskOp::Event(..) => ChangeKind::TaskEvent,
            },
            entity_key: format!("task:{task}"),
            payload,
            device: device.to_owned(),
            role: row.role.as_str().to_owned(),
            hlc,
            supersedes: false,
            scope: None,
            audience: None,
            wake: None,
        });
        let conflict = match &row.op {
            TaskOp::Event(e, _) => state
                .history
                .iter()
                .find(|x| x.event == e.id)
                .and_then(|x| x.conflict.clone()),
            TaskOp::Create(_) => None,
        };
        Ok(match conflict {
            Some(why) => (Outcome::Conflict, Some(why)),
            None => (Outcome::Applied, None),
        })
    }

    /// Appends a server entry (the task an admin made, an offer, an escalation) with the admin
    /// role. Its stamp is the task's own: the task's id stands for the device (so no two
    /// tasks' server entries share a stamp on a device, whatever the clock), and its HLC ticks
    /// past every entry of the task's log so far (so the server's steps keep the order it made
    /// them in, on every node and whatever a device's clock said). Returns the outcome.
    async fn server_task_entry(
        &self,
        tx: &mut Transaction<'_, Any>,
        op: TaskOp,
        cell_id: i64,
        cell_path: &str,
        now_ms: i64,
        changes: &mut Vec<PendingChange>,
    ) -> Result<(Outcome, Option<String>), StoreError> {
        let task = op.task();
        let last = sqlx::query(
            "SELECT hlc_wall_ms, hlc_logical FROM task_log WHERE task_id = $1 \
             ORDER BY hlc_wall_ms DESC, hlc_logical DESC LIMIT 1",
        )
        .bind(task.to_bytes())
        .fetch_optional(&mut **tx)
        .await?;
        let last = match last {
            Some(r) => Hlc {
                wall_ms: r.try_get::<i64, _>(0)?.max(0) as u64,
                logical: r.try_get::<i64, _>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
            },
            None => Hlc::default(),
        };
        let hlc = last.tick(now_ms.max(0) as u64);
        let row = TaskRow {
            op,
            role: Role::Admin,
            cell_id,
            cell_path: cell_path.to_owned(),
        };
        self.apply_task(tx, &task.to_string(), None, hlc, &row, now_ms, changes)
            .await
    }

    /// The devices on duty (synced on duty since `since_ms`) of patrollers assigned a cell
    /// covering `path`: each user's name with the position its device sent, if any.
    async fn on_duty_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        path: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, Option<(f64, f64)>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT u.name, d.latitude, d.longitude FROM device_duty d \
             JOIN devices dv ON dv.id = d.device_id JOIN users u ON u.id = dv.user_id \
             WHERE dv.revoked_at IS NULL AND u.role = $1 AND d.updated_at >= $3 \
             AND EXISTS (SELECT 1 FROM assignments a JOIN grid_cells c ON c.id = a.cell_id \
             WHERE a.user_id = u.id AND c.retired_at IS NULL \
             AND substr($2, 1, length(c.path)) = c.path)",
        )
        .bind(Role::Patroller.as_str())
        .bind(path)
        .bind(since_ms)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<String, _>(0)?,
                    r.try_get::<Option<f64>, _>(1)?
                        .zip(r.try_get::<Option<f64>, _>(2)?),
                ))
            })
            .collect()
    }
}

/// The users of `on_duty` (name, position of one of their devices) nearest `at` first, each
/// once at the distance of their nearest device; those with no position (or a task with none)
/// after, by name.
fn nearest_first(on_duty: &[(String, Option<(f64, f64)>)], at: Option<(f64, f64)>) -> Vec<String> {
    let mut best: HashMap<&str, Option<f64>> = HashMap::new();
    for (name, fix) in on_duty {
        let distance = at
            .zip(*fix)
            .map(|(a, b)| patrolsync_proto::geo::distance_m(a, b));
        let entry = best.entry(name.as_str()).or_insert(None);
        if let Some(d) = distance
            && entry.is_none_or(|e| d < e)
        {
            *entry = Some(d);
        }
    }
    let mut out: Vec<(&str, Option<f64>)> = best.into_iter().collect();
    out.sort_by(|a, b| match (a.1, b.1) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.0.cmp(b.0)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.0.cmp(b.0),
    });
    out.into_iter().map(|(n, _)| n.to_owned()).collect()
}

#[async_trait]
impl TaskStore for SqlStore {
    async fn create_task(&self, t: &NewTask, now_ms: i64) -> Result<(TaskId, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        let cell = sqlx::query("SELECT id, path, retired_at FROM grid_cells WHERE code = $1")
            .bind(&t.cell)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(cell) = cell else {
            return Err(StoreError::NotFound(text!("store-no-cell", cell = t.cell)));
        };
        if cell.try_get::<Option<i64>, _>(2)?.is_some() {
            return Err(StoreError::Invalid(text!(
                "store-task-retired",
                cell = t.cell
            )));
        }
        let (cell_id, path): (i64, String) = (cell.try_get(0)?, cell.try_get(1)?);
        // What the task names lies in its cell.
        for (what, code, sql) in [
            (
                "household",
                &t.household,
                "SELECT c.path FROM households h JOIN grid_cells c ON c.id = h.cell_id \
                 WHERE h.code = $1 AND h.removed_at IS NULL",
            ),
            (
                "unit",
                &t.unit,
                "SELECT c.path FROM key_units u JOIN grid_cells c ON c.id = u.cell_id WHERE u.code = $1",
            ),
            (
                "checkpoint",
                &t.checkpoint,
                "SELECT c.path FROM checkpoints p JOIN grid_cells c ON c.id = p.cell_id \
                 WHERE p.code = $1 AND p.retired_at IS NULL",
            ),
        ] {
            let Some(code) = code else { continue };
            let at: Option<String> = sqlx::query_scalar(sql)
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?;
            if !at.is_some_and(|p| patrolsync_proto::grid::covers(&path, &p)) {
                return Err(StoreError::Invalid(text!(
                    "store-task-place",
                    what = what,
                    code = code,
                    cell = t.cell
                )));
            }
        }
        let task = Task {
            id: TaskId(uuid::Uuid::now_v7()),
            grid_cell: t.cell.clone(),
            kind: t.kind,
            urgency: t.urgency,
            household: t.household.clone().unwrap_or_default(),
            unit: t.unit.clone().unwrap_or_default(),
            checkpoint: t.checkpoint.clone().unwrap_or_default(),
            position: t.position.map(|(latitude, longitude)| GeoFix {
                latitude,
                longitude,
                accuracy_m: 0.0,
                fix_time_ms: now_ms,
                mock: false,
                datum: patrolsync_proto::checkin::Datum::Wgs84,
            }),
            description: t.description.clone(),
            device_time_ms: now_ms,
        };
        // Checked as a device's would be, so the log never holds what a replica refuses.
        let task = Task::from_wire(task.to_wire(), now_ms)
            .map_err(|i| StoreError::Invalid(text!("store-task-invalid", detail = i.message)))?;
        let id = task.id;
        let mut changes = Vec::new();
        self.server_task_entry(
            &mut tx,
            TaskOp::Create(task),
            cell_id,
            &path,
            now_ms,
            &mut changes,
        )
        .await?;
        let cursor = self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok((id, cursor))
    }

    async fn task_refs(
        &self,
        ids: &[TaskId],
        device: DeviceId,
    ) -> Result<Vec<TaskRef>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let row = sqlx::query(
                "SELECT t.cell_id, c.path, t.log_len, \
                 (SELECT COUNT(*) FROM task_log l WHERE l.task_id = t.id AND l.device_id = $2) \
                 FROM tasks t JOIN grid_cells c ON c.id = t.cell_id WHERE t.id = $1",
            )
            .bind(id.to_bytes())
            .bind(device.to_string())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = row {
                out.push(TaskRef {
                    id: *id,
                    cell_id: r.try_get(0)?,
                    cell_path: r.try_get(1)?,
                    log_len: r.try_get(2)?,
                    device_entries: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }

    async fn tasks(
        &self,
        open: bool,
        cell: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TaskSummary>, StoreError> {
        let path: Option<String> = match cell {
            Some(code) => Some(
                sqlx::query_scalar("SELECT path FROM grid_cells WHERE code = $1")
                    .bind(code)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| StoreError::NotFound(text!("store-no-cell", cell = code)))?,
            ),
            None => None,
        };
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks t JOIN grid_cells c ON c.id = t.cell_id \
             WHERE ($1 = '' OR substr(c.path, 1, length($1)) = $1) \
             AND (NOT $2 OR t.status NOT IN ('completed', 'cancelled')) \
             ORDER BY t.created_at_ms DESC, t.id LIMIT $3"
        ))
        .bind(path.unwrap_or_default())
        .bind(open)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary).collect()
    }

    async fn report_tasks(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let path: String = match cell {
            Some(code) => sqlx::query_scalar("SELECT path FROM grid_cells WHERE code = $1")
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| StoreError::NotFound(text!("store-no-cell", cell = code)))?,
            None => String::new(),
        };
        let rows = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS}, c.path FROM tasks t JOIN grid_cells c ON c.id = t.cell_id \
             WHERE ($1 = '' OR substr(c.path, 1, length($1)) = $1) \
             AND t.created_at_ms >= $2 AND t.created_at_ms < $3 AND t.created_at_ms <= $4 \
             ORDER BY t.created_at_ms, t.id"
        ))
        .bind(&path)
        .bind(from_ms)
        .bind(to_ms)
        .bind(as_of_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let summary = summary(r)?;
            let id: TaskId = summary
                .id
                .parse()
                .map_err(|_| StoreError::Corrupt("task id".into()))?;
            let log: Vec<StoredEntry> = self
                .read_task_log(&mut tx, id)
                .await?
                .into_iter()
                .filter(|e| e.received_at_ms <= as_of_ms)
                .collect();
            let ops: Vec<(Stamp, TaskOp)> = log
                .iter()
                .map(|e| {
                    Ok((
                        e.stamp,
                        TaskOp::decode(&e.kind, &e.payload, e.role)
                            .map_err(|i| StoreError::Corrupt(i.to_string()))?,
                    ))
                })
                .collect::<Result<_, StoreError>>()?;
            out.push(TaskRecord {
                cell_path: r.try_get(18)?,
                state: fold_task(id, &ops),
                summary,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn task(
        &self,
        id: TaskId,
    ) -> Result<Option<(TaskSummary, Vec<TaskLogEntry>)>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks t JOIN grid_cells c ON c.id = t.cell_id WHERE t.id = $1"
        ))
        .bind(id.to_bytes())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (state, log) = self.task_state(&mut tx, id).await?;
        tx.commit().await?;
        let entries = log
            .iter()
            .map(|e| {
                let op = TaskOp::decode(&e.kind, &e.payload, e.role)
                    .map_err(|i| StoreError::Corrupt(i.to_string()))?;
                let (kind, user, check_in, entry) = match &op {
                    TaskOp::Create(_) => ("task".to_owned(), String::new(), None, None),
                    TaskOp::Event(ev, _) => (
                        ev.kind.as_str().to_owned(),
                        ev.user.clone(),
                        ev.check_in.map(|c| c.to_string()),
                        state.history.iter().find(|h| h.event == ev.id),
                    ),
                };
                let conflict = entry.and_then(|h| h.conflict.clone());
                let (conflict_code, conflict_with) = match entry.and_then(|h| h.refusal.as_ref()) {
                    None => (None, None),
                    Some(TaskRefusal::Taken { by }) => (Some("task_taken"), Some(by.clone())),
                    Some(TaskRefusal::WrongState { status }) => {
                        (Some("wrong_state"), Some(status.as_str().to_owned()))
                    }
                    Some(TaskRefusal::Role { role }) => {
                        (Some("role"), Some(role.as_str().to_owned()))
                    }
                    Some(TaskRefusal::BeforeTask) => (Some("before_task"), None),
                };
                Ok(TaskLogEntry {
                    position: e.position,
                    kind,
                    user,
                    role: e.role.as_str().to_owned(),
                    device: e.device.clone(),
                    conflict,
                    conflict_code: conflict_code.map(str::to_owned),
                    conflict_with,
                    check_in,
                    received_at_ms: e.received_at_ms,
                    hash: hex::encode(e.hash),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Some((summary(&row)?, entries)))
    }

    async fn dispatch(
        &self,
        now_ms: i64,
        offer_timeout_ms: i64,
        duty_ttl_ms: i64,
    ) -> Result<Dispatched, StoreError> {
        let lapsed = now_ms.saturating_sub(offer_timeout_ms);
        let on_duty_since = now_ms.saturating_sub(duty_ttl_ms);
        // A phone that stopped syncing on duty is on duty no more: where it was is not kept.
        let stale: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM device_duty WHERE updated_at < $1 LIMIT 1")
                .bind(on_duty_since)
                .fetch_optional(&self.pool)
                .await?;
        if stale.is_some() {
            let mut tx = self.begin_write().await?;
            sqlx::query("DELETE FROM device_duty WHERE updated_at < $1")
                .bind(on_duty_since)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        // Most periods every task is taken: look before taking the write lock.
        let waiting: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM tasks WHERE status = 'open' \
             OR (status = 'offered' AND offered_at_ms <= $1) LIMIT 1",
        )
        .bind(lapsed)
        .fetch_optional(&self.pool)
        .await?;
        if waiting.is_none() {
            return Ok(Dispatched::default());
        }
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT t.id, t.cell_id, c.path, t.latitude, t.longitude FROM tasks t \
             JOIN grid_cells c ON c.id = t.cell_id WHERE t.status = 'open' \
             OR (t.status = 'offered' AND t.offered_at_ms <= $1) \
             ORDER BY t.created_at_ms, t.id LIMIT $2",
        )
        .persistent(self.keeps_nullable_floats_prepared())
        .bind(lapsed)
        .bind(MAX_DISPATCH_PER_RUN)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Dispatched::default();
        let mut changes = Vec::new();
        let mut on_duty: HashMap<String, Vec<(String, Option<(f64, f64)>)>> = HashMap::new();
        for r in &rows {
            let id: Vec<u8> = r.try_get(0)?;
            let Some(task) = TaskId::from_slice(&id) else {
                continue;
            };
            // Claim the row (another node dispatching now waits here, then finds it moved on)
            // and look again under the lock.
            let claimed: Option<Vec<u8>> = sqlx::query_scalar(
                "UPDATE tasks SET updated_at_ms = updated_at_ms WHERE id = $1 \
                 AND (status = 'open' OR (status = 'offered' AND offered_at_ms <= $2)) RETURNING id",
            )
            .bind(id.clone())
            .bind(lapsed)
            .fetch_optional(&mut *tx)
            .await?;
            if claimed.is_none() {
                continue;
            }
            let cell_id: i64 = r.try_get(1)?;
            let path: String = r.try_get(2)?;
            let at = r
                .try_get::<Option<f64>, _>(3)?
                .zip(r.try_get::<Option<f64>, _>(4)?);
            let (state, _) = self.task_state(&mut tx, task).await?;
            if !matches!(state.status, TaskStatus::Open | TaskStatus::Offered) {
                continue;
            }
            if !on_duty.contains_key(&path) {
                let found = self.on_duty_in(&mut tx, &path, on_duty_since).await?;
                on_duty.insert(path.clone(), found);
            }
            // Each patroller is offered a task once: one who declined or let the offer lapse is
            // passed over from then on.
            let next = nearest_first(&on_duty[&path], at)
                .into_iter()
                .find(|name| !state.offered.contains(name) && !state.declined.contains(name));
            let kind = if next.is_some() {
                TaskEventKind::Offer
            } else {
                TaskEventKind::Escalate
            };
            let event = TaskEvent {
                id: patrolsync_proto::EventId(uuid::Uuid::now_v7()),
                task,
                kind,
                user: next.clone().unwrap_or_default(),
                check_in: None,
                result: None,
                hazard: None,
                note: String::new(),
                position: None,
                device_time_ms: now_ms,
            };
            let (outcome, _) = self
                .server_task_entry(
                    &mut tx,
                    TaskOp::Event(event, Role::Admin),
                    cell_id,
                    &path,
                    now_ms,
                    &mut changes,
                )
                .await?;
            if outcome != Outcome::Applied {
                continue;
            }
            match next {
                Some(user) => out.offers.push((task.to_string(), user)),
                None => out.escalated.push(task.to_string()),
            }
            out.paths.push(path);
        }
        out.paths.sort();
        out.paths.dedup();
        out.cursor = self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok(out)
    }
}
