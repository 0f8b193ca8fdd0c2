//! The dashboard in a real browser: a server with a seeded fleet (healthy, a stuck photo,
//! silent for two days, an op refused, revoked), loaded headless in Chromium; each device must
//! appear with its state and the stuck photo must be on the page. It reads Chinese by default
//! and English after the switch (remembered), and a walk of the page's text finds no word of
//! the other language outside the data (names, codes, hashes: `translate="no"`). Screenshots
//! (laptop and phone widths) are saved under the test's output directory.
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

/// The text a person reads on the page: every text node of the body outside scripts, styles
/// and data (`translate="no"`: names, codes, hashes, what a device or server said).
fn words_read(html: &str) -> Vec<String> {
    let doc = scraper::Html::parse_document(html);
    let body = scraper::Selector::parse("body").expect("a selector");
    let Some(body) = doc.select(&body).next() else {
        return vec![];
    };
    body.descendants()
        .filter_map(|node| {
            let text = node.value().as_text()?;
            let data = node.ancestors().any(|a| {
                a.value().as_element().is_some_and(|e| {
                    e.attr("translate") == Some("no") || matches!(e.name(), "script" | "style")
                })
            });
            (!data && !text.trim().is_empty()).then(|| text.trim().to_owned())
        })
        .collect()
}

/// Latin words in `text`.
fn latin_words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .collect()
}

/// `text` without its `{name}` placeholders (a placeholder's name is no word of the page).
fn without_placeholders(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for c in text.chars() {
        match c {
            '{' => inside = true,
            '}' => inside = false,
            c if !inside => out.push(c),
            _ => {}
        }
    }
    out
}

/// Chinese characters or full-width punctuation in `text`.
fn has_chinese(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(c, '\u{3000}'..='\u{303f}' | '\u{4e00}'..='\u{9fff}' | '\u{ff00}'..='\u{ffef}'))
}

/// The page in Chinese: every word read is the catalog's (a Latin word only where the Chinese
/// catalog itself has it, e.g. SDK), no message left as its id or with a placeholder unfilled.
fn assert_all_chinese(page: &str, what: &str) {
    use patrolsync_i18n::Lang;
    let catalog: String = ["dash-", "dur-", "state-", "role-", "cause-"]
        .into_iter()
        .flat_map(|p| Lang::ZhCn.placeholder_messages(p))
        .map(|(_, text)| without_placeholders(&text) + "\n")
        .collect();
    let allowed = latin_words(&catalog);
    let read = words_read(page);
    assert!(read.len() > 5, "{what}: little text read: {read:?}");
    for text in &read {
        assert!(
            !text.contains('{') && !text.contains("dash-"),
            "{what}: a message not filled in: {text:?}"
        );
        for word in latin_words(text) {
            assert!(
                allowed.contains(&word),
                "{what}: English left in the Chinese page: {word:?} in {text:?}"
            );
        }
    }
    assert!(
        page.contains("<html lang=\"zh-CN\""),
        "{what}: the page says it is Chinese"
    );
}

/// The page in English: no Chinese read outside the data.
fn assert_all_english(page: &str, what: &str) {
    let read = words_read(page);
    assert!(read.len() > 5, "{what}: little text read: {read:?}");
    for text in &read {
        assert!(
            !has_chinese(text),
            "{what}: Chinese left in the English page: {text:?}"
        );
    }
    assert!(
        page.contains("<html lang=\"en\""),
        "{what}: the page says it is English"
    );
}

