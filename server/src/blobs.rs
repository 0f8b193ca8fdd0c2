//! Photos (blobs), content-addressed by SHA-256, on the filesystem under the data dir or in an
//! S3-compatible object store. An upload appends to staging made durable at least every MiB, so
//! an interrupted upload resumes from what the server holds; at the end the bytes are hashed and
//! moved into place atomically, or discarded if the hash does not match. The same photo from two
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

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::{AsyncRead, AsyncSeekExt};

use crate::config::{PhotoBackend, Photos};

/// Progress is made durable at least this often.
pub const SYNC_EVERY: u64 = 1 << 20;

/// Part size of the multipart upload that assembles a photo in the object store (S3's minimum).
const PART_BYTES: usize = 5 << 20;

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
    Fs(PathBuf),
    Object {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
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
    unsynced: u64,
}

enum StagingTarget {
    /// Bytes are gathered a MiB at a time; each MiB is hashed, written and fsynced in the
    /// blocking pool while the next one arrives (two buffers), so neither the disk nor SHA-256
    /// stalls the stream, and finishing needs no second pass over the file. The file and the
    /// hash state travel with the write in flight and come back when it is done.
    File {
        file: Option<std::fs::File>,
        buf: Vec<u8>,
        spare: Vec<u8>,
        ctx: Option<Box<ring::digest::Context>>,
        pending: Option<tokio::task::JoinHandle<Written>>,
    },
    Object {
        store: Arc<dyn ObjectStore>,
        dir: ObjectPath,
        offset: u64,
        buf: Vec<u8>,
    },
}

impl std::fmt::Debug for StagingTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StagingTarget::File { buf, .. } => write!(f, "File({} bytes buffered)", buf.len()),
            StagingTarget::Object { dir, offset, .. } => write!(f, "Object({dir} @ {offset})"),
        }
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

impl Staging {
    /// Appends `chunk`; every [`SYNC_EVERY`] bytes, that MiB starts on its way to disk (and the
    /// one before it is waited for, so at most two MiB are ever not yet durable).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        match &mut self.target {
            StagingTarget::File { buf, .. } => buf.extend_from_slice(chunk),
            StagingTarget::Object { buf, .. } => buf.extend_from_slice(chunk),
        }
        self.unsynced += chunk.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            match &mut self.target {
                StagingTarget::File {
                    file,
                    buf,
                    spare,
                    pending,
                    ctx,
                } => {
                    settle(pending, file, spare, ctx).await?;
                    let f = file.take().ok_or_else(lost)?;
                    let c = ctx.take().ok_or_else(lost)?;
                    let bytes = std::mem::replace(buf, std::mem::take(spare));
                    *pending = Some(write_durably(f, bytes, c));
                    self.unsynced = 0;
                }
                StagingTarget::Object { .. } => self.persist().await?,
            }
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    pub async fn persist(&mut self) -> Result<(), BlobError> {
        match &mut self.target {
            StagingTarget::File {
                file,
                buf,
                spare,
                pending,
                ctx,
            } => {
                settle(pending, file, spare, ctx).await?;
                if !buf.is_empty() {
                    let f = file.take().ok_or_else(lost)?;
                    let c = ctx.take().ok_or_else(lost)?;
                    let bytes = std::mem::take(buf);
                    *pending = Some(write_durably(f, bytes, c));
                    settle(pending, file, buf, ctx).await?;
                }
            }
            StagingTarget::Object {
                store,
                dir,
                offset,
                buf,
            } => {
                if !buf.is_empty() {
                    let bytes = bytes::Bytes::from(std::mem::take(buf));
                    let n = bytes.len() as u64;
                    store.put(&chunk_path(dir, *offset), bytes.into()).await?;
                    *offset += n;
                }
            }
        }
        self.unsynced = 0;
        Ok(())
    }
}

fn chunk_path(dir: &ObjectPath, offset: u64) -> ObjectPath {
    dir.clone().join(format!("{offset:020}"))
}

/// A photo's staged chunks in the object store.
struct Chunks {
    /// In order, contiguous from offset 0.
    run: Vec<ObjectPath>,
    /// Bytes the contiguous run covers.
    bytes: u64,
    /// Chunks past a gap (left by an overlapping upload on another node); never used.
    stale: Vec<ObjectPath>,
}

