//! SHA-256 digests: what names a photo, hashes an enrollment code, pins the server's CA and
//! identifies a device certificate. Written as 64 lower-case hex digits.

use std::fmt;
use std::str::FromStr;

use sha2::Digest;

/// A SHA-256 digest.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn digest(bytes: &[u8]) -> Sha256 {
        Sha256(sha2::Sha256::digest(bytes).into())
    }

    /// From exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Sha256> {
        bytes.try_into().ok().map(Sha256)
    }

    /// Lower-case hex, as shown and stored.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The SHA-256 of `bytes`, as bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).0
}

impl From<[u8; 32]> for Sha256 {
    fn from(bytes: [u8; 32]) -> Self {
        Sha256(bytes)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({})", self.hex())
    }
}

/// Text that is not 64 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a SHA-256 is 64 hex digits, got {0:?}")]
pub struct BadSha256(pub String);

impl FromStr for Sha256 {
    type Err = BadSha256;
    /// 64 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, BadSha256> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| BadSha256(s.to_owned()))?;
        Ok(Sha256(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_its_text_round_trip() {
        let d = Sha256::digest(b"abc");
        let text = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(d.to_string(), text);
        assert_eq!(text.parse::<Sha256>(), Ok(d));
        assert_eq!(text.to_uppercase().parse::<Sha256>(), Ok(d));
        assert_eq!(Sha256::from_slice(&d.0), Some(d));
        assert_eq!(Sha256::from_slice(&d.0[..31]), None);
    }

    #[test]
    fn text_that_is_not_a_digest_is_refused_by_name() {
        for bad in ["", "ba78", &"g".repeat(64), &"a".repeat(66)] {
            assert_eq!(bad.parse::<Sha256>(), Err(BadSha256(bad.to_owned())));
        }
    }
}
