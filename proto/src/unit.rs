//! The key-unit register (重点单位户籍化管理) as devices receive it through pull: each unit
//! with its kind, people to call, risk level, last four-capabilities self-assessment and the
//! checkpoints at it.

use prost::Message;

use crate::checkin::Invalid;
use crate::wire;

wire_enum!(
    /// What kind of place a key unit is.
    UnitKind, UnitKind, "kind", {
    /// Rental housing (出租房屋).
    RentalHousing = "rental_housing",
    /// A small venue (六小/九小场所): shop, eatery, workshop, lodging, entertainment.
    SmallVenue = "small_venue",
    /// A school (学校).
    School = "school",
    /// A hospital (医院).
    Hospital = "hospital",
    /// A high-rise building (高层建筑).
    HighRise = "high_rise",
    /// A market (市场).
    Market = "market",
    /// A warehouse (仓库).
    Warehouse = "warehouse",
    /// A unit handling drugs (涉药单位), as the drug-safety grid names them.
    DrugHandling = "drug_handling",
    /// Anything else.
    Other = "other",
});

wire_enum!(
    /// A key unit's fire risk level.
    RiskLevel, RiskLevel, "risk", {
    /// Low (低).
    Low = "low",
    /// Medium (中).
    Medium = "medium",
    /// High (高).
    High = "high",
});

/// A key unit.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitRecord {
    /// Code, unique among units.
    pub code: String,
    /// Its cell.
    pub grid_cell: String,
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
    /// The last four-capabilities self-assessment (四个能力), `YYYY-MM-DD`; empty when none.
    pub self_check_date: String,
    /// Codes of the checkpoints at the unit.
    pub checkpoints: Vec<String>,
}

impl UnitRecord {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        wire::KeyUnit {
            code: self.code.clone(),
            grid_cell: self.grid_cell.clone(),
            kind: self.kind.to_wire(),
            name: self.name.clone(),
            address: self.address.clone(),
            responsible_person: self.responsible_person.clone(),
            responsible_phone: self.responsible_phone.clone(),
            risk: self.risk.to_wire(),
            self_check_date: self.self_check_date.clone(),
            checkpoints: self.checkpoints.clone(),
        }
        .encode_to_vec()
    }

    /// From the wire. A kind or risk level this build does not know (a newer server's) reads
    /// as `other` and `medium`, so an older device still shows the unit.
    pub fn from_wire(w: &wire::KeyUnit) -> UnitRecord {
        UnitRecord {
            code: w.code.clone(),
            grid_cell: w.grid_cell.clone(),
            kind: UnitKind::from_wire(w.kind)
                .ok()
                .flatten()
                .unwrap_or(UnitKind::Other),
            name: w.name.clone(),
            address: w.address.clone(),
            responsible_person: w.responsible_person.clone(),
            responsible_phone: w.responsible_phone.clone(),
            risk: RiskLevel::from_wire(w.risk)
                .ok()
                .flatten()
                .unwrap_or(RiskLevel::Medium),
            self_check_date: w.self_check_date.clone(),
            checkpoints: w.checkpoints.clone(),
        }
    }

    /// From protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<UnitRecord, Invalid> {
        let w = wire::KeyUnit::decode(bytes)
            .map_err(|e| Invalid::new("unit", "corrupt", e.to_string()))?;
        Ok(UnitRecord::from_wire(&w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_round_trips_and_unknown_values_read_as_other_and_medium() {
        let unit = UnitRecord {
            code: "U-1".into(),
            grid_cell: "S1-C1-K1".into(),
            kind: UnitKind::DrugHandling,
            name: "仁和大药房".into(),
            address: "中山路 12 号".into(),
            responsible_person: "王芳".into(),
            responsible_phone: "13800000000".into(),
            risk: RiskLevel::High,
            self_check_date: "2026-11-20".into(),
            checkpoints: vec!["S1-C1-K1-P1".into(), "S1-C1-K1-P2".into()],
        };
        assert_eq!(UnitRecord::decode(&unit.encode()), Ok(unit.clone()));
        let newer = wire::KeyUnit {
            kind: 99,
            risk: 99,
            ..Default::default()
        };
        let read = UnitRecord::decode(&newer.encode_to_vec()).expect("decodes");
        assert_eq!((read.kind, read.risk), (UnitKind::Other, RiskLevel::Medium));
        assert!(UnitRecord::decode(&[0xff, 0xff]).is_err());
    }
}
