//! Shared-memory state of a ruwsgi instance, laid out over a region from `ruwsgi-sys`.
//!
//! The master creates each region before the first fork; every child inherits the mapping,
//! so counters written by a worker are read by the master (harakiri, stats) and by every
//! other process (`uwsgi.workers()`). All fields are atomics: no locks, no syscalls on the
//! per-request paths, and an all-zero region is a valid initial state.
//!
//! # Layout
//! - [`scoreboard`]: [`Scoreboard`] (header + one [`WorkerSlot`] per worker) and
//!   [`WorkerSnapshot`], the plain copy the stats and the plugin host read.

pub mod scoreboard;

pub use scoreboard::{Scoreboard, WorkerSlot, WorkerSnapshot, WorkerStatus};
