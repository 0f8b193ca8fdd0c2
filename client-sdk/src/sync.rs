//! One sync: Hello, the outbox pushed in pipelined batches, pull pages applied, photos moved.

use std::time::Duration;

use patrolsync_proto::{OpBody, codes, wire};
use sqlx::Row;
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::enroll::Identity;
use crate::error::{code_name, local, unexpected};
use crate::events::{DataKind, SyncEvent, SyncSummary};
use crate::outbox::{mark_check_in, outbox_hlc};
use crate::state::{Connectivity, SyncPhase};
use crate::transport::{self, CallError};
use crate::{Client, ErrorCode, SyncError};

/// Sets the state's phase back to idle when a sync ends, however it ends.
struct IdleOnDrop<'a>(&'a Client);

impl Drop for IdleOnDrop<'_> {
    fn drop(&mut self) {
        self.0.update_state(|s| {
            s.phase = SyncPhase::Idle;
            s.bootstrap = None;
            // Cancelled before the server answered: as of this attempt, not reached.
            if s.connectivity == Connectivity::Connecting {
                s.connectivity = Connectivity::Offline;
            }
        });
    }
}

/// Whether a step's outcome says the server is reachable.
fn reachability<T>(outcome: &Result<T, SyncError>) -> Connectivity {
    match outcome {
        Err(SyncError::Network { .. }) => Connectivity::Offline,
        _ => Connectivity::Connected,
    }
}

/// A push that came back: its ops' sequence numbers, whether they are hazard ops, the answer.
type Pushed = (Vec<i64>, bool, wire::Response);

/// Whether what volunteers who signed out left here is sent after a sync that ended so: it goes
/// under their own names whether or not this phone is enrolled now, but not when the server was
/// just found unreachable, nor when the sync's window has closed.
pub(crate) fn handovers_follow(result: &Result<SyncSummary, SyncError>) -> bool {
    !matches!(
        result,
        Err(SyncError::Network { .. } | SyncError::WindowClosed { .. })
    )
}

impl Client {
    /// Pushes the outbox until it is empty, retrying network failures with back-off up to
    /// `max_attempts` times, then pulls what changed and uploads photos. Ops recorded while the
    /// sync runs are sent too. Then, unless the server was unreachable, what volunteers who
    /// signed out of this phone handed over goes, each under their own identity (see
    /// [`crate::Unsent::HandOver`]); how that goes never changes this result.
    ///
    /// # Errors
    ///
    /// [`SyncError`] when the device is not enrolled, was revoked, or the server could not be
    /// reached after the retries; [`SyncError::code`] says which, for the app to show.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future (a timeout, an app that goes away) loses nothing: an op leaves the
    /// outbox only in the transaction that records the server's answer for it, and the server
    /// applies each op once, so the next sync sends what was not answered.
    pub async fn sync(&self) -> Result<SyncSummary, SyncError> {
        let result = self.sync_own(true).await;
        self.report_failure(&result);
        if handovers_follow(&result) {
            self.send_handovers(true).await;
        }
        result
    }

    /// A sync bounded by the window the platform gives a background task (Android
    /// WorkManager, iOS BGTaskScheduler): records first, then the pull, then — if
    /// `include_photos` — photos, stopping when `within` has passed.
    ///
    /// # Errors
    ///
    /// As [`Client::sync`]; [`SyncError::WindowClosed`] when the window closed first (what was
    /// acknowledged by then stays acknowledged).
    pub async fn sync_for(
        &self,
        within: Duration,
        include_photos: bool,
    ) -> Result<SyncSummary, SyncError> {
        let deadline = tokio::time::Instant::now() + within;
        let result = match tokio::time::timeout_at(deadline, self.sync_own(include_photos)).await {
            Ok(result) => result,
            Err(_) => {
                let closed = SyncError::WindowClosed {
                    secs: crate::transport::whole_secs(within),
                };
                self.record_outcome(Some(&closed), now_ms()).await;
                Err(closed)
            }
        };
        self.report_failure(&result);
        // Hand-overs in what is left of the window; they never change how this sync ended.
        if handovers_follow(&result) {
            let _ = tokio::time::timeout_at(deadline, self.send_handovers(include_photos)).await;
        }
        result
    }

