//! The outbox: check-ins (and hazard ops) recorded locally first, with their device sequence
//! number and HLC, until the server has answered for them.

use patrolsync_proto::{Hlc, Message, Op, OpBody, OpId, wire};
use sqlx::Row;

use crate::error::{local, read_failed};
use crate::hazard_log;
use crate::{Client, DataKind, ErrorCode, ReadError, RecordError, SyncError};

/// An op the server refused, with its reason.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RejectedOp {
    /// The op's sequence number.
    pub device_seq: u64,
    /// Kind of op (`check_in`).
    pub kind: String,
    /// The record's id.
    pub record_id: String,
    /// Error code name.
    pub code: String,
    /// Machine-readable reason.
    pub reason: String,
    /// The field concerned.
    pub field: String,
    /// The server's explanation (English).
    pub message: String,
    /// The refusal as a code with what the op named (its checkpoint, cell or hazard), for the
    /// app to show in the user's language.
    pub error: ErrorCode,
}

/// What the refused field of an op named: the check-in's checkpoint (or the household a visit
/// named), the report's grid cell (or checkpoint), the hazard an event or edit is about.
fn named_value(payload: &[u8], field: &str) -> String {
    let Ok(op) = wire::Op::decode(payload) else {
        return String::new();
    };
    let uuid = |b: &[u8]| {
        uuid::Uuid::from_slice(b)
            .map(|u| u.to_string())
            .unwrap_or_default()
    };
    match op.body {
        Some(wire::op::Body::CheckIn(c)) if field == "household" => c.household,
        Some(wire::op::Body::CheckIn(c)) => c.checkpoint,
        Some(wire::op::Body::HazardReport(r)) if field == "checkpoint" => r.checkpoint,
        Some(wire::op::Body::HazardReport(r)) => r.grid_cell,
        Some(wire::op::Body::HazardEvent(e)) if field == "merge_into" => uuid(&e.merge_into),
        Some(wire::op::Body::HazardEvent(e)) => uuid(&e.hazard_id),
        Some(wire::op::Body::HazardFieldEdit(e)) => uuid(&e.hazard_id),
        Some(wire::op::Body::Task(t)) if field == "grid_cell" => t.grid_cell,
        Some(wire::op::Body::Task(t)) => uuid(&t.id),
        Some(wire::op::Body::TaskEvent(e)) if field == "user" => e.user,
        Some(wire::op::Body::TaskEvent(e)) => uuid(&e.task_id),
        None => String::new(),
    }
}

