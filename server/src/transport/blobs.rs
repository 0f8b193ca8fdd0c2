//! Photos: status, upload (resumable, per-device staging, verified) and download, each
//! allowed only through scope or proven possession.

use patrolsync_proto::codes;
use patrolsync_proto::wire;
use quinn::{RecvStream, VarInt};

use super::*;
use crate::store::{BlobAccess, DeviceSession, ProvedUpload, StoreError};

/// Verified uploads waiting for their record. The uploads that finish while one group's record
/// commits are recorded together in the next: one commit (one sync of the database's journal)
/// for them all. On SQLite, whose writers take turns, each upload committing alone would wait
/// for the others' commits one by one. Each waiting entry is a running upload's, which waits for
/// its answer: the queue is bounded by the streams the connection limits allow.
pub(crate) struct UploadRecords {
    queue: tokio::sync::mpsc::UnboundedSender<(ProvedUpload, Recorded)>,
}

type Recorded = tokio::sync::oneshot::Sender<Result<(), RecordError>>;

/// Uploads recorded in one commit at most: a bound on one transaction, far above the uploads a
/// node finishes at once.
const RECORDS_PER_COMMIT: usize = 256;

/// How long one group's commit may take before its uploads are answered "retry": a commit
/// stuck behind a lock must not hold every upload of the node for longer.
const RECORD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why an upload's record failed; the upload is answered "retry".
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// The store refused or failed.
    #[error("{0}")]
    Store(Arc<StoreError>),
    /// The commit took longer than [`RECORD_TIMEOUT`].
    #[error("recording the upload took longer than {0} s")]
    TimedOut(u64),
    /// The store panicked; recording goes on with the next group.
    #[error("recording the upload failed unexpectedly")]
    Panicked,
}

impl UploadRecords {
    /// Records into `store` from a task of its own, which ends when this is dropped.
    pub(crate) fn start(store: Arc<dyn Store>) -> UploadRecords {
        let (queue, mut rx) = tokio::sync::mpsc::unbounded_channel::<(ProvedUpload, Recorded)>();
        tokio::spawn(async move {
            let mut group = Vec::new();
            while rx.recv_many(&mut group, RECORDS_PER_COMMIT).await > 0 {
                let uploads: Vec<ProvedUpload> = group.iter().map(|(u, _)| *u).collect();
                let result = commit(store.as_ref(), &uploads).await;
                if let Err(e) = &result {
                    tracing::warn!(uploads = uploads.len(), error = %e, "recording uploads failed");
                }
                for (_, done) in group.drain(..) {
                    let _ = done.send(result.clone());
                }
            }
        });
        UploadRecords { queue }
    }

    /// Records `upload`, with whichever others are waiting; returns when it is committed.
    pub(crate) async fn record(&self, upload: ProvedUpload) -> Result<(), RecordError> {
        let (done, recorded) = tokio::sync::oneshot::channel();
        let stopped = || {
            RecordError::Store(Arc::new(StoreError::Stopping(patrolsync_i18n::text!(
                "store-stopping"
            ))))
        };
        self.queue.send((upload, done)).map_err(|_| stopped())?;
        recorded.await.map_err(|_| stopped())?
    }
}

/// One group's commit, bounded in time; a panic in the store fails this group, not the
/// recording of the next.
async fn commit(store: &dyn Store, uploads: &[ProvedUpload]) -> Result<(), RecordError> {
    use futures_util::FutureExt;
    let attempt = std::panic::AssertUnwindSafe(tokio::time::timeout(
        RECORD_TIMEOUT,
        store.record_uploads(uploads, crate::clock::now_ms()),
    ))
    .catch_unwind()
    .await;
    match attempt {
        Ok(Ok(Ok(()))) => Ok(()),
        Ok(Ok(Err(e))) => Err(RecordError::Store(Arc::new(e))),
        Ok(Err(_)) => Err(RecordError::TimedOut(RECORD_TIMEOUT.as_secs())),
        Err(_) => Err(RecordError::Panicked),
    }
}

pub(super) fn blob_error(
    code: wire::ErrorCode,
    message: String,
    retryable: bool,
    held: u64,
) -> wire::Response {
    wire::Response {
        kind: Some(wire::response::Kind::Error(wire::Error {
            code: code as i32,
            message,
            retryable,
            held_offset: held,
        })),
    }
}

