//! The real `patrolsync` binary as an operator runs it: admin commands, `serve`, SIGKILL in
//! the middle of a long push and a restart on the same data, and a clean Ctrl-C. Runs on SQLite
//! and, when PATROLSYNC_TEST_DATABASE_URL is set, on PostgreSQL.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use patrolsync_proto::CheckInOutcome;
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn};
use patrolsync_server::blobs::Blobs;
use patrolsync_server::testkit::{setup_name, test_databases, test_databases_and_photo_stores};

mod common;
use common::{BIN, admin, free_port, photo_config, serve, serve_command, serve_with, start};

/// Seeds the demo grid with the admin CLI and returns a one-time code for alice (S1-C1) that
/// dials `port`.
fn seed_and_enroll(data: &Path, db: Option<&str>, port: u16) -> anyhow::Result<String> {
    let seeded = admin(data, db, &["seed-demo"])?;
    assert_eq!(seeded["checkpoints"], 240);
    let server = format!("127.0.0.1:{port}");
    let args = [
        "enroll",
        "--user",
        "alice",
        "--role",
        "patroller",
        "--grid",
        "S1-C1",
        "--server",
        &server,
    ];
    let issued = admin(data, db, &args)?;
    Ok(issued["enrollment"]
        .as_str()
        .expect("enrollment string")
        .to_owned())
}

