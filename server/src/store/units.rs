//! The key-unit register (重点单位户籍化管理): units with their kind, the people to call, risk
//! level, last four-capabilities self-assessment and the checkpoints at them. A unit is filed
//! under its cell like a checkpoint, so it reaches the devices of that cell's scope through
//! pull; its inspections are the check-ins at its checkpoints and its hazards those reported
//! there.

use async_trait::async_trait;
use patrolsync_proto::unit::{RiskLevel, UnitKind};
use serde::Serialize;

use super::{HazardSummary, StoreError};

/// A key unit to create or update.
#[derive(Clone, Debug, PartialEq)]
pub struct NewUnit {
    /// Unique code.
    pub code: String,
    /// Its cell.
    pub cell: String,
    /// What kind of place it is.
    pub kind: UnitKind,
    /// Display name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// The fire-safety responsible person (消防安全责任人).
    pub responsible_person: String,
    /// Their phone.
    pub responsible_phone: String,
    /// Fire risk level.
    pub risk: RiskLevel,
    /// The last four-capabilities self-assessment, `YYYY-MM-DD`.
    pub self_check_date: Option<String>,
    /// Codes of the checkpoints at the unit (each in the unit's cell or below it).
    pub checkpoints: Vec<String>,
}

/// A key unit as the register holds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnitEntry {
    /// Unique code.
    pub code: String,
    /// Its cell.
    pub cell: String,
    /// Kind (`rental_housing`, `small_venue`, …).
    pub kind: String,
    /// Display name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// The fire-safety responsible person.
    pub responsible_person: String,
    /// Their phone.
    pub responsible_phone: String,
    /// Risk level (`low`, `medium`, `high`).
    pub risk: String,
    /// The last four-capabilities self-assessment, `YYYY-MM-DD`.
    pub self_check_date: Option<String>,
    /// Codes of the checkpoints at the unit, sorted.
    pub checkpoints: Vec<String>,
}

/// A check-in at one of a unit's checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnitCheckIn {
    /// Check-in id (UUID text).
    pub id: String,
    /// The checkpoint.
    pub checkpoint: String,
    /// Who made it.
    pub user: String,
    /// `patrol`, `inspection` or `visit`.
    pub kind: String,
    /// `inspected`, `locked`, …
    pub outcome: String,
    /// When, by the device's clock (Unix ms).
    pub device_time_ms: i64,
    /// When the server received it (Unix ms).
    pub received_at_ms: i64,
}

/// A unit's file: the unit, its latest inspections and its hazards.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnitFile {
    /// The unit.
    pub unit: UnitEntry,
    /// Check-ins at its checkpoints, newest first (at most the limit asked for).
    pub check_ins: Vec<UnitCheckIn>,
    /// Check-ins at its checkpoints in all.
    pub check_ins_total: i64,
    /// Hazards reported at its checkpoints, newest report first, as folded (at most the limit
    /// asked for).
    pub hazards: Vec<HazardSummary>,
    /// Hazards reported at its checkpoints in all.
    pub hazards_total: i64,
}

/// The register.
#[async_trait]
pub trait UnitStore: Send + Sync {
    /// Creates or updates units, with their checkpoints exactly as given, in one transaction;
    /// each changed unit enters the change log under its cell. Returns how many units changed
    /// (0 on a repeat import).
    async fn upsert_units(&self, units: &[NewUnit], now_ms: i64) -> Result<u64, StoreError>;

    /// The units in `cell`'s subtree (every unit for `None`), by code.
    async fn units(&self, cell: Option<&str>) -> Result<Vec<UnitEntry>, StoreError>;

    /// The unit `code` with its latest `limit` check-ins and its hazards; `None` if there is no
    /// such unit.
    async fn unit_file(&self, code: &str, limit: u32) -> Result<Option<UnitFile>, StoreError>;
}
