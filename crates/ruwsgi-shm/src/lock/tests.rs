//! Locks embedded in a region layout: refused before `init`, exact under contention between
//! two processes, and repairable after a holder is killed mid-update.

use std::sync::atomic::{AtomicU64, Ordering::*};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use ruwsgi_sys::ForkResult;

use super::*;
use crate::Region;
use ruwsgi_sys::testing::{fork_lock, wait_exit, LONG};

/// A layout as a subsystem would write it: a bare lock, a pair kept equal under its own
/// lock, and a flag the tests use to hand over between processes.
struct Table {
    user: RobustMutex,
    pair: ShmMutex<[u64; 2]>,
    flag: AtomicU64,
}
crate::impl_shm!(ShmSafe for Table { user, pair, flag });

fn table() -> Region<Table> {
    let region = Region::<Table>::map(0).unwrap();
    region.header().user.init().unwrap();
    region.header().pair.init().unwrap();
    region
}

#[test]
fn nothing_locks_before_init() {
    let region = Region::<Table, ShmMutex<u32>>::on_heap(2).unwrap();
    let t = region.header();
    assert!(!t.pair.is_initialised());
    assert_eq!(t.pair.lock().unwrap_err(), LockError::Uninitialised);
    assert_eq!(t.user.try_lock().unwrap_err(), LockError::Uninitialised);
    region.items()[1].init().unwrap();
    assert_eq!(
        region.items()[0].try_lock().unwrap_err(),
        LockError::Uninitialised
    );
    let mut guard = region.items()[1].try_lock().unwrap();
    assert!(!guard.owner_died());
    *guard += 3;
    assert_eq!(
        region.items()[1].try_lock().unwrap_err(),
        LockError::Deadlock
    );
    drop(guard);
    assert_eq!(*region.items()[1].lock().unwrap(), 3);
}

/// Add one to both halves of the pair `n` times; false on a lock error or after `LONG`.
fn bump(table: &Table, n: u32) -> bool {
    let until = Instant::now() + LONG;
    for _ in 0..n {
        let Ok(mut pair) = table.pair.lock_timeout(LONG) else {
            return false;
        };
        pair[0] += 1;
        pair[1] += 1;
        drop(pair);
        if Instant::now() > until {
            return false;
        }
    }
    true
}

#[test]
#[allow(unsafe_code)] // fork
fn two_processes_update_plain_data_exactly() {
    const EACH: u32 = 50_000;
    let _forks = fork_lock();
    let region = table();
    let t = region.header();
    // SAFETY: the child only locks, adds to shared memory and `_exit`s; it allocates nothing
    // and takes no lock another test thread could hold.
    match unsafe { ruwsgi_sys::fork() }.unwrap() {
        ForkResult::Child => ruwsgi_sys::process::exit_now(if bump(t, EACH) { 0 } else { 1 }),
        ForkResult::Parent { child } => {
            let bumped = bump(t, EACH);
            assert_eq!(wait_exit(child, LONG * 3), WaitStatus::Exited(child, 0));
            assert!(bumped);
            let total = u64::from(2 * EACH);
            assert_eq!(*t.pair.lock().unwrap(), [total, total]);
        }
    }
}

#[test]
#[allow(unsafe_code)] // fork
fn a_holder_killed_mid_update_leaves_repairable_data() {
    let _forks = fork_lock();
    let region = table();
    let t = region.header();
    // SAFETY: the child only locks, writes shared memory, sleeps and `_exit`s; it allocates
    // nothing and takes no lock another test thread could hold.
    match unsafe { ruwsgi_sys::fork() }.unwrap() {
        ForkResult::Child => {
            let Ok(mut pair) = t.pair.lock_timeout(LONG) else {
                ruwsgi_sys::process::exit_now(1)
            };
            let Ok(user) = t.user.lock_timeout(LONG) else {
                ruwsgi_sys::process::exit_now(1)
            };
            pair[0] = 5; // and is killed before writing pair[1]
            t.flag.store(1, Release);
            let until = Instant::now() + LONG;
            while Instant::now() < until {
                sleep(Duration::from_millis(5));
            }
            drop((user, pair));
            ruwsgi_sys::process::exit_now(2);
        }
        ForkResult::Parent { child } => {
            let deadline = Instant::now() + LONG;
            while t.flag.load(Acquire) == 0 {
                if Instant::now() > deadline {
                    let _ = kill(child, Signal::SIGKILL);
                    panic!("child never took the locks: {:?}", wait_exit(child, LONG));
                }
                sleep(Duration::from_millis(1));
            }
            assert_eq!(t.pair.try_lock().unwrap_err(), LockError::WouldBlock);
            kill(child, Signal::SIGKILL).unwrap();
            assert!(matches!(
                wait_exit(child, LONG),
                WaitStatus::Signaled(_, Signal::SIGKILL, _)
            ));
            let mut pair = t.pair.lock_timeout(LONG).unwrap();
            assert!(pair.owner_died());
            assert_eq!(*pair, [5, 0]);
            pair[1] = pair[0];
            drop(pair);
            let pair = t.pair.lock_timeout(LONG).unwrap();
            assert!(!pair.owner_died());
            assert_eq!(*pair, [5, 5]);
            let user = t.user.lock_timeout(LONG).unwrap();
            assert!(user.owner_died());
        }
    }
}
