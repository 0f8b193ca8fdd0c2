//! Helpers for tests of this crate and of `patrolsync-tests`: a loopback configuration with
//! ephemeral ports in a temp dir, and a fresh PostgreSQL database per test when
//! `PATROLSYNC_TEST_DATABASE_URL` is set (tests print why they skip PostgreSQL otherwise), and
//! a fresh prefix in an S3-compatible bucket when `PATROLSYNC_TEST_S3` is set.

use std::net::SocketAddr;
use std::path::Path;

use sqlx::Connection;

use crate::config::{Config, PhotoBackend, Photos};

/// Names the PostgreSQL server tests use; unset means PostgreSQL tests are skipped.
pub const ENV_TEST_DATABASE_URL: &str = "PATROLSYNC_TEST_DATABASE_URL";

/// Names the S3-compatible bucket photo tests also run against, as `http://HOST:PORT/BUCKET`;
/// unset means S3 photo tests are skipped.
pub const ENV_TEST_S3: &str = "PATROLSYNC_TEST_S3";

/// Set (to anything) where nothing may be skipped, as `.ci/run` does: a test that would skip
/// for want of PostgreSQL, S3, Chromium or systemd-analyze fails instead.
pub const ENV_TEST_REQUIRE_ALL: &str = "PATROLSYNC_TEST_REQUIRE_ALL";

/// Skips what needs an outside program that is not here, saying why; fails instead when
/// [`ENV_TEST_REQUIRE_ALL`] is set, so CI cannot pass by skipping.
pub fn skip(what: &str, why: &str) {
    if std::env::var_os(ENV_TEST_REQUIRE_ALL).is_some() {
        panic!("{what} would be skipped ({why}), but {ENV_TEST_REQUIRE_ALL} is set");
    }
    eprintln!("skipping {what}: {why}");
}

/// Photo storage under a fresh prefix of the bucket `PATROLSYNC_TEST_S3` names, or `None`
/// with the reason printed.
pub fn test_s3_photos() -> Option<Photos> {
    match std::env::var(ENV_TEST_S3) {
        Ok(url) if !url.trim().is_empty() => Some(s3_photos(url.trim())),
        _ => {
            skip("S3 photo storage", &format!("{ENV_TEST_S3} is not set"));
            None
        }
    }
}

fn s3_photos(url: &str) -> Photos {
    let (endpoint, bucket) = match url.rsplit_once('/') {
        Some((e, b)) if e.contains("://") && !b.is_empty() => (e, b),
        _ => panic!("{ENV_TEST_S3}={url:?} must look like http://HOST:PORT/BUCKET"),
    };
    // S3 test servers accept any credentials; real ones come from the AWS_* environment.
    let key = |var: &str| {
        std::env::var(var)
            .is_err()
            .then(|| "patrolsync-test".to_owned())
    };
    Photos {
        backend: PhotoBackend::S3,
        path: None,
        bucket: Some(bucket.to_owned()),
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        prefix: format!("t-{}", uuid::Uuid::now_v7().simple()),
        allow_http: endpoint.starts_with("http://"),
        access_key_id: key("AWS_ACCESS_KEY_ID"),
        secret_access_key: key("AWS_SECRET_ACCESS_KEY"),
    }
}

/// Every database (see [`test_databases`]) with photos on the filesystem, then again with
/// photos under a fresh prefix of the S3-compatible bucket `PATROLSYNC_TEST_S3` names (skipped,
/// with the reason printed, when it is unset).
pub async fn test_databases_and_photo_stores() -> Vec<(TestDatabase, Photos)> {
    let mut out = Vec::new();
    for db in test_databases().await {
        out.push((db, Photos::default()));
    }
    if test_s3_photos().is_some() {
        for db in test_databases().await {
            out.push((db, test_s3_photos().expect("set")));
        }
    }
    out
}

/// A short name of a test set-up for assertion messages, e.g. `postgres+s3`.
pub fn setup_name(db: &TestDatabase, photos: &Photos) -> String {
    let store = match photos.backend {
        PhotoBackend::Fs => "fs",
        PhotoBackend::S3 => "s3",
    };
    format!("{}+{store}", db.backend)
}

