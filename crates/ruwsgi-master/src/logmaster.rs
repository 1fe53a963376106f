//! The log master: with `alarm-log` rules, every log line of every process goes through
//! one thread of the master, which writes it to the real log and raises the alarms the
//! line matches.
//!
//! [`LogMaster::start`] (in the master, before the first fork) turns fd 2 (and fd 1 when it
//! is the same file) into the write end of a pipe ([`ruwsgi_sys::logpipe::LogPipe`]); every
//! child forked afterwards inherits it, and so does anything they exec. The thread reads
//! the pipe, splits what it reads into lines ([`Lines`]: a line is one `write(2)` of at most
//! `PIPE_BUF` bytes from each process, so lines arrive whole even when a read returns a
//! part of one; a partial line is held until its newline or until the pipe stays idle for
//! [`IDLE_FLUSH`]), writes the complete lines to the original fd 2 (one `write` per batch)
//! and matches each against the [`AlarmRules`]. A match is sent as an alarm packet on the
//! alarm queue ([`AlarmSender`]); the master's loop reads it and runs the alarm, so the
//! thread itself never forks, spawns, routes a signal or touches the master's state.
//!
//! # Fork safety
//!
//! The master forks its children while the thread runs; only the forking thread exists in
//! a child. The thread therefore holds nothing a child needs: it reads and writes raw
//! descriptors (no stdio lock), never calls the time-zone code of the date prefix (it
//! copies lines as written; its own rare notices carry no date), never touches the
//! language runtime, and sends on a socket. Its heap allocations go through the C
//! library's allocator, whose `fork` makes the allocator consistent in the child. Its
//! regular expressions are its own and never used in a child. All signals are blocked in
//! the thread, so they keep being handled by the loop's thread. A child closes its
//! inherited copies of the pipe's read end and of the thread's wake pipe
//! ([`close_in_child`]), so only the master's thread ever reads the log pipe.
//!
//! # Stopping, re-exec
//!
//! [`LogMaster::stop`] (also on drop) restores fd 2 (and fd 1), wakes the thread, which
//! reads what is left in the pipe, writes it and leaves; the stop waits for it at most
//! [`STOP_WAIT`]. The master stops it before it re-executes itself (the new image starts
//! its own) and when it leaves, after its last line.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use ruwsgi_signal::{AlarmRules, AlarmSender, ALARM_LOG_PREFIX};
use ruwsgi_sys::log::write_all;
use ruwsgi_sys::logpipe::LogPipe;

/// A partial line is written (and matched) once the pipe was idle this long.
pub(crate) const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// A line longer than this without a newline is cut there.
const MAX_LINE: usize = 64 * 1024;
/// How long a stop waits for the thread to drain the pipe.
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The read ends a forked child must close: the log pipe's and the wake pipe's (-1: none).
static CHILD_CLOSES: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// In a freshly forked child: close the inherited read ends of the log master's pipes.
pub(crate) fn close_in_child() {
    for slot in &CHILD_CLOSES {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            let _ = nix::unistd::close(fd);
        }
    }
}

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Feed `data`: `each` gets every line it completes (newline included), in order. A
    /// partial line growing past [`MAX_LINE`] is given as it is.
    pub(crate) fn feed(&mut self, mut data: &[u8], each: &mut dyn FnMut(&[u8])) {
        while !data.is_empty() {
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let (line, rest) = data.split_at(i + 1);
                    if self.pending.is_empty() {
                        each(line);
                    } else {
                        self.pending.extend_from_slice(line);
                        each(&self.pending);
                        self.pending.clear();
                    }
                    data = rest;
                }
                None => {
                    self.pending.extend_from_slice(data);
                    if self.pending.len() >= MAX_LINE {
                        each(&self.pending);
                        self.pending.clear();
                    }
                    return;
                }
            }
        }
    }

    /// Whether a partial line is held.
    pub(crate) fn has_partial(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Give the partial line, if any, as it is.
    pub(crate) fn flush(&mut self, each: &mut dyn FnMut(&[u8])) {
        if !self.pending.is_empty() {
            each(&self.pending);
            self.pending.clear();
        }
    }
}

