//! One core's event loop: accept, read, parse, dispatch, keep-alive, timeouts.
//!
//! Each core owns an epoll instance holding the shared listening sockets (registered with
//! `EPOLLEXCLUSIVE`, so one waiter wakes per connection) and its own connections
//! (level-triggered, registered once for their whole life: no `epoll_ctl` per request).
//! Idle keep-alive connections and slow clients wait here, costing no core; the plugin runs
//! only once a request head is complete. In sync mode the handler runs on this thread, so a
//! request costs one `read` and one `writev` when it fits the buffers.
//!
//! Timeouts are deadlines checked by a sweep once a second, never a timer per request. The
//! sweep also gives back what a burst of connections left behind (spare read buffers, free
//! heap pages), so nothing of that is paid per request.
//!
//! When `accept` fails for lack of resources (no free fd, no kernel memory) the listener is
//! taken out of this core's epoll for a pause that doubles from 10 ms to 1 s, so a core never
//! spins on a listener it cannot serve; the wait timeout honours the pause's end.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use ruwsgi_config::Protocol;
use ruwsgi_plugin::{Core, Outcome, Request};
use ruwsgi_proto::http::{self, BodyFraming, ChunkedDecoder, HeaderSpan, Version};
use ruwsgi_proto::uwsgi;
use ruwsgi_proto::Vars;
use ruwsgi_sys::log::log_line;

use crate::accept::{self, AcceptPauses};
use crate::body::BodyState;
use crate::buffer::{BufPool, ReadBuf};
use crate::io::ConnIo;
use crate::reqlog::{LogEntry, RequestLog};
use crate::request::http_vars;
use crate::response::{Response, ResponseContext};
use crate::static_files::Served;
use crate::stream::{Peer, PeerText, Stream};
use crate::worker::{StopKind, WorkerShared};

mod async_cores;
mod uwsgi_packets;

const LISTENER_BASE: u64 = 1 << 62;
const WAKE_TOKEN: u64 = 1 << 61;
const SIGNAL_TOKEN: u64 = (1 << 61) + 1;
const CHANNEL_TOKEN: u64 = (1 << 61) + 2;
const SHARED_SIGNAL_TOKEN: u64 = (1 << 61) + 3;
/// Largest trailer section accepted on chunked request bodies.
const MAX_TRAILERS: usize = 8 * 1024;
/// How long a fresh connection may still take to send its first request once the worker
/// started a graceful stop.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Spare read buffers kept through an idle sweep are bounded by this many bytes in total.
const SPARE_BUFFER_BYTES: usize = 1 << 20;
/// Freed heap past which a sweep asks the allocator to return free pages to the kernel.
const HEAP_TRIM_BYTES: usize = 2 << 20;

/// One client connection.
struct Conn {
    stream: Stream,
    peer: Peer,
    /// `REMOTE_ADDR`/`REMOTE_PORT`, formatted at accept rather than per request.
    peer_text: PeerText,
    listener: usize,
    rbuf: ReadBuf,
    /// Requests served on this connection.
    served: u64,
    /// When the connection is closed if nothing more happens.
    deadline: Instant,
    /// The dynamic-apps warning was logged for this connection.
    warned: bool,
}

/// What serving a request needs besides the connection.
struct Serve {
    scheme: &'static str,
    modifier1: u8,
    modifier2: u8,
    body: BodyState,
    ctx: ResponseContext,
    expect_continue: bool,
}

enum Step {
    /// More bytes are needed.
    Wait,
    /// A request was served and the connection is still open.
    Served,
    /// The connection was closed.
    Closed,
    /// The connection went to an async core with its request; it comes back when the
    /// request is over.
    Parked,
}

