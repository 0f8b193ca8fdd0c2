//! Hazards end to end over QUIC: offline edits on three devices converge on every device and
//! the server, the losing transition stays visible as a conflict, scope holds in both
//! directions, and a new device bootstraps its scope. SQLite and (when configured) PostgreSQL.

use patrolsync_proto::Role;
use patrolsync_proto::hazard::{Agency, EventKind, FieldValue, HazardCategory, Status};
use patrolsync_sdk::{Client, NewHazard, Transition};
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, bootstrapped, until_notified};

fn lane(cell: &str) -> NewHazard {
    NewHazard {
        photos: vec![[1; 32]],
        ..patrolsync_tests::blocked_lane(cell)
    }
}

async fn sync_all(devices: &[&Client]) -> anyhow::Result<Vec<patrolsync_sdk::SyncSummary>> {
    // Twice: pushes first everywhere, then everyone pulls what the others pushed.
    let mut summaries = Vec::new();
    for _ in 0..2 {
        for d in devices {
            summaries.push(d.sync().await?);
        }
    }
    Ok(summaries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_on_three_devices_converge_with_the_conflict_visible() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let patroller = h.device("p", "alice", &["S1-C1"]).await?;
        let m1 = h.device_as("m1", "bob", Role::GridManager, &["S1"]).await?;
        let m2 = h
            .device_as("m2", "carol", Role::GridManager, &["S1"])
            .await?;

        let id = patroller.report_hazard(lane("S1-C1-K1")).await?;
        assert_eq!(
            patroller
                .hazard(id)
                .await?
                .expect("local view")
                .state
                .status,
            Status::Reported,
            "optimistic"
        );
        sync_all(&[&patroller, &m1, &m2]).await?;
        m1.transition_hazard(
            id,
            EventKind::Notify,
            Transition {
                deadline_ms: Some(4_100_000_000_000),
                ..Default::default()
            },
        )
        .await?;
        sync_all(&[&m1, &patroller, &m2]).await?;
        assert_eq!(
            patroller.hazard(id).await?.expect("pulled").state.status,
            Status::Rectifying,
            "{backend}"
        );

        // Offline on all three: the patroller edits the description and adds a photo, one
        // manager submits the fix, the other transfers the hazard to the fire brigade.
        patroller
            .edit_hazard(
                id,
                FieldValue::Description("bikes and a sofa in the lane".into()),
            )
            .await?;
        m1.transition_hazard(
            id,
            EventKind::SubmitFix,
            Transition {
                photos: vec![[2; 32]],
                ..Default::default()
            },
        )
        .await?;
        m2.transition_hazard(
            id,
            EventKind::Transfer,
            Transition {
                agency: Some(Agency::FireBrigade),
                note: "owner refuses".into(),
                ..Default::default()
            },
        )
        .await?;
        let summaries = sync_all(&[&patroller, &m1, &m2]).await?;
        assert!(
            summaries.iter().any(|s| s.new_conflicts.len() == 1),
            "{backend}: a device is told its transition lost: {summaries:?}"
        );

        let server = h.server().store().hazard(id).await?.expect("stored");
        let views = [
            patroller.hazard(id).await?,
            m1.hazard(id).await?,
            m2.hazard(id).await?,
        ];
        let states: Vec<_> = views
            .into_iter()
            .map(|v| v.expect("every device has it").state)
            .collect();
        assert_eq!(states[0], states[1], "{backend}: devices converge");
        assert_eq!(states[1], states[2], "{backend}: devices converge");
        let s = &states[0];
        assert_eq!(
            s.status.as_str(),
            server.status,
            "{backend}: device and server agree"
        );
        assert_eq!(s.description.value, "bikes and a sofa in the lane");
        assert_eq!(server.description, s.description.value);
        assert_eq!(s.history.len(), 3, "{backend}: no event is missing");
        let conflicts: Vec<_> = s.conflicts().collect();
        assert_eq!(
            conflicts.len(),
            1,
            "{backend}: exactly one transition lost: {:?}",
            s.history
        );
        assert_eq!(server.conflicts, 1);
        assert!(
            matches!(s.status, Status::Rectified | Status::Transferred),
            "{backend}: {}",
            s.status
        );
        assert!(
            s.photos.contains(&[2; 32]),
            "the fix photo is kept whichever way it went"
        );

        // The server's log is append-only and hash-chained.
        let log = h.server().store().hazard_log(id).await?;
        assert_eq!(log.len(), 5);
        let mut prev = [0u8; 32];
        for e in &log {
            let again = patrolsync_proto::hazard::chain_hash(
                &prev, e.position, &e.kind, e.stamp, e.role, &e.payload,
            );
            assert_eq!(again, e.hash, "{backend}: chain verifies at {}", e.position);
            prev = e.hash;
        }
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_holds_both_ways_and_new_devices_bootstrap() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let s1 = h.device("s1", "alice", &["S1-C1"]).await?;
        let s2 = h.device("s2", "dave", &["S2"]).await?;
        let elsewhere = s2.report_hazard(lane("S2-C1")).await?;
        let mine = s1.report_hazard(lane("S1-C1-K2")).await?;
        let outside = s1.report_hazard(lane("S2-C3")).await?;
        s2.sync().await?;
        let summary = s1.sync().await?;
        assert_eq!(summary.rejected, 1, "{backend}: {summary:?}");
        let rejected = s1.rejected().await?;
        assert_eq!(
            rejected[0].message, "该网格不在您负责的范围内（S2-C3）",
            "{rejected:?}"
        );

        // Pull brought S1-C1's grid and nothing of S2.
        let checkpoints = s1.checkpoints().await?;
        assert_eq!(
            checkpoints.len(),
            4 * 5 * 2,
            "{backend}: every checkpoint of S1-C1"
        );
        assert!(
            checkpoints
                .iter()
                .all(|c| c.code.starts_with("S1-C1-") && c.radius_m > 0.0),
            "{backend}"
        );
        assert!(
            s1.hazard(elsewhere).await?.is_none(),
            "{backend}: nothing from S2"
        );
        assert!(h.server().store().hazard(outside).await?.is_none());
        assert!(
            s1.hazard(outside).await?.is_none(),
            "{backend}: the refused report left the device's view too"
        );

        // A new device of a manager of S1 bootstraps: grid and the open hazard.
        let fresh = h
            .device_as("fresh", "erin", Role::GridManager, &["S1"])
            .await?;
        let boot = fresh.sync().await?;
        // S1: 1 street + 3 communities + 12 compounds + 60 buildings, 120 checkpoints, 1 hazard,
        // then the grant of S1 they came before.
        assert_eq!(boot.pulled, 76 + 120 + 1 + 1, "{backend}: {boot:?}");
        assert_eq!(
            boot.scope_changes
                .iter()
                .map(|n| (n.granted, n.id.as_str(), n.reason.as_str()))
                .collect::<Vec<_>>(),
            [(true, "S1", "assigned")],
            "{backend}"
        );
        assert_eq!(
            fresh
                .hazard(mine)
                .await?
                .expect("bootstrapped")
                .state
                .status,
            Status::Reported
        );
        assert!(fresh.hazard(elsewhere).await?.is_none());
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_brings_a_new_hazard_to_a_listening_device_within_a_second() -> anyhow::Result<()> {
    use patrolsync_sdk::EngineOptions;
    use std::time::{Duration, Instant};
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let reporter = h.device("reporter", "alice", &["S1-C1"]).await?;
        let watcher = h
            .device_as("watcher", "bob", Role::GridManager, &["S1"])
            .await?;
        // No polling: the timer is far longer than the test.
        let engine = watcher.start_engine(EngineOptions {
            interval: Duration::from_secs(3600),
            ..EngineOptions::default()
        });
        let mut events = engine.subscribe();
        bootstrapped(&mut events, backend).await?;
        // Let the listener connection register before the change happens.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let id = reporter.report_hazard(lane("S1-C1-K4")).await?;
        let pushed = Instant::now();
        reporter.sync().await?;
        let (arrived, notified) =
            until_notified(&mut events, pushed + Duration::from_secs(1), || {
                let watcher = watcher.clone();
                async move { Ok(watcher.hazard(id).await?.is_some()) }
            })
            .await?;
        anyhow::ensure!(
            arrived,
            "{backend}: the hazard did not arrive within 1 s (notified: {notified})"
        );
        assert!(notified, "{backend}: it came through Notify");
        eprintln!(
            "{backend}: hazard visible on the watcher {:?} after the push",
            pushed.elapsed()
        );
        engine.stop().await;
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transferred_hazards_reach_only_the_agency_holding_them() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let patroller = h.device("p", "alice", &["S1-C1"]).await?;
        let manager = h.device_as("m", "bob", Role::GridManager, &["S1"]).await?;
        let brigade = h
            .agency_device("fb", "brigade-s1", Agency::FireBrigade, &["S1"])
            .await?;
        let police = h
            .agency_device("ps", "police-s1", Agency::PoliceStation, &["S1"])
            .await?;

        let before = h.dir.path().join("before.jpg");
        std::fs::write(&before, vec![42u8; 30_000])?;
        let photo = patroller.add_photo(&before).await?;
        let id = patroller
            .report_hazard(NewHazard {
                photos: vec![photo],
                ..lane("S1-C1-K1")
            })
            .await?;
        assert_eq!(patroller.sync().await?.photos_uploaded, 1);
        manager.sync().await?;
        manager
            .transition_hazard(
                id,
                EventKind::Notify,
                Transition {
                    deadline_ms: Some(4_100_000_000_000),
                    ..Default::default()
                },
            )
            .await?;
        manager.sync().await?;
        brigade.sync().await?;
        assert!(
            brigade.hazard(id).await?.is_none(),
            "{backend}: not transferred yet, the brigade sees nothing"
        );
        let out = h.dir.path().join("seen.jpg");
        assert!(
            brigade.download_photo(photo, &out).await.is_err(),
            "{backend}: nor its photo"
        );

        // Acting on a hazard the agency does not hold is refused and leaves no trace locally.
        brigade
            .transition_hazard(id, EventKind::AgencyAccept, Transition::default())
            .await?;
        let s = brigade.sync().await?;
        assert_eq!(s.rejected, 1, "{backend}: {s:?}");
        assert_eq!(
            brigade.rejected().await?[0].message,
            format!("隐患 {id} 没有移交给您所在的单位"),
            "{backend}"
        );
        assert!(brigade.hazard(id).await?.is_none());

        manager
            .transition_hazard(
                id,
                EventKind::Transfer,
                Transition {
                    agency: Some(Agency::FireBrigade),
                    note: "needs enforcement".into(),
                    ..Default::default()
                },
            )
            .await?;
        manager.sync().await?;
        brigade.sync().await?;
        police.sync().await?;
        let seen = brigade
            .hazard(id)
            .await?
            .expect("the brigade receives the whole hazard")
            .state;
        assert_eq!(seen.status, Status::Transferred, "{backend}");
        assert!(
            seen.report.is_some(),
            "{backend}: the report from before the transfer came along"
        );
        assert_eq!(seen.history.len(), 2, "{backend}: notify and transfer");
        assert!(
            police.hazard(id).await?.is_none(),
            "{backend}: the police station holds nothing"
        );
        assert_eq!(
            brigade.download_photo(photo, &out).await?,
            30_000,
            "{backend}: the brigade gets the evidence"
        );
        assert!(
            police.download_photo(photo, &out).await.is_err(),
            "{backend}: the police station does not"
        );

        brigade
            .transition_hazard(id, EventKind::AgencyAccept, Transition::default())
            .await?;
        assert_eq!(brigade.sync().await?.applied, 1);
        manager.sync().await?;
        assert_eq!(
            manager.hazard(id).await?.expect("manager").state.status,
            Status::AgencyHandling,
            "{backend}"
        );
        assert_eq!(
            h.server().store().hazard(id).await?.expect("server").status,
            "agency_handling"
        );

        // The brigade fixes it, the manager verifies: both hazard ledgers show the loop.
        brigade
            .transition_hazard(
                id,
                EventKind::AgencyFix,
                Transition {
                    photos: vec![[2; 32]],
                    ..Default::default()
                },
            )
            .await?;
        brigade.sync().await?;
        manager.sync().await?;
        manager
            .transition_hazard(id, EventKind::VerifyPass, Transition::default())
            .await?;
        manager.sync().await?;
        ledgers_show_the_closed_loop(&h, id, backend).await?;
        h.finish().await;
    }
    Ok(())
}

/// The hazard-disposal and hazard-transfer ledgers of a hazard notified, transferred to the
/// fire brigade, accepted, fixed and verified: one row each, and a chain head an inspector can
/// recompute from the log.
async fn ledgers_show_the_closed_loop(
    h: &Harness,
    id: patrolsync_proto::HazardId,
    backend: &str,
) -> anyhow::Result<()> {
    use patrolsync_server::report::{self, Ledger};
    let store = patrolsync_server::open_sql_store(&h.config).await?;
    let cal = h.config.reports.calendar().map_err(anyhow::Error::msg)?;
    let rules = h.config.reports.anomaly_rules();
    let now = patrolsync_server::now_ms();
    let today = cal.date(now);
    let period = format!(
        "{}..{}",
        today.pred_opt().expect("day"),
        today.succ_opt().expect("day")
    )
    .parse()
    .map_err(anyhow::Error::msg)?;
    // A ledger of S1 over the period, as of a moment, in a language.
    use patrolsync_i18n::Lang;
    let of_s1 = |ledger, as_of_ms, lang| report::LedgerQuery {
        ledger,
        period: &period,
        cell: Some("S1"),
        unit: None,
        as_of_ms,
        lang,
    };
    let cell = |t: &report::Table, row: usize, col: &str| {
        let i = t.columns.iter().position(|c| *c == col).expect(col);
        t.rows[row][i].to_string()
    };

    // Recompute the chain as an inspector would, from the log.
    let log = h.server().store().hazard_log(id).await?;
    let mut head = [0u8; 32];
    for e in &log {
        head = patrolsync_proto::hazard::chain_hash(
            &head, e.position, &e.kind, e.stamp, e.role, &e.payload,
        );
        assert_eq!(head, e.hash, "{backend}: entry {} chains", e.position);
    }

    let t = report::ledger(
        &store,
        &cal,
        &rules,
        of_s1(Ledger::HazardDisposal, now, Lang::En),
    )
    .await?;
    assert_eq!(t.rows.len(), 1, "{backend}");
    assert_eq!(cell(&t, 0, "hazard_id"), id.to_string());
    assert_eq!(cell(&t, 0, "status"), "closed", "{backend}");
    assert_eq!(cell(&t, 0, "on_time"), "yes", "{backend}");
    assert_eq!(cell(&t, 0, "transferred_to"), "fire_brigade", "{backend}");
    assert_eq!(cell(&t, 0, "closed_by"), "bob", "{backend}");
    assert_eq!(
        cell(&t, 0, "log_length"),
        log.len().to_string(),
        "{backend}"
    );
    assert_eq!(cell(&t, 0, "chain_head"), hex::encode(head), "{backend}");
    // The same row on the official form: the form's columns, a row number, words for codes.
    let form = report::ledger(
        &store,
        &cal,
        &rules,
        of_s1(Ledger::HazardDisposal, now, Lang::ZhCn),
    )
    .await?;
    assert_eq!(form.title, "隐患处置记录");
    assert_eq!(form.heading[0], "隐患处置记录");
    assert_eq!(
        [
            cell(&form, 0, "序号"),
            cell(&form, 0, "隐患编号"),
            cell(&form, 0, "当前状态"),
            cell(&form, 0, "是否按期"),
            cell(&form, 0, "移交单位"),
            cell(&form, 0, "隐患类别"),
            cell(&form, 0, "记录链校验值"),
        ],
        [
            "1".to_owned(),
            id.to_string(),
            "已销号".into(),
            "按期".into(),
            "消防救援站".into(),
            "占用、堵塞消防车通道".into(),
            hex::encode(head),
        ],
        "{backend}"
    );
    let mut digest = Vec::new();
    digest.extend_from_slice(&id.to_bytes());
    digest.extend_from_slice(&(log.len() as u64).to_be_bytes());
    digest.extend_from_slice(&head);
    assert!(
        t.about.contains(&(
            "chain digest".into(),
            hex::encode(patrolsync_proto::digest::sha256(&digest))
        )),
        "{backend}: {:?}",
        t.about
    );

    let t = report::ledger(
        &store,
        &cal,
        &rules,
        of_s1(Ledger::HazardTransfer, now, Lang::En),
    )
    .await?;
    assert_eq!(t.rows.len(), 1, "{backend}");
    assert_eq!(cell(&t, 0, "agency"), "fire_brigade", "{backend}");
    assert_eq!(cell(&t, 0, "transferred_by"), "bob", "{backend}");
    assert_eq!(cell(&t, 0, "note"), "needs enforcement", "{backend}");
    assert!(!cell(&t, 0, "accepted_at").is_empty(), "{backend}");
    assert!(!cell(&t, 0, "fixed_at").is_empty(), "{backend}");
    assert!(cell(&t, 0, "returned_at").is_empty(), "{backend}");
    assert_eq!(cell(&t, 0, "status"), "closed", "{backend}");
    assert_eq!(cell(&t, 0, "chain_head"), hex::encode(head), "{backend}");

    // As of a moment before the verification arrived, the ledger shows the hazard as it stood
    // then: rectified by the brigade, not closed, its chain one entry shorter.
    let received: Vec<i64> = sqlx::query_scalar(
        "SELECT received_at_ms FROM hazard_log WHERE hazard_id = $1 ORDER BY position",
    )
    .bind(id.to_bytes().to_vec())
    .fetch_all(store.raw_pool())
    .await?;
    let last = *received.last().expect("a log");
    assert!(
        received[received.len() - 2] < last,
        "{backend}: the verification arrived in a later sync than the fix: {received:?}"
    );
    let t = report::ledger(
        &store,
        &cal,
        &rules,
        of_s1(Ledger::HazardDisposal, last - 1, Lang::En),
    )
    .await?;
    assert_eq!(cell(&t, 0, "status"), "rectified", "{backend}");
    assert_eq!(cell(&t, 0, "closed_at"), "", "{backend}");
    assert_eq!(
        cell(&t, 0, "log_length"),
        (log.len() - 1).to_string(),
        "{backend}"
    );
    assert_eq!(
        cell(&t, 0, "chain_head"),
        hex::encode(log[log.len() - 2].hash),
        "{backend}"
    );

    // The evaluation: the street found one, closed it on time, transferred it once; by person,
    // alice found it and bob transferred and closed it.
    let e = report::evaluation(&store, &cal, &rules, &period, Some("S1"), false, now).await?;
    let s1 = &e.rows[0].tally;
    assert_eq!(e.rows[0].subject, "S1");
    assert_eq!(
        (
            s1.hazards_found,
            s1.closed_on_time,
            s1.closed_late,
            s1.overdue,
            s1.transferred
        ),
        (1, 1, 0, 0, 1),
        "{backend}"
    );
    let e = report::evaluation(&store, &cal, &rules, &period, Some("S1"), true, now).await?;
    let person = |name: &str| {
        e.rows
            .iter()
            .find(|r| r.subject == name)
            .map(|r| {
                let t = &r.tally;
                (t.hazards_found, t.closed_on_time, t.transferred)
            })
            .unwrap_or_default()
    };
    assert_eq!(person("alice"), (1, 0, 0), "{backend}");
    assert_eq!(person("bob"), (0, 1, 1), "{backend}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearby_reports_are_linked_and_a_merge_keeps_all_evidence() -> anyhow::Result<()> {
    use patrolsync_proto::GeoFix;
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let a = h.device("a", "alice", &["S1-C1"]).await?;
        let b = h.device("b", "zoe", &["S1-C1"]).await?;
        let manager = h.device_as("m", "bob", Role::GridManager, &["S1"]).await?;
        let at = |lat: f64| {
            Some(GeoFix {
                latitude: lat,
                longitude: 126.65,
                accuracy_m: 5.0,
                fix_time_ms: 0,
                mock: false,
                datum: patrolsync_proto::geo::Datum::Wgs84,
            })
        };
        let first = a
            .report_hazard(NewHazard {
                position: at(45.7500),
                photos: vec![[10; 32]],
                ..lane("S1-C1-K1")
            })
            .await?;
        a.sync().await?;
        // ~22 m away, same category: a possible duplicate. Same spot, other category: not.
        let near = b
            .report_hazard(NewHazard {
                position: at(45.7502),
                photos: vec![[11; 32]],
                ..lane("S1-C1-K1")
            })
            .await?;
        let gas = b
            .report_hazard(NewHazard {
                position: at(45.7500),
                category: HazardCategory::Gas,
                ..lane("S1-C1-K1")
            })
            .await?;
        let far = b
            .report_hazard(NewHazard {
                position: at(45.7600),
                ..lane("S1-C1-K1")
            })
            .await?;
        b.sync().await?;
        let store = h.server().store();
        let summary = |id| {
            let store = store.clone();
            async move { store.hazard(id).await.map(|s| s.expect("stored")) }
        };
        assert_eq!(
            summary(near).await?.possible_duplicate_of,
            Some(first.to_string()),
            "{backend}"
        );
        assert_eq!(
            summary(gas).await?.possible_duplicate_of,
            None,
            "{backend}: other category"
        );
        assert_eq!(
            summary(far).await?.possible_duplicate_of,
            None,
            "{backend}: 1.1 km away"
        );

        manager.sync().await?;
        manager
            .transition_hazard(
                near,
                EventKind::Merge,
                Transition {
                    merge_into: Some(first),
                    ..Default::default()
                },
            )
            .await?;
        manager.sync().await?;
        let survivor = summary(first).await?;
        assert_eq!(survivor.merged_from, vec![near.to_string()], "{backend}");
        assert_eq!(summary(near).await?.status, "merged");
        let view = manager.hazard(first).await?.expect("manager sees it");
        assert_eq!(view.merged.len(), 1, "{backend}");
        let merged = &view.merged[0];
        assert_eq!(merged.id, near);
        assert!(
            merged.photos.contains(&[11; 32]) && merged.report.is_some(),
            "{backend}: evidence kept"
        );
        h.finish().await;
    }
    Ok(())
}

/// An overdue hazard escalates up the tree by itself, and the managers it escalates to learn it
/// through Notify alone (their engines never poll): the compound's manager sees the levels
/// within the compound's community, the street's manager every level up to the top, and the
/// patroller in the building none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overdue_hazards_escalate_to_the_managers_above_through_notify() -> anyhow::Result<()> {
    use patrolsync_sdk::EngineOptions;
    use std::time::{Duration, Instant};
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| {
            c.escalation.interval = Duration::from_secs(1);
            c.escalation.check_every = Duration::from_millis(100);
        })
        .await?;
        let patroller = h.device("p", "alice", &["S1-C1-K1-B1"]).await?;
        let community = h
            .device_as("mc", "chen", Role::GridManager, &["S1-C1"])
            .await?;
        let street = h.device_as("ms", "bob", Role::GridManager, &["S1"]).await?;
        let mut engines = Vec::new();
        for d in [&community, &street] {
            let engine = d.start_engine(EngineOptions {
                interval: Duration::from_secs(3600),
                ..EngineOptions::default()
            });
            let mut events = engine.subscribe();
            bootstrapped(&mut events, backend).await?;
            engines.push((engine, events));
        }

        // Already past its deadline when reported in building S1-C1-K1-B1.
        let id = patroller
            .report_hazard(NewHazard {
                deadline_ms: Some(patrolsync_server::now_ms() - 10),
                ..lane("S1-C1-K1-B1")
            })
            .await?;
        patroller.sync().await?;

        let levels = |d: &Client| {
            let d = d.clone();
            async move {
                Ok::<_, anyhow::Error>(
                    d.hazard(id)
                        .await?
                        .map(|v| {
                            v.escalations
                                .iter()
                                .map(|e| (e.level, e.to_cell.clone()))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default(),
                )
            }
        };
        let want_street: Vec<(u32, String)> = [(1, "S1-C1-K1"), (2, "S1-C1"), (3, "S1")]
            .map(|(l, c)| (l, c.to_owned()))
            .to_vec();
        for ((_, events), (device, want)) in engines
            .iter_mut()
            .zip([(&community, &want_street[..2]), (&street, &want_street[..])])
        {
            let (reached, notified) =
                until_notified(events, Instant::now() + Duration::from_secs(15), || async {
                    Ok(levels(device).await? == want)
                })
                .await?;
            anyhow::ensure!(
                reached,
                "{backend}: escalations seen {:?}, want {want:?} (notified: {notified})",
                levels(device).await?
            );
            assert!(notified, "{backend}: it came through Notify");
        }
        // Stopped at the top: three levels in the store, each once; nothing for the building.
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hazard_escalations")
            .fetch_one(store.raw_pool())
            .await?;
        assert_eq!(rows, 3, "{backend}");
        patroller.sync().await?;
        assert!(levels(&patroller).await?.is_empty(), "{backend}");
        for (engine, _) in engines {
            engine.stop().await;
        }
        h.finish().await;
    }
    Ok(())
}
