//! `patrolsync-bench ffi`: what the binding costs. `record_checkin` through the Python binding
//! against the same calls made natively by the Rust SDK in the same process on the same store,
//! alternating blocks so both see the same disk; and the shipped library's size, stripped, with
//! what dominates it. Run through `client-sdk/ffi/tests/bench-ffi`, which builds the library
//! and the bindings first.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context;
use serde_json::{Value, json};

use patrolsync_proto::Role;
use patrolsync_server::testkit::TestDatabase;
use patrolsync_tests::Harness;

/// Options of `patrolsync-bench ffi`.
#[derive(clap::Args, Debug)]
pub struct FfiArgs {
    /// The generated Python bindings, with the library built with the `bench` feature beside.
    #[arg(long)]
    pub bindings: PathBuf,
    /// The library as an app ships it (release, no `bench` feature), for its size.
    #[arg(long)]
    pub library: PathBuf,
    /// The Python side (client-sdk/ffi/tests/bench_record.py).
    #[arg(long)]
    pub script: PathBuf,
    /// Check-ins per side.
    #[arg(long, default_value_t = 2000)]
    pub calls: usize,
    /// Check-ins per block; the sides alternate block by block.
    #[arg(long, default_value_t = 100)]
    pub block: usize,
}

/// Runs the comparison and sizes the library.
pub async fn run(a: &FfiArgs) -> anyhow::Result<Value> {
    let h = Harness::start(TestDatabase::sqlite()).await?;
    let code = h.enrollment("bench", Role::Patroller, &["S1-C1"]).await?;
    let state = tempfile::tempdir()?;
    let out = Command::new("python3")
        .arg(&a.script)
        .env("PYTHONPATH", &a.bindings)
        .env("BENCH_STATE", state.path())
        .env("BENCH_CODE", &code)
        .env("BENCH_CALLS", a.calls.to_string())
        .env("BENCH_BLOCK", a.block.to_string())
        .output()
        .context("python3")?;
    h.finish().await;
    anyhow::ensure!(
        out.status.success(),
        "the Python side failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let measured: Value = serde_json::from_slice(&out.stdout).context("its JSON")?;
    let per_call = |side: &str| -> anyhow::Result<Vec<f64>> {
        let blocks = measured[side].as_array().context("blocks")?;
        Ok(blocks
            .iter()
            .filter_map(Value::as_f64)
            .map(|ns| ns / a.block as f64 / 1000.0)
            .collect())
    };
    let (python, native) = (per_call("python_ns")?, per_call("native_ns")?);
    let (py_median, native_median) = (median(&python), median(&native));
    // Each Python block beside the native block run right after it: the disk's speed drifts
    // over a run, and a pair sees the same drift.
    let paired: Vec<f64> = python.iter().zip(&native).map(|(p, n)| p / n).collect();
    let us = |key: &str| measured[key].as_f64().map(|ns| ns / 1000.0);
    let size = library_size(&a.library)?;
    Ok(json!({
        "calls_per_side": python.len() * a.block,
        "block": a.block,
        "record_checkin_us": {
            "python_binding_median": py_median,
            "native_rust_median": native_median,
            "python_binding_blocks": python,
            "native_rust_blocks": native,
        },
        "ratio_python_to_native": py_median / native_median,
        "ratio_median_of_pairs": median(&paired),
        "binding_cost_us": {
            "lowering_a_check_in": us("lowering_ns"),
            "async_round_trip": us("async_round_trip_ns"),
            "async_ready_at_once": us("async_ready_at_once_ns"),
        },
        "library": size,
    }))
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The library's size as built and stripped, and the crates whose code takes the most of it
/// (symbol sizes from `nm`, attributed to the first crate named in each demangled symbol).
fn library_size(library: &std::path::Path) -> anyhow::Result<Value> {
    let built = std::fs::metadata(library)?.len();
    let stripped_path = tempfile::NamedTempFile::new()?.into_temp_path();
    let strip = Command::new("strip")
        .arg("--strip-all")
        .arg("-o")
        .arg(&stripped_path)
        .arg(library)
        .status()
        .context("strip")?;
    anyhow::ensure!(strip.success(), "strip failed");
    let stripped = std::fs::metadata(&stripped_path)?.len();
    let nm = Command::new("nm")
        .args(["-C", "-S", "--size-sort", "--defined-only"])
        .arg(library)
        .output()
        .context("nm")?;
    // Code only (text symbols): address, size, name.
    let text = String::from_utf8_lossy(&nm.stdout).into_owned();
    let symbols: Vec<(u64, u64, &str)> = text
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (addr, size, kind, name) =
                (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            matches!(kind, "t" | "T").then_some(())?;
            Some((
                u64::from_str_radix(addr, 16).ok()?,
                u64::from_str_radix(size, 16).ok()?,
                name,
            ))
        })
        .collect();
    // A C library compiled as one unit (SQLite's amalgamation, ring's C) lies in one stretch of
    // the text: its static functions, which carry no prefix, are charged by where they lie.
    let span = |prefix: &str| {
        let inside = symbols.iter().filter(|(_, _, n)| n.starts_with(prefix));
        let lo = inside.clone().map(|(a, _, _)| *a).min().unwrap_or(u64::MAX);
        let hi = inside.map(|(a, s, _)| a + s).max().unwrap_or(0);
        lo..hi
    };
    let (sqlite, ring) = (span("sqlite3"), span("ring_core"));
    let mut by_crate: std::collections::BTreeMap<String, u64> = Default::default();
    let mut total = 0u64;
    for &(addr, size, name) in &symbols {
        total += size;
        let crate_name = match owner(name) {
            c if c == "other C" && sqlite.contains(&addr) => "sqlite (C)".to_owned(),
            c if c == "other C" && ring.contains(&addr) => "ring (C/asm)".to_owned(),
            c => c,
        };
        *by_crate.entry(crate_name).or_default() += size;
    }
    let mut top: Vec<(String, u64)> = by_crate.into_iter().collect();
    top.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    top.truncate(12);
    Ok(json!({
        "built_bytes": built,
        "stripped_bytes": stripped,
        "code_bytes_in_symbols": total,
        "largest_by_crate": top.iter().map(|(c, s)| json!({"crate": c, "code_bytes": s})).collect::<Vec<_>>(),
    }))
}

/// Which crate a demangled symbol's code belongs to: the first path that does not start in the
/// standard library (so `core::ptr::drop_in_place<quinn_proto::…>` is quinn_proto's).
fn owner(symbol: &str) -> String {
    if !symbol.contains("::") {
        return if symbol.starts_with("sqlite3") {
            "sqlite (C)".into()
        } else if symbol.starts_with("ring_") || symbol.contains("_gcm_") {
            "ring (C/asm)".into()
        } else {
            "other C".into()
        };
    }
    let bytes = symbol.as_bytes();
    let mut start = None;
    for (i, &b) in bytes.iter().enumerate() {
        let ident = b.is_ascii_alphanumeric() || b == b'_';
        match (ident, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                start = None;
                // A path's first segment: followed by `::`, not preceded by one.
                let first = symbol[i..].starts_with("::") && !symbol[..s].ends_with("::");
                let name = &symbol[s..i];
                if first && !matches!(name, "core" | "alloc" | "std") {
                    return name.to_owned();
                }
            }
            _ => {}
        }
    }
    "std".into()
}

