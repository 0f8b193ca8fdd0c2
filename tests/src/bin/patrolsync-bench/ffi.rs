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
    let mut by_crate: std::collections::BTreeMap<String, u64> = Default::default();
    let mut total = 0u64;
    for line in String::from_utf8_lossy(&nm.stdout).lines() {
        let mut parts = line.splitn(4, ' ');
        let (Some(_addr), Some(size), Some(kind), Some(name)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // Code only (text symbols).
        if !matches!(kind, "t" | "T") {
            continue;
        }
        let Ok(size) = u64::from_str_radix(size, 16) else {
            continue;
        };
        total += size;
        *by_crate.entry(owner(name)).or_default() += size;
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

/// Which crate a demangled symbol's code belongs to: the first path segment that is not the
/// standard library's (a generic instantiated for a crate's type counts as that crate's).
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
    let mut rest = symbol;
    while let Some(i) = rest.find("::") {
        let head = &rest[..i];
        let name: String = head
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if !name.is_empty() && !matches!(name.as_str(), "core" | "alloc" | "std" | "impl") {
            return name;
        }
        rest = &rest[i + 2..];
    }
    "std".into()
}

/// The human summary.
pub fn summary(r: &Value) -> String {
    let us = &r["record_checkin_us"];
    let lib = &r["library"];
    let mut text = format!(
        "record_checkin, {} calls per side in blocks of {}\n  Python binding  {:.1} µs/call (median block)\n  native Rust     {:.1} µs/call\n  ratio           {:.2}× (target ≤ 1.2×)\n\nlibpatrolsync_ffi.so (release): {:.1} MiB built, {:.1} MiB stripped; code by crate:\n",
        r["calls_per_side"],
        r["block"],
        us["python_binding_median"].as_f64().unwrap_or(f64::NAN),
        us["native_rust_median"].as_f64().unwrap_or(f64::NAN),
        r["ratio_python_to_native"].as_f64().unwrap_or(f64::NAN),
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
