//! The end-to-end harness: a real server on loopback with a temp data dir (SQLite, or a fresh
//! PostgreSQL database), real SDK clients over real QUIC, and helpers to stop and restart the
//! server on the same address and data.

pub mod converge;
pub mod relay;

use patrolsync_server::store::PullStore;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use patrolsync_proto::Role;
use patrolsync_sdk::{Client, ClientConfig};
use patrolsync_server::store::Store;
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::testkit::{TestDatabase, loopback_config};
use patrolsync_server::{Config, Server};

/// Logs to the test output when `PATROLSYNC_LOG` is set.
pub fn init_tracing() {
    if let Ok(filter) = std::env::var("PATROLSYNC_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// A server under test with its data dir and database.
pub struct Harness {
    /// The data dir (and device state dirs, as subdirectories).
    pub dir: tempfile::TempDir,
    /// The database.
    pub db: TestDatabase,
    /// The configuration, pinned to the first bound address so restarts keep it.
    pub config: Config,
    server: Option<Server>,
}

impl Harness {
    /// Starts a server on `db`, seeded with the demo city.
    pub async fn start(db: TestDatabase) -> anyhow::Result<Harness> {
        Harness::start_with(db, |_| {}).await
    }

    /// Starts a server on `db` with nothing in it: no grid, no users (for tests that need every
    /// change-log position to be theirs).
    pub async fn start_empty(db: TestDatabase) -> anyhow::Result<Harness> {
        Harness::start_with_store_seeded(db, |_| {}, |store| Arc::new(store), false).await
    }

    /// Starts a server with a configuration adjusted by `adjust`.
    pub async fn start_with(
        db: TestDatabase,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Harness> {
        Harness::start_with_store(db, adjust, |store| Arc::new(store)).await
    }

    /// Starts a server on the store `wrap` makes of the configured one (to arm its fault
    /// points, or put a [`patrolsync_server::store::FaultyStore`] around it). A
    /// [`Harness::restart`] opens the plain store again.
    pub async fn start_with_store(
        db: TestDatabase,
        adjust: impl FnOnce(&mut Config),
        wrap: impl FnOnce(SqlStore) -> Arc<dyn Store>,
    ) -> anyhow::Result<Harness> {
        Harness::start_with_store_seeded(db, adjust, wrap, true).await
    }

    async fn start_with_store_seeded(
        db: TestDatabase,
        adjust: impl FnOnce(&mut Config),
        wrap: impl FnOnce(SqlStore) -> Arc<dyn Store>,
        seed: bool,
    ) -> anyhow::Result<Harness> {
        init_tracing();
        let dir = tempfile::tempdir()?;
        let mut config = loopback_config(&dir.path().join("server"), db.url.clone());
        adjust(&mut config);
        let store = wrap(patrolsync_server::open_sql_store(&config).await?);
        let server = Server::bind_with_store(config.clone(), store).await?;
        config.listen = server.local_addr();
        if seed {
            patrolsync_server::seed::seed_demo(server.store().as_ref()).await?;
        }
        Ok(Harness {
            dir,
            db,
            config,
            server: Some(server),
        })
    }

    /// The running server.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server is running")
    }

    /// The QUIC address devices dial.
    pub fn addr(&self) -> SocketAddr {
        self.config.listen
    }

    /// Stops the server (graceful drain).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Starts the server again on the same address and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        self.server = Some(rebind(&self.config).await?);
        Ok(())
    }

    /// An enrollment string for a new device of `user`.
    pub async fn enrollment(
        &self,
        user: &str,
        role: Role,
        cells: &[&str],
    ) -> anyhow::Result<String> {
        self.enrollment_with_agency(user, role, cells, None).await
    }

    /// An enrollment string for a user of `role`, with an agency for agency users.
    pub async fn enrollment_with_agency(
        &self,
        user: &str,
        role: Role,
        cells: &[&str],
        agency: Option<patrolsync_proto::hazard::Agency>,
    ) -> anyhow::Result<String> {
        let pki = patrolsync_server::pki::Pki::open_or_init(&self.config.data_dir, &[])?;
        let cells: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
        let request = patrolsync_server::enroll::IssueRequest {
            user: user.to_owned(),
            role,
            cells,
            server: Some(self.addr().to_string()),
            ttl: None,
            agency,
        };
        let issued = patrolsync_server::enroll::issue(
            self.server().store().as_ref(),
            &pki,
            &self.config,
            request,
        )
        .await?;
        Ok(issued.enrollment)
    }

    /// A patroller's client with its own state dir, enrolled as `user` with `cells`.
    pub async fn device(&self, name: &str, user: &str, cells: &[&str]) -> anyhow::Result<Client> {
        self.device_as(name, user, Role::Patroller, cells).await
    }

    /// An agency user's client (police station or fire brigade) with jurisdiction over `cells`.
    pub async fn agency_device(
        &self,
        name: &str,
        user: &str,
        agency: patrolsync_proto::hazard::Agency,
        cells: &[&str],
    ) -> anyhow::Result<Client> {
        let code = self
            .enrollment_with_agency(user, Role::Agency, cells, Some(agency))
            .await?;
        let client = Client::open(self.dir.path().join(name), fast_client()).await?;
        client.enroll(&code, None, name).await?;
        Ok(client)
    }

    /// A patroller's client with custom settings.
    pub async fn device_with(
        &self,
        name: &str,
        user: &str,
        cells: &[&str],
        config: ClientConfig,
    ) -> anyhow::Result<Client> {
        let code = self.enrollment(user, Role::Patroller, cells).await?;
        let client = Client::open(self.dir.path().join(name), config).await?;
        client.enroll(&code, None, name).await?;
        Ok(client)
    }

    /// A client enrolled as `user` with `role` and `cells`.
    pub async fn device_as(
        &self,
        name: &str,
        user: &str,
        role: Role,
        cells: &[&str],
    ) -> anyhow::Result<Client> {
        let code = self.enrollment(user, role, cells).await?;
        let client = Client::open(self.dir.path().join(name), fast_client()).await?;
        client.enroll(&code, None, name).await?;
        Ok(client)
    }

    /// Stops the server and drops the PostgreSQL database.
    pub async fn finish(mut self) {
        self.stop().await;
        self.db.cleanup().await;
    }
}

/// The server-assigned id of an enrolled `device`.
pub async fn device_id(device: &Client) -> anyhow::Result<patrolsync_proto::DeviceId> {
    device
        .status()
        .await?
        .device_id
        .ok_or_else(|| anyhow::anyhow!("the device is not enrolled"))?
        .parse()
        .map_err(anyhow::Error::msg)
}

/// Ids of the check-ins the store holds (of `device`, or of everyone), sorted, with any
/// stored twice listed twice.
pub async fn stored_check_in_ids(
    store: &dyn Store,
    device: Option<patrolsync_proto::DeviceId>,
) -> anyhow::Result<Vec<String>> {
    let mut ids: Vec<String> = store
        .check_ins(device, u32::MAX)
        .await?
        .into_iter()
        .map(|c| c.check_in.id.to_string())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Syncs `device` until its outbox and photo queue are empty, syncing again after each
/// retryable failure (a failure no retry can mend is returned), for at most `limit`. Returns
/// what the syncs applied and recognised as resent, summed.
pub async fn sync_until_done(
    device: &Client,
    limit: Duration,
) -> anyhow::Result<patrolsync_sdk::SyncSummary> {
    let deadline = std::time::Instant::now() + limit;
    let mut total = patrolsync_sdk::SyncSummary::default();
    loop {
        match device.sync().await {
            Ok(s) => {
                total.applied += s.applied;
                total.duplicates += s.duplicates;
                let status = device.status().await?;
                if status.pending_ops == 0 && status.pending_photos == 0 {
                    return Ok(total);
                }
            }
            Err(e) => {
                anyhow::ensure!(e.is_retryable(), "{e}");
                // Back off a little: a server that is down answers fast.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "still pending after {limit:?}: {:?}",
            device.status().await?
        );
    }
}

/// Client settings for loopback tests: short timeouts so "server down" is quick to see.
pub fn fast_client() -> ClientConfig {
    ClientConfig {
        app_version: "e2e".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(20),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(50),
        ..ClientConfig::default()
    }
}

/// SHA-256 of `bytes`, computed with another implementation (ring) than the code under test
/// (the protocol crate's `sha2`), so a test's expected hash does not share its bugs.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

/// A hazard report: bikes blocking the fire lane in `cell`, fix by a deadline, no photos.
pub fn blocked_lane(cell: &str) -> patrolsync_sdk::NewHazard {
    use patrolsync_proto::hazard::{Handling, HazardCategory, Severity};
    patrolsync_sdk::NewHazard {
        grid_cell: cell.into(),
        checkpoint: None,
        position: None,
        category: HazardCategory::BlockedFireLane,
        severity: Severity::General,
        handling: Handling::ByDeadline,
        deadline_ms: Some(4_000_000_000_000),
        description: "bikes block the fire lane".into(),
        photos: Vec::new(),
    }
}

/// Calls the server's admin HTTP router in process (no socket) with the right token; returns
/// the status and the body.
pub async fn admin_get(server: &Server, uri: &str) -> anyhow::Result<(u16, String)> {
    use tower::ServiceExt;
    let token = std::fs::read_to_string(server.config().data_dir.join("admin.token"))?;
    let request = axum::http::Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {}", token.trim()))
        .body(axum::body::Body::empty())?;
    let response = server.admin_router().oneshot(request).await?;
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 26).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// [`admin_get`] for a JSON answer that must be 200.
pub async fn admin_json(server: &Server, uri: &str) -> anyhow::Result<serde_json::Value> {
    let (status, body) = admin_get(server, uri).await?;
    anyhow::ensure!(status == 200, "GET {uri}: {status} {body}");
    Ok(serde_json::from_str(&body)?)
}

/// What a device shows, reduced to what the server can say too: cell, checkpoint and hazard
/// ids, and each hazard's folded state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Cell codes.
    pub cells: Vec<String>,
    /// Checkpoint codes.
    pub checkpoints: Vec<String>,
    /// Key unit codes.
    pub units: Vec<String>,
    /// Must-visit household codes.
    pub households: Vec<String>,
    /// Hazards by id: status, agency, category, severity, description, deadline, conflicts.
    pub hazards: std::collections::BTreeMap<String, HazardFacts>,
}

/// A hazard's folded state, as both sides report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HazardFacts {
    /// Status.
    pub status: String,
    /// Agency holding it.
    pub agency: Option<String>,
    /// Category.
    pub category: String,
    /// Severity.
    pub severity: String,
    /// Description.
    pub description: String,
    /// Deadline.
    pub deadline_ms: Option<i64>,
    /// Events that did not apply.
    pub conflicts: i64,
}

/// The device's view.
pub async fn device_view(device: &Client) -> anyhow::Result<View> {
    let mut v = View {
        cells: device.cells().await?.into_iter().map(|c| c.code).collect(),
        checkpoints: device
            .checkpoints()
            .await?
            .into_iter()
            .map(|c| c.code)
            .collect(),
        units: device
            .units(None)
            .await?
            .into_iter()
            .map(|u| u.code)
            .collect(),
        households: device
            .households(None)
            .await?
            .into_iter()
            .map(|h| h.code)
            .collect(),
        ..View::default()
    };
    for h in device.hazards().await? {
        let s = &h.state;
        v.hazards.insert(
            s.id.to_string(),
            HazardFacts {
                status: s.status.as_str().into(),
                agency: s.agency.map(|a| a.as_str().to_owned()),
                category: s.category.value.as_str().into(),
                severity: s.severity.value.as_str().into(),
                description: s.description.value.clone(),
                deadline_ms: s.deadline_ms.value,
                conflicts: s.conflicts().count() as i64,
            },
        );
    }
    v.cells.sort();
    v.checkpoints.sort();
    Ok(v)
}

/// What the server says `device` should hold (`admin scope`), with each hazard as the server
/// folded it.
pub async fn server_view(server: &Server, device: &Client) -> anyhow::Result<View> {
    let id = device_id(device).await?;
    let store = server.store();
    let session = store
        .device_session(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("device {id} is not enrolled"))?;
    let sql = patrolsync_server::open_sql_store(server.config()).await?;
    let scope = sql.scope_view(&session).await?;
    let mut v = View {
        cells: scope.cells,
        checkpoints: scope.checkpoints,
        units: scope.units,
        households: scope.households,
        ..View::default()
    };
    for id in scope.hazards {
        let h = store
            .hazard(id.parse().map_err(anyhow::Error::msg)?)
            .await?
            .ok_or_else(|| anyhow::anyhow!("hazard {id} in scope but not stored"))?;
        v.hazards.insert(
            id,
            HazardFacts {
                status: h.status,
                agency: h.agency,
                category: h.category,
                severity: h.severity,
                description: h.description,
                deadline_ms: h.deadline_ms,
                conflicts: h.conflicts,
            },
        );
    }
    Ok(v)
}

/// A raw QUIC client (not the SDK): protocol v1's ALPN, TLS 1.3, trusting only the server CA in
/// `ca_pem`, presenting `device` (a certificate and its PKCS#8 key, DER) when given.
pub async fn raw_connect(
    addr: SocketAddr,
    ca_pem: &std::path::Path,
    device: Option<(Vec<u8>, Vec<u8>)>,
) -> anyhow::Result<quinn::Connection> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(ca_pem)?)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots);
    let mut tls = match device {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder.with_client_auth_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )?,
    };
    tls.alpn_protocols = vec![patrolsync_proto::ALPN_V1.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    Ok(endpoint.connect(addr, "localhost")?.await?)
}

