//! A rolling restart of a two-node cluster (one PostgreSQL) while 50 devices push without pause:
//! each node in turn drains (GoAway, in-flight requests finish, `/readyz` false first) and
//! comes back on the same address and data; devices move to the other node meanwhile. At the
//! end every check-in a device recorded is stored exactly once. Needs PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use patrolsync_proto::{CheckInOutcome, Role};
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn};
use patrolsync_server::testkit::{ENV_TEST_DATABASE_URL, fresh_postgres, loopback_config};
use patrolsync_server::{Config, Server};
use patrolsync_tests::{fast_client, rebind};
use tokio::sync::Notify;

const DEVICES: usize = 50;

/// Check-ins recorded by all devices, with a wake-up for whoever waits on the count.
#[derive(Default)]
struct Progress {
    recorded: AtomicU64,
    failed_syncs: AtomicU64,
    changed: Notify,
}

impl Progress {
    /// Waits until at least `n` check-ins were recorded (and the pushes around them ran).
    async fn reach(&self, n: u64) -> anyhow::Result<()> {
        tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let changed = self.changed.notified();
                if self.recorded.load(Ordering::SeqCst) >= n {
                    return;
                }
                changed.await;
            }
        })
        .await
        .map_err(|_| anyhow::anyhow!("the fleet stopped making progress before {n} check-ins"))
    }
}

async fn restart(node: Server, config: &Config) -> anyhow::Result<Server> {
    let admin = node.admin_addr();
    let ready = tokio::spawn(async move {
        // Readiness turns false while the node drains.
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            match http_status(admin, "/readyz").await {
                Some(503) => return true,
                None => return false,
                _ => tokio::task::yield_now().await,
            }
        }
        false
    });
    tokio::task::yield_now().await;
    node.shutdown().await;
    let saw_draining = ready.await?;
    let node = rebind(config).await?;
    anyhow::ensure!(
        saw_draining,
        "/readyz never said 503 while the node drained"
    );
    Ok(node)
}

/// The HTTP status of `GET path` on the admin listener, or `None` if it is down.
async fn http_status(addr: std::net::SocketAddr, path: &str) -> Option<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_continuous_pushes_loses_and_doubles_nothing() -> anyhow::Result<()> {
    patrolsync_tests::init_tracing();
    let Ok(url) = std::env::var(ENV_TEST_DATABASE_URL) else {
        patrolsync_server::testkit::skip(
            "the rolling-restart test",
            &format!("{ENV_TEST_DATABASE_URL} is not set"),
        );
        return Ok(());
    };
    let db = fresh_postgres(&url).await;
    let dir = tempfile::tempdir()?;
    let node_config = |name: &str| Config {
        // Each push a distinct check-in, counted as such (no double-tap folding).
        double_tap_window: Duration::ZERO,
        ..loopback_config(&dir.path().join(name), db.url.clone())
    };
    let (mut config_a, mut config_b) = (node_config("a"), node_config("b"));
    let node_a = Server::bind(config_a.clone()).await?;
    config_a.listen = node_a.local_addr();
    let node_b = Server::bind(config_b.clone()).await?;
    config_b.listen = node_b.local_addr();
    let store = node_a.store();
    patrolsync_server::seed::seed_demo(store.as_ref()).await?;

    // Half the fleet prefers node A, half node B, as DNS round-robin would spread them.
    let pki = patrolsync_server::pki::Pki::open_or_init(&config_a.data_dir, &[])?;
    let mut devices = Vec::new();
    for i in 0..DEVICES {
        let (first, second) = if i % 2 == 0 {
            (config_a.listen, config_b.listen)
        } else {
            (config_b.listen, config_a.listen)
        };
        let issued = patrolsync_server::enroll::issue(
            store.as_ref(),
            &pki,
            &config_a,
            patrolsync_server::enroll::IssueRequest {
                user: format!("p{i}"),
                role: Role::Patroller,
                cells: vec!["S1-C1".into()],
                server: Some(first.to_string()),
                ttl: None,
                agency: None,
            },
        )
        .await?;
        let client = Client::open(
            dir.path().join(format!("d{i}")),
            ClientConfig {
                server_override: Some(format!("{first},{second}")),
                max_attempts: 1,
                ..fast_client()
            },
        )
        .await?;
        client.enroll(&issued.enrollment, None, "phone").await?;
        devices.push(client);
    }

    let progress = Arc::new(Progress::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut pushers = Vec::new();
    for (i, d) in devices.iter().enumerate() {
        let (d, progress, stop) = (d.clone(), progress.clone(), stop.clone());
        pushers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let checkpoint = format!("S1-C1-K{}-B1-P{}", 1 + i % 4, 1 + n % 2);
                d.record_checkin(NewCheckIn::new(&checkpoint, CheckInOutcome::Inspected))
                    .await?;
                n += 1;
                // Failures (a node draining or gone) are expected; the outbox keeps it all.
                if d.sync().await.is_err() {
                    progress.failed_syncs.fetch_add(1, Ordering::SeqCst);
                }
                progress.recorded.fetch_add(1, Ordering::SeqCst);
                progress.changed.notify_waiters();
            }
            anyhow::Ok(n)
        }));
    }

    progress.reach(150).await?;
    let node_a = restart(node_a, &config_a).await?;
    let after_a = progress.recorded.load(Ordering::SeqCst);
    progress.reach(after_a + 150).await?;
    let node_b = restart(node_b, &config_b).await?;
    let after_b = progress.recorded.load(Ordering::SeqCst);
    progress.reach(after_b + 150).await?;
    stop.store(true, Ordering::SeqCst);
    let mut recorded = 0;
    for p in pushers {
        recorded += p.await??;
    }

    for d in &devices {
        let mut tries = 0;
        while d.status().await?.pending_ops > 0 {
            tries += 1;
            anyhow::ensure!(tries <= 5, "a device could not finish syncing");
            let _ = d.sync().await;
        }
    }
    let stats = store.stats(patrolsync_server::now_ms()).await?;
    assert_eq!(
        stats.check_ins as u64, recorded,
        "every recorded check-in stored exactly once"
    );
    eprintln!(
        "{recorded} check-ins from {DEVICES} devices across two rolling restarts ({} syncs failed on a draining or absent node); all stored once",
        progress.failed_syncs.load(Ordering::SeqCst)
    );
    node_a.shutdown().await;
    node_b.shutdown().await;
    db.cleanup().await;
    Ok(())
}
