//! Hostile input from a raw QUIC client (not the SDK): unauthenticated pushes, garbage, a 4 GiB
//! length prefix, truncated frames, malformed pushes and out-of-range values. Each gets a typed
//! error or a per-op rejection naming the field, the server stays up, and nothing is stored:
//! after each case a digest of the whole store (every table, the photo files) is compared with
//! the one before it, leaving out only what the case is meant to change (the rejection log).

use std::time::Duration;

use patrolsync_proto::frame;
use patrolsync_proto::wire;
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::Harness;

/// A raw client: trusts the server CA from the data dir, optionally presents a device's
/// certificate from an SDK state dir.
async fn raw_connect(
    h: &Harness,
    device_dir: Option<&std::path::Path>,
) -> anyhow::Result<quinn::Connection> {
    match device_dir {
        Some(dir) => patrolsync_tests::device_connection(h, dir).await,
        None => {
            patrolsync_tests::raw_connect(h.addr(), &h.config.data_dir.join("ca.crt"), None).await
        }
    }
}

/// The whole store's digest, table by table, leaving out `skip`.
async fn digest(
    h: &Harness,
    skip: &[&str],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let sql = patrolsync_server::open_sql_store(&h.config).await?;
    Ok(
        patrolsync_server::testkit::store_digest(
            &sql,
            Some(&h.config.data_dir.join("blobs")),
            skip,
        )
        .await?,
    )
}

/// What refusals of ops legitimately write: the refusal and its answer, the device's counts of
/// refusals and the store's.
const REFUSALS: &[&str] = &["rejections", "op_results", "devices", "store_counts"];

/// Runs one hostile case and fails naming every table it changed but `skip`.
async fn unchanged(
    h: &Harness,
    case: &str,
    skip: &[&str],
    run: impl AsyncFnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let before = digest(h, skip).await?;
    run().await?;
    let after = digest(h, skip).await?;
    let changed: Vec<&String> = before
        .iter()
        .filter(|(t, d)| after.get(*t) != Some(*d))
        .map(|(t, _)| t)
        .collect();
    anyhow::ensure!(changed.is_empty(), "{case}: changed {changed:?}");
    Ok(())
}

/// Sends `bytes` and checks the refusal's code, and that nothing stored changed.
async fn refused_unchanged(
    h: &Harness,
    conn: &quinn::Connection,
    case: &str,
    bytes: &[u8],
    code: wire::ErrorCode,
) -> anyhow::Result<String> {
    let mut message = String::new();
    unchanged(h, case, &[], async || {
        let (got, m) = error_of(&exchange(conn, bytes).await?);
        anyhow::ensure!(got == code, "{case}: {got:?}, expected {code:?}: {m}");
        message = m;
        Ok(())
    })
    .await?;
    Ok(message)
}

/// Sends raw bytes on a fresh stream and decodes the one response frame.
use patrolsync_tests::exchange;

/// Says Hello on `conn` in `language`: the server words the connection's refusals in it.
async fn hello_in(conn: &quinn::Connection, language: &str) -> anyhow::Result<()> {
    let hello = frame::encode(&wire::Request {
        kind: Some(wire::request::Kind::Hello(wire::Hello {
            language: language.into(),
            ..Default::default()
        })),
    });
    match exchange(conn, &hello).await?.kind {
        Some(wire::response::Kind::Hello(_)) => Ok(()),
        other => anyhow::bail!("expected a Hello answer, got {other:?}"),
    }
}

fn error_of(r: &wire::Response) -> (wire::ErrorCode, String) {
    match &r.kind {
        Some(wire::response::Kind::Error(e)) => (
            wire::ErrorCode::try_from(e.code).unwrap_or_default(),
            e.message.clone(),
        ),
        other => panic!("expected an error response, got {other:?}"),
    }
}

fn push(ops: Vec<wire::Op>) -> Vec<u8> {
    frame::encode(&wire::Request {
        kind: Some(wire::request::Kind::Push(wire::PushRequest { ops })),
    })
}

