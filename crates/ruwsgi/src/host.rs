//! The [`Host`] the binary gives to language plugins: identity and counters read from the
//! shared scoreboard (and the scoreboard itself, where plugins keep their apps' table),
//! logging, the uWSGI API subsystems (RPC, user locks, shared areas, caches, spooler), and requests to the master (over the child's command channel; the master
//! itself, which has none, signals its own pid).

use std::sync::Arc;

use ruwsgi_plugin::{
    CacheClient, Caches, Host, ProcessRole, Rpc, SharedArea, Spoolers, UserLocks, WorkerSnapshot,
};
use ruwsgi_proto::channel::ChildRequest;
use ruwsgi_shm::Scoreboard;
use ruwsgi_sys::{log_line, Pid, Signal};

/// The uWSGI API subsystems of one instance, created before the first fork (the memory
/// they map is shared by every process of the instance).
#[derive(Debug, Clone)]
pub struct Subsystems {
    /// RPC (the worker serves 173 packets from the same one).
    pub rpc: Arc<Rpc>,
    /// `locks N`.
    pub locks: Arc<UserLocks>,
    /// `sharedarea`, by id.
    pub areas: Arc<Vec<SharedArea>>,
    /// `cache2` / `cache` (the worker serves 111 packets from the same ones).
    pub caches: Arc<Caches>,
    /// Remote calls' time limit (`socket-timeout`).
    pub timeout: std::time::Duration,
    /// `spooler` / `spooler-external` directories, if any.
    pub spoolers: Option<Arc<Spoolers>>,
    /// The uWSGI signal framework (signal table, timers, mule queues).
    pub signals: Option<Arc<ruwsgi_plugin::signal::Signals>>,
    /// `harakiri` (workers' signal handlers run under it) and `mule-harakiri`.
    pub harakiri: std::time::Duration,
    /// `mule-harakiri`.
    pub mule_harakiri: std::time::Duration,
}

/// One per instance, created by the master once the scoreboard exists and inherited by
/// every worker through fork. The process's role comes from the master crate, which sets it
/// in each child before any plugin code runs there.
#[derive(Debug)]
pub struct ServerHost {
    scoreboard: Scoreboard,
    /// The mules' scoreboard, if there are mules.
    mule_board: Option<Scoreboard>,
    /// How `uwsgi.setprocname()` frames a title (`procname-prefix`, `procname-append`).
    names: ruwsgi_master::ProcNames,
    /// The listening sockets' fds (inherited unchanged by the workers).
    socket_fds: Vec<i32>,
    /// The API subsystems.
    api: Subsystems,
    /// Remote caches (`name@node`).
    cache_client: CacheClient,
}

impl ServerHost {
    /// A host over `scoreboard` whose process titles are framed by `names`, serving on
    /// `socket_fds`, with the instance's API subsystems.
    pub fn new(
        scoreboard: Scoreboard,
        names: ruwsgi_master::ProcNames,
        socket_fds: Vec<i32>,
        api: Subsystems,
    ) -> ServerHost {
        ServerHost {
            scoreboard,
            mule_board: None,
            names,
            socket_fds,
            cache_client: CacheClient::new(api.timeout),
            api,
        }
    }

    /// The same host, seeing the mules' scoreboard too.
    pub fn with_mule_board(mut self, mule_board: Option<Scoreboard>) -> ServerHost {
        self.mule_board = mule_board;
        self
    }

    fn signal_master(&self, sig: Signal) -> bool {
        let pid = self.masterpid();
        pid > 0 && ruwsgi_sys::signals::kill(Pid::from_raw(pid), sig).is_ok()
    }

    /// Send `request` over this child's channel; in the master (no channel) fall back to
    /// the signal with the same meaning.
    fn ask_master(&self, request: ChildRequest, fallback: Signal) -> bool {
        match ruwsgi_master::channel::request(request) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => self.signal_master(fallback),
            Err(e) => {
                log_line(&format!("ruwsgi: cannot reach the master: {e}"));
                false
            }
        }
    }
}

impl Host for ServerHost {
    fn masterpid(&self) -> i32 {
        match self.scoreboard.master_pid() {
            0 => std::process::id() as i32,
            pid => pid,
        }
    }

    fn role(&self) -> ProcessRole {
        ruwsgi_master::current_role()
    }

