//! uWSGI signals in the master: routing a raised signal to its target, and the sources the
//! master runs itself (timers, rb timers, signal crons, file monitors, `touch-signal`), plus
//! the command crons (`cron`, `cron2`, `unique-cron`: shell commands the master forks).
//!
//! Routing reads the target of the signal's row in the shared table. Signals for one
//! given process go on that child's command channel; "the first free one" targets (any
//! worker, any mule, a farm, the spoolers) go on the shared sockets every candidate polls.
//! Every send is non-blocking: a full queue is logged (`SIGNAL QUEUE IS FULL`) and the
//! signal dropped, so the master never stalls.
//!
//! Timers and crons come from the configuration at boot and from the shared registrations
//! table, which any process appends to (`add_timer`, ...): the master reads new entries on
//! each loop turn (a child also nudges it over its channel). An entry identical to one the
//! master already runs (same kind, signal and period or schedule) is not doubled, so apps
//! that register their timers in every worker (`lazy-apps`) get one timer, not one per
//! worker and respawn.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::unistd::Pid;
use ruwsgi_config::{CommandCron, CronSpec};
use ruwsgi_proto::channel::MasterMessage;
use ruwsgi_signal::sockets::{send_packet, SendError};
use ruwsgi_signal::{
    CronAction, CronTable, Cursor, FileMonitors, Registration, Signals, Target, Timers, Tm,
};
use ruwsgi_sys::log_line;

use crate::children::ChildKind;
use crate::master::{Deadline, Master, Watch};

/// The master's signal state (absent without the framework).
pub(crate) struct SignalSources {
    pub framework: Arc<Signals>,
    cursor: Cursor,
    seen: u64,
    timers: Timers,
    timer_keys: Vec<(u8, Duration, u64)>,
    crons: CronTable,
    cron_keys: Vec<(u8, CronSpec)>,
    commands: Vec<CommandCron>,
    /// Running command crons: pid → (index in `commands`, kill deadline).
    running: HashMap<Pid, (usize, Option<Instant>)>,
    monitors: Option<FileMonitors>,
    monitor_keys: Vec<(u8, PathBuf)>,
    touch: Vec<(PathBuf, u8, Option<SystemTime>)>,
    /// Signals that could not be delivered (no target, full queue).
    pub unrouted: u64,
    /// Signals delivered.
    pub routed: u64,
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn local_tm(unix: i64) -> Tm {
    match ruwsgi_sys::localtime::local_time(unix) {
        Some(t) => Tm {
            minute: i32::from(t.minute),
            hour: i32::from(t.hour),
            mday: i32::from(t.day),
            month: i32::from(t.month),
            wday: i32::from(t.weekday),
        },
        None => Tm::utc(unix),
    }
}

impl SignalSources {
    /// The sources of `settings` (timers, command crons, touch-signal).
    pub(crate) fn new(
        framework: Arc<Signals>,
        settings: &ruwsgi_config::SignalSettings,
        now: Instant,
    ) -> SignalSources {
        let mut s = SignalSources {
            framework,
            cursor: Cursor::default(),
            seen: u64::MAX,
            timers: Timers::new(),
            timer_keys: Vec::new(),
            crons: CronTable::new(),
            cron_keys: Vec::new(),
            commands: settings.crons.clone(),
            running: HashMap::new(),
            monitors: None,
            monitor_keys: Vec::new(),
            touch: settings
                .touch_signals
                .iter()
                .map(|(p, n)| (p.clone(), *n, mtime(p)))
                .collect(),
            unrouted: 0,
            routed: 0,
        };
        for t in &settings.timers {
            s.add_timer(t.signum, t.period, 0, now);
        }
        for (i, c) in settings.crons.iter().enumerate() {
            s.crons.add(c.spec, CronAction::Command(i));
        }
        s
    }