/// An empty SQLite store in `dir`.
pub async fn sqlite_store(
    dir: &Path,
) -> Result<crate::store::sql::SqlStore, crate::store::StoreError> {
    crate::store::sql::SqlStore::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("store.db").display()
    ))
    .await
}

/// A server configuration for tests: loopback, data in `data_dir`; the admin listener on an
/// ephemeral port, the QUIC listener on a [`restartable_port`].
pub fn loopback_config(data_dir: &Path, database_url: Option<String>) -> Config {
    Config {
        data_dir: data_dir.to_owned(),
        database_url,
        listen: SocketAddr::from(([127, 0, 0, 1], restartable_port())),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        drain_timeout: std::time::Duration::from_secs(2),
        limits: fleet_on_one_address(),
        ..Config::default()
    }
}

/// A free loopback UDP port below the system's ephemeral range, for a server a test restarts
/// on the same address. A port the system handed out (binding port 0) may be handed out again
/// to any socket bound to port 0 while the server is down: a device's own, another test's (a
/// rolling restart failed with "address in use" so). One below the range is never handed out;
/// each test picks at random among them, and a port in use is passed over.
pub fn restartable_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let (lo, hi) = (10_000u16, ephemeral_from.max(10_001));
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0u64..1_000 {
        let mut h = random.build_hasher();
        h.write_u64(attempt);
        let port = lo + (h.finish() % u64::from(hi - lo)) as u16;
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free UDP port between {lo} and {hi} on loopback");
}

/// The limits of a test fleet whose devices all enroll from one address (as hundreds of phones
/// behind one carrier NAT would): the per-address enrollment and unenrolled-connection limits
/// lifted, the rest at their defaults. Tests of those limits set them themselves.
pub fn fleet_on_one_address() -> crate::config::Limits {
    crate::config::Limits {
        enrolls_per_minute_per_address: 100_000.0,
        unenrolled_connections_per_address: 10_000,
        unenrolled_connections: 10_000,
        ..crate::config::Limits::default()
    }
}

/// A database a test runs against.
#[derive(Debug)]
pub struct TestDatabase {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// `None` for SQLite in the data dir.
    pub url: Option<String>,
    admin_url: Option<String>,
    name: Option<String>,
}

impl TestDatabase {
    /// SQLite in the data dir, for tests whose subject does not depend on the backend.
    pub fn sqlite() -> TestDatabase {
        TestDatabase {
            backend: "sqlite",
            url: None,
            admin_url: None,
            name: None,
        }
    }

    /// Drops the PostgreSQL database (SQLite files go with the temp dir).
    pub async fn cleanup(self) {
        if let (Some(admin), Some(name)) = (self.admin_url, self.name) {
            sqlx::any::install_default_drivers();
            if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        }
    }
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let root = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{root}/{db}?{q}"),
        None => format!("{root}/{db}"),
    }
}

/// The databases to run a suite on: SQLite always, plus a fresh PostgreSQL database when
/// `PATROLSYNC_TEST_DATABASE_URL` is set. Prints the reason when PostgreSQL is skipped.
pub async fn test_databases() -> Vec<TestDatabase> {
    let mut out = vec![TestDatabase::sqlite()];
    out.extend(test_postgres().await);
    out
}

/// A fresh PostgreSQL database when PATROLSYNC_TEST_DATABASE_URL is set; otherwise `None`, after
/// [`skip`] says why (which fails under PATROLSYNC_TEST_REQUIRE_ALL).
pub async fn test_postgres() -> Option<TestDatabase> {
    match std::env::var(ENV_TEST_DATABASE_URL) {
        Ok(url) if !url.trim().is_empty() => Some(fresh_postgres(&url).await),
        _ => {
            skip("PostgreSQL", &format!("{ENV_TEST_DATABASE_URL} is not set"));
            None
        }
    }
}

/// Creates an empty PostgreSQL database next to the one `url` names.
pub async fn fresh_postgres(url: &str) -> TestDatabase {
    sqlx::any::install_default_drivers();
    let name = format!("patrolsync_t_{}", uuid::Uuid::now_v7().simple());
    let mut conn = match sqlx::AnyConnection::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!("{ENV_TEST_DATABASE_URL}={url} is set but PostgreSQL is unreachable: {e}"),
    };
    if let Err(e) = sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
    {
        panic!("cannot create test database {name}: {e}");
    }
    TestDatabase {
        backend: "postgres",
        url: Some(with_database(url, &name)),
        admin_url: Some(url.to_owned()),
        name: Some(name),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            super::with_database("postgres://u@h:5432/test", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://u@h/test?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            super::with_database("postgres://u@h", "x"),
            "postgres://u@h/x"
        );
    }
}

