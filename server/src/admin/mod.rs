//! Admin HTTP: health and readiness probes, Prometheus `/metrics`, the sync-health dashboard
//! at `/`, and a JSON API under `/api/` that needs an admin token (the data dir's admin.token
//! is the bootstrap owner; `patrolsync admin admins add` makes named ones, each a `viewer`,
//! `operator` or `owner`, optionally limited to a subtree of the grid). Built as a plain
//! `axum::Router` so every route can be tested with `oneshot` and no socket.
//!
//! | Route | Role | What |
//! |---|---|---|
//! | `GET /` | — | the dashboard (one embedded page; it asks for the token) |
//! | `GET /i18n.json?lang=` | — | the dashboard's words in `zh-CN` (default) or `en` |
//! | `GET /healthz`, `GET /readyz` | — | liveness; readiness (503 while draining) |
//! | `GET /metrics` | — | Prometheus text exposition |
//! | `GET /api/summary` | viewer | devices by state, thresholds, counts, backlog |
//! | `GET /api/devices?state=&q=&sort=&order=&limit=&offset=&lang=` | viewer | devices with their health (reasons in `lang`, default English) |
//! | `GET /api/devices/{id}?lang=` | viewer | one device (id or unique prefix): health, history, rejections, conflicts, missing photos |
//! | `POST /api/devices/{id}/revoke` | operator | revoke a device |
//! | `GET /api/rejections?device=&limit=` | viewer | the rejection log |
//! | `GET /api/conflicts?device=&limit=` | viewer | ops recorded as conflicts |
//! | `GET /api/missing-photos?device=&limit=` | viewer | photos referenced but not uploaded |
//! | `GET /api/hazards?cell=` | viewer | hazards by status, per child cell of `cell` (or per street) |
//! | `GET /api/reports/compliance?period=&cell=&as_of=` | viewer | cadence compliance (JSON) |
//! | `GET /api/reports/evaluation?period=&cell=&by=&as_of=` | viewer | performance evaluation (JSON) |
//! | `GET /api/exports/{ledger}?period=&cell=&unit=&as_of=&format=` | viewer | a ledger as CSV or XLSX (of a subtree, or of one key unit) |
//! | `GET /api/units?cell=` | viewer | the key units of a subtree |
//! | `GET /api/units/{code}?limit=` | viewer | a key unit's file: details, latest inspections, hazards |
//! | `GET /api/households?cell=` | viewer | the must-visit households of a subtree |
//! | `GET /api/map?cell=&period=` | viewer | one level of the grid with boundaries, compliance and hazards; points; the 12-week hazard trend; early warnings |
//! | `GET /api/reports/visits?period=&cell=&as_of=` | viewer | must-visit compliance (JSON) |
//! | `GET /api/reports/tasks?period=&cell=&as_of=` | viewer | task response per street (period: this month by default): by state; median and p90 minutes to accept, arrive, complete |
//! | `POST /api/tasks` | operator | make a task (a help call from an intake: cell, kind, urgency, household, unit, checkpoint, latitude/longitude, description); the dispatcher offers it |
//! | `GET /api/tasks?open=&cell=&limit=` | viewer | the tasks of a subtree, newest first |
//! | `GET /api/tasks/{id}` | viewer | one task and its log |
//! | `GET /api/series` | viewer, whole grid | ingest rate, ack latency and backlog over the last hour (this node) |
//! | `GET /api/stats` | viewer, whole grid | store counts |
//! | `GET /api/audit?since=&actor=&limit=` | owner, whole grid | the audit log, and whether its chain verifies |
//! | `GET /api/admins` | owner, whole grid | admin accounts |
//!
//! An admin limited to a subtree sees only the devices of users assigned there, the logs of
//! those devices, and reports, ledgers and hazards of cells there.

mod auth;
mod devices;
mod logs;
mod map;
mod reports;
mod tasks;
#[cfg(test)]
mod tests;
mod units;

use auth::Admin;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::config::Health;
use crate::health::{self, DeviceHealth, HealthState};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};
use devices::*;
use logs::*;

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
    /// The public progress page, when enabled: served beside the admin routes, with no token.
    pub public: Option<crate::public::PublicState>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    let router = Router::new()
        .route("/", get(dashboard))
        .route("/i18n.json", get(catalog))
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
        .route("/api/units", get(units::list))
        .route("/api/units/{code}", get(units::file))
        .route("/api/households", get(units::households))
        .route("/api/map", get(map::map))
        .route("/api/reports/visits", get(reports::visits))
        .route("/api/reports/tasks", get(reports::tasks))
        .route("/api/tasks", get(tasks::list).post(tasks::create))
        .route("/api/tasks/{id}", get(tasks::show))
        .layer(axum::middleware::from_fn(word_errors));
    let public = state.public.clone();
    let router = router.with_state(state);
    match public {
        Some(p) => router.merge(crate::public::router(p)),
        None => router,
    }
}

pub(super) const DASHBOARD: &str = include_str!("dashboard.html");

pub(super) async fn dashboard() -> Response {
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

/// `/i18n.json` query.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct CatalogQuery {
    /// `zh-CN` (default) or `en`.
    lang: Option<String>,
}

