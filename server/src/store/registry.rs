//! The registers a grid keeps: key units (重点单位户籍化管理) with their kind, the people to
//! call, risk level, last four-capabilities self-assessment and the checkpoints at them; and the
//! households of the six must-visit groups (六必访). Both are filed under their cell in the
//! change log, so they reach the devices of that cell's scope through pull (households never
//! reach agencies). A unit's inspections are the check-ins at its checkpoints and its hazards
//! those reported there; a household's visits are the visit check-ins that name it.

use async_trait::async_trait;
use patrolsync_proto::household::HouseholdGroup;
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
    /// The account (user name) of the responsible person, for routing rules that send a
    /// unit's hazards to it (`unit = true`). Kept on the server; devices never receive it.
    pub responsible_user: Option<String>,
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
    /// The responsible person's account, for routing.
    pub responsible_user: Option<String>,
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

/// A household to create or update.
#[derive(Clone, Debug, PartialEq)]
pub struct NewHousehold {
    /// Unique code.
    pub code: String,
    /// Its cell.
    pub cell: String,
    /// Address (building, unit, door).
    pub address: String,
    /// Its must-visit group.
    pub group: HouseholdGroup,
    /// Whom to ask for at the door.
    pub contact_name: String,
    /// Their phone.
    pub contact_phone: String,
}

/// A household as the register holds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HouseholdEntry {
    /// Unique code.
    pub code: String,
    /// Its cell.
    pub cell: String,
    /// Its cell's path.
    #[serde(skip)]
    pub path: String,
    /// Address.
    pub address: String,
    /// Group (`hardship`, `elderly_alone`, …).
    pub group: String,
    /// Whom to ask for.
    pub contact_name: String,
    /// Their phone.
    pub contact_phone: String,
    /// When it was registered (Unix ms): no visit was owed before.
    pub created_at_ms: i64,
    /// When it was taken off the register (Unix ms): no visit is owed after. Its address and
    /// contact are empty then.
    pub removed_at_ms: Option<i64>,
}

/// A visit check-in that named a household.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HouseholdVisit {
    /// Check-in id (UUID text).
    pub id: String,
    /// The household.
    pub household: String,
    /// The checkpoint it was made at.
    pub checkpoint: String,
    /// Who visited.
    pub user: String,
    /// `inspected` (visited), or why not (`locked`: nobody home, …).
    pub outcome: String,
    /// When, by the device's clock (Unix ms).
    pub device_time_ms: i64,
    /// When the server received it (Unix ms).
    pub received_at_ms: i64,
}

/// A cell as the map draws it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MapCell {
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Level.
    pub level: u8,
    /// Its path (`/S1/S1-C1/`).
    #[serde(skip)]
    pub path: String,
    /// Boundary as GeoJSON geometry text, if known.
    #[serde(skip)]
    pub boundary: Option<String>,
}

/// The registers.
#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Creates or updates units, with their checkpoints exactly as given, in one transaction;
    /// each changed unit enters the change log under its cell. Returns how many units changed
    /// (0 on a repeat import).
    async fn upsert_units(&self, units: &[NewUnit], now_ms: i64) -> Result<u64, StoreError>;

    /// The units in `cell`'s subtree (every unit for `None`), by code.
    async fn units(&self, cell: Option<&str>) -> Result<Vec<UnitEntry>, StoreError>;

    /// The unit `code` with its latest `limit` check-ins and its hazards; `None` if there is no
    /// such unit.
    async fn unit_file(&self, code: &str, limit: u32) -> Result<Option<UnitFile>, StoreError>;

    /// The cells directly under `cell` (the top cells for `None`) that are not retired, by code,
    /// with their boundaries: what the map draws at one level.
    async fn map_cells(&self, cell: Option<&str>) -> Result<Vec<MapCell>, StoreError>;

    /// Creates or updates households in one transaction; each changed one enters the change
    /// log under its cell. Returns how many changed (0 on a repeat import).
    async fn upsert_households(
        &self,
        households: &[NewHousehold],
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// The visits naming a household in `cell`'s subtree with device time in
    /// `[from_ms, to_ms)`, received by `as_of_ms`, by device time then id.
    async fn household_visits(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<HouseholdVisit>, StoreError>;

    /// Takes households off the register at `now_ms`: their address and contact are cleared,
    /// devices drop them at their next pull, and no visit is owed after. Returns how many were
    /// on it (0 for ones already off); an unknown code is an error and nothing is removed.
    async fn remove_households(&self, codes: &[String], now_ms: i64) -> Result<u64, StoreError>;

    /// The households in `cell`'s subtree (every one for `None`) registered by `as_of_ms`, by
    /// code, those taken off it since included (see `removed_at_ms`).
    async fn households(
        &self,
        cell: Option<&str>,
        as_of_ms: i64,
    ) -> Result<Vec<HouseholdEntry>, StoreError>;
}
