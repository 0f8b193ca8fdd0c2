//! The device's scope as the server moves it. A grant arrives after everything that entered
//! the scope (the cells, checkpoints and every hazard entry before it, in order), so there is
//! nothing to do but tell the app; a revoke drops what left from the local views. Ops the device
//! still has queued for what left are sent anyway, and come back rejected with the reason.

use std::collections::{HashMap, HashSet};

use patrolsync_proto::scope::{ScopeChange, ScopeTarget};
use patrolsync_proto::{HazardId, Message, wire};
use sqlx::{Row, Sqlite, Transaction};

use crate::error::{local, read_failed};
use crate::{ReadError, SyncError};

/// Something entered or left the device's scope.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ScopeNotice {
    /// `true`: it entered the scope; `false`: it left, and was dropped from the local views.
    pub granted: bool,
    /// `cell` (the cell and its subtree), `hazard`, or `feed` (a reset: everything was
    /// dropped and is pulled again).
    pub kind: String,
    /// The cell's code or the hazard's id.
    pub id: String,
    /// Why: `assigned`, `unassigned`, `retired`, `transferred`, `returned`, `transfer_lost`,
    /// `transferred_elsewhere`, `routed` (a routing rule sent the user the hazard), `reset`
    /// (kind `feed`), or `unknown` (a newer server's reason).
    pub reason: String,
    /// Revokes: cells, checkpoints and hazards dropped from the device.
    pub dropped: u64,
}

/// A grid cell the device holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CellView {
    /// Code, e.g. `S1-C1`.
    pub code: String,
    /// Its parent's code; empty at the top.
    pub parent: String,
    /// Level, 1 (street) to 4 (building).
    pub level: u32,
    /// Name.
    pub name: String,
    /// Retired: its history stays, it takes no new records.
    pub retired: bool,
    /// Its boundary as GeoJSON geometry text (WGS-84), to draw the map; `None` when unknown.
    pub boundary: Option<String>,
}

impl crate::Client {
    /// The grid cells in the device's scope, as last pulled, by code.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the
    /// network.
    pub async fn cells(&self) -> Result<Vec<CellView>, ReadError> {
        let rows = sqlx::query(
            "SELECT code, parent, level, name, retired, boundary FROM cells ORDER BY code",
        )
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        Ok(rows
            .iter()
            .map(|r| CellView {
                code: r.get(0),
                parent: r.get(1),
                level: u32::try_from(r.get::<i64, _>(2)).unwrap_or(0),
                name: r.get(3),
                retired: r.get::<i64, _>(4) != 0,
                boundary: r.get(5),
            })
            .collect())
    }
}