fn check_in_op(seq: u64, f: impl FnOnce(&mut wire::CheckIn)) -> wire::Op {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let mut c = wire::CheckIn {
        id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        checkpoint: "S1-C1-K1-B1-P1".into(),
        method: wire::CheckInMethod::Qr as i32,
        outcome: wire::CheckInOutcome::Inspected as i32,
        device_time_ms: now,
        fix: Some(wire::GeoFix {
            latitude: 45.75,
            longitude: 126.65,
            accuracy_m: 5.0,
            ..Default::default()
        }),
        ..Default::default()
    };
    f(&mut c);
    wire::Op {
        op_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
        device_seq: seq,
        hlc: Some(wire::Hlc {
            wall_ms: now as u64,
            logical: 0,
        }),
        body: Some(wire::op::Body::CheckIn(c)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_get_typed_errors_and_change_nothing() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let honest = h.device("honest", "carol", &["S1-C2"]).await?;
        let mallory = h.device("mallory", "mallory", &["S1-C1"]).await?;
        let mallory_id = patrolsync_tests::device_id(&mallory).await?.to_string();
        let store = h.server().store();
        let before = store.stats(0).await?;

        // The digest sees a change (here one made on purpose), and names where.
        let sql = patrolsync_server::open_sql_store(&h.config).await?;
        let caught = unchanged(&h, "a change made on purpose", &[], async || {
            sqlx::query("UPDATE users SET name = 'mallory2' WHERE name = 'mallory'")
                .execute(sql.raw_pool())
                .await?;
            Ok(())
        })
        .await
        .expect_err("the digest sees it");
        assert!(caught.to_string().contains("\"users\""), "{caught}");
        sqlx::query("UPDATE users SET name = 'mallory' WHERE name = 'mallory2'")
            .execute(sql.raw_pool())
            .await?;

        // No device certificate: only Enroll is allowed.
        let anon = raw_connect(&h, None).await?;
        refused_unchanged(
            &h,
            &anon,
            "a push without a certificate",
            &push(vec![check_in_op(1, |_| {})]),
            wire::ErrorCode::Unauthenticated,
        )
        .await?;

        let conn = raw_connect(&h, Some(&h.dir.path().join("mallory"))).await?;
        // Garbage where a frame should be.
        let mut garbage = 7u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 7]);
        refused_unchanged(&h, &conn, "garbage", &garbage, wire::ErrorCode::BadRequest).await?;
        // A 4 GiB length prefix: refused before any buffering.
        let msg = refused_unchanged(
            &h,
            &conn,
            "a 4 GiB frame",
            &u32::MAX.to_be_bytes(),
            wire::ErrorCode::LimitExceeded,
        )
        .await?;
        assert!(msg.contains("exceeds the limit"), "{msg}");
        // Truncated frame: the stream ends inside the body.
        let whole = push(vec![check_in_op(1, |_| {})]);
        refused_unchanged(
            &h,
            &conn,
            "a truncated frame",
            &whole[..whole.len() / 2],
            wire::ErrorCode::BadRequest,
        )
        .await?;
        // A valid frame with no RPC in it.
        refused_unchanged(
            &h,
            &conn,
            "a request with no RPC",
            &frame::encode(&wire::Request { kind: None }),
            wire::ErrorCode::BadRequest,
        )
        .await?;
        // Malformed pushes are refused whole.
        refused_unchanged(
            &h,
            &conn,
            "device_seq 0",
            &push(vec![check_in_op(0, |_| {})]),
            wire::ErrorCode::BadRequest,
        )
        .await?;
        let twice = push(vec![check_in_op(1, |_| {}), check_in_op(1, |_| {})]);
        refused_unchanged(
            &h,
            &conn,
            "a seq twice in a push",
            &twice,
            wire::ErrorCode::BadRequest,
        )
        .await?;
        let too_many = push((1..=1001).map(|s| check_in_op(s, |_| {})).collect());
        refused_unchanged(
            &h,
            &conn,
            "1001 ops",
            &too_many,
            wire::ErrorCode::LimitExceeded,
        )
        .await?;
        assert_eq!(
            store.stats(0).await?,
            before,
            "{backend}: nothing stored by refused requests"
        );

        // Per-op rejections name the field; nothing of them lands as a check-in.
        let ops = vec![
            check_in_op(1, |c| c.fix.as_mut().expect("fix").latitude = f64::NAN),
            check_in_op(2, |c| c.fix.as_mut().expect("fix").longitude = 500.0),
            check_in_op(3, |c| c.outcome = 77),
            check_in_op(4, |c| c.device_time_ms = 253_402_300_799_000), // year 9999
            check_in_op(5, |c| c.device_time_ms = 0),                   // 1970
            check_in_op(6, |c| c.id = vec![1, 2, 3]),
            check_in_op(7, |c| c.checkpoint = "S1-C2-K1-B1-P1".into()), // carol's cell, not mallory's
            wire::Op {
                op_id: vec![],
                device_seq: 8,
                hlc: None,
                body: None,
            },
        ];
        let mut response = None;
        unchanged(&h, "ops refused one by one", REFUSALS, async || {
            response = Some(exchange(&conn, &push(ops)).await?);
            Ok(())
        })
        .await?;
        let Some(wire::response::Kind::Push(p)) = response.and_then(|r| r.kind) else {
            panic!("{backend}: expected a push response")
        };
        let fields: Vec<(String, String)> = p
            .results
            .iter()
            .map(|r| (r.field.clone(), r.reason.clone()))
            .collect();
        assert!(
            p.results
                .iter()
                .all(|r| r.outcome == wire::OpOutcome::Rejected as i32),
            "{backend}: {:?}",
            p.results
        );
        assert_eq!(
            fields,
            vec![
                ("fix.latitude".into(), "not_a_number".into()),
                ("fix.longitude".into(), "out_of_range".into()),
                ("outcome".into(), "unknown_value".into()),
                ("device_time_ms".into(), "implausible_time".into()),
                ("device_time_ms".into(), "implausible_time".into()),
                ("id".into(), "invalid_id".into()),
                ("checkpoint".into(), "outside_scope".into()),
                ("op_id".into(), "invalid_id".into()),
            ],
            "{backend}"
        );
        assert_eq!(p.acked_through, 8, "{backend}: rejected ops are recorded");
        let after = store.stats(0).await?;
        assert_eq!(
            (after.check_ins, after.rejected_ops),
            (before.check_ins, before.rejected_ops + 8),
            "{backend}"
        );

        // More hostile pushes: a sequence number storage cannot hold, control characters, a
        // reused sequence number under a new op id.
        assert_eq!(
            error_of(&exchange(&conn, &push(vec![check_in_op(u64::MAX, |_| {})])).await?).0,
            wire::ErrorCode::BadRequest
        );
        let response = exchange(
            &conn,
            &push(vec![
                check_in_op(9, |c| c.checkpoint = "S1-C1-K1-B1-P1\0".into()),
                check_in_op(1, |_| {}),
            ]),
        )
        .await?;
        let Some(wire::response::Kind::Push(p)) = response.kind else {
            panic!("{backend}: expected a push response")
        };
        let reasons: Vec<&str> = p.results.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec!["seq_reused", "control_character"],
            "{backend}: {:?}",
            p.results
        );

        // A sequence number that jumps by 10^9 is applied, leaves a gap, and moves nothing else:
        // acked_through stays where the contiguous run ends.
        let response = exchange(&conn, &push(vec![check_in_op(1_000_000_000, |_| {})])).await?;
        let Some(wire::response::Kind::Push(p)) = response.kind else {
            panic!("{backend}: expected a push response")
        };
        assert_eq!(
            p.results[0].outcome,
            wire::OpOutcome::Applied as i32,
            "{backend}: {:?}",
            p.results
        );
        assert!(
            p.acked_through < 1_000_000_000,
            "{backend}: {}",
            p.acked_through
        );

        // A push repeating an op id is refused whole.
        let mut twice = check_in_op(1, |_| {});
        let mut again = check_in_op(2, |_| {});
        again.op_id = twice.op_id.clone();
        twice.device_seq = 1;
        refused_unchanged(
            &h,
            &conn,
            "an op id twice",
            &push(vec![twice, again]),
            wire::ErrorCode::BadRequest,
        )
        .await?;

        // Bytes that do not hash to the announced SHA-256: refused, nothing stored under it.
        let claimed = [9u8; 32];
        let with_photo = check_in_op(30, |c| c.photo_sha256 = vec![claimed.to_vec()]);
        let Some(wire::response::Kind::Push(p)) =
            exchange(&conn, &push(vec![with_photo])).await?.kind
        else {
            panic!("{backend}: expected a push response")
        };
        assert_eq!(
            p.results[0].outcome,
            wire::OpOutcome::Applied as i32,
            "{backend}: {:?}",
            p.results
        );
        let mut forged = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
                sha256: claimed.to_vec(),
                size: 4096,
                offset: 0,
            })),
        });
        forged.extend_from_slice(&[0u8; 4096]);
        refused_unchanged(
            &h,
            &conn,
            "bytes that do not hash to their SHA-256",
            &forged,
            wire::ErrorCode::BlobHashMismatch,
        )
        .await?;
        assert_eq!(h.server().store().blob(&claimed).await?, None);
        assert_eq!(
            h.server().blobs().held(&claimed, &mallory_id).await?.bytes,
            0,
            "{backend}: staging discarded"
        );

        // A report naming another cell's hazard cannot smuggle an edit into that cell.
        let theirs = honest
            .report_hazard(patrolsync_sdk::NewHazard {
                grid_cell: "S1-C2-K1".into(),
                checkpoint: None,
                position: None,
                category: patrolsync_proto::hazard::HazardCategory::Gas,
                severity: patrolsync_proto::hazard::Severity::Major,
                handling: patrolsync_proto::hazard::Handling::OnTheSpot,
                deadline_ms: None,
                description: "carol's".into(),
                photos: vec![],
            })
            .await?;
        honest.sync().await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as i64;
        let op = |seq: u64, body| wire::Op {
            op_id: uuid::Uuid::now_v7().as_bytes().to_vec(),
            device_seq: seq,
            hlc: Some(wire::Hlc {
                wall_ms: now as u64,
                logical: seq as u32,
            }),
            body: Some(body),
        };
        let report = wire::op::Body::HazardReport(wire::HazardReport {
            id: theirs.to_bytes(),
            grid_cell: "S1-C1-K1".into(),
            category: wire::HazardCategory::Gas as i32,
            handling: wire::Handling::OnTheSpot as i32,
            device_time_ms: now,
            ..Default::default()
        });
        let edit = wire::op::Body::HazardFieldEdit(wire::HazardFieldEdit {
            hazard_id: theirs.to_bytes(),
            field: wire::HazardField::Description as i32,
            value: "owned".into(),
        });
        let response = exchange(&conn, &push(vec![op(20, report), op(21, edit)])).await?;
        let Some(wire::response::Kind::Push(p)) = response.kind else {
            panic!("{backend}: expected a push response")
        };
        assert_eq!(
            p.results[1].outcome,
            wire::OpOutcome::Rejected as i32,
            "{backend}: {:?}",
            p.results
        );
        assert_eq!(p.results[1].reason, "outside_scope");
        let stored = store.hazard(theirs).await?.expect("carol's hazard");
        assert_eq!(
            (stored.cell.as_str(), stored.description.as_str()),
            ("S1-C2-K1", "carol's"),
            "{backend}"
        );

        // Codes with control characters or without end are refused by field, as for a
        // check-in's checkpoint, before anything looks them up (a NUL once failed the whole
        // push on PostgreSQL, retryably, on every attempt).
        let codes = |cell: &str, checkpoint: &str| {
            wire::op::Body::HazardReport(wire::HazardReport {
                id: uuid::Uuid::now_v7().as_bytes().to_vec(),
                grid_cell: cell.into(),
                checkpoint: checkpoint.into(),
                category: wire::HazardCategory::Gas as i32,
                handling: wire::Handling::OnTheSpot as i32,
                device_time_ms: now,
                ..Default::default()
            })
        };
        let long = "S1-C1-K1".repeat(20);
        let hazards_before = store.stats(0).await?.hazards;
        let response = exchange(
            &conn,
            &push(vec![
                op(22, codes("S1-C1-K1\0", "")),
                op(23, codes("S1-C1-K1", "S1-C1-K1-B1-P1\0")),
                op(24, codes(&long, "")),
            ]),
        )
        .await?;
        let Some(wire::response::Kind::Push(p)) = response.kind else {
            panic!("{backend}: expected a push response, got {response:?}")
        };
        let refused: Vec<(&str, &str)> = p
            .results
            .iter()
            .map(|r| (r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(
            refused,
            vec![
                ("grid_cell", "control_character"),
                ("checkpoint", "control_character"),
                ("grid_cell", "too_long"),
            ],
            "{backend}"
        );
        assert_eq!(store.stats(0).await?.hazards, hazards_before, "{backend}");

        // The server is still up and serving an honest device.
        honest
            .record_checkin(patrolsync_sdk::NewCheckIn::new(
                "S1-C2-K1-B1-P1",
                patrolsync_proto::CheckInOutcome::Inspected,
            ))
            .await?;
        assert_eq!(honest.sync().await?.applied, 1, "{backend}");
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stops_is_cut_off_and_a_slow_one_is_not() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| {
            c.limits.idle_request_timeout = Duration::from_secs(1)
        })
        .await?;
        let _d = h.device("slow", "sam", &["S1-C1"]).await?;
        let conn = raw_connect(&h, Some(&h.dir.path().join("slow"))).await?;
        // Two bytes of a header, then nothing: a slowloris.
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(&[0, 0]).await?;
        let started = std::time::Instant::now();
        let body =
            tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 16)).await??;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{backend}: cut off after the idle timeout"
        );
        let response: wire::Response = frame::decode(&body[frame::HEADER_LEN..])?;
        let (code, msg) = error_of(&response);
        assert_eq!(code, wire::ErrorCode::LimitExceeded, "{backend}: {msg}");
        // The connection itself still works.
        let hello = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::Hello(wire::Hello::default())),
        });
        assert!(
            matches!(
                exchange(&conn, &hello).await?.kind,
                Some(wire::response::Kind::Hello(_))
            ),
            "{backend}"
        );

        // A slow link is not a slowloris: a push whose bytes keep coming, slower in all than
        // the idle timeout, is applied.
        let slow = push((1..=20).map(|seq| check_in_op(seq, |_| {})).collect());
        let (mut send, mut recv) = conn.open_bi().await?;
        for piece in slow.chunks(slow.len().div_ceil(8)) {
            send.write_all(piece).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        send.finish()?;
        let body =
            tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20)).await??;
        let response: wire::Response = frame::decode(&body[frame::HEADER_LEN..])?;
        match response.kind {
            Some(wire::response::Kind::Push(p)) => {
                assert_eq!(p.acked_through, 20, "{backend}");
                assert!(
                    p.results
                        .iter()
                        .all(|r| r.outcome == wire::OpOutcome::Applied as i32),
                    "{backend}: {p:?}"
                );
            }
            other => panic!("{backend}: expected the push applied, got {other:?}"),
        }

        // A stranger trickling the same way is cut off: its request must arrive whole in time.
        let stranger = raw_connect(&h, None).await?;
        let (mut send, mut recv) = stranger.open_bi().await?;
        let reader = tokio::spawn(async move { recv.read_to_end(1 << 16).await });
        let enroll = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::Enroll(wire::EnrollRequest {
                code: "trickle".into(),
                csr_der: vec![0x30; 400],
                ..Default::default()
            })),
        });
        for byte in enroll.chunks(1) {
            if send.write_all(byte).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            if reader.is_finished() {
                break;
            }
        }
        let body = tokio::time::timeout(Duration::from_secs(10), reader).await???;
        let response: wire::Response = frame::decode(&body[frame::HEADER_LEN..])?;
        let (code, msg) = error_of(&response);
        assert_eq!(code, wire::ErrorCode::LimitExceeded, "{backend}: {msg}");
        assert!(
            msg.contains("no complete request within 1 s"),
            "{backend}: {msg}"
        );
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_per_device_and_photos_stay_in_scope() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| {
            c.limits.max_connections_per_device = 2;
            c.limits.pushes_per_second = 1.0;
            c.limits.push_burst = 2;
            c.limits.max_blob_bytes = 1_000_000;
        })
        .await?;
        let carol = h.device("carol", "carol", &["S1-C2"]).await?;
        let _m = h.device("mallory", "mallory", &["S1-C1"]).await?;
        let dir = h.dir.path().join("mallory");

        // A third connection of one device replaces the oldest.
        let first = raw_connect(&h, Some(&dir)).await?;
        let _second = raw_connect(&h, Some(&dir)).await?;
        let third = raw_connect(&h, Some(&dir)).await?;
        let closed = tokio::time::timeout(Duration::from_secs(2), first.closed()).await?;
        assert!(
            matches!(&closed, quinn::ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_TOO_MANY_CONNECTIONS)),
            "{backend}: {closed:?}"
        );

        // Pushes beyond the token bucket are refused, retryable, and store nothing.
        let empty = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::Push(wire::PushRequest { ops: vec![] })),
        });
        let mut limited = None;
        for _ in 0..8 {
            if let Some(wire::response::Kind::Error(e)) = exchange(&third, &empty).await?.kind {
                limited = Some(e);
            }
        }
        let limited = limited.expect("the bucket ran dry");
        assert!(
            limited.code == wire::ErrorCode::LimitExceeded as i32 && limited.retryable,
            "{backend}: {limited:?}"
        );

        // Photos: zero bytes, over the cap, and someone else's cell.
        let blob_status = |sha: Vec<u8>, size| {
            frame::encode(&wire::Request {
                kind: Some(wire::request::Kind::BlobStatus(wire::BlobStatusRequest {
                    sha256: sha,
                    size,
                })),
            })
        };
        assert_eq!(
            error_of(&exchange(&third, &blob_status(vec![1; 32], 0)).await?).0,
            wire::ErrorCode::BadRequest
        );
        assert_eq!(
            error_of(&exchange(&third, &blob_status(vec![1; 32], 2_000_000)).await?).0,
            wire::ErrorCode::LimitExceeded
        );
        let photo = h.dir.path().join("c.jpg");
        std::fs::write(&photo, vec![7u8; 50_000])?;
        let sha = carol.add_photo(&photo).await?;
        let mut c = patrolsync_sdk::NewCheckIn::new(
            "S1-C2-K1-B1-P1",
            patrolsync_proto::CheckInOutcome::Inspected,
        );
        c.photos = vec![sha];
        carol.record_checkin(c).await?;
        assert_eq!(carol.sync().await?.photos_uploaded, 1);
        assert_eq!(
            error_of(&exchange(&third, &blob_status(sha.to_vec(), 50_000)).await?).0,
            wire::ErrorCode::Forbidden
        );
        let download = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::BlobDownload(
                wire::BlobDownloadRequest {
                    sha256: sha.to_vec(),
                    offset: 0,
                },
            )),
        });
        let (code, msg) = error_of(&exchange(&third, &download).await?);
        assert_eq!(code, wire::ErrorCode::Forbidden, "{backend}: {msg}");
        let mut upload = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
                sha256: sha.to_vec(),
                size: 50_000,
                offset: 0,
            })),
        });
        upload.extend_from_slice(&[0u8; 1000]);
        assert_eq!(
            error_of(&exchange(&third, &upload).await?).0,
            wire::ErrorCode::Forbidden,
            "{backend}"
        );

        // A frame of the wrong message (a server Response sent as a request) is refused.
        let wrong = frame::encode(&wire::Response {
            kind: Some(wire::response::Kind::Error(wire::Error {
                code: 1,
                message: "x".into(),
                retryable: false,
                held_offset: 0,
            })),
        });
        assert_eq!(
            error_of(&exchange(&third, &wrong).await?).0,
            wire::ErrorCode::BadRequest,
            "{backend}"
        );
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_connect_through_quic_retry_under_load() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        // Every handshake counts as "under load": each client must answer a Retry first.
        let h = Harness::start_with(db, |c| c.limits.retry_above_handshakes = 0).await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        device
            .record_checkin(patrolsync_sdk::NewCheckIn::new(
                "S1-C1-K1-B1-P1",
                patrolsync_proto::CheckInOutcome::Inspected,
            ))
            .await?;
        assert_eq!(device.sync().await?.applied, 1, "{backend}");
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_connections_from_one_device_leave_others_syncing() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let honest = h.device("honest", "carol", &["S1-C2"]).await?;
        let _m = h.device("mallory", "mallory", &["S1-C1"]).await?;
        let dir = h.dir.path().join("mallory");
        let before = h.server().store().stats(0).await?;

        // Carol keeps syncing while mallory's device opens 500 connections.
        let syncing = tokio::spawn({
            let honest = honest.clone();
            async move {
                let mut applied = 0;
                for _ in 0..10 {
                    honest
                        .record_checkin(patrolsync_sdk::NewCheckIn::new(
                            "S1-C2-K1-B1-P1",
                            patrolsync_proto::CheckInOutcome::Inspected,
                        ))
                        .await?;
                    applied += honest.sync().await?.applied;
                }
                Ok::<_, anyhow::Error>(applied)
            }
        });
        let mut kept = Vec::new();
        for _ in 0..500 {
            kept.push(raw_connect(&h, Some(&dir)).await?);
            if kept.len() > 8 {
                kept.remove(0);
            }
        }
        assert_eq!(
            syncing.await??,
            10,
            "{backend}: the honest device synced throughout"
        );
        // Only the newest connections of the flooding device survive.
        let newest = kept.pop().expect("a connection");
        let hello = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::Hello(wire::Hello::default())),
        });
        assert!(
            matches!(
                exchange(&newest, &hello).await?.kind,
                Some(wire::response::Kind::Hello(_))
            ),
            "{backend}"
        );
        let closed = tokio::time::timeout(Duration::from_secs(2), kept[0].closed()).await?;
        assert!(
            matches!(closed, quinn::ConnectionError::ApplicationClosed(_)),
            "{backend}: {closed:?}"
        );
        let after = h.server().store().stats(0).await?;
        assert_eq!(
            after.check_ins,
            before.check_ins + 10,
            "{backend}: nothing else changed"
        );
        assert_eq!(
            (after.hazards, after.blobs, after.rejected_ops),
            (before.hazards, before.blobs, before.rejected_ops)
        );
        h.finish().await;
    }
    Ok(())
}

