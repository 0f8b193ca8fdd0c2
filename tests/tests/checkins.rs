//! Check-ins end to end over real QUIC: offline recording, exactly-once ingest, lost answers,
//! per-op rejections, single-use enrollment. Every test runs on SQLite and, when
//! PATROLSYNC_TEST_DATABASE_URL is set, on PostgreSQL.

use patrolsync_proto::{CheckInKind, CheckInMethod, CheckInOutcome, GeoFix, Role};
use patrolsync_sdk::{Client, ClientConfig, EnrollError, ErrorCode, NewCheckIn, SyncError};
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, fast_client};

fn checkin(i: usize) -> NewCheckIn {
    let mut c = NewCheckIn::new(
        format!("S1-C1-K{}-B{}-P{}", i % 4 + 1, i % 5 + 1, i % 2 + 1),
        CheckInOutcome::Inspected,
    );
    c.method = CheckInMethod::Nfc;
    c.kind = if i.is_multiple_of(3) {
        CheckInKind::Inspection
    } else {
        CheckInKind::Patrol
    };
    c.tag_uid = format!("TAG-{i}");
    c.fix = Some(GeoFix {
        latitude: 45.75 + i as f64 * 1e-5,
        longitude: 126.65,
        accuracy_m: 5.5,
        fix_time_ms: 0,
        mock: i.is_multiple_of(7),
        datum: patrolsync_proto::geo::Datum::Wgs84,
    });
    c.note = format!("round {i}: 消防通道畅通");
    c.monotonic_ms = Some(1_000_000 + i as u64);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_offline_checkins_sync_exactly_once() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let mut h = Harness::start(db).await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        h.stop().await;

        let mut recorded = Vec::new();
        for i in 0..1000 {
            recorded.push((
                device_id_of(&device.record_checkin(checkin(i)).await?),
                checkin(i),
            ));
        }
        assert_eq!(device.status().await?.pending_ops, 1000);
        let offline = device.sync().await.expect_err("server is down");
        assert!(offline.is_retryable(), "{offline}");
        assert_eq!(
            device.status().await?.pending_ops,
            1000,
            "nothing lost while offline"
        );

        h.restart().await?;
        let summary = device.sync().await?;
        assert_eq!(
            (summary.applied, summary.rejected, summary.remaining),
            (1000, 0, 0),
            "{backend}: {summary:?}"
        );
        let status = device.status().await?;
        assert_eq!(status.pending_ops, 0);
        assert!(status.last_sync_at_ms.is_some() && status.last_error.is_none());

        let stored = h.server().store().check_ins(None, 5000).await?;
        assert_eq!(stored.len(), 1000, "{backend}: exactly 1000 rows");
        let by_id: std::collections::HashMap<_, _> = stored
            .iter()
            .map(|s| (s.check_in.id.to_string(), s))
            .collect();
        for (id, sent) in &recorded {
            let got = by_id
                .get(id)
                .unwrap_or_else(|| panic!("{backend}: check-in {id} missing"));
            let c = &got.check_in;
            assert_eq!(c.checkpoint, sent.checkpoint);
            assert_eq!(
                (c.kind, c.method, c.outcome),
                (sent.kind, sent.method, sent.outcome)
            );
            assert_eq!(c.tag_uid, sent.tag_uid);
            assert_eq!(c.fix, sent.fix);
            assert_eq!(c.note, sent.note);
            assert_eq!(c.monotonic_ms, sent.monotonic_ms.unwrap_or_default());
            assert_eq!(got.user, "alice");
        }
        assert_eq!(h.server().store().stats(0).await?.check_ins, 1000);
        h.finish().await;
    }
    Ok(())
}

