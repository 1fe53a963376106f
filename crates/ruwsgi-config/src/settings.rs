//! The validated, typed view of the configuration ("high" layer).
//!
//! Every other crate reads its settings from here and never from raw option strings. The
//! builder in this crate fills a [`Settings`] from the collected raw options after defaults,
//! placeholders and validation; each field names the option(s) it comes from.
//!
//! Design decision: settings are grouped by consumer. [`SocketSettings`] and
//! [`RequestSettings`] are read by the binder and the workers, [`ProcessSettings`] by the
//! master, [`LogSettings`] by the log set-up, and each language plugin gets only its own
//! section ([`PythonSettings`] for Python) plus the server-wide view of
//! [`Settings::plugin_view`], so a later plugin does not inherit Python's fields.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::cache_spec::CacheSpec;
pub use crate::signal_spec::{
    AlarmLogRule, AlarmPlugin, AlarmSpec, CommandCron, CronSpec, FarmSpec, TimerSpec,
};

/// The protocol a bound socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The uwsgi binary protocol (`socket`, `uwsgi-socket`).
    Uwsgi,
    /// HTTP/1.1 served by the workers (`http-socket`, `http11-socket`, `http`).
    Http,
}

/// One socket to bind, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// What the socket speaks.
    pub protocol: Protocol,
    /// The address as written: `host:port`, `:port`, `[v6]:port`, or a filesystem path.
    pub address: String,
    /// The option that asked for it (`socket`, `http-socket`, ...), for messages.
    pub option: &'static str,
}

/// A value in `uwsgi.opt`: the raw string after substitution, or a bare flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptValue {
    /// `--flag` on the command line with no value.
    Flag,
    /// Any written value (bytes in Python).
    Value(String),
}

/// Sockets to bind and how.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    /// `socket`/`uwsgi-socket`/`-s`, `http-socket`, `http11-socket`, `http`, in order.
    pub bind: Vec<SocketSpec>,
    /// `listen`/`-l`: backlog (default 100).
    pub listen: u32,
    /// `TCP_DEFER_ACCEPT` on TCP sockets (on; `no-defer-accept` turns it off).
    pub defer_accept: bool,
    /// `chmod-socket`/`-C`: mode for unix sockets; `None` = 0660 (safer default), a bare
    /// `chmod-socket` = 0666.
    pub chmod_socket: Option<u32>,
    /// `uwsgi-trusted-peers`: extra addresses allowed to send identity vars and subsystem
    /// packets (loopback and unix peers are always trusted).
    pub trusted_peers: Vec<String>,
}

impl Default for SocketSettings {
    fn default() -> Self {
        SocketSettings {
            bind: Vec::new(),
            listen: 100,
            defer_accept: true,
            chmod_socket: None,
            trusted_peers: Vec::new(),
        }
    }
}

/// Limits and timeouts of client connections and requests (the workers' section).
#[derive(Debug, Clone)]
pub struct RequestSettings {
    /// `buffer-size`/`-b`: max uwsgi vars block and max HTTP head size (default 4096).
    pub buffer_size: usize,
    /// `socket-timeout`/`-z`: I/O timeout on client sockets (default 4 s).
    pub socket_timeout: Duration,
    /// `http-header-timeout`: time allowed to receive a complete request head (default 30 s).
    pub header_timeout: Duration,
    /// `http-keepalive-timeout`: idle keep-alive connections are closed after this (default 30 s).
    pub keepalive_timeout: Duration,
    /// `post-buffering`: bodies up to this many bytes are read before the app runs (0 = off).
    pub post_buffering: usize,
    /// `limit-post`: max request body in bytes (0 = unlimited); bigger gets 413 unread.
    pub limit_post: u64,
    /// `max-vars`/`-v`: uwsgi packets may carry up to 2 × this many vars (default 64).
    pub max_vars: usize,
    /// `dynamic-apps`: honour `UWSGI_FILE`, `UWSGI_SETENV`, ... from peers (default off).
    pub dynamic_apps: bool,
    /// `http-strict-host`: HTTP/1.1 requests without Host get 400 (default off).
    pub http_strict_host: bool,
    // ---- issue 13 options ----
    /// `plugins = notfound`: a request no app serves gets 404 instead of 500.
    pub notfound: bool,
}