/// A client of the pull protocol before scope feeds is refused at pull, saying to update the
/// app, while what it pushes still lands; a cursor from another feed (or none) is answered
/// with a reset and nothing else; a backfill position cannot read outside the scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_pull_is_refused_and_a_foreign_cursor_is_reset() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let _k2 = h.device("k2", "kim", &["S1-C1-K2"]).await?;
        let conn = raw_connect(&h, Some(&h.dir.path().join("k2"))).await?;
        let pull = |cursor, protocol, feed: &str, backfill_after| {
            frame::encode(&wire::Request {
                kind: Some(wire::request::Kind::Pull(wire::PullRequest {
                    cursor,
                    limit: 1000,
                    compact: true,
                    backfill_after,
                    protocol,
                    feed: feed.into(),
                })),
            })
        };
        let (code, message) = error_of(&exchange(&conn, &pull(0, 0, "", 0)).await?);
        assert_eq!(code, wire::ErrorCode::Unsupported, "{backend}");
        assert!(message.contains("update the app"), "{backend}: {message}");
        let r = exchange(
            &conn,
            &push(vec![check_in_op(1, |c| {
                c.checkpoint = "S1-C1-K2-B1-P1".into();
            })]),
        )
        .await?;
        assert!(
            matches!(&r.kind, Some(wire::response::Kind::Push(p)) if p.acked_through == 1),
            "{backend}: pushes still land: {r:?}"
        );

        // A first pull names the feed; everything in it is under S1-C1-K2 (or for everyone).
        let Some(wire::response::Kind::Pull(first)) =
            exchange(&conn, &pull(0, 2, "", 0)).await?.kind
        else {
            panic!("{backend}: a pull page")
        };
        assert!(first.feed.starts_with("user:"), "{backend}: {}", first.feed);
        let in_scope = |c: &wire::Change| match &c.entity {
            Some(wire::change::Entity::Cell(x)) => x.code.starts_with("S1-C1-K2"),
            Some(wire::change::Entity::Checkpoint(x)) => x.code.starts_with("S1-C1-K2"),
            Some(wire::change::Entity::Scope(x)) => x.cell == "S1-C1-K2",
            Some(wire::change::Entity::Template(_)) => true,
            _ => false,
        };
        assert!(first.changes.iter().all(in_scope), "{backend}");
        // Inside the backfill, any position: still nothing outside the scope.
        for after in [1, first.next_cursor / 2, u64::MAX] {
            let Some(wire::response::Kind::Pull(p)) =
                exchange(&conn, &pull(0, 2, &first.feed, after)).await?.kind
            else {
                panic!("{backend}: a pull page")
            };
            assert!(p.changes.iter().all(in_scope), "{backend}: after {after}");
        }
        // A cursor of another feed, or of none: a reset, nothing else.
        for feed in ["", "agency:fire_brigade", "user:999"] {
            let Some(wire::response::Kind::Pull(p)) =
                exchange(&conn, &pull(first.next_cursor, 2, feed, 0))
                    .await?
                    .kind
            else {
                panic!("{backend}: a pull page")
            };
            assert!(
                p.reset && p.changes.is_empty() && p.next_cursor == 0 && p.feed == first.feed,
                "{backend}: {feed:?}: {p:?}"
            );
        }
        h.finish().await;
    }
    Ok(())
}

