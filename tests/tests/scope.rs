//! Scopes that change under the devices: an assignment brings a cell whole (its checkpoints and
//! every hazard in it, with their reports) at the next sync and a removal takes it away with the
//! reason; an agency whose transfer loses in the fold is told and drops the hazard; an agency
//! whose transfer wins late receives the hazard whole. Each ends with every device's view equal
//! to what the server says it should hold, on both backends.

use patrolsync_server::store::GridStore;
use std::time::Duration;

use patrolsync_proto::Role;
use patrolsync_proto::hazard::{Agency, EventKind, FieldValue};
use patrolsync_sdk::{Client, Transition};
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, blocked_lane, device_view, server_view};

/// Each device shows exactly what the server says it should hold.
async fn converged(h: &Harness, devices: &[(&str, &Client)], backend: &str) -> anyhow::Result<()> {
    for (name, d) in devices {
        let mine = device_view(d).await?;
        let theirs = server_view(h.server(), d).await?;
        assert_eq!(
            mine, theirs,
            "{backend}: {name}'s view against the server's"
        );
    }
    Ok(())
}

/// A fix with its after photo (the hash only: the photo itself is not what is under test).
fn after_photo() -> Transition {
    Transition {
        photos: vec![[2; 32]],
        ..Transition::default()
    }
}

