//! Cadence compliance and the check-in ledgers on a hand-built fixture: a few cells, check-ins
//! across a week boundary and a month boundary (in Asia/Shanghai, where a check-in at 00:30 on
//! 1 November is still 31 October in UTC), some could-not-inspect, some flagged. The numbers
//! are computed by hand in the comments; the real binary's JSON and XLSX must say the same.

mod common;

use std::collections::BTreeSet;

use calamine::{Data, Reader, Xlsx, open_workbook};
use common::BIN;
use patrolsync_proto::checkin::{CheckInKind, CheckInMethod, CheckInOutcome};
use patrolsync_proto::{CheckIn, CheckInId, GeoFix, Hlc, OpId, Role};
use patrolsync_server::config::Reports;
use patrolsync_server::report::{self, Counts, Period};
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::store::*;
use patrolsync_server::testkit::{enroll_device, test_databases};

use patrolsync_server::testkit::shanghai_ms as local;

const AT: (f64, f64) = (45.75, 126.65);

struct Visit {
    checkpoint: &'static str,
    at_ms: i64,
    kind: CheckInKind,
    outcome: CheckInOutcome,
    /// `None`: no fix at all; else metres north of the checkpoint.
    north_m: Option<f64>,
    mock: bool,
    /// The anomaly flags the ledger must show, by hand.
    flags: &'static str,
}

fn visit(checkpoint: &'static str, at_ms: i64, outcome: CheckInOutcome) -> Visit {
    Visit {
        checkpoint,
        at_ms,
        kind: CheckInKind::Inspection,
        outcome,
        north_m: Some(0.0),
        mock: false,
        flags: "",
    }
}

struct Fixture {
    store: SqlStore,
    /// Every check-in id stored, with its kind, device time and expected flags.
    stored: Vec<(String, CheckInKind, i64, &'static str)>,
}

async fn fixture(store: SqlStore) -> anyhow::Result<Fixture> {
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
        name: format!("checkpoint {code}"),
        tag_uid: None,
        position: Some(AT),
        radius_m: 30.0,
        cadence: None,
    };
    store
        .upsert_grid(
            &[
                cell("S9", None, 1),
                cell("S9-C1", Some("S9"), 2),
                cell("S9-C1-K1", Some("S9-C1"), 3),
                cell("S9-C1-K1-B1", Some("S9-C1-K1"), 4),
            ],
            &[
                cp("M", "S9-C1"),        // monthly (level 2)
                cp("W", "S9-C1-K1"),     // weekly (level 3)
                cp("D1", "S9-C1-K1-B1"), // daily (level 4)
                cp("D2", "S9-C1-K1-B1"), // daily
                cp("X", "S9-C1-K1-B1"),  // level 4, but its own cadence: weekly
            ],
            // The grid was there long before the period.
            local(2026, 9, 1, 0, 0),
        )
        .await?;
    sqlx::query("UPDATE checkpoints SET cadence = 'weekly' WHERE code = 'X'")
        .execute(store.raw_pool())
        .await?;