/// The hash and size of a blob request, checked against the cap.
// The error is the response to send, built once per refused request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(super) fn blob_target(
    shared: &Shared,
    sha: &[u8],
    size: Option<u64>,
) -> Result<[u8; 32], wire::Response> {
    let sha: [u8; 32] = sha.try_into().map_err(|_| {
        wire::Response::error(
            wire::ErrorCode::BadRequest,
            format!("sha256 must be 32 bytes, got {}", sha.len()),
            false,
        )
    })?;
    let cap = shared.config.limits.max_blob_bytes;
    match size {
        Some(0) => Err(wire::Response::error(
            wire::ErrorCode::BadRequest,
            format!(
                "photo {}: size 0; a photo has at least one byte",
                hex::encode(sha)
            ),
            false,
        )),
        Some(n) if n > cap => Err(wire::Response::error(
            wire::ErrorCode::LimitExceeded,
            format!(
                "photo {} is {n} bytes; this server accepts photos up to {cap} bytes",
                hex::encode(sha)
            ),
            false,
        )),
        _ => Ok(sha),
    }
}

/// What `device` may do with the photo, and whether it is stored: one read of the store. The
/// error is the answer to send.
// The error is the response to send, built once per refused request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
async fn blob_access(
    shared: &Shared,
    device: &DeviceSession,
    sha: &[u8; 32],
) -> Result<BlobAccess, wire::Response> {
    shared
        .store
        .blob_access(sha, device.id, &device.pull_scope())
        .await
        .map_err(|e| {
            wire::Response::error(wire::ErrorCode::Unavailable, format!("retry: {e}"), true)
        })
}

/// Photos are accepted only for records the device has sent or can see: nobody fills the disk
/// with, or probes for, photos unrelated to their cells. The error is the answer to send.
#[allow(clippy::result_large_err)]
async fn blob_allowed(
    shared: &Shared,
    device: &DeviceSession,
    sha: &[u8; 32],
) -> Result<BlobAccess, wire::Response> {
    let access = blob_access(shared, device, sha).await?;
    if !access.visible {
        return Err(wire::Response::error(
            wire::ErrorCode::Forbidden,
            format!(
                "photo {} belongs to no record of yours or of your grid cells; push the record first",
                hex::encode(sha)
            ),
            false,
        ));
    }
    Ok(access)
}

pub(super) async fn blob_status(
    shared: &Shared,
    device: &DeviceSession,
    req: wire::BlobStatusRequest,
) -> wire::Response {
    let sha = match blob_target(shared, &req.sha256, Some(req.size)) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let access = match blob_allowed(shared, device, &sha).await {
        Ok(a) => a,
        Err(e) => return e,
    };
    let ok = |held, complete| wire::Response {
        kind: Some(wire::response::Kind::BlobStatus(wire::BlobStatusResponse {
            held,
            complete,
        })),
    };
    let unavailable = |e: String| {
        wire::Response::error(wire::ErrorCode::Unavailable, format!("{e}; retry"), true)
    };
    // Only a device that may read the photo learns that the server has it; to anyone else the
    // answer is what it staged itself, so naming a hash in one's own record is no oracle.
    if access.readable {
        if let Some(size) = access.stored {
            return ok(size, true);
        }
        // Stored but not recorded (a crash between the two): record it now.
        match shared.blobs.stored(&sha).await {
            Ok(Some(size)) => {
                return match shared
                    .store
                    .record_blob(&sha, size, crate::clock::now_ms())
                    .await
                {
                    Ok(()) => ok(size, true),
                    Err(e) => unavailable(e.to_string()),
                };
            }
            Ok(None) => {}
            Err(e) => return unavailable(e.to_string()),
        }
    }
    match shared.blobs.staged(&sha, &device.id.to_string()).await {
        Ok(n) => ok(n, false),
        Err(e) => unavailable(e.to_string()),
    }
}

/// "Retry": the store or the disk failed with `e`.
fn unavailable(e: impl std::fmt::Display) -> wire::Response {
    wire::Response::error(wire::ErrorCode::Unavailable, e.to_string(), true)
}

