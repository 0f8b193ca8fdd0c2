//! Enrollment: a key pair made here, a CSR signed by the server, the certificate and the
//! server's CA kept beside the outbox.

use patrolsync_proto::{EnrollmentString, codes, wire};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::clock::now_ms;
use crate::error::local;
use crate::{CERT_FILE, Client, EnrollError, KEY_FILE, SERVER_CA_FILE, SyncError, tls, transport};

/// What the device learned at enrollment.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Enrollment {
    /// Server-assigned device id.
    pub device_id: String,
    /// Server `host:port`.
    pub server: String,
    /// The user this device belongs to.
    pub user: String,
    /// The user's role.
    pub role: String,
    /// Assigned grid cells.
    pub grid_cells: Vec<String>,
}

pub(crate) struct Identity {
    pub(crate) server: String,
    /// For a sync's connection (and enrollment's): it pings every half second while it waits, so
    /// a server that died with a request in flight and came back (and resets the old connection
    /// at its next packet) is noticed within about a second, not at the next keep-alive.
    pub(crate) config: quinn::ClientConfig,
    /// For the engine's idle connection that waits for Notify: the configured keep-alive.
    pub(crate) listen_config: quinn::ClientConfig,
}

/// Keep-alive of a connection a sync holds (see [`Identity::config`]).
const SYNC_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(500);

impl Client {
    /// Enrolls this device with a one-time enrollment string from an admin. The device makes
    /// its own key, which never leaves it; the server signs a certificate for it. `server`
    /// overrides the address in the string.
    ///
    /// # Errors
    ///
    /// [`EnrollError`]: `AlreadyEnrolled`, `BadCode` (a malformed
    /// enrollment string), `Unreachable` (with its network code; retry), `Refused` (the code is
    /// unknown, used or expired; ask for a new one), `Local`.
    ///
    /// # Cancel safety
    ///
    /// Not undone by cancelling: once the server has accepted the request, the single-use code
    /// is spent even if the answer never arrives here; the admin issues a new one.
    pub async fn enroll(
        &self,
        enrollment: &str,
        server: Option<&str>,
        device_name: &str,
    ) -> Result<Enrollment, EnrollError> {
        let local = |e: sqlx::Error| EnrollError::Local(e.to_string());
        // No sync may run on the old identity while it is replaced.
        let _no_sync = self.inner.sync_lock.lock().await;
        let previous: Option<(String, String)> =
            sqlx::query_as("SELECT device_id, user_name FROM identity WHERE id = 1")
                .fetch_optional(&self.inner.db)
                .await
                .map_err(local)?;
        if let Some((id, _)) = &previous {
            // A revoked device may enroll again as a new one, keeping what it has not sent.
            let revoked: i64 = sqlx::query_scalar("SELECT revoked FROM sync_state WHERE id = 1")
                .fetch_one(&self.inner.db)
                .await
                .map_err(local)?;
            if revoked == 0 {
                return Err(EnrollError::AlreadyEnrolled(id.clone()));
            }
        }
        let parsed: EnrollmentString = enrollment.parse()?;
        let server = server
            .map(str::to_owned)
            .unwrap_or_else(|| parsed.server.clone());
        let key = rcgen::KeyPair::generate().map_err(|e| EnrollError::Local(e.to_string()))?;
        let csr = rcgen::CertificateParams::new(Vec::<String>::new())
            .and_then(|p| p.serialize_request(&key))
            .map_err(|e| EnrollError::Local(e.to_string()))?;
        let unreachable = |e: crate::transport::CallError| EnrollError::Unreachable {
            server: server.clone(),
            reason: e.to_string(),
            code: e.code(&server),
        };
        let tls = tls::enrollment_config(parsed.ca_sha256, SYNC_KEEP_ALIVE)
            .map_err(|e| EnrollError::Local(e.to_string()))?;
        let conn = self
            .inner
            .endpoints
            .connect(&server, tls, self.inner.config.connect_timeout)
            .await
            .map_err(unreachable)?;
        let request = wire::Request {
            kind: Some(wire::request::Kind::Enroll(wire::EnrollRequest {
                code: parsed.code.clone(),
                csr_der: csr.der().to_vec(),
                device_name: device_name.to_owned(),
                app_version: self.inner.config.app_version.clone(),
            })),
        };
        let response = transport::call(
            &conn,
            &request,
            patrolsync_proto::frame::DEFAULT_MAX_FRAME_BYTES,
            self.inner.config.request_timeout,
        )
        .await
        .map_err(unreachable);
        conn.close(quinn::VarInt::from_u32(codes::CLOSE_DONE), b"enrolled");
        let e = match response?.kind {
            Some(wire::response::Kind::Enroll(e)) => e,
            Some(wire::response::Kind::Error(err)) => {
                return Err(EnrollError::Refused(err.message));
            }
            _ => return Err(EnrollError::Refused("unexpected response to Enroll".into())),
        };
        // Trust from now on only the CA the enrollment string pinned, not whatever was sent.
        if patrolsync_proto::digest::Sha256::digest(&e.server_ca_der) != parsed.ca_sha256 {
            return Err(EnrollError::Refused(
                "the server sent a CA that does not match the fingerprint in the enrollment code"
                    .into(),
            ));
        }
        let role = patrolsync_proto::Role::from_wire_value(e.role)
            .map(|r| r.to_string())
            .unwrap_or_default();
        // The write lock from here on: a record saved meanwhile waits, and is adopted with the
        // rest.
        let mut tx = self
            .inner
            .db
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(local)?;
        if let Some((old, old_user)) = &previous {
            // Another person's records must not go out under this one's name.
            let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
                .fetch_one(&mut *tx)
                .await
                .map_err(local)?;
            if *old_user != e.user && waiting > 0 {
                return Err(EnrollError::OtherUsersRecords {
                    user: old_user.clone(),
                    count: waiting as u64,
                });
            }
            adopt_outbox(&mut tx, old, &e.device_id)
                .await
                .map_err(local)?;
            // What the old identity held of its cells is not this one's to keep: the new
            // identity pulls its own scope from the start.
            crate::scope::drop_held(&mut tx, Some(&e.device_id))
                .await
                .map_err(local)?;
        }
        sqlx::query(
            "INSERT OR REPLACE INTO identity (id, device_id, server, user_name, role, grid_cells, enrolled_at) VALUES (1, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.device_id)
        .bind(&server)
        .bind(&e.user)
        .bind(&role)
        .bind(e.grid_cells.join(","))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(local)?;
        // The credentials last, inside the transaction: if saving them fails nothing is
        // committed, and the device is as it was (revoked, or not enrolled).
        let keys = &self.inner.keys;
        keys.save(KEY_FILE, &key.serialize_der())
            .map_err(EnrollError::Local)?;
        keys.save(CERT_FILE, &e.certificate_der)
            .map_err(EnrollError::Local)?;
        keys.save(SERVER_CA_FILE, &e.server_ca_der)
            .map_err(EnrollError::Local)?;
        tx.commit().await.map_err(local)?;
        self.reset_state();
        Ok(Enrollment {
            device_id: e.device_id,
            server,
            user: e.user,
            role,
            grid_cells: e.grid_cells,
        })
    }

    pub(crate) async fn identity(&self) -> Result<Identity, SyncError> {
        let server: Option<String> = sqlx::query_scalar("SELECT server FROM identity WHERE id = 1")
            .fetch_optional(&self.inner.db)
            .await
            .map_err(local)?;
        let server = server.ok_or(SyncError::NotEnrolled)?;
        let read = |name: &str| match self.inner.keys.load(name) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(SyncError::Local(format!(
                "{name} is missing from the key store"
            ))),
            Err(e) => Err(SyncError::Local(e)),
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(read(KEY_FILE)?));
        let config = tls::device_config(
            CertificateDer::from(read(SERVER_CA_FILE)?),
            CertificateDer::from(read(CERT_FILE)?),
            key,
            // Below the idle timeout (60 s), at least a second.
            self.inner.config.keep_alive.clamp(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(30),
            ),
        )
        .map_err(local)?;
        Ok(Identity {
            server: self.inner.config.server_override.clone().unwrap_or(server),
            config: tls::with_keep_alive(&config, SYNC_KEEP_ALIVE),
            listen_config: config,
        })
    }
}

