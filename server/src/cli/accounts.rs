//! `patrolsync admin admins …` (named admin accounts and their tokens) and
//! `patrolsync admin audit` (the hash-chained log of admin actions). Commands run on the data
//! dir act as the local operator, `local:USER`, and are audited as such.

use std::time::Duration;

use clap::Subcommand;

use super::*;
use crate::store::AccountStore;
use crate::store::admins::{AdminAccount, AdminRole, AuditRecord};

/// Admin accounts.
#[derive(Debug, Subcommand)]
pub enum AdminsCommand {
    /// Create an admin and print its token once (only its SHA-256 is kept).
    Add {
        /// Name, unique.
        name: String,
        /// `viewer` (read), `operator` (and enroll, revoke, assign, import) or `owner` (and
        /// admins and settings).
        #[arg(long, value_parser = ["viewer", "operator", "owner"])]
        role: String,
        /// Limit it to the subtree of this cell (a district's admin).
        #[arg(long)]
        cell: Option<String>,
        /// How long the token works (e.g. 90d). Default: until revoked.
        #[arg(long, value_parser = humantime::parse_duration)]
        expires: Option<Duration>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every admin: role, subtree, when created and by whom, expiry, revocation.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an admin's token at once.
    Revoke {
        /// Name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Who the CLI acts as: the local operator, by login name.
pub fn local_operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "operator".into());
    format!("local:{user}")
}

/// Appends a CLI action to the audit log.
pub async fn audit(sql: &dyn AccountStore, action: &str, target: String, outcome: String) {
    let record = AuditRecord {
        actor: local_operator(),
        source: "cli".into(),
        action: action.into(),
        target,
        outcome,
    };
    if let Err(e) = sql.audit(&record, crate::clock::now_ms()).await {
        eprintln!("{}", say!("cli-audit-unwritten", error = e));
    }
}

/// Runs an admins command.
pub async fn admins(sql: &dyn AccountStore, command: AdminsCommand) -> anyhow::Result<()> {
    match command {
        AdminsCommand::Add {
            name,
            role,
            cell,
            expires,
            json,
        } => {
            let role: AdminRole = role.parse()?;
            let now = crate::clock::now_ms();
            let token = crate::pki::new_token();
            let account = AdminAccount {
                name: name.clone(),
                role,
                cell,
                created_at_ms: now,
                created_by: local_operator(),
                expires_at_ms: expires.map(|d| now + d.as_millis() as i64),
                revoked_at_ms: None,
            };
            sql.add_admin(
                &account,
                &patrolsync_proto::digest::sha256(token.as_bytes()),
            )
            .await?;
            if json {
                super::print_json(&serde_json::json!({ "admin": account, "token": token }))?;
            } else {
                println!("{token}");
                eprintln!(
                    "{}",
                    say!(
                        "cli-admin-added",
                        name = name,
                        role = role.as_str(),
                        subtree = account
                            .cell
                            .as_deref()
                            .map_or_else(|| say!("ledger-all-cells"), str::to_owned)
                    )
                );
            }
        }
        AdminsCommand::List { json } => {
            let all = sql.admins().await?;
            if json {
                super::print_json(&all)?;
            } else if all.is_empty() {
                println!("{}", say!("cli-no-admins"));
            } else {
                println!("{}", say!("cli-admins-header"));
                for a in all {
                    println!(
                        "{:<20} {:<9} {:<14} {:<22} {:<22} {}",
                        a.name,
                        a.role.as_str(),
                        a.cell
                            .as_deref()
                            .map_or_else(|| say!("ledger-all-cells"), str::to_owned),
                        crate::calendar::time_text(a.created_at_ms),
                        a.expires_at_ms
                            .map(crate::calendar::time_text)
                            .unwrap_or_else(|| say!("dash-never")),
                        a.revoked_at_ms
                            .map(crate::calendar::time_text)
                            .unwrap_or_else(|| say!("cli-no"))
                    );
                }
            }
        }
        AdminsCommand::Revoke { name, json } => {
            let a = sql.revoke_admin(&name, crate::clock::now_ms()).await?;
            if json {
                super::print_json(&a)?;
            } else {
                println!(
                    "{}",
                    say!(
                        "cli-admin-revoked",
                        name = name,
                        at = a
                            .revoked_at_ms
                            .map(crate::calendar::time_text)
                            .unwrap_or_default()
                    )
                );
            }
        }
    }
    Ok(())
}

/// What `admins` does, for the audit log.
pub fn audited(command: &AdminsCommand) -> Option<(&'static str, String)> {
    match command {
        AdminsCommand::Add {
            name, role, cell, ..
        } => Some((
            "admin_add",
            format!(
                "{name} ({role}{})",
                cell.as_deref()
                    .map(|c| format!(", subtree {c}"))
                    .unwrap_or_default()
            ),
        )),
        AdminsCommand::Revoke { name, .. } => Some(("admin_revoke", name.clone())),
        AdminsCommand::List { .. } => None,
    }
}

/// `admin audit`: the entries, then whether the whole chain verifies.
pub async fn audit_log(
    sql: &dyn AccountStore,
    since: Option<i64>,
    actor: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let entries = sql.audit_log(since, actor, u32::MAX).await?;
    let (count, broken) = sql.verify_audit().await?;
    if json {
        super::print_json(&serde_json::json!({
            "entries": entries,
            "count": count,
            "chain_verified": broken.is_none(),
            "broken_at": broken,
        }))?;
    } else {
        for e in &entries {
            println!(
                "{:>5}  {}  {:<18} {:<22} {:<18} {}  [{}]",
                e.seq,
                crate::calendar::time_text(e.at_ms),
                e.actor,
                e.source,
                e.action,
                e.target,
                e.outcome
            );
        }
        match broken {
            None => eprintln!("{}", say!("cli-audit-verified", count = count)),
            Some(at) => eprintln!("{}", say!("cli-audit-broken", count = count, at = at)),
        }
    }
    if let Some(at) = broken {
        anyhow::bail!("{}", say!("cli-audit-chain-broken", at = at));
    }
    Ok(())
}

pub(super) async fn run(
    config: &Config,
    sql: &Arc<dyn AdminStore>,
    _store: &Arc<dyn Store>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::Admins { command } => admins(sql.as_ref(), command).await?,
        AdminCommand::Audit { since, actor, json } => {
            let (cal, _) = calendar(config)?;
            let since = since.as_deref().map(|t| cal.moment(t)).transpose()?;
            audit_log(sql.as_ref(), since, actor.as_deref(), json).await?;
        }
        other => unreachable!("run_admin sends {other:?} elsewhere"),
    }
    Ok(())
}
