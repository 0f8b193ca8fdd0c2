//! Handing a shared phone to the next volunteer: signing out wipes the local store, the
//! credentials and the photos.

use crate::{CERT_FILE, Client, DataKind, ErrorCode, KEY_FILE, SERVER_CA_FILE};

/// Signing out failed; nothing was wiped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignOutError {
    /// Records have not reached the server yet; sync first, or sign out discarding them.
    #[error("{count} records have not been uploaded yet; sync first or discard them")]
    UnsentRecords {
        /// Ops in the outbox plus photos waiting.
        count: u64,
    },
    /// The local store failed.
    #[error("cannot wipe the local store: {0}")]
    Storage(String),
}

impl SignOutError {
    /// The stable code (for the app to branch on and show in the user's language).
    pub fn code(&self) -> ErrorCode {
        match self {
            SignOutError::UnsentRecords { count } => ErrorCode::UnsentRecords { count: *count },
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

impl Client {
    /// Signs this device out: wipes its records, its view of the grid, its photos and its
    /// credentials, so the next volunteer on a shared phone enrolls afresh. The state directory
    /// stays usable (enroll again on this client).
    ///
    /// # Errors
    ///
    /// [`SignOutError::UnsentRecords`] while records or photos wait to upload, unless
    /// `discard_unsent`: a check-in is never lost without the app saying so.
    ///
    /// # Cancel safety
    ///
    /// The database is wiped in one transaction before the files; cancelled between the two, a
    /// second call finishes the job.
    pub async fn sign_out(&self, discard_unsent: bool) -> Result<(), SignOutError> {
        let storage = |e: sqlx::Error| SignOutError::Storage(e.to_string());
        // No sync may run while the store is emptied under it.
        let _no_sync = self.inner.sync_lock.lock().await;
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
        if waiting > 0 && !discard_unsent {
            return Err(SignOutError::UnsentRecords {
                count: waiting as u64,
            });
        }
        for table in DATA_TABLES {
            sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
        }
        // The rows every store starts with (as the migrations create them).
        sqlx::query("INSERT INTO sync_state (id) VALUES (1)")
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        sqlx::query("INSERT INTO pull_state (id, cursor, bootstrapped) VALUES (1, 0, 0)")
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        // The next volunteer starts off duty, with no position.
        sqlx::query("INSERT INTO duty (id, on_duty) VALUES (1, 0)")
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        // A new enrollment is a new device: its sequence starts again. The hybrid clock keeps
        // counting (it only has to move forward).
        sqlx::query("UPDATE counters SET value = 0 WHERE key = 'last_seq'")
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
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
        self.reset_state();
        self.data_changed([
            DataKind::CheckIns,
            DataKind::Hazards,
            DataKind::Photos,
            DataKind::Templates,
            DataKind::Grid,
        ]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        client.sign_out(false).await?;
        let row: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_state")
            .fetch_one(&client.inner.db)
            .await?;
        assert_eq!(row, 1, "the store is usable again");
        assert_eq!(client.duty().await?, crate::Duty::default(), "off duty");
        Ok(())
    }
}