/// A fleet seeded straight into a store (no network), one device per sync-health state, for
/// the admin API, dashboard and metrics tests. Needs the demo grid (`seed::seed_demo`).
#[derive(Clone, Debug)]
pub struct SeededFleet {
    /// Said Hello just now with an empty outbox.
    pub healthy: crate::store::DeviceSession,
    /// Sent a check-in two hours ago whose photo never arrived; still says Hello.
    pub stuck_photo: crate::store::DeviceSession,
    /// The photo it owes, hex.
    pub stuck_sha256: String,
    /// Last said Hello two days ago.
    pub silent: crate::store::DeviceSession,
    /// Had an op refused just now.
    pub erroring: crate::store::DeviceSession,
    /// Revoked.
    pub revoked: crate::store::DeviceSession,
}

/// Enrolls a device for `user` (created with `role` and `cells` if new), as if its code was
/// issued three days before `now_ms`.
pub async fn enroll_device(
    store: &dyn crate::store::Store,
    user: &str,
    name: &str,
    role: patrolsync_proto::Role,
    cells: &[&str],
    now_ms: i64,
) -> Result<crate::store::DeviceSession, crate::store::StoreError> {
    use crate::store::*;
    const HOUR: i64 = 3_600_000;
    let code = crate::enroll::new_code();
    let hash = crate::enroll::hash_code(&code);
    store
        .create_enrollment(
            &NewEnrollment {
                code_hash: hash,
                user: user.into(),
                role,
                cells: cells.iter().map(|c| c.to_string()).collect(),
                expires_at_ms: now_ms + HOUR,
                agency: None,
            },
            now_ms - 3 * 24 * HOUR,
        )
        .await?;
    let id = patrolsync_proto::DeviceId(uuid::Uuid::now_v7());
    let device = NewDevice {
        id,
        name: name.into(),
        cert_sha256: patrolsync_proto::digest::sha256(id.0.as_bytes()),
        app_version: "patrol-app 2.4.1".into(),
    };
    store
        .redeem_enrollment(&hash, &device, now_ms - 3 * 24 * HOUR)
        .await
        .map_err(|e| match e {
            crate::store::RedeemError::Store(e) => e,
            e => StoreError::Invalid(patrolsync_i18n::text!("store-demo-enrollment", error = e)),
        })
}

