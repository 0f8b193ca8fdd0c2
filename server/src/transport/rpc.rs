//! Hello and Push.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use patrolsync_proto::op::{BatchError, check_batch};
use patrolsync_proto::wire;

use super::*;
use crate::ingest::{self};
use crate::store::{DeviceReport, DeviceSession, Outcome, RejectCode};

pub(super) async fn hello(
    shared: &Shared,
    session: &Mutex<Option<Arc<DeviceSession>>>,
    link: &Link,
    device: &DeviceSession,
    h: wire::Hello,
) -> wire::Response {
    let now = crate::clock::now_ms();
    *link.lang.lock().unwrap_or_else(|e| e.into_inner()) =
        patrolsync_i18n::Lang::from_tag(&h.language);
    let (bytes_in, bytes_out) = link.traffic.delta(&link.conn);
    let rtt_ms = u32::try_from(link.conn.rtt().as_millis()).unwrap_or(u32::MAX);
    let report = DeviceReport {
        outbox_depth: h.outbox_depth,
        oldest_pending_age_ms: h.oldest_pending_age_ms,
        pending_photo_bytes: h.pending_photo_bytes,
        app_version: h
            .app_version
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect(),
        sdk_version: h
            .sdk_version
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect(),
        clock_offset_ms: if h.device_time_ms == 0 {
            0
        } else {
            h.device_time_ms.saturating_sub(now)
        },
        rtt_ms: Some(rtt_ms),
        bytes_in,
        bytes_out,
        // A position is taken only on duty; an unusable one is left out (the Hello stands).
        duty: h.on_duty.then(|| {
            h.position.and_then(|p| {
                patrolsync_proto::GeoFix::from_wire("position", p, now)
                    .inspect_err(|e| tracing::debug!(device = %device.id, error = %e, "hello: position left out"))
                    .ok()
            })
        }),
    };
    let started = std::time::Instant::now();
    let recorded = shared.store.record_hello(device.id, &report, now).await;
    shared.metrics.store_call("record_hello", started.elapsed());
    let acked_through = match recorded {
        Ok(a) => a,
        Err(e) => {
            return wire::Response::error(
                wire::ErrorCode::Unavailable,
                format!("could not record hello: {e}"),
                true,
            );
        }
    };
    // Refresh the user's cells and role: assignments may have changed since the connection began.
    // On a store failure the connection's session stands: the Hello is still answered.
    let mut fresh = device.clone();
    match shared.store.device_session(device.id).await {
        Ok(Some(s)) => {
            fresh = s;
            *session.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(fresh.clone()));
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "hello: could not refresh the device's cells; keeping the connection's")
        }
    }
    // The cursor is a hint (the device pulls either way); 0 when the store cannot say.
    let cursor = shared.store.cursor().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "hello: could not read the change-log head");
        0
    });
    let limits = &shared.config.limits;
    wire::Response {
        kind: Some(wire::response::Kind::Hello(wire::HelloResponse {
            server_time_ms: now,
            limits: Some(wire::Limits {
                max_frame_bytes: limits.max_frame_bytes,
                max_ops_per_push: limits.max_ops_per_push,
                max_blob_bytes: limits.max_blob_bytes,
            }),
            acked_through,
            cursor,
            device_id: fresh.id.to_string(),
            user: fresh.user.clone(),
            role: fresh.role.wire(),
            grid_cells: fresh.cell_codes(),
            server_version: env!("CARGO_PKG_VERSION").into(),
        })),
    }
}

/// A refusal for a spent budget: `LimitExceeded`, retryable when the budget refills (said in
/// the message), not when the request alone is larger than the whole budget.
pub(super) fn refused(r: crate::budget::Refused, what: String) -> wire::Response {
    match r.retry_in {
        Some(wait) => wire::Response::error(
            wire::ErrorCode::LimitExceeded,
            format!(
                "{what}; nothing was done, retry in {}",
                humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
            ),
            true,
        ),
        None => wire::Response::error(
            wire::ErrorCode::LimitExceeded,
            format!("{what}; this request alone is over the budget"),
            false,
        ),
    }
}

