//! The stats server (`stats ADDR`, uWSGI's JSON document, what `uwsgitop` reads) and the
//! Prometheus endpoint (`stats-prometheus ADDR`, or `GET /metrics` with `stats-http`),
//! both served by the master from its poll loop.
//!
//! Design decision: the master must never stall on a client. Listeners and connections are
//! non-blocking fds in the loop's [`WatchedFds`](crate::events::WatchedFds); a connection
//! is read (HTTP: one request head of at most [`MAX_REQUEST`] bytes) and written only when
//! `poll` says it is ready, and it is closed when its [`CONN_TIMEOUT`] runs out, whatever
//! it has done by then. At most [`MAX_CONNS`] are open at once (more are accepted and
//! closed at once) and at most [`ACCEPTS_PER_WAKE`] are accepted per wake-up, so a flood
//! cannot keep the loop from reaping and respawning. The document is built when a
//! connection is ready for it, from the scoreboard, the caches and `/proc` ([`view`]).
//! Listeners are close-on-exec and closed in every forked child.

mod json;
mod view;

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use ruwsgi_config::{Protocol, Settings};
use ruwsgi_sys::{log_line, BindAddr, ListenOptions};

use crate::error::MasterError;
use crate::master::{Deadline, Master, Watch};

use view::{CacheView, SocketView, View, WorkerView};

/// How long one stats connection may stay open, from accept to the last byte sent.
pub(crate) const CONN_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections open at once; more are closed as soon as they are accepted.
pub(crate) const MAX_CONNS: usize = 64;
/// Connections accepted per listener per wake-up of the loop.
pub(crate) const ACCEPTS_PER_WAKE: usize = 16;
/// Longest HTTP request head read (`stats-http`, `stats-prometheus`).
pub(crate) const MAX_REQUEST: usize = 8192;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `stats`: the JSON document (raw, or over HTTP with `stats-http`).
    Stats,
    /// `stats-prometheus`: HTTP, `GET /metrics`.
    Prometheus,
}

/// One bound listener (its fd lives in the loop's watched fds as
/// [`Watch::StatsListener`]).
#[derive(Debug)]
pub(crate) struct StatsListener {
    endpoint: Endpoint,
    /// A filesystem unix socket to remove at a stop with `vacuum`.
    unix_path: Option<PathBuf>,
}

#[derive(Debug)]
enum State {
    /// Reading an HTTP request head.
    Reading(Vec<u8>),
    /// Raw stats socket with `stats-token`: reading the client's first line.
    ReadingToken(Vec<u8>),
    /// Sending the reply; `sent` bytes are out.
    Writing { out: Vec<u8>, sent: usize },
}

#[derive(Debug)]
struct Conn {
    id: u64,
    endpoint: Endpoint,
    state: State,
    deadline: Instant,
}

/// The listeners and open connections of the stats endpoints. Empty when neither `stats`
/// nor `stats-prometheus` is set.
#[derive(Debug, Default)]
pub(crate) struct StatsServer {
    listeners: Vec<StatsListener>,
    conns: Vec<Conn>,
    next_id: u64,
}

/// Bind `option`'s address: `:port` is 127.0.0.1 (with a warning), a path or `@name` a
/// unix socket (mode `chmod-socket`, 0660 by default). The fd is non-blocking and
/// close-on-exec.
fn bind_one(
    settings: &Settings,
    option: &'static str,
    address: &str,
) -> Result<(OwnedFd, Option<PathBuf>), MasterError> {
    let err = |source| MasterError::Bind {
        address: address.to_string(),
        option,
        source,
    };
    let parsed = ruwsgi_sys::parse_addr(address).map_err(|source| MasterError::Address {
        address: address.to_string(),
        option,
        source,
    })?;
    let opts = ListenOptions {
        backlog: settings.sockets.listen,
        unix_mode: settings
            .sockets
            .chmod_socket
            .unwrap_or(ListenOptions::DEFAULT.unix_mode),
        defer_accept_secs: 0,
    };
    let fd = ruwsgi_sys::bind_listener(&parsed.addr, opts).map_err(err)?;
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|e| err(e.into()))?;
    let name = ruwsgi_sys::local_addr(std::os::fd::AsFd::as_fd(&fd))
        .unwrap_or_else(|_| parsed.addr.to_string());
    log_line(&format!(
        "ruwsgi: stats server enabled on {name} ({option}, fd {})",
        fd.as_raw_fd()
    ));
    if parsed.loopback_default {
        log_line(&format!(
            "*** WARNING: {option} {address:?} has no host: bound to 127.0.0.1 only; write 0.0.0.0{address} to listen on every interface ***"
        ));
    }
    let unix_path = match parsed.addr {
        BindAddr::Unix(p) => Some(p),
        _ => None,
    };
    Ok((fd, unix_path))
}

