//! `patrolsync-bench soak`: patrol devices (the real SDK) each behind its own lossy, jittery
//! link record check-ins, report hazards with photos and move them through the closed loop,
//! syncing as they go, while a seeded schedule switches their networks, blackholes their links
//! and SIGKILLs the server. When the time is up the faults stop, every device syncs until its
//! outbox is empty, and the run checks convergence: the store holds exactly the check-ins the
//! devices recorded, once each; every photo under its hash; every hazard; and every device's
//! view of every hazard equals the server's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use patrolsync_proto::hazard::{EventKind, HazardState};
use patrolsync_proto::{CheckInOutcome, HazardId, Role};
use patrolsync_sdk::{Client, ClientConfig, NewCheckIn, Transition};
use patrolsync_tests::relay::{Faults, Relay};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use crate::server::ServerProc;

/// What `soak` runs.
#[derive(clap::Args, Debug, Clone)]
pub struct SoakArgs {
    /// Load with faults for this long, then check convergence (e.g. 90s, 10m, 2h).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Devices, each behind its own faulty link; the last is the grid manager.
    #[arg(long, default_value_t = 6)]
    pub devices: usize,
    /// SIGKILL the server and start it again on the same data this often (0s: never).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub kill_every: Duration,
    /// Packet loss on every link, each way (0 to 1).
    #[arg(long, default_value_t = 0.05)]
    pub loss: f64,
    /// Jitter on every link (reorders packets).
    #[arg(long, default_value = "40ms", value_parser = humantime::parse_duration)]
    pub jitter: Duration,
    /// Seed of the links, the load and the fault schedule.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What one device recorded.
#[derive(Default)]
struct Walked {
    check_ins: BTreeSet<String>,
    hazards: BTreeSet<String>,
    /// Photo hash → size.
    photos: BTreeMap<[u8; 32], u64>,
    /// Transitions recorded: (hazard, event id).
    transitions: Vec<(String, String)>,
}

#[derive(Default)]
struct Counts {
    syncs_ok: AtomicU64,
    syncs_failed: AtomicU64,
    switches: AtomicU64,
    blackholes: AtomicU64,
    kills: AtomicU64,
}

/// Runs the soak against a server this benchmark starts; returns the report.
pub async fn run(
    args: &SoakArgs,
    work: &Path,
    database_url: Option<String>,
) -> anyhow::Result<Value> {
    anyhow::ensure!(
        args.devices >= 2,
        "--devices: at least 2 (patrollers and a manager)"
    );
    anyhow::ensure!((0.0..1.0).contains(&args.loss), "--loss: from 0 to below 1");
    let mut srv = ServerProc::start(&work.join("server"), database_url).await?;
    patrolsync_server::seed::seed_demo(srv.store.as_ref()).await?;
    let faults = |i: usize| Faults {
        loss: args.loss,
        jitter: args.jitter,
        seed: args.seed * 1000 + i as u64,
        ..Faults::default()
    };
    let config = ClientConfig {
        app_version: "soak".into(),
        batch_size: 100,
        connect_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(8),
        max_attempts: 2,
        initial_backoff: Duration::from_millis(200),
        ..ClientConfig::default()
    };
    let mut fleet = Vec::new();
    for i in 0..args.devices {
        let role = if i + 1 == args.devices {
            Role::GridManager
        } else {
            Role::Patroller
        };
        let code = srv
            .codes(&format!("soak-{i}"), 1, role, &["S1-C1".into()])
            .await?;
        let relay = Arc::new(Relay::start(srv.addr, faults(i)).await?);
        let device = Client::open(work.join(format!("device-{i}")), config.clone()).await?;
        device
            .enroll(
                &code[0],
                Some(&relay.addr().to_string()),
                &format!("soak-{i}"),
            )
            .await?;
        fleet.push((device, relay, role));
    }
    eprintln!(
        "soak: {} devices on {:.0}% loss and {:?} jitter for {:?}, server killed every {:?}",
        args.devices,
        args.loss * 100.0,
        args.jitter,
        args.duration,
        args.kill_every
    );

    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let deadline = started + args.duration;
    let walks: Vec<_> = fleet
        .iter()
        .enumerate()
        .map(|(i, (device, _, role))| {
            tokio::spawn(walk(
                device.clone(),
                *role,
                ChaCha8Rng::seed_from_u64(args.seed ^ (i as u64) << 32),
                work.join(format!("photos-{i}")),
                deadline,
                counts.clone(),
            ))
        })
        .collect();

    // The fault schedule: each second, maybe switch a device's network or blackhole its link;
    // and the server crash on its own period.
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut next_kill = started + args.kill_every;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (_, relay, _) = &fleet[rng.gen_range(0..fleet.len())];
        match rng.gen_range(0..10) {
            0..=1 => {
                relay.switch_network().await?;
                counts.switches.fetch_add(1, Ordering::Relaxed);
            }
            2 => {
                relay.blackhole(Duration::from_millis(rng.gen_range(500..4000)));
                counts.blackholes.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        if !args.kill_every.is_zero() && Instant::now() >= next_kill {
            srv.kill_and_restart()?;
            counts.kills.fetch_add(1, Ordering::Relaxed);
            next_kill += args.kill_every;
        }
    }
    let mut walked = Vec::new();
    for w in walks {
        walked.push(w.await??);
    }
    let load_s = started.elapsed().as_secs_f64();

    // The links heal; everyone syncs until nothing is pending, then once more to pull.
    for (_, relay, _) in &fleet {
        relay.set(Faults::default());
        relay.blackhole(Duration::ZERO);
    }
    let converging = Instant::now();
    for _ in 0..2 {
        for (device, _, _) in &fleet {
            patrolsync_tests::sync_until_done(device, Duration::from_secs(300)).await?;
        }
    }
    let converge_s = converging.elapsed().as_secs_f64();

    let verdict = check(&srv, &fleet, &walked).await;
    let recorded: usize = walked.iter().map(|w| w.check_ins.len()).sum();
    let report = json!({
        "seed": args.seed,
        "devices": args.devices,
        "duration_s": args.duration.as_secs_f64(),
        "load_s": load_s,
        "loss": args.loss,
        "jitter_ms": args.jitter.as_millis() as u64,
        "check_ins": recorded,
        "hazards": walked.iter().map(|w| w.hazards.len()).sum::<usize>(),
        "photos": walked.iter().map(|w| w.photos.len()).sum::<usize>(),
        "transitions": walked.iter().map(|w| w.transitions.len()).sum::<usize>(),
        "syncs_ok": counts.syncs_ok.load(Ordering::Relaxed),
        "syncs_failed": counts.syncs_failed.load(Ordering::Relaxed),
        "network_switches": counts.switches.load(Ordering::Relaxed),
        "blackholes": counts.blackholes.load(Ordering::Relaxed),
        "server_kills": counts.kills.load(Ordering::Relaxed),
        "packets_dropped": fleet.iter().map(|(_, r, _)| r.stats().dropped).sum::<u64>(),
        "converge_s": converge_s,
        "converged": verdict.is_ok(),
        "problem": verdict.as_ref().err().map(|e| e.to_string()),
    });
    srv.stop()?;
    Ok(report)
}

/// One device's patrol until `deadline`: rounds of check-ins, sometimes a hazard (often with a
/// photo) or a photo on a check-in, sometimes a step of a hazard's closed loop, then a sync.
async fn walk(
    device: Client,
    role: Role,
    mut rng: ChaCha8Rng,
    photo_dir: std::path::PathBuf,
    deadline: Instant,
    counts: Arc<Counts>,
) -> anyhow::Result<Walked> {
    std::fs::create_dir_all(&photo_dir)?;
    let mut w = Walked::default();
    let mut photo_no = 0u64;
    let mut photo = |rng: &mut ChaCha8Rng| -> anyhow::Result<(std::path::PathBuf, u64)> {
        photo_no += 1;
        let mut bytes = vec![0u8; rng.gen_range(20_000..200_000)];
        rng.fill(&mut bytes[..]);
        let path = photo_dir.join(format!("{photo_no}.jpg"));
        std::fs::write(&path, &bytes)?;
        Ok((path, bytes.len() as u64))
    };
    while Instant::now() < deadline {
        if role == Role::Patroller {
            for _ in 0..rng.gen_range(5..40) {
                let mut c = NewCheckIn::new(
                    format!(
                        "S1-C1-K{}-B{}-P{}",
                        rng.gen_range(1..=4),
                        rng.gen_range(1..=5),
                        rng.gen_range(1..=2)
                    ),
                    CheckInOutcome::Inspected,
                );
                if rng.gen_bool(0.03) {
                    let (path, size) = photo(&mut rng)?;
                    let sha = device.add_photo(path).await?;
                    w.photos.insert(sha, size);
                    c.photos = vec![sha];
                }
                w.check_ins
                    .insert(device.record_checkin(c).await?.to_string());
            }
            if rng.gen_bool(0.3) {
                let mut h =
                    patrolsync_tests::blocked_lane(&format!("S1-C1-K{}", rng.gen_range(1..=4)));
                if rng.gen_bool(0.5) {
                    let (path, size) = photo(&mut rng)?;
                    let sha = device.add_photo(path).await?;
                    w.photos.insert(sha, size);
                    h.photos = vec![sha];
                }
                w.hazards.insert(device.report_hazard(h).await?.to_string());
            }
        }
        // A step of the closed loop on a hazard this device sees: patrollers fix on the spot,
        // the manager notifies or verifies. Two devices may move the same hazard offline; the
        // merge decides, and the loser shows as a conflict.
        let views = device.hazards().await?;
        if !views.is_empty() && rng.gen_bool(0.5) {
            let view = &views[rng.gen_range(0..views.len())];
            use patrolsync_proto::hazard::Status as S;
            let kind = match (role, view.state.status) {
                (Role::Patroller, S::Reported) => Some(EventKind::FixOnSpot),
                (Role::GridManager, S::Reported) => Some(EventKind::Notify),
                (Role::GridManager, S::Rectified) => Some(EventKind::VerifyPass),
                _ => None,
            };
            if let Some(kind) = kind {
                let mut t = Transition {
                    note: "soak".into(),
                    deadline_ms: (kind == EventKind::Notify).then_some(4_000_000_000_000),
                    ..Transition::default()
                };
                if kind == EventKind::FixOnSpot {
                    // A fix is shown with an after photo.
                    let (path, size) = photo(&mut rng)?;
                    let sha = device.add_photo(path).await?;
                    w.photos.insert(sha, size);
                    t.photos = vec![sha];
                }
                let event = device.transition_hazard(view.state.id, kind, t).await?;
                w.transitions
                    .push((view.state.id.to_string(), event.to_string()));
            }
        }
        match device.sync().await {
            Ok(_) => counts.syncs_ok.fetch_add(1, Ordering::Relaxed),
            Err(_) => counts.syncs_failed.fetch_add(1, Ordering::Relaxed),
        };
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..400))).await;
    }
    Ok(w)
}

