//! Spool file names and the atomic write.
//!
//! Design decision: a scanner never takes a task that is not complete. Two ways, by the
//! `spooler-fsync` option:
//! - Off (the default, as uWSGI, which never syncs): the task is created under its final
//!   name with mode 0200, written, then `fchmod`ed 0600. Scanners take only files whose
//!   owner can read and write them, so a writer killed mid-write leaves a 0200 file that
//!   never runs. One directory operation; as durable as the page cache (it survives any
//!   process death, not a power loss).
//! - On: the task is written as an unnamed file in the directory (`O_TMPFILE`), its data
//!   synced, then linked under its final name (`linkat`) and the directory synced; where the
//!   file system lacks `O_TMPFILE` it is written under a temporary name the scanner never
//!   picks (it does not start with [`PREFIX`]) and renamed. A writer killed mid-write leaves
//!   nothing (or a temporary file, which never runs), and a task whose path `spool()`
//!   returned also survives a power loss.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, AT_FDCWD};
use nix::unistd::linkat;

use crate::error::SpoolError;
use crate::task::PREFIX;

/// Prefix of the temporary name a task is written under before its rename.
pub const TEMP_PREFIX: &str = ".spooling_";

/// Per-process counter in the file names.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new task file name: `uwsgi_spoolfile_on_<host>_<pid>_<counter>_<rand>_<sec>_<usec>`.
pub fn task_name(hostname: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(counter);
    let rand = (h.finish() as u32) % 1_000_000_000;
    format!(
        "{PREFIX}{hostname}_{}_{counter}_{rand}_{}_{}",
        std::process::id(),
        now.as_secs(),
        now.subsec_micros()
    )
}

/// A `priority` must be a plain directory name.
pub fn check_priority(priority: &[u8]) -> Result<&str, SpoolError> {
    let bad = || SpoolError::BadPriority(String::from_utf8_lossy(priority).into_owned());
    let text = std::str::from_utf8(priority).map_err(|_| bad())?;
    if text.is_empty()
        || text == "."
        || text == ".."
        || text.contains(['/', '\0'])
        || text.len() > 255
    {
        return Err(bad());
    }
    Ok(text)
}

/// `at`: a unix timestamp, possibly with a fractional part.
pub fn parse_at(at: &[u8]) -> Result<SystemTime, SpoolError> {
    let bad = || SpoolError::BadAt(String::from_utf8_lossy(at).into_owned());
    let secs: f64 = std::str::from_utf8(at)
        .map_err(|_| bad())?
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if !secs.is_finite() || !(0.0..=1e12).contains(&secs) {
        return Err(bad());
    }
    Ok(UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// Write `bytes` as a new task in `dir` (or its `priority` sub-directory, created 0750 if
/// missing), not to run before `at`; returns the task's full path.
pub fn write_task(
    dir: &Path,
    name: &str,
    priority: Option<&str>,
    at: Option<SystemTime>,
    bytes: &[u8],
    fsync: bool,
) -> Result<PathBuf, SpoolError> {
    let dir = match priority {
        Some(p) => {
            let sub = dir.join(p);
            if !sub.is_dir() {
                create_dir(&sub)?;
            }
            sub
        }
        None => dir.to_path_buf(),
    };
    let path = dir.join(name);
    if !fsync {
        return write_marked(&path, at, bytes).map(|()| path);
    }
    if !NO_TMPFILE.load(Ordering::Relaxed) {
        match write_unnamed(&dir, &path, at, bytes, fsync) {
            Ok(()) => return finish(&dir, path, fsync),
            Err(Unnamed::Unsupported) => NO_TMPFILE.store(true, Ordering::Relaxed),
            Err(Unnamed::Failed(e)) => return Err(e),
        }
    }
    let temp = dir.join(format!("{TEMP_PREFIX}{name}"));
    let written = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&temp)?;
        fill(&mut file, at, bytes, fsync)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(SpoolError::io(&temp, e));
    }
    if let Err(e) = std::fs::rename(&temp, &path) {
        let _ = std::fs::remove_file(&temp);
        return Err(SpoolError::io(&path, e));
    }
    finish(&dir, path, fsync)
}

/// Without `fsync`: create the task under its final name with mode 0200 (write-only: the
/// scanner takes only files whose owner can read and write them, as uWSGI's rule says),
/// write it, then `fchmod` it 0600. A writer killed before the `fchmod` leaves a file that
/// never runs; one directory operation and no rename.
fn write_marked(path: &Path, at: Option<SystemTime>, bytes: &[u8]) -> Result<(), SpoolError> {
    use std::os::unix::fs::PermissionsExt;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(INCOMPLETE_MODE)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| SpoolError::io(path, e))?;
    let done = fill(&mut file, at, bytes, false)
        .and_then(|()| file.set_permissions(std::fs::Permissions::from_mode(TASK_MODE)));
    if let Err(e) = done {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(SpoolError::io(path, e));
    }
    Ok(())
}

