//! The fuzzer's bytes: real Cap'n Proto RPC messages of the edge protocol (built with
//! capnp-rpc's `rpc_capnp` types, so they are exactly what a client would send), and the ways
//! the fuzzer breaks them: cuts, bit flips, splices, interesting words, wrong ids, wrong
//! parameter types, lying segment tables.
//!
//! Invariants: every function here is pure (all randomness comes from the caller's rng, so a
//! seed reproduces the bytes); none panics, whatever the rng yields; a message is one
//! serialized frame (segment table plus segments) as `Vec<u8>`, and a script is the frames a
//! client writes one after the other on its stream. Question ids of a login script are fixed:
//! 0 bootstrap, 1 login, 2 avatar, 3 info; later calls use ids from [`FIRST_FREE_QUESTION`].

use capnp::message::{Builder, HeapAllocator};
use capnp::traits::{HasTypeId, ImbueMut};
use capnp_rpc::rpc_capnp::{cap_descriptor, message, message_target, payload, return_};
use rand::seq::SliceRandom;
use rand::Rng;
use sekai_schema::edge_capnp::{avatar, delta_sink, gateway, session, stamped_delta, subscription};

/// One serialized RPC message (segment table and segments).
pub type Frame = Vec<u8>;

/// The first question id a script may use after a login script.
pub const FIRST_FREE_QUESTION: u32 = 4;

/// Largest fuzz frame built here, in bytes (well under the edge's 512 KiB message limit, so
/// what the edge refuses is the content, not the size; oversized claims are separate).
pub const MAX_FUZZ_BYTES: usize = 64 * 1024;

/// Interface ids of the edge protocol.
pub fn gateway_id() -> u64 {
    gateway::Client::TYPE_ID
}

/// `Session`'s interface id.
pub fn session_id() -> u64 {
    session::Client::TYPE_ID
}

/// `Avatar`'s interface id.
pub fn avatar_id() -> u64 {
    avatar::Client::TYPE_ID
}

/// `Subscription`'s interface id.
pub fn subscription_id() -> u64 {
    subscription::Client::TYPE_ID
}

/// `DeltaSink`'s interface id.
pub fn delta_sink_id() -> u64 {
    delta_sink::Client::TYPE_ID
}

/// Where a call goes.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// An export of the edge, by id.
    Import(u32),
    /// The answer to a question, optionally one pointer field of its results.
    Answer(u32, Option<u16>),
}

/// One entry of a payload's capability table.
#[derive(Clone, Copy, Debug)]
pub enum Desc {
    /// `none`.
    None,
    /// A capability the sender (the fuzzer) hosts.
    SenderHosted(u32),
    /// A promise the sender hosts (the edge then waits for a `Resolve`).
    SenderPromise(u32),
    /// One of the edge's own exports.
    ReceiverHosted(u32),
    /// A capability in one of the edge's answers.
    ReceiverAnswer(u32, Option<u16>),
    /// A third party (unsupported by capnp-rpc).
    ThirdParty,
}

/// Serializes `builder` into one frame.
fn frame(builder: &Builder<HeapAllocator>) -> Frame {
    capnp::serialize::write_message_to_words(builder)
}

