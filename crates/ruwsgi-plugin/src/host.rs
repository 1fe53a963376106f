//! The server as a plugin sees it.
//!
//! Besides the services of [`Host`], a plugin reaches the shared scoreboard
//! ([`Host::scoreboard`]) to publish its apps in its worker's slot and count requests per app
//! there, so every process sees every worker's apps.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ruwsgi_proto::Vars;

use crate::signal::{AddError, Caller, CronSpec, RemoteError, SignalError, SignalHandler, Signals};

pub use ruwsgi_cache::client::{parse_identifier, CacheClient, Target};
pub use ruwsgi_cache::{CacheBackend, CacheError, Caches, Item, MathOp};
pub use ruwsgi_rpc::{RegisterError, Rpc, RpcFunction};
pub use ruwsgi_shm::{
    AppInfo, AppSnapshot, AreaError, Scoreboard, SharedArea, UserLockError, UserLocks, WorkerSlot,
    WorkerSnapshot, WorkerStatus, Writers, MAX_APPS,
};
pub use ruwsgi_spooler::{SpoolError, SpoolerOutcome, Spoolers, Task};

/// Which kind of process is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessRole {
    /// The master (also where preloaded apps are imported).
    Master,
    /// Worker `id` (1..=processes).
    Worker {
        /// 1-based worker id.
        id: u32,
    },
    /// Mule `id` (1..=mules): a process for background work, outside the request path.
    Mule {
        /// 1-based mule id.
        id: u32,
    },
    /// Spooler `id` (1..=spooler processes): runs spooled tasks.
    Spooler {
        /// 1-based spooler id.
        id: u32,
    },
}

/// Services the server offers every plugin, in every process.
///
/// Implemented by the binary over the shared scoreboard; one instance lives for the whole
/// process and is shared by all cores.
pub trait Host: Send + Sync {
    /// The master's pid.
    fn masterpid(&self) -> i32;
    /// What this process is.
    fn role(&self) -> ProcessRole;
    /// The listening sockets' fds in configuration order (`uwsgi.sockets`); the same
    /// numbers in the master and in every worker.
    fn socket_fds(&self) -> Vec<i32> {
        Vec::new()
    }
    /// 1..N in workers, 0 elsewhere.
    fn worker_id(&self) -> u32 {
        match self.role() {
            ProcessRole::Worker { id } => id,
            _ => 0,
        }
    }
    /// 1..M in mules, 0 elsewhere.
    fn mule_id(&self) -> u32 {
        match self.role() {
            ProcessRole::Mule { id } => id,
            _ => 0,
        }
    }
    /// The spooler directories of this instance (`spooler`, `spooler-external`) and their
    /// shared state; `None` when none is configured (or for test hosts). The methods below
    /// are the spooler API over it.
    fn spoolers(&self) -> Option<&Spoolers> {
        None
    }

    /// `uwsgi.spool()`: write a task (its `vars`, with the special keys `spooler`,
    /// `priority` and `at`, and its `body`) and return its full path.
    fn spool(&self, vars: &Vars, body: &[u8]) -> Result<PathBuf, SpoolError> {
        self.spoolers()
            .ok_or(SpoolError::NoSpooler)?
            .spool(vars, body)
    }

    /// The task files waiting in the first spooler directory (`uwsgi.spooler_jobs()`).
    fn spooler_jobs(&self) -> Vec<PathBuf> {
        self.spoolers().map(Spoolers::jobs).unwrap_or_default()
    }

    /// The spooler processes' pids, in id order (`uwsgi.spooler_pids()`).
    fn spooler_pids(&self) -> Vec<i32> {
        self.spoolers().map(Spoolers::pids).unwrap_or_default()
    }

    /// Override `spooler-frequency` for every spooler (`uwsgi.set_spooler_frequency()`);
    /// false without spoolers.
    fn set_spooler_frequency(&self, seconds: u64) -> bool {
        self.spoolers().map(|s| s.set_frequency(seconds)).is_some()
    }

    /// The directory this process serves when it is a spooler (`uwsgi.spooler_dir()`).
    fn spooler_dir(&self) -> Option<PathBuf> {
        match self.role() {
            ProcessRole::Spooler { id } => self.spoolers()?.dir_of(id).map(Path::to_path_buf),
            _ => None,
        }
    }

    /// The signal framework of this instance (`None` for hosts without one, such as test
    /// hosts). The methods below are the API over it.
    fn signals(&self) -> Option<&Signals> {
        None
    }