/// A revoked device enrolled again as `new` (for the same user): its unsent ops become the new
/// device's, numbered from 1 in the order they were recorded (the server keys ops by device and
/// sequence, and keeps a record sent twice under two devices once, by its id), and its own
/// hazard ops not yet acknowledged carry the new device in the local view, as the server will
/// stamp them. The old device's list of refused ops is dropped: the numbers it is keyed by now
/// belong to the new device (the server's rejection log keeps them).
async fn adopt_outbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    old: &str,
    new: &str,
) -> Result<(), sqlx::Error> {
    use patrolsync_proto::{Message, wire};
    use sqlx::Row;
    let rows = sqlx::query("SELECT device_seq, payload FROM outbox ORDER BY device_seq")
        .fetch_all(&mut **tx)
        .await?;
    let mut next = 0i64;
    for row in rows {
        let seq: i64 = row.get(0);
        let mut op = wire::Op::decode(row.get::<Vec<u8>, _>(1).as_slice())
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        next += 1;
        op.device_seq = next as u64;
        // Ascending: the new number is never above the old, so no two rows meet.
        sqlx::query("UPDATE outbox SET device_seq = ?, payload = ? WHERE device_seq = ?")
            .bind(next)
            .bind(op.encode_to_vec())
            .bind(seq)
            .execute(&mut **tx)
            .await?;
        if let (Some(hlc), false) = (op.hlc, matches!(op.body, Some(wire::op::Body::CheckIn(_)))) {
            sqlx::query(
                "UPDATE hazard_ops SET device_id = ? WHERE device_id = ? AND hlc_wall_ms = ? AND hlc_logical = ?",
            )
            .bind(new)
            .bind(old)
            .bind(hlc.wall_ms as i64)
            .bind(i64::from(hlc.logical))
            .execute(&mut **tx)
            .await?;
        }
    }
    sqlx::query("UPDATE counters SET value = ? WHERE key = 'last_seq'")
        .bind(next)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM rejected")
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "UPDATE sync_state SET revoked = 0, last_error = NULL, last_error_code = NULL, \
         last_error_p1 = NULL, last_error_p2 = NULL WHERE id = 1",
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
