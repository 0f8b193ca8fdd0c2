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
                "{}",
                say!("cli-people-crs")
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
                println!("{}", say!("cli-retire-already", code = code));
            } else {
                println!(
                    "{}",
                    say!(
                        "cli-retired",
                        code = code,
                        cells = cells,
                        checkpoints = checkpoints
                    )
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
                        "{}",
                        say!(
                            "cli-template-checked",
                            file = file.display(),
                            id = t.id,
                            items = t.items.len()
                        )
                    );
                }
            } else {
                let (version, new) = sql.publish_template(&t, crate::clock::now_ms()).await?;
                if json {
                    print_json(&serde_json::json!({ "id": t.id, "version": version, "new": new }))?;
                } else if new {
                    println!(
                        "{}",
                        say!(
                            "cli-template-published",
                            id = t.id,
                            version = version,
                            items = t.items.len()
                        )
                    );
                } else {
                    println!(
                        "{}",
                        say!("cli-template-unchanged", id = t.id, version = version)
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
                println!("{}", say!("cli-no-templates"));
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
                    "{}",
                    match version {
                        Some(v) => say!("cli-template-version-unpublished", id = id, version = v),
                        None => say!("cli-template-unpublished", id = id),
                    }
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
                    "{}",
                    say!(
                        "cli-assigned",
                        user = user,
                        changed = changed,
                        removed = remove
                    )
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
                    "{}",
                    say!(
                        "cli-seed-city",
                        cells = cells,
                        checkpoints = checkpoints,
                        changed = changed,
                        secs = format!("{:.1}", started.elapsed().as_secs_f64())
                    )
                );
            } else {
                println!(
                    "{}",
                    say!(
                        "cli-seed-demo",
                        cells = cells,
                        checkpoints = checkpoints,
                        changed = changed
                    )
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
            "{}",
            say!(
                "cli-import-checked",
                file = file.display(),
                rows = done.rows,
                what = what
            )
        );
        Ok(())
    } else {
        println!(
            "{}",
            say!(
                "cli-imported",
                file = file.display(),
                rows = done.rows,
                what = what,
                changed = done.changed,
                up_to_date = done.changed == 0
            )
        );
        Ok(())
    }
}