pub(super) async fn blob_upload(
    shared: &Shared,
    device: &DeviceSession,
    req: wire::BlobUploadRequest,
    recv: &mut RecvStream,
) -> Answer {
    use crate::blobs::BlobError;
    let respond = Answer::Respond;
    // A refusal before the bytes are read stops the stream: they are not wanted.
    let refuse = |recv: &mut RecvStream, r: wire::Response| {
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        Answer::Respond(r)
    };
    let sha = match blob_target(shared, &req.sha256, Some(req.size)) {
        Ok(s) => s,
        Err(e) => return refuse(recv, e),
    };
    let hex = hex::encode(sha);
    if req.offset > req.size {
        return refuse(
            recv,
            wire::Response::error(
                wire::ErrorCode::BadRequest,
                format!(
                    "photo {hex}: upload from {} of a photo of {} bytes",
                    req.offset, req.size
                ),
                false,
            ),
        );
    }
    let access = match blob_allowed(shared, device, &sha).await {
        Ok(a) => a,
        Err(e) => return refuse(recv, e),
    };
    let done = |size| {
        respond(wire::Response {
            kind: Some(wire::response::Kind::BlobUpload(wire::BlobUploadResponse {
                held: size,
                complete: true,
            })),
        })
    };
    // A device that may read the photo sends no bytes once it is stored; anyone else proves it
    // holds the photo by sending them all (into staging of its own: nobody else's upload can be
    // spoiled), and only then learns that it was stored already.
    let readable = access.readable;
    if readable && let Some(size) = access.stored {
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        return done(size);
    }
    let owner = device.id.to_string();
    let guard = match shared.blobs.claim(&sha, &owner) {
        Ok(g) => g,
        Err(e) => return refuse(recv, unavailable(e)),
    };
    let held = match shared.blobs.held(&sha, &owner).await {
        Ok(h) => h,
        Err(e) => return refuse(recv, unavailable(e)),
    };
    if held.complete && readable {
        // Stored but not recorded (a crash between the two): record it now.
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        let _ = shared
            .store
            .record_blob(&sha, held.bytes, crate::clock::now_ms())
            .await;
        return done(held.bytes);
    }
    let held = match held.complete {
        true => match shared.blobs.staged(&sha, &owner).await {
            Ok(n) => n,
            Err(e) => return refuse(recv, unavailable(e)),
        },
        false => held.bytes,
    };
    if req.offset != held {
        return refuse(
            recv,
            blob_error(
                wire::ErrorCode::BlobOffsetMismatch,
                format!(
                    "photo {hex}: upload from {} but the server holds {held} bytes; resume from there",
                    req.offset
                ),
                true,
                held,
            ),
        );
    }
    let open = match shared.blobs.open_staging(&guard, held).await {
        Ok(f) => f,
        Err(e) => {
            // Busy (another node still runs this device's earlier upload) or the disk.
            return refuse(recv, unavailable(e));
        }
    };
    // Charged once the upload holds its staging (an upload told to retry because it is busy
    // elsewhere has spent nothing), and before anything is made, written or read. The whole
    // photo: a resumed upload sends what is missing and has the server read back what it
    // holds, so resuming over and over costs the device what sending it does.
    if let Err(r) = shared.budgets.photo_bytes(device.id, req.size) {
        return refuse(
            recv,
            refused(
                r,
                format!(
                    "this device's photo uploads today have reached its budget of {}",
                    match shared.config.limits.photo_bytes_per_day {
                        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
                        b => format!("{} KiB", b >> 10),
                    }
                ),
            ),
        );
    }
    let mut file = match open.resume().await {
        Ok(f) => f,
        Err(e) => return refuse(recv, unavailable(e)),
    };
    #[cfg(feature = "test-util")]
    let cut = shared.faults.take_upload_cut();
    #[cfg(not(feature = "test-util"))]
    let cut: Option<u64> = None;
    let mut total = held;
    // Up to 32 received segments per wake-up: one timer and one await per batch, not per packet.
    let mut segments = vec![bytes::Bytes::new(); 32];
    loop {
        let next = match tokio::time::timeout(
            shared.config.limits.idle_request_timeout,
            recv.read_chunks(&mut segments),
        )
        .await
        {
            Ok(n) => n,
            Err(_) => {
                // Stalled: keep what arrived for the resume, free the stream.
                let _ = file.persist().await;
                return refuse(
                    recv,
                    blob_error(
                        wire::ErrorCode::LimitExceeded,
                        format!(
                            "photo {hex}: no bytes for {} s; resume from {total}",
                            shared.config.limits.idle_request_timeout.as_secs()
                        ),
                        true,
                        total,
                    ),
                );
            }
        };
        let count = match next {
            Ok(Some(count)) => count,
            Ok(None) => break,
            Err(_) => {
                // The device went away: keep what arrived, durably, for the resume.
                let _ = file.persist().await;
                return Answer::Drop;
            }
        };
        for chunk in &segments[..count] {
            let n = chunk.len() as u64;
            if total + n > req.size {
                let _ = file.persist().await;
                let _ = recv.stop(VarInt::from_u32(codes::RESET_PROTOCOL_ERROR));
                return respond(blob_error(
                    wire::ErrorCode::BadRequest,
                    format!("photo {hex}: more bytes than the announced {}", req.size),
                    false,
                    total,
                ));
            }
            if let Err(e) = file.write(chunk).await {
                return respond(unavailable(e));
            }
            shared.metrics.photo_bytes.inc_by(n);
            total += n;
            if cut.is_some_and(|c| total >= c) {
                let _ = file.persist().await;
                tracing::info!(photo = %hex, total, "fault injection: cutting an upload");
                let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
                return Answer::Drop;
            }
        }
    }
    if total < req.size {
        // Kept, durably, for the resume.
        if let Err(e) = file.persist().await {
            return respond(unavailable(e));
        }
        return respond(blob_error(
            wire::ErrorCode::BadRequest,
            format!(
                "photo {hex}: the upload ended at {total} of {} bytes; resume from {total}",
                req.size
            ),
            true,
            total,
        ));
    }
    match shared.blobs.finish(&guard, file).await {
        // The photo is stored (again: idempotent) and this device proved it holds it.
        Ok(size) => match shared
            .upload_records
            .record(ProvedUpload {
                sha256: sha,
                size,
                device: device.id,
            })
            .await
        {
            Ok(()) => {
                shared.metrics.photos_stored.inc();
                done(size)
            }
            Err(e) => respond(wire::Response::error(
                wire::ErrorCode::Unavailable,
                format!("retry: {e}"),
                true,
            )),
        },
        Err(e @ BlobError::HashMismatch(_)) => respond(wire::Response::error(
            wire::ErrorCode::BlobHashMismatch,
            e.to_string(),
            false,
        )),
        Err(e) => respond(unavailable(e)),
    }
}

