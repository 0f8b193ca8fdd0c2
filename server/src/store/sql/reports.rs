//! Reports and ledgers: read-only queries over a subtree.

use super::*;
use patrolsync_i18n::text;

fn visit(r: &sqlx::any::AnyRow) -> Result<Visit, StoreError> {
    let latitude: Option<f64> = r.try_get(4)?;
    let fix = match latitude {
        Some(lat) => Some((
            lat,
            r.try_get::<Option<f64>, _>(5)?.unwrap_or_default(),
            r.try_get::<Option<f64>, _>(6)?.unwrap_or_default(),
        )),
        None => None,
    };
    let bits = r.try_get::<i64, _>(7)?;
    let outcome = usize::try_from(bits >> 3).unwrap_or(usize::MAX);
    Ok(Visit {
        checkpoint_id: r.try_get(0)?,
        user_id: r.try_get(1)?,
        device_time_ms: r.try_get(2)?,
        received_at_ms: r.try_get(3)?,
        fix,
        mock: bits & 1 != 0,
        double_tap: bits & 2 != 0,
        clock_offset_ms: r.try_get(8)?,
        in_scope: bits & 4 != 0,
        outcome: OUTCOMES.get(outcome).copied().unwrap_or("unknown"),
    })
}

/// With a subtree: only users who made a check-in under it in the whole range (`$1` the
/// prefix, `$5`..`$6` the range; bind them only then). Without one, everybody.
fn users_filter(subtree: bool) -> &'static str {
    if subtree {
        "AND ci.user_id IN (SELECT c2.user_id FROM grid_cells g2 JOIN check_ins c2 ON c2.cell_id = g2.id \
         WHERE substr(g2.path, 1, length($1)) = $1 AND c2.device_time_ms >= $5 AND c2.device_time_ms < $6)"
    } else {
        ""
    }
}

impl SqlStore {
    /// The path prefix of the subtree under `cell` (every cell when `None`). Compared with
    /// `substr`, not `LIKE`: `_` and `%` in codes stay literal, and case matters on both backends.
    pub(super) async fn subtree(&self, cell: Option<&str>) -> Result<String, StoreError> {
        let Some(code) = cell else {
            return Ok("/".into());
        };
        let path: Option<String> =
            sqlx::query_scalar("SELECT path FROM grid_cells WHERE code = $1")
                .bind(code)
                .fetch_optional(self.pool())
                .await?;
        path.ok_or_else(|| StoreError::NotFound(text!("store-no-cell", cell = code)))
    }
}

