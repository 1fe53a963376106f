//! The spooler process loop: scan, lock, run, remove; sleep until woken or the period ends.
//!
//! Each pass scans the directory and runs every due task in order, each under its
//! [`TaskLock`]. After a pass that found tasks the spooler scans again at once (tasks may
//! have arrived meanwhile); after an empty one it waits for `SIGUSR1` (sent by `spool()`),
//! the next `at`, a held task's return, or `spooler-frequency`.
//!
//! Outcomes ([`SpoolerOutcome`]): `SPOOL_OK` removes the file (under the lock, so no other
//! spooler can start it again); `SPOOL_RETRY`, `SPOOL_IGNORE` and a task that raised keep
//! it for one `spooler-frequency` period: its mtime (the `at` every spooler honours) moves
//! to the end of the period, so no spooler of the directory runs it again before then.
//! A file that is not a spool file is renamed `broken.<name>` (kept for inspection, never
//! run). Stops: `SIGHUP`, `SIGTERM`, `SIGINT` or `SIGQUIT` make the spooler finish the task
//! it is running and exit (the master sends `SIGHUP` on graceful reloads and stops, and
//! `SIGKILL` after the mercy or on an immediate stop, when the task stays on disk and runs
//! again). `SIGALRM`, `SIGUSR2` and `SIGTSTP` are ignored, as uWSGI's spoolers do.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, MsgFlags};
use ruwsgi_shm::{WorkerSlot, WorkerStatus};
use ruwsgi_sys::{log_line, Signal, SignalPipe};

use crate::scan::{scan, Busy, TaskLock};
use crate::spoolers::Spoolers;
use crate::task::{self, Task};

/// How long a task locked by another process is left alone before this spooler looks at
/// it again.
const LOCKED_PAUSE: Duration = Duration::from_secs(1);

/// What running one task produced (the language's `SPOOL_*` return value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolerOutcome {
    /// `SPOOL_OK` (-2): done, remove the file.
    Ok,
    /// `SPOOL_RETRY` (-1), or any value other than -2 and 0: run it again later.
    Retry,
    /// `SPOOL_IGNORE` (0), or no spooler function: not this process's task; kept.
    Ignore,
    /// The task raised (or returned something that is not an int): logged, kept, run
    /// again later.
    Error,
}

/// Why a spooler process left its loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpoolerExit {
    /// Asked to stop, or the master is gone.
    Stopped,
    /// `spooler-max-tasks` reached: respawn it.
    Recycled,
    /// It could not start.
    Failed,
}

/// Runs one task through the language plugin: the task's path and content.
pub type Runner<'a> = dyn FnMut(&Path, &Task) -> SpoolerOutcome + 'a;

struct Loop<'a> {
    spoolers: &'a Spoolers,
    /// This spooler's id (its rows in the spoolers' scoreboard).
    id: u32,
    dir: PathBuf,
    row: Option<&'a WorkerSlot>,
    signals: SignalPipe,
    channel: Option<BorrowedFd<'static>>,
    /// uWSGI signals for the spoolers: the shared socket and what runs a signal's handler.
    hook: Option<SignalHook<'a>>,
    stop: bool,
    /// Tasks kept by RETRY / IGNORE / an error: not run again before the instant.
    held: HashMap<PathBuf, Instant>,
    tasks: u64,
    label: String,
}

/// How a spooler takes uWSGI signals between tasks: the master sends the ones for this
/// process on its channel, the ones for "the spoolers" on the `shared` socket; `run`
/// handles one.
pub struct SignalHook<'a> {
    /// The shared spooler signal socket (one-byte packets; the first spooler reads each).
    pub shared: Option<BorrowedFd<'a>>,
    /// Run the handler of a signal.
    pub run: Box<dyn FnMut(u8) + 'a>,
}

/// Run spooler `id` until it is stopped or recycled. `channel` is the master's command
/// channel (its end-of-file means the master is gone).
pub fn run(
    spoolers: &Spoolers,
    id: u32,
    channel: Option<BorrowedFd<'static>>,
    runner: &mut Runner<'_>,
) -> SpoolerExit {
    run_with_signals(spoolers, id, channel, runner, None)
}

