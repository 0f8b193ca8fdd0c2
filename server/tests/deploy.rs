//! The files in `deploy/` are valid: the systemd unit passes `systemd-analyze verify` with no
//! complaint, `compose.yaml` parses as a Compose file (compose_spec) with two server nodes on
//! PostgreSQL and an S3 store, the Dockerfile parses (dockerfile-parser) as a multi-stage build
//! whose runtime stage runs `patrolsync` unprivileged, and every example configuration loads.
//! No container engine runs here, so parsing is the check.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use patrolsync_server::config::{Config, PhotoBackend};

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

#[test]
fn systemd_unit_verifies_cleanly() -> anyhow::Result<()> {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        patrolsync_server::testkit::skip(
            "the systemd unit check",
            "systemd-analyze is not installed",
        );
        return Ok(());
    }
    // verify insists that ExecStart exists: point it at the binary under test.
    let unit = std::fs::read_to_string(deploy("patrolsync.service"))?;
    assert!(unit.contains("ExecStart=/usr/local/bin/patrolsync serve"));
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("patrolsync.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/patrolsync", common::BIN),
    )?;
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()?;
    let complaints = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify: {complaints}"
    );
    Ok(())
}

#[test]
fn compose_file_parses_with_two_nodes_postgres_and_s3() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(deploy("compose.yaml"))?;
    let compose: compose_spec::Compose = serde_yaml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("deploy/compose.yaml is not a valid Compose file: {e}"))?;
    compose
        .validate_all()
        .map_err(|e| anyhow::anyhow!("deploy/compose.yaml: {e}"))?;
    let names: Vec<String> = compose.services.keys().map(|k| k.to_string()).collect();
    for want in ["postgres", "minio", "bucket", "node-a", "node-b"] {
        assert!(
            names.iter().any(|n| n == want),
            "no {want} service in {names:?}"
        );
    }
    // Each node mounts a configuration that exists and loads, and it is a cluster one.
    assert!(text.contains("./patrolsync.compose.toml:/etc/patrolsync/patrolsync.toml:ro"));
    let cfg = Config::from_file(&deploy("patrolsync.compose.toml"))?;
    assert_eq!(cfg.photos.backend, PhotoBackend::S3);
    assert_eq!(cfg.photos.bucket.as_deref(), Some("patrolsync-photos"));
    Ok(())
}

#[test]
fn dockerfile_parses_as_a_multi_stage_build() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(deploy("Dockerfile"))?;
    let file = dockerfile_parser::Dockerfile::parse(&text)
        .map_err(|e| anyhow::anyhow!("deploy/Dockerfile does not parse: {e}"))?;
    let stages = file.stages();
    let names: Vec<Option<String>> = stages.stages.iter().map(|s| s.name.clone()).collect();
    assert_eq!(
        names,
        vec![Some("build".to_owned()), Some("runtime".to_owned())]
    );
    let runtime: Vec<String> = stages.stages[1]
        .instructions
        .iter()
        .map(|i| format!("{i:?}").to_lowercase())
        .collect();
    let has = |word: &str| runtime.iter().any(|i| i.contains(word));
    assert!(
        runtime
            .iter()
            .any(|i| i.contains("\"user\"") && i.contains("patrolsync")),
        "runs as the patrolsync user: {runtime:#?}"
    );
    assert!(has("/usr/local/bin/patrolsync"), "runs the server binary");
    Ok(())
}

#[test]
fn example_configurations_load() -> anyhow::Result<()> {
    assert_eq!(
        Config::from_file(&deploy("patrolsync.example.toml"))?,
        Config::default()
    );
    let cluster = Config::from_file(&deploy("patrolsync.cluster.toml"))?;
    assert_eq!(cluster.photos.backend, PhotoBackend::S3);
    Ok(())
}
