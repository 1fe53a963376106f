//! Spoolers as the master sees them: what a spooler child starts with ([`SpoolerStart`])
//! and how it runs ([`SpoolerMain`], given by the binary, which owns the spooler
//! subsystem).
//!
//! The master runs `spooler-processes` children per `spooler` directory (ids 1.., directory
//! by directory), respawns them when they die (through the throttle) or recycle
//! (`spooler-max-tasks`: exit code 17, at once), and stops them like workers on a graceful
//! reload or stop (`SIGHUP`: the task in progress finishes first, `SIGKILL` after
//! `worker-reload-mercy`); an immediate stop or a brutal reload `SIGKILL`s them. Their
//! scoreboard ([`crate::MasterConfig::spooler_board`]) is marked on spawn and on exit, and
//! its one core row per spooler carries the task's harakiri deadline (`spooler-harakiri`,
//! `set_user_harakiri`), which the master enforces like a worker's.

use crate::types::ChildStart;

/// Everything a spooler process starts with (its scoreboard is the spoolers' one).
pub struct SpoolerStart {
    /// Identity (`id`: 1-based spooler id), scoreboard, settings, plugin and channel.
    pub child: ChildStart,
}

/// How a spooler process runs; its return value is the child's exit code
/// ([`crate::EXIT_RECYCLE`] to be respawned at once).
pub type SpoolerMain = Box<dyn Fn(SpoolerStart) -> i32>;
