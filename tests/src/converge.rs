//! The randomized convergence check: a seeded schedule of everything that moves data and scope
//! — check-ins, hazard reports, every transition, field edits, merges, syncs in any order,
//! admin assignments and removals, cell retirements, server restarts — run against a real
//! server with real SDK devices of every role. At the end every device syncs until nothing
//! moves, and then each device's view must equal what the server says it should hold, and
//! every check-in a device recorded must be stored exactly once (or refused, and listed as
//! refused on the device).
//!
//! A schedule is a pure function of its seed, and the failure of one is shrunk by taking out
//! the actions it fails without, so a failure prints its seed and a short schedule to replay.

use patrolsync_server::store::GridStore;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use patrolsync_proto::checkin::CheckInOutcome;
use patrolsync_proto::hazard::{Agency, EventKind, FieldValue, Handling, HazardCategory, Severity};
use patrolsync_proto::{HazardId, Role};
use patrolsync_sdk::{Client, NewCheckIn, NewHazard, Transition};
use patrolsync_server::testkit::TestDatabase;
use rand::{Rng, SeedableRng};

use crate::{Harness, device_view, server_view};

/// A device of the schedule.
struct DeviceSpec {
    name: &'static str,
    user: &'static str,
    role: Role,
    agency: Option<Agency>,
    /// Its user's cells at enrollment.
    cells: &'static [&'static str],
}

const fn spec(
    name: &'static str,
    user: &'static str,
    role: Role,
    agency: Option<Agency>,
    cells: &'static [&'static str],
) -> DeviceSpec {
    DeviceSpec {
        name,
        user,
        role,
        agency,
        cells,
    }
}

/// The devices.
const DEVICES: [DeviceSpec; 7] = [
    spec("p1", "pat1", Role::Patroller, None, &["S1-C1-K1"]),
    spec("p2", "pat2", Role::Patroller, None, &["S1-C1-K2"]),
    spec("p3", "pat3", Role::Patroller, None, &["S1-C2-K1"]),
    spec("m1", "mgr1", Role::GridManager, None, &["S1-C1"]),
    spec("m2", "mgr2", Role::GridManager, None, &["S1"]),
    spec(
        "fb",
        "brigade",
        Role::Agency,
        Some(Agency::FireBrigade),
        &["S1", "S2"],
    ),
    spec(
        "ps",
        "police",
        Role::Agency,
        Some(Agency::PoliceStation),
        &["S1", "S2"],
    ),
];

/// Users whose cells admin actions move (the agencies' scope is their hazards).
const ASSIGNABLE: usize = 5;
/// Cells admin actions assign and take away.
const ASSIGN_CELLS: [&str; 8] = [
    "S1-C1-K1", "S1-C1-K2", "S1-C1-K3", "S1-C2", "S1-C2-K1", "S1-C1", "S1", "S2-C1-K1",
];
/// Cells that may be retired (some of them assigned above, one inside an assigned subtree).
const RETIRE_CELLS: [&str; 3] = ["S1-C1-K3", "S2-C1-K1", "S1-C2-K4"];
/// Cells hazards are reported in.
const REPORT_CELLS: [&str; 6] = [
    "S1-C1-K1",
    "S1-C1-K2",
    "S1-C2-K1",
    "S1-C1-K3-B2",
    "S2-C1-K1",
    "S1-C2-K4",
];
/// Checkpoints check-ins are made at.
const CHECKPOINTS: [&str; 6] = [
    "S1-C1-K1-B1-P1",
    "S1-C1-K2-B2-P2",
    "S1-C2-K1-B1-P1",
    "S1-C1-K3-B1-P1",
    "S2-C1-K1-B1-P1",
    "S1-C2-K4-B3-P2",
];

/// Transition kinds past this index are drawn from every kind, not the role's.
pub const ANY_KIND: usize = 100;