/// Drops everything the device holds of its cells (cells, checkpoints, key units, households,
/// escalations, and every hazard op but the device's own `own` ones, which its outbox may
/// still hold) and starts its pull over: for a phone that learned it is revoked (it may be a
/// lost one) and for one enrolled again over an old identity. Returns the rows dropped.
pub(crate) async fn drop_held(
    tx: &mut sqlx::SqliteConnection,
    own: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let mut dropped = 0;
    for table in [
        "cells",
        "checkpoints",
        "units",
        "households",
        "escalations",
        "reminders",
    ] {
        dropped += sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    dropped += sqlx::query("DELETE FROM hazard_ops WHERE device_id IS NOT ?1 OR ?1 IS NULL")
        .bind(own)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query(
        "UPDATE pull_state SET cursor = 0, bootstrapped = 0, backfill_after = 0, feed = '' \
         WHERE id = 1",
    )
    .execute(&mut *tx)
    .await?;
    Ok(dropped)
}

/// The server says the device's cursor belongs to another feed than its user's now (a new role
/// or agency) or to none (a device from before feeds): drop every cell, checkpoint, hazard and
/// escalation, and pull `feed` from the start. Ops still queued stay queued.
pub(crate) async fn reset(db: &sqlx::SqlitePool, feed: &str) -> Result<ScopeNotice, SyncError> {
    let mut tx = db.begin().await.map_err(local)?;
    let mut dropped = 0;
    for table in [
        "cells",
        "checkpoints",
        "units",
        "households",
        "hazard_ops",
        "escalations",
        "reminders",
    ] {
        dropped += sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await
            .map_err(local)?
            .rows_affected();
    }
    sqlx::query(
        "UPDATE pull_state SET cursor = 0, bootstrapped = 0, backfill_after = 0, feed = ? \
         WHERE id = 1",
    )
    .bind(feed)
    .execute(&mut *tx)
    .await
    .map_err(local)?;
    tx.commit().await.map_err(local)?;
    tracing::info!(
        feed,
        dropped,
        "the server reset this device's scope; pulling it again"
    );
    Ok(ScopeNotice {
        granted: false,
        kind: "feed".into(),
        id: feed.to_owned(),
        reason: "reset".into(),
        dropped,
    })
}

/// Applies one scope entry inside the page's transaction.
pub(crate) async fn apply(
    tx: &mut Transaction<'_, Sqlite>,
    w: &wire::ScopeChange,
) -> Result<ScopeNotice, SyncError> {
    let change = ScopeChange::from_wire(w.clone()).map_err(|e| local(e.message))?;
    let (kind, id) = match &change.target {
        ScopeTarget::Cell { code, .. } => ("cell", code.clone()),
        ScopeTarget::Hazard(h) => ("hazard", h.to_string()),
    };
    let dropped = if change.grant {
        0
    } else {
        match &change.target {
            ScopeTarget::Cell { code, path } => drop_cell(tx, code, path, &change.keep).await?,
            ScopeTarget::Hazard(h) => drop_hazards(tx, &[*h]).await?,
        }
    };
    Ok(ScopeNotice {
        granted: change.grant,
        kind: kind.into(),
        id,
        reason: change.reason.map_or("unknown", |r| r.as_str()).into(),
        dropped,
    })
}

/// Drops the subtree of `code` but what lies under a cell in `keep` (nothing when `keep` holds
/// the cell or one above it): its cells, their checkpoints and their hazards.
async fn drop_cell(
    tx: &mut Transaction<'_, Sqlite>,
    code: &str,
    path: &str,
    keep: &[String],
) -> Result<u64, SyncError> {
    let path = patrolsync_proto::CellPath::from(path);
    if keep.iter().any(|k| path.passes(k)) {
        return Ok(0);
    }
    let mut children: HashMap<String, Vec<String>> = HashMap::new();
    for r in sqlx::query("SELECT code, parent FROM cells")
        .fetch_all(&mut **tx)
        .await
        .map_err(local)?
    {
        children
            .entry(r.get::<String, _>(1))
            .or_default()
            .push(r.get(0));
    }
    let mut gone: HashSet<String> = HashSet::new();
    let mut next = vec![code.to_owned()];
    while let Some(c) = next.pop() {
        if keep.contains(&c) || !gone.insert(c.clone()) {
            continue;
        }
        next.extend(children.remove(&c).unwrap_or_default());
    }
    let mut dropped = 0;
    let mut hazards = Vec::new();
    for r in sqlx::query("SELECT hazard_id, payload FROM hazard_ops WHERE kind = 'report'")
        .fetch_all(&mut **tx)
        .await
        .map_err(local)?
    {
        let report =
            wire::HazardReport::decode(r.get::<Vec<u8>, _>(1).as_slice()).map_err(local)?;
        if gone.contains(&report.grid_cell)
            && let Some(h) = HazardId::from_slice(&r.get::<Vec<u8>, _>(0))
        {
            hazards.push(h);
        }
    }
    dropped += drop_hazards(tx, &hazards).await?;
    // Tasks of the cells that left, with every step (a household's address, a caller's
    // position): the same table, under the task's id.
    for r in sqlx::query("SELECT hazard_id, payload FROM hazard_ops WHERE kind = 'task'")
        .fetch_all(&mut **tx)
        .await
        .map_err(local)?
    {
        let task = wire::Task::decode(r.get::<Vec<u8>, _>(1).as_slice()).map_err(local)?;
        if gone.contains(&task.grid_cell) {
            dropped += sqlx::query(
                "DELETE FROM hazard_ops WHERE hazard_id = ? AND kind IN ('task', 'task_event')",
            )
            .bind(r.get::<Vec<u8>, _>(0))
            .execute(&mut **tx)
            .await
            .map_err(local)?
            .rows_affected()
            .min(1);
        }
    }
    for c in &gone {
        // Escalations to a cell that left (of hazards that stay, in a kept cell below it).
        sqlx::query("DELETE FROM escalations WHERE to_cell = ?")
            .bind(c)
            .execute(&mut **tx)
            .await
            .map_err(local)?;
        dropped += sqlx::query("DELETE FROM checkpoints WHERE cell = ?")
            .bind(c)
            .execute(&mut **tx)
            .await
            .map_err(local)?
            .rows_affected();
        for table in ["units", "households"] {
            dropped += sqlx::query(&format!("DELETE FROM {table} WHERE cell = ?"))
                .bind(c)
                .execute(&mut **tx)
                .await
                .map_err(local)?
                .rows_affected();
        }
        dropped += sqlx::query("DELETE FROM cells WHERE code = ?")
            .bind(c)
            .execute(&mut **tx)
            .await
            .map_err(local)?
            .rows_affected();
    }
    Ok(dropped)
}

/// Drops hazards with every op and escalation the device holds of them; returns how many it
/// held.
async fn drop_hazards(
    tx: &mut Transaction<'_, Sqlite>,
    hazards: &[HazardId],
) -> Result<u64, SyncError> {
    let mut n = 0;
    for h in hazards {
        let ops = sqlx::query("DELETE FROM hazard_ops WHERE hazard_id = ?")
            .bind(h.to_bytes())
            .execute(&mut **tx)
            .await
            .map_err(local)?
            .rows_affected();
        for table in ["escalations", "reminders"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE hazard_id = ?"))
                .bind(h.to_bytes())
                .execute(&mut **tx)
                .await
                .map_err(local)?;
        }
        n += u64::from(ops > 0);
    }
    Ok(n)
}