impl Blobs {
    /// Opens the configured storage; the filesystem backend lives under `data_dir/blobs` unless
    /// `photos.path` says otherwise.
    pub fn open(photos: &Photos, data_dir: &Path) -> Result<Blobs, BlobError> {
        let backend = match photos.backend {
            PhotoBackend::Fs => {
                let root = photos
                    .path
                    .clone()
                    .unwrap_or_else(|| data_dir.join("blobs"));
                std::fs::create_dir_all(root.join("staging"))?;
                Backend::Fs(root)
            }
            PhotoBackend::S3 => {
                // The object store's HTTPS client uses the process-wide rustls provider: ring,
                // as QUIC does (a provider already installed stays).
                let _ = rustls::crypto::ring::default_provider().install_default();
                let bucket = photos.bucket.as_deref().ok_or_else(|| {
                    BlobError::Config("photos.backend = \"s3\" needs photos.bucket".into())
                })?;
                // A device waits on these calls: give up within seconds, not minutes, and let
                // the device retry (uploads resume from what is held).
                let retry = object_store::RetryConfig {
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(15),
                    ..Default::default()
                };
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(photos.allow_http)
                    .with_retry(retry);
                if let Some(v) = &photos.endpoint {
                    b = b.with_endpoint(v);
                }
                if let Some(v) = &photos.region {
                    b = b.with_region(v);
                }
                if let Some(v) = &photos.access_key_id {
                    b = b.with_access_key_id(v);
                }
                if let Some(v) = &photos.secret_access_key {
                    b = b.with_secret_access_key(v);
                }
                let store = b.build().map_err(|e| BlobError::Config(e.to_string()))?;
                Backend::Object {
                    store: Arc::new(store),
                    prefix: ObjectPath::from(photos.prefix.as_str()),
                }
            }
        };
        Ok(Blobs {
            backend,
            uploading: Mutex::new(HashSet::new()),
        })
    }

    /// Checks the storage can be reached (the object store answers a listing).
    pub async fn check(&self) -> Result<(), BlobError> {
        if let Backend::Object { store, prefix } = &self.backend {
            store.list_with_delimiter(Some(prefix)).await?;
        }
        Ok(())
    }

