//! The key-unit register (重点单位户籍化管理) end to end, on both backends: a file with a bad
//! row is refused whole, naming line and column, and nothing reaches a device; a good one (an
//! XLSX with the register's Chinese headers) reaches a patroller's device at its next sync —
//! only the units of its cells — and is there with the server gone; a unit's file and its
//! ledger show the inspections and hazards at its checkpoints and nothing else; a cell taken
//! away takes its units with it.

use patrolsync_server::store::{GridStore, RegistryStore};

use patrolsync_proto::{CheckInKind, CheckInOutcome};
use patrolsync_sdk::{NewCheckIn, RiskLevel, UnitKind};
use patrolsync_server::grid_import::ImportError;
use patrolsync_server::registry_import::import_units;
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, admin_get, admin_json, blocked_lane, device_view, server_view};

/// A CSV with three bad rows among good ones.
const BAD_CSV: &str = "code,cell,kind,name,address,responsible_person,responsible_phone,risk,self_check_date,checkpoints
U-OK,S1-C1-K1,school,第一小学,文化街 1 号,李强,13800000001,low,2026-10-08,S1-C1-K1-B1-P1
U-CAFE,S1-C1-K1,网吧,星空网吧,文化街 3 号,赵敏,13800000002,high,,
U-FAR,S1-C1-K1,market,菜市场,文化街 5 号,孙丽,13800000003,medium,2026-13-01,S1-C1-K2-B1-P1
";

