//! The change log under concurrent writers: a reader pulling in a loop while 8 writers commit
//! hazards in parallel ends with every change exactly once. On PostgreSQL concurrent
//! transactions commit out of order, so positions must be handed out in commit order or a
//! cursor skips a change that commits late with a smaller position. And what the group-commit
//! writer reports while a push waits behind a commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use patrolsync_proto::hazard::{Handling, HazardCategory, HazardOp, Report, Severity};
use patrolsync_proto::{DeviceId, HazardId, Role};
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::store::*;
use patrolsync_server::testkit::{report_op, test_databases};

const NOW: i64 = 1_790_000_000_000;
const WRITERS: usize = 8;
const PUSHES: usize = 25;
const PER_PUSH: usize = 4;

/// The demo grid in `sql`, and a reader: a manager of street S1, whose scope feed holds it
/// from here on. Returns the store, the compound S1-C2-K3 (where the writers report) and the
/// reader's pull scope.
async fn demo_with_reader(sql: SqlStore) -> anyhow::Result<(Arc<dyn Store>, CellRef, PullScope)> {
    patrolsync_server::seed::seed_demo(&sql).await?;
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
    Ok((store, cell, scope))
}

/// A patroller of street S1 named `user`, enrolled with a device whose certificate hash is
/// `cert` repeated.
async fn patroller(store: &dyn Store, user: &str, cert: u8) -> anyhow::Result<DeviceSession> {
    let hash = patrolsync_server::enroll::hash_code(&format!("code-{user}"));
    store
        .create_enrollment(
            &NewEnrollment {
                code_hash: hash,
                user: user.to_owned(),
                role: Role::Patroller,
                cells: vec!["S1".into()],
                expires_at_ms: NOW + 1,
                agency: None,
            },
            NOW,
        )
        .await?;
    let device = NewDevice {
        id: DeviceId(uuid::Uuid::now_v7()),
        name: user.to_owned(),
        cert_sha256: [cert; 32],
        app_version: String::new(),
    };
    Ok(store.redeem_enrollment(&hash, &device, NOW).await?)
}

async fn writer(store: Arc<dyn Store>, n: usize, cell: CellRef) -> anyhow::Result<Vec<HazardId>> {
    let session = patroller(store.as_ref(), &format!("w{n}"), n as u8 + 1).await?;
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
            ops.push(report_op(seq, report, cell.id, &cell.path, hid.0, NOW));
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
        let (store, cell, scope) = demo_with_reader(sql).await?;
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

/// One hazard report by `session`, as a batch.
fn report_batch(session: &DeviceSession, cell: &CellRef, seq: u64) -> (IngestBatch, HazardId) {
    let hid = HazardId(uuid::Uuid::now_v7());
    let report = Report {
        id: hid,
        grid_cell: cell.code.clone(),
        checkpoint: String::new(),
        position: None,
        category: HazardCategory::Gas,
        severity: Severity::Major,
        handling: Handling::OnTheSpot,
        deadline_ms: None,
        description: "late".into(),
        photos: vec![],
        device_time_ms: NOW,
    };
    let batch = IngestBatch {
        device: session.id,
        user_id: session.user_id,
        ops: vec![report_op(seq, report, cell.id, &cell.path, hid.0, NOW)],
    };
    (batch, hid)
}

/// What the change log's lock is for, shown without a race left to chance: writer A takes a
/// position and is held before its COMMIT (a fault point); writer B takes the next position
/// and commits; a reader pulls, then A commits. Without the lock the reader's cursor has passed
/// A's position before A committed, and A's report never reaches it. With the lock B waits for
/// A, and the reader gets both. PostgreSQL only: SQLite has one writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_lock_a_late_commit_is_skipped_and_with_it_none_is() -> anyhow::Result<()> {
    use patrolsync_server::faults::{FaultAction, FaultPoints, points};
    for locked in [false, true] {
        let Some(db) = patrolsync_server::testkit::test_postgres().await else {
            return Ok(());
        };
        let faults = Arc::new(FaultPoints::default());
        let mut sql = SqlStore::connect(db.url.as_deref().expect("postgres"))
            .await?
            .with_faults(faults.clone());
        if !locked {
            sql = sql.without_change_log_lock();
        }
        let (store, cell, scope) = demo_with_reader(sql).await?;
        let mut sessions = Vec::new();
        for n in 0..2u8 {
            sessions.push(patroller(store.as_ref(), &format!("late{n}"), 0xa0 + n).await?);
        }
        let start = store.cursor().await?;

        // A takes its position and is held before COMMIT.
        faults.arm(points::INGEST_BEFORE_COMMIT, 0, FaultAction::Pause);
        let (batch_a, a) = report_batch(&sessions[0], &cell, 1);
        let writer_a = tokio::spawn({
            let store = store.clone();
            async move { store.ingest(&[batch_a], NOW).await }
        });
        faults.stalled_at(points::INGEST_BEFORE_COMMIT).await;
        // B commits after A took its position (or, under the lock, waits for A).
        let (batch_b, b) = report_batch(&sessions[1], &cell, 1);
        let writer_b = tokio::spawn({
            let store = store.clone();
            async move { store.ingest(&[batch_b], NOW).await }
        });
        let mut writer_b = Some(writer_b);
        if !locked {
            for r in writer_b.take().expect("spawned").await?? {
                r?;
            }
        }
        let first = store.pull(&scope, start, 0, 100, false).await?;
        faults.release();
        for r in writer_a.await?? {
            r?;
        }
        if let Some(writer_b) = writer_b {
            for r in writer_b.await?? {
                r?;
            }
        }
        let second = store
            .pull(&scope, first.next_cursor, first.backfill_after, 100, false)
            .await?;
        let seen: HashSet<HazardId> = first
            .changes
            .iter()
            .chain(&second.changes)
            .map(
                |c| match HazardOp::decode("report", &c.payload, Role::Patroller) {
                    Ok(HazardOp::Report(r)) => r.id,
                    other => panic!("unexpected change {other:?}"),
                },
            )
            .collect();
        // Both are in the log either way.
        let all = store.pull(&scope, start, 0, 100, false).await?;
        assert_eq!(all.changes.len(), 2, "locked {locked}");
        if locked {
            assert_eq!(
                seen,
                HashSet::from([a, b]),
                "with the lock the reader gets both"
            );
        } else {
            assert_eq!(
                seen,
                HashSet::from([b]),
                "without the lock the reader's cursor passed A's position before A committed"
            );
        }
        db.cleanup().await;
    }
    Ok(())
}

