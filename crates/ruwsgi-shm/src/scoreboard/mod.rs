//! The per-worker scoreboard.
//!
//! One header (master pid, generation) followed by one cache-line-aligned [`WorkerSlot`]
//! per worker, so two workers updating their counters never share a cache line. Writers use
//! `Relaxed` for counters and `Release` for the fields a reader pairs with another (pid,
//! request start); readers use `Acquire` there. Each slot has a single writer at a time: its
//! worker while it runs, the master between the worker's exit and its respawn.
//! `total_requests` is the sum of every slot's `requests` (each survives respawns), which
//! keeps the per-request path to the worker's own slot. After the hot counters, on lines of
//! its own, each slot holds the worker's app table (`apps`: up to [`MAX_APPS`] apps with
//! their counters), so every process sees every worker's apps. The layout is a
//! [`Region<Header, WorkerSlot>`](crate::Region); this module has no unsafe code.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::Arc;

use crate::impl_shm;
use crate::region::Region;

mod apps;
mod cores;
mod counters;

use apps::AppTable;
pub use apps::{AppInfo, AppSnapshot, Writers, MAX_APPS, MAX_MOUNTPOINT};
pub use cores::{user_deadlines_used, CoreSlot, CoreSnapshot, Due, WHAT_BYTES};
use counters::Latency;
pub use counters::{LATENCY_BOUNDS_US, LATENCY_BUCKETS};

/// What a worker is doing, as the stats show it ([`WorkerStatus::as_str`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum WorkerStatus {
    /// Not running (before the first spawn, between death and respawn). Zeroed memory.
    #[default]
    Dead = 0,
    /// Running, no request in progress.
    Idle = 1,
    /// Serving at least one request.
    Busy = 2,
    /// Asked to stop; finishing its in-flight requests.
    Stopping = 3,
    /// Running a signal handler.
    Signal = 4,
    /// Paused (`SIGTSTP`).
    Paused = 5,
}

impl WorkerStatus {
    fn from_u8(v: u8) -> WorkerStatus {
        match v {
            1 => WorkerStatus::Idle,
            2 => WorkerStatus::Busy,
            3 => WorkerStatus::Stopping,
            4 => WorkerStatus::Signal,
            5 => WorkerStatus::Paused,
            _ => WorkerStatus::Dead,
        }
    }

    /// The word uWSGI's stats use (`idle`, `busy`, `sig`, `pause`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Dead => "dead",
            WorkerStatus::Idle => "idle",
            WorkerStatus::Busy => "busy",
            WorkerStatus::Stopping => "stopping",
            WorkerStatus::Signal => "sig",
            WorkerStatus::Paused => "pause",
        }
    }
}

impl std::fmt::Display for WorkerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[repr(C, align(128))]
struct Header {
    /// Written by the master at start (and after a re-exec, same pid).
    master_pid: AtomicI32,
    /// Reload generation, written by the master.
    generation: AtomicU64,
}
impl_shm!(ShmSafe for Header { master_pid, generation });

/// One worker's counters in shared memory. Every method but the app table's publish and read
/// is a handful of atomic operations.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct WorkerSlot {
    pid: AtomicI32,
    status: AtomicU8,
    accepting: AtomicU8,
    /// Number of spawns into this slot; `respawn_count` = spawns - 1.
    spawns: AtomicU64,
    requests: AtomicU64,
    delta_requests: AtomicU64,
    exceptions: AtomicU64,
    running_time_us: AtomicU64,
    last_spawn: AtomicU64,
    tx: AtomicU64,
    avg_rt_us: AtomicU64,
    /// Microseconds since the epoch when the current request started; 0 when idle.
    request_start_us: AtomicU64,
    /// Unix time (seconds) after which the master kills the worker; 0 = none.
    harakiri_deadline: AtomicU64,
    rss: AtomicU64,
    vsz: AtomicU64,
    /// The worker's apps; written by the worker (publish, per-app counters), starting on the
    /// cache line after the fields above so they keep their line to themselves.
    apps: AppTable,
    /// Requests killed by harakiri in this slot (after the app table, off the hot line;
    /// bumped by the master when it kills one).
    harakiri_count: AtomicU64,
    /// uWSGI signals this slot's processes handled (off the hot line too).
    signals: AtomicU64,
    /// Request durations, bucketed ([`LATENCY_BOUNDS_US`]); bumped with `requests`.
    latency: Latency,
}
impl_shm!(ShmSafe for WorkerSlot {
    pid, status, accepting, spawns, requests, delta_requests, exceptions, running_time_us,
    last_spawn, tx, avg_rt_us, request_start_us, harakiri_deadline, rss, vsz, apps,
    harakiri_count, signals, latency,
});

