//! One connection: its certificate checked, its device registered, its streams served; and
//! `Notify` to the devices a commit concerns.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patrolsync_proto::codes;
use patrolsync_proto::frame;
use patrolsync_proto::{DeviceId, wire};
use quinn::{Connection, VarInt};
use rustls_pki_types::CertificateDer;
use tracing::Instrument;

use super::*;
use crate::store::DeviceSession;

/// UDP bytes of a connection already reported to the store.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    rx: std::sync::atomic::AtomicU64,
    tx: std::sync::atomic::AtomicU64,
}

impl Traffic {
    /// Bytes in and out since the last call.
    pub(super) fn delta(&self, conn: &Connection) -> (u64, u64) {
        let stats = conn.stats();
        let rx = stats.udp_rx.bytes;
        let tx = stats.udp_tx.bytes;
        let before_rx = self.rx.swap(rx, Ordering::SeqCst);
        let before_tx = self.tx.swap(tx, Ordering::SeqCst);
        (rx.saturating_sub(before_rx), tx.saturating_sub(before_tx))
    }
}

/// A live connection, its device session, and when it began.
pub(crate) type LiveConnection = (Connection, Arc<SessionSlot>, std::time::Instant);

/// A connection's device session; refreshed at each Hello.
pub(crate) type SessionSlot = Mutex<Option<Arc<DeviceSession>>>;

pub(super) fn leaf_sha256(conn: &Connection) -> Option<[u8; 32]> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain
        .first()
        .map(|leaf| patrolsync_proto::digest::sha256(leaf))
}

pub(super) async fn serve_connection(
    shared: Arc<Shared>,
    conn: Connection,
    accepted_at: std::time::Instant,
) {
    let remote = conn.remote_address();
    // Checked against the device row on every connection: resumption skips certificate
    // verification, and revocation must hold anyway.
    let session = match leaf_sha256(&conn) {
        None => None,
        Some(fp) => match shared.store.device_by_cert(&fp).await {
            Ok(Some(s)) if s.revoked_at_ms.is_some() => {
                tracing::info!(device = %s.id, %remote, "refused revoked device");
                conn.close(
                    VarInt::from_u32(codes::CLOSE_REVOKED),
                    b"device revoked; re-enroll",
                );
                return;
            }
            Ok(Some(s)) => Some(s),
            Ok(None) => {
                conn.close(
                    VarInt::from_u32(codes::CLOSE_UNAUTHENTICATED),
                    b"unknown device certificate; enroll again",
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "store unavailable during authentication");
                conn.close(
                    VarInt::from_u32(codes::CLOSE_GOING_AWAY),
                    b"server unavailable; retry later",
                );
                return;
            }
        },
    };
    let device = session.as_ref().map(|s| s.id);
    // A connection without a certificate may only enroll: it gets a place of the few an
    // address (and the node) may hold, and two streams; a device gets its full stream credit.
    let _slot = match device {
        Some(_) => {
            conn.set_max_concurrent_bi_streams(VarInt::from_u32(
                shared.config.limits.max_concurrent_streams,
            ));
            None
        }
        None => match shared.budgets.admit_unenrolled(remote.ip()) {
            Ok(slot) => Some(slot),
            Err(crowded) => {
                let why = match crowded {
                    crate::budget::Crowded::Address(n) => format!(
                        "{n} connections without a device certificate from your address already; \
                         enroll on one of them, then connect with the certificate"
                    ),
                    crate::budget::Crowded::Node(n) => format!(
                        "{n} connections without a device certificate on this server already; retry later"
                    ),
                };
                tracing::info!(%remote, "refused an unenrolled connection: {why}");
                conn.close(
                    VarInt::from_u32(codes::CLOSE_TOO_MANY_CONNECTIONS),
                    why.as_bytes(),
                );
                return;
            }
        },
    };
    let span = match device {
        Some(d) => tracing::info_span!("conn", device = %d, %remote),
        None => tracing::info_span!("conn", device = "unenrolled", %remote),
    };
    serve_session(shared, conn, accepted_at, session)
        .instrument(span)
        .await;
}

