//! What the master's loop waits on: a [`Clock`], a deadline registry ([`Timers`]) and a
//! registry of watched descriptors ([`WatchedFds`]).
//!
//! Design decision: the loop sleeps in one `poll` whose timeout is the nearest deadline
//! (capped by a tick), never on a timer per event; subsystems (stop deadlines, the respawn
//! throttle, later timers, cron and the stats socket) only add keyed deadlines and fds here.
//! Time comes from an injectable [`Clock`] so deadline logic is tested over simulated time
//! ([`FakeClock`]) without waiting.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Where the master reads time. Monotonic time drives every deadline; wall time is for
/// calendar-based work (cron) and log lines.
pub trait Clock {
    /// Monotonic now.
    fn now(&self) -> Instant;
    /// Wall-clock now.
    fn wall(&self) -> SystemTime;
}

/// The real clocks (the default of [`crate::MasterConfig`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to (tests). Both readings advance together.
#[derive(Debug)]
pub struct FakeClock {
    /// (monotonic, wall); a mutex only so the clock can be shared behind an `Arc`.
    at: Mutex<(Instant, SystemTime)>,
}

impl FakeClock {
    /// A clock stopped at the real current time.
    pub fn new() -> FakeClock {
        FakeClock {
            at: Mutex::new((Instant::now(), SystemTime::now())),
        }
    }

    /// Move both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut at = self.at.lock().unwrap_or_else(|e| e.into_inner());
        at.0 += by;
        at.1 += by;
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock::new()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.at.lock().unwrap_or_else(|e| e.into_inner()).0
    }
    fn wall(&self) -> SystemTime {
        self.at.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

#[derive(Debug, Clone)]
struct Entry<K> {
    key: K,
    due: Instant,
    every: Option<Duration>,
}

/// Deadlines keyed by `K` (at most one per key): one-shot or repeating.
///
/// A repeating deadline is rescheduled from its previous due time, not from when the loop
/// noticed it, so it does not drift; if the loop was late by several periods it fires once
/// and its next due time is the first one still in the future. A handful of deadlines live
/// here at a time, so a vector scan is the whole data structure.
#[derive(Debug, Clone)]
pub struct Timers<K> {
    entries: Vec<Entry<K>>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq + Clone> Timers<K> {
    /// No deadlines.
    pub fn new() -> Timers<K> {
        Timers::default()
    }

    /// Fire `key` once at `due` (replacing any deadline `key` had).
    pub fn set(&mut self, key: K, due: Instant) {
        self.insert(Entry {
            key,
            due,
            every: None,
        });
    }

    /// Fire `key` at `first`, then every `every` (at least 1 ms) until cancelled.
    pub fn set_every(&mut self, key: K, first: Instant, every: Duration) {
        self.insert(Entry {
            key,
            due: first,
            every: Some(every.max(Duration::from_millis(1))),
        });
    }

    fn insert(&mut self, entry: Entry<K>) {
        match self.entries.iter_mut().find(|e| e.key == entry.key) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
    }

    /// Remove `key`'s deadline; true if it had one.
    pub fn cancel(&mut self, key: &K) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.key != *key);
        self.entries.len() != before
    }

    /// When `key` fires next.
    pub fn due_at(&self, key: &K) -> Option<Instant> {
        self.entries.iter().find(|e| e.key == *key).map(|e| e.due)
    }

    /// The nearest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.entries.iter().map(|e| e.due).min()
    }

    /// How long the loop may sleep at `now`: until the nearest deadline, at most `cap`.
    pub fn timeout(&self, now: Instant, cap: Duration) -> Duration {
        match self.next() {
            Some(due) => due.saturating_duration_since(now).min(cap),
            None => cap,
        }
    }

    /// The keys due at `now`, earliest first (ties in insertion order). One-shot deadlines
    /// are removed, repeating ones rescheduled.
    pub fn due(&mut self, now: Instant) -> Vec<K> {
        let mut fired: Vec<(Instant, usize, K)> = Vec::new();
        let mut index = 0;
        self.entries.retain_mut(|e| {
            index += 1;
            if e.due > now {
                return true;
            }
            fired.push((e.due, index, e.key.clone()));
            match e.every {
                Some(every) => {
                    while e.due <= now {
                        e.due += every;
                    }
                    true
                }
                None => false,
            }
        });
        fired.sort_by_key(|&(due, index, _)| (due, index));
        fired.into_iter().map(|(_, _, key)| key).collect()
    }

    /// Number of pending deadlines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No pending deadline.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Descriptors the master owns and polls, each tagged with what it is (`R`: a child's