/// [`run`], handling uWSGI signals between tasks through `hook`.
pub fn run_with_signals<'a>(
    spoolers: &'a Spoolers,
    id: u32,
    channel: Option<BorrowedFd<'static>>,
    runner: &mut Runner<'_>,
    hook: Option<SignalHook<'a>>,
) -> SpoolerExit {
    let Some(dir) = spoolers.dir_of(id).map(Path::to_path_buf) else {
        log_line(&format!("spooler {id}: no directory for this id"));
        return SpoolerExit::Failed;
    };
    let label = format!("[spooler {} pid: {}]", dir.display(), std::process::id());
    let signals = match SignalPipe::install(&[
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
    ]) {
        Ok(p) => p,
        Err(e) => {
            log_line(&format!("{label} cannot install signal handlers: {e}"));
            return SpoolerExit::Failed;
        }
    };
    // As uWSGI's spoolers: these must not end a task half-way (their default action
    // terminates, or stops, the process).
    for sig in [Signal::SIGALRM, Signal::SIGUSR2, Signal::SIGTSTP] {
        let _ = ruwsgi_sys::signals::ignore(sig);
    }
    if let Some(chdir) = &spoolers.settings().chdir {
        if let Err(e) = std::env::set_current_dir(chdir) {
            log_line(&format!(
                "{label} cannot chdir to {} (spooler-chdir): {e}",
                chdir.display()
            ));
            return SpoolerExit::Failed;
        }
    }
    let mut l = Loop {
        spoolers,
        id,
        dir,
        row: spoolers.board().get(id),
        signals,
        channel,
        hook,
        stop: false,
        held: HashMap::new(),
        tasks: 0,
        label,
    };
    l.run(runner)
}

