//! Two `patrolsync serve` processes on one PostgreSQL: both start together on an empty database
//! (migrations once), the second adopts the first's CA and keys, a change through one node
//! wakes a device on the other within a second (LISTEN/NOTIFY, no polling), edits flow back,
//! and when a node dies its device moves to the other node and finishes its half-done photo
//! upload from the shared staging. Needs PostgreSQL (`PATROLSYNC_TEST_DATABASE_URL`); photos
//! go to S3 when `PATROLSYNC_TEST_S3` is set, else to a directory both nodes share.

mod common;

use std::time::{Duration, Instant};

use common::{admin, free_port, photo_config, serve_with};
use patrolsync_proto::CheckInOutcome;
use patrolsync_proto::hazard::{FieldValue, Handling, HazardCategory, Severity};
use patrolsync_sdk::{Client, ClientConfig, EngineOptions, NewCheckIn, NewHazard, SyncEvent};
use patrolsync_server::blobs::Blobs;
use patrolsync_server::config::Photos;
use patrolsync_server::testkit::{ENV_TEST_DATABASE_URL, fresh_postgres, test_s3_photos};

fn client_config(servers: &str) -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(2),
        // A killed node sends nothing more; don't sit out the default 30 s.
        request_timeout: Duration::from_secs(3),
        max_attempts: 1,
        // Two nodes behind one name, as DNS round-robin would give them.
        server_override: Some(servers.to_owned()),
        ..ClientConfig::default()
    }
}

