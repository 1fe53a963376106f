//! User locks (`locks N`): locks 0..=N that applications take and release by number
//! (`uwsgi.lock(n)` / `uwsgi.unlock(n)`), shared by every worker, thread and mule.
//!
//! Each lock is a process-shared, robust, error-checking [`RobustMutex`] in one region mapped
//! by the master before the first fork. A holder that dies (SIGKILL, harakiri, a segfault)
//! does not block the others: the next locker gets the lock and is told its previous holder
//! died ([`UserLocks::lock`] returns `true`). A thread that locks a lock it already holds
//! gets [`UserLockError::AlreadyHeld`] instead of deadlocking itself, and unlocking a lock
//! the thread does not hold does nothing.

use ruwsgi_sys::{LockError, RobustMutex};

use std::io;

use crate::region::Region;

/// Why a user-lock operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserLockError {
    /// The number is outside 0..=N.
    #[error("invalid lock number {n} (locks 0 to {max})")]
    Invalid {
        /// The number asked for.
        n: i64,
        /// The highest lock number (`locks N`).
        max: usize,
    },
    /// The calling thread already holds this lock; locking it again would wait forever.
    #[error("lock {0} is already held by this thread")]
    AlreadyHeld(usize),
    /// The mutex failed.
    #[error("lock {n}: {err}")]
    Lock {
        /// The lock number.
        n: usize,
        /// The error.
        err: LockError,
    },
}

/// Locks 0..=N in shared memory.
#[derive(Debug)]
pub struct UserLocks {
    region: Region<(), RobustMutex>,
}

impl UserLocks {
    /// Map locks 0..=`max` (so `max + 1` locks) and initialise them, before any fork.
    pub fn new(max: usize) -> io::Result<UserLocks> {
        Self::ready(Region::map(max + 1)?)
    }

    /// The same on the heap (tests; not shared with forked processes).
    pub fn on_heap(max: usize) -> io::Result<UserLocks> {
        Self::ready(Region::on_heap(max + 1)?)
    }

    fn ready(region: Region<(), RobustMutex>) -> io::Result<UserLocks> {
        for m in region.items() {
            // Fresh zeroed memory nobody else sees yet: init cannot meet a concurrent one.
            m.init().map_err(io::Error::other)?;
        }
        Ok(UserLocks { region })
    }

    /// The highest lock number (`locks N`).
    pub fn max(&self) -> usize {
        self.region.len() - 1
    }

    fn get(&self, n: i64) -> Result<(usize, &RobustMutex), UserLockError> {
        let invalid = UserLockError::Invalid { n, max: self.max() };
        let i = usize::try_from(n).map_err(|_| invalid)?;
        self.region.items().get(i).map(|m| (i, m)).ok_or(invalid)
    }

    /// Wait for lock `n` and keep it until [`unlock`](Self::unlock) from this thread.
    /// `Ok(true)` when its previous holder died holding it (the lock was recovered).
    pub fn lock(&self, n: i64) -> Result<bool, UserLockError> {
        let (i, m) = self.get(n)?;
        match m.lock() {
            Ok(guard) => {
                let died = guard.owner_died();
                guard.leak();
                Ok(died)
            }
            Err(LockError::Deadlock) => Err(UserLockError::AlreadyHeld(i)),
            Err(err) => Err(UserLockError::Lock { n: i, err }),
        }
    }

    /// Release lock `n`: `Ok(true)`, or `Ok(false)` when this thread does not hold it (then
    /// nothing happens).
    pub fn unlock(&self, n: i64) -> Result<bool, UserLockError> {
        let (i, m) = self.get(n)?;
        match m.unlock() {
            Ok(()) => Ok(true),
            Err(LockError::NotOwner) => Ok(false),
            Err(err) => Err(UserLockError::Lock { n: i, err }),
        }
    }

    /// Whether some thread (this one included) holds lock `n` right now.
    pub fn is_locked(&self, n: i64) -> Result<bool, UserLockError> {
        let (i, m) = self.get(n)?;
        match m.try_lock() {
            Ok(guard) => {
                drop(guard);
                Ok(false)
            }
            Err(LockError::WouldBlock | LockError::Deadlock) => Ok(true),
            Err(err) => Err(UserLockError::Lock { n: i, err }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn numbers_zero_to_n() {
        let l = UserLocks::on_heap(3).unwrap();
        assert_eq!(l.max(), 3);
        for n in 0..=3 {
            assert_eq!(l.lock(n), Ok(false));
            assert_eq!(l.is_locked(n), Ok(true));
            assert_eq!(l.unlock(n), Ok(true));
            assert_eq!(l.is_locked(n), Ok(false));
        }
        for n in [-1, 4, i64::MAX, i64::MIN] {
            assert_eq!(l.lock(n), Err(UserLockError::Invalid { n, max: 3 }));
            assert_eq!(l.unlock(n), Err(UserLockError::Invalid { n, max: 3 }));
        }
    }

    #[test]
    fn relocking_is_an_error_and_foreign_unlock_does_nothing() {
        let l = Arc::new(UserLocks::on_heap(0).unwrap());
        assert_eq!(l.lock(0), Ok(false));
        assert_eq!(l.lock(0), Err(UserLockError::AlreadyHeld(0)));
        let l2 = l.clone();
        let other = std::thread::spawn(move || (l2.unlock(0), l2.is_locked(0)))
            .join()
            .unwrap();
        assert_eq!(other, (Ok(false), Ok(true)));
        assert_eq!(l.unlock(0), Ok(true));
        assert_eq!(l.unlock(0), Ok(false));
    }

    #[test]
    fn threads_wait_for_each_other() {
        let l = Arc::new(UserLocks::on_heap(0).unwrap());
        l.lock(0).unwrap();
        let l2 = l.clone();
        let t = Instant::now();
        let waiter = std::thread::spawn(move || {
            l2.lock(0).unwrap();
            let waited = t.elapsed();
            l2.unlock(0).unwrap();
            waited
        });
        std::thread::sleep(Duration::from_millis(100));
        l.unlock(0).unwrap();
        assert!(waiter.join().unwrap() >= Duration::from_millis(90));
    }

    #[test]
    fn a_dead_holders_lock_is_recovered() {
        let l = Arc::new(UserLocks::on_heap(1).unwrap());
        let l2 = l.clone();
        // A thread that ends holding the lock is a dead owner for a robust mutex.
        std::thread::spawn(move || l2.lock(1).unwrap())
            .join()
            .unwrap();
        assert_eq!(l.lock(1), Ok(true));
        assert_eq!(l.unlock(1), Ok(true));
        assert_eq!(l.lock(1), Ok(false));
        l.unlock(1).unwrap();
    }
}
