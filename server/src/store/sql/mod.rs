//! The SQL store: one set of statements for SQLite and PostgreSQL through sqlx's `Any` driver,
//! with `$N` placeholders (which both accept). Migrations are per backend and embedded in the
//! binary. Ingest writes many rows per statement: per-row INSERTs cap out near 8k rows/s on a
//! 2-core machine whatever the transaction size.
//!
//! One file per area, each implementing that area's trait: `grid`, `devices`, `ingest`,
//! `hazards` (with escalation), `changes` (the change log), `scope` (feeds, grants, pull),
//! `photos`, `templates`, `reports`, `admins`; `checkpoint_cache` keeps the checkpoints ingest
//! looks up. This file holds the pool and the helpers they share.

mod admins;
mod changes;
mod checkpoint_cache;
mod devices;
mod grid;
mod hazards;
mod ingest;
mod photos;
mod registry;
mod reports;
mod routing;
mod scope;
mod tasks;
mod templates;

pub(crate) use changes::PendingChange;

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use patrolsync_proto::ChangeKind;
use patrolsync_proto::checkin::{Answer, AnswerValue};
use patrolsync_proto::grid::{CellPath, CellRecord, CheckpointRecord};
use patrolsync_proto::hazard::{HazardOp, Stamp, chain_hash, fold};
use patrolsync_proto::scope::ScopeReason;
use patrolsync_proto::{CheckIn, CheckInId, DeviceId, GeoFix, HazardId, Hlc, Role};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Row, Transaction};

use super::*;
#[cfg(feature = "test-util")]
use crate::faults::{FaultPoints, points};
use crate::store::admins::*;
use crate::store::reports::*;

/// Rows per multi-row INSERT: 27 columns × 400 stays under SQLite's 32,766 parameters.
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
    /// Published routing rule sets by version (they never change once published).
    routing:
        std::sync::Arc<std::sync::Mutex<HashMap<u32, std::sync::Arc<crate::routing::RuleSet>>>>,
    #[cfg(feature = "test-util")]
    faults: std::sync::Arc<FaultPoints>,
    /// Off only in the test that shows what the change log's lock prevents.
    #[cfg(feature = "test-util")]
    change_log_lock: bool,
    /// Group commits whose shared statements failed, written again push by push.
    groups_rewritten: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The checkpoints ingest looked up, until the grid is edited.
    checkpoint_cache: std::sync::Arc<checkpoint_cache::CheckpointCache>,
}

/// `(…),(…)` value lists for a multi-row statement whose only parameters they are. SQLite gets
/// anonymous `?`: with `$N` names, SQLite and sqlx look each parameter up by walking the list of
/// names, so a 10,000-parameter insert cost ~10^8 steps (the benchmark's profile: 63% of server
/// CPU in `sqlite3_bind_parameter_name`). PostgreSQL needs `$N`.
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

/// Whether a statement shaped by a group's size, with `rows` rows of at most `full` a
/// statement, is kept prepared: up to 8 rows (the shapes of quiet hours, few and used over and
/// over) and a full statement (a busy hour's). Another is prepared for its one use instead of
/// pushing those out of the connection's cache.
pub(super) fn cached(rows: usize, full: usize) -> bool {
    rows <= 8 || rows == full
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

/// A stored check-in id as people read it: UUID text (hex if the bytes are not a UUID).
fn id_text(raw: &[u8]) -> String {
    uuid::Uuid::from_slice(raw)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| hex::encode(raw))
}

/// Hello reports kept per device.
pub const HISTORY_KEPT: u32 = 48;

