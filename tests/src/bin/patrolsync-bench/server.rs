//! The server under test: the real `patrolsync` binary as a child process (so its CPU time and
//! memory are its own), plus the admin side the benchmark needs (seeding, one-time codes), done
//! through the server's library on the same database as `patrolsync admin` would.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use patrolsync_proto::Role;
use patrolsync_server::Config;
use patrolsync_server::pki::Pki;
use patrolsync_server::store::Store;
use patrolsync_tests::KillOnDrop;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A running `patrolsync serve`: started here, or attached to with `--server`.
pub struct ServerProc {
    /// The process when this benchmark started it: killed when dropped, so an error part way,
    /// or an interrupted run (see `main`), never leaves it running.
    child: Option<KillOnDrop>,
    /// The process to read CPU time and memory from, when known.
    pid: Option<u32>,
    pub addr: SocketAddr,
    /// The admin HTTP listener, when known (always for a server started here).
    pub admin: Option<SocketAddr>,
    pub config: Config,
    pub store: Arc<dyn Store>,
    pki: Pki,
}

impl ServerProc {
    /// Starts the binary next to this one on `data` (and `database_url`, else SQLite there).
    pub async fn start(data: &Path, database_url: Option<String>) -> anyhow::Result<ServerProc> {
        std::fs::create_dir_all(data)?;
        // Simulated devices record thousands of check-ins in seconds: no double-tap folding.
        // They all enroll from this one address, as phones behind one NAT would.
        let cfg_file = data.join("bench.toml");
        std::fs::write(
            &cfg_file,
            "double_tap_window = \"0s\"\n\n[limits]\nenrolls_per_minute_per_address = 1000000.0\n\
             unenrolled_connections = 100000\nunenrolled_connections_per_address = 100000\n",
        )?;
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let mut config = patrolsync_server::config::Config::from_file(&cfg_file)?;
        config.data_dir = data.to_owned();
        config.database_url = database_url;
        config.listen = addr;
        let (child, admin) = spawn(&config, &cfg_file)?;
        let store = patrolsync_server::open_store(&config).await?;
        let pki = Pki::open_or_init(data, &[])?;
        Ok(ServerProc {
            pid: Some(child.0.id()),
            child: Some(child),
            addr,
            admin: Some(admin),
            config,
            store,
            pki,
        })
    }

    /// SIGKILLs the server this benchmark started and starts a new process on the same data
    /// and address (the soak's crash).
    pub fn kill_and_restart(&mut self) -> anyhow::Result<()> {
        let child = self
            .child
            .as_mut()
            .context("not started by the benchmark")?;
        child.0.kill()?;
        child.0.wait()?;
        let (child, admin) = spawn(&self.config, &self.config.data_dir.join("bench.toml"))?;
        self.pid = Some(child.0.id());
        self.child = Some(child);
        self.admin = Some(admin);
        Ok(())
    }

    /// The server CA devices trust.
    pub fn ca(&self) -> anyhow::Result<CertificateDer<'static>> {
        Ok(CertificateDer::from_pem_file(
            self.config.data_dir.join("ca.crt"),
        )?)
    }

    /// One-time enrollment codes for users `{prefix}-{i}` with `role` and `cells`.
    pub async fn codes(
        &self,
        prefix: &str,
        n: usize,
        role: Role,
        cells: &[String],
    ) -> anyhow::Result<Vec<String>> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let issued = patrolsync_server::enroll::issue(
                self.store.as_ref(),
                &self.pki,
                &self.config,
                patrolsync_server::enroll::IssueRequest {
                    user: format!("{prefix}-{i}"),
                    role,
                    cells: cells.to_vec(),
                    server: Some(self.addr.to_string()),
                    ttl: None,
                    agency: None,
                },
            )
            .await?;
            out.push(issued.enrollment);
        }
        Ok(out)
    }

    /// Attaches to a server already running at `addr`, doing the admin side (codes, seeding)
    /// on its data dir and database as `patrolsync admin` does. Its CPU time and memory are read
    /// only when its `pid` is given (and it runs on this machine).
    pub async fn attach(
        addr: SocketAddr,
        admin: Option<SocketAddr>,
        data: &Path,
        database_url: Option<String>,
        pid: Option<u32>,
    ) -> anyhow::Result<ServerProc> {
        let config = Config {
            data_dir: data.to_owned(),
            database_url,
            listen: addr,
            ..Config::default()
        };
        let store = patrolsync_server::open_store(&config).await?;
        let pki = Pki::open_shared(data, &[], store.as_ref()).await?;
        Ok(ServerProc {
            child: None,
            pid,
            addr,
            admin,
            config,
            store,
            pki,
        })
    }

    /// Whether this benchmark can read the server's CPU time and memory.
    pub fn measured(&self) -> bool {
        self.pid.is_some()
    }

    /// (user + system CPU time in ms) of the server process so far (0 when unknown).
    pub fn cpu_ms(&self) -> u64 {
        self.pid.map_or(0, cpu_ms_of)
    }

    /// (resident KiB now, peak resident KiB) of the server process ((0, 0) when unknown).
    pub fn rss_kib(&self) -> (u64, u64) {
        let Some(pid) = self.pid else { return (0, 0) };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Stops the server if this benchmark started it (SIGTERM, so it drains as in production).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(child) = &mut self.child else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.0.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if child.0.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.0.kill()?;
        Ok(())
    }
}

/// Starts `patrolsync serve` (the binary next to this one) for `config` and waits until it
/// listens; returns the process and the admin listener's address.
fn spawn(config: &Config, cfg_file: &Path) -> anyhow::Result<(KillOnDrop, SocketAddr)> {
    let bin = std::env::current_exe()?
        .parent()
        .context("bench binary has no directory")?
        .join("patrolsync");
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it first (cargo build --release --bins)",
        bin.display()
    );
    let mut cmd = Command::new(&bin);
    cmd.arg("serve")
        .arg("--config")
        .arg(cfg_file)
        .arg("--data-dir")
        .arg(&config.data_dir)
        .arg("--listen")
        .arg(config.listen.to_string())
        .arg("--admin-listen")
        .arg("127.0.0.1:0")
        .env("PATROLSYNC_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(url) = &config.database_url {
        cmd.arg("--database-url").arg(url);
    }
    let mut child = KillOnDrop(
        cmd.spawn()
            .with_context(|| format!("starting {}", bin.display()))?,
    );
    let stdout = child.0.stdout.take().context("piped")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // The first line names both listeners: "… listening on udp ADDR …, admin http://ADDR".
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening on udp") {
                let admin = line
                    .rsplit_once("admin http://")
                    .and_then(|(_, a)| a.trim().parse::<SocketAddr>().ok());
                let _ = tx.send(admin);
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Some(admin)) => Ok((child, admin)),
        Ok(None) => anyhow::bail!("the server's first line names no admin address"),
        Err(_) => anyhow::bail!("the server did not start"),
    }
}

fn clock_ticks() -> u64 {
    // sysconf(_SC_CLK_TCK) is 100 on Linux in practice; `getconf` confirms it without libc.
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// (user + system CPU time in ms) of process `pid` so far (0 when unknown).
pub fn cpu_ms_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 1000 / clock_ticks()
}
