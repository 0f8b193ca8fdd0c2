//! Crashes: the server SIGKILLed in the middle of a group commit (before and after COMMIT) and
//! of a pull page, and a device process SIGKILLed while recording and while syncing. The kill
//! lands at a fault point the process reports reaching (`patrolsync-fault`), not after a
//! guessed delay. Each runs on SQLite and, when PATROLSYNC_TEST_DATABASE_URL is set, on
//! PostgreSQL; each ends by checking the rows in the store.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use patrolsync_proto::{CheckInOutcome, Role};
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn};
use patrolsync_server::faults::{FaultAction, FaultPoints, points};
use patrolsync_server::store::Store;
use patrolsync_server::testkit::{TestDatabase, loopback_config, test_databases};
use patrolsync_tests::{Harness, blocked_lane, device_id, fast_client, stored_check_in_ids};
use tokio::sync::mpsc;

const FAULT_BIN: &str = env!("CARGO_BIN_EXE_patrolsync-fault");

/// A child process whose stdout lines arrive on a channel; SIGKILLed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Proc {
    fn spawn(args: &[&str]) -> anyhow::Result<Proc> {
        let mut child = Command::new(FAULT_BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc { child, lines })
    }

    /// The next line starting with `prefix` (earlier lines are skipped), within `timeout`.
    async fn wait_for(&mut self, prefix: &str, timeout: Duration) -> anyhow::Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line.starts_with(prefix) => return Ok(line),
                Ok(Some(_)) => {}
                Ok(None) => anyhow::bail!("the process ended before printing {prefix:?}"),
                Err(_) => anyhow::bail!("no {prefix:?} within {timeout:?}"),
            }
        }
    }

    /// SIGKILL, reap, and return every line printed that was not read yet.
    async fn kill(mut self) -> anyhow::Result<Vec<String>> {
        self.child.kill()?;
        self.child.wait()?;
        let mut rest = Vec::new();
        while let Some(line) = self.lines.recv().await {
            rest.push(line);
        }
        Ok(rest)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A data dir (and database) seeded with the demo grid, for servers on `addr`.
struct Site {
    dir: tempfile::TempDir,
    db: TestDatabase,
    config: patrolsync_server::Config,
    /// The store, opened beside the servers (and kept across their deaths).
    store: Arc<dyn Store>,
}

impl Site {
    async fn new(db: TestDatabase) -> anyhow::Result<Site> {
        patrolsync_tests::init_tracing();
        let dir = tempfile::tempdir()?;
        // Its QUIC port outlives each process: `loopback_config`'s is not one the system
        // hands out to other sockets while the server is down.
        let config = loopback_config(&dir.path().join("server"), db.url.clone());
        let store = patrolsync_server::open_store(&config).await?;
        patrolsync_server::seed::seed_demo(store.as_ref()).await?;
        Ok(Site {
            dir,
            db,
            config,
            store,
        })
    }

    /// Starts `patrolsync-fault server`, stalling at `stall` after `skip` passes.
    async fn serve(&self, stall: Option<(&str, u32)>) -> anyhow::Result<Proc> {
        let data = self.config.data_dir.display().to_string();
        let listen = self.config.listen.to_string();
        let mut args = vec!["server", "--data-dir", &data, "--listen", &listen];
        if let Some(url) = &self.db.url {
            args.extend(["--database-url", url]);
        }
        let skip;
        if let Some((point, n)) = stall {
            skip = n.to_string();
            args.extend(["--stall", point, "--skip", &skip]);
        }
        let mut server = Proc::spawn(&args)?;
        server
            .wait_for("listening on udp", Duration::from_secs(30))
            .await?;
        Ok(server)
    }

    /// A device enrolled as a patroller of `cells`.
    async fn device(&self, name: &str, cells: &[&str]) -> anyhow::Result<Client> {
        let config = ClientConfig {
            batch_size: 50,
            max_attempts: 1,
            connect_timeout: Duration::from_secs(2),
            // A killed server says nothing more; don't wait out the default.
            request_timeout: Duration::from_secs(3),
            ..fast_client()
        };
        self.device_with(name, cells, config).await
    }

    async fn device_with(
        &self,
        name: &str,
        cells: &[&str],
        config: ClientConfig,
    ) -> anyhow::Result<Client> {
        let pki = patrolsync_server::pki::Pki::open_or_init(&self.config.data_dir, &[])?;
        let request = patrolsync_server::enroll::IssueRequest {
            user: name.to_owned(),
            role: Role::Patroller,
            cells: cells.iter().map(|c| c.to_string()).collect(),
            server: Some(self.config.listen.to_string()),
            ttl: None,
            agency: None,
        };
        let issued =
            patrolsync_server::enroll::issue(self.store.as_ref(), &pki, &self.config, request)
                .await?;
        let device = Client::open(self.dir.path().join(name), config).await?;
        device.enroll(&issued.enrollment, None, name).await?;
        Ok(device)
    }
}

/// A device waits for the answer to a push when the server is SIGKILLed (held inside the group
/// commit, so the request was received and never answered); a new process starts on the same
/// data. The device's own sync call, made before the kill with the SDK's defaults (a request
/// waits up to 30 s), ends with the push stored within two seconds of the restart: the sync's
/// connection pings every second, the new process resets the old connection at its first
/// packet, and the retry goes to the new process. (The bound is the issue's; the old keep-alive
/// of 15 s would miss it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_waiting_on_a_killed_server_syncs_again_soon_after_its_restart()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let site = Site::new(db).await?;
        let mut server = site.serve(Some((points::INGEST_BEFORE_COMMIT, 0))).await?;
        let device = site
            .device_with("patient", &["S1-C1"], ClientConfig::default())
            .await?;
        for k in 0..20 {
            device
                .record_checkin(NewCheckIn::new(
                    format!("S1-C1-K1-B{}-P1", k % 5 + 1),
                    CheckInOutcome::Inspected,
                ))
                .await?;
        }
        let sync = tokio::spawn({
            let device = device.clone();
            async move { device.sync().await }
        });
        server
            .wait_for("stalled at", Duration::from_secs(30))
            .await?;
        server.kill().await?;
        let _server = site.serve(None).await?;
        let restarted = Instant::now();
        let summary = tokio::time::timeout(Duration::from_secs(30), sync).await???;
        let waited = restarted.elapsed();
        println!("{backend}: synced {waited:?} after the restart");
        assert_eq!(
            (summary.applied, summary.remaining),
            (20, 0),
            "{backend}: {summary:?}"
        );
        assert!(
            waited < Duration::from_secs(2),
            "{backend}: the device noticed the restart only after {waited:?}"
        );
        assert_eq!(site.store.stats(0).await?.check_ins, 20, "{backend}");
    }
    Ok(())
}

