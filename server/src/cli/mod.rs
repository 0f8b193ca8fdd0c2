//! The `patrolsync` command line: `serve` and `admin …`. Parsing and printing only; the work is
//! done by the library.

/// A message of the catalog in this run's language (`--lang`, else the locale's), with its
/// parameters by name: `say!("cli-stats-users", n = s.users)`.
macro_rules! say {
    ($($message:tt)*) => {
        patrolsync_i18n::message!($crate::cli::lang(), $($message)*)
    };
}

mod accounts;
mod args;
mod devices;
mod grid;
mod inspect;
mod reports;
mod routing;
mod serve;
mod tasks;
mod units;

pub use args::Cli;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::config::*;
use crate::store::{AdminStore, Store};
use args::*;
use reports::calendar;

fn overrides(c: &Common) -> Overrides {
    Overrides {
        config_file: c.config.clone(),
        data_dir: c.data_dir.clone(),
        database_url: c.database_url.clone(),
        ..Overrides::default()
    }
}

/// The language of this run's output for people.
static LANG: std::sync::OnceLock<patrolsync_i18n::Lang> = std::sync::OnceLock::new();

/// The language of this run's output: `--lang`, else the locale's (Chinese by default).
pub fn lang() -> patrolsync_i18n::Lang {
    *LANG.get_or_init(|| patrolsync_i18n::Lang::from_arg_or_env(None))
}

/// What went wrong, in this run's language: each layer of `e` in turn (what was being done, then
/// why), down to the first error that words itself (a store, import, config, template or
/// catalog error), which ends the line with its own explanation.
pub fn error_text(e: &anyhow::Error) -> String {
    let lang = lang();
    let mut parts = vec![];
    for cause in e.chain() {
        if let Some(worded) = worded(cause, lang) {
            parts.push(worded);
            break;
        }
        parts.push(cause.to_string());
    }
    parts.join(&lang.text("cli-error-joint"))
}

/// `e` worded in `lang`, where it is one of the library's errors that can.
fn worded(e: &(dyn std::error::Error + 'static), lang: patrolsync_i18n::Lang) -> Option<String> {
    use crate::grid_import::ImportError;
    use crate::store::StoreError;
    use crate::templates::TemplateFileError;
    if let Some(t) = e.downcast_ref::<patrolsync_i18n::Text>() {
        return Some(t.in_lang(lang));
    }
    if let Some(e) = e.downcast_ref::<StoreError>() {
        return Some(e.text(lang));
    }
    if let Some(e) = e.downcast_ref::<ImportError>() {
        return Some(e.text(lang));
    }
    if let Some(e) = e.downcast_ref::<ConfigError>() {
        return Some(e.text(lang));
    }
    if let Some(e) = e.downcast_ref::<crate::server::ServeError>() {
        return Some(e.text(lang));
    }
    if let Some(e) = e.downcast_ref::<crate::routing::RulesFileError>() {
        return Some(e.0.in_lang(lang));
    }
    e.downcast_ref::<TemplateFileError>().map(|e| e.text(lang))
}

/// The word for `code` of vocabulary `prefix` in this run's language (`role-grid_manager` →
/// 网格长); the code itself where the catalog has none.
fn word(prefix: &str, code: &str) -> String {
    lang().word_or_key(prefix, code)
}

/// Runs the command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let _ = LANG.set(patrolsync_i18n::Lang::from_arg_or_env(cli.lang.as_deref()));
    match cli.command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Admin(args) => admin(args).await,
    }
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// What an admin command changes, for the audit log: its action and target (`None`: it only
/// reads).
fn audited(command: &AdminCommand) -> Option<(&'static str, String)> {
    let path = |p: &PathBuf| p.display().to_string();
    Some(match command {
        AdminCommand::SeedDemo { size, .. } => ("seed_demo", size.clone()),
        AdminCommand::Enroll {
            user, role, grid, ..
        } => (
            "enroll",
            format!("user {user} ({role}) cells {}", grid.join(",")),
        ),
        AdminCommand::Revoke { device, .. } => ("revoke", format!("device {device}")),
        AdminCommand::Grid {
            command: GridCommand::Import {
                file, check: false, ..
            },
        } => ("import_grid", path(file)),
        AdminCommand::Grid {
            command: GridCommand::Retire { code, .. },
        } => ("retire", code.clone()),
        AdminCommand::Checkpoints {
            command: ImportCommand::Import {
                file, check: false, ..
            },
        } => ("import_checkpoints", path(file)),
        AdminCommand::People {
            command: ImportCommand::Import {
                file, check: false, ..
            },
        } => ("import_people", path(file)),
        AdminCommand::Units {
            command: UnitCommand::Import {
                file, check: false, ..
            },
        } => ("import_units", path(file)),
        AdminCommand::Households {
            command: HouseholdCommand::Import {
                file, check: false, ..
            },
        } => ("import_households", path(file)),
        AdminCommand::Households {
            command: HouseholdCommand::Remove { codes, .. },
        } => ("remove_households", codes.join(",")),
        AdminCommand::Template {
            command: TemplateCommand::Publish {
                file, check: false, ..
            },
        } => ("template_publish", path(file)),
        AdminCommand::Routing {
            command: RoutingCommand::Import {
                file, check: false, ..
            },
        } => ("routing_import", path(file)),
        AdminCommand::Task {
            command: TaskCommand::Create { cell, kind, .. },
        } => ("create_task", format!("{kind} in {cell}")),
        AdminCommand::Assign {
            user,
            cells,
            remove,
            ..
        } => (
            if *remove { "unassign" } else { "assign" },
            format!("user {user} cells {}", cells.join(",")),
        ),
        AdminCommand::Export {
            ledger,
            period,
            cell,
            ..
        } => (
            "export",
            format!(
                "ledger {} {} of {}",
                ledger.name(),
                period.label,
                cell.as_deref().unwrap_or("(all)")
            ),
        ),
        AdminCommand::Admins { command } => return accounts::audited(command),
        _ => return None,
    })
}

