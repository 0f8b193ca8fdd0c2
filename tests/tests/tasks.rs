//! Tasks (dispatch) end to end, on both backends, with the real server and SDK devices: a help
//! call goes to the nearest on-duty patroller first, then the next as each declines, and to the
//! cell's managers when nobody is left — each device learning it through Notify alone; two
//! patrollers who accept while offline end with one assignee everywhere and the other's step a
//! visible conflict; a patroller who accepts, arrives and completes with no network syncs once
//! and the server's log holds each step once, in order, with the check-in linked.

use std::time::{Duration, Instant};

use patrolsync_proto::checkin::Datum;
use patrolsync_proto::task::{TaskKind, TaskResult, TaskStatus, Urgency};
use patrolsync_proto::{GeoFix, Role, TaskId};
use patrolsync_sdk::{Client, EngineOptions};
use patrolsync_server::store::{NewTask, TaskStore};
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, blocked_lane, bootstrapped, stored_check_in_ids, until_notified};

/// Where the call comes from, and a fix `metres` north of it.
const CALL: (f64, f64) = (45.80, 126.70);

fn north_of_call(metres: f64) -> GeoFix {
    GeoFix {
        latitude: CALL.0 + metres / 111_200.0,
        longitude: CALL.1,
        accuracy_m: 5.0,
        fix_time_ms: 1_790_000_000_000,
        mock: false,
        datum: Datum::Wgs84,
    }
}

fn help_call() -> NewTask {
    NewTask {
        cell: "S1-C1-K1".into(),
        kind: TaskKind::HelpCall,
        urgency: Urgency::Urgent,
        household: None,
        unit: None,
        checkpoint: None,
        position: Some(CALL),
        description: "独居老人按下呼叫按钮".into(),
    }
}

/// A server whose dispatcher never runs during a test (the devices' steps alone decide).
async fn without_dispatcher(
    db: patrolsync_server::testkit::TestDatabase,
) -> anyhow::Result<Harness> {
    Harness::start_with(db, |c| {
        c.dispatch.check_every = Duration::from_secs(3600);
    })
    .await
}

