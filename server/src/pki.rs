//! The server's keys and certificates, kept in the data dir: a CA that signs the server's
//! certificate (devices pin its fingerprint), a device CA that signs each enrolled device's
//! client certificate, and the admin token. Created on first start; key files are mode 0600.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};

/// File names inside the data dir.
pub const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const DEVICE_CA_CERT: &str = "device-ca.crt";
const DEVICE_CA_KEY: &str = "device-ca.key";
const SERVER_CERT: &str = "server.crt";
const SERVER_KEY: &str = "server.key";
/// The admin API bearer token.
pub const ADMIN_TOKEN: &str = "admin.token";
/// This node's QUIC stateless-reset key: kept across restarts so a restarted server resets
/// the connections of the process before it at once instead of leaving devices to time out.
const RESET_KEY: &str = "quic-reset.key";
/// This node's connection-id key: with the reset key, lets a restarted node recognise the
/// connection ids it issued before and reset those connections. Per node, never shared (a shared
/// one would make every node a stateless-reset oracle for the others, RFC 9000 §21.11).
const CID_KEY: &str = "quic-cid.key";
/// The address-validation (Retry and NEW_TOKEN) key; shared by a cluster's nodes.
const TOKEN_KEY: &str = "quic-token.key";

/// The `cluster_secrets` row holding [`SHARED`], as one JSON object of hex strings.
const CLUSTER_KEYS: &str = "key-material-v1";

/// What every node of a cluster must hold the same: the CAs, the token key and the admin token.
/// With PostgreSQL these are kept in the database (the first node to start writes them) and
/// mirrored into each node's data dir.
const SHARED: [&str; 6] = [
    CA_CERT,
    CA_KEY,
    DEVICE_CA_CERT,
    DEVICE_CA_KEY,
    TOKEN_KEY,
    ADMIN_TOKEN,
];

/// Errors creating or loading keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// File system trouble.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A key or certificate could not be parsed or generated.
    #[error("{what}: {source}")]
    Cert {
        /// What was being done.
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The cluster's shared key material could not be read or stored.
    #[error("the cluster's key material: {0}")]
    Cluster(String),
}

struct Ca {
    der: CertificateDer<'static>,
    /// A certificate object with the CA's name and key, for signing.
    signer: rcgen::Certificate,
    key: KeyPair,
}

/// The loaded key material.
pub struct Pki {
    server_ca: Ca,
    device_ca: Ca,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivatePkcs8KeyDer<'static>,
    admin_token: String,
    reset_key: Vec<u8>,
    cid_key: u64,
    token_key: Vec<u8>,
    dir: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .field("ca_fingerprint", &self.ca_fingerprint())
            .finish_non_exhaustive()
    }
}

fn cert_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> PkiError {
    let what = what.into();
    move |source| PkiError::Cert { what, source }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes a file readable only by its owner, atomically (temp file + rename).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
        f.write_all(contents).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn write_public(path: &Path, contents: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "patrolsync");
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn load_or_create_ca(
    dir: &Path,
    cert_file: &str,
    key_file: &str,
    name: &str,
) -> Result<Ca, PkiError> {
    let cert_path = dir.join(cert_file);
    let key_path = dir.join(key_file);
    if cert_path.exists() && key_path.exists() {
        let cert_pem = std::fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?;
        let key_pem = std::fs::read_to_string(&key_path).map_err(io_err(&key_path))?;
        let key =
            KeyPair::from_pem(&key_pem).map_err(cert_err(format!("{}", key_path.display())))?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem)
            .map_err(cert_err(format!("{}", cert_path.display())))?;
        let der = pem_to_der(&cert_pem).ok_or_else(|| PkiError::Io {
            path: cert_path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not a PEM certificate"),
        })?;
        let signer = params.self_signed(&key).map_err(cert_err(name))?;
        return Ok(Ca { der, signer, key });
    }
    let key = KeyPair::generate().map_err(cert_err("generating a CA key"))?;
    let signer = ca_params(name).self_signed(&key).map_err(cert_err(name))?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    write_public(&cert_path, signer.pem().as_bytes())?;
    Ok(Ca {
        der: signer.der().clone(),
        signer,
        key,
    })
}