impl StatsServer {
    /// Bind `stats` and `stats-prometheus` (when set). Returns the server and the
    /// listeners' fds, in listener order, for the loop to watch.
    pub(crate) fn bind(settings: &Settings) -> Result<(StatsServer, Vec<OwnedFd>), MasterError> {
        let mut server = StatsServer::default();
        let mut fds = Vec::new();
        let wanted = [
            (Endpoint::Stats, "stats", &settings.stats.address),
            (
                Endpoint::Prometheus,
                "stats-prometheus",
                &settings.stats.prometheus,
            ),
        ];
        for (endpoint, option, address) in wanted {
            if let Some(address) = address {
                let (fd, unix_path) = bind_one(settings, option, address)?;
                fds.push(fd);
                server.listeners.push(StatsListener {
                    endpoint,
                    unix_path,
                });
            }
        }
        Ok((server, fds))
    }

    /// Remove the filesystem unix sockets (`vacuum`, at a stop).
    pub(crate) fn vacuum(&self) {
        for path in self.listeners.iter().filter_map(|l| l.unix_path.as_ref()) {
            if std::fs::remove_file(path).is_ok() {
                log_line(&format!("ruwsgi: vacuum: removed {}", path.display()));
            }
        }
    }

    /// The earliest connection deadline.
    fn next_deadline(&self) -> Option<Instant> {
        self.conns.iter().map(|c| c.deadline).min()
    }
}

/// What an HTTP request on a stats endpoint gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Json,
    Metrics,
    NotFound,
    BadRequest,
    Unauthorized,
}

/// Equal, in a time that does not depend on where they differ (only on the length).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the head carries `Authorization: Bearer TOKEN`.
fn shows_token(head: &[u8], token: &str) -> bool {
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        name.eq_ignore_ascii_case(b"authorization")
            && value.len() > 7
            && value[..7].eq_ignore_ascii_case(b"bearer ")
            && same_secret(value[7..].trim_ascii(), token.as_bytes())
    })
}

/// Whether the raw stats client's first line (complete in `buf`) is the token: `Some` once
/// a line is there (or the 1 KiB a token line may take is exceeded).
fn token_line(buf: &[u8], token: &str) -> Option<bool> {
    match buf.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = &buf[..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            Some(same_secret(line, token.as_bytes()))
        }
        None if buf.len() > 1024 => Some(false),
        None => None,
    }
}

/// Where a complete request head sends it. `None` while the head is incomplete.
/// With `token`, a head that does not show it gets [`Reply::Unauthorized`].
fn route(endpoint: Endpoint, head: &[u8], token: Option<&str>) -> Option<Reply> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| head.windows(2).position(|w| w == b"\n\n"))?;
    let line = head[..end].split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = std::str::from_utf8(line).unwrap_or("").trim_end();
    let mut parts = line.split(' ');
    let (Some(_method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Some(Reply::BadRequest);
    };
    if !version.starts_with("HTTP/") {
        return Some(Reply::BadRequest);
    }
    if token.is_some_and(|t| !shows_token(&head[..end], t)) {
        return Some(Reply::Unauthorized);
    }
    let path = target.split('?').next().unwrap_or("");
    Some(match (endpoint, path) {
        (_, "/metrics") => Reply::Metrics,
        (Endpoint::Stats, _) => Reply::Json,
        (Endpoint::Prometheus, _) => Reply::NotFound,
    })
}

fn http_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.0 {status}\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