/// channel, a stats listener or connection). Each is polled for readability unless marked
/// writable ([`Self::set_writable`]: a stats reply waiting for room). Removing an entry
/// closes the descriptor.
///
/// The signal source's fds are not kept here: the source owns them and lends them per
/// poll ([`wait`]).
#[derive(Debug)]
pub struct WatchedFds<R> {
    entries: Vec<(R, OwnedFd)>,
    /// Roles polled for writability instead of readability (few, short-lived).
    writable: Vec<R>,
}

impl<R> Default for WatchedFds<R> {
    fn default() -> Self {
        WatchedFds {
            entries: Vec::new(),
            writable: Vec::new(),
        }
    }
}

impl<R: PartialEq + Clone> WatchedFds<R> {
    /// Nothing watched.
    pub fn new() -> WatchedFds<R> {
        WatchedFds::default()
    }

    /// Watch `fd` as `role` (replacing, and closing, what `role` had).
    pub fn insert(&mut self, role: R, fd: OwnedFd) {
        match self.entries.iter_mut().find(|(r, _)| *r == role) {
            Some(entry) => entry.1 = fd,
            None => self.entries.push((role, fd)),
        }
    }

    /// Poll `role` for writability (`true`) or readability (`false`, the default).
    pub fn set_writable(&mut self, role: &R, writable: bool) {
        self.writable.retain(|r| r != role);
        if writable {
            self.writable.push(role.clone());
        }
    }

    /// Stop watching `role`; returns its fd (dropping it closes it).
    pub fn remove(&mut self, role: &R) -> Option<OwnedFd> {
        self.writable.retain(|r| r != role);
        let at = self.entries.iter().position(|(r, _)| r == role)?;
        Some(self.entries.swap_remove(at).1)
    }

    /// The fd watched as `role`.
    pub fn get(&self, role: &R) -> Option<BorrowedFd<'_>> {
        self.entries
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, fd)| fd.as_fd())
    }

    /// Every role watched.
    pub fn roles(&self) -> Vec<R> {
        self.entries.iter().map(|(r, _)| r.clone()).collect()
    }

    /// Close everything (a forked child drops the master's ends).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.writable.clear();
    }

    /// Number of watched fds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing watched.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What one [`wait`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready<R> {
    /// One of the signal source's fds is readable.
    pub signals: bool,
    /// Watched fds that are ready (readable, or writable when so marked) or hung up, in
    /// registry order.
    pub fds: Vec<R>,
}