#[test]
fn the_language_checks_catch_the_other_language() {
    let zh = "<html lang=\"zh-CN\"><body><p>设备</p><p>状态</p><p>用户</p><p>原因</p><p>最近联系</p>\
              <p>最近上传</p><p>待传</p><p>照片</p><p>拒收</p><p>往返时延</p><p>应用 SDK</p>\
              <span translate=\"no\">alice's phone</span>";
    assert_all_chinese(&format!("{zh}</body></html>"), "planted");
    // Words that are placeholders' names in the catalog ("ops", "ms") are caught too.
    for english in ["Last seen", "3 ops", "120 ms"] {
        let leaked = std::panic::catch_unwind(|| {
            assert_all_chinese(&format!("{zh}<p>{english}</p></body></html>"), "planted")
        });
        assert!(leaked.is_err(), "{english:?} outside the data is caught");
    }
    let en = "<html lang=\"en\"><body><p>Fleet</p><p>State</p><p>User</p><p>Why</p><p>Last</p>\
              <p>Outbox</p><p>Photos</p><p>RTT</p><p>App</p><p>Device</p><p>Total</p>\
              <span translate=\"no\">花园街道</span>";
    assert_all_english(&format!("{en}</body></html>"), "planted");
    let leaked = std::panic::catch_unwind(|| {
        assert_all_english(&format!("{en}<p>设备</p></body></html>"), "planted")
    });
    assert!(leaked.is_err(), "Chinese outside the data is caught");
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
    assert!(stuck_row.contains("1</span> 张缺失"), "{stuck_row}");
    assert!(stuck_row.contains("1 张照片已引用但未上传"), "{stuck_row}");
    assert_all_chinese(&dom, "the fleet, by default");
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

    // The switch is a link to `?lang=en`: the page in English, and it stays English.
    let english_url = format!("{base}?lang=en#token={}", token.trim());
    let page = headless(&browser, &profile, &["--dump-dom".into()], &english_url).await?;
    assert!(page.contains("data-loaded=\"true\""), "{page}");
    assert!(
        page.contains(">Fleet</a>") && page.contains("sync health"),
        "{page}"
    );
    assert!(
        page.contains("1</span> missing since")
            && page.contains("1 photo(s) referenced but not uploaded"),
        "{page}"
    );
    assert_all_english(&page, "the fleet after the switch");
    let page = headless(&browser, &profile, &["--dump-dom".into()], &fleet_url).await?;
    assert_all_english(&page, "the fleet, remembered");
    // And back.
    let chinese_url = format!("{base}?lang=zh-CN#token={}", token.trim());
    let page = headless(&browser, &profile, &["--dump-dom".into()], &chinese_url).await?;
    assert_all_chinese(&page, "the fleet, switched back");

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
    assert_all_chinese(&page, "a device's page");

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
    assert_all_chinese(&page, "the audit log");
    assert!(
        page.contains("停用设备") && page.contains("导出台账"),
        "{page}"
    );
    let hazards_url = format!("{base}#token={}&/hazards", token.trim());
    let page = headless(&browser, &profile, &["--dump-dom".into()], &hazards_url).await?;
    assert!(page.contains("data-loaded=\"true\""), "{page}");
    assert_all_chinese(&page, "the hazards");

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

/// The public progress page in a real browser, with no token: it renders the demo city's
/// streets and communities in Chinese by default and in English after the switch, and a
/// screenshot is saved beside the dashboard's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_page_renders_without_a_token() -> anyhow::Result<()> {
    let Some(browser) = chromium() else {
        patrolsync_server::testkit::skip(
            "the public page's browser test",
            "no chromium on PATH (apt-get install chromium)",
        );
        return Ok(());
    };
    let h = Harness::start_with(TestDatabase::sqlite(), |c| c.public.enabled = true).await?;
    let url = format!("http://{}/public/", h.server().admin_addr());
    let profile = h.dir.path().join("chromium-profile");
    let dom = headless(&browser, &profile, &["--dump-dom".into()], &url).await?;
    let rows = scraper::Html::parse_document(&dom);
    let streets = scraper::Selector::parse("tr.street").expect("selector");
    let communities = scraper::Selector::parse("tr.community").expect("selector");
    assert_eq!(rows.select(&streets).count(), 2, "{dom}");
    assert_eq!(rows.select(&communities).count(), 6, "{dom}");
    assert!(dom.contains("消防安全网格化管理动态信息公开"), "{dom}");
    assert!(
        dom.contains("花园街道") && dom.contains("红军社区"),
        "{dom}"
    );
    let english = headless(
        &browser,
        &profile,
        &["--dump-dom".into()],
        &format!("{url}?lang=en"),
    )
    .await?;
    assert!(
        english.contains("Fire-safety grid: public progress"),
        "{english}"
    );
    let shot = h.dir.path().join("public.png");
    headless(
        &browser,
        &profile,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,900".into(),
        ],
        &url,
    )
    .await?;
    assert!(
        std::fs::metadata(&shot)?.len() > 1000,
        "a screenshot was taken"
    );
    h.finish().await;
    Ok(())
}

