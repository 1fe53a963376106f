//! Request logging: uWSGI's default line or a `log-format` template, batched.
//!
//! Lines are appended to a per-core buffer and written with one `write` once the oldest
//! waiting line is [`FLUSH_DELAY`] old (or the buffer passes 16 KiB, or the core stops), so
//! logging adds no syscall per request or per connection under load. The template is
//! compiled once at start. Dates are the server's local time (`TZ` honoured), as uWSGI
//! writes them: `ctime` form in the default line, Apache form for `%(ltime)`; their text is
//! rebuilt at most once per second, so `localtime_r` costs nothing per request.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use ruwsgi_proto::Vars;
use ruwsgi_sys::localtime::{self, LocalTime};

use crate::decimal::push_u64;

/// Flush when the buffer passes this size.
const FLUSH_AT: usize = 16 * 1024;
/// The longest a line waits in the buffer.
pub const FLUSH_DELAY: Duration = Duration::from_millis(20);

/// One request's facts, for its log line.
#[derive(Debug)]
pub struct LogEntry<'a> {
    /// The request's variables.
    pub vars: &'a Vars,
    /// Response status (0 if none was sent).
    pub status: u16,
    /// Body bytes the app produced.
    pub body_bytes: u64,
    /// Bytes written to the socket.
    pub tx: u64,
    /// Number of response headers.
    pub header_count: u32,
    /// Size of the response head.
    pub head_bytes: u64,
    /// Request duration.
    pub micros: u64,
    /// This worker's requests so far, including this one.
    pub worker_requests: u64,
    /// All workers' requests so far.
    pub total_requests: u64,
    /// Core index.
    pub core: u16,
    /// Start time of the request (unix seconds).
    pub started: u64,
    /// `memory-report`: the worker's (rss, vsz) in bytes after the request, written before
    /// the default line as uWSGI does.
    pub memory: Option<(u64, u64)>,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Var(&'static str),
    Unknown(String),
}

/// A compiled request log format and its output buffer.
#[derive(Debug)]
pub struct RequestLog {
    pieces: Option<Vec<Piece>>,
    pid: u32,
    worker_id: u32,
    buf: Vec<u8>,
    /// Which clock the dates are in.
    zone: Zone,
    /// The second `date` and `ltime` show.
    date_sec: u64,
    /// `Sun Nov 22 10:00:00 2026` (`ctime`).
    date: String,
    /// `22/Nov/2026:10:00:00 +0530`.
    ltime: String,
    x_forwarded_for: bool,
    /// When the oldest buffered line was written.
    pending_since: Option<Instant>,
}

const VARS: [&str; 26] = [
    "uri", "method", "user", "addr", "host", "proto", "status", "size", "rsize", "hsize",
    "headers", "msecs", "micros", "time", "epoch", "ltime", "ctime", "pid", "wid", "core", "vars",
    "pktsize", "cl", "uagent", "referer", "switches",
];

/// The clock log dates are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zone {
    /// The C library's local time.
    Local,
    /// A fixed offset east of UTC in seconds (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Fixed(i32),
}

impl RequestLog {
    /// A log using `format` (uWSGI `log-format` syntax: `%(var)`) or the default line.
    pub fn new(format: Option<&str>, pid: u32, worker_id: u32, x_forwarded_for: bool) -> Self {
        // Read TZ now, while the worker starts, not at its first request.
        localtime::init_timezone();
        RequestLog {
            pieces: format.map(compile),
            pid,
            worker_id,
            buf: Vec::with_capacity(FLUSH_AT + 1024),
            zone: Zone::Local,
            date_sec: 0,
            date: String::new(),
            ltime: String::new(),
            x_forwarded_for,
            pending_since: None,
        }
    }

    /// The same log with dates in `zone`.
    #[cfg(test)]
    fn with_zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// Rebuild the date texts for `secs` (once per second).
    fn set_date(&mut self, secs: u64) {
        let t = zone_time(self.zone, secs);
        self.date_sec = secs;
        self.date.clear();
        write_ctime(&mut self.date, &t);
        self.ltime.clear();
        write_apache_time(&mut self.ltime, &t);
    }

    /// True when lines are waiting.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Write the buffered lines to stderr in one call.
    pub fn flush(&mut self) {
        if !self.buf.is_empty() {
            let _ = std::io::stderr().write_all(&self.buf);
            self.buf.clear();
        }
        self.pending_since = None;
    }

