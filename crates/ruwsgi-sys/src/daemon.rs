//! `daemonize` / `daemonize2`: leaving the terminal.
//!
//! Detaching is a fork whose parent leaves at once with status 0 while the child goes on as
//! the server: it starts a new session (no controlling terminal, no signals from the
//! terminal's `^C`), reads stdin from `/dev/null`, and writes stdout and stderr to the log
//! file it was given (or keeps them when `logto` already redirected them).

use std::io;
use std::os::fd::OwnedFd;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

use crate::fork::ForkResult;
use crate::process::exit_now;

/// The number of threads of this process, from `/proc/self/status` (`None` if unreadable).
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}

/// In the process that goes on after the detaching fork: new session, stdin from
/// `/dev/null`, stdout and stderr to `log` when given.
pub fn detach_session(log: Option<OwnedFd>) -> io::Result<()> {
    nix::unistd::setsid()?;
    let null = open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())?;
    nix::unistd::dup2_stdin(&null)?;
    match log {
        Some(file) => {
            nix::unistd::dup2_stdout(&file)?;
            nix::unistd::dup2_stderr(&file)?;
        }
        None => {
            // Not a terminal any more: anything written to stdout would be lost or block.
            nix::unistd::dup2_stdout(&null)?;
        }
    }
    Ok(())
}

/// Detach a process that runs no thread but the calling one (the binary before anything
/// started): fork, the parent exits 0 with `_exit`, the child continues from here in a new
/// session ([`detach_session`]). Refuses (an error, nothing done) when the process has more
/// than one thread.
pub fn daemonize_single_threaded(log: Option<OwnedFd>) -> io::Result<()> {
    if thread_count() != Some(1) {
        return Err(io::Error::other(
            "cannot detach: the process is not single-threaded",
        ));
    }
    // SAFETY: the process was just checked to have a single thread (this one), so no lock
    // can be held by a thread missing in the child. The parent leaves through `exit_now`
    // without running anything else, and the child is the same program carrying on, which is
    // the point of daemonizing: it returns into the caller's frames as the only copy.
    match unsafe { crate::fork::fork() }? {
        ForkResult::Parent { .. } => exit_now(0),
        ForkResult::Child => detach_session(log),
    }
}
