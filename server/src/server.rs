//! The server as one running thing: open the store and keys, bind QUIC and the admin HTTP
//! listener, start the periodic tasks (fleet sampling, escalation of overdue hazards, staging
//! expiry, revocation watch, the cluster bus), and drain on shutdown.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use crate::clock::now_ms;
use crate::config::Config;
#[cfg(feature = "test-util")]
use crate::faults;
use crate::pki::Pki;
use crate::{admin, blobs, budget, cluster, health, ingest, metrics, pki, store, transport};

use crate::store::sql::SqlStore;
use crate::store::{Backend, Store, StoreError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The store could not be opened or migrated.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// Keys or certificates could not be created or loaded.
    #[error("cannot prepare keys and certificates: {0}")]
    Pki(#[from] pki::PkiError),
    /// TLS set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// Photo storage could not be opened or reached.
    #[error("cannot open photo storage: {0}")]
    Photos(#[from] blobs::BlobError),
    /// A socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

impl ServeError {
    /// The error in `lang`, for a person; `Display` gives it in English.
    pub fn text(&self, lang: patrolsync_i18n::Lang) -> String {
        use patrolsync_i18n::message;
        match self {
            ServeError::Store(e) => message!(lang, "serve-store", error = e.text(lang)),
            ServeError::Pki(e) => message!(lang, "serve-pki", error = e),
            ServeError::Tls(e) => message!(lang, "serve-tls", error = e),
            ServeError::Photos(e) => message!(lang, "serve-photos", error = e),
            ServeError::Bind { addr, source } => {
                message!(lang, "serve-bind", addr = addr, error = source)
            }
        }
    }
}

impl From<rustls::Error> for ServeError {
    fn from(e: rustls::Error) -> Self {
        ServeError::Tls(e.to_string())
    }
}

/// Opens the store the configuration names (creating the data dir for SQLite).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServeError> {
    Ok(Arc::new(open_sql_store(config).await?))
}

/// [`open_store`], as the concrete SQL store (to arm its fault points in tests).
pub async fn open_sql_store(config: &Config) -> Result<SqlStore, ServeError> {
    if config.database_url.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            ServeError::Pki(pki::PkiError::Io {
                path: config.data_dir.clone(),
                source: e,
            })
        })?;
    }
    let rules = store::sql::DedupRules {
        double_tap_ms: i64::try_from(config.double_tap_window.as_millis()).unwrap_or(i64::MAX),
        hazard_radius_m: config.hazard_duplicate_radius_m,
    };
    Ok(SqlStore::connect(&config.database_url())
        .await?
        .with_dedup(rules))
}

/// A running server: QUIC on [`Server::local_addr`], admin HTTP on [`Server::admin_addr`].
pub struct Server {
    shared: Arc<transport::Shared>,
    endpoint: quinn::Endpoint,
    local_addr: SocketAddr,
    admin_addr: SocketAddr,
    public_addr: Option<SocketAddr>,
    draining: Arc<AtomicBool>,
    admin_shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    admin_state: admin::AdminState,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("admin_addr", &self.admin_addr)
            .finish()
    }
}

