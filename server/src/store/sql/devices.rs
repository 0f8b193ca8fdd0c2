//! Devices: enrollment, sessions, Hello reports, activity and revocation.

use super::*;
use patrolsync_i18n::text;

fn device_entry(r: &AnyRow) -> Result<DeviceEntry, StoreError> {
    Ok(DeviceEntry {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        user: r.try_get(2)?,
        role: r.try_get(3)?,
        enrolled_at_ms: r.try_get(4)?,
        last_seen_at_ms: r.try_get(5)?,
        revoked_at_ms: r.try_get(6)?,
        acked_through: r.try_get(7)?,
    })
}

impl SqlStore {
    pub(super) async fn session(
        &self,
        tx: &mut Transaction<'_, Any>,
        device_id: &str,
    ) -> Result<Option<DeviceSession>, StoreError> {
        let row = sqlx::query(
            "SELECT d.id, d.name, d.user_id, u.name, u.role, d.revoked_at, u.agency \
             FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1",
        )
        .bind(device_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let cells = sqlx::query(
            "SELECT c.code, c.path FROM assignments a JOIN grid_cells c ON c.id = a.cell_id \
             WHERE a.user_id = $1 AND c.retired_at IS NULL ORDER BY c.code",
        )
        .bind(row.try_get::<i64, _>(2)?)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let id: String = row.try_get(0)?;
        let role: Role = row
            .try_get::<String, _>(4)?
            .parse()
            .map_err(StoreError::Corrupt)?;
        // A party (物业, 社区) holds no cells, whatever assignments it was given: it acts on
        // what routing rules send it alone.
        let cells = if role.is_party() { Vec::new() } else { cells };
        Ok(Some(DeviceSession {
            id: id
                .parse()
                .map_err(|_| StoreError::Corrupt(format!("device id {id:?} is not a UUID")))?,
            name: row.try_get(1)?,
            user_id: row.try_get(2)?,
            user: row.try_get(3)?,
            role,
            cells,
            revoked_at_ms: row.try_get(5)?,
            agency: row.try_get(6)?,
        }))
    }
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn create_enrollment(&self, e: &NewEnrollment, now_ms: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        self.lock_scope(&mut tx).await?;
        let user_id: i64 = sqlx::query_scalar(
            "INSERT INTO users (name, role, created_at, agency) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET role = excluded.role, agency = excluded.agency RETURNING id",
        )
        .bind(&e.user)
        .bind(e.role.as_str())
        .bind(now_ms)
        .bind(e.agency.clone())
        .fetch_one(&mut *tx)
        .await?;
        for code in &e.cells {
            let cell: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM grid_cells WHERE code = $1 AND retired_at IS NULL",
            )
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(cell) = cell else {
                return Err(StoreError::NotFound(text!(
                    "store-no-cell-seed",
                    cell = code
                )));
            };
            sqlx::query(
                "INSERT INTO assignments (user_id, cell_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(cell)
            .execute(&mut *tx)
            .await?;
        }
        let changes = self
            .rescope_user(&mut tx, user_id, ScopeReason::Unassigned)
            .await?;
        self.append_changes(&mut tx, &changes, now_ms).await?;
        sqlx::query("INSERT INTO enrollment_codes (code_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(e.code_hash.to_vec())
            .bind(user_id)
            .bind(now_ms)
            .bind(e.expires_at_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn check_enrollment(&self, code_hash: &[u8; 32], now_ms: i64) -> Result<(), RedeemError> {
        let row = sqlx::query(
            "SELECT expires_at, used_at, device_id FROM enrollment_codes WHERE code_hash = $1",
        )
        .bind(code_hash.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from)?;
        let Some(r) = row else {
            return Err(RedeemError::Unknown);
        };
        if r.try_get::<Option<i64>, _>(1)
            .map_err(StoreError::from)?
            .is_some()
        {
            return Err(RedeemError::AlreadyUsed {
                device: r
                    .try_get::<Option<String>, _>(2)
                    .map_err(StoreError::from)?
                    .unwrap_or_default(),
            });
        }
        let expires: i64 = r.try_get(0).map_err(StoreError::from)?;
        if expires <= now_ms {
            return Err(RedeemError::Expired {
                ago_s: (now_ms - expires) / 1000,
            });
        }
        Ok(())
    }

    async fn redeem_enrollment(
        &self,
        code_hash: &[u8; 32],
        device: &NewDevice,
        now_ms: i64,
    ) -> Result<DeviceSession, RedeemError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let device_id = device.id.to_string();
        // Claim the code first (a write, so concurrent redeemers serialise on it).
        let user_id: Option<i64> = sqlx::query_scalar(
            "UPDATE enrollment_codes SET used_at = $1, device_id = $2 \
             WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
        )
        .bind(now_ms)
        .bind(&device_id)
        .bind(code_hash.to_vec())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let Some(user_id) = user_id else {
            let row = sqlx::query(
                "SELECT expires_at, used_at, device_id FROM enrollment_codes WHERE code_hash = $1",
            )
            .bind(code_hash.to_vec())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            return Err(match row {
                None => RedeemError::Unknown,
                Some(r) => {
                    let used: Option<i64> = r.try_get(1).map_err(StoreError::from)?;
                    if used.is_some() {
                        RedeemError::AlreadyUsed {
                            device: r
                                .try_get::<Option<String>, _>(2)
                                .map_err(StoreError::from)?
                                .unwrap_or_default(),
                        }
                    } else {
                        let expires: i64 = r.try_get(0).map_err(StoreError::from)?;
                        RedeemError::Expired {
                            ago_s: (now_ms - expires) / 1000,
                        }
                    }
                }
            });
        };
        sqlx::query(
            "INSERT INTO devices (id, user_id, name, cert_sha256, enrolled_at, app_version) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&device_id)
        .bind(user_id)
        .bind(&device.name)
        .bind(device.cert_sha256.to_vec())
        .bind(now_ms)
        .bind(&device.app_version)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let session = self.session(&mut tx, &device_id).await?.ok_or_else(|| {
            StoreError::NotFound(text!("store-device-vanished", device = device_id))
        })?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(session)
    }

    async fn device_by_cert(
        &self,
        cert_sha256: &[u8; 32],
    ) -> Result<Option<DeviceSession>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: Option<String> =
            sqlx::query_scalar("SELECT id FROM devices WHERE cert_sha256 = $1")
                .bind(cert_sha256.to_vec())
                .fetch_optional(&mut *tx)
                .await?;
        let session = match id {
            Some(id) => self.session(&mut tx, &id).await?,
            None => None,
        };
        tx.commit().await?;
        Ok(session)
    }

    async fn device_session(&self, device: DeviceId) -> Result<Option<DeviceSession>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let session = self.session(&mut tx, &device.to_string()).await?;
        tx.commit().await?;
        Ok(session)
    }

    async fn record_hello(
        &self,
        device: DeviceId,
        report: &DeviceReport,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let id = device.to_string();
        let mut tx = self.pool.begin().await?;
        let acked: Option<i64> = sqlx::query_scalar(
            "UPDATE devices SET last_seen_at = $1, outbox_depth = $2, oldest_pending_age_ms = $3, \
             pending_photo_bytes = $4, app_version = $5, sdk_version = $6, clock_offset_ms = $7, \
             rtt_ms = $8, bytes_in = bytes_in + $9, bytes_out = bytes_out + $10 \
             WHERE id = $11 RETURNING acked_through",
        )
        .bind(now_ms)
        .bind(seq(report.outbox_depth))
        .bind(seq(report.oldest_pending_age_ms))
        .bind(seq(report.pending_photo_bytes))
        .bind(&report.app_version)
        .bind(&report.sdk_version)
        .bind(report.clock_offset_ms)
        .bind(report.rtt_ms.map(i64::from))
        .bind(seq(report.bytes_in))
        .bind(seq(report.bytes_out))
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(acked) = acked else {
            return Err(StoreError::NotFound(text!(
                "store-not-enrolled",
                device = device
            )));
        };
        // On duty: the latest fix replaces the one held (one row per device); off duty: nothing
        // of where the device was is kept.
        match &report.duty {
            None => {
                sqlx::query("DELETE FROM device_duty WHERE device_id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(fix) => {
                sqlx::query(
                    "INSERT INTO device_duty (device_id, latitude, longitude, accuracy_m, fix_time_ms, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO UPDATE SET \
                     latitude = COALESCE(excluded.latitude, device_duty.latitude), \
                     longitude = COALESCE(excluded.longitude, device_duty.longitude), \
                     accuracy_m = COALESCE(excluded.accuracy_m, device_duty.accuracy_m), \
                     fix_time_ms = COALESCE(excluded.fix_time_ms, device_duty.fix_time_ms), \
                     updated_at = excluded.updated_at",
                )
                .persistent(self.keeps_nullable_floats_prepared())
                .bind(&id)
                .bind(fix.as_ref().map(|f| f.latitude))
                .bind(fix.as_ref().map(|f| f.longitude))
                .bind(fix.as_ref().map(|f| f.accuracy_m))
                .bind(fix.as_ref().map(|f| f.fix_time_ms))
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query(
            "INSERT INTO device_reports (device_id, at_ms, outbox_depth, oldest_pending_age_ms, \
             pending_photo_bytes, clock_offset_ms, rtt_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (device_id, at_ms) DO NOTHING",
        )
        .bind(&id)
        .bind(now_ms)
        .bind(seq(report.outbox_depth))
        .bind(seq(report.oldest_pending_age_ms))
        .bind(seq(report.pending_photo_bytes))
        .bind(report.clock_offset_ms)
        .bind(report.rtt_ms.map(i64::from))
        .execute(&mut *tx)
        .await?;
        // Keep the newest few: the history is for "since when", not an archive.
        sqlx::query(&format!(
            "DELETE FROM device_reports WHERE device_id = $1 AND at_ms < \
             (SELECT at_ms FROM device_reports WHERE device_id = $1 ORDER BY at_ms DESC \
              LIMIT 1 OFFSET {})",
            HISTORY_KEPT - 1
        ))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(acked.max(0) as u64)
    }

    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError> {
        sqlx::query(
            "SELECT d.id, d.name, u.name, u.role, d.enrolled_at, d.last_seen_at, d.revoked_at, d.acked_through \
             FROM devices d JOIN users u ON u.id = d.user_id ORDER BY d.enrolled_at, d.id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(device_entry)
        .collect()
    }

    async fn revoke_device(&self, id: &str, now_ms: i64) -> Result<DeviceEntry, StoreError> {
        let id = id.trim().to_ascii_lowercase();
        if id.len() < 8 {
            return Err(StoreError::Invalid(text!(
                "store-device-id-short",
                device = id
            )));
        }
        // It reads before it writes: a deferred SQLite transaction could not upgrade while a
        // device's activity is being written, and would fail with "database is locked".
        let mut tx = self.begin_write().await?;
        let matches: Vec<String> =
            sqlx::query_scalar("SELECT id FROM devices WHERE substr(id, 1, length($1)) = $1")
                .bind(&id)
                .fetch_all(&mut *tx)
                .await?;
        let full = match matches.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(StoreError::NotFound(text!("store-no-device", device = id)));
            }
            many => {
                return Err(StoreError::Invalid(text!(
                    "store-device-ambiguous",
                    device = id,
                    n = many.len()
                )));
            }
        };
        sqlx::query("UPDATE devices SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms)
            .bind(&full)
            .execute(&mut *tx)
            .await?;
        // A revoked phone is on duty nowhere, and where it was is not kept.
        sqlx::query("DELETE FROM device_duty WHERE device_id = $1")
            .bind(&full)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(
            "SELECT d.id, d.name, u.name, u.role, d.enrolled_at, d.last_seen_at, d.revoked_at, d.acked_through \
             FROM devices d JOIN users u ON u.id = d.user_id WHERE d.id = $1",
        )
        .bind(&full)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        device_entry(&row)
    }

    async fn revoked_since(&self, since_ms: i64) -> Result<Vec<DeviceId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM devices WHERE revoked_at >= $1")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await?;
        Ok(ids.iter().filter_map(|i| i.parse().ok()).collect())
    }

    async fn record_activity(
        &self,
        device: DeviceId,
        activity: &Activity,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let id = device.to_string();
        let q = match activity {
            Activity::Pulled => sqlx::query("UPDATE devices SET last_pull_at = $1 WHERE id = $2")
                .bind(now_ms)
                .bind(id),
            Activity::Failed(message) => sqlx::query(
                "UPDATE devices SET last_error_at = $1, last_error = $2 WHERE id = $3",
            )
            .bind(now_ms)
            .bind(message.chars().take(500).collect::<String>())
            .bind(id),
            Activity::Traffic { bytes_in, bytes_out } => sqlx::query(
                "UPDATE devices SET bytes_in = bytes_in + $1, bytes_out = bytes_out + $2 WHERE id = $3",
            )
            .bind(seq(*bytes_in))
            .bind(seq(*bytes_out))
            .bind(id),
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    async fn device_statuses(&self) -> Result<Vec<DeviceStatus>, StoreError> {
        let mut owed: HashMap<String, (i64, i64)> = HashMap::new();
        for r in sqlx::query(
            "SELECT r.device_id, COUNT(*), MIN(r.created_at) FROM missing_blobs m \
             JOIN blob_refs r ON r.sha256 = m.sha256 \
             WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = m.sha256) GROUP BY r.device_id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            owed.insert(r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?));
        }
        // Every device's row as one JSON text the database builds: a fleet of 11,000 read
        // through the driver value by value took 170 ms on SQLite, as one text 28 ms.
        const COLUMNS: &str = "d.id, d.name, u.name, u.role, d.enrolled_at, d.revoked_at, \
             d.last_seen_at, d.last_push_at, d.last_pull_at, d.acked_through, d.app_version, \
             d.sdk_version, d.outbox_depth, d.oldest_pending_age_ms, d.pending_photo_bytes, \
             d.clock_offset_ms, d.rtt_ms, d.bytes_in, d.bytes_out, d.rejected_ops, d.conflicts, \
             d.last_problem_at, d.last_error_at, d.last_error";
        let list = match self.backend {
            Backend::Sqlite => format!("json_group_array(json_array({COLUMNS}))"),
            Backend::Postgres => {
                format!("COALESCE(json_agg(json_build_array({COLUMNS})), '[]'::json)::text")
            }
        };
        let json: String = sqlx::query_scalar(&format!(
            "SELECT {list} FROM devices d JOIN users u ON u.id = d.user_id"
        ))
        .fetch_one(&self.pool)
        .await?;
        /// One device's columns, in `COLUMNS`' order.
        #[derive(serde::Deserialize)]
        struct Row(
            String,
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            i64,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
            i64,
            i64,
            i64,
            i64,
            Option<i64>,
            Option<i64>,
            Option<String>,
        );
        let rows: Vec<Row> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("the devices' rows as JSON: {e}")))?;
        let mut statuses: Vec<DeviceStatus> = rows
            .into_iter()
            .map(|r| {
                let (missing, since) = owed
                    .get(&r.0)
                    .map(|(n, at)| (*n, Some(*at)))
                    .unwrap_or((0, None));
                DeviceStatus {
                    id: r.0,
                    name: r.1,
                    user: r.2,
                    role: r.3,
                    enrolled_at_ms: r.4,
                    revoked_at_ms: r.5,
                    last_seen_at_ms: r.6,
                    last_push_at_ms: r.7,
                    last_pull_at_ms: r.8,
                    acked_through: r.9,
                    app_version: r.10,
                    sdk_version: r.11,
                    outbox_depth: r.12,
                    oldest_pending_age_ms: r.13,
                    pending_photo_bytes: r.14,
                    clock_offset_ms: r.15,
                    rtt_ms: r.16,
                    bytes_in: r.17,
                    bytes_out: r.18,
                    rejected_ops: r.19,
                    conflicts: r.20,
                    last_problem_at_ms: r.21,
                    last_error_at_ms: r.22,
                    last_error: r.23,
                    missing_photos: missing,
                    missing_photos_since_ms: since,
                }
            })
            .collect();
        statuses.sort_by(|a, b| (a.enrolled_at_ms, &a.id).cmp(&(b.enrolled_at_ms, &b.id)));
        Ok(statuses)
    }

    async fn device_history(
        &self,
        device: DeviceId,
        limit: u32,
    ) -> Result<Vec<ReportSample>, StoreError> {
        sqlx::query(&format!(
            "SELECT at_ms, outbox_depth, oldest_pending_age_ms, pending_photo_bytes, clock_offset_ms, rtt_ms \
             FROM device_reports WHERE device_id = $1 ORDER BY at_ms DESC LIMIT {limit}"
        ))
        .bind(device.to_string())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(ReportSample {
                at_ms: r.try_get(0)?,
                outbox_depth: r.try_get(1)?,
                oldest_pending_age_ms: r.try_get(2)?,
                pending_photo_bytes: r.try_get(3)?,
                clock_offset_ms: r.try_get(4)?,
                rtt_ms: r.try_get(5)?,
            })
        })
        .collect()
    }
}
