//! The QUIC edge: endpoint set-up, the accept loop, device authentication per connection, and
//! one request per bidirectional stream. Wire types are converted to domain types here and go
//! no further. Nothing a peer sends is unwrapped: a bad frame becomes an error response (or a
//! stream stop), never a panic, and the connection survives when it can.
//!
//! `mod.rs` sets up the endpoint, accepts and drains; `connection` authenticates a connection,
//! keeps the registry of live ones and wakes devices with `Notify`; `stream` reads one request
//! frame and dispatches it; `rpc` answers Hello and Push; `blobs` answers photo status, upload
//! and download. Pull is `crate::pull`, Enroll `crate::enroll`.

mod blobs;
mod connection;
mod rpc;
mod stream;

pub(crate) use blobs::UploadRecords;
pub(crate) use connection::notify_in_scope;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use patrolsync_proto::codes;
use patrolsync_proto::frame;
use patrolsync_proto::{DeviceId, wire};
use quinn::{Connection, Endpoint, IdleTimeout, TransportConfig, VarInt};
use tokio::sync::Notify;

use crate::config::Config;
use crate::ingest::Ingestor;
use crate::pki::Pki;
use crate::store::Store;
use blobs::*;
use connection::*;
use rpc::*;
use stream::*;

/// State shared by every connection.
pub(crate) struct Shared {
    pub store: Arc<dyn Store>,
    pub blobs: crate::blobs::Blobs,
    /// Verified uploads, recorded in groups.
    pub upload_records: blobs::UploadRecords,
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

/// Concurrent streams of a connection without a device certificate.
pub(super) const UNENROLLED_STREAMS: u32 = 2;

/// Why the QUIC endpoint could not be created.
#[derive(Debug)]
pub(crate) enum EndpointError {
    /// The TLS configuration was refused.
    Tls(String),
    /// The UDP socket could not be bound.
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Creates the QUIC endpoint with its transport settings (PROTOCOL.md, "Transport").
pub(crate) fn bind_endpoint(config: &Config, pki: &Pki) -> Result<Endpoint, EndpointError> {
    let tls = pki
        .rustls_server_config()
        .map_err(|e| EndpointError::Tls(e.to_string()))?;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| EndpointError::Tls(e.to_string()))?;
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
    .map_err(|e| EndpointError::Bind { addr, source: e })?;
    if addr.is_ipv6() {
        // Dual-stack where the OS allows it; v6-only is fine too.
        let _ = socket.set_only_v6(false);
    }
    // quinn does not size kernel buffers; bursts of small pushes overflow the defaults.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket
        .bind(&addr.into())
        .map_err(|e| EndpointError::Bind { addr, source: e })?;
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
    .map_err(|e| EndpointError::Bind { addr, source: e })
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

/// Closes every live connection of the devices revoked since `since_ms` with the revoked code.
/// Runs on every node, so a revocation made anywhere (admin CLI, another node) takes effect
/// within one poll.
pub(crate) async fn watch_revocations(shared: Arc<Shared>, every: Duration) {
    let mut since = crate::clock::now_ms();
    loop {
        tokio::time::sleep(every).await;
        let started = crate::clock::now_ms();
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