/// Syncs `device` until nothing is pending (at most two minutes).
async fn sync_until_done(device: &Client) -> anyhow::Result<patrolsync_sdk::SyncSummary> {
    patrolsync_tests::sync_until_done(device, Duration::from_secs(120)).await
}

/// Three devices push 200 check-ins and a hazard each; the group commit that carries the first
/// of them is held at the fault point and the server is SIGKILLed there — before COMMIT (the
/// rows were written, not committed) and after it (committed, never answered). A new process
/// on the same data: every device converges, every check-in is stored once, and each device
/// sees all three hazards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_group_commit_then_restart_converges() -> anyhow::Result<()> {
    for point in [points::INGEST_BEFORE_COMMIT, points::INGEST_AFTER_COMMIT] {
        for db in test_databases().await {
            let backend = db.backend;
            let site = Site::new(db).await?;
            let mut server = site.serve(Some((point, 0))).await?;
            let mut fleet = Vec::new();
            for (i, name) in ["anna", "bo", "chen"].into_iter().enumerate() {
                let device = site.device(name, &["S1-C1"]).await?;
                let mut ids = Vec::new();
                for k in 0..200 {
                    let c = NewCheckIn::new(
                        format!("S1-C1-K{}-B{}-P1", k % 4 + 1, k % 5 + 1),
                        CheckInOutcome::Inspected,
                    );
                    ids.push(device.record_checkin(c).await?.to_string());
                }
                let hazard = device
                    .report_hazard(blocked_lane(&format!("S1-C1-K{}", i + 1)))
                    .await?;
                fleet.push((device, ids, hazard));
            }

            let syncs: Vec<_> = fleet
                .iter()
                .map(|(d, _, _)| {
                    tokio::spawn({
                        let d = d.clone();
                        async move { d.sync().await }
                    })
                })
                .collect();
            server
                .wait_for("stalled at", Duration::from_secs(30))
                .await?;
            server.kill().await?;
            let mut cut = 0;
            for s in syncs {
                cut += usize::from(s.await?.is_err());
            }
            assert!(cut > 0, "{backend}/{point}: the kill cut a sync");
            // The held group commit: not there when killed before COMMIT, there after it.
            // (A device's first push carries its hazard: queued hazard ops go first.)
            let stats = site.store.stats(0).await?;
            let held = stats.check_ins + stats.hazards;
            assert_eq!(
                held > 0,
                point == points::INGEST_AFTER_COMMIT,
                "{backend}/{point}: {held} check-ins and hazards stored when the server died"
            );

            let _server = site.serve(None).await?;
            let mut duplicates = 0;
            for (device, _, _) in &fleet {
                duplicates += sync_until_done(device).await?.duplicates;
            }
            // Once more each, so every device pulls what the others pushed.
            for (device, _, _) in &fleet {
                sync_until_done(device).await?;
            }

            let store = &site.store;
            let mut all = 0;
            let hazards: BTreeSet<String> = fleet.iter().map(|(_, _, h)| h.to_string()).collect();
            for (device, ids, hazard) in &fleet {
                let id = device_id(device).await?;
                let stored = stored_check_in_ids(store.as_ref(), Some(id)).await?;
                let mut recorded = ids.clone();
                recorded.sort();
                assert_eq!(
                    stored, recorded,
                    "{backend}/{point}: exactly what was recorded"
                );
                all += ids.len();
                let summary = store.hazard(*hazard).await?.expect("hazard stored");
                assert_eq!(
                    (summary.status.as_str(), summary.log_len),
                    ("reported", 1),
                    "{backend}/{point}"
                );
                let seen: BTreeSet<String> = device
                    .hazards()
                    .await?
                    .iter()
                    .map(|h| h.state.id.to_string())
                    .collect();
                assert_eq!(seen, hazards, "{backend}/{point}: converged");
            }
            assert_eq!(
                store.stats(0).await?.check_ins as usize,
                all,
                "{backend}/{point}: nothing doubled"
            );
            if point == points::INGEST_AFTER_COMMIT {
                assert!(
                    duplicates > 0,
                    "{backend}/{point}: the committed, unanswered push was sent again and known"
                );
            }
            println!("{backend}/{point}: {cut} syncs cut, {duplicates} resent ops known");
            site.db.cleanup().await;
        }
    }
    Ok(())
}