    /// Flush if the oldest line waited [`FLUSH_DELAY`]; otherwise how long until it has
    /// (`None` when nothing waits).
    pub fn flush_if_due(&mut self, now: Instant) -> Option<Duration> {
        let since = self.pending_since?;
        let waited = now.saturating_duration_since(since);
        if waited >= FLUSH_DELAY {
            self.flush();
            None
        } else {
            Some(FLUSH_DELAY - waited)
        }
    }

    /// Append one request's line.
    pub fn log(&mut self, e: &LogEntry<'_>) {
        if self.buf.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        if e.started != self.date_sec || self.date.is_empty() {
            self.set_date(e.started);
        }
        let addr = client_addr(e.vars, self.x_forwarded_for);
        match self.pieces.take() {
            None => {
                let vars_bytes = e.vars.data_len() + 4 * e.vars.len();
                let b = &mut self.buf;
                if let Some((rss, vsz)) = e.memory {
                    b.extend_from_slice(b"{address space usage: ");
                    push_u64(b, vsz);
                    b.extend_from_slice(b" bytes/");
                    push_u64(b, vsz >> 20);
                    b.extend_from_slice(b"MB} {rss usage: ");
                    push_u64(b, rss);
                    b.extend_from_slice(b" bytes/");
                    push_u64(b, rss >> 20);
                    b.extend_from_slice(b"MB} ");
                }
                b.extend_from_slice(b"[pid: ");
                push_u64(b, u64::from(self.pid));
                b.extend_from_slice(b"|app: 0|req: ");
                push_u64(b, e.worker_requests);
                b.push(b'/');
                push_u64(b, e.total_requests);
                b.extend_from_slice(b"] ");
                b.extend_from_slice(addr);
                b.extend_from_slice(b" (");
                b.extend_from_slice(e.vars.get(b"REMOTE_USER").unwrap_or(b""));
                b.extend_from_slice(b") {");
                push_u64(b, e.vars.len() as u64);
                b.extend_from_slice(b" vars in ");
                push_u64(b, vars_bytes as u64);
                b.extend_from_slice(b" bytes} [");
                b.extend_from_slice(self.date.as_bytes());
                b.extend_from_slice(b"] ");
                b.extend_from_slice(e.vars.get(b"REQUEST_METHOD").unwrap_or(b"-"));
                b.push(b' ');
                b.extend_from_slice(e.vars.get(b"REQUEST_URI").unwrap_or(b"-"));
                b.extend_from_slice(b" => generated ");
                push_u64(b, e.body_bytes);
                b.extend_from_slice(b" bytes in ");
                push_u64(b, e.micros / 1000);
                b.extend_from_slice(b" msecs (");
                b.extend_from_slice(e.vars.get(b"SERVER_PROTOCOL").unwrap_or(b"HTTP/1.0"));
                b.push(b' ');
                push_u64(b, u64::from(e.status));
                b.extend_from_slice(b") ");
                push_u64(b, u64::from(e.header_count));
                b.extend_from_slice(b" headers in ");
                push_u64(b, e.head_bytes);
                b.extend_from_slice(b" bytes (1 switches on core ");
                push_u64(b, u64::from(e.core));
                b.extend_from_slice(b")\n");
            }
            Some(pieces) => {
                for p in &pieces {
                    match p {
                        Piece::Text(t) | Piece::Unknown(t) => {
                            self.buf.extend_from_slice(t.as_bytes())
                        }
                        Piece::Var(v) => self.push_var(v, e, addr),
                    }
                }
                self.buf.push(b'\n');
                self.pieces = Some(pieces);
            }
        }
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    fn push_var(&mut self, v: &str, e: &LogEntry<'_>, addr: &[u8]) {
        let var = |k: &[u8]| e.vars.get(k).unwrap_or(b"-");
        let b = &mut self.buf;
        let num = |b: &mut Vec<u8>, n: u64| {
            push_u64(b, n);
            Ok(())
        };
        let _ = match v {
            "uri" => b.write_all(var(b"REQUEST_URI")),
            "method" => b.write_all(var(b"REQUEST_METHOD")),
            "user" => b.write_all(var(b"REMOTE_USER")),
            "addr" => b.write_all(addr),
            "host" => b.write_all(var(b"HTTP_HOST")),
            "proto" => b.write_all(var(b"SERVER_PROTOCOL")),
            "uagent" => b.write_all(var(b"HTTP_USER_AGENT")),
            "referer" => b.write_all(var(b"HTTP_REFERER")),
            "cl" => b.write_all(var(b"CONTENT_LENGTH")),
            "status" => num(b, u64::from(e.status)),
            "size" => num(b, e.body_bytes),
            "rsize" => num(b, e.tx),
            "hsize" => num(b, e.head_bytes),
            "headers" => num(b, u64::from(e.header_count)),
            "msecs" => num(b, e.micros / 1000),
            "micros" => num(b, e.micros),
            "time" | "epoch" => num(b, e.started),
            "ltime" => b.write_all(self.ltime.as_bytes()),
            "ctime" => b.write_all(self.date.as_bytes()),
            "pid" => num(b, u64::from(self.pid)),
            "wid" => num(b, u64::from(self.worker_id)),
            "core" => num(b, u64::from(e.core)),
            "vars" => num(b, e.vars.len() as u64),
            "pktsize" => num(b, (e.vars.data_len() + 4 * e.vars.len()) as u64),
            _ => b.write_all(b"1"),
        };
    }
}

fn client_addr(vars: &Vars, x_forwarded_for: bool) -> &[u8] {
    if x_forwarded_for {
        if let Some(x) = vars.get(b"HTTP_X_FORWARDED_FOR") {
            return x;
        }
    }
    vars.get(b"REMOTE_ADDR").unwrap_or(b"")
}

fn compile(format: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(i) = rest.find("%(") {
        if i > 0 {
            out.push(Piece::Text(rest[..i].to_string()));
        }
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                let name = &after[..j];
                match VARS.iter().find(|v| **v == name) {
                    Some(v) => out.push(Piece::Var(v)),
                    None => out.push(Piece::Unknown(format!("%({name})"))),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push(Piece::Text(rest[i..].to_string()));
                rest = "";
            }
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    out
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The time at `secs` in `zone`; UTC when the C library cannot represent it.
fn zone_time(zone: Zone, secs: u64) -> LocalTime {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX / 2);
    match zone {
        Zone::Local => localtime::local_time(secs).unwrap_or_else(|| shifted_utc(secs, 0)),
        Zone::Fixed(offset) => shifted_utc(secs, offset),
    }
}

/// The civil time `offset` seconds east of UTC (proleptic Gregorian).
fn shifted_utc(secs: i64, offset: i32) -> LocalTime {
    let local = secs.saturating_add(i64::from(offset));
    let days = local.div_euclid(86_400);
    let rem = local.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    LocalTime {
        year: i32::try_from(year).unwrap_or(i32::MAX),
        month: month as u8,
        day: day as u8,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        weekday: (days + 4).rem_euclid(7) as u8,
        utc_offset: offset,
    }
}

fn name(names: &[&'static str], index: u8) -> &'static str {
    names.get(usize::from(index)).copied().unwrap_or("???")
}

/// `Sun Nov 22 10:00:00 2026`: C's `ctime` layout (the default line's date).
fn write_ctime(out: &mut String, t: &LocalTime) {
    let _ = write!(
        out,
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        name(&DAYS, t.weekday),
        name(&MONTHS, t.month.wrapping_sub(1)),
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    );
}

/// `22/Nov/2026:10:00:00 +0530`: strftime's `%d/%b/%Y:%H:%M:%S %z` (`%(ltime)`).
fn write_apache_time(out: &mut String, t: &LocalTime) {
    let sign = if t.utc_offset < 0 { '-' } else { '+' };
    let off = t.utc_offset.unsigned_abs() / 60;
    let _ = write!(
        out,
        "{:02}/{}/{}:{:02}:{:02}:{:02} {sign}{:02}{:02}",
        t.day,
        name(&MONTHS, t.month.wrapping_sub(1)),
        t.year,
        t.hour,
        t.minute,
        t.second,
        off / 60,
        off % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates_at(secs: u64, offset: i32) -> (String, String) {
        let t = zone_time(Zone::Fixed(offset), secs);
        let (mut ctime, mut apache) = (String::new(), String::new());
        write_ctime(&mut ctime, &t);
        write_apache_time(&mut apache, &t);
        (ctime, apache)
    }

    #[test]
    fn dates_in_utc_and_at_offsets() {
        let d = |secs, off| dates_at(secs, off);
        assert_eq!(d(0, 0).0, "Thu Jan  1 00:00:00 1970");
        assert_eq!(d(951_782_400, 0).0, "Tue Feb 29 00:00:00 2000");
        assert_eq!(
            d(1_795_320_000, 0),
            (
                "Sun Nov 22 04:00:00 2026".into(),
                "22/Nov/2026:04:00:00 +0000".into()
            )
        );
        // Asia/Kolkata, +05:30.
        assert_eq!(
            d(1_795_320_000, 19_800),
            (
                "Sun Nov 22 09:30:00 2026".into(),
                "22/Nov/2026:09:30:00 +0530".into()
            )
        );
        // Newfoundland, -03:30, across midnight and a month.
        assert_eq!(
            d(1_795_996_800, -12_600),
            (
                "Sun Nov 29 20:30:00 2026".into(),
                "29/Nov/2026:20:30:00 -0330".into()
            )
        );
        assert_eq!(d(0, -3600).0, "Wed Dec 31 23:00:00 1969");
    }

    /// The local zone agrees with the C library (whatever TZ the tests run with).
    #[test]
    fn local_dates_follow_the_c_library() {
        let secs = 1_795_320_000;
        let t = localtime::local_time(secs as i64).unwrap();
        assert_eq!(zone_time(Zone::Local, secs), t);
        assert_eq!(dates_at(secs, t.utc_offset).0, {
            let mut s = String::new();
            write_ctime(&mut s, &t);
            s
        });
    }

    #[test]
    fn format_template() {
        let mut log = RequestLog::new(
            Some("%(method) %(uri) %(status) %(nope) [%(ltime)] %(ctime)"),
            7,
            1,
            false,
        )
        .with_zone(Zone::Fixed(19_800));
        let mut v = Vars::new();
        v.push(b"REQUEST_METHOD", b"GET");
        v.push(b"REQUEST_URI", b"/x?y");
        log.log(&LogEntry {
            vars: &v,
            status: 200,
            body_bytes: 3,
            tx: 50,
            header_count: 1,
            head_bytes: 47,
            micros: 1500,
            worker_requests: 1,
            total_requests: 1,
            core: 0,
            started: 1,
            memory: Some((1, 2)),
        });
        let want = "GET /x?y 200 %(nope) [01/Jan/1970:05:30:01 +0530] Thu Jan  1 05:30:01 1970\n";
        assert_eq!(String::from_utf8_lossy(&log.buf), want);
    }

    #[test]
    fn default_line() {
        let mut log = RequestLog::new(None, 42, 1, false).with_zone(Zone::Fixed(0));
        let mut v = Vars::new();
        v.push(b"REQUEST_METHOD", b"POST");
        v.push(b"REQUEST_URI", b"/echo");
        v.push(b"SERVER_PROTOCOL", b"HTTP/1.1");
        v.push(b"REMOTE_ADDR", b"127.0.0.1");
        log.log(&LogEntry {
            vars: &v,
            status: 200,
            body_bytes: 4096,
            tx: 4160,
            header_count: 2,
            head_bytes: 64,
            micros: 2500,
            worker_requests: 7,
            total_requests: 12,
            core: 1,
            started: 1_795_320_000,
            memory: None,
        });
        let want = "[pid: 42|app: 0|req: 7/12] 127.0.0.1 () {4 vars in 93 bytes} \
                    [Sun Nov 22 04:00:00 2026] POST /echo => generated 4096 bytes in 2 msecs \
                    (HTTP/1.1 200) 2 headers in 64 bytes (1 switches on core 1)\n";
        assert_eq!(String::from_utf8_lossy(&log.buf), want);
        log.buf.clear();
        log.log(&LogEntry {
            vars: &v,
            status: 200,
            body_bytes: 0,
            tx: 0,
            header_count: 0,
            head_bytes: 0,
            micros: 0,
            worker_requests: 8,
            total_requests: 13,
            core: 0,
            started: 1_795_320_000,
            memory: Some((10_264_576, 20_885_504)),
        });
        let line = String::from_utf8_lossy(&log.buf);
        assert!(
            line.starts_with(
                "{address space usage: 20885504 bytes/19MB} {rss usage: 10264576 bytes/9MB} \
                 [pid: 42|app: 0|req: 8/13] "
            ),
            "{line}"
        );
    }
}
