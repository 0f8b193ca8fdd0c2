//! The key-unit register over HTTP: the units of a subtree, and one unit's file.
// A refusal is the HTTP response to send, built once per refused request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Admin, AdminState, json_error, json_text, store_error};

/// `?cell=` of the unit list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitsQuery {
    /// Root of the subtree (default: the admin's, or the whole grid).
    cell: Option<String>,
}

/// `?limit=` of a unit's file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitQuery {
    /// How many check-ins and hazards (default 50, at most 500).
    limit: Option<u32>,
}

type Rejected = axum::extract::rejection::QueryRejection;

/// `GET /api/units?cell=`: the units in the subtree, by code.
pub async fn list(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<UnitsQuery>, Rejected>,
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
    match s.db.units(cell.as_deref()).await {
        Ok(units) => Json(serde_json::json!({ "cell": cell, "units": units })).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/households?cell=`: the must-visit households in the subtree, by code. The most
/// personal data the server keeps: every read goes into the audit log.
pub async fn households(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<UnitsQuery>, Rejected>,
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
    let target = format!("households of {}", cell.as_deref().unwrap_or("(all)"));
    match s.db.households(cell.as_deref(), i64::MAX).await {
        Ok(mut all) => {
            all.retain(|h| h.removed_at_ms.is_none());
            admin
                .audit(
                    &s,
                    "read_households",
                    target,
                    &format!("{} rows", all.len()),
                )
                .await;
            Json(serde_json::json!({ "cell": cell, "households": all })).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// `GET /api/units/{code}?limit=`: the unit, its latest check-ins and its hazards.
pub async fn file(
    State(s): State<AdminState>,
    admin: Admin,
    Path(code): Path<String>,
    q: Result<Query<UnitQuery>, Rejected>,
) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let limit = q.limit.unwrap_or(50).min(500);
    let file = match s.db.unit_file(&code, limit).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            return json_text(
                StatusCode::NOT_FOUND,
                &patrolsync_i18n::text!("store-no-unit", unit = code),
            );
        }
        Err(e) => return store_error(e),
    };
    // A unit outside the admin's subtree is refused as its cell would be.
    if let Err(r) = admin.cell(&s, Some(&file.unit.cell)).await {
        return r;
    }
    Json(file).into_response()
}
