//! The registers: key units and must-visit households.

use super::*;
use crate::store::registry::*;
use patrolsync_i18n::text;
use patrolsync_proto::household::HouseholdRecord;
use patrolsync_proto::unit::UnitRecord;

/// Columns of a unit row, as [`unit_entry`] reads them (checkpoints come separately).
const UNIT_COLUMNS: &str = "u.id, u.code, c.code, u.kind, u.name, u.address, u.responsible_person, \
     u.responsible_phone, u.risk, u.self_check_date, u.responsible_user";

fn unit_entry(r: &AnyRow, checkpoints: Vec<String>) -> Result<UnitEntry, StoreError> {
    Ok(UnitEntry {
        code: r.try_get(1)?,
        cell: r.try_get(2)?,
        kind: r.try_get(3)?,
        name: r.try_get(4)?,
        address: r.try_get(5)?,
        responsible_person: r.try_get(6)?,
        responsible_phone: r.try_get(7)?,
        risk: r.try_get(8)?,
        self_check_date: r.try_get(9)?,
        checkpoints,
        responsible_user: r.try_get(10)?,
    })
}

/// A register's table: its name, and the message a move to another cell is refused with.
struct Register {
    table: &'static str,
    moved: fn(code: &str, old: &str, new: &str) -> patrolsync_i18n::Text,
}

const UNITS: Register = Register {
    table: "key_units",
    moved: |code, old, new| text!("store-unit-moved", unit = code, old = old, new = new),
};

const HOUSEHOLDS: Register = Register {
    table: "households",
    moved: |code, old, new| {
        text!(
            "store-household-moved",
            household = code,
            old = old,
            new = new
        )
    },
};

impl SqlStore {
    /// The id and path of `cell`, where the register entry `code` is filed: an entry stays in
    /// its cell (devices of the old cell would keep it otherwise), so a move is refused.
    async fn register_cell(
        tx: &mut sqlx::AnyConnection,
        register: &Register,
        code: &str,
        cell: &str,
    ) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT id, path FROM grid_cells WHERE code = $1")
            .bind(cell)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(text!("store-no-cell", cell = cell)))?;
        let held: Option<String> = sqlx::query_scalar(&format!(
            "SELECT c.code FROM {} r JOIN grid_cells c ON c.id = r.cell_id WHERE r.code = $1",
            register.table
        ))
        .bind(code)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(old) = held.filter(|old| old != cell) {
            return Err(StoreError::Invalid((register.moved)(code, &old, cell)));
        }
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The checkpoint codes of `unit`, sorted.
    async fn unit_checkpoints(
        &self,
        conn: &mut sqlx::AnyConnection,
        unit: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut codes: Vec<String> = sqlx::query_scalar(
            "SELECT cp.code FROM key_unit_checkpoints k JOIN checkpoints cp ON cp.id = k.checkpoint_id \
             WHERE k.unit_id = $1",
        )
        .bind(unit)
        .fetch_all(&mut *conn)
        .await?;
        codes.sort();
        Ok(codes)
    }
}