fn sdk_config() -> ClientConfig {
    ClientConfig {
        batch_size: 50,
        max_in_flight: 2,
        connect_timeout: Duration::from_secs(2),
        // A killed server sends nothing more; don't sit out the default 30 s.
        request_timeout: Duration::from_secs(3),
        max_attempts: 1,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_push_then_restart_loses_and_doubles_nothing() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let url = db.url.clone();
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let port = free_port();

        let code = seed_and_enroll(&data, url.as_deref(), port)?;

        let mut server = serve(&data, url.as_deref(), port)?;
        let device = Client::open(dir.path().join("phone"), sdk_config()).await?;
        device.enroll(&code, None, "phone").await?;
        const N: usize = 3000;
        let mut ids = HashSet::new();
        for i in 0..N {
            let c = NewCheckIn::new(
                format!("S1-C1-K{}-B{}-P1", i % 4 + 1, i % 5 + 1),
                CheckInOutcome::Inspected,
            );
            ids.insert(device.record_checkin(c).await?.to_string());
        }

        let syncing = tokio::spawn({
            let device = device.clone();
            async move { device.sync().await }
        });
        // Kill the server as soon as the first batches are acknowledged.
        let deadline = Instant::now() + Duration::from_secs(60);
        while device.status().await?.pending_ops == N as u64 {
            anyhow::ensure!(Instant::now() < deadline, "no batch was acknowledged");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.kill()?;
        let interrupted = syncing.await?;
        assert!(
            matches!(interrupted, Err(patrolsync_sdk::SyncError::Network { .. })),
            "{backend}: the sync must have been cut mid-push by the network, got {interrupted:?}"
        );
        let pending = device.status().await?.pending_ops;
        assert!(
            pending > 0 && pending < N as u64,
            "{backend}: part of the outbox was acknowledged ({pending} left)"
        );

        let server = serve(&data, url.as_deref(), port)?;
        let summary = device.sync().await?;
        assert_eq!(summary.remaining, 0, "{backend}: {summary:?}");
        assert_eq!(device.status().await?.pending_ops, 0);

        let stats = admin(&data, url.as_deref(), &["stats"])?;
        assert_eq!(
            stats["check_ins"], N,
            "{backend}: no check-in lost or doubled"
        );
        let stored = admin(&data, url.as_deref(), &["check-ins", "--limit", "10000"])?;
        let stored: HashSet<String> = stored
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(
            stored, ids,
            "{backend}: exactly the recorded check-ins are stored"
        );

        // Ctrl-C drains and exits cleanly.
        let pid = server.id().to_string();
        let status = Command::new("kill").args(["-INT", &pid]).status()?;
        assert!(status.success());
        let (status, log) = server.wait_with_log()?;
        assert!(status.success(), "{backend}: serve exited with {status:?}");
        assert!(log.contains("stopped"), "{backend}: {log}");
        db.cleanup().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_upload_resumes_from_the_durable_offset() -> anyhow::Result<()> {
    for (db, photos) in test_databases_and_photo_stores().await {
        let backend = setup_name(&db, &photos);
        let url = db.url.clone();
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let port = free_port();
        let code = seed_and_enroll(&data, url.as_deref(), port)?;
        let server_config = photo_config(dir.path(), &photos)?;
        let mut server = serve_with(&data, url.as_deref(), port, Some(&server_config))?;
        // What the server holds, read the way the server reads it (a file or S3 chunks).
        let blobs = Blobs::open(&photos, &data)?;

        // A slow rural link: 1 MB/s, so the upload takes a few seconds.
        let config = ClientConfig {
            photo_upload_rate: Some(1_000_000),
            ..sdk_config()
        };
        let device = Client::open(dir.path().join("phone"), config).await?;
        device.enroll(&code, None, "phone").await?;
        const SIZE: usize = 4_000_000;
        let photo: Vec<u8> = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
        let file = dir.path().join("p.jpg");
        std::fs::write(&file, &photo)?;
        let sha = device.add_photo(&file).await?;
        let mut c = NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
        c.photos = vec![sha];
        device.record_checkin(c).await?;

        let owner = device.status().await?.device_id.expect("enrolled");
        let syncing = tokio::spawn({
            let device = device.clone();
            async move { device.sync().await }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while blobs.held(&sha, &owner).await?.bytes < 1_500_000 {
            anyhow::ensure!(
                Instant::now() < deadline,
                "{backend}: the upload never got going"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.kill()?;
        let cut = syncing.await?;
        assert!(
            matches!(&cut, Err(patrolsync_sdk::SyncError::Network { .. })),
            "{backend}: the sync was cut: {cut:?}"
        );
        let held = blobs.held(&sha, &owner).await?.bytes;
        assert!(
            held >= 1_500_000 && (held as usize) < SIZE,
            "{backend}: {held}"
        );

        let server = serve_with(&data, url.as_deref(), port, Some(&server_config))?;
        let resumed = device.sync().await?;
        assert_eq!(resumed.photos_uploaded, 1, "{backend}: {resumed:?}");
        assert_eq!(
            resumed.photo_bytes_sent,
            SIZE as u64 - held,
            "{backend}: resumed from the durable offset, not zero"
        );
        let stats = admin(&data, url.as_deref(), &["stats"])?;
        assert_eq!(
            (stats["blobs"].as_i64(), stats["missing_photos"].as_i64()),
            (Some(1), Some(0)),
            "{backend}"
        );
        let out = dir.path().join("back.jpg");
        device.download_photo(sha, &out).await?;
        assert_eq!(std::fs::read(&out)?, photo, "{backend}");
        let mut server = server;
        server.kill()?;
        db.cleanup().await;
    }
    Ok(())
}

#[test]
fn bad_config_fails_before_binding_with_a_clear_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[limits]\nmax_ops_per_push = 0\n")?;
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_ops_per_push"), "{err}");
    Ok(())
}

/// A raw QUIC connection presenting the device certificate in `device_dir`, trusting the CA in
/// `data`.
async fn raw_device_connection(
    data: &Path,
    device_dir: &Path,
    port: u16,
) -> anyhow::Result<(quinn::Endpoint, quinn::Connection)> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(data.join("ca.crt"))?)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(std::fs::read(
                device_dir.join("device.crt"),
            )?)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(std::fs::read(
                device_dir.join("device.key"),
            )?)),
        )?;
    tls.alpn_protocols = vec![patrolsync_proto::ALPN_V1.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(crypto)));
    let conn = endpoint
        .connect(format!("127.0.0.1:{port}").parse()?, "localhost")?
        .await?;
    Ok((endpoint, conn))
}

/// One Hello on `conn`.
async fn raw_hello(conn: &quinn::Connection) -> anyhow::Result<()> {
    use patrolsync_proto::{frame, wire};
    let (mut send, mut recv) = conn.open_bi().await?;
    let request = wire::Request {
        kind: Some(wire::request::Kind::Hello(wire::Hello::default())),
    };
    send.write_all(&frame::encode(&request)).await?;
    send.finish()?;
    let body = recv.read_to_end(1 << 20).await?;
    let response: wire::Response = frame::decode(&body[frame::HEADER_LEN..])?;
    anyhow::ensure!(
        matches!(response.kind, Some(wire::response::Kind::Hello(_))),
        "{response:?}"
    );
    Ok(())
}

/// The server is SIGKILLed and a new process starts on the same data dir and port. A device
/// that was connected to the old process learns at its next packet that the connection is
/// gone — a stateless reset it recognizes, because the reset key is persisted in the data dir —
/// instead of waiting out the idle timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_resets_the_old_processs_connections_at_once() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let url = db.url.clone();
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        let port = free_port();
        let code = seed_and_enroll(&data, url.as_deref(), port)?;
        let mut node = serve(&data, url.as_deref(), port)?;
        let device_dir = dir.path().join("phone");
        let device = Client::open(&device_dir, sdk_config()).await?;
        device.enroll(&code, None, "phone").await?;
        let (_endpoint, conn) = raw_device_connection(&data, &device_dir, port).await?;
        raw_hello(&conn).await?;

        node.kill()?;
        let _node = serve(&data, url.as_deref(), port)?;
        let started = Instant::now();
        // quinn's idle timeout is 30 s: an unrecognized reset would end in a timeout instead.
        let outcome = tokio::time::timeout(Duration::from_secs(25), raw_hello(&conn)).await;
        assert!(
            matches!(outcome, Ok(Err(_))),
            "{backend}: the old connection should fail fast, got {outcome:?}"
        );
        let reason = conn.close_reason();
        assert!(
            matches!(reason, Some(quinn::ConnectionError::Reset)),
            "{backend}: expected a stateless reset, got {reason:?}"
        );
        println!(
            "{backend}: old connection reset {} ms after the new process was up",
            started.elapsed().as_millis()
        );
        db.cleanup().await;
    }
    Ok(())
}

