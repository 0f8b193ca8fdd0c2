//! Reports and ledgers: compliance, evaluation, exports, each `--as-of` a moment.

use std::path::PathBuf;
use std::sync::Arc;

use super::*;
use crate::config::*;
use crate::store::Store;

pub(super) async fn run(
    config: &Config,
    sql: &Arc<dyn AdminStore>,
    _store: &Arc<dyn Store>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::Report {
            report:
                ReportCommand::Compliance {
                    period,
                    cell,
                    as_of,
                    format,
                    output,
                },
        } => {
            let lang = super::lang();
            let (cal, rules) = calendar(config)?;
            let as_of = moment(&cal, as_of.as_deref())?;
            let report = crate::report::compliance(
                sql.as_ref(),
                &cal,
                &rules,
                &period,
                cell.as_deref(),
                as_of,
            )
            .await?;
            let level = |l: u32| config.reports.level_name(lang, l);
            emit_report(
                &report.text_in(lang, &level),
                &report,
                &report.table_in(lang, &level),
                &format,
                output,
            )?;
        }
        AdminCommand::Report {
            report:
                ReportCommand::Visits {
                    period,
                    cell,
                    as_of,
                    format,
                    output,
                },
        } => {
            let lang = super::lang();
            let (cal, _) = calendar(config)?;
            let as_of = moment(&cal, as_of.as_deref())?;
            let cadence = |g| {
                config
                    .reports
                    .visit_cadence(g)
                    .unwrap_or(crate::calendar::Cadence::Monthly)
            };
            let report = crate::report::visit_compliance(
                sql.as_ref(),
                &cal,
                &cadence,
                &period,
                cell.as_deref(),
                as_of,
            )
            .await?;
            let level = |l: u32| config.reports.level_name(lang, l);
            let table = report.table_in(lang, &level);
            let title = say!(
                "report-visits-title",
                period = report.period.label.as_str(),
                zone = report.time_zone.as_str(),
                as_of = report.as_of.local.as_str()
            );
            emit_report(
                &format!("{title}\n{}", table.text()),
                &report,
                &table,
                &format,
                output,
            )?;
        }
        AdminCommand::Report {
            report:
                ReportCommand::Tasks {
                    period,
                    cell,
                    as_of,
                    format,
                    output,
                },
        } => {
            let lang = super::lang();
            let (cal, _) = calendar(config)?;
            let as_of = moment(&cal, as_of.as_deref())?;
            let report =
                crate::report::task_report(sql.as_ref(), &cal, &period, cell.as_deref(), as_of)
                    .await?;
            let table = report.table_in(lang);
            let title = say!(
                "report-tasks-title",
                period = report.period.label.as_str(),
                zone = report.time_zone.as_str(),
                as_of = report.as_of.local.as_str()
            );
            emit_report(
                &format!("{title}\n{}", table.text()),
                &report,
                &table,
                &format,
                output,
            )?;
        }
        AdminCommand::Report {
            report:
                ReportCommand::Evaluation {
                    period,
                    cell,
                    as_of,
                    by,
                    format,
                    output,
                },
        } => {
            let lang = super::lang();
            let (cal, rules) = calendar(config)?;
            let as_of = moment(&cal, as_of.as_deref())?;
            let report = crate::report::evaluation(
                sql.as_ref(),
                &cal,
                &rules,
                &period,
                cell.as_deref(),
                by == "person",
                as_of,
            )
            .await?;
            let table = report.table_in(lang);
            let mut text = format!("{}\n{}", report.title_in(lang), table.text());
            // Routing outcomes (隐患直报) after the table, one line per party.
            if !report.routing.is_empty() {
                text.push_str(&format!("\n{}\n", say!("report-routing-title")));
                for o in &report.routing {
                    let hours = |v: Option<f64>| v.map_or("-".to_owned(), |h| format!("{h:.1}"));
                    text.push_str(&format!(
                        "  {}\n",
                        say!(
                            "report-routing-row",
                            party = match o.party.parse::<patrolsync_proto::hazard::Agency>() {
                                Ok(a) => super::word("agency", a.as_str()),
                                Err(_) => o.party.clone(),
                            },
                            routed = o.routed,
                            accepted = o.accepted,
                            fixed = o.fixed,
                            overdue = o.overdue,
                            accept = hours(o.accept_p50_hours),
                            fix = hours(o.fix_p50_hours)
                        )
                    ));
                }
            }
            emit_report(&text, &report, &table, &format, output)?;
        }
        AdminCommand::Export {
            ledger,
            period,
            cell,
            unit,
            as_of,
            format,
            output,
        } => {
            let lang = super::lang();
            let (cal, rules) = calendar(config)?;
            let as_of = moment(&cal, as_of.as_deref())?;
            let unit = match unit {
                Some(code) => Some(
                    sql.unit_file(&code, 0)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("{}", say!("store-no-unit", unit = code)))?
                        .unit,
                ),
                None => None,
            };
            let table = crate::report::ledger(
                sql.as_ref(),
                &cal,
                &rules,
                crate::report::LedgerQuery {
                    ledger,
                    period: &period,
                    cell: cell.as_deref(),
                    unit: unit.as_ref(),
                    as_of_ms: as_of,
                    lang,
                },
            )
            .await?;
            crate::report::write(&table, &format, output.as_deref())?;
            let how_to_verify = lang.text("about-how_to_verify");
            let about: Vec<String> = table
                .about
                .iter()
                .filter(|(k, _)| *k != how_to_verify)
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            eprintln!(
                "{}",
                say!(
                    "cli-exported",
                    rows = table.rows.len(),
                    written = output
                        .as_ref()
                        .map(|p| say!("cli-exported-to", file = p.display()))
                        .unwrap_or_default(),
                    about = about.join(", ")
                )
            );
        }
        other => unreachable!("run_admin sends {other:?} elsewhere"),
    }
    Ok(())
}

/// The report calendar and anomaly rules of `config`.
pub(super) fn calendar(
    config: &Config,
) -> anyhow::Result<(
    crate::report::Calendar,
    patrolsync_proto::anomaly::AnomalyRules,
)> {
    let cal = config.reports.calendar()?;
    Ok((cal, config.reports.anomaly_rules()))
}

/// The moment a report stands at: `--as-of` parsed in the report's zone, else now. A moment
/// still to come is refused: nothing is known of it yet.
pub(super) fn moment(cal: &crate::report::Calendar, as_of: Option<&str>) -> anyhow::Result<i64> {
    let now = crate::clock::now_ms();
    let Some(s) = as_of else {
        return Ok(now);
    };
    let ms = cal.moment(s)?;
    anyhow::ensure!(
        ms <= now,
        "{}",
        say!(
            "cli-as-of-future",
            value = s,
            at = cal.local(ms),
            now = cal.local(now)
        )
    );
    Ok(ms)
}

/// Writes a report as `format`: `table` (the text), `json`, or `csv`/`xlsx` of `table`; to
/// `output` or stdout.
pub(super) fn emit_report(
    text: &str,
    json: &impl serde::Serialize,
    table: &crate::report::Table,
    format: &str,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    let text = match format {
        "table" => Some(text.to_owned()),
        "json" => Some(serde_json::to_string_pretty(json)? + "\n"),
        _ => None,
    };
    match (text, output) {
        (Some(t), None) => print!("{t}"),
        (Some(t), Some(p)) => std::fs::write(&p, t).map_err(|e| {
            patrolsync_i18n::text!("file-unwritable", file = p.display(), error = e)
        })?,
        (None, out) => crate::report::write(table, format, out.as_deref())?,
    }
    Ok(())
}
