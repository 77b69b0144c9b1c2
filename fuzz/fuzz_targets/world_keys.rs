//! Key decoding (`sekai_schema::WorldKeys`): every decoder of the tuple key layout gets the
//! bytes, with and without the world's prefix in front; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sekai_schema::WorldKeys;

fuzz_target!(|data: &[u8]| {
    let keys = WorldKeys::new("sekai/world").expect("a valid prefix");
    // The world's prefix in front, so the fuzzer starts inside the world's key space.
    let mut prefixed = keys.prefix().to_vec();
    prefixed.extend_from_slice(data);
    for key in [data, &prefixed[..]] {
        let _ = keys.decode(key);
        let _ = keys.decode_entity(key);
        let _ = keys.decode_spatial(key);
        let _ = keys.decode_spatial_rev(key);
        let _ = WorldKeys::decode_spatial_rev_value(key);
        let _ = keys.decode_inbox(key);
        let _ = keys.decode_changelog(key);
        let _ = keys.decode_frame(key);
        let _ = keys.decode_head(key);
        let _ = keys.decode_lease(key);
        let _ = keys.decode_region_version(key);
        let _ = keys.decode_inbox_signal(key);
        let _ = keys.decode_changelog_floor(key);
        let _ = keys.decode_player(key);
        let _ = keys.decode_applied(key);
        let _ = keys.decode_durable(key);
    }
});
