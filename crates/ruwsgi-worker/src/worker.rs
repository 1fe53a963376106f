//! A worker process: its cores, its stop state and its signals.
//!
//! The stop state is one atomic read by every core at the top of its loop; changing it also
//! writes an eventfd that every core watches (one-shot), so a core asleep in `epoll_wait`
//! notices at once. Signals reach the process through a self-pipe that only core 0 watches;
//! every core watches the command channel to the master (its end-of-file means the master
//! is gone) and the shared uWSGI signal socket, so an idle core runs signal handlers.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::signal::Signal;
use ruwsgi_cache::Caches;
use ruwsgi_config::Settings;
use ruwsgi_plugin::LanguagePlugin;
use ruwsgi_rpc::Rpc;
use ruwsgi_shm::Scoreboard;
use ruwsgi_sys::log::log_line;
use ruwsgi_sys::signals::SignalPipe;

use crate::core::CoreLoop;
use crate::stream::ListenSocket;

/// Everything a worker needs, handed over by the master after fork.
pub struct WorkerArgs {
    /// 1-based worker id.
    pub id: u32,
    /// The instance's settings.
    pub settings: Arc<Settings>,
    /// The inherited listening sockets.
    pub listeners: Vec<ListenSocket>,
    /// The language plugin (apps already loaded, or loaded by the caller for lazy-apps).
    pub plugin: Arc<dyn LanguagePlugin>,
    /// The shared scoreboard.
    pub scoreboard: Scoreboard,
    /// The command channel to the master (a `SOCK_SEQPACKET` socket), if it has one: a
    /// worker that reaches `max-requests` asks the master to replace it through it, and
    /// its end-of-file means the master is gone.
    pub channel: Option<BorrowedFd<'static>>,
    /// The RPC subsystem: modifier1 173 packets call this process's functions.
    pub rpc: Arc<Rpc>,
    /// The caches: modifier1 111 packets read and write them.
    pub caches: Arc<Caches>,
    /// The spooler directories, if any: modifier1 17 packets (remote enqueue) write tasks
    /// there.
    pub spoolers: Option<Arc<ruwsgi_spooler::Spoolers>>,
    /// The uWSGI signal framework, if any: an idle core runs the handlers of the signals that
    /// arrive on the channel and on the shared "any worker" socket.
    pub uwsgi_signals: Option<Arc<ruwsgi_signal::Signals>>,
}

/// Why a worker's serve loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerExit {
    /// Asked to stop (SIGHUP: after finishing its requests; SIGTERM/SIGINT/SIGQUIT: at once).
    Stopped,
    /// `max-requests` reached: the master should start a fresh one.
    Recycled,
    /// The worker could not start serving.
    Failed,
}

/// How far a worker is into stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StopKind {
    /// Serving.
    Running = 0,
    /// Not accepting; finishing in-flight requests.
    Graceful = 1,
    /// Leaving now.
    Immediate = 2,
}

/// State shared by the cores of one worker.
pub struct WorkerShared {
    pub(crate) id: u32,
    pub(crate) settings: Arc<Settings>,
    pub(crate) listeners: Vec<ListenSocket>,
    pub(crate) scoreboard: Scoreboard,
    /// The RPC subsystem (this process's functions).
    pub(crate) rpc: Arc<Rpc>,
    /// The instance's caches.
    pub(crate) caches: Arc<Caches>,
    /// The spooler directories (remote enqueue), if any.
    pub(crate) spoolers: Option<Arc<ruwsgi_spooler::Spoolers>>,
    /// The uWSGI signal framework (handlers run by an idle core between requests).
    pub(crate) uwsgi_signals: Option<Arc<ruwsgi_signal::Signals>>,
    /// Requests this process served (all cores), for `max-requests`.
    pub(crate) requests: AtomicU64,
    /// A [`StopKind`]; only ever increases.
    stop: AtomicU8,
    /// A [`WorkerExit`] code: 0 stopped, 1 recycled, 2 failed.
    exit: AtomicU8,
    /// Written once when `stop` changes; every core watches it (one-shot).
    pub(crate) wake: EventFd,
    /// Signal self-pipe, watched by core 0.
    pub(crate) signals: Option<SignalPipe>,
    /// Command channel to the master, watched by every core; any core may send on it (one
    /// packet per `send`, so concurrent senders never interleave).
    pub(crate) channel: Option<BorrowedFd<'static>>,
    /// The master was asked to replace this worker (sent once).
    replace_asked: AtomicBool,
    /// Static files (`static-map`, `static-check`), if configured.
    pub(crate) statics: Option<crate::static_files::StaticFiles>,
    spawned: Instant,
}

