//! Logs: rejections, conflicts, missing photos, and hazards by cell.

pub use auth::Admin;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::*;

/// `?device=&limit=` of the logs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogQuery {
    device: Option<String>,
    limit: Option<u32>,
}

pub(super) fn log_query(
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Option<String>, u32), (StatusCode, String)> {
    let Query(q) = q.map_err(|e| (StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok((q.device, q.limit.unwrap_or(100).min(1000)))
}

/// A device log (`read` from the store, `?device=&limit=`), cut to the devices `admin` sees.
async fn device_log<T: serde::Serialize>(
    s: &AdminState,
    admin: &Admin,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
    read: impl AsyncFnOnce(Option<&str>, u32) -> Result<Vec<T>, StoreError>,
    device: fn(&T) -> &str,
) -> Response {
    let (wanted, limit) = match log_query(q) {
        Ok(q) => q,
        Err((status, message)) => return json_error(status, message),
    };
    let mine = match admin.devices(s).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match read(wanted.as_deref(), limit).await {
        Ok(mut rows) => {
            if let Some(mine) = mine {
                rows.retain(|r| mine.contains(device(r)));
            }
            Json(rows).into_response()
        }
        Err(e) => store_error(e),
    }
}

pub(super) async fn rejections(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let read = async |d: Option<&str>, n| s.store.rejections(d, n).await;
    device_log(&s, &admin, q, read, |r| r.device.as_str()).await
}

pub(super) async fn conflicts(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let read = async |d: Option<&str>, n| s.store.conflicts(d, n).await;
    device_log(&s, &admin, q, read, |r| r.device.as_str()).await
}

pub(super) async fn missing_photos(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let read = async |d: Option<&str>, n| s.store.missing_photos(d, n).await;
    device_log(&s, &admin, q, read, |r| r.device.as_str()).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HazardQuery {
    /// Break down this cell's children (default: the top level).
    cell: Option<String>,
}

/// Hazard counts per child cell of `cell` (or per top-level cell), by status.
pub(super) async fn hazards(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<HazardQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(mut q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    q.cell = match admin
        .cell(
            &s,
            q.cell.as_deref().map(str::trim).filter(|c| !c.is_empty()),
        )
        .await
    {
        Ok(c) => c,
        Err(r) => return r,
    };
    let counts = match s.store.hazard_counts(crate::clock::now_ms()).await {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    // Paths are "/S1/S1-C2/…/": the child of `cell` is the segment after it.
    let parent = q.cell.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let mut rows: BTreeMap<String, (BTreeMap<String, i64>, i64, i64)> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let (mut total, mut overdue) = (0i64, 0i64);
    for c in counts {
        let path = patrolsync_proto::CellPath::from(c.cell_path.as_str());
        let segments: Vec<&str> = path.codes().collect();
        let child = match parent {
            None => segments.first().copied(),
            Some(p) => match segments.iter().position(|s| *s == p) {
                // A hazard in the cell itself is listed under the cell.
                Some(i) => Some(segments.get(i + 1).copied().unwrap_or(p)),
                None => None,
            },
        };
        let Some(child) = child else { continue };
        let row = rows.entry(child.to_owned()).or_default();
        *row.0.entry(c.status.clone()).or_default() += c.count;
        row.1 += c.count;
        row.2 += c.overdue;
        *totals.entry(c.status).or_default() += c.count;
        total += c.count;
        overdue += c.overdue;
    }
    let rows: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|(cell, (by_status, total, overdue))| {
            serde_json::json!({ "cell": cell, "by_status": by_status, "total": total, "overdue": overdue })
        })
        .collect();
    Json(serde_json::json!({
        "cell": parent,
        "cells": rows,
        "by_status": totals,
        "total": total,
        "overdue": overdue,
    }))
    .into_response()
}
