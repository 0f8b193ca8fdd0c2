//! `patrolsync-bench`: a simulated fleet against a real `patrolsync` server, every figure next to
//! a baseline measured in the same run. See README.md ("Benchmark") for how to run it and the
//! latest results.

mod admin;
mod converge;
mod ffi;
mod fleet;
mod ingest;
mod map;
mod photos;
mod reports;
mod scale;
mod server;
mod soak;
mod sync;
mod table;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use fleet::{Device, Fleet};
use futures_util::StreamExt;
use ingest::*;
use patrolsync_proto::Role;
use photos::*;
use serde_json::{Value, json};
use server::ServerProc;
use sync::*;

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
    /// The --server's admin HTTP address (for workloads 1b and 7, which read /metrics and the
    /// dashboard's API; without it they fail).
    #[arg(long, requires = "server")]
    admin: Option<std::net::SocketAddr>,
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
    /// What the mobile binding costs: record_checkin through the Python binding against the
    /// same calls made natively in the same process, and the library's size and what dominates
    /// it. Run it through client-sdk/ffi/tests/bench-ffi, which builds what it needs. Writes
    /// ffi.json and .txt to --out.
    Ffi(ffi::FfiArgs),
    /// The ingest flood on one node, then on two nodes sharing one PostgreSQL (PostgreSQL
    /// only): how ingest grows with a second node. Writes scale.json and .txt to --out.
    Scale(scale::ScaleArgs),
    /// The synthetic city's grid map in headless Chromium, end to end, beside the same browser
    /// opening an empty page, and `/api/map` alone (SQLite; needs Chromium). Writes map.json
    /// and .txt to --out.
    Map(map::MapArgs),
    /// Only the photo workload (workload 3), for --rounds, on a server of its own: the ratio of
    /// each pair of rounds and the server's CPU per round, for comparing builds and for
    /// profiling the server. Prints its report; writes nothing.
    Photos(photos::PhotosArgs),
    /// The photo baseline's receiver, which the photo workload starts in a process of its own.
    #[command(hide = true)]
    RawSink(photos::RawSinkArgs),
    /// README's results table from the reports in --out (sqlite.json, postgres.json and
    /// scale.json): printed, written into a file between its markers (--write) or checked
    /// against one (--check).
    Table(table::TableArgs),
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

impl Sizes {
    /// A full run's sizes.
    fn full() -> Sizes {
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
    }

