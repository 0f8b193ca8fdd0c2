//! `patrolsync admin grid import | checkpoints import | people import | assign | grid retire`,
//! the real binary on both backends: a file applies whole or not at all, a bad row is named by
//! line and column, a repeat import changes nothing (not even the change log devices pull), and
//! a retired cell keeps its history.

mod common;

use patrolsync_server::store::{PullStore, RegistryStore};
use std::path::Path;
use std::process::{Command, Output};

use common::BIN;
use patrolsync_server::store::Store;
use patrolsync_server::store::sql::SqlStore;
use patrolsync_server::testkit::test_databases;

struct Admin<'a> {
    data: &'a Path,
    url: Option<&'a str>,
}

impl Admin<'_> {
    fn run(&self, args: &[&str]) -> anyhow::Result<Output> {
        self.run_in("en", args)
    }

    /// Runs with `--lang lang`.
    fn run_in(&self, lang: &str, args: &[&str]) -> anyhow::Result<Output> {
        let mut cmd = Command::new(BIN);
        // Exact output is compared: no log lines of a developer's PATROLSYNC_LOG.
        cmd.env_remove("PATROLSYNC_LOG")
            .args(["--lang", lang, "admin", "--data-dir"])
            .arg(self.data);
        if let Some(u) = self.url {
            cmd.arg("--database-url").arg(u);
        }
        Ok(cmd.args(args).output()?)
    }

    /// Runs with `--json`; the command must succeed.
    fn json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.run(&all)?;
        anyhow::ensure!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    /// `grid retire CODE`: how many cells and checkpoints it newly retired.
    fn retire(&self, code: &str) -> anyhow::Result<(u64, u64)> {
        let out = self.json(&["grid", "retire", code])?;
        let count = |key: &str| {
            out[key]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("no {key} in {out}"))
        };
        Ok((count("cells_retired")?, count("checkpoints_retired")?))
    }
}

/// A data dir and database on one backend, a store open on it, and files for the commands.
struct Setup {
    dir: tempfile::TempDir,
    data: std::path::PathBuf,
    /// `None`: SQLite in the data dir.
    url: Option<String>,
    store: SqlStore,
}

impl Setup {
    async fn new(url: Option<String>) -> anyhow::Result<Setup> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let connect = url.clone().unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", data.join("patrolsync.db").display())
        });
        let store = SqlStore::connect(&connect).await?;
        Ok(Setup {
            dir,
            data,
            url,
            store,
        })
    }

    /// `patrolsync admin` on this data dir and database.
    fn admin(&self) -> Admin<'_> {
        Admin {
            data: &self.data,
            url: self.url.as_deref(),
        }
    }

    /// Imports the grid of [`CELLS`] and [`CHECKPOINTS`] through the command line.
    fn import_grid(&self) -> anyhow::Result<()> {
        let admin = self.admin();
        admin.json(&["grid", "import", &self.write("cells.csv", CELLS)?])?;
        admin.json(&[
            "checkpoints",
            "import",
            &self.write("cp.geojson", CHECKPOINTS)?,
        ])?;
        Ok(())
    }

    /// Writes `text` to a file `name` beside the data dir; returns its path.
    fn write(&self, name: &str, text: &str) -> anyhow::Result<String> {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text)?;
        Ok(p.to_str().expect("utf-8").to_owned())
    }
}

const CELLS: &str = "code,parent,level,name,boundary
H1,,1,Daoli street,\"POLYGON((126.60 45.76, 126.64 45.76, 126.64 45.79, 126.60 45.79, 126.60 45.76))\"
H1-C1,H1,2,Anguo community,
H1-C1-K1,H1-C1,3,Compound 1,
H1-C1-K1-B1,H1-C1-K1,4,Building 1,
H1-C1-K1-B2,H1-C1-K1,4,Building 2,
";

const CHECKPOINTS: &str = r#"{"type": "FeatureCollection", "features": [
  {"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.62, 45.77]},
   "properties": {"code": "H1-B1-EXIT", "cell": "H1-C1-K1-B1", "name": "Exit, building 1", "tag_uid": "04A1B2", "radius_m": 25}},
  {"type": "Feature", "geometry": {"type": "Point", "coordinates": [126.621, 45.771]},
   "properties": {"code": "H1-K1-LANE", "cell": "H1-C1-K1", "name": "Fire lane", "cadence": "daily"}}
]}"#;

const PEOPLE: &str = "name,role,agency,cells
liu.yang,patroller,,H1-C1-K1
zhao.min,grid_manager,,H1-C1;H1
daoli-brigade,agency,fire_brigade,H1
";

