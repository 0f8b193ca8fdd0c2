//! What can go wrong, by operation: opening the state, recording, enrolling, syncing.

use std::path::PathBuf;

use patrolsync_proto::{Invalid, wire};

use patrolsync_proto::codes;

use crate::transport::CallError;

/// Opening the local store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The local database could not be opened or migrated.
    #[error("cannot open the local database: {0}")]
    Database(String),
}

/// Recording a check-in failed; nothing was queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record breaks a protocol rule; fix the input.
    #[error("refused: {0}")]
    Invalid(Invalid),
    /// The user's role may not do this.
    #[error("refused: {0}")]
    Forbidden(String),
    /// The device is not enrolled yet.
    #[error("this device is not enrolled; run enroll with the code from your admin first")]
    NotEnrolled,
    /// The local database failed.
    #[error("cannot write to the local database: {0}")]
    Storage(String),
}

impl From<Invalid> for RecordError {
    fn from(i: Invalid) -> Self {
        RecordError::Invalid(i)
    }
}

/// Enrollment failed; nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnrollError {
    /// This state directory already belongs to an enrolled device.
    #[error("already enrolled as device {0}; use a new state directory to enroll again")]
    AlreadyEnrolled(String),
    /// The enrollment string is malformed.
    #[error(transparent)]
    BadCode(#[from] patrolsync_proto::enrollment::BadEnrollmentString),
    /// The server could not be reached; retry.
    #[error("cannot reach {server}: {reason}")]
    Unreachable {
        /// Where we dialled.
        server: String,
        /// What failed.
        reason: String,
    },
    /// The server refused the code (used, expired, unknown).
    #[error("enrollment refused by the server: {0}")]
    Refused(String),
    /// Key generation or local storage failed.
    #[error("enrollment failed locally: {0}")]
    Local(String),
}

/// A sync could not finish. Everything acknowledged before the failure stays acknowledged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// Not enrolled yet.
    #[error("this device is not enrolled; run enroll with the code from your admin first")]
    NotEnrolled,
    /// The network failed; the outbox is intact and the next sync resumes.
    #[error("cannot sync with {server}: {reason}")]
    Network {
        /// Where we dialled.
        server: String,
        /// What failed.
        reason: String,
    },
    /// The device was revoked by an admin: it must be re-enrolled, retrying will not help.
    #[error("this device was revoked by an admin; re-enroll it with a new code")]
    Revoked,
    /// The server does not recognise this device's credential.
    #[error("the server does not recognise this device ({0}); re-enroll it with a new code")]
    NotRecognised(String),
    /// The server refused the request as a whole.
    #[error("server refused the sync: {message}")]
    Server {
        /// Wire error code name.
        code: String,
        /// The server's explanation.
        message: String,
        /// Whether a later sync can succeed.
        retryable: bool,
    },
    /// The local database failed.
    #[error("local database error: {0}")]
    Local(String),
}

impl SyncError {
    /// What a failed call means for the sync.
    pub(crate) fn from_call(server: &str, e: CallError) -> SyncError {
        match e.close_code() {
            Some(codes::CLOSE_REVOKED) => SyncError::Revoked,
            Some(codes::CLOSE_UNAUTHENTICATED) => SyncError::NotRecognised(e.to_string()),
            _ if e.is_tls_refusal() => SyncError::NotRecognised(e.to_string()),
            _ => {
                debug_assert!(e.is_transient());
                SyncError::Network {
                    server: server.to_owned(),
                    reason: e.to_string(),
                }
            }
        }
    }

    /// Whether syncing again later can succeed without anyone acting.
    pub fn is_retryable(&self) -> bool {
        match self {
            SyncError::Network { .. } => true,
            SyncError::Server { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

pub(crate) fn unexpected(kind: Option<wire::response::Kind>) -> SyncError {
    match kind {
        Some(wire::response::Kind::Error(e)) => SyncError::Server {
            code: code_name(e.code),
            message: e.message,
            retryable: e.retryable,
        },
        _ => SyncError::Server {
            code: "UNEXPECTED".into(),
            message: "the server answered with the wrong message".into(),
            retryable: false,
        },
    }
}

/// A local database failure, as a sync error.
pub(crate) fn local(e: impl std::fmt::Display) -> SyncError {
    SyncError::Local(e.to_string())
}

/// `forbidden` for `ERROR_CODE_FORBIDDEN`, and so on.
pub(crate) fn code_name(code: i32) -> String {
    wire::ErrorCode::try_from(code)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("ERROR_CODE_")
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|_| format!("code_{code}"))
}
