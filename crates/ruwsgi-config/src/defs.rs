//! The option table: every option ruwsgi knows, defined exactly once.
//!
//! Each [`OptionDef`] carries its name, aliases, short flag, value kind, default text,
//! category, one-line help and [`Status`]. The raw layer ([`crate::lowargs`]) uses the table
//! to recognise names and decide whether an option takes a value; the high layer
//! ([`crate::hiargs`]) maps each supported option onto a [`crate::Settings`] field; `--help`
//! is generated from it ([`crate::help`]). Options uWSGI has but ruwsgi does not implement
//! yet are listed with [`Status::NotYet`] so that using one is a clear error instead of a
//! silently ignored protection.

/// What kind of value an option takes, which also decides how the command line reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A boolean: bare = true; `0`/`false`/`off`/`no` = false; anything else true.
    Flag,
    /// A non-negative integer.
    Int,
    /// A byte count; `k`/`m`/`g` suffixes multiply by 1024.
    Size,
    /// A number of seconds.
    Seconds,
    /// A free string; the last occurrence wins.
    Str,
    /// A filesystem path; the last occurrence wins.
    Path,
    /// An accumulating option: every occurrence adds one value.
    List,
    /// An octal file mode; the value is optional (bare = 0666).
    Mode,
    /// A boolean that uWSGI declares as an optional number: bare = on, `0` = off. On the
    /// command line the next word is taken only when it is a number.
    Switch,
    /// Loads a configuration file where it appears (`ini`, `yaml`, ...).
    Config,
    /// `set`-style `key=value` definitions, applied where they appear.
    Assign,
    /// A string whose value is optional (bare = the option's default behaviour). On the
    /// command line the value must be attached: `--name=value`.
    OptText,
    /// Stops normal processing and prints something (`help`, `version`, `show-config`).
    Command,
}

impl Kind {
    /// Whether the command line reads a value for this option.
    pub fn arg(self) -> Arg {
        match self {
            Kind::Flag | Kind::Command => Arg::None,
            Kind::Mode | Kind::Switch | Kind::OptText => Arg::Optional,
            _ => Arg::Required,
        }
    }

    /// For [`Arg::Optional`] kinds: whether the next command-line word is this option's
    /// value rather than the next argument.
    pub fn takes_word(self, word: &str) -> bool {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        match self {
            // `660`, `0660`
            Kind::Mode => {
                (3..=4).contains(&word.len()) && word.bytes().all(|b| matches!(b, b'0'..=b'7'))
            }
            Kind::Switch => digits(word) && word.len() <= 9,
            _ => false,
        }
    }

    /// The placeholder shown in `--help`.
    pub fn metavar(self) -> &'static str {
        match self {
            Kind::Flag | Kind::Command => "",
            Kind::Int => "N",
            Kind::Size => "BYTES",
            Kind::Seconds => "SECS",
            Kind::Str | Kind::List => "VALUE",
            Kind::Path => "PATH",
            Kind::Mode => "[MODE]",
            Kind::Switch => "[N]",
            Kind::OptText => "[=VALUE]",
            Kind::Config => "FILE[:SECTION]",
            Kind::Assign => "KEY=VALUE",
        }
    }
}

/// How the command line treats the word after an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// Never takes the next word; a value is only possible as `--name=value`.
    None,
    /// `--name=value`, or the next word when it looks like a value of this kind.
    Optional,
    /// Always takes a value: `--name=value` or the next word.
    Required,
}

/// Grouping used by `--help`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Category {
    /// Sockets and protocol limits.
    Sockets,
    /// Master and worker processes.
    Processes,
    /// The Python plugin.
    Python,
    /// Logging.
    Logging,
    /// Configuration loading and program commands.
    Config,
    /// The uWSGI API subsystems apps use (RPC, ...).
    Api,
    /// Static files served by the workers.
    Static,
    /// Signals, timers, crons, mule farms and alarms.
    Signals,
    /// Subsystems ruwsgi does not implement yet.
    Other,
}

impl Category {
    /// All categories in `--help` order.
    pub const ALL: [Category; 9] = [
        Category::Sockets,
        Category::Processes,
        Category::Python,
        Category::Logging,
        Category::Config,
        Category::Api,
        Category::Static,
        Category::Signals,
        Category::Other,
    ];

    /// The heading shown in `--help`.
    pub fn title(self) -> &'static str {
        match self {
            Category::Sockets => "Sockets and protocols",
            Category::Processes => "Processes",
            Category::Python => "Python",
            Category::Logging => "Logging",
            Category::Config => "Configuration and commands",
            Category::Api => "uWSGI API subsystems",
            Category::Static => "Static files",
            Category::Signals => "Signals, timers, cron, mules and alarms",
            Category::Other => "Other",
        }
    }

    /// A note `--help` prints under the heading, for what no single option says.
    pub fn note(self) -> Option<&'static str> {
        match self {
            Category::Logging => Some(
                "Request log lines are buffered per core and written at most 20 ms later (or\n\
                 once 16 KiB are waiting): logging costs no system call per request, and a\n\
                 worker killed with SIGKILL loses at most its last 20 ms of request log lines.",
            ),
            Category::Static => Some(
                "Maps are tried in order, before the app; the first map whose prefix matches\n\
                 and whose file exists answers (GET/HEAD, sendfile, Last-Modified/ETag 304s,\n\
                 single Range 206s). A missing file goes to the app. Paths with `..`, `\\`,\n\
                 NUL, or resolving outside the mapped directory (symlinks included, unless\n\
                 under static-safe) get 403.",
            ),
            _ => None,
        }
    }
}

