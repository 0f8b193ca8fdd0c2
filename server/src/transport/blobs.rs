//! Photos: status, upload (resumable, per-device staging, verified) and download, each
//! allowed only through scope or proven possession.

use patrolsync_proto::codes;
use patrolsync_proto::wire;
use quinn::{RecvStream, VarInt};

use super::*;
use crate::store::DeviceSession;

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

/// Whether `device` may read the photo; the error is the answer to send.
// The error is the response to send, built once per refused request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
pub(super) async fn blob_readable(
    shared: &Shared,
    device: &DeviceSession,
    sha: &[u8; 32],
) -> Result<bool, wire::Response> {
    shared
        .store
        .blob_readable(sha, device.id, &device.pull_scope())
        .await
        .map_err(|e| {
            wire::Response::error(wire::ErrorCode::Unavailable, format!("retry: {e}"), true)
        })
}

/// Photos are accepted only for records the device has sent or can see: nobody fills the disk
/// with, or probes for, photos unrelated to their cells.
pub(super) async fn blob_allowed(
    shared: &Shared,
    device: &DeviceSession,
    sha: &[u8; 32],
) -> Result<(), wire::Response> {
    let scope = device.pull_scope();
    match shared.store.blob_visible(sha, device.id, &scope).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(wire::Response::error(
            wire::ErrorCode::Forbidden,
            format!(
                "photo {} belongs to no record of yours or of your grid cells; push the record first",
                hex::encode(sha)
            ),
            false,
        )),
        Err(e) => Err(wire::Response::error(
            wire::ErrorCode::Unavailable,
            format!("retry: {e}"),
            true,
        )),
    }
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
    if let Err(e) = blob_allowed(shared, device, &sha).await {
        return e;
    }
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
    let readable = match blob_readable(shared, device, &sha).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    if readable {
        match shared.store.blob(&sha).await {
            Ok(Some(size)) => return ok(size, true),
            Ok(None) => {}
            Err(e) => return unavailable(e.to_string()),
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

pub(super) async fn blob_upload(
    shared: &Shared,
    device: &DeviceSession,
    req: wire::BlobUploadRequest,
    recv: &mut RecvStream,
) -> Answer {
    use crate::blobs::BlobError;
    let respond = Answer::Respond;
    let sha = match blob_target(shared, &req.sha256, Some(req.size)) {
        Ok(s) => s,
        Err(e) => {
            let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
            return respond(e);
        }
    };
    if let Err(e) = blob_allowed(shared, device, &sha).await {
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        return respond(e);
    }
    let hex = hex::encode(sha);
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
    let readable = match blob_readable(shared, device, &sha).await {
        Ok(r) => r,
        Err(e) => {
            let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
            return respond(e);
        }
    };
    if readable && let Ok(Some(size)) = shared.store.blob(&sha).await {
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        return done(size);
    }
    let owner = device.id.to_string();
    let guard = match shared.blobs.claim(&sha, &owner) {
        Ok(g) => g,
        Err(e) => {
            return respond(wire::Response::error(
                wire::ErrorCode::Unavailable,
                e.to_string(),
                true,
            ));
        }
    };
    let held = match shared.blobs.held(&sha, &owner).await {
        Ok(h) => h,
        Err(e) => {
            return respond(wire::Response::error(
                wire::ErrorCode::Unavailable,
                e.to_string(),
                true,
            ));
        }
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
            Err(e) => {
                return respond(wire::Response::error(
                    wire::ErrorCode::Unavailable,
                    e.to_string(),
                    true,
                ));
            }
        },
        false => held.bytes,
    };
    if req.offset != held {
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        return respond(blob_error(
            wire::ErrorCode::BlobOffsetMismatch,
            format!(
                "photo {hex}: upload from {} but the server holds {held} bytes; resume from there",
                req.offset
            ),
            true,
            held,
        ));
    }
    if let Err(r) = shared
        .budgets
        .photo_bytes(device.id, req.size.saturating_sub(held))
    {
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        return respond(refused(
            r,
            format!(
                "this device has sent {} MiB of photos today, its budget",
                shared.config.limits.photo_bytes_per_day >> 20
            ),
        ));
    }
    let mut file = match shared.blobs.staging(&guard, held).await {
        Ok(f) => f,
        Err(e) => {
            return respond(wire::Response::error(
                wire::ErrorCode::Unavailable,
                e.to_string(),
                true,
            ));
        }
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
                let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
                return respond(blob_error(
                    wire::ErrorCode::LimitExceeded,
                    format!(
                        "photo {hex}: no bytes for {} s; resume from {total}",
                        shared.config.limits.idle_request_timeout.as_secs()
                    ),
                    true,
                    total,
                ));
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
                return respond(wire::Response::error(
                    wire::ErrorCode::Unavailable,
                    e.to_string(),
                    true,
                ));
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
    if let Err(e) = file.persist().await {
        return respond(wire::Response::error(
            wire::ErrorCode::Unavailable,
            e.to_string(),
            true,
        ));
    }
    if total < req.size {
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
            .store
            .record_upload(&sha, size, device.id, crate::clock::now_ms())
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
        Err(e) => respond(wire::Response::error(
            wire::ErrorCode::Unavailable,
            e.to_string(),
            true,
        )),
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
    match blob_readable(shared, device, &sha).await {
        Ok(true) => {}
        Ok(false) => {
            return Answer::Respond(wire::Response::error(
                wire::ErrorCode::Forbidden,
                format!(
                    "photo {hex} is in no record of your grid cells made by another device, and \
                     this device has not uploaded it"
                ),
                false,
            ));
        }
        Err(e) => return Answer::Respond(e),
    }
    let size = match shared.store.blob(&sha).await {
        Ok(Some(size)) => size,
        Ok(None) => {
            return Answer::Respond(wire::Response::error(
                wire::ErrorCode::NotFound,
                format!("photo {hex} has not been uploaded yet"),
                true,
            ));
        }
        Err(e) => {
            return Answer::Respond(wire::Response::error(
                wire::ErrorCode::Unavailable,
                format!("retry: {e}"),
                true,
            ));
        }
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
