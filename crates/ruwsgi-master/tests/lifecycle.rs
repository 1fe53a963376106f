//! Spawn, crash and respawn, reload, recycle, crash-loop throttle, stop.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use ruwsgi_sys::Pid;

use crate::util::{fork_lock, get, is_running, settings, Behaviour, MasterHandle};

const BOOT: [&str; 5] = ["Booting", "Binding", "LoadingApps", "Spawning", "Running"];

#[test]
fn spawns_workers_serves_and_stops_gracefully() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(settings(2), Behaviour::Serve, false);
    assert_eq!(m.phases(), BOOT);
    let log = m.wait_log_n("spawned ruwsgi worker", 2, 5);
    assert!(log.contains("spawned ruwsgi worker 1 (pid: "), "{log}");
    assert!(log.contains(", cores: 1)"), "{log}");
    let kids = m.wait_children(2, &[], 5);
    let port = m.port();
    for _ in 0..4 {
        assert!(kids.contains(&get(port)));
    }
    m.command(b'q');
    assert_eq!(m.wait_exit(10), 0);
    let phases = m.phases();
    assert_eq!(phases[BOOT.len()..], ["Draining", "Terminated"]);
    let log = m.log_text();
    assert!(
        log.contains("ruwsgi: graceful stop requested (test)"),
        "{log}"
    );
    assert!(log.contains("goodbye to ruwsgi."), "{log}");
    assert!(!log.contains("DAMN"), "{log}");
    for k in kids {
        assert!(!is_running(k), "worker {k} outlived the master");
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port still open"
    );
}

#[test]
fn a_killed_worker_is_logged_and_respawned() {
    let _g = fork_lock();
    let m = MasterHandle::start(settings(2), Behaviour::Serve, false);
    let kids = m.wait_children(2, &[], 5);
    kill(Pid::from_raw(kids[0]), Signal::SIGKILL).unwrap();
    let log = m.wait_log("Respawned ruwsgi worker", 5);
    assert!(
        log.contains(&format!(
            "(pid: {}) died, killed by signal 9 :( trying respawn ...",
            kids[0]
        )),
        "{log}"
    );
    assert!(log.contains("DAMN ! worker "), "{log}");
    let now = m.wait_children(2, &[kids[0]], 5);
    assert!(now.contains(&kids[1]));
    let port = m.port();
    assert!(now.contains(&get(port)));
}

#[test]
fn an_injected_reload_replaces_every_worker() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(settings(2), Behaviour::Serve, false);
    let port = m.port();
    let before = m.wait_children(2, &[], 5);
    m.command(b'r');
    m.wait_phase_n("Running", 2, 10);
    let log = m.wait_log("ruwsgi: reload done, generation 1 ready", 5);
    assert!(
        log.contains("ruwsgi: graceful reload requested (test)"),
        "{log}"
    );
    assert!(!log.contains("DAMN"), "{log}");
    let after = m.wait_children(2, &before, 5);
    assert!(after.contains(&get(port)));
    assert!(m.phases().contains(&"GracefulReload".to_string()));
    m.command(b'q');
    assert_eq!(m.wait_exit(10), 0);
}

#[test]
fn a_recycled_worker_is_respawned_without_a_crash_report() {
    let _g = fork_lock();
    let m = MasterHandle::start(settings(1), Behaviour::RecycleAfter(2), false);
    let port = m.port();
    let first = get(port);
    assert_eq!(get(port), first);
    let log = m.wait_log(
        &format!("worker 1 (pid: {first}) recycled after 2 requests"),
        5,
    );
    assert!(!log.contains("DAMN"), "{log}");
    m.wait_log("Respawned ruwsgi worker 1 (new pid: ", 5);
    assert_ne!(get(port), first);
}

#[test]
fn a_crash_loop_is_throttled_and_the_master_survives() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(settings(1), Behaviour::Crash, false);
    let log = m.wait_log("ruwsgi: too many respawns (more than 1 in one second)", 5);
    assert!(
        log.contains("died with exit status 1 :( trying respawn ..."),
        "{log}"
    );
    let t0 = std::time::Instant::now();
    let before = m.log_text().matches("DAMN").count();
    std::thread::sleep(Duration::from_millis(2500));
    let during = m.log_text().matches("DAMN").count() - before;
    // forkbomb-delay 1 s, 1 respawn per window: about 1-2 per second, never a spin.
    assert!(during <= 6, "{during} crashes in {:?}", t0.elapsed());
    assert!(is_running(m.pid.as_raw()));
    m.command(b'Q');
    assert_eq!(m.wait_exit(10), 0);
}

#[test]
fn immediate_stop_terminates_workers() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(settings(2), Behaviour::Serve, false);
    let kids = m.wait_children(2, &[], 5);
    m.command(b'Q');
    assert_eq!(m.wait_exit(10), 0);
    let log = m.log_text();
    assert!(
        log.contains("ruwsgi: immediate stop requested (test): killing workers"),
        "{log}"
    );
    assert!(log.contains("stopped (exit status 30)"), "{log}");
    for k in kids {
        assert!(!is_running(k));
    }
}

#[test]
fn real_signals_sigterm_stops_gracefully_and_sighup_reloads() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(settings(2), Behaviour::Serve, true);
    let before = m.wait_children(2, &[], 5);
    kill(m.pid, Signal::SIGHUP).unwrap();
    m.wait_log("ruwsgi: graceful reload requested (SIGHUP)", 5);
    m.wait_phase_n("Running", 2, 10);
    m.wait_children(2, &before, 5);
    kill(m.pid, Signal::SIGTERM).unwrap();
    assert_eq!(m.wait_exit(10), 0);
    assert!(m
        .log_text()
        .contains("ruwsgi: graceful stop requested (SIGTERM)"));
}

#[test]
fn killing_the_master_takes_the_workers_down() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(settings(2), Behaviour::Serve, false);
    let kids = m.wait_children(2, &[], 5);
    kill(m.pid, Signal::SIGKILL).unwrap();
    let _ = nix::sys::wait::waitpid(m.pid, None);
    m.pid = Pid::from_raw(i32::MAX); // already reaped; keep Drop away from it
    let end = std::time::Instant::now() + Duration::from_secs(2);
    while kids.iter().any(|&k| is_running(k)) {
        assert!(
            std::time::Instant::now() < end,
            "workers survived the master"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
