//! Stable error codes with their parameters, and the messages people read, in `zh-CN` (the
//! default) and `en`.
//!
//! Every error the SDK surfaces — a failed call, [`crate::Status::last_error_code`], a photo that
//! failed, an op the server refused — carries an [`ErrorCode`]. An app branches on the code and
//! shows [`ErrorCode::message`] in the user's language; the sentences live in Fluent catalogs
//! (`i18n/locales/*/errors.ftl`), not in code.
//!
//! ```
//! use patrolsync_i18n::ErrorCode;
//! let e = ErrorCode::OutsideScope { field: "checkpoint".into(), value: "S1-C1-K1".into() };
//! assert_eq!(e.code(), "outside_scope");
//! assert_eq!(e.message("zh-CN"), "该检查点不在您负责的网格内（S1-C1-K1）");
//! assert_eq!(e.message("en"), "Checkpoint S1-C1-K1 is outside your grid cells");
//! ```

use crate::{Lang, Value};

/// What went wrong, as a stable code and its parameters. The code names (`code()`) never change
/// meaning; new codes may be added, so match with a fallback arm.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The device has no network, or the server's address cannot be reached from it.
    Offline,
    /// The server did not answer in time.
    Timeout {
        /// How long the SDK waited, seconds.
        secs: u64,
    },
    /// The server's name could not be resolved.
    Dns {
        /// The host name.
        host: String,
    },
    /// The server's certificate is not the one this device enrolled with (or TLS failed).
    TlsUntrusted {
        /// The server, `host:port`.
        server: String,
    },
    /// The connection broke mid-request; the next sync resumes.
    ConnectionLost,
    /// The background window the platform gave the sync closed before it finished; what the
    /// server acknowledged stays acknowledged, the rest goes next time.
    WindowClosed {
        /// The window, seconds.
        secs: u64,
    },
    /// An admin revoked this device; it must enroll again.
    Revoked,
    /// The server does not recognise this device's credentials.
    NotRecognised,
    /// The device is not enrolled yet.
    NotEnrolled,
    /// The local store already belongs to an enrolled device.
    AlreadyEnrolled {
        /// Its device id.
        device_id: String,
    },
    /// The enrollment string is malformed.
    BadEnrollmentCode,
    /// The server refused the enrollment code (unknown, used or expired).
    EnrollmentRefused,
    /// The server refused or could not serve the request as a whole.
    Server {
        /// The wire error code name (`unavailable`, `limit_exceeded`, …).
        server_code: String,
        /// Whether a later sync can succeed without anyone acting.
        retryable: bool,
    },
    /// The phone's storage is full.
    StorageFull,
    /// The local store failed otherwise.
    Storage,
    /// A file the app named cannot be read.
    FileUnreadable {
        /// The path.
        path: String,
    },
    /// A photo file is empty.
    EmptyPhoto,
    /// A photo is larger than the server accepts.
    PhotoTooLarge {
        /// The server's limit, bytes.
        max: u64,
    },
    /// The server refused a photo's bytes (e.g. they did not match its hash); the app adds it
    /// again to retry.
    PhotoRefused,
    /// Records or photos have not reached the server yet (signing out would lose them).
    UnsentRecords {
        /// How many.
        count: u64,
    },
    /// The phone holds unsent records of another person than the one it is being enrolled for.
    OtherUsersRecords {
        /// Whose.
        user: String,
        /// How many.
        count: u64,
    },
    /// The record names a place outside the user's grid cells.
    OutsideScope {
        /// The field (`checkpoint`, `grid_cell`, `hazard`).
        field: String,
        /// The code or id it named.
        value: String,
    },
    /// The checkpoint does not exist.
    UnknownCheckpoint {
        /// Its code.
        checkpoint: String,
    },
    /// The grid cell does not exist.
    UnknownCell {
        /// Its code.
        cell: String,
    },
    /// The household a visit names is not on the must-visit register.
    UnknownHousehold {
        /// Its code.
        household: String,
    },
    /// The hazard does not exist (or is not visible).
    UnknownHazard {
        /// Its id.
        hazard: String,
    },
    /// The task does not exist (or is not visible).
    UnknownTask {
        /// Its id.
        task: String,
    },
    /// Another user accepted the task first.
    TaskTaken {
        /// Who has it.
        by: String,
    },
    /// The checkpoint is retired and takes no new check-ins.
    RetiredCheckpoint {
        /// Its code.
        checkpoint: String,
    },
    /// The grid cell is retired and takes no new hazards.
    RetiredCell {
        /// Its code.
        cell: String,
    },
    /// The hazard was not transferred to the user's agency.
    NotTransferred {
        /// Its id.
        hazard: String,
    },
    /// A hazard transition that could not apply: the hazard had already moved on (another
    /// device's transition came first).
    WrongState {
        /// The transition (`verify_pass`, `transfer`, …).
        action: String,
        /// The state the hazard was in (`closed`, `transferred`, …).
        status: String,
    },
    /// A transition not for this kind of report: a rectification step on an information
    /// report of the must-report kinds (`information`), or acknowledging a hazard.
    WrongKind {
        /// The transition (`notify`, `acknowledge`, …).
        action: String,
        /// Whether the report is an information report.
        information: bool,
    },
    /// The user's role may not do this.
    Forbidden {
        /// What was attempted (a field or a transition).
        action: String,
    },
    /// A required field is missing.
    Missing {
        /// The field.
        field: String,
    },
    /// A text is longer than allowed.
    TooLong {
        /// The field.
        field: String,
        /// The limit, characters.
        max: u64,
    },
    /// A value is outside its allowed range.
    OutOfRange {
        /// The field.
        field: String,
    },
    /// Any other refusal of a field, with the server's or validator's reason code.
    Invalid {
        /// The field.
        field: String,
        /// The reason code (`unknown_value`, `control_character`, `log_full`, …).
        reason: String,
    },
}

