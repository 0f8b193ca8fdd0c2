//! The public progress page (动态信息公开): per street and per community, cadence compliance and
//! hazard closure for this month and last, at `/public/` (a page) and `/public/progress.json`,
//! with no token. Off unless `[public] enabled`; it may also listen on an address of its own
//! (`[public] listen`), so the admin HTTP stays on loopback.
//!
//! What it shows is an aggregate and nothing else: cell codes and names (place names), counts
//! and rates; none of the names the reports read along (reporters, actors) leaves this module,
//! and no phone, device, household, unit or position is read. A count below `min_count` is
//! withheld with its rate, and so is a street's when exactly one of its communities is withheld
//! (else the street minus the others would give it away). The aggregate is computed at most
//! once per `refresh` whatever strangers ask, successful or not: a request meanwhile is served
//! what was last computed (or refused while nothing was).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Datelike;
use patrolsync_i18n::Lang;
use patrolsync_proto::hazard::{Status, fold};
use serde::{Deserialize, Serialize};

use crate::report::{self, Calendar, Period};
use crate::store::{AdminStore, StoreError};

/// Counts and a rate; the counts (and the rate with them) are `None` when suppressed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ratio {
    /// What was owed: compliance slots due, or hazards reported.
    pub of: Option<u64>,
    /// What was done: slots inspected, or hazards closed.
    pub done: Option<u64>,
    /// done / of.
    pub rate: Option<f64>,
    /// Withheld because fewer than `min_count` were owed.
    pub suppressed: bool,
}

impl Ratio {
    fn new(of: u64, done: u64, min_count: u64) -> Ratio {
        if of < min_count {
            return Ratio {
                of: None,
                done: None,
                rate: None,
                suppressed: true,
            };
        }
        Ratio {
            of: Some(of),
            done: Some(done),
            rate: Some(done as f64 / of as f64),
            suppressed: false,
        }
    }
}

/// One period of an area.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AreaPeriod {
    /// Cadence compliance: slots due, inspected.
    pub compliance: Ratio,
    /// Hazards reported in the period (information reports apart), and of those closed by now.
    pub hazards_closed: Ratio,
}

/// A street or a community.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Area {
    /// Cell code.
    pub cell: String,
    /// Cell name (a place name).
    pub name: String,
    /// 1 street, 2 community.
    pub level: u8,
    /// The street a community is in.
    pub parent: Option<String>,
    /// This month so far.
    pub current: AreaPeriod,
    /// Last month.
    pub last: AreaPeriod,
}

/// The page's figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    /// When they were computed (Unix ms): every figure stands at this moment.
    pub as_of_ms: i64,
    /// The same, local.
    pub as_of: String,
    /// The time zone months are in.
    pub time_zone: String,
    /// This month (`2026-12`).
    pub current_period: String,
    /// Last month.
    pub last_period: String,
    /// Counts below this are withheld.
    pub min_count: u64,
    /// Streets and communities in path order.
    pub areas: Vec<Area>,
}

