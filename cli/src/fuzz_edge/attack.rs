//! Fuzz cases over real QUIC: each case opens one connection to the edge, does one kind of
//! harm ([`FuzzKind`]), reads whatever the edge answers, and records how the connection ended
//! (the edge's close code, or still open when the case gives up waiting).
//!
//! Invariants: a case's bytes come only from its case seed (the fuzzer's ChaCha8 stream, so
//! `--seed` reproduces every case a fuzzer makes, in order; timings are not reproduced); every
//! await of a case is bounded, so a fuzzer never hangs on an edge that stops answering; a
//! fuzzer never panics on what the edge does, and counts every case exactly once.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rustls::pki_types::CertificateDer;
use sekai_schema::PlayerId;

use super::messages::{self as m, Desc, Frame, FIRST_FREE_QUESTION};
use sekai_edge::server::CloseCode;
use sekai_edge::tls::SELF_SIGNED_NAME;
use sekai_edge::token::{unix_now, TokenKey};

/// How long a connection attempt or a stream opening may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an extra stream (beyond the edge's one) is waited for.
const EXTRA_STREAM_WAIT: Duration = Duration::from_millis(300);
/// How long writing one case's bytes may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What one fuzz case does to the edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum FuzzKind {
    /// Random bytes on the bidirectional stream.
    RandomBytes,
    /// A well-formed segment table with random words in the segments.
    GarbageSegments,
    /// A real RPC session (login, send, subscribe) cut at a random byte.
    Truncated,
    /// A segment table claiming huge segments or a huge segment count.
    OversizedHeader,
    /// Bootstrap, login, then calls with wrong interface or method ids.
    WrongIds,
    /// Login, then calls with malformed params (non-finite positions, text where a struct is
    /// expected, a token that is not text, dangling sink capabilities, bad areas and stamps).
    MalformedParams,
    /// A real RPC session with bit flips, interesting words, splices, repeats or drops.
    Mutated,
    /// Login and subscribe with a sink the fuzzer "hosts", then `Return`, `Finish`, `Release`,
    /// `Resolve`, `Disembargo` and other messages with small ids that hit live state.
    BogusRpc,
    /// Up to 32 bidirectional streams opened at once (the edge grants one).
    ManyStreams,
    /// Unidirectional streams with random bytes (the edge grants none).
    UniStreams,
    /// Random QUIC datagrams (the edge never reads them).
    Datagrams,
}

impl FuzzKind {
    /// Every kind, in report order.
    pub const ALL: [FuzzKind; 11] = [
        FuzzKind::RandomBytes,
        FuzzKind::GarbageSegments,
        FuzzKind::Truncated,
        FuzzKind::OversizedHeader,
        FuzzKind::WrongIds,
        FuzzKind::MalformedParams,
        FuzzKind::Mutated,
        FuzzKind::BogusRpc,
        FuzzKind::ManyStreams,
        FuzzKind::UniStreams,
        FuzzKind::Datagrams,
    ];

    /// The kind's name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FuzzKind::RandomBytes => "random_bytes",
            FuzzKind::GarbageSegments => "garbage_segments",
            FuzzKind::Truncated => "truncated",
            FuzzKind::OversizedHeader => "oversized_header",
            FuzzKind::WrongIds => "wrong_ids",
            FuzzKind::MalformedParams => "malformed_params",
            FuzzKind::Mutated => "mutated",
            FuzzKind::BogusRpc => "bogus_rpc",
            FuzzKind::ManyStreams => "many_streams",
            FuzzKind::UniStreams => "uni_streams",
            FuzzKind::Datagrams => "datagrams",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }
}

/// How a case's connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The edge closed it with [`CloseCode::ProtocolError`].
    ProtocolClose,
    /// The edge closed it with [`CloseCode::Normal`] (the RPC stream ended).
    NormalClose,
    /// Another ending: another code, a reset, a transport error, an idle timeout.
    OtherClose,
    /// Still open when the case stopped waiting (the fuzzer closed it).
    LeftOpen,
    /// The handshake did not complete.
    ConnectFailed,
}

/// Counters of one kind.
#[derive(Default)]
pub struct KindCounts {
    /// Cases run (one QUIC connection each).
    pub cases: AtomicU64,
    /// Messages sent: RPC frames or byte blobs written, streams opened or attempted, datagrams.
    pub messages: AtomicU64,
    /// Bytes written on streams or sent as datagrams.
    pub bytes: AtomicU64,
    /// Connections the edge closed with a protocol error.
    pub protocol_closes: AtomicU64,
    /// Connections the edge closed normally.
    pub normal_closes: AtomicU64,
    /// Connections that ended otherwise.
    pub other_closes: AtomicU64,
    /// Connections still open when the case stopped waiting.
    pub left_open: AtomicU64,
    /// Handshakes that failed.
    pub connect_failures: AtomicU64,
}

