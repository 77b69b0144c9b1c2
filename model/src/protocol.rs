//! Constants of the edge protocol that both ends must agree on (`docs/PROTOCOL.md`).

use std::time::Duration;

/// The ALPN protocol id of the edge protocol.
pub const ALPN: &[u8] = b"sekai-edge/1";

/// The server name a self-signed certificate is issued for (and clients check).
pub const SELF_SIGNED_NAME: &str = "localhost";

/// The default idle timeout of both sides: a connection with no packet for this long is closed;
/// each side sends keep-alives every third of it.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A commit versionstamp: the cursor of a subscription (10 bytes, ordered as commits are).
pub type Stamp = [u8; 10];