/// A key unit's page in the dashboard: its details, the inspection at its checkpoint and the
/// hazard reported there with its state, in Chinese; and the list of units links to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_units_page_shows_its_inspections_and_hazards() -> anyhow::Result<()> {
    use patrolsync_proto::{CheckInKind, CheckInOutcome};
    let Some(browser) = chromium() else {
        patrolsync_server::testkit::skip(
            "the key unit page's browser test",
            "no chromium on PATH (apt-get install chromium)",
        );
        return Ok(());
    };
    let h = Harness::start(TestDatabase::sqlite()).await?;
    let sql = patrolsync_server::open_sql_store(&h.config).await?;
    let file = h.dir.path().join("units.csv");
    std::fs::write(
        &file,
        "编码,网格,类型,名称,地址,责任人,联系电话,风险等级,四个能力自评日期,检查点\n\
         U-1,S1-C1-K1,涉药单位,仁和大药房,文化街 12 号,王芳,13800000000,高,2026-11-20,S1-C1-K1-B1-P1\n",
    )?;
    patrolsync_server::registry_import::import_units(
        &sql,
        &file,
        false,
        patrolsync_server::now_ms(),
    )
    .await?;
    let pat = h.device("p", "pat", &["S1-C1-K1"]).await?;
    let mut c = patrolsync_sdk::NewCheckIn::new("S1-C1-K1-B1-P1", CheckInOutcome::Inspected);
    c.kind = CheckInKind::Inspection;
    let inspected = pat.record_checkin(c).await?;
    let mut lane = patrolsync_tests::blocked_lane("S1-C1-K1-B1");
    lane.checkpoint = Some("S1-C1-K1-B1-P1".into());
    let hazard = pat.report_hazard(lane).await?;
    pat.sync().await?;

    let token = std::fs::read_to_string(h.config.data_dir.join("admin.token"))?;
    let base = format!("http://{}/", h.server().admin_addr());
    let profile = h.dir.path().join("chromium-profile");
    let token = token.trim();
    let list = headless(
        &browser,
        &profile,
        &["--dump-dom".into()],
        &format!("{base}#token={token}&/units"),
    )
    .await?;
    assert!(list.contains("href=\"#/units/U-1\""), "{list}");
    assert!(
        list.contains("涉药单位") && list.contains("仁和大药房"),
        "{list}"
    );
    let dom = headless(
        &browser,
        &profile,
        &["--dump-dom".into()],
        &format!("{base}#token={token}&/units/U-1"),
    )
    .await?;
    assert!(dom.contains("data-unit=\"U-1\""), "{dom}");
    let doc = scraper::Html::parse_document(&dom);
    let cells = |table: &str| -> Vec<String> {
        let sel = scraper::Selector::parse(&format!("#{table} tbody td")).expect("selector");
        doc.select(&sel)
            .map(|td| td.text().collect::<String>().trim().to_owned())
            .collect()
    };
    let check_ins = cells("unit-check-ins");
    assert!(
        check_ins.iter().any(|c| c == "S1-C1-K1-B1-P1") && check_ins.iter().any(|c| c == "检查"),
        "{check_ins:?} (check-in {inspected})"
    );
    let hazards = cells("unit-hazards");
    assert!(
        hazards.iter().any(|c| c == "已上报")
            && hazards.iter().any(|c| c == "占用、堵塞消防车通道"),
        "{hazards:?}"
    );
    assert!(dom.contains(&format!("data-hazard=\"{hazard}\"")), "{dom}");
    assert_all_chinese(&dom, "a key unit's page");
    h.finish().await;
    Ok(())
}

/// Shade of a rate as the map draws it.
fn shade(rate: Option<f64>) -> &'static str {
    match rate {
        None => "none",
        Some(r) if r >= 0.9 => "good",
        Some(r) if r >= 0.6 => "fair",
        Some(_) => "poor",
    }
}

