//! The supervisor: boot, then one poll loop that reaps, respawns, reloads and stops.
//!
//! Design decision: the master is a plain single-threaded state machine ([`Mode`]) driven
//! by one `poll` ([`crate::events::wait`]) over the signal source, whose timeout is the
//! nearest registered deadline ([`Deadline`] in [`crate::events::Timers`]) capped at 1 s
//! while running and 100 ms while children are leaving; each wake-up is followed by a
//! `waitpid(WNOHANG)` sweep and the due deadlines. Nothing blocks elsewhere, so no event
//! can be missed for long and the loop needs no thread (forks stay safe). The log master's
//! thread (`alarm-log` only) is not part of the loop: it copies log lines and hands the
//! alarms they raise to the loop through the alarm queue ([`crate::logmaster`]).

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use ruwsgi_config::Settings;
use ruwsgi_plugin::LanguagePlugin;
use ruwsgi_shm::{Scoreboard, WorkerStatus};
use ruwsgi_sys::{log_line, Pid, Signal};

use ruwsgi_proto::channel::ChildRequest;

use crate::bind::Bound;
use crate::channel::Received;
use crate::children::{ChildKind, Slot, StopOrder};
use crate::events::{Clock, Timers, WatchedFds};
use crate::mule::MuleMain;
use crate::signals::{Incoming, MasterCommand, SignalSource};
use crate::spooler::SpoolerMain;
use crate::throttle::{Throttle, Verdict};
use crate::types::{
    MasterPhase, Periodic, PeriodicCause, PhaseObserver, WorkerMain, EXIT_NO_APP, EXIT_RECYCLE,
};

/// Poll timeout while supervising (uWSGI's `check-interval`).
const TICK: Duration = Duration::from_secs(1);
/// Poll timeout while waiting for stopping children.
const SHORT_TICK: Duration = Duration::from_millis(100);
/// Grace between `SIGTERM` and `SIGKILL` on an immediate stop or brutal reload.
const IMMEDIATE_GRACE: Duration = Duration::from_secs(2);

/// What the loop is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Keep every slot filled.
    Running,
    /// Old workers are leaving; `reexec`: exec when all are gone, else respawn as they go.
    Reloading { reexec: bool },
    /// Leave when all workers are gone, with this exit code.
    Stopping { code: i32 },
}

/// What a deadline in the master's [`Timers`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// The child in this slot index gets `SIGKILL` if it is still alive.
    Kill(usize),
    /// The respawn throttle's pause ends: empty slots may be filled again.
    RespawnResume,
    /// The periodic task with this index is due.
    Periodic(usize),
    /// The earliest stats connection deadline: close the connections past theirs.
    Stats,
    /// The earliest harakiri deadline of a core (the loop checks every row on each turn).
    Harakiri,
    /// The next signal timer is due.
    SignalTimer,
    /// A new minute: run the cron entries it matches.
    Cron,
    /// A command cron passes its harakiri.
    CronKill,
    /// An alarm command passes its time limit.
    AlarmKill,
}

/// What a watched fd of the master is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// The master's end of the command channel of the child in this slot index.
    Channel(usize),
    /// The stats listener with this index ([`crate::stats`]).
    StatsListener(usize),
    /// The stats connection with this id.
    StatsConn(u64),
    /// The active master FIFO.
    Fifo,
    /// The file monitors' inotify descriptor.
    FileMonitor,
    /// The alarm queue.
    Alarms,
}

