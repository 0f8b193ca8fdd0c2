//! The grid map over HTTP: one level of the grid (the top cells, or the cells under one) with
//! their boundaries, each with its cadence compliance this period and its open and overdue
//! hazards; the checkpoints as points from the compound level down; the hazard trend (weekly
//! counts by category over the last twelve weeks); and the early warnings (open hazards within
//! three days of their deadline or past it, and cells falling behind their cadence).
// A refusal is the HTTP response to send, built once per refused request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Datelike, Duration};
use patrolsync_proto::hazard::fold;
use serde::{Deserialize, Serialize};

use super::{Admin, AdminState, json_error, json_text, store_error};
use crate::report::{self, Period};

/// `?cell=&period=` of the map.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapQuery {
    /// The cell whose children are drawn (default: the admin's root, or the top cells).
    cell: Option<String>,
    /// The compliance period (default: this month).
    period: Option<String>,
}

/// One drawn cell.
#[derive(Debug, Serialize)]
struct Area {
    code: String,
    name: String,
    level: u8,
    /// GeoJSON geometry, or null.
    boundary: serde_json::Value,
    due: u64,
    inspected: u64,
    rate: Option<f64>,
    open_hazards: i64,
    overdue_hazards: i64,
}

/// A point drawn on the map: a checkpoint, or a key unit (at its first checkpoint).
#[derive(Debug, Serialize)]
struct Point {
    kind: &'static str,
    code: String,
    cell: String,
    latitude: f64,
    longitude: f64,
}

/// An open hazard near or past its deadline.
#[derive(Debug, Serialize)]
struct NearDeadline {
    id: String,
    cell: String,
    category: String,
    status: String,
    deadline_ms: i64,
    overdue: bool,
}

/// Cells whose compliance this period is under this, with at least `BEHIND_MIN_DUE` due.
const BEHIND_RATE: f64 = 0.6;
const BEHIND_MIN_DUE: u64 = 5;
/// How close to its deadline an open hazard is warned of.
const NEAR_MS: i64 = 3 * 24 * 3600 * 1000;

/// `GET /api/map?cell=&period=`.
pub async fn map(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<MapQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let asked = q.cell.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let cell = match admin.cell(&s, asked).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cal = match s.reports.calendar() {
        Ok(c) => c,
        Err(t) => return json_text(StatusCode::INTERNAL_SERVER_ERROR, &t),
    };
    let now = crate::clock::now_ms();
    let today = cal.date(now);
    let period: Period = match q.period.as_deref() {
        Some(p) => match p.parse() {
            Ok(p) => p,
            Err(t) => return json_text(StatusCode::BAD_REQUEST, &t),
        },
        None => format!("{}-{:02}", today.year(), today.month())
            .parse()
            .expect("a month is a period"),
    };
    match build(&s, &cal, cell.as_deref(), &period, now).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => store_error(e),
    }
}