#[tokio::test]
async fn imports_apply_whole_or_not_at_all_and_repeat_imports_change_nothing() -> anyhow::Result<()>
{
    for db in test_databases().await {
        let backend = db.backend;
        let setup = Setup::new(db.url.clone()).await?;
        let (store, admin) = (&setup.store, setup.admin());
        let write = |name: &str, text: &str| setup.write(name, text);
        let cells = write("cells.csv", CELLS)?;
        let checkpoints = write("checkpoints.geojson", CHECKPOINTS)?;
        let people = write("people.csv", PEOPLE)?;

        // --check writes nothing.
        let checked = admin.json(&["grid", "import", &cells, "--check"])?;
        assert_eq!(
            (checked["rows"].as_u64(), checked["changed"].as_u64()),
            (Some(5), Some(0))
        );
        assert_eq!(store.stats(0).await?.grid_cells, 0, "{backend}");

        let cursor = store.cursor().await?;
        let first = admin.json(&["grid", "import", &cells])?;
        assert_eq!(first["changed"], 5, "{backend}: {first}");
        let log = store.cursor().await?;
        assert!(
            log > cursor,
            "{backend}: the new cells are in the change log devices pull"
        );
        let boundary: Option<String> =
            sqlx::query_scalar("SELECT boundary FROM grid_cells WHERE code = 'H1'")
                .fetch_one(store.raw_pool())
                .await?;
        assert!(
            boundary
                .as_deref()
                .is_some_and(|b| b.contains("\"Polygon\"") && b.contains("126.64")),
            "{backend}: the WKT boundary is kept as GeoJSON: {boundary:?}"
        );
        assert_eq!(
            admin.json(&["checkpoints", "import", &checkpoints])?["changed"],
            2
        );
        assert_eq!(admin.json(&["people", "import", &people])?["rows"], 3);
        let (lat, radius, cadence, tag): (f64, f64, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT latitude, radius_m, cadence, tag_uid FROM checkpoints WHERE code = 'H1-B1-EXIT'",
        )
        .fetch_one(store.raw_pool())
        .await?;
        assert_eq!(
            (lat, radius, cadence, tag.as_deref()),
            (45.77, 25.0, None, Some("04A1B2"))
        );

        // Again, every file: nothing changes, nothing new for devices to pull.
        let log = store.cursor().await?;
        for (what, file) in [
            ("grid", &cells),
            ("checkpoints", &checkpoints),
            ("people", &people),
        ] {
            let again = admin.json(&[what, "import", file])?;
            assert_eq!(again["changed"], 0, "{backend}: {what} again: {again}");
        }
        assert_eq!(
            store.cursor().await?,
            log,
            "{backend}: the change log is untouched"
        );

        // One bad row among good ones: nothing from the file applies, and each bad row is named.
        let bad = write(
            "bad.csv",
            "code,parent,level,name\nH1-C2,H1,2,Hongxing community\nH1-C2-K1,H1-C2,3,Compound 1\nH1-C2-K2,H1-C2,five,Compound 2\nH1-C9-K1,H1-C9,3,Orphan\n",
        )?;
        let out = admin.run(&["grid", "import", &bad])?;
        assert!(!out.status.success(), "{backend}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("2 bad rows; nothing was imported"), "{err}");
        assert!(err.contains("line 4, column level: \"five\""), "{err}");
        assert!(
            err.contains("line 5, column parent: H1-C9 is neither in this file nor in the grid"),
            "{err}"
        );
        // The same in Chinese, where the admin reads it: every part worded, codes as given.
        let out = admin.run_in("zh-CN", &["grid", "import", &bad])?;
        assert!(!out.status.success(), "{backend}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("错误：共 2 处有误，未导入任何内容：\n"),
            "{err}"
        );
        assert!(
            err.contains("  第 4 行，level 列：「five」：层级应为 1（街道）到 4（楼栋）\n"),
            "{err}"
        );
        assert!(
            err.contains("  第 5 行，parent 列：H1-C9 既不在本文件中，也不在网格中"),
            "{err}"
        );
        assert!(!err.contains("line"), "no English left: {err}");
        assert_eq!(
            store.stats(0).await?.grid_cells,
            5,
            "{backend}: H1-C2 was not applied"
        );

        // A cell cannot move under another parent by import.
        let moved = write(
            "moved.csv",
            "code,parent,level,name\nH1-C1-K1,H1,2,Compound 1\n",
        )?;
        let out = admin.run(&["grid", "import", &moved])?;
        assert!(String::from_utf8_lossy(&out.stderr).contains("moving a cell is not supported"));

        // Assignments by hand.
        assert_eq!(
            admin.json(&["assign", "--user", "liu.yang", "--cell", "H1-C1-K1-B1"])?["changed"],
            1
        );
        assert_eq!(
            admin.json(&[
                "assign",
                "--user",
                "liu.yang",
                "--cell",
                "H1-C1-K1-B1",
                "--remove"
            ])?["changed"],
            1
        );
        let out = admin.run(&["assign", "--user", "nobody", "--cell", "H1"])?;
        assert!(String::from_utf8_lossy(&out.stderr).contains("user nobody does not exist"));

        // Retire a compound: its subtree and checkpoints, once; devices get the retired cells,
        // and the person assigned the compound loses it from their scope.
        let log = store.cursor().await?;
        assert_eq!(admin.retire("H1-C1-K1")?, (3, 2), "{backend}");
        assert_eq!(
            store.cursor().await?,
            log + 3 + 1,
            "{backend}: three retired cells to pull, and a revoke"
        );
        let revoke: (String, String) = sqlx::query_as(
            "SELECT kind, audience FROM changes WHERE seq = (SELECT MAX(seq) FROM changes)",
        )
        .fetch_one(store.raw_pool())
        .await?;
        assert_eq!(revoke.0, "scope", "{backend}");
        assert!(revoke.1.starts_with("user:"), "{backend}: {revoke:?}");
        assert_eq!(admin.retire("H1-C1-K1")?, (0, 0), "{backend}");
        let out = admin.run(&["people", "import", &people])?;
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("line 2, column cells: H1-C1-K1 is not a live cell of the grid"),
            "{backend}"
        );
        // History stays: the rows are there, marked.
        let live: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM grid_cells WHERE retired_at IS NULL")
                .fetch_one(store.raw_pool())
                .await?;
        assert_eq!(
            (store.stats(0).await?.grid_cells, live),
            (5, 2),
            "{backend}"
        );
        db.cleanup().await;
    }
    Ok(())
}

