//! The filesystem backend of photo storage: photos at `<root>/<hex[..2]>/<hex>`, each upload's
//! staging at `<root>/staging/<hex>.<device>`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncSeekExt;

use super::{BlobError, BlobReader, SYNC_EVERY, digest_bytes};
use crate::config::Photos;

/// Photos on the filesystem under `root`.
#[derive(Debug)]
pub(super) struct FsBlobs {
    root: PathBuf,
}

/// A file staging: bytes are gathered a MiB at a time; each MiB is hashed, written and fsynced
/// in the blocking pool while the next one arrives (two buffers), so neither the disk nor
/// SHA-256 stalls the stream, and finishing needs no second pass over the file. The file and the
/// hash state travel with the write in flight and come back when it is done.
pub(super) struct FileStaging {
    file: Option<std::fs::File>,
    buf: Vec<u8>,
    spare: Vec<u8>,
    ctx: Option<Box<ring::digest::Context>>,
    pending: Option<tokio::task::JoinHandle<Written>>,
    unsynced: u64,
}

impl std::fmt::Debug for FileStaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "File({} bytes buffered)", self.buf.len())
    }
}

type Written = std::io::Result<(std::fs::File, Vec<u8>, Box<ring::digest::Context>)>;

/// Hashes `bytes` into `ctx`, appends them to `f` and fsyncs, in the blocking pool.
fn write_durably(
    mut f: std::fs::File,
    bytes: Vec<u8>,
    mut ctx: Box<ring::digest::Context>,
) -> tokio::task::JoinHandle<Written> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        ctx.update(&bytes);
        f.write_all(&bytes)?;
        // Stamped with this process's clock, which `expire_staging` reads it against: a
        // filesystem's own stamp may come from another clock (an NFS server's).
        f.set_modified(std::time::SystemTime::now())?;
        f.sync_data()?;
        Ok((f, bytes, ctx))
    })
}

/// Waits for the write in flight, if any, and takes back the file, its buffer and the hash.
async fn settle(
    pending: &mut Option<tokio::task::JoinHandle<Written>>,
    file: &mut Option<std::fs::File>,
    spare: &mut Vec<u8>,
    ctx: &mut Option<Box<ring::digest::Context>>,
) -> Result<(), BlobError> {
    if let Some(h) = pending.take() {
        let (f, mut b, c) = h
            .await
            .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        b.clear();
        *file = Some(f);
        *spare = b;
        *ctx = Some(c);
    }
    Ok(())
}

fn lost() -> BlobError {
    BlobError::Io(std::io::Error::other(
        "staging file lost by an earlier error",
    ))
}

impl FileStaging {
    /// See [`super::Staging::write`].
    pub(super) async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.buf.extend_from_slice(chunk);
        self.unsynced += chunk.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            self.start_write().await?;
            self.unsynced = 0;
        }
        Ok(())
    }

    /// See [`super::Staging::persist`].
    pub(super) async fn persist(&mut self) -> Result<(), BlobError> {
        if !self.buf.is_empty() {
            self.start_write().await?;
        }
        let FileStaging {
            file,
            spare,
            pending,
            ctx,
            ..
        } = self;
        settle(pending, file, spare, ctx).await?;
        self.unsynced = 0;
        Ok(())
    }

    /// Waits for the write in flight (so at most two MiB are ever not yet durable), then sends
    /// the buffered bytes on their way to disk; the spare buffer takes their place.
    async fn start_write(&mut self) -> Result<(), BlobError> {
        let FileStaging {
            file,
            buf,
            spare,
            pending,
            ctx,
            ..
        } = self;
        settle(pending, file, spare, ctx).await?;
        let f = file.take().ok_or_else(lost)?;
        let c = ctx.take().ok_or_else(lost)?;
        let bytes = std::mem::replace(buf, std::mem::take(spare));
        *pending = Some(write_durably(f, bytes, c));
        Ok(())
    }
}

impl FsBlobs {
    /// Under `photos.path`, else `data_dir/blobs`; creates the staging directory.
    pub(super) fn open(photos: &Photos, data_dir: &Path) -> Result<FsBlobs, BlobError> {
        let root = photos
            .path
            .clone()
            .unwrap_or_else(|| data_dir.join("blobs"));
        std::fs::create_dir_all(root.join("staging"))?;
        Ok(FsBlobs { root })
    }

