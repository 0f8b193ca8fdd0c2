//! Escalation of overdue hazards in the store, with the clock in the test's hands: level 1 to
//! the parent cell once past the deadline, one level up per interval, exactly once per level
//! (also when two nodes run it at the same moment), stopping at the top; not while a fix awaits
//! verification; a new deadline starts over. Both backends.

use std::sync::Arc;

use patrolsync_proto::hazard::{Handling, HazardCategory, Report, Severity};
use patrolsync_proto::{HazardId, Role};
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::store::*;
use patrolsync_server::testkit::{enroll_device, report_op, test_databases};

const NOW: i64 = 1_790_000_000_000;
const DEADLINE: i64 = NOW + 3 * 86_400_000;
const DAY: i64 = 86_400_000;

async fn report(
    store: &SqlStore,
    session: &DeviceSession,
    seq: u64,
    deadline: i64,
) -> anyhow::Result<HazardId> {
    let cell = store.cells(&["S1-C2-K3".into()]).await?.remove(0);
    let id = HazardId(uuid::Uuid::now_v7());
    let op = report_op(
        seq,
        Report {
            id,
            grid_cell: cell.code.clone(),
            checkpoint: String::new(),
            position: None,
            category: HazardCategory::BlockedFireLane,
            severity: Severity::General,
            handling: Handling::ByDeadline,
            deadline_ms: Some(deadline),
            description: "bikes in the lane".into(),
            photos: vec![],
            device_time_ms: NOW,
        },
        cell.id,
        &cell.path,
        id.0,
        NOW,
    );
    store
        .ingest(
            &[IngestBatch {
                device: session.id,
                user_id: session.user_id,
                ops: vec![op],
            }],
            NOW,
        )
        .await?
        .remove(0)?;
    Ok(id)
}

fn levels(done: &Escalated) -> Vec<(String, u32, &str)> {
    done.escalations
        .iter()
        .map(|e| (e.hazard.clone(), e.level, e.to_cell.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overdue_hazard_escalates_once_per_level_and_stops_at_the_top() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let dir = tempfile::tempdir()?;
        let url = db
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display()));
        let store = SqlStore::connect(&url).await?;
        patrolsync_server::seed::seed_demo(&store).await?;
        let p = enroll_device(
            &store,
            "p",
            "p's phone",
            Role::Patroller,
            &["S1-C2-K3"],
            NOW,
        )
        .await?;
        let late = report(&store, &p, 1, DEADLINE).await?;
        let awaiting = report(&store, &p, 2, DEADLINE).await?;
        let later = report(&store, &p, 3, DEADLINE + 30 * DAY).await?;
        // A submitted fix awaiting verification is not escalated.
        sqlx::query("UPDATE hazards SET status = 'rectified' WHERE id = $1")
            .bind(awaiting.to_bytes())
            .execute(store.raw_pool())
            .await?;
        let l = late.to_string();

        assert!(
            levels(&store.escalate_overdue(DEADLINE, DAY).await?).is_empty(),
            "{backend}: not past it yet"
        );
        let cursor = store.cursor().await?;
        let first = store.escalate_overdue(DEADLINE + 1, DAY).await?;
        assert_eq!(levels(&first), [(l.clone(), 1, "S1-C2")], "{backend}");
        assert_eq!(first.paths, ["/S1/S1-C2/"], "{backend}");
        assert_eq!(
            first.cursor,
            cursor + 1,
            "{backend}: one change for devices to pull"
        );
        assert!(
            levels(&store.escalate_overdue(DEADLINE + 2, DAY).await?).is_empty(),
            "{backend}: once"
        );

        // Two nodes at the same moment: one row for the level, whichever gets there.
        let other = Arc::new(SqlStore::connect(&url).await?);
        let (a, b) = tokio::join!(
            store.escalate_overdue(DEADLINE + DAY, DAY),
            other.escalate_overdue(DEADLINE + DAY, DAY)
        );
        let (a, b) = (a?, b?);
        let mut both = levels(&a);
        both.extend(levels(&b));
        assert_eq!(both, [(l.clone(), 2, "S1")], "{backend}");
        // The top: nothing more, however late.
        assert!(
            levels(&store.escalate_overdue(DEADLINE + 30 * DAY - 1, DAY).await?).is_empty(),
            "{backend}"
        );
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM hazard_escalations")
            .fetch_one(store.raw_pool())
            .await?;
        assert_eq!(
            rows, 2,
            "{backend}: {later} not due yet, {awaiting} awaiting verification"
        );

        // A new deadline (a manager notified again) starts the levels over; a day late, both
        // levels come at once.
        sqlx::query("UPDATE hazards SET deadline_ms = $1 WHERE id = $2")
            .bind(DEADLINE + 40 * DAY)
            .bind(late.to_bytes())
            .execute(store.raw_pool())
            .await?;
        let again = store.escalate_overdue(DEADLINE + 41 * DAY + 1, DAY).await?;
        let mut got = levels(&again);
        got.sort();
        let mut want = vec![
            (later.to_string(), 1, "S1-C2"),
            (later.to_string(), 2, "S1"),
            (l.clone(), 1, "S1-C2"),
            (l, 2, "S1"),
        ];
        want.sort();
        assert_eq!(got, want, "{backend}");
        db.cleanup().await;
    }
    Ok(())
}
