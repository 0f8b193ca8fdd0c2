//! The storage conformance suite: the same assertions on SQLite and (when
//! PATROLSYNC_TEST_DATABASE_URL is set) PostgreSQL.

use std::sync::Arc;

use patrolsync_proto::wire::change::Entity;
use patrolsync_proto::{
    CheckIn, CheckInId, CheckInKind, CheckInMethod, CheckInOutcome, DeviceId, GeoFix, HazardId,
    Hlc, OpId, Role,
};
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::store::*;
use patrolsync_server::testkit::TestDatabase;

const NOW: i64 = 1_790_000_000_000;

async fn open(db: &TestDatabase, dir: &std::path::Path) -> anyhow::Result<Arc<dyn Store>> {
    let url = db
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("t.db").display()));
    let store = SqlStore::connect(&url).await?;
    patrolsync_server::seed::seed_demo(&store).await?;
    Ok(Arc::new(store))
}

async fn device(store: &dyn Store, user: &str, cells: &[&str]) -> anyhow::Result<DeviceSession> {
    let code = patrolsync_server::enroll::new_code();
    let hash = patrolsync_server::enroll::hash_code(&code);
    store
        .create_enrollment(
            &NewEnrollment {
                code_hash: hash,
                user: user.into(),
                role: Role::Patroller,
                cells: cells.iter().map(|c| c.to_string()).collect(),
                expires_at_ms: NOW + 60_000,
                agency: None,
            },
            NOW,
        )
        .await?;
    let id = DeviceId(uuid::Uuid::now_v7());
    let d = NewDevice {
        id,
        name: "t".into(),
        cert_sha256: *id.0.as_bytes().repeat(2).first_chunk().expect("32"),
        app_version: "t".into(),
    };
    Ok(store.redeem_enrollment(&hash, &d, NOW).await?)
}

fn op(seq: u64, id: CheckInId, cp: &CheckpointRef) -> PreparedOp {
    op_at(seq, id, cp, NOW, [7u8; 32])
}

/// Op `seq`: check-in `id` at `cp` at device time `at`, naming `photo`.
fn op_at(seq: u64, id: CheckInId, cp: &CheckpointRef, at: i64, photo: [u8; 32]) -> PreparedOp {
    PreparedOp {
        device_seq: seq,
        op_id: OpId(uuid::Uuid::now_v7()),
        hlc: Hlc {
            wall_ms: NOW as u64,
            logical: seq as u32,
        },
        action: OpAction::InsertCheckIn(Box::new(CheckInRow {
            check_in: CheckIn {
                id,
                checkpoint: cp.code.clone(),
                kind: CheckInKind::Patrol,
                method: CheckInMethod::Qr,
                tag_uid: String::new(),
                device_time_ms: at,
                monotonic_ms: seq,
                fix: None,
                outcome: CheckInOutcome::Inspected,
                template_id: String::new(),
                template_version: 0,
                answers: vec![],
                photos: vec![photo],
                note: format!("op {seq}"),
                household: String::new(),
            },
            checkpoint_id: cp.id,
            cell_id: cp.cell_id,
            household_id: None,
        })),
    }
}

/// A hazard report of `hazard` at `cp`'s cell as op `seq` (a fresh log entry each time).
fn report(seq: u64, hazard: HazardId, cp: &CheckpointRef) -> PreparedOp {
    use patrolsync_proto::hazard::{Handling, HazardCategory, Report, Severity};
    let cell = cp
        .cell_path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let report = Report {
        id: hazard,
        grid_cell: cell,
        checkpoint: String::new(),
        position: None,
        category: HazardCategory::Gas,
        severity: Severity::Major,
        handling: Handling::OnTheSpot,
        deadline_ms: None,
        description: "counted".into(),
        photos: vec![],
        device_time_ms: NOW,
    };
    patrolsync_server::testkit::report_op(
        seq,
        report,
        cp.cell_id,
        &cp.cell_path,
        uuid::Uuid::now_v7(),
        NOW,
    )
}

/// Op `seq`, refused at validation: its note is over 2,000 characters.
fn refused_note(seq: u64) -> PreparedOp {
    PreparedOp {
        device_seq: seq,
        op_id: OpId(uuid::Uuid::now_v7()),
        hlc: Hlc::default(),
        action: OpAction::Reject(Rejection {
            refusal: Refusal {
                code: RejectCode::Invalid,
                reason: "too_long".into(),
                field: "note".into(),
                message: "note has 2001 characters, more than 2000".into(),
                // What the device's message is worded from, kept for a replay.
                value: "S1".into(),
                limit: Some(2000),
            },
            payload: vec![1, 2, 3],
        }),
    }
}

fn new_id() -> CheckInId {
    CheckInId(uuid::Uuid::now_v7())
}

async fn checkpoint(store: &dyn Store) -> anyhow::Result<CheckpointRef> {
    Ok(store
        .checkpoints(&["S1-C1-K1-B1-P1".into()])
        .await?
        .remove(0))
}

fn outcomes(r: &BatchResult) -> Vec<Outcome> {
    r.results.iter().map(|r| r.outcome).collect()
}

/// One test per case per backend: `sqlite::CASE` and `postgres::CASE`, each on a fresh store.
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    let db = patrolsync_server::testkit::TestDatabase::sqlite();
                    let dir = tempfile::tempdir()?;
                    super::$case(super::open(&db, dir.path()).await?.as_ref()).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() -> anyhow::Result<()> {
                    let Some(db) = patrolsync_server::testkit::test_postgres().await else {
                        return Ok(());
                    };
                    let dir = tempfile::tempdir()?;
                    let result = super::$case(super::open(&db, dir.path()).await?.as_ref()).await;
                    db.cleanup().await;
                    result
                }
            )+
        }
    };
}

