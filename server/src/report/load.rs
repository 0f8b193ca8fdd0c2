//! What compliance and evaluation read: the subtree, its slots and check-ins, flagged.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use patrolsync_proto::anomaly::{self, Anomaly, AnomalyRules};

use super::*;
use crate::calendar::Days;
use crate::store::ReportStore;
use crate::store::StoreError;
use crate::store::reports::Visit;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Answer {
    Flagged,
    CouldNotInspect,
    Inspected,
}

/// What compliance and the evaluation read: the subtree's cells and checkpoints, and every
/// check-in that can answer a slot overlapping the period, with its flags.
pub(super) struct Loaded {
    pub(super) cells: Vec<crate::store::reports::ReportCell>,
    pub(super) checkpoints: Vec<crate::store::reports::ReportCheckpoint>,
    pub(super) visits: Vec<Visit>,
    pub(super) flags: Vec<Vec<Anomaly>>,
    /// Where the slots' reach begins (earlier visits only serve the speed rule).
    from_ms: i64,
    /// The local midnights of the slots' reach.
    days: Days,
}

impl Loaded {
    pub(super) async fn read(
        store: &dyn ReportStore,
        cal: &Calendar,
        rules: &AnomalyRules,
        period: &Period,
        cell: Option<&str>,
        as_of_ms: i64,
    ) -> Result<Loaded, StoreError> {
        let cells = store.report_cells(cell, as_of_ms).await?;
        let checkpoints = store.report_checkpoints(cell, as_of_ms).await?;
        // Read every check-in that can answer a slot overlapping the period: weeks and quarters
        // reach past its ends.
        let cadences = [
            Cadence::Daily,
            Cadence::Weekly,
            Cadence::Monthly,
            Cadence::Quarterly,
        ];
        let last = period.end - Duration::days(1);
        let from = cadences
            .iter()
            .map(|c| cal.slot(*c, period.start).0)
            .min()
            .unwrap_or(period.start);
        let to = cadences
            .iter()
            .map(|c| cal.slot(*c, last).1)
            .max()
            .unwrap_or(period.end);
        let (from_ms, to_ms) = (cal.start_ms(from), cal.start_ms(to));
        let rows = store
            .report_visits(cell, from_ms - LOOKBACK_MS, to_ms, as_of_ms)
            .await?;
        let places: HashMap<i64, Option<anomaly::Place>> =
            checkpoints.iter().map(|c| (c.id, c.place)).collect();
        let flags = flag_all(rules, &rows, |v| {
            places.get(&v.checkpoint_id).copied().flatten()
        });
        Ok(Loaded {
            cells,
            checkpoints,
            visits: rows,
            flags,
            from_ms,
            days: Days::new(cal, from, to),
        })
    }

    pub(super) fn compliance(
        &self,
        cal: &Calendar,
        period: &Period,
        cell: Option<&str>,
        as_of_ms: i64,
    ) -> Compliance {
        let (cells, checkpoints, rows, flags, from_ms) = (
            &*self.cells,
            &*self.checkpoints,
            &*self.visits,
            &*self.flags,
            self.from_ms,
        );

        // Best answer per (checkpoint, slot start); among equals, the earliest (its outcome is the
        // reason a could-not-inspect slot is counted under).
        for c in checkpoints {
            if let Some(Err(e)) = c.cadence.as_deref().map(str::parse::<Cadence>) {
                tracing::warn!(checkpoint = %c.code, "{e}; using its level's cadence");
            }
        }
        let cadence_of: HashMap<i64, Cadence> = checkpoints
            .iter()
            .map(|c| (c.id, cal.cadence(c.level, c.cadence.as_deref())))
            .collect();
        let mut answers: HashMap<(i64, NaiveDate), (Answer, i64, &str)> = HashMap::new();
        for (c, f) in rows.iter().zip(flags) {
            if c.device_time_ms < from_ms || !c.in_scope {
                continue;
            }
            let Some(&cadence) = cadence_of.get(&c.checkpoint_id) else {
                continue;
            };
            let answer = if !f.is_empty() {
                Answer::Flagged
            } else if c.outcome == "inspected" {
                Answer::Inspected
            } else {
                Answer::CouldNotInspect
            };
            let slot = cal.slot(cadence, self.days.date(cal, c.device_time_ms)).0;
            let this = (answer, c.device_time_ms, c.outcome);
            let e = answers.entry((c.checkpoint_id, slot)).or_insert(this);
            if answer > e.0 || (answer == e.0 && c.device_time_ms < e.1) {
                *e = this;
            }
        }

        let mut by_cell: HashMap<&str, (Counts, u64)> = HashMap::new();
        for cp in checkpoints {
            let cadence = cadence_of[&cp.id];
            let mut counts = Counts::default();
            let mut day = cal.slot(cadence, period.start).0;
            while day < period.end {
                let (start, end) = cal.slot(cadence, day);
                day = end;
                let (start_ms, end_ms) =
                    (self.days.start_ms(cal, start), self.days.start_ms(cal, end));
                // Not begun, the checkpoint was retired before the slot began, or it was created
                // after the slot ended.
                if start_ms > as_of_ms
                    || cp.retired_at_ms.is_some_and(|r| r <= start_ms)
                    || cp.created_at_ms.is_some_and(|c| c >= end_ms)
                {
                    continue;
                }
                match answers.get(&(cp.id, start)) {
                    Some((Answer::Inspected, ..)) => counts.inspected += 1,
                    Some((Answer::CouldNotInspect, _, outcome)) => {
                        counts.could_not_inspect += 1;
                        *counts
                            .could_not_inspect_by_outcome
                            .entry((*outcome).to_owned())
                            .or_default() += 1;
                    }
                    Some((Answer::Flagged, ..)) => counts.flagged += 1,
                    // Still running, or retired before it ended: nothing was owed yet.
                    None if end_ms > as_of_ms || cp.retired_at_ms.is_some_and(|r| r < end_ms) => {
                        if cp.retired_at_ms.is_none_or(|r| r >= end_ms) {
                            counts.open += 1;
                        }
                        continue;
                    }
                    None => counts.missed += 1,
                }
                counts.due += 1;
            }
            let was_due = u64::from(counts.due + counts.open > 0);
            // Into its cell and every ancestor within the report.
            for code in cp.path.codes() {
                let e = by_cell.entry(code).or_default();
                e.0.add(&counts);
                e.1 += was_due;
            }
        }

        let root_depth = cells.first().map(|c| c.path.codes().count()).unwrap_or(0);
        let period_start_ms = cal.start_ms(period.start);
        let rows = cells
            .iter()
            .filter_map(|c| {
                let (counts, checkpoints) = by_cell.remove(c.code.as_str()).unwrap_or_default();
                // Retired before the period and nothing due in it: history, not this report.
                if c.retired_at_ms.is_some_and(|r| r <= period_start_ms) && checkpoints == 0 {
                    return None;
                }
                Some(ComplianceRow {
                    cell: c.code.clone(),
                    name: c.name.clone(),
                    level: c.level,
                    depth: c.path.codes().count().saturating_sub(root_depth),
                    checkpoints,
                    rate: counts.rate(),
                    counts,
                })
            })
            .collect();
        Compliance {
            period: period.clone(),
            time_zone: cal.zone().to_owned(),
            cell: cell.map(str::to_owned),
            as_of: Moment::new(cal, as_of_ms),
            rows,
        }
    }
}