/// A unit register headed in Chinese, as a district keeps it.
const UNITS: &str = "编码,网格,类型,名称,地址,责任人,联系电话,风险等级,四个能力自评日期,检查点
U-1,H1-C1-K1-B1,出租房屋,幸福公寓,安国街 8 号,刘洋,13900000000,中,2026-11-02,H1-B1-EXIT
U-2,H1-C1-K1,school,安国小学,安国街 20 号,周明,,low,,H1-K1-LANE
";

/// `admin units import | list | show` through the real binary on both backends: Chinese
/// headers, errors that name the column as the file does (in the run's language), `--check`,
/// a repeat import that changes nothing, and the unit's file.
#[tokio::test]
async fn the_unit_register_imports_through_the_command_line() -> anyhow::Result<()> {
    for db in test_databases().await {
        let backend = db.backend;
        let setup = Setup::new(db.url.clone()).await?;
        let (store, admin) = (&setup.store, setup.admin());
        let write = |name: &str, text: &str| setup.write(name, text);
        setup.import_grid()?;

        // A bad date and a checkpoint outside the unit's cell: refused in Chinese, naming the
        // columns as the file heads them; nothing written.
        let bad = write(
            "bad.csv",
            &UNITS
                .replace("2026-11-02", "2026/11/02")
                .replace("H1-K1-LANE", "H1-B1-EXIT;H1-NOPE"),
        )?;
        let out = admin.run_in("zh-CN", &["units", "import", &bad])?;
        assert!(!out.status.success(), "{backend}");
        let said = String::from_utf8(out.stderr)?;
        assert!(
            said.contains(
                "第 2 行，四个能力自评日期 列：「2026/11/02」：日期应写成 2026-11-20 这样的格式"
            ),
            "{backend}: {said}"
        );
        assert!(
            said.contains("第 3 行，检查点 列：检查点 H1-NOPE 不存在"),
            "{backend}: {said}"
        );
        assert!(store.units(None).await?.is_empty(), "{backend}");

        let good = write("units.csv", UNITS)?;
        let checked = admin.json(&["units", "import", &good, "--check"])?;
        assert_eq!(
            (checked["rows"].as_u64(), checked["changed"].as_u64()),
            (Some(2), Some(0))
        );
        assert!(
            store.units(None).await?.is_empty(),
            "{backend}: --check writes nothing"
        );
        assert_eq!(
            admin.json(&["units", "import", &good])?["changed"],
            2,
            "{backend}"
        );
        let cursor = store.cursor().await?;
        assert_eq!(
            admin.json(&["units", "import", &good])?["changed"],
            0,
            "{backend}"
        );
        assert_eq!(
            store.cursor().await?,
            cursor,
            "{backend}: a repeat import logs nothing"
        );

        let listed = admin.json(&["units", "list", "--cell", "H1-C1-K1-B1"])?;
        assert_eq!(
            listed.as_array().map(Vec::len),
            Some(1),
            "{backend}: {listed}"
        );
        assert_eq!(
            (
                listed[0]["kind"].as_str(),
                listed[0]["risk"].as_str(),
                listed[0]["self_check_date"].as_str()
            ),
            (Some("rental_housing"), Some("medium"), Some("2026-11-02")),
            "{backend}"
        );
        let shown = admin.run_in("zh-CN", &["units", "show", "U-2"])?;
        let shown = String::from_utf8(shown.stdout)?;
        assert!(
            shown.contains("类型          学校，低风险"),
            "{backend}: {shown}"
        );
        assert!(
            shown.contains("责任人        周明，电话 无"),
            "{backend}: {shown}"
        );
        let missing = admin.run(&["units", "show", "U-9"])?;
        assert!(
            String::from_utf8(missing.stderr)?.contains("key unit U-9 does not exist"),
            "{backend}"
        );
    }
    Ok(())
}

