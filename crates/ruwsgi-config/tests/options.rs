//! The options of issue 13 that must start: how they parse and what they set.

use std::path::PathBuf;
use std::time::Duration;

use ruwsgi_config::LogDate;

use crate::util::{run, try_load, TempDir};

#[test]
fn plugins_accepts_builtin_and_notfound() {
    let s = run(&["--plugins", "0:python3,http", "--plugin", "python312"]);
    assert!(!s.requests.notfound);
    let s = run(&["--plugin", "python3,notfound", "--need-app=false"]);
    assert!(s.requests.notfound);
    run(&[
        "--plugins-dir",
        "/usr/lib/uwsgi/plugins",
        "--plugin-dir",
        "/x",
    ]);
    let s = run(&["--need-plugin", "notfound"]);
    assert!(s.requests.notfound);
}

#[test]
fn unknown_plugin_names_what_ruwsgi_has() {
    let e = try_load(&["--plugin", "python3,php"], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("plugin 'php'"), "{e}");
    assert!(
        e.contains("python") && e.contains("http") && e.contains("notfound"),
        "{e}"
    );
}

#[test]
fn daemonize_pidfile2_and_reload_policy() {
    let s = run(&[
        "-d",
        "/tmp/a.log",
        "--daemonize2",
        "/tmp/b.log",
        "--pidfile2",
        "/tmp/p2",
        "--master-as-root",
        "--exit-on-reload",
    ]);
    let p = &s.processes;
    assert_eq!(p.daemonize, Some(PathBuf::from("/tmp/a.log")));
    assert_eq!(p.daemonize2, Some(PathBuf::from("/tmp/b.log")));
    assert_eq!(p.pidfile2, Some(PathBuf::from("/tmp/p2")));
    assert!(p.master_as_root && p.exit_on_reload);
    // master-as-root changes nothing without uid/gid
    assert!(!p.children_drop_privileges() && !p.apps_in_workers());
    let s = run(&["--master-as-root", "--uid", "nobody"]);
    assert!(s.processes.children_drop_privileges() && s.processes.apps_in_workers());
    assert!(try_load(&["--daemonize", ""], &[]).is_err());
    let e = try_load(&["--daemonize", "127.0.0.1:1717"], &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("UDP address is not supported"), "{e}");
    let s = run(&["--daemonize2", "./logs/a:1"]);
    assert_eq!(s.processes.daemonize2, Some(PathBuf::from("./logs/a:1")));
}

#[test]
fn python_extras() {
    let s = run(&[
        "--py-autoreload",
        "2",
        "--py-auto-reload-ignore",
        "settings",
        "--wsgi-accept-buffer",
        "--single-interpreter",
        "--thunder-lock",
        "--post-buffering-bufsize",
        "16k",
    ]);
    assert_eq!(s.python.autoreload, Duration::from_secs(2));
    assert_eq!(s.python.autoreload_ignore, vec!["settings".to_string()]);
    assert!(s.python.accept_buffer);
    let s = run(&["--python-autoreload", "1", "-i"]);
    assert_eq!(s.python.autoreload, Duration::from_secs(1));
    assert!(try_load(&["--py-autoreload", "soon"], &[]).is_err());
    assert!(try_load(&["--post-buffering-bufsize", "x"], &[]).is_err());
}

#[test]
fn from_an_ini_file() {
    let dir = TempDir::new();
    let ini = dir.write(
        "app.ini",
        "[uwsgi]\nplugins = python3, notfound\nthunder-lock = true\nvacuum = true\n\
         enable-threads = true\nsingle-interpreter = true\nwsgi-accept-buffer = true\n\
         py-autoreload = 3\nexit-on-reload = true\npidfile2 = %d/p2\ndaemonize = %d/log\n",
    );
    let s = run(&["--ini", &ini]);
    assert!(s.requests.notfound && s.python.accept_buffer && s.processes.exit_on_reload);
    assert_eq!(s.processes.pidfile2, Some(dir.path().join("p2")));
    assert_eq!(s.processes.daemonize, Some(dir.path().join("log")));
    assert_eq!(s.python.autoreload, Duration::from_secs(3));
}

#[test]
fn logdate_forms() {
    assert_eq!(run(&["--logdate"]).logging.logdate, Some(LogDate::Ctime));
    assert_eq!(
        run(&["--log-date=true"]).logging.logdate,
        Some(LogDate::Ctime)
    );
    assert_eq!(run(&["--logdate=1"]).logging.logdate, Some(LogDate::Ctime));
    assert_eq!(run(&["--logdate=off"]).logging.logdate, None);
    assert_eq!(
        run(&["--logdate=[%Y]"]).logging.logdate,
        Some(LogDate::Format("[%Y]".to_string()))
    );
    assert_eq!(run(&[]).logging.logdate, None);
    // The value must be attached on the command line: a following word is not taken.
    assert!(try_load(&["--logdate", "%Y"], &[]).is_err());
    let dir = TempDir::new();
    let ini = dir.write("d.ini", "[uwsgi]\nlogdate = %%Y-%%m-%%d\n");
    assert_eq!(
        run(&["--ini", &ini]).logging.logdate,
        Some(LogDate::Format("%Y-%m-%d".to_string()))
    );
    let ini = dir.write("e.ini", "[uwsgi]\nlogdate = true\n");
    assert_eq!(run(&["--ini", &ini]).logging.logdate, Some(LogDate::Ctime));
}

#[test]
fn attach_daemon_accumulates() {
    let s = run(&[
        "--attach-daemon",
        "sleep 1",
        "--attach-daemon",
        "celery worker",
    ]);
    assert_eq!(s.processes.daemons, vec!["sleep 1", "celery worker"]);
    assert!(try_load(&["--attach-daemon", ""], &[]).is_err());
}
