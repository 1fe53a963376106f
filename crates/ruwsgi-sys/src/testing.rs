//! Helpers for tests that fork, shared by the crates whose shared-memory tests fork real
//! children (this one, `ruwsgi-shm`, `ruwsgi-signal`): built for this crate's tests and,
//! with the `testing` feature, for theirs.

use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The longest any wait in these tests may last.
pub const LONG: Duration = Duration::from_secs(10);

/// Serialises a test binary's tests that fork or touch process-global state (signal
/// handlers, the process title), per STYLE R14: a child forked while another test thread
/// holds a lock it needs would hang.
pub fn fork_lock() -> std::sync::MutexGuard<'static, ()> {
    static FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    FORKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait for `child` to exit, at most `timeout`; kill it and fail the test past that.
pub fn wait_exit(child: Pid, timeout: Duration) -> WaitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)).unwrap() {
            WaitStatus::StillAlive if Instant::now() < deadline => sleep(Duration::from_millis(1)),
            WaitStatus::StillAlive => {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                panic!("child {child} still running after {timeout:?}");
            }
            status => return status,
        }
    }
}
