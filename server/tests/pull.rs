//! The change log under concurrent writers: a reader pulling in a loop while 8 writers commit
//! hazards in parallel ends with every change exactly once. On PostgreSQL concurrent
//! transactions commit out of order, so positions must be handed out in commit order or a
//! cursor skips a change that commits late with a smaller position.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use patrolsync_proto::hazard::{Handling, HazardCategory, HazardOp, Report, Severity};
use patrolsync_proto::{DeviceId, HazardId, Hlc, OpId, Role};
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::store::*;
use patrolsync_server::testkit::test_databases;

const NOW: i64 = 1_790_000_000_000;
const WRITERS: usize = 8;
const PUSHES: usize = 25;
const PER_PUSH: usize = 4;

async fn writer(store: Arc<dyn Store>, n: usize, cell: CellRef) -> anyhow::Result<Vec<HazardId>> {
    let hash = patrolsync_server::enroll::hash_code(&format!("W{n}"));
    store
        .create_enrollment(
            &NewEnrollment {
                code_hash: hash,
                user: format!("w{n}"),
                role: Role::Patroller,
                cells: vec!["S1".into()],
                expires_at_ms: NOW + 1,
                agency: None,
            },
            NOW,
        )
        .await?;
    let id = DeviceId(uuid::Uuid::now_v7());
    let device = NewDevice {
        id,
        name: "w".into(),
        cert_sha256: [n as u8 + 1; 32],
        app_version: String::new(),
    };
    let session = store.redeem_enrollment(&hash, &device, NOW).await?;
    let mut ids = Vec::new();
    let mut seq = 0u64;
    for _ in 0..PUSHES {
        let mut ops = Vec::new();
        for _ in 0..PER_PUSH {
            seq += 1;
            let hid = HazardId(uuid::Uuid::now_v7());
            ids.push(hid);
            let report = Report {
                id: hid,
                grid_cell: cell.code.clone(),
                checkpoint: String::new(),
                position: None,
                category: HazardCategory::Gas,
                severity: Severity::Major,
                handling: Handling::OnTheSpot,
                deadline_ms: None,
                description: format!("writer {n}"),
                photos: vec![],
                device_time_ms: NOW,
            };
            ops.push(PreparedOp {
                device_seq: seq,
                op_id: OpId(uuid::Uuid::now_v7()),
                hlc: Hlc {
                    wall_ms: NOW as u64,
                    logical: seq as u32,
                },
                action: OpAction::Hazard(Box::new(HazardRow {
                    op: HazardOp::Report(report),
                    role: Role::Patroller,
                    cell_id: cell.id,
                    cell_path: cell.path.clone(),
                    entry_id: hid.0,
                })),
            });
        }
        for r in store
            .ingest(
                &[IngestBatch {
                    device: session.id,
                    user_id: session.user_id,
                    ops,
                }],
                NOW,
            )
            .await?
        {
            r?;
        }
        tokio::task::yield_now().await;
    }
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pull_never_skips_late_commit() -> anyhow::Result<()> {
    for db in test_databases().await {
        let dir = tempfile::tempdir()?;
        let url = db
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()));
        let sql = SqlStore::connect(&url).await?;
        patrolsync_server::seed::seed_demo(&sql).await?;
        // The reader: a manager of the street, whose scope feed holds it from here on.
        sql.import_people(
            &[NewPerson {
                name: "reader".into(),
                role: Role::GridManager,
                agency: None,
                cells: vec!["S1".into()],
            }],
            NOW,
        )
        .await?;
        let reader_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE name = 'reader'")
            .fetch_one(sql.raw_pool())
            .await?;
        let store: Arc<dyn Store> = Arc::new(sql);
        let cell = store.cells(&["S1-C2-K3".into()]).await?.remove(0);
        let scope = PullScope {
            paths: vec!["/S1/".into()],
            agency: None,
            audience: PullScope::audience_of(reader_id, None),
        };
        let start = store.cursor().await?;

        let done = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn({
            let (store, done, scope) = (store.clone(), done.clone(), scope.clone());
            async move {
                let mut cursor = start;
                let mut seen: Vec<u64> = Vec::new();
                let mut reports: Vec<Vec<u8>> = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let page = store.pull(&scope, cursor, 0, 50, false).await?;
                    for c in &page.changes {
                        seen.push(c.seq);
                        reports.push(c.payload.clone());
                    }
                    cursor = page.next_cursor;
                    if finished && !page.has_more {
                        return Ok::<_, anyhow::Error>((seen, reports));
                    }
                    tokio::task::yield_now().await;
                }
            }
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|n| tokio::spawn(writer(store.clone(), n, cell.clone())))
            .collect();
        let mut expected = HashSet::new();
        for w in writers {
            expected.extend(w.await??);
        }
        done.store(true, Ordering::SeqCst);
        let (seen, reports) = reader.await??;

        let unique: HashSet<u64> = seen.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "{}: a change arrived twice",
            db.backend
        );
        assert_eq!(
            seen.len(),
            WRITERS * PUSHES * PER_PUSH,
            "{}: every change, none skipped",
            db.backend
        );
        let got: HashSet<HazardId> = reports
            .iter()
            .map(|p| match HazardOp::decode("report", p, Role::Patroller) {
                Ok(HazardOp::Report(r)) => r.id,
                other => panic!("unexpected change {other:?}"),
            })
            .collect();
        assert_eq!(got, expected, "{}", db.backend);
        db.cleanup().await;
    }
    Ok(())
}
