//! What a device's scope holds, as an admin sees it (`admin scope`).

/// What a device should hold, as the server sees it (`patrolsync admin scope`): the cells,
/// checkpoints and hazards its user's assignments (or its agency's hazards) cover now, and the
/// grants its feed holds, which should say the same.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScopeView {
    /// The device.
    pub device: String,
    /// Its user and role.
    pub user: String,
    /// `patroller`, `grid_manager`, `agency`, …
    pub role: String,
    /// The scope feed it reads (`user:ID`, `agency:NAME`).
    pub audience: String,
    /// What the feed holds now, and since which change-log position (0: since before scope
    /// was kept as state).
    pub grants: Vec<ScopeGrant>,
    /// Cell codes, sorted.
    pub cells: Vec<String>,
    /// Checkpoint codes, sorted.
    pub checkpoints: Vec<String>,
    /// Key unit codes, sorted.
    pub units: Vec<String>,
    /// Must-visit household codes, sorted (none for an agency).
    pub households: Vec<String>,
    /// Hazard ids, sorted.
    pub hazards: Vec<String>,
}

/// One thing a feed holds.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ScopeGrant {
    /// `cell` or `hazard`.
    pub kind: String,
    /// The cell's code or the hazard's id.
    pub id: String,
    /// The change-log position of its grant.
    pub since: u64,
}