/// Whether ruwsgi implements an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Implemented.
    Supported,
    /// A real uWSGI option that ruwsgi does not implement yet; using it is an error.
    NotYet,
}

/// One option, defined once.
#[derive(Debug, Clone, Copy)]
pub struct OptionDef {
    /// The canonical long name (`processes`).
    pub name: &'static str,
    /// Other long names (`workers`).
    pub aliases: &'static [&'static str],
    /// The single-letter command-line form (`p`).
    pub short: Option<char>,
    /// The kind of value.
    pub kind: Kind,
    /// The default, as text for `--help` (empty = none).
    pub default: &'static str,
    /// The `--help` group.
    pub category: Category,
    /// One line of help.
    pub help: &'static str,
    /// Implemented or not yet.
    pub status: Status,
}

impl OptionDef {
    /// Whether `name` is this option's name or one of its aliases.
    pub fn matches(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

/// A supported option.
const fn opt(
    name: &'static str,
    kind: Kind,
    category: Category,
    default: &'static str,
    help: &'static str,
) -> OptionDef {
    OptionDef {
        name,
        aliases: &[],
        short: None,
        kind,
        default,
        category,
        help,
        status: Status::Supported,
    }
}

/// A uWSGI option ruwsgi does not implement yet.
const fn later(name: &'static str, kind: Kind, help: &'static str) -> OptionDef {
    OptionDef {
        status: Status::NotYet,
        ..opt(name, kind, Category::Other, "", help)
    }
}

impl OptionDef {
    const fn aka(self, aliases: &'static [&'static str]) -> OptionDef {
        OptionDef { aliases, ..self }
    }

    const fn short(self, c: char) -> OptionDef {
        OptionDef {
            short: Some(c),
            ..self
        }
    }
}

use Category::{
    Api, Config as Cfg, Logging as Log, Processes as Proc, Python as Py, Signals as Sig,
    Sockets as Sock, Static as Stat,
};
use Kind::*;

/// Every option, supported ones first, in `--help` order within each category.
pub static OPTIONS: &[OptionDef] = &[
    // ---- sockets and protocols ----
    opt(
        "socket",
        List,
        Sock,
        "",
        "bind a uwsgi-protocol socket (:port binds 127.0.0.1)",
    )
    .aka(&["uwsgi-socket"])
    .short('s'),
    opt(
        "http-socket",
        List,
        Sock,
        "",
        "bind an HTTP/1.1 socket served by the workers",
    ),
    opt("http11-socket", List, Sock, "", "same as http-socket"),
    opt(
        "http",
        List,
        Sock,
        "",
        "same as http-socket (no separate router process)",
    ),
    opt("listen", Int, Sock, "100", "socket listen backlog").short('l'),
    opt(
        "no-defer-accept",
        Flag,
        Sock,
        "off",
        "hand TCP connections to workers before their first bytes arrive",
    ),
    opt(
        "chmod-socket",
        Mode,
        Sock,
        "660",
        "mode of unix sockets (bare = 666)",
    )
    .short('C'),
    opt(
        "buffer-size",
        Size,
        Sock,
        "4096",
        "max size of request vars / HTTP head",
    )
    .short('b'),
    opt(
        "socket-timeout",
        Seconds,
        Sock,
        "4",
        "I/O timeout on client sockets",
    )
    .short('z'),
    opt(
        "http-header-timeout",
        Seconds,
        Sock,
        "30",
        "time allowed to send a request head",
    ),
    opt(
        "http-keepalive-timeout",
        Seconds,
        Sock,
        "30",
        "idle keep-alive connection timeout",
    ),
    opt(
        "http-keepalive",
        Switch,
        Sock,
        "on",
        "accepted for compatibility: HTTP sockets always keep HTTP/1.1 connections alive \
         (0 cannot turn it off); idle ones close after http-keepalive-timeout",
    ),
    opt(
        "post-buffering",
        Size,
        Sock,
        "0",
        "read bodies up to this size before the app runs",
    ),
    opt(
        "limit-post",
        Size,
        Sock,
        "0",
        "max request body size (0 = unlimited)",
    ),
    opt(
        "max-vars",
        Int,
        Sock,
        "64",
        "max vars in a uwsgi packet is twice this",
    )
    .short('v'),
    opt(
        "uwsgi-trusted-peers",
        List,
        Sock,
        "",
        "extra peer addresses trusted for identity vars",
    ),
    opt(
        "dynamic-apps",
        Flag,
        Sock,
        "off",
        "honour UWSGI_FILE & co. vars sent by peers",
    ),
    opt(
        "http-strict-host",
        Flag,
        Sock,
        "off",
        "reject HTTP/1.1 requests without Host",
    ),
    // ---- processes ----
    opt(
        "master",
        Flag,
        Proc,
        "on",
        "accepted for compatibility: the master always runs",
    )
    .short('M'),
    opt("processes", Int, Proc, "1", "number of worker processes")
        .aka(&["workers"])
        .short('p'),
    opt("threads", Int, Proc, "1", "threads per worker"),
    opt(
        "async",
        Int,
        Proc,
        "0",
        "async cores per worker, multiplexed on one thread (0 = off)",
    ),
    opt(
        "greenlet",
        Flag,
        Proc,
        "off",
        "suspend async cores with greenlet (needs async)",
    ),
    opt(
        "ugreen",
        Flag,
        Proc,
        "off",
        "accepted for compatibility: the native suspend engine, the same as greenlet (needs async)",
    ),
    opt(
        "disable-async-warn-on-queue-full",
        Flag,
        Proc,
        "off",
        "do not log when every async core is busy",
    ),
    opt(
        "enable-threads",
        Flag,
        Proc,
        "on",
        "let Python apps start threads",
    )
    .short('T'),
    opt(
        "lazy-apps",
        Flag,
        Proc,
        "off",
        "load the app in each worker, not in the master",
    ),
    opt("lazy", Flag, Proc, "off", "same as lazy-apps"),
    opt(
        "max-requests",
        Int,
        Proc,
        "0",
        "recycle a worker after this many requests",
    )
    .short('R'),
    opt(
        "max-requests-delta",
        Int,
        Proc,
        "0",
        "add (worker id - 1) x this to max-requests",
    ),
    opt(
        "min-worker-lifetime",
        Seconds,
        Proc,
        "10",
        "recycling waits at least this long",
    ),
    opt(
        "worker-reload-mercy",
        Seconds,
        Proc,
        "60",
        "time a stopping worker gets",
    ),
    opt(
        "touch-reload",
        List,
        Proc,
        "",
        "reload the instance gracefully when this file's modification time changes",
    ),
    opt(
        "touch-workers-reload",
        List,
        Proc,
        "",
        "reload only the workers gracefully when this file's modification time changes",
    ),
    opt(
        "touch-chain-reload",
        List,
        Proc,
        "",
        "replace the workers one at a time (chain reload) when this file's modification \
         time changes",
    ),
    opt(
        "master-fifo",
        List,
        Proc,
        "",
        "a FIFO the master creates and reads one-byte commands from (r R q Q w W c s; \
         0-9 select which FIFO is read)",
    ),
    opt(
        "reload-on-rss",
        Int,
        Proc,
        "0",
        "recycle a worker whose resident memory exceeds this many MB after a request (0: off)",
    ),
    opt(
        "reload-on-as",
        Int,
        Proc,
        "0",
        "recycle a worker whose address space exceeds this many MB after a request (0: off)",
    ),
    opt(
        "evil-reload-on-rss",
        Int,
        Proc,
        "0",
        "the master SIGKILLs a worker whose resident memory exceeds this many MB (0: off)",
    ),
    opt(
        "evil-reload-on-as",
        Int,
        Proc,
        "0",
        "the master SIGKILLs a worker whose address space exceeds this many MB (0: off)",
    ),
    opt(
        "max-worker-lifetime",
        Seconds,
        Proc,
        "0",
        "recycle a worker gracefully once it has lived this long (0: off)",
    ),
    opt(
        "max-worker-lifetime-delta",
        Seconds,
        Proc,
        "0",
        "add (worker id - 1) x this to max-worker-lifetime",
    ),
    opt(
        "reload-on-exception",
        Flag,
        Proc,
        "off",
        "recycle a worker after a request whose app raised",
    ),
    opt(
        "harakiri",
        Seconds,
        Proc,
        "0",
        "kill a worker whose request runs longer than this (0: off); the log gets the request \
         and every Python thread's stack first",
    )
    .short('t'),
    opt(
        "harakiri-verbose",
        Flag,
        Proc,
        "off",
        "also log the killed process's current system call and wait channel",
    ),
    opt(
        "harakiri-graceful-timeout",
        Seconds,
        Proc,
        "0",
        "send harakiri-graceful-signal first and SIGKILL only this long after (0: SIGKILL at once)",
    ),
    opt(
        "harakiri-graceful-signal",
        Int,
        Proc,
        "15",
        "the signal number a graceful harakiri sends first",
    ),
    opt(
        "reload-mercy",
        Seconds,
        Proc,
        "",
        "time a reload may take (default: worker mercy)",
    ),
    opt(
        "die-on-term",
        Flag,
        Proc,
        "on",
        "SIGTERM stops the instance gracefully",
    ),
    opt(
        "sigterm-reload",
        Flag,
        Proc,
        "off",
        "SIGTERM reloads instead (uWSGI 2.0)",
    ),
    opt(
        "forkbomb-delay",
        Seconds,
        Proc,
        "2",
        "pause after too many respawns",
    ),
    opt(
        "pidfile",
        Path,
        Proc,
        "",
        "write the master pid to this file",
    ),
    opt(
        "safe-pidfile",
        Path,
        Proc,
        "",
        "write the master pid atomically",
    ),
    opt(
        "vacuum",
        Flag,
        Proc,
        "off",
        "remove unix sockets and pidfiles at exit",
    ),
    opt("uid", Str, Proc, "", "user to run as"),
    opt("gid", Str, Proc, "", "group to run as"),
    opt(
        "need-app",
        Flag,
        Proc,
        "on",
        "exit 22 when no app could be loaded",
    ),
    opt(
        "locks",
        Int,
        Api,
        "0",
        "user locks 0..N for uwsgi.lock(n) / uwsgi.unlock(n)",
    ),
    opt(
        "sharedarea",
        List,
        Api,
        "",
        "add a shared area (ids 0, 1, ...): N pages, or pages=N / size=BYTES",
    )
    .short('A'),
    opt(
        "cache2",
        List,
        Api,
        "",
        "add a named cache: name=NAME,items=N[,blocksize=B,blocks=N,keysize=K,bitmap=1,...]",
    ),
    opt(
        "cache",
        Int,
        Api,
        "0",
        "add a cache named 'default' with N items (before every cache2)",
    ),
    opt(
        "cache-blocksize",
        Size,
        Api,
        "65536",
        "block size (largest value) of the cache made by 'cache'",
    ),
    opt(
        "cache-store",
        Path,
        Api,
        "",
        "save the cache made by 'cache' to this file and restore it at start",
    ),
    opt(
        "cache-store-sync",
        Int,
        Api,
        "0",
        "seconds between saves of cache stores (0: at stop only)",
    ),
    opt(
        "cache-expire-freq",
        Int,
        Api,
        "3",
        "seconds between the master's sweeps of expired cache items",
    ),
    opt(
        "cache-no-expire",
        Flag,
        Api,
        "off",
        "no sweeper (expired items are still never returned)",
    ),
    opt(
        "cache-report-freed-items",
        Flag,
        Api,
        "off",
        "log how many expired items each sweep freed",
    ),
    opt(
        "rpc-max",
        Int,
        Api,
        "64",
        "RPC functions each process can register (uwsgi.register_rpc)",
    ),
    opt(
        "mules",
        Int,
        Proc,
        "0",
        "add this many mules (background processes waiting for signals and messages)",
    ),
    opt(
        "mule",
        List,
        Proc,
        "",
        "add a mule: FILE.py runs that script in it (respawned when it returns); \
         an empty value or true adds a plain mule",
    ),
    opt(
        "spooler",
        List,
        Proc,
        "",
        "a spooler directory (created 0750 if missing) served by spooler-processes \
         spooler processes; uwsgi.spool() writes tasks there",
    )
    .short('Q'),
    opt(
        "spooler-external",
        List,
        Proc,
        "",
        "a spooler directory served by another instance: uwsgi.spool() can write to it, \
         no local process scans it",
    ),
    opt(
        "spooler-processes",
        Int,
        Proc,
        "1",
        "spooler processes per spooler directory",
    ),
    opt(
        "spooler-frequency",
        Int,
        Proc,
        "30",
        "seconds between scans of an idle spooler's directory (uwsgi.spool() wakes it at once)",
    )
    .aka(&["spooler-freq"]),
    opt(
        "spooler-ordered",
        Flag,
        Proc,
        "off",
        "scan in version order and run numeric priority sub-directories first \
         (without it, tasks spooled with a priority never run)",
    ),
    opt(
        "spooler-import",
        List,
        Proc,
        "",
        "import this module (pkg.mod, or a .py file) in the spoolers only",
    )
    .aka(&[
        "spooler-python-import",
        "spooler-py-import",
        "spooler-pyimport",
    ]),
    opt(
        "spooler-max-tasks",
        Int,
        Proc,
        "0",
        "a spooler exits after this many tasks and is respawned (0: never)",
    ),
    opt(
        "spooler-chdir",
        Path,
        Proc,
        "",
        "directory the spooler processes run their tasks in",
    ),
    opt(
        "spooler-quiet",
        Flag,
        Proc,
        "off",
        "do not log each completed task",
    ),
    opt(
        "spooler-harakiri",
        Seconds,
        Proc,
        "0",
        "kill a spooler whose task runs longer than this (0: off); the task stays on disk and \
         runs again",
    ),
    opt(
        "spooler-fsync",
        Flag,
        Proc,
        "off",
        "fsync each spool file and its directory before uwsgi.spool() returns, so accepted \
         tasks survive a power loss too (off, as uWSGI: atomic and safe from any process \
         death, reload or restart, not from a machine crash)",
    ),
    opt(
        "spooler-accept-remote",
        Flag,
        Proc,
        "off",
        "write tasks sent by trusted peers as uwsgi packets with modifier1 17 (off: such \
         packets are refused and the connection closed)",
    ),
    opt(
        "procname-prefix",
        Str,
        Proc,
        "",
        "prefix of every process title",
    ),
    opt(
        "procname-prefix-spaced",
        Str,
        Proc,
        "",
        "prefix of every process title, followed by a space",
    ),
    opt(
        "procname-append",
        Str,
        Proc,
        "",
        "text appended to every process title",
    ),
    opt(
        "procname",
        Str,
        Proc,
        "",
        "title of every worker (and of the master unless procname-master is set)",
    ),
    opt("procname-master", Str, Proc, "", "title of the master"),
    opt(
        "auto-procname",
        Flag,
        Proc,
        "off",
        "title processes as uWSGI does: 'uWSGI master', 'uWSGI worker N', 'uWSGI mule N' \
         (without it, ps shows the command line)",
    ),
    // ---- stats ----
    opt(
        "stats",
        Str,
        Proc,
        "",
        "serve the stats JSON (what uwsgitop reads) on this address, from the master; \
         :port binds 127.0.0.1",
    )
    .aka(&["stats-server"]),
    opt(
        "stats-http",
        Flag,
        Proc,
        "off",
        "the stats server speaks HTTP (GET /metrics gives the Prometheus text)",
    ),
    opt(
        "stats-token",
        Str,
        Proc,
        "",
        "the stats endpoints answer only a client that shows this token: over HTTP as \
         'Authorization: Bearer TOKEN' (else 401), on the raw stats socket as the first line \
         it sends (else the connection is closed)",
    ),
    opt(
        "stats-minified",
        Flag,
        Proc,
        "off",
        "stats JSON without indentation",
    )
    .aka(&["stats-min"]),
    opt(
        "stats-verbose",
        Flag,
        Proc,
        "off",
        "show each busy core's request (method, URI, client address) in the stats",
    ),
    opt(
        "stats-no-cores",
        Flag,
        Proc,
        "off",
        "leave the per-core lists out of the stats",
    ),
    opt(
        "stats-no-metrics",
        Flag,
        Proc,
        "off",
        "leave the metrics out of the stats (ruwsgi never emits them)",
    ),
    opt(
        "stats-prometheus",
        Str,
        Proc,
        "",
        "serve Prometheus metrics (GET /metrics over HTTP) on this address; :port binds 127.0.0.1",
    ),
    // ---- python ----
    opt(
        "wsgi-file",
        Path,
        Py,
        "",
        "load the WSGI app from this script",
    )
    .aka(&["file"]),
    opt(
        "wsgi",
        Str,
        Py,
        "",
        "a module (pkg.mod[:callable]) or a *.py / *.wsgi file",
    ),
    opt(
        "module",
        Str,
        Py,
        "",
        "load the WSGI app from pkg.mod[:callable]",
    )
    .short('w'),
    opt(
        "callable",
        Str,
        Py,
        "application",
        "name of the WSGI callable",
    ),
    opt("mount", List, Py, "", "mount an app: MOUNTPOINT=APP"),
    opt(
        "manage-script-name",
        Flag,
        Py,
        "off",
        "move the mountpoint into SCRIPT_NAME",
    ),
    opt(
        "chdir",
        Path,
        Py,
        "",
        "change to this directory before loading apps",
    ),
    opt("pythonpath", List, Py, "", "add a directory to sys.path").aka(&["python-path", "pp"]),
    opt("home", Path, Py, "", "the virtualenv to use")
        .aka(&["virtualenv", "venv", "pyhome"])
        .short('H'),
    opt("env", List, Py, "", "set KEY=VALUE in the environment"),
    opt(
        "wsgi-disable-file-wrapper",
        Flag,
        Py,
        "off",
        "no wsgi.file_wrapper",
    ),
    opt(
        "py-call-osafterfork",
        Flag,
        Py,
        "off",
        "accepted: at-fork hooks always run",
    ),
    opt(
        "plugins",
        List,
        Py,
        "",
        "python, python3, python3NN, 0:python3, http: built in, accepted; notfound: \
         requests no app serves get 404 (with need-app = false)",
    )
    .aka(&["plugin", "need-plugin", "need-plugins"]),
    // ---- options that must start (issue 13): detaching, pidfile2, reload policy,
    // Python extras, compatibility flags ----
    opt(
        "daemonize",
        Path,
        Proc,
        "",
        "detach from the terminal at start and log to this file (logto wins if given)",
    )
    .short('d'),
    opt(
        "daemonize2",
        Path,
        Proc,
        "",
        "as daemonize, but detach after the apps are loaded (start-up errors reach the terminal)",
    ),
    opt(
        "pidfile2",
        Path,
        Proc,
        "",
        "write the master pid to this file after privileges are dropped",
    ),
    opt(
        "master-as-root",
        Flag,
        Proc,
        "off",
        "with uid/gid: the master stays root, each child drops privileges; apps then \
         load in the workers (as lazy-apps), never as root",
    ),
    opt(
        "exit-on-reload",
        Flag,
        Proc,
        "off",
        "a reload request (SIGHUP, uwsgi.reload(), py-autoreload) stops the instance instead",
    ),
    opt(
        "attach-daemon",
        List,
        Proc,
        "",
        "run this shell command beside the instance: respawned when it exits, stopped \
         (SIGTERM, then SIGKILL after worker-reload-mercy) and restarted on reloads",
    ),
    opt(
        "honour-range",
        Flag,
        Proc,
        "",
        "accepted: static files always answer single Range requests (206)",
    ),
    opt(
        "thunder-lock",
        Flag,
        Proc,
        "",
        "accepted: workers never race on accept (EPOLLEXCLUSIVE), nothing to turn on",
    ),
    opt(
        "plugins-dir",
        List,
        Py,
        "",
        "accepted: every plugin ruwsgi has is built in, nothing is loaded from a directory",
    )
    .aka(&["plugin-dir"]),
    opt(
        "py-autoreload",
        Seconds,
        Py,
        "0",
        "every N seconds check the files of loaded modules; a change reloads the instance",
    )
    .aka(&["py-auto-reload", "python-autoreload", "python-auto-reload"]),
    opt(
        "py-auto-reload-ignore",
        List,
        Py,
        "",
        "a module py-autoreload does not watch",
    ),
    opt(
        "wsgi-accept-buffer",
        Flag,
        Py,
        "off",
        "response items may be any buffer (bytearray, memoryview, array): their bytes are sent",
    )
    .aka(&["wsgi-accept-buffers"]),
    opt(
        "single-interpreter",
        Flag,
        Py,
        "",
        "accepted: ruwsgi always runs one interpreter per process",
    )
    .short('i'),
    opt(
        "post-buffering-bufsize",
        Size,
        Sock,
        "",
        "accepted: bodies are read straight into their buffer, no chunk size to set",
    ),
    // ---- logging ----
    opt(
        "logdate",
        OptText,
        Log,
        "off",
        "prefix server log lines (not request lines) with the date: bare or true = \
         'Sun Dec  6 10:00:00 2026 - ', a value = that strftime format",
    )
    .aka(&["log-date"]),
    opt(
        "logto",
        Path,
        Log,
        "",
        "append logs to this file instead of stderr",
    ),
    opt(
        "disable-logging",
        Flag,
        Log,
        "off",
        "no per-request log lines",
    )
    .short('L'),
    opt(
        "memory-report",
        Flag,
        Log,
        "off",
        "each worker samples its memory after every request and logs it before the request \
         line (also fills rss/vsz in the stats)",
    )
    .short('m'),
    opt(
        "log-format",
        Str,
        Log,
        "",
        "request log template with %(var)",
    )
    .aka(&["logformat"]),
    opt(
        "log-x-forwarded-for",
        Flag,
        Log,
        "off",
        "log X-Forwarded-For as the address",
    ),
    // ---- configuration and commands ----
    opt(
        "strict",
        Flag,
        Cfg,
        "off",
        "unknown keys in config files are errors",
    ),
    opt(
        "set",
        Assign,
        Cfg,
        "",
        "set an option, or define a %(placeholder)",
    )
    .short('S'),
    opt(
        "set-placeholder",
        Assign,
        Cfg,
        "",
        "define a %(placeholder)",
    )
    .aka(&["set-ph"]),
    opt(
        "ini",
        Config,
        Cfg,
        "",
        "load an ini file (section default: uwsgi)",
    ),
    opt("yaml", Config, Cfg, "", "load a YAML file")
        .aka(&["yml"])
        .short('y'),
    opt("json", Config, Cfg, "", "load a JSON file")
        .aka(&["js"])
        .short('j'),
    opt("toml", Config, Cfg, "", "load a TOML file"),
    opt(
        "show-config",
        Command,
        Cfg,
        "",
        "print the options as they will be used, as one ini section, and exit",
    ),
    opt("help", Command, Cfg, "", "print this help and exit").short('h'),
    opt(
        "reload",
        Str,
        Cfg,
        "",
        "send a graceful reload (SIGHUP) to the master whose pid is in this file, and exit",
    ),
    opt(
        "stop",
        Str,
        Cfg,
        "",
        "stop the master whose pid is in this file at once (SIGINT), and exit",
    ),
    opt("version", Command, Cfg, "", "print the version and exit"),
    // ---- static files (issue 13) ----
    opt(
        "static-map",
        List,
        Stat,
        "",
        "/URL=DIR: serve DIR/rest for /URL/rest (first matching map wins)",
    ),
    opt(
        "static-map2",
        List,
        Stat,
        "",
        "/URL=DIR: serve DIR/URL/rest (the whole path appended to DIR)",
    ),
    opt(
        "static-check",
        List,
        Stat,
        "",
        "DIR: serve DIR/path for any request path that names a file there",
    )
    .aka(&["check-static"]),
    opt(
        "static-index",
        List,
        Stat,
        "",
        "file names tried, in order, when a directory is requested",
    ),
    opt(
        "static-skip-ext",
        List,
        Stat,
        "",
        "never serve files ending with this (the app gets them)",
    ),
    opt(
        "static-safe",
        List,
        Stat,
        "",
        "DIR that symlinks under a mapped directory may point into",
    ),
    opt(
        "static-expires-type",
        List,
        Stat,
        "",
        "MIME/TYPE=SECS: Expires and Cache-Control max-age by content type",
    ),
    opt(
        "static-expires",
        List,
        Stat,
        "",
        "REGEX SECS: Expires and max-age when the file's path matches",
    ),
    opt(
        "static-expires-uri",
        List,
        Stat,
        "",
        "REGEX SECS: Expires and max-age when REQUEST_URI matches",
    ),
    opt(
        "static-expires-path-info",
        List,
        Stat,
        "",
        "REGEX SECS: Expires and max-age when PATH_INFO matches",
    ),
    opt(
        "static-gzip",
        List,
        Stat,
        "",
        "REGEX: for matching files, send FILE.gz if it exists and the client accepts gzip",
    ),
    opt(
        "static-gzip-all",
        Flag,
        Stat,
        "off",
        "send FILE.gz for every static file when it exists and the client accepts gzip",
    ),
    opt(
        "mimefile",
        List,
        Stat,
        "/etc/mime.types",
        "mime.types-style file read over the built-in table (missing default: skipped)",
    )
    .aka(&["mime-file"]),
    opt(
        "offload-threads",
        Int,
        Stat,
        "0",
        "threads per worker sending big static files (the connection closes after)",
    )
    .aka(&["offload-thread"]),
    // ---- signals, timers, cron, mules and alarms ----
    opt(
        "timer",
        List,
        Sig,
        "",
        "SIG SECS: the master routes uWSGI signal SIG every SECS seconds",
    )
    .aka(&["signal-timer"]),
    opt(
        "rbtimer",
        List,
        Sig,
        "",
        "SIG SECS: like timer, with one-second resolution",
    )
    .aka(&["signal-rbtimer"]),
    opt(
        "cron",
        List,
        Sig,
        "",
        "MIN HOUR DAY MONTH WEEKDAY COMMAND: the master runs the shell command \
         (-1: any, -N: every N)",
    ),
    opt(
        "unique-cron",
        List,
        Sig,
        "",
        "like cron, but not started again while the previous run is alive",
    ),
    opt(
        "cron2",
        List,
        Sig,
        "",
        "minute=M,hour=H,day=D,month=M,week=W,unique=0|1,harakiri=N COMMAND \
         (missing fields: any)",
    ),
    opt(
        "touch-signal",
        List,
        Sig,
        "",
        "FILE SIG: route uWSGI signal SIG when FILE's modification time changes",
    ),
    opt(
        "farm",
        List,
        Sig,
        "",
        "NAME:1,2,...: a mule farm (mule ids from 1) sharing one message queue",
    ),
    opt(
        "mule-harakiri",
        Seconds,
        Sig,
        "0",
        "kill a mule whose signal handler runs longer than this (0: no limit)",
    ),
    opt(
        "mule-msg-size",
        Size,
        Sig,
        "0",
        "socket buffer of mule message queues (0: the kernel's default)",
    ),
    opt(
        "mule-msg-recv-size",
        Size,
        Sig,
        "65536",
        "longest mule message read (longer ones are truncated)",
    ),
    opt(
        "signal-bufsize",
        Size,
        Sig,
        "0",
        "socket buffer of signal channels (0: the kernel's default)",
    ),
    opt(
        "mule-reload-mercy",
        Seconds,
        Sig,
        "60",
        "time a stopping mule gets before SIGKILL",
    ),
    opt(
        "touch-mules-reload",
        List,
        Sig,
        "",
        "respawn every mule when this file's modification time changes",
    ),
    opt(
        "alarm",
        List,
        Sig,
        "",
        "NAME PLUGIN:ARGS: an alarm (cmd:COMMAND, signal:SIG, mule:ID, log:PREFIX)",
    ),
    opt(
        "alarm-log",
        List,
        Sig,
        "",
        "NAME[,NAME...] REGEXP: raise the alarms for log lines matching REGEXP",
    )
    .aka(&["log-alarm"]),
    opt(
        "not-alarm-log",
        List,
        Sig,
        "",
        "NAME[,NAME...] REGEXP: a matching log line raises nothing and skips later rules",
    )
    .aka(&["not-log-alarm"]),
    opt(
        "alarm-backlog",
        List,
        Sig,
        "",
        "NAME: raise this alarm when a listen queue is full",
    )
    .aka(&["alarm-lq", "alarm-listen-queue"]),
    opt(
        "alarm-segfault",
        List,
        Sig,
        "",
        "NAME: raise this alarm when a process crashes with SIGSEGV",
    ),
    opt(
        "alarm-freq",
        Seconds,
        Sig,
        "3",
        "an alarm skips a message identical to its previous one within this time",
    ),
    opt(
        "alarm-msg-size",
        Size,
        Sig,
        "8192",
        "longest alarm message (longer uwsgi.alarm() messages are dropped)",
    ),
    // ---- not implemented yet ----
    later("gevent", Int, "gevent loop"),
    later("route", List, "internal routing"),
    later("cheaper", Int, "adaptive process spawning"),
    later("idle", Seconds, "idle mode"),
    later("enable-metrics", Flag, "the metrics subsystem"),
    later("queue", Int, "the shared queue"),
    later("cgi-mode", Flag, "CGI mode").short('c'),
    later("log-maxsize", Size, "log rotation"),
    later("req-logger", List, "request loggers"),
    later("logger", List, "loggers"),
];

/// Finds an option by long name or alias.
pub fn lookup(name: &str) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|d| d.matches(name))
}

