//! What a device holds, and how that changes: scope grants and revokes as the server writes them
//! into a device's feed, and the pure rule that turns one set of assigned cells into another.
//!
//! A user's scope is the subtrees of the cells they are assigned; an agency's is the hazards its
//! agency holds in their folded state. When either changes, the server appends a [`ScopeChange`]
//! addressed to the devices it concerns. A grant comes after everything the device needs to hold
//! what entered its scope (its backfill); a revoke names what left it, and what stays.

use prost::Message;

use crate::checkin::Invalid;
use crate::grid::CellPath;
use crate::ids::HazardId;
use crate::wire;

wire_enum!(
    /// Why something entered or left a device's scope.
    ScopeReason, ScopeReason, "scope reason", {
    /// An admin assigned the cell (assign, people import, enrollment).
    Assigned = "assigned",
    /// An admin took the cell away.
    Unassigned = "unassigned",
    /// The cell was retired.
    Retired = "retired",
    /// The hazard was transferred to the agency, and the transfer holds in the hazard's fold.
    Transferred = "transferred",
    /// The agency returned the hazard to the grid.
    Returned = "returned",
    /// The transfer lost to an earlier change when the hazard's log was folded.
    TransferLost = "transfer_lost",
    /// The hazard is held by another agency now.
    TransferredElsewhere = "transferred_elsewhere",
    /// A routing rule sent the hazard to the feed's user or agency as the responsible party.
    Routed = "routed",
});

/// The pull protocol of this version (`PullRequest.protocol`). 2: scope feeds, backfill paged
/// with `backfill_after`, and reset when a cursor's feed is not the user's any more. 3: the
/// feed may hold information reports (八必报: hazard categories 11–13 and the `ACKNOWLEDGE`
/// event), which a protocol-2 app could not fold; such an app is sent the feed without them.
/// 4: hazards routed to a responsible party (roles 5 and 6 act on them, with the `ACCEPT`
/// event) and their reminders, and the scope reason `ROUTED`; a protocol-3 app is sent the feed
/// without the routed hazards' entries and reminders.
pub const PULL_PROTOCOL: u32 = 4;

/// The oldest pull protocol a server still answers.
pub const PULL_PROTOCOL_MIN: u32 = 2;

/// What entered or left the scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeTarget {
    /// A cell and its subtree: its cells, checkpoints and hazards.
    Cell {
        /// The cell's code.
        code: String,
        /// Its path, `/S1/S1-C1/`.
        path: String,
    },
    /// One hazard (an agency's scope).
    Hazard(HazardId),
}

/// One entry of a device's scope feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeChange {
    /// `true`: it entered the scope (everything needed to hold it came just before); `false`:
    /// it left.
    pub grant: bool,
    /// What.
    pub target: ScopeTarget,
    /// Why; `None` for a reason this version does not know (a newer server's).
    pub reason: Option<ScopeReason>,
    /// Revokes of a cell: cells still in scope under (or above) it; what lies under one of them
    /// stays.
    pub keep: Vec<String>,
}

impl ScopeChange {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// The wire message.
    pub fn to_wire(&self) -> wire::ScopeChange {
        let (cell, path, hazard_id) = match &self.target {
            ScopeTarget::Cell { code, path } => (code.clone(), path.clone(), Vec::new()),
            ScopeTarget::Hazard(h) => (String::new(), String::new(), h.to_bytes()),
        };
        wire::ScopeChange {
            kind: if self.grant {
                wire::ScopeChangeKind::Grant
            } else {
                wire::ScopeChangeKind::Revoke
            } as i32,
            cell,
            path,
            hazard_id,
            reason: self.reason.map_or(0, ScopeReason::to_wire),
            keep: self.keep.clone(),
        }
    }

    /// From the wire message; a kind, target or reason this version does not know is refused.
    pub fn from_wire(w: wire::ScopeChange) -> Result<ScopeChange, Invalid> {
        let grant = match wire::ScopeChangeKind::try_from(w.kind) {
            Ok(wire::ScopeChangeKind::Grant) => true,
            Ok(wire::ScopeChangeKind::Revoke) => false,
            _ => {
                return Err(Invalid::new(
                    "scope.kind",
                    "unknown_value",
                    format!("unknown scope change kind {}", w.kind),
                ));
            }
        };
        let target = if !w.hazard_id.is_empty() {
            ScopeTarget::Hazard(HazardId::from_slice(&w.hazard_id).ok_or_else(|| {
                Invalid::new("scope.hazard_id", "bad_id", "a hazard id is 16 bytes")
            })?)
        } else if !w.cell.is_empty() && CellPath::parse(&w.path).is_ok_and(|p| p.code() == w.cell) {
            ScopeTarget::Cell {
                code: w.cell,
                path: w.path,
            }
        } else {
            return Err(Invalid::new(
                "scope.cell",
                "missing",
                "a scope change names a cell and its path, or a hazard",
            ));
        };
        // A reason this version does not know still moves the scope.
        let reason = ScopeReason::from_wire(w.reason).ok().flatten();
        Ok(ScopeChange {
            grant,
            target,
            reason,
            keep: w.keep,
        })
    }

    /// From protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<ScopeChange, Invalid> {
        let w = wire::ScopeChange::decode(bytes)
            .map_err(|e| Invalid::new("scope", "corrupt", e.to_string()))?;
        ScopeChange::from_wire(w)
    }
}