/// A case, named well enough to find it again: fuzzer `fuzzer`'s case number `case`.
#[derive(Clone, Copy, Debug)]
pub struct CaseId {
    /// The fuzzer (its ChaCha8 stream number).
    pub fuzzer: usize,
    /// The case's number within its fuzzer, from 0.
    pub case: u64,
    /// What the case did.
    pub kind: FuzzKind,
    /// The case's own seed (all its bytes come from it).
    pub case_seed: u64,
}

/// Everything the fuzzers count, shared between them and the report.
#[derive(Default)]
pub struct FuzzCounts {
    kinds: [KindCounts; FuzzKind::ALL.len()],
    /// Extra bidirectional streams the edge granted credit for (beyond the first).
    pub extra_bidi_opened: AtomicU64,
    /// Unidirectional streams the edge granted credit for.
    pub uni_opened: AtomicU64,
    /// Cases whose connection offered no datagram support.
    pub datagrams_unsupported: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
    recent: Mutex<VecDeque<CaseId>>,
}

/// Cases kept in [`FuzzCounts::recent`].
const RECENT_CASES: usize = 32;

impl FuzzCounts {
    /// The counters of `kind`.
    pub fn kind(&self, kind: FuzzKind) -> &KindCounts {
        &self.kinds[kind.index()]
    }

    /// Sum of one counter over every kind.
    pub fn total(&self, counter: impl Fn(&KindCounts) -> &AtomicU64) -> u64 {
        self.kinds
            .iter()
            .map(|k| counter(k).load(Ordering::Relaxed))
            .sum()
    }

