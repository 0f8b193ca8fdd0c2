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
        // this transaction's snapshot half-way.
        // The same statement reads the device's clock offset as its last Hello measured it,
        // kept with each check-in: the clock-skew flag must not change when the clock drifts.
        // Every op of the push is answered (and leaves the device's outbox), so the depth the
        // device reported at its last Hello goes down by as many: a device that just pushed its
        // whole outbox does not show as holding it until its next Hello.
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "UPDATE devices SET last_push_at = $1, \
             outbox_depth = CASE WHEN outbox_depth > $3 THEN outbox_depth - $3 \
             WHEN outbox_depth IS NULL THEN NULL ELSE 0 END, \
             oldest_pending_age_ms = CASE WHEN outbox_depth > $3 THEN oldest_pending_age_ms \
             WHEN outbox_depth IS NULL THEN NULL ELSE 0 END \
             WHERE id = $2 RETURNING acked_through, clock_offset_ms",
        )
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
        let lo = batch.ops.iter().map(|o| o.device_seq).min().unwrap_or(0);
        let hi = batch.ops.iter().map(|o| o.device_seq).max().unwrap_or(0);
        let mut known: HashMap<u64, OpResult> = HashMap::new();
        let rows = sqlx::query(
            "SELECT device_seq, outcome, code, reason, field, message, op_id, value, bound FROM op_results \
             WHERE device_id = $1 AND device_seq >= $2 AND device_seq <= $3",
        )
        .bind(&device)
        .bind(seq(lo))
        .bind(seq(hi))
        .fetch_all(&mut **tx)
        .await?;
        for r in rows {
            let s = r.try_get::<i64, _>(0)? as u64;
            let outcome = Outcome::parse(&r.try_get::<String, _>(1)?);
            let result = match outcome {
                Outcome::Rejected => OpResult {
                    device_seq: s,
                    outcome,
                    rejection: Some(Refusal {
                        code: RejectCode::parse(
                            &r.try_get::<Option<String>, _>(2)?.unwrap_or_default(),
                        ),
                        reason: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                        field: r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
                        message: r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                        value: r.try_get::<Option<String>, _>(7)?.unwrap_or_default(),
                        limit: r.try_get::<Option<i64>, _>(8)?.map(|b| b.max(0) as u64),
                    }),
                    conflict: None,
                },
                Outcome::Conflict => OpResult {
                    device_seq: s,
                    outcome,
                    rejection: None,
                    conflict: r.try_get::<Option<String>, _>(5)?,
                },
                _ => OpResult {
                    device_seq: s,
                    outcome: Outcome::Duplicate,
                    rejection: None,
                    conflict: None,
                },
            };
            // The same seq with another op id is not a replay: the device reused a sequence
            // number (a restored backup?). Refuse the newcomer instead of calling it a duplicate.
            let stored_op: Vec<u8> = r.try_get(6)?;
            let incoming = batch
                .ops
                .iter()
                .find(|o| o.device_seq == s)
                .map(|o| o.op_id.to_bytes());
            let result = match incoming {
                Some(op) if op != stored_op => OpResult {
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
                },
                _ => result,
            };
            known.insert(s, result);
        }

        let fresh: Vec<&PreparedOp> = batch
            .ops
            .iter()
            .filter(|o| !known.contains_key(&o.device_seq))
            .collect();
        let inserts: Vec<(&PreparedOp, &CheckInRow)> = fresh
            .iter()
            .filter_map(|o| match &o.action {
                OpAction::InsertCheckIn(row) => Some((*o, row.as_ref())),
                OpAction::Hazard(_) | OpAction::Task(_) | OpAction::Reject(_) => None,
            })
            .collect();
        let mut inserted: HashSet<CheckInId> = HashSet::new();
        for chunk in inserts.chunks(CHECK_IN_ROWS_PER_STATEMENT) {
            inserted.extend(
                self.insert_check_ins(tx, &device, batch.user_id, clock_offset, chunk, now_ms)
                    .await?,
            );
        }
        // The stored version of each new check-in: the first with its id (the insert skips
        // later ones), so a push carrying one id twice cannot mark from the copy not stored.
        let mut seen = HashSet::new();
        let taps: Vec<(CheckInId, i64, i64)> = inserts
            .iter()
            .filter(|(_, row)| inserted.contains(&row.check_in.id) && seen.insert(row.check_in.id))
            .map(|(_, row)| {
                (
                    row.check_in.id,
                    row.checkpoint_id,
                    row.check_in.device_time_ms,
                )
            })
            .collect();
        counted.check_ins += taps.len() as i64;
        counted.double_taps += self.mark_double_taps(tx, batch.user_id, &taps).await? as i64;
        let refs: Vec<([u8; 32], &'static str, Vec<u8>, i64)> = inserts
            .iter()
            .filter(|(_, row)| inserted.contains(&row.check_in.id))
            .flat_map(|(_, row)| {
                let c = &row.check_in;
                c.photos
                    .iter()
                    .chain(c.answers.iter().flat_map(|a| a.photos.iter()))
                    .map(move |p| (*p, "check_in", c.id.to_bytes(), row.cell_id))
            })
            .collect();
        self.add_blob_refs(tx, &refs, &device, now_ms).await?;

        let mut results = Vec::with_capacity(batch.ops.len());
        let mut new_results: Vec<(&PreparedOp, OpResult)> = Vec::with_capacity(fresh.len());
        for op in &batch.ops {
            if let Some(r) = known.get(&op.device_seq) {
                results.push(r.clone());
                continue;
            }
            let r = match &op.action {
                OpAction::InsertCheckIn(row) => OpResult {
                    device_seq: op.device_seq,
                    // Same record id from another op (e.g. a reinstalled app resending): one entity.
                    outcome: if inserted.remove(&row.check_in.id) {
                        Outcome::Applied
                    } else {
                        Outcome::Duplicate
                    },
                    rejection: None,
                    conflict: None,
                },
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
            new_results.push((op, r.clone()));
            results.push(r);
        }

        for chunk in new_results.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO op_results (device_id, device_seq, op_id, outcome, code, reason, field, message, value, bound, recorded_at) VALUES {}",
                placeholders(self.backend, chunk.len(), 11)
            );
            let mut q = sqlx::query(&sql);
            for (op, r) in chunk {
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
                    .bind(device.clone())
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
            let mut q = sqlx::query(&sql);
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
        for (_, r) in &new_results {
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

        // Advance acked_through over every contiguous recorded seq (ops may arrive out of order
        // when a device pipelines pushes on several streams).
        let mut acked_through = acked.max(0) as u64;
        if !fresh.is_empty() && lo <= acked_through + 1 {
            let seqs: Vec<i64> = sqlx::query_scalar(
                "SELECT device_seq FROM op_results WHERE device_id = $1 AND device_seq > $2 ORDER BY device_seq LIMIT 100000",
            )
            .bind(&device)
            .bind(seq(acked_through))
            .fetch_all(&mut **tx)
            .await?;
            for s in seqs {
                if s as u64 == acked_through + 1 {
                    acked_through += 1;
                } else {
                    break;
                }
            }
            if acked_through as i64 != acked {
                sqlx::query("UPDATE devices SET acked_through = $1 WHERE id = $2")
                    .bind(seq(acked_through))
                    .bind(&device)
                    .execute(&mut **tx)
                    .await?;
            }
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

    /// Notes which photos a record references (idempotent).
    pub(super) async fn add_blob_refs(
        &self,
        tx: &mut Transaction<'_, Any>,
        refs: &[([u8; 32], &'static str, Vec<u8>, i64)],
        device: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        for chunk in refs.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO blob_refs (sha256, record_kind, record_id, cell_id, device_id, created_at) VALUES {} \
                 ON CONFLICT DO NOTHING",
                placeholders(self.backend, chunk.len(), 6)
            );
            let mut q = sqlx::query(&sql);
            for (sha, kind, record, cell) in chunk {
                q = q
                    .bind(sha.to_vec())
                    .bind(*kind)
                    .bind(record.clone())
                    .bind(*cell)
                    .bind(device.to_owned())
                    .bind(now_ms);
            }
            q.execute(&mut **tx).await?;
        }
        // The photos not held yet join the missing ones, each push's in one order: two writers
        // naming the same new photos wait for each other on PostgreSQL instead of deadlocking.
        let mut shas: Vec<[u8; 32]> = refs.iter().map(|r| r.0).collect();
        shas.sort_unstable();
        shas.dedup();
        for chunk in shas.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO missing_blobs (sha256) SELECT DISTINCT r.sha256 FROM blob_refs r \
                 WHERE r.sha256 IN ({}) AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = r.sha256) \
                 ORDER BY r.sha256 ON CONFLICT DO NOTHING",
                (1..=chunk.len())
                    .map(|i| format!("${i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut q = sqlx::query(&sql);
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
        user_id: i64,
        new: &[(CheckInId, i64, i64)],
    ) -> Result<usize, StoreError> {
        // Find each new check-in's first earlier tap with one indexed lookup per row (the
        // index leads with user, checkpoint, device time), then mark only the taps found.
        // An `UPDATE … WHERE id IN (…)` let PostgreSQL, before it had statistics for the
        // table, estimate most rows as matching and scan the whole table per push (the
        // benchmark's bimodal PostgreSQL ingest). Parameters are all anonymous on SQLite, so
        // they are bound in text order: the rows, then user and window.
        let mut taps: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for chunk in new.chunks(300) {
            let n = chunk.len() * 3;
            let sql = format!(
                "WITH n(id, cp, t) AS (VALUES {rows}) \
                 SELECT n.id, (SELECT d.id FROM check_ins d \
                 WHERE d.user_id = {user} AND d.checkpoint_id = n.cp \
                 AND d.device_time_ms >= n.t - {window} AND d.device_time_ms <= n.t AND d.id <> n.id \
                 AND (d.device_time_ms < n.t OR d.id < n.id) \
                 ORDER BY d.device_time_ms, d.id LIMIT 1) FROM n",
                rows = placeholders(self.backend, chunk.len(), 3),
                user = list(self.backend, 1, n + 1),
                window = list(self.backend, 1, n + 2),
            );
            let mut q = sqlx::query(&sql);
            for (id, checkpoint, time) in chunk {
                q = q.bind(id.to_bytes()).bind(*checkpoint).bind(*time);
            }
            q = q.bind(user_id).bind(self.dedup.double_tap_ms);
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

    async fn insert_check_ins(
        &self,
        tx: &mut Transaction<'_, Any>,
        device: &str,
        user_id: i64,
        clock_offset_ms: Option<i64>,
        rows: &[(&PreparedOp, &CheckInRow)],
        now_ms: i64,
    ) -> Result<Vec<CheckInId>, StoreError> {
        const COLS: usize = 27;
        let sql = format!(
            "INSERT INTO check_ins (id, device_id, device_seq, user_id, checkpoint_id, cell_id, kind, method, \
             tag_uid, device_time_ms, monotonic_ms, received_at_ms, latitude, longitude, accuracy_m, \
             fix_time_ms, mock, outcome, template_id, template_version, answers, photos, note, \
             hlc_wall_ms, hlc_logical, clock_offset_ms, household_id) VALUES {} \
             ON CONFLICT (id) DO NOTHING RETURNING id",
            placeholders(self.backend, rows.len(), COLS)
        );
        let mut q = sqlx::query(&sql).persistent(self.keeps_nullable_floats_prepared());
        for (op, row) in rows {
            let c = &row.check_in;
            let fix = c.fix.as_ref();
            q = q
                .bind(c.id.to_bytes())
                .bind(device.to_owned())
                .bind(seq(op.device_seq))
                .bind(user_id)
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
                .bind(clock_offset_ms)
                .bind(row.household_id);
        }
        let ids: Vec<Vec<u8>> = q
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        Ok(ids
            .iter()
            .filter_map(|b| CheckInId::from_slice(b))
            .collect())
    }
}

#[async_trait]
impl IngestStore for SqlStore {
    async fn ingest(
        &self,
        batches: &[IngestBatch],
        now_ms: i64,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(batches.len());
        let mut changes = Vec::new();
        let mut counted = Counted::default();
        for batch in batches {
            // One device's bad batch must not fail the devices sharing its group commit.
            sqlx::query("SAVEPOINT batch").execute(&mut *tx).await?;
            let before = changes.len();
            let counted_before = counted;
            match self
                .ingest_batch(&mut tx, batch, now_ms, &mut changes, &mut counted)
                .await
            {
                Ok(mut result) => {
                    sqlx::query("RELEASE SAVEPOINT batch")
                        .execute(&mut *tx)
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
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("RELEASE SAVEPOINT batch")
                        .execute(&mut *tx)
                        .await?;
                    changes.truncate(before);
                    counted = counted_before;
                    out.push(Err(e));
                }
            }
        }
        let cursor = self.append_changes(&mut tx, &changes, now_ms).await?;
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
