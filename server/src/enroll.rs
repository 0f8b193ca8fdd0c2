//! Enrollment codes: single-use, expiring, stored only as a hash. An admin creates one for a
//! user; the device redeems it over QUIC with a certificate signing request (see `transport`).

use patrolsync_i18n::text;
use std::time::Duration;

use patrolsync_proto::hazard::Agency;
use patrolsync_proto::{EnrollmentString, Role};

use crate::config::Config;
use crate::pki::{self, Pki};
use patrolsync_proto::{DeviceId, wire};

use crate::store::{NewDevice, NewEnrollment, RedeemError, Store, StoreError};

// Crockford base32: no I, L, O or U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A fresh code: 100 random bits as 20 characters from an alphabet without look-alikes,
/// grouped in fours for reading aloud.
pub fn new_code() -> String {
    let bytes = pki::random_bytes::<20>();
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[(*b & 31) as usize] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The stored form of a code: SHA-256 of its normalised text (case and dashes ignored).
pub fn hash_code(code: &str) -> [u8; 32] {
    let normal: String = code
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .collect::<String>()
        .to_uppercase();
    patrolsync_proto::digest::sha256(normal.as_bytes())
}

/// What `admin enroll` prints.
#[derive(Debug, serde::Serialize)]
pub struct Issued {
    /// The full enrollment string for the device.
    pub enrollment: String,
    /// The user it enrolls.
    pub user: String,
    /// Their role.
    pub role: String,
    /// Their cells.
    pub grid_cells: Vec<String>,
    /// Server address devices dial.
    pub server: String,
    /// Expiry, RFC 3339.
    pub expires_at: String,
}

/// Who an enrollment code is for.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// User name (created if new).
    pub user: String,
    /// Their role.
    pub role: Role,
    /// Grid cell codes assigned to them.
    pub cells: Vec<String>,
    /// `host:port` devices dial; default from the configuration.
    pub server: Option<String>,
    /// Validity; default from the configuration (24 h).
    pub ttl: Option<Duration>,
    /// For agency users: which agency.
    pub agency: Option<Agency>,
}

/// Creates an enrollment code and returns the string to hand to the device.
pub async fn issue(
    store: &dyn Store,
    pki: &Pki,
    config: &Config,
    req: IssueRequest,
) -> Result<Issued, StoreError> {
    let IssueRequest {
        user,
        role,
        cells,
        server,
        ttl,
        agency,
    } = req;
    match (role, agency) {
        (Role::Agency, None) => {
            return Err(StoreError::Invalid(text!("store-agency-needed")));
        }
        (r, Some(_)) if r != Role::Agency => {
            return Err(StoreError::Invalid(text!("store-agency-only", role = r)));
        }
        _ => {}
    }
    let (user, cells) = (user.as_str(), cells.as_slice());
    if user.trim().is_empty() {
        return Err(StoreError::Invalid(text!("store-user-empty")));
    }
    if role.is_party() && !cells.is_empty() {
        return Err(StoreError::Invalid(text!(
            "store-party-no-cells",
            role = role
        )));
    }
    if cells.is_empty() && role != Role::Admin && !role.is_party() {
        return Err(StoreError::Invalid(text!(
            "store-cells-needed",
            role = role
        )));
    }
    let code = new_code();
    let now = crate::clock::now_ms();
    let ttl = ttl.unwrap_or(config.enrollment_ttl);
    let expires_at_ms = now + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
    store
        .create_enrollment(
            &NewEnrollment {
                code_hash: hash_code(&code),
                user: user.trim().to_owned(),
                role,
                cells: cells.to_vec(),
                expires_at_ms,
                agency: agency.map(|a| a.as_str().to_owned()),
            },
            now,
        )
        .await?;
    let server = server.unwrap_or_else(|| config.public_address());
    let enrollment = EnrollmentString {
        server: server.clone(),
        code,
        ca_sha256: pki.ca_fingerprint(),
    };
    Ok(Issued {
        enrollment: enrollment.to_string(),
        user: user.trim().to_owned(),
        role: role.to_string(),
        grid_cells: cells.to_vec(),
        server,
        expires_at: humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(expires_at_ms.max(0) as u64),
        )
        .to_string(),
    })
}

/// The Enroll RPC: checks the code before signing anything (the peer is unauthenticated), signs
/// the device's CSR, then spends the code and records the device in one transaction.
pub(crate) async fn enroll_rpc(
    store: &dyn Store,
    pki: &Pki,
    req: wire::EnrollRequest,
) -> wire::Response {
    let refused = |m: String| wire::Response::error(wire::ErrorCode::EnrollmentRefused, m, false);
    let code = req.code.trim();
    if code.is_empty() {
        return refused("enrollment code is empty".into());
    }
    // Check the code before signing anything: signing costs CPU and the peer is unauthenticated.
    match store
        .check_enrollment(&hash_code(code), crate::clock::now_ms())
        .await
    {
        Ok(()) => {}
        Err(RedeemError::Store(e)) => {
            return wire::Response::error(
                wire::ErrorCode::Unavailable,
                format!("enrollment failed, retry: {e}"),
                true,
            );
        }
        Err(e) => {
            tracing::info!(reason = %e, "enrollment refused");
            return refused(e.to_string());
        }
    }
    let device_id = DeviceId(uuid::Uuid::now_v7());
    let cert = match pki.sign_device_csr(&req.csr_der, &device_id.to_string()) {
        Ok(c) => c,
        Err(e) => {
            return wire::Response::error(
                wire::ErrorCode::BadRequest,
                format!("enrollment refused: {e}"),
                false,
            );
        }
    };
    let device = NewDevice {
        id: device_id,
        name: req
            .device_name
            .chars()
            .filter(|c| !c.is_control())
            .take(128)
            .collect(),
        cert_sha256: patrolsync_proto::digest::sha256(&cert),
        app_version: req
            .app_version
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect(),
    };
    match store
        .redeem_enrollment(&hash_code(code), &device, crate::clock::now_ms())
        .await
    {
        Ok(s) => {
            tracing::info!(device = %s.id, user = %s.user, "device enrolled");
            wire::Response {
                kind: Some(wire::response::Kind::Enroll(wire::EnrollResponse {
                    device_id: s.id.to_string(),
                    certificate_der: cert.to_vec(),
                    server_ca_der: pki.server_ca_der().to_vec(),
                    user: s.user.clone(),
                    role: s.role.wire(),
                    grid_cells: s.cell_codes(),
                })),
            }
        }
        Err(RedeemError::Store(e)) => wire::Response::error(
            wire::ErrorCode::Unavailable,
            format!("enrollment failed, retry: {e}"),
            true,
        ),
        Err(e) => {
            tracing::info!(reason = %e, "enrollment refused");
            refused(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_hash_ignores_formatting() {
        let a = new_code();
        assert_ne!(a, new_code());
        assert_eq!(a.len(), 24);
        assert_eq!(hash_code(&a), hash_code(&a.replace('-', "").to_lowercase()));
    }
}
