//! [`run`]: the boot sequence up to the supervision loop, and the shutdown after it.
//!
//! Order: signals, bind (or adopt) sockets, pidfiles, scoreboard, plugin init (the language
//! runtime starts, no application code runs), drop privileges (unless `master-as-root`:
//! then each child does), preload apps, `daemonize2` (detach; pidfiles rewritten),
//! `pidfile2`, fork the children, supervise, and at the end vacuum and say goodbye.
//!
//! Design decision: privileges are dropped after the plugin's `init` and before
//! `load_apps`. The runtime may live where only root can read (an interpreter under
//! `/root`), so it is started while still privileged; application code never runs as
//! root. (`logto` is the binary's business: it redirects before its first log line.)

use std::sync::Arc;
use std::time::Duration;

use ruwsgi_shm::Scoreboard;
use ruwsgi_sys::process::{drop_privileges, is_root, set_process_title};
use ruwsgi_sys::socket::InheritedListeners;
use ruwsgi_sys::{log_line, signals, Signal};

use crate::bind::{bind_all, vacuum, write_pidfiles};
use crate::children::{ChildKind, Slot};
use crate::error::MasterError;
use crate::events::{Timers, WatchedFds};
use crate::master::{Master, Mode};
use crate::reexec::reloads_from_env;
use crate::signals::SignalSource;
use crate::throttle::Throttle;
use crate::types::{MasterConfig, MasterPhase};

/// Claim the sockets a previous image of this master left open.
#[allow(unsafe_code)] // the one place the master takes ownership of inherited fds (STYLE R6)
fn inherited_listeners() -> InheritedListeners {
    // SAFETY: called once per image, at boot, before anything in this process has wrapped
    // descriptors it did not open itself; the numbers come from our own previous image,
    // which left exactly these fds open for us.
    unsafe { InheritedListeners::from_env() }
}

