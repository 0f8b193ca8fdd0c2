//! Dates in the configured time zone: cadences (daily, weekly from the configured week start,
//! monthly, quarterly), the slot of a date under each, report periods (`2026-11`, `2026-Q4`,
//! `2026-W48`, …) and moments (`--as-of`). Depends on nothing else of the server.

use std::str::FromStr;

use chrono::{Datelike, Duration, NaiveDate, TimeZone, Weekday};
use chrono_tz::Tz;
use patrolsync_i18n::{Text, text};
use serde::Serialize;

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

impl Cadence {
    /// The cadences' names, as configs and imports give them.
    pub const NAMES: &'static [&'static str] = &["daily", "weekly", "monthly", "quarterly"];
}

impl FromStr for Cadence {
    type Err = Text;
    fn from_str(s: &str) -> Result<Self, Text> {
        match s {
            "daily" => Ok(Cadence::Daily),
            "weekly" => Ok(Cadence::Weekly),
            "monthly" => Ok(Cadence::Monthly),
            "quarterly" => Ok(Cadence::Quarterly),
            _ => Err(text!("cal-cadence", value = s)),
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
    /// A calendar in `time_zone` (IANA), with weeks from `week_start` and one cadence per grid
    /// level, big first. The error names the setting (`reports.…`) that is wrong.
    pub fn new(time_zone: &str, week_start: &str, cadence: &[String]) -> Result<Calendar, Text> {
        let tz = time_zone
            .parse::<Tz>()
            .map_err(|_| text!("cal-time-zone", value = time_zone))?;
        let week_start = week_start
            .parse::<Weekday>()
            .map_err(|_| text!("cal-week-start", value = week_start))?;
        if cadence.is_empty() {
            return Err(text!("cal-cadence-empty"));
        }
        let by_level = cadence
            .iter()
            .map(|c| {
                c.parse()
                    .map_err(|_| text!("cal-config-cadence", value = c))
            })
            .collect::<Result<_, Text>>()?;
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
    pub fn moment(&self, s: &str) -> Result<i64, Text> {
        let bad = || text!("cal-moment", value = s, zone = self.zone());
        let years = || text!("cal-years", value = s);
        let t = s.trim();
        let ms = if let Ok(t) = chrono::DateTime::parse_from_rfc3339(t) {
            t.timestamp_millis()
        } else if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            bounded_year(d.year()).ok_or_else(years)?;
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
            bounded_year(local.year()).ok_or_else(years)?;
            // A local time skipped by a DST jump does not exist; one repeated is the first.
            self.tz
                .from_local_datetime(&local)
                .earliest()
                .ok_or_else(|| text!("cal-skipped", value = s, zone = self.zone()))?
                .timestamp_millis()
        };
        match self.tz.timestamp_millis_opt(ms).single() {
            Some(t) if bounded_year(t.year()).is_some() => Ok(ms),
            _ => Err(years()),
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
pub(crate) fn bounded_year(y: i32) -> Option<i32> {
    (1970..=9999).contains(&y).then_some(y)
}

pub(crate) fn add_months(d: NaiveDate, n: u32) -> NaiveDate {
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
    type Err = Text;
    /// `2026-11` (a month), `2026-Q4` (a quarter), `2026-11-23` (a day), or
    /// `2026-11-23..2026-11-29` (days, both included; e.g. a week).
    fn from_str(s: &str) -> Result<Period, Text> {
        let bad = || text!("cal-period", value = s);
        let in_range = |y: i32| bounded_year(y).is_some();
        let years = || text!("cal-period-years", value = s);
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
                return Err(text!("cal-period-backwards", value = s));
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

/// The local midnights of a run of days: dates to times and times to dates without a time-zone
/// lookup each (a city's month is a million check-ins and a million slots).
pub(crate) struct Days {
    first: NaiveDate,
    /// `starts[i]` is the Unix ms of `first + i` days; one more than the days, for the end.
    starts: Vec<i64>,
}

impl Days {
    pub(super) fn new(cal: &Calendar, from: NaiveDate, to: NaiveDate) -> Days {
        let n = (to - from).num_days().max(0);
        Days {
            first: from,
            starts: (0..=n)
                .map(|i| cal.start_ms(from + Duration::days(i)))
                .collect(),
        }
    }

    pub(super) fn start_ms(&self, cal: &Calendar, d: NaiveDate) -> i64 {
        usize::try_from((d - self.first).num_days())
            .ok()
            .and_then(|i| self.starts.get(i).copied())
            .unwrap_or_else(|| cal.start_ms(d))
    }

    pub(super) fn date(&self, cal: &Calendar, ms: i64) -> NaiveDate {
        match (self.starts.first(), self.starts.last()) {
            (Some(&lo), Some(&hi)) if (lo..hi).contains(&ms) => {
                let i = self.starts.partition_point(|&s| s <= ms) - 1;
                self.first + Duration::days(i as i64)
            }
            _ => cal.date(ms),
        }
    }
}

/// A Unix time in ms as RFC 3339 in UTC, to the second (`2026-12-05T10:09:00Z`).
pub fn time_text(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> Vec<String> {
        ["quarterly", "monthly", "weekly", "daily"]
            .map(String::from)
            .to_vec()
    }

    fn cal() -> Calendar {
        Calendar::new("Asia/Shanghai", "monday", &levels()).expect("valid")
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
            let e = bad.parse::<Period>().expect_err(bad).to_string();
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
        let sunday = Calendar::new("Asia/Shanghai", "sunday", &levels()).expect("valid");
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
}
