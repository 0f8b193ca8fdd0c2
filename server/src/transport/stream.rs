//! One request per stream: its frame read (an inactivity timeout for devices, a deadline for
//! strangers), refused or dispatched, its answer sent.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use patrolsync_proto::codes;
use patrolsync_proto::frame::{self, FrameError};
use patrolsync_proto::{Message, wire};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use tracing::Instrument;

use super::*;
use crate::store::DeviceSession;

/// The name of an RPC for metrics and logs.
pub(super) fn rpc_kind(kind: &Option<wire::request::Kind>) -> &'static str {
    use wire::request::Kind;
    match kind {
        None => "none",
        Some(Kind::Enroll(_)) => "enroll",
        Some(Kind::Hello(_)) => "hello",
        Some(Kind::Push(_)) => "push",
        Some(Kind::Pull(_)) => "pull",
        Some(Kind::BlobStatus(_)) => "blob_status",
        Some(Kind::BlobUpload(_)) => "blob_upload",
        Some(Kind::BlobDownload(_)) => "blob_download",
    }
}

/// `ok`, or the error code a response carries (metrics label).
pub(super) fn result_label(response: &wire::Response) -> &'static str {
    use wire::ErrorCode as E;
    let Some(wire::response::Kind::Error(e)) = &response.kind else {
        return "ok";
    };
    match E::try_from(e.code).unwrap_or(E::Unspecified) {
        E::Unspecified => "unspecified",
        E::BadRequest => "bad_request",
        E::Unauthenticated => "unauthenticated",
        E::Forbidden => "forbidden",
        E::Unsupported => "unsupported",
        E::LimitExceeded => "limit_exceeded",
        E::Unavailable => "unavailable",
        E::EnrollmentRefused => "enrollment_refused",
        E::BlobOffsetMismatch => "blob_offset_mismatch",
        E::BlobHashMismatch => "blob_hash_mismatch",
        E::NotFound => "not_found",
        E::Revoked => "revoked",
    }
}

/// The connection a stream belongs to, for RTT and traffic figures.
pub(super) struct Link {
    pub(super) conn: Connection,
    pub(super) traffic: Arc<Traffic>,
    /// The language the device asked for in its last Hello (refusals are worded in it).
    pub(super) lang: Arc<std::sync::Mutex<patrolsync_i18n::Lang>>,
}

