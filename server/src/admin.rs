//! Admin HTTP: health and readiness probes, Prometheus `/metrics`, the sync-health dashboard
//! at `/`, and a JSON API under `/api/` that needs an admin token (the data dir's admin.token
//! is the bootstrap owner; `patrolsync admin admins add` makes named ones, each a `viewer`,
//! `operator` or `owner`, optionally limited to a subtree of the grid). Built as a plain
//! `axum::Router` so every route can be tested with `oneshot` and no socket.
//!
//! | Route | Role | What |
//! |---|---|---|
//! | `GET /` | — | the dashboard (one embedded page; it asks for the token) |
//! | `GET /healthz`, `GET /readyz` | — | liveness; readiness (503 while draining) |
//! | `GET /metrics` | — | Prometheus text exposition |
//! | `GET /api/summary` | viewer | devices by state, thresholds, counts, backlog |
//! | `GET /api/devices?state=&q=&sort=&order=&limit=&offset=` | viewer | devices with their health |
//! | `GET /api/devices/{id}` | viewer | one device (id or unique prefix): health, history, rejections, conflicts, missing photos |
//! | `POST /api/devices/{id}/revoke` | operator | revoke a device |
//! | `GET /api/rejections?device=&limit=` | viewer | the rejection log |
//! | `GET /api/conflicts?device=&limit=` | viewer | ops recorded as conflicts |
//! | `GET /api/missing-photos?device=&limit=` | viewer | photos referenced but not uploaded |
//! | `GET /api/hazards?cell=` | viewer | hazards by status, per child cell of `cell` (or per street) |
//! | `GET /api/reports/compliance?period=&cell=&as_of=` | viewer | cadence compliance (JSON) |
//! | `GET /api/reports/evaluation?period=&cell=&by=&as_of=` | viewer | performance evaluation (JSON) |
//! | `GET /api/exports/{ledger}?period=&cell=&as_of=&format=` | viewer | a ledger as CSV or XLSX |
//! | `GET /api/series` | viewer, whole grid | ingest rate, ack latency and backlog over the last hour (this node) |
//! | `GET /api/stats` | viewer, whole grid | store counts |
//! | `GET /api/audit?since=&actor=&limit=` | owner, whole grid | the audit log, and whether its chain verifies |
//! | `GET /api/admins` | owner, whole grid | admin accounts |
//!
//! An admin limited to a subtree sees only the devices of users assigned there, the logs of
//! those devices, and reports, ledgers and hazards of cells there.

mod auth;
mod reports;

pub use auth::{Admin, BOOTSTRAP, Subtree};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::config::Health;
use crate::health::{self, DeviceHealth, HealthState};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The same database, for admins, the audit log and reports.
    pub db: Arc<dyn crate::store::AdminStore>,
    /// Report periods, cadences and anomaly rules.
    pub reports: crate::config::Reports,
    /// SHA-256 of the admin token (compared digest to digest, so timing reveals nothing).
    pub token_sha256: [u8; 32],
    /// Set when the server starts draining; `/readyz` turns false first.
    pub draining: Arc<AtomicBool>,
    /// Metrics of this node.
    pub metrics: Arc<Metrics>,
    /// Health thresholds.
    pub health: Health,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/summary", get(summary))
        .route("/api/stats", get(stats))
        .route("/api/devices", get(devices))
        .route("/api/devices/{id}", get(device))
        .route("/api/devices/{id}/revoke", post(revoke))
        .route("/api/rejections", get(rejections))
        .route("/api/conflicts", get(conflicts))
        .route("/api/missing-photos", get(missing_photos))
        .route("/api/hazards", get(hazards))
        .route("/api/series", get(series))
        .route("/api/reports/compliance", get(reports::compliance))
        .route("/api/reports/evaluation", get(reports::evaluation))
        .route("/api/exports/{ledger}", get(reports::export))
        .route("/api/audit", get(reports::audit))
        .route("/api/admins", get(reports::admins))
        .with_state(state)
}

const DASHBOARD: &str = include_str!("dashboard.html");

async fn dashboard() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
            ),
        ],
        Html(DASHBOARD),
    )
        .into_response()
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