    fn add_timer(&mut self, signum: u8, period: Duration, iterations: u64, now: Instant) {
        let key = (signum, period, iterations);
        if self.timer_keys.contains(&key) {
            return;
        }
        self.timer_keys.push(key);
        self.timers.add(signum, period, iterations, now);
    }
}

impl Master {
    /// Read the registrations added since the last look (the master's own, from apps it
    /// loaded, and the children's), and arm what they ask for.
    pub(crate) fn read_registrations(&mut self, now: Instant) {
        let Some(src) = self.sig.as_mut() else { return };
        let generation = src.framework.registrations().generation();
        if generation == src.seen {
            return;
        }
        src.seen = generation;
        let framework = src.framework.clone();
        let entries = match framework.registrations().read_from(&mut src.cursor) {
            Ok(e) => e,
            Err(e) => {
                log_line(&format!(
                    "ruwsgi: cannot read the signal registrations: {e}"
                ));
                return;
            }
        };
        let mut new_monitor = false;
        for entry in entries {
            match entry {
                Registration::Timer {
                    signum,
                    period,
                    iterations,
                    ..
                } => src.add_timer(signum, period, iterations, now),
                Registration::Cron { signum, spec } => {
                    if !src.cron_keys.contains(&(signum, spec)) {
                        src.cron_keys.push((signum, spec));
                        src.crons.add(spec, CronAction::Signal(signum));
                    }
                }
                Registration::FileMonitor { signum, path } => {
                    if src.monitor_keys.contains(&(signum, path.clone())) {
                        continue;
                    }
                    if src.monitors.is_none() {
                        match FileMonitors::new() {
                            Ok(m) => {
                                src.monitors = Some(m);
                                new_monitor = true;
                            }
                            Err(e) => {
                                log_line(&format!("ruwsgi: cannot start file monitors: {e}"));
                                continue;
                            }
                        }
                    }
                    if let Some(m) = src.monitors.as_mut() {
                        match m.add(&path, signum) {
                            Ok(()) => src.monitor_keys.push((signum, path)),
                            Err(e) => log_line(&format!(
                                "ruwsgi: cannot monitor {} for signal {signum}: {e}",
                                path.display()
                            )),
                        }
                    }
                }
            }
        }
        if new_monitor {
            let dup = src.monitors.as_ref().map(|m| m.fd().try_clone_to_owned());
            match dup {
                Some(Ok(fd)) => self.watched.insert(Watch::FileMonitor, fd),
                Some(Err(e)) => log_line(&format!("ruwsgi: cannot watch file monitors: {e}")),
                None => {}
            }
        }
        self.arm_signal_deadlines();
    }

    /// Arm the next timer and cron deadlines.
    fn arm_signal_deadlines(&mut self) {
        let Some(src) = self.sig.as_ref() else { return };
        match src.timers.next_deadline() {
            Some(t) => self.timers.set(Deadline::SignalTimer, t),
            None => {
                self.timers.cancel(&Deadline::SignalTimer);
            }
        }
        if !src.crons.is_empty() && self.timers.due_at(&Deadline::Cron).is_none() {
            let now_unix = unix_now();
            let next = CronTable::next_check(now_unix);
            let wait = Duration::from_secs((next - now_unix).max(1) as u64);
            self.timers.set(Deadline::Cron, self.clock.now() + wait);
        }
        if let Some(deadline) = src.running.values().filter_map(|r| r.1).min() {
            self.timers.set(Deadline::CronKill, deadline);
        }
    }

    /// A timer deadline passed: route what is due.
    pub(crate) fn on_signal_timers(&mut self, now: Instant) {
        let Some(src) = self.sig.as_mut() else { return };
        for signum in src.timers.fire_due(now) {
            self.route_signal(signum, "timer");
        }
        self.arm_signal_deadlines();
    }

    /// A cron deadline passed: run the entries of this minute.
    pub(crate) fn on_cron(&mut self) {
        let Some(src) = self.sig.as_mut() else { return };
        let now_unix = unix_now();
        let tm = local_tm(now_unix);
        let due = src.crons.due(now_unix, &tm);
        for i in due {
            let action = self.sig.as_ref().and_then(|s| s.crons.action(i));
            match action {
                Some(CronAction::Signal(n)) => self.route_signal(n, "cron"),
                Some(CronAction::Command(c)) => self.run_command_cron(c),
                None => {}
            }
        }
        self.arm_signal_deadlines();
    }

