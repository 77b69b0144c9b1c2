//! TLS for QUIC with rustls and the ring provider: the server's certificate (self-signed for local
//! runs, or PEM files) and a client configuration that trusts exactly one certificate.
//!
//! Trust model: a client pins the server's certificate (its DER bytes, printed or written by
//! `sekai serve`, handed over in-process by the demo and tests) as its only root of trust. This
//! is safe for any address, loopback or not; no verifier is ever disabled.

use std::path::PathBuf;
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The ALPN protocol id of the edge protocol.
pub const ALPN: &[u8] = b"sekai-edge/1";

/// The server name a self-signed certificate is issued for (and clients check).
pub const SELF_SIGNED_NAME: &str = "localhost";

/// Where the server's certificate comes from.
#[derive(Clone, Debug, Default)]
pub enum TlsSource {
    /// A fresh self-signed certificate for [`SELF_SIGNED_NAME`].
    #[default]
    SelfSigned,
    /// PEM files: a certificate chain and its private key.
    Files {
        /// The certificate chain (PEM).
        cert: PathBuf,
        /// The private key (PEM).
        key: PathBuf,
    },
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating the self-signed certificate failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM file could not be read.
    #[error("cannot read {path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// The configuration has no cipher suite QUIC can use.
    #[error("TLS configuration unusable for QUIC: {0}")]
    Quic(String),
}

/// The server's QUIC configuration and the leaf certificate clients should pin.
pub fn server_config(
    source: &TlsSource,
) -> Result<(quinn::ServerConfig, CertificateDer<'static>), TlsError> {
    let (chain, key) = match source {
        TlsSource::SelfSigned => {
            let generated = rcgen::generate_simple_self_signed(vec![SELF_SIGNED_NAME.to_string()])?;
            let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
            (vec![generated.cert.der().clone()], PrivateKeyDer::from(key))
        }
        TlsSource::Files { cert, key } => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| pem_error(cert, e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
            (chain, key)
        }
    };
    let leaf = chain.first().cloned().ok_or_else(|| TlsError::Pem {
        path: PathBuf::new(),
        reason: "the certificate file holds no certificate".into(),
    })?;
    let mut crypto = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(crypto).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    // One bidirectional stream per connection carries the RPC; nothing else is accepted.
    transport.max_concurrent_bidi_streams(1u32.into());
    transport.max_concurrent_uni_streams(0u32.into());
    config.transport_config(Arc::new(transport));
    Ok((config, leaf))
}

/// A client configuration that trusts only `server_cert`.
pub fn client_config(server_cert: &CertificateDer<'_>) -> Result<quinn::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert.clone().into_owned())?;
    let mut crypto = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    crypto.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(crypto).map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
    config.transport_config(Arc::new(transport));
    Ok(config)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(path: &std::path::Path, e: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}
