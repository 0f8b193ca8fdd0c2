//! The one-time enrollment string an admin hands to a device:
//! `patrolsync://HOST:PORT/enroll?code=CODE&ca=SHA256HEX`. It carries where to connect, the
//! single-use code, and the fingerprint of the server CA the device must pin.

use std::fmt;
use std::str::FromStr;

use crate::digest::Sha256;

const SCHEME: &str = "patrolsync://";

/// A parsed enrollment string.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentString {
    /// `host:port` (IPv6 in brackets) of the server.
    pub server: String,
    /// The single-use code.
    pub code: String,
    /// SHA-256 of the server CA certificate (DER), lower-case hex.
    pub ca_sha256: Sha256,
}

impl fmt::Debug for EnrollmentString {
    // The code is a secret until used: keep it out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentString")
            .field("server", &self.server)
            .field("code", &"<redacted>")
            .field("ca_sha256", &self.ca_sha256)
            .finish()
    }
}

impl fmt::Display for EnrollmentString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{SCHEME}{}/enroll?code={}&ca={}",
            self.server, self.code, self.ca_sha256
        )
    }
}

/// Why an enrollment string could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a patrolsync enrollment string ({0}); it looks like patrolsync://HOST:PORT/enroll?code=…&ca=…"
)]
pub struct BadEnrollmentString(&'static str);

impl FromStr for EnrollmentString {
    type Err = BadEnrollmentString;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .trim()
            .strip_prefix(SCHEME)
            .ok_or(BadEnrollmentString("missing patrolsync:// prefix"))?;
        let (server, query) = rest
            .split_once("/enroll?")
            .ok_or(BadEnrollmentString("missing /enroll?"))?;
        if server.is_empty() || !server.contains(':') {
            return Err(BadEnrollmentString("server must be HOST:PORT"));
        }
        let (mut code, mut ca) = (None, None);
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("code", v)) if !v.is_empty() => code = Some(v.to_owned()),
                Some(("ca", v)) => ca = Some(v.to_ascii_lowercase()),
                _ => {}
            }
        }
        let code = code.ok_or(BadEnrollmentString("missing code"))?;
        let ca_sha256: Sha256 = ca
            .ok_or(BadEnrollmentString("missing ca fingerprint"))?
            .parse()
            .map_err(|_| BadEnrollmentString("ca fingerprint must be 64 hex digits"))?;
        Ok(EnrollmentString {
            server: server.to_owned(),
            code,
            ca_sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_hides_the_code_in_debug() {
        let e = EnrollmentString {
            server: "[::1]:4433".into(),
            code: "ABCD-EFGH".into(),
            ca_sha256: Sha256([0xab; 32]),
        };
        let parsed: EnrollmentString = e.to_string().parse().expect("parses");
        assert_eq!(parsed, e);
        assert!(!format!("{e:?}").contains("ABCD"));
        assert!(
            "https://x/enroll?code=a&ca=b"
                .parse::<EnrollmentString>()
                .is_err()
        );
    }
}
