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
