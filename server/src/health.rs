//! Sync health: which state each device is in and why, from what the store knows and the
//! thresholds in `[health]`. Computed when asked, from stored times, so a device that stops
//! syncing turns silent without doing anything.

use patrolsync_i18n::text;
use std::collections::BTreeMap;

use patrolsync_proto::DeviceId;

use crate::config::Health;
use crate::store::sql::HISTORY_KEPT;
use crate::store::{
    ConflictEntry, DeviceStatus, MissingPhoto, RejectionEntry, ReportSample, Store, StoreError,
};

/// What admins see a device as. When several apply, the first of revoked, new (enrolled within
/// `silent_after`, no Hello, push or failure yet), silent, erroring, lagging wins; healthy when
/// none does.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Syncing on time.
    Healthy,
    /// Enrolled less than `silent_after` ago and has not said Hello yet: not a problem yet.
    New,
    /// Connected recently, but something it recorded has waited too long to reach the server.
    Lagging,
    /// Has not said Hello for the configured time.
    Silent,
    /// Its requests fail or its ops are refused, and it has not pushed successfully since.
    Erroring,
    /// Revoked; it cannot connect.
    Revoked,
}

impl HealthState {
    /// Every state, in the order the dashboard lists them.
    pub const ALL: [HealthState; 6] = [
        HealthState::Healthy,
        HealthState::New,
        HealthState::Lagging,
        HealthState::Silent,
        HealthState::Erroring,
        HealthState::Revoked,
    ];

    /// The lowercase name used in the API, the CLI and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::New => "new",
            HealthState::Lagging => "lagging",
            HealthState::Silent => "silent",
            HealthState::Erroring => "erroring",
            HealthState::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HealthState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HealthState::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?}; one of healthy, new, lagging, silent, erroring, revoked"
                )
            })
    }
}

/// A device's status with its state and the reasons for it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeviceHealth {
    /// What the store knows.
    #[serde(flatten)]
    pub status: DeviceStatus,
    /// The state.
    pub state: HealthState,
    /// Since when the state's cause holds, ms (e.g. the last Hello for a silent device).
    pub since_ms: Option<i64>,
    /// Why, in words an admin can act on (English); empty when healthy.
    pub reasons: Vec<String>,
    /// The same, as codes with what they name, for words in another language.
    pub causes: Vec<Cause>,
}

/// Why a device is in its state, as a code with what it names.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Cause {
    /// Revoked; it must be enrolled again.
    Revoked,
    /// Enrolled, no sync yet, within `silent_after`.
    NotSyncedYet {
        /// Enrolled at, ms.
        since_ms: i64,
    },
    /// No Hello for longer than `silent_after`.
    NoHello {
        /// The last Hello, ms.
        since_ms: i64,
    },
    /// Enrolled longer than `silent_after` ago and never synced.
    NeverSynced {
        /// Enrolled at, ms.
        since_ms: i64,
    },
    /// Its last request failed.
    RequestFailed {
        /// The failure, as recorded.
        error: String,
    },
    /// Ops of it were refused or lost a transition.
    Refused {
        /// Refused ops.
        ops: i64,
        /// Conflicts.
        conflicts: i64,
        /// The last, ms.
        at_ms: i64,
    },
    /// Ops unsent for longer than `lagging_after`.
    Unsent {
        /// How many (its last report, less what it pushed since).
        ops: i64,
        /// The oldest since, ms.
        since_ms: i64,
    },
    /// Photos referenced but not uploaded for longer than `lagging_after`.
    PhotosMissing {
        /// How many.
        photos: i64,
        /// The oldest since, ms.
        since_ms: i64,
    },
}

