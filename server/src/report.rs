//! Cadence compliance and the ledgers (台账): derived views over the store, in the configured
//! time zone, rendered as a text table, CSV, XLSX or JSON.
//!
//! Compliance counts *slots*: each checkpoint is due once per period of its cadence (a day, a
//! week from the configured week start, a month, a quarter) that overlaps the report period and
//! has begun. A check-in anywhere in the slot answers it, so a weekly slot that straddles two
//! months appears in both months' reports. Each slot that has begun is, by its best check-in:
//! `inspected` (inspected, no anomaly flag), `could_not_inspect` (a reason such as locked, no
//! flag), `flagged` (only flagged check-ins: presence not proven), `missed` (none, and the slot
//! has ended), or `open` (none yet, and the slot is still running; not due yet).
//! `due = inspected + could_not_inspect + flagged + missed`, and `rate = inspected / due`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Weekday};
use chrono_tz::Tz;
use patrolsync_proto::anomaly::{self, Anomaly, AnomalyRules, Observed};
use patrolsync_proto::hazard::{EventKind, HazardOp, Status, fold};
use serde::Serialize;

use crate::config::Reports;
use crate::store::ReportStore;
use crate::store::StoreError;
use crate::store::reports::{LedgerCheckIn, LedgerHazard, OUTCOMES, Visit};

/// How often a checkpoint must be inspected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    /// Every day.
    Daily,
    /// Every week, from the configured week start.
    Weekly,
    /// Every calendar month.
    Monthly,
    /// Every quarter (January, April, July, October).
    Quarterly,
}

impl FromStr for Cadence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "daily" => Ok(Cadence::Daily),
            "weekly" => Ok(Cadence::Weekly),
            "monthly" => Ok(Cadence::Monthly),
            "quarterly" => Ok(Cadence::Quarterly),
            _ => Err(format!(
                "unknown cadence {s:?}: use daily, weekly, monthly or quarterly"
            )),
        }
    }
}

/// Dates in the configured zone, and the cadence of each grid level.
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: Tz,
    week_start: Weekday,
    by_level: Vec<Cadence>,
}

impl Calendar {
    /// From the `[reports]` configuration; the error names the bad key.
    pub fn from_config(r: &Reports) -> Result<Calendar, String> {
        let tz = r.time_zone.parse::<Tz>().map_err(|_| {
            format!(
                "reports.time_zone = {:?} is not an IANA time zone (e.g. Asia/Shanghai)",
                r.time_zone
            )
        })?;
        let week_start = r.week_start.parse::<Weekday>().map_err(|_| {
            format!(
                "reports.week_start = {:?} is not a weekday (e.g. monday)",
                r.week_start
            )
        })?;
        if r.cadence.is_empty() {
            return Err("reports.cadence needs one entry per grid level, big first".into());
        }
        let by_level = r
            .cadence
            .iter()
            .map(|c| c.parse().map_err(|e| format!("reports.cadence: {e}")))
            .collect::<Result<_, String>>()?;
        Ok(Calendar {
            tz,
            week_start,
            by_level,
        })
    }

    /// The time zone's name.
    pub fn zone(&self) -> &str {
        self.tz.name()
    }

