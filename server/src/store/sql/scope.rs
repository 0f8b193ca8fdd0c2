//! Scope as state: which cells and hazards each device's feed holds, since which change-log
//! position, and the pull that serves a feed from it.
//!
//! A feed (an *audience*: `user:ID`, or `agency:NAME` for agency users) holds targets — a cell
//! subtree by its path, or one hazard by its change-log key — over intervals of the change log,
//! kept in `scope_grants`. Assignments (assign, people import, enrollment, retirement) move a
//! user's cells; the folded state of a hazard moves which agency holds it; a routing rule grants
//! a new hazard to the feed of the party it names, for good. Each move appends a
//! grant or revoke entry addressed to that feed alone, and the grant row opens or closes at that
//! entry's position. An ordinary entry is visible to a feed if a grant covers it at its own
//! position; what came before a grant is sent as the grant's *backfill*, right before the grant,
//! so bootstrap and a later assignment are one path and a device never holds half an entity.

use std::collections::BTreeMap;

use patrolsync_proto::hazard::{EventKind, HazardState};
use patrolsync_proto::scope::{ScopeChange, ScopeTarget, diff};

use super::*;

/// The grant row a scope entry opens (a grant) or closes (a revoke) at its position.
#[derive(Clone, Debug)]
pub(crate) struct ScopeRow {
    /// The feed it is addressed to.
    pub(super) audience: String,
    /// `path` or `hazard`.
    pub(super) target_kind: &'static str,
    /// The path, or the hazard's change-log key.
    pub(super) target: String,
    pub(super) grant: bool,
    pub(super) reason: ScopeReason,
}

