//! Process-shared locks for region layouts: [`RobustMutex`] alone, or [`ShmMutex<T>`] with
//! the plain data it guards.
//!
//! Both are [`ShmSafe`], so a subsystem embeds them in its header or items and initialises
//! each once (`init`) when it creates the region, before the first fork. They are robust:
//! when a holder dies, the next locker gets the lock with `owner_died()` set, repairs the
//! data, and everyone carries on (the pthread mechanics live in `ruwsgi-sys`).

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

pub use ruwsgi_sys::lock::{LockError, RobustGuard, RobustMutex};

use crate::region::{ShmPlain, ShmSafe};

// SAFETY: `ruwsgi-sys` documents all-zero bytes as the mutex's "uninitialised" state and
// refuses to lock it until `init`; every change goes through the pthread calls, which are
// process-shared; it has no drop glue. The list links glibc keeps inside a held robust
// mutex are followed only by the holding thread's own glibc and by the kernel on its behalf,
// in the holder's address space.
#[allow(unsafe_code)]
unsafe impl ShmSafe for RobustMutex {}

/// A process-shared, robust mutex together with the plain data `T` it guards; both live in
/// the region. Like [`RobustMutex`] it has no constructor: it is found zeroed in a
/// [`Region`](crate::Region) and initialised with [`init`](Self::init).
///
/// Forking while a thread holds a guard gives the child a copy of that guard without the
/// lock; [`ruwsgi_sys::fork()`]'s contract (the child does not carry on with the parent's
/// state) is what keeps the copy unused.
#[repr(C)]
pub struct ShmMutex<T> {
    /// Held by at most one thread of one process; whoever holds it owns `data`.
    lock: RobustMutex,
    /// Reached only through a [`ShmGuard`].
    data: UnsafeCell<T>,
}

// SAFETY: `data` is reached only through a `ShmGuard`, which exists only while its thread
// holds `lock` (and never leaves that thread), so at most one `&mut T` exists at a time in
// all processes; `T: Send` lets the data be handed between threads this way.
#[allow(unsafe_code)]
unsafe impl<T: ShmPlain> Sync for ShmMutex<T> {}

// SAFETY: zeroed bytes are an uninitialised `RobustMutex` (see its `ShmSafe`) and a valid
// `T` (`ShmPlain`); `data` changes only under the process-shared lock; neither part holds
// pointers another process would follow or has drop glue; `Sync` is implemented above.
#[allow(unsafe_code)]
unsafe impl<T: ShmPlain> ShmSafe for ShmMutex<T> {}

impl<T> fmt::Debug for ShmMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmMutex")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl<T: ShmPlain> ShmMutex<T> {
    /// Initialise the lock in place (see [`RobustMutex::init`]); the data keeps its bytes.
    pub fn init(&self) -> Result<(), LockError> {
        self.lock.init()
    }

    /// True once [`init`](Self::init) has completed in any process.
    pub fn is_initialised(&self) -> bool {
        self.lock.is_initialised()
    }

    /// Block until the lock is held; see [`ShmGuard::owner_died`].
    pub fn lock(&self) -> Result<ShmGuard<'_, T>, LockError> {
        self.lock.lock().map(|guard| self.guard(guard))
    }

    /// Take the lock if it is free, [`LockError::WouldBlock`] otherwise.
    pub fn try_lock(&self) -> Result<ShmGuard<'_, T>, LockError> {
        self.lock.try_lock().map(|guard| self.guard(guard))
    }

    /// Like [`lock`](Self::lock), [`LockError::TimedOut`] after `timeout` (wall clock).
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ShmGuard<'_, T>, LockError> {
        self.lock
            .lock_timeout(timeout)
            .map(|guard| self.guard(guard))
    }

    fn guard<'a>(&'a self, held: RobustGuard<'a>) -> ShmGuard<'a, T> {
        ShmGuard {
            held,
            data: &self.data,
        }
    }
}

/// Access to the data of a held [`ShmMutex`]; dropping it unlocks. Not `Send`.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct ShmGuard<'a, T> {
    /// The held lock; dropping it unlocks.
    held: RobustGuard<'a>,
    data: &'a UnsafeCell<T>,
}

impl<T> ShmGuard<'_, T> {
    /// True when the previous holder died holding the lock: the data may be half-updated
    /// (each field still a valid value, by [`ShmPlain`]) and must be repaired or reset before
    /// the guard is dropped. The lock itself is already usable again.
    pub fn owner_died(&self) -> bool {
        self.held.owner_died()
    }
}

impl<T> fmt::Debug for ShmGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmGuard")
            .field("owner_died", &self.owner_died())
            .finish_non_exhaustive()
    }
}

impl<T> Deref for ShmGuard<'_, T> {
    type Target = T;

    #[allow(unsafe_code)] // the guard's reason to exist
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock, so no other guard (in any process) exists and
        // nothing else reaches `data`; the reference borrows the guard.
        unsafe { &*self.data.get() }
    }
}

impl<T> DerefMut for ShmGuard<'_, T> {
    #[allow(unsafe_code)] // the guard's reason to exist
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and the guard is borrowed mutably, so this is the only
        // reference to the data.
        unsafe { &mut *self.data.get() }
    }
}

#[cfg(test)]
mod tests;
