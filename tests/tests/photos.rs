//! Photos end to end over QUIC: resumable upload, hash verification, one copy for two devices,
//! missing photos until they arrive, the size cap. On SQLite and (when configured) PostgreSQL,
//! each with photos on the filesystem and (when configured) in an S3-compatible store.

use patrolsync_proto::CheckInOutcome;
use patrolsync_proto::hazard::{Handling, HazardCategory, Severity};
use patrolsync_sdk::{ClientConfig, NewCheckIn, NewHazard};
use patrolsync_server::testkit::{setup_name, test_databases, test_databases_and_photo_stores};
use patrolsync_tests::{Harness, fast_client};

/// A deterministic "photo" of `size` bytes, different per seed.
fn photo(
    dir: &std::path::Path,
    name: &str,
    size: usize,
    seed: u32,
) -> anyhow::Result<(std::path::PathBuf, Vec<u8>)> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes)?;
    Ok((path, bytes))
}

use patrolsync_tests::sha256;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_upload_resumes_with_only_the_remaining_bytes() -> anyhow::Result<()> {
    for (db, photos) in test_databases_and_photo_stores().await {
        let backend = setup_name(&db, &photos);
        let h = Harness::start_with(db, |c| c.photos = photos).await?;
        let device = h
            .device_with(
                "phone",
                "alice",
                &["S1-C1"],
                ClientConfig {
                    max_attempts: 1,
                    ..fast_client()
                },
            )
            .await?;
        let (path, bytes) = photo(h.dir.path(), "lane.jpg", 5_000_000, 1)?;
        let sha = device.add_photo(&path).await?;
        assert_eq!(sha, sha256(&bytes));
        std::fs::remove_file(&path)?; // the app may delete its copy at once
        let mut c = NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
        c.photos = vec![sha];
        device.record_checkin(c).await?;

        // The connection drops at about half the photo.
        h.server().faults().cut_next_upload_at(2_500_000);
        let cut = device.sync().await.expect_err("the upload was cut");
        assert!(cut.is_retryable(), "{cut}");
        let owner = device.status().await?.device_id.expect("enrolled");
        let held = h.server().blobs().held(&sha, &owner).await?;
        assert!(
            !held.complete && held.bytes >= 2_500_000,
            "{backend}: {held:?}"
        );
        assert_eq!(
            h.server().store().stats(0).await?.check_ins,
            1,
            "records went first"
        );

        let resumed = device.sync().await?;
        assert_eq!(resumed.photos_uploaded, 1);
        assert_eq!(
            resumed.photo_bytes_sent,
            5_000_000 - held.bytes,
            "{backend}: only the rest was sent"
        );
        let stored = h
            .server()
            .blobs()
            .held(
                &sha,
                &patrolsync_tests::device_id(&device).await?.to_string(),
            )
            .await?;
        assert!(stored.complete && stored.bytes == 5_000_000);
        let out = h.dir.path().join("fetched.jpg");
        device.download_photo(sha, &out).await?;
        assert_eq!(
            std::fs::read(&out)?,
            bytes,
            "{backend}: the stored photo is the photo"
        );
        assert_eq!(device.status().await?.pending_photos, 0);
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_photo_is_refused_and_nothing_is_stored() -> anyhow::Result<()> {
    for (db, photos) in test_databases_and_photo_stores().await {
        let backend = setup_name(&db, &photos);
        let h = Harness::start_with(db, |c| c.photos = photos).await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        let (path, _) = photo(h.dir.path(), "x.jpg", 300_000, 2)?;
        let sha = device.add_photo(&path).await?;
        let mut c = NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
        c.photos = vec![sha];
        device.record_checkin(c).await?;
        // One byte flips in the device's stored copy (bad flash, bad RAM).
        let stored = h.dir.path().join("phone/photos").join(hex::encode(sha));
        let mut bytes = std::fs::read(&stored)?;
        bytes[1234] ^= 0x40;
        std::fs::write(&stored, bytes)?;
        let s = device.sync().await?;
        assert_eq!(s.photo_failures.len(), 1, "{backend}: {s:?}");
        assert!(
            s.photo_failures[0].contains(&hex::encode(sha))
                && s.photo_failures[0].contains("do not match")
        );
        assert_eq!(
            h.server().store().blob(&sha).await?,
            None,
            "{backend}: nothing stored under its hash"
        );
        assert!(
            !h.server()
                .blobs()
                .held(
                    &sha,
                    &patrolsync_tests::device_id(&device).await?.to_string()
                )
                .await?
                .complete
        );
        assert_eq!(device.photos().await?[0].state, "failed");
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_photo_from_two_devices_is_stored_once() -> anyhow::Result<()> {
    for (db, photos) in test_databases_and_photo_stores().await {
        let backend = setup_name(&db, &photos);
        let h = Harness::start_with(db, |c| c.photos = photos).await?;
        let a = h.device("a", "alice", &["S1-C1"]).await?;
        let b = h.device("b", "bob", &["S1-C1"]).await?;
        let (path, _) = photo(h.dir.path(), "same.jpg", 1_000_000, 3)?;
        let sha = a.add_photo(&path).await?;
        let with_photo = |sha| {
            let mut c = NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
            c.photos = vec![sha];
            c
        };
        a.record_checkin(with_photo(sha)).await?;
        assert_eq!(a.sync().await?.photo_bytes_sent, 1_000_000);
        assert_eq!(b.add_photo(&path).await?, sha);
        b.record_checkin(with_photo(sha)).await?;
        let s = b.sync().await?;
        assert_eq!(
            (s.photos_uploaded, s.photo_bytes_sent),
            (1, 0),
            "{backend}: no photo bytes sent twice"
        );
        assert_eq!(h.server().store().stats(0).await?.blobs, 1);
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_before_its_photo_shows_a_missing_photo_until_it_arrives() -> anyhow::Result<()> {
    for (db, photos) in test_databases_and_photo_stores().await {
        let backend = setup_name(&db, &photos);
        let h = Harness::start_with(db, |c| c.photos = photos).await?;
        let device = h
            .device_with(
                "phone",
                "alice",
                &["S1-C1"],
                ClientConfig {
                    photos_only_unmetered: true,
                    ..fast_client()
                },
            )
            .await?;
        device.set_network_metered(true);
        let (path, _) = photo(h.dir.path(), "h.jpg", 200_000, 4)?;
        let sha = device.add_photo(&path).await?;
        let hazard = device
            .report_hazard(NewHazard {
                grid_cell: "S1-C1-K2".into(),
                checkpoint: None,
                position: None,
                category: HazardCategory::Electrical,
                severity: Severity::Major,
                handling: Handling::OnTheSpot,
                deadline_ms: None,
                description: "exposed wiring".into(),
                photos: vec![sha],
            })
            .await?;
        let s = device.sync().await?;
        assert_eq!(
            (s.applied, s.photos_uploaded),
            (1, 0),
            "{backend}: on cellular the photo waits"
        );
        let missing = h.server().store().missing_photos(None, 10).await?;
        assert_eq!(missing.len(), 1, "{backend}");
        assert_eq!(missing[0].sha256, hex::encode(sha));
        assert_eq!(missing[0].record_id, hazard.to_string());
        assert_eq!(missing[0].user, "alice");
        assert_eq!(h.server().store().stats(0).await?.missing_photos, 1);

        device.set_network_metered(false);
        assert_eq!(device.sync().await?.photos_uploaded, 1);
        assert!(
            h.server()
                .store()
                .missing_photos(None, 10)
                .await?
                .is_empty(),
            "{backend}: linked once it arrived"
        );
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_over_the_cap_is_refused_before_any_byte_is_sent() -> anyhow::Result<()> {
    for (db, photos) in test_databases_and_photo_stores().await {
        let backend = setup_name(&db, &photos);
        let h = Harness::start_with(db, |c| {
            c.limits.max_blob_bytes = 20_000_000;
            c.photos = photos;
        })
        .await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        let (path, _) = photo(h.dir.path(), "huge.raw", 50_000_000, 5)?;
        let sha = device.add_photo(&path).await?;
        let mut c = NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
        c.photos = vec![sha];
        device.record_checkin(c).await?;
        let s = device.sync().await?;
        assert_eq!(s.photo_bytes_sent, 0, "{backend}: refused before sending");
        assert!(
            s.photo_failures[0].contains("20000000"),
            "{:?}",
            s.photo_failures
        );
        assert_eq!(
            h.server()
                .blobs()
                .held(
                    &sha,
                    &patrolsync_tests::device_id(&device).await?.to_string()
                )
                .await?
                .bytes,
            0
        );
        h.finish().await;
    }
    Ok(())
}

/// A photo larger than the device's whole photo budget for a day: the server refuses it for
/// good after the first bytes are on their way, stopping the stream, and the device reads why
/// instead of failing on the stopped stream and trying again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_over_the_days_budget_is_refused_and_the_device_is_told_why() -> anyhow::Result<()>
{
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| c.limits.photo_bytes_per_day = 1 << 20).await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        let (path, _) = photo(h.dir.path(), "big.jpg", 3_000_000, 9)?;
        let sha = device.add_photo(&path).await?;
        let mut c = NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
        c.photos = vec![sha];
        device.record_checkin(c).await?;
        let s = device.sync().await?;
        assert_eq!(s.photos_uploaded, 0, "{backend}: {s:?}");
        assert_eq!(s.photo_failures.len(), 1, "{backend}: {s:?}");
        assert!(
            s.photo_failures[0].contains("reached its budget of 1 MiB")
                && s.photo_failures[0].contains("this request alone is over the budget"),
            "{backend}: {:?}",
            s.photo_failures
        );
        h.finish().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_no_record_references_is_refused() -> anyhow::Result<()> {
    for (db, photos) in test_databases_and_photo_stores().await {
        let backend = setup_name(&db, &photos);
        let h = Harness::start_with(db, |c| c.photos = photos).await?;
        let device = h.device("phone", "alice", &["S1-C1"]).await?;
        let (path, _) = photo(h.dir.path(), "stray.jpg", 100_000, 6)?;
        let sha = device.add_photo(&path).await?;
        let s = device.sync().await?;
        assert_eq!(s.photo_bytes_sent, 0, "{backend}");
        assert!(
            s.photo_failures[0].contains("belongs to no record"),
            "{:?}",
            s.photo_failures
        );
        assert_eq!(
            h.server()
                .blobs()
                .held(
                    &sha,
                    &patrolsync_tests::device_id(&device).await?.to_string()
                )
                .await?
                .bytes,
            0,
            "{backend}: nothing stored"
        );
        h.finish().await;
    }
    Ok(())
}
