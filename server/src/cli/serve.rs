//! `patrolsync serve`: run the server until a signal, then drain.

use super::*;
use crate::config::*;

pub(super) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut o = overrides(&args.common);
    o.listen = args.listen;
    o.admin_listen = args.admin_listen;
    o.public_address = args.public_address;
    let config = Config::load(&o)?;
    let backend = if config.database_url.is_some() {
        "external database"
    } else {
        "SQLite"
    };
    let data_dir = config.data_dir.clone();
    let server = crate::Server::bind(config).await?;
    let dir = data_dir.display();
    println!(
        "patrolsync {} listening on udp {} (ALPN patrolsync/1), admin http://{}",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
        server.admin_addr()
    );
    println!("  data dir        {dir} ({backend})");
    println!("  CA fingerprint  sha256:{}", server.ca_fingerprint());
    println!("  devices dial    {}", server.config().public_address());
    println!("next: create the demo grid and enroll a device (in another terminal):");
    println!("  patrolsync admin --data-dir {dir} seed-demo");
    println!(
        "  patrolsync admin --data-dir {dir} enroll --user alice --role patroller --grid S1-C1"
    );
    println!(
        "  patrolsync-device --state-dir alice-phone enroll --code '<the patrolsync://… string printed>'"
    );
    println!("press Ctrl-C to stop (in-flight requests finish first)");

    shutdown_signal().await;
    eprintln!("shutting down: draining in-flight requests…");
    server.shutdown().await;
    eprintln!("stopped");
    Ok(())
}

pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