/// The text a rule sees: the line without its line ending, invalid UTF-8 replaced.
pub(crate) fn line_text(line: &[u8]) -> std::borrow::Cow<'_, str> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line)
}

/// What the thread does with each line: the alarms to raise, as (name, line) pairs.
struct Matcher {
    rules: AlarmRules,
    sender: AlarmSender,
}

impl Matcher {
    /// Raise the alarms `line` matches; a refused send is noted in `out` (to the real log).
    fn check(&self, line: &[u8], out: &mut Vec<u8>) {
        let text = line_text(line);
        for name in self.rules.matches(&text) {
            if let Err(e) = self.sender.raise_truncated(name, text.as_bytes()) {
                out.extend_from_slice(
                    format!("{ALARM_LOG_PREFIX} {name}] alarm dropped: {e}\n").as_bytes(),
                );
            }
        }
    }
}

/// The thread's loop: copy and match until woken on `wake` or until every writer is gone.
fn run(read: BorrowedFd<'_>, wake: BorrowedFd<'_>, real: BorrowedFd<'_>, matcher: &Matcher) {
    let mut lines = Lines::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut out: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        let timeout = if lines.has_partial() {
            PollTimeout::try_from(IDLE_FLUSH).unwrap_or(PollTimeout::MAX)
        } else {
            PollTimeout::NONE
        };
        let mut fds = [
            PollFd::new(read, PollFlags::POLLIN),
            PollFd::new(wake, PollFlags::POLLIN),
        ];
        let ready = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(_) => 0,
        };
        let stopping = fds[1].revents().is_some_and(|r| !r.is_empty());
        if ready == 0 {
            lines.flush(&mut |line| {
                out.extend_from_slice(line);
                matcher.check(line, &mut out);
            });
        }
        let mut eof = false;
        loop {
            match nix::unistd::read(read, &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => lines.feed(&buf[..n], &mut |line| {
                    out.extend_from_slice(line);
                    matcher.check(line, &mut out);
                }),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
            if out.len() >= buf.len() {
                write_all(real, &out);
                out.clear();
            }
        }
        if stopping || eof {
            lines.flush(&mut |line| {
                out.extend_from_slice(line);
                matcher.check(line, &mut out);
            });
        }
        if !out.is_empty() {
            write_all(real, &out);
            out.clear();
        }
        if stopping || eof {
            return;
        }
    }
}

/// The running log master.
pub(crate) struct LogMaster {
    pipe: LogPipe,
    wake: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl LogMaster {
    /// Redirect fd 2 (and fd 1) into the log pipe and start the thread matching `rules`
    /// and raising through `sender`.
    pub(crate) fn start(rules: AlarmRules, sender: AlarmSender) -> io::Result<LogMaster> {
        let (mut pipe, read) = LogPipe::redirect()?;
        let started = (|| {
            let real = pipe.real_log().try_clone_to_owned()?;
            let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
            let fds = (read.as_raw_fd(), wake_r.as_raw_fd());
            let matcher = Matcher { rules, sender };
            let mask = ruwsgi_sys::signals::block_all().ok();
            let spawned = std::thread::Builder::new()
                .name("ruwsgi-log".into())
                .spawn(move || {
                    run(read.as_fd(), wake_r.as_fd(), real.as_fd(), &matcher);
                    drop((read, wake_r, real));
                });
            if let Some(mask) = &mask {
                let _ = ruwsgi_sys::signals::restore_mask(mask);
            }
            let thread = spawned?;
            CHILD_CLOSES[0].store(fds.0, Ordering::Relaxed);
            CHILD_CLOSES[1].store(fds.1, Ordering::Relaxed);
            Ok::<_, io::Error>((wake_w, thread))
        })();
        match started {
            Ok((wake, thread)) => Ok(LogMaster {
                pipe,
                wake,
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = pipe.restore();
                Err(e)
            }
        }
    }

    /// The real log (the original fd 2), for lines that must not go through the pipe.
    pub(crate) fn real_log(&self) -> BorrowedFd<'_> {
        self.pipe.real_log()
    }

    /// Whether fd 1 goes through the pipe too.
    pub(crate) fn has_stdout(&self) -> bool {
        self.pipe.has_stdout()
    }

    /// Restore fd 2 (and fd 1), let the thread copy what is left and wait for it (at most
    /// [`STOP_WAIT`]). Idempotent.
    pub(crate) fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        for slot in &CHILD_CLOSES {
            slot.store(-1, Ordering::Relaxed);
        }
        if let Err(e) = self.pipe.restore() {
            write_all(
                self.pipe.real_log(),
                format!("ruwsgi: cannot restore the log descriptors: {e}\n").as_bytes(),
            );
        }
        let _ = nix::unistd::write(&self.wake, b"x");
        let deadline = Instant::now() + STOP_WAIT;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        if thread.is_finished() {
            let _ = thread.join();
        }
    }
}

