//! Wire conversion (`sekai_model::wire`): the bytes are a Cap'n Proto message (flat word
//! format, as a peer could send it inside an RPC call) whose root is read as an action, a
//! delta, an entity state, an area, a streamed subscription's message, or an input stream's
//! message or answer: the readers the edge and the SDK apply to what the other side sends; the
//! versionstamp reader gets the raw bytes. None may panic.
#![no_main]

use capnp::message::ReaderOptions;
use capnp::serialize;
use libfuzzer_sys::fuzz_target;
use sekai_model::wire::{read_delta, read_entity, read_input, read_stamp};
use sekai_schema::world_capnp::{action, delta, entity_state};
use sekai_schema::Area;

fuzz_target!(|data: &[u8]| {
    let Some((which, bytes)) = data.split_first() else {
        return;
    };
    let _ = read_stamp(bytes);
    // capnp-rpc reads every message into aligned words; so does this harness.
    let mut words = capnp::Word::allocate_zeroed_vec(bytes.len().div_ceil(8));
    let aligned = &mut capnp::Word::words_to_bytes_mut(&mut words)[..bytes.len()];
    aligned.copy_from_slice(bytes);
    let mut slice: &[u8] = aligned;
    let options = *ReaderOptions::new().traversal_limit_in_words(Some(64 * 1024));
    let Ok(message) = serialize::read_message_from_flat_slice(&mut slice, options) else {
        return;
    };
    match which % 7 {
        0 => {
            if let Ok(root) = message.get_root::<action::Reader<'_>>() {
                let _ = read_input(7, 1, root);
            }
        }
        1 => {
            if let Ok(root) = message.get_root::<delta::Reader<'_>>() {
                let _ = read_delta(root);
            }
        }
        2 => {
            if let Ok(root) = message.get_root::<entity_state::Reader<'_>>() {
                let _ = read_entity(root);
            }
        }
        3 => {
            if let Ok(root) =
                message.get_root::<sekai_schema::edge_capnp::stream_message::Reader<'_>>()
            {
                let _ = sekai_model::stream::read(root);
            }
        }
        4 => {
            if let Ok(root) =
                message.get_root::<sekai_schema::edge_capnp::input_message::Reader<'_>>()
            {
                let _ = sekai_model::input_stream::read_input_message(7, root);
            }
        }
        5 => {
            if let Ok(root) =
                message.get_root::<sekai_schema::edge_capnp::input_answer::Reader<'_>>()
            {
                let _ = sekai_model::input_stream::read_answer(root);
            }
        }
        _ => {
            if let Ok(root) = message.get_root::<sekai_schema::edge_capnp::area::Reader<'_>>() {
                if let Ok(area) = Area::read_capnp(root) {
                    let _ = area.is_valid();
                }
            }
        }
    }
});
