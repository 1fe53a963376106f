//! Reload triggers besides signals: touched files (`touch-reload`, `touch-workers-reload`,
//! `touch-chain-reload`), the master FIFO (`master-fifo`), and the chain reload they (and
//! the FIFO's `c`) start.
//!
//! Touched files are looked at on each turn of the loop (at least once a second): a change
//! of modification time (or a file appearing or disappearing) is a touch. The FIFO is
//! created if missing and opened without blocking, with a write end the master keeps so
//! that writers coming and going never make it readable at end-of-file.
//!
//! A chain reload replaces the workers one at a time: each gets the graceful stop of a
//! recycle, and the next goes only once its replacement accepts connections, so the
//! instance never stops serving.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode as FileMode;
use nix::unistd::Pid;
use ruwsgi_sys::log_line;

use crate::children::ChildKind;
use crate::master::{Master, Mode, Watch};
use crate::signals::MasterCommand;

/// What a touched file does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touch {
    Reload,
    Workers,
    Chain,
    Mules,
}

/// The master's reload triggers and the chain reload in progress.
#[derive(Debug, Default)]
pub(crate) struct Triggers {
    touched: Vec<(PathBuf, Touch, Option<SystemTime>)>,
    fifos: Vec<PathBuf>,
    /// Which of `fifos` is read, and the write end kept open on it.
    active_fifo: usize,
    fifo_writer: Option<OwnedFd>,
    /// Worker slots still to replace, and the one being replaced (its old pid).
    chain: Vec<usize>,
    chain_current: Option<(usize, Pid)>,
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl Triggers {
    /// The triggers `settings` configure (files are looked at once now).
    pub(crate) fn new(p: &ruwsgi_config::ProcessSettings, mules: &[PathBuf]) -> Triggers {
        let mut touched = Vec::new();
        for (files, kind) in [
            (&p.touch_reload, Touch::Reload),
            (&p.touch_workers_reload, Touch::Workers),
            (&p.touch_chain_reload, Touch::Chain),
            (&mules.to_vec(), Touch::Mules),
        ] {
            touched.extend(files.iter().map(|f| (f.clone(), kind, mtime(f))));
        }
        Triggers {
            touched,
            fifos: p.master_fifo.clone(),
            ..Triggers::default()
        }
    }
}

/// Create (if needed) and open `path` for reading without blocking, plus a write end.
fn open_fifo(path: &Path) -> std::io::Result<(OwnedFd, OwnedFd)> {
    match nix::unistd::mkfifo(path, FileMode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
        Err(e) => return Err(e.into()),
    }
    let flags = OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let reader = open(path, OFlag::O_RDONLY | flags, FileMode::empty())?;
    let writer = open(path, OFlag::O_WRONLY | flags, FileMode::empty())?;
    Ok((reader, writer))
}

impl Master {
    /// Open the active FIFO (at start, and when `0`-`9` selects another).
    pub(crate) fn open_master_fifo(&mut self) {
        let Some(path) = self.triggers.fifos.get(self.triggers.active_fifo).cloned() else {
            return;
        };
        match open_fifo(&path) {
            Ok((reader, writer)) => {
                self.watched.insert(Watch::Fifo, reader);
                self.triggers.fifo_writer = Some(writer);
                log_line(&format!("ruwsgi: master FIFO {} ready", path.display()));
            }
            Err(e) => log_line(&format!(
                "ruwsgi: cannot open the master FIFO {} (master-fifo): {e}",
                path.display()
            )),
        }
    }

