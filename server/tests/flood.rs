//! A flood of strangers: 1,000 connections without a device certificate, each opening every
//! stream it is allowed and announcing the largest frame an unenrolled connection may send,
//! then sending almost nothing. The real server binary's resident memory may grow by at most
//! 64 MiB, and an enrolled device keeps syncing meanwhile (its sync time is printed beside one
//! taken before the flood; no timing is asserted).

use std::sync::Arc;
use std::time::{Duration, Instant};

use patrolsync_proto::CheckInOutcome;
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

mod common;
use common::{admin, free_port, serve_with};

const STRANGERS: usize = 1000;
/// What an unenrolled connection may announce (the server's limit for it).
const ANNOUNCED: u32 = 64 * 1024;

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for {pid}"))
}

/// Records 20 check-ins and syncs them; how long the sync took.
async fn sync_twenty(device: &Client, at: &str) -> anyhow::Result<Duration> {
    for i in 0..20 {
        let c = NewCheckIn::new(
            format!("S1-C1-K1-B{}-P1", i % 5 + 1),
            CheckInOutcome::Inspected,
        );
        device.record_checkin(c).await?;
    }
    let t = Instant::now();
    let s = device.sync().await?;
    anyhow::ensure!(s.applied == 20, "{at}: {s:?}");
    Ok(t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_strangers_announcing_frames_hold_little_memory() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let port = free_port();
    admin(&data, None, &["seed-demo"])?;
    let server_addr = format!("127.0.0.1:{port}");
    let issued = admin(
        &data,
        None,
        &[
            "enroll",
            "--user",
            "alice",
            "--role",
            "patroller",
            "--grid",
            "S1-C1",
            "--server",
            &server_addr,
        ],
    )?;
    let code = issued["enrollment"].as_str().expect("code").to_owned();
    // Room for all of them from one address: this measures what each one costs, not the cap.
    let config = dir.path().join("limits.toml");
    std::fs::write(
        &config,
        format!(
            "[limits]\nunenrolled_connections = {n}\nunenrolled_connections_per_address = {n}\n\
             enrolls_per_minute_per_address = 100.0\n",
            n = STRANGERS + 10
        ),
    )?;
    let node = serve_with(&data, None, port, Some(&config))?;
    let pid = node.id();

    let device = Client::open(
        dir.path().join("phone"),
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            ..ClientConfig::default()
        },
    )
    .await?;
    device.enroll(&code, None, "phone").await?;
    let idle = sync_twenty(&device, "before the flood").await?;
    let before = rss_kib(pid)?;

    // The strangers: trust the server's CA, present no certificate.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(data.join("ca.crt"))?)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![patrolsync_proto::ALPN_V1.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let mut header = ANNOUNCED.to_be_bytes().to_vec();
    header.extend_from_slice(&[0u8; 16]);
    let mut held = Vec::with_capacity(STRANGERS);
    let mut streams = 0;
    for batch in 0..STRANGERS / 50 {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (endpoint, header) = (endpoint.clone(), header.clone());
            let addr = server_addr.parse()?;
            tasks.spawn(async move {
                let conn = endpoint.connect(addr, "localhost")?.await?;
                // Every stream the server grants an unenrolled connection.
                let mut sends = Vec::new();
                while let Ok(Ok((mut send, recv))) =
                    tokio::time::timeout(Duration::from_millis(300), conn.open_bi()).await
                {
                    send.write_all(&header).await?;
                    sends.push((send, recv));
                }
                anyhow::Ok((conn, sends))
            });
        }
        while let Some(r) = tasks.join_next().await {
            let (conn, sends) = r??;
            streams += sends.len();
            held.push((conn, sends));
        }
        if batch % 5 == 4 {
            eprintln!("{} strangers connected", held.len());
        }
    }
    // While they are all there, the device syncs.
    let flooded = sync_twenty(&device, "during the flood").await?;
    let mut peak = 0;
    for _ in 0..10 {
        peak = peak.max(rss_kib(pid)?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let grew = peak.saturating_sub(before);
    eprintln!(
        "{} strangers with {streams} streams announcing {ANNOUNCED} B each: server RSS {before} KiB \
         before, {peak} KiB at most during (+{} MiB); the device's sync of 20 check-ins took {:?} \
         idle and {:?} during the flood",
        held.len(),
        grew / 1024,
        idle,
        flooded
    );
    assert_eq!(held.len(), STRANGERS);
    assert!(
        streams <= 2 * STRANGERS,
        "an unenrolled connection gets two streams at most: {streams}"
    );
    assert!(grew <= 64 * 1024, "RSS grew by {grew} KiB");
    // The strangers leave; the server stays and serves.
    drop(held);
    let again = sync_twenty(&device, "after the flood").await?;
    eprintln!("and {again:?} after it");
    Ok(())
}
