//! The ruwsgi master: binds the sockets, loads the apps, forks its children (workers, and
//! mules: [`ChildKind`]), supervises, reloads and stops them. Single-threaded, no async
//! runtime (forks stay safe); one `poll` loop over a [`SignalSource`], the children's
//! channels and its deadlines ([`events`]). The one other thread is the log master's, only
//! with `alarm-log` rules: it copies log lines and holds nothing a forked child needs
//! (`logmaster`).
//!
//! The binary builds a [`MasterConfig`] holding each kind's main (a [`WorkerMain`] runs the
//! worker crate in each forked worker with a [`WorkerStart`]) and a [`UnixSignals`], then
//! calls [`run`].
//!
//! # Layout
//! - [`types`]: [`MasterConfig`], [`WorkerStart`], [`Listener`], [`MasterPhase`], exit codes.
//! - [`signals`]: [`SignalSource`], [`MasterCommand`], [`UnixSignals`].
//! - [`children`]: [`ChildKind`] (worker, mule, spooler) and each kind's respawn rule.
//! - [`mule`]: [`mule::MuleStart`], [`mule::MuleMain`] and the default mule main.
//! - [`spooler`]: [`spooler::SpoolerStart`] and [`spooler::SpoolerMain`] (spooler children).
//! - [`channel`]: the command channel each child shares with the master
//!   ([`channel::request`] from a child).
//! - [`events`]: what the loop waits on: [`events::Clock`], deadlines
//!   ([`events::Timers`]) and watched fds ([`events::WatchedFds`]).
//! - [`throttle`]: the crash-loop ("forkbomb") throttle.
//! - [`procname`]: process titles ([`ProcNames`]: `auto-procname`, `procname-*`).
//! - [`reexec`]: the re-exec environment (`RUWSGI_LISTEN_FDS`, `UWSGI_RELOADS`).
//! - [`error`]: [`MasterError`] and its exit codes.
//! - `boot` ([`run`]), `bind`, `master` (the loop), `spawn` (fork + child setup), `stats`
//!   (the stats server and Prometheus endpoint, served from the loop).
//! - `alarms` (the configured alarms, what raises them, what they do) and `logmaster` (the
//!   log pipe and its thread, with `alarm-log`).
//!
//! # Signals (uWSGI 2.1 semantics, ARCHITECTURE §6)
//!
//! | master gets | meaning | workers get | then |
//! |---|---|---|---|
//! | `SIGHUP` | graceful reload | `SIGHUP` (finish in-flight requests, exit 0); `SIGKILL` after `worker-reload-mercy` | preload: re-exec `/proc/self/exe` (same pid, same sockets); `lazy-apps`: each worker respawned as it exits |
//! | `SIGTERM` | graceful stop (`die-on-term`, default) | `SIGHUP`; `SIGKILL` after min(`worker-reload-mercy`, `reload-mercy`) | vacuum, exit 0 |
//! | `SIGTERM` + `sigterm-reload` | brutal reload | `SIGTERM`; `SIGKILL` after 2 s | as `SIGHUP` |
//! | `SIGTERM` with `die-on-term` off | immediate stop | as `SIGINT` | |
//! | `SIGINT`, `SIGQUIT` | immediate stop | `SIGTERM` (exit at once, status 30); `SIGKILL` after 2 s | vacuum, exit 0 |
//! | `SIGCHLD` | reap now | | |
//!
//! Workers are expected to treat `SIGHUP` as "stop gracefully" and `SIGTERM`/`SIGINT`/
//! `SIGQUIT` as "exit now". Every worker gets `PR_SET_PDEATHSIG(SIGKILL)`, so killing the
//! master with `SIGKILL` takes the workers down and frees the ports.
//!
//! # The command channel
//!
//! Every child shares a `SOCK_SEQPACKET` socket pair with the master ([`channel`]), made
//! before its fork and closed when it is reaped. Children send
//! [`ruwsgi_proto::channel::ChildRequest`]s: reload or stop the instance (`uwsgi.reload()`,
//! `uwsgi.stop()`), or replace me (a worker at `max-requests`). A child sees end-of-file on
//! its end when the master is gone.
//!
//! # Mules
//!
//! `mules N` / `mule [FILE.py]` add mules after the workers (ids 1.., in option order). A
//! mule is stopped and replaced like a worker on reloads and stops, and respawned through
//! the throttle whenever it dies otherwise (a script returning included); see
//! [`ChildKind`] and [`mule`].
//!
//! # Spoolers
//!
//! `spooler DIR` adds `spooler-processes` spooler slots per directory after the mules. A
//! spooler runs [`crate::MasterConfig::spooler_main`]; it is respawned whenever it dies
//! (through the throttle) and at once when it recycles (exit code 17, `spooler-max-tasks`).
//! Unlike uWSGI, which `SIGKILL`s spoolers on every reload, a graceful reload or stop sends
//! `SIGHUP` and lets the running task finish (`SIGKILL` after `worker-reload-mercy`), so a
//! reload never makes a task run twice; immediate stops and brutal reloads `SIGKILL` them
//! (the interrupted task stays on disk and runs again). See [`spooler`].
//!
//! # Attached daemons
//!
//! `attach-daemon COMMAND` adds a [`ChildKind::Daemon`] slot after the mules: the child
//! execs `/bin/sh -c COMMAND` right after fork (no plugin hook, no socket), is respawned
//! through the throttle when it exits, and gets `SIGTERM` on reloads and stops.
//!
//! # Worker exit codes
//!
//! [`EXIT_RECYCLE`] (17): recycled (max-requests...), respawned at once, not a crash.
//! [`EXIT_NO_APP`] (22): with `lazy-apps` + `need-app`, stops the instance with code 22.
//! [`EXIT_STOPPED`] (30): after an immediate stop. [`EXIT_PANIC`] (70): the worker panicked.
//! Any other exit or death outside a reload/stop is a crash: logged, respawned through the
//! throttle (more than `processes` crash respawns in one second pause respawning for
//! `forkbomb-delay`). The master never exits because workers keep dying.
//!
//! # Log lines (stable: tests grep for them)
//!
//! - `ruwsgi: listening on <real addr> (<option>, fd <n>)` (also for adopted sockets)
//! - `*** WARNING: <option> ":<port>" has no host: bound to 127.0.0.1 only; write 0.0.0.0:<port> to listen on every interface ***`
//!   (also for `stats` and `stats-prometheus`)
//! - `ruwsgi: stats server enabled on <real addr> (<option>, fd <n>)` (`stats`, `stats-prometheus`)
//! - `*** WARNING: you are running ruwsgi as root without uid/gid !!! ***`
//! - `ruwsgi: master process started (pid: <pid>, generation <g>, <n> workers)` (`, <m> mules)`
//!   when there are mules)
//! - `spawned ruwsgi worker <id> (pid: <pid>, cores: <threads>)`, `spawned ruwsgi mule <id> (pid: <pid>)`,
//!   `spawned ruwsgi spooler <id> (pid: <pid>)`
//! - `Respawned ruwsgi <kind> <id> (new pid: <pid>)`
//! - `DAMN ! <kind> <id> (pid: <pid>) died, killed by signal <n> :( trying respawn ...`
//! - `DAMN ! <kind> <id> (pid: <pid>) died with exit status <n> :( trying respawn ...`
//!
//! (`<kind>` is `worker`, `mule` or `spooler`; the lines below that say `worker` say the
//! child's kind too.)
//! - `worker <id> (pid: <pid>) recycled after <n> requests`
//! - `worker <id> (pid: <pid>) stopped (exit status <n> | signal <n>) after <s> seconds`
//! - `ruwsgi: too many respawns (more than <n> in one second): forkbomb-delay, pausing respawns for <s> seconds`
//! - `ruwsgi: graceful reload requested (SIGHUP)` / `ruwsgi: brutal reload requested (SIGTERM)`
//!   / `ruwsgi: graceful reload requested (worker <id>)` (a child's `uwsgi.reload()`, over
//!   its channel; `uwsgi.stop()` logs `graceful stop requested (worker <id>)`)
//! - `ruwsgi: graceful reload requested (<origin>): exit-on-reload, stopping instead` (also
//!   `brutal`)
//! - `ruwsgi: master-as-root: the master keeps root; each child drops privileges after fork and the apps are loaded in the workers`
//! - `worker <id> (pid: <pid>) asked to be replaced: stopping it gracefully` (max-requests)
//! - `ruwsgi: dropped a bad message from worker <id>: <why>`
//! - `ruwsgi: worker <id> (pid: <pid>) did not exit in time: NO MERCY !!! (SIGKILL)`
//! - `ruwsgi: all workers gone, re-executing the master (reload <n>)`
//! - `ruwsgi: cannot re-exec as uid <uid> (probe failed: <why>): reloading the workers only`
//! - `ruwsgi: reload done, generation <g> ready`
//! - `ruwsgi: graceful stop requested (SIGTERM): waiting for workers to finish`
//! - `ruwsgi: immediate stop requested (SIGINT): killing workers`
//! - `*** no app loaded. GAME OVER ***`
//! - `ruwsgi: log master started (alarm-log): every process logs through it (stderr[, stdout])`
//! - `[ruwsgi-alarm NAME] ALARM: PREFIX MESSAGE` (a `log:PREFIX` alarm); every line of the
//!   alarm subsystem starts with `[ruwsgi-alarm` and never triggers `alarm-log` rules
//! - `goodbye to ruwsgi.`

mod alarms;
mod backlog;
mod bind;
mod boot;
pub mod channel;
pub mod children;
pub mod error;
pub mod events;
mod harakiri;
mod logmaster;
mod master;
pub mod mule;
pub mod procname;
mod recycle;
pub mod reexec;
mod routing;
pub mod signals;
mod spawn;
pub mod spooler;
mod stats;
pub mod throttle;
mod triggers;
pub mod types;

pub use boot::run;
pub use children::ChildKind;
pub use error::MasterError;
pub use procname::ProcNames;
pub use ruwsgi_shm::Scoreboard;
pub use signals::{Incoming, MasterCommand, SignalSource, UnixSignals};
pub use types::{
    current_generation, current_role, ChildStart, HostFactory, Listener, MasterConfig, MasterPhase,
    Periodic, PeriodicCause, PhaseObserver, WorkerMain, WorkerStart, EXIT_NO_APP, EXIT_PANIC,
    EXIT_RECYCLE, EXIT_STOPPED,
};