    /// This process, as the signal framework sees it.
    fn signal_caller(&self) -> Caller {
        match self.role() {
            ProcessRole::Master => Caller::Master,
            ProcessRole::Worker { id } => Caller::Worker(id),
            ProcessRole::Mule { id } => Caller::Mule(id),
            ProcessRole::Spooler { id } => Caller::Spooler(id),
        }
    }

    /// Register `handler` for signal `num`, delivered to `target` (`uwsgi.register_signal`).
    /// Only the master (before forking: every child inherits it) and workers may register.
    fn register_signal(
        &self,
        num: u8,
        target: &str,
        handler: Arc<dyn SignalHandler>,
    ) -> Result<(), SignalError> {
        let signals = self.signals().ok_or(SignalError::NotAllowed)?;
        signals.register(self.signal_caller(), num, target, 0, handler)
    }

    /// Whether this process has a handler for `num` (`uwsgi.signal_registered`).
    fn signal_registered(&self, num: u8) -> bool {
        self.signals().is_some_and(|s| s.has_handler(num))
    }

    /// Have the master route signal `num` (`uwsgi.signal(num)`).
    fn raise_signal(&self, num: u8) -> Result<(), SignalError> {
        match self.signals() {
            Some(s) => s.raise(num),
            None => Err(SignalError::NotAllowed),
        }
    }

    /// Raise signal `num` on `node` (`uwsgi.signal(num, node)`), within `socket-timeout`.
    fn raise_remote_signal(&self, node: &str, num: u8) -> Result<(), RemoteError> {
        match self.signals() {
            Some(s) => s.raise_remote(node, num),
            None => crate::signal::remote::RemoteSignals::new(std::time::Duration::from_secs(4))
                .raise(node, num),
        }
    }

    /// Wait for the next signal of this process (`uwsgi.signal_wait`): its number, or
    /// `None` when `timeout` passed. The caller runs its handler ([`Self::dispatch_signal`]).
    fn signal_wait(&self, timeout: Option<std::time::Duration>) -> std::io::Result<Option<u8>> {
        match self.signals() {
            Some(s) => s.wait(self.signal_caller(), timeout),
            None => Err(std::io::ErrorKind::Unsupported.into()),
        }
    }

    /// Run this process's handler for `num` (errors are logged); true when it succeeded.
    fn dispatch_signal(&self, num: u8) -> bool {
        let who = match self.role() {
            ProcessRole::Master => "master".to_string(),
            ProcessRole::Worker { id } => format!("worker {id}"),
            ProcessRole::Mule { id } => format!("mule {id}"),
            ProcessRole::Spooler { id } => format!("spooler {id}"),
        };
        self.signals().is_some_and(|s| s.dispatch(num, &who))
    }

    /// Have the master route `num` every `period` (`add_timer`, `add_ms_timer`).
    fn add_timer(&self, num: u8, period: std::time::Duration) -> Result<(), AddError> {
        self.signals()
            .ok_or_else(no_framework)?
            .add_timer(num, period)
    }

    /// Have the master route `num` every `secs`, `iterations` times (`add_rb_timer`).
    fn add_rb_timer(&self, num: u8, secs: u64, iterations: u64) -> Result<(), AddError> {
        self.signals()
            .ok_or_else(no_framework)?
            .add_rb_timer(num, secs, iterations)
    }

    /// Have the master route `num` on the minutes `spec` matches (`add_cron`).
    fn add_cron(&self, num: u8, spec: CronSpec) -> Result<(), AddError> {
        self.signals().ok_or_else(no_framework)?.add_cron(num, spec)
    }

    /// Have the master route `num` when `path` changes (`add_file_monitor`).
    fn add_file_monitor(&self, num: u8, path: &Path) -> Result<(), AddError> {
        self.signals()
            .ok_or_else(no_framework)?
            .add_file_monitor(num, path)
    }

    /// What `mule = ...` gave mule `id` (`uwsgi.mule_file`), `None` for a plain mule.
    fn mule_file(&self, id: u32) -> Option<String> {
        self.signals()?.mule_file(id).map(str::to_string)
    }

    /// Raise alarm `name` with `msg` (`uwsgi.alarm`): queued for the master, which runs it.
    /// Refused without alarms, for an unknown alarm, a message longer than
    /// `alarm-msg-size`, or a full queue.
    fn alarm(&self, name: &str, msg: &[u8]) -> Result<(), crate::signal::AlarmError> {
        match self.signals() {
            Some(s) => s.alarm(name, msg),
            None => Err(crate::signal::AlarmError::NoAlarms),
        }
    }

