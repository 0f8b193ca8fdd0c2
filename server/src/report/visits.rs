//! Visit compliance (六必访): each must-visit household owes one visit per slot of its group's
//! cadence (monthly unless `reports.visit_cadence` says otherwise), counted per cell and rolled
//! up the tree as cadence compliance is. A slot is answered by a visit check-in naming the
//! household with device time in it: `visited` when its outcome is `inspected`, else
//! `not_visited` (nobody home, moved, …) by the first such visit; none by the time the slot
//! ended is `missed`; a slot still running with none is `open` and not yet due.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use patrolsync_proto::household::HouseholdGroup;
use serde::Serialize;

use super::*;
use crate::store::StoreError;
use crate::store::registry::{HouseholdEntry, HouseholdVisit};

/// Slot counts of households.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VisitCounts {
    /// Households that owed a visit at least once in the period.
    pub households: u64,
    /// Slots that were due.
    pub due: u64,
    /// Answered by a visit that found the household.
    pub visited: u64,
    /// Answered only by visits that could not (nobody home, moved, …).
    pub not_visited: u64,
    /// Ended with no visit.
    pub missed: u64,
    /// Still running with no visit yet (not counted as due).
    pub open: u64,
}

impl VisitCounts {
    fn add(&mut self, o: &VisitCounts) {
        self.households += o.households;
        self.due += o.due;
        self.visited += o.visited;
        self.not_visited += o.not_visited;
        self.missed += o.missed;
        self.open += o.open;
    }

    /// visited / due, when anything was due.
    pub fn rate(&self) -> Option<f64> {
        (self.due > 0).then(|| self.visited as f64 / self.due as f64)
    }
}

/// One row: a cell and every household under it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VisitRow {
    /// Cell code.
    pub cell: String,
    /// Cell name.
    pub name: String,
    /// Grid level.
    pub level: u8,
    /// Depth below the report's root.
    pub depth: usize,
    /// Slot counts.
    #[serde(flatten)]
    pub counts: VisitCounts,
    /// visited / due.
    pub rate: Option<f64>,
}

/// The visit compliance report.
#[derive(Clone, Debug, Serialize)]
pub struct VisitCompliance {
    /// The period.
    pub period: Period,
    /// The time zone periods and slots are in.
    pub time_zone: String,
    /// The root cell, if one was asked for.
    pub cell: Option<String>,
    /// The moment it stands at.
    pub as_of: Moment,
    /// Cells with households in their subtree, in path order.
    pub rows: Vec<VisitRow>,
    /// The whole subtree's counts by group.
    pub by_group: BTreeMap<String, VisitCounts>,
}

/// How each group's households are visited: `cadence_of(group)`.
pub type VisitCadence<'a> = &'a (dyn Fn(HouseholdGroup) -> Cadence + Sync);

/// Computes visit compliance for `period` over `cell`'s subtree as it stood at `as_of_ms`.
pub async fn visit_compliance(
    store: &dyn crate::store::AdminStore,
    cal: &Calendar,
    cadence_of: VisitCadence<'_>,
    period: &Period,
    cell: Option<&str>,
    as_of_ms: i64,
) -> Result<VisitCompliance, StoreError> {
    let cells = store.report_cells(cell, as_of_ms).await?;
    let households = store.households(cell, as_of_ms).await?;
    // Every slot overlapping the period: weeks and quarters reach past its ends.
    let last = period.end.pred_opt().unwrap_or(period.end);
    let all = [
        Cadence::Daily,
        Cadence::Weekly,
        Cadence::Monthly,
        Cadence::Quarterly,
    ];
    let from = all.iter().map(|c| cal.slot(*c, period.start).0).min();
    let to = all.iter().map(|c| cal.slot(*c, last).1).max();
    let (from, to) = (from.unwrap_or(period.start), to.unwrap_or(period.end));
    let visits = store
        .household_visits(cell, cal.start_ms(from), cal.start_ms(to), as_of_ms)
        .await?;
    Ok(count(
        cal,
        cadence_of,
        period,
        cell,
        as_of_ms,
        &cells,
        &households,
        &visits,
    ))
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    NotVisited,
    Visited,
}

