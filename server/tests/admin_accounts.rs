//! Named admins through the HTTP API: a viewer cannot revoke, an operator can; a district admin
//! sees and changes only its district (devices, logs, reports, ledgers); an expired or revoked
//! token is refused; every action lands in the audit log with its actor, and the chain
//! verifies. The router is called in process, no socket.

use patrolsync_server::store::AccountStore;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use patrolsync_server::admin::{AdminState, router};
use patrolsync_server::config::{Health, Reports};
use patrolsync_server::metrics::Metrics;
use patrolsync_server::store::DeviceStore;
use patrolsync_server::store::admins::{AdminAccount, AdminRole};
use patrolsync_server::store::sql::SqlStore;
use serde_json::Value;
use tower::ServiceExt;

const NOW: i64 = 1_790_000_000_000;

async fn call(app: &axum::Router, method: &str, uri: &str, token: &str) -> (StatusCode, String) {
    call_in(app, method, uri, token, None).await
}

/// `call` with an `Accept-Language`.
async fn call_in(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    language: Option<&str>,
) -> (StatusCode, String) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    if let Some(l) = language {
        request = request.header("accept-language", l);
    }
    let request = request.body(Body::empty()).expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn add(
    sql: &SqlStore,
    name: &str,
    role: AdminRole,
    cell: Option<&str>,
    expires_at_ms: Option<i64>,
) -> String {
    let token = format!("token-of-{name}");
    sql.add_admin(
        &AdminAccount {
            name: name.into(),
            role,
            cell: cell.map(Into::into),
            created_at_ms: NOW,
            created_by: "test".into(),
            expires_at_ms,
            revoked_at_ms: None,
        },
        &patrolsync_proto::digest::sha256(token.as_bytes()),
    )
    .await
    .expect("admin");
    token
}

