//! The signal table ([`SignalTable`]): which numbers are registered and where each goes,
//! shared by every process; and [`Handlers`], what each process runs for them.
//!
//! The design decision: one row per number for the whole instance, filled once. The master
//! routes by this row whoever raised the signal, so a number registered only inside workers
//! (apps loaded in the workers) is still routed, by the target of the first registration.
//! A row goes empty -> writing -> registered with a compare-and-swap on its state, so two
//! processes registering the same number at once never interleave their writes: the loser
//! of the swap sees the row taken. Readers look at the fields only after seeing
//! "registered" (acquire), and a registered row never changes again, so a read is never
//! torn. A process killed between the swap and the publication leaves the row in
//! "writing": the number then stays unregistered (reads say so) and cannot be registered
//! again until the master re-executes; the window is a few stores long.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::*};
use std::sync::{Arc, RwLock};

use ruwsgi_shm::{impl_shm, Region};

use crate::target::{Target, TargetError};

/// The longest target string, in bytes.
pub const MAX_TARGET: usize = 63;

/// Row states.
const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const REGISTERED: u8 = 2;

/// One number's row.
#[repr(C)]
struct Row {
    /// [`EMPTY`], [`WRITING`] or [`REGISTERED`]; the fields below are read only after
    /// seeing [`REGISTERED`] with acquire ordering.
    state: AtomicU8,
    modifier1: AtomicU8,
    target_len: AtomicU8,
    worker: AtomicU32,
    target: [AtomicU8; MAX_TARGET],
}
impl_shm!(ShmSafe for Row { state, modifier1, target_len, worker, target });

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The target string names no target.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The target string is longer than [`MAX_TARGET`] bytes.
    #[error("signal target of {len} bytes is longer than {MAX_TARGET}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The master registers a number that is already registered.
    #[error("signal {0} is already registered")]
    AlreadyRegistered(u8),
}

/// A registered number's row, copied out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Where the master delivers it.
    pub target: Target,
    /// The modifier1 of the plugin whose handler runs it.
    pub modifier1: u8,
    /// The worker that registered it (0: the master, before forking).
    pub worker_id: u32,
}

/// The 256 rows, in memory shared by every process of the instance.
#[derive(Debug)]
pub struct SignalTable {
    region: Region<(), Row>,
}

impl SignalTable {
    /// Map the table in shared memory, before the first fork.
    pub fn new() -> io::Result<SignalTable> {
        Ok(SignalTable {
            region: Region::map(256)?,
        })
    }

    /// The same on the heap (tests; not shared with forked processes).
    pub fn on_heap() -> io::Result<SignalTable> {
        Ok(SignalTable {
            region: Region::on_heap(256)?,
        })
    }

    fn row(&self, num: u8) -> &Row {
        &self.region.items()[usize::from(num)]
    }

    /// Register `num` for `target`, with the registering process's worker id (0 for the
    /// master and processes that are no worker) and plugin modifier1.
    ///
    /// The first registration fills the row. Later ones by the master
    /// (`by_master`) are refused with [`RegisterError::AlreadyRegistered`]; later ones by
    /// a worker succeed and leave the row as it is (the worker's own handler still counts
    /// for it, see [`Handlers`]).
    pub fn register(
        &self,
        num: u8,
        target: &str,
        worker_id: u32,
        modifier1: u8,
        by_master: bool,
    ) -> Result<(), RegisterError> {
        if target.len() > MAX_TARGET {
            return Err(RegisterError::TooLong { len: target.len() });
        }
        Target::parse(target)?;
        let row = self.row(num);
        if row
            .state
            .compare_exchange(EMPTY, WRITING, Acquire, Acquire)
            .is_err()
        {
            return if by_master {
                Err(RegisterError::AlreadyRegistered(num))
            } else {
                Ok(())
            };
        }
        for (cell, &b) in row.target.iter().zip(target.as_bytes()) {
            cell.store(b, Relaxed);
        }
        // Fits: checked against MAX_TARGET (63) above.
        row.target_len.store(target.len() as u8, Relaxed);
        row.modifier1.store(modifier1, Relaxed);
        row.worker.store(worker_id, Relaxed);
        row.state.store(REGISTERED, Release);
        Ok(())
    }

