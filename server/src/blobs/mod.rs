//! Photos (blobs), content-addressed by SHA-256, on the filesystem under the data dir or in an
//! S3-compatible object store. An upload appends to staging made durable at least every MiB, so
//! an interrupted upload resumes from what the server holds; the bytes are hashed as they arrive
//! (and what a resumed upload already held, when it resumes), and at the end moved into place
//! atomically, or discarded if the hash does not match. The same photo from two
//! devices is stored once.
//!
//! Staging is each uploader's own (`<hex>.<device>`): one device's bytes can never spoil
//! another's upload of the same photo. An upload that finishes when the photo is already stored
//! is verified the same way and then discarded: the device proved it holds the photo.
//!
//! In the object store, staging is a run of chunk objects `staging/<hex>/<device>/<offset>`
//! (each up to one MiB, written as they fill), so what one node staged is visible to every node:
//! a device that reconnects to another node resumes from the same offset. The finished photo is
//! `blobs/<hex>`, assembled by a multipart upload that is completed only if the hash matches.
//!
//! This file holds the types the rest of the server uses and dispatches to the backend:
//! `fs.rs` is the filesystem, `s3.rs` the object store.

mod fs;
mod s3;

use std::collections::HashSet;
use std::path::Path;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncRead;

use crate::config::{PhotoBackend, Photos};

/// Progress is made durable at least this often.
pub const SYNC_EVERY: u64 = 1 << 20;

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
    /// The object store refused or could not be reached.
    #[error("photo storage: {0}")]
    Object(#[from] object_store::Error),
    /// The bytes do not hash to the announced SHA-256; the staging data was discarded.
    #[error(
        "photo {0}: the uploaded bytes do not match its SHA-256; they were discarded, send the photo again"
    )]
    HashMismatch(String),
    /// Another upload of the same photo is running.
    #[error("photo {0} is being uploaded by another request; retry shortly")]
    Busy(String),
    /// The photo storage configuration cannot be used.
    #[error("photo storage is misconfigured: {0}")]
    Config(String),
}

/// Bytes of a stored photo, from the requested offset.
pub type BlobReader = Pin<Box<dyn AsyncRead + Send>>;

/// Photo storage: one of the configured backends, plus the set of uploads in progress here.
#[derive(Debug)]
pub struct Blobs {
    backend: Backend,
    uploading: Mutex<HashSet<([u8; 32], String)>>,
}

#[derive(Debug)]
enum Backend {
    Fs(fs::FsBlobs),
    Object(s3::ObjectBlobs),
}

/// Marks one device's upload of one photo as running through this node; released on drop.
#[derive(Debug)]
pub struct UploadGuard<'a> {
    blobs: &'a Blobs,
    sha: [u8; 32],
    owner: String,
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        self.blobs
            .uploading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.sha, std::mem::take(&mut self.owner)));
    }
}

/// Where an upload's bytes go until the photo is complete.
#[derive(Debug)]
pub struct Staging {
    target: StagingTarget,
}

enum StagingTarget {
    File(fs::FileStaging),
    Object(s3::ObjectStaging),
}

impl std::fmt::Debug for StagingTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StagingTarget::File(s) => s.fmt(f),
            StagingTarget::Object(s) => s.fmt(f),
        }
    }
}

/// A staging opened for an upload ([`Blobs::open_staging`]), not yet resumed.
#[derive(Debug)]
pub struct OpenStaging<'a> {
    target: OpenTarget<'a>,
}

#[derive(Debug)]
enum OpenTarget<'a> {
    File(fs::OpenFile),
    Object {
        blobs: &'a s3::ObjectBlobs,
        sha: [u8; 32],
        owner: String,
        held: u64,
    },
}

impl OpenStaging<'_> {
    /// Readies the staging for the upload's bytes: on the filesystem, makes it if it was not
    /// there and hashes what it holds; in the object store, drops chunks past a gap (its
    /// chunks are hashed when the upload finishes).
    pub async fn resume(self) -> Result<Staging, BlobError> {
        let target = match self.target {
            OpenTarget::File(f) => StagingTarget::File(f.resume().await?),
            OpenTarget::Object {
                blobs,
                sha,
                owner,
                held,
            } => StagingTarget::Object(blobs.staging(&sha, &owner, held).await?),
        };
        Ok(Staging { target })
    }
}

impl Staging {
    /// Appends `chunk`; every [`SYNC_EVERY`] bytes, that MiB starts on its way to disk (and the
    /// one before it is waited for, so at most two MiB, and on the filesystem the part of a
    /// block that waits for the next write, are ever not yet durable).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        match &mut self.target {
            StagingTarget::File(s) => s.write(chunk).await,
            StagingTarget::Object(s) => s.write(chunk).await,
        }
    }

    /// Makes everything written so far durable.
    pub async fn persist(&mut self) -> Result<(), BlobError> {
        match &mut self.target {
            StagingTarget::File(s) => s.persist().await,
            StagingTarget::Object(s) => s.persist().await,
        }
    }
}

