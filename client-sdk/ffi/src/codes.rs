//! [`ErrorCode`] across the boundary, and [`PatrolError`], the one error every call raises.

use patrolsync_sdk as sdk;

/// Declares the bindings' `ErrorCode` with the same variants and parameters as the SDK's
/// `patrolsync_sdk::ErrorCode`, and the conversions both ways, from one list.
macro_rules! mirror_codes {
    ($($variant:ident $({ $($field:ident : $ty:ty),* })?),* $(,)?) => {
        /// What went wrong, as a stable code and its parameters: the same codes as the Rust
        /// SDK's `ErrorCode` (see its documentation for each). Branch on the variant and show
        /// [`PatrolError`]'s message, or render one with [`crate::error_message`].
        #[allow(missing_docs)]
        #[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
        pub enum ErrorCode {
            $($variant $({ $($field: $ty),* })?,)*
            /// A code this version of the bindings does not know (a newer SDK core).
            Unknown { code: String },
        }

        impl From<sdk::ErrorCode> for ErrorCode {
            fn from(code: sdk::ErrorCode) -> Self {
                match code {
                    $(sdk::ErrorCode::$variant $({ $($field),* })? => ErrorCode::$variant $({ $($field),* })?,)*
                    other => ErrorCode::Unknown { code: other.code().to_owned() },
                }
            }
        }

        impl From<ErrorCode> for sdk::ErrorCode {
            fn from(code: ErrorCode) -> Self {
                match code {
                    $(ErrorCode::$variant $({ $($field),* })? => sdk::ErrorCode::$variant $({ $($field),* })?,)*
                    ErrorCode::Unknown { code } => sdk::ErrorCode::Invalid {
                        field: String::new(),
                        reason: code,
                    },
                }
            }
        }
    };
}

mirror_codes! {
    Offline,
    Timeout { secs: u64 },
    Dns { host: String },
    TlsUntrusted { server: String },
    ConnectionLost,
    WindowClosed { secs: u64 },
    Revoked,
    NotRecognised,
    NotEnrolled,
    AlreadyEnrolled { device_id: String },
    BadEnrollmentCode,
    EnrollmentRefused,
    Server { server_code: String, retryable: bool },
    StorageFull,
    Storage,
    FileUnreadable { path: String },
    EmptyPhoto,
    PhotoTooLarge { max: u64 },
    PhotoRefused,
    UnsentRecords { count: u64 },
    OtherUsersRecords { user: String, count: u64 },
    OutsideScope { field: String, value: String },
    UnknownCheckpoint { checkpoint: String },
    UnknownCell { cell: String },
    UnknownHousehold { household: String },
    UnknownHazard { hazard: String },
    UnknownTask { task: String },
    TaskTaken { by: String },
    RetiredCheckpoint { checkpoint: String },
    RetiredCell { cell: String },
    NotTransferred { hazard: String },
    WrongState { action: String, status: String },
    WrongKind { action: String, information: bool },
    Forbidden { action: String },
    Missing { field: String },
    TooLong { field: String, max: u64 },
    OutOfRange { field: String },
    Invalid { field: String, reason: String },
}

/// Why a call failed: the code to branch on, with its parameters, and the message to show, in
/// the client's language.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum PatrolError {
    /// The call failed.
    #[error("{text}")]
    Failed {
        /// What went wrong.
        code: ErrorCode,
        /// The message a person reads, in the client's language. (Named `text`, not
        /// `message`: Kotlin's exceptions have a `message` of their own.)
        text: String,
        /// Whether trying again later can succeed without anyone acting.
        retryable: bool,
    },
}

impl PatrolError {
    pub(crate) fn new(code: sdk::ErrorCode, language: &str) -> PatrolError {
        PatrolError::Failed {
            text: code.message(language),
            retryable: code.is_retryable(),
            code: code.into(),
        }
    }

    /// The library failed in a way no code describes (a task panicked).
    pub(crate) fn internal(what: &str) -> PatrolError {
        PatrolError::Failed {
            code: ErrorCode::Unknown {
                code: "internal".into(),
            },
            text: what.to_owned(),
            retryable: false,
        }
    }

    /// The same error with its message in `language` (an internal failure keeps its text).
    pub(crate) fn in_language(self, language: &str) -> PatrolError {
        match self {
            PatrolError::Failed {
                code: ErrorCode::Unknown { code },
                text,
                retryable,
            } => PatrolError::Failed {
                code: ErrorCode::Unknown { code },
                text,
                retryable,
            },
            PatrolError::Failed { code, .. } => PatrolError::new(code.into(), language),
        }
    }
}

/// An SDK failure with a stable code: each operation's error, or a code itself.
pub(crate) trait Coded {
    fn error_code(self) -> sdk::ErrorCode;
}

impl Coded for sdk::ErrorCode {
    fn error_code(self) -> sdk::ErrorCode {
        self
    }
}

macro_rules! coded {
    ($($error:ty),*) => {
        $(impl Coded for $error {
            fn error_code(self) -> sdk::ErrorCode {
                self.code()
            }
        })*
    };
}

coded!(
    sdk::OpenError,
    sdk::EnrollError,
    sdk::RecordError,
    sdk::ReadError,
    sdk::SyncError,
    sdk::SignOutError
);

/// The bindings' error for an SDK failure, its message in `language` (for `map_err`).
pub(crate) fn failed<E: Coded>(language: &str) -> impl Fn(E) -> PatrolError + '_ {
    move |e| PatrolError::new(e.error_code(), language)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_cross_both_ways_with_their_parameters() {
        let sdk_code = sdk::ErrorCode::TooLong {
            field: "note".into(),
            max: 2000,
        };
        let ffi = ErrorCode::from(sdk_code.clone());
        assert_eq!(
            ffi,
            ErrorCode::TooLong {
                field: "note".into(),
                max: 2000
            }
        );
        assert_eq!(sdk::ErrorCode::from(ffi), sdk_code);
    }

    #[test]
    fn an_error_carries_its_code_and_the_message_in_the_clients_language() {
        let code = sdk::ErrorCode::OutsideScope {
            field: "checkpoint".into(),
            value: "S2-K1".into(),
        };
        let PatrolError::Failed { code: c, text, .. } = PatrolError::new(code.clone(), "zh-CN");
        assert_eq!(c, code.clone().into());
        assert_eq!(text, "该检查点不在您负责的网格内（S2-K1）");
        let PatrolError::Failed { text, .. } = PatrolError::new(code, "en");
        assert_eq!(text, "Checkpoint S2-K1 is outside your grid cells");
    }
}
