//! On duty (在岗) and the device's position: while the user is on duty, the latest fix the app
//! gives rides on each Hello, so the server can offer tasks to the nearest on-duty patroller;
//! off duty, no position is kept on the phone nor sent (the server drops the one it held at the
//! first Hello off duty).

use patrolsync_proto::GeoFix;
use patrolsync_proto::wire;
use prost::Message;
use sqlx::Row;

use crate::error::{local, read_failed};
use crate::{Client, ReadError, RecordError, SyncError};

/// Whether the user is on duty, and the fix the next Hello carries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Duty {
    /// On duty.
    pub on_duty: bool,
    /// The latest fix the app gave while on duty (WGS-84), if any.
    pub position: Option<GeoFix>,
}

impl Duty {
    /// What a Hello carries of it: the position only while on duty.
    pub(crate) fn hello_fields(&self) -> (bool, Option<wire::GeoFix>) {
        match (self.on_duty, &self.position) {
            (true, Some(fix)) => (true, Some(fix.to_wire())),
            (on_duty, _) => (on_duty, None),
        }
    }
}

impl Client {
    /// Puts the user on duty (在岗) or takes them off. Going off duty forgets the position at
    /// once; the server forgets its copy at the next sync.
    ///
    /// # Errors
    ///
    /// [`RecordError::Storage`] if the local store cannot be written.
    ///
    /// # Cancel safety
    ///
    /// One local statement: cancelled, it either happened or not.
    pub async fn set_on_duty(&self, on_duty: bool) -> Result<(), RecordError> {
        sqlx::query(
            "UPDATE duty SET on_duty = ?, position = CASE WHEN ? THEN position END WHERE id = 1",
        )
        .bind(on_duty)
        .bind(on_duty)
        .execute(&self.inner.db)
        .await
        .map_err(|e| RecordError::Storage(e.to_string()))?;
        // The server learns it at the next sync: a running engine syncs now.
        self.inner.trigger.notify_one();
        Ok(())
    }

    /// Gives the device's latest fix (from the platform's location service). Kept, and sent
    /// with the next Hello, only while the user is on duty; returns whether it was kept.
    ///
    /// # Errors
    ///
    /// [`RecordError::Invalid`] for a fix out of range (nothing kept);
    /// [`RecordError::Storage`] if the local store cannot be written.
    ///
    /// # Cancel safety
    ///
    /// One local statement: cancelled, it either happened or not.
    pub async fn update_position(&self, fix: GeoFix) -> Result<bool, RecordError> {
        let fix = GeoFix::from_wire("position", fix.to_wire(), crate::clock::now_ms())?;
        let kept = sqlx::query("UPDATE duty SET position = ? WHERE id = 1 AND on_duty = 1")
            .bind(fix.to_wire().encode_to_vec())
            .execute(&self.inner.db)
            .await
            .map_err(|e| RecordError::Storage(e.to_string()))?
            .rows_affected();
        Ok(kept == 1)
    }

    /// Whether the user is on duty, and the position the next Hello carries.
    ///
    /// # Errors
    ///
    /// [`ReadError`] if the local store cannot be read.
    pub async fn duty(&self) -> Result<Duty, ReadError> {
        let row = sqlx::query("SELECT on_duty, position FROM duty WHERE id = 1")
            .fetch_one(&self.inner.db)
            .await
            .map_err(read_failed)?;
        let position: Option<Vec<u8>> = row.get(1);
        Ok(Duty {
            on_duty: row.get::<i64, _>(0) != 0,
            position: position
                .and_then(|b| wire::GeoFix::decode(b.as_slice()).ok())
                .and_then(|w| GeoFix::from_wire("position", w, i64::MAX / 4).ok()),
        })
    }

    /// The Hello's duty fields.
    pub(crate) async fn hello_duty(&self) -> Result<(bool, Option<wire::GeoFix>), SyncError> {
        Ok(self.duty().await.map_err(local)?.hello_fields())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix() -> GeoFix {
        GeoFix {
            latitude: 45.75,
            longitude: 126.65,
            accuracy_m: 8.0,
            fix_time_ms: 1_790_000_000_000,
            mock: false,
            datum: patrolsync_proto::checkin::Datum::Wgs84,
        }
    }

    #[tokio::test]
    async fn a_position_is_kept_and_sent_only_while_on_duty() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let client = Client::open(dir.path(), crate::ClientConfig::default()).await?;
        // Off duty: the fix is not kept, and a Hello carries none.
        assert!(!client.update_position(fix()).await?);
        assert_eq!(client.duty().await?, Duty::default());
        assert_eq!(client.hello_duty().await?, (false, None));
        // On duty: kept and sent.
        client.set_on_duty(true).await?;
        assert_eq!(client.hello_duty().await?, (true, None));
        assert!(client.update_position(fix()).await?);
        let (on, sent) = client.hello_duty().await?;
        assert!(on);
        assert_eq!(
            sent.map(|w| (w.latitude, w.longitude)),
            Some((45.75, 126.65))
        );
        // Off again: forgotten on the phone at once.
        client.set_on_duty(false).await?;
        assert_eq!(client.duty().await?, Duty::default());
        assert_eq!(client.hello_duty().await?, (false, None));
        // A fix out of range is refused, naming the field.
        client.set_on_duty(true).await?;
        let bad = GeoFix {
            latitude: 95.0,
            ..fix()
        };
        match client.update_position(bad).await {
            Err(RecordError::Invalid(i)) => assert_eq!(i.field, "position.latitude"),
            other => panic!("an impossible fix: {other:?}"),
        }
        Ok(())
    }
}
