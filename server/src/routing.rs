//! Routing rules (隐患直报): which responsible party a reported hazard goes to, by its category
//! and cell (`patrolsync admin routing import rules.toml`), and when that party is reminded
//! (督促) of its deadline. For example:
//!
//! ```toml
//! # Reminders to the routed party, relative to the hazard's deadline.
//! [reminders]
//! before = ["1d", "2h"]
//! after = ["0s", "1d", "3d"]
//!
//! [[rule]]
//! name = "K1 物业: 消防通道"
//! cell = "S1-C1-K1"            # the rule holds in this cell's subtree
//! categories = ["blocked_fire_lane", "blocked_evacuation"]   # absent: every hazard category
//! user = "wuye-k1"             # the party: a property_company or community user …
//! # agency = "fire_brigade"    # … or an agency: police_station, fire_brigade …
//! # unit = true                # … or the responsible user of the key unit at the checkpoint
//! ```
//!
//! A report takes the rule of the deepest cell covering its cell that names its category;
//! between rules of one cell, the first in the file. A `unit` rule routes only a hazard reported
//! at a checkpoint of a key unit that names its responsible user; otherwise the next rule is
//! tried. With no rule a hazard goes to its cell's managers alone, as every hazard does.
//! Information reports (八必报 information kinds) are never routed. Routing is decided once,
//! when the report arrives, with the rules then in force; importing new rules changes only what
//! comes after. Every import that changes something is a new version, and the old ones are kept.

use std::path::Path;

use patrolsync_i18n::{Text, text};
use patrolsync_proto::grid::covers;
use patrolsync_proto::hazard::{Agency, HazardCategory};
use serde::{Deserialize, Serialize};

/// The most rules one set holds.
pub const MAX_RULES: usize = 10_000;
/// The most reminder points before, and after, a deadline.
pub const MAX_REMINDERS: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    reminders: RemindersFile,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemindersFile {
    #[serde(default)]
    before: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    name: String,
    cell: String,
    #[serde(default)]
    categories: Vec<String>,
    user: Option<String>,
    agency: Option<String>,
    #[serde(default)]
    unit: bool,
}

/// Who a rule sends a hazard to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Party {
    /// A user (a property company's or community office's account), by name.
    User {
        /// The user's name.
        name: String,
    },
    /// An agency's users.
    Agency {
        /// `police_station` or `fire_brigade`.
        agency: String,
    },
    /// The responsible user of the key unit at the hazard's checkpoint.
    Unit,
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::User { name } => write!(f, "user {name}"),
            Party::Agency { agency } => write!(f, "agency {agency}"),
            Party::Unit => f.write_str("the key unit's responsible user"),
        }
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// What the admin called it (may be empty).
    pub name: String,
    /// The cell whose subtree it holds in.
    pub cell: String,
    /// That cell's path (filled in when the rules are published).
    pub cell_path: String,
    /// The hazard categories it routes; empty for every hazard category.
    pub categories: Vec<String>,
    /// Whom it routes to.
    pub party: Party,
}

impl Rule {
    /// Whether the rule holds for a hazard of `category` in the cell at `cell_path`.
    pub fn matches(&self, cell_path: &str, category: HazardCategory) -> bool {
        covers(&self.cell_path, cell_path)
            && (self.categories.is_empty()
                || self.categories.iter().any(|c| c == category.as_str()))
    }
}

/// A set of rules as published: what an import writes, one version each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSet {
    /// The rules, in the file's order.
    pub rules: Vec<Rule>,
    /// Reminder points before the deadline, ms, largest first.
    pub remind_before_ms: Vec<i64>,
    /// Reminder points at or after the deadline, ms, smallest first.
    pub remind_after_ms: Vec<i64>,
}

