//! `patrolsync-bench`: a simulated fleet against a real `patrolsync` server, every figure next to
//! a baseline measured in the same run. See README.md ("Benchmark") for how to run it and the
//! latest results.

mod converge;
mod fleet;
mod reports;
mod server;
mod soak;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use patrolsync_proto::{Role, wire};
use serde_json::{Value, json};

use fleet::{Device, Fleet};
use server::ServerProc;

/// A simulated patrol fleet against a real server; JSON report plus a human summary.
#[derive(Parser, Debug)]
#[command(name = "patrolsync-bench", version)]
struct Args {
    /// Small sizes (under a minute): checks the benchmark works; asserts no timing.
    #[arg(long)]
    quick: bool,
    /// Store backend of the server under test (and of the ingest baseline); with --server, name
    /// the backend that server runs on.
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    backend: String,
    /// PostgreSQL to create the benchmark database next to (for --backend postgres).
    #[arg(
        long,
        env = "PATROLSYNC_TEST_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres_url: String,
    /// Concurrent devices pushing (workload 1) and listening (workload 6).
    #[arg(long)]
    devices: Option<usize>,
    /// Idle connected devices (workload 5).
    #[arg(long)]
    idle: Option<usize>,
    /// Where the JSON report and summary go.
    #[arg(long, default_value = "tests/bench/results")]
    out: PathBuf,
    /// Target a running server at HOST:PORT instead of starting one. The benchmark then does
    /// the admin side (enrollment codes, seeding) on that server's --data-dir and
    /// --database-url, as `patrolsync admin` would; it seeds the demo city (and, in a full run,
    /// the synthetic city) into it, so use a server of its own.
    #[arg(long, requires = "data_dir")]
    server: Option<std::net::SocketAddr>,
    /// The --server's data dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The --server's database URL (default: SQLite in its data dir).
    #[arg(long)]
    database_url: Option<String>,
    /// The --server's process id, to report its CPU time and memory (same machine only).
    #[arg(long)]
    server_pid: Option<u32>,
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(clap::Subcommand, Debug)]
enum Mode {
    /// Mixed load from real SDK devices on faulty links, with network switches, blackholes and
    /// server SIGKILLs, for --duration; then a convergence check (exit status 1 if it fails).
    /// Writes soak-BACKEND.json and .txt to --out.
    Soak(soak::SoakArgs),
    /// The synthetic city and a month of check-ins in a fresh database, then the compliance
    /// report, the evaluation and a ledger over the month, timed beside reading the month's
    /// rows. Writes reports-BACKEND.json and .txt to --out.
    Reports(reports::ReportsArgs),
    /// The randomized convergence check over many seeds (scopes that change under devices,
    /// restarts, every transition); each failure shrunk and reported with its seed. Writes
    /// converge-BACKEND.json and .txt to --out; exit status 1 if a seed did not converge.
    Converge(converge::ConvergeArgs),
}

