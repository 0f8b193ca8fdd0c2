//! The `patrolsync-device` command line in the reader's language: the same commands on a phone
//! that has not enrolled yet (no server needed), in Chinese by default and in English on
//! request, their errors worded from the SDK's codes.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_patrolsync-device");

/// Runs the device CLI on `state` with `args` and no locale of its own; (success, stdout,
/// stderr).
fn device(state: &std::path::Path, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(BIN)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("LANG")
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}

#[test]
fn the_device_cli_speaks_chinese_by_default_and_english_on_request() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("phone");

    let (ok, out, _) = device(&state, &["status"])?;
    assert!(ok);
    assert!(
        out.starts_with("设备       未注册\n待传       0 条\n"),
        "{out}"
    );
    let (ok, out, _) = device(&state, &["--lang", "en", "status"])?;
    assert!(ok);
    assert!(
        out.starts_with("device     not enrolled\npending    0 op(s)\n"),
        "{out}"
    );

    let (ok, out, _) = device(&state, &["rejected"])?;
    assert!(ok);
    assert_eq!(out, "没有被拒收的记录\n");

    // An SDK error is worded from its code, in the run's language.
    let (ok, _, err) = device(&state, &["checkin", "--checkpoint", "S1-C1-K1-B1-P1"])?;
    assert!(!ok);
    assert_eq!(
        err.trim_end(),
        "错误：本设备尚未注册，请先输入管理员提供的注册码"
    );
    let (ok, _, err) = device(
        &state,
        &["--lang", "en", "checkin", "--checkpoint", "S1-C1-K1-B1-P1"],
    )?;
    assert!(!ok);
    assert_eq!(
        err.trim_end(),
        "error: This device is not enrolled; enter the code from your admin first"
    );

    // An argument that does not parse is worded too: the value, why, and where to find help,
    // with clap's exit code; in English it is clap's own message.
    let args = [
        "hazard",
        "report",
        "--checkpoint",
        "S1-C1-K1-B1-P1",
        "--category",
        "other",
        "--deadline",
        "soon",
    ];
    let out = Command::new(BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(args)
        .env("LANG", "zh_CN.UTF-8")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .output()?;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr)?,
        "错误：参数 --deadline <DEADLINE> 的值「soon」无效：「soon」既不是时长（7d、48h）也不是日期（2026-12-31）\n更多信息请运行 --help\n"
    );
    let mut en = vec!["--lang", "en"];
    en.extend(args);
    let (ok, _, err) = device(&state, &en)?;
    assert!(!ok);
    assert!(
        err.starts_with("error: invalid value 'soon' for '--deadline <DEADLINE>': \"soon\" is neither a duration"),
        "{err}"
    );
    Ok(())
}
