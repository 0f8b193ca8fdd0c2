//! Revocation: a lost or stolen phone is cut off at once, cannot come back, and what it sent
//! before stays; other devices keep syncing. Enrollment trusts only the pinned CA. SQLite and
//! (when configured) PostgreSQL.

use std::time::{Duration, Instant};

use patrolsync_proto::{CheckInOutcome, Role};
use patrolsync_sdk::{Client, EngineOptions, NewCheckIn, SyncError, SyncEvent};
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, fast_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_device_is_cut_off_and_others_keep_syncing() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let lost = h.device("lost", "alice", &["S1-C1"]).await?;
        let other = h.device("other", "bob", &["S1-C2"]).await?;
        for _ in 0..3 {
            lost.record_checkin(NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected))
                .await?;
        }
        assert_eq!(lost.sync().await?.applied, 3);

        // The lost phone is online, holding a connection open for Notify.
        let engine = lost.start_engine(EngineOptions {
            interval: Duration::from_secs(3600),
            ..EngineOptions::default()
        });
        let mut events = engine.subscribe();
        loop {
            if let SyncEvent::Finished(_) =
                tokio::time::timeout(Duration::from_secs(10), events.recv()).await??
            {
                break;
            }
        }
        // A second live connection of the same device, with its own key and certificate, that
        // has been answered (so the server holds it as this device's) before the revocation.
        let state = h.dir.path().join("lost");
        let held = patrolsync_tests::raw_connect(
            h.addr(),
            &h.config.data_dir.join("ca.crt"),
            Some((
                std::fs::read(state.join("device.crt"))?,
                std::fs::read(state.join("device.key"))?,
            )),
        )
        .await?;
        let (mut send, mut recv) = held.open_bi().await?;
        let cursor = patrolsync_proto::wire::Request {
            kind: Some(patrolsync_proto::wire::request::Kind::Hello(
                patrolsync_proto::wire::Hello::default(),
            )),
        };
        send.write_all(&patrolsync_proto::frame::encode(&cursor))
            .await?;
        send.finish()?;
        let answer = recv.read_to_end(1 << 20).await?;
        assert!(
            !answer.is_empty(),
            "{backend}: the device's Hello was answered"
        );

        let id = lost.status().await?.device_id.expect("enrolled");
        let revoked_at = Instant::now();
        h.server()
            .store()
            .revoke_device(&id, patrolsync_server::now_ms())
            .await?;
        // Revoked through the store, as the command line or another node writes it: the node
        // finds it at its next check (every 250 ms) and closes the live connection. The bound
        // only keeps a broken build from hanging; the time taken is printed, not asserted.
        let cut = loop {
            let left = Duration::from_secs(10).saturating_sub(revoked_at.elapsed());
            anyhow::ensure!(
                !left.is_zero(),
                "{backend}: the live connection was not closed"
            );
            if let Ok(Ok(SyncEvent::Stopped { reason, code })) =
                tokio::time::timeout(left, events.recv()).await
            {
                break (reason, code);
            }
        };
        assert!(cut.0.contains("revoked"), "{backend}: {cut:?}");
        assert_eq!(cut.1, patrolsync_sdk::ErrorCode::Revoked, "{backend}");
        assert_eq!(
            lost.status().await?.last_error_code,
            Some(patrolsync_sdk::ErrorCode::Revoked),
            "{backend}: the status says why the device stopped"
        );
        // The connection that was live all along is closed by the server, saying why.
        let closed = tokio::time::timeout(Duration::from_secs(10), held.closed()).await?;
        assert!(
            matches!(
                &closed,
                quinn::ConnectionError::ApplicationClosed(c)
                    if c.error_code == quinn::VarInt::from_u32(patrolsync_proto::codes::CLOSE_REVOKED)
            ),
            "{backend}: {closed:?}"
        );
        eprintln!(
            "{backend}: live connection closed {:?} after revocation",
            revoked_at.elapsed()
        );
        engine.stop().await;

        // It cannot come back, and says why instead of retrying forever.
        lost.record_checkin(NewCheckIn::new("S1-C1-K1-B1-P2", CheckInOutcome::Inspected))
            .await?;
        let err = lost.sync().await.expect_err("revoked");
        assert!(matches!(err, SyncError::Revoked), "{backend}: {err:?}");
        assert!(!err.is_retryable());
        // A revoked phone may be lost: it holds nothing of its cells any more, but keeps what it
        // had not sent.
        assert!(
            lost.cells().await?.is_empty() && lost.checkpoints().await?.is_empty(),
            "{backend}"
        );
        assert_eq!(lost.status().await?.pending_ops, 1, "{backend}");
        assert!(
            lost.status()
                .await?
                .last_error
                .unwrap_or_default()
                .contains("revoked")
        );

        // Others are unaffected; what the lost phone sent before stays.
        other
            .record_checkin(NewCheckIn::new("S1-C2-K1-B1-P1", CheckInOutcome::Inspected))
            .await?;
        assert_eq!(other.sync().await?.applied, 1, "{backend}");
        let stats = h.server().store().stats(0).await?;
        assert_eq!(
            (stats.check_ins, stats.devices_revoked),
            (4, 1),
            "{backend}"
        );
        h.finish().await;
    }
    Ok(())
}

