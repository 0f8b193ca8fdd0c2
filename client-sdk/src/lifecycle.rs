//! Handing a shared phone to the next volunteer: signing out wipes the local store, the
//! credentials and the photos; what the volunteer had not yet sent can stay behind, under their
//! own identity, and goes out at the next syncs (a hand-over).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

use crate::{CERT_FILE, Client, DataKind, ErrorCode, KEY_FILE, KeyStore, SERVER_CA_FILE};

/// What becomes of the records a volunteer has not yet sent when they sign out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsent {
    /// Sign out only when nothing waits; otherwise [`SignOutError::UnsentRecords`].
    Refuse,
    /// Keep them on the phone under the signed-out volunteer's identity (their device, their
    /// name, their credentials), out of the next volunteer's sight, and send them at the next
    /// syncs; each hand-over is deleted once the server has answered for all of it. Photos that
    /// had already failed (waiting for the app to add them again) are not kept.
    HandOver,
    /// Throw them away.
    Discard,
}

/// Signing out failed; nothing was wiped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignOutError {
    /// Records have not reached the server yet; sync first, hand them over, or discard them.
    #[error(
        "{count} records have not been uploaded yet; sync first, hand them over or discard them"
    )]
    UnsentRecords {
        /// Ops in the outbox plus photos waiting.
        count: u64,
    },
    /// The device was revoked, so a hand-over could never be sent: enroll it again for the same
    /// volunteer (which sends what waits, as a new device), or discard.
    #[error(
        "this device was revoked; enroll it again for the same person to send its records, or discard them"
    )]
    Revoked,
    /// The local store failed.
    #[error("cannot wipe the local store: {0}")]
    Storage(String),
}

impl SignOutError {
    /// The stable code (for the app to branch on and show in the user's language).
    pub fn code(&self) -> ErrorCode {
        match self {
            SignOutError::UnsentRecords { count } => ErrorCode::UnsentRecords { count: *count },
            SignOutError::Revoked => ErrorCode::Revoked,
            SignOutError::Storage(_) => ErrorCode::Storage,
        }
    }
}

/// Every table of the local store that holds the device's data, emptied at sign-out.
const DATA_TABLES: [&str; 16] = [
    "identity",
    "outbox",
    "rejected",
    "sync_state",
    "pull_state",
    "cells",
    "checkpoints",
    "units",
    "households",
    "hazard_ops",
    "my_check_ins",
    "photos",
    "escalations",
    "reminders",
    "templates",
    "duty",
];

/// The directory under the state directory that holds hand-overs, one per signed-out device.
const HANDOVER_DIR: &str = "handover";

/// Attempts at copying a hand-over before giving up: each attempt fails only when a record was
/// saved between the copy and the wipe.
const HANDOVER_ATTEMPTS: usize = 5;

/// A hand-over's credentials, kept in the app's key store beside the current device's under
/// `handover/<device id>/<name>` (with the default store: files in the hand-over's directory).
#[derive(Debug)]
struct HandoverKeys {
    inner: Arc<dyn KeyStore>,
    prefix: String,
}

impl KeyStore for HandoverKeys {
    fn load(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        self.inner.load(&format!("{}{name}", self.prefix))
    }

    fn save(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        self.inner.save(&format!("{}{name}", self.prefix), bytes)
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.inner.remove(&format!("{}{name}", self.prefix))
    }
}

/// What was sent of the hand-overs a sync found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct HandoverOutcome {
    /// Ops the server answered for.
    pub(crate) sent: u64,
    /// Hand-overs sent whole and deleted.
    pub(crate) finished: u64,
}