impl Default for RequestSettings {
    fn default() -> Self {
        RequestSettings {
            buffer_size: 4096,
            socket_timeout: Duration::from_secs(4),
            header_timeout: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(30),
            post_buffering: 0,
            limit_post: 0,
            max_vars: 64,
            dynamic_apps: false,
            http_strict_host: false,
            notfound: false,
        }
    }
}

/// What one mule runs (`mules`, `mule`), in option order: mule ids follow it from 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MuleSpec {
    /// Waits for signals and messages (`mules N`, or `mule` with an empty/true value).
    Plain,
    /// Runs this script as `__main__` (`mule = file.py`); when it returns, the mule exits
    /// and is respawned.
    Script(PathBuf),
    /// Calls this callable with no arguments (`mule = package.module:function`); when it
    /// returns, the mule exits and is respawned.
    Callable(String),
}

/// How async cores suspend (`async` mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspendEngine {
    /// No engine: a core only leaves at the `yield`s of a generator response (`yield
    /// uwsgi.wait_fd_read(...)`); `uwsgi.suspend()` is a no-op.
    None,
    /// Each core is a long-lived greenlet switched by the worker's loop (`greenlet`, and
    /// `ugreen`, its alias): `uwsgi.suspend()` works from anywhere in the app.
    Greenlet,
}

/// The master's section: processes, their lifecycle and identity.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// `processes`/`workers`/`-p` (default 1).
    pub workers: usize,
    /// `threads`: cores per worker (default 1).
    pub threads: usize,
    /// `async`: async cores per worker, multiplexed on one thread (0 = off, the default).
    /// Never combined with `threads` > 1 (refused when the settings are built).
    pub async_cores: usize,
    /// How an async core suspends inside ordinary code (`greenlet`, `ugreen`); the
    /// generator pattern works with either.
    pub suspend_engine: SuspendEngine,
    /// Log when every async core is busy (off with `disable-async-warn-on-queue-full`).
    pub async_warn_queue_full: bool,
    /// `enable-threads`/`-T` (default on).
    pub enable_threads: bool,
    /// `lazy-apps`/`lazy`: load the app in each worker instead of the master.
    pub lazy_apps: bool,
    /// `max-requests`/`-R` (0 = off).
    pub max_requests: u64,
    /// `max-requests-delta`: worker N recycles after max-requests + (N-1) × delta.
    pub max_requests_delta: u64,
    /// `min-worker-lifetime` (default 10 s): recycling waits at least this long.
    pub min_worker_lifetime: Duration,
    /// `worker-reload-mercy` (default 60 s): time a stopping worker gets before SIGKILL.
    pub worker_reload_mercy: Duration,
    /// `harakiri` and its companions.
    pub harakiri: HarakiriSettings,
    /// Memory and lifetime recycling.
    pub recycle: RecycleSettings,
    /// `touch-reload`: files whose modification time reloads the instance.
    pub touch_reload: Vec<PathBuf>,
    /// `touch-workers-reload`: ... reloads the workers only.
    pub touch_workers_reload: Vec<PathBuf>,
    /// `touch-chain-reload`: ... replaces the workers one at a time.
    pub touch_chain_reload: Vec<PathBuf>,
    /// `reload PIDFILE` / `stop PIDFILE`: signal that master and exit instead of starting.
    pub signal_pidfile: Option<(PidfileAction, PathBuf)>,
    /// `master-fifo`: the master's command FIFOs (the first is read until `0`-`9` selects
    /// another).
    pub master_fifo: Vec<PathBuf>,
    /// `reload-mercy`: time a whole reload or graceful stop may take (default = worker mercy).
    pub reload_mercy: Duration,
    /// `die-on-term` (default on): SIGTERM stops the instance gracefully.
    pub die_on_term: bool,
    /// `sigterm-reload`: SIGTERM reloads instead (uWSGI 2.0 behaviour).
    pub sigterm_reload: bool,
    /// `forkbomb-delay` (default 2 s): pause after too many respawns in one second.
    pub forkbomb_delay: Duration,
    /// `pidfile` (written by the master at start).
    pub pidfile: Option<PathBuf>,
    /// `safe-pidfile` (written atomically).
    pub safe_pidfile: Option<PathBuf>,
    /// `vacuum`: remove unix sockets and pidfiles at exit.
    pub vacuum: bool,
    /// `uid`: user name or number to switch to before loading the app.
    pub uid: Option<String>,
    /// `gid`: group name or number to switch to before loading the app.
    pub gid: Option<String>,
    /// `need-app` (default on): exit 22 when no app could be loaded.
    pub need_app: bool,
    /// `procname-prefix` (as written) or `procname-prefix-spaced` (with a space added),
    /// prepended to every process title.
    pub procname_prefix: Option<String>,
    /// `procname-append`, appended to every process title.
    pub procname_append: Option<String>,
    /// `procname`: the title of every worker (instead of the `auto-procname` one).
    pub procname: Option<String>,
    /// `procname-master`: the master's title.
    pub procname_master: Option<String>,
    /// `auto-procname`: name processes `uWSGI master`, `uWSGI worker N`, `uWSGI mule N`.
    pub auto_procname: bool,
    /// `chdir`: directory to enter before loading apps.
    pub chdir: Option<PathBuf>,
    /// `env`: `KEY=VALUE` set in the process environment before loading apps.
    pub env: Vec<(String, String)>,
    /// `mules` and `mule`, in option order.
    pub mules: Vec<MuleSpec>,
    // ---- issue 13 options ----
    /// `daemonize`/`-d`: detach at start, logging to this file (unless `logto`).
    pub daemonize: Option<PathBuf>,
    /// `daemonize2`: detach after the apps are loaded, logging to this file (unless `logto`).
    pub daemonize2: Option<PathBuf>,
    /// `pidfile2`: the master pid, written after privileges are dropped.
    pub pidfile2: Option<PathBuf>,
    /// `master-as-root`: with `uid`/`gid`, the master keeps root and each child drops
    /// privileges after fork; apps are then loaded in the workers.
    pub master_as_root: bool,
    /// `exit-on-reload`: a reload request stops the instance (exit 0) instead.
    pub exit_on_reload: bool,
    /// `attach-daemon`: shell commands run beside the instance, in option order.
    pub daemons: Vec<String>,
}

