//! Devices: the fleet with its health, one device in detail, revocation.

pub use auth::Admin;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::*;
use crate::health::{self, DeviceHealth, HealthState};

/// `/api/devices` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DeviceQuery {
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
    /// The language of `reasons`: `zh-CN` or `en` (default: English).
    lang: Option<String>,
}

/// `/api/devices/{id}` query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct DetailQuery {
    /// The language of `reasons` and of the refusals' messages: `zh-CN` or `en` (default:
    /// English).
    lang: Option<String>,
}

pub(super) async fn devices(
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
    let selected = match health::select_devices(all, state, query.q.as_deref(), sort, descending) {
        Ok(d) => d,
        Err(e) => return json_text(StatusCode::BAD_REQUEST, &e),
    };
    let total = selected.len();
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(500).min(5000);
    let now = crate::clock::now_ms();
    let lang = query.lang.as_deref().map(patrolsync_i18n::Lang::from_tag);
    let page: Vec<DeviceHealth> = selected
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|d| match lang {
            Some(lang) => d.in_language(lang, now),
            None => d,
        })
        .collect();
    Json(serde_json::json!({
        "total": total,
        "offset": offset,
        "states": states.iter().map(|(k, v)| (k.as_str(), *v)).collect::<BTreeMap<_, _>>(),
        "devices": page,
    }))
    .into_response()
}

pub(super) async fn device(
    State(s): State<AdminState>,
    admin: Admin,
    Path(id): Path<String>,
    query: Result<Query<DetailQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let now = crate::clock::now_ms();
    let mut detail = match health::device_detail(s.store.as_ref(), &s.health, &id, 50, now).await {
        Ok(d) => d,
        Err(e) => return store_error(e),
    };
    if let Some(lang) = query.lang.as_deref().map(patrolsync_i18n::Lang::from_tag) {
        detail.device = detail.device.in_language(lang, now);
        for r in &mut detail.rejections {
            r.message = r.text(lang);
        }
    }
    match admin.devices(&s).await {
        Ok(Some(mine)) if !mine.contains(&detail.device.status.id) => not_yours(&admin, &id),
        Ok(_) => Json(detail).into_response(),
        Err(r) => r,
    }
}

/// What a district admin is told of a device elsewhere: the same as of one that does not exist.
pub(super) fn not_yours(admin: &Admin, id: &str) -> Response {
    let text = match &admin.subtree {
        Some(t) => patrolsync_i18n::text!("admin-no-device-in", device = id, cell = t.cell),
        None => patrolsync_i18n::text!("store-no-device", device = id),
    };
    json_text(StatusCode::NOT_FOUND, &text)
}

/// Revokes a device; every node closes its live connections within a poll.
pub(super) async fn revoke(
    State(s): State<AdminState>,
    admin: Admin,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = admin.require(crate::store::admins::AdminRole::Operator, "revoke_device") {
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
    let r = s.store.revoke_device(&id, crate::clock::now_ms()).await;
    let outcome = match &r {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    admin
        .audit(&s, "revoke", format!("device {id}"), &outcome)
        .await;
    json(r)
}