conformance!(
    replayed_batch_changes_nothing,
    acked_through_waits_for_gaps,
    same_record_under_new_seq_is_one_entity,
    rejected_op_replays_as_rejected,
    failed_batch_does_not_take_its_group_down,
    enrollment_codes_are_single_use_and_expire,
    devices_racing_for_one_code_cannot_both_win,
    grid_upsert_is_idempotent,
    double_taps_across_pushes_and_statement_chunks,
    positions_come_and_go,
    a_cells_backfill_is_its_subtree_and_nothing_beside_it,
    kept_counts_follow_what_commits,
    a_photos_access_follows_its_records,
    a_layer_of_a_hundred_pushes_is_written_together,
);

async fn replayed_batch_changes_nothing(store: &dyn Store) -> anyhow::Result<()> {
    let d = device(store, "replay", &["S1"]).await?;
    let cp = checkpoint(store).await?;
    let ops: Vec<_> = (1..=10).map(|s| op(s, new_id(), &cp)).collect();
    let batch = IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops,
    };
    let first = store
        .ingest(std::slice::from_ref(&batch), NOW)
        .await?
        .remove(0)?;
    assert_eq!(first.acked_through, 10);
    assert!(outcomes(&first).iter().all(|o| *o == Outcome::Applied));
    let before = store.stats(NOW).await?.check_ins;
    let again = store.ingest(&[batch], NOW).await?.remove(0)?;
    assert!(outcomes(&again).iter().all(|o| *o == Outcome::Duplicate));
    assert_eq!(store.stats(NOW).await?.check_ins, before);
    let stored = store.check_ins(Some(d.id), 100).await?;
    assert_eq!(stored.len(), 10);
    assert_eq!(stored[0].check_in.photos, vec![[7u8; 32]]);
    Ok(())
}

async fn acked_through_waits_for_gaps(store: &dyn Store) -> anyhow::Result<()> {
    let d = device(store, "gaps", &["S1"]).await?;
    let cp = checkpoint(store).await?;
    let batch = |seqs: &[u64]| IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops: seqs.iter().map(|s| op(*s, new_id(), &cp)).collect(),
    };
    assert_eq!(
        store
            .ingest(&[batch(&[1, 2, 5])], NOW)
            .await?
            .remove(0)?
            .acked_through,
        2
    );
    assert_eq!(
        store
            .ingest(&[batch(&[3])], NOW)
            .await?
            .remove(0)?
            .acked_through,
        3
    );
    assert_eq!(
        store
            .ingest(&[batch(&[4])], NOW)
            .await?
            .remove(0)?
            .acked_through,
        5
    );
    Ok(())
}

async fn same_record_under_new_seq_is_one_entity(store: &dyn Store) -> anyhow::Result<()> {
    let d = device(store, "reinstall", &["S1"]).await?;
    let cp = checkpoint(store).await?;
    let id = new_id();
    let r = store
        .ingest(
            &[IngestBatch {
                device: d.id,
                user_id: d.user_id,
                ops: vec![op(1, id, &cp), op(2, id, &cp)],
            }],
            NOW,
        )
        .await?
        .remove(0)?;
    assert_eq!(outcomes(&r), vec![Outcome::Applied, Outcome::Duplicate]);
    assert_eq!(store.check_ins(Some(d.id), 10).await?.len(), 1);
    Ok(())
}

async fn rejected_op_replays_as_rejected(store: &dyn Store) -> anyhow::Result<()> {
    let d = device(store, "rejected", &["S1"]).await?;
    let reject = refused_note(1);
    let batch = IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops: vec![reject],
    };
    let first = store
        .ingest(std::slice::from_ref(&batch), NOW)
        .await?
        .remove(0)?;
    let again = store.ingest(&[batch], NOW).await?.remove(0)?;
    assert_eq!(
        (&first.results, first.acked_through),
        (&again.results, again.acked_through),
        "a replayed rejection answers the same"
    );
    assert_eq!(first.fresh.rejected, vec![RejectCode::Invalid]);
    assert!(
        again.fresh.rejected.is_empty(),
        "a replay records nothing new: {:?}",
        again.fresh
    );
    assert_eq!(again.results[0].outcome, Outcome::Rejected);
    let refusal = again.results[0].rejection.clone().expect("a refusal");
    assert_eq!((refusal.value.as_str(), refusal.limit), ("S1", Some(2000)));
    assert_eq!(
        refusal.text(patrolsync_i18n::Lang::ZhCn),
        "内容过长：note 最多 2000 个字",
        "a replay is worded in the device's language as the first answer was"
    );
    assert_eq!(
        refusal.text(patrolsync_i18n::Lang::En),
        "note has 2001 characters, more than 2000"
    );
    assert_eq!(
        again.acked_through, 1,
        "a rejected op is recorded, so the device can drop it"
    );
    let log = store.rejections(None, 100).await?;
    assert!(
        log.iter()
            .any(|r| r.field == "note" && r.device == d.id.to_string())
    );
    Ok(())
}

async fn failed_batch_does_not_take_its_group_down(store: &dyn Store) -> anyhow::Result<()> {
    let d = device(store, "atomic", &["S1"]).await?;
    let cp = checkpoint(store).await?;
    let good = IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops: vec![op(1, new_id(), &cp)],
    };
    let ghost = IngestBatch {
        device: DeviceId(uuid::Uuid::now_v7()),
        user_id: d.user_id,
        ops: vec![op(1, new_id(), &cp)],
    };
    let results = store.ingest(&[ghost, good], NOW).await?;
    assert!(
        matches!(&results[0], Err(StoreError::NotFound(_))),
        "an unknown device's batch fails: {:?}",
        results[0]
    );
    assert_eq!(
        results[1].as_ref().map(|r| r.acked_through).ok(),
        Some(1),
        "the other batch commits"
    );
    assert_eq!(store.check_ins(Some(d.id), 10).await?.len(), 1);
    Ok(())
}

