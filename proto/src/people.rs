//! People and what they may do: the roles of the grid (五员 mapped to system roles).

wire_enum!(
    /// A user's role, which decides what they may write and see.
    Role, Role, "role", {
    /// Patrol volunteer or grid staff: check-ins and hazard reports in assigned cells.
    Patroller = "patroller",
    /// Manages a subtree of cells: verifies, closes, transfers, merges.
    GridManager = "grid_manager",
    /// Police station or fire brigade: handles hazards transferred to it.
    Agency = "agency",
    /// Administers the system.
    Admin = "admin",
    /// A property company (物业) routing rules send hazards to: sees and acts on those alone.
    PropertyCompany = "property_company",
    /// A community office (社区) routing rules send hazards to: sees and acts on those alone.
    Community = "community",
});

impl Role {
    /// A responsible party of routing (物业, 社区): no cells, only the hazards routed to it.
    pub fn is_party(self) -> bool {
        matches!(self, Role::PropertyCompany | Role::Community)
    }

    /// The wire value.
    pub fn wire(self) -> i32 {
        self.to_wire()
    }

    /// From the wire value; `None` for unspecified or unknown.
    pub fn from_wire_value(raw: i32) -> Option<Role> {
        Role::from_wire(raw).ok().flatten()
    }
}
