//! Admin HTTP: health and readiness probes and a token-protected JSON API. Built as a plain
//! `axum::Router` so it can be tested with `oneshot` and no socket.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::store::Store;

/// What the admin routes need.
#[derive(Clone)]
pub struct AdminState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// SHA-256 of the admin token (compared digest to digest, so timing reveals nothing).
    pub token_sha256: [u8; 32],
    /// Set when the server starts draining; `/readyz` turns false first.
    pub draining: Arc<AtomicBool>,
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/stats", get(stats))
        .route("/api/devices", get(devices))
        .route("/api/devices/{id}/revoke", axum::routing::post(revoke))
        .with_state(state)
}

async fn readyz(State(s): State<AdminState>) -> Response {
    if s.draining.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::OK, "ready\n").into_response()
    }
}

fn authorized(s: &AdminState, headers: &HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    given.is_some_and(|t| crate::pki::sha256(t.as_bytes()) == s.token_sha256)
}

/// A JSON `{"error": …}` body with `status`.
fn json_error(status: StatusCode, e: impl std::fmt::Display) -> Response {
    (status, Json(serde_json::json!({ "error": e.to_string() }))).into_response()
}

fn unauthorized() -> Response {
    let message = "missing or wrong admin token; send Authorization: Bearer <contents of admin.token in the data dir>";
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

async fn stats(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    match s.store.stats(crate::now_ms()).await {
        Ok(stats) => Json(stats).into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

async fn devices(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    match s.store.devices().await {
        Ok(d) => Json(d).into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

/// Revokes a device; every node closes its live connections within a poll.
async fn revoke(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    match s.store.revoke_device(&id, crate::now_ms()).await {
        Ok(d) => Json(d).into_response(),
        Err(e @ crate::store::StoreError::NotFound(_)) => json_error(StatusCode::NOT_FOUND, e),
        Err(e @ crate::store::StoreError::Invalid(_)) => json_error(StatusCode::BAD_REQUEST, e),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn state() -> (AdminState, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
        let store = crate::store::sql::SqlStore::connect(&url)
            .await
            .expect("store");
        let state = AdminState {
            store: Arc::new(store),
            token_sha256: crate::pki::sha256(b"secret"),
            draining: Arc::new(AtomicBool::new(false)),
        };
        (state, dir)
    }

    #[tokio::test]
    async fn api_needs_the_token_and_probes_do_not() {
        let (state, _dir) = state().await;
        let app = router(state.clone());
        let get = |uri: &str, token: Option<&str>| {
            let mut r = Request::builder().uri(uri);
            if let Some(t) = token {
                r = r.header("authorization", format!("Bearer {t}"));
            }
            r.body(Body::empty()).expect("request")
        };
        assert_eq!(
            app.clone()
                .oneshot(get("/healthz", None))
                .await
                .expect("ok")
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            app.clone()
                .oneshot(get("/api/stats", None))
                .await
                .expect("ok")
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.clone()
                .oneshot(get("/api/stats", Some("wrong")))
                .await
                .expect("ok")
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            app.clone()
                .oneshot(get("/api/stats", Some("secret")))
                .await
                .expect("ok")
                .status(),
            StatusCode::OK
        );
        let revoke = Request::builder()
            .method("POST")
            .uri("/api/devices/01234567-nope/revoke")
            .header("authorization", "Bearer secret")
            .body(Body::empty())
            .expect("request");
        assert_eq!(
            app.clone().oneshot(revoke).await.expect("ok").status(),
            StatusCode::NOT_FOUND
        );
        state
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            app.oneshot(get("/readyz", None))
                .await
                .expect("ok")
                .status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