/// Run the master until it stops. Returns the process exit code (0 after a stop, 22 when
/// a lazily loaded app is missing under `need-app`); a boot failure is an error whose
/// [`MasterError::exit_code`] the binary should use. On a preloaded graceful reload this
/// function does not return: the process re-execs itself.
pub fn run(config: MasterConfig, signal_source: Box<dyn SignalSource>) -> Result<i32, MasterError> {
    let MasterConfig {
        settings,
        plugin,
        make_host,
        worker_main,
        mule_main,
        spooler_main,
        spooler_board,
        argv,
        reexec_on_reload,
        phase_observer,
        clock,
        periodic,
        signals: signal_framework,
    } = config;
    let mut observer = phase_observer;
    let mut phase = |p: MasterPhase| {
        if let Some(o) = observer.as_mut() {
            o(p)
        }
    };
    phase(MasterPhase::Booting);
    // The one place `SIGPIPE` is ignored: a write to a closed socket or channel must be an
    // `EPIPE`, never a dead master; forked children inherit it.
    let _ = signals::ignore(Signal::SIGPIPE);
    let _ = signals::unblock_all();
    let master_pid = ruwsgi_sys::process::pid();
    let reloads = reloads_from_env();
    crate::types::set_current_generation(reloads);
    if is_root() && settings.processes.uid.is_none() && settings.processes.gid.is_none() {
        log_line("*** WARNING: you are running ruwsgi as root without uid/gid !!! ***");
    }
    if let Some(title) = crate::ProcNames::new(&settings.processes).master() {
        set_process_title(&title);
    }
    // Alarms, and with `alarm-log` the log master, before anything else logs (after
    // `daemonize2` when it is still to come: its fork would not carry the log thread).
    let late_detach = settings.processes.daemonize2.is_some() && reloads == 0;
    let mut alarms = crate::alarms::Alarms::new(&settings.signals, signal_framework.as_ref());
    if let (Some(a), false) = (alarms.as_mut(), late_detach) {
        a.start_log_master();
    }

    phase(MasterPhase::Binding);
    let mut inherited = inherited_listeners();
    let sockets = bind_all(&settings, &mut inherited)?;
    drop(inherited);
    let (stats, stats_fds) = crate::stats::StatsServer::bind(&settings)?;
    match write_pidfiles(&settings, master_pid.as_raw()) {
        // After a re-exec the master may no longer have the rights it wrote them with.
        Err(e) if reloads > 0 => log_line(&format!("ruwsgi: {e} (kept the previous one)")),
        other => other?,
    }

    phase(MasterPhase::LoadingApps);
    let processes = settings.processes.workers.max(1);
    let mules = settings.processes.mules.len();
    let scoreboard =
        Scoreboard::with_cores(processes, settings.processes.cores()).map_err(MasterError::Shm)?;
    let mule_board = match mules {
        0 => None,
        n => Some(Scoreboard::new(n).map_err(MasterError::Shm)?),
    };
    scoreboard.set_master_pid(master_pid.as_raw());
    scoreboard.set_generation(reloads);
    let socket_fds: Vec<_> = sockets
        .iter()
        .map(|b| std::os::fd::AsRawFd::as_raw_fd(&b.fd))
        .collect();
    let host = make_host(&scoreboard, mule_board.as_ref(), &socket_fds);
    plugin
        .init(settings.plugin_view(), Arc::clone(&host))
        .map_err(MasterError::PluginInit)?;
    if settings.processes.children_drop_privileges() {
        log_line(
            "ruwsgi: master-as-root: the master keeps root; each child drops privileges \
             after fork and the apps are loaded in the workers",
        );
    } else {
        drop_privileges(
            settings.processes.uid.as_deref(),
            settings.processes.gid.as_deref(),
        )?;
    }
    if !settings.processes.apps_in_workers() {
        match plugin.load_apps() {
            Ok(n) if n > 0 || !settings.processes.need_app => {}
            Ok(_) => return Err(no_app("no app configured or loaded".to_string())),
            Err(e) if settings.processes.need_app => return Err(no_app(e.to_string())),
            Err(e) => log_line(&format!(
                "ruwsgi: {e} (need-app is off: serving without it)"
            )),
        }
    }
    // `daemonize2`: detach now that the apps are loaded (never again after a re-exec).
    let mut detached = None;
    let master_pid = match (&settings.processes.daemonize2, reloads) {
        (Some(path), 0) => {
            let (pid, ready) = daemonize_late(&settings, &plugin, path)?;
            detached = Some(ready);
            scoreboard.set_master_pid(pid.as_raw());
            write_pidfiles(&settings, pid.as_raw())?;
            pid
        }
        _ => master_pid,
    };
    if let (Some(a), true) = (alarms.as_mut(), late_detach) {
        a.start_log_master();
    }
    if let Some(path) = &settings.processes.pidfile2 {
        match write_pidfile2(path, master_pid.as_raw()) {
            Err(e) if reloads > 0 => log_line(&format!("ruwsgi: {e} (kept the previous one)")),
            other => other?,
        }
    }
    // The launching process exits (0) only now: its caller finds the daemon's pid in the
    // pidfiles. Closing without the byte (a failure above) makes it exit 1.
    if let Some(ready) = detached {
        let _ = nix::unistd::write(&ready, b"r");
    }
    let spoolers = settings.spooler.process_count();
    let mut mule_note = match mules {
        0 => String::new(),
        n => format!(", {n} mules"),
    };
    if spoolers > 0 {
        mule_note.push_str(&format!(", {spoolers} spoolers"));
    }
    log_line(&format!(
        "ruwsgi: master process started (pid: {master_pid}, generation {reloads}, {processes} workers{mule_note})"
    ));
    let slots: Vec<Slot> = (1..=processes as u32)
        .map(|id| Slot::new(ChildKind::Worker, id))
        .chain((1..=mules as u32).map(|id| Slot::new(ChildKind::Mule, id)))
        .chain((1..=spoolers as u32).map(|id| Slot::new(ChildKind::Spooler, id)))
        .chain(
            (1..=settings.processes.daemons.len() as u32)
                .map(|id| Slot::new(ChildKind::Daemon, id)),
        )
        .collect();

    let mut master = Master {
        throttle: Throttle::new(
            slots.len(),
            settings
                .processes
                .forkbomb_delay
                .max(Duration::from_millis(100)),
        ),
        settings: Arc::clone(&settings),
        plugin,
        worker_main,
        mule_main: mule_main.unwrap_or_else(|| Box::new(crate::mule::default_mule_main)),
        spooler_main,
        spooler_board,
        signals: signal_source,
        observer,
        argv,
        reexec_on_reload,
        sockets,
        scoreboard,
        slots,
        mule_board,
        mode: Mode::Running,
        generation: reloads,
        reloads,
        master_pid,
        clock,
        timers: Timers::new(),
        watched: WatchedFds::new(),
        periodic,
        stats,
        host: Some(host),
        triggers: crate::triggers::Triggers::new(
            &settings.processes,
            &settings.signals.touch_mules_reload,
        ),
        queues_checked: None,
        sig: None,
        alarms,
    };
    if let Some(framework) = signal_framework {
        let now = master.clock.now();
        master.sig = Some(crate::routing::SignalSources::new(
            framework,
            &settings.signals,
            now,
        ));
        master.read_registrations(now);
    }
    master.watch_stats(stats_fds);
    master.watch_alarms();
    let now = master.clock.now();
    master.arm_periodic(now);
    master.open_master_fifo();
    master.phase(MasterPhase::Spawning);
    for index in 0..master.slots.len() {
        let _ = master.spawn(index);
    }
    master.phase(MasterPhase::Running);
    if reloads > 0 {
        log_line(&format!("ruwsgi: reload done, generation {reloads} ready"));
    }

    let code = master.supervise();
    if settings.processes.vacuum {
        vacuum(&settings, &master.sockets);
        master.stats.vacuum();
    }
    master.phase(MasterPhase::Terminated);
    log_line("goodbye to ruwsgi.");
    Ok(code)
}