    /// The local date of a Unix time in ms.
    pub fn date(&self, ms: i64) -> NaiveDate {
        self.tz
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.date_naive())
            .unwrap_or_default()
    }

    /// Local "YYYY-MM-DD HH:MM:SS" of a Unix time in ms.
    pub fn local(&self, ms: i64) -> String {
        self.tz
            .timestamp_millis_opt(ms)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    }

    /// Unix ms of a moment given as RFC 3339 (`2026-11-03T09:00:00+08:00`), a local date and
    /// time in this zone (`2026-11-03 09:00` or `2026-11-03T09:00:00`), or a local date
    /// (`2026-11-03`: the end of that day, so everything received on it counts).
    pub fn moment(&self, s: &str) -> Result<i64, String> {
        let bad = || {
            format!(
                "time {s:?}: use 2026-11-03 (the end of that day), 2026-11-03 09:00 (local, in {}) \
                 or 2026-11-03T09:00:00+08:00 (RFC 3339)",
                self.zone()
            )
        };
        let t = s.trim();
        let ms = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(t) {
            t.timestamp_millis()
        } else if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            bounded_year(d.year()).ok_or_else(|| format!("time {s:?}: years from 1970 to 9999"))?;
            self.start_ms(d + Duration::days(1))
        } else {
            let local = [
                "%Y-%m-%d %H:%M:%S",
                "%Y-%m-%d %H:%M",
                "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M",
            ]
            .iter()
            .find_map(|f| chrono::NaiveDateTime::parse_from_str(t, f).ok())
            .ok_or_else(bad)?;
            bounded_year(local.year())
                .ok_or_else(|| format!("time {s:?}: years from 1970 to 9999"))?;
            // A local time skipped by a DST jump does not exist; one repeated is the first.
            self.tz
                .from_local_datetime(&local)
                .earliest()
                .ok_or_else(|| {
                    format!(
                        "time {s:?} does not exist in {} (a clock change)",
                        self.zone()
                    )
                })?
                .timestamp_millis()
        };
        match self.tz.timestamp_millis_opt(ms).single() {
            Some(t) if bounded_year(t.year()).is_some() => Ok(ms),
            _ => Err(format!("time {s:?}: years from 1970 to 9999")),
        }
    }

    /// Unix ms of local midnight starting `date` (the first such instant on a DST change).
    pub fn start_ms(&self, date: NaiveDate) -> i64 {
        let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
        match self.tz.from_local_datetime(&midnight).earliest() {
            Some(t) => t.timestamp_millis(),
            // Midnight skipped by a DST jump: the day starts an hour later.
            None => self
                .tz
                .from_local_datetime(&(midnight + Duration::hours(1)))
                .earliest()
                .map(|t| t.timestamp_millis())
                .unwrap_or_default(),
        }
    }

    /// The cadence of a checkpoint in a cell of `level`, unless it overrides it.
    pub fn cadence(&self, level: u8, own: Option<&str>) -> Cadence {
        if let Some(c) = own.and_then(|c| c.parse().ok()) {
            return c;
        }
        let i = usize::from(level.max(1)) - 1;
        self.by_level
            .get(i)
            .or(self.by_level.last())
            .copied()
            .unwrap_or(Cadence::Daily)
    }

    /// The slot of `cadence` that holds `date`: `[start, end)`.
    pub fn slot(&self, cadence: Cadence, date: NaiveDate) -> (NaiveDate, NaiveDate) {
        match cadence {
            Cadence::Daily => (date, date + Duration::days(1)),
            Cadence::Weekly => {
                let back = (7 + date.weekday().num_days_from_monday()
                    - self.week_start.num_days_from_monday())
                    % 7;
                let start = date - Duration::days(i64::from(back));
                (start, start + Duration::days(7))
            }
            Cadence::Monthly => {
                let start = date.with_day(1).unwrap_or(date);
                (start, add_months(start, 1))
            }
            Cadence::Quarterly => {
                let m0 = (date.month0() / 3) * 3;
                let start = NaiveDate::from_ymd_opt(date.year(), m0 + 1, 1).unwrap_or(date);
                (start, add_months(start, 3))
            }
        }
    }
}

/// Years reports accept: bounded before any date arithmetic, so nothing near chrono's limits can
/// overflow a slot (9999-12-31 plus a quarter is still a date).
fn bounded_year(y: i32) -> Option<i32> {
    (1970..=9999).contains(&y).then_some(y)
}

fn add_months(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_months(chrono::Months::new(n)).unwrap_or(d)
}

/// A report period: whole local days `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Period {
    /// As given.
    pub label: String,
    /// First day.
    pub start: NaiveDate,
    /// The day after the last.
    pub end: NaiveDate,
}

