//! Accept back-off: what a core does when `accept` fails for lack of resources.
//!
//! Out of file descriptors (or kernel memory) the pending connection stays queued, so the
//! listener stays readable and a level-triggered loop would spin on it, failing millions of
//! times a second. Instead the core takes that listener out of its epoll for a pause that
//! doubles from 10 ms up to 1 s and is reset by the next successful accept, and logs once
//! per pause. [`AcceptPauses`] is that bookkeeping, free of I/O so it can be tested alone;
//! the core does the `epoll_ctl` calls and bounds its wait by [`AcceptPauses::resume_at`].

use std::io;
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// First pause after a resource failure; each further failure doubles it.
pub const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// Longest pause.
pub const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The errno of an `accept` failure that means "out of resources, retrying now would fail
/// again" (EMFILE, ENFILE, ENOBUFS, ENOMEM); `None` for anything else.
pub fn exhaustion(e: &io::Error) -> Option<Errno> {
    let errno = Errno::from_raw(e.raw_os_error()?);
    matches!(
        errno,
        Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM
    )
    .then_some(errno)
}

/// One listener's back-off.
#[derive(Debug, Clone, Copy)]
struct Pause {
    /// When the listener is watched again; `None` while it is watched.
    until: Option<Instant>,
    /// Length of the next pause.
    next: Duration,
    /// Resource failures since the last successful accept.
    failures: u64,
}

impl Pause {
    const IDLE: Pause = Pause {
        until: None,
        next: FIRST_PAUSE,
        failures: 0,
    };
}

/// A pause that just began, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paused {
    /// How long the listener stays unwatched.
    pub length: Duration,
    /// Resource failures since the last successful accept, this one included.
    pub failures: u64,
}

/// The accept pauses of one core's listeners (same indexes as the worker's listeners).
#[derive(Debug)]
pub struct AcceptPauses {
    pauses: Vec<Pause>,
    /// The earliest end among the current pauses.
    resume_at: Option<Instant>,
}

impl AcceptPauses {
    /// No listener paused, for `listeners` listeners.
    pub fn new(listeners: usize) -> AcceptPauses {
        AcceptPauses {
            pauses: vec![Pause::IDLE; listeners],
            resume_at: None,
        }
    }

    /// When the next paused listener is due back; `None` when none is paused.
    pub fn resume_at(&self) -> Option<Instant> {
        self.resume_at
    }

    /// Listener `index` failed for lack of resources at `now`: start its next pause (the
    /// caller takes it out of the epoll set).
    pub fn fail(&mut self, index: usize, now: Instant) -> Paused {
        let p = &mut self.pauses[index];
        p.failures += 1;
        let length = p.next;
        p.next = (length * 2).min(MAX_PAUSE);
        p.until = Some(now + length);
        let failures = p.failures;
        self.recompute();
        Paused { length, failures }
    }

    /// The pause of `index` could not take effect (its listener is still watched).
    pub fn cancel(&mut self, index: usize) {
        self.pauses[index].until = None;
        self.recompute();
    }

    /// Listener `index` accepted a connection: its next failure starts from the shortest
    /// pause again. A compare on the accept path, nothing more.
    pub fn succeeded(&mut self, index: usize) {
        let p = &mut self.pauses[index];
        if p.failures != 0 {
            *p = Pause::IDLE;
        }
    }

    /// Hand every listener whose pause is over at `now` to `rewatch`, which puts it back
    /// into the epoll set and says whether that worked; one that could not be re-watched is
    /// paused again for the longest pause, so it is retried rather than lost.
    pub fn resume_due(&mut self, now: Instant, mut rewatch: impl FnMut(usize) -> bool) {
        for (i, p) in self.pauses.iter_mut().enumerate() {
            if p.until.is_some_and(|t| now >= t) {
                p.until = None;
                if !rewatch(i) {
                    p.until = Some(now + MAX_PAUSE);
                }
            }
        }
        self.recompute();
    }

    /// True while listener `index` is paused (out of the epoll set).
    pub fn is_paused(&self, index: usize) -> bool {
        self.pauses.get(index).is_some_and(|p| p.until.is_some())
    }

    /// Forget every pause (the core stopped accepting and unwatched all listeners).
    pub fn clear(&mut self) {
        self.pauses.fill(Pause::IDLE);
        self.resume_at = None;
    }

    fn recompute(&mut self) {
        self.resume_at = self.pauses.iter().filter_map(|p| p.until).min();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn exhaustion_errors() {
        for errno in [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM] {
            let e = io::Error::from_raw_os_error(errno as i32);
            assert_eq!(exhaustion(&e), Some(errno));
        }
        for errno in [Errno::ECONNABORTED, Errno::EPERM, Errno::EAGAIN] {
            assert_eq!(
                exhaustion(&io::Error::from_raw_os_error(errno as i32)),
                None
            );
        }
        assert_eq!(exhaustion(&io::Error::other("no errno")), None);
    }

    #[test]
    fn pauses_double_up_to_a_second_and_reset_on_success() {
        let t0 = Instant::now();
        let mut p = AcceptPauses::new(1);
        let lengths: Vec<u64> = (0..9)
            .map(|_| p.fail(0, t0).length.as_millis() as u64)
            .collect();
        assert_eq!(lengths, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(p.fail(0, t0).failures, 10);
        p.succeeded(0);
        assert_eq!(
            p.fail(0, t0),
            Paused {
                length: ms(10),
                failures: 1
            }
        );
    }

    #[test]
    fn resume_at_is_the_earliest_pause_end() {
        let t0 = Instant::now();
        let mut p = AcceptPauses::new(70);
        assert_eq!(p.resume_at(), None);
        for _ in 0..3 {
            p.fail(69, t0); // 10, 20, 40 ms: now paused until t0 + 40 ms
        }
        p.fail(3, t0 + ms(5)); // until t0 + 15 ms
        assert_eq!(p.resume_at(), Some(t0 + ms(15)));

        let mut back = Vec::new();
        p.resume_due(t0 + ms(20), |i| {
            back.push(i);
            true
        });
        assert_eq!(back, [3]);
        assert_eq!(p.resume_at(), Some(t0 + ms(40)));

        p.resume_due(t0 + ms(40), |i| {
            back.push(i);
            true
        });
        assert_eq!(back, [3, 69]);
        assert_eq!(p.resume_at(), None);
    }

    #[test]
    fn a_listener_that_cannot_be_rewatched_is_retried_later() {
        let t0 = Instant::now();
        let mut p = AcceptPauses::new(2);
        p.fail(1, t0);
        p.resume_due(t0 + ms(10), |_| false);
        assert_eq!(p.resume_at(), Some(t0 + ms(10) + MAX_PAUSE));
        p.cancel(1);
        assert_eq!(p.resume_at(), None);
        p.fail(0, t0);
        p.clear();
        assert_eq!(p.resume_at(), None);
        assert_eq!(p.fail(0, t0).length, FIRST_PAUSE);
    }
}
