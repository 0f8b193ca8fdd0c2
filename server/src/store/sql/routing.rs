//! Routing rules: their versions, routing a report when it arrives, and reminders (督促).

use std::sync::Arc;

use super::*;
use crate::routing::{Party, Published, RuleSet, due_reminder};
use crate::store::routing::RoutingStore;
use patrolsync_i18n::text;
use patrolsync_proto::hazard::{HazardCategory, ReminderRecord};
use patrolsync_proto::scope::{ScopeChange, ScopeTarget};

/// Open hazards a routed party is reminded of: sent to a user party (an agency a rule informed
/// acts once a hazard is transferred to it, and is not reminded), with a deadline, and still the
/// party's to act on (not rectified, transferred or closed).
const REMINDED: &str = "h.routed_to LIKE 'user:%' AND h.deadline_ms IS NOT NULL \
     AND h.status IN ('reported', 'rectifying')";

/// Where a rule sent a hazard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Routed {
    /// The rule's index in its set.
    pub(super) index: usize,
    /// The party's feed.
    pub(super) audience: String,
    /// The party as people read it.
    pub(super) party: String,
}

impl SqlStore {
    /// The rule set in force and its version, if one was published.
    pub(super) async fn rules_in_force(
        &self,
        tx: &mut Transaction<'_, Any>,
    ) -> Result<Option<(u32, Arc<RuleSet>)>, StoreError> {
        let version: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM routing_rules")
            .fetch_one(&mut **tx)
            .await?;
        match version {
            None => Ok(None),
            Some(v) => {
                let version = v.clamp(0, i64::from(u32::MAX)) as u32;
                Ok(self.rule_set(tx, version).await?.map(|set| (version, set)))
            }
        }
    }