impl RuleSet {
    /// The reminder points relative to the deadline (negative: before it), earliest first.
    pub fn offsets(&self) -> Vec<i64> {
        let mut all: Vec<i64> = self
            .remind_before_ms
            .iter()
            .map(|b| -b)
            .chain(self.remind_after_ms.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The rules that hold for a hazard of `category` in the cell at `cell_path`, the one to
    /// try first first: the deepest cell, then the file's order. Information reports match none.
    pub fn candidates(&self, cell_path: &str, category: HazardCategory) -> Vec<(usize, &Rule)> {
        if category.is_information() {
            return Vec::new();
        }
        let mut hits: Vec<(usize, &Rule)> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.matches(cell_path, category))
            .collect();
        hits.sort_by_key(|(i, r)| (std::cmp::Reverse(r.cell_path.len()), *i));
        hits
    }
}

/// A published version of the rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Published {
    /// From 1.
    pub version: u32,
    /// When, ms.
    pub published_at_ms: i64,
    /// The rules.
    pub set: RuleSet,
}

/// Why a rules file was not published: nothing changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RulesFileError(pub Text);

/// Reads and checks a rules file's shape (TOML); cells and users are checked when it is
/// published, against the grid and the people.
pub fn read(path: &Path) -> Result<RuleSet, RulesFileError> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path)
        .map_err(|e| RulesFileError(text!("file-unreadable", file = file, error = e)))?;
    parse(&source, &file)
}

/// Parses and checks rules from TOML `source` (named `file` in errors).
pub fn parse(source: &str, file: &str) -> Result<RuleSet, RulesFileError> {
    let parsed: RulesFile = toml::from_str(source).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        let line = source[..at].matches('\n').count() + 1;
        let column = source[..at]
            .rsplit('\n')
            .next()
            .map_or(0, |l| l.chars().count())
            + 1;
        RulesFileError(text!(
            "tpl-toml",
            file = file,
            line = line,
            column = column,
            error = e.message()
        ))
    })?;
    if parsed.rules.len() > MAX_RULES {
        return Err(RulesFileError(text!(
            "routing-too-many",
            file = file,
            count = parsed.rules.len(),
            limit = MAX_RULES
        )));
    }
    let points = |list: &[String], which: &str| -> Result<Vec<i64>, RulesFileError> {
        if list.len() > MAX_REMINDERS {
            return Err(RulesFileError(text!(
                "routing-too-many-reminders",
                file = file,
                which = which,
                count = list.len(),
                limit = MAX_REMINDERS
            )));
        }
        list.iter()
            .map(|p| {
                humantime::parse_duration(p)
                    .ok()
                    .and_then(|d| i64::try_from(d.as_millis()).ok())
                    .filter(|ms| *ms <= MAX_REMINDER_MS)
                    .ok_or_else(|| {
                        RulesFileError(text!(
                            "routing-bad-reminder",
                            file = file,
                            which = which,
                            value = p
                        ))
                    })
            })
            .collect()
    };
    let mut before = points(&parsed.reminders.before, "before")?;
    let mut after = points(&parsed.reminders.after, "after")?;
    before.sort_unstable_by(|a, b| b.cmp(a));
    before.dedup();
    after.sort_unstable();
    after.dedup();
    let mut rules = Vec::with_capacity(parsed.rules.len());
    for (i, r) in parsed.rules.into_iter().enumerate() {
        let n = i + 1;
        let bad = |field: &str, value: &str, known: &str| {
            RulesFileError(text!(
                "routing-rule-value",
                file = file,
                n = n,
                field = field,
                value = patrolsync_i18n::printable(value),
                known = known
            ))
        };
        if r.cell.trim().is_empty() {
            return Err(bad("cell", "", "a cell code"));
        }
        let mut categories = Vec::with_capacity(r.categories.len());
        for c in &r.categories {
            let known: Vec<&str> = HazardCategory::ALL
                .iter()
                .filter(|c| !c.is_information())
                .map(|c| c.as_str())
                .collect();
            match c.parse::<HazardCategory>() {
                Ok(cat) if !cat.is_information() => {
                    if !categories.contains(&c.to_string()) {
                        categories.push(cat.as_str().to_owned());
                    }
                }
                _ => return Err(bad("categories", c, &known.join(", "))),
            }
        }
        let party = match (r.user, r.agency, r.unit) {
            (Some(name), None, false) if !name.trim().is_empty() => Party::User { name },
            (None, Some(agency), false) => match agency.parse::<Agency>() {
                Ok(a) => Party::Agency {
                    agency: a.as_str().to_owned(),
                },
                Err(_) => return Err(bad("agency", &agency, "police_station, fire_brigade")),
            },
            (None, None, true) => Party::Unit,
            _ => {
                return Err(RulesFileError(text!(
                    "routing-rule-party",
                    file = file,
                    n = n
                )));
            }
        };
        rules.push(Rule {
            name: r.name,
            cell: r.cell.trim().to_owned(),
            cell_path: String::new(),
            categories,
            party,
        });
    }
    Ok(RuleSet {
        rules,
        remind_before_ms: before,
        remind_after_ms: after,
    })
}

