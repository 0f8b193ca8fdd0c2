//! On duty (在岗) and position, end to end on both backends: a device sends its latest fix with
//! each sync only while its user is on duty; the server keeps one position per device, the
//! latest, in WGS-84, and forgets it at the first sync off duty; a position sent off duty (by a
//! client that sends one anyway) is not kept.

use patrolsync_proto::GeoFix;
use patrolsync_proto::checkin::Datum;
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, device_id};

fn fix(latitude: f64, longitude: f64, datum: Datum) -> GeoFix {
    GeoFix {
        latitude,
        longitude,
        accuracy_m: 6.0,
        fix_time_ms: 1_790_000_000_000,
        mock: false,
        datum,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_reaches_the_server_only_on_duty_and_only_the_latest_is_kept()
-> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let p = h.device("p", "alice", &["S1-C1-K1"]).await?;
        let id = device_id(&p).await?.to_string();
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let held = || async {
            let rows: Vec<(String, Option<f64>, Option<f64>)> =
                sqlx::query_as("SELECT device_id, latitude, longitude FROM device_duty")
                    .fetch_all(store.raw_pool())
                    .await?;
            anyhow::Ok(rows)
        };

        // Off duty: nothing is kept on the phone, nothing reaches the server.
        assert!(!p.update_position(fix(45.76, 126.66, Datum::Wgs84)).await?);
        p.sync().await?;
        assert!(held().await?.is_empty(), "{backend}");

        // On duty: the latest fix, one row for the device.
        p.set_on_duty(true).await?;
        assert!(p.update_position(fix(45.76, 126.66, Datum::Wgs84)).await?);
        p.sync().await?;
        assert_eq!(
            held().await?,
            [(id.clone(), Some(45.76), Some(126.66))],
            "{backend}"
        );
        // A later fix from Amap's datum replaces it, stored as WGS-84.
        let (gcj_lat, gcj_lon) = (45.7625, 126.6725);
        assert!(
            p.update_position(fix(gcj_lat, gcj_lon, Datum::Gcj02))
                .await?
        );
        p.sync().await?;
        let rows = held().await?;
        assert_eq!(rows.len(), 1, "{backend}: one position per device");
        let (wgs_lat, wgs_lon) = Datum::Gcj02.to_wgs84(gcj_lat, gcj_lon);
        assert_eq!(
            rows[0],
            (id.clone(), Some(wgs_lat), Some(wgs_lon)),
            "{backend}"
        );
        assert!((wgs_lat - gcj_lat).abs() > 1e-4, "{backend}: converted");
        // A sync on duty without a new fix keeps the last one.
        p.sync().await?;
        assert_eq!(held().await?, rows, "{backend}");

        // Off duty: forgotten on the phone at once and on the server at the next sync.
        p.set_on_duty(false).await?;
        assert_eq!(p.duty().await?.position, None, "{backend}");
        p.sync().await?;
        assert!(held().await?.is_empty(), "{backend}");

        // A client that sends a position off duty anyway: the server keeps none.
        let conn = patrolsync_tests::device_connection(&h, &h.dir.path().join("p")).await?;
        let hello = patrolsync_proto::frame::encode(&patrolsync_proto::wire::Request {
            kind: Some(patrolsync_proto::wire::request::Kind::Hello(
                patrolsync_proto::wire::Hello {
                    on_duty: false,
                    position: Some(fix(45.76, 126.66, Datum::Wgs84).to_wire()),
                    ..Default::default()
                },
            )),
        });
        let answer = patrolsync_tests::exchange(&conn, &hello).await?;
        assert!(
            matches!(
                answer.kind,
                Some(patrolsync_proto::wire::response::Kind::Hello(_))
            ),
            "{backend}: {answer:?}"
        );
        assert!(held().await?.is_empty(), "{backend}");
        conn.close(0u32.into(), b"done");
        h.finish().await;
    }
    Ok(())
}
