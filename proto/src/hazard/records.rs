//! Hazard records as devices send them, validated: reports, events, field edits.

use super::*;
use crate::checkin::{Invalid, MAX_PHOTOS, MAX_TEXT_CHARS, plausible_time, validate_fix};
use crate::ids::{EventId, HazardId};
use crate::{GeoFix, wire};

/// A validated hazard report.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Client-generated id.
    pub id: HazardId,
    /// The grid cell it is in.
    pub grid_cell: String,
    /// Checkpoint code, or empty.
    pub checkpoint: String,
    /// Where, if known.
    pub position: Option<GeoFix>,
    /// Category.
    pub category: HazardCategory,
    /// Severity.
    pub severity: Severity,
    /// On the spot or by deadline.
    pub handling: Handling,
    /// Deadline (Unix ms), required for by-deadline handling.
    pub deadline_ms: Option<i64>,
    /// What was seen.
    pub description: String,
    /// Before photos.
    pub photos: Vec<[u8; 32]>,
    /// Device time when reported.
    pub device_time_ms: i64,
}

/// A validated event of the closed loop.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Client-generated id.
    pub id: EventId,
    /// The hazard.
    pub hazard: HazardId,
    /// Which transition.
    pub kind: EventKind,
    /// New deadline (notify, transfer).
    pub deadline_ms: Option<i64>,
    /// Target agency (transfer).
    pub agency: Option<Agency>,
    /// Surviving hazard (merge).
    pub merge_into: Option<HazardId>,
    /// Note or reason.
    pub note: String,
    /// After photos and evidence.
    pub photos: Vec<[u8; 32]>,
    /// Device time when made.
    pub device_time_ms: i64,
}

/// A validated field edit.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    /// The hazard.
    pub hazard: HazardId,
    /// The new value.
    pub value: FieldValue,
}

/// A typed value of an editable field.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// New description.
    Description(String),
    /// New severity.
    Severity(Severity),
    /// New category.
    Category(HazardCategory),
    /// New deadline, or none.
    Deadline(Option<i64>),
    /// New handling.
    Handling(Handling),
}

pub(super) fn photos(field: &str, raw: &[Vec<u8>]) -> Result<Vec<[u8; 32]>, Invalid> {
    if raw.len() > MAX_PHOTOS {
        return Err(Invalid::new(
            field,
            "too_many",
            format!("{} photos exceed the limit of {MAX_PHOTOS}", raw.len()),
        ));
    }
    raw.iter()
        .enumerate()
        .map(|(i, h)| {
            <[u8; 32]>::try_from(h.as_slice()).map_err(|_| {
                Invalid::new(
                    format!("{field}[{i}]"),
                    "invalid_hash",
                    format!("a photo hash must be 32 bytes of SHA-256, got {}", h.len()),
                )
            })
        })
        .collect()
}

pub(super) fn text(field: &str, v: &str) -> Result<(), Invalid> {
    crate::checkin::text(field, v, MAX_TEXT_CHARS)
}

pub(super) fn required<T>(field: &str, v: Option<T>, what: &str) -> Result<T, Invalid> {
    v.ok_or_else(|| Invalid::new(field, "missing", format!("{field} is required ({what})")))
}

pub(super) fn names<T: Copy>(all: &[T], f: fn(T) -> &'static str) -> String {
    all.iter().map(|v| f(*v)).collect::<Vec<_>>().join(", ")
}

