//! The server's side of what a phone shows, to check one against the other:
//! `admin hazard show ID` (the hazard folded from the server's log, its history with conflicts,
//! and whether its hash chain verifies) and `admin scope --device ID` (what the device should
//! hold).

use patrolsync_proto::HazardId;
use patrolsync_proto::hazard::{HazardOp, Stamp, chain_hash, fold};
use serde::Serialize;

use super::*;
use crate::store::Store;
use crate::store::{AdminStore, StoreError};
use patrolsync_i18n::text;

/// A hazard as the server folds it from its log.
#[derive(Debug, Serialize)]
pub struct HazardDetail {
    /// Id.
    pub id: String,
    /// Its cell.
    pub cell: String,
    /// Status in the closed loop.
    pub status: String,
    /// Category, severity, handling, description, deadline (registers, last writer wins).
    pub category: String,
    /// `general` or `major`.
    pub severity: String,
    /// `on_the_spot` or `by_deadline`.
    pub handling: String,
    /// What was seen.
    pub description: String,
    /// Deadline, Unix ms.
    pub deadline_ms: Option<i64>,
    /// The agency holding it.
    pub agency: Option<String>,
    /// Merged into this hazard.
    pub duplicate_of: Option<String>,
    /// Entries in its log.
    pub log_len: usize,
    /// Hash of the last entry, hex.
    pub chain_head: String,
    /// Every entry's hash recomputed from the one before matches the stored one.
    pub chain_verified: bool,
    /// Every event in fold order, applied or not.
    pub history: Vec<HistoryLine>,
}

/// One event of a hazard's history.
#[derive(Debug, Serialize)]
pub struct HistoryLine {
    /// HLC wall time of the event (device clock, corrected by HLC), Unix ms.
    pub at_ms: u64,
    /// The device that made it.
    pub device: String,
    /// The transition.
    pub kind: String,
    /// The actor's role.
    pub role: String,
    /// Status before and after.
    pub from: String,
    /// Equal to `from` for a conflict.
    pub to: String,
    /// Why it did not apply.
    pub conflict: Option<String>,
}

/// The hazard `id` folded from the server's log.
pub async fn hazard_detail(store: &dyn Store, id: &str) -> anyhow::Result<HazardDetail> {
    let hazard: HazardId = id
        .parse()
        .map_err(|_| anyhow::anyhow!("{}", say!("cli-not-hazard-id", id = id)))?;
    let summary = store
        .hazard(hazard)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{}", say!("cli-no-hazard", hazard = hazard)))?;
    let log = store.hazard_log(hazard).await?;
    let mut head = [0u8; 32];
    let mut verified = true;
    let mut ops: Vec<(Stamp, HazardOp)> = Vec::with_capacity(log.len());
    for e in &log {
        head = chain_hash(&head, e.position, &e.kind, e.stamp, e.role, &e.payload);
        verified &= head == e.hash;
        ops.push((
            e.stamp,
            HazardOp::decode(&e.kind, &e.payload, e.role).map_err(|i| {
                crate::store::StoreError::Corrupt(format!(
                    "hazard log entry {}: {}",
                    e.position, i.message
                ))
            })?,
        ));
    }
    let state = fold(hazard, &ops);
    Ok(HazardDetail {
        id: hazard.to_string(),
        cell: summary.cell,
        status: state.status.as_str().into(),
        category: state.category.value.as_str().into(),
        severity: state.severity.value.as_str().into(),
        handling: state.handling.value.as_str().into(),
        description: state.description.value.clone(),
        deadline_ms: state.deadline_ms.value,
        agency: state.agency.map(|a| a.as_str().to_owned()),
        duplicate_of: state.duplicate_of.map(|h| h.to_string()),
        log_len: log.len(),
        chain_head: log.last().map(|e| hex::encode(e.hash)).unwrap_or_default(),
        chain_verified: verified,
        history: state
            .history
            .iter()
            .map(|h| HistoryLine {
                at_ms: h.stamp.hlc.wall_ms,
                device: h.stamp.device.to_string(),
                kind: h.kind.as_str().into(),
                role: h.role.as_str().into(),
                from: h.from.as_str().into(),
                to: h.to.as_str().into(),
                conflict: h.conflict.clone(),
            })
            .collect(),
    })
}