    /// Fork `/bin/sh -c COMMAND` for command cron `index` (not while its previous run is
    /// alive when it is unique).
    fn run_command_cron(&mut self, index: usize) {
        let Some(src) = self.sig.as_ref() else { return };
        let Some(cron) = src.commands.get(index).cloned() else {
            return;
        };
        if cron.unique && src.running.values().any(|r| r.0 == index) {
            log_line(&format!(
                "[ruwsgi-cron] command \"{}\" is still running: not starting it again",
                cron.command
            ));
            return;
        }
        match std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&cron.command)
            .spawn()
        {
            Ok(child) => {
                let pid = Pid::from_raw(child.id() as i32);
                log_line(&format!(
                    "[ruwsgi-cron] running \"{}\" (pid {pid})",
                    cron.command
                ));
                let deadline = cron
                    .harakiri
                    .filter(|&s| s > 0)
                    .map(|s| self.clock.now() + Duration::from_secs(s));
                if let Some(src) = self.sig.as_mut() {
                    src.running.insert(pid, (index, deadline));
                }
                // The child is reaped by the master's waitpid loop, not by `Child`.
                std::mem::forget(child);
            }
            Err(e) => log_line(&format!(
                "[ruwsgi-cron] cannot run \"{}\": {e}",
                cron.command
            )),
        }
    }

    /// A reaped pid that was a command cron: log its end. False when it was not one.
    pub(crate) fn reaped_command_cron(&mut self, pid: Pid, how: &str) -> bool {
        let Some(src) = self.sig.as_mut() else {
            return false;
        };
        let Some((index, _)) = src.running.remove(&pid) else {
            return false;
        };
        let command = src.commands.get(index).map_or("", |c| c.command.as_str());
        log_line(&format!(
            "[ruwsgi-cron] command \"{command}\" (pid {pid}) ended: {how}"
        ));
        true
    }

