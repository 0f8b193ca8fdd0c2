//! Ingest: validates pushed ops against the protocol rules and the device user's scope, then
//! commits them through a group-commit queue. Pushes from many devices share one transaction
//! (commit cost dominates small transactions) and every device is answered only after that
//! commit. A device's pushes always go to the same writer, so its ops apply in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use patrolsync_proto::{Message, Op, OpBody, wire};
use tokio::sync::{mpsc, oneshot};

use crate::store::{
    BatchResult, CheckInRow, DeviceSession, IngestBatch, OpAction, PreparedOp, RejectCode,
    Rejection, Store, StoreError,
};

/// Most ops one group commit carries.
const MAX_OPS_PER_COMMIT: usize = 5000;

/// Validates a push's ops for `session` at server time `now_ms`, looking up checkpoints.
/// Each op gets either a row to insert or a rejection naming the field and the reason.
pub async fn prepare(
    store: &dyn Store,
    session: &DeviceSession,
    ops: Vec<wire::Op>,
    now_ms: i64,
) -> Result<IngestBatch, StoreError> {
    let mut decoded = Vec::with_capacity(ops.len());
    for w in ops {
        let device_seq = w.device_seq;
        let op_id = patrolsync_proto::OpId::from_slice(&w.op_id);
        let hlc = w.hlc.map(patrolsync_proto::Hlc::from).unwrap_or_default();
        let payload = w.encode_to_vec();
        decoded.push((device_seq, op_id, hlc, payload, Op::from_wire(w, now_ms)));
    }
    let mut codes: Vec<String> = decoded
        .iter()
        .filter_map(|d| match &d.4 {
            Ok(Op {
                body: OpBody::CheckIn(c),
                ..
            }) => Some(c.checkpoint.clone()),
            _ => None,
        })
        .collect();
    codes.sort();
    codes.dedup();
    let checkpoints: HashMap<String, _> = store
        .checkpoints(&codes)
        .await?
        .into_iter()
        .map(|c| (c.code.clone(), c))
        .collect();

    let reject = |code, reason: &str, field: &str, message: String, payload: Vec<u8>| {
        OpAction::Reject(Rejection {
            code,
            reason: reason.into(),
            field: field.into(),
            message,
            payload,
        })
    };
    let mut prepared = Vec::with_capacity(decoded.len());
    for (device_seq, op_id, hlc, payload, op) in decoded {
        // An op without a usable id still gets a result and a place in the rejection log.
        let op_id = op_id.unwrap_or(patrolsync_proto::OpId(uuid::Uuid::nil()));
        let action = match op {
            Err(invalid) => reject(
                RejectCode::Invalid,
                invalid.reason,
                &invalid.field,
                invalid.message,
                payload,
            ),
            Ok(Op {
                body: OpBody::CheckIn(c),
                ..
            }) => match checkpoints.get(&c.checkpoint) {
                None => reject(
                    RejectCode::NotFound,
                    "unknown_checkpoint",
                    "checkpoint",
                    format!("checkpoint {} does not exist", c.checkpoint),
                    payload,
                ),
                Some(cp) if cp.retired => reject(
                    RejectCode::Invalid,
                    "retired_checkpoint",
                    "checkpoint",
                    format!(
                        "checkpoint {} is retired and takes no new check-ins",
                        c.checkpoint
                    ),
                    payload,
                ),
                Some(cp) if !session.covers(&cp.cell_path) => reject(
                    RejectCode::Forbidden,
                    "outside_scope",
                    "checkpoint",
                    format!(
                        "checkpoint {} is outside your grid cells (assigned: {})",
                        c.checkpoint,
                        if session.cells.is_empty() {
                            "none".into()
                        } else {
                            session.cell_codes().join(", ")
                        }
                    ),
                    payload,
                ),
                Some(cp) => OpAction::InsertCheckIn(Box::new(CheckInRow {
                    checkpoint_id: cp.id,
                    cell_id: cp.cell_id,
                    check_in: *c,
                })),
            },
            Ok(other) => reject(
                RejectCode::Unsupported,
                "unsupported_op",
                "body",
                format!(
                    "{} ops are not accepted by this server version ({})",
                    other.body.kind_name(),
                    env!("CARGO_PKG_VERSION")
                ),
                payload,
            ),
        };
        prepared.push(PreparedOp {
            device_seq,
            op_id,
            hlc,
            action,
        });
    }
    prepared.sort_by_key(|p| p.device_seq);
    Ok(IngestBatch {
        device: session.id,
        user_id: session.user_id,
        ops: prepared,
    })
}

type Reply = oneshot::Sender<Result<BatchResult, Arc<StoreError>>>;

/// Statistics of the group-commit writers, for metrics and the benchmark.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Transactions committed.
    pub commits: std::sync::atomic::AtomicU64,
    /// Device pushes committed.
    pub batches: std::sync::atomic::AtomicU64,
}

/// The group-commit queue in front of the store.
#[derive(Clone, Debug)]
pub struct Ingestor {
    writers: Vec<mpsc::Sender<(IngestBatch, Reply)>>,
    stats: Arc<IngestStats>,
}

impl Ingestor {
    /// Starts `writers` writer tasks on `store` (1 for SQLite, which has one writer anyway).
    pub fn start(store: Arc<dyn Store>, writers: usize, clock: fn() -> i64) -> Ingestor {
        let stats = Arc::new(IngestStats::default());
        let senders = (0..writers.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(1024);
                tokio::spawn(writer(store.clone(), rx, stats.clone(), clock));
                tx
            })
            .collect();
        Ingestor {
            writers: senders,
            stats,
        }
    }

    /// Commits one device's push; resolves after the commit (or its failure).
    pub async fn commit(&self, batch: IngestBatch) -> Result<BatchResult, Arc<StoreError>> {
        let idx = (batch.device.0.as_u128() % self.writers.len() as u128) as usize;
        let (tx, rx) = oneshot::channel();
        let closed = || Arc::new(StoreError::Injected("ingest writer stopped".into()));
        self.writers[idx]
            .send((batch, tx))
            .await
            .map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Counters.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }
}

async fn writer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<(IngestBatch, Reply)>,
    stats: Arc<IngestStats>,
    clock: fn() -> i64,
) {
    use std::sync::atomic::Ordering::Relaxed;
    while let Some(first) = rx.recv().await {
        let mut ops = first.0.ops.len();
        let mut group = vec![first];
        while ops < MAX_OPS_PER_COMMIT {
            match rx.try_recv() {
                Ok(next) => {
                    ops += next.0.ops.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let started = Instant::now();
        let result = store.ingest(&batches, clock()).await;
        tracing::debug!(
            batches = batches.len(),
            ops,
            elapsed_ms = started.elapsed().as_millis() as u64,
            ok = result.is_ok(),
            "group commit"
        );
        match result {
            Ok(results) => {
                stats.commits.fetch_add(1, Relaxed);
                stats.batches.fetch_add(batches.len() as u64, Relaxed);
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, batches = batches.len(), "group commit failed; devices will retry");
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