impl Report {
    /// Validates a wire report received at `now_ms`.
    pub fn from_wire(w: wire::HazardReport, now_ms: i64) -> Result<Report, Invalid> {
        let id = HazardId::from_slice(&w.id).ok_or_else(|| {
            Invalid::new(
                "id",
                "invalid_id",
                format!("id must be a 16-byte UUID, got {} bytes", w.id.len()),
            )
        })?;
        if w.grid_cell.trim().is_empty() {
            return Err(Invalid::new(
                "grid_cell",
                "missing",
                "grid_cell is required",
            ));
        }
        // Codes are looked up, stored and shown: the same rule as a check-in's checkpoint.
        crate::checkin::text(
            "grid_cell",
            w.grid_cell.trim(),
            crate::checkin::MAX_CODE_CHARS,
        )?;
        crate::checkin::text(
            "checkpoint",
            w.checkpoint.trim(),
            crate::checkin::MAX_CODE_CHARS,
        )?;
        text("description", &w.description)?;
        let category = required(
            "category",
            HazardCategory::from_wire(w.category)?,
            &names(HazardCategory::ALL, HazardCategory::as_str),
        )?;
        let severity = Severity::from_wire(w.severity)?.unwrap_or(Severity::General);
        let handling = match Handling::from_wire(w.handling)? {
            // An information report is acknowledged, not rectified: it names no handling.
            None if category.is_information() => Handling::OnTheSpot,
            h => required("handling", h, "on_the_spot or by_deadline")?,
        };
        let deadline_ms = (w.deadline_ms != 0).then_some(w.deadline_ms);
        if category.is_information() && (handling == Handling::ByDeadline || deadline_ms.is_some())
        {
            return Err(Invalid::new(
                "deadline_ms",
                "information_report",
                format!("a {category} report is acknowledged, not rectified: it takes no deadline"),
            ));
        }
        if handling == Handling::ByDeadline && deadline_ms.is_none() {
            return Err(Invalid::new(
                "deadline_ms",
                "missing",
                "a by_deadline hazard needs a deadline",
            ));
        }
        plausible_time("device_time_ms", w.device_time_ms, now_ms)?;
        let position = w
            .position
            .map(|p| validate_fix("position", p, now_ms))
            .transpose()?;
        Ok(Report {
            id,
            grid_cell: w.grid_cell.trim().to_owned(),
            checkpoint: w.checkpoint.trim().to_owned(),
            position,
            category,
            severity,
            handling,
            deadline_ms,
            description: w.description,
            photos: photos("photo_sha256", &w.photo_sha256)?,
            device_time_ms: w.device_time_ms,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::HazardReport {
        wire::HazardReport {
            id: self.id.to_bytes(),
            grid_cell: self.grid_cell.clone(),
            checkpoint: self.checkpoint.clone(),
            position: self.position.as_ref().map(crate::GeoFix::to_wire),
            category: self.category.to_wire(),
            severity: self.severity.to_wire(),
            handling: self.handling.to_wire(),
            deadline_ms: self.deadline_ms.unwrap_or(0),
            description: self.description.clone(),
            photo_sha256: self.photos.iter().map(|p| p.to_vec()).collect(),
            device_time_ms: self.device_time_ms,
        }
    }
}

impl Event {
    /// Validates a wire event received at `now_ms`: the parts each kind needs are present.
    pub fn from_wire(w: wire::HazardEvent, now_ms: i64) -> Result<Event, Invalid> {
        let id = EventId::from_slice(&w.id).ok_or_else(|| {
            Invalid::new(
                "id",
                "invalid_id",
                format!("id must be a 16-byte UUID, got {} bytes", w.id.len()),
            )
        })?;
        let hazard = HazardId::from_slice(&w.hazard_id).ok_or_else(|| {
            Invalid::new(
                "hazard_id",
                "invalid_id",
                format!(
                    "hazard_id must be a 16-byte UUID, got {} bytes",
                    w.hazard_id.len()
                ),
            )
        })?;
        let kind = required(
            "kind",
            EventKind::from_wire(w.kind)?,
            &names(EventKind::ALL, EventKind::as_str),
        )?;
        text("note", &w.note)?;
        plausible_time("device_time_ms", w.device_time_ms, now_ms)?;
        let photos = photos("photo_sha256", &w.photo_sha256)?;
        let agency = Agency::from_wire(w.agency)?;
        let deadline_ms = (w.deadline_ms != 0).then_some(w.deadline_ms);
        let merge_into = if w.merge_into.is_empty() {
            None
        } else {
            Some(HazardId::from_slice(&w.merge_into).ok_or_else(|| {
                Invalid::new(
                    "merge_into",
                    "invalid_id",
                    "merge_into must be a 16-byte UUID",
                )
            })?)
        };
        match kind {
            EventKind::Notify if deadline_ms.is_none() => {
                return Err(Invalid::new(
                    "deadline_ms",
                    "missing",
                    "notify needs the deadline the owner must fix by",
                ));
            }
            EventKind::FixOnSpot | EventKind::SubmitFix | EventKind::AgencyFix
                if photos.is_empty() =>
            {
                return Err(Invalid::new(
                    "photo_sha256",
                    "missing",
                    format!("{kind} needs an after photo"),
                ));
            }
            EventKind::Transfer if agency.is_none() => {
                return Err(Invalid::new(
                    "agency",
                    "missing",
                    "transfer needs the agency (police_station or fire_brigade)",
                ));
            }
            EventKind::AgencyReturn | EventKind::Reopen if w.note.trim().is_empty() => {
                return Err(Invalid::new(
                    "note",
                    "missing",
                    format!("{kind} needs a reason in the note"),
                ));
            }
            EventKind::Merge if merge_into.is_none() || merge_into == Some(hazard) => {
                return Err(Invalid::new(
                    "merge_into",
                    "invalid",
                    "merge needs another hazard to merge into",
                ));
            }
            _ => {}
        }
        Ok(Event {
            id,
            hazard,
            kind,
            deadline_ms,
            agency,
            merge_into,
            note: w.note,
            photos,
            device_time_ms: w.device_time_ms,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::HazardEvent {
        wire::HazardEvent {
            id: self.id.to_bytes(),
            hazard_id: self.hazard.to_bytes(),
            kind: self.kind.to_wire(),
            deadline_ms: self.deadline_ms.unwrap_or(0),
            agency: self.agency.map(Agency::to_wire).unwrap_or(0),
            merge_into: self.merge_into.map(HazardId::to_bytes).unwrap_or_default(),
            note: self.note.clone(),
            photo_sha256: self.photos.iter().map(|p| p.to_vec()).collect(),
            device_time_ms: self.device_time_ms,
        }
    }
}

impl Edit {
    /// Validates a wire field edit.
    pub fn from_wire(w: wire::HazardFieldEdit) -> Result<Edit, Invalid> {
        let hazard = HazardId::from_slice(&w.hazard_id).ok_or_else(|| {
            Invalid::new(
                "hazard_id",
                "invalid_id",
                format!(
                    "hazard_id must be a 16-byte UUID, got {} bytes",
                    w.hazard_id.len()
                ),
            )
        })?;
        let field = required(
            "field",
            Field::from_wire(w.field)?,
            &names(Field::ALL, Field::as_str),
        )?;
        let bad = |e: String| Invalid::new("value", "invalid", e);
        let value = match field {
            Field::Description => {
                text("value", &w.value)?;
                FieldValue::Description(w.value)
            }
            Field::Severity => FieldValue::Severity(w.value.parse().map_err(bad)?),
            Field::Category => FieldValue::Category(w.value.parse().map_err(bad)?),
            Field::Handling => FieldValue::Handling(w.value.parse().map_err(bad)?),
            Field::Deadline if w.value.is_empty() => FieldValue::Deadline(None),
            Field::Deadline => {
                FieldValue::Deadline(Some(w.value.parse::<i64>().map_err(|_| {
                    bad(format!(
                        "deadline must be Unix milliseconds, got {:?}",
                        w.value
                    ))
                })?))
            }
        };
        Ok(Edit { hazard, value })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::HazardFieldEdit {
        let (field, value) = match &self.value {
            FieldValue::Description(d) => (Field::Description, d.clone()),
            FieldValue::Severity(s) => (Field::Severity, s.as_str().to_owned()),
            FieldValue::Category(c) => (Field::Category, c.as_str().to_owned()),
            FieldValue::Deadline(d) => (
                Field::Deadline,
                d.map(|d| d.to_string()).unwrap_or_default(),
            ),
            FieldValue::Handling(h) => (Field::Handling, h.as_str().to_owned()),
        };
        wire::HazardFieldEdit {
            hazard_id: self.hazard.to_bytes(),
            field: field.to_wire(),
            value,
        }
    }

    /// Which field this edits.
    pub fn field(&self) -> Field {
        match self.value {
            FieldValue::Description(_) => Field::Description,
            FieldValue::Severity(_) => Field::Severity,
            FieldValue::Category(_) => Field::Category,
            FieldValue::Deadline(_) => Field::Deadline,
            FieldValue::Handling(_) => Field::Handling,
        }
    }
}