/// The register as a district keeps it: Chinese headers, Chinese kinds and levels, a phone
/// number stored as a number and a date cell, as a spreadsheet program writes them.
fn good_xlsx(path: &std::path::Path) -> anyhow::Result<()> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    // The form's title above the header, as registers are kept: not data.
    sheet.write_string(0, 0, "重点单位登记表（2026 年）")?;
    let header = [
        "编码",
        "网格",
        "类型",
        "名称",
        "地址",
        "责任人",
        "联系电话",
        "风险等级",
        "四个能力自评日期",
        "检查点",
    ];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(1, c as u16, *h)?;
    }
    let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 11, 20)?;
    let day = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
    // In pat1's compound, at building 1's first checkpoint.
    for (c, v) in [
        "U-PHARMACY",
        "S1-C1-K1-B1",
        "涉药单位",
        "仁和大药房",
        "文化街 12 号",
        "王芳",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(2, c as u16, *v)?;
    }
    sheet.write_number(2, 6, 13_800_000_000.0)?;
    sheet.write_string(2, 7, "高")?;
    sheet.write_datetime_with_format(2, 8, &date, &day)?;
    sheet.write_string(2, 9, "S1-C1-K1-B1-P1")?;
    // In another compound: never on pat1's phone.
    for (c, v) in [
        "U-SHOP",
        "S1-C1-K2",
        "九小场所",
        "便民超市",
        "文化街 40 号",
        "陈伟",
        "0451-8888 6666",
        "中",
        "",
        "",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(3, c as u16, *v)?;
    }
    book.save(path)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_reaches_the_devices_of_its_cells_and_a_units_file_shows_what_happened_there()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let mut h = Harness::start(db).await?;
        let sql = patrolsync_server::open_sql_store(&h.config).await?;
        let pat1 = h.device("k1", "pat1", &["S1-C1-K1"]).await?;
        pat1.sync().await?;

        // A bad file: every bad row named by line and column, nothing written.
        let bad = h.dir.path().join("units.csv");
        std::fs::write(&bad, BAD_CSV)?;
        let refused = import_units(&sql, &bad, false, patrolsync_server::now_ms()).await;
        let Err(ImportError::Rows(rows)) = refused else {
            panic!("{backend}: the bad file was not refused by row: {refused:?}");
        };
        let rows: Vec<String> = rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            rows,
            [
                "line 3, column kind: \"网吧\" is not one of: rental_housing, small_venue, school, hospital, high_rise, market, warehouse, drug_handling, other",
                "line 4, column self_check_date: \"2026-13-01\": write a date as 2026-11-20",
                "line 4, column checkpoints: key unit U-FAR: checkpoint S1-C1-K2-B1-P1 is not in cell S1-C1-K1 or below it",
            ],
            "{backend}"
        );
        assert!(
            sql.units(None).await?.is_empty(),
            "{backend}: nothing written"
        );
        pat1.sync().await?;
        assert!(pat1.units(None).await?.is_empty(), "{backend}");

        // The good register, from XLSX with Chinese headers; a repeat import changes nothing.
        let good = h.dir.path().join("重点单位.xlsx");
        good_xlsx(&good)?;
        let done = import_units(&sql, &good, false, patrolsync_server::now_ms()).await?;
        assert_eq!((done.rows, done.changed), (2, 2), "{backend}");
        let again = import_units(&sql, &good, false, patrolsync_server::now_ms()).await?;
        assert_eq!((again.rows, again.changed), (2, 0), "{backend}");

        // One sync, then the server is gone: the phone still shows its compound's unit, and
        // only that one.
        pat1.sync().await?;
        assert_eq!(
            device_view(&pat1).await?,
            server_view(h.server(), &pat1).await?,
            "{backend}"
        );
        // The cells come with their boundaries, so an app can draw the dashboard's map.
        let cells = pat1.cells().await?;
        assert!(
            !cells.is_empty()
                && cells.iter().all(|c| c
                    .boundary
                    .as_deref()
                    .is_some_and(|b| b.contains("\"Polygon\""))),
            "{backend}: {cells:?}"
        );
        h.stop().await;
        let units = pat1.units(None).await?;
        assert_eq!(units.len(), 1, "{backend}: {units:?}");
        let u = &units[0];
        assert_eq!(
            (u.code.as_str(), u.cell.as_str(), u.kind, u.risk),
            (
                "U-PHARMACY",
                "S1-C1-K1-B1",
                UnitKind::DrugHandling,
                RiskLevel::High
            ),
            "{backend}"
        );
        assert_eq!(
            (
                u.name.as_str(),
                u.responsible_person.as_str(),
                u.responsible_phone.as_str(),
                u.self_check_date.as_deref(),
                u.checkpoints.clone()
            ),
            (
                "仁和大药房",
                "王芳",
                "13800000000",
                Some("2026-11-20"),
                vec!["S1-C1-K1-B1-P1".to_owned()]
            ),
            "{backend}: as the sheet has it (the number and the date cell as written)"
        );
        assert_eq!(pat1.units(Some("S1-C1-K2")).await?, [], "{backend}");
        h.restart().await?;

        // At the unit and beside it: an inspection at its checkpoint, one at the building's
        // other checkpoint, a hazard reported at its checkpoint and one reported in the cell.
        let at = |checkpoint: &str| {
            let mut c = NewCheckIn::new(checkpoint, CheckInOutcome::Inspected);
            c.kind = CheckInKind::Inspection;
            c
        };
        let inspected = pat1.record_checkin(at("S1-C1-K1-B1-P1")).await?;
        pat1.record_checkin(at("S1-C1-K1-B1-P2")).await?;
        let mut there = blocked_lane("S1-C1-K1-B1");
        there.checkpoint = Some("S1-C1-K1-B1-P1".into());
        let hazard = pat1.report_hazard(there).await?;
        pat1.report_hazard(blocked_lane("S1-C1-K1-B1")).await?;
        pat1.sync().await?;
        // A report in another compound that names the unit's checkpoint (a hazard's
        // checkpoint is its reporter's text) is not the unit's.
        let elsewhere = h.device("k2", "pat2", &["S1-C1-K2"]).await?;
        let mut naming = blocked_lane("S1-C1-K2");
        naming.checkpoint = Some("S1-C1-K1-B1-P1".into());
        elsewhere.report_hazard(naming).await?;
        elsewhere.sync().await?;

        let file = admin_json(h.server(), "/api/units/U-PHARMACY").await?;
        assert_eq!(file["unit"]["kind"], "drug_handling", "{backend}: {file}");
        assert_eq!(file["check_ins_total"], 1, "{backend}: {file}");
        assert_eq!(
            file["check_ins"][0]["id"],
            inspected.to_string(),
            "{backend}"
        );
        assert_eq!(file["hazards_total"], 1, "{backend}: {file}");
        assert_eq!(file["hazards"][0]["id"], hazard.to_string(), "{backend}");
        assert_eq!(file["hazards"][0]["status"], "reported", "{backend}");
        let (status, body) = admin_get(h.server(), "/api/units/U-NONE").await?;
        assert_eq!(status, 404, "{backend}: {body}");
        assert!(
            body.contains("key unit U-NONE does not exist"),
            "{backend}: {body}"
        );
        // The map: the top streets with their boundaries; in the compound, its checkpoints and
        // the unit as points.
        let top = admin_json(h.server(), "/api/map").await?;
        let streets: Vec<&str> = top["areas"]
            .as_array()
            .expect("areas")
            .iter()
            .filter(|a| a["boundary"]["type"] == "Polygon")
            .filter_map(|a| a["code"].as_str())
            .collect();
        assert_eq!(streets, ["S1", "S2"], "{backend}: {top}");
        let compound = admin_json(h.server(), "/api/map?cell=S1-C1-K1").await?;
        let points = compound["points"].as_array().expect("points");
        assert_eq!(
            points.iter().filter(|p| p["kind"] == "checkpoint").count(),
            10,
            "{backend}"
        );
        assert!(
            points
                .iter()
                .any(|p| p["kind"] == "unit" && p["code"] == "U-PHARMACY"),
            "{backend}: {compound}"
        );
        let listed = admin_json(h.server(), "/api/units?cell=S1-C1-K2").await?;
        assert_eq!(listed["units"][0]["code"], "U-SHOP", "{backend}: {listed}");
        assert_eq!(
            listed["units"].as_array().map(Vec::len),
            Some(1),
            "{backend}"
        );

        // The unit's ledgers: its inspection and its hazard, nothing from beside it.
        let cal = h.config.reports.calendar().map_err(anyhow::Error::msg)?;
        let today = cal.date(patrolsync_server::now_ms());
        let period = format!(
            "{}..{}",
            today.pred_opt().expect("day"),
            today.succ_opt().expect("day")
        );
        for (ledger, id) in [
            ("inspections", inspected.to_string()),
            ("hazard-disposal", hazard.to_string()),
        ] {
            let (status, csv) = admin_get(
                h.server(),
                &format!("/api/exports/{ledger}?unit=U-PHARMACY&period={period}&lang=en"),
            )
            .await?;
            assert_eq!(status, 200, "{backend}: {csv}");
            let data: Vec<&str> = csv
                .lines()
                .skip_while(|l| !l.contains(",cell,"))
                .skip(1)
                .take_while(|l| !l.is_empty())
                .collect();
            assert_eq!(data.len(), 1, "{backend} {ledger}: {csv}");
            assert!(data[0].contains(&id), "{backend} {ledger}: {csv}");
        }
        // The official form names the unit in its heading and its notes.
        let unit = sql
            .unit_file("U-PHARMACY", 0)
            .await?
            .expect("registered")
            .unit;
        let form = patrolsync_server::report::ledger(
            &sql,
            &cal,
            &h.config.reports.anomaly_rules(),
            patrolsync_server::report::LedgerQuery {
                ledger: patrolsync_server::report::Ledger::Inspections,
                period: &period.parse().map_err(anyhow::Error::msg)?,
                cell: None,
                unit: Some(&unit),
                as_of_ms: patrolsync_server::now_ms(),
                lang: patrolsync_i18n::Lang::ZhCn,
            },
        )
        .await?;
        assert!(
            form.heading[1].starts_with("单位：仁和大药房（U-PHARMACY，网格 S1-C1-K1-B1）　期间："),
            "{backend}: {:?}",
            form.heading
        );
        assert!(
            form.about
                .contains(&("重点单位".to_owned(), "U-PHARMACY 仁和大药房".to_owned())),
            "{backend}: {:?}",
            form.about
        );
        assert_eq!(form.rows.len(), 1, "{backend}");

        // Compound K1 taken away: its unit leaves the phone with it.
        sql.assign(
            "pat1",
            &["S1-C1-K1".into()],
            true,
            patrolsync_server::now_ms(),
        )
        .await?;
        pat1.sync().await?;
        assert!(pat1.units(None).await?.is_empty(), "{backend}");
        assert_eq!(
            device_view(&pat1).await?,
            server_view(h.server(), &pat1).await?,
            "{backend}"
        );
        h.finish().await;
    }
    Ok(())
}

