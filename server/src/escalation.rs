//! Escalation: an open hazard past its deadline goes up the grid, to its cell's parent once
//! overdue and one level higher every interval after, up to the top cell; each level once per
//! deadline. Pure rules; the store applies them (`store::sql::hazards`) and the server runs
//! them every `escalation.check_every`.

use patrolsync_proto::CellPath;

/// One level an overdue hazard is escalated to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    /// 1 for the parent cell, 2 for the one above, …
    pub level: u32,
    /// The cell escalated to.
    pub to_cell: String,
    /// Its path (devices covering it receive the escalation).
    pub to_path: CellPath,
}

/// The levels due at `now_ms` for a hazard in the cell at `path` whose deadline is
/// `deadline_ms`, beyond the `reached` levels it already has: level 1 once overdue, one more
/// per `interval_ms` (at least 1 ms), never above the top cell.
pub fn due(
    path: &CellPath,
    deadline_ms: i64,
    now_ms: i64,
    interval_ms: i64,
    reached: u32,
) -> Vec<Due> {
    if now_ms <= deadline_ms {
        return Vec::new();
    }
    let ancestors = path.ancestors();
    let levels = 1 + (now_ms - deadline_ms) / interval_ms.max(1);
    let top = i64::try_from(ancestors.len()).unwrap_or(i64::MAX);
    let due = u32::try_from(levels.min(top)).unwrap_or(0);
    ancestors
        .into_iter()
        .zip(1..=due)
        .skip(reached as usize)
        .map(|((code, to_path), level)| Due {
            level,
            to_cell: code.to_owned(),
            to_path,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn building() -> CellPath {
        CellPath::root()
            .child("S1")
            .child("S1-C1")
            .child("S1-C1-K1")
            .child("S1-C1-K1-B1")
    }

    fn levels(d: &[Due]) -> Vec<(u32, &str)> {
        d.iter().map(|d| (d.level, d.to_cell.as_str())).collect()
    }

    #[test]
    fn nothing_before_or_at_the_deadline() {
        assert!(due(&building(), 10 * HOUR, 9 * HOUR, HOUR, 0).is_empty());
        assert!(due(&building(), 10 * HOUR, 10 * HOUR, HOUR, 0).is_empty());
    }

    #[test]
    fn the_parent_once_overdue_then_a_level_each_interval_up_to_the_top() {
        let d = due(&building(), 0, 1, 24 * HOUR, 0);
        assert_eq!(levels(&d), [(1, "S1-C1-K1")]);
        assert_eq!(d[0].to_path.as_str(), "/S1/S1-C1/S1-C1-K1/");
        assert_eq!(
            levels(&due(&building(), 0, 24 * HOUR, 24 * HOUR, 0)),
            [(1, "S1-C1-K1"), (2, "S1-C1")]
        );
        // A week late: capped at the top cell.
        assert_eq!(
            levels(&due(&building(), 0, 7 * 24 * HOUR, 24 * HOUR, 0)),
            [(1, "S1-C1-K1"), (2, "S1-C1"), (3, "S1")]
        );
    }

    #[test]
    fn levels_already_reached_are_not_made_again() {
        assert_eq!(
            levels(&due(&building(), 0, 48 * HOUR, 24 * HOUR, 2)),
            [(3, "S1")]
        );
        assert!(due(&building(), 0, 48 * HOUR, 24 * HOUR, 3).is_empty());
    }

    #[test]
    fn a_hazard_in_a_top_cell_has_nowhere_to_go() {
        assert!(due(&CellPath::root().child("S1"), 0, 100 * HOUR, HOUR, 0).is_empty());
    }

    #[test]
    fn a_zero_interval_counts_as_one_millisecond() {
        assert_eq!(due(&building(), 0, 2, 0, 0).len(), 3);
    }
}