    /// Protocol-error close reasons seen (the capnp text, cut to 80 characters) and their counts.
    pub fn close_reasons(&self) -> BTreeMap<String, u64> {
        self.reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The last cases started (oldest first): what was in flight if the edge died.
    pub fn recent(&self) -> Vec<CaseId> {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .collect()
    }

    fn started(&self, id: CaseId) {
        self.kind(id.kind).cases.fetch_add(1, Ordering::Relaxed);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_CASES {
            recent.pop_front();
        }
        recent.push_back(id);
    }

    fn sent(&self, kind: FuzzKind, messages: u64, bytes: u64) {
        let k = self.kind(kind);
        k.messages.fetch_add(messages, Ordering::Relaxed);
        k.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    fn ended(&self, kind: FuzzKind, outcome: Outcome) {
        let k = self.kind(kind);
        let counter = match outcome {
            Outcome::ProtocolClose => &k.protocol_closes,
            Outcome::NormalClose => &k.normal_closes,
            Outcome::OtherClose => &k.other_closes,
            Outcome::LeftOpen => &k.left_open,
            Outcome::ConnectFailed => &k.connect_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn reason(&self, reason: &[u8]) {
        let text: String = String::from_utf8_lossy(reason).chars().take(80).collect();
        *self
            .reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(text)
            .or_default() += 1;
    }
}

/// The edge under fuzz and how to log in to it.
#[derive(Clone)]
pub struct FuzzTarget {
    /// The edge's UDP address.
    pub server: SocketAddr,
    /// The edge's certificate (pinned).
    pub certificate: CertificateDer<'static>,
    /// Mints the fuzzers' login tokens (the fuzzer knows the secret: it fuzzes behind login too).
    pub tokens: TokenKey,
    /// Fuzzer `i` logs in as player `first_player + i`.
    pub first_player: PlayerId,
}

/// How many fuzzers run, with which kinds, for how long.
#[derive(Clone, Debug)]
pub struct FuzzPlan {
    /// The seed: fuzzer `i` draws its cases from ChaCha8 stream `i` of this seed.
    pub seed: u64,
    /// Concurrent fuzzing connections.
    pub fuzzers: usize,
    /// The kinds to draw from (uniformly).
    pub kinds: Vec<FuzzKind>,
    /// Cases per fuzzer; `None` runs until the stop flag is set.
    pub cases_per_fuzzer: Option<u64>,
    /// How long a case waits for the edge to close its connection before closing it itself.
    pub close_wait: Duration,
}

/// Runs `plan.fuzzers` fuzzers against `target` until each has run its cases or `stop` is set.
/// Call from inside a tokio runtime.
pub async fn run_fuzzers(
    target: FuzzTarget,
    plan: FuzzPlan,
    counts: Arc<FuzzCounts>,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let bind: SocketAddr = if target.server.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let endpoint = sekai_client::client_endpoint(bind, &target.certificate)
        .map_err(|e| format!("fuzz endpoint: {e}"))?;
    let fuzzers = (0..plan.fuzzers).map(|index| {
        fuzzer(
            index,
            endpoint.clone(),
            target.clone(),
            plan.clone(),
            counts.clone(),
            stop.clone(),
        )
    });
    futures::future::join_all(fuzzers).await;
    endpoint.close(0u32.into(), b"fuzzers done");
    Ok(())
}

/// One fuzzer: cases one after the other from its own ChaCha8 stream.
async fn fuzzer(
    index: usize,
    endpoint: quinn::Endpoint,
    target: FuzzTarget,
    plan: FuzzPlan,
    counts: Arc<FuzzCounts>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed);
    rng.set_stream(index as u64);
    let player = target.first_player + index as PlayerId;
    let mut case = 0u64;
    while !stop.load(Ordering::Relaxed) && plan.cases_per_fuzzer.is_none_or(|n| case < n) {
        let Some(&kind) = plan.kinds.get(rng.gen_range(0..plan.kinds.len().max(1))) else {
            return;
        };
        let id = CaseId {
            fuzzer: index,
            case,
            kind,
            case_seed: rng.gen(),
        };
        counts.started(id);
        tracing::debug!(?id, "fuzz case");
        let token = target.tokens.issue(player, unix_now() + 3_600);
        let outcome = run_case(&endpoint, target.server, id, &token, &plan, &counts).await;
        counts.ended(kind, outcome);
        case += 1;
    }
}

/// Runs one case on a new connection and says how the connection ended.
pub async fn run_case(
    endpoint: &quinn::Endpoint,
    server: SocketAddr,
    id: CaseId,
    token: &str,
    plan: &FuzzPlan,
    counts: &FuzzCounts,
) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(id.case_seed);
    let connecting = match endpoint.connect(server, SELF_SIGNED_NAME) {
        Ok(connecting) => connecting,
        Err(error) => {
            tracing::warn!(%error, "fuzz connect refused locally");
            return Outcome::ConnectFailed;
        }
    };
    let connection = match tokio::time::timeout(OPEN_TIMEOUT, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            tracing::debug!(%error, "fuzz handshake failed");
            return Outcome::ConnectFailed;
        }
        Err(_) => return Outcome::ConnectFailed,
    };
    let mut held = None;
    let wait = match id.kind {
        FuzzKind::ManyStreams => many_streams(&connection, token, &mut rng, counts).await,
        FuzzKind::UniStreams => uni_streams(&connection, &mut rng, counts).await,
        FuzzKind::Datagrams => datagrams(&connection, &mut rng, counts),
        kind => {
            let plan_bytes = stream_plan(kind, token, &mut rng);
            counts.sent(kind, plan_bytes.messages, plan_bytes.bytes());
            let limit = if plan_bytes.finish {
                WRITE_TIMEOUT
            } else {
                plan.close_wait
            };
            let (send, ended) = play_stream(&connection, &plan_bytes, limit).await;
            held = send;
            ended
        }
    };
    let close_wait = if wait {
        plan.close_wait
    } else {
        Duration::from_millis(50)
    };
    let _ = tokio::time::timeout(close_wait, connection.closed()).await;
    let outcome = classify(connection.close_reason(), counts);
    if outcome == Outcome::LeftOpen {
        connection.close(0u32.into(), b"fuzz case done");
    }
    drop(held);
    outcome
}

/// How a closed (or open) connection ended, recording protocol-error reasons.
fn classify(reason: Option<quinn::ConnectionError>, counts: &FuzzCounts) -> Outcome {
    match reason {
        None => Outcome::LeftOpen,
        Some(quinn::ConnectionError::ApplicationClosed(close)) => {
            if close.error_code == quinn::VarInt::from(CloseCode::ProtocolError) {
                counts.reason(&close.reason);
                Outcome::ProtocolClose
            } else if close.error_code == quinn::VarInt::from(CloseCode::Normal) {
                Outcome::NormalClose
            } else {
                Outcome::OtherClose
            }
        }
        Some(_) => Outcome::OtherClose,
    }
}

/// What a stream case writes: chunks in order, then maybe the end of the stream.
pub struct StreamPlan {
    /// Byte chunks, written one after the other.
    pub chunks: Vec<Vec<u8>>,
    /// Messages these chunks hold (RPC frames, or 1 for a blob).
    pub messages: u64,
    /// Whether to finish the stream after the chunks (otherwise it stays open).
    pub finish: bool,
}

impl StreamPlan {
    fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    fn frames(frames: Vec<Frame>, finish: bool) -> Self {
        Self {
            messages: frames.len() as u64,
            chunks: frames,
            finish,
        }
    }