async fn admin(args: AdminArgs) -> anyhow::Result<()> {
    let config = Config::load(&overrides(&args.common))?;
    let sql: Arc<dyn crate::store::AdminStore> = Arc::new(
        crate::open_sql_store(&config)
            .await
            // The store's own error after where: "opening the database at …: …", without the
            // server's start-up wording between them.
            .map_err(|e| match e {
                crate::server::ServeError::Store(e) => anyhow::Error::new(e),
                e => anyhow::Error::new(e),
            })
            .with_context(|| say!("cli-opening-database", url = redact(&config.database_url())))?,
    );
    let audit = audited(&args.command);
    let result = run_admin(&config, sql.clone(), args.command).await;
    if let Some((action, target)) = audit {
        let outcome = match &result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("error: {e:#}"),
        };
        accounts::audit(sql.as_ref(), action, target, outcome).await;
    }
    result
}

async fn run_admin(
    config: &Config,
    sql: Arc<dyn AdminStore>,
    command: AdminCommand,
) -> anyhow::Result<()> {
    let config = config.clone();
    let store: Arc<dyn Store> = sql.clone();
    // Each area's handler takes exactly the commands listed for it here.
    match command {
        c @ (AdminCommand::Admins { .. } | AdminCommand::Audit { .. }) => {
            accounts::run(&config, &sql, &store, c).await
        }
        c @ (AdminCommand::Grid { .. }
        | AdminCommand::Checkpoints { .. }
        | AdminCommand::People { .. }
        | AdminCommand::Template { .. }
        | AdminCommand::Assign { .. }
        | AdminCommand::SeedDemo { .. }) => grid::run(&config, &sql, &store, c).await,
        c @ (AdminCommand::Units { .. } | AdminCommand::Households { .. }) => {
            units::run(&config, &sql, c).await
        }
        AdminCommand::Routing { command } => routing::run(&sql, command).await,
        AdminCommand::Task { command } => tasks::run(&store, command).await,
        c @ (AdminCommand::Hazard { .. } | AdminCommand::Scope { .. }) => {
            inspect::run(&config, &sql, &store, c).await
        }
        c @ (AdminCommand::Report { .. } | AdminCommand::Export { .. }) => {
            reports::run(&config, &sql, &store, c).await
        }
        c @ (AdminCommand::Enroll { .. }
        | AdminCommand::Stats { .. }
        | AdminCommand::CheckIns { .. }
        | AdminCommand::MissingPhotos { .. }
        | AdminCommand::Devices { .. }
        | AdminCommand::Device { .. }
        | AdminCommand::Revoke { .. }
        | AdminCommand::Rejections { .. }
        | AdminCommand::Conflicts { .. }) => devices::run(&config, &sql, &store, c).await,
    }
}

/// Hides a password in a database URL for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
