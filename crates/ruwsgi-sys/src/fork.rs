//! `fork(2)`, with the precondition ruwsgi relies on spelled out.
//!
//! ruwsgi forks only from its single-threaded master (ARCHITECTURE §1), usually through a
//! language plugin's fork wrapper. The child runs only async-signal-safe code until it has
//! re-initialised its runtime, and leaves with [`crate::process::exit_now`].

pub use nix::unistd::ForkResult;

/// Fork the calling process.
///
/// # Safety
///
/// The calling process must be single-threaded (or, at the very least, no other thread may
/// hold a lock the child will take: the allocator's, stdio's, the interpreter's). Only the
/// calling thread exists in the child, so any lock held by another thread stays locked
/// forever there. In the child, until the process has rebuilt its state, only
/// async-signal-safe work should be done, and the child must leave through
/// [`crate::process::exit_now`] rather than returning into the parent's stack frames.
pub unsafe fn fork() -> nix::Result<ForkResult> {
    // SAFETY: the caller upholds the single-threaded precondition documented above, which is
    // exactly the precondition of `nix::unistd::fork`.
    unsafe { nix::unistd::fork() }
}

/// Forks seen in this process's lineage: incremented in every child right after fork
/// (whoever forked: ruwsgi's master or application code calling `os.fork()`).
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

extern "C" fn count_fork_in_child() {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A number that changes in a child after every fork, read without a system call: state
/// that must not be shared with the parent (a kept connection) records it and is dropped
/// when it no longer matches. The first call installs the at-fork handler, so call it once
/// before any fork that matters (forks before that are not counted).
pub fn generation() -> u64 {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // SAFETY: registers a child handler that only does an atomic increment
        // (async-signal-safe, allocation-free); no prepare or parent handler.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(count_fork_in_child)) };
        if rc != 0 {
            crate::log_line(&format!("ruwsgi: pthread_atfork failed ({rc})"));
        }
    });
    GENERATION.load(std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn generation_changes_in_a_forked_child() {
        let before = super::generation();
        // SAFETY: the child only reads an atomic and leaves with _exit.
        match unsafe { super::fork() }.unwrap() {
            super::ForkResult::Child => {
                let code = i32::from(super::generation() == before + 1);
                crate::process::exit_now(if code == 1 { 0 } else { 1 });
            }
            super::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
                assert_eq!(super::generation(), before);
            }
        }
    }
}
