//! Hazards on the device: report them, move them through the closed loop, edit their fields,
//! all offline; see every hazard of the device's cells with its current state, folded by the
//! same code the server runs. Pull keeps the local view in step with the server.

use patrolsync_proto::hazard::{
    Agency, EventKind, FieldValue, Handling, HazardCategory, HazardOp, HazardState, Severity,
    Stamp, fold,
};
use patrolsync_proto::task::TaskOp;
use patrolsync_proto::{DeviceId, EventId, GeoFix, HazardId, Hlc, Message, OpBody, Role, wire};
use sqlx::Row;

use crate::clock::now_ms;
use crate::error::{local, read_failed};
use crate::events::{ConflictReport, DataKind, SyncSummary};
use crate::hazard_log::{LocalOp, insert_op};
use crate::transport::{self, CallError};
use crate::{Client, ReadError, RecordError, SyncError};

/// A hazard as the patroller reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewHazard {
    /// The grid cell it is in.
    pub grid_cell: String,
    /// Checkpoint code, if at one.
    pub checkpoint: Option<String>,
    /// Where, if known.
    pub position: Option<GeoFix>,
    /// What kind.
    pub category: HazardCategory,
    /// How serious.
    pub severity: Severity,
    /// On the spot or by deadline.
    pub handling: Handling,
    /// Deadline (Unix ms), needed for by-deadline handling.
    pub deadline_ms: Option<i64>,
    /// What was seen.
    pub description: String,
    /// SHA-256 of before photos.
    pub photos: Vec<[u8; 32]>,
}

/// The details of a transition; only what its kind needs is required.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Transition {
    /// New deadline (notify).
    pub deadline_ms: Option<i64>,
    /// Target agency (transfer).
    pub agency: Option<Agency>,
    /// Surviving hazard (merge).
    pub merge_into: Option<HazardId>,
    /// Note or reason.
    pub note: String,
    /// SHA-256 of after photos or evidence.
    pub photos: Vec<[u8; 32]>,
}

/// A hazard in the device's view.
#[derive(Clone, Debug, PartialEq)]
pub struct HazardView {
    /// The folded state (status, fields, history with conflicts).
    pub state: HazardState,
    /// Ops of this device not yet acknowledged by the server are in it already.
    pub has_local_changes: bool,
    /// Duplicates merged into this hazard, with their reports, photos and histories.
    pub merged: Vec<HazardState>,
    /// Escalations to this user's cells because it is past its deadline, oldest first.
    pub escalations: Vec<Escalation>,
    /// Reminders (督促) of its deadline to this user, as the party a routing rule sent it to,
    /// oldest first.
    pub reminders: Vec<Reminder>,
}

/// A reminder (督促) the server sent the party a routing rule named, at a point relative to
/// the hazard's deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reminder {
    /// The deadline it reminds of, ms.
    pub deadline_ms: i64,
    /// The point relative to the deadline, ms: negative before it, zero or more after it.
    pub offset_ms: i64,
    /// When the server sent it, ms.
    pub reminded_at_ms: i64,
}

/// An overdue hazard escalated by the server to the managers of an ancestor cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escalation {
    /// 1 for the hazard's parent cell, 2 for the one above, …
    pub level: u32,
    /// The cell escalated to.
    pub to_cell: String,
    /// The deadline it is overdue against, ms.
    pub deadline_ms: i64,
    /// When the server escalated it, ms.
    pub escalated_at_ms: i64,
}