impl Server {
    /// Opens the store and keys named by `config` and starts listening.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        let store = open_store(&config).await?;
        Server::bind_with_store(config, store).await
    }

    /// Starts listening with an already opened store (e.g. a fault-injecting wrapper).
    pub async fn bind_with_store(
        config: Config,
        store: Arc<dyn Store>,
    ) -> Result<Server, ServeError> {
        let pki =
            Pki::open_shared(&config.data_dir, &server_names(&config), store.as_ref()).await?;
        let endpoint = transport::bind_endpoint(&config, &pki).map_err(|e| match e {
            transport::EndpointError::Tls(reason) => ServeError::Tls(reason),
            transport::EndpointError::Bind { addr, source } => ServeError::Bind { addr, source },
        })?;
        let local_addr = endpoint.local_addr().map_err(|e| ServeError::Bind {
            addr: config.listen,
            source: e,
        })?;
        // Bound to port 0: what devices dial (and enrollment codes carry) is the port we got.
        let mut config = config;
        if config.listen.port() == 0 {
            config.listen.set_port(local_addr.port());
        }

        let admin_listener = tokio::net::TcpListener::bind(config.admin_listen)
            .await
            .map_err(|e| ServeError::Bind {
                addr: config.admin_listen,
                source: e,
            })?;
        let admin_addr = admin_listener.local_addr().map_err(|e| ServeError::Bind {
            addr: config.admin_listen,
            source: e,
        })?;
        let public_listener = match config.public.listen.filter(|_| config.public.enabled) {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| ServeError::Bind { addr, source: e })?,
            ),
            None => None,
        };

        let writers = match store.backend() {
            Backend::Sqlite => 1,
            Backend::Postgres => config.ingest_writers,
        };
        tracing::info!(writers, "ingest: group-commit writers");
        let metrics = Arc::new(metrics::Metrics::new());
        let ingest = ingest::Ingestor::start(store.clone(), writers, now_ms, metrics.clone());
        let draining = Arc::new(AtomicBool::new(false));
        let db: Arc<dyn crate::store::AdminStore> = Arc::new(open_sql_store(&config).await?);
        let public = config.public.enabled.then(|| crate::public::PublicState {
            db: db.clone(),
            reports: config.reports.clone(),
            min_count: config.public.min_count,
            refresh_ms: config.public.refresh.as_millis() as i64,
            cache: Default::default(),
        });
        let admin_state = admin::AdminState {
            store: store.clone(),
            db,
            public: public.clone(),
            reports: config.reports.clone(),
            token_sha256: patrolsync_proto::digest::sha256(pki.admin_token().as_bytes()),
            draining: draining.clone(),
            metrics: metrics.clone(),
            health: config.health.clone(),
        };
        let blobs = blobs::Blobs::open(&config.photos, &config.data_dir)?;
        blobs.check().await?;
        tracing::info!(photos = %blobs.describe(), "photo storage");
        expire_staging(&blobs, config.staging_expiry).await;
        let cluster = match store.backend() {
            Backend::Postgres => Some(Arc::new(
                cluster::Cluster::new(&config.database_url()).map_err(StoreError::from)?,
            )),
            Backend::Sqlite => None,
        };
        let budgets = Arc::new(budget::Budgets::new(&config.limits));
        let shared = Arc::new(transport::Shared {
            cluster: cluster.clone(),
            blobs,
            upload_records: transport::UploadRecords::start(store.clone()),
            store,
            ingest,
            pki,
            config,
            #[cfg(feature = "test-util")]
            faults: Arc::new(faults::Faults::default()),
            draining: AtomicBool::new(false),
            connections: Mutex::new(Default::default()),
            in_flight: Default::default(),
            handshaking: Default::default(),
            budgets,
            idle: Default::default(),
            metrics,
            activity_recorded: Default::default(),
        });

        let (admin_tx, admin_rx) = tokio::sync::oneshot::channel::<()>();
        let admin_http = admin_state.clone();
        let admin_task = tokio::spawn(async move {
            let serve = axum::serve(
                admin_listener,
                admin::router(admin_http)
                    .into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = admin_rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "admin HTTP stopped");
            }
        });
        // The public page on an address of its own: read-only, stopped with the other tasks.
        let mut public_addr = None;
        let mut public_task = None;
        if let (Some(listener), Some(public)) = (public_listener, public) {
            public_addr = listener.local_addr().ok();
            public_task = Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, crate::public::router(public)).await {
                    tracing::error!(error = %e, "public HTTP stopped");
                }
            }));
        }
        let accept_task = tokio::spawn(transport::accept_loop(endpoint.clone(), shared.clone()));
        let expiry = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut minutes = 0u32;
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                    // Budgets of keys quiet for a while go (a flood of addresses is forgotten).
                    shared.budgets.forget_idle();
                    minutes += 1;
                    if minutes.is_multiple_of(60) {
                        expire_staging(&shared.blobs, shared.config.staging_expiry).await;
                    }
                }
            })
        };
        let revocations = tokio::spawn(transport::watch_revocations(
            shared.clone(),
            std::time::Duration::from_millis(250),
        ));
        let sampler = tokio::spawn(sample_fleet(shared.clone()));
        let escalator = tokio::spawn(escalate_overdue(shared.clone()));
        let dispatcher = tokio::spawn(dispatch_tasks(shared.clone()));
        let mut tasks = vec![
            admin_task,
            accept_task,
            revocations,
            expiry,
            sampler,
            escalator,
            dispatcher,
        ];
        tasks.extend(public_task);
        if let Some(cluster) = cluster {
            let weak = Arc::downgrade(&shared);
            tasks.push(tokio::spawn(cluster.listen(
                move |origin, paths, audiences, cursor| {
                    if let Some(shared) = weak.upgrade() {
                        transport::notify_in_scope(&shared, origin, paths, audiences, cursor);
                    }
                },
            )));
        }
        Ok(Server {
            shared,
            endpoint,
            local_addr,
            admin_addr,
            public_addr,
            draining,
            admin_shutdown: Some(admin_tx),
            admin_state,
            tasks,
        })
    }

    /// The QUIC address (useful when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The public page's own address, when `[public] listen` gave it one.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public_addr
    }

    /// The admin HTTP address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// SHA-256 of the server CA, which devices pin.
    pub fn ca_fingerprint(&self) -> patrolsync_proto::digest::Sha256 {
        self.shared.pki.ca_fingerprint()
    }

    /// The store.
    pub fn store(&self) -> Arc<dyn Store> {
        self.shared.store.clone()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Photo storage.
    pub fn blobs(&self) -> &blobs::Blobs {
        &self.shared.blobs
    }

    /// The admin HTTP router of this server, to call without a socket (tests).
    pub fn admin_router(&self) -> axum::Router {
        admin::router(self.admin_state.clone())
    }

    /// This node's metrics.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.shared.metrics
    }

    /// Fault injection hooks (tests).
    #[cfg(feature = "test-util")]
    pub fn faults(&self) -> &faults::Faults {
        &self.shared.faults
    }

    /// Drains: readiness goes false, new connections are refused, in-flight requests finish
    /// (up to the configured drain timeout), then every connection is closed with going-away.
    /// The QUIC socket is closed when the endpoint's last task ends, which can be a moment
    /// after this returns: a server bound again on the same address in this process may find
    /// it still in use for that moment, and should retry.
    pub async fn shutdown(mut self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        transport::drain(
            &self.shared,
            &self.endpoint,
            self.shared.config.drain_timeout,
        )
        .await;
        if let Some(tx) = self.admin_shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
        }
    }
}

