//! The crash-loop throttle ("forkbomb" protection), pure logic over caller-supplied time.
//!
//! Only respawns after an unexpected death count: recycling and reload respawns are
//! expected. More than `limit` (= `processes`) counted respawns within one second pause
//! respawning for `forkbomb-delay`; the master keeps running and waits on its poll timeout,
//! never spinning. Time is passed in, so tests drive it with synthetic instants.

use std::time::{Duration, Instant};

/// What to do with a respawn that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Spawn now.
    Spawn,
    /// This attempt crossed the limit: log it once, do not spawn before `until`.
    Tripped {
        /// End of the pause.
        until: Instant,
    },
    /// Already paused until `until`.
    Paused {
        /// End of the pause.
        until: Instant,
    },
}

/// Respawn counter over one-second windows.
#[derive(Debug, Clone)]
pub struct Throttle {
    limit: usize,
    delay: Duration,
    window_start: Option<Instant>,
    count: usize,
    paused_until: Option<Instant>,
}

impl Throttle {
    /// At most `limit` respawns per second (at least 1), then a pause of `delay`.
    pub fn new(limit: usize, delay: Duration) -> Throttle {
        Throttle {
            limit: limit.max(1),
            delay,
            window_start: None,
            count: 0,
            paused_until: None,
        }
    }

    /// Ask for one crash respawn at `now`.
    pub fn check(&mut self, now: Instant) -> Verdict {
        if let Some(until) = self.paused_until {
            if now < until {
                return Verdict::Paused { until };
            }
            self.paused_until = None;
            self.window_start = None;
        }
        let fresh = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= Duration::from_secs(1));
        if fresh {
            self.window_start = Some(now);
            self.count = 0;
        }
        if self.count >= self.limit {
            let until = now + self.delay;
            self.paused_until = Some(until);
            return Verdict::Tripped { until };
        }
        self.count += 1;
        Verdict::Spawn
    }

    /// When respawning may resume, if paused.
    pub fn paused_until(&self) -> Option<Instant> {
        self.paused_until
    }

    /// Forget history (a reload starts clean).
    pub fn reset(&mut self) {
        self.window_start = None;
        self.count = 0;
        self.paused_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn allows_limit_per_second_then_pauses() {
        let t0 = Instant::now();
        let mut t = Throttle::new(2, Duration::from_secs(2));
        assert_eq!(t.check(t0), Verdict::Spawn);
        assert_eq!(t.check(t0 + ms(100)), Verdict::Spawn);
        assert_eq!(
            t.check(t0 + ms(200)),
            Verdict::Tripped {
                until: t0 + ms(2200)
            }
        );
        assert_eq!(
            t.check(t0 + ms(1500)),
            Verdict::Paused {
                until: t0 + ms(2200)
            }
        );
        assert_eq!(t.paused_until(), Some(t0 + ms(2200)));
        assert_eq!(t.check(t0 + ms(2200)), Verdict::Spawn);
        assert_eq!(t.paused_until(), None);
    }

    #[test]
    fn a_new_window_resets_the_count() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1, Duration::from_secs(2));
        assert_eq!(t.check(t0), Verdict::Spawn);
        assert_eq!(t.check(t0 + ms(1000)), Verdict::Spawn);
        assert_eq!(t.check(t0 + ms(2500)), Verdict::Spawn);
        assert!(matches!(t.check(t0 + ms(2600)), Verdict::Tripped { .. }));
    }

    #[test]
    fn a_crash_loop_is_bounded_in_rate() {
        // Every attempt is a crash respawn, asked for every 10 ms for 10 s.
        let t0 = Instant::now();
        let mut t = Throttle::new(2, Duration::from_secs(2));
        let spawns = (0..1000)
            .filter(|i| t.check(t0 + ms(i * 10)) == Verdict::Spawn)
            .count();
        // 2 per (~2 s pause + window): at most about 1 per second.
        assert!(spawns <= 12, "{spawns} spawns in 10 s");
        assert!(spawns >= 6);
    }

    #[test]
    fn reset_clears_a_pause() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1, Duration::from_secs(5));
        t.check(t0);
        assert!(matches!(t.check(t0), Verdict::Tripped { .. }));
        t.reset();
        assert_eq!(t.check(t0 + ms(1)), Verdict::Spawn);
    }
}