/// The must-visit register as a district keeps it: one elderly person living alone in pat1's
/// compound, one family in hardship in the next compound.
const HOUSEHOLDS: &str = "编码,网格,地址,人群类别,联系人,联系电话
H-0301,S1-C1-K1-B1,1 号楼 3 单元 301,独居老人,张大爷,13900000000
H-0502,S1-C1-K2-B2,2 号楼 5 单元 502,困难群众,李阿姨,
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn households_reach_only_their_cells_staff_and_a_visit_names_the_household()
-> anyhow::Result<()> {
    use patrolsync_proto::hazard::Agency;
    use patrolsync_sdk::{ErrorCode, HouseholdGroup, RecordError};
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let sql = patrolsync_server::open_sql_store(&h.config).await?;
        let pat1 = h.device("k1", "pat1", &["S1-C1-K1"]).await?;
        let pat2 = h.device("k2", "pat2", &["S1-C1-K2"]).await?;
        let brigade = h
            .agency_device("fb", "brigade", Agency::FireBrigade, &["S1"])
            .await?;
        let file = h.dir.path().join("households.csv");
        std::fs::write(&file, HOUSEHOLDS)?;
        let done = patrolsync_server::registry_import::import_households(
            &sql,
            &file,
            false,
            patrolsync_server::now_ms(),
        )
        .await?;
        assert_eq!((done.rows, done.changed), (2, 2), "{backend}");

        // Each patroller holds its own compound's household; the fire brigade, which sees the
        // whole grid, holds none.
        for d in [&pat1, &pat2, &brigade] {
            d.sync().await?;
            assert_eq!(
                device_view(d).await?,
                server_view(h.server(), d).await?,
                "{backend}"
            );
        }
        let mine = pat1.households(None).await?;
        assert_eq!(
            mine.iter()
                .map(|h| (h.code.as_str(), h.group, h.contact_name.as_str()))
                .collect::<Vec<_>>(),
            [("H-0301", HouseholdGroup::ElderlyAlone, "张大爷")],
            "{backend}"
        );
        assert_eq!(pat2.households(None).await?.len(), 1, "{backend}");
        assert!(brigade.households(None).await?.is_empty(), "{backend}");

        // A visit names its household; a patrol may not name one (refused on the phone).
        let mut visit = NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
        visit.kind = CheckInKind::Visit;
        visit.household = Some("H-0301".into());
        let visited = pat1.record_checkin(visit.clone()).await?;
        let mut patrol = visit.clone();
        patrol.kind = CheckInKind::Patrol;
        match pat1.record_checkin(patrol).await {
            Err(RecordError::Invalid(i)) => {
                assert_eq!(
                    (i.field.as_str(), i.reason),
                    ("household", "not_a_visit"),
                    "{backend}"
                )
            }
            other => panic!("{backend}: a patrol naming a household: {other:?}"),
        }
        // Another compound's household, and one not on the register: refused by the server.
        let mut elsewhere = visit.clone();
        elsewhere.household = Some("H-0502".into());
        pat1.record_checkin(elsewhere).await?;
        let mut unknown = visit.clone();
        unknown.household = Some("H-9999".into());
        pat1.record_checkin(unknown).await?;
        let s = pat1.sync().await?;
        assert_eq!((s.applied, s.rejected), (1, 2), "{backend}: {s:?}");
        // Newest first, as `rejected` lists them.
        let refused: Vec<ErrorCode> = pat1
            .rejected()
            .await?
            .into_iter()
            .map(|r| r.error)
            .collect();
        assert_eq!(
            refused,
            [
                ErrorCode::UnknownHousehold {
                    household: "H-9999".into()
                },
                // Another compound's household gets the same answer: no oracle.
                ErrorCode::UnknownHousehold {
                    household: "H-0502".into()
                },
            ],
            "{backend}"
        );
        let on_server = sql.household_visits(None, 0, i64::MAX, i64::MAX).await?;
        assert_eq!(
            on_server
                .iter()
                .map(|v| (v.id.clone(), v.household.as_str(), v.user.as_str()))
                .collect::<Vec<_>>(),
            [(visited.to_string(), "H-0301", "pat1")],
            "{backend}"
        );

        // A household taken off the register leaves the phones holding it, and from the lists.
        assert_eq!(
            sql.remove_households(&["H-0502".into()], patrolsync_server::now_ms())
                .await?,
            1,
            "{backend}"
        );
        pat2.sync().await?;
        assert!(pat2.households(None).await?.is_empty(), "{backend}");
        // Nothing of it is left in the change log to pull from an old position either.
        let logged: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT payload FROM changes WHERE entity_key = 'household:H-0502'")
                .fetch_all(sql.raw_pool())
                .await?;
        assert!(logged.len() >= 2, "{backend}");
        for payload in logged {
            let h = patrolsync_proto::household::HouseholdRecord::decode(&payload)
                .map_err(|e| anyhow::anyhow!(e.message))?;
            assert!(
                h.removed
                    && h.contact_name.is_empty()
                    && h.contact_phone.is_empty()
                    && h.address.is_empty(),
                "{backend}: {h:?}"
            );
        }
        // A visit made after the removal is refused like one naming no household.
        let mut late = NewCheckIn::new("S1-C1-K2-B2-P1", CheckInOutcome::Inspected);
        late.kind = CheckInKind::Visit;
        late.household = Some("H-0502".into());
        pat2.record_checkin(late).await?;
        assert_eq!(pat2.sync().await?.rejected, 1, "{backend}");
        assert_eq!(
            device_view(&pat2).await?,
            server_view(h.server(), &pat2).await?,
            "{backend}"
        );
        let left = sql.households(None, i64::MAX).await?;
        let gone = left
            .iter()
            .find(|h| h.code == "H-0502")
            .expect("kept for its visits");
        assert!(
            gone.removed_at_ms.is_some() && gone.contact_name.is_empty() && gone.address.is_empty(),
            "{backend}: nothing personal stays: {gone:?}"
        );

        // The compound taken away: its household leaves the phone with it.
        sql.assign(
            "pat1",
            &["S1-C1-K1".into()],
            true,
            patrolsync_server::now_ms(),
        )
        .await?;
        pat1.sync().await?;
        assert!(pat1.households(None).await?.is_empty(), "{backend}");
        assert_eq!(
            device_view(&pat1).await?,
            server_view(h.server(), &pat1).await?,
            "{backend}"
        );
        h.finish().await;
    }
    Ok(())
}
