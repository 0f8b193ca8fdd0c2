//! Grid records as devices receive them through pull: cells and checkpoints.

use prost::Message;

use crate::checkin::Invalid;
use crate::wire;

/// A grid cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellRecord {
    /// Code, e.g. `S1-C2`.
    pub code: String,
    /// Parent code, empty at the top.
    pub parent: String,
    /// Level 1..4.
    pub level: u32,
    /// Display name.
    pub name: String,
    /// Retired cells keep their history but take no new records.
    pub retired: bool,
}

/// A checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRecord {
    /// Code, e.g. `S1-C2-K3-B4-P1`.
    pub code: String,
    /// Its cell.
    pub grid_cell: String,
    /// Display name.
    pub name: String,
    /// NFC/QR tag UID.
    pub tag_uid: String,
    /// Position, if known.
    pub position: Option<(f64, f64)>,
    /// On-site radius, metres.
    pub radius_m: f64,
}

impl CellRecord {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        wire::GridCell {
            code: self.code.clone(),
            parent: self.parent.clone(),
            level: self.level,
            name: self.name.clone(),
            retired: self.retired,
        }
        .encode_to_vec()
    }

    /// From protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<CellRecord, Invalid> {
        let w = wire::GridCell::decode(bytes)
            .map_err(|e| Invalid::new("cell", "corrupt", e.to_string()))?;
        Ok(CellRecord {
            code: w.code,
            parent: w.parent,
            level: w.level,
            name: w.name,
            retired: w.retired,
        })
    }
}

impl CheckpointRecord {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (latitude, longitude) = self.position.unwrap_or((f64::NAN, f64::NAN));
        wire::Checkpoint {
            code: self.code.clone(),
            grid_cell: self.grid_cell.clone(),
            name: self.name.clone(),
            tag_uid: self.tag_uid.clone(),
            latitude,
            longitude,
            radius_m: self.radius_m,
            template_id: String::new(),
        }
        .encode_to_vec()
    }

    /// From protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<CheckpointRecord, Invalid> {
        let w = wire::Checkpoint::decode(bytes)
            .map_err(|e| Invalid::new("checkpoint", "corrupt", e.to_string()))?;
        let position = (w.latitude.is_finite() && w.longitude.is_finite())
            .then_some((w.latitude, w.longitude));
        Ok(CheckpointRecord {
            code: w.code,
            grid_cell: w.grid_cell,
            name: w.name,
            tag_uid: w.tag_uid,
            position,
            radius_m: w.radius_m,
        })
    }
}
