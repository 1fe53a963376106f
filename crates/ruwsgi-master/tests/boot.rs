//! Boot policy: need-app, pidfiles, unix sockets and vacuum.

use std::time::Duration;

use ruwsgi_config::{Protocol, SocketSpec};

use crate::util::{fork_lock, settings, Behaviour, MasterHandle};

#[test]
fn need_app_without_an_app_exits_22() {
    let _g = fork_lock();
    let mut m = MasterHandle::start_with(settings(1), Behaviour::Serve, false, 0);
    assert_eq!(m.wait_exit(10), 22);
    assert!(m.log_text().contains("*** no app loaded. GAME OVER ***"));
    assert!(!m.phases().contains(&"Spawning".to_string()));
}

#[test]
fn pidfile_unix_socket_and_vacuum() {
    let _g = fork_lock();
    let dir = std::env::temp_dir().join(format!("ruwsgi-master-boot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("app.sock");
    let pidfile = dir.join("master.pid");
    let mut s = settings(1);
    s.sockets.bind.push(SocketSpec {
        protocol: Protocol::Uwsgi,
        address: sock.display().to_string(),
        option: "socket",
    });
    s.processes.pidfile = Some(pidfile.clone());
    s.processes.vacuum = true;
    s.processes.worker_reload_mercy = Duration::from_secs(2);
    let mut m = MasterHandle::start(s, Behaviour::Serve, false);
    let log = m.wait_log(
        &format!("ruwsgi: listening on {} (socket, fd ", sock.display()),
        5,
    );
    assert!(log.contains("(http-socket, fd "), "{log}");
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        m.pid.to_string()
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660);
    m.command(b'q');
    assert_eq!(m.wait_exit(10), 0);
    assert!(!sock.exists(), "vacuum left the socket");
    assert!(!pidfile.exists(), "vacuum left the pidfile");
    std::fs::remove_dir_all(&dir).unwrap();
}