/// The map's drawn areas: (cell, shade, rate) of every path.
fn drawn(dom: &str) -> Vec<(String, String, String)> {
    let doc = scraper::Html::parse_document(dom);
    let paths = scraper::Selector::parse("svg#map path").expect("selector");
    doc.select(&paths)
        .map(|p| {
            let a = |k: &str| p.value().attr(k).unwrap_or_default().to_owned();
            (a("data-cell"), a("data-shade"), a("data-rate"))
        })
        .collect()
}

/// The grid map in a real browser, on the demo city: the streets drawn from their stored
/// boundaries, each coloured as its compliance in the report; drill-down to a compound shows its
/// buildings and checkpoints; the early warnings list an overdue hazard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_draws_the_grid_coloured_by_the_reports_compliance() -> anyhow::Result<()> {
    use patrolsync_proto::{CheckInKind, CheckInOutcome};
    let Some(browser) = chromium() else {
        patrolsync_server::testkit::skip("the map's browser test", "no chromium on PATH");
        return Ok(());
    };
    let h = Harness::start(TestDatabase::sqlite()).await?;
    let pat = h.device("p", "pat", &["S1"]).await?;
    // Today's daily slots of three of S1-C1-K1's five buildings; a hazard already overdue.
    for b in 1..=3 {
        let mut c =
            patrolsync_sdk::NewCheckIn::new(format!("S1-C1-K1-B{b}-P1"), CheckInOutcome::Inspected);
        c.kind = CheckInKind::Inspection;
        pat.record_checkin(c).await?;
    }
    let mut late = patrolsync_tests::blocked_lane("S1-C1-K1-B1");
    late.deadline_ms = Some(patrolsync_server::now_ms() - 60_000);
    let overdue = pat.report_hazard(late).await?;
    pat.sync().await?;

    let token = std::fs::read_to_string(h.config.data_dir.join("admin.token"))?;
    let token = token.trim();
    let base = format!("http://{}/", h.server().admin_addr());
    let profile = h.dir.path().join("chromium-profile");
    let page = |route: &str| {
        let url = format!("{base}#token={token}&{route}");
        let (browser, profile) = (browser.clone(), profile.clone());
        async move { headless(&browser, &profile, &["--dump-dom".into()], &url).await }
    };
    let top = page("/map").await?;
    let streets = drawn(&top);
    assert_eq!(
        streets.iter().map(|(c, ..)| c.as_str()).collect::<Vec<_>>(),
        ["S1", "S2"],
        "{top}"
    );
    // Each street's colour is its rate in the compliance report of this month.
    let sql = patrolsync_server::open_sql_store(&h.config).await?;
    let cal = h.config.reports.calendar().map_err(anyhow::Error::msg)?;
    let now = patrolsync_server::now_ms();
    let month = cal.date(now).format("%Y-%m").to_string();
    let report = patrolsync_server::report::compliance(
        &sql,
        &cal,
        &h.config.reports.anomaly_rules(),
        &month.parse().map_err(anyhow::Error::msg)?,
        None,
        now,
    )
    .await?;
    for (cell, drawn_shade, drawn_rate) in &streets {
        let rate = report
            .rows
            .iter()
            .find(|r| &r.cell == cell)
            .and_then(|r| r.rate);
        assert_eq!(
            drawn_shade,
            shade(rate),
            "{cell}: {rate:?} drawn as {drawn_rate}"
        );
        assert_eq!(
            drawn_rate.parse::<f64>().ok(),
            rate,
            "{cell}: the drawn rate is the report's"
        );
    }
    assert!(
        top.contains(&overdue.to_string()[..8]),
        "the overdue hazard is warned of"
    );

    let community = page("/map/S1").await?;
    assert_eq!(drawn(&community).len(), 3, "S1's three communities");
    let compound = page("/map/S1-C1-K1").await?;
    assert_eq!(drawn(&compound).len(), 5, "the compound's five buildings");
    let doc = scraper::Html::parse_document(&compound);
    let points = scraper::Selector::parse("svg#map circle[data-point]").expect("selector");
    assert_eq!(doc.select(&points).count(), 10, "and its ten checkpoints");
    let trend = scraper::Selector::parse("#trend tbody tr").expect("selector");
    assert_eq!(doc.select(&trend).count(), 12, "twelve weeks of trend");
    assert_all_chinese(&compound, "the map");
    h.finish().await;
    Ok(())
}