impl Loop<'_> {
    fn run(&mut self, runner: &mut Runner<'_>) -> SpoolerExit {
        let settings = self.spoolers.settings();
        let (ordered, max_tasks) = (settings.ordered, settings.max_tasks);
        loop {
            self.check_signals();
            if self.stop {
                return SpoolerExit::Stopped;
            }
            // Idle before the scan: see the wake-up protocol in `spoolers`.
            self.set_status(WorkerStatus::Idle);
            fence(Ordering::SeqCst);
            let now = Instant::now();
            self.held.retain(|_, until| *until > now);
            let found = scan(&self.dir, ordered, SystemTime::now());
            let due: Vec<PathBuf> = found
                .due
                .into_iter()
                .filter(|p| !self.held.contains_key(p))
                .collect();
            if due.is_empty() {
                let mut timeout = self.spoolers.frequency();
                if let Some(at) = found.next_at {
                    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
                    timeout = timeout.min(left + Duration::from_millis(5));
                }
                if let Some(first) = self.held.values().min() {
                    timeout = timeout.min(first.saturating_duration_since(now));
                }
                if !self.wait(timeout) {
                    return SpoolerExit::Stopped;
                }
                continue;
            }
            self.set_status(WorkerStatus::Busy);
            for path in due {
                self.check_signals();
                if self.stop {
                    return SpoolerExit::Stopped;
                }
                if self.run_task(&path, runner) {
                    self.tasks += 1;
                    if max_tasks > 0 && self.tasks >= max_tasks {
                        log_line(&format!(
                            "{} maximum number of tasks reached ({max_tasks}): recycling",
                            self.label
                        ));
                        return SpoolerExit::Recycled;
                    }
                }
            }
        }
    }

    fn set_status(&self, status: WorkerStatus) {
        if let Some(row) = self.row {
            row.set_status(status);
        }
    }

    fn check_signals(&mut self) {
        for sig in self.signals.drain() {
            if sig != Signal::SIGUSR1 {
                self.stop = true;
            }
        }
    }

    /// Wait for a wake-up, a stop or `timeout`; false when the master is gone.
    fn wait(&mut self, timeout: Duration) -> bool {
        let timeout = PollTimeout::try_from(timeout.max(Duration::from_millis(1)))
            .unwrap_or(PollTimeout::MAX);
        let mut fds = vec![PollFd::new(self.signals.fd(), PollFlags::POLLIN)];
        fds.extend(self.channel.map(|c| PollFd::new(c, PollFlags::POLLIN)));
        let shared = self.hook.as_ref().and_then(|h| h.shared);
        let shared_at = fds.len();
        fds.extend(shared.map(|s| PollFd::new(s, PollFlags::POLLIN)));
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                log_line(&format!("{} poll failed: {e}", self.label));
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(PollFd::revents)
                .is_some_and(|r| !r.is_empty())
        };
        let channel_ready = self.channel.is_some() && ready(1);
        let shared_ready = shared.is_some() && ready(shared_at);
        drop(fds);
        if let (true, Some(fd)) = (shared_ready, shared) {
            let mut one = [0u8; 2];
            if let Ok(1) = recv(fd.as_raw_fd(), &mut one, MsgFlags::MSG_DONTWAIT) {
                if let Some(hook) = self.hook.as_mut() {
                    (hook.run)(one[0]);
                }
            }
        }
        if channel_ready {
            if let Some(fd) = self.channel {
                let mut buf = [0u8; 256];
                match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                    Ok(0) | Err(Errno::ECONNRESET) => {
                        log_line(&format!("{} the master is gone, exiting", self.label));
                        return false;
                    }
                    Ok(n) => {
                        if let Ok(ruwsgi_proto::channel::MasterMessage::Signal(num)) =
                            ruwsgi_proto::channel::MasterMessage::decode(&buf[..n])
                        {
                            match self.hook.as_mut() {
                                Some(hook) => (hook.run)(num),
                                None => log_line(&format!(
                                    "{} signal {num} dropped: no signal framework",
                                    self.label
                                )),
                            }
                        }
                    }
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(_) => self.channel = None,
                }
            }
        }
        true
    }

    /// Run the task at `path` if this process can take it; true if it ran.
    fn run_task(&mut self, path: &Path, runner: &mut Runner<'_>) -> bool {
        let mut lock = match TaskLock::take(path) {
            Ok(l) => l,
            Err(Busy::Gone) => return false,
            // Another spooler runs it (or a uWSGI writer is still writing it): look again
            // in a moment, not in a busy loop, and not after a whole period.
            Err(Busy::Locked) => {
                let pause = LOCKED_PAUSE.min(self.spoolers.frequency());
                self.held.insert(path.to_path_buf(), Instant::now() + pause);
                return false;
            }
            Err(Busy::Io(e)) => {
                log_line(&format!(
                    "{} cannot open {}: {e}",
                    self.label,
                    path.display()
                ));
                self.hold(path);
                return false;
            }
        };
        let bytes = match lock.read() {
            Ok(b) => b,
            Err(e) => {
                log_line(&format!(
                    "{} cannot read {}: {e}",
                    self.label,
                    path.display()
                ));
                self.hold(path);
                return false;
            }
        };
        let task = match task::parse(&bytes) {
            Ok(t) => t,
            Err(e) => {
                self.set_aside(&lock, &e.to_string());
                return false;
            }
        };
        let started = Instant::now();
        if let Some(row) = self.row {
            let now_us = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_micros() as u64);
            row.request_started(now_us);
        }
        let core = self.row.and(self.spoolers.board().core(self.id, 0));
        if let Some(core) = core {
            let harakiri = self.spoolers.settings().harakiri;
            if !harakiri.is_zero() {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let name = path.file_name().unwrap_or_default().as_encoded_bytes();
                core.request_began(
                    now_ms,
                    now_ms.saturating_add(harakiri.as_millis() as u64),
                    &[b"spooler task ", name],
                );
            }
        }
        let outcome = runner(path, &task);
        if let Some(core) = core {
            // Both deadlines end with the task (`spooler-harakiri`, `set_user_harakiri`).
            core.request_ended();
        }
        let elapsed = started.elapsed();
        if let Some(row) = self.row {
            row.request_finished(
                elapsed.as_micros() as u64,
                0,
                outcome == SpoolerOutcome::Error,
            );
            row.set_status(WorkerStatus::Busy);
        }
        match outcome {
            SpoolerOutcome::Ok => match lock.remove() {
                Err(e) if path.exists() => {
                    log_line(&format!(
                        "{} task {} done but cannot be removed: {e}",
                        self.label,
                        path.display()
                    ));
                    self.hold(path);
                }
                // Removed (or the task removed its own file).
                _ => {
                    if !self.spoolers.settings().quiet {
                        log_line(&format!(
                            "{} done with task {} after {} seconds",
                            self.label,
                            path.file_name().unwrap_or_default().to_string_lossy(),
                            elapsed.as_secs()
                        ));
                    }
                }
            },
            SpoolerOutcome::Error => {
                log_line(&format!(
                    "{} task {} raised an exception: kept, it runs again after spooler-frequency",
                    self.label,
                    path.display()
                ));
                self.defer(&lock);
            }
            SpoolerOutcome::Retry | SpoolerOutcome::Ignore => self.defer(&lock),
        }
        true
    }

    /// Keep a task for one period: its mtime moves to now + `spooler-frequency`, which every
    /// spooler of the directory honours (and which survives a respawn); this process also
    /// holds it in memory, in case the file's times cannot be set.
    fn defer(&mut self, lock: &TaskLock) {
        let until = SystemTime::now() + self.spoolers.frequency();
        if let Err(e) = lock.defer(until) {
            log_line(&format!(
                "{} cannot postpone {}: {e}",
                self.label,
                lock.path().display()
            ));
        }
        self.hold(lock.path());
    }

    fn hold(&mut self, path: &Path) {
        self.held.insert(
            path.to_path_buf(),
            Instant::now() + self.spoolers.frequency(),
        );
    }

    /// A file named like a task that is not one: renamed `broken.<name>`, never run.
    fn set_aside(&mut self, lock: &TaskLock, why: &str) {
        let path = lock.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let aside = path.with_file_name(format!("broken.{name}"));
        match std::fs::rename(path, &aside) {
            Ok(()) => log_line(&format!(
                "{} {} rejected ({why}): renamed {}",
                self.label,
                path.display(),
                aside.display()
            )),
            Err(e) => {
                log_line(&format!(
                    "{} {} rejected ({why}) and cannot be renamed: {e}",
                    self.label,
                    path.display()
                ));
                self.hold(path);
            }
        }
    }
}