impl Drop for LogMaster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(lines: &mut Lines, data: &[u8]) -> Vec<String> {
        let mut got = Vec::new();
        lines.feed(data, &mut |l| {
            got.push(String::from_utf8_lossy(l).into_owned())
        });
        got
    }

    #[test]
    fn lines_are_split_whole_across_reads() {
        let mut l = Lines::default();
        assert_eq!(collect(&mut l, b"one\ntw"), ["one\n"]);
        assert!(l.has_partial());
        assert_eq!(collect(&mut l, b"o\nthree\nfo"), ["two\n", "three\n"]);
        assert_eq!(collect(&mut l, b""), Vec::<String>::new());
        let mut flushed = Vec::new();
        l.flush(&mut |x| flushed.push(x.to_vec()));
        assert_eq!(flushed, [b"fo".to_vec()]);
        assert!(!l.has_partial());
        l.flush(&mut |_| panic!("nothing held"));
        assert_eq!(collect(&mut l, b"\n\n"), ["\n", "\n"]);
    }

    #[test]
    fn an_endless_line_is_cut() {
        let mut l = Lines::default();
        let big = vec![b'x'; MAX_LINE + 10];
        let got = collect(&mut l, &big);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), MAX_LINE + 10);
        assert!(!l.has_partial());
    }

    #[test]
    fn line_text_drops_the_line_ending() {
        assert_eq!(line_text(b"abc\r\n"), "abc");
        assert_eq!(line_text(b"abc"), "abc");
        assert_eq!(line_text(b"a\xffb\n"), "a\u{fffd}b");
    }

    #[test]
    fn the_thread_copies_lines_and_raises_matches() {
        let rules = AlarmRules::new(&[ruwsgi_config::AlarmLogRule {
            alarms: vec!["boom".into()],
            regex: "ERROR".into(),
            negate: false,
        }])
        .unwrap();
        let queue = ruwsgi_signal::AlarmQueue::new(vec!["boom".into()], 16).unwrap();
        let matcher = Matcher {
            rules,
            sender: queue.sender().unwrap(),
        };
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).unwrap();
        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        let (wake_r, wake_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
        write_all(write.as_fd(), b"fine\nan ERROR that is long\npart");
        write_all(write.as_fd(), b"ial ERROR\n");
        write_all(
            write.as_fd(),
            format!("{ALARM_LOG_PREFIX} x] ERROR\n").as_bytes(),
        );
        write_all(wake_w.as_fd(), b"x");
        run(read.as_fd(), wake_r.as_fd(), out_w.as_fd(), &matcher);
        drop(out_w);
        let mut copied = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match nix::unistd::read(&out_r, &mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => copied.extend_from_slice(&chunk[..n]),
            }
        }
        assert_eq!(
            String::from_utf8(copied).unwrap(),
            format!("fine\nan ERROR that is long\npartial ERROR\n{ALARM_LOG_PREFIX} x] ERROR\n")
        );
        let mut buf = vec![0u8; queue.packet_size()];
        assert_eq!(
            queue.try_recv(&mut buf).unwrap(),
            Some(("boom", &b"an ERROR that is"[..])),
            "cut to alarm-msg-size"
        );
        assert_eq!(
            queue.try_recv(&mut buf).unwrap(),
            Some(("boom", &b"partial ERROR"[..]))
        );
        assert_eq!(
            queue.try_recv(&mut buf).unwrap(),
            None,
            "own lines never match"
        );
    }
}