/// All the master's state.
pub(crate) struct Master {
    pub settings: Arc<Settings>,
    pub plugin: Arc<dyn LanguagePlugin>,
    pub worker_main: WorkerMain,
    pub mule_main: MuleMain,
    pub spooler_main: Option<SpoolerMain>,
    /// The spoolers' scoreboard, if there are spoolers.
    pub spooler_board: Option<Scoreboard>,
    pub signals: Box<dyn SignalSource>,
    pub observer: Option<PhaseObserver>,
    pub argv: Vec<OsString>,
    pub reexec_on_reload: bool,
    pub sockets: Vec<Bound>,
    /// The workers' scoreboard.
    pub scoreboard: Scoreboard,
    /// The mules' scoreboard (same layout, one row per mule), if there are mules.
    pub mule_board: Option<Scoreboard>,
    /// Every child: workers first, then mules.
    pub slots: Vec<Slot>,
    pub mode: Mode,
    /// Current generation: new workers get it.
    pub generation: u64,
    /// `UWSGI_RELOADS` of this image.
    pub reloads: u64,
    pub throttle: Throttle,
    pub master_pid: Pid,
    /// Where time comes from ([`crate::MasterConfig::clock`]).
    pub clock: Arc<dyn Clock>,
    /// Every pending deadline of the loop.
    pub timers: Timers<Deadline>,
    /// Every fd the loop watches besides the signal source's: the children's channels.
    pub watched: WatchedFds<Watch>,
    /// The subsystems' periodic work ([`crate::MasterConfig::periodic`]).
    pub periodic: Vec<Periodic>,
    /// The stats endpoints' listeners and connections (empty when off).
    pub stats: crate::stats::StatsServer,
    /// The host given to the plugin, kept for the stats (caches, locks).
    pub host: Option<Arc<dyn ruwsgi_plugin::Host>>,
    /// Touched files, the master FIFO and the chain reload in progress.
    pub triggers: crate::triggers::Triggers,
    /// When the listen queues were last looked at.
    pub queues_checked: Option<Instant>,
    /// uWSGI signals: the framework, and the timers, crons and monitors the master runs.
    pub sig: Option<crate::routing::SignalSources>,
    /// Alarms: the configured ones, the log master, running alarm commands.
    pub alarms: Option<crate::alarms::Alarms>,
}

fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exit status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("signal {}", *sig as i32),
        other => format!("{other:?}"),
    }
}

impl Master {
    pub(crate) fn phase(&mut self, phase: MasterPhase) {
        if let Some(observer) = self.observer.as_mut() {
            observer(phase);
        }
    }

    /// The supervision loop; returns the exit code once every worker is gone after a stop.
    pub(crate) fn supervise(&mut self) -> i32 {
        loop {
            self.wait_for_events();
            for incoming in self.signals.pending() {
                self.on_command(incoming);
            }
            self.reap();
            let now = self.clock.now();
            self.enforce_deadlines(now);
            self.check_harakiri(now);
            self.check_listen_queues(now);
            self.read_registrations(now);
            if self.mode == Mode::Running {
                self.check_recycling(now);
                self.check_touched();
                self.check_touch_signals();
            }
            self.advance_chain();
            match self.mode {
                Mode::Running => self.fill_slots(now),
                Mode::Reloading { reexec: false } => {
                    self.fill_slots(now);
                    let old_left = self
                        .slots
                        .iter()
                        .any(|s| s.pid.is_none() || s.generation < self.generation);
                    if !old_left {
                        log_line(&format!(
                            "ruwsgi: reload done, generation {} ready",
                            self.generation
                        ));
                        self.mode = Mode::Running;
                        self.phase(MasterPhase::Running);
                    }
                }
                Mode::Reloading { reexec: true } => {
                    if self.alive() == 0 {
                        match crate::reexec::probe_reexec(&self.argv, crate::reexec::PROBE_TIMEOUT)
                        {
                            Ok(()) => {
                                self.run_exit_tasks();
                                let err = self.reexec();
                                log_line(&format!(
                                    "ruwsgi: re-exec failed ({err}): respawning workers with the current code"
                                ));
                            }
                            Err(why) => log_line(&format!(
                                "ruwsgi: cannot re-exec as uid {} (probe failed: {why}): reloading the workers only",
                                nix::unistd::getuid()
                            )),
                        }
                        self.generation += 1;
                        crate::types::set_current_generation(self.generation);
                        self.scoreboard.set_generation(self.generation);
                        self.mode = Mode::Reloading { reexec: false };
                    }
                }
                Mode::Stopping { code } => {
                    if self.alive() == 0 {
                        self.run_exit_tasks();
                        return code;
                    }
                }
            }
        }
    }

    /// Arm every periodic task's first deadline.
    pub(crate) fn arm_periodic(&mut self, now: Instant) {
        for (i, task) in self.periodic.iter().enumerate() {
            self.timers.set(Deadline::Periodic(i), now + task.every);
        }
    }

