//! Test support: an in-memory `RequestIo`, a recording `Host`, and a helper that loads an
//! app from source and serves requests on one core.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ruwsgi_config::{PythonSettings, Settings};
use ruwsgi_plugin::{
    BodyError, Core, Host, LanguagePlugin, Outcome, ProcessRole, Request, RequestIo, ResponseError,
    Rpc, Scoreboard, Vars, WorkerSnapshot,
};
use ruwsgi_python::PythonPlugin;

/// Python is process-global (cwd, sys.path, the uwsgi module): one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The recording host shared by every test.
pub fn host() -> Arc<FakeHost> {
    static HOST: OnceLock<Arc<FakeHost>> = OnceLock::new();
    HOST.get_or_init(|| Arc::new(FakeHost::default())).clone()
}

/// Worker 1 of two, over a scoreboard on the heap: the plugin publishes and counts its apps
/// in slot 1, and a test may fill slot 2 as another worker would.
pub struct FakeHost {
    pub logs: Mutex<Vec<String>>,
    pub procname: Mutex<Option<String>>,
    pub board: Scoreboard,
    pub rpc: Rpc,
}

impl Default for FakeHost {
    fn default() -> Self {
        let board = Scoreboard::on_heap(2);
        board.worker(1).spawned(100, 1);
        FakeHost {
            logs: Mutex::default(),
            procname: Mutex::default(),
            board,
            rpc: Rpc::default(),
        }
    }
}

