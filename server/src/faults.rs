//! Fault injection for tests: drop a push's answer after its commit, or make the store fail
//! its next calls. The counters are inert unless a test arms them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use patrolsync_proto::DeviceId;

use crate::store::*;

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

/// A store wrapper whose `ingest` fails while armed, to test the paths that handle store
/// failure.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    fail_ingests: AtomicU32,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        FaultyStore {
            inner,
            fail_ingests: AtomicU32::new(0),
        }
    }

    /// The next `n` ingest calls fail without touching the store.
    pub fn fail_next_ingests(&self, n: u32) {
        self.fail_ingests.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }
    async fn upsert_grid(
        &self,
        cells: &[NewCell],
        checkpoints: &[NewCheckpoint],
    ) -> Result<u64, StoreError> {
        self.inner.upsert_grid(cells, checkpoints).await
    }
    async fn checkpoints(&self, codes: &[String]) -> Result<Vec<CheckpointRef>, StoreError> {
        self.inner.checkpoints(codes).await
    }
    async fn create_enrollment(&self, e: &NewEnrollment, now_ms: i64) -> Result<(), StoreError> {
        self.inner.create_enrollment(e, now_ms).await
    }
    async fn check_enrollment(&self, h: &[u8; 32], now_ms: i64) -> Result<(), RedeemError> {
        self.inner.check_enrollment(h, now_ms).await
    }
    async fn redeem_enrollment(
        &self,
        h: &[u8; 32],
        d: &NewDevice,
        now_ms: i64,
    ) -> Result<DeviceSession, RedeemError> {
        self.inner.redeem_enrollment(h, d, now_ms).await
    }
    async fn device_by_cert(&self, h: &[u8; 32]) -> Result<Option<DeviceSession>, StoreError> {
        self.inner.device_by_cert(h).await
    }
    async fn device_session(&self, d: DeviceId) -> Result<Option<DeviceSession>, StoreError> {
        self.inner.device_session(d).await
    }
    async fn record_hello(
        &self,
        d: DeviceId,
        r: &DeviceReport,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        self.inner.record_hello(d, r, now_ms).await
    }
    async fn ingest(
        &self,
        batches: &[IngestBatch],
        now_ms: i64,
    ) -> Result<Vec<Result<BatchResult, StoreError>>, StoreError> {
        if self
            .fail_ingests
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(StoreError::Injected("ingest".into()));
        }
        self.inner.ingest(batches, now_ms).await
    }
    async fn cells(&self, codes: &[String]) -> Result<Vec<CellRef>, StoreError> {
        self.inner.cells(codes).await
    }
    async fn hazard_refs(
        &self,
        ids: &[patrolsync_proto::HazardId],
    ) -> Result<Vec<HazardRef>, StoreError> {
        self.inner.hazard_refs(ids).await
    }
    async fn pull(
        &self,
        scope: &PullScope,
        cursor: u64,
        limit: u32,
        compact: bool,
    ) -> Result<PullPage, StoreError> {
        self.inner.pull(scope, cursor, limit, compact).await
    }
    async fn cursor(&self) -> Result<u64, StoreError> {
        self.inner.cursor().await
    }
    async fn hazard(
        &self,
        id: patrolsync_proto::HazardId,
    ) -> Result<Option<HazardSummary>, StoreError> {
        self.inner.hazard(id).await
    }
    async fn hazard_log(
        &self,
        id: patrolsync_proto::HazardId,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.inner.hazard_log(id).await
    }
    async fn blob(&self, sha256: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        self.inner.blob(sha256).await
    }
    async fn record_blob(
        &self,
        sha256: &[u8; 32],
        size: u64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.record_blob(sha256, size, now_ms).await
    }
    async fn blob_visible(
        &self,
        sha256: &[u8; 32],
        device: DeviceId,
        scope: &PullScope,
    ) -> Result<bool, StoreError> {
        self.inner.blob_visible(sha256, device, scope).await
    }
    async fn missing_photos(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MissingPhoto>, StoreError> {
        self.inner.missing_photos(device, limit).await
    }
    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError> {
        self.inner.devices().await
    }
    async fn revoke_device(&self, id: &str, now_ms: i64) -> Result<DeviceEntry, StoreError> {
        self.inner.revoke_device(id, now_ms).await
    }
    async fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
        now_ms: i64,
    ) -> Result<Vec<u8>, StoreError> {
        self.inner.shared_secret(name, candidate, now_ms).await
    }
    async fn revoked_since(&self, since_ms: i64) -> Result<Vec<DeviceId>, StoreError> {
        self.inner.revoked_since(since_ms).await
    }
    async fn stats(&self, now_ms: i64) -> Result<Stats, StoreError> {
        self.inner.stats(now_ms).await
    }
    async fn check_ins(
        &self,
        d: Option<DeviceId>,
        limit: u32,
    ) -> Result<Vec<StoredCheckIn>, StoreError> {
        self.inner.check_ins(d, limit).await
    }
    async fn rejections(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RejectionEntry>, StoreError> {
        self.inner.rejections(device, limit).await
    }
    async fn conflicts(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ConflictEntry>, StoreError> {
        self.inner.conflicts(device, limit).await
    }
    async fn record_activity(
        &self,
        device: DeviceId,
        activity: &Activity,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.inner.record_activity(device, activity, now_ms).await
    }
    async fn device_statuses(&self) -> Result<Vec<DeviceStatus>, StoreError> {
        self.inner.device_statuses().await
    }
    async fn device_history(
        &self,
        device: DeviceId,
        limit: u32,
    ) -> Result<Vec<ReportSample>, StoreError> {
        self.inner.device_history(device, limit).await
    }
    async fn hazard_counts(&self, now_ms: i64) -> Result<Vec<HazardCount>, StoreError> {
        self.inner.hazard_counts(now_ms).await
    }
}
