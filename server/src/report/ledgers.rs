//! The ledgers (台账): patrol, hazard, closed-loop disposal and transfer, as exports.

use std::collections::HashMap;

use patrolsync_proto::anomaly::{Anomaly, AnomalyRules};
use patrolsync_proto::hazard::{EventKind, HazardOp, Status, fold};

use patrolsync_i18n::{Lang, message};

use super::*;
use crate::store::AdminStore;
use crate::store::StoreError;
use crate::store::reports::{LedgerCheckIn, LedgerHazard};

/// The ledgers `admin export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Ledger {
    /// Inspection ledger (日常消防检查记录): one row per inspection check-in.
    Inspections,
    /// Patrol ledger (巡防巡查记录): one row per patrol or household visit.
    Patrols,
    /// Hazard disposal ledger (隐患处置记录): one row per hazard.
    HazardDisposal,
    /// Hazard transfer ledger (隐患移交记录): one row per transfer to an agency.
    HazardTransfer,
    /// Must-visit ledger (六必访走访记录): one row per visit that named a household.
    Visits,
    /// Help-call ledger (求助响应记录): one row per help call made, who was offered it, who
    /// took it and how long each step took.
    HelpCalls,
}

impl Ledger {
    /// The name on the command line and the sheet.
    pub fn name(self) -> &'static str {
        match self {
            Ledger::Inspections => "inspections",
            Ledger::Patrols => "patrols",
            Ledger::HazardDisposal => "hazard-disposal",
            Ledger::HazardTransfer => "hazard-transfer",
            Ledger::Visits => "visits",
            Ledger::HelpCalls => "help-calls",
        }
    }
}

/// What a ledger is asked for: which, of what subtree, over what period, as of when.
#[derive(Clone, Copy, Debug)]
pub struct LedgerQuery<'a> {
    /// Which ledger.
    pub ledger: Ledger,
    /// Its period.
    pub period: &'a Period,
    /// The subtree's root cell; None for every cell.
    pub cell: Option<&'a str>,
    /// Only the records of this key unit (check-ins at its checkpoints, hazards reported
    /// there): the unit's ledger (单位台账). Its cell is the subtree, whatever `cell` says.
    pub unit: Option<&'a crate::store::registry::UnitEntry>,
    /// Only what the server had received by then (Unix ms).
    pub as_of_ms: i64,
    /// The language of the form: `zh-CN` is the official form (Chinese columns, words and
    /// dates, a row number); `en` keeps the machine column names and codes.
    pub lang: Lang,
}

