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
//!
//! `compliance` (cadence compliance and roll-ups), `evaluation` (the evaluation ledger of
//! users and cells), `ledgers` (the 台账 exports), `forms` (a ledger dressed as the official
//! form), `load` (what they read, flagged), `table` (one table, rendered as text, CSV, XLSX or
//! JSON).

mod compliance;
mod evaluation;
mod forms;
mod ledgers;
mod load;
mod table;
mod tasks;
mod visits;

pub use crate::calendar::{Cadence, Calendar, Moment, Period};
pub use compliance::*;
pub use evaluation::*;
pub use forms::form_date;
pub use ledgers::*;
pub use table::*;
pub use tasks::*;
pub use visits::*;

use patrolsync_proto::anomaly::{self, Anomaly, AnomalyRules, Observed};
use patrolsync_proto::hazard::HazardOp;

use crate::store::reports::{LedgerCheckIn, LedgerHazard, Visit};
use load::*;

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

/// A localized report's `about` values in `lang`: what the report is (`report_id`), the
/// whole grid, the rate's definition.
fn about_in(table: &mut Table, lang: patrolsync_i18n::Lang, report_id: &str) {
    let (report, cell, rate) = (
        lang.text("about-report"),
        lang.text("about-cell"),
        lang.text("about-rate"),
    );
    for (key, value) in &mut table.about {
        if *key == report {
            *value = lang.text(report_id);
        } else if *key == cell && value == "(all)" {
            *value = lang.text("ledger-all-cells");
        } else if *key == rate {
            *value = lang.text("about-rate-text");
        }
    }
}

fn ops(h: &LedgerHazard) -> Vec<(patrolsync_proto::hazard::Stamp, HazardOp)> {
    h.log.iter().map(|e| (e.stamp, e.op.clone())).collect()
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
