//! The admin router, route by route, through `oneshot`.

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
    let store = crate::testkit::sqlite_store(dir.path())
        .await
        .expect("store");
    crate::seed::seed_demo(&store).await.expect("grid");
    let fleet = crate::testkit::seed_fleet(&store, crate::clock::now_ms())
        .await
        .expect("fleet");
    let state = AdminState {
        db: Arc::new(store.clone()),
        reports: crate::config::Reports::default(),
        store: Arc::new(store),
        token_sha256: patrolsync_proto::digest::sha256(b"secret"),
        draining: Arc::new(AtomicBool::new(false)),
        metrics: Arc::new(Metrics::new()),
        health: Health::default(),
        public: None,
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

async fn call(app: &Router, method: &str, uri: &str, token: Option<&str>) -> (StatusCode, String) {
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
    for uri in ["/healthz", "/readyz", "/", "/metrics", "/i18n.json"] {
        assert_eq!(
            call(&app, "GET", uri, None).await.0,
            StatusCode::OK,
            "{uri}"
        );
    }
    let (_, page) = call(&app, "GET", "/", None).await;
    assert!(page.contains("data-t=\"dash-title\"") && !page.contains("secret"));
    // The page's words, public (the catalog, no data): Chinese by default, English on request.
    let (_, zh) = call(&app, "GET", "/i18n.json", None).await;
    let zh: serde_json::Value = serde_json::from_str(&zh).expect("json");
    assert_eq!(zh["lang"], "zh-CN");
    assert_eq!(zh["messages"]["dash-title"], "同步状况");
    assert_eq!(zh["messages"]["dash-devices-title"], "设备（{count}）");
    let (_, en) = call(&app, "GET", "/i18n.json?lang=en", None).await;
    let en: serde_json::Value = serde_json::from_str(&en).expect("json");
    assert_eq!(en["messages"]["dash-title"], "sync health");
    assert_eq!(en["messages"]["state-closed"], "closed");
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
        .sample(crate::clock::now_ms(), std::time::Duration::from_secs(10));
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