/// Builds a ledger (see [`LedgerQuery`]) as the form in its language.
pub async fn ledger(
    store: &dyn AdminStore,
    cal: &Calendar,
    rules: &AnomalyRules,
    q: LedgerQuery<'_>,
) -> Result<Table, StoreError> {
    let LedgerQuery {
        ledger,
        period,
        cell,
        unit,
        as_of_ms,
        lang,
    } = q;
    let cell = unit.map_or(cell, |u| Some(u.cell.as_str()));
    let at_unit =
        |checkpoint: &str| unit.is_none_or(|u| u.checkpoints.iter().any(|c| c == checkpoint));
    let (from_ms, to_ms) = (cal.start_ms(period.start), cal.start_ms(period.end));
    let about_key = |key: &str| lang.text(&format!("about-{key}"));
    let mut about = vec![
        (
            about_key("ledger"),
            match lang {
                Lang::En => ledger.name().to_owned(),
                _ => lang.text(&format!("ledger-{}", ledger.name())),
            },
        ),
        (about_key("period"), period.label.clone()),
        (
            about_key("cell"),
            cell.map_or_else(|| lang.text("ledger-all-cells"), str::to_owned),
        ),
        (about_key("time_zone"), cal.zone().into()),
    ];
    if let Some(u) = unit {
        about.push((about_key("unit"), format!("{} {}", u.code, u.name)));
    }
    about.extend([(about_key("as_of"), cal.local(as_of_ms))]);
    let (columns, rows) = match ledger {
        Ledger::Inspections | Ledger::Patrols => {
            let all = store
                .report_check_ins(cell, from_ms - LOOKBACK_MS, to_ms, as_of_ms)
                .await?;
            let flags = flag_all(rules, &all, |c| c.place);
            let mut picked: Vec<(&LedgerCheckIn, &Vec<Anomaly>)> = all
                .iter()
                .zip(&flags)
                .filter(|(c, _)| {
                    c.in_scope
                        && at_unit(&c.checkpoint)
                        && c.device_time_ms >= from_ms
                        && (c.kind == "inspection") == (ledger == Ledger::Inspections)
                })
                .collect();
            picked
                .sort_by(|a, b| (a.0.device_time_ms, &a.0.id).cmp(&(b.0.device_time_ms, &b.0.id)));
            let flagged = picked.iter().filter(|(_, f)| !f.is_empty()).count();
            about.push((about_key("check_ins"), picked.len().to_string()));
            about.push((about_key("flagged"), flagged.to_string()));
            about.push((about_key("log_entries"), about_key("log_entries_none")));
            let words = match lang {
                Lang::En => None,
                _ => Some(AnswerWords::load(store, lang, picked.iter().map(|(c, _)| *c)).await),
            };
            (
                CHECK_IN_COLUMNS.to_vec(),
                picked
                    .into_iter()
                    .map(|(c, f)| check_in_row(cal, c, f, words.as_ref()))
                    .collect(),
            )
        }
        Ledger::HelpCalls => {
            let mut tasks = store.report_tasks(cell, from_ms, to_ms, as_of_ms).await?;
            // A unit's ledger: the calls made for that unit.
            if let Some(u) = unit {
                tasks.retain(|t| t.summary.unit.as_deref() == Some(u.code.as_str()));
            }
            let (columns, rows) = super::help_call_rows(cal, &tasks);
            about.push((about_key("help_calls"), rows.len().to_string()));
            about.push((about_key("log_entries"), about_key("log_entries_none")));
            (columns, rows)
        }
        Ledger::Visits => {
            let households: HashMap<String, crate::store::registry::HouseholdEntry> = store
                .households(cell, as_of_ms)
                .await?
                .into_iter()
                .map(|h| (h.code.clone(), h))
                .collect();
            let visits = store
                .household_visits(cell, from_ms, to_ms, as_of_ms)
                .await?;
            let visits: Vec<_> = visits
                .into_iter()
                .filter(|v| at_unit(&v.checkpoint))
                .collect();
            about.push((about_key("visits"), visits.len().to_string()));
            about.push((about_key("log_entries"), about_key("log_entries_none")));
            let columns = vec![
                "time",
                "cell",
                "household",
                "group",
                "address",
                "user",
                "visit_outcome",
                "checkpoint",
                "received_at",
                "check_in_id",
            ];
            let rows = visits
                .iter()
                .map(|v| {
                    let h = households.get(&v.household);
                    let text = |f: fn(&crate::store::registry::HouseholdEntry) -> &String| {
                        Value::Text(h.map(f).cloned().unwrap_or_default())
                    };
                    vec![
                        Value::Text(cal.local(v.device_time_ms)),
                        text(|h| &h.cell),
                        Value::Text(v.household.clone()),
                        text(|h| &h.group),
                        text(|h| &h.address),
                        Value::Text(v.user.clone()),
                        Value::Text(v.outcome.clone()),
                        Value::Text(v.checkpoint.clone()),
                        Value::Text(cal.local(v.received_at_ms)),
                        Value::Text(v.id.clone()),
                    ]
                })
                .collect();
            (columns, rows)
        }
        Ledger::HazardDisposal | Ledger::HazardTransfer => {
            let mut hazards = store.report_hazards(cell, from_ms, to_ms, as_of_ms).await?;
            // Information reports are acknowledged, not disposed of: not in these ledgers.
            hazards.retain(|h| {
                h.log.iter().any(|e| match &e.op {
                    HazardOp::Report(r) => at_unit(&r.checkpoint) && !r.category.is_information(),
                    _ => false,
                })
            });
            let (columns, rows, covered) = if ledger == Ledger::HazardDisposal {
                disposal(cal, &hazards, from_ms, as_of_ms)
            } else {
                transfers(cal, &hazards, from_ms, to_ms)
            };
            about.push((about_key("hazards"), covered.len().to_string()));
            about.push((
                about_key("log_entries"),
                covered
                    .iter()
                    .map(|h| h.log.len())
                    .sum::<usize>()
                    .to_string(),
            ));
            about.push((about_key("chain_digest"), chain_digest(&covered)));
            about.push((about_key("how_to_verify"), about_key("how_to_verify-text")));
            (columns, rows)
        }
    };
    let table = Table {
        title: ledger.name().into(),
        heading: vec![],
        about_title: lang.text("ledger-about"),
        columns: columns.into_iter().map(String::from).collect(),
        rows,
        about,
    };
    let place = unit.map(|u| {
        message!(
            lang,
            "ledger-unit-place",
            code = u.code,
            name = u.name,
            cell = u.cell
        )
    });
    Ok(super::forms::dress(
        table, ledger, lang, period, cell, place,
    ))
}