/// The mode of a complete task file.
pub const TASK_MODE: u32 = 0o600;
/// The mode of a task file being written (never scanned).
pub const INCOMPLETE_MODE: u32 = 0o200;

/// Whether a task file's mode says it is complete (its owner can read and write it).
pub fn is_complete(mode: u32) -> bool {
    mode & TASK_MODE == TASK_MODE
}

/// Set once the directory's file system (or a missing `/proc`) refused an unnamed file:
/// from then on this process writes under a temporary name and renames.
static NO_TMPFILE: AtomicBool = AtomicBool::new(false);

enum Unnamed {
    /// `O_TMPFILE` or the `/proc` link is not available here.
    Unsupported,
    Failed(SpoolError),
}

/// The content, `at` as its times, and the data sync.
fn fill(file: &mut File, at: Option<SystemTime>, bytes: &[u8], fsync: bool) -> std::io::Result<()> {
    file.write_all(bytes)?;
    if let Some(at) = at {
        file.set_times(std::fs::FileTimes::new().set_accessed(at).set_modified(at))?;
    }
    if fsync {
        file.sync_data()?;
    }
    Ok(())
}

/// Write an unnamed file in `dir` (`O_TMPFILE`) and give it its name with `linkat` at the
/// end: one directory operation, and a writer killed before the link leaves nothing.
fn write_unnamed(
    dir: &Path,
    path: &Path,
    at: Option<SystemTime>,
    bytes: &[u8],
    fsync: bool,
) -> Result<(), Unnamed> {
    let mut file = match OpenOptions::new()
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir)
    {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            return Err(Unnamed::Unsupported)
        }
        Err(e) => return Err(Unnamed::Failed(SpoolError::io(dir, e))),
    };
    fill(&mut file, at, bytes, fsync).map_err(|e| Unnamed::Failed(SpoolError::io(path, e)))?;
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    match linkat(
        AT_FDCWD,
        proc_path.as_str(),
        AT_FDCWD,
        path,
        AtFlags::AT_SYMLINK_FOLLOW,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::ENOENT | Errno::EXDEV | Errno::EPERM) if !path.exists() => {
            Err(Unnamed::Unsupported)
        }
        Err(e) => Err(Unnamed::Failed(SpoolError::io(path, e.into()))),
    }
}

/// After the name exists: with `fsync`, sync the directory entry.
fn finish(dir: &Path, path: PathBuf, fsync: bool) -> Result<PathBuf, SpoolError> {
    if fsync {
        sync_dir(dir).map_err(|e| SpoolError::io(dir, e))?;
    }
    Ok(path)
}

/// fsync a directory (its entries: a rename or an unlink in it).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Create `dir` (and its parents) with mode 0750.
pub fn create_dir(dir: &Path) -> Result<(), SpoolError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| SpoolError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ruwsgi-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        create_dir(&d).unwrap();
        d
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let a = task_name("host");
        let b = task_name("host");
        assert_ne!(a, b);
        assert!(a.starts_with("uwsgi_spoolfile_on_host_"));
        assert_eq!(a.split('_').count(), 9, "{a}");
    }

    #[test]
    fn write_is_atomic_and_leaves_no_temporary() {
        let d = tempdir("write");
        let at = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let p = write_task(&d, &task_name("h"), Some("5"), Some(at), b"data", true).unwrap();
        assert_eq!(p.parent().unwrap(), d.join("5"));
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), at);
        let names: Vec<_> = std::fs::read_dir(d.join("5"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn without_fsync_the_file_is_made_readable_last() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempdir("marked");
        let p = write_task(&d, &task_name("h"), None, None, b"data", false).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, TASK_MODE);
        assert!(is_complete(mode) && !is_complete(INCOMPLETE_MODE));
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn unnamed_files_are_linked_whole() {
        let d = tempdir("unnamed");
        let p = d.join(task_name("h"));
        assert!(write_unnamed(&d, &p, None, b"whole", false).is_ok());
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
        // a name that exists is never overwritten
        assert!(matches!(
            write_unnamed(&d, &p, None, b"again", false),
            Err(Unnamed::Failed(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn priorities_and_at_are_checked() {
        assert!(check_priority(b"10").is_ok());
        for bad in [&b""[..], b"..", b"a/b", b"."] {
            assert!(check_priority(bad).is_err());
        }
        assert!(parse_at(b"1700000000.5").is_ok());
        assert!(parse_at(b"soon").is_err());
        assert!(parse_at(b"-1").is_err());
    }
}
