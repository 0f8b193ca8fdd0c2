//! Mode `table`: the README's results table, rendered from the committed reports
//! (`sqlite.json`, `postgres.json`, `scale.json` in --out), so the README says what the reports
//! say. `--write FILE` replaces the table between its markers; `--check FILE` fails when the
//! file's table is not the rendering (the test suite runs it on README.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

/// What the table mode does with it.
#[derive(clap::Args, Debug)]
pub(crate) struct TableArgs {
    /// Replace the table in this file (between the markers) with the rendering.
    #[arg(long, conflicts_with = "check")]
    write: Option<PathBuf>,
    /// Fail unless this file's table is the rendering.
    #[arg(long)]
    check: Option<PathBuf>,
}

const START: &str = "<!-- bench-table: start (patrolsync-bench table --write README.md) -->";
const END: &str = "<!-- bench-table: end -->";

fn read(dir: &Path, name: &str) -> anyhow::Result<Value> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// `12345.6` → `12,346`.
fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

/// One backend's cell for each row.
fn column(r: &Value) -> Vec<String> {
    let w = &r["workloads"];
    let i = &w["ingest"];
    let steady = |rate: f64| {
        w["steady"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|l| num(&l["offered_per_s"]) == rate)
            .map(|l| {
                // Milliseconds while they are few, seconds once acks fall behind.
                let (unit, scale) = if num(&l["ack_ms"]["max"]) >= 1000.0 {
                    ("s", 1000.0)
                } else {
                    ("ms", 1.0)
                };
                // The writers' time per second (summed over them: SQLite has one writer, so
                // 1.0 is saturated; PostgreSQL four), where the run measured it.
                let busy = l["writers"]["busy_per_s"]
                    .as_f64()
                    .map(|b| format!("; writer time {b:.2} s/s"))
                    .unwrap_or_default();
                format!(
                    "{:.1} / **{:.1}** / {:.1} {unit}; {:.0} µs CPU each{busy}",
                    num(&l["ack_ms"]["p50"]) / scale,
                    num(&l["ack_ms"]["p99"]) / scale,
                    num(&l["ack_ms"]["max"]) / scale,
                    num(&l["server_cpu_us_per_check_in"]),
                )
            })
            .unwrap_or_else(|| "not run".into())
    };
    let bytes: Vec<String> = w["wire_cost"]["batches"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| format!("{}: {:.0} B", b["batch"], num(&b["bytes_per_check_in"])))
        .collect();
    let p = &w["photos"];
    let b = &w["backlog"];
    let boot = |key: &str| {
        let x = &w["bootstrap"][key];
        if x.is_null() {
            "not run".into()
        } else {
            format!(
                "{} changes in **{:.1} s**, {:.1} MB",
                thousands(num(&x["changes"])),
                num(&x["seconds"]),
                num(&x["bytes"]) / 1e6
            )
        }
    };
    let a = &w["admin_reads"];
    let admin: Vec<String> = ["/metrics", "/api/summary", "/api/devices?limit=50"]
        .iter()
        .map(|path| {
            format!(
                "{:.0} ms (empty {:.0})",
                num(&a["loaded"]["ms"][path]["p50"]),
                num(&a["baseline"]["ms"][path]["p50"])
            )
        })
        .collect();
    vec![
        format!(
            "{}Z, `{}`",
            r["date"]
                .as_str()
                .unwrap_or("")
                .get(..16)
                .unwrap_or("")
                .replace('T', " "),
            r["commit"].as_str().unwrap_or("")
        ),
        format!(
            "{} (baseline {}): **ratio {:.2}**",
            thousands(num(&i["check_ins_per_s"])),
            thousands(num(&i["baseline"]["check_ins_per_s"])),
            num(&i["ratio"])
        ),
        format!(
            "{:.1} / {:.1} / {:.1} s",
            num(&i["ack_ms"]["p50"]) / 1000.0,
            num(&i["ack_ms"]["p99"]) / 1000.0,
            num(&i["ack_ms"]["max"]) / 1000.0
        ),
        format!("{:.0} µs", num(&i["server_cpu_ms_per_1000_check_ins"])),
        steady(1000.0),
        steady(5000.0),
        format!(
            "{}; JSON {} B",
            bytes.join(", "),
            w["wire_cost"]["baseline"]["bytes"]
        ),
        format!(
            "{:.0} MB/s (raw quinn {:.0}): **ratio {:.2}**",
            num(&p["mb_per_s"]),
            num(&p["baseline"]["mb_per_s"]),
            num(&p["ratio"])
        ),
        format!(
            "records {:.1} s ({}/s, {:.2}× one raw device), photos {:.1} s",
            num(&b["records_seconds"]),
            thousands(num(&b["check_ins_per_s"])),
            num(&b["ratio_to_single_device"]),
            num(&b["photos_seconds"])
        ),
        boot("assigned_after"),
        boot("assigned_before"),
        format!("**{:.1} KiB** each", num(&w["idle"]["kib_per_connection"])),
        format!(
            "p50 {:.0} ms, **p99 {:.0} ms**",
            num(&w["fan_out"]["ms_until_pulled"]["p50"]),
            num(&w["fan_out"]["ms_until_pulled"]["p99"])
        ),
        if a.is_null() {
            "not run".into()
        } else {
            format!(
                "{} devices, {} checkpoints: {}",
                thousands(num(&a["loaded"]["devices"])),
                thousands(num(&a["loaded"]["checkpoints"])),
                admin.join("; ")
            )
        },
        format!("{:.0} MiB", num(&r["server"]["peak_rss_kib"]) / 1024.0),
    ]
}

