//! Test support: fake plugin and host, an injectable signal source, a minimal HTTP worker,
//! and [`MasterHandle`] to start a forked master and observe it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use ruwsgi_config::{PluginView, ProcessSettings, Protocol, Settings, SocketSettings, SocketSpec};
use ruwsgi_master::{
    Incoming, MasterCommand, MasterConfig, SignalSource, UnixSignals, WorkerStart, EXIT_RECYCLE,
    EXIT_STOPPED,
};
use ruwsgi_plugin::{
    Core, ForkOutcome, Host, LanguagePlugin, PluginError, ProcessRole, WorkerSnapshot,
};
use ruwsgi_proto::channel::ChildRequest;
use ruwsgi_shm::Scoreboard;
use ruwsgi_sys::{Pid, Signal, SignalPipe};

/// Held by every test that forks.
pub static FORK_MTX: Mutex<()> = Mutex::new(());

pub fn fork_lock() -> MutexGuard<'static, ()> {
    FORK_MTX.lock().unwrap_or_else(|e| e.into_inner())
}

/// A plugin with no runtime: `.0` apps load, forks as asked.
pub struct FakePlugin(pub usize);

impl LanguagePlugin for FakePlugin {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn init(&self, _: PluginView<'_>, _: Arc<dyn Host>) -> Result<(), PluginError> {
        Ok(())
    }
    fn load_apps(&self) -> Result<usize, PluginError> {
        Ok(self.0)
    }
    fn around_fork(&self, fork: &mut dyn FnMut() -> ForkOutcome) -> ForkOutcome {
        fork()
    }
    fn post_fork(&self, _: ProcessRole) {}
    fn run_core(&self, _: u16, _: &mut dyn FnMut(&mut dyn Core)) {}
    fn at_exit(&self) {}
}

struct FakeHost(Scoreboard);

impl Host for FakeHost {
    fn masterpid(&self) -> i32 {
        self.0.master_pid()
    }
    fn role(&self) -> ProcessRole {
        ruwsgi_master::current_role()
    }
    fn total_requests(&self) -> u64 {
        self.0.total_requests()
    }
    fn workers(&self) -> Vec<WorkerSnapshot> {
        Vec::new()
    }
    fn log(&self, line: &str) {
        ruwsgi_sys::log_line(line)
    }
    fn set_process_name(&self, _: &str) {}
    fn reload(&self) -> bool {
        false
    }
    fn stop(&self) -> bool {
        false
    }
}

/// Commands written by the test into a pipe (`r`, `q`, `Q`), plus real `SIGCHLD`.
struct PipeSource {
    commands: OwnedFd,
    sigchld: Option<SignalPipe>,
}

impl SignalSource for PipeSource {
    fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.commands.as_fd()];
        fds.extend(self.sigchld.as_ref().map(SignalPipe::fd));
        fds
    }
    fn pending(&mut self) -> Vec<Incoming> {
        let mut out = Vec::new();
        if let Some(p) = &self.sigchld {
            if !p.drain().is_empty() {
                out.push(Incoming {
                    command: MasterCommand::ChildEvent,
                    origin: "SIGCHLD",
                });
            }
        }
        let mut buf = [0u8; 16];
        while let Ok(n @ 1..) = nix::unistd::read(&self.commands, &mut buf) {
            for &b in &buf[..n] {
                let command = match b {
                    b'r' => MasterCommand::GracefulReload,
                    b'q' => MasterCommand::GracefulStop,
                    b'Q' => MasterCommand::ImmediateStop,
                    _ => continue,
                };
                out.push(Incoming {
                    command,
                    origin: "test",
                });
            }
        }
        out
    }
    fn close_in_child(&mut self) {
        self.sigchld = None;
    }
}

/// How the test worker behaves.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Serve until told to stop.
    Serve,
    /// Exit with [`EXIT_RECYCLE`] after this many requests.
    RecycleAfter(u64),
    /// Exit 1 at once (a crash loop).
    Crash,
    /// Serve; after the first request, send this request to the master over the channel.
    AskAfterFirst(ChildRequest),
}

