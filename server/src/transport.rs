//! The QUIC edge: endpoint set-up, the accept loop, device authentication per connection, and
//! one request per bidirectional stream. Wire types are converted to domain types here and go
//! no further. Nothing a peer sends is unwrapped: a bad frame becomes an error response (or a
//! stream stop), never a panic, and the connection survives when it can.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patrolsync_proto::codes;
use patrolsync_proto::frame::{self, FrameError};
use patrolsync_proto::op::{BatchError, check_batch};
use patrolsync_proto::{DeviceId, Message, wire};
use quinn::{Connection, Endpoint, IdleTimeout, RecvStream, SendStream, TransportConfig, VarInt};
use rustls_pki_types::CertificateDer;
use tokio::sync::Notify;
use tracing::Instrument;

use crate::config::Config;
use crate::ingest::{self, Ingestor};
use crate::pki::{self, Pki};
use crate::store::{
    DeviceReport, DeviceSession, NewDevice, Outcome, RedeemError, RejectCode, Store,
};

/// State shared by every connection.
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub blobs: crate::blobs::Blobs,
    pub ingest: Ingestor,
    pub pki: Pki,
    pub config: Config,
    #[cfg(feature = "test-util")]
    pub faults: Arc<crate::faults::Faults>,
    pub draining: AtomicBool,
    /// Live connections and their device sessions (for Notify and revocation).
    pub connections: Mutex<HashMap<usize, LiveConnection>>,
    pub in_flight: AtomicUsize,
    /// Handshakes in progress (for Retry under load).
    pub handshaking: AtomicUsize,
    /// Request rates, daily byte budgets and unenrolled connections.
    pub budgets: Arc<crate::budget::Budgets>,
    pub idle: Notify,
    /// The link to the other nodes on the same PostgreSQL, if any.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// When each device's last pull (false) or failure (true) was written to the store.
    pub activity_recorded: Mutex<HashMap<(DeviceId, bool), std::time::Instant>>,
}

/// UDP bytes of a connection already reported to the store.
#[derive(Debug, Default)]
struct Traffic {
    rx: std::sync::atomic::AtomicU64,
    tx: std::sync::atomic::AtomicU64,
}

impl Traffic {
    /// Bytes in and out since the last call.
    fn delta(&self, conn: &Connection) -> (u64, u64) {
        let stats = conn.stats();
        let rx = stats.udp_rx.bytes;
        let tx = stats.udp_tx.bytes;
        let before_rx = self.rx.swap(rx, Ordering::SeqCst);
        let before_tx = self.tx.swap(tx, Ordering::SeqCst);
        (rx.saturating_sub(before_rx), tx.saturating_sub(before_tx))
    }
}

/// The name of an RPC for metrics and logs.
fn rpc_kind(kind: &Option<wire::request::Kind>) -> &'static str {
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
fn result_label(response: &wire::Response) -> &'static str {
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

/// A live connection, its device session, and when it began.
pub(crate) type LiveConnection = (Connection, Arc<SessionSlot>, std::time::Instant);

/// A connection's device session; refreshed at each Hello.
pub(crate) type SessionSlot = Mutex<Option<Arc<DeviceSession>>>;

/// Concurrent streams of a connection without a device certificate.
const UNENROLLED_STREAMS: u32 = 2;

