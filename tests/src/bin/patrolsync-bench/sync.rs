//! Sync workloads: a backlog drained, a bootstrap, idle connections, Notify fan-out.

use std::time::{Duration, Instant};

use anyhow::Context;
use fleet::{Device, Fleet};
use patrolsync_proto::{Role, wire};
use serde_json::{Value, json};
use server::ServerProc;

use super::*;

/// Workload 4a: one SDK device with a backlog of check-ins and photos comes online.
pub(super) async fn backlog(
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

/// Workload 4b: a manager's bootstrap of a whole city, in the two shapes a city-wide phone
/// meets: the manager assigned after the city was filled in (its grants are newer than every
/// entry: the pull sends each grant's backfill) and a manager assigned to the streets before
/// their communities, compounds, buildings and checkpoints were imported (its grants are older
/// than the entries: the pull reads the log through them).
pub(super) async fn bootstrap(
    srv: &ServerProc,
    fleet: &Fleet,
    first: usize,
    city: bool,
) -> anyhow::Result<Value> {
    let streets: Vec<String> = if city {
        (1..=patrolsync_server::seed::CITY[0])
            .map(|s| format!("S{s:03}"))
            .collect()
    } else {
        vec!["S1".into(), "S2".into()]
    };
    let mut early = None;
    if city {
        let (cells, checkpoints) = patrolsync_server::seed::city_grid();
        let (top, rest): (Vec<_>, Vec<_>) = cells.into_iter().partition(|c| c.level == 1);
        let t = Instant::now();
        srv.store.upsert_grid(&top, &[], fleet::now_ms()).await?;
        let codes = srv
            .codes("bench-early-manager", 1, Role::GridManager, &streets)
            .await?;
        early = Some(enroll_fleet(fleet, first + 1, codes, 1).await?.remove(0));
        srv.store
            .upsert_grid(&rest, &checkpoints, fleet::now_ms())
            .await?;
        eprintln!(
            "  seeded the synthetic city in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
    let codes = srv
        .codes("bench-manager", 1, Role::GridManager, &streets)
        .await?;
    let d = enroll_fleet(fleet, first, codes, 1).await?.remove(0);
    let mut out = json!({
        "scope": if city { "synthetic city (15,799 cells, 40,000 checkpoints)" } else { "demo city (S1, S2)" },
    });
    for (key, d) in [("assigned_after", Some(d)), ("assigned_before", early)] {
        let Some(d) = d else { continue };
        let s0 = d.conn.stats();
        let t = Instant::now();
        let changes =
            fleet::pull_all(&d.conn, &mut fleet::Position::default(), true, |_| {}).await?;
        let secs = t.elapsed().as_secs_f64();
        let s1 = d.conn.stats();
        d.conn.close(0u32.into(), b"done");
        out[key] = json!({
            "changes": changes,
            "seconds": secs,
            "bytes": (s1.udp_rx.bytes + s1.udp_tx.bytes) - (s0.udp_rx.bytes + s0.udp_tx.bytes),
        });
    }
    Ok(out)
}

/// Workload 5: idle connected devices; server memory per connection.
pub(super) async fn idle(
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
pub(super) async fn fan_out(
    devices: &[Device],
    reporter: &patrolsync_sdk::Client,
) -> anyhow::Result<Value> {
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