impl Link {
    /// The device's language (zh-CN until a Hello names another).
    pub(super) fn lang(&self) -> patrolsync_i18n::Lang {
        *self.lang.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads one frame with the protocol's decoder, never past its end (an upload's raw bytes
/// follow it on the same stream). Memory grows with the bytes that arrive, not with the length
/// a header announces: quinn hands over the chunks it already holds.
/// Why a request frame was not read.
pub(super) enum ReadFailure {
    /// Nothing arrived for the idle timeout (or a stranger's frame took longer than it).
    Stalled,
    /// The frame itself was refused.
    Frame(FrameError),
}

/// Reads one request frame. The timeout is one of inactivity: a device on a slow link may take
/// as long as it needs while bytes keep coming, a peer that stops sending is cut off. The memory
/// held grows only with the bytes that actually arrived (the decoder never trusts the header).
pub(super) async fn read_frame<M: Message + Default>(
    recv: &mut RecvStream,
    limit: u32,
    idle: std::time::Duration,
) -> Result<M, ReadFailure> {
    let mut decoder = frame::FrameDecoder::new(limit);
    loop {
        let got = decoder.wants();
        let chunk = tokio::time::timeout(idle, recv.read_chunk(got, true))
            .await
            .map_err(|_| ReadFailure::Stalled)?;
        match chunk {
            Ok(Some(chunk)) => {
                if let Some(body) = decoder.feed(&chunk.bytes).map_err(ReadFailure::Frame)? {
                    return frame::decode(&body).map_err(ReadFailure::Frame);
                }
            }
            Ok(None) | Err(_) => {
                decoder.finish().map_err(ReadFailure::Frame)?;
                return Err(ReadFailure::Frame(FrameError::Truncated {
                    expected: got,
                    got: 0,
                }));
            }
        }
    }
}

pub(super) enum Answer {
    Respond(wire::Response),
    /// A download: the response frame, then the file's bytes from the offset.
    Download(wire::Response, crate::blobs::BlobReader),
    /// Reset the stream without answering: the device went away mid-upload (what arrived is
    /// kept for the resume), or, under `test-util`, a fault drops a committed push's answer or
    /// cuts an upload.
    Drop,
}

pub(super) async fn serve_stream(
    shared: &Shared,
    session: &Mutex<Option<Arc<DeviceSession>>>,
    link: &Link,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    // Before a device is known only Enroll is possible, and an Enroll is small.
    let authenticated = session.lock().unwrap_or_else(|e| e.into_inner()).is_some();
    let limit = if authenticated {
        shared.config.limits.max_frame_bytes
    } else {
        64 * 1024
    };
    let idle = shared.config.limits.idle_request_timeout;
    // A device's request may take as long as its link needs, so long as bytes keep coming; a
    // stranger's (an Enroll, a few hundred bytes) must arrive whole within the idle timeout.
    let read = if authenticated {
        read_frame(&mut recv, limit, idle).await
    } else {
        tokio::time::timeout(idle, read_frame(&mut recv, limit, idle))
            .await
            .unwrap_or(Err(ReadFailure::Stalled))
    };
    let request: wire::Request = match read {
        Ok(r) => r,
        Err(ReadFailure::Stalled) => {
            let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
            let message = if authenticated {
                format!("nothing received for {} s; stream closed", idle.as_secs())
            } else {
                format!(
                    "no complete request within {} s; stream closed",
                    idle.as_secs()
                )
            };
            let _ = send
                .write_all(&frame::encode(&wire::Response::error(
                    wire::ErrorCode::LimitExceeded,
                    message,
                    true,
                )))
                .await;
            let _ = send.finish();
            return;
        }
        Err(ReadFailure::Frame(e)) => {
            let (code, retryable) = match e {
                FrameError::TooLarge { .. } => (wire::ErrorCode::LimitExceeded, false),
                _ => (wire::ErrorCode::BadRequest, false),
            };
            let _ = recv.stop(VarInt::from_u32(codes::RESET_PROTOCOL_ERROR));
            let _ = send
                .write_all(&frame::encode(&wire::Response::error(
                    code,
                    format!("request rejected: {e}"),
                    retryable,
                )))
                .await;
            let _ = send.finish();
            return;
        }
    };
    if shared.draining.load(Ordering::SeqCst) {
        // Requests already running finish; new ones go to another node (or here, restarted).
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        let _ = send
            .write_all(&frame::encode(&wire::Response::error(
                wire::ErrorCode::Unavailable,
                "this server node is shutting down; reconnect and retry",
                true,
            )))
            .await;
        let _ = send.finish();
        return;
    }
    let current = session.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let kind = rpc_kind(&request.kind);
    // Every request but pushes (which have a budget of their own) spends the device's request
    // budget. Uploads spend it too, beside their photo bytes: an upload refused for its bytes
    // has still cost the store a read and the disk a lookup.
    let over_budget = match (&current, &request.kind) {
        (
            Some(d),
            Some(
                wire::request::Kind::Hello(_)
                | wire::request::Kind::Pull(_)
                | wire::request::Kind::BlobStatus(_)
                | wire::request::Kind::BlobUpload(_)
                | wire::request::Kind::BlobDownload(_),
            ),
        ) => shared.budgets.request(d.id).err(),
        _ => None,
    };
    let started = std::time::Instant::now();
    let answer = async {
        match request.kind {
            None => Answer::Respond(wire::Response::error(
                wire::ErrorCode::BadRequest,
                "request has no RPC set",
                false,
            )),
            Some(wire::request::Kind::Enroll(req)) => {
                match shared.budgets.enroll(link.conn.remote_address().ip()) {
                    Ok(()) => Answer::Respond(
                        crate::enroll::enroll_rpc(shared.store.as_ref(), &shared.pki, req).await,
                    ),
                    Err(r) => Answer::Respond(refused(
                        r,
                        format!(
                            "more than {} enrollment attempts a minute from your address",
                            shared.config.limits.enrolls_per_minute_per_address
                        ),
                    )),
                }
            }
            Some(kind) => match current.clone() {
                None => Answer::Respond(wire::Response::error(
                    wire::ErrorCode::Unauthenticated,
                    "this connection has no device certificate; enroll the device first",
                    false,
                )),
                Some(_) if over_budget.is_some() => Answer::Respond({
                    // An upload's bytes are not read.
                    let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
                    refused(
                        over_budget.unwrap_or(crate::budget::Refused { retry_in: None }),
                        format!(
                            "more than {} requests a second from this device",
                            shared.config.limits.requests_per_second
                        ),
                    )
                }),
                Some(device) => match kind {
                    wire::request::Kind::Hello(h) => {
                        Answer::Respond(hello(shared, session, link, &device, h).await)
                    }
                    wire::request::Kind::Push(p) => push(shared, &device, p, link.lang()).await,
                    wire::request::Kind::Pull(p) => Answer::Respond(
                        crate::pull::pull(shared.store.as_ref(), &shared.metrics, &device, p).await,
                    ),
                    wire::request::Kind::BlobStatus(b) => {
                        Answer::Respond(blob_status(shared, &device, b).await)
                    }
                    wire::request::Kind::BlobUpload(b) => {
                        blob_upload(shared, &device, b, &mut recv).await
                    }
                    wire::request::Kind::BlobDownload(b) => blob_download(shared, &device, b).await,
                    wire::request::Kind::Enroll(_) => Answer::Respond(wire::Response::error(
                        wire::ErrorCode::BadRequest,
                        "unreachable",
                        false,
                    )),
                },
            },
        }
    }
    .instrument(tracing::info_span!("rpc", kind))
    .await;
    let result = match &answer {
        Answer::Respond(r) | Answer::Download(r, _) => result_label(r),
        Answer::Drop => "dropped",
    };
    shared.metrics.rpc(kind, result);
    if kind == "push" && result == "ok" {
        shared.metrics.ack(started.elapsed());
    }
    let activity = match (&current, &answer) {
        (Some(device), Answer::Respond(r) | Answer::Download(r, _)) => {
            outcome_activity(shared, device.id, kind, r).map(|a| (device.id, a))
        }
        _ => None,
    };
    send_answer(answer, &mut send).await;
    // After the answer: the device does not wait on this write (or on a store that is down).
    if let Some((device, activity)) = activity {
        let started = std::time::Instant::now();
        if let Err(e) = shared
            .store
            .record_activity(device, &activity, crate::clock::now_ms())
            .await
        {
            tracing::debug!(error = %e, "could not record device activity");
        }
        shared
            .metrics
            .store_call("record_activity", started.elapsed());
    }
}

pub(super) async fn send_answer(answer: Answer, send: &mut SendStream) {
    match answer {
        Answer::Respond(response) => {
            if let Err(e) = send.write_all(&frame::encode(&response)).await {
                tracing::debug!(error = %e, "could not send response");
            }
            let _ = send.finish();
        }
        Answer::Drop => {
            let _ = send.reset(VarInt::from_u32(codes::RESET_ANSWER_LOST));
        }
        Answer::Download(response, mut file) => {
            use tokio::io::AsyncReadExt;
            if send.write_all(&frame::encode(&response)).await.is_err() {
                return;
            }
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match file.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if send.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => {
                        let _ = send.reset(VarInt::from_u32(codes::RESET_RETRY_SAFE));
                        return;
                    }
                }
            }
            let _ = send.finish();
        }
    }
}