impl Client {
    /// Signs this device out: wipes its records, its view of the grid, its photos and its
    /// credentials, so the next volunteer on a shared phone enrolls afresh. The state directory
    /// stays usable (enroll again on this client). What was not yet sent is refused, handed
    /// over or discarded, as `unsent` says (see [`Unsent`]).
    ///
    /// # Errors
    ///
    /// [`SignOutError::UnsentRecords`] while records or photos wait to upload and `unsent` is
    /// [`Unsent::Refuse`] (or [`Unsent::HandOver`] with nobody enrolled): a check-in is never
    /// lost without the app saying so. [`SignOutError::Revoked`] for a hand-over of a revoked
    /// device, which the server would never take. [`SignOutError::Storage`] when the store, the
    /// key store or the photo directory fails; nothing was wiped unless the hand-over (if any)
    /// was durable first.
    ///
    /// # Cancel safety
    ///
    /// A hand-over is committed before the wipe, and the database is wiped in one transaction
    /// before the files; cancelled anywhere, nothing is lost, and a second call finishes the job
    /// (a hand-over made twice sends its records once: the server keys on the device and its
    /// sequence).
    pub async fn sign_out(&self, unsent: Unsent) -> Result<(), SignOutError> {
        let storage = |e: sqlx::Error| SignOutError::Storage(e.to_string());
        // No sync may run while the store is emptied under it, and no hand-over may be sent or
        // discarded while one is made or removed.
        let _no_sync = self.inner.sync_lock.lock().await;
        let _no_handover = self.inner.handover_lock.lock().await;
        let device = self.device_id().await.map_err(storage)?;
        // The write lock from the count to the wipe: a record saved meanwhile waits, and is
        // counted or kept.
        let mut tx = self
            .inner
            .db
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(storage)?;
        // Unsent: ops waiting, and photos the server does not have (queued, or failed and
        // waiting for the app to add them again).
        let waiting: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM photos WHERE state != 'uploaded')",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
        // What a hand-over would hold: photos that already failed are not sent again.
        let sendable: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM photos WHERE state = 'queued')",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
        let revoked: bool = sqlx::query_scalar("SELECT revoked FROM sync_state WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(storage)?
            .unwrap_or(false);
        match (unsent, &device) {
            (_, _) if waiting == 0 => {}
            (Unsent::HandOver, _) if sendable == 0 => {}
            // Not enrolled (photos a store kept from before they needed an enrollment): nobody
            // to hand them to.
            (Unsent::Refuse, _) | (Unsent::HandOver, None) => {
                return Err(SignOutError::UnsentRecords {
                    count: waiting as u64,
                });
            }
            (Unsent::HandOver, Some(_)) if revoked => return Err(SignOutError::Revoked),
            (Unsent::HandOver, Some(device)) => {
                tx.rollback().await.map_err(storage)?;
                self.hand_over(device).await?;
                self.signed_out_files().await?;
                self.signed_out();
                return Ok(());
            }
            (Unsent::Discard, _) => {}
        }
        wipe(&mut tx).await.map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        // A hand-over of this device left by an earlier sign-out that did not finish holds
        // copies of what was just discarded or sent: it goes too.
        if let Some(device) = &device {
            self.remove_handover(device)
                .await
                .map_err(SignOutError::Storage)?;
        }
        self.signed_out_files().await?;
        self.signed_out();
        Ok(())
    }

    /// After the store was wiped: the credentials and the photo files go.
    async fn signed_out_files(&self) -> Result<(), SignOutError> {
        for name in [KEY_FILE, CERT_FILE, SERVER_CA_FILE] {
            self.inner
                .keys
                .remove(name)
                .map_err(SignOutError::Storage)?;
        }
        match tokio::fs::remove_dir_all(self.photo_dir()).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SignOutError::Storage(e.to_string())),
        }
        Ok(())
    }

    /// After a sign-out: the state starts again and every list on screen empties.
    fn signed_out(&self) {
        self.reset_state();
        self.data_changed([
            DataKind::CheckIns,
            DataKind::Hazards,
            DataKind::Photos,
            DataKind::Templates,
            DataKind::Grid,
        ]);
    }

    /// Moves what `device` has not sent into a hand-over (its own store under
    /// `handover/<device>/`, its credentials under the same names in the key store, its queued
    /// photos hard-linked), then wipes this store. The hand-over is committed first; the wipe
    /// happens only under a write lock that has seen every waiting record in the hand-over.
    async fn hand_over(&self, device: &str) -> Result<(), SignOutError> {
        let storage = |e: sqlx::Error| SignOutError::Storage(e.to_string());
        let id = handover_id(device).map_err(SignOutError::Storage)?;
        let dir = self.handover_path(&id);
        // The hand-over's store, with the same schema as this one (opened, then closed).
        let handover = Client::open_handover(&dir, self.handover_config(&id))
            .await
            .map_err(|e| SignOutError::Storage(e.to_string()))?;
        for name in [KEY_FILE, CERT_FILE, SERVER_CA_FILE] {
            if let Some(bytes) = self.inner.keys.load(name).map_err(SignOutError::Storage)? {
                handover
                    .inner
                    .keys
                    .save(name, &bytes)
                    .map_err(SignOutError::Storage)?;
            }
        }
        let handover_photos = handover.photo_dir();
        handover.close().await;

        let mut conn = self.own_connection().await.map_err(storage)?;
        sqlx::query("ATTACH DATABASE ? AS handover")
            .bind(dir.join(crate::DB_FILE).to_string_lossy().into_owned())
            .execute(&mut conn)
            .await
            .map_err(storage)?;
        sqlx::query("PRAGMA handover.synchronous = FULL")
            .execute(&mut conn)
            .await
            .map_err(storage)?;
        for _ in 0..HANDOVER_ATTEMPTS {
            // The files first (a photo queued meanwhile is caught below), then the rows, durable
            // on their own before anything here is touched.
            let queued: Vec<Vec<u8>> =
                sqlx::query_scalar("SELECT sha256 FROM main.photos WHERE state = 'queued'")
                    .fetch_all(&mut conn)
                    .await
                    .map_err(storage)?;
            let linked = link_photos(&self.photo_dir(), &handover_photos, &queued)
                .map_err(|e| SignOutError::Storage(e.to_string()))?;
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(storage)?;
            for copy in [
                "INSERT OR REPLACE INTO handover.identity SELECT * FROM main.identity",
                "INSERT OR IGNORE INTO handover.outbox SELECT * FROM main.outbox",
                "INSERT OR REPLACE INTO handover.counters SELECT * FROM main.counters",
            ] {
                sqlx::query(copy).execute(&mut *tx).await.map_err(storage)?;
            }
            // Only photos whose file it holds: one gone from the phone could never be sent.
            for sha in &linked {
                sqlx::query(
                    "INSERT OR REPLACE INTO handover.photos SELECT * FROM main.photos \
                     WHERE sha256 = ? AND state = 'queued'",
                )
                .bind(sha)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
            }
            tx.commit().await.map_err(storage)?;
            // The hand-over's files, its directory and the directories over it.
            for d in [
                dir.as_path(),
                &self.inner.dir.join(HANDOVER_DIR),
                &self.inner.dir,
            ] {
                sync_dir(d).map_err(|e| SignOutError::Storage(e.to_string()))?;
            }
            // The wipe, only if nothing was recorded since the copy.
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(storage)?;
            let missed: i64 = sqlx::query_scalar(
                "SELECT (SELECT COUNT(*) FROM main.outbox \
                         WHERE device_seq NOT IN (SELECT device_seq FROM handover.outbox)) \
                      + (SELECT COUNT(*) FROM main.photos WHERE state = 'queued' \
                         AND sha256 NOT IN (SELECT sha256 FROM handover.photos) \
                         AND lower(hex(sha256)) NOT IN (SELECT value FROM json_each(?)))",
            )
            .bind(missing_json(&queued, &linked))
            .fetch_one(&mut *tx)
            .await
            .map_err(storage)?;
            if missed > 0 {
                tx.rollback().await.map_err(storage)?;
                continue;
            }
            wipe(&mut tx).await.map_err(storage)?;
            tx.commit().await.map_err(storage)?;
            return Ok(());
        }
        Err(SignOutError::Storage(
            "records kept arriving while the hand-over was copied; sign out again".into(),
        ))
    }

    /// Sends what signed-out volunteers left on this phone, each under their own identity
    /// (push, and photos when `include_photos`; never a pull), and deletes each hand-over the
    /// server has answered for whole. A hand-over that cannot be sent now (offline, revoked)
    /// stays for the next sync. One caller at a time; a sync of this device's own records
    /// does not wait for it.
    pub(crate) async fn send_handovers(&self, include_photos: bool) -> HandoverOutcome {
        let mut outcome = HandoverOutcome::default();
        if self.handover_devices().is_empty() {
            return outcome;
        }
        let _one_at_a_time = self.inner.handover_lock.lock().await;
        // Listed again under the lock: a sign-out or a discard may have changed them.
        for device in self.handover_devices() {
            match self.send_handover(&device, include_photos).await {
                Ok((sent, finished)) => {
                    outcome.sent += sent;
                    outcome.finished += u64::from(finished);
                }
                Err(e) => tracing::warn!(
                    device,
                    error = %e,
                    "a signed-out volunteer's records could not be sent yet; they stay for the next sync"
                ),
            }
        }
        outcome
    }

    /// Sends one hand-over; returns the ops answered for and whether it is gone.
    async fn send_handover(
        &self,
        id: &str,
        include_photos: bool,
    ) -> Result<(u64, bool), crate::SyncError> {
        let local = |e: String| crate::SyncError::Local(e);
        let dir = self.handover_path(id);
        let handover = Client::open_handover(&dir, self.handover_config(id))
            .await
            .map_err(|e| local(e.to_string()))?;
        handover.set_network_metered(self.inner.metered.load(std::sync::atomic::Ordering::SeqCst));
        let mut summary = crate::SyncSummary::default();
        let sent = async {
            // A photo whose file is gone can never be sent (a sign-out cut short between its
            // copy and its link): it must not hold the hand-over forever.
            handover.forget_missing_photos().await?;
            if handover.waiting().await? == 0 {
                return Ok(());
            }
            let identity = handover.identity().await?;
            handover
                .sync_once(&identity, &mut summary, include_photos)
                .await
        }
        .await;
        // Kept in the hand-over's own state: a revoked device's hand-over is one
        // `discard_handed_over` may throw away.
        handover
            .record_outcome(sent.as_ref().err(), crate::clock::now_ms())
            .await;
        let left = handover.waiting().await;
        let answered = summary.applied + summary.duplicates + summary.rejected;
        handover.close().await;
        sent?;
        if left? > 0 {
            return Ok((answered, false));
        }
        self.remove_handover(id).await.map_err(local)?;
        tracing::info!(
            id,
            answered,
            "a signed-out volunteer's records were all sent"
        );
        Ok((answered, true))
    }

    /// Ops and queued photos in this store.
    async fn waiting(&self) -> Result<u64, crate::SyncError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM photos WHERE state = 'queued')",
        )
        .fetch_one(&self.inner.db)
        .await
        .map_err(crate::error::local)?;
        Ok(n as u64)
    }

    /// Drops queued photos whose file is not on the phone.
    async fn forget_missing_photos(&self) -> Result<(), crate::SyncError> {
        let queued: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT sha256 FROM photos WHERE state = 'queued'")
                .fetch_all(&self.inner.db)
                .await
                .map_err(crate::error::local)?;
        for sha in queued {
            let Ok(hash) = <[u8; 32]>::try_from(sha.as_slice()) else {
                continue;
            };
            if !self.photo_path(&hash).exists() {
                tracing::warn!(photo = %hex::encode(hash), "a handed-over photo's file is gone");
                sqlx::query("DELETE FROM photos WHERE sha256 = ?")
                    .bind(&sha)
                    .execute(&self.inner.db)
                    .await
                    .map_err(crate::error::local)?;
            }
        }
        Ok(())
    }

    /// Deletes the hand-over of `device`, if there is one: its credentials, then its files.
    async fn remove_handover(&self, device: &str) -> Result<(), String> {
        let id = handover_id(device)?;
        let dir = self.handover_path(&id);
        if !dir.exists() {
            return Ok(());
        }
        let keys = self.handover_config(&id).key_store;
        for name in [KEY_FILE, CERT_FILE, SERVER_CA_FILE] {
            if let Some(keys) = &keys {
                keys.remove(name)?;
            }
        }
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Throws away the hand-overs the server refused because their device was revoked after
    /// the sign-out, or is no longer recognised (it will not take them); the others stay and
    /// are sent. Returns the records and photos discarded.
    ///
    /// # Errors
    ///
    /// [`SignOutError::Storage`] when a hand-over's state cannot be read or its files or
    /// credentials cannot be removed (those before it are gone).
    pub async fn discard_handed_over(&self) -> Result<u64, SignOutError> {
        let _one_at_a_time = self.inner.handover_lock.lock().await;
        let mut discarded = 0;
        for id in self.handover_devices() {
            let handover =
                Client::open_handover(&self.handover_path(&id), self.handover_config(&id))
                    .await
                    .map_err(|e| SignOutError::Storage(e.to_string()))?;
            let revoked: bool = sqlx::query_scalar("SELECT revoked FROM sync_state WHERE id = 1")
                .fetch_optional(&handover.inner.db)
                .await
                .map_err(|e| SignOutError::Storage(e.to_string()))?
                .unwrap_or(false);
            handover.close().await;
            if !revoked {
                continue;
            }
            discarded += self.handover_waiting(&id).await;
            self.remove_handover(&id)
                .await
                .map_err(SignOutError::Storage)?;
            tracing::warn!(id, "a revoked device's handed-over records were discarded");
        }
        Ok(discarded)
    }

    /// Records and photos of signed-out volunteers still on this phone, waiting to be sent.
    pub(crate) async fn handed_over_waiting(&self) -> u64 {
        let mut waiting = 0;
        for id in self.handover_devices() {
            waiting += self.handover_waiting(&id).await;
        }
        waiting
    }

    /// What one hand-over still holds (0, logged, when its store cannot be read: a status
    /// must not fail for it).
    async fn handover_waiting(&self, id: &str) -> u64 {
        let db = self.handover_path(id).join(crate::DB_FILE);
        let counted = async {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(db)
                .read_only(true);
            let mut conn = SqliteConnection::connect_with(&options).await?;
            sqlx::query_scalar::<_, i64>(
                "SELECT (SELECT COUNT(*) FROM outbox) + (SELECT COUNT(*) FROM photos WHERE state = 'queued')",
            )
            .fetch_one(&mut conn)
            .await
        }
        .await;
        match counted {
            Ok(n) => n as u64,
            Err(e) => {
                tracing::warn!(id, error = %e, "cannot count a hand-over");
                0
            }
        }
    }

    /// The hand-overs on this phone, by device id (none on a hand-over's own store).
    fn handover_devices(&self) -> Vec<String> {
        if self.inner.send_only {
            return Vec::new();
        }
        let Ok(entries) = std::fs::read_dir(self.inner.dir.join(HANDOVER_DIR)) else {
            return Vec::new();
        };
        let mut devices: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().and_then(|n| handover_id(n).ok()))
            .collect();
        devices.sort();
        devices
    }

    /// `handover/<id>` under the state directory (`id` from [`handover_id`]).
    fn handover_path(&self, id: &str) -> PathBuf {
        self.inner.dir.join(HANDOVER_DIR).join(id)
    }

    /// This client's configuration for the hand-over `id`: the same server and settings, with
    /// the credentials under the hand-over's names.
    fn handover_config(&self, id: &str) -> crate::ClientConfig {
        let inner = self.inner.config.key_store.clone().unwrap_or_else(|| {
            Arc::new(crate::platform::FileKeyStore(self.inner.dir.clone())) as Arc<dyn KeyStore>
        });
        crate::ClientConfig {
            key_store: Some(Arc::new(HandoverKeys {
                inner,
                prefix: format!("{HANDOVER_DIR}/{id}/"),
            })),
            ..self.inner.config.clone()
        }
    }

    /// A connection of its own to this store (for attaching a hand-over's store to it).
    async fn own_connection(&self) -> Result<SqliteConnection, sqlx::Error> {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.inner.dir.join(crate::DB_FILE))
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10));
        SqliteConnection::connect_with(&options).await
    }
}

