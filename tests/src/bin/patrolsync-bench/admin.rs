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

/// The server's admin HTTP, as the dashboard and a scraper reach it.
struct AdminHttp {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl AdminHttp {
    fn of(srv: &ServerProc) -> anyhow::Result<AdminHttp> {
        let addr = srv
            .admin
            .context("the admin address of an attached server is not known: pass --admin")?;
        let token = std::fs::read_to_string(srv.config.data_dir.join("admin.token"))
            .context("reading the server's admin.token")?;
        Ok(AdminHttp {
            base: format!("http://{addr}"),
            token: token.trim().to_owned(),
            http: reqwest::Client::new(),
        })
    }

    async fn get(&self, path: &str) -> anyhow::Result<String> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.text().await?;
        anyhow::ensure!(status.is_success(), "GET {path}: {status}: {body}");
        Ok(body)
    }
}

/// The group-commit writers' totals, from the server's `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct WriterTotals {
    /// Seconds the writers spent in group commits.
    pub busy_s: f64,
    pub commits: f64,
    pub pushes: f64,
}

impl WriterTotals {
    /// Reads them from `srv`'s `/metrics`.
    pub(super) async fn read(srv: &ServerProc) -> anyhow::Result<WriterTotals> {
        let text = AdminHttp::of(srv)?.get("/metrics").await?;
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?;
        let mut t = WriterTotals::default();
        for s in &scrape.samples {
            let v = match &s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => *v,
                _ => continue,
            };
            match s.metric.as_str() {
                "patrolsync_group_commit_seconds_sum" => t.busy_s = v,
                "patrolsync_group_commit_seconds_count" => t.commits = v,
                "patrolsync_group_commit_pushes_total" => t.pushes = v,
                _ => {}
            }
        }
        Ok(t)
    }

    /// What the writers did between `self` and `later`, over `seconds`.
    pub(super) fn since(&self, later: &WriterTotals, seconds: f64) -> Value {
        let commits = later.commits - self.commits;
        let pushes = later.pushes - self.pushes;
        json!({
            "busy_per_s": (later.busy_s - self.busy_s) / seconds,
            "commits": commits,
            "pushes": pushes,
            "pushes_per_commit": if commits > 0.0 { pushes / commits } else { 0.0 },
            "ms_per_push": if pushes > 0.0 { (later.busy_s - self.busy_s) * 1000.0 / pushes } else { 0.0 },
        })
    }
}

/// Each path `rounds` times after one untimed request: p50 and max in ms.
async fn time_paths(srv: &ServerProc, rounds: usize) -> anyhow::Result<Value> {
    let admin = AdminHttp::of(srv)?;
    let mut out = serde_json::Map::new();
    for path in PATHS {
        let mut ms = Vec::with_capacity(rounds);
        for round in 0..=rounds {
            let t = Instant::now();
            admin.get(path).await?;
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