/// `daemonize2`: fork through the plugin's fork wrapper (the interpreter is up); the child
/// carries on as the master in a new session, and the parent waits until the child reports
/// its pidfiles written (a byte on a pipe), then exits 0 (1 if the child failed first).
/// Returns the new pid and the pipe end to report on.
fn daemonize_late(
    settings: &ruwsgi_config::Settings,
    plugin: &Arc<dyn ruwsgi_plugin::LanguagePlugin>,
    path: &std::path::Path,
) -> Result<(ruwsgi_sys::Pid, std::os::fd::OwnedFd), MasterError> {
    let fork_error = |source: std::io::Error| MasterError::Daemonize {
        path: path.to_path_buf(),
        source,
    };
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fork_error(e.into()))?;
    let log =
        match settings.logging.logto {
            Some(_) => None,
            None => Some(ruwsgi_sys::log::open_log_file(path).map_err(|source| {
                MasterError::Daemonize {
                    path: path.to_path_buf(),
                    source,
                }
            })?),
        };
    let mask = signals::block_all().ok();
    let outcome = plugin.around_fork(&mut crate::spawn::fork_once);
    if let Some(mask) = &mask {
        let _ = signals::restore_mask(mask);
    }
    match outcome {
        ruwsgi_plugin::ForkOutcome::Parent(_) => {
            drop(ready_w);
            let mut byte = [0u8; 1];
            let reported = loop {
                match nix::unistd::read(&ready_r, &mut byte) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other,
                }
            };
            if reported == Ok(1) {
                ruwsgi_sys::process::exit_now(0);
            }
            log_line(&format!(
                "ruwsgi: daemonize2: the detached master stopped before it was ready; its log \
                 is {}",
                settings.logging.logto.as_deref().unwrap_or(path).display()
            ));
            ruwsgi_sys::process::exit_now(1)
        }
        ruwsgi_plugin::ForkOutcome::Failed(errno) => Err(MasterError::Daemonize {
            path: path.to_path_buf(),
            source: std::io::Error::from_raw_os_error(errno),
        }),
        ruwsgi_plugin::ForkOutcome::Child => {
            drop(ready_r);
            ruwsgi_sys::daemon::detach_session(log).map_err(fork_error)?;
            Ok((ruwsgi_sys::process::pid(), ready_w))
        }
    }
}

/// `pidfile2`: written once privileges are dropped (and after `daemonize2`).
fn write_pidfile2(path: &std::path::Path, pid: i32) -> Result<(), MasterError> {
    std::fs::write(path, format!("{pid}\n")).map_err(|source| MasterError::Pidfile {
        path: path.to_path_buf(),
        source,
    })
}

fn no_app(reason: String) -> MasterError {
    log_line("*** no app loaded. GAME OVER ***");
    MasterError::NoApp(reason)
}