    let now = local(2026, 11, 20, 12, 0);
    let anna = enroll_device(
        &store,
        "anna",
        "anna's phone",
        Role::Patroller,
        &["S9"],
        now,
    )
    .await?;
    let bo = enroll_device(&store, "bo", "bo's phone", Role::Patroller, &["S9"], now).await?;
    use CheckInOutcome::*;
    let anna_visits = vec![
        // D1 (daily): 30 Oct inspected; 31 Oct nothing; 1 Nov 00:30 local (31 Oct in UTC)
        // inspected; 2 Nov inspected with a mocked fix (flagged).
        visit("D1", local(2026, 10, 30, 9, 0), Inspected),
        visit("D1", local(2026, 11, 1, 0, 30), Inspected),
        Visit {
            mock: true,
            flags: "mock_location",
            ..visit("D1", local(2026, 11, 2, 9, 0), Inspected)
        },
        // D2 (daily): 30 Oct locked; 31 Oct first out of radius (1 km off: flagged), then a
        // clean inspection (the slot counts inspected); 2 Nov vacant.
        visit("D2", local(2026, 10, 30, 9, 30), Locked),
        Visit {
            north_m: Some(1_000.0),
            flags: "out_of_radius",
            ..visit("D2", local(2026, 10, 31, 9, 0), Inspected)
        },
        visit("D2", local(2026, 10, 31, 15, 0), Inspected),
        visit("D2", local(2026, 11, 2, 10, 0), Vacant),
        // W (weekly from Monday): Sunday 1 Nov answers the week 26 Oct–1 Nov; Thursday 5 Nov,
        // after the report period, answers the week 2–8 Nov that overlaps it.
        visit("W", local(2026, 11, 1, 10, 0), Inspected),
        visit("W", local(2026, 11, 5, 10, 0), Inspected),
        // X (weekly by its own cadence): no fix on 27 Oct (flagged); nothing 2–8 Nov.
        Visit {
            north_m: None,
            flags: "no_fix",
            ..visit("X", local(2026, 10, 27, 10, 0), Inspected)
        },
        // A patrol pass (patrol ledger, not the inspection ledger).
        Visit {
            kind: CheckInKind::Patrol,
            ..visit("D1", local(2026, 10, 30, 21, 0), Inspected)
        },
    ];
    let bo_visits = vec![
        // M (monthly): October answered on 5 Oct; November still running at `now` (open).
        visit("M", local(2026, 10, 5, 10, 0), Inspected),
        // D2 on 1 Nov: inspected, then a double tap a minute later (flagged, but the slot
        // already has a clean inspection).
        visit("D2", local(2026, 11, 1, 10, 0), Inspected),
        Visit {
            flags: "double_tap",
            ..visit("D2", local(2026, 11, 1, 10, 1), Inspected)
        },
    ];
    let mut stored = Vec::new();
    for (device, visits) in [(&anna, anna_visits), (&bo, bo_visits)] {
        // Received on 9 November, after the last visit: offline for days, not skewed.
        stored.extend(push(&store, device, 1, visits, local(2026, 11, 9, 8, 0)).await?);
    }
    Ok(Fixture { store, stored })
}

/// Pushes `visits` as `device`'s ops from `first_seq`, received at `at_ms`; returns what was
/// stored: id, kind, device time, expected flags.
async fn push(
    store: &SqlStore,
    device: &DeviceSession,
    first_seq: u64,
    visits: Vec<Visit>,
    at_ms: i64,
) -> anyhow::Result<Vec<(String, CheckInKind, i64, &'static str)>> {
    let mut stored = Vec::new();
    let mut ops = Vec::new();
    for (i, v) in visits.into_iter().enumerate() {
        let seq = first_seq + i as u64;
        let cp = store
            .checkpoints(&[v.checkpoint.to_owned()])
            .await?
            .pop()
            .expect("fixture checkpoint");
        let id = CheckInId(uuid::Uuid::now_v7());
        stored.push((id.0.to_string(), v.kind, v.at_ms, v.flags));
        ops.push(PreparedOp {
            device_seq: seq,
            op_id: OpId(uuid::Uuid::now_v7()),
            hlc: Hlc {
                wall_ms: v.at_ms as u64,
                logical: 0,
            },
            action: OpAction::InsertCheckIn(Box::new(CheckInRow {
                check_in: CheckIn {
                    id,
                    checkpoint: v.checkpoint.into(),
                    kind: v.kind,
                    method: CheckInMethod::Nfc,
                    tag_uid: String::new(),
                    device_time_ms: v.at_ms,
                    monotonic_ms: seq,
                    fix: v.north_m.map(|n| GeoFix {
                        latitude: AT.0 + n / 111_195.0,
                        longitude: AT.1,
                        accuracy_m: 8.0,
                        fix_time_ms: v.at_ms,
                        mock: v.mock,
                        datum: patrolsync_proto::geo::Datum::Wgs84,
                    }),
                    outcome: v.outcome,
                    template_id: "daily-fire".into(),
                    template_version: 3,
                    answers: vec![],
                    photos: vec![],
                    note: String::new(),
                    household: String::new(),
                },
                checkpoint_id: cp.id,
                cell_id: cp.cell_id,
                household_id: None,
            })),
        });
    }
    let batch = IngestBatch {
        device: device.id,
        user_id: device.user_id,
        ops,
    };
    store.ingest(&[batch], at_ms).await?.remove(0)?;
    Ok(stored)
}

fn counts(
    due: u64,
    inspected: u64,
    cni: &[(&str, u64)],
    flagged: u64,
    missed: u64,
    open: u64,
) -> Counts {
    Counts {
        due,
        inspected,
        could_not_inspect: cni.iter().map(|(_, n)| n).sum(),
        could_not_inspect_by_outcome: cni.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
        flagged,
        missed,
        open,
    }
}

