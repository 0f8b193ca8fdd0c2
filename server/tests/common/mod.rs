//! Helpers for tests that run the real `patrolsync` binary.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use patrolsync_server::config::{PhotoBackend, Photos};

pub const BIN: &str = env!("CARGO_BIN_EXE_patrolsync");

pub fn admin(data: &Path, db: Option<&str>, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let mut cmd = Command::new(BIN);
    cmd.args(["--lang", "en", "admin", "--data-dir"]).arg(data);
    if let Some(url) = db {
        cmd.arg("--database-url").arg(url);
    }
    let out = cmd.args(args).arg("--json").output()?;
    anyhow::ensure!(
        out.status.success(),
        "admin {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes a configuration file holding just the photo storage settings.
pub fn photo_config(dir: &Path, photos: &Photos) -> anyhow::Result<std::path::PathBuf> {
    let quote = |v: &Option<String>| match v {
        Some(v) => format!("{v:?}"),
        None => "\"\"".into(),
    };
    let mut text = String::from("[photos]\n");
    if let Some(path) = &photos.path {
        text += &format!("path = {:?}\n", path.display().to_string());
    }
    if photos.backend == PhotoBackend::S3 {
        text += &format!(
            "backend = \"s3\"\nbucket = {}\nendpoint = {}\nregion = {}\nprefix = {:?}\nallow_http = {}\n",
            quote(&photos.bucket),
            quote(&photos.endpoint),
            quote(&photos.region),
            photos.prefix,
            photos.allow_http
        );
        for (key, v) in [
            ("access_key_id", &photos.access_key_id),
            ("secret_access_key", &photos.secret_access_key),
        ] {
            if v.is_some() {
                text += &format!("{key} = {}\n", quote(v));
            }
        }
    }
    let path = dir.join("photos.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Starts `patrolsync serve` and waits for its "listening" line.
pub fn serve(data: &Path, db: Option<&str>, port: u16) -> anyhow::Result<Node> {
    serve_with(data, db, port, None)
}

/// [`serve`] with a configuration file.
pub fn serve_with(
    data: &Path,
    db: Option<&str>,
    port: u16,
    config: Option<&Path>,
) -> anyhow::Result<Node> {
    start(serve_command(data, db, port, config))
}

/// The `patrolsync serve` command [`serve_with`] runs, to adjust before [`start`].
pub fn serve_command(data: &Path, db: Option<&str>, port: u16, config: Option<&Path>) -> Command {
    let mut cmd = Command::new(BIN);
    // The tests read the server's English lines ("stopped").
    cmd.args(["--lang", "en", "serve"]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.arg("--data-dir")
        .arg(data)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--admin-listen")
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = db {
        cmd.arg("--database-url").arg(url);
    }
    cmd
}

/// Starts a `patrolsync serve` command and waits for its "listening" line.
pub fn start(mut cmd: Command) -> anyhow::Result<Node> {
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening on udp") {
                let _ = tx.send(line);
            }
        }
    });
    // The log is read as it comes (shown with the test's output, and kept for
    // [`Node::wait_with_log`]), so a chatty server never blocks on a full pipe.
    let log = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            let mut log = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                log.push_str(&line);
                log.push('\n');
            }
            log
        })
    });
    let node = Node {
        child: Some(child),
        log,
    };
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| anyhow::anyhow!("server did not report listening"))?;
    Ok(node)
}

/// A `patrolsync serve` process, killed when dropped so a failing test leaves none behind.
pub struct Node {
    child: Option<Child>,
    /// The thread reading its log (stderr), which returns all of it at the end.
    log: Option<std::thread::JoinHandle<String>>,
}

impl Node {
    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) -> std::io::Result<()> {
        if let Some(c) = &mut self.child {
            c.kill()?;
            c.wait()?;
        }
        self.child = None;
        Ok(())
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Waits for the process to exit by itself; its exit status and its whole log.
    pub fn wait_with_log(mut self) -> std::io::Result<(std::process::ExitStatus, String)> {
        let status = self.child.take().expect("a running node").wait()?;
        let log = match self.log.take() {
            Some(t) => t.join().unwrap_or_default(),
            None => String::new(),
        };
        Ok((status, log))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