#[async_trait]
impl RegistryStore for SqlStore {
    async fn upsert_units(&self, units: &[NewUnit], now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        let mut changes = Vec::new();
        for unit in units {
            let (cell_id, cell_path) =
                Self::register_cell(&mut tx, &UNITS, &unit.code, &unit.cell).await?;
            let mut n = sqlx::query(
                "INSERT INTO key_units (code, cell_id, kind, name, address, responsible_person, \
                 responsible_phone, risk, self_check_date, created_at, responsible_user) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (code) DO UPDATE SET \
                 kind = excluded.kind, name = excluded.name, address = excluded.address, \
                 responsible_person = excluded.responsible_person, \
                 responsible_phone = excluded.responsible_phone, risk = excluded.risk, \
                 self_check_date = excluded.self_check_date, \
                 responsible_user = excluded.responsible_user \
                 WHERE key_units.kind <> excluded.kind OR key_units.name <> excluded.name \
                 OR key_units.address <> excluded.address \
                 OR key_units.responsible_person <> excluded.responsible_person \
                 OR key_units.responsible_phone <> excluded.responsible_phone \
                 OR key_units.risk <> excluded.risk \
                 OR key_units.self_check_date IS DISTINCT FROM excluded.self_check_date \
                 OR key_units.responsible_user IS DISTINCT FROM excluded.responsible_user",
            )
            .bind(&unit.code)
            .bind(cell_id)
            .bind(unit.kind.as_str())
            .bind(&unit.name)
            .bind(&unit.address)
            .bind(&unit.responsible_person)
            .bind(&unit.responsible_phone)
            .bind(unit.risk.as_str())
            .bind(unit.self_check_date.clone())
            .bind(now_ms)
            .bind(unit.responsible_user.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let id: i64 = sqlx::query_scalar("SELECT id FROM key_units WHERE code = $1")
                .bind(&unit.code)
                .fetch_one(&mut *tx)
                .await?;
            let mut wanted = unit.checkpoints.clone();
            wanted.sort();
            wanted.dedup();
            if self.unit_checkpoints(&mut tx, id).await? != wanted {
                sqlx::query("DELETE FROM key_unit_checkpoints WHERE unit_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                for code in &wanted {
                    let cp = sqlx::query(
                        "SELECT cp.id, c.path FROM checkpoints cp JOIN grid_cells c ON c.id = cp.cell_id \
                         WHERE cp.code = $1",
                    )
                    .bind(code)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| {
                        StoreError::NotFound(text!("store-no-checkpoint", checkpoint = code))
                    })?;
                    let (cp_id, cp_path): (i64, String) = (cp.try_get(0)?, cp.try_get(1)?);
                    if !patrolsync_proto::grid::covers(&cell_path, &cp_path) {
                        return Err(StoreError::Invalid(text!(
                            "store-unit-checkpoint-outside",
                            unit = unit.code,
                            checkpoint = code,
                            cell = unit.cell
                        )));
                    }
                    sqlx::query(
                        "INSERT INTO key_unit_checkpoints (unit_id, checkpoint_id) VALUES ($1, $2)",
                    )
                    .bind(id)
                    .bind(cp_id)
                    .execute(&mut *tx)
                    .await?;
                }
                n = 1;
            }
            if n > 0 {
                let record = UnitRecord {
                    code: unit.code.clone(),
                    grid_cell: unit.cell.clone(),
                    kind: unit.kind,
                    name: unit.name.clone(),
                    address: unit.address.clone(),
                    responsible_person: unit.responsible_person.clone(),
                    responsible_phone: unit.responsible_phone.clone(),
                    risk: unit.risk,
                    self_check_date: unit.self_check_date.clone().unwrap_or_default(),
                    checkpoints: wanted,
                };
                changes.push(PendingChange::admin(
                    cell_path,
                    ChangeKind::Unit,
                    format!("unit:{}", unit.code),
                    record.encode(),
                    true,
                ));
                changed += 1;
            }
        }
        let tables = ["key_units", "key_unit_checkpoints", "changes"];
        self.commit_with_changes(tx, &changes, now_ms, &tables)
            .await?;
        Ok(changed)
    }