/// SECURITY.md: a code is claimed with one conditional write, so of eight devices redeeming it
/// at once exactly one wins and the others are told it is used.
async fn devices_racing_for_one_code_cannot_both_win(store: &dyn Store) -> anyhow::Result<()> {
    let hash = patrolsync_server::enroll::hash_code("RACE-0000");
    store
        .create_enrollment(
            &NewEnrollment {
                code_hash: hash,
                user: "racer".into(),
                role: Role::Patroller,
                cells: vec!["S1".into()],
                expires_at_ms: NOW + 60_000,
                agency: None,
            },
            NOW,
        )
        .await?;
    let devices: Vec<NewDevice> = (0..8u8)
        .map(|b| NewDevice {
            id: DeviceId(uuid::Uuid::now_v7()),
            name: format!("racer {b}"),
            cert_sha256: [b; 32],
            app_version: String::new(),
        })
        .collect();
    let results = futures_util::future::join_all(
        devices
            .iter()
            .map(|d| store.redeem_enrollment(&hash, d, NOW)),
    )
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(matches!(e, RedeemError::AlreadyUsed { .. }), "{e}");
        }
    }
    // The winner is a device of the store; no loser is.
    let statuses = store.device_statuses().await?;
    let racers: Vec<_> = statuses.iter().filter(|s| s.user == "racer").collect();
    assert_eq!(racers.len(), 1, "{racers:?}");
    assert_eq!(racers[0].id, winners[0].id.to_string());
    Ok(())
}

async fn enrollment_codes_are_single_use_and_expire(store: &dyn Store) -> anyhow::Result<()> {
    let hash = patrolsync_server::enroll::hash_code("EXPI-RED0");
    store
        .create_enrollment(
            &NewEnrollment {
                code_hash: hash,
                user: "late".into(),
                role: Role::Patroller,
                cells: vec!["S2".into()],
                expires_at_ms: NOW + 1000,
                agency: None,
            },
            NOW,
        )
        .await?;
    let dev = |b: u8| NewDevice {
        id: DeviceId(uuid::Uuid::now_v7()),
        name: "x".into(),
        cert_sha256: [b; 32],
        app_version: String::new(),
    };
    let err = store
        .redeem_enrollment(&hash, &dev(1), NOW + 5000)
        .await
        .expect_err("expired");
    assert!(matches!(err, RedeemError::Expired { .. }), "{err}");
    let ok = store.redeem_enrollment(&hash, &dev(2), NOW).await?;
    assert_eq!(ok.cell_codes(), vec!["S2".to_owned()]);
    let err = store
        .redeem_enrollment(&hash, &dev(3), NOW)
        .await
        .expect_err("used");
    assert!(matches!(err, RedeemError::AlreadyUsed { .. }), "{err}");
    let err = store
        .redeem_enrollment(&[9; 32], &dev(4), NOW)
        .await
        .expect_err("unknown");
    assert!(matches!(err, RedeemError::Unknown), "{err}");
    let bad_cell = store
        .create_enrollment(
            &NewEnrollment {
                code_hash: [5; 32],
                user: "x".into(),
                role: Role::Patroller,
                cells: vec!["NOPE".into()],
                expires_at_ms: NOW,
                agency: None,
            },
            NOW,
        )
        .await
        .expect_err("unknown cell");
    assert!(bad_cell.to_string().contains("NOPE"), "{bad_cell}");
    Ok(())
}

async fn grid_upsert_is_idempotent(store: &dyn Store) -> anyhow::Result<()> {
    let (_, _, changed) = patrolsync_server::seed::seed_demo(store).await?;
    assert_eq!(changed, 0, "seeding again changes nothing");
    let s = store.stats(NOW).await?;
    assert_eq!((s.grid_cells, s.checkpoints), (152, 240));
    Ok(())
}

/// Taps at the same checkpoint within the window are marked as taps of the first, whether
/// they arrive in its push or a later one, across the lookup's 300-row statements, with equal
/// device times broken by id; another user's tap is not one.
async fn double_taps_across_pushes_and_statement_chunks(store: &dyn Store) -> anyhow::Result<()> {
    let d = device(store, "tapper", &["S1"]).await?;
    let other = device(store, "someone-else", &["S1"]).await?;
    let cp = checkpoint(store).await?;
    let before = store.stats(NOW).await?.double_taps;
    let first = new_id();
    let push = |user: &DeviceSession, ops: Vec<PreparedOp>| IngestBatch {
        device: user.id,
        user_id: user.user_id,
        ops,
    };
    store
        .ingest(&[push(&d, vec![op(1, first, &cp)])], NOW)
        .await?
        .remove(0)?;
    // 350 more at the same device time, ids after the first's: all taps of it.
    let later: Vec<PreparedOp> = (2..352).map(|s| op(s, new_id(), &cp)).collect();
    store.ingest(&[push(&d, later)], NOW).await?.remove(0)?;
    store
        .ingest(&[push(&other, vec![op(1, new_id(), &cp)])], NOW)
        .await?
        .remove(0)?;
    assert_eq!(store.stats(NOW).await?.double_taps - before, 350);
    let mine = store.check_ins(Some(d.id), 1000).await?;
    assert_eq!(mine.len(), 351);
    for c in &mine {
        let expected = (c.check_in.id != first).then_some(first);
        assert_eq!(c.duplicate_of, expected, "{:?}", c.check_in.id);
    }
    let theirs = store.check_ins(Some(other.id), 10).await?;
    assert_eq!(
        theirs[0].duplicate_of, None,
        "another user's tap stands alone"
    );
    Ok(())
}