impl FakeHost {
    pub fn take_logs(&self) -> Vec<String> {
        std::mem::take(&mut *self.logs.lock().unwrap())
    }
    #[allow(dead_code)]
    pub fn logged(&self, needle: &str) -> bool {
        self.logs.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Host for FakeHost {
    fn masterpid(&self) -> i32 {
        4242
    }
    fn role(&self) -> ProcessRole {
        ProcessRole::Worker { id: 1 }
    }
    fn total_requests(&self) -> u64 {
        7
    }
    fn workers(&self) -> Vec<WorkerSnapshot> {
        self.board.snapshot()
    }
    fn scoreboard(&self) -> Option<Scoreboard> {
        Some(self.board.clone())
    }
    fn log(&self, line: &str) {
        self.logs.lock().unwrap().push(line.to_string());
    }
    fn set_process_name(&self, name: &str) {
        *self.procname.lock().unwrap() = Some(name.to_string());
    }
    fn reload(&self) -> bool {
        true
    }
    fn stop(&self) -> bool {
        false
    }
    fn rpc(&self) -> Option<&Rpc> {
        Some(&self.rpc)
    }
}

/// A connection in memory. Validates status and headers like the real one.
pub struct FakeIo {
    pub body: Vec<u8>,
    pub pos: usize,
    /// Fail with `Truncated` once this many body bytes were read.
    pub truncate_at: Option<usize>,
    pub status: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub out: Vec<u8>,
    pub head_sent: bool,
    pub finished: bool,
    pub disconnected: bool,
    /// `(offset, len)` of each send_file call.
    pub sendfiles: Vec<(u64, Option<u64>)>,
    pub sock: File,
}

impl FakeIo {
    pub fn new(body: &[u8]) -> Self {
        FakeIo {
            body: body.to_vec(),
            pos: 0,
            truncate_at: None,
            status: None,
            headers: Vec::new(),
            out: Vec::new(),
            head_sent: false,
            finished: false,
            disconnected: false,
            sendfiles: Vec::new(),
            sock: File::open("/dev/null").unwrap(),
        }
    }
    /// Forget the response, for reuse by the next request.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.status = None;
        self.headers.clear();
        self.out.clear();
        self.head_sent = false;
        self.finished = false;
    }
    pub fn status_str(&self) -> String {
        String::from_utf8_lossy(self.status.as_deref().unwrap_or_default()).into_owned()
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

fn clean(b: &[u8]) -> bool {
    !b.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0)
}

impl RequestIo for FakeIo {
    fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, BodyError> {
        let limit = self
            .truncate_at
            .unwrap_or(self.body.len())
            .min(self.body.len());
        if self.pos >= limit {
            if self.truncate_at.is_some() {
                return Err(BodyError::Truncated);
            }
            return Ok(0);
        }
        let n = buf.len().min(limit - self.pos);
        buf[..n].copy_from_slice(&self.body[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
    fn body_remaining(&self) -> Option<u64> {
        Some((self.body.len() - self.pos) as u64)
    }
    fn start(&mut self, status: &[u8]) -> Result<(), ResponseError> {
        if self.head_sent {
            return Err(ResponseError::HeadersSent);
        }
        let ok = status.len() >= 5
            && status[..3].iter().all(u8::is_ascii_digit)
            && status[3] == b' '
            && clean(status);
        if !ok {
            return Err(ResponseError::BadStatus(
                String::from_utf8_lossy(status).into(),
            ));
        }
        self.status = Some(status.to_vec());
        self.headers.clear();
        Ok(())
    }
    fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), ResponseError> {
        let token = !name.is_empty()
            && name
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c));
        if !token || !clean(value) {
            return Err(ResponseError::BadHeader(
                String::from_utf8_lossy(name).into(),
            ));
        }
        self.headers.push((name.to_vec(), value.to_vec()));
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> Result<(), ResponseError> {
        self.head_sent = true;
        self.out.extend_from_slice(data);
        Ok(())
    }
    fn send_file(
        &mut self,
        fd: BorrowedFd<'_>,
        offset: u64,
        len: Option<u64>,
    ) -> Result<u64, ResponseError> {
        self.head_sent = true;
        self.sendfiles.push((offset, len));
        let f = File::from(fd.try_clone_to_owned()?);
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        let mut off = offset;
        loop {
            let n = f.read_at(&mut tmp, off)?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&tmp[..n]);
            off += n as u64;
        }
        let _ = (&f).read(&mut []);
        self.out.extend_from_slice(&buf);
        Ok(buf.len() as u64)
    }
    fn finish(&mut self) -> Result<(), ResponseError> {
        self.head_sent = true;
        self.finished = true;
        Ok(())
    }
    fn head_sent(&self) -> bool {
        self.head_sent
    }
    fn status(&self) -> u16 {
        self.status
            .as_ref()
            .and_then(|s| std::str::from_utf8(&s[..3]).ok()?.parse().ok())
            .unwrap_or(0)
    }
    fn connection_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
    fn disconnect(&mut self) {
        self.disconnected = true;
    }
}

/// Default CGI vars of a GET request, plus `extra` (overriding by order: last wins).
pub fn vars(extra: &[(&str, &[u8])]) -> Vars {
    let mut v = Vars::new();
    v.push(b"REQUEST_METHOD", b"GET");
    v.push(b"REQUEST_URI", b"/");
    v.push(b"PATH_INFO", b"/");
    v.push(b"QUERY_STRING", b"");
    v.push(b"SERVER_PROTOCOL", b"HTTP/1.1");
    v.push(b"SERVER_NAME", b"localhost");
    v.push(b"SERVER_PORT", b"8000");
    v.push(b"REMOTE_ADDR", b"127.0.0.1");
    v.push(b"REMOTE_PORT", b"5555");
    v.push(b"HTTP_HOST", b"localhost:8000");
    for (k, val) in extra {
        v.push(k.as_bytes(), val);
    }
    v
}

/// Serve one request on `core`.
pub fn serve(core: &mut dyn Core, vars: &Vars, io: &mut FakeIo, request_id: u64) -> Outcome {
    let req = Request {
        vars,
        scheme: "http",
        modifier1: 0,
        modifier2: 0,
        core_id: 0,
        request_id,
    };
    core.handle(&req, io)
}

static FILE_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory for this test binary's files.
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ruwsgi-python-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Write `code` to a new `.py` file and return its path.
pub fn write_app(code: &str) -> PathBuf {
    let n = FILE_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = scratch_dir().join(format!("app{n}.py"));
    std::fs::write(&path, code).unwrap();
    path
}

/// Settings with this Python section and defaults elsewhere.
pub fn python_settings(python: PythonSettings) -> Settings {
    Settings {
        python,
        ..Settings::default()
    }
}

/// Settings for an app file.
pub fn settings_for(code: &str) -> Settings {
    Settings {
        python: PythonSettings {
            wsgi_file: Some(write_app(code)),
            ..Default::default()
        },
        ..Settings::default()
    }
}

/// Init a plugin with `settings`, load its apps, and run `f` on one core. Holds the serial
/// lock for the whole call.
pub fn with_core<R>(settings: Settings, f: impl FnOnce(&mut dyn Core, &PythonPlugin) -> R) -> R {
    with_core_logs(settings, f).0
}

/// As [`with_core`], also returning what was logged meanwhile.
pub fn with_core_logs<R>(
    settings: Settings,
    f: impl FnOnce(&mut dyn Core, &PythonPlugin) -> R,
) -> (R, Vec<String>) {
    let _guard = serial();
    let h = host();
    h.take_logs();
    let plugin = PythonPlugin::new(settings.python.clone());
    plugin
        .init(settings.plugin_view(), h.clone())
        .expect("init");
    plugin.load_apps().expect("load_apps");
    let mut f = Some(f);
    let mut out = None;
    plugin.run_core(0, &mut |core| {
        if let Some(f) = f.take() {
            out = Some(f(core, &plugin));
        }
    });
    (out.expect("run_core did not call its body"), h.take_logs())
}

/// One request to an app given as source; the outcome and the log lines.
pub fn one_request(code: &str, vars: &Vars, io: &mut FakeIo) -> (Outcome, Vec<String>) {
    with_core_logs(settings_for(code), |core, _| serve(core, vars, io, 0))
}
