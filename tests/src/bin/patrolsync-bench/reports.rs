//! `patrolsync-bench reports`: the synthetic city (`seed-demo --size city`), a month of
//! check-ins across it, then the compliance report, the evaluation and a ledger over that
//! month, each timed beside the baselines of the same run: reading the month's rows the report
//! needs, and counting them in the database.

use std::time::Instant;

use patrolsync_proto::checkin::{CheckInKind, CheckInMethod, CheckInOutcome};
use patrolsync_proto::{CheckIn, CheckInId, GeoFix, Hlc, OpId, Role};
use patrolsync_server::config::Reports;
use patrolsync_server::report::{self, Calendar, Period};
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::store::*;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Options of `patrolsync-bench reports`.
#[derive(clap::Args, Debug)]
pub struct ReportsArgs {
    /// `city` (Harbin's scale: 15,799 cells, 40,000 daily checkpoints) or `small` (the demo
    /// grid; checks the mode works in seconds).
    #[arg(long, default_value = "city", value_parser = ["city", "small"])]
    pub size: String,
    /// The month to fill and report on.
    #[arg(long, default_value = "2026-10")]
    pub period: String,
    /// Share of checkpoint-days with a check-in (0 to 1).
    #[arg(long, default_value_t = 0.7)]
    pub coverage: f64,
    /// Seed of the synthetic check-ins.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn secs(since: Instant) -> f64 {
    since.elapsed().as_secs_f64()
}

/// Runs the mode against `url` (a fresh database); returns the JSON report.
pub async fn run(args: &ReportsArgs, url: &str) -> anyhow::Result<Value> {
    let store = SqlStore::connect(url).await?;
    let t = Instant::now();
    let (cells, checkpoints, _) = if args.size == "city" {
        patrolsync_server::seed::seed_city(&store).await?
    } else {
        patrolsync_server::seed::seed_demo(&store).await?
    };
    let seed_s = secs(t);
    eprintln!(
        "seed-demo --size {}: {cells} cells, {checkpoints} checkpoints in {seed_s:.1} s",
        args.size
    );

    let cal = Reports::default().calendar().map_err(anyhow::Error::msg)?;
    let rules = Reports::default().anomaly_rules();
    let period: Period = args.period.parse().map_err(anyhow::Error::msg)?;
    // The grid was there before the month (checkpoints owe nothing before they exist).
    sqlx::query("UPDATE checkpoints SET created_at = $1")
        .bind(cal.start_ms(period.start) - 86_400_000)
        .execute(store.raw_pool())
        .await?;
    let loaded = fill(&store, &cal, &period, args).await?;
    if url.starts_with("sqlite:") {
        // Fold the load's write-ahead log into the database, as SQLite does by itself once the
        // writes pause: reports then read the database, not a log of a million fresh rows.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.raw_pool())
            .await?;
    }

    let (from_ms, to_ms) = (cal.start_ms(period.start), cal.start_ms(period.end));
    // Baselines: the database counting the month's rows, and reading them as reports do.
    let t = Instant::now();
    let counted: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM check_ins WHERE device_time_ms >= $1 AND device_time_ms < $2",
    )
    .bind(from_ms)
    .bind(to_ms)
    .fetch_one(store.raw_pool())
    .await?;
    let count_s = secs(t);
    // Each timing three times, alternating, and the median reported (the machine is shared).
    let now = patrolsync_server::now_ms();
    let (mut reads, mut compliances, mut evaluations) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rows, mut rendered) = (0, 0);
    let mut compliance = None;
    let mut evaluation = None;
    for _ in 0..3 {
        let t = Instant::now();
        rows = store.report_visits(None, from_ms, to_ms, now).await?.len();
        reads.push(secs(t));
        let t = Instant::now();
        let c = report::compliance(&store, &cal, &rules, &period, None, now).await?;
        rendered = c.text().len() + serde_json::to_vec(&c)?.len();
        compliances.push(secs(t));
        compliance = Some(c);
        let t = Instant::now();
        evaluation =
            Some(report::evaluation(&store, &cal, &rules, &period, None, false, now).await?);
        evaluations.push(secs(t));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (read_s, compliance_s, evaluation_s) = (
        median(&mut reads),
        median(&mut compliances),
        median(&mut evaluations),
    );
    let (Some(compliance), Some(evaluation)) = (compliance, evaluation) else {
        anyhow::bail!("no rounds ran");
    };
    let root = compliance.rows.iter().filter(|r| r.depth == 0).fold(
        report::Counts::default(),
        |mut acc, r| {
            acc.due += r.counts.due;
            acc.inspected += r.counts.inspected;
            acc.could_not_inspect += r.counts.could_not_inspect;
            acc.flagged += r.counts.flagged;
            acc.missed += r.counts.missed;
            acc.open += r.counts.open;
            acc
        },
    );
    anyhow::ensure!(
        root.due == root.inspected + root.could_not_inspect + root.flagged + root.missed,
        "compliance does not add up: {root:?}"
    );

    let first_street = compliance
        .rows
        .iter()
        .find(|r| r.depth == 0)
        .map(|r| r.cell.clone());
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let ledger = report::ledger(
        &store,
        &cal,
        &rules,
        report::LedgerQuery {
            ledger: report::Ledger::Inspections,
            period: &period,
            cell: first_street.as_deref(),
            unit: None,
            as_of_ms: now,
            lang: patrolsync_i18n::Lang::ZhCn,
        },
    )
    .await?;
    ledger.write_xlsx(&dir.path().join("inspections.xlsx"))?;
    let ledger_s = secs(t);

    Ok(json!({
        "size": args.size,
        "period": args.period,
        "grid": { "cells": cells, "checkpoints": checkpoints, "seed_s": seed_s },
        "load": loaded,
        "month_check_ins": counted,
        "baseline": {
            "count_s": count_s,
            "read_rows_s": read_s,
            "read_rows_s_each": reads,
            "rows_read": rows,
        },
        "compliance": {
            "seconds": compliance_s,
            "seconds_each": compliances,
            "cells": compliance.rows.len(),
            "rendered_bytes": rendered,
            "slots_due": root.due,
            "inspected": root.inspected,
            "could_not_inspect": root.could_not_inspect,
            "flagged": root.flagged,
            "missed": root.missed,
            "rate": (root.due > 0).then(|| root.inspected as f64 / root.due as f64),
            "ratio_to_reading_rows": compliance_s / read_s.max(1e-9),
        },
        "evaluation": {
            "seconds": evaluation_s,
            "seconds_each": evaluations,
            "cells": evaluation.rows.len(),
            "ratio_to_reading_rows": evaluation_s / read_s.max(1e-9),
        },
        "ledger": {
            "street": first_street,
            "rows": ledger.rows.len(),
            "xlsx_seconds": ledger_s,
        },
    }))
}

