//! The public progress page (动态信息公开), on both backends: with no token, on a listener of
//! its own, per street and community; its figures equal the compliance report's at the same
//! moment; small counts are withheld; and a walk of every value of the JSON (and the page's
//! text) finds none of the private data the server holds: no user, device, phone, household,
//! unit or position. The admin API is not reachable through the public listener.

use std::collections::BTreeSet;

use patrolsync_proto::hazard::EventKind;
use patrolsync_proto::{CheckInKind, CheckInOutcome, GeoFix, Role};
use patrolsync_sdk::{NewCheckIn, Transition};
use patrolsync_server::report;
use patrolsync_server::store::{DeviceStore, RegistryStore};
use patrolsync_server::testkit::test_databases;
use patrolsync_tests::{Harness, blocked_lane};

/// Every string and number in `v`, with the keys it was found under.
fn walk(v: &serde_json::Value, key: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                walk(v, k, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, key, out)),
        other => out.push((key.to_owned(), other.clone())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_page_shows_the_reports_figures_and_nothing_private() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let h = Harness::start_with(db, |c| {
            c.public.enabled = true;
            c.public.listen = Some("127.0.0.1:0".parse().expect("address"));
            c.public.min_count = 2;
        })
        .await?;
        let sql = patrolsync_server::open_sql_store(&h.config).await?;
        // Private data of every kind the server keeps.
        let units = h.dir.path().join("units.csv");
        std::fs::write(
            &units,
            "code,cell,kind,name,responsible_person,responsible_phone,checkpoints\n\
             U-SECRET,S1-C1-K1,market,秘密市场,王秘密,13912345678,S1-C1-K1-B1-P1\n",
        )?;
        patrolsync_server::registry_import::import_units(
            &sql,
            &units,
            false,
            patrolsync_server::now_ms(),
        )
        .await?;
        let households = h.dir.path().join("households.csv");
        std::fs::write(
            &households,
            "code,cell,address,group,contact_name,contact_phone\n\
             H-SECRET,S1-C1-K1-B1,幸福里 9 号,elderly_alone,张秘密,13887654321\n",
        )?;
        patrolsync_server::registry_import::import_households(
            &sql,
            &households,
            false,
            patrolsync_server::now_ms(),
        )
        .await?;
        assert_eq!(sql.households(None, i64::MAX).await?.len(), 1, "{backend}");
        let pat = h
            .device("secret-phone", "patroller.secret", &["S1"])
            .await?;
        let boss = h
            .device_as("boss-phone", "manager.secret", Role::GridManager, &["S1"])
            .await?;
        // Five inspections in S1-C1-K1 (daily building checkpoints: five slots inspected), with
        // a fix; two hazards there, one closed.
        for b in 1..=5 {
            let mut c = NewCheckIn::new(format!("S1-C1-K1-B{b}-P1"), CheckInOutcome::Inspected);
            c.kind = CheckInKind::Inspection;
            c.fix = Some(GeoFix {
                latitude: 45.123_456,
                longitude: 126.654_321,
                accuracy_m: 7.0,
                fix_time_ms: 0,
                mock: false,
                datum: patrolsync_proto::geo::Datum::Wgs84,
            });
            pat.record_checkin(c).await?;
        }
        let open = pat.report_hazard(blocked_lane("S1-C1-K1")).await?;
        let fixed = pat.report_hazard(blocked_lane("S1-C1-K1")).await?;
        pat.sync().await?;
        boss.sync().await?;
        boss.transition_hazard(
            fixed,
            EventKind::FixOnSpot,
            Transition {
                photos: vec![[3; 32]],
                ..Transition::default()
            },
        )
        .await?;
        boss.transition_hazard(fixed, EventKind::VerifyPass, Transition::default())
            .await?;
        boss.sync().await?;
        let _ = open;

        // No token, on its own address.
        let public = h.server().public_addr().expect("its own listener");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::new();
        let json: serde_json::Value = serde_json::from_str(
            &http
                .get(format!("http://{public}/public/progress.json"))
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?,
        )?;
        let admin = http
            .get(format!("http://{public}/api/summary"))
            .send()
            .await?;
        assert_eq!(
            admin.status().as_u16(),
            404,
            "{backend}: no admin route there"
        );

        // Every value: only place names, codes of streets and communities, periods, counts,
        // rates and flags; none of the private data.
        let mut values = Vec::new();
        walk(&json, "", &mut values);
        let keys: BTreeSet<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
        let allowed: BTreeSet<&str> = [
            "as_of_ms",
            "as_of",
            "time_zone",
            "current_period",
            "last_period",
            "min_count",
            "cell",
            "name",
            "level",
            "parent",
            "of",
            "done",
            "rate",
            "suppressed",
        ]
        .into();
        assert!(keys.is_subset(&allowed), "{backend}: keys {keys:?}");
        let device_ids: Vec<String> = sql.devices().await?.into_iter().map(|d| d.id).collect();
        let private = [
            "patroller.secret",
            "manager.secret",
            "secret-phone",
            "boss-phone",
            "U-SECRET",
            "秘密",
            "13912345678",
            "H-SECRET",
            "幸福里",
            "13887654321",
            "45.12",
            "126.65",
        ];
        for (k, v) in &values {
            let text = v.to_string();
            for p in private
                .iter()
                .map(|p| p.to_string())
                .chain(device_ids.iter().cloned())
            {
                assert!(!text.contains(&p), "{backend}: {k} = {text} holds {p}");
            }
        }
        let page = http
            .get(format!("http://{public}/public/"))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        for p in private.iter().map(|p| p.to_string()).chain(device_ids) {
            assert!(!page.contains(&p), "{backend}: the page holds {p}");
        }
        assert!(
            page.contains("花园街道") && page.contains("文化社区"),
            "{backend}"
        );

        // The figures are the compliance report's at the same moment.
        let cal = h.config.reports.calendar().map_err(anyhow::Error::msg)?;
        let as_of = json["as_of_ms"].as_i64().expect("as_of_ms");
        let areas = json["areas"].as_array().expect("areas");
        assert_eq!(
            areas.len(),
            2 + 6,
            "{backend}: two streets, six communities"
        );
        for (which, label) in [
            ("current", &json["current_period"]),
            ("last", &json["last_period"]),
        ] {
            let period = label
                .as_str()
                .expect("period")
                .parse()
                .map_err(anyhow::Error::msg)?;
            let r = report::compliance(
                &sql,
                &cal,
                &h.config.reports.anomaly_rules(),
                &period,
                None,
                as_of,
            )
            .await?;
            for a in areas {
                let row = r
                    .rows
                    .iter()
                    .find(|row| row.cell == a["cell"].as_str().expect("cell"))
                    .expect("in the report");
                let c = &a[which]["compliance"];
                if row.counts.due < 2 {
                    assert_eq!(c["suppressed"], true, "{backend}: {a}");
                    assert!(c["of"].is_null() && c["rate"].is_null(), "{backend}: {a}");
                } else {
                    assert_eq!(c["of"], row.counts.due, "{backend}: {a}");
                    assert_eq!(c["done"], row.counts.inspected, "{backend}: {a}");
                    assert_eq!(c["suppressed"], false, "{backend}: {a}");
                }
            }
        }
        // Two hazards in 文化社区 this month, one closed; none last month (withheld: under two).
        let culture = areas
            .iter()
            .find(|a| a["cell"] == "S1-C1")
            .expect("文化社区");
        assert_eq!(culture["parent"], "S1", "{backend}");
        let closed = &culture["current"]["hazards_closed"];
        assert_eq!(
            (&closed["of"], &closed["done"], &closed["rate"]),
            (&2.into(), &1.into(), &0.5.into()),
            "{backend}"
        );
        assert_eq!(
            culture["last"]["hazards_closed"]["suppressed"], true,
            "{backend}"
        );
        assert_eq!(
            culture["last"]["compliance"]["suppressed"], true,
            "{backend}: nothing was due"
        );
        h.finish().await;
    }
    Ok(())
}