fn blob_status_req(sha: &[u8; 32], size: u64) -> Vec<u8> {
    frame::encode(&wire::Request {
        kind: Some(wire::request::Kind::BlobStatus(wire::BlobStatusRequest {
            sha256: sha.to_vec(),
            size,
        })),
    })
}

fn blob_upload_req(sha: &[u8; 32], size: u64, offset: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = frame::encode(&wire::Request {
        kind: Some(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
            sha256: sha.to_vec(),
            size,
            offset,
        })),
    });
    out.extend_from_slice(bytes);
    out
}

fn blob_download_req(sha: &[u8; 32]) -> Vec<u8> {
    frame::encode(&wire::Request {
        kind: Some(wire::request::Kind::BlobDownload(
            wire::BlobDownloadRequest {
                sha256: sha.to_vec(),
                offset: 0,
            },
        )),
    })
}

/// Sends a request and reads the answer frame and the raw bytes after it (a download).
async fn exchange_all(
    conn: &quinn::Connection,
    bytes: &[u8],
) -> anyhow::Result<(wire::Response, Vec<u8>)> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(bytes).await?;
    send.finish()?;
    let body = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(8 << 20)).await??;
    let (header, rest) = body.split_at(frame::HEADER_LEN);
    let len = frame::body_len(header.try_into()?, 1 << 20)?;
    Ok((frame::decode(&rest[..len])?, rest[len..].to_vec()))
}

