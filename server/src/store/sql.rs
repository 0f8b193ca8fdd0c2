//! The SQL store: one set of statements for SQLite and PostgreSQL through sqlx's `Any` driver,
//! with `$N` placeholders (which both accept). Migrations are per backend and embedded in the
//! binary. Ingest writes many rows per statement: per-row INSERTs cap out near 8k rows/s on this
//! class of machine whatever the transaction size (reference/limits.md).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use patrolsync_proto::checkin::{Answer, AnswerValue};
use patrolsync_proto::grid::{CellRecord, CheckpointRecord};
use patrolsync_proto::hazard::{HazardOp, Stamp, chain_hash, fold};
use patrolsync_proto::scope::ScopeReason;
use patrolsync_proto::{CheckIn, CheckInId, DeviceId, GeoFix, HazardId, Hlc, Role};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

use super::*;
#[cfg(feature = "test-util")]
use crate::faults::{FaultPoints, points};

/// Rows per multi-row INSERT: 26 columns × 400 stays under SQLite's 32,766 parameters.
const CHECK_IN_ROWS_PER_STATEMENT: usize = 400;
const RESULT_ROWS_PER_STATEMENT: usize = 1000;

/// Rules for domain duplicates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DedupRules {
    /// Same user, same checkpoint, within this many ms: a double tap.
    pub double_tap_ms: i64,
    /// Same category within this many metres of an open hazard: a possible duplicate.
    pub hazard_radius_m: f64,
}

impl Default for DedupRules {
    fn default() -> Self {
        DedupRules {
            double_tap_ms: 120_000,
            hazard_radius_m: 50.0,
        }
    }
}

/// SQLite or PostgreSQL behind one pool.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    dedup: DedupRules,
    #[cfg(feature = "test-util")]
    faults: std::sync::Arc<FaultPoints>,
}

/// `(…),(…)` value lists for a multi-row statement whose only parameters they are. SQLite gets
/// anonymous `?`: with `$N` names, SQLite and sqlx look each parameter up by walking the list of
/// names, so a 10,000-parameter insert cost ~10^8 steps (the benchmark's profile: 63% of server
/// CPU in `sqlite3_bind_parameter_name`). PostgreSQL needs `$N`.
/// Whether a statement that binds an optional `f64` may be kept prepared. It may not: sqlx 0.8's
/// `Any` driver sends a NULL `f64` as a NULL `float4`, and PostgreSQL keeps the parameter types
/// a connection first prepared the statement with, so a position after a record without one was
/// refused ("incorrect binary data format"). Unnamed statements are typed by each execution's
/// own values. Shown by the conformance case `positions_come_and_go`.
const UNCACHED_NULLABLE_FLOATS: bool = false;

fn placeholders(backend: Backend, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            match backend {
                Backend::Sqlite => s.push('?'),
                Backend::Postgres => {
                    s.push('$');
                    s.push_str(&(r * cols + c + 1).to_string());
                }
            }
        }
        s.push(')');
    }
    s
}