    /// `--quick`'s sizes.
    fn quick() -> Sizes {
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
    }
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

async fn run_photos(args: &Args, p: &photos::PhotosArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.server.is_none(),
        "photos starts a server of its own; --server is not for photos"
    );
    let dir = tempfile::tempdir()?;
    let pg = if args.backend == "postgres" {
        Some(patrolsync_server::testkit::fresh_postgres(&args.postgres_url).await)
    } else {
        None
    };
    let srv = ServerProc::start(
        &dir.path().join("server"),
        pg.as_ref().and_then(|d| d.url.clone()),
    )
    .await?;
    patrolsync_server::seed::seed_demo(srv.store.as_ref()).await?;
    let fleet = Fleet::new(srv.addr, srv.ca()?, fleet::SOCKETS)?;
    // A full run's photos.
    let sizes = Sizes::full();
    eprintln!(
        "server {} ({}): {} rounds of {} photos of {} bytes",
        srv.addr, args.backend, p.rounds, sizes.photo_devices, sizes.photo_bytes
    );
    let report = photos(&srv, &fleet, 0, &sizes, p.rounds).await;
    if let Some(db) = pg {
        db.cleanup().await;
    }
    let mut report = report?;
    stamp(&mut report, &args.backend);
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!("{}", photos::summary(&report));
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
    for l in w["steady"].as_array().into_iter().flatten() {
        s += &format!(
            "  steady      {:.0} check-ins/s offered (one per push) for {:.0} s: ack p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 ≤ 100 ms); server CPU {:.0} µs per check-in; writer time {:.2} s/s, {:.2} ms a push, {:.1} pushes a commit\n",
            f(&l["offered_per_s"]),
            f(&l["seconds"]),
            f(&l["ack_ms"]["p50"]),
            f(&l["ack_ms"]["p99"]),
            f(&l["ack_ms"]["max"]),
            f(&l["server_cpu_us_per_check_in"]),
            f(&l["writers"]["busy_per_s"]),
            f(&l["writers"]["ms_per_push"]),
            f(&l["writers"]["pushes_per_commit"]),
        );
    }
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
        "3 photos      {} devices × {:.1} MB at once: {:.1} MB/s; raw quinn {:.1} MB/s; ratio {:.2} (target ≥ 0.75)\n",
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
    for (key, shape) in [
        (
            "assigned_after",
            "manager assigned after the grid was filled in",
        ),
        (
            "assigned_before",
            "manager assigned to the streets before the rest was imported",
        ),
    ] {
        let b = &t[key];
        if b.is_null() {
            continue;
        }
        s += &format!(
            "  bootstrap   {}, {shape}: {} changes in {:.1} s, {:.1} MB on the wire\n",
            t["scope"].as_str().unwrap_or(""),
            b["changes"],
            f(&b["seconds"]),
            f(&b["bytes"]) / 1e6,
        );
    }
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
    let a = &w["admin_reads"];
    let reads: Vec<String> = admin::PATHS
        .iter()
        .map(|p| {
            format!(
                "{p} p50 {:.0} ms, max {:.0} ms (empty server {:.0} ms)",
                f(&a["loaded"]["ms"][p]["p50"]),
                f(&a["loaded"]["ms"][p]["max"]),
                f(&a["baseline"]["ms"][p]["p50"]),
            )
        })
        .collect();
    s += &format!(
        "7 admin       {} devices, {} checkpoints: {} (target ≤ 200 ms)\n",
        a["loaded"]["devices"],
        a["loaded"]["checkpoints"],
        reads.join("; "),
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
    if let Some(Mode::RawSink(_)) = args.mode {
        // A child of a run, which ends it by closing its stdin (or kills it).
        return photos::raw_sink().await;
    }
    // Interrupted, the run is dropped, and with it the servers it started (killed when
    // dropped) and their data directories. Left to the signal's default, a server would keep
    // running, and take CPU from the next run. The handlers are installed here, before the run
    // starts a server.
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let stopped = "stopped the servers this run started";
    tokio::select! {
        done = run(args) => done,
        _ = int.recv() => anyhow::bail!("interrupted by SIGINT: {stopped}"),
        _ = term.recv() => anyhow::bail!("interrupted by SIGTERM: {stopped}"),
    }
}

/// The run `args` ask for.
async fn run(args: Args) -> anyhow::Result<()> {
    // The admin reads' HTTP client takes the process-wide TLS provider (ring, as the server).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match &args.mode {
        Some(Mode::Soak(soak_args)) => return run_soak(&args, soak_args).await,
        Some(Mode::Reports(r)) => return run_reports(&args, r).await,
        Some(Mode::Converge(c)) => return run_converge(&args, c).await,
        Some(Mode::Table(t)) => return table::run(&args.out, t),
        Some(Mode::Photos(p)) => return run_photos(&args, p).await,
        Some(Mode::RawSink(_)) => anyhow::bail!("raw-sink runs on its own, not in a run"),
        Some(Mode::Scale(a)) => {
            anyhow::ensure!(
                args.backend == "postgres",
                "scale runs two nodes on one PostgreSQL: pass --backend postgres"
            );
            let mut report = scale::run(a, &args.postgres_url).await?;
            stamp(&mut report, "postgres");
            return write_report(&args.out, "scale", &report, &scale::summary(&report));
        }
        Some(Mode::Map(m)) => {
            let mut report = map::run(m).await?;
            stamp(&mut report, "sqlite");
            return write_report(&args.out, "map", &report, &map::summary(&report));
        }
        Some(Mode::Ffi(f)) => {
            let mut report = ffi::run(f).await?;
            stamp(&mut report, "sqlite");
            return write_report(&args.out, "ffi", &report, &ffi::summary(&report));
        }
        None => {}
    }
    let mut sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
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
            ServerProc::attach(
                addr,
                args.admin,
                data,
                args.database_url.clone(),
                args.server_pid,
            )
            .await?
        }
        _ => ServerProc::start(&dir.path().join("server"), url).await?,
    };
    patrolsync_server::seed::seed_demo(srv.store.as_ref()).await?;
    let fleet = Fleet::new(srv.addr, srv.ca()?, fleet::SOCKETS)?;
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
    // The same fleet at a steady rate, one check-in per push.
    let (rates, seconds) = if args.quick {
        (vec![50.0, 200.0], 1.0)
    } else {
        (vec![1000.0, 5000.0], 10.0)
    };
    let mut steady_r = Vec::new();
    for rate in rates {
        steady_r.push(open_loop(&srv, &mut devices, rate, seconds).await?);
    }
    eprintln!("1b steady load done");
    let wire_r = wire_cost(&srv, &fleet, next).await?;
    next += 3;
    eprintln!("2 wire cost done");
    let photos_r = photos(&srv, &fleet, next, &sizes, ROUNDS).await?;
    next += sizes.photo_devices;
    eprintln!("3 photos done: {}", photos::summary(&photos_r));
    let (mut backlog_r, reporter) = backlog(&srv, dir.path(), &sizes).await?;
    backlog_r["ratio_to_single_device"] = json!(
        backlog_r["check_ins_per_s"].as_f64().unwrap_or(0.0)
            / ingest_r["single_device_check_ins_per_s"]
                .as_f64()
                .unwrap_or(1.0)
    );
    eprintln!("4 backlog done");
    let bootstrap_r = bootstrap(&srv, &fleet, next, sizes.city).await?;
    next += 2;
    eprintln!("4 bootstrap done");
    let fan_r = fan_out(&devices, &reporter).await?;
    eprintln!("6 fan-out done");
    for d in devices.drain(..) {
        d.conn.close(0u32.into(), b"done");
    }
    let (idle_r, idle_devices) = idle(&srv, &fleet, next, sizes.idle).await?;
    eprintln!("5 idle done");
    let (_, peak) = srv.rss_kib();
    // The admin's screens while the idle fleet is still connected, beside an empty server.
    let empty_pg = if args.backend == "postgres" {
        Some(patrolsync_server::testkit::fresh_postgres(&args.postgres_url).await)
    } else {
        None
    };
    let mut empty = ServerProc::start(
        &dir.path().join("empty"),
        empty_pg.as_ref().and_then(|d| d.url.clone()),
    )
    .await?;
    let admin_r = admin::admin_reads(&srv, &empty, if args.quick { 2 } else { 5 }).await;
    empty.stop()?;
    if let Some(db) = empty_pg {
        db.cleanup().await;
    }
    let admin_r = admin_r?;
    eprintln!("7 admin reads done");
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
            "steady": steady_r,
            "wire_cost": wire_r,
            "photos": photos_r,
            "backlog": backlog_r,
            "bootstrap": bootstrap_r,
            "idle": idle_r,
            "fan_out": fan_r,
            "admin_reads": admin_r,
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
