//! The evaluation ledger: per user and cell, what was due, done, found and fixed.

use std::collections::{BTreeMap, HashMap};

use patrolsync_proto::anomaly::AnomalyRules;
use patrolsync_proto::hazard::{EventKind, Status, fold};
use serde::Serialize;

use super::*;
use crate::store::ReportStore;
use crate::store::StoreError;

/// What a cell or a person is judged by (考评) over a period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Compliance slots due (for a person: in the cells they are assigned).
    pub due: u64,
    /// Of which inspected without a flag.
    pub inspected: u64,
    /// inspected / due.
    pub compliance: Option<f64>,
    /// Check-ins made in the period.
    pub check_ins: u64,
    /// Of which flagged.
    pub flagged_check_ins: u64,
    /// Hazards reported in the period.
    pub hazards_found: u64,
    /// Hazards closed in the period by their deadline (or with none).
    pub closed_on_time: u64,
    /// Hazards closed in the period after their deadline.
    pub closed_late: u64,
    /// Hazards open now whose deadline passed before the period's end.
    pub overdue: u64,
    /// Transfers to an agency in the period.
    pub transferred: u64,
    /// Reports made in the period by must-report kind (八必报: every hazard category and the
    /// information kinds), by category.
    pub reported_by_kind: BTreeMap<String, u64>,
    /// Information reports (外来人员就业, 新增残障等帮扶人员, 消防安全不稳定因素) made in the
    /// period; not counted as hazards.
    pub information_reports: u64,
    /// Information reports acknowledged in the period.
    pub acknowledged: u64,
}

/// One row of the evaluation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvaluationRow {
    /// Cell code or user name.
    pub subject: String,
    /// Cell name, or the person's role.
    pub name: String,
    /// Depth below the report's root (cells; 0 for people).
    pub depth: usize,
    /// The figures.
    #[serde(flatten)]
    pub tally: Tally,
}

/// The performance evaluation: per cell (its subtree) or per person.
#[derive(Clone, Debug, Serialize)]
pub struct Evaluation {
    /// The period.
    pub period: Period,
    /// `cell` or `person`.
    pub by: String,
    /// The time zone.
    pub time_zone: String,
    /// The root cell, if one was asked for.
    pub cell: Option<String>,
    /// The moment it stands at: what the server had received by then.
    pub as_of: Moment,
    /// Rows: cells in path order, or people by name.
    pub rows: Vec<EvaluationRow>,
    /// Routing outcomes (隐患直报): per party a routing rule sent hazards reported in the period
    /// to, what it was sent and how long it took, by party name.
    pub routing: Vec<RoutingOutcome>,
}

/// What one responsible party was sent by routing rules, and how it answered.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RoutingOutcome {
    /// The party: a user's name, or an agency.
    pub party: String,
    /// Hazards reported in the period and routed to it.
    pub routed: u64,
    /// Of those, taken on by the party (its first step: an acceptance, or a fix outright).
    pub accepted: u64,
    /// Of those, fixed by the party itself (its fix submitted or made on the spot).
    pub fixed: u64,
    /// Of those, open now past their deadline.
    pub overdue: u64,
    /// Median hours from the report to the party's first step.
    pub accept_p50_hours: Option<f64>,
    /// Median hours from the report to its fix.
    pub fix_p50_hours: Option<f64>,
}