fn device_id_of(id: &patrolsync_proto::CheckInId) -> String {
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answer_is_resent_and_answered_duplicate() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        for i in 0..30 {
            device.record_checkin(checkin(i)).await?;
        }
        // The server commits the push, then the answer is lost on the way back.
        h.server().faults().drop_push_acks_after_commit(1);
        let summary = device.sync().await?;
        assert_eq!(
            h.server().store().stats(0).await?.check_ins,
            30,
            "{backend}"
        );
        assert_eq!(
            summary.duplicates, 30,
            "{backend}: the resend is answered duplicate: {summary:?}"
        );
        assert_eq!(summary.applied, 0, "{backend}: {summary:?}");
        assert_eq!(device.status().await?.pending_ops, 0);

        // Another sync has nothing to do and changes nothing.
        let again = device.sync().await?;
        assert_eq!((again.pushed, again.remaining), (0, 0));
        assert_eq!(
            h.server().store().stats(0).await?.check_ins,
            30,
            "{backend}"
        );
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checkins_are_rejected_by_field_and_the_rest_apply() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        // A device whose app skipped local validation: craft ops through a second enrollment
        // and the raw protocol is covered by the hostile-input suite; here the SDK refuses
        // locally and the server refuses scope.
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        device.record_checkin(checkin(1)).await?;
        let outside = NewCheckIn::new("S2-C3-K1-B1-P1", CheckInOutcome::Inspected);
        device.record_checkin(outside).await?;
        let unknown = NewCheckIn::new("S9-NOPE", CheckInOutcome::Locked);
        device.record_checkin(unknown).await?;
        device.record_checkin(checkin(2)).await?;

        let mut bad_lat = checkin(3);
        bad_lat.fix.as_mut().expect("fix").latitude = 123.0;
        let local = device
            .record_checkin(bad_lat)
            .await
            .expect_err("latitude 123 is refused on the device");
        let text = local.to_string();
        assert!(
            text.contains("fix.latitude") && text.contains("123") && text.contains("out of range"),
            "{text}"
        );

        let summary = device.sync().await?;
        assert_eq!(
            (summary.applied, summary.rejected, summary.remaining),
            (2, 2, 0),
            "{backend}: {summary:?}"
        );
        let rejected = device.rejected().await?;
        let scope = rejected
            .iter()
            .find(|r| r.reason == "outside_scope")
            .expect("scope rejection");
        assert_eq!(scope.field, "checkpoint");
        // The server words its refusal in the device's language (zh-CN by default).
        assert_eq!(
            scope.message, "该检查点不在您负责的网格内（S2-C3-K1-B1-P1）",
            "{backend}"
        );
        let missing = rejected
            .iter()
            .find(|r| r.reason == "unknown_checkpoint")
            .expect("unknown checkpoint");
        assert_eq!(missing.message, "检查点 S9-NOPE 不存在", "{backend}");
        // Each refusal is also a typed code naming what the op named, with its message in the
        // patroller's language.
        assert_eq!(
            scope.error,
            ErrorCode::OutsideScope {
                field: "checkpoint".into(),
                value: "S2-C3-K1-B1-P1".into()
            }
        );
        assert_eq!(
            scope.error.message("zh-CN"),
            "该检查点不在您负责的网格内（S2-C3-K1-B1-P1）"
        );
        assert_eq!(
            missing.error,
            ErrorCode::UnknownCheckpoint {
                checkpoint: "S9-NOPE".into()
            }
        );
        assert_eq!(missing.error.message("zh-CN"), "检查点 S9-NOPE 不存在");

        // The same refusal to a device set to English: the same code, in English, with the
        // server's detail (the user's cells).
        let english = h
            .device_with(
                "phone-en",
                "bob",
                &["S1-C1"],
                ClientConfig {
                    language: "en".into(),
                    ..fast_client()
                },
            )
            .await?;
        english
            .record_checkin(NewCheckIn::new("S2-C3-K1-B1-P1", CheckInOutcome::Inspected))
            .await?;
        assert_eq!(english.sync().await?.rejected, 1, "{backend}");
        let refused = &english.rejected().await?[0];
        assert_eq!(
            (refused.reason.as_str(), &refused.error),
            ("outside_scope", &scope.error),
            "{backend}"
        );
        assert_eq!(
            refused.message,
            "checkpoint S2-C3-K1-B1-P1 is outside your grid cells (assigned: S1-C1)",
            "{backend}"
        );

        let log = h.server().store().rejections(None, 10).await?;
        assert_eq!(log.len(), 3, "{backend}: the rejection log keeps all three");
        assert_eq!(h.server().store().stats(0).await?.check_ins, 2);
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_code_works_once() -> anyhow::Result<()> {
    for db in test_databases().await {
        let h = Harness::start(db).await?;
        let code = h.enrollment("bob", Role::Patroller, &["S1-C2"]).await?;
        let first = Client::open(h.dir.path().join("first"), fast_client()).await?;
        let e = first.enroll(&code, None, "first").await?;
        assert_eq!(
            (e.user.as_str(), e.grid_cells.clone()),
            ("bob", vec!["S1-C2".to_owned()])
        );

        let second = Client::open(h.dir.path().join("second"), fast_client()).await?;
        let err = second
            .enroll(&code, None, "second")
            .await
            .expect_err("code is single-use");
        assert!(matches!(err, EnrollError::Refused(_)), "{err:?}");
        assert!(err.to_string().contains("already used"), "{err}");
        assert!(matches!(second.sync().await, Err(SyncError::NotEnrolled)));
        assert_eq!(h.server().store().stats(0).await?.devices, 1);
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_tap_is_stored_marked_and_counted_once() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        let first = device
            .record_checkin(NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected))
            .await?;
        let tap = device
            .record_checkin(NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected))
            .await?;
        let other = device
            .record_checkin(NewCheckIn::new("S1-C1-K1-B1-P2", CheckInOutcome::Inspected))
            .await?;
        assert_eq!(
            device.sync().await?.applied,
            3,
            "{backend}: a double tap is stored, not dropped"
        );
        let stored = h.server().store().check_ins(None, 10).await?;
        let dup_of = |id: &patrolsync_proto::CheckInId| {
            stored
                .iter()
                .find(|s| s.check_in.id == *id)
                .map(|s| s.duplicate_of)
                .expect("stored")
        };
        assert_eq!(dup_of(&first), None);
        assert_eq!(dup_of(&tap), Some(first), "{backend}");
        assert_eq!(dup_of(&other), None);
        let stats = h.server().store().stats(0).await?;
        assert_eq!((stats.check_ins, stats.double_taps), (3, 1), "{backend}");
        let local = device.recent_check_ins(10, None).await?;
        assert!(
            local.len() == 3 && local.iter().all(|c| c.state == "synced"),
            "{backend}: {local:?}"
        );
        h.finish().await;
    }
    Ok(())
}