impl ScopeRow {
    /// Opens or closes the grant row at `seq`, the position of its entry.
    pub(crate) async fn record(
        &self,
        tx: &mut Transaction<'_, Any>,
        seq: i64,
    ) -> Result<(), StoreError> {
        if self.grant {
            sqlx::query(
                "INSERT INTO scope_grants (audience, target_kind, target, granted_seq) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&self.audience)
            .bind(self.target_kind)
            .bind(&self.target)
            .bind(seq)
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query(
                "UPDATE scope_grants SET revoked_seq = $4, revoke_reason = $5 \
                 WHERE audience = $1 AND target_kind = $2 AND target = $3 AND revoked_seq IS NULL",
            )
            .bind(&self.audience)
            .bind(self.target_kind)
            .bind(&self.target)
            .bind(seq)
            .bind(self.reason.as_str())
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}

/// A scope entry for `audience`, filed under `cell_path`.
fn scope_entry(
    audience: &str,
    cell_path: &str,
    change: ScopeChange,
    target_kind: &'static str,
    target: String,
) -> PendingChange {
    let row = ScopeRow {
        audience: audience.to_owned(),
        target_kind,
        target: target.clone(),
        grant: change.grant,
        reason: change.reason.unwrap_or(ScopeReason::Unassigned),
    };
    PendingChange {
        cell_path: cell_path.to_owned(),
        kind: ChangeKind::Scope,
        entity_key: format!("scope:{audience}:{target}"),
        payload: change.encode(),
        device: String::new(),
        role: Role::Admin.as_str().to_owned(),
        hlc: Hlc::default(),
        supersedes: false,
        scope: Some(row),
        audience: None,
        wake: None,
    }
}

/// A grant or revoke of one hazard to `audience`'s feed.
pub(super) fn hazard_grant(
    audience: &str,
    cell_path: &str,
    hazard: HazardId,
    change: ScopeChange,
) -> PendingChange {
    scope_entry(
        audience,
        cell_path,
        change,
        "hazard",
        format!("hazard:{hazard}"),
    )
}

/// The scope entries when the agency holding `hazard` (by its fold) moves from `from` to `to`:
/// the old agency's feed loses it, the new one's gains it (its whole log comes as the backfill).
/// The feed a routing rule sent the hazard to (`routed`) keeps it whatever the fold says, so
/// neither its loss nor its gain touches that feed.
pub(super) fn agency_moves(
    hazard: HazardId,
    cell_path: &str,
    from: Option<&str>,
    to: Option<&str>,
    routed: Option<&str>,
    state: &HazardState,
) -> Vec<PendingChange> {
    let key = format!("hazard:{hazard}");
    let routed_here = |agency: &str| routed == Some(format!("agency:{agency}").as_str());
    let mut out = Vec::new();
    if let Some(old) = from.filter(|a| !routed_here(a)) {
        // Why it left: handed to another agency, returned (the latest applied transfer or
        // return is a return), or the transfer no longer holds in the fold.
        let last_move = state
            .history
            .iter()
            .rev()
            .filter(|e| e.conflict.is_none())
            .find(|e| matches!(e.kind, EventKind::Transfer | EventKind::AgencyReturn));
        let reason = match (to, last_move.map(|e| e.kind)) {
            (Some(_), _) => ScopeReason::TransferredElsewhere,
            (None, Some(EventKind::AgencyReturn)) => ScopeReason::Returned,
            (None, _) => ScopeReason::TransferLost,
        };
        let change = ScopeChange {
            grant: false,
            target: ScopeTarget::Hazard(hazard),
            reason: Some(reason),
            keep: Vec::new(),
        };
        out.push(scope_entry(
            &format!("agency:{old}"),
            cell_path,
            change,
            "hazard",
            key.clone(),
        ));
    }
    if let Some(new) = to.filter(|a| !routed_here(a)) {
        let change = ScopeChange {
            grant: true,
            target: ScopeTarget::Hazard(hazard),
            reason: Some(ScopeReason::Transferred),
            keep: Vec::new(),
        };
        out.push(scope_entry(
            &format!("agency:{new}"),
            cell_path,
            change,
            "hazard",
            key,
        ));
    }
    out
}

/// One grant row of a feed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Grant {
    path: bool,
    target: String,
    granted: u64,
    revoked: Option<u64>,
}

impl Grant {
    /// Held right before position `at` (and still at it).
    fn active_at(&self, at: u64) -> bool {
        self.granted < at && self.revoked.is_none_or(|r| r > at)
    }
}

/// An entry of a hazard the feed (`$4`) held when the entry was written.
const HAZARD_GRANTED: &str = "EXISTS (SELECT 1 FROM scope_grants g \
     WHERE g.audience = $4 AND g.target_kind = 'hazard' AND g.target = changes.entity_key \
     AND changes.seq > g.granted_seq \
     AND (g.revoked_seq IS NULL OR changes.seq < g.revoked_seq))";

/// Columns of a change row, in the order [`change_row`] reads them.
const CHANGE_COLUMNS: &str = "seq, kind, payload, device_id, role, hlc_wall_ms, hlc_logical";

fn change_row(r: &sqlx::any::AnyRow) -> Result<ChangeRow, StoreError> {
    Ok(ChangeRow {
        seq: r.try_get::<i64, _>(0)? as u64,
        kind: r.try_get(1)?,
        payload: r.try_get(2)?,
        device: r.try_get(3)?,
        role: r.try_get(4)?,
        hlc: Hlc {
            wall_ms: r.try_get::<i64, _>(5)? as u64,
            logical: r.try_get::<i64, _>(6)? as u32,
        },
    })
}

impl SqlStore {
    /// Brings `user`'s cell grants in line with their assignments to cells not retired (none for
    /// agency users, whose scope is the grid and their agency's hazards, nor for the parties of
    /// routing rules, who hold the hazards sent to them): the grant and revoke
    /// entries to append. An assignment to a retired cell stays for the record (reports), but
    /// no longer gives scope.
    pub(crate) async fn rescope_user(
        &self,
        tx: &mut Transaction<'_, Any>,
        user: i64,
        revoke_reason: ScopeReason,
    ) -> Result<Vec<PendingChange>, StoreError> {
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE id = $1")
            .bind(user)
            .fetch_optional(&mut **tx)
            .await?;
        // Agencies and the parties routing rules name hold hazards, not cells.
        let holds_cells = role
            .as_deref()
            .and_then(|r| r.parse::<Role>().ok())
            .is_none_or(|r| r != Role::Agency && !r.is_party());
        let desired: Vec<String> = if !holds_cells {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "SELECT c.path FROM assignments a JOIN grid_cells c ON c.id = a.cell_id \
                 WHERE a.user_id = $1 AND c.retired_at IS NULL",
            )
            .bind(user)
            .fetch_all(&mut **tx)
            .await?
        };
        let audience = format!("user:{user}");
        let held: Vec<String> = sqlx::query_scalar(
            "SELECT target FROM scope_grants \
             WHERE audience = $1 AND target_kind = 'path' AND revoked_seq IS NULL",
        )
        .bind(&audience)
        .fetch_all(&mut **tx)
        .await?;
        let d = diff(&held, &desired);
        let cell = |path: &str| ScopeTarget::Cell {
            code: CellPath::from(path).code().to_owned(),
            path: path.to_owned(),
        };
        let mut out = Vec::with_capacity(d.grants.len() + d.revokes.len());
        for path in d.grants {
            let change = ScopeChange {
                grant: true,
                target: cell(&path),
                reason: Some(ScopeReason::Assigned),
                keep: Vec::new(),
            };
            out.push(scope_entry(&audience, &path, change, "path", path.clone()));
        }
        for (path, keep) in d.revokes {
            let change = ScopeChange {
                grant: false,
                target: cell(&path),
                reason: Some(revoke_reason),
                keep,
            };
            out.push(scope_entry(&audience, &path, change, "path", path.clone()));
        }
        Ok(out)
    }

    /// The feed's cell grants, and its hazard grants after `after` (all of them for `None`): an
    /// agency's grow with every transfer, and a pull from `after` on only needs those to come.
    async fn grants_of(
        &self,
        audience: &str,
        after: Option<u64>,
    ) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(
            "SELECT target_kind, target, granted_seq, revoked_seq FROM scope_grants \
             WHERE audience = $1 AND (target_kind = 'path' OR granted_seq > $2)",
        )
        .bind(audience)
        .bind(after.map_or(-1, seq))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Grant {
                    path: r.try_get::<String, _>(0)? == "path",
                    target: r.try_get(1)?,
                    granted: r.try_get::<i64, _>(2)?.max(0) as u64,
                    revoked: r.try_get::<Option<i64>, _>(3)?.map(|v| v.max(0) as u64),
                })
            })
            .collect()
    }

    /// The feed of `scope` after `cursor` (and inside a backfill, after `backfill_after`); see
    /// [`super::Store::pull`].
    pub(crate) async fn pull_feed(
        &self,
        scope: &PullScope,
        cursor: u64,
        backfill_after: u64,
        limit: u32,
        compact: bool,
    ) -> Result<PullPage, StoreError> {
        // Read the head first: every position up to it is committed (positions follow commit
        // order), so bounding the page by it can never skip a later commit.
        let head = self.cursor().await?;
        if head <= cursor {
            return Ok(PullPage {
                changes: Vec::new(),
                next_cursor: cursor,
                has_more: false,
                backfill_after: 0,
            });
        }
        let grants = self.grants_of(&scope.audience, Some(cursor)).await?;
        // A user's feed holds hazards one by one only if a routing rule ever sent it one: the
        // test on each entry is spared every other feed.
        let hazard_grants = scope.agency.is_none()
            && sqlx::query_scalar::<_, i64>(
                "SELECT 1 FROM scope_grants WHERE audience = $1 AND target_kind = 'hazard' LIMIT 1",
            )
            .bind(&scope.audience)
            .fetch_optional(self.pool())
            .await?
            .is_some();
        let limit = limit.max(1) as usize;
        let mut page: Vec<ChangeRow> = Vec::new();
        let mut bytes = 0usize;
        let (mut at, mut backfill) = (cursor, backfill_after);
        let (next_cursor, has_more, backfill_after) = loop {
            // The next grant of this feed: ordinary entries stop right before it.
            let next = grants
                .iter()
                .filter(|g| g.granted > at && g.granted <= head)
                .min_by_key(|g| g.granted);
            let upto = next.map_or(head, |g| g.granted - 1);
            if upto > at {
                let room = limit - page.len();
                let rows = self
                    .feed_rows(scope, hazard_grants, &grants, at, upto, room + 1, compact)
                    .await?;
                if !rows.is_empty() {
                    // Ordinary entries first: this page does not go on from inside a backfill.
                    backfill = 0;
                }
                let fit = fitting(&rows, page.is_empty(), &mut bytes);
                if rows.len() > room || fit < rows.len() {
                    let take = room.min(fit);
                    page.extend(rows.into_iter().take(take));
                    // Nothing taken: the page is full (of earlier entries) right here.
                    let last = if take == 0 { None } else { page.last() };
                    break (last.map_or(at, |c| c.seq), true, 0);
                }
                page.extend(rows);
                at = upto;
            }
            let Some(grant) = next else {
                break (head, false, 0);
            };
            // What entered the scope at the grant, then the grant itself.
            let room = limit - page.len();
            if room == 0 {
                break (at, true, backfill);
            }
            let rows = self
                .backfill_rows(&grants, grant, backfill, room + 1)
                .await?;
            let fit = fitting(&rows, page.is_empty(), &mut bytes);
            if rows.len() >= room || fit < rows.len() {
                let served = rows.len().min(room).min(fit);
                if served == 0 {
                    // Full before the backfill's next entry: it goes on from where it was.
                    break (at, true, backfill);
                }
                page.extend(rows.into_iter().take(served));
                let after = page.last().map_or(backfill, |c| c.seq.max(backfill));
                break (at, true, after);
            }
            page.extend(rows);
            let entry = sqlx::query(&format!(
                "SELECT {CHANGE_COLUMNS} FROM changes WHERE seq = $1"
            ))
            .bind(seq(grant.granted))
            .fetch_optional(self.pool())
            .await?;
            if let Some(r) = entry {
                page.push(change_row(&r)?);
            }
            at = grant.granted;
            backfill = 0;
        };
        #[cfg(feature = "test-util")]
        self.faults().hit(points::PULL_PAGE).await?;
        Ok(PullPage {
            changes: page,
            next_cursor,
            has_more,
            backfill_after,
        })
    }

    /// Ordinary entries in `(after, upto]` visible to the feed at their own positions, and the
    /// feed's own scope entries; at most `limit`.
    #[allow(clippy::too_many_arguments)]
    async fn feed_rows(
        &self,
        scope: &PullScope,
        hazard_grants: bool,
        grants: &[Grant],
        after: u64,
        upto: u64,
        limit: usize,
        compact: bool,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        // Placeholders after the four fixed ones, in order.
        enum Bind {
            Text(String),
            Int(i64),
        }
        let mut binds: Vec<Bind> = Vec::new();
        let mut next = |b: Bind| {
            binds.push(b);
            binds.len() + 4
        };
        let visible = if scope.agency.is_some() {
            // The whole grid with its key units (the police station supervises their register),
            // and the hazards the agency held when each entry was written.
            format!(
                "kind IN ('{}', '{}', '{}', '{}') OR {HAZARD_GRANTED}",
                ChangeKind::Cell,
                ChangeKind::Checkpoint,
                ChangeKind::Template,
                ChangeKind::Unit
            )
        } else {
            // Checklist templates are filed under `/`, for everyone; cells under the paths held
            // when each entry was written. A grant held over the whole window `(after, upto]`
            // is a test on the path alone, and those are grouped by the length of their path
            // into one `IN` list each: a city-wide manager's 115 streets are one list, not 115
            // alternatives each evaluated on every entry of the log.
            let mut conds = vec!["cell_path = '/'".to_owned()];
            let mut whole: BTreeMap<usize, Vec<String>> = BTreeMap::new();
            for g in grants
                .iter()
                .filter(|g| g.path && g.granted < upto && g.revoked.is_none_or(|r| r > after))
            {
                if g.granted <= after && g.revoked.is_none_or(|r| r > upto) {
                    whole
                        .entry(g.target.chars().count())
                        .or_default()
                        .push(g.target.clone());
                    continue;
                }
                let path = next(Bind::Text(g.target.clone()));
                let from = next(Bind::Int(seq(g.granted)));
                let to = next(Bind::Int(g.revoked.map_or(i64::MAX, seq)));
                conds.push(format!(
                    "(substr(cell_path, 1, length(${path})) = ${path} AND seq > ${from} AND seq < ${to})"
                ));
            }
            for (len, paths) in whole {
                let list: Vec<String> = paths
                    .into_iter()
                    .map(|p| format!("${}", next(Bind::Text(p))))
                    .collect();
                conds.push(format!(
                    "substr(cell_path, 1, {len}) IN ({})",
                    list.join(", ")
                ));
            }
            // Hazards a routing rule sent to this user, at their own positions.
            if hazard_grants {
                conds.push(HAZARD_GRANTED.to_owned());
            }
            conds.join(" OR ")
        };
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE seq > $1 AND seq <= $2 AND NOT replay {} \
             AND (audience = $4 OR (audience IS NULL AND ({visible}))) ORDER BY seq LIMIT $3",
            if compact { "AND NOT superseded" } else { "" },
        );
        let mut q = sqlx::query(&sql)
            .bind(seq(after))
            .bind(seq(upto))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(&scope.audience);
        for b in binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Int(i) => q.bind(i),
            };
        }
        q.fetch_all(self.pool())
            .await?
            .iter()
            .map(change_row)
            .collect()
    }

    /// What entered the feed at `grant`: the entries before it, after `after`, under its cell
    /// (leaving out what the feed's other grants held then, which its devices have) or of its
    /// hazard; of grid records only the newest version before the grant. At most `limit`.
    async fn backfill_rows(
        &self,
        grants: &[Grant],
        grant: &Grant,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        let mut held = Vec::new();
        let target = if grant.path {
            // Only a held path inside the subtree (or over it) can exclude anything from it:
            // a sibling street's path never matches an entry in this one's range.
            for g in grants.iter().filter(|g| {
                g.path
                    && g.granted != grant.granted
                    && g.active_at(grant.granted)
                    && (patrolsync_proto::grid::covers(&grant.target, &g.target)
                        || patrolsync_proto::grid::covers(&g.target, &grant.target))
            }) {
                held.push(g.target.clone());
            }
            // The subtree as a range on the path, which its index answers (a prefix test would
            // scan the whole log once per granted cell: a city-wide manager's bootstrap read
            // the log 115 times). `$5` is the end of the subtree (`grid::subtree_end`). SQLite
            // would walk the log in `seq` order to spare the sort unless told not to (`+seq`);
            // PostgreSQL would AND the path's few rows with a bitmap of every position in the
            // window (3-4 ms a street on the city's log) unless `seq` is an expression.
            match self.backend {
                Backend::Sqlite => ("+seq", "cell_path >= $4 AND cell_path < $5"),
                Backend::Postgres => (
                    "(seq + 0)",
                    "cell_path COLLATE \"C\" >= $4 AND cell_path COLLATE \"C\" < $5",
                ),
            }
        } else {
            ("seq", "entity_key = $4")
        };
        let (seq_col, target) = target;
        let exclude: String = (0..held.len())
            .map(|i| format!(" AND substr(cell_path, 1, length(${n})) <> ${n}", n = i + 6))
            .collect();
        // The newest version of each grid record *as of the grant*: one superseded only by a
        // later version is still the one to send (the later one may never reach this feed,
        // if it comes after a revoke).
        let sql = format!(
            "SELECT {CHANGE_COLUMNS} FROM changes WHERE {seq_col} > $1 AND {seq_col} < $2 AND NOT replay \
             AND (NOT superseded OR NOT EXISTS (SELECT 1 FROM changes later \
                  WHERE later.entity_key = changes.entity_key AND later.seq > changes.seq \
                  AND later.seq < $2)) \
             AND audience IS NULL AND {target}{exclude} ORDER BY seq LIMIT $3"
        );
        let mut q = sqlx::query(&sql)
            .bind(seq(after))
            .bind(seq(grant.granted))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(&grant.target);
        if grant.path {
            q = q.bind(patrolsync_proto::grid::subtree_end(&grant.target));
        }
        for h in held {
            q = q.bind(h);
        }
        q.fetch_all(self.pool())
            .await?
            .iter()
            .map(change_row)
            .collect()
    }
}

