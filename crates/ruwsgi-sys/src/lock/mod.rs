//! [`RobustMutex`]: a process-shared, robust `pthread` mutex that lives in shared memory.
//!
//! Several processes (the master, workers, mules) lock the same mutex inside a region mapped
//! before fork. Two properties matter more than speed:
//! - *robust*: when the holder dies (SIGKILL, harakiri, a crash) the kernel releases the
//!   mutex on its behalf and the next locker is told so ([`RobustGuard::owner_died`]),
//!   instead of every other process deadlocking;
//! - *error-checking*: locking twice from the same thread fails with
//!   [`LockError::Deadlock`] rather than hanging, and unlocking a mutex the thread does not
//!   hold fails with [`LockError::NotOwner`].
//!
//! A `RobustMutex` is never built by value: it is found in zero-filled shared memory (a
//! typed region of `ruwsgi-shm`), where all-zero bytes mean "not initialised yet", and is
//! initialised in place once with [`RobustMutex::init`]. Every other method refuses to touch
//! an uninitialised mutex ([`LockError::Uninitialised`]).

use std::cell::UnsafeCell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;

/// `RobustMutex::state` values. Zero must stay "uninitialised": it is what fresh memory holds.
const UNINIT: u32 = 0;
const INITIALISING: u32 = 1;
const READY: u32 = 2;

/// How long [`RobustMutex::init`] waits for a concurrent initialisation by someone else.
const INIT_WAIT: Duration = Duration::from_secs(1);

/// Robust mutexes currently held by threads of this process (acquired and not yet
/// unlocked, including leaked guards). glibc links every held robust mutex into a per-thread
/// list *through the mutex's own memory*, and walks that list on later lock and unlock
/// calls; freeing the memory of a held mutex would leave the list pointing at unmapped or
/// reused memory. [`crate::SharedRegion`]'s drop reads this count and leaks its memory
/// instead of freeing it while the count is non-zero. An approximation on the safe side:
/// it counts locks in every region, and a thread that exits holding one keeps it counted.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// True while some thread of this process holds a robust mutex (see `HELD`).
pub(crate) fn any_held() -> bool {
    HELD.load(Ordering::Acquire) != 0
}

/// Why a [`RobustMutex`] operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// The mutex has not been initialised ([`RobustMutex::init`]).
    #[error("lock used before it was initialised")]
    Uninitialised,
    /// [`RobustMutex::try_lock`]: another thread or process holds it.
    #[error("lock is held by someone else")]
    WouldBlock,
    /// [`RobustMutex::lock_timeout`]: still held by someone else when the time ran out.
    #[error("timed out waiting for the lock")]
    TimedOut,
    /// The calling thread already holds it (locking again would deadlock).
    #[error("lock already held by this thread")]
    Deadlock,
    /// [`RobustMutex::unlock`]: the calling thread does not hold it.
    #[error("lock not held by this thread")]
    NotOwner,
    /// The mutex was left unusable by an earlier owner's death that nobody repaired. This
    /// type marks every recovered mutex consistent, so only foreign code can cause it.
    #[error("lock is not recoverable")]
    NotRecoverable,
    /// Any other error from the pthread call.
    #[error("lock: {0}")]
    Os(Errno),
}

impl LockError {
    fn from_rc(rc: libc::c_int) -> LockError {
        match rc {
            libc::EBUSY => LockError::WouldBlock,
            libc::ETIMEDOUT => LockError::TimedOut,
            libc::EDEADLK => LockError::Deadlock,
            libc::EPERM => LockError::NotOwner,
            libc::ENOTRECOVERABLE => LockError::NotRecoverable,
            other => LockError::Os(Errno::from_raw(other)),
        }
    }
}

/// A process-shared, robust, error-checking mutex protecting no data of its own (a lock
/// word for data laid out next to it, or a user lock).
///
/// # Memory contract
///
/// There is no constructor: the value is only ever reached through a reference into
/// zero-filled memory shared by the processes that use it, and all-zero bytes are its valid
/// "uninitialised" state. It must never be moved or copied once initialised (the type is
/// neither `Clone` nor constructible, so safe code cannot). Whoever lays out the memory calls
/// [`init`](Self::init) once, normally the master before the first fork; until then every
/// locking method returns [`LockError::Uninitialised`]. `pthread_mutex_destroy` is never
/// called: the mutex ends with the memory that holds it.
#[repr(C)]
pub struct RobustMutex {
    /// `UNINIT` → `INITIALISING` → `READY`, each step published with `Release`; `raw` is
    /// touched by `pthread_*` calls only after reading `READY` with `Acquire`.
    state: AtomicU32,
    /// The pthread mutex, written by `pthread_mutex_init` once and afterwards only through
    /// the pthread calls, which synchronise among themselves.
    raw: UnsafeCell<libc::pthread_mutex_t>,
}