/// Seeds [`SeededFleet`] at `now_ms`.
pub async fn seed_fleet(
    store: &dyn crate::store::Store,
    now_ms: i64,
) -> Result<SeededFleet, crate::store::StoreError> {
    use crate::store::*;
    use patrolsync_proto::*;

    const HOUR: i64 = 3_600_000;
    async fn hello(
        store: &dyn Store,
        d: &DeviceSession,
        report: DeviceReport,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let report = DeviceReport {
            app_version: "patrol-app 2.4.1".into(),
            sdk_version: "0.1.0".into(),
            rtt_ms: Some(42),
            bytes_in: 4_000,
            bytes_out: 9_000,
            ..report
        };
        store.record_hello(d.id, &report, at_ms).await.map(|_| ())
    }
    let checkpoint = store
        .checkpoints(&["S1-C1-K1-B1-P1".into()])
        .await?
        .pop()
        .ok_or_else(|| {
            StoreError::NotFound(patrolsync_i18n::text!(
                "store-no-checkpoint",
                checkpoint = "S1-C1-K1-B1-P1"
            ))
        })?;
    let check_in = |seq: u64, photos: Vec<[u8; 32]>, at_ms: i64| PreparedOp {
        device_seq: seq,
        op_id: OpId(uuid::Uuid::now_v7()),
        hlc: Hlc {
            wall_ms: at_ms as u64,
            logical: 0,
        },
        action: OpAction::InsertCheckIn(Box::new(CheckInRow {
            check_in: CheckIn {
                id: CheckInId(uuid::Uuid::now_v7()),
                checkpoint: checkpoint.code.clone(),
                kind: CheckInKind::Patrol,
                method: CheckInMethod::Qr,
                tag_uid: String::new(),
                device_time_ms: at_ms,
                monotonic_ms: seq,
                fix: None,
                outcome: CheckInOutcome::Inspected,
                template_id: String::new(),
                template_version: 0,
                answers: vec![],
                photos,
                note: String::new(),
                household: String::new(),
            },
            checkpoint_id: checkpoint.id,
            cell_id: checkpoint.cell_id,
            household_id: None,
        })),
    };
    let ingest = |d: &DeviceSession, ops: Vec<PreparedOp>, at_ms: i64| {
        let batch = IngestBatch {
            device: d.id,
            user_id: d.user_id,
            ops,
        };
        async move { store.ingest(&[batch], at_ms).await?.remove(0).map(|_| ()) }
    };

    let healthy = enroll_device(
        store,
        "wang.fang",
        "Wang's phone",
        Role::Patroller,
        &["S1-C1"],
        now_ms,
    )
    .await?;
    ingest(
        &healthy,
        vec![check_in(1, vec![], now_ms - 60_000)],
        now_ms - 60_000,
    )
    .await?;
    hello(store, &healthy, DeviceReport::default(), now_ms).await?;

    let stuck_photo = enroll_device(
        store,
        "li.wei",
        "Li's phone",
        Role::Patroller,
        &["S1-C1"],
        now_ms,
    )
    .await?;
    let sha = patrolsync_proto::digest::sha256(b"a hazard photo that never arrived");
    ingest(
        &stuck_photo,
        vec![check_in(1, vec![sha], now_ms - 2 * HOUR)],
        now_ms - 2 * HOUR,
    )
    .await?;
    let report = DeviceReport {
        pending_photo_bytes: 2_400_000,
        ..DeviceReport::default()
    };
    hello(store, &stuck_photo, report, now_ms - 60_000).await?;

    let silent = enroll_device(
        store,
        "zhao.min",
        "Zhao's phone",
        Role::Patroller,
        &["S1-C1"],
        now_ms,
    )
    .await?;
    let report = DeviceReport {
        outbox_depth: 7,
        oldest_pending_age_ms: 3_600_000,
        ..DeviceReport::default()
    };
    hello(store, &silent, report, now_ms - 2 * 24 * HOUR).await?;

    // Named with markup, as a device may name itself: pages must show it as text.
    let erroring = enroll_device(
        store,
        "sun.jie",
        "Sun's phone <img src=x onerror=alert(1)>",
        Role::Patroller,
        &["S1-C1"],
        now_ms,
    )
    .await?;
    hello(store, &erroring, DeviceReport::default(), now_ms - 30_000).await?;
    let refused = PreparedOp {
        device_seq: 1,
        op_id: OpId(uuid::Uuid::now_v7()),
        hlc: Hlc::default(),
        action: OpAction::Reject(Rejection {
            refusal: Refusal {
                code: RejectCode::Forbidden,
                reason: "outside_scope".into(),
                field: "checkpoint".into(),
                message: "checkpoint S2-C3-K1-B1-P1 is outside the user's cells (S1-C1)".into(),
                value: "S2-C3-K1-B1-P1".into(),
                limit: None,
            },
            payload: vec![],
        }),
    };
    ingest(&erroring, vec![refused], now_ms - 20_000).await?;

    let revoked = enroll_device(
        store,
        "chen.hao",
        "Chen's lost phone",
        Role::Patroller,
        &["S1-C1"],
        now_ms,
    )
    .await?;
    hello(store, &revoked, DeviceReport::default(), now_ms - HOUR).await?;
    store
        .revoke_device(&revoked.id.to_string(), now_ms - 1_000)
        .await?;

    Ok(SeededFleet {
        healthy,
        stuck_photo,
        stuck_sha256: hex::encode(sha),
        silent,
        erroring,
        revoked,
    })
}