/// A hand-over's name: the device id the store holds, as a canonical UUID, so it names one
/// directory and one set of key names and never a path outside.
fn handover_id(device: &str) -> Result<String, String> {
    let id: uuid::Uuid = device
        .parse()
        .map_err(|_| format!("not a device id: {device}"))?;
    Ok(id.to_string())
}

/// The photos of `queued` that `linked` lacks, as a JSON array of lowercase hex strings for
/// `json_each` (compared with `lower(hex(sha256))`).
fn missing_json(queued: &[Vec<u8>], linked: &[Vec<u8>]) -> String {
    let missing: Vec<String> = queued
        .iter()
        .filter(|sha| !linked.contains(sha))
        .map(|sha| format!("\"{}\"", hex::encode(sha)))
        .collect();
    format!("[{}]", missing.join(","))
}

/// Makes a directory's entries durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Empties every data table of the store (in `main`, when another store is attached) and puts
/// back the rows every store starts with.
async fn wipe(tx: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let emptied = DATA_TABLES.map(|table| format!("DELETE FROM main.{table}"));
    let restored = [
        // The rows every store starts with (as the migrations create them); the next volunteer
        // starts off duty, with no position.
        "INSERT INTO main.sync_state (id) VALUES (1)",
        "INSERT INTO main.pull_state (id, cursor, bootstrapped) VALUES (1, 0, 0)",
        "INSERT INTO main.duty (id, on_duty) VALUES (1, 0)",
        // A new enrollment is a new device: its sequence starts again. The hybrid clock keeps
        // counting (it only has to move forward).
        "UPDATE main.counters SET value = 0 WHERE key = 'last_seq'",
    ];
    for statement in emptied.iter().map(String::as_str).chain(restored) {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    Ok(())
}

/// Hard-links each photo in `hashes` from `from` into `to` (made if missing), so the hand-over
/// keeps its files when this store's photo directory goes; a file already there is kept.
/// Returns the hashes whose file the hand-over holds (a photo gone from the phone is not).
fn link_photos(from: &Path, to: &Path, hashes: &[Vec<u8>]) -> std::io::Result<Vec<Vec<u8>>> {
    std::fs::create_dir_all(to)?;
    let mut linked = Vec::with_capacity(hashes.len());
    for sha in hashes {
        let name = hex::encode(sha);
        match std::fs::hard_link(from.join(&name), to.join(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
        linked.push(sha.clone());
    }
    // The links are durable before the originals are removed.
    sync_dir(to)?;
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Makes `client` enrolled as `device` (of alice), as far as the local store goes.
    async fn enroll_as(client: &Client, device: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO identity (id, device_id, server, user_name, role, grid_cells, enrolled_at) \
             VALUES (1, ?, '127.0.0.1:1', 'alice', 'patroller', 'S1-C1', 0)",
        )
        .bind(device)
        .execute(&client.inner.db)
        .await?;
        Ok(())
    }

    #[tokio::test]
    async fn sign_out_empties_every_table_that_holds_the_devices_data()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let client = Client::open(dir.path(), crate::ClientConfig::default()).await?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' \
             AND name NOT LIKE 'sqlite%' ORDER BY name",
        )
        .fetch_all(&client.inner.db)
        .await?;
        // A table added later must be wiped too, or named here as kept (the sequence counter).
        for t in &tables {
            assert!(
                DATA_TABLES.contains(&t.as_str()) || t == "counters",
                "sign_out does not wipe {t}"
            );
        }
        client.sign_out(Unsent::Refuse).await?;
        let row: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_state")
            .fetch_one(&client.inner.db)
            .await?;
        assert_eq!(row, 1, "the store is usable again");
        assert_eq!(client.duty().await?, crate::Duty::default(), "off duty");
        Ok(())
    }

    /// Every check-in whose recording returned Ok before the sign-out is in the hand-over,
    /// with the credentials, the counters and the queued photos; none is left or doubled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hand_over_holds_every_record_made_up_to_the_wipe()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let client = Client::open(dir.path(), crate::ClientConfig::default()).await?;
        let device = "0190e1a0-0000-7000-8000-000000000001";
        enroll_as(&client, device).await?;
        for name in [KEY_FILE, CERT_FILE, SERVER_CA_FILE] {
            client.inner.keys.save(name, name.as_bytes())?;
        }
        let photo = client.add_photo_bytes(b"a photo").await?;
        // A patroller keeps tapping while the phone is signed out under her (a tap every few
        // milliseconds, far faster than a hand: a copy that raced one every time would give up,
        // as it should).
        let recorder = client.clone();
        let tapping = tokio::spawn(async move {
            let mut recorded = Vec::new();
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                let c = crate::NewCheckIn::new(
                    "S1-C1-K1-B1-P1",
                    patrolsync_proto::CheckInOutcome::Inspected,
                );
                match recorder.record_checkin(c).await {
                    Ok(id) => recorded.push(id.0.as_bytes().to_vec()),
                    Err(crate::RecordError::NotEnrolled) => return Ok(recorded),
                    Err(e) => return Err(e),
                }
            }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        client.sign_out(Unsent::HandOver).await?;
        let mut recorded = tapping.await??;
        assert!(
            !recorded.is_empty(),
            "the test recorded nothing before the sign-out"
        );

        let s = client.status().await?;
        assert_eq!((s.device_id, s.pending_ops, s.pending_photos), (None, 0, 0));
        assert_eq!(s.handed_over, recorded.len() as u64 + 1);
        let handover = dir.path().join(HANDOVER_DIR).join(device);
        let kept = Client::open_handover(&handover, client.handover_config(device)).await?;
        let mut held: Vec<Vec<u8>> = sqlx::query_scalar("SELECT record_id FROM outbox")
            .fetch_all(&kept.inner.db)
            .await?;
        held.sort();
        recorded.sort();
        assert_eq!(held, recorded, "every record made before the wipe, once");
        let last_seq: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE key = 'last_seq'")
            .fetch_one(&kept.inner.db)
            .await?;
        assert_eq!(last_seq, recorded.len() as i64);
        assert_eq!(kept.status().await?.device_id.as_deref(), Some(device));
        // Its credentials under its own names, and none left under the phone's.
        for name in [KEY_FILE, CERT_FILE, SERVER_CA_FILE] {
            assert_eq!(kept.inner.keys.load(name)?, Some(name.as_bytes().to_vec()));
            assert_eq!(client.inner.keys.load(name)?, None);
        }
        assert_eq!(std::fs::read(kept.photo_path(&photo))?, b"a photo");
        assert!(!client.photo_dir().exists());
        kept.close().await;
        // The next volunteer's records start again at 1 and are not counted as handed over.
        enroll_as(&client, "0190e1a0-0000-7000-8000-000000000002").await?;
        client
            .record_checkin(crate::NewCheckIn::new(
                "S1-C1-K1-B1-P2",
                patrolsync_proto::CheckInOutcome::Inspected,
            ))
            .await?;
        let s = client.status().await?;
        assert_eq!(
            (s.pending_ops, s.handed_over),
            (1, recorded.len() as u64 + 1)
        );
        Ok(())
    }

    /// Nothing waiting: a hand-over is a plain sign-out and leaves no credentials behind; a
    /// revoked device's records could never be sent, so they are not handed over.
    #[tokio::test]
    async fn a_hand_over_is_made_only_of_records_the_server_could_take()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let client = Client::open(dir.path(), crate::ClientConfig::default()).await?;
        enroll_as(&client, "0190e1a0-0000-7000-8000-000000000001").await?;
        client.inner.keys.save(KEY_FILE, b"key")?;
        client.sign_out(Unsent::HandOver).await?;
        assert!(!dir.path().join(HANDOVER_DIR).exists());
        assert_eq!(client.inner.keys.load(KEY_FILE)?, None);

        enroll_as(&client, "0190e1a0-0000-7000-8000-000000000002").await?;
        let c = crate::NewCheckIn::new(
            "S1-C1-K1-B1-P1",
            patrolsync_proto::CheckInOutcome::Inspected,
        );
        client.record_checkin(c).await?;
        sqlx::query("UPDATE sync_state SET revoked = 1")
            .execute(&client.inner.db)
            .await?;
        let refused = client.sign_out(Unsent::HandOver).await;
        assert!(matches!(refused, Err(SignOutError::Revoked)), "{refused:?}");
        assert_eq!(client.status().await?.pending_ops, 1, "nothing was wiped");
        client.sign_out(Unsent::Discard).await?;
        assert_eq!(client.status().await?.pending_ops, 0);

        // A photo belongs to whoever is enrolled: with nobody, it is refused.
        let nobody = client.add_photo_bytes(b"a photo").await;
        assert!(
            matches!(nobody, Err(crate::RecordError::NotEnrolled)),
            "{nobody:?}"
        );
        assert_eq!(client.status().await?.pending_photos, 0);

        // Two hand-overs; the server revokes one device later. Only that one is discarded.
        for (device, revoked) in [
            ("0190e1a0-0000-7000-8000-000000000003", true),
            ("0190e1a0-0000-7000-8000-000000000004", false),
        ] {
            enroll_as(&client, device).await?;
            let c = crate::NewCheckIn::new(
                "S1-C1-K1-B1-P1",
                patrolsync_proto::CheckInOutcome::Inspected,
            );
            client.record_checkin(c).await?;
            client.sign_out(Unsent::HandOver).await?;
            let handover = Client::open_handover(
                &client.handover_path(device),
                client.handover_config(device),
            )
            .await?;
            sqlx::query("UPDATE sync_state SET revoked = ?")
                .bind(revoked)
                .execute(&handover.inner.db)
                .await?;
            handover.close().await;
        }
        assert_eq!(client.status().await?.handed_over, 2);
        assert_eq!(client.discard_handed_over().await?, 1);
        assert_eq!(
            client.handover_devices(),
            ["0190e1a0-0000-7000-8000-000000000004"]
        );
        assert_eq!(client.status().await?.handed_over, 1);
        Ok(())
    }
}
