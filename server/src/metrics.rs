//! Prometheus metrics and the short in-memory time series the dashboard charts.
//!
//! Counters and histograms are updated where things happen (transport, ingest); gauges that
//! describe the store (devices by health state, backlog, missing photos) are read from it at
//! scrape time, so they agree with the store on every node of a cluster. The time series is
//! per node and kept for an hour.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::health::{DeviceHealth, HealthState};
use crate::store::Stats;

/// Labels of an RPC counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `hello`, `push`, `pull`, `blob_status`, `blob_upload`, `blob_download`, `enroll`.
    pub kind: &'static str,
    /// `ok`, or the error code sent (`unavailable`, `limit_exceeded`, …).
    pub result: &'static str,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// Rejection code.
    pub code: &'static str,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// Health state.
    pub state: &'static str,
}

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    /// Store operation.
    pub op: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// A point of the dashboard's chart.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Sample {
    /// When, Unix ms.
    pub at_ms: i64,
    /// Ops ingested per second over the interval (this node).
    pub ops_per_s: f64,
    /// Pushes acknowledged in the interval (this node).
    pub acks: u64,
    /// Mean ack latency in the interval, ms.
    pub ack_mean_ms: f64,
    /// Slowest ack in the interval, ms.
    pub ack_max_ms: f64,
    /// Ops waiting in device outboxes, as devices last reported (fleet).
    pub backlog_ops: i64,
    /// Photo bytes waiting on devices, as last reported (fleet).
    pub pending_photo_bytes: i64,
    /// Photos referenced but not uploaded (fleet).
    pub missing_photos: i64,
}

#[derive(Debug, Default)]
struct Window {
    acks: u64,
    sum_ms: f64,
    max_ms: f64,
    ops_at_start: u64,
    started_ms: Option<i64>,
}