    /// Whether `num` is registered.
    pub fn is_registered(&self, num: u8) -> bool {
        self.row(num).state.load(Acquire) == REGISTERED
    }

    /// `num`'s row, or `None` when it was never registered.
    pub fn entry(&self, num: u8) -> Option<Entry> {
        let row = self.row(num);
        if row.state.load(Acquire) != REGISTERED {
            return None;
        }
        let len = usize::from(row.target_len.load(Relaxed)).min(MAX_TARGET);
        let bytes: Vec<u8> = row.target[..len].iter().map(|b| b.load(Relaxed)).collect();
        // Written from a `&str` that parsed, and never changed since.
        let target = Target::parse(std::str::from_utf8(&bytes).ok()?).ok()?;
        Some(Entry {
            target,
            modifier1: row.modifier1.load(Relaxed),
            worker_id: row.worker.load(Relaxed),
        })
    }

    /// Where `num` goes, or `None` when it was never registered.
    pub fn target(&self, num: u8) -> Option<Target> {
        self.entry(num).map(|e| e.target)
    }
}

/// What a process runs when a signal reaches it.
pub trait SignalHandler: Send + Sync {
    /// Handle signal `signum`; an error is what the caller logs (`error managing signal`).
    fn handle(&self, signum: u8) -> Result<(), String>;
}

/// This process's handlers, one slot per number; shared by its threads.
pub struct Handlers {
    slots: Vec<RwLock<Option<Arc<dyn SignalHandler>>>>,
    /// One bit per number with a handler, so that [`has`](Self::has) takes no lock.
    set: [AtomicU64; 4],
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: Vec<u8> = (0..=255u8).filter(|n| self.has(*n)).collect();
        f.debug_struct("Handlers").field("set", &set).finish()
    }
}

impl Default for Handlers {
    fn default() -> Self {
        Handlers::new()
    }
}

impl Handlers {
    /// No handlers.
    pub fn new() -> Handlers {
        Handlers {
            slots: (0..256).map(|_| RwLock::new(None)).collect(),
            set: Default::default(),
        }
    }

    /// Set (or replace) the handler of `num`.
    pub fn set(&self, num: u8, handler: Arc<dyn SignalHandler>) {
        let mut slot = self.slots[usize::from(num)]
            .write()
            .unwrap_or_else(|e| e.into_inner());
        *slot = Some(handler);
        self.set[usize::from(num / 64)].fetch_or(1 << (num % 64), Release);
    }

