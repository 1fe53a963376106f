//! Async mode (`async N`): N request cores multiplexed on the worker's one thread.
//!
//! The loop is the sync loop's (accept, read, parse, keep-alive, timeouts, signals), with
//! one difference: a complete request goes to a free core of a fixed pool together with its
//! connection ([`AsyncConn`], owned by the core until the request ends). The plugin runs the
//! core until it finishes or parks; a parked core says what it waits for (descriptors, a
//! timeout), which this loop watches: descriptors in its epoll set (one-shot, the token
//! names the core and the descriptor) and timeouts in a heap. The first to fire makes the
//! core runnable; every runnable core runs once per loop pass, so a core that only yields
//! goes after the others.
//!
//! While a core holds a connection, the loop does not watch that connection (a core that
//! parked takes it out of the epoll set; it is watched again when the request ends). When
//! every core is busy the listeners leave the epoll set too: new connections wait in the
//! kernel's queue (any other worker may take them) and keep-alive requests wait in a queue
//! of their own, and the log says the pool is full (at most once a second).
//!
//! Waits the server does for the app (body bytes not there yet, a full socket on write, a
//! reply from an RPC or remote-cache node) go through the plugin's suspend function: the core parks on the client socket instead of
//! blocking the worker. Where the plugin cannot suspend (no engine, or the loop itself is
//! writing) they block as in sync mode, bounded by `socket-timeout`.

use std::any::Any;
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use nix::sys::epoll::{EpollEvent, EpollFlags, EpollTimeout};
use ruwsgi_plugin::{
    AsyncCore, AsyncIo, AsyncStep, BodyError, Interest, Outcome, Park, Request, RequestIo,
    ResponseError, SuspendFn, Wake,
};
use ruwsgi_proto::Vars;
use ruwsgi_sys::log::log_line;
use ruwsgi_sys::rawfd::{self, EpollOp};

use super::{
    ceil_millis, drain_buffered, peer_text, wait_released, watch_listener, Conn, CoreLoop, Handler,
    Serve, Step, LISTENER_BASE,
};
use crate::body::BodyState;
use crate::io::ConnIo;
use crate::response::{Response, ResponseContext};
use crate::static_files::Served;
use crate::stream::wait_fd;
use crate::worker::{set_current_core, StopKind};

/// Tokens of descriptors a core waits on: this bit, the core in bits 32..48, the
/// descriptor in the low 32 bits.
const CORE_TOKEN: u64 = 1 << 60;
/// How long a connection waiting for a free core may wait before the header timeout
/// applies again (the pool being full is not the client's fault).
const DEFERRED_GRACE: Duration = Duration::from_secs(24 * 3600);
/// A full pool is logged at most this often.
const FULL_LOG_INTERVAL: Duration = Duration::from_secs(1);

thread_local! {
    /// The plugin's suspend function for the cores of this thread's loop.
    static SUSPEND: Cell<Option<SuspendFn>> = const { Cell::new(None) };
}

/// How an async request waits for its socket: park the core when the plugin can suspend
/// from here, else block (bounded by the timeout) as a sync core does.
fn async_wait(fd: BorrowedFd<'_>, writable: bool, timeout: Duration) -> std::io::Result<bool> {
    if let Some(suspend) = SUSPEND.with(Cell::get) {
        if let Some(r) = suspend(fd, writable, timeout) {
            return r;
        }
    }
    wait_fd(fd, writable, timeout)
}

/// A connection with its request in flight, owned by an async core.
pub(crate) struct AsyncConn {
    conn: Conn,
    body: BodyState,
    resp: Response,
    ctx: ResponseContext,
    read_timeout: Duration,
    limit_post: u64,
    expect_continue: bool,
    disconnected: bool,
}