    /// Stores how the attempt at `now` ended, for [`Client::status`]: the error's text and
    /// code, or success.
    pub(crate) async fn record_outcome(&self, error: Option<&SyncError>, now: i64) {
        let error_text = error.map(|e| e.to_string());
        let [code, p1, p2] = ErrorCode::to_columns(error.map(SyncError::code).as_ref());
        // Revoked stays known until the device enrolls again, whatever later attempts say.
        let revoked = matches!(
            error,
            Some(SyncError::Revoked | SyncError::NotRecognised(_))
        );
        let _ = sqlx::query(
            "UPDATE sync_state SET last_attempt_at_ms = ?, last_error = ?, \
             last_error_code = ?, last_error_p1 = ?, last_error_p2 = ?, \
             revoked = CASE WHEN ? THEN 1 ELSE revoked END, \
             last_success_at_ms = CASE WHEN ? IS NULL THEN ? ELSE last_success_at_ms END WHERE id = 1",
        )
        .bind(now)
        .bind(&error_text)
        .bind(code)
        .bind(p1)
        .bind(p2)
        .bind(revoked)
        .bind(&error_text)
        .bind(now)
        .execute(&self.inner.db)
        .await;
        // Revoked by the server's word (not a device it merely did not recognise, which a
        // restored backup or a misconfigured node can say): the phone may be a lost one, so
        // what it held of its cells (the registers' people and phones, the hazards) goes, and
        // only what it had not sent stays, for a new enrollment. A page of a pull still under
        // way is refused once `revoked` is set (see `apply_page`).
        if matches!(error, Some(SyncError::Revoked)) {
            let dropped = async {
                let own: Option<String> =
                    sqlx::query_scalar("SELECT device_id FROM identity WHERE id = 1")
                        .fetch_optional(&self.inner.db)
                        .await?;
                let mut tx = self.inner.db.begin().await?;
                let n = crate::scope::drop_held(&mut tx, own.as_deref()).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(n)
            }
            .await;
            match dropped {
                Ok(n) if n > 0 => {
                    tracing::warn!(
                        dropped = n,
                        "revoked: dropped what the device held of its cells"
                    );
                    self.data_changed([DataKind::Grid, DataKind::Hazards]);
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "revoked: could not drop what the device held")
                }
            }
        }
    }

    /// Tells subscribers that a sync the app asked for failed (the engine reports its own,
    /// with when it retries).
    fn report_failure(&self, result: &Result<SyncSummary, SyncError>) {
        if let Err(e) = result {
            let _ = self.inner.events.send(SyncEvent::Failed {
                error: e.to_string(),
                code: e.code(),
                retry_in: None,
            });
        }
    }

    /// This device's own sync, as every path runs it, under the sync lock: tells subscribers
    /// it started and, when it succeeds, what it changed (hazards, conflicts, scope) and that
    /// it finished.
    pub(crate) async fn sync_own(&self, include_photos: bool) -> Result<SyncSummary, SyncError> {
        let _one_at_a_time = self.inner.sync_lock.lock().await;
        // Back to idle however the sync ends, cancellation included.
        let _idle = IdleOnDrop(self);
        let events = &self.inner.events;
        let _ = events.send(SyncEvent::Started);
        let summary = self.sync_locked(include_photos).await?;
        for id in &summary.hazards_changed {
            let _ = events.send(SyncEvent::HazardChanged { id: id.clone() });
        }
        for c in &summary.new_conflicts {
            let _ = events.send(SyncEvent::Conflict(c.clone()));
        }
        for n in &summary.scope_changes {
            let _ = events.send(SyncEvent::ScopeChanged(n.clone()));
        }
        let _ = events.send(SyncEvent::Finished(summary.clone()));
        Ok(summary)
    }

    async fn sync_locked(&self, include_photos: bool) -> Result<SyncSummary, SyncError> {
        let started = std::time::Instant::now();
        let identity = self.identity().await?;
        let mut summary = SyncSummary::default();
        let mut attempt = 0;
        let result = loop {
            attempt += 1;
            match self
                .sync_once(&identity, &mut summary, include_photos)
                .await
            {
                Ok(()) => break Ok(()),
                Err(e) if e.is_retryable() && attempt < self.inner.config.max_attempts => {
                    let delay =
                        self.inner.config.initial_backoff * 2u32.saturating_pow(attempt - 1);
                    tracing::debug!(attempt, error = %e, ?delay, "sync attempt failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => break Err(e),
            }
        };
        let now = now_ms();
        self.record_outcome(result.as_ref().err(), now).await;
        result?;
        self.update_state(|s| {
            s.has_synced = true;
            s.last_synced_at_ms = Some(now);
        });
        summary.remaining = self.status().await?.pending_ops;
        summary.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(summary)
    }

    pub(crate) async fn sync_once(
        &self,
        identity: &Identity,
        summary: &mut SyncSummary,
        include_photos: bool,
    ) -> Result<(), SyncError> {
        let cfg = &self.inner.config;
        let server = identity.server.as_str();
        self.update_state(|s| s.connectivity = Connectivity::Connecting);
        let conn = match self
            .inner
            .endpoints
            .connect(server, identity.config.clone(), cfg.connect_timeout)
            .await
        {
            Ok(conn) => conn,
            Err(e) => {
                let e = SyncError::from_call(server, e);
                self.update_state(|s| {
                    s.connectivity = Connectivity::Offline;
                    s.last_push_error = Some(e.code());
                });
                return Err(e);
            }
        };
        // Records first (push), then what others changed (pull), then photos.
        let result = async {
            self.update_state(|s| {
                s.connectivity = Connectivity::Connected;
                s.phase = SyncPhase::Push;
            });
            let pushed = self.push_outbox(&conn, server, summary).await;
            self.update_state(|s| {
                s.connectivity = reachability(&pushed);
                s.last_push_error = pushed.as_ref().err().map(SyncError::code);
            });
            let (cap, head) = pushed?;
            // A hand-over only sends: what others changed is no business of a signed-out
            // volunteer's store.
            if !self.inner.send_only {
                self.update_state(|s| s.phase = SyncPhase::Pull);
                let pulled = self.pull_scope(&conn, server, head, summary).await;
                self.update_state(|s| {
                    s.connectivity = reachability(&pulled);
                    s.last_pull_error = pulled.as_ref().err().map(SyncError::code);
                    s.bootstrap = None;
                });
                pulled?;
            }
            if include_photos {
                self.update_state(|s| s.phase = SyncPhase::Photos);
                self.upload_photos(&conn, server, cap, summary).await?;
            }
            Ok(())
        }
        .await;
        conn.close(quinn::VarInt::from_u32(codes::CLOSE_DONE), b"sync done");
        result
    }

    /// Pushes the outbox; returns the server's photo size cap and its change-log head (from
    /// Hello).
    pub(crate) async fn push_outbox(
        &self,
        conn: &quinn::Connection,
        server: &str,
        summary: &mut SyncSummary,
    ) -> Result<(u64, u64), SyncError> {
        let cfg = &self.inner.config;
        let status = self.status().await?;
        let (on_duty, position) = self.hello_duty().await?;
        let hello = wire::Request {
            kind: Some(wire::request::Kind::Hello(wire::Hello {
                on_duty,
                position,
                outbox_depth: status.pending_ops,
                oldest_pending_age_ms: status.oldest_pending_age_ms.unwrap_or(0),
                pending_photo_bytes: status.pending_photo_bytes,
                app_version: cfg.app_version.clone(),
                sdk_version: env!("CARGO_PKG_VERSION").into(),
                device_time_ms: now_ms(),
                language: cfg.language.clone(),
            })),
        };
        let limit = patrolsync_proto::frame::DEFAULT_MAX_FRAME_BYTES;
        let hello = match transport::call(conn, &hello, limit, cfg.request_timeout)
            .await
            .map_err(|e| SyncError::from_call(server, e))?
            .kind
        {
            Some(wire::response::Kind::Hello(h)) => h,
            other => return Err(unexpected(other)),
        };
        summary.acked_through = hello.acked_through;
        let cap = hello.limits.map(|l| l.max_blob_bytes).unwrap_or(u64::MAX);
        let server_max = hello
            .limits
            .map(|l| l.max_ops_per_push as usize)
            .unwrap_or(cfg.batch_size);
        let batch = cfg.batch_size.min(server_max).max(1);

        // Frames stay well under the server's limit whatever the ops weigh.
        let max_bytes = hello
            .limits
            .map(|l| l.max_frame_bytes as usize)
            .unwrap_or(limit as usize)
            * 3
            / 4;
        let mut in_flight: JoinSet<Result<Pushed, CallError>> = JoinSet::new();
        let mut throttled = 0u32;
        // Queued hazard ops go before queued check-ins whenever there are any (those recorded
        // while this sync runs too), each kind in device_seq order: a hazard recorded behind a
        // day of queued check-ins reaches the server in the next push. Exactly-once holds
        // whatever the order (the server keys every op by device_seq and counts acked_through
        // once the gaps fill); a check-in never refers to a hazard.
        let start_max: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(device_seq), 0) FROM outbox")
            .fetch_one(&self.inner.db)
            .await
            .map_err(local)?;
        // Sent up to here, per kind. Once no hazard op is left after `hazards_after`, every one
        // queued before the sync began has been sent: later hazard queries look only at ops
        // recorded since.
        let (mut hazards_after, mut check_ins_after) = (0i64, 0i64);
        // A batch carrying hazard ops goes alone: a later batch may act on a hazard it reports,
        // and the server must have committed the report first.
        let mut barrier = false;
        loop {
            while !barrier && in_flight.len() < cfg.max_in_flight.max(1) {
                let mut hazards = true;
                let mut rows = self.queued(hazards_after, true, batch).await?;
                if rows.is_empty() {
                    hazards_after = hazards_after.max(start_max);
                    hazards = false;
                    rows = self.queued(check_ins_after, false, batch).await?;
                }
                let (mut seqs, mut payloads, mut bytes) = (Vec::new(), Vec::new(), 0usize);
                for r in &rows {
                    let payload: Vec<u8> = r.get(1);
                    if !seqs.is_empty() && bytes + payload.len() > max_bytes {
                        break;
                    }
                    bytes += payload.len() + 8;
                    seqs.push(r.get::<i64, _>(0));
                    payloads.push(payload);
                }
                let Some(&last) = seqs.last() else { break };
                if hazards && !in_flight.is_empty() {
                    // Wait for what is in flight, then send this batch alone.
                    break;
                }
                barrier = hazards;
                if hazards {
                    hazards_after = last;
                } else {
                    check_ins_after = last;
                }
                let request = transport::push_request(&payloads)
                    .map_err(|e| local(format!("corrupt outbox entry: {e}")))?;
                summary.pushed += seqs.len() as u64;
                let conn = conn.clone();
                let timeout = cfg.request_timeout;
                in_flight.spawn(async move {
                    let response = transport::call(&conn, &request, limit, timeout).await?;
                    Ok((seqs, hazards, response))
                });
            }
            let Some(joined) = in_flight.join_next().await else {
                break;
            };
            let (seqs, hazards, response) = joined
                .map_err(local)?
                .map_err(|e| SyncError::from_call(server, e))?;
            barrier = false;
            match response.kind {
                Some(wire::response::Kind::Push(p)) => {
                    self.apply_results(&seqs, p, summary).await?
                }
                Some(wire::response::Kind::Error(e))
                    if e.code == wire::ErrorCode::LimitExceeded as i32 && e.retryable =>
                {
                    // The server's per-device push rate: let what is in flight land, pause,
                    // then go on from the earliest refused batch of each kind (their ops are
                    // still in the outbox).
                    let mut refused = vec![(hazards, seqs)];
                    while let Some(joined) = in_flight.join_next().await {
                        let (seqs, hazards, response) = joined
                            .map_err(local)?
                            .map_err(|e| SyncError::from_call(server, e))?;
                        match response.kind {
                            Some(wire::response::Kind::Push(p)) => {
                                self.apply_results(&seqs, p, summary).await?
                            }
                            _ => refused.push((hazards, seqs)),
                        }
                    }
                    for (hazards, seqs) in refused {
                        let back = seqs.first().copied().unwrap_or(1) - 1;
                        let after = if hazards {
                            &mut hazards_after
                        } else {
                            &mut check_ins_after
                        };
                        *after = (*after).min(back);
                    }
                    throttled += 1;
                    if throttled > 600 {
                        return Err(SyncError::Server {
                            code: code_name(e.code),
                            message: e.message,
                            retryable: true,
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Some(wire::response::Kind::Error(e)) => {
                    return Err(SyncError::Server {
                        code: code_name(e.code),
                        message: e.message,
                        retryable: e.retryable,
                    });
                }
                other => return Err(unexpected(other)),
            }
        }
        Ok((cap, hello.cursor))
    }

    /// Up to `limit` queued ops after `after`: hazard ops, or check-ins.
    pub(crate) async fn queued(
        &self,
        after: i64,
        hazards: bool,
        limit: usize,
    ) -> Result<Vec<sqlx::sqlite::SqliteRow>, SyncError> {
        sqlx::query(
            "SELECT device_seq, payload FROM outbox WHERE device_seq > ? AND (kind = ?) = ? \
             ORDER BY device_seq LIMIT ?",
        )
        .bind(after)
        .bind(OpBody::CHECK_IN)
        .bind(!hazards)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.inner.db)
        .await
        .map_err(local)
    }

    pub(crate) async fn apply_results(
        &self,
        seqs: &[i64],
        p: wire::PushResponse,
        summary: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        let sent: std::collections::HashSet<i64> = seqs.iter().copied().collect();
        let mut tx = self.inner.db.begin().await.map_err(local)?;
        let now = now_ms();
        for r in p.results {
            let seq = r.device_seq as i64;
            if !sent.contains(&seq) {
                continue;
            }
            match wire::OpOutcome::try_from(r.outcome) {
                Ok(
                    wire::OpOutcome::Applied
                    | wire::OpOutcome::Duplicate
                    | wire::OpOutcome::Conflict,
                ) => {
                    mark_check_in(&mut tx, seq, "synced").await?;
                    if r.outcome == wire::OpOutcome::Duplicate as i32 {
                        summary.duplicates += 1;
                    } else {
                        summary.applied += 1;
                    }
                }
                Ok(wire::OpOutcome::Rejected) => {
                    summary.rejected += 1;
                    mark_check_in(&mut tx, seq, "rejected").await?;
                    // A refused hazard op leaves the local view too, so it matches the server's.
                    let hlc = outbox_hlc(&mut tx, seq).await?;
                    sqlx::query(
                        "DELETE FROM hazard_ops WHERE device_id = (SELECT device_id FROM identity WHERE id = 1) \
                         AND hlc_wall_ms = ? AND hlc_logical = ?",
                    )
                    .bind(hlc.wall_ms as i64)
                    .bind(i64::from(hlc.logical))
                    .execute(&mut *tx)
                    .await
                    .map_err(local)?;
                    sqlx::query(
                        "INSERT OR REPLACE INTO rejected (device_seq, op_id, kind, record_id, payload, created_at_ms, code, reason, field, message, rejected_at) \
                         SELECT device_seq, op_id, kind, record_id, payload, created_at_ms, ?, ?, ?, ?, ? FROM outbox WHERE device_seq = ?",
                    )
                    .bind(code_name(r.code))
                    .bind(&r.reason)
                    .bind(&r.field)
                    .bind(&r.message)
                    .bind(now)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await
                    .map_err(local)?;
                }
                // An outcome this SDK does not know: keep the op and send it again later.
                _ => continue,
            }
            sqlx::query("DELETE FROM outbox WHERE device_seq = ?")
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(local)?;
        }
        tx.commit().await.map_err(local)?;
        // Acknowledged records change their sync state (and a refused hazard op its view).
        self.data_changed([DataKind::CheckIns, DataKind::Hazards]);
        summary.acked_through = summary.acked_through.max(p.acked_through);
        Ok(())
    }

    /// Records that the server revoked this device (or no longer recognises it), so `status()`
    /// says so and it may enroll again.
    pub(crate) async fn note_revoked(&self, error: &SyncError) {
        self.record_outcome(Some(error), now_ms()).await;
    }
}