pub(super) async fn serve_session(
    shared: Arc<Shared>,
    conn: Connection,
    accepted_at: std::time::Instant,
    session: Option<DeviceSession>,
) {
    tracing::debug!("connection");
    shared.metrics.connections.inc();
    shared.metrics.connections_open.inc();
    let remote = conn.remote_address();
    let id = conn.stable_id();
    let device = session.as_ref().map(|s| s.id);
    let session: Arc<SessionSlot> = Arc::new(Mutex::new(session.map(Arc::new)));
    {
        // Register and enforce the per-device limit under one lock, so connections arriving
        // together cannot all slip under it. Over the limit the oldest go: a phone that just
        // switched networks wants its new connection, and its old ones may not have timed out.
        let mut live = shared.connections.lock().unwrap_or_else(|e| e.into_inner());
        live.insert(id, (conn.clone(), session.clone(), accepted_at));
        if let Some(device) = device {
            let mut mine: Vec<(std::time::Instant, &Connection)> = live
                .values()
                .filter(|(_, slot, _)| {
                    slot.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .as_ref()
                        .is_some_and(|x| x.id == device)
                })
                .map(|(c, _, at)| (*at, c))
                .collect();
            let limit = shared.config.limits.max_connections_per_device as usize;
            if mine.len() > limit {
                mine.sort_by_key(|(at, _)| *at);
                for (_, old) in &mine[..mine.len() - limit] {
                    tracing::info!(%device, "closing the device's oldest connection (per-device limit)");
                    old.close(
                        VarInt::from_u32(codes::CLOSE_TOO_MANY_CONNECTIONS),
                        b"too many connections for this device; a newer one replaced this",
                    );
                }
            }
        }
    }
    let traffic = Arc::new(Traffic::default());
    let lang = Arc::new(std::sync::Mutex::new(patrolsync_i18n::Lang::default()));
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let shared = shared.clone();
                let session = session.clone();
                let link = Link {
                    conn: conn.clone(),
                    traffic: traffic.clone(),
                    lang: lang.clone(),
                };
                shared.in_flight.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(
                    async move {
                        serve_stream(&shared, &session, &link, send, recv).await;
                        if shared.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                            shared.idle.notify_waiters();
                        }
                    }
                    .in_current_span(),
                );
            }
            Err(e) => {
                tracing::debug!(%remote, reason = %e, "connection ended");
                break;
            }
        }
    }
    shared
        .connections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    shared.metrics.connections_open.dec();
    // What Hello did not report yet: the rest of this connection's traffic.
    let device = session
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|s| s.id);
    if let Some(device) = device {
        let (bytes_in, bytes_out) = traffic.delta(&conn);
        if bytes_in + bytes_out > 0 {
            let activity = crate::store::Activity::Traffic {
                bytes_in,
                bytes_out,
            };
            if let Err(e) = shared
                .store
                .record_activity(device, &activity, crate::clock::now_ms())
                .await
            {
                tracing::debug!(error = %e, "could not record the connection's traffic");
            }
        }
    }
}

/// Errors that are the protocol working, not a device in trouble: pacing (the push token
/// bucket says "slow down"), an upload told where to resume, a download of a photo its sender
/// has not uploaded yet.
pub(super) fn routine(kind: &str, e: &wire::Error) -> bool {
    use wire::ErrorCode as E;
    let code = E::try_from(e.code).unwrap_or(E::Unspecified);
    (code == E::LimitExceeded && e.retryable)
        || code == E::BlobOffsetMismatch
        || (code == E::NotFound && kind == "blob_download")
}

/// What a device's sync health should record of an answer: a failure it was told of, or a
/// pull. Written at most every few seconds per device and kind, so neither a device paging
/// through a backlog nor one repeating a bad request writes per request.
pub(super) fn outcome_activity(
    shared: &Shared,
    device: DeviceId,
    kind: &'static str,
    r: &wire::Response,
) -> Option<crate::store::Activity> {
    let (activity, every) = match &r.kind {
        Some(wire::response::Kind::Error(e)) if !routine(kind, e) => (
            crate::store::Activity::Failed(format!("{kind}: {}", e.message)),
            Duration::from_secs(1),
        ),
        Some(wire::response::Kind::Pull(_)) => {
            (crate::store::Activity::Pulled, Duration::from_secs(5))
        }
        _ => return None,
    };
    let failed = matches!(activity, crate::store::Activity::Failed(_));
    let now = std::time::Instant::now();
    let mut recorded = shared
        .activity_recorded
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if recorded
        .get(&(device, failed))
        .is_some_and(|at| now.duration_since(*at) < every)
    {
        return None;
    }
    recorded.insert((device, failed), now);
    if failed {
        // The next successful pull is written at once, so it clears this failure at once.
        recorded.remove(&(device, false));
    }
    Some(activity)
}

/// Wakes connected devices (other than `origin`) whose cells cover a changed path (all of them
/// when `paths` is `None`) or whose scope feed is in `audiences`: a `Notify{cursor}` on a fresh
/// unidirectional stream. Best effort; pull is the source of truth.
pub(crate) fn notify_in_scope(
    shared: &Shared,
    origin: Option<DeviceId>,
    paths: Option<&[String]>,
    audiences: &[String],
    cursor: u64,
) {
    let targets: Vec<Connection> = shared
        .connections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|(_, s, _)| {
            let s = s.lock().unwrap_or_else(|e| e.into_inner());
            s.as_ref().is_some_and(|s| {
                Some(s.id) != origin
                    && (paths.is_none_or(|paths| paths.iter().any(|p| s.covers(p)))
                        || audiences.contains(&s.audience()))
            })
        })
        .map(|(c, _, _)| c.clone())
        .collect();
    for conn in targets {
        tokio::spawn(async move {
            let event = wire::ServerEvent {
                kind: Some(wire::server_event::Kind::Notify(wire::Notify { cursor })),
            };
            // A device that grants no stream credit must not pile up tasks here.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                if let Ok(mut send) = conn.open_uni().await {
                    let _ = send.write_all(&frame::encode(&event)).await;
                    let _ = send.finish();
                }
            })
            .await;
        });
    }
}
