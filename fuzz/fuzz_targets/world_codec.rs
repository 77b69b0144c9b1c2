//! The world codec (`sekai_model::codec`): the first byte picks the decoder, the rest is
//! the stored value. Decoding must never panic, and whatever decodes must re-encode to bytes
//! that decode to the same encoding (encode ∘ decode is idempotent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sekai_model::codec::*;

fn stable<T>(bytes: &[u8], decode: fn(&[u8]) -> Result<T, CodecError>, encode: fn(&T) -> Vec<u8>) {
    if let Ok(value) = decode(bytes) {
        let once = encode(&value);
        let again = decode(&once).expect("an encoded value decodes");
        assert_eq!(encode(&again), once, "encode(decode(x)) is not stable");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((which, bytes)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => stable(bytes, decode_entity, encode_entity),
        1 => stable(bytes, decode_input, encode_input),
        2 => stable(bytes, decode_delta, encode_delta),
        _ => stable(bytes, decode_frame_record, encode_frame_record),
    }
});
