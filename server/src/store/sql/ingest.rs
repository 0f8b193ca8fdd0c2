//! Ingest: a group commit of many devices' pushes, exactly once per (device, device_seq).

use super::*;
use patrolsync_i18n::text;

fn photos_json(photos: &[[u8; 32]]) -> String {
    serde_json::Value::from(photos.iter().map(hex::encode).collect::<Vec<_>>()).to_string()
}

fn answers_json(answers: &[Answer]) -> String {
    serde_json::Value::from(
        answers
            .iter()
            .map(|a| {
                serde_json::json!({
                    "item": a.item_id,
                    "value": a.value.as_str(),
                    "note": a.note,
                    "photos": a.photos.iter().map(hex::encode).collect::<Vec<_>>(),
                })
            })
            .collect::<Vec<_>>(),
    )
    .to_string()
}

fn parse_photos(v: &serde_json::Value) -> Vec<[u8; 32]> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            p.as_str()?
                .parse::<patrolsync_proto::Sha256>()
                .ok()
                .map(|d| d.0)
        })
        .collect()
}

fn parse_answers(text: &str) -> Result<Vec<Answer>, StoreError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("stored answers are not JSON: {e}")))?;
    v.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            Ok(Answer {
                item_id: a["item"].as_str().unwrap_or_default().to_owned(),
                value: a["value"]
                    .as_str()
                    .unwrap_or_default()
                    .parse::<AnswerValue>()
                    .map_err(StoreError::Corrupt)?,
                note: a["note"].as_str().unwrap_or_default().to_owned(),
                photos: parse_photos(&a["photos"]),
            })
        })
        .collect()
}

fn stored_check_in(r: &AnyRow) -> Result<StoredCheckIn, StoreError> {
    let bad = |what: &str| StoreError::Corrupt(format!("stored check-in has an invalid {what}"));
    let id: Vec<u8> = r.try_get("id")?;
    let latitude: Option<f64> = r.try_get("latitude")?;
    let fix = match latitude {
        Some(latitude) => Some(GeoFix {
            latitude,
            longitude: r
                .try_get::<Option<f64>, _>("longitude")?
                .unwrap_or_default(),
            accuracy_m: r
                .try_get::<Option<f64>, _>("accuracy_m")?
                .unwrap_or_default(),
            fix_time_ms: r
                .try_get::<Option<i64>, _>("fix_time_ms")?
                .unwrap_or_default(),
            mock: r.try_get::<Option<i64>, _>("mock")?.unwrap_or_default() != 0,
            datum: patrolsync_proto::geo::Datum::Wgs84,
        }),
        None => None,
    };
    let photos: String = r.try_get("photos")?;
    let check_in = CheckIn {
        id: CheckInId::from_slice(&id).ok_or_else(|| bad("id"))?,
        checkpoint: r.try_get("checkpoint")?,
        kind: r
            .try_get::<String, _>("kind")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        method: r
            .try_get::<String, _>("method")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        tag_uid: r.try_get("tag_uid")?,
        device_time_ms: r.try_get("device_time_ms")?,
        monotonic_ms: r.try_get::<i64, _>("monotonic_ms")? as u64,
        fix,
        outcome: r
            .try_get::<String, _>("outcome")?
            .parse()
            .map_err(StoreError::Corrupt)?,
        template_id: r.try_get("template_id")?,
        template_version: u32::try_from(r.try_get::<i64, _>("template_version")?)
            .map_err(|_| bad("template version"))?,
        answers: parse_answers(&r.try_get::<String, _>("answers")?)?,
        photos: parse_photos(&serde_json::from_str(&photos).map_err(|_| bad("photo list"))?),
        note: r.try_get("note")?,
        household: r.try_get("household")?,
    };
    Ok(StoredCheckIn {
        check_in,
        device: r.try_get("device_id")?,
        device_seq: r.try_get::<i64, _>("device_seq")? as u64,
        user: r.try_get("user_name")?,
        received_at_ms: r.try_get("received_at_ms")?,
        duplicate_of: r
            .try_get::<Option<Vec<u8>>, _>("duplicate_of")?
            .and_then(|b| CheckInId::from_slice(&b)),
    })
}

/// A check-in to insert, with the push it came in.
struct NewCheckIn<'a> {
    device: &'a str,
    user_id: i64,
    /// The device's clock offset as its last Hello measured it, kept with the check-in.
    clock_offset_ms: Option<i64>,
    op: &'a PreparedOp,
    row: &'a CheckInRow,
}

/// Pushes in a layer from which PostgreSQL is told to join them through the indexes (see
/// `ingest_layers`); below it, its own estimates choose index lookups.
const INDEXED_JOINS_FROM: usize = 64;

/// New check-ins one double-tap lookup takes.
const TAP_ROWS_PER_STATEMENT: usize = 300;

/// A new check-in that may follow an earlier tap of its user at its checkpoint.
struct Tap {
    id: CheckInId,
    user_id: i64,
    checkpoint_id: i64,
    device_time_ms: i64,
}

/// A photo a record names, and the device that named it.
pub(super) struct BlobRef<'a> {
    pub sha256: [u8; 32],
    pub record_kind: &'static str,
    pub record_id: Vec<u8>,
    pub cell_id: i64,
    pub device: &'a str,
}

/// Columns of `op_results` that [`recorded_result`] reads.
const RECORDED: &str =
    "device_id, device_seq, outcome, code, reason, field, message, op_id, value, bound";

