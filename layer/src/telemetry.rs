//! Metrics the layer records where its counters live, through the `metrics` facade.
//!
//! The layer installs no recorder: the binary does (the edge's `observe::metrics`), and without
//! one every call here is a no-op. Every series is named `sekai_*` by a constant below, and
//! [`describe`] gives each its help text.
//!
//! Invariants:
//! - labels are bounded: error codes are FoundationDB's (a fixed set), fault kinds are six, and
//!   region labels are capped at [`MAX_REGION_LABELS`] distinct regions per process, every later
//!   region sharing the label `"other"`;
//! - recording never fails and never blocks on I/O (a counter or histogram update); a region's
//!   label is looked up (one short lock) once per lease hold, by `FrameMetrics::new`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{counter, describe_counter, describe_histogram, histogram, SharedString, Unit};
use sekai_schema::RegionId;

use crate::kv::FdbError;

/// Latency of commits that wrote something and committed (embedded engine), seconds.
pub const KV_COMMIT_SECONDS: &str = "sekai_kv_commit_seconds";
/// Commits that failed, by FDB error code (`not_committed`, 1020, is a conflict).
pub const KV_COMMIT_FAILURES: &str = "sekai_kv_commit_failures_total";
/// Retries through `on_error`, by FDB error code.
pub const KV_RETRIES: &str = "sekai_kv_retries_total";
/// Transactions with writes the embedded engine committed.
pub const KV_COMMITS: &str = "sekai_kv_commits_total";
/// Durable group writes of the embedded engine (one fsync each).
pub const KV_FSYNCS: &str = "sekai_kv_fsyncs_total";
/// Duration of the embedded engine's durable write of one commit group (journal append, fsync,
/// memtable inserts), seconds: every commit of the group waited for it.
pub const KV_GROUP_WRITE_SECONDS: &str = "sekai_kv_group_write_seconds";
/// Faults the embedded engine injected, by kind.
pub const KV_FAULTS: &str = "sekai_kv_faults_injected_total";
/// Frames (T2) committed, by region.
pub const FRAMES: &str = "sekai_frames_total";
/// Inputs applied by frames, by region.
pub const FRAME_INPUTS: &str = "sekai_frame_inputs_total";
/// Inputs the rules rejected, by region.
pub const FRAME_REJECTED: &str = "sekai_frame_rejected_total";
/// Frame attempts that failed and were retried, by region.
pub const FRAME_RETRIES: &str = "sekai_frame_retries_total";
/// Duration of the frame attempt that committed, from its start to its commit, seconds.
pub const FRAME_SECONDS: &str = "sekai_frame_seconds";

/// The most distinct regions that get their own label value in one process.
pub const MAX_REGION_LABELS: usize = 256;

/// The label value of regions past [`MAX_REGION_LABELS`].
pub const OTHER_REGION: &str = "other";

/// Registers the help text and unit of every layer series with the installed recorder.
pub fn describe() {
    describe_histogram!(
        KV_COMMIT_SECONDS,
        Unit::Seconds,
        "Latency of embedded-engine commits that wrote something and committed"
    );
    describe_counter!(
        KV_COMMIT_FAILURES,
        "Commits that failed, by FDB error code (1020 not_committed is a conflict)"
    );
    describe_counter!(
        KV_RETRIES,
        "Transaction retries through on_error, by FDB error code"
    );
    describe_counter!(
        KV_COMMITS,
        "Transactions with writes the embedded engine committed"
    );
    describe_counter!(
        KV_FSYNCS,
        "Durable group writes (one fsync each) of the embedded engine"
    );
    describe_histogram!(
        KV_GROUP_WRITE_SECONDS,
        Unit::Seconds,
        "Duration of the embedded engine's durable write of one commit group (journal append, fsync, memtable inserts)"
    );
    describe_counter!(KV_FAULTS, "Faults the embedded engine injected, by kind");
    describe_counter!(FRAMES, "Frames (T2) committed, by region");
    describe_counter!(FRAME_INPUTS, "Inputs applied by frames, by region");
    describe_counter!(FRAME_REJECTED, "Inputs the rules rejected, by region");
    describe_counter!(
        FRAME_RETRIES,
        "Frame attempts that failed and were retried, by region"
    );
    describe_histogram!(
        FRAME_SECONDS,
        Unit::Seconds,
        "Duration of the committed frame attempt, from its start to its commit"
    );
}

