//! Task response (派单响应): per street, the tasks made in the period, where they stand, and how
//! long patrollers took — to accept, to arrive, to complete — as the median and the 90th
//! percentile in minutes from the task's making, by the steps' own stamps (a step made offline
//! counts when it was made, not when it was synced). And the help-call ledger (求助响应记录):
//! one row per help call, who was offered it, who took it and when each step came.

use std::collections::BTreeMap;

use patrolsync_proto::CellPath;
use patrolsync_proto::task::{TaskEventKind, TaskKind, TaskState};
use serde::Serialize;

use super::*;
use crate::store::{AdminStore, StoreError, TaskRecord};

/// Minutes from a task's making to its steps, by their stamps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTimes {
    /// To the applied acceptance of the one who has it.
    pub accept_min: Option<f64>,
    /// To the applied arrival.
    pub arrive_min: Option<f64>,
    /// To the applied completion.
    pub complete_min: Option<f64>,
}

/// The minutes from the task's making (its own stamp) to each of its applied steps.
pub fn step_times(state: &TaskState) -> StepTimes {
    let Some((_, made)) = &state.task else {
        return StepTimes::default();
    };
    let at = |kind: TaskEventKind| {
        state
            .history
            .iter()
            .find(|h| {
                h.kind == kind
                    && h.conflict.is_none()
                    && state.assignee.as_deref() == Some(h.user.as_str())
            })
            .map(|h| h.stamp.hlc.wall_ms.saturating_sub(made.hlc.wall_ms) as f64 / 60_000.0)
    };
    StepTimes {
        accept_min: at(TaskEventKind::Accept),
        arrive_min: at(TaskEventKind::Arrive),
        complete_min: at(TaskEventKind::Complete),
    }
}

/// The `p`-th percentile (0–100) of `values` by nearest rank; `None` for none.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// One street's tasks.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TaskRow {
    /// The street's code (`(all)` for the total).
    pub cell: String,
    /// Its name.
    pub name: String,
    /// Tasks made in the period.
    pub made: u64,
    /// Of those, by where they stand now.
    pub by_status: BTreeMap<String, u64>,
    /// Median and 90th percentile minutes to accept.
    pub accept_p50_min: Option<f64>,
    /// 90th percentile minutes to accept.
    pub accept_p90_min: Option<f64>,
    /// Median minutes to arrive.
    pub arrive_p50_min: Option<f64>,
    /// 90th percentile minutes to arrive.
    pub arrive_p90_min: Option<f64>,
    /// Median minutes to complete.
    pub complete_p50_min: Option<f64>,
    /// 90th percentile minutes to complete.
    pub complete_p90_min: Option<f64>,
}

/// The task response report.
#[derive(Clone, Debug, Serialize)]
pub struct TaskReport {
    /// The period.
    pub period: Period,
    /// The time zone.
    pub time_zone: String,
    /// The root cell, if one was asked for.
    pub cell: Option<String>,
    /// The moment it stands at.
    pub as_of: Moment,
    /// Per street, in path order.
    pub rows: Vec<TaskRow>,
    /// Every street together.
    pub total: TaskRow,
}

const STATUSES: [&str; 7] = [
    "open",
    "offered",
    "accepted",
    "arrived",
    "completed",
    "escalated",
    "cancelled",
];

fn row(cell: &str, name: &str, tasks: &[&TaskRecord]) -> TaskRow {
    let times: Vec<StepTimes> = tasks.iter().map(|t| step_times(&t.state)).collect();
    let pick =
        |f: fn(&StepTimes) -> Option<f64>| -> Vec<f64> { times.iter().filter_map(f).collect() };
    let (accept, arrive, complete) = (
        pick(|t| t.accept_min),
        pick(|t| t.arrive_min),
        pick(|t| t.complete_min),
    );
    let mut by_status: BTreeMap<String, u64> =
        STATUSES.iter().map(|s| ((*s).to_owned(), 0)).collect();
    for t in tasks {
        *by_status
            .entry(t.state.status.as_str().to_owned())
            .or_default() += 1;
    }
    TaskRow {
        cell: cell.to_owned(),
        name: name.to_owned(),
        made: tasks.len() as u64,
        by_status,
        accept_p50_min: percentile(&accept, 50.0),
        accept_p90_min: percentile(&accept, 90.0),
        arrive_p50_min: percentile(&arrive, 50.0),
        arrive_p90_min: percentile(&arrive, 90.0),
        complete_p50_min: percentile(&complete, 50.0),
        complete_p90_min: percentile(&complete, 90.0),
    }
}

