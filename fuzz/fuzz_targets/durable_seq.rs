//! The durable record (`sekai_layer::world::inbox::DurableSeq::decode`): any bytes give a
//! record or an error, and a decoded record re-encodes to the same 16 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sekai_layer::world::inbox::DurableSeq;

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = DurableSeq::decode(data) {
        assert_eq!(&record.encode()[..], data);
    }
});
