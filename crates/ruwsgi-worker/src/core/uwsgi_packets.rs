//! The uwsgi-protocol side of a core: routing packets by `modifier1`, and turning WSGI
//! request packets into a request for [`CoreLoop::serve`].
//!
//! The routing table itself is [`crate::dispatch`]; this file applies it to a connection:
//! a packet is routed as soon as its 4-byte header is readable, so nothing is buffered for
//! a packet that will be refused, and subsystem packets reach
//! [`CoreLoop::serve_subsystem`] only from trusted peers.

use std::io::IoSlice;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

use ruwsgi_proto::uwsgi::{self, PacketHeader, Parsed};
use ruwsgi_proto::Vars;
use ruwsgi_sys::log::log_line;

use super::{peer_text, Clock, CoreLoop, Handler, Serve, Step};
use crate::body::BodyState;
use crate::dispatch::{self, Route, Subsystem};
use crate::request::sanitize_uwsgi_vars;
use crate::response::ResponseContext;
use crate::stream::{write_all_vectored, Peer};
use crate::worker::StopKind;
use crate::worker::WorkerShared;

impl CoreLoop<'_> {
    /// A uwsgi packet: route it by its modifier1 as soon as the header is readable.
    pub(super) fn try_uwsgi<H: Handler + ?Sized>(&mut self, core: &mut H, idx: usize) -> Step {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let Some(header) = uwsgi::parse_header(c.rbuf.data()) else {
            return Step::Wait;
        };
        match dispatch::route(header.modifier1) {
            Route::Wsgi { strip_script_name } => {
                if header.is_empty() {
                    // No vars at all: nothing to run an app for (uWSGI closes too).
                    log_line(&format!(
                        "ruwsgi: empty uwsgi packet (modifier1 {}, no vars) from {}; closing",
                        header.modifier1,
                        peer_text(&c.peer)
                    ));
                    self.close(idx);
                    return Step::Closed;
                }
                self.try_wsgi_packet(core, idx, strip_script_name)
            }
            Route::Subsystem(sub) => {
                if !is_trusted(&c.peer, &self.trusted) {
                    log_line(&format!(
                        "ruwsgi: refused {} packet (modifier1 {}) from untrusted peer {}; closing",
                        sub.name(),
                        header.modifier1,
                        peer_text(&c.peer)
                    ));
                    self.close(idx);
                    return Step::Closed;
                }
                match uwsgi::parse_frame(c.rbuf.data(), self.uwsgi_limits.buffer_size) {
                    Ok(Some(_)) => self.serve_subsystem(idx, sub, header),
                    Ok(None) => Step::Wait,
                    Err(e) => {
                        log_line(&format!(
                            "ruwsgi: invalid uwsgi packet from {}: {e}; closing",
                            peer_text(&c.peer)
                        ));
                        self.close(idx);
                        Step::Closed
                    }
                }
            }
            Route::Unavailable => {
                self.unavailable_modifier(idx, header);
                Step::Closed
            }
        }
    }

    /// The dispatch point for complete subsystem packets from trusted peers (the whole
    /// packet, `header.packet_len()` bytes, is at the front of the read buffer).
    ///
    /// Subsystems without a handler in the worker yet are answered as uWSGI answers a
    /// modifier no plugin registered.
    fn serve_subsystem(&mut self, idx: usize, sub: Subsystem, header: PacketHeader) -> Step {
        match sub {
            Subsystem::Rpc => self.serve_rpc(idx, header),
            Subsystem::Cache => self.serve_cache(idx, header),
            Subsystem::Spooler if self.shared.settings.spooler.accept_remote => {
                self.serve_spool(idx, header)
            }
            Subsystem::Signal => self.serve_signal(idx, header),
            Subsystem::Spooler => {
                self.unavailable_modifier(idx, header);
                Step::Closed
            }
        }
    }

    /// An RPC call (modifier1 173): run the function from this process's table and write
    /// the answer. Counted as a request in the scoreboard (and for `max-requests`), not
    /// written to the request log. A standard call keeps the connection for the next one.
    fn serve_rpc(&mut self, idx: usize, header: PacketHeader) -> Step {
        let shared = self.shared;
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let started = subsystem_started(&mut self.clock, shared);
        let len = header.packet_len();
        let answer = ruwsgi_rpc::server::answer(
            shared.rpc.registry(),
            header,
            &c.rbuf.data()[uwsgi::HEADER_LEN..len],
            &c.peer,
            &mut self.vars,
        );
        c.rbuf.consume(len);
        self.subsystem_reply(
            idx,
            started,
            "RPC",
            &answer.head,
            &answer.body,
            answer.close,
        )
    }

    /// Write a subsystem's answer (after [`subsystem_started`]) (`head` then `body`; nothing at all when both are empty),
    /// count it as a request (scoreboard, `max-requests`), then keep the connection for
    /// the next packet or close it (`close`, a failed write, a stopping worker).
    fn subsystem_reply(
        &mut self,
        idx: usize,
        started: std::time::Instant,
        what: &str,
        head: &[u8],
        body: &[u8],
        close: bool,
    ) -> Step {
        let shared = self.shared;
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let timeout = shared.settings.requests.socket_timeout;
        let mut bufs = [IoSlice::new(head), IoSlice::new(body)];
        let written = if head.is_empty() && body.is_empty() {
            Ok(0)
        } else {
            write_all_vectored(&mut c.stream, &mut bufs, timeout)
        };
        let ended = self.clock.tick();
        let micros = ended.saturating_duration_since(started).as_micros() as u64;
        let slot = shared.scoreboard.worker(shared.id);
        slot.request_finished(micros, *written.as_ref().unwrap_or(&0), false);
        self.served += 1;
        c.served += 1;
        let worker_requests = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
        shared.check_recycle(worker_requests, false, None);
        if let Err(e) = &written {
            log_line(&format!(
                "ruwsgi: cannot send the {what} reply to {}: {e}",
                c.peer
            ));
        }
        let keep = written.is_ok() && !close && shared.stop_kind() == StopKind::Running;
        if !keep {
            self.close(idx);
            return Step::Closed;
        }
        c.deadline = ended
            + if c.rbuf.is_empty() {
                shared.settings.requests.keepalive_timeout
            } else {
                shared.settings.requests.header_timeout
            };
        Step::Served
    }

    /// A remote enqueue (modifier1 17): the vars block is a task for the first spooler
    /// directory (or the one its `spooler` var names). Reply `(255, 0, 1)` once the task is
    /// written, `(255, 0, 0)` when it is not (no spooler, bad vars, write failure); if the
    /// reply cannot be sent the task is removed again, so the peer's view stays true.
    fn serve_spool(&mut self, idx: usize, header: PacketHeader) -> Step {
        let shared = self.shared;
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let started = subsystem_started(&mut self.clock, shared);
        let len = header.packet_len();
        let block = &c.rbuf.data()[uwsgi::HEADER_LEN..len];
        let written = match &shared.spoolers {
            Some(s) => s.spool_block(block).map_err(|e| e.to_string()),
            None => Err("no spooler configured".to_string()),
        };
        c.rbuf.consume(len);
        let status = match &written {
            Ok(_) => 1,
            Err(why) => {
                log_line(&format!(
                    "ruwsgi: remote spool request from {} refused: {why}",
                    peer_text(&c.peer)
                ));
                0
            }
        };
        let reply = PacketHeader {
            modifier1: 255,
            datasize: 0,
            modifier2: status,
        }
        .to_bytes();
        let timeout = shared.settings.requests.socket_timeout;
        let sent = write_all_vectored(&mut c.stream, &mut [IoSlice::new(&reply)], timeout);
        if let (Err(e), Ok(path)) = (&sent, &written) {
            log_line(&format!(
                "ruwsgi: cannot send the spooler reply to {}: {e}; removing {}",
                c.peer,
                path.display()
            ));
            let _ = std::fs::remove_file(path);
        }
        self.subsystem_reply(idx, started, "spooler", &[], &[], true)
    }

    /// A signal packet (modifier1 110, the signal in `modifier2`; a payload is ignored):
    /// handed to the master, which routes it to the signal's target. Reply `(255, 0, 1)`
    /// once it is queued to the master, `(255, 0, 0)` when it could not be. Counted like an
    /// RPC call; the connection stays open for the next packet.
    fn serve_signal(&mut self, idx: usize, header: PacketHeader) -> Step {
        let shared = self.shared;
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let started = subsystem_started(&mut self.clock, shared);
        c.rbuf.consume(header.packet_len());
        let signum = header.modifier2;
        let queued = shared.send_to_master(ruwsgi_proto::channel::ChildRequest::Signal(signum));
        if !queued {
            log_line(&format!(
                "ruwsgi: cannot queue signal {signum} from {} to the master",
                peer_text(&c.peer)
            ));
        }
        let reply = PacketHeader {
            modifier1: 255,
            datasize: 0,
            modifier2: u8::from(queued),
        }
        .to_bytes();
        self.subsystem_reply(idx, started, "signal", &reply, &[], false)
    }

    /// A cache packet (modifier1 111) on this instance's caches. A magic `set`/`update`
    /// carries its value after the packet: what is not buffered yet is read here, within
    /// `socket-timeout` (and refused beyond the largest value a cache holds). Counted like
    /// an RPC call; only magic commands keep the connection.
    fn serve_cache(&mut self, idx: usize, header: PacketHeader) -> Step {
        let shared = self.shared;
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let started = subsystem_started(&mut self.clock, shared);
        let timeout = shared.settings.requests.socket_timeout;
        let max_value = shared.caches.max_value();
        let data = c.rbuf.data();
        let body = &data[uwsgi::HEADER_LEN..header.packet_len()];
        let Some(need) = ruwsgi_cache::server::request_len(header, body, max_value) else {
            log_line(&format!(
                "ruwsgi: cache request from {} announces a value larger than any cache holds; closing",
                c.peer
            ));
            self.close(idx);
            return Step::Closed;
        };
        let have = data.len() - uwsgi::HEADER_LEN;
        let answer = if need <= have {
            let request = &data[uwsgi::HEADER_LEN..uwsgi::HEADER_LEN + need];
            let a = ruwsgi_cache::server::answer(
                &*shared.caches,
                header,
                request,
                &c.peer,
                &mut self.vars,
            );
            c.rbuf.consume(uwsgi::HEADER_LEN + need);
            a
        } else {
            let mut request = data[uwsgi::HEADER_LEN..].to_vec();
            let buffered = data.len();
            request.resize(need, 0);
            c.rbuf.consume(buffered);
            if let Err(e) = read_exact_timeout(&mut c.stream, &mut request[have..], timeout) {
                log_line(&format!(
                    "ruwsgi: cache request from {}: value not received ({e}); closing",
                    c.peer
                ));
                self.close(idx);
                return Step::Closed;
            }
            ruwsgi_cache::server::answer(&*shared.caches, header, &request, &c.peer, &mut self.vars)
        };
        self.subsystem_reply(
            idx,
            started,
            "cache",
            &answer.head,
            &answer.body,
            answer.close,
        )
    }

    /// Log `-- unavailable modifier requested: N --` (with the peer) and close without a
    /// reply: the uwsgi protocol has no error packet.
    fn unavailable_modifier(&mut self, idx: usize, header: PacketHeader) {
        let Some(c) = self.conns.get(idx).and_then(Option::as_ref) else {
            return;
        };
        log_line(&format!(
            "-- unavailable modifier requested: {} (from {}) --",
            header.modifier1,
            peer_text(&c.peer)
        ));
        self.close(idx);
    }

    /// A WSGI request packet (modifier1 0 or 30) with a non-empty vars block.
    fn try_wsgi_packet<H: Handler + ?Sized>(
        &mut self,
        core: &mut H,
        idx: usize,
        strip_script_name: bool,
    ) -> Step {
        let Some(c) = self.conns.get_mut(idx).and_then(Option::as_mut) else {
            return Step::Closed;
        };
        let trusted = is_trusted(&c.peer, &self.trusted);
        let (header, consumed) =
            match uwsgi::parse_packet(c.rbuf.data(), &self.uwsgi_limits, &mut self.vars) {
                Ok(Parsed::Complete { header, consumed }) => (header, consumed),
                Ok(Parsed::Incomplete) => return Step::Wait,
                Err(e) => {
                    log_line(&format!(
                        "ruwsgi: invalid uwsgi packet from {}: {e}; closing",
                        peer_text(&c.peer)
                    ));
                    self.close(idx);
                    return Step::Closed;
                }
            };
        let meta = sanitize_uwsgi_vars(&mut self.vars, &c.peer_text, trusted);
        if meta.dynamic_vars && !c.warned {
            c.warned = true;
            log_line(&format!(
                "ruwsgi: ignoring dynamic-app variables (UWSGI_FILE, UWSGI_SETENV, ...) from {}",
                peer_text(&c.peer)
            ));
        }
        if strip_script_name {
            strip_script_name_prefix(&mut self.vars, &mut self.scratch);
        }
        let s = &self.shared.settings;
        if meta.bad_length {
            c.rbuf.consume(consumed);
            self.reject(idx, 400, "invalid CONTENT_LENGTH");
            return Step::Closed;
        }
        let body = match meta.content_length {
            None | Some(0) => BodyState::Empty,
            Some(n) if s.requests.limit_post > 0 && n > s.requests.limit_post => {
                c.rbuf.consume(consumed);
                self.reject(idx, 413, "request body larger than limit-post");
                return Step::Closed;
            }
            Some(n) => BodyState::Length { remaining: n },
        };
        c.rbuf.consume(consumed);
        let serve = Serve {
            scheme: if meta.https { "https" } else { "http" },
            modifier1: header.modifier1,
            modifier2: header.modifier2,
            body,
            ctx: ResponseContext {
                http11: meta.http11,
                head_only: meta.head_only,
                keep_alive: false,
                chunked_ok: false,
                connection_header: false,
                timeout: s.requests.socket_timeout,
                wait: crate::stream::wait_fd,
            },
            expect_continue: false,
        };
        core.serve(self, idx, serve)
    }
}

