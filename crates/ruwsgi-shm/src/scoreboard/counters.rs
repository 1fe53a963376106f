//! Per-worker counters the stats server and the Prometheus endpoint read besides the hot
//! ones of [`super::WorkerSlot`]: the request latency histogram and the per-core table.
//!
//! Design decision: everything here is bumped on the request path, so each update is one
//! relaxed atomic add or store into the worker's own slot: no lock, no system call, no
//! shared cache line with another worker. Buckets hold plain (non-cumulative) counts; the
//! reader adds them up. A core beyond [`MAX_CORES`] is counted in the worker's totals only.

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

/// Cores per worker with their own row in the stats (`threads` beyond it are not listed).
pub const MAX_CORES: usize = 64;

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

/// One core's row: written only by the thread that runs the core.
#[repr(C)]
#[derive(Debug)]
struct CoreSlot {
    /// Requests served by this core (since the instance started).
    requests: AtomicU64,
    /// Start of the current request (µs since the epoch); 0 when idle.
    request_start_us: AtomicU64,
}
impl_shm!(ShmSafe for CoreSlot { requests, request_start_us });

/// The per-core table of one worker.
#[repr(C)]
#[derive(Debug)]
pub(super) struct CoreTable {
    cores: [CoreSlot; MAX_CORES],
}
impl_shm!(ShmSafe for CoreTable { cores });

/// One core's counters, copied out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    /// Core index (0-based).
    pub id: usize,
    /// Requests served by the core.
    pub requests: u64,
    /// Start of the request in progress (µs since the epoch), 0 when idle.
    pub request_start_us: u64,
}

impl CoreTable {
    /// Core `core` started a request at `now_us` (ignored past [`MAX_CORES`]).
    pub(super) fn started(&self, core: usize, now_us: u64) {
        if let Some(c) = self.cores.get(core) {
            c.request_start_us.store(now_us.max(1), Relaxed);
        }
    }

    /// Core `core` finished its request: a load and a store, the core being the only writer.
    pub(super) fn finished(&self, core: usize) {
        if let Some(c) = self.cores.get(core) {
            c.requests.store(c.requests.load(Relaxed) + 1, Relaxed);
            c.request_start_us.store(0, Relaxed);
        }
    }

    /// No request in progress on any core (a new process took the slot, or it died).
    pub(super) fn clear_in_request(&self) {
        for c in &self.cores {
            c.request_start_us.store(0, Relaxed);
        }
    }

    /// The first `n` cores (at most [`MAX_CORES`]).
    pub(super) fn read(&self, n: usize) -> Vec<CoreSnapshot> {
        self.cores
            .iter()
            .take(n)
            .enumerate()
            .map(|(id, c)| CoreSnapshot {
                id,
                requests: c.requests.load(Relaxed),
                request_start_us: c.request_start_us.load(Relaxed),
            })
            .collect()
    }
}