#[async_trait]
impl ReportStore for SqlStore {
    /// The cells under `cell` (itself included) that existed at `as_of_ms`, in path order (by
    /// bytes, whatever the database's collation); a retirement after `as_of_ms` is not yet one.
    async fn report_cells(
        &self,
        cell: Option<&str>,
        as_of_ms: i64,
    ) -> Result<Vec<ReportCell>, StoreError> {
        let prefix = self.subtree(cell).await?;
        let mut cells = sqlx::query(
            "SELECT code, name, level, path, CASE WHEN retired_at <= $2 THEN retired_at END \
             FROM grid_cells WHERE substr(path, 1, length($1)) = $1 \
             AND (created_at IS NULL OR created_at <= $2)",
        )
        .bind(prefix)
        .bind(as_of_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(ReportCell {
                code: r.try_get(0)?,
                name: r.try_get(1)?,
                level: r.try_get::<i64, _>(2)?.clamp(0, 255) as u8,
                path: CellPath::from(r.try_get::<String, _>(3)?),
                retired_at_ms: r.try_get(4)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        cells.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(cells)
    }

    /// The checkpoints under `cell` that existed at `as_of_ms`, retired ones included (a report
    /// decides what was due); a retirement after `as_of_ms` is not yet one.
    async fn report_checkpoints(
        &self,
        cell: Option<&str>,
        as_of_ms: i64,
    ) -> Result<Vec<ReportCheckpoint>, StoreError> {
        let prefix = self.subtree(cell).await?;
        sqlx::query(
            "SELECT cp.code, gc.code, gc.path, gc.level, cp.latitude, cp.longitude, cp.radius_m, \
             cp.cadence, CASE WHEN cp.retired_at <= $2 THEN cp.retired_at END, cp.created_at, cp.id \
             FROM checkpoints cp JOIN grid_cells gc ON gc.id = cp.cell_id \
             WHERE substr(gc.path, 1, length($1)) = $1 \
             AND (cp.created_at IS NULL OR cp.created_at <= $2) ORDER BY cp.code",
        )
        .bind(prefix)
        .bind(as_of_ms)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| {
            Ok(ReportCheckpoint {
                id: r.try_get(10)?,
                code: r.try_get(0)?,
                cell: r.try_get(1)?,
                path: CellPath::from(r.try_get::<String, _>(2)?),
                level: r.try_get::<i64, _>(3)?.clamp(0, 255) as u8,
                place: place(r.try_get(4)?, r.try_get(5)?, r.try_get(6)?),
                cadence: r.try_get(7)?,
                retired_at_ms: r.try_get(8)?,
                created_at_ms: r.try_get(9)?,
            })
        })
        .collect()
    }

    /// Check-ins with device time in `[from_ms, to_ms)`, received by `as_of_ms`, of every user
    /// who made one under `cell` then (those elsewhere marked not [`LedgerCheckIn::in_scope`]),
    /// ordered by user, then device time: the order anomaly rules walk them in.
    async fn report_check_ins(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<LedgerCheckIn>, StoreError> {
        let prefix = self.subtree(cell).await?;
        let sql = format!(
            "SELECT ci.id, ci.device_id, ci.user_id, u.name, cp.code, cp.name, cp.latitude, \
             cp.longitude, cp.radius_m, gc.code, ci.kind, ci.method, ci.outcome, ci.device_time_ms, \
             ci.received_at_ms, ci.latitude, ci.longitude, ci.accuracy_m, \
             CAST(CASE WHEN ci.mock THEN 1 ELSE 0 END AS BIGINT), ci.clock_offset_ms, ci.template_id, \
             ci.template_version, ci.answers, ci.photos, ci.note, \
             CAST(CASE WHEN ci.duplicate_of IS NULL THEN 0 ELSE 1 END AS BIGINT), \
             CAST(CASE WHEN substr(gc.path, 1, length($1)) = $1 THEN 1 ELSE 0 END AS BIGINT) \
             FROM check_ins ci JOIN grid_cells gc ON gc.id = ci.cell_id \
             JOIN checkpoints cp ON cp.id = ci.checkpoint_id JOIN users u ON u.id = ci.user_id \
             WHERE ci.device_time_ms >= $2 AND ci.device_time_ms < $3 AND ci.received_at_ms <= $4 {}",
            users_filter(cell.is_some())
        );
        let mut q = sqlx::query(&sql)
            .bind(prefix)
            .bind(from_ms)
            .bind(to_ms)
            .bind(as_of_ms);
        if cell.is_some() {
            q = q.bind(from_ms).bind(to_ms);
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter()
            .map(|r| {
                let id: Vec<u8> = r.try_get(0)?;
                let latitude: Option<f64> = r.try_get(15)?;
                let fix = match latitude {
                    Some(lat) => Some((
                        lat,
                        r.try_get::<Option<f64>, _>(16)?.unwrap_or_default(),
                        r.try_get::<Option<f64>, _>(17)?.unwrap_or_default(),
                    )),
                    None => None,
                };
                Ok(LedgerCheckIn {
                    id: id_text(&id),
                    device: r.try_get(1)?,
                    user_id: r.try_get(2)?,
                    user: r.try_get(3)?,
                    checkpoint: r.try_get(4)?,
                    checkpoint_name: r.try_get(5)?,
                    place: place(r.try_get(6)?, r.try_get(7)?, r.try_get(8)?),
                    cell: r.try_get(9)?,
                    kind: r.try_get(10)?,
                    method: r.try_get(11)?,
                    outcome: r.try_get(12)?,
                    device_time_ms: r.try_get(13)?,
                    received_at_ms: r.try_get(14)?,
                    fix,
                    mock: r.try_get::<i64, _>(18)? != 0,
                    clock_offset_ms: r.try_get(19)?,
                    template: (r.try_get(20)?, r.try_get(21)?),
                    answers: r.try_get(22)?,
                    photos: r.try_get(23)?,
                    note: r.try_get(24)?,
                    double_tap: r.try_get::<i64, _>(25)? != 0,
                    in_scope: r.try_get::<i64, _>(26)? != 0,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(|mut v| {
                // In Rust rather than ORDER BY: the database need not sort a month of rows.
                v.sort_unstable_by(|a, b| {
                    (a.user_id, a.device_time_ms, &a.id).cmp(&(b.user_id, b.device_time_ms, &b.id))
                });
                v
            })
    }

    /// What compliance and anomaly rules need of each check-in with device time in
    /// `[from_ms, to_ms)`, received by `as_of_ms`, by a user who made one under `cell` then,
    /// ordered by user, device time and id: no names, notes or answers (a city's month is a
    /// million rows).
    async fn report_visits(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<Visit>, StoreError> {
        let prefix = self.subtree(cell).await?;
        // Numbers only: each row crosses the driver as a handful of integers and floats. The
        // outcome comes as its index in OUTCOMES; the id as its first 8 bytes' order (a
        // tie-break); the grid is joined only to cut a subtree.
        let outcome = OUTCOMES
            .iter()
            .enumerate()
            .map(|(i, o)| format!("WHEN '{o}' THEN {i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let (scope, join) = if cell.is_some() {
            (
                "(CASE WHEN substr(gc.path, 1, length($1)) = $1 THEN 1 ELSE 0 END)",
                "JOIN grid_cells gc ON gc.id = ci.cell_id",
            )
        } else {
            // Everything is in scope; $1 is still named so both backends see every parameter.
            ("(CASE WHEN length($1) > 0 THEN 1 ELSE 1 END)", "")
        };
        // Flags and the outcome packed in one integer: 1 mock, 2 double tap, 4 in scope, and
        // the outcome's index from 8 up.
        let sql = format!(
            "SELECT ci.checkpoint_id, ci.user_id, ci.device_time_ms, ci.received_at_ms, \
             ci.latitude, ci.longitude, ci.accuracy_m, \
             CAST((CASE WHEN ci.mock THEN 1 ELSE 0 END) \
             + (CASE WHEN ci.duplicate_of IS NULL THEN 0 ELSE 2 END) + 4 * {scope} \
             + 8 * (CASE ci.outcome {outcome} ELSE {} END) AS BIGINT), ci.clock_offset_ms \
             FROM check_ins ci {join} \
             WHERE ci.device_time_ms >= $2 AND ci.device_time_ms < $3 AND ci.received_at_ms <= $4 {}",
            OUTCOMES.len(),
            users_filter(cell.is_some())
        );
        // Read in time slices on parallel connections: a month of a city is a million rows,
        // and decoding them through the driver, not the query, is what takes the time.
        const SLICES: i64 = 4;
        let step = ((to_ms - from_ms) / SLICES).max(1);
        let slices = (0..SLICES).map(|i| {
            let lo = from_ms + i * step;
            let hi = if i == SLICES - 1 { to_ms } else { lo + step };
            let (sql, prefix) = (&sql, &prefix);
            async move {
                let mut q = sqlx::query(sql)
                    .bind(prefix)
                    .bind(lo)
                    .bind(hi)
                    .bind(as_of_ms);
                if cell.is_some() {
                    q = q.bind(from_ms).bind(to_ms);
                }
                let rows = q.fetch_all(self.pool()).await?;
                rows.iter()
                    .map(visit)
                    .collect::<Result<Vec<_>, StoreError>>()
            }
        });
        let mut out = Vec::new();
        for part in futures_util::future::try_join_all(slices).await? {
            out.extend(part);
        }
        // A user's check-ins at the same device time: the order of their checkpoints decides.
        out.sort_unstable_by_key(|v| {
            (
                v.user_id,
                v.device_time_ms,
                v.checkpoint_id,
                v.received_at_ms,
            )
        });
        Ok(out)
    }

    /// Hazards under `cell` reported (device time) before `to_ms` that were open at `from_ms`
    /// or changed since, with their logs as the server held them at `as_of_ms` (entries
    /// received later left out; a hazard whose report arrived later not at all), oldest report
    /// first.
    async fn report_hazards(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<LedgerHazard>, StoreError> {
        let prefix = self.subtree(cell).await?;
        let rows = sqlx::query(
            "SELECT h.id, gc.code, u.name, h.reported_at_ms, l.kind, l.payload, l.hlc_wall_ms, \
             l.hlc_logical, l.device_id, l.role, l.hash, lu.name, gc.path, h.routed_party \
             FROM grid_cells gc JOIN hazards h ON h.cell_id = gc.id JOIN users u ON u.id = h.user_id \
             JOIN hazard_log l ON l.hazard_id = h.id JOIN users lu ON lu.id = l.user_id \
             WHERE substr(gc.path, 1, length($1)) = $1 AND h.reported_at_ms < $3 \
             AND l.received_at_ms <= $4 \
             AND (h.status NOT IN ('closed', 'merged', 'acknowledged') \
                  OR h.id IN (SELECT hazard_id FROM hazard_log \
                              WHERE hlc_wall_ms >= $2 OR received_at_ms > $4)) \
             ORDER BY h.reported_at_ms, h.id, l.position",
        )
        .bind(prefix)
        .bind(from_ms)
        .bind(to_ms)
        .bind(as_of_ms)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<LedgerHazard> = Vec::new();
        for r in &rows {
            let id: Vec<u8> = r.try_get(0)?;
            let id = HazardId::from_slice(&id)
                .ok_or_else(|| StoreError::Corrupt("stored hazard id".into()))?;
            let role: String = r.try_get(9)?;
            let role = role.parse::<Role>().map_err(StoreError::Corrupt)?;
            let kind: String = r.try_get(4)?;
            let payload: Vec<u8> = r.try_get(5)?;
            let op = HazardOp::decode(&kind, &payload, role)
                .map_err(|e| StoreError::Corrupt(format!("stored hazard log entry: {e}")))?;
            let device: String = r.try_get(8)?;
            let hash: Vec<u8> = r.try_get(10)?;
            let entry = LedgerLogEntry {
                stamp: Stamp {
                    hlc: Hlc {
                        wall_ms: r.try_get::<i64, _>(6)? as u64,
                        logical: r.try_get::<i64, _>(7)? as u32,
                    },
                    device: device
                        .parse::<DeviceId>()
                        .map_err(|_| StoreError::Corrupt(format!("device id {device:?}")))?,
                },
                op,
                actor: r.try_get(11)?,
                hash: <[u8; 32]>::try_from(hash.as_slice())
                    .map_err(|_| StoreError::Corrupt("stored chain hash".into()))?,
            };
            match out.last_mut() {
                Some(h) if h.id == id => h.log.push(entry),
                _ => out.push(LedgerHazard {
                    id,
                    cell: r.try_get(1)?,
                    path: CellPath::from(r.try_get::<String, _>(12)?),
                    reporter: r.try_get(2)?,
                    reported_at_ms: r.try_get(3)?,
                    routed_party: r.try_get(13)?,
                    log: vec![entry],
                }),
            }
        }
        Ok(out)
    }

    /// People assigned to cells under `cell`, by name. Assignments keep no history, so a report
    /// as of an earlier moment still lists today's people and their cells.
    async fn report_people(&self, cell: Option<&str>) -> Result<Vec<ReportPerson>, StoreError> {
        let prefix = self.subtree(cell).await?;
        let rows = sqlx::query(
            "SELECT u.name, u.role, c.code, c.path, u.id FROM users u \
             JOIN assignments a ON a.user_id = u.id JOIN grid_cells c ON c.id = a.cell_id \
             WHERE substr(c.path, 1, length($1)) = $1 ORDER BY u.name, c.path",
        )
        .bind(prefix)
        .fetch_all(self.pool())
        .await?;
        let mut out: Vec<ReportPerson> = Vec::new();
        for r in &rows {
            let name: String = r.try_get(0)?;
            let cell = (r.try_get(2)?, r.try_get(3)?);
            match out.last_mut() {
                Some(p) if p.name == name => p.cells.push(cell),
                _ => out.push(ReportPerson {
                    id: r.try_get(4)?,
                    name,
                    role: r.try_get(1)?,
                    cells: vec![cell],
                }),
            }
        }
        Ok(out)
    }
}

fn place(lat: Option<f64>, lon: Option<f64>, radius: f64) -> Option<(f64, f64, f64)> {
    Some((lat?, lon?, radius))
}