/// A minimal worker: accepts on the first listener, answers `200` with its pid as body;
/// `SIGHUP` → exit 0, `SIGTERM`/`SIGINT`/`SIGQUIT` → exit 30.
fn worker_main(start: WorkerStart, behaviour: Behaviour) -> i32 {
    if let Behaviour::Crash = behaviour {
        return 1;
    }
    let signals = SignalPipe::install(&[
        Signal::SIGHUP,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
    ])
    .expect("worker signals");
    let slot = start.child.scoreboard.worker(start.child.id);
    slot.set_accepting(true);
    let listener = TcpListener::from(start.listeners.into_iter().next().expect("a listener").fd);
    let mut served = 0u64;
    loop {
        let mut fds = [
            PollFd::new(listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.fd(), PollFlags::POLLIN),
        ];
        let _ = poll(&mut fds, PollTimeout::from(1000u16));
        if let Some(&sig) = signals.drain().first() {
            return if sig == Signal::SIGHUP {
                0
            } else {
                EXIT_STOPPED
            };
        }
        let Ok((mut stream, _)) = listener.accept() else {
            continue;
        };
        slot.request_started(1);
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let body = std::process::id().to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes());
        slot.request_finished(1, response.len() as u64, false);
        served += 1;
        if let Behaviour::RecycleAfter(n) = behaviour {
            if served >= n {
                return EXIT_RECYCLE;
            }
        }
        if let (Behaviour::AskAfterFirst(request), 1) = (behaviour, served) {
            let channel = start.child.channel.expect("a channel to the master");
            ruwsgi_master::channel::send_request(channel, request).expect("sent");
        }
    }
}

/// Settings of a test instance: one HTTP socket on 127.0.0.1:0, `processes` workers.
pub fn settings(processes: usize) -> Settings {
    Settings {
        sockets: SocketSettings {
            bind: vec![SocketSpec {
                protocol: Protocol::Http,
                address: "127.0.0.1:0".to_string(),
                option: "http-socket",
            }],
            ..Default::default()
        },
        processes: ProcessSettings {
            workers: processes,
            worker_reload_mercy: Duration::from_secs(5),
            reload_mercy: Duration::from_secs(5),
            forkbomb_delay: Duration::from_secs(1),
            ..Default::default()
        },
        ..Settings::default()
    }
}

/// A forked master under test.
pub struct MasterHandle {
    pub pid: Pid,
    commands: Option<OwnedFd>,
    phases: OwnedFd,
    phase_text: String,
    pub log: PathBuf,
    reaped: Option<WaitStatus>,
}