/// A JSON `{"error": …}` body with `status`.
pub(crate) fn json_error(status: StatusCode, e: impl std::fmt::Display) -> Response {
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

pub(crate) fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(_) => json_error(StatusCode::NOT_FOUND, e),
        StoreError::Invalid(_) => json_error(StatusCode::BAD_REQUEST, e),
        e => json_error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

fn json<T: serde::Serialize>(r: Result<T, StoreError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => store_error(e),
    }
}

/// The fleet classified now.
async fn fleet(
    s: &AdminState,
) -> Result<(Vec<DeviceHealth>, BTreeMap<HealthState, usize>), StoreError> {
    let statuses = s.store.device_statuses().await?;
    Ok(health::fleet(statuses, &s.health, crate::now_ms()))
}

/// The fleet an admin may see: the whole of it, or the devices of its subtree (with the counts
/// by state recomputed over them).
async fn fleet_of(
    s: &AdminState,
    admin: &Admin,
) -> Result<(Vec<DeviceHealth>, BTreeMap<HealthState, usize>), Response> {
    let mut statuses = s.store.device_statuses().await.map_err(store_error)?;
    if let Some(mine) = admin.devices(s).await? {
        statuses.retain(|d| mine.contains(&d.id));
    }
    Ok(health::fleet(statuses, &s.health, crate::now_ms()))
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let refreshed = async {
        let (devices, _) = fleet(&s).await?;
        let stats = s.store.stats(crate::now_ms()).await?;
        s.metrics.set_fleet(&devices, &stats);
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = refreshed {
        // Counters are still worth scraping; the store gauges keep their last values.
        tracing::warn!(error = %e, "metrics: could not read the store");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn stats(State(s): State<AdminState>, admin: Admin) -> Response {
    if let Err(r) = admin.require_whole_grid("the store's counts") {
        return r;
    }
    json(s.store.stats(crate::now_ms()).await)
}

async fn summary(State(s): State<AdminState>, admin: Admin) -> Response {
    let now = crate::now_ms();
    let (devices, states) = match fleet_of(&s, &admin).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let r = async {
        let stats = s.store.stats(now).await?;
        let backlog = health::backlog(&devices);
        Ok(serde_json::json!({
            "now_ms": now,
            "states": states.iter().map(|(k, v)| (k.as_str(), *v)).collect::<BTreeMap<_, _>>(),
            "thresholds": {
                "lagging_after_ms": s.health.lagging_after.as_millis() as u64,
                "silent_after_ms": s.health.silent_after.as_millis() as u64,
                "error_window_ms": s.health.error_window.as_millis() as u64,
            },
            "backlog": {
                "outbox_ops": backlog.outbox_ops,
                "oldest_pending_age_ms": backlog.oldest_pending_age_ms,
                "pending_photo_bytes": backlog.pending_photo_bytes,
                "missing_photos": stats.missing_photos,
            },
            "stats": stats,
        }))
    }
    .await;
    json(r)
}

/// `/api/devices` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceQuery {
    /// Only devices in this state.
    state: Option<String>,
    /// Substring of the id, name or user (case-insensitive).
    q: Option<String>,
    /// `state` (worst first, the default), `last_seen`, `outbox`, `oldest_pending`,
    /// `missing_photos`, `rejected`, `user`, `enrolled`.
    sort: Option<String>,
    /// `asc` or `desc` (default: the natural order of the key, worst or newest first).
    order: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// How bad a state is, for "worst first".
fn severity(s: HealthState) -> u8 {
    match s {
        HealthState::Erroring => 0,
        HealthState::Silent => 1,
        HealthState::Lagging => 2,
        HealthState::Healthy => 3,
        HealthState::Revoked => 4,
    }
}

/// Filters and sorts devices as `/api/devices` and `admin devices` do.
pub fn select_devices(
    mut devices: Vec<DeviceHealth>,
    state: Option<HealthState>,
    q: Option<&str>,
    sort: &str,
    descending: Option<bool>,
) -> Result<Vec<DeviceHealth>, String> {
    if let Some(state) = state {
        devices.retain(|d| d.state == state);
    }
    if let Some(q) = q.map(str::to_lowercase).filter(|q| !q.is_empty()) {
        devices.retain(|d| {
            d.status.id.contains(&q)
                || d.status.name.to_lowercase().contains(&q)
                || d.status.user.to_lowercase().contains(&q)
        });
    }
    // Each key has a natural direction: worst or most recent first.
    let natural_desc = match sort {
        "state" => {
            devices.sort_by_key(|d| (severity(d.state), d.since_ms.unwrap_or(i64::MAX)));
            false
        }
        "last_seen" => {
            devices.sort_by_key(|d| d.status.last_seen_at_ms.unwrap_or(i64::MIN));
            true
        }
        "outbox" => {
            devices.sort_by_key(|d| d.status.outbox_depth.unwrap_or(0));
            true
        }
        "oldest_pending" => {
            devices.sort_by_key(|d| d.status.oldest_pending_age_ms.unwrap_or(0));
            true
        }
        "missing_photos" => {
            devices.sort_by_key(|d| d.status.missing_photos);
            true
        }
        "rejected" => {
            devices.sort_by_key(|d| d.status.rejected_ops + d.status.conflicts);
            true
        }
        "user" => {
            devices.sort_by(|a, b| a.status.user.cmp(&b.status.user));
            false
        }
        "enrolled" => {
            devices.sort_by_key(|d| d.status.enrolled_at_ms);
            true
        }
        other => {
            return Err(format!(
                "unknown sort {other:?}; one of state, last_seen, outbox, oldest_pending, missing_photos, rejected, user, enrolled"
            ));
        }
    };
    if descending.unwrap_or(natural_desc) {
        devices.reverse();
    }
    Ok(devices)
}

async fn devices(
    State(s): State<AdminState>,
    admin: Admin,
    query: Result<Query<DeviceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let state = match query.state.as_deref().map(str::parse::<HealthState>) {
        None => None,
        Some(Ok(st)) => Some(st),
        Some(Err(e)) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    let descending = match query.order.as_deref() {
        None => None,
        Some("asc") => Some(false),
        Some("desc") => Some(true),
        Some(o) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("unknown order {o:?}; asc or desc"),
            );
        }
    };
    let (all, states) = match fleet_of(&s, &admin).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let sort = query.sort.as_deref().unwrap_or("state");
    let selected = match select_devices(all, state, query.q.as_deref(), sort, descending) {
        Ok(d) => d,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e),
    };
    let total = selected.len();
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(500).min(5000);
    let page: Vec<&DeviceHealth> = selected.iter().skip(offset).take(limit).collect();
    Json(serde_json::json!({
        "total": total,
        "offset": offset,
        "states": states.iter().map(|(k, v)| (k.as_str(), *v)).collect::<BTreeMap<_, _>>(),
        "devices": page,
    }))
    .into_response()
}

async fn device(State(s): State<AdminState>, admin: Admin, Path(id): Path<String>) -> Response {
    let detail =
        match health::device_detail(s.store.as_ref(), &s.health, &id, 50, crate::now_ms()).await {
            Ok(d) => d,
            Err(e) => return store_error(e),
        };
    match admin.devices(&s).await {
        Ok(Some(mine)) if !mine.contains(&detail.device.status.id) => not_yours(&admin, &id),
        Ok(_) => Json(detail).into_response(),
        Err(r) => r,
    }
}

/// What a district admin is told of a device elsewhere: the same as of one that does not exist.
fn not_yours(admin: &Admin, id: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!(
            "no device {id} among those of {}",
            admin
                .subtree
                .as_ref()
                .map_or("the grid", |t| t.cell.as_str())
        ),
    )
}