// SAFETY: every access to `raw` goes through the pthread mutex functions, which are safe to
// call concurrently from any thread (of any process, for a PTHREAD_PROCESS_SHARED mutex), and
// `init` writes it only while `state` keeps everyone else away.
unsafe impl Sync for RobustMutex {}

impl fmt::Debug for RobustMutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustMutex")
            .field("initialised", &self.is_initialised())
            .finish_non_exhaustive()
    }
}

impl RobustMutex {
    /// Initialise the mutex in place (process-shared, robust, error-checking). Idempotent:
    /// a mutex already initialised is left alone and `Ok` returned. When another thread or
    /// process is initialising it at the same moment, waits (up to a second) for it to finish.
    ///
    /// Call it before the memory is shared with processes that will lock it, or at least
    /// before any of them does; they see [`LockError::Uninitialised`] until then.
    pub fn init(&self) -> Result<(), LockError> {
        let started = Instant::now();
        loop {
            match self.state.compare_exchange(
                UNINIT,
                INITIALISING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(READY) => return Ok(()),
                Err(_) if started.elapsed() < INIT_WAIT => std::thread::yield_now(),
                Err(_) => return Err(LockError::Uninitialised),
            }
        }
        match init_raw(self.raw.get()) {
            Ok(()) => {
                self.state.store(READY, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                self.state.store(UNINIT, Ordering::Release);
                Err(e)
            }
        }
    }

    /// True once [`init`](Self::init) has completed (in any process sharing the memory).
    pub fn is_initialised(&self) -> bool {
        self.state.load(Ordering::Acquire) == READY
    }

    /// Block until the mutex is acquired.
    ///
    /// When the previous holder died while holding it, the mutex is made consistent again
    /// before this returns and the guard says so ([`RobustGuard::owner_died`]): the caller
    /// holds the lock and must repair (or reset) the data it protects before releasing it.
    pub fn lock(&self) -> Result<RobustGuard<'_>, LockError> {
        let raw = self.ready()?;
        // SAFETY: `raw` points to an initialised process-shared mutex that stays in place as
        // long as `self` is borrowed.
        let rc = unsafe { libc::pthread_mutex_lock(raw) };
        self.acquired(rc)
    }

    /// Acquire the mutex if nobody holds it: [`LockError::WouldBlock`] otherwise. Reports a
    /// dead previous owner as [`lock`](Self::lock) does.
    pub fn try_lock(&self) -> Result<RobustGuard<'_>, LockError> {
        let raw = self.ready()?;
        // SAFETY: as in `lock`.
        let rc = unsafe { libc::pthread_mutex_trylock(raw) };
        self.acquired(rc)
    }

    /// Like [`lock`](Self::lock), giving up with [`LockError::TimedOut`] after `timeout`.
    ///
    /// The deadline is on the wall clock (`CLOCK_REALTIME`, the only clock
    /// `pthread_mutex_timedlock` takes), so a clock step during the wait shortens or
    /// lengthens it.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<RobustGuard<'_>, LockError> {
        let raw = self.ready()?;
        let deadline = realtime_deadline(timeout);
        // SAFETY: as in `lock`; `deadline` is a valid timespec on this stack frame.
        let rc = unsafe { libc::pthread_mutex_timedlock(raw, &deadline) };
        self.acquired(rc)
    }

    /// Release the mutex held by the calling thread without a guard: the counterpart of
    /// [`RobustGuard::leak`], for locks whose holding spans calls (`uwsgi.lock()` /
    /// `uwsgi.unlock()`). [`LockError::NotOwner`] if this thread does not hold it.
    ///
    /// Only for a mutex that protects nothing the type system knows about: a wrapper that
    /// hands out references to protected data through its guards must not expose this.
    pub fn unlock(&self) -> Result<(), LockError> {
        let raw = self.ready()?;
        // SAFETY: as in `lock`; an error-checking mutex rejects an unlock by a non-owner
        // with EPERM instead of releasing it.
        match unsafe { libc::pthread_mutex_unlock(raw) } {
            0 => {
                HELD.fetch_sub(1, Ordering::Release);
                Ok(())
            }
            rc => Err(LockError::from_rc(rc)),
        }
    }

    fn ready(&self) -> Result<*mut libc::pthread_mutex_t, LockError> {
        if self.is_initialised() {
            Ok(self.raw.get())
        } else {
            Err(LockError::Uninitialised)
        }
    }

    /// Turn the return code of a lock call into a guard or an error.
    fn acquired(&self, rc: libc::c_int) -> Result<RobustGuard<'_>, LockError> {
        let owner_died = match rc {
            0 => false,
            libc::EOWNERDEAD => true,
            rc => return Err(LockError::from_rc(rc)),
        };
        HELD.fetch_add(1, Ordering::Relaxed);
        let guard = RobustGuard {
            mutex: self,
            owner_died,
            _not_send: PhantomData,
        };
        if owner_died {
            // SAFETY: the mutex is initialised and held by this thread in the inconsistent
            // state EOWNERDEAD reports, which is what pthread_mutex_consistent expects.
            let rc = unsafe { libc::pthread_mutex_consistent(self.raw.get()) };
            if rc != 0 {
                drop(guard);
                return Err(LockError::from_rc(rc));
            }
        }
        Ok(guard)
    }
}

