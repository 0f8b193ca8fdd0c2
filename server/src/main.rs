//! `patrolsync`: the server binary. Thin: parse the command line, set up logging, run.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = match patrolsync_server::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return patrolsync_i18n::cli::argument_error(e),
    };
    // The server logs what it does; an admin command only what went wrong (a database's
    // notices would otherwise stand before its output and its error).
    let default = if cli.serves() {
        "info"
    } else {
        "warn,sqlx=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(patrolsync_server::config::ENV_LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_format == "json" {
        // One JSON object per line, with the enclosing spans (connection: device and remote
        // address; rpc: kind) so a collector can follow one device.
        logs.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        logs.init();
    }
    match patrolsync_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let error = patrolsync_server::cli::error_text(&e);
            eprintln!(
                "{}",
                patrolsync_i18n::message!(
                    patrolsync_server::cli::lang(),
                    "cli-error",
                    error = error
                )
            );
            std::process::ExitCode::FAILURE
        }
    }
}