/// A record with a position after records without one is stored with it, on every connection
/// of the pool: each statement is typed by its own values, not by the first it was prepared
/// with (sqlx sends a missing `f64` as a missing `float4`; PostgreSQL refused the next real
/// position with "incorrect binary data format"). The same for checkpoints in one import.
async fn positions_come_and_go(store: &dyn Store) -> anyhow::Result<()> {
    let d = device(store, "wanderer", &["S1"]).await?;
    let cp = checkpoint(store).await?;
    let fix = GeoFix {
        latitude: 45.75,
        longitude: 126.625,
        accuracy_m: 7.5,
        fix_time_ms: NOW,
        mock: false,
        datum: patrolsync_proto::geo::Datum::Wgs84,
    };
    // Separate pushes, so every idle connection first prepares the insert without a position.
    for seq in 1..=24u64 {
        let mut o = op(seq, new_id(), &cp);
        if seq > 12 {
            let OpAction::InsertCheckIn(row) = &mut o.action else {
                unreachable!("op builds a check-in")
            };
            row.check_in.fix = Some(fix.clone());
        }
        let batch = IngestBatch {
            device: d.id,
            user_id: d.user_id,
            ops: vec![o],
        };
        let r = store.ingest(&[batch], NOW).await?.remove(0)?;
        assert_eq!(outcomes(&r), vec![Outcome::Applied], "push {seq}");
    }
    let stored = store.check_ins(Some(d.id), 100).await?;
    assert_eq!(stored.len(), 24);
    assert_eq!(
        stored
            .iter()
            .filter(|c| c.check_in.fix.as_ref() == Some(&fix))
            .count(),
        12,
        "every position is stored as sent"
    );

    let cell = |code: &str, parent: &str| NewCell {
        code: code.into(),
        parent: Some(parent.into()),
        level: 3,
        name: code.into(),
        boundary: None,
    };
    let point = |code: &str, position: Option<(f64, f64)>| NewCheckpoint {
        code: code.into(),
        cell: "S1-C1-W1".into(),
        name: code.into(),
        tag_uid: None,
        position,
        radius_m: 30.0,
        cadence: None,
    };
    let points = [
        point("S1-C1-W1-P1", None),
        point("S1-C1-W1-P2", Some((45.5, 126.5))),
        point("S1-C1-W1-P3", None),
        point("S1-C1-W1-P4", Some((45.25, 126.25))),
    ];
    let changed = store
        .upsert_grid(&[cell("S1-C1-W1", "S1-C1")], &points, NOW)
        .await?;
    assert_eq!(changed, 5, "one cell and four checkpoints");
    Ok(())
}

/// A feed's backfill finds a cell's subtree by a range on the path: `S1`'s brings all of `S1`
/// and nothing of `S10` (whose path `/S10/` shares the text `/S1`), and the reverse.
async fn a_cells_backfill_is_its_subtree_and_nothing_beside_it(
    store: &dyn Store,
) -> anyhow::Result<()> {
    let cell = |code: &str, parent: Option<&str>, level: u32| NewCell {
        code: code.into(),
        parent: parent.map(str::to_owned),
        level,
        name: code.into(),
        boundary: None,
    };
    let point = NewCheckpoint {
        code: "S10-C1-P1".into(),
        cell: "S10-C1".into(),
        name: "S10-C1-P1".into(),
        tag_uid: None,
        position: None,
        radius_m: 30.0,
        cadence: None,
    };
    store
        .upsert_grid(
            &[cell("S10", None, 1), cell("S10-C1", Some("S10"), 2)],
            &[point],
            NOW,
        )
        .await?;
    let codes = |d: DeviceSession| async move {
        let scope = d.pull_scope();
        let (mut cursor, mut after, mut codes) = (0, 0, Vec::new());
        loop {
            let page = store.pull(&scope, cursor, after, 7, true).await?;
            for c in &page.changes {
                match patrolsync_proto::change::ChangeKind::parse(&c.kind)
                    .map(|k| k.decode(&c.payload))
                {
                    Some(Ok(Entity::Cell(g))) => codes.push(g.code),
                    Some(Ok(Entity::Checkpoint(p))) => codes.push(p.code),
                    _ => {}
                }
            }
            (cursor, after) = (page.next_cursor, page.backfill_after);
            if !page.has_more {
                return anyhow::Ok(codes);
            }
        }
    };
    let s1 = codes(device(store, "s1", &["S1"]).await?).await?;
    let s10 = codes(device(store, "s10", &["S10"]).await?).await?;
    let of = |codes: &[String], top: &str| {
        codes
            .iter()
            .filter(|c| *c == top || c.starts_with(&format!("{top}-")))
            .count()
    };
    // The demo's S1: itself, 6 communities, 30 compounds, 39 buildings; 120 checkpoints.
    assert_eq!(
        (of(&s1, "S1"), of(&s1, "S10"), s1.len()),
        (196, 0, 196),
        "{s1:?}"
    );
    assert_eq!((of(&s10, "S10"), s10.len()), (3, 3), "{s10:?}");
    Ok(())
}

