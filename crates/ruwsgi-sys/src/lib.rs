//! Every unsafe OS call ruwsgi makes, wrapped once, with owned file descriptors.
//!
//! The rest of the workspace denies `unsafe_code`; this crate is where fork, signal
//! handlers, shared mappings, process titles, privilege changes and socket setup live.
//! Each `unsafe` block carries a `// SAFETY:` line and each `unsafe fn` a `# Safety`
//! section. Calls go through `nix`; `libc` is used only where `nix` lacks the call.
//!
//! # Layout
//! - [`fork`](mod@fork): [`fork::fork`], the only way ruwsgi forks (single-threaded precondition).
//! - [`signals`]: [`SignalPipe`], a self-pipe signal source for the master and workers,
//!   plus [`signals::reset_default`], [`signals::ignore`], [`signals::unblock_all`].
//! - [`process`]: parent-death signal, `_exit`, process titles, privilege drop.
//! - [`socket`]: address parsing, binding listeners, passing them across a re-exec.
//! - [`log`]: one-`write(2)` log lines on fd 2 and `logto` redirection.
//! - [`logpipe`]: [`logpipe::LogPipe`], fd 2 turned into a pipe for the log master.
//! - [`daemon`]: `daemonize`/`daemonize2`: detach into a new session.
//! - [`logdate`]: the `logdate` prefix of log lines (ctime or strftime).
//! - [`mmap`]: [`SharedRegion`], anonymous shared memory that survives fork.
//! - [`lock`]: [`RobustMutex`], a process-shared robust mutex placed in shared memory.
//! - [`localtime`]: local calendar time (`TZ` honoured) for log dates.
//! - [`rawfd`]: epoll, poll, read and write on descriptors known only by number (async mode).
#![allow(unsafe_code)]

pub mod daemon;
pub mod fork;
pub mod localtime;
pub mod lock;
pub mod log;
pub mod logdate;
pub mod logpipe;
pub mod memory;
pub mod mmap;
pub mod process;
pub mod rawfd;
pub mod signals;
pub mod socket;

pub use fork::{fork, ForkResult};
pub use lock::{LockError, RobustGuard, RobustMutex};
pub use log::log_line;
pub use mmap::{mmap_shared_anon, SharedRegion};
pub use nix::sys::signal::{SigSet, Signal};
pub use nix::unistd::Pid;
pub use signals::SignalPipe;
pub use socket::{
    bind_listener, local_addr, parse_addr, AddrError, BindAddr, ListenOptions, ParsedAddr,
};

#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// Serialises this crate's unit tests that touch process-global state (signal handlers,
/// fork, the process title), per STYLE R14.
#[cfg(test)]
pub(crate) fn test_lock() -> std::sync::MutexGuard<'static, ()> {
    testing::fork_lock()
}
