//! `patrolsync-bench --quick` runs end to end against the real server binary on SQLite and (when
//! configured) PostgreSQL and writes a complete report. It checks the benchmark works; it asserts
//! no timing (performance is read from the full run's report, not from tests).

use std::process::Command;

use patrolsync_server::testkit::ENV_TEST_DATABASE_URL;

const BENCH: &str = env!("CARGO_BIN_EXE_patrolsync-bench");

fn quick(backend: &str) -> anyhow::Result<serde_json::Value> {
    let out = tempfile::tempdir()?;
    let server = std::path::Path::new(BENCH).with_file_name("patrolsync");
    anyhow::ensure!(
        server.exists(),
        "{} is missing: run the workspace's tests (cargo test --workspace) so it is built",
        server.display()
    );
    let run = Command::new(BENCH)
        .args(["--quick", "--backend", backend, "--out"])
        .arg(out.path())
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "patrolsync-bench --quick --backend {backend} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(
        out.path().join(format!("{backend}-quick.json")),
    )?)?;
    let summary = std::fs::read_to_string(out.path().join(format!("{backend}-quick.txt")))?;
    assert!(
        summary.contains("1 ingest")
            && summary.contains("6 fan-out")
            && summary.contains("7 admin"),
        "{summary}"
    );
    Ok(report)
}

fn check(report: &serde_json::Value, backend: &str) {
    assert_eq!(report["backend"], backend);
    let w = &report["workloads"];
    // Every workload ran and measured something, with its baseline beside it.
    assert_eq!(w["ingest"]["check_ins"], 20 * 2 * 50);
    for ratio in [&w["ingest"]["ratio"], &w["photos"]["ratio"]] {
        assert!(ratio.as_f64().is_some_and(|r| r > 0.0), "{ratio}");
    }
    assert_eq!(w["wire_cost"]["batches"].as_array().map(Vec::len), Some(3));
    assert!(w["backlog"]["records_seconds"].as_f64().is_some());
    assert!(
        w["bootstrap"]["assigned_after"]["changes"]
            .as_u64()
            .is_some_and(|c| c > 0)
    );
    // The steady load (the run fails unless every check-in offered was applied) reports its
    // latency for each rate, and what the server's writers did meanwhile (from its /metrics):
    // one push per check-in, committed.
    let steady = w["steady"].as_array().expect("steady runs");
    assert_eq!(steady.len(), 2, "{steady:?}");
    for l in steady {
        assert!(
            l["ack_ms"]["p99"].as_f64().is_some_and(|ms| ms > 0.0),
            "{l}"
        );
        assert_eq!(
            l["writers"]["pushes"].as_f64(),
            l["check_ins"].as_f64(),
            "{l}"
        );
        assert!(
            l["writers"]["busy_per_s"].as_f64().is_some_and(|b| b > 0.0),
            "{l}"
        );
    }
    // The admin's reads, on the loaded server and on the empty one beside it.
    let admin = &w["admin_reads"];
    assert!(admin["loaded"]["devices"].as_i64() >= Some(100), "{admin}");
    for side in ["loaded", "baseline"] {
        for path in ["/metrics", "/api/summary", "/api/devices?limit=50"] {
            assert!(
                admin[side]["ms"][path]["p50"]
                    .as_f64()
                    .is_some_and(|ms| ms > 0.0),
                "{side} {path}: {admin}"
            );
        }
    }
    assert_eq!(w["idle"]["connections"], 100);
    assert_eq!(w["fan_out"]["devices"], 20);
    assert!(
        report["server"]["peak_rss_kib"]
            .as_u64()
            .is_some_and(|k| k > 0)
    );
}

#[test]
fn quick_bench_runs_on_sqlite() -> anyhow::Result<()> {
    check(&quick("sqlite")?, "sqlite");
    Ok(())
}

#[test]
fn quick_bench_runs_on_postgres() -> anyhow::Result<()> {
    if std::env::var(ENV_TEST_DATABASE_URL).is_err() {
        patrolsync_server::testkit::skip(
            "the PostgreSQL bench",
            &format!("{ENV_TEST_DATABASE_URL} is not set"),
        );
        return Ok(());
    }
    check(&quick("postgres")?, "postgres");
    Ok(())
}