    /// The master leaves or re-executes: each periodic task runs a last time.
    fn run_exit_tasks(&mut self) {
        for task in &mut self.periodic {
            (task.run)(PeriodicCause::Exit);
        }
    }

    fn alive(&self) -> usize {
        self.slots.iter().filter(|s| s.pid.is_some()).count()
    }

    /// The tick while nothing is due: short while children are leaving (their exits are
    /// also reported by `SIGCHLD`; the tick only bounds a missed one).
    fn tick(&self) -> Duration {
        let waiting = self
            .slots
            .iter()
            .any(|s| s.pid.is_some() && s.stop.is_some());
        if waiting {
            SHORT_TICK
        } else {
            TICK
        }
    }

    fn wait_for_events(&mut self) {
        let timeout = self.timers.timeout(self.clock.now(), self.tick());
        let fds = self.signals.fds();
        let ready = crate::events::wait(&fds, &self.watched, timeout);
        drop(fds);
        for watch in ready.fds {
            match watch {
                Watch::Channel(index) => self.read_channel(index),
                Watch::StatsListener(_) | Watch::StatsConn(_) => self.on_stats_ready(watch),
                Watch::Fifo => self.read_master_fifo(),
                Watch::FileMonitor => self.on_file_monitor(),
                Watch::Alarms => self.on_alarm_queue(),
            }
        }
    }

    /// Handle what the child in slot `index` sent; stop watching its channel at EOF.
    fn read_channel(&mut self, index: usize) {
        let Some(fd) = self.watched.get(&Watch::Channel(index)) else {
            return;
        };
        for received in crate::channel::drain(fd) {
            match received {
                Received::Request(request) => self.on_request(index, request),
                Received::Bad(e) => log_line(&format!(
                    "ruwsgi: dropped a bad message from {}: {e}",
                    self.slots[index].label()
                )),
                Received::Closed => {
                    self.watched.remove(&Watch::Channel(index));
                    return;
                }
            }
        }
    }

    /// A request from the child in slot `index`.
    fn on_request(&mut self, index: usize, request: ChildRequest) {
        let origin = self.slots[index].label();
        match request {
            ChildRequest::ReloadInstance => self.command(MasterCommand::GracefulReload, &origin),
            ChildRequest::StopInstance => self.command(MasterCommand::GracefulStop, &origin),
            ChildRequest::ReloadMe => self.replace(index),
            ChildRequest::Signal(num) => self.route_signal(num, &origin),
            ChildRequest::Scheduled => self.read_registrations(self.clock.now()),
            other => log_line(&format!(
                "ruwsgi: ignored an unsupported request from {origin}: {other:?}"
            )),
        }
    }

    /// Replace the child in slot `index` gracefully (it asked, and is already draining):
    /// `SIGHUP` (a no-op for a draining worker; it makes a child that only asked stop),
    /// `SIGKILL` after `worker-reload-mercy`, respawned as soon as it is gone. Ignored while
    /// it is already being stopped (a reload or a stop replaces or ends it anyway).
    fn replace(&mut self, index: usize) {
        self.replace_because(index, "asked to be replaced");
    }

    /// [`Self::replace`], logging `why`.
    pub(crate) fn replace_because(&mut self, index: usize, why: &str) {
        let Some(slot) = self.slots.get(index) else {
            return;
        };
        let (Some(pid), None) = (slot.pid, slot.stop) else {
            return;
        };
        if matches!(self.mode, Mode::Stopping { .. }) {
            return;
        }
        log_line(&format!(
            "{} (pid: {pid}) {why}: stopping it gracefully",
            slot.label()
        ));
        let sig = slot.kind.stop_signal(false);
        let mercy = self.mercy_of(slot.kind, self.settings.processes.worker_reload_mercy);
        self.slots[index].recycle = true;
        let deadline = self.clock.now() + mercy;
        self.stop_slot(index, sig, deadline);
    }

    fn on_command(&mut self, incoming: Incoming) {
        self.command(incoming.command, incoming.origin);
    }

