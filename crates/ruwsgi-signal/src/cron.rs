//! [`CronTable`]: calendar entries the master checks as it loops, signal crons (`add_cron`)
//! and command crons (`cron`, `unique-cron`, `cron2`) alike.
//!
//! Fields follow [`CronSpec`]: `-1` any value, `-N` values that are multiples of N, an exact
//! value otherwise; weekday 7 is Sunday like 0. When both the day of the month and the
//! weekday are given (non-negative) an entry matches on either, as crontab does; otherwise
//! every field must match. An entry fires at most once per minute, however often the
//! master checks within it. The broken-down time ([`Tm`]) is passed in: the master takes
//! it from the local clock.

use ruwsgi_config::CronSpec;

/// A broken-down time, the fields a cron entry is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tm {
    /// 0-59.
    pub minute: i32,
    /// 0-23.
    pub hour: i32,
    /// Day of the month, 1-31.
    pub mday: i32,
    /// 1-12.
    pub month: i32,
    /// Day of the week, 0 (Sunday) to 6.
    pub wday: i32,
}

impl Tm {
    /// The UTC broken-down time of `unix_secs` (the master uses local time; this is for
    /// callers that have an offset to add, and for tests).
    pub fn utc(unix_secs: i64) -> Tm {
        let days = unix_secs.div_euclid(86_400);
        let secs = unix_secs.rem_euclid(86_400);
        // Month and day from days since 1970-01-01 (proleptic Gregorian calendar), by
        // 400-year eras starting on March 1st; the year itself is not needed.
        let z = days + 719_468;
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let mday = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Tm {
            minute: (secs / 60 % 60) as i32,
            hour: (secs / 3600) as i32,
            mday: mday as i32,
            month: month as i32,
            // 1970-01-01 was a Thursday (4).
            wday: (days + 4).rem_euclid(7) as i32,
        }
    }
}

/// Whether one field's rule accepts `value`.
fn field(rule: i32, value: i32) -> bool {
    match rule {
        -1 => true,
        r if r < -1 => value % -r == 0,
        r => r == value,
    }
}

/// Whether `spec` matches the minute `tm`.
pub fn matches(spec: &CronSpec, tm: &Tm) -> bool {
    let weekday = if spec.weekday == 7 { 0 } else { spec.weekday };
    let day = field(spec.day, tm.mday);
    let wday = field(weekday, tm.wday);
    let calendar = if spec.day >= 0 && spec.weekday >= 0 {
        day || wday
    } else {
        day && wday
    };
    calendar
        && field(spec.minute, tm.minute)
        && field(spec.hour, tm.hour)
        && field(spec.month, tm.month)
}

/// What an entry does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronAction {
    /// Route this signal.
    Signal(u8),
    /// Run the command cron at this index of the caller's list.
    Command(usize),
}

#[derive(Debug, Clone)]
struct Entry {
    spec: CronSpec,
    action: CronAction,
    /// When it last fired (Unix seconds).
    fired: Option<i64>,
}

/// The master's cron entries.
#[derive(Debug, Clone, Default)]
pub struct CronTable {
    entries: Vec<Entry>,
}

impl CronTable {
    /// No entries.
    pub fn new() -> CronTable {
        CronTable::default()
    }

    /// Add an entry; returns its index.
    pub fn add(&mut self, spec: CronSpec, action: CronAction) -> usize {
        self.entries.push(Entry {
            spec,
            action,
            fired: None,
        });
        self.entries.len() - 1
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What entry `index` does.
    pub fn action(&self, index: usize) -> Option<CronAction> {
        self.entries.get(index).map(|e| e.action)
    }

    /// The indexes of the entries that fire now: `unix_secs` is the current time and `tm`
    /// its broken-down form. An entry fires when its fields match and it has not fired in
    /// the last 60 seconds: checked every second, a new entry whose fields match the
    /// current minute fires at once (not at the next minute), and an entry of every minute
    /// fires every 60 seconds from then on.
    pub fn due(&mut self, unix_secs: i64, tm: &Tm) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter_mut().enumerate() {
            let rested = e.fired.is_none_or(|f| unix_secs - f >= 60);
            if rested && matches(&e.spec, tm) {
                e.fired = Some(unix_secs);
                out.push(i);
            }
        }
        out
    }