/// A QUIC connection as the device whose state dir is `dir` (its certificate and key), with
/// nothing of the SDK in between: for requests an app would never send.
pub async fn device_connection(
    h: &Harness,
    dir: &std::path::Path,
) -> anyhow::Result<quinn::Connection> {
    let device = (
        std::fs::read(dir.join("device.crt"))?,
        std::fs::read(dir.join("device.key"))?,
    );
    raw_connect(h.addr(), &h.config.data_dir.join("ca.crt"), Some(device)).await
}

/// Sends one framed request on a new stream of `conn` and reads the framed answer.
pub async fn exchange(
    conn: &quinn::Connection,
    bytes: &[u8],
) -> anyhow::Result<patrolsync_proto::wire::Response> {
    use patrolsync_proto::frame;
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(bytes).await?;
    send.finish()?;
    let body = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        recv.read_to_end(1 << 20),
    )
    .await??;
    let (header, rest) = body.split_at(frame::HEADER_LEN);
    let len = frame::body_len(header.try_into()?, 1 << 20)?;
    anyhow::ensure!(rest.len() == len, "response frame length mismatch");
    Ok(frame::decode(rest)?)
}

/// Waits (10 s at most) for an engine's first sync with something pulled.
pub async fn bootstrapped(
    events: &mut tokio::sync::broadcast::Receiver<patrolsync_sdk::SyncEvent>,
    backend: &str,
) -> anyhow::Result<()> {
    use patrolsync_sdk::SyncEvent;
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), events.recv()).await?? {
            SyncEvent::Finished(s) if s.cursor > 0 => return Ok(()),
            SyncEvent::Failed { error, .. } => {
                anyhow::bail!("{backend}: bootstrap failed: {error}")
            }
            _ => {}
        }
    }
}

