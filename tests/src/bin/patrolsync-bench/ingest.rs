//! Ingest workloads: a fleet's pushes against the store's own insert rate, and what the wire costs.

use std::sync::Arc;
use std::time::Instant;

use fleet::{Device, Fleet};
use patrolsync_proto::{Role, wire};
use serde_json::{Value, json};
use server::ServerProc;

use super::*;

/// `batches` batches of 50 check-ins from `d`, round the demo city's S1 checkpoints.
pub(super) fn check_in_batches(d: &mut Device, batches: usize) -> Vec<Vec<wire::Op>> {
    let points = s1_checkpoints();
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
}

/// The same, as push frames.
fn batches_of_50(d: &mut Device, batches: usize) -> Vec<Vec<u8>> {
    check_in_batches(d, batches)
        .into_iter()
        .map(fleet::push_frame)
        .collect()
}

/// What a flood of pushes did.
pub(super) struct Flood {
    pub applied: usize,
    pub seconds: f64,
    /// Each push's ack latency, ms, sorted.
    pub ack_ms: Vec<f64>,
}

/// Every device pushes `batches` batches of 50 check-ins, all at once, each device's in turn.
pub(super) async fn flood(devices: &mut [Device], batches: usize) -> anyhow::Result<Flood> {
    let frames: Vec<Vec<Vec<u8>>> = devices
        .iter_mut()
        .map(|d| batches_of_50(d, batches))
        .collect();
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
    let seconds = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        applied == devices.len() * batches * 50,
        "only {applied} of {} check-ins applied",
        devices.len() * batches * 50
    );
    lat.sort_by(f64::total_cmp);
    Ok(Flood {
        applied,
        seconds,
        ack_ms: lat,
    })
}

/// Workload 1: concurrent devices push batches of 50 check-ins; baseline: the store's own
/// group-commit ingest of the same rows in the same batches, no network.
pub(super) async fn ingest(
    srv: &ServerProc,
    baseline_store: Arc<dyn patrolsync_server::store::Store>,
    devices: &mut [Device],
    batches: usize,
) -> anyhow::Result<Value> {
    let cpu0 = srv.cpu_ms();
    let flood = flood(devices, batches).await?;
    let cpu_ms = srv.cpu_ms() - cpu0;
    let (applied, elapsed, lat) = (flood.applied, flood.seconds, &flood.ack_ms);
    let rate = applied as f64 / elapsed;
    eprintln!(
        "  flood: {rate:.0} check-ins/s, ack p99 {:.0} ms; server CPU {:.1} µs a check-in",
        percentile(lat, 0.99),
        cpu_ms as f64 * 1000.0 / applied as f64,
    );

    // One device alone, for the backlog comparison.
    let single_batches = batches.max(4);
    let single = batches_of_50(&mut devices[0], single_batches);
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
    // As many writers as the server under test runs (its default).
    let writers = match store.backend() {
        patrolsync_server::store::Backend::Sqlite => 1,
        patrolsync_server::store::Backend::Postgres => {
            patrolsync_server::Config::default().ingest_writers
        }
    };
    let ingestor = patrolsync_server::ingest::Ingestor::start(
        store.clone(),
        writers,
        patrolsync_server::now_ms,
        Arc::new(patrolsync_server::metrics::Metrics::new()),
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
        work.push((session, check_in_batches(&mut shadow, batches)));
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
        "ack_ms": { "p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "max": lat.last().copied().unwrap_or(0.0) },
        "single_device_check_ins_per_s": single_rate,
        "server_cpu_ms_per_1000_check_ins": cpu_ms as f64 * 1000.0 / applied as f64,
        "baseline": { "what": "the server's validation and group-commit ingest of the same rows and batches, in-process, no network", "check_ins_per_s": baseline },
        "ratio": rate / baseline,
        "target_ratio": 0.5,
    }))
}

