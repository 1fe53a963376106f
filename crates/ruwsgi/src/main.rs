//! `ruwsgi`: an application server implementing the uWSGI API.
//!
//! The binary reads the configuration (command line, config files, `UWSGI_*` variables),
//! then hands the validated settings to the master, which binds, loads the Python app,
//! forks the workers and supervises them. Exit codes: 0 after a clean stop (and for
//! `--help`, `--version`, `--show-config`), 1 for a configuration or start-up error, 22 when
//! no app could be loaded and `need-app` is on.

mod host;

use std::ffi::OsString;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use ruwsgi_config::AreaSize;
use ruwsgi_config::{Command, MuleSpec, Settings};
use ruwsgi_master::spooler::{SpoolerMain, SpoolerStart};
use ruwsgi_master::{
    MasterConfig, Periodic, PeriodicCause, UnixSignals, WorkerMain, WorkerStart, EXIT_RECYCLE,
    EXIT_STOPPED,
};
use ruwsgi_plugin::{Caches, Host, LanguagePlugin, Rpc, SharedArea, UserLocks};
use ruwsgi_python::PythonPlugin;
use ruwsgi_sys::log_line;
use ruwsgi_worker::{ListenSocket, WorkerArgs, WorkerExit};

use crate::host::{ServerHost, Subsystems};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let command = match ruwsgi_config::load(args, env) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ruwsgi: {e}");
            eprintln!("ruwsgi: run `ruwsgi --help` for the list of options");
            return ExitCode::from(1);
        }
    };
    match command {
        Command::Help(text) | Command::Version(text) | Command::ShowConfig(text) => {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
            ExitCode::SUCCESS
        }
        Command::Run(settings) => ExitCode::from(run(*settings).clamp(0, 255) as u8),
    }
}

/// The master asks before re-executing itself whether this binary can still start as the
/// current user: start the language runtime with the instance's settings (as the boot
/// would), check it loaded no library the running master did not, bind nothing, load no
/// app; exit 0, or 1 with the reason as the last stderr line.
fn reexec_probe(settings: &Settings, expected_libraries: &str) -> i32 {
    let plugin = PythonPlugin::new(settings.python.clone());
    let host: Arc<dyn Host> = Arc::new(ServerHost::new(
        ruwsgi_shm::Scoreboard::on_heap(1),
        ruwsgi_master::ProcNames::default(),
        Vec::new(),
        Subsystems {
            rpc: Arc::new(Rpc::default()),
            locks: Arc::new(UserLocks::on_heap(0).expect("one lock on the heap")),
            areas: Arc::new(Vec::new()),
            caches: Arc::new(Caches::default()),
            timeout: settings.requests.socket_timeout,
            spoolers: None,
            signals: None,
            harakiri: std::time::Duration::ZERO,
            mule_harakiri: std::time::Duration::ZERO,
        },
    ));
    let started = plugin
        .init(settings.plugin_view(), host)
        .map_err(|e| e.to_string())
        .and_then(|()| ruwsgi_master::reexec::check_probe_libraries(expected_libraries));
    match started {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ruwsgi: re-exec probe: {e}");
            1
        }
    }
}

/// Detach from the terminal; with `log_there`, stdout and stderr go to `path` (opened
/// before the fork, so a bad path fails in the foreground).
fn daemonize(path: &std::path::Path, log_there: bool) -> std::io::Result<()> {
    let log = if log_there {
        let file = ruwsgi_sys::log::open_log_file(path)
            .map_err(|e| std::io::Error::other(format!("cannot open '{}': {e}", path.display())))?;
        Some(file)
    } else {
        None
    };
    ruwsgi_sys::daemon::daemonize_single_threaded(log)
}

/// Let process titles use the environment strings' bytes after argv (as uWSGI does), so
/// `uWSGI worker 1` fits even behind a short command line.
#[allow(unsafe_code)] // the one place the environment is moved (STYLE R6)
fn make_room_for_titles() {
    // SAFETY: called first thing in `run`, before any thread exists and before anything
    // keeps a pointer into the environment (the settings hold copies of what they read).
    if let Err(e) = unsafe { ruwsgi_sys::process::release_environ_area() } {
        log_line(&format!(
            "ruwsgi: process titles limited to the command line's length: {e}"
        ));
    }
}