/// What becomes of a request whose head is complete. A sync core (`dyn Core`) serves it on
/// the spot; async mode hands it to a free core of its pool. Generic, so the sync loop
/// compiles to the same code as a direct call to the plugin.
trait Handler {
    /// Whether a request may start now (async mode: a core is free).
    fn can_serve(&self) -> bool;
    /// Serve the request just parsed from connection `idx`.
    fn serve(&mut self, lp: &mut CoreLoop<'_>, idx: usize, serve: Serve) -> Step;
    /// Connection `idx` holds a request but no core is free: keep it for later.
    fn defer(&mut self, lp: &mut CoreLoop<'_>, idx: usize);
}

impl Handler for dyn Core + '_ {
    #[inline(always)]
    fn can_serve(&self) -> bool {
        true
    }

    #[inline(always)]
    fn serve(&mut self, lp: &mut CoreLoop<'_>, idx: usize, serve: Serve) -> Step {
        lp.serve(self, idx, serve)
    }

    fn defer(&mut self, _lp: &mut CoreLoop<'_>, _idx: usize) {}
}

/// The event loop of one core.
pub struct CoreLoop<'a> {
    id: u16,
    shared: &'a WorkerShared,
    epoll: Epoll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    pool: BufPool,
    vars: Vars,
    headers: Vec<HeaderSpan>,
    scratch: Vec<u8>,
    resp: Response,
    log: Option<RequestLog>,
    /// `memory-report`: this process's `/proc/self/statm`, sampled after every request.
    memory: Option<ruwsgi_sys::process::MemorySampler>,
    http_limits: http::Limits,
    uwsgi_limits: uwsgi::Limits,
    trusted: Vec<IpAddr>,
    accepting: bool,
    /// Listeners this core stopped watching after `accept` ran out of resources.
    pauses: AcceptPauses,
    served: u64,
    next_sweep: Instant,
    clock: Clock,
    /// The sweep may drop trailing empty connection slots (not in async mode, where an
    /// empty slot may belong to a connection an async core holds).
    trim_conns: bool,
}

/// A core's view of time, so that a request costs two clock reads (start and end).
/// `now` is the latest monotonic reading (after each `epoll_wait` and at each request's
/// start and end), good enough for second-grained deadlines. Wall-clock times are derived
/// from an anchor pair refreshed by every sweep (once a second).
#[derive(Debug)]
struct Clock {
    now: Instant,
    anchor: Instant,
    anchor_wall: Duration,
}

impl Clock {
    fn new() -> Clock {
        let mut c = Clock {
            now: Instant::now(),
            anchor: Instant::now(),
            anchor_wall: Duration::ZERO,
        };
        c.reanchor();
        c
    }

    /// Read the monotonic clock.
    fn tick(&mut self) -> Instant {
        self.now = Instant::now();
        self.now
    }

    /// Re-pair the monotonic and the wall clock (follows wall-clock adjustments).
    fn reanchor(&mut self) {
        self.anchor = self.tick();
        self.anchor_wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
    }