impl FromStr for Period {
    type Err = String;
    /// `2026-11` (a month), `2026-Q4` (a quarter), `2026-11-23` (a day), or
    /// `2026-11-23..2026-11-29` (days, both included; e.g. a week).
    fn from_str(s: &str) -> Result<Period, String> {
        let bad = || {
            format!(
                "period {s:?}: use 2026-11 (month), 2026-Q4 (quarter), 2026-11-23 (day) or \
                 2026-11-23..2026-11-29 (days, both included)"
            )
        };
        let in_range = |y: i32| bounded_year(y).is_some();
        let years = || format!("period {s:?}: years from 1970 to 9999");
        let day = |t: &str| {
            let d = NaiveDate::parse_from_str(t, "%Y-%m-%d").map_err(|_| bad())?;
            if in_range(d.year()) {
                Ok(d)
            } else {
                Err(years())
            }
        };
        let (start, end) = if let Some((a, b)) = s.split_once("..") {
            let (a, b) = (day(a)?, day(b)?);
            if b < a {
                return Err(format!("period {s:?} ends before it starts"));
            }
            (a, b + Duration::days(1))
        } else if let Some((y, q)) = s.split_once("-Q") {
            let y: i32 = y.parse().map_err(|_| bad())?;
            if !in_range(y) {
                return Err(years());
            }
            let q: u32 = q.parse().map_err(|_| bad())?;
            if !(1..=4).contains(&q) {
                return Err(bad());
            }
            let start = NaiveDate::from_ymd_opt(y, (q - 1) * 3 + 1, 1).ok_or_else(bad)?;
            (start, add_months(start, 3))
        } else if s.len() == 7 {
            let start = day(&format!("{s}-01"))?;
            (start, add_months(start, 1))
        } else {
            let d = day(s)?;
            (d, d + Duration::days(1))
        };
        Ok(Period {
            label: s.to_owned(),
            start,
            end,
        })
    }
}

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
    fn add(&mut self, o: &Counts) {
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

/// The moment a report or ledger stands at: it counts only what the server had received by
/// then, and judges slots and deadlines as they stood then (`--as-of`, default now).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Moment {
    /// Unix ms.
    pub ms: i64,
    /// `YYYY-MM-DD HH:MM:SS` in the report's time zone.
    pub local: String,
}

impl Moment {
    /// `ms` in `cal`'s zone.
    pub fn new(cal: &Calendar, ms: i64) -> Moment {
        Moment {
            ms,
            local: cal.local(ms),
        }
    }
}

/// What the anomaly rules read of a check-in.
pub trait Flaggable {
    /// The user's row id.
    fn user_id(&self) -> i64;
    /// The check-in's own facts.
    fn observed(&self) -> Observed;
}

/// Both kinds of stored check-in carry the same fields the rules read.
macro_rules! flaggable {
    ($t:ty) => {
        impl Flaggable for $t {
            fn user_id(&self) -> i64 {
                self.user_id
            }
            fn observed(&self) -> Observed {
                Observed {
                    fix: self.fix,
                    mock: self.mock,
                    device_time_ms: self.device_time_ms,
                    received_at_ms: self.received_at_ms,
                    // As measured when the check-in arrived (kept with it), so past reports do
                    // not change when the device's clock drifts later.
                    clock_offset_ms: self.clock_offset_ms,
                    double_tap: self.double_tap,
                }
            }
        }
    };
}

flaggable!(LedgerCheckIn);
flaggable!(Visit);

/// Anomaly flags of check-ins ordered by user then device time (as the store returns them),
/// each compared with the same user's previous one; `place` is where its checkpoint is.
pub fn flag_all<T: Flaggable>(
    rules: &AnomalyRules,
    rows: &[T],
    place: impl Fn(&T) -> Option<anomaly::Place>,
) -> Vec<Vec<Anomaly>> {
    let mut out = Vec::with_capacity(rows.len());
    for (i, c) in rows.iter().enumerate() {
        let previous = i
            .checked_sub(1)
            .map(|p| &rows[p])
            .filter(|p| p.user_id() == c.user_id())
            .map(Flaggable::observed);
        out.push(anomaly::flags(
            rules,
            &c.observed(),
            place(c),
            previous.as_ref(),
        ));
    }
    out
}

/// How far before a range to read check-ins so its first check-in of each user has the one
/// before it (for the speed rule).
const LOOKBACK_MS: i64 = 24 * 3_600_000;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Flagged,
    CouldNotInspect,
    Inspected,
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

/// What compliance and the evaluation read: the subtree's cells and checkpoints, and every
/// check-in that can answer a slot overlapping the period, with its flags.
struct Loaded {
    cells: Vec<crate::store::reports::ReportCell>,
    checkpoints: Vec<crate::store::reports::ReportCheckpoint>,
    visits: Vec<Visit>,
    flags: Vec<Vec<Anomaly>>,
    /// Where the slots' reach begins (earlier visits only serve the speed rule).
    from_ms: i64,
    /// The local midnights of the slots' reach.
    days: Days,
}

