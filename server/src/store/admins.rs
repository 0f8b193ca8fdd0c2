//! Who administers the server and what they did: named admin accounts with a role and
//! optionally a subtree, each with its own token (kept only as its SHA-256, revocable, with an
//! expiry), and the audit log, an append-only hash chain of every admin action.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreError;

/// What an admin may do. Each role may do what the ones before it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Read: the fleet, logs, reports and ledgers.
    Viewer,
    /// And change devices and the grid: enroll, revoke, assign, import.
    Operator,
    /// And administer admins and settings.
    Owner,
}

impl AdminRole {
    /// The name in the store, the CLI and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Viewer => "viewer",
            AdminRole::Operator => "operator",
            AdminRole::Owner => "owner",
        }
    }
}

impl std::str::FromStr for AdminRole {
    type Err = patrolsync_i18n::Text;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(AdminRole::Viewer),
            "operator" => Ok(AdminRole::Operator),
            "owner" => Ok(AdminRole::Owner),
            _ => Err(patrolsync_i18n::text!(
                "unknown-choice",
                what = "--role",
                value = s,
                known = "viewer, operator, owner"
            )),
        }
    }
}

/// A named admin account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminAccount {
    /// Name.
    pub name: String,
    /// Role.
    pub role: AdminRole,
    /// The root of the subtree it sees and changes (`None`: the whole grid).
    pub cell: Option<String>,
    /// When it was created, ms, and by whom.
    pub created_at_ms: i64,
    /// Who created it.
    pub created_by: String,
    /// When its token stops working, ms.
    pub expires_at_ms: Option<i64>,
    /// When it was revoked, ms.
    pub revoked_at_ms: Option<i64>,
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position, from 1.
    pub seq: i64,
    /// When, ms.
    pub at_ms: i64,
    /// Who: an admin's name, `local:USER` for the CLI on the data dir, or `bootstrap` for the
    /// data dir's admin.token.
    pub actor: String,
    /// From where: the HTTP client's address, or `cli`.
    pub source: String,
    /// What: `enroll`, `revoke`, `assign`, `import_grid`, `export`, `admin_add`, …
    pub action: String,
    /// On what (a device, a user and cell, a file, a ledger and period, …).
    pub target: String,
    /// `ok`, or the error.
    pub outcome: String,
    /// Hash of this entry and the one before it, hex.
    pub hash: String,
}

/// An action to append to the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Who.
    pub actor: String,
    /// From where.
    pub source: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// `ok`, or the error.
    pub outcome: String,
}

/// The chain hash of an entry: SHA-256 over the previous hash and the entry's fields, each
/// length-prefixed, so no two entries hash alike by shifting text between fields.
pub fn audit_hash(prev: &[u8; 32], seq: i64, at_ms: i64, r: &AuditRecord) -> [u8; 32] {
    let mut d = ring::digest::Context::new(&ring::digest::SHA256);
    d.update(prev);
    d.update(&seq.to_be_bytes());
    d.update(&at_ms.to_be_bytes());
    for field in [&r.actor, &r.source, &r.action, &r.target, &r.outcome] {
        d.update(&(field.len() as u64).to_be_bytes());
        d.update(field.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(d.finish().as_ref());
    out
}

/// Admin accounts and the audit log.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Creates an admin whose token hashes to `token_sha256`. The cell, if any, must exist.
    async fn add_admin(
        &self,
        account: &AdminAccount,
        token_sha256: &[u8; 32],
    ) -> Result<(), StoreError>;

    /// Every admin account, by name.
    async fn admins(&self) -> Result<Vec<AdminAccount>, StoreError>;

    /// The account whose token hashes to `token_sha256`, revoked or expired ones included (the
    /// caller says which).
    async fn admin_by_token(
        &self,
        token_sha256: &[u8; 32],
    ) -> Result<Option<AdminAccount>, StoreError>;

    /// Revokes `name`'s token at `now_ms` (idempotent: the first time stays).
    async fn revoke_admin(&self, name: &str, now_ms: i64) -> Result<AdminAccount, StoreError>;

    /// The path of `cell` (`/S1/S1-C1/`), for an admin's subtree.
    async fn cell_path(&self, cell: &str) -> Result<String, StoreError>;

    /// Devices whose user is assigned a cell under `path`.
    async fn devices_under(&self, path: &str) -> Result<Vec<String>, StoreError>;

    /// Appends `r` to the audit log at `now_ms`, chained to the entry before it.
    async fn audit(&self, r: &AuditRecord, now_ms: i64) -> Result<AuditEntry, StoreError>;

    /// Audit entries from `since_ms` on (of `actor` only, if given), oldest first, at most
    /// `limit`.
    async fn audit_log(
        &self,
        since_ms: Option<i64>,
        actor: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, StoreError>;

    /// Recomputes the whole chain: the number of entries, and the first whose hash does not
    /// follow from the one before it (`None`: the chain holds).
    async fn verify_audit(&self) -> Result<(i64, Option<i64>), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_and_the_entry_before() {
        let r = AuditRecord {
            actor: "li".into(),
            source: "cli".into(),
            action: "revoke".into(),
            target: "device 1".into(),
            outcome: "ok".into(),
        };
        let h = audit_hash(&[0; 32], 1, 5, &r);
        assert_ne!(h, audit_hash(&[1; 32], 1, 5, &r), "the entry before");
        assert_ne!(h, audit_hash(&[0; 32], 2, 5, &r), "the position");
        let shifted = AuditRecord {
            actor: "lic".into(),
            source: "li".into(),
            ..r.clone()
        };
        assert_ne!(
            h,
            audit_hash(&[0; 32], 1, 5, &shifted),
            "text shifted between fields"
        );
        assert_eq!(h, audit_hash(&[0; 32], 1, 5, &r));
    }
}
