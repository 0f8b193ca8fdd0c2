//! Photos on the device: kept in the state dir until the server has them, uploaded after the
//! records that reference them, a few at a time, resumed from the server's offset after any
//! interruption, with progress for the app. Downloads resume too and are verified.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use patrolsync_proto::{codes, frame, wire};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::ErrorCode;
use crate::clock::now_ms;
use crate::error::{local, read_failed};
use crate::events::{DataKind, SyncEvent, SyncSummary};
use crate::transport::{self, CallError};
use crate::{Client, ReadError, RecordError, SyncError};

/// Photos uploaded at once.
const PARALLEL_UPLOADS: usize = 3;
const CHUNK: usize = 64 * 1024;

/// A photo the device holds or held.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PhotoStatus {
    /// SHA-256, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// `queued`, `uploaded` or `failed`.
    pub state: String,
    /// Bytes sent so far (this device's uploads).
    pub bytes_sent: u64,
    /// Why it failed, if it did (English).
    pub error: Option<String>,
    /// Why it failed, as a code an app shows in the user's language.
    pub error_code: Option<ErrorCode>,
}

/// SHA-256 and size of the file at `src`.
async fn hash_file(src: &Path) -> std::io::Result<([u8; 32], u64)> {
    let file = tokio::fs::File::open(src).await?;
    hash_and_copy_from(file, None).await.map_err(|e| match e {
        CopyError::Read(e) | CopyError::Write(e) => e,
    })
}

/// A copy failed reading the source (the app's file) or writing ours (the device's storage).
enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// SHA-256 and size of what `input` yields, copied durably to `dst` when given (one read).
async fn hash_and_copy_from(
    mut input: impl tokio::io::AsyncRead + Unpin,
    dst: Option<&Path>,
) -> Result<([u8; 32], u64), CopyError> {
    let mut out = match dst {
        Some(d) => Some(tokio::fs::File::create(d).await.map_err(CopyError::Write)?),
        None => None,
    };
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf).await.map_err(CopyError::Read)?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        if let Some(out) = out.as_mut() {
            out.write_all(&buf[..n]).await.map_err(CopyError::Write)?;
        }
        size += n as u64;
    }
    if let Some(out) = out {
        out.sync_all().await.map_err(CopyError::Write)?;
    }
    let mut sha = [0u8; 32];
    sha.copy_from_slice(ctx.finish().as_ref());
    Ok((sha, size))
}

enum UploadOutcome {
    Uploaded { sent: u64 },
    Refused(String),
}

impl Client {
    pub(crate) fn photo_dir(&self) -> PathBuf {
        self.inner.dir.join("photos")
    }

    pub(crate) fn photo_path(&self, sha: &[u8; 32]) -> PathBuf {
        self.photo_dir().join(hex::encode(sha))
    }

    /// Copies the photo at `path` into the device's store and queues it for upload; returns
    /// its SHA-256, which the record that shows it (check-in, hazard report, fix) carries.
    /// The app may delete its own copy afterwards.
    ///
    /// # Errors
    ///
    /// [`RecordError::Unreadable`] when the file cannot be read, [`RecordError::EmptyPhoto`]
    /// when it is empty, [`RecordError::Storage`] when the store cannot keep it (a full disk).
    pub async fn add_photo(&self, path: impl AsRef<Path>) -> Result<[u8; 32], RecordError> {
        let shown = path.as_ref().display().to_string();
        match tokio::fs::File::open(path.as_ref()).await {
            Ok(file) => self.queue_photo(file, shown).await,
            Err(e) => Err(RecordError::Unreadable {
                path: shown,
                reason: e.to_string(),
            }),
        }
    }

    /// Queues a photo given as bytes (a camera buffer), as [`Client::add_photo`] does a file.
    ///
    /// # Errors
    ///
    /// [`RecordError::EmptyPhoto`] for no bytes, [`RecordError::Storage`] when the store cannot
    /// keep it.
    pub async fn add_photo_bytes(&self, bytes: &[u8]) -> Result<[u8; 32], RecordError> {
        self.queue_photo(bytes, "(bytes)".into()).await
    }