impl AsyncConn {
    /// The sync implementation over this connection's parts; the flags it changes are
    /// copied back.
    fn with<R>(&mut self, f: impl FnOnce(&mut ConnIo<'_>) -> R) -> R {
        let mut io = ConnIo {
            stream: &mut self.conn.stream,
            rbuf: &mut self.conn.rbuf,
            body: &mut self.body,
            resp: &mut self.resp,
            ctx: self.ctx,
            read_timeout: self.read_timeout,
            limit_post: self.limit_post,
            expect_continue: self.expect_continue,
            disconnected: self.disconnected,
        };
        let r = f(&mut io);
        self.expect_continue = io.expect_continue;
        self.disconnected = io.disconnected;
        r
    }
}

impl RequestIo for AsyncConn {
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, BodyError> {
        self.with(|io| io.read_body(buf))
    }

    fn body_remaining(&self) -> Option<u64> {
        self.body.remaining()
    }

    fn take_buffered_body(&mut self, len: usize) -> Option<&[u8]> {
        if self.disconnected || self.expect_continue {
            return None;
        }
        self.body.take_buffered(len, &mut self.conn.rbuf)
    }

    fn start(&mut self, status: &[u8]) -> Result<(), ResponseError> {
        self.with(|io| io.start(status))
    }

    fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), ResponseError> {
        self.with(|io| io.header(name, value))
    }

    fn write(&mut self, data: &[u8]) -> Result<(), ResponseError> {
        self.with(|io| io.write(data))
    }

    fn send_file(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: Option<u64>,
    ) -> Result<u64, ResponseError> {
        self.with(|io| io.send_file(fd, offset, len))
    }

    fn flush(&mut self) -> Result<(), ResponseError> {
        self.with(|io| io.flush())
    }

    fn finish(&mut self) -> Result<(), ResponseError> {
        self.with(|io| io.finish())
    }

    fn head_sent(&self) -> bool {
        self.resp.head_sent()
    }

    fn status(&self) -> u16 {
        self.resp.status()
    }

    fn connection_fd(&self) -> BorrowedFd<'_> {
        self.conn.stream.as_fd()
    }

    fn disconnect(&mut self) {
        self.with(|io| io.disconnect());
    }
}

impl AsyncIo for AsyncConn {
    fn request_io(&mut self) -> &mut dyn RequestIo {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// One core of the pool.
struct Slot {
    /// Serving a request (its connection is `conn`).
    busy: bool,
    /// Waiting for what it parked on (not runnable).
    parked: bool,
    /// The connection's index in the loop.
    conn: usize,
    /// The client socket, to take it out of the epoll set and back.
    fd: RawFd,
    /// The loop stopped watching the client socket while the core holds it.
    unwatched: bool,
    /// The request's variables (kept for its log line).
    vars: Vars,
    /// When the request started (monotonic, and since the epoch).
    started: Instant,
    wall: Duration,
    /// Descriptors registered in the epoll set for this core's current park.
    armed: Vec<RawFd>,
    /// Bumped at every wake, so a timer of an earlier park is recognised as stale.
    generation: u32,
    /// Requests this core completed.
    served: u64,
    /// A response writer kept from the previous request (its buffers stay allocated).
    spare: Option<Response>,
}

/// The pool of async cores, and the handler the loop hands complete requests to.
pub(crate) struct AsyncCores<'p> {
    plugin: &'p mut dyn AsyncCore,
    slots: Vec<Slot>,
    free: Vec<u16>,
    park: Park,
    /// (deadline, core, generation) of parked cores with a timeout.
    timers: BinaryHeap<Reverse<(Instant, u16, u32)>>,
    /// Which core each descriptor registered for an app's wait belongs to.
    armed_by: HashMap<RawFd, u16>,
    /// Cores to run on the next pass, with what woke them.
    ready: Vec<(u16, Wake)>,
    /// Connections holding a request while no core was free, oldest first.
    deferred: VecDeque<usize>,
    /// The listeners are in the epoll set (not taken out for a full pool).
    listening: bool,
    /// When a full pool was last logged.
    full_logged: Option<Instant>,
    warn_full: bool,
}

impl AsyncCores<'_> {
    fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Say (at most once a second) that every core is busy.
    fn log_full(&mut self, worker: u32, now: Instant) {
        if !self.warn_full
            || self
                .full_logged
                .is_some_and(|t| now.saturating_duration_since(t) < FULL_LOG_INTERVAL)
        {
            return;
        }
        self.full_logged = Some(now);
        log_line(&format!(
            "worker {worker}: [DANGER] async queue is full !!! (all {} async cores are busy; \
             new requests wait for one)",
            self.slots.len()
        ));
    }
}