#[tokio::test]
async fn roles_subtrees_expiry_and_the_audit_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("a.db").display());
    let sql = SqlStore::connect(&url).await?;
    patrolsync_server::seed::seed_demo(&sql).await?;
    // Five devices of users assigned S1-C1.
    let fleet = patrolsync_server::testkit::seed_fleet(&sql, patrolsync_server::now_ms()).await?;
    let app = router(AdminState {
        store: Arc::new(sql.clone()),
        db: Arc::new(sql.clone()),
        reports: Reports::default(),
        token_sha256: patrolsync_proto::digest::sha256(b"bootstrap-secret"),
        draining: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new()),
        health: Health::default(),
        public: None,
    });
    let viewer = add(&sql, "wang.viewer", AdminRole::Viewer, None, None).await;
    let operator = add(&sql, "li.operator", AdminRole::Operator, None, None).await;
    let s2 = add(&sql, "zhao.s2", AdminRole::Operator, Some("S2"), None).await;
    let s1 = add(&sql, "sun.s1", AdminRole::Viewer, Some("S1"), None).await;
    let expired = add(&sql, "old", AdminRole::Owner, None, Some(NOW - 1)).await;
    let gone = add(&sql, "gone", AdminRole::Owner, None, None).await;
    sql.revoke_admin("gone", NOW).await?;

    // A viewer cannot revoke; an operator can.
    let target = fleet.healthy.id.to_string();
    let revoke = format!("/api/devices/{target}/revoke");
    let (status, body) = call(&app, "POST", &revoke, &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(
        v["message"], "admin wang.viewer is a viewer; revoking a device needs an operator or more",
        "no Accept-Language: English"
    );
    assert_eq!(v["message"], v["error"]);
    assert_eq!(v["code"], "admin-needs-role");
    assert_eq!(v["params"]["needed"], "operator");
    // The dashboard asks in its language and shows the message as it comes.
    let (status, body) = call_in(&app, "POST", &revoke, &viewer, Some("zh-CN")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(
        v["message"],
        "管理员 wang.viewer 的角色是 viewer；停用设备需要 operator 或更高的角色"
    );
    assert_eq!(
        v["error"], "admin wang.viewer is a viewer; revoking a device needs an operator or more",
        "error stays English for logs and scripts"
    );
    let stored = |id: &str| {
        let sql = sql.clone();
        let id = id.to_owned();
        async move {
            sql.devices()
                .await
                .expect("devices")
                .into_iter()
                .find(|d| d.id == id)
                .and_then(|d| d.revoked_at_ms)
        }
    };
    assert!(stored(&target).await.is_none(), "still enrolled");

    // A district admin of S2 sees none of S1's devices, logs, reports or ledgers, and cannot
    // revoke one of them.
    let (status, body) = call(&app, "GET", "/api/devices", &s2).await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["total"], 0, "{body}");
    let (status, _) = call(&app, "GET", &format!("/api/devices/{target}"), &s2).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = call(&app, "GET", "/api/rejections", &s2).await;
    assert_eq!(body, "[]");
    let (status, body) = call(&app, "POST", &revoke, &s2).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        stored(&target).await.is_none(),
        "not revoked by another district"
    );
    let (status, body) = call(
        &app,
        "GET",
        "/api/reports/compliance?period=2026-11&cell=S1&as_of=2026-11-20",
        &s2,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("sees only S2"), "{body}");
    let (_, body) = call_in(
        &app,
        "GET",
        "/api/reports/compliance?period=2026-11&cell=S1&as_of=2026-11-20",
        &s2,
        Some("zh-CN,zh;q=0.9,en;q=0.8"),
    )
    .await;
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(
        v["message"], "管理员 zhao.s2 只能查看 S2，不能查看 S1",
        "{body}"
    );
    let (status, _) = call(
        &app,
        "GET",
        "/api/exports/inspections?period=2026-11&cell=S1-C1",
        &s2,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, "GET", "/api/stats", &s2).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "node-wide counts");
    // Its own district, by default (the demo grid was made today: the report stands now).
    let (status, body) = call(&app, "GET", "/api/reports/compliance?period=2026-11", &s2).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["cell"], "S2", "{body}");
    assert_eq!(v["rows"][0]["cell"], "S2");
    // A district admin of S1 sees its five.
    let (_, body) = call(&app, "GET", "/api/devices", &s1).await;
    assert_eq!(serde_json::from_str::<Value>(&body)?["total"], 5);

    // The operator revokes; an export is made; both are audited with their actors.
    let (status, body) = call(&app, "POST", &revoke, &operator).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(stored(&target).await.is_some());
    let (status, csv) = call(
        &app,
        "GET",
        "/api/exports/inspections?period=2026-11&cell=S1&format=csv",
        &s1,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // A download opens as UTF-8 in Excel on Chinese Windows: it starts with the byte order mark,
    // then the official form's Chinese header (the default); `lang=en` keeps the machine names.
    assert!(
        csv.starts_with("\u{feff}序号,检查时间,所属网格,检查点编号"),
        "{csv}"
    );
    let (status, csv) = call(
        &app,
        "GET",
        "/api/exports/inspections?period=2026-11&cell=S1&format=csv&lang=en",
        &s1,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(csv.starts_with("\u{feff}time,cell,checkpoint"), "{csv}");

    // Expired and revoked tokens are refused, saying which.
    let (status, body) = call(&app, "GET", "/api/summary", &expired).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("old's token expired"), "{body}");
    let (status, body) = call(&app, "GET", "/api/summary", &gone).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("gone's token was revoked"), "{body}");
    let (status, _) = call(&app, "GET", "/api/summary", "guess").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The registers: a district admin reads only its district's households and units, and
    // every read of households is audited.
    use patrolsync_proto::household::HouseholdGroup;
    use patrolsync_server::store::RegistryStore;
    use patrolsync_server::store::registry::NewHousehold;
    let household = |code: &str, cell: &str| NewHousehold {
        code: code.into(),
        cell: cell.into(),
        address: format!("{code} 室"),
        group: HouseholdGroup::ElderlyAlone,
        contact_name: "住户".into(),
        contact_phone: String::new(),
    };
    sql.upsert_households(
        &[household("H-S1", "S1-C1-K1"), household("H-S2", "S2-C1-K1")],
        NOW,
    )
    .await?;
    let (status, body) = call(&app, "GET", "/api/households", &s1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    let codes: Vec<&str> = v["households"]
        .as_array()
        .expect("households")
        .iter()
        .filter_map(|h| h["code"].as_str())
        .collect();
    assert_eq!(codes, ["H-S1"], "only the district's");
    let (status, _) = call(&app, "GET", "/api/households?cell=S2", &s1).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, "GET", "/api/units?cell=S2-C1", &s1).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The audit log: only an owner of the whole grid reads it; every action is there.
    let (status, _) = call(&app, "GET", "/api/audit", &viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = call(&app, "GET", "/api/audit", "bootstrap-secret").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(v["chain_verified"], true, "{body}");
    let seen: Vec<(String, String, String)> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for (actor, action, outcome) in [
        ("wang.viewer", "revoke", "refused: role"),
        ("zhao.s2", "revoke", "refused: outside the subtree"),
        ("zhao.s2", "export", "refused"),
        ("li.operator", "revoke", "ok"),
        ("sun.s1", "export", "ok: 0 rows"),
        ("sun.s1", "read_households", "1 rows"),
    ] {
        assert!(
            seen.contains(&(actor.into(), action.into(), outcome.into())),
            "{actor} {action} {outcome}: {seen:?}"
        );
    }
    // Changing an entry afterwards breaks the chain, and the log says where.
    sqlx::query("UPDATE audit_log SET target = 'device nobody' WHERE seq = 2")
        .execute(sql.raw_pool())
        .await?;
    let (_, body) = call(&app, "GET", "/api/audit", "bootstrap-secret").await;
    let v: Value = serde_json::from_str(&body)?;
    assert_eq!(
        (v["chain_verified"].as_bool(), v["broken_at"].as_i64()),
        (Some(false), Some(2))
    );
    Ok(())
}
