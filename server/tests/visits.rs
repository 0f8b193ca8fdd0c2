//! Must-visit compliance (六必访) on a hand-built fixture, on both backends: households of four
//! groups (the elderly living alone visited weekly by configuration, the rest monthly), visits
//! on both sides of the November/December boundary in Asia/Shanghai (a visit at 00:30 on 1
//! December local is still 30 November in UTC), a visit that found nobody home, a household
//! registered mid-month. The numbers are worked out by hand in the comments.

use patrolsync_proto::checkin::{CheckInKind, CheckInMethod, CheckInOutcome};
use patrolsync_proto::household::HouseholdGroup;
use patrolsync_proto::{CheckIn, CheckInId, Hlc, OpId, Role};
use patrolsync_server::calendar::Cadence;
use patrolsync_server::config::Reports;
use patrolsync_server::report::{self, VisitCounts};
use patrolsync_server::store::registry::NewHousehold;
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::store::*;
use patrolsync_server::testkit::{enroll_device, test_databases};

use patrolsync_server::testkit::shanghai_ms as local;

fn counts(
    households: u64,
    due: u64,
    visited: u64,
    not_visited: u64,
    missed: u64,
    open: u64,
) -> VisitCounts {
    VisitCounts {
        households,
        due,
        visited,
        not_visited,
        missed,
        open,
    }
}

async fn fixture(store: &SqlStore) -> anyhow::Result<()> {
    let cell = |code: &str, parent: Option<&str>, level| NewCell {
        code: code.into(),
        parent: parent.map(Into::into),
        level,
        name: format!("cell {code}"),
        boundary: None,
    };
    let cp = |code: &str, cell: &str| NewCheckpoint {
        code: code.into(),
        cell: cell.into(),
        name: format!("door {code}"),
        tag_uid: None,
        position: None,
        radius_m: 30.0,
        cadence: None,
    };
    store
        .upsert_grid(
            &[
                cell("S9", None, 1),
                cell("S9-C1", Some("S9"), 2),
                cell("S9-C1-K1", Some("S9-C1"), 3),
                cell("S9-C1-K2", Some("S9-C1"), 3),
            ],
            &[cp("D1", "S9-C1-K1"), cp("D2", "S9-C1-K2")],
            local(2026, 9, 1, 0, 0),
        )
        .await?;
    let household = |code: &str, cell: &str, group| NewHousehold {
        code: code.into(),
        cell: cell.into(),
        address: format!("{code} 室"),
        group,
        contact_name: "住户".into(),
        contact_phone: String::new(),
    };
    use HouseholdGroup::*;
    store
        .upsert_households(
            &[
                household("H1", "S9-C1-K1", Hardship),
                household("H2", "S9-C1-K1", Disabled),
                household("H3", "S9-C1-K2", Migrant),
                household("H4", "S9-C1-K2", ElderlyAlone),
            ],
            local(2026, 10, 15, 9, 0),
        )
        .await?;
    // Registered on 20 November: it still owes November's visit (the slot ends after).
    store
        .upsert_households(
            &[household("H5", "S9-C1-K1", Hardship)],
            local(2026, 11, 20, 9, 0),
        )
        .await?;
    // Taken off the register during November: H6 unvisited (owes nothing), H7 visited first
    // (the visit counts).
    store
        .upsert_households(
            &[
                household("H6", "S9-C1-K1", Hardship),
                household("H7", "S9-C1-K2", Migrant),
            ],
            local(2026, 10, 15, 9, 0),
        )
        .await?;
    let h7 = store
        .household_refs(&["H7".to_owned()])
        .await?
        .pop()
        .expect("H7");
    let anna = enroll_device(
        store,
        "anna",
        "anna's phone",
        Role::Patroller,
        &["S9"],
        local(2026, 10, 1, 0, 0),
    )
    .await?;
    use CheckInOutcome::*;
    let visits = [
        // H1: 00:30 on 1 December local (16:30 on 30 November UTC): December's, not November's.
        ("H1", "D1", local(2026, 12, 1, 0, 30), Inspected),
        // H2: 23:30 on 30 November local: November's.
        ("H2", "D1", local(2026, 11, 30, 23, 30), Inspected),
        // H3: nobody home (counts as due, not visited).
        ("H3", "D2", local(2026, 11, 10, 10, 0), Locked),
        // H4 (weekly from Monday): the week of 2 Nov, and the week of 9 Nov twice (a visit
        // that found someone wins over one that did not).
        ("H4", "D2", local(2026, 11, 3, 10, 0), Inspected),
        ("H4", "D2", local(2026, 11, 12, 10, 0), Inspected),
        ("H4", "D2", local(2026, 11, 13, 10, 0), Locked),
        ("H7", "D2", local(2026, 11, 5, 10, 0), Inspected),
    ];
    let mut ops = Vec::new();
    for (i, (household, checkpoint, at_ms, outcome)) in visits.into_iter().enumerate() {
        let seq = 1 + i as u64;
        let cp = store
            .checkpoints(&[checkpoint.to_owned()])
            .await?
            .pop()
            .expect("fixture checkpoint");
        let h = match household {
            "H7" => h7.clone(),
            _ => store
                .household_refs(&[household.to_owned()])
                .await?
                .pop()
                .expect("fixture household"),
        };
        ops.push(PreparedOp {
            device_seq: seq,
            op_id: OpId(uuid::Uuid::now_v7()),
            hlc: Hlc {
                wall_ms: at_ms as u64,
                logical: 0,
            },
            action: OpAction::InsertCheckIn(Box::new(CheckInRow {
                check_in: CheckIn {
                    id: CheckInId(uuid::Uuid::now_v7()),
                    checkpoint: checkpoint.into(),
                    kind: CheckInKind::Visit,
                    method: CheckInMethod::Manual,
                    tag_uid: String::new(),
                    device_time_ms: at_ms,
                    monotonic_ms: seq,
                    fix: None,
                    outcome,
                    template_id: String::new(),
                    template_version: 0,
                    answers: vec![],
                    photos: vec![],
                    note: String::new(),
                    household: household.into(),
                },
                checkpoint_id: cp.id,
                cell_id: cp.cell_id,
                household_id: Some(h.id),
            })),
        });
    }
    let removed = store
        .remove_households(&["H6".into(), "H7".into()], local(2026, 11, 20, 12, 0))
        .await?;
    assert_eq!(removed, 2);
    let batch = IngestBatch {
        device: anna.id,
        user_id: anna.user_id,
        ops,
    };
    store
        .ingest(&[batch], local(2026, 12, 2, 8, 0))
        .await?
        .remove(0)?;
    Ok(())
}