/// The map of the city-sized seed (15,799 cells): its 115 streets drawn at the top level, and a
/// street's communities below (how long drawing takes is the benchmark's to measure, not a
/// test's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_map_draws_the_city_sized_seed() -> anyhow::Result<()> {
    let Some(browser) = chromium() else {
        patrolsync_server::testkit::skip("the map's browser test", "no chromium on PATH");
        return Ok(());
    };
    let h = Harness::start_empty(TestDatabase::sqlite()).await?;
    patrolsync_server::seed::seed_city(h.server().store().as_ref()).await?;
    let token = std::fs::read_to_string(h.config.data_dir.join("admin.token"))?;
    let url = format!(
        "http://{}/#token={}&/map",
        h.server().admin_addr(),
        token.trim()
    );
    let profile = h.dir.path().join("chromium-profile");
    let dom = headless(&browser, &profile, &["--dump-dom".into()], &url).await?;
    assert_eq!(drawn(&dom).len(), 115, "the city's streets");
    let street = format!(
        "http://{}/#token={}&/map/S001",
        h.server().admin_addr(),
        token.trim()
    );
    let dom = headless(&browser, &profile, &["--dump-dom".into()], &street).await?;
    assert!(drawn(&dom).len() >= 5, "a street's communities");
    h.finish().await;
    Ok(())
}

/// The tasks page (派单): a help call nobody has taken yet is listed in the Chinese words of the
/// form, and this month's response per street counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tasks_page_lists_what_is_to_be_done_and_the_response_per_street() -> anyhow::Result<()>
{
    use patrolsync_server::store::{NewTask, TaskStore};
    let Some(browser) = chromium() else {
        patrolsync_server::testkit::skip(
            "the tasks page's browser test",
            "no chromium on PATH (apt-get install chromium)",
        );
        return Ok(());
    };
    // Nobody dispatches during the test: the call stays to be offered.
    let h = Harness::start_with(TestDatabase::sqlite(), |c| {
        c.dispatch.check_every = std::time::Duration::from_secs(3600);
    })
    .await?;
    let sql = patrolsync_server::open_sql_store(&h.config).await?;
    let (task, _) = sql
        .create_task(
            &NewTask {
                cell: "S1-C1-K1".into(),
                kind: patrolsync_proto::task::TaskKind::HelpCall,
                urgency: patrolsync_proto::task::Urgency::Urgent,
                household: None,
                unit: None,
                checkpoint: None,
                position: None,
                description: String::new(),
            },
            patrolsync_server::now_ms(),
        )
        .await?;
    let token = std::fs::read_to_string(h.config.data_dir.join("admin.token"))?;
    let base = format!("http://{}/", h.server().admin_addr());
    let profile = h.dir.path().join("chromium-profile");
    let dom = headless(
        &browser,
        &profile,
        &["--dump-dom".into()],
        &format!("{base}#token={}&/tasks", token.trim()),
    )
    .await?;
    let doc = scraper::Html::parse_document(&dom);
    let cells = |table: &str| -> Vec<String> {
        let sel = scraper::Selector::parse(&format!("#{table} tbody td")).expect("selector");
        doc.select(&sel)
            .map(|td| td.text().collect::<String>().trim().to_owned())
            .collect()
    };
    let open = cells("tasks");
    assert_eq!(
        open[1..],
        ["求助", "紧急", "S1-C1-K1", "待派", "—", "—"],
        "{open:?} (task {task})"
    );
    let response = cells("task-response");
    assert!(response[0].starts_with("S1 "), "{response:?}");
    assert_eq!(response[1], "1", "made: {response:?}");
    assert_eq!(response[2], "1", "not done: {response:?}");
    assert_all_chinese(&dom, "the tasks page");
    h.finish().await;
    Ok(())
}
