//! The eight must-report kinds (八必报) end to end, on both backends: every kind can be reported
//! from the SDK; the fire-hazard and violation kinds run the closed loop as hazards do, the
//! three information kinds (外来人员就业, 新增残障等帮扶人员, 消防安全不稳定因素) go to the
//! cell's managers, are acknowledged and never enter a rectification state, and the
//! evaluation counts every kind.

use patrolsync_proto::Role;
use patrolsync_proto::hazard::{EventKind, FieldValue, Handling, HazardCategory, Status};
use patrolsync_sdk::{ErrorCode, RecordError, Transition, conflict_code};
use patrolsync_server::report;
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, blocked_lane, device_view, server_view};

/// The seed's eight must-report kinds and the categories a device files each under.
const EIGHT: [(&str, &[HazardCategory]); 8] = [
    ("消防设施损坏", &[HazardCategory::DamagedFacility]),
    ("消防车道堵塞", &[HazardCategory::BlockedFireLane]),
    (
        "发现火灾隐患和消防违法行为",
        &[
            HazardCategory::BlockedEvacuation,
            HazardCategory::Electrical,
            HazardCategory::Gas,
            HazardCategory::OpenFlame,
            HazardCategory::FlammableStorage,
            HazardCategory::Other,
        ],
    ),
    ("居民房屋出租", &[HazardCategory::RentalHousing]),
    ("六小单位装修", &[HazardCategory::Renovation]),
    ("外来人员就业", &[HazardCategory::OutsideWorkers]),
    ("新增残障等帮扶人员", &[HazardCategory::AssistedPerson]),
    ("有消防安全不稳定因素", &[HazardCategory::UnstableFactor]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_must_report_kind_is_reported_and_the_information_kinds_are_only_acknowledged()
-> anyhow::Result<()> {
    // Every category is one of the eight kinds, and only the last three are information.
    let listed: Vec<HazardCategory> = EIGHT.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    assert_eq!(listed.len(), HazardCategory::ALL.len());
    for c in HazardCategory::ALL {
        assert!(listed.contains(c), "{c} is none of the eight kinds");
        let info = [
            HazardCategory::OutsideWorkers,
            HazardCategory::AssistedPerson,
            HazardCategory::UnstableFactor,
        ]
        .contains(c);
        assert_eq!(c.is_information(), info, "{c}");
    }
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let patroller = h.device("p", "alice", &["S1-C1-K1"]).await?;
        let manager = h
            .device_as("m", "bob", Role::GridManager, &["S1-C1"])
            .await?;
        let mut reported = Vec::new();
        for (kind, categories) in EIGHT {
            for c in categories {
                let mut report = blocked_lane("S1-C1-K1");
                report.category = *c;
                report.description = format!("{kind}: {c}");
                if c.is_information() {
                    report.handling = Handling::OnTheSpot;
                    report.deadline_ms = None;
                }
                reported.push((*c, patroller.report_hazard(report).await?));
            }
        }
        // An information report names no deadline: refused on the phone.
        let mut dated = blocked_lane("S1-C1-K1");
        dated.category = HazardCategory::UnstableFactor;
        match patroller.report_hazard(dated).await {
            Err(RecordError::Invalid(i)) => assert_eq!(
                (i.field.as_str(), i.reason),
                ("deadline_ms", "information_report"),
                "{backend}"
            ),
            other => panic!("{backend}: an information report with a deadline: {other:?}"),
        }
        let s = patroller.sync().await?;
        assert_eq!((s.applied, s.rejected), (13, 0), "{backend}: {s:?}");
        manager.sync().await?;
        let info = |c: HazardCategory| reported.iter().find(|(k, _)| *k == c).expect("reported").1;

        // The manager acknowledges one information report; a rectification step on another
        // is kept as a conflict, never applied.
        let workers = info(HazardCategory::OutsideWorkers);
        let unsettling = info(HazardCategory::UnstableFactor);
        manager
            .transition_hazard(workers, EventKind::Acknowledge, Transition::default())
            .await?;
        manager
            .transition_hazard(
                unsettling,
                EventKind::Notify,
                Transition {
                    deadline_ms: Some(4_000_000_000_000),
                    ..Transition::default()
                },
            )
            .await?;
        // Acknowledging a hazard is refused the same way.
        let lane = info(HazardCategory::BlockedFireLane);
        manager
            .transition_hazard(lane, EventKind::Acknowledge, Transition::default())
            .await?;
        manager.sync().await?;
        patroller.sync().await?;
        for d in [&patroller, &manager] {
            assert_eq!(
                device_view(d).await?,
                server_view(h.server(), d).await?,
                "{backend}"
            );
        }
        let acked = manager.hazard(workers).await?.expect("held").state;
        assert_eq!(acked.status, Status::Acknowledged, "{backend}");
        let refused = manager.hazard(unsettling).await?.expect("held").state;
        assert_eq!(
            refused.status,
            Status::Reported,
            "{backend}: never rectifying"
        );
        let conflict = refused.conflicts().next().expect("kept as a conflict");
        assert_eq!(
            conflict_code(conflict),
            ErrorCode::WrongKind {
                action: "notify".into(),
                information: true
            },
            "{backend}"
        );
        let lane_state = manager.hazard(lane).await?.expect("held").state;
        assert_eq!(
            conflict_code(lane_state.conflicts().next().expect("a conflict")),
            ErrorCode::WrongKind {
                action: "acknowledge".into(),
                information: false
            },
            "{backend}"
        );
        // The server's fold agrees.
        let on_server = h
            .server()
            .store()
            .hazard(unsettling)
            .await?
            .expect("stored");
        assert_eq!(
            (on_server.status.as_str(), on_server.conflicts),
            ("reported", 1),
            "{backend}"
        );

        // An information report cannot be turned into a hazard, nor given a deadline.
        for value in [
            FieldValue::Category(HazardCategory::Electrical),
            FieldValue::Deadline(Some(4_000_000_000_000)),
        ] {
            match manager.edit_hazard(unsettling, value.clone()).await {
                Err(RecordError::Invalid(i)) => {
                    assert_eq!(i.reason, "information_report", "{backend}: {value:?}")
                }
                other => panic!("{backend}: {value:?} on an information report: {other:?}"),
            }
        }

        // An app of pull protocol 2 could not fold an information report: it is sent the feed
        // without them (and without the acknowledgement), but with every hazard.
        let conn = patrolsync_tests::device_connection(&h, &h.dir.path().join("p")).await?;
        let old_pull = patrolsync_proto::frame::encode(&patrolsync_proto::wire::Request {
            kind: Some(patrolsync_proto::wire::request::Kind::Pull(
                patrolsync_proto::wire::PullRequest {
                    limit: 1000,
                    protocol: 2,
                    ..Default::default()
                },
            )),
        });
        let Some(patrolsync_proto::wire::response::Kind::Pull(page)) =
            patrolsync_tests::exchange(&conn, &old_pull).await?.kind
        else {
            panic!("{backend}: a protocol-2 pull is answered");
        };
        use patrolsync_proto::wire::change::Entity;
        let categories: Vec<i32> = page
            .changes
            .iter()
            .filter_map(|c| match &c.entity {
                Some(Entity::HazardReport(r)) => Some(r.category),
                _ => None,
            })
            .collect();
        assert_eq!(
            categories.len(),
            10,
            "{backend}: the ten hazards, no information report"
        );
        assert!(
            categories.iter().all(|c| (1..=10).contains(c)),
            "{backend}: {categories:?}"
        );
        assert!(
            page.changes.iter().all(|c| !matches!(
                &c.entity,
                Some(Entity::HazardEvent(e)) if e.kind == patrolsync_proto::wire::HazardEventKind::Acknowledge as i32
            )),
            "{backend}"
        );
        conn.close(0u32.into(), b"done");

        // The evaluation counts every kind; information reports are not hazards found.
        let cal = h.config.reports.calendar().map_err(anyhow::Error::msg)?;
        let today = cal.date(patrolsync_server::now_ms());
        let period = format!(
            "{}..{}",
            today.pred_opt().expect("day"),
            today.succ_opt().expect("day")
        )
        .parse()
        .map_err(anyhow::Error::msg)?;
        let sql = patrolsync_server::open_sql_store(&h.config).await?;
        let evaluation = report::evaluation(
            &sql,
            &cal,
            &h.config.reports.anomaly_rules(),
            &period,
            Some("S1-C1-K1"),
            false,
            patrolsync_server::now_ms(),
        )
        .await?;
        let k1 = &evaluation.rows[0].tally;
        assert_eq!(
            (k1.hazards_found, k1.information_reports, k1.acknowledged),
            (10, 3, 1),
            "{backend}"
        );
        assert_eq!(k1.reported_by_kind.len(), 13, "{backend}");
        assert!(k1.reported_by_kind.values().all(|n| *n == 1), "{backend}");
        // The exported table has a column per kind reported.
        let table = evaluation.table();
        let column = table
            .columns
            .iter()
            .position(|c| c == "reported_unstable_factor")
            .expect("a column for the kind");
        assert_eq!(
            table.rows[0][column].to_string(),
            "1",
            "{backend}: {:?}",
            table.columns
        );
        h.finish().await;
    }
    Ok(())
}