/// Sizes of one run.
struct Sizes {
    devices: usize,
    batches: usize,
    photo_devices: usize,
    photo_bytes: usize,
    backlog_ops: usize,
    backlog_photos: usize,
    idle: usize,
    city: bool,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn s1_checkpoints() -> Vec<String> {
    let mut out = Vec::new();
    for c in 1..=3 {
        for k in 1..=4 {
            for b in 1..=5 {
                for p in 1..=2 {
                    out.push(format!("S1-C{c}-K{k}-B{b}-P{p}"));
                }
            }
        }
    }
    out
}

/// Enrolls and connects `codes.len()` devices, `parallel` at a time.
async fn enroll_fleet(
    fleet: &Fleet,
    first: usize,
    codes: Vec<String>,
    parallel: usize,
) -> anyhow::Result<Vec<Device>> {
    let results: Vec<anyhow::Result<(usize, Device)>> =
        futures_util::stream::iter(codes.into_iter().enumerate())
            .map(|(i, enrollment)| {
                let fleet = fleet.clone();
                async move {
                    let code: patrolsync_proto::enrollment::EnrollmentString =
                        enrollment.parse().context("enrollment string")?;
                    let creds = fleet.enroll(first + i, &code.code).await?;
                    Ok((i, fleet.connect(first + i, &creds).await?))
                }
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
    let mut devices: Vec<(usize, Device)> = results.into_iter().collect::<Result<_, _>>()?;
    devices.sort_by_key(|(i, _)| *i);
    Ok(devices.into_iter().map(|(_, d)| d).collect())
}

/// Workload 1: concurrent devices push batches of 50 check-ins; baseline: the store's own
/// group-commit ingest of the same rows in the same batches, no network.
async fn ingest(
    srv: &ServerProc,
    baseline_store: Arc<dyn patrolsync_server::store::Store>,
    devices: &mut [Device],
    batches: usize,
) -> anyhow::Result<Value> {
    let points = s1_checkpoints();
    let build = |d: &mut Device, batches: usize| -> Vec<Vec<wire::Op>> {
        (0..batches)
            .map(|b| {
                (0..50)
                    .map(|j| {
                        d.seq += 1;
                        let k = b * 50 + j;
                        fleet::check_in(
                            d.seq,
                            &points[k % points.len()],
                            (k as i64 + 1) * 180_000,
                            Vec::new(),
                        )
                    })
                    .collect()
            })
            .collect()
    };
    let frames: Vec<Vec<Vec<u8>>> = devices
        .iter_mut()
        .map(|d| {
            build(d, batches)
                .into_iter()
                .map(fleet::push_frame)
                .collect()
        })
        .collect();
    let cpu0 = srv.cpu_ms();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (d, frames) in devices.iter().zip(frames) {
        let conn = d.conn.clone();
        tasks.spawn(async move {
            let mut lat = Vec::with_capacity(frames.len());
            let mut applied = 0;
            for f in frames {
                let t = Instant::now();
                applied += fleet::push(&conn, &f).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok((applied, lat))
        });
    }
    let (mut applied, mut lat) = (0usize, Vec::new());
    while let Some(r) = tasks.join_next().await {
        let (a, l) = r??;
        applied += a;
        lat.extend(l);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_ms = srv.cpu_ms() - cpu0;
    anyhow::ensure!(
        applied == devices.len() * batches * 50,
        "only {applied} of {} check-ins applied",
        devices.len() * batches * 50
    );
    lat.sort_by(f64::total_cmp);
    let rate = applied as f64 / elapsed;

    // One device alone, for the backlog comparison.
    let single_batches = batches.max(4);
    let single: Vec<Vec<u8>> = build(&mut devices[0], single_batches)
        .into_iter()
        .map(fleet::push_frame)
        .collect();
    let t = Instant::now();
    for f in &single {
        fleet::push(&devices[0].conn, f).await?;
    }
    let single_rate = (single_batches * 50) as f64 / t.elapsed().as_secs_f64();

    // Baseline: the same rows in the same batches through the server's own validation and
    // group commit, in this process on a database of its own (same backend and durability),
    // no network. A second process on the server's SQLite file would measure cross-process
    // cache invalidation instead.
    let store = baseline_store.clone();
    patrolsync_server::seed::seed_demo(store.as_ref()).await?;
    let writers = match store.backend() {
        patrolsync_server::store::Backend::Sqlite => 1,
        patrolsync_server::store::Backend::Postgres => 4,
    };
    let ingestor = patrolsync_server::ingest::Ingestor::start(
        store.clone(),
        writers,
        patrolsync_server::now_ms,
    );
    let mut work = Vec::new();
    for (i, d) in devices.iter_mut().enumerate() {
        let code = format!("baseline-{i}");
        let hash = patrolsync_server::enroll::hash_code(&code);
        store
            .create_enrollment(
                &patrolsync_server::store::NewEnrollment {
                    code_hash: hash,
                    user: format!("baseline-{i}"),
                    role: Role::Patroller,
                    cells: vec!["S1".into()],
                    expires_at_ms: fleet::now_ms() + 3_600_000,
                    agency: None,
                },
                fleet::now_ms(),
            )
            .await?;
        let mut fp = [0u8; 32];
        fp[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let session = store
            .redeem_enrollment(
                &hash,
                &patrolsync_server::store::NewDevice {
                    id: patrolsync_proto::DeviceId(uuid::Uuid::now_v7()),
                    name: format!("baseline-{i}"),
                    cert_sha256: fp,
                    app_version: "patrolsync-bench".into(),
                },
                fleet::now_ms(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut shadow = Device {
            conn: d.conn.clone(),
            seq: 0,
        };
        work.push((session, build(&mut shadow, batches)));
    }
    let t = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (session, batches) in work {
        let (ingestor, store) = (ingestor.clone(), store.clone());
        tasks.spawn(async move {
            for ops in batches {
                let batch = patrolsync_server::ingest::prepare(
                    store.as_ref(),
                    &session,
                    ops,
                    fleet::now_ms(),
                )
                .await?;
                ingestor
                    .commit(batch)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let baseline = applied as f64 / t.elapsed().as_secs_f64();
    Ok(json!({
        "devices": devices.len(),
        "batch": 50,
        "check_ins": applied,
        "seconds": elapsed,
        "check_ins_per_s": rate,
        "ack_ms": { "p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99), "max": lat.last().copied().unwrap_or(0.0) },
        "single_device_check_ins_per_s": single_rate,
        "server_cpu_ms_per_1000_check_ins": cpu_ms as f64 * 1000.0 / applied as f64,
        "baseline": { "what": "the server's validation and group-commit ingest of the same rows and batches, in-process, no network", "check_ins_per_s": baseline },
        "ratio": rate / baseline,
        "target_ratio": 0.5,
    }))
}

/// Workload 2: UDP bytes per check-in (quinn's counters), batches of 1, 10 and 50.
async fn wire_cost(srv: &ServerProc, fleet: &Fleet, first: usize) -> anyhow::Result<Value> {
    // A device per batch size, so each starts with a full push bucket and nothing is refused
    // (a refused push would count its bytes without storing anything).
    let codes = srv
        .codes("bench-wire", 3, Role::Patroller, &["S1".into()])
        .await?;
    let points = s1_checkpoints();
    let mut rows = Vec::new();
    let mut json_bytes = 0usize;
    for (n, (batch, total)) in [(1usize, 30usize), (10, 300), (50, 1000)]
        .into_iter()
        .enumerate()
    {
        let code: patrolsync_proto::enrollment::EnrollmentString = codes[n].parse()?;
        let creds = fleet.enroll(first + n, &code.code).await?;
        let d = fleet.connect(first + n, &creds).await?;
        let mut seq = d.seq;
        let s0 = d.conn.stats();
        let mut k = 0;
        while k < total {
            let ops: Vec<wire::Op> = (0..batch)
                .map(|j| {
                    seq += 1;
                    fleet::check_in(
                        seq,
                        &points[(k + j) % points.len()],
                        (k + j + 1) as i64 * 180_000,
                        Vec::new(),
                    )
                })
                .collect();
            json_bytes = fleet::check_in_json(&ops[0]).len();
            fleet::push(&d.conn, &fleet::push_frame(ops)).await?;
            k += batch;
        }
        let s1 = d.conn.stats();
        d.conn.close(0u32.into(), b"done");
        let setup = s0.udp_tx.bytes + s0.udp_rx.bytes;
        let (tx, rx) = (
            s1.udp_tx.bytes - s0.udp_tx.bytes,
            s1.udp_rx.bytes - s0.udp_rx.bytes,
        );
        rows.push(json!({
            "batch": batch,
            "check_ins": total,
            "bytes_per_check_in": (tx + rx) as f64 / total as f64,
            "sent_per_check_in": tx as f64 / total as f64,
            "received_per_check_in": rx as f64 / total as f64,
            "datagrams": (s1.udp_tx.datagrams - s0.udp_tx.datagrams) + (s1.udp_rx.datagrams - s0.udp_rx.datagrams),
            "bytes_per_check_in_with_handshake": (setup + tx + rx) as f64 / total as f64,
            "handshake_and_hello_bytes": setup,
        }));
    }
    Ok(json!({
        "batches": rows,
        "baseline": { "what": "the same check-in as compact JSON (payload only, no HTTP, TLS or TCP)", "bytes": json_bytes },
        "target_bytes_per_check_in_at_50": 150,
    }))
}

/// A deterministic photo of `size` bytes, different per `seed`.
fn photo(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    patrolsync_proto::digest::sha256(bytes).to_vec()
}

/// Workload 3: photos uploaded at once; baseline: raw quinn streams of the same bytes.
async fn photos(
    srv: &ServerProc,
    fleet: &Fleet,
    first: usize,
    sizes: &Sizes,
) -> anyhow::Result<Value> {
    let n = sizes.photo_devices;
    let codes = srv
        .codes("bench-photo", n, Role::Patroller, &["S1".into()])
        .await?;
    let mut devices = enroll_fleet(fleet, first, codes, 16).await?;
    // Three rounds of new photos each, and three of the baseline: short transfers on a shared
    // machine are noisy, so the medians are compared.
    let mut real = Vec::new();
    for round in 0..ROUNDS {
        let mut shots = Vec::new();
        for (i, d) in devices.iter_mut().enumerate() {
            let bytes = photo(sizes.photo_bytes, 1000 + (round * 100 + i) as u64);
            let sha = sha256(&bytes);
            d.seq += 1;
            let op = fleet::check_in(
                d.seq,
                "S1-C1-K1-B1-P1",
                60_000 + (round * 100 + i) as i64 * 1000,
                vec![sha.clone()],
            );
            fleet::push(&d.conn, &fleet::push_frame(vec![op])).await?;
            shots.push((sha, Arc::new(bytes)));
        }
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (d, (sha, bytes)) in devices.iter().zip(shots) {
            let conn = d.conn.clone();
            tasks.spawn(async move {
                let (mut send, mut recv) = conn.open_bi().await?;
                let req = patrolsync_proto::frame::encode(&wire::Request {
                    kind: Some(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
                        sha256: sha,
                        size: bytes.len() as u64,
                        offset: 0,
                    })),
                });
                send.write_all(&req).await?;
                send.write_all(&bytes).await?;
                send.finish()?;
                match fleet::read_response(&mut recv).await? {
                    wire::response::Kind::BlobUpload(u) if u.complete => anyhow::Ok(()),
                    other => anyhow::bail!("upload refused: {other:?}"),
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        real.push(started.elapsed().as_secs_f64());
    }
    let mut raw = Vec::new();
    for _ in 0..ROUNDS {
        raw.push(raw_quinn_transfer(n, sizes.photo_bytes).await?);
    }
    real.sort_by(f64::total_cmp);
    raw.sort_by(f64::total_cmp);
    let (elapsed, baseline) = (real[ROUNDS / 2], raw[ROUNDS / 2]);
    let total_mb = (n * sizes.photo_bytes) as f64 / 1e6;
    for d in devices {
        d.conn.close(0u32.into(), b"done");
    }
    Ok(json!({
        "devices": n,
        "photo_bytes": sizes.photo_bytes,
        "rounds": ROUNDS,
        "seconds_median": elapsed,
        "seconds_each": real,
        "baseline_seconds_each": raw,
        "mb_per_s": total_mb / elapsed,
        "baseline": { "what": "raw quinn streams of the same bytes on loopback, same windows, no hashing or storage", "mb_per_s": total_mb / baseline },
        "ratio": baseline / elapsed,
        "target_ratio": 0.6,
    }))
}

/// Rounds of the photo workload and its baseline.
const ROUNDS: usize = 3;

/// Seconds for `n` connections to each send `size` bytes on a stream to a bare quinn server.
async fn raw_quinn_transfer(n: usize, size: usize) -> anyhow::Result<f64> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let cert_der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)?;
    tls.alpn_protocols = vec![b"bench".to_vec()];
    let mut transport = quinn::TransportConfig::default();
    // The same windows the patrolsync server grants.
    transport
        .stream_receive_window(quinn::VarInt::from_u32(1 << 20))
        .receive_window(quinn::VarInt::from_u32(4 << 20))
        .send_window(4 << 20);
    let mut server_cfg = quinn::ServerConfig::with_crypto(Arc::new(
        quinn::crypto::rustls::QuicServerConfig::try_from(tls)?,
    ));
    server_cfg.transport_config(Arc::new(transport));
    let server = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    let acceptor = tokio::spawn(async move {
        while let Some(incoming) = server.accept().await {
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    tokio::spawn(async move {
                        while let Ok(Some(_)) = recv.read_chunk(64 * 1024, true).await {}
                        let _ = send.write_all(b"k").await;
                        let _ = send.finish();
                    });
                }
            });
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der)?;
    let mut ctls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    ctls.alpn_protocols = vec![b"bench".to_vec()];
    let client_cfg = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(ctls)?,
    ));
    let client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(
            client
                .connect_with(client_cfg.clone(), addr, "localhost")?
                .await?,
        );
    }
    let bytes = Arc::new(photo(size, 7));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for conn in conns {
        let bytes = bytes.clone();
        tasks.spawn(async move {
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(&bytes).await?;
            send.finish()?;
            let mut ack = [0u8; 1];
            recv.read_exact(&mut ack).await?;
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    let secs = started.elapsed().as_secs_f64();
    acceptor.abort();
    Ok(secs)
}

/// Workload 4a: one SDK device with a backlog of check-ins and photos comes online.
async fn backlog(
    srv: &ServerProc,
    dir: &std::path::Path,
    sizes: &Sizes,
) -> anyhow::Result<(Value, patrolsync_sdk::Client)> {
    use patrolsync_proto::CheckInOutcome;
    use patrolsync_sdk::{Client, ClientConfig, NewCheckIn};
    let code = srv
        .codes("bench-backlog", 1, Role::Patroller, &["S1".into()])
        .await?
        .remove(0);
    let client = Client::open(
        dir.join("backlog-device"),
        ClientConfig {
            photos_only_unmetered: true,
            ..ClientConfig::default()
        },
    )
    .await?;
    client.enroll(&code, None, "backlog").await?;
    let points = s1_checkpoints();
    let recording = Instant::now();
    for i in 0..sizes.backlog_ops {
        let mut c = NewCheckIn::new(&points[i % points.len()], CheckInOutcome::Inspected);
        if i < sizes.backlog_photos {
            let path = dir.join(format!("backlog-{i}.jpg"));
            std::fs::write(&path, photo(1_000_000, 5000 + i as u64))?;
            c.photos = vec![client.add_photo(&path).await?];
        }
        client.record_checkin(c).await?;
    }
    let recorded_s = recording.elapsed().as_secs_f64();
    // Records first (as on a metered network), then the photos.
    client.set_network_metered(true);
    let t = Instant::now();
    loop {
        client.sync().await?;
        if client.status().await?.pending_ops == 0 {
            break;
        }
    }
    let records_s = t.elapsed().as_secs_f64();
    client.set_network_metered(false);
    let t2 = Instant::now();
    loop {
        client.sync().await?;
        if client.status().await?.pending_photos == 0 {
            break;
        }
    }
    let photos_s = t2.elapsed().as_secs_f64();
    Ok((
        json!({
            "ops": sizes.backlog_ops,
            "photos": sizes.backlog_photos,
            "photo_bytes": 1_000_000,
            "recording_seconds": recorded_s,
            "records_seconds": records_s,
            "photos_seconds": photos_s,
            "total_seconds": records_s + photos_s,
            "check_ins_per_s": sizes.backlog_ops as f64 / records_s,
        }),
        client,
    ))
}

/// Workload 4b: a manager's bootstrap of a whole city.
async fn bootstrap(
    srv: &ServerProc,
    fleet: &Fleet,
    first: usize,
    city: bool,
) -> anyhow::Result<Value> {
    let cells: Vec<String> = if city {
        let t = Instant::now();
        patrolsync_server::seed::seed_city(srv.store.as_ref()).await?;
        eprintln!(
            "  seeded the synthetic city in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        (1..=patrolsync_server::seed::CITY[0])
            .map(|s| format!("S{s:03}"))
            .collect()
    } else {
        vec!["S1".into(), "S2".into()]
    };
    let codes = srv
        .codes("bench-manager", 1, Role::GridManager, &cells)
        .await?;
    let mut d = enroll_fleet(fleet, first, codes, 1).await?;
    let d = d.remove(0);
    let s0 = d.conn.stats();
    let t = Instant::now();
    let changes = fleet::pull_all(&d.conn, &mut fleet::Position::default(), true, |_| {}).await?;
    let secs = t.elapsed().as_secs_f64();
    let s1 = d.conn.stats();
    d.conn.close(0u32.into(), b"done");
    Ok(json!({
        "scope": if city { "synthetic city (15,799 cells, 40,000 checkpoints)" } else { "demo city (S1, S2)" },
        "changes": changes,
        "seconds": secs,
        "bytes": (s1.udp_rx.bytes + s1.udp_tx.bytes) - (s0.udp_rx.bytes + s0.udp_tx.bytes),
    }))
}

/// Workload 5: idle connected devices; server memory per connection.
async fn idle(
    srv: &ServerProc,
    fleet: &Fleet,
    first: usize,
    n: usize,
) -> anyhow::Result<(Value, Vec<Device>)> {
    let codes = srv
        .codes("bench-idle", n, Role::Patroller, &["S2".into()])
        .await?;
    // Enroll first (each enrollment is a short connection of its own), then measure connecting.
    let creds: Vec<anyhow::Result<fleet::Credentials>> =
        futures_util::stream::iter(codes.into_iter().enumerate())
            .map(|(i, e)| {
                let fleet = fleet.clone();
                async move {
                    let code: patrolsync_proto::enrollment::EnrollmentString = e.parse()?;
                    fleet.enroll(first + i, &code.code).await
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
    let creds: Vec<fleet::Credentials> = creds.into_iter().collect::<Result<_, _>>()?;
    // Let the enrollment connections finish closing on the server.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (before, _) = srv.rss_kib();
    let devices: Vec<anyhow::Result<Device>> = futures_util::stream::iter(creds.iter().enumerate())
        .map(|(i, c)| {
            let fleet = fleet.clone();
            async move { fleet.connect(first + i, c).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let devices: Vec<Device> = devices.into_iter().collect::<Result<_, _>>()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, _) = srv.rss_kib();
    let per = after.saturating_sub(before) as f64 / n as f64;
    Ok((
        json!({
            "connections": n,
            "server_rss_kib_before": before,
            "server_rss_kib_after": after,
            "kib_per_connection": per,
            "target_kib_per_connection": 64,
        }),
        devices,
    ))
}

/// Workload 6: connected devices in one cell; one hazard pushed; time until each pulled it.
async fn fan_out(devices: &[Device], reporter: &patrolsync_sdk::Client) -> anyhow::Result<Value> {
    // Everyone catches up first, so the hazard is the only news.
    let mut cursors = Vec::with_capacity(devices.len());
    for d in devices {
        let mut pos = fleet::Position::default();
        fleet::pull_all(&d.conn, &mut pos, true, |_| {}).await?;
        cursors.push(pos);
    }
    let id = reporter
        .report_hazard(patrolsync_sdk::NewHazard {
            description: "benchmark fan-out".into(),
            ..patrolsync_tests::blocked_lane("S1-C1-K1")
        })
        .await?;
    let want = id.0.as_bytes().to_vec();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (d, cursor) in devices.iter().zip(cursors) {
        let (conn, want) = (d.conn.clone(), want.clone());
        tasks.spawn(async move {
            let mut pos = cursor;
            loop {
                let mut recv = conn.accept_uni().await?;
                let _ = recv.read_to_end(64 * 1024).await?;
                let mut seen = false;
                fleet::pull_all(&conn, &mut pos, false, |c| {
                    if let Some(wire::change::Entity::HazardReport(r)) = &c.entity {
                        seen |= r.id == want;
                    }
                })
                .await?;
                if seen {
                    return anyhow::Ok(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
        });
    }
    reporter.sync().await?;
    let mut ms = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(60), tasks.join_next())
        .await
        .context("devices still waiting for the hazard after 60 s")?
    {
        ms.push(r??);
    }
    ms.sort_by(f64::total_cmp);
    Ok(json!({
        "devices": devices.len(),
        "ms_until_pulled": { "p50": percentile(&ms, 0.5), "p99": percentile(&ms, 0.99), "max": ms.last().copied().unwrap_or(0.0) },
        "target_p99_ms": 1000,
    }))
}

async fn run_reports(args: &Args, r: &reports::ReportsArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let pg = if args.backend == "postgres" {
        Some(patrolsync_server::testkit::fresh_postgres(&args.postgres_url).await)
    } else {
        None
    };
    let url = pg.as_ref().and_then(|d| d.url.clone()).unwrap_or_else(|| {
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("patrolsync.db").display()
        )
    });
    let result = reports::run(r, &url).await;
    if let Some(db) = pg {
        db.cleanup().await;
    }
    let mut report = result?;
    stamp(&mut report, &args.backend);
    let stem = format!(
        "reports-{}{}",
        args.backend,
        if r.size == "city" { "" } else { "-small" }
    );
    write_report(&args.out, &stem, &report, &reports::summary(&report))
}

async fn run_converge(args: &Args, c: &converge::ConvergeArgs) -> anyhow::Result<()> {
    let mut report = converge::run_seeds(c, &args.backend, &args.postgres_url).await?;
    stamp(&mut report, &args.backend);
    write_report(
        &args.out,
        &format!("converge-{}", args.backend),
        &report,
        &converge::summary(&report),
    )?;
    anyhow::ensure!(
        report["failures"].as_array().is_some_and(Vec::is_empty),
        "some seeds did not converge"
    );
    Ok(())
}

async fn run_soak(args: &Args, soak_args: &soak::SoakArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.server.is_none(),
        "soak starts (and kills) its own server; --server is not for soak"
    );
    let dir = tempfile::tempdir()?;
    let pg = if args.backend == "postgres" {
        Some(patrolsync_server::testkit::fresh_postgres(&args.postgres_url).await)
    } else {
        None
    };
    let result = soak::run(
        soak_args,
        dir.path(),
        pg.as_ref().and_then(|d| d.url.clone()),
    )
    .await;
    if let Some(db) = pg {
        db.cleanup().await;
    }
    let mut report = result?;
    stamp(&mut report, &args.backend);
    write_report(
        &args.out,
        &format!("soak-{}", args.backend),
        &report,
        &soak::summary(&report),
    )?;
    anyhow::ensure!(
        report["converged"] == json!(true),
        "the fleet did not converge: {}",
        report["problem"]
    );
    Ok(())
}

/// Prints the summary and writes `STEM.json` and `STEM.txt` into `out`.
fn write_report(
    out: &std::path::Path,
    stem: &str,
    report: &Value,
    text: &str,
) -> anyhow::Result<()> {
    println!("{text}");
    std::fs::create_dir_all(out)?;
    let json_path = out.join(format!("{stem}.json"));
    std::fs::write(&json_path, serde_json::to_string_pretty(report)?)?;
    std::fs::write(out.join(format!("{stem}.txt")), text)?;
    eprintln!("report: {}", json_path.display());
    Ok(())
}

/// Marks a mode's report with when, which commit, which backend and which build made it.
fn stamp(report: &mut Value, backend: &str) {
    report["date"] =
        json!(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string());
    report["commit"] = json!(git_commit());
    report["backend"] = json!(backend);
    report["profile"] = json!(if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    });
}

fn git_commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn summary(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let w = &r["workloads"];
    let mut s = format!(
        "patrolsync-bench {} on {} ({}, {} build, {} cores), commit {}\n\n",
        if r["quick"].as_bool() == Some(true) {
            "--quick"
        } else {
            "full run"
        },
        r["backend"].as_str().unwrap_or(""),
        r["date"].as_str().unwrap_or(""),
        r["profile"].as_str().unwrap_or(""),
        r["cores"],
        r["commit"].as_str().unwrap_or(""),
    );
    let i = &w["ingest"];
    s += &format!(
        "1 ingest      {} devices × batches of 50: {:.0} check-ins/s (ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms); baseline store ingest {:.0}/s; ratio {:.2} (target ≥ 0.5); server CPU {:.0} ms per 1,000 check-ins\n",
        i["devices"],
        f(&i["check_ins_per_s"]),
        f(&i["ack_ms"]["p50"]),
        f(&i["ack_ms"]["p99"]),
        f(&i["ack_ms"]["max"]),
        f(&i["baseline"]["check_ins_per_s"]),
        f(&i["ratio"]),
        f(&i["server_cpu_ms_per_1000_check_ins"]),
    );
    let c = &w["wire_cost"];
    let per: Vec<String> = c["batches"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    format!(
                        "batch {}: {:.0} B ({:.0} B with handshake)",
                        b["batch"],
                        f(&b["bytes_per_check_in"]),
                        f(&b["bytes_per_check_in_with_handshake"])
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    s += &format!(
        "2 wire cost   UDP bytes per check-in, {}; JSON of one check-in {} B (target ≤ 150 B at 50)\n",
        per.join(", "),
        c["baseline"]["bytes"]
    );
    let p = &w["photos"];
    s += &format!(
        "3 photos      {} devices × {:.1} MB at once: {:.1} MB/s; raw quinn {:.1} MB/s; ratio {:.2} (target ≥ 0.6)\n",
        p["devices"],
        f(&p["photo_bytes"]) / 1e6,
        f(&p["mb_per_s"]),
        f(&p["baseline"]["mb_per_s"]),
        f(&p["ratio"]),
    );
    let b = &w["backlog"];
    s += &format!(
        "4 backlog     {} ops + {} photos: records {:.1} s ({:.0} check-ins/s, {:.2} of one raw device's {:.0}/s), photos {:.1} s\n",
        b["ops"],
        b["photos"],
        f(&b["records_seconds"]),
        f(&b["check_ins_per_s"]),
        f(&b["ratio_to_single_device"]),
        f(&i["single_device_check_ins_per_s"]),
        f(&b["photos_seconds"]),
    );
    let t = &w["bootstrap"];
    s += &format!(
        "  bootstrap   {}: {} changes in {:.1} s, {:.1} MB on the wire\n",
        t["scope"].as_str().unwrap_or(""),
        t["changes"],
        f(&t["seconds"]),
        f(&t["bytes"]) / 1e6,
    );
    let d = &w["idle"];
    s += &format!(
        "5 idle        {} connections: {:.1} KiB server memory each (target ≤ 64 KiB)\n",
        d["connections"],
        f(&d["kib_per_connection"]),
    );
    let o = &w["fan_out"];
    s += &format!(
        "6 fan-out     {} devices: hazard pulled p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p99 ≤ 1,000 ms)\n",
        o["devices"],
        f(&o["ms_until_pulled"]["p50"]),
        f(&o["ms_until_pulled"]["p99"]),
        f(&o["ms_until_pulled"]["max"]),
    );
    s += &format!(
        "  server      peak RSS {:.1} MiB\n",
        f(&r["server"]["peak_rss_kib"]) / 1024.0
    );
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match &args.mode {
        Some(Mode::Soak(soak_args)) => return run_soak(&args, soak_args).await,
        Some(Mode::Reports(r)) => return run_reports(&args, r).await,
        Some(Mode::Converge(c)) => return run_converge(&args, c).await,
        None => {}
    }
    let mut sizes = if args.quick {
        Sizes {
            devices: 20,
            batches: 2,
            photo_devices: 4,
            photo_bytes: 1_000_000,
            backlog_ops: 500,
            backlog_photos: 2,
            idle: 100,
            city: false,
        }
    } else {
        Sizes {
            devices: 1000,
            batches: 4,
            photo_devices: 20,
            photo_bytes: 3_000_000,
            backlog_ops: 20_000,
            backlog_photos: 20,
            idle: 10_000,
            city: true,
        }
    };
    if let Some(n) = args.devices {
        sizes.devices = n;
    }
    if let Some(n) = args.idle {
        sizes.idle = n;
    }
    let dir = tempfile::tempdir()?;
    // A started server gets a fresh database; an attached one (--server) has its own.
    let pg = if args.backend == "postgres" && args.server.is_none() {
        Some(patrolsync_server::testkit::fresh_postgres(&args.postgres_url).await)
    } else {
        None
    };
    let url = pg.as_ref().and_then(|d| d.url.clone());
    let mut srv = match (args.server, &args.data_dir) {
        (Some(addr), Some(data)) => {
            ServerProc::attach(addr, data, args.database_url.clone(), args.server_pid).await?
        }
        _ => ServerProc::start(&dir.path().join("server"), url).await?,
    };
    patrolsync_server::seed::seed_demo(srv.store.as_ref()).await?;
    let fleet = Fleet::new(srv.addr, srv.ca()?, 16)?;
    eprintln!(
        "server {} ({}), {} devices",
        srv.addr, args.backend, sizes.devices
    );

    let mut next = 0;
    let codes = srv
        .codes(
            "bench-ingest",
            sizes.devices,
            Role::Patroller,
            &["S1".into()],
        )
        .await?;
    let t = Instant::now();
    let mut devices = enroll_fleet(&fleet, next, codes, 32).await?;
    next += sizes.devices;
    eprintln!(
        "  {} devices enrolled and connected in {:.1} s",
        devices.len(),
        t.elapsed().as_secs_f64()
    );
    // The baseline's own database: the same backend, set up as the server sets up its own.
    let baseline_pg = if args.backend == "postgres" {
        Some(patrolsync_server::testkit::fresh_postgres(&args.postgres_url).await)
    } else {
        None
    };
    let baseline_config = patrolsync_server::Config {
        data_dir: dir.path().join("baseline"),
        database_url: baseline_pg.as_ref().and_then(|d| d.url.clone()),
        double_tap_window: Duration::ZERO,
        ..patrolsync_server::Config::default()
    };
    let baseline_store = patrolsync_server::open_store(&baseline_config).await?;
    let ingest_r = ingest(&srv, baseline_store, &mut devices, sizes.batches).await?;
    if let Some(db) = baseline_pg {
        db.cleanup().await;
    }
    eprintln!("1 ingest done");
    let wire_r = wire_cost(&srv, &fleet, next).await?;
    next += 3;
    eprintln!("2 wire cost done");
    let photos_r = photos(&srv, &fleet, next, &sizes).await?;
    next += sizes.photo_devices;
    eprintln!("3 photos done");
    let (mut backlog_r, reporter) = backlog(&srv, dir.path(), &sizes).await?;
    backlog_r["ratio_to_single_device"] = json!(
        backlog_r["check_ins_per_s"].as_f64().unwrap_or(0.0)
            / ingest_r["single_device_check_ins_per_s"]
                .as_f64()
                .unwrap_or(1.0)
    );
    eprintln!("4 backlog done");
    let bootstrap_r = bootstrap(&srv, &fleet, next, sizes.city).await?;
    next += 1;
    eprintln!("4 bootstrap done");
    let fan_r = fan_out(&devices, &reporter).await?;
    eprintln!("6 fan-out done");
    for d in devices.drain(..) {
        d.conn.close(0u32.into(), b"done");
    }
    let (idle_r, idle_devices) = idle(&srv, &fleet, next, sizes.idle).await?;
    eprintln!("5 idle done");
    let (_, peak) = srv.rss_kib();
    drop(idle_devices);

    let report = json!({
        "date": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "commit": git_commit(),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "backend": args.backend,
        "quick": args.quick,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "workloads": {
            "ingest": ingest_r,
            "wire_cost": wire_r,
            "photos": photos_r,
            "backlog": backlog_r,
            "bootstrap": bootstrap_r,
            "idle": idle_r,
            "fan_out": fan_r,
        },
        "server": { "peak_rss_kib": peak, "process_measured": srv.measured(), "started_by_bench": args.server.is_none() },
    });
    let stem = format!("{}{}", args.backend, if args.quick { "-quick" } else { "" });
    write_report(&args.out, &stem, &report, &summary(&report))?;
    srv.stop()?;
    if let Some(db) = pg {
        db.cleanup().await;
    }
    Ok(())
}
