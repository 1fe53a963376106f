//! `logdate`: the date prefix of server log lines, in C's `ctime` layout or a strftime
//! format (the common conversions; others are written as they are).

use std::fmt::Write as _;

use crate::localtime::LocalTime;

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn day(t: &LocalTime) -> &'static str {
    DAYS.get(usize::from(t.weekday)).copied().unwrap_or("???")
}

fn month(t: &LocalTime) -> &'static str {
    MONTHS
        .get(usize::from(t.month.wrapping_sub(1)))
        .copied()
        .unwrap_or("???")
}

fn short(name: &'static str) -> &'static str {
    name.get(..3).unwrap_or(name)
}

fn day_of_year(t: &LocalTime) -> u32 {
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let leap = (t.year % 4 == 0 && t.year % 100 != 0) || t.year % 400 == 0;
    let m = usize::from(t.month.clamp(1, 12)) - 1;
    BEFORE[m] + u32::from(t.day) + u32::from(leap && m >= 2)
}

/// `Sun Dec  6 10:00:00 2026`.
pub fn ctime(out: &mut String, t: &LocalTime) {
    let _ = write!(
        out,
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        short(day(t)),
        short(month(t)),
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    );
}

/// Format `t` (at `unix` seconds) with a strftime `format`: `%Y %y %m %d %e %j %H %I %M %S
/// %p %a %A %b %h %B %z %s %F %T %D %R %c %n %t %%`; any other conversion is copied.
pub fn strftime(out: &mut String, format: &str, t: &LocalTime, unix: i64) {
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(conv) = chars.next() else {
            out.push('%');
            break;
        };
        let hour12 = match t.hour % 12 {
            0 => 12,
            h => h,
        };
        let _ = match conv {
            'Y' => write!(out, "{}", t.year),
            'y' => write!(out, "{:02}", t.year.rem_euclid(100)),
            'm' => write!(out, "{:02}", t.month),
            'd' => write!(out, "{:02}", t.day),
            'e' => write!(out, "{:2}", t.day),
            'j' => write!(out, "{:03}", day_of_year(t)),
            'H' => write!(out, "{:02}", t.hour),
            'I' => write!(out, "{hour12:02}"),
            'M' => write!(out, "{:02}", t.minute),
            'S' => write!(out, "{:02}", t.second),
            'p' => out.write_str(if t.hour < 12 { "AM" } else { "PM" }),
            'a' => out.write_str(short(day(t))),
            'A' => out.write_str(day(t)),
            'b' | 'h' => out.write_str(short(month(t))),
            'B' => out.write_str(month(t)),
            'z' => {
                let sign = if t.utc_offset < 0 { '-' } else { '+' };
                let off = t.utc_offset.unsigned_abs();
                write!(out, "{sign}{:02}{:02}", off / 3600, off % 3600 / 60)
            }
            's' => write!(out, "{unix}"),
            'F' => write!(out, "{}-{:02}-{:02}", t.year, t.month, t.day),
            'T' => write!(out, "{:02}:{:02}:{:02}", t.hour, t.minute, t.second),
            'R' => write!(out, "{:02}:{:02}", t.hour, t.minute),
            'D' => write!(
                out,
                "{:02}/{:02}/{:02}",
                t.month,
                t.day,
                t.year.rem_euclid(100)
            ),
            'c' => {
                ctime(out, t);
                Ok(())
            }
            'n' => out.write_str("\n"),
            't' => out.write_str("\t"),
            '%' => out.write_str("%"),
            other => write!(out, "%{other}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> LocalTime {
        LocalTime {
            year: 2026,
            month: 12,
            day: 6,
            hour: 14,
            minute: 5,
            second: 9,
            weekday: 0,
            utc_offset: 19800,
        }
    }

    #[test]
    fn ctime_layout() {
        let mut s = String::new();
        ctime(&mut s, &t());
        assert_eq!(s, "Sun Dec  6 14:05:09 2026");
    }

    #[test]
    fn conversions() {
        let mut s = String::new();
        strftime(
            &mut s,
            "%Y-%m-%d %H:%M:%S %z %a %b %e %j %p %I %y %F %T %% %Q",
            &t(),
            1,
        );
        assert_eq!(
            s,
            "2026-12-06 14:05:09 +0530 Sun Dec  6 340 PM 02 26 2026-12-06 14:05:09 % %Q"
        );
        let mut s = String::new();
        strftime(&mut s, "[%A %B %s]%", &t(), 42);
        assert_eq!(s, "[Sunday December 42]%");
    }
}