impl WorkerShared {
    pub(crate) fn stop_kind(&self) -> StopKind {
        match self.stop.load(Ordering::Acquire) {
            0 => StopKind::Running,
            1 => StopKind::Graceful,
            _ => StopKind::Immediate,
        }
    }

    fn begin_stop(&self, kind: StopKind) {
        let prev = self.stop.fetch_max(kind as u8, Ordering::AcqRel);
        if prev < kind as u8 {
            let _ = self.wake.write(1);
        }
    }

    /// Read pending signals and act on them.
    pub(crate) fn handle_signals(&self) {
        let Some(pipe) = &self.signals else { return };
        for sig in pipe.drain() {
            match sig {
                Signal::SIGHUP => {
                    if self.stop_kind() == StopKind::Running {
                        log_line(&format!(
                            "worker {} (pid: {}): graceful stop requested, finishing requests",
                            self.id,
                            std::process::id()
                        ));
                    }
                    self.begin_stop(StopKind::Graceful);
                }
                Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => {
                    self.begin_stop(StopKind::Immediate);
                }
                _ => {}
            }
        }
    }

    /// Read what the master sent (on core `core`, when the channel is readable). Returns false at
    /// end-of-file: the master is gone, this worker stops gracefully and the caller stops
    /// watching the channel.
    pub(crate) fn handle_channel(&self, core: u16) -> bool {
        let Some(fd) = self.channel else { return false };
        let mut buf = [0u8; ruwsgi_proto::channel::MAX_MESSAGE + 1];
        loop {
            match nix::sys::socket::recv(
                fd.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) | Err(nix::errno::Errno::ECONNRESET) => {
                    log_line(&format!(
                        "worker {}: the master is gone, stopping gracefully",
                        self.id
                    ));
                    self.begin_stop(StopKind::Graceful);
                    return false;
                }
                Ok(n) => match ruwsgi_proto::channel::MasterMessage::decode(&buf[..n]) {
                    Ok(ruwsgi_proto::channel::MasterMessage::Signal(num)) => {
                        self.run_signal(num, core)
                    }
                    Ok(other) => log_line(&format!(
                        "worker {}: ignored an unsupported message from the master: {other:?}",
                        self.id
                    )),
                    Err(e) => log_line(&format!(
                        "worker {}: dropped a bad message from the master: {e}",
                        self.id
                    )),
                },
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return true,
            }
        }
    }

    /// Run the handler of uWSGI signal `num` on core `core` (between its requests), under
    /// `harakiri` like a request.
    pub(crate) fn run_signal(&self, num: u8, core: u16) {
        let Some(signals) = &self.uwsgi_signals else {
            log_line(&format!(
                "worker {}: signal {num} dropped: no signal framework",
                self.id
            ));
            return;
        };
        let row = self.scoreboard.core(self.id, usize::from(core));
        let who = format!("worker {}", self.id);
        let slot = self.scoreboard.get(self.id);
        signals.dispatch_guarded(
            num,
            &who,
            slot,
            row,
            self.settings.processes.harakiri.timeout,
        );
    }

    /// Read the signals waiting on the shared "any worker" socket (another worker may take
    /// them first) and run their handlers.
    pub(crate) fn handle_shared_signals(&self, core: u16) {
        let Some(signals) = &self.uwsgi_signals else {
            return;
        };
        // A bounded batch per wake-up: requests are not starved by a signal storm.
        for _ in 0..16 {
            match ruwsgi_signal::sockets::try_recv_signal(signals.sockets().any_worker.recv_fd()) {
                Some(num) => self.run_signal(num, core),
                None => return,
            }
        }
    }

    /// Ask the master to replace this worker; false if there is no channel or the send
    /// failed.
    fn ask_replace(&self) -> bool {
        self.send_to_master(ruwsgi_proto::channel::ChildRequest::ReloadMe)
    }

    /// Send `request` to the master; false if there is no channel or the send failed.
    pub(crate) fn send_to_master(&self, request: ruwsgi_proto::channel::ChildRequest) -> bool {
        let Some(fd) = self.channel else { return false };
        let packet = request.encode();
        loop {
            match nix::sys::socket::send(
                fd.as_raw_fd(),
                packet.as_bytes(),
                nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(_) => return true,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return false,
            }
        }
    }

    /// After each request: recycle the worker when `max-requests` is reached, when its
    /// memory (`memory`: the core's sample after the request, taken only when
    /// `reload-on-rss`/`reload-on-as` or `memory-report` is set) is above
    /// `reload-on-rss`/`reload-on-as` (both once it lived `min-worker-lifetime`), or when
    /// the app raised and `reload-on-exception` is on.
    pub(crate) fn check_recycle(&self, served: u64, exception: bool, memory: Option<(u64, u64)>) {
        let p = &self.settings.processes;
        if self.stop_kind() != StopKind::Running {
            return;
        }
        if exception && p.recycle.on_exception {
            return self.recycle("reload-on-exception");
        }
        let old_enough = || self.spawned.elapsed() >= p.min_worker_lifetime;
        if p.max_requests != 0 {
            let limit =
                p.max_requests + u64::from(self.id.saturating_sub(1)) * p.max_requests_delta;
            if served >= limit && old_enough() {
                return self.recycle(&format!("max requests reached ({served} >= {limit})"));
            }
        }
        if let (true, Some((rss, vsz))) = (p.recycle.samples_memory(), memory) {
            let over = |limit: u64, value: u64| limit != 0 && value > limit;
            if over(p.recycle.rss, rss) && old_enough() {
                self.recycle(&format!(
                    "reload-on-rss: {} MB > {} MB",
                    rss >> 20,
                    p.recycle.rss >> 20
                ));
            } else if over(p.recycle.address_space, vsz) && old_enough() {
                self.recycle(&format!(
                    "reload-on-as: {} MB > {} MB",
                    vsz >> 20,
                    p.recycle.address_space >> 20
                ));
            }
        }
    }

    /// Stop accepting, finish the requests in flight, and ask the master to replace this
    /// worker (it bounds the drain with `worker-reload-mercy` and respawns the slot as a
    /// recycle).
    fn recycle(&self, why: &str) {
        self.exit.store(1, Ordering::Release);
        if self.replace_asked.swap(true, Ordering::AcqRel) {
            return;
        }
        log_line(&format!(
            "...The work of process {} is done ({why}). Seeya!",
            std::process::id()
        ));
        if self.channel.is_some() && !self.ask_replace() {
            log_line(&format!(
                "worker {}: cannot ask the master for a replacement, exiting anyway",
                self.id
            ));
        }
        self.begin_stop(StopKind::Graceful);
    }
}