/// Creates the QUIC endpoint with the transport settings from reference/quic.md §1.4.
pub(crate) fn bind_endpoint(config: &Config, pki: &Pki) -> Result<Endpoint, crate::ServeError> {
    let tls = pki.rustls_server_config()?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| crate::ServeError::Tls(e.to_string()))?;
    let mut transport = TransportConfig::default();
    transport
        .max_idle_timeout(Some(IdleTimeout::from(VarInt::from_u32(60_000))))
        .keep_alive_interval(None)
        // Every connection starts with the credit of an unenrolled one (it may only enroll);
        // a device's is raised to `max_concurrent_streams` once its certificate is checked.
        .max_concurrent_bidi_streams(VarInt::from_u32(UNENROLLED_STREAMS))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .stream_receive_window(VarInt::from_u32(1 << 20))
        .receive_window(VarInt::from_u32(4 << 20))
        .send_window(4 << 20)
        .datagram_receive_buffer_size(None);
    // The token key is the cluster's, so a Retry token from one node is good at another.
    let mut server = quinn::ServerConfig::new(Arc::new(crypto), Arc::new(pki.token_key()));
    server.transport_config(Arc::new(transport));
    server.migration(true);

    let addr = config.listen;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(|e| crate::ServeError::Bind { addr, source: e })?;
    if addr.is_ipv6() {
        // Dual-stack where the OS allows it; v6-only is fine too.
        let _ = socket.set_only_v6(false);
    }
    // quinn does not size kernel buffers; bursts of small pushes overflow the defaults.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket
        .bind(&addr.into())
        .map_err(|e| crate::ServeError::Bind { addr, source: e })?;
    // Reset and connection-id keys persist per node: after a restart the node recognises the
    // ids it issued and resets those connections at once, instead of devices idling out.
    let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(pki.reset_key()));
    let cid_key = pki.cid_key();
    endpoint_config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    Endpoint::new(
        endpoint_config,
        Some(server),
        socket.into(),
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| crate::ServeError::Bind { addr, source: e })
}

/// Accepts connections until the endpoint closes.
pub(crate) async fn accept_loop(endpoint: Endpoint, shared: Arc<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        if shared.draining.load(Ordering::SeqCst) {
            incoming.refuse();
            continue;
        }
        // Under a reconnect storm, make unvalidated clients prove their address first: a Retry
        // costs them one round trip and the server no handshake CPU.
        let busy = shared.handshaking.load(Ordering::SeqCst)
            >= shared.config.limits.retry_above_handshakes as usize;
        if busy && !incoming.remote_address_validated() && incoming.may_retry() {
            let _ = incoming.retry();
            continue;
        }
        let shared = shared.clone();
        shared.handshaking.fetch_add(1, Ordering::SeqCst);
        // Connection age counts from the first packet, the order devices connected in.
        let accepted_at = std::time::Instant::now();
        tokio::spawn(async move {
            let result = incoming.await;
            shared.handshaking.fetch_sub(1, Ordering::SeqCst);
            match result {
                Ok(conn) => serve_connection(shared, conn, accepted_at).await,
                Err(e) => tracing::debug!(error = %e, "handshake failed"),
            }
        });
    }
}

fn leaf_sha256(conn: &Connection) -> Option<[u8; 32]> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    chain.first().map(|leaf| pki::sha256(leaf))
}