fn run(settings: Settings) -> i32 {
    if let Some(expected) = std::env::var_os(ruwsgi_master::reexec::REEXEC_PROBE_ENV) {
        return reexec_probe(&settings, &expected.to_string_lossy());
    }
    make_room_for_titles();
    match &settings.logging.logdate {
        Some(ruwsgi_config::LogDate::Ctime) => ruwsgi_sys::log::set_date_prefix(None),
        Some(ruwsgi_config::LogDate::Format(f)) => {
            ruwsgi_sys::log::set_date_prefix(Some(f.clone()))
        }
        None => {}
    }
    if let Some((action, pidfile)) = &settings.processes.signal_pidfile {
        return signal_pidfile(*action, pidfile);
    }
    // `daemonize`: detach before anything else starts (the process is single-threaded
    // here). A re-executed master is already detached and keeps its descriptors. With
    // `logto` the log goes there, else to the daemonize file. Without a socket it stays in
    // the foreground, so that the error below reaches the terminal.
    let reloaded = ruwsgi_master::reexec::reloads_from_env() > 0;
    let detach = !reloaded && !settings.sockets.bind.is_empty();
    if let (Some(path), true) = (&settings.processes.daemonize, detach) {
        if let Err(e) = daemonize(path, settings.logging.logto.is_none()) {
            eprintln!("ruwsgi: daemonize: {e}");
            return 1;
        }
    }
    // The one place `logto` is applied: before the first log line (the configuration
    // warnings below), so everything the master and its children write goes to the file.
    if let Some(path) = &settings.logging.logto {
        if let Err(e) = ruwsgi_sys::log::redirect_stderr_to(path) {
            eprintln!("ruwsgi: cannot open logto file '{}': {e}", path.display());
            return 1;
        }
    }
    for w in &settings.warnings {
        log_line(&format!("ruwsgi: warning: {w}"));
    }
    for n in &settings.notices {
        log_line(&format!("ruwsgi: {n}"));
    }
    if settings.sockets.bind.is_empty() {
        log_line(
            "ruwsgi: no socket configured: give --http-socket ADDR or --socket ADDR \
             (or http-socket/socket in the config file)",
        );
        return 1;
    }
    let settings = Arc::new(settings);
    let signals = match UnixSignals::install(&settings) {
        Ok(s) => s,
        Err(e) => {
            log_line(&format!("ruwsgi: cannot install signal handlers: {e}"));
            return 1;
        }
    };
    let plugin: Arc<dyn LanguagePlugin> = Arc::new(PythonPlugin::new(settings.python.clone()));
    let names = ruwsgi_master::ProcNames::new(&settings.processes);
    // Created before any app code runs, so functions registered at import time (in the
    // master) are inherited by every child.
    let rpc = Arc::new(Rpc::new(
        settings.api.rpc_max,
        settings.requests.socket_timeout,
    ));
    let worker_rpc = rpc.clone();
    let areas = match map_shared_areas(&settings.api.sharedareas) {
        Ok(a) => Arc::new(a),
        Err(e) => {
            log_line(&format!("ruwsgi: {e}"));
            return 1;
        }
    };
    let caches = match Caches::new(&settings.api.all_caches()) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log_line(&format!("ruwsgi: cannot create the caches: {e}"));
            return 1;
        }
    };
    if let Err(e) = restore_caches(&caches) {
        log_line(&format!("ruwsgi: {e}"));
        return 1;
    }
    let locks = match UserLocks::new(settings.api.locks) {
        Ok(l) => Arc::new(l),
        Err(e) => {
            log_line(&format!(
                "ruwsgi: cannot map the user locks (locks = {}): {e}",
                settings.api.locks
            ));
            return 1;
        }
    };
    // The spooler directories are created (0750) and resolved before anything changes the
    // working directory, as uWSGI does.
    let spoolers = if settings.spooler.enabled() {
        match ruwsgi_spooler::Spoolers::new(&settings.spooler) {
            Ok(s) => Some(Arc::new(s)),
            Err(e) => {
                log_line(&format!("ruwsgi: spooler: {e}"));
                return 1;
            }
        }
    } else {
        None
    };
    // The signal framework: its tables and sockets exist before any app code runs, so
    // handlers and timers registered at import time (in the master) serve every child.
    let mule_files = settings
        .processes
        .mules
        .iter()
        .map(|m| match m {
            MuleSpec::Plain => None,
            MuleSpec::Script(p) => Some(p.display().to_string()),
            MuleSpec::Callable(c) => Some(c.clone()),
        })
        .collect();
    let uwsgi_signals = match ruwsgi_plugin::signal::Signals::new(
        &settings.signals,
        mule_files,
        ruwsgi_master::channel::child_channel,
        settings.requests.socket_timeout,
    ) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            log_line(&format!("ruwsgi: cannot create the signal framework: {e}"));
            return 1;
        }
    };
    let worker_signals = uwsgi_signals.clone();
    let worker_caches = caches.clone();
    let worker_spoolers = spoolers.clone();
    let api = Subsystems {
        rpc,
        locks,
        areas,
        caches: caches.clone(),
        timeout: settings.requests.socket_timeout,
        spoolers: spoolers.clone(),
        signals: Some(uwsgi_signals.clone()),
        harakiri: settings.processes.harakiri.timeout,
        mule_harakiri: settings.signals.mule_harakiri,
    };
    let worker_main: WorkerMain = Box::new(move |start: WorkerStart| -> i32 {
        let listeners = start
            .listeners
            .into_iter()
            .map(|l| ListenSocket::new(l.fd, l.is_unix, l.protocol, l.name))
            .collect();
        let exit = ruwsgi_worker::run(WorkerArgs {
            id: start.child.id,
            settings: start.child.settings,
            listeners,
            plugin: start.child.plugin,
            scoreboard: start.child.scoreboard,
            channel: start.child.channel,
            rpc: worker_rpc.clone(),
            caches: worker_caches.clone(),
            spoolers: worker_spoolers.clone(),
            uwsgi_signals: Some(worker_signals.clone()),
        });
        match exit {
            WorkerExit::Stopped => EXIT_STOPPED,
            WorkerExit::Recycled => EXIT_RECYCLE,
            WorkerExit::Failed => 1,
        }
    });
    let periodic = cache_tasks(&settings, &caches);
    let mut config = MasterConfig::new(
        settings.clone(),
        plugin,
        Box::new(move |scoreboard, mule_board, socket_fds| {
            Arc::new(
                ServerHost::new(scoreboard.clone(), names, socket_fds.to_vec(), api)
                    .with_mule_board(mule_board.cloned()),
            ) as Arc<dyn Host>
        }),
        worker_main,
    );
    config.periodic = periodic;
    config.signals = Some(uwsgi_signals.clone());
    if let Some(spoolers) = spoolers.filter(|s| s.process_count() > 0) {
        config.spooler_board = Some(spoolers.board().clone());
        config.spooler_main = Some(spooler_main(spoolers, uwsgi_signals));
    }
    match ruwsgi_master::run(config, Box::new(signals)) {
        Ok(code) => code,
        Err(e) => {
            log_line(&format!("ruwsgi: {e}"));
            e.exit_code()
        }
    }
}