    /// Which backend is in use, for logs.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Fs(root) => format!("filesystem {}", root.display()),
            Backend::Object { store, prefix } => format!("{store} prefix {prefix:?}"),
        }
    }

    fn final_path(root: &Path, sha: &[u8; 32]) -> PathBuf {
        let h = hex::encode(sha);
        root.join(&h[..2]).join(h)
    }

    /// `owner` is a device id (UUID text), so it cannot leave the staging directory.
    fn staging_path(root: &Path, sha: &[u8; 32], owner: &str) -> PathBuf {
        root.join("staging")
            .join(format!("{}.{owner}", hex::encode(sha)))
    }

    fn object_path(prefix: &ObjectPath, sha: &[u8; 32]) -> ObjectPath {
        prefix.clone().join("blobs").join(hex::encode(sha))
    }

    fn staging_dir(prefix: &ObjectPath, sha: &[u8; 32], owner: &str) -> ObjectPath {
        prefix
            .clone()
            .join("staging")
            .join(hex::encode(sha))
            .join(owner)
    }

    async fn chunks(store: &dyn ObjectStore, dir: &ObjectPath) -> Result<Chunks, BlobError> {
        let mut all: Vec<(u64, u64, ObjectPath)> = Vec::new();
        let mut list = store.list(Some(dir));
        while let Some(meta) = list.next().await {
            let meta = meta?;
            if let Some(offset) = meta.location.filename().and_then(|f| f.parse().ok()) {
                all.push((offset, meta.size, meta.location));
            }
        }
        all.sort_by_key(|c| c.0);
        let mut out = Chunks {
            run: Vec::new(),
            bytes: 0,
            stale: Vec::new(),
        };
        for (offset, size, path) in all {
            if offset == out.bytes && size > 0 && out.stale.is_empty() {
                out.bytes += size;
                out.run.push(path);
            } else {
                out.stale.push(path);
            }
        }
        Ok(out)
    }

    /// The stored photo's size, if it is stored.
    pub async fn stored(&self, sha: &[u8; 32]) -> Result<Option<u64>, BlobError> {
        match &self.backend {
            Backend::Fs(root) => match tokio::fs::metadata(Self::final_path(root, sha)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Backend::Object { store, prefix } => {
                match store.head(&Self::object_path(prefix, sha)).await {
                    Ok(meta) => Ok(Some(meta.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// What `owner` has staged of `sha` (its own upload in progress).
    pub async fn staged(&self, sha: &[u8; 32], owner: &str) -> Result<u64, BlobError> {
        match &self.backend {
            Backend::Fs(root) => {
                match tokio::fs::metadata(Self::staging_path(root, sha, owner)).await {
                    Ok(m) => Ok(m.len()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                    Err(e) => Err(e.into()),
                }
            }
            Backend::Object { store, prefix } => Ok(Self::chunks(
                store.as_ref(),
                &Self::staging_dir(prefix, sha, owner),
            )
            .await?
            .bytes),
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

    /// Staging for the claimed upload, appending at `held` (what [`Blobs::held`] answered).
    pub async fn staging(&self, guard: &UploadGuard<'_>, held: u64) -> Result<Staging, BlobError> {
        let (sha, owner) = (&guard.sha, guard.owner.as_str());
        let target = match &self.backend {
            Backend::Fs(root) => {
                let path = Self::staging_path(root, sha, owner);
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
                StagingTarget::File {
                    file: Some(file),
                    buf: Vec::with_capacity(SYNC_EVERY as usize + 64 * 1024),
                    spare: Vec::with_capacity(SYNC_EVERY as usize + 64 * 1024),
                    ctx: Some(Box::new(ctx)),
                    pending: None,
                }
            }
            Backend::Object { store, prefix } => {
                let dir = Self::staging_dir(prefix, sha, owner);
                for path in Self::chunks(store.as_ref(), &dir).await?.stale {
                    store.delete(&path).await?;
                }
                StagingTarget::Object {
                    store: store.clone(),
                    dir,
                    offset: held,
                    buf: Vec::new(),
                }
            }
        };
        Ok(Staging {
            target,
            unsynced: 0,
        })
    }

    /// Makes the staging durable, verifies the bytes and moves them into place; on a mismatch
    /// discards them. If the photo is stored already (another device finished first) the
    /// verified bytes are discarded: the upload only proved that its device holds the photo.
    pub async fn finish(
        &self,
        guard: &UploadGuard<'_>,
        mut staging: Staging,
    ) -> Result<u64, BlobError> {
        let (sha, owner) = (&guard.sha, guard.owner.as_str());
        staging.persist().await?;
        match (&self.backend, staging.target) {
            (Backend::Fs(root), StagingTarget::File { ctx, .. }) => {
                let ctx = ctx.ok_or_else(lost)?;
                Self::finish_file(root, sha, owner, digest_bytes(*ctx)).await
            }
            (Backend::Object { store, prefix }, _) => {
                Self::finish_object(store, prefix, sha, owner).await
            }
            (Backend::Fs(_), StagingTarget::Object { .. }) => {
                Err(BlobError::Config("staging from another backend".into()))
            }
        }
    }

    async fn finish_file(
        root: &Path,
        sha: &[u8; 32],
        owner: &str,
        digest: [u8; 32],
    ) -> Result<u64, BlobError> {
        let staging = Self::staging_path(root, sha, owner);
        if &digest != sha {
            let _ = tokio::fs::remove_file(&staging).await;
            return Err(BlobError::HashMismatch(hex::encode(sha)));
        }
        let dest = Self::final_path(root, sha);
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

    async fn finish_object(
        store: &Arc<dyn ObjectStore>,
        prefix: &ObjectPath,
        sha: &[u8; 32],
        owner: &str,
    ) -> Result<u64, BlobError> {
        let dir = Self::staging_dir(prefix, sha, owner);
        let chunks = Self::chunks(store.as_ref(), &dir).await?;
        let dest = Self::object_path(prefix, sha);
        let discard = async || {
            for path in chunks.run.iter().chain(&chunks.stale) {
                let _ = store.delete(path).await;
            }
        };
        if let Ok(stored) = store.head(&dest).await {
            // Stored already: verify these bytes all the same, then let them go.
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            for path in &chunks.run {
                ctx.update(&store.get(path).await?.bytes().await?);
            }
            discard().await;
            return if &digest_bytes(ctx) == sha {
                Ok(stored.size)
            } else {
                Err(BlobError::HashMismatch(hex::encode(sha)))
            };
        }
        let mut upload =
            WriteMultipart::new_with_chunk_size(store.put_multipart(&dest).await?, PART_BYTES);
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for path in &chunks.run {
            let bytes = match store.get(path).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => {
                    let _ = upload.abort().await;
                    return Err(e.into());
                }
            };
            ctx.update(&bytes);
            if let Err(e) = upload.wait_for_capacity(2).await {
                let _ = upload.abort().await;
                return Err(e.into());
            }
            upload.put(bytes);
        }
        if &digest_bytes(ctx) != sha {
            let _ = upload.abort().await;
            discard().await;
            return Err(BlobError::HashMismatch(hex::encode(sha)));
        }
        upload.finish().await?;
        discard().await;
        Ok(chunks.bytes)
    }

    /// The stored photo from `offset` (at most its size), for download.
    pub async fn read(&self, sha: &[u8; 32], offset: u64) -> Result<BlobReader, BlobError> {
        match &self.backend {
            Backend::Fs(root) => {
                let mut f = tokio::fs::File::open(Self::final_path(root, sha)).await?;
                f.seek(std::io::SeekFrom::Start(offset)).await?;
                Ok(Box::pin(f))
            }
            Backend::Object { store, prefix } => {
                let path = Self::object_path(prefix, sha);
                if offset >= store.head(&path).await?.size {
                    return Ok(Box::pin(tokio::io::empty()));
                }
                let opts = object_store::GetOptions {
                    range: Some(object_store::GetRange::Offset(offset)),
                    ..Default::default()
                };
                let stream = store
                    .get_opts(&path, opts)
                    .await?
                    .into_stream()
                    .map_err(std::io::Error::other);
                Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
            }
        }
    }

    /// Deletes partial uploads untouched for longer than `max_age`; returns how many.
    pub async fn expire_staging(&self, max_age: Duration) -> Result<usize, BlobError> {
        let mut n = 0;
        match &self.backend {
            Backend::Fs(root) => {
                let mut dir = tokio::fs::read_dir(root.join("staging")).await?;
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
            }
            Backend::Object { store, prefix } => {
                // An upload expires when its newest chunk is old, never chunk by chunk.
                let mut uploads: std::collections::HashMap<String, (i64, Vec<ObjectPath>)> =
                    Default::default();
                let mut list = store.list(Some(&prefix.clone().join("staging")));
                while let Some(meta) = list.next().await {
                    let meta = meta?;
                    // An upload is the chunks' directory: `staging/<hex>/<device>`.
                    let parts: Vec<_> = meta.location.parts().collect();
                    let Some(upload) = parts.len().checked_sub(1).map(|i| {
                        parts[..i]
                            .iter()
                            .map(|p| p.as_ref())
                            .collect::<Vec<_>>()
                            .join("/")
                    }) else {
                        continue;
                    };
                    let e = uploads.entry(upload).or_default();
                    e.0 = e.0.max(meta.last_modified.timestamp_millis());
                    e.1.push(meta.location);
                }
                let cutoff = crate::clock::now_ms() - max_age.as_millis() as i64;
                for (_, (newest, paths)) in uploads {
                    if newest < cutoff {
                        for p in paths {
                            store.delete(&p).await?;
                        }
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }
}

fn digest_bytes(ctx: ring::digest::Context) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The uploading device.
    const OWNER: &str = "0196f3c0-0000-7000-8000-000000000001";

    /// A node's photo storage on `store`, under prefix `p`.
    fn node(store: &Arc<dyn ObjectStore>) -> Blobs {
        Blobs {
            backend: Backend::Object {
                store: store.clone(),
                prefix: ObjectPath::from("p"),
            },
            uploading: Mutex::new(HashSet::new()),
        }
    }

    fn in_memory() -> (Blobs, Arc<dyn ObjectStore>) {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        (node(&store), store)
    }

    fn sha(bytes: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
        out
    }

    async fn keys(store: &dyn ObjectStore) -> Vec<String> {
        let mut out: Vec<String> = store
            .list(None)
            .map(|m| m.map(|m| m.location.to_string()))
            .try_collect()
            .await
            .expect("list");
        out.sort();
        out
    }

    #[tokio::test]
    async fn object_staging_resumes_across_instances_and_ignores_chunks_past_a_gap() {
        let (blobs, store) = in_memory();
        let photo: Vec<u8> = (0..(3 * SYNC_EVERY as usize + 1000))
            .map(|i| (i % 251) as u8)
            .collect();
        let id = sha(&photo);
        {
            let guard = blobs.claim(&id, OWNER).expect("claim");
            assert!(
                matches!(blobs.claim(&id, OWNER), Err(BlobError::Busy(_))),
                "one upload at a time"
            );
            let mut s = blobs.staging(&guard, 0).await.expect("staging");
            // Two MiB and a bit arrive, then the connection drops; what arrived is kept.
            let cut = 2 * SYNC_EVERY as usize + 10;
            for piece in photo[..cut].chunks(64 * 1024) {
                s.write(piece).await.expect("write");
            }
            s.persist().await.expect("persist");
        }
        // A chunk past a gap (another node's overlapping upload) is not counted.
        let dir = Blobs::staging_dir(&ObjectPath::from("p"), &id, OWNER);
        store
            .put(&chunk_path(&dir, 3 * SYNC_EVERY), vec![1u8; 10].into())
            .await
            .expect("put");
        // Another node (another instance on the same store) sees the same offset.
        let other = node(&store);
        let held = other.held(&id, OWNER).await.expect("held");
        assert_eq!(held.bytes, 2 * SYNC_EVERY + 10);
        assert!(!held.complete);
        assert_eq!(
            other.held(&id, "another-device").await.expect("held").bytes,
            0,
            "staging is the uploader's own"
        );

        let guard = other.claim(&id, OWNER).expect("claim");
        let mut s = other.staging(&guard, held.bytes).await.expect("staging");
        s.write(&photo[held.bytes as usize..]).await.expect("write");
        s.persist().await.expect("persist");
        assert_eq!(
            other.finish(&guard, s).await.expect("finish"),
            photo.len() as u64
        );
        assert_eq!(
            keys(store.as_ref()).await,
            vec![format!("p/blobs/{}", hex::encode(id))],
            "staging chunks, the stale one too, are gone"
        );
        let mut back = Vec::new();
        let mut r = other.read(&id, 1000).await.expect("read");
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut back)
            .await
            .expect("read");
        assert_eq!(back, photo[1000..]);
        let mut end = other.read(&id, photo.len() as u64).await.expect("read");
        assert_eq!(
            tokio::io::AsyncReadExt::read(&mut end, &mut [0u8; 8])
                .await
                .expect("read"),
            0
        );
    }

    #[tokio::test]
    async fn object_staging_with_a_wrong_hash_is_discarded_entirely() {
        let (blobs, store) = in_memory();
        let photo = vec![7u8; SYNC_EVERY as usize + 5];
        let mut wrong = photo.clone();
        wrong[3] ^= 1;
        let id = sha(&photo);
        let guard = blobs.claim(&id, OWNER).expect("claim");
        let mut s = blobs.staging(&guard, 0).await.expect("staging");
        s.write(&wrong).await.expect("write");
        s.persist().await.expect("persist");
        let err = blobs.finish(&guard, s).await.expect_err("mismatch");
        assert!(matches!(err, BlobError::HashMismatch(_)), "{err}");
        assert!(keys(store.as_ref()).await.is_empty(), "nothing stored");
        assert_eq!(
            blobs.held(&id, OWNER).await.expect("held"),
            Held {
                bytes: 0,
                complete: false
            }
        );
    }
}
