//! Forking one child, and everything it does before it runs its kind's main
//! ([`crate::WorkerMain`] for workers).
//!
//! Design decision: signals are blocked across the fork, so a signal sent to the new child
//! (a reload broadcast, a terminal's `^C`) can never run the master's handler there and
//! write into the master's self-pipe; the child unblocks them only after resetting the
//! dispositions. The child never returns into the master's loop: every path ends in
//! `_exit` ([`ruwsgi_sys::process::exit_now`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use ruwsgi_plugin::ForkOutcome;
use ruwsgi_shm::Scoreboard;
use ruwsgi_sys::process::{exit_now, set_parent_death_signal, set_process_title};
use ruwsgi_sys::{log_line, signals, ForkResult, Pid, Signal};

use crate::children::{ChildKind, Slot};
use crate::master::{Master, Watch};
use crate::mule::MuleStart;
use crate::signals::MASTER_SIGNALS;
use crate::spooler::SpoolerStart;
use crate::types::{ChildStart, Listener, WorkerStart, EXIT_NO_APP, EXIT_PANIC};

/// The fork itself, run inside the plugin's fork wrapper.
#[allow(unsafe_code)] // the master's one fork site (STYLE R6/R8)
pub(crate) fn fork_once() -> ForkOutcome {
    // SAFETY: the master is single-threaded by design (no runtime: see ARCHITECTURE §1) and
    // this is only called from its loop; the one other thread, the log master's (with
    // `alarm-log`), takes no lock a child takes (raw descriptors, the C allocator whose fork
    // handling covers it; see `crate::logmaster`). The plugin's wrapper puts its runtime in
    // a fork-safe state around it. The child leaves only through `exit_now`.
    match unsafe { ruwsgi_sys::fork() } {
        Ok(ForkResult::Parent { child }) => ForkOutcome::Parent(child.as_raw()),
        Ok(ForkResult::Child) => ForkOutcome::Child,
        Err(errno) => ForkOutcome::Failed(errno as i32),
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Master {
    /// Fork the child of slot `index` (empty). Logs the spawn, or the failure.
    pub(crate) fn spawn(&mut self, index: usize) -> Result<Pid, Errno> {
        let label = self.slots[index].label();
        // A child whose channel cannot be made still runs: it only cannot ask anything.
        let pair = match crate::channel::pair() {
            Ok(p) => Some(p),
            Err(e) => {
                log_line(&format!(
                    "ruwsgi: cannot create the channel of {label}: {e}"
                ));
                None
            }
        };
        let mask = signals::block_all().ok();
        let plugin = self.plugin.clone();
        let outcome = plugin.around_fork(&mut fork_once);
        if outcome == ForkOutcome::Child {
            // Close the master's ends of every other child's channel (and of this one), so
            // that end-of-file on a channel means exactly that its owner is gone.
            self.watched.clear();
            crate::logmaster::close_in_child();
            if let Some(pair) = pair {
                drop(pair.master);
                crate::channel::adopt_child_end(pair.child);
            }
            self.become_child(index);
        }
        if let (ForkOutcome::Parent(_), Some(pair)) = (outcome, pair) {
            self.watched.insert(Watch::Channel(index), pair.master);
            drop(pair.child);
        }
        if let Some(mask) = mask {
            let _ = signals::restore_mask(&mask);
        }
        match outcome {
            ForkOutcome::Parent(raw) => {
                let pid = Pid::from_raw(raw);
                let slot = &mut self.slots[index];
                let respawn = slot.ever_spawned;
                let (kind, id) = (slot.kind, slot.id);
                *slot = Slot {
                    pid: Some(pid),
                    generation: self.generation,
                    spawned_at: Some(self.clock.now()),
                    ever_spawned: true,
                    ..Slot::new(kind, id)
                };
                if respawn {
                    log_line(&format!("Respawned ruwsgi {label} (new pid: {pid})"));
                } else if kind == ChildKind::Worker {
                    log_line(&format!(
                        "spawned ruwsgi {label} (pid: {pid}, cores: {})",
                        self.settings.processes.cores()
                    ));
                } else {
                    log_line(&format!("spawned ruwsgi {label} (pid: {pid})"));
                }
                Ok(pid)
            }
            ForkOutcome::Failed(errno) => {
                let errno = Errno::from_raw(errno);
                log_line(&format!("ruwsgi: fork() failed for {label}: {errno}"));
                Err(errno)
            }
            ForkOutcome::Child => unreachable!("the child never gets here"),
        }
    }

    /// In the child: set the process up as the child of slot `index`, run its kind's main,
    /// exit.
    fn become_child(&mut self, index: usize) -> ! {
        let (kind, id) = (self.slots[index].kind, self.slots[index].id);
        let label = self.slots[index].label();
        crate::types::set_current_child(kind, id);
        // `master-as-root`: the child drops privileges itself, before the parent-death
        // signal is set (a credential change clears it).
        if self.settings.processes.children_drop_privileges() {
            let p = &self.settings.processes;
            if let Err(e) = ruwsgi_sys::process::drop_privileges(p.uid.as_deref(), p.gid.as_deref())
            {
                log_line(&format!("{label}: cannot drop privileges: {e}"));
                exit_now(1);
            }
        }
        if set_parent_death_signal(Signal::SIGKILL, self.master_pid).is_err() {
            log_line(&format!("{label}: cannot set the parent-death signal"));
        }
        self.signals.close_in_child();
        self.observer = None;
        let _ = signals::reset_default(&MASTER_SIGNALS);
        let _ = signals::ignore(Signal::SIGPIPE);
        let _ = signals::ignore_traceback_signal();
        let _ = signals::unblock_all();
        if kind == ChildKind::Daemon {
            self.exec_daemon(id);
        }
        if let Some(row) = self.board_row(&self.slots[index]) {
            row.spawned(ruwsgi_sys::process::pid().as_raw(), unix_now());
        }
        for core in self.board_cores(&self.slots[index]) {
            core.clear();
        }
        if let Some(title) = crate::ProcNames::new(&self.settings.processes).child(kind, id) {
            set_process_title(&title);
        }
        self.plugin.post_fork(crate::types::current_role());
        let main = AssertUnwindSafe(|| match kind {
            ChildKind::Worker => self.run_worker(id),
            ChildKind::Mule => self.run_mule(id),
            ChildKind::Spooler => self.run_spooler(id),
            _ => self.run_other(kind, id),
        });
        let code = match catch_unwind(main) {
            Ok(code) => {
                self.plugin.at_exit();
                code
            }
            Err(_) => {
                log_line(&format!("{label}: panicked, exiting"));
                EXIT_PANIC
            }
        };
        exit_now(code)
    }

    /// `attach-daemon`: replace this child with `/bin/sh -c COMMAND`. It keeps the
    /// parent-death signal and gets default signal dispositions, but none of the master's
    /// sockets.
    fn exec_daemon(&mut self, id: u32) -> ! {
        use std::os::unix::process::CommandExt;
        self.sockets.clear();
        let _ = signals::reset_default(&[Signal::SIGPIPE]);
        let Some(command) = self.settings.processes.daemons.get(id as usize - 1) else {
            exit_now(1)
        };
        let err = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .exec();
        log_line(&format!("daemon {id}: cannot run {command:?}: {err}"));
        exit_now(127)
    }

    /// A child of a kind this master cannot run yet.
    fn run_other(&mut self, kind: ChildKind, id: u32) -> i32 {
        log_line(&format!("{} {id}: no main for this kind", kind.name()));
        1
    }

    /// In a mule child: drop the listening sockets (a mule serves no client), then run
    /// [`crate::MasterConfig::mule_main`].
    fn run_mule(&mut self, id: u32) -> i32 {
        self.sockets.clear();
        let Some(spec) = self.settings.processes.mules.get(id as usize - 1).cloned() else {
            log_line(&format!("mule {id}: not configured"));
            return 1;
        };
        let Some(scoreboard) = self.mule_board.clone() else {
            return 1;
        };
        let start = MuleStart {
            child: self.child_start(id, scoreboard),
            spec,
        };
        (self.mule_main)(start)
    }

    /// In a spooler child: drop the listening sockets, then run
    /// [`crate::MasterConfig::spooler_main`].
    fn run_spooler(&mut self, id: u32) -> i32 {
        self.sockets.clear();
        let (Some(main), Some(scoreboard)) = (&self.spooler_main, self.spooler_board.clone())
        else {
            log_line(&format!("spooler {id}: no spooler main configured"));
            return 1;
        };
        let start = SpoolerStart {
            child: self.child_start(id, scoreboard),
        };
        main(start)
    }

    /// In a worker child: load the app if lazy, then run [`crate::WorkerMain`].
    fn run_worker(&mut self, id: u32) -> i32 {
        if self.settings.processes.apps_in_workers() {
            let loaded = self.plugin.load_apps();
            let ok = matches!(loaded, Ok(n) if n > 0);
            if let Err(e) = &loaded {
                log_line(&format!("worker {id}: {e}"));
            }
            if !ok && self.settings.processes.need_app {
                log_line("*** no app loaded. GAME OVER ***");
                exit_now(EXIT_NO_APP);
            }
        }
        let listeners = std::mem::take(&mut self.sockets)
            .into_iter()
            .map(|b| Listener {
                fd: b.fd,
                protocol: b.spec.protocol,
                name: b.name,
                is_unix: b.is_unix,
                option: b.spec.option,
            })
            .collect();
        let start = WorkerStart {
            child: self.child_start(id, self.scoreboard.clone()),
            listeners,
        };
        (self.worker_main)(start)
    }

    /// What every child kind starts with, as child `id` on `scoreboard`.
    fn child_start(&self, id: u32, scoreboard: Scoreboard) -> ChildStart {
        ChildStart {
            id,
            scoreboard,
            settings: self.settings.clone(),
            plugin: self.plugin.clone(),
            generation: self.generation,
            master_pid: self.master_pid.as_raw(),
            channel: crate::channel::child_channel(),
            signals: self.sig.as_ref().map(|s| s.framework.clone()),
        }
    }
}
