//! Login tokens: `player.expiry.mac`, HMAC-SHA256 signed with the edge's secret.
//!
//! Format (ASCII): `<player id, decimal>.<expiry, unix seconds, decimal>.<64 lowercase hex
//! digits of HMAC-SHA256(secret, "<player>.<expiry>")>`.
//!
//! Invariants:
//! - a token verifies only if its MAC was made with the same secret over exactly its player id
//!   and expiry, and the expiry is strictly in the future of the `now` passed in;
//! - the MAC is compared in constant time (`hmac::Mac::verify_slice`);
//! - verification never panics: anything that is not the format above is [`TokenError::Malformed`];
//! - player 0 means nobody and never gets a token.

use hmac::{Hmac, Mac};
use sekai_schema::PlayerId;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token text accepted (a valid one is at most 20 + 1 + 20 + 1 + 64 bytes).
pub const MAX_TOKEN_LEN: usize = 128;

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token was given.
    #[error("missing login token")]
    Missing,
    /// The text is not `player.expiry.mac`.
    #[error("malformed login token: {0}")]
    Malformed(&'static str),
    /// The MAC does not match: the token was not issued with this edge's secret.
    #[error("forged login token (bad signature)")]
    Forged,
    /// The token was valid until `expiry`, which has passed.
    #[error("login token expired at {expiry} (now {now})")]
    Expired {
        /// The token's expiry, unix seconds.
        expiry: u64,
        /// The time of the check, unix seconds.
        now: u64,
    },
}

/// What a verified token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    /// The player the token logs in.
    pub player: PlayerId,
    /// Unix seconds after which the token is refused.
    pub expiry: u64,
}

/// Issues and verifies tokens with one secret.
#[derive(Clone)]
pub struct TokenKey {
    secret: Vec<u8>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<secret>)")
    }
}

impl TokenKey {
    /// A key with `secret` (any length; 32 random bytes is a good choice).
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self {
            secret: secret.into(),
        }
    }

    /// A token for `player` valid until unix second `expiry`.
    pub fn issue(&self, player: PlayerId, expiry: u64) -> String {
        let body = format!("{player}.{expiry}");
        let tag = self.mac(&body).finalize().into_bytes();
        format!("{body}.{}", to_hex(&tag))
    }

    /// Checks `token` at unix second `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        let (body, tag_hex) = token
            .rsplit_once('.')
            .ok_or(TokenError::Malformed("expected player.expiry.signature"))?;
        let (player, expiry) = body
            .split_once('.')
            .ok_or(TokenError::Malformed("expected player.expiry.signature"))?;
        let player: PlayerId = parse_decimal(player).ok_or(TokenError::Malformed("player id"))?;
        let expiry = parse_decimal(expiry).ok_or(TokenError::Malformed("expiry"))?;
        let tag = from_hex(tag_hex).ok_or(TokenError::Malformed("signature is not hex"))?;
        self.mac(body)
            .verify_slice(&tag)
            .map_err(|_| TokenError::Forged)?;
        if player == 0 {
            return Err(TokenError::Malformed("player 0 is nobody"));
        }
        if expiry <= now {
            return Err(TokenError::Expired { expiry, now });
        }
        Ok(Claims { player, expiry })
    }

    fn mac(&self, body: &str) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(body.as_bytes());
        mac
    }
}

/// Unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A decimal `u64` with digits only (no sign, no spaces, no leading `+`).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let key = TokenKey::new(b"secret".to_vec());
        let token = key.issue(42, 1_000);
        assert_eq!(
            key.verify(&token, 999),
            Ok(Claims {
                player: 42,
                expiry: 1_000
            })
        );
        assert_eq!(
            key.verify(&token, 1_000),
            Err(TokenError::Expired {
                expiry: 1_000,
                now: 1_000
            })
        );
    }

    #[test]
    fn forged_tokens_are_refused() {
        let key = TokenKey::new(b"secret".to_vec());
        let other = TokenKey::new(b"other".to_vec());
        assert_eq!(
            key.verify(&other.issue(42, 1_000), 0),
            Err(TokenError::Forged)
        );
        // Changing the player or the expiry of a real token breaks its signature.
        let token = key.issue(42, 1_000);
        let (_, tag) = token.rsplit_once('.').unwrap();
        assert_eq!(
            key.verify(&format!("43.1000.{tag}"), 0),
            Err(TokenError::Forged)
        );
        assert_eq!(
            key.verify(&format!("42.9999.{tag}"), 0),
            Err(TokenError::Forged)
        );
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            key.verify(std::str::from_utf8(&flipped).unwrap(), 0),
            Err(TokenError::Forged)
        );
    }

    #[test]
    fn malformed_tokens_get_clear_errors() {
        let key = TokenKey::new(b"secret".to_vec());
        assert_eq!(key.verify("", 0), Err(TokenError::Missing));
        for bad in [
            "nonsense", "1.2", "x.2.00", "1.y.00", "1.2.zz", "1.2.abc", "-1.2.00", "+1.2.00",
            "1..00", "ü.2.00",
        ] {
            assert!(
                matches!(key.verify(bad, 0), Err(TokenError::Malformed(_))),
                "{bad}: {:?}",
                key.verify(bad, 0)
            );
        }
        let long = "1".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(key.verify(&long, 0), Err(TokenError::Malformed("too long")));
        assert!(key.issue(0, 10).starts_with("0.10."));
        assert_eq!(
            key.verify(&key.issue(0, 10), 0),
            Err(TokenError::Malformed("player 0 is nobody"))
        );
    }
}