/// One read answers what a device may do with a photo: send it if a record of its own or one
/// in its cells names it; read it if another device's record in its cells names it, or once it
/// has uploaded it itself; and the photo's size once stored.
async fn a_photos_access_follows_its_records(store: &dyn Store) -> anyhow::Result<()> {
    let author = device(store, "author", &["S1"]).await?;
    let neighbour = device(store, "neighbour", &["S1"]).await?;
    let stranger = device(store, "stranger", &["S2"]).await?;
    let cp = checkpoint(store).await?;
    let photo = [31u8; 32];
    let batch = IngestBatch {
        device: author.id,
        user_id: author.user_id,
        ops: vec![op_at(1, new_id(), &cp, NOW, photo)],
    };
    store.ingest(&[batch], NOW).await?.remove(0)?;
    let access = |d: &DeviceSession, scope: PullScope| {
        let id = d.id;
        async move { store.blob_access(&photo, id, &scope).await }
    };
    let of = |visible, readable, stored| BlobAccess {
        visible,
        readable,
        stored,
    };
    // Before the upload: its author may send it but not read it (naming a hash proves
    // nothing); a device in its cells may do both; a device elsewhere neither.
    assert_eq!(
        access(&author, author.pull_scope()).await?,
        of(true, false, None)
    );
    assert_eq!(
        access(&neighbour, neighbour.pull_scope()).await?,
        of(true, true, None)
    );
    assert_eq!(
        access(&stranger, stranger.pull_scope()).await?,
        of(false, false, None)
    );
    // Its own record counts wherever the author's cells are now.
    let moved = PullScope {
        paths: vec![],
        agency: None,
        audience: PullScope::audience_of(author.user_id, None),
    };
    assert_eq!(access(&author, moved.clone()).await?, of(true, false, None));
    // The author uploads it: stored, and readable by the author from anywhere; the stranger
    // still learns nothing, not even that it is stored.
    let upload = ProvedUpload {
        sha256: photo,
        size: 2_048,
        device: author.id,
    };
    store.record_uploads(&[upload], NOW).await?;
    assert_eq!(access(&author, moved).await?, of(true, true, Some(2_048)));
    assert_eq!(
        access(&neighbour, neighbour.pull_scope()).await?,
        of(true, true, Some(2_048))
    );
    assert_eq!(
        access(&stranger, stranger.pull_scope()).await?,
        of(false, false, None)
    );
    // A device whose cells are both streets reads it through the second (a scope's paths are
    // parameters from $5 on).
    let both = device(store, "both", &["S2", "S1"]).await?;
    assert_eq!(
        access(&both, both.pull_scope()).await?,
        of(true, true, Some(2_048))
    );
    // A photo no record names: nobody may send or read it.
    assert_eq!(
        store
            .blob_access(&[32u8; 32], author.id, &author.pull_scope())
            .await?,
        of(false, false, None)
    );
    Ok(())
}

/// Admin stats read kept counts (`store_counts`, `missing_blobs`), not the tables: they follow
/// what commits (not a batch that fails in the same group commit, not a replay, not a photo
/// stored twice); a referenced photo is missing (in all, per device, in the list) until stored.
async fn kept_counts_follow_what_commits(store: &dyn Store) -> anyhow::Result<()> {
    let d = device(store, "counted", &["S1"]).await?;
    let cp = checkpoint(store).await?;
    let before = store.stats(NOW).await?;
    // Two check-ins at one checkpoint at one moment (the second a double tap), each naming
    // photo [7; 32]; beside them a batch that fails (its device is unknown).
    let good = IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops: vec![op(1, new_id(), &cp), op(2, new_id(), &cp)],
    };
    let ghost = IngestBatch {
        device: DeviceId(uuid::Uuid::now_v7()),
        user_id: d.user_id,
        ops: vec![op(1, new_id(), &cp), op(2, new_id(), &cp)],
    };
    let results = store.ingest(&[ghost, good.clone()], NOW).await?;
    assert!(results[0].is_err() && results[1].is_ok(), "{results:?}");
    store.ingest(&[good], NOW).await?.remove(0)?;
    let refused = IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops: vec![refused_note(3)],
    };
    store.ingest(&[refused], NOW).await?.remove(0)?;
    let mid = store.stats(NOW).await?;
    assert_eq!(
        (
            mid.check_ins - before.check_ins,
            mid.double_taps - before.double_taps,
            mid.rejected_ops - before.rejected_ops,
            mid.missing_photos - before.missing_photos,
            mid.blobs - before.blobs,
        ),
        (2, 1, 1, 1, 0),
        "{mid:?}"
    );
    assert_eq!(
        store.check_ins(None, 1000).await?.len() as i64,
        mid.check_ins,
        "the kept count is the table's"
    );
    assert_eq!(
        store.rejections(None, 1000).await?.len() as i64,
        mid.rejected_ops
    );
    let owed = |statuses: Vec<DeviceStatus>| {
        statuses
            .into_iter()
            .find(|s| s.id == d.id.to_string())
            .map(|s| s.missing_photos)
    };
    assert_eq!(
        owed(store.device_statuses().await?),
        Some(2),
        "two records name it"
    );
    assert_eq!(store.missing_photos(None, 10).await?.len(), 2);

    // A report counts as a hazard; a batch that fails after its check-in was written (its
    // report reuses the hazard's id) is rolled back and counted as nothing.
    let hazard = HazardId(uuid::Uuid::now_v7());
    let reported = IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops: vec![op(4, new_id(), &cp), report(5, hazard, &cp)],
    };
    store.ingest(&[reported], NOW).await?.remove(0)?;
    let clash = IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops: vec![op(6, new_id(), &cp), report(7, hazard, &cp)],
    };
    let failed = store.ingest(&[clash], NOW).await?.remove(0);
    assert!(failed.is_err(), "a second hazard with one id: {failed:?}");
    let reports = store.stats(NOW).await?;
    assert_eq!(
        (
            reports.check_ins - mid.check_ins,
            reports.hazards - mid.hazards
        ),
        (1, 1),
        "{reports:?}"
    );
    assert_eq!(
        store.check_ins(None, 1000).await?.len() as i64,
        reports.check_ins
    );

    store.record_blob(&[7u8; 32], 10, NOW).await?;
    store.record_blob(&[7u8; 32], 10, NOW).await?;
    // An upload of a photo already stored: not counted again, and its device now holds it.
    let nobody = PullScope {
        paths: vec![],
        agency: None,
        audience: PullScope::audience_of(d.user_id, None),
    };
    assert!(!store.blob_access(&[7u8; 32], d.id, &nobody).await?.readable);
    let up = |sha: u8, size: u64, device: DeviceId| ProvedUpload {
        sha256: [sha; 32],
        size,
        device,
    };
    store.record_uploads(&[up(7, 10, d.id)], NOW).await?;
    store.record_uploads(&[up(7, 10, d.id)], NOW).await?;
    assert!(store.blob_access(&[7u8; 32], d.id, &nobody).await?.readable);
    // Uploads recorded together: each new photo is stored and counted once, also when two
    // devices' uploads of it, or one upload twice, commit in the same group; each device holds
    // what it sent, and only that.
    let e = device(store, "counted-too", &["S1"]).await?;
    let nobody_e = PullScope {
        paths: vec![],
        agency: None,
        audience: PullScope::audience_of(e.user_id, None),
    };
    store
        .record_uploads(
            &[
                up(8, 12, d.id),
                up(9, 14, e.id),
                up(8, 12, e.id),
                up(8, 12, d.id),
            ],
            NOW,
        )
        .await?;
    store.record_uploads(&[], NOW).await?;
    assert_eq!(store.blob(&[8u8; 32]).await?, Some(12));
    assert_eq!(store.blob(&[9u8; 32]).await?, Some(14));
    assert!(
        store
            .blob_access(&[8u8; 32], e.id, &nobody_e)
            .await?
            .readable
    );
    assert!(
        store
            .blob_access(&[9u8; 32], e.id, &nobody_e)
            .await?
            .readable
    );
    assert!(!store.blob_access(&[9u8; 32], d.id, &nobody).await?.readable);
    let after = store.stats(NOW).await?;
    assert_eq!(
        (
            after.blobs - before.blobs,
            after.missing_photos,
            after.check_ins
        ),
        (3, 0, reports.check_ins),
        "{after:?}"
    );
    assert_eq!(owed(store.device_statuses().await?), Some(0));
    assert!(store.missing_photos(None, 10).await?.is_empty());
    Ok(())
}

