//! The async loop without Python: a worker with `async N` driven by a native test plugin
//! whose cores park on timeouts, plain yields and descriptors, the way a language plugin's
//! cores would. One test function, because a worker owns the process's signal handlers.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ruwsgi_config::{PluginView, Protocol, Settings};
use ruwsgi_plugin::{
    AsyncCore, AsyncIo, AsyncStep, Core, ForkOutcome, Host, Interest, LanguagePlugin, Outcome,
    Park, PluginError, ProcessRole, Request, SuspendFn, Wake,
};
use ruwsgi_worker::{ListenSocket, WorkerArgs, WorkerExit};

/// What a test core is doing for its request.
struct Job {
    io: Box<dyn AsyncIo>,
    path: String,
    /// Parks left before answering.
    steps: u32,
    /// How the core woke each time.
    wakes: Vec<Wake>,
}

/// Cores that answer `/sleep` after a 300 ms timeout, `/yield` after three plain yields,
/// `/fd` once the test's pipe is readable, and anything else at once.
struct TestCores {
    jobs: HashMap<u16, Job>,
    pipe: Arc<OwnedFd>,
    log: Arc<Mutex<Vec<String>>>,
}

impl TestCores {
    fn step(&mut self, core: u16, park: &mut Park) -> AsyncStep {
        let Some(job) = self.jobs.get_mut(&core) else {
            return AsyncStep::Done(
                Outcome {
                    exception: true,
                    close: true,
                },
                None,
            );
        };
        if job.steps > 0 {
            job.steps -= 1;
            match job.path.as_str() {
                "/sleep" => park.timeout = Some(Duration::from_millis(300)),
                "/fd" => {
                    park.fds.push((self.pipe.as_raw_fd(), Interest::Read));
                    park.timeout = Some(Duration::from_secs(5));
                }
                _ => {}
            }
            return AsyncStep::Parked;
        }
        let mut job = self.jobs.remove(&core).expect("a job");
        let body = format!("{} core {core} woke {:?}", job.path, job.wakes);
        let io = job.io.request_io();
        let sent = io
            .start(b"200 OK")
            .and_then(|()| io.header(b"Content-Type", b"text/plain"))
            .and_then(|()| io.write(body.as_bytes()))
            .and_then(|()| io.finish());
        self.log
            .lock()
            .unwrap()
            .push(format!("done {core} {}", job.path));
        AsyncStep::Done(
            Outcome {
                exception: false,
                close: sent.is_err(),
            },
            Some(job.io),
        )
    }
}

impl AsyncCore for TestCores {
    fn start(
        &mut self,
        core: u16,
        req: &Request<'_>,
        io: Box<dyn AsyncIo>,
        park: &mut Park,
    ) -> AsyncStep {
        let path = String::from_utf8_lossy(req.vars.get(b"PATH_INFO").unwrap_or(b"")).into_owned();
        let steps = match path.as_str() {
            "/sleep" | "/fd" => 1,
            "/yield" => 3,
            _ => 0,
        };
        assert!(
            !self.jobs.contains_key(&core),
            "core {core} given two requests"
        );
        self.log
            .lock()
            .unwrap()
            .push(format!("start {core} {path}"));
        self.jobs.insert(
            core,
            Job {
                io,
                path,
                steps,
                wakes: Vec::new(),
            },
        );
        self.step(core, park)
    }

    fn resume(&mut self, core: u16, wake: Wake, park: &mut Park) -> AsyncStep {
        if let Some(job) = self.jobs.get_mut(&core) {
            job.wakes.push(wake);
        }
        self.step(core, park)
    }

    fn suspender(&self) -> Option<SuspendFn> {
        None
    }

    fn blocking(&mut self, wait: &mut (dyn FnMut() + Send)) {
        wait();
    }
}

struct TestPlugin {
    pipe: Arc<OwnedFd>,
    log: Arc<Mutex<Vec<String>>>,
}