/// Set up a process-shared, robust, error-checking mutex at `raw`.
fn init_raw(raw: *mut libc::pthread_mutex_t) -> Result<(), LockError> {
    let mut attr = MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(LockError::from_rc(rc))
        }
    };
    // SAFETY: `attr` is writable storage for an attribute object, initialised by this call.
    check(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
    let attr = attr.as_mut_ptr();
    // SAFETY: `attr` was initialised above; `raw` is exclusively ours while `state` is
    // INITIALISING (see `RobustMutex::init`), and it is destroyed right after use.
    let result = unsafe {
        check(libc::pthread_mutexattr_setpshared(
            attr,
            libc::PTHREAD_PROCESS_SHARED,
        ))
        .and_then(|()| {
            check(libc::pthread_mutexattr_setrobust(
                attr,
                libc::PTHREAD_MUTEX_ROBUST,
            ))
        })
        .and_then(|()| {
            check(libc::pthread_mutexattr_settype(
                attr,
                libc::PTHREAD_MUTEX_ERRORCHECK,
            ))
        })
        .and_then(|()| check(libc::pthread_mutex_init(raw, attr)))
    };
    // SAFETY: `attr` is initialised and not used afterwards.
    unsafe { libc::pthread_mutexattr_destroy(attr) };
    result
}

/// `CLOCK_REALTIME` now + `timeout`, saturating far in the future.
fn realtime_deadline(timeout: Duration) -> libc::timespec {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let at = now.saturating_add(timeout);
    libc::timespec {
        tv_sec: libc::time_t::try_from(at.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: at.subsec_nanos().into(),
    }
}

/// Proof that the calling thread holds a [`RobustMutex`]; dropping it unlocks.
///
/// Not `Send`: a pthread mutex must be unlocked by the thread that locked it.
#[must_use = "dropping the guard unlocks the mutex at once"]
pub struct RobustGuard<'a> {
    mutex: &'a RobustMutex,
    owner_died: bool,
    /// Keeps the guard on its thread (raw pointers are neither `Send` nor `Sync`).
    _not_send: PhantomData<*const ()>,
}

impl fmt::Debug for RobustGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobustGuard")
            .field("owner_died", &self.owner_died)
            .finish_non_exhaustive()
    }
}

impl RobustGuard<'_> {
    /// True when the previous holder died holding the mutex: the data it protects may be
    /// half-updated and must be repaired before the guard is dropped. The mutex itself has
    /// already been marked consistent, so it stays usable whatever the caller does.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Keep the mutex locked past the guard; release it later, from this thread, with
    /// [`RobustMutex::unlock`].
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for RobustGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: the mutex is initialised (a guard exists) and was locked by this thread
        // (guards do not cross threads). Should the unlock fail anyway (the mutex was released
        // through `RobustMutex::unlock` meanwhile), nothing changes.
        if unsafe { libc::pthread_mutex_unlock(self.mutex.raw.get()) } == 0 {
            HELD.fetch_sub(1, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests;