impl ProcessSettings {
    /// Whether children drop privileges themselves (`master-as-root` with `uid`/`gid`).
    pub fn children_drop_privileges(&self) -> bool {
        self.master_as_root && (self.uid.is_some() || self.gid.is_some())
    }

    /// Whether apps are loaded in each worker rather than in the master: `lazy-apps`, or
    /// `master-as-root` with `uid`/`gid` (application code never runs as root).
    pub fn apps_in_workers(&self) -> bool {
        self.lazy_apps || self.children_drop_privileges()
    }
}

/// What `reload PIDFILE` / `stop PIDFILE` ask of a running master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidfileAction {
    /// `reload`: a graceful reload (SIGHUP).
    Reload,
    /// `stop`: an immediate stop (SIGINT).
    Stop,
}

/// When a worker is replaced besides `max-requests` (all off by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecycleSettings {
    /// `reload-on-rss` (bytes; 0: off): checked by the worker after each request.
    pub rss: u64,
    /// `reload-on-as` (bytes; 0: off): likewise, on the address space.
    pub address_space: u64,
    /// `evil-reload-on-rss` (bytes; 0: off): checked by the master, which kills.
    pub evil_rss: u64,
    /// `evil-reload-on-as` (bytes; 0: off).
    pub evil_address_space: u64,
    /// `max-worker-lifetime` (zero: off).
    pub max_lifetime: Duration,
    /// `max-worker-lifetime-delta`: worker N lives max-worker-lifetime + (N-1) x this.
    pub max_lifetime_delta: Duration,
    /// `reload-on-exception`.
    pub on_exception: bool,
}