/// The local midnights of a run of days: dates to times and times to dates without a time-zone
/// lookup each (a city's month is a million check-ins and a million slots).
struct Days {
    first: NaiveDate,
    /// `starts[i]` is the Unix ms of `first + i` days; one more than the days, for the end.
    starts: Vec<i64>,
}

impl Days {
    fn new(cal: &Calendar, from: NaiveDate, to: NaiveDate) -> Days {
        let n = (to - from).num_days().max(0);
        Days {
            first: from,
            starts: (0..=n)
                .map(|i| cal.start_ms(from + Duration::days(i)))
                .collect(),
        }
    }

    fn start_ms(&self, cal: &Calendar, d: NaiveDate) -> i64 {
        usize::try_from((d - self.first).num_days())
            .ok()
            .and_then(|i| self.starts.get(i).copied())
            .unwrap_or_else(|| cal.start_ms(d))
    }

    fn date(&self, cal: &Calendar, ms: i64) -> NaiveDate {
        match (self.starts.first(), self.starts.last()) {
            (Some(&lo), Some(&hi)) if (lo..hi).contains(&ms) => {
                let i = self.starts.partition_point(|&s| s <= ms) - 1;
                self.first + Duration::days(i as i64)
            }
            _ => cal.date(ms),
        }
    }
}

impl Loaded {
    async fn read(
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

    fn compliance(
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
            for code in cp.path.split('/').filter(|s| !s.is_empty()) {
                let e = by_cell.entry(code).or_default();
                e.0.add(&counts);
                e.1 += was_due;
            }
        }

        let root_depth = cells
            .first()
            .map(|c| c.path.matches('/').count())
            .unwrap_or(0);
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
                    depth: c.path.matches('/').count().saturating_sub(root_depth),
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

/// The could-not-inspect reasons, in the order reports list them.
const REASONS: &[&str] = OUTCOMES.split_at(1).1;

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
            columns,
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

/// A value in a rendered table.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// A number.
    Num(f64),
    /// Nothing.
    Empty,
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Num(x) => write!(f, "{x:.4}"),
            Value::Empty => Ok(()),
        }
    }
}

/// A rendered report or ledger: a header, rows, and what it is (written as a second XLSX sheet).
#[derive(Clone, Debug)]
pub struct Table {
    /// Sheet name.
    pub title: String,
    /// Column names.
    pub columns: Vec<&'static str>,
    /// Rows.
    pub rows: Vec<Vec<Value>>,
    /// Key-value lines describing the export.
    pub about: Vec<(String, String)>,
}