impl ErrorCode {
    /// The stable code name, e.g. `outside_scope`.
    pub fn code(&self) -> &'static str {
        self.parts().0
    }

    /// The parameters, by name, in declaration order.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        self.parts().1
    }

    fn parts(&self) -> (&'static str, Vec<(&'static str, String)>) {
        use ErrorCode as E;
        let s = |v: &String| v.clone();
        match self {
            E::Offline => ("offline", vec![]),
            E::Timeout { secs } => ("timeout", vec![("secs", secs.to_string())]),
            E::Dns { host } => ("dns", vec![("host", s(host))]),
            E::TlsUntrusted { server } => ("tls_untrusted", vec![("server", s(server))]),
            E::ConnectionLost => ("connection_lost", vec![]),
            E::WindowClosed { secs } => ("window_closed", vec![("secs", secs.to_string())]),
            E::Revoked => ("revoked", vec![]),
            E::NotRecognised => ("not_recognised", vec![]),
            E::NotEnrolled => ("not_enrolled", vec![]),
            E::AlreadyEnrolled { device_id } => {
                ("already_enrolled", vec![("device_id", s(device_id))])
            }
            E::BadEnrollmentCode => ("bad_enrollment_code", vec![]),
            E::EnrollmentRefused => ("enrollment_refused", vec![]),
            E::Server {
                server_code,
                retryable,
            } => (
                "server",
                vec![
                    ("server_code", s(server_code)),
                    ("retryable", retryable.to_string()),
                ],
            ),
            E::StorageFull => ("storage_full", vec![]),
            E::Storage => ("storage", vec![]),
            E::FileUnreadable { path } => ("file_unreadable", vec![("path", s(path))]),
            E::EmptyPhoto => ("empty_photo", vec![]),
            E::PhotoTooLarge { max } => ("photo_too_large", vec![("max", max.to_string())]),
            E::PhotoRefused => ("photo_refused", vec![]),
            E::UnsentRecords { count } => ("unsent_records", vec![("count", count.to_string())]),
            E::OtherUsersRecords { user, count } => (
                "other_users_records",
                vec![("user", s(user)), ("count", count.to_string())],
            ),
            E::OutsideScope { field, value } => (
                "outside_scope",
                vec![("field", s(field)), ("value", s(value))],
            ),
            E::UnknownCheckpoint { checkpoint } => {
                ("unknown_checkpoint", vec![("checkpoint", s(checkpoint))])
            }
            E::UnknownCell { cell } => ("unknown_cell", vec![("cell", s(cell))]),
            E::UnknownHousehold { household } => {
                ("unknown_household", vec![("household", s(household))])
            }
            E::UnknownHazard { hazard } => ("unknown_hazard", vec![("hazard", s(hazard))]),
            E::UnknownTask { task } => ("unknown_task", vec![("task", s(task))]),
            E::TaskTaken { by } => ("task_taken", vec![("by", s(by))]),
            E::RetiredCheckpoint { checkpoint } => {
                ("retired_checkpoint", vec![("checkpoint", s(checkpoint))])
            }
            E::RetiredCell { cell } => ("retired_cell", vec![("cell", s(cell))]),
            E::NotTransferred { hazard } => ("not_transferred", vec![("hazard", s(hazard))]),
            E::WrongState { action, status } => (
                "wrong_state",
                vec![("action", s(action)), ("status", s(status))],
            ),
            E::WrongKind {
                action,
                information,
            } => (
                "wrong_kind",
                vec![
                    ("action", s(action)),
                    ("information", information.to_string()),
                ],
            ),
            E::Forbidden { action } => ("forbidden", vec![("action", s(action))]),
            E::Missing { field } => ("missing", vec![("field", s(field))]),
            E::TooLong { field, max } => (
                "too_long",
                vec![("field", s(field)), ("max", max.to_string())],
            ),
            E::OutOfRange { field } => ("out_of_range", vec![("field", s(field))]),
            E::Invalid { field, reason } => {
                ("invalid", vec![("field", s(field)), ("reason", s(reason))])
            }
        }
    }

    /// Rebuilds a code from [`ErrorCode::code`] and the values of [`ErrorCode::params`] (how the
    /// local store keeps it). None for a code this SDK does not know or the wrong values.
    pub fn from_parts(code: &str, values: &[String]) -> Option<ErrorCode> {
        use ErrorCode as E;
        let at = |i: usize| values.get(i).cloned();
        let num = |i: usize| at(i).and_then(|v| v.parse::<u64>().ok());
        Some(match code {
            "offline" => E::Offline,
            "timeout" => E::Timeout { secs: num(0)? },
            "dns" => E::Dns { host: at(0)? },
            "tls_untrusted" => E::TlsUntrusted { server: at(0)? },
            "connection_lost" => E::ConnectionLost,
            "window_closed" => E::WindowClosed { secs: num(0)? },
            "revoked" => E::Revoked,
            "not_recognised" => E::NotRecognised,
            "not_enrolled" => E::NotEnrolled,
            "already_enrolled" => E::AlreadyEnrolled { device_id: at(0)? },
            "bad_enrollment_code" => E::BadEnrollmentCode,
            "enrollment_refused" => E::EnrollmentRefused,
            "server" => E::Server {
                server_code: at(0)?,
                retryable: at(1)?.parse().ok()?,
            },
            "storage_full" => E::StorageFull,
            "storage" => E::Storage,
            "file_unreadable" => E::FileUnreadable { path: at(0)? },
            "empty_photo" => E::EmptyPhoto,
            "photo_too_large" => E::PhotoTooLarge { max: num(0)? },
            "photo_refused" => E::PhotoRefused,
            "unsent_records" => E::UnsentRecords { count: num(0)? },
            "other_users_records" => E::OtherUsersRecords {
                user: at(0)?,
                count: num(1)?,
            },
            "outside_scope" => E::OutsideScope {
                field: at(0)?,
                value: at(1)?,
            },
            "unknown_checkpoint" => E::UnknownCheckpoint { checkpoint: at(0)? },
            "unknown_cell" => E::UnknownCell { cell: at(0)? },
            "unknown_household" => E::UnknownHousehold { household: at(0)? },
            "unknown_hazard" => E::UnknownHazard { hazard: at(0)? },
            "unknown_task" => E::UnknownTask { task: at(0)? },
            "task_taken" => E::TaskTaken { by: at(0)? },
            "retired_checkpoint" => E::RetiredCheckpoint { checkpoint: at(0)? },
            "retired_cell" => E::RetiredCell { cell: at(0)? },
            "not_transferred" => E::NotTransferred { hazard: at(0)? },
            "wrong_state" => E::WrongState {
                action: at(0)?,
                status: at(1)?,
            },
            "wrong_kind" => E::WrongKind {
                action: at(0)?,
                information: at(1)?.parse().ok()?,
            },
            "forbidden" => E::Forbidden { action: at(0)? },
            "missing" => E::Missing { field: at(0)? },
            "too_long" => E::TooLong {
                field: at(0)?,
                max: num(1)?,
            },
            "out_of_range" => E::OutOfRange { field: at(0)? },
            "invalid" => E::Invalid {
                field: at(0)?,
                reason: at(1)?,
            },
            _ => return None,
        })
    }

    /// The code and up to two parameter values, as the local store keeps them.
    pub fn to_columns(code: Option<&ErrorCode>) -> [Option<String>; 3] {
        let Some(code) = code else {
            return [None, None, None];
        };
        let mut values = code.params().into_iter().map(|(_, v)| v);
        [Some(code.code().to_owned()), values.next(), values.next()]
    }

    /// Reads back what [`ErrorCode::to_columns`] stored.
    pub fn from_columns(
        code: Option<String>,
        p1: Option<String>,
        p2: Option<String>,
    ) -> Option<ErrorCode> {
        let values: Vec<String> = [p1, p2].into_iter().flatten().collect();
        ErrorCode::from_parts(&code?, &values)
    }

    /// What a refusal of `field` for `reason` means, where `value` is what the field held
    /// (a checkpoint or cell code, a hazard id) and `limit` the rule's bound, if it has one.
    pub fn from_refusal(reason: &str, field: &str, value: &str, limit: Option<u64>) -> ErrorCode {
        use ErrorCode as E;
        let field_s = field.to_owned();
        let value_s = value.to_owned();
        match (reason, limit) {
            ("outside_scope", _) => E::OutsideScope {
                field: field_s,
                value: value_s,
            },
            ("unknown_checkpoint", _) => E::UnknownCheckpoint {
                checkpoint: value_s,
            },
            ("unknown_cell", _) => E::UnknownCell { cell: value_s },
            ("unknown_household", _) => E::UnknownHousehold { household: value_s },
            ("unknown_hazard" | "not_found", _)
                if field.starts_with("hazard") || field == "merge_into" =>
            {
                E::UnknownHazard { hazard: value_s }
            }
            ("unknown_task", _) => E::UnknownTask { task: value_s },
            ("retired_checkpoint", _) => E::RetiredCheckpoint {
                checkpoint: value_s,
            },
            ("retired_cell", _) => E::RetiredCell { cell: value_s },
            ("not_transferred", _) => E::NotTransferred { hazard: value_s },
            ("forbidden" | "role" | "not_you", _) => E::Forbidden { action: field_s },
            ("missing", _) => E::Missing { field: field_s },
            ("too_long", Some(max)) => E::TooLong {
                field: field_s,
                max,
            },
            ("out_of_range", _) => E::OutOfRange { field: field_s },
            _ => E::Invalid {
                field: field_s,
                reason: reason.to_owned(),
            },
        }
    }

    /// The message a person reads, in `lang` (`zh-CN` or `en`; any other language, and any
    /// `zh*` tag, falls back as a phone would: `en*` to English, the rest to Chinese).
    pub fn message(&self, lang: &str) -> String {
        let (code, params) = self.parts();
        let args: Vec<(&str, Value<'_>)> = params
            .into_iter()
            .map(|(name, value)| (name, Value::from(value)))
            .collect();
        Lang::from_tag(lang).format(code, &args)
    }

    /// Whether this failure can clear by itself (a later sync may succeed without anyone acting).
    pub fn is_retryable(&self) -> bool {
        use ErrorCode as E;
        match self {
            E::Offline
            | E::Timeout { .. }
            | E::Dns { .. }
            | E::ConnectionLost
            | E::WindowClosed { .. } => true,
            E::Server { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    /// The English message (logs and the command line).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message("en"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::variables;
    use crate::{CATALOGS, LANGUAGES};
    use fluent_syntax::ast;

    /// The error catalogs, per language.
    fn errors_ftl() -> [&'static str; 2] {
        [CATALOGS[0][0].1, CATALOGS[1][0].1]
    }

    /// One of each code, with parameters that show in the messages.
    fn every_code() -> Vec<ErrorCode> {
        use ErrorCode as E;
        let s = |v: &str| v.to_owned();
        vec![
            E::Offline,
            E::Timeout { secs: 15 },
            E::Dns {
                host: s("sync.example.org"),
            },
            E::TlsUntrusted {
                server: s("sync.example.org:4433"),
            },
            E::ConnectionLost,
            E::WindowClosed { secs: 20 },
            E::Revoked,
            E::NotRecognised,
            E::NotEnrolled,
            E::AlreadyEnrolled {
                device_id: s("d-1"),
            },
            E::BadEnrollmentCode,
            E::EnrollmentRefused,
            E::Server {
                server_code: s("unavailable"),
                retryable: true,
            },
            E::StorageFull,
            E::Storage,
            E::FileUnreadable {
                path: s("/tmp/x.jpg"),
            },
            E::EmptyPhoto,
            E::PhotoTooLarge { max: 1024 },
            E::PhotoRefused,
            E::UnsentRecords { count: 3 },
            E::OtherUsersRecords {
                user: s("alice"),
                count: 3,
            },
            E::OutsideScope {
                field: s("checkpoint"),
                value: s("S1-K9"),
            },
            E::UnknownCheckpoint {
                checkpoint: s("S1-K9"),
            },
            E::UnknownCell { cell: s("S9") },
            E::UnknownHousehold {
                household: s("H-9"),
            },
            E::UnknownHazard { hazard: s("h-1") },
            E::UnknownTask { task: s("t-1") },
            E::TaskTaken { by: s("li") },
            E::RetiredCheckpoint {
                checkpoint: s("S1-K1"),
            },
            E::RetiredCell { cell: s("S1") },
            E::NotTransferred { hazard: s("h-1") },
            E::WrongState {
                action: s("verify_pass"),
                status: s("closed"),
            },
            E::WrongKind {
                action: s("notify"),
                information: true,
            },
            E::Forbidden {
                action: s("verify"),
            },
            E::Missing {
                field: s("checkpoint"),
            },
            E::TooLong {
                field: s("note"),
                max: 2000,
            },
            E::OutOfRange {
                field: s("fix.latitude"),
            },
            E::Invalid {
                field: s("kind"),
                reason: s("unknown_value"),
            },
        ]
    }

    #[test]
    fn every_code_has_a_message_in_both_languages_using_only_its_parameters() {
        for code in every_code() {
            let mut names: Vec<String> =
                code.params().iter().map(|(n, _)| (*n).to_owned()).collect();
            names.sort();
            for (i, source) in errors_ftl().into_iter().enumerate() {
                let lang = LANGUAGES[i];
                let vars = variables(source, code.code())
                    .unwrap_or_else(|| panic!("{lang} has no message for {}", code.code()));
                for v in &vars {
                    assert!(
                        names.contains(v),
                        "{lang} {} uses ${v}, which it does not have",
                        code.code()
                    );
                }
                let text = code.message(lang);
                assert!(!text.contains('{'), "{lang} {}: {text}", code.code());
                assert_ne!(
                    text,
                    code.code(),
                    "{lang} {} rendered as its code",
                    code.code()
                );
            }
            // That both languages use the same placeholders is the crate's catalog check.
        }
    }

    #[test]
    fn the_test_list_holds_every_code() {
        // The variants as declared (one per line at the enum's indentation), so a code added
        // later without a place in `every_code` — and so in the catalog checks — fails here.
        let source = include_str!("error_code.rs");
        let start = source.find("pub enum ErrorCode {").expect("the enum");
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").expect("its end")];
        let declared: Vec<&str> = body
            .lines()
            .filter_map(|line| {
                let name = line.strip_prefix("    ")?;
                let name = name.trim_end_matches(" {").trim_end_matches(',');
                (name.starts_with(|c: char| c.is_ascii_uppercase())
                    && name.chars().all(|c| c.is_ascii_alphanumeric()))
                .then_some(name)
            })
            .collect();
        let listed: Vec<String> = every_code()
            .iter()
            .map(|c| {
                let debug = format!("{c:?}");
                debug.split(' ').next().unwrap_or_default().to_owned()
            })
            .collect();
        assert_eq!(declared, listed);
    }

    #[test]
    fn the_catalogs_hold_no_message_the_codes_do_not_use() {
        let known: Vec<&str> = every_code().iter().map(ErrorCode::code).collect();
        for (i, source) in errors_ftl().into_iter().enumerate() {
            let resource = fluent_syntax::parser::parse(source).unwrap_or_else(|(r, _)| r);
            for entry in resource.body {
                if let ast::Entry::Message(m) = entry {
                    assert!(
                        known.contains(&m.id.name),
                        "{} has {} that no code uses",
                        LANGUAGES[i],
                        m.id.name
                    );
                }
            }
        }
    }

    #[test]
    fn a_code_round_trips_through_its_stored_parts() {
        for code in every_code() {
            let values: Vec<String> = code.params().into_iter().map(|(_, v)| v).collect();
            assert_eq!(
                ErrorCode::from_parts(code.code(), &values),
                Some(code.clone())
            );
        }
        for code in every_code() {
            let [c, p1, p2] = ErrorCode::to_columns(Some(&code));
            assert_eq!(ErrorCode::from_columns(c, p1, p2), Some(code.clone()));
        }
        assert_eq!(ErrorCode::from_parts("no_such_code", &[]), None);
        assert_eq!(ErrorCode::from_parts("timeout", &["soon".into()]), None);
    }

    #[test]
    fn messages_follow_the_language_and_default_to_chinese() {
        let e = ErrorCode::TooLong {
            field: "note".into(),
            max: 2000,
        };
        assert_eq!(e.message("zh-CN"), "内容过长：note 最多 2000 个字");
        assert_eq!(e.message("en"), "note is too long: at most 2000 characters");
        assert_eq!(e.message("en-GB"), e.message("en"));
        assert_eq!(e.message("zh-Hans-CN"), e.message("zh-CN"));
        assert_eq!(e.message(""), e.message("zh-CN"));
        assert_eq!(
            ErrorCode::Offline.message("zh-CN"),
            "网络不可用，记录已保存在本机，联网后自动上传"
        );
    }

    #[test]
    fn refusals_map_to_typed_codes_with_what_they_named() {
        assert_eq!(
            ErrorCode::from_refusal("outside_scope", "checkpoint", "S2-K1", None),
            ErrorCode::OutsideScope {
                field: "checkpoint".into(),
                value: "S2-K1".into()
            }
        );
        assert_eq!(
            ErrorCode::from_refusal("too_long", "note", "", Some(2000)),
            ErrorCode::TooLong {
                field: "note".into(),
                max: 2000
            }
        );
        // A reason this SDK does not know keeps its name.
        assert_eq!(
            ErrorCode::from_refusal("log_full", "hazard_id", "h", None),
            ErrorCode::Invalid {
                field: "hazard_id".into(),
                reason: "log_full".into()
            }
        );
    }
}
