//! A store that fails on demand (feature `test-util`): it wraps any store, fails its N-th call
//! and logs the calls made, so a test can fail each call of a sync in turn.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use patrolsync_proto::{DeviceId, HazardId, Role};

use super::*;

/// A store wrapper that fails its N-th call (of any method), and logs the calls made, so a test
/// can fail each call of a sync in turn.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    /// Calls left until the failing one; 0 when disarmed.
    countdown: AtomicU32,
    calls: Mutex<Vec<&'static str>>,
    ignored: Mutex<Vec<&'static str>>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            countdown: AtomicU32::new(0),
            calls: Mutex::new(Vec::new()),
            ignored: Mutex::new(Vec::new()),
        }
    }

    /// Calls of `methods` are passed through uncounted (background tasks that run on their
    /// own clock would make "the N-th call" a race).
    pub fn ignore(&self, methods: &[&'static str]) {
        self.ignored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(methods);
    }

    /// The `n`-th call from now (1 = the next) fails without reaching the store. Clears the
    /// call log.
    pub fn fail_nth_call(&self, n: u32) {
        self.calls_lock().clear();
        self.countdown.store(n, Ordering::SeqCst);
    }

    /// The wrapped store (calls to it are neither counted nor failed).
    pub fn inner(&self) -> Arc<dyn Store> {
        self.inner.clone()
    }

    /// Whether the armed failure is still to come.
    pub fn armed(&self) -> bool {
        self.countdown.load(Ordering::SeqCst) > 0
    }

    /// The methods called since the last [`FaultyStore::fail_nth_call`] or
    /// [`FaultyStore::take_calls`], in order.
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls_lock())
    }

    fn gate(&self, method: &'static str) -> Result<(), StoreError> {
        if self
            .ignored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&method)
        {
            return Ok(());
        }
        self.calls_lock().push(method);
        let before = self
            .countdown
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match before {
            Ok(1) => Err(StoreError::Injected(method.into())),
            _ => Ok(()),
        }
    }

    fn calls_lock(&self) -> std::sync::MutexGuard<'_, Vec<&'static str>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    async fn stats(&self, now_ms: i64) -> Result<Stats, StoreError> {
        self.gate("stats")?;
        self.inner.stats(now_ms).await
    }
    async fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now_ms: i64,
    ) -> Result<Vec<u8>, StoreError> {
        self.gate("shared_secret")?;
        self.inner.shared_secret(name, candidate, now_ms).await
    }
}

#[async_trait]
impl GridStore for FaultyStore {
    async fn upsert_grid(
        &self,
        cells: &[NewCell],
        checkpoints: &[NewCheckpoint],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.gate("upsert_grid")?;
        self.inner.upsert_grid(cells, checkpoints, now_ms).await
    }
    async fn checkpoints(&self, codes: &[String]) -> Result<Vec<CheckpointRef>, StoreError> {
        self.gate("checkpoints")?;
        self.inner.checkpoints(codes).await
    }
    async fn cells(&self, codes: &[String]) -> Result<Vec<CellRef>, StoreError> {
        self.gate("cells")?;
        self.inner.cells(codes).await
    }
    async fn household_refs(&self, codes: &[String]) -> Result<Vec<HouseholdRef>, StoreError> {
        self.gate("household_refs")?;
        self.inner.household_refs(codes).await
    }
    async fn retire_cell(&self, code: &str, now_ms: i64) -> Result<(u64, u64), StoreError> {
        self.gate("retire_cell")?;
        self.inner.retire_cell(code, now_ms).await
    }
    async fn import_people(&self, people: &[NewPerson], now_ms: i64) -> Result<u64, StoreError> {
        self.gate("import_people")?;
        self.inner.import_people(people, now_ms).await
    }
    async fn assign(
        &self,
        user: &str,
        cells: &[String],
        remove: bool,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.gate("assign")?;
        self.inner.assign(user, cells, remove, now_ms).await
    }
}