impl Cause {
    /// In words, in `lang`, at `now_ms`.
    pub fn text(&self, lang: patrolsync_i18n::Lang, now_ms: i64) -> String {
        use patrolsync_i18n::Value;
        let ago = |since: i64| Value::from(lang.duration(now_ms - since));
        let n = |v: i64| Value::from(v.to_string());
        match self {
            Cause::Revoked => lang.text("cause-revoked"),
            Cause::NotSyncedYet { since_ms } => {
                lang.format("cause-not_synced_yet", &[("ago", ago(*since_ms))])
            }
            Cause::NoHello { since_ms } => {
                lang.format("cause-no_hello", &[("ago", ago(*since_ms))])
            }
            Cause::NeverSynced { since_ms } => {
                lang.format("cause-never_synced", &[("ago", ago(*since_ms))])
            }
            Cause::RequestFailed { error } => lang.format(
                "cause-request_failed",
                &[("error", Value::from(error.clone()))],
            ),
            Cause::Refused {
                ops,
                conflicts,
                at_ms,
            } => lang.format(
                "cause-refused",
                &[
                    ("ops", n(*ops)),
                    ("conflicts", n(*conflicts)),
                    ("ago", ago(*at_ms)),
                ],
            ),
            Cause::Unsent { ops, since_ms } => {
                lang.format("cause-unsent", &[("ops", n(*ops)), ("ago", ago(*since_ms))])
            }
            Cause::PhotosMissing { photos, since_ms } => lang.format(
                "cause-photos_missing",
                &[("photos", n(*photos)), ("ago", ago(*since_ms))],
            ),
        }
    }
}

impl DeviceHealth {
    /// Its reasons in `lang` instead of English, at `now_ms`.
    pub fn in_language(mut self, lang: patrolsync_i18n::Lang, now_ms: i64) -> Self {
        self.reasons = self.causes.iter().map(|c| c.text(lang, now_ms)).collect();
        self
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Classifies one device at `now_ms`.
pub fn classify(status: DeviceStatus, t: &Health, now_ms: i64) -> DeviceHealth {
    let mut causes = Vec::new();
    let (state, since_ms) = if let Some(at) = status.revoked_at_ms {
        causes.push(Cause::Revoked);
        (HealthState::Revoked, Some(at))
    } else if status.last_seen_at_ms.is_none()
        && status.last_push_at_ms.is_none()
        && status.last_error_at_ms.is_none()
        && status.last_problem_at_ms.is_none()
        && now_ms - status.enrolled_at_ms <= ms(t.silent_after)
    {
        causes.push(Cause::NotSyncedYet {
            since_ms: status.enrolled_at_ms,
        });
        (HealthState::New, Some(status.enrolled_at_ms))
    } else if status
        .last_seen_at_ms
        .is_none_or(|seen| now_ms - seen > ms(t.silent_after))
    {
        let since = status.last_seen_at_ms.unwrap_or(status.enrolled_at_ms);
        causes.push(match status.last_seen_at_ms {
            Some(_) => Cause::NoHello { since_ms: since },
            None => Cause::NeverSynced { since_ms: since },
        });
        (HealthState::Silent, Some(since))
    } else if let Some(at) = erroring_since(&status, t, now_ms) {
        if status.last_error_at_ms == Some(at) {
            causes.push(Cause::RequestFailed {
                error: status.last_error.clone().unwrap_or_default(),
            });
        } else {
            causes.push(Cause::Refused {
                ops: status.rejected_ops,
                conflicts: status.conflicts,
                at_ms: at,
            });
        }
        (HealthState::Erroring, Some(at))
    } else {
        let lag = ms(t.lagging_after);
        let mut since = None;
        // The oldest unsent op was that old at the last Hello; it has aged since.
        let oldest_at = status
            .last_seen_at_ms
            .map(|seen| seen - status.oldest_pending_age_ms.unwrap_or(0));
        if let Some(at) = oldest_at
            && status.outbox_depth.unwrap_or(0) > 0
            && now_ms - at > lag
        {
            causes.push(Cause::Unsent {
                ops: status.outbox_depth.unwrap_or(0),
                since_ms: at,
            });
            since = Some(at);
        }
        if let Some(owed) = status.missing_photos_since_ms
            && now_ms - owed > lag
        {
            causes.push(Cause::PhotosMissing {
                photos: status.missing_photos,
                since_ms: owed,
            });
            since = Some(since.map_or(owed, |s: i64| s.min(owed)));
        }
        if causes.is_empty() {
            (HealthState::Healthy, status.last_seen_at_ms)
        } else {
            (HealthState::Lagging, since)
        }
    };
    // In English here; an admin page asks for its own language (`in_language`).
    let reasons = causes
        .iter()
        .map(|c| c.text(patrolsync_i18n::Lang::En, now_ms))
        .collect();
    DeviceHealth {
        status,
        state,
        since_ms,
        reasons,
        causes,
    }
}

/// When the failure making the device erroring happened, if it is: a failed request that no
/// successful push or pull followed, or a refused op that no later push followed, within the
/// window.
fn erroring_since(s: &DeviceStatus, t: &Health, now_ms: i64) -> Option<i64> {
    let recent = |at: i64| now_ms - at <= ms(t.error_window);
    let after = |ok: Option<i64>, at: i64| ok.is_some_and(|ok| ok > at);
    let failed = s
        .last_error_at_ms
        .filter(|&at| recent(at) && !after(s.last_push_at_ms, at) && !after(s.last_pull_at_ms, at));
    // Refused ops are recorded with their push's own time, so only a later push clears them.
    let refused = s
        .last_problem_at_ms
        .filter(|&at| recent(at) && !after(s.last_push_at_ms, at));
    failed.max(refused)
}

/// Every device classified, and counts by state (each state present, zero or not).
pub fn fleet(
    statuses: Vec<DeviceStatus>,
    t: &Health,
    now_ms: i64,
) -> (Vec<DeviceHealth>, BTreeMap<HealthState, usize>) {
    let devices: Vec<DeviceHealth> = statuses
        .into_iter()
        .map(|s| classify(s, t, now_ms))
        .collect();
    let mut counts: BTreeMap<HealthState, usize> =
        HealthState::ALL.into_iter().map(|s| (s, 0)).collect();
    for d in &devices {
        *counts.entry(d.state).or_default() += 1;
    }
    (devices, counts)
}

/// What live (unrevoked) devices said is waiting on them at their last Hello.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Backlog {
    /// Ops in outboxes.
    pub outbox_ops: i64,
    /// The oldest of them, ms, as reported.
    pub oldest_pending_age_ms: i64,
    /// Photo bytes waiting to upload.
    pub pending_photo_bytes: i64,
}

/// The fleet's [`Backlog`].
pub fn backlog(devices: &[DeviceHealth]) -> Backlog {
    devices
        .iter()
        .filter(|d| d.state != HealthState::Revoked)
        .fold(Backlog::default(), |b, d| Backlog {
            outbox_ops: b.outbox_ops + d.status.outbox_depth.unwrap_or(0),
            oldest_pending_age_ms: b
                .oldest_pending_age_ms
                .max(d.status.oldest_pending_age_ms.unwrap_or(0)),
            pending_photo_bytes: b.pending_photo_bytes + d.status.pending_photo_bytes.unwrap_or(0),
        })
}

/// One device in detail, as `/api/devices/{id}` and `admin device` show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeviceDetail {
    /// Its health.
    pub device: DeviceHealth,
    /// Its latest Hello reports, newest first.
    pub history: Vec<ReportSample>,
    /// Its refused ops, newest first.
    pub rejections: Vec<RejectionEntry>,
    /// Its ops recorded as conflicts, newest first.
    pub conflicts: Vec<ConflictEntry>,
    /// Photos it owes, oldest first.
    pub missing_photos: Vec<MissingPhoto>,
}