/// Waits until `done()` holds or `until` passes, reading the engine's events meanwhile.
/// Returns whether it holds, and whether a Notify came (those still queued included).
pub async fn until_notified<F, Fut>(
    events: &mut tokio::sync::broadcast::Receiver<patrolsync_sdk::SyncEvent>,
    until: std::time::Instant,
    mut done: F,
) -> anyhow::Result<(bool, bool)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    use patrolsync_sdk::SyncEvent;
    let mut notified = false;
    let reached = loop {
        if done().await? {
            break true;
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break false;
        }
        if let Ok(Ok(SyncEvent::Notified { .. })) = tokio::time::timeout(left, events.recv()).await
        {
            notified = true;
        }
    };
    while let Ok(e) = events.try_recv() {
        notified |= matches!(e, SyncEvent::Notified { .. });
    }
    Ok((reached, notified))
}

/// The one-day report period holding `ms` in `cal`'s time zone (the day a record was made, so a
/// test's period never depends on when it runs).
pub fn day_of(
    cal: &patrolsync_server::calendar::Calendar,
    ms: i64,
) -> patrolsync_server::report::Period {
    let day = cal.date(ms);
    patrolsync_server::report::Period {
        label: day.to_string(),
        start: day,
        end: day.succ_opt().expect("a next day"),
    }
}

/// Starts a server on `config` again after one on the same address was shut down in this
/// process. The old node's UDP socket closes when the last task of its QUIC endpoint ends,
/// which can be a moment after `Server::shutdown` returns (a node restarting as a new process,
/// as in production, has no such wait), so a bind that finds the address in use is retried for
/// up to 5 s. Seen in CI: "cannot listen on 127.0.0.1:30764: Address already in use".
pub async fn rebind(config: &Config) -> Result<Server, patrolsync_server::ServeError> {
    let started = std::time::Instant::now();
    loop {
        match Server::bind(config.clone()).await {
            Err(patrolsync_server::ServeError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && started.elapsed() < Duration::from_secs(5) =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            bound => return bound,
        }
    }
}

/// A child process killed and reaped when dropped, so a test or a benchmark that stops part way
/// (an error, an interrupt) never leaves it running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
