//! The dashboard in a real browser: a server with a seeded fleet (healthy, a stuck photo,
//! silent for two days, an op refused, revoked), loaded headless in Chromium; each device must
//! appear with its state and the stuck photo must be on the page. Screenshots (laptop and
//! phone widths) are saved under the test's output directory.
//!
//! Needs Chromium (`apt-get install chromium`; `.ci/run` installs it). Without it the test
//! prints why and passes. `PATROLSYNC_CHROMIUM` names another binary.

use patrolsync_server::store::AccountStore;
use std::path::{Path, PathBuf};
use std::time::Duration;

use patrolsync_server::testkit::{TestDatabase, seed_fleet};
use patrolsync_tests::Harness;

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PATROLSYNC_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"]
                .into_iter()
                .map(move |name| dir.join(name))
        })
        .find(|p| p.is_file())
}

/// Runs headless Chromium on `url` with `args`, letting the page's scripts and fetches run
/// (virtual time), and returns its stdout.
async fn headless(
    browser: &Path,
    profile: &Path,
    args: &[String],
    url: &str,
) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--virtual-time-budget=8000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    // The browser is not what is under test: a clock faked for the suite (libfaketime,
    // preloaded) hangs Chromium, and what the page asserts comes from the server's clock.
    .env_remove("LD_PRELOAD")
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("chromium did not finish within 90 s"))??;
    anyhow::ensure!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_every_device_state_and_the_stuck_photo() -> anyhow::Result<()> {
    let Some(browser) = chromium() else {
        patrolsync_server::testkit::skip(
            "the browser test",
            "no chromium on PATH (apt-get install chromium)",
        );
        return Ok(());
    };
    let h = Harness::start(TestDatabase::sqlite()).await?;
    let fleet = seed_fleet(h.server().store().as_ref(), patrolsync_server::now_ms()).await?;
    let token = std::fs::read_to_string(h.config.data_dir.join("admin.token"))?;
    let base = format!("http://{}/", h.server().admin_addr());
    let fleet_url = format!("{base}#token={}", token.trim());
    let profile = h.dir.path().join("chromium-profile");

    let dom = headless(&browser, &profile, &["--dump-dom".into()], &fleet_url).await?;
    assert!(
        dom.contains("data-loaded=\"true\""),
        "the page did not load its data:\n{dom}"
    );
    for (device, state) in [
        (&fleet.healthy, "healthy"),
        (&fleet.stuck_photo, "lagging"),
        (&fleet.silent, "silent"),
        (&fleet.erroring, "erroring"),
        (&fleet.revoked, "revoked"),
    ] {
        let row = format!("<tr data-device=\"{}\" data-state=\"{state}\">", device.id);
        assert!(
            dom.contains(&row),
            "{state} device {} missing:\n{dom}",
            device.id
        );
        assert!(
            dom.contains(&format!("id=\"count-{state}\"")),
            "no {state} count card"
        );
    }
    // The stuck photo: in the device's row, and listed by hash with the device that owes it.
    let stuck_row_at = dom
        .find(&format!("data-device=\"{}\"", fleet.stuck_photo.id))
        .expect("row");
    let stuck_row = &dom[stuck_row_at
        ..dom[stuck_row_at..]
            .find("</tr>")
            .map_or(dom.len(), |e| stuck_row_at + e)];
    assert!(stuck_row.contains("1 missing"), "{stuck_row}");
    assert!(
        stuck_row.contains("photo(s) referenced but not uploaded"),
        "{stuck_row}"
    );
    assert!(
        dom.contains(&format!("data-sha=\"{}\"", fleet.stuck_sha256)),
        "stuck photo not listed:\n{dom}"
    );
    assert!(
        !dom.contains(token.trim()),
        "the token must not end up in the page"
    );
    assert!(
        dom.contains("Sun's phone &lt;img src=x onerror=alert(1)&gt;")
            && !dom.contains("<img src=x"),
        "a device's name must be shown as text, never as markup"
    );

    // The stuck device's own page shows the photo's full hash.
    let device_url = format!(
        "{base}#token={}&/device/{}",
        token.trim(),
        fleet.stuck_photo.id
    );
    let page = headless(&browser, &profile, &["--dump-dom".into()], &device_url).await?;
    assert!(
        page.contains(&format!(
            "id=\"device\" data-device=\"{}\" data-state=\"lagging\"",
            fleet.stuck_photo.id
        )),
        "{page}"
    );
    assert!(page.contains(&fleet.stuck_sha256), "{page}");

    // The audit page shows the log, newest first, and that its chain verifies.
    let sql = patrolsync_server::open_sql_store(&h.config).await?;
    for (action, target) in [("revoke", "device 0196"), ("export", "ledger <b>x</b>")] {
        sql.audit(
            &patrolsync_server::store::admins::AuditRecord {
                actor: "li".into(),
                source: "127.0.0.1:5555".into(),
                action: action.into(),
                target: target.into(),
                outcome: "ok".into(),
            },
            patrolsync_server::now_ms(),
        )
        .await?;
    }
    let audit_url = format!("{base}#token={}&/audit", token.trim());
    let page = headless(&browser, &profile, &["--dump-dom".into()], &audit_url).await?;
    assert!(
        page.contains("id=\"audit\" data-verified=\"true\""),
        "{page}"
    );
    let (export, revoke) = (
        page.find("data-action=\"export\"").expect("export shown"),
        page.find("data-action=\"revoke\"").expect("revoke shown"),
    );
    assert!(export < revoke, "newest first");
    assert!(
        page.contains("ledger &lt;b&gt;x&lt;/b&gt;"),
        "shown as text"
    );

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&out)?;
    for (name, size) in [
        ("fleet-laptop.png", "1366,1000"),
        ("fleet-phone.png", "390,1400"),
    ] {
        let file = out.join(name);
        let _ = std::fs::remove_file(&file);
        headless(
            &browser,
            &profile,
            &[
                format!("--screenshot={}", file.display()),
                format!("--window-size={size}"),
            ],
            &fleet_url,
        )
        .await?;
        let len = std::fs::metadata(&file)?.len();
        assert!(len > 10_000, "{} is only {len} bytes", file.display());
        println!("screenshot: {}", file.display());
    }
    h.finish().await;
    Ok(())
}
