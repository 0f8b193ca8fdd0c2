//! `patrolsync-bench converge`: the randomized convergence check of `patrolsync_tests::converge`
//! over many seeds (the test suite runs a few per backend each time); each failure is shrunk
//! and reported with its seed. Exit status 1 if any seed did not converge.

use serde_json::{Value, json};

use patrolsync_server::testkit::{TestDatabase, fresh_postgres};
use patrolsync_tests::converge::{Action, Outcome, run, schedule, shrink};

/// Options of `patrolsync-bench converge`.
#[derive(clap::Args, Debug)]
pub struct ConvergeArgs {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// How many seeds, from --seed on.
    #[arg(long, default_value_t = 200)]
    pub seeds: u64,
    /// Steps per schedule.
    #[arg(long, default_value_t = 60)]
    pub steps: usize,
}

/// Runs the seeds on `backend` (PostgreSQL next to `postgres_url`).
pub async fn run_seeds(
    a: &ConvergeArgs,
    backend: &str,
    postgres_url: &str,
) -> anyhow::Result<Value> {
    let database = async || -> anyhow::Result<TestDatabase> {
        Ok(if backend == "postgres" {
            fresh_postgres(postgres_url).await
        } else {
            TestDatabase::sqlite()
        })
    };
    let started = std::time::Instant::now();
    let mut seen = Outcome::default();
    let mut failures = Vec::new();
    for seed in a.seed..a.seed + a.seeds {
        let actions = schedule(seed, a.steps);
        match run(database().await?, &actions).await? {
            Ok(o) => {
                seen.check_ins += o.check_ins;
                seen.hazards += o.hazards;
                seen.scope_changes += o.scope_changes;
                seen.admin_refusals += o.admin_refusals;
            }
            Err(f) => {
                eprintln!("seed {seed}: {f}; shrinking");
                let (short, why) = shrink(database, actions, f, 80).await?;
                failures.push(json!({
                    "seed": seed,
                    "failure": why.to_string(),
                    "shrunk": short.iter().map(Action::to_string).collect::<Vec<_>>(),
                }));
            }
        }
        let done = seed - a.seed + 1;
        if done.is_multiple_of(20) {
            eprintln!(
                "{done}/{} seeds, {} failed, {:.0} s",
                a.seeds,
                failures.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(json!({
        "first_seed": a.seed,
        "seeds": a.seeds,
        "steps": a.steps,
        "converged": a.seeds - failures.len() as u64,
        "failures": failures,
        "seconds": started.elapsed().as_secs_f64(),
        "check_ins": seen.check_ins,
        "hazards": seen.hazards,
        "scope_changes": seen.scope_changes,
        "admin_refusals": seen.admin_refusals,
    }))
}

/// A short text summary.
pub fn summary(r: &Value) -> String {
    let mut s = format!(
        "convergence on {}: {} of {} seeds converged (from {}, {} steps each) in {:.0} s; \
         {} check-ins, {} hazards, {} grants and revokes seen by devices, {} admin actions refused\n",
        r["backend"].as_str().unwrap_or(""),
        r["converged"],
        r["seeds"],
        r["first_seed"],
        r["steps"],
        r["seconds"].as_f64().unwrap_or(0.0),
        r["check_ins"],
        r["hazards"],
        r["scope_changes"],
        r["admin_refusals"],
    );
    for f in r["failures"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "seed {}: {}\n  {}\n",
            f["seed"],
            f["failure"].as_str().unwrap_or(""),
            f["shrunk"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    s
}