#[async_trait]
impl DeviceStore for FaultyStore {
    async fn create_enrollment(&self, e: &NewEnrollment, now_ms: i64) -> Result<(), StoreError> {
        self.gate("create_enrollment")?;
        self.inner.create_enrollment(e, now_ms).await
    }
    async fn check_enrollment(&self, h: &[u8; 32], now_ms: i64) -> Result<(), RedeemError> {
        self.gate("check_enrollment")?;
        self.inner.check_enrollment(h, now_ms).await
    }
    async fn redeem_enrollment(
        &self,
        h: &[u8; 32],
        d: &NewDevice,
        now_ms: i64,
    ) -> Result<DeviceSession, RedeemError> {
        self.gate("redeem_enrollment")?;
        self.inner.redeem_enrollment(h, d, now_ms).await
    }
    async fn device_by_cert(&self, h: &[u8; 32]) -> Result<Option<DeviceSession>, StoreError> {
        self.gate("device_by_cert")?;
        self.inner.device_by_cert(h).await
    }
    async fn device_session(&self, d: DeviceId) -> Result<Option<DeviceSession>, StoreError> {
        self.gate("device_session")?;
        self.inner.device_session(d).await
    }
    async fn record_hello(
        &self,
        d: DeviceId,
        r: &DeviceReport,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.gate("record_hello")?;
        self.inner.record_hello(d, r, now_ms).await
    }
    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError> {
        self.gate("devices")?;
        self.inner.devices().await
    }
    async fn revoke_device(&self, id: &str, now_ms: i64) -> Result<DeviceEntry, StoreError> {
        self.gate("revoke_device")?;
        self.inner.revoke_device(id, now_ms).await
    }
    async fn revoked_since(&self, since_ms: i64) -> Result<Vec<DeviceId>, StoreError> {
        self.gate("revoked_since")?;
        self.inner.revoked_since(since_ms).await
    }
    async fn record_activity(
        &self,
        device: DeviceId,
        activity: &Activity,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.gate("record_activity")?;
        self.inner.record_activity(device, activity, now_ms).await
    }
    async fn device_statuses(&self) -> Result<Vec<DeviceStatus>, StoreError> {
        self.gate("device_statuses")?;
        self.inner.device_statuses().await
    }
    async fn device_history(
        &self,
        device: DeviceId,
        limit: u32,
    ) -> Result<Vec<ReportSample>, StoreError> {
        self.gate("device_history")?;
        self.inner.device_history(device, limit).await
    }
}

