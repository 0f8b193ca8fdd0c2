//! Cadence compliance per checkpoint, rolled up per cell and user.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use patrolsync_proto::anomaly::AnomalyRules;
use serde::Serialize;

use super::*;
use crate::store::ReportStore;
use crate::store::StoreError;
use crate::store::reports::OUTCOMES;

/// Slot counts of one cell's subtree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Slots that were due.
    pub due: u64,
    /// Answered by an inspection with no anomaly flag.
    pub inspected: u64,
    /// Answered by a visit that could not inspect (no flag), by the first such reason.
    pub could_not_inspect: u64,
    /// `could_not_inspect` by outcome (locked, not_found, moved, closed, renovation, vacant).
    pub could_not_inspect_by_outcome: BTreeMap<String, u64>,
    /// Only flagged check-ins: counted apart, not as inspected.
    pub flagged: u64,
    /// Ended with no check-in.
    pub missed: u64,
    /// Still running with no check-in yet (not counted as due).
    pub open: u64,
}

impl Counts {
    pub(super) fn add(&mut self, o: &Counts) {
        self.due += o.due;
        self.inspected += o.inspected;
        self.could_not_inspect += o.could_not_inspect;
        for (k, v) in &o.could_not_inspect_by_outcome {
            *self
                .could_not_inspect_by_outcome
                .entry(k.clone())
                .or_default() += v;
        }
        self.flagged += o.flagged;
        self.missed += o.missed;
        self.open += o.open;
    }

    /// inspected / due, when anything was due.
    pub fn rate(&self) -> Option<f64> {
        (self.due > 0).then(|| self.inspected as f64 / self.due as f64)
    }
}

/// One row of the compliance report: a cell and everything under it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComplianceRow {
    /// Cell code.
    pub cell: String,
    /// Cell name.
    pub name: String,
    /// Grid level.
    pub level: u8,
    /// Depth below the report's root (0 for the root).
    pub depth: usize,
    /// Checkpoints in the subtree that were due at least once.
    pub checkpoints: u64,
    /// Slot counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// inspected / due.
    pub rate: Option<f64>,
}

/// The compliance report.
#[derive(Clone, Debug, Serialize)]
pub struct Compliance {
    /// The period.
    pub period: Period,
    /// The time zone periods and slots are in.
    pub time_zone: String,
    /// The root cell, if one was asked for.
    pub cell: Option<String>,
    /// The moment it stands at: what the server had received by then, slots as they stood.
    pub as_of: Moment,
    /// Cells in path order, each with its subtree's counts.
    pub rows: Vec<ComplianceRow>,
}

/// Computes compliance for `period` over the subtree of `cell` as it stood at `as_of_ms`.
pub async fn compliance(
    store: &dyn ReportStore,
    cal: &Calendar,
    rules: &AnomalyRules,
    period: &Period,
    cell: Option<&str>,
    as_of_ms: i64,
) -> Result<Compliance, StoreError> {
    let loaded = Loaded::read(store, cal, rules, period, cell, as_of_ms).await?;
    Ok(loaded.compliance(cal, period, cell, as_of_ms))
}

/// The could-not-inspect reasons, in the order reports list them.
pub(super) const REASONS: &[&str] = OUTCOMES.split_at(1).1;