/// The human summary.
pub fn summary(r: &Value) -> String {
    let us = &r["record_checkin_us"];
    let lib = &r["library"];
    let mut text = format!(
        "record_checkin, {} calls per side in blocks of {}\n  Python binding  {:.1} µs/call (median block)\n  native Rust     {:.1} µs/call\n  ratio           {:.2}× (target ≤ 1.2×); median of paired blocks {:.2}×\n  the binding's own cost: lowering a check-in {:.1} µs, an async call doing nothing on the runtime {:.1} µs (of which the await of a call ready at once {:.1} µs)\n\nlibpatrolsync_ffi.so (release): {:.1} MiB built, {:.1} MiB stripped; code by crate:\n",
        r["calls_per_side"],
        r["block"],
        us["python_binding_median"].as_f64().unwrap_or(f64::NAN),
        us["native_rust_median"].as_f64().unwrap_or(f64::NAN),
        r["ratio_python_to_native"].as_f64().unwrap_or(f64::NAN),
        r["ratio_median_of_pairs"].as_f64().unwrap_or(f64::NAN),
        r["binding_cost_us"]["lowering_a_check_in"]
            .as_f64()
            .unwrap_or(f64::NAN),
        r["binding_cost_us"]["async_round_trip"]
            .as_f64()
            .unwrap_or(f64::NAN),
        r["binding_cost_us"]["async_ready_at_once"]
            .as_f64()
            .unwrap_or(f64::NAN),
        lib["built_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
        lib["stripped_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
    );
    let total = lib["code_bytes_in_symbols"].as_f64().unwrap_or(1.0);
    for c in lib["largest_by_crate"].as_array().into_iter().flatten() {
        let bytes = c["code_bytes"].as_f64().unwrap_or(0.0);
        text.push_str(&format!(
            "  {:<22} {:>8.0} KiB  {:>4.1} %\n",
            c["crate"].as_str().unwrap_or("?"),
            bytes / 1024.0,
            100.0 * bytes / total
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn code_is_charged_to_the_crate_it_was_instantiated_for() {
        assert_eq!(
            owner("quinn_proto::connection::Connection::poll"),
            "quinn_proto"
        );
        assert_eq!(
            owner("core::ptr::drop_in_place<quinn_proto::connection::Connection>"),
            "quinn_proto"
        );
        assert_eq!(
            owner("<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"),
            "std"
        );
        assert_eq!(
            owner("<sqlx_core::pool::Pool<DB> as core::clone::Clone>::clone"),
            "sqlx_core"
        );
        assert_eq!(owner("sqlite3VdbeExec"), "sqlite (C)");
    }
}
