//! Devices: enroll, revoke, the fleet and one device, what they sent, refused and owe.

use std::sync::Arc;

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
                    "{}\n  patrolsync-device --state-dir DIR enroll --code '{}'",
                    if issued.grid_cells.is_empty()
                        && issued
                            .role
                            .parse::<patrolsync_proto::Role>()
                            .is_ok_and(patrolsync_proto::Role::is_party)
                    {
                        say!(
                            "cli-enroll-issued-no-cells",
                            user = issued.user,
                            role = super::word("role", issued.role.as_str()),
                            until = issued.expires_at
                        )
                    } else {
                        say!(
                            "cli-enroll-issued",
                            user = issued.user,
                            role = super::word("role", issued.role.as_str()),
                            cells = issued.grid_cells.join(","),
                            until = issued.expires_at
                        )
                    },
                    issued.enrollment
                );
            }
        }
        AdminCommand::Stats { json } => {
            let s = store.stats(crate::clock::now_ms()).await?;
            if json {
                print_json(&s)?;
            } else {
                let lines = [
                    say!(
                        "cli-stats-devices",
                        n = s.devices,
                        revoked = s.devices_revoked
                    ),
                    say!("cli-stats-users", n = s.users),
                    say!("cli-stats-cells", n = s.grid_cells),
                    say!("cli-stats-checkpoints", n = s.checkpoints),
                    say!(
                        "cli-stats-check-ins",
                        n = s.check_ins,
                        double = s.double_taps
                    ),
                    say!("cli-stats-hazards", n = s.hazards),
                    say!("cli-stats-photos", n = s.blobs, missing = s.missing_photos),
                    say!("cli-stats-rejected", n = s.rejected_ops),
                    say!("cli-stats-enrollment", n = s.open_enrollment_codes),
                ];
                for line in lines {
                    println!("{line}");
                }
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
                println!("{}", say!("cli-no-missing-photos"));
            } else {
                for m in rows {
                    println!(
                        "{}  {} {}  {}",
                        m.sha256,
                        m.record_kind,
                        m.record_id,
                        say!(
                            "cli-missing-photo-owed",
                            device = m.device,
                            user = m.user,
                            since = time_text(m.since_ms)
                        )
                    );
                }
            }
        }
        AdminCommand::Devices { state, sort, json } => {
            let now = crate::clock::now_ms();
            let (all, counts) =
                crate::health::fleet(store.device_statuses().await?, &config.health, now);
            let devices = crate::health::select_devices(all, state, None, &sort, None)?;
            if json {
                print_json(&devices)?;
            } else if devices.is_empty() && state.is_none() {
                println!("{}", say!("cli-no-devices"));
            } else {
                let lang = super::lang();
                let state_word = |s: &str| lang.word_or_key("dash-state", s);
                let summary: Vec<String> = counts
                    .iter()
                    .map(|(s, n)| format!("{n} {}", state_word(s.as_str())))
                    .collect();
                println!("{}", summary.join(", "));
                println!("{}", say!("cli-devices-header"));
                for d in devices {
                    let d = d.in_language(lang, now);
                    println!(
                        "{:<36}  {}  {:<12}  {}  {:>6}  {:>7}  {}",
                        d.status.id,
                        pad(&state_word(d.state.as_str()), 8),
                        d.status.user,
                        pad(
                            &d.status
                                .last_seen_at_ms
                                .map(|t| ago_text(now - t))
                                .unwrap_or_else(|| say!("dash-never")),
                            10
                        ),
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
            .await?;
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
                let lang = super::lang();
                let d = d.clone().in_language(lang, crate::clock::now_ms());
                let s = &d.status;
                let opt = |t: Option<i64>| t.map(time_text).unwrap_or_else(|| say!("dash-never"));
                let mut lines = vec![
                    say!("cli-device-id", id = s.id, name = s.name),
                    say!(
                        "cli-device-user",
                        user = s.user,
                        role = super::word("role", &s.role)
                    ),
                    say!(
                        "cli-device-state",
                        state = lang.word_or_key("dash-state", d.state.as_str()),
                        why = if d.reasons.is_empty() {
                            String::new()
                        } else {
                            say!("cli-device-why", reasons = d.reasons.join("; "))
                        }
                    ),
                    say!("cli-device-enrolled", at = time_text(s.enrolled_at_ms)),
                ];
                if let Some(t) = s.revoked_at_ms {
                    lines.push(say!("cli-device-revoked", at = time_text(t)));
                }
                lines.extend([
                    say!("cli-device-last-seen", at = opt(s.last_seen_at_ms)),
                    say!("cli-device-last-push", at = opt(s.last_push_at_ms)),
                    say!("cli-device-last-pull", at = opt(s.last_pull_at_ms)),
                    say!(
                        "cli-device-outbox",
                        ops = s.outbox_depth.unwrap_or(0),
                        oldest = s.oldest_pending_age_ms.unwrap_or(0),
                        acked = s.acked_through
                    ),
                    say!(
                        "cli-device-photos",
                        missing = s.missing_photos,
                        pending = s.pending_photo_bytes.unwrap_or(0)
                    ),
                    say!(
                        "cli-device-rejected",
                        ops = s.rejected_ops,
                        conflicts = s.conflicts
                    ),
                ]);
                if let (Some(at), Some(e)) = (s.last_error_at_ms, &s.last_error) {
                    lines.push(say!("cli-device-last-error", error = e, at = time_text(at)));
                }
                lines.extend([
                    say!(
                        "cli-device-link",
                        rtt = s.rtt_ms.unwrap_or(0),
                        bytes_in = s.bytes_in,
                        bytes_out = s.bytes_out,
                        offset = s.clock_offset_ms.unwrap_or(0)
                    ),
                    say!(
                        "cli-device-versions",
                        app = s.app_version.as_deref().unwrap_or("?"),
                        sdk = s.sdk_version.as_deref().unwrap_or("?")
                    ),
                ]);
                for h in history.iter() {
                    lines.push(format!(
                        "  {}",
                        say!(
                            "cli-device-hello",
                            at = time_text(h.at_ms),
                            ops = h.outbox_depth,
                            oldest = h.oldest_pending_age_ms,
                            photos = h.pending_photo_bytes,
                            rtt = h.rtt_ms.unwrap_or(0)
                        )
                    ));
                }
                for m in missing.iter() {
                    lines.push(format!(
                        "  {}",
                        say!(
                            "cli-device-missing-photo",
                            sha = m.sha256,
                            kind = super::word("dash-record", &m.record_kind),
                            record = m.record_id,
                            since = time_text(m.since_ms)
                        )
                    ));
                }
                for r in rejections.iter() {
                    lines.push(format!(
                        "  {}",
                        say!(
                            "cli-device-rejected-op",
                            seq = r.device_seq,
                            at = time_text(r.recorded_at_ms),
                            code = r.code,
                            field = r.field,
                            message = r.text(lang)
                        )
                    ));
                }
                for c in conflicts.iter() {
                    lines.push(format!(
                        "  {}",
                        say!(
                            "cli-device-conflict",
                            seq = c.device_seq,
                            at = time_text(c.recorded_at_ms),
                            message = c.message
                        )
                    ));
                }
                for line in lines {
                    println!("{line}");
                }
            }
        }
        AdminCommand::Revoke { device, json } => {
            let d = store.revoke_device(&device, crate::clock::now_ms()).await?;
            if json {
                print_json(&d)?;
            } else {
                println!(
                    "{}",
                    say!("cli-revoked", id = d.id, user = d.user, name = d.name)
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
                println!("{}", say!("cli-no-rejections"));
            } else {
                for r in rows {
                    println!(
                        "{}  {}",
                        time_text(r.recorded_at_ms),
                        say!(
                            "cli-rejection",
                            device = r.device,
                            seq = r.device_seq,
                            code = r.code,
                            field = r.field,
                            message = r.text(super::lang())
                        )
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
                println!("{}", say!("cli-no-conflicts"));
            } else {
                for c in rows {
                    println!(
                        "{}  {}",
                        time_text(c.recorded_at_ms),
                        say!(
                            "cli-conflict",
                            device = c.device,
                            seq = c.device_seq,
                            message = c.message
                        )
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
    say!("dash-ago", dur = super::lang().duration(ms))
}

/// `text` padded with spaces to `width` terminal columns (a Chinese character takes two).
fn pad(text: &str, width: usize) -> String {
    let used = unicode_width::UnicodeWidthStr::width(text);
    format!("{text}{}", " ".repeat(width.saturating_sub(used)))
}
