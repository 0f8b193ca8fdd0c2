//! TLS for the device: TLS 1.3 with the ring provider passed explicitly, ALPN `patrolsync/1`.
//! Before enrollment the device trusts only a server whose chain contains the CA whose SHA-256
//! the enrollment string carries; after enrollment it trusts only that CA and presents its own
//! certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Verifies the server against the CA pinned by fingerprint (enrollment only).
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: patrolsync_proto::digest::Sha256,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates.iter().find(|c| patrolsync_proto::digest::Sha256::digest(c) == self.pin).ok_or_else(|| {
            rustls::Error::General(
                "the server's CA does not match the fingerprint in the enrollment code; wrong server, or an interceptor".into(),
            )
        })?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn finish(
    mut tls: rustls::ClientConfig,
    keep_alive: std::time::Duration,
) -> Result<quinn::ClientConfig, rustls::Error> {
    tls.alpn_protocols = vec![patrolsync_proto::ALPN_V1.to_vec()];
    tls.enable_early_data = false;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
    cfg.transport_config(Arc::new(transport(keep_alive)));
    Ok(cfg)
}

/// The same client configuration, pinging every `keep_alive` when idle.
pub(crate) fn with_keep_alive(
    config: &quinn::ClientConfig,
    keep_alive: std::time::Duration,
) -> quinn::ClientConfig {
    let mut config = config.clone();
    config.transport_config(Arc::new(transport(keep_alive)));
    config
}

fn transport(keep_alive: std::time::Duration) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
            60_000,
        ))))
        // A PING when nothing else moves: an unanswered one, or a stateless reset from a server
        // that restarted, is how a dead path shows itself.
        .keep_alive_interval(Some(keep_alive))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(0))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(4))
        .stream_receive_window(quinn::VarInt::from_u32(1 << 20))
        .receive_window(quinn::VarInt::from_u32(8 << 20))
        .send_window(2 << 20)
        .datagram_receive_buffer_size(None);
    transport
}

/// Client configuration for enrollment: no client certificate, CA pinned by fingerprint.
pub(crate) fn enrollment_config(
    ca_sha256: patrolsync_proto::digest::Sha256,
    keep_alive: std::time::Duration,
) -> Result<quinn::ClientConfig, rustls::Error> {
    let provider = provider();
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedCaVerifier {
            pin: ca_sha256,
            provider,
        }))
        .with_no_client_auth();
    finish(tls, keep_alive)
}

/// Client configuration for an enrolled device.
pub(crate) fn device_config(
    server_ca: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    keep_alive: std::time::Duration,
) -> Result<quinn::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_ca)?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![cert], key)?;
    finish(tls, keep_alive)
}
