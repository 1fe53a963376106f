//! [`Timers`]: the master's periodic signal timers (`timer`, `rbtimer`, `add_timer`,
//! `add_ms_timer`, `add_rb_timer`).
//!
//! The clock is always passed in (`now`), never read here, so the schedule is tested
//! without sleeping. A timer fires at most once per [`Timers::fire_due`] call: one that
//! fell behind (the master was busy, the machine slept) fires once and starts its next
//! period from `now`, instead of firing a burst to catch up.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Timer {
    signum: u8,
    period: Duration,
    /// Firings left; `None`: forever.
    left: Option<u64>,
    next: Instant,
}

/// The master's timers.
#[derive(Debug, Clone, Default)]
pub struct Timers {
    timers: Vec<Timer>,
}

impl Timers {
    /// No timers.
    pub fn new() -> Timers {
        Timers::default()
    }

    /// Route `signum` every `period` from `now`, `iterations` times (0: forever). A zero
    /// period never fires (and is not kept).
    pub fn add(&mut self, signum: u8, period: Duration, iterations: u64, now: Instant) {
        if period.is_zero() {
            return;
        }
        self.timers.push(Timer {
            signum,
            period,
            left: (iterations > 0).then_some(iterations),
            next: now + period,
        });
    }

    /// Number of live timers.
    pub fn len(&self) -> usize {
        self.timers.len()
    }

    /// True when no timer is live.
    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// When the next timer is due, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.iter().map(|t| t.next).min()
    }

    /// The signals of the timers due at `now`, earliest deadline first (ties in the order
    /// the timers were added); each due timer re-arms, or ends after its last firing.
    pub fn fire_due(&mut self, now: Instant) -> Vec<u8> {
        let mut due: Vec<(Instant, usize)> = self
            .timers
            .iter()
            .enumerate()
            .filter(|(_, t)| t.next <= now)
            .map(|(i, t)| (t.next, i))
            .collect();
        due.sort();
        let fired = due.iter().map(|&(_, i)| self.timers[i].signum).collect();
        for &(_, i) in &due {
            let t = &mut self.timers[i];
            t.next += t.period;
            if t.next <= now {
                t.next = now + t.period;
            }
            if let Some(left) = &mut t.left {
                *left -= 1;
            }
        }
        self.timers.retain(|t| t.left != Some(0));
        fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Step a simulated clock by one second for `secs` seconds; the signals fired at each
    /// second.
    fn run(t: &mut Timers, start: Instant, secs: u32) -> Vec<(u32, Vec<u8>)> {
        (1..=secs)
            .map(|s| (s, t.fire_due(start + S * s)))
            .filter(|(_, f)| !f.is_empty())
            .collect()
    }

    #[test]
    fn fires_every_n_seconds() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.add(5, S * 3, 0, t0);
        t.add(6, S * 2, 0, t0);
        assert_eq!(t.next_deadline(), Some(t0 + S * 2));
        assert_eq!(t.fire_due(t0 + S), Vec::<u8>::new());
        assert_eq!(
            run(&mut t, t0, 7),
            [(2, vec![6]), (3, vec![5]), (4, vec![6]), (6, vec![5, 6]),]
        );
        assert_eq!(t.next_deadline(), Some(t0 + S * 8));
    }

    #[test]
    fn stops_after_k_iterations() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.add(1, S, 3, t0);
        t.add(2, S * 2, 0, t0);
        let fired = run(&mut t, t0, 6);
        let ones = fired.iter().filter(|(_, f)| f.contains(&1)).count();
        assert_eq!(ones, 3);
        assert_eq!(t.len(), 1);
        assert_eq!(t.fire_due(t0 + S * 8), [2]);
    }

    #[test]
    fn a_late_timer_fires_once_and_rearms_from_now() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.add(9, S, 0, t0);
        let late = t0 + S * 10 + Duration::from_millis(300);
        assert_eq!(t.fire_due(late), [9]);
        assert_eq!(t.next_deadline(), Some(late + S));
        assert_eq!(
            t.fire_due(late + Duration::from_millis(999)),
            Vec::<u8>::new()
        );
        assert_eq!(t.fire_due(late + S), [9]);
    }

    #[test]
    fn on_time_timers_keep_their_phase() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.add(1, S, 0, t0);
        // Serviced a little late each time, without missing a period.
        assert_eq!(t.fire_due(t0 + Duration::from_millis(1100)), [1]);
        assert_eq!(t.next_deadline(), Some(t0 + S * 2));
    }

    #[test]
    fn due_order_and_zero_period() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        t.add(0, Duration::ZERO, 0, t0);
        assert!(t.is_empty() && t.next_deadline().is_none());
        t.add(3, S * 3, 0, t0);
        t.add(2, S * 2, 0, t0);
        t.add(4, S * 3, 0, t0);
        assert_eq!(t.fire_due(t0 + S * 3), [2, 3, 4]);
    }
}