/// Revokes a device; every node closes its live connections within a poll.
async fn revoke(State(s): State<AdminState>, admin: Admin, Path(id): Path<String>) -> Response {
    if let Err(r) = admin.require(
        crate::store::admins::AdminRole::Operator,
        "revoking a device",
    ) {
        admin
            .audit(&s, "revoke", format!("device {id}"), "refused: role")
            .await;
        return r;
    }
    if let Some(mine) = match admin.devices(&s).await {
        Ok(m) => m,
        Err(r) => return r,
    } {
        let known = s.store.devices().await.unwrap_or_default();
        let target = known
            .iter()
            .filter(|d| d.id.starts_with(&id))
            .map(|d| d.id.clone())
            .collect::<Vec<_>>();
        if target.len() != 1 || !mine.contains(&target[0]) {
            admin
                .audit(
                    &s,
                    "revoke",
                    format!("device {id}"),
                    "refused: outside the subtree",
                )
                .await;
            return not_yours(&admin, &id);
        }
    }
    let r = s.store.revoke_device(&id, crate::now_ms()).await;
    let outcome = match &r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    admin
        .audit(&s, "revoke", format!("device {id}"), &outcome)
        .await;
    json(r)
}

/// `?device=&limit=` of the logs.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogQuery {
    device: Option<String>,
    limit: Option<u32>,
}