impl RecycleSettings {
    /// True when the worker must look at its memory after each request.
    pub fn samples_memory(&self) -> bool {
        self.rss != 0 || self.address_space != 0
    }
}

/// What happens to a request (or a process's own deadline) that runs too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HarakiriSettings {
    /// `harakiri`/`-t`: the longest a worker's request may run (zero: no limit).
    pub timeout: Duration,
    /// `harakiri-verbose`: log `/proc/PID/syscall` and `wchan` of the killed process.
    pub verbose: bool,
    /// `harakiri-graceful-timeout`: time between the graceful signal and SIGKILL (zero: SIGKILL
    /// at once).
    pub graceful_timeout: Duration,
    /// `harakiri-graceful-signal` (default 15, SIGTERM).
    pub graceful_signal: i32,
}

impl Default for HarakiriSettings {
    fn default() -> Self {
        HarakiriSettings {
            timeout: Duration::ZERO,
            verbose: false,
            graceful_timeout: Duration::ZERO,
            graceful_signal: 15,
        }
    }
}

impl ProcessSettings {
    /// Request cores per worker: `async` when set, else `threads` (at least 1).
    pub fn cores(&self) -> usize {
        if self.async_cores > 0 {
            self.async_cores
        } else {
            self.threads.max(1)
        }
    }
}

impl Default for ProcessSettings {
    fn default() -> Self {
        ProcessSettings {
            workers: 1,
            threads: 1,
            async_cores: 0,
            suspend_engine: SuspendEngine::None,
            async_warn_queue_full: true,
            enable_threads: true,
            lazy_apps: false,
            max_requests: 0,
            max_requests_delta: 0,
            min_worker_lifetime: Duration::from_secs(10),
            worker_reload_mercy: Duration::from_secs(60),
            harakiri: HarakiriSettings::default(),
            recycle: RecycleSettings::default(),
            touch_reload: Vec::new(),
            touch_workers_reload: Vec::new(),
            touch_chain_reload: Vec::new(),
            master_fifo: Vec::new(),
            signal_pidfile: None,
            reload_mercy: Duration::from_secs(60),
            die_on_term: true,
            sigterm_reload: false,
            forkbomb_delay: Duration::from_secs(2),
            pidfile: None,
            safe_pidfile: None,
            vacuum: false,
            uid: None,
            gid: None,
            need_app: true,
            procname_prefix: None,
            procname_append: None,
            procname: None,
            procname_master: None,
            auto_procname: false,
            chdir: None,
            env: Vec::new(),
            mules: Vec::new(),
            daemonize: None,
            daemonize2: None,
            pidfile2: None,
            master_as_root: false,
            exit_on_reload: false,
            daemons: Vec::new(),
        }
    }
}

/// The Python plugin's own section.
#[derive(Debug, Clone)]
pub struct PythonSettings {
    /// `wsgi-file`/`file`/`wsgi`(file form): a script defining the callable.
    pub wsgi_file: Option<PathBuf>,
    /// `module`/`-w`/`wsgi`(module form): `pkg.mod` or `pkg.mod:callable`.
    pub module: Option<String>,
    /// `callable` (default `application`).
    pub callable: String,
    /// `mount`: `(mountpoint, app)` where app is a file or module spec.
    pub mounts: Vec<(String, String)>,
    /// `manage-script-name`: move the matched mountpoint from PATH_INFO to SCRIPT_NAME.
    pub manage_script_name: bool,
    /// `pythonpath`/`python-path`/`pp`: prepended to `sys.path`, in order.
    pub pythonpath: Vec<PathBuf>,
    /// `home`/`virtualenv`/`venv`/`pyhome`/`-H`: the virtualenv to use.
    pub home: Option<PathBuf>,
    /// `wsgi-disable-file-wrapper`.
    pub disable_file_wrapper: bool,
    /// `py-call-osafterfork`: run Python's own at-fork hooks in children (always done here;
    /// kept for compatibility).
    pub py_call_osafterfork: bool,
    // ---- issue 13 options ----
    /// `py-autoreload` (0 = off): every so often, compare the mtimes of the files of the
    /// modules in `sys.modules`; a change asks for a graceful reload of the instance.
    pub autoreload: Duration,
    /// `py-auto-reload-ignore`: modules the autoreloader does not watch.
    pub autoreload_ignore: Vec<String>,
    /// `wsgi-accept-buffer`: response items may be any object with the buffer protocol.
    pub accept_buffer: bool,
}

