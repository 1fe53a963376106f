//! [`Spoolers`]: the instance's spooler directories and the state their processes share,
//! created by the master before the first fork and inherited by every process.
//!
//! Design decision: the wake-up. An idle spooler sleeps up to `spooler-frequency` between
//! scans; `spool()` sends `SIGUSR1` to every idle spooler of the directory it wrote to, so
//! a new task starts at once. A spooler publishes "idle" in its scoreboard row *before* its
//! last scan (with a fence), and `spool()` reads the rows *after* its rename (with a
//! fence): either the scan sees the file or the writer sees the idle spooler, so no task
//! waits for the next period. Busy spoolers are not signalled: they scan again as soon as
//! their pass ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

use ruwsgi_config::SpoolerSettings;
use ruwsgi_proto::Vars;
use ruwsgi_shm::{impl_shm, Region, Scoreboard, WorkerStatus};
use ruwsgi_sys::{Pid, Signal};

use crate::error::SpoolError;
use crate::scan::read_unlocked;
use crate::task::{self, Task, PREFIX};
use crate::write::{self, check_priority, parse_at, task_name};

/// What the spooler processes share besides their scoreboard.
#[derive(Debug)]
struct Shared {
    /// `set_spooler_frequency()`'s override in seconds (0: `spooler-frequency`).
    frequency: AtomicU64,
}
impl_shm!(ShmSafe for Shared { frequency });

/// The spooler directories of an instance and their processes' shared state.
pub struct Spoolers {
    /// `spooler` directories (absolute), served by local processes.
    local: Vec<PathBuf>,
    /// `spooler-external` directories (absolute).
    external: Vec<PathBuf>,
    /// The options.
    settings: SpoolerSettings,
    /// One row per local spooler process (ids 1..; directory `(id-1) / processes`): pid,
    /// idle or busy, tasks run.
    board: Scoreboard,
    shared: Region<Shared>,
    /// In task file names.
    hostname: String,
}

impl std::fmt::Debug for Spoolers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spoolers")
            .field("local", &self.local)
            .field("external", &self.external)
            .finish()
    }
}

fn absolute(dir: &Path) -> Result<PathBuf, SpoolError> {
    if !dir.is_dir() {
        write::create_dir(dir)?;
    }
    std::fs::canonicalize(dir).map_err(|e| SpoolError::io(dir, e))
}

impl Spoolers {
    /// Create every configured directory (0750, if missing) and map the shared state.
    pub fn new(settings: &SpoolerSettings) -> Result<Spoolers, SpoolError> {
        Self::build(settings, true)
    }

    /// The same on the heap, not shared across fork (tests).
    pub fn on_heap(settings: &SpoolerSettings) -> Result<Spoolers, SpoolError> {
        Self::build(settings, false)
    }

    fn build(settings: &SpoolerSettings, shared: bool) -> Result<Spoolers, SpoolError> {
        let local = settings
            .dirs
            .iter()
            .map(|d| absolute(d))
            .collect::<Result<Vec<_>, _>>()?;
        let external = settings
            .external
            .iter()
            .map(|d| absolute(d))
            .collect::<Result<Vec<_>, _>>()?;
        let n = settings.process_count();
        let shm = |e: std::io::Error| SpoolError::io("(shared memory)", e);
        let (board, region) = if shared {
            (
                Scoreboard::new(n.max(1)).map_err(shm)?,
                Region::<Shared>::map(0).map_err(|e| shm(std::io::Error::other(e.to_string())))?,
            )
        } else {
            (
                Scoreboard::on_heap(n.max(1)),
                Region::<Shared>::on_heap(0)
                    .map_err(|e| shm(std::io::Error::other(e.to_string())))?,
            )
        };
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".to_string());
        Ok(Spoolers {
            local,
            external,
            settings: settings.clone(),
            board,
            shared: region,
            hostname,
        })
    }

    /// The options.
    pub fn settings(&self) -> &SpoolerSettings {
        &self.settings
    }

