//! Mules: spawned after the workers, respawned when they die, replaced on reload, stopped
//! with the instance.

use nix::sys::signal::{kill, Signal};
use ruwsgi_config::MuleSpec;
use ruwsgi_sys::Pid;

use crate::util::{fork_lock, is_running, settings, Behaviour, MasterHandle};

/// The pid logged for `mule <id>` by its latest spawn line.
fn mule_pid(log: &str, id: u32) -> i32 {
    let spawned = format!("spawned ruwsgi mule {id} (pid: ");
    let respawned = format!("Respawned ruwsgi mule {id} (new pid: ");
    log.lines()
        .rev()
        .filter_map(|l| {
            l.strip_prefix(&spawned)
                .or_else(|| l.strip_prefix(&respawned))
        })
        .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
        .next()
        .unwrap_or_else(|| panic!("no spawn line for mule {id} in:\n{log}"))
}

#[test]
fn plain_mules_live_die_reload_and_stop_with_the_instance() {
    let _g = fork_lock();
    let mut s = settings(1);
    s.processes.mules = vec![MuleSpec::Plain, MuleSpec::Plain];
    let mut m = MasterHandle::start(s, Behaviour::Serve, false);
    let log = m.wait_log_n("spawned ruwsgi mule ", 2, 5);
    assert!(
        log.contains("(pid: ") && log.contains("1 workers, 2 mules)"),
        "{log}"
    );
    let kids = m.wait_children(3, &[], 5);
    let (m1, m2) = (mule_pid(&log, 1), mule_pid(&log, 2));
    assert!(kids.contains(&m1) && kids.contains(&m2));

    kill(Pid::from_raw(m2), Signal::SIGKILL).unwrap();
    let log = m.wait_log("Respawned ruwsgi mule 2 (new pid: ", 5);
    assert!(
        log.contains(&format!(
            "DAMN ! mule 2 (pid: {m2}) died, killed by signal 9 :( trying respawn ..."
        )),
        "{log}"
    );
    let m2 = mule_pid(&log, 2);
    m.wait_children(3, &[], 5);

    // A reload replaces the mules too, and they exit cleanly on SIGHUP.
    let before = m.children();
    m.command(b'r');
    m.wait_log("ruwsgi: reload done, generation 1 ready", 10);
    let log = m.log_text();
    assert!(
        log.contains(&format!("mule 1 (pid: {m1}) stopped (exit status 0)")),
        "{log}"
    );
    assert!(
        log.contains(&format!("mule 2 (pid: {m2}) stopped (exit status 0)")),
        "{log}"
    );
    m.wait_children(3, &before, 5);

    let kids = m.children();
    m.command(b'q');
    assert_eq!(m.wait_exit(10), 0);
    let log = m.log_text();
    assert_eq!(log.matches("DAMN").count(), 1, "{log}");
    for k in kids {
        assert!(!is_running(k), "{k} outlived the master");
    }
}

#[test]
fn a_script_mule_without_plugin_support_says_so_and_is_throttled() {
    let _g = fork_lock();
    let mut s = settings(1);
    s.processes.mules = vec![MuleSpec::Script("job.py".into())];
    let mut m = MasterHandle::start(s, Behaviour::Serve, false);
    let log = m.wait_log("ruwsgi: too many respawns", 10);
    assert!(
        log.contains("mule 1: the fake plugin does not support mule scripts"),
        "{log}"
    );
    assert!(
        log.contains("DAMN ! mule 1 (pid: ") && log.contains("died with exit status 1"),
        "{log}"
    );
    assert!(!log.contains("DAMN ! worker"), "{log}");
    m.command(b'q');
    assert_eq!(m.wait_exit(10), 0);
}