/// The kinds a role fires.
fn kinds_of(role: Role) -> &'static [EventKind] {
    use EventKind::*;
    match role {
        Role::Agency => &[AgencyAccept, AgencyReturn, AgencyFix],
        Role::Patroller => &[FixOnSpot, SubmitFix],
        _ => &[
            Notify, Transfer, Transfer, VerifyPass, VerifyFail, Merge, Reopen, FixOnSpot,
        ],
    }
}

/// The kind `i` names for `device`.
fn kind(device: usize, i: usize) -> EventKind {
    match i.checked_sub(ANY_KIND) {
        Some(j) => EventKind::ALL[j % EventKind::ALL.len()],
        None => {
            let kinds = kinds_of(DEVICES[device % DEVICES.len()].role);
            kinds[i % kinds.len()]
        }
    }
}

/// One step of a schedule. Devices, cells and hazards are indices, so a schedule means the
/// same thing however many of its steps are left out (the k-th hazard is the k-th reported
/// so far, modulo how many there are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// A check-in at a checkpoint (outside the device's cells it comes back refused).
    CheckIn {
        /// Device.
        device: usize,
        /// Checkpoint.
        checkpoint: usize,
    },
    /// A hazard report in a cell.
    Report {
        /// Device.
        device: usize,
        /// Cell.
        cell: usize,
    },
    /// A transition of a hazard the device holds (else of any hazard), of a kind its role
    /// fires (now and then of any kind: refused on the device, it changes nothing).
    Transition {
        /// Device.
        device: usize,
        /// Hazard.
        hazard: usize,
        /// Index into the kinds of the device's role, or from [`ANY_KIND`] on into
        /// [`EventKind::ALL`].
        kind: usize,
        /// The other hazard (merges) or the agency (transfers: even fire brigade, odd police).
        other: usize,
    },
    /// A field edit.
    Edit {
        /// Device.
        device: usize,
        /// Hazard.
        hazard: usize,
        /// Which field and value.
        value: u32,
    },
    /// A device syncs.
    Sync {
        /// Device.
        device: usize,
    },
    /// An admin assigns a cell to a user, or takes it away.
    Assign {
        /// User (of the first `ASSIGNABLE` devices).
        user: usize,
        /// Cell.
        cell: usize,
        /// Take it away.
        remove: bool,
    },
    /// An admin retires a cell and its subtree.
    Retire {
        /// Cell.
        cell: usize,
    },
    /// The server stops and starts again on the same data.
    Restart,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |i: usize| DEVICES[i % DEVICES.len()].name;
        match *self {
            Action::CheckIn { device, checkpoint } => write!(
                f,
                "{} checks in at {}",
                d(device),
                CHECKPOINTS[checkpoint % CHECKPOINTS.len()]
            ),
            Action::Report { device, cell } => write!(
                f,
                "{} reports a hazard in {}",
                d(device),
                REPORT_CELLS[cell % REPORT_CELLS.len()]
            ),
            Action::Transition {
                device,
                hazard,
                kind,
                other,
            } => write!(
                f,
                "{} fires {} on its hazard #{hazard} (other {other})",
                d(device),
                self::kind(device, kind)
            ),
            Action::Edit {
                device,
                hazard,
                value,
            } => write!(f, "{} edits hazard #{hazard} ({value})", d(device)),
            Action::Sync { device } => write!(f, "{} syncs", d(device)),
            Action::Assign { user, cell, remove } => write!(
                f,
                "admin {} {} {} {}",
                if remove { "takes" } else { "assigns" },
                ASSIGN_CELLS[cell % ASSIGN_CELLS.len()],
                if remove { "from" } else { "to" },
                DEVICES[user % ASSIGNABLE].user
            ),
            Action::Retire { cell } => write!(
                f,
                "admin retires {}",
                RETIRE_CELLS[cell % RETIRE_CELLS.len()]
            ),
            Action::Restart => write!(f, "the server restarts"),
        }
    }
}