/// Workload 2: UDP bytes per check-in (quinn's counters), batches of 1, 10 and 50.
pub(super) async fn wire_cost(
    srv: &ServerProc,
    fleet: &Fleet,
    first: usize,
) -> anyhow::Result<Value> {
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

/// Workload 1b: check-ins offered at a steady `rate` for `seconds` (open loop), one per push as
/// a patroller's phone sends each one, spread evenly over the fleet: the ack latency at a load a
/// city sends, not under a flood. Latency runs from each check-in's scheduled moment, so a send
/// that starts late counts against the result instead of hiding it.
pub(super) async fn open_loop(
    srv: &ServerProc,
    devices: &mut [Device],
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Value> {
    use tokio::time::{Duration, Instant};
    let points = s1_checkpoints();
    let total = (rate * seconds).round() as usize;
    let n = devices.len();
    anyhow::ensure!(n > 0 && total > 0, "nothing to offer");
    // Check-in j goes from device j mod n at start + j / rate.
    let mut plans: Vec<Vec<(Duration, Vec<u8>)>> = (0..n).map(|_| Vec::new()).collect();
    for j in 0..total {
        let d = &mut devices[j % n];
        d.seq += 1;
        let op = fleet::check_in(d.seq, &points[j % points.len()], 60_000, Vec::new());
        plans[j % n].push((
            Duration::from_secs_f64(j as f64 / rate),
            fleet::push_frame(vec![op]),
        ));
    }
    let writer0 = admin::WriterTotals::read(srv).await?;
    let cpu0 = srv.cpu_ms();
    let start = Instant::now() + Duration::from_millis(200);
    let mut tasks = tokio::task::JoinSet::new();
    for (d, plan) in devices.iter().zip(plans) {
        let conn = d.conn.clone();
        tasks.spawn(async move {
            let mut pushes = tokio::task::JoinSet::new();
            let mut late_ms = 0f64;
            for (at, frame) in plan {
                let due = start + at;
                tokio::time::sleep_until(due).await;
                late_ms = late_ms.max(due.elapsed().as_secs_f64() * 1000.0);
                let conn = conn.clone();
                pushes.spawn(async move {
                    let applied = fleet::push(&conn, &frame).await?;
                    anyhow::Ok((applied, due.elapsed().as_secs_f64() * 1000.0))
                });
            }
            let (mut applied, mut lat) = (0usize, Vec::new());
            while let Some(r) = pushes.join_next().await {
                let (a, ms) = r??;
                applied += a;
                lat.push(ms);
            }
            anyhow::Ok((applied, lat, late_ms))
        });
    }
    let (mut applied, mut lat, mut late_ms) = (0usize, Vec::with_capacity(total), 0f64);
    while let Some(r) = tasks.join_next().await {
        let (a, l, late) = r??;
        applied += a;
        lat.extend(l);
        late_ms = late_ms.max(late);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_ms = srv.cpu_ms() - cpu0;
    // After the CPU reading: the scrape's own work is not the load's.
    let writer = writer0.since(&admin::WriterTotals::read(srv).await?, elapsed);
    anyhow::ensure!(
        applied == total,
        "only {applied} of {total} check-ins applied"
    );
    lat.sort_by(f64::total_cmp);
    eprintln!(
        "  steady {rate}/s: ack p50 {:.1} ms, p99 {:.1} ms; {:.0} check-ins/s through; server CPU {:.0} µs a check-in; writer time {:.2} s/s, {:.2} ms a push, {:.1} pushes a commit",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        total as f64 / elapsed,
        cpu_ms as f64 * 1000.0 / total as f64,
        writer["busy_per_s"].as_f64().unwrap_or(0.0),
        writer["ms_per_push"].as_f64().unwrap_or(0.0),
        writer["pushes_per_commit"].as_f64().unwrap_or(0.0),
    );
    Ok(json!({
        "devices": n,
        "offered_per_s": rate,
        "seconds": seconds,
        "check_ins": total,
        "achieved_per_s": total as f64 / elapsed,
        "ack_ms": { "p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99), "max": lat.last().copied().unwrap_or(0.0) },
        "latest_send_ms": late_ms,
        "server_cpu_us_per_check_in": cpu_ms as f64 * 1000.0 / total as f64,
        "writers": writer,
        "target_p99_ms": 100,
    }))
}
