//! The ledgers as the official forms: in Chinese, the columns the forms name, dates as
//! 2026年11月29日, codes as the words on the form, a row number first, and a title above the
//! header (the grid and the period). English keeps the machine column names and values.

use patrolsync_i18n::{Lang, Value as Arg};

use super::*;

/// How a ledger column's values read on the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Column {
    /// A local time (`2026-11-29 14:05:00`), on the form `2026年11月29日 14:05`.
    Time,
    /// A code from a vocabulary: the catalog's word for `{prefix}-{code}`.
    Term(&'static str),
    /// `;`-separated codes of a vocabulary, each its word.
    Terms(&'static str),
    /// As it is.
    Plain,
}

fn column(name: &str) -> Column {
    match name {
        "time" | "received_at" | "reported_at" | "deadline" | "notified_at" | "rectified_at"
        | "closed_at" | "transferred_at" | "agency_deadline" | "accepted_at" | "returned_at"
        | "fixed_at" | "called_at" => Column::Time,
        "kind" => Column::Term("kind"),
        "method" => Column::Term("method"),
        "outcome" => Column::Term("outcome"),
        "visit_outcome" => Column::Term("visit-outcome"),
        "group" => Column::Term("household-group"),
        "anomalies" => Column::Terms("anomaly"),
        "category" => Column::Term("category"),
        "severity" => Column::Term("severity"),
        "handling" => Column::Term("handling"),
        "status" => Column::Term("state"),
        "task_status" => Column::Term("task-status"),
        "urgency" => Column::Term("task-urgency"),
        "result" => Column::Term("task-result"),
        "on_time" => Column::Term("ontime"),
        "agency" | "transferred_to" => Column::Term("agency"),
        _ => Column::Plain,
    }
}

/// Year, month and day as `lang` writes them: the Chinese form without leading zeros
/// (2026年11月2日), English as ISO 8601 (2026-11-02).
fn date_args(lang: Lang, date: chrono::NaiveDate) -> Vec<(&'static str, Arg<'static>)> {
    use chrono::Datelike as _;
    let (month, day) = match lang {
        Lang::En => (format!("{:02}", date.month()), format!("{:02}", date.day())),
        _ => (date.month().to_string(), date.day().to_string()),
    };
    vec![
        ("year", Arg::from(date.year().to_string())),
        ("month", Arg::from(month)),
        ("day", Arg::from(day)),
    ]
}

/// A local date as the form writes it in `lang`.
pub fn form_date(lang: Lang, date: chrono::NaiveDate) -> String {
    lang.format("date", &date_args(lang, date))
}

/// A local time as [`Calendar::local`] writes it (`2026-11-29 14:05:00`), as the form writes
/// it in `lang` (`2026年11月29日 14:05`).
fn form_time(lang: Lang, local: &str) -> Option<String> {
    let t = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").ok()?;
    let mut args = date_args(lang, t.date());
    args.push(("time", Arg::from(t.format("%H:%M").to_string())));
    Some(lang.format("date-time", &args))
}

/// Dresses a ledger built by [`ledger`] as the official form in `lang`: the title (and the
/// sheet's name), a line with the grid and the period above the header, and in Chinese the
/// form's column names, a row number first, words for codes and dates as the form writes them.
pub(super) fn dress(
    mut table: Table,
    which: Ledger,
    lang: Lang,
    period: &Period,
    cell: Option<&str>,
    unit: Option<String>,
) -> Table {
    let title = lang.text(&format!("ledger-{}", which.name()));
    let grid = cell.map_or_else(|| lang.text("ledger-all-cells"), str::to_owned);
    let last_day = period.end.pred_opt().unwrap_or(period.end);
    let line = lang.format(
        if unit.is_some() {
            "ledger-title-unit-period"
        } else {
            "ledger-title-period"
        },
        &[
            ("grid", Arg::from(unit.unwrap_or(grid))),
            ("from", Arg::from(form_date(lang, period.start))),
            ("to", Arg::from(form_date(lang, last_day))),
        ],
    );
    table.heading = vec![title.clone(), line];
    if lang == Lang::En {
        return table;
    }
    table.title = title;
    let kinds: Vec<Column> = table.columns.iter().map(|c| column(c)).collect();
    table.columns = std::iter::once(lang.text("col-no"))
        .chain(table.columns.iter().map(|c| lang.text(&format!("col-{c}"))))
        .collect();
    for (n, row) in table.rows.iter_mut().enumerate() {
        for (value, kind) in row.iter_mut().zip(&kinds) {
            let Value::Text(text) = value else { continue };
            let dressed = match kind {
                Column::Time => form_time(lang, text),
                Column::Term(prefix) if !text.is_empty() => Some(lang.word_or_key(prefix, text)),
                Column::Terms(prefix) if !text.is_empty() => Some(
                    text.split(';')
                        .map(|code| lang.word_or_key(prefix, code))
                        .collect::<Vec<_>>()
                        .join("；"),
                ),
                _ => None,
            };
            if let Some(d) = dressed {
                *text = d;
            }
        }
        row.insert(0, Value::Int(n as i64 + 1));
    }
    table
}