/// The schedule of `seed`: `len` actions, mostly device work and syncs, some admin actions
/// and restarts.
pub fn schedule(seed: u64, len: usize) -> Vec<Action> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..len)
        .map(|_| {
            let device = rng.gen_range(0..DEVICES.len());
            match rng.gen_range(0..100) {
                0..12 => Action::CheckIn {
                    device,
                    checkpoint: rng.gen_range(0..CHECKPOINTS.len()),
                },
                12..24 => Action::Report {
                    device,
                    cell: rng.gen_range(0..REPORT_CELLS.len()),
                },
                24..46 => Action::Transition {
                    device,
                    hazard: rng.gen_range(0..16),
                    kind: if rng.gen_bool(0.1) {
                        ANY_KIND + rng.gen_range(0..EventKind::ALL.len())
                    } else {
                        rng.gen_range(0..16)
                    },
                    other: rng.gen_range(0..16),
                },
                46..54 => Action::Edit {
                    device,
                    hazard: rng.gen_range(0..16),
                    value: rng.r#gen(),
                },
                54..84 => Action::Sync { device },
                84..94 => Action::Assign {
                    user: rng.gen_range(0..ASSIGNABLE),
                    cell: rng.gen_range(0..ASSIGN_CELLS.len()),
                    remove: rng.gen_bool(0.5),
                },
                94..97 => Action::Retire {
                    cell: rng.gen_range(0..RETIRE_CELLS.len()),
                },
                _ => Action::Restart,
            }
        })
        .collect()
}

/// Why a run did not converge.
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the run saw, for the report.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Check-ins recorded on the devices.
    pub check_ins: usize,
    /// Hazards reported.
    pub hazards: usize,
    /// Grants and revokes the devices were told of.
    pub scope_changes: usize,
    /// Admin actions the server refused (a retired cell assigned, …).
    pub admin_refusals: usize,
}

/// Runs `actions` on a fresh server over `db`; `Err` says what did not converge.
pub async fn run(db: TestDatabase, actions: &[Action]) -> anyhow::Result<Result<Outcome, Failure>> {
    let mut h = Harness::start(db).await?;
    let result = run_on(&mut h, actions).await;
    h.finish().await;
    result
}

