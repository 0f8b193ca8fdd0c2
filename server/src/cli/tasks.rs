//! Tasks (dispatch): create, list, show.

use std::sync::Arc;

use patrolsync_proto::TaskId;

use super::*;
use crate::calendar::time_text;
use crate::store::{NewTask, TaskSummary};

pub(super) async fn run(store: &Arc<dyn Store>, command: TaskCommand) -> anyhow::Result<()> {
    match command {
        TaskCommand::Create {
            cell,
            kind,
            urgency,
            household,
            unit,
            checkpoint,
            lat,
            lon,
            description,
            json,
        } => {
            let (id, _) = store
                .create_task(
                    &NewTask {
                        cell: cell.clone(),
                        kind,
                        urgency,
                        household,
                        unit,
                        checkpoint,
                        position: lat.zip(lon),
                        description,
                    },
                    crate::clock::now_ms(),
                )
                .await?;
            if json {
                print_json(&serde_json::json!({ "id": id.to_string(), "cell": cell }))?;
            } else {
                println!(
                    "{}",
                    say!(
                        "cli-task-created",
                        id = id,
                        kind = word("task-kind", kind.as_str()),
                        cell = cell
                    )
                );
            }
        }
        TaskCommand::List {
            open,
            cell,
            limit,
            json,
        } => {
            let tasks = store.tasks(open, cell.as_deref(), limit).await?;
            if json {
                print_json(&tasks)?;
            } else if tasks.is_empty() {
                println!("{}", say!("cli-no-tasks"));
            } else {
                for t in &tasks {
                    println!("{}", line(t));
                }
            }
        }
        TaskCommand::Show { id, json } => {
            let task: TaskId = id
                .parse()
                .map_err(|_| anyhow::anyhow!("{}", say!("cli-task-bad-id", id = id)))?;
            let Some((summary, log)) = store.task(task).await? else {
                anyhow::bail!("{}", say!("cli-task-unknown", id = id));
            };
            if json {
                print_json(&serde_json::json!({ "task": summary, "log": log }))?;
            } else {
                println!("{}", line(&summary));
                if !summary.description.is_empty() {
                    println!("  {}", summary.description);
                }
                for e in &log {
                    let who = if e.user.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", e.user)
                    };
                    let step = word("task-step", &e.kind);
                    // Why a step did not apply, in the reader's words.
                    let why = e.conflict_code.as_deref().map(|code| {
                        let with = e.conflict_with.clone().unwrap_or_default();
                        let with = match code {
                            "wrong_state" => word("task-status", &with),
                            "role" => word("role", &with),
                            _ => with,
                        };
                        say!("cli-task-conflict", code = code, with = with)
                    });
                    match &why {
                        None => println!(
                            "  #{:<3} {}  {step}{who} ({})",
                            e.position,
                            time_text(e.received_at_ms),
                            word("role", &e.role)
                        ),
                        Some(why) => println!(
                            "  #{:<3} {}  {step}{who} ({}): {}",
                            e.position,
                            time_text(e.received_at_ms),
                            word("role", &e.role),
                            why
                        ),
                    }
                }
            }
        }
    }
    Ok(())
}

/// One task as a line: id, state, kind, cell, who has it.
fn line(t: &TaskSummary) -> String {
    say!(
        "cli-task-row",
        id = t.id,
        status = word("task-status", &t.status),
        kind = word("task-kind", &t.kind),
        urgency = word("task-urgency", &t.urgency),
        cell = t.cell,
        assignee = t.assignee.clone().unwrap_or_else(|| "-".into()),
        offered = t.offered_to.clone().unwrap_or_else(|| "-".into())
    )
}