    /// Time since the unix epoch at monotonic instant `t`.
    fn wall_at(&self, t: Instant) -> Duration {
        self.anchor_wall + t.saturating_duration_since(self.anchor)
    }
}

/// Wait on `epoll` for `events`, at most `timeout`, inside `blocking` (the plugin's way to
/// release what it holds meanwhile, such as the interpreter); the number of events, 0 on
/// an error other than an interruption (retried).
pub(crate) fn wait_released(
    epoll: &Epoll,
    events: &mut [EpollEvent],
    timeout: EpollTimeout,
    blocking: impl FnOnce(&mut (dyn FnMut() + Send)),
) -> usize {
    let mut n = 0usize;
    blocking(&mut || {
        n = loop {
            match epoll.wait(events, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break 0,
                Ok(n) => break n,
            }
        };
    });
    n
}

/// What [`CoreLoop::begin_turn`] found.
pub(crate) struct Turn {
    /// A graceful stop closed the listeners in this turn.
    pub(crate) stopped_accepting: bool,
    /// The longest the turn's wait may last, in milliseconds.
    pub(crate) wait_ms: u16,
}

impl<'a> CoreLoop<'a> {
    /// Set up core `id`: its epoll with the listeners, the wake-up fd, the channel and the
    /// shared uWSGI signal socket (and, on core 0, the signal pipe).
    pub fn new(id: u16, shared: &'a WorkerShared) -> std::io::Result<CoreLoop<'a>> {
        let s = &shared.settings;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        for i in 0..shared.listeners.len() {
            watch_listener(&epoll, shared, i)?;
        }
        epoll.add(
            shared.wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, WAKE_TOKEN),
        )?;

        if id == 0 {
            if let Some(sig) = &shared.signals {
                epoll.add(sig.fd(), EpollEvent::new(EpollFlags::EPOLLIN, SIGNAL_TOKEN))?;
            }
        }
        // uWSGI signals: every core of every worker waits on the shared "any worker" socket,
        // and every core of this worker on its channel; one waiter is woken per event, so
        // whichever core is idle runs the handler.
        let exclusive = EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE;
        if let Some(channel) = shared.channel {
            epoll.add(channel, EpollEvent::new(exclusive, CHANNEL_TOKEN))?;
        }
        if let Some(signals) = &shared.uwsgi_signals {
            epoll.add(
                signals.sockets().any_worker.recv_fd(),
                EpollEvent::new(exclusive, SHARED_SIGNAL_TOKEN),
            )?;
        }
        // Room for the longest request line (8 KiB), a head of buffer-size bytes, and a
        // post-buffered body.
        let cap = 8192 + s.requests.buffer_size + s.requests.post_buffering.min(1 << 20) + 1024;
        let log = (!s.logging.disable_logging).then(|| {
            RequestLog::new(
                s.logging.log_format.as_deref(),
                std::process::id(),
                shared.id,
                s.logging.log_x_forwarded_for,
            )
        });
        // One sampler serves memory-report and reload-on-rss/-as: one read per request.
        let memory = if s.logging.memory_report || s.processes.recycle.samples_memory() {
            match ruwsgi_sys::process::MemorySampler::open() {
                Ok(m) => Some(m),
                Err(e) => {
                    log_line(&format!(
                        "ruwsgi: memory-report: cannot open /proc/self/statm: {e}"
                    ));
                    None
                }
            }
        } else {
            None
        };
        Ok(CoreLoop {
            id,
            shared,
            memory,
            epoll,
            conns: Vec::new(),
            free: Vec::new(),
            live: 0,
            pool: BufPool::new(cap),
            vars: Vars::with_capacity(4096, 64),
            headers: Vec::with_capacity(32),
            scratch: Vec::with_capacity(1024),
            resp: Response::default(),
            log,
            http_limits: http::Limits {
                max_request_line: 8192,
                max_head: s.requests.buffer_size,
                max_headers: 100,
                strict_host: s.requests.http_strict_host,
            },
            uwsgi_limits: uwsgi::Limits {
                buffer_size: s.requests.buffer_size,
                max_vars: s.requests.max_vars * 2,
            },
            trusted: s
                .sockets
                .trusted_peers
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
            accepting: true,
            pauses: AcceptPauses::new(shared.listeners.len()),
            served: 0,
            next_sweep: Instant::now() + Duration::from_secs(1),
            clock: Clock::new(),
            trim_conns: true,
        })
    }

    /// Serve until the worker stops.
    pub fn run(&mut self, core: &mut dyn Core) {
        let mut events = vec![EpollEvent::empty(); 64];
        while let Some(turn) = self.begin_turn() {
            let wait_ms = turn.wait_ms;
            let n = wait_released(&self.epoll, &mut events, EpollTimeout::from(wait_ms), |w| {
                core.blocking(w)
            });
            let now = self.clock.tick();
            // Connections first, new clients last: a core takes a new connection only once
            // the requests it already holds are served.
            for ev in &events[..n] {
                let token = ev.data();
                if token >= LISTENER_BASE {
                    // Accepted in the second pass below.
                } else if !self.on_control(token, self.id) {
                    self.on_readable(core, token as usize);
                }
            }
            // A stop that arrived during this turn: leave queued clients to the workers that
            // stay (or the next generation). Each listener appears at most once per wait, so
            // a second pass over the events needs no set of ready listeners.
            if self.shared.stop_kind() == StopKind::Running {
                for ev in &events[..n] {
                    let token = ev.data();
                    if token >= LISTENER_BASE {
                        self.accept(core, (token - LISTENER_BASE) as usize);
                    }
                }
            }
            self.resume_paused(now);
            self.sweep_if_due(now);
        }
        if let Some(log) = &mut self.log {
            log.flush();
        }
    }

