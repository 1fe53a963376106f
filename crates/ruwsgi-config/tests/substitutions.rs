//! Magic variables, `$(ENV)`, `%(placeholder)`, `set`.

use std::path::PathBuf;

use crate::util::{opts, run, run_env, TempDir};

#[test]
fn magic_variables_describe_the_file() {
    let d = TempDir::new();
    let ini = d.write(
        "site.ini",
        "[uwsgi]\nchdir = %d\npidfile = %d%n.pid\nprocname-prefix = %s|%e|%c|%x|100%%\n",
    );
    let dir = d.path().to_string_lossy().into_owned();
    let s = run(&["--ini", &ini]);
    assert_eq!(s.processes.chdir, Some(PathBuf::from(format!("{dir}/"))));
    assert_eq!(
        s.processes.pidfile,
        Some(PathBuf::from(format!("{dir}/site.pid")))
    );
    let c = d.path().file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        s.processes.procname_prefix,
        Some(format!("site.ini|ini|{c}||100%"))
    );
}

#[test]
fn upper_case_magic_is_the_first_file() {
    let d = TempDir::new();
    d.write("inner.ini", "[uwsgi]\nprocname-prefix = %n/%N\n");
    let top = d.write("outer.ini", "[uwsgi]\nini = %dinner.ini\n");
    let s = run(&["--ini", &top]);
    assert_eq!(s.processes.procname_prefix.as_deref(), Some("inner/outer"));
}

#[test]
fn env_substitution() {
    let d = TempDir::new();
    let ini = d.write(
        "e.ini",
        "[uwsgi]\nchdir = $(HOME)/app\nlogto = $(NOPE)\nuid = $(U:-nobody)\ngid = $(G-grp)\n",
    );
    let s = run_env(&["--ini", &ini], &[("HOME", "/home/me"), ("U", "")]);
    assert_eq!(s.processes.chdir, Some(PathBuf::from("/home/me/app")));
    assert_eq!(s.logging.logto, Some(PathBuf::from("$(NOPE)")));
    assert_eq!(s.processes.uid.as_deref(), Some("nobody"));
    assert_eq!(s.processes.gid.as_deref(), Some("grp"));
    let s = run_env(&["--chdir", "$(HOME)"], &[("HOME", "/h")]);
    assert_eq!(s.processes.chdir, Some(PathBuf::from("/h")));
}

#[test]
fn placeholders_and_set() {
    let d = TempDir::new();
    let ini = d.write(
        "p.ini",
        "[uwsgi]\nset = foo=bar\nbase = /srv/%(foo)\nchdir = %(base)/x\nlogto = %(unknown)\n\
         set = processes=6\n",
    );
    let s = run(&["--ini", &ini]);
    assert_eq!(s.processes.chdir, Some(PathBuf::from("/srv/bar/x")));
    assert_eq!(s.logging.logto, Some(PathBuf::from("%(unknown)")));
    assert_eq!(s.processes.workers, 6);
    assert_eq!(
        opts(&s)[1..4],
        [
            ("set", Some("foo=bar")),
            ("foo", Some("bar")),
            ("base", Some("/srv/bar"))
        ]
    );
    assert_eq!(
        opts(&s)[6..],
        [("set", Some("processes=6")), ("processes", Some("6"))]
    );
}

#[test]
fn placeholders_from_the_command_line() {
    let s = run(&[
        "--set",
        "name=web",
        "--procname-prefix",
        "%(name)-",
        "-S",
        "threads=3",
    ]);
    assert_eq!(s.processes.procname_prefix.as_deref(), Some("web-"));
    assert_eq!(s.processes.threads, 3);
    let s = run(&[
        "--set-ph",
        "processes=9",
        "--pidfile",
        "/run/%(processes).pid",
    ]);
    assert_eq!(
        s.processes.workers, 1,
        "set-placeholder never sets an option"
    );
    assert_eq!(s.processes.pidfile, Some(PathBuf::from("/run/9.pid")));
}

#[test]
fn first_value_wins_for_placeholders() {
    let s = run(&["--set", "a=1", "--set", "a=2", "--procname-prefix", "%(a)"]);
    assert_eq!(s.processes.procname_prefix.as_deref(), Some("1"));
}

#[test]
fn config_paths_are_expanded_immediately() {
    let d = TempDir::new();
    d.write("inc.ini", "[uwsgi]\nprocesses = 7\n");
    let dir = d.path().to_string_lossy().into_owned();
    let s = run_env(
        &["--set", "conf=inc", "--ini", "$(D)/%(conf).ini"],
        &[("D", &dir)],
    );
    assert_eq!(s.processes.workers, 7);
}

#[test]
fn file_contents_substitution() {
    let d = TempDir::new();
    let secret = d.write("user.txt", "appuser\n");
    let s = run(&["--uid", &format!("@({secret})")]);
    assert_eq!(s.processes.uid.as_deref(), Some("appuser"));
}

#[test]
fn short_config_flags() {
    let d = TempDir::new();
    let y = d.write("a.yaml", "uwsgi:\n  processes: 2\n");
    let j = d.write("a.json", r#"{"uwsgi": {"threads": 3}}"#);
    let s = run(&["-y", &y, "-j", &j]);
    assert_eq!((s.processes.workers, s.processes.threads), (2, 3));
    assert_eq!(s.config_files, [PathBuf::from(&y), PathBuf::from(&j)]);
}
