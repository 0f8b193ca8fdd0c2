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

/// Photo storage under a fresh prefix of the bucket `PATROLSYNC_TEST_S3` names, or `None`
/// with the reason printed.
pub fn test_s3_photos() -> Option<Photos> {
    match std::env::var(ENV_TEST_S3) {
        Ok(url) if !url.trim().is_empty() => Some(s3_photos(url.trim())),
        _ => {
            eprintln!("skipping S3 photo storage: {ENV_TEST_S3} is not set");
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

/// A server configuration for tests: loopback, ephemeral ports, data in `data_dir`.
pub fn loopback_config(data_dir: &Path, database_url: Option<String>) -> Config {
    Config {
        data_dir: data_dir.to_owned(),
        database_url,
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        admin_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        drain_timeout: std::time::Duration::from_secs(2),
        ..Config::default()
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
    let mut out = vec![TestDatabase {
        backend: "sqlite",
        url: None,
        admin_url: None,
        name: None,
    }];
    match std::env::var(ENV_TEST_DATABASE_URL) {
        Ok(url) if !url.trim().is_empty() => out.push(fresh_postgres(&url).await),
        _ => eprintln!("skipping PostgreSQL: {ENV_TEST_DATABASE_URL} is not set"),
    }
    out
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
