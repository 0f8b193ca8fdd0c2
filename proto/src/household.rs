//! The must-visit register (六必访) as devices receive it through pull: households of the six
//! groups, with whom to ask for. Only the devices of users assigned a household's cell receive
//! it; a visit check-in names the household it visited.

use prost::Message;

use crate::checkin::Invalid;
use crate::wire;

wire_enum!(
    /// The six must-visit groups (六必访): each household is visited on its group's cadence
    /// (monthly unless configured otherwise).
    HouseholdGroup, HouseholdGroup, "group", {
    /// People in hardship (困难群众).
    Hardship = "hardship",
    /// Elderly people living alone (独居老人).
    ElderlyAlone = "elderly_alone",
    /// Families with disabled members (残疾家庭).
    Disabled = "disabled",
    /// Migrants (流动人口).
    Migrant = "migrant",
    /// The unemployed (失业人员).
    Unemployed = "unemployed",
    /// Other assisted people (重点帮扶人员).
    Assisted = "assisted",
});

/// A household of the register.
#[derive(Clone, Debug, PartialEq)]
pub struct HouseholdRecord {
    /// Code, unique among households.
    pub code: String,
    /// Its cell.
    pub grid_cell: String,
    /// Address (building, unit, door).
    pub address: String,
    /// Its must-visit group.
    pub group: HouseholdGroup,
    /// Whom to ask for at the door.
    pub contact_name: String,
    /// Their phone.
    pub contact_phone: String,
    /// Taken off the register: a device drops it.
    pub removed: bool,
}

impl HouseholdRecord {
    /// Protobuf bytes.
    pub fn encode(&self) -> Vec<u8> {
        wire::Household {
            code: self.code.clone(),
            grid_cell: self.grid_cell.clone(),
            address: self.address.clone(),
            group: self.group.to_wire(),
            contact_name: self.contact_name.clone(),
            contact_phone: self.contact_phone.clone(),
            removed: self.removed,
        }
        .encode_to_vec()
    }

    /// From the wire. A group this build does not know (a newer server's) reads as
    /// `assisted`, so an older device still lists the household.
    pub fn from_wire(w: &wire::Household) -> HouseholdRecord {
        HouseholdRecord {
            code: w.code.clone(),
            grid_cell: w.grid_cell.clone(),
            address: w.address.clone(),
            group: HouseholdGroup::from_wire(w.group)
                .ok()
                .flatten()
                .unwrap_or(HouseholdGroup::Assisted),
            contact_name: w.contact_name.clone(),
            contact_phone: w.contact_phone.clone(),
            removed: w.removed,
        }
    }

    /// From protobuf bytes.
    pub fn decode(bytes: &[u8]) -> Result<HouseholdRecord, Invalid> {
        let w = wire::Household::decode(bytes)
            .map_err(|e| Invalid::new("household", "corrupt", e.to_string()))?;
        Ok(HouseholdRecord::from_wire(&w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_household_round_trips_and_an_unknown_group_reads_as_assisted() {
        let h = HouseholdRecord {
            code: "H-0301".into(),
            grid_cell: "S1-C1-K1-B1".into(),
            address: "1 号楼 3 单元 301".into(),
            group: HouseholdGroup::ElderlyAlone,
            contact_name: "张大爷".into(),
            contact_phone: "13900000000".into(),
            removed: false,
        };
        assert_eq!(HouseholdRecord::decode(&h.encode()), Ok(h));
        let newer = wire::Household {
            group: 42,
            ..Default::default()
        };
        let read = HouseholdRecord::decode(&newer.encode_to_vec()).expect("decodes");
        assert_eq!(read.group, HouseholdGroup::Assisted);
    }
}