    /// Kill the command crons past their `harakiri`.
    pub(crate) fn on_cron_kill(&mut self, now: Instant) {
        let Some(src) = self.sig.as_mut() else { return };
        for (pid, (index, deadline)) in src.running.iter_mut() {
            if deadline.is_some_and(|d| d <= now) {
                *deadline = None;
                let command = src.commands.get(*index).map_or("", |c| c.command.as_str());
                log_line(&format!(
                    "[ruwsgi-cron] command \"{command}\" (pid {pid}) ran past its harakiri: killed"
                ));
                let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
        self.arm_signal_deadlines();
    }

    /// The file monitors reported changes.
    pub(crate) fn on_file_monitor(&mut self) {
        let Some(src) = self.sig.as_ref() else { return };
        let fired = match src.monitors.as_ref().map(FileMonitors::read) {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                log_line(&format!("ruwsgi: file monitors: {e}"));
                Vec::new()
            }
            None => Vec::new(),
        };
        for n in fired {
            self.route_signal(n, "file monitor");
        }
    }

    /// `touch-signal`: route the signal of each file whose modification time changed.
    pub(crate) fn check_touch_signals(&mut self) {
        let Some(src) = self.sig.as_mut() else { return };
        let mut fired = Vec::new();
        for (path, n, seen) in &mut src.touch {
            let now = mtime(path);
            if now != *seen {
                *seen = now;
                fired.push(*n);
            }
        }
        for n in fired {
            self.route_signal(n, "touch-signal");
        }
    }

    /// Route signal `num` (raised by `origin`) to its registered target.
    pub(crate) fn route_signal(&mut self, num: u8, origin: &str) {
        let Some(src) = self.sig.as_ref() else {
            log_line(&format!(
                "ruwsgi: signal {num} from {origin} dropped: no signal framework"
            ));
            return;
        };
        let framework = src.framework.clone();
        let Some(target) = framework.table().target(num) else {
            log_line(&format!(
                "ruwsgi: signal {num} from {origin} is not registered: dropped"
            ));
            self.count_signal(false);
            return;
        };
        let sockets = framework.sockets();
        let shared = |q: &ruwsgi_signal::sockets::Queue| q.send(&[num]);
        let delivered = match &target {
            Target::AnyWorker => self.report(num, &target, shared(&sockets.any_worker)),
            Target::AnyMule => {
                if self.has_kind(ChildKind::Mule) {
                    self.report(num, &target, shared(&sockets.any_mule))
                } else {
                    self.no_target(num, &target)
                }
            }
            Target::Spooler => {
                if self.has_kind(ChildKind::Spooler) {
                    self.report(num, &target, shared(&sockets.spooler))
                } else {
                    self.no_target(num, &target)
                }
            }
            Target::Farm(name) => match sockets.farm(name) {
                Some(f) => self.report(num, &target, shared(&f.signals)),
                None => self.no_target(num, &target),
            },
            Target::FarmIndex(n) => match (*n as usize)
                .checked_sub(1)
                .and_then(|i| sockets.farms.get(i))
            {
                Some(f) => self.report(num, &target, shared(&f.signals)),
                None => self.no_target(num, &target),
            },
            Target::Workers | Target::ActiveWorkers | Target::Mules => {
                let (kind, active) = match target {
                    Target::Mules => (ChildKind::Mule, false),
                    Target::ActiveWorkers => (ChildKind::Worker, true),
                    _ => (ChildKind::Worker, false),
                };
                let slots: Vec<usize> = (0..self.slots.len())
                    .filter(|&i| {
                        let s = &self.slots[i];
                        s.kind == kind && s.pid.is_some() && (!active || s.stop.is_none())
                    })
                    .collect();
                let mut any = false;
                for i in slots {
                    any |= self.signal_slot(i, num, &target);
                }
                any
            }
            Target::Worker(n) | Target::Mule(n) => {
                let kind = if matches!(target, Target::Worker(_)) {
                    ChildKind::Worker
                } else {
                    ChildKind::Mule
                };
                match self
                    .slots
                    .iter()
                    .position(|s| s.kind == kind && s.id == *n && s.pid.is_some())
                {
                    Some(i) => self.signal_slot(i, num, &target),
                    None => self.no_target(num, &target),
                }
            }
            Target::Subscribed => true,
        };
        self.count_signal(delivered);
    }

    fn has_kind(&self, kind: ChildKind) -> bool {
        self.slots.iter().any(|s| s.kind == kind)
    }

    fn count_signal(&mut self, delivered: bool) {
        if let Some(src) = self.sig.as_mut() {
            if delivered {
                src.routed += 1;
            } else {
                src.unrouted += 1;
            }
        }
    }

    fn no_target(&self, num: u8, target: &Target) -> bool {
        log_line(&format!(
            "ruwsgi: signal {num}: no process for target \"{target}\": dropped"
        ));
        false
    }

    fn report(&self, num: u8, target: &Target, sent: Result<(), SendError>) -> bool {
        match sent {
            Ok(()) => true,
            Err(SendError::Full) => {
                log_line(&format!(
                    "*** SIGNAL QUEUE IS FULL: signal {num} for \"{target}\" dropped (you can tune it with signal-bufsize) ***"
                ));
                false
            }
            Err(e) => {
                log_line(&format!(
                    "ruwsgi: cannot deliver signal {num} to \"{target}\": {e}"
                ));
                false
            }
        }
    }

    /// Send `num` on the command channel of the child in slot `index`.
    fn signal_slot(&self, index: usize, num: u8, target: &Target) -> bool {
        let Some(fd) = self.watched.get(&Watch::Channel(index)) else {
            log_line(&format!(
                "ruwsgi: signal {num}: {} has no channel: dropped",
                self.slots[index].label()
            ));
            return false;
        };
        self.report(
            num,
            target,
            send_packet(fd, MasterMessage::Signal(num).encode().as_bytes()),
        )
    }
}