    /// Handle a control event (wake-up, process signals, uWSGI signals, the master's
    /// channel) on core `core`; false when `token` is none of them.
    #[inline]
    /// The start of a loop turn, shared by the sync and async loops: `None` when the loop
    /// must end (an immediate stop, or a graceful one with nothing left in flight). A
    /// graceful stop closes the listeners first (`stopped_accepting`). The log buffer is
    /// flushed when due, and `wait_ms` bounds the wait by its next flush and the next
    /// resumption of a paused listener.
    pub(crate) fn begin_turn(&mut self) -> Option<Turn> {
        let stop = self.shared.stop_kind();
        if stop == StopKind::Immediate {
            return None;
        }
        let stopped_accepting = stop != StopKind::Running && self.accepting;
        if stopped_accepting {
            self.stop_accepting();
        }
        if !self.accepting && self.live == 0 {
            return None;
        }
        // The last reading is at most one loop turn old: enough for a 20 ms flush.
        let now = self.clock.now;
        let mut wait_ms = match self.log.as_mut().and_then(|l| l.flush_if_due(now)) {
            Some(left) => left.as_millis().clamp(1, 1000) as u16,
            None => 1000,
        };
        if let Some(t) = self.pauses.resume_at() {
            wait_ms = wait_ms.min(ceil_millis(t.saturating_duration_since(now)));
        }
        Some(Turn {
            stopped_accepting,
            wait_ms,
        })
    }

    pub(crate) fn on_control(&mut self, token: u64, core: u16) -> bool {
        if token == WAKE_TOKEN {
            // The stop state is checked at the top of the loop.
        } else if token == SIGNAL_TOKEN {
            self.shared.handle_signals();
        } else if token == SHARED_SIGNAL_TOKEN {
            self.shared.handle_shared_signals(core);
        } else if token == CHANNEL_TOKEN {
            if !self.shared.handle_channel(core) {
                if let Some(channel) = self.shared.channel {
                    let _ = self.epoll.delete(channel);
                }
            }
        } else {
            return false;
        }
        true
    }

    /// Put back in the epoll set the listeners whose accept pause ended.
    pub(crate) fn resume_paused(&mut self, now: Instant) {
        if self.pauses.resume_at().is_some_and(|t| now >= t) {
            let (epoll, shared) = (&self.epoll, self.shared);
            self.pauses
                .resume_due(now, |i| match watch_listener(epoll, shared, i) {
                    Ok(()) => true,
                    Err(e) => {
                        log_line(&format!(
                            "ruwsgi: cannot resume accepting on {}: {e}",
                            shared.listeners[i].name
                        ));
                        false
                    }
                });
        }
    }

    /// Once a second: re-anchor the clock and sweep idle connections.
    pub(crate) fn sweep_if_due(&mut self, now: Instant) {
        if now >= self.next_sweep {
            self.next_sweep = now + Duration::from_secs(1);
            self.clock.reanchor();
            self.sweep(now);
        }
    }

    fn stop_accepting(&mut self) {
        self.accepting = false;
        // Paused listeners are already out of the set (their delete fails harmlessly).
        for l in &self.shared.listeners {
            let _ = self.epoll.delete(l.as_fd());
        }
        self.pauses.clear();
        let grace = Instant::now() + DRAIN_GRACE;
        for i in 0..self.conns.len() {
            let Some(c) = &mut self.conns[i] else {
                continue;
            };
            if c.rbuf.is_empty() {
                if c.served > 0 {
                    // Idle keep-alive connection: the client retries elsewhere.
                    self.close(i);
                } else {
                    c.deadline = c.deadline.min(grace);
                }
            }
        }
    }

