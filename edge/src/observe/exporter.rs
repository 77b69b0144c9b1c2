//! The Prometheus exporter: one process-wide `metrics` recorder and its text exposition.
//!
//! Invariants:
//! - the recorder is installed at most once per process ([`install`] returns the same handle
//!   to every caller); before it is installed every `metrics` call is a no-op;
//! - series whose name ends in `_seconds` are histograms with [`LATENCY_BUCKETS`], the T1 batch
//!   size one with [`BATCH_BUCKETS`]; nothing is a summary, so scrapes from several servers add up;
//! - a background thread runs the exporter's upkeep every [`UPKEEP`], so histogram samples are
//!   folded into buckets even when nobody scrapes (memory stays bounded).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::metrics::{describe, T1_BATCH_INPUTS};

/// Histogram buckets of every `*_seconds` series: 100 µs to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Histogram buckets of the inputs per T1 batch.
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
];

/// How often the exporter's upkeep runs.
pub const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> Result<PrometheusHandle, String> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE.get_or_init(build).clone()
}

fn build() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(T1_BATCH_INPUTS.into()), BATCH_BUCKETS)
        })
        .map_err(|e| format!("metrics exporter: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics exporter: {e}"))?;
    describe();
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("sekai-metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP);
            upkeep.run_upkeep();
        })
        .map_err(|e| format!("metrics upkeep thread: {e}"))?;
    Ok(handle)
}
