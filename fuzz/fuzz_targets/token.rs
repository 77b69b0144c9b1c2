//! Login tokens (`sekai_edge::token::TokenKey::verify`): any string, at any time, must give a
//! verdict without panicking; a token that verifies must name a player and a future expiry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sekai_edge::token::TokenKey;

fuzz_target!(|data: &[u8]| {
    let (now, text) = match data.split_first_chunk::<8>() {
        Some((now, rest)) => (u64::from_le_bytes(*now), rest),
        None => (0, data),
    };
    let token = String::from_utf8_lossy(text);
    let key = TokenKey::new(b"fuzz-secret".to_vec());
    if let Ok(claims) = key.verify(&token, now) {
        assert!(claims.player != 0 && claims.expiry > now);
    }
    // A real token with the fuzzed text spliced in must not panic either.
    let issued = key.issue(42, now.saturating_add(60));
    let _ = key.verify(&format!("{issued}{token}"), now);
});
