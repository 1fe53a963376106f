//! Signals as readable bytes: the self-pipe trick.
//!
//! A handler may only do async-signal-safe work, so [`SignalPipe`]'s handler writes the
//! signal number as one byte into a non-blocking, close-on-exec pipe and returns; the
//! process's loop polls the read end ([`SignalPipe::fd`]) and decodes the bytes with
//! [`SignalPipe::drain`]. The write end's number lives in a process-global atomic because
//! a handler has no other way to find it: there is one active pipe per process, and
//! installing a new one (a worker after fork) retargets every handler to it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// The write end of the active pipe, or -1. Written by `install`/`drop` (normal context),
/// read by the handler; an atomic is the only primitive a signal handler may touch.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signum: libc::c_int) {
    let saved = Errno::last_raw();
    let fd = WRITE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // Signal numbers on Linux are 1..=64, so they fit a byte.
        let byte = signum as u8;
        // SAFETY: write(2) is async-signal-safe; `byte` is a valid one-byte buffer on this
        // stack frame. A full pipe (EAGAIN) just drops the byte: enough are already queued
        // to wake the loop, and every reader treats a signal as level information.
        let _ = unsafe { libc::write(fd, std::ptr::addr_of!(byte).cast(), 1) };
    }
    Errno::set_raw(saved);
}

/// A self-pipe receiving the signals it was installed for.
///
/// Dropping it detaches the handlers from the pipe (they stay installed and do nothing) and
/// closes both ends. Drop it only while no other thread can be inside the handler (the
/// master is single-threaded; a worker drops it at exit), otherwise a late handler could
/// write its byte into a recycled fd number.
#[derive(Debug)]
pub struct SignalPipe {
    /// Polled by the owning loop; non-blocking, close-on-exec.
    read: OwnedFd,
    /// Target of the handlers (through `WRITE_FD`); kept here only to own and close it.
    write: OwnedFd,
}

impl SignalPipe {
    /// Create the pipe and install the handler for every signal in `signals` (with
    /// `SA_RESTART`; `SIGCHLD` also gets `SA_NOCLDSTOP`). Replaces any previously
    /// installed pipe as the handlers' target.
    pub fn install(signals: &[Signal]) -> io::Result<SignalPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        WRITE_FD.store(write.as_raw_fd(), Ordering::SeqCst);
        for &sig in signals {
            let mut flags = SaFlags::SA_RESTART;
            if sig == Signal::SIGCHLD {
                flags |= SaFlags::SA_NOCLDSTOP;
            }
            let action = SigAction::new(SigHandler::Handler(on_signal), flags, SigSet::empty());
            // SAFETY: `on_signal` only loads an atomic, calls write(2) and saves/restores
            // errno, all async-signal-safe; it touches no Rust state that could be mid-update.
            unsafe { sigaction(sig, &action) }?;
        }
        Ok(SignalPipe { read, write })
    }

    /// The read end, to poll for `POLLIN`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Read every pending signal byte, in arrival order (duplicates kept).
    pub fn drain(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match nix::unistd::read(&self.read, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend(
                        buf[..n]
                            .iter()
                            .filter_map(|&b| Signal::try_from(i32::from(b)).ok()),
                    );
                    if n < buf.len() {
                        break;
                    }
                }
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        let _ = WRITE_FD.compare_exchange(
            self.write.as_raw_fd(),
            -1,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

/// Restore the default disposition of each signal (a child undoing the master's handlers).
pub fn reset_default(signals: &[Signal]) -> io::Result<()> {
    for &sig in signals {
        // SAFETY: SIG_DFL installs no Rust code as a handler.
        unsafe {
            sigaction(
                sig,
                &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()),
            )
        }?;
    }
    Ok(())
}

/// Ignore `sig` (ruwsgi ignores `SIGPIPE` in every process: a vanished client is an `EPIPE`
/// on write, not a death).
pub fn ignore(sig: Signal) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no Rust code as a handler.
    unsafe {
        sigaction(
            sig,
            &SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty()),
        )
    }?;
    Ok(())
}

/// Unblock every signal for the calling thread (the mask is inherited across fork and exec).
pub fn unblock_all() -> io::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    Ok(())
}

/// Block every signal for the calling thread and return the previous mask (the master
/// around `fork` and `execve`, so no handler runs in a child before it has reset them).
pub fn block_all() -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    Ok(old)
}

/// Restore a mask returned by [`block_all`].
pub fn restore_mask(mask: &SigSet) -> io::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None)?;
    Ok(())
}

/// Send `sig` to process `pid`.
pub fn kill(pid: nix::unistd::Pid, sig: Signal) -> io::Result<()> {
    nix::sys::signal::kill(pid, sig)?;
    Ok(())
}

/// The signal that asks a child to write every thread's stack to the log (before a
/// harakiri kill): a real-time signal nothing else in the server uses. Children ignore it
/// until their language plugin installs a handler ([`ignore_traceback_signal`]).
pub fn traceback_signal() -> i32 {
    libc::SIGRTMIN() + 4
}

/// Ignore [`traceback_signal`] (a child, right after fork: a real-time signal would
/// otherwise end a process with no handler for it).
pub fn ignore_traceback_signal() -> io::Result<()> {
    // SAFETY: a sigaction with SIG_IGN and an empty mask; no Rust code becomes a handler.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_IGN;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(traceback_signal(), &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Send signal number `signum` (any, real-time included) to `pid`.
pub fn kill_number(pid: nix::unistd::Pid, signum: i32) -> io::Result<()> {
    // SAFETY: kill(2) only; an invalid number is reported as EINVAL.
    if unsafe { libc::kill(pid.as_raw(), signum) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traceback_signal_is_ignored_once_asked() {
        let _g = crate::test_lock();
        ignore_traceback_signal().unwrap();
        // ignored: the test process survives it
        kill_number(nix::unistd::getpid(), traceback_signal()).unwrap();
        assert!(traceback_signal() > libc::SIGRTMIN() && traceback_signal() < libc::SIGRTMAX());
    }

    #[test]
    fn raised_signal_shows_up_as_a_byte() {
        let _g = crate::test_lock();
        let pipe = SignalPipe::install(&[Signal::SIGUSR2]).unwrap();
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        assert_eq!(pipe.drain(), vec![Signal::SIGUSR2, Signal::SIGUSR2]);
        assert!(pipe.drain().is_empty());
        drop(pipe);
        reset_default(&[Signal::SIGUSR2]).unwrap();
    }
}