/// What an op already recorded answers when it is pushed again: its first result (an applied
/// op answers as a duplicate). The same seq under another op id is not a replay: the device
/// reused a sequence number (a restored backup?), and the newcomer is refused instead.
fn recorded_result(r: &AnyRow, ops: &[PreparedOp]) -> Result<OpResult, StoreError> {
    let s = r.try_get::<i64, _>("device_seq")? as u64;
    let outcome = Outcome::parse(&r.try_get::<String, _>("outcome")?);
    let text = |column: &str| -> Result<String, StoreError> {
        Ok(r.try_get::<Option<String>, _>(column)?.unwrap_or_default())
    };
    let stored_op: Vec<u8> = r.try_get("op_id")?;
    let reused = ops
        .iter()
        .find(|o| o.device_seq == s)
        .is_some_and(|o| o.op_id.to_bytes() != stored_op);
    Ok(if reused {
        OpResult {
            device_seq: s,
            outcome: Outcome::Rejected,
            rejection: Some(Refusal {
                code: RejectCode::Invalid,
                reason: "seq_reused".into(),
                field: "device_seq".into(),
                message: format!(
                    "device_seq {s} was already used by another op; this op was not applied"
                ),
                value: s.to_string(),
                limit: None,
            }),
            conflict: None,
        }
    } else {
        match outcome {
            Outcome::Rejected => OpResult {
                device_seq: s,
                outcome,
                rejection: Some(Refusal {
                    code: RejectCode::parse(&text("code")?),
                    reason: text("reason")?,
                    field: text("field")?,
                    message: text("message")?,
                    value: text("value")?,
                    limit: r
                        .try_get::<Option<i64>, _>("bound")?
                        .map(|b| b.max(0) as u64),
                }),
                conflict: None,
            },
            Outcome::Conflict => OpResult {
                device_seq: s,
                outcome,
                rejection: None,
                conflict: r.try_get::<Option<String>, _>("message")?,
            },
            _ => OpResult {
                device_seq: s,
                outcome: Outcome::Duplicate,
                rejection: None,
                conflict: None,
            },
        }
    })
}

/// How a group commit writes each push: in which layer of pushes written together with shared
/// statements (layer 0 first), or `None` for push by push, after the layers.
///
/// A push of check-ins only goes one layer after the latest one holding a push of its device,
/// its user or one of its check-in ids, so pushes of one layer share none of them and cannot
/// see each other's rows (double taps are one user's; replays and acknowledgements one
/// device's), and pushes that do share one are written in the group's order. A push with
/// anything else is written push by push, and so is every later push sharing its device, user
/// or a check-in id: they must follow it. Writing the layers, then the rest in order, answers
/// each push as writing all in order would. A push naming one seq twice (`prepare` sorts a push
/// and the protocol refuses such a one; only a direct caller of the store can send it) fails,
/// and is left to the push-by-push path, where it fails alone.
fn layers(batches: &[IngestBatch]) -> Vec<Option<usize>> {
    /// What a device, user or check-in id was last written in.
    #[derive(Clone, Copy)]
    enum Last {
        Layer(usize),
        PushByPush,
    }
    let mut devices: HashMap<DeviceId, Last> = HashMap::with_capacity(batches.len());
    let mut users: HashMap<i64, Last> = HashMap::with_capacity(batches.len());
    let mut ids: HashMap<CheckInId, Last> = HashMap::new();
    batches
        .iter()
        .map(|b| {
            let record_ids: Vec<CheckInId> = b
                .ops
                .iter()
                .filter_map(|op| match &op.action {
                    OpAction::InsertCheckIn(row) => Some(row.check_in.id),
                    OpAction::Hazard(_) | OpAction::Task(_) | OpAction::Reject(_) => None,
                })
                .collect();
            let check_ins_only = record_ids.len() == b.ops.len()
                && b.ops.windows(2).all(|w| w[0].device_seq < w[1].device_seq);
            let before = [devices.get(&b.device), users.get(&b.user_id)]
                .into_iter()
                .chain(record_ids.iter().map(|id| ids.get(id)))
                .flatten()
                .try_fold(None, |latest: Option<usize>, last| match last {
                    Last::Layer(l) => Some(Some(latest.map_or(*l, |x| x.max(*l)))),
                    Last::PushByPush => None,
                });
            let layer = match before {
                Some(latest) if check_ins_only => Some(latest.map_or(0, |l| l + 1)),
                _ => None,
            };
            let last = layer.map_or(Last::PushByPush, Last::Layer);
            devices.insert(b.device, last);
            users.insert(b.user_id, last);
            ids.extend(record_ids.into_iter().map(|id| (id, last)));
            layer
        })
        .collect()
}

/// A push's range of sequence numbers.
fn seq_range(ops: &[PreparedOp]) -> (u64, u64) {
    let lo = ops.iter().map(|o| o.device_seq).min().unwrap_or(0);
    let hi = ops.iter().map(|o| o.device_seq).max().unwrap_or(0);
    (lo, hi)
}

/// Whether a push moves its device's acknowledgement: it recorded something new (not every op
/// was a replay) and its lowest seq is at most one past `acked`, the device's acknowledgement
/// before it. Whatever else is stored in its range (a hazard queued between its check-ins)
/// does not count as a replay of it.
fn walks(ops: &[PreparedOp], known: &HashMap<u64, OpResult>, acked: u64) -> bool {
    let (lo, _) = seq_range(ops);
    ops.iter().any(|o| !known.contains_key(&o.device_seq)) && lo <= acked + 1
}

/// A push's answer for its check-ins that were not replays: applied for the first op carrying
/// each id the insert stored, a duplicate for any other (the same record from another op, e.g.
/// a reinstalled app resending: one entity).
fn check_in_result(
    op: &PreparedOp,
    row: &CheckInRow,
    inserted: &mut HashSet<CheckInId>,
) -> OpResult {
    OpResult {
        device_seq: op.device_seq,
        outcome: if inserted.remove(&row.check_in.id) {
            Outcome::Applied
        } else {
            Outcome::Duplicate
        },
        rejection: None,
        conflict: None,
    }
}

/// The check-ins of `inserts` the insert stored, each id once: the first op with it (the insert
/// skips later ones, so a copy not stored names no photo and marks no tap).
fn stored<'a, 'b>(
    inserts: &'b [NewCheckIn<'a>],
    inserted: &'b HashSet<CheckInId>,
) -> impl Iterator<Item = &'b NewCheckIn<'a>> {
    let mut seen = HashSet::new();
    inserts
        .iter()
        .filter(move |n| inserted.contains(&n.row.check_in.id) && seen.insert(n.row.check_in.id))
}