impl Default for PythonSettings {
    fn default() -> Self {
        PythonSettings {
            wsgi_file: None,
            module: None,
            callable: "application".to_string(),
            mounts: Vec::new(),
            manage_script_name: false,
            pythonpath: Vec::new(),
            home: None,
            disable_file_wrapper: false,
            py_call_osafterfork: false,
            autoreload: Duration::ZERO,
            autoreload_ignore: Vec::new(),
            accept_buffer: false,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Default)]
pub struct LogSettings {
    /// `logto`: append logs to this file instead of stderr.
    pub logto: Option<PathBuf>,
    /// `disable-logging`/`-L`: no per-request log lines.
    pub disable_logging: bool,
    /// `log-format`/`logformat`: request log template with `%(var)`.
    pub log_format: Option<String>,
    /// `log-x-forwarded-for`: log X-Forwarded-For as the address.
    pub log_x_forwarded_for: bool,
    // ---- issue 13 options ----
    /// `logdate`/`log-date`: prefix server log lines with the date.
    pub logdate: Option<LogDate>,
    /// `memory-report`/`-m`: each worker samples its memory after every request, prefixes
    /// its request log lines with it and keeps it in the scoreboard (`rss`/`vsz` in stats).
    pub memory_report: bool,
}

/// The date prefix `logdate` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogDate {
    /// Bare, `1` or `true`: C's `ctime` layout (`Sun Dec  6 10:00:00 2026`).
    Ctime,
    /// Any other value: a strftime format (empty gives an empty date).
    Format(String),
}

/// The uWSGI API subsystems (read by the binary when it creates them).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// `rpc-max`: RPC functions each process can register (default 64).
    pub rpc_max: usize,
    /// `locks`: the highest user lock number; locks 0..=N exist (default 0: lock 0).
    pub locks: usize,
    /// `sharedarea`, in order (area ids 0, 1, ...).
    pub sharedareas: Vec<AreaSize>,
    /// `cache2`, in order.
    pub caches: Vec<CacheSpec>,
    /// `cache N`: the legacy cache named `default` (0: none).
    pub legacy_cache: u64,
    /// `cache-blocksize` (the legacy cache's block size).
    pub cache_blocksize: u64,
    /// `cache-store` (the legacy cache's store file).
    pub cache_store: Option<PathBuf>,
    /// `cache-store-sync`: seconds between store saves (0: at stop only).
    pub cache_store_sync: u64,
    /// `cache-expire-freq`: seconds between sweeps.
    pub cache_expire_freq: u64,
    /// `cache-no-expire`: no sweeper.
    pub cache_no_expire: bool,
    /// `cache-report-freed-items`.
    pub cache_report_freed: bool,
}

impl ApiSettings {
    /// Every cache in creation order: the legacy `cache` first (named `default`), then
    /// each `cache2`. The first is the default cache.
    pub fn all_caches(&self) -> Vec<CacheSpec> {
        let mut out = Vec::with_capacity(self.caches.len() + 1);
        if self.legacy_cache > 0 {
            let mut c = CacheSpec::new("default", self.legacy_cache);
            c.blocksize = self.cache_blocksize;
            c.store.clone_from(&self.cache_store);
            c.store_sync = self.cache_store_sync;
            out.push(c);
        }
        for c in &self.caches {
            let mut c = c.clone();
            if c.store_sync == 0 {
                c.store_sync = self.cache_store_sync;
            }
            out.push(c);
        }
        out
    }
}

