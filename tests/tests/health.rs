//! Sync health end to end: what devices report at Hello and what the server measures reaches
//! the admin API, `/metrics` agrees with the store, and a device that stops syncing turns
//! silent by itself. Every test runs on SQLite and, when PATROLSYNC_TEST_DATABASE_URL is set,
//! on PostgreSQL.

use std::time::{Duration, Instant};

use patrolsync_proto::CheckInOutcome;
use patrolsync_sdk::NewCheckIn;
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, admin_get, admin_json, blocked_lane};

/// Every sample of the scrape, as `(name, labels, value)`.
fn scrape(text: &str) -> anyhow::Result<prometheus_parse::Scrape> {
    Ok(prometheus_parse::Scrape::parse(
        text.lines().map(|l| Ok(l.to_owned())),
    )?)
}

/// The value of `name` whose labels include all of `labels` (summed over the others).
fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(b) => b.last().map_or(0.0, |b| b.count),
            _ => 0.0,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_device_reports_match_the_store() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        let id = device.status().await?.device_id.expect("enrolled");

        // 20 check-ins in scope, one outside it, one with a photo.
        for i in 0..20 {
            let c = NewCheckIn::new(
                format!("S1-C1-K{}-B{}-P1", i % 4 + 1, i % 5 + 1),
                CheckInOutcome::Inspected,
            );
            device.record_checkin(c).await?;
        }
        device
            .record_checkin(NewCheckIn::new("S2-C3-K1-B1-P1", CheckInOutcome::Inspected))
            .await?;
        let photo_path = h.dir.path().join("hazard.jpg");
        let photo: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&photo_path, &photo)?;
        let sha = device.add_photo(&photo_path).await?;
        let mut with_photo = NewCheckIn::new("S1-C1-K1-B1-P2", CheckInOutcome::Inspected);
        with_photo.photos = vec![sha];
        device.record_checkin(with_photo).await?;
        device.report_hazard(blocked_lane("S1-C1-K2")).await?;
        let first = device.sync().await?;
        assert_eq!(
            (first.applied, first.rejected, first.photos_uploaded),
            (22, 1, 1),
            "{backend}: {first:?}"
        );

        // A lost answer: the SDK resends within the same sync and the replay is answered
        // `duplicate`.
        for _ in 0..5 {
            device
                .record_checkin(NewCheckIn::new("S1-C1-K2-B2-P2", CheckInOutcome::Inspected))
                .await?;
        }
        h.server().faults().drop_push_acks_after_commit(1);
        let second = device.sync().await?;
        assert_eq!(second.duplicates, 5, "{backend}: {second:?}");

        let store = h.server().store();
        let stats = store.stats(0).await?;
        let rejections = store.rejections(None, 100).await?;
        let (status, text) = admin_get(h.server(), "/metrics").await?;
        assert_eq!(status, 200);
        let m = scrape(&text)?;
        assert_eq!(stats.check_ins, 26, "{backend}");
        assert_eq!(stats.hazards, 1, "{backend}");
        assert_eq!(
            value(&m, "patrolsync_ops_ingested_total", &[]),
            (stats.check_ins + stats.hazards) as f64,
            "{backend}: one op per check-in and one for the hazard report"
        );
        assert_eq!(value(&m, "patrolsync_hazards", &[]), 1.0);
        assert_eq!(
            value(&m, "patrolsync_check_ins", &[]),
            stats.check_ins as f64,
            "{backend}"
        );
        assert_eq!(
            value(&m, "patrolsync_ops_duplicate_total", &[]),
            5.0,
            "{backend}"
        );
        assert_eq!(
            value(
                &m,
                "patrolsync_ops_rejected_total",
                &[("code", "forbidden")]
            ),
            rejections.len() as f64,
            "{backend}"
        );
        assert_eq!(rejections.len(), 1, "{backend}");
        assert_eq!(
            value(&m, "patrolsync_photos_stored_total", &[]),
            stats.blobs as f64
        );
        assert_eq!(
            value(&m, "patrolsync_photo_received_bytes_total", &[]),
            photo.len() as f64
        );
        assert_eq!(
            value(&m, "patrolsync_photos_missing", &[]),
            stats.missing_photos as f64
        );
        assert_eq!(
            value(
                &m,
                "patrolsync_rpcs_total",
                &[("kind", "push"), ("result", "dropped")]
            ),
            1.0,
            "{backend}"
        );
        let pushes_ok = value(
            &m,
            "patrolsync_rpcs_total",
            &[("kind", "push"), ("result", "ok")],
        );
        assert!(pushes_ok >= 2.0, "{backend}: {pushes_ok}");
        assert_eq!(
            value(&m, "patrolsync_ack_latency_seconds_count", &[]),
            pushes_ok,
            "{backend}: one latency per acknowledged push"
        );
        // The writers' side: every push that reached one was committed (the one whose answer
        // was dropped too), in at most as many group commits; none is waiting now.
        let committed = value(&m, "patrolsync_group_commit_pushes_total", &[]);
        assert_eq!(committed, pushes_ok + 1.0, "{backend}");
        let commits = value(&m, "patrolsync_group_commit_seconds_count", &[]);
        assert!(
            (1.0..=committed).contains(&commits),
            "{backend}: {commits} group commits for {committed} pushes"
        );
        assert!(
            m.samples
                .iter()
                .any(|s| s.metric == "patrolsync_ingest_queue"),
            "{backend}: the queue gauge is scraped"
        );
        assert_eq!(value(&m, "patrolsync_ingest_queue", &[]), 0.0, "{backend}");
        assert!(
            m.samples
                .iter()
                .any(|s| s.metric == "patrolsync_group_commit_rewrites_total"),
            "{backend}: the rewrites counter is scraped"
        );
        assert_eq!(
            value(&m, "patrolsync_group_commit_rewrites_total", &[]),
            0.0,
            "{backend}: no shared write failed"
        );
        assert!(value(&m, "patrolsync_connections_total", &[]) >= 1.0);
        let summary = admin_json(h.server(), "/api/summary").await?;
        for state in ["healthy", "new", "lagging", "silent", "erroring", "revoked"] {
            assert_eq!(
                value(&m, "patrolsync_devices", &[("state", state)]),
                summary["states"][state].as_f64().expect("count"),
                "{backend}: {state}"
            );
        }
        assert_eq!(summary["stats"]["devices"], 1);

        // What the device reported and what the server measured, on the device's page.
        let d = admin_json(h.server(), &format!("/api/devices/{id}")).await?;
        let s = &d["device"];
        assert_eq!(s["user"], "alice");
        assert_eq!(s["acked_through"], 28, "{backend}: {s}");
        assert_eq!(s["rejected_ops"], 1);
        assert!(
            s["sdk_version"].as_str().is_some_and(|v| !v.is_empty()),
            "{s}"
        );
        assert!(s["rtt_ms"].as_i64().is_some(), "{s}");
        assert!(
            s["bytes_in"].as_i64().expect("bytes") > 300_000,
            "{backend}: {s}"
        );
        assert!(s["last_pull_at_ms"].as_i64().is_some(), "{s}");
        assert!(
            s["last_error"].as_str().is_none(),
            "a dropped answer is not an error the device was told: {s}"
        );
        assert!(!d["history"].as_array().expect("history").is_empty());
        assert_eq!(d["rejections"][0]["reason"], "outside_scope");

        // Hazards by cell and status: per street, then inside one.
        let streets = admin_json(h.server(), "/api/hazards").await?;
        assert_eq!(streets["total"], 1, "{streets}");
        assert_eq!(streets["overdue"], 0, "{streets}");
        assert_eq!(streets["cells"][0]["cell"], "S1");
        assert_eq!(streets["cells"][0]["by_status"]["reported"], 1);
        let s1 = admin_json(h.server(), "/api/hazards?cell=S1").await?;
        assert_eq!(s1["cells"][0]["cell"], "S1-C1", "{s1}");
        let elsewhere = admin_json(h.server(), "/api/hazards?cell=S2").await?;
        assert_eq!(elsewhere["total"], 0);
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_syncing_turns_silent_by_itself() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| c.health.silent_after = Duration::from_secs(3)).await?;
        let device = h.device("phone", "bob", &["S1-C1"]).await?;
        let id = device.status().await?.device_id.expect("enrolled");
        device.sync().await?;
        let first = admin_json(h.server(), &format!("/api/devices/{id}")).await?;
        assert_eq!(first["device"]["state"], "healthy", "{backend}: {first}");
        let seen = first["device"]["last_seen_at_ms"].clone();

        // The device does nothing more; only time passes. Wait for the state, bounded.
        let deadline = Instant::now() + Duration::from_secs(30);
        let silent = loop {
            let d = admin_json(h.server(), &format!("/api/devices/{id}")).await?;
            if d["device"]["state"] == "silent" {
                break d;
            }
            assert!(
                Instant::now() < deadline,
                "{backend}: still {}",
                d["device"]["state"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            silent["device"]["last_seen_at_ms"], seen,
            "{backend}: it did nothing"
        );
        assert_eq!(silent["device"]["since_ms"], seen);
        let listed = admin_json(h.server(), "/api/devices?state=silent").await?;
        assert_eq!(listed["devices"][0]["id"], id.as_str());
        h.finish().await;
    }
    Ok(())
}

