//! Routing rules (隐患直报) end to end, on both backends: a hazard reported in a compound whose
//! rule names its property company reaches that company's device through Notify within a
//! second; the company accepts and submits its fix; reminders (督促) go out at each configured
//! point of the deadline, once; a category no rule names goes to the cell's managers alone, and
//! the check says so; an app of pull protocol 3 is sent the feed without routed hazards.

use std::time::{Duration, Instant};

use patrolsync_proto::Role;
use patrolsync_proto::hazard::{EventKind, FieldValue, HazardCategory, Status};
use patrolsync_sdk::{EngineOptions, NewHazard, RecordError, Transition};
use patrolsync_server::routing;
use patrolsync_server::store::{HazardStore, RoutingStore};
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{
    Harness, blocked_lane, bootstrapped, device_view, server_view, until_notified,
};

const RULES: &str = r#"
[reminders]
before = ["2s"]
after = ["0s", "1s"]

[[rule]]
name = "K1 物业: 消防通道"
cell = "S1-C1-K1"
categories = ["blocked_fire_lane", "blocked_evacuation"]
user = "wuye-k1"

[[rule]]
cell = "S1-C1-K2"
user = "wuye-k2"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_hazard_reaches_its_property_company_which_is_reminded_until_it_fixes_it()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| {
            c.escalation.check_every = Duration::from_millis(100);
        })
        .await?;
        let patroller = h.device("p", "alice", &["S1-C1-K1"]).await?;
        let manager = h
            .device_as("m", "bob", Role::GridManager, &["S1-C1"])
            .await?;
        let k1 = h
            .device_as("k1", "wuye-k1", Role::PropertyCompany, &[])
            .await?;
        let k2 = h
            .device_as("k2", "wuye-k2", Role::PropertyCompany, &[])
            .await?;
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let set = routing::parse(RULES, "rules.toml")?;
        let now = patrolsync_server::now_ms();
        assert_eq!(
            store.publish_routing(&set, false, now).await?,
            (1, true),
            "{backend}"
        );
        // The same rules again: nothing new.
        assert_eq!(
            store.publish_routing(&set, false, now).await?,
            (1, false),
            "{backend}"
        );

        // The company's phone listens; it never polls.
        let engine = k1.start_engine(EngineOptions {
            interval: Duration::from_secs(3600),
            ..EngineOptions::default()
        });
        let mut events = engine.subscribe();
        bootstrapped(&mut events, backend).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;

        // Its deadline three seconds away: the "2 s before" point comes first.
        let deadline = patrolsync_server::now_ms() + 3_000;
        let before = patroller
            .add_photo_bytes("消防通道被占用的照片".as_bytes())
            .await?;
        let lane = patroller
            .report_hazard(NewHazard {
                deadline_ms: Some(deadline),
                photos: vec![before],
                ..blocked_lane("S1-C1-K1")
            })
            .await?;
        let mut wiring = blocked_lane("S1-C1-K1");
        wiring.category = HazardCategory::Electrical;
        wiring.description = "裸露电线".into();
        let unrouted = patroller.report_hazard(wiring).await?;
        let pushed = Instant::now();
        patroller.sync().await?;
        let (arrived, notified) =
            until_notified(&mut events, pushed + Duration::from_secs(1), || {
                let k1 = k1.clone();
                async move { Ok(k1.hazard(lane).await?.is_some()) }
            })
            .await?;
        anyhow::ensure!(
            arrived,
            "{backend}: the routed hazard did not reach the company within 1 s (notified: {notified})"
        );
        assert!(notified, "{backend}: it came through Notify");
        eprintln!(
            "{backend}: routed hazard on the company's phone {:?} after the push",
            pushed.elapsed()
        );

        // Reminders at -2 s, 0 s and +1 s of the deadline, each once, through Notify.
        let (reminded, notified) = until_notified(
            &mut events,
            Instant::now() + Duration::from_secs(15),
            || {
                let k1 = k1.clone();
                async move { Ok(offsets(&k1, lane).await? == [-2_000, 0, 1_000]) }
            },
        )
        .await?;
        anyhow::ensure!(
            reminded,
            "{backend}: reminders seen {:?} (notified: {notified})",
            offsets(&k1, lane).await?
        );
        assert!(notified, "{backend}: reminders come through Notify");
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT offset_ms, party FROM hazard_reminders ORDER BY offset_ms")
                .fetch_all(store.raw_pool())
                .await?;
        assert_eq!(
            rows,
            [
                (-2_000, "wuye-k1".to_owned()),
                (0, "wuye-k1".to_owned()),
                (1_000, "wuye-k1".to_owned())
            ],
            "{backend}: each point once, to the routed party"
        );
        // From here on the company syncs by hand.
        engine.stop().await;
        // A later run at the same points adds nothing.
        let again = store.remind_due(deadline + 60_000).await?;
        assert!(again.reminders.is_empty(), "{backend}: {again:?}");

        // The company holds the routed hazard alone, and may read its photo; the other company
        // holds nothing and may not.
        k1.sync().await?;
        k2.sync().await?;
        let seen = h.dir.path().join("seen.jpg");
        k1.download_photo(before, &seen).await?;
        assert_eq!(
            std::fs::read(&seen)?,
            "消防通道被占用的照片".as_bytes(),
            "{backend}"
        );
        assert!(
            k2.download_photo(before, h.dir.path().join("no.jpg"))
                .await
                .is_err(),
            "{backend}: another company reads no photo"
        );
        // A party takes no cells, and holds none through an assignment.
        let refused = patrolsync_server::store::GridStore::assign(
            &store,
            "wuye-k1",
            &["S1-C1-K1".to_owned()],
            false,
            patrolsync_server::now_ms(),
        )
        .await
        .expect_err("no cells for a party");
        assert!(
            refused
                .to_string()
                .contains("holds the hazards routing rules send it, not grid cells"),
            "{backend}: {refused}"
        );
        assert!(k1.hazard(unrouted).await?.is_none(), "{backend}");
        assert!(k2.hazards().await?.is_empty(), "{backend}");
        // It may not edit the hazard's fields: refused on the phone, with the role named.
        match k1
            .edit_hazard(lane, FieldValue::Description("改".into()))
            .await
        {
            Err(RecordError::Forbidden { action, reason }) => {
                assert_eq!(action, "edit", "{backend}");
                assert!(reason.contains("property_company"), "{backend}: {reason}");
            }
            other => panic!("{backend}: a company's field edit: {other:?}"),
        }

        // It accepts and submits its fix; the manager verifies and closes it.
        k1.transition_hazard(lane, EventKind::Accept, Transition::default())
            .await?;
        k1.transition_hazard(
            lane,
            EventKind::SubmitFix,
            Transition {
                photos: vec![[7; 32]],
                note: "车辆已挪走".into(),
                ..Transition::default()
            },
        )
        .await?;
        let s = k1.sync().await?;
        assert_eq!(
            (s.applied, s.new_conflicts.len()),
            (2, 0),
            "{backend}: {s:?}"
        );
        manager.sync().await?;
        let seen = manager.hazard(lane).await?.expect("the manager holds it");
        assert_eq!(seen.state.status, Status::Rectified, "{backend}");
        let steps: Vec<(EventKind, Role)> = seen
            .state
            .history
            .iter()
            .map(|e| (e.kind, e.role))
            .collect();
        assert_eq!(
            steps,
            [
                (EventKind::Accept, Role::PropertyCompany),
                (EventKind::SubmitFix, Role::PropertyCompany)
            ],
            "{backend}"
        );
        manager
            .transition_hazard(lane, EventKind::VerifyPass, Transition::default())
            .await?;
        manager.sync().await?;
        k1.sync().await?;
        patroller.sync().await?;
        assert_eq!(
            k1.hazard(lane).await?.expect("held").state.status,
            Status::Closed,
            "{backend}"
        );
        for d in [&patroller, &manager, &k1, &k2] {
            assert_eq!(
                device_view(d).await?,
                server_view(h.server(), d).await?,
                "{backend}"
            );
        }

        // The evaluation's routing outcomes: the company was sent one, accepted and fixed it.
        let cal = h.config.reports.calendar().map_err(anyhow::Error::msg)?;
        let reported = seen
            .state
            .report
            .as_ref()
            .map(|(r, _)| r.device_time_ms)
            .expect("reported");
        let period = patrolsync_tests::day_of(&cal, reported);
        let evaluation = patrolsync_server::report::evaluation(
            &store,
            &cal,
            &h.config.reports.anomaly_rules(),
            &period,
            None,
            false,
            patrolsync_server::now_ms(),
        )
        .await?;
        let outcome = evaluation
            .routing
            .iter()
            .find(|o| o.party == "wuye-k1")
            .expect("the company's outcome");
        assert_eq!(
            (outcome.routed, outcome.accepted, outcome.fixed),
            (1, 1, 1),
            "{backend}: {outcome:?}"
        );
        assert!(outcome.accept_p50_hours.is_some() && outcome.fix_p50_hours.is_some());

        // The check names the rule for the routed category, and the managers alone for the
        // other; the patroller's manager gets both either way.
        let hit = store
            .route_check("S1-C1-K1", HazardCategory::BlockedFireLane, None)
            .await?;
        let rule = hit.rule.expect("a rule routes it");
        assert_eq!(
            (rule.n, rule.party.as_str(), hit.version),
            (1, "wuye-k1", 1),
            "{backend}"
        );
        let fallback = store
            .route_check("S1-C1-K1-B1", HazardCategory::Electrical, None)
            .await?;
        assert!(fallback.rule.is_none(), "{backend}: {fallback:?}");
        assert_eq!(fallback.managers, ["bob"], "{backend}");
        assert!(manager.hazard(unrouted).await?.is_some(), "{backend}");

        // An app of pull protocol 3 could not fold the company's steps: it is sent the feed
        // without the routed hazard (and its reminders), but with the other.
        let conn = patrolsync_tests::device_connection(&h, &h.dir.path().join("m")).await?;
        let old_pull = patrolsync_proto::frame::encode(&patrolsync_proto::wire::Request {
            kind: Some(patrolsync_proto::wire::request::Kind::Pull(
                patrolsync_proto::wire::PullRequest {
                    limit: 1000,
                    protocol: 3,
                    ..Default::default()
                },
            )),
        });
        let Some(patrolsync_proto::wire::response::Kind::Pull(page)) =
            patrolsync_tests::exchange(&conn, &old_pull).await?.kind
        else {
            panic!("{backend}: a protocol-3 pull is answered");
        };
        use patrolsync_proto::wire::change::Entity;
        let reported: Vec<Vec<u8>> = page
            .changes
            .iter()
            .filter_map(|c| match &c.entity {
                Some(Entity::HazardReport(r)) => Some(r.id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(reported, [unrouted.to_bytes()], "{backend}");
        assert!(
            page.changes.iter().all(|c| !matches!(
                &c.entity,
                Some(Entity::HazardReminder(_) | Entity::HazardEvent(_))
            )),
            "{backend}"
        );
        conn.close(0u32.into(), b"done");
        h.finish().await;
    }
    Ok(())
}

/// Reminder offsets the device holds for `hazard`, in the order they came.
async fn offsets(
    device: &patrolsync_sdk::Client,
    hazard: patrolsync_proto::HazardId,
) -> anyhow::Result<Vec<i64>> {
    Ok(device
        .hazard(hazard)
        .await?
        .map(|v| v.reminders.iter().map(|r| r.offset_ms).collect())
        .unwrap_or_default())
}

/// A rule for key units sends a hazard reported at a unit's checkpoint to the account the
/// register names as its responsible person; a unit that names none, or a report at no unit,
/// passes to the next rule (here the fire brigade), and the check says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_unit_rule_routes_to_the_units_responsible_user_or_passes_to_the_next_rule()
-> anyhow::Result<()> {
    use patrolsync_proto::hazard::Agency;
    use patrolsync_server::registry_import::import_units;
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let patroller = h.device("p", "alice", &["S1-C1-K1"]).await?;
        let pharmacy = h
            .device_as("ph", "renhe", Role::PropertyCompany, &[])
            .await?;
        let brigade = h
            .agency_device("fb", "brigade", Agency::FireBrigade, &["S1"])
            .await?;
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let units = h.dir.path().join("units.csv");
        std::fs::write(
            &units,
            "编码,网格,类型,名称,责任人,检查点,责任人账号\n\
             U-PHARMACY,S1-C1-K1,涉药单位,仁和大药房,王芳,S1-C1-K1-B1-P1,renhe\n\
             U-SCHOOL,S1-C1-K1,school,第一小学,李强,S1-C1-K1-B1-P2,\n",
        )?;
        import_units(&store, &units, false, patrolsync_server::now_ms()).await?;
        let set = routing::parse(
            "[[rule]]\ncell = \"S1-C1\"\nunit = true\n\n\
             [[rule]]\ncell = \"S1\"\nagency = \"fire_brigade\"\n",
            "rules.toml",
        )?;
        store
            .publish_routing(&set, false, patrolsync_server::now_ms())
            .await?;

        let at = |checkpoint: Option<&str>| NewHazard {
            checkpoint: checkpoint.map(str::to_owned),
            ..blocked_lane("S1-C1-K1")
        };
        let at_pharmacy = patroller.report_hazard(at(Some("S1-C1-K1-B1-P1"))).await?;
        let at_school = patroller.report_hazard(at(Some("S1-C1-K1-B1-P2"))).await?;
        let nowhere = patroller.report_hazard(at(None)).await?;
        patroller.sync().await?;

        let routed: Vec<(Vec<u8>, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT id, routed_party, routed_rule FROM hazards")
                .fetch_all(store.raw_pool())
                .await?;
        let party_of = |id: patrolsync_proto::HazardId| {
            routed
                .iter()
                .find(|(h, _, _)| *h == id.to_bytes())
                .map(|(_, p, r)| (p.clone(), r.clone()))
        };
        assert_eq!(
            party_of(at_pharmacy),
            Some((Some("renhe".into()), Some("1#1".into()))),
            "{backend}"
        );
        for id in [at_school, nowhere] {
            assert_eq!(
                party_of(id),
                Some((Some("fire_brigade".into()), Some("1#2".into()))),
                "{backend}"
            );
        }

        // Each party holds what was sent to it, and nothing else.
        pharmacy.sync().await?;
        brigade.sync().await?;
        let held = |v: Vec<patrolsync_sdk::HazardView>| {
            let mut ids: Vec<_> = v.into_iter().map(|h| h.state.id).collect();
            ids.sort();
            ids
        };
        assert_eq!(held(pharmacy.hazards().await?), [at_pharmacy], "{backend}");
        let mut sent = vec![at_school, nowhere];
        sent.sort();
        assert_eq!(held(brigade.hazards().await?), sent, "{backend}");
        for d in [&patroller, &pharmacy, &brigade] {
            assert_eq!(
                device_view(d).await?,
                server_view(h.server(), d).await?,
                "{backend}"
            );
        }

        // The check says why the unit rule passed over the other two.
        let school = store
            .route_check(
                "S1-C1-K1",
                HazardCategory::BlockedFireLane,
                Some("S1-C1-K1-B1-P2"),
            )
            .await?;
        assert_eq!(
            school
                .passed
                .iter()
                .map(|p| (p.n, p.reason.as_str()))
                .collect::<Vec<_>>(),
            [(1, "no_responsible_user")],
            "{backend}"
        );
        assert_eq!(
            school.rule.map(|r| (r.n, r.audience)),
            Some((2, "agency:fire_brigade".into())),
            "{backend}"
        );
        let bare = store
            .route_check("S1-C1-K1", HazardCategory::BlockedFireLane, None)
            .await?;
        assert_eq!(bare.passed[0].reason, "no_unit", "{backend}");
        h.finish().await;
    }
    Ok(())
}