impl Client {
    /// Takes the store's write lock, and says whether `made_for` is still the device enrolled
    /// here: after a sign-out (or a sign-out and a new enrollment) a record or photo made for
    /// it belongs to nobody enrolled here, and must not wait in the next volunteer's queue.
    pub(crate) async fn write_as(
        &self,
        made_for: &str,
    ) -> Result<(sqlx::Transaction<'static, sqlx::Sqlite>, bool), sqlx::Error> {
        let mut tx = self.inner.db.begin_with("BEGIN IMMEDIATE").await?;
        let now: Option<String> = sqlx::query_scalar("SELECT device_id FROM identity WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
        let still = now.as_deref() == Some(made_for);
        Ok((tx, still))
    }

    pub(crate) async fn enqueue(
        &self,
        body: OpBody,
        record_id: Vec<u8>,
        now: i64,
    ) -> Result<u64, RecordError> {
        let seqs = self.enqueue_all(vec![(body, record_id)], now).await?;
        Ok(seqs.first().copied().unwrap_or(0))
    }

    /// Queues `ops` in one local transaction: all of them are durable, or none.
    pub(crate) async fn enqueue_all(
        &self,
        ops: Vec<(OpBody, Vec<u8>)>,
        now: i64,
    ) -> Result<Vec<u64>, RecordError> {
        let storage = |e: sqlx::Error| RecordError::Storage(e.to_string());
        // Read before the transaction: a pool connection must not wait on another while holding
        // the write lock.
        let (made_for, role) = self.identity_and_role().await.map_err(storage)?;
        let Some(device) = made_for else {
            return Err(RecordError::NotEnrolled);
        };
        // Concurrent recorders serialise on the write lock instead of failing to upgrade a read
        // lock.
        let (mut tx, still) = self.write_as(&device).await.map_err(storage)?;
        if !still {
            return Err(RecordError::NotEnrolled);
        }
        let mut seqs = Vec::with_capacity(ops.len());
        let mut kinds = Vec::new();
        for (body, record_id) in ops {
            let kind = body.kind_name();
            kinds.push(match &body {
                OpBody::CheckIn(_) => DataKind::CheckIns,
                OpBody::Task(_) | OpBody::TaskEvent(_) => DataKind::Tasks,
                _ => DataKind::Hazards,
            });
            let seq: i64 = sqlx::query_scalar(
                "UPDATE counters SET value = value + 1 WHERE key = 'last_seq' RETURNING value",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
            let rows = sqlx::query(
                "SELECT key, value FROM counters WHERE key IN ('hlc_wall_ms', 'hlc_logical')",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(storage)?;
            let mut last = Hlc::default();
            for r in rows {
                let v: i64 = r.get(1);
                match r.get::<String, _>(0).as_str() {
                    "hlc_wall_ms" => last.wall_ms = v.max(0) as u64,
                    _ => last.logical = u32::try_from(v).unwrap_or(0),
                }
            }
            let hlc = last.tick(now.max(0) as u64);
            sqlx::query("UPDATE counters SET value = CASE key WHEN 'hlc_wall_ms' THEN ? ELSE ? END WHERE key IN ('hlc_wall_ms', 'hlc_logical')")
            .bind(hlc.wall_ms as i64)
            .bind(i64::from(hlc.logical))
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
            let op = Op {
                op_id: OpId(uuid::Uuid::now_v7()),
                device_seq: seq as u64,
                hlc,
                body,
            };
            if let OpBody::CheckIn(c) = &op.body {
                sqlx::query(
                "INSERT OR IGNORE INTO my_check_ins (id, checkpoint, outcome, device_time_ms, note, state) \
                 VALUES (?, ?, ?, ?, ?, 'pending')",
            )
            .bind(c.id.to_bytes())
            .bind(&c.checkpoint)
            .bind(c.outcome.as_str())
            .bind(c.device_time_ms)
            .bind(&c.note)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
            }
            if let Some(local) = hazard_log::local_op(&op, &role) {
                // Applied optimistically: the device's view folds it at once, and the copy that
                // comes back through pull has the same stamp, so it is not counted twice.
                hazard_log::insert_op(&mut tx, &local, &device)
                    .await
                    .map_err(storage)?;
            }
            sqlx::query("INSERT INTO outbox (device_seq, op_id, kind, record_id, payload, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(seq)
            .bind(op.op_id.to_bytes())
            .bind(kind)
            .bind(record_id)
            .bind(op.to_wire().encode_to_vec())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
            seqs.push(seq as u64);
        }
        tx.commit().await.map_err(storage)?;
        self.data_changed(kinds);
        self.inner.trigger.notify_one();
        Ok(seqs)
    }

    /// Ops the server refused, newest first.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the
    /// network.
    pub async fn rejected(&self) -> Result<Vec<RejectedOp>, ReadError> {
        let rows = sqlx::query(
            "SELECT device_seq, kind, record_id, code, reason, field, message, payload FROM rejected ORDER BY device_seq DESC",
        )
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let (reason, field): (String, String) = (r.get(4), r.get(5));
                let value = named_value(&r.get::<Vec<u8>, _>(7), &field);
                let error = ErrorCode::from_refusal(&reason, &field, &value, None);
                RejectedOp {
                    device_seq: r.get::<i64, _>(0) as u64,
                    kind: r.get(1),
                    record_id: uuid::Uuid::from_slice(&r.get::<Vec<u8>, _>(2))
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    code: r.get(3),
                    reason,
                    field,
                    message: r.get(6),
                    error,
                }
            })
            .collect())
    }
}

/// Records what became of one of the device's own check-ins.
pub(crate) async fn mark_check_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    seq: i64,
    state: &str,
) -> Result<(), SyncError> {
    sqlx::query(
        "UPDATE my_check_ins SET state = ? WHERE id = (SELECT record_id FROM outbox WHERE device_seq = ? AND kind = ?)",
    )
    .bind(state)
    .bind(seq)
    .bind(OpBody::CHECK_IN)
    .execute(&mut **tx)
    .await
    .map_err(local)?;
    Ok(())
}

/// The HLC of an outbox op (the key of its optimistic copy in `hazard_ops`).
pub(crate) async fn outbox_hlc(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    seq: i64,
) -> Result<Hlc, SyncError> {
    let payload: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE device_seq = ?")
            .bind(seq)
            .fetch_optional(&mut **tx)
            .await
            .map_err(local)?;
    Ok(payload
        .and_then(|p| wire::Op::decode(p.as_slice()).ok())
        .and_then(|op| op.hlc)
        .map(Hlc::from)
        .unwrap_or_default())
}