/// The table, rendered from the reports in `dir`.
pub(super) fn render(dir: &Path) -> anyhow::Result<String> {
    let (sqlite, postgres) = (read(dir, "sqlite.json")?, read(dir, "postgres.json")?);
    // The sizes in the labels are the runs' own (both backends run the same sizes).
    let w = &sqlite["workloads"];
    let sized = |v: &Value| thousands(num(v));
    let ingest = format!(
        "1 ingest, check-ins/s ({} devices, batches of 50, all at once)",
        sized(&w["ingest"]["devices"])
    );
    let flood = format!(
        "1 ack p50 / p99 / max, all {} offered at once",
        sized(&w["ingest"]["check_ins"])
    );
    let photos = format!(
        "3 photos, {} × {:.0} MB at once",
        w["photos"]["devices"],
        num(&w["photos"]["photo_bytes"]) / 1e6
    );
    let backlog = format!(
        "4 backlog, {} ops + {} photos",
        sized(&w["backlog"]["ops"]),
        w["backlog"]["photos"]
    );
    let idle = format!(
        "5 idle, {} connections: server memory",
        sized(&w["idle"]["connections"])
    );
    let fan_out = format!(
        "6 fan-out, {} devices: hazard pulled",
        sized(&w["fan_out"]["devices"])
    );
    let steady =
        |rate: &str| format!("1 steady {rate} check-ins/s, one per push: ack p50 / p99 / max");
    let (steady_1k, steady_5k) = (steady("1,000"), steady("5,000"));
    let rows: [(&str, &str); 15] = [
        ("date, commit", ""),
        (&ingest, "ratio ≥ 0.5"),
        (&flood, ""),
        (
            "1 server CPU per check-in (that flood)",
            "≤ 25 µs on SQLite",
        ),
        (&steady_1k, "p99 ≤ 100 ms"),
        (&steady_5k, "p99 ≤ 100 ms"),
        ("2 UDP bytes per check-in, by batch", "≤ 150 B at 50"),
        (&photos, "ratio ≥ 0.75"),
        (&backlog, ""),
        (
            "4 city bootstrap, manager assigned after the grid was filled in",
            "≤ 1.5× SQLite",
        ),
        (
            "4 city bootstrap, manager assigned to the streets first",
            "≤ 1.5× SQLite",
        ),
        (&idle, "≤ 64 KiB"),
        (&fan_out, "p99 ≤ 1 s"),
        (
            "7 admin reads, p50: /metrics; /api/summary; /api/devices first page",
            "≤ 200 ms",
        ),
        ("server peak RSS", ""),
    ];
    let (s, p) = (column(&sqlite), column(&postgres));
    let mut out = String::from("| | SQLite | PostgreSQL | target |\n|---|---|---|---|\n");
    for (k, (name, target)) in rows.iter().enumerate() {
        out += &format!("| {name} | {} | {} | {target} |\n", s[k], p[k]);
    }
    if let Ok(scale) = read(dir, "scale.json") {
        out += &format!(
            "| two nodes on one PostgreSQL, {} devices (`scale.json`, `{}`) | | {} check-ins/s against one node's {}: **{:.2}×** | |\n",
            thousands(num(&scale["devices"])),
            scale["commit"].as_str().unwrap_or(""),
            thousands(num(&scale["two_nodes"]["check_ins_per_s"])),
            thousands(num(&scale["one_node"]["check_ins_per_s"])),
            num(&scale["ratio_two_to_one"]),
        );
    }
    Ok(out)
}

/// The file's text with the table between the markers replaced by `table`.
fn spliced(text: &str, table: &str) -> anyhow::Result<String> {
    let start = text
        .find(START)
        .with_context(|| format!("no marker {START}"))?;
    let end = text.find(END).with_context(|| format!("no marker {END}"))?;
    anyhow::ensure!(start < end, "the table's markers are out of order");
    Ok(format!(
        "{}{START}\n{table}{}",
        &text[..start],
        &text[end..]
    ))
}

pub(super) fn run(dir: &Path, a: &TableArgs) -> anyhow::Result<()> {
    let table = render(dir)?;
    match (&a.write, &a.check) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file)?;
            std::fs::write(file, spliced(&text, &table)?)?;
            eprintln!("{}: table written", file.display());
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)?;
            anyhow::ensure!(
                spliced(&text, &table)? == text,
                "{}'s results table is not the one {} renders: run patrolsync-bench table --write {}",
                file.display(),
                dir.display(),
                file.display()
            );
        }
        (None, None) => print!("{table}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(22205.2), "22,205");
        assert_eq!(thousands(1234567.0), "1,234,567");
        assert_eq!(thousands(-1234.0), "-1,234");
    }

    #[test]
    fn the_table_replaces_only_what_is_between_the_markers() -> anyhow::Result<()> {
        let text = format!("before\n{START}\nold table\n{END}\nafter\n");
        assert_eq!(
            spliced(&text, "| new |\n")?,
            format!("before\n{START}\n| new |\n{END}\nafter\n")
        );
        assert!(spliced("no markers", "x").is_err());
        Ok(())
    }
}
