//! What the phone's platform provides: a safe place for the device's credentials, and a clock
//! that counts from boot.

use std::path::PathBuf;

/// Where the device's credentials live: its private key, its certificate and the server CA it
/// pinned at enrollment, each as bytes under a name. The default keeps them as files in the
/// state directory (mode 0600); an app passes its own to keep them in Android Keystore-backed
/// storage or the iOS Keychain.
pub trait KeyStore: Send + Sync + std::fmt::Debug {
    /// The bytes saved under `name`, or `None` if nothing is.
    ///
    /// # Errors
    ///
    /// A sentence for the log when the store cannot be read.
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, String>;
    /// Saves `bytes` under `name` durably, replacing what was there.
    ///
    /// # Errors
    ///
    /// A sentence for the log when the store cannot be written.
    fn save(&self, name: &str, bytes: &[u8]) -> Result<(), String>;
    /// Removes what is saved under `name` (nothing saved is not an error).
    ///
    /// # Errors
    ///
    /// A sentence for the log when the store cannot be written.
    fn remove(&self, name: &str) -> Result<(), String>;
}

/// The platform's monotonic clock, for the time since boot each check-in carries (the server
/// uses it to spot a device clock that was moved). Linux and Android have `/proc/uptime`, which
/// the SDK reads when no clock is given; iOS does not: pass `ProcessInfo.systemUptime`.
pub trait MonotonicClock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since boot, if known.
    fn since_boot_ms(&self) -> Option<u64>;
}

/// Credentials as files in a directory, written atomically with mode 0600.
#[derive(Debug)]
pub(crate) struct FileKeyStore(pub(crate) PathBuf);

impl KeyStore for FileKeyStore {
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        match std::fs::read(self.0.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{name}: {e}")),
        }
    }

    fn save(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        write_file(&self.0.join(name), bytes).map_err(|e| format!("{name}: {e}"))
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        match std::fs::remove_file(self.0.join(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("{name}: {e}")),
        }
    }
}

/// Writes `bytes` to `path` atomically (a temporary file, synced, renamed), mode 0600.
fn write_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable once the directory is.
    match path.parent() {
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}