async fn serve_connection(shared: Arc<Shared>, conn: Connection, accepted_at: std::time::Instant) {
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

async fn serve_session(
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
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                let shared = shared.clone();
                let session = session.clone();
                let link = Link {
                    conn: conn.clone(),
                    traffic: traffic.clone(),
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
                .record_activity(device, &activity, crate::now_ms())
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
fn routine(kind: &str, e: &wire::Error) -> bool {
    use wire::ErrorCode as E;
    let code = E::try_from(e.code).unwrap_or(E::Unspecified);
    (code == E::LimitExceeded && e.retryable)
        || code == E::BlobOffsetMismatch
        || (code == E::NotFound && kind == "blob_download")
}

/// What a device's sync health should record of an answer: a failure it was told of, or a
/// pull. Written at most every few seconds per device and kind, so neither a device paging
/// through a backlog nor one repeating a bad request writes per request.
fn outcome_activity(
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

/// The connection a stream belongs to, for RTT and traffic figures.
struct Link {
    conn: Connection,
    traffic: Arc<Traffic>,
}

fn error(code: wire::ErrorCode, message: impl Into<String>, retryable: bool) -> wire::Response {
    wire::Response {
        kind: Some(wire::response::Kind::Error(wire::Error {
            code: code as i32,
            message: message.into(),
            retryable,
            held_offset: 0,
        })),
    }
}

/// Reads one frame with the protocol's decoder, never past its end (an upload's raw bytes
/// follow it on the same stream). Memory grows with the bytes that arrive, not with the length
/// a header announces: quinn hands over the chunks it already holds.
/// Why a request frame was not read.
enum ReadFailure {
    /// Nothing arrived for the idle timeout (or a stranger's frame took longer than it).
    Stalled,
    /// The frame itself was refused.
    Frame(FrameError),
}

/// Reads one request frame. The timeout is one of inactivity: a device on a slow link may take
/// as long as it needs while bytes keep coming, a peer that stops sending is cut off. The memory
/// held grows only with the bytes that actually arrived (the decoder never trusts the header).
async fn read_frame<M: Message + Default>(
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

enum Answer {
    Respond(wire::Response),
    /// A download: the response frame, then the file's bytes from the offset.
    Download(wire::Response, crate::blobs::BlobReader),
    /// Reset the stream without answering (fault injection).
    Drop,
}

async fn serve_stream(
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
                .write_all(&frame::encode(&error(
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
                .write_all(&frame::encode(&error(
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
            .write_all(&frame::encode(&error(
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
    // Every request but pushes and uploads (each with a budget of its own) spends the device's
    // request budget.
    let over_budget = match (&current, &request.kind) {
        (
            Some(d),
            Some(
                wire::request::Kind::Hello(_)
                | wire::request::Kind::Pull(_)
                | wire::request::Kind::BlobStatus(_)
                | wire::request::Kind::BlobDownload(_),
            ),
        ) => shared.budgets.request(d.id).err(),
        _ => None,
    };
    let started = std::time::Instant::now();
    let answer = async {
        match request.kind {
            None => Answer::Respond(error(
                wire::ErrorCode::BadRequest,
                "request has no RPC set",
                false,
            )),
            Some(wire::request::Kind::Enroll(req)) => {
                match shared.budgets.enroll(link.conn.remote_address().ip()) {
                    Ok(()) => Answer::Respond(enroll(shared, req).await),
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
                None => Answer::Respond(error(
                    wire::ErrorCode::Unauthenticated,
                    "this connection has no device certificate; enroll the device first",
                    false,
                )),
                Some(_) if over_budget.is_some() => Answer::Respond(refused(
                    over_budget.unwrap_or(crate::budget::Refused { retry_in: None }),
                    format!(
                        "more than {} requests a second from this device",
                        shared.config.limits.requests_per_second
                    ),
                )),
                Some(device) => match kind {
                    wire::request::Kind::Hello(h) => {
                        Answer::Respond(hello(shared, session, link, &device, h).await)
                    }
                    wire::request::Kind::Push(p) => push(shared, &device, p).await,
                    wire::request::Kind::Pull(p) => Answer::Respond(pull(shared, &device, p).await),
                    wire::request::Kind::BlobStatus(b) => {
                        Answer::Respond(blob_status(shared, &device, b).await)
                    }
                    wire::request::Kind::BlobUpload(b) => {
                        blob_upload(shared, &device, b, &mut recv).await
                    }
                    wire::request::Kind::BlobDownload(b) => blob_download(shared, &device, b).await,
                    wire::request::Kind::Enroll(_) => {
                        Answer::Respond(error(wire::ErrorCode::BadRequest, "unreachable", false))
                    }
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
            .record_activity(device, &activity, crate::now_ms())
            .await
        {
            tracing::debug!(error = %e, "could not record device activity");
        }
        shared
            .metrics
            .store_call("record_activity", started.elapsed());
    }
}

async fn send_answer(answer: Answer, send: &mut SendStream) {
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

fn blob_error(
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
fn blob_target(shared: &Shared, sha: &[u8], size: Option<u64>) -> Result<[u8; 32], wire::Response> {
    let sha: [u8; 32] = sha.try_into().map_err(|_| {
        error(
            wire::ErrorCode::BadRequest,
            format!("sha256 must be 32 bytes, got {}", sha.len()),
            false,
        )
    })?;
    let cap = shared.config.limits.max_blob_bytes;
    match size {
        Some(0) => Err(error(
            wire::ErrorCode::BadRequest,
            format!(
                "photo {}: size 0; a photo has at least one byte",
                crate::blobs::hex(&sha)
            ),
            false,
        )),
        Some(n) if n > cap => Err(error(
            wire::ErrorCode::LimitExceeded,
            format!(
                "photo {} is {n} bytes; this server accepts photos up to {cap} bytes",
                crate::blobs::hex(&sha)
            ),
            false,
        )),
        _ => Ok(sha),
    }
}

/// Whether `device` may read the photo; the error is the answer to send.
// The error is the response to send, built once per refused request: boxing it buys nothing.
#[allow(clippy::result_large_err)]
async fn blob_readable(
    shared: &Shared,
    device: &DeviceSession,
    sha: &[u8; 32],
) -> Result<bool, wire::Response> {
    shared
        .store
        .blob_readable(sha, device.id, &device.pull_scope())
        .await
        .map_err(|e| error(wire::ErrorCode::Unavailable, format!("retry: {e}"), true))
}

/// Photos are accepted only for records the device has sent or can see: nobody fills the disk
/// with, or probes for, photos unrelated to their cells.
async fn blob_allowed(
    shared: &Shared,
    device: &DeviceSession,
    sha: &[u8; 32],
) -> Result<(), wire::Response> {
    let scope = device.pull_scope();
    match shared.store.blob_visible(sha, device.id, &scope).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(error(
            wire::ErrorCode::Forbidden,
            format!(
                "photo {} belongs to no record of yours or of your grid cells; push the record first",
                crate::blobs::hex(sha)
            ),
            false,
        )),
        Err(e) => Err(error(
            wire::ErrorCode::Unavailable,
            format!("retry: {e}"),
            true,
        )),
    }
}

async fn blob_status(
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
    let unavailable = |e: String| error(wire::ErrorCode::Unavailable, format!("{e}; retry"), true);
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
                return match shared.store.record_blob(&sha, size, crate::now_ms()).await {
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

async fn blob_upload(
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
    let hex = crate::blobs::hex(&sha);
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
        Err(e) => return respond(error(wire::ErrorCode::Unavailable, e.to_string(), true)),
    };
    let held = match shared.blobs.held(&sha, &owner).await {
        Ok(h) => h,
        Err(e) => {
            return respond(error(wire::ErrorCode::Unavailable, e.to_string(), true));
        }
    };
    if held.complete && readable {
        // Stored but not recorded (a crash between the two): record it now.
        let _ = recv.stop(VarInt::from_u32(codes::RESET_CANCELLED));
        let _ = shared
            .store
            .record_blob(&sha, held.bytes, crate::now_ms())
            .await;
        return done(held.bytes);
    }
    let held = match held.complete {
        true => match shared.blobs.staged(&sha, &owner).await {
            Ok(n) => n,
            Err(e) => return respond(error(wire::ErrorCode::Unavailable, e.to_string(), true)),
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
            return respond(error(wire::ErrorCode::Unavailable, e.to_string(), true));
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
                return respond(error(wire::ErrorCode::Unavailable, e.to_string(), true));
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
        return respond(error(wire::ErrorCode::Unavailable, e.to_string(), true));
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
        Ok(size) => match record_upload(shared, device, &sha, size).await {
            Ok(()) => {
                shared.metrics.photos_stored.inc();
                done(size)
            }
            Err(e) => respond(error(
                wire::ErrorCode::Unavailable,
                format!("retry: {e}"),
                true,
            )),
        },
        Err(e @ BlobError::HashMismatch(_)) => respond(error(
            wire::ErrorCode::BlobHashMismatch,
            e.to_string(),
            false,
        )),
        Err(e) => respond(error(wire::ErrorCode::Unavailable, e.to_string(), true)),
    }
}

/// A verified upload: the photo is stored (again: idempotent) and its device holds it.
async fn record_upload(
    shared: &Shared,
    device: &DeviceSession,
    sha: &[u8; 32],
    size: u64,
) -> Result<(), crate::store::StoreError> {
    let now = crate::now_ms();
    shared.store.record_blob(sha, size, now).await?;
    shared.store.record_possession(sha, device.id, now).await
}

async fn blob_download(
    shared: &Shared,
    device: &DeviceSession,
    req: wire::BlobDownloadRequest,
) -> Answer {
    let sha = match blob_target(shared, &req.sha256, None) {
        Ok(s) => s,
        Err(e) => return Answer::Respond(e),
    };
    let hex = crate::blobs::hex(&sha);
    // The same answer whether or not the photo is stored: no oracle.
    match blob_readable(shared, device, &sha).await {
        Ok(true) => {}
        Ok(false) => {
            return Answer::Respond(error(
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
            return Answer::Respond(error(
                wire::ErrorCode::NotFound,
                format!("photo {hex} has not been uploaded yet"),
                true,
            ));
        }
        Err(e) => {
            return Answer::Respond(error(
                wire::ErrorCode::Unavailable,
                format!("retry: {e}"),
                true,
            ));
        }
    };
    if req.offset > size {
        return Answer::Respond(error(
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
        Err(e) => Answer::Respond(error(wire::ErrorCode::Unavailable, e.to_string(), true)),
    }
}

async fn hello(
    shared: &Shared,
    session: &Mutex<Option<Arc<DeviceSession>>>,
    link: &Link,
    device: &DeviceSession,
    h: wire::Hello,
) -> wire::Response {
    let now = crate::now_ms();
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
    };
    let started = std::time::Instant::now();
    let recorded = shared.store.record_hello(device.id, &report, now).await;
    shared.metrics.store_call("record_hello", started.elapsed());
    let acked_through = match recorded {
        Ok(a) => a,
        Err(e) => {
            return error(
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
fn refused(r: crate::budget::Refused, what: String) -> wire::Response {
    match r.retry_in {
        Some(wait) => error(
            wire::ErrorCode::LimitExceeded,
            format!(
                "{what}; nothing was done, retry in {}",
                humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
            ),
            true,
        ),
        None => error(
            wire::ErrorCode::LimitExceeded,
            format!("{what}; this request alone is over the budget"),
            false,
        ),
    }
}

async fn push(shared: &Shared, device: &DeviceSession, p: wire::PushRequest) -> Answer {
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
        return Answer::Respond(error(
            code,
            format!("push refused, nothing stored: {e}"),
            false,
        ));
    }
    let now = crate::now_ms();
    let mut batch = match ingest::prepare(shared.store.as_ref(), device, p.ops, now).await {
        Ok(b) => b,
        Err(e) => {
            return Answer::Respond(error(
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
            r.message.push_str(
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
            return Answer::Respond(error(
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
    let results = result.results.into_iter().map(op_result).collect();
    Answer::Respond(wire::Response {
        kind: Some(wire::response::Kind::Push(wire::PushResponse {
            acked_through: result.acked_through,
            results,
        })),
    })
}

fn op_result(r: crate::store::OpResult) -> wire::OpResult {
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
    if let Some((code, reason, field, message)) = r.rejection {
        out.code = reject_code(code) as i32;
        (out.reason, out.field, out.message) = (reason, field, message);
    }
    if let Some(why) = r.conflict {
        out.reason = "conflict".into();
        out.message = why;
    }
    out
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

const MAX_PULL: u32 = 1000;

async fn pull(shared: &Shared, device: &DeviceSession, req: wire::PullRequest) -> wire::Response {
    use patrolsync_proto::scope::PULL_PROTOCOL;
    if req.protocol < PULL_PROTOCOL {
        return error(
            wire::ErrorCode::Unsupported,
            format!(
                "this server sends scope feeds (pull protocol {PULL_PROTOCOL}) and the app speaks \
                 pull protocol {}: update the app. What it records is still accepted and stored.",
                req.protocol
            ),
            false,
        );
    }
    let scope = device.pull_scope();
    // A cursor is a position in one feed. If the user's feed changed (a new role or agency),
    // or the device kept no feed (it last pulled before feeds), it starts over from nothing.
    if req.cursor > 0 && req.feed != scope.audience {
        tracing::info!(device = %device.id, from = %req.feed, to = %scope.audience, "scope feed changed; the device starts over");
        return wire::Response {
            kind: Some(wire::response::Kind::Pull(wire::PullResponse {
                changes: Vec::new(),
                next_cursor: 0,
                has_more: true,
                backfill_after: 0,
                feed: scope.audience,
                reset: true,
            })),
        };
    }
    let limit = if req.limit == 0 {
        500
    } else {
        req.limit.min(MAX_PULL)
    };
    let started = std::time::Instant::now();
    let page = shared
        .store
        .pull(&scope, req.cursor, req.backfill_after, limit, req.compact)
        .await;
    shared.metrics.store_call("pull", started.elapsed());
    let page = match page {
        Ok(p) => p,
        Err(e) => {
            return error(
                wire::ErrorCode::Unavailable,
                format!("pull failed, retry: {e}"),
                true,
            );
        }
    };
    let mut changes = Vec::with_capacity(page.changes.len());
    for c in page.changes {
        let entity = match decode_entity(&c.kind, &c.payload) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(seq = c.seq, kind = %c.kind, error = %e, "unreadable change-log entry");
                return error(
                    wire::ErrorCode::Unavailable,
                    format!("change {} is unreadable", c.seq),
                    false,
                );
            }
        };
        changes.push(wire::Change {
            seq: c.seq,
            hlc: Some(c.hlc.into()),
            device_id: c.device,
            role: c
                .role
                .parse::<patrolsync_proto::Role>()
                .map(|r| r.wire())
                .unwrap_or(0),
            entity: Some(entity),
        });
    }
    wire::Response {
        kind: Some(wire::response::Kind::Pull(wire::PullResponse {
            changes,
            next_cursor: page.next_cursor,
            has_more: page.has_more,
            backfill_after: page.backfill_after,
            feed: scope.audience,
            reset: false,
        })),
    }
}

fn decode_entity(kind: &str, bytes: &[u8]) -> Result<wire::change::Entity, String> {
    use wire::change::Entity;
    let e = |e: prost::DecodeError| e.to_string();
    Ok(match kind {
        "cell" => Entity::Cell(wire::GridCell::decode(bytes).map_err(e)?),
        "checkpoint" => Entity::Checkpoint(wire::Checkpoint::decode(bytes).map_err(e)?),
        "hazard_report" => Entity::HazardReport(wire::HazardReport::decode(bytes).map_err(e)?),
        "hazard_event" => Entity::HazardEvent(wire::HazardEvent::decode(bytes).map_err(e)?),
        "hazard_edit" => Entity::HazardFieldEdit(wire::HazardFieldEdit::decode(bytes).map_err(e)?),
        "template" => Entity::Template(wire::ChecklistTemplate::decode(bytes).map_err(e)?),
        "hazard_escalation" => {
            Entity::HazardEscalation(wire::HazardEscalation::decode(bytes).map_err(e)?)
        }
        "scope" => Entity::Scope(wire::ScopeChange::decode(bytes).map_err(e)?),
        other => return Err(format!("unknown change kind {other:?}")),
    })
}

fn reject_code(code: RejectCode) -> wire::ErrorCode {
    match code {
        RejectCode::Invalid => wire::ErrorCode::BadRequest,
        RejectCode::Forbidden => wire::ErrorCode::Forbidden,
        RejectCode::NotFound => wire::ErrorCode::NotFound,
        RejectCode::Unsupported => wire::ErrorCode::Unsupported,
    }
}

async fn enroll(shared: &Shared, req: wire::EnrollRequest) -> wire::Response {
    let refused = |m: String| error(wire::ErrorCode::EnrollmentRefused, m, false);
    let code = req.code.trim();
    if code.is_empty() {
        return refused("enrollment code is empty".into());
    }
    // Check the code before signing anything: signing costs CPU and the peer is unauthenticated.
    match shared
        .store
        .check_enrollment(&crate::enroll::hash_code(code), crate::now_ms())
        .await
    {
        Ok(()) => {}
        Err(RedeemError::Store(e)) => {
            return error(
                wire::ErrorCode::Unavailable,
                format!("enrollment failed, retry: {e}"),
                true,
            );
        }
        Err(e) => {
            tracing::info!(reason = %e, "enrollment refused");
            return refused(e.to_string());
        }
    }
    let device_id = DeviceId(uuid::Uuid::now_v7());
    let cert = match shared
        .pki
        .sign_device_csr(&req.csr_der, &device_id.to_string())
    {
        Ok(c) => c,
        Err(e) => {
            return error(
                wire::ErrorCode::BadRequest,
                format!("enrollment refused: {e}"),
                false,
            );
        }
    };
    let device = NewDevice {
        id: device_id,
        name: req
            .device_name
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect(),
        cert_sha256: pki::sha256(&cert),
        app_version: req
            .app_version
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect(),
    };
    match shared
        .store
        .redeem_enrollment(&crate::enroll::hash_code(code), &device, crate::now_ms())
        .await
    {
        Ok(s) => {
            tracing::info!(device = %s.id, user = %s.user, "device enrolled");
            wire::Response {
                kind: Some(wire::response::Kind::Enroll(wire::EnrollResponse {
                    device_id: s.id.to_string(),
                    certificate_der: cert.to_vec(),
                    server_ca_der: shared.pki.server_ca_der().to_vec(),
                    user: s.user.clone(),
                    role: s.role.wire(),
                    grid_cells: s.cell_codes(),
                })),
            }
        }
        Err(RedeemError::Store(e)) => error(
            wire::ErrorCode::Unavailable,
            format!("enrollment failed, retry: {e}"),
            true,
        ),
        Err(e) => {
            tracing::info!(reason = %e, "enrollment refused");
            refused(e.to_string())
        }
    }
}

/// Closes every live connection of the devices revoked since `since_ms` with the revoked code.
/// Runs on every node, so a revocation made anywhere (admin CLI, another node) takes effect
/// within one poll.
pub(crate) async fn watch_revocations(shared: Arc<Shared>, every: Duration) {
    let mut since = crate::now_ms();
    loop {
        tokio::time::sleep(every).await;
        let started = crate::now_ms();
        match shared
            .store
            .revoked_since(since.saturating_sub(2_000))
            .await
        {
            Ok(ids) if !ids.is_empty() => {
                let conns: Vec<Connection> = shared
                    .connections
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .filter(|(_, s, _)| {
                        let s = s.lock().unwrap_or_else(|e| e.into_inner());
                        s.as_ref().is_some_and(|s| ids.contains(&s.id))
                    })
                    .map(|(c, _, _)| c.clone())
                    .collect();
                for c in conns {
                    tracing::info!(remote = %c.remote_address(), "closing a revoked device's connection");
                    c.close(
                        VarInt::from_u32(codes::CLOSE_REVOKED),
                        b"device revoked; re-enroll",
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                // Keep the window open: check the same period again next time.
                tracing::warn!(error = %e, "revocation check failed");
                continue;
            }
        }
        since = started;
    }
}

/// Tells every connected device to go away, then waits for in-flight requests (bounded).
pub(crate) async fn drain(shared: &Shared, endpoint: &Endpoint, timeout: Duration) {
    shared.draining.store(true, Ordering::SeqCst);
    // GoAway: devices finish what is running and take new work elsewhere.
    let conns: Vec<Connection> = shared
        .connections
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .map(|(c, _, _)| c.clone())
        .collect();
    let event = frame::encode(&wire::ServerEvent {
        kind: Some(wire::server_event::Kind::GoAway(wire::GoAway {
            reason: "server node shutting down".into(),
            reconnect_after_ms: 0,
        })),
    });
    let sends = conns.into_iter().map(|conn| {
        let event = event.clone();
        async move {
            let _ = tokio::time::timeout(Duration::from_millis(500), async {
                if let Ok(mut send) = conn.open_uni().await {
                    let _ = send.write_all(&event).await;
                    let _ = send.finish();
                }
            })
            .await;
        }
    });
    futures_util::future::join_all(sends).await;
    let deadline = tokio::time::Instant::now() + timeout;
    while shared.in_flight.load(Ordering::SeqCst) > 0 {
        let idle = shared.idle.notified();
        if shared.in_flight.load(Ordering::SeqCst) == 0 {
            break;
        }
        if tokio::time::timeout_at(deadline, idle).await.is_err() {
            tracing::warn!(
                in_flight = shared.in_flight.load(Ordering::SeqCst),
                "drain timed out"
            );
            break;
        }
    }
    endpoint.close(
        VarInt::from_u32(codes::CLOSE_GOING_AWAY),
        b"server shutting down",
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
}
