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
    // The first line is for programs too (scripts, the test harnesses, the SDK's Python
    // suite read the bound addresses off it): the same words in every language.
    println!(
        "patrolsync {} listening on udp {} (ALPN patrolsync/1), admin http://{}",
        env!("CARGO_PKG_VERSION"),
        server.local_addr(),
        server.admin_addr()
    );
    println!(
        "  {}",
        say!("cli-serve-data-dir", dir = dir, backend = backend)
    );
    println!(
        "  {}",
        say!("cli-serve-ca", fingerprint = server.ca_fingerprint())
    );
    println!(
        "  {}",
        say!("cli-serve-dial", address = server.config().public_address())
    );
    if server.config().public.enabled {
        let at = server.public_addr().unwrap_or(server.admin_addr());
        println!(
            "  {}",
            say!("cli-serve-public", url = format!("http://{at}/public/"))
        );
    }
    println!("{}", say!("cli-serve-next"));
    println!("  patrolsync admin --data-dir {dir} seed-demo");
    println!(
        "  patrolsync admin --data-dir {dir} enroll --user alice --role patroller --grid S1-C1"
    );
    println!(
        "  patrolsync-device --state-dir alice-phone enroll --code '{}'",
        say!("cli-serve-code-placeholder")
    );
    println!("{}", say!("cli-serve-stop"));

    shutdown_signal().await;
    eprintln!("{}", say!("cli-serve-draining"));
    server.shutdown().await;
    eprintln!("{}", say!("cli-serve-stopped"));
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