/// Run a worker until it stops; the caller turns the result into an exit code.
pub fn run(args: WorkerArgs) -> WorkerExit {
    let signals = match SignalPipe::install(&[
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
    ]) {
        Ok(p) => Some(p),
        Err(e) => {
            log_line(&format!(
                "worker {}: cannot install signal handlers: {e}",
                args.id
            ));
            return WorkerExit::Failed;
        }
    };
    let wake =
        match EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK) {
            Ok(w) => w,
            Err(e) => {
                log_line(&format!(
                    "worker {}: cannot create its wake-up fd: {e}",
                    args.id
                ));
                return WorkerExit::Failed;
            }
        };
    let statics = crate::static_files::StaticFiles::new(&args.settings.statics, args.id);
    let shared = WorkerShared {
        statics,
        id: args.id,
        settings: args.settings,
        listeners: args.listeners,
        scoreboard: args.scoreboard,
        rpc: args.rpc,
        caches: args.caches,
        spoolers: args.spoolers,
        uwsgi_signals: args.uwsgi_signals,
        requests: AtomicU64::new(0),
        stop: AtomicU8::new(0),
        exit: AtomicU8::new(0),
        wake,
        signals,
        channel: args.channel,
        replace_asked: AtomicBool::new(false),
        spawned: Instant::now(),
    };
    let plugin = args.plugin;
    let threads = shared.settings.processes.threads.max(1);
    let slot = shared.scoreboard.worker(shared.id);
    slot.set_accepting(true);
    // The one branch between the modes, once per worker.
    let async_cores = shared.settings.processes.async_cores;
    if async_cores > 0 {
        serve_async(async_cores, &shared, plugin.as_ref());
    } else {
        serve_threads(threads, &shared, &plugin);
    }
    slot.set_accepting(false);
    match shared.exit.load(Ordering::Acquire) {
        1 => WorkerExit::Recycled,
        2 => WorkerExit::Failed,
        _ => WorkerExit::Stopped,
    }
}