/// Prints `d` for a terminal, in the run's language.
pub fn print_hazard(d: &HazardDetail) {
    let word = super::word;
    let mut lines = vec![
        say!("cli-hazard-id", id = d.id, cell = d.cell),
        say!(
            "cli-hazard-status",
            status = word("state", &d.status),
            held = d
                .agency
                .as_deref()
                .map(|a| say!("cli-hazard-held", agency = word("agency", a)))
                .unwrap_or_default()
        ),
        say!(
            "cli-hazard-fields",
            category = word("category", &d.category),
            severity = word("severity", &d.severity),
            handling = word("handling", &d.handling),
            deadline = d
                .deadline_ms
                .map(|t| say!("cli-hazard-deadline", at = crate::calendar::time_text(t)))
                .unwrap_or_default()
        ),
        say!("cli-hazard-description", text = d.description),
    ];
    if let Some(x) = &d.duplicate_of {
        lines.push(say!("cli-hazard-merged", into = x));
    }
    lines.push(say!(
        "cli-hazard-log",
        entries = d.log_len,
        head = d.chain_head,
        verified = d.chain_verified
    ));
    for h in &d.history {
        lines.push(format!(
            "  {}  {:<14} {:<13} {} -> {}{}",
            crate::calendar::time_text(h.at_ms as i64),
            word("transition", &h.kind),
            word("role", &h.role),
            word("state", &h.from),
            word("state", &h.to),
            h.conflict
                .as_deref()
                .map(|c| format!("  {}", say!("cli-hazard-conflict", why = c)))
                .unwrap_or_default()
        ));
    }
    for line in lines {
        println!("{line}");
    }
}

/// What the device `device` (its id, or a unique prefix of 8 characters or more) should hold.
pub async fn scope_of(
    sql: &dyn AdminStore,
    device: &str,
) -> anyhow::Result<crate::store::ScopeView> {
    if device.len() < 8 {
        return Err(StoreError::Invalid(text!("store-device-id-short", device = device)).into());
    }
    let matches: Vec<_> = sql
        .devices()
        .await?
        .into_iter()
        .filter(|d| d.id.starts_with(device))
        .collect();
    let entry = match matches.as_slice() {
        [one] => one,
        [] => return Err(StoreError::NotFound(text!("store-no-device", device = device)).into()),
        _ => {
            return Err(StoreError::Invalid(text!(
                "store-device-ambiguous",
                device = device,
                n = matches.len()
            ))
            .into());
        }
    };
    let id = entry
        .id
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("stored device id {:?}", entry.id)))?;
    let session = sql
        .device_session(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(text!("store-not-enrolled", device = entry.id)))?;
    Ok(sql.scope_view(&session).await?)
}

/// Prints `v` for a terminal.
pub fn print_scope(v: &crate::store::ScopeView) {
    println!(
        "{}",
        say!(
            "cli-scope-device",
            device = v.device,
            user = v.user,
            role = super::word("role", &v.role)
        )
    );
    println!("{}", say!("cli-scope-feed", feed = v.audience));
    for g in &v.grants {
        println!(
            "{}",
            say!(
                "cli-scope-holds",
                kind = super::word("scope-kind", &g.kind),
                id = g.id,
                since = g.since
            )
        );
    }
    // The first twenty codes of a list.
    let first = |codes: &[String]| codes.iter().take(20).cloned().collect::<Vec<_>>().join(" ");
    println!(
        "{}",
        say!(
            "cli-scope-cells",
            n = v.cells.len(),
            codes = first(&v.cells)
        )
    );
    println!(
        "{}",
        say!(
            "cli-scope-checkpoints",
            n = v.checkpoints.len(),
            codes = first(&v.checkpoints)
        )
    );
    println!(
        "{}",
        say!(
            "cli-scope-units",
            n = v.units.len(),
            codes = first(&v.units)
        )
    );
    println!(
        "{}",
        say!(
            "cli-scope-households",
            n = v.households.len(),
            codes = first(&v.households)
        )
    );
    println!("{}", say!("cli-scope-hazards", n = v.hazards.len()));
    for h in &v.hazards {
        println!("  {h}");
    }
}

pub(super) async fn run(
    _config: &Config,
    sql: &Arc<dyn AdminStore>,
    store: &Arc<dyn Store>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::Hazard {
            hazard: HazardCommand::Show { id, json },
        } => {
            let detail = hazard_detail(store.as_ref(), &id).await?;
            if json {
                print_json(&detail)?;
            } else {
                print_hazard(&detail);
            }
        }
        AdminCommand::Scope { device, json } => {
            let view = scope_of(sql.as_ref(), &device).await?;
            if json {
                print_json(&view)?;
            } else {
                print_scope(&view);
            }
        }
        other => unreachable!("run_admin sends {other:?} elsewhere"),
    }
    Ok(())
}