/// What a spooler child runs: `spooler-import`, then the spooler loop with the plugin
/// running each task.
fn spooler_main(
    spoolers: Arc<ruwsgi_spooler::Spoolers>,
    signals: Arc<ruwsgi_plugin::signal::Signals>,
) -> SpoolerMain {
    Box::new(move |start: SpoolerStart| -> i32 {
        let plugin = start.child.plugin;
        for module in &spoolers.settings().imports {
            if let Err(e) = plugin.spooler_import(module) {
                log_line(&format!("spooler {}: {e}", start.child.id));
            }
        }
        let mut runner = |path: &std::path::Path, task: &ruwsgi_spooler::Task| {
            plugin.run_spooler_task(path, task)
        };
        let id = start.child.id;
        let row = spoolers.board().core(id, 0);
        let limit = spoolers.settings().harakiri;
        let who = format!("spooler {id}");
        let hook = ruwsgi_spooler::run::SignalHook {
            shared: Some(signals.sockets().spooler.recv_fd()),
            run: Box::new(|num| {
                signals.dispatch_guarded(num, &who, spoolers.board().get(id), row, limit);
            }),
        };
        match ruwsgi_spooler::run::run_with_signals(
            &spoolers,
            id,
            start.child.channel,
            &mut runner,
            Some(hook),
        ) {
            ruwsgi_spooler::SpoolerExit::Stopped => 0,
            ruwsgi_spooler::SpoolerExit::Recycled => EXIT_RECYCLE,
            ruwsgi_spooler::SpoolerExit::Failed => 1,
        }
    })
}

/// Map every `sharedarea` (whole pages, as uWSGI rounds anonymous areas), in id order.
fn map_shared_areas(sizes: &[AreaSize]) -> Result<Vec<SharedArea>, String> {
    let page = ruwsgi_sys::memory::page_size() as u64;
    sizes
        .iter()
        .enumerate()
        .map(|(id, size)| {
            let bytes = match *size {
                AreaSize::Pages(n) => n.saturating_mul(page),
                AreaSize::Bytes(n) => n.div_ceil(page).saturating_mul(page),
            };
            let len = usize::try_from(bytes).map_err(|_| format!("shared area {id}: too large"))?;
            SharedArea::new(len)
                .map_err(|e| format!("cannot map shared area {id} ({bytes} bytes): {e}"))
        })
        .collect()
}

