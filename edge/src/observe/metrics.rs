//! The edge's `sekai_*` series: their names and help texts.
//!
//! They are recorded where their counters live (the T1 batcher, the RPC capabilities, the
//! connection loop, the fan-out, the map) through the `metrics` facade; [`describe`] registers
//! these help texts and those of the layer ([`sekai_layer::telemetry`]) and the cache.
//!
//! Invariant: every label value comes from a fixed set (refusal reasons, login outcomes), so the
//! edge adds no unbounded series; per-region series are the layer's, capped there.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Inputs clients sent (`Avatar.send` calls).
pub const INPUTS_RECEIVED: &str = "sekai_edge_inputs_received_total";
/// Inputs refused before T1, by reason.
pub const INPUTS_REFUSED: &str = "sekai_edge_inputs_refused_total";
/// Inputs acknowledged as durable.
pub const INPUTS_ACKED: &str = "sekai_edge_inputs_acked_total";
/// T1 transactions (input batches) committed.
pub const T1_COMMITS: &str = "sekai_edge_t1_commits_total";
/// Inputs stored by T1.
pub const T1_INPUTS: &str = "sekai_edge_t1_inputs_total";
/// Inputs stored directly, by the frame of a processor in this process (no T1).
pub const DIRECT_INPUTS: &str = "sekai_edge_direct_inputs_total";
/// Input stores (T1 batches, or direct batches and their T1) that failed.
pub const T1_FAILURES: &str = "sekai_edge_t1_failures_total";
/// Latency of one T1 batch, from the start of its transaction to its commit, seconds.
pub const T1_SECONDS: &str = "sekai_edge_t1_seconds";
/// Inputs per T1 batch.
pub const T1_BATCH_INPUTS: &str = "sekai_edge_t1_batch_inputs";
/// Open QUIC connections.
pub const CONNECTIONS: &str = "sekai_edge_connections";
/// Logged-in sessions.
pub const SESSIONS: &str = "sekai_edge_sessions";
/// Login attempts, by outcome (`ok`, `refused`, `failed`).
pub const LOGINS: &str = "sekai_edge_logins_total";
/// Fan-out passes completed.
pub const FANOUT_PASSES: &str = "sekai_fanout_passes_total";
/// Commits the fan-out handed to subscriptions.
pub const FANOUT_COMMITS: &str = "sekai_fanout_commits_total";
/// Fan-out passes that failed and were retried.
pub const FANOUT_FAILURES: &str = "sekai_fanout_failures_total";
/// Change-log reads of a fan-out pass, by where the entries came from: `memory` (this process's
/// processors recorded them, `world::local_log`) or `store` (read from the database).
pub const FANOUT_LOG_READS: &str = "sekai_fanout_log_reads_total";
/// Times a slow subscription's outbox coalesced its queued deltas.
pub const FANOUT_COALESCED: &str = "sekai_fanout_coalesced_total";
/// Commits handed to a subscription, once per subscription each concerned (`fanout::route`):
/// against `sekai_fanout_commits_total`, how many subscriptions a commit reaches.
pub const FANOUT_HANDED: &str = "sekai_fanout_handed_total";
/// Age of each commit when the fan-out handed it over, seconds.
pub const FANOUT_LAG_SECONDS: &str = "sekai_fanout_lag_seconds";
/// Live subscriptions (clients' areas of interest, and the map's).
pub const FANOUT_SUBSCRIPTIONS: &str = "sekai_fanout_subscriptions";
/// Regions whose heads the fan-out watches.
pub const FANOUT_REGIONS: &str = "sekai_fanout_regions";
/// Bytes of deltas queued in all outboxes after the last hand-over.
pub const FANOUT_OUTBOX_BYTES: &str = "sekai_fanout_outbox_bytes";
/// Browsers following the live map.
pub const MAP_CLIENTS: &str = "sekai_map_clients";

/// Registers the help texts of every `sekai_*` series (edge, layer, cache) with the installed
/// recorder.
pub fn describe() {
    sekai_layer::telemetry::describe();
    describe_counter!(
        sekai_cache::area::CACHE_HITS,
        "Cells an area cache served (no serve path uses the cache yet)"
    );
    describe_counter!(
        sekai_cache::area::CACHE_MISSES,
        "Cells an area cache read from the database (no serve path uses the cache yet)"
    );
    describe_counter!(INPUTS_RECEIVED, "Inputs clients sent to the edge");
    describe_counter!(INPUTS_REFUSED, "Inputs refused before T1, by reason");
    describe_counter!(INPUTS_ACKED, "Inputs acknowledged as durable");
    describe_counter!(T1_COMMITS, "T1 transactions (input batches) committed");
    describe_counter!(T1_INPUTS, "Inputs stored by T1");
    describe_counter!(
        T1_FAILURES,
        "Input stores (T1 batches or direct) that failed"
    );
    describe_counter!(
        DIRECT_INPUTS,
        "Inputs stored directly by the frame of a processor in this process (no T1)"
    );
    describe_histogram!(
        T1_SECONDS,
        Unit::Seconds,
        "Latency of one T1 batch, from its transaction's start to its commit"
    );
    describe_histogram!(T1_BATCH_INPUTS, "Inputs per T1 batch");
    describe_gauge!(CONNECTIONS, "Open QUIC connections");
    describe_gauge!(SESSIONS, "Logged-in sessions");
    describe_counter!(LOGINS, "Login attempts, by outcome");
    describe_counter!(FANOUT_PASSES, "Fan-out passes completed");
    describe_counter!(
        FANOUT_COMMITS,
        "Commits the fan-out handed to subscriptions"
    );
    describe_counter!(
        FANOUT_FAILURES,
        "Fan-out passes that failed and were retried"
    );
    describe_counter!(
        FANOUT_COALESCED,
        "Times a slow subscription's outbox coalesced its queued deltas"
    );
    describe_counter!(
        FANOUT_HANDED,
        "Commits handed to a subscription, once per subscription each concerned"
    );
    describe_histogram!(
        FANOUT_LAG_SECONDS,
        Unit::Seconds,
        "Age of each commit when the fan-out handed it over (read version minus commit \
         version, plus the pass's time since its read version)"
    );
    describe_gauge!(
        FANOUT_SUBSCRIPTIONS,
        "Live subscriptions, the map's included"
    );
    describe_counter!(
        FANOUT_LOG_READS,
        "Change-log reads of fan-out passes, by source (memory: recorded by this process's processors; store)"
    );
    describe_gauge!(FANOUT_REGIONS, "Regions whose heads the fan-out watches");
    describe_gauge!(
        FANOUT_OUTBOX_BYTES,
        Unit::Bytes,
        "Bytes of deltas queued in all outboxes after the last hand-over"
    );
    describe_gauge!(MAP_CLIENTS, "Browsers following the live map");
}
