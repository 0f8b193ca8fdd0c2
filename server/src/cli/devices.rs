//! Devices: enroll, revoke, the fleet and one device, what they sent, refused and owe.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::*;
use crate::calendar::time_text;
use crate::config::*;
use crate::pki::Pki;
use crate::store::Store;

pub(super) async fn run(
    config: &Config,
    _sql: &Arc<dyn AdminStore>,
    store: &Arc<dyn Store>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::Enroll {
            user,
            role,
            grid,
            agency,
            server,
            expires,
            json,
        } => {
            let pki =
                Pki::open_shared(&config.data_dir, &config.server_names, store.as_ref()).await?;
            let request = crate::enroll::IssueRequest {
                user,
                role,
                cells: grid,
                server,
                ttl: expires,
                agency,
            };
            let issued = crate::enroll::issue(store.as_ref(), &pki, config, request).await?;
            if json {
                print_json(&issued)?;
            } else {
                println!("{}", issued.enrollment);
                eprintln!(
                    "one-time code for {} ({}, cells {}), valid until {}; on the device run:\n  patrolsync-device --state-dir DIR enroll --code '{}'",
                    issued.user,
                    issued.role,
                    issued.grid_cells.join(","),
                    issued.expires_at,
                    issued.enrollment
                );
            }
        }
        AdminCommand::Stats { json } => {
            let s = store.stats(crate::clock::now_ms()).await?;
            if json {
                print_json(&s)?;
            } else {
                println!(
                    "devices          {} ({} revoked)",
                    s.devices, s.devices_revoked
                );
                println!("users            {}", s.users);
                println!("grid cells       {}", s.grid_cells);
                println!("checkpoints      {}", s.checkpoints);
                println!(
                    "check-ins        {} ({} double taps, counted once)",
                    s.check_ins, s.double_taps
                );
                println!("hazards          {}", s.hazards);
                println!(
                    "photos           {} ({} referenced but missing)",
                    s.blobs, s.missing_photos
                );
                println!("rejected ops     {}", s.rejected_ops);
                println!("open enrollment  {}", s.open_enrollment_codes);
            }
        }
        AdminCommand::CheckIns {
            device,
            limit,
            json,
        } => {
            let rows = store.check_ins(device, limit).await?;
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        let c = &r.check_in;
                        serde_json::json!({
                            "id": c.id.to_string(), "checkpoint": c.checkpoint, "user": r.user, "device": r.device,
                            "device_seq": r.device_seq, "kind": c.kind.as_str(), "method": c.method.as_str(),
                            "outcome": c.outcome.as_str(), "device_time": time_text(c.device_time_ms),
                            "received_at": time_text(r.received_at_ms),
                            "fix": c.fix.as_ref().map(|f| serde_json::json!({"latitude": f.latitude, "longitude": f.longitude, "accuracy_m": f.accuracy_m, "mock": f.mock})),
                            "note": c.note, "monotonic_ms": c.monotonic_ms,
                        })
                    })
                    .collect();
                print_json(&v)?;
            } else {
                for r in rows {
                    let c = &r.check_in;
                    println!(
                        "{}  {:<18} {:<10} {:<8} {}  {}",
                        time_text(c.device_time_ms),
                        c.checkpoint,
                        c.outcome,
                        c.method,
                        r.user,
                        c.note
                    );
                }
            }
        }
        AdminCommand::MissingPhotos { limit, json } => {
            let rows = store.missing_photos(None, limit).await?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no missing photos");
            } else {
                for m in rows {
                    println!(
                        "{}  {} {}  owed by device {} ({}) since {}",
                        m.sha256,
                        m.record_kind,
                        m.record_id,
                        m.device,
                        m.user,
                        time_text(m.since_ms)
                    );
                }
            }
        }
        AdminCommand::Devices { state, sort, json } => {
            let now = crate::clock::now_ms();
            let (all, counts) =
                crate::health::fleet(store.device_statuses().await?, &config.health, now);
            let devices = crate::health::select_devices(all, state, None, &sort, None)
                .map_err(anyhow::Error::msg)?;
            if json {
                print_json(&devices)?;
            } else if devices.is_empty() && state.is_none() {
                println!("no devices enrolled yet; create a code with `patrolsync admin enroll`");
            } else {
                let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
                println!("{}", summary.join(", "));
                println!(
                    "{:<36}  {:<8}  {:<12}  {:<10}  {:>6}  {:>7}  WHY",
                    "DEVICE", "STATE", "USER", "LAST SEEN", "OUTBOX", "PHOTOS"
                );
                for d in devices {
                    println!(
                        "{:<36}  {:<8}  {:<12}  {:<10}  {:>6}  {:>7}  {}",
                        d.status.id,
                        d.state,
                        d.status.user,
                        d.status
                            .last_seen_at_ms
                            .map(|t| ago_text(now - t))
                            .unwrap_or_else(|| "never".into()),
                        d.status.outbox_depth.unwrap_or(0),
                        d.status.missing_photos,
                        d.reasons.join("; ")
                    );
                }
            }
        }
        AdminCommand::Device { device, json } => {
            let detail = crate::health::device_detail(
                store.as_ref(),
                &config.health,
                &device,
                10,
                crate::clock::now_ms(),
            )
            .await
            .context("see `patrolsync admin devices` for ids")?;
            let crate::health::DeviceDetail {
                device: d,
                history,
                rejections,
                conflicts,
                missing_photos: missing,
            } = &detail;
            if json {
                print_json(&detail)?;
            } else {
                let s = &d.status;
                let opt = |t: Option<i64>| t.map(time_text).unwrap_or_else(|| "never".into());
                println!("device        {} ({})", s.id, s.name);
                println!("user          {} ({})", s.user, s.role);
                println!(
                    "state         {}{}",
                    d.state,
                    if d.reasons.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", d.reasons.join("; "))
                    }
                );
                println!("enrolled      {}", time_text(s.enrolled_at_ms));
                if let Some(t) = s.revoked_at_ms {
                    println!("revoked       {}", time_text(t));
                }
                println!("last seen     {}", opt(s.last_seen_at_ms));
                println!("last push     {}", opt(s.last_push_at_ms));
                println!("last pull     {}", opt(s.last_pull_at_ms));
                println!(
                    "outbox        {} ops, oldest {} ms; acknowledged through op {}",
                    s.outbox_depth.unwrap_or(0),
                    s.oldest_pending_age_ms.unwrap_or(0),
                    s.acked_through
                );
                println!(
                    "photos        {} missing, {} bytes pending",
                    s.missing_photos,
                    s.pending_photo_bytes.unwrap_or(0)
                );
                println!(
                    "rejected      {} ops, {} conflicts",
                    s.rejected_ops, s.conflicts
                );
                if let (Some(at), Some(e)) = (s.last_error_at_ms, &s.last_error) {
                    println!("last error    {} at {}", e, time_text(at));
                }
                println!(
                    "link          RTT {} ms, {} bytes in, {} bytes out; clock offset {} ms",
                    s.rtt_ms.unwrap_or(0),
                    s.bytes_in,
                    s.bytes_out,
                    s.clock_offset_ms.unwrap_or(0)
                );
                println!(
                    "versions      app {}, SDK {}",
                    s.app_version.as_deref().unwrap_or("?"),
                    s.sdk_version.as_deref().unwrap_or("?")
                );
                for h in history.iter() {
                    println!(
                        "  hello {}  outbox {} (oldest {} ms)  photos {} B  RTT {} ms",
                        time_text(h.at_ms),
                        h.outbox_depth,
                        h.oldest_pending_age_ms,
                        h.pending_photo_bytes,
                        h.rtt_ms.unwrap_or(0)
                    );
                }
                for m in missing.iter() {
                    println!(
                        "  missing photo {} ({} {}) since {}",
                        m.sha256,
                        m.record_kind,
                        m.record_id,
                        time_text(m.since_ms)
                    );
                }
                for r in rejections.iter() {
                    println!(
                        "  rejected op {} at {}: {} {}: {}",
                        r.device_seq,
                        time_text(r.recorded_at_ms),
                        r.code,
                        r.field,
                        r.message
                    );
                }
                for c in conflicts.iter() {
                    println!(
                        "  conflict op {} at {}: {}",
                        c.device_seq,
                        time_text(c.recorded_at_ms),
                        c.message
                    );
                }
            }
        }
        AdminCommand::Revoke { device, json } => {
            let d = store.revoke_device(&device, crate::clock::now_ms()).await?;
            if json {
                print_json(&d)?;
            } else {
                println!(
                    "revoked device {} ({}, {}); a running server closes its connections within a second",
                    d.id, d.user, d.name
                );
            }
        }
        AdminCommand::Rejections {
            device,
            limit,
            json,
        } => {
            let rows = store.rejections(device.as_deref(), limit).await?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no rejected ops");
            } else {
                for r in rows {
                    println!(
                        "{}  device {} seq {}  {} {}: {}",
                        time_text(r.recorded_at_ms),
                        r.device,
                        r.device_seq,
                        r.code,
                        r.field,
                        r.message
                    );
                }
            }
        }
        AdminCommand::Conflicts {
            device,
            limit,
            json,
        } => {
            let rows = store.conflicts(device.as_deref(), limit).await?;
            if json {
                print_json(&rows)?;
            } else if rows.is_empty() {
                println!("no conflicts");
            } else {
                for c in rows {
                    println!(
                        "{}  device {} seq {}  {}",
                        time_text(c.recorded_at_ms),
                        c.device,
                        c.device_seq,
                        c.message
                    );
                }
            }
        }
        other => unreachable!("run_admin sends {other:?} elsewhere"),
    }
    Ok(())
}

/// "3 min ago" style text for an age in ms.
pub(super) fn ago_text(ms: i64) -> String {
    let secs = (ms.max(0) / 1000) as u64;
    format!(
        "{} ago",
        humantime::format_duration(Duration::from_secs(if secs > 3600 {
            secs / 60 * 60
        } else {
            secs
        }))
    )
}
