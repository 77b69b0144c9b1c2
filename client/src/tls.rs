//! The client's TLS: trust exactly the edge's certificate (self-signed edges pin it), speak the
//! edge protocol's ALPN, and keep the connection alive every third of the idle timeout.

use std::sync::Arc;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::CertificateDer;
use sekai_model::protocol::{ALPN, DEFAULT_IDLE_TIMEOUT};

/// Why a client TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// rustls refused the configuration or the certificate.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The configuration has no cipher suite QUIC can use.
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(String),
}

/// A client configuration that trusts only `server_cert`, with keep-alives every third of
/// [`DEFAULT_IDLE_TIMEOUT`].
pub fn client_config(
    server_cert: &CertificateDer<'_>,
) -> Result<quinn::ClientConfig, ClientTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert.clone().into_owned())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let quic =
        QuicClientConfig::try_from(crypto).map_err(|e| ClientTlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    let idle = quinn::IdleTimeout::try_from(DEFAULT_IDLE_TIMEOUT)
        .map_err(|e| ClientTlsError::Quic(e.to_string()))?;
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(DEFAULT_IDLE_TIMEOUT / 3));
    // Supports QUIC's ACK frequency extension, so the edge can ask for fewer acknowledgements:
    // most then ride on this client's own inputs instead of going alone.
    transport.ack_frequency_config(Some(quinn::AckFrequencyConfig::default()));
    config.transport_config(Arc::new(transport));
    Ok(config)
}