/// A month of check-ins: each checkpoint-day with probability `coverage`, by the patroller of
/// its street on a round in checkpoint order, 08:00–18:00 local; 3% locked, 2% vacant, 0.5% mocked fixes, 1% out of radius.
/// Pushed through the store's group-commit ingest in batches of 5,000.
async fn fill(
    store: &SqlStore,
    cal: &Calendar,
    period: &Period,
    args: &ReportsArgs,
) -> anyhow::Result<Value> {
    let now = patrolsync_server::now_ms();
    let streets: Vec<String> = store
        .report_cells(None, now)
        .await?
        .into_iter()
        .filter(|c| c.level == 1)
        .map(|c| c.code)
        .collect();
    let mut sessions = std::collections::HashMap::new();
    for s in &streets {
        let d = patrolsync_server::testkit::enroll_device(
            store,
            &format!("patrol-{s}"),
            &format!("{s} phone"),
            Role::Patroller,
            &[s.as_str()],
            now,
        )
        .await?;
        sessions.insert(s.clone(), (d, 0u64));
    }
    let codes: Vec<String> = store
        .report_checkpoints(None, now)
        .await?
        .into_iter()
        .map(|c| c.code)
        .collect();
    let refs = store.checkpoints(&codes).await?;
    let places: std::collections::HashMap<String, Option<(f64, f64, f64)>> = store
        .report_checkpoints(None, now)
        .await?
        .into_iter()
        .map(|c| (c.code, c.place))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let t = Instant::now();
    let mut total = 0usize;
    let mut day = period.start;
    while day < period.end {
        let day_ms = cal.start_ms(day);
        let mut by_street: std::collections::HashMap<String, Vec<(i64, &CheckpointRef)>> =
            std::collections::HashMap::new();
        for cp in &refs {
            if rng.gen_bool(args.coverage.clamp(0.0, 1.0)) {
                let street = cp.code.split('-').next().unwrap_or_default().to_owned();
                by_street.entry(street).or_default().push((0, cp));
            }
        }
        for (street, mut visits) in by_street {
            // A round in checkpoint order (neighbours are near), spread over 08:00–18:00.
            let n = visits.len().max(1) as i64;
            for (i, v) in visits.iter_mut().enumerate() {
                v.0 = day_ms + 8 * 3_600_000 + i as i64 * 10 * 3_600_000 / n;
            }
            let Some((session, seq)) = sessions.get_mut(&street) else {
                continue;
            };
            for chunk in visits.chunks(5_000) {
                let ops = chunk
                    .iter()
                    .map(|(at, cp)| {
                        *seq += 1;
                        let roll: f64 = rng.r#gen();
                        let outcome = if roll < 0.03 {
                            CheckInOutcome::Locked
                        } else if roll < 0.05 {
                            CheckInOutcome::Vacant
                        } else {
                            CheckInOutcome::Inspected
                        };
                        let (lat, lon, _) = places[&cp.code].unwrap_or((45.7, 126.6, 50.0));
                        let off = if rng.gen_bool(0.01) { 0.01 } else { 0.0 };
                        PreparedOp {
                            device_seq: *seq,
                            op_id: OpId(uuid::Uuid::now_v7()),
                            hlc: Hlc {
                                wall_ms: *at as u64,
                                logical: 0,
                            },
                            action: OpAction::InsertCheckIn(Box::new(CheckInRow {
                                check_in: CheckIn {
                                    id: CheckInId(uuid::Uuid::now_v7()),
                                    checkpoint: cp.code.clone(),
                                    kind: CheckInKind::Inspection,
                                    method: CheckInMethod::Nfc,
                                    tag_uid: String::new(),
                                    device_time_ms: *at,
                                    monotonic_ms: *seq,
                                    fix: Some(GeoFix {
                                        latitude: lat + off,
                                        longitude: lon,
                                        accuracy_m: 8.0,
                                        fix_time_ms: *at,
                                        mock: rng.gen_bool(0.005),
                                        datum: patrolsync_proto::geo::Datum::Wgs84,
                                    }),
                                    outcome,
                                    template_id: "daily-fire".into(),
                                    template_version: 1,
                                    answers: vec![],
                                    photos: vec![],
                                    note: String::new(),
                                    household: String::new(),
                                },
                                checkpoint_id: cp.id,
                                cell_id: cp.cell_id,
                                household_id: None,
                            })),
                        }
                    })
                    .collect::<Vec<_>>();
                total += ops.len();
                for r in store
                    .ingest(
                        &[IngestBatch {
                            device: session.id,
                            user_id: session.user_id,
                            ops,
                        }],
                        now,
                    )
                    .await?
                {
                    r?;
                }
            }
        }
        eprintln!(
            "  {day}: {total} check-ins so far ({:.0}/s)",
            total as f64 / secs(t)
        );
        day = day.succ_opt().unwrap_or(period.end);
    }
    let load_s = secs(t);
    Ok(json!({
        "check_ins": total,
        "seconds": load_s,
        "check_ins_per_s": total as f64 / load_s.max(1e-9),
    }))
}