/// The size of one shared area, as configured (whole pages either way once mapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AreaSize {
    /// `sharedarea N` or `pages=N`.
    Pages(u64),
    /// `size=BYTES`, rounded up to whole pages.
    Bytes(u64),
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            rpc_max: 64,
            locks: 0,
            sharedareas: Vec::new(),
            caches: Vec::new(),
            legacy_cache: 0,
            cache_blocksize: 65536,
            cache_store: None,
            cache_store_sync: 0,
            cache_expire_freq: 3,
            cache_no_expire: false,
            cache_report_freed: false,
        }
    }
}

// ---- static files (issue 13) ----

/// One `static-map` / `static-map2` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticMap {
    /// The URL prefix (`/static`), as written.
    pub mountpoint: String,
    /// The directory (or file) it maps to, as written.
    pub dir: PathBuf,
    /// `static-map2`: the whole request path is appended to `dir`; `static-map` appends
    /// only what follows the mountpoint.
    pub keep_mountpoint: bool,
}

/// An expiry rule: a pattern and a number of seconds.
#[derive(Debug, Clone)]
pub struct ExpiresRule {
    /// What must match.
    pub pattern: regex::Regex,
    /// Lifetime in seconds (Expires = now + this; Cache-Control: max-age=this).
    pub seconds: u64,
}

/// Static file serving, read by the workers.
#[derive(Debug, Clone, Default)]
pub struct StaticSettings {
    /// `static-map` and `static-map2`, in option order (first match wins).
    pub maps: Vec<StaticMap>,
    /// `static-check`/`check-static`: document roots checked for every request path.
    pub check: Vec<PathBuf>,
    /// `static-index`: names tried in a requested directory.
    pub index: Vec<String>,
    /// `static-skip-ext`: suffixes never served as static files.
    pub skip_ext: Vec<String>,
    /// `static-safe`: directories that resolved paths may lie in besides the mapped one.
    pub safe: Vec<PathBuf>,
    /// `static-expires-type`: `(content type, seconds)`.
    pub expires_type: Vec<(String, u64)>,
    /// `static-expires`: matched against the resolved file path.
    pub expires_file: Vec<ExpiresRule>,
    /// `static-expires-uri`: matched against `REQUEST_URI`.
    pub expires_uri: Vec<ExpiresRule>,
    /// `static-expires-path-info`: matched against `PATH_INFO`.
    pub expires_path_info: Vec<ExpiresRule>,
    /// `static-gzip`: resolved paths for which a `.gz` sibling is looked for.
    pub gzip: Vec<regex::Regex>,
    /// `static-gzip-all`: look for a `.gz` sibling of every file.
    pub gzip_all: bool,
    /// `mimefile`/`mime-file`: mime.types files read over the built-in table; empty means
    /// `/etc/mime.types` if it exists.
    pub mimefiles: Vec<PathBuf>,
    /// `offload-threads`: threads per worker that send big files (0 = the core sends).
    pub offload_threads: usize,
}

impl StaticSettings {
    /// Whether any static serving is configured.
    pub fn enabled(&self) -> bool {
        !self.maps.is_empty() || !self.check.is_empty()
    }
}

/// The stats server (`stats`) and the Prometheus endpoint (`stats-prometheus`), both
/// served by the master. Off unless an address is given.
#[derive(Debug, Clone, Default)]
pub struct StatsSettings {
    /// `stats`/`stats-server`: where the JSON stats document is served (`:port` binds
    /// 127.0.0.1; a path or `@name` is a unix socket).
    pub address: Option<String>,
    /// `stats-http`: answer one HTTP request per connection (`/metrics` gives the
    /// Prometheus text, anything else the JSON).
    pub http: bool,
    /// `stats-minified`/`stats-min`: the JSON without indentation.
    pub minified: bool,
    /// `stats-no-cores`: leave out each worker's `cores` list.
    pub no_cores: bool,
    /// `stats-no-metrics`: leave out `metrics` (ruwsgi has no metrics subsystem: accepted
    /// for compatibility, the key is never emitted).
    pub no_metrics: bool,
    /// `stats-prometheus`: a separate HTTP listener serving `GET /metrics`.
    pub prometheus: Option<String>,
    /// `stats-token`: what a client must show to get an answer from either endpoint.
    pub token: Option<String>,
    /// `stats-verbose`: each busy core's request (method, URI, client address) in the
    /// stats; workers then record it per request.
    pub verbose: bool,
}

