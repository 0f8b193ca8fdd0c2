//! Mode `scale`: the ingest flood on one node, then on two nodes sharing one PostgreSQL (half
//! the fleet connected to each), with fresh devices each time: how ingest grows with a node.
//! On one machine both nodes, PostgreSQL and the simulated fleet share its cores, so the second
//! node shows what the database and the machine leave for it, not what a second machine adds.

use fleet::Fleet;
use patrolsync_proto::Role;
use serde_json::{Value, json};
use server::ServerProc;

use super::*;

/// Sizes of the scale run.
#[derive(clap::Args, Debug)]
pub(crate) struct ScaleArgs {
    /// Devices pushing at once (in each of the two rounds).
    #[arg(long, default_value_t = 1000)]
    devices: usize,
    /// Batches of 50 check-ins each device pushes.
    #[arg(long, default_value_t = 4)]
    batches: usize,
}

/// One round's figures.
fn round(flood: &ingest::Flood, cpu_ms: &[u64]) -> Value {
    json!({
        "check_ins": flood.applied,
        "seconds": flood.seconds,
        "check_ins_per_s": flood.applied as f64 / flood.seconds,
        "ack_ms": {
            "p50": percentile(&flood.ack_ms, 0.5),
            "p99": percentile(&flood.ack_ms, 0.99),
            "max": flood.ack_ms.last().copied().unwrap_or(0.0),
        },
        "server_cpu_ms_per_1000_check_ins": cpu_ms.iter().map(|&ms| ms as f64 * 1000.0 / flood.applied as f64).collect::<Vec<_>>(),
    })
}

pub(super) async fn run(a: &ScaleArgs, postgres_url: &str) -> anyhow::Result<Value> {
    let db = patrolsync_server::testkit::fresh_postgres(postgres_url).await;
    let dir = tempfile::tempdir()?;
    let result = async {
        let mut one = ServerProc::start(&dir.path().join("a"), db.url.clone()).await?;
        patrolsync_server::seed::seed_demo(one.store.as_ref()).await?;
        let ca = one.ca()?;
        let fleet_a = Fleet::new(one.addr, ca.clone(), fleet::SOCKETS)?;
        let codes = one
            .codes("scale", 2 * a.devices, Role::Patroller, &["S1".into()])
            .await?;
        let (first, second) = codes.split_at(a.devices);

        let mut devices = enroll_fleet(&fleet_a, 0, first.to_vec(), 32).await?;
        let cpu = one.cpu_ms();
        let flood = ingest::flood(&mut devices, a.batches).await?;
        let one_node = round(&flood, &[one.cpu_ms() - cpu]);
        for d in devices.drain(..) {
            d.conn.close(0u32.into(), b"done");
        }
        eprintln!("one node done");

        // The second node adopts the cluster's CA from the database.
        let mut two = ServerProc::start(&dir.path().join("b"), db.url.clone()).await?;
        anyhow::ensure!(
            two.ca()? == ca,
            "the second node did not adopt the cluster's CA"
        );
        let fleet_b = Fleet::new(two.addr, ca, fleet::SOCKETS)?;
        let half = a.devices / 2;
        let mut devices = enroll_fleet(&fleet_a, a.devices, second[..half].to_vec(), 32).await?;
        devices
            .extend(enroll_fleet(&fleet_b, a.devices + half, second[half..].to_vec(), 32).await?);
        let (cpu_a, cpu_b) = (one.cpu_ms(), two.cpu_ms());
        let flood = ingest::flood(&mut devices, a.batches).await?;
        let two_nodes = round(&flood, &[one.cpu_ms() - cpu_a, two.cpu_ms() - cpu_b]);
        for d in devices.drain(..) {
            d.conn.close(0u32.into(), b"done");
        }
        two.stop()?;
        one.stop()?;
        let ratio = two_nodes["check_ins_per_s"].as_f64().unwrap_or(0.0)
            / one_node["check_ins_per_s"].as_f64().unwrap_or(1.0);
        anyhow::Ok(json!({
            "devices": a.devices,
            "batch": 50,
            "batches": a.batches,
            "one_node": one_node,
            "two_nodes": two_nodes,
            "ratio_two_to_one": ratio,
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        }))
    }
    .await;
    db.cleanup().await;
    result
}

pub(super) fn summary(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let line = |name: &str, x: &Value| {
        format!(
            "{name}: {:.0} check-ins/s, ack p50 {:.0} ms, p99 {:.0} ms; server CPU per 1,000 check-ins {} ms\n",
            f(&x["check_ins_per_s"]),
            f(&x["ack_ms"]["p50"]),
            f(&x["ack_ms"]["p99"]),
            x["server_cpu_ms_per_1000_check_ins"]
                .as_array()
                .map(|a| a
                    .iter()
                    .map(|v| format!("{:.0}", f(v)))
                    .collect::<Vec<_>>()
                    .join(" + "))
                .unwrap_or_default(),
        )
    };
    format!(
        "patrolsync-bench scale on postgres ({}, {} build, {} cores), commit {}\n\n\
         {} devices × {} batches of 50, fresh devices per round\n{}{}two nodes / one node: {:.2}\n",
        r["date"].as_str().unwrap_or(""),
        r["profile"].as_str().unwrap_or(""),
        r["cores"],
        r["commit"].as_str().unwrap_or(""),
        r["devices"],
        r["batches"],
        line("one node ", &r["one_node"]),
        line("two nodes", &r["two_nodes"]),
        f(&r["ratio_two_to_one"]),
    )
}