    fn socket_fds(&self) -> Vec<i32> {
        self.socket_fds.clone()
    }

    fn total_requests(&self) -> u64 {
        self.scoreboard.total_requests()
    }

    fn workers(&self) -> Vec<WorkerSnapshot> {
        self.scoreboard.snapshot()
    }

    fn scoreboard(&self) -> Option<Scoreboard> {
        Some(self.scoreboard.clone())
    }

    fn log(&self, line: &str) {
        log_line(line);
    }

    fn set_user_harakiri(&self, secs: u64) -> Result<(), String> {
        let row = match self.role() {
            ProcessRole::Worker { id } => {
                let core = ruwsgi_worker::current_core().ok_or(
                    "set_user_harakiri in a worker applies to a request core: call it while serving a request",
                )?;
                self.scoreboard.core(id, usize::from(core))
            }
            ProcessRole::Mule { id } => self.mule_board.as_ref().and_then(|b| b.core(id, 0)),
            // Cleared when the task ends, as a worker's with its request.
            ProcessRole::Spooler { id } => self
                .api
                .spoolers
                .as_ref()
                .and_then(|s| s.board().core(id, 0)),
            _ => return Err("unable to set user harakiri without the master process".into()),
        };
        let row = row.ok_or("no harakiri row for this process")?;
        let deadline = if secs == 0 {
            0
        } else {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            now.saturating_add(secs.saturating_mul(1000))
        };
        row.set_user_deadline(deadline);
        Ok(())
    }

    fn traceback_signal(&self) -> Option<i32> {
        Some(ruwsgi_sys::signals::traceback_signal())
    }

    fn set_process_name(&self, name: &str) {
        ruwsgi_sys::process::set_process_title(&self.names.decorate(name));
    }

    fn reload(&self) -> bool {
        self.ask_master(ChildRequest::ReloadInstance, Signal::SIGHUP)
    }

    fn stop(&self) -> bool {
        self.ask_master(ChildRequest::StopInstance, Signal::SIGTERM)
    }

    fn rpc(&self) -> Option<&Rpc> {
        Some(&self.api.rpc)
    }

    fn user_locks(&self) -> Option<&UserLocks> {
        Some(&self.api.locks)
    }

    fn shared_areas(&self) -> &[SharedArea] {
        &self.api.areas
    }

    fn caches(&self) -> Option<&Caches> {
        Some(&self.api.caches)
    }

    fn cache_client(&self) -> Option<&CacheClient> {
        Some(&self.cache_client)
    }

    fn spoolers(&self) -> Option<&Spoolers> {
        self.api.spoolers.as_deref()
    }

    fn signals(&self) -> Option<&ruwsgi_plugin::signal::Signals> {
        self.api.signals.as_deref()
    }

    /// Handlers run under the process's harakiri like a request: `harakiri` in workers,
    /// `mule-harakiri` in mules, `spooler-harakiri` in spoolers.
    fn dispatch_signal(&self, num: u8) -> bool {
        let Some(signals) = self.api.signals.as_deref() else {
            return false;
        };
        let (who, slot, row, limit) = match self.role() {
            ProcessRole::Worker { id } => {
                let core = ruwsgi_worker::current_core().unwrap_or(0);
                (
                    format!("worker {id}"),
                    self.scoreboard.get(id),
                    self.scoreboard.core(id, usize::from(core)),
                    self.api.harakiri,
                )
            }
            ProcessRole::Mule { id } => (
                format!("mule {id}"),
                self.mule_board.as_ref().and_then(|b| b.get(id)),
                self.mule_board.as_ref().and_then(|b| b.core(id, 0)),
                self.api.mule_harakiri,
            ),
            ProcessRole::Spooler { id } => (
                format!("spooler {id}"),
                self.api.spoolers.as_ref().and_then(|s| s.board().get(id)),
                self.api
                    .spoolers
                    .as_ref()
                    .and_then(|s| s.board().core(id, 0)),
                self.api
                    .spoolers
                    .as_ref()
                    .map_or(std::time::Duration::ZERO, |s| s.settings().harakiri),
            ),
            _ => ("master".to_string(), None, None, std::time::Duration::ZERO),
        };
        signals.dispatch_guarded(num, &who, slot, row, limit)
    }
}