/// The checkpoints ingest looks up are kept in memory (store/sql/checkpoint_cache.rs). Grid
/// edits must still reach them: this store's own at once, those of a `patrolsync` command run
/// beside it (another process, as another node would be) within about a second. On both
/// backends: the grid's version is read from each one's change log.
#[tokio::test]
async fn grid_edits_from_another_process_reach_the_checkpoints_ingest_looks_up()
-> anyhow::Result<()> {
    use patrolsync_server::store::GridStore;

    for db in test_databases().await {
        let backend = db.backend;
        let setup = Setup::new(db.url.clone()).await?;
        let (store, admin) = (&setup.store, setup.admin());
        let write = |name: &str, text: &str| setup.write(name, text);
        setup.import_grid()?;
        let exit = vec!["H1-B1-EXIT".to_owned()];
        let lane = vec!["H1-K1-LANE".to_owned()];
        // Looked up (and so kept) as a check-in at each would look them up.
        let at_exit = store.checkpoints(&exit).await?;
        assert_eq!(at_exit.len(), 1, "{backend}");
        assert!(at_exit[0].cell_path.ends_with("/H1-C1-K1-B1/"), "{backend}");
        assert!(!store.checkpoints(&lane).await?[0].retired, "{backend}");

        // Moved to building 2 by a re-import in another process.
        let moved = CHECKPOINTS.replace(r#""cell": "H1-C1-K1-B1""#, r#""cell": "H1-C1-K1-B2""#);
        assert_ne!(moved, CHECKPOINTS);
        assert_eq!(
            admin.json(&["checkpoints", "import", &write("moved.geojson", &moved)?])?["changed"],
            1
        );
        let found = eventually(store, &exit, |cp| cp.cell_path.ends_with("/H1-C1-K1-B2/")).await?;
        assert!(
            found,
            "{backend}: the move made by another process was never seen"
        );

        // Retired by this store: seen at once, without waiting for the version to be read.
        store.retire_cell("H1-C1-K1-B2", 1_800_000_000_000).await?;
        assert!(store.checkpoints(&exit).await?[0].retired, "{backend}");

        // Retired by `patrolsync admin grid retire` in another process.
        assert_eq!(admin.retire("H1-C1-K1")?, (2, 1), "{backend}");
        let found = eventually(store, &lane, |cp| cp.retired).await?;
        assert!(
            found,
            "{backend}: the retirement made by another process was never seen"
        );

        // A checkpoint added under the retired compound is live: an import that checked the
        // cell before the retirement committed writes it so (the store does not look at
        // retirement). Retiring the compound again retires it, though no cell is newly
        // retired, and the edit still reaches the cache.
        store
            .upsert_grid(
                &[],
                &[patrolsync_server::store::NewCheckpoint {
                    code: "H1-K1-GATE".into(),
                    cell: "H1-C1-K1".into(),
                    name: "Gate".into(),
                    tag_uid: None,
                    position: None,
                    radius_m: 30.0,
                    cadence: None,
                }],
                1_800_000_000_000,
            )
            .await?;
        let gate = vec!["H1-K1-GATE".to_owned()];
        assert!(!store.checkpoints(&gate).await?[0].retired, "{backend}");
        assert_eq!(admin.retire("H1-C1-K1")?, (0, 1), "{backend}");
        let found = eventually(store, &gate, |cp| cp.retired).await?;
        assert!(
            found,
            "{backend}: a checkpoint retired under a retired cell was never seen"
        );

        // An unknown code is absent, before and after the cache is warm.
        assert!(store.checkpoints(&["NO-SUCH".to_owned()]).await?.is_empty());
        db.cleanup().await;
    }
    Ok(())
}

/// Whether the one checkpoint `codes` names comes to satisfy `seen` within 10 s (the cache
/// reads the grid's version every second).
async fn eventually(
    store: &SqlStore,
    codes: &[String],
    seen: impl Fn(&patrolsync_server::store::CheckpointRef) -> bool,
) -> anyhow::Result<bool> {
    use patrolsync_server::store::GridStore;

    for _ in 0..200 {
        if store.checkpoints(codes).await?.first().is_some_and(&seen) {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(false)
}