    /// When to check next: the next second (the master looks once a second).
    pub fn next_check(unix_secs: i64) -> i64 {
        unix_secs + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(minute: i32, hour: i32, day: i32, month: i32, weekday: i32) -> CronSpec {
        CronSpec {
            minute,
            hour,
            day,
            month,
            weekday,
        }
    }

    /// 2024-03-10 00:00:00 UTC, a Sunday.
    const SUNDAY: i64 = 1_710_028_800;

    #[test]
    fn utc_breakdown() {
        assert_eq!(
            Tm::utc(0),
            Tm {
                minute: 0,
                hour: 0,
                mday: 1,
                month: 1,
                wday: 4
            }
        );
        assert_eq!(
            Tm::utc(SUNDAY + 13 * 3600 + 37 * 60 + 5),
            Tm {
                minute: 37,
                hour: 13,
                mday: 10,
                month: 3,
                wday: 0
            }
        );
        // 2024-02-29 23:59 (leap day), a Thursday.
        assert_eq!(
            Tm::utc(1_709_251_140),
            Tm {
                minute: 59,
                hour: 23,
                mday: 29,
                month: 2,
                wday: 4
            }
        );
    }

    /// Check every 10 seconds for a day; the (hour, minute) of each firing of entry 0.
    fn simulate_day(table: &mut CronTable, start: i64) -> Vec<(i32, i32)> {
        let mut fired = Vec::new();
        for s in (start..start + 86_400).step_by(10) {
            let tm = Tm::utc(s);
            for i in table.due(s, &tm) {
                if i == 0 {
                    fired.push((tm.hour, tm.minute));
                }
            }
        }
        fired
    }

    #[test]
    fn fires_on_minute_0_of_even_hours() {
        let mut t = CronTable::new();
        t.add(spec(0, -2, -1, -1, -1), CronAction::Signal(3));
        let fired = simulate_day(&mut t, SUNDAY);
        let expected: Vec<(i32, i32)> = (0..24).step_by(2).map(|h| (h, 0)).collect();
        assert_eq!(fired, expected);
        assert_eq!(t.action(0), Some(CronAction::Signal(3)));
    }

    #[test]
    fn every_5_minutes() {
        let mut t = CronTable::new();
        t.add(spec(-5, -1, -1, -1, -1), CronAction::Command(0));
        let fired = simulate_day(&mut t, SUNDAY);
        assert_eq!(fired.len(), 24 * 12);
        assert!(fired.iter().all(|(_, m)| m % 5 == 0));
        assert_eq!(&fired[..3], [(0, 0), (0, 5), (0, 10)]);
    }

    #[test]
    fn day_and_weekday_are_ored_when_both_given() {
        // The 15th, or any Monday, at 12:30.
        let s = spec(30, 12, 15, -1, 1);
        let at = |mday, wday| Tm {
            minute: 30,
            hour: 12,
            mday,
            month: 6,
            wday,
        };
        assert!(matches(&s, &at(15, 3)));
        assert!(matches(&s, &at(3, 1)));
        assert!(!matches(&s, &at(3, 2)));
        assert!(!matches(
            &s,
            &Tm {
                minute: 31,
                ..at(15, 1)
            }
        ));
        // With only one of them given, it must match.
        let day_only = spec(30, 12, 15, -1, -1);
        assert!(!matches(&day_only, &at(3, 1)));
        let wday_every_2 = spec(30, 12, 15, -1, -2);
        assert!(!matches(&wday_every_2, &at(15, 3)));
        assert!(matches(&wday_every_2, &at(15, 4)));
        // Weekday 7 is Sunday.
        let sunday = spec(-1, -1, -1, -1, 7);
        assert!(matches(&sunday, &at(1, 0)));
        assert!(!matches(&sunday, &at(1, 6)));
        // Month 1-12.
        assert!(matches(&spec(-1, -1, -1, 6, -1), &at(1, 1)));
        assert!(!matches(&spec(-1, -1, -1, 5, -1), &at(1, 1)));
    }

    #[test]
    fn once_per_minute_and_next_check() {
        let mut t = CronTable::new();
        t.add(CronSpec::ANY, CronAction::Signal(1));
        t.add(spec(1, -1, -1, -1, -1), CronAction::Signal(2));
        let tm = Tm::utc(SUNDAY);
        assert_eq!(t.due(SUNDAY, &tm), [0]);
        assert_eq!(t.due(SUNDAY + 59, &tm), Vec::<usize>::new());
        assert_eq!(t.due(SUNDAY + 60, &Tm::utc(SUNDAY + 60)), [0, 1]);
        assert_eq!(CronTable::next_check(SUNDAY), SUNDAY + 1);
        assert_eq!(CronTable::next_check(-1), 0);
    }

    #[test]
    fn a_new_matching_entry_fires_at_once_then_every_60_seconds() {
        let mut t = CronTable::new();
        t.add(CronSpec::ANY, CronAction::Signal(1));
        let at = SUNDAY + 37;
        assert_eq!(t.due(at, &Tm::utc(at)), [0]);
        assert!(
            t.due(at + 23, &Tm::utc(at + 23)).is_empty(),
            "a new minute is not enough"
        );
        assert!(t.due(at + 59, &Tm::utc(at + 59)).is_empty());
        assert_eq!(t.due(at + 60, &Tm::utc(at + 60)), [0]);
    }
}