/// The spooler (`spooler`, `spooler-*`): durable background tasks.
#[derive(Debug, Clone)]
pub struct SpoolerSettings {
    /// `spooler`/`-Q`: directories served by local spooler processes, in option order.
    pub dirs: Vec<PathBuf>,
    /// `spooler-external`: directories `uwsgi.spool()` may write to, served elsewhere.
    pub external: Vec<PathBuf>,
    /// `spooler-processes`: processes per directory (default 1).
    pub processes: usize,
    /// `spooler-frequency`/`spooler-freq`: seconds between scans of an idle spooler
    /// (default 30).
    pub frequency: u64,
    /// `spooler-ordered`: version-sorted scan, numeric priority sub-directories first.
    pub ordered: bool,
    /// `spooler-import`: modules (or `.py` files) imported in the spoolers only.
    pub imports: Vec<String>,
    /// `spooler-max-tasks`: a spooler exits after this many tasks (0: never).
    pub max_tasks: u64,
    /// `spooler-chdir`: the spoolers' working directory.
    pub chdir: Option<PathBuf>,
    /// `spooler-quiet`: no log line per completed task.
    pub quiet: bool,
    /// `spooler-fsync` (default off, as uWSGI): fsync each spool file and its directory
    /// before `spool()` returns.
    pub fsync: bool,
    /// `spooler-accept-remote` (default off): answer remote enqueue packets (modifier1 17)
    /// from trusted peers.
    pub accept_remote: bool,
    /// `spooler-harakiri`: the longest a task may run before the master kills its spooler
    /// (zero: no limit).
    pub harakiri: Duration,
}

impl SpoolerSettings {
    /// Whether any spooler directory (local or external) is configured.
    pub fn enabled(&self) -> bool {
        !self.dirs.is_empty() || !self.external.is_empty()
    }

    /// How many spooler processes the master runs.
    pub fn process_count(&self) -> usize {
        self.dirs.len() * self.processes.max(1)
    }
}

impl Default for SpoolerSettings {
    fn default() -> Self {
        SpoolerSettings {
            dirs: Vec::new(),
            external: Vec::new(),
            processes: 1,
            frequency: 30,
            ordered: false,
            imports: Vec::new(),
            max_tasks: 0,
            chdir: None,
            quiet: false,
            fsync: false,
            accept_remote: false,
            harakiri: Duration::ZERO,
        }
    }
}

/// The signal framework, mules' limits and alarms (the master, the mules and the signal
/// crate read it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalSettings {
    /// `timer`/`signal-timer` and `rbtimer`/`signal-rbtimer`, in option order.
    pub timers: Vec<TimerSpec>,
    /// `cron`, `unique-cron` and `cron2`: shell commands the master runs, in option order.
    pub crons: Vec<CommandCron>,
    /// `touch-signal FILE SIG`: route SIG when FILE's modification time changes.
    pub touch_signals: Vec<(PathBuf, u8)>,
    /// `farm NAME:1,2,...`, in option order (`farmN` targets count from 1 here); every
    /// member id is at most the number of mules.
    pub farms: Vec<FarmSpec>,
    /// `mule-harakiri`: the longest a mule's signal handler or task may run (zero: no limit).
    pub mule_harakiri: Duration,
    /// `mule-msg-size`: socket buffer size of mule message queues (0: the kernel's default).
    pub mule_msg_size: u64,
    /// `mule-msg-recv-size` (default 65536): the longest message a mule reads; longer ones
    /// are truncated.
    pub mule_msg_recv_size: u64,
    /// `signal-bufsize`: socket buffer size of signal channels (0: the kernel's default).
    pub signal_bufsize: u64,
    /// `mule-reload-mercy` (default 60 s): time a stopping mule gets before SIGKILL.
    pub mule_reload_mercy: Duration,
    /// `touch-mules-reload`: files whose modification time respawns every mule.
    pub touch_mules_reload: Vec<PathBuf>,
    /// `alarm NAME PLUGIN:ARGS`, in option order; names are unique.
    pub alarms: Vec<AlarmSpec>,
    /// `alarm-log`/`log-alarm` and `not-alarm-log`/`not-log-alarm` rules, interleaved in
    /// option order; each alarm they name is defined.
    pub alarm_log: Vec<AlarmLogRule>,
    /// `alarm-backlog`/`alarm-lq`/`alarm-listen-queue`: alarms raised when a listen queue
    /// is full.
    pub alarm_backlog: Vec<String>,
    /// `alarm-segfault`: alarms raised when a process crashes with SIGSEGV.
    pub alarm_segfault: Vec<String>,
    /// `alarm-freq` (default 3 s): an alarm skips a message identical to its previous one
    /// sent less than this long ago.
    pub alarm_freq: Duration,
    /// `alarm-msg-size` (default 8192): longer `uwsgi.alarm()` messages are dropped.
    pub alarm_msg_size: u64,
}

