//! What the master is given and what it hands each worker.
//!
//! The binary builds a [`MasterConfig`] and a [`WorkerMain`]; the master passes every forked
//! worker a [`WorkerStart`] that owns its copies of the listening sockets. Exit codes a
//! worker returns are interpreted by the master as documented on the constants.

use std::ffi::OsString;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ruwsgi_config::{Protocol, Settings};
use ruwsgi_plugin::{Host, LanguagePlugin, ProcessRole};
use ruwsgi_shm::Scoreboard;

use crate::children::ChildKind;
use crate::events::{Clock, SystemClock};
use crate::mule::MuleMain;
use crate::spooler::SpoolerMain;

/// A worker exits with this after `max-requests` (or another recycling policy): the master
/// logs `worker N (pid: P) recycled after R requests` and respawns it at once, unthrottled.
/// (uWSGI's "reload" exit code.)
pub const EXIT_RECYCLE: i32 = 17;
/// A worker (with `lazy-apps` and `need-app`) could not load its app: the master stops the
/// whole instance and exits with this code. The master itself exits with it when preloading
/// fails under `need-app`.
pub const EXIT_NO_APP: i32 = 22;
/// What a worker returns after an immediate stop (`SIGTERM`/`SIGINT`/`SIGQUIT`).
pub const EXIT_STOPPED: i32 = 30;
/// A worker whose [`WorkerMain`] panicked exits with this.
pub const EXIT_PANIC: i32 = 70;

/// Lifecycle of the master (STYLE R3), reported to [`MasterConfig::phase_observer`].
///
/// Sequence on a normal run: `Booting, Binding, LoadingApps, Spawning, Running`, then per
/// reload `GracefulReload` followed by `Reexec` (preload; the next image starts again at
/// `Booting`) or `Running` (lazy apps / no re-exec), and at the end `Draining, Terminated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MasterPhase {
    /// Signals, logging, root checks.
    Booting,
    /// Binding (or adopting) the sockets, writing pidfiles.
    Binding,
    /// Plugin init, dropping privileges and, unless `lazy-apps`, loading the apps in the
    /// master.
    LoadingApps,
    /// Forking the first generation of workers.
    Spawning,
    /// Supervising: reaping and respawning.
    Running,
    /// Old workers are finishing their requests (graceful or brutal reload).
    GracefulReload,
    /// All workers gone; the master is about to `execve` itself.
    Reexec,
    /// Stopping: workers are finishing (graceful) or being terminated (immediate).
    Draining,
    /// Every worker is gone; `run` is about to return.
    Terminated,
}

/// A listening socket as a worker receives it.
#[derive(Debug)]
pub struct Listener {
    /// The listening socket (non-blocking; shared with every other worker).
    pub fd: OwnedFd,
    /// What it speaks.
    pub protocol: Protocol,
    /// The real bound address (`127.0.0.1:41234`, `/run/app.sock`), for logs.
    pub name: String,
    /// A unix socket (its peers are trusted like loopback).
    pub is_unix: bool,
    /// The option that configured it (`socket`, `http-socket`, ...).
    pub option: &'static str,
}

/// What every child (worker, mule) starts with, whatever its kind. Built in the forked
/// child.
pub struct ChildStart {
    /// 1-based id within its kind (`uwsgi.worker_id()`, `uwsgi.mule_id()`).
    pub id: u32,
    /// Its kind's scoreboard; this child's row is `scoreboard.worker(id)`.
    pub scoreboard: Scoreboard,
    /// The instance's settings.
    pub settings: Arc<Settings>,
    /// The language plugin (already `post_fork`ed).
    pub plugin: Arc<dyn LanguagePlugin>,
    /// Reload generation this child belongs to.
    pub generation: u64,
    /// The master's pid.
    pub master_pid: i32,
    /// This process's command channel to the master (also [`crate::channel::child_channel`]):
    /// readable at end-of-file when the master is gone; requests go the other way
    /// ([`crate::channel::request`]). `None` if it could not be created.
    pub channel: Option<BorrowedFd<'static>>,
    /// The signal framework (shared sockets, handlers), if the instance has one.
    pub signals: Option<Arc<ruwsgi_signal::Signals>>,
}

/// Everything a worker process starts with: what every child gets, plus the listeners.
pub struct WorkerStart {
    /// Identity, scoreboard, settings, plugin (apps loaded) and channel.
    pub child: ChildStart,
    /// The instance's listening sockets, owned by this process.
    pub listeners: Vec<Listener>,
}

/// How a worker process runs. The master calls it in the forked child after the parent-death
/// signal, signal reset (`SIGPIPE` ignored, everything unblocked), scoreboard `spawned`,
/// process title, `plugin.post_fork` and (with `lazy-apps`) `plugin.load_apps`. Its return
/// value is the child's exit code; the master then runs `plugin.at_exit()` and `_exit`s.
pub type WorkerMain = Box<dyn Fn(WorkerStart) -> i32>;

