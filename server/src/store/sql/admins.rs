//! Admin accounts and the hash-chained audit log.

use super::*;
use patrolsync_i18n::text;

/// Serialises audit appends on PostgreSQL (the chain needs the previous entry).
const AUDIT_LOCK: i64 = 0x6175_6469_7421;

fn account(r: &sqlx::any::AnyRow) -> Result<AdminAccount, StoreError> {
    let role: String = r.try_get(1)?;
    Ok(AdminAccount {
        name: r.try_get(0)?,
        role: role
            .parse()
            .map_err(|e: patrolsync_i18n::Text| StoreError::Corrupt(e.to_string()))?,
        cell: r.try_get(2)?,
        created_at_ms: r.try_get(3)?,
        created_by: r.try_get(4)?,
        expires_at_ms: r.try_get(5)?,
        revoked_at_ms: r.try_get(6)?,
    })
}

const ACCOUNT_COLUMNS: &str = "name, role, cell, created_at, created_by, expires_at, revoked_at";

#[async_trait]
impl AccountStore for SqlStore {
    /// Creates an admin whose token hashes to `token_sha256`. The cell, if any, must exist.
    async fn add_admin(
        &self,
        account: &AdminAccount,
        token_sha256: &[u8; 32],
    ) -> Result<(), StoreError> {
        if let Some(cell) = &account.cell {
            let known: Option<String> =
                sqlx::query_scalar("SELECT code FROM grid_cells WHERE code = $1")
                    .bind(cell)
                    .fetch_optional(self.pool())
                    .await?;
            if known.is_none() {
                return Err(StoreError::NotFound(text!("store-no-cell", cell = cell)));
            }
        }
        let taken: Option<String> = sqlx::query_scalar("SELECT name FROM admins WHERE name = $1")
            .bind(&account.name)
            .fetch_optional(self.pool())
            .await?;
        if taken.is_some() {
            return Err(StoreError::Invalid(text!(
                "store-admin-exists",
                name = account.name
            )));
        }
        sqlx::query(
            "INSERT INTO admins (name, role, cell, token_sha256, created_at, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&account.name)
        .bind(account.role.as_str())
        .bind(account.cell.clone())
        .bind(token_sha256.to_vec())
        .bind(account.created_at_ms)
        .bind(&account.created_by)
        .bind(account.expires_at_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every admin account, by name.
    async fn admins(&self) -> Result<Vec<AdminAccount>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM admins ORDER BY name"
        ))
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(account)
        .collect()
    }

    /// The account whose token hashes to `token_sha256`, revoked or expired ones included (the
    /// caller says which).
    async fn admin_by_token(
        &self,
        token_sha256: &[u8; 32],
    ) -> Result<Option<AdminAccount>, StoreError> {
        sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM admins WHERE token_sha256 = $1"
        ))
        .bind(token_sha256.to_vec())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(account)
        .transpose()
    }

    /// Revokes `name`'s token at `now_ms` (idempotent: the first time stays).
    async fn revoke_admin(&self, name: &str, now_ms: i64) -> Result<AdminAccount, StoreError> {
        sqlx::query("UPDATE admins SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
            .bind(name)
            .bind(now_ms)
            .execute(self.pool())
            .await?;
        sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM admins WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(account)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(text!("store-no-admin", name = name)))
    }

    /// The path of `cell` (`/S1/S1-C1/`), for an admin's subtree.
    async fn cell_path(&self, cell: &str) -> Result<String, StoreError> {
        let path: Option<String> =
            sqlx::query_scalar("SELECT path FROM grid_cells WHERE code = $1")
                .bind(cell)
                .fetch_optional(self.pool())
                .await?;
        path.ok_or_else(|| StoreError::NotFound(text!("store-no-cell", cell = cell)))
    }

    /// Devices whose user is assigned a cell under `path`.
    async fn devices_under(&self, path: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT d.id FROM devices d JOIN assignments a ON a.user_id = d.user_id \
             JOIN grid_cells c ON c.id = a.cell_id WHERE substr(c.path, 1, length($1)) = $1",
        )
        .bind(path)
        .fetch_all(self.pool())
        .await?)
    }

    /// Appends `r` to the audit log at `now_ms`, chained to the entry before it.
    async fn audit(&self, r: &AuditRecord, now_ms: i64) -> Result<AuditEntry, StoreError> {
        let mut tx = self.begin_locked(AUDIT_LOCK).await?;
        let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (seq, prev) = match last {
            Some(row) => {
                let hash: Vec<u8> = row.try_get(1)?;
                (
                    row.try_get::<i64, _>(0)? + 1,
                    <[u8; 32]>::try_from(hash.as_slice())
                        .map_err(|_| StoreError::Corrupt("stored audit hash".into()))?,
                )
            }
            None => (1, [0u8; 32]),
        };
        let hash = audit_hash(&prev, seq, now_ms, r);
        sqlx::query(
            "INSERT INTO audit_log (seq, at_ms, actor, source, action, target, outcome, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(seq)
        .bind(now_ms)
        .bind(&r.actor)
        .bind(&r.source)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.outcome)
        .bind(hash.to_vec())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AuditEntry {
            seq,
            at_ms: now_ms,
            actor: r.actor.clone(),
            source: r.source.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            outcome: r.outcome.clone(),
            hash: hex::encode(hash),
        })
    }

    /// Audit entries from `since_ms` on (of `actor` only, if given), oldest first, at most
    /// `limit`.
    async fn audit_log(
        &self,
        since_ms: Option<i64>,
        actor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, actor, source, action, target, outcome, hash FROM audit_log \
             WHERE at_ms >= $1 AND ($2 = '' OR actor = $2) ORDER BY seq LIMIT $3",
        )
        .bind(since_ms.unwrap_or(i64::MIN))
        .bind(actor.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let hash: Vec<u8> = r.try_get(7)?;
                Ok(AuditEntry {
                    seq: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    source: r.try_get(3)?,
                    action: r.try_get(4)?,
                    target: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                    hash: hex::encode(&hash),
                })
            })
            .collect()
    }

    /// Recomputes the whole chain: the number of entries, and the first whose hash does not
    /// follow from the one before it (`None`: the chain holds).
    async fn verify_audit(&self) -> Result<(i64, Option<i64>), StoreError> {
        let entries = self.audit_log(None, None, u32::MAX).await?;
        let mut prev = [0u8; 32];
        for (expected_seq, e) in (1..).zip(&entries) {
            let r = AuditRecord {
                actor: e.actor.clone(),
                source: e.source.clone(),
                action: e.action.clone(),
                target: e.target.clone(),
                outcome: e.outcome.clone(),
            };
            let hash = audit_hash(&prev, e.seq, e.at_ms, &r);
            if e.seq != expected_seq || hex::encode(hash) != e.hash {
                return Ok((entries.len() as i64, Some(e.seq)));
            }
            prev = hash;
        }
        Ok((entries.len() as i64, None))
    }
}