/// Lets the HLC wall clock move on, so the next op orders after the last one even on another
/// device (ordering, not synchronisation: nothing is awaited but the clock).
async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_brings_the_cell_whole_and_a_removal_takes_it_away() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let sql = patrolsync_server::open_sql_store(&h.config).await?;
        let k1 = h.device("k1", "pat1", &["S1-C1-K1"]).await?;
        let k2 = h.device("k2", "pat2", &["S1-C1-K2"]).await?;
        // A hazard in K2, edited once, before pat1 has anything to do with K2.
        let hazard = k2.report_hazard(blocked_lane("S1-C1-K2")).await?;
        k2.sync().await?;
        tick().await;
        k2.edit_hazard(hazard, FieldValue::Description("bikes and a car".into()))
            .await?;
        k2.sync().await?;
        k1.sync().await?;
        assert!(k1.hazard(hazard).await?.is_none(), "{backend}");
        converged(&h, &[("pat1", &k1), ("pat2", &k2)], backend).await?;

        // Assigned K2 as well: the next sync brings K2 whole, the hazard folded as the server
        // has it (its report first), and says so.
        sql.assign(
            "pat1",
            &["S1-C1-K2".into()],
            false,
            patrolsync_server::now_ms(),
        )
        .await?;
        let s = k1.sync().await?;
        assert_eq!(
            s.scope_changes
                .iter()
                .map(|n| (n.granted, n.id.as_str(), n.reason.as_str()))
                .collect::<Vec<_>>(),
            [(true, "S1-C1-K2", "assigned")],
            "{backend}"
        );
        let view = k1.hazard(hazard).await?.expect("backfilled");
        assert!(view.state.report.is_some(), "{backend}: with its report");
        assert_eq!(view.state.description.value, "bikes and a car", "{backend}");
        assert!(
            k1.checkpoints()
                .await?
                .iter()
                .any(|c| c.code.starts_with("S1-C1-K2-")),
            "{backend}: K2's checkpoints"
        );
        converged(&h, &[("pat1", &k1), ("pat2", &k2)], backend).await?;

        // A later edit arrives as an edit of a hazard the device holds whole.
        tick().await;
        k2.edit_hazard(hazard, FieldValue::Description("cleared in part".into()))
            .await?;
        k2.sync().await?;
        k1.sync().await?;
        converged(&h, &[("pat1", &k1), ("pat2", &k2)], backend).await?;

        // pat1 edits offline; then K2 is taken away. The queued edit is sent and refused with
        // the reason, the revoke drops K2 from the device and names why.
        tick().await;
        k1.edit_hazard(hazard, FieldValue::Description("pat1 was here".into()))
            .await?;
        sql.assign(
            "pat1",
            &["S1-C1-K2".into()],
            true,
            patrolsync_server::now_ms(),
        )
        .await?;
        let s = k1.sync().await?;
        assert_eq!(s.rejected, 1, "{backend}: {s:?}");
        let refused = k1.rejected().await?;
        assert_eq!(refused.len(), 1, "{backend}");
        assert_eq!(refused[0].reason, "outside_scope", "{backend}: {refused:?}");
        assert_eq!(
            refused[0].error,
            patrolsync_sdk::ErrorCode::OutsideScope {
                field: "hazard_id".into(),
                value: hazard.to_string()
            },
            "{backend}: the refusal names the hazard it was about"
        );
        let revoke: Vec<_> = s
            .scope_changes
            .iter()
            .map(|n| (n.granted, n.id.as_str(), n.reason.as_str()))
            .collect();
        assert_eq!(revoke, [(false, "S1-C1-K2", "unassigned")], "{backend}");
        assert!(k1.hazard(hazard).await?.is_none(), "{backend}: dropped");
        assert!(
            k1.checkpoints()
                .await?
                .iter()
                .all(|c| c.code.starts_with("S1-C1-K1-")),
            "{backend}: only K1 is left"
        );
        assert_eq!(
            h.server()
                .store()
                .hazard(hazard)
                .await?
                .expect("stored")
                .description,
            "cleared in part",
            "{backend}: the refused edit changed nothing"
        );
        converged(&h, &[("pat1", &k1), ("pat2", &k2)], backend).await?;
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_is_told_when_its_transfer_loses_to_an_earlier_fix() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let patroller = h.device("p", "pat", &["S1-C1-K1"]).await?;
        let manager = h.device_as("m", "mgr", Role::GridManager, &["S1"]).await?;
        let brigade = h
            .agency_device("f", "brigade", Agency::FireBrigade, &["S1"])
            .await?;
        let hazard = patroller.report_hazard(blocked_lane("S1-C1-K1")).await?;
        patroller.sync().await?;
        manager.sync().await?;
        brigade.sync().await?;

        // Offline, the patroller fixes it on the spot; later the manager transfers it.
        patroller
            .transition_hazard(hazard, EventKind::FixOnSpot, after_photo())
            .await?;
        tick().await;
        manager
            .transition_hazard(
                hazard,
                EventKind::Transfer,
                Transition {
                    agency: Some(Agency::FireBrigade),
                    note: "needs enforcement".into(),
                    ..Transition::default()
                },
            )
            .await?;
        manager.sync().await?;
        let got = brigade.sync().await?;
        assert!(
            got.scope_changes
                .iter()
                .any(|n| n.granted && n.id == hazard.to_string() && n.reason == "transferred"),
            "{backend}: {got:?}"
        );
        assert_eq!(
            brigade.hazard(hazard).await?.expect("held").state.status,
            patrolsync_proto::hazard::Status::Transferred,
            "{backend}"
        );

        // The earlier fix arrives and wins; the transfer is a conflict; the brigade is told.
        patroller.sync().await?;
        let s = brigade.sync().await?;
        assert!(
            s.scope_changes
                .iter()
                .any(|n| !n.granted && n.id == hazard.to_string() && n.reason == "transfer_lost"),
            "{backend}: {s:?}"
        );
        assert!(brigade.hazard(hazard).await?.is_none(), "{backend}");
        manager.sync().await?;
        let server = h.server().store().hazard(hazard).await?.expect("stored");
        assert_eq!(
            (server.status.as_str(), server.agency, server.conflicts),
            ("rectified", None, 1),
            "{backend}"
        );
        converged(
            &h,
            &[
                ("patroller", &patroller),
                ("manager", &manager),
                ("brigade", &brigade),
            ],
            backend,
        )
        .await?;
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agency_given_a_transfer_late_receives_the_hazard_whole() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let patroller = h.device("p", "pat", &["S1-C1-K1"]).await?;
        let m1 = h
            .device_as("m1", "mgr1", Role::GridManager, &["S1"])
            .await?;
        let m2 = h
            .device_as("m2", "mgr2", Role::GridManager, &["S1"])
            .await?;
        let brigade = h
            .agency_device("f", "brigade", Agency::FireBrigade, &["S1"])
            .await?;
        // Reported, notified, a fix submitted: it awaits verification.
        let hazard = patroller.report_hazard(blocked_lane("S1-C1-K1")).await?;
        patroller.sync().await?;
        m1.sync().await?;
        m1.transition_hazard(
            hazard,
            EventKind::Notify,
            Transition {
                deadline_ms: Some(4_000_000_000_000),
                ..Transition::default()
            },
        )
        .await?;
        m1.sync().await?;
        patroller.sync().await?;
        tick().await;
        patroller
            .transition_hazard(hazard, EventKind::SubmitFix, after_photo())
            .await?;
        patroller.sync().await?;
        m1.sync().await?;
        m2.sync().await?;

        // m1 fails the verification offline; later m2 transfers it, which conflicts on the
        // server (a rectified hazard cannot be transferred)…
        tick().await;
        m1.transition_hazard(hazard, EventKind::VerifyFail, Transition::default())
            .await?;
        tick().await;
        m2.transition_hazard(
            hazard,
            EventKind::Transfer,
            Transition {
                agency: Some(Agency::FireBrigade),
                ..Transition::default()
            },
        )
        .await?;
        m2.sync().await?;
        brigade.sync().await?;
        assert!(brigade.hazard(hazard).await?.is_none(), "{backend}");
        // …until m1's earlier verify_fail arrives: now the transfer holds, and the brigade
        // receives the hazard whole, report first.
        m1.sync().await?;
        let s = brigade.sync().await?;
        assert!(
            s.scope_changes
                .iter()
                .any(|n| n.granted && n.id == hazard.to_string()),
            "{backend}: {s:?}"
        );
        let view = brigade.hazard(hazard).await?.expect("received whole");
        assert!(view.state.report.is_some(), "{backend}");
        assert_eq!(
            view.state.status,
            patrolsync_proto::hazard::Status::Transferred,
            "{backend}"
        );
        assert_eq!(view.state.agency, Some(Agency::FireBrigade), "{backend}");
        patroller.sync().await?;
        m1.sync().await?;
        m2.sync().await?;
        converged(
            &h,
            &[
                ("patroller", &patroller),
                ("m1", &m1),
                ("m2", &m2),
                ("brigade", &brigade),
            ],
            backend,
        )
        .await?;
        h.finish().await;
    }
    Ok(())
}

