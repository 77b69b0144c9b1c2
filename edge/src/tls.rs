//! TLS for QUIC with rustls and the ring provider: the server's certificate (self-signed for local
//! runs, or PEM files) and a client configuration that trusts exactly one certificate.
//!
//! Trust model: a client pins the server's certificate (its DER bytes, printed or written by
//! `sekai serve`, handed over in-process by the demo and tests) as its only root of trust. This
//! is safe for any address, loopback or not; no verifier is ever disabled.
//!
//! A self-signed certificate names `localhost`, the listen address (loopback addresses when it
//! listens on all of them) and every extra name given, so a client may connect by IP or name.
//! `serve` keeps it in its data directory ([`CERT_FILE`], [`KEY_FILE`]) and reuses it on every
//! start while it names the same names, so a client that pinned it keeps working.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

pub use sekai_model::protocol::{ALPN, DEFAULT_IDLE_TIMEOUT, SELF_SIGNED_NAME};

/// File name of the edge certificate (DER) in a data directory: the one clients pin.
pub const CERT_FILE: &str = "edge-cert.der";
/// File name of the edge certificate's private key (PKCS#8 DER) in a data directory.
pub const KEY_FILE: &str = "edge-key.der";
/// File name of the names the kept certificate was made for, one per line.
pub const NAMES_FILE: &str = "edge-cert.names";

/// Where the server's certificate comes from.
#[derive(Clone, Debug)]
pub enum TlsSource {
    /// A fresh self-signed certificate naming `localhost`, the listen address and `names`.
    SelfSigned {
        /// Extra DNS names or IP addresses.
        names: Vec<String>,
    },
    /// A self-signed certificate kept in `dir`: made on first start, reused while it names the
    /// same names.
    SelfSignedIn {
        /// The data directory.
        dir: PathBuf,
        /// Extra DNS names or IP addresses.
        names: Vec<String>,
    },
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
    /// The kept certificate could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl Default for TlsSource {
    fn default() -> Self {
        TlsSource::SelfSigned { names: Vec::new() }
    }
}

