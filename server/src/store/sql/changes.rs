//! The change log: entries appended at the end of a write, in commit order.

use super::*;

/// A change-log entry to append when the transaction ends.
pub(crate) struct PendingChange {
    pub(crate) cell_path: String,
    pub(crate) kind: ChangeKind,
    pub(crate) entity_key: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) device: String,
    pub(crate) role: String,
    pub(crate) hlc: Hlc,
    /// Older entries of the same entity are superseded (grid records; not hazard entries).
    pub(crate) supersedes: bool,
    /// A scope grant or revoke: the one audience it is for, and the grant row it opens or
    /// closes at its position.
    pub(crate) scope: Option<super::scope::ScopeRow>,
    /// An entry for one feed alone that opens no grant (a reminder to a routed party).
    pub(crate) audience: Option<String>,
    /// A feed to wake besides the devices of the cell: the party a hazard was routed to (its
    /// entries reach it through its grant, not its cells). Not stored.
    pub(crate) wake: Option<String>,
}

impl PendingChange {
    /// The one feed the entry is for, if it is for one alone.
    pub(crate) fn addressed_to(&self) -> Option<&str> {
        self.scope
            .as_ref()
            .map(|s| s.audience.as_str())
            .or(self.audience.as_deref())
    }

    /// An entry the server or an admin makes (grid, escalation, template): no device, the admin
    /// role, no HLC of its own.
    pub(super) fn admin(
        cell_path: String,
        kind: ChangeKind,
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
            audience: None,
            wake: None,
        }
    }
}

/// Serialises change-log appends on PostgreSQL so positions are handed out in commit order.
const CHANGE_LOG_LOCK: i64 = 0x7061_7472_6f6c;

/// Changes a committed write must log before PostgreSQL's statistics on its tables are refreshed
/// ([`SqlStore::refresh_statistics`]).
const BULK_CHANGES: usize = 1000;

impl SqlStore {
    /// Serialises a transaction that moves scope (assignments, retirements) with every other
    /// writer of the change log, from its first read: on PostgreSQL two such transactions
    /// reading assignments and grants under READ COMMITTED could each grant or revoke from a
    /// view the other just changed. (SQLite's writers are serialised by `BEGIN IMMEDIATE`.)
    pub(super) async fn lock_scope(&self, tx: &mut Transaction<'_, Any>) -> Result<(), StoreError> {
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

    /// Appends `changes` to the log and commits `tx`; after a bulk write (an import, a large
    /// subtree retired), refreshes PostgreSQL's statistics on `tables`, the ones it filled
    /// ([`Self::refresh_statistics`]).
    pub(super) async fn commit_with_changes(
        &self,
        mut tx: Transaction<'_, Any>,
        changes: &[PendingChange],
        now_ms: i64,
        tables: &[&str],
    ) -> Result<(), StoreError> {
        self.append_changes(&mut tx, changes, now_ms).await?;
        tx.commit().await?;
        self.refresh_statistics(tables, changes.len()).await;
        Ok(())
    }

    /// After a bulk write has committed, refreshes PostgreSQL's statistics on the tables it
    /// filled, when it logged at least [`BULK_CHANGES`] changes. Until
    /// autovacuum gets to them (a minute or more later), the planner takes the change log to be
    /// as small as before the import: a city-wide manager's first pull then read every page as
    /// a bitmap scan of the whole imported range plus a sort, 36 ms a page instead of an index
    /// walk that stops at the page's limit. SQLite keeps no statistics unless asked. A failed
    /// refresh is logged: the import itself has committed.
    async fn refresh_statistics(&self, tables: &[&str], logged: usize) {
        if self.backend != Backend::Postgres || logged < BULK_CHANGES {
            return;
        }
        // SKIP_LOCKED: a table another session is analysing or vacuuming is left to it, so an
        // import that has committed never waits here.
        let sql = format!("ANALYZE (SKIP_LOCKED) {}", tables.join(", "));
        if let Err(e) = sqlx::query(&sql).execute(self.pool()).await {
            tracing::warn!(error = %e, "refreshing statistics after an import failed");
        }
    }

    /// Appends changes to the log; returns the last position (0 if none). On PostgreSQL an
    /// advisory lock held to commit makes positions follow commit order, so a reader that saw
    /// position N has seen every position below N.
    pub(super) async fn append_changes(
        &self,
        tx: &mut Transaction<'_, Any>,
        changes: &[PendingChange],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        if changes.is_empty() {
            return Ok(0);
        }
        if self.backend == Backend::Postgres && self.change_log_locked() {
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
            let mut q =
                sqlx::query(&sql).persistent(cached(chunk.len(), RESULT_ROWS_PER_STATEMENT));
            for c in chunk {
                q = q
                    .bind(c.cell_path.clone())
                    .bind(c.kind.as_str())
                    .bind(c.entity_key.clone())
                    .bind(c.payload.clone())
                    .bind(c.device.clone())
                    .bind(c.role.clone())
                    .bind(seq(c.hlc.wall_ms))
                    .bind(i64::from(c.hlc.logical))
                    .bind(now_ms)
                    .bind(c.addressed_to().map(str::to_owned));
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
}