/// SECURITY.md: enrollment codes never appear in the server's log, whether the code works, is
/// wrong or was used already; the log is read at its most verbose (`PATROLSYNC_LOG=debug`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_codes_never_reach_the_log() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let port = free_port();
    let enrollment = seed_and_enroll(&data, None, port)?;
    let code = enrollment
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("a code in the enrollment string")
        .to_owned();
    // A code of the same shape that was never issued.
    let wrong_code: String = code
        .chars()
        .map(|c| if c == '-' { c } else { 'Z' })
        .collect();
    let wrong = enrollment.replace(&code, &wrong_code);

    let log_path = dir.path().join("server.log");
    let mut cmd = serve_command(&data, None, port, None);
    cmd.env("PATROLSYNC_LOG", "debug")
        .stderr(std::fs::File::create(&log_path)?);
    let mut server = start(cmd)?;
    let phone = |name: &str| Client::open(dir.path().join(name), sdk_config());
    let refused_wrong = phone("a").await?.enroll(&wrong, None, "a").await;
    phone("b").await?.enroll(&enrollment, None, "b").await?;
    let refused_used = phone("c").await?.enroll(&enrollment, None, "c").await;
    server.kill()?;
    for refused in [&refused_wrong, &refused_used] {
        assert!(
            matches!(refused, Err(patrolsync_sdk::EnrollError::Refused(_))),
            "{refused:?}"
        );
    }

    let log = std::fs::read_to_string(&log_path)?;
    // The log is there and saw all three attempts.
    assert!(log.contains("device enrolled"), "{log}");
    assert_eq!(log.matches("enrollment refused").count(), 2, "{log}");
    // Not the code, nor any 8 characters of it, in any case, with or without its dashes.
    let lower = log.to_lowercase();
    for secret in [&code, &wrong_code] {
        let bare: Vec<char> = secret
            .to_lowercase()
            .chars()
            .filter(|c| *c != '-')
            .collect();
        assert!(bare.len() >= 16, "{secret}");
        for window in bare.windows(8) {
            let piece: String = window.iter().collect();
            assert!(
                !lower.contains(&piece),
                "the log holds part of a code: {piece}"
            );
        }
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "the log holds a code"
        );
    }
    // Nor the admin token or any key: no line of a PEM body, no hex of a binary key.
    let mut secrets = 0;
    for entry in std::fs::read_dir(&data)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !(name.ends_with(".key") || name == "admin.token") {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let pieces: Vec<String> = if text.contains("-----BEGIN") || name == "admin.token" {
            text.lines()
                .filter(|l| !l.starts_with("-----") && l.trim().len() >= 16)
                .map(|l| l.trim().to_owned())
                .collect()
        } else {
            vec![hex::encode(&bytes)]
        };
        for piece in pieces {
            secrets += 1;
            assert!(!log.contains(&piece), "the log holds part of {name}");
        }
    }
    assert!(secrets >= 4, "found only {secrets} secrets to look for");
    Ok(())
}
