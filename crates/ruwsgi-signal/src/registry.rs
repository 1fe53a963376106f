//! [`Registrations`]: the timers, crons and file monitors that processes ask the master to
//! run (`uwsgi.add_timer`, `add_rb_timer`, `add_cron`, `add_file_monitor`), in one shared
//! region.
//!
//! Any process appends, under a robust process-shared lock; only the master reads, keeping
//! a [`Cursor`] of what it has taken already. Each table holds up to [`MAX_ENTRIES`]
//! entries and entries are never removed. An entry is written completely before its table's
//! count grows, so a writer killed while holding the lock leaves at most a half-written
//! entry past the count, which the next append overwrites. [`Registrations::generation`]
//! grows after every append, so the master's loop can tell without locking whether there
//! is anything new.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::*};
use std::time::Duration;

use ruwsgi_config::CronSpec;
use ruwsgi_shm::{impl_shm, LockError, Region, ShmGuard, ShmMutex};

/// Entries per table (timers, crons, file monitors).
pub const MAX_ENTRIES: usize = 64;

/// Room for a file monitor's path; paths must be shorter than this.
pub const MAX_PATH: usize = 255;

/// What kind of timer an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// `add_timer` / `add_ms_timer`: a periodic kernel timer in the master.
    Timer,
    /// `add_rb_timer`: the master's one-second-resolution timer, with a firing limit.
    RbTimer,
}

/// One entry, as the master takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registration {
    /// Route `signum` every `period`, `iterations` times (0: forever).
    Timer {
        /// The signal.
        signum: u8,
        /// The period (zero: never fires).
        period: Duration,
        /// How many firings (0: forever).
        iterations: u64,
        /// Which API added it.
        kind: TimerKind,
    },
    /// Route `signum` on the minutes `spec` matches.
    Cron {
        /// The signal.
        signum: u8,
        /// When.
        spec: CronSpec,
    },
    /// Route `signum` when `path` changes.
    FileMonitor {
        /// The signal.
        signum: u8,
        /// The watched path.
        path: PathBuf,
    },
}

/// Why an entry was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddError {
    /// The table already holds [`MAX_ENTRIES`] entries.
    #[error("the {0} table is full ({MAX_ENTRIES} entries)")]
    Full(&'static str),
    /// The entry itself is refused.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// `timer`, `rb timer`, `cron` or `file monitor`.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The lock failed.
    #[error("registrations lock: {0}")]
    Lock(LockError),
}

/// The master's position in each table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    timers: usize,
    crons: usize,
    monitors: usize,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct TimerRec {
    signum: u32,
    kind: u32,
    period_ms: u64,
    iterations: u64,
}
impl_shm!(ShmPlain for TimerRec { signum, kind, period_ms, iterations });

#[derive(Clone, Copy)]
#[repr(C)]
struct CronRec {
    signum: u32,
    minute: i32,
    hour: i32,
    day: i32,
    month: i32,
    weekday: i32,
}
impl_shm!(ShmPlain for CronRec { signum, minute, hour, day, month, weekday });

#[derive(Clone, Copy)]
#[repr(C)]
struct MonitorRec {
    signum: u32,
    len: u32,
    path: [u8; MAX_PATH + 1],
}
impl_shm!(ShmPlain for MonitorRec { signum, len, path });

/// The three tables, guarded together. No padding: every field's size is a multiple of
/// the alignment of the next.
#[repr(C)]
struct Tables {
    timers: [TimerRec; MAX_ENTRIES],
    crons: [CronRec; MAX_ENTRIES],
    monitors: [MonitorRec; MAX_ENTRIES],
    n_timers: u32,
    n_crons: u32,
    n_monitors: u32,
    _pad: u32,
}
impl_shm!(ShmPlain for Tables { timers, crons, monitors, n_timers, n_crons, n_monitors, _pad });

struct Shared {
    tables: ShmMutex<Tables>,
    generation: AtomicU64,
}
impl_shm!(ShmSafe for Shared { tables, generation });

/// The shared list of timers, crons and file monitors to run.
pub struct Registrations {
    region: Region<Shared>,
}