/// A user whose role changes (a patroller who joins the police station) reads another feed:
/// the device is told to start over, drops everything it held, and pulls the new feed whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_role_starts_the_device_over_on_its_new_feed() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let sql = patrolsync_server::open_sql_store(&h.config).await?;
        let pat = h.device("p", "pat", &["S1-C1-K1"]).await?;
        let manager = h.device_as("m", "mgr", Role::GridManager, &["S1"]).await?;
        let mine = pat.report_hazard(blocked_lane("S1-C1-K1")).await?;
        let theirs = manager.report_hazard(blocked_lane("S1-C2-K1")).await?;
        pat.sync().await?;
        manager.sync().await?;
        manager
            .transition_hazard(
                theirs,
                EventKind::Transfer,
                Transition {
                    agency: Some(Agency::PoliceStation),
                    ..Transition::default()
                },
            )
            .await?;
        manager.sync().await?;
        assert!(pat.hazard(mine).await?.is_some(), "{backend}");

        // pat joins the police station.
        sql.import_people(
            &[patrolsync_server::store::NewPerson {
                name: "pat".into(),
                role: Role::Agency,
                agency: Some("police_station".into()),
                cells: vec!["S1".into()],
            }],
            patrolsync_server::now_ms(),
        )
        .await?;
        let s = pat.sync().await?;
        assert!(
            s.scope_changes.iter().any(|n| n.kind == "feed"
                && n.reason == "reset"
                && n.id == "agency:police_station"),
            "{backend}: {s:?}"
        );
        assert!(
            pat.hazard(mine).await?.is_none(),
            "{backend}: not the police's"
        );
        assert_eq!(
            pat.hazard(theirs)
                .await?
                .expect("the police's")
                .state
                .status,
            patrolsync_proto::hazard::Status::Transferred,
            "{backend}"
        );
        converged(&h, &[("pat", &pat), ("manager", &manager)], backend).await?;
        h.finish().await;
    }
    Ok(())
}

/// A cell full of hazards with the longest notes allowed (4,096 Chinese characters, 12 KiB
/// each; 400 of them make 4.9 MiB, more than the 4 MiB response frame a device reads) reaches a
/// manager who already holds the cell and a patroller assigned it later, in pages that fit:
/// the ordinary feed and a backfill are both cut by bytes, not only by count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hazards_with_the_longest_notes_arrive_in_pages_that_fit() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let sql = patrolsync_server::open_sql_store(&h.config).await?;
        let reporter = h.device("k1", "pat1", &["S1-C1-K1"]).await?;
        let boss = h
            .device_as("boss", "boss", Role::GridManager, &["S1-C1"])
            .await?;
        let later = h.device("k2", "pat2", &["S1-C1-K2"]).await?;
        let note: String = "消防通道被电动车和杂物堵塞，"
            .chars()
            .cycle()
            .take(4096)
            .collect();
        for i in 0..400 {
            let mut hazard = blocked_lane("S1-C1-K1");
            hazard.description = format!("{i:03}{}", &note[..note.len() - 9]);
            reporter.report_hazard(hazard).await?;
        }
        patrolsync_tests::sync_until_done(&reporter, Duration::from_secs(300)).await?;

        let s = boss.sync().await?;
        assert_eq!(boss.hazards().await?.len(), 400, "{backend}: {s:?}");
        sql.assign(
            "pat2",
            &["S1-C1-K1".into()],
            false,
            patrolsync_server::now_ms(),
        )
        .await?;
        let s = later.sync().await?;
        assert_eq!(later.hazards().await?.len(), 400, "{backend}: {s:?}");
        converged(&h, &[("boss", &boss), ("pat2", &later)], backend).await?;
        h.finish().await;
    }
    Ok(())
}