/// Naming a photo's hash in one's own record neither reveals that the server holds it nor lets
/// one download it; uploading garbage against it spoils nobody's upload; uploading its true
/// bytes proves possession; a manager whose cells hold the record reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_read_through_scope_or_possession_and_staging_is_ones_own() -> anyhow::Result<()>
{
    use patrolsync_proto::checkin::CheckInOutcome;
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let carol = h
            .device_with(
                "carol",
                "carol",
                &["S1-C2"],
                patrolsync_sdk::ClientConfig {
                    max_attempts: 1,
                    ..patrolsync_tests::fast_client()
                },
            )
            .await?;
        let manager = h
            .device_as("boss", "boss", patrolsync_proto::Role::GridManager, &["S1"])
            .await?;
        let _m = h.device("mallory", "mallory", &["S1-C1"]).await?;
        let conn = raw_connect(&h, Some(&h.dir.path().join("mallory"))).await?;

        // Carol's photo, in S1-C2; its upload is cut at half.
        let photo: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
        let path = h.dir.path().join("carol.jpg");
        std::fs::write(&path, &photo)?;
        let sha = carol.add_photo(&path).await?;
        let size = photo.len() as u64;
        let mut c = patrolsync_sdk::NewCheckIn::new("S1-C2-K1-B1-P1", CheckInOutcome::Inspected);
        c.photos = vec![sha];
        carol.record_checkin(c).await?;
        h.server().faults().cut_next_upload_at(150_000);
        let cut = carol.sync().await;
        assert!(
            matches!(&cut, Err(patrolsync_sdk::SyncError::Network { .. })),
            "{backend}: the upload was cut: {cut:?}"
        );

        // Mallory names the same hash, and one nobody has, in check-ins of her own.
        let nobody = [0x5a; 32];
        let named = check_in_op(40, |c| {
            c.photo_sha256 = vec![sha.to_vec(), nobody.to_vec()];
        });
        let r = exchange(&conn, &push(vec![named])).await?;
        assert!(
            matches!(&r.kind, Some(wire::response::Kind::Push(p)) if p.results[0].outcome == wire::OpOutcome::Applied as i32),
            "{backend}: {r:?}"
        );
        // Her status of Carol's photo is her own (nothing), not Carol's half.
        let status = |r: wire::Response| match r.kind {
            Some(wire::response::Kind::BlobStatus(s)) => (s.held, s.complete),
            other => panic!("expected a status, got {other:?}"),
        };
        assert_eq!(
            status(exchange(&conn, &blob_status_req(&sha, size)).await?),
            (0, false)
        );
        // Garbage at Carol's offset is not appended to Carol's staging…
        refused_unchanged(
            &h,
            &conn,
            "garbage at another device's offset",
            &blob_upload_req(&sha, size, 150_000, &vec![0u8; 150_000]),
            wire::ErrorCode::BlobOffsetMismatch,
        )
        .await?;
        // …and garbage from zero fails its own hash and is discarded.
        refused_unchanged(
            &h,
            &conn,
            "garbage for another device's photo",
            &blob_upload_req(&sha, size, 0, &vec![1u8; 300_000]),
            wire::ErrorCode::BlobHashMismatch,
        )
        .await?;
        // Carol resumes and completes: her bytes were never touched.
        let s = carol.sync().await?;
        assert_eq!(s.photos_uploaded, 1, "{backend}: {s:?}");
        assert!(s.photo_bytes_sent < size, "{backend}: resumed, {s:?}");
        assert_eq!(
            h.server().store().blob(&sha).await?,
            Some(size),
            "{backend}"
        );

        // Stored now, yet Mallory learns nothing of it: the same answers as for a hash nobody has.
        assert_eq!(
            status(exchange(&conn, &blob_status_req(&sha, size)).await?),
            (0, false)
        );
        assert_eq!(
            status(exchange(&conn, &blob_status_req(&nobody, size)).await?),
            (0, false)
        );
        let message = refused_unchanged(
            &h,
            &conn,
            "a download by naming the hash",
            &blob_download_req(&sha),
            wire::ErrorCode::Forbidden,
        )
        .await?;
        let message2 = refused_unchanged(
            &h,
            &conn,
            "a download of a hash nobody has",
            &blob_download_req(&nobody),
            wire::ErrorCode::Forbidden,
        )
        .await?;
        assert_eq!(
            message.replace(&hex::encode(sha), "H"),
            message2.replace(&hex::encode(nobody), "H"),
            "{backend}: no oracle"
        );

        // A manager whose cells hold Carol's record reads it.
        let got = h.dir.path().join("boss.jpg");
        manager.sync().await?;
        manager.download_photo(sha, &got).await?;
        assert_eq!(std::fs::read(&got)?, photo, "{backend}");

        // Mallory holding the true bytes proves it by sending them all; then she may read it.
        let (r, _) = exchange_all(&conn, &blob_upload_req(&sha, size, 0, &photo)).await?;
        assert!(
            matches!(&r.kind, Some(wire::response::Kind::BlobUpload(u)) if u.complete && u.held == size),
            "{backend}: {r:?}"
        );
        assert_eq!(
            status(exchange(&conn, &blob_status_req(&sha, size)).await?),
            (size, true)
        );
        let (r, bytes) = exchange_all(&conn, &blob_download_req(&sha)).await?;
        assert!(
            matches!(r.kind, Some(wire::response::Kind::BlobDownload(_))),
            "{backend}"
        );
        assert_eq!(bytes, photo, "{backend}");
        h.finish().await;
    }
    Ok(())
}

