//! Hazards: their logs (hash-chained, folded into the current state) and escalation.

use super::*;
use patrolsync_i18n::text;

/// Open hazards past their deadline (`$1` is now): what escalation looks at. A hazard whose
/// fix awaits verification (`rectified`) is not among them.
const OVERDUE: &str = "deadline_ms IS NOT NULL AND deadline_ms < $1 \
     AND status IN ('reported', 'rectifying', 'transferred', 'agency_handling')";

impl SqlStore {
    /// Links a new report to the nearest open hazard of the same category within the radius
    /// (or at the same checkpoint) in the same top-level cell.
    async fn link_possible_duplicate(
        &self,
        tx: &mut Transaction<'_, Any>,
        r: &patrolsync_proto::hazard::Report,
        cell_path: &str,
    ) -> Result<(), StoreError> {
        let top = CellPath::from(cell_path).top().to_string();
        let rows = sqlx::query(
            "SELECT h.id, h.latitude, h.longitude, h.checkpoint FROM hazards h JOIN grid_cells c ON c.id = h.cell_id \
             WHERE h.category = $1 AND h.id <> $2 AND h.status NOT IN ('closed', 'merged', 'acknowledged') \
             AND substr(c.path, 1, length($3)) = $3",
        )
        .bind(r.category.as_str())
        .bind(r.id.to_bytes())
        .bind(top)
        .fetch_all(&mut **tx)
        .await?;
        let mine = r.position.as_ref().map(|p| (p.latitude, p.longitude));
        let mut best: Option<(f64, Vec<u8>)> = None;
        for row in rows {
            let (lat, lon): (Option<f64>, Option<f64>) = (row.try_get(1)?, row.try_get(2)?);
            let checkpoint: Option<String> = row.try_get(3)?;
            let distance = match (mine, lat.zip(lon)) {
                (Some(a), Some(b)) => Some(patrolsync_proto::geo::distance_m(a, b)),
                _ if !r.checkpoint.is_empty()
                    && checkpoint.as_deref() == Some(r.checkpoint.as_str()) =>
                {
                    Some(0.0)
                }
                _ => None,
            };
            if let Some(d) = distance.filter(|d| *d <= self.dedup.hazard_radius_m)
                && best.as_ref().is_none_or(|(b, _)| d < *b)
            {
                best = Some((d, row.try_get(0)?));
            }
        }
        if let Some((_, other)) = best {
            sqlx::query("UPDATE hazards SET possible_duplicate_of = $1 WHERE id = $2")
                .bind(other)
                .bind(r.id.to_bytes())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Appends one hazard op to its hazard's hash-chained log, refolds the hazard, and queues
    /// the change for pull. Returns the op's outcome (conflict when its transition did not
    /// apply in the fold).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn apply_hazard(
        &self,
        tx: &mut Transaction<'_, Any>,
        device: &str,
        user_id: i64,
        op: &PreparedOp,
        h: &HazardRow,
        now_ms: i64,
        changes: &mut Vec<PendingChange>,
    ) -> Result<(Outcome, Option<String>), StoreError> {
        let hazard = h.op.hazard();
        let kind = h.op.kind_name();
        let entry = h.entry_id.as_bytes().to_vec();
        let seen: Option<i64> =
            sqlx::query_scalar("SELECT position FROM hazard_log WHERE kind = $1 AND entry_id = $2")
                .bind(kind)
                .bind(entry.clone())
                .fetch_optional(&mut **tx)
                .await?;
        if seen.is_some() {
            // The same report or event carried by another op: one entity.
            return Ok((Outcome::Duplicate, None));
        }
        if let HazardOp::Report(r) = &h.op {
            sqlx::query(
                "INSERT INTO hazards (id, cell_id, device_id, user_id, category, severity, status, \
                 reported_at_ms, received_at_ms, description, handling, deadline_ms, latitude, longitude, checkpoint) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'reported', $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .persistent(self.keeps_nullable_floats_prepared())
            .bind(hazard.to_bytes())
            .bind(h.cell_id)
            .bind(device)
            .bind(user_id)
            .bind(r.category.as_str())
            .bind(r.severity.as_str())
            .bind(r.device_time_ms)
            .bind(now_ms)
            .bind(r.description.clone())
            .bind(r.handling.as_str())
            .bind(r.deadline_ms)
            .bind(r.position.as_ref().map(|p| p.latitude))
            .bind(r.position.as_ref().map(|p| p.longitude))
            .bind((!r.checkpoint.is_empty()).then(|| r.checkpoint.clone()))
            .execute(&mut **tx)
            .await?;
            self.link_possible_duplicate(tx, r, &h.cell_path).await?;
        }
        // Claiming the next position also locks the hazard's row against concurrent appends.
        let claimed = sqlx::query(
            "UPDATE hazards SET log_len = log_len + 1 WHERE id = $1 \
             RETURNING log_len, chain_head, agency, routed_to",
        )
        .bind(hazard.to_bytes())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(claimed) = claimed else {
            return Err(StoreError::NotFound(text!(
                "store-no-hazard",
                hazard = hazard
            )));
        };
        let position = claimed.try_get::<i64, _>(0)? as u64;
        // The agency holding it before this entry (read under the row lock just taken).
        let held_by: Option<String> = claimed.try_get(2)?;
        let routed_to: Option<String> = claimed.try_get(3)?;
        let prev: [u8; 32] = claimed
            .try_get::<Option<Vec<u8>>, _>(1)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .unwrap_or([0; 32]);
        let device_id: DeviceId = device
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("device id {device:?}")))?;
        let stamp = Stamp {
            hlc: op.hlc,
            device: device_id,
        };
        let payload = h.op.encode();
        let hash = chain_hash(&prev, position, kind, stamp, h.role, &payload);
        sqlx::query(
            "INSERT INTO hazard_log (hazard_id, position, kind, entry_id, device_id, user_id, role, hlc_wall_ms, \
             hlc_logical, payload, received_at_ms, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(hazard.to_bytes())
        .bind(seq(position))
        .bind(kind)
        .bind(entry)
        .bind(device)
        .bind(user_id)
        .bind(h.role.as_str())
        .bind(seq(op.hlc.wall_ms))
        .bind(i64::from(op.hlc.logical))
        .bind(payload.clone())
        .bind(now_ms)
        .bind(hash.to_vec())
        .execute(&mut **tx)
        .await?;

        let photos: &[[u8; 32]] = match &h.op {
            HazardOp::Report(r) => &r.photos,
            HazardOp::Event(e, _) => &e.photos,
            HazardOp::Edit(_) => &[],
        };
        let refs: Vec<_> = photos
            .iter()
            .map(|p| super::ingest::BlobRef {
                sha256: *p,
                record_kind: "hazard",
                record_id: hazard.to_bytes(),
                cell_id: h.cell_id,
                device,
            })
            .collect();
        self.add_blob_refs(tx, &refs, now_ms).await?;

        let log = self.read_log(tx, hazard).await?;
        let ops: Vec<(Stamp, HazardOp)> = log
            .iter()
            .map(|e| {
                Ok((
                    e.stamp,
                    HazardOp::decode(&e.kind, &e.payload, e.role)
                        .map_err(|i| StoreError::Corrupt(i.to_string()))?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        let state = fold(hazard, &ops);
        sqlx::query(
            "UPDATE hazards SET status = $1, description = $2, severity = $3, category = $4, deadline_ms = $5, \
             handling = $6, duplicate_of = $7, conflicts = $8, updated_at_ms = $9, chain_head = $10, agency = $12 \
             WHERE id = $11",
        )
        .bind(state.status.as_str())
        .bind(state.description.value.clone())
        .bind(state.severity.value.as_str())
        .bind(state.category.value.as_str())
        .bind(state.deadline_ms.value)
        .bind(state.handling.value.as_str())
        .bind(state.duplicate_of.map(HazardId::to_bytes))
        .bind(state.conflicts().count() as i64)
        .bind(now_ms)
        .bind(hash.to_vec())
        .bind(hazard.to_bytes())
        .bind(state.agency.map(|a| a.as_str().to_owned()))
        .execute(&mut **tx)
        .await?;

        let agency = state.agency.map(|a| a.as_str().to_owned());
        changes.push(PendingChange {
            cell_path: h.cell_path.clone(),
            kind: h.op.change_kind(),
            entity_key: format!("hazard:{hazard}"),
            payload,
            device: device.to_owned(),
            role: h.role.as_str().to_owned(),
            hlc: op.hlc,
            supersedes: false,
            scope: None,
            audience: None,
            wake: routed_to.clone(),
        });
        // A report is routed when it arrives, after its own entry (the party's grant carries
        // the log so far).
        if let HazardOp::Report(r) = &h.op {
            self.route_report(tx, r, &h.cell_path, changes).await?;
        }
        // Which agency holds it follows the fold, not the op that happened to arrive: a
        // transfer that loses to an earlier change leaves the agency's scope, one that wins late
        // enters it whole.
        if held_by != agency {
            changes.extend(super::scope::agency_moves(
                hazard,
                &h.cell_path,
                held_by.as_deref(),
                agency.as_deref(),
                routed_to.as_deref(),
                &state,
            ));
        }
        let conflict = match &h.op {
            HazardOp::Event(e, _) => state
                .history
                .iter()
                .find(|x| x.event == e.id)
                .and_then(|x| x.conflict.clone()),
            _ => None,
        };
        Ok(match conflict {
            Some(why) => (Outcome::Conflict, Some(why)),
            None => (Outcome::Applied, None),
        })
    }

    async fn read_log(
        &self,
        tx: &mut Transaction<'_, Any>,
        hazard: HazardId,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, kind, payload, hlc_wall_ms, hlc_logical, device_id, role, hash FROM hazard_log \
             WHERE hazard_id = $1 ORDER BY position",
        )
        .bind(hazard.to_bytes())
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| {
                let device: String = r.try_get(5)?;
                let role: String = r.try_get(6)?;
                let hash: Vec<u8> = r.try_get(7)?;
                Ok(LogEntry {
                    position: r.try_get::<i64, _>(0)? as u64,
                    kind: r.try_get(1)?,
                    payload: r.try_get(2)?,
                    stamp: Stamp {
                        hlc: Hlc {
                            wall_ms: r.try_get::<i64, _>(3)? as u64,
                            logical: r.try_get::<i64, _>(4)? as u32,
                        },
                        device: device
                            .parse()
                            .map_err(|_| StoreError::Corrupt(format!("device id {device:?}")))?,
                    },
                    role: role.parse::<Role>().map_err(StoreError::Corrupt)?,
                    hash: <[u8; 32]>::try_from(hash.as_slice())
                        .map_err(|_| StoreError::Corrupt("hash".into()))?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl HazardStore for SqlStore {
    async fn hazard_refs(
        &self,
        ids: &[HazardId],
        role: Role,
        device: DeviceId,
    ) -> Result<Vec<HazardRef>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        // Anonymous on SQLite, in text order (see `list`): role, device, then the ids.
        let (r, d) = match self.backend {
            Backend::Sqlite => ("?", "?"),
            Backend::Postgres => ("$1", "$2"),
        };
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT h.id, h.cell_id, c.path, h.status, h.agency, h.log_len, \
                 (SELECT COUNT(*) FROM hazard_log l WHERE l.hazard_id = h.id AND l.role = {r}), \
                 (SELECT COUNT(*) FROM hazard_log l WHERE l.hazard_id = h.id AND l.device_id = {d}), \
                 h.category, h.routed_to FROM hazards h JOIN grid_cells c ON c.id = h.cell_id \
                 WHERE h.id IN ({})",
                list(self.backend, chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql)
                .bind(role.as_str())
                .bind(device.to_string());
            for id in chunk {
                q = q.bind(id.to_bytes());
            }
            for r in q.fetch_all(&self.pool).await? {
                let id: Vec<u8> = r.try_get(0)?;
                out.push(HazardRef {
                    id: HazardId::from_slice(&id)
                        .ok_or_else(|| StoreError::Corrupt("hazard id".into()))?,
                    cell_id: r.try_get(1)?,
                    cell_path: r.try_get(2)?,
                    status: r.try_get(3)?,
                    agency: r.try_get(4)?,
                    log_len: r.try_get(5)?,
                    role_entries: r.try_get(6)?,
                    device_entries: r.try_get(7)?,
                    category: r.try_get(8)?,
                    routed_to: r.try_get(9)?,
                });
            }
        }
        Ok(out)
    }

    async fn hazard(&self, id: HazardId) -> Result<Option<HazardSummary>, StoreError> {
        let row = sqlx::query(
            "SELECT c.code, h.status, h.category, h.severity, h.handling, h.description, h.deadline_ms, h.conflicts, \
             h.log_len, h.agency, h.possible_duplicate_of, h.duplicate_of FROM hazards h \
             JOIN grid_cells c ON c.id = h.cell_id WHERE h.id = $1",
        )
        .bind(id.to_bytes())
        .fetch_optional(&self.pool)
        .await?;
        let merged_from: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT id FROM hazards WHERE duplicate_of = $1 ORDER BY id")
                .bind(id.to_bytes())
                .fetch_all(&self.pool)
                .await?;
        let text = |b: Option<Vec<u8>>| {
            b.and_then(|b| HazardId::from_slice(&b))
                .map(|h| h.to_string())
        };
        row.map(|r| {
            Ok(HazardSummary {
                possible_duplicate_of: text(r.try_get(10)?),
                duplicate_of: text(r.try_get(11)?),
                merged_from: merged_from
                    .iter()
                    .filter_map(|b| HazardId::from_slice(b))
                    .map(|h| h.to_string())
                    .collect(),
                id: id.to_string(),
                cell: r.try_get(0)?,
                status: r.try_get(1)?,
                category: r.try_get(2)?,
                severity: r.try_get(3)?,
                handling: r.try_get(4)?,
                description: r.try_get(5)?,
                deadline_ms: r.try_get(6)?,
                conflicts: r.try_get(7)?,
                log_len: r.try_get(8)?,
                agency: r.try_get(9)?,
            })
        })
        .transpose()
    }

    async fn hazard_log(&self, id: HazardId) -> Result<Vec<LogEntry>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let log = self.read_log(&mut tx, id).await?;
        tx.commit().await?;
        Ok(log)
    }

    async fn hazard_counts(&self, now_ms: i64) -> Result<Vec<HazardCount>, StoreError> {
        sqlx::query(
            "SELECT c.path, h.status, COUNT(*), \
             SUM(CASE WHEN h.deadline_ms IS NOT NULL AND h.deadline_ms < $1 \
                 AND h.status NOT IN ('closed', 'merged', 'acknowledged') THEN 1 ELSE 0 END) \
             FROM hazards h JOIN grid_cells c ON c.id = h.cell_id GROUP BY c.path, h.status \
             ORDER BY c.path, h.status",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(HazardCount {
                cell_path: r.try_get(0)?,
                status: r.try_get(1)?,
                count: r.try_get(2)?,
                overdue: r.try_get(3)?,
            })
        })
        .collect()
    }

    async fn escalate_overdue(
        &self,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<Escalated, StoreError> {
        // Most periods nothing is overdue: look before taking the write lock.
        let any: Option<i64> =
            sqlx::query_scalar(&format!("SELECT 1 FROM hazards WHERE {OVERDUE} LIMIT 1"))
                .bind(now_ms)
                .fetch_optional(&self.pool)
                .await?;
        if any.is_none() {
            return Ok(Escalated::default());
        }
        let mut tx = self.begin_write().await?;
        // `deadline_ms` and `status` in OVERDUE are the hazard's (the grid has neither).
        let rows = sqlx::query(&format!(
            "SELECT h.id, h.deadline_ms, gc.path, \
             (SELECT MAX(e.level) FROM hazard_escalations e \
              WHERE e.hazard_id = h.id AND e.deadline_ms = h.deadline_ms) \
             FROM hazards h JOIN grid_cells gc ON gc.id = h.cell_id WHERE {OVERDUE}"
        ))
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = Escalated::default();
        let mut changes = Vec::new();
        for r in &rows {
            let id: Vec<u8> = r.try_get(0)?;
            let deadline: i64 = r.try_get(1)?;
            let path: String = r.try_get(2)?;
            let have = r.try_get::<Option<i64>, _>(3)?.unwrap_or(0).clamp(0, 255) as u32;
            for crate::escalation::Due {
                level,
                to_cell,
                to_path,
            } in
                crate::escalation::due(&CellPath::from(path), deadline, now_ms, interval_ms, have)
            {
                let inserted = sqlx::query(
                    "INSERT INTO hazard_escalations (hazard_id, deadline_ms, level, to_cell, escalated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(id.clone())
                .bind(deadline)
                .bind(i64::from(level))
                .bind(to_cell.as_str())
                .bind(now_ms)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    continue;
                }
                let Some(hazard_id) = HazardId::from_slice(&id) else {
                    continue;
                };
                let record = patrolsync_proto::hazard::EscalationRecord {
                    hazard: hazard_id,
                    level,
                    to_cell: to_cell.clone(),
                    deadline_ms: deadline,
                    escalated_at_ms: now_ms,
                };
                let hazard = hazard_id.to_string();
                changes.push(PendingChange::admin(
                    to_path.to_string(),
                    ChangeKind::HazardEscalation,
                    format!("escalation:{hazard}:{deadline}:{level}"),
                    record.encode(),
                    false,
                ));
                out.paths.push(to_path.to_string());
                out.escalations.push(Escalation {
                    hazard,
                    level,
                    to_cell,
                    deadline_ms: deadline,
                    escalated_at_ms: now_ms,
                });
            }
        }
        out.cursor = self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn remind_due(&self, now_ms: i64) -> Result<Reminded, StoreError> {
        self.send_reminders(now_ms).await
    }
}