    /// Requests completed by all workers.
    fn total_requests(&self) -> u64;
    /// Every worker's counters, in id order (a copy of the shared scoreboard).
    fn workers(&self) -> Vec<WorkerSnapshot>;
    /// The shared scoreboard (a cheap handle), where a plugin running in worker `id`
    /// publishes its apps and counts their requests: [`Scoreboard::get`] gives the
    /// [`WorkerSlot`], then [`WorkerSlot::publish_apps`] once before serving and
    /// [`WorkerSlot::count_app_request`] per request. `None` when the host has none (test
    /// hosts); the plugin then counts nothing.
    fn scoreboard(&self) -> Option<Scoreboard> {
        None
    }
    /// Write one line to the server log (a newline is added).
    fn log(&self, line: &str);
    /// Give the calling process its own harakiri deadline `secs` from now, or clear it
    /// (`0`): in a worker the calling request core's (cleared when its request ends), in a
    /// mule the mule's. The master kills the process once it passes. `Err` says why there
    /// is none to set (not called from a request core, no master, ...).
    fn set_user_harakiri(&self, secs: u64) -> Result<(), String> {
        let _ = secs;
        Err("unable to set user harakiri without the master process".into())
    }
    /// The signal on which this process writes the stack of every thread to the log (the
    /// master sends it before a harakiri kill); `None` if the server never sends one.
    fn traceback_signal(&self) -> Option<i32> {
        None
    }
    /// Set this process's title.
    fn set_process_name(&self, name: &str);
    /// Ask the master for a graceful reload; false if the signal could not be sent.
    fn reload(&self) -> bool;
    /// Ask the master to stop; false if the signal could not be sent.
    fn stop(&self) -> bool;

    /// The user locks of `locks N` (locks 0..=N, shared by every process of the instance):
    /// [`UserLocks::lock`], [`UserLocks::unlock`], [`UserLocks::is_locked`]. `None` for hosts
    /// without them (test hosts).
    fn user_locks(&self) -> Option<&UserLocks> {
        None
    }

    /// The caches of `cache2` / `cache` (the default one first), shared by every process of
    /// the instance. `None` for hosts without them (test hosts).
    fn caches(&self) -> Option<&Caches> {
        None
    }

    /// The client for other nodes' caches (`cache_get(key, "name@host:port")`), each
    /// operation bounded by `socket-timeout`. `None` for hosts without one.
    fn cache_client(&self) -> Option<&CacheClient> {
        None
    }

    /// The shared areas of `sharedarea`, by id (0, 1, ...), mapped before the first fork
    /// and never unmapped while the process lives.
    fn shared_areas(&self) -> &[SharedArea] {
        &[]
    }

    /// The RPC subsystem of this instance (`None` for hosts without one, such as test
    /// hosts). The methods below are the API over it.
    fn rpc(&self) -> Option<&Rpc> {
        None
    }

    /// Register `function` as RPC function `name` in this process (`argc` is recorded, not
    /// enforced). Only the master (apps imported before fork: every worker inherits it) and
    /// workers (that worker only) may register.
    fn register_rpc(
        &self,
        name: &[u8],
        argc: u8,
        function: Arc<dyn RpcFunction>,
    ) -> Result<(), RegisterError> {
        if !matches!(
            self.role(),
            ProcessRole::Master | ProcessRole::Worker { .. }
        ) {
            return Err(RegisterError::NotAllowed);
        }
        self.rpc()
            .ok_or(RegisterError::Unavailable)?
            .register(name, argc, function)
    }

    /// Call RPC function `name` of this process: its result, or `None` (unknown function,
    /// no result, or a failure, which is logged).
    fn rpc_call(&self, name: &[u8], args: &[&[u8]]) -> Option<Vec<u8>> {
        self.rpc()?.call_local(name, args)
    }

    /// Call RPC function `name` on `node` (`host:port` or a unix socket path): its result,
    /// or `None` (no result, or a failure, which is logged), within `socket-timeout`.
    fn rpc_remote(&self, node: &str, name: &[u8], args: &[&[u8]]) -> Option<Vec<u8>> {
        self.rpc()?.call_remote(node, name, args)
    }

    /// The RPC function names registered in this process, in registration order.
    fn rpc_list(&self) -> Vec<Vec<u8>> {
        self.rpc().map_or_else(Vec::new, |r| {
            r.registry().list().into_iter().map(|(n, _)| n).collect()
        })
    }
}

fn no_framework() -> AddError {
    AddError::Invalid {
        what: "signal source",
        reason: "no master process".into(),
    }
}