/// Reads an `N`-byte key from `path`, or creates one.
fn load_or_create_key<const N: usize>(path: &Path) -> Result<Vec<u8>, PkiError> {
    match std::fs::read(path) {
        Ok(k) if k.len() == N => Ok(k),
        _ => {
            let k = random_bytes::<N>().to_vec();
            write_private(path, &k)?;
            Ok(k)
        }
    }
}

fn pem_to_der(pem: &str) -> Option<CertificateDer<'static>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).ok()
}

/// A new secret token: 256 random bits as lower-case hex.
pub fn new_token() -> String {
    hex::encode(random_bytes::<32>())
}

/// `n` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut out = [0u8; N];
    // The OS RNG failing is not something a server can continue past.
    #[allow(clippy::expect_used)]
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .expect("OS random number generator failed");
    out
}

impl Pki {
    /// Loads the key material from `dir`, creating whatever is missing. The server certificate
    /// is re-issued on every start for `names` (plus localhost and loopback); devices pin the
    /// CA, not the leaf.
    pub fn open_or_init(dir: &Path, names: &[String]) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let server_ca = load_or_create_ca(dir, CA_CERT, CA_KEY, "patrolsync server CA")?;
        let device_ca =
            load_or_create_ca(dir, DEVICE_CA_CERT, DEVICE_CA_KEY, "patrolsync device CA")?;

        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        for n in names {
            if !sans.contains(n) {
                sans.push(n.clone());
            }
        }
        let mut params = CertificateParams::new(sans).map_err(cert_err("server names"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "patrolsync server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(cert_err("generating the server key"))?;
        let leaf = params
            .signed_by(&key, &server_ca.signer, &server_ca.key)
            .map_err(cert_err("signing the server certificate"))?;
        write_private(&dir.join(SERVER_KEY), key.serialize_pem().as_bytes())?;
        write_public(&dir.join(SERVER_CERT), leaf.pem().as_bytes())?;

        let token_path = dir.join(ADMIN_TOKEN);
        let admin_token = match std::fs::read_to_string(&token_path) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => {
                let t = hex::encode(random_bytes::<32>());
                write_private(&token_path, format!("{t}\n").as_bytes())?;
                t
            }
        };

        let reset_key = load_or_create_key::<64>(&dir.join(RESET_KEY))?;
        let cid_key = load_or_create_key::<8>(&dir.join(CID_KEY))?;
        let token_key = load_or_create_key::<32>(&dir.join(TOKEN_KEY))?;

        Ok(Pki {
            reset_key,
            cid_key: u64::from_le_bytes(cid_key.try_into().unwrap_or([0; 8])),
            token_key,
            server_chain: vec![leaf.der().clone(), server_ca.der.clone()],
            server_key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            server_ca,
            device_ca,
            admin_token,
            dir: dir.to_owned(),
        })
    }

    /// SHA-256 of the server CA certificate, hex: what devices pin.
    pub fn ca_fingerprint(&self) -> patrolsync_proto::digest::Sha256 {
        patrolsync_proto::digest::Sha256::digest(&self.server_ca.der)
    }

