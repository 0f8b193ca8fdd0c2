//! The grid and its people: seed, import, retire, assign; checklist templates.

use std::sync::Arc;

use super::*;
use crate::config::*;
use crate::store::Store;

pub(super) async fn run(
    _config: &Config,
    sql: &Arc<dyn AdminStore>,
    store: &Arc<dyn Store>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::Grid {
            command:
                GridCommand::Import {
                    file,
                    crs,
                    check,
                    json,
                },
        } => {
            let done = crate::grid_import::import_cells(
                sql.as_ref(),
                &file,
                crs,
                check,
                crate::clock::now_ms(),
            )
            .await?;
            print_imported("cells", &file, check, json, &done)?;
        }
        AdminCommand::Checkpoints {
            command:
                ImportCommand::Import {
                    file,
                    crs,
                    check,
                    json,
                },
        } => {
            let done = crate::grid_import::import_checkpoints(
                sql.as_ref(),
                &file,
                crs,
                check,
                crate::clock::now_ms(),
            )
            .await?;
            print_imported("checkpoints", &file, check, json, &done)?;
        }
        AdminCommand::People {
            command:
                ImportCommand::Import {
                    file,
                    crs,
                    check,
                    json,
                },
        } => {
            anyhow::ensure!(
                crs == patrolsync_proto::geo::Datum::Wgs84,
                "--crs is for grid and checkpoint imports; a people file has no coordinates"
            );
            let done = crate::grid_import::import_people(
                sql.as_ref(),
                &file,
                check,
                crate::clock::now_ms(),
            )
            .await?;
            print_imported("people", &file, check, json, &done)?;
        }
        AdminCommand::Grid {
            command: GridCommand::Retire { code, json },
        } => {
            let (cells, checkpoints) = sql.retire_cell(&code, crate::clock::now_ms()).await?;
            if json {
                print_json(
                    &serde_json::json!({ "cell": code, "cells_retired": cells, "checkpoints_retired": checkpoints }),
                )?;
            } else if cells == 0 {
                println!("{code} was already retired; nothing changed");
            } else {
                println!(
                    "retired {code}: {cells} cell(s) and {checkpoints} checkpoint(s); their history stays, new records there are refused"
                );
            }
        }
        AdminCommand::Template {
            command: TemplateCommand::Publish { file, check, json },
        } => {
            let t = crate::templates::read(&file)?;
            if check {
                if json {
                    print_json(&crate::templates::json(&t))?;
                } else {
                    println!(
                        "{}: template {} with {} items is fine; nothing published (--check)",
                        file.display(),
                        t.id,
                        t.items.len()
                    );
                }
            } else {
                let (version, new) = sql.publish_template(&t, crate::clock::now_ms()).await?;
                if json {
                    print_json(&serde_json::json!({ "id": t.id, "version": version, "new": new }))?;
                } else if new {
                    println!(
                        "published {} version {version} ({} items); devices get it at their next pull",
                        t.id,
                        t.items.len()
                    );
                } else {
                    println!(
                        "{} version {version} already has this content; nothing published",
                        t.id
                    );
                }
            }
        }
        AdminCommand::Template {
            command: TemplateCommand::List { json },
        } => {
            let all = sql.templates(None).await?;
            if json {
                print_json(&all.iter().map(crate::templates::json).collect::<Vec<_>>())?;
            } else if all.is_empty() {
                println!("no templates published; see `patrolsync admin template publish --help`");
            } else {
                for t in &all {
                    println!(
                        "{:<24} v{:<4} {:>3} items  {}",
                        t.id,
                        t.version,
                        t.items.len(),
                        t.name
                    );
                }
            }
        }
        AdminCommand::Template {
            command: TemplateCommand::Show { id, version, json },
        } => {
            let mut all = sql.templates(Some(&id)).await?;
            let t = match version {
                Some(v) => all.into_iter().find(|t| t.version == v),
                None => all.pop(),
            }
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "template {id}{} is not published",
                    version.map(|v| format!(" version {v}")).unwrap_or_default()
                )
            })?;
            if json {
                print_json(&crate::templates::json(&t))?;
            } else {
                println!("{} v{}: {}", t.id, t.version, t.name);
                for i in &t.items {
                    println!(
                        "  {:<16} {:<6} {}{}{}  {}",
                        i.id,
                        i.answer.as_str(),
                        if i.mandatory { "mandatory " } else { "" },
                        if i.photo_on_fail {
                            "photo-on-fail "
                        } else {
                            ""
                        },
                        i.hazard_category
                            .map(|c| format!("hazard:{c} "))
                            .unwrap_or_default(),
                        i.label
                    );
                }
            }
        }
        AdminCommand::Assign {
            user,
            cells,
            remove,
            json,
        } => {
            let changed = sql
                .assign(&user, &cells, remove, crate::clock::now_ms())
                .await?;
            if json {
                print_json(&serde_json::json!({ "user": user, "changed": changed }))?;
            } else {
                println!(
                    "{user}: {changed} assignment(s) {}",
                    if remove { "removed" } else { "added" }
                );
            }
        }
        AdminCommand::SeedDemo { size, json } => {
            let started = std::time::Instant::now();
            let (cells, checkpoints, changed) = if size == "city" {
                crate::seed::seed_city(store.as_ref()).await?
            } else {
                crate::seed::seed_demo(store.as_ref()).await?
            };
            if json {
                print_json(
                    &serde_json::json!({ "grid_cells": cells, "checkpoints": checkpoints, "rows_changed": changed, "seconds": started.elapsed().as_secs_f64() }),
                )?;
            } else if size == "city" {
                println!(
                    "synthetic city ready: {cells} grid cells (S001…S115 → …-C1 → …-K1 → …-B1), {checkpoints} checkpoints; {changed} rows changed in {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            } else {
                println!(
                    "demo city ready: {cells} grid cells (S1…S2 → S1-C1… → S1-C1-K1… → S1-C1-K1-B1…), {checkpoints} checkpoints (…-B1-P1, …-B1-P2); {changed} rows changed"
                );
            }
        }
        other => unreachable!("run_admin sends {other:?} elsewhere"),
    }
    Ok(())
}

pub(super) fn print_imported(
    what: &str,
    file: &std::path::Path,
    check: bool,
    json: bool,
    done: &crate::grid_import::Imported,
) -> anyhow::Result<()> {
    if json {
        print_json(
            &serde_json::json!({ "file": file, "what": what, "rows": done.rows, "changed": done.changed, "checked_only": check }),
        )
    } else if check {
        println!(
            "{}: {} {what} rows are fine; nothing written (--check)",
            file.display(),
            done.rows
        );
        Ok(())
    } else {
        println!(
            "{}: {} {what} rows read, {} changed{}",
            file.display(),
            done.rows,
            done.changed,
            if done.changed == 0 {
                " (already up to date)"
            } else {
                ""
            }
        );
        Ok(())
    }
}
