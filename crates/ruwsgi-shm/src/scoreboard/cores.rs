//! One row per request core of every worker (and one per mule and spooler): the core's
//! request count and current request start (the stats' `cores`), the harakiri deadlines
//! the master checks every second, and what the core is serving, for the harakiri log.
//!
//! A core writes only its own row, with plain stores (it is the only writer): its request
//! start and count; when a request starts with `harakiri` on, its deadline and a short
//! description (`GET /path`); when it ends, zeroes. The app may add its own deadline
//! (`set_user_harakiri`), cleared with the request. The master reads rows, and clears the
//! in-request fields when a process takes or leaves the row.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};

use crate::impl_shm;

/// Set once this process sets a user deadline: only then do request ends look at it.
static USER_DEADLINES: AtomicBool = AtomicBool::new(false);

/// True once this process set a user deadline ([`CoreSlot::set_user_deadline`]).
pub fn user_deadlines_used() -> bool {
    USER_DEADLINES.load(Relaxed)
}

/// Bytes of the request description a row keeps (longer ones are cut).
pub const WHAT_BYTES: usize = 80;
const WHAT_WORDS: usize = WHAT_BYTES / 8;
/// Bytes of the client address a core keeps (`stats-verbose`): an IPv6 text fits.
pub const PEER_BYTES: usize = 48;
const PEER_WORDS: usize = PEER_BYTES / 8;

/// One core's harakiri row (a cache line pair of its own).
#[repr(C, align(128))]
#[derive(Debug)]
pub struct CoreSlot {
    /// Unix milliseconds after which the master kills the process (0: none): the request's.
    deadline_ms: AtomicU64,
    /// The same, set by the app for itself (`set_user_harakiri`; 0: none).
    user_deadline_ms: AtomicU64,
    /// When the current request started (unix milliseconds; 0: none recorded).
    started_ms: AtomicU64,
    /// Length of the description in `what`.
    what_len: AtomicU64,
    what: [AtomicU64; WHAT_WORDS],
    /// Requests this core served (since the instance started: survives respawns).
    requests: AtomicU64,
    /// Start of the current request (µs since the epoch); 0 when idle.
    request_start_us: AtomicU64,
    /// Length of `peer`.
    peer_len: AtomicU64,
    /// The client address of the current request (`stats-verbose` only).
    peer: [AtomicU64; PEER_WORDS],
}
impl_shm!(ShmSafe for CoreSlot {
    deadline_ms, user_deadline_ms, started_ms, what_len, what, requests, request_start_us,
    peer_len, peer,
});

/// Pack `parts` into `words` (at most `words.len() * 8` bytes) and publish the length.
fn store_bytes(words: &[AtomicU64], len_cell: &AtomicU64, parts: &[&[u8]]) {
    let cap = words.len() * 8;
    let mut len = 0;
    let mut word = [0u8; 8];
    let mut k = 0;
    for part in parts {
        for &b in *part {
            if len == cap {
                break;
            }
            word[len % 8] = b;
            len += 1;
            if len % 8 == 0 {
                words[k].store(u64::from_ne_bytes(word), Relaxed);
                k += 1;
                word = [0; 8];
            }
        }
    }
    if len % 8 != 0 {
        words[k].store(u64::from_ne_bytes(word), Relaxed);
    }
    len_cell.store(len as u64, Relaxed);
}

/// The bytes [`store_bytes`] packed (lossy UTF-8).
fn load_bytes(words: &[AtomicU64], len_cell: &AtomicU64) -> String {
    let len = (len_cell.load(Relaxed) as usize).min(words.len() * 8);
    let mut bytes = Vec::with_capacity(len.next_multiple_of(8));
    for w in &words[..len.div_ceil(8)] {
        bytes.extend_from_slice(&w.load(Relaxed).to_ne_bytes());
    }
    bytes.truncate(len);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One core's counters, copied out (the stats' `cores` list).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreSnapshot {
    /// Core index (0-based).
    pub id: usize,
    /// Requests served by the core.
    pub requests: u64,
    /// Start of the request in progress (µs since the epoch), 0 when idle.
    pub request_start_us: u64,
}

/// A deadline that passed ([`CoreSlot::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Set by the app (`set_user_harakiri`) rather than by the `harakiri` option.
    pub user: bool,
    /// When the request started (unix milliseconds; 0 when not recorded).
    pub started_ms: u64,
}

impl CoreSlot {
    /// The core started a request at `now_us` (µs since the epoch).
    pub fn started(&self, now_us: u64) {
        self.request_start_us.store(now_us.max(1), Relaxed);
    }

    /// The core finished its request: one more served (a load and a store: the core is the
    /// only writer), no request in progress, and no deadline left (a load each when none
    /// was set).
    pub fn finished(&self) {
        self.requests
            .store(self.requests.load(Relaxed) + 1, Relaxed);
        self.request_start_us.store(0, Relaxed);
        self.request_ended();
    }

    /// The counters of this row, as core `id`.
    pub fn snapshot(&self, id: usize) -> CoreSnapshot {
        CoreSnapshot {
            id,
            requests: self.requests.load(Relaxed),
            request_start_us: self.request_start_us.load(Relaxed),
        }
    }

