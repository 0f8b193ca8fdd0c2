//! The registers: key units (import, list, show) and must-visit households (import, list).

use std::sync::Arc;

use super::*;
use crate::registry_import::{group_text, kind_text, risk_text};

pub(super) async fn run(
    config: &Config,
    sql: &Arc<dyn AdminStore>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let lang = lang();
    let command = match command {
        AdminCommand::Units { command } => command,
        AdminCommand::Households { command } => return households(sql, command, lang).await,
        _ => unreachable!("units::run takes the register commands"),
    };
    match command {
        UnitCommand::Import { file, check, json } => {
            let done = crate::registry_import::import_units(
                sql.as_ref(),
                &file,
                check,
                crate::clock::now_ms(),
            )
            .await?;
            grid::print_imported("units", &file, check, json, &done)?;
        }
        UnitCommand::List { cell, json } => {
            let units = sql.units(cell.as_deref()).await?;
            if json {
                print_json(&units)?;
            } else if units.is_empty() {
                println!("{}", say!("cli-no-units"));
            } else {
                for u in &units {
                    println!(
                        "{}",
                        say!(
                            "cli-unit-row",
                            code = u.code,
                            name = u.name,
                            kind = kind_text(&u.kind, lang),
                            risk = risk_text(&u.risk, lang),
                            cell = u.cell,
                            person = u.responsible_person,
                            phone = u.responsible_phone,
                            checkpoints = u.checkpoints.len()
                        )
                    );
                }
            }
        }
        UnitCommand::Show { code, limit, json } => {
            let file = sql.unit_file(&code, limit).await?.ok_or_else(|| {
                anyhow::anyhow!("{}", say!("store-no-unit", unit = code.as_str()))
            })?;
            if json {
                return print_json(&file);
            }
            let cal = config.reports.calendar()?;
            let u = &file.unit;
            let none = || say!("cli-unit-none");
            for line in [
                say!(
                    "cli-unit-title",
                    code = u.code,
                    name = u.name,
                    cell = u.cell
                ),
                say!(
                    "cli-unit-kind",
                    kind = kind_text(&u.kind, lang),
                    risk = risk_text(&u.risk, lang)
                ),
                say!(
                    "cli-unit-address",
                    address = if u.address.is_empty() {
                        none()
                    } else {
                        u.address.clone()
                    }
                ),
                say!(
                    "cli-unit-person",
                    person = u.responsible_person,
                    phone = if u.responsible_phone.is_empty() {
                        none()
                    } else {
                        u.responsible_phone.clone()
                    }
                ),
                say!(
                    "cli-unit-self-check",
                    date = u.self_check_date.clone().unwrap_or_else(none)
                ),
                say!(
                    "cli-unit-checkpoints",
                    codes = if u.checkpoints.is_empty() {
                        none()
                    } else {
                        u.checkpoints.join(", ")
                    }
                ),
                say!(
                    "cli-unit-check-ins",
                    shown = file.check_ins.len(),
                    total = file.check_ins_total
                ),
            ] {
                println!("{line}");
            }
            for c in &file.check_ins {
                println!(
                    "  {}",
                    say!(
                        "cli-unit-check-in",
                        at = cal.local(c.device_time_ms),
                        checkpoint = c.checkpoint,
                        user = c.user,
                        kind = lang.text(&format!("kind-{}", c.kind)),
                        outcome = lang.text(&format!("outcome-{}", c.outcome))
                    )
                );
            }
            println!(
                "{}",
                say!(
                    "cli-unit-hazards",
                    shown = file.hazards.len(),
                    total = file.hazards_total
                )
            );
            for h in &file.hazards {
                println!(
                    "  {}",
                    say!(
                        "cli-unit-hazard",
                        id = h.id,
                        status = lang.text(&format!("state-{}", h.status)),
                        category = lang.text(&format!("category-{}", h.category)),
                        deadline = h.deadline_ms.map_or_else(none, |d| cal.local(d)),
                        description = h.description
                    )
                );
            }
        }
    }
    Ok(())
}

async fn households(
    sql: &Arc<dyn AdminStore>,
    command: HouseholdCommand,
    lang: patrolsync_i18n::Lang,
) -> anyhow::Result<()> {
    match command {
        HouseholdCommand::Import { file, check, json } => {
            let done = crate::registry_import::import_households(
                sql.as_ref(),
                &file,
                check,
                crate::clock::now_ms(),
            )
            .await?;
            grid::print_imported("households", &file, check, json, &done)?;
        }
        HouseholdCommand::Remove { codes, json } => {
            let removed = sql
                .remove_households(&codes, crate::clock::now_ms())
                .await?;
            if json {
                print_json(&serde_json::json!({ "households": codes, "removed": removed }))?;
            } else {
                println!(
                    "{}",
                    say!(
                        "cli-households-removed",
                        n = removed,
                        codes = codes.join(", ")
                    )
                );
            }
        }
        HouseholdCommand::List { cell, json } => {
            let mut all = sql.households(cell.as_deref(), i64::MAX).await?;
            all.retain(|h| h.removed_at_ms.is_none());
            if json {
                print_json(&all)?;
            } else if all.is_empty() {
                println!("{}", say!("cli-no-households"));
            } else {
                for h in &all {
                    println!(
                        "{}",
                        say!(
                            "cli-household-row",
                            code = h.code,
                            group = group_text(&h.group, lang),
                            cell = h.cell,
                            address = h.address,
                            contact = h.contact_name,
                            phone = h.contact_phone
                        )
                    );
                }
            }
        }
    }
    Ok(())
}