/// A device on its first sync pulls a backlog of 700 hazard reports in pages; the server is
/// SIGKILLed holding the second page. After the restart the device resumes from the page it
/// had, and its view equals the server's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_pull_page_then_restart_converges() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let site = Site::new(db).await?;
        let server = site.serve(None).await?;
        let reporter = site.device("reporter", &["S1-C1"]).await?;
        let mut reported = BTreeSet::new();
        for i in 0..700 {
            let hazard = blocked_lane(&format!("S1-C1-K{}", i % 4 + 1));
            reported.insert(reporter.report_hazard(hazard).await?.to_string());
        }
        sync_until_done(&reporter).await?;
        server.kill().await?;

        let mut server = site.serve(Some((points::PULL_PAGE, 1))).await?;
        let reader = site.device("reader", &["S1-C1"]).await?;
        let syncing = tokio::spawn({
            let reader = reader.clone();
            async move { reader.sync().await }
        });
        server
            .wait_for("stalled at", Duration::from_secs(60))
            .await?;
        server.kill().await?;
        let cut = syncing.await?;
        assert!(
            matches!(&cut, Err(patrolsync_sdk::SyncError::Network { .. })),
            "{backend}: the pull was cut: {cut:?}"
        );
        let partial = reader.hazards().await?.len();
        assert!(
            partial > 0 && partial < reported.len(),
            "{backend}: the first page was kept ({partial})"
        );

        let _server = site.serve(None).await?;
        sync_until_done(&reader).await?;
        let seen: BTreeSet<String> = reader
            .hazards()
            .await?
            .iter()
            .map(|h| h.state.id.to_string())
            .collect();
        assert_eq!(
            seen, reported,
            "{backend}: the reader's view is the server's"
        );
        let store = &site.store;
        for id in reported.iter().take(20) {
            let id = id.parse().map_err(anyhow::Error::msg)?;
            let server_side = store.hazard(id).await?.expect("stored");
            let local = reader.hazard(id).await?.expect("pulled");
            assert_eq!(
                server_side.status,
                local.state.status.to_string(),
                "{backend}"
            );
        }
        println!(
            "{backend}: the reader held {partial} of {} hazards when the server was killed",
            reported.len()
        );
        site.db.cleanup().await;
    }
    Ok(())
}