/// The names a self-signed certificate for `listen` carries: `localhost`, the listen IP (the
/// loopback addresses when it is unspecified) and `extra`, without repeats, in that order.
pub fn certificate_names(listen: SocketAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![SELF_SIGNED_NAME.to_string()];
    let ip = listen.ip();
    if ip.is_unspecified() {
        names.extend(["127.0.0.1".to_string(), "::1".to_string()]);
    } else {
        names.push(ip.to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

type KeyPair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn generate(names: &[String]) -> Result<KeyPair, TlsError> {
    let generated = rcgen::generate_simple_self_signed(names.to_vec())?;
    let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    Ok((vec![generated.cert.der().clone()], PrivateKeyDer::from(key)))
}

/// The certificate kept in `dir` if it was made for `names`, else a new one written there.
fn kept_in(dir: &Path, names: &[String]) -> Result<KeyPair, TlsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Io { path, source }
    };
    let (cert_path, key_path, names_path) = (
        dir.join(CERT_FILE),
        dir.join(KEY_FILE),
        dir.join(NAMES_FILE),
    );
    let wanted = names.join("\n");
    if let (Ok(cert), Ok(key), Ok(kept)) = (
        std::fs::read(&cert_path),
        std::fs::read(&key_path),
        std::fs::read_to_string(&names_path),
    ) {
        if kept.trim_end() == wanted {
            tracing::info!(path = %cert_path.display(), "reusing the kept edge certificate");
            let key = PrivatePkcs8KeyDer::from(key);
            return Ok((vec![CertificateDer::from(cert)], PrivateKeyDer::from(key)));
        }
        tracing::warn!(
            kept = %kept.trim_end().replace('\n', ","),
            wanted = %names.join(","),
            "the kept edge certificate names other names: making a new one (clients must pin it)"
        );
    }
    let (chain, key) = generate(names)?;
    let cert = chain.first().map(|c| c.to_vec()).unwrap_or_default();
    write_atomically(&key_path, key.secret_der()).map_err(io(&key_path))?;
    write_atomically(&cert_path, &cert).map_err(io(&cert_path))?;
    write_atomically(&names_path, format!("{wanted}\n").as_bytes()).map_err(io(&names_path))?;
    tracing::info!(path = %cert_path.display(), names = %names.join(","), "made a new edge certificate");
    Ok((chain, key))
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash leaves the old
/// file or the new one, never half of one.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// What an edge's QUIC endpoint needs from its TLS identity.
pub struct ServerTls {
    /// The QUIC server configuration.
    pub config: quinn::ServerConfig,
    /// The leaf certificate clients pin.
    pub certificate: CertificateDer<'static>,
    /// The endpoint configuration, with a stateless-reset key derived from the private key: an
    /// edge restarted with the same identity answers packets of connections it lost in a crash
    /// with a stateless reset, so clients learn at once that they must reconnect (instead of
    /// waiting out the idle timeout).
    pub endpoint: quinn::EndpointConfig,
}

/// The server's QUIC configuration for an edge on `listen`. The edge sends keep-alives every
/// third of `idle_timeout`, so a quiet client stays connected whether or not it sends its own.
pub fn server_config(
    source: &TlsSource,
    listen: SocketAddr,
    idle_timeout: Duration,
) -> Result<ServerTls, TlsError> {
    let (chain, key) = match source {
        TlsSource::SelfSigned { names } => generate(&certificate_names(listen, names))?,
        TlsSource::SelfSignedIn { dir, names } => kept_in(dir, &certificate_names(listen, names))?,
        TlsSource::Files { cert, key } => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| pem_error(cert, e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error(key, e))?;
            (chain, key)
        }
    };
    let reset_seed: [u8; 32] = {
        use sha2::Digest;
        let mut hash = sha2::Sha256::new();
        hash.update(b"sekai-edge stateless reset key\0");
        hash.update(key.secret_der());
        hash.finalize().into()
    };
    let mut endpoint = quinn::EndpointConfig::new(Arc::new(ring::hmac::Key::new(
        ring::hmac::HMAC_SHA256,
        &reset_seed,
    )));
    // Connection ids validated by a key from the same seed, so a restarted edge recognises the
    // ids it issued before the crash as its own and answers them with a stateless reset.
    let cid_key = u64::from_le_bytes(reset_seed[..8].try_into().unwrap_or([0; 8]));
    // One reset per client that knocks, not one per 20 ms for the whole endpoint (quinn's
    // default): after a crash every client learns at once. A reset is always smaller than the
    // packet that caused it, so this amplifies nothing.
    endpoint.min_reset_interval(Duration::from_millis(1));
    endpoint.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
            as Box<dyn quinn::ConnectionIdGenerator>
    });
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
    set_idle(&mut transport, idle_timeout);
    transport.ack_frequency_config(Some(client_acknowledgements()));
    config.transport_config(Arc::new(transport));
    Ok(ServerTls {
        config,
        certificate: leaf,
        endpoint,
    })
}

/// Bytes asked for each kernel buffer (receive and send) of the edge's UDP socket. One socket
/// carries every connection: with Linux's default (~208 KiB) it overflowed at 400 bots on one
/// core (`RcvbufErrors` in `/proc/net/snmp`), and every dropped packet waited out QUIC's loss
/// recovery, which was most of the p999. Linux caps the request at `net.core.rmem_max` /
/// `wmem_max`.
pub const SOCKET_BUFFER_BYTES: usize = 8 << 20;

/// A QUIC server endpoint on `listen` with `tls` (its stateless-reset key included).
pub fn server_endpoint(tls: ServerTls, listen: SocketAddr) -> std::io::Result<quinn::Endpoint> {
    let socket = bind_udp(listen, SOCKET_BUFFER_BYTES)?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for QUIC"))?;
    quinn::Endpoint::new(tls.endpoint, Some(tls.config), socket, runtime)
}