/// The human summary.
pub fn summary(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let mut s = format!(
        "patrolsync-bench reports: {} grid, {} ({}, {}, commit {})\n",
        r["size"].as_str().unwrap_or(""),
        r["period"].as_str().unwrap_or(""),
        r["backend"].as_str().unwrap_or(""),
        r["profile"].as_str().unwrap_or(""),
        r["commit"].as_str().unwrap_or("")
    );
    s += &format!(
        "  grid         {} cells, {} checkpoints; seed-demo {:.1} s\n",
        r["grid"]["cells"],
        r["grid"]["checkpoints"],
        f(&r["grid"]["seed_s"])
    );
    s += &format!(
        "  load         {} check-ins in {:.1} s ({:.0}/s through the group-commit ingest)\n",
        r["load"]["check_ins"],
        f(&r["load"]["seconds"]),
        f(&r["load"]["check_ins_per_s"])
    );
    s += &format!(
        "  baselines    COUNT(*) of the month {:.2} s; reading its {} rows {:.2} s\n",
        f(&r["baseline"]["count_s"]),
        r["baseline"]["rows_read"],
        f(&r["baseline"]["read_rows_s"])
    );
    s += &format!(
        "  compliance   {:.2} s for {} cells ({:.1}× reading the rows); {} slots due, rate {:.1}%\n",
        f(&r["compliance"]["seconds"]),
        r["compliance"]["cells"],
        f(&r["compliance"]["ratio_to_reading_rows"]),
        r["compliance"]["slots_due"],
        f(&r["compliance"]["rate"]) * 100.0
    );
    s += &format!(
        "  evaluation   {:.2} s ({:.1}× reading the rows)\n",
        f(&r["evaluation"]["seconds"]),
        f(&r["evaluation"]["ratio_to_reading_rows"])
    );
    s += &format!(
        "  ledger       {} rows of street {} to XLSX in {:.2} s\n",
        r["ledger"]["rows"],
        r["ledger"]["street"].as_str().unwrap_or(""),
        f(&r["ledger"]["xlsx_seconds"])
    );
    s
}