#[tokio::test]
async fn compliance_on_a_hand_built_fixture_equals_the_hand_computed_table() -> anyhow::Result<()> {
    for db in test_databases().await {
        let dir = tempfile::tempdir()?;
        let url = db.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("patrolsync.db").display()
            )
        });
        let f = fixture(SqlStore::connect(&url).await?).await?;
        let cal = Reports::default().calendar().map_err(anyhow::Error::msg)?;
        let rules = Reports::default().anomaly_rules();
        let now = local(2026, 11, 20, 12, 0);

        // 30 Oct – 2 Nov (Fri–Mon): D1, D2 four daily slots each; W and X two weekly slots
        // (26 Oct–1 Nov, 2–8 Nov); M two monthly slots (October; November, still open).
        let period: Period = "2026-10-30..2026-11-02"
            .parse()
            .map_err(anyhow::Error::msg)?;
        let r = report::compliance(&f.store, &cal, &rules, &period, None, now).await?;
        let got: Vec<_> = r
            .rows
            .iter()
            .map(|r| (r.cell.as_str(), r.depth, r.checkpoints, r.counts.clone()))
            .collect();
        // B1: D1 2 inspected, 1 flagged (mock), 1 missed; D2 2 inspected (31 Oct, 1 Nov),
        // locked, vacant; X 1 flagged (no fix), 1 missed.
        let b1 = counts(10, 4, &[("locked", 1), ("vacant", 1)], 2, 2, 0);
        // K1 adds W: 2 inspected.
        let k1 = counts(12, 6, &[("locked", 1), ("vacant", 1)], 2, 2, 0);
        // C1 adds M: October inspected, November open (not yet due).
        let c1 = counts(13, 7, &[("locked", 1), ("vacant", 1)], 2, 2, 1);
        assert_eq!(
            got,
            vec![
                ("S9", 0, 5, c1.clone()),
                ("S9-C1", 1, 5, c1),
                ("S9-C1-K1", 2, 4, k1),
                ("S9-C1-K1-B1", 3, 3, b1),
            ],
            "{}",
            db.backend
        );
        assert_eq!(r.rows[2].rate, Some(0.5));

        // The evaluation over the same days. By person: anna's 9 check-ins there (the mock fix
        // and the 1 km miss flagged), bo's 2 (the double tap flagged); both are assigned S9, so
        // both answer for its compliance.
        let e = report::evaluation(&f.store, &cal, &rules, &period, None, true, now).await?;
        let people: Vec<_> = e
            .rows
            .iter()
            .map(|r| {
                let t = &r.tally;
                (
                    r.subject.as_str(),
                    t.check_ins,
                    t.flagged_check_ins,
                    t.due,
                    t.inspected,
                )
            })
            .collect();
        assert_eq!(
            people,
            [("anna", 9, 2, 13, 7), ("bo", 2, 1, 13, 7)],
            "{}",
            db.backend
        );
        // By cell: the same check-ins rolled up the tree (W's is in the compound, not the
        // building), with each cell's compliance.
        let e = report::evaluation(&f.store, &cal, &rules, &period, None, false, now).await?;
        let cells: Vec<_> = e
            .rows
            .iter()
            .map(|r| {
                (
                    r.subject.as_str(),
                    r.tally.check_ins,
                    r.tally.flagged_check_ins,
                    r.tally.compliance,
                )
            })
            .collect();
        assert_eq!(
            cells,
            [
                ("S9", 11, 3, Some(7.0 / 13.0)),
                ("S9-C1", 11, 3, Some(7.0 / 13.0)),
                ("S9-C1-K1", 11, 3, Some(0.5)),
                ("S9-C1-K1-B1", 10, 3, Some(0.4)),
            ],
            "{}",
            db.backend
        );

        // October for the compound: the week 26 Oct–1 Nov straddles the month and is answered
        // by W's visit on 1 Nov. W: 5 weeks, 1 inspected. X: 5 weeks, 1 flagged. D1: 31 days,
        // 1 inspected (30 Oct). D2: 31 days, 1 inspected (31 Oct), 1 locked.
        let october: Period = "2026-10".parse().map_err(anyhow::Error::msg)?;
        let r = report::compliance(&f.store, &cal, &rules, &october, Some("S9-C1-K1"), now).await?;
        assert_eq!(r.rows.len(), 2);
        assert_eq!(
            (r.rows[0].cell.as_str(), r.rows[0].depth, &r.rows[0].counts),
            ("S9-C1-K1", 0, &counts(72, 3, &[("locked", 1)], 1, 67, 0)),
            "{}",
            db.backend
        );

        // A daily checkpoint added at 10:00 on 29 October owes 29, 30 and 31 October only.
        f.store
            .upsert_grid(
                &[],
                &[NewCheckpoint {
                    code: "N".into(),
                    cell: "S9-C1-K1-B1".into(),
                    name: "new extinguisher station".into(),
                    tag_uid: None,
                    position: Some(AT),
                    radius_m: 30.0,
                    cadence: None,
                }],
                local(2026, 10, 29, 10, 0),
            )
            .await?;
        let r = report::compliance(&f.store, &cal, &rules, &october, Some("S9-C1-K1"), now).await?;
        assert_eq!(
            &r.rows[0].counts,
            &counts(75, 3, &[("locked", 1)], 1, 70, 0),
            "{}",
            db.backend
        );

        // The devices' clocks drift after the fact: the reports of the past do not change.
        let before = report::compliance(&f.store, &cal, &rules, &period, None, now).await?;
        sqlx::query("UPDATE devices SET clock_offset_ms = -3600000")
            .execute(f.store.raw_pool())
            .await?;
        let after = report::compliance(&f.store, &cal, &rules, &period, None, now).await?;
        assert_eq!(before.rows, after.rows, "{}", db.backend);
        // A check-in that arrives while the device's clock is an hour slow is flagged.
        let bo = enroll_device(
            &f.store,
            "bo",
            "bo's new phone",
            Role::Patroller,
            &["S9"],
            now,
        )
        .await?;
        sqlx::query("UPDATE devices SET clock_offset_ms = -3600000 WHERE id = $1")
            .bind(bo.id.to_string())
            .execute(f.store.raw_pool())
            .await?;
        let late = push(
            &f.store,
            &bo,
            100,
            vec![Visit {
                kind: CheckInKind::Patrol,
                flags: "clock_skew",
                ..visit("W", local(2026, 11, 2, 12, 0), CheckInOutcome::Inspected)
            }],
            local(2026, 11, 9, 9, 0),
        )
        .await?;
        let t = report::ledger(
            &f.store,
            &cal,
            &rules,
            report::LedgerQuery {
                ledger: report::Ledger::Patrols,
                period: &period,
                cell: None,
                unit: None,
                as_of_ms: now,
                lang: patrolsync_i18n::Lang::En,
            },
        )
        .await?;
        let (id_col, flags_col) = (
            t.columns
                .iter()
                .position(|c| *c == "check_in_id")
                .expect("id"),
            t.columns
                .iter()
                .position(|c| *c == "anomalies")
                .expect("anomalies"),
        );
        let row = t
            .rows
            .iter()
            .find(|r| r[id_col].to_string() == late[0].0)
            .expect("in the patrol ledger");
        assert_eq!(row[flags_col].to_string(), "clock_skew", "{}", db.backend);

        // The inspection ledger over the short period: every inspection check-in there (the
        // flagged ones and the double tap included), and not the patrol pass.
        let t = report::ledger(
            &f.store,
            &cal,
            &rules,
            report::LedgerQuery {
                ledger: report::Ledger::Inspections,
                period: &period,
                cell: Some("S9"),
                unit: None,
                as_of_ms: now,
                lang: patrolsync_i18n::Lang::En,
            },
        )
        .await?;
        let expected: BTreeSet<&str> = f
            .stored
            .iter()
            .filter(|(_, kind, at, _)| {
                *kind == CheckInKind::Inspection
                    && (local(2026, 10, 30, 0, 0)..local(2026, 11, 3, 0, 0)).contains(at)
            })
            .map(|(id, ..)| id.as_str())
            .collect();
        let id_col = t
            .columns
            .iter()
            .position(|c| *c == "check_in_id")
            .expect("id column");
        let ids: BTreeSet<String> = t.rows.iter().map(|r| r[id_col].to_string()).collect();
        assert_eq!(ids.len(), t.rows.len(), "no row twice");
        assert_eq!(
            ids.iter().map(String::as_str).collect::<BTreeSet<_>>(),
            expected
        );
        db.cleanup().await;
    }
    Ok(())
}