    /// A request starts at `now_ms` and may run until `deadline_ms`; `what` describes it.
    pub fn request_began(&self, now_ms: u64, deadline_ms: u64, what: &[&[u8]]) {
        store_bytes(&self.what, &self.what_len, what);
        self.started_ms.store(now_ms, Relaxed);
        self.deadline_ms.store(deadline_ms, Release);
    }

    /// The request ended: both deadlines go (a load each when none was set).
    pub fn request_ended(&self) {
        if self.deadline_ms.load(Relaxed) != 0 {
            self.deadline_ms.store(0, Release);
        }
        if self.user_deadline_ms.load(Relaxed) != 0 {
            self.user_deadline_ms.store(0, Release);
        }
    }

    /// The app's own deadline (0 clears it).
    pub fn set_user_deadline(&self, deadline_ms: u64) {
        USER_DEADLINES.store(true, Relaxed);
        self.user_deadline_ms.store(deadline_ms, Release);
    }

    /// The app's own deadline (0: none).
    pub fn user_deadline_ms(&self) -> u64 {
        self.user_deadline_ms.load(Acquire)
    }

    /// The request's deadline (0: none).
    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms.load(Acquire)
    }

    /// Whether a deadline passed at `now_ms`, and which.
    pub fn due(&self, now_ms: u64) -> Option<Due> {
        let passed = |d: u64| d != 0 && d <= now_ms;
        let user = passed(self.user_deadline_ms.load(Acquire));
        if !user && !passed(self.deadline_ms.load(Acquire)) {
            return None;
        }
        Some(Due {
            user,
            started_ms: self.started_ms.load(Relaxed),
        })
    }

    /// What the core was serving, as it recorded it (lossy UTF-8).
    pub fn what(&self) -> String {
        load_bytes(&self.what, &self.what_len)
    }

    /// The client address of the request in progress (`stats-verbose`).
    pub fn set_peer(&self, peer: &[u8]) {
        store_bytes(&self.peer, &self.peer_len, &[peer]);
    }

    /// What [`Self::set_peer`] recorded last.
    pub fn peer(&self) -> String {
        load_bytes(&self.peer, &self.peer_len)
    }

    /// Forget the request in progress and the deadlines (a new process takes the row, or
    /// the old one is gone); the request count stays.
    pub fn clear(&self) {
        self.request_start_us.store(0, Relaxed);
        self.deadline_ms.store(0, Relaxed);
        self.user_deadline_ms.store(0, Relaxed);
        self.started_ms.store(0, Relaxed);
        self.what_len.store(0, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scoreboard;

    #[test]
    fn deadlines_and_descriptions() {
        let sb = Scoreboard::on_heap_with_cores(2, 3);
        assert_eq!(sb.cores_per_worker(), 3);
        let core = sb.core(2, 1).unwrap();
        assert!(sb.core(3, 0).is_none() && sb.core(1, 3).is_none());
        assert_eq!(core.due(u64::MAX), None);
        core.request_began(1_000, 4_000, &[b"GET", b" ", b"/slow?x=1"]);
        assert_eq!(core.what(), "GET /slow?x=1");
        assert_eq!(core.due(3_999), None);
        assert_eq!(
            core.due(4_000),
            Some(Due {
                user: false,
                started_ms: 1_000
            })
        );
        core.set_user_deadline(2_000);
        assert_eq!(core.due(2_000).map(|d| d.user), Some(true));
        core.request_ended();
        assert_eq!(core.due(u64::MAX), None);
        // other rows untouched
        assert!(sb.cores_of(1).iter().all(|c| c.due(u64::MAX).is_none()));
        // long descriptions are cut, not spilled
        let long = vec![b'x'; 300];
        core.request_began(1, 2, &[b"POST ", &long]);
        assert_eq!(core.what().len(), WHAT_BYTES);
        assert!(core.what().starts_with("POST xxx"));
        core.clear();
        assert_eq!((core.what(), core.due(u64::MAX)), (String::new(), None));
    }

    #[test]
    fn request_counts_and_starts() {
        let sb = Scoreboard::on_heap_with_cores(1, 2);
        let core = sb.core(1, 1).unwrap();
        core.started(5);
        assert_eq!(
            sb.core_snapshots(1)[1],
            CoreSnapshot {
                id: 1,
                requests: 0,
                request_start_us: 5
            }
        );
        core.request_began(1, 2, &[b"GET /"]);
        core.finished();
        assert_eq!(
            sb.core_snapshots(1)[1],
            CoreSnapshot {
                id: 1,
                requests: 1,
                request_start_us: 0
            }
        );
        assert_eq!(core.due(u64::MAX), None, "finished clears the deadline");
        core.started(7);
        core.clear();
        assert_eq!(
            sb.core_snapshots(1)[1],
            CoreSnapshot {
                id: 1,
                requests: 1,
                request_start_us: 0
            }
        );
        assert_eq!(sb.core_snapshots(1).len(), 2);
        assert!(sb.core_snapshots(2).is_empty());
    }
}