impl WorkerSlot {
    /// A new process took this slot (called in the child right after fork): pid,
    /// `last_spawn`, respawn count (from the second spawn on), `delta_requests` = 0, idle,
    /// and no apps until it publishes its own.
    pub fn spawned(&self, pid: i32, now_unix: u64) {
        self.apps.clear();
        self.spawns.fetch_add(1, Relaxed);
        self.delta_requests.store(0, Relaxed);
        self.request_start_us.store(0, Relaxed);
        self.harakiri_deadline.store(0, Relaxed);
        self.accepting.store(0, Relaxed);
        self.last_spawn.store(now_unix, Relaxed);
        self.status.store(WorkerStatus::Idle as u8, Relaxed);
        self.pid.store(pid, Release);
    }

    /// A request started (`now_us`: microseconds since the epoch).
    pub fn request_started(&self, now_us: u64) {
        self.status.store(WorkerStatus::Busy as u8, Relaxed);
        self.request_start_us.store(now_us.max(1), Release);
    }

    /// A request finished: counters, running time, bytes sent, `avg_rt = (avg + last) / 2`,
    /// back to idle.
    pub fn request_finished(&self, elapsed_us: u64, tx_bytes: u64, exception: bool) {
        self.requests.fetch_add(1, Relaxed);
        self.delta_requests.fetch_add(1, Relaxed);
        if exception {
            self.exceptions.fetch_add(1, Relaxed);
        }
        self.running_time_us.fetch_add(elapsed_us, Relaxed);
        self.tx.fetch_add(tx_bytes, Relaxed);
        let avg = self.avg_rt_us.load(Relaxed);
        let avg = if avg == 0 {
            elapsed_us
        } else {
            // The mean of the two without overflowing on absurd durations.
            avg / 2 + elapsed_us / 2 + (avg & elapsed_us & 1)
        };
        self.avg_rt_us.store(avg, Relaxed);
        self.latency.observe(elapsed_us);
        self.request_start_us.store(0, Release);
        self.status.store(WorkerStatus::Idle as u8, Relaxed);
    }

    /// Per-bucket request counts by duration ([`LATENCY_BOUNDS_US`], the overflow bucket
    /// last; not cumulative), since the instance started.
    pub fn latency_buckets(&self) -> [u64; LATENCY_BUCKETS] {
        self.latency.read()
    }

    /// A request of this worker was killed by harakiri.
    pub fn count_harakiri(&self) {
        self.harakiri_count.fetch_add(1, Relaxed);
    }

    /// The process ran the handler of a uWSGI signal.
    pub fn count_signal(&self) {
        self.signals.fetch_add(1, Relaxed);
    }

    /// uWSGI signals handled in this slot since the instance started.
    pub fn signals(&self) -> u64 {
        self.signals.load(Relaxed)
    }

    /// Requests killed by harakiri in this slot since the instance started.
    pub fn harakiri_count(&self) -> u64 {
        self.harakiri_count.load(Relaxed)
    }