/// Hazards a page of changes touches.
fn page_hazards(page: &wire::PullResponse) -> Vec<HazardId> {
    use wire::change::Entity;
    let mut ids: Vec<HazardId> = page
        .changes
        .iter()
        .filter_map(|c| match &c.entity {
            Some(Entity::HazardReport(r)) => HazardId::from_slice(&r.id),
            Some(Entity::HazardEvent(e)) => HazardId::from_slice(&e.hazard_id),
            Some(Entity::HazardFieldEdit(e)) => HazardId::from_slice(&e.hazard_id),
            Some(Entity::HazardEscalation(e)) => HazardId::from_slice(&e.hazard_id),
            Some(Entity::HazardReminder(r)) => HazardId::from_slice(&r.hazard_id),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

impl Client {
    /// Reports a hazard (offline; `sync` sends it). Returns its id.
    ///
    /// # Errors
    ///
    /// [`RecordError`]: `Invalid` (a field breaks a protocol rule; nothing
    /// was queued), `Forbidden` (the user's role may not), `NotEnrolled`, `Storage`.
    ///
    /// # Cancel safety
    ///
    /// The record is queued in one local transaction: cancelled, it is either durable and
    /// will be sent, or not recorded at all.
    pub async fn report_hazard(&self, h: NewHazard) -> Result<HazardId, RecordError> {
        let now = now_ms();
        let id = HazardId(uuid::Uuid::now_v7());
        let report = patrolsync_proto::hazard::Report {
            id,
            grid_cell: h.grid_cell,
            checkpoint: h.checkpoint.unwrap_or_default(),
            position: h.position,
            category: h.category,
            severity: h.severity,
            handling: h.handling,
            deadline_ms: h.deadline_ms,
            description: h.description,
            photos: h.photos,
            device_time_ms: now,
        };
        // Same validation as the server.
        let report = patrolsync_proto::hazard::Report::from_wire(report.to_wire(), now)?;
        self.require_enrolled().await?;
        self.enqueue(OpBody::HazardReport(Box::new(report)), id.to_bytes(), now)
            .await?;
        Ok(id)
    }

    /// Moves a hazard through its closed loop (offline). If another device's transition wins
    /// when everything is merged, this one shows as a conflict in the hazard's history.
    ///
    /// # Errors
    ///
    /// [`RecordError`]: `Invalid` (a field breaks a protocol rule; nothing
    /// was queued), `Forbidden` (the user's role may not), `NotEnrolled`, `Storage`.
    ///
    /// # Cancel safety
    ///
    /// The record is queued in one local transaction: cancelled, it is either durable and
    /// will be sent, or not recorded at all.
    pub async fn transition_hazard(
        &self,
        hazard: HazardId,
        kind: EventKind,
        t: Transition,
    ) -> Result<EventId, RecordError> {
        let now = now_ms();
        let id = EventId(uuid::Uuid::now_v7());
        let event = patrolsync_proto::hazard::Event {
            id,
            hazard,
            kind,
            deadline_ms: t.deadline_ms,
            agency: t.agency,
            merge_into: t.merge_into,
            note: t.note,
            photos: t.photos,
            device_time_ms: now,
        };
        let event = patrolsync_proto::hazard::Event::from_wire(event.to_wire(), now)?;
        self.require_enrolled().await?;
        let role = self
            .role()
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?;
        patrolsync_proto::hazard::may_fire(kind, role).map_err(|r| RecordError::Forbidden {
            action: kind.to_string(),
            reason: r.to_string(),
        })?;
        // An information report and a hazard are not merged into one another (the server
        // refuses it the same way).
        if let Some(into) = event.merge_into {
            let storage = |e: ReadError| RecordError::Storage(e.to_string());
            let kind_of =
                |v: Option<HazardView>| v.map(|v| v.state.category.value.is_information());
            if let (Some(a), Some(b)) = (
                kind_of(self.hazard(hazard).await.map_err(storage)?),
                kind_of(self.hazard(into).await.map_err(storage)?),
            ) && a != b
            {
                return Err(RecordError::Invalid(patrolsync_proto::Invalid::new(
                    "merge_into",
                    "information_report",
                    "an information report and a hazard cannot be merged into one another",
                )));
            }
        }
        self.enqueue(OpBody::HazardEvent(Box::new(event)), hazard.to_bytes(), now)
            .await?;
        Ok(id)
    }

    /// Edits a hazard field (offline); the latest edit by HLC wins everywhere.
    ///
    /// # Errors
    ///
    /// [`RecordError`]: `Invalid` (a field breaks a protocol rule; nothing
    /// was queued), `Forbidden` (the user's role may not), `NotEnrolled`, `Storage`.
    ///
    /// # Cancel safety
    ///
    /// The record is queued in one local transaction: cancelled, it is either durable and
    /// will be sent, or not recorded at all.
    pub async fn edit_hazard(
        &self,
        hazard: HazardId,
        value: FieldValue,
    ) -> Result<(), RecordError> {
        let now = now_ms();
        let edit = patrolsync_proto::hazard::Edit { hazard, value };
        let edit = patrolsync_proto::hazard::Edit::from_wire(edit.to_wire())?;
        self.require_enrolled().await?;
        let role = self
            .role()
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?;
        patrolsync_proto::hazard::may_edit(role).map_err(|r| RecordError::Forbidden {
            action: "edit".into(),
            reason: r.to_string(),
        })?;
        // An information report and a hazard cannot become one another, and an information
        // report takes no deadline or handling (the fold would keep such an edit without
        // applying it; the server refuses it the same way).
        if let Some(view) = self
            .hazard(hazard)
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?
            && !patrolsync_proto::hazard::applies(
                view.state.category.value.is_information(),
                &edit.value,
            )
        {
            return Err(RecordError::Invalid(patrolsync_proto::Invalid::new(
                "value",
                "information_report",
                "an information report is acknowledged, not rectified, and a report cannot \
                 change between an information kind and a hazard",
            )));
        }
        self.enqueue(OpBody::HazardEdit(edit), hazard.to_bytes(), now)
            .await?;
        Ok(())
    }

    /// A page of the hazards in the device's view, folded, most recently changed first, that
    /// `filter` selects.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read.
    pub async fn hazards_where(&self, filter: &HazardFilter) -> Result<Vec<HazardView>, ReadError> {
        // Hazards only: tasks' entries share the table, and are neither listed nor folded here.
        let ids: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT hazard_id FROM hazard_ops WHERE kind IN (?, ?, ?) GROUP BY hazard_id \
             ORDER BY MAX(hlc_wall_ms) DESC, MAX(hlc_logical) DESC",
        )
        .bind(HazardOp::REPORT)
        .bind(HazardOp::EVENT)
        .bind(HazardOp::EDIT)
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        let limit = filter.limit.map_or(usize::MAX, |l| l as usize);
        let mut skip = filter.offset as usize;
        let mut out = Vec::new();
        for id in ids {
            if out.len() >= limit {
                break;
            }
            let id = HazardId::from_slice(&id).ok_or_else(|| read_failed("bad hazard id"))?;
            let Some(v) = self.hazard(id).await? else {
                continue;
            };
            let cell = v.state.report.as_ref().map(|(r, _)| r.grid_cell.as_str());
            if (filter.open_only && !v.state.status.is_open())
                || filter.cell.as_deref().is_some_and(|c| cell != Some(c))
            {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            out.push(v);
        }
        Ok(out)
    }

    /// Every hazard in the device's view, folded, most recently changed first.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read.
    pub async fn hazards(&self) -> Result<Vec<HazardView>, ReadError> {
        self.hazards_where(&HazardFilter::default()).await
    }

    /// One hazard, folded from every op the device holds.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the
    /// network.
    pub async fn hazard(&self, id: HazardId) -> Result<Option<HazardView>, ReadError> {
        let Some(state) = self.fold_local(id).await? else {
            return Ok(None);
        };
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE record_id = ? AND kind != ?")
                .bind(id.to_bytes())
                .bind(OpBody::CHECK_IN)
                .fetch_one(&self.inner.db)
                .await
                .map_err(read_failed)?;
        let sources: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT DISTINCT hazard_id FROM hazard_ops WHERE merge_into = ?")
                .bind(id.to_bytes())
                .fetch_all(&self.inner.db)
                .await
                .map_err(read_failed)?;
        let mut merged = Vec::new();
        for source in sources {
            let Some(other) = HazardId::from_slice(&source) else {
                continue;
            };
            if let Some(s) = self.fold_local(other).await?
                && s.duplicate_of == Some(id)
            {
                merged.push(s);
            }
        }
        let escalations = sqlx::query_as::<_, (i64, String, i64, i64)>(
            "SELECT level, to_cell, deadline_ms, escalated_at_ms FROM escalations \
             WHERE hazard_id = ? ORDER BY escalated_at_ms, level",
        )
        .bind(id.to_bytes())
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?
        .into_iter()
        .map(
            |(level, to_cell, deadline_ms, escalated_at_ms)| Escalation {
                level: level.clamp(0, i64::from(u32::MAX)) as u32,
                to_cell,
                deadline_ms,
                escalated_at_ms,
            },
        )
        .collect();
        let reminders = sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT deadline_ms, offset_ms, reminded_at_ms FROM reminders \
             WHERE hazard_id = ? ORDER BY reminded_at_ms, offset_ms",
        )
        .bind(id.to_bytes())
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?
        .into_iter()
        .map(|(deadline_ms, offset_ms, reminded_at_ms)| Reminder {
            deadline_ms,
            offset_ms,
            reminded_at_ms,
        })
        .collect();
        Ok(Some(HazardView {
            state,
            has_local_changes: pending > 0,
            merged,
            escalations,
            reminders,
        }))
    }

    async fn fold_local(&self, id: HazardId) -> Result<Option<HazardState>, ReadError> {
        let rows = sqlx::query(
            "SELECT hlc_wall_ms, hlc_logical, device_id, kind, role, payload FROM hazard_ops \
             WHERE hazard_id = ? AND kind IN (?, ?, ?)",
        )
        .bind(id.to_bytes())
        // A task's entries share the table; an id a task and a hazard share is two things.
        .bind(HazardOp::REPORT)
        .bind(HazardOp::EVENT)
        .bind(HazardOp::EDIT)
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        // A hazard is folded only once its report is here (a grant brings it before anything
        // else of the hazard; until then an edit alone is not a hazard).
        if !rows
            .iter()
            .any(|r| r.get::<String, _>(3) == HazardOp::REPORT)
        {
            return Ok(None);
        }
        let mut ops = Vec::with_capacity(rows.len());
        for r in &rows {
            let device: String = r.get(2);
            let role: Role = r.get::<String, _>(4).parse().map_err(read_failed)?;
            let stamp = Stamp {
                hlc: Hlc {
                    wall_ms: r.get::<i64, _>(0) as u64,
                    logical: r.get::<i64, _>(1) as u32,
                },
                device: device.parse::<DeviceId>().map_err(read_failed)?,
            };
            let op = HazardOp::decode(&r.get::<String, _>(3), &r.get::<Vec<u8>, _>(5), role)
                .map_err(read_failed)?;
            ops.push((stamp, op));
        }
        Ok(Some(fold(id, &ops)))
    }

    /// Pulls every change in scope after the stored cursor (bootstrapping first if new).
    /// Pulls pages until the device has caught up; `head` is the server's change-log head at
    /// Hello, the total of the first download's progress.
    pub(crate) async fn pull_scope(
        &self,
        conn: &quinn::Connection,
        server: &str,
        head: u64,
        summary: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        let cfg = &self.inner.config;
        loop {
            let state = sqlx::query(
                "SELECT cursor, bootstrapped, backfill_after, feed FROM pull_state WHERE id = 1",
            )
            .fetch_one(&self.inner.db)
            .await
            .map_err(local)?;
            let cursor = state.get::<i64, _>(0) as u64;
            let bootstrapped = state.get::<i64, _>(1) != 0;
            let backfill_after = state.get::<i64, _>(2).max(0) as u64;
            let request = wire::Request {
                kind: Some(wire::request::Kind::Pull(wire::PullRequest {
                    cursor,
                    limit: 500,
                    compact: !bootstrapped,
                    backfill_after,
                    protocol: patrolsync_proto::scope::PULL_PROTOCOL,
                    feed: state.get(3),
                })),
            };
            let response = transport::call(
                conn,
                &request,
                patrolsync_proto::frame::DEFAULT_MAX_FRAME_BYTES,
                cfg.request_timeout,
            )
            .await
            .map_err(|e: CallError| SyncError::from_call(server, e))?;
            let page = match response.kind {
                Some(wire::response::Kind::Pull(p)) => p,
                other => return Err(crate::error::unexpected(other)),
            };
            if page.reset {
                summary
                    .scope_changes
                    .push(crate::scope::reset(&self.inner.db, &page.feed).await?);
                self.data_changed([DataKind::Grid, DataKind::Hazards]);
                continue;
            }
            summary.pulled += page.changes.len() as u64;
            let touched = page_hazards(&page);
            let before = self.conflict_ids(&touched).await?;
            summary.scope_changes.extend(self.apply_page(&page).await?);
            for id in &touched {
                let Some(view) = self.hazard(*id).await? else {
                    continue;
                };
                for h in view.state.conflicts() {
                    if !before.contains(&h.event) {
                        summary.new_conflicts.push(ConflictReport {
                            hazard: id.to_string(),
                            event: h.event.to_string(),
                            kind: h.kind.as_str().into(),
                            reason: h.conflict.clone().unwrap_or_default(),
                            code: conflict_code(h),
                        });
                    }
                }
                let id = id.to_string();
                if !summary.hazards_changed.contains(&id) {
                    summary.hazards_changed.push(id);
                }
            }
            summary.cursor = page.next_cursor;
            if !bootstrapped {
                let done = page.next_cursor.min(head);
                self.update_state(|s| {
                    s.bootstrap = page
                        .has_more
                        .then_some(crate::Progress { done, total: head })
                });
            }
            if !page.has_more {
                return Ok(());
            }
        }
    }

    async fn conflict_ids(&self, hazards: &[HazardId]) -> Result<Vec<EventId>, SyncError> {
        let mut out = Vec::new();
        for id in hazards {
            if let Some(v) = self.hazard(*id).await? {
                out.extend(v.state.conflicts().map(|h| h.event));
            }
        }
        Ok(out)
    }

    /// Applies a page in one transaction; returns what entered or left the scope.
    async fn apply_page(
        &self,
        page: &wire::PullResponse,
    ) -> Result<Vec<crate::ScopeNotice>, SyncError> {
        use wire::change::Entity;
        let mut tx = self.inner.db.begin().await.map_err(local)?;
        // A device that learned it is revoked keeps nothing new of its cells.
        let revoked: i64 = sqlx::query_scalar("SELECT revoked FROM sync_state WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(local)?;
        if revoked != 0 {
            return Err(SyncError::Revoked);
        }
        // Offers to this user (tasks the server sent it) are told to the app as they arrive.
        let me: String = sqlx::query_scalar("SELECT user_name FROM identity WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(local)?
            .unwrap_or_default();
        let mut offers = Vec::new();
        let mut notices = Vec::new();
        for c in &page.changes {
            let hlc = c.hlc.map(Hlc::from).unwrap_or_default();
            let role = Role::from_wire_value(c.role).unwrap_or(Role::Patroller);
            let hazard_op = |hazard: &[u8],
                             kind: &'static str,
                             payload: Vec<u8>|
             -> Result<LocalOp, SyncError> {
                Ok(LocalOp {
                    hazard: HazardId::from_slice(hazard).ok_or_else(|| local("bad hazard id"))?,
                    merge_into: None,
                    kind,
                    role,
                    hlc,
                    payload,
                })
            };
            match &c.entity {
                Some(Entity::Cell(cell)) => {
                    sqlx::query("INSERT OR REPLACE INTO cells (code, parent, level, name, retired, boundary) VALUES (?, ?, ?, ?, ?, ?)")
                        .bind(&cell.code)
                        .bind(&cell.parent)
                        .bind(i64::from(cell.level))
                        .bind(&cell.name)
                        .bind(cell.retired)
                        .bind(Some(&cell.boundary).filter(|b| !b.is_empty()))
                        .execute(&mut *tx)
                        .await
                        .map_err(local)?;
                }
                Some(Entity::Checkpoint(cp)) => {
                    sqlx::query(
                        "INSERT OR REPLACE INTO checkpoints (code, cell, name, tag_uid, latitude, longitude, radius_m) \
                         VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(&cp.code)
                    .bind(&cp.grid_cell)
                    .bind(&cp.name)
                    .bind(&cp.tag_uid)
                    .bind(cp.latitude.is_finite().then_some(cp.latitude))
                    .bind(cp.longitude.is_finite().then_some(cp.longitude))
                    .bind(cp.radius_m)
                    .execute(&mut *tx)
                    .await
                    .map_err(local)?;
                }
                Some(Entity::HazardReport(r)) => insert_op(
                    &mut tx,
                    &hazard_op(&r.id, HazardOp::REPORT, r.encode_to_vec())?,
                    &c.device_id,
                )
                .await
                .map_err(local)?,
                Some(Entity::HazardEvent(e)) => {
                    let mut op = hazard_op(&e.hazard_id, HazardOp::EVENT, e.encode_to_vec())?;
                    op.merge_into = HazardId::from_slice(&e.merge_into);
                    insert_op(&mut tx, &op, &c.device_id).await.map_err(local)?
                }
                Some(Entity::HazardFieldEdit(e)) => insert_op(
                    &mut tx,
                    &hazard_op(&e.hazard_id, HazardOp::EDIT, e.encode_to_vec())?,
                    &c.device_id,
                )
                .await
                .map_err(local)?,
                Some(Entity::HazardEscalation(e)) => {
                    sqlx::query(
                        "INSERT OR IGNORE INTO escalations (hazard_id, deadline_ms, level, to_cell, escalated_at_ms) \
                         VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(&e.hazard_id)
                    .bind(e.deadline_ms)
                    .bind(i64::from(e.level))
                    .bind(&e.to_cell)
                    .bind(e.escalated_at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(local)?;
                }
                Some(Entity::Task(t)) => insert_op(
                    &mut tx,
                    &hazard_op(&t.id, TaskOp::CREATE, t.encode_to_vec())?,
                    &c.device_id,
                )
                .await
                .map_err(local)?,
                Some(Entity::TaskEvent(e)) => {
                    if e.kind == wire::TaskEventKind::Offer as i32 && e.user == me {
                        offers.push(
                            patrolsync_proto::TaskId::from_slice(&e.task_id)
                                .map(|t| t.to_string())
                                .unwrap_or_default(),
                        );
                    }
                    insert_op(
                        &mut tx,
                        &hazard_op(&e.task_id, TaskOp::EVENT, e.encode_to_vec())?,
                        &c.device_id,
                    )
                    .await
                    .map_err(local)?
                }
                Some(Entity::HazardReminder(r)) => {
                    sqlx::query(
                        "INSERT OR IGNORE INTO reminders (hazard_id, deadline_ms, offset_ms, party, reminded_at_ms) \
                         VALUES (?, ?, ?, ?, ?)",
                    )
                    .bind(&r.hazard_id)
                    .bind(r.deadline_ms)
                    .bind(r.offset_ms)
                    .bind(&r.party)
                    .bind(r.reminded_at_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(local)?;
                }
                Some(Entity::Template(t)) => {
                    sqlx::query(
                        "INSERT OR IGNORE INTO templates (id, version, payload) VALUES (?, ?, ?)",
                    )
                    .bind(&t.id)
                    .bind(i64::from(t.version))
                    .bind(t.encode_to_vec())
                    .execute(&mut *tx)
                    .await
                    .map_err(local)?;
                }
                Some(Entity::Scope(change)) => {
                    notices.push(crate::scope::apply(&mut tx, change).await?);
                }
                Some(Entity::Unit(unit)) => crate::registers::store(&mut tx, unit).await?,
                Some(Entity::Household(h)) => crate::registers::store_household(&mut tx, h).await?,
                // Kinds this SDK does not keep locally.
                Some(Entity::CheckIn(_)) | None => {}
            }
        }
        // Move this device's clock past everything it has now seen, so its next edits order
        // after them even if its wall clock is behind.
        if let Some(seen) = page
            .changes
            .iter()
            .filter_map(|c| c.hlc)
            .map(Hlc::from)
            .max()
        {
            let rows = sqlx::query(
                "SELECT key, value FROM counters WHERE key IN ('hlc_wall_ms', 'hlc_logical')",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(local)?;
            let mut mine = Hlc::default();
            for r in rows {
                let v: i64 = r.get(1);
                match r.get::<String, _>(0).as_str() {
                    "hlc_wall_ms" => mine.wall_ms = v.max(0) as u64,
                    _ => mine.logical = u32::try_from(v).unwrap_or(0),
                }
            }
            if seen > mine {
                let next = mine.observe(seen, now_ms().max(0) as u64);
                sqlx::query(
                    "UPDATE counters SET value = CASE key WHEN 'hlc_wall_ms' THEN ? ELSE ? END \
                     WHERE key IN ('hlc_wall_ms', 'hlc_logical')",
                )
                .bind(next.wall_ms as i64)
                .bind(i64::from(next.logical))
                .execute(&mut *tx)
                .await
                .map_err(local)?;
            }
        }
        sqlx::query(
            "UPDATE pull_state SET cursor = ?, backfill_after = ?, feed = ?, \
             bootstrapped = CASE WHEN ? THEN bootstrapped ELSE 1 END WHERE id = 1",
        )
        .bind(page.next_cursor as i64)
        .bind(i64::try_from(page.backfill_after).unwrap_or(i64::MAX))
        .bind(&page.feed)
        .bind(page.has_more)
        .execute(&mut *tx)
        .await
        .map_err(local)?;
        tx.commit().await.map_err(local)?;
        self.data_changed(page.changes.iter().filter_map(|c| match &c.entity {
            Some(
                Entity::Cell(_) | Entity::Checkpoint(_) | Entity::Unit(_) | Entity::Household(_),
            ) => Some(DataKind::Grid),
            Some(Entity::Template(_)) => Some(DataKind::Templates),
            Some(
                Entity::HazardReport(_)
                | Entity::HazardEvent(_)
                | Entity::HazardFieldEdit(_)
                | Entity::HazardEscalation(_)
                | Entity::HazardReminder(_),
            ) => Some(DataKind::Hazards),
            Some(Entity::Task(_) | Entity::TaskEvent(_)) => Some(DataKind::Tasks),
            // A grant or revoke changes what is in view: the grid, and hazards with it.
            Some(Entity::Scope(_)) => Some(DataKind::Grid),
            Some(Entity::CheckIn(_)) | None => None,
        }));
        if page
            .changes
            .iter()
            .any(|c| matches!(c.entity, Some(Entity::Scope(_))))
        {
            self.data_changed([DataKind::Hazards, DataKind::Tasks]);
        }
        // Told only of offers the folded task still holds for this user.
        for task in offers {
            let Some(id) = task.parse::<patrolsync_proto::TaskId>().ok() else {
                continue;
            };
            let held = self.task(id).await.ok().flatten().is_some_and(|v| {
                v.state.status == patrolsync_proto::task::TaskStatus::Offered
                    && v.state.offered_to.as_deref() == Some(me.as_str())
            });
            if held {
                let _ = self
                    .inner
                    .events
                    .send(crate::SyncEvent::TaskOffered { task });
            }
        }
        Ok(notices)
    }

    /// Checkpoints of the device's cells, as last pulled, by code.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the
    /// network.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ReadError> {
        let rows = sqlx::query(
            "SELECT code, cell, name, tag_uid, latitude, longitude, radius_m FROM checkpoints ORDER BY code",
        )
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        Ok(rows
            .iter()
            .map(|r| Checkpoint {
                code: r.get(0),
                cell: r.get(1),
                name: r.get(2),
                tag_uid: r.get(3),
                latitude: r.get(4),
                longitude: r.get(5),
                radius_m: r.get(6),
            })
            .collect())
    }
}

/// Which hazards [`Client::hazards_where`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HazardFilter {
    /// Only those not closed or merged.
    pub open_only: bool,
    /// Only those reported in this grid cell.
    pub cell: Option<String>,
    /// At most this many (all when `None`).
    pub limit: Option<u32>,
    /// Skip this many of those selected (the page's start).
    pub offset: u32,
}

/// A checkpoint in the device's cells: where a patroller checks in.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Checkpoint {
    /// Its code, e.g. `S1-C1-K1-B1-P1`.
    pub code: String,
    /// The grid cell it belongs to.
    pub cell: String,
    /// Display name.
    pub name: String,
    /// The NFC/QR tag fixed there (empty if none).
    pub tag_uid: String,
    /// WGS-84 latitude, degrees, if surveyed.
    pub latitude: Option<f64>,
    /// WGS-84 longitude, degrees, if surveyed.
    pub longitude: Option<f64>,
    /// How far from the point a GPS check-in still counts, metres.
    pub radius_m: f64,
}

/// Why a transition in a hazard's history did not apply, as a code: the fold refused it for
/// the state the hazard was in, or for the actor's role (the same rule, run again).
pub fn conflict_code(h: &patrolsync_proto::hazard::HistoryEntry) -> crate::ErrorCode {
    use patrolsync_proto::hazard::{Refusal, transition};
    match transition(h.information, h.from, h.kind, h.role) {
        Err(Refusal::Role { .. }) => crate::ErrorCode::Forbidden {
            action: h.kind.as_str().into(),
        },
        Err(Refusal::WrongState { status }) => crate::ErrorCode::WrongState {
            action: h.kind.as_str().into(),
            status: status.as_str().into(),
        },
        Err(Refusal::Kind { information }) => crate::ErrorCode::WrongKind {
            action: h.kind.as_str().into(),
            information,
        },
        // The rule allows it now; the history's own reason stands (a newer SDK's fold).
        Ok(_) => crate::ErrorCode::Invalid {
            field: "kind".into(),
            reason: "conflict".into(),
        },
    }
}
