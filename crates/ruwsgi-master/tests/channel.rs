//! Requests a child sends over its command channel.

use ruwsgi_proto::channel::ChildRequest;

use crate::util::{fork_lock, get, settings, Behaviour, MasterHandle};

#[test]
fn a_worker_asking_for_an_instance_reload_gets_one() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(
        settings(1),
        Behaviour::AskAfterFirst(ChildRequest::ReloadInstance),
        false,
    );
    let port = m.port();
    let before = m.wait_children(1, &[], 5);
    assert_eq!(get(port), before[0]);
    let log = m.wait_log("ruwsgi: graceful reload requested (worker 1)", 5);
    assert!(!log.contains("SIGHUP"), "{log}");
    m.wait_phase_n("Running", 2, 10);
    m.wait_log("ruwsgi: reload done, generation 1 ready", 5);
    assert!(m.phases().contains(&"GracefulReload".to_string()));
    m.wait_children(1, &before, 5);
    m.command(b'q');
    assert_eq!(m.wait_exit(10), 0);
}

#[test]
fn a_worker_asking_for_a_stop_stops_the_instance() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(
        settings(2),
        Behaviour::AskAfterFirst(ChildRequest::StopInstance),
        false,
    );
    get(m.port());
    assert_eq!(m.wait_exit(10), 0);
    let log = m.log_text();
    assert!(
        log.contains("ruwsgi: graceful stop requested (worker "),
        "{log}"
    );
    assert!(log.contains("goodbye to ruwsgi."), "{log}");
}

#[test]
fn reload_me_replaces_only_the_asking_worker() {
    let _g = fork_lock();
    let mut m = MasterHandle::start(
        settings(2),
        Behaviour::AskAfterFirst(ChildRequest::ReloadMe),
        false,
    );
    let port = m.port();
    let before = m.wait_children(2, &[], 5);
    let asker = get(port);
    let log = m.wait_log(
        &format!("(pid: {asker}) asked to be replaced: stopping it gracefully"),
        5,
    );
    assert!(log.contains("worker "), "{log}");
    m.wait_log(&format!("(pid: {asker}) recycled after 1 requests"), 5);
    m.wait_log("Respawned ruwsgi worker ", 5);
    let other: Vec<i32> = before.iter().copied().filter(|&p| p != asker).collect();
    let after = m.wait_children(2, &[asker], 5);
    assert!(
        after.contains(&other[0]),
        "the other worker was replaced too"
    );
    let log = m.log_text();
    assert!(!log.contains("DAMN"), "{log}");
    assert!(!log.contains("reload requested"), "{log}");
    assert_eq!(m.phases().iter().filter(|p| *p == "Running").count(), 1);
    m.command(b'q');
    assert_eq!(m.wait_exit(10), 0);
}
