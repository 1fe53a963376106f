//! The lock within one process, then across real forks: a holder killed with SIGKILL, and
//! two processes counting under the lock. Every wait is bounded.

use std::cell::UnsafeCell;
use std::mem::size_of;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;

use super::*;
use crate::testing::{wait_exit, LONG};
use crate::{mmap_shared_anon, ForkResult, SharedRegion};

/// What the tests place in shared memory; all-zero is a valid initial state.
#[repr(C)]
struct Shared {
    lock: RobustMutex,
    /// Set to 1 by a child once it holds `lock`.
    flag: AtomicU32,
    /// Plain memory, written only under `lock`.
    counter: UnsafeCell<u64>,
}

fn view(region: &SharedRegion) -> &Shared {
    assert!(region.len() >= size_of::<Shared>());
    assert!(region.align() >= std::mem::align_of::<Shared>());
    // SAFETY: the region is large and aligned enough (checked above), zero-filled by its
    // constructor, and zero bytes are a valid `Shared` (uninitialised mutex, 0, 0); the
    // reference borrows the region, so it cannot outlive it.
    unsafe { &*region.as_ptr().as_ptr().cast::<Shared>() }
}

#[test]
fn uninitialised_is_refused_and_init_is_idempotent() {
    let region = SharedRegion::on_heap(size_of::<Shared>());
    let m = &view(&region).lock;
    assert!(!m.is_initialised());
    assert_eq!(m.lock().unwrap_err(), LockError::Uninitialised);
    assert_eq!(m.try_lock().unwrap_err(), LockError::Uninitialised);
    assert_eq!(
        m.lock_timeout(Duration::from_millis(1)).unwrap_err(),
        LockError::Uninitialised
    );
    assert_eq!(m.unlock().unwrap_err(), LockError::Uninitialised);
    m.init().unwrap();
    m.init().unwrap();
    assert!(m.is_initialised());
    let g = m.lock().unwrap();
    assert!(!g.owner_died());
}

#[test]
fn error_checking_in_one_process() {
    let region = SharedRegion::on_heap(size_of::<Shared>());
    let m = &view(&region).lock;
    m.init().unwrap();
    assert_eq!(m.unlock().unwrap_err(), LockError::NotOwner);
    let g = m.lock().unwrap();
    assert_eq!(m.lock().unwrap_err(), LockError::Deadlock);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(m.try_lock().unwrap_err(), LockError::WouldBlock);
            assert_eq!(
                m.lock_timeout(Duration::from_millis(20)).unwrap_err(),
                LockError::TimedOut
            );
            assert_eq!(m.unlock().unwrap_err(), LockError::NotOwner);
        });
    });
    g.leak();
    m.unlock().unwrap();
    assert_eq!(m.unlock().unwrap_err(), LockError::NotOwner);
    drop(m.try_lock().unwrap());
}

#[test]
fn a_killed_holder_is_reported_and_the_lock_recovers() {
    let _forks = crate::test_lock();
    let region = mmap_shared_anon(size_of::<Shared>()).unwrap();
    let shared = view(&region);
    shared.lock.init().unwrap();
    // SAFETY: the child only locks (a futex call), stores an atomic, sleeps and `_exit`s;
    // it allocates nothing and takes no lock another test thread could hold.
    match unsafe { crate::fork() }.unwrap() {
        ForkResult::Child => {
            let Ok(guard) = shared.lock.lock_timeout(LONG) else {
                crate::process::exit_now(1)
            };
            guard.leak();
            shared.flag.store(1, Ordering::Release);
            // Wait to be killed; leave on our own only if the parent never does.
            let until = Instant::now() + LONG;
            while Instant::now() < until {
                sleep(Duration::from_millis(5));
            }
            crate::process::exit_now(2);
        }
        ForkResult::Parent { child } => {
            let deadline = Instant::now() + LONG;
            while shared.flag.load(Ordering::Acquire) == 0 {
                if Instant::now() > deadline {
                    let _ = kill(child, Signal::SIGKILL);
                    panic!("child never took the lock: {:?}", wait_exit(child, LONG));
                }
                sleep(Duration::from_millis(1));
            }
            assert_eq!(shared.lock.try_lock().unwrap_err(), LockError::WouldBlock);
            assert_eq!(
                shared
                    .lock
                    .lock_timeout(Duration::from_millis(20))
                    .unwrap_err(),
                LockError::TimedOut
            );
            kill(child, Signal::SIGKILL).unwrap();
            assert!(matches!(
                wait_exit(child, LONG),
                WaitStatus::Signaled(_, Signal::SIGKILL, _)
            ));
            let guard = shared.lock.lock_timeout(LONG).unwrap();
            assert!(guard.owner_died());
            drop(guard);
            let guard = shared.lock.lock_timeout(LONG).unwrap();
            assert!(!guard.owner_died());
        }
    }
}

/// Add one to the counter under the lock `n` times; false on a lock error or after `LONG`.
fn count(shared: &Shared, n: u32) -> bool {
    let until = Instant::now() + LONG;
    for _ in 0..n {
        let Ok(guard) = shared.lock.lock_timeout(LONG) else {
            return false;
        };
        // SAFETY: `counter` is only accessed while holding `lock`, which excludes every other
        // thread and process sharing the region.
        unsafe { *shared.counter.get() += 1 };
        drop(guard);
        if Instant::now() > until {
            return false;
        }
    }
    true
}

#[test]
fn two_processes_count_exactly_under_the_lock() {
    const EACH: u32 = 100_000;
    let _forks = crate::test_lock();
    let region = mmap_shared_anon(size_of::<Shared>()).unwrap();
    let shared = view(&region);
    shared.lock.init().unwrap();
    // SAFETY: the child only locks, adds to shared memory and `_exit`s; it allocates nothing
    // and takes no lock another test thread could hold.
    match unsafe { crate::fork() }.unwrap() {
        ForkResult::Child => crate::process::exit_now(if count(shared, EACH) { 0 } else { 1 }),
        ForkResult::Parent { child } => {
            let counted = count(shared, EACH);
            assert_eq!(wait_exit(child, LONG * 3), WaitStatus::Exited(child, 0));
            assert!(counted);
            let guard = shared.lock.lock().unwrap();
            // SAFETY: read under the lock.
            let total = unsafe { *shared.counter.get() };
            drop(guard);
            assert_eq!(total, 2 * u64::from(EACH));
        }
    }
}