/// After an import of a city's grid, PostgreSQL plans the first pulls with statistics that know
/// the change log's size: a small import leaves the tables as autovacuum finds them (never
/// analysed here), an import of 1,000 rows or more refreshes them before it returns.
#[tokio::test]
async fn a_bulk_import_refreshes_postgresqls_statistics() -> anyhow::Result<()> {
    let Some(db) = patrolsync_server::testkit::test_postgres().await else {
        return Ok(());
    };
    let result = async {
        let url = db.url.clone().expect("a PostgreSQL database has a URL");
        let store = SqlStore::connect(&url).await?;
        let pool = sqlx::PgPool::connect(&url).await?;
        // Autovacuum stays away, so what analyses the tables is the import alone.
        for table in ["changes", "checkpoints"] {
            sqlx::query(&format!(
                "ALTER TABLE {table} SET (autovacuum_enabled = off)"
            ))
            .execute(&pool)
            .await?;
        }
        patrolsync_server::seed::seed_demo(&store).await?;
        let estimated = |table: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, f32>("SELECT reltuples FROM pg_class WHERE relname = $1")
                    .bind(table)
                    .fetch_one(&pool)
                    .await
            }
        };
        let checkpoints = |from: usize, n: usize| -> Vec<NewCheckpoint> {
            (from..from + n)
                .map(|i| NewCheckpoint {
                    code: format!("S1-C1-K1-B1-X{i}"),
                    cell: "S1-C1-K1-B1".into(),
                    name: format!("extinguisher {i}"),
                    tag_uid: None,
                    position: None,
                    radius_m: 30.0,
                    cadence: None,
                })
                .collect()
        };
        // The demo city (392 changes) and 10 more: never analysed.
        store.upsert_grid(&[], &checkpoints(0, 10), NOW).await?;
        assert_eq!(estimated("changes").await?, -1.0);
        store.upsert_grid(&[], &checkpoints(10, 1_200), NOW).await?;
        let (changes, points) = (estimated("changes").await?, estimated("checkpoints").await?);
        assert!(changes >= 1_602.0, "changes estimated at {changes} rows");
        assert!(points >= 1_450.0, "checkpoints estimated at {points} rows");
        anyhow::Ok(())
    }
    .await;
    db.cleanup().await;
    result
}

/// A group of 100 devices' pushes is one layer: on PostgreSQL, more than 64 pushes are joined to
/// their tables through the indexes, with the planner's defaults set back after. Every push is
/// applied and acknowledged, and none of it had to be written again push by push.
async fn a_layer_of_a_hundred_pushes_is_written_together(store: &dyn Store) -> anyhow::Result<()> {
    let cp = checkpoint(store).await?;
    let mut batches = Vec::new();
    for n in 0..100 {
        let d = device(store, &format!("layer-{n}"), &["S1"]).await?;
        batches.push(IngestBatch {
            device: d.id,
            user_id: d.user_id,
            ops: vec![op(1, new_id(), &cp), op(2, new_id(), &cp)],
        });
    }
    let before = store.stats(NOW).await?;
    let rewritten = store.groups_rewritten();
    let results = store.ingest(&batches, NOW).await?;
    for (n, r) in results.into_iter().enumerate() {
        let r = r?;
        assert_eq!(
            (outcomes(&r), r.acked_through),
            (vec![Outcome::Applied, Outcome::Applied], 2),
            "push {n}"
        );
    }
    assert_eq!(
        store.groups_rewritten(),
        rewritten,
        "written together, not again push by push"
    );
    let after = store.stats(NOW).await?;
    assert_eq!(
        (
            after.check_ins - before.check_ins,
            after.double_taps - before.double_taps
        ),
        (200, 100),
        "each device's second check-in taps its first"
    );
    // One of them again: a replay, answered from its recorded results.
    let again = store.ingest(&batches[..1], NOW).await?.remove(0)?;
    assert_eq!(
        outcomes(&again),
        vec![Outcome::Duplicate, Outcome::Duplicate]
    );
    Ok(())
}