    /// Accept one connection and serve it at once if its request already arrived.
    ///
    /// One per wake-up: a connection accepted here but left waiting behind a long request
    /// would be lost with this worker if it died, while in the shared backlog any idle
    /// worker can take it (the listener stays ready, so the next wait returns at once).
    fn accept<H: Handler + ?Sized>(&mut self, core: &mut H, index: usize) {
        if !self.accepting {
            return;
        }
        let Some(listener) = self.shared.listeners.get(index) else {
            return;
        };
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                return
            }
            Err(e) => {
                self.accept_failed(index, &e);
                return;
            }
        };
        self.pauses.succeeded(index);
        let conn = Conn {
            stream,
            peer_text: peer.text(),
            peer,
            listener: index,
            rbuf: self.pool.get(),
            served: 0,
            deadline: self.clock.now + self.shared.settings.requests.header_timeout,
            warned: false,
        };
        let slot = match self.free.pop() {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        self.conns[slot] = Some(conn);
        self.live += 1;
        // Serve at once when the request is already here; a connection that is answered and
        // closed now (nginx's one request per connection) never costs an epoll_ctl.
        self.on_readable(core, slot);
        let Some(conn) = self.conns[slot].as_ref() else {
            return;
        };
        let ev = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, slot as u64);
        if let Err(e) = self.epoll.add(conn.stream.as_fd(), ev) {
            log_line(&format!("ruwsgi: cannot watch a new connection: {e}"));
            self.close(slot);
        }
    }

    /// `accept` failed. For lack of resources (no free fd, no kernel memory) the listener
    /// would stay ready and the loop would spin on it: take it out of this core's epoll for
    /// a growing pause, logging once per pause. Other errors concern one connection only.
    fn accept_failed(&mut self, index: usize, e: &std::io::Error) {
        let listener = &self.shared.listeners[index];
        let Some(errno) = accept::exhaustion(e) else {
            log_line(&format!(
                "ruwsgi: accept() on {} failed: {e}",
                listener.name
            ));
            return;
        };
        let paused = self.pauses.fail(index, self.clock.now);
        log_line(&format!(
            "ruwsgi: accept() on {} failed: {} ({} times); pausing accepts for {} ms",
            listener.name,
            errno.desc(),
            paused.failures,
            paused.length.as_millis()
        ));
        if let Err(e) = self.epoll.delete(listener.as_fd()) {
            log_line(&format!(
                "ruwsgi: cannot pause accepting on {}: {e}",
                listener.name
            ));
            self.pauses.cancel(index);
        }
    }

    fn close(&mut self, idx: usize) {
        if let Some(c) = self.conns.get_mut(idx).and_then(Option::take) {
            // Closing the only fd of the socket removes it from the epoll set.
            self.pool.put(c.rbuf);
            self.free.push(idx);
            self.live -= 1;
        }
    }

    fn on_readable<H: Handler + ?Sized>(&mut self, core: &mut H, idx: usize) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let was_empty = c.rbuf.is_empty();
        let eof = match c.rbuf.fill_from(&mut c.stream) {
            Ok(0) => !c.rbuf.is_full(),
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(_) => {
                self.close(idx);
                return;
            }
        };
        if was_empty && !c.rbuf.is_empty() {
            c.deadline = self.clock.now + self.shared.settings.requests.header_timeout;
        }
        if self.parse_buffered(core, idx) && eof {
            self.close(idx);
        }
    }

    /// Serve the requests already in connection `idx`'s buffer. False when the connection
    /// is no longer this loop's (closed, handed to an async core, or waiting for one).
    fn parse_buffered<H: Handler + ?Sized>(&mut self, core: &mut H, idx: usize) -> bool {
        loop {
            let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
                return false;
            };
            if c.rbuf.is_empty() {
                return true;
            }
            if !core.can_serve() {
                core.defer(self, idx);
                return false;
            }
            let step = match self.shared.listeners[c.listener].protocol {
                Protocol::Http => self.try_http(core, idx),
                Protocol::Uwsgi => self.try_uwsgi(core, idx),
            };
            match step {
                Step::Wait => return true,
                Step::Closed | Step::Parked => return false,
                Step::Served => {}
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            let Some(c) = &mut self.conns[i] else {
                continue;
            };
            if now < c.deadline {
                continue;
            }
            let http = self.shared.listeners[c.listener].protocol == Protocol::Http;
            if http && !c.rbuf.is_empty() {
                self.reject(i, 408, "request head not received in time");
            } else {
                self.close(i);
            }
        }
        self.give_back_memory();
    }

    /// Free what a past burst of connections left: spare read buffers unused for a whole
    /// sweep interval (beyond a small reserve), trailing empty connection slots, and then,
    /// if that freed a lot, the allocator's free pages. Nothing here runs per request.
    fn give_back_memory(&mut self) {
        let keep = (SPARE_BUFFER_BYTES / self.pool.buffer_size().max(1)).clamp(4, 64);
        self.pool.trim(keep);
        let before = self.conns.len();
        while self.trim_conns && matches!(self.conns.last(), Some(None)) {
            self.conns.pop();
        }
        if self.conns.len() < before {
            let len = self.conns.len();
            self.free.retain(|&i| i < len);
            if self.conns.capacity() > 2 * len + 64 {
                self.conns.shrink_to(len + len / 2 + 16);
                self.free.shrink_to(self.free.len() + 16);
            }
        }
        if self.pool.released() >= HEAP_TRIM_BYTES {
            self.pool.reset_released();
            ruwsgi_sys::memory::release_free_heap();
        }
    }

    /// Answer with a server-generated error and close.
    fn reject(&mut self, idx: usize, code: u16, why: &str) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let http = self.shared.listeners[c.listener].protocol == Protocol::Http;
        log_line(&format!(
            "ruwsgi: rejected request from {}: {why} -> {code}",
            peer_text(&c.peer)
        ));
        let ctx = ResponseContext {
            http11: true,
            head_only: false,
            keep_alive: false,
            chunked_ok: false,
            connection_header: http,
            timeout: self.shared.settings.requests.socket_timeout,
            wait: crate::stream::wait_fd,
        };
        self.resp.reset();
        self.resp.send_error(code, &mut c.stream, &ctx);
        self.close(idx);
    }

    fn try_http<H: Handler + ?Sized>(&mut self, core: &mut H, idx: usize) -> Step {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let head = match http::parse_head(c.rbuf.data(), &self.http_limits, &mut self.headers) {
            Ok(Some(h)) => h,
            Ok(None) => {
                if c.rbuf.is_full() {
                    self.reject(idx, 431, "request head larger than the buffer");
                    return Step::Closed;
                }
                return Step::Wait;
            }
            Err(e) => {
                self.reject(idx, e.status(), e.reason());
                return Step::Closed;
            }
        };
        let s = &self.shared.settings;
        let body = match head.framing {
            BodyFraming::None | BodyFraming::Length(0) => BodyState::Empty,
            BodyFraming::Length(n) => {
                if s.requests.limit_post > 0 && n > s.requests.limit_post {
                    self.reject(idx, 413, "request body larger than limit-post");
                    return Step::Closed;
                }
                let buffered = c.rbuf.len() - head.consumed;
                if s.requests.post_buffering > 0
                    && n <= s.requests.post_buffering as u64
                    && (buffered as u64) < n
                    && head.consumed + n as usize <= c.rbuf.capacity()
                {
                    // Post-buffering: the body arrives while the loop waits, not the app.
                    return Step::Wait;
                }
                BodyState::Length { remaining: n }
            }
            BodyFraming::Chunked => BodyState::Chunked {
                decoder: Box::new(ChunkedDecoder::new(MAX_TRAILERS)),
                pending: (0, 0),
            },
        };
        let http11 = head.version == Version::Http11;
        let listen = &self.shared.listeners[c.listener];
        http_vars(
            c.rbuf.data(),
            &head,
            &self.headers,
            listen,
            &c.peer_text,
            &mut self.vars,
            &mut self.scratch,
        );
        c.rbuf.consume(head.consumed);
        let head_only = self.vars.get(b"REQUEST_METHOD") == Some(b"HEAD");
        let serve = Serve {
            scheme: "http",
            modifier1: 0,
            modifier2: 0,
            body,
            ctx: ResponseContext {
                http11,
                head_only,
                keep_alive: head.keep_alive,
                chunked_ok: http11,
                connection_header: true,
                timeout: s.requests.socket_timeout,
                wait: crate::stream::wait_fd,
            },
            expect_continue: head.expect_continue && http11,
        };
        core.serve(self, idx, serve)
    }

    fn serve(&mut self, core: &mut dyn Core, idx: usize, mut serve: Serve) -> Step {
        let shared = self.shared;
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let stopping = shared.stop_kind() != StopKind::Running;
        serve.ctx.keep_alive &= !stopping;
        let started = self.clock.tick();
        let wall = self.clock.wall_at(started);
        let slot = shared.scoreboard.worker(shared.id);
        slot.request_started(wall.as_micros() as u64);
        // This core's row: its counters, and with harakiri its deadline.
        let core_row = shared.scoreboard.core(shared.id, usize::from(self.id));
        if let Some(row) = core_row {
            record_request(shared, &self.vars, row, wall);
        }
        self.resp.reset();
        // Static files first: one prefix check per map for other requests.
        let mut served_static = Served::NotMine;
        if let Some(statics) = &shared.statics {
            if statics.candidate(self.vars.get(b"PATH_INFO").unwrap_or(b"")) {
                let (vars, resp, stream, ctx) =
                    (&self.vars, &mut self.resp, &mut c.stream, &mut serve.ctx);
                // Files are read and sent with the language runtime released.
                core.blocking(&mut || served_static = statics.serve(vars, resp, stream, ctx));
            }
        }
        let (outcome, disconnected) = if served_static == Served::NotMine {
            let req = Request {
                vars: &self.vars,
                scheme: serve.scheme,
                modifier1: serve.modifier1,
                modifier2: serve.modifier2,
                core_id: self.id,
                request_id: self.served,
            };
            let mut io = ConnIo {
                stream: &mut c.stream,
                rbuf: &mut c.rbuf,
                body: &mut serve.body,
                resp: &mut self.resp,
                ctx: serve.ctx,
                read_timeout: shared.settings.requests.socket_timeout,
                limit_post: shared.settings.requests.limit_post,
                expect_continue: serve.expect_continue,
                disconnected: false,
            };
            let outcome = core.handle(&req, &mut io);
            (outcome, io.disconnected)
        } else {
            if served_static == Served::Offloaded {
                // The offload thread owns a duplicate of the socket now: stop watching it
                // here (a closed duplicate would not leave the epoll set by itself).
                let _ = self.epoll.delete(c.stream.as_fd());
            }
            let close = served_static == Served::Offloaded;
            (
                Outcome {
                    exception: false,
                    close,
                },
                false,
            )
        };
        if !disconnected && !self.resp.head_sent() && !self.resp.broken {
            if serve.body.over_limit() {
                // The body outgrew limit-post before the app's head went out: whatever the
                // app answered was held back; the client gets the 413 and a close.
                log_line(&format!(
                    "ruwsgi: rejected request from {}: request body larger than limit-post -> 413",
                    peer_text(&c.peer)
                ));
                serve.ctx.keep_alive = false;
                self.resp.send_error(413, &mut c.stream, &serve.ctx);
            } else {
                // The plugin left without answering: never leave the client hanging.
                self.resp.send_error(500, &mut c.stream, &serve.ctx);
            }
        }
        let body_done = serve.body.is_complete() || drain_buffered(&mut serve.body, &mut c.rbuf);
        let close = outcome.close
            || disconnected
            || self.resp.must_close
            || !serve.ctx.keep_alive
            || !body_done;
        let ended = self.clock.tick();
        let micros = ended.saturating_duration_since(started).as_micros() as u64;
        request_done(
            shared,
            Done {
                memory: &mut self.memory,
                log: &mut self.log,
                core_row,
                vars: &self.vars,
                resp: &self.resp,
                micros,
                exception: outcome.exception,
                core: self.id,
                started: wall.as_secs(),
            },
        );
        self.served += 1;
        c.served += 1;
        if close {
            self.close(idx);
            return Step::Closed;
        }
        c.deadline = next_deadline(shared, ended, c.rbuf.is_empty());
        Step::Served
    }
}