/// The device whose id is `id` or starts with it (8 characters at least), with up to `limit`
/// entries of each log. `NotFound` when none matches, `Invalid` when the prefix is short or
/// matches several.
pub async fn device_detail(
    store: &dyn Store,
    t: &Health,
    id: &str,
    limit: u32,
    now_ms: i64,
) -> Result<DeviceDetail, StoreError> {
    let prefix = id.trim().to_ascii_lowercase();
    if prefix.len() < 8 {
        return Err(StoreError::Invalid(text!(
            "store-device-id-short",
            device = prefix
        )));
    }
    let mut found: Vec<DeviceStatus> = store
        .device_statuses()
        .await?
        .into_iter()
        .filter(|d| d.id.starts_with(&prefix))
        .collect();
    let status = match found.len() {
        0 => {
            return Err(StoreError::NotFound(text!(
                "store-no-device",
                device = prefix
            )));
        }
        1 => found.remove(0),
        n => {
            return Err(StoreError::Invalid(text!(
                "store-device-ambiguous",
                device = prefix,
                n = n
            )));
        }
    };
    let device_id: DeviceId = status
        .id
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("stored device id {}: {e}", status.id)))?;
    let history = store
        .device_history(device_id, limit.min(HISTORY_KEPT))
        .await?;
    let rejections = store.rejections(Some(&status.id), limit).await?;
    let conflicts = store.conflicts(Some(&status.id), limit).await?;
    let missing_photos = store.missing_photos(Some(&status.id), limit).await?;
    Ok(DeviceDetail {
        device: classify(status, t, now_ms),
        history,
        rejections,
        conflicts,
        missing_photos,
    })
}

