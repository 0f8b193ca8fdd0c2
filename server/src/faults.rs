//! Fault injection for tests (feature `test-util`): drop a push's answer after its commit, cut
//! an upload, or make a named point inside the store fail, stall or pause (so a test can
//! SIGKILL the process mid-commit, or order two commits). Everything here is inert unless a
//! test arms it. `store::FaultyStore` fails a store's N-th call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Faults a test can arm on a running server.
#[derive(Debug, Default)]
pub struct Faults {
    drop_push_acks: AtomicU32,
    cut_uploads_at: std::sync::atomic::AtomicU64,
}

impl Faults {
    /// The next `n` pushes are committed but their answers are never sent (the stream is reset).
    pub fn drop_push_acks_after_commit(&self, n: u32) {
        self.drop_push_acks.store(n, Ordering::SeqCst);
    }

    /// The next photo upload is cut (stream reset) once the server holds `bytes` of it.
    pub fn cut_next_upload_at(&self, bytes: u64) {
        self.cut_uploads_at.store(bytes, Ordering::SeqCst);
    }

    /// Where to cut the current upload, if armed (consumes the fault).
    pub(crate) fn take_upload_cut(&self) -> Option<u64> {
        match self.cut_uploads_at.swap(0, Ordering::SeqCst) {
            0 => None,
            n => Some(n),
        }
    }

