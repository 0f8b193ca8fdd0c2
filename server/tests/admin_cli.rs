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
        .env_remove("PATROLSYNC_LOG")
        .args(["--lang", "en", "admin", "--data-dir"])
        .arg(&data)
        .args(["devices"])
        .output()?;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.starts_with("1 healthy, 0 new, 1 lagging, 1 silent, 1 erroring, 1 revoked"),
        "{text}"
    );
    assert!(
        text.contains("photo(s) referenced but not uploaded"),
        "{text}"
    );
    // The same in Chinese: states and reasons in words.
    let out = Command::new(BIN)
        .env_remove("PATROLSYNC_LOG")
        .args(["--lang", "zh-CN", "admin", "--data-dir"])
        .arg(&data)
        .args(["devices"])
        .output()?;
    let text = String::from_utf8(out.stdout)?;
    assert!(
        text.starts_with("1 正常, 0 新设备, 1 滞后, 1 失联, 1 出错, 1 已停用"),
        "{text}"
    );
    assert!(text.contains("张照片已引用但未上传"), "{text}");

    let bad = Command::new(BIN)
        .env_remove("PATROLSYNC_LOG")
        .args(["--lang", "en", "admin", "--data-dir"])
        .arg(&data)
        .args(["devices", "--state", "sleepy"])
        .output()?;
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("[possible values: healthy, new, lagging, silent, erroring, revoked]"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let unknown = Command::new(BIN)
        .env_remove("PATROLSYNC_LOG")
        .args(["--lang", "en", "admin", "--data-dir"])
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
    // Publishes the file in `lang`; its stderr (the command must fail).
    let refused_in = |lang: &str| -> anyhow::Result<String> {
        let out = Command::new(BIN)
            .env_remove("PATROLSYNC_LOG")
            .args(["--lang", lang, "admin", "--data-dir"])
            .arg(&data)
            .args(["template", "publish", path])
            .output()?;
        assert!(!out.status.success(), "{lang}: published");
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let err = refused_in("en")?;
    assert!(err.contains("item 1 (exits), hazard_category"), "{err}");
    // In Chinese: the value and the choices, and a broken rule of templates in words.
    let err = refused_in("zh-CN")?;
    assert!(
        err.starts_with(&format!(
            "错误：{path}：第 1 项（exits）的 hazard_category：「fire」无效，可选：blocked_fire_lane, "
        )),
        "{err}"
    );
    std::fs::write(
        &file,
        "id = \"daily-fire\"\nname = \"Daily\"\n[[items]]\nid = \"exits\"\nlabel = \"Exits\"\n[[items]]\nid = \"exits\"\nlabel = \"Again\"\n",
    )?;
    assert_eq!(
        refused_in("zh-CN")?,
        format!("错误：{path}：第 2 项的编号 exits 与前面的检查项重复\n")
    );
    // A file that is not TOML: where, on one line.
    std::fs::write(&file, "id = \"daily-fire\"\nname = \n")?;
    let err = refused_in("zh-CN")?;
    assert!(
        err.starts_with(&format!("错误：{path} 第 2 行第 8 列：")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        admin(&data, None, &["template", "list"])?
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    Ok(())
}

/// `admin scope --device` says what a device should hold and follows an assignment;
/// `admin hazard show` folds a hazard from the log and verifies its chain; bad ids are
/// refused naming what is expected.
#[tokio::test]
async fn admin_scope_and_hazard_show_say_what_the_server_holds() -> anyhow::Result<()> {
    use patrolsync_proto::hazard::{
        Event, EventKind, Handling, HazardCategory, HazardOp, Report, Severity,
    };
    use patrolsync_proto::{EventId, HazardId, Hlc, OpId, Role};
    use patrolsync_server::store::*;
    const NOW: i64 = 1_790_000_000_000;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let url = format!("sqlite://{}?mode=rwc", data.join("patrolsync.db").display());
    let store = SqlStore::connect(&url).await?;
    patrolsync_server::seed::seed_demo(&store).await?;
    let pat = patrolsync_server::testkit::enroll_device(
        &store,
        "pat",
        "pat's phone",
        Role::Patroller,
        &["S1-C1-K1"],
        NOW,
    )
    .await?;
    // A hazard in K1, reported and fixed on the spot.
    let cell = store.cells(&["S1-C1-K1".into()]).await?.remove(0);
    let hazard = HazardId(uuid::Uuid::now_v7());
    let report = Report {
        id: hazard,
        grid_cell: cell.code.clone(),
        checkpoint: String::new(),
        position: None,
        category: HazardCategory::Electrical,
        severity: Severity::Major,
        handling: Handling::OnTheSpot,
        deadline_ms: None,
        description: "loose wiring".into(),
        photos: vec![],
        device_time_ms: NOW,
    };
    let fix = Event {
        id: EventId(uuid::Uuid::now_v7()),
        hazard,
        kind: EventKind::FixOnSpot,
        deadline_ms: None,
        agency: None,
        merge_into: None,
        note: String::new(),
        photos: vec![[9; 32]],
        device_time_ms: NOW + 1,
    };
    let op = |seq: u64, op: HazardOp, entry: uuid::Uuid| PreparedOp {
        device_seq: seq,
        op_id: OpId(uuid::Uuid::now_v7()),
        hlc: Hlc {
            wall_ms: NOW as u64 + seq,
            logical: 0,
        },
        action: OpAction::Hazard(Box::new(HazardRow {
            op,
            role: Role::Patroller,
            cell_id: cell.id,
            cell_path: cell.path.clone(),
            entry_id: entry,
        })),
    };
    let batch = IngestBatch {
        device: pat.id,
        user_id: pat.user_id,
        ops: vec![
            op(1, HazardOp::Report(report), hazard.0),
            op(2, HazardOp::Event(fix.clone(), Role::Patroller), fix.id.0),
        ],
    };
    store.ingest(&[batch], NOW + 10).await?.remove(0)?;
    drop(store);

    let id = pat.id.to_string();
    let scope = admin(&data, None, &["scope", "--device", &id[..12]])?;
    assert_eq!(scope["user"], "pat");
    assert_eq!(scope["grants"][0]["kind"], "cell");
    assert_eq!(scope["grants"][0]["id"], "S1-C1-K1");
    // The compound and its 5 buildings, 2 checkpoints each, and the hazard.
    assert_eq!(scope["cells"].as_array().map(Vec::len), Some(6));
    assert_eq!(scope["checkpoints"].as_array().map(Vec::len), Some(10));
    assert_eq!(scope["hazards"], serde_json::json!([hazard.to_string()]));

    admin(
        &data,
        None,
        &["assign", "--user", "pat", "--cell", "S1-C1-K2"],
    )?;
    let scope = admin(&data, None, &["scope", "--device", &id])?;
    assert_eq!(scope["cells"].as_array().map(Vec::len), Some(12));
    assert_eq!(scope["grants"][1]["id"], "S1-C1-K2");
    assert!(scope["grants"][1]["since"].as_u64() > scope["grants"][0]["since"].as_u64());

    let shown = admin(&data, None, &["hazard", "show", &hazard.to_string()])?;
    assert_eq!(shown["status"], "rectified");
    assert_eq!(shown["category"], "electrical");
    assert_eq!(shown["log_len"], 2);
    assert_eq!(shown["chain_verified"], true);
    assert_eq!(shown["history"][0]["kind"], "fix_on_spot");
    assert_eq!(shown["history"][0]["to"], "rectified");
    let text = Command::new(BIN)
        .env_remove("PATROLSYNC_LOG")
        .args(["--lang", "en", "admin", "--data-dir"])
        .arg(&data)
        .args(["hazard", "show", &hazard.to_string()])
        .output()?;
    let text = String::from_utf8(text.stdout)?;
    assert!(
        text.contains("rectified") && text.contains("verifies"),
        "{text}"
    );

    // Bad ids say what is expected.
    // Runs `admin` in `lang`; the command must fail. (exit code, stderr)
    let refused_in = |lang: &str, args: &[&str]| -> anyhow::Result<(Option<i32>, String)> {
        let out = Command::new(BIN)
            .env_remove("PATROLSYNC_LOG")
            .args(["--lang", lang, "admin", "--data-dir"])
            .arg(&data)
            .args(args)
            .output()?;
        assert!(!out.status.success(), "{args:?} succeeded");
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let refused = |args: &[&str]| refused_in("en", args).map(|(_, err)| err);
    assert!(refused(&["hazard", "show", "bikes"])?.contains("is not a hazard id"));
    let unknown = HazardId(uuid::Uuid::nil()).to_string();
    assert!(refused(&["hazard", "show", &unknown])?.contains("does not exist on this server"));
    assert!(refused(&["scope", "--device", "abc"])?.contains("at least its first 8 characters"));
    assert!(refused(&["scope", "--device", "ffffffff-0000"])?.contains("no device ffffffff-0000"));

    // The same refusals in Chinese (the default), each with the value it refuses; an argument
    // that does not parse is worded too, with clap's exit code.
    let refused_zh = |args: &[&str]| refused_in("zh-CN", args);
    let (code, err) = refused_zh(&["hazard", "show", "bikes"])?;
    assert_eq!(
        (code, err.as_str()),
        (
            Some(1),
            "错误：「bikes」不是隐患编号（设备上显示的 UUID）\n"
        )
    );
    let (_, err) = refused_zh(&["scope", "--device", "abc"])?;
    assert_eq!(
        err,
        "错误：设备号「abc」太短：请输入完整设备号或至少前 8 个字符\n"
    );
    let (_, err) = refused_zh(&[
        "enroll",
        "--user",
        "zoe",
        "--role",
        "patroller",
        "--grid",
        "S9",
    ])?;
    assert_eq!(
        err,
        "错误：网格 S9 不存在；请先运行 `patrolsync admin seed-demo` 或导入网格\n"
    );
    let (code, err) = refused_zh(&["report", "compliance", "--period", "2026-13"])?;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(
            "错误：参数 --period <PERIOD> 的值「2026-13」无效：期间「2026-13」：可写 2026-11（月）"
        ),
        "{err}"
    );
    Ok(())
}

/// Every admin action on the data dir is audited as the local operator, with its outcome, a
/// failed one too; `admin admins` issues, lists and revokes named tokens; `admin audit` shows
/// the log and fails when the chain has been tampered with.
#[tokio::test]
async fn every_admin_action_is_audited_and_the_chain_verifies() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let file = |name: &str, text: &str| -> anyhow::Result<String> {
        let p = dir.path().join(name);
        std::fs::write(&p, text)?;
        Ok(p.to_str().expect("utf-8").to_owned())
    };
    let run = |args: &[&str]| -> anyhow::Result<std::process::Output> {
        Ok(Command::new(BIN)
            .env_remove("PATROLSYNC_LOG")
            .args(["--lang", "en", "admin", "--data-dir"])
            .arg(&data)
            .args(args)
            .env("USER", "liu")
            .output()?)
    };
    let ok = |args: &[&str]| -> anyhow::Result<()> {
        let out = run(args)?;
        anyhow::ensure!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    let cells = file(
        "cells.csv",
        "code,parent,level,name\nA1,,1,Street A\nA1-C1,A1,2,Community A1\nA1-C1-K1,A1-C1,3,Compound\n",
    )?;
    let points = file(
        "points.csv",
        "code,cell,name,latitude,longitude\nA1-P1,A1-C1-K1,Gate,45.75,126.65\n",
    )?;
    let people = file(
        "people.csv",
        "name,role,agency,cells\nqian,patroller,,A1-C1\n",
    )?;
    let template = file(
        "t.toml",
        "id = \"daily\"\nname = \"Daily\"\n[[items]]\nid = \"exits\"\nlabel = \"Exits\"\n",
    )?;
    ok(&["grid", "import", &cells])?;
    ok(&["checkpoints", "import", &points])?;
    ok(&["people", "import", &people])?;
    ok(&["assign", "--user", "qian", "--cell", "A1-C1-K1"])?;
    ok(&["template", "publish", &template])?;
    ok(&[
        "enroll",
        "--user",
        "qian",
        "--role",
        "patroller",
        "--grid",
        "A1-C1",
        "--server",
        "127.0.0.1:4433",
    ])?;
    ok(&[
        "export",
        "inspections",
        "--period",
        "2026-11",
        "--cell",
        "A1",
    ])?;
    ok(&["grid", "retire", "A1-C1-K1"])?;
    assert!(!run(&["revoke", "ffffffff-nobody"])?.status.success());
    // Named admins: a token printed once, listed, revoked.
    let out = run(&[
        "admins",
        "add",
        "wang",
        "--role",
        "viewer",
        "--cell",
        "A1",
        "--expires",
        "90d",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)?.trim().to_owned();
    assert_eq!(token.len(), 64, "{token}");
    let listed = admin(&data, None, &["admins", "list"])?;
    assert_eq!(
        (&listed[0]["name"], &listed[0]["role"], &listed[0]["cell"]),
        (&"wang".into(), &"viewer".into(), &"A1".into())
    );
    assert!(listed[0]["expires_at_ms"].as_i64().is_some());
    let dup = run(&["admins", "add", "wang", "--role", "owner"])?;
    assert!(String::from_utf8_lossy(&dup.stderr).contains("exists already"));
    ok(&["admins", "revoke", "wang"])?;

    let log = admin(&data, None, &["audit"])?;
    assert_eq!(log["chain_verified"], true, "{log}");
    let entries: Vec<(String, String, String)> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            assert_eq!(e["actor"], "local:liu", "{e}");
            assert_eq!(e["source"], "cli", "{e}");
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["target"].as_str().unwrap_or_default().to_owned(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let actions: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        actions,
        [
            "import_grid",
            "import_checkpoints",
            "import_people",
            "assign",
            "template_publish",
            "enroll",
            "export",
            "retire",
            "revoke",
            "admin_add",
            "admin_add",
            "admin_revoke",
        ],
        "{entries:?}"
    );
    assert!(
        entries[8].2.starts_with("error:"),
        "a failed revoke: {:?}",
        entries[8]
    );
    assert!(
        entries[10].2.contains("exists already"),
        "{:?}",
        entries[10]
    );
    assert_eq!(entries[3].1, "user qian cells A1-C1-K1");
    assert!(
        !log.to_string().contains(&token),
        "the token is never logged"
    );
    let only = admin(&data, None, &["audit", "--actor", "someone-else"])?;
    assert_eq!(only["entries"].as_array().map(Vec::len), Some(0));

    // Tampered with afterwards: the chain breaks there and the command says so, failing.
    let store = SqlStore::connect(&format!(
        "sqlite://{}?mode=rwc",
        data.join("patrolsync.db").display()
    ))
    .await?;
    sqlx::query("UPDATE audit_log SET outcome = 'ok' WHERE seq = 9")
        .execute(store.raw_pool())
        .await?;
    let out = run(&["audit"])?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("BREAKS AT ENTRY 9"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
