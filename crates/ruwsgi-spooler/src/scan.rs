//! Which task files are due, and the lock a spooler holds on a task while it runs.
//!
//! Design decision: the lock is an OFD (open file description) write lock on the whole
//! file, taken without waiting. It is released when the holder closes the file or dies, so
//! a SIGKILLed spooler never leaves a task locked; it belongs to the open file, not the
//! process, so two spoolers (forked processes) never both hold it; and it conflicts with
//! classic `fcntl` locks, which uWSGI takes on the spool files it writes and runs, so an
//! external uWSGI instance sharing a directory is excluded as well.

use std::cmp::Ordering;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

use crate::task::PREFIX;

/// The result of one scan.
#[derive(Debug, Default)]
pub struct Scan {
    /// Task files due now, in run order.
    pub due: Vec<PathBuf>,
    /// The earliest `at` of a task not due yet.
    pub next_at: Option<SystemTime>,
}

/// Scan `dir` for task files due at `now`: regular files named [`PREFIX`]`*`, readable and
/// writable by their owner (a file still being written is 0200), whose mtime (their `at`)
/// is not in the future. `ordered`: numeric sub-directories first (lowest
/// number first), then the directory itself, each in version order; otherwise the
/// directory's own order and no sub-directory.
pub fn scan(dir: &Path, ordered: bool, now: SystemTime) -> Scan {
    let mut out = Scan::default();
    if ordered {
        let mut priorities: Vec<(u64, PathBuf)> = entries(dir)
            .filter_map(|(name, path)| {
                let n = name.parse::<u64>().ok()?;
                path.is_dir().then_some((n, path))
            })
            .collect();
        priorities.sort();
        for (_, sub) in priorities {
            scan_one(&sub, true, now, &mut out);
        }
    }
    scan_one(dir, ordered, now, &mut out);
    out
}

fn entries(dir: &Path) -> impl Iterator<Item = (String, PathBuf)> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
}

fn scan_one(dir: &Path, sorted: bool, now: SystemTime, out: &mut Scan) {
    let mut due = Vec::new();
    for (name, path) in entries(dir) {
        if !name.starts_with(PREFIX) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() || !crate::write::is_complete(meta.mode()) {
            continue;
        }
        let mtime = meta.modified().unwrap_or(now);
        if mtime > now {
            out.next_at = Some(out.next_at.map_or(mtime, |t| t.min(mtime)));
            continue;
        }
        due.push((name, path));
    }
    if sorted {
        due.sort_by(|a, b| version_cmp(&a.0, &b.0));
    }
    out.due.extend(due.into_iter().map(|(_, p)| p));
}

/// `strverscmp`-like order: runs of digits compare as numbers.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let na = trim_zeros(&a[..da]);
                let nb = trim_zeros(&b[..db]);
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z.min(d.len().saturating_sub(1))..]
}

/// Why a task could not be taken.
#[derive(Debug)]
pub enum Busy {
    /// Gone (another spooler finished it) or not a regular file any more.
    Gone,
    /// Locked by another process (running, or being written by a uWSGI writer).
    Locked,
    /// Could not be opened or read.
    Io(std::io::Error),
}

/// An open task file with its OFD write lock; dropping it releases the lock.
#[derive(Debug)]
pub struct TaskLock {
    file: File,
    path: PathBuf,
}

fn whole_file(kind: libc::c_int) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Take the OFD lock of kind `kind` on `file` without waiting; false if someone holds a
/// conflicting one.
fn try_lock(file: &File, kind: libc::c_int) -> Result<bool, std::io::Error> {
    match fcntl(file, FcntlArg::F_OFD_SETLK(&whole_file(kind))) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl TaskLock {
    /// Open and lock the task at `path`. A file unlinked between the scan and the lock (its
    /// run ended in another spooler) is [`Busy::Gone`].
    pub fn take(path: &Path) -> Result<TaskLock, Busy> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Busy::Gone),
            Err(e) => return Err(Busy::Io(e)),
        };
        match try_lock(&file, libc::F_WRLCK) {
            Ok(true) => {}
            Ok(false) => return Err(Busy::Locked),
            Err(e) => return Err(Busy::Io(e)),
        }
        let meta = file.metadata().map_err(Busy::Io)?;
        if meta.nlink() == 0 || !meta.is_file() {
            return Err(Busy::Gone);
        }
        Ok(TaskLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The whole file.
    pub fn read(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.file.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The task's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The task is kept for later: set its mtime (its `at`) to `until`, so that no
    /// spooler of the directory, this one or another, runs it before then.
    pub fn defer(&self, until: SystemTime) -> std::io::Result<()> {
        self.file.set_times(
            std::fs::FileTimes::new()
                .set_accessed(until)
                .set_modified(until),
        )
    }

    /// The task completed: remove it while still holding the lock.
    pub fn remove(self) -> std::io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}

/// Read the task at `path` unless another process holds its lock (`spooler_get_task`).
pub fn read_unlocked(path: &Path) -> Option<Vec<u8>> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !try_lock(&file, libc::F_RDLCK).ok()? {
        return None;
    }
    let mut out = Vec::new();
    file.read_to_end(&mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn version_order() {
        let mut v = vec!["a10", "a9", "a009b", "b1", "a9a"];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(v, ["a9", "a9a", "a009b", "a10", "b1"]);
    }

    #[test]
    fn scan_picks_due_task_files_only_and_locks_exclude() {
        let d = std::env::temp_dir().join(format!("ruwsgi-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("3")).unwrap();
        std::fs::create_dir_all(d.join("uwsgi_spoolfile_on_dir")).unwrap();
        for name in [
            "uwsgi_spoolfile_on_b",
            "uwsgi_spoolfile_on_a",
            "garbage",
            ".spooling_x",
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        std::fs::write(d.join("3/uwsgi_spoolfile_on_p"), b"x").unwrap();
        // being written (0200): not taken
        let writing = d.join("uwsgi_spoolfile_on_writing");
        std::fs::write(&writing, b"x").unwrap();
        std::fs::set_permissions(
            &writing,
            std::os::unix::fs::PermissionsExt::from_mode(0o200),
        )
        .unwrap();
        let later = d.join("uwsgi_spoolfile_on_later");
        std::fs::write(&later, b"x").unwrap();
        let future = SystemTime::now() + Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&later)
            .unwrap()
            .set_modified(future)
            .unwrap();
        let s = scan(&d, true, SystemTime::now());
        let names: Vec<_> = s
            .due
            .iter()
            .map(|p| p.strip_prefix(&d).unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "3/uwsgi_spoolfile_on_p",
                "uwsgi_spoolfile_on_a",
                "uwsgi_spoolfile_on_b"
            ]
        );
        assert_eq!(s.next_at, Some(future));
        // unordered: no priority directory
        assert_eq!(scan(&d, false, SystemTime::now()).due.len(), 2);

        let a = d.join("uwsgi_spoolfile_on_a");
        let held = TaskLock::take(&a).unwrap();
        assert!(matches!(TaskLock::take(&a), Err(Busy::Locked)));
        assert!(read_unlocked(&a).is_none());
        held.remove().unwrap();
        assert!(matches!(TaskLock::take(&a), Err(Busy::Gone)));
        assert!(read_unlocked(&d.join("uwsgi_spoolfile_on_b")).is_some());
        let _ = std::fs::remove_dir_all(&d);
    }
}
