//! What syncing tells the app: the summary of one sync, the conflicts it found, and the
//! events a running engine (and each sync) sends to subscribers.

use std::time::Duration;

use crate::scope::ScopeNotice;

/// The outcome of one sync.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SyncSummary {
    /// Ops sent (including resends).
    pub pushed: u64,
    /// Stored for the first time.
    pub applied: u64,
    /// Already stored earlier (a resend after a lost answer); nothing changed.
    pub duplicates: u64,
    /// Refused by the server; see [`crate::Client::rejected`].
    pub rejected: u64,
    /// Ops still in the outbox.
    pub remaining: u64,
    /// Highest contiguous op the server has recorded for this device.
    pub acked_through: u64,
    /// Changes received from the server (grid, hazards).
    pub pulled: u64,
    /// Change-log position the device has caught up to.
    pub cursor: u64,
    /// Hazards that changed in this device's view through this sync's pull.
    pub hazards_changed: Vec<String>,
    /// Photos the server now holds (uploaded by this sync, or already there).
    pub photos_uploaded: u64,
    /// Photo bytes sent by this sync.
    pub photo_bytes_sent: u64,
    /// Photos the server refused, and why (they stay on the device, marked failed).
    pub photo_failures: Vec<String>,
    /// Transitions that turned out to lose against another device's (visible in the hazard's
    /// history).
    pub new_conflicts: Vec<ConflictReport>,
    /// What entered or left the device's scope through this sync's pull, in order.
    pub scope_changes: Vec<ScopeNotice>,
    /// Wall time the sync took, ms.
    pub elapsed_ms: u64,
}

/// A transition that did not apply because another device's came first.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ConflictReport {
    /// The hazard.
    pub hazard: String,
    /// The event that did not apply.
    pub event: String,
    /// Its kind.
    pub kind: String,
    /// Why (English).
    pub reason: String,
    /// Why, as a code: `wrong_state` (the hazard had moved on) or `forbidden`.
    pub code: crate::ErrorCode,
}

/// Which of the device's local data changed, so a list screen reloads without polling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DataKind {
    /// This device's check-ins (recorded, or their sync state).
    CheckIns,
    /// Hazards in view (reported, moved, edited, pulled, acknowledged, dropped).
    Hazards,
    /// Photos (queued, uploaded, failed).
    Photos,
    /// Checklist templates.
    Templates,
    /// The grid in scope: cells, checkpoints, key units and households.
    Grid,
    /// Tasks in view (made, offered, taken, done).
    Tasks,
}

/// What the engine is doing, for an app's status line.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SyncEvent {
    /// A sync began.
    Started,
    /// A sync completed.
    Finished(SyncSummary),
    /// A sync failed; `retry_in` is when the engine tries again (None: it won't by itself).
    Failed {
        /// What went wrong (English).
        error: String,
        /// What went wrong, as a code to show in the user's language.
        code: crate::ErrorCode,
        /// When the engine retries.
        retry_in: Option<Duration>,
    },
    /// The server said there is new data up to this position.
    Notified {
        /// The server's change-log position.
        cursor: u64,
    },
    /// A hazard in the device's view changed (pulled from the server).
    HazardChanged {
        /// The hazard.
        id: String,
    },
    /// A transition lost against another device's and was kept as a conflict.
    Conflict(ConflictReport),
    /// The server offered this user a task (a help call, say): show it, to accept or decline.
    TaskOffered {
        /// The task's id.
        task: String,
    },
    /// Something entered the device's scope, or left it and was dropped from the views.
    ScopeChanged(ScopeNotice),
    /// Photo upload progress.
    PhotoProgress {
        /// SHA-256, hex.
        sha256: String,
        /// Bytes the server has (or is receiving).
        sent: u64,
        /// Photo size.
        total: u64,
    },
    /// Local data changed: reload the lists that show it.
    DataChanged(DataKind),
    /// The engine stopped for good (device revoked or not recognised).
    Stopped {
        /// Why (English).
        reason: String,
        /// Why, as a code (`revoked`, `not_recognised`).
        code: crate::ErrorCode,
    },
}
