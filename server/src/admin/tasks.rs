//! Tasks over HTTP: the intake of help calls and other tasks (`POST /api/tasks`, operator), the
//! tasks of a subtree, and one task with its log.
// A refusal is the HTTP response to send, built once per refused request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use patrolsync_proto::TaskId;
use patrolsync_proto::task::{TaskKind, Urgency};
use serde::Deserialize;

use super::{Admin, AdminState, json_error, store_error};
use crate::store::NewTask;
use crate::store::admins::AdminRole;

/// The body of `POST /api/tasks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// The cell.
    cell: String,
    /// `help_call`, `inspect`, `verify_fix` or `visit`.
    kind: String,
    /// `normal` (default) or `urgent`.
    urgency: Option<String>,
    /// The household (六必访 register) it is for.
    household: Option<String>,
    /// The key unit it is for.
    unit: Option<String>,
    /// A checkpoint at the place.
    checkpoint: Option<String>,
    /// Where (WGS-84), both or neither.
    latitude: Option<f64>,
    /// Where.
    longitude: Option<f64>,
    /// What is wanted.
    #[serde(default)]
    description: String,
}

/// `?open=&cell=&limit=` of the task list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksQuery {
    /// Only tasks still to be done.
    open: Option<bool>,
    /// Root of the subtree (default: the admin's, or the whole grid).
    cell: Option<String>,
    /// How many (default 100, at most 1000).
    limit: Option<u32>,
}

type Rejected = axum::extract::rejection::QueryRejection;

/// `POST /api/tasks`: makes a task; the dispatcher offers it to the cell's on-duty patrollers
/// nearest first. Answers `{"id", "cursor"}`.
pub async fn create(
    State(s): State<AdminState>,
    admin: Admin,
    body: Result<Json<TaskRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(t) = match body {
        Ok(b) => b,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let target = format!("{} in {}", t.kind, t.cell);
    if let Err(r) = admin.require(AdminRole::Operator, "create_task") {
        admin
            .audit(&s, "create_task", target, "refused: role")
            .await;
        return r;
    }
    if let Err(r) = admin.cell(&s, Some(t.cell.trim())).await {
        admin
            .audit(&s, "create_task", target, "refused: outside the subtree")
            .await;
        return r;
    }
    let Ok(kind) = t.kind.parse::<TaskKind>() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            format!(
                "kind {:?} is not one of help_call, inspect, verify_fix, visit",
                t.kind
            ),
        );
    };
    let urgency = match t.urgency.as_deref() {
        None => Urgency::Normal,
        Some(u) => match u.parse::<Urgency>() {
            Ok(u) => u,
            Err(_) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    format!("urgency {u:?} is not one of normal, urgent"),
                );
            }
        },
    };
    let position = match (t.latitude, t.longitude) {
        (Some(lat), Some(lon)) => Some((lat, lon)),
        (None, None) => None,
        _ => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "give latitude and longitude together, or neither",
            );
        }
    };
    let new = NewTask {
        cell: t.cell.trim().to_owned(),
        kind,
        urgency,
        household: t.household.filter(|h| !h.trim().is_empty()),
        unit: t.unit.filter(|u| !u.trim().is_empty()),
        checkpoint: t.checkpoint.filter(|c| !c.trim().is_empty()),
        position,
        description: t.description,
    };
    let made = s.store.create_task(&new, crate::clock::now_ms()).await;
    let outcome = match &made {
        Ok((id, _)) => format!("ok: {id}"),
        Err(e) => format!("error: {e}"),
    };
    admin.audit(&s, "create_task", target, &outcome).await;
    match made {
        Ok((id, cursor)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({ "id": id.to_string(), "cursor": cursor })),
        )
            .into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/tasks?open=&cell=&limit=`: the tasks of a subtree, newest first.
pub async fn list(
    State(s): State<AdminState>,
    admin: Admin,
    q: Result<Query<TasksQuery>, Rejected>,
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
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    match s
        .store
        .tasks(q.open.unwrap_or(false), cell.as_deref(), limit)
        .await
    {
        Ok(tasks) => Json(serde_json::json!({ "cell": cell, "tasks": tasks })).into_response(),
        Err(e) => store_error(e),
    }
}

/// `GET /api/tasks/{id}`: one task and its log (each step once, in order, with its conflict).
pub async fn show(State(s): State<AdminState>, admin: Admin, Path(id): Path<String>) -> Response {
    let Ok(task) = id.parse::<TaskId>() else {
        return json_error(StatusCode::BAD_REQUEST, format!("{id:?} is not a task id"));
    };
    let found = match s.store.task(task).await {
        Ok(f) => f,
        Err(e) => return store_error(e),
    };
    // A task outside the admin's subtree is answered as one that does not exist.
    let Some((summary, log)) = found else {
        return json_error(StatusCode::NOT_FOUND, format!("task {id} does not exist"));
    };
    if admin.cell(&s, Some(&summary.cell)).await.is_err() {
        return json_error(StatusCode::NOT_FOUND, format!("task {id} does not exist"));
    }
    Json(serde_json::json!({ "task": summary, "log": log })).into_response()
}
