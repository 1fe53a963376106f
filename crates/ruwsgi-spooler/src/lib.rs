//! The spooler: durable background tasks, as uWSGI's `--spooler` runs them.
//!
//! A task is a file in a spooler directory: a uwsgi packet (header modifier1 17, a vars
//! block) followed by an optional raw body ([`task`]). `uwsgi.spool()` and remote enqueue
//! packets write one atomically ([`mod@write`]: it gets its name only once complete); spooler
//! processes forked by the master scan the directory, lock one file at a time with an OFD
//! lock so no two processes run the same task, hand it to the language plugin and remove
//! it once it returned `SPOOL_OK` ([`run`]).
//!
//! # The guarantee
//!
//! Every task `spool()` accepted (returned its path) runs until it returns `SPOOL_OK`; it
//! is removed only after that, under its lock. A task runs again only if the spooler
//! running it died before removing it (SIGKILL, crash, harakiri, an immediate stop or a
//! brutal reload); a graceful reload or stop lets the current task finish first ([`run`]).
//!
//! # Layout
//! - [`task`]: the spool file format ([`Task`], [`encode`], [`parse`]).
//! - [`mod@write`]: file names and the atomic write ([`write::write_task`]).
//! - [`scan`]: which files are due ([`scan::scan`]) and the per-file lock ([`scan::TaskLock`]).
//! - [`spoolers`]: [`Spoolers`], the instance-wide handle every process inherits
//!   (`spool`, `spooler_jobs`, `spooler_pids`, the shared frequency, the wake-up).
//! - [`run`]: the spooler process loop ([`run::run`]).
//! - [`error`]: the errors, [`SpoolError`].
#![warn(missing_docs)]

pub mod error;
pub mod run;
pub mod scan;
pub mod spoolers;
pub mod task;
pub mod write;

pub use error::SpoolError;
pub use run::{SpoolerExit, SpoolerOutcome};
pub use spoolers::Spoolers;
pub use task::{encode, parse, Task, PREFIX};