    /// Read and run the commands waiting in the FIFO.
    pub(crate) fn read_master_fifo(&mut self) {
        let mut commands = Vec::new();
        if let Some(fd) = self.watched.get(&Watch::Fifo) {
            let mut buf = [0u8; 64];
            loop {
                match nix::unistd::read(fd.as_fd(), &mut buf) {
                    Ok(0) => break,
                    Ok(n) => commands.extend_from_slice(&buf[..n]),
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
        }
        for byte in commands {
            self.fifo_command(byte);
        }
    }

    fn fifo_command(&mut self, byte: u8) {
        let origin = "master FIFO";
        match byte {
            b'r' => self.command(MasterCommand::GracefulReload, origin),
            b'R' => self.command(MasterCommand::BrutalReload, origin),
            b'q' => self.command(MasterCommand::GracefulStop, origin),
            b'Q' => self.command(MasterCommand::ImmediateStop, origin),
            b'w' => self.command(MasterCommand::ReloadWorkers, origin),
            b'W' => self.command(MasterCommand::BrutalReloadWorkers, origin),
            b'c' => self.command(MasterCommand::ChainReload, origin),
            b's' => self.log_workers(),
            b'0'..=b'9' => {
                let which = usize::from(byte - b'0');
                if which >= self.triggers.fifos.len() {
                    log_line(&format!("ruwsgi: master FIFO {which} is not configured"));
                } else if which != self.triggers.active_fifo {
                    self.triggers.active_fifo = which;
                    self.watched.remove(&Watch::Fifo);
                    self.triggers.fifo_writer = None;
                    self.open_master_fifo();
                }
            }
            b'\n' | b'\r' | b' ' => {}
            other => log_line(&format!(
                "ruwsgi: master FIFO command {:?} is not supported",
                char::from(other)
            )),
        }
    }

    /// `s`: one line per worker, from the scoreboard.
    fn log_workers(&self) {
        for w in self.scoreboard.snapshot() {
            log_line(&format!(
                "worker {} pid {} status {} requests {} exceptions {} avg_rt {} us rss {} vsz {}",
                w.id, w.pid, w.status, w.requests, w.exceptions, w.avg_rt, w.rss, w.vsz
            ));
        }
    }

    /// Act on touched files (each turn of the loop, only when some are configured).
    pub(crate) fn check_touched(&mut self) {
        let mut fired = Vec::new();
        for (path, kind, seen) in &mut self.triggers.touched {
            let now = mtime(path);
            if now != *seen {
                *seen = now;
                fired.push(*kind);
            }
        }
        for kind in fired {
            if kind == Touch::Mules {
                let mules: Vec<usize> = (0..self.slots.len())
                    .filter(|&i| self.slots[i].kind == ChildKind::Mule)
                    .collect();
                for index in mules {
                    self.replace_because(index, "touch-mules-reload");
                }
                continue;
            }
            let (command, origin) = match kind {
                Touch::Mules => continue,
                Touch::Reload => (MasterCommand::GracefulReload, "touch-reload"),
                Touch::Workers => (MasterCommand::ReloadWorkers, "touch-workers-reload"),
                Touch::Chain => (MasterCommand::ChainReload, "touch-chain-reload"),
            };
            self.command(command, origin);
        }
    }

    /// Begin a chain reload (`Running` only): every worker slot, in order.
    pub(crate) fn begin_chain_reload(&mut self, origin: &str) {
        if !self.triggers.chain.is_empty() || self.triggers.chain_current.is_some() {
            log_line(&format!(
                "ruwsgi: chain reload requested ({origin}): one is already in progress"
            ));
            return;
        }
        log_line(&format!("ruwsgi: chain reload requested ({origin})"));
        self.triggers.chain = (0..self.slots.len())
            .filter(|&i| self.slots[i].kind == ChildKind::Worker)
            .rev()
            .collect();
    }

    /// Move the chain reload on: replace the next worker once the previous one's
    /// replacement accepts connections.
    pub(crate) fn advance_chain(&mut self) {
        if self.triggers.chain.is_empty() && self.triggers.chain_current.is_none() {
            return;
        }
        if self.mode != Mode::Running {
            self.triggers.chain_current = None;
            self.triggers.chain.clear();
            log_line("ruwsgi: chain reload abandoned (a reload or stop took over)");
            return;
        }
        if let Some((index, old)) = self.triggers.chain_current {
            let slot = &self.slots[index];
            let ready = match slot.pid {
                Some(pid) if pid != old => self
                    .board_row(slot)
                    .is_some_and(ruwsgi_shm::WorkerSlot::accepting),
                _ => false,
            };
            if !ready {
                return;
            }
            self.triggers.chain_current = None;
            if self.triggers.chain.is_empty() {
                log_line("ruwsgi: chain reload done");
                return;
            }
        }
        while let Some(index) = self.triggers.chain.pop() {
            let slot = &self.slots[index];
            if let (Some(pid), None) = (slot.pid, slot.stop) {
                self.triggers.chain_current = Some((index, pid));
                self.replace_because(index, "chain reload");
                return;
            }
        }
        log_line("ruwsgi: chain reload done");
    }
}