    /// The process is gone (called by the master when it reaps it).
    pub fn exited(&self) {
        self.rss.store(0, Relaxed);
        self.vsz.store(0, Relaxed);
        self.accepting.store(0, Relaxed);
        self.request_start_us.store(0, Relaxed);
        self.harakiri_deadline.store(0, Relaxed);
        self.status.store(WorkerStatus::Dead as u8, Relaxed);
        self.pid.store(0, Release);
    }

    /// The worker is (or stops) accepting connections.
    pub fn set_accepting(&self, accepting: bool) {
        self.accepting.store(u8::from(accepting), Release);
    }
    /// True while the worker accepts connections.
    pub fn accepting(&self) -> bool {
        self.accepting.load(Acquire) != 0
    }
    /// Set the status (e.g. `Stopping` on a graceful stop, `Signal` around a handler).
    pub fn set_status(&self, status: WorkerStatus) {
        self.status.store(status as u8, Relaxed);
    }
    /// Current status.
    pub fn status(&self) -> WorkerStatus {
        WorkerStatus::from_u8(self.status.load(Relaxed))
    }
    /// Current pid, 0 when not running.
    pub fn pid(&self) -> i32 {
        self.pid.load(Acquire)
    }
    /// Requests since the instance started (survives respawns).
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
    /// Requests since the current process was spawned.
    pub fn delta_requests(&self) -> u64 {
        self.delta_requests.load(Relaxed)
    }
    /// Unhandled app exceptions.
    pub fn exceptions(&self) -> u64 {
        self.exceptions.load(Relaxed)
    }
    /// Microseconds spent in requests.
    pub fn running_time_us(&self) -> u64 {
        self.running_time_us.load(Relaxed)
    }
    /// Unix time of the last spawn.
    pub fn last_spawn(&self) -> u64 {
        self.last_spawn.load(Relaxed)
    }
    /// Spawns minus one.
    pub fn respawn_count(&self) -> u64 {
        self.spawns.load(Relaxed).saturating_sub(1)
    }
    /// Bytes sent.
    pub fn tx(&self) -> u64 {
        self.tx.load(Relaxed)
    }
    /// Running average request time in microseconds.
    pub fn avg_rt_us(&self) -> u64 {
        self.avg_rt_us.load(Relaxed)
    }
    /// Start of the current request (µs since the epoch), 0 when idle.
    pub fn request_start_us(&self) -> u64 {
        self.request_start_us.load(Acquire)
    }
    /// Harakiri deadline (unix seconds), 0 = none.
    pub fn harakiri_deadline(&self) -> u64 {
        self.harakiri_deadline.load(Acquire)
    }
    /// Set (or clear with 0) the harakiri deadline.
    pub fn set_harakiri_deadline(&self, unix: u64) {
        self.harakiri_deadline.store(unix, Release);
    }
    /// Resident set size in bytes, as last sampled.
    pub fn rss(&self) -> u64 {
        self.rss.load(Relaxed)
    }
    /// Virtual size in bytes, as last sampled.
    pub fn vsz(&self) -> u64 {
        self.vsz.load(Relaxed)
    }
    /// Record a memory sample.
    pub fn set_memory(&self, rss: u64, vsz: u64) {
        self.rss.store(rss, Relaxed);
        self.vsz.store(vsz, Relaxed);
    }