impl Blobs {
    /// Opens the configured storage; the filesystem backend lives under `data_dir/blobs` unless
    /// `photos.path` says otherwise.
    pub fn open(photos: &Photos, data_dir: &Path) -> Result<Blobs, BlobError> {
        let backend = match photos.backend {
            PhotoBackend::Fs => Backend::Fs(fs::FsBlobs::open(photos, data_dir)?),
            PhotoBackend::S3 => Backend::Object(s3::ObjectBlobs::open(photos)?),
        };
        Ok(Blobs {
            backend,
            uploading: Mutex::new(HashSet::new()),
        })
    }

    /// Checks the storage can be reached (the object store answers a listing).
    pub async fn check(&self) -> Result<(), BlobError> {
        match &self.backend {
            Backend::Fs(_) => Ok(()),
            Backend::Object(b) => b.check().await,
        }
    }

    /// Which backend is in use, for logs.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Fs(b) => b.describe(),
            Backend::Object(b) => b.describe(),
        }
    }

    /// The stored photo's size, if it is stored.
    pub async fn stored(&self, sha: &[u8; 32]) -> Result<Option<u64>, BlobError> {
        match &self.backend {
            Backend::Fs(b) => b.stored(sha).await,
            Backend::Object(b) => b.stored(sha).await,
        }
    }

    /// What `owner` has staged of `sha` (its own upload in progress).
    pub async fn staged(&self, sha: &[u8; 32], owner: &str) -> Result<u64, BlobError> {
        match &self.backend {
            Backend::Fs(b) => b.staged(sha, owner).await,
            Backend::Object(b) => b.staged(sha, owner).await,
        }
    }

    /// What is held of `sha`: the stored photo, else what `owner` has staged of it.
    pub async fn held(&self, sha: &[u8; 32], owner: &str) -> Result<Held, BlobError> {
        Ok(match self.stored(sha).await? {
            Some(bytes) => Held {
                bytes,
                complete: true,
            },
            None => Held {
                bytes: self.staged(sha, owner).await?,
                complete: false,
            },
        })
    }

    /// Claims `owner`'s upload of the photo, one at a time on this node.
    pub fn claim(&self, sha: &[u8; 32], owner: &str) -> Result<UploadGuard<'_>, BlobError> {
        if !self
            .uploading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((*sha, owner.to_owned()))
        {
            return Err(BlobError::Busy(hex::encode(sha)));
        }
        Ok(UploadGuard {
            blobs: self,
            sha: *sha,
            owner: owner.to_owned(),
        })
    }

    /// Opens the claimed upload's staging, appending at `held` (what [`Blobs::held`]
    /// answered): on the filesystem, locked for this upload (Busy while an upload on another
    /// node sharing the directory holds it). Nothing is made, written or read until
    /// [`OpenStaging::resume`] is called, so an upload refused in between (its budget) leaves
    /// storage as it was and costs no reading.
    pub async fn open_staging(
        &self,
        guard: &UploadGuard<'_>,
        held: u64,
    ) -> Result<OpenStaging<'_>, BlobError> {
        let (sha, owner) = (&guard.sha, guard.owner.as_str());
        let target = match &self.backend {
            Backend::Fs(b) => OpenTarget::File(b.open_staging(sha, owner, held).await?),
            // Nothing to lock: the object store is touched as the upload resumes.
            Backend::Object(b) => OpenTarget::Object {
                blobs: b,
                sha: *sha,
                owner: owner.to_owned(),
                held,
            },
        };
        Ok(OpenStaging { target })
    }

    /// Opens and resumes the claimed upload's staging in one step.
    #[cfg(test)]
    pub async fn staging(&self, guard: &UploadGuard<'_>, held: u64) -> Result<Staging, BlobError> {
        self.open_staging(guard, held).await?.resume().await
    }

    /// Makes the staging durable, verifies the bytes and moves them into place; on a mismatch
    /// discards them. If the photo is stored already (another device finished first) the
    /// verified bytes are discarded: the upload only proved that its device holds the photo.
    pub async fn finish(
        &self,
        guard: &UploadGuard<'_>,
        staging: Staging,
    ) -> Result<u64, BlobError> {
        let (sha, owner) = (&guard.sha, guard.owner.as_str());
        match (&self.backend, staging.target) {
            // The filesystem makes the rest durable as it finishes.
            (Backend::Fs(b), StagingTarget::File(s)) => b.finish(sha, owner, s).await,
            (Backend::Object(b), StagingTarget::Object(mut s)) => {
                s.persist().await?;
                b.finish(sha, owner).await
            }
            _ => Err(BlobError::Config("staging from another backend".into())),
        }
    }

    /// The stored photo from `offset` (at most its size), for download.
    pub async fn read(&self, sha: &[u8; 32], offset: u64) -> Result<BlobReader, BlobError> {
        match &self.backend {
            Backend::Fs(b) => b.read(sha, offset).await,
            Backend::Object(b) => b.read(sha, offset).await,
        }
    }

    /// Deletes partial uploads untouched for longer than `max_age`; returns how many.
    pub async fn expire_staging(&self, max_age: Duration) -> Result<usize, BlobError> {
        match &self.backend {
            Backend::Fs(b) => b.expire_staging(max_age).await,
            Backend::Object(b) => b.expire_staging(max_age).await,
        }
    }
}

fn digest_bytes(ctx: ring::digest::Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}