impl Compliance {
    /// As a table for CSV and XLSX.
    pub fn table(&self) -> Table {
        let mut columns = vec![
            "cell",
            "name",
            "level",
            "checkpoints",
            "due",
            "inspected",
            "could_not_inspect",
            "flagged",
            "missed",
            "open",
            "rate",
        ];
        columns.extend_from_slice(REASONS);
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let c = &r.counts;
                let mut row = vec![
                    Value::Text(r.cell.clone()),
                    Value::Text(r.name.clone()),
                    Value::Int(i64::from(r.level)),
                    Value::Int(r.checkpoints as i64),
                    Value::Int(c.due as i64),
                    Value::Int(c.inspected as i64),
                    Value::Int(c.could_not_inspect as i64),
                    Value::Int(c.flagged as i64),
                    Value::Int(c.missed as i64),
                    Value::Int(c.open as i64),
                    r.rate.map_or(Value::Empty, Value::Num),
                ];
                row.extend(REASONS.iter().map(|k| {
                    Value::Int(c.could_not_inspect_by_outcome.get(*k).copied().unwrap_or(0) as i64)
                }));
                row
            })
            .collect();
        Table {
            title: "compliance".into(),
            heading: vec![],
            about_title: "about".into(),
            columns: columns.into_iter().map(String::from).collect(),
            rows,
            about: vec![
                ("report".into(), "cadence compliance".into()),
                ("period".into(), self.period.label.clone()),
                (
                    "cell".into(),
                    self.cell.clone().unwrap_or_else(|| "(all)".into()),
                ),
                ("time zone".into(), self.time_zone.clone()),
                ("as of".into(), self.as_of.local.clone()),
                (
                    "rate".into(),
                    "inspected / due; flagged check-ins are counted apart, not as inspected".into(),
                ),
            ],
        }
    }

    /// As a table in `lang` (see [`Table::localized`]), its levels named by `level_name`.
    pub fn table_in(
        &self,
        lang: patrolsync_i18n::Lang,
        level_name: &dyn Fn(u32) -> String,
    ) -> Table {
        let mut table = self.table().localized(lang, level_name);
        if lang != patrolsync_i18n::Lang::En {
            super::about_in(&mut table, lang, "report-compliance");
        }
        table
    }

    /// As aligned text in `lang`: in English [`Compliance::text`]; otherwise the same columns
    /// with their names and the levels' in words.
    pub fn text_in(
        &self,
        lang: patrolsync_i18n::Lang,
        level_name: &dyn Fn(u32) -> String,
    ) -> String {
        if lang == patrolsync_i18n::Lang::En {
            return self.text();
        }
        let arg = |v: &str| patrolsync_i18n::Value::from(v.to_owned());
        let title = lang.format(
            "report-compliance-title",
            &[
                ("period", arg(&self.period.label)),
                ("zone", arg(&self.time_zone)),
                ("as_of", arg(&self.as_of.local)),
            ],
        );
        let columns = [
            "cell",
            "level",
            "due",
            "inspected",
            "could_not_inspect",
            "flagged",
            "missed",
            "open",
            "checkpoints",
            "rate",
        ];
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let c = &r.counts;
                let int = |v: u64| Value::Int(v as i64);
                vec![
                    Value::Text(format!("{}{}", "  ".repeat(r.depth), r.cell)),
                    Value::Int(i64::from(r.level)),
                    int(c.due),
                    int(c.inspected),
                    int(c.could_not_inspect),
                    int(c.flagged),
                    int(c.missed),
                    int(c.open),
                    Value::Int(r.checkpoints as i64),
                    r.rate.map_or(Value::Empty, Value::Num),
                ]
            })
            .collect();
        let table = Table {
            title: "compliance".into(),
            heading: vec![],
            about_title: String::new(),
            columns: columns.into_iter().map(String::from).collect(),
            rows,
            about: vec![],
        }
        .localized(lang, level_name);
        format!("{title}\n{}", table.text())
    }

    /// As an aligned text table, the subtree indented.
    pub fn text(&self) -> String {
        let mut out = format!(
            "compliance {} ({}), as of {}\n",
            self.period.label, self.time_zone, self.as_of.local
        );
        let _ = writeln!(
            out,
            "{:<32} {:>5} {:>7} {:>9} {:>6} {:>8} {:>7} {:>6} {:>5} {:>6}",
            "cell", "level", "due", "inspected", "cni", "flagged", "missed", "open", "cps", "rate"
        );
        for r in &self.rows {
            let c = &r.counts;
            let cell = format!("{}{}", "  ".repeat(r.depth), r.cell);
            let rate = r
                .rate
                .map_or_else(|| "-".to_owned(), |x| format!("{:.1}%", x * 100.0));
            let _ = writeln!(
                out,
                "{cell:<32} {:>5} {:>7} {:>9} {:>6} {:>8} {:>7} {:>6} {:>5} {rate:>6}",
                r.level,
                c.due,
                c.inspected,
                c.could_not_inspect,
                c.flagged,
                c.missed,
                c.open,
                r.checkpoints
            );
        }
        out
    }
}