/// Sync mode: `threads` cores, core 0 on this thread.
fn serve_threads(threads: usize, shared: &WorkerShared, plugin: &Arc<dyn LanguagePlugin>) {
    std::thread::scope(|scope| {
        for core_id in 1..threads {
            let spawned = std::thread::Builder::new()
                .name(format!("core {core_id}"))
                .spawn_scoped(scope, move || {
                    serve_core(core_id as u16, shared, plugin.as_ref())
                });
            if let Err(e) = spawned {
                log_line(&format!(
                    "worker {}: cannot start core {core_id}: {e}",
                    shared.id
                ));
                shared.exit.store(2, Ordering::Release);
                shared.begin_stop(StopKind::Immediate);
            }
        }
        serve_core(0, shared, plugin.as_ref());
    });
}

/// Async mode: `cores` cores multiplexed on this thread by one loop.
fn serve_async(cores: usize, shared: &WorkerShared, plugin: &dyn LanguagePlugin) {
    set_current_core(Some(0));
    let cores = u16::try_from(cores).unwrap_or(u16::MAX);
    let ran = plugin.run_async(cores, &mut |core| match CoreLoop::new(0, shared) {
        Ok(mut l) => l.run_async(core, cores),
        Err(e) => {
            log_line(&format!("worker {}: cannot start: {e}", shared.id));
            shared.exit.store(2, Ordering::Release);
            shared.begin_stop(StopKind::Immediate);
        }
    });
    if let Err(e) = ran {
        log_line(&format!(
            "worker {}: cannot run {cores} async cores: {e}",
            shared.id
        ));
        shared.exit.store(2, Ordering::Release);
        shared.begin_stop(StopKind::Immediate);
    }
}

thread_local! {
    static CURRENT_CORE: std::cell::Cell<Option<u16>> = const { std::cell::Cell::new(None) };
}

/// The request core the calling thread runs (`None` outside a worker's cores). In async
/// mode, the core the loop is running at the moment (0 between cores).
pub fn current_core() -> Option<u16> {
    CURRENT_CORE.with(std::cell::Cell::get)
}

/// Say which core this thread runs now (async mode switches between its cores).
pub(crate) fn set_current_core(core: Option<u16>) {
    CURRENT_CORE.with(|c| c.set(core));
}

fn serve_core(core_id: u16, shared: &WorkerShared, plugin: &dyn LanguagePlugin) {
    CURRENT_CORE.with(|c| c.set(Some(core_id)));
    plugin.run_core(core_id, &mut |core| match CoreLoop::new(core_id, shared) {
        Ok(mut l) => l.run(core),
        Err(e) => {
            log_line(&format!(
                "worker {} core {core_id}: cannot start: {e}",
                shared.id
            ));
            shared.exit.store(2, Ordering::Release);
            shared.begin_stop(StopKind::Immediate);
        }
    });
}