/// The pushes of one group, each answered as the push-by-push path answers it, whichever way
/// the group is written:
/// - A replays seq 2, sends seq 3 under another op id (refused: the seq is reused), a new seq
///   4, its first record again under seq 5 (one entity: a duplicate) and a new seq 6; 4 and 6
///   are double taps of its first (same checkpoint, same moment);
/// - B pushes nothing (and has pushed now); an unknown device's push fails alone;
/// - C's seq 2 (a tap of its seq 1) closes its gap, so it is acknowledged through 4, and its
///   seq 4 is a record A stored (a duplicate);
/// - A pushes again: seq 7, a tap of its first, acknowledged through 7 (its first push through
///   6: each push is answered as of itself);
/// - E, which had stored seqs 2 and 3 only, pushes 1 and 4, taps of its 2: through 4;
/// - F, a second device of A's user, checks in at the same checkpoint a second before A's
///   taps: not a tap itself (nothing of its user before it), and, written after A, not what A's
///   taps follow either;
/// - G's first push names a photo, then the same record again naming another: G owes the
///   first photo only (the duplicate's is not linked).
///
/// With `hazard`, a hazard report of one more device comes first.
struct Group {
    batches: Vec<IngestBatch>,
    /// Where A's first push is in `batches`.
    first: usize,
    a: DeviceSession,
    a_first: CheckInId,
    b: DeviceSession,
    g: DeviceSession,
}

/// The pushes of [`Group`] after the hazard report's.
const GROUP_PUSHES: usize = 8;

/// When the group is written (its pushes' receipt time).
const GROUP_AT: i64 = NOW + 1_000;

fn record_id(op: &PreparedOp) -> anyhow::Result<CheckInId> {
    match &op.action {
        OpAction::InsertCheckIn(row) => Ok(row.check_in.id),
        other => anyhow::bail!("not a check-in: {other:?}"),
    }
}

async fn group(store: &dyn Store, round: u32, hazard: bool) -> anyhow::Result<Group> {
    let cp = checkpoint(store).await?;
    let session = |who: &str| {
        let user = format!("together-{who}{round}");
        async move { device(store, &user, &["S1"]).await }
    };
    let (a, b, c) = (
        session("a").await?,
        session("b").await?,
        session("c").await?,
    );
    let (e, f, g) = (
        session("e").await?,
        session("a").await?,
        session("g").await?,
    );
    assert_eq!(f.user_id, a.user_id, "F is a device of A's user");
    let push = |d: &DeviceSession, ops: Vec<PreparedOp>| IngestBatch {
        device: d.id,
        user_id: d.user_id,
        ops,
    };
    let earlier: Vec<PreparedOp> = (1..=3).map(|s| op(s, new_id(), &cp)).collect();
    let a_first = record_id(&earlier[0])?;
    let a_third = record_id(&earlier[2])?;
    store
        .ingest(&[push(&a, earlier.clone())], NOW)
        .await?
        .remove(0)?;
    for (d, seqs, acked) in [(&c, [1, 3], 1), (&e, [2, 3], 0)] {
        let ops = seqs.iter().map(|s| op(*s, new_id(), &cp)).collect();
        let gap = store.ingest(&[push(d, ops)], NOW).await?.remove(0)?;
        assert_eq!(gap.acked_through, acked, "a gap before seq {}", acked + 1);
    }
    let g_id = new_id();
    let mut batches = Vec::new();
    if hazard {
        let d = session("d").await?;
        let report = report(1, HazardId(uuid::Uuid::now_v7()), &cp);
        batches.push(push(&d, vec![report]));
    }
    let first = batches.len();
    batches.extend([
        push(
            &a,
            vec![
                earlier[1].clone(),
                op(3, new_id(), &cp),
                op(4, new_id(), &cp),
                op(5, a_first, &cp),
                op(6, new_id(), &cp),
            ],
        ),
        push(&b, vec![]),
        IngestBatch {
            device: DeviceId(uuid::Uuid::now_v7()),
            user_id: i64::MAX,
            ops: vec![op(1, new_id(), &cp)],
        },
        push(&c, vec![op(2, new_id(), &cp), op(4, a_third, &cp)]),
        push(&a, vec![op(7, new_id(), &cp)]),
        push(&e, vec![op(1, new_id(), &cp), op(4, new_id(), &cp)]),
        push(&f, vec![op_at(1, new_id(), &cp, NOW - 1_000, [7u8; 32])]),
        push(
            &g,
            vec![
                op_at(1, g_id, &cp, NOW, [0x61; 32]),
                op_at(2, g_id, &cp, NOW, [0x62; 32]),
            ],
        ),
    ]);
    Ok(Group {
        batches,
        first,
        a,
        a_first,
        b,
        g,
    })
}

/// A push's answer as comparable across rounds: its results, acknowledgement and what it newly
/// recorded, or its error's kind.
type Answered = Result<(Vec<OpResult>, u64, FreshCounts), String>;

/// What a group's pushes after the hazard report's were answered.
fn answered(results: &[Result<BatchResult, StoreError>], first: usize) -> Vec<Answered> {
    results
        .iter()
        .skip(first)
        .take(GROUP_PUSHES)
        .map(|r| match r {
            Ok(r) => Ok((r.results.clone(), r.acked_through, r.fresh.clone())),
            Err(StoreError::NotFound(_)) => Err("not found".to_owned()),
            Err(e) => Err(format!("unexpected: {e}")),
        })
        .collect()
}

