//! Log lines written with one `write(2)` each, so lines from many processes never mix.
//!
//! The master and every worker share fd 2 (a terminal, a pipe or an `O_APPEND` file). A
//! single `write(2)` of at most `PIPE_BUF` bytes is atomic on a pipe, and `O_APPEND` writes
//! are atomic with respect to the file offset, so building the whole line (newline
//! included) in one buffer before writing is what keeps lines whole. No lock is taken:
//! this is called from the single-threaded master, from forked children right after fork,
//! and from worker threads.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

/// Lines up to this length are assembled on the stack; longer ones use the heap.
const STACK_LINE: usize = 1024;

/// Write `line` followed by `\n` to fd 2 in one `write(2)` call (retried on `EINTR`; a
/// short write, which only happens on a full pipe or disk, is completed by further writes).
/// Errors are ignored: there is nowhere left to report them.
pub fn log_line(line: &str) {
    log_line_to(io::stderr().as_fd(), line);
}

/// [`log_line`] to `fd` rather than fd 2 (the real log while fd 2 is the log pipe).
pub fn log_line_to(fd: BorrowedFd<'_>, line: &str) {
    if let Some(prefix) = DATE_PREFIX.get() {
        let mut dated = date_prefix(prefix);
        dated.push_str(line);
        return log_bytes(fd, dated.as_bytes());
    }
    log_bytes(fd, line.as_bytes());
}

/// What `logdate` puts before each line.
enum DatePrefix {
    Ctime,
    Format(String),
}

static DATE_PREFIX: std::sync::OnceLock<DatePrefix> = std::sync::OnceLock::new();

/// `logdate`: from now on, [`log_line`] starts every line with the local date and ` - `, in
/// C's `ctime` layout (`None`) or with a strftime `format`. Set once, before the first line;
/// later calls are ignored.
pub fn set_date_prefix(format: Option<String>) {
    let _ = DATE_PREFIX.set(match format {
        None => DatePrefix::Ctime,
        Some(f) => DatePrefix::Format(f),
    });
}

fn date_prefix(prefix: &DatePrefix) -> String {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let mut out = String::with_capacity(64);
    if let Some(t) = crate::localtime::local_time(unix) {
        match prefix {
            DatePrefix::Ctime => crate::logdate::ctime(&mut out, &t),
            DatePrefix::Format(f) => crate::logdate::strftime(&mut out, f, &t, unix),
        }
    }
    out.push_str(" - ");
    out
}

fn log_bytes(fd: BorrowedFd<'_>, bytes: &[u8]) {
    if bytes.len() < STACK_LINE {
        let mut buf = [0u8; STACK_LINE];
        buf[..bytes.len()].copy_from_slice(bytes);
        buf[bytes.len()] = b'\n';
        write_all(fd, &buf[..=bytes.len()]);
    } else {
        let mut buf = Vec::with_capacity(bytes.len() + 1);
        buf.extend_from_slice(bytes);
        buf.push(b'\n');
        write_all(fd, &buf);
    }
}

/// Write all of `buf` to `fd` as it is (no date, no newline added): retried on `EINTR`,
/// completed after a short write, errors ignored. Takes no lock and formats nothing, so a
/// thread may call it while the process forks.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(0) => return,
            Ok(n) => buf = &buf[n..],
            Err(Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}

/// `logto`: open `path` (`O_APPEND|O_CREAT`, mode 0640) and make it fd 2 and fd 1, so the
/// master, every child and anything the app prints end up in the file.
pub fn redirect_stderr_to(path: &Path) -> io::Result<()> {
    let file: OwnedFd = open(
        path,
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o640),
    )?;
    nix::unistd::dup2_stderr(&file)?;
    nix::unistd::dup2_stdout(&file)?;
    Ok(())
}

/// Open a log file as `logto` and `daemonize` do (`O_APPEND|O_CREAT`, mode 0640), without
/// redirecting anything yet: callers that must fail before detaching check the path first.
pub fn open_log_file(path: &Path) -> io::Result<OwnedFd> {
    Ok(open(
        path,
        OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o640),
    )?)
}