#[allow(clippy::too_many_arguments)]
fn count(
    cal: &Calendar,
    cadence_of: VisitCadence<'_>,
    period: &Period,
    cell: Option<&str>,
    as_of_ms: i64,
    cells: &[crate::store::reports::ReportCell],
    households: &[HouseholdEntry],
    visits: &[HouseholdVisit],
) -> VisitCompliance {
    let group_of = |h: &HouseholdEntry| {
        h.group
            .parse::<HouseholdGroup>()
            .unwrap_or(HouseholdGroup::Assisted)
    };
    let cadence: HashMap<&str, Cadence> = households
        .iter()
        .map(|h| (h.code.as_str(), cadence_of(group_of(h))))
        .collect();
    // The best answer per (household, slot start).
    let mut answers: HashMap<(&str, NaiveDate), Answer> = HashMap::new();
    for v in visits {
        let Some(&c) = cadence.get(v.household.as_str()) else {
            continue;
        };
        let slot = cal.slot(c, cal.date(v.device_time_ms)).0;
        let answer = if v.outcome == "inspected" {
            Answer::Visited
        } else {
            Answer::NotVisited
        };
        let e = answers
            .entry((v.household.as_str(), slot))
            .or_insert(answer);
        *e = (*e).max(answer);
    }
    let mut by_cell: HashMap<&str, VisitCounts> = HashMap::new();
    let mut by_group: BTreeMap<String, VisitCounts> = BTreeMap::new();
    for h in households {
        let c = cadence[h.code.as_str()];
        let mut counts = VisitCounts::default();
        let mut day = cal.slot(c, period.start).0;
        while day < period.end {
            let (start, end) = cal.slot(c, day);
            day = end;
            let (start_ms, end_ms) = (cal.start_ms(start), cal.start_ms(end));
            // Not begun, the household was registered after it ended, or taken off the register
            // before it began.
            if start_ms > as_of_ms
                || h.created_at_ms >= end_ms
                || h.removed_at_ms.is_some_and(|r| r <= start_ms)
            {
                continue;
            }
            match answers.get(&(h.code.as_str(), start)) {
                Some(Answer::Visited) => counts.visited += 1,
                Some(Answer::NotVisited) => counts.not_visited += 1,
                // Taken off the register while it ran: nothing was owed.
                None if h.removed_at_ms.is_some_and(|r| r < end_ms) => continue,
                None if end_ms > as_of_ms => {
                    counts.open += 1;
                    continue;
                }
                None => counts.missed += 1,
            }
            counts.due += 1;
        }
        counts.households = u64::from(counts.due + counts.open > 0);
        by_group
            .entry(group_of(h).as_str().to_owned())
            .or_default()
            .add(&counts);
        // The path's codes: the household's cell and every cell above it.
        for code in h.path.split('/').filter(|c| !c.is_empty()) {
            by_cell.entry(code).or_default().add(&counts);
        }
    }
    let root_depth = cells.first().map(|c| c.path.codes().count()).unwrap_or(0);
    let rows = cells
        .iter()
        .filter_map(|c| {
            let counts = by_cell.remove(c.code.as_str())?;
            Some(VisitRow {
                cell: c.code.clone(),
                name: c.name.clone(),
                level: c.level,
                depth: c.path.codes().count().saturating_sub(root_depth),
                rate: counts.rate(),
                counts,
            })
        })
        .collect();
    VisitCompliance {
        period: period.clone(),
        time_zone: cal.zone().to_owned(),
        cell: cell.map(str::to_owned),
        as_of: Moment::new(cal, as_of_ms),
        rows,
        by_group,
    }
}

impl VisitCompliance {
    /// As a table for CSV and XLSX, in `lang`: one row per cell.
    pub fn table_in(
        &self,
        lang: patrolsync_i18n::Lang,
        level_name: &dyn Fn(u32) -> String,
    ) -> Table {
        let columns = [
            "cell",
            "name",
            "level",
            "households",
            "visits_due",
            "visited",
            "not_visited",
            "visits_missed",
            "visits_open",
            "visit_rate",
        ];
        let int = |v: u64| Value::Int(v as i64);
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let c = &r.counts;
                vec![
                    Value::Text(r.cell.clone()),
                    Value::Text(r.name.clone()),
                    Value::Int(i64::from(r.level)),
                    int(c.households),
                    int(c.due),
                    int(c.visited),
                    int(c.not_visited),
                    int(c.missed),
                    int(c.open),
                    r.rate.map_or(Value::Empty, Value::Num),
                ]
            })
            .collect();
        let mut about = vec![
            ("report".to_owned(), "visit compliance".to_owned()),
            ("period".to_owned(), self.period.label.clone()),
            (
                "cell".to_owned(),
                self.cell.clone().unwrap_or_else(|| "(all)".into()),
            ),
            ("time zone".to_owned(), self.time_zone.clone()),
            ("as of".to_owned(), self.as_of.local.clone()),
        ];
        for (group, c) in &self.by_group {
            about.push((
                patrolsync_i18n::message!(
                    lang,
                    "about-visit-group",
                    group = crate::registry_import::group_text(group, lang)
                ),
                patrolsync_i18n::message!(
                    lang,
                    "about-visit-counts",
                    households = c.households,
                    due = c.due,
                    visited = c.visited,
                    not_visited = c.not_visited,
                    missed = c.missed,
                    open = c.open
                ),
            ));
        }
        about.push(("visit_rate".to_owned(), lang.text("about-visit-rate-text")));
        let mut table = Table {
            title: "visits".into(),
            heading: vec![],
            about_title: "about".into(),
            columns: columns.into_iter().map(String::from).collect(),
            rows,
            about,
        }
        .localized(lang, level_name);
        if lang != patrolsync_i18n::Lang::En {
            super::about_in(&mut table, lang, "report-visits");
        }
        table
    }
}