/// How bad a state is, for "worst first".
fn severity(s: HealthState) -> u8 {
    match s {
        HealthState::Erroring => 0,
        HealthState::Silent => 1,
        HealthState::Lagging => 2,
        HealthState::New => 3,
        HealthState::Healthy => 4,
        HealthState::Revoked => 5,
    }
}

/// Filters and sorts devices as `/api/devices` and `admin devices` do.
pub fn select_devices(
    mut devices: Vec<DeviceHealth>,
    state: Option<HealthState>,
    q: Option<&str>,
    sort: &str,
    descending: Option<bool>,
) -> Result<Vec<DeviceHealth>, patrolsync_i18n::Text> {
    if let Some(state) = state {
        devices.retain(|d| d.state == state);
    }
    if let Some(q) = q.map(str::to_lowercase).filter(|q| !q.is_empty()) {
        devices.retain(|d| {
            d.status.id.contains(&q)
                || d.status.name.to_lowercase().contains(&q)
                || d.status.user.to_lowercase().contains(&q)
        });
    }
    // Each key has a natural direction: worst or most recent first.
    let natural_desc = match sort {
        "state" => {
            devices.sort_by_key(|d| (severity(d.state), d.since_ms.unwrap_or(i64::MAX)));
            false
        }
        "last_seen" => {
            devices.sort_by_key(|d| d.status.last_seen_at_ms.unwrap_or(i64::MIN));
            true
        }
        "outbox" => {
            devices.sort_by_key(|d| d.status.outbox_depth.unwrap_or(0));
            true
        }
        "oldest_pending" => {
            devices.sort_by_key(|d| d.status.oldest_pending_age_ms.unwrap_or(0));
            true
        }
        "missing_photos" => {
            devices.sort_by_key(|d| d.status.missing_photos);
            true
        }
        "rejected" => {
            devices.sort_by_key(|d| d.status.rejected_ops + d.status.conflicts);
            true
        }
        "user" => {
            devices.sort_by(|a, b| a.status.user.cmp(&b.status.user));
            false
        }
        "enrolled" => {
            devices.sort_by_key(|d| d.status.enrolled_at_ms);
            true
        }
        other => {
            return Err(text!(
                "unknown-choice",
                what = "sort",
                value = other,
                known = "state, last_seen, outbox, oldest_pending, missing_photos, rejected, user, enrolled"
            ));
        }
    };
    if descending.unwrap_or(natural_desc) {
        devices.reverse();
    }
    Ok(devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    fn seen(at: i64) -> DeviceStatus {
        DeviceStatus {
            id: "d".into(),
            enrolled_at_ms: 0,
            last_seen_at_ms: Some(at),
            outbox_depth: Some(0),
            oldest_pending_age_ms: Some(0),
            ..DeviceStatus::default()
        }
    }

    #[test]
    fn a_device_turns_silent_by_the_clock_alone() {
        let t = Health::default();
        let now = 100 * HOUR;
        let d = seen(now - HOUR);
        assert_eq!(classify(d.clone(), &t, now).state, HealthState::Healthy);
        // Nothing about the device changes; only time passes.
        let later = now - HOUR + ms(t.silent_after) + 1;
        let h = classify(d, &t, later);
        assert_eq!(h.state, HealthState::Silent);
        assert_eq!(h.since_ms, Some(now - HOUR));
        assert!(h.reasons[0] == "no Hello for 1.0 days", "{:?}", h.reasons);
    }

    #[test]
    fn never_synced_is_new_then_silent_and_revoked_wins_over_everything() {
        let t = Health::default();
        let mut d = DeviceStatus {
            enrolled_at_ms: 0,
            ..DeviceStatus::default()
        };
        // Enrolled a minute ago: new, not silent.
        let h = classify(d.clone(), &t, MIN);
        assert_eq!(h.state, HealthState::New);
        assert_eq!(h.since_ms, Some(0));
        assert_eq!(h.reasons, ["enrolled 1 min ago, not synced yet"]);
        // Still new at `silent_after`, silent past it.
        assert_eq!(
            classify(d.clone(), &t, ms(t.silent_after)).state,
            HealthState::New
        );
        let h = classify(d.clone(), &t, ms(t.silent_after) + 1);
        assert_eq!(h.state, HealthState::Silent);
        assert!(h.reasons[0].contains("never synced"), "{:?}", h.reasons);
        assert_eq!(
            classify(d.clone(), &t, 25 * HOUR).state,
            HealthState::Silent
        );
        // A device that failed before its first Hello is not "not a problem yet": with no
        // Hello it counts as silent at once.
        let mut failed = d.clone();
        failed.last_error_at_ms = Some(MIN / 2);
        failed.last_error = Some("hello: unavailable".into());
        assert_eq!(classify(failed, &t, MIN).state, HealthState::Silent);
        d.revoked_at_ms = Some(HOUR);
        assert_eq!(classify(d, &t, 25 * HOUR).state, HealthState::Revoked);
    }

    #[test]
    fn an_old_outbox_or_an_owed_photo_is_lagging() {
        let t = Health::default();
        let now = 10 * HOUR;
        let mut d = seen(now - MIN);
        d.outbox_depth = Some(12);
        d.oldest_pending_age_ms = Some(2 * HOUR);
        let h = classify(d, &t, now);
        assert_eq!(h.state, HealthState::Lagging);
        assert_eq!(h.since_ms, Some(now - MIN - 2 * HOUR));
        // The same reason as codes, in words in either language.
        assert_eq!(
            h.causes,
            [Cause::Unsent {
                ops: 12,
                since_ms: now - MIN - 2 * HOUR
            }]
        );
        let zh = h.clone().in_language(patrolsync_i18n::Lang::ZhCn, now);
        assert_eq!(zh.reasons, ["12 条记录未上传，最早的已等待 2.0 小时"]);
        let en = h.in_language(patrolsync_i18n::Lang::En, now);
        assert_eq!(en.reasons, ["12 ops unsent, the oldest for 2.0 h"]);

        // Young at its last Hello, but that Hello was long ago: the op kept ageing.
        let mut d = seen(now - 40 * MIN);
        d.outbox_depth = Some(3);
        d.oldest_pending_age_ms = Some(10 * MIN);
        assert_eq!(
            classify(d.clone(), &t, now - 35 * MIN).state,
            HealthState::Healthy
        );
        assert_eq!(classify(d, &t, now).state, HealthState::Lagging);

        let mut d = seen(now - MIN);
        d.missing_photos = 1;
        d.missing_photos_since_ms = Some(now - 3 * HOUR);
        let h = classify(d.clone(), &t, now);
        assert_eq!(h.state, HealthState::Lagging);
        assert!(h.reasons[0].contains("photo"), "{:?}", h.reasons);
        // Owed for less than the threshold: still healthy.
        d.missing_photos_since_ms = Some(now - MIN);
        assert_eq!(classify(d, &t, now).state, HealthState::Healthy);
    }

    #[test]
    fn a_failure_is_erroring_until_a_push_succeeds_or_the_window_passes() {
        let t = Health::default();
        let now = 10 * HOUR;
        let mut d = seen(now - MIN);
        d.last_push_at_ms = Some(now - 10 * MIN);
        d.last_error_at_ms = Some(now - 5 * MIN);
        d.last_error = Some("store unavailable".into());
        let h = classify(d.clone(), &t, now);
        assert_eq!(h.state, HealthState::Erroring);
        assert!(h.reasons[0].contains("store unavailable"));
        // A pull that succeeded after the failure clears it too (a device with nothing to push).
        d.last_pull_at_ms = Some(now - 4 * MIN);
        assert_eq!(classify(d.clone(), &t, now).state, HealthState::Healthy);
        d.last_pull_at_ms = None;
        d.last_push_at_ms = Some(now - 2 * MIN);
        assert_eq!(classify(d.clone(), &t, now).state, HealthState::Healthy);

        // A refused op, recorded by the push that carried it: erroring until a later push.
        d.last_problem_at_ms = Some(now - 2 * MIN);
        d.rejected_ops = 1;
        assert_eq!(classify(d.clone(), &t, now).state, HealthState::Erroring);
        // The window passes: no longer erroring.
        let later = now - 2 * MIN + ms(t.error_window) + 1;
        assert_eq!(classify(d.clone(), &t, later).state, HealthState::Healthy);
        // A later push succeeded: no longer erroring either.
        d.last_push_at_ms = Some(now - MIN);
        assert_eq!(classify(d, &t, now).state, HealthState::Healthy);
    }
}
