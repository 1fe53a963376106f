//! The log pipe: fd 2 (and fd 1 when it is the same file) of the calling process turned
//! into the write end of a pipe, so that one reader sees every log line of this process
//! and of every child it forks afterwards, while the original destination is kept.
//!
//! [`LogPipe::redirect`] keeps a close-on-exec duplicate of the original fd 2 (and fd 1),
//! makes a pipe and `dup2`s its write end onto fd 2 (and fd 1). The read end is
//! non-blocking and close-on-exec; the write end is left blocking, so a writer waits when
//! the pipe is full rather than losing the line. [`LogPipe::restore`] puts the originals
//! back (before the process re-executes itself or leaves), after which the reader sees
//! end-of-file once no other process holds the write end.
//!
//! Lines stay whole through the pipe as long as each one is written with a single
//! `write(2)` of at most `PIPE_BUF` bytes ([`crate::log::log_line`] does so). A larger
//! write of whole lines (a batch of request log lines) stays whole unless the pipe fills
//! meanwhile; the pipe is made [`PIPE_SIZE`] large to keep that rare.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// The capacity asked for the pipe (1 MiB, the default `pipe-max-size`).
pub const PIPE_SIZE: i32 = 1 << 20;

/// The redirection made by [`LogPipe::redirect`].
#[derive(Debug)]
pub struct LogPipe {
    /// The original fd 2.
    real_err: OwnedFd,
    /// The original fd 1, when it was redirected too.
    real_out: Option<OwnedFd>,
    restored: bool,
}

/// Whether `a` and `b` are the same file (device and inode).
pub fn same_file(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (nix::sys::stat::fstat(a), nix::sys::stat::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

impl LogPipe {
    /// Make the pipe and point fd 2 at it; fd 1 too when it is the same file as fd 2 (a
    /// `logto` file, or a terminal both share). Returns the redirection and the read end.
    pub fn redirect() -> io::Result<(LogPipe, OwnedFd)> {
        let stderr = io::stderr();
        let stdout = io::stdout();
        let real_err = stderr.as_fd().try_clone_to_owned()?;
        let real_out = if same_file(stdout.as_fd(), stderr.as_fd()) {
            Some(stdout.as_fd().try_clone_to_owned()?)
        } else {
            None
        };
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&read, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        // Best effort: a roomier pipe fills less often under bursts (a writer only waits,
        // and a write larger than `PIPE_BUF` can only be split, when it is full).
        let _ = fcntl(&read, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
        nix::unistd::dup2_stderr(&write)?;
        if real_out.is_some() {
            if let Err(e) = nix::unistd::dup2_stdout(&write) {
                let _ = nix::unistd::dup2_stderr(&real_err);
                return Err(e.into());
            }
        }
        Ok((
            LogPipe {
                real_err,
                real_out,
                restored: false,
            },
            read,
        ))
    }

    /// The original fd 2: where the log really goes.
    pub fn real_log(&self) -> BorrowedFd<'_> {
        self.real_err.as_fd()
    }

    /// Whether fd 1 was redirected too.
    pub fn has_stdout(&self) -> bool {
        self.real_out.is_some()
    }

    /// Put the original fd 2 (and fd 1) back. Idempotent.
    pub fn restore(&mut self) -> io::Result<()> {
        if self.restored {
            return Ok(());
        }
        nix::unistd::dup2_stderr(&self.real_err)?;
        if let Some(out) = &self.real_out {
            nix::unistd::dup2_stdout(out)?;
        }
        self.restored = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_compares_inodes() {
        let dir = std::env::temp_dir();
        let a = std::fs::File::create(dir.join(format!("ruwsgi-logpipe-{}", std::process::id())))
            .unwrap();
        let again = a.try_clone().unwrap();
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        assert!(same_file(a.as_fd(), again.as_fd()));
        assert!(same_file(r.as_fd(), w.as_fd()), "both ends of one pipe");
        assert!(!same_file(a.as_fd(), r.as_fd()));
        let _ = std::fs::remove_file(dir.join(format!("ruwsgi-logpipe-{}", std::process::id())));
    }
}
