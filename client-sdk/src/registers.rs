//! The registers of the device's cells, as pulled: key units (重点单位户籍化管理), so a
//! patroller sees a unit's kind, risk, responsible person and checkpoints offline; and the
//! must-visit households (六必访), which reach only users assigned their cells.

use patrolsync_proto::household::HouseholdRecord;
use patrolsync_proto::unit::UnitRecord;
use patrolsync_proto::wire;
use prost::Message;
use sqlx::Row;

pub use patrolsync_proto::household::HouseholdGroup;
pub use patrolsync_proto::unit::{RiskLevel, UnitKind};

use crate::error::{local, read_failed};
use crate::{Client, ReadError, SyncError};

/// A key unit in the device's cells.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct KeyUnit {
    /// Its code.
    pub code: String,
    /// The grid cell it is in.
    pub cell: String,
    /// What kind of place it is.
    #[serde(serialize_with = "kind_name")]
    pub kind: UnitKind,
    /// Display name.
    pub name: String,
    /// Street address.
    pub address: String,
    /// The fire-safety responsible person (消防安全责任人).
    pub responsible_person: String,
    /// Their phone (empty if not on file).
    pub responsible_phone: String,
    /// Fire risk level.
    #[serde(serialize_with = "risk_name")]
    pub risk: RiskLevel,
    /// The last four-capabilities self-assessment (四个能力), `YYYY-MM-DD`, if on file.
    pub self_check_date: Option<String>,
    /// Codes of the checkpoints at the unit.
    pub checkpoints: Vec<String>,
}

fn kind_name<S: serde::Serializer>(k: &UnitKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

fn risk_name<S: serde::Serializer>(r: &RiskLevel, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(r.as_str())
}

impl From<UnitRecord> for KeyUnit {
    fn from(u: UnitRecord) -> Self {
        KeyUnit {
            code: u.code,
            cell: u.grid_cell,
            kind: u.kind,
            name: u.name,
            address: u.address,
            responsible_person: u.responsible_person,
            responsible_phone: u.responsible_phone,
            risk: u.risk,
            self_check_date: Some(u.self_check_date).filter(|d| !d.is_empty()),
            checkpoints: u.checkpoints,
        }
    }
}

/// Keeps a pulled unit (the newest version replaces the one held).
pub(crate) async fn store(
    tx: &mut sqlx::SqliteConnection,
    unit: &wire::KeyUnit,
) -> Result<(), SyncError> {
    sqlx::query("INSERT OR REPLACE INTO units (code, cell, payload) VALUES (?, ?, ?)")
        .bind(&unit.code)
        .bind(&unit.grid_cell)
        .bind(unit.encode_to_vec())
        .execute(&mut *tx)
        .await
        .map_err(local)?;
    Ok(())
}

/// A must-visit household (六必访) in the device's cells.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Household {
    /// Its code: what a visit names ([`crate::NewCheckIn::household`]).
    pub code: String,
    /// The grid cell it is in.
    pub cell: String,
    /// Address (building, unit, door).
    pub address: String,
    /// Its must-visit group.
    #[serde(serialize_with = "group_name")]
    pub group: HouseholdGroup,
    /// Whom to ask for at the door.
    pub contact_name: String,
    /// Their phone (empty if not on file).
    pub contact_phone: String,
}

fn group_name<S: serde::Serializer>(g: &HouseholdGroup, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(g.as_str())
}

impl From<HouseholdRecord> for Household {
    fn from(h: HouseholdRecord) -> Self {
        Household {
            code: h.code,
            cell: h.grid_cell,
            address: h.address,
            group: h.group,
            contact_name: h.contact_name,
            contact_phone: h.contact_phone,
        }
    }
}

/// Keeps a pulled household (the newest version replaces the one held).
pub(crate) async fn store_household(
    tx: &mut sqlx::SqliteConnection,
    h: &wire::Household,
) -> Result<(), SyncError> {
    if h.removed {
        // Off the register: nothing of it stays on the phone.
        sqlx::query("DELETE FROM households WHERE code = ?")
            .bind(&h.code)
            .execute(&mut *tx)
            .await
            .map_err(local)?;
        return Ok(());
    }
    sqlx::query("INSERT OR REPLACE INTO households (code, cell, payload) VALUES (?, ?, ?)")
        .bind(&h.code)
        .bind(&h.grid_cell)
        .bind(h.encode_to_vec())
        .execute(&mut *tx)
        .await
        .map_err(local)?;
    Ok(())
}

impl Client {
    /// The must-visit households of the device's cells, as last pulled, by code; with `cell`,
    /// only those in that cell.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the network.
    pub async fn households(&self, cell: Option<&str>) -> Result<Vec<Household>, ReadError> {
        let rows = sqlx::query(
            "SELECT payload FROM households WHERE ?1 IS NULL OR cell = ?1 ORDER BY code",
        )
        .bind(cell)
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        rows.iter()
            .map(|r| {
                HouseholdRecord::decode(&r.get::<Vec<u8>, _>(0))
                    .map(Household::from)
                    .map_err(|e| read_failed(e.message))
            })
            .collect()
    }

    /// The key units of the device's cells, as last pulled, by code; with `cell`, only those in
    /// that cell.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the network.
    pub async fn units(&self, cell: Option<&str>) -> Result<Vec<KeyUnit>, ReadError> {
        let rows =
            sqlx::query("SELECT payload FROM units WHERE ?1 IS NULL OR cell = ?1 ORDER BY code")
                .bind(cell)
                .fetch_all(&self.inner.db)
                .await
                .map_err(read_failed)?;
        rows.iter()
            .map(|r| {
                UnitRecord::decode(&r.get::<Vec<u8>, _>(0))
                    .map(KeyUnit::from)
                    .map_err(|e| read_failed(e.message))
            })
            .collect()
    }
}
