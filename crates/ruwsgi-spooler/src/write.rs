//! Spool file names and the atomic write.
//!
//! Design decision: a task is written under a temporary name that the scanner never picks
//! (it does not start with [`PREFIX`]), then renamed to its final name in the same
//! directory. `rename` is atomic, so a scanner sees either no task or the whole task: a
//! writer killed mid-write leaves only a temporary file, which never runs. With `fsync`
//! (the `spooler-fsync` option, on by default) the file's data is synced before the rename
//! and the directory after it, so a task whose path `spool()` returned also survives a
//! power loss; without it the write is as durable as the page cache (it survives any
//! process death, which is uWSGI's behaviour).

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    if text.is_empty() || text == "." || text == ".." || text.contains(['/', '\0']) || text.len() > 255
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
    if !secs.is_finite() || secs < 0.0 || secs > 1e12 {
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
    let temp = dir.join(format!("{TEMP_PREFIX}{name}"));
    let path = dir.join(name);
    let written = (|| -> std::io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&temp)?;
        file.write_all(bytes)?;
        if let Some(at) = at {
            file.set_times(std::fs::FileTimes::new().set_accessed(at).set_modified(at))?;
        }
        if fsync {
            file.sync_data()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(SpoolError::io(&temp, e));
    }
    if let Err(e) = std::fs::rename(&temp, &path) {
        let _ = std::fs::remove_file(&temp);
        return Err(SpoolError::io(&path, e));
    }
    if fsync {
        sync_dir(&dir).map_err(|e| SpoolError::io(&dir, e))?;
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