/// A patrol app's process is SIGKILLed while it records (between its local writes and its
/// sync), and then while it syncs — after the server committed its push and before the answer
/// arrived. Each time the next process finds its outbox whole: every check-in it reported
/// recorded is there, none twice, none acknowledged; and the server ends with each exactly
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_killed_while_recording_and_while_syncing_loses_and_doubles_nothing()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let fault_points = Arc::new(FaultPoints::default());
        let h = Harness::start_with_store(
            db,
            |_| {},
            |sql| Arc::new(sql.with_faults(fault_points.clone())),
        )
        .await?;
        let code = h.enrollment("walker", Role::Patroller, &["S1-C1"]).await?;
        let state = h.dir.path().join("phone");
        Client::open(&state, fast_client())
            .await?
            .enroll(&code, None, "phone")
            .await?;
        let state_arg = state.display().to_string();

        // Killed while recording: 300 records reported, then SIGKILL.
        let mut app = Proc::spawn(&["device", "--state-dir", &state_arg, "--record", "100000"])?;
        let mut printed = HashSet::new();
        while printed.len() < 300 {
            let line = app.wait_for("recorded ", Duration::from_secs(60)).await?;
            printed.insert(line["recorded ".len()..].to_owned());
        }
        for line in app.kill().await? {
            if let Some(id) = line.strip_prefix("recorded ") {
                printed.insert(id.to_owned());
            }
        }
        let device = Client::open(&state, fast_client()).await?;
        let local: Vec<String> = device
            .recent_check_ins(1_000_000, None)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let unique: HashSet<String> = local.iter().cloned().collect();
        assert_eq!(unique.len(), local.len(), "{backend}: no record twice");
        assert!(
            printed.is_subset(&unique),
            "{backend}: every reported record survived"
        );
        assert!(
            local.len() <= printed.len() + 1,
            "{backend}: at most the one record in flight was not reported ({} vs {})",
            local.len(),
            printed.len()
        );
        assert_eq!(device.status().await?.pending_ops, local.len() as u64);
        let id = device_id(&device).await?;
        drop(device);

        // Killed while syncing: the first push is committed, its answer held, the app killed.
        fault_points.arm(points::INGEST_AFTER_COMMIT, 0, FaultAction::Stall);
        let app = Proc::spawn(&[
            "device",
            "--state-dir",
            &state_arg,
            "--sync",
            "--batch-size",
            "100",
        ])?;
        tokio::time::timeout(
            Duration::from_secs(60),
            fault_points.stalled_at(points::INGEST_AFTER_COMMIT),
        )
        .await?;
        let store = h.server().store();
        let committed = stored_check_in_ids(store.as_ref(), Some(id)).await?.len();
        assert!(committed > 0, "{backend}: a push was committed");
        app.kill().await?;
        fault_points.release();

        let device = Client::open(&state, fast_client()).await?;
        assert_eq!(
            device.status().await?.pending_ops,
            local.len() as u64,
            "{backend}: the outbox is whole (no answer arrived)"
        );
        let known_before = h.server().metrics().ops_duplicate.get();
        sync_until_done(&device).await?;
        let known = h.server().metrics().ops_duplicate.get() - known_before;
        assert!(
            known >= committed as u64,
            "{backend}: the {committed} committed ops were sent again and known ({known})"
        );
        let mut outbox = local.clone();
        outbox.sort();
        assert_eq!(
            stored_check_in_ids(store.as_ref(), Some(id)).await?,
            outbox,
            "{backend}: exactly the outbox, each once"
        );
        assert_eq!(
            store.stats(0).await?.check_ins as usize,
            local.len(),
            "{backend}: nothing doubled"
        );
        println!(
            "{backend}: {} recorded before the kill ({} reported), {committed} committed unanswered",
            local.len(),
            printed.len()
        );
        h.finish().await;
    }
    Ok(())
}