async fn build(
    s: &AdminState,
    cal: &report::Calendar,
    cell: Option<&str>,
    period: &Period,
    now: i64,
) -> Result<serde_json::Value, crate::store::StoreError> {
    let children = s.db.map_cells(cell).await?;
    let compliance = report::compliance(
        s.db.as_ref(),
        cal,
        &s.reports.anomaly_rules(),
        period,
        cell,
        now,
    )
    .await?;
    let counts = s.store.hazard_counts(now).await?;
    let mut areas = Vec::with_capacity(children.len());
    for c in &children {
        let row = compliance.rows.iter().find(|r| r.cell == c.code);
        let (mut open, mut overdue) = (0, 0);
        for h in counts
            .iter()
            .filter(|h| patrolsync_proto::grid::covers(&c.path, &h.cell_path))
        {
            if !matches!(h.status.as_str(), "closed" | "merged" | "acknowledged") {
                open += h.count;
            }
            overdue += h.overdue;
        }
        areas.push(Area {
            code: c.code.clone(),
            name: c.name.clone(),
            level: c.level,
            boundary: c
                .boundary
                .as_deref()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(serde_json::Value::Null),
            due: row.map_or(0, |r| r.counts.due),
            inspected: row.map_or(0, |r| r.counts.inspected),
            rate: row.and_then(|r| r.rate),
            open_hazards: open,
            overdue_hazards: overdue,
        });
    }
    // Points: the checkpoints, from a compound down (a street's would be thousands of dots).
    let level = match cell {
        None => 0,
        Some(_) => children.first().map_or(4, |c| c.level.saturating_sub(1)),
    };
    let mut points: Vec<Point> = Vec::new();
    if level >= 3 {
        let checkpoints = s.db.report_checkpoints(cell, now).await?;
        let place: std::collections::HashMap<&str, (f64, f64)> = checkpoints
            .iter()
            .filter_map(|c| c.place.map(|(lat, lon, _)| (c.code.as_str(), (lat, lon))))
            .collect();
        for u in s.db.units(cell).await? {
            if let Some((latitude, longitude)) = u
                .checkpoints
                .iter()
                .find_map(|c| place.get(c.as_str()).copied())
            {
                points.push(Point {
                    kind: "unit",
                    code: u.code,
                    cell: u.cell,
                    latitude,
                    longitude,
                });
            }
        }
        points.extend(
            checkpoints
                .iter()
                .filter(|c| c.retired_at_ms.is_none())
                .filter_map(|c| {
                    c.place.map(|(latitude, longitude, _)| Point {
                        kind: "checkpoint",
                        code: c.code.clone(),
                        cell: c.cell.clone(),
                        latitude,
                        longitude,
                    })
                }),
        );
    }
    // The last twelve weeks' reports by week and category; open hazards near their deadline.
    let this_week = cal.slot(crate::calendar::Cadence::Weekly, cal.date(now)).0;
    let first_week = this_week - Duration::weeks(11);
    let from_ms = cal.start_ms(first_week);
    let mut trend: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for w in 0..12 {
        trend.insert(
            (first_week + Duration::weeks(w)).to_string(),
            BTreeMap::new(),
        );
    }
    let mut near = Vec::new();
    for h in s.db.report_hazards(cell, from_ms, now + 1, now).await? {
        let ops: Vec<_> = h.log.iter().map(|e| (e.stamp, e.op.clone())).collect();
        let state = fold(h.id, &ops);
        let Some((r, _)) = &state.report else {
            continue;
        };
        if r.device_time_ms >= from_ms {
            let week = cal
                .slot(crate::calendar::Cadence::Weekly, cal.date(r.device_time_ms))
                .0
                .to_string();
            if let Some(w) = trend.get_mut(&week) {
                *w.entry(state.category.value.as_str().to_owned())
                    .or_default() += 1;
            }
        }
        if let Some(d) = state.deadline_ms.value
            && state.status.is_open()
            && d < now + NEAR_MS
        {
            near.push(NearDeadline {
                id: h.id.to_string(),
                cell: h.cell.clone(),
                category: state.category.value.as_str().to_owned(),
                status: state.status.as_str().to_owned(),
                deadline_ms: d,
                overdue: d < now,
            });
        }
    }
    near.sort_by_key(|n| n.deadline_ms);
    let behind: Vec<serde_json::Value> = compliance
        .rows
        .iter()
        .filter(|r| r.counts.due >= BEHIND_MIN_DUE && r.rate.is_some_and(|x| x < BEHIND_RATE))
        .map(|r| serde_json::json!({ "cell": r.cell, "name": r.name, "level": r.level, "rate": r.rate, "due": r.counts.due }))
        .collect();
    Ok(serde_json::json!({
        "cell": cell,
        "period": period.label,
        "as_of_ms": now,
        "areas": areas,
        "points": points,
        "trend": trend.into_iter().map(|(week, counts)| serde_json::json!({ "week": week, "counts": counts })).collect::<Vec<_>>(),
        "near_deadline": near,
        "behind": behind,
        "behind_rate": BEHIND_RATE,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::config::Health;
    use crate::metrics::Metrics;
    use crate::testkit::shanghai_ms;

    /// The demo city built on 1 November and nobody patrolling it: by 11 November every street
    /// is behind its cadence (ten days of daily slots missed), and the warnings say so; its
    /// trend has twelve weeks, all empty.
    #[tokio::test]
    async fn cells_falling_behind_are_warned_of() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::testkit::sqlite_store(dir.path())
            .await
            .expect("store");
        let (cells, checkpoints) = crate::seed::demo_grid();
        crate::store::GridStore::upsert_grid(
            &store,
            &cells,
            &checkpoints,
            shanghai_ms(2026, 11, 1, 0, 0),
        )
        .await
        .expect("grid");
        let state = AdminState {
            db: Arc::new(store.clone()),
            reports: crate::config::Reports::default(),
            store: Arc::new(store),
            token_sha256: [0; 32],
            draining: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::new()),
            health: Health::default(),
            public: None,
        };
        let cal = state.reports.calendar().expect("calendar");
        let period: Period = "2026-11".parse().expect("period");
        let now = shanghai_ms(2026, 11, 11, 12, 0);
        let v = build(&state, &cal, None, &period, now).await.expect("map");
        let behind: Vec<(&str, f64)> = v["behind"]
            .as_array()
            .expect("behind")
            .iter()
            .filter(|c| c["level"] == 1)
            .map(|c| {
                (
                    c["cell"].as_str().unwrap_or(""),
                    c["rate"].as_f64().unwrap_or(-1.0),
                )
            })
            .collect();
        assert_eq!(behind, [("S1", 0.0), ("S2", 0.0)], "{v}");
        let streets = v["areas"].as_array().expect("areas");
        assert!(
            streets
                .iter()
                .all(|a| a["rate"] == 0.0 && a["due"].as_u64() > Some(0)),
            "{v}"
        );
        assert_eq!(v["trend"].as_array().map(Vec::len), Some(12));
        assert!(v["near_deadline"].as_array().is_some_and(Vec::is_empty));
    }
}