/// The moment the binary's reports stand at: the fixture's `now`, long after its check-ins
/// arrived (9 November) and before November's monthly slot ended.
const AS_OF: &str = "2026-11-20 12:00";

/// The real binary: `admin report compliance --format json` and `admin export inspections
/// --format xlsx`, read back with calamine; the ledger's rows equal the store's check-ins.
/// The key-value rows of a workbook's sheet (a ledger's about sheet).
fn pairs(
    book: &mut Xlsx<std::io::BufReader<std::fs::File>>,
    sheet: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(book
        .worksheet_range(sheet)?
        .rows()
        .map(|r| {
            (
                r[0].to_string(),
                r.get(1).map(Data::to_string).unwrap_or_default(),
            )
        })
        .collect())
}

#[tokio::test]
async fn the_binary_renders_compliance_and_an_xlsx_ledger_that_reads_back() -> anyhow::Result<()> {
    for db in test_databases().await {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let url = db.url.clone().unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", data.join("patrolsync.db").display())
        });
        let f = fixture(SqlStore::connect(&url).await?).await?;
        let run = |args: &[&str]| admin_zh(&data, db.url.as_deref(), args);

        // Runs a command that must succeed; its stdout.
        let ok = |args: &[&str]| -> anyhow::Result<String> {
            let out = run(args)?;
            anyhow::ensure!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(String::from_utf8(out.stdout)?)
        };
        // Every report stands at the fixture's moment, not at the day the test runs: October's
        // compliance of S9-C1-K1 as of AS_OF, with `more` args.
        let compliance = |more: &[&str]| -> anyhow::Result<String> {
            let mut args = vec![
                "report",
                "compliance",
                "--period",
                "2026-10",
                "--cell",
                "S9-C1-K1",
                "--as-of",
                AS_OF,
            ];
            args.extend_from_slice(more);
            ok(&args)
        };
        let json: serde_json::Value = serde_json::from_str(&compliance(&["--format", "json"])?)?;
        let root = &json["rows"][0];
        assert_eq!(json["time_zone"], "Asia/Shanghai");
        assert_eq!(
            (&json["as_of"]["local"], &json["as_of"]["ms"]),
            (
                &"2026-11-20 12:00:00".into(),
                &local(2026, 11, 20, 12, 0).into()
            ),
            "the JSON says which moment it stands at"
        );
        assert_eq!(
            (
                &root["cell"],
                &root["due"],
                &root["inspected"],
                &root["could_not_inspect"],
                &root["flagged"],
                &root["missed"]
            ),
            (
                &"S9-C1-K1".into(),
                &72.into(),
                &3.into(),
                &1.into(),
                &1.into(),
                &67.into()
            ),
            "{}: {json}",
            db.backend
        );
        let english = compliance(&["--lang", "en"])?;
        assert!(
            english.contains("S9-C1-K1-B1")
                && english.contains("4.2%")
                && english.contains("as of 2026-11-20 12:00:00"),
            "{english}"
        );
        // In Chinese: the title, the column names and the levels in words.
        let text = compliance(&["--lang", "zh-CN"])?;
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("巡查频次合规 2026-10（Asia/Shanghai），截至 2026-11-20 12:00:00")
        );
        assert_eq!(
            lines
                .next()
                .map(|l| l.split_whitespace().collect::<Vec<_>>()),
            Some(vec![
                "所属网格",
                "层级",
                "应检",
                "已检",
                "未能检查",
                "存疑",
                "漏检",
                "未到期",
                "检查点数",
                "合规率"
            ])
        );
        // The root's row: the English one's numbers, its level (3) named.
        let mut english_root: Vec<&str> = english
            .lines()
            .nth(2)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(english_root.get(1), Some(&"3"), "{english}");
        english_root[1] = "小区";
        assert_eq!(
            lines
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>(),
            english_root,
            "{text}"
        );
        // As CSV: the report's columns in words, a could-not-inspect reason by its outcome's.
        let csv_text = compliance(&["--format", "csv", "--lang", "zh-CN"])?;
        let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
        let header: Vec<String> = reader.headers()?.iter().map(str::to_owned).collect();
        assert_eq!(&header[..3], ["所属网格", "名称", "层级"]);
        assert!(header.contains(&"锁门".to_owned()), "{header:?}");
        let first = reader.records().next().expect("a row")?;
        assert_eq!(&first[2], "小区");

        let text = ok(&[
            "report",
            "evaluation",
            "--period",
            "2026-10-30..2026-11-02",
            "--by",
            "person",
            "--as-of",
            AS_OF,
            "--lang",
            "en",
        ])?;
        let anna = text
            .lines()
            .find(|l| l.starts_with("anna"))
            .unwrap_or_default();
        assert_eq!(
            anna.split_whitespace().collect::<Vec<_>>(),
            [
                "anna",
                "patroller",
                "13",
                "7",
                "53.8%",
                "9",
                "2",
                "0",
                "0",
                "0",
                "0",
                "0",
                // information reports, acknowledged
                "0",
                "0"
            ],
            "{text}"
        );

        let xlsx = dir.path().join("inspections.xlsx");
        // The inspection ledger of S9 over four days, as it stood at AS_OF, with `more` args.
        let export = |more: &[&str]| -> anyhow::Result<String> {
            let mut args = vec![
                "export",
                "inspections",
                "--cell",
                "S9",
                "--period",
                "2026-10-30..2026-11-02",
                "--as-of",
                AS_OF,
            ];
            args.extend_from_slice(more);
            ok(&args)
        };
        let xlsx_arg = xlsx.to_str().expect("utf-8 temp path");
        export(&["--format", "xlsx", "-o", xlsx_arg, "--lang", "en"])?;
        let mut book: Xlsx<_> = open_workbook(&xlsx)?;
        let sheet = book.worksheet_range("inspections")?;
        // The title and the grid and period above the header.
        let mut rows = sheet.rows();
        assert_eq!(
            rows.next().expect("title")[0].to_string(),
            "Fire safety inspection record"
        );
        assert_eq!(
            rows.next().expect("period")[0].to_string(),
            "S9 · 2026-10-30 – 2026-11-02"
        );
        let header: Vec<String> = rows
            .next()
            .expect("header")
            .iter()
            .map(|c| c.to_string())
            .collect();
        let col = |name: &str| header.iter().position(|h| h == name).expect(name);
        let (id, anomalies, outcome) = (col("check_in_id"), col("anomalies"), col("outcome"));
        let read: Vec<(String, String, String)> = rows
            .map(|r| {
                (
                    r[id].to_string(),
                    r[outcome].to_string(),
                    r[anomalies].to_string(),
                )
            })
            .collect();

        // What the store holds for that subtree and period, straight from SQL, with the flags
        // each must carry by hand (the 1 km miss, the double tap, the mock fix).
        let expected_flags: std::collections::HashMap<&str, &str> = f
            .stored
            .iter()
            .map(|(id, _, _, flags)| (id.as_str(), *flags))
            .collect();
        let (from, to) = (local(2026, 10, 30, 0, 0), local(2026, 11, 3, 0, 0));
        let stored: Vec<(String, String, String)> = sqlx::query_as::<_, (Vec<u8>, String)>(
            "SELECT id, outcome FROM check_ins WHERE kind = 'inspection' \
             AND device_time_ms >= $1 AND device_time_ms < $2 ORDER BY device_time_ms",
        )
        .bind(from)
        .bind(to)
        .fetch_all(f.store.raw_pool())
        .await?
        .into_iter()
        .map(|(id, outcome)| {
            let id = uuid::Uuid::from_slice(&id).expect("uuid").to_string();
            let flags = expected_flags[id.as_str()].to_owned();
            (id, outcome, flags)
        })
        .collect();
        assert_eq!(
            read, stored,
            "{}: one row per check-in, in time order",
            db.backend
        );
        assert_eq!(
            read.iter().filter(|r| !r.2.is_empty()).count(),
            3,
            "{}",
            db.backend
        );

        let meta = pairs(&mut book, "about")?;
        assert!(
            meta.contains(&("period".into(), "2026-10-30..2026-11-02".into())),
            "{meta:?}"
        );
        assert!(
            meta.contains(&("time zone".into(), "Asia/Shanghai".into())),
            "{meta:?}"
        );
        assert!(
            meta.contains(&("as of".into(), "2026-11-20 12:00:00".into())),
            "the XLSX says which moment it stands at: {meta:?}"
        );

        // The official form in Chinese (the default where the locale names no language): the
        // sheet named as the form, its title and the grid and period above the Chinese header,
        // a row number first, dates as 2026年10月30日, outcomes in words; printed on A4.
        let form = dir.path().join("检查记录.xlsx");
        export(&[
            "--format",
            "xlsx",
            "-o",
            form.to_str().expect("utf-8 temp path"),
            "--lang",
            "zh-CN",
        ])?;
        let mut book: Xlsx<_> = open_workbook(&form)?;
        let sheet = book.worksheet_range("日常消防检查记录")?;
        let grid: Vec<Vec<String>> = sheet
            .rows()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect();
        assert_eq!(grid[0][0], "日常消防检查记录");
        assert_eq!(
            grid[1][0],
            "网格：S9　期间：2026年10月30日 至 2026年11月2日"
        );
        assert_eq!(
            grid[2][..6],
            [
                "序号",
                "检查时间",
                "所属网格",
                "检查点编号",
                "检查部位",
                "检查人"
            ]
        );
        let zh_col = |name: &str| grid[2].iter().position(|h| h == name).expect(name);
        let body = &grid[3..];
        assert_eq!(body.len(), read.len(), "the same rows as in English");
        for (n, (row, en)) in body.iter().zip(&read).enumerate() {
            assert_eq!(row[0], (n + 1).to_string(), "numbered from 1");
            assert_eq!(row[zh_col("记录编号")], en.0, "the same check-in, in order");
            let word = match en.1.as_str() {
                "inspected" => "已检查",
                "locked" => "锁门",
                "vacant" => "空置",
                other => panic!("an outcome the fixture does not use: {other}"),
            };
            assert_eq!(row[zh_col("检查情况")], word);
            assert!(
                row[zh_col("检查时间")].starts_with("2026年1"),
                "a date as the form writes it: {}",
                row[zh_col("检查时间")]
            );
        }
        let flagged = body
            .iter()
            .map(|r| r[zh_col("异常标记")].as_str())
            .filter(|f| !f.is_empty())
            .collect::<Vec<_>>();
        assert!(flagged.contains(&"重复签到"), "flags in words: {flagged:?}");
        let meta = pairs(&mut book, "说明")?;
        assert!(
            meta.contains(&("时区".into(), "Asia/Shanghai".into())),
            "{meta:?}"
        );
        // Page setup, as the workbook's XML says it: A4 landscape, one page wide, the header
        // row (the third) printed on every page.
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&form)?)?;
        let xml =
            |zip: &mut zip::ZipArchive<std::fs::File>, name: &str| -> anyhow::Result<String> {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut zip.by_name(name)?, &mut text)?;
                Ok(text)
            };
        let sheet_xml = xml(&mut zip, "xl/worksheets/sheet1.xml")?;
        assert!(
            sheet_xml.contains(r#"paperSize="9""#)
                && sheet_xml.contains(r#"orientation="landscape""#),
            "{sheet_xml}"
        );
        assert!(sheet_xml.contains(r#"fitToHeight="0""#), "{sheet_xml}");
        // Columns sized to what they hold: the Chinese header's widest column is set.
        assert!(sheet_xml.contains("<cols>"), "{sheet_xml}");
        let workbook_xml = xml(&mut zip, "xl/workbook.xml")?;
        assert!(
            workbook_xml.contains("_xlnm.Print_Titles") && workbook_xml.contains("$3:$3"),
            "{workbook_xml}"
        );

        // The same as CSV in a file: the byte order mark, then UTF-8 with the Chinese header.
        let csv_path = dir.path().join("检查记录.csv");
        export(&[
            "-o",
            csv_path.to_str().expect("utf-8 temp path"),
            "--lang",
            "zh-CN",
        ])?;
        let bytes = std::fs::read(&csv_path)?;
        assert_eq!(&bytes[..3], b"\xEF\xBB\xBF", "the CSV starts with the BOM");
        let text = std::str::from_utf8(&bytes[3..])?;
        let mut csv_rows = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(&csv_rows.headers()?[1], "检查时间");
        assert_eq!(csv_rows.records().count(), read.len());

        // A bad period is refused naming what is accepted, and writes nothing.
        let bad = dir.path().join("bad.xlsx");
        let bad_arg = bad.to_str().expect("utf-8 temp path");
        let out = run(&[
            "export", "patrols", "--period", "2026-13", "--format", "xlsx", "-o", bad_arg,
        ])?;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("2026-Q4（季度）"), "{err}");
        assert!(!bad.exists(), "nothing written");
        let out = run(&["export", "patrols", "--cell", "S404", "--period", "2026-10"])?;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err, "错误：网格 S404 不存在\n");
        db.cleanup().await;
    }
    Ok(())
}