    fn blob(bytes: Vec<u8>, messages: u64, finish: bool) -> Self {
        Self {
            chunks: vec![bytes],
            messages,
            finish,
        }
    }
}

/// The bytes of a stream case of `kind`.
pub fn stream_plan(kind: FuzzKind, token: &str, rng: &mut ChaCha8Rng) -> StreamPlan {
    let finish = rng.gen_bool(0.7);
    match kind {
        FuzzKind::RandomBytes => StreamPlan::blob(m::random_bytes(rng, 1..4096), 1, finish),
        FuzzKind::GarbageSegments => {
            let frames = (0..rng.gen_range(1..=4))
                .map(|_| m::garbage_segments(rng))
                .collect();
            StreamPlan::frames(frames, finish)
        }
        FuzzKind::Truncated => {
            let script = real_script(token, rng);
            let messages = script.len() as u64;
            let mut bytes = script.concat();
            m::truncate(&mut bytes, rng);
            StreamPlan::blob(bytes, messages, finish)
        }
        FuzzKind::OversizedHeader => {
            let mut frames = if rng.gen_bool(0.5) {
                m::login_script(token)
            } else {
                Vec::new()
            };
            frames.push(m::oversized_header(rng));
            StreamPlan::frames(frames, finish)
        }
        FuzzKind::WrongIds => {
            let mut frames = m::login_script(token);
            for q in 0..rng.gen_range(1..=8) {
                frames.push(m::wrong_id_call(FIRST_FREE_QUESTION + q, rng));
            }
            StreamPlan::frames(frames, finish)
        }
        FuzzKind::MalformedParams => {
            let mut frames = m::login_script(token);
            for q in 0..rng.gen_range(1..=8) {
                frames.push(m::malformed_call(FIRST_FREE_QUESTION + q, rng));
            }
            StreamPlan::frames(frames, finish)
        }
        FuzzKind::Mutated => {
            let script = real_script(token, rng);
            let messages = script.len() as u64;
            StreamPlan::blob(m::mutate(&script, rng), messages, finish)
        }
        FuzzKind::BogusRpc => {
            let mut frames = subscribed_script(token, rng);
            for _ in 0..rng.gen_range(1..=12) {
                frames.push(m::bogus_message(rng));
            }
            StreamPlan::frames(frames, finish)
        }
        // Not stream cases; an empty plan if asked anyway.
        FuzzKind::ManyStreams | FuzzKind::UniStreams | FuzzKind::Datagrams => {
            StreamPlan::frames(Vec::new(), finish)
        }
    }
}

/// Login, then a subscribe whose sink the fuzzer claims to host (as a capability or a promise).
fn subscribed_script(token: &str, rng: &mut ChaCha8Rng) -> Vec<Frame> {
    let mut frames = m::login_script(token);
    let sink = if rng.gen_bool(0.5) {
        Desc::SenderHosted(0)
    } else {
        Desc::SenderPromise(0)
    };
    frames.push(m::subscribe_call(
        FIRST_FREE_QUESTION,
        m::subscribe_params((10.0, 0.0, 10.0), 20.0, 0, Vec::new(), rng.gen()),
        &[sink],
    ));
    frames
}

/// A well-behaved session: login, a move, a subscribe, a cancel (the material cut and mutated).
pub fn real_script(token: &str, rng: &mut ChaCha8Rng) -> Vec<Frame> {
    let mut frames = subscribed_script(token, rng);
    frames.push(m::send_call(
        FIRST_FREE_QUESTION + 1,
        m::send_move(1, rng.gen_range(0.0..100.0), 0.0, rng.gen_range(0.0..100.0)),
    ));
    frames.push(m::call(
        FIRST_FREE_QUESTION + 2,
        m::Target::Answer(FIRST_FREE_QUESTION, Some(0)),
        m::subscription_id(),
        0,
        m::no_params(),
        &[],
    ));
    frames
}

/// Writes `plan` on the connection's (first) bidirectional stream and reads what comes back
/// until the edge ends the stream or `limit` passes. Returns the send half (dropping it would
/// finish the stream, so the caller keeps it until the case is classified) and whether the
/// edge ended the stream.
async fn play_stream(
    connection: &quinn::Connection,
    plan: &StreamPlan,
    limit: Duration,
) -> (Option<quinn::SendStream>, bool) {
    let Ok(Ok((mut send, mut recv))) =
        tokio::time::timeout(OPEN_TIMEOUT, connection.open_bi()).await
    else {
        return (None, false);
    };
    let write = async {
        for chunk in &plan.chunks {
            if send.write_all(chunk).await.is_err() {
                return;
            }
        }
        if plan.finish {
            let _ = send.finish();
        }
    };
    let read = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(Some(_)) = recv.read(&mut buf).await {}
    };
    let ended = tokio::time::timeout(limit, futures::future::join(write, read))
        .await
        .is_ok();
    (Some(send), ended)
}

