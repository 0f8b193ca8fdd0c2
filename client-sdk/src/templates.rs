//! Checklist templates on the device, as pulled from the server, and recording a checklist:
//! the answers are checked against the version used before anything is queued, and each
//! `issue` on an item with a hazard category raises a hazard report in the same local
//! transaction as the check-in.

use patrolsync_proto::checkin::Invalid;
use patrolsync_proto::hazard::{Handling, Report, Severity};
use patrolsync_proto::op::OpBody;
use patrolsync_proto::template::Template;
use patrolsync_proto::{CheckInId, HazardId, wire};
use prost::Message;

use crate::{Client, NewCheckIn, RecordError, SyncError, local};

/// What recording a checklist queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCheckIn {
    /// The check-in.
    pub check_in: CheckInId,
    /// Hazards its answers raised (issues on items with a hazard category).
    pub hazards: Vec<HazardId>,
}

fn decode(payload: &[u8]) -> Result<Template, SyncError> {
    let w = wire::ChecklistTemplate::decode(payload).map_err(local)?;
    Template::from_wire(w).map_err(|e| local(e.message))
}

impl Client {
    /// The latest version of every checklist template the server has published.
    pub async fn templates(&self) -> Result<Vec<Template>, SyncError> {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT payload FROM templates t WHERE version = \
             (SELECT MAX(version) FROM templates WHERE id = t.id) ORDER BY id",
        )
        .fetch_all(&self.inner.db)
        .await
        .map_err(local)?;
        rows.iter().map(|p| decode(p)).collect()
    }

    /// Template `id` at `version` (the latest when `None`), if this device has it.
    pub async fn template(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<Option<Template>, SyncError> {
        let payload: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT payload FROM templates WHERE id = ? AND (? = 0 OR version = ?) \
             ORDER BY version DESC LIMIT 1",
        )
        .bind(id)
        .bind(i64::from(version.unwrap_or(0)))
        .bind(i64::from(version.unwrap_or(0)))
        .fetch_optional(&self.inner.db)
        .await
        .map_err(local)?;
        payload.as_deref().map(decode).transpose()
    }

    /// Records a check-in with checklist answers (offline, durable before it returns). When
    /// the device holds the template version named in `c.template`, the answers are checked
    /// against it first (the server checks the same), and each `issue` on an item with a
    /// hazard category raises a hazard report at the checkpoint, queued atomically with the
    /// check-in.
    pub async fn record_checklist(&self, c: NewCheckIn) -> Result<RecordedCheckIn, RecordError> {
        let storage = |e: SyncError| RecordError::Storage(e.to_string());
        let template = match &c.template {
            Some((id, version)) => self.template(id, Some(*version)).await.map_err(storage)?,
            None => None,
        };
        let check_in = self.new_check_in(c).await?;
        let now = check_in.device_time_ms;
        let mut ops = Vec::new();
        let mut hazards = Vec::new();
        if let Some(t) = &template {
            t.check_answers(check_in.outcome, &check_in.answers)?;
            let raised = t.hazards(&check_in.answers);
            if !raised.is_empty() {
                let cell: Option<String> =
                    sqlx::query_scalar("SELECT cell FROM checkpoints WHERE code = ?")
                        .bind(&check_in.checkpoint)
                        .fetch_optional(&self.inner.db)
                        .await
                        .map_err(|e| RecordError::Storage(e.to_string()))?;
                let cell = cell.ok_or_else(|| {
                    Invalid::new(
                        "checkpoint",
                        "unknown",
                        format!(
                            "checkpoint {} is not on this device yet (sync first): its cell is needed for the hazards the answers raise",
                            check_in.checkpoint
                        ),
                    )
                })?;
                for (item, answer, category) in raised {
                    let id = HazardId(uuid::Uuid::now_v7());
                    let report = Report {
                        id,
                        grid_cell: cell.clone(),
                        checkpoint: check_in.checkpoint.clone(),
                        position: check_in.fix.clone(),
                        category,
                        severity: Severity::General,
                        handling: Handling::OnTheSpot,
                        deadline_ms: None,
                        description: if answer.note.trim().is_empty() {
                            item.label.clone()
                        } else {
                            format!("{}: {}", item.label, answer.note.trim())
                        },
                        photos: answer.photos.clone(),
                        device_time_ms: now,
                    };
                    let report = Report::from_wire(report.to_wire(), now)?;
                    ops.push((OpBody::HazardReport(Box::new(report)), id.to_bytes()));
                    hazards.push(id);
                }
            }
        }
        let id = check_in.id;
        ops.insert(
            0,
            (
                OpBody::CheckIn(Box::new(check_in)),
                id.0.as_bytes().to_vec(),
            ),
        );
        self.enqueue_all(ops, now).await?;
        Ok(RecordedCheckIn {
            check_in: id,
            hazards,
        })
    }
}