/// Stores a push; each refused op's message is worded in `lang`, the device's language.
pub(super) async fn push(
    shared: &Shared,
    device: &DeviceSession,
    p: wire::PushRequest,
    lang: patrolsync_i18n::Lang,
) -> Answer {
    if let Err(r) = shared.budgets.push(device.id) {
        return Answer::Respond(refused(
            r,
            format!(
                "more than {} pushes a second from this device; nothing stored",
                shared.config.limits.pushes_per_second
            ),
        ));
    }
    let max = shared.config.limits.max_ops_per_push as usize;
    if let Err(e) = check_batch(&p.ops, max) {
        let code = match e {
            BatchError::TooManyOps { .. } => wire::ErrorCode::LimitExceeded,
            _ => wire::ErrorCode::BadRequest,
        };
        return Answer::Respond(wire::Response::error(
            code,
            format!("push refused, nothing stored: {e}"),
            false,
        ));
    }
    let now = crate::clock::now_ms();
    let mut batch = match ingest::prepare(shared.store.as_ref(), device, p.ops, now).await {
        Ok(b) => b,
        Err(e) => {
            return Answer::Respond(wire::Response::error(
                wire::ErrorCode::Unavailable,
                format!("nothing stored, retry: {e}"),
                true,
            ));
        }
    };
    // Refusals are answered and logged whatever they cost, but one device's refused payloads
    // may fill the refusal log only so far a day.
    for op in &mut batch.ops {
        if let crate::store::OpAction::Reject(r) = &mut op.action
            && !r.payload.is_empty()
            && !shared
                .budgets
                .keep_refused(device.id, r.payload.len() as u64)
        {
            r.payload = Vec::new();
            r.refusal.message.push_str(
                " (its payload was not kept: this device's refused ops are over today's budget)",
            );
        }
    }
    let started = std::time::Instant::now();
    let committed = shared.ingest.commit(batch).await;
    shared.metrics.store_call("ingest", started.elapsed());
    let result = match committed {
        Ok(r) => r,
        Err(e) => {
            return Answer::Respond(wire::Response::error(
                wire::ErrorCode::Unavailable,
                format!("nothing stored, retry: {e}"),
                true,
            ));
        }
    };
    // Counted as committed, whether or not the answer reaches the device.
    let m = &shared.metrics;
    m.ops_ingested.inc_by(result.fresh.stored);
    // Every op answered `duplicate`: replays of stored ops and new ops repeating a record.
    let duplicates = result
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Duplicate)
        .count();
    m.ops_duplicate.inc_by(duplicates as u64);
    for code in &result.fresh.rejected {
        m.ops_rejected
            .get_or_create(&crate::metrics::CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }
    #[cfg(feature = "test-util")]
    if shared.faults.take_dropped_ack() {
        tracing::info!(device = %device.id, "fault injection: dropping a committed push's answer");
        return Answer::Drop;
    }
    if !result.changed_paths.is_empty() || !result.changed_audiences.is_empty() {
        notify_in_scope(
            shared,
            Some(device.id),
            Some(&result.changed_paths),
            &result.changed_audiences,
            result.cursor,
        );
        if let Some(cluster) = &shared.cluster {
            cluster.publish(
                device.id,
                &result.changed_paths,
                &result.changed_audiences,
                result.cursor,
            );
        }
    }
    let results = result
        .results
        .into_iter()
        .map(|r| op_result(r, lang))
        .collect();
    Answer::Respond(wire::Response {
        kind: Some(wire::response::Kind::Push(wire::PushResponse {
            acked_through: result.acked_through,
            results,
        })),
    })
}

/// One op's result on the wire, a refusal's message in `lang`.
pub(super) fn op_result(r: crate::store::OpResult, lang: patrolsync_i18n::Lang) -> wire::OpResult {
    let mut out = wire::OpResult {
        device_seq: r.device_seq,
        ..Default::default()
    };
    out.outcome = match r.outcome {
        Outcome::Applied => wire::OpOutcome::Applied,
        Outcome::Duplicate => wire::OpOutcome::Duplicate,
        Outcome::Rejected => wire::OpOutcome::Rejected,
        Outcome::Conflict => wire::OpOutcome::Conflict,
    } as i32;
    if let Some(refusal) = r.rejection {
        out.code = reject_code(refusal.code) as i32;
        out.message = refusal.text(lang);
        (out.reason, out.field) = (refusal.reason, refusal.field);
    }
    if let Some(why) = r.conflict {
        out.reason = "conflict".into();
        out.message = why;
    }
    out
}

pub(super) fn reject_code(code: RejectCode) -> wire::ErrorCode {
    match code {
        RejectCode::Invalid => wire::ErrorCode::BadRequest,
        RejectCode::Forbidden => wire::ErrorCode::Forbidden,
        RejectCode::NotFound => wire::ErrorCode::NotFound,
        RejectCode::Unsupported => wire::ErrorCode::Unsupported,
    }
}
