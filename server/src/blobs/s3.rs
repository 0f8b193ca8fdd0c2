//! The object-store backend of photo storage (S3-compatible, through the `object_store` crate):
//! photos at `<prefix>/blobs/<hex>`, each upload's staging a run of chunk objects
//! `<prefix>/staging/<hex>/<device>/<offset>` that every node sees.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use super::{BlobError, BlobReader, SYNC_EVERY, digest_bytes};
use crate::config::Photos;

/// Part size of the multipart upload that assembles a photo in the object store (S3's minimum).
const PART_BYTES: usize = 5 << 20;

/// Photos in `store` under `prefix`.
#[derive(Debug)]
pub(super) struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

/// An object staging: bytes are gathered in `buf` and written as one chunk object at `offset`
/// when a MiB has filled or the staging is persisted.
pub(super) struct ObjectStaging {
    store: Arc<dyn ObjectStore>,
    dir: ObjectPath,
    offset: u64,
    buf: Vec<u8>,
    unsynced: u64,
}

impl std::fmt::Debug for ObjectStaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Object({} @ {})", self.dir, self.offset)
    }
}

impl ObjectStaging {
    /// See [`super::Staging::write`].
    pub(super) async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.buf.extend_from_slice(chunk);
        self.unsynced += chunk.len() as u64;
        if self.unsynced >= SYNC_EVERY {
            self.persist().await?;
        }
        Ok(())
    }

    /// See [`super::Staging::persist`].
    pub(super) async fn persist(&mut self) -> Result<(), BlobError> {
        if !self.buf.is_empty() {
            let bytes = bytes::Bytes::from(std::mem::take(&mut self.buf));
            let n = bytes.len() as u64;
            self.store
                .put(&chunk_path(&self.dir, self.offset), bytes.into())
                .await?;
            self.offset += n;
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

impl ObjectBlobs {
    /// Builds the S3 client `photos` describes.
    pub(super) fn open(photos: &Photos) -> Result<ObjectBlobs, BlobError> {
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
        Ok(ObjectBlobs {
            store: Arc::new(store),
            prefix: ObjectPath::from(photos.prefix.as_str()),
        })
    }

    pub(super) async fn check(&self) -> Result<(), BlobError> {
        self.store.list_with_delimiter(Some(&self.prefix)).await?;
        Ok(())
    }

    pub(super) fn describe(&self) -> String {
        format!("{} prefix {:?}", self.store, self.prefix)
    }

    fn object_path(&self, sha: &[u8; 32]) -> ObjectPath {
        self.prefix.clone().join("blobs").join(hex::encode(sha))
    }

    fn staging_dir(&self, sha: &[u8; 32], owner: &str) -> ObjectPath {
        self.prefix
            .clone()
            .join("staging")
            .join(hex::encode(sha))
            .join(owner)
    }

    async fn chunks(&self, dir: &ObjectPath) -> Result<Chunks, BlobError> {
        let mut all: Vec<(u64, u64, ObjectPath)> = Vec::new();
        let mut list = self.store.list(Some(dir));
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

    pub(super) async fn stored(&self, sha: &[u8; 32]) -> Result<Option<u64>, BlobError> {
        match self.store.head(&self.object_path(sha)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn staged(&self, sha: &[u8; 32], owner: &str) -> Result<u64, BlobError> {
        Ok(self.chunks(&self.staging_dir(sha, owner)).await?.bytes)
    }

    pub(super) async fn staging(
        &self,
        sha: &[u8; 32],
        owner: &str,
        held: u64,
    ) -> Result<ObjectStaging, BlobError> {
        let dir = self.staging_dir(sha, owner);
        for path in self.chunks(&dir).await?.stale {
            self.store.delete(&path).await?;
        }
        Ok(ObjectStaging {
            store: self.store.clone(),
            dir,
            offset: held,
            buf: Vec::new(),
            unsynced: 0,
        })
    }

    /// Finishes a staging already made durable (see [`super::Blobs::finish`]).
    pub(super) async fn finish(&self, sha: &[u8; 32], owner: &str) -> Result<u64, BlobError> {
        let store = &self.store;
        let dir = self.staging_dir(sha, owner);
        let chunks = self.chunks(&dir).await?;
        let dest = self.object_path(sha);
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

    pub(super) async fn read(&self, sha: &[u8; 32], offset: u64) -> Result<BlobReader, BlobError> {
        let path = self.object_path(sha);
        if offset >= self.store.head(&path).await?.size {
            return Ok(Box::pin(tokio::io::empty()));
        }
        let opts = object_store::GetOptions {
            range: Some(object_store::GetRange::Offset(offset)),
            ..Default::default()
        };
        let stream = self
            .store
            .get_opts(&path, opts)
            .await?
            .into_stream()
            .map_err(std::io::Error::other);
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    pub(super) async fn expire_staging(&self, max_age: Duration) -> Result<usize, BlobError> {
        let mut n = 0;
        // An upload expires when its newest chunk is old, never chunk by chunk.
        let mut uploads: std::collections::HashMap<String, (i64, Vec<ObjectPath>)> =
            Default::default();
        let mut list = self.store.list(Some(&self.prefix.clone().join("staging")));
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
                    self.store.delete(&p).await?;
                }
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::super::{Backend, Blobs, Held};
    use super::*;

    /// The uploading device.
    const OWNER: &str = "0196f3c0-0000-7000-8000-000000000001";

    /// The object backend on `store`, under prefix `p`.
    fn backend(store: &Arc<dyn ObjectStore>) -> ObjectBlobs {
        ObjectBlobs {
            store: store.clone(),
            prefix: ObjectPath::from("p"),
        }
    }

    /// A node's photo storage on `store`, under prefix `p`.
    fn node(store: &Arc<dyn ObjectStore>) -> Blobs {
        Blobs {
            backend: Backend::Object(backend(store)),
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
        let dir = backend(&store).staging_dir(&id, OWNER);
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