/// A device offline for a week: 20,000 check-ins, 100 hazard reports and 50 photos (300 KB
/// each) wait in its outbox. The patrol app's process then syncs once: everything arrives
/// exactly once, every record is committed before the first photo is asked about, and the
/// process's peak resident memory is reported; the sync may add at most 16 MiB to what the
/// process held after opening its store (the outbox is streamed in pushes and the photos in
/// chunks, not loaded whole: the 50 photos alone are 15 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_week_offline_syncs_whole_records_first_in_bounded_memory() -> anyhow::Result<()> {
    use patrolsync_server::store::FaultyStore;
    const CHECK_INS: usize = 20_000;
    const HAZARDS: usize = 100;
    const PHOTOS: usize = 50;
    const PHOTO_BYTES: u32 = 300_000;
    for db in test_databases().await {
        let backend = db.backend;
        let mut wrapper = None;
        let h = Harness::start_with_store(
            db,
            |_| {},
            |sql| {
                let recorder = Arc::new(FaultyStore::new(Arc::new(sql)));
                recorder.ignore(&[
                    "revoked_since",
                    "stats",
                    "device_statuses",
                    "escalate_overdue",
                    "remind_due",
                    "dispatch",
                ]);
                wrapper = Some(recorder.clone());
                recorder
            },
        )
        .await?;
        let recorder = wrapper.expect("wrapped");
        let store = recorder.inner();
        let device = h.device("walker", "walker", &["S1-C1"]).await?;
        let started = Instant::now();
        let mut ids = BTreeSet::new();
        let mut hazards = BTreeSet::new();
        let mut shas = Vec::new();
        for i in 0..CHECK_INS {
            let mut c = NewCheckIn::new(
                format!("S1-C1-K{}-B{}-P{}", i % 4 + 1, i % 5 + 1, i % 2 + 1),
                CheckInOutcome::Inspected,
            );
            if i % (CHECK_INS / PHOTOS) == 0 {
                // Distinct photos: the check-in number leads each.
                let mut bytes: Vec<u8> = (0..PHOTO_BYTES)
                    .map(|b| (b.wrapping_mul(2_654_435_761) >> 24) as u8)
                    .collect();
                bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let path = h.dir.path().join(format!("photo-{i}.jpg"));
                std::fs::write(&path, &bytes)?;
                let sha = device.add_photo(&path).await?;
                c.photos = vec![sha];
                shas.push(sha);
            }
            ids.insert(device.record_checkin(c).await?.to_string());
            if i % (CHECK_INS / HAZARDS) == 0 {
                let hazard = blocked_lane(&format!("S1-C1-K{}", i % 4 + 1));
                hazards.insert(device.report_hazard(hazard).await?);
            }
        }
        let recorded_in = started.elapsed();
        let status = device.status().await?;
        assert_eq!(
            (status.pending_ops, status.pending_photos),
            ((CHECK_INS + HAZARDS) as u64, PHOTOS as u64),
            "{backend}"
        );
        let id = device_id(&device).await?;
        drop(device);

        recorder.take_calls();
        let state_arg = h.dir.path().join("walker").display().to_string();
        let mut app = Proc::spawn(&[
            "device",
            "--state-dir",
            &state_arg,
            "--sync",
            "--batch-size",
            "200",
            "--report-rss",
        ])?;
        let synced = app.wait_for("synced ", Duration::from_secs(600)).await?;
        let rss = app.wait_for("rss ", Duration::from_secs(10)).await?;
        let summary: serde_json::Value = serde_json::from_str(&synced["synced ".len()..])?;
        assert_eq!(summary["remaining"], 0, "{backend}: {summary}");
        assert_eq!(summary["photos_uploaded"], PHOTOS, "{backend}: {summary}");

        let calls = recorder.take_calls();
        let last_ingest = calls.iter().rposition(|c| *c == "ingest");
        let first_photo = calls
            .iter()
            .position(|c| matches!(*c, "blob" | "blob_access" | "record_blob"));
        assert!(
            matches!((last_ingest, first_photo), (Some(i), Some(p)) if i < p),
            "{backend}: records before photos: last ingest {last_ingest:?}, first photo call {first_photo:?}"
        );

        assert_eq!(
            stored_check_in_ids(store.as_ref(), Some(id)).await?,
            ids.into_iter().collect::<Vec<_>>(),
            "{backend}: every check-in, once"
        );
        for hazard in &hazards {
            assert!(store.hazard(*hazard).await?.is_some(), "{backend}");
        }
        for sha in &shas {
            assert_eq!(store.blob(sha).await?, Some(u64::from(PHOTO_BYTES)));
        }
        assert_eq!(store.stats(0).await?.check_ins as usize, CHECK_INS);

        let kib = |key: &str| -> anyhow::Result<u64> {
            rss.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("no {key} in {rss:?}"))
        };
        let (opened, peak) = (kib("opened_kib")?, kib("peak_kib")?);
        println!(
            "{backend}: a week offline ({CHECK_INS} check-ins, {HAZARDS} hazards, {PHOTOS} × \
             {PHOTO_BYTES} B photos; recorded in {:.1} s) synced in {} ms; device process \
             RSS {:.1} MiB after opening, peak {:.1} MiB",
            recorded_in.as_secs_f64(),
            summary["elapsed_ms"],
            opened as f64 / 1024.0,
            peak as f64 / 1024.0
        );
        assert!(
            peak.saturating_sub(opened) < 16 * 1024,
            "{backend}: the sync took {} KiB more than the opened store",
            peak.saturating_sub(opened)
        );
        h.finish().await;
    }
    Ok(())
}