/// Pushes of check-ins are written in layers of shared statements (one per table for a whole
/// layer), a push one layer after any earlier push of its group sharing its device, user or a
/// record; pushes with anything else, and those after them sharing one, push by push after the
/// layers. Each push is answered and stored as the push-by-push path does it. The same
/// [`Group`] is written three times: as it is (seen passing the shared path's fault point, and
/// committed there), after a hazard report (its check-ins still written together), and with
/// the shared statements failing at that point (written again push by push, nothing doubled).
async fn a_group_written_together_answers_as_its_pushes_one_by_one(
    sql: Arc<SqlStore>,
    faults: Arc<patrolsync_server::faults::FaultPoints>,
) -> anyhow::Result<()> {
    use patrolsync_server::faults::{FaultAction, points};
    use std::time::Duration;
    let store: Arc<dyn Store> = sql.clone();
    let mut rounds = Vec::new();
    for (round, hazard, action) in [
        (0, false, FaultAction::Pause),
        (1, true, FaultAction::Pause),
        (2, false, FaultAction::Fail),
    ] {
        let g = group(store.as_ref(), round, hazard).await?;
        let before = store.stats(NOW).await?;
        let rewritten = sql.groups_rewritten();
        faults.arm(points::INGEST_CHECK_INS, 0, action);
        let ingest = tokio::spawn({
            let store = store.clone();
            let batches = g.batches.clone();
            async move { store.ingest(&batches, GROUP_AT).await }
        });
        if action == FaultAction::Pause {
            tokio::time::timeout(
                Duration::from_secs(10),
                faults.stalled_at(points::INGEST_CHECK_INS),
            )
            .await
            .map_err(|_| anyhow::anyhow!("round {round}: nothing written together"))?;
            faults.release();
        }
        let results = ingest.await??;
        let after = store.stats(NOW).await?;
        assert_eq!(
            sql.groups_rewritten() - rewritten,
            u64::from(action == FaultAction::Fail),
            "round {round}: written again push by push only when the shared statements failed"
        );
        assert_eq!(
            (
                after.check_ins - before.check_ins,
                after.double_taps - before.double_taps
            ),
            (8, 6),
            "round {round}: new check-ins (A 3, C 1, E 2, F 1, G 1) and taps among them (A's, \
             C's and E's), counted once"
        );
        if hazard {
            let report = results.first();
            assert!(
                matches!(report, Some(Ok(r)) if r.results[0].outcome == Outcome::Applied),
                "round {round}: the hazard report: {report:?}"
            );
        }
        let stored = store.check_ins(Some(g.a.id), 100).await?;
        let marked = |s: u64| {
            stored
                .iter()
                .find(|c| c.device_seq == s)
                .map(|c| c.duplicate_of)
        };
        let tap = Some(Some(g.a_first));
        assert_eq!(
            (marked(4), marked(6), marked(7), stored.len()),
            (tap, tap, tap, 6),
            "round {round}: A's new taps follow its first"
        );
        let statuses = store.device_statuses().await?;
        let status = |d: &DeviceSession| statuses.iter().find(|s| s.id == d.id.to_string());
        assert_eq!(
            status(&g.g).map(|s| s.missing_photos),
            Some(1),
            "round {round}: G owes the photo its stored record names, not its duplicate's"
        );
        assert_eq!(
            status(&g.b).and_then(|s| s.last_push_at_ms),
            Some(GROUP_AT),
            "round {round}: B's empty push counts as a push"
        );
        rounds.push(answered(&results, g.first));
    }
    for (round, answers) in rounds.iter().enumerate() {
        assert_eq!(answers, &rounds[0], "round {round} answers as round 0");
    }
    let outcomes = |answer: &Answered| -> anyhow::Result<(Vec<Outcome>, u64)> {
        let (results, acked, _) = answer.clone().map_err(anyhow::Error::msg)?;
        Ok((results.iter().map(|r| r.outcome).collect(), acked))
    };
    let [a, b, ghost, c, a_again, e, f, g] = &rounds[0][..] else {
        anyhow::bail!("eight pushes answered: {:?}", rounds[0]);
    };
    use Outcome::{Applied, Duplicate, Rejected};
    assert_eq!(
        outcomes(a)?,
        (vec![Duplicate, Rejected, Applied, Duplicate, Applied], 6)
    );
    let (a_results, _, a_fresh) = a.clone().map_err(anyhow::Error::msg)?;
    assert_eq!(
        a_results[1].rejection.as_ref().map(|r| r.reason.as_str()),
        Some("seq_reused")
    );
    assert_eq!(a_fresh.stored, 2);
    assert_eq!(
        b,
        &Ok((vec![], 0, FreshCounts::default())),
        "B pushed nothing"
    );
    assert_eq!(ghost, &Err("not found".to_owned()));
    assert_eq!(
        outcomes(c)?,
        (vec![Applied, Duplicate], 4),
        "C's gap is closed"
    );
    assert_eq!(outcomes(a_again)?, (vec![Applied], 7));
    assert_eq!(
        outcomes(e)?,
        (vec![Applied, Applied], 4),
        "E's gaps are closed"
    );
    assert_eq!(outcomes(f)?, (vec![Applied], 1));
    assert_eq!(outcomes(g)?, (vec![Applied, Duplicate], 2));
    Ok(())
}

async fn open_with_faults(
    db: &TestDatabase,
    dir: &std::path::Path,
) -> anyhow::Result<(Arc<SqlStore>, Arc<patrolsync_server::faults::FaultPoints>)> {
    let url = db
        .url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", dir.join("t.db").display()));
    let faults = Arc::new(patrolsync_server::faults::FaultPoints::default());
    let store = SqlStore::connect(&url).await?.with_faults(faults.clone());
    patrolsync_server::seed::seed_demo(&store).await?;
    Ok((Arc::new(store), faults))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_group_written_together() -> anyhow::Result<()> {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir()?;
    let (store, faults) = open_with_faults(&db, dir.path()).await?;
    a_group_written_together_answers_as_its_pushes_one_by_one(store, faults).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_group_written_together() -> anyhow::Result<()> {
    let Some(db) = patrolsync_server::testkit::test_postgres().await else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let (store, faults) = open_with_faults(&db, dir.path()).await?;
    let result = a_group_written_together_answers_as_its_pushes_one_by_one(store, faults).await;
    db.cleanup().await;
    result
}
