//! Routing rules (隐患直报): import, list, check.

use std::sync::Arc;

use patrolsync_proto::hazard::HazardCategory;

use super::*;
use crate::routing::{Party, Published, Rule, RuleSet};

pub(super) async fn run(sql: &Arc<dyn AdminStore>, command: RoutingCommand) -> anyhow::Result<()> {
    match command {
        RoutingCommand::Import { file, check, json } => {
            let set = crate::routing::read(&file)?;
            let (version, new) = sql
                .publish_routing(&set, check, crate::clock::now_ms())
                .await?;
            if json {
                print_json(&serde_json::json!({
                    "file": file.display().to_string(),
                    "rules": set.rules.len(),
                    "version": version,
                    "new": new,
                    "published": new && !check,
                }))?;
            } else {
                let (file, rules, reminders) =
                    (file.display(), set.rules.len(), reminders_text(&set));
                let said = match (check, new) {
                    (true, true) => say!(
                        "cli-routing-checked",
                        file = file,
                        rules = rules,
                        version = version,
                        reminders = reminders
                    ),
                    (true, false) => say!(
                        "cli-routing-checked-same",
                        file = file,
                        rules = rules,
                        version = version
                    ),
                    (false, true) => say!(
                        "cli-routing-published",
                        rules = rules,
                        version = version,
                        reminders = reminders
                    ),
                    (false, false) => say!("cli-routing-unchanged", version = version),
                };
                println!("{said}");
            }
        }
        RoutingCommand::List { all, json } => {
            let mut versions = sql.routing_versions().await?;
            if !all && versions.len() > 1 {
                versions.drain(..versions.len() - 1);
            }
            if json {
                print_json(&versions)?;
            } else if versions.is_empty() {
                println!("{}", say!("cli-routing-none"));
            } else {
                for v in &versions {
                    print_version(v);
                }
            }
        }
        RoutingCommand::Check {
            cell,
            category,
            checkpoint,
            json,
        } => {
            let category = category.parse::<HazardCategory>().map_err(|_| {
                let known: Vec<&str> = HazardCategory::ALL.iter().map(|c| c.as_str()).collect();
                anyhow::anyhow!(
                    "{}",
                    say!(
                        "cli-unknown-value",
                        field = "--category",
                        value = category,
                        known = known.join(", ")
                    )
                )
            })?;
            let check = sql
                .route_check(&cell, category, checkpoint.as_deref())
                .await?;
            if json {
                return print_json(&check);
            }
            let what = word("category", check.category.as_str());
            let party = |hit: &crate::store::RouteHit| match hit.audience.strip_prefix("agency:") {
                Some(agency) => word("agency", agency),
                None => hit.party.clone(),
            };
            match &check.rule {
                Some(hit) if hit.name.is_empty() => println!(
                    "{}",
                    say!(
                        "cli-routing-hit",
                        category = what,
                        cell = check.cell,
                        n = hit.n,
                        version = check.version,
                        party = party(hit),
                        rule_cell = hit.cell
                    )
                ),
                Some(hit) => println!(
                    "{}",
                    say!(
                        "cli-routing-hit-named",
                        category = what,
                        cell = check.cell,
                        n = hit.n,
                        name = hit.name,
                        version = check.version,
                        party = party(hit),
                        rule_cell = hit.cell
                    )
                ),
                None => println!(
                    "{}",
                    say!(
                        "cli-routing-fallback",
                        category = what,
                        cell = check.cell,
                        version = check.version
                    )
                ),
            }
            for p in &check.passed {
                println!(
                    "  {}",
                    say!("cli-routing-passed", n = p.n, reason = p.reason)
                );
            }
            let managers = if check.managers.is_empty() {
                say!("cli-routing-no-managers", cell = check.cell)
            } else {
                say!(
                    "cli-routing-managers",
                    count = check.managers.len(),
                    managers = check.managers.join(", ")
                )
            };
            println!("  {managers}");
        }
    }
    Ok(())
}

/// The reminder points, as people read them (`-1d, -2h, 0s, +1d`).
fn reminders_text(set: &RuleSet) -> String {
    let offsets = set.offsets();
    if offsets.is_empty() {
        return "-".into();
    }
    offsets
        .iter()
        .map(|o| {
            let d = humantime::format_duration(std::time::Duration::from_millis(o.unsigned_abs()));
            match o.signum() {
                -1 => format!("-{d}"),
                _ => format!("+{d}"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_version(v: &Published) {
    println!(
        "{}",
        say!(
            "cli-routing-version",
            version = v.version,
            published = crate::calendar::time_text(v.published_at_ms),
            rules = v.set.rules.len(),
            reminders = reminders_text(&v.set)
        )
    );
    for (i, r) in v.set.rules.iter().enumerate() {
        println!("  {}", rule_text(i + 1, r));
    }
}

fn rule_text(n: usize, r: &Rule) -> String {
    let categories = if r.categories.is_empty() {
        say!("cli-routing-every-category")
    } else {
        r.categories
            .iter()
            .map(|c| word("category", c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let party = match &r.party {
        Party::User { name } => say!("cli-routing-party-user", user = name),
        Party::Agency { agency } => word("agency", agency),
        Party::Unit => say!("cli-routing-party-unit"),
    };
    if r.name.is_empty() {
        say!(
            "cli-routing-rule",
            n = n,
            cell = r.cell,
            categories = categories,
            party = party
        )
    } else {
        say!(
            "cli-routing-rule-named",
            n = n,
            cell = r.cell,
            categories = categories,
            party = party,
            name = r.name
        )
    }
}
