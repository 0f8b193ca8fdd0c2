//! Photos: which are stored, who may send and read them, which are still owed.

use super::*;

impl SqlStore {
    /// The photo is stored (idempotent): its row, no longer owed. Returns whether it was new,
    /// to be counted once.
    async fn store_blob(
        &self,
        tx: &mut Transaction<'_, Any>,
        sha256: &[u8; 32],
        size: u64,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let stored = sqlx::query(
            "INSERT INTO blobs (sha256, size, stored_at_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(sha256.to_vec())
        .bind(seq(size))
        .bind(now_ms)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM missing_blobs WHERE sha256 = $1")
            .bind(sha256.to_vec())
            .execute(&mut **tx)
            .await?;
        Ok(stored as i64)
    }
}

#[async_trait]
impl PhotoStore for SqlStore {
    async fn blob(&self, sha256: &[u8; 32]) -> Result<Option<u64>, StoreError> {
        let size: Option<i64> = sqlx::query_scalar("SELECT size FROM blobs WHERE sha256 = $1")
            .bind(sha256.to_vec())
            .fetch_optional(&self.pool)
            .await?;
        Ok(size.map(|s| s.max(0) as u64))
    }

    async fn record_blob(
        &self,
        sha256: &[u8; 32],
        size: u64,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let blobs = self.store_blob(&mut tx, sha256, size, now_ms).await?;
        let counted = Counted {
            blobs,
            ..Counted::default()
        };
        self.add_counts(&mut tx, u64::from(sha256[0]), &counted)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_uploads(
        &self,
        uploads: &[ProvedUpload],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let Some(first) = uploads.first() else {
            return Ok(());
        };
        // One commit for them all: the server's last step before it answers each upload. In
        // one order, so two nodes recording the same photos never wait for each other's rows
        // the other way round.
        let mut sorted = uploads.to_vec();
        sorted.sort_unstable_by_key(|u| (u.sha256, u.device));
        let mut tx = self.pool.begin().await?;
        let mut counted = Counted::default();
        for u in &sorted {
            sqlx::query(
                "INSERT INTO blob_holders (sha256, device_id, proved_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(u.sha256.to_vec())
            .bind(u.device.to_string())
            .bind(now_ms)
            .execute(&mut *tx)
            .await?;
            counted.blobs += self.store_blob(&mut tx, &u.sha256, u.size, now_ms).await?;
        }
        // The kept counts last, on one shard: held only while this commits.
        self.add_counts(&mut tx, u64::from(first.sha256[0]), &counted)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn blob_access(
        &self,
        sha256: &[u8; 32],
        device: DeviceId,
        scope: &PullScope,
    ) -> Result<BlobAccess, StoreError> {
        let paths: Vec<String> = (0..scope.paths.len())
            .map(|i| format!("substr(c.path, 1, length(${n})) = ${n}", n = i + 5))
            .collect();
        let paths = match paths.is_empty() {
            true => "FALSE".to_owned(),
            false => paths.join(" OR "),
        };
        // Agency users see photos of the hazards their agency holds; everyone else those of
        // records in their cells; and every feed those of the hazards a routing rule sent it
        // (it holds their whole log).
        let audience = match scope.agency {
            Some(_) => {
                "AND r.record_kind = 'hazard' AND EXISTS (SELECT 1 FROM hazards h \
                        WHERE h.id = r.record_id AND h.agency = $3)"
            }
            None => "AND $3 = $3",
        };
        let in_scope = format!(
            "((({paths}) {audience}) OR (r.record_kind = 'hazard' AND EXISTS (SELECT 1 FROM \
             hazards h WHERE h.id = r.record_id AND h.routed_to = $4)))"
        );
        // One pass over the photo's references (its index), counting those of each kind, and
        // the two rows of its own: its stored size, and whether this device proved it holds it.
        let sql = format!(
            "SELECT (SELECT size FROM blobs WHERE sha256 = $1), \
             (SELECT COUNT(*) FROM blob_holders WHERE sha256 = $1 AND device_id = $2), \
             COUNT(CASE WHEN r.device_id = $2 OR {in_scope} THEN 1 END), \
             COUNT(CASE WHEN r.device_id <> $2 AND {in_scope} THEN 1 END) \
             FROM blob_refs r JOIN grid_cells c ON c.id = r.cell_id WHERE r.sha256 = $1"
        );
        let mut q = sqlx::query(&sql)
            .bind(sha256.to_vec())
            .bind(device.to_string())
            .bind(scope.agency.clone().unwrap_or_default())
            .bind(scope.audience.clone());
        for p in &scope.paths {
            q = q.bind(p.clone());
        }
        let row = q.fetch_one(&self.pool).await?;
        let (size, held, sendable, others_in_scope): (Option<i64>, i64, i64, i64) = (
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        let readable = held > 0 || others_in_scope > 0;
        Ok(BlobAccess {
            visible: sendable > 0,
            readable,
            // Whether it is stored is told only to a device that may read it: no oracle.
            stored: size.filter(|_| readable).map(|s| s.max(0) as u64),
        })
    }

    async fn missing_photos(
        &self,
        device: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MissingPhoto>, StoreError> {
        let filter = if device.is_some() {
            "AND r.device_id = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT r.sha256, r.record_kind, r.record_id, r.device_id, u.name, r.created_at FROM missing_blobs m \
             JOIN blob_refs r ON r.sha256 = m.sha256 \
             JOIN devices d ON d.id = r.device_id JOIN users u ON u.id = d.user_id \
             WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = m.sha256) {filter} \
             ORDER BY r.created_at LIMIT {limit}"
        );
        let mut q = sqlx::query(&sql);
        if let Some(d) = device {
            q = q.bind(d.to_owned());
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let sha: Vec<u8> = r.try_get(0)?;
                let record: Vec<u8> = r.try_get(2)?;
                Ok(MissingPhoto {
                    sha256: hex::encode(&sha),
                    record_kind: r.try_get(1)?,
                    record_id: uuid::Uuid::from_slice(&record)
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    device: r.try_get(3)?,
                    user: r.try_get(4)?,
                    since_ms: r.try_get(5)?,
                })
            })
            .collect()
    }
}