    /// Act on `command`; `origin` (`SIGHUP`, `worker 1`, ...) is logged.
    pub(crate) fn command(&mut self, command: MasterCommand, origin: &str) {
        match (command, self.mode) {
            (MasterCommand::ChildEvent, _) => {}
            (MasterCommand::GracefulReload | MasterCommand::BrutalReload, Mode::Running)
                if self.settings.processes.exit_on_reload =>
            {
                let brutal = command == MasterCommand::BrutalReload;
                let kind = if brutal { "brutal" } else { "graceful" };
                log_line(&format!(
                    "ruwsgi: {kind} reload requested ({origin}): exit-on-reload, stopping instead"
                ));
                self.begin_stop(0, brutal);
            }
            (MasterCommand::ChainReload, Mode::Running) => self.begin_chain_reload(origin),
            (
                MasterCommand::GracefulReload
                | MasterCommand::BrutalReload
                | MasterCommand::ReloadWorkers
                | MasterCommand::BrutalReloadWorkers,
                Mode::Running,
            ) => {
                let brutal = matches!(
                    command,
                    MasterCommand::BrutalReload | MasterCommand::BrutalReloadWorkers
                );
                let workers_only = matches!(
                    command,
                    MasterCommand::ReloadWorkers | MasterCommand::BrutalReloadWorkers
                );
                let kind = match (brutal, workers_only) {
                    (false, false) => "graceful reload",
                    (true, false) => "brutal reload",
                    (false, true) => "graceful reload of the workers",
                    (true, true) => "brutal reload of the workers",
                };
                log_line(&format!("ruwsgi: {kind} requested ({origin})"));
                let reexec = self.reexec_on_reload
                    && !workers_only
                    && !self.settings.processes.apps_in_workers();
                self.throttle.reset();
                if !reexec {
                    self.generation += 1;
                    crate::types::set_current_generation(self.generation);
                    self.scoreboard.set_generation(self.generation);
                }
                self.mode = Mode::Reloading { reexec };
                self.phase(MasterPhase::GracefulReload);
                if brutal {
                    self.stop_children(
                        true,
                        self.settings
                            .processes
                            .worker_reload_mercy
                            .min(IMMEDIATE_GRACE),
                        true,
                    );
                } else {
                    self.stop_children(false, self.settings.processes.worker_reload_mercy, false);
                }
            }
            (
                MasterCommand::GracefulReload
                | MasterCommand::BrutalReload
                | MasterCommand::ReloadWorkers
                | MasterCommand::BrutalReloadWorkers
                | MasterCommand::ChainReload,
                _,
            ) => {
                log_line(&format!("ruwsgi: reload requested ({origin}) while a reload or stop is in progress: ignored"));
            }
            (MasterCommand::GracefulStop, Mode::Stopping { .. }) => {
                log_line(&format!(
                    "ruwsgi: graceful stop requested ({origin}): already stopping"
                ));
            }
            (MasterCommand::GracefulStop, _) => {
                log_line(&format!(
                    "ruwsgi: graceful stop requested ({origin}): waiting for workers to finish"
                ));
                self.begin_stop(0, false);
            }
            (MasterCommand::ImmediateStop, _) => {
                log_line(&format!(
                    "ruwsgi: immediate stop requested ({origin}): killing workers"
                ));
                self.begin_stop(0, true);
            }
        }
    }

    /// Enter `Stopping`: graceful (`SIGHUP`, mercy) or immediate (`SIGTERM`, short grace).
    pub(crate) fn begin_stop(&mut self, code: i32, immediate: bool) {
        let code = match self.mode {
            Mode::Stopping { code: previous } if previous != 0 => previous,
            _ => code,
        };
        let was_stopping = matches!(self.mode, Mode::Stopping { .. });
        self.mode = Mode::Stopping { code };
        if !was_stopping {
            self.phase(MasterPhase::Draining);
        }
        if immediate {
            let grace = self
                .settings
                .processes
                .worker_reload_mercy
                .min(IMMEDIATE_GRACE);
            self.stop_children(true, grace, true);
        } else {
            let p = &self.settings.processes;
            let mercy = p.worker_reload_mercy.min(p.reload_mercy);
            self.stop_children(false, mercy, false);
        }
    }