/// Whether `path` lies in the subtree of one of `paths` (paths are `/S1/S1-C1/`, so a prefix is
/// an ancestor or the cell itself).
pub fn covers(paths: &[String], path: &str) -> bool {
    paths.iter().any(|p| path.starts_with(p.as_str()))
}

/// How a user's scope moves from the cells `old` to the cells `new` (paths).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeDiff {
    /// Cells newly assigned, each granted (its backfill leaves out what is already held).
    pub grants: Vec<String>,
    /// Cells no longer assigned, each revoked with the assigned cells that keep part or all of
    /// it (ancestors keep it whole; descendants keep their subtrees).
    pub revokes: Vec<(String, Vec<String>)>,
}

impl ScopeDiff {
    /// Nothing moves.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty() && self.revokes.is_empty()
    }
}

/// The grants and revokes that take a user from `old` to `new`. Grants come first: a revoke
/// written after them keeps what a new grant covers, and a grant's backfill can leave out what
/// the cells it replaces already brought.
pub fn diff(old: &[String], new: &[String]) -> ScopeDiff {
    let mut grants: Vec<String> = new.iter().filter(|p| !old.contains(p)).cloned().collect();
    grants.sort();
    grants.dedup();
    let mut revokes: Vec<(String, Vec<String>)> = old
        .iter()
        .filter(|p| !new.contains(p))
        .map(|p| {
            let mut keep: Vec<String> = new
                .iter()
                .filter(|n| p.starts_with(n.as_str()) || n.starts_with(p.as_str()))
                .map(|n| CellPath::from(n.as_str()).code().to_owned())
                .collect();
            keep.sort();
            keep.dedup();
            (p.clone(), keep)
        })
        .collect();
    revokes.sort();
    revokes.dedup();
    ScopeDiff { grants, revokes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn a_new_cell_is_granted_and_a_lost_one_revoked_with_what_stays() {
        let d = diff(&v(&["/S1/S1-C1/"]), &v(&["/S1/S1-C2/"]));
        assert_eq!(d.grants, v(&["/S1/S1-C2/"]));
        assert_eq!(d.revokes, vec![("/S1/S1-C1/".to_owned(), vec![])]);
    }

    #[test]
    fn moving_up_keeps_the_old_cell_and_moving_down_keeps_the_new_one() {
        // Assigned the street instead of its community: the community stays, under the street.
        let up = diff(&v(&["/S1/S1-C1/"]), &v(&["/S1/"]));
        assert_eq!(up.grants, v(&["/S1/"]));
        assert_eq!(up.revokes, vec![("/S1/S1-C1/".to_owned(), v(&["S1"]))]);
        // The other way: the street goes, the community stays.
        let down = diff(&v(&["/S1/"]), &v(&["/S1/S1-C1/"]));
        assert_eq!(down.revokes, vec![("/S1/".to_owned(), v(&["S1-C1"]))]);
    }

    #[test]
    fn the_same_cells_move_nothing() {
        let same = v(&["/S1/", "/S2/S2-C1/"]);
        assert!(diff(&same, &same).is_empty());
    }

    #[test]
    fn a_sibling_with_a_common_prefix_is_not_covered() {
        // `/S1/S1-C1/` is not under `/S1/S1-C` (paths end in a slash for this reason).
        assert!(!covers(&v(&["/S1/S1-C1/"]), "/S1/S1-C10/"));
        assert!(covers(&v(&["/S1/"]), "/S1/S1-C10/K1/"));
    }

    #[test]
    fn scope_changes_round_trip_and_bad_ones_are_refused() {
        let cell = ScopeChange {
            grant: false,
            target: ScopeTarget::Cell {
                code: "S1-C1".into(),
                path: "/S1/S1-C1/".into(),
            },
            reason: Some(ScopeReason::Unassigned),
            keep: vec!["S1-C1-K1".into()],
        };
        assert_eq!(ScopeChange::decode(&cell.encode()), Ok(cell));
        let hazard = ScopeChange {
            grant: true,
            target: ScopeTarget::Hazard(HazardId(uuid::Uuid::from_u128(7))),
            reason: Some(ScopeReason::Transferred),
            keep: vec![],
        };
        assert_eq!(ScopeChange::decode(&hazard.encode()), Ok(hazard.clone()));
        // A reason from a newer server: still a grant, its reason unknown.
        let newer = wire::ScopeChange {
            reason: 99,
            ..hazard.to_wire()
        };
        assert_eq!(
            ScopeChange::from_wire(newer).map(|c| (c.grant, c.reason)),
            Ok((true, None))
        );
        let mut w = wire::ScopeChange {
            kind: wire::ScopeChangeKind::Grant as i32,
            cell: "S1-C1".into(),
            path: "/S2/S1-C1/".into(),
            reason: ScopeReason::Assigned.to_wire(),
            ..Default::default()
        };
        w.path = "/S2/OTHER/".into();
        assert_eq!(
            ScopeChange::from_wire(w.clone()).map_err(|e| e.reason),
            Err("missing"),
            "a path that does not end in the cell"
        );
        w.path = "/S2/S1-C1/".into();
        w.kind = 9;
        assert_eq!(
            ScopeChange::from_wire(w).map_err(|e| e.reason),
            Err("unknown_value")
        );
    }
}
