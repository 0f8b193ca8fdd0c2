//! Randomized convergence under changing scopes (`patrolsync_tests::converge`): seeded
//! schedules of device work, syncs in any order, admin assignments, removals, retirements and
//! server restarts; at the end every device holds what the server says it should and every
//! check-in is stored once. Each run takes a few seeds from a base that changes from run to run
//! (printed), so CI explores new schedules every time; a failure prints its seed and a shrunk
//! schedule. `PATROLSYNC_CONVERGE_SEED=N` replays one seed, `PATROLSYNC_CONVERGE_SEEDS=K` runs
//! K seeds; `patrolsync-bench converge` runs hundreds.

use patrolsync_server::testkit::{ENV_TEST_DATABASE_URL, TestDatabase, fresh_postgres};
use patrolsync_tests::converge::{Action, run, schedule, shrink};

/// Steps per schedule.
const STEPS: usize = 60;
/// Seeds per backend in an ordinary test run.
const SEEDS: u64 = 6;

fn seeds() -> (u64, u64) {
    let count = std::env::var("PATROLSYNC_CONVERGE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok());
    if let Some(seed) = std::env::var("PATROLSYNC_CONVERGE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return (seed, count.unwrap_or(1));
    }
    // A new base each run: which schedules run is not what the test asserts.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() % 1_000_000 * 1_000)
        .unwrap_or(0);
    (base, count.unwrap_or(SEEDS))
}

async fn database(backend: &str) -> anyhow::Result<TestDatabase> {
    Ok(match backend {
        "postgres" => fresh_postgres(&std::env::var(ENV_TEST_DATABASE_URL)?).await,
        _ => TestDatabase::sqlite(),
    })
}

async fn check(backend: &str) -> anyhow::Result<()> {
    let (base, count) = seeds();
    eprintln!("convergence on {backend}: seeds {base}..{}", base + count);
    let mut seen = patrolsync_tests::converge::Outcome::default();
    for seed in base..base + count {
        let actions = schedule(seed, STEPS);
        let result = run(database(backend).await?, &actions).await?;
        if let Ok(o) = &result {
            seen.check_ins += o.check_ins;
            seen.hazards += o.hazards;
            seen.scope_changes += o.scope_changes;
            seen.admin_refusals += o.admin_refusals;
        }
        if let Err(failure) = result {
            eprintln!("seed {seed} failed on {backend}: {failure}; shrinking");
            let (short, why) =
                shrink(async || database(backend).await, actions, failure, 80).await?;
            let steps: Vec<String> = short.iter().map(Action::to_string).collect();
            panic!(
                "seed {seed} did not converge on {backend}: {why}\n\
                 replay: PATROLSYNC_CONVERGE_SEED={seed} cargo test -p patrolsync-tests --test convergence\n\
                 shrunk to {} of {STEPS} steps:\n  {}",
                short.len(),
                steps.join("\n  ")
            );
        }
    }
    eprintln!("convergence on {backend}: {count} seeds converged; {seen:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_schedules_converge_on_sqlite() -> anyhow::Result<()> {
    check("sqlite").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_schedules_converge_on_postgres() -> anyhow::Result<()> {
    if std::env::var(ENV_TEST_DATABASE_URL).is_err() {
        patrolsync_server::testkit::skip(
            "PostgreSQL",
            &format!("{ENV_TEST_DATABASE_URL} is not set"),
        );
        return Ok(());
    }
    check("postgres").await
}