/// An upload told to retry because its staging is held by an upload on another node (which
/// shares the photo directory and still serves this device's dead connection) spends none of
/// the device's photo budget: each retry is answered "retry", never "over budget", and once
/// the other upload ends the photo goes through, within a budget the retries would have spent.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_busy_elsewhere_spends_no_photo_budget() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| c.limits.photo_bytes_per_day = 200 * 1024).await?;
        let device = h.device("walker", "walker", &["S1-C1"]).await?;
        let id = patrolsync_tests::device_id(&device).await?;
        let conn = raw_connect(&h, Some(&h.dir.path().join("walker"))).await?;
        let photo = vec![7u8; 150 * 1024];
        let sha = patrolsync_tests::sha256(&photo);
        let named = check_in_op(1, |c| c.photo_sha256 = vec![sha.to_vec()]);
        exchange(&conn, &push(vec![named])).await?;
        // The other node's upload holds the staging: its lock.
        let path = h
            .config
            .data_dir
            .join("blobs/staging")
            .join(format!("{}.{id}", hex::encode(sha)));
        let other = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        rustix::fs::flock(&other, rustix::fs::FlockOperation::NonBlockingLockExclusive)?;
        let upload = blob_upload_req(&sha, photo.len() as u64, 0, &photo);
        for _ in 0..3 {
            let (code, message) = error_of(&exchange(&conn, &upload).await?);
            assert_eq!(code, wire::ErrorCode::Unavailable, "{backend}: {message}");
            assert!(
                message.contains("being uploaded by another request"),
                "{backend}: {message}"
            );
        }
        drop(other);
        let r = exchange(&conn, &upload).await?;
        assert!(
            matches!(&r.kind, Some(wire::response::Kind::BlobUpload(u)) if u.complete),
            "{backend}: {r:?}"
        );
        assert_eq!(
            h.server().store().blob(&sha).await?,
            Some(photo.len() as u64),
            "{backend}"
        );
        h.finish().await;
    }
    Ok(())
}

