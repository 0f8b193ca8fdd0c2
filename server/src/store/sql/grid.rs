//! The grid: cells, checkpoints, people and their assignments, retirement.

use super::*;
use patrolsync_i18n::text;

impl SqlStore {
    /// Makes `user`'s assignments exactly `cells`. Each must exist; a retired one only if the
    /// user holds it already (an assignment to a cell retired since stays for the record, and
    /// does not stand in the way of changing the others).
    pub(super) async fn set_assignments(
        &self,
        tx: &mut Transaction<'_, Any>,
        user: i64,
        cells: &[String],
    ) -> Result<u64, StoreError> {
        let held: Vec<i64> =
            sqlx::query_scalar("SELECT cell_id FROM assignments WHERE user_id = $1")
                .bind(user)
                .fetch_all(&mut **tx)
                .await?;
        let mut ids = Vec::with_capacity(cells.len());
        for code in cells {
            let row: Option<(i64, Option<i64>)> =
                sqlx::query_as("SELECT id, retired_at FROM grid_cells WHERE code = $1")
                    .bind(code)
                    .fetch_optional(&mut **tx)
                    .await?;
            match row {
                Some((id, None)) => ids.push(id),
                Some((id, Some(_))) if held.contains(&id) => ids.push(id),
                Some(_) => {
                    return Err(StoreError::Invalid(text!(
                        "store-cell-retired",
                        cell = code
                    )));
                }
                None => {
                    return Err(StoreError::NotFound(text!("store-no-cell", cell = code)));
                }
            }
        }
        let mut changed = 0;
        for old in held.iter().filter(|c| !ids.contains(c)) {
            changed += sqlx::query("DELETE FROM assignments WHERE user_id = $1 AND cell_id = $2")
                .bind(user)
                .bind(*old)
                .execute(&mut **tx)
                .await?
                .rows_affected();
        }
        for new in ids.iter().filter(|c| !held.contains(c)) {
            changed += sqlx::query(
                "INSERT INTO assignments (user_id, cell_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(user)
            .bind(*new)
            .execute(&mut **tx)
            .await?
            .rows_affected();
        }
        Ok(changed)
    }
}

#[async_trait]
impl GridStore for SqlStore {
    async fn upsert_grid(
        &self,
        cells: &[NewCell],
        checkpoints: &[NewCheckpoint],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        let mut changes = Vec::new();
        let grid_change = |path: &str, kind: ChangeKind, key: String, payload: Vec<u8>| {
            PendingChange::admin(path.to_owned(), kind, key, payload, true)
        };
        let mut ordered: Vec<&NewCell> = cells.iter().collect();
        ordered.sort_by_key(|c| c.level);
        for cell in ordered {
            let (parent_id, parent_path) = match &cell.parent {
                None => (None, "/".to_owned()),
                Some(p) => {
                    let row = sqlx::query("SELECT id, path FROM grid_cells WHERE code = $1")
                        .bind(p)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| {
                            StoreError::NotFound(text!(
                                "store-no-parent",
                                cell = cell.code,
                                parent = p
                            ))
                        })?;
                    (
                        Some(row.try_get::<i64, _>(0)?),
                        row.try_get::<String, _>(1)?,
                    )
                }
            };
            let path = format!("{parent_path}{}/", cell.code);
            // A cell keeps its place: its path is in the scope grants of everyone assigned it
            // or a cell above it, and in the change log its records are filed under.
            let held: Option<String> =
                sqlx::query_scalar("SELECT path FROM grid_cells WHERE code = $1")
                    .bind(&cell.code)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(old) = held.filter(|old| *old != path) {
                return Err(StoreError::Invalid(text!(
                    "store-cell-moved",
                    cell = cell.code,
                    old = old,
                    new = path
                )));
            }
            let n = sqlx::query(
                "INSERT INTO grid_cells (code, parent_id, level, name, path, boundary, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (code) DO UPDATE SET parent_id = excluded.parent_id, level = excluded.level, \
                 name = excluded.name, path = excluded.path, boundary = excluded.boundary \
                 WHERE grid_cells.parent_id IS DISTINCT FROM excluded.parent_id OR grid_cells.level <> excluded.level \
                 OR grid_cells.name <> excluded.name OR grid_cells.path <> excluded.path \
                 OR grid_cells.boundary IS DISTINCT FROM excluded.boundary",
            )
            .bind(&cell.code)
            .bind(parent_id)
            .bind(i64::from(cell.level))
            .bind(&cell.name)
            .bind(&path)
            .bind(cell.boundary.clone())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let record = CellRecord {
                    code: cell.code.clone(),
                    parent: cell.parent.clone().unwrap_or_default(),
                    level: cell.level,
                    name: cell.name.clone(),
                    retired: false,
                    boundary: cell.boundary.clone(),
                };
                changes.push(grid_change(
                    &path,
                    ChangeKind::Cell,
                    format!("cell:{}", cell.code),
                    record.encode(),
                ));
            }
            changed += n;
        }
        for cp in checkpoints {
            let cell = sqlx::query("SELECT id, path FROM grid_cells WHERE code = $1")
                .bind(&cp.cell)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    StoreError::NotFound(text!(
                        "store-checkpoint-no-cell",
                        checkpoint = cp.code,
                        cell = cp.cell
                    ))
                })?;
            let (cell_id, cell_path): (i64, String) = (cell.try_get(0)?, cell.try_get(1)?);
            let n = sqlx::query(
                "INSERT INTO checkpoints (code, cell_id, name, tag_uid, latitude, longitude, radius_m, cadence, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (code) DO UPDATE SET cell_id = excluded.cell_id, \
                 name = excluded.name, tag_uid = excluded.tag_uid, latitude = excluded.latitude, \
                 longitude = excluded.longitude, radius_m = excluded.radius_m, cadence = excluded.cadence \
                 WHERE checkpoints.cell_id <> excluded.cell_id OR checkpoints.name <> excluded.name \
                 OR checkpoints.tag_uid IS DISTINCT FROM excluded.tag_uid \
                 OR checkpoints.latitude IS DISTINCT FROM excluded.latitude \
                 OR checkpoints.longitude IS DISTINCT FROM excluded.longitude \
                 OR checkpoints.radius_m <> excluded.radius_m \
                 OR checkpoints.cadence IS DISTINCT FROM excluded.cadence",
            )
            .persistent(self.keeps_nullable_floats_prepared())
            .bind(&cp.code)
            .bind(cell_id)
            .bind(&cp.name)
            .bind(cp.tag_uid.clone())
            .bind(cp.position.map(|p| p.0))
            .bind(cp.position.map(|p| p.1))
            .bind(cp.radius_m)
            .bind(cp.cadence.clone())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let record = CheckpointRecord {
                    code: cp.code.clone(),
                    grid_cell: cp.cell.clone(),
                    name: cp.name.clone(),
                    tag_uid: cp.tag_uid.clone().unwrap_or_default(),
                    position: cp.position,
                    radius_m: cp.radius_m,
                };
                changes.push(grid_change(
                    &cell_path,
                    ChangeKind::Checkpoint,
                    format!("checkpoint:{}", cp.code),
                    record.encode(),
                ));
            }
            changed += n;
        }
        let committed = self
            .commit_with_changes(
                tx,
                &changes,
                now_ms,
                &["grid_cells", "checkpoints", "changes"],
            )
            .await;
        // Also when the commit's outcome is unknown: the next lookup reads again.
        self.checkpoint_cache.invalidate();
        committed?;
        Ok(changed)
    }

    async fn checkpoints(&self, codes: &[String]) -> Result<Vec<CheckpointRef>, StoreError> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let cache = &self.checkpoint_cache;
        if let Some(epoch) = cache.version_due(std::time::Instant::now()) {
            // Constants, not parameters: the partial index `changes_grid` is chosen by its
            // predicate.
            match sqlx::query_scalar::<_, i64>(
                "SELECT COALESCE(MAX(seq), 0) FROM changes WHERE kind IN ('cell', 'checkpoint')",
            )
            .fetch_one(&self.pool)
            .await
            {
                Ok(version) => cache.agree(epoch, version),
                Err(e) => {
                    cache.version_unknown(epoch);
                    return Err(e.into());
                }
            }
        }
        let probe = cache.probe(codes);
        if probe.missing.is_empty() {
            return Ok(probe.found);
        }
        let read = self.read_checkpoints(&probe.missing).await?;
        cache.fill(probe.epoch, &read);
        let mut out = probe.found;
        out.extend(read);
        Ok(out)
    }

    async fn household_refs(&self, codes: &[String]) -> Result<Vec<HouseholdRef>, StoreError> {
        let mut out = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(500) {
            let sql = format!(
                "SELECT h.code, h.id, c.path, h.removed_at FROM households h \
                 JOIN grid_cells c ON c.id = h.cell_id WHERE h.code IN ({})",
                list(self.backend, chunk.len(), 1)
            );
            let mut q = sqlx::query(&sql);
            for code in chunk {
                q = q.bind(code.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(HouseholdRef {
                    code: r.try_get(0)?,
                    id: r.try_get(1)?,
                    cell_path: r.try_get(2)?,
                    removed_at_ms: r.try_get(3)?,
                });
            }
        }
        Ok(out)
    }

    async fn cells(&self, codes: &[String]) -> Result<Vec<CellRef>, StoreError> {
        let mut out = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(500) {
            let sql = format!(
                "SELECT code, id, path, retired_at FROM grid_cells WHERE code IN ({})",
                list(self.backend, chunk.len(), 1)
            );
            let mut q = sqlx::query(&sql);
            for code in chunk {
                q = q.bind(code.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(CellRef {
                    code: r.try_get(0)?,
                    id: r.try_get(1)?,
                    path: r.try_get(2)?,
                    retired: r.try_get::<Option<i64>, _>(3)?.is_some(),
                });
            }
        }
        Ok(out)
    }

    /// Retires the cell `code`, its subtree and their checkpoints at `now_ms`: they keep their
    /// history but take no new records, and devices learn it through pull. Returns how many
    /// cells and checkpoints were newly retired (0 and 0 when they already were).
    async fn retire_cell(&self, code: &str, now_ms: i64) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        self.lock_scope(&mut tx).await?;
        let path: Option<String> =
            sqlx::query_scalar("SELECT path FROM grid_cells WHERE code = $1")
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?;
        let path = path.ok_or_else(|| StoreError::NotFound(text!("store-no-cell", cell = code)))?;
        let mut cells = sqlx::query(
            "UPDATE grid_cells SET retired_at = $2 \
             WHERE substr(path, 1, length($1)) = $1 AND retired_at IS NULL \
             RETURNING code, path, level, name, parent_id, boundary",
        )
        .bind(&path)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        let checkpoints = sqlx::query(
            "UPDATE checkpoints SET retired_at = $2 WHERE retired_at IS NULL AND cell_id IN \
             (SELECT id FROM grid_cells WHERE substr(path, 1, length($1)) = $1)",
        )
        .bind(&path)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let cells_retired = cells.len() as u64;
        if checkpoints > 0 && cells.is_empty() {
            // Checkpoints added under a cell already retired, retired now: the cell is logged
            // again, so that devices hear of it and the grid's version moves (other nodes'
            // checkpoint caches start over).
            cells = sqlx::query(
                "SELECT code, path, level, name, parent_id, boundary FROM grid_cells WHERE code = $1",
            )
            .bind(code)
            .fetch_all(&mut *tx)
            .await?;
        }
        let mut changes = Vec::with_capacity(cells.len());
        for r in &cells {
            let code: String = r.try_get(0)?;
            let cell_path: String = r.try_get(1)?;
            let parent = CellPath::from(cell_path.as_str()).parent_code().to_owned();
            let record = CellRecord {
                code: code.clone(),
                parent,
                level: r.try_get::<i64, _>(2)?.clamp(0, u32::MAX.into()) as u32,
                name: r.try_get(3)?,
                retired: true,
                boundary: r.try_get(5)?,
            };
            changes.push(PendingChange::admin(
                cell_path,
                ChangeKind::Cell,
                format!("cell:{code}"),
                record.encode(),
                true,
            ));
        }
        // Whoever was assigned a cell in the subtree loses it (those assigned above keep it,
        // marked retired).
        let users: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT a.user_id FROM assignments a JOIN grid_cells c ON c.id = a.cell_id \
             WHERE substr(c.path, 1, length($1)) = $1",
        )
        .bind(&path)
        .fetch_all(&mut *tx)
        .await?;
        for user in users {
            changes.extend(
                self.rescope_user(&mut tx, user, ScopeReason::Retired)
                    .await?,
            );
        }
        let committed = self
            .commit_with_changes(tx, &changes, now_ms, &["changes"])
            .await;
        self.checkpoint_cache.invalidate();
        committed?;
        Ok((cells_retired, checkpoints))
    }

    /// Creates or updates people and sets their assignments to exactly the cells given, in one
    /// transaction. Returns how many users and assignments changed.
    async fn import_people(&self, people: &[NewPerson], now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        self.lock_scope(&mut tx).await?;
        let mut changed = 0;
        let mut changes = Vec::new();
        for p in people {
            changed += sqlx::query(
                "INSERT INTO users (name, role, created_at, agency) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, agency = excluded.agency \
                 WHERE users.role <> excluded.role OR users.agency IS DISTINCT FROM excluded.agency",
            )
            .bind(&p.name)
            .bind(p.role.as_str())
            .bind(now_ms)
            .bind(p.agency.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let user: i64 = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
                .bind(&p.name)
                .fetch_one(&mut *tx)
                .await?;
            changed += self.set_assignments(&mut tx, user, &p.cells).await?;
            changes.extend(
                self.rescope_user(&mut tx, user, ScopeReason::Unassigned)
                    .await?,
            );
        }
        let tables = ["users", "assignments", "scope_grants", "changes"];
        self.commit_with_changes(tx, &changes, now_ms, &tables)
            .await?;
        Ok(changed)
    }

    /// Adds (or with `remove`, takes away) cells from `user`'s assignments at `now_ms`; their
    /// devices are granted (or revoked) the cells at their next pull.
    async fn assign(
        &self,
        user: &str,
        cells: &[String],
        remove: bool,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        self.lock_scope(&mut tx).await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
        let id = id.ok_or_else(|| StoreError::NotFound(text!("store-no-user", user = user)))?;
        let role: String = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if !remove && role.parse::<Role>().is_ok_and(Role::is_party) {
            return Err(StoreError::Invalid(text!(
                "store-party-no-cells",
                role = role
            )));
        }
        let mut current: Vec<String> = sqlx::query_scalar(
            "SELECT c.code FROM assignments a JOIN grid_cells c ON c.id = a.cell_id WHERE a.user_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        if remove {
            current.retain(|c| !cells.contains(c));
        } else {
            current.extend(cells.iter().cloned());
        }
        let changed = self.set_assignments(&mut tx, id, &current).await?;
        let changes = self
            .rescope_user(&mut tx, id, ScopeReason::Unassigned)
            .await?;
        self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok(changed)
    }
}

impl SqlStore {
    /// Reads checkpoints by code from the database (unknown codes are absent).
    async fn read_checkpoints(&self, codes: &[String]) -> Result<Vec<CheckpointRef>, StoreError> {
        let mut out = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(500) {
            let sql = format!(
                "SELECT cp.code, cp.id, cp.cell_id, c.path, cp.retired_at FROM checkpoints cp \
                 JOIN grid_cells c ON c.id = cp.cell_id WHERE cp.code IN ({})",
                list(self.backend, chunk.len(), 1)
            );
            let mut q = sqlx::query(&sql);
            for code in chunk {
                q = q.bind(code.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(CheckpointRef {
                    code: r.try_get(0)?,
                    id: r.try_get(1)?,
                    cell_id: r.try_get(2)?,
                    cell_path: r.try_get(3)?,
                    retired: r.try_get::<Option<i64>, _>(4)?.is_some(),
                });
            }
        }
        Ok(out)
    }
}