/// The convergence check.
async fn check(
    srv: &ServerProc,
    fleet: &[(Client, Arc<Relay>, Role)],
    walked: &[Walked],
) -> anyhow::Result<()> {
    let store = &srv.store;
    let stored = patrolsync_tests::stored_check_in_ids(store.as_ref(), None).await?;
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    anyhow::ensure!(unique.len() == stored.len(), "a check-in is stored twice");
    let recorded: BTreeSet<String> = walked.iter().flat_map(|w| w.check_ins.clone()).collect();
    anyhow::ensure!(
        unique == recorded,
        "stored check-ins differ from recorded: {} stored, {} recorded, {} missing",
        unique.len(),
        recorded.len(),
        recorded.difference(&unique).count()
    );
    for (sha, size) in walked.iter().flat_map(|w| &w.photos) {
        anyhow::ensure!(
            store.blob(sha).await? == Some(*size),
            "photo {} is not stored whole",
            hex::encode(sha)
        );
    }
    let missing = store.missing_photos(None, 10).await?;
    anyhow::ensure!(
        missing.is_empty(),
        "the server lacks photos records refer to: {missing:?}"
    );
    // Every device folded the same state for every hazard, and it is the server's.
    let views: Vec<BTreeMap<String, HazardState>> = {
        let mut v = Vec::new();
        for (device, _, _) in fleet {
            v.push(
                device
                    .hazards()
                    .await?
                    .into_iter()
                    .map(|h| (h.state.id.to_string(), h.state))
                    .collect(),
            );
        }
        v
    };
    let reported: BTreeSet<String> = walked.iter().flat_map(|w| w.hazards.clone()).collect();
    for (i, view) in views.iter().enumerate() {
        anyhow::ensure!(
            view.keys().cloned().collect::<BTreeSet<_>>() == reported,
            "device {i} sees {} hazards, {} were reported",
            view.len(),
            reported.len()
        );
        anyhow::ensure!(
            view == &views[0],
            "device {i}'s hazards differ from device 0's"
        );
    }
    for (id, state) in &views[0] {
        let hazard: HazardId = id.parse().map_err(anyhow::Error::msg)?;
        let summary = store
            .hazard(hazard)
            .await?
            .ok_or_else(|| anyhow::anyhow!("hazard {id} is not stored"))?;
        anyhow::ensure!(
            summary.status == state.status.to_string()
                && summary.conflicts == state.conflicts().count() as i64,
            "hazard {id}: server {} with {} conflicts, devices {} with {}",
            summary.status,
            summary.conflicts,
            state.status,
            state.conflicts().count()
        );
    }
    // Every step a device took is in its hazard's history, applied or as a conflict.
    for (hazard, event) in walked.iter().flat_map(|w| &w.transitions) {
        let state = &views[0][hazard];
        anyhow::ensure!(
            state.history.iter().any(|h| h.event.to_string() == *event),
            "event {event} of hazard {hazard} is in no history"
        );
    }
    Ok(())
}

/// The human summary of a soak report.
pub fn summary(r: &Value) -> String {
    format!(
        "soak (seed {}): {} devices, {:.0} s of load at {}% loss / {} ms jitter\n\
         recorded {} check-ins, {} hazards, {} photos, {} hazard steps; {} syncs ok, {} failed\n\
         faults: {} server kills, {} network switches, {} blackholes, {} packets dropped\n\
         converged: {} (in {:.1} s after the faults stopped){}\n",
        r["seed"],
        r["devices"],
        r["load_s"].as_f64().unwrap_or(0.0),
        r["loss"].as_f64().unwrap_or(0.0) * 100.0,
        r["jitter_ms"],
        r["check_ins"],
        r["hazards"],
        r["photos"],
        r["transitions"],
        r["syncs_ok"],
        r["syncs_failed"],
        r["server_kills"],
        r["network_switches"],
        r["blackholes"],
        r["packets_dropped"],
        r["converged"],
        r["converge_s"].as_f64().unwrap_or(0.0),
        r["problem"]
            .as_str()
            .map(|p| format!("\nPROBLEM: {p}"))
            .unwrap_or_default()
    )
}