fn enrollment(
    data: &std::path::Path,
    db: &str,
    user: &str,
    role: &str,
    grid: &str,
    port: u16,
) -> anyhow::Result<String> {
    let server = format!("127.0.0.1:{port}");
    let args = [
        "enroll", "--user", user, "--role", role, "--grid", grid, "--server", &server,
    ];
    let issued = admin(data, Some(db), &args)?;
    Ok(issued["enrollment"]
        .as_str()
        .expect("enrollment string")
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_changes_keys_and_photo_uploads() -> anyhow::Result<()> {
    let Ok(url) = std::env::var(ENV_TEST_DATABASE_URL) else {
        patrolsync_server::testkit::skip(
            "the two-node test",
            &format!("{ENV_TEST_DATABASE_URL} is not set"),
        );
        return Ok(());
    };
    let db = fresh_postgres(&url).await;
    let db_url = db.url.clone().expect("postgres url");
    let dir = tempfile::tempdir()?;
    // S3 when configured (what a cluster uses), else one directory both nodes mount.
    let photos = test_s3_photos().unwrap_or_else(|| Photos {
        path: Some(dir.path().join("shared-blobs")),
        ..Photos::default()
    });
    let config = photo_config(dir.path(), &photos)?;
    let (data_a, data_b) = (dir.path().join("node-a"), dir.path().join("node-b"));
    let (port_a, port_b) = (free_port(), free_port());

    // Both nodes start at once on the empty database: one runs the migrations, the other waits.
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking({
            let (data, url, config) = (data_a.clone(), db_url.clone(), config.clone());
            move || serve_with(&data, Some(&url), port_a, Some(&config))
        }),
        tokio::task::spawn_blocking({
            let (data, url, config) = (data_b.clone(), db_url.clone(), config.clone());
            move || serve_with(&data, Some(&url), port_b, Some(&config))
        }),
    );
    let (mut node_a, mut node_b) = (a??, b??);
    assert_eq!(
        std::fs::read(data_a.join("ca.crt"))?,
        std::fs::read(data_b.join("ca.crt"))?,
        "both nodes serve under the cluster's one CA"
    );
    admin(&data_a, Some(&db_url), &["seed-demo"])?;

    let servers = format!("127.0.0.1:{port_a},127.0.0.1:{port_b}");
    // X enrolls through node A's admin, Y through node B's.
    let x = Client::open(dir.path().join("x"), client_config(&servers)).await?;
    x.enroll(
        &enrollment(&data_a, &db_url, "alice", "patroller", "S1-C1", port_a)?,
        None,
        "x",
    )
    .await?;
    let y = Client::open(
        dir.path().join("y"),
        client_config(&format!("127.0.0.1:{port_b}")),
    )
    .await?;
    y.enroll(
        &enrollment(&data_b, &db_url, "bob", "grid_manager", "S1", port_b)?,
        None,
        "y",
    )
    .await?;

    // Y listens on node B with a timer far longer than the test: only Notify can wake it.
    let engine = y.start_engine(EngineOptions {
        interval: Duration::from_secs(3600),
        ..EngineOptions::default()
    });
    let mut events = engine.subscribe();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await?? {
            SyncEvent::Finished(s) if s.cursor > 0 => break,
            SyncEvent::Failed { error, .. } => anyhow::bail!("bootstrap failed: {error}"),
            _ => {}
        }
    }
    // Let the listener's connection register before the change happens.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let id = x
        .report_hazard(NewHazard {
            grid_cell: "S1-C1-K2".into(),
            checkpoint: None,
            position: None,
            category: HazardCategory::BlockedFireLane,
            severity: Severity::General,
            handling: Handling::ByDeadline,
            deadline_ms: Some(4_000_000_000_000),
            description: "bikes block the fire lane".into(),
            photos: Vec::new(),
        })
        .await?;
    let pushed = Instant::now();
    x.sync().await?; // through node A, the first address
    let deadline = pushed + Duration::from_secs(1);
    let mut notified = false;
    while y.hazard(id).await?.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        anyhow::ensure!(
            !left.is_zero(),
            "the hazard reported on node A did not reach Y on node B within 1 s (notified: {notified})"
        );
        if let Ok(Ok(SyncEvent::Notified { .. })) = tokio::time::timeout(left, events.recv()).await
        {
            notified = true;
        }
    }
    while let Ok(e) = events.try_recv() {
        notified |= matches!(e, SyncEvent::Notified { .. });
    }
    assert!(notified, "it came through Notify from the other node");
    eprintln!(
        "node A → node B: hazard visible on Y {:?} after the push",
        pushed.elapsed()
    );
    engine.stop().await;

    // Y edits through node B; X sees it through node A.
    y.edit_hazard(
        id,
        FieldValue::Description("bikes and a sofa in the lane".into()),
    )
    .await?;
    y.sync().await?;
    x.sync().await?;
    let seen = x.hazard(id).await?.expect("X has the hazard");
    assert_eq!(seen.state.description.value, "bikes and a sofa in the lane");

    // X uploads a photo over a slow link to node A, which dies half way.
    let slow = ClientConfig {
        photo_upload_rate: Some(1_000_000),
        ..client_config(&servers)
    };
    drop(x);
    let x = Client::open(dir.path().join("x"), slow).await?;
    const SIZE: usize = 4_000_000;
    let photo: Vec<u8> = (0..SIZE).map(|i| (i * 13 % 251) as u8).collect();
    let file = dir.path().join("p.jpg");
    std::fs::write(&file, &photo)?;
    let sha = x.add_photo(&file).await?;
    let mut c = NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
    c.photos = vec![sha];
    x.record_checkin(c).await?;
    let blobs = Blobs::open(&photos, &data_a)?;
    let owner = x.status().await?.device_id.expect("enrolled device");
    let syncing = tokio::spawn({
        let x = x.clone();
        async move { x.sync().await }
    });
    let until = Instant::now() + Duration::from_secs(30);
    while blobs.held(&sha, &owner).await?.bytes < 1_500_000 {
        anyhow::ensure!(Instant::now() < until, "the upload never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node_a.kill()?;
    let cut = syncing.await?;
    assert!(
        matches!(&cut, Err(patrolsync_sdk::SyncError::Network { .. })),
        "the sync through node A was cut: {cut:?}"
    );
    let held = blobs.held(&sha, &owner).await?.bytes;
    assert!(held >= 1_500_000 && (held as usize) < SIZE, "{held}");

    // Node A is gone: X moves to node B and sends only what the cluster does not hold.
    let resumed = x.sync().await?;
    assert_eq!(resumed.photos_uploaded, 1, "{resumed:?}");
    assert_eq!(
        resumed.photo_bytes_sent,
        SIZE as u64 - held,
        "resumed on node B from what node A had staged"
    );
    let stats = admin(&data_b, Some(&db_url), &["stats"])?;
    assert_eq!(stats["check_ins"].as_i64(), Some(1));
    let out = dir.path().join("back.jpg");
    x.download_photo(sha, &out).await?;
    assert_eq!(std::fs::read(&out)?, photo, "the photo is whole");

    node_b.kill()?;
    db.cleanup().await;
    Ok(())
}