/// The stored new check-ins, to look up as taps.
fn taps(inserts: &[NewCheckIn<'_>], inserted: &HashSet<CheckInId>) -> Vec<Tap> {
    stored(inserts, inserted)
        .map(|n| Tap {
            id: n.row.check_in.id,
            user_id: n.user_id,
            checkpoint_id: n.row.checkpoint_id,
            device_time_ms: n.row.check_in.device_time_ms,
        })
        .collect()
}

/// The photos the stored check-ins name, not those a duplicate alone names.
fn check_in_photos<'a>(
    inserts: &[NewCheckIn<'a>],
    inserted: &HashSet<CheckInId>,
) -> Vec<BlobRef<'a>> {
    stored(inserts, inserted)
        .flat_map(|n| {
            let c = &n.row.check_in;
            c.photos
                .iter()
                .chain(c.answers.iter().flat_map(|a| a.photos.iter()))
                .map(move |p| BlobRef {
                    sha256: *p,
                    record_kind: "check_in",
                    record_id: c.id.to_bytes(),
                    cell_id: n.row.cell_id,
                    device: n.device,
                })
        })
        .collect()
}

/// The device row's part of a push: when it last pushed, and its outbox as it last reported
/// it, less the ops this push answers (every op is answered and leaves the outbox, so a device
/// that just pushed its whole outbox does not show as holding it until its next Hello). `n` is
/// the column or parameter holding the push's op count.
fn pushed_sets(n: &str) -> String {
    format!(
        "outbox_depth = CASE WHEN outbox_depth > {n} THEN outbox_depth - {n} \
         WHEN outbox_depth IS NULL THEN NULL ELSE 0 END, \
         oldest_pending_age_ms = CASE WHEN outbox_depth > {n} THEN oldest_pending_age_ms \
         WHEN outbox_depth IS NULL THEN NULL ELSE 0 END"
    )
}