#[tokio::test]
async fn visit_compliance_on_a_hand_built_fixture_equals_the_hand_computed_table()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let dir = tempfile::tempdir()?;
        let url = db.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("patrolsync.db").display()
            )
        });
        let store = SqlStore::connect(&url).await?;
        fixture(&store).await?;
        let mut reports = Reports::default();
        reports
            .visit_cadence
            .insert("elderly_alone".into(), "weekly".into());
        let cal = reports.calendar().map_err(anyhow::Error::msg)?;
        let cadence = |g| reports.visit_cadence(g).unwrap_or(Cadence::Monthly);
        let as_of = local(2026, 12, 5, 12, 0);

        let november = report::visit_compliance(
            &store,
            &cal,
            &cadence,
            &"2026-11".parse().map_err(anyhow::Error::msg)?,
            Some("S9"),
            as_of,
        )
        .await?;
        let rows: Vec<(&str, usize, VisitCounts)> = november
            .rows
            .iter()
            .map(|r| (r.cell.as_str(), r.depth, r.counts.clone()))
            .collect();
        // K1: H1 missed (its visit fell on 1 December local), H2 visited, H5 missed; H6, taken
        // off the register unvisited on 20 November, owed nothing.
        // K2: H3 not visited (nobody home); H4 weekly: the week of 26 Oct missed, 2 Nov and
        // 9 Nov visited, 16 and 23 Nov missed, 30 Nov still running on 5 Dec (open); H7
        // visited on 5 November, then taken off the register.
        assert_eq!(
            rows,
            [
                ("S9", 0, counts(6, 10, 4, 1, 5, 1)),
                ("S9-C1", 1, counts(6, 10, 4, 1, 5, 1)),
                ("S9-C1-K1", 2, counts(3, 3, 1, 0, 2, 0)),
                ("S9-C1-K2", 2, counts(3, 7, 3, 1, 3, 1)),
            ],
            "{backend}"
        );
        assert_eq!(november.rows[1].rate, Some(4.0 / 10.0), "{backend}");
        let groups: Vec<(&str, VisitCounts)> = november
            .by_group
            .iter()
            .map(|(g, c)| (g.as_str(), c.clone()))
            .collect();
        assert_eq!(
            groups,
            [
                ("disabled", counts(1, 1, 1, 0, 0, 0)),
                ("elderly_alone", counts(1, 5, 2, 0, 3, 1)),
                ("hardship", counts(2, 2, 0, 0, 2, 0)),
                ("migrant", counts(2, 2, 1, 1, 0, 0)),
            ],
            "{backend}"
        );

        // December, on 5 December: H1's visit of 1 December counts; the rest still open.
        let december = report::visit_compliance(
            &store,
            &cal,
            &cadence,
            &"2026-12".parse().map_err(anyhow::Error::msg)?,
            Some("S9-C1-K1"),
            as_of,
        )
        .await?;
        assert_eq!(
            december.rows[0].counts,
            counts(3, 1, 1, 0, 0, 2),
            "{backend}"
        );

        // As of 1 December, before the visits were received: nothing answered yet.
        let before = report::visit_compliance(
            &store,
            &cal,
            &cadence,
            &"2026-11".parse().map_err(anyhow::Error::msg)?,
            Some("S9-C1-K1"),
            local(2026, 12, 1, 12, 0),
        )
        .await?;
        assert_eq!(before.rows[0].counts, counts(3, 3, 0, 0, 3, 0), "{backend}");

        // The visits ledger of November: the six visits with November device times, by time;
        // H1's (1 December local) is not among them. H7's address was erased with its removal.
        let ledger = report::ledger(
            &store,
            &cal,
            &reports.anomaly_rules(),
            report::LedgerQuery {
                ledger: report::Ledger::Visits,
                period: &"2026-11".parse().map_err(anyhow::Error::msg)?,
                cell: Some("S9"),
                unit: None,
                as_of_ms: as_of,
                lang: patrolsync_i18n::Lang::ZhCn,
            },
        )
        .await?;
        let household = ledger
            .columns
            .iter()
            .position(|c| c == "户编码")
            .expect("household column");
        let group = ledger
            .columns
            .iter()
            .position(|c| c == "人群类别")
            .expect("group column");
        let listed: Vec<String> = ledger
            .rows
            .iter()
            .map(|r| format!("{} {}", r[household], r[group]))
            .collect();
        assert_eq!(
            listed,
            [
                "H4 独居老人",
                "H7 流动人口",
                "H3 流动人口",
                "H4 独居老人",
                "H4 独居老人",
                "H2 残疾家庭"
            ],
            "{backend}"
        );
    }
    Ok(())
}