impl Handler for AsyncCores<'_> {
    #[inline]
    fn can_serve(&self) -> bool {
        !self.free.is_empty()
    }

    fn serve(&mut self, lp: &mut CoreLoop<'_>, idx: usize, serve: Serve) -> Step {
        lp.serve_async(self, idx, serve)
    }

    fn defer(&mut self, lp: &mut CoreLoop<'_>, idx: usize) {
        let Some(c) = lp.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        c.deadline = lp.clock.now + DEFERRED_GRACE;
        // Not watched meanwhile: its pending bytes would wake the loop on every turn.
        let _ = rawfd::epoll_ctl(
            lp.epoll.0.as_fd(),
            EpollOp::Delete,
            c.stream.as_fd().as_raw_fd(),
            0,
            0,
        );
        self.deferred.push_back(idx);
        self.log_full(lp.shared.id, lp.clock.now);
    }
}

fn core_token(core: u16, fd: RawFd) -> u64 {
    CORE_TOKEN | (u64::from(core) << 32) | u64::from(fd as u32)
}

impl CoreLoop<'_> {
    /// Serve until the worker stops, with `cores` async cores run by `plugin`.
    pub fn run_async(&mut self, plugin: &mut dyn AsyncCore, cores: u16) {
        let suspender = plugin.suspender();
        SUSPEND.with(|s| s.set(suspender));
        // The RPC and remote-cache clients park the calling core too.
        ruwsgi_node::set_wait_hook(suspender);
        self.trim_conns = false;
        let n = usize::from(cores.max(1));
        let mut pool = AsyncCores {
            plugin,
            slots: (0..n)
                .map(|_| Slot {
                    busy: false,
                    parked: false,
                    conn: 0,
                    fd: -1,
                    unwatched: false,
                    vars: Vars::with_capacity(1024, 32),
                    started: Instant::now(),
                    wall: Duration::ZERO,
                    armed: Vec::new(),
                    generation: 0,
                    served: 0,
                    spare: None,
                })
                .collect(),
            // Popped from the end: core 0 first.
            free: (0..n as u16).rev().collect(),
            park: Park::default(),
            timers: BinaryHeap::new(),
            armed_by: HashMap::new(),
            ready: Vec::new(),
            deferred: VecDeque::new(),
            listening: true,
            full_logged: None,
            warn_full: self.shared.settings.processes.async_warn_queue_full,
        };
        self.async_loop(&mut pool);
        SUSPEND.with(|s| s.set(None));
        ruwsgi_node::set_wait_hook(None);
    }

    fn async_loop(&mut self, pool: &mut AsyncCores<'_>) {
        let mut events = vec![EpollEvent::empty(); 256];
        let mut running: Vec<(u16, Wake)> = Vec::new();
        while let Some(turn) = self.begin_turn() {
            if turn.stopped_accepting {
                // Requests waiting for a core are still served.
                pool.listening = false;
            }
            let now = self.clock.now;
            let mut wait_ms = turn.wait_ms;
            if let Some(Reverse((t, _, _))) = pool.timers.peek() {
                wait_ms = wait_ms.min(ceil_millis(t.saturating_duration_since(now)));
            }
            let timeout = if pool.ready.is_empty() {
                EpollTimeout::from(wait_ms)
            } else {
                EpollTimeout::ZERO
            };
            let n = wait_released(&self.epoll, &mut events, timeout, |w| {
                pool.plugin.blocking(w)
            });
            let now = self.clock.tick();
            for ev in &events[..n] {
                let token = ev.data();
                if token >= LISTENER_BASE {
                    // Accepted below, once the cores ran.
                } else if self.on_control(token, 0) {
                    // Handlers run in the loop, between cores: under core 0's row.
                } else if token & CORE_TOKEN != 0 {
                    let core = ((token >> 32) & 0xffff) as u16;
                    let fd = (token & 0xffff_ffff) as u32 as RawFd;
                    self.wake_core(pool, core, Wake::Fd(fd));
                } else {
                    self.on_readable(pool, token as usize);
                }
            }
            while let Some(&Reverse((t, core, generation))) = pool.timers.peek() {
                if t > now {
                    break;
                }
                pool.timers.pop();
                let slot = &pool.slots[usize::from(core)];
                if slot.parked && slot.generation == generation {
                    self.wake_core(pool, core, Wake::TimedOut);
                }
            }
            // One pass: every core that was runnable when it began runs once; a core that
            // yields again waits for the next pass.
            std::mem::swap(&mut running, &mut pool.ready);
            for (core, wake) in running.drain(..) {
                self.resume_core(pool, core, wake);
            }
            // Requests that waited for a core, then new clients.
            while pool.can_serve() {
                let Some(idx) = pool.deferred.pop_front() else {
                    break;
                };
                self.resume_deferred(pool, idx);
            }
            if self.shared.stop_kind() == StopKind::Running && pool.listening {
                for ev in &events[..n] {
                    let token = ev.data();
                    if token >= LISTENER_BASE && pool.can_serve() {
                        self.accept(pool, (token - LISTENER_BASE) as usize);
                    }
                }
            }
            self.update_listening(pool);
            if pool.listening {
                self.resume_paused(now);
            }
            self.sweep_if_due(now);
        }
        if let Some(log) = &mut self.log {
            log.flush();
        }
    }

    /// Take the listeners out of the epoll set while every core is busy (new connections
    /// wait in the kernel's queue), and put them back once one is free.
    fn update_listening(&mut self, pool: &mut AsyncCores<'_>) {
        if !self.accepting {
            return;
        }
        let full = pool.is_full();
        if full != pool.listening {
            return;
        }
        if full {
            pool.log_full(self.shared.id, self.clock.now);
        }
        for i in 0..self.shared.listeners.len() {
            if self.pauses.is_paused(i) {
                continue;
            }
            if full {
                let _ = self.epoll.delete(self.shared.listeners[i].as_fd());
            } else if let Err(e) = watch_listener(&self.epoll, self.shared, i) {
                log_line(&format!(
                    "ruwsgi: cannot resume accepting on {}: {e}",
                    self.shared.listeners[i].name
                ));
            }
        }
        pool.listening = !full;
    }

    /// A connection that waited for a free core: watch it again and serve what it holds.
    fn resume_deferred(&mut self, pool: &mut AsyncCores<'_>, idx: usize) {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        c.deadline = self.clock.now + self.shared.settings.requests.header_timeout;
        let fd = c.stream.as_fd().as_raw_fd();
        let events = (EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP).bits() as u32;
        let _ = rawfd::epoll_ctl(self.epoll.0.as_fd(), EpollOp::Add, fd, events, idx as u64);
        self.parse_buffered(pool, idx);
    }

    /// Hand the request just parsed from connection `idx` to a free core.
    fn serve_async(&mut self, pool: &mut AsyncCores<'_>, idx: usize, mut serve: Serve) -> Step {
        let shared = self.shared;
        let Some(core) = pool.free.pop() else {
            // The loop checks for a free core before parsing; never reached.
            self.reject(idx, 503, "no free async core");
            return Step::Closed;
        };
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::take) else {
            pool.free.push(core);
            return Step::Closed;
        };
        let k = usize::from(core);
        let stopping = shared.stop_kind() != StopKind::Running;
        serve.ctx.keep_alive &= !stopping;
        serve.ctx.wait = async_wait;
        let started = self.clock.tick();
        let wall = self.clock.wall_at(started);
        shared
            .scoreboard
            .worker(shared.id)
            .request_started(wall.as_micros() as u64);
        if let Some(row) = shared.scoreboard.core(shared.id, k) {
            super::record_request(shared, &self.vars, row, wall);
        }
        let slot = &mut pool.slots[k];
        // The request's variables go with the core; the loop parses into the core's old ones.
        std::mem::swap(&mut slot.vars, &mut self.vars);
        slot.busy = true;
        slot.parked = false;
        slot.conn = idx;
        slot.fd = conn.stream.as_fd().as_raw_fd();
        slot.unwatched = false;
        slot.started = started;
        slot.wall = wall;
        let mut resp = slot.spare.take().unwrap_or_default();
        resp.reset();
        let mut io = Box::new(AsyncConn {
            conn,
            body: serve.body,
            resp,
            ctx: serve.ctx,
            read_timeout: shared.settings.requests.socket_timeout,
            limit_post: shared.settings.requests.limit_post,
            expect_continue: serve.expect_continue,
            disconnected: false,
        });
        // Static files first, sent by the loop itself (the file is read while it waits).
        if let Some(statics) = &shared.statics {
            if statics.candidate(slot.vars.get(b"PATH_INFO").unwrap_or(b"")) {
                let mut served_static = Served::NotMine;
                let a = &mut *io;
                let (vars, resp, stream, ctx) =
                    (&slot.vars, &mut a.resp, &mut a.conn.stream, &mut a.ctx);
                ctx.wait = wait_fd;
                pool.plugin
                    .blocking(&mut || served_static = statics.serve(vars, resp, stream, ctx));
                a.ctx.wait = async_wait;
                if served_static != Served::NotMine {
                    let offloaded = served_static == Served::Offloaded;
                    if offloaded {
                        let _ = self.epoll.delete(a.conn.stream.as_fd());
                    }
                    let outcome = Outcome {
                        exception: false,
                        close: offloaded,
                    };
                    return self.finish_core(pool, core, outcome, Some(io));
                }
            }
        }
        let req = Request {
            vars: &pool.slots[k].vars,
            scheme: serve.scheme,
            modifier1: serve.modifier1,
            modifier2: serve.modifier2,
            core_id: core,
            request_id: pool.slots[k].served,
        };
        pool.park.clear();
        set_current_core(Some(core));
        let step = pool.plugin.start(core, &req, io, &mut pool.park);
        set_current_core(Some(0));
        self.after_step(pool, core, step)
    }

    /// Run core `core` again after `wake`.
    fn resume_core(&mut self, pool: &mut AsyncCores<'_>, core: u16, wake: Wake) {
        let k = usize::from(core);
        if !pool.slots.get(k).is_some_and(|s| s.busy && !s.parked) {
            return;
        }
        pool.park.clear();
        set_current_core(Some(core));
        let step = pool.plugin.resume(core, wake, &mut pool.park);
        set_current_core(Some(0));
        if let Step::Served = self.after_step(pool, core, step) {
            // The connection is back, at a request boundary: serve what it already holds.
            let idx = pool.slots[k].conn;
            if self
                .conns
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|c| !c.rbuf.is_empty())
            {
                if pool.can_serve() {
                    self.parse_buffered(pool, idx);
                } else {
                    pool.defer(self, idx);
                }
            }
        }
    }

    fn after_step(&mut self, pool: &mut AsyncCores<'_>, core: u16, step: AsyncStep) -> Step {
        match step {
            AsyncStep::Parked => {
                self.park_core(pool, core);
                Step::Parked
            }
            AsyncStep::Done(outcome, io) => {
                let io = io.and_then(|io| io.into_any().downcast::<AsyncConn>().ok());
                self.finish_core(pool, core, outcome, io)
            }
        }
    }

    /// Core `core` parked on `pool.park`: watch what it waits for.
    fn park_core(&mut self, pool: &mut AsyncCores<'_>, core: u16) {
        let k = usize::from(core);
        let epfd = self.epoll.0.as_fd();
        let slot = &mut pool.slots[k];
        slot.parked = true;
        if !slot.unwatched {
            // The core holds the connection now; a closed or chatty client must not wake
            // the loop meanwhile.
            let _ = rawfd::epoll_ctl(epfd, EpollOp::Delete, slot.fd, 0, 0);
            slot.unwatched = true;
        }
        let mut ready_now = None;
        for &(fd, interest) in &pool.park.fds {
            let flags = match interest {
                Interest::Read => EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP,
                Interest::Write => EpollFlags::EPOLLOUT,
            } | EpollFlags::EPOLLONESHOT;
            let token = core_token(core, fd);
            let armed = match rawfd::epoll_ctl(epfd, EpollOp::Add, fd, flags.bits() as u32, token) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EEXIST) => {
                    match pool.armed_by.get(&fd) {
                        // Waited on for both directions: one registration with both.
                        Some(&owner) if owner == core => {
                            let both = EpollFlags::EPOLLIN
                                | EpollFlags::EPOLLRDHUP
                                | EpollFlags::EPOLLOUT
                                | EpollFlags::EPOLLONESHOT;
                            let r = rawfd::epoll_ctl(
                                epfd,
                                EpollOp::Modify,
                                fd,
                                both.bits() as u32,
                                token,
                            );
                            if r.is_ok() {
                                continue;
                            }
                            r
                        }
                        // Another core's wait, or one of the loop's own descriptors: never
                        // taken over. The core runs again at once.
                        owner => {
                            log_line(&format!(
                                "worker {} core {core}: cannot wait on fd {fd}: {}",
                                self.shared.id,
                                match owner {
                                    Some(o) => format!("core {o} is waiting on it"),
                                    None => "the worker watches it".to_string(),
                                }
                            ));
                            ready_now = ready_now.or(Some(-1));
                            continue;
                        }
                    }
                }
                other => other,
            };
            match armed {
                Ok(()) => {
                    slot.armed.push(fd);
                    pool.armed_by.insert(fd, core);
                }
                // A regular file (always ready) or a bad descriptor: the core runs at once
                // and its next operation on it says which.
                Err(_) => ready_now = ready_now.or(Some(fd)),
            }
        }
        if let Some(fd) = ready_now {
            let wake = if fd < 0 { Wake::Run } else { Wake::Fd(fd) };
            self.wake_core(pool, core, wake);
            return;
        }
        if let Some(t) = pool.park.timeout {
            let slot = &pool.slots[k];
            pool.timers
                .push(Reverse((self.clock.now + t, core, slot.generation)));
            if pool.timers.len() > 64 + 4 * pool.slots.len() {
                // Timeouts of waits that ended early: drop them now rather than when due.
                let slots = &pool.slots;
                pool.timers.retain(|Reverse((_, c, g))| {
                    slots
                        .get(usize::from(*c))
                        .is_some_and(|s| s.parked && s.generation == *g)
                });
            }
        } else if pool.park.fds.is_empty() {
            // A plain yield: its turn comes on the next pass.
            self.wake_core(pool, core, Wake::Run);
        }
    }

    /// A parked core's wait is over: drop its other registrations and make it runnable.
    fn wake_core(&mut self, pool: &mut AsyncCores<'_>, core: u16, wake: Wake) {
        let Some(slot) = pool.slots.get_mut(usize::from(core)) else {
            return;
        };
        if !slot.busy || !slot.parked {
            // A second event of a wait already over (same batch).
            return;
        }
        let epfd = self.epoll.0.as_fd();
        for fd in slot.armed.drain(..) {
            let _ = rawfd::epoll_ctl(epfd, EpollOp::Delete, fd, 0, 0);
            pool.armed_by.remove(&fd);
        }
        slot.parked = false;
        slot.generation = slot.generation.wrapping_add(1);
        pool.ready.push((core, wake));
    }

    /// The request on `core` is over: complete the response if the app left it unanswered,
    /// count and log it, and give the connection back to the loop (or close it).
    fn finish_core(
        &mut self,
        pool: &mut AsyncCores<'_>,
        core: u16,
        outcome: Outcome,
        io: Option<Box<AsyncConn>>,
    ) -> Step {
        let shared = self.shared;
        let k = usize::from(core);
        let epfd = self.epoll.0.as_fd();
        let slot = &mut pool.slots[k];
        for fd in slot.armed.drain(..) {
            let _ = rawfd::epoll_ctl(epfd, EpollOp::Delete, fd, 0, 0);
            pool.armed_by.remove(&fd);
        }
        slot.busy = false;
        slot.parked = false;
        slot.generation = slot.generation.wrapping_add(1);
        slot.served += 1;
        let idx = slot.conn;
        let unwatched = slot.unwatched;
        pool.free.push(core);
        let core_row = shared.scoreboard.core(shared.id, k);
        let Some(io) = io else {
            // The plugin lost the connection (it faulted while holding it): forget it.
            log_line(&format!(
                "worker {} core {core}: the connection of a failed request was lost",
                shared.id
            ));
            if let Some(row) = core_row {
                row.finished();
            }
            self.free.push(idx);
            self.live -= 1;
            return Step::Closed;
        };
        let AsyncConn {
            mut conn,
            mut body,
            mut resp,
            mut ctx,
            disconnected,
            ..
        } = *io;
        // Anything the loop itself writes now blocks (bounded), as in sync mode.
        ctx.wait = wait_fd;
        if !disconnected && !resp.head_sent() && !resp.broken {
            if body.over_limit() {
                log_line(&format!(
                    "ruwsgi: rejected request from {}: request body larger than limit-post -> 413",
                    peer_text(&conn.peer)
                ));
                ctx.keep_alive = false;
                resp.send_error(413, &mut conn.stream, &ctx);
            } else {
                resp.send_error(500, &mut conn.stream, &ctx);
            }
        }
        let body_done = body.is_complete() || drain_buffered(&mut body, &mut conn.rbuf);
        let close =
            outcome.close || disconnected || resp.must_close || !ctx.keep_alive || !body_done;
        let ended = self.clock.tick();
        let slot = &pool.slots[k];
        let micros = ended.saturating_duration_since(slot.started).as_micros() as u64;
        super::request_done(
            shared,
            super::Done {
                memory: &mut self.memory,
                log: &mut self.log,
                core_row,
                vars: &slot.vars,
                resp: &resp,
                micros,
                exception: outcome.exception,
                core,
                started: slot.wall.as_secs(),
            },
        );
        self.served += 1;
        conn.served += 1;
        pool.slots[k].spare = Some(resp);
        conn.deadline = super::next_deadline(shared, ended, conn.rbuf.is_empty());
        let fd = conn.stream.as_fd().as_raw_fd();
        self.conns[idx] = Some(conn);
        if close {
            self.close(idx);
            return Step::Closed;
        }
        if unwatched {
            let events = (EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP).bits() as u32;
            if let Err(e) = rawfd::epoll_ctl(epfd, EpollOp::Add, fd, events, idx as u64) {
                log_line(&format!("ruwsgi: cannot watch a connection again: {e}"));
                self.close(idx);
                return Step::Closed;
            }
        }
        Step::Served
    }
}