/// The label value of `region`: `"x,z"` for the first [`MAX_REGION_LABELS`] regions this process
/// labels, [`OTHER_REGION`] after.
pub fn region_label(region: RegionId) -> String {
    static LABELS: OnceLock<Mutex<HashMap<RegionId, String>>> = OnceLock::new();
    let mut labels = LABELS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(label) = labels.get(&region) {
        return label.clone();
    }
    if labels.len() >= MAX_REGION_LABELS {
        return OTHER_REGION.to_string();
    }
    let label = format!("{},{}", region.x, region.z);
    labels.insert(region, label.clone());
    label
}

/// The labels of an FDB error: its code and name.
fn error_labels(error: FdbError) -> [(&'static str, String); 2] {
    [
        ("code", error.code().to_string()),
        ("name", error.name().to_string()),
    ]
}

/// A commit with writes ended: its latency when it committed, its error code when not.
pub(crate) fn commit_finished(elapsed: Duration, outcome: Result<(), FdbError>) {
    match outcome {
        Ok(()) => histogram!(KV_COMMIT_SECONDS).record(elapsed.as_secs_f64()),
        Err(error) => commit_failed(error),
    }
}

/// A commit failed before or without reaching the committer.
pub(crate) fn commit_failed(error: FdbError) {
    counter!(KV_COMMIT_FAILURES, &error_labels(error)).increment(1);
}

/// A transaction is retried after `error`.
pub(crate) fn retried(error: FdbError) {
    counter!(KV_RETRIES, &error_labels(error)).increment(1);
}

/// The embedded engine made one group of `commits` transactions durable with one fsync.
pub(crate) fn group_written(commits: u64) {
    counter!(KV_COMMITS).increment(commits);
    counter!(KV_FSYNCS).increment(1);
}

/// The embedded engine wrote one commit group durably in `took`.
pub(crate) fn group_write_took(took: Duration) {
    histogram!(KV_GROUP_WRITE_SECONDS).record(took.as_secs_f64());
}

/// The embedded engine injected a fault of `kind`.
pub(crate) fn fault_injected(kind: &'static str) {
    counter!(KV_FAULTS, "kind" => kind).increment(1);
}

/// The label of one region's frame metrics, built once, when its processor takes the lease: a
/// frame then records without looking up and copying its region's label (a lock, a map lookup
/// and a string per frame). The series are looked up by the recorder at each record, so a
/// recorder installed after the lease was taken still sees every frame.
#[derive(Clone, Debug)]
pub(crate) struct FrameMetrics {
    label: [(&'static str, SharedString); 1],
}

impl FrameMetrics {
    /// The metrics of `region`'s frames (labelled by [`region_label`]).
    pub(crate) fn new(region: RegionId) -> Self {
        let label = SharedString::from_shared(Arc::<str>::from(region_label(region)));
        Self {
            label: [("region", label)],
        }
    }

    /// A frame committed `inputs` inputs (`rejected` of them rejected by the rules), its
    /// attempt having taken `elapsed`.
    pub(crate) fn committed(&self, inputs: u64, rejected: u64, elapsed: Duration) {
        counter!(FRAMES, &self.label).increment(1);
        counter!(FRAME_INPUTS, &self.label).increment(inputs);
        counter!(FRAME_REJECTED, &self.label).increment(rejected);
        histogram!(FRAME_SECONDS).record(elapsed.as_secs_f64());
    }

    /// A frame attempt failed and is retried.
    pub(crate) fn retried(&self) {
        counter!(FRAME_RETRIES, &self.label).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_labels_are_bounded() {
        // Other tests of this process may have labelled regions too: count from here.
        let first = region_label(RegionId::new(-7_000, 3));
        assert_eq!(first, "-7000,3");
        assert_eq!(region_label(RegionId::new(-7_000, 3)), first);
        let labels: std::collections::HashSet<String> = (0..2 * MAX_REGION_LABELS as i32)
            .map(|i| region_label(RegionId::new(9_000 + i, 0)))
            .collect();
        assert!(labels.contains(OTHER_REGION));
        assert!(labels.len() <= MAX_REGION_LABELS + 1);
    }
}