fn deadline(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

impl MasterHandle {
    /// Fork a master running `settings`; `real_signals` uses [`UnixSignals`] instead of the
    /// command pipe. Returns once the master reports `Running`.
    pub fn start(settings: Settings, behaviour: Behaviour, real_signals: bool) -> MasterHandle {
        let mut h = MasterHandle::start_with(settings, behaviour, real_signals, 1);
        h.wait_phase("Running", 10);
        h
    }

    /// Fork a master whose plugin loads `apps` apps; returns at once.
    #[allow(unsafe_code)] // fork, under FORK_MTX
    pub fn start_with(
        settings: Settings,
        behaviour: Behaviour,
        real_signals: bool,
        apps: usize,
    ) -> MasterHandle {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log =
            std::env::temp_dir().join(format!("ruwsgi-master-test-{}-{n}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        let (cmd_r, cmd_w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).unwrap();
        let (ph_r, ph_w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).unwrap();
        // SAFETY: the other threads of this test binary are either idle harness threads or
        // blocked on FORK_MTX, which the caller holds; none holds the allocator's lock
        // (glibc resets it at fork anyway). The child leaves through `exit_now`.
        match unsafe { ruwsgi_sys::fork() }.unwrap() {
            ruwsgi_sys::ForkResult::Child => {
                drop(cmd_w);
                drop(ph_r);
                ruwsgi_sys::log::redirect_stderr_to(&log).unwrap();
                let source: Box<dyn SignalSource> = if real_signals {
                    Box::new(UnixSignals::install(&settings).unwrap())
                } else {
                    Box::new(PipeSource {
                        commands: cmd_r,
                        sigchld: Some(SignalPipe::install(&[Signal::SIGCHLD]).unwrap()),
                    })
                };
                let mut config = MasterConfig::new(
                    Arc::new(settings),
                    Arc::new(FakePlugin(apps)),
                    Box::new(
                        |sb: &Scoreboard,
                         _mules: Option<&Scoreboard>,
                         _fds: &[std::os::fd::RawFd]| {
                            Arc::new(FakeHost(sb.clone())) as Arc<dyn Host>
                        },
                    ),
                    Box::new(move |s| worker_main(s, behaviour)),
                );
                config.reexec_on_reload = false;
                config.phase_observer = Some(Box::new(move |phase| {
                    let _ = nix::unistd::write(&ph_w, format!("{phase:?}\n").as_bytes());
                }));
                let code = match ruwsgi_master::run(config, source) {
                    Ok(code) => code,
                    Err(e) => {
                        ruwsgi_sys::log_line(&format!("master error: {e}"));
                        e.exit_code()
                    }
                };
                ruwsgi_sys::process::exit_now(code);
            }
            ruwsgi_sys::ForkResult::Parent { child } => MasterHandle {
                pid: child,
                commands: Some(cmd_w),
                phases: ph_r,
                phase_text: String::new(),
                log,
                reaped: None,
            },
        }
    }

    fn read_phases(&mut self) {
        let mut buf = [0u8; 256];
        while let Ok(n @ 1..) = nix::unistd::read(&self.phases, &mut buf) {
            self.phase_text
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }

    /// Every phase reported so far.
    pub fn phases(&mut self) -> Vec<String> {
        self.read_phases();
        self.phase_text.lines().map(str::to_string).collect()
    }

    /// Wait until `phase` has been reported `count` times in total.
    pub fn wait_phase_n(&mut self, phase: &str, count: usize, secs: u64) {
        let end = deadline(secs);
        loop {
            if self.phases().iter().filter(|p| *p == phase).count() >= count {
                return;
            }
            assert!(
                Instant::now() < end,
                "phase {phase} x{count} not reached: {:?}\nlog:\n{}",
                self.phases(),
                self.log_text()
            );
            let mut fds = [PollFd::new(self.phases.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(100u16));
        }
    }

    pub fn wait_phase(&mut self, phase: &str, secs: u64) {
        self.wait_phase_n(phase, 1, secs)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Wait until the log holds `needle` `count` times; returns the log.
    pub fn wait_log_n(&self, needle: &str, count: usize, secs: u64) -> String {
        let end = deadline(secs);
        loop {
            let text = self.log_text();
            if text.matches(needle).count() >= count {
                return text;
            }
            assert!(
                Instant::now() < end,
                "log line {needle:?} x{count} not found in:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_log(&self, needle: &str, secs: u64) -> String {
        self.wait_log_n(needle, 1, secs)
    }

    /// The port from the `listening on` line.
    pub fn port(&self) -> u16 {
        let text = self.wait_log("ruwsgi: listening on 127.0.0.1:", 5);
        let rest = text
            .split("ruwsgi: listening on 127.0.0.1:")
            .nth(1)
            .unwrap();
        rest.split(' ').next().unwrap().parse().unwrap()
    }

    /// Current children of the master.
    pub fn children(&self) -> Vec<i32> {
        let path = format!("/proc/{0}/task/{0}/children", self.pid);
        let mut pids: Vec<i32> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }

    /// Wait until the master has exactly `n` live children, none of them in `not`.
    pub fn wait_children(&self, n: usize, not: &[i32], secs: u64) -> Vec<i32> {
        let end = deadline(secs);
        loop {
            let kids = self.children();
            if kids.len() == n
                && !kids.iter().any(|k| not.contains(k))
                && kids.iter().all(|&k| is_running(k))
            {
                return kids;
            }
            assert!(
                Instant::now() < end,
                "children {kids:?}, wanted {n} not in {not:?}\nlog:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Inject a command byte (`r`, `q`, `Q`).
    pub fn command(&self, c: u8) {
        nix::unistd::write(self.commands.as_ref().unwrap(), &[c]).unwrap();
    }

    /// Wait for the master to exit; returns its exit code (panics on timeout or signal).
    pub fn wait_exit(&mut self, secs: u64) -> i32 {
        let end = deadline(secs);
        loop {
            match waitpid(self.pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                Ok(status) => {
                    self.reaped = Some(status);
                    match status {
                        WaitStatus::Exited(_, code) => return code,
                        other => panic!("master ended with {other:?}\nlog:\n{}", self.log_text()),
                    }
                }
                Err(e) => panic!("waitpid: {e}"),
            }
            assert!(
                Instant::now() < end,
                "master did not exit\nlog:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for MasterHandle {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// True while `pid` exists and is not a zombie.
pub fn is_running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some(Some('Z')) | Some(Some('X')))
        }
        Err(_) => false,
    }
}

/// `GET /` on `port`; returns the body (the serving worker's pid).
pub fn get(port: u16) -> i32 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    text.rsplit("\r\n\r\n").next().unwrap().parse().unwrap()
}