impl Master {
    /// Watch the stats listeners (before the first fork: children close them with the
    /// rest of the watched fds).
    pub(crate) fn watch_stats(&mut self, fds: Vec<OwnedFd>) {
        for (index, fd) in fds.into_iter().enumerate() {
            self.watched.insert(Watch::StatsListener(index), fd);
        }
    }

    /// A stats listener or connection is ready.
    pub(crate) fn on_stats_ready(&mut self, watch: Watch) {
        match watch {
            Watch::StatsListener(index) => self.stats_accept(index),
            Watch::StatsConn(id) => self.stats_progress(id),
            _ => {}
        }
    }

    /// Close every connection past its deadline.
    pub(crate) fn stats_expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .stats
            .conns
            .iter()
            .filter(|c| c.deadline <= now)
            .map(|c| c.id)
            .collect();
        for id in expired {
            self.stats_close(id);
        }
        self.stats_rearm();
    }

    fn stats_rearm(&mut self) {
        match self.stats.next_deadline() {
            Some(due) => self.timers.set(Deadline::Stats, due),
            None => {
                self.timers.cancel(&Deadline::Stats);
            }
        }
    }

    fn stats_close(&mut self, id: u64) {
        self.stats.conns.retain(|c| c.id != id);
        if let Some(fd) = self.watched.remove(&Watch::StatsConn(id)) {
            // Read what the client sent and we did not (a request body): closing with
            // unread bytes would reset the connection and could cut the reply short.
            let mut sink = [0u8; 1024];
            for _ in 0..8 {
                match nix::unistd::read(&fd, &mut sink) {
                    Ok(n) if n > 0 => continue,
                    _ => break,
                }
            }
        }
    }

    fn stats_accept(&mut self, index: usize) {
        let Some(endpoint) = self.stats.listeners.get(index).map(|l| l.endpoint) else {
            return;
        };
        let http = endpoint == Endpoint::Prometheus || self.settings.stats.http;
        for _ in 0..ACCEPTS_PER_WAKE {
            let accepted = match self.watched.get(&Watch::StatsListener(index)) {
                Some(fd) => ruwsgi_sys::socket::accept_nonblocking(fd),
                None => return,
            };
            let fd = match accepted {
                Ok((fd, _)) => fd,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log_line(&format!("ruwsgi: stats server: accept failed: {e}"));
                    break;
                }
            };
            if self.stats.conns.len() >= MAX_CONNS {
                drop(fd);
                continue;
            }
            self.stats.next_id += 1;
            let id = self.stats.next_id;
            let state = if http {
                State::Reading(Vec::new())
            } else if self.settings.stats.token.is_some() {
                State::ReadingToken(Vec::new())
            } else {
                State::Writing {
                    out: self.stats_json(),
                    sent: 0,
                }
            };
            let writing = matches!(state, State::Writing { .. });
            self.stats.conns.push(Conn {
                id,
                endpoint,
                state,
                deadline: self.clock.now() + CONN_TIMEOUT,
            });
            self.watched.insert(Watch::StatsConn(id), fd);
            self.watched.set_writable(&Watch::StatsConn(id), writing);
            self.stats_progress(id);
        }
        self.stats_rearm();
    }

    /// Read or write what the connection is ready for; close it when done or broken.
    fn stats_progress(&mut self, id: u64) {
        let Some(at) = self.stats.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let endpoint = self.stats.conns[at].endpoint;
        let token = self.settings.stats.token.clone();
        if let State::ReadingToken(buf) = &mut self.stats.conns[at].state {
            let Some(fd) = self.watched.get(&Watch::StatsConn(id)) else {
                return;
            };
            let mut chunk = [0u8; 1100];
            let verdict = loop {
                match nix::unistd::read(fd, &mut chunk) {
                    Ok(0) => break Some(false),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(ok) = token_line(buf, token.as_deref().unwrap_or("")) {
                            break Some(ok);
                        }
                    }
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) => break None,
                    Err(_) => break Some(false),
                }
            };
            match verdict {
                None => return,
                Some(false) => {
                    log_line("ruwsgi: stats server: a client without the stats-token: closed");
                    self.stats_close(id);
                    return;
                }
                Some(true) => {
                    let out = self.stats_json();
                    self.stats.conns[at].state = State::Writing { out, sent: 0 };
                    self.watched.set_writable(&Watch::StatsConn(id), true);
                }
            }
        }
        if let State::Reading(buf) = &mut self.stats.conns[at].state {
            let Some(fd) = self.watched.get(&Watch::StatsConn(id)) else {
                return;
            };
            let mut chunk = [0u8; 2048];
            let reply = loop {
                match nix::unistd::read(fd, &mut chunk) {
                    Ok(0) => break Err(true),
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(reply) = route(endpoint, buf, token.as_deref()) {
                            break Ok(reply);
                        }
                        if buf.len() > MAX_REQUEST {
                            break Ok(Reply::BadRequest);
                        }
                    }
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) => break Err(false),
                    Err(_) => break Err(true),
                }
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(false) => return,
                Err(true) => {
                    self.stats_close(id);
                    return;
                }
            };
            let out = match reply {
                Reply::Json => http_response("200 OK", "application/json", &self.stats_json()),
                Reply::Metrics => http_response(
                    "200 OK",
                    "text/plain; version=0.0.4; charset=utf-8",
                    self.stats_metrics().as_bytes(),
                ),
                Reply::NotFound => http_response("404 Not Found", "text/plain", b"not found\n"),
                Reply::BadRequest => {
                    http_response("400 Bad Request", "text/plain", b"bad request\n")
                }
                Reply::Unauthorized => {
                    log_line("ruwsgi: stats server: a request without the stats-token: 401");
                    http_response("401 Unauthorized", "text/plain", b"token required\n")
                }
            };
            self.stats.conns[at].state = State::Writing { out, sent: 0 };
            self.watched.set_writable(&Watch::StatsConn(id), true);
        }
        let done = {
            let Some(fd) = self.watched.get(&Watch::StatsConn(id)) else {
                return;
            };
            let State::Writing { out, sent } = &mut self.stats.conns[at].state else {
                return;
            };
            loop {
                if *sent >= out.len() {
                    break true;
                }
                match nix::unistd::write(fd, &out[*sent..]) {
                    Ok(n) => *sent += n,
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) => break false,
                    Err(_) => break true,
                }
            }
        };
        if done {
            self.stats_close(id);
        }
    }

    /// Everything the stats show, read now.
    fn stats_view(&self) -> View {
        let sockets = self
            .sockets
            .iter()
            .map(|b| {
                let (queue, max_queue) = if b.is_unix {
                    (0, self.settings.sockets.listen)
                } else {
                    ruwsgi_sys::socket::listen_queue(std::os::fd::AsFd::as_fd(&b.fd))
                        .unwrap_or((0, self.settings.sockets.listen))
                };
                SocketView {
                    name: b.name.clone(),
                    proto: match b.spec.protocol {
                        Protocol::Uwsgi => "uwsgi",
                        Protocol::Http => "http",
                    },
                    queue,
                    max_queue,
                }
            })
            .collect();
        let host = self.host.as_ref();
        let locks = host
            .and_then(|h| h.user_locks())
            .map(|locks| {
                (0..=locks.max())
                    .map(|n| {
                        let held = locks.is_locked(n as i64).unwrap_or(false);
                        (format!("user {n}"), u64::from(held))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let caches = host
            .and_then(|h| h.caches())
            .map(|caches| {
                caches
                    .list()
                    .iter()
                    .map(|c| {
                        let geo = c.table.geometry();
                        let stats = c.table.stats();
                        CacheView {
                            name: c.name.clone(),
                            hash: if c.table.policy().murmur2 {
                                "murmur2"
                            } else {
                                "djb33x"
                            },
                            hashsize: geo.hashsize as u64,
                            keysize: geo.keysize as u64,
                            max_items: geo.items as u64,
                            blocks: geo.blocks as u64,
                            blocksize: geo.blocksize as u64,
                            items: stats.items,
                            hits: stats.hits,
                            misses: stats.misses,
                            full: stats.full,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        let workers = self
            .scoreboard
            .snapshot()
            .into_iter()
            .map(|mut snap| {
                let slot = self.scoreboard.worker(snap.id);
                if snap.pid > 0 {
                    let pid = ruwsgi_sys::Pid::from_raw(snap.pid);
                    if let Ok((rss, vsz)) = ruwsgi_sys::process::memory(Some(pid)) {
                        snap.rss = rss;
                        snap.vsz = vsz;
                    }
                }
                let cores = self.scoreboard.core_snapshots(snap.id);
                let vars = if self.settings.stats.verbose {
                    self.scoreboard
                        .cores_of(snap.id)
                        .iter()
                        .zip(&cores)
                        .map(|(row, c)| request_vars(row, c))
                        .collect()
                } else {
                    Vec::new()
                };
                WorkerView {
                    cores,
                    vars,
                    latency: slot.latency_buckets(),
                    snap,
                }
            })
            .collect();
        View {
            pid: self.master_pid.as_raw(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            chdir: self
                .settings
                .processes
                .chdir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            sockets,
            locks,
            caches,
            workers,
        }
    }

    fn stats_json(&self) -> Vec<u8> {
        view::document(&self.stats_view(), &self.settings.stats)
            .render(self.settings.stats.minified)
            .into_bytes()
    }

    fn stats_metrics(&self) -> String {
        view::metrics(&self.stats_view())
    }
}

/// A busy core's request as the stats' `vars` strings (empty when the core is idle).
fn request_vars(row: &ruwsgi_shm::CoreSlot, core: &ruwsgi_shm::CoreSnapshot) -> Vec<String> {
    if core.request_start_us == 0 {
        return Vec::new();
    }
    let what = row.what();
    let (method, uri) = what.split_once(' ').unwrap_or((what.as_str(), ""));
    vec![
        format!("REQUEST_METHOD={method}"),
        format!("REQUEST_URI={uri}"),
        format!("REMOTE_ADDR={}", row.peer()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use Endpoint::*;
        assert_eq!(route(Stats, b"GET / HTTP/1.1\r\nHost: x\r\n", None), None);
        assert_eq!(
            route(Stats, b"GET / HTTP/1.1\r\n\r\n", None),
            Some(Reply::Json)
        );
        assert_eq!(
            route(Stats, b"GET /x?y HTTP/1.0\n\n", None),
            Some(Reply::Json)
        );
        assert_eq!(
            route(Stats, b"GET /metrics?x=1 HTTP/1.1\r\n\r\n", None),
            Some(Reply::Metrics)
        );
        assert_eq!(
            route(Prometheus, b"GET /metrics HTTP/1.1\r\n\r\n", None),
            Some(Reply::Metrics)
        );
        assert_eq!(
            route(Prometheus, b"GET / HTTP/1.1\r\n\r\n", None),
            Some(Reply::NotFound)
        );
        assert_eq!(
            route(Prometheus, b"hello\r\n\r\n", None),
            Some(Reply::BadRequest)
        );
        assert_eq!(
            route(Stats, b"GET / SMTP\r\n\r\n", None),
            Some(Reply::BadRequest)
        );
        let t = Some("s3cret");
        assert_eq!(
            route(Stats, b"GET / HTTP/1.1\r\n\r\n", t),
            Some(Reply::Unauthorized)
        );
        assert_eq!(
            route(
                Stats,
                b"GET / HTTP/1.1\r\nauthorization:  bearer s3cret \r\n\r\n",
                t
            ),
            Some(Reply::Json)
        );
        assert_eq!(
            route(
                Prometheus,
                b"GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cre\r\n\r\n",
                t
            ),
            Some(Reply::Unauthorized)
        );
        assert_eq!(token_line(b"s3cret\r\n", "s3cret"), Some(true));
        assert_eq!(token_line(b"s3cre", "s3cret"), None);
        assert_eq!(token_line(b"nope\n", "s3cret"), Some(false));
        assert_eq!(token_line(&[b'x'; 1025], "s3cret"), Some(false));
    }

    #[test]
    fn responses_are_http_1_0_with_length() {
        let r = http_response("200 OK", "application/json", b"{}");
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with("HTTP/1.0 200 OK\r\nConnection: close\r\n"));
        assert!(text.contains("Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"));
    }
}
