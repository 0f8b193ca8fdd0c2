//! What can go wrong, by operation: opening the state, recording, enrolling, syncing.

use std::path::PathBuf;

use patrolsync_proto::{Invalid, wire};

use patrolsync_proto::codes;

use crate::ErrorCode;
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

impl OpenError {
    /// The stable code (for the app to branch on and show in the user's language).
    pub fn code(&self) -> ErrorCode {
        match self {
            OpenError::Dir { source, .. } if is_disk_full(source) => ErrorCode::StorageFull,
            OpenError::Database(m) if mentions_full(m) => ErrorCode::StorageFull,
            _ => ErrorCode::Storage,
        }
    }
}

/// Recording a check-in failed; nothing was queued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record breaks a protocol rule; fix the input.
    #[error("refused: {0}")]
    Invalid(Invalid),
    /// The user's role may not do this.
    #[error("refused: your role may not {action}: {reason}")]
    Forbidden {
        /// What was attempted (a transition's name).
        action: String,
        /// Why not.
        reason: String,
    },
    /// The device is not enrolled yet.
    #[error("this device is not enrolled; run enroll with the code from your admin first")]
    NotEnrolled,
    /// The local database failed.
    #[error("cannot write to the local database: {0}")]
    Storage(String),
    /// A file the app named (a photo) cannot be read.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// A photo file is empty.
    #[error("{path} is empty")]
    EmptyPhoto {
        /// The path.
        path: String,
    },
}

impl RecordError {
    /// The stable code (for the app to branch on and show in the user's language).
    pub fn code(&self) -> ErrorCode {
        match self {
            RecordError::Invalid(i) => ErrorCode::from_refusal(i.reason, &i.field, "", i.limit),
            RecordError::Forbidden { action, .. } => ErrorCode::Forbidden {
                action: action.clone(),
            },
            RecordError::NotEnrolled => ErrorCode::NotEnrolled,
            RecordError::Storage(m) if mentions_full(m) => ErrorCode::StorageFull,
            RecordError::Storage(_) => ErrorCode::Storage,
            RecordError::Unreadable { path, .. } => {
                ErrorCode::FileUnreadable { path: path.clone() }
            }
            RecordError::EmptyPhoto { .. } => ErrorCode::EmptyPhoto,
        }
    }
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
        /// Offline, timeout, DNS or TLS.
        code: ErrorCode,
    },
    /// The server refused the code (used, expired, unknown).
    #[error("enrollment refused by the server: {0}")]
    Refused(String),
    /// Key generation or local storage failed.
    #[error("enrollment failed locally: {0}")]
    Local(String),
    /// The revoked device being enrolled again holds unsent records of another person, which
    /// must not go out under this one's name: enroll it for that person, or sign out
    /// discarding them first. (The code was used; the admin issues a new one.)
    #[error(
        "this phone holds {count} unsent records of {user}; enroll it for {user}, or sign out discarding them first"
    )]
    OtherUsersRecords {
        /// Whose records.
        user: String,
        /// How many.
        count: u64,
    },
}

impl EnrollError {
    /// The stable code (for the app to branch on and show in the user's language).
    pub fn code(&self) -> ErrorCode {
        match self {
            EnrollError::AlreadyEnrolled(id) => ErrorCode::AlreadyEnrolled {
                device_id: id.clone(),
            },
            EnrollError::BadCode(_) => ErrorCode::BadEnrollmentCode,
            EnrollError::Unreachable { code, .. } => code.clone(),
            EnrollError::Refused(_) => ErrorCode::EnrollmentRefused,
            EnrollError::Local(m) if mentions_full(m) => ErrorCode::StorageFull,
            EnrollError::Local(_) => ErrorCode::Storage,
            EnrollError::OtherUsersRecords { user, count } => ErrorCode::OtherUsersRecords {
                user: user.clone(),
                count: *count,
            },
        }
    }
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
        /// Offline, timeout, DNS, TLS or a lost connection.
        code: ErrorCode,
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
    /// [`crate::Client::sync_for`]'s window closed before the sync finished; what the server
    /// acknowledged by then stays acknowledged.
    #[error("the sync window of {secs} s closed before the sync finished")]
    WindowClosed {
        /// The window, seconds.
        secs: u64,
    },
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
                    code: e.code(server),
                }
            }
        }
    }

    /// The stable code (for the app to branch on and show in the user's language).
    pub fn code(&self) -> ErrorCode {
        match self {
            SyncError::NotEnrolled => ErrorCode::NotEnrolled,
            SyncError::Network { code, .. } => code.clone(),
            SyncError::Revoked => ErrorCode::Revoked,
            SyncError::NotRecognised(_) => ErrorCode::NotRecognised,
            SyncError::Server {
                code, retryable, ..
            } => ErrorCode::Server {
                server_code: code.clone(),
                retryable: *retryable,
            },
            SyncError::Local(m) if mentions_full(m) => ErrorCode::StorageFull,
            SyncError::Local(_) => ErrorCode::Storage,
            SyncError::WindowClosed { secs } => ErrorCode::WindowClosed { secs: *secs },
        }
    }

    /// Whether syncing again later can succeed without anyone acting.
    pub fn is_retryable(&self) -> bool {
        match self {
            // A certificate the device does not trust will not change by itself.
            SyncError::Network { code, .. } => code.is_retryable(),
            SyncError::WindowClosed { .. } => true,
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

/// Reading the local store failed (a status, a list, a hazard). Reads never touch the network.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The local database could not be read, or held something this SDK cannot decode.
    #[error("cannot read the local database: {0}")]
    Storage(String),
}

impl ReadError {
    /// The stable code (for the app to branch on and show in the user's language).
    pub fn code(&self) -> ErrorCode {
        match self {
            ReadError::Storage(m) if mentions_full(m) => ErrorCode::StorageFull,
            ReadError::Storage(_) => ErrorCode::Storage,
        }
    }
}

/// A read failing inside a sync or a record is that operation's local failure.
impl From<ReadError> for SyncError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Storage(m) => SyncError::Local(m),
        }
    }
}

impl From<ReadError> for RecordError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Storage(m) => RecordError::Storage(m),
        }
    }
}

/// A local database failure, as a read error.
pub(crate) fn read_failed(e: impl std::fmt::Display) -> ReadError {
    ReadError::Storage(e.to_string())
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

/// SQLite's "database or disk is full" (SQLITE_FULL), as the drivers word it.
fn mentions_full(message: &str) -> bool {
    message.contains("disk is full") || message.contains("No space left on device")
}

/// ENOSPC.
fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
}