/// Whom the device sees the task offered to now, and its status.
async fn seen(d: &Client, task: TaskId) -> anyhow::Result<Option<(TaskStatus, Option<String>)>> {
    Ok(d.task(task)
        .await?
        .map(|v| (v.state.status, v.state.offered_to)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_help_call_goes_to_the_nearest_on_duty_patroller_then_the_next_then_the_managers()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| {
            c.dispatch.check_every = Duration::from_millis(100);
            c.dispatch.offer_timeout = Duration::from_secs(1);
        })
        .await?;
        // Three on duty at 2 km, 100 m and 600 m from the call; one assigned but off duty.
        let mut patrollers = Vec::new();
        for (name, metres) in [("far", 2_000.0), ("near", 100.0), ("mid", 600.0)] {
            let d = h.device(name, name, &["S1-C1-K1"]).await?;
            d.set_on_duty(true).await?;
            assert!(d.update_position(north_of_call(metres)).await?);
            d.sync().await?;
            patrollers.push((name, d));
        }
        let resting = h.device("resting", "resting", &["S1-C1-K1"]).await?;
        resting.sync().await?;
        let manager = h
            .device_as("m", "chen", Role::GridManager, &["S1-C1"])
            .await?;
        let device = |name: &str| {
            patrollers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| d.clone())
                .expect("a patroller")
        };
        // Every phone listens; none polls.
        let mut engines = Vec::new();
        for d in [
            device("near"),
            device("mid"),
            device("far"),
            manager.clone(),
        ] {
            let engine = d.start_engine(EngineOptions {
                interval: Duration::from_secs(3600),
                ..EngineOptions::default()
            });
            let mut events = engine.subscribe();
            bootstrapped(&mut events, backend).await?;
            engines.push((d, engine, events));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;

        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let (task, _) = store
            .create_task(&help_call(), patrolsync_server::now_ms())
            .await?;

        // Offered nearest first; each declines in turn and the next is offered.
        for (i, name) in ["near", "mid", "far"].into_iter().enumerate() {
            let (d, _, events) = &mut engines[i];
            let d = d.clone();
            let want = Some((TaskStatus::Offered, Some(name.to_owned())));
            let (offered, notified) =
                until_notified(events, Instant::now() + Duration::from_secs(5), || {
                    let d = d.clone();
                    let want = want.clone();
                    async move { Ok(seen(&d, task).await? == want) }
                })
                .await?;
            anyhow::ensure!(
                offered,
                "{backend}: {name} was not offered the call: sees {:?} (notified: {notified})",
                seen(&d, task).await?
            );
            assert!(notified, "{backend}: {name} learned it through Notify");
            if name != "far" {
                d.decline_task(task, "正在处理另一起求助".into()).await?;
            }
        }
        // The farthest lets the offer lapse: the managers are told.
        let (m, _, events) = &mut engines[3];
        let m = m.clone();
        let (escalated, notified) =
            until_notified(events, Instant::now() + Duration::from_secs(10), || {
                let m = m.clone();
                async move { Ok(seen(&m, task).await?.map(|s| s.0) == Some(TaskStatus::Escalated)) }
            })
            .await?;
        anyhow::ensure!(
            escalated,
            "{backend}: the manager sees {:?}",
            seen(&m, task).await?
        );
        assert!(notified, "{backend}: the manager learned it through Notify");

        let (summary, log) = store.task(task).await?.expect("the task");
        assert_eq!(summary.status, "escalated", "{backend}");
        let steps: Vec<(String, String)> = log
            .iter()
            .map(|e| (e.kind.clone(), e.user.clone()))
            .collect();
        let want: Vec<(String, String)> = [
            ("task", ""),
            ("offer", "near"),
            ("decline", "near"),
            ("offer", "mid"),
            ("decline", "mid"),
            ("offer", "far"),
            ("escalate", ""),
        ]
        .into_iter()
        .map(|(k, u)| (k.to_owned(), u.to_owned()))
        .collect();
        assert_eq!(
            steps, want,
            "{backend}: the off-duty patroller is never offered"
        );

        // The help-call ledger (求助响应记录) and the task report say the same, in the form's
        // words: offered to three in order, taken by nobody, escalated.
        let cal = h.config.reports.calendar().map_err(anyhow::Error::msg)?;
        let period = patrolsync_tests::day_of(&cal, summary.created_at_ms);
        let as_of = patrolsync_server::now_ms();
        let form = patrolsync_server::report::ledger(
            &store,
            &cal,
            &h.config.reports.anomaly_rules(),
            patrolsync_server::report::LedgerQuery {
                ledger: patrolsync_server::report::Ledger::HelpCalls,
                period: &period,
                cell: Some("S1"),
                unit: None,
                as_of_ms: as_of,
                lang: patrolsync_i18n::Lang::ZhCn,
            },
        )
        .await?;
        let column = |name: &str| {
            form.columns
                .iter()
                .position(|c| c == name)
                .unwrap_or_else(|| panic!("{backend}: no column {name} in {:?}", form.columns))
        };
        assert_eq!(form.rows.len(), 1, "{backend}");
        assert_eq!(
            form.rows[0][column("派单对象")].to_string(),
            "near, mid, far",
            "{backend}"
        );
        assert_eq!(
            form.rows[0][column("当前状态")].to_string(),
            "已上报网格长",
            "{backend}"
        );
        assert_eq!(
            form.rows[0][column("紧急程度")].to_string(),
            "紧急",
            "{backend}"
        );
        let report =
            patrolsync_server::report::task_report(&store, &cal, &period, None, as_of).await?;
        assert_eq!(report.rows.len(), 1, "{backend}: one street");
        assert_eq!(
            (
                report.rows[0].cell.as_str(),
                report.rows[0].made,
                report.rows[0].by_status.get("escalated").copied(),
                report.rows[0].accept_p50_min
            ),
            ("S1", 1, Some(1), None),
            "{backend}"
        );
        for (_, engine, _) in engines {
            engine.stop().await;
        }
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offline_acceptances_end_with_one_assignee_everywhere_and_a_visible_conflict()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        // No dispatcher steps during the test: the two acceptances alone decide.
        let h = without_dispatcher(db).await?;
        let li = h.device("li", "li", &["S1-C1-K1"]).await?;
        let wang = h.device("wang", "wang", &["S1-C1-K1"]).await?;
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let (task, _) = store
            .create_task(&help_call(), patrolsync_server::now_ms())
            .await?;
        // Another made in the same moment: each task's entries are its own on every phone.
        let now = patrolsync_server::now_ms();
        let (other, _) = store.create_task(&help_call(), now).await?;
        let (third, _) = store.create_task(&help_call(), now).await?;
        li.sync().await?;
        wang.sync().await?;
        let mut held: Vec<TaskId> = li.tasks().await?.iter().map(|v| v.state.id).collect();
        held.sort();
        let mut made = vec![task, other, third];
        made.sort();
        assert_eq!(
            held, made,
            "{backend}: three tasks made at once, three on the phone"
        );
        // Both offline: wang first, then li; li's reaches the server first.
        wang.accept_task(task).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        li.accept_task(task).await?;
        assert_eq!(
            li.task(task)
                .await?
                .expect("held")
                .state
                .assignee
                .as_deref(),
            Some("li"),
            "{backend}: optimistic"
        );
        li.sync().await?;
        wang.sync().await?;
        li.sync().await?;

        let (summary, log) = store.task(task).await?.expect("the task");
        assert_eq!(
            (summary.assignee.as_deref(), summary.conflicts),
            (Some("wang"), 1),
            "{backend}: the earlier acceptance holds"
        );
        let lost: Vec<_> = log.iter().filter(|e| e.conflict.is_some()).collect();
        assert_eq!(lost.len(), 1, "{backend}");
        assert_eq!(lost[0].user, "li", "{backend}");
        assert_eq!(
            lost[0].conflict.as_deref(),
            Some("accept by li: already accepted by wang"),
            "{backend}"
        );
        assert_eq!(
            (
                lost[0].conflict_code.as_deref(),
                lost[0].conflict_with.as_deref()
            ),
            (Some("task_taken"), Some("wang")),
            "{backend}"
        );
        for d in [&li, &wang] {
            let v = d.task(task).await?.expect("held").state;
            assert_eq!(v.assignee.as_deref(), Some("wang"), "{backend}");
            assert_eq!(v.status, TaskStatus::Accepted, "{backend}");
            let conflicts: Vec<_> = v.conflicts().map(|c| c.user.clone()).collect();
            assert_eq!(conflicts, ["li"], "{backend}");
        }
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_arrive_and_complete_offline_then_one_sync_logs_each_step_once_in_order()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = without_dispatcher(db).await?;
        let p = h.device("p", "li", &["S1-C1-K1"]).await?;
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let (task, _) = store
            .create_task(
                &NewTask {
                    checkpoint: Some("S1-C1-K1-B1-P1".into()),
                    kind: TaskKind::Inspect,
                    ..help_call()
                },
                patrolsync_server::now_ms(),
            )
            .await?;
        p.sync().await?;

        // No network from here until the one sync.
        p.accept_task(task).await?;
        let arrival = p.arrive(task, Some(north_of_call(3.0))).await?;
        let check_in = arrival
            .check_in
            .expect("a check-in at the task's checkpoint");
        let hazard = p.report_hazard(blocked_lane("S1-C1-K1")).await?;
        p.complete_task(
            task,
            TaskResult::HazardReported,
            Some(hazard),
            "楼道堆放杂物".into(),
        )
        .await?;
        let local = p.task(task).await?.expect("held").state;
        assert_eq!(
            (local.status, local.check_in, local.hazard),
            (TaskStatus::Completed, Some(check_in), Some(hazard)),
            "{backend}: the device's own view at once"
        );
        let s = p.sync().await?;
        assert_eq!(
            (s.applied, s.rejected, s.new_conflicts.len()),
            (5, 0, 0),
            "{backend}: {s:?}"
        );
        // Again: nothing twice.
        p.sync().await?;

        let (summary, log) = store.task(task).await?.expect("the task");
        assert_eq!(
            (summary.status.as_str(), summary.result.as_deref()),
            ("completed", Some("hazard_reported")),
            "{backend}"
        );
        let steps: Vec<&str> = log.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            steps,
            ["task", "accept", "arrive", "complete"],
            "{backend}: each step once, in order"
        );
        assert!(log.iter().all(|e| e.conflict.is_none()), "{backend}");
        assert_eq!(log[2].check_in, Some(check_in.to_string()), "{backend}");
        assert!(
            stored_check_in_ids(&store, None)
                .await?
                .contains(&check_in.to_string()),
            "{backend}: the linked check-in is stored"
        );
        assert!(summary.accepted_at_ms.is_some() && summary.completed_at_ms.is_some());
        // The report counts each step when it was made (offline), by its stamp.
        let cal = h.config.reports.calendar().map_err(anyhow::Error::msg)?;
        let period = patrolsync_tests::day_of(&cal, summary.created_at_ms);
        let report = patrolsync_server::report::task_report(
            &store,
            &cal,
            &period,
            Some("S1"),
            patrolsync_server::now_ms(),
        )
        .await?;
        let row = &report.rows[0];
        assert_eq!(
            (row.made, row.by_status.get("completed").copied()),
            (1, Some(1)),
            "{backend}"
        );
        let (accept, arrive, complete) = (
            row.accept_p50_min.expect("accepted"),
            row.arrive_p50_min.expect("arrived"),
            row.complete_p50_min.expect("completed"),
        );
        assert!(
            accept <= arrive && arrive <= complete,
            "{backend}: {accept} {arrive} {complete}"
        );
        h.finish().await;
    }
    Ok(())
}
