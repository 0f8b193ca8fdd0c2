//! Photos (blobs), content-addressed by SHA-256, on the filesystem under the data dir. An upload
//! appends to a staging file made durable at least every MiB, so an interrupted upload resumes
//! from what the server holds; at the end the bytes are hashed and the file moves into place
//! atomically, or is discarded if the hash does not match. The same photo from two devices is
//! stored once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

/// Progress is made durable at least this often.
pub const SYNC_EVERY: u64 = 1 << 20;

/// Lower-case hex of a hash.
pub fn hex(sha: &[u8; 32]) -> String {
    crate::pki::hex(sha)
}

/// What the server holds of a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Held {
    /// Bytes held (the whole size when complete).
    pub bytes: u64,
    /// Stored and verified.
    pub complete: bool,
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// Disk trouble.
    #[error("photo storage: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes do not hash to the announced SHA-256; the staging data was discarded.
    #[error(
        "photo {0}: the uploaded bytes do not match its SHA-256; they were discarded, send the photo again"
    )]
    HashMismatch(String),
    /// Another upload of the same photo is running.
    #[error("photo {0} is being uploaded by another request; retry shortly")]
    Busy(String),
}

/// Filesystem blob storage: `blobs/ab/<hex>` when complete, `blobs/staging/<hex>` while
/// uploading.
#[derive(Debug)]
pub struct FsBlobs {
    root: PathBuf,
    uploading: Mutex<HashSet<[u8; 32]>>,
}

/// Marks one photo as being uploaded; released on drop.
#[derive(Debug)]
pub struct UploadGuard<'a> {
    blobs: &'a FsBlobs,
    sha: [u8; 32],
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        self.blobs
            .uploading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.sha);
    }
}

impl FsBlobs {
    /// Storage under `root` (created if missing).
    pub fn open(root: &Path) -> std::io::Result<FsBlobs> {
        std::fs::create_dir_all(root.join("staging"))?;
        Ok(FsBlobs {
            root: root.to_owned(),
            uploading: Mutex::new(HashSet::new()),
        })
    }

    fn final_path(&self, sha: &[u8; 32]) -> PathBuf {
        let h = hex(sha);
        self.root.join(&h[..2]).join(h)
    }

    fn staging_path(&self, sha: &[u8; 32]) -> PathBuf {
        self.root.join("staging").join(hex(sha))
    }

    /// What is held of `sha`.
    pub async fn held(&self, sha: &[u8; 32]) -> std::io::Result<Held> {
        if let Ok(m) = tokio::fs::metadata(self.final_path(sha)).await {
            return Ok(Held {
                bytes: m.len(),
                complete: true,
            });
        }
        match tokio::fs::metadata(self.staging_path(sha)).await {
            Ok(m) => Ok(Held {
                bytes: m.len(),
                complete: false,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Held {
                bytes: 0,
                complete: false,
            }),
            Err(e) => Err(e),
        }
    }

    /// Claims the photo for one upload at a time.
    pub fn claim(&self, sha: &[u8; 32]) -> Result<UploadGuard<'_>, BlobError> {
        if !self
            .uploading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*sha)
        {
            return Err(BlobError::Busy(hex(sha)));
        }
        Ok(UploadGuard {
            blobs: self,
            sha: *sha,
        })
    }

    /// The staging file, opened for appending.
    pub async fn staging(
        &self,
        _guard: &UploadGuard<'_>,
        sha: &[u8; 32],
    ) -> std::io::Result<tokio::fs::File> {
        tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.staging_path(sha))
            .await
    }

    /// Verifies the staged bytes and moves them into place; on a mismatch discards them.
    pub async fn finish(&self, _guard: &UploadGuard<'_>, sha: &[u8; 32]) -> Result<u64, BlobError> {
        let staging = self.staging_path(sha);
        let path = staging.clone();
        let digest = tokio::task::spawn_blocking(move || -> std::io::Result<[u8; 32]> {
            use std::io::Read;
            let mut f = std::fs::File::open(&path)?;
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                ctx.update(&buf[..n]);
            }
            let mut out = [0u8; 32];
            out.copy_from_slice(ctx.finish().as_ref());
            Ok(out)
        })
        .await
        .map_err(|e| BlobError::Io(std::io::Error::other(e)))??;
        if &digest != sha {
            let _ = tokio::fs::remove_file(&staging).await;
            return Err(BlobError::HashMismatch(hex(sha)));
        }
        let dest = self.final_path(sha);
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

    /// The stored photo, for download.
    pub async fn read(&self, sha: &[u8; 32]) -> std::io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.final_path(sha)).await
    }

    /// Deletes staging files untouched for longer than `max_age`; returns how many.
    pub async fn expire_staging(&self, max_age: Duration) -> std::io::Result<usize> {
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

/// Appends `chunk`, syncing whenever another [`SYNC_EVERY`] bytes have been written.
pub async fn append(
    file: &mut tokio::fs::File,
    chunk: &[u8],
    unsynced: &mut u64,
) -> std::io::Result<()> {
    file.write_all(chunk).await?;
    *unsynced += chunk.len() as u64;
    if *unsynced >= SYNC_EVERY {
        file.sync_data().await?;
        *unsynced = 0;
    }
    Ok(())
}