/// The task response report of `cell`'s subtree (every street for `None`) over `period`, as
/// it stood at `as_of_ms`.
pub async fn task_report(
    store: &dyn AdminStore,
    cal: &Calendar,
    period: &Period,
    cell: Option<&str>,
    as_of_ms: i64,
) -> Result<TaskReport, StoreError> {
    let tasks = store
        .report_tasks(
            cell,
            cal.start_ms(period.start),
            cal.start_ms(period.end),
            as_of_ms,
        )
        .await?;
    let names: BTreeMap<String, String> = store
        .report_cells(None, as_of_ms)
        .await?
        .into_iter()
        .filter(|c| c.level == 1)
        .map(|c| (c.code, c.name))
        .collect();
    let mut by_street: BTreeMap<String, Vec<&TaskRecord>> = BTreeMap::new();
    for t in &tasks {
        let street = CellPath::from(t.cell_path.as_str())
            .codes()
            .next()
            .unwrap_or_default()
            .to_owned();
        by_street.entry(street).or_default().push(t);
    }
    let rows = by_street
        .iter()
        .map(|(street, ts)| row(street, names.get(street).map_or("", String::as_str), ts))
        .collect();
    let all: Vec<&TaskRecord> = tasks.iter().collect();
    Ok(TaskReport {
        period: period.clone(),
        time_zone: cal.zone().to_owned(),
        cell: cell.map(str::to_owned),
        as_of: Moment::new(cal, as_of_ms),
        rows,
        total: row("(all)", "", &all),
    })
}

impl TaskReport {
    /// As a table in `lang`: a row per street and the total.
    pub fn table_in(&self, lang: patrolsync_i18n::Lang) -> Table {
        let mut columns: Vec<String> = ["cell", "name", "tasks_made"]
            .into_iter()
            .map(String::from)
            .collect();
        columns.extend(STATUSES.iter().map(|s| format!("task_{s}")));
        columns.extend(
            [
                "accept_p50_min",
                "accept_p90_min",
                "arrive_p50_min",
                "arrive_p90_min",
                "complete_p50_min",
                "complete_p90_min",
            ]
            .map(String::from),
        );
        let minutes =
            |v: Option<f64>| v.map_or(Value::Empty, |m| Value::Num((m * 10.0).round() / 10.0));
        let rows = self
            .rows
            .iter()
            .chain(std::iter::once(&self.total))
            .map(|r| {
                let mut out = vec![
                    Value::Text(r.cell.clone()),
                    Value::Text(r.name.clone()),
                    Value::Int(r.made as i64),
                ];
                out.extend(
                    STATUSES
                        .iter()
                        .map(|s| Value::Int(r.by_status.get(*s).copied().unwrap_or(0) as i64)),
                );
                out.extend([
                    minutes(r.accept_p50_min),
                    minutes(r.accept_p90_min),
                    minutes(r.arrive_p50_min),
                    minutes(r.arrive_p90_min),
                    minutes(r.complete_p50_min),
                    minutes(r.complete_p90_min),
                ]);
                out
            })
            .collect();
        Table {
            title: "tasks".into(),
            heading: vec![],
            about_title: "about".into(),
            columns,
            rows,
            about: vec![
                ("report".to_owned(), "task response".to_owned()),
                ("period".to_owned(), self.period.label.clone()),
                (
                    "cell".to_owned(),
                    self.cell.clone().unwrap_or_else(|| "(all)".into()),
                ),
                ("time zone".to_owned(), self.time_zone.clone()),
                ("as of".to_owned(), self.as_of.local.clone()),
            ],
        }
        .localized(lang, &|l| l.to_string())
    }
}

/// The help-call ledger's rows (求助响应记录): one per help call made in the period.
pub(super) fn help_call_rows(
    cal: &Calendar,
    tasks: &[TaskRecord],
) -> (Vec<&'static str>, Vec<Vec<Value>>) {
    let columns = vec![
        "called_at",
        "cell",
        "household",
        "urgency",
        "task_status",
        "offered",
        "assignee",
        "accept_min",
        "arrive_min",
        "complete_min",
        "result",
        "hazard_id",
        "conflicts",
        "task_id",
    ];
    let minutes =
        |v: Option<f64>| v.map_or(Value::Empty, |m| Value::Num((m * 10.0).round() / 10.0));
    let rows = tasks
        .iter()
        .filter(|t| {
            t.state
                .task
                .as_ref()
                .is_some_and(|(task, _)| task.kind == TaskKind::HelpCall)
        })
        .map(|t| {
            let s = &t.state;
            let times = step_times(s);
            vec![
                Value::Text(cal.local(t.summary.created_at_ms)),
                Value::Text(t.summary.cell.clone()),
                Value::Text(t.summary.household.clone().unwrap_or_default()),
                Value::Text(t.summary.urgency.clone()),
                Value::Text(s.status.as_str().to_owned()),
                Value::Text(s.offered.join(", ")),
                Value::Text(s.assignee.clone().unwrap_or_default()),
                minutes(times.accept_min),
                minutes(times.arrive_min),
                minutes(times.complete_min),
                Value::Text(s.result.map(|r| r.as_str().to_owned()).unwrap_or_default()),
                Value::Text(s.hazard.map(|h| h.to_string()).unwrap_or_default()),
                Value::Int(s.conflicts().count() as i64),
                Value::Text(t.summary.id.clone()),
            ]
        })
        .collect();
    (columns, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 6.0, 7.0, 9.0, 8.0];
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&[7.5], 90.0), Some(7.5));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