impl Table {
    /// As aligned text for a terminal: text left, numbers right.
    pub fn text(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                r.iter()
                    .map(|v| match v {
                        Value::Num(x) => format!("{:.1}%", x * 100.0),
                        Value::Empty => "-".into(),
                        v => v.to_string(),
                    })
                    .collect()
            })
            .collect();
        let widths: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                cells
                    .iter()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .chain([self.columns[i].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |values: &mut dyn Iterator<Item = (usize, &str, bool)>| {
            let mut out = String::new();
            for (i, v, left) in values {
                let pad = widths[i].saturating_sub(v.chars().count());
                if i > 0 {
                    out.push_str("  ");
                }
                if left {
                    out.push_str(v);
                    out.push_str(&" ".repeat(pad));
                } else {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(v);
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = line(&mut self.columns.iter().enumerate().map(|(i, c)| (i, *c, true)));
        for (row, text) in self.rows.iter().zip(&cells) {
            out += &line(
                &mut text
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (i, t.as_str(), matches!(row.get(i), Some(Value::Text(_))))),
            );
        }
        out
    }

    /// Writes the header and rows as CSV.
    pub fn write_csv(&self, w: impl std::io::Write) -> Result<(), csv::Error> {
        let mut out = csv::Writer::from_writer(w);
        out.write_record(&self.columns)?;
        for row in &self.rows {
            out.write_record(row.iter().map(|v| match v {
                // A spreadsheet would run text starting like a formula (a note "=HYPERLINK(…)");
                // a leading apostrophe keeps it text.
                Value::Text(t) if t.starts_with(['=', '+', '-', '@', '\t', '\r']) => {
                    format!("'{t}")
                }
                v => v.to_string(),
            }))?;
        }
        out.flush()?;
        Ok(())
    }

    /// Writes an XLSX workbook: the rows on the first sheet, `about` on a second.
    pub fn write_xlsx(&self, path: &Path) -> Result<(), rust_xlsxwriter::XlsxError> {
        self.workbook()?.save(path)
    }

    /// The XLSX workbook's bytes (for a download).
    pub fn xlsx_bytes(&self) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
        self.workbook()?.save_to_buffer()
    }

    fn workbook(&self) -> Result<rust_xlsxwriter::Workbook, rust_xlsxwriter::XlsxError> {
        use rust_xlsxwriter::{Format, Workbook};
        let mut book = Workbook::new();
        let bold = Format::new().set_bold();
        let sheet = book.add_worksheet();
        sheet.set_name(&self.title)?;
        for (c, name) in self.columns.iter().enumerate() {
            sheet.write_string_with_format(0, c as u16, *name, &bold)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let r = r as u32 + 1;
            for (c, v) in row.iter().enumerate() {
                let c = c as u16;
                match v {
                    Value::Text(s) => sheet.write_string(r, c, s)?,
                    Value::Int(i) => sheet.write_number(r, c, *i as f64)?,
                    Value::Num(x) => sheet.write_number(r, c, *x)?,
                    Value::Empty => sheet,
                };
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        let about = book.add_worksheet();
        about.set_name("about")?;
        for (r, (k, v)) in self.about.iter().enumerate() {
            about.write_string_with_format(r as u32, 0, k, &bold)?;
            about.write_string(r as u32, 1, v)?;
        }
        Ok(book)
    }
}

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
        path.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let covering = |path: &str| -> Vec<String> {
        people
            .iter()
            .filter(|p| p.cells.iter().any(|(_, cp)| path.starts_with(cp.as_str())))
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
            covering(&h.path)
        } else {
            cells_of(&h.path)
        };
        let found = in_period(report.device_time_ms);
        let reporter = if by_person {
            vec![h.reporter.clone()]
        } else {
            here.clone()
        };
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
                    let nested = p
                        .cells
                        .iter()
                        .any(|(_, other)| other != path && path.starts_with(other.as_str()));
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
                for code in c.path.split('/').filter(|s| !s.is_empty()) {
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
    })
}

impl Evaluation {
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
        ];
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
                ]
            })
            .collect();
        Table {
            title: "evaluation".into(),
            columns,
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
}

impl Ledger {
    /// The name on the command line and the sheet.
    pub fn name(self) -> &'static str {
        match self {
            Ledger::Inspections => "inspections",
            Ledger::Patrols => "patrols",
            Ledger::HazardDisposal => "hazard-disposal",
            Ledger::HazardTransfer => "hazard-transfer",
        }
    }
}

/// Builds `ledger` for the subtree of `cell` over `period`.
pub async fn ledger(
    store: &dyn ReportStore,
    cal: &Calendar,
    rules: &AnomalyRules,
    ledger: Ledger,
    period: &Period,
    cell: Option<&str>,
    as_of_ms: i64,
) -> Result<Table, StoreError> {
    let (from_ms, to_ms) = (cal.start_ms(period.start), cal.start_ms(period.end));
    let mut about = vec![
        ("ledger".into(), ledger.name().into()),
        ("period".into(), period.label.clone()),
        ("cell".into(), cell.unwrap_or("(all)").into()),
        ("time zone".into(), cal.zone().into()),
        ("as of".into(), cal.local(as_of_ms)),
    ];
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
                        && c.device_time_ms >= from_ms
                        && (c.kind == "inspection") == (ledger == Ledger::Inspections)
                })
                .collect();
            picked
                .sort_by(|a, b| (a.0.device_time_ms, &a.0.id).cmp(&(b.0.device_time_ms, &b.0.id)));
            let flagged = picked.iter().filter(|(_, f)| !f.is_empty()).count();
            about.push(("check-ins".into(), picked.len().to_string()));
            about.push(("flagged".into(), flagged.to_string()));
            about.push((
                "hazard log entries covered".into(),
                "none (check-in ledger)".into(),
            ));
            (
                CHECK_IN_COLUMNS.to_vec(),
                picked
                    .into_iter()
                    .map(|(c, f)| check_in_row(cal, c, f))
                    .collect(),
            )
        }
        Ledger::HazardDisposal | Ledger::HazardTransfer => {
            let hazards = store.report_hazards(cell, from_ms, to_ms, as_of_ms).await?;
            let (columns, rows, covered) = if ledger == Ledger::HazardDisposal {
                disposal(cal, &hazards, from_ms, as_of_ms)
            } else {
                transfers(cal, &hazards, from_ms, to_ms)
            };
            about.push(("hazards".into(), covered.len().to_string()));
            about.push((
                "hazard log entries covered".into(),
                covered
                    .iter()
                    .map(|h| h.log.len())
                    .sum::<usize>()
                    .to_string(),
            ));
            about.push(("chain digest".into(), chain_digest(&covered)));
            about.push((
                "how to verify".into(),
                "each row's chain_head is the hash of the last entry of that hazard's \
                 append-only log (patrolsync_proto::hazard::chain_hash over the previous hash and \
                 the entry); the digest is SHA-256 over each covered hazard's id, log length and \
                 chain head, in row order"
                    .into(),
            ));
            (columns, rows)
        }
    };
    Ok(Table {
        title: ledger.name().into(),
        columns,
        rows,
        about,
    })
}

