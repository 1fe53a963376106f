//! Each worker's app table: what `uwsgi.workers()` lists under `apps`, for every worker.
//!
//! A worker publishes its apps once, from the worker process, before it serves (with
//! preloaded apps the master has no worker slot yet, and with `lazy-apps` each worker's
//! addresses are its own). After that the worker alone bumps the per-app counters, so with
//! one core a bump is a load and a store; with several, a `fetch_add` ([`Writers`]).
//!
//! The design decision: the identity of the apps (count, mountpoints, addresses) is guarded
//! by a sequence number, a seqlock. A respawned worker republishes into a table that other
//! processes may be reading at that moment; a reader that overlaps a publish retries, so it
//! never pairs one app's mountpoint with another life's callable. Everything is an atomic, so
//! a torn read is a retry, never undefined behaviour, and a writer killed mid-publish leaves
//! a table that the next publish repairs (readers give up after a bounded number of tries).

use std::fmt;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};

use crate::impl_shm;

/// Apps a worker can publish (uWSGI's default `max-apps`); further ones are not shown.
pub const MAX_APPS: usize = 64;

/// Longest mountpoint kept, in bytes; a longer one is shown cut to this length.
pub const MAX_MOUNTPOINT: usize = 255;

/// How many retries a reader makes while a publish is in progress before it shows no apps.
const READ_TRIES: usize = 1_000;

/// Who bumps a worker's per-app counters, as its plugin knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// One thread (a single core): a plain load and store is exact.
    One,
    /// Several threads (cores) of the same worker: an atomic `fetch_add`.
    Several,
}

/// One app as a worker publishes it ([`WorkerSlot::publish_apps`](super::WorkerSlot::publish_apps)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppInfo<'a> {
    /// The mountpoint as configured (`""` for the default app); cut to [`MAX_MOUNTPOINT`].
    pub mountpoint: &'a [u8],
    /// Whole seconds the app took to load.
    pub startup_time: u64,
    /// Address of the interpreter (or runtime) the app runs in; an opaque number.
    pub interpreter: usize,
    /// Address of the app's callable in the worker; an opaque number.
    pub callable: usize,
}

/// One app of a worker, copied out of the scoreboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSnapshot {
    /// Index in the worker's table: the order the worker published its apps in.
    pub id: usize,
    /// The mountpoint bytes (at most [`MAX_MOUNTPOINT`]).
    pub mountpoint: Vec<u8>,
    /// Whole seconds the app took to load.
    pub startup_time: u64,
    /// Address of the interpreter the app runs in, in that worker.
    pub interpreter: usize,
    /// Address of the app's callable, in that worker.
    pub callable: usize,
    /// Requests routed to the app since the worker published it.
    pub requests: u64,
    /// Requests of the app that ended in an exception since then.
    pub exceptions: u64,
}

/// One app's row. The counters come first: they are the only fields written per request.
#[repr(C)]
struct AppSlot {
    requests: AtomicU64,
    exceptions: AtomicU64,
    startup_time: AtomicU64,
    interpreter: AtomicUsize,
    callable: AtomicUsize,
    mountpoint_len: AtomicU8,
    mountpoint: [AtomicU8; MAX_MOUNTPOINT],
}
impl_shm!(ShmSafe for AppSlot {
    requests, exceptions, startup_time, interpreter, callable, mountpoint_len, mountpoint,
});

/// A worker's app table. Aligned on its own cache lines, after the worker's hot counters.
#[repr(C, align(128))]
pub(super) struct AppTable {
    /// Odd while a publish is in progress; readers retry when it is odd or has changed.
    seq: AtomicU64,
    /// Published apps (at most [`MAX_APPS`]); guarded by `seq`.
    count: AtomicU32,
    slots: [AppSlot; MAX_APPS],
}
impl_shm!(ShmSafe for AppTable { seq, count, slots });

impl fmt::Debug for AppTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppTable")
            .field("apps", &self.read())
            .finish()
    }
}

