//! Checklist templates end to end: published versions reach devices by pull; a device checks
//! answers against the version it uses before queueing, and an issue on an item with a hazard
//! category raises a hazard with the check-in; a new version never touches answers recorded
//! against the old one; the server refuses answers that break a version the device did not
//! have. SQLite and (when configured) PostgreSQL.

use patrolsync_proto::checkin::{Answer, AnswerValue, CheckInKind, CheckInOutcome};
use patrolsync_proto::hazard::HazardCategory;
use patrolsync_sdk::{NewCheckIn, RecordError};
use patrolsync_server::store::TemplateStore;
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::Harness;

const V1: &str = r#"
id = "daily-fire"
name = "Daily fire safety check"

[[items]]
id = "exits"
label = "Evacuation routes and exits clear"
mandatory = true
photo_on_fail = true
hazard_category = "blocked_evacuation"

[[items]]
id = "pressure"
label = "Extinguisher pressure (MPa)"
answer = "number"
"#;

const V2: &str = r#"
id = "daily-fire"
name = "Daily fire safety check"

[[items]]
id = "exits"
label = "Evacuation routes, exits and stairwells clear"
mandatory = true
photo_on_fail = true
hazard_category = "blocked_evacuation"

[[items]]
id = "pressure"
label = "Extinguisher pressure (MPa)"
answer = "number"

[[items]]
id = "wiring"
label = "No flying leads or overloaded sockets"
mandatory = true
hazard_category = "electrical"
"#;

fn answer(item: &str, value: AnswerValue, note: &str, photos: Vec<[u8; 32]>) -> Answer {
    Answer {
        item_id: item.into(),
        value,
        note: note.into(),
        photos,
    }
}