/// Builds one RPC message with `fill`; a builder error (none is expected: every message here
/// is small) yields an empty frame, which the fuzzer still sends as nothing.
fn build(fill: impl FnOnce(message::Builder<'_>) -> capnp::Result<()>) -> Frame {
    let mut builder = Builder::new_default();
    match fill(builder.init_root::<message::Builder<'_>>()) {
        Ok(()) => frame(&builder),
        Err(error) => {
            tracing::debug!(%error, "a fuzz message could not be built");
            Vec::new()
        }
    }
}

fn write_target(target: Target, mut out: message_target::Builder<'_>) {
    match target {
        Target::Import(id) => out.set_imported_cap(id),
        Target::Answer(question, field) => {
            let mut answer = out.init_promised_answer();
            answer.set_question_id(question);
            if let Some(field) = field {
                answer.init_transform(1).get(0).set_get_pointer_field(field);
            }
        }
    }
}

fn write_descriptors(descriptors: &[Desc], out: payload::Builder<'_>) {
    let mut table = out.init_cap_table(descriptors.len() as u32);
    for (i, desc) in descriptors.iter().enumerate() {
        write_one_descriptor(*desc, table.reborrow().get(i as u32));
    }
}

/// Fills a call's params content (an `AnyPointer` whose capability table is already imbued).
pub type Params = Box<dyn FnOnce(capnp::any_pointer::Builder<'_>) -> capnp::Result<()>>;

/// `Bootstrap` as question `question`.
pub fn bootstrap(question: u32) -> Frame {
    build(|m| {
        m.init_bootstrap().set_question_id(question);
        Ok(())
    })
}

/// A `Call` of `interface.method` on `target` as question `question`, its params filled by
/// `params`, its capability table `descriptors`.
pub fn call(
    question: u32,
    target: Target,
    interface: u64,
    method: u16,
    params: Params,
    descriptors: &[Desc],
) -> Frame {
    build(|m| {
        let mut call = m.init_call();
        call.set_question_id(question);
        call.set_interface_id(interface);
        call.set_method_id(method);
        write_target(target, call.reborrow().init_target());
        let mut payload = call.init_params();
        // Capabilities set in the params land in this table; only `descriptors` go on the wire,
        // so a cap pointer may name an entry that does not exist.
        let mut caps = Vec::new();
        {
            let mut content = payload.reborrow().get_content();
            content.imbue_mut(&mut caps);
            params(content)?;
        }
        write_descriptors(descriptors, payload);
        Ok(())
    })
}

/// `Gateway.login(token)` params.
pub fn login_params(token: String) -> Params {
    Box::new(move |content| {
        content
            .init_as::<gateway::login_params::Builder<'_>>()
            .set_token(token.as_str());
        Ok(())
    })
}

/// Empty params (`avatar()`, `info()`, `cancel()`).
pub fn no_params() -> Params {
    Box::new(|_| Ok(()))
}

/// The login script: bootstrap, login, avatar (pipelined), info.
pub fn login_script(token: &str) -> Vec<Frame> {
    vec![
        bootstrap(0),
        call(
            1,
            Target::Answer(0, None),
            gateway_id(),
            0,
            login_params(token.to_string()),
            &[],
        ),
        call(
            2,
            Target::Answer(1, Some(0)),
            session_id(),
            0,
            no_params(),
            &[],
        ),
        call(
            3,
            Target::Answer(1, Some(0)),
            session_id(),
            2,
            no_params(),
            &[],
        ),
    ]
}

/// `Avatar.send` (on the login script's avatar) as question `question` with `params`.
pub fn send_call(question: u32, params: Params) -> Frame {
    call(
        question,
        Target::Answer(2, Some(0)),
        avatar_id(),
        0,
        params,
        &[],
    )
}

/// `Session.subscribe` (on the login script's session) as question `question`.
pub fn subscribe_call(question: u32, params: Params, descriptors: &[Desc]) -> Frame {
    call(
        question,
        Target::Answer(1, Some(0)),
        session_id(),
        1,
        params,
        descriptors,
    )
}

/// A sink the fuzzer never serves: only its capability pointer is written.
struct NullSink;

impl delta_sink::Server for NullSink {}

/// Subscribe params: the area, a sink capability pointer naming cap-table entry `sink_index`
/// (whether or not that entry exists), `resume` and `batched`.
pub fn subscribe_params(
    center: (f32, f32, f32),
    radius: f32,
    sink_index: usize,
    resume: Vec<u8>,
    batched: bool,
) -> Params {
    Box::new(move |content| {
        let mut params = content.init_as::<session::subscribe_params::Builder<'_>>();
        let mut area = params.reborrow().init_area();
        area.set_radius(radius);
        let mut c = area.init_center();
        c.set_x(center.0);
        c.set_y(center.1);
        c.set_z(center.2);
        params.set_resume_from(&resume);
        params.set_batched(batched);
        // Each set appends to the local capability table and points at the new entry, so the
        // pointer ends up naming entry `sink_index` (which the wire table may lack).
        for _ in 0..=sink_index.min(8) {
            params.set_sink(capnp_rpc::new_client(NullSink));
        }
        Ok(())
    })
}

/// Send params with a `move` to (x, y, z).
pub fn send_move(seq: u64, x: f32, y: f32, z: f32) -> Params {
    Box::new(move |content| {
        let mut params = content.init_as::<avatar::send_params::Builder<'_>>();
        params.set_seq(seq);
        let mut to = params.init_action().init_move();
        to.set_x(x);
        to.set_y(y);
        to.set_z(z);
        Ok(())
    })
}

/// Send params with a `build` at (x, 0, z).
pub fn send_build(seq: u64, x: f32, z: f32) -> Params {
    Box::new(move |content| {
        let mut params = content.init_as::<avatar::send_params::Builder<'_>>();
        params.set_seq(seq);
        let mut build = params.init_action().init_build();
        let mut at = build.reborrow().init_position();
        at.set_x(x);
        at.set_z(z);
        build.set_kind(sekai_schema::world_capnp::EntityType::StructureWall);
        Ok(())
    })
}

/// Send params without an action.
pub fn send_bare(seq: u64) -> Params {
    Box::new(move |content| {
        content
            .init_as::<avatar::send_params::Builder<'_>>()
            .set_seq(seq);
        Ok(())
    })
}

/// Params whose first pointer is `Data` of `bytes` (a `StampedDelta`'s layout): for `login`,
/// a token that is not valid text (no NUL terminator, maybe not UTF-8).
pub fn data_in_first_pointer(bytes: Vec<u8>) -> Params {
    Box::new(move |content| {
        content
            .init_as::<stamped_delta::Builder<'_>>()
            .set_versionstamp(&bytes);
        Ok(())
    })
}

/// Params that are a list of `n` words instead of a struct.
pub fn list_instead_of_struct(values: Vec<u64>) -> Params {
    Box::new(move |content| {
        let mut list = content.initn_as::<capnp::primitive_list::Builder<u64>>(values.len() as u32);
        for (i, v) in values.iter().enumerate() {
            list.set(i as u32, *v);
        }
        Ok(())
    })
}

/// Params that are text instead of a struct.
pub fn text_instead_of_struct(text: String) -> Params {
    Box::new(move |mut content| {
        content.set_as(text.as_str())?;
        Ok(())
    })
}

/// A float that breaks the edge's checks (or nearly does).
pub fn bad_float(rng: &mut impl Rng) -> f32 {
    *[
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        1.0e6,
        1.000_001e6,
        -1.0e7,
        f32::from_bits(0x7fc0_0001),
        f32::from_bits(0xffff_ffff),
    ]
    .choose(rng)
    .unwrap_or(&f32::NAN)
}

/// A random float: usually plausible, sometimes [`bad_float`].
fn any_float(rng: &mut impl Rng) -> f32 {
    if rng.gen_bool(0.5) {
        bad_float(rng)
    } else {
        rng.gen_range(-2_000.0..2_000.0)
    }
}

/// One call with parameters the edge must refuse without harm: non-finite or outside-the-world
/// positions, a missing action, text or a list or a struct where another type is expected, a
/// token that is not text, bad areas, bad resume stamps, dangling sink capabilities.
pub fn malformed_call(question: u32, rng: &mut impl Rng) -> Frame {
    let seq = *[0u64, 1, 2, u64::MAX, rng.gen()].choose(rng).unwrap_or(&1);
    match rng.gen_range(0..12) {
        0 => send_call(
            question,
            send_move(seq, any_float(rng), any_float(rng), any_float(rng)),
        ),
        1 => send_call(question, send_build(seq, any_float(rng), any_float(rng))),
        2 => send_call(question, send_bare(seq)),
        // Text where the `action` struct is expected (login params: pointer 0 is text).
        3 => send_call(question, login_params(random_text(rng, 64))),
        // A struct (`Area`) where login's text token is expected.
        4 => call(
            question,
            Target::Answer(0, None),
            gateway_id(),
            0,
            subscribe_params((1.0, 2.0, 3.0), 4.0, 0, Vec::new(), true),
            &[Desc::SenderHosted(0)],
        ),
        // Data without a NUL, perhaps not UTF-8, where the token is expected.
        5 => call(
            question,
            Target::Answer(0, None),
            gateway_id(),
            0,
            data_in_first_pointer(random_bytes(rng, 0..200)),
            &[],
        ),
        6 => {
            let method = rng.gen_range(0..3u16);
            let (target, interface) = match rng.gen_range(0..3) {
                0 => (Target::Answer(0, None), gateway_id()),
                1 => (Target::Answer(1, Some(0)), session_id()),
                _ => (Target::Answer(2, Some(0)), avatar_id()),
            };
            let values = (0..rng.gen_range(0..8)).map(|_| rng.gen()).collect();
            call(
                question,
                target,
                interface,
                method,
                list_instead_of_struct(values),
                &[],
            )
        }
        7 => send_call(question, text_instead_of_struct(random_text(rng, 32))),
        8 => {
            let resume = match rng.gen_range(0..3) {
                0 => Vec::new(),
                1 => random_bytes(rng, 10..11),
                _ => random_bytes(rng, 0..40),
            };
            let center = (any_float(rng), any_float(rng), any_float(rng));
            subscribe_call(
                question,
                subscribe_params(
                    center,
                    any_float(rng),
                    rng.gen_range(0..4),
                    resume,
                    rng.gen(),
                ),
                &random_descriptors(rng),
            )
        }
        // A sink pointer with no capability table at all.
        9 => subscribe_call(
            question,
            subscribe_params((10.0, 0.0, 10.0), 10.0, 0, Vec::new(), rng.gen()),
            &[],
        ),
        10 => call(
            question,
            Target::Answer(0, None),
            gateway_id(),
            0,
            login_params(random_text(rng, 300)),
            &[],
        ),
        _ => call(
            question,
            Target::Answer(rng.gen_range(0..question.max(1)), Some(0)),
            subscription_id(),
            0,
            no_params(),
            &[],
        ),
    }
}

/// A call with a wrong interface or method id, on a target that exists (the bootstrap
/// answer, the session, the avatar) or not.
pub fn wrong_id_call(question: u32, rng: &mut impl Rng) -> Frame {
    let known = [
        gateway_id(),
        session_id(),
        avatar_id(),
        subscription_id(),
        delta_sink_id(),
    ];
    let interface = match rng.gen_range(0..4) {
        0 => rng.gen(),
        1 => known.choose(rng).copied().unwrap_or(0) ^ (1u64 << rng.gen_range(0..64)),
        2 => 0,
        _ => known.choose(rng).copied().unwrap_or(0),
    };
    let method = match rng.gen_range(0..3) {
        0 => rng.gen(),
        1 => rng.gen_range(3..16),
        _ => rng.gen_range(0..4),
    };
    let target = match rng.gen_range(0..4) {
        0 => Target::Answer(0, None),
        1 => Target::Answer(1, Some(rng.gen_range(0..3))),
        2 => Target::Answer(rng.gen_range(0..question.max(1) + 4), None),
        _ => Target::Import(rng.gen_range(0..8)),
    };
    let values = (0..rng.gen_range(0..4)).map(|_| rng.gen()).collect();
    call(
        question,
        target,
        interface,
        method,
        list_instead_of_struct(values),
        &random_descriptors(rng),
    )
}

/// A few capability descriptors with small ids (so they often name things that exist).
pub fn random_descriptors(rng: &mut impl Rng) -> Vec<Desc> {
    (0..rng.gen_range(0..4))
        .map(|_| match rng.gen_range(0..11) {
            0 | 1 => Desc::None,
            2 | 3 => Desc::SenderHosted(rng.gen_range(0..4)),
            4 | 5 => Desc::SenderPromise(rng.gen_range(0..4)),
            6 | 7 => Desc::ReceiverHosted(rng.gen_range(0..4)),
            8 | 9 => Desc::ReceiverAnswer(rng.gen_range(0..6), Some(rng.gen_range(0..2))),
            // Unsupported by capnp-rpc: always a protocol error, so rare.
            _ => Desc::ThirdParty,
        })
        .collect()
}

/// Any RPC message with small ids: `Return`s, `Finish`es, `Release`s, `Resolve`s,
/// `Disembargo`s, `Bootstrap`s on used ids, `Unimplemented`, `Abort`, `Provide`, `Join`.
/// After a subscribe with a sink the fuzzer "hosts", the edge has questions of its own (its
/// sink calls), so these land on live state.
pub fn bogus_message(rng: &mut impl Rng) -> Frame {
    let id = rng.gen_range(0..6u32);
    // Weighted towards messages that touch live state without ending the connection at once.
    match rng.gen_range(0..14u32).saturating_sub(4) {
        0 => build(|m| {
            let mut ret = m.init_return();
            ret.set_answer_id(id);
            ret.set_release_param_caps(rng.gen());
            ret.set_no_finish_needed(rng.gen());
            write_return_body(ret, rng);
            Ok(())
        }),
        1 => build(|m| {
            let mut finish = m.init_finish();
            finish.set_question_id(id);
            finish.set_release_result_caps(rng.gen());
            Ok(())
        }),
        2 => build(|m| {
            let mut release = m.init_release();
            release.set_id(id);
            release.set_reference_count(*[0, 1, 2, u32::MAX].choose(rng).unwrap_or(&1));
            Ok(())
        }),
        3 => build(|m| {
            let mut resolve = m.init_resolve();
            resolve.set_promise_id(id);
            if rng.gen_bool(0.7) {
                let descriptors = [
                    Desc::None,
                    Desc::SenderHosted(rng.gen_range(0..4)),
                    Desc::SenderPromise(rng.gen_range(0..4)),
                    Desc::ReceiverHosted(rng.gen_range(0..4)),
                    Desc::ReceiverAnswer(rng.gen_range(0..6), Some(0)),
                ];
                let desc = descriptors.choose(rng).copied().unwrap_or(Desc::None);
                write_one_descriptor(desc, resolve.init_cap());
            } else {
                resolve.init_exception().set_reason("fuzz");
            }
            Ok(())
        }),
        4 => build(|m| {
            let mut d = m.init_disembargo();
            let target = if rng.gen_bool(0.5) {
                Target::Import(rng.gen_range(0..4))
            } else {
                Target::Answer(rng.gen_range(0..6), Some(rng.gen_range(0..2)))
            };
            write_target(target, d.reborrow().init_target());
            let mut context = d.init_context();
            match rng.gen_range(0..4) {
                0 => context.set_sender_loopback(id),
                1 => context.set_receiver_loopback(id),
                2 => context.set_accept(()),
                _ => context.set_provide(id),
            }
            Ok(())
        }),
        5 => bootstrap(id),
        6 => build(|m| {
            m.init_unimplemented().init_bootstrap().set_question_id(id);
            Ok(())
        }),
        7 => build(|m| {
            m.init_abort().set_reason("fuzz abort");
            Ok(())
        }),
        8 => build(|m| {
            let mut provide = m.init_provide();
            provide.set_question_id(id + FIRST_FREE_QUESTION);
            write_target(Target::Answer(0, None), provide.init_target());
            Ok(())
        }),
        _ => build(|m| {
            let mut join = m.init_join();
            join.set_question_id(id + FIRST_FREE_QUESTION);
            write_target(Target::Import(id), join.init_target());
            Ok(())
        }),
    }
}

fn write_return_body(mut ret: return_::Builder<'_>, rng: &mut impl Rng) {
    match rng.gen_range(0..6) {
        0 => {
            let mut results = ret.init_results();
            let descriptors = random_descriptors(rng);
            if !descriptors.is_empty() {
                let mut caps = Vec::new();
                let mut content = results.reborrow().get_content();
                content.imbue_mut(&mut caps);
                content.set_as_capability(
                    capnp_rpc::new_client::<delta_sink::Client, _>(NullSink)
                        .client
                        .hook,
                );
            }
            write_descriptors(&descriptors, results);
        }
        1 => ret.init_exception().set_reason("fuzz exception"),
        2 => ret.set_canceled(()),
        3 => ret.set_results_sent_elsewhere(()),
        4 => ret.set_take_from_other_question(rng.gen_range(0..6)),
        _ => {
            let _ = ret.init_accept_from_third_party();
        }
    }
}

fn write_one_descriptor(desc: Desc, mut d: cap_descriptor::Builder<'_>) {
    match desc {
        Desc::None => d.set_none(()),
        Desc::SenderHosted(id) => d.set_sender_hosted(id),
        Desc::SenderPromise(id) => d.set_sender_promise(id),
        Desc::ReceiverHosted(id) => d.set_receiver_hosted(id),
        Desc::ReceiverAnswer(question, field) => {
            let mut answer = d.init_receiver_answer();
            answer.set_question_id(question);
            if let Some(field) = field {
                answer.init_transform(1).get(0).set_get_pointer_field(field);
            }
        }
        Desc::ThirdParty => {
            d.init_third_party_hosted().set_vine_id(0);
        }
    }
}

/// `len` random bytes, `len` drawn from `range`.
pub fn random_bytes(rng: &mut impl Rng, range: std::ops::Range<usize>) -> Vec<u8> {
    let len = rng.gen_range(range);
    (0..len).map(|_| rng.gen()).collect()
}

/// Random printable text of up to `max` characters.
pub fn random_text(rng: &mut impl Rng, max: usize) -> String {
    let len = rng.gen_range(0..=max);
    (0..len).map(|_| rng.gen_range(' '..='~')).collect()
}

/// A frame with a well-formed segment table (1 to 4 segments of 0 to 64 words) and random
/// content.
pub fn garbage_segments(rng: &mut impl Rng) -> Frame {
    let sizes: Vec<u32> = (0..rng.gen_range(1..=4))
        .map(|_| rng.gen_range(0..=64))
        .collect();
    let mut out = segment_table(&sizes);
    let words: u32 = sizes.iter().sum();
    out.extend((0..words as usize * 8).map(|_| rng.gen::<u8>()));
    out
}

/// A segment table for `sizes` (words), padded to a whole word.
pub fn segment_table(sizes: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + sizes.len() * 4);
    out.extend_from_slice(&(sizes.len() as u32).wrapping_sub(1).to_le_bytes());
    for size in sizes {
        out.extend_from_slice(&size.to_le_bytes());
    }
    if out.len() % 8 != 0 {
        out.extend_from_slice(&[0; 4]);
    }
    out
}

/// A segment table that claims far more than it carries: a huge segment count, a huge
/// segment, sizes whose sum overflows 32 bits, or just over the edge's limit; followed by up
/// to a few hundred real bytes.
pub fn oversized_header(rng: &mut impl Rng) -> Frame {
    let mut out = match rng.gen_range(0..5) {
        // Segment count (minus one) near u32::MAX, or just above capnp's 512.
        0 => {
            let count_minus_one: u32 = *[u32::MAX, u32::MAX - 1, 512, 1 << 20]
                .choose(rng)
                .unwrap_or(&u32::MAX);
            let mut out = count_minus_one.to_le_bytes().to_vec();
            out.extend_from_slice(&rng.gen::<u32>().to_le_bytes());
            out
        }
        1 => segment_table(&[rng.gen_range(0x1000_0000..=u32::MAX)]),
        2 => segment_table(&[u32::MAX, u32::MAX, u32::MAX]),
        // Just over the edge's 65,536-word limit.
        3 => segment_table(&[65_537]),
        _ => segment_table(&[8, 65_530, 16]),
    };
    out.extend(random_bytes(rng, 0..256));
    out
}

/// Mutates `script` (frames) into one byte stream: bit flips, a cut, a splice with another
/// frame of the script, interesting words over pointers, a repeated or dropped frame.
pub fn mutate(script: &[Frame], rng: &mut impl Rng) -> Vec<u8> {
    let mut frames: Vec<Frame> = script.to_vec();
    if frames.is_empty() {
        return Vec::new();
    }
    let pick = rng.gen_range(0..frames.len());
    match rng.gen_range(0..6) {
        0 => flip_bits(&mut frames[pick], rng),
        1 => interesting_words(&mut frames[pick], rng),
        2 => {
            let other = rng.gen_range(0..frames.len());
            let spliced = splice(&frames[pick], &frames[other], rng);
            frames[pick] = spliced;
        }
        3 => {
            let copy = frames[pick].clone();
            frames.insert(pick, copy);
        }
        4 => {
            frames.remove(pick);
        }
        _ => {
            flip_bits(&mut frames[pick], rng);
            interesting_words(&mut frames[pick], rng);
        }
    }
    let mut bytes: Vec<u8> = frames.concat();
    if rng.gen_bool(0.2) {
        truncate(&mut bytes, rng);
    }
    bytes
}

/// Flips 1 to 8 random bits, mostly after the segment table (in the message itself).
pub fn flip_bits(bytes: &mut [u8], rng: &mut impl Rng) {
    if bytes.is_empty() {
        return;
    }
    let start = if bytes.len() > 8 && rng.gen_bool(0.9) {
        8
    } else {
        0
    };
    for _ in 0..rng.gen_range(1..=8) {
        let at = rng.gen_range(start..bytes.len());
        bytes[at] ^= 1 << rng.gen_range(0..8);
    }
}

/// Overwrites 1 to 3 aligned 32-bit halves of words with values that stress pointer and size
/// arithmetic.
pub fn interesting_words(bytes: &mut [u8], rng: &mut impl Rng) {
    let halves = bytes.len() / 4;
    if halves == 0 {
        return;
    }
    for _ in 0..rng.gen_range(1..=3) {
        let value: u32 = *[
            0,
            1,
            3,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_fffc,
            0xffff_ffff,
            0xffff_fff0,
            0x0000_fffd,
            0x0001_0000,
        ]
        .choose(rng)
        .unwrap_or(&0);
        let at = rng.gen_range(0..halves) * 4;
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
}

/// A prefix of `a` followed by a suffix of `b`, both cut at random points.
pub fn splice(a: &[u8], b: &[u8], rng: &mut impl Rng) -> Vec<u8> {
    let cut_a = rng.gen_range(0..=a.len());
    let cut_b = rng.gen_range(0..=b.len());
    let mut out = a[..cut_a].to_vec();
    out.extend_from_slice(&b[cut_b..]);
    out
}

/// Cuts `bytes` at a random point (keeping at least one byte when there is one).
pub fn truncate(bytes: &mut Vec<u8>, rng: &mut impl Rng) {
    if bytes.len() > 1 {
        let keep = rng.gen_range(1..bytes.len());
        bytes.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capnp::message::ReaderOptions;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn parse(frame: &[u8]) -> capnp::Result<()> {
        let mut slice = frame;
        let reader =
            capnp::serialize::read_message_from_flat_slice(&mut slice, ReaderOptions::new())?;
        let root = reader.get_root::<message::Reader<'_>>()?;
        root.which()
            .map_err(|e| capnp::Error::failed(e.to_string()))?;
        assert!(slice.is_empty(), "one frame holds one message");
        Ok(())
    }

    #[test]
    fn built_messages_are_valid_rpc_messages() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for frame in login_script("1.2.abc") {
            parse(&frame).expect("login script message");
        }
        for q in 0..200 {
            parse(&malformed_call(q, &mut rng)).expect("malformed call is still a message");
            parse(&wrong_id_call(q, &mut rng)).expect("wrong id call");
            parse(&bogus_message(&mut rng)).expect("bogus message");
        }
    }

    #[test]
    fn oversized_headers_claim_more_than_they_carry() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let frame = oversized_header(&mut rng);
            let mut slice = frame.as_slice();
            let options = *ReaderOptions::new().traversal_limit_in_words(Some(64 * 1024));
            assert!(capnp::serialize::read_message_from_flat_slice(&mut slice, options).is_err());
        }
    }

    #[test]
    fn garbage_segments_have_a_consistent_table() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..100 {
            let frame = garbage_segments(&mut rng);
            let count = u32::from_le_bytes(frame[0..4].try_into().unwrap()) as usize + 1;
            let sizes: u32 = (0..count)
                .map(|i| u32::from_le_bytes(frame[4 + 4 * i..8 + 4 * i].try_into().unwrap()))
                .sum();
            let table = (4 + 4 * count).div_ceil(8) * 8;
            assert_eq!(frame.len(), table + sizes as usize * 8);
        }
    }

    #[test]
    fn mutations_are_reproducible_and_never_panic() {
        let script = login_script("3.4.ff");
        let run = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..500)
                .map(|_| mutate(&script, &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(11), run(11));
        assert!(run(11).iter().all(|b| b.len() <= MAX_FUZZ_BYTES));
        assert!(mutate(&[], &mut ChaCha8Rng::seed_from_u64(1)).is_empty());
    }
}
