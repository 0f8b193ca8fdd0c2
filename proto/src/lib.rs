//! The patrolsync protocol: the protobuf wire types, the framing codec, the hybrid logical
//! clock, and the validation that turns wire records into domain records.
//!
//! This crate is pure: it does no I/O, reads no clock and spawns nothing. Time comes in as a
//! parameter, so the server and the SDK apply exactly the same rules and the rules can be tested
//! without a runtime. Only this crate knows the prost types; the server and the SDK convert at
//! their transport edge.

/// Defines a domain enum mirroring a wire enum, with stable text names for storage and CLIs.
macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident, $wire:ident, $field:literal, { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable lower-snake-case name used in storage, JSON and the CLI.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub(crate) fn to_wire(self) -> i32 {
                (match self { $($name::$variant => $crate::wire::$wire::$variant),+ }) as i32
            }

            pub(crate) fn from_wire(raw: i32) -> Result<Option<Self>, $crate::checkin::Invalid> {
                match $crate::wire::$wire::try_from(raw) {
                    $(Ok($crate::wire::$wire::$variant) => Ok(Some($name::$variant)),)+
                    Ok(_) => Ok(None),
                    Err(_) => Err($crate::checkin::Invalid::new($field, "unknown_value",
                        format!("unknown {} value {raw}; this server knows {}", $field,
                            $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")))),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    format!("unknown {} {s:?}; expected one of: {}", $field,
                        $name::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", "))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod anomaly;
pub mod change;
pub mod checkin;
pub mod codes;
pub mod digest;
pub mod enrollment;
pub mod frame;
pub mod geo;
pub mod grid;
pub mod hazard;
pub mod hlc;
pub mod household;
pub mod ids;
pub mod op;
pub mod people;
pub mod scope;
pub mod task;
pub mod template;
pub mod unit;

pub use change::ChangeKind;
pub use checkin::{CheckIn, CheckInKind, CheckInMethod, CheckInOutcome, GeoFix, Invalid};
pub use digest::Sha256;
pub use enrollment::EnrollmentString;
pub use frame::FrameError;
pub use grid::CellPath;
pub use hlc::Hlc;
pub use ids::{CheckInId, DeviceId, EventId, HazardId, OpId, TaskId};
pub use op::{Op, OpBody};
pub use people::Role;

/// The generated protobuf types of protocol v1 (`proto/patrolsync/v1/*.proto`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/patrolsync.v1.rs"));
}

impl wire::Response {
    /// A response that refuses the whole request: its code, a message for a person (not
    /// stable), and whether the same request may succeed later.
    pub fn error(code: wire::ErrorCode, message: impl Into<String>, retryable: bool) -> Self {
        wire::Response {
            kind: Some(wire::response::Kind::Error(wire::Error {
                code: code as i32,
                message: message.into(),
                retryable,
                held_offset: 0,
            })),
        }
    }
}

/// The ALPN identifier of protocol v1. A wire-incompatible change gets a new one.
pub const ALPN_V1: &[u8] = b"patrolsync/1";

/// Re-exported so drivers can encode and decode without naming prost themselves.
pub use prost::Message;