fn log_query(
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<(Option<String>, u32), (StatusCode, String)> {
    let Query(q) = q.map_err(|e| (StatusCode::BAD_REQUEST, e.body_text()))?;
    Ok((q.device, q.limit.unwrap_or(100).min(1000)))
}

async fn rejections(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (device, limit) = match log_query(q) {
        Ok(q) => q,
        Err((status, message)) => return json_error(status, message),
    };
    let mine = match admin.devices(&s).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match s.store.rejections(device.as_deref(), limit).await {
        Ok(mut rows) => {
            if let Some(mine) = mine {
                rows.retain(|r| mine.contains(&r.device));
            }
            Json(rows).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn conflicts(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (device, limit) = match log_query(q) {
        Ok(q) => q,
        Err((status, message)) => return json_error(status, message),
    };
    let mine = match admin.devices(&s).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match s.store.conflicts(device.as_deref(), limit).await {
        Ok(mut rows) => {
            if let Some(mine) = mine {
                rows.retain(|r| mine.contains(&r.device));
            }
            Json(rows).into_response()
        }
        Err(e) => store_error(e),
    }
}

async fn missing_photos(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<LogQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (device, limit) = match log_query(q) {
        Ok(q) => q,
        Err((status, message)) => return json_error(status, message),
    };
    let mine = match admin.devices(&s).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    match s.store.missing_photos(device.as_deref(), limit).await {
        Ok(mut rows) => {
            if let Some(mine) = mine {
                rows.retain(|r| mine.contains(&r.device));
            }
            Json(rows).into_response()
        }
        Err(e) => store_error(e),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HazardQuery {
    /// Break down this cell's children (default: the top level).
    cell: Option<String>,
}

/// Hazard counts per child cell of `cell` (or per top-level cell), by status.
async fn hazards(
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
    let counts = match s.store.hazard_counts(crate::now_ms()).await {
        Ok(c) => c,
        Err(e) => return store_error(e),
    };
    // Paths are "/S1/S1-C2/…/": the child of `cell` is the segment after it.
    let parent = q.cell.as_deref().map(str::trim).filter(|c| !c.is_empty());
    let mut rows: BTreeMap<String, (BTreeMap<String, i64>, i64, i64)> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let (mut total, mut overdue) = (0i64, 0i64);
    for c in counts {
        let segments: Vec<&str> = c.cell_path.split('/').filter(|p| !p.is_empty()).collect();
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

async fn series(State(s): State<AdminState>, admin: Admin) -> Response {
    if let Err(r) = admin.require_whole_grid("this node's series") {
        return r;
    }
    Json(serde_json::json!({
        "interval_ms": s.health.sample_every.as_millis() as u64,
        "samples": s.metrics.series(),
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use serde_json::Value;
    use tower::ServiceExt;

    const API: [&str; 15] = [
        "/api/reports/compliance?period=2026-11",
        "/api/reports/evaluation?period=2026-11",
        "/api/exports/inspections?period=2026-11",
        "/api/audit",
        "/api/admins",
        "/api/summary",
        "/api/stats",
        "/api/devices",
        "/api/devices/0123456789",
        "/api/rejections",
        "/api/conflicts",
        "/api/missing-photos",
        "/api/hazards",
        "/api/series",
        "/api/devices/0123456789/revoke",
    ];

    async fn state() -> (AdminState, crate::testkit::SeededFleet, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        let store = crate::store::sql::SqlStore::connect(&url)
            .await
            .expect("store");
        crate::seed::seed_demo(&store).await.expect("grid");
        let fleet = crate::testkit::seed_fleet(&store, crate::now_ms())
            .await
            .expect("fleet");
        let state = AdminState {
            db: Arc::new(store.clone()),
            reports: crate::config::Reports::default(),
            store: Arc::new(store),
            token_sha256: crate::pki::sha256(b"secret"),
            draining: Arc::new(AtomicBool::new(false)),
            metrics: Arc::new(Metrics::new()),
            health: Health::default(),
        };
        (state, fleet, dir)
    }

    fn request(method: &str, uri: &str, token: Option<&str>) -> Request<Body> {
        let mut r = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.body(Body::empty()).expect("request")
    }

    async fn call(
        app: &Router,
        method: &str,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let response = app
            .clone()
            .oneshot(request(method, uri, token))
            .await
            .expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn get_json(app: &Router, uri: &str) -> Value {
        let (status, body) = call(app, "GET", uri, Some("secret")).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    fn states_of(v: &Value) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = v["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().expect("id").to_owned(),
                    d["state"].as_str().expect("state").to_owned(),
                )
            })
            .collect();
        out.sort();
        out
    }

    #[tokio::test]
    async fn every_api_route_refuses_without_the_token_and_probes_do_not() {
        let (state, _fleet, _dir) = state().await;
        let app = router(state.clone());
        for uri in API {
            let method = if uri.ends_with("/revoke") {
                "POST"
            } else {
                "GET"
            };
            for token in [None, Some("wrong"), Some("")] {
                let (status, body) = call(&app, method, uri, token).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} with {token:?}"
                );
                assert!(body.contains("admin.token"), "{body}");
            }
        }
        for uri in ["/healthz", "/readyz", "/", "/metrics"] {
            assert_eq!(
                call(&app, "GET", uri, None).await.0,
                StatusCode::OK,
                "{uri}"
            );
        }
        let (_, page) = call(&app, "GET", "/", None).await;
        assert!(page.contains("patrolsync · sync health") && !page.contains("secret"));
        state.draining.store(true, Ordering::SeqCst);
        assert_eq!(
            call(&app, "GET", "/readyz", None).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn devices_are_listed_with_their_state_filtered_and_sorted() {
        let (state, f, _dir) = state().await;
        let app = router(state);
        let all = get_json(&app, "/api/devices").await;
        assert_eq!(all["total"], 5);
        let mut expected = vec![
            (f.healthy.id.to_string(), "healthy".to_owned()),
            (f.stuck_photo.id.to_string(), "lagging".to_owned()),
            (f.silent.id.to_string(), "silent".to_owned()),
            (f.erroring.id.to_string(), "erroring".to_owned()),
            (f.revoked.id.to_string(), "revoked".to_owned()),
        ];
        expected.sort();
        assert_eq!(states_of(&all), expected);
        // Worst first by default.
        let order: Vec<&str> = all["devices"]
            .as_array()
            .expect("devices")
            .iter()
            .map(|d| d["state"].as_str().expect("state"))
            .collect();
        assert_eq!(
            order,
            ["erroring", "silent", "lagging", "healthy", "revoked"]
        );
        for (k, n) in [
            ("healthy", 1),
            ("lagging", 1),
            ("silent", 1),
            ("erroring", 1),
            ("revoked", 1),
        ] {
            assert_eq!(all["states"][k], n, "{k}");
        }

        let lagging = get_json(&app, "/api/devices?state=lagging").await;
        assert_eq!(
            states_of(&lagging),
            vec![(f.stuck_photo.id.to_string(), "lagging".into())]
        );
        let d = &lagging["devices"][0];
        assert_eq!(d["missing_photos"], 1);
        assert_eq!(d["pending_photo_bytes"], 2_400_000);
        assert!(
            d["reasons"][0].as_str().expect("reason").contains("photo"),
            "{d}"
        );

        let by_user = get_json(&app, "/api/devices?q=ZHAO").await;
        assert_eq!(
            states_of(&by_user),
            vec![(f.silent.id.to_string(), "silent".into())]
        );
        assert_eq!(by_user["devices"][0]["outbox_depth"], 7);

        let by_seen = get_json(&app, "/api/devices?sort=last_seen&order=asc&limit=1").await;
        assert_eq!(
            by_seen["devices"][0]["id"],
            f.silent.id.to_string(),
            "oldest first"
        );
        assert_eq!(by_seen["total"], 5);

        for bad in [
            "/api/devices?state=sleepy",
            "/api/devices?sort=colour",
            "/api/devices?order=sideways",
            "/api/devices?limit=many",
            "/api/devices?bogus=1",
        ] {
            let (status, body) = call(&app, "GET", bad, Some("secret")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(body.contains("error"), "{body}");
        }
    }

    #[tokio::test]
    async fn device_detail_logs_summary_hazards_series_and_metrics() {
        let (state, f, _dir) = state().await;
        let app = router(state.clone());
        let id = f.erroring.id.to_string();
        let detail = get_json(&app, &format!("/api/devices/{}", &id[..13])).await;
        assert_eq!(detail["device"]["id"], id);
        assert_eq!(detail["device"]["state"], "erroring");
        assert_eq!(detail["device"]["rejected_ops"], 1);
        assert_eq!(detail["rejections"].as_array().expect("log").len(), 1);
        assert_eq!(detail["rejections"][0]["field"], "checkpoint");
        assert_eq!(detail["history"].as_array().expect("history").len(), 1);
        assert_eq!(detail["history"][0]["rtt_ms"], 42);
        assert_eq!(
            call(&app, "GET", "/api/devices/ffffffff-0000", Some("secret"))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&app, "GET", "/api/devices/0123", Some("secret"))
                .await
                .0,
            StatusCode::BAD_REQUEST
        );

        let stuck = get_json(&app, &format!("/api/devices/{}", f.stuck_photo.id)).await;
        assert_eq!(stuck["missing_photos"][0]["sha256"], f.stuck_sha256);

        let rejections = get_json(&app, &format!("/api/rejections?device={id}")).await;
        assert_eq!(rejections.as_array().expect("list").len(), 1);
        let none = get_json(&app, &format!("/api/rejections?device={}", f.healthy.id)).await;
        assert_eq!(none.as_array().expect("list").len(), 0);
        assert_eq!(
            get_json(&app, "/api/conflicts")
                .await
                .as_array()
                .expect("list")
                .len(),
            0
        );
        let missing = get_json(&app, "/api/missing-photos").await;
        assert_eq!(missing[0]["sha256"], f.stuck_sha256);
        assert_eq!(missing[0]["device"], f.stuck_photo.id.to_string());

        let summary = get_json(&app, "/api/summary").await;
        assert_eq!(summary["states"]["silent"], 1);
        assert_eq!(summary["backlog"]["outbox_ops"], 7);
        assert_eq!(summary["backlog"]["missing_photos"], 1);
        assert_eq!(summary["stats"]["check_ins"], 2);

        let hazards = get_json(&app, "/api/hazards").await;
        assert_eq!(hazards["total"], 0);
        assert_eq!(
            call(&app, "GET", "/api/hazards?cell=S1&x=1", Some("secret"))
                .await
                .0,
            StatusCode::BAD_REQUEST
        );

        state
            .metrics
            .sample(crate::now_ms(), std::time::Duration::from_secs(10));
        let series = get_json(&app, "/api/series").await;
        assert_eq!(series["samples"].as_array().expect("samples").len(), 1);

        let (status, text) = call(&app, "GET", "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("parses as Prometheus text");
        let gauge = |name: &str, label: Option<(&str, &str)>| {
            scrape
                .samples
                .iter()
                .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                })
        };
        for st in ["healthy", "lagging", "silent", "erroring", "revoked"] {
            assert_eq!(
                gauge("patrolsync_devices", Some(("state", st))),
                Some(1.0),
                "{st}"
            );
        }
        assert_eq!(gauge("patrolsync_photos_missing", None), Some(1.0));
        assert_eq!(gauge("patrolsync_check_ins", None), Some(2.0));

        // Revoking through the API moves the device at once.
        let (status, _) = call(
            &app,
            "POST",
            &format!("/api/devices/{}/revoke", f.healthy.id),
            Some("secret"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let healthy = get_json(&app, "/api/devices?state=healthy").await;
        assert_eq!(healthy["total"], 0);
    }
}