/// An enrollment string pinning another CA than the server's (a typo, or someone else's
/// server in the middle) fails in the TLS handshake, before the code is ever sent: the code
/// still enrolls a device with the right string afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_pinned_to_another_ca_is_refused_before_the_code_is_sent() -> anyhow::Result<()>
{
    use patrolsync_proto::EnrollmentString;
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let code = h.enrollment("eve", Role::Patroller, &["S1-C1"]).await?;
        let mut wrong: EnrollmentString = code.parse()?;
        wrong.ca_sha256 = patrolsync_proto::digest::Sha256([0xab; 32]);
        let phone = Client::open(h.dir.path().join("eve"), fast_client()).await?;
        let err = phone
            .enroll(&wrong.to_string(), None, "eve's phone")
            .await
            .expect_err("another CA");
        assert!(
            matches!(&err, patrolsync_sdk::EnrollError::Unreachable { reason, .. }
                if reason.contains("does not match the fingerprint")),
            "{backend}: {err}"
        );
        assert!(phone.status().await?.device_id.is_none(), "{backend}");
        // The code never left the phone: it is still unused.
        let other = Client::open(h.dir.path().join("eve2"), fast_client()).await?;
        other.enroll(&code, None, "eve's phone").await?;
        assert!(other.status().await?.device_id.is_some(), "{backend}");
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_device_enrolls_again_and_sends_what_it_had_not() -> anyhow::Result<()> {
    use patrolsync_sdk::EnrollError;
    for db in test_databases().await {
        let backend = db.backend;
        let mut h = Harness::start(db).await?;
        let phone = h.device("phone", "alice", &["S1-C1"]).await?;
        let check_in = |p: &str| NewCheckIn::new(p, CheckInOutcome::Inspected);
        let mut sent = vec![];
        for p in ["S1-C1-K1-B1-P1", "S1-C1-K1-B1-P2"] {
            sent.push(phone.record_checkin(check_in(p)).await?.to_string());
        }
        phone.sync().await?;
        // Offline, three check-ins and a hazard; then the device is revoked (a phone reported
        // lost, then found).
        let mut unsent = vec![];
        for p in ["S1-C1-K1-B2-P1", "S1-C1-K1-B2-P2", "S1-C1-K1-B3-P1"] {
            unsent.push(phone.record_checkin(check_in(p)).await?.to_string());
        }
        let hazard = phone
            .report_hazard(patrolsync_tests::blocked_lane("S1-C1-K1"))
            .await?;
        let old = phone.status().await?.device_id.expect("enrolled");
        h.server()
            .store()
            .revoke_device(&old, patrolsync_server::now_ms())
            .await?;
        let refused = phone.sync().await;
        assert!(
            matches!(refused, Err(SyncError::Revoked)),
            "{backend}: {refused:?}"
        );
        assert_eq!(phone.status().await?.pending_ops, 4, "{backend}");
        // Then a sync with no server: the last error is now a network one, and the device
        // still knows it was revoked.
        h.stop().await;
        let offline = phone.sync().await;
        assert!(
            matches!(offline, Err(SyncError::Network { .. })),
            "{backend}: {offline:?}"
        );
        h.restart().await?;

        // Enrolling it for someone else is refused: alice's records must not go out as bob's.
        let bobs = h.enrollment("bob", Role::Patroller, &["S1-C1"]).await?;
        let wrong = phone.enroll(&bobs, None, "phone").await;
        assert!(
            matches!(&wrong, Err(EnrollError::OtherUsersRecords { user, count: 4 }) if user == "alice"),
            "{backend}: {wrong:?}"
        );
        assert_eq!(
            phone.status().await?.device_id.as_deref(),
            Some(old.as_str())
        );

        // Enrolled again for alice with a new code: a new device, the same unsent records.
        let code = h.enrollment("alice", Role::Patroller, &["S1-C1"]).await?;
        let again = phone.enroll(&code, None, "phone").await?;
        assert_ne!(again.device_id, old, "{backend}");
        assert_eq!(phone.status().await?.pending_ops, 4, "{backend}");
        assert_eq!(phone.status().await?.last_error_code, None, "{backend}");
        let s = phone.sync().await?;
        // Numbered from 1 for the new device: the server's contiguous acknowledgement reaches
        // all four (with the old numbers it would stop at 0, waiting for 1 and 2).
        assert_eq!(
            (s.applied, s.rejected, s.remaining, s.acked_through),
            (4, 0, 0, 4),
            "{backend}: {s:?}"
        );
        // On the server: the two sent before under the old device, the three after under the
        // new one, each once.
        let store = h.server().store();
        let by = |id: &str| -> anyhow::Result<patrolsync_proto::DeviceId> {
            Ok(patrolsync_proto::DeviceId(uuid::Uuid::parse_str(id)?))
        };
        sent.sort();
        unsent.sort();
        assert_eq!(
            patrolsync_tests::stored_check_in_ids(store.as_ref(), Some(by(&old)?)).await?,
            sent,
            "{backend}"
        );
        assert_eq!(
            patrolsync_tests::stored_check_in_ids(store.as_ref(), Some(by(&again.device_id)?))
                .await?,
            unsent,
            "{backend}"
        );
        let view = phone.hazard(hazard).await?.expect("the hazard");
        assert!(
            view.state.report.is_some() && !view.has_local_changes,
            "{backend}"
        );

        // A device that is not revoked may not enroll over itself.
        let code = h.enrollment("alice", Role::Patroller, &["S1-C1"]).await?;
        let twice = phone.enroll(&code, None, "phone").await;
        assert!(
            matches!(&twice, Err(EnrollError::AlreadyEnrolled(id)) if *id == again.device_id),
            "{backend}: {twice:?}"
        );
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_phone_hands_a_volunteers_unsent_records_over_and_sends_them_as_theirs()
-> anyhow::Result<()> {
    use patrolsync_sdk::{SignOutError, Unsent};
    for db in test_databases().await {
        let backend = db.backend;
        let mut h = Harness::start(db).await?;
        let phone = h.device("phone", "alice", &["S1-C1"]).await?;
        let alice = phone.status().await?.device_id.expect("enrolled");
        let check_in = |p: &str| NewCheckIn::new(p, CheckInOutcome::Inspected);
        // Alice's shift ends offline: three check-ins, and a hazard with its photo.
        let mut alices = vec![];
        for p in ["S1-C1-K1-B1-P1", "S1-C1-K1-B1-P2", "S1-C1-K1-B2-P1"] {
            alices.push(phone.record_checkin(check_in(p)).await?.to_string());
        }
        let jpeg = b"\xff\xd8 the blocked lane \xff\xd9";
        let photo = phone.add_photo_bytes(jpeg).await?;
        let hazard = phone
            .report_hazard(patrolsync_sdk::NewHazard {
                photos: vec![photo],
                ..patrolsync_tests::blocked_lane("S1-C1-K1")
            })
            .await?;
        let refused = phone.sign_out(Unsent::Refuse).await;
        assert!(
            matches!(refused, Err(SignOutError::UnsentRecords { count: 5 })),
            "{backend}: {refused:?}"
        );

        // She hands the phone over with her records still on it.
        phone.sign_out(Unsent::HandOver).await?;
        let s = phone.status().await?;
        assert_eq!(
            (s.device_id, s.user, s.pending_ops, s.pending_photos),
            (None, None, 0, 0),
            "{backend}"
        );
        assert_eq!(s.handed_over, 5, "{backend}: 4 records and a photo wait");
        assert!(phone.hazards().await?.is_empty(), "{backend}");
        assert!(
            phone.recent_check_ins(10, None).await?.is_empty(),
            "{backend}"
        );
        assert!(phone.photos().await?.is_empty(), "{backend}");

        // Offline, a sync sends nothing and the hand-over stays.
        h.stop().await;
        let offline = phone.sync().await;
        assert!(
            matches!(offline, Err(SyncError::NotEnrolled)),
            "{backend}: {offline:?}"
        );
        assert_eq!(phone.status().await?.handed_over, 5, "{backend}");
        h.restart().await?;

        // Bob takes the phone for his shift in another community. A background window without
        // photos sends his record and alice's, and leaves her photo for later.
        let code = h.enrollment("bob", Role::Patroller, &["S1-C2"]).await?;
        let bob = phone.enroll(&code, None, "phone").await?;
        let bobs = phone
            .record_checkin(check_in("S1-C2-K1-B1-P1"))
            .await?
            .to_string();
        let s = phone.sync_for(Duration::from_secs(30), false).await?;
        assert_eq!((s.applied, s.rejected), (1, 0), "{backend}: bob's own");
        assert_eq!(phone.status().await?.handed_over, 1, "{backend}: the photo");
        phone.sync().await?;
        assert_eq!(phone.status().await?.handed_over, 0, "{backend}");
        assert!(
            !h.dir.path().join("phone/handover").join(&alice).exists(),
            "{backend}: the hand-over is deleted once sent"
        );

        // On the server, each record under its own volunteer: alice's device, alice's name.
        let store = h.server().store();
        let device = |id: &str| -> anyhow::Result<patrolsync_proto::DeviceId> {
            Ok(patrolsync_proto::DeviceId(uuid::Uuid::parse_str(id)?))
        };
        alices.sort();
        assert_eq!(
            patrolsync_tests::stored_check_in_ids(store.as_ref(), Some(device(&alice)?)).await?,
            alices,
            "{backend}"
        );
        assert_eq!(
            patrolsync_tests::stored_check_in_ids(store.as_ref(), Some(device(&bob.device_id)?))
                .await?,
            vec![bobs],
            "{backend}"
        );
        let users: Vec<String> = store
            .check_ins(Some(device(&alice)?), u32::MAX)
            .await?
            .into_iter()
            .map(|c| c.user)
            .collect();
        assert_eq!(users, ["alice"; 3], "{backend}");
        let on_server = store.hazard(hazard).await?.expect("alice's hazard");
        assert_eq!(on_server.cell, "S1-C1-K1", "{backend}");
        assert_eq!(
            store.blob(&patrolsync_tests::sha256(jpeg)).await?,
            Some(jpeg.len() as u64),
            "{backend}: its photo"
        );
        // Bob's phone holds none of alice's cell.
        assert!(phone.hazard(hazard).await?.is_none(), "{backend}");
        h.finish().await;
    }
    Ok(())
}