/// The furthest a reminder point lies from a deadline, ms (a year).
pub const MAX_REMINDER_MS: i64 = 366 * 86_400_000;

/// The reminder point of `offsets` (earliest first) to send at `now_ms` for a deadline of
/// `deadline_ms`, given the points already sent for it: the latest point reached, if it is later
/// than every point sent. Points passed without a reminder (the server was down, the hazard came
/// late, the deadline moved) are not sent one by one: the party hears once where it stands.
pub fn due_reminder(offsets: &[i64], deadline_ms: i64, now_ms: i64, sent: &[i64]) -> Option<i64> {
    let latest = offsets
        .iter()
        .copied()
        .filter(|o| deadline_ms.saturating_add(*o) <= now_ms)
        .max()?;
    sent.iter().all(|s| *s < latest).then_some(latest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn set(source: &str) -> RuleSet {
        let mut s = parse(source, "rules.toml").expect("parses");
        for r in &mut s.rules {
            // Paths as the grid would give them: a code per level, separated by its parent's.
            let mut path = String::from("/");
            let parts: Vec<&str> = r.cell.split('-').collect();
            for i in 0..parts.len() {
                path.push_str(&parts[..=i].join("-"));
                path.push('/');
            }
            r.cell_path = path;
        }
        s
    }

    const RULES: &str = r#"
        [reminders]
        before = ["2h", "1d"]
        after = ["1d", "0s"]

        [[rule]]
        name = "street fire brigade"
        cell = "S1"
        agency = "fire_brigade"

        [[rule]]
        name = "K1 property"
        cell = "S1-C1-K1"
        categories = ["blocked_fire_lane", "blocked_evacuation"]
        user = "wuye-k1"

        [[rule]]
        cell = "S1-C1-K1"
        categories = ["blocked_fire_lane"]
        user = "shequ-c1"

        [[rule]]
        cell = "S1-C1"
        unit = true
    "#;

    fn hit(s: &RuleSet, path: &str, c: HazardCategory) -> Vec<String> {
        s.candidates(path, c)
            .into_iter()
            .map(|(i, r)| format!("{i}:{}", r.party))
            .collect()
    }

    #[test]
    fn the_deepest_cell_wins_then_the_files_order() {
        let s = set(RULES);
        assert_eq!(
            hit(
                &s,
                "/S1/S1-C1/S1-C1-K1/S1-C1-K1-B1/",
                HazardCategory::BlockedFireLane
            ),
            [
                "1:user wuye-k1",
                "2:user shequ-c1",
                "3:the key unit's responsible user",
                "0:agency fire_brigade"
            ]
        );
        // Another category in the same building: only the broader rules.
        assert_eq!(
            hit(&s, "/S1/S1-C1/S1-C1-K1/", HazardCategory::Electrical),
            ["3:the key unit's responsible user", "0:agency fire_brigade"]
        );
        // Outside every rule's subtree: nothing, the managers alone.
        assert!(hit(&s, "/S2/", HazardCategory::BlockedFireLane).is_empty());
        // Information reports are never routed.
        assert!(hit(&s, "/S1/", HazardCategory::UnstableFactor).is_empty());
    }

    #[test]
    fn reminders_are_sorted_and_signed() {
        let s = set(RULES);
        assert_eq!(s.remind_before_ms, [24 * H, 2 * H]);
        assert_eq!(s.remind_after_ms, [0, 24 * H]);
        assert_eq!(s.offsets(), [-24 * H, -2 * H, 0, 24 * H]);
    }

    #[test]
    fn each_point_once_when_reached() {
        let offsets = [-24 * H, -2 * H, 0, 24 * H];
        let deadline = 100 * H;
        assert_eq!(due_reminder(&offsets, deadline, 75 * H, &[]), None);
        assert_eq!(due_reminder(&offsets, deadline, 76 * H, &[]), Some(-24 * H));
        assert_eq!(due_reminder(&offsets, deadline, 90 * H, &[-24 * H]), None);
        assert_eq!(
            due_reminder(&offsets, deadline, 98 * H, &[-24 * H]),
            Some(-2 * H)
        );
        assert_eq!(
            due_reminder(&offsets, deadline, 110 * H, &[-24 * H, -2 * H, 0]),
            None
        );
        assert_eq!(
            due_reminder(&offsets, deadline, 124 * H, &[-24 * H, -2 * H, 0]),
            Some(24 * H)
        );
        assert_eq!(due_reminder(&offsets, deadline, 500 * H, &offsets), None);
    }

    #[test]
    fn points_missed_are_one_reminder_of_the_latest() {
        let offsets = [-24 * H, -2 * H, 0, 24 * H];
        // Reported (or the server back) an hour before its deadline: the "2 h before" point
        // alone, and the "1 day before" one never after it.
        assert_eq!(due_reminder(&offsets, 100 * H, 99 * H, &[]), Some(-2 * H));
        assert_eq!(due_reminder(&offsets, 100 * H, 99 * H, &[-2 * H]), None);
        // A day after a deadline nobody was reminded of: only the last point.
        assert_eq!(due_reminder(&offsets, 100 * H, 124 * H, &[]), Some(24 * H));
    }

    #[test]
    fn a_rule_names_exactly_one_party_and_known_values() {
        let err = |src: &str| {
            parse(src, "rules.toml")
                .expect_err("refused")
                .0
                .in_lang(patrolsync_i18n::Lang::En)
        };
        let both = err("[[rule]]\ncell = \"S1\"\nuser = \"a\"\nagency = \"fire_brigade\"\n");
        assert!(
            both.contains("rule 1") && both.contains("exactly one"),
            "{both}"
        );
        let none = err("[[rule]]\ncell = \"S1\"\n");
        assert!(
            none.contains("rule 1") && none.contains("exactly one"),
            "{none}"
        );
        let agency = err("[[rule]]\ncell = \"S1\"\nagency = \"army\"\n");
        assert!(
            agency.contains("army") && agency.contains("police_station"),
            "{agency}"
        );
        let info =
            err("[[rule]]\ncell = \"S1\"\ncategories = [\"unstable_factor\"]\nuser = \"a\"\n");
        assert!(
            info.contains("unstable_factor") && info.contains("blocked_fire_lane"),
            "{info}"
        );
        let reminder = err("[reminders]\nafter = [\"soon\"]\n");
        assert!(
            reminder.contains("soon") && reminder.contains("after"),
            "{reminder}"
        );
        let unknown = err("[[rule]]\ncell = \"S1\"\nuser = \"a\"\nowner = \"b\"\n");
        assert!(unknown.contains("line 4"), "{unknown}");
    }
}