    /// Copies `source` durably into the store under its hash and queues it.
    async fn queue_photo(
        &self,
        source: impl tokio::io::AsyncRead + Unpin,
        shown: String,
    ) -> Result<[u8; 32], RecordError> {
        let io = |e: std::io::Error| RecordError::Storage(format!("{shown}: {e}"));
        // A photo belongs to the volunteer enrolled now, as a record does.
        let enrolled = self
            .device_id()
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?
            .ok_or(RecordError::NotEnrolled)?;
        tokio::fs::create_dir_all(self.photo_dir())
            .await
            .map_err(io)?;
        let tmp = self
            .photo_dir()
            .join(format!(".incoming-{}", uuid::Uuid::now_v7()));
        let (sha, size) = match hash_and_copy_from(source, Some(&tmp)).await {
            Ok(done) => done,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(match e {
                    CopyError::Read(e) => RecordError::Unreadable {
                        path: shown.clone(),
                        reason: e.to_string(),
                    },
                    // Our own copy: the device's storage (full, or failing).
                    CopyError::Write(e) => io(e),
                });
            }
        };
        if size == 0 {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(RecordError::EmptyPhoto { path: shown });
        }
        tokio::fs::rename(&tmp, self.photo_path(&sha))
            .await
            .map_err(io)?;
        let storage = |e: sqlx::Error| RecordError::Storage(e.to_string());
        // As for records: signed out while the photo was copied, it is nobody's here now.
        let (mut tx, still) = self.write_as(&enrolled).await.map_err(storage)?;
        if !still {
            // The file stays only if this store still names it.
            let named: Option<i64> = sqlx::query_scalar("SELECT 1 FROM photos WHERE sha256 = ?")
                .bind(sha.to_vec())
                .fetch_optional(&mut *tx)
                .await
                .map_err(storage)?;
            if named.is_none() {
                let _ = tokio::fs::remove_file(self.photo_path(&sha)).await;
            }
            return Err(RecordError::NotEnrolled);
        }
        sqlx::query(
            "INSERT INTO photos (sha256, size, added_at_ms, state) VALUES (?, ?, ?, 'queued') \
             ON CONFLICT (sha256) DO UPDATE SET state = CASE WHEN state = 'failed' THEN 'queued' ELSE state END, \
             error = NULL, error_code = NULL, error_p1 = NULL, error_p2 = NULL",
        )
        .bind(sha.to_vec())
        .bind(size as i64)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        self.data_changed([DataKind::Photos]);
        self.inner.trigger.notify_one();
        Ok(sha)
    }

    /// Every photo the device holds or held, newest first.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read. Never touches the
    /// network.
    pub async fn photos(&self) -> Result<Vec<PhotoStatus>, ReadError> {
        let rows = sqlx::query(
            "SELECT sha256, size, state, bytes_sent, error, error_code, error_p1, error_p2 \
             FROM photos ORDER BY added_at_ms DESC",
        )
        .fetch_all(&self.inner.db)
        .await
        .map_err(read_failed)?;
        Ok(rows
            .iter()
            .map(|r| PhotoStatus {
                sha256: hex::encode(r.get::<Vec<u8>, _>(0)),
                size: r.get::<i64, _>(1) as u64,
                state: r.get(2),
                bytes_sent: r.get::<i64, _>(3) as u64,
                error: r.get(4),
                error_code: ErrorCode::from_columns(r.get(5), r.get(6), r.get(7)),
            })
            .collect())
    }

    /// Tells the SDK whether the current network is metered (cellular). With
    /// `ClientConfig::photos_only_unmetered`, photos wait for an unmetered network.
    pub fn set_network_metered(&self, metered: bool) {
        self.inner.metered.store(metered, Ordering::SeqCst);
    }

    /// Uploads queued photos (after the records: called at the end of a sync).
    pub(crate) async fn upload_photos(
        &self,
        conn: &quinn::Connection,
        server: &str,
        cap: u64,
        summary: &mut SyncSummary,
    ) -> Result<(), SyncError> {
        if self.inner.config.photos_only_unmetered && self.inner.metered.load(Ordering::SeqCst) {
            return Ok(());
        }
        let queued: Vec<(Vec<u8>, i64)> = sqlx::query(
            "SELECT sha256, size FROM photos WHERE state = 'queued' ORDER BY added_at_ms",
        )
        .fetch_all(&self.inner.db)
        .await
        .map_err(local)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
        let mut work = queued.into_iter();
        let mut running = tokio::task::JoinSet::new();
        let mut first_error = None;
        loop {
            while running.len() < PARALLEL_UPLOADS {
                let Some((sha, size)) = work.next() else {
                    break;
                };
                let Ok(sha) = <[u8; 32]>::try_from(sha.as_slice()) else {
                    continue;
                };
                let size = size.max(0) as u64;
                if size > cap {
                    let why = format!(
                        "photo {} is {size} bytes; the server accepts photos up to {cap} bytes",
                        hex::encode(sha)
                    );
                    let code = ErrorCode::PhotoTooLarge { max: cap };
                    self.mark_photo(&sha, "failed", Some((&why, code))).await?;
                    summary.photo_failures.push(why);
                    continue;
                }
                let (client, conn) = (self.clone(), conn.clone());
                running.spawn(async move { (sha, client.upload_one(&conn, sha, size).await) });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (sha, result) = joined.map_err(local)?;
            match result {
                Ok(UploadOutcome::Uploaded { sent }) => {
                    summary.photos_uploaded += 1;
                    summary.photo_bytes_sent += sent;
                    self.mark_photo(&sha, "uploaded", None).await?;
                    // The server verified the hash: the local copy has done its job.
                    let _ = tokio::fs::remove_file(self.photo_path(&sha)).await;
                }
                Ok(UploadOutcome::Refused(why)) => {
                    let code = ErrorCode::PhotoRefused;
                    self.mark_photo(&sha, "failed", Some((&why, code))).await?;
                    summary.photo_failures.push(why);
                }
                Err((sent, e)) => {
                    summary.photo_bytes_sent += sent;
                    first_error.get_or_insert(SyncError::from_call(server, e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn mark_photo(
        &self,
        sha: &[u8; 32],
        state: &str,
        error: Option<(&str, ErrorCode)>,
    ) -> Result<(), SyncError> {
        let [code, p1, p2] = ErrorCode::to_columns(error.as_ref().map(|(_, c)| c));
        sqlx::query(
            "UPDATE photos SET state = ?, error = ?, error_code = ?, error_p1 = ?, error_p2 = ? \
             WHERE sha256 = ?",
        )
        .bind(state)
        .bind(error.map(|(text, _)| text))
        .bind(code)
        .bind(p1)
        .bind(p2)
        .bind(sha.to_vec())
        .execute(&self.inner.db)
        .await
        .map_err(local)?;
        self.data_changed([DataKind::Photos]);
        Ok(())
    }

    async fn upload_one(
        &self,
        conn: &quinn::Connection,
        sha: [u8; 32],
        size: u64,
    ) -> Result<UploadOutcome, (u64, CallError)> {
        let cfg = &self.inner.config;
        let limit = frame::DEFAULT_MAX_FRAME_BYTES;
        let status = wire::Request {
            kind: Some(wire::request::Kind::BlobStatus(wire::BlobStatusRequest {
                sha256: sha.to_vec(),
                size,
            })),
        };
        let mut offset = match transport::call(conn, &status, limit, cfg.request_timeout)
            .await
            .map_err(|e| (0, e))?
            .kind
        {
            Some(wire::response::Kind::BlobStatus(s)) if s.complete => {
                return Ok(UploadOutcome::Uploaded { sent: 0 });
            }
            Some(wire::response::Kind::BlobStatus(s)) => s.held,
            Some(wire::response::Kind::Error(e)) if !e.retryable => {
                return Ok(UploadOutcome::Refused(e.message));
            }
            Some(wire::response::Kind::Error(e)) => return Err((0, CallError::Stream(e.message))),
            _ => {
                return Err((
                    0,
                    CallError::Stream("unexpected answer to BlobStatus".into()),
                ));
            }
        };
        let mut sent_total = 0;
        let mut restarted = false;
        // At most a couple of retries: after the server corrects our offset, or once from zero
        // after a hash mismatch (someone else's bad partial upload of the same photo).
        for _ in 0..3 {
            let (sent, answer) = self
                .send_from(conn, sha, size, offset)
                .await
                .map_err(|(s, e)| (sent_total + s, e))?;
            sent_total += sent;
            match answer.kind {
                Some(wire::response::Kind::BlobUpload(u)) if u.complete => {
                    return Ok(UploadOutcome::Uploaded { sent: sent_total });
                }
                Some(wire::response::Kind::Error(e))
                    if e.code == wire::ErrorCode::BlobOffsetMismatch as i32
                        || (e.retryable && e.held_offset > 0) =>
                {
                    offset = e.held_offset;
                }
                Some(wire::response::Kind::Error(e))
                    if e.code == wire::ErrorCode::BlobHashMismatch as i32
                        && !restarted
                        && offset > 0 =>
                {
                    restarted = true;
                    offset = 0;
                }
                Some(wire::response::Kind::Error(e)) if !e.retryable => {
                    return Ok(UploadOutcome::Refused(e.message));
                }
                Some(wire::response::Kind::Error(e)) => {
                    return Err((sent_total, CallError::Stream(e.message)));
                }
                _ => {
                    return Err((
                        sent_total,
                        CallError::Stream("unexpected answer to BlobUpload".into()),
                    ));
                }
            }
        }
        Err((
            sent_total,
            CallError::Stream(format!(
                "photo {}: the server kept moving the offset",
                hex::encode(sha)
            )),
        ))
    }

    /// Sends the photo from `offset` to the end on one stream; returns bytes sent and the answer.
    async fn send_from(
        &self,
        conn: &quinn::Connection,
        sha: [u8; 32],
        size: u64,
        offset: u64,
    ) -> Result<(u64, wire::Response), (u64, CallError)> {
        let mut file = tokio::fs::File::open(self.photo_path(&sha))
            .await
            .map_err(|e| (0, CallError::Io(e)))?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| (0, CallError::Io(e)))?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| (0, CallError::Connection(e)))?;
        let request = wire::Request {
            kind: Some(wire::request::Kind::BlobUpload(wire::BlobUploadRequest {
                sha256: sha.to_vec(),
                size,
                offset,
            })),
        };
        let stream = |e: quinn::WriteError| match e {
            quinn::WriteError::ConnectionLost(c) => CallError::Connection(c),
            other => CallError::Stream(other.to_string()),
        };
        // A server that refuses the upload before reading its bytes stops the stream, and its
        // answer (typed: a budget, a forbidden photo, where to resume) follows on the other
        // direction: once stopped, the rest is not sent and the answer is read.
        let mut stopped = match send.write_all(&frame::encode(&request)).await {
            Ok(()) => false,
            Err(quinn::WriteError::Stopped(_)) => true,
            Err(e) => return Err((0, stream(e))),
        };
        let mut buf = vec![0u8; CHUNK];
        let mut sent = 0u64;
        let hex = hex::encode(sha);
        let mut last_progress = 0u64;
        let started = std::time::Instant::now();
        while !stopped {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| (sent, CallError::Io(e)))?;
            if n == 0 {
                break;
            }
            // A write that makes no progress for a request timeout means the path is dead;
            // don't wait for the connection's idle timeout.
            let timeout = self.inner.config.request_timeout;
            match tokio::time::timeout(timeout, send.write_all(&buf[..n])).await {
                Ok(Ok(())) => {}
                Ok(Err(quinn::WriteError::Stopped(_))) => {
                    stopped = true;
                    continue;
                }
                Ok(Err(e)) => {
                    self.add_sent(&sha, offset + sent).await;
                    return Err((sent, stream(e)));
                }
                Err(_) => {
                    self.add_sent(&sha, offset + sent).await;
                    return Err((sent, CallError::Timeout(transport::whole_secs(timeout))));
                }
            }
            sent += n as u64;
            if let Some(rate) = self.inner.config.photo_upload_rate.filter(|r| *r > 0) {
                let due = std::time::Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
            }
            if sent - last_progress >= 256 * 1024 {
                last_progress = sent;
                let _ = self.inner.events.send(SyncEvent::PhotoProgress {
                    sha256: hex.clone(),
                    sent: offset + sent,
                    total: size,
                });
            }
        }
        if !stopped {
            let _ = send.finish();
        }
        self.add_sent(&sha, offset + sent).await;
        let _ = self.inner.events.send(SyncEvent::PhotoProgress {
            sha256: hex,
            sent: offset + sent,
            total: size,
        });
        let read = crate::transport::read_response(&mut recv, frame::DEFAULT_MAX_FRAME_BYTES);
        match tokio::time::timeout(self.inner.config.request_timeout, read).await {
            Ok(Ok(r)) => Ok((sent, r)),
            Ok(Err(e)) => Err((sent, e)),
            Err(_) => Err((
                sent,
                CallError::Timeout(transport::whole_secs(self.inner.config.request_timeout)),
            )),
        }
    }

    /// Records how far the upload got (the position, so resends do not count twice).
    async fn add_sent(&self, sha: &[u8; 32], position: u64) {
        let _ = sqlx::query("UPDATE photos SET bytes_sent = ? WHERE sha256 = ?")
            .bind(position as i64)
            .bind(sha.to_vec())
            .execute(&self.inner.db)
            .await;
    }

    /// Downloads a photo referenced by a record in the device's cells to `out`, resuming a
    /// partial download, and verifies its SHA-256 before moving it into place.
    ///
    /// # Errors
    ///
    /// [`SyncError`]: the network's codes (a partial download is kept and
    /// resumed by the next call), `Server` when the photo is not visible to this device, `Local`
    /// when the bytes do not match the hash (the part is dropped).
    ///
    /// # Cancel safety
    ///
    /// Cancelled, the part already written stays and the next call resumes from it.
    pub async fn download_photo(
        &self,
        sha: [u8; 32],
        out: impl AsRef<Path>,
    ) -> Result<u64, SyncError> {
        let identity = self.identity().await?;
        let server = identity.server.clone();
        let conn = self
            .inner
            .endpoints
            .connect(
                &server,
                identity.config.clone(),
                self.inner.config.connect_timeout,
            )
            .await
            .map_err(|e| SyncError::from_call(&server, e))?;
        let partial = out.as_ref().with_extension("part");
        let offset = tokio::fs::metadata(&partial)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let result = self
            .fetch(&conn, sha, &partial, offset)
            .await
            .map_err(|e| match e {
                FetchError::Call(c) => SyncError::from_call(&server, c),
                FetchError::Server(e) => e,
            });
        conn.close(quinn::VarInt::from_u32(codes::CLOSE_DONE), b"download done");
        let size = result?;
        let have = tokio::fs::metadata(&partial)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        if have < size {
            // The stream ended early: keep the part for the next attempt.
            return Err(SyncError::Network {
                server,
                reason: format!("download stopped at {have} of {size} bytes; retry to resume"),
                code: crate::ErrorCode::ConnectionLost,
            });
        }
        let (got, _) = hash_file(&partial).await.map_err(local)?;
        if got != sha {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(SyncError::Local(format!(
                "downloaded photo {} does not match its hash; try again",
                hex::encode(sha)
            )));
        }
        tokio::fs::rename(&partial, out.as_ref())
            .await
            .map_err(local)?;
        Ok(size)
    }

    async fn fetch(
        &self,
        conn: &quinn::Connection,
        sha: [u8; 32],
        partial: &Path,
        offset: u64,
    ) -> Result<u64, FetchError> {
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| FetchError::Call(CallError::Connection(e)))?;
        let request = wire::Request {
            kind: Some(wire::request::Kind::BlobDownload(
                wire::BlobDownloadRequest {
                    sha256: sha.to_vec(),
                    offset,
                },
            )),
        };
        send.write_all(&frame::encode(&request))
            .await
            .map_err(|e| FetchError::Call(CallError::Stream(e.to_string())))?;
        let _ = send.finish();
        let size = match crate::transport::read_response(&mut recv, frame::DEFAULT_MAX_FRAME_BYTES)
            .await
            .map_err(FetchError::Call)?
            .kind
        {
            Some(wire::response::Kind::BlobDownload(d)) => d.size,
            other => return Err(FetchError::Server(crate::error::unexpected(other))),
        };
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(partial)
            .await
            .map_err(|e| FetchError::Server(local(e)))?;
        while let Some(chunk) = recv
            .read_chunk(CHUNK, true)
            .await
            .map_err(|e| FetchError::Call(CallError::Stream(e.to_string())))?
        {
            file.write_all(&chunk.bytes)
                .await
                .map_err(|e| FetchError::Server(local(e)))?;
        }
        file.sync_all()
            .await
            .map_err(|e| FetchError::Server(local(e)))?;
        Ok(size)
    }
}

enum FetchError {
    Call(CallError),
    Server(SyncError),
}