/// The server's view of a device's outbox follows what it acknowledged: a device that reported
/// 20 waiting ops at Hello and then pushed them all shows 0 waiting and `healthy` (not the 20 of
/// its Hello until the next one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_pushed_its_whole_outbox_shows_none_waiting() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let device = h.device("phone", "carol", &["S1-C1"]).await?;
        let id = device.status().await?.device_id.expect("enrolled");
        for i in 0..20 {
            let checkpoint = format!("S1-C1-K1-B{}-P{}", i % 5 + 1, i % 2 + 1);
            device
                .record_checkin(NewCheckIn::new(checkpoint, CheckInOutcome::Inspected))
                .await?;
        }
        let summary = device.sync().await?;
        assert_eq!((summary.applied, summary.remaining), (20, 0), "{backend}");
        let d = admin_json(h.server(), &format!("/api/devices/{id}")).await?;
        assert_eq!(d["device"]["outbox_depth"], 0, "{backend}: {d}");
        assert_eq!(d["device"]["state"], "healthy", "{backend}: {d}");
        // The Hello that started the sync did report them.
        let history = d["history"]
            .as_array()
            .and_then(|r| r.iter().map(|r| r["outbox_depth"].as_i64()).max())
            .flatten();
        assert_eq!(history, Some(20), "{backend}: {d}");
        h.finish().await;
    }
    Ok(())
}