impl SqlStore {
    async fn ingest_batch(
        &self,
        tx: &mut Transaction<'_, Any>,
        batch: &IngestBatch,
        now_ms: i64,
        changes: &mut Vec<PendingChange>,
        counted: &mut Counted,
    ) -> Result<BatchResult, StoreError> {
        let device = batch.device.to_string();
        // Writing first takes SQLite's write lock at once, so no other writer can invalidate
        // this transaction's snapshot half-way. The same statement reads the device's clock
        // offset as its last Hello measured it.
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(&format!(
            "UPDATE devices SET last_push_at = $1, {} WHERE id = $2 \
             RETURNING acked_through, clock_offset_ms",
            pushed_sets("$3")
        ))
        .bind(now_ms)
        .bind(&device)
        .bind(i64::try_from(batch.ops.len()).unwrap_or(i64::MAX))
        .fetch_optional(&mut **tx)
        .await?;
        let Some((acked, clock_offset)) = row else {
            return Err(StoreError::NotFound(text!(
                "store-not-enrolled",
                device = device
            )));
        };
        if batch.ops.is_empty() {
            return Ok(BatchResult {
                acked_through: acked.max(0) as u64,
                results: Vec::new(),
                changed_paths: Vec::new(),
                changed_audiences: Vec::new(),
                cursor: 0,
                fresh: FreshCounts::default(),
            });
        }

        // Replays: ops already recorded keep their original result.
        let (lo, hi) = seq_range(&batch.ops);
        let mut known: HashMap<u64, OpResult> = HashMap::new();
        let rows = sqlx::query(&format!(
            "SELECT {RECORDED} FROM op_results \
             WHERE device_id = $1 AND device_seq >= $2 AND device_seq <= $3"
        ))
        .bind(&device)
        .bind(seq(lo))
        .bind(seq(hi))
        .fetch_all(&mut **tx)
        .await?;
        for r in rows {
            let result = recorded_result(&r, &batch.ops)?;
            known.insert(result.device_seq, result);
        }

        let fresh: Vec<&PreparedOp> = batch
            .ops
            .iter()
            .filter(|o| !known.contains_key(&o.device_seq))
            .collect();
        let inserts: Vec<NewCheckIn<'_>> = fresh
            .iter()
            .filter_map(|o| match &o.action {
                OpAction::InsertCheckIn(row) => Some(NewCheckIn {
                    device: &device,
                    user_id: batch.user_id,
                    clock_offset_ms: clock_offset,
                    op: o,
                    row,
                }),
                OpAction::Hazard(_) | OpAction::Task(_) | OpAction::Reject(_) => None,
            })
            .collect();
        let mut inserted = self.insert_check_ins(tx, &inserts, now_ms).await?;
        let taps = taps(&inserts, &inserted);
        counted.check_ins += taps.len() as i64;
        counted.double_taps += self.mark_double_taps(tx, &taps).await? as i64;
        self.add_blob_refs(tx, &check_in_photos(&inserts, &inserted), now_ms)
            .await?;

        let mut results = Vec::with_capacity(batch.ops.len());
        let mut new_results: Vec<(&str, &PreparedOp, OpResult)> = Vec::with_capacity(fresh.len());
        for op in &batch.ops {
            if let Some(r) = known.get(&op.device_seq) {
                results.push(r.clone());
                continue;
            }
            let r = match &op.action {
                OpAction::InsertCheckIn(row) => check_in_result(op, row, &mut inserted),
                OpAction::Hazard(h) => {
                    let (outcome, conflict) = self
                        .apply_hazard(tx, &device, batch.user_id, op, h, now_ms, changes)
                        .await?;
                    // A report not seen before is a new hazard row.
                    if matches!(h.op, HazardOp::Report(_)) && outcome != Outcome::Duplicate {
                        counted.hazards += 1;
                    }
                    OpResult {
                        device_seq: op.device_seq,
                        outcome,
                        rejection: None,
                        conflict,
                    }
                }
                OpAction::Task(t) => {
                    let (outcome, conflict) = self
                        .apply_task(tx, &device, Some(batch.user_id), op.hlc, t, now_ms, changes)
                        .await?;
                    OpResult {
                        device_seq: op.device_seq,
                        outcome,
                        rejection: None,
                        conflict,
                    }
                }
                OpAction::Reject(rej) => OpResult {
                    device_seq: op.device_seq,
                    outcome: Outcome::Rejected,
                    rejection: Some(rej.refusal.clone()),
                    conflict: None,
                },
            };
            new_results.push((&device, op, r.clone()));
            results.push(r);
        }
        self.insert_results(tx, &new_results, now_ms).await?;

        let rejected: Vec<(&PreparedOp, &Rejection)> = fresh
            .iter()
            .filter_map(|o| match &o.action {
                OpAction::Reject(r) => Some((*o, r)),
                OpAction::InsertCheckIn(_) | OpAction::Hazard(_) | OpAction::Task(_) => None,
            })
            .collect();
        counted.rejected_ops += rejected.len() as i64;
        for chunk in rejected.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO rejections (device_id, device_seq, op_id, code, reason, field, message, value, bound, payload, recorded_at) VALUES {}",
                placeholders(self.backend, chunk.len(), 11)
            );
            let mut q =
                sqlx::query(&sql).persistent(cached(chunk.len(), RESULT_ROWS_PER_STATEMENT));
            for (op, r) in chunk {
                q = q
                    .bind(device.clone())
                    .bind(seq(op.device_seq))
                    .bind(op.op_id.to_bytes())
                    .bind(r.refusal.code.as_str())
                    .bind(r.refusal.reason.clone())
                    .bind(r.refusal.field.clone())
                    .bind(r.refusal.message.clone())
                    .bind(r.refusal.value.clone())
                    .bind(bound(r.refusal.limit))
                    .bind(r.payload.clone())
                    .bind(now_ms);
            }
            q.execute(&mut **tx).await?;
        }

        // Sync health: how many of this device's ops were refused or lost a transition. A
        // conflict is a normal race between editors; only a refusal marks a problem.
        let mut fresh_counts = FreshCounts::default();
        for (_, _, r) in &new_results {
            match (r.outcome, &r.rejection) {
                (Outcome::Applied, _) => fresh_counts.stored += 1,
                (Outcome::Conflict, _) => {
                    fresh_counts.stored += 1;
                    fresh_counts.conflicts += 1;
                }
                (Outcome::Duplicate, _) => {}
                (Outcome::Rejected, rejection) => fresh_counts
                    .rejected
                    .push(rejection.as_ref().map_or(RejectCode::Invalid, |x| x.code)),
            }
        }
        let rejected_now = fresh_counts.rejected.len();
        let conflicts_now = fresh_counts.conflicts as usize;
        if rejected_now + conflicts_now > 0 {
            sqlx::query(
                "UPDATE devices SET rejected_ops = rejected_ops + $1, conflicts = conflicts + $2, \
                 last_problem_at = CASE WHEN $3 > 0 THEN $4 ELSE last_problem_at END WHERE id = $5",
            )
            .bind(rejected_now as i64)
            .bind(conflicts_now as i64)
            .bind(rejected_now as i64)
            .bind(now_ms)
            .bind(&device)
            .execute(&mut **tx)
            .await?;
        }

        let mut acked_through = acked.max(0) as u64;
        if walks(&batch.ops, &known, acked_through) {
            let advanced = self.advance_acked(tx, &[device.as_str()]).await?;
            acked_through = advanced.get(&device).copied().unwrap_or(acked_through);
        }
        Ok(BatchResult {
            acked_through,
            results,
            changed_paths: Vec::new(),
            changed_audiences: Vec::new(),
            cursor: 0,
            fresh: fresh_counts,
        })
    }

    /// Writes pushes of check-ins that [`layers`] picked with one statement per
    /// table for all of them instead of one per push: the device rows, the replay lookup, the
    /// inserts, the double-tap lookup, the results and the acknowledgements. Each push is
    /// answered as [`SqlStore::ingest_batch`] would answer it; a device not enrolled fails its
    /// own push only. Any failed statement fails the call, and the caller writes the group
    /// again push by push.
    async fn ingest_check_ins(
        &self,
        tx: &mut Transaction<'_, Any>,
        batches: &[&IngestBatch],
        now_ms: i64,
        counted: &mut Counted,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError> {
        let devices: Vec<String> = batches.iter().map(|b| b.device.to_string()).collect();
        let index: HashMap<&str, usize> = devices
            .iter()
            .enumerate()
            .map(|(i, d)| (d.as_str(), i))
            .collect();

        // The device rows first (SQLite's write lock at once, as in `ingest_batch`). Listed in
        // id order; PostgreSQL may still lock them in another, and a deadlock with another
        // writer or node fails these statements, so the group is written push by push.
        let mut enrolled: Vec<Option<(i64, Option<i64>)>> = vec![None; batches.len()];
        let mut pushes: Vec<(&str, i64)> = devices
            .iter()
            .zip(batches)
            .map(|(d, b)| (d.as_str(), i64::try_from(b.ops.len()).unwrap_or(i64::MAX)))
            .collect();
        pushes.sort_unstable();
        for chunk in pushes.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH v(dev, n) AS (VALUES {}) UPDATE devices SET last_push_at = {}, {} \
                 FROM v WHERE devices.id = v.dev RETURNING id, acked_through, clock_offset_ms",
                placeholders(self.backend, chunk.len(), 2),
                list(self.backend, 1, chunk.len() * 2 + 1),
                pushed_sets("v.n"),
            );
            let mut q =
                sqlx::query(&sql).persistent(cached(chunk.len(), RESULT_ROWS_PER_STATEMENT));
            for (device, n) in chunk {
                q = q.bind(*device).bind(*n);
            }
            for r in q.bind(now_ms).fetch_all(&mut **tx).await? {
                let id: String = r.try_get(0)?;
                if let Some(&i) = index.get(id.as_str()) {
                    enrolled[i] = Some((r.try_get(1)?, r.try_get(2)?));
                }
            }
        }

        // Replays, for every push at once.
        let mut known: Vec<HashMap<u64, OpResult>> = vec![HashMap::new(); batches.len()];
        let ranges: Vec<(&str, u64, u64)> = batches
            .iter()
            .enumerate()
            .filter(|(i, b)| enrolled[*i].is_some() && !b.ops.is_empty())
            .map(|(i, b)| {
                let (lo, hi) = seq_range(&b.ops);
                (devices[i].as_str(), lo, hi)
            })
            .collect();
        for chunk in ranges.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH r(dev, lo, hi) AS (VALUES {}) SELECT {RECORDED} FROM op_results JOIN r \
                 ON device_id = r.dev AND device_seq >= r.lo AND device_seq <= r.hi",
                placeholders(self.backend, chunk.len(), 3),
            );
            let mut q =
                sqlx::query(&sql).persistent(cached(chunk.len(), RESULT_ROWS_PER_STATEMENT));
            for (device, lo, hi) in chunk {
                q = q.bind(*device).bind(seq(*lo)).bind(seq(*hi));
            }
            for r in q.fetch_all(&mut **tx).await? {
                let id: String = r.try_get("device_id")?;
                let Some(&i) = index.get(id.as_str()) else {
                    continue;
                };
                let result = recorded_result(&r, &batches[i].ops)?;
                known[i].insert(result.device_seq, result);
            }
        }

        let mut inserts: Vec<NewCheckIn<'_>> = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let Some((_, clock_offset)) = enrolled[i] else {
                continue;
            };
            inserts.extend(b.ops.iter().filter_map(|o| match &o.action {
                OpAction::InsertCheckIn(row) if !known[i].contains_key(&o.device_seq) => {
                    Some(NewCheckIn {
                        device: &devices[i],
                        user_id: b.user_id,
                        clock_offset_ms: clock_offset,
                        op: o,
                        row,
                    })
                }
                _ => None,
            }));
        }
        let mut inserted = self.insert_check_ins(tx, &inserts, now_ms).await?;
        let taps = taps(&inserts, &inserted);
        counted.check_ins += taps.len() as i64;
        counted.double_taps += self.mark_double_taps(tx, &taps).await? as i64;
        self.add_blob_refs(tx, &check_in_photos(&inserts, &inserted), now_ms)
            .await?;

        let mut out: Vec<Result<BatchResult, StoreError>> = Vec::with_capacity(batches.len());
        let mut new_results: Vec<(&str, &PreparedOp, OpResult)> = Vec::with_capacity(inserts.len());
        let mut walk: Vec<&str> = Vec::new();
        for (i, b) in batches.iter().enumerate() {
            let Some((acked, _)) = enrolled[i] else {
                out.push(Err(StoreError::NotFound(text!(
                    "store-not-enrolled",
                    device = devices[i].clone()
                ))));
                continue;
            };
            let mut results = Vec::with_capacity(b.ops.len());
            let mut fresh = FreshCounts::default();
            for op in &b.ops {
                let r = match (known[i].get(&op.device_seq), &op.action) {
                    (Some(r), _) => r.clone(),
                    (None, OpAction::InsertCheckIn(row)) => {
                        let r = check_in_result(op, row, &mut inserted);
                        if r.outcome == Outcome::Applied {
                            fresh.stored += 1;
                        }
                        new_results.push((&devices[i], op, r.clone()));
                        r
                    }
                    // Never: `layers` puts in a layer pushes of check-ins only. Failing sends
                    // the group down the push-by-push path, which writes any op.
                    (None, OpAction::Hazard(_) | OpAction::Task(_) | OpAction::Reject(_)) => {
                        return Err(StoreError::Corrupt(
                            "a push written together holds an op that is not a check-in".into(),
                        ));
                    }
                };
                results.push(r);
            }
            let acked = acked.max(0) as u64;
            if walks(&b.ops, &known[i], acked) {
                walk.push(&devices[i]);
            }
            out.push(Ok(BatchResult {
                acked_through: acked,
                results,
                changed_paths: Vec::new(),
                changed_audiences: Vec::new(),
                cursor: 0,
                fresh,
            }));
        }
        self.insert_results(tx, &new_results, now_ms).await?;
        #[cfg(feature = "test-util")]
        self.faults.hit(points::INGEST_CHECK_INS).await?;
        let advanced = self.advance_acked(tx, &walk).await?;
        for (r, device) in out.iter_mut().zip(&devices) {
            if let (Ok(r), Some(a)) = (r, advanced.get(device)) {
                r.acked_through = *a;
            }
        }
        Ok(out)
    }

    /// Writes the pushes [`layers`] put in layers, a layer at a time; the answers of the others
    /// are left `None`.
    async fn ingest_layers(
        &self,
        tx: &mut Transaction<'_, Any>,
        batches: &[IngestBatch],
        layers: &[Option<usize>],
        now_ms: i64,
        counted: &mut Counted,
    ) -> Result<Vec<Option<Result<BatchResult, StoreError>>>, StoreError> {
        let mut out: Vec<Option<Result<BatchResult, StoreError>>> =
            batches.iter().map(|_| None).collect();
        let mut by_layer: Vec<Vec<usize>> = Vec::new();
        for (i, layer) in layers.iter().enumerate() {
            if let Some(l) = *layer {
                if by_layer.len() <= l {
                    by_layer.resize_with(l + 1, Vec::new);
                }
                by_layer[l].push(i);
            }
        }
        // Each shared statement joins a list of a layer's pushes to a table by its key, and
        // wants an index lookup per push. For large lists PostgreSQL's estimates chose to hash
        // the list and scan the table instead: 41 ms to look up 300 pushes' replays among
        // 250,000 results, growing with the table, against 2.6 ms through the index. While a
        // large layer is written, its joins go through the indexes; the defaults are back
        // before anything else this transaction runs.
        let largest = by_layer.iter().map(Vec::len).max().unwrap_or(0);
        let through_indexes = self.backend == Backend::Postgres && largest > INDEXED_JOINS_FROM;
        if through_indexes {
            sqlx::query(
                "SELECT set_config('enable_hashjoin', 'off', true), \
                 set_config('enable_mergejoin', 'off', true), \
                 set_config('enable_seqscan', 'off', true)",
            )
            .execute(&mut **tx)
            .await?;
        }
        // Layers follow from one another (a push's is one past an earlier push's), so none is
        // empty.
        for at in by_layer {
            let picked: Vec<&IngestBatch> = at.iter().map(|&i| &batches[i]).collect();
            let written = self.ingest_check_ins(tx, &picked, now_ms, counted).await?;
            for (i, r) in at.into_iter().zip(written) {
                out[i] = Some(r);
            }
        }
        if through_indexes {
            sqlx::query(
                "SELECT set_config(name, reset_val, true) FROM pg_settings \
                 WHERE name IN ('enable_hashjoin', 'enable_mergejoin', 'enable_seqscan')",
            )
            .execute(&mut **tx)
            .await?;
        }
        Ok(out)
    }

    /// Writes `batches` one after another, each in a savepoint: one device's bad push fails
    /// alone instead of failing the pushes sharing its group commit. The changes they make go
    /// to `changes`, for the log.
    async fn ingest_one_by_one(
        &self,
        tx: &mut Transaction<'_, Any>,
        batches: &[&IngestBatch],
        now_ms: i64,
        changes: &mut Vec<PendingChange>,
        counted: &mut Counted,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(batches.len());
        for batch in batches {
            sqlx::query("SAVEPOINT batch").execute(&mut **tx).await?;
            let before = changes.len();
            let counted_before = *counted;
            match self.ingest_batch(tx, batch, now_ms, changes, counted).await {
                Ok(mut result) => {
                    sqlx::query("RELEASE SAVEPOINT batch")
                        .execute(&mut **tx)
                        .await?;
                    result.changed_paths = changes[before..]
                        .iter()
                        .filter(|c| c.addressed_to().is_none())
                        .map(|c| c.cell_path.clone())
                        .collect();
                    result.changed_paths.dedup();
                    result.changed_audiences = changes[before..]
                        .iter()
                        .filter_map(|c| c.addressed_to().or(c.wake.as_deref()))
                        .map(str::to_owned)
                        .collect();
                    result.changed_audiences.sort();
                    result.changed_audiences.dedup();
                    out.push(Ok(result));
                }
                Err(e) => {
                    tracing::warn!(device = %batch.device, error = %e, "batch rolled back");
                    sqlx::query("ROLLBACK TO SAVEPOINT batch")
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query("RELEASE SAVEPOINT batch")
                        .execute(&mut **tx)
                        .await?;
                    changes.truncate(before);
                    *counted = counted_before;
                    out.push(Err(e));
                }
            }
        }
        Ok(out)
    }

    /// Records each op's result, so a replay answers the same.
    async fn insert_results(
        &self,
        tx: &mut Transaction<'_, Any>,
        results: &[(&str, &PreparedOp, OpResult)],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        for chunk in results.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO op_results (device_id, device_seq, op_id, outcome, code, reason, field, message, value, bound, recorded_at) VALUES {}",
                placeholders(self.backend, chunk.len(), 11)
            );
            let mut q =
                sqlx::query(&sql).persistent(cached(chunk.len(), RESULT_ROWS_PER_STATEMENT));
            for (device, op, r) in chunk {
                let (code, reason, field, message, value, bound) = match &r.rejection {
                    Some(x) => (
                        Some(x.code.as_str()),
                        Some(x.reason.clone()),
                        Some(x.field.clone()),
                        Some(x.message.clone()),
                        Some(x.value.clone()),
                        bound(x.limit),
                    ),
                    None => (None, None, None, r.conflict.clone(), None, None),
                };
                q = q
                    .bind(*device)
                    .bind(seq(op.device_seq))
                    .bind(op.op_id.to_bytes())
                    .bind(r.outcome.as_str())
                    .bind(code)
                    .bind(reason)
                    .bind(field)
                    .bind(message)
                    .bind(value)
                    .bind(bound)
                    .bind(now_ms);
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Advances each device's `acked_through` over every contiguous recorded seq after it (ops
    /// may arrive out of order when a device pipelines pushes on several streams), in one
    /// statement per 1,000 devices: the end of the run that starts just after it, where there
    /// is one. Returns the devices it moved, with where to.
    async fn advance_acked(
        &self,
        tx: &mut Transaction<'_, Any>,
        devices: &[&str],
    ) -> Result<HashMap<String, u64>, StoreError> {
        // `next` is a seq's successor, or NULL at the largest seq a device may send (so
        // PostgreSQL does not overflow computing it: a CASE is evaluated in order).
        let next = |s: &str| format!("CASE WHEN {s} < {} THEN {s} + 1 END", i64::MAX);
        let mut advanced = HashMap::new();
        for chunk in devices.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "WITH w(dev) AS (VALUES {}) \
                 UPDATE devices SET acked_through = (SELECT o.device_seq FROM op_results o \
                 WHERE o.device_id = devices.id AND o.device_seq > devices.acked_through \
                 AND NOT EXISTS (SELECT 1 FROM op_results p WHERE p.device_id = o.device_id \
                 AND p.device_seq = {}) ORDER BY o.device_seq LIMIT 1) \
                 FROM w WHERE devices.id = w.dev AND EXISTS (SELECT 1 FROM op_results q \
                 WHERE q.device_id = devices.id AND q.device_seq = {}) \
                 RETURNING id, acked_through",
                placeholders(self.backend, chunk.len(), 1),
                next("o.device_seq"),
                next("devices.acked_through"),
            );
            let mut q =
                sqlx::query(&sql).persistent(cached(chunk.len(), RESULT_ROWS_PER_STATEMENT));
            for device in chunk {
                q = q.bind(*device);
            }
            for r in q.fetch_all(&mut **tx).await? {
                advanced.insert(r.try_get(0)?, r.try_get::<i64, _>(1)?.max(0) as u64);
            }
        }
        Ok(advanced)
    }

    /// Notes which photos a record references (idempotent).
    pub(super) async fn add_blob_refs(
        &self,
        tx: &mut Transaction<'_, Any>,
        refs: &[BlobRef<'_>],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        for chunk in refs.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO blob_refs (sha256, record_kind, record_id, cell_id, device_id, created_at) VALUES {} \
                 ON CONFLICT DO NOTHING",
                placeholders(self.backend, chunk.len(), 6)
            );
            let mut q =
                sqlx::query(&sql).persistent(cached(chunk.len(), RESULT_ROWS_PER_STATEMENT));
            for r in chunk {
                q = q
                    .bind(r.sha256.to_vec())
                    .bind(r.record_kind)
                    .bind(r.record_id.clone())
                    .bind(r.cell_id)
                    .bind(r.device)
                    .bind(now_ms);
            }
            q.execute(&mut **tx).await?;
        }
        // The photos not held yet join the missing ones, each push's in one order: two writers
        // naming the same new photos wait for each other on PostgreSQL instead of deadlocking.
        let mut shas: Vec<[u8; 32]> = refs.iter().map(|r| r.sha256).collect();
        shas.sort_unstable();
        shas.dedup();
        for chunk in shas.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO missing_blobs (sha256) SELECT DISTINCT r.sha256 FROM blob_refs r \
                 WHERE r.sha256 IN ({}) AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = r.sha256) \
                 ORDER BY r.sha256 ON CONFLICT DO NOTHING",
                list(self.backend, chunk.len(), 1)
            );
            let mut q =
                sqlx::query(&sql).persistent(cached(chunk.len(), RESULT_ROWS_PER_STATEMENT));
            for sha in chunk {
                q = q.bind(sha.to_vec());
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Marks each new check-in that follows an earlier one by the same user at the same
    /// checkpoint within the double-tap window as `duplicate_of` the earliest such one. One
    /// statement per chunk, decided only by stored rows, so both backends agree.
    async fn mark_double_taps(
        &self,
        tx: &mut Transaction<'_, Any>,
        new: &[Tap],
    ) -> Result<usize, StoreError> {
        // Find each new check-in's first earlier tap with one indexed lookup per row (the
        // index leads with user, checkpoint, device time), then mark only the taps found.
        // An `UPDATE … WHERE id IN (…)` let PostgreSQL, before it had statistics for the
        // table, estimate most rows as matching and scan the whole table per push (the
        // benchmark's bimodal PostgreSQL ingest). Parameters are all anonymous on SQLite, so
        // they are bound in text order: the rows, then the window.
        let mut taps: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for chunk in new.chunks(TAP_ROWS_PER_STATEMENT) {
            let n = chunk.len() * 4;
            let sql = format!(
                "WITH n(id, u, cp, t) AS (VALUES {rows}) \
                 SELECT n.id, (SELECT d.id FROM check_ins d \
                 WHERE d.user_id = n.u AND d.checkpoint_id = n.cp \
                 AND d.device_time_ms >= n.t - {window} AND d.device_time_ms <= n.t AND d.id <> n.id \
                 AND (d.device_time_ms < n.t OR d.id < n.id) \
                 ORDER BY d.device_time_ms, d.id LIMIT 1) FROM n",
                rows = placeholders(self.backend, chunk.len(), 4),
                window = list(self.backend, 1, n + 1),
            );
            let mut q = sqlx::query(&sql).persistent(cached(chunk.len(), TAP_ROWS_PER_STATEMENT));
            for t in chunk {
                q = q
                    .bind(t.id.to_bytes())
                    .bind(t.user_id)
                    .bind(t.checkpoint_id)
                    .bind(t.device_time_ms);
            }
            q = q.bind(self.dedup.double_tap_ms);
            for row in q.fetch_all(&mut **tx).await? {
                if let Some(first) = row.try_get::<Option<Vec<u8>>, _>(1)? {
                    taps.push((row.try_get(0)?, first));
                }
            }
        }
        let marked = taps.len();
        for (id, first) in taps {
            sqlx::query("UPDATE check_ins SET duplicate_of = $1 WHERE id = $2")
                .bind(first)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(marked)
    }

    /// Inserts `rows` (skipping ids already stored), [`CHECK_IN_ROWS_PER_STATEMENT`] a
    /// statement; returns the ids it stored.
    async fn insert_check_ins(
        &self,
        tx: &mut Transaction<'_, Any>,
        rows: &[NewCheckIn<'_>],
        now_ms: i64,
    ) -> Result<HashSet<CheckInId>, StoreError> {
        const COLS: usize = 27;
        let mut inserted = HashSet::with_capacity(rows.len());
        for chunk in rows.chunks(CHECK_IN_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO check_ins (id, device_id, device_seq, user_id, checkpoint_id, cell_id, kind, method, \
                 tag_uid, device_time_ms, monotonic_ms, received_at_ms, latitude, longitude, accuracy_m, \
                 fix_time_ms, mock, outcome, template_id, template_version, answers, photos, note, \
                 hlc_wall_ms, hlc_logical, clock_offset_ms, household_id) VALUES {} \
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                placeholders(self.backend, chunk.len(), COLS)
            );
            let mut q = sqlx::query(&sql).persistent(
                self.keeps_nullable_floats_prepared()
                    && cached(chunk.len(), CHECK_IN_ROWS_PER_STATEMENT),
            );
            for new in chunk {
                let (op, row) = (new.op, new.row);
                let c = &row.check_in;
                let fix = c.fix.as_ref();
                q = q
                    .bind(c.id.to_bytes())
                    .bind(new.device)
                    .bind(seq(op.device_seq))
                    .bind(new.user_id)
                    .bind(row.checkpoint_id)
                    .bind(row.cell_id)
                    .bind(c.kind.as_str())
                    .bind(c.method.as_str())
                    .bind(c.tag_uid.clone())
                    .bind(c.device_time_ms)
                    .bind(seq(c.monotonic_ms))
                    .bind(now_ms)
                    .bind(fix.map(|f| f.latitude))
                    .bind(fix.map(|f| f.longitude))
                    .bind(fix.map(|f| f.accuracy_m))
                    .bind(fix.map(|f| f.fix_time_ms))
                    .bind(fix.map(|f| f.mock))
                    .bind(c.outcome.as_str())
                    .bind(c.template_id.clone())
                    .bind(i64::from(c.template_version))
                    .bind(answers_json(&c.answers))
                    .bind(photos_json(&c.photos))
                    .bind(c.note.clone())
                    .bind(seq(op.hlc.wall_ms))
                    .bind(i64::from(op.hlc.logical))
                    .bind(new.clock_offset_ms)
                    .bind(row.household_id);
            }
            for r in q.fetch_all(&mut **tx).await? {
                if let Some(id) = CheckInId::from_slice(&r.try_get::<Vec<u8>, _>(0)?) {
                    inserted.insert(id);
                }
            }
        }
        Ok(inserted)
    }

    /// Ends a group commit: the change log, the kept counts (the last statement), `COMMIT`;
    /// then each push's answer gets the log's position.
    async fn commit_group(
        &self,
        mut tx: Transaction<'_, Any>,
        batches: &[IngestBatch],
        mut out: Vec<Result<BatchResult, StoreError>>,
        changes: &[PendingChange],
        counted: Counted,
        now_ms: i64,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError> {
        let cursor = self.append_changes(&mut tx, changes, now_ms).await?;
        #[cfg(feature = "test-util")]
        self.faults.hit(points::INGEST_BEFORE_COMMIT).await?;
        // The shard follows the group's first device, so PostgreSQL's writers (each serving
        // its own devices) land on different rows; the row is held only while this commits.
        let shard = batches.first().map_or(0, |b| b.device.0.as_u128() as u64);
        self.add_counts(&mut tx, shard, &counted).await?;
        tx.commit().await?;
        #[cfg(feature = "test-util")]
        self.faults.hit(points::INGEST_AFTER_COMMIT).await?;
        for r in out.iter_mut().flatten() {
            r.cursor = cursor;
        }
        Ok(out)
    }
}

#[async_trait]
impl IngestStore for SqlStore {
    async fn ingest(
        &self,
        batches: &[IngestBatch],
        now_ms: i64,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError> {
        let layers = layers(batches);
        if layers.iter().any(Option::is_some) {
            let mut tx = self.pool.begin().await?;
            let mut counted = Counted::default();
            match self
                .ingest_layers(&mut tx, batches, &layers, now_ms, &mut counted)
                .await
            {
                Ok(mut out) => {
                    let rest: Vec<&IngestBatch> = batches
                        .iter()
                        .zip(&layers)
                        .filter(|(_, l)| l.is_none())
                        .map(|(b, _)| b)
                        .collect();
                    let mut changes = Vec::new();
                    let others = self
                        .ingest_one_by_one(&mut tx, &rest, now_ms, &mut changes, &mut counted)
                        .await?;
                    // Back in the group's order.
                    let mut others = others.into_iter();
                    let out = out
                        .iter_mut()
                        .map(|written| written.take().or_else(|| others.next()))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            StoreError::Corrupt("a push of the group went unanswered".into())
                        })?;
                    return self
                        .commit_group(tx, batches, out, &changes, counted, now_ms)
                        .await;
                }
                Err(e) => {
                    // Written again push by push below, where a push that fails fails alone
                    // (a PostgreSQL deadlock, or a row a statement refused).
                    tracing::warn!(
                        error = %e,
                        pushes = batches.len(),
                        "pushes written together failed; writing them push by push"
                    );
                    self.groups_rewritten
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tx.rollback().await?;
                }
            }
        }
        let mut tx = self.pool.begin().await?;
        let mut changes = Vec::new();
        let mut counted = Counted::default();
        let all: Vec<&IngestBatch> = batches.iter().collect();
        let out = self
            .ingest_one_by_one(&mut tx, &all, now_ms, &mut changes, &mut counted)
            .await?;
        self.commit_group(tx, batches, out, &changes, counted, now_ms)
            .await
    }

    fn groups_rewritten(&self) -> u64 {
        self.groups_rewritten
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn check_ins(
        &self,
        device: Option<DeviceId>,
        limit: u32,
    ) -> Result<Vec<StoredCheckIn>, StoreError> {
        let sql = format!(
            "SELECT ci.id, ci.device_id, ci.device_seq, u.name AS user_name, cp.code AS checkpoint, ci.kind, \
             ci.method, ci.tag_uid, ci.device_time_ms, ci.monotonic_ms, ci.received_at_ms, ci.latitude, \
             ci.longitude, ci.accuracy_m, ci.fix_time_ms, CAST(CASE WHEN ci.mock THEN 1 ELSE 0 END AS BIGINT) AS mock, \
             ci.outcome, ci.template_id, ci.template_version, ci.answers, ci.photos, ci.note, ci.duplicate_of, \
             COALESCE(hh.code, '') AS household \
             FROM check_ins ci JOIN users u ON u.id = ci.user_id JOIN checkpoints cp ON cp.id = ci.checkpoint_id \
             LEFT JOIN households hh ON hh.id = ci.household_id \
             {} ORDER BY ci.received_at_ms DESC, ci.device_seq DESC LIMIT {}",
            if device.is_some() {
                "WHERE ci.device_id = $1"
            } else {
                ""
            },
            limit
        );
        let mut q = sqlx::query(&sql);
        if let Some(d) = device {
            q = q.bind(d.to_string());
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(stored_check_in)
            .collect()
    }

    async fn rejections(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RejectionEntry>, StoreError> {
        let filter = if device.is_some() {
            "WHERE device_id = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT device_id, device_seq, code, reason, field, message, recorded_at, value, bound FROM rejections \
             {filter} ORDER BY recorded_at DESC, device_seq DESC LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        if let Some(d) = device {
            q = q.bind(d.to_owned());
        }
        q.fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| {
                Ok(RejectionEntry {
                    device: r.try_get(0)?,
                    device_seq: r.try_get::<i64, _>(1)? as u64,
                    code: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    field: r.try_get(4)?,
                    message: r.try_get(5)?,
                    recorded_at_ms: r.try_get(6)?,
                    value: r.try_get::<Option<String>, _>(7)?.unwrap_or_default(),
                    limit: r.try_get::<Option<i64>, _>(8)?.map(|b| b.max(0) as u64),
                })
            })
            .collect()
    }

    async fn conflicts(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConflictEntry>, StoreError> {
        let filter = if device.is_some() {
            "AND device_id = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT device_id, device_seq, message, recorded_at FROM op_results \
             WHERE outcome = 'conflict' {filter} ORDER BY recorded_at DESC, device_seq DESC LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        if let Some(d) = device {
            q = q.bind(d.to_owned());
        }
        q.fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| {
                Ok(ConflictEntry {
                    device: r.try_get(0)?,
                    device_seq: r.try_get::<i64, _>(1)? as u64,
                    message: r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                    recorded_at_ms: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// A rule's bound as the `bound` column keeps it.
fn bound(limit: Option<u64>) -> Option<i64> {
    limit.map(|b| i64::try_from(b).unwrap_or(i64::MAX))
}