impl std::fmt::Debug for Registrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrations")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl Registrations {
    /// Map the tables in shared memory, before the first fork.
    pub fn new() -> io::Result<Registrations> {
        Self::ready(Region::map(0)?)
    }

    /// The same on the heap (tests; not shared with forked processes).
    pub fn on_heap() -> io::Result<Registrations> {
        Self::ready(Region::on_heap(0)?)
    }

    fn ready(region: Region<Shared>) -> io::Result<Registrations> {
        // Fresh zeroed memory nobody else sees yet.
        region.header().tables.init().map_err(io::Error::other)?;
        Ok(Registrations { region })
    }

    /// Grows after every append; the master reads the tables when it has moved.
    pub fn generation(&self) -> u64 {
        self.region.header().generation.load(Acquire)
    }

    /// Lock the tables, repairing counts a dead holder may have left (it can only have
    /// left them as they were or one higher, both in range, but they are clamped anyway).
    fn lock(&self) -> Result<ShmGuard<'_, Tables>, AddError> {
        let mut t = self.region.header().tables.lock().map_err(AddError::Lock)?;
        if t.owner_died() {
            let max = MAX_ENTRIES as u32;
            t.n_timers = t.n_timers.min(max);
            t.n_crons = t.n_crons.min(max);
            t.n_monitors = t.n_monitors.min(max);
        }
        Ok(t)
    }

    fn appended(&self) {
        self.region.header().generation.fetch_add(1, Release);
    }

    fn push_timer(&self, rec: TimerRec) -> Result<(), AddError> {
        let mut t = self.lock()?;
        let n = t.n_timers as usize;
        if n >= MAX_ENTRIES {
            return Err(AddError::Full("timer"));
        }
        t.timers[n] = rec;
        t.n_timers += 1;
        drop(t);
        self.appended();
        Ok(())
    }

    /// `add_timer` / `add_ms_timer`: route `signum` every `period`, forever. A zero period
    /// is accepted and never fires; a period must otherwise be whole milliseconds of at
    /// least one.
    pub fn add_timer(&self, signum: u8, period: Duration) -> Result<(), AddError> {
        let invalid = |reason: &str| AddError::Invalid {
            what: "timer",
            reason: reason.to_string(),
        };
        if !period.is_zero() && period < Duration::from_millis(1) {
            return Err(invalid("a period under one millisecond"));
        }
        let period_ms = u64::try_from(period.as_millis())
            .map_err(|_| invalid("a period too long to count in milliseconds"))?;
        self.push_timer(TimerRec {
            signum: u32::from(signum),
            kind: 0,
            period_ms,
            iterations: 0,
        })
    }

    /// `add_rb_timer`: route `signum` every `secs` seconds (at least 1), `iterations` times
    /// (0: forever).
    pub fn add_rb_timer(&self, signum: u8, secs: u64, iterations: u64) -> Result<(), AddError> {
        let invalid = |reason: &str| AddError::Invalid {
            what: "rb timer",
            reason: reason.to_string(),
        };
        if secs == 0 {
            return Err(invalid("a period of 0 seconds"));
        }
        let period_ms = secs
            .checked_mul(1000)
            .ok_or_else(|| invalid("a period too long to count in milliseconds"))?;
        self.push_timer(TimerRec {
            signum: u32::from(signum),
            kind: 1,
            period_ms,
            iterations,
        })
    }

    /// `add_cron`: route `signum` on the minutes `spec` matches.
    pub fn add_cron(&self, signum: u8, spec: CronSpec) -> Result<(), AddError> {
        spec.validate().map_err(|reason| AddError::Invalid {
            what: "cron",
            reason: format!("expected {reason}"),
        })?;
        let mut t = self.lock()?;
        let n = t.n_crons as usize;
        if n >= MAX_ENTRIES {
            return Err(AddError::Full("cron"));
        }
        t.crons[n] = CronRec {
            signum: u32::from(signum),
            minute: spec.minute,
            hour: spec.hour,
            day: spec.day,
            month: spec.month,
            weekday: spec.weekday,
        };
        t.n_crons += 1;
        drop(t);
        self.appended();
        Ok(())
    }

    /// `add_file_monitor`: route `signum` when `path` changes. The path must be non-empty,
    /// shorter than [`MAX_PATH`] bytes and free of NUL bytes.
    pub fn add_file_monitor(&self, signum: u8, path: &Path) -> Result<(), AddError> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = path.as_os_str().as_bytes();
        let invalid = |reason: &str| AddError::Invalid {
            what: "file monitor",
            reason: reason.to_string(),
        };
        if bytes.is_empty() {
            return Err(invalid("an empty path"));
        }
        if bytes.len() >= MAX_PATH {
            return Err(invalid("a path of 255 bytes or more"));
        }
        if bytes.contains(&0) {
            return Err(invalid("a path with a NUL byte"));
        }
        let mut t = self.lock()?;
        let n = t.n_monitors as usize;
        if n >= MAX_ENTRIES {
            return Err(AddError::Full("file monitor"));
        }
        let rec = &mut t.monitors[n];
        rec.signum = u32::from(signum);
        rec.path[..bytes.len()].copy_from_slice(bytes);
        // Fits: shorter than MAX_PATH.
        rec.len = bytes.len() as u32;
        t.n_monitors += 1;
        drop(t);
        self.appended();
        Ok(())
    }

    /// The entries added since `cursor` (timers, then crons, then file monitors, each in
    /// the order they were added), moving `cursor` past them.
    pub fn read_from(&self, cursor: &mut Cursor) -> Result<Vec<Registration>, AddError> {
        use std::os::unix::ffi::OsStrExt;
        let t = self.lock()?;
        let mut out = Vec::new();
        let n_timers = (t.n_timers as usize).min(MAX_ENTRIES);
        for r in t.timers.get(cursor.timers..n_timers).unwrap_or_default() {
            out.push(Registration::Timer {
                // Written from a u8.
                signum: r.signum as u8,
                period: Duration::from_millis(r.period_ms),
                iterations: r.iterations,
                kind: if r.kind == 1 {
                    TimerKind::RbTimer
                } else {
                    TimerKind::Timer
                },
            });
        }
        let n_crons = (t.n_crons as usize).min(MAX_ENTRIES);
        for r in t.crons.get(cursor.crons..n_crons).unwrap_or_default() {
            out.push(Registration::Cron {
                signum: r.signum as u8,
                spec: CronSpec {
                    minute: r.minute,
                    hour: r.hour,
                    day: r.day,
                    month: r.month,
                    weekday: r.weekday,
                },
            });
        }
        let n_monitors = (t.n_monitors as usize).min(MAX_ENTRIES);
        for r in t
            .monitors
            .get(cursor.monitors..n_monitors)
            .unwrap_or_default()
        {
            let len = (r.len as usize).min(MAX_PATH);
            out.push(Registration::FileMonitor {
                signum: r.signum as u8,
                path: PathBuf::from(std::ffi::OsStr::from_bytes(&r.path[..len])),
            });
        }
        *cursor = Cursor {
            timers: n_timers.max(cursor.timers),
            crons: n_crons.max(cursor.crons),
            monitors: n_monitors.max(cursor.monitors),
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::wait::WaitStatus;
    use nix::unistd::ForkResult;

    use super::*;
    use ruwsgi_sys::testing::{fork_lock, wait_exit, LONG};

    fn every_5_minutes() -> CronSpec {
        CronSpec {
            minute: -5,
            ..CronSpec::ANY
        }
    }

    #[test]
    fn append_and_read_incrementally() {
        let r = Registrations::on_heap().unwrap();
        let mut c = Cursor::default();
        assert_eq!(r.generation(), 0);
        assert_eq!(r.read_from(&mut c).unwrap(), []);
        r.add_timer(1, Duration::from_secs(2)).unwrap();
        r.add_rb_timer(2, 3, 4).unwrap();
        r.add_cron(3, every_5_minutes()).unwrap();
        r.add_file_monitor(4, Path::new("/tmp/x y")).unwrap();
        assert_eq!(r.generation(), 4);
        assert_eq!(
            r.read_from(&mut c).unwrap(),
            [
                Registration::Timer {
                    signum: 1,
                    period: Duration::from_secs(2),
                    iterations: 0,
                    kind: TimerKind::Timer
                },
                Registration::Timer {
                    signum: 2,
                    period: Duration::from_secs(3),
                    iterations: 4,
                    kind: TimerKind::RbTimer
                },
                Registration::Cron {
                    signum: 3,
                    spec: every_5_minutes()
                },
                Registration::FileMonitor {
                    signum: 4,
                    path: PathBuf::from("/tmp/x y")
                },
            ]
        );
        assert_eq!(r.read_from(&mut c).unwrap(), []);
        r.add_timer(5, Duration::from_millis(250)).unwrap();
        assert_eq!(
            r.read_from(&mut c).unwrap(),
            [Registration::Timer {
                signum: 5,
                period: Duration::from_millis(250),
                iterations: 0,
                kind: TimerKind::Timer
            }]
        );
        // A fresh cursor sees everything again.
        assert_eq!(r.read_from(&mut Cursor::default()).unwrap().len(), 5);
    }

    #[test]
    fn limits() {
        let r = Registrations::on_heap().unwrap();
        for i in 0..MAX_ENTRIES {
            r.add_timer(i as u8, Duration::from_secs(1)).unwrap();
            r.add_cron(i as u8, CronSpec::ANY).unwrap();
            r.add_file_monitor(i as u8, Path::new("/tmp")).unwrap();
        }
        assert_eq!(
            r.add_timer(0, Duration::from_secs(1)),
            Err(AddError::Full("timer"))
        );
        assert_eq!(r.add_rb_timer(0, 1, 0), Err(AddError::Full("timer")));
        assert_eq!(r.add_cron(0, CronSpec::ANY), Err(AddError::Full("cron")));
        assert_eq!(
            r.add_file_monitor(0, Path::new("/a")),
            Err(AddError::Full("file monitor"))
        );
        assert_eq!(
            r.read_from(&mut Cursor::default()).unwrap().len(),
            3 * MAX_ENTRIES
        );
    }

    #[test]
    fn invalid_entries() {
        let r = Registrations::on_heap().unwrap();
        let invalid = |e: AddError| matches!(e, AddError::Invalid { .. });
        assert!(
            r.add_timer(1, Duration::ZERO).is_ok(),
            "accepted, never fires"
        );
        assert!(invalid(
            r.add_timer(1, Duration::from_micros(10)).unwrap_err()
        ));
        assert!(invalid(r.add_rb_timer(1, 0, 0).unwrap_err()));
        assert!(invalid(r.add_rb_timer(1, u64::MAX, 0).unwrap_err()));
        let bad = CronSpec {
            month: 13,
            ..CronSpec::ANY
        };
        let e = r.add_cron(1, bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid cron: expected month to be -1 (any), -N (every N) or 1 to 12, not 13"
        );
        let long = PathBuf::from("/".repeat(255));
        assert!(invalid(r.add_file_monitor(1, &long).unwrap_err()));
        let fits = PathBuf::from("/".repeat(254));
        r.add_file_monitor(1, &fits).unwrap();
        assert!(invalid(r.add_file_monitor(1, Path::new("")).unwrap_err()));
        assert_eq!(r.read_from(&mut Cursor::default()).unwrap().len(), 2);
    }

    #[test]
    #[allow(unsafe_code)] // fork
    fn a_childs_entries_reach_the_parent() {
        let _forks = fork_lock();
        let r = Registrations::new().unwrap();
        let mut c = Cursor::default();
        r.add_timer(1, Duration::from_secs(1)).unwrap();
        assert_eq!(r.read_from(&mut c).unwrap().len(), 1);
        // SAFETY: the child only locks the region's robust mutex, copies into shared memory
        // (no allocation on the success path) and leaves with `exit_now`.
        match unsafe { ruwsgi_sys::fork() }.unwrap() {
            ForkResult::Child => {
                let ok = r.add_rb_timer(7, 2, 3).is_ok()
                    && r.add_file_monitor(8, Path::new("/etc/hosts")).is_ok();
                ruwsgi_sys::process::exit_now(if ok { 0 } else { 1 })
            }
            ForkResult::Parent { child } => {
                assert_eq!(wait_exit(child, LONG), WaitStatus::Exited(child, 0));
                assert_eq!(r.generation(), 3);
                assert_eq!(
                    r.read_from(&mut c).unwrap(),
                    [
                        Registration::Timer {
                            signum: 7,
                            period: Duration::from_secs(2),
                            iterations: 3,
                            kind: TimerKind::RbTimer
                        },
                        Registration::FileMonitor {
                            signum: 8,
                            path: PathBuf::from("/etc/hosts")
                        },
                    ]
                );
            }
        }
    }

    #[test]
    #[allow(unsafe_code)] // fork
    fn a_writer_killed_holding_the_lock_does_not_block_others() {
        let _forks = fork_lock();
        let r = Registrations::new().unwrap();
        // SAFETY: the child only takes the region's robust mutex, then exits holding it.
        match unsafe { ruwsgi_sys::fork() }.unwrap() {
            ForkResult::Child => {
                let held = r.lock();
                std::mem::forget(held);
                ruwsgi_sys::process::exit_now(0)
            }
            ForkResult::Parent { child } => {
                assert_eq!(wait_exit(child, LONG), WaitStatus::Exited(child, 0));
                r.add_timer(3, Duration::from_secs(1)).unwrap();
                assert_eq!(r.read_from(&mut Cursor::default()).unwrap().len(), 1);
            }
        }
    }
}
