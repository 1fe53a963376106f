//! Local civil time as the C library computes it (honouring `TZ`), for log timestamps.
//!
//! [`init_timezone`] runs `tzset` once per process; [`local_time`] is `localtime_r`, which
//! is thread-safe but takes the C library's time-zone lock, so callers format a timestamp
//! at most once a second and reuse the text (the request log does).
//!
//! POSIX asks for `tzset` before `localtime_r` (glibc would load the zone on first use
//! anyway, but only then). Neither nix nor the libc crate binds `tzset` on Unix (libc
//! 0.2.191 declares it for Windows only), so this file declares that one C function itself.

use std::mem::MaybeUninit;
use std::sync::Once;

unsafe extern "C" {
    /// POSIX `void tzset(void)`: set the C library's zone from `TZ` (or the system default).
    fn tzset();
}

/// A broken-down local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// Full year (2026).
    pub year: i32,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=60 (a leap second).
    pub second: u8,
    /// 0 = Sunday.
    pub weekday: u8,
    /// Seconds east of UTC in effect at that time (`+05:30` is 19800).
    pub utc_offset: i32,
}

static TZSET: Once = Once::new();

/// Read the time zone (`TZ`, else the system default) once per process. Call it early,
/// before threads that could change the environment exist; [`local_time`] calls it too.
pub fn init_timezone() {
    TZSET.call_once(|| {
        // SAFETY: tzset takes no arguments and only reads `TZ` through getenv. ruwsgi changes
        // its environment only while setting up (the `env` option, before any core thread
        // runs), and `Once` keeps our own calls from overlapping.
        unsafe { tzset() }
    });
}

/// The local time at `unix_secs`, or `None` when the C library cannot represent it.
pub fn local_time(unix_secs: i64) -> Option<LocalTime> {
    init_timezone();
    // `time_t` is 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let t: libc::time_t = unix_secs.try_into().ok()?;
    let mut tm = MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: both pointers are valid for the call: `t` lives on this frame and `tm` is
    // writable storage of the right type; localtime_r is the reentrant form and writes only
    // `*tm` (its `tm_zone` then points into the C library's static zone names).
    let res = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if res.is_null() {
        return None;
    }
    // SAFETY: localtime_r succeeded, so it filled every field (and `zeroed` already made the
    // whole struct a valid value).
    let tm = unsafe { tm.assume_init() };
    let small = |v: libc::c_int| u8::try_from(v).ok();
    Some(LocalTime {
        year: tm.tm_year.checked_add(1900)?,
        month: small(tm.tm_mon + 1)?,
        day: small(tm.tm_mday)?,
        hour: small(tm.tm_hour)?,
        minute: small(tm.tm_min)?,
        second: small(tm.tm_sec)?,
        weekday: small(tm.tm_wday)?,
        utc_offset: i32::try_from(tm.tm_gmtoff).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Whatever zone the test runs in, the fields are the UTC time shifted by the offset the
    /// C library reports for that instant.
    #[test]
    fn fields_agree_with_the_reported_offset() {
        for t in [
            0i64,
            951_782_400,
            1_795_320_000,
            1_700_000_000,
            1_719_835_199,
        ] {
            let lt = local_time(t).expect("representable");
            let local = t + i64::from(lt.utc_offset);
            let days = days_from_civil(i64::from(lt.year), i64::from(lt.month), i64::from(lt.day));
            assert_eq!(days, local.div_euclid(86_400), "{t}: {lt:?}");
            let secs = i64::from(lt.hour) * 3600 + i64::from(lt.minute) * 60;
            assert_eq!(secs + i64::from(lt.second), local.rem_euclid(86_400), "{t}");
            assert_eq!(i64::from(lt.weekday), (days + 4).rem_euclid(7), "{t}");
            assert!(lt.utc_offset.abs() < 26 * 3600);
        }
    }

    #[test]
    fn days_helper_is_right() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    }
}
