//! Per-worker counters the stats server and the Prometheus endpoint read besides the hot
//! ones of [`super::WorkerSlot`]: the request latency histogram. (Per-core counters are in
//! the core rows, [`super::CoreSlot`].)
//!
//! Design decision: everything here is bumped on the request path, so each update is one
//! relaxed atomic add or store into the worker's own slot: no lock, no system call, no
//! shared cache line with another worker. Buckets hold plain (non-cumulative) counts; the
//! reader adds them up.

use std::sync::atomic::{AtomicU64, Ordering::*};

use crate::impl_shm;

/// Upper bounds (inclusive, microseconds) of the latency buckets; a last bucket counts
/// everything slower. 100 µs to 10 s, roughly 1-2.5-5 per decade.
pub const LATENCY_BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Number of latency buckets: one per bound plus the overflow bucket.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// The latency histogram of one worker (since the instance started: survives respawns).
#[repr(C)]
#[derive(Debug)]
pub(super) struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS],
}
impl_shm!(ShmSafe for Latency { buckets });

impl Latency {
    /// Count one request that took `us` microseconds.
    pub(super) fn observe(&self, us: u64) {
        let at = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[at].fetch_add(1, Relaxed);
    }

    /// Per-bucket counts (not cumulative), the overflow bucket last.
    pub(super) fn read(&self) -> [u64; LATENCY_BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Relaxed))
    }
}
