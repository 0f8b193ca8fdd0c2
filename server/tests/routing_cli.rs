//! `patrolsync admin routing import | list | check` and enrolling a routed party: the real
//! binary, in Chinese and English. A rules file naming an unknown user is refused whole and
//! publishes nothing; `--check` publishes nothing; the same rules again are no new version; the
//! check names the rule a report hits, or says it falls back to the cell's managers.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::BIN;

fn run(data: &Path, lang: &str, args: &[&str]) -> anyhow::Result<Output> {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("PATROLSYNC_LOG")
        .args(["--lang", lang, "admin", "--data-dir"])
        .arg(data);
    Ok(cmd.args(args).output()?)
}

fn ok(data: &Path, lang: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = run(data, lang, args)?;
    anyhow::ensure!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

fn failed(data: &Path, lang: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = run(data, lang, args)?;
    anyhow::ensure!(!out.status.success(), "{args:?} succeeded");
    Ok(String::from_utf8(out.stderr)?)
}

const RULES: &str = r#"
[reminders]
before = ["1d"]
after = ["0s", "1d"]

[[rule]]
name = "K1 物业"
cell = "S1-C1-K1"
categories = ["blocked_fire_lane"]
user = "wuye-k1"

[[rule]]
cell = "S1"
agency = "fire_brigade"
"#;

#[test]
fn routing_rules_are_imported_whole_versioned_and_checked() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    ok(&data, "en", &["seed-demo"])?;
    ok(
        &data,
        "en",
        &[
            "enroll",
            "--user",
            "bob",
            "--role",
            "grid_manager",
            "--grid",
            "S1-C1",
        ],
    )?;

    // A party is enrolled without cells, and refused with them.
    let refused = failed(
        &data,
        "en",
        &[
            "enroll",
            "--user",
            "wuye-k1",
            "--role",
            "property_company",
            "--grid",
            "S1",
        ],
    )?;
    assert!(
        refused
            .contains("a property_company holds the hazards routing rules send it, not grid cells"),
        "{refused}"
    );

    // The rules name a user who does not exist yet: refused, nothing published.
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES)?;
    let file = rules.to_str().expect("utf-8 path");
    let unknown = failed(&data, "zh-CN", &["routing", "import", file])?;
    assert!(
        unknown.contains("第 1 条规则：用户 wuye-k1 不存在"),
        "{unknown}"
    );
    assert!(ok(&data, "en", &["routing", "list"])?.contains("no routing rules published"));

    ok(
        &data,
        "en",
        &["enroll", "--user", "wuye-k1", "--role", "property_company"],
    )?;
    let checked = ok(&data, "en", &["routing", "import", file, "--check"])?;
    assert!(
        checked.contains("2 rules are fine and would be version 1")
            && checked.contains("nothing published"),
        "{checked}"
    );
    assert!(ok(&data, "en", &["routing", "list"])?.contains("no routing rules published"));

    let published = ok(&data, "en", &["routing", "import", file])?;
    assert!(
        published
            .contains("published routing rules version 1 (2 rules; reminders -1day, +0s, +1day)"),
        "{published}"
    );
    let again = ok(&data, "en", &["routing", "import", file])?;
    assert!(
        again.contains("version 1 in force already has this content"),
        "{again}"
    );

    let list = ok(&data, "zh-CN", &["routing", "list"])?;
    assert!(
        list.contains("#1 S1-C1-K1：占用、堵塞消防车通道 → 用户 wuye-k1（K1 物业）"),
        "{list}"
    );
    assert!(list.contains("#2 S1：所有隐患类别 → 消防救援站"), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&data, "en", &["routing", "list", "--json"])?)?;
    assert_eq!(json[0]["version"], 1);
    assert_eq!(
        json[0]["set"]["rules"][0]["cell_path"],
        "/S1/S1-C1/S1-C1-K1/"
    );
    assert_eq!(json[0]["set"]["remind_before_ms"][0], 86_400_000);

    // The check: the compound's rule for its category, the street's for another, and the
    // managers alone where no rule holds.
    let hit = ok(
        &data,
        "zh-CN",
        &[
            "routing",
            "check",
            "--cell",
            "S1-C1-K1-B1",
            "--category",
            "blocked_fire_lane",
        ],
    )?;
    assert!(
        hit.contains("S1-C1-K1-B1 的“占用、堵塞消防车通道”：按第 1 版第 1 条规则（网格 S1-C1-K1，K1 物业）派送给 wuye-k1"),
        "{hit}"
    );
    assert!(
        hit.contains("无论如何都会收到的网格长（1 人）：bob"),
        "{hit}"
    );
    let street = ok(
        &data,
        "en",
        &[
            "routing",
            "check",
            "--cell",
            "S1-C1-K1",
            "--category",
            "electrical",
        ],
    )?;
    assert!(
        street.contains("rule #2 of version 1 (cell S1) sends it to fire brigade"),
        "{street}"
    );
    let none = ok(
        &data,
        "en",
        &["routing", "check", "--cell", "S2-C1", "--category", "gas"],
    )?;
    assert!(
        none.contains("no rule routes it (version 1); it goes to the cell's managers alone"),
        "{none}"
    );
    assert!(
        none.contains("no grid manager is assigned S2-C1 or a cell above it"),
        "{none}"
    );
    let bad = failed(
        &data,
        "en",
        &["routing", "check", "--cell", "S1", "--category", "arson"],
    )?;
    assert!(
        bad.contains("--category arson is not one of: blocked_fire_lane"),
        "{bad}"
    );
    Ok(())
}