/// What [`request_done`] accounts for.
pub(crate) struct Done<'a> {
    pub memory: &'a mut Option<ruwsgi_sys::process::MemorySampler>,
    pub log: &'a mut Option<RequestLog>,
    pub core_row: Option<&'a ruwsgi_shm::CoreSlot>,
    pub vars: &'a Vars,
    pub resp: &'a Response,
    pub micros: u64,
    pub exception: bool,
    pub core: u16,
    /// When the request started (seconds since the epoch).
    pub started: u64,
}

/// A request ended (sync or async core): the worker's and the core's counters, the memory
/// sample (when a policy or the log needs it), the request log line, and the recycling
/// checks.
#[inline]
pub(crate) fn request_done(shared: &WorkerShared, d: Done<'_>) {
    let slot = shared.scoreboard.worker(shared.id);
    slot.request_finished(d.micros, d.resp.tx, d.exception);
    if let Some(row) = d.core_row {
        row.finished();
    }
    let memory = d.memory.as_mut().and_then(|m| m.sample().ok());
    if let Some((rss, vsz)) = memory {
        slot.set_memory(rss, vsz);
    }
    let worker_requests = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    if let Some(log) = d.log {
        log.log(&LogEntry {
            vars: d.vars,
            status: d.resp.status(),
            body_bytes: d.resp.body_bytes,
            tx: d.resp.tx,
            header_count: d.resp.header_count,
            head_bytes: d.resp.head_bytes,
            micros: d.micros,
            worker_requests,
            total_requests: shared.scoreboard.total_requests(),
            core: d.core,
            started: d.started,
            memory: memory.filter(|_| shared.settings.logging.memory_report),
        });
    }
    shared.check_recycle(worker_requests, d.exception, memory);
}