    /// Every directory `spool()` may write to: local ones first, then external ones.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.local
            .iter()
            .chain(self.external.iter())
            .map(PathBuf::as_path)
    }

    /// The directories local spooler processes serve.
    pub fn local_dirs(&self) -> &[PathBuf] {
        &self.local
    }

    /// How many spooler processes the master runs.
    pub fn process_count(&self) -> usize {
        self.settings.process_count()
    }

    /// The directory spooler `id` (1-based) serves.
    pub fn dir_of(&self, id: u32) -> Option<&Path> {
        let index = (id as usize).checked_sub(1)? / self.settings.processes.max(1);
        self.local.get(index).map(PathBuf::as_path)
    }

    /// The spoolers' scoreboard (one row per process; the master marks exits there).
    pub fn board(&self) -> &Scoreboard {
        &self.board
    }

    /// The scan period now: `set_spooler_frequency`'s value, else `spooler-frequency`.
    pub fn frequency(&self) -> Duration {
        match self.shared.header().frequency.load(Ordering::Relaxed) {
            0 => Duration::from_secs(self.settings.frequency.max(1)),
            s => Duration::from_secs(s),
        }
    }

    /// `set_spooler_frequency(seconds)`: every spooler of the instance uses it from its
    /// next wait (0 goes back to the option's value).
    pub fn set_frequency(&self, seconds: u64) {
        self.shared
            .header()
            .frequency
            .store(seconds, Ordering::Relaxed);
    }

    /// The pids of the running spooler processes, in id order (0 for a slot being
    /// respawned).
    pub fn pids(&self) -> Vec<i32> {
        (1..=self.process_count() as u32)
            .map(|id| self.board.get(id).map_or(0, |r| r.pid()))
            .collect()
    }

    /// Spool a task: `vars` (keys `spooler`, `priority` and `at` are read, and kept) and
    /// `body`. Returns the task's full path once it is written (and, with
    /// `spooler-fsync`, synced).
    pub fn spool(&self, vars: &Vars, body: &[u8]) -> Result<PathBuf, SpoolError> {
        let bytes = task::encode(vars, body)?;
        self.spool_bytes(vars, &bytes)
    }

    /// Spool a task whose vars block arrived in a remote enqueue packet (modifier1 17).
    pub fn spool_block(&self, block: &[u8]) -> Result<PathBuf, SpoolError> {
        let bytes = task::encode_block(block)?;
        let parsed = task::parse(&bytes)?;
        let mut vars = Vars::new();
        for (k, v) in &parsed.vars {
            vars.push(k, v);
        }
        self.spool_bytes(&vars, &bytes)
    }

    fn spool_bytes(&self, vars: &Vars, bytes: &[u8]) -> Result<PathBuf, SpoolError> {
        let dir = match vars.get(b"spooler") {
            Some(wanted) => {
                let wanted = Path::new(std::str::from_utf8(wanted).map_err(|_| {
                    SpoolError::UnknownSpooler(String::from_utf8_lossy(wanted).into_owned())
                })?);
                self.dirs()
                    .find(|d| *d == wanted || std::fs::canonicalize(wanted).is_ok_and(|w| w == *d))
                    .ok_or_else(|| SpoolError::UnknownSpooler(wanted.display().to_string()))?
            }
            None => self.dirs().next().ok_or(SpoolError::NoSpooler)?,
        };
        let priority = vars.get(b"priority").map(check_priority).transpose()?;
        let at = vars.get(b"at").map(parse_at).transpose()?;
        let path = write::write_task(
            dir,
            &task_name(&self.hostname),
            priority,
            at,
            bytes,
            self.settings.fsync,
        )?;
        if at.is_none() {
            self.wake(dir);
        }
        Ok(path)
    }

    /// Send `SIGUSR1` to every idle spooler of `dir` (see the module docs).
    fn wake(&self, dir: &Path) {
        fence(Ordering::SeqCst);
        for id in 1..=self.process_count() as u32 {
            if self.dir_of(id) != Some(dir) {
                continue;
            }
            let Some(row) = self.board.get(id) else {
                continue;
            };
            let pid = row.pid();
            if pid > 0 && row.status() == WorkerStatus::Idle {
                let _ = ruwsgi_sys::signals::kill(Pid::from_raw(pid), Signal::SIGUSR1);
            }
        }
    }

    /// `spooler_jobs()`: the task files of the first spooler directory (not its priority
    /// sub-directories): regular files named `uwsgi_spoolfile_on_*`, readable and writable by
    /// their owner.
    pub fn jobs(&self) -> Vec<PathBuf> {
        let Some(dir) = self.dirs().next() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(PREFIX))
            .filter(|e| {
                e.metadata().is_ok_and(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.is_file() && crate::write::is_complete(m.mode())
                })
            })
            .map(|e| e.path())
            .collect()
    }

    /// `spooler_get_task(path)`: the task, unless it is missing, locked by a running
    /// spooler, or not a spool file.
    pub fn get_task(path: &Path) -> Option<Task> {
        task::parse(&read_unlocked(path)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tag: &str) -> (SpoolerSettings, PathBuf) {
        let base =
            std::env::temp_dir().join(format!("ruwsgi-spoolers-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let s = SpoolerSettings {
            dirs: vec![base.join("a"), base.join("b")],
            external: vec![base.join("ext")],
            processes: 2,
            ..SpoolerSettings::default()
        };
        (s, base)
    }

    #[test]
    fn spool_writes_into_the_chosen_directory() {
        let (s, base) = settings("spool");
        let sp = Spoolers::on_heap(&s).unwrap();
        assert_eq!(sp.process_count(), 4);
        assert_eq!(sp.dir_of(3), Some(sp.local_dirs()[1].as_path()));
        let mut v = Vars::new();
        v.push(b"k", b"v");
        let p = sp.spool(&v, b"body").unwrap();
        assert_eq!(p.parent().unwrap(), sp.local_dirs()[0]);
        assert_eq!(sp.jobs(), vec![p.clone()]);
        let t = Spoolers::get_task(&p).unwrap();
        assert_eq!(t.body.as_deref(), Some(&b"body"[..]));
        let ext = base.join("ext");
        v.push(b"spooler", ext.to_str().unwrap().as_bytes());
        let p = sp.spool(&v, b"").unwrap();
        assert!(p.starts_with(std::fs::canonicalize(&ext).unwrap()));
        let mut bad = Vars::new();
        bad.push(b"spooler", b"/nonexistent/spool");
        assert!(matches!(
            sp.spool(&bad, b""),
            Err(SpoolError::UnknownSpooler(_))
        ));
        sp.set_frequency(7);
        assert_eq!(sp.frequency(), Duration::from_secs(7));
        sp.set_frequency(0);
        assert_eq!(sp.frequency(), Duration::from_secs(30));
        let _ = std::fs::remove_dir_all(&base);
    }
}