pub(super) async fn blob_download(
    shared: &Shared,
    device: &DeviceSession,
    req: wire::BlobDownloadRequest,
) -> Answer {
    let sha = match blob_target(shared, &req.sha256, None) {
        Ok(s) => s,
        Err(e) => return Answer::Respond(e),
    };
    let hex = hex::encode(sha);
    // The same answer whether or not the photo is stored: no oracle.
    let access = match blob_access(shared, device, &sha).await {
        Ok(a) => a,
        Err(e) => return Answer::Respond(e),
    };
    if !access.readable {
        return Answer::Respond(wire::Response::error(
            wire::ErrorCode::Forbidden,
            format!(
                "photo {hex} is in no record of your grid cells made by another device, and \
                 this device has not uploaded it"
            ),
            false,
        ));
    }
    let Some(size) = access.stored else {
        return Answer::Respond(wire::Response::error(
            wire::ErrorCode::NotFound,
            format!("photo {hex} has not been uploaded yet"),
            true,
        ));
    };
    if req.offset > size {
        return Answer::Respond(wire::Response::error(
            wire::ErrorCode::BadRequest,
            format!(
                "offset {} is past the end of photo {hex} ({size} bytes)",
                req.offset
            ),
            false,
        ));
    }
    match shared.blobs.read(&sha, req.offset).await {
        Ok(file) => Answer::Download(
            wire::Response {
                kind: Some(wire::response::Kind::BlobDownload(
                    wire::BlobDownloadResponse { size },
                )),
            },
            file,
        ),
        Err(e) => Answer::Respond(wire::Response::error(
            wire::ErrorCode::Unavailable,
            e.to_string(),
            true,
        )),
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use super::*;
    use crate::store::FaultyStore;
    use patrolsync_proto::DeviceId;

    async fn store(dir: &std::path::Path) -> Arc<FaultyStore> {
        let sql = crate::testkit::sqlite_store(dir).await.expect("store");
        Arc::new(FaultyStore::new(Arc::new(sql)))
    }

    fn uploads(n: u8, device: DeviceId) -> Vec<ProvedUpload> {
        (0..n)
            .map(|i| ProvedUpload {
                sha256: [i; 32],
                size: 100 + u64::from(i),
                device,
            })
            .collect()
    }

    #[tokio::test]
    async fn uploads_that_finish_together_share_one_commit_and_are_each_answered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path()).await;
        let records = UploadRecords::start(store.clone());
        let all = uploads(40, DeviceId(uuid::Uuid::now_v7()));
        let answers = futures_util::future::join_all(all.iter().map(|u| records.record(*u))).await;
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(store.take_calls(), vec!["record_uploads"], "one commit");
        for u in &all {
            assert_eq!(
                store.inner().blob(&u.sha256).await.expect("blob"),
                Some(u.size)
            );
        }
        assert_eq!(store.inner().stats(0).await.expect("stats").blobs, 40);
    }

    #[tokio::test]
    async fn a_failed_commit_answers_every_upload_in_it_and_the_next_is_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(dir.path()).await;
        let records = UploadRecords::start(store.clone());
        let all = uploads(4, DeviceId(uuid::Uuid::now_v7()));
        store.fail_nth_call(1);
        let answers =
            futures_util::future::join_all(all[..3].iter().map(|u| records.record(*u))).await;
        for a in &answers {
            let e = a.as_ref().expect_err("the commit failed");
            assert!(
                matches!(e, RecordError::Store(s) if matches!(**s, StoreError::Injected(_))),
                "{e:?}"
            );
        }
        assert_eq!(
            store.inner().blob(&all[0].sha256).await.expect("blob"),
            None
        );
        records.record(all[3]).await.expect("recorded");
        assert_eq!(
            store.inner().blob(&all[3].sha256).await.expect("blob"),
            Some(all[3].size)
        );
        assert_eq!(store.inner().stats(0).await.expect("stats").blobs, 1);
    }
}