/// Add one to a counter that `writers` threads bump.
fn bump(counter: &AtomicU64, writers: Writers) {
    match writers {
        Writers::One => counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed),
        Writers::Several => {
            counter.fetch_add(1, Relaxed);
        }
    }
}

impl AppTable {
    /// Run `write` as one publish: readers that overlap it retry.
    fn write_section(&self, write: impl FnOnce()) {
        // `| 1` also repairs a sequence left odd by a writer killed mid-publish.
        let odd = self.seq.load(Relaxed) | 1;
        self.seq.store(odd, Relaxed);
        fence(Release);
        write();
        self.seq.store(odd.wrapping_add(1), Release);
    }

    /// Replace the table with `apps` (the first [`MAX_APPS`]), counters at zero. Returns how
    /// many were published.
    pub(super) fn publish(&self, apps: &[AppInfo<'_>]) -> usize {
        let n = apps.len().min(MAX_APPS);
        self.write_section(|| {
            for (slot, app) in self.slots.iter().zip(&apps[..n]) {
                let mp = &app.mountpoint[..app.mountpoint.len().min(MAX_MOUNTPOINT)];
                for (cell, &b) in slot.mountpoint.iter().zip(mp) {
                    cell.store(b, Relaxed);
                }
                // Fits: `mp` is at most MAX_MOUNTPOINT (255) bytes.
                slot.mountpoint_len.store(mp.len() as u8, Relaxed);
                slot.startup_time.store(app.startup_time, Relaxed);
                slot.interpreter.store(app.interpreter, Relaxed);
                slot.callable.store(app.callable, Relaxed);
                slot.requests.store(0, Relaxed);
                slot.exceptions.store(0, Relaxed);
            }
            // Fits: n <= MAX_APPS.
            self.count.store(n as u32, Relaxed);
        });
        n
    }

    /// Forget the apps (a new process took the slot and has not published yet).
    pub(super) fn clear(&self) {
        self.write_section(|| self.count.store(0, Relaxed));
    }

    /// A request was routed to app `app` (ignored past the table).
    pub(super) fn request(&self, app: usize, writers: Writers) {
        if let Some(slot) = self.slots.get(app) {
            bump(&slot.requests, writers);
        }
    }

    /// A request of app `app` ended in an exception (ignored past the table).
    pub(super) fn exception(&self, app: usize, writers: Writers) {
        if let Some(slot) = self.slots.get(app) {
            bump(&slot.exceptions, writers);
        }
    }

    /// The published apps, or none if every try overlapped a publish.
    pub(super) fn read(&self) -> Vec<AppSnapshot> {
        for _ in 0..READ_TRIES {
            if let Some(apps) = self.try_read() {
                return apps;
            }
            std::thread::yield_now();
        }
        Vec::new()
    }

    /// One seqlock read: `None` when a publish overlapped it.
    fn try_read(&self) -> Option<Vec<AppSnapshot>> {
        let before = self.seq.load(Acquire);
        if before & 1 == 1 {
            return None;
        }
        let count = (self.count.load(Relaxed) as usize).min(MAX_APPS);
        let apps = (0..count)
            .zip(&self.slots)
            .map(|(id, slot)| {
                let len = usize::from(slot.mountpoint_len.load(Relaxed)).min(MAX_MOUNTPOINT);
                AppSnapshot {
                    id,
                    mountpoint: slot.mountpoint[..len]
                        .iter()
                        .map(|b| b.load(Relaxed))
                        .collect(),
                    startup_time: slot.startup_time.load(Relaxed),
                    interpreter: slot.interpreter.load(Relaxed),
                    callable: slot.callable.load(Relaxed),
                    requests: slot.requests.load(Relaxed),
                    exceptions: slot.exceptions.load(Relaxed),
                }
            })
            .collect();
        fence(Acquire);
        (self.seq.load(Relaxed) == before).then_some(apps)
    }
}