/// The dashboard's words in a language: every message it shows (`dash-`, `dur-`, `state-`,
/// `role-`), a placeholder left as `{name}` for the page to fill. Public: it is the catalog the
/// project ships, no data; rendered once per language and served from memory.
pub(super) async fn catalog(
    axum::extract::Query(q): axum::extract::Query<CatalogQuery>,
) -> Response {
    use patrolsync_i18n::Lang;
    static RENDERED: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    let render = |lang: Lang| {
        let messages: serde_json::Map<String, serde_json::Value> = [
            "dash-",
            "dur-",
            "state-",
            "role-",
            "unit-",
            "kind-",
            "outcome-",
            "category-",
            "task-",
        ]
        .into_iter()
        .flat_map(|prefix| lang.placeholder_messages(prefix))
        .map(|(id, text)| (id, serde_json::Value::String(text)))
        .collect();
        serde_json::json!({ "lang": lang.tag(), "messages": messages }).to_string()
    };
    let rendered = RENDERED.get_or_init(|| [render(Lang::ZhCn), render(Lang::En)]);
    let lang = Lang::from_tag(q.lang.as_deref().unwrap_or_default());
    let body = &rendered[usize::from(lang == Lang::En)];
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body.clone(),
    )
        .into_response()
}

pub(super) async fn readyz(State(s): State<AdminState>) -> Response {
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

/// An error a person may read (the dashboard shows it): `error` in English, its catalog `code`
/// and `params`, and `message` in the request's language (worded by [`word_errors`]).
pub(crate) fn json_text(status: StatusCode, text: &patrolsync_i18n::Text) -> Response {
    let mut response = (status, Json(text_body(text, patrolsync_i18n::Lang::En))).into_response();
    response.extensions_mut().insert(text.clone());
    response
}

fn text_body(text: &patrolsync_i18n::Text, lang: patrolsync_i18n::Lang) -> serde_json::Value {
    let params: serde_json::Map<String, serde_json::Value> = text
        .args()
        .map(|(n, v)| (n.to_owned(), serde_json::Value::String(v.to_owned())))
        .collect();
    serde_json::json!({
        "error": text.to_string(),
        "code": text.id(),
        "params": params,
        "message": text.in_lang(lang),
    })
}

/// Words an error of [`json_text`] in the language the request accepts (`Accept-Language`;
/// English without one) as its `message`.
async fn word_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    // The first language range: English for none or `*`, else as a phone falls back.
    let lang = request
        .headers()
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split([',', ';']).next())
        .map(str::trim)
        .filter(|tag| !tag.is_empty() && *tag != "*")
        .map_or(patrolsync_i18n::Lang::En, patrolsync_i18n::Lang::from_tag);
    let mut response = next.run(request).await;
    let Some(text) = response.extensions_mut().remove::<patrolsync_i18n::Text>() else {
        return response;
    };
    // The same response (status, headers) with the body worded in the asked language.
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.append(
        header::VARY,
        axum::http::HeaderValue::from_static("accept-language"),
    );
    let body = text_body(&text, lang).to_string();
    Response::from_parts(parts, axum::body::Body::from(body))
}

pub(crate) fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::NotFound(t) => json_text(StatusCode::NOT_FOUND, &t),
        StoreError::Invalid(t) => json_text(StatusCode::BAD_REQUEST, &t),
        StoreError::Corrupt(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        e => json_error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

pub(super) fn json<T: serde::Serialize>(r: Result<T, StoreError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => store_error(e),
    }
}

/// The fleet classified now.
pub(super) async fn fleet(
    s: &AdminState,
) -> Result<(Vec<DeviceHealth>, BTreeMap<HealthState, usize>), StoreError> {
    let statuses = s.store.device_statuses().await?;
    Ok(health::fleet(statuses, &s.health, crate::clock::now_ms()))
}

/// The fleet an admin may see: the whole of it, or the devices of its subtree (with the counts
/// by state recomputed over them).
pub(super) async fn fleet_of(
    s: &AdminState,
    admin: &Admin,
) -> Result<(Vec<DeviceHealth>, BTreeMap<HealthState, usize>), Response> {
    let mut statuses = s.store.device_statuses().await.map_err(store_error)?;
    if let Some(mine) = admin.devices(s).await? {
        statuses.retain(|d| mine.contains(&d.id));
    }
    Ok(health::fleet(statuses, &s.health, crate::clock::now_ms()))
}

pub(super) async fn metrics(State(s): State<AdminState>) -> Response {
    let refreshed = async {
        let (devices, _) = fleet(&s).await?;
        let stats = s.store.stats(crate::clock::now_ms()).await?;
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

pub(super) async fn stats(State(s): State<AdminState>, admin: Admin) -> Response {
    if let Err(r) = admin.require_whole_grid("store_counts") {
        return r;
    }
    json(s.store.stats(crate::clock::now_ms()).await)
}

pub(super) async fn summary(State(s): State<AdminState>, admin: Admin) -> Response {
    let now = crate::clock::now_ms();
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

pub(super) async fn series(State(s): State<AdminState>, admin: Admin) -> Response {
    if let Err(r) = admin.require_whole_grid("node_series") {
        return r;
    }
    Json(serde_json::json!({
        "interval_ms": s.health.sample_every.as_millis() as u64,
        "samples": s.metrics.series(),
    }))
    .into_response()
}