#[async_trait]
impl IngestStore for FaultyStore {
    async fn ingest(
        &self,
        batches: &[IngestBatch],
        now_ms: i64,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError> {
        self.gate("ingest")?;
        self.inner.ingest(batches, now_ms).await
    }
    fn groups_rewritten(&self) -> u64 {
        self.inner.groups_rewritten()
    }
    async fn check_ins(
        &self,
        d: Option<DeviceId>,
        limit: u32,
    ) -> Result<Vec<StoredCheckIn>, StoreError> {
        self.gate("check_ins")?;
        self.inner.check_ins(d, limit).await
    }
    async fn rejections(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RejectionEntry>, StoreError> {
        self.gate("rejections")?;
        self.inner.rejections(device, limit).await
    }
    async fn conflicts(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConflictEntry>, StoreError> {
        self.gate("conflicts")?;
        self.inner.conflicts(device, limit).await
    }
}

#[async_trait]
impl HazardStore for FaultyStore {
    async fn hazard_refs(
        &self,
        ids: &[HazardId],
        role: Role,
        device: DeviceId,
    ) -> Result<Vec<HazardRef>, StoreError> {
        self.gate("hazard_refs")?;
        self.inner.hazard_refs(ids, role, device).await
    }
    async fn hazard(
        &self,
        id: patrolsync_proto::HazardId,
    ) -> Result<Option<HazardSummary>, StoreError> {
        self.gate("hazard")?;
        self.inner.hazard(id).await
    }
    async fn hazard_log(
        &self,
        id: patrolsync_proto::HazardId,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.gate("hazard_log")?;
        self.inner.hazard_log(id).await
    }
    async fn hazard_counts(&self, now_ms: i64) -> Result<Vec<HazardCount>, StoreError> {
        self.gate("hazard_counts")?;
        self.inner.hazard_counts(now_ms).await
    }
    async fn escalate_overdue(
        &self,
        now_ms: i64,
        interval_ms: i64,
    ) -> Result<Escalated, StoreError> {
        self.gate("escalate_overdue")?;
        self.inner.escalate_overdue(now_ms, interval_ms).await
    }

    async fn remind_due(&self, now_ms: i64) -> Result<Reminded, StoreError> {
        self.gate("remind_due")?;
        self.inner.remind_due(now_ms).await
    }
}

#[async_trait]
impl TaskStore for FaultyStore {
    async fn create_task(
        &self,
        task: &NewTask,
        now_ms: i64,
    ) -> Result<(patrolsync_proto::TaskId, u64), StoreError> {
        self.gate("create_task")?;
        self.inner.create_task(task, now_ms).await
    }

    async fn task_refs(
        &self,
        ids: &[patrolsync_proto::TaskId],
        device: DeviceId,
    ) -> Result<Vec<TaskRef>, StoreError> {
        self.gate("task_refs")?;
        self.inner.task_refs(ids, device).await
    }

    async fn tasks(
        &self,
        open: bool,
        cell: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TaskSummary>, StoreError> {
        self.gate("tasks")?;
        self.inner.tasks(open, cell, limit).await
    }

    async fn report_tasks(
        &self,
        cell: Option<&str>,
        from_ms: i64,
        to_ms: i64,
        as_of_ms: i64,
    ) -> Result<Vec<TaskRecord>, StoreError> {
        self.gate("report_tasks")?;
        self.inner
            .report_tasks(cell, from_ms, to_ms, as_of_ms)
            .await
    }

    async fn task(
        &self,
        id: patrolsync_proto::TaskId,
    ) -> Result<Option<(TaskSummary, Vec<TaskLogEntry>)>, StoreError> {
        self.gate("task")?;
        self.inner.task(id).await
    }

    async fn dispatch(
        &self,
        now_ms: i64,
        offer_timeout_ms: i64,
        duty_ttl_ms: i64,
    ) -> Result<Dispatched, StoreError> {
        self.gate("dispatch")?;
        self.inner
            .dispatch(now_ms, offer_timeout_ms, duty_ttl_ms)
            .await
    }
}

#[async_trait]
impl PullStore for FaultyStore {
    async fn pull(
        &self,
        scope: &PullScope,
        cursor: u64,
        backfill_after: u64,
        limit: u32,
        compact: bool,
    ) -> Result<PullPage, StoreError> {
        self.gate("pull")?;
        self.inner
            .pull(scope, cursor, backfill_after, limit, compact)
            .await
    }
    async fn cursor(&self) -> Result<u64, StoreError> {
        self.gate("cursor")?;
        self.inner.cursor().await
    }
    async fn scope_view(&self, device: &DeviceSession) -> Result<ScopeView, StoreError> {
        self.gate("scope_view")?;
        self.inner.scope_view(device).await
    }
}

#[async_trait]
impl PhotoStore for FaultyStore {
    async fn blob(&self, sha256: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        self.gate("blob")?;
        self.inner.blob(sha256).await
    }
    async fn record_blob(
        &self,
        sha256: &[u8; 32],
        size: u64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.gate("record_blob")?;
        self.inner.record_blob(sha256, size, now_ms).await
    }
    async fn blob_access(
        &self,
        sha256: &[u8; 32],
        device: DeviceId,
        scope: &PullScope,
    ) -> Result<BlobAccess, StoreError> {
        self.gate("blob_access")?;
        self.inner.blob_access(sha256, device, scope).await
    }
    async fn record_uploads(
        &self,
        uploads: &[ProvedUpload],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.gate("record_uploads")?;
        self.inner.record_uploads(uploads, now_ms).await
    }
    async fn missing_photos(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MissingPhoto>, StoreError> {
        self.gate("missing_photos")?;
        self.inner.missing_photos(device, limit).await
    }
}

#[async_trait]
impl TemplateStore for FaultyStore {
    async fn template(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<patrolsync_proto::template::Template>, StoreError> {
        self.gate("template")?;
        self.inner.template(id, version).await
    }
    async fn publish_template(
        &self,
        t: &patrolsync_proto::template::Template,
        now_ms: i64,
    ) -> Result<(u32, bool), StoreError> {
        self.gate("publish_template")?;
        self.inner.publish_template(t, now_ms).await
    }
    async fn templates(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<patrolsync_proto::template::Template>, StoreError> {
        self.gate("templates")?;
        self.inner.templates(id).await
    }
}