/// When a kept-alive connection is dropped after a request that ended at `ended`: the
/// keep-alive timeout when nothing more is buffered, the header timeout otherwise.
pub(crate) fn next_deadline(shared: &WorkerShared, ended: Instant, buffer_empty: bool) -> Instant {
    ended
        + if buffer_empty {
            shared.settings.requests.keepalive_timeout
        } else {
            shared.settings.requests.header_timeout
        }
}

/// Finish an unread `Content-Length` body from what is already buffered. True when the
/// connection is back at a request boundary.
fn drain_buffered(body: &mut BodyState, rbuf: &mut ReadBuf) -> bool {
    if let BodyState::Length { remaining } = body {
        if (*remaining as usize) <= rbuf.len() {
            rbuf.consume(*remaining as usize);
            *body = BodyState::Empty;
            return true;
        }
    }
    false
}

/// A request starts on the core whose row is `row`, at `wall`: its start, and with
/// `harakiri` its deadline and description (method, URI), with `stats-verbose` the client's
/// address too. Nothing but the start without either option.
#[inline]
pub(crate) fn record_request(
    shared: &WorkerShared,
    vars: &Vars,
    row: &ruwsgi_shm::CoreSlot,
    wall: Duration,
) {
    row.started(wall.as_micros() as u64);
    let harakiri = shared.settings.processes.harakiri.timeout;
    let verbose = shared.settings.stats.verbose;
    if harakiri.is_zero() && !verbose {
        return;
    }
    let now_ms = wall.as_millis() as u64;
    let method = vars.get(b"REQUEST_METHOD").unwrap_or(b"");
    let uri = vars.get(b"REQUEST_URI").unwrap_or(b"");
    let deadline = if harakiri.is_zero() {
        0
    } else {
        now_ms + harakiri.as_millis() as u64
    };
    row.request_began(now_ms, deadline, &[method, b" ", uri]);
    if verbose {
        row.set_peer(vars.get(b"REMOTE_ADDR").unwrap_or(b""));
    }
}

/// Register listener `index` in `epoll` (one waiter woken per connection).
fn watch_listener(epoll: &Epoll, shared: &WorkerShared, index: usize) -> nix::Result<()> {
    epoll.add(
        shared.listeners[index].as_fd(),
        EpollEvent::new(
            EpollFlags::EPOLLIN | EpollFlags::EPOLLEXCLUSIVE,
            LISTENER_BASE + index as u64,
        ),
    )
}

/// `d` in whole milliseconds, rounded up (so a wait never ends just before a deadline),
/// within the loop's 1..=1000 ms wait range.
fn ceil_millis(d: Duration) -> u16 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    ms.clamp(1, 1000) as u16
}

fn peer_text(p: &Peer) -> String {
    p.to_string()
}