    /// Stop every live child with its kind's graceful or immediate signal
    /// ([`ChildKind::stop_signal`]), with a `SIGKILL` deadline `mercy` from now. Children
    /// already stopping are left alone unless `resend` (an escalation).
    fn stop_children(&mut self, immediate: bool, mercy: Duration, resend: bool) {
        let now = self.clock.now();
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            if slot.pid.is_none() || (slot.stop.is_some() && !resend) {
                continue;
            }
            let sig = slot.kind.stop_signal(immediate);
            let mercy = if immediate {
                mercy
            } else {
                self.mercy_of(slot.kind, mercy)
            };
            self.stop_slot(index, sig, now + mercy);
        }
    }

    /// How long a graceful stop of a child of `kind` may take: `mule-reload-mercy` for
    /// mules, `mercy` for the others.
    fn mercy_of(&self, kind: ChildKind, mercy: Duration) -> Duration {
        match kind {
            ChildKind::Mule => self.settings.signals.mule_reload_mercy,
            _ => mercy,
        }
    }

    /// The harakiri rows of a worker's cores, or of a mule or a spooler (one row).
    pub(crate) fn board_cores(&self, slot: &Slot) -> &[ruwsgi_shm::CoreSlot] {
        match slot.kind {
            ChildKind::Worker => self.scoreboard.cores_of(slot.id),
            ChildKind::Mule => self
                .mule_board
                .as_ref()
                .map_or(&[], |b| b.cores_of(slot.id)),
            ChildKind::Spooler => self
                .spooler_board
                .as_ref()
                .map_or(&[], |b| b.cores_of(slot.id)),
            _ => &[],
        }
    }

    /// The scoreboard row of the child in `slot` (daemons have none).
    pub(crate) fn board_row(&self, slot: &Slot) -> Option<&ruwsgi_shm::WorkerSlot> {
        match slot.kind {
            ChildKind::Worker => self.scoreboard.get(slot.id),
            ChildKind::Mule => self.mule_board.as_ref()?.get(slot.id),
            ChildKind::Spooler => self.spooler_board.as_ref()?.get(slot.id),
            _ => None,
        }
    }

    /// Send `sig` to the child in slot `index` and make sure it gets `SIGKILL` by
    /// `deadline` (or by an earlier deadline it already had).
    fn stop_slot(&mut self, index: usize, sig: Signal, deadline: Instant) {
        let slot = &mut self.slots[index];
        let Some(pid) = slot.pid else { return };
        let _ = ruwsgi_sys::signals::kill(pid, sig);
        let deadline = match slot.stop {
            Some(order) => order.deadline.min(deadline),
            None => deadline,
        };
        slot.stop = Some(StopOrder { deadline });
        self.timers.set(Deadline::Kill(index), deadline);
        if let Some(row) = self.board_row(&self.slots[index]) {
            row.set_status(WorkerStatus::Stopping);
        }
    }

    fn enforce_deadlines(&mut self, now: Instant) {
        for due in self.timers.due(now) {
            match due {
                Deadline::Kill(index) => {
                    let Some(slot) = self.slots.get(index) else {
                        continue;
                    };
                    let (Some(pid), Some(_)) = (slot.pid, slot.stop) else {
                        continue;
                    };
                    if slot.harakiri {
                        log_line(&format!(
                            "HARAKIRI: SIGKILL to {} (pid: {pid})",
                            slot.label()
                        ));
                    } else {
                        log_line(&format!(
                            "ruwsgi: {} (pid: {pid}) did not exit in time: NO MERCY !!! (SIGKILL)",
                            slot.label()
                        ));
                    }
                    let _ = ruwsgi_sys::signals::kill(pid, Signal::SIGKILL);
                }
                // `fill_slots` asks the throttle again on this same turn; `check_harakiri`
                // runs on every turn.
                Deadline::RespawnResume | Deadline::Harakiri => {}
                Deadline::Stats => self.stats_expire(now),
                Deadline::SignalTimer => self.on_signal_timers(now),
                Deadline::Cron => self.on_cron(),
                Deadline::CronKill => self.on_cron_kill(now),
                Deadline::AlarmKill => self.on_alarm_kill(now),
                Deadline::Periodic(i) => {
                    if let Some(task) = self.periodic.get_mut(i) {
                        (task.run)(PeriodicCause::Timer);
                        let every = task.every;
                        self.timers.set(Deadline::Periodic(i), now + every);
                    }
                }
            }
        }
    }

    /// Reap every exited child.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => return,
                Ok(status @ (WaitStatus::Exited(..) | WaitStatus::Signaled(..))) => {
                    self.on_exit(status)
                }
                Ok(_) => continue,
            }
        }
    }

    fn on_exit(&mut self, status: WaitStatus) {
        let Some(pid) = status.pid() else { return };
        let Some(index) = self.slots.iter().position(|s| s.pid == Some(pid)) else {
            let how = describe(&status);
            if !self.reaped_command_cron(pid, &how) {
                let success = matches!(status, WaitStatus::Exited(_, 0));
                self.reaped_alarm_command(pid, success, &how);
            }
            return;
        };
        let (served, kind) = {
            let slot = &self.slots[index];
            let row = self.board_row(slot);
            let served = row.map_or(0, |w| w.delta_requests());
            if let Some(row) = row {
                row.exited();
            }
            for core in self.board_cores(slot) {
                core.clear();
            }
            (served, slot.kind)
        };
        self.timers.cancel(&Deadline::Kill(index));
        self.watched.remove(&Watch::Channel(index));
        if let WaitStatus::Signaled(_, Signal::SIGSEGV, _) = status {
            self.alarm_segfault(index, pid);
        }
        let slot = &mut self.slots[index];
        let label = slot.label();
        slot.pid = None;
        let asked = slot.stop.take().is_some();
        slot.crashed = false;
        if std::mem::take(&mut slot.harakiri) {
            log_line(&format!(
                "{label} (pid: {pid}) killed by harakiri ({}): respawning",
                describe(&status)
            ));
            return;
        }
        if asked && std::mem::take(&mut slot.recycle) {
            log_line(&format!(
                "{label} (pid: {pid}) recycled after {served} requests"
            ));
            return;
        }
        if asked {
            let now = self.clock.now();
            let lived = slot
                .spawned_at
                .map_or(0.0, |t| now.saturating_duration_since(t).as_secs_f64());
            log_line(&format!(
                "{label} (pid: {pid}) stopped ({}) after {lived:.1} seconds",
                describe(&status)
            ));
            return;
        }
        let worker = kind == ChildKind::Worker;
        let recycles = worker || kind == ChildKind::Spooler;
        match status {
            WaitStatus::Exited(_, EXIT_RECYCLE) if recycles => {
                log_line(&format!(
                    "{label} (pid: {pid}) recycled after {served} requests"
                ));
            }
            WaitStatus::Exited(_, EXIT_NO_APP)
                if worker
                    && self.settings.processes.lazy_apps
                    && self.settings.processes.need_app =>
            {
                log_line(&format!(
                    "{label} (pid: {pid}) could not load the app and need-app is on: stopping the instance"
                ));
                self.begin_stop(EXIT_NO_APP, true);
            }
            WaitStatus::Exited(_, code) => {
                log_line(&format!("DAMN ! {label} (pid: {pid}) died with exit status {code} :( trying respawn ..."));
                self.slots[index].crashed = true;
            }
            WaitStatus::Signaled(_, sig, _) => {
                log_line(&format!(
                    "DAMN ! {label} (pid: {pid}) died, killed by signal {} :( trying respawn ...",
                    sig as i32
                ));
                self.slots[index].crashed = true;
            }
            _ => {}
        }
    }

    /// Spawn into every empty slot; crash respawns go through the throttle.
    fn fill_slots(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            if self.slots[index].pid.is_some() {
                continue;
            }
            if self.slots[index].crashed {
                match self.throttle.check(now) {
                    Verdict::Spawn => {}
                    Verdict::Tripped { until } => {
                        self.timers.set(Deadline::RespawnResume, until);
                        log_line(&format!(
                            "ruwsgi: too many respawns (more than {} in one second): forkbomb-delay, pausing respawns for {:.1} seconds",
                            self.slots.len(),
                            until.saturating_duration_since(now).as_secs_f64()
                        ));
                        return;
                    }
                    Verdict::Paused { .. } => return,
                }
            }
            if self.spawn(index).is_err() {
                // Logged by `spawn`; retried on the next tick.
                return;
            }
        }
    }
}