const CHECK_IN_COLUMNS: [&str; 22] = [
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

fn check_in_row(cal: &Calendar, c: &LedgerCheckIn, flags: &[Anomaly]) -> Vec<Value> {
    let answers: Vec<serde_json::Value> = serde_json::from_str(&c.answers).unwrap_or_default();
    let issues = answers.iter().filter(|a| a["value"] == "issue").count();
    let answers_text = answers
        .iter()
        .map(|a| {
            let item = a["item"].as_str().unwrap_or_default();
            let value = a["value"].as_str().unwrap_or_default();
            match a["note"].as_str().filter(|n| !n.is_empty()) {
                Some(note) => format!("{item}={value} ({note})"),
                None => format!("{item}={value}"),
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
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

fn ops(h: &LedgerHazard) -> Vec<(patrolsync_proto::hazard::Stamp, HazardOp)> {
    h.log.iter().map(|e| (e.stamp, e.op.clone())).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn when(cal: &Calendar, ms: Option<i64>) -> Value {
    ms.map_or(Value::Empty, |m| Value::Text(cal.local(m)))
}

/// The actor of an event (by its id) in a hazard's log.
fn actor_of(h: &LedgerHazard, event: patrolsync_proto::EventId) -> String {
    h.log
        .iter()
        .find_map(|e| match &e.op {
            HazardOp::Event(ev, _) if ev.id == event => Some(e.actor.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

type Built<'a> = (Vec<&'static str>, Vec<Vec<Value>>, Vec<&'a LedgerHazard>);

fn disposal<'a>(
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
            Value::Text(h.log.last().map(|e| hex(&e.hash)).unwrap_or_default()),
        ]);
        covered.push(h);
    }
    (columns, rows, covered)
}

fn transfers<'a>(
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
                Value::Text(h.log.last().map(|e| hex(&e.hash)).unwrap_or_default()),
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
fn chain_digest(covered: &[&LedgerHazard]) -> String {
    use ring::digest::{Context, SHA256};
    let mut d = Context::new(&SHA256);
    for h in covered {
        d.update(&h.id.to_bytes());
        d.update(&(h.log.len() as u64).to_be_bytes());
        d.update(&h.log.last().map(|e| e.hash).unwrap_or_default());
    }
    hex(d.finish().as_ref())
}

/// Writes `table` as `format` (`csv` or `xlsx`) to `out`, or CSV to stdout when `out` is `None`.
pub fn write(table: &Table, format: &str, out: Option<&Path>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    match (format, out) {
        ("csv", None) => table.write_csv(std::io::stdout().lock())?,
        ("csv", Some(p)) => {
            let f = std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?;
            table.write_csv(std::io::BufWriter::new(f))?;
        }
        ("xlsx", Some(p)) => table
            .write_xlsx(p)
            .with_context(|| format!("write {}", p.display()))?,
        ("xlsx", None) => anyhow::bail!("--format xlsx needs -o FILE"),
        (f, _) => anyhow::bail!("unknown format {f:?}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal() -> Calendar {
        Calendar::from_config(&Reports::default()).expect("defaults are valid")
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn periods_parse_and_bad_ones_say_what_is_accepted() {
        let p: Period = "2026-11".parse().expect("month");
        assert_eq!((p.start, p.end), (d("2026-11-01"), d("2026-12-01")));
        let p: Period = "2026-Q4".parse().expect("quarter");
        assert_eq!((p.start, p.end), (d("2026-10-01"), d("2027-01-01")));
        let p: Period = "2026-11-23..2026-11-29".parse().expect("range");
        assert_eq!((p.start, p.end), (d("2026-11-23"), d("2026-11-30")));
        let p: Period = "2026-02-28".parse().expect("day");
        assert_eq!(p.end, d("2026-03-01"));
        for bad in [
            "2026-13",
            "2026-Q5",
            "November",
            "2026-11-30..2026-11-01",
            "+262142-12-31",
            "+262142-12",
            "-262143-01-01",
            "262142-Q4",
            "1969-12",
        ] {
            let e = bad.parse::<Period>().expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn slots_follow_the_week_start_and_calendar() {
        let c = cal();
        // 2026-11-30 is a Monday.
        assert_eq!(
            c.slot(Cadence::Weekly, d("2026-12-02")),
            (d("2026-11-30"), d("2026-12-07"))
        );
        let r = Reports {
            week_start: "sunday".into(),
            ..Reports::default()
        };
        let sunday = Calendar::from_config(&r).expect("valid");
        assert_eq!(
            sunday.slot(Cadence::Weekly, d("2026-12-02")),
            (d("2026-11-29"), d("2026-12-06"))
        );
        assert_eq!(
            c.slot(Cadence::Quarterly, d("2026-11-15")),
            (d("2026-10-01"), d("2027-01-01"))
        );
        assert_eq!(
            c.slot(Cadence::Monthly, d("2026-02-15")),
            (d("2026-02-01"), d("2026-03-01"))
        );
        // Level defaults and a checkpoint's own cadence.
        assert_eq!(c.cadence(4, None), Cadence::Daily);
        assert_eq!(c.cadence(3, None), Cadence::Weekly);
        assert_eq!(c.cadence(2, None), Cadence::Monthly);
        assert_eq!(c.cadence(1, None), Cadence::Quarterly);
        assert_eq!(c.cadence(4, Some("weekly")), Cadence::Weekly);
    }

    #[test]
    fn days_start_at_local_midnight_in_shanghai() {
        let c = cal();
        // 2026-11-30 00:00 +08:00 is 2026-11-29 16:00 UTC.
        assert_eq!(c.start_ms(d("2026-11-30")), 1_795_968_000_000);
        assert_eq!(c.date(1_795_968_000_000), d("2026-11-30"));
        assert_eq!(c.date(1_795_968_000_000 - 1), d("2026-11-29"));
        assert_eq!(c.local(1_795_968_000_000), "2026-11-30 00:00:00");
    }

    #[test]
    fn the_day_index_agrees_with_the_calendar() {
        let c = cal();
        let days = Days::new(&c, d("2026-09-28"), d("2027-01-01"));
        for ms in [
            c.start_ms(d("2026-09-28")),
            c.start_ms(d("2026-10-31")) - 1,
            c.start_ms(d("2026-11-01")),
            c.start_ms(d("2026-12-31")) + 3_600_000,
            // Outside the index: falls back to the calendar.
            c.start_ms(d("2027-03-01")) + 5,
            c.start_ms(d("2026-01-01")),
        ] {
            assert_eq!(days.date(&c, ms), c.date(ms), "{ms}");
        }
        for day in ["2026-09-28", "2026-11-15", "2027-01-01", "2027-02-02"] {
            assert_eq!(days.start_ms(&c, d(day)), c.start_ms(d(day)), "{day}");
        }
    }

    #[test]
    fn bad_configuration_names_the_key() {
        let r = Reports {
            time_zone: "Mars/Olympus".into(),
            ..Reports::default()
        };
        assert!(
            Calendar::from_config(&r)
                .expect_err("zone")
                .contains("reports.time_zone")
        );
        let r = Reports {
            week_start: "someday".into(),
            ..Reports::default()
        };
        assert!(
            Calendar::from_config(&r)
                .expect_err("day")
                .contains("reports.week_start")
        );
        let r = Reports {
            cadence: vec!["hourly".into()],
            ..Reports::default()
        };
        assert!(
            Calendar::from_config(&r)
                .expect_err("cadence")
                .contains("hourly")
        );
    }
}
