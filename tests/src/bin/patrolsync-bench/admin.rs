//! Workload 7: what an admin's screens cost on a loaded server: a Prometheus scrape
//! (`/metrics`), the dashboard's summary (`/api/summary`) and the first page of the device list
//! (`/api/devices`), each timed on the server under test (the synthetic city and every device
//! the run enrolled, the idle ones still connected) and on an empty server started beside it.

use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};
use server::ServerProc;

use super::*;

/// What is timed, as the dashboard and a scraper ask for it.
pub(super) const PATHS: [&str; 3] = ["/metrics", "/api/summary", "/api/devices?limit=50"];

/// Each path `rounds` times after one untimed request: p50 and max in ms.
async fn time_paths(srv: &ServerProc, rounds: usize) -> anyhow::Result<Value> {
    let addr = srv
        .admin
        .context("the admin address of an attached server is not known: pass --admin")?;
    let token = std::fs::read_to_string(srv.config.data_dir.join("admin.token"))
        .context("reading the server's admin.token")?;
    let http = reqwest::Client::new();
    let mut out = serde_json::Map::new();
    for path in PATHS {
        let mut ms = Vec::with_capacity(rounds);
        for round in 0..=rounds {
            let t = Instant::now();
            let resp = http
                .get(format!("http://{addr}{path}"))
                .bearer_auth(token.trim())
                .send()
                .await?;
            let status = resp.status();
            let body = resp.bytes().await?;
            anyhow::ensure!(
                status.is_success(),
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
            if round > 0 {
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        ms.sort_by(f64::total_cmp);
        out.insert(
            path.to_owned(),
            json!({ "p50": percentile(&ms, 0.5), "max": ms.last().copied().unwrap_or(0.0) }),
        );
    }
    Ok(Value::Object(out))
}

/// Times the admin reads on `loaded` and on `empty`.
pub(super) async fn admin_reads(
    loaded: &ServerProc,
    empty: &ServerProc,
    rounds: usize,
) -> anyhow::Result<Value> {
    let stats = loaded.store.stats(fleet::now_ms()).await?;
    Ok(json!({
        "loaded": {
            "devices": stats.devices,
            "grid_cells": stats.grid_cells,
            "checkpoints": stats.checkpoints,
            "check_ins": stats.check_ins,
            "ms": time_paths(loaded, rounds).await?,
        },
        "baseline": { "what": "the same requests to an empty server", "ms": time_paths(empty, rounds).await? },
        "rounds": rounds,
        "target_ms": 200,
    }))
}