/// Opens up to 32 bidirectional streams at once, each written with a login script or random
/// bytes; the edge grants credit for one. Returns whether to wait for the edge to close.
async fn many_streams(
    connection: &quinn::Connection,
    token: &str,
    rng: &mut ChaCha8Rng,
    counts: &FuzzCounts,
) -> bool {
    let wanted = rng.gen_range(2..=32usize);
    let payloads: Vec<Vec<u8>> = (0..wanted)
        .map(|_| {
            if rng.gen_bool(0.5) {
                m::login_script(token).concat()
            } else {
                m::random_bytes(rng, 1..512)
            }
        })
        .collect();
    let bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    counts.sent(FuzzKind::ManyStreams, wanted as u64, bytes);
    let opens = payloads.into_iter().map(|payload| async move {
        let opened = tokio::time::timeout(EXTRA_STREAM_WAIT, connection.open_bi()).await;
        let Ok(Ok((mut send, recv))) = opened else {
            return false;
        };
        let _ = tokio::time::timeout(EXTRA_STREAM_WAIT, send.write_all(&payload)).await;
        let _ = send.finish();
        drop(recv);
        true
    });
    let opened = futures::future::join_all(opens)
        .await
        .into_iter()
        .filter(|o| *o)
        .count() as u64;
    counts
        .extra_bidi_opened
        .fetch_add(opened.saturating_sub(1), Ordering::Relaxed);
    true
}

/// Tries unidirectional streams with random bytes (the edge grants none, so they wait for
/// credit until the short timeout). Returns whether to wait for the edge to close.
async fn uni_streams(
    connection: &quinn::Connection,
    rng: &mut ChaCha8Rng,
    counts: &FuzzCounts,
) -> bool {
    let wanted = rng.gen_range(1..=8u64);
    for _ in 0..wanted {
        let payload = m::random_bytes(rng, 1..1024);
        counts.sent(FuzzKind::UniStreams, 1, payload.len() as u64);
        let Ok(Ok(mut send)) = tokio::time::timeout(EXTRA_STREAM_WAIT, connection.open_uni()).await
        else {
            continue;
        };
        counts.uni_opened.fetch_add(1, Ordering::Relaxed);
        let _ = tokio::time::timeout(EXTRA_STREAM_WAIT, send.write_all(&payload)).await;
        let _ = send.finish();
    }
    false
}

/// Sends up to 64 random datagrams (when the edge allows datagrams). Returns whether to wait
/// for the edge to close.
fn datagrams(connection: &quinn::Connection, rng: &mut ChaCha8Rng, counts: &FuzzCounts) -> bool {
    let Some(max) = connection.max_datagram_size() else {
        counts.datagrams_unsupported.fetch_add(1, Ordering::Relaxed);
        return false;
    };
    for _ in 0..rng.gen_range(1..=64) {
        let payload = m::random_bytes(rng, 0..max.max(1));
        let len = payload.len() as u64;
        if connection.send_datagram(payload.into()).is_ok() {
            counts.sent(FuzzKind::Datagrams, 1, len);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_names_and_indices() {
        let names: std::collections::BTreeSet<_> = FuzzKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), FuzzKind::ALL.len());
        for (i, kind) in FuzzKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    #[test]
    fn stream_plans_are_reproducible() {
        for kind in FuzzKind::ALL {
            let plan = |seed| {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                stream_plan(kind, "1.2.ab", &mut rng).chunks
            };
            assert_eq!(plan(9), plan(9), "{}", kind.name());
        }
    }
}