/// `$first,…` for an `IN (…)` list; for SQLite anonymous `?` (see [`placeholders`]). sqlx
/// binds anonymous parameters in text order, counting only anonymous ones, so on SQLite every
/// parameter of such a statement must be anonymous and bound in text order (a literal `$1`
/// beside them shifts the others).
fn list(backend: Backend, n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| match backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${i}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Hello reports kept per device.
pub const HISTORY_KEPT: u32 = 48;

pub(super) fn seq(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn decode_template(bytes: &[u8]) -> Result<patrolsync_proto::template::Template, StoreError> {
    patrolsync_proto::template::Template::decode(bytes)
        .map_err(|e| StoreError::Invalid(format!("stored template: {}", e.message)))
}

/// A change-log entry to append when the transaction ends.
pub(super) struct PendingChange {
    pub(super) cell_path: String,
    pub(super) kind: &'static str,
    pub(super) entity_key: String,
    pub(super) payload: Vec<u8>,
    pub(super) device: String,
    pub(super) role: String,
    pub(super) hlc: Hlc,
    /// Older entries of the same entity are superseded (grid records; not hazard entries).
    pub(super) supersedes: bool,
    /// A scope grant or revoke: the one audience it is for, and the grant row it opens or
    /// closes at its position.
    pub(super) scope: Option<super::scope::ScopeRow>,
}

impl PendingChange {
    /// An entry the server or an admin makes (grid, escalation, template): no device, the admin
    /// role, no HLC of its own.
    fn admin(
        cell_path: String,
        kind: &'static str,
        entity_key: String,
        payload: Vec<u8>,
        supersedes: bool,
    ) -> PendingChange {
        PendingChange {
            cell_path,
            kind,
            entity_key,
            payload,
            device: String::new(),
            role: Role::Admin.as_str().to_owned(),
            hlc: Hlc::default(),
            supersedes,
            scope: None,
        }
    }
}

/// Open hazards past their deadline (`$1` is now): what escalation looks at. A hazard whose
/// fix awaits verification (`rectified`) is not among them.
const OVERDUE: &str = "deadline_ms IS NOT NULL AND deadline_ms < $1 \
     AND status IN ('reported', 'rectifying', 'transferred', 'agency_handling')";

/// Serialises change-log appends on PostgreSQL so positions are handed out in commit order.
const CHANGE_LOG_LOCK: i64 = 0x7061_7472_6f6c;

impl SqlStore {
    /// Connects to `url` (`sqlite://…?mode=rwc` or `postgres://…`) and applies migrations.
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = match backend {
            Backend::Sqlite => AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL lets readers (admin commands, the dashboard) run beside the writer.
                        // FULL costs nothing measurable at 10+ rows per transaction (limits.md).
                        for pragma in [
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            sqlx::query(pragma).execute(&mut *conn).await?;
                        }
                        Ok(())
                    })
                }),
            Backend::Postgres => AnyPoolOptions::new().max_connections(16),
        };
        let pool = options.connect(url).await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("migrations/sqlite").run(&pool).await?,
            // sqlx takes a PostgreSQL advisory lock, so nodes starting together migrate once.
            Backend::Postgres => sqlx::migrate!("migrations/postgres").run(&pool).await?,
        }
        Ok(SqlStore {
            pool,
            backend,
            dedup: DedupRules::default(),
            #[cfg(feature = "test-util")]
            faults: std::sync::Arc::default(),
        })
    }

    /// Uses `rules` for double taps and possible duplicate hazards.
    pub fn with_dedup(mut self, rules: DedupRules) -> Self {
        self.dedup = rules;
        self
    }

    /// Uses `faults` for its fault points (tests; see [`crate::faults::points`]).
    #[cfg(feature = "test-util")]
    pub fn with_faults(mut self, faults: std::sync::Arc<FaultPoints>) -> Self {
        self.faults = faults;
        self
    }

    /// Publishes `t` as the next version of its template, unless it equals the latest (then
    /// nothing changes). Returns the version that now holds this content and whether it is
    /// new. A new version goes into the change log for every device.
    pub async fn publish_template(
        &self,
        t: &patrolsync_proto::template::Template,
        now_ms: i64,
    ) -> Result<(u32, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let latest = sqlx::query(
            "SELECT version, payload FROM templates WHERE id = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(&t.id)
        .fetch_optional(&mut *tx)
        .await?;
        let (last, same) = match latest {
            Some(r) => {
                let version = r.try_get::<i64, _>(0)?.clamp(0, i64::from(u32::MAX)) as u32;
                let payload: Vec<u8> = r.try_get(1)?;
                let mut as_new = t.clone();
                as_new.version = version;
                (version, payload == as_new.encode())
            }
            None => (0, false),
        };
        if same {
            tx.commit().await?;
            return Ok((last, false));
        }
        let mut published = t.clone();
        published.version = last + 1;
        let payload = published.encode();
        sqlx::query(
            "INSERT INTO templates (id, version, name, payload, published_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&published.id)
        .bind(i64::from(published.version))
        .bind(&published.name)
        .bind(payload.clone())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        // For everyone: pull serves `/` to every scope.
        let change = PendingChange::admin(
            "/".into(),
            "template",
            format!("template:{}:{}", published.id, published.version),
            payload,
            false,
        );
        self.append_changes(&mut tx, &[change], now_ms).await?;
        tx.commit().await?;
        Ok((published.version, true))
    }

    /// Every published version of every template (or of `id`), by id then version.
    pub async fn templates(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<patrolsync_proto::template::Template>, StoreError> {
        let rows = sqlx::query(
            "SELECT payload FROM templates WHERE ($1 = '' OR id = $1) ORDER BY id, version",
        )
        .bind(id.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| decode_template(&r.try_get::<Vec<u8>, _>(0)?))
            .collect()
    }

    /// Retires the cell `code`, its subtree and their checkpoints at `now_ms`: they keep their
    /// history but take no new records, and devices learn it through pull. Returns how many
    /// cells and checkpoints were newly retired (0 and 0 when they already were).
    pub async fn retire_cell(&self, code: &str, now_ms: i64) -> Result<(u64, u64), StoreError> {
        let mut tx = self.begin_write().await?;
        self.lock_scope(&mut tx).await?;
        let path: Option<String> =
            sqlx::query_scalar("SELECT path FROM grid_cells WHERE code = $1")
                .bind(code)
                .fetch_optional(&mut *tx)
                .await?;
        let path =
            path.ok_or_else(|| StoreError::NotFound(format!("grid cell {code} does not exist")))?;
        let cells = sqlx::query(
            "UPDATE grid_cells SET retired_at = $2 \
             WHERE substr(path, 1, length($1)) = $1 AND retired_at IS NULL \
             RETURNING code, path, level, name, parent_id",
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
        let mut changes = Vec::with_capacity(cells.len());
        for r in &cells {
            let code: String = r.try_get(0)?;
            let cell_path: String = r.try_get(1)?;
            // The parent's code is the path's second-to-last segment.
            let parent = cell_path
                .trim_end_matches('/')
                .rsplit('/')
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let record = CellRecord {
                code: code.clone(),
                parent,
                level: r.try_get::<i64, _>(2)?.clamp(0, u32::MAX.into()) as u32,
                name: r.try_get(3)?,
                retired: true,
            };
            changes.push(PendingChange::admin(
                cell_path,
                "cell",
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
        self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok((cells.len() as u64, checkpoints))
    }

    /// Creates or updates people and sets their assignments to exactly the cells given, in one
    /// transaction. Returns how many users and assignments changed.
    pub async fn import_people(
        &self,
        people: &[NewPerson],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
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
        self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Adds (or with `remove`, takes away) cells from `user`'s assignments at `now_ms`; their
    /// devices are granted (or revoked) the cells at their next pull.
    pub async fn assign(
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
        let id = id.ok_or_else(|| {
            StoreError::NotFound(format!(
                "user {user} does not exist; import people or enroll them first"
            ))
        })?;
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

    /// Makes `user`'s assignments exactly `cells`. Each must exist; a retired one only if the
    /// user holds it already (an assignment to a cell retired since stays for the record, and
    /// does not stand in the way of changing the others).
    async fn set_assignments(
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
                    return Err(StoreError::Invalid(format!(
                        "grid cell {code} is retired; assign a cell in use"
                    )));
                }
                None => {
                    return Err(StoreError::NotFound(format!(
                        "grid cell {code} does not exist"
                    )));
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

    /// A transaction that reads, then writes. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that read first cannot upgrade once another
    /// writer committed, and fails with "database is locked" instead of waiting its turn.
    async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Serialises a transaction that moves scope (assignments, retirements) with every other
    /// writer of the change log, from its first read: on PostgreSQL two such transactions
    /// reading assignments and grants under READ COMMITTED could each grant or revoke from a
    /// view the other just changed. (SQLite's writers are serialised by `BEGIN IMMEDIATE`.)
    async fn lock_scope(&self, tx: &mut Transaction<'_, Any>) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHANGE_LOG_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// A write transaction that holds `lock` (PostgreSQL: an advisory lock to its end;
    /// SQLite: the write lock, which serialises every writer anyway).
    pub(super) async fn begin_locked(
        &self,
        lock: i64,
    ) -> Result<Transaction<'static, Any>, StoreError> {
        let mut tx = self.begin_write().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(lock)
                .execute(&mut *tx)
                .await?;
        }
        Ok(tx)
    }

    /// The pool, for backend-specific work elsewhere in the server.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The fault points armed on this store (tests).
    #[cfg(feature = "test-util")]
    pub(super) fn faults(&self) -> &FaultPoints {
        &self.faults
    }

    async fn session(
        &self,
        tx: &mut Transaction<'_, Any>,
        device_id: &str,
    ) -> Result<Option<DeviceSession>, StoreError> {
        let row = sqlx::query(
            "SELECT d.id, d.name, d.user_id, u.name, u.role, d.revoked_at, u.agency \
             FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1",
        )
        .bind(device_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let cells = sqlx::query(
            "SELECT c.code, c.path FROM assignments a JOIN grid_cells c ON c.id = a.cell_id \
             WHERE a.user_id = $1 AND c.retired_at IS NULL ORDER BY c.code",
        )
        .bind(row.try_get::<i64, _>(2)?)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let id: String = row.try_get(0)?;
        let role: String = row.try_get(4)?;
        Ok(Some(DeviceSession {
            id: id.parse().map_err(|_| {
                StoreError::Invalid(format!("device id {id:?} in store is not a UUID"))
            })?,
            name: row.try_get(1)?,
            user_id: row.try_get(2)?,
            user: row.try_get(3)?,
            role: role.parse().map_err(StoreError::Invalid)?,
            cells,
            revoked_at_ms: row.try_get(5)?,
            agency: row.try_get(6)?,
        }))
    }

    async fn ingest_batch(
        &self,
        tx: &mut Transaction<'_, Any>,
        batch: &IngestBatch,
        now_ms: i64,
        changes: &mut Vec<PendingChange>,
    ) -> Result<BatchResult, StoreError> {
        let device = batch.device.to_string();
        // Writing first takes SQLite's write lock at once, so no other writer can invalidate
        // this transaction's snapshot half-way.
        // The same statement reads the device's clock offset as its last Hello measured it,
        // kept with each check-in: the clock-skew flag must not change when the clock drifts.
        let row: Option<(i64, Option<i64>)> = sqlx::query_as(
            "UPDATE devices SET last_push_at = $1 WHERE id = $2 RETURNING acked_through, clock_offset_ms",
        )
        .bind(now_ms)
        .bind(&device)
        .fetch_optional(&mut **tx)
        .await?;
        let Some((acked, clock_offset)) = row else {
            return Err(StoreError::NotFound(format!(
                "device {device} is not enrolled"
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
            "SELECT device_seq, outcome, code, reason, field, message, op_id FROM op_results \
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
                    rejection: Some((
                        RejectCode::parse(&r.try_get::<Option<String>, _>(2)?.unwrap_or_default()),
                        r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                        r.try_get::<Option<String>, _>(4)?.unwrap_or_default(),
                        r.try_get::<Option<String>, _>(5)?.unwrap_or_default(),
                    )),
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
                    rejection: Some((
                        RejectCode::Invalid,
                        "seq_reused".into(),
                        "device_seq".into(),
                        format!(
                            "device_seq {s} was already used by another op; this op was not applied"
                        ),
                    )),
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
                OpAction::Hazard(_) | OpAction::Reject(_) => None,
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
        self.mark_double_taps(tx, batch.user_id, &taps).await?;
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
                    rejection: Some((
                        rej.code,
                        rej.reason.clone(),
                        rej.field.clone(),
                        rej.message.clone(),
                    )),
                    conflict: None,
                },
            };
            new_results.push((op, r.clone()));
            results.push(r);
        }

        for chunk in new_results.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO op_results (device_id, device_seq, op_id, outcome, code, reason, field, message, recorded_at) VALUES {}",
                placeholders(self.backend, chunk.len(), 9)
            );
            let mut q = sqlx::query(&sql);
            for (op, r) in chunk {
                let (code, reason, field, message) = match &r.rejection {
                    Some((c, r, f, m)) => (
                        Some(c.as_str()),
                        Some(r.clone()),
                        Some(f.clone()),
                        Some(m.clone()),
                    ),
                    None => (None, None, None, r.conflict.clone()),
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
                    .bind(now_ms);
            }
            q.execute(&mut **tx).await?;
        }

        let rejected: Vec<(&PreparedOp, &Rejection)> = fresh
            .iter()
            .filter_map(|o| match &o.action {
                OpAction::Reject(r) => Some((*o, r)),
                OpAction::InsertCheckIn(_) | OpAction::Hazard(_) => None,
            })
            .collect();
        for chunk in rejected.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO rejections (device_id, device_seq, op_id, code, reason, field, message, payload, recorded_at) VALUES {}",
                placeholders(self.backend, chunk.len(), 9)
            );
            let mut q = sqlx::query(&sql);
            for (op, r) in chunk {
                q = q
                    .bind(device.clone())
                    .bind(seq(op.device_seq))
                    .bind(op.op_id.to_bytes())
                    .bind(r.code.as_str())
                    .bind(r.reason.clone())
                    .bind(r.field.clone())
                    .bind(r.message.clone())
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
                    .push(rejection.as_ref().map_or(RejectCode::Invalid, |(c, ..)| *c)),
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
    async fn add_blob_refs(
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
    ) -> Result<(), StoreError> {
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
        for (id, first) in taps {
            sqlx::query("UPDATE check_ins SET duplicate_of = $1 WHERE id = $2")
                .bind(first)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Links a new report to the nearest open hazard of the same category within the radius
    /// (or at the same checkpoint) in the same top-level cell.
    async fn link_possible_duplicate(
        &self,
        tx: &mut Transaction<'_, Any>,
        r: &patrolsync_proto::hazard::Report,
        cell_path: &str,
    ) -> Result<(), StoreError> {
        let top = cell_path
            .split('/')
            .nth(1)
            .map(|t| format!("/{t}/"))
            .unwrap_or_else(|| cell_path.to_owned());
        let rows = sqlx::query(
            "SELECT h.id, h.latitude, h.longitude, h.checkpoint FROM hazards h JOIN grid_cells c ON c.id = h.cell_id \
             WHERE h.category = $1 AND h.id <> $2 AND h.status NOT IN ('closed', 'merged') \
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
    async fn apply_hazard(
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
            .persistent(UNCACHED_NULLABLE_FLOATS)
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
            "UPDATE hazards SET log_len = log_len + 1 WHERE id = $1 RETURNING log_len, chain_head, agency",
        )
        .bind(hazard.to_bytes())
        .fetch_optional(&mut **tx)
        .await?;
        let Some(claimed) = claimed else {
            return Err(StoreError::NotFound(format!(
                "hazard {hazard} does not exist"
            )));
        };
        let position = claimed.try_get::<i64, _>(0)? as u64;
        // The agency holding it before this entry (read under the row lock just taken).
        let held_by: Option<String> = claimed.try_get(2)?;
        let prev: [u8; 32] = claimed
            .try_get::<Option<Vec<u8>>, _>(1)?
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
            .unwrap_or([0; 32]);
        let device_id: DeviceId = device
            .parse()
            .map_err(|_| StoreError::Invalid(format!("device id {device:?}")))?;
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
            .map(|p| (*p, "hazard", hazard.to_bytes(), h.cell_id))
            .collect();
        self.add_blob_refs(tx, &refs, device, now_ms).await?;

        let log = self.read_log(tx, hazard).await?;
        let ops: Vec<(Stamp, HazardOp)> = log
            .iter()
            .map(|e| {
                Ok((
                    e.stamp,
                    HazardOp::decode(&e.kind, &e.payload, e.role)
                        .map_err(|i| StoreError::Invalid(i.to_string()))?,
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
            kind: match h.op {
                HazardOp::Report(_) => "hazard_report",
                HazardOp::Event(..) => "hazard_event",
                HazardOp::Edit(_) => "hazard_edit",
            },
            entity_key: format!("hazard:{hazard}"),
            payload,
            device: device.to_owned(),
            role: h.role.as_str().to_owned(),
            hlc: op.hlc,
            supersedes: false,
            scope: None,
        });
        // Which agency holds it follows the fold, not the op that happened to arrive: a
        // transfer that loses to an earlier change leaves the agency's scope, one that wins late
        // enters it whole.
        if held_by != agency {
            changes.extend(super::scope::agency_moves(
                hazard,
                &h.cell_path,
                held_by.as_deref(),
                agency.as_deref(),
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
                            .map_err(|_| StoreError::Invalid(format!("device id {device:?}")))?,
                    },
                    role: role.parse::<Role>().map_err(StoreError::Invalid)?,
                    hash: <[u8; 32]>::try_from(hash.as_slice())
                        .map_err(|_| StoreError::Invalid("hash".into()))?,
                })
            })
            .collect()
    }

    /// Appends changes to the log; returns the last position (0 if none). On PostgreSQL an
    /// advisory lock held to commit makes positions follow commit order, so a reader that saw
    /// position N has seen every position below N.
    async fn append_changes(
        &self,
        tx: &mut Transaction<'_, Any>,
        changes: &[PendingChange],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if changes.is_empty() {
            return Ok(0);
        }
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(CHANGE_LOG_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        let mut last = 0u64;
        for chunk in changes.chunks(RESULT_ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO changes (cell_path, kind, entity_key, payload, device_id, role, hlc_wall_ms, hlc_logical, \
                 committed_at, audience) VALUES {} RETURNING seq",
                placeholders(self.backend, chunk.len(), 10)
            );
            let mut q = sqlx::query(&sql);
            for c in chunk {
                q = q
                    .bind(c.cell_path.clone())
                    .bind(c.kind)
                    .bind(c.entity_key.clone())
                    .bind(c.payload.clone())
                    .bind(c.device.clone())
                    .bind(c.role.clone())
                    .bind(seq(c.hlc.wall_ms))
                    .bind(i64::from(c.hlc.logical))
                    .bind(now_ms)
                    .bind(c.scope.as_ref().map(|s| s.audience.clone()));
            }
            let mut seqs: Vec<i64> = q
                .fetch_all(&mut **tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?;
            // Positions are handed out in the order of the VALUES list, but neither backend
            // promises to return them in that order.
            seqs.sort_unstable();
            last = last.max(seqs.iter().copied().max().unwrap_or(0) as u64);
            for (c, s) in chunk.iter().zip(&seqs) {
                if let Some(row) = &c.scope {
                    row.record(tx, *s).await?;
                }
                if c.supersedes {
                    sqlx::query(
                        "UPDATE changes SET superseded = TRUE WHERE entity_key = $1 AND seq < $2",
                    )
                    .bind(c.entity_key.clone())
                    .bind(*s)
                    .execute(&mut **tx)
                    .await?;
                }
            }
        }
        Ok(last)
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
        const COLS: usize = 26;
        let sql = format!(
            "INSERT INTO check_ins (id, device_id, device_seq, user_id, checkpoint_id, cell_id, kind, method, \
             tag_uid, device_time_ms, monotonic_ms, received_at_ms, latitude, longitude, accuracy_m, \
             fix_time_ms, mock, outcome, template_id, template_version, answers, photos, note, \
             hlc_wall_ms, hlc_logical, clock_offset_ms) VALUES {} ON CONFLICT (id) DO NOTHING RETURNING id",
            placeholders(self.backend, rows.len(), COLS)
        );
        let mut q = sqlx::query(&sql).persistent(UNCACHED_NULLABLE_FLOATS);
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
                .bind(clock_offset_ms);
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

fn device_entry(r: &AnyRow) -> Result<DeviceEntry, StoreError> {
    Ok(DeviceEntry {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        user: r.try_get(2)?,
        role: r.try_get(3)?,
        enrolled_at_ms: r.try_get(4)?,
        last_seen_at_ms: r.try_get(5)?,
        revoked_at_ms: r.try_get(6)?,
        acked_through: r.try_get(7)?,
    })
}

fn hex32(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn photos_json(photos: &[[u8; 32]]) -> String {
    serde_json::Value::from(photos.iter().map(hex32).collect::<Vec<_>>()).to_string()
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
                    "photos": a.photos.iter().map(hex32).collect::<Vec<_>>(),
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
        .filter_map(|p| p.as_str().and_then(unhex32))
        .collect()
}

fn parse_answers(text: &str) -> Result<Vec<Answer>, StoreError> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("stored answers are not JSON: {e}")))?;
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
                    .map_err(StoreError::Invalid)?,
                note: a["note"].as_str().unwrap_or_default().to_owned(),
                photos: parse_photos(&a["photos"]),
            })
        })
        .collect()
}

fn stored_check_in(r: &AnyRow) -> Result<StoredCheckIn, StoreError> {
    let bad = |what: &str| StoreError::Invalid(format!("stored check-in has an invalid {what}"));
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
            .map_err(StoreError::Invalid)?,
        method: r
            .try_get::<String, _>("method")?
            .parse()
            .map_err(StoreError::Invalid)?,
        tag_uid: r.try_get("tag_uid")?,
        device_time_ms: r.try_get("device_time_ms")?,
        monotonic_ms: r.try_get::<i64, _>("monotonic_ms")? as u64,
        fix,
        outcome: r
            .try_get::<String, _>("outcome")?
            .parse()
            .map_err(StoreError::Invalid)?,
        template_id: r.try_get("template_id")?,
        template_version: u32::try_from(r.try_get::<i64, _>("template_version")?)
            .map_err(|_| bad("template version"))?,
        answers: parse_answers(&r.try_get::<String, _>("answers")?)?,
        photos: parse_photos(&serde_json::from_str(&photos).map_err(|_| bad("photo list"))?),
        note: r.try_get("note")?,
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

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn upsert_grid(
        &self,
        cells: &[NewCell],
        checkpoints: &[NewCheckpoint],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut changed = 0;
        let mut changes = Vec::new();
        let grid_change = |path: &str, kind: &'static str, key: String, payload: Vec<u8>| {
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
                            StoreError::NotFound(format!(
                                "cell {}: parent cell {p} does not exist",
                                cell.code
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
                return Err(StoreError::Invalid(format!(
                    "cell {} is at {old}; it cannot move to {path} (retire it and add the new \
                     place under a new code)",
                    cell.code
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
                };
                changes.push(grid_change(
                    &path,
                    "cell",
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
                    StoreError::NotFound(format!(
                        "checkpoint {}: cell {} does not exist",
                        cp.code, cp.cell
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
            .persistent(UNCACHED_NULLABLE_FLOATS)
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
                    "checkpoint",
                    format!("checkpoint:{}", cp.code),
                    record.encode(),
                ));
            }
            changed += n;
        }
        self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok(changed)
    }

    async fn checkpoints(&self, codes: &[String]) -> Result<Vec<CheckpointRef>, StoreError> {
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
                 (SELECT COUNT(*) FROM hazard_log l WHERE l.hazard_id = h.id AND l.device_id = {d}) \
                 FROM hazards h JOIN grid_cells c ON c.id = h.cell_id WHERE h.id IN ({})",
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
                        .ok_or_else(|| StoreError::Invalid("hazard id".into()))?,
                    cell_id: r.try_get(1)?,
                    cell_path: r.try_get(2)?,
                    status: r.try_get(3)?,
                    agency: r.try_get(4)?,
                    log_len: r.try_get(5)?,
                    role_entries: r.try_get(6)?,
                    device_entries: r.try_get(7)?,
                });
            }
        }
        Ok(out)
    }

    async fn pull(
        &self,
        scope: &PullScope,
        cursor: u64,
        backfill_after: u64,
        limit: u32,
        compact: bool,
    ) -> Result<PullPage, StoreError> {
        self.pull_feed(scope, cursor, backfill_after, limit, compact)
            .await
    }

    async fn cursor(&self) -> Result<u64, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(head.unwrap_or(0).max(0) as u64)
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

    async fn create_enrollment(&self, e: &NewEnrollment, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.lock_scope(&mut tx).await?;
        let user_id: i64 = sqlx::query_scalar(
            "INSERT INTO users (name, role, created_at, agency) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, agency = excluded.agency RETURNING id",
        )
        .bind(&e.user)
        .bind(e.role.as_str())
        .bind(now_ms)
        .bind(e.agency.clone())
        .fetch_one(&mut *tx)
        .await?;
        for code in &e.cells {
            let cell: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM grid_cells WHERE code = $1 AND retired_at IS NULL",
            )
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(cell) = cell else {
                return Err(StoreError::NotFound(format!(
                    "grid cell {code} does not exist; run `patrolsync admin seed-demo` or import the grid first"
                )));
            };
            sqlx::query(
                "INSERT INTO assignments (user_id, cell_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(cell)
            .execute(&mut *tx)
            .await?;
        }
        let changes = self
            .rescope_user(&mut tx, user_id, ScopeReason::Unassigned)
            .await?;
        self.append_changes(&mut tx, &changes, now_ms).await?;
        sqlx::query("INSERT INTO enrollment_codes (code_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(e.code_hash.to_vec())
            .bind(user_id)
            .bind(now_ms)
            .bind(e.expires_at_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn check_enrollment(&self, code_hash: &[u8; 32], now_ms: i64) -> Result<(), RedeemError> {
        let row = sqlx::query(
            "SELECT expires_at, used_at, device_id FROM enrollment_codes WHERE code_hash = $1",
        )
        .bind(code_hash.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        let Some(r) = row else {
            return Err(RedeemError::Unknown);
        };
        if r.try_get::<Option<i64>, _>(1)
            .map_err(StoreError::from)?
            .is_some()
        {
            return Err(RedeemError::AlreadyUsed {
                device: r
                    .try_get::<Option<String>, _>(2)
                    .map_err(StoreError::from)?
                    .unwrap_or_default(),
            });
        }
        let expires: i64 = r.try_get(0).map_err(StoreError::from)?;
        if expires <= now_ms {
            return Err(RedeemError::Expired {
                ago_s: (now_ms - expires) / 1000,
            });
        }
        Ok(())
    }

    async fn redeem_enrollment(
        &self,
        code_hash: &[u8; 32],
        device: &NewDevice,
        now_ms: i64,
    ) -> Result<DeviceSession, RedeemError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let device_id = device.id.to_string();
        // Claim the code first (a write, so concurrent redeemers serialise on it).
        let user_id: Option<i64> = sqlx::query_scalar(
            "UPDATE enrollment_codes SET used_at = $1, device_id = $2 \
             WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(now_ms)
        .bind(&device_id)
        .bind(code_hash.to_vec())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let Some(user_id) = user_id else {
            let row = sqlx::query(
                "SELECT expires_at, used_at, device_id FROM enrollment_codes WHERE code_hash = $1",
            )
            .bind(code_hash.to_vec())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            return Err(match row {
                None => RedeemError::Unknown,
                Some(r) => {
                    let used: Option<i64> = r.try_get(1).map_err(StoreError::from)?;
                    if used.is_some() {
                        RedeemError::AlreadyUsed {
                            device: r
                                .try_get::<Option<String>, _>(2)
                                .map_err(StoreError::from)?
                                .unwrap_or_default(),
                        }
                    } else {
                        let expires: i64 = r.try_get(0).map_err(StoreError::from)?;
                        RedeemError::Expired {
                            ago_s: (now_ms - expires) / 1000,
                        }
                    }
                }
            });
        };
        sqlx::query(
            "INSERT INTO devices (id, user_id, name, cert_sha256, enrolled_at, app_version) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&device_id)
        .bind(user_id)
        .bind(&device.name)
        .bind(device.cert_sha256.to_vec())
        .bind(now_ms)
        .bind(&device.app_version)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let session = self.session(&mut tx, &device_id).await?.ok_or_else(|| {
            StoreError::NotFound(format!("device {device_id} vanished during enrollment"))
        })?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(session)
    }

    async fn device_by_cert(
        &self,
        cert_sha256: &[u8; 32],
    ) -> Result<Option<DeviceSession>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM devices WHERE cert_sha256 = $1")
                .bind(cert_sha256.to_vec())
                .fetch_optional(&mut *tx)
                .await?;
        let session = match id {
            Some(id) => self.session(&mut tx, &id).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(session)
    }

    async fn device_session(&self, device: DeviceId) -> Result<Option<DeviceSession>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let session = self.session(&mut tx, &device.to_string()).await?;
        tx.commit().await?;
        Ok(session)
    }

    async fn record_hello(
        &self,
        device: DeviceId,
        report: &DeviceReport,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let id = device.to_string();
        let mut tx = self.pool.begin().await?;
        let acked: Option<i64> = sqlx::query_scalar(
            "UPDATE devices SET last_seen_at = $1, outbox_depth = $2, oldest_pending_age_ms = $3, \
             pending_photo_bytes = $4, app_version = $5, sdk_version = $6, clock_offset_ms = $7, \
             rtt_ms = $8, bytes_in = bytes_in + $9, bytes_out = bytes_out + $10 \
             WHERE id = $11 RETURNING acked_through",
        )
        .bind(now_ms)
        .bind(seq(report.outbox_depth))
        .bind(seq(report.oldest_pending_age_ms))
        .bind(seq(report.pending_photo_bytes))
        .bind(&report.app_version)
        .bind(&report.sdk_version)
        .bind(report.clock_offset_ms)
        .bind(report.rtt_ms.map(i64::from))
        .bind(seq(report.bytes_in))
        .bind(seq(report.bytes_out))
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(acked) = acked else {
            return Err(StoreError::NotFound(format!(
                "device {device} is not enrolled"
            )));
        };
        sqlx::query(
            "INSERT INTO device_reports (device_id, at_ms, outbox_depth, oldest_pending_age_ms, \
             pending_photo_bytes, clock_offset_ms, rtt_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (device_id, at_ms) DO NOTHING",
        )
        .bind(&id)
        .bind(now_ms)
        .bind(seq(report.outbox_depth))
        .bind(seq(report.oldest_pending_age_ms))
        .bind(seq(report.pending_photo_bytes))
        .bind(report.clock_offset_ms)
        .bind(report.rtt_ms.map(i64::from))
        .execute(&mut *tx)
        .await?;
        // Keep the newest few: the history is for "since when", not an archive.
        sqlx::query(&format!(
            "DELETE FROM device_reports WHERE device_id = $1 AND at_ms < \
             (SELECT at_ms FROM device_reports WHERE device_id = $1 ORDER BY at_ms DESC \
              LIMIT 1 OFFSET {})",
            HISTORY_KEPT - 1
        ))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(acked.max(0) as u64)
    }

    async fn ingest(
        &self,
        batches: &[IngestBatch],
        now_ms: i64,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(batches.len());
        let mut changes = Vec::new();
        for batch in batches {
            // One device's bad batch must not fail the devices sharing its group commit.
            sqlx::query("SAVEPOINT batch").execute(&mut *tx).await?;
            let before = changes.len();
            match self
                .ingest_batch(&mut tx, batch, now_ms, &mut changes)
                .await
            {
                Ok(mut result) => {
                    sqlx::query("RELEASE SAVEPOINT batch")
                        .execute(&mut *tx)
                        .await?;
                    result.changed_paths = changes[before..]
                        .iter()
                        .filter(|c| c.scope.is_none())
                        .map(|c| c.cell_path.clone())
                        .collect();
                    result.changed_paths.dedup();
                    result.changed_audiences = changes[before..]
                        .iter()
                        .filter_map(|c| c.scope.as_ref().map(|s| s.audience.clone()))
                        .collect();
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
                    out.push(Err(e));
                }
            }
        }
        let cursor = self.append_changes(&mut tx, &changes, now_ms).await?;
        #[cfg(feature = "test-util")]
        self.faults.hit(points::INGEST_BEFORE_COMMIT).await?;
        tx.commit().await?;
        #[cfg(feature = "test-util")]
        self.faults.hit(points::INGEST_AFTER_COMMIT).await?;
        for r in out.iter_mut().flatten() {
            r.cursor = cursor;
        }
        Ok(out)
    }
    async fn blob(&self, sha256: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE sha256 = $1")
            .bind(sha256.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        Ok(size.map(|s| s.max(0) as u64))
    }

    async fn record_blob(
        &self,
        sha256: &[u8; 32],
        size: u64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO blobs (sha256, size, stored_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(sha256.to_vec())
            .bind(seq(size))
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now_ms: i64,
    ) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO cluster_secrets (name, value, created_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate.to_vec())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        let value: Vec<u8> =
            sqlx::query_scalar("SELECT value FROM cluster_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?;
        Ok(value)
    }

    async fn blob_visible(
        &self,
        sha256: &[u8; 32],
        device: DeviceId,
        scope: &PullScope,
    ) -> Result<bool, StoreError> {
        self.blob_refs_in_scope(sha256, device, scope, true).await
    }

    async fn blob_readable(
        &self,
        sha256: &[u8; 32],
        device: DeviceId,
        scope: &PullScope,
    ) -> Result<bool, StoreError> {
        let held: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM blob_holders WHERE sha256 = $1 AND device_id = $2",
        )
        .bind(sha256.to_vec())
        .bind(device.to_string())
        .fetch_one(&self.pool)
        .await?;
        if held > 0 {
            return Ok(true);
        }
        self.blob_refs_in_scope(sha256, device, scope, false).await
    }

    async fn record_possession(
        &self,
        sha256: &[u8; 32],
        device: DeviceId,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO blob_holders (sha256, device_id, proved_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(sha256.to_vec())
        .bind(device.to_string())
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn missing_photos(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MissingPhoto>, StoreError> {
        let filter = if device.is_some() {
            "AND r.device_id = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT r.sha256, r.record_kind, r.record_id, r.device_id, u.name, r.created_at FROM blob_refs r \
             JOIN devices d ON d.id = r.device_id JOIN users u ON u.id = d.user_id \
             LEFT JOIN blobs b ON b.sha256 = r.sha256 WHERE b.sha256 IS NULL {filter} \
             ORDER BY r.created_at LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        if let Some(d) = device {
            q = q.bind(d.to_owned());
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let sha: Vec<u8> = r.try_get(0)?;
                let record: Vec<u8> = r.try_get(2)?;
                Ok(MissingPhoto {
                    sha256: sha.iter().map(|b| format!("{b:02x}")).collect(),
                    record_kind: r.try_get(1)?,
                    record_id: uuid::Uuid::from_slice(&record)
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    device: r.try_get(3)?,
                    user: r.try_get(4)?,
                    since_ms: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError> {
        sqlx::query(
            "SELECT d.id, d.name, u.name, u.role, d.enrolled_at, d.last_seen_at, d.revoked_at, d.acked_through \
             FROM devices d JOIN users u ON u.id = d.user_id ORDER BY d.enrolled_at, d.id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(device_entry)
        .collect()
    }

    async fn revoke_device(&self, id: &str, now_ms: i64) -> Result<DeviceEntry, StoreError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < 8 {
            return Err(StoreError::Invalid(format!(
                "device id {id:?} is too short; give at least 8 characters"
            )));
        }
        let mut tx = self.pool.begin().await?;
        let matches: Vec<String> =
            sqlx::query_scalar("SELECT id FROM devices WHERE substr(id, 1, length($1)) = $1")
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
        let full = match matches.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(StoreError::NotFound(format!(
                    "no device {id}; see `patrolsync admin devices`"
                )));
            }
            many => {
                return Err(StoreError::Invalid(format!(
                    "{id} matches {} devices; give more of the id",
                    many.len()
                )));
            }
        };
        sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(&full)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT d.id, d.name, u.name, u.role, d.enrolled_at, d.last_seen_at, d.revoked_at, d.acked_through \
             FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1",
        )
        .bind(&full)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        device_entry(&row)
    }

    async fn revoked_since(&self, since_ms: i64) -> Result<Vec<DeviceId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM devices WHERE revoked_at >= $1")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
    }

    async fn stats(&self, now_ms: i64) -> Result<Stats, StoreError> {
        let count = |sql: &'static str| {
            let pool = self.pool.clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await }
        };
        Ok(Stats {
            devices: count("SELECT COUNT(*) FROM devices").await?,
            devices_revoked: count("SELECT COUNT(*) FROM devices WHERE revoked_at IS NOT NULL")
                .await?,
            users: count("SELECT COUNT(*) FROM users").await?,
            grid_cells: count("SELECT COUNT(*) FROM grid_cells").await?,
            checkpoints: count("SELECT COUNT(*) FROM checkpoints").await?,
            check_ins: count("SELECT COUNT(*) FROM check_ins").await?,
            double_taps: count("SELECT COUNT(*) FROM check_ins WHERE duplicate_of IS NOT NULL")
                .await?,
            hazards: count("SELECT COUNT(*) FROM hazards").await?,
            blobs: count("SELECT COUNT(*) FROM blobs").await?,
            missing_photos: count(
                "SELECT COUNT(*) FROM (SELECT DISTINCT r.sha256 FROM blob_refs r \
                 LEFT JOIN blobs b ON b.sha256 = r.sha256 WHERE b.sha256 IS NULL) m",
            )
            .await?,
            rejected_ops: count("SELECT COUNT(*) FROM rejections").await?,
            open_enrollment_codes: sqlx::query_scalar(
                "SELECT COUNT(*) FROM enrollment_codes WHERE used_at IS NULL AND expires_at > $1",
            )
            .bind(now_ms)
            .fetch_one(&self.pool)
            .await?,
        })
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
             ci.outcome, ci.template_id, ci.template_version, ci.answers, ci.photos, ci.note, ci.duplicate_of \
             FROM check_ins ci JOIN users u ON u.id = ci.user_id JOIN checkpoints cp ON cp.id = ci.checkpoint_id \
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
            "SELECT device_id, device_seq, code, reason, field, message, recorded_at FROM rejections \
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

    async fn record_activity(
        &self,
        device: DeviceId,
        activity: &Activity,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let id = device.to_string();
        let q = match activity {
            Activity::Pulled => sqlx::query("UPDATE devices SET last_pull_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(id),
            Activity::Failed(message) => sqlx::query(
                "UPDATE devices SET last_error_at = $1, last_error = $2 WHERE id = $3",
            )
            .bind(now_ms)
            .bind(message.chars().take(500).collect::<String>())
            .bind(id),
            Activity::Traffic { bytes_in, bytes_out } => sqlx::query(
                "UPDATE devices SET bytes_in = bytes_in + $1, bytes_out = bytes_out + $2 WHERE id = $3",
            )
            .bind(seq(*bytes_in))
            .bind(seq(*bytes_out))
            .bind(id),
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn device_statuses(&self) -> Result<Vec<DeviceStatus>, StoreError> {
        let mut owed: HashMap<String, (i64, i64)> = HashMap::new();
        for r in sqlx::query(
            "SELECT r.device_id, COUNT(*), MIN(r.created_at) FROM blob_refs r \
             LEFT JOIN blobs b ON b.sha256 = r.sha256 WHERE b.sha256 IS NULL GROUP BY r.device_id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            owed.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
        }
        sqlx::query(
            "SELECT d.id, d.name, u.name, u.role, d.enrolled_at, d.revoked_at, d.last_seen_at, \
             d.last_push_at, d.last_pull_at, d.acked_through, d.app_version, d.sdk_version, \
             d.outbox_depth, d.oldest_pending_age_ms, d.pending_photo_bytes, d.clock_offset_ms, \
             d.rtt_ms, d.bytes_in, d.bytes_out, d.rejected_ops, d.conflicts, d.last_problem_at, \
             d.last_error_at, d.last_error \
             FROM devices d JOIN users u ON u.id = d.user_id ORDER BY d.enrolled_at, d.id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let id: String = r.try_get(0)?;
            let (missing, since) = owed
                .get(&id)
                .map(|(n, at)| (*n, Some(*at)))
                .unwrap_or((0, None));
            Ok(DeviceStatus {
                id,
                name: r.try_get(1)?,
                user: r.try_get(2)?,
                role: r.try_get(3)?,
                enrolled_at_ms: r.try_get(4)?,
                revoked_at_ms: r.try_get(5)?,
                last_seen_at_ms: r.try_get(6)?,
                last_push_at_ms: r.try_get(7)?,
                last_pull_at_ms: r.try_get(8)?,
                acked_through: r.try_get(9)?,
                app_version: r.try_get(10)?,
                sdk_version: r.try_get(11)?,
                outbox_depth: r.try_get(12)?,
                oldest_pending_age_ms: r.try_get(13)?,
                pending_photo_bytes: r.try_get(14)?,
                clock_offset_ms: r.try_get(15)?,
                rtt_ms: r.try_get(16)?,
                bytes_in: r.try_get(17)?,
                bytes_out: r.try_get(18)?,
                rejected_ops: r.try_get(19)?,
                conflicts: r.try_get(20)?,
                last_problem_at_ms: r.try_get(21)?,
                last_error_at_ms: r.try_get(22)?,
                last_error: r.try_get(23)?,
                missing_photos: missing,
                missing_photos_since_ms: since,
            })
        })
        .collect()
    }

    async fn device_history(
        &self,
        device: DeviceId,
        limit: u32,
    ) -> Result<Vec<ReportSample>, StoreError> {
        sqlx::query(&format!(
            "SELECT at_ms, outbox_depth, oldest_pending_age_ms, pending_photo_bytes, clock_offset_ms, rtt_ms \
             FROM device_reports WHERE device_id = $1 ORDER BY at_ms DESC LIMIT {limit}"
        ))
        .bind(device.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ReportSample {
                at_ms: r.try_get(0)?,
                outbox_depth: r.try_get(1)?,
                oldest_pending_age_ms: r.try_get(2)?,
                pending_photo_bytes: r.try_get(3)?,
                clock_offset_ms: r.try_get(4)?,
                rtt_ms: r.try_get(5)?,
            })
        })
        .collect()
    }

    async fn hazard_counts(&self, now_ms: i64) -> Result<Vec<HazardCount>, StoreError> {
        sqlx::query(
            "SELECT c.path, h.status, COUNT(*), \
             SUM(CASE WHEN h.deadline_ms IS NOT NULL AND h.deadline_ms < $1 \
                 AND h.status NOT IN ('closed', 'merged') THEN 1 ELSE 0 END) \
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

    async fn template(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<patrolsync_proto::template::Template>, StoreError> {
        let payload: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT payload FROM templates WHERE id = $1 AND version = $2")
                .bind(id)
                .bind(i64::from(version))
                .fetch_optional(&self.pool)
                .await?;
        payload.as_deref().map(decode_template).transpose()
    }

    async fn escalate_overdue(
        &self,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<Escalated, StoreError> {
        let interval_ms = interval_ms.max(1);
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
            let have = r.try_get::<Option<i64>, _>(3)?.unwrap_or(0).max(0) as usize;
            // Ancestors, nearest first, with their paths: /S1/S1-C1/S1-C1-K1/ → S1-C1, S1.
            let codes: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let ancestors: Vec<(&str, String)> = (1..codes.len())
                .rev()
                .map(|n| (codes[n - 1], format!("/{}/", codes[..n].join("/"))))
                .collect();
            let due = (1 + (now_ms - deadline) / interval_ms).clamp(0, ancestors.len() as i64);
            for level in have + 1..=due as usize {
                let (to_cell, to_path) = &ancestors[level - 1];
                let inserted = sqlx::query(
                    "INSERT INTO hazard_escalations (hazard_id, deadline_ms, level, to_cell, escalated_at_ms) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(id.clone())
                .bind(deadline)
                .bind(level as i64)
                .bind(*to_cell)
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
                    level: level as u32,
                    to_cell: (*to_cell).to_owned(),
                    deadline_ms: deadline,
                    escalated_at_ms: now_ms,
                };
                let hazard = hazard_id.to_string();
                changes.push(PendingChange::admin(
                    to_path.clone(),
                    "hazard_escalation",
                    format!("escalation:{hazard}:{deadline}:{level}"),
                    record.encode(),
                    false,
                ));
                out.paths.push(to_path.clone());
                out.escalations.push(Escalation {
                    hazard,
                    level: level as u32,
                    to_cell: (*to_cell).to_owned(),
                    deadline_ms: deadline,
                    escalated_at_ms: now_ms,
                });
            }
        }
        out.cursor = self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok(out)
    }
}

impl SqlStore {
    /// Whether a record referencing the photo lies in `scope`, made by another device (or, if
    /// `own`, by `device` anywhere).
    async fn blob_refs_in_scope(
        &self,
        sha256: &[u8; 32],
        device: DeviceId,
        scope: &PullScope,
        own: bool,
    ) -> Result<bool, StoreError> {
        let conds: Vec<String> = (0..scope.paths.len())
            .map(|i| format!("substr(c.path, 1, length(${n})) = ${n}", n = i + 4))
            .collect();
        // Agency users see photos of the hazards their agency holds; everyone else those of
        // records in their cells. A device's own records count only when `own` says so.
        let audience = match scope.agency {
            Some(_) => {
                "AND r.record_kind = 'hazard' AND EXISTS (SELECT 1 FROM hazards h \
                        WHERE h.id = r.record_id AND h.agency = $3)"
            }
            None => "AND $3 = $3",
        };
        let sql = format!(
            "SELECT COUNT(*) FROM blob_refs r JOIN grid_cells c ON c.id = r.cell_id \
             WHERE r.sha256 = $1 AND ({} (({}) {audience}))",
            if own {
                "r.device_id = $2 OR"
            } else {
                "r.device_id <> $2 AND"
            },
            if conds.is_empty() {
                "FALSE".to_owned()
            } else {
                conds.join(" OR ")
            }
        );
        let mut q = sqlx::query_scalar::<_, i64>(&sql)
            .bind(sha256.to_vec())
            .bind(device.to_string())
            .bind(scope.agency.clone().unwrap_or_default());
        for p in &scope.paths {
            q = q.bind(p.clone());
        }
        Ok(q.fetch_one(&self.pool).await? > 0)
    }
}