    /// Published version `version` of the rules (read once, then kept: versions never change).
    pub(super) async fn rule_set(
        &self,
        tx: &mut Transaction<'_, Any>,
        version: u32,
    ) -> Result<Option<Arc<RuleSet>>, StoreError> {
        if let Some(set) = self
            .routing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&version)
        {
            return Ok(Some(set.clone()));
        }
        let rules: Option<String> =
            sqlx::query_scalar("SELECT rules FROM routing_rules WHERE version = $1")
                .bind(i64::from(version))
                .fetch_optional(&mut **tx)
                .await?;
        let Some(rules) = rules else {
            return Ok(None);
        };
        let set: Arc<RuleSet> =
            Arc::new(serde_json::from_str(&rules).map_err(|e| {
                StoreError::Corrupt(format!("routing rules version {version}: {e}"))
            })?);
        self.routing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(version, set.clone());
        Ok(Some(set))
    }

    /// The first rule of `set` that holds for a hazard of `category` in the cell at `cell_path`
    /// (at `checkpoint`) and names a party that can take it; and the rules passed over on the
    /// way, with why.
    pub(super) async fn resolve_route(
        &self,
        tx: &mut Transaction<'_, Any>,
        set: &RuleSet,
        cell_path: &str,
        category: HazardCategory,
        checkpoint: Option<&str>,
    ) -> Result<(Option<Routed>, Vec<RoutePass>), StoreError> {
        let mut passed = Vec::new();
        for (index, rule) in set.candidates(cell_path, category) {
            let pass = |reason: &str| RoutePass {
                n: index + 1,
                reason: reason.to_owned(),
            };
            let user = match &rule.party {
                Party::Agency { agency } => {
                    return Ok((
                        Some(Routed {
                            index,
                            audience: format!("agency:{agency}"),
                            party: agency.clone(),
                        }),
                        passed,
                    ));
                }
                Party::User { name } => name.clone(),
                Party::Unit => {
                    let Some(checkpoint) = checkpoint else {
                        passed.push(pass("no_unit"));
                        continue;
                    };
                    // The unit at the checkpoint the report names, if that checkpoint lies in
                    // the reported cell: a report elsewhere naming a unit's checkpoint code
                    // does not reach that unit's person.
                    let unit: Option<Option<String>> = sqlx::query_scalar(
                        "SELECT u.responsible_user FROM key_units u \
                         JOIN key_unit_checkpoints k ON k.unit_id = u.id \
                         JOIN checkpoints cp ON cp.id = k.checkpoint_id \
                         JOIN grid_cells c ON c.id = cp.cell_id \
                         WHERE cp.code = $1 AND substr(c.path, 1, length($2)) = $2 \
                         ORDER BY u.code LIMIT 1",
                    )
                    .bind(checkpoint)
                    .bind(cell_path)
                    .fetch_optional(&mut **tx)
                    .await?;
                    match unit {
                        None => {
                            passed.push(pass("no_unit"));
                            continue;
                        }
                        Some(None) => {
                            passed.push(pass("no_responsible_user"));
                            continue;
                        }
                        Some(Some(user)) => user,
                    }
                }
            };
            let found = sqlx::query("SELECT id, role FROM users WHERE name = $1")
                .bind(&user)
                .fetch_optional(&mut **tx)
                .await?;
            // The party keeps the role the rules were checked against: a property company or
            // a community office (a unit's person too), never a user whose role gives it cells
            // or an agency's feed.
            let usable = match &found {
                Some(r) => r
                    .try_get::<String, _>(1)?
                    .parse::<Role>()
                    .is_ok_and(Role::is_party)
                    .then(|| r.try_get::<i64, _>(0))
                    .transpose()?,
                None => None,
            };
            match usable {
                Some(id) => {
                    return Ok((
                        Some(Routed {
                            index,
                            audience: format!("user:{id}"),
                            party: user,
                        }),
                        passed,
                    ));
                }
                None => passed.push(pass("no_user")),
            }
        }
        Ok((None, passed))
    }

    /// Routes a report that just arrived by the rules in force: records the party on the
    /// hazard and grants the hazard to the party's feed (its log so far comes as the grant's
    /// backfill). Returns the party's feed.
    pub(super) async fn route_report(
        &self,
        tx: &mut Transaction<'_, Any>,
        r: &patrolsync_proto::hazard::Report,
        cell_path: &str,
        changes: &mut Vec<PendingChange>,
    ) -> Result<Option<String>, StoreError> {
        if r.category.is_information() {
            return Ok(None);
        }
        let Some((version, set)) = self.rules_in_force(tx).await? else {
            return Ok(None);
        };
        let checkpoint = (!r.checkpoint.is_empty()).then_some(r.checkpoint.as_str());
        let (Some(routed), _) = self
            .resolve_route(tx, &set, cell_path, r.category, checkpoint)
            .await?
        else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE hazards SET routed_to = $1, routed_party = $2, routed_rule = $3 WHERE id = $4",
        )
        .bind(&routed.audience)
        .bind(&routed.party)
        .bind(format!("{version}#{}", routed.index + 1))
        .bind(r.id.to_bytes())
        .execute(&mut **tx)
        .await?;
        changes.push(super::scope::hazard_grant(
            &routed.audience,
            cell_path,
            r.id,
            ScopeChange {
                grant: true,
                target: ScopeTarget::Hazard(r.id),
                reason: Some(ScopeReason::Routed),
                keep: Vec::new(),
            },
        ));
        Ok(Some(routed.audience))
    }

    /// The rule set `set` with each rule's cell path filled in, once every cell and user it
    /// names is checked.
    async fn checked_rules(
        &self,
        tx: &mut Transaction<'_, Any>,
        set: &RuleSet,
    ) -> Result<RuleSet, StoreError> {
        let mut out = set.clone();
        for (i, rule) in out.rules.iter_mut().enumerate() {
            let n = i + 1;
            let cell = sqlx::query("SELECT path, retired_at FROM grid_cells WHERE code = $1")
                .bind(&rule.cell)
                .fetch_optional(&mut **tx)
                .await?;
            let Some(cell) = cell else {
                return Err(StoreError::Invalid(text!(
                    "routing-unknown-cell",
                    n = n,
                    cell = rule.cell
                )));
            };
            if cell.try_get::<Option<i64>, _>(1)?.is_some() {
                return Err(StoreError::Invalid(text!(
                    "routing-retired-cell",
                    n = n,
                    cell = rule.cell
                )));
            }
            rule.cell_path = cell.try_get(0)?;
            if let Party::User { name } = &rule.party {
                let role: Option<String> =
                    sqlx::query_scalar("SELECT role FROM users WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&mut **tx)
                        .await?;
                match role {
                    None => {
                        return Err(StoreError::Invalid(text!(
                            "routing-unknown-user",
                            n = n,
                            user = name
                        )));
                    }
                    Some(role) if !role.parse::<Role>().is_ok_and(Role::is_party) => {
                        return Err(StoreError::Invalid(text!(
                            "routing-user-role",
                            n = n,
                            user = name,
                            role = role
                        )));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl RoutingStore for SqlStore {
    async fn publish_routing(
        &self,
        set: &RuleSet,
        dry_run: bool,
        now_ms: i64,
    ) -> Result<(u32, bool), StoreError> {
        let mut tx = self.begin_write().await?;
        let checked = self.checked_rules(&mut tx, set).await?;
        let current = self.rules_in_force(&mut tx).await?;
        if let Some((version, same)) = &current
            && **same == checked
        {
            tx.commit().await?;
            return Ok((*version, false));
        }
        let version = current.map_or(1, |(v, _)| v + 1);
        if dry_run {
            tx.rollback().await?;
            return Ok((version, true));
        }
        let rules = serde_json::to_string(&checked)
            .map_err(|e| StoreError::Corrupt(format!("routing rules: {e}")))?;
        sqlx::query("INSERT INTO routing_rules (version, rules, published_at) VALUES ($1, $2, $3)")
            .bind(i64::from(version))
            .bind(rules)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((version, true))
    }

    async fn routing_versions(&self) -> Result<Vec<Published>, StoreError> {
        let rows =
            sqlx::query("SELECT version, rules, published_at FROM routing_rules ORDER BY version")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                let version = r.try_get::<i64, _>(0)?.clamp(0, i64::from(u32::MAX)) as u32;
                let rules: String = r.try_get(1)?;
                Ok(Published {
                    version,
                    set: serde_json::from_str(&rules).map_err(|e| {
                        StoreError::Corrupt(format!("routing rules version {version}: {e}"))
                    })?,
                    published_at_ms: r.try_get(2)?,
                })
            })
            .collect()
    }

    async fn route_check(
        &self,
        cell: &str,
        category: HazardCategory,
        checkpoint: Option<&str>,
    ) -> Result<RouteCheck, StoreError> {
        let mut tx = self.pool.begin().await?;
        let path: Option<String> =
            sqlx::query_scalar("SELECT path FROM grid_cells WHERE code = $1")
                .bind(cell)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(path) = path else {
            return Err(StoreError::NotFound(text!("store-no-cell", cell = cell)));
        };
        let in_force = self.rules_in_force(&mut tx).await?;
        let (version, routed, passed) = match &in_force {
            Some((version, set)) => {
                let (routed, passed) = self
                    .resolve_route(&mut tx, set, &path, category, checkpoint)
                    .await?;
                let set = set.as_ref();
                let hit = routed.map(|r| {
                    let rule = &set.rules[r.index];
                    RouteHit {
                        n: r.index + 1,
                        name: rule.name.clone(),
                        cell: rule.cell.clone(),
                        party: r.party,
                        audience: r.audience,
                    }
                });
                (*version, hit, passed)
            }
            None => (0, None, Vec::new()),
        };
        let cell_path = CellPath::from(path.clone());
        let mut paths = vec![path.clone()];
        paths.extend(
            cell_path
                .ancestors()
                .into_iter()
                .map(|(_, p)| p.to_string()),
        );
        let sql = format!(
            "SELECT DISTINCT u.name FROM users u JOIN assignments a ON a.user_id = u.id \
             JOIN grid_cells c ON c.id = a.cell_id WHERE u.role = $1 AND c.path IN ({}) ORDER BY u.name",
            list(self.backend, paths.len(), 2)
        );
        let mut q = sqlx::query_scalar(&sql).bind(Role::GridManager.as_str());
        for p in &paths {
            q = q.bind(p.clone());
        }
        let managers: Vec<String> = q.fetch_all(&mut *tx).await?;
        tx.commit().await?;
        Ok(RouteCheck {
            version,
            cell: cell.to_owned(),
            cell_path: path,
            category: category.as_str().to_owned(),
            rule: routed,
            passed,
            managers,
        })
    }
}

impl SqlStore {
    /// See [`HazardStore::remind_due`].
    pub(super) async fn send_reminders(&self, now_ms: i64) -> Result<Reminded, StoreError> {
        // What is due is decided by reading (one query for the hazards, one for the points
        // already sent); the write lock is taken only when a reminder is due, and the primary
        // key keeps each point once if another node got there first.
        let mut read = self.pool.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT h.id, h.deadline_ms, h.routed_to, h.routed_party, h.routed_rule, c.path \
             FROM hazards h JOIN grid_cells c ON c.id = h.cell_id \
             WHERE {REMINDED} AND h.deadline_ms <= $1 ORDER BY h.id"
        ))
        .bind(now_ms.saturating_add(crate::routing::MAX_REMINDER_MS))
        .fetch_all(&mut *read)
        .await?;
        if rows.is_empty() {
            read.commit().await?;
            return Ok(Reminded::default());
        }
        let mut sent: HashMap<Vec<u8>, Vec<i64>> = HashMap::new();
        for r in sqlx::query(&format!(
            "SELECT r.hazard_id, r.offset_ms FROM hazard_reminders r \
             JOIN hazards h ON h.id = r.hazard_id AND h.deadline_ms = r.deadline_ms WHERE {REMINDED}"
        ))
        .fetch_all(&mut *read)
        .await?
        {
            sent.entry(r.try_get(0)?).or_default().push(r.try_get(1)?);
        }
        struct Due {
            id: Vec<u8>,
            hazard: HazardId,
            deadline: i64,
            offset: i64,
            audience: String,
            party: String,
            path: String,
        }
        let mut due = Vec::new();
        for r in &rows {
            let id: Vec<u8> = r.try_get(0)?;
            let Some(hazard) = HazardId::from_slice(&id) else {
                continue;
            };
            let deadline: i64 = r.try_get(1)?;
            // The points of the rules that routed it, not of whatever is in force now.
            let rule: Option<String> = r.try_get(4)?;
            let version = rule
                .as_deref()
                .and_then(|r| r.split('#').next())
                .and_then(|v| v.parse::<u32>().ok());
            let Some(set) = (match version {
                Some(v) => self.rule_set(&mut read, v).await?,
                None => None,
            }) else {
                continue;
            };
            let done = sent.get(&id).map_or(&[][..], Vec::as_slice);
            if let Some(offset) = due_reminder(&set.offsets(), deadline, now_ms, done) {
                due.push(Due {
                    id,
                    hazard,
                    deadline,
                    offset,
                    audience: r.try_get(2)?,
                    party: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                    path: r.try_get(5)?,
                });
            }
        }
        read.commit().await?;
        if due.is_empty() {
            return Ok(Reminded::default());
        }
        let mut tx = self.begin_write().await?;
        let mut out = Reminded::default();
        let mut changes = Vec::new();
        for d in due {
            let inserted = sqlx::query(
                "INSERT INTO hazard_reminders (hazard_id, deadline_ms, offset_ms, party, reminded_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(d.id)
            .bind(d.deadline)
            .bind(d.offset)
            .bind(&d.party)
            .bind(now_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                continue;
            }
            let record = ReminderRecord {
                hazard: d.hazard,
                deadline_ms: d.deadline,
                offset_ms: d.offset,
                reminded_at_ms: now_ms,
                party: d.party.clone(),
            };
            let mut change = PendingChange::admin(
                d.path,
                ChangeKind::HazardReminder,
                format!("reminder:{}:{}:{}", d.hazard, d.deadline, d.offset),
                record.encode(),
                false,
            );
            change.audience = Some(d.audience.clone());
            changes.push(change);
            out.audiences.push(d.audience);
            out.reminders.push(Reminder {
                hazard: d.hazard.to_string(),
                party: d.party,
                deadline_ms: d.deadline,
                offset_ms: d.offset,
                reminded_at_ms: now_ms,
            });
        }
        out.audiences.sort();
        out.audiences.dedup();
        out.cursor = self.append_changes(&mut tx, &changes, now_ms).await?;
        tx.commit().await?;
        Ok(out)
    }
}
