//! Request logging: uWSGI's default line or a `log-format` template, batched.
//!
//! Lines are appended to a per-core buffer and written with one `write` once the oldest
//! waiting line is [`FLUSH_DELAY`] old (or the buffer passes 16 KiB, or the core stops), so
//! logging adds no syscall per request or per connection under load. The template is compiled once at start; the date text is rebuilt
//! at most once per second.

use std::io::Write as _;
use std::time::{Duration, Instant};

use ruwsgi_proto::Vars;

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
    date_sec: u64,
    date: String,
    x_forwarded_for: bool,
    /// When the oldest buffered line was written.
    pending_since: Option<Instant>,
}

const VARS: [&str; 25] = [
    "uri", "method", "user", "addr", "host", "proto", "status", "size", "rsize", "hsize",
    "headers", "msecs", "micros", "time", "epoch", "ltime", "pid", "wid", "core", "vars",
    "pktsize", "cl", "uagent", "referer", "switches",
];

impl RequestLog {
    /// A log using `format` (uWSGI `log-format` syntax: `%(var)`) or the default line.
    pub fn new(format: Option<&str>, pid: u32, worker_id: u32, x_forwarded_for: bool) -> Self {
        RequestLog {
            pieces: format.map(compile),
            pid,
            worker_id,
            buf: Vec::with_capacity(FLUSH_AT + 1024),
            date_sec: 0,
            date: String::new(),
            x_forwarded_for,
            pending_since: None,
        }
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
            self.date_sec = e.started;
            self.date = asctime(e.started);
        }
        let addr = client_addr(e.vars, self.x_forwarded_for);
        match self.pieces.take() {
            None => {
                let vars_bytes = e.vars.data_len() + 4 * e.vars.len();
                let b = &mut self.buf;
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
            "ltime" => b.write_all(self.date.as_bytes()),
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

/// `Sun Nov 22 04:00:00 2026` for a unix time (UTC).
pub fn asctime(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86400;
    let rem = secs % 86400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        d,
        h,
        m,
        s,
        year
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(asctime(1_795_320_000), "Sun Nov 22 04:00:00 2026");
        assert_eq!(asctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }

    #[test]
    fn format_template() {
        let mut log = RequestLog::new(Some("%(method) %(uri) %(status) %(nope)"), 7, 1, false);
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
        });
        assert_eq!(log.buf, b"GET /x?y 200 %(nope)\n");
    }

    #[test]
    fn default_line() {
        let mut log = RequestLog::new(None, 42, 1, false);
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
        });
        let want = "[pid: 42|app: 0|req: 7/12] 127.0.0.1 () {4 vars in 93 bytes} \
                    [Sun Nov 22 04:00:00 2026] POST /echo => generated 4096 bytes in 2 msecs \
                    (HTTP/1.1 200) 2 headers in 64 bytes (1 switches on core 1)\n";
        assert_eq!(String::from_utf8_lossy(&log.buf), want);
    }
}