pub(super) fn seq(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl SqlStore {
    /// Whether a statement with optional `f64`s (bound; read, in the task dispatch's query)
    /// may be kept prepared. On PostgreSQL it may not: sqlx 0.8's `Any` driver sends a NULL
    /// `f64` as a NULL `float4`, and PostgreSQL keeps the parameter types a connection first
    /// prepared the statement with, so a position after a record without one was refused
    /// ("incorrect binary data format"). Unnamed statements are typed by each execution's own
    /// values. Shown by the conformance case `positions_come_and_go`. SQLite types values, not
    /// parameters: there the statement is kept (in the shapes [`cached`] keeps), and is not
    /// parsed again for each group of check-ins.
    fn keeps_nullable_floats_prepared(&self) -> bool {
        self.backend == Backend::Sqlite
    }

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
                // sqlx pings a connection when the pool hands it out, and again when it comes
                // back. On SQLite each ping is a round trip to the connection's worker thread
                // (two thread wake-ups); the one before a query checks nothing a local file can
                // lose (the one on return, kept, flushes a dropped transaction's rollback and
                // closes a connection whose worker died).
                .test_before_acquire(false)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // WAL lets readers (admin commands, the dashboard) run beside the writer.
                        // FULL costs nothing measurable at 10+ rows per transaction (limits.md).
                        for pragma in [
                            "PRAGMA busy_timeout = 10000",
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = FULL",
                            "PRAGMA foreign_keys = ON",
                            // A statement that writes many rows inside a transaction (a push's
                            // check-ins, its results) keeps a statement journal to undo itself
                            // alone; in a temporary file, each page it first touches costs a
                            // write(2): 14% of the server's CPU in a profile of the ingest
                            // flood. In memory it is a copy. The database's own journal (the
                            // WAL) and its durability are untouched. The price: a sort with no
                            // LIMIT (the reports' hazard list, a migration's index build) is
                            // held in memory instead of spilling to a file past ~2 MB; the
                            // reports read those rows into memory anyway, and what a device
                            // can send sorts at most a page (pulls) or a push (1,000 rows).
                            "PRAGMA temp_store = MEMORY",
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
            routing: std::sync::Arc::default(),
            #[cfg(feature = "test-util")]
            faults: std::sync::Arc::default(),
            #[cfg(feature = "test-util")]
            change_log_lock: true,
            groups_rewritten: std::sync::Arc::default(),
            checkpoint_cache: std::sync::Arc::default(),
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

    /// A transaction that reads, then writes. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that read first cannot upgrade once another
    /// writer committed, and fails with "database is locked" instead of waiting its turn.
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Adds what a transaction wrote to the kept counts (`store_counts`), on one of its
    /// shards. The last statement before the commit, so the shard's row is held only while the
    /// commit lands, and no transaction waits for it while holding another lock one needs.
    pub(super) async fn add_counts(
        &self,
        tx: &mut Transaction<'_, Any>,
        shard: u64,
        c: &Counted,
    ) -> Result<(), StoreError> {
        if *c == Counted::default() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO store_counts (shard, check_ins, double_taps, hazards, rejected_ops, blobs) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (shard) DO UPDATE SET \
             check_ins = store_counts.check_ins + excluded.check_ins, \
             double_taps = store_counts.double_taps + excluded.double_taps, \
             hazards = store_counts.hazards + excluded.hazards, \
             rejected_ops = store_counts.rejected_ops + excluded.rejected_ops, \
             blobs = store_counts.blobs + excluded.blobs",
        )
        .bind((shard % COUNT_SHARDS) as i64)
        .bind(c.check_ins)
        .bind(c.double_taps)
        .bind(c.hazards)
        .bind(c.rejected_ops)
        .bind(c.blobs)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The pool, for the area files.
    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool, for tests that set up or inspect rows no trait reaches.
    #[cfg(feature = "test-util")]
    pub fn raw_pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Appends to the change log without its lock, so commits can land out of position order
    /// (only to show, in a test, the skipped change the lock prevents).
    #[cfg(feature = "test-util")]
    pub fn without_change_log_lock(mut self) -> Self {
        self.change_log_lock = false;
        self
    }

    /// Whether appends take the change log's lock (always, outside that test).
    fn change_log_locked(&self) -> bool {
        #[cfg(feature = "test-util")]
        return self.change_log_lock;
        #[cfg(not(feature = "test-util"))]
        true
    }

    /// The fault points armed on this store (tests).
    #[cfg(feature = "test-util")]
    pub(super) fn faults(&self) -> &FaultPoints {
        &self.faults
    }
}

/// Shards of `store_counts`. The PostgreSQL writer counts allowed (`config::INGEST_WRITERS`)
/// divide it, so each writer's groups land on shards of their own.
const COUNT_SHARDS: u64 = 16;

/// Rows a transaction added to the tables whose counts are kept (`store_counts`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Counted {
    pub check_ins: i64,
    pub double_taps: i64,
    pub hazards: i64,
    pub rejected_ops: i64,
    pub blobs: i64,
}

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn stats(&self, now_ms: i64) -> Result<Stats, StoreError> {
        // The registries (bounded by the grid and the fleet) are counted; what grows with use
        // is read from the kept counts.
        let count = |sql: &'static str| {
            let pool = self.pool.clone();
            async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await }
        };
        let kept = sqlx::query(
            "SELECT CAST(COALESCE(SUM(check_ins), 0) AS BIGINT), CAST(COALESCE(SUM(double_taps), 0) AS BIGINT), \
             CAST(COALESCE(SUM(hazards), 0) AS BIGINT), CAST(COALESCE(SUM(rejected_ops), 0) AS BIGINT), \
             CAST(COALESCE(SUM(blobs), 0) AS BIGINT) FROM store_counts",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Stats {
            devices: count("SELECT COUNT(*) FROM devices").await?,
            devices_revoked: count("SELECT COUNT(*) FROM devices WHERE revoked_at IS NOT NULL")
                .await?,
            users: count("SELECT COUNT(*) FROM users").await?,
            grid_cells: count("SELECT COUNT(*) FROM grid_cells").await?,
            checkpoints: count("SELECT COUNT(*) FROM checkpoints").await?,
            check_ins: kept.try_get(0)?,
            double_taps: kept.try_get(1)?,
            hazards: kept.try_get(2)?,
            blobs: kept.try_get(4)?,
            missing_photos: count(
                "SELECT COUNT(*) FROM missing_blobs m \
                 WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = m.sha256)",
            )
            .await?,
            rejected_ops: kept.try_get(3)?,
            open_enrollment_codes: sqlx::query_scalar(
                "SELECT COUNT(*) FROM enrollment_codes WHERE used_at IS NULL AND expires_at > $1",
            )
            .bind(now_ms)
            .fetch_one(&self.pool)
            .await?,
        })
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
}