/// Builds the plugin's [`Host`] once the scoreboards exist (the host reads them: the
/// workers', and the mules' if there are mules), given the listening sockets' fds in
/// configuration order.
pub type HostFactory = Box<dyn FnOnce(&Scoreboard, Option<&Scoreboard>, &[RawFd]) -> Arc<dyn Host>>;

/// Receives every [`MasterPhase`] change, in the master only.
pub type PhaseObserver = Box<dyn FnMut(MasterPhase)>;

/// Why a [`Periodic`] task runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodicCause {
    /// Its period elapsed.
    Timer,
    /// The master is about to leave or re-execute itself (last chance to save state).
    Exit,
}

/// Work the master's loop runs every `every` (a cache sweep, a cache store save), and once
/// more before the master exits or re-executes. Runs in the master only, between events.
pub struct Periodic {
    /// How often.
    pub every: Duration,
    /// The work.
    pub run: Box<dyn FnMut(PeriodicCause)>,
}

/// Inputs of [`crate::run`].
pub struct MasterConfig {
    /// The instance's settings.
    pub settings: Arc<Settings>,
    /// The language plugin (created in the master before any fork).
    pub plugin: Arc<dyn LanguagePlugin>,
    /// Builds the host passed to `plugin.init`.
    pub make_host: HostFactory,
    /// What a worker child runs (required: every instance has workers).
    pub worker_main: WorkerMain,
    /// What a mule child runs (`mules`, `mule`); `None` (the default) runs
    /// [`crate::mule::default_mule_main`].
    pub mule_main: Option<MuleMain>,
    /// What a spooler child runs (`spooler DIR`); required when spoolers are configured.
    pub spooler_main: Option<SpoolerMain>,
    /// The spoolers' scoreboard (one row per spooler process), created with the spooler
    /// subsystem before the first fork; the master marks spawns and exits there.
    pub spooler_board: Option<Scoreboard>,
    /// The command line to re-exec on reload, captured before anything changed the process
    /// title (which overwrites argv). Defaults to `std::env::args_os()`.
    pub argv: Vec<OsString>,
    /// Re-exec on a graceful reload when apps are preloaded (default true). False makes a
    /// preloaded reload replace the workers only (tests, or a binary that cannot re-exec).
    pub reexec_on_reload: bool,
    /// Phase notifications (tests, stats).
    pub phase_observer: Option<PhaseObserver>,
    /// Where the master reads time for its deadlines (default [`SystemClock`]; tests give
    /// a [`crate::events::FakeClock`]).
    pub clock: Arc<dyn Clock>,
    /// Periodic work of the subsystems (none by default).
    pub periodic: Vec<Periodic>,
    /// The signal framework, created before the first fork (`None`: signals are not
    /// routed, and mules only wait for their stop).
    pub signals: Option<Arc<ruwsgi_signal::Signals>>,
}

impl MasterConfig {
    /// Defaults: the default mule main, argv from the environment, re-exec on reload, no
    /// observer, real clock.
    pub fn new(
        settings: Arc<Settings>,
        plugin: Arc<dyn LanguagePlugin>,
        make_host: HostFactory,
        worker_main: WorkerMain,
    ) -> MasterConfig {
        MasterConfig {
            settings,
            plugin,
            make_host,
            worker_main,
            mule_main: None,
            spooler_main: None,
            spooler_board: None,
            argv: std::env::args_os().collect(),
            reexec_on_reload: true,
            phase_observer: None,
            clock: Arc::new(SystemClock),
            periodic: Vec::new(),
            signals: None,
        }
    }
}

/// 0 in the master, the child's per-kind id in a child. Set once in each child right after
/// fork, with [`CHILD_KIND`].
static CHILD_ID: AtomicU32 = AtomicU32::new(0);
/// What this child is: 0 master, 1 worker, 2 mule, 3 spooler, 4 attached daemon.
static CHILD_KIND: AtomicU8 = AtomicU8::new(0);
/// Generation of this process (the master's current one, or the worker's).
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// What this process is, for a [`Host`] implementation (`ProcessRole::Master` until the
/// master marks a forked child with its kind and id, before `post_fork`).
pub fn current_role() -> ProcessRole {
    let id = CHILD_ID.load(Ordering::Relaxed);
    match CHILD_KIND.load(Ordering::Relaxed) {
        1 => ProcessRole::Worker { id },
        2 => ProcessRole::Mule { id },
        3 => ProcessRole::Spooler { id },
        _ => ProcessRole::Master,
    }
}

/// The reload generation of this process (0 on a first start, `UWSGI_RELOADS` after a
/// re-exec, +1 per workers-only reload).
pub fn current_generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

pub(crate) fn set_current_child(kind: ChildKind, id: u32) {
    let code = match kind {
        ChildKind::Worker => 1,
        ChildKind::Mule => 2,
        ChildKind::Spooler => 3,
        ChildKind::Daemon => 4,
    };
    CHILD_ID.store(id, Ordering::Relaxed);
    CHILD_KIND.store(code, Ordering::Relaxed);
}

pub(crate) fn set_current_generation(generation: u64) {
    GENERATION.store(generation, Ordering::Relaxed);
}