pub(super) const CHECK_IN_COLUMNS: [&str; 22] = [
    "time",
    "cell",
    "checkpoint",
    "checkpoint_name",
    "user",
    "device",
    "kind",
    "method",
    "outcome",
    "anomalies",
    "latitude",
    "longitude",
    "accuracy_m",
    "template",
    "template_version",
    "answers",
    "issues",
    "photos",
    "note",
    "check_in_id",
    "received_at",
    "device_time_ms",
];

/// How a check-in's answers read on the form in a language other than English: each item by
/// its label in the template version answered, its value in words (合格 / 有问题 / 不适用), the
/// note after it.
pub(super) struct AnswerWords {
    lang: Lang,
    /// (template id, version) → item id → label.
    labels: HashMap<(String, i64), HashMap<String, String>>,
}

impl AnswerWords {
    /// The labels of the templates `check_ins` answered. A template that cannot be read
    /// leaves its items named by their ids (logged): the ledger is still the form.
    async fn load(
        store: &dyn AdminStore,
        lang: Lang,
        check_ins: impl Iterator<Item = &LedgerCheckIn>,
    ) -> AnswerWords {
        let ids: std::collections::BTreeSet<&str> = check_ins
            .map(|c| c.template.0.as_str())
            .filter(|id| !id.is_empty())
            .collect();
        let mut labels = HashMap::new();
        for id in ids {
            match store.templates(Some(id)).await {
                Ok(versions) => {
                    for t in versions {
                        let items = t.items.into_iter().map(|i| (i.id, i.label)).collect();
                        labels.insert((t.id, i64::from(t.version)), items);
                    }
                }
                Err(e) => {
                    tracing::warn!(template = id, error = %e, "ledger: answers keep item ids")
                }
            }
        }
        AnswerWords { lang, labels }
    }

    /// One answer: `label：word（note）`.
    fn answer(&self, template: &(String, i64), item: &str, value: &str, note: &str) -> String {
        let label = self
            .labels
            .get(template)
            .and_then(|items| items.get(item))
            .map_or(item, String::as_str);
        let value = self.lang.word_or_key("answer", value);
        if note.is_empty() {
            message!(self.lang, "ledger-answer", item = label, value = value)
        } else {
            message!(
                self.lang,
                "ledger-answer-note",
                item = label,
                value = value,
                note = note
            )
        }
    }
}

pub(super) fn check_in_row(
    cal: &Calendar,
    c: &LedgerCheckIn,
    flags: &[Anomaly],
    words: Option<&AnswerWords>,
) -> Vec<Value> {
    let answers: Vec<serde_json::Value> = serde_json::from_str(&c.answers).unwrap_or_default();
    let issues = answers.iter().filter(|a| a["value"] == "issue").count();
    let answers_text = answers
        .iter()
        .map(|a| {
            let item = a["item"].as_str().unwrap_or_default();
            let value = a["value"].as_str().unwrap_or_default();
            let note = a["note"].as_str().unwrap_or_default();
            match words {
                Some(w) => w.answer(&c.template, item, value, note),
                None if note.is_empty() => format!("{item}={value}"),
                None => format!("{item}={value} ({note})"),
            }
        })
        .collect::<Vec<_>>()
        .join(if words.is_some() { "；" } else { "; " });
    let photos = serde_json::from_str::<Vec<serde_json::Value>>(&c.photos)
        .map(|p| p.len())
        .unwrap_or(0);
    let fix =
        |f: fn(&(f64, f64, f64)) -> f64| c.fix.as_ref().map_or(Value::Empty, |x| Value::Num(f(x)));
    vec![
        Value::Text(cal.local(c.device_time_ms)),
        Value::Text(c.cell.clone()),
        Value::Text(c.checkpoint.clone()),
        Value::Text(c.checkpoint_name.clone()),
        Value::Text(c.user.clone()),
        Value::Text(c.device.clone()),
        Value::Text(c.kind.clone()),
        Value::Text(c.method.clone()),
        Value::Text(c.outcome.clone()),
        Value::Text(
            flags
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(";"),
        ),
        fix(|x| x.0),
        fix(|x| x.1),
        fix(|x| x.2),
        Value::Text(c.template.0.clone()),
        Value::Int(c.template.1),
        Value::Text(answers_text),
        Value::Int(issues as i64),
        Value::Int(photos as i64),
        Value::Text(c.note.clone()),
        Value::Text(c.id.clone()),
        Value::Text(cal.local(c.received_at_ms)),
        Value::Int(c.device_time_ms),
    ]
}