    pub(super) fn describe(&self) -> String {
        format!("filesystem {}", self.root.display())
    }

    fn final_path(&self, sha: &[u8; 32]) -> PathBuf {
        let h = hex::encode(sha);
        self.root.join(&h[..2]).join(h)
    }

    /// `owner` is a device id (UUID text), so it cannot leave the staging directory.
    fn staging_path(&self, sha: &[u8; 32], owner: &str) -> PathBuf {
        self.root
            .join("staging")
            .join(format!("{}.{owner}", hex::encode(sha)))
    }

    pub(super) async fn stored(&self, sha: &[u8; 32]) -> Result<Option<u64>, BlobError> {
        match tokio::fs::metadata(self.final_path(sha)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn staged(&self, sha: &[u8; 32], owner: &str) -> Result<u64, BlobError> {
        match tokio::fs::metadata(self.staging_path(sha, owner)).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn staging(
        &self,
        sha: &[u8; 32],
        owner: &str,
        held: u64,
    ) -> Result<FileStaging, BlobError> {
        let path = self.staging_path(sha, owner);
        // A resumed upload: hash what is already held, so the digest covers it all.
        let ((file, on_disk), ctx) = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(&path)?;
            let mut n_held = 0u64;
            let mut chunk = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut chunk)?;
                if n == 0 {
                    break;
                }
                ctx.update(&chunk[..n]);
                n_held += n as u64;
            }
            std::io::Result::Ok(((file, n_held), ctx))
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        if on_disk != held {
            return Err(BlobError::Io(std::io::Error::other(format!(
                "staging for {} changed size under us ({on_disk}, expected {held})",
                hex::encode(sha)
            ))));
        }
        Ok(FileStaging {
            file: Some(file),
            buf: Vec::with_capacity(SYNC_EVERY as usize + 64 * 1024),
            spare: Vec::with_capacity(SYNC_EVERY as usize + 64 * 1024),
            ctx: Some(Box::new(ctx)),
            pending: None,
            unsynced: 0,
        })
    }

    /// Finishes a staging already made durable (see [`super::Blobs::finish`]).
    pub(super) async fn finish(
        &self,
        sha: &[u8; 32],
        owner: &str,
        staging: FileStaging,
    ) -> Result<u64, BlobError> {
        let ctx = staging.ctx.ok_or_else(lost)?;
        self.finish_file(sha, owner, digest_bytes(*ctx)).await
    }

    async fn finish_file(
        &self,
        sha: &[u8; 32],
        owner: &str,
        digest: [u8; 32],
    ) -> Result<u64, BlobError> {
        let staging = self.staging_path(sha, owner);
        if &digest != sha {
            let _ = tokio::fs::remove_file(&staging).await;
            return Err(BlobError::HashMismatch(hex::encode(sha)));
        }
        let dest = self.final_path(sha);
        if let Ok(m) = tokio::fs::metadata(&dest).await {
            tokio::fs::remove_file(&staging).await?;
            return Ok(m.len());
        }
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::rename(&staging, &dest).await?;
        if let Some(dir) = dest.parent() {
            // Make the rename itself durable.
            let dir = dir.to_owned();
            let _ = tokio::task::spawn_blocking(move || {
                std::fs::File::open(dir).and_then(|d| d.sync_all())
            })
            .await;
        }
        Ok(tokio::fs::metadata(&dest).await?.len())
    }

    pub(super) async fn read(&self, sha: &[u8; 32], offset: u64) -> Result<BlobReader, BlobError> {
        let mut f = tokio::fs::File::open(self.final_path(sha)).await?;
        f.seek(std::io::SeekFrom::Start(offset)).await?;
        Ok(Box::pin(f))
    }

    pub(super) async fn expire_staging(&self, max_age: Duration) -> Result<usize, BlobError> {
        let mut n = 0;
        let mut dir = tokio::fs::read_dir(self.root.join("staging")).await?;
        while let Some(e) = dir.next_entry().await? {
            let old = e
                .metadata()
                .await?
                .modified()?
                .elapsed()
                .map(|a| a > max_age)
                .unwrap_or(false);
            if old && tokio::fs::remove_file(e.path()).await.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}