fn inspection(version: u32, answers: Vec<Answer>) -> NewCheckIn {
    NewCheckIn {
        kind: CheckInKind::Inspection,
        template: Some(("daily-fire".into(), version)),
        answers,
        ..NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_reach_devices_and_answers_are_checked_against_their_version()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let publish = |name: &str, text: &str| -> anyhow::Result<_> {
            let path = h.dir.path().join(name);
            std::fs::write(&path, text)?;
            Ok(patrolsync_server::templates::read(&path)?)
        };
        let now = patrolsync_server::now_ms();
        assert_eq!(
            store
                .publish_template(&publish("v1.toml", V1)?, now)
                .await?,
            (1, true)
        );
        assert_eq!(
            store
                .publish_template(&publish("v1.toml", V1)?, now)
                .await?,
            (1, false),
            "{backend}: the same content again is not a new version"
        );

        let p = h.device("p", "alice", &["S1-C1"]).await?;
        // A device that has not pulled since: it cannot check answers itself.
        let late = h.device("late", "zoe", &["S1-C1"]).await?;
        p.sync().await?;
        let t = p.template("daily-fire", None).await?.expect("pulled");
        assert_eq!((t.version, t.items.len()), (1, 2), "{backend}");

        // Refused on the device, nothing queued: a mandatory item unanswered, an issue without
        // the photo it needs, a number that is not one.
        for (answers, reason) in [
            (vec![], "missing"),
            (
                vec![answer("exits", AnswerValue::Issue, "bikes", vec![])],
                "missing",
            ),
            (
                vec![
                    answer("exits", AnswerValue::Ok, "", vec![]),
                    answer("pressure", AnswerValue::Ok, "high", vec![]),
                ],
                "not_a_number",
            ),
        ] {
            match p.record_checklist(inspection(1, answers)).await {
                Err(RecordError::Invalid(i)) => assert_eq!(i.reason, reason, "{backend}: {i:?}"),
                other => anyhow::bail!("{backend}: expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(p.status().await?.pending_ops, 0, "{backend}");

        // An issue on the exits raises a hazard, queued with the check-in.
        let photo = h.dir.path().join("exit.jpg");
        std::fs::write(&photo, vec![9u8; 20_000])?;
        let sha = p.add_photo(&photo).await?;
        let recorded = p
            .record_checklist(inspection(
                1,
                vec![
                    answer(
                        "exits",
                        AnswerValue::Issue,
                        "bikes in the stairwell",
                        vec![sha],
                    ),
                    answer("pressure", AnswerValue::Ok, "1.1", vec![]),
                ],
            ))
            .await?;
        assert_eq!(recorded.hazards.len(), 1, "{backend}");
        assert_eq!(p.status().await?.pending_ops, 2, "{backend}");
        patrolsync_tests::sync_until_done(&p, std::time::Duration::from_secs(60)).await?;
        let hazard = h
            .server()
            .store()
            .hazard(recorded.hazards[0])
            .await?
            .expect("the raised hazard is on the server");
        assert_eq!(
            hazard.category,
            HazardCategory::BlockedEvacuation.as_str(),
            "{backend}"
        );
        let view = p.hazard(recorded.hazards[0]).await?.expect("on the device");
        let report = view.state.report.expect("report").0;
        assert_eq!(report.checkpoint, "S1-C1-K1-B1-P1");
        assert_eq!(report.grid_cell, "S1-C1-K1-B1");
        assert_eq!(
            report.description,
            "Evacuation routes and exits clear: bikes in the stairwell"
        );
        assert_eq!(report.photos, vec![sha]);

        // Version 2: devices get it; version 1 and what was answered against it stay.
        assert_eq!(
            store
                .publish_template(&publish("v2.toml", V2)?, now)
                .await?,
            (2, true)
        );
        p.sync().await?;
        assert_eq!(
            p.template("daily-fire", None).await?.map(|t| t.version),
            Some(2)
        );
        assert_eq!(
            p.template("daily-fire", Some(1))
                .await?
                .map(|t| t.items[0].label.clone()),
            Some("Evacuation routes and exits clear".into())
        );
        assert_eq!(
            p.templates().await?.len(),
            1,
            "{backend}: the latest of each"
        );
        let stored = h.server().store().check_ins(None, 10).await?;
        let first = stored
            .iter()
            .find(|c| c.check_in.id == recorded.check_in)
            .expect("stored");
        assert_eq!(
            (
                first.check_in.template_version,
                first.check_in.answers.len()
            ),
            (1, 2),
            "{backend}"
        );

        // The inspection ledger as the Chinese form reads the answers by the labels of the
        // version answered (not version 2's), their values in words and the notes after them.
        let cal = h.config.reports.calendar()?;
        let day = cal.date(first.check_in.device_time_ms);
        let period = patrolsync_server::report::Period {
            label: day.to_string(),
            start: day,
            end: day.succ_opt().expect("a next day"),
        };
        let form = patrolsync_server::report::ledger(
            &store,
            &cal,
            &h.config.reports.anomaly_rules(),
            patrolsync_server::report::LedgerQuery {
                ledger: patrolsync_server::report::Ledger::Inspections,
                period: &period,
                cell: Some("S1"),
                unit: None,
                as_of_ms: patrolsync_server::now_ms(),
                lang: patrolsync_i18n::Lang::ZhCn,
            },
        )
        .await?;
        let answers = form
            .columns
            .iter()
            .position(|c| c == "检查内容")
            .expect("the answers column");
        assert_eq!(form.rows.len(), 1, "{backend}");
        assert_eq!(
            form.rows[0][answers].to_string(),
            "Evacuation routes and exits clear：有问题（bikes in the stairwell）；\
             Extinguisher pressure (MPa)：合格（1.1）",
            "{backend}"
        );

        // The late device answers version 2 without having it: the server checks and refuses.
        late.record_checklist(inspection(
            2,
            vec![answer("exits", AnswerValue::Ok, "", vec![])],
        ))
        .await?;
        let s = late.sync().await?;
        assert_eq!(s.rejected, 1, "{backend}: {s:?}");
        let refused = &late.rejected().await?[0];
        assert_eq!(
            (refused.field.as_str(), refused.message.as_str()),
            ("answers.wiring", "缺少必填项：answers.wiring"),
            "{backend}"
        );
        h.finish().await;
    }
    Ok(())
}