/// What `/metrics` tells an admin about the writer: a push that waits behind a commit in
/// progress counts in `ingest_queue` until its writer takes it (one that waits for room in a
/// full queue too, and is counted out if its request goes away there), and the group commits
/// count every push they commit. SQLite: one writer, so the second push must wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_waiting_for_the_writer_counts_in_the_queue_until_committed() -> anyhow::Result<()> {
    use patrolsync_server::faults::{FaultAction, FaultPoints, points};
    use patrolsync_server::ingest::{Ingestor, QUEUE_PER_WRITER};
    use patrolsync_server::metrics::Metrics;
    let dir = tempfile::tempdir()?;
    let faults = Arc::new(FaultPoints::default());
    let sql = SqlStore::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.db").display()
    ))
    .await?
    .with_faults(faults.clone());
    let (store, cell, _) = demo_with_reader(sql).await?;
    let mut sessions = Vec::new();
    for n in 0..2u8 {
        sessions.push(patroller(store.as_ref(), &format!("queued{n}"), 0xb0 + n).await?);
    }
    let metrics = Arc::new(Metrics::new());
    let ingest = Ingestor::start(store.clone(), 1, || NOW, metrics.clone());

    // A's group commit is held before COMMIT; B's push waits for the writer meanwhile.
    faults.arm(points::INGEST_BEFORE_COMMIT, 0, FaultAction::Pause);
    let a = tokio::spawn({
        let ingest = ingest.clone();
        let (batch, _) = report_batch(&sessions[0], &cell, 1);
        async move { ingest.commit(batch).await }
    });
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        faults.stalled_at(points::INGEST_BEFORE_COMMIT),
    )
    .await
    .map_err(|_| anyhow::anyhow!("A's commit never reached the fault point"))?;
    assert_eq!(
        metrics.ingest_queue.get(),
        0,
        "A is the writer's, not waiting"
    );
    let b = tokio::spawn({
        let ingest = ingest.clone();
        let (batch, _) = report_batch(&sessions[1], &cell, 1);
        async move { ingest.commit(batch).await }
    });
    let queued = |n: i64, what: &'static str| {
        let metrics = metrics.clone();
        async move {
            tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while metrics.ingest_queue.get() != n {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
            })
            .await
            .map_err(|_| anyhow::anyhow!("{what}: {} waiting, not {n}", metrics.ingest_queue.get()))
        }
    };
    queued(1, "B waits for the writer").await?;
    assert_eq!(
        metrics.group_commit_pushes.get(),
        0,
        "nothing committed yet"
    );

    // The writer's queue fills (B and the empty pushes): one more push waits for room,
    // counted, and is counted out when its request goes away there.
    let full = QUEUE_PER_WRITER as i64;
    let empty = || IngestBatch {
        device: sessions[1].id,
        user_id: sessions[1].user_id,
        ops: vec![],
    };
    let mut fill = Vec::new();
    for _ in 1..QUEUE_PER_WRITER {
        let (ingest, batch) = (ingest.clone(), empty());
        fill.push(tokio::spawn(async move { ingest.commit(batch).await }));
    }
    queued(full, "the queue is full").await?;
    let extra = tokio::spawn({
        let (ingest, batch) = (ingest.clone(), empty());
        async move { ingest.commit(batch).await }
    });
    queued(full + 1, "one more waits for room").await?;
    extra.abort();
    let _ = extra.await;
    assert_eq!(
        metrics.ingest_queue.get(),
        full,
        "a push dropped while it waited for room is counted out"
    );

    faults.release();
    a.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    b.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    for f in fill {
        f.await?.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    assert_eq!(metrics.ingest_queue.get(), 0);
    assert_eq!(
        metrics.group_commit_pushes.get(),
        1 + QUEUE_PER_WRITER as u64,
        "A, B and the empty pushes"
    );
    let encoded = metrics.encode();
    assert!(
        encoded.contains("patrolsync_group_commit_seconds_count 2"),
        "A's commit, then one for all that waited: {encoded}"
    );
    Ok(())
}