/// Finds an option by its short flag.
pub fn lookup_short(c: char) -> Option<&'static OptionDef> {
    OPTIONS.iter().find(|d| d.short == Some(c))
}

/// The option name or alias that an unknown key `key` most likely meant, if any.
///
/// The rule that separates typos from custom keys (values for the app and for `%(key)`):
/// - equal after folding `_` to `-` and ASCII case (`http_socket`, `Processes`): a match
///   whatever the length;
/// - otherwise the folded key must be within a few edits (insertions, deletions,
///   substitutions, swaps of two neighbours) of a name, where the allowance depends on the
///   shorter of the two: under 4 characters none, 4 to 6 characters one, 7 or more two.
///
/// Short names get no slack because a couple of edits turn any 3- or 4-letter word into
/// some option (`host` is two edits from `home`, `name` too); `secret` (6) is two edits
/// from `socket` and stays a custom key, while `process` (7) is two from `processes`.
pub fn near_option(key: &str) -> Option<&'static str> {
    let folded: String = key
        .chars()
        .map(|c| {
            if c == '_' {
                '-'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    OPTIONS
        .iter()
        .flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()))
        .filter_map(|name| {
            let allowed = match folded.len().min(name.len()) {
                0..=3 => 0,
                4..=6 => 1,
                _ => 2,
            };
            let distance = edit_distance(&folded, name);
            (distance <= allowed).then_some((distance, name))
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

/// Edit distance over bytes (option names are ASCII) counting insertions, deletions,
/// substitutions and swaps of two adjacent bytes as one edit each.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    // Three rows of the dynamic-programming table: i-2, i-1 and i.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_aliases_and_shorts_are_unique() {
        let mut names = HashSet::new();
        let mut shorts = HashSet::new();
        for d in OPTIONS {
            for n in std::iter::once(&d.name).chain(d.aliases) {
                assert!(names.insert(*n), "duplicate option name {n}");
            }
            if let Some(c) = d.short {
                assert!(shorts.insert(c), "duplicate short flag -{c}");
            }
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(lookup("workers").unwrap().name, "processes");
        assert_eq!(lookup_short('p').unwrap().name, "processes");
        assert_eq!(lookup("route").unwrap().status, Status::NotYet);
        assert!(lookup("no-such-option").is_none());
    }

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("harakri", "harakiri"), 1);
        assert_eq!(
            edit_distance("procesess", "processes"),
            1,
            "a swap is one edit"
        );
        assert_eq!(edit_distance("process", "processes"), 2);
        assert_eq!(edit_distance("secret", "socket"), 2);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }

    #[test]
    fn near_options_and_custom_keys() {
        for (key, meant) in [
            ("harakri", "harakiri"),
            ("process", "processes"),
            ("procesess", "processes"),
            ("http_socket", "http-socket"),
            ("Processes", "processes"),
            ("HTTP-SOCKET", "http-socket"),
            ("UID", "uid"),
            ("PP", "pp"),
            ("wsgi_file", "wsgi-file"),
            ("chdri", "chdir"),
            ("sockt", "socket"),
            ("worker", "workers"),
            ("max-request", "max-requests"),
        ] {
            assert_eq!(near_option(key), Some(meant), "{key}");
        }
        for key in [
            "acc-custom",
            "my-custom",
            "project",
            "base",
            "name",
            "host",
            "port",
            "app",
            "envs",
            "uidd",
            "user",
            "group",
            "domain",
            "secret",
            "logdir",
            "rundir",
            "socketdir",
            "workdir",
            "appname",
            "timeout",
        ] {
            assert_eq!(near_option(key), None, "{key}");
        }
    }
}
