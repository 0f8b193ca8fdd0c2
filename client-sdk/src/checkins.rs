//! Check-ins: recorded offline and durable before the call returns, checked by the protocol's
//! rules first; a checklist's answers are checked against the template version used, and each
//! `issue` on an item with a hazard category raises a hazard report in the same local
//! transaction as the check-in.

use patrolsync_proto::checkin::{Answer, Invalid};
use patrolsync_proto::hazard::{Handling, Report, Severity};
use patrolsync_proto::op::OpBody;
use patrolsync_proto::{
    CheckIn, CheckInId, CheckInKind, CheckInMethod, CheckInOutcome, GeoFix, HazardId,
};
use sqlx::Row;

use crate::clock::{now_ms, uptime_ms};
use crate::error::read_failed;
use crate::{Client, ReadError, RecordError};

/// A check-in as the app records it. The SDK fills in the id, times and sequence.
#[derive(Clone, Debug, PartialEq)]
pub struct NewCheckIn {
    /// Checkpoint code.
    pub checkpoint: String,
    /// Patrol, inspection or visit.
    pub kind: CheckInKind,
    /// How presence was proven.
    pub method: CheckInMethod,
    /// NFC/QR tag UID, if read.
    pub tag_uid: String,
    /// Position fix, if any.
    pub fix: Option<GeoFix>,
    /// Inspected, or why not.
    pub outcome: CheckInOutcome,
    /// Checklist template id and version the answers were recorded against.
    pub template: Option<(String, u32)>,
    /// Checklist answers.
    pub answers: Vec<Answer>,
    /// Free text.
    pub note: String,
    /// SHA-256 of photos, from [`Client::add_photo`].
    pub photos: Vec<[u8; 32]>,
    /// Device monotonic clock since boot, ms; read from the OS when `None`.
    pub monotonic_ms: Option<u64>,
    /// For a visit (`kind` = visit): the code of the household visited (六必访), one of
    /// [`Client::households`]. Any other kind naming a household is refused.
    pub household: Option<String>,
}

impl NewCheckIn {
    /// A manual check-in at `checkpoint` with `outcome`; set the other fields as needed.
    pub fn new(checkpoint: impl Into<String>, outcome: CheckInOutcome) -> Self {
        NewCheckIn {
            checkpoint: checkpoint.into(),
            kind: CheckInKind::Patrol,
            method: CheckInMethod::Manual,
            tag_uid: String::new(),
            fix: None,
            outcome,
            template: None,
            answers: Vec::new(),
            note: String::new(),
            photos: Vec::new(),
            monotonic_ms: None,
            household: None,
        }
    }
}

/// One of this device's own check-ins and whether the server has it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LocalCheckIn {
    /// The check-in.
    pub id: String,
    /// Checkpoint code.
    pub checkpoint: String,
    /// Outcome.
    pub outcome: String,
    /// When recorded (device clock, Unix ms).
    pub device_time_ms: i64,
    /// Note.
    pub note: String,
    /// `pending`, `synced` or `rejected`.
    pub state: String,
}

/// What recording a checklist queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedCheckIn {
    /// The check-in.
    pub check_in: CheckInId,
    /// Hazards its answers raised (issues on items with a hazard category).
    pub hazards: Vec<HazardId>,
}

impl Client {
    /// Validates the check-in and writes it to the outbox. Returns once it is durable on the
    /// device; needs no network.
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
    pub async fn record_checkin(&self, c: NewCheckIn) -> Result<CheckInId, RecordError> {
        Ok(self.record_checklist(c).await?.check_in)
    }

    /// The check-in `c` describes, checked by the protocol's rules (not yet queued).
    pub(crate) async fn new_check_in(&self, c: NewCheckIn) -> Result<CheckIn, RecordError> {
        if self
            .device_id()
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?
            .is_none()
        {
            return Err(RecordError::NotEnrolled);
        }
        let now = now_ms();
        let (template_id, template_version) = c.template.unwrap_or_default();
        let check_in = CheckIn {
            id: CheckInId(uuid::Uuid::now_v7()),
            checkpoint: c.checkpoint,
            kind: c.kind,
            method: c.method,
            tag_uid: c.tag_uid,
            device_time_ms: now,
            monotonic_ms: c.monotonic_ms.unwrap_or_else(|| self.since_boot_ms()),
            fix: c.fix,
            outcome: c.outcome,
            template_id,
            template_version,
            answers: c.answers,
            photos: c.photos,
            note: c.note,
            household: c.household.unwrap_or_default(),
        };
        // The server runs the same rules; refusing here saves a round trip and a rejection.
        Ok(CheckIn::from_wire(check_in.to_wire(), now)?)
    }

    /// Records a check-in with checklist answers (offline, durable before it returns). When
    /// the device holds the template version named in `c.template`, the answers are checked
    /// against it first (the server checks the same), and each `issue` on an item with a
    /// hazard category raises a hazard report at the checkpoint, queued atomically with the
    /// check-in.
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
    pub async fn record_checklist(&self, c: NewCheckIn) -> Result<RecordedCheckIn, RecordError> {
        let storage = |e: ReadError| RecordError::Storage(e.to_string());
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

    /// Milliseconds since boot, from the platform's clock when the app gave one.
    fn since_boot_ms(&self) -> u64 {
        match &self.inner.config.monotonic_clock {
            Some(clock) => clock.since_boot_ms().unwrap_or(0),
            None => uptime_ms(),
        }
    }

    /// This device's check-ins, newest first, with their sync state: `limit` of them after the
    /// one with id `after` (a page that stays put while new check-ins arrive; `None` for the
    /// first page).
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read.
    pub async fn recent_check_ins(
        &self,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Vec<LocalCheckIn>, ReadError> {
        let after = match after {
            Some(id) => Some(
                uuid::Uuid::parse_str(id)
                    .map_err(|_| read_failed(format!("{id} is not a check-in id")))?
                    .as_bytes()
                    .to_vec(),
            ),
            None => None,
        };
        // Keyset paging on (device time, id): the page after a row is the same whatever was
        // recorded since.
        let rows = sqlx::query(
            "SELECT id, checkpoint, outcome, device_time_ms, note, state FROM my_check_ins \
             WHERE ?1 IS NULL OR (device_time_ms, id) < \
               (SELECT device_time_ms, id FROM my_check_ins WHERE id = ?1) \
             ORDER BY device_time_ms DESC, id DESC LIMIT ?2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        Ok(rows
            .iter()
            .map(|r| LocalCheckIn {
                id: uuid::Uuid::from_slice(&r.get::<Vec<u8>, _>(0))
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                checkpoint: r.get(1),
                outcome: r.get(2),
                device_time_ms: r.get(3),
                note: r.get(4),
                state: r.get(5),
            })
            .collect())
    }
}