    async fn units(&self, cell: Option<&str>) -> Result<Vec<UnitEntry>, StoreError> {
        let prefix = self.subtree(cell).await?;
        let sql = format!(
            "SELECT {UNIT_COLUMNS} FROM key_units u JOIN grid_cells c ON c.id = u.cell_id \
             WHERE substr(c.path, 1, length($1)) = $1"
        );
        let rows = sqlx::query(&sql)
            .bind(&prefix)
            .fetch_all(self.pool())
            .await?;
        let links = sqlx::query(
            "SELECT k.unit_id, cp.code FROM key_unit_checkpoints k \
             JOIN checkpoints cp ON cp.id = k.checkpoint_id JOIN key_units u ON u.id = k.unit_id \
             JOIN grid_cells c ON c.id = u.cell_id WHERE substr(c.path, 1, length($1)) = $1",
        )
        .bind(&prefix)
        .fetch_all(self.pool())
        .await?;
        let mut by_unit: HashMap<i64, Vec<String>> = HashMap::new();
        for r in &links {
            by_unit
                .entry(r.try_get(0)?)
                .or_default()
                .push(r.try_get(1)?);
        }
        let mut out = rows
            .iter()
            .map(|r| {
                let mut codes = by_unit.remove(&r.try_get::<i64, _>(0)?).unwrap_or_default();
                codes.sort();
                unit_entry(r, codes)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // In Rust: byte order whatever the database's collation.
        out.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(out)
    }

    async fn unit_file(&self, code: &str, limit: u32) -> Result<Option<UnitFile>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        let sql = format!(
            "SELECT {UNIT_COLUMNS} FROM key_units u JOIN grid_cells c ON c.id = u.cell_id \
             WHERE u.code = $1"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(code)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let id: i64 = row.try_get(0)?;
        // What happened at the unit's checkpoints *in its cell*: a hazard names its checkpoint
        // as text, so a report elsewhere naming one of these codes is not the unit's, nor is a
        // check-in made before a checkpoint moved here.
        let path: String = sqlx::query_scalar(
            "SELECT c.path FROM key_units u JOIN grid_cells c ON c.id = u.cell_id WHERE u.id = $1",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        let checkpoints = self.unit_checkpoints(&mut conn, id).await?;
        let unit = unit_entry(&row, checkpoints.clone())?;
        let limit = i64::from(limit);
        let check_ins = sqlx::query(
            "SELECT ci.id, cp.code, us.name, ci.kind, ci.outcome, ci.device_time_ms, ci.received_at_ms \
             FROM key_unit_checkpoints k JOIN check_ins ci ON ci.checkpoint_id = k.checkpoint_id \
             JOIN checkpoints cp ON cp.id = k.checkpoint_id JOIN users us ON us.id = ci.user_id \
             JOIN grid_cells gc ON gc.id = ci.cell_id \
             WHERE k.unit_id = $1 AND substr(gc.path, 1, length($3)) = $3 \
             ORDER BY ci.device_time_ms DESC, ci.id DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .bind(&path)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            let raw: Vec<u8> = r.try_get(0)?;
            Ok(UnitCheckIn {
                id: id_text(&raw),
                checkpoint: r.try_get(1)?,
                user: r.try_get(2)?,
                kind: r.try_get(3)?,
                outcome: r.try_get(4)?,
                device_time_ms: r.try_get(5)?,
                received_at_ms: r.try_get(6)?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let check_ins_total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM key_unit_checkpoints k \
             JOIN check_ins ci ON ci.checkpoint_id = k.checkpoint_id \
             JOIN grid_cells gc ON gc.id = ci.cell_id \
             WHERE k.unit_id = $1 AND substr(gc.path, 1, length($2)) = $2",
        )
        .bind(id)
        .bind(&path)
        .fetch_one(&mut *conn)
        .await?;
        let mut hazard_ids = Vec::new();
        for chunk in checkpoints.chunks(500) {
            // Anonymous on SQLite, in text order (see `list`): the path twice, then the codes.
            let (a, b) = match self.backend {
                Backend::Sqlite => ("?", "?"),
                Backend::Postgres => ("$1", "$2"),
            };
            let sql = format!(
                "SELECT h.id, h.reported_at_ms FROM hazards h JOIN grid_cells gc ON gc.id = h.cell_id \
                 WHERE substr(gc.path, 1, length({a})) = {b} AND h.checkpoint IN ({})",
                list(self.backend, chunk.len(), 3)
            );
            let mut q = sqlx::query(&sql).bind(&path).bind(&path);
            for c in chunk {
                q = q.bind(c.clone());
            }
            for r in q.fetch_all(&mut *conn).await? {
                let raw: Vec<u8> = r.try_get(0)?;
                if let Some(h) = HazardId::from_slice(&raw) {
                    hazard_ids.push((r.try_get::<i64, _>(1)?, h));
                }
            }
        }
        drop(conn);
        hazard_ids.sort_by(|a, b| b.cmp(a));
        let hazards_total = hazard_ids.len() as i64;
        let mut hazards = Vec::new();
        for (_, h) in hazard_ids.into_iter().take(limit as usize) {
            if let Some(summary) = self.hazard(h).await? {
                hazards.push(summary);
            }
        }
        Ok(Some(UnitFile {
            unit,
            check_ins,
            check_ins_total,
            hazards,
            hazards_total,
        }))
    }

    async fn upsert_households(
        &self,
        households: &[NewHousehold],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        let mut changes = Vec::new();
        for h in households {
            let (cell_id, cell_path) =
                Self::register_cell(&mut tx, &HOUSEHOLDS, &h.code, &h.cell).await?;
            let n = sqlx::query(
                "INSERT INTO households (code, cell_id, address, grp, contact_name, contact_phone, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (code) DO UPDATE SET \
                 address = excluded.address, grp = excluded.grp, contact_name = excluded.contact_name, \
                 contact_phone = excluded.contact_phone, removed_at = NULL \
                 WHERE households.address <> excluded.address OR households.grp <> excluded.grp \
                 OR households.contact_name <> excluded.contact_name \
                 OR households.contact_phone <> excluded.contact_phone \
                 OR households.removed_at IS NOT NULL",
            )
            .bind(&h.code)
            .bind(cell_id)
            .bind(&h.address)
            .bind(h.group.as_str())
            .bind(&h.contact_name)
            .bind(&h.contact_phone)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let record = HouseholdRecord {
                    code: h.code.clone(),
                    grid_cell: h.cell.clone(),
                    address: h.address.clone(),
                    group: h.group,
                    contact_name: h.contact_name.clone(),
                    contact_phone: h.contact_phone.clone(),
                    removed: false,
                };
                changes.push(PendingChange::admin(
                    cell_path,
                    ChangeKind::Household,
                    format!("household:{}", h.code),
                    record.encode(),
                    true,
                ));
                changed += 1;
            }
        }
        self.commit_with_changes(tx, &changes, now_ms, &["households", "changes"])
            .await?;
        Ok(changed)
    }

    async fn households(
        &self,
        cell: Option<&str>,
        as_of_ms: i64,
    ) -> Result<Vec<HouseholdEntry>, StoreError> {
        let prefix = self.subtree(cell).await?;
        let rows = sqlx::query(
            "SELECT h.code, c.code, c.path, h.address, h.grp, h.contact_name, h.contact_phone, h.created_at, \
             h.removed_at FROM households h JOIN grid_cells c ON c.id = h.cell_id \
             WHERE substr(c.path, 1, length($1)) = $1 AND h.created_at <= $2",
        )
        .bind(&prefix)
        .bind(as_of_ms)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(HouseholdEntry {
                    code: r.try_get(0)?,
                    cell: r.try_get(1)?,
                    path: r.try_get(2)?,
                    address: r.try_get(3)?,
                    group: r.try_get(4)?,
                    contact_name: r.try_get(5)?,
                    contact_phone: r.try_get(6)?,
                    created_at_ms: r.try_get(7)?,
                    // Removed after `as_of_ms`: not yet removed then.
                    removed_at_ms: r.try_get::<Option<i64>, _>(8)?.filter(|at| *at <= as_of_ms),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(out)
    }

    async fn household_visits(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<HouseholdVisit>, StoreError> {
        let prefix = self.subtree(cell).await?;
        let rows = sqlx::query(
            "SELECT ci.id, h.code, cp.code, u.name, ci.outcome, ci.device_time_ms, ci.received_at_ms \
             FROM check_ins ci JOIN households h ON h.id = ci.household_id \
             JOIN grid_cells c ON c.id = h.cell_id JOIN checkpoints cp ON cp.id = ci.checkpoint_id \
             JOIN users u ON u.id = ci.user_id \
             WHERE substr(c.path, 1, length($1)) = $1 AND ci.device_time_ms >= $2 \
             AND ci.device_time_ms < $3 AND ci.received_at_ms <= $4",
        )
        .bind(&prefix)
        .bind(from_ms)
        .bind(to_ms)
        .bind(as_of_ms)
        .fetch_all(self.pool())
        .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                let raw: Vec<u8> = r.try_get(0)?;
                Ok(HouseholdVisit {
                    id: id_text(&raw),
                    household: r.try_get(1)?,
                    checkpoint: r.try_get(2)?,
                    user: r.try_get(3)?,
                    outcome: r.try_get(4)?,
                    device_time_ms: r.try_get(5)?,
                    received_at_ms: r.try_get(6)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| (a.device_time_ms, &a.id).cmp(&(b.device_time_ms, &b.id)));
        Ok(out)
    }

    async fn remove_households(&self, codes: &[String], now_ms: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut changes = Vec::new();
        for code in codes {
            // Nothing personal stays: the address and the contact go; the code, cell and group
            // stay for the visits already made.
            let row = sqlx::query(
                "UPDATE households SET removed_at = $2, address = '', contact_name = '', \
                 contact_phone = '' WHERE code = $1 AND removed_at IS NULL RETURNING cell_id, grp",
            )
            .bind(code)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                let known: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM households WHERE code = $1")
                        .bind(code)
                        .fetch_optional(&mut *tx)
                        .await?;
                if known.is_none() {
                    return Err(StoreError::NotFound(text!(
                        "store-no-household",
                        household = code
                    )));
                }
                continue;
            };
            let (cell_id, group): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
            let cell = sqlx::query("SELECT code, path FROM grid_cells WHERE id = $1")
                .bind(cell_id)
                .fetch_one(&mut *tx)
                .await?;
            let (cell_code, cell_path): (String, String) = (cell.try_get(0)?, cell.try_get(1)?);
            let record = HouseholdRecord {
                code: code.clone(),
                grid_cell: cell_code,
                address: String::new(),
                group: group
                    .parse()
                    .unwrap_or(patrolsync_proto::household::HouseholdGroup::Assisted),
                contact_name: String::new(),
                contact_phone: String::new(),
                removed: true,
            };
            // The log's earlier versions held the address and the contact: they say "removed"
            // now too, so no pull from an old position hands them out again.
            sqlx::query("UPDATE changes SET payload = $1 WHERE entity_key = $2")
                .bind(record.encode())
                .bind(format!("household:{code}"))
                .execute(&mut *tx)
                .await?;
            changes.push(PendingChange::admin(
                cell_path,
                ChangeKind::Household,
                format!("household:{code}"),
                record.encode(),
                true,
            ));
        }
        let removed = changes.len() as u64;
        self.commit_with_changes(tx, &changes, now_ms, &["households", "changes"])
            .await?;
        Ok(removed)
    }

    async fn map_cells(&self, cell: Option<&str>) -> Result<Vec<MapCell>, StoreError> {
        let rows = match cell {
            None => {
                sqlx::query(
                    "SELECT code, name, level, path, boundary FROM grid_cells \
                     WHERE parent_id IS NULL AND retired_at IS NULL",
                )
                .fetch_all(self.pool())
                .await?
            }
            Some(code) => {
                sqlx::query(
                    "SELECT c.code, c.name, c.level, c.path, c.boundary FROM grid_cells c \
                     JOIN grid_cells p ON p.id = c.parent_id \
                     WHERE p.code = $1 AND c.retired_at IS NULL",
                )
                .bind(code)
                .fetch_all(self.pool())
                .await?
            }
        };
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(MapCell {
                    code: r.try_get(0)?,
                    name: r.try_get(1)?,
                    level: r.try_get::<i64, _>(2)?.clamp(0, 255) as u8,
                    path: r.try_get(3)?,
                    boundary: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.code.cmp(&b.code));
        Ok(out)
    }
}