/// What hostile tests compare before and after each case: a digest of every table's rows
/// (each table hashed on its own, so a difference names the table) and of the photo store's
/// files. Devices are hashed on what identifies them, not their sync-health bookkeeping
/// (last seen, last error, traffic), which a refused request is meant to update; tables in
/// `skip` (what a case is meant to change, e.g. the rejection log) are left out.
pub async fn store_digest(
    store: &crate::store::sql::SqlStore,
    photos: Option<&Path>,
    skip: &[&str],
) -> Result<std::collections::BTreeMap<String, String>, crate::store::StoreError> {
    use sqlx::Row;
    let postgres = crate::store::Store::backend(store) == crate::store::Backend::Postgres;
    let tables: Vec<String> = if postgres {
        sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(store.raw_pool())
        .await?
    } else {
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(store.raw_pool())
            .await?
    };
    const IDENTITY: &[&str] = &[
        "id",
        "user_id",
        "name",
        "cert_sha256",
        "enrolled_at",
        "revoked_at",
        "acked_through",
    ];
    let mut out = std::collections::BTreeMap::new();
    for table in tables {
        if table.starts_with("_sqlx")
            || table.starts_with("sqlite_")
            || skip.contains(&table.as_str())
        {
            continue;
        }
        let mut columns: Vec<String> = if postgres {
            sqlx::query_scalar(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            )
            .bind(&table)
            .fetch_all(store.raw_pool())
            .await?
        } else {
            sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(store.raw_pool())
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?
        };
        if table == "devices" {
            columns.retain(|c| IDENTITY.contains(&c.as_str()));
        }
        let text = |c: &str| {
            if postgres {
                format!("coalesce(\"{c}\"::text, 'NULL')")
            } else {
                format!("quote(\"{c}\")")
            }
        };
        let select = columns
            .iter()
            .map(|c| text(c))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let mut rows: Vec<String> = sqlx::query(&format!("SELECT {select} FROM \"{table}\""))
            .fetch_all(store.raw_pool())
            .await?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?;
        rows.sort();
        out.insert(
            table,
            hex::encode(patrolsync_proto::digest::sha256(rows.join("\n").as_bytes())),
        );
    }
    if let Some(root) = photos {
        let mut files = Vec::new();
        let mut dirs = vec![root.to_owned()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    files.push(format!(
                        "{} {}",
                        path.strip_prefix(root).unwrap_or(&path).display(),
                        hex::encode(patrolsync_proto::digest::sha256(&bytes))
                    ));
                }
            }
        }
        files.sort();
        out.insert(
            "(photos)".into(),
            hex::encode(patrolsync_proto::digest::sha256(
                files.join("\n").as_bytes(),
            )),
        );
    }
    Ok(out)
}

/// A patroller's hazard report as the store ingests it: op `seq` of a push, stamped at
/// `wall_ms`, reporting `report` in the cell at `cell_id`/`cell_path` as log entry `entry_id`.
pub fn report_op(
    seq: u64,
    report: patrolsync_proto::hazard::Report,
    cell_id: i64,
    cell_path: &str,
    entry_id: uuid::Uuid,
    wall_ms: i64,
) -> crate::store::PreparedOp {
    use crate::store::{HazardRow, OpAction, PreparedOp};
    PreparedOp {
        device_seq: seq,
        op_id: patrolsync_proto::OpId(uuid::Uuid::now_v7()),
        hlc: patrolsync_proto::Hlc {
            wall_ms: wall_ms as u64,
            logical: seq as u32,
        },
        action: OpAction::Hazard(Box::new(HazardRow {
            op: patrolsync_proto::hazard::HazardOp::Report(report),
            role: patrolsync_proto::Role::Patroller,
            cell_id,
            cell_path: cell_path.to_owned(),
            entry_id,
        })),
    }
}

/// Unix ms of a local time in Asia/Shanghai (the default report zone), for fixtures whose
/// moments are written as people there read them. Panics on a time that does not exist.
pub fn shanghai_ms(y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
    use chrono::TimeZone;
    chrono_tz::Asia::Shanghai
        .from_local_datetime(
            &chrono::NaiveDate::from_ymd_opt(y, m, d)
                .and_then(|d| d.and_hms_opt(h, mi, 0))
                .expect("a valid date and time"),
        )
        .single()
        .expect("unambiguous in Asia/Shanghai")
        .timestamp_millis()
}