/// A UDP socket bound to `addr` whose kernel buffers were asked to hold `buffer` bytes each (a
/// smaller grant, capped by the system, is logged, not refused). Load generators that put many
/// client connections on one socket use it too.
pub fn bind_udp(addr: SocketAddr, buffer: usize) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(error) = socket.set_recv_buffer_size(buffer) {
        tracing::warn!(%error, buffer, "cannot size the UDP receive buffer");
    }
    if let Err(error) = socket.set_send_buffer_size(buffer) {
        tracing::warn!(%error, buffer, "cannot size the UDP send buffer");
    }
    let granted = socket.recv_buffer_size()?;
    if granted < buffer {
        tracing::info!(
            asked = buffer,
            granted,
            "UDP receive buffer capped by the system (raise net.core.rmem_max for more)"
        );
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// How often the edge asks its clients to acknowledge (QUIC's ACK frequency extension, for
/// clients whose QUIC supports it; others acknowledge as before).
///
/// Without it a client acknowledges every second packet at once and any other within 25 ms, and
/// those ACK-only packets were 60 % of what an edge received: at 800 bots, 12,000 a second
/// beside 8,000 inputs, each a receive, a decryption and a wake of its connection. Asked for an
/// acknowledgement every 5 packets or within [`CLIENT_ACK_DELAY`], a client that sends inputs
/// at 10 Hz carries most of them on its inputs: at 800 bots the edge received 8,400-9,200
/// datagrams a second instead of 17,200-19,900, and its CPU per input fell 4 and 8 % (2
/// interleaved pairs; asking for every 21st packet instead: 6, 9 and 13 %, in 3).
/// The cost is loss recovery: a lost packet that later ones follow is still acknowledged at
/// once (reordering threshold 2, the extension's default), but the edge waits up to the delay
/// longer to retransmit the last packet of a burst when it is lost (its probe timeout includes
/// the delay). quinn caps the delay it asks for at 25 ms on a LAN; `vendor/quinn-proto-0.11.19`
/// lifts that cap.
fn client_acknowledgements() -> quinn::AckFrequencyConfig {
    let mut acks = quinn::AckFrequencyConfig::default();
    acks.ack_eliciting_threshold(CLIENT_ACK_EVERY.into());
    acks.max_ack_delay(Some(CLIENT_ACK_DELAY));
    acks
}

/// Ack-eliciting packets a client may receive before it must acknowledge (then the 5th).
const CLIENT_ACK_EVERY: u32 = 4;

/// The longest a client may wait to acknowledge: one input period at 10 Hz.
const CLIENT_ACK_DELAY: Duration = Duration::from_millis(100);

/// Sets the idle timeout and keep-alives every third of it.
fn set_idle(transport: &mut quinn::TransportConfig, idle_timeout: Duration) {
    let idle = quinn::IdleTimeout::try_from(idle_timeout)
        .unwrap_or_else(|_| quinn::IdleTimeout::from(quinn::VarInt::from_u32(30_000)));
    transport.max_idle_timeout(Some(idle));
    transport.keep_alive_interval(Some(idle_timeout / 3));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_socket_gets_larger_kernel_buffers_than_a_plain_one() {
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let plain = socket2::Socket::from(std::net::UdpSocket::bind(loopback).unwrap());
        let sized = socket2::Socket::from(bind_udp(loopback, SOCKET_BUFFER_BYTES).unwrap());
        assert!(
            sized.recv_buffer_size().unwrap() > plain.recv_buffer_size().unwrap(),
            "receive buffer not enlarged"
        );
        assert!(
            sized.send_buffer_size().unwrap() > plain.send_buffer_size().unwrap(),
            "send buffer not enlarged"
        );
        // And it is a working socket bound where asked.
        let sized: std::net::UdpSocket = sized.into();
        let to = sized.local_addr().unwrap();
        let from = std::net::UdpSocket::bind(loopback).unwrap();
        from.send_to(b"ping", to).unwrap();
        let mut buf = [0u8; 8];
        let (len, _) = sized.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"ping");
    }
}