/// Put each stored cache's saved items back (before any fork). A store that cannot be read
/// stops the start, unless its cache has `store_delete`: then the file is removed.
fn restore_caches(caches: &Caches) -> Result<(), String> {
    for c in caches.list() {
        let Some(path) = &c.store else { continue };
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !dir.is_dir() {
            return Err(format!(
                "cache '{}': the directory of its store {} does not exist",
                c.name,
                path.display()
            ));
        }
        match ruwsgi_cache::store::load(&c.table, path) {
            Ok(r) => {
                if r.items + r.expired + r.skipped > 0 {
                    log_line(&format!(
                        "ruwsgi: cache '{}' restored {} items from {} ({} expired, {} no longer fit)",
                        c.name,
                        r.items,
                        path.display(),
                        r.expired,
                        r.skipped
                    ));
                }
            }
            Err(e) if c.store_delete => {
                log_line(&format!(
                    "ruwsgi: cache '{}': {e}; removing it (store_delete)",
                    c.name
                ));
                let _ = std::fs::remove_file(path);
            }
            Err(e) => {
                return Err(format!(
                    "cache '{}': cannot restore {}: {e} (store_delete=1 discards it)",
                    c.name,
                    path.display()
                ))
            }
        }
    }
    Ok(())
}

/// The master's cache work: the expiry sweep every `cache-expire-freq` seconds (unless
/// `cache-no-expire`), and for each stored cache a save every `store_sync` seconds when it
/// changed, plus a last one before the master stops or re-executes.
fn cache_tasks(settings: &Settings, caches: &Arc<Caches>) -> Vec<Periodic> {
    let mut tasks = Vec::new();
    if caches.is_empty() {
        return tasks;
    }
    if !settings.api.cache_no_expire {
        let caches = caches.clone();
        let report = settings.api.cache_report_freed;
        tasks.push(Periodic {
            every: Duration::from_secs(settings.api.cache_expire_freq.max(1)),
            run: Box::new(move |cause| {
                if cause != PeriodicCause::Timer {
                    return;
                }
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                for (name, freed) in caches.sweep(now) {
                    if report && freed > 0 {
                        log_line(&format!(
                            "ruwsgi: cache '{name}': {freed} expired items freed"
                        ));
                    }
                }
            }),
        });
    }
    for (index, c) in caches.list().iter().enumerate() {
        let Some(path) = c.store.clone() else {
            continue;
        };
        let caches = caches.clone();
        let mut saved_at = None;
        let every = if c.store_sync > 0 {
            Duration::from_secs(c.store_sync)
        } else {
            // Saved only before the master leaves: the timer just never finds work.
            Duration::from_secs(3600)
        };
        let sync = c.store_sync > 0;
        tasks.push(Periodic {
            every,
            run: Box::new(move |cause| {
                let c = &caches.list()[index];
                if cause == PeriodicCause::Timer && !sync {
                    return;
                }
                let version = c.table.version();
                if saved_at == Some(version) {
                    return;
                }
                match ruwsgi_cache::store::save(&c.table, &path) {
                    Ok(_) => saved_at = Some(version),
                    Err(e) => log_line(&format!(
                        "ruwsgi: cache '{}': cannot save to {}: {e}",
                        c.name,
                        path.display()
                    )),
                }
            }),
        });
    }
    tasks
}

/// `reload PIDFILE` / `stop PIDFILE`: signal the master whose pid the file holds; 0 when
/// the signal was sent, 1 with the reason otherwise.
fn signal_pidfile(action: ruwsgi_config::PidfileAction, pidfile: &std::path::Path) -> i32 {
    let (option, sig) = match action {
        ruwsgi_config::PidfileAction::Reload => ("reload", ruwsgi_sys::Signal::SIGHUP),
        ruwsgi_config::PidfileAction::Stop => ("stop", ruwsgi_sys::Signal::SIGINT),
    };
    let pid = match std::fs::read_to_string(pidfile) {
        Ok(text) => match text.trim().parse::<i32>() {
            Ok(pid) if pid > 0 => pid,
            _ => {
                eprintln!(
                    "ruwsgi: {option}: {} does not hold a pid ({:?})",
                    pidfile.display(),
                    text.trim()
                );
                return 1;
            }
        },
        Err(e) => {
            eprintln!("ruwsgi: {option}: cannot read {}: {e}", pidfile.display());
            return 1;
        }
    };
    match ruwsgi_sys::signals::kill(ruwsgi_sys::Pid::from_raw(pid), sig) {
        Ok(()) => {
            eprintln!("ruwsgi: {option}: sent {sig} to the master (pid {pid})");
            0
        }
        Err(e) => {
            eprintln!(
                "ruwsgi: {option}: cannot signal pid {pid} (from {}): {e}",
                pidfile.display()
            );
            1
        }
    }
}
