//! Coordinates as phones and maps in China give them: a checkpoint copied from Amap (GCJ-02)
//! and a phone that reports GCJ-02 meet at the same place, stored in WGS-84; without the
//! conversion the same check-in is flagged out of radius. SQLite and (when configured)
//! PostgreSQL.

use patrolsync_proto::anomaly::Anomaly;
use patrolsync_proto::geo::{Datum, distance_m};
use patrolsync_proto::{CheckInOutcome, GeoFix};
use patrolsync_sdk::NewCheckIn;
use patrolsync_server::store::ReportStore;
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::Harness;

/// Near Tiananmen, WGS-84, and the same place in GCJ-02 as the published forward formula gives
/// it (what Amap or Tencent show for it).
const WGS84: (f64, f64) = (39.915, 116.404);
const GCJ02: (f64, f64) = (39.91640428150164, 116.41024449916938);

/// A fixed moment for the import's bookkeeping (the rules compared here do not depend on it).
const NOW: i64 = 1_790_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gcj02_checkpoint_and_a_gcj02_check_in_there_are_not_out_of_radius() -> anyhow::Result<()>
{
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start(db).await?;
        let store = patrolsync_server::open_sql_store(&h.config).await?;
        let file = h.dir.path().join("checkpoints.csv");
        std::fs::write(
            &file,
            format!(
                "code,cell,name,latitude,longitude,radius_m\n\
                 S1-C1-K1-B1-GATE,S1-C1-K1-B1,东门,{},{},30\n",
                GCJ02.0, GCJ02.1
            ),
        )?;
        patrolsync_server::grid_import::import_checkpoints(&store, &file, Datum::Gcj02, false, NOW)
            .await?;

        let phone = h.device("phone", "wang", &["S1-C1"]).await?;
        let at = |datum| {
            let mut c = NewCheckIn::new("S1-C1-K1-B1-GATE", CheckInOutcome::Inspected);
            c.fix = Some(GeoFix {
                latitude: GCJ02.0,
                longitude: GCJ02.1,
                accuracy_m: 5.0,
                fix_time_ms: 0,
                mock: false,
                datum,
            });
            c
        };
        // The phone reports GCJ-02 and says so; then the same numbers as if they were WGS-84.
        let converted = phone.record_checkin(at(Datum::Gcj02)).await?.to_string();
        let taken_as_is = phone.record_checkin(at(Datum::Wgs84)).await?.to_string();
        phone.sync().await?;

        let rows = store.report_check_ins(None, 0, i64::MAX, i64::MAX).await?;
        let flags = patrolsync_server::report::flag_all(&Default::default(), &rows, |c| c.place);
        let of = |id: &str| {
            rows.iter()
                .zip(&flags)
                .find(|(c, _)| c.id == id)
                .map(|(c, f)| (c.clone(), f.clone()))
                .expect("stored")
        };
        let (c, f) = of(&converted);
        let place = c.place.expect("the checkpoint has a position");
        // Both stored in WGS-84, within a metre of the reference.
        assert!(
            distance_m((place.0, place.1), WGS84) < 1.0,
            "{backend}: checkpoint at {place:?}"
        );
        let fix = c.fix.expect("a fix");
        assert!(
            distance_m((fix.0, fix.1), WGS84) < 1.0,
            "{backend}: fix at {fix:?}"
        );
        assert!(!f.contains(&Anomaly::OutOfRadius), "{backend}: {f:?}");
        // Without the conversion the same numbers are ~570 m off, and flagged.
        let (c, f) = of(&taken_as_is);
        let fix = c.fix.expect("a fix");
        assert!(distance_m((fix.0, fix.1), WGS84) > 400.0, "{backend}");
        assert!(f.contains(&Anomaly::OutOfRadius), "{backend}: {f:?}");
        h.finish().await;
    }
    Ok(())
}