/// Samples kept: an hour at the default interval.
const SERIES_LEN: usize = 360;

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connections open now.
    pub connections_open: Gauge,
    /// Connections accepted (handshake done).
    pub connections: Counter,
    /// RPCs by kind and result.
    pub rpcs: Family<RpcLabels, Counter>,
    /// Time from a push's arrival to its acknowledgement (group commit included).
    pub ack_latency: Histogram,
    /// Ops stored (applied or recorded as conflicts).
    pub ops_ingested: Counter,
    /// Ops received again and answered `duplicate`.
    pub ops_duplicate: Counter,
    /// Ops refused, by code.
    pub ops_rejected: Family<CodeLabel, Counter>,
    /// Photo bytes received.
    pub photo_bytes: Counter,
    /// Photos verified and stored.
    pub photos_stored: Counter,
    /// Store calls on the request path, by operation.
    pub store_seconds: Family<OpLabel, Histogram>,
    /// Group commits (failed ones too), each timed: the sum over an interval is the time the
    /// writers were busy (one writer on SQLite: a rate of 1 s/s means it is saturated and
    /// pushes queue).
    pub group_commit_seconds: Histogram,
    /// Pushes in the group commits that committed (one whose own part rolled back counts too:
    /// the writer did its work); over the count above, about the pushes per commit.
    pub group_commit_pushes: Counter,
    /// Group commits whose pushes written together failed and were written again push by push
    /// (a deadlock, or a row the shared statements refused): each costs its writer twice.
    pub group_commit_rewrites: Counter,
    /// The store's count of those at the last commit (see [`Metrics::note_rewrites`]).
    rewrites_seen: std::sync::atomic::AtomicU64,
    /// Pushes waiting for a writer.
    pub ingest_queue: Gauge,
    devices: Family<StateLabel, Gauge>,
    missing_photos: Gauge,
    pending_photo_bytes: Gauge,
    outbox_ops: Gauge,
    check_ins: Gauge,
    hazards: Gauge,
    window: Mutex<Window>,
    series: Mutex<VecDeque<Sample>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("patrolsync");
        let m = Metrics {
            registry: Registry::default(),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            rpcs: Family::default(),
            ack_latency: latency_histogram(),
            ops_ingested: Counter::default(),
            ops_duplicate: Counter::default(),
            ops_rejected: Family::default(),
            photo_bytes: Counter::default(),
            photos_stored: Counter::default(),
            store_seconds: Family::new_with_constructor(latency_histogram),
            group_commit_seconds: latency_histogram(),
            group_commit_pushes: Counter::default(),
            group_commit_rewrites: Counter::default(),
            rewrites_seen: std::sync::atomic::AtomicU64::new(0),
            ingest_queue: Gauge::default(),
            devices: Family::default(),
            missing_photos: Gauge::default(),
            pending_photo_bytes: Gauge::default(),
            outbox_ops: Gauge::default(),
            check_ins: Gauge::default(),
            hazards: Gauge::default(),
            window: Mutex::default(),
            series: Mutex::default(),
        };
        registry.register(
            "connections_open",
            "QUIC connections open now",
            m.connections_open.clone(),
        );
        registry.register(
            "connections",
            "QUIC connections accepted",
            m.connections.clone(),
        );
        registry.register("rpcs", "RPCs answered, by kind and result", m.rpcs.clone());
        registry.register_with_unit(
            "ack_latency",
            "Time from a push's arrival to its acknowledgement",
            Unit::Seconds,
            m.ack_latency.clone(),
        );
        registry.register(
            "ops_ingested",
            "Ops stored (applied, or recorded as a conflict)",
            m.ops_ingested.clone(),
        );
        registry.register(
            "ops_duplicate",
            "Ops received again and answered duplicate",
            m.ops_duplicate.clone(),
        );
        registry.register(
            "ops_rejected",
            "Ops refused, by rejection code",
            m.ops_rejected.clone(),
        );
        registry.register_with_unit(
            "photo_received",
            "Photo bytes received",
            Unit::Bytes,
            m.photo_bytes.clone(),
        );
        registry.register(
            "photos_stored",
            "Photos verified and stored",
            m.photos_stored.clone(),
        );
        registry.register_with_unit(
            "store",
            "Store calls on the request path, by operation",
            Unit::Seconds,
            m.store_seconds.clone(),
        );
        registry.register_with_unit(
            "group_commit",
            "Group commits of device pushes; the sum is the writers' busy time",
            Unit::Seconds,
            m.group_commit_seconds.clone(),
        );
        registry.register(
            "group_commit_pushes",
            "Device pushes committed by group commits",
            m.group_commit_pushes.clone(),
        );
        registry.register(
            "group_commit_rewrites",
            "Group commits whose pushes written together failed and were written again push by push",
            m.group_commit_rewrites.clone(),
        );
        registry.register(
            "ingest_queue",
            "Device pushes waiting for a group commit",
            m.ingest_queue.clone(),
        );
        registry.register(
            "devices",
            "Enrolled devices by sync-health state",
            m.devices.clone(),
        );
        registry.register(
            "photos_missing",
            "Photos referenced by records but not uploaded",
            m.missing_photos.clone(),
        );
        registry.register_with_unit(
            "photo_backlog",
            "Photo bytes waiting on devices, as they last reported",
            Unit::Bytes,
            m.pending_photo_bytes.clone(),
        );
        registry.register(
            "outbox_ops",
            "Ops waiting in device outboxes, as they last reported",
            m.outbox_ops.clone(),
        );
        registry.register("check_ins", "Check-ins stored", m.check_ins.clone());
        registry.register("hazards", "Hazards stored", m.hazards.clone());
        Metrics { registry, ..m }
    }

    /// Counts one answered RPC.
    pub fn rpc(&self, kind: &'static str, result: &'static str) {
        self.rpcs.get_or_create(&RpcLabels { kind, result }).inc();
    }

    /// Records a push's acknowledgement latency.
    pub fn ack(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        self.ack_latency.observe(secs);
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.acks += 1;
        w.sum_ms += secs * 1000.0;
        w.max_ms = w.max_ms.max(secs * 1000.0);
    }

    /// Times one store call.
    pub fn store_call(&self, op: &'static str, took: Duration) {
        self.store_seconds
            .get_or_create(&OpLabel { op })
            .observe(took.as_secs_f64());
    }

    /// Counts the store's rewritten group commits up to `total` (its count since it opened):
    /// writers sharing a store each pass what they read, and only what is above the largest
    /// count passed so far is added.
    pub fn note_rewrites(&self, total: u64) {
        let seen = self
            .rewrites_seen
            .fetch_max(total, std::sync::atomic::Ordering::Relaxed);
        if total > seen {
            self.group_commit_rewrites.inc_by(total - seen);
        }
    }

    /// Sets the gauges read from the store.
    pub fn set_fleet(&self, devices: &[DeviceHealth], stats: &Stats) {
        for state in HealthState::ALL {
            let n = devices.iter().filter(|d| d.state == state).count();
            self.devices
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(n as i64);
        }
        let backlog = crate::health::backlog(devices);
        self.outbox_ops.set(backlog.outbox_ops);
        self.pending_photo_bytes.set(backlog.pending_photo_bytes);
        self.missing_photos.set(stats.missing_photos);
        self.check_ins.set(stats.check_ins);
        self.hazards.set(stats.hazards);
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Closes the current interval into a sample (after [`Metrics::set_fleet`]); `interval`
    /// is the expected length, used for the first one.
    pub fn sample(&self, now_ms: i64, interval: Duration) {
        let ops = self.ops_ingested.get();
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed_s = match w.started_ms {
            Some(start) => (now_ms - start) as f64 / 1000.0,
            None => interval.as_secs_f64(),
        };
        let sample = Sample {
            at_ms: now_ms,
            ops_per_s: ops.saturating_sub(w.ops_at_start) as f64 / elapsed_s.max(0.001),
            acks: w.acks,
            ack_mean_ms: if w.acks == 0 {
                0.0
            } else {
                w.sum_ms / w.acks as f64
            },
            ack_max_ms: w.max_ms,
            backlog_ops: self.outbox_ops.get(),
            pending_photo_bytes: self.pending_photo_bytes.get(),
            missing_photos: self.missing_photos.get(),
        };
        *w = Window {
            ops_at_start: ops,
            started_ms: Some(now_ms),
            ..Window::default()
        };
        drop(w);
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        if series.len() == SERIES_LEN {
            series.pop_front();
        }
        series.push_back(sample);
    }

    /// The samples kept, oldest first.
    pub fn series(&self) -> Vec<Sample> {
        self.series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers sharing a store read its count in any order; each rewrite is counted once.
    #[test]
    fn rewrites_read_by_several_writers_count_once() {
        let m = Metrics::new();
        for total in [0, 2, 1, 2, 5, 3] {
            m.note_rewrites(total);
        }
        assert_eq!(m.group_commit_rewrites.get(), 5);
    }
}