    /// Whether to drop this push's answer (consumes one armed fault).
    pub(crate) fn take_dropped_ack(&self) -> bool {
        self.drop_push_acks
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Named points inside the SQL store where a test can step in.
pub mod points {
    /// In `ingest`, after every record of the group commit is written, before the kept counts
    /// are added (the last statement) and `COMMIT`.
    pub const INGEST_BEFORE_COMMIT: &str = "ingest.before_commit";
    /// In `ingest`, in each layer of pushes written together (see `store::sql`'s `layers`):
    /// after the check-ins and results, before the acknowledgements advance. A failure here (as
    /// any failed statement of that path) has the group written again push by push.
    pub const INGEST_CHECK_INS: &str = "ingest.check_ins";
    /// In `ingest`, after `COMMIT`, before the results go back to the devices.
    pub const INGEST_AFTER_COMMIT: &str = "ingest.after_commit";
    /// In `pull`, after a page is read, before it is returned.
    pub const PULL_PAGE: &str = "pull.page";
    /// Every point, for command lines that name one.
    pub const ALL: [&str; 4] = [
        INGEST_BEFORE_COMMIT,
        INGEST_CHECK_INS,
        INGEST_AFTER_COMMIT,
        PULL_PAGE,
    ];
}

/// A failure a fault point injected: the point's name. The store turns it into
/// `StoreError::Injected`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("injected failure at {0}")]
pub struct Injected(pub &'static str);

/// What an armed point does when reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// Return [`Injected`] (the store's `StoreError::Injected`). Before `COMMIT` the transaction rolls back; after it
    /// (and on a read) what the call did stays, and only its answer is lost.
    Fail,
    /// Wait, holding whatever the caller holds (a transaction, its locks), until
    /// [`FaultPoints::release`] — or until the process is killed, which is the point. Every
    /// later caller at the point is held too (PostgreSQL runs several ingest writers, and a
    /// second commit must not slip past while the test kills the process), until `release`
    /// disarms it.
    Stall,
    /// Hold the first caller only (and disarm), until [`FaultPoints::release`]: the others pass,
    /// so a test can order two commits.
    Pause,
}

#[derive(Debug)]
struct Armed {
    point: &'static str,
    skip: u32,
    action: FaultAction,
}

/// Fault points of one store. A point costs one uncontended lock when nothing is armed.
#[derive(Debug)]
pub struct FaultPoints {
    armed: Mutex<Vec<Armed>>,
    stalled: tokio::sync::watch::Sender<Vec<&'static str>>,
    release: tokio::sync::Notify,
}

impl Default for FaultPoints {
    fn default() -> Self {
        FaultPoints {
            armed: Mutex::new(Vec::new()),
            stalled: tokio::sync::watch::channel(Vec::new()).0,
            release: tokio::sync::Notify::new(),
        }
    }
}

impl FaultPoints {
    /// Arms `point`: the first `skip` passes go through, the next one does `action` (a `Fail`
    /// once; a `Stall` to every caller from then on, until [`FaultPoints::release`]).
    pub fn arm(&self, point: &'static str, skip: u32, action: FaultAction) {
        self.lock().push(Armed {
            point,
            skip,
            action,
        });
    }

    /// Waits until a caller is held at `point` (returns at once if one is held there now).
    pub async fn stalled_at(&self, point: &str) {
        let mut rx = self.stalled.subscribe();
        // The sender lives as long as `self`, so this cannot end with an error.
        let _ = rx.wait_for(|v| v.contains(&point)).await;
    }

    /// The points callers are held at now.
    pub fn stalls(&self) -> Vec<&'static str> {
        self.stalled.borrow().clone()
    }

    /// Disarms every stalling point and lets every caller held now go on.
    pub fn release(&self) {
        self.lock()
            .retain(|a| !matches!(a.action, FaultAction::Stall | FaultAction::Pause));
        self.stalled.send_modify(Vec::clear);
        self.release.notify_waiters();
    }

    /// Called by the store at `point`.
    pub(crate) async fn hit(&self, point: &'static str) -> Result<(), Injected> {
        let released = self.release.notified();
        tokio::pin!(released);
        {
            let mut armed = self.lock();
            let Some(i) = armed.iter().position(|a| a.point == point) else {
                return Ok(());
            };
            if armed[i].skip > 0 {
                armed[i].skip -= 1;
                return Ok(());
            }
            if armed[i].action == FaultAction::Fail {
                armed.remove(i);
                return Err(Injected(point));
            }
            if armed[i].action == FaultAction::Pause {
                armed.remove(i);
            }
            // A stall stays armed: every later caller is held too, until `release`, which
            // takes this lock first, so the wake-up cannot slip between here and the wait.
            released.as_mut().enable();
            self.stalled.send_modify(|v| v.push(point));
        }
        tracing::warn!(point, "fault point: stalled");
        released.await;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Armed>> {
        // A panic while holding this lock leaves a plain Vec; keep using it.
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_stall_holds_every_caller_until_release_then_disarms() {
        let faults = Arc::new(FaultPoints::default());
        faults.arm(points::INGEST_BEFORE_COMMIT, 1, FaultAction::Stall);
        // The skipped pass goes through.
        faults
            .hit(points::INGEST_BEFORE_COMMIT)
            .await
            .expect("the skipped pass");
        let held: Vec<_> = (0..2)
            .map(|_| {
                let faults = faults.clone();
                tokio::spawn(async move { faults.hit(points::INGEST_BEFORE_COMMIT).await })
            })
            .collect();
        let both_held = async {
            let mut rx = faults.stalled.subscribe();
            let _ = rx.wait_for(|v| v.len() == 2).await;
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), both_held)
            .await
            .expect("the second caller is held as well as the first");
        assert!(held.iter().all(|h| !h.is_finished()));
        faults.release();
        for h in held {
            h.await.expect("joined").expect("released");
        }
        assert!(faults.stalls().is_empty());
        // Disarmed: the next caller passes.
        faults
            .hit(points::INGEST_BEFORE_COMMIT)
            .await
            .expect("disarmed");
        // Other points are untouched by a stall elsewhere.
        faults.arm(points::PULL_PAGE, 0, FaultAction::Fail);
        faults.release();
        assert!(matches!(
            faults.hit(points::PULL_PAGE).await,
            Err(Injected(p)) if p == points::PULL_PAGE
        ));
        faults.hit(points::PULL_PAGE).await.expect("a Fail is once");
    }
}