async fn run_on(h: &mut Harness, actions: &[Action]) -> anyhow::Result<Result<Outcome, Failure>> {
    let sql = patrolsync_server::open_sql_store(&h.config).await?;
    let mut devices: Vec<Client> = Vec::with_capacity(DEVICES.len());
    for d in &DEVICES {
        devices.push(match d.agency {
            Some(a) => h.agency_device(d.name, d.user, a, d.cells).await?,
            None => h.device_as(d.name, d.user, d.role, d.cells).await?,
        });
    }
    let mut hazards: Vec<HazardId> = Vec::new();
    let mut recorded: Vec<Vec<String>> = vec![Vec::new(); DEVICES.len()];
    let mut out = Outcome::default();
    for (step, a) in actions.iter().enumerate() {
        let at = |i: usize| i % DEVICES.len();
        match *a {
            Action::CheckIn { device, checkpoint } => {
                let c = NewCheckIn::new(
                    CHECKPOINTS[checkpoint % CHECKPOINTS.len()],
                    CheckInOutcome::Inspected,
                );
                if let Ok(id) = devices[at(device)].record_checkin(c).await {
                    recorded[at(device)].push(id.to_string());
                    out.check_ins += 1;
                }
            }
            Action::Report { device, cell } => {
                let report = NewHazard {
                    grid_cell: REPORT_CELLS[cell % REPORT_CELLS.len()].into(),
                    checkpoint: None,
                    position: None,
                    category: HazardCategory::ALL[step % HazardCategory::ALL.len()],
                    severity: Severity::General,
                    handling: Handling::ByDeadline,
                    deadline_ms: Some(4_000_000_000_000),
                    description: format!("step {step}"),
                    photos: Vec::new(),
                };
                if let Ok(id) = devices[at(device)].report_hazard(report).await {
                    hazards.push(id);
                    out.hazards += 1;
                }
            }
            Action::Transition {
                device,
                hazard,
                kind,
                other,
            } if !hazards.is_empty() => {
                let held: Vec<HazardId> = devices[at(device)]
                    .hazards()
                    .await?
                    .into_iter()
                    .map(|v| v.state.id)
                    .collect();
                let id = if held.is_empty() {
                    hazards[hazard % hazards.len()]
                } else {
                    held[hazard % held.len()]
                };
                let kind = self::kind(device, kind);
                let t = Transition {
                    deadline_ms: (kind == EventKind::Notify).then_some(4_100_000_000_000),
                    agency: (kind == EventKind::Transfer).then_some(if other % 2 == 0 {
                        Agency::FireBrigade
                    } else {
                        Agency::PoliceStation
                    }),
                    merge_into: (kind == EventKind::Merge)
                        .then(|| hazards[other % hazards.len()])
                        .filter(|m| *m != id),
                    note: format!("step {step}"),
                    photos: vec![[step as u8; 32]],
                };
                if kind == EventKind::Merge && t.merge_into.is_none() {
                    continue;
                }
                // Refused on the device (a role that may not fire it) changes nothing.
                let _ = devices[at(device)].transition_hazard(id, kind, t).await;
            }
            Action::Edit {
                device,
                hazard,
                value,
            } if !hazards.is_empty() => {
                let id = hazards[hazard % hazards.len()];
                let v = match value % 3 {
                    0 => FieldValue::Description(format!("edited at step {step}")),
                    1 => FieldValue::Severity(if value % 2 == 0 {
                        Severity::Major
                    } else {
                        Severity::General
                    }),
                    _ => FieldValue::Deadline(Some(4_000_000_000_000 + i64::from(value))),
                };
                let _ = devices[at(device)].edit_hazard(id, v).await;
            }
            Action::Sync { device } => {
                // A sync may fail (a restart in between); the device tries again later.
                if let Ok(s) = devices[at(device)].sync().await {
                    out.scope_changes += s.scope_changes.len();
                }
            }
            Action::Assign { user, cell, remove } => {
                let cell = ASSIGN_CELLS[cell % ASSIGN_CELLS.len()];
                if sql
                    .assign(
                        DEVICES[user % ASSIGNABLE].user,
                        &[cell.to_owned()],
                        remove,
                        patrolsync_server::now_ms(),
                    )
                    .await
                    .is_err()
                {
                    out.admin_refusals += 1;
                }
            }
            Action::Retire { cell } => {
                sql.retire_cell(
                    RETIRE_CELLS[cell % RETIRE_CELLS.len()],
                    patrolsync_server::now_ms(),
                )
                .await?;
            }
            Action::Restart => h.restart().await?,
            Action::Transition { .. } | Action::Edit { .. } => {}
        }
    }

    // Heal: everyone syncs until their outboxes are empty and a whole round pulls nothing.
    for round in 0.. {
        let mut moved = 0;
        for d in &devices {
            let s = crate::sync_until_done(d, Duration::from_secs(60)).await?;
            moved += s.applied;
            let s = d.sync().await?;
            moved += s.pulled + s.applied;
            out.scope_changes += s.scope_changes.len();
        }
        if moved == 0 {
            break;
        }
        if round == 8 {
            return Ok(Err(Failure(
                "still moving after 8 rounds of syncing everyone".into(),
            )));
        }
    }

    // Every device holds what the server says it should, folded the same.
    for (i, d) in devices.iter().enumerate() {
        let mine = device_view(d).await?;
        let theirs = server_view(h.server(), d).await?;
        if mine != theirs {
            return Ok(Err(Failure(format!(
                "{} ({}) does not hold what the server says it should:\n{}",
                DEVICES[i].name,
                DEVICES[i].user,
                difference(&mine, &theirs)
            ))));
        }
    }
    // Every check-in stored once, or refused and listed as refused on its device.
    let stored = crate::stored_check_in_ids(h.server().store().as_ref(), None).await?;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &stored {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    if let Some((id, n)) = counts.iter().find(|(_, n)| **n > 1) {
        return Ok(Err(Failure(format!("check-in {id} is stored {n} times"))));
    }
    for (i, d) in devices.iter().enumerate() {
        let refused: Vec<String> = d
            .rejected()
            .await?
            .into_iter()
            .filter(|r| r.kind == "check_in")
            .map(|r| r.record_id)
            .collect();
        for id in &recorded[i] {
            let is_stored = counts.contains_key(id.as_str());
            let is_refused = refused.contains(id);
            if is_stored == is_refused {
                return Ok(Err(Failure(format!(
                    "{}'s check-in {id}: stored {is_stored}, refused {is_refused}",
                    DEVICES[i].name
                ))));
            }
        }
    }
    Ok(Ok(out))
}

fn difference(mine: &crate::View, theirs: &crate::View) -> String {
    let mut out = String::new();
    let diff = |what: &str, a: &[String], b: &[String], out: &mut String| {
        let some = |v: Vec<&String>| {
            let n = v.len();
            let shown: Vec<&str> = v.into_iter().take(6).map(String::as_str).collect();
            format!("{n} {shown:?}{}", if n > 6 { "…" } else { "" })
        };
        let extra: Vec<_> = a.iter().filter(|x| !b.contains(x)).collect();
        let missing: Vec<_> = b.iter().filter(|x| !a.contains(x)).collect();
        if !extra.is_empty() || !missing.is_empty() {
            out.push_str(&format!(
                "  {what}: holds but should not {}; should hold but does not {}\n",
                some(extra),
                some(missing)
            ));
        }
    };
    diff("cells", &mine.cells, &theirs.cells, &mut out);
    diff(
        "checkpoints",
        &mine.checkpoints,
        &theirs.checkpoints,
        &mut out,
    );
    for (id, facts) in &mine.hazards {
        match theirs.hazards.get(id) {
            None => out.push_str(&format!("  hazard {id}: holds it, out of scope\n")),
            Some(t) if t != facts => out.push_str(&format!(
                "  hazard {id}: device {facts:?}\n           server {t:?}\n"
            )),
            Some(_) => {}
        }
    }
    for id in theirs
        .hazards
        .keys()
        .filter(|k| !mine.hazards.contains_key(*k))
    {
        out.push_str(&format!("  hazard {id}: in scope, not held\n"));
    }
    out
}

/// Shrinks a failing schedule: takes out runs of actions, halving their length, keeping each
/// removal the schedule still fails without, within `budget` runs. Returns the shortest
/// failing schedule found and its failure.
pub async fn shrink(
    make_db: impl AsyncFn() -> anyhow::Result<TestDatabase>,
    actions: Vec<Action>,
    failure: Failure,
    budget: usize,
) -> anyhow::Result<(Vec<Action>, Failure)> {
    let (mut best, mut why) = (actions, failure);
    let mut runs = 0;
    let mut chunk = best.len().div_ceil(2);
    while chunk >= 1 && runs < budget {
        let mut start = 0;
        let mut removed_any = false;
        while start < best.len() && runs < budget {
            let mut candidate = best.clone();
            candidate.drain(start..(start + chunk).min(best.len()));
            runs += 1;
            match run(make_db().await?, &candidate).await? {
                Err(f) => {
                    best = candidate;
                    why = f;
                    removed_any = true;
                }
                Ok(_) => start += chunk,
            }
        }
        if !removed_any {
            chunk /= 2;
        }
    }
    Ok((best, why))
}