/// Every budget refuses with a typed error that says when to retry (or that the request alone
/// is over the budget): requests per device, enrollment attempts and unenrolled connections per
/// address, photo bytes per device per day; refused payloads over the day's budget are answered
/// and logged without the payload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_refuse_typed_and_say_when_to_retry() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| {
            c.limits.requests_per_second = 0.01;
            c.limits.request_burst = 6;
            // Mallory's own enrollment spends one.
            c.limits.enrolls_per_minute_per_address = 3.0;
            c.limits.unenrolled_connections_per_address = 2;
            c.limits.photo_bytes_per_day = 200 * 1024;
            c.limits.refused_bytes_per_day = 4 * 1024;
        })
        .await?;
        let _m = h.device("mallory", "mallory", &["S1-C1"]).await?;
        let conn = raw_connect(&h, Some(&h.dir.path().join("mallory"))).await?;

        let pull = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::Pull(wire::PullRequest {
                limit: 1,
                protocol: patrolsync_proto::scope::PULL_PROTOCOL,
                ..Default::default()
            })),
        });
        // Photos: one larger than the day's budget is refused for good; within it, the day's
        // budget spent, refused until it refills. Each upload spends a request as well.
        let big = [0x61; 32];
        let small = [0x62; 32];
        let again = [0x63; 32];
        let named = check_in_op(50, |c| {
            c.photo_sha256 = vec![big.to_vec(), small.to_vec(), again.to_vec()];
        });
        exchange(&conn, &push(vec![named])).await?;
        let upload = |sha: &[u8; 32], size: u64| {
            let mut out = frame::encode(&wire::Request {
                kind: Some(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
                    sha256: sha.to_vec(),
                    size,
                    offset: 0,
                })),
            });
            out.extend(std::iter::repeat_n(7u8, size as usize));
            out
        };
        let Some(wire::response::Kind::Error(e)) =
            exchange(&conn, &upload(&big, 300 * 1024)).await?.kind
        else {
            panic!("{backend}: over the whole budget")
        };
        assert!(
            e.code == wire::ErrorCode::LimitExceeded as i32 && !e.retryable,
            "{backend}: {e:?}"
        );
        // 150 KiB of wrong bytes: they spend the budget all the same (and fail their hash).
        let (code, _) = error_of(&exchange(&conn, &upload(&small, 150 * 1024)).await?);
        assert_eq!(code, wire::ErrorCode::BlobHashMismatch, "{backend}");
        // Over today's budget: refused before anything is made (no staging is left behind).
        let message = refused_unchanged(
            &h,
            &conn,
            "an upload over today's photo budget",
            &upload(&again, 150 * 1024),
            wire::ErrorCode::LimitExceeded,
        )
        .await?;
        assert!(
            message.contains("photo uploads today have reached its budget of 200 KiB")
                && message.contains("retry in"),
            "{backend}: {message}"
        );

        // Requests: the burst (three left after the uploads), then refused and retryable,
        // saying when; an upload too, before its bytes are looked at.
        for _ in 0..3 {
            let r = exchange(&conn, &pull).await?;
            assert!(
                matches!(r.kind, Some(wire::response::Kind::Pull(_))),
                "{backend}: {r:?}"
            );
        }
        let Some(wire::response::Kind::Error(e)) = exchange(&conn, &pull).await?.kind else {
            panic!("{backend}: the fourth pull is refused")
        };
        assert!(
            e.code == wire::ErrorCode::LimitExceeded as i32
                && e.retryable
                && e.message.contains("retry in"),
            "{backend}: {e:?}"
        );
        let (code, message) = error_of(&exchange(&conn, &upload(&again, 150 * 1024)).await?);
        assert!(
            code == wire::ErrorCode::LimitExceeded && message.contains("requests a second"),
            "{backend}: {code:?} {message}"
        );

        // Refused ops: answered and logged, their payloads only up to the day's budget.
        let outside: Vec<wire::Op> = (0..8)
            .map(|i| {
                check_in_op(60 + i, |c| {
                    c.checkpoint = "S2-C1-K1-B1-P1".into();
                    c.note = "x".repeat(1000);
                })
            })
            .collect();
        let Some(wire::response::Kind::Push(p)) = exchange(&conn, &push(outside)).await?.kind
        else {
            panic!("{backend}: a push answer")
        };
        assert!(
            p.results
                .iter()
                .all(|r| r.outcome == wire::OpOutcome::Rejected as i32),
            "{backend}"
        );
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let kept: Vec<i64> = sqlx::query_scalar(
            "SELECT length(payload) FROM rejections WHERE device_seq >= 60 ORDER BY device_seq",
        )
        .fetch_all(store.raw_pool())
        .await?;
        assert_eq!(kept.len(), 8, "{backend}: every refusal is logged");
        assert!(kept[0] > 1000 && kept[7] == 0, "{backend}: {kept:?}");

        // Enrollment: three attempts a minute from an address (one enrolled Mallory), then
        // refused, retryable.
        let anon = raw_connect(&h, None).await?;
        let enroll = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::Enroll(wire::EnrollRequest {
                code: "not-a-code".into(),
                ..Default::default()
            })),
        });
        for _ in 0..2 {
            let (code, _) = error_of(&exchange(&anon, &enroll).await?);
            assert_eq!(code, wire::ErrorCode::EnrollmentRefused, "{backend}");
        }
        let Some(wire::response::Kind::Error(e)) = exchange(&anon, &enroll).await?.kind else {
            panic!("{backend}: a third attempt is refused")
        };
        assert!(
            e.code == wire::ErrorCode::LimitExceeded as i32 && e.retryable,
            "{backend}: {e:?}"
        );

        // Unenrolled connections: two from an address; the third is closed, saying why. The
        // client's handshake ends before the server admits the connection, so the second is
        // seen served (an answer, the enrollment budget's refusal) before the third dials:
        // otherwise the server may admit the third first and close the second.
        let second = raw_connect(&h, None).await?;
        let (code, _) = error_of(&exchange(&second, &enroll).await?);
        assert_eq!(code, wire::ErrorCode::LimitExceeded, "{backend}");
        let third = raw_connect(&h, None).await?;
        let closed = tokio::time::timeout(Duration::from_secs(2), third.closed()).await?;
        assert!(
            matches!(&closed, quinn::ConnectionError::ApplicationClosed(c)
                if c.error_code == quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_TOO_MANY_CONNECTIONS)
                && String::from_utf8_lossy(&c.reason).contains("without a device certificate")),
            "{backend}: {closed:?}"
        );
        // An enrolled device is not counted among them.
        let r = raw_connect(&h, Some(&h.dir.path().join("mallory"))).await?;
        assert!(
            tokio::time::timeout(Duration::from_millis(300), r.closed())
                .await
                .is_err(),
            "{backend}: a device's connection stays"
        );
        h.finish().await;
    }
    Ok(())
}

