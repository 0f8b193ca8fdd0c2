//! `patrolsync admin devices | device | rejections | conflicts` against a data dir whose store
//! holds a seeded fleet: the real binary, its JSON and its table.

mod common;

use std::process::Command;

use common::{BIN, admin};
use patrolsync_server::store::sql::SqlStore;

#[tokio::test]
async fn admin_device_commands_show_each_state_and_the_detail() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let url = format!("sqlite://{}?mode=rwc", data.join("patrolsync.db").display());
    let store = SqlStore::connect(&url).await?;
    patrolsync_server::seed::seed_demo(&store).await?;
    let fleet = patrolsync_server::testkit::seed_fleet(&store, patrolsync_server::now_ms()).await?;
    drop(store);

    let all = admin(&data, None, &["devices"])?;
    let states: Vec<(&str, &str)> = all
        .as_array()
        .expect("list")
        .iter()
        .map(|d| {
            (
                d["id"].as_str().expect("id"),
                d["state"].as_str().expect("state"),
            )
        })
        .collect();
    assert_eq!(states.len(), 5);
    for (d, state) in [
        (&fleet.healthy, "healthy"),
        (&fleet.stuck_photo, "lagging"),
        (&fleet.silent, "silent"),
        (&fleet.erroring, "erroring"),
        (&fleet.revoked, "revoked"),
    ] {
        assert!(
            states.contains(&(d.id.to_string().as_str(), state)),
            "{state}: {states:?}"
        );
    }
    let lagging = admin(&data, None, &["devices", "--state", "lagging"])?;
    assert_eq!(lagging.as_array().expect("list").len(), 1);
    assert_eq!(lagging[0]["missing_photos"], 1);

    let id = fleet.erroring.id.to_string();
    let detail = admin(&data, None, &["device", &id[..13]])?;
    assert_eq!(detail["device"]["id"], id);
    assert_eq!(detail["rejections"][0]["reason"], "outside_scope");
    let mine = admin(&data, None, &["rejections", "--device", &id])?;
    assert_eq!(mine.as_array().expect("list").len(), 1);
    let conflicts = admin(&data, None, &["conflicts"])?;
    assert_eq!(conflicts.as_array().expect("list").len(), 0);

    // The table a person reads: counts first, then one line per device with why.
    let out = Command::new(BIN)
        .args(["admin", "--data-dir"])
        .arg(&data)
        .args(["devices"])
        .output()?;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.starts_with("1 healthy, 1 lagging, 1 silent, 1 erroring, 1 revoked"),
        "{text}"
    );
    assert!(
        text.contains("photo(s) referenced but not uploaded"),
        "{text}"
    );

    let bad = Command::new(BIN)
        .args(["admin", "--data-dir"])
        .arg(&data)
        .args(["devices", "--state", "sleepy"])
        .output()?;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("healthy, lagging, silent, erroring, revoked"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let unknown = Command::new(BIN)
        .args(["admin", "--data-dir"])
        .arg(&data)
        .args(["device", "ffffffff"])
        .output()?;
    assert!(!unknown.status.success());
    Ok(())
}

/// `admin template publish | list | show` as the real binary: versions, a repeat that changes
/// nothing, and a bad file named by item and field.
#[tokio::test]
async fn admin_template_commands_publish_versions_and_refuse_bad_files() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let file = dir.path().join("daily.toml");
    let v1 = "id = \"daily-fire\"\nname = \"Daily\"\n[[items]]\nid = \"exits\"\nlabel = \"Exits clear\"\nmandatory = true\n";
    std::fs::write(&file, v1)?;
    let path = file.to_str().expect("utf-8");
    assert_eq!(
        admin(&data, None, &["template", "publish", path])?["version"],
        1
    );
    let again = admin(&data, None, &["template", "publish", path])?;
    assert_eq!(
        (&again["version"], &again["new"]),
        (&1.into(), &false.into())
    );
    std::fs::write(
        &file,
        format!(
            "{v1}[[items]]\nid = \"wiring\"\nlabel = \"Wiring\"\nhazard_category = \"electrical\"\n"
        ),
    )?;
    assert_eq!(
        admin(&data, None, &["template", "publish", path])?["version"],
        2
    );
    let list = admin(&data, None, &["template", "list"])?;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let shown = admin(
        &data,
        None,
        &["template", "show", "daily-fire", "--version", "1"],
    )?;
    assert_eq!(shown["items"].as_array().map(Vec::len), Some(1));
    let latest = admin(&data, None, &["template", "show", "daily-fire"])?;
    assert_eq!(latest["items"][1]["hazard_category"], "electrical");

    std::fs::write(
        &file,
        "id = \"daily-fire\"\nname = \"Daily\"\n[[items]]\nid = \"exits\"\nlabel = \"Exits\"\nhazard_category = \"fire\"\n",
    )?;
    let out = Command::new(BIN)
        .args(["admin", "--data-dir"])
        .arg(&data)
        .args(["template", "publish", path])
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("item 1 (exits), hazard_category"), "{err}");
    assert_eq!(
        admin(&data, None, &["template", "list"])?
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    Ok(())
}