pub(super) type Built<'a> = (Vec<&'static str>, Vec<Vec<Value>>, Vec<&'a LedgerHazard>);

pub(super) fn disposal<'a>(
    cal: &Calendar,
    hazards: &'a [LedgerHazard],
    from_ms: i64,
    as_of_ms: i64,
) -> Built<'a> {
    let columns = vec![
        "hazard_id",
        "cell",
        "checkpoint",
        "category",
        "severity",
        "handling",
        "reported_at",
        "reporter",
        "deadline",
        "status",
        "notified_at",
        "rectified_at",
        "closed_at",
        "closed_by",
        "on_time",
        "transferred_to",
        "events",
        "conflicts",
        "log_length",
        "chain_head",
    ];
    let mut rows = Vec::new();
    let mut covered = Vec::new();
    for h in hazards {
        let state = fold(h.id, &ops(h));
        let Some((report, _)) = &state.report else {
            continue;
        };
        let applied = || state.history.iter().filter(|e| e.conflict.is_none());
        let first = |k: EventKind| {
            applied()
                .find(|e| e.kind == k)
                .map(|e| e.stamp.hlc.wall_ms as i64)
        };
        // The latest round: after a failed verification, the fix that was finally verified.
        let rectified = applied()
            .rfind(|e| e.to == Status::Rectified)
            .map(|e| e.stamp.hlc.wall_ms as i64);
        let closing = applied().rfind(|e| e.to == Status::Closed);
        let closed_at = (state.status == Status::Closed)
            .then(|| closing.map(|e| e.stamp.hlc.wall_ms as i64))
            .flatten();
        let deadline = state.deadline_ms.value;
        let on_time = match (closed_at, deadline) {
            (Some(c), Some(d)) => {
                if c <= d {
                    "yes"
                } else {
                    "late"
                }
            }
            (Some(_), None) => "yes",
            (None, Some(d)) if state.status.is_open() && as_of_ms > d => "overdue",
            (None, _) if state.status == Status::Merged => "merged",
            (None, _) => "open",
        };
        // Reported in the period, still open in it, or acted on in it.
        let last_change = state
            .history
            .last()
            .map_or(report.device_time_ms, |e| e.stamp.hlc.wall_ms as i64);
        if report.device_time_ms < from_ms && !state.status.is_open() && last_change < from_ms {
            continue;
        }
        // The agency of the last transfer (the fold forgets it once the agency returns it).
        let transferred_to = applied()
            .rfind(|e| e.kind == EventKind::Transfer)
            .map(|t| {
                h.log
                    .iter()
                    .find_map(|e| match &e.op {
                        HazardOp::Event(ev, _) if ev.id == t.event => ev.agency,
                        _ => None,
                    })
                    .map_or_else(|| "yes".to_owned(), |a| a.as_str().to_owned())
            })
            .unwrap_or_default();
        rows.push(vec![
            Value::Text(h.id.to_string()),
            Value::Text(h.cell.clone()),
            Value::Text(report.checkpoint.clone()),
            Value::Text(state.category.value.as_str().into()),
            Value::Text(state.severity.value.as_str().into()),
            Value::Text(state.handling.value.as_str().into()),
            Value::Text(cal.local(report.device_time_ms)),
            Value::Text(h.reporter.clone()),
            when(cal, deadline),
            Value::Text(state.status.as_str().into()),
            when(cal, first(EventKind::Notify)),
            when(cal, rectified),
            when(cal, closed_at),
            Value::Text(
                closing
                    .filter(|_| closed_at.is_some())
                    .map(|e| actor_of(h, e.event))
                    .unwrap_or_default(),
            ),
            Value::Text(on_time.into()),
            Value::Text(transferred_to),
            Value::Int(state.history.len() as i64),
            Value::Int(state.conflicts().count() as i64),
            Value::Int(h.log.len() as i64),
            Value::Text(
                h.log
                    .last()
                    .map(|e| hex::encode(e.hash))
                    .unwrap_or_default(),
            ),
        ]);
        covered.push(h);
    }
    (columns, rows, covered)
}