/// A device cannot freeze a hazard: floods of edits fill only its own share of the log, and a
/// manager's transition still lands; a device outside the cell learns nothing of the log, not
/// even that it is long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_device_cannot_freeze_a_hazard() -> anyhow::Result<()> {
    use patrolsync_proto::hazard::{EventKind, FieldValue};
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let honest = h.device("honest", "honest", &["S1-C1"]).await?;
        let manager = h
            .device_as("boss", "boss", patrolsync_proto::Role::GridManager, &["S1"])
            .await?;
        let _m = h.device("mallory", "mallory", &["S1-C1"]).await?;
        let _o = h.device("outsider", "olga", &["S2-C1"]).await?;
        let hazard = honest
            .report_hazard(patrolsync_tests::blocked_lane("S1-C1-K1"))
            .await?;
        honest.sync().await?;

        // 600 edits from one device, in one push: 200 land, the rest are refused.
        let conn = raw_connect(&h, Some(&h.dir.path().join("mallory"))).await?;
        hello_in(&conn, "en").await?;
        let edit = |seq: u64| {
            let mut op = check_in_op(seq, |_| {});
            op.body = Some(wire::op::Body::HazardFieldEdit(
                patrolsync_proto::hazard::Edit {
                    hazard,
                    value: FieldValue::Description(format!("spam {seq}")),
                }
                .to_wire(),
            ));
            op
        };
        let Some(wire::response::Kind::Push(p)) =
            exchange(&conn, &push((1..=600).map(edit).collect()))
                .await?
                .kind
        else {
            panic!("{backend}: a push answer")
        };
        let applied = p
            .results
            .iter()
            .filter(|r| r.outcome == wire::OpOutcome::Applied as i32)
            .count();
        assert_eq!(applied, 200, "{backend}");
        assert!(
            p.results
                .iter()
                .filter(|r| r.outcome == wire::OpOutcome::Rejected as i32)
                .all(|r| r.reason == "log_full" && r.message.contains("from this device")),
            "{backend}"
        );

        // The manager's transition still lands.
        manager.sync().await?;
        manager
            .transition_hazard(
                hazard,
                EventKind::Notify,
                patrolsync_sdk::Transition {
                    deadline_ms: Some(4_000_000_000_000),
                    ..Default::default()
                },
            )
            .await?;
        let s = manager.sync().await?;
        assert_eq!((s.applied, s.rejected), (1, 0), "{backend}: {s:?}");
        assert_eq!(
            h.server()
                .store()
                .hazard(hazard)
                .await?
                .expect("stored")
                .status,
            "rectifying",
            "{backend}"
        );

        // Someone outside the cell is told it is outside, not that the log is long.
        let outsider = raw_connect(&h, Some(&h.dir.path().join("outsider"))).await?;
        let Some(wire::response::Kind::Push(p)) =
            exchange(&outsider, &push(vec![edit(1)])).await?.kind
        else {
            panic!("{backend}: a push answer")
        };
        assert_eq!(
            p.results[0].reason, "outside_scope",
            "{backend}: {:?}",
            p.results
        );
        h.finish().await;
    }
    Ok(())
}

/// What the protocol's comments say is what the server does: an unknown enum value is refused
/// naming the field; a device_seq reused by another op is refused (`seq_reused`) while the
/// same op again is a duplicate; a conflict carries no error code, its reason `conflict`;
/// Hello's cursor is the log's head; an upload that ends early says where to resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_does_what_the_protocol_says() -> anyhow::Result<()> {
    use patrolsync_proto::hazard::{Event, EventKind};
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let reporter = h.device("rep", "rep", &["S1-C1"]).await?;
        let _m = h
            .device_as("boss", "boss", patrolsync_proto::Role::GridManager, &["S1"])
            .await?;
        let _p = h.device("mallory", "mallory", &["S1-C1"]).await?;
        let conn = raw_connect(&h, Some(&h.dir.path().join("mallory"))).await?;
        // In English the server's refusals carry its own detail (the values a field takes).
        hello_in(&conn, "en").await?;
        let results = |r: wire::Response| match r.kind {
            Some(wire::response::Kind::Push(p)) => p.results,
            other => panic!("expected a push answer, got {other:?}"),
        };

        // An enum value this server does not know.
        let odd = check_in_op(1, |c| c.method = 99);
        let r = &results(exchange(&conn, &push(vec![odd])).await?)[0];
        assert_eq!(
            (r.outcome, r.reason.as_str(), r.field.as_str()),
            (wire::OpOutcome::Rejected as i32, "unknown_value", "method"),
            "{backend}: {r:?}"
        );
        assert!(
            r.message.contains("qr"),
            "{backend}: names the known values: {}",
            r.message
        );

        // The same op again: a duplicate. Its seq under another op id: refused.
        let first = check_in_op(2, |_| {});
        assert_eq!(
            results(exchange(&conn, &push(vec![first.clone()])).await?)[0].outcome,
            wire::OpOutcome::Applied as i32
        );
        assert_eq!(
            results(exchange(&conn, &push(vec![first])).await?)[0].outcome,
            wire::OpOutcome::Duplicate as i32,
            "{backend}"
        );
        let reused = &results(exchange(&conn, &push(vec![check_in_op(2, |_| {})])).await?)[0];
        assert_eq!(
            (reused.outcome, reused.reason.as_str()),
            (wire::OpOutcome::Rejected as i32, "seq_reused"),
            "{backend}"
        );

        // A conflict: the second of two notifications finds the hazard notified already.
        let hazard = reporter
            .report_hazard(patrolsync_tests::blocked_lane("S1-C1-K1"))
            .await?;
        reporter.sync().await?;
        let boss = raw_connect(&h, Some(&h.dir.path().join("boss"))).await?;
        let notify = |seq: u64| {
            let mut op = check_in_op(seq, |_| {});
            let now = op.hlc.as_ref().map_or(0, |h| h.wall_ms as i64);
            op.body = Some(wire::op::Body::HazardEvent(
                Event {
                    id: patrolsync_proto::EventId(uuid::Uuid::now_v7()),
                    hazard,
                    kind: EventKind::Notify,
                    deadline_ms: Some(4_000_000_000_000),
                    agency: None,
                    merge_into: None,
                    note: String::new(),
                    photos: vec![],
                    device_time_ms: now,
                }
                .to_wire(),
            ));
            op
        };
        let r = results(exchange(&boss, &push(vec![notify(1), notify(2)])).await?);
        assert_eq!(
            r[0].outcome,
            wire::OpOutcome::Applied as i32,
            "{backend}: {r:?}"
        );
        assert_eq!(
            (r[1].outcome, r[1].code, r[1].reason.as_str()),
            (wire::OpOutcome::Conflict as i32, 0, "conflict"),
            "{backend}: {r:?}"
        );
        assert!(!r[1].message.is_empty(), "{backend}");

        // Hello's cursor is the head of the whole log.
        let hello = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::Hello(wire::Hello::default())),
        });
        let Some(wire::response::Kind::Hello(hi)) = exchange(&conn, &hello).await?.kind else {
            panic!("{backend}: a hello answer")
        };
        assert_eq!(hi.cursor, h.server().store().cursor().await?, "{backend}");

        // An upload that ends before its announced size: where to resume.
        let sha = [0x71; 32];
        exchange(
            &conn,
            &push(vec![check_in_op(3, |c| {
                c.photo_sha256 = vec![sha.to_vec()]
            })]),
        )
        .await?;
        let mut short = frame::encode(&wire::Request {
            kind: Some(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
                sha256: sha.to_vec(),
                size: 1000,
                offset: 0,
            })),
        });
        short.extend_from_slice(&[3u8; 400]);
        let Some(wire::response::Kind::Error(e)) = exchange(&conn, &short).await?.kind else {
            panic!("{backend}: an error")
        };
        assert_eq!(
            (e.held_offset, e.retryable),
            (400, true),
            "{backend}: {e:?}"
        );
        h.finish().await;
    }
    Ok(())
}