    /// Publish this worker's apps, in id order (the first [`MAX_APPS`]), with their counters
    /// at zero; returns how many were published. Called by the plugin in the worker process
    /// before it serves, once per process life: a reader overlapping it retries.
    pub fn publish_apps(&self, apps: &[AppInfo<'_>]) -> usize {
        self.apps.publish(apps)
    }

    /// A request was routed to app `app` (its index in the published list; ignored past
    /// [`MAX_APPS`]). `writers` says whether other threads of this worker bump too.
    pub fn count_app_request(&self, app: usize, writers: Writers) {
        self.apps.request(app, writers);
    }

    /// A request of app `app` ended in an exception; as [`Self::count_app_request`].
    pub fn count_app_exception(&self, app: usize, writers: Writers) {
        self.apps.exception(app, writers);
    }

    /// The worker's published apps with their counters (allocates only when it has some).
    pub fn apps(&self) -> Vec<AppSnapshot> {
        self.apps.read()
    }

    /// A plain copy of the counters.
    pub fn snapshot(&self, id: u32) -> WorkerSnapshot {
        WorkerSnapshot {
            id,
            pid: self.pid(),
            requests: self.requests(),
            delta_requests: self.delta_requests(),
            exceptions: self.exceptions(),
            status: self.status(),
            accepting: self.accepting(),
            rss: self.rss(),
            vsz: self.vsz(),
            running_time: self.running_time_us(),
            last_spawn: self.last_spawn(),
            respawn_count: self.respawn_count(),
            tx: self.tx(),
            avg_rt: self.avg_rt_us(),
            request_start_us: self.request_start_us(),
            harakiri_count: self.harakiri_count(),
            signals: self.signals(),
            apps: self.apps(),
        }
    }
}

/// One worker's counters, copied out: what the stats, the plugin host
/// (`ruwsgi_plugin::Host::workers`) and `uwsgi.workers()` show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// 1-based id.
    pub id: u32,
    /// Current pid (0 while not running).
    pub pid: i32,
    /// Requests since the instance started.
    pub requests: u64,
    /// Requests since this process was spawned.
    pub delta_requests: u64,
    /// Unhandled app exceptions.
    pub exceptions: u64,
    /// What it is doing; [`WorkerStatus::as_str`] gives the stats word (`idle`, `busy`, ...).
    pub status: WorkerStatus,
    /// Accepting connections.
    pub accepting: bool,
    /// Resident set size in bytes.
    pub rss: u64,
    /// Virtual size in bytes.
    pub vsz: u64,
    /// Microseconds spent in requests.
    pub running_time: u64,
    /// Unix time of the last spawn.
    pub last_spawn: u64,
    /// Spawns minus one.
    pub respawn_count: u64,
    /// Bytes sent.
    pub tx: u64,
    /// Average request time in microseconds.
    pub avg_rt: u64,
    /// Start of the current request (µs since the epoch), 0 when idle.
    pub request_start_us: u64,
    /// Requests killed by harakiri.
    pub harakiri_count: u64,
    /// uWSGI signals handled.
    pub signals: u64,
    /// The worker's published apps, in id order, with their counters; empty (no
    /// allocation) until the worker publishes, and for plugins without apps.
    pub apps: Vec<AppSnapshot>,
}

/// The scoreboard's layout: the header, then one slot per worker.
type Board = Region<Header, WorkerSlot>;

#[repr(C, align(128))]
struct CoresHeader {
    /// Rows per worker.
    per_worker: AtomicU64,
}
impl_shm!(ShmSafe for CoresHeader { per_worker });

type CoreBoard = Region<CoresHeader, CoreSlot>;

/// The instance's scoreboard: a cheap, `Send + Sync` handle (an `Arc` of the regions).
#[derive(Clone)]
pub struct Scoreboard {
    region: Arc<Board>,
    /// `cores_per_worker` rows per worker ([`cores`]).
    cores: Arc<CoreBoard>,
}

impl std::fmt::Debug for Scoreboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoreboard")
            .field("workers", &self.workers())
            .field("master_pid", &self.master_pid())
            .finish()
    }
}

impl Scoreboard {
    /// Map a shared scoreboard for `workers` single-core workers (before the first fork).
    pub fn new(workers: usize) -> io::Result<Scoreboard> {
        Self::with_cores(workers, 1)
    }