impl LanguagePlugin for TestPlugin {
    fn name(&self) -> &'static str {
        "test"
    }
    fn init(&self, _: PluginView<'_>, _: Arc<dyn Host>) -> Result<(), PluginError> {
        Ok(())
    }
    fn load_apps(&self) -> Result<usize, PluginError> {
        Ok(1)
    }
    fn around_fork(&self, fork: &mut dyn FnMut() -> ForkOutcome) -> ForkOutcome {
        fork()
    }
    fn post_fork(&self, _: ProcessRole) {}
    fn run_core(&self, _: u16, _: &mut dyn FnMut(&mut dyn Core)) {
        panic!("a worker with async cores runs no sync core");
    }
    fn run_async(
        &self,
        _cores: u16,
        body: &mut dyn FnMut(&mut dyn AsyncCore),
    ) -> Result<(), PluginError> {
        let mut cores = TestCores {
            jobs: HashMap::new(),
            pipe: self.pipe.clone(),
            log: self.log.clone(),
        };
        body(&mut cores);
        Ok(())
    }
    fn at_exit(&self) {}
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Requests on their own connections, all at once; answers in order.
fn all_at_once(addr: &str, paths: &[&str]) -> (Vec<String>, Duration) {
    let t0 = Instant::now();
    let handles: Vec<_> = paths
        .iter()
        .map(|p| {
            let (addr, p) = (addr.to_string(), p.to_string());
            std::thread::spawn(move || get(&addr, &p))
        })
        .collect();
    let out = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (out, t0.elapsed())
}

#[test]
fn async_cores_park_yield_wait_and_queue() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let fd = OwnedFd::from(listener);
    let sock = ListenSocket::new(fd, false, Protocol::Http, addr.clone());
    let mut settings = Settings::default();
    settings.processes.async_cores = 3;
    settings.logging.disable_logging = true;
    let settings = Arc::new(settings);
    let (mut pipe_w, pipe_r) = UnixStream::pair().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let plugin = Arc::new(TestPlugin {
        pipe: Arc::new(OwnedFd::from(pipe_r)),
        log: log.clone(),
    });
    let args = WorkerArgs {
        id: 1,
        settings: settings.clone(),
        listeners: vec![sock],
        plugin,
        scoreboard: ruwsgi_shm::Scoreboard::with_cores(1, 3).unwrap(),
        channel: None,
        rpc: Arc::new(ruwsgi_rpc::Rpc::new(64, Duration::from_secs(4))),
        caches: Arc::new(ruwsgi_cache::Caches::new(&[]).unwrap()),
        spoolers: None,
        uwsgi_signals: None,
    };
    let worker = std::thread::spawn(move || ruwsgi_worker::run(args));

    // Ready: a request that parks nowhere is answered at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = TcpStream::connect(&addr) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = write!(
                s,
                "GET /now HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut out = String::new();
            if s.read_to_string(&mut out).is_ok() && out.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the worker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }

    // Three cores, three sleeps side by side: one timeout's time.
    let (out, took) = all_at_once(&addr, &["/sleep"; 3]);
    assert!(
        out.iter()
            .all(|o| o.starts_with("HTTP/1.1 200") && o.contains("woke [TimedOut]")),
        "{out:?}"
    );
    assert!(took < Duration::from_millis(900), "{took:?}");

    // Nine sleeps through three cores: they wait for a core (never dropped), three waves.
    let (out, took) = all_at_once(&addr, &["/sleep"; 9]);
    assert!(out.iter().all(|o| o.starts_with("HTTP/1.1 200")), "{out:?}");
    assert!(
        took >= Duration::from_millis(850) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // Plain yields come back as Run; a descriptor wait wakes with that descriptor.
    let y = get(&addr, "/yield");
    assert!(y.contains("woke [Run, Run, Run]"), "{y}");
    let waiter = {
        let addr = addr.clone();
        std::thread::spawn(move || get(&addr, "/fd"))
    };
    // While /fd waits for the pipe, other requests go through.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log.lock().unwrap().iter().any(|l| l.ends_with(" /fd")) {
        assert!(Instant::now() < deadline, "the /fd request did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..3 {
        let now = get(&addr, "/now");
        assert!(now.starts_with("HTTP/1.1 200"), "{now}");
    }
    assert!(
        !waiter.is_finished(),
        "the /fd request did not wait for its descriptor"
    );
    pipe_w.write_all(b"x").unwrap();
    let fd_out = waiter.join().unwrap();
    assert!(fd_out.contains("woke [Fd("), "{fd_out}");

    // SIGINT: the worker leaves.
    nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGINT).unwrap();
    let exit = worker.join().unwrap();
    assert_eq!(exit, WorkerExit::Stopped);
}