/// Fill `buf` from a non-blocking stream, waiting at most `timeout` for each chunk.
fn read_exact_timeout(
    stream: &mut crate::stream::Stream,
    mut buf: &mut [u8],
    timeout: std::time::Duration,
) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::fd::AsFd;
    while !buf.is_empty() {
        match stream.read(buf) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf = &mut buf[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if !crate::stream::wait_fd(stream.as_fd(), false, timeout)? {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// modifier1 30: remove the `SCRIPT_NAME` prefix from `PATH_INFO`.
fn strip_script_name_prefix(vars: &mut Vars, scratch: &mut Vec<u8>) {
    let (Some(script), Some(path)) = (vars.get(b"SCRIPT_NAME"), vars.get(b"PATH_INFO")) else {
        return;
    };
    if !script.is_empty() && path.starts_with(script) {
        scratch.clear();
        scratch.extend_from_slice(&path[script.len()..]);
        vars.remove(b"PATH_INFO");
        vars.push(b"PATH_INFO", scratch);
    }
}

/// Unix sockets, loopback and `uwsgi-trusted-peers` may claim client identity and use the
/// subsystems.
fn is_trusted(peer: &Peer, trusted: &[IpAddr]) -> bool {
    peer.is_local() || matches!(peer, Peer::Tcp(a) if trusted.contains(&a.ip()))
}

/// A subsystem packet (RPC, cache, spooler) starts: its start time, and the worker shown
/// busy in the scoreboard until [`CoreLoop::subsystem_reply`] counts it as a request.
fn subsystem_started(clock: &mut Clock, shared: &WorkerShared) -> std::time::Instant {
    let started = clock.tick();
    let slot = shared.scoreboard.worker(shared.id);
    slot.request_started(clock.wall_at(started).as_micros() as u64);
    started
}