/// The month `date` is in, and the one before, as periods.
fn months(date: chrono::NaiveDate) -> (Period, Period) {
    let label = |y: i32, m: u32| format!("{y}-{m:02}");
    let (y, m) = (date.year(), date.month());
    let (ly, lm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let parse = |s: String| s.parse::<Period>().expect("a month is a period");
    (parse(label(y, m)), parse(label(ly, lm)))
}

/// Computes the figures as of `now_ms`.
pub async fn progress(
    store: &dyn AdminStore,
    reports: &crate::config::Reports,
    min_count: u64,
    now_ms: i64,
) -> Result<Progress, StoreError> {
    let cal = reports
        .calendar()
        .map_err(|t| StoreError::Invalid(t.clone()))?;
    let rules = reports.anomaly_rules();
    let (current, last) = months(cal.date(now_ms));
    let mut per_period = Vec::new();
    for period in [&current, &last] {
        let compliance = report::compliance(store, &cal, &rules, period, None, now_ms).await?;
        let hazards = hazard_closure(store, &cal, period, now_ms).await?;
        per_period.push((compliance, hazards));
    }
    let mut areas = Vec::new();
    for row in per_period[0].0.rows.iter().filter(|r| r.level <= 2) {
        let figures = |i: usize| {
            let (compliance, hazards): &(report::Compliance, HashMap<String, (u64, u64)>) =
                &per_period[i];
            let c = compliance
                .rows
                .iter()
                .find(|r| r.cell == row.cell)
                .map(|r| (r.counts.due, r.counts.inspected))
                .unwrap_or_default();
            let (reported, closed) = hazards.get(&row.cell).copied().unwrap_or_default();
            AreaPeriod {
                compliance: Ratio::new(c.0, c.1, min_count),
                hazards_closed: Ratio::new(reported, closed, min_count),
            }
        };
        areas.push(Area {
            cell: row.cell.clone(),
            name: row.name.clone(),
            level: row.level,
            parent: None,
            current: figures(0),
            last: figures(1),
        });
    }
    // A community's street: the nearest street row above it in path order.
    let mut street = None;
    for a in &mut areas {
        if a.level == 1 {
            street = Some(a.cell.clone());
        } else {
            a.parent = street.clone();
        }
    }
    withhold_complements(&mut areas);
    Ok(Progress {
        as_of_ms: now_ms,
        as_of: cal.local(now_ms),
        time_zone: cal.zone().to_owned(),
        current_period: current.label,
        last_period: last.label,
        min_count,
        areas,
    })
}

/// A street's figure less its shown communities' would give away the one community withheld:
/// when exactly one is, the street's is withheld too.
fn withhold_complements(areas: &mut [Area]) {
    fn ratio(a: &mut Area, last: bool, closure: bool) -> &mut Ratio {
        let p = if last { &mut a.last } else { &mut a.current };
        if closure {
            &mut p.hazards_closed
        } else {
            &mut p.compliance
        }
    }
    let streets: Vec<String> = areas
        .iter()
        .filter(|a| a.level == 1)
        .map(|a| a.cell.clone())
        .collect();
    for street in streets {
        for (last, closure) in [(false, false), (false, true), (true, false), (true, true)] {
            let withheld = areas
                .iter_mut()
                .filter(|a| a.parent.as_deref() == Some(street.as_str()))
                .filter_map(|a| ratio(a, last, closure).suppressed.then_some(()))
                .count();
            if withheld == 1
                && let Some(s) = areas.iter_mut().find(|a| a.cell == street)
            {
                *ratio(s, last, closure) = Ratio {
                    of: None,
                    done: None,
                    rate: None,
                    suppressed: true,
                };
            }
        }
    }
}

/// Per cell (each counting its subtree): hazards reported in `period` that are not information
/// reports, and how many of those are closed at `now_ms`.
async fn hazard_closure(
    store: &dyn AdminStore,
    cal: &Calendar,
    period: &Period,
    now_ms: i64,
) -> Result<HashMap<String, (u64, u64)>, StoreError> {
    let (from_ms, to_ms) = (cal.start_ms(period.start), cal.start_ms(period.end));
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    for h in store.report_hazards(None, from_ms, to_ms, now_ms).await? {
        let ops: Vec<_> = h.log.iter().map(|e| (e.stamp, e.op.clone())).collect();
        let state = fold(h.id, &ops);
        let Some((report, _)) = &state.report else {
            continue;
        };
        if report.category.is_information()
            || !(from_ms..to_ms).contains(&report.device_time_ms)
            || state.status == Status::Merged
        {
            continue;
        }
        let closed = u64::from(state.status == Status::Closed);
        for code in h.path.codes() {
            let e = out.entry(code.to_owned()).or_default();
            e.0 += 1;
            e.1 += closed;
        }
    }
    Ok(out)
}

/// What the public routes need.
#[derive(Clone)]
pub struct PublicState {
    /// The database.
    pub db: Arc<dyn AdminStore>,
    /// Periods and cadences.
    pub reports: crate::config::Reports,
    /// Counts below this are withheld.
    pub min_count: u64,
    /// How long computed figures are served.
    pub refresh_ms: i64,
    /// The figures last computed, and when the last computation was tried (Unix ms).
    pub cache: Arc<tokio::sync::Mutex<Cached>>,
}

/// What the public routes remember between requests.
#[derive(Default)]
pub struct Cached {
    figures: Option<Arc<Progress>>,
    tried_at_ms: Option<i64>,
}

impl PublicState {
    /// The figures: computed at most once per `refresh` (one computation at a time; requests
    /// meanwhile wait for it), counting failed tries, so a stranger cannot make the server do
    /// the work more often; between tries, the last figures computed (none after a failure
    /// with nothing before: `None`).
    pub async fn figures(&self, now: impl Fn() -> i64) -> Option<Arc<Progress>> {
        let mut cache = self.cache.lock().await;
        // Read after the lock: a request that waited for a computation sees it as fresh.
        let now_ms = now();
        let due = cache
            .tried_at_ms
            .is_none_or(|t| now_ms - t >= self.refresh_ms || now_ms < t);
        if due {
            cache.tried_at_ms = Some(now_ms);
            match progress(self.db.as_ref(), &self.reports, self.min_count, now_ms).await {
                Ok(p) => cache.figures = Some(Arc::new(p)),
                Err(e) => tracing::error!(error = %e, "public progress: computing the figures"),
            }
        }
        cache.figures.clone()
    }
}

/// The public routes: `/public/` and `/public/progress.json`.
pub fn router(state: PublicState) -> Router {
    Router::new()
        .route("/public/", get(page))
        .route("/public/progress.json", get(json))
        .with_state(state)
}

async fn json(State(s): State<PublicState>) -> Response {
    match s.figures(crate::clock::now_ms).await {
        Some(p) => (
            [(header::CACHE_CONTROL, "public, max-age=60")],
            Json(p.as_ref().clone()),
        )
            .into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// `?lang=` of the page.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    lang: Option<String>,
}

/// The page's rows, worded.
struct Row {
    indent: bool,
    cell: String,
    name: String,
    cells: Vec<String>,
}

#[derive(askama::Template)]
#[template(path = "public.html")]
struct Page {
    lang: &'static str,
    other_lang: &'static str,
    other_lang_name: String,
    title: String,
    subtitle: String,
    note: String,
    columns: Vec<String>,
    rows: Vec<Row>,
}

async fn page(State(s): State<PublicState>, Query(q): Query<PageQuery>) -> Response {
    let lang = Lang::from_tag(q.lang.as_deref().unwrap_or_default());
    let Some(p) = s.figures(crate::clock::now_ms).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let t = |id: &str| lang.text(id);
    let shown = |r: &Ratio| match (r.suppressed, r.rate, r.done, r.of) {
        (true, ..) => t("public-withheld"),
        (false, Some(rate), Some(done), Some(of)) => {
            format!("{:.1}% ({done}/{of})", rate * 100.0)
        }
        _ => "—".to_owned(),
    };
    let rows = p
        .areas
        .iter()
        .map(|a| Row {
            indent: a.level > 1,
            cell: a.cell.clone(),
            name: a.name.clone(),
            cells: vec![
                shown(&a.current.compliance),
                shown(&a.last.compliance),
                shown(&a.current.hazards_closed),
                shown(&a.last.hazards_closed),
            ],
        })
        .collect();
    let arg = |k: &'static str, v: String| (k, patrolsync_i18n::Value::from(v));
    let page = Page {
        lang: lang.tag(),
        other_lang: if lang == Lang::En { "zh-CN" } else { "en" },
        other_lang_name: t("public-other-lang"),
        title: t("public-title"),
        subtitle: lang.format(
            "public-subtitle",
            &[
                arg("as_of", p.as_of.clone()),
                arg("zone", p.time_zone.clone()),
            ],
        ),
        note: lang.format("public-note", &[arg("min", p.min_count.to_string())]),
        columns: vec![
            t("public-col-area"),
            lang.format(
                "public-col-compliance",
                &[arg("period", p.current_period.clone())],
            ),
            lang.format(
                "public-col-compliance",
                &[arg("period", p.last_period.clone())],
            ),
            lang.format(
                "public-col-closure",
                &[arg("period", p.current_period.clone())],
            ),
            lang.format(
                "public-col-closure",
                &[arg("period", p.last_period.clone())],
            ),
        ],
        rows,
    };
    match askama::Template::render(&page) {
        Ok(html) => (
            [
                (header::CACHE_CONTROL, "public, max-age=60"),
                (
                    header::CONTENT_SECURITY_POLICY,
                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
                ),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "public page");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_month_and_the_one_before_across_a_year() {
        let d = |y, m, day| chrono::NaiveDate::from_ymd_opt(y, m, day).expect("date");
        let (now, before) = months(d(2027, 1, 15));
        assert_eq!(
            (now.label.as_str(), before.label.as_str()),
            ("2027-01", "2026-12")
        );
        let (now, before) = months(d(2026, 12, 1));
        assert_eq!(
            (now.label.as_str(), before.label.as_str()),
            ("2026-12", "2026-11")
        );
    }

    #[test]
    fn a_street_is_withheld_when_it_would_give_away_its_one_withheld_community() {
        let period = |of| AreaPeriod {
            compliance: Ratio::new(of, of, 5),
            hazards_closed: Ratio::new(10, 5, 5),
        };
        let area = |cell: &str, level, parent: Option<&str>, of| Area {
            cell: cell.into(),
            name: cell.into(),
            level,
            parent: parent.map(Into::into),
            current: period(of),
            last: period(of),
        };
        let mut areas = vec![
            area("S1", 1, None, 30),
            area("S1-C1", 2, Some("S1"), 27),
            area("S1-C2", 2, Some("S1"), 3),
            area("S2", 1, None, 14),
            area("S2-C1", 2, Some("S2"), 2),
            area("S2-C2", 2, Some("S2"), 2),
            area("S2-C3", 2, Some("S2"), 10),
        ];
        withhold_complements(&mut areas);
        let shown: Vec<(&str, bool)> = areas
            .iter()
            .map(|a| (a.cell.as_str(), a.current.compliance.suppressed))
            .collect();
        assert_eq!(
            shown,
            [
                // 30 - 27 would give away S1-C2's 3.
                ("S1", true),
                ("S1-C1", false),
                ("S1-C2", true),
                // Two withheld: their sum is all the street gives away.
                ("S2", false),
                ("S2-C1", true),
                ("S2-C2", true),
                ("S2-C3", false),
            ]
        );
        assert!(areas.iter().all(|a| !a.current.hazards_closed.suppressed));
    }

    #[test]
    fn a_small_count_is_withheld_with_its_rate() {
        assert_eq!(
            Ratio::new(4, 4, 5),
            Ratio {
                of: None,
                done: None,
                rate: None,
                suppressed: true
            }
        );
        assert_eq!(Ratio::new(5, 4, 5).rate, Some(0.8));
    }
}