pub(super) fn transfers<'a>(
    cal: &Calendar,
    hazards: &'a [LedgerHazard],
    from_ms: i64,
    to_ms: i64,
) -> Built<'a> {
    let columns = vec![
        "hazard_id",
        "cell",
        "category",
        "severity",
        "transferred_at",
        "transferred_by",
        "agency",
        "agency_deadline",
        "note",
        "accepted_at",
        "returned_at",
        "return_reason",
        "fixed_at",
        "status",
        "log_length",
        "chain_head",
    ];
    let mut rows = Vec::new();
    let mut covered = Vec::new();
    for h in hazards {
        let state = fold(h.id, &ops(h));
        let events: HashMap<_, _> = h
            .log
            .iter()
            .filter_map(|e| match &e.op {
                HazardOp::Event(ev, _) => Some((ev.id, ev)),
                _ => None,
            })
            .collect();
        let applied: Vec<_> = state
            .history
            .iter()
            .filter(|e| e.conflict.is_none())
            .collect();
        let mut any = false;
        for (i, t) in applied.iter().enumerate() {
            let at = t.stamp.hlc.wall_ms as i64;
            if t.kind != EventKind::Transfer || at < from_ms || at >= to_ms {
                continue;
            }
            let Some(ev) = events.get(&t.event) else {
                continue;
            };
            // What the agency did with it, up to the next transfer.
            let after: Vec<_> = applied[i + 1..]
                .iter()
                .take_while(|e| e.kind != EventKind::Transfer)
                .collect();
            let at_kind = |k: EventKind| {
                after
                    .iter()
                    .find(|e| e.kind == k)
                    .map(|e| e.stamp.hlc.wall_ms as i64)
            };
            let returned = after.iter().find(|e| e.kind == EventKind::AgencyReturn);
            rows.push(vec![
                Value::Text(h.id.to_string()),
                Value::Text(h.cell.clone()),
                Value::Text(state.category.value.as_str().into()),
                Value::Text(state.severity.value.as_str().into()),
                Value::Text(cal.local(at)),
                Value::Text(actor_of(h, t.event)),
                Value::Text(ev.agency.map(|a| a.as_str().to_owned()).unwrap_or_default()),
                when(cal, ev.deadline_ms),
                Value::Text(ev.note.clone()),
                when(cal, at_kind(EventKind::AgencyAccept)),
                when(cal, returned.map(|e| e.stamp.hlc.wall_ms as i64)),
                Value::Text(
                    returned
                        .and_then(|e| events.get(&e.event))
                        .map(|e| e.note.clone())
                        .unwrap_or_default(),
                ),
                when(cal, at_kind(EventKind::AgencyFix)),
                Value::Text(state.status.as_str().into()),
                Value::Int(h.log.len() as i64),
                Value::Text(
                    h.log
                        .last()
                        .map(|e| hex::encode(e.hash))
                        .unwrap_or_default(),
                ),
            ]);
            any = true;
        }
        if any {
            covered.push(h);
        }
    }
    (columns, rows, covered)
}

/// SHA-256 over each covered hazard's id, log length and chain head, in order.
pub(super) fn chain_digest(covered: &[&LedgerHazard]) -> String {
    use ring::digest::{Context, SHA256};
    let mut d = Context::new(&SHA256);
    for h in covered {
        d.update(&h.id.to_bytes());
        d.update(&(h.log.len() as u64).to_be_bytes());
        d.update(&h.log.last().map(|e| e.hash).unwrap_or_default());
    }
    hex::encode(d.finish().as_ref())
}