/// The routing outcome of each party, from the hazards reported in `[from_ms, to_ms)`.
fn routing_outcomes(
    hazards: &[crate::store::reports::LedgerHazard],
    from_ms: i64,
    to_ms: i64,
    as_of_ms: i64,
) -> Vec<RoutingOutcome> {
    use patrolsync_proto::Role;
    let mut by_party: BTreeMap<String, (RoutingOutcome, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for h in hazards {
        let Some(party) = &h.routed_party else {
            continue;
        };
        let state = fold(h.id, &ops(h));
        let Some((report, made)) = &state.report else {
            continue;
        };
        if !(from_ms..to_ms).contains(&report.device_time_ms) {
            continue;
        }
        let hours = |e: &patrolsync_proto::hazard::HistoryEntry| {
            e.stamp.hlc.wall_ms.saturating_sub(made.hlc.wall_ms) as f64 / 3_600_000.0
        };
        let applied = || state.history.iter().filter(|e| e.conflict.is_none());
        // The party's own steps: made by the routed user, or for an agency by an agency user;
        // handing it back is no step of taking it on.
        let agency = party.parse::<patrolsync_proto::hazard::Agency>().is_ok();
        let party_step = |e: &&patrolsync_proto::hazard::HistoryEntry| {
            e.kind != EventKind::AgencyReturn
                && if agency {
                    e.role == Role::Agency
                } else {
                    e.role.is_party() && super::actor_of(h, e.event) == *party
                }
        };
        let first_step = applied().find(party_step);
        let fix = applied().find(|e| {
            matches!(
                e.kind,
                EventKind::FixOnSpot | EventKind::SubmitFix | EventKind::AgencyFix
            ) && party_step(e)
        });
        let entry = by_party.entry(party.clone()).or_insert_with(|| {
            (
                RoutingOutcome {
                    party: party.clone(),
                    ..RoutingOutcome::default()
                },
                Vec::new(),
                Vec::new(),
            )
        });
        entry.0.routed += 1;
        if let Some(e) = first_step {
            entry.0.accepted += 1;
            entry.1.push(hours(e));
        }
        if let Some(e) = fix {
            entry.0.fixed += 1;
            entry.2.push(hours(e));
        }
        if state.status.is_open()
            && state
                .deadline_ms
                .value
                .is_some_and(|d| d < as_of_ms.min(to_ms))
        {
            entry.0.overdue += 1;
        }
    }
    by_party
        .into_values()
        .map(|(mut o, accept, fix)| {
            o.accept_p50_hours = super::percentile(&accept, 50.0);
            o.fix_p50_hours = super::percentile(&fix, 50.0);
            o
        })
        .collect()
}

/// Evaluates the cells under `cell` (`by_person` false: each row its subtree) or the people
/// assigned there (`by_person` true: compliance of their cells, their own check-ins, hazards
/// they reported, closed, transferred, and overdue ones in their cells).
pub async fn evaluation(
    store: &dyn ReportStore,
    cal: &Calendar,
    rules: &AnomalyRules,
    period: &Period,
    cell: Option<&str>,
    by_person: bool,
    as_of_ms: i64,
) -> Result<Evaluation, StoreError> {
    let loaded = Loaded::read(store, cal, rules, period, cell, as_of_ms).await?;
    let compliance = loaded.compliance(cal, period, cell, as_of_ms);
    let (from_ms, to_ms) = (cal.start_ms(period.start), cal.start_ms(period.end));
    let hazards = store.report_hazards(cell, from_ms, to_ms, as_of_ms).await?;
    let people = if by_person {
        store.report_people(cell).await?
    } else {
        Vec::new()
    };
    // Whose tally a fact goes to: the cells on a path (by cell), or a person's name and the
    // people whose cells cover a path (by person).
    let cells_of = |path: &str| -> Vec<String> {
        patrolsync_proto::CellPath::from(path)
            .codes()
            .map(str::to_owned)
            .collect()
    };
    let covering = |path: &str| -> Vec<String> {
        people
            .iter()
            .filter(|p| {
                p.cells
                    .iter()
                    .any(|(_, cp)| patrolsync_proto::grid::covers(cp, path))
            })
            .map(|p| p.name.clone())
            .collect()
    };
    let mut tallies: HashMap<String, Tally> = HashMap::new();
    let mut add = |keys: Vec<String>, f: &dyn Fn(&mut Tally)| {
        for k in keys {
            f(tallies.entry(k).or_default());
        }
    };
    let names: HashMap<i64, &str> = people.iter().map(|p| (p.id, p.name.as_str())).collect();
    let cell_of: HashMap<i64, &str> = loaded
        .checkpoints
        .iter()
        .map(|c| (c.id, c.cell.as_str()))
        .collect();
    for (c, f) in loaded.visits.iter().zip(&loaded.flags) {
        if !c.in_scope || !(from_ms..to_ms).contains(&c.device_time_ms) {
            continue;
        }
        let flagged = !f.is_empty();
        // By cell, on its own cell for now; rolled up the tree below.
        let key = if by_person {
            names.get(&c.user_id)
        } else {
            cell_of.get(&c.checkpoint_id)
        };
        let keys = key.map(|k| vec![(*k).to_owned()]).unwrap_or_default();
        add(keys, &|t| {
            t.check_ins += 1;
            t.flagged_check_ins += u64::from(flagged);
        });
    }
    for h in &hazards {
        let state = fold(h.id, &ops(h));
        let Some((report, _)) = &state.report else {
            continue;
        };
        let applied: Vec<_> = state
            .history
            .iter()
            .filter(|e| e.conflict.is_none())
            .collect();
        let deadline = state.deadline_ms.value;
        let at = |e: &&patrolsync_proto::hazard::HistoryEntry| e.stamp.hlc.wall_ms as i64;
        let in_period = |t: i64| (from_ms..to_ms).contains(&t);
        let closing = (state.status == Status::Closed)
            .then(|| applied.iter().rev().find(|e| e.to == Status::Closed))
            .flatten()
            .filter(|e| in_period(at(e)));
        let overdue = state.status.is_open() && deadline.is_some_and(|d| d < as_of_ms.min(to_ms));
        let here = if by_person {
            covering(h.path.as_str())
        } else {
            cells_of(h.path.as_str())
        };
        let found = in_period(report.device_time_ms);
        let reporter = if by_person {
            vec![h.reporter.clone()]
        } else {
            here.clone()
        };
        let kind = report.category.as_str();
        if found {
            add(reporter.clone(), &|t| {
                *t.reported_by_kind.entry(kind.to_owned()).or_default() += 1;
            });
        }
        // An information report is counted and acknowledged, never judged as a hazard.
        if report.category.is_information() {
            if found {
                add(reporter, &|t| t.information_reports += 1);
            }
            if let Some(e) = applied
                .iter()
                .find(|e| e.kind == EventKind::Acknowledge && in_period(at(e)))
            {
                let who = if by_person {
                    vec![actor_of(h, e.event)]
                } else {
                    here.clone()
                };
                add(who, &|t| t.acknowledged += 1);
            }
            continue;
        }
        if found {
            add(reporter, &|t| t.hazards_found += 1);
        }
        if overdue {
            add(here.clone(), &|t| t.overdue += 1);
        }
        if let Some(e) = closing {
            let on_time = deadline.is_none_or(|d| at(e) <= d);
            let who = if by_person {
                vec![actor_of(h, e.event)]
            } else {
                here.clone()
            };
            add(who, &|t| {
                if on_time {
                    t.closed_on_time += 1;
                } else {
                    t.closed_late += 1;
                }
            });
        }
        for t in applied
            .iter()
            .filter(|e| e.kind == EventKind::Transfer && in_period(at(e)))
        {
            let who = if by_person {
                vec![actor_of(h, t.event)]
            } else {
                here.clone()
            };
            add(who, &|t| t.transferred += 1);
        }
    }

    let rows = if by_person {
        people
            .iter()
            .map(|p| {
                let mut t = tallies.remove(&p.name).unwrap_or_default();
                // Compliance over the top-most of their cells (a cell under another of theirs
                // is already in its subtree).
                for (code, path) in &p.cells {
                    let nested = p.cells.iter().any(|(_, other)| {
                        other != path && patrolsync_proto::grid::covers(other, path)
                    });
                    if nested {
                        continue;
                    }
                    if let Some(r) = compliance.rows.iter().find(|r| &r.cell == code) {
                        t.due += r.counts.due;
                        t.inspected += r.counts.inspected;
                    }
                }
                t.compliance = (t.due > 0).then(|| t.inspected as f64 / t.due as f64);
                EvaluationRow {
                    subject: p.name.clone(),
                    name: p.role.clone(),
                    depth: 0,
                    tally: t,
                }
            })
            .collect()
    } else {
        // Check-ins were tallied on their own cell: roll them up the tree like the rest.
        let own: HashMap<String, (u64, u64)> = tallies
            .iter()
            .map(|(k, t)| (k.clone(), (t.check_ins, t.flagged_check_ins)))
            .collect();
        let mut rolled: HashMap<&str, (u64, u64)> = HashMap::new();
        for c in &loaded.cells {
            if let Some((n, f)) = own.get(&c.code) {
                for code in c.path.codes() {
                    let e = rolled.entry(code).or_default();
                    e.0 += n;
                    e.1 += f;
                }
            }
        }
        compliance
            .rows
            .iter()
            .map(|r| {
                let mut t = tallies.get(&r.cell).cloned().unwrap_or_default();
                (t.check_ins, t.flagged_check_ins) =
                    rolled.get(r.cell.as_str()).copied().unwrap_or_default();
                t.due = r.counts.due;
                t.inspected = r.counts.inspected;
                t.compliance = r.rate;
                EvaluationRow {
                    subject: r.cell.clone(),
                    name: r.name.clone(),
                    depth: r.depth,
                    tally: t,
                }
            })
            .collect()
    };
    Ok(Evaluation {
        period: period.clone(),
        by: if by_person { "person" } else { "cell" }.into(),
        time_zone: cal.zone().to_owned(),
        cell: cell.map(str::to_owned),
        as_of: Moment::new(cal, as_of_ms),
        rows,
        routing: routing_outcomes(&hazards, from_ms, to_ms, as_of_ms),
    })
}

impl Evaluation {
    /// As a table in `lang` (see [`Table::localized`]), roles in words.
    pub fn table_in(&self, lang: patrolsync_i18n::Lang) -> Table {
        let mut table = self.table().localized(lang, &|level| level.to_string());
        if lang != patrolsync_i18n::Lang::En {
            super::about_in(&mut table, lang, "report-evaluation");
            if self.by == "person" {
                for row in &mut table.rows {
                    if let Some(Value::Text(role)) = row.get_mut(1) {
                        *role = lang.word_or_key("role", role);
                    }
                }
            }
        }
        table
    }

    /// The line above the text table, in `lang`.
    pub fn title_in(&self, lang: patrolsync_i18n::Lang) -> String {
        let arg = |v: &str| patrolsync_i18n::Value::from(v.to_owned());
        lang.format(
            "report-evaluation-title",
            &[
                ("by", arg(&self.by)),
                ("period", arg(&self.period.label)),
                ("zone", arg(&self.time_zone)),
                ("as_of", arg(&self.as_of.local)),
            ],
        )
    }

    /// As a table for CSV, XLSX and the terminal.
    pub fn table(&self) -> Table {
        let columns = vec![
            if self.by == "person" {
                "person"
            } else {
                "cell"
            },
            if self.by == "person" { "role" } else { "name" },
            "due",
            "inspected",
            "compliance",
            "check_ins",
            "flagged_check_ins",
            "hazards_found",
            "closed_on_time",
            "closed_late",
            "overdue",
            "transferred",
            "information_reports",
            "acknowledged",
        ];
        // Reports by must-report kind (八必报): a column for each kind reported in any row.
        let kinds: std::collections::BTreeSet<&str> = self
            .rows
            .iter()
            .flat_map(|r| r.tally.reported_by_kind.keys().map(String::as_str))
            .collect();
        let kind_columns: Vec<String> = kinds.iter().map(|k| format!("reported_{k}")).collect();
        let int = |v: u64| Value::Int(v as i64);
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let t = &r.tally;
                vec![
                    Value::Text(format!("{}{}", "  ".repeat(r.depth), r.subject)),
                    Value::Text(r.name.clone()),
                    int(t.due),
                    int(t.inspected),
                    t.compliance.map_or(Value::Empty, Value::Num),
                    int(t.check_ins),
                    int(t.flagged_check_ins),
                    int(t.hazards_found),
                    int(t.closed_on_time),
                    int(t.closed_late),
                    int(t.overdue),
                    int(t.transferred),
                    int(t.information_reports),
                    int(t.acknowledged),
                ]
                .into_iter()
                .chain(
                    kinds
                        .iter()
                        .map(|k| int(t.reported_by_kind.get(*k).copied().unwrap_or(0))),
                )
                .collect::<Vec<_>>()
            })
            .collect();
        Table {
            title: "evaluation".into(),
            heading: vec![],
            about_title: "about".into(),
            columns: columns
                .into_iter()
                .map(String::from)
                .chain(kind_columns)
                .collect(),
            rows,
            about: vec![
                (
                    "report".into(),
                    format!("performance evaluation by {}", self.by),
                ),
                ("period".into(), self.period.label.clone()),
                (
                    "cell".into(),
                    self.cell.clone().unwrap_or_else(|| "(all)".into()),
                ),
                ("time zone".into(), self.time_zone.clone()),
                ("as of".into(), self.as_of.local.clone()),
            ],
        }
    }
}