/// The backlog in priority order: a hazard reported behind 20,000 queued check-ins is on the
/// server after the device's first push (whose answer is then lost, so the sync stops there),
/// and the next sync brings every check-in once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hazard_behind_twenty_thousand_check_ins_goes_in_the_first_push() -> anyhow::Result<()> {
    const QUEUED: usize = 20_000;
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let config = patrolsync_sdk::ClientConfig {
            max_attempts: 1,
            ..fast_client()
        };
        let device = h.device_with("phone", "alice", &["S1-C1"], config).await?;
        for i in 0..QUEUED {
            device.record_checkin(checkin(i)).await?;
        }
        let hazard = device
            .report_hazard(patrolsync_tests::blocked_lane("S1-C1-K1"))
            .await?;

        h.server().faults().drop_push_acks_after_commit(1);
        let cut = device.sync().await;
        assert!(
            matches!(cut, Err(SyncError::Network { .. })),
            "{backend}: the first push's answer was lost: {cut:?}"
        );
        let store = h.server().store();
        let stats = store.stats(0).await?;
        assert_eq!(
            (stats.hazards, stats.check_ins),
            (1, 0),
            "{backend}: the first push carried the hazard, and nothing before it"
        );
        assert!(
            store.hazard(hazard).await?.is_some(),
            "{backend}: the server has hazard {hazard}"
        );

        let summary = device.sync().await?;
        assert_eq!(summary.remaining, 0, "{backend}: {summary:?}");
        let stats = store.stats(0).await?;
        assert_eq!(
            (stats.hazards, stats.check_ins),
            (1, QUEUED as i64),
            "{backend}: everything once"
        );
        h.finish().await;
    }
    Ok(())
}

/// A hazard reported while a long backlog of check-ins is being pushed goes in the next push,
/// not after the backlog: when the device has the server's answer for it, check-ins are still
/// queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hazard_reported_during_a_long_push_does_not_wait_for_it() -> anyhow::Result<()> {
    const QUEUED: usize = 5_000;
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let config = patrolsync_sdk::ClientConfig {
            batch_size: 50,
            max_in_flight: 1,
            ..fast_client()
        };
        let device = h.device_with("phone", "alice", &["S1-C1"], config).await?;
        for i in 0..QUEUED {
            device.record_checkin(checkin(i)).await?;
        }
        let syncing = tokio::spawn({
            let device = device.clone();
            async move { device.sync().await }
        });
        // Once the first check-ins are answered, the patroller reports a hazard.
        let bound = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while device.status().await?.pending_ops == QUEUED as u64 {
            anyhow::ensure!(
                std::time::Instant::now() < bound,
                "{backend}: no push answered"
            );
            tokio::task::yield_now().await;
        }
        let hazard = device
            .report_hazard(patrolsync_tests::blocked_lane("S1-C1-K1"))
            .await?;
        let waiting = loop {
            let view = device
                .hazard(hazard)
                .await?
                .expect("the device's own hazard");
            if !view.has_local_changes {
                break device.status().await?.pending_ops;
            }
            anyhow::ensure!(
                std::time::Instant::now() < bound,
                "{backend}: hazard never sent"
            );
            tokio::task::yield_now().await;
        };
        assert!(
            waiting > 0,
            "{backend}: the hazard was answered only after every check-in"
        );
        let summary = syncing.await??;
        assert_eq!(summary.remaining, 0, "{backend}: {summary:?}");
        let stats = h.server().store().stats(0).await?;
        assert_eq!(
            (stats.hazards, stats.check_ins),
            (1, QUEUED as i64),
            "{backend}: everything once"
        );
        h.finish().await;
    }
    Ok(())
}