/// Sleep in one `poll` over `signal_fds` and every watched fd for at most `timeout`.
/// `EINTR` counts as a wake-up with nothing ready (the signal pipe says why).
pub fn wait<R: PartialEq + Clone>(
    signal_fds: &[BorrowedFd<'_>],
    watched: &WatchedFds<R>,
    timeout: Duration,
) -> Ready<R> {
    let ms = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut pollfds: Vec<PollFd<'_>> = signal_fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .chain(watched.entries.iter().map(|(role, fd)| {
            let interest = if watched.writable.contains(role) {
                PollFlags::POLLOUT
            } else {
                PollFlags::POLLIN
            };
            PollFd::new(fd.as_fd(), interest)
        }))
        .collect();
    let mut ready = Ready {
        signals: false,
        fds: Vec::new(),
    };
    match poll(&mut pollfds, ms) {
        Ok(0) | Err(Errno::EINTR) => return ready,
        Ok(_) => {}
        Err(_) => return ready,
    }
    let fired = |p: &PollFd<'_>| p.revents().is_some_and(|r| !r.is_empty());
    ready.signals = pollfds[..signal_fds.len()].iter().any(fired);
    for (p, (role, _)) in pollfds[signal_fds.len()..].iter().zip(&watched.entries) {
        if fired(p) {
            ready.fds.push(role.clone());
        }
    }
    ready
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Key {
        A,
        B,
        C,
        Every,
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn deadlines_fire_in_order_and_once() {
        let clock = FakeClock::new();
        let t0 = clock.now();
        let mut t = Timers::new();
        t.set(Key::C, t0 + ms(300));
        t.set(Key::A, t0 + ms(100));
        t.set(Key::B, t0 + ms(100));
        assert!(t.due(clock.now()).is_empty());
        clock.advance(ms(99));
        assert!(t.due(clock.now()).is_empty());
        clock.advance(ms(250));
        assert_eq!(t.due(clock.now()), [Key::A, Key::B, Key::C]);
        assert!(t.is_empty());
        assert!(t.due(clock.now() + ms(1000)).is_empty());
    }

    #[test]
    fn the_timeout_is_the_nearest_deadline_capped() {
        let clock = FakeClock::new();
        let now = clock.now();
        let mut t = Timers::new();
        assert_eq!(t.timeout(now, ms(1000)), ms(1000));
        t.set(Key::A, now + ms(700));
        t.set(Key::B, now + ms(250));
        assert_eq!(t.timeout(now, ms(1000)), ms(250));
        assert_eq!(t.timeout(now, ms(100)), ms(100));
        assert_eq!(t.timeout(now + ms(300), ms(1000)), Duration::ZERO);
        // Setting a key again moves its deadline.
        t.set(Key::B, now + ms(900));
        assert_eq!(t.timeout(now, ms(1000)), ms(700));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn cancelled_deadlines_do_not_fire() {
        let clock = FakeClock::new();
        let now = clock.now();
        let mut t = Timers::new();
        t.set(Key::A, now + ms(10));
        t.set(Key::B, now + ms(20));
        assert!(t.cancel(&Key::A));
        assert!(!t.cancel(&Key::A));
        assert_eq!(t.next(), Some(now + ms(20)));
        clock.advance(ms(50));
        assert_eq!(t.due(clock.now()), [Key::B]);
    }

    /// The master loop's shape over simulated time: sleep for the computed timeout, run
    /// what is due. A 40 ms repeating timer cancelled after its 5th run fires exactly at
    /// 40, 80, ..., 200 ms, while a one-shot at 130 ms fires once in between.
    #[test]
    fn a_repeating_timer_fires_on_schedule_until_cancelled() {
        let clock = FakeClock::new();
        let t0 = clock.now();
        let mut t = Timers::new();
        t.set_every(Key::Every, t0 + ms(40), ms(40));
        t.set(Key::A, t0 + ms(130));
        let mut log = Vec::new();
        let mut runs = 0;
        for _ in 0..100 {
            if t.is_empty() {
                break;
            }
            clock.advance(t.timeout(clock.now(), ms(1000)));
            for key in t.due(clock.now()) {
                log.push((key, clock.now() - t0));
                if key == Key::Every {
                    runs += 1;
                    if runs == 5 {
                        t.cancel(&Key::Every);
                    }
                }
            }
        }
        assert!(t.is_empty());
        assert_eq!(
            log,
            [
                (Key::Every, ms(40)),
                (Key::Every, ms(80)),
                (Key::Every, ms(120)),
                (Key::A, ms(130)),
                (Key::Every, ms(160)),
                (Key::Every, ms(200)),
            ]
        );
    }

    #[test]
    fn a_late_loop_fires_a_repeating_timer_once_and_keeps_its_phase() {
        let clock = FakeClock::new();
        let t0 = clock.now();
        let mut t = Timers::new();
        t.set_every(Key::Every, t0 + ms(10), ms(10));
        clock.advance(ms(35));
        assert_eq!(t.due(clock.now()), [Key::Every]);
        assert_eq!(t.due_at(&Key::Every), Some(t0 + ms(40)));
        assert!(t.due(clock.now()).is_empty());
    }

    #[test]
    fn the_fake_clock_moves_both_readings() {
        let clock = FakeClock::new();
        let (m, w) = (clock.now(), clock.wall());
        clock.advance(Duration::from_secs(61));
        assert_eq!(clock.now() - m, Duration::from_secs(61));
        assert_eq!(
            clock.wall().duration_since(w).unwrap(),
            Duration::from_secs(61)
        );
        assert!(SystemClock.now() >= m);
    }

    #[test]
    fn wait_reports_readable_watched_fds_and_signals() {
        use nix::fcntl::OFlag;
        let (r1, w1) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (r2, w2) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (sig_r, sig_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let mut watched = WatchedFds::new();
        watched.insert(Key::A, r1);
        watched.insert(Key::B, r2);
        let none = wait(&[sig_r.as_fd()], &watched, ms(1));
        assert_eq!((none.signals, none.fds.len()), (false, 0));
        nix::unistd::write(&w2, b"x").unwrap();
        let ready = wait(&[sig_r.as_fd()], &watched, ms(1000));
        assert_eq!((ready.signals, ready.fds), (false, vec![Key::B]));
        nix::unistd::write(&sig_w, b"x").unwrap();
        drop(w1); // hang-up counts as ready
                  // A child that a concurrent test forks holds a copy of `w1` until its exec, which
                  // delays the hang-up: wait for it (the other two stay ready meanwhile).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let ready = loop {
            let ready = wait(&[sig_r.as_fd()], &watched, ms(1000));
            if ready.fds.contains(&Key::A) || std::time::Instant::now() > deadline {
                break ready;
            }
            std::thread::sleep(ms(5));
        };
        assert!(ready.signals);
        assert_eq!(ready.fds, [Key::A, Key::B]);
        assert!(watched.remove(&Key::A).is_some());
        assert!(watched.get(&Key::A).is_none());
        assert_eq!(watched.roles(), [Key::B]);
        drop(w2);
    }
}