/// The processes whose parent is `pid` (from `/proc/*/stat`: pid, (name), state, parent, …).
fn children(pid: u32) -> Vec<u32> {
    let entries = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    entries
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

/// Ctrl-C on a run stops the server it started: the bench says it was interrupted, and when it
/// has exited its server is gone, not left running to take CPU from the next run.
#[test]
fn an_interrupted_bench_stops_the_server_it_started() -> anyhow::Result<()> {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let out = tempfile::tempdir()?;
    let mut bench = patrolsync_tests::KillOnDrop(
        Command::new(BENCH)
            .args(["--quick", "--out"])
            .arg(out.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?,
    );
    let mut stderr = bench.0.stderr.take().expect("stderr is piped");
    let said = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let server = loop {
        let serving = children(bench.0.id()).into_iter().find(|c| {
            std::fs::read(format!("/proc/{c}/cmdline"))
                .is_ok_and(|cmd| cmd.split(|b| *b == 0).any(|arg| arg == b"serve"))
        });
        if let Some(pid) = serving {
            break pid;
        }
        anyhow::ensure!(
            bench.0.try_wait()?.is_none(),
            "the bench ended before it started a server"
        );
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the bench started no server in 120 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let kill = Command::new("kill")
        .args(["-INT", &bench.0.id().to_string()])
        .status()?;
    anyhow::ensure!(kill.success(), "kill -INT {} failed", bench.0.id());
    let interrupted = Instant::now();
    let status = loop {
        if let Some(status) = bench.0.try_wait()? {
            break status;
        }
        anyhow::ensure!(
            interrupted.elapsed() < Duration::from_secs(60),
            "the bench still runs 60 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let left = std::path::Path::new(&format!("/proc/{server}")).exists();
    if left {
        let _ = Command::new("kill")
            .args(["-9", &server.to_string()])
            .status();
    }
    assert!(!left, "server {server} still runs after the bench exited");
    assert!(!status.success(), "an interrupted run does not succeed");
    let stderr = said.join().unwrap_or_default();
    assert!(
        stderr.contains("interrupted by SIGINT"),
        "the bench says why it stopped: {stderr}"
    );
    Ok(())
}

/// `patrolsync-bench scale` with a small fleet: both rounds store every check-in, the second
/// node adopts the first's CA (the run fails otherwise), and the ratio is reported.
#[test]
fn scale_runs_two_nodes_on_postgres() -> anyhow::Result<()> {
    if std::env::var(ENV_TEST_DATABASE_URL).is_err() {
        patrolsync_server::testkit::skip(
            "the two-node bench",
            &format!("{ENV_TEST_DATABASE_URL} is not set"),
        );
        return Ok(());
    }
    let out = tempfile::tempdir()?;
    let run = Command::new(BENCH)
        .args(["--backend", "postgres", "--out"])
        .arg(out.path())
        .args(["scale", "--devices", "20", "--batches", "2"])
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "patrolsync-bench scale failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("scale.json"))?)?;
    for round in ["one_node", "two_nodes"] {
        assert_eq!(report[round]["check_ins"], 20 * 2 * 50, "{report}");
    }
    assert_eq!(
        report["two_nodes"]["server_cpu_ms_per_1000_check_ins"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "each node's CPU is its own: {report}"
    );
    assert!(report["ratio_two_to_one"].as_f64().is_some_and(|r| r > 0.0));
    Ok(())
}

/// `patrolsync-bench soak` for 15 s with the server killed every 5 s: the run must end
/// converged (the binary exits non-zero otherwise) with every kind of fault having happened.
fn short_soak(backend: &str) -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let run = Command::new(BENCH)
        .args(["--backend", backend, "--out"])
        .arg(out.path())
        .args([
            "soak",
            "--duration",
            "15s",
            "--kill-every",
            "5s",
            "--seed",
            "7",
        ])
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "patrolsync-bench soak --backend {backend} failed:\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(
        out.path().join(format!("soak-{backend}.json")),
    )?)?;
    assert_eq!(report["converged"], true, "{report}");
    assert!(report["server_kills"].as_u64() >= Some(2), "{report}");
    assert!(report["packets_dropped"].as_u64() > Some(0), "{report}");
    assert!(report["check_ins"].as_u64() > Some(0), "{report}");
    assert!(report["hazards"].as_u64() > Some(0), "{report}");
    println!("{}", String::from_utf8_lossy(&run.stdout));
    Ok(())
}

#[test]
fn short_soak_converges_on_sqlite() -> anyhow::Result<()> {
    short_soak("sqlite")
}

#[test]
fn short_soak_converges_on_postgres() -> anyhow::Result<()> {
    if std::env::var(ENV_TEST_DATABASE_URL).is_err() {
        patrolsync_server::testkit::skip(
            "the PostgreSQL soak",
            &format!("{ENV_TEST_DATABASE_URL} is not set"),
        );
        return Ok(());
    }
    short_soak("postgres")
}

/// `patrolsync-bench reports --size small`: the month is loaded, every figure of the report
/// adds up against the load, and every timing has its baseline. (The city-sized run is the
/// benchmark's; see README.)
fn small_reports(backend: &str) -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let run = Command::new(BENCH)
        .args(["--backend", backend, "--out"])
        .arg(out.path())
        .args(["reports", "--size", "small", "--coverage", "0.5"])
        .output()?;
    anyhow::ensure!(
        run.status.success(),
        "patrolsync-bench reports --backend {backend} failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(
        out.path().join(format!("reports-{backend}-small.json")),
    )?)?;
    let loaded = r["load"]["check_ins"].as_u64().expect("loaded");
    assert!(loaded > 0);
    assert_eq!(r["month_check_ins"].as_u64(), Some(loaded), "{r}");
    assert_eq!(r["baseline"]["rows_read"].as_u64(), Some(loaded), "{r}");
    let c = &r["compliance"];
    // 240 daily checkpoints over October's 31 days, all ended.
    assert_eq!(c["slots_due"], 240 * 31, "{r}");
    let sum = ["inspected", "could_not_inspect", "flagged", "missed"]
        .iter()
        .map(|k| c[k].as_u64().expect(k))
        .sum::<u64>();
    assert_eq!(sum, 240 * 31, "{r}");
    // Each checkpoint-day is one visit at most: everything visited was answered.
    assert_eq!(sum - c["missed"].as_u64().expect("missed"), loaded, "{r}");
    for ratio in [
        &c["ratio_to_reading_rows"],
        &r["evaluation"]["ratio_to_reading_rows"],
    ] {
        assert!(ratio.as_f64().is_some_and(|x| x > 0.0), "{ratio}");
    }
    assert!(r["ledger"]["rows"].as_u64() > Some(0), "{r}");
    Ok(())
}

#[test]
fn small_reports_bench_adds_up_on_sqlite() -> anyhow::Result<()> {
    small_reports("sqlite")
}

#[test]
fn small_reports_bench_adds_up_on_postgres() -> anyhow::Result<()> {
    if std::env::var(ENV_TEST_DATABASE_URL).is_err() {
        patrolsync_server::testkit::skip(
            "the PostgreSQL reports bench",
            &format!("{ENV_TEST_DATABASE_URL} is not set"),
        );
        return Ok(());
    }
    small_reports("postgres")
}

/// README's results table is the one the committed reports render, and a table edited by hand
/// is caught.
#[test]
fn readme_table_is_the_committed_results() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace");
    let check = |readme: &std::path::Path| {
        Command::new(BENCH)
            .arg("--out")
            .arg(root.join("tests/bench/results"))
            .args(["table", "--check"])
            .arg(readme)
            .output()
    };
    let run = check(&root.join("README.md"))?;
    anyhow::ensure!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(root.join("README.md"))?;
    let start = text
        .find("<!-- bench-table: start")
        .expect("the table's marker");
    let row = start + text[start..].find("| 1 ingest").expect("the ingest row");
    let edited = format!("{}| 1 ingest, better{}", &text[..row], &text[row + 10..]);
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("README.md"), edited)?;
    let run = check(&dir.path().join("README.md"))?;
    assert!(!run.status.success());
    assert!(
        String::from_utf8_lossy(&run.stderr).contains("is not the one"),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    Ok(())
}
