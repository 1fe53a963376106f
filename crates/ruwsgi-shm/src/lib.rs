//! Shared-memory state of a ruwsgi instance, laid out over regions from `ruwsgi-sys`.
//!
//! The master creates each region before the first fork; every child inherits the mapping,
//! so counters written by a worker are read by the master (harakiri, stats) and by every
//! other process (`uwsgi.workers()`). A region is a typed view ([`Region`]) whose content
//! types promise, through [`ShmSafe`], that all-zero bytes are valid and that concurrent use
//! from several processes is sound: atomics, or process-shared robust locks with the plain
//! data they guard. Only [`region`] turns memory into references; the rest is safe Rust.
//!
//! # Layout
//! - [`region`]: [`Region`] (a header plus an array over one region), [`ShmSafe`],
//!   [`ShmPlain`], [`impl_shm!`] and [`RegionError`].
//! - [`lock`]: [`RobustMutex`] and [`ShmMutex`], locks that survive the death of a holder.
//! - [`scoreboard`]: [`Scoreboard`] (header + one [`WorkerSlot`] per worker, each with its
//!   table of up to [`MAX_APPS`] apps) and [`WorkerSnapshot`] / [`AppSnapshot`], the plain
//!   copies the stats and the plugin host read.
//! - [`shared_area`]: [`SharedArea`], the raw memory of `sharedarea` (`uwsgi.sharedarea_*`).
//! - [`user_locks`]: [`UserLocks`], the numbered locks of `locks N` (`uwsgi.lock(n)`).

pub mod lock;
pub mod region;
pub mod scoreboard;
pub mod shared_area;
pub mod user_locks;

pub use lock::{LockError, RobustGuard, RobustMutex, ShmGuard, ShmMutex};
pub use region::{Region, RegionError, ShmPlain, ShmSafe};
pub use scoreboard::{
    user_deadlines_used, AppInfo, AppSnapshot, CoreSlot, CoreSnapshot, Due, Scoreboard, WorkerSlot,
    WorkerSnapshot, WorkerStatus, Writers, LATENCY_BOUNDS_US, LATENCY_BUCKETS, MAX_APPS,
    MAX_MOUNTPOINT,
};
pub use shared_area::{AreaError, SharedArea};
pub use user_locks::{UserLockError, UserLocks};