    /// The handler of `num`, if this process has one.
    pub fn get(&self, num: u8) -> Option<Arc<dyn SignalHandler>> {
        if !self.has(num) {
            return None;
        }
        self.slots[usize::from(num)]
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether this process has a handler for `num` (no lock taken).
    pub fn has(&self, num: u8) -> bool {
        self.set[usize::from(num / 64)].load(Acquire) & (1 << (num % 64)) != 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Barrier;

    use nix::sys::wait::WaitStatus;
    use nix::unistd::ForkResult;

    use super::*;
    use ruwsgi_sys::testing::{fork_lock, wait_exit, LONG};

    #[test]
    fn register_and_read_back() {
        let t = SignalTable::on_heap().unwrap();
        assert!(!t.is_registered(17));
        assert_eq!(t.target(17), None);
        t.register(17, "mule2", 0, 0, true).unwrap();
        assert!(t.is_registered(17));
        assert_eq!(
            t.entry(17),
            Some(Entry {
                target: Target::Mule(2),
                modifier1: 0,
                worker_id: 0
            })
        );
        t.register(255, "", 3, 5, false).unwrap();
        assert_eq!(t.target(255), Some(Target::AnyWorker));
        assert_eq!(t.entry(255).unwrap().worker_id, 3);
        assert_eq!(t.entry(255).unwrap().modifier1, 5);
        assert!(!t.is_registered(0));
    }

    #[test]
    fn refusals() {
        let t = SignalTable::on_heap().unwrap();
        let long = format!("farm_{}", "x".repeat(59));
        assert_eq!(
            t.register(1, &long, 0, 0, true),
            Err(RegisterError::TooLong { len: 64 })
        );
        let fits = format!("farm_{}", "x".repeat(58));
        t.register(1, &fits, 0, 0, true).unwrap();
        assert_eq!(t.target(1), Some(Target::Farm("x".repeat(58))));
        assert!(matches!(
            t.register(2, "cluster", 0, 0, true),
            Err(RegisterError::Target(_))
        ));
        assert!(!t.is_registered(2));
        assert_eq!(
            t.register(1, "workers", 0, 0, true),
            Err(RegisterError::AlreadyRegistered(1))
        );
        // A worker's later registration is accepted and changes nothing.
        t.register(1, "workers", 2, 0, false).unwrap();
        assert_eq!(t.target(1), Some(Target::Farm("x".repeat(58))));
    }

    #[test]
    fn concurrent_registrations_one_wins_whole() {
        for round in 0..50u8 {
            let t = Arc::new(SignalTable::on_heap().unwrap());
            let go = Arc::new(Barrier::new(8));
            let threads: Vec<_> = (1..=8u32)
                .map(|w| {
                    let (t, go) = (t.clone(), go.clone());
                    std::thread::spawn(move || {
                        go.wait();
                        t.register(round, &format!("worker{w}"), w, w as u8, false)
                    })
                })
                .collect();
            for th in threads {
                th.join().unwrap().unwrap();
            }
            let e = t.entry(round).unwrap();
            // Target, worker id and modifier1 all come from the same registration.
            assert_eq!(e.target, Target::Worker(e.worker_id));
            assert_eq!(u32::from(e.modifier1), e.worker_id);
        }
    }

    #[test]
    #[allow(unsafe_code)] // fork
    fn a_childs_registration_is_seen_by_the_parent() {
        let _forks = fork_lock();
        let t = SignalTable::new().unwrap();
        t.register(9, "spooler", 0, 0, true).unwrap();
        // SAFETY: the child only stores to shared memory (no allocation on the success
        // path, no lock) and leaves with `exit_now`.
        match unsafe { ruwsgi_sys::fork() }.unwrap() {
            ForkResult::Child => {
                let ok = t.register(10, "mules", 4, 0, false).is_ok()
                    && t.register(9, "mules", 4, 0, false).is_ok();
                ruwsgi_sys::process::exit_now(if ok { 0 } else { 1 })
            }
            ForkResult::Parent { child } => {
                assert_eq!(wait_exit(child, LONG), WaitStatus::Exited(child, 0));
                assert_eq!(t.target(10), Some(Target::Mules));
                assert_eq!(t.entry(10).unwrap().worker_id, 4);
                assert_eq!(t.target(9), Some(Target::Spooler));
            }
        }
    }

    struct Count(AtomicUsize);

    impl SignalHandler for Count {
        fn handle(&self, signum: u8) -> Result<(), String> {
            self.0.fetch_add(usize::from(signum), Relaxed);
            if signum == 0 {
                return Err("zero".into());
            }
            Ok(())
        }
    }

    #[test]
    fn handlers() {
        let h = Handlers::new();
        assert!(!h.has(3) && h.get(3).is_none());
        let c = Arc::new(Count(AtomicUsize::new(0)));
        h.set(3, c.clone());
        h.set(255, c.clone());
        h.set(0, c.clone());
        assert!(h.has(3) && h.has(255) && h.has(0) && !h.has(4) && !h.has(64));
        h.get(3).unwrap().handle(3).unwrap();
        h.get(255).unwrap().handle(255).unwrap();
        assert_eq!(h.get(0).unwrap().handle(0), Err("zero".to_string()));
        assert_eq!(c.0.load(Relaxed), 258);
        assert_eq!(format!("{h:?}"), "Handlers { set: [0, 3, 255] }");
    }
}