/// `--as-of`: a report counts only what the server had received by that moment. The fixture's
/// check-ins all arrived on 9 November at 08:00; October's report as it stood a minute before
/// has every slot missed, as it stood that evening (and today) has them answered.
/// `patrolsync --lang zh-CN admin` on `data` (and `url`) with `args`, free of a developer's
/// PATROLSYNC_LOG (exact output is compared).
fn admin_zh(
    data: &std::path::Path,
    url: Option<&str>,
    args: &[&str],
) -> anyhow::Result<std::process::Output> {
    let mut cmd = std::process::Command::new(BIN);
    cmd.env_remove("PATROLSYNC_LOG")
        .args(["--lang", "zh-CN", "admin", "--data-dir"])
        .arg(data);
    if let Some(u) = url {
        cmd.arg("--database-url").arg(u);
    }
    Ok(cmd.args(args).output()?)
}

#[tokio::test]
async fn a_report_as_of_a_moment_counts_only_what_had_arrived_by_then() -> anyhow::Result<()> {
    for db in test_databases().await {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let url = db.url.clone().unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", data.join("patrolsync.db").display())
        });
        let _f = fixture(SqlStore::connect(&url).await?).await?;
        let run = |args: &[&str]| admin_zh(&data, db.url.as_deref(), args);
        // October's compliance of the compound as JSON: (due, inspected, cni, flagged, missed).
        let october = |as_of: Option<&str>| -> anyhow::Result<(serde_json::Value, [u64; 5])> {
            let mut args = vec![
                "report",
                "compliance",
                "--period",
                "2026-10",
                "--cell",
                "S9-C1-K1",
                "--format",
                "json",
            ];
            args.extend(as_of.map(|a| ["--as-of", a]).into_iter().flatten());
            let out = run(&args)?;
            anyhow::ensure!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            let root = &json["rows"][0];
            let n = |k: &str| root[k].as_u64().unwrap_or(u64::MAX);
            let counts = [
                n("due"),
                n("inspected"),
                n("could_not_inspect"),
                n("flagged"),
                n("missed"),
            ];
            Ok((json["as_of"].clone(), counts))
        };

        let (before_at, before) = october(Some("2026-11-09 07:59"))?;
        assert_eq!(
            before,
            [72, 0, 0, 0, 72],
            "{}: nothing had arrived a minute before",
            db.backend
        );
        assert_eq!(before_at["ms"], local(2026, 11, 9, 7, 59));
        let (after_at, after) = october(Some("2026-11-09"))?;
        assert_eq!(
            after,
            [72, 3, 1, 1, 67],
            "{}: a date is the end of that day",
            db.backend
        );
        assert_eq!(after_at["ms"], local(2026, 11, 10, 0, 0));
        let rfc = october(Some("2026-11-09T00:01:00Z"))?.1;
        assert_eq!(rfc, after, "{}: 08:01 in Shanghai", db.backend);
        // Without --as-of the report stands now: October ended and everything arrived long
        // before, so it equals the report as of that evening whatever day the test runs.
        assert_eq!(october(None)?.1, after, "{}", db.backend);

        // The ledger as of the same minute has no rows; as of that evening, every inspection.
        let ledger = |as_of: &str| -> anyhow::Result<usize> {
            let out = run(&[
                "export",
                "inspections",
                "--cell",
                "S9",
                "--period",
                "2026-10-30..2026-11-02",
                "--as-of",
                as_of,
            ])?;
            anyhow::ensure!(out.status.success(), "{:?}", out);
            let mut csv = csv::Reader::from_reader(out.stdout.as_slice());
            Ok(csv.records().count())
        };
        assert_eq!(ledger("2026-11-09 07:59")?, 0, "{}", db.backend);
        assert_eq!(ledger("2026-11-09 08:00")?, 10, "{}", db.backend);

        // A moment to come, or one that is not a time, is refused and says what is accepted.
        let out = run(&[
            "report",
            "compliance",
            "--period",
            "2026-10",
            "--as-of",
            "9999-12-30",
        ])?;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("错误：--as-of「9999-12-30」（9999-12-31 00:00:00）在将来"),
            "{err}"
        );
        let out = run(&[
            "report",
            "evaluation",
            "--period",
            "2026-10",
            "--as-of",
            "last tuesday",
        ])?;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("时间「last tuesday」：可写 2026-11-03（当天结束时）、2026-11-03 09:00（Asia/Shanghai 当地时间）或 2026-11-03T09:00:00+08:00（RFC 3339）"),
            "{err}"
        );
        db.cleanup().await;
    }
    Ok(())
}