#[async_trait]
impl PullStore for SqlStore {
    async fn pull(
        &self,
        scope: &PullScope,
        cursor: u64,
        backfill_after: u64,
        limit: u32,
        compact: bool,
    ) -> Result<PullPage, StoreError> {
        self.pull_feed(scope, cursor, backfill_after, limit, compact)
            .await
    }

    async fn cursor(&self) -> Result<u64, StoreError> {
        let head: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM changes")
            .fetch_one(&self.pool)
            .await?;
        Ok(head.unwrap_or(0).max(0) as u64)
    }

    /// What `device` should hold now: what its user's assignments to cells not retired cover,
    /// or for agency users the whole grid and the hazards their agency holds by the fold; and
    /// the grants of its feed.
    async fn scope_view(&self, device: &super::DeviceSession) -> Result<ScopeView, StoreError> {
        let scope = device.pull_scope();
        let mut grants: Vec<Grant> = self
            .grants_of(&scope.audience, None)
            .await?
            .into_iter()
            .filter(|g| g.revoked.is_none())
            .collect();
        grants.sort_by(|a, b| (a.granted, &a.target).cmp(&(b.granted, &b.target)));
        let strings = |rows: Vec<String>| {
            let mut v = rows;
            v.sort();
            v.dedup();
            v
        };
        let (mut cells, mut checkpoints, mut units, mut households, mut hazards) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // Derived from the domain, not from the grants: what the assignments and the hazards'
        // folded agencies say now (the grants are how the feed got there).
        if let Some(agency) = &scope.agency {
            cells = sqlx::query_scalar("SELECT code FROM grid_cells")
                .fetch_all(self.pool())
                .await?;
            checkpoints = sqlx::query_scalar("SELECT code FROM checkpoints")
                .fetch_all(self.pool())
                .await?;
            units = sqlx::query_scalar("SELECT code FROM key_units")
                .fetch_all(self.pool())
                .await?;
            let ids: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT id FROM hazards WHERE agency = $1 OR routed_to = $2")
                    .bind(agency)
                    .bind(&scope.audience)
                    .fetch_all(self.pool())
                    .await?;
            hazards = ids
                .iter()
                .filter_map(|b| HazardId::from_slice(b))
                .map(|h| h.to_string())
                .collect();
        } else {
            let assigned: Vec<String> = sqlx::query_scalar(
                "SELECT c.path FROM assignments a JOIN grid_cells c ON c.id = a.cell_id \
                 WHERE a.user_id = $1 AND c.retired_at IS NULL",
            )
            .bind(device.user_id)
            .fetch_all(self.pool())
            .await?;
            for path in &assigned {
                cells.extend(
                    sqlx::query_scalar::<_, String>(
                        "SELECT code FROM grid_cells WHERE substr(path, 1, length($1)) = $1",
                    )
                    .bind(path)
                    .fetch_all(self.pool())
                    .await?,
                );
                checkpoints.extend(
                    sqlx::query_scalar::<_, String>(
                        "SELECT cp.code FROM checkpoints cp JOIN grid_cells c ON c.id = cp.cell_id \
                         WHERE substr(c.path, 1, length($1)) = $1",
                    )
                    .bind(path)
                    .fetch_all(self.pool())
                    .await?,
                );
                units.extend(
                    sqlx::query_scalar::<_, String>(
                        "SELECT u.code FROM key_units u JOIN grid_cells c ON c.id = u.cell_id \
                         WHERE substr(c.path, 1, length($1)) = $1",
                    )
                    .bind(path)
                    .fetch_all(self.pool())
                    .await?,
                );
                households.extend(
                    sqlx::query_scalar::<_, String>(
                        "SELECT h.code FROM households h JOIN grid_cells c ON c.id = h.cell_id \
                         WHERE h.removed_at IS NULL AND substr(c.path, 1, length($1)) = $1",
                    )
                    .bind(path)
                    .fetch_all(self.pool())
                    .await?,
                );
                let ids: Vec<Vec<u8>> = sqlx::query_scalar(
                    "SELECT h.id FROM hazards h JOIN grid_cells c ON c.id = h.cell_id \
                     WHERE substr(c.path, 1, length($1)) = $1",
                )
                .bind(path)
                .fetch_all(self.pool())
                .await?;
                hazards.extend(
                    ids.iter()
                        .filter_map(|b| HazardId::from_slice(b))
                        .map(|h| h.to_string()),
                );
            }
            // And what routing rules sent the user.
            let ids: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT id FROM hazards WHERE routed_to = $1")
                    .bind(&scope.audience)
                    .fetch_all(self.pool())
                    .await?;
            hazards.extend(
                ids.iter()
                    .filter_map(|b| HazardId::from_slice(b))
                    .map(|h| h.to_string()),
            );
        }
        Ok(ScopeView {
            device: device.id.to_string(),
            user: device.user.clone(),
            role: device.role.as_str().to_owned(),
            audience: scope.audience,
            grants: grants
                .iter()
                .map(|g| ScopeGrant {
                    kind: if g.path { "cell" } else { "hazard" }.into(),
                    id: if g.path {
                        CellPath::from(g.target.as_str()).code().to_owned()
                    } else {
                        g.target.trim_start_matches("hazard:").to_owned()
                    },
                    since: g.granted,
                })
                .collect(),
            cells: strings(cells),
            checkpoints: strings(checkpoints),
            units: strings(units),
            households: strings(households),
            hazards: strings(hazards),
        })
    }
}

/// How many of `rows`, in order, fit the page's payload budget ([`super::PULL_PAGE_BYTES`]) on
/// top of the `used` bytes already in it; adds theirs to `used`. The first row of an empty page
/// always fits, so a page is never empty while changes wait.
fn fitting(rows: &[ChangeRow], page_empty: bool, used: &mut usize) -> usize {
    let mut n = 0;
    for row in rows {
        let after = *used + row.payload.len();
        if after > super::PULL_PAGE_BYTES && !(page_empty && n == 0) {
            break;
        }
        *used = after;
        n += 1;
    }
    n
}