impl Default for SignalSettings {
    fn default() -> Self {
        SignalSettings {
            timers: Vec::new(),
            crons: Vec::new(),
            touch_signals: Vec::new(),
            farms: Vec::new(),
            mule_harakiri: Duration::ZERO,
            mule_msg_size: 0,
            mule_msg_recv_size: 65536,
            signal_bufsize: 0,
            mule_reload_mercy: Duration::from_secs(60),
            touch_mules_reload: Vec::new(),
            alarms: Vec::new(),
            alarm_log: Vec::new(),
            alarm_backlog: Vec::new(),
            alarm_segfault: Vec::new(),
            alarm_freq: Duration::from_secs(3),
            alarm_msg_size: 8192,
        }
    }
}

/// Fully validated settings of one instance, by consumer.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Sockets to bind.
    pub sockets: SocketSettings,
    /// Connection and request limits (workers).
    pub requests: RequestSettings,
    /// Processes (master).
    pub processes: ProcessSettings,
    /// Logging.
    pub logging: LogSettings,
    /// The Python plugin's section.
    pub python: PythonSettings,
    /// The uWSGI API subsystems.
    pub api: ApiSettings,
    /// Static files (workers).
    pub statics: StaticSettings,
    /// The stats server and the Prometheus endpoint (master).
    pub stats: StatsSettings,
    /// The spooler.
    pub spooler: SpoolerSettings,
    /// Signals, timers, crons, farms, mule limits and alarms.
    pub signals: SignalSettings,
    /// The collected options, in order, as `uwsgi.opt` shows them (str key, bytes value or
    /// True). Repeated options appear once per occurrence.
    pub opt: Vec<(String, OptValue)>,
    /// The config files that were read (for `%`-magic and messages).
    pub config_files: Vec<PathBuf>,
    /// Non-fatal problems found while loading (missing ini section, ignored `UWSGI_*`
    /// variables, `master = false`); the binary logs them at startup.
    pub warnings: Vec<String>,
    /// Facts worth one line at startup that are not problems: each custom key (a key that
    /// names no option, kept for `uwsgi.opt`), once, with where it was first written.
    pub notices: Vec<String>,
}

/// What every language plugin may read of the server's settings (its own section comes
/// with its constructor).
#[derive(Debug, Clone, Copy)]
pub struct PluginView<'a> {
    /// Processes and their identity (worker count, cores, `chdir`, `env`, pidfile).
    pub processes: &'a ProcessSettings,
    /// Request limits (`buffer-size`, ...).
    pub requests: &'a RequestSettings,
    /// Every option as written (`uwsgi.opt`).
    pub opt: &'a [(String, OptValue)],
}

impl Settings {
    /// The server-wide part a language plugin is given at `init`.
    pub fn plugin_view(&self) -> PluginView<'_> {
        PluginView {
            processes: &self.processes,
            requests: &self.requests,
            opt: &self.opt,
        }
    }
}
