//! The latest-value sync state an app's status line shows: reachable or not, what a sync is
//! doing, how far the first download is, when the device last synced and why the last push or
//! pull failed. Every sync updates it — [`Client::sync`], the engine's, [`Client::sync_for`] —
//! and [`Client::state`] watches it.

use crate::{Client, ErrorCode};

/// Whether the server could be reached, as of the last attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connectivity {
    /// The last attempt failed to reach the server (or none was made yet).
    #[default]
    Offline,
    /// A sync is reaching for the server.
    Connecting,
    /// The server answered the last attempt.
    Connected,
}

/// What a sync is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    /// No sync running.
    #[default]
    Idle,
    /// Sending the outbox (hazards first, then check-ins).
    Push,
    /// Receiving what changed in the device's scope.
    Pull,
    /// Uploading photos.
    Photos,
}

/// How far the device's first download of its scope has come: positions of the server's change
/// log, `done` of `total` (the log's head when the sync began).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Reached.
    pub done: u64,
    /// To reach.
    pub total: u64,
}

/// The sync state. Cheap to clone; see [`Client::state`].
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SyncState {
    /// Reachable or not.
    pub connectivity: Connectivity,
    /// What a sync is doing now.
    pub phase: SyncPhase,
    /// The first download's progress, while it runs.
    pub bootstrap: Option<Progress>,
    /// Whether a sync has ever completed on this device.
    pub has_synced: bool,
    /// When a sync last completed, Unix ms.
    pub last_synced_at_ms: Option<i64>,
    /// Why the last push failed (cleared by the next push that succeeds).
    pub last_push_error: Option<ErrorCode>,
    /// Why the last pull failed (cleared by the next pull that succeeds).
    pub last_pull_error: Option<ErrorCode>,
}

impl Client {
    /// The sync state now and as it changes (a `watch`: a slow reader sees the latest).
    pub fn state(&self) -> tokio::sync::watch::Receiver<SyncState> {
        self.inner.state.subscribe()
    }

    /// Every change of the sync state from now on, each one (a reader that falls more than 256
    /// changes behind is told it lagged; [`Client::state`] then has the latest).
    pub fn state_changes(&self) -> tokio::sync::broadcast::Receiver<SyncState> {
        self.inner.state_changes.subscribe()
    }

    pub(crate) fn update_state(&self, change: impl FnOnce(&mut SyncState)) {
        let mut changed = None;
        self.inner.state.send_if_modified(|s| {
            let before = s.clone();
            change(s);
            if *s != before {
                changed = Some(s.clone());
            }
            changed.is_some()
        });
        if let Some(now) = changed {
            let _ = self.inner.state_changes.send(now);
        }
    }

    pub(crate) fn reset_state(&self) {
        self.update_state(|s| *s = SyncState::default());
    }
}