/// Escalates overdue hazards and reminds routed parties of deadlines every
/// `escalation.check_every` (first after one period, so a starting node does no store work
/// before it serves), and wakes the devices it escalates to or reminds, on this node and,
/// through the cluster, on the others.
async fn escalate_overdue(shared: Arc<transport::Shared>) {
    let every = shared.config.escalation.check_every;
    let interval_ms =
        i64::try_from(shared.config.escalation.interval.as_millis()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match shared.store.escalate_overdue(now_ms(), interval_ms).await {
            Ok(done) if !done.escalations.is_empty() => {
                for e in &done.escalations {
                    tracing::info!(hazard = %e.hazard, level = e.level, to_cell = %e.to_cell, "hazard overdue: escalated");
                }
                transport::notify_in_scope(&shared, None, Some(&done.paths), &[], done.cursor);
                if let Some(cluster) = &shared.cluster {
                    cluster.publish(
                        patrolsync_proto::DeviceId(uuid::Uuid::nil()),
                        &done.paths,
                        &[],
                        done.cursor,
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "escalating overdue hazards failed; trying again next period")
            }
        }
        match shared.store.remind_due(now_ms()).await {
            Ok(done) if !done.reminders.is_empty() => {
                for r in &done.reminders {
                    tracing::info!(hazard = %r.hazard, party = %r.party, offset_ms = r.offset_ms, "deadline reminder sent to the routed party");
                }
                transport::notify_in_scope(&shared, None, Some(&[]), &done.audiences, done.cursor);
                if let Some(cluster) = &shared.cluster {
                    cluster.publish(
                        patrolsync_proto::DeviceId(uuid::Uuid::nil()),
                        &[],
                        &done.audiences,
                        done.cursor,
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "sending deadline reminders failed; trying again next period")
            }
        }
    }
}

/// Offers tasks nobody has yet to the nearest on-duty patroller, and escalates those nobody
/// took, every `dispatch.check_every`; wakes the devices of each task's cell, on this node and,
/// through the cluster, on the others.
async fn dispatch_tasks(shared: Arc<transport::Shared>) {
    let every = shared.config.dispatch.check_every;
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let timeout_ms = ms(shared.config.dispatch.offer_timeout);
    let duty_ttl_ms = ms(shared.config.dispatch.duty_ttl);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match shared
            .store
            .dispatch(now_ms(), timeout_ms, duty_ttl_ms)
            .await
        {
            Ok(done) if !done.paths.is_empty() => {
                for (task, user) in &done.offers {
                    tracing::info!(task = %task, user = %user, "task offered");
                }
                for task in &done.escalated {
                    tracing::info!(task = %task, "task escalated to the cell's managers: nobody on duty took it");
                }
                transport::notify_in_scope(&shared, None, Some(&done.paths), &[], done.cursor);
                if let Some(cluster) = &shared.cluster {
                    cluster.publish(
                        patrolsync_proto::DeviceId(uuid::Uuid::nil()),
                        &done.paths,
                        &[],
                        done.cursor,
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "dispatching tasks failed; trying again next period")
            }
        }
    }
}

/// Samples the fleet for the dashboard's chart every `health.sample_every`.
async fn sample_fleet(shared: Arc<transport::Shared>) {
    let every = shared.config.health.sample_every;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = now_ms();
        let read = async {
            let statuses = shared.store.device_statuses().await?;
            let stats = shared.store.stats(now).await?;
            Ok::<_, StoreError>((health::fleet(statuses, &shared.config.health, now).0, stats))
        }
        .await;
        match read {
            Ok((devices, stats)) => shared.metrics.set_fleet(&devices, &stats),
            Err(e) => tracing::warn!(error = %e, "fleet sample: could not read the store"),
        }
        shared.metrics.sample(now, every);
    }
}

/// Deletes abandoned partial uploads, logging what it did.
async fn expire_staging(blobs: &blobs::Blobs, max_age: std::time::Duration) {
    match blobs.expire_staging(max_age).await {
        Ok(n) if n > 0 => tracing::info!(expired = n, "removed abandoned photo uploads"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "photo staging expiry failed"),
    }
}

fn server_names(config: &Config) -> Vec<String> {
    let mut names = config.server_names.clone();
    if let Some(public) = &config.public_address {
        let host = public.rsplit_once(':').map(|(h, _)| h).unwrap_or(public);
        names.push(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        );
    }
    if !config.listen.ip().is_unspecified() {
        names.push(config.listen.ip().to_string());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bound_to_port_zero_devices_are_told_the_port_it_got() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let server = Server::bind(crate::testkit::loopback_config(dir.path(), None)).await?;
        let port = server.local_addr().port();
        assert_ne!(port, 0);
        assert_eq!(
            server.config().public_address(),
            format!("127.0.0.1:{port}")
        );
        server.shutdown().await;
        Ok(())
    }
}