    /// The server CA certificate (DER), handed to devices at enrollment.
    pub fn server_ca_der(&self) -> &CertificateDer<'static> {
        &self.server_ca.der
    }

    /// The QUIC stateless-reset key (HMAC-SHA256).
    pub fn reset_key(&self) -> ring::hmac::Key {
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.reset_key)
    }

    /// This node's connection-id key (for `HashedConnectionIdGenerator::from_key`).
    pub fn cid_key(&self) -> u64 {
        self.cid_key
    }

    /// The cluster's address-validation token key.
    pub fn token_key(&self) -> ring::hkdf::Prk {
        ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(&self.token_key)
    }

    /// Like [`Pki::open_or_init`], but when `store` is PostgreSQL (a cluster's shared database)
    /// the material every node must share comes from it: the first node to start stores its
    /// own, every other node adopts it, replacing what its data dir held (the old file is kept
    /// beside it as `NAME.replaced`). Per-node keys (stateless reset, connection ids, the
    /// server certificate) stay the node's own.
    pub async fn open_shared(
        dir: &Path,
        names: &[String],
        store: &dyn crate::store::Store,
    ) -> Result<Pki, PkiError> {
        let pki = Pki::open_or_init(dir, names)?;
        if store.backend() != crate::store::Backend::Postgres {
            return Ok(pki);
        }
        // One row for the whole set: a CA certificate from one node with another node's key
        // (two nodes starting together) would be a CA that cannot sign for itself.
        let mut local = serde_json::Map::new();
        for name in SHARED {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            local.insert(name.to_owned(), hex::encode(&bytes).into());
        }
        let local = serde_json::Value::Object(local).to_string();
        let cluster = store
            .shared_secret(CLUSTER_KEYS, local.as_bytes(), crate::clock::now_ms())
            .await
            .map_err(|e| PkiError::Cluster(e.to_string()))?;
        let cluster: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&cluster)
            .map_err(|e| PkiError::Cluster(format!("unreadable: {e}")))?;
        let mut adopted = false;
        for name in SHARED {
            let path = dir.join(name);
            let wanted = cluster
                .get(name)
                .and_then(|v| v.as_str())
                .and_then(|h| hex::decode(h).ok())
                .ok_or_else(|| PkiError::Cluster(format!("{name} is missing")))?;
            if std::fs::read(&path).map_err(io_err(&path))? != wanted {
                let kept = dir.join(format!("{name}.replaced"));
                std::fs::rename(&path, &kept).map_err(io_err(&path))?;
                if name.ends_with(".crt") {
                    write_public(&path, &wanted)?;
                } else {
                    write_private(&path, &wanted)?;
                }
                tracing::warn!(file = %path.display(), kept = %kept.display(), "adopted the cluster's key material");
                adopted = true;
            }
        }
        if adopted {
            return Pki::open_or_init(dir, names);
        }
        Ok(pki)
    }

    /// The admin API bearer token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Signs a device's certificate signing request. The subject and names come from the server
    /// (the device id), never from the request; the request proves possession of the key.
    pub fn sign_device_csr(
        &self,
        csr_der: &[u8],
        device_id: &str,
    ) -> Result<CertificateDer<'static>, PkiError> {
        let der = CertificateSigningRequestDer::from(csr_der.to_vec());
        let mut csr = CertificateSigningRequestParams::from_der(&der)
            .map_err(cert_err("the certificate signing request is invalid"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, device_id);
        let uri = format!("urn:patrolsync:device:{device_id}");
        params.subject_alt_names = vec![SanType::URI(
            uri.try_into().map_err(cert_err("device URI"))?,
        )];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params = params;
        let cert = csr
            .signed_by(&self.device_ca.signer, &self.device_ca.key)
            .map_err(cert_err("signing the device certificate"))?;
        Ok(cert.der().clone())
    }

    /// The rustls server configuration: TLS 1.3 only, the ring provider passed explicitly,
    /// ALPN `patrolsync/1`, and optional client certificates checked against the device CA
    /// (connections without one may only enroll).
    pub fn rustls_server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.device_ca.der.clone())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )?;
        tls.alpn_protocols = vec![patrolsync_proto::ALPN_V1.to_vec()];
        // 0-RTT stays off until every request that could ride in it is proven replay-safe.
        tls.max_early_data_size = 0;
        Ok(tls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_persist_and_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Pki::open_or_init(dir.path(), &[]).expect("init");
        let b = Pki::open_or_init(dir.path(), &["sync.example.org".into()]).expect("reopen");
        assert_eq!(a.ca_fingerprint(), b.ca_fingerprint());
        assert_eq!(a.admin_token(), b.admin_token());
        #[cfg(unix)]
        for f in [CA_KEY, DEVICE_CA_KEY, SERVER_KEY, ADMIN_TOKEN, RESET_KEY] {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(f))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        b.rustls_server_config().expect("tls config");
    }
}