    /// Map a shared scoreboard for `workers` workers of `cores` request cores each.
    pub fn with_cores(workers: usize, cores: usize) -> io::Result<Scoreboard> {
        let cores = cores.max(1);
        let rows = workers
            .checked_mul(cores)
            .ok_or(io::ErrorKind::InvalidInput)?;
        let board = Scoreboard {
            region: Arc::new(Board::map(workers)?),
            cores: Arc::new(CoreBoard::map(rows)?),
        };
        board.cores.header().per_worker.store(cores as u64, Relaxed);
        Ok(board)
    }

    /// A scoreboard on the heap, not shared across fork (tests). Panics only if `workers`
    /// slots overflow the address space.
    pub fn on_heap(workers: usize) -> Scoreboard {
        Self::on_heap_with_cores(workers, 1)
    }

    /// The same with `cores` request cores per worker.
    pub fn on_heap_with_cores(workers: usize, cores: usize) -> Scoreboard {
        let cores = cores.max(1);
        let region = Board::on_heap(workers)
            .unwrap_or_else(|e| panic!("scoreboard of {workers} workers: {e}"));
        let rows = CoreBoard::on_heap(workers * cores)
            .unwrap_or_else(|e| panic!("core rows of {workers} x {cores}: {e}"));
        rows.header().per_worker.store(cores as u64, Relaxed);
        Scoreboard {
            region: Arc::new(region),
            cores: Arc::new(rows),
        }
    }

    /// Request cores per worker.
    pub fn cores_per_worker(&self) -> usize {
        self.cores.header().per_worker.load(Relaxed) as usize
    }

    /// The rows of worker `id`'s cores (empty if there is no such worker).
    pub fn cores_of(&self, id: u32) -> &[CoreSlot] {
        let per = self.cores_per_worker();
        match usize::try_from(id).ok().and_then(|i| i.checked_sub(1)) {
            Some(i) if i < self.workers() => &self.cores.items()[i * per..(i + 1) * per],
            _ => &[],
        }
    }

    /// Worker `id`'s cores' counters, in core order (empty if there is no such worker).
    pub fn core_snapshots(&self, id: u32) -> Vec<CoreSnapshot> {
        self.cores_of(id)
            .iter()
            .enumerate()
            .map(|(i, c)| c.snapshot(i))
            .collect()
    }

    /// Worker `id`'s core `core` row, if it exists.
    pub fn core(&self, id: u32, core: usize) -> Option<&CoreSlot> {
        self.cores_of(id).get(core)
    }

    /// Number of worker slots.
    pub fn workers(&self) -> usize {
        self.region.items().len()
    }

    /// Worker `id`'s slot (1-based). Panics when `id` is 0 or above [`Self::workers`].
    pub fn worker(&self, id: u32) -> &WorkerSlot {
        self.get(id)
            .unwrap_or_else(|| panic!("worker id {id} out of 1..={}", self.workers()))
    }

    /// Worker `id`'s slot, if it exists.
    pub fn get(&self, id: u32) -> Option<&WorkerSlot> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.region.items().get(index)
    }

    /// Record the master's pid.
    pub fn set_master_pid(&self, pid: i32) {
        self.region.header().master_pid.store(pid, Release);
    }
    /// The master's pid (0 before it is recorded).
    pub fn master_pid(&self) -> i32 {
        self.region.header().master_pid.load(Acquire)
    }
    /// Record the reload generation.
    pub fn set_generation(&self, generation: u64) {
        self.region.header().generation.store(generation, Release);
    }
    /// The reload generation.
    pub fn generation(&self) -> u64 {
        self.region.header().generation.load(Acquire)
    }

    /// Requests completed by all workers since the instance started.
    pub fn total_requests(&self) -> u64 {
        self.region.items().iter().map(WorkerSlot::requests).sum()
    }

    /// Every worker's counters, in id order.
    pub fn snapshot(&self) -> Vec<WorkerSnapshot> {
        (1..)
            .zip(self.region.items().iter())
            .map(|(id, slot)| slot.snapshot(id))
            .collect()
    }
}

#[cfg(test)]
mod tests;
